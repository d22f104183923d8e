"""Read out the attention maps the paper visualises, from a normal forward.

``IntraSIM.attention``: Intra-SMA map (Figure 4), ``(N*U, T, H, W)`` per SIM.
``InterSIM.attention``: the U x T map ``F̄_1 ⊙ F̄_2`` (Figure 5), ``(N, U, T)`` per SIM.

Recording is off by default (an Intra-SMA map is as large as a feature map)::

    with dynsnip.record_attention(model) as maps:
        logits = model(clip)
    maps["layer1.0.sim"]   # tensor, filled after the forward
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
import torch.nn as nn

from .modules import InterSIM, IntraSIM


class AttentionMaps(dict):
    """``{module name: map}`` for every SIM, filled when the ``with`` block exits."""

    def intra(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.items() if v.ndim == 4}

    def inter(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.items() if v.ndim == 3}


@contextmanager
def record_attention(model: nn.Module) -> Iterator[AttentionMaps]:
    """Make every SIM of ``model`` keep its attention map during the ``with`` block."""
    sims = {n: m for n, m in model.named_modules() if isinstance(m, (IntraSIM, InterSIM))}
    if not sims:
        raise ValueError(f"{type(model).__name__} has no IntraSIM/InterSIM modules to record")
    maps = AttentionMaps()
    # Nested blocks: an outer block keeps recording after an inner one exits, and its maps
    # are those of the last forward, which may have run inside the inner block.
    outer = {n: m.record_attention for n, m in sims.items()}
    before = {n: m.attention for n, m in sims.items()}
    for n, m in sims.items():
        m.record_attention = True
        if not outer[n]:
            m.attention = None
    try:
        yield maps
    finally:
        for n, m in sims.items():
            if m.attention is not None and m.attention is not before[n]:
                maps[n] = m.attention
            m.record_attention = outer[n]
            if not outer[n]:
                m.attention = None
