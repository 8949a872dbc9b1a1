"""The package's imports go one way: errors, files, executors, checkpoint, registry, settings -> primitives
-> benchmarks -> proxies -> cache -> search -> nas -> report -> workflows -> cli.

Parses every module of the installed package (primitives/ and benchmarks/ are
installed as lpzero.primitives and lpzero.benchmarks) and fails on an import of a
higher layer, on a cycle between modules, and on an lpzero import inside a function
(the usual way to hide a cycle).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lpzero

ROOT = Path(__file__).resolve().parent.parent
#: package folder -> its dotted name once installed
FOLDERS = {"lpzero": "lpzero", "primitives": "lpzero.primitives", "benchmarks": "lpzero.benchmarks"}
#: layer of each module, by the longest matching prefix; lower layers never import higher ones
LAYERS = {
    "lpzero.errors": 0, "lpzero.files": 0, "lpzero.executors": 0, "lpzero.checkpoint": 0, "lpzero.registry": 0,
    "lpzero.lazy": 0,
    "lpzero.settings": 0,
    "lpzero.primitives": 1,
    "lpzero.benchmarks": 2,
    "lpzero.proxies": 3,
    "lpzero.cache": 4,
    "lpzero.search": 5,
    "lpzero.nas": 6,
    "lpzero.report": 7,
    "lpzero.workflows": 8,
    "lpzero.cli": 9, "lpzero.commands": 9,
    "lpzero": 10,  # the package's own __init__ imports nothing
}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, dotted in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join([dotted] + parts)
            if folder == "lpzero" and len(parts) and parts[0] in ("primitives", "benchmarks"):
                continue
            found[name] = path
    return found


def _layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def _imports(name: str, path: Path) -> list[tuple[str, bool]]:
    """(imported lpzero module, inside a function?) of one module."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, inner) for a in child.names if a.name.split(".")[0] == "lpzero")
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[: len(base) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                if target.split(".")[0] == "lpzero":
                    out.append((target, inner))
            visit(child, inner)

    visit(tree, False)
    return out


MODULES = _modules()


def test_the_installed_package_is_these_folders():
    assert Path(lpzero.__file__).resolve().parent == ROOT / "lpzero"
    assert "lpzero.primitives.op" in MODULES and "lpzero.benchmarks.base" in MODULES
    assert "lpzero.search.loop" in MODULES and "lpzero.report.search" in MODULES and "lpzero.nas.nsga" in MODULES
    assert "lpzero.workflows.evolve" in MODULES and "lpzero.benchmarks.lts.space" in MODULES


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_down_the_layers(name):
    for target, in_function in _imports(name, MODULES[name]):
        assert _layer(target) <= _layer(name), f"{name} imports {target}, a higher layer"
        if target.startswith("lpzero.benchmarks.") and name.startswith("lpzero.benchmarks"):
            continue  # the benchmark registry loads its model modules on demand (transformers is slow)
        assert not in_function, f"{name} imports {target} inside a function"


def test_no_import_cycle_between_modules():
    graph = {name: {t for t, _ in _imports(name, path) if t in MODULES and t != name}
             for name, path in MODULES.items()}
    # a package's __init__ re-exporting its own modules is not a cycle of logic
    for name in graph:
        graph[name] = {t for t in graph[name] if not (name.startswith(t + ".") and t in MODULES)}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
