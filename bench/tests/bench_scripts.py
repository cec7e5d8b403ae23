"""Load a bench/ script as a module for its unit tests (bench/ holds scripts, not a
package)."""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType

BENCH = pathlib.Path(__file__).resolve().parents[1]


def load(name: str) -> ModuleType:
    """``bench/<name>.py``, imported as ``bench_<name>``."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
