"""Import the optional ``video`` extra (PyAV, dlib, numpy, Pillow) with an install hint."""
from __future__ import annotations

from types import ModuleType

from ..optional_deps import require as _require


def require(module: str) -> ModuleType:
    """Import ``module`` or raise an ImportError saying ``pip install 'dynsnip[video]'``."""
    return _require(module, "video")
