"""SIGTERM stops a command as Ctrl-C does, and a second signal does not cut the report of what was finished.

A scheduler's stop (Slurm, Kubernetes, ``docker stop``, ``torchrun``'s agent) sends SIGTERM, whose
default action ends the process at once: everything scored in memory was lost. While
:class:`StopSignals` is active (in the main thread), SIGTERM raises :class:`KeyboardInterrupt`
there, as Ctrl-C (SIGINT) does, so the command's interrupt handling keeps what was finished.

The first signal raises; the ones after it (``torchrun``'s agent forwards the terminal's Ctrl-C to
its workers a second time, then sends SIGKILL after a grace period) are noted, not raised, so the
partial report being written is not cut in its turn; a third one acts as it did before
:class:`StopSignals` (Ctrl-C raises, SIGTERM ends the process). After :meth:`StopSignals.shield`
(the work is done, the report is being written) no signal raises until the context ends.
Exit codes: 130 (128 + SIGINT) after Ctrl-C, 143 (128 + SIGTERM) after SIGTERM, as shells report a
process ended by those signals.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from .exit_codes import EXIT_INTERRUPTED

__all__ = ["StopSignals", "EXIT_TERMINATED", "exit_code", "signal_name"]

EXIT_TERMINATED = 128 + int(signal.SIGTERM)  # 143


def exit_code(signum: int | None) -> int:
    """The exit code of a command stopped by ``signum`` (None: a KeyboardInterrupt not from a signal, Ctrl-C)."""
    return EXIT_TERMINATED if signum == signal.SIGTERM else EXIT_INTERRUPTED


def signal_name(signum: int | None) -> str:
    """``Ctrl-C`` or ``SIGTERM``: what stopped the command, as its messages say it."""
    return "SIGTERM" if signum == signal.SIGTERM else "Ctrl-C"


class StopSignals:
    """Context manager: SIGINT and SIGTERM raise :class:`KeyboardInterrupt` in the main thread, the
    first one only (module docstring); the handlers before it are restored on exit.

    ``received`` is the first signal's number (None: none came). A handler another program
    installed (or a signal it ignores, as ``nohup`` ignores SIGHUP) is left alone: only Python's
    default SIGINT handler and SIGTERM's default action are replaced. Outside the main thread
    (where Python cannot set handlers) it does nothing.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.later = 0  # signals after the first: noted, not raised
        self._shielded = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
            if signal.getsignal(signum) is default:
                self._previous[signum] = default
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None and not self._shielded:
            self.received = signum
            self._shielded = True
            raise KeyboardInterrupt
        self.received = self.received or signum
        self.later += 1
        if self.later >= 2:  # asked three times: the next one acts as before (ends the process)
            self._restore()

    def shield(self) -> None:
        """From now on a signal is noted (``received``), never raised: the work is done, and the report
        being written must not be cut."""
        self._shielded = True

    @property
    def exit_code(self) -> int:
        """130 (Ctrl-C) or 143 (SIGTERM)."""
        return exit_code(self.received)

    @property
    def name(self) -> str:
        """``Ctrl-C`` or ``SIGTERM``."""
        return signal_name(self.received)
