"""Long lists of state-dict keys in error messages: the first few, then how many in all.

A ResNet-50 detector has 400+ tensors; an error that lists every missing key runs to
10,000 characters and hides what went wrong. Every message that names keys uses
:func:`preview_keys`.
"""
from __future__ import annotations

from typing import Sequence

__all__ = ["preview_keys", "PREVIEW_KEYS"]

PREVIEW_KEYS = 5
"""Keys shown before the count: enough to see a pattern (``fc.*``, ``layer3.*.sim.*``)."""


def preview_keys(keys: Sequence[str], n: int = PREVIEW_KEYS) -> str:
    """``"a, b, c, d, e, ... (412 in all)"``; the whole list when it has ``n`` keys or fewer."""
    keys = list(keys)
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")
