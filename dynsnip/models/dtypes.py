"""Which tensor dtypes a checkpoint may bring into a model.

``load_state_dict`` copies a tensor into the model's parameter whatever its dtype: integer or
bool tensors of the right shape (a damaged file, a mask saved in place of weights) load
silently as 0.0 / 1.0 weights and the detector scores nonsense. Every weight-loading route of
dynsnip refuses them with :func:`dtype_mismatches`: ``checkpoint_filter_fn`` behind
:func:`dynsnip.load_model` and timm's pretrained loading, ``dynsnip predict --checkpoint``,
``dynsnip train --checkpoint``, and ``DILResNet.load_state_dict`` itself
(``dynsnip.models.dil_resnet.refuse_unloadable_tensors``), which plain
``model.load_state_dict(sd)``, a training resume and timm's ``create_model(..., checkpoint_path=...)``
go through. One cast stays allowed: a floating-point tensor of another
precision (a float16 / bfloat16 checkpoint into a float32 model and back), the ordinary way
to ship weights, which converts to the nearest value.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

__all__ = ["loads_into", "dtype_mismatches", "DTYPE_RULE"]

DTYPE_RULE = ("a tensor loads only with the model's dtype (a floating-point one in any floating-point "
              "precision); integer or bool values in place of weights are not this model's checkpoint")


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def loads_into(value: Any, target: torch.Tensor) -> bool:
    """Whether ``value`` may be copied into the model tensor ``target``: the same dtype, or both
    floating point. Non-tensors never do."""
    if not isinstance(value, torch.Tensor):
        return False
    return value.dtype == target.dtype or (value.is_floating_point() and target.is_floating_point())


def dtype_mismatches(state: Mapping[str, Any], target: Mapping[str, torch.Tensor]) -> list[str]:
    """``"key: int64 in the file where the model has float32"`` for each tensor of ``state`` that the
    model (``target``, its state dict) has but that does not load into it (:func:`loads_into`)."""
    out = []
    for key, value in state.items():
        if key in target and not loads_into(value, target[key]):
            got = _name(value.dtype) if isinstance(value, torch.Tensor) else type(value).__name__
            out.append(f"{key}: {got} in the file where the model has {_name(target[key].dtype)}")
    return out
