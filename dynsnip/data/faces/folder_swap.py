"""Putting a finished folder in place of an older one in one step, where the system allows it.

``extract-faces --replace-stale`` writes the new face folder as ``<name>.partial`` and then
replaces ``<name>`` with it. Two renames (old folder away, new one in) leave a moment where
``<name>`` does not exist: a process stopped there (Ctrl-C, SIGTERM, a kill) loses the old folder
without the new one in its place. Linux's ``renameat2(..., RENAME_EXCHANGE)`` swaps two paths in
one step, so ``<name>`` is always either the old complete folder or the new complete one, and
the old one is then at the temporary name, to be removed (or, after a kill, an abandoned
``.partial`` that the next run clears). Elsewhere (other systems, file systems that refuse the
flag) :func:`exchange_paths` says so and the caller falls back to the two renames.
"""
from __future__ import annotations

import ctypes
import errno
import os
import sys
from pathlib import Path

__all__ = ["exchange_paths"]

_AT_FDCWD = -100  # relative paths resolve against the working directory, as os.rename's do
_RENAME_EXCHANGE = 2  # <linux/fs.h>
# errors that mean "this system or file system cannot swap", not "these paths are wrong"
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP), errno.EOPNOTSUPP}


def _renameat2():
    """libc's ``renameat2`` with its argument types, or None (not Linux, or a libc without it: glibc < 2.28)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def exchange_paths(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Swap what ``a`` and ``b`` name (two existing folders or files, on one file system) in one step.

    Returns:
        True when swapped; False when this system or file system cannot swap atomically (nothing
        was changed: the caller moves them one at a time instead).

    Raises:
        OSError: the swap was refused for another reason (a path missing, no permission, two file
            systems: ``EXDEV``); nothing was changed.
    """
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(Path(a)), _AT_FDCWD, os.fsencode(Path(b)), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))
