"""Writing a report the user named (``predict --output``) without losing the one already there.

A report is written whole to a temporary file beside it, then put in place in one step:
``os.replace`` with ``--overwrite`` (the earlier report stays as it was until the new one is
complete: a full disk or a vanished folder leaves it untouched), a hard link without it (which,
like ``open(..., "x")``, fails when a file of that name appeared meanwhile). Where the file system
has no hard links, the exclusive ``open(..., "x")`` writes it directly.

A FIFO or a device (``--output /dev/stdout --overwrite``) is written to directly. A symbolic
link at the path is replaced through: with ``--overwrite`` its target gets the report
(as writing through the link would), without it the link counts as an existing file, dangling
or not.
"""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from ..hub.safetensors_file import umask_mode


def path_taken(path: Path) -> bool:
    """Whether a file, folder or link (even a dangling one) has this name."""
    return os.path.lexists(path)


def write_report(path: Path, text: str, overwrite: bool) -> None:
    """Write ``text`` to ``path`` in one step (see module docstring).

    Raises:
        FileExistsError: ``path`` exists (or appeared) and ``overwrite`` is False.
        OSError: the report could not be written (full disk, folder gone, ...); ``path`` is unchanged.
    """
    path = Path(path)
    if not overwrite and path_taken(path):
        raise FileExistsError(errno.EEXIST, "file exists", str(path))
    target = Path(os.path.realpath(path)) if overwrite and path.is_symlink() else path
    if overwrite and target.exists() and not target.is_file():  # a FIFO, /dev/stdout's terminal: no file to replace
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if hasattr(os, "fchmod"):  # mkstemp's 0600 would make the report private
            os.fchmod(fd, umask_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)  # fails with FileExistsError if the name was taken meanwhile
        except FileExistsError:
            raise
        except OSError:  # no hard links here (some network or FUSE file systems)
            with open(target, "x", encoding="utf-8") as f:
                f.write(text)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
