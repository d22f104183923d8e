"""Import the optional ``video`` extra (PyAV, dlib, numpy, Pillow) with an install hint."""
from __future__ import annotations

from types import ModuleType

from ..optional_deps import require as _require


def require(module: str) -> ModuleType:
    """Import ``module`` or raise an ImportError saying ``pip install 'dynsnip[video]'``."""
    return _require(module, "video")


def require_video_decoding() -> None:
    """Raise the install hint now, before a command starts, if videos cannot be decoded (PyAV,
    numpy, Pillow): the decoder imports PyAV only when it opens a file, and a missing extra must
    be one usage error, not a failure of every video."""
    for module in ("av", "numpy", "PIL"):
        require(module)
