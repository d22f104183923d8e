"""State-dict keys: long lists of them in error messages, and the wrapper prefix some files carry.

A ResNet-50 detector has 400+ tensors; an error that lists every missing key runs to
10,000 characters and hides what went wrong. Every message that names keys uses
:func:`preview_keys`.

Weights saved from a model inside ``DistributedDataParallel`` (or ``DataParallel``) name every
tensor ``module.<key>``. Every reader of a weights file (``predict``'s ``--checkpoint``, the
checkpoint filter of ``load_model``, ``build_model``'s look at a file's head) strips it with
:func:`unwrapped_key`, so they all see the same keys.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["preview_keys", "PREVIEW_KEYS", "WRAPPER_PREFIX", "unwrapped_key"]

PREVIEW_KEYS = 5
"""Keys shown before the count: enough to see a pattern (``fc.*``, ``layer3.*.sim.*``)."""


def preview_keys(keys: Sequence[str], n: int = PREVIEW_KEYS) -> str:
    """``"a, b, c, d, e, ... (412 in all)"``; the whole list when it has ``n`` keys or fewer."""
    keys = list(keys)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


WRAPPER_PREFIX = "module."
"""What ``DistributedDataParallel`` / ``DataParallel`` put before each key of the model they wrap."""


def unwrapped_key(key: str) -> str:
    """``key`` as the unwrapped model names it: without one leading :data:`WRAPPER_PREFIX`."""
    return key.removeprefix(WRAPPER_PREFIX)
