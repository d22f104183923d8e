"""Write a ``.safetensors`` file with the permissions every other file gets.

``safetensors.torch.save_file`` creates its file with mode 0600 (owner only), whatever the
process's umask: a model folder published on a shared machine (``save_pretrained``, a
training run's ``model/`` and ``checkpoint/``) would then have a ``config.json`` everyone
can read next to weights only its owner can. :func:`save_file` writes the same bytes and
then gives the file the mode ``open()`` would have: ``0666`` less the umask. The bytes are
flushed to disk (``fsync``) before it returns: a file (or folder) renamed into place afterwards
is complete after a power loss, not empty (training checkpoints rely on it).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import safetensors.torch
import torch

__all__ = ["save_file", "umask_mode", "current_umask"]


def current_umask() -> int:
    """The process's umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def umask_mode() -> int:
    """``0o666`` less the process's umask: the mode of a file created with ``open(path, "w")``."""
    return 0o666 & ~current_umask()


def save_file(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike[str],
              metadata: Mapping[str, str] | None = None) -> Path:
    """``safetensors.torch.save_file`` with the umask's permissions instead of 0600, and the same
    bytes for the same tensors and metadata (:func:`_canonical`): a file's SHA-256 checks a rerun.
    The file is on disk (``fsync``) when this returns."""
    path = Path(path)
    data = _canonical(safetensors.torch.save(dict(tensors), metadata=dict(metadata) if metadata else None))
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, umask_mode())
    return path


def _canonical(data: bytes) -> bytes:
    """``data`` (a safetensors file) with its JSON header's keys sorted. The safetensors library writes
    the metadata from a hash map, in an order that changes from call to call, so two saves of the same
    weights differed in their bytes; the tensors' offsets are explicit, so the order is free."""
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    if isinstance(header.get("__metadata__"), dict):
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(dict(sorted(header.items())), separators=(",", ":")).encode("utf-8")
    if len(text) > length:  # not the library's compact JSON: keep its bytes
        return data
    return data[:8] + text.ljust(length, b" ") + data[8 + length:]
