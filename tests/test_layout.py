"""The house rules that hold the code together: the lint the project chose, and no import circles."""

from __future__ import annotations

import ast
import subprocess
import sys

from .helpers import REPO


def test_the_code_passes_the_projects_lint():
    """ruff with the rules of pyproject.toml (syntax errors, pyflakes, line length) over the package, the tests and
    the benchmarks."""
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "resnet_bench", "tests", "benchmarks"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def imports_of_the_package() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, at the top or inside a function."""
    root = REPO / "resnet_bench"
    modules = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
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
                # The package's __init__ re-exports the API: importing it is not a dependency on a sibling.
                if target and target not in (name, "resnet_bench"):
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
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

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_circles_are_found_by_hand():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_package_imports_itself_back_through_others():
    """A circle hides in imports inside functions; the layers (README, "Layout") only hold without any."""
    graph = imports_of_the_package()
    assert "resnet_bench.search.sweep" in graph and "resnet_bench.profiling" in graph["resnet_bench.search.sweep"]
    assert circles(graph) == []


def test_no_module_imports_another_modules_private_names():
    """A name with a leading underscore is its module's own; what another module needs is made public."""
    found = []
    for path in (REPO / "resnet_bench").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("resnet_bench"):
                found += [f"{path.relative_to(REPO)}:{node.lineno} {node.module}.{alias.name}" for alias in node.names
                          if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert found == []
