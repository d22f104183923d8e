"""Import the optional ``explain`` extra (grad-cam, matplotlib) with an install hint."""
from __future__ import annotations

import importlib
from types import ModuleType

# import name -> the distribution that provides it
_DISTRIBUTIONS = {
    "pytorch_grad_cam": "grad-cam",
    "matplotlib": "matplotlib",
    "numpy": "numpy",
    "PIL": "pillow",
}


def require(module: str) -> ModuleType:
    """Import ``module`` or raise an ImportError that says how to install it.

    Args:
        module: the import name (``pytorch_grad_cam``, ``matplotlib.pyplot``, ...).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        dist = _DISTRIBUTIONS.get(module.split(".")[0], module)
        raise ImportError(
            f"dynsnip's explanations need the '{dist}' package, which is not installed "
            f"({err}). Install the explain extra: pip install 'dynsnip[explain]'"
        ) from err
