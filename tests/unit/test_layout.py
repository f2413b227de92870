"""The package's shape stays as docs/architecture.md draws it.

Layers and the independence of command modules are import-linter contracts (pyproject.toml,
run by test_tooling.py); these tests add what a contract cannot say: no import cycle between
any two modules, no module or function grown past what a reader takes in at once, no private
name reached into from another module, and unit tests that mirror the package.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "ledger"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60
LONG_OK = "# long function:"  # on the def line, followed by why


def _modules() -> Iterator[tuple[str, Path, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        yield name, path, ast.parse(path.read_text(encoding="utf-8"))


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_cycles() -> None:
    graph = grimp.build_graph("ledger", exclude_type_checking_imports=True)
    assert len(graph.modules) > 40
    assert _cycles(graph) == []


def test_modules_and_functions_stay_readable() -> None:
    too_long = []
    for name, path, tree in _modules():
        lines = path.read_text(encoding="utf-8").count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{name}: {lines} lines (max {MAX_MODULE_LINES})")
        source = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                def_line = source[node.lineno - 1]
                if length > MAX_FUNCTION_LINES and LONG_OK not in def_line:
                    too_long.append(f"{name}.{node.name}: {length} lines (max {MAX_FUNCTION_LINES}, "
                                    f"or say why with '{LONG_OK} ...' on its def line)")
    assert too_long == []


def test_no_private_name_is_used_across_modules() -> None:
    """`from ledger.x import _y` and `module._y` reach into another module's internals."""
    ledger_modules = {name for name, _, _ in _modules()}
    found = []
    for name, _, tree in _modules():
        aliases: set[str] = set()  # local names bound to ledger modules
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ledger"):
                for a in node.names:
                    if a.name.startswith("_") and not a.name.startswith("__"):
                        found.append(f"{name}: from {node.module} import {a.name}")
                    if f"{node.module}.{a.name}" in ledger_modules:
                        aliases.add(a.asname or a.name)
            elif isinstance(node, ast.Import):
                aliases |= {a.asname or a.name for a in node.names if a.name.startswith("ledger")}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                found.append(f"{name}: {node.value.id}.{node.attr}")
    assert found == []


def test_unit_tests_mirror_the_package() -> None:
    """Every test file under tests/unit sits in the folder of the package it tests."""
    unit = ROOT / "tests" / "unit"
    packages = {p.relative_to(PACKAGE) for p in PACKAGE.rglob("*") if p.is_dir() and p.name != "__pycache__"}
    for folder in {p.parent.relative_to(unit) for p in unit.rglob("test_*.py")}:
        assert folder == Path(".") or folder in packages, f"tests/unit/{folder} mirrors no package"
