"""Write a ``.safetensors`` file with the permissions every other file gets.

``safetensors.torch.save_file`` creates its file with mode 0600 (owner only), whatever the
process's umask: a model folder published on a shared machine (``save_pretrained``, a
training run's ``model/`` and ``checkpoint/``) would then have a ``config.json`` everyone
can read next to weights only its owner can. :func:`save_file` writes the same bytes and
then gives the file the mode ``open()`` would have: ``0666`` less the umask.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import safetensors.torch
import torch

__all__ = ["save_file", "umask_mode"]


def umask_mode() -> int:
    """``0o666`` less the process's umask: the mode of a file created with ``open(path, "w")``."""
    mask = os.umask(0o22)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return 0o666 & ~mask


def save_file(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str],
              metadata: Mapping[str, str] | None = None) -> Path:
    """``safetensors.torch.save_file`` with the umask's permissions instead of 0600."""
    path = Path(path)
    safetensors.torch.save_file(dict(tensors), str(path), metadata=dict(metadata) if metadata else None)
    os.chmod(path, umask_mode())
    return path
