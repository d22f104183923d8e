"""Import the optional ``explain`` extra (grad-cam, matplotlib) with an install hint."""
from __future__ import annotations

from types import ModuleType

from ..optional_deps import require as _require


def require(module: str) -> ModuleType:
    """Import ``module`` or raise an ImportError saying ``pip install 'dynsnip[explain]'``."""
    return _require(module, "explain")
