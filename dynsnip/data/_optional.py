"""Import the optional ``video`` extra (PyAV, dlib, numpy, Pillow) with an install hint."""
from __future__ import annotations

import importlib
from types import ModuleType

# import name -> the distribution that provides it
_DISTRIBUTIONS = {"av": "av", "dlib": "dlib-bin", "numpy": "numpy", "PIL": "pillow"}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise an ImportError that says how to install it.

    Args:
        module: the import name (``av``, ``dlib``, ``numpy``, ``PIL.Image``, ...).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        dist = _DISTRIBUTIONS.get(module.split(".")[0], module)
        raise ImportError(
            f"dynsnip's video pipeline needs the '{dist}' package, which is not installed "
            f"({err}). Install the video extra: pip install 'dynsnip[video]'"
        ) from err
