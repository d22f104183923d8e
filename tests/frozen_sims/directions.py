"""Forward and backward difference paths: one set of weights per direction, or one shared set.

Figure 2 draws the two directions of the motion attentions as two paths, each with its own
convs, that meet (are averaged / summed) only right before the 1x1 recovery conv. That is the
default of :class:`~dynsnip.IntraSMA` and :class:`~dynsnip.InterSMA`
(``share_directions=False``): the forward path keeps the module's plain names
(``diff_conv``, ``ht_conv``, ``tw_conv``; ``frame_conv``), the backward path the same names
with ``_backward`` appended.

With ``share_directions=True`` both directions use the plain-named convs. Everything before
the sigmoid is then linear, so the two directions collapse to one difference against the
averaged neighbours: a cheaper variant, and the only layout of dynsnip 0.1.0.

Checkpoints saved with shared weights (every dynsnip 0.1.0 model) load into the per-direction
layout exactly: when *all* ``*_backward`` tensors of a module are absent and its forward
tensors are present, the forward tensors are copied into the backward path. Per-direction
weights that are equal compute exactly what the shared module computed, so such a model
gives the same outputs as before (tested); fine-tuning it then unties the directions.
"""
from __future__ import annotations

from typing import Any, MutableMapping

import torch
import torch.nn as nn

BACKWARD = "_backward"


class DirectionPaths(nn.Module):
    """Base of the motion attentions: names the per-direction convs and loads shared checkpoints.

    Subclasses set ``self.path_convs`` to the names of the convs that exist once per direction
    and ``self.untied`` to whether the backward copies (``<name>_backward``) exist.
    """

    path_convs: tuple[str, ...] = ()
    untied: bool = False

    def path(self, name: str, offset: int) -> nn.Module:
        """The conv ``name`` of the path looking at neighbour ``offset`` (+1 forward, -1 backward)."""
        return getattr(self, name + BACKWARD) if self.untied and offset < 0 else getattr(self, name)

    def shared_to_untied(self, state_dict: MutableMapping[str, Any], prefix: str) -> bool:
        """Copy this module's forward tensors into the missing backward ones, in ``state_dict``.

        Only when every backward tensor is missing and every forward one is present (a
        checkpoint saved with ``share_directions=True`` or by dynsnip 0.1.0). Returns whether
        it did.
        """
        if not self.untied:
            return False
        pairs = []
        for name in self.path_convs:
            for suffix, _ in getattr(self, name).named_parameters():
                pairs.append((f"{prefix}{name}.{suffix}", f"{prefix}{name}{BACKWARD}.{suffix}"))
        if any(b in state_dict for _, b in pairs) or not all(f in state_dict for f, _ in pairs):
            return False
        for f, b in pairs:
            state_dict[b] = state_dict[f].clone() if isinstance(state_dict[f], torch.Tensor) else state_dict[f]
        return True

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        self.shared_to_untied(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def untie_shared_checkpoint(state_dict: MutableMapping[str, Any], model: nn.Module) -> list[str]:
    """Apply :meth:`DirectionPaths.shared_to_untied` to every motion attention of ``model``.

    For code that matches a state dict against ``model.state_dict()`` before loading it
    (``checkpoint_filter_fn``). Returns the names of the modules whose backward path was filled.
    """
    return [name for name, m in model.named_modules()
            if isinstance(m, DirectionPaths) and m.shared_to_untied(state_dict, f"{name}." if name else "")]
