"""The pure modules stay pure (STYLE convention 1): no ``async``/``await``, no I/O libraries,
no imports of the watcher's I/O modules. A decision that needs a server to test is in the
wrong module; this keeps it from creeping in."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "src" / "lss_watcher"
PURE = [
    "resources",
    "views",
    "mapping",
    "hints",
    "tracker",
    "status",
    "rounds",
    "settings",
    "metrics",
]
FORBIDDEN = (
    "aiohttp",
    "asyncio",
    "nats",
    "kubernetes_asyncio",
    "lss_common.bus",
    "lss_common.kube",
    "lss_common.runtime",
    "lss_watcher.watching",
    "lss_watcher.publishing",
    "lss_watcher.watcher",
    "lss_watcher.service",
    "lss_watcher.testing",
)


def imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("module", PURE)
def test_module_is_pure(module: str) -> None:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    assert ast.get_docstring(tree), f"{module} needs a docstring giving its one job"
    bad = sorted(
        name
        for name in imported(tree)
        if any(name == f or name.startswith(f"{f}.") for f in FORBIDDEN)
    )
    assert not bad, f"{module} imports I/O: {bad}"
    assert not [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.AsyncFunctionDef | ast.Await | ast.AsyncFor | ast.AsyncWith)
    ], f"{module} awaits"


def test_every_module_has_a_docstring() -> None:
    for path in PACKAGE.glob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text())), path.name
