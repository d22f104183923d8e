"""Hugging Face Hub integration: share fine-tuned DIL detectors and load them back.

* :func:`save_pretrained` / :func:`push_to_hub` write ``config.json`` (architecture, every
  DIL option, preprocessing), ``model.safetensors`` and a model card ``README.md``;
* ``timm.create_model("hf-hub:owner/name", pretrained=True)`` (after ``import dynsnip``)
  rebuilds the detector bit-identically; :func:`load_model` does the same, also from a local
  directory or a ``dil_*.<tag>`` ImageNet backbone, and raises :mod:`dynsnip.hub.errors`
  errors that name the repo and file when something is missing or does not fit.
"""
from .errors import (
    CheckpointMismatchError,
    InvalidConfigError,
    ModelFileNotFoundError,
    ModelLoadError,
    NotADILModelError,
    NotCachedError,
    RepoNotFoundError,
)
from .load import load_model
from .save import push_to_hub, save_pretrained

__all__ = [
    "save_pretrained",
    "push_to_hub",
    "load_model",
    "ModelLoadError",
    "RepoNotFoundError",
    "ModelFileNotFoundError",
    "NotCachedError",
    "CheckpointMismatchError",
    "NotADILModelError",
    "InvalidConfigError",
]
