"""Weights composed from a module's parameters, rebuilt only when a parameter changes.

The SIMs' fast path runs each of its steps as one convolution whose weight is put together
from the paper's convs (both directions of Eq. 1 in one depthwise Conv3d, both planes and both
directions of Eq. 2-3 in one Conv3d, ...). Putting the weight together costs a few small ops;
in eager inference (no autograd, not compiling) it is done once and kept, keyed on every
parameter's and buffer's storage, version counter, dtype and device: an optimizer step,
``load_state_dict``, ``copy_`` under ``no_grad`` or ``.to()`` all change that key. Writing into a
parameter through ``.data`` does not (PyTorch gives ``.data`` a version counter of its own):
call :meth:`ComposedWeights.clear` after doing so.

With autograd on (training) and under ``torch.compile`` the weights are composed in every
forward, so that gradients reach the parameters and the compiler sees the whole computation.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable

import torch
import torch.nn as nn


class ComposedWeights:
    """A one-entry cache of ``build()``'s result for ``module``'s current parameters."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: Any = None

    def get(self, module: nn.Module, build: Callable[[], dict[str, Any]], *extra: Any) -> dict[str, Any]:
        """``build()``, or the dict it returned last time for the same parameters.

        Under bf16 autocast the kept floating-point tensors are kept in bfloat16, so that the
        convolutions do not cast their weights on every call (fp16 autocast: left to autocast,
        as the float32 region of the differences needs the float32 weights).
        """
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return build()
        tensors = list(itertools.chain(module.parameters(), module.buffers()))
        device = tensors[0].device.type if tensors else "cpu"
        cast = torch.bfloat16 if torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.bfloat16 \
            else None
        try:
            key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors) + (module.training, cast, *extra)
        except RuntimeError:  # inference tensors have no version counter: nothing to key on
            return build()
        if key != self._key:
            value = build()
            if cast is not None:
                value = {k: v.to(cast) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in value.items()}
            self._value, self._key = value, key
        return self._value

    def clear(self) -> None:
        self._key = self._value = None

    def __getstate__(self) -> dict:  # pickling / deepcopy: start empty
        return {"_key": None, "_value": None}
