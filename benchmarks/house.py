"""How easy the house is to change, measured on the package's source: import circles, the longest function and class,
the modules over 400 lines and the imports inside functions.

    python benchmarks/house.py                      # this checkout's resnet_bench/
    python benchmarks/house.py /tmp/old/resnet_bench --json house.json

An earlier release is measured the same way from a worktree of it (`git worktree add /tmp/old <commit>`). The
import graph holds every import of a module of the package, at the top or inside a function (a circle hides in
the latter); `from resnet_bench import x` counts as importing `resnet_bench.x`, not the package's __init__.
Reads files only: nothing is imported or run. tests/test_layout.py holds the package to no circle with the same
graph.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path
from typing import Any

BIG_MODULE = 400  # lines


def modules_of(root: Path) -> dict[str, Path]:
    """Module name -> its file, for every .py file under the package folder `root`."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        out[".".join(path.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__")] = path
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at the top or inside a function. The package's __init__
    re-exports the API: importing it is not a dependency on a sibling."""
    modules = modules_of(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target not in (name, root.name):
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def measure(root: Path) -> dict[str, Any]:
    """The house's figures for the package folder `root`."""
    modules = modules_of(root)
    longest_function, longest_class = (0, ""), (0, "")
    inner_imports, big = 0, []
    for name, path in modules.items():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > BIG_MODULE:
            big.append((lines, name))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                longest_function = max(longest_function, (node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
                inner_imports += sum(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(node))
            elif isinstance(node, ast.ClassDef):
                longest_class = max(longest_class, (node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
    return {
        "modules": len(modules), "circles": circles(import_graph(root)),
        "longest_function": {"name": longest_function[1], "lines": longest_function[0]},
        "longest_class": {"name": longest_class[1], "lines": longest_class[0]},
        "modules_over_400_lines": [{"name": n, "lines": k} for k, n in sorted(big, reverse=True)],
        "imports_inside_functions": inner_imports,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package", nargs="?", default=str(Path(__file__).resolve().parents[1] / "resnet_bench"),
                        help="the package's folder (default: this checkout's resnet_bench/)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    if not (Path(args.package) / "__init__.py").is_file():
        print(f"house.py: package {args.package!r} is not a package's folder (one holding __init__.py)",
              file=sys.stderr)
        raise SystemExit(2)
    figures = measure(Path(args.package))
    print(f"modules: {figures['modules']}")
    print(f"import circles: {len(figures['circles'])}" + "".join(f"\n  {' <-> '.join(c)}" for c in figures["circles"]))
    for key in ("longest_function", "longest_class"):
        print(f"{key.replace('_', ' ')}: {figures[key]['name']}, {figures[key]['lines']} lines")
    print(f"modules over {BIG_MODULE} lines: "
          + (", ".join(f"{m['name']} {m['lines']}" for m in figures["modules_over_400_lines"]) or "none"))
    print(f"imports inside functions: {figures['imports_inside_functions']}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
