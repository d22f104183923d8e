"""Errors :func:`dynsnip.load_model` raises instead of huggingface_hub's / timm's internals.

Each names what could not be loaded (the Hub repo or local directory, and the file) and
says what to do. They subclass the matching builtin (``FileNotFoundError``,
``ValueError``) so that existing ``except`` clauses keep working; the low-level error
they replace is kept as ``.original`` (not chained, to keep tracebacks short).
"""
from __future__ import annotations

from ..picklable_errors import PicklableError

__all__ = [
    "ModelLoadError",
    "RepoNotFoundError",
    "ModelFileNotFoundError",
    "NotCachedError",
    "CheckpointMismatchError",
    "NotADILModelError",
    "InvalidConfigError",
]


class ModelLoadError(PicklableError, Exception):
    """A DIL model could not be loaded from the Hub, the cache or a local directory.

    Attributes:
        source: the Hub repo id (``owner/name``) or local directory that was asked for.
        filename: the file that was missing or wrong, when one was.
        original: the huggingface_hub / timm / safetensors error this one explains.
    """

    def __init__(self, message: str, source: str, filename: str | None = None,
                 original: BaseException | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.filename = filename
        self.original = original

    def __str__(self) -> str:  # OSError's would print "[Errno None] None: '<filename>'"
        return self.message


class RepoNotFoundError(ModelLoadError, FileNotFoundError):
    """The Hub has no such repo (or revision), or it is private/gated and the token cannot read it."""


class ModelFileNotFoundError(ModelLoadError, FileNotFoundError):
    """The repo or directory exists but lacks a file the model needs (``config.json``, ``model.safetensors``)."""


class NotCachedError(ModelLoadError, FileNotFoundError):
    """A file is not in the local cache and the Hub cannot be asked (``HF_HUB_OFFLINE=1`` or no connection)."""


class CheckpointMismatchError(ModelLoadError, ValueError):
    """The weights do not fit the architecture: another network, other DIL options, or a mis-shaped tensor."""


class NotADILModelError(ModelLoadError, ValueError):
    """The name, repo or directory describes a model that is not a ``dil_*`` video network."""


class InvalidConfigError(ModelLoadError, ValueError):
    """``config.json`` holds a value no detector can work with (``num_classes: -1``, ``std: 0``,
    an unknown ``model_args`` key...); the message names the key, the value and what is allowed."""
