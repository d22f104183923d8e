"""One training at a time per run folder: an advisory lock on ``<run>/.dynsnip-train.lock``.

Two ``dynsnip train --out DIR`` at once would both write ``DIR/checkpoint`` and
``DIR/model``; the last writer wins and one of them may die half-way through a checkpoint.
:class:`RunFolderLock` takes an exclusive ``flock`` on a file in the run folder and writes
who holds it (process id, host, start time, command) into that file, so that the second
process is refused with a message naming the first.

The kernel drops a ``flock`` when its process dies (killed, crashed, out of memory), so a
lock file left behind by a dead process is not locked and never blocks a later run: it is
simply taken over. Inside one process the lock is re-entrant (the command line takes it
before building the datasets, :func:`~dynsnip.engine.train.train` again around the loop).
On a platform without ``fcntl`` (Windows) no lock is taken.
"""
from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here
    fcntl = None  # type: ignore[assignment]

from ..picklable_errors import PicklableError

__all__ = ["RunFolderLock", "RunFolderBusyError", "LOCK_NAME"]

LOCK_NAME = ".dynsnip-train.lock"

# resolved lock path -> [open file, count] of the locks this process holds
_HELD: dict[Path, list] = {}


class RunFolderBusyError(PicklableError, RuntimeError):
    """Another live process holds the run folder's lock."""


class RunFolderLock:
    """Context manager: hold the lock of run folder ``out_dir`` (created if needed).

    Raises:
        RunFolderBusyError: another process holds it; the message names that process
            (from the lock file) and the folder.
    """

    def __init__(self, out_dir: str | os.PathLike[str]):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME

    def __enter__(self) -> "RunFolderLock":
        if fcntl is None:
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        key = self.path.resolve()
        if key in _HELD:
            _HELD[key][1] += 1
            return self
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "an unknown process"
            handle.close()
            raise RunFolderBusyError(
                f"{self.out_dir} is in use by another training ({holder}); wait for it to finish, stop it, "
                "or give this run another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        command = " ".join(sys.argv) or "python"
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}: {command}\n")
        handle.flush()
        _HELD[key] = [handle, 1]
        return self

    def __exit__(self, *exc: object) -> None:
        if fcntl is None:
            return
        key = self.path.resolve()
        held = _HELD.get(key)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _HELD[key]
            held[0].truncate(0)
            fcntl.flock(held[0].fileno(), fcntl.LOCK_UN)
            held[0].close()
