"""Weights composed from a module's parameters, rebuilt only when a parameter may have changed.

The SIMs' fast path runs each of its steps as one convolution whose weight is put together
from the paper's convs (both directions of Eq. 1 in one depthwise Conv3d, both planes and both
directions of Eq. 2-3 in one Conv3d, ...). Putting the weight together costs a few small ops;
in eager eval-mode inference (no autograd, not compiling) it is done once and kept, keyed on
every parameter's and buffer's identity (the tensor object itself, held by a weak reference: a
new tensor at a freed one's address is a new key), storage, version counter, dtype and device,
on a count of optimizer steps, and on the module's own non-tensor settings that the weights
fold in (a BatchNorm's ``eps``). What drops the kept weights:

* any ``torch.optim.Optimizer`` step (a global step hook): fused optimizers
  (``Adam(W)(fused=True)``, ``SGD(fused=True)``) write the parameters without bumping their
  version counters;
* any eager forward in training mode or with autograd on (:meth:`ComposedWeights.forward_started`,
  called by the SIMs whichever path the forward takes): training is what changes the weights.
  Those forwards, and those under ``torch.compile``, compose the weights themselves. Training mode
  is that of the module *or any of its submodules* (:func:`training_anywhere`): a BatchNorm
  switched back to ``train()`` inside an eval-mode SIM (AdaBN, test-time BN recalibration)
  normalises with, and updates, its batch statistics, which weights composed from its running
  statistics would skip;
* ``train()`` / ``eval()``, ``load_state_dict`` and ``.to()`` / ``.half()`` / ``_apply`` on the
  module (:meth:`ComposedWeights.clear`, called by the SIMs: the kept weights hold views of the
  parameters, which PyTorch's swap-tensors conversion refuses to swap);
* an in-place change that bumps the version counter: ``copy_`` or ``mul_`` under ``no_grad``,
  foreach optimizers, ``.to()`` (new storage).

A write through ``.data`` (PyTorch gives ``.data`` a version counter of its own), or by a fused
kernel called outside an optimizer's ``step``, that none of the above follows is not seen: call
:func:`clear_composed_weights` (or the module's ``_composed.clear()``) after one.

A content check (comparing the parameters with a copy) would catch every write, but costs a
device synchronisation per module and forward on a GPU: more than composing the weights.
"""
from __future__ import annotations

import itertools
import weakref
from typing import Any, Callable

import torch
import torch.nn as nn
from torch.optim.optimizer import register_optimizer_step_post_hook

# optimizer steps taken in this process (any optimizer): part of every key, so a step, fused or
# not, makes every kept weight stale. A one-element list: the hook mutates it in place.
_OPTIMIZER_STEPS = [0]


@torch.compiler.disable
def _count_optimizer_step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
    # disabled for the compiler: a compiled optimizer step would otherwise guard on the count
    # (an int) and recompile at every step
    _OPTIMIZER_STEPS[0] += 1


register_optimizer_step_post_hook(_count_optimizer_step)


def training_anywhere(module: nn.Module) -> bool:
    """Whether ``module`` or any of its submodules is in training mode: its eval-mode weights
    (a BatchNorm folded into a conv) then do not compute what its layers compute."""
    return any(m.training for m in module.modules())


class ComposedWeights:
    """A one-entry cache of ``build()``'s result for ``module``'s current parameters."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._value: Any = None
        self._refs: list[weakref.ref] = []  # the keyed tensors themselves (weakly: the cache keeps none alive)

    def get(self, module: nn.Module, build: Callable[[], dict[str, Any]], *extra: Any) -> dict[str, Any]:
        """``build()``, or the dict it returned last time for the same parameters.

        Kept only in eval mode (``module`` and every submodule) with autograd off, eagerly (see the module docstring for what
        drops it). Under bf16 autocast the kept floating-point tensors are kept in bfloat16, so
        that the convolutions do not cast their weights on every call (fp16 autocast: left to
        autocast, as the float32 region of the differences needs the float32 weights).
        """
        if torch.compiler.is_compiling():
            return build()
        if torch.is_grad_enabled() or training_anywhere(module):  # training: the step that follows changes the weights
            self.clear()
            return build()
        tensors = list(itertools.chain(module.parameters(), module.buffers()))
        device = tensors[0].device.type if tensors else "cpu"
        cast = torch.bfloat16 if torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.bfloat16 \
            else None
        try:
            key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in tensors) + (
                _OPTIMIZER_STEPS[0], cast, *extra)
        except RuntimeError:  # inference tensors have no version counter: nothing to key on
            return build()
        # the same tensors, not only the same addresses: a tensor freed and another allocated at its address
        # (torch.func.functional_call with new weights each call) has the same data_ptr and version 0
        if key != self._key or any(ref() is not t for ref, t in zip(self._refs, tensors)):
            value = build()
            if cast is not None:
                value = {k: v.to(cast) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in value.items()}
            self._value, self._key, self._refs = value, key, [weakref.ref(t) for t in tensors]
        return self._value

    def forward_started(self, module: nn.Module) -> None:
        """Called at the start of every forward of ``module``: one that trains (training mode of
        ``module`` or a submodule, or autograd on, eagerly) drops the kept weights, whichever path it takes."""
        if not torch.compiler.is_compiling() and (torch.is_grad_enabled() or training_anywhere(module)):
            self.clear()

    def clear(self) -> None:
        self._key = self._value = None
        self._refs = []

    def __getstate__(self) -> dict:  # pickling / deepcopy: start empty
        return {"_key": None, "_value": None, "_refs": []}


def clear_composed_weights(model: nn.Module) -> None:
    """Drop the composed weights every SIM of ``model`` keeps, e.g. after writing into its
    parameters through ``.data`` (which no version counter records)."""
    for m in model.modules():
        kept = getattr(m, "_composed", None)
        if isinstance(kept, ComposedWeights):
            kept.clear()
