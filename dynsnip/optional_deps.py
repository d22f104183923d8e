"""Import a package of an optional extra, or say which extra installs it."""
from __future__ import annotations

import importlib
from types import ModuleType

# import name -> the distribution that provides it
DISTRIBUTIONS = {
    "av": "av",
    "dlib": "dlib-bin",
    "numpy": "numpy",
    "PIL": "pillow",
    "pytorch_grad_cam": "grad-cam",
    "matplotlib": "matplotlib",
}

# extra -> what it is for, in the error message
PURPOSES = {"video": "dynsnip's video pipeline", "explain": "dynsnip's explanation pictures"}


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` (``av``, ``PIL.Image``, ``matplotlib``, ...) or raise an ImportError
    that names the missing distribution and ``pip install 'dynsnip[<extra>]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        dist = DISTRIBUTIONS.get(module.split(".")[0], module)
        raise ImportError(
            f"{PURPOSES.get(extra, 'dynsnip')} needs the '{dist}' package, which is not installed "
            f"({err}). Install the {extra} extra: pip install 'dynsnip[{extra}]'"
        ) from err
