"""Insert Intra-SI and Inter-SI blocks into a timm ResNet (paper "Instantiation").

A SIM sits "right before the spatial convolution in each resnet block": in a
:class:`~timm.models.resnet.Bottleneck` between ``act1`` and the 3x3 ``conv2``; in a
:class:`~timm.models.resnet.BasicBlock` before its first 3x3 conv, inside the residual
branch (the shortcut carries the block input). Within each converted stage the blocks
alternate Intra-SI, Inter-SI, Intra-SI, ... (Intra first, Figure 2).

The SIM is added as a child named ``sim`` and the block's class becomes the matching
``SI*`` subclass, whose ``forward`` is timm's with the SIM inserted; no existing module is
renamed or wrapped, so every state-dict key of the backbone keeps its name and 2D
checkpoints load unchanged.

This file knows blocks and SIMs only; the model family (:mod:`dynsnip.models.dil_resnet`)
uses it, both to build ``dil_*`` models and in :func:`dynsnip.convert_resnet`, which turns
a whole ResNet into a :class:`~dynsnip.DILResNet`.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import torch
import torch.nn as nn
from timm.models.resnet import BasicBlock, Bottleneck, ResNet

from .modules import InterSIM, IntraSIM

PATTERNS = ("alternate", "intra", "inter")


class SIBlock:
    """Marker for blocks that carry a SIM and take ``num_snippets``."""

    sim: nn.Module

    def residual_tail(self, x: torch.Tensor, shortcut: torch.Tensor, act: nn.Module) -> torch.Tensor:
        """timm's block ending: SE, drop path, the (downsampled) shortcut added, activation."""
        if self.se is not None:
            x = self.se(x)
        if self.drop_path is not None:
            x = self.drop_path(x)
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        x += shortcut  # in place, as timm's blocks do
        return act(x)


class SIBottleneck(Bottleneck, SIBlock):
    """timm's Bottleneck with a SIM right before its 3x3 ``conv2``."""

    def forward(self, x: torch.Tensor, num_snippets: int | None = None) -> torch.Tensor:
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.sim(x, num_snippets=num_snippets)
        x = self.conv2(x)
        x = self.bn2(x)
        x = self.drop_block(x)
        x = self.act2(x)
        x = self.aa(x)
        x = self.conv3(x)
        x = self.bn3(x)
        return self.residual_tail(x, shortcut, self.act3)


class SIBasicBlock(BasicBlock, SIBlock):
    """timm's BasicBlock with a SIM right before its first 3x3 conv (in the residual branch)."""

    def forward(self, x: torch.Tensor, num_snippets: int | None = None) -> torch.Tensor:
        shortcut = x
        x = self.sim(x, num_snippets=num_snippets)
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.drop_block(x)
        x = self.act1(x)
        x = self.aa(x)
        x = self.conv2(x)
        x = self.bn2(x)
        return self.residual_tail(x, shortcut, self.act2)


SI_CLASSES: dict[type, type] = {Bottleneck: SIBottleneck, BasicBlock: SIBasicBlock}


def sim_channels(block: nn.Module) -> int:
    """Channels at the point where the SIM goes: the input of the block's first 3x3 conv."""
    if isinstance(block, Bottleneck):
        return block.conv2.in_channels
    return block.conv1.in_channels


def sim_kind(index: int, pattern: str) -> str:
    """``"intra"`` or ``"inter"`` for the ``index``-th block of a converted stage."""
    if pattern == "alternate":
        return "intra" if index % 2 == 0 else "inter"
    return pattern


def check_convertible(model: nn.Module) -> None:
    """Raise a TypeError naming what is not supported, or return when ``model`` converts."""
    supported = "timm ResNet models built from BasicBlock/Bottleneck (resnet*, resnext*, wide_resnet*, seresnet*, ecaresnet*, ...)"
    if isinstance(model, SIBlock) or any(isinstance(m, SIBlock) for m in model.modules()):
        raise TypeError(f"{type(model).__name__} already has SIMs: it was converted before")
    if not isinstance(model, ResNet):
        raise TypeError(
            f"convert_resnet cannot convert {type(model).__module__}.{type(model).__name__}: "
            f"supported are {supported}"
        )
    for stage in ("layer1", "layer2", "layer3", "layer4"):
        for i, block in enumerate(getattr(model, stage)):
            if type(block) not in SI_CLASSES:
                raise TypeError(
                    f"convert_resnet cannot convert {type(model).__name__} with "
                    f"{type(block).__module__}.{type(block).__name__} blocks ({stage}.{i}): "
                    f"supported are {supported}; res2net, resnest and sknet blocks are not"
                )


def sim_stage_tuple(stages: Iterable[int]) -> tuple[int, ...]:
    """``stages`` (the stages that get SIMs: any iterable, a generator included) as a tuple of
    distinct stage numbers from 1 to 4, in the given order.

    Raises:
        ValueError: not an iterable of whole numbers, a number outside 1-4, or a stage named twice.
    """
    if isinstance(stages, (str, bytes)) or not isinstance(stages, Iterable):
        raise ValueError(f"sim stages = {stages!r}: expected a list of stage numbers from 1 to 4, e.g. [1, 2, 3, 4]")
    stages = tuple(stages)
    for s in stages:
        if isinstance(s, bool) or not hasattr(s, "__index__") or not 1 <= int(s) <= 4:
            raise ValueError(f"sim stages = {list(stages)}: {s!r} is not a stage; expected whole numbers from 1 to 4")
    numbers = tuple(int(s) for s in stages)
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"sim stages = {list(numbers)}: a stage is named twice; expected each of 1-4 at most once")
    return numbers


def insert_sims(
    model: ResNet,
    snippet_len: int = 4,
    stages: Iterable[int] = (1, 2, 3, 4),
    pattern: str = "alternate",
    intra_args: Mapping[str, Any] | None = None,
    inter_args: Mapping[str, Any] | None = None,
) -> ResNet:
    """Add a SIM to every block of the given stages, in place. See :func:`dynsnip.convert_resnet`."""
    stages = sim_stage_tuple(stages)
    if pattern not in PATTERNS:
        raise ValueError(f"pattern must be one of {PATTERNS}, got {pattern!r}")
    check_convertible(model)
    for s in stages:
        for i, block in enumerate(getattr(model, f"layer{s}")):
            channels = sim_channels(block)
            ref = next(block.parameters())
            if sim_kind(i, pattern) == "intra":
                sim = IntraSIM(channels, snippet_len, **dict(intra_args or {}))
            else:
                sim = InterSIM(channels, snippet_len, **dict(inter_args or {}))
            block.add_module("sim", sim.to(device=ref.device, dtype=ref.dtype))
            block.__class__ = SI_CLASSES[type(block)]
    return model
