"""The house rules that hold the code together: the lint the project chose, and no import circles."""

from __future__ import annotations

import ast
import subprocess
import sys

from .helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from house import circles, import_graph, measure  # noqa: E402  (the measure the README's "The house, measured" reads)


def test_the_code_passes_the_projects_lint():
    """ruff with the rules of pyproject.toml (syntax errors, pyflakes, line length) over the package, the tests and
    the benchmarks."""
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "resnet_bench", "tests", "benchmarks"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_circles_are_found_by_hand():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_house_measure_finds_a_circle_through_an_import_inside_a_function(tmp_path):
    """benchmarks/house.py on a package written here: a circle that only an import inside a function closes, the
    package's __init__ re-exporting a module (not a dependency), and the figures counted by hand."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from pkg.a import VALUE\n")
    (package / "a.py").write_text("from pkg import b\n\nVALUE = 1\n")
    (package / "b.py").write_text("def late():\n    from .a import VALUE\n\n    return VALUE\n\n\nclass C:\n    pass\n")
    (package / "c.py").write_text("import pkg\n" + "x = 1\n" * 401)
    graph = import_graph(package)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": set()}
    figures = measure(package)
    assert figures["circles"] == [["pkg.a", "pkg.b"]] and figures["imports_inside_functions"] == 1
    assert figures["longest_function"] == {"name": "pkg.b.late", "lines": 4}
    assert figures["longest_class"] == {"name": "pkg.b.C", "lines": 2}
    assert figures["modules_over_400_lines"] == [{"name": "pkg.c", "lines": 402}]


def test_no_module_of_the_package_imports_itself_back_through_others():
    """A circle hides in imports inside functions; the layers (README, "Layout") only hold without any."""
    graph = import_graph(REPO / "resnet_bench")
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
