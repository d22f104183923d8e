"""The project's scripts (``benchmarks/``, ``examples/``, ``tools/``) as modules, for tests: they are
files run by path, not a package, so a test loads them from their file."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_script(path: str | Path, name: str | None = None, *, beside_on_path: bool = False) -> ModuleType:
    """The module of the file ``path`` (relative to the repository root, or absolute), named ``name``
    (default: the file's stem). ``beside_on_path``: its folder is on ``sys.path`` while it loads (a
    script that imports the scripts beside it)."""
    file = Path(path) if Path(path).is_absolute() else ROOT / path
    spec = importlib.util.spec_from_file_location(name or file.stem, file)
    module = importlib.util.module_from_spec(spec)
    if beside_on_path:
        sys.path.insert(0, str(file.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        if beside_on_path:
            sys.path.remove(str(file.parent))
    return module
