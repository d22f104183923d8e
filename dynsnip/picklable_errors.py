"""Exceptions that cross process boundaries intact.

``dynsnip predict`` and ``extract-faces`` run videos in worker processes and send each video's
failures back to the main process, which reports them beside the other videos' verdicts. Python
pickles an exception as ``type(error)(*error.args)``; an exception whose ``__init__`` takes other
arguments than its message (``VideoError(path, message)``, ``LowFaceCoverageError(path,
coverage, ...)``) cannot be rebuilt that way, and unpickling it raised ``TypeError`` in the main
process: one video's failure crashed the whole batch. :class:`PicklableError` rebuilds the
exception without calling ``__init__``: same class, same message (``args``), same attributes.
"""
from __future__ import annotations

import pickle
from typing import Any

__all__ = ["PicklableError"]


def _rebuild(cls: type[BaseException], args: tuple, state: dict[str, Any]) -> BaseException:
    error = cls.__new__(cls, *args)
    error.args = args
    for name, value in state.items():
        setattr(error, name, value)
    return error


def _picklable(value: Any) -> Any:
    """``value``, or its ``repr`` when it cannot be pickled (an error of another library kept as
    the cause, holding a socket or a lock)."""
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001 - whatever pickling raises, the text still travels
        return repr(value)
    return value


class PicklableError:
    """Mixin (first base) for exceptions with an ``__init__`` of their own: pickled as class,
    ``args`` and attributes (an attribute that cannot be pickled as its ``repr``), and rebuilt
    without calling ``__init__``. ``OSError``'s ``filename`` travels too (it is no ``__dict__``
    entry)."""

    def __reduce__(self) -> tuple:
        state = dict(self.__dict__)
        if isinstance(self, OSError):
            state.update(filename=self.filename, filename2=self.filename2)
        return _rebuild, (type(self), self.args, {k: _picklable(v) for k, v in state.items()})
