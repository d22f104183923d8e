"""Intra-Snippet Inconsistency Module (Intra-SIM), paper Eq. 1-6 and Figure 2.

Tensor layout
-------------
Input and output: ``(N*U*T, C, H, W)``, frames folded into the batch: clips (N) outermost,
then the U snippets of a clip, then the T consecutive frames of a snippet. Only ``T``
(``snippet_len``) must be known; the module never mixes frames of different snippets,
so it works for any N and U.

Two paths compute the same equations (``forward``): the *volume path* views the folded frames
as volumes (a view; channels_last frames are a channels_last_3d volume) and runs each step as
one Conv3d whose weight is put together from the convs below (``composed_weights``; kept
between eager inference calls); the *frame path* (the methods below, frame by frame on views
of the folded batch) is the readable one, and runs the options the volume path does not take.
docs/performance.md ("Issue 24") says what each step became and what it costs.

Equation -> code
----------------
=========  =====================================================  ==========================
Eq.        what                                                   where
=========  =====================================================  ==========================
(6)        split, first half ``I_1`` passes unchanged, concat     ``IntraSIM.forward``
(1)        ``D_{t,t+1} = F_t - Conv3x3(F_{t+1})`` (channel-wise),  ``IntraSMA.differences``
           backward ``D_{t,t-1} = F_t - Conv3x3(F_{t-1})``
(2), (3)   ``Conv1x1(Conv3x3(D^h) + D^h)`` over H x T and T x W    ``IntraSMA.coordinate``,
                                                                  ``IntraSMA.plane``,
                                                                  ``IntraSMA.forward``
avg + σ    mean of forward/backward, sigmoid -> Atten_H, Atten_W  ``IntraSMA.plane``,
                                                                  ``IntraSMA.forward``
(4)        ``K = softmax(φ2 ∘ δ ∘ φ1(GAP(X_2)))``                  ``SnippetKernel.forward``
(5)        ``O_2 = K ⊗ (Atten_H ⊙ Atten_W ⊙ X_2 + X_2)``          ``IntraSIM.forward``,
                                                                  ``gate_tap`` (GPU)
deviation  motion channels: the last ``motion_fraction`` of        ``IntraSMA.motion_channel_values``,
           ``O_2`` is ``Conv1x1(D̄)`` of a compression of its own  ``IntraSIM.forward``
=========  =====================================================  ==========================

Constants the paper leaves open (named arguments, defaults and reasons)
-----------------------------------------------------------------------
* ``reduction=16`` (r): compression of ``C/2`` before the differences; TEA, TDN and STIL
  (same authors) use 16. Floored at 1 channel (stage 1 of ResNet-18 has C/2 = 32 -> 2).
* ``gamma=2``, ``kernel_size=3`` (k): the kernel branch is TANet's, which uses 2 and 3.
* ``diff_kernel_size=3``: Eq. 1 says 3x3 channel-wise.
* ``coord_kernel_size=3``: the "Conv3x3" of Eq. 2-3 over H x T and T x W. The paper does not
  say how it treats the compressed channels: here it is a full conv over them (with bias), like
  the 1x1 recovery convs, while Eq. 1's conv is channel-wise (no bias) because Eq. 1 says so;
  the squeeze convs have no bias (a constant cancels in a difference).
* the backward difference reads as the text writes it, ``D_{t+1,t} = F_{t+1} - Conv3x3(F_t)``
  (Eq. 1 with the frames swapped): the conv is on the neighbour. Figure 2's orange arrows can be
  read with the conv on the later frame instead; the text is followed.
* ``edge="zero"``: a difference at a snippet's first/last frame, whose neighbour lies in
  another snippet, is zero (see :func:`dynsnip.modules.temporal_ops.neighbour_difference`).
* ``share_directions=False``: the forward and backward paths each have their own Eq. 1 conv
  and their own H x T / T x W convs, as Figure 2 draws them (each direction is an arrow path of
  its own colour through 3x3 conv boxes, and has its HT-Conv / TW-Conv pair); the two
  are averaged ("Averaging these features", after Eq. 3) before the one 1x1 recovery conv of
  each plane (Figure 2), which equals averaging after it since that conv is affine.
  ``share_directions=True`` (dynsnip 0.1.0's only layout) uses one set of convs for both
  directions: then everything before the sigmoid is linear and the two directions reduce to
  one difference against the averaged neighbours, ``F_t - Conv3x3(mean(F_{t-1}, F_{t+1}))``.
* ``fp32_differences=True``: under fp16 autocast the difference path (a few compressed
  channels) runs in float32, because ``6e4 - (-6e4)`` overflows fp16. Under bf16 autocast
  (float32's range) and in a model cast with ``.half()`` (no autocast: its weights are fp16)
  it does nothing.
* ``diff_init="identity"``: Eq. 1's channel-wise convs start as the identity, so that
  ``F_t - Conv3x3(F_{t+1})`` is the plain temporal difference from the first step; with
  PyTorch's random initialisation (``"random"``, the paper's "randomly initialized") it is
  mostly the picture at the start, not its change (docs/temporal_sensitivity.md).
* Every other conv and linear layer: PyTorch's default (random) initialisation ("both
  Intra-SIM and Inter-SIM are randomly initialized", Implementation Details).
* ``motion_fraction=0.75`` (a **deviation** from Eq. 5, the one default that departs from an
  equation; 0 is the paper's module): three quarters of ``O_2``'s channels carry the bi-directional
  difference itself, ``Conv1x1(mean_o(G_t - Conv3x3(G_{t+o})))`` with ``G = Conv1x1(X_2)``
  (``motion_source="separate"``, a compression of its own with ``motion_reduction=1``), in
  place of ``K ⊗ (Atten ⊙ X_2 + X_2)``. The gate lets a difference only rescale features that
  also carry the picture, and on sub-pixel geometric jitter the paper's module learns nothing
  in the budget where these channels learn it (docs/temporal_sensitivity.md). Cost: two 1x1
  convs and two depthwise 3x3 convs on ``C/2`` channels.

Ablation switches (Table 5): ``bidirectional`` (BP), ``coord_attention`` (CA; without it
the attention is ``σ(Conv1x1(D))``, one map with no H x T / T x W convs),
``learnable_kernel`` (LK; without it Eq. 5 drops ``K ⊗``). The rows of Tables 4-6 by name:
:func:`dynsnip.paper_config`.
"""
from __future__ import annotations

import contextvars
import math
import warnings
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Iterator, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from .composed_weights import ComposedWeights
from .depthwise_taps import depthwise_taps, depthwise_taps_reference
from .gate_tap import gate_tap, gate_tap_available
from .directions import BACKWARD, DirectionPaths
from .temporal_ops import (compiled_channels_last, cpu_dilation, direction_mask, dynamic_tap_conv, frames_as_snippets,
                           neighbour_count, neighbour_difference, snippets_as_frames, tap_conv_axis)


DIFF_INITS = ("random", "identity")
# the motion channels' default share of O_2 (docs/temporal_sensitivity.md); 0 is the paper's Eq. 5
DEFAULT_MOTION_FRACTION = 0.75
# IntraSMA submodules that exist only with motion channels (names start with these)
MOTION_MODULES = ("own_diff_conv", "motion_squeeze", "motion_diff_conv", "motion_out")
MOTION_SOURCES = ("own", "compressed", "separate")


def _check_frames(x: torch.Tensor, snippet_len: int, module: str, channels: int | None = None) -> None:
    if x.ndim != 4:
        raise ValueError(
            f"{module} expects frames folded as (N*U*T, C, H, W), got a {x.ndim}-d tensor "
            f"of shape {tuple(x.shape)}"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{module} was built for C={channels} channels, got {x.shape[1]} on dim 1 of (N*U*T, C, H, W) "
            f"(shape {tuple(x.shape)})"
        )
    if x.shape[0] % snippet_len:
        raise ValueError(
            f"{module}: {x.shape[0]} frames in the batch are not a multiple of "
            f"snippet_len T={snippet_len} (layout (N*U*T, C, H, W))"
        )


def _check_sizes(module: str, **sizes: Any) -> None:
    """ValueError naming the first constructor size that is not what the module can build:
    ``name=(value, odd)``: a whole number >= 1, and odd when ``odd`` (a kernel centred on its frame)."""
    for name, (value, odd) in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (odd and value % 2 == 0):
            what = "an odd whole number >= 1 (a kernel centred on its position)" if odd else "a whole number >= 1"
            raise ValueError(f"{module}: {name} = {value!r}; expected {what}")


def _float32_region(enabled: bool, x: torch.Tensor):
    """Autocast switched off, so the difference path computes in float32."""
    if not enabled:
        return nullcontext()
    return torch.autocast(device_type=x.device.type, enabled=False)


class IntraSMA(DirectionPaths):
    """Intra-Snippet Motion Attention: bi-directional difference guided coordinate attention.

    ``forward(x2)`` with ``x2`` of shape ``(N*U*T, C2, H, W)`` returns the attention
    ``Atten_H ⊙ Atten_W`` of the same shape, values in (0, 1).

    Each direction has its own Eq. 1 conv and its own H x T / T x W convs (Figure 2 draws a
    path per direction, each with its HT-Conv / TW-Conv pair, that meet before the 1x1
    recovery conv of each plane); ``share_directions=True`` gives both directions the same
    convs (see :mod:`dynsnip.modules.directions`).
    """

    def __init__(
        self,
        channels: int,
        snippet_len: int = 4,
        reduction: int = 16,
        diff_kernel_size: int = 3,
        coord_kernel_size: int = 3,
        bidirectional: bool = True,
        coord_attention: bool = True,
        edge: str = "zero",
        fp32_differences: bool = True,
        share_directions: bool = False,
        motion_shortcut: bool = False,
        motion_fraction: float = DEFAULT_MOTION_FRACTION,
        diff_init: str = "identity",
        motion_source: str = "separate",
        motion_reduction: int = 1,
    ) -> None:
        super().__init__()
        _check_sizes("IntraSMA", channels=(channels, False), snippet_len=(snippet_len, False),
                     reduction=(reduction, False), diff_kernel_size=(diff_kernel_size, True),
                     coord_kernel_size=(coord_kernel_size, True))
        if edge not in ("zero", "frame"):
            raise ValueError(f"edge must be 'zero' or 'frame', got {edge!r}")
        if diff_init not in DIFF_INITS:
            raise ValueError(f"diff_init must be one of {DIFF_INITS}, got {diff_init!r}")
        self.channels = channels
        self.snippet_len = snippet_len
        self.bidirectional = bidirectional
        self.coord_attention = coord_attention
        self.share_directions = share_directions
        self.edge = edge
        self.fp32_differences = fp32_differences
        # +1: forward difference F_t - Conv(F_{t+1}); -1: backward F_t - Conv(F_{t-1})
        self.offsets = (+1, -1) if bidirectional else (+1,)
        self.untied = bidirectional and not share_directions
        hidden = max(1, channels // reduction)
        self.hidden_channels = hidden
        # "compressed by a ratio r" (1x1 conv in Figure 2)
        self.squeeze = nn.Conv2d(channels, hidden, 1, bias=False)
        self.path_convs = ("diff_conv", "ht_conv", "tw_conv") if coord_attention else ("diff_conv",)
        p = coord_kernel_size // 2
        for suffix in ("", BACKWARD) if self.untied else ("",):
            # Eq. 1: channel-wise 3x3 conv applied to the neighbouring frame
            self.add_module("diff_conv" + suffix, _difference_conv(hidden, diff_kernel_size, diff_init))
            if coord_attention:
                # Eq. 2: conv over the H x T plane (W folded into the batch); Eq. 3: over T x W
                self.add_module("ht_conv" + suffix, nn.Conv2d(hidden, hidden, coord_kernel_size, padding=p))
                self.add_module("tw_conv" + suffix, nn.Conv2d(hidden, hidden, coord_kernel_size, padding=p))
        if coord_attention:
            # "Conv1x1 for dimension recovery", one per plane, after the directions meet
            self.recover_h = nn.Conv2d(hidden, channels, 1)
            self.recover_w = nn.Conv2d(hidden, channels, 1)
        else:
            self.recover = nn.Conv2d(hidden, channels, 1)
        # deviation (off by default): the averaged difference also added to X_2, zero at the start
        self.motion = nn.Conv2d(hidden, channels, 1) if motion_shortcut else None
        if self.motion is not None:
            nn.init.zeros_(self.motion.weight)
            nn.init.zeros_(self.motion.bias)
        # deviation (ON by default, 0 turns it off): a fraction of O_2's channels carry the difference itself
        if isinstance(motion_fraction, bool) or not isinstance(motion_fraction, (int, float)) \
                or not 0.0 <= motion_fraction < 1.0:
            raise ValueError(f"motion_fraction must be a number in [0, 1), got {motion_fraction!r}")
        if motion_source not in MOTION_SOURCES:
            raise ValueError(f"motion_source must be one of {MOTION_SOURCES}, got {motion_source!r}")
        if int(motion_reduction) != motion_reduction or motion_reduction < 1:
            raise ValueError(f"motion_reduction must be a whole number >= 1, got {motion_reduction!r}")
        motion_channels = max(1, round(motion_fraction * channels)) if motion_fraction > 0 else 0
        self.motion_channels = motion_channels
        self.motion_source = motion_source
        self.motion_out = None
        if motion_channels and motion_source == "compressed":
            self.motion_out = nn.Conv2d(hidden, motion_channels, 1)
        if motion_channels and motion_source == "separate":
            # a compression of its own (r_m = motion_reduction), Eq. 1 per direction, averaged, 1x1 out
            motion_hidden = max(1, channels // int(motion_reduction))
            self.motion_squeeze = nn.Conv2d(channels, motion_hidden, 1, bias=False)
            for suffix in ("", BACKWARD) if self.untied else ("",):
                self.add_module("motion_diff_conv" + suffix, _difference_conv(motion_hidden, diff_kernel_size, diff_init))
            self.motion_out = nn.Conv2d(motion_hidden, motion_channels, 1)
            self.path_convs = (*self.path_convs, "motion_diff_conv")
        if motion_channels and motion_source == "own":
            # Eq. 1 on the motion channels themselves, uncompressed: the first part gets the forward
            # difference, the rest the backward one (one direction only without bidirectional)
            forward = motion_channels - motion_channels // 2 if bidirectional else motion_channels
            self.own_split = (forward, motion_channels - forward)
            for suffix, n in zip(("", BACKWARD), self.own_split):
                if n:
                    self.add_module("own_diff_conv" + suffix, _difference_conv(n, diff_kernel_size, diff_init))
        self._masks: dict = {}

    def differences(self, f: torch.Tensor) -> list[torch.Tensor]:
        """Eq. 1 for each direction of ``self.offsets``: ``(B*T, c, H, W)`` -> P x ``(B, T, c, H, W)``."""
        fv = f.unflatten(0, (-1, self.snippet_len))  # "(b t) c h w -> b t c h w"
        out = []
        for o in self.offsets:
            gv = self.path("diff_conv", o)(f).unflatten(0, (-1, self.snippet_len))
            out.append(neighbour_difference(fv, gv, o, dim=1, edge=self.edge))  # F_t - Conv(F_{t+o})
        return out

    def own_differences(self, xm: torch.Tensor) -> torch.Tensor:
        """``motion_source="own"``: Eq. 1 on the motion channels ``xm (B*T, m, H, W)`` themselves,
        forward differences on the first ``own_split[0]``, backward on the rest: ``(B*T, m, H, W)``."""
        out = []
        for o, part in zip(self.offsets, torch.split(xm, self.own_split, dim=1)):
            if part.shape[1] == 0:
                continue
            conv = self.own_diff_conv if o == +1 else getattr(self, "own_diff_conv" + BACKWARD)
            fv = part.unflatten(0, (-1, self.snippet_len))
            gv = conv(part).unflatten(0, (-1, self.snippet_len))
            out.append(neighbour_difference(fv, gv, o, dim=1, edge=self.edge).flatten(0, 1))
        return torch.cat(out, dim=1)

    def coordinate(self, d: torch.Tensor, conv: nn.Module, plane: str) -> torch.Tensor:
        """Eq. 2/3 before the 1x1: ``Conv3x3(D^h) + D^h`` on the H x T or T x W plane.

        ``d``: ``(B, T, c, H, W)``; returns ``(B*T, c, H, W)``.
        """
        b, t, c, h, w = d.shape
        if plane == "ht":  # D^h in R^{W x c x H x T}: "b t c h w -> (b w) c h t"
            z = d.permute(0, 4, 2, 3, 1).reshape(b * w, c, h, t)
            z = conv(z) + z
            return z.view(b, w, c, h, t).permute(0, 4, 2, 3, 1).reshape(b * t, c, h, w)
        # D^w in R^{H x c x T x W}: "b t c h w -> (b h) c t w"
        z = d.permute(0, 3, 2, 1, 4).reshape(b * h, c, t, w)
        z = conv(z) + z
        return z.view(b, h, c, t, w).permute(0, 3, 2, 1, 4).reshape(b * t, c, h, w)

    def plane(self, ds: list[torch.Tensor], name: str, plane: str) -> torch.Tensor:
        """The average over directions of Eq. 2/3 before the 1x1, each direction with its own conv.

        Shared convs: everything from Eq. 1 to here is affine and the same for both
        directions, so the differences are averaged first (equal, at half the cost).
        """
        if not self.untied:
            return self.coordinate(_mean(ds), getattr(self, name), plane)
        return _mean([self.coordinate(d, self.path(name, o), plane) for o, d in zip(self.offsets, ds)])

    def attention_and_motion(
        self, x2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(Atten_H ⊙ Atten_W, Conv1x1(mean D), Conv1x1'(mean D))``: the attention, then the
        ``motion_shortcut`` and ``motion_channels`` outputs (None where that deviation is off)."""
        f = self.squeeze(x2)
        # as the volume path: only fp16 can overflow in the differences (bf16 has float32's range)
        with _float32_region(self.fp32_differences and f.dtype == torch.float16, f):
            f = f.to(self.diff_conv.weight.dtype)
            ds = self.differences(f)
            if self.coord_attention:  # average of the directions, 1x1, sigmoid: Atten_H, Atten_W
                atten = torch.sigmoid(self.recover_h(self.plane(ds, "ht_conv", "ht")))
                atten = atten * torch.sigmoid(self.recover_w(self.plane(ds, "tw_conv", "tw")))
            else:
                atten = torch.sigmoid(self.recover(_mean(ds).flatten(0, 1)))
            motion = self.motion(_mean(ds).flatten(0, 1)).to(x2.dtype) if self.motion is not None else None
            channels = self.motion_channel_values(x2, ds) if self.motion_channels else None
        return atten.to(x2.dtype), motion, channels

    def motion_channel_values(self, x2: torch.Tensor, ds: list[torch.Tensor]) -> torch.Tensor:
        """The motion channels ``(B*T, m, H, W)`` (``motion_fraction``), from ``x2`` and the
        gate's differences ``ds`` (used by ``motion_source="compressed"`` only)."""
        if self.motion_source == "separate":  # Eq. 1 on a compression of its own, both directions averaged
            g = self.motion_squeeze(x2.to(self.motion_squeeze.weight.dtype))
            gv = g.unflatten(0, (-1, self.snippet_len))
            md = [neighbour_difference(gv, self.path("motion_diff_conv", o)(g).unflatten(0, (-1, self.snippet_len)),
                                       o, dim=1, edge=self.edge) for o in self.offsets]
            return self.motion_out(_mean(md).flatten(0, 1)).to(x2.dtype)
        if self.motion_source == "compressed":  # a 1x1 of the gate's averaged difference
            return self.motion_out(_mean(ds).flatten(0, 1)).to(x2.dtype)
        xm = x2[:, x2.shape[1] - self.motion_channels:].to(self.diff_conv.weight.dtype)  # "own"
        return self.own_differences(xm).to(x2.dtype)

    def drop_motion_channels(self) -> None:
        """Remove the motion channels (``motion_fraction=0``): the paper's layout, e.g. for a
        checkpoint saved before they existed (:func:`adopt_checkpoint_motion_channels`)."""
        for name in [n for n in self._modules if n.startswith(MOTION_MODULES)]:
            delattr(self, name)
        self.motion_out = None
        self.motion_channels = 0
        self.path_convs = tuple(n for n in self.path_convs if not n.startswith(MOTION_MODULES))

    def _layout(self) -> tuple[dict, dict]:
        """What :meth:`drop_motion_channels` changes, for :meth:`_restore_layout`."""
        return dict(self._modules), {k: v for k, v in self.__dict__.items()
                                     if k in ("motion_channels", "motion_out", "path_convs")}

    def _restore_layout(self, layout: tuple[dict, dict]) -> None:
        modules, attributes = layout
        self.__dict__.pop("motion_out", None)  # None after a drop; a submodule again if it was one
        self._modules.clear()
        self._modules.update(modules)
        self.__dict__.update(attributes)

    def forward(self, x2: torch.Tensor) -> torch.Tensor:
        return self.attention_and_motion(x2)[0]

    # ------------------------------------------------------------------ fast path (issue 24)
    @property
    def volume_path(self) -> bool:
        """Whether :meth:`IntraSIM.forward` can take the one-Conv3d-per-step path (every option
        but ``motion_shortcut`` and ``motion_source="own"``, which take the path above, and a
        module whose ``O_2`` is motion channels only, e.g. ``C/2 <= 2`` channels with the default
        ``motion_fraction``: no channel is gated, and the volume path composes its attention and
        kernel for the gated ones only)."""
        return (self.motion is None and not (self.motion_channels and self.motion_source == "own")
                and self.motion_channels < self.channels)

    def composed_weights(self, gated: int) -> dict[str, torch.Tensor]:
        """The paper's convs put together as the Conv3d weights of the volume path.

        On a snippet volume ``(B, c, T, H, W)``, with ``P`` directions (``self.offsets``):

        * ``squeeze`` ``(c', C/2, 1, 1, 1)``: the compression of Figure 2 and, with motion channels
          of their own (``motion_source="separate"``), theirs: ``c' = c P + C/2`` (the gate's ``c``
          once per direction, :attr:`merged_differences`);
        * ``eq1`` ``(c P, 1, K, k, k)``, groups ``c``: Eq. 1 of the attention's channels for every
          direction, output channel ``i P + p`` is ``F_t - Conv3x3_p(F_{t+o_p})`` of channel ``i``:
          the identity minus the direction's channel-wise 3x3 conv at the neighbouring frame.
          Pair-indexed (:attr:`pair_indexed`, ``K = 2``, no padding along T) or per frame
          (``K = 3``; with ``edge="zero"`` a mask then zeroes the border), see :meth:`_eq1_weight`.
          With :attr:`merged_differences`: ``(c P + C/2, 1, 3, k, k)``, one depthwise conv over the
          squeezed channels, ``-Conv3x3_p(F_{t+o_p})`` for the gate's channel ``p c + i`` and the sum
          over the directions for the motion channels (``split``: the two parts), the identity left
          to the forward (``F_t`` times :meth:`_difference_scale`);
        * ``coord`` ``(2c, c P, K', k, k)`` (input channel ``i P + p``, or ``p c + i`` with
          :attr:`merged_differences`) and its bias: Eq. 2 (the H x T plane: a kernel in
          (t, h) at the centre of w) and Eq. 3 (T x W: (t, w) at the centre of h) of every
          direction, with their residual ``+ D``, summed over the directions; ``K' = k + 1`` taps
          along T for pair-indexed differences (each direction's moved to where they sit);
        * ``recover`` ``(2 gated, c, 1, 1, 1)`` (groups 2: Atten_H from the H x T half, Atten_W
          from the other), divided by P: the average over directions; only the first ``gated``
          output channels, the ones Eq. 5 keeps (the others are motion channels);
          without coordinate attention ``(gated, c P, K'', 1, 1)`` on the differences;
        * ``motion`` ``(m, c2, 1, 1, 1)``: their 1x1, divided by P (the mean over directions).
        """
        P = len(self.offsets)
        c = self.hidden_channels
        pairs = self.pair_indexed
        sq = self.squeeze.weight
        separate = self.motion_channels and self.motion_source == "separate"
        if separate:
            # one depthwise conv for Eq. 1 of the gate's channels (a copy of the squeezed channels per direction,
            # channel p c + i: direction p of channel i) and of the motion channels (summed over the directions);
            # the identity F_t, times how many neighbours count, is the forward's one multiply-add (:meth:`_difference_scale`)
            sq = torch.cat([sq] * P + [self.motion_squeeze.weight])
            gate = self._eq1_weight("diff_conv", False, identity=False).transpose(0, 1).flatten(0, 1)  # (P c, 1, 3, k, k)
            motion = self._eq1_weight("motion_diff_conv", False, identity=False).sum(1)  # (c2, 1, 3, k, k)
            w = {"squeeze": sq.unsqueeze(2), "eq1": torch.cat([gate, motion]), "eq1_padding": 1, "read_padding": 0,
                 "split": [P * c, motion.shape[0]]}
        else:
            w = {"squeeze": sq.unsqueeze(2), "eq1": self._eq1_weight("diff_conv", pairs).flatten(0, 1),
                 "eq1_padding": 0 if pairs else 1, "read_padding": 1 if pairs else 0}
        if self.coord_attention:
            kc = self.ht_conv.kernel_size[0]
            h = kc // 2
            ht = [self.path("ht_conv", o) for o in self.offsets]
            tw = [self.path("tw_conv", o) for o in self.offsets]
            # along T: each direction's taps moved to where its differences are (pair-indexed), or as they are
            t_pads = [(1 - d, d) for d in self._pair_shifts] if pairs else [(0, 0)] * P
            planes = torch.stack([  # (plane, out, in, direction, t, h, w)
                torch.stack([F.pad(m.weight.transpose(2, 3).unsqueeze(-1), (h, h, 0, 0, *tp))  # (h, t) at w's centre
                             for m, tp in zip(ht, t_pads)], 2),
                torch.stack([F.pad(m.weight.unsqueeze(3), (0, 0, h, h, *tp)) for m, tp in zip(tw, t_pads)], 2),  # (t, w)
            ])
            coord = planes + self._coord_residual(c, kc, sq)  # + D (Eq. 2-3's residual)
            if separate:  # input channel p c + i (direction-major), see above
                coord = coord.transpose(2, 3)
            w["coord"] = coord.reshape(2 * c, c * P, *coord.shape[-3:])
            w["coord_bias"] = torch.stack([torch.stack([m.bias for m in ht]), torch.stack([m.bias for m in tw])]).sum(1).flatten()
            rec = torch.cat([self.recover_h.weight[:gated], self.recover_w.weight[:gated]])
            w["recover"] = rec.unsqueeze(2) * (1.0 / P)
            w["recover_bias"] = torch.cat([self.recover_h.bias[:gated], self.recover_w.bias[:gated]])
        else:
            rec = self.recover.weight[:gated]
            rec = rec.repeat(1, P, 1, 1) if separate else rec.repeat_interleave(P, 1)  # direction-major or -minor
            w["recover"] = self._read_differences(rec.unsqueeze(2) * (1.0 / P))
            w["recover_bias"] = self.recover.bias[:gated]
        if separate:  # the motion channels' 1x1, on the sum over the directions of Eq. 1
            w["motion"] = self.motion_out.weight.unsqueeze(2) * (1.0 / P)
            w["motion_bias"] = self.motion_out.bias
        elif self.motion_channels:  # "compressed": a 1x1 of the gate's averaged differences
            w["motion"] = self._read_differences(self.motion_out.weight.repeat_interleave(P, 1).unsqueeze(2) * (1.0 / P))
            w["motion_bias"] = self.motion_out.bias
        return w

    @property
    def pair_indexed(self) -> bool:
        """Whether the volume path computes Eq. 1 per pair of consecutive frames (``T - 1`` of them):
        with ``edge="zero"`` the difference at a snippet's border is zero, so Eq. 1 needs no zero
        padding along T and no mask: the convs that read the differences take each direction's at
        its frame (:meth:`_read_differences`), where the missing ones are their zero padding."""
        return self.edge == "zero" and self.snippet_len >= 2 and not self.merged_differences

    @property
    def merged_differences(self) -> bool:
        """Whether the volume path computes Eq. 1 of the gate's channels and of the motion channels
        (``motion_source="separate"``) as one depthwise conv, per frame: ``-Conv3x3_o(F_{t+o})`` (zero
        padding along T), then ``+ s ⊙ F_t`` in one multiply-add for all of them, ``s`` counting the
        neighbours that exist (:meth:`_difference_scale`), which also makes a gate difference zero where
        its neighbour lies outside the snippet (``edge="zero"``)."""
        return bool(self.motion_channels) and self.motion_source == "separate"

    @property
    def _pair_shifts(self) -> list[int]:
        """Per direction, the frame of pair ``(j, j + 1)`` its difference belongs to, minus ``j``."""
        return [1 if o < 0 else 0 for o in self.offsets]

    def _read_differences(self, weight: torch.Tensor) -> torch.Tensor:
        """A Conv3d weight ``(out, n P, K, kh, kw)`` that reads frame-indexed differences (input channel
        ``i P + p``: direction p; ``K`` odd, padding ``K // 2`` along T) as one that reads the pair-indexed
        ones (:attr:`pair_indexed`; ``K + 1`` taps, padding ``K // 2 + 1``): frame ``f`` of direction p
        is pair ``f - shift_p``, so its taps move by ``1 - shift_p``. Unchanged when not pair-indexed."""
        if not self.pair_indexed:
            return weight
        out, n_p, *kernel = weight.shape
        P = len(self.offsets)
        per_direction = weight.view(out, n_p // P, P, *kernel)
        moved = [F.pad(per_direction[:, :, p], (0, 0, 0, 0, 1 - d, d)) for p, d in enumerate(self._pair_shifts)]
        return torch.stack(moved, 2).flatten(1, 2)

    def _eq1_weight(self, name: str, pairs: bool, identity: bool = True) -> torch.Tensor:
        """``(c, P, 1, K, k, k)``: Eq. 1 of every direction as a depthwise Conv3d over (t, h, w): ``F_t``
        (the identity) minus the direction's channel-wise conv ``name`` at the neighbour ``t + o``.

        Frame-indexed (``K = 3``, padding 1 along T): the identity at tap 1, the neighbour at tap
        ``1 + o`` of a cross-correlation. Pair-indexed (:attr:`pair_indexed`, ``K = 2``, no padding
        along T: output j reads frames j and j + 1): the forward difference of frame j has the
        identity at tap 0 and its neighbour at tap 1, the backward one of frame j + 1 the reverse.
        Without ``identity``: minus the neighbour's conv only."""
        dws = [self.path(name, o).weight.unsqueeze(2) for o in self.offsets]  # (c, 1, 1, k, k) each
        k = dws[0].shape[-1]
        if pairs:
            pads = [(1 - d, d) for d in self._pair_shifts]  # the neighbour at tap 1 - shift
            identity_taps = _constant(("eq1_pairs", k, *self.offsets), dws[0], lambda: torch.stack(
                [F.pad(torch.ones(1, 1, 1), (k // 2, k // 2, k // 2, k // 2, d, 1 - d)) for d in self._pair_shifts])[None, :, None])
        else:
            pads = [(1 + o, 1 - o) for o in self.offsets]
            identity_taps = _centre(1, 1, 1, (3, k, k), dws[0])
        neighbour = torch.stack([F.pad(dw, (0, 0, 0, 0, *pad)) for dw, pad in zip(dws, pads)], 1)
        return identity_taps - neighbour if identity else -neighbour

    def _coord_residual(self, c: int, kc: int, like: torch.Tensor) -> torch.Tensor:
        """The ``+ D`` of Eq. 2-3 as a constant kernel: ``(1, c, c, 1, kc, kc, kc)``, the identity at the
        centre; pair-indexed ``(1, c, c, P, kc + 1, kc, kc)``, at the centre moved as each direction's
        taps are (:meth:`_read_differences`)."""
        if not self.pair_indexed:
            return _centre(1, c, c, (1, kc, kc, kc), like, identity=True)
        frame = _centre(1, c, c, (1, kc, kc, kc), like, identity=True)
        return _constant(("coord_residual_pairs", c, kc, *self.offsets), like, lambda: torch.stack(
            [F.pad(frame[:, :, :, 0], (0, 0, 0, 0, 1 - d, d)) for d in self._pair_shifts], 3))

    #: Whether Eq. 1 of the motion channels and the gate's (one depthwise 3x3x3 "same" Conv3d on the volume path,
    #: :attr:`merged_differences`) runs as
    #: Triton kernels where they apply (a GPU, eager, forward and backward: :mod:`dynsnip.modules.depthwise_taps`)
    #: or as ``F.conv3d`` (False). The same numbers either way (tested); ``benchmarks/gpu.sh`` compares them.
    triton_depthwise: bool = True

    def volume_attention_and_motion(
        self, x2: torch.Tensor, w: dict[str, torch.Tensor], logits: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Volume path of :meth:`attention_and_motion`: ``x2 (B, C/2, T, H, W)`` -> the attention
        of the channels Eq. 5 keeps ``(B, gated, T, H, W)`` and the motion channels (or None),
        with the weights of :meth:`composed_weights`. With ``logits``, the recovery convs' outputs
        before their sigmoids instead of the attention (``(B, 2 gated, ...)``: Atten_H's, then
        Atten_W's; ``(B, gated, ...)`` without coordinate attention), for the fused tail
        (:mod:`dynsnip.modules.gate_tap`).

        A handful of convolutions: the squeezes (gate and motion channels at once), Eq. 1 of the
        gate's channels (all directions at once, one output each), Eq. 2-3 (both planes and
        directions), the recovery 1x1s; for the motion channels Eq. 1 summed over the directions
        (one output per channel: all their 1x1 needs) and their 1x1. With motion channels of their
        own, Eq. 1 of both is one depthwise conv and one multiply-add, which also zeroes the gate's
        border differences (:attr:`merged_differences`); without, the gate's Eq. 1 is pair-indexed,
        so no border mask (:attr:`pair_indexed`).
        """
        cl = x2.dim() == 5 and x2.stride(1) == 1  # channels last frames: keep them so when compiled
        one = cpu_dilation(x2)  # 1x1x1 convs: see cpu_dilation
        s = F.conv3d(x2, w["squeeze"], dilation=one)
        # only fp16 can overflow in the differences (bf16 has float32's range)
        region = self.fp32_differences and s.dtype == torch.float16
        with _float32_region(region, s):
            if region:
                s = s.float()
                w = {key: _as_dtype(t, torch.float32) if isinstance(t, torch.Tensor) else t for key, t in w.items()}
            c = self.hidden_channels
            k = w["eq1"].shape[-1]
            dm = None
            if "split" in w:  # merged_differences: Eq. 1 of the gate's channels (one per direction) and the motion
                # channels' sum over the directions of Eq. 1, n ⊙ G_t - sum_o Conv3x3_o(G_{t+o}), as one depthwise
                # "same" Conv3d (Triton kernels on a GPU, see depthwise_taps) and one multiply-add
                e = (depthwise_taps(s, w["eq1"]) if self.triton_depthwise else depthwise_taps_reference(s, w["eq1"]))
                d = compiled_channels_last(torch.addcmul(e, s, self._difference_scale(s, w["split"][0])), cl)
                dg, dm = d.split(w["split"], 1)
            else:
                # Eq. 1 of the gate's channels, channel i P + p: direction p's difference of squeezed channel i;
                # pair-indexed (T - 1 of them, no padding along T) or, with edge="frame" or T = 1, one per frame
                dg = F.conv3d(s, w["eq1"], padding=(w["eq1_padding"], k // 2, k // 2), groups=c)
                if self.edge == "zero" and not self.pair_indexed:  # no difference where the neighbour lies in another snippet
                    dg = compiled_channels_last(dg * self._mask(dg), cl)
            r = w["read_padding"]  # convs that read the differences: one more tap and padding along T if pair-indexed
            if self.coord_attention:  # Eq. 2-3, average of the directions, 1x1, σ: Atten_H ⊙ Atten_W
                kc = w["coord"].shape[-1]
                z = F.conv3d(dg, w["coord"], w["coord_bias"], padding=(kc // 2 + r, kc // 2, kc // 2))
                atten = F.conv3d(z, w["recover"], w["recover_bias"], dilation=one, groups=2)
                if not logits:
                    atten_h, atten_w = torch.sigmoid(atten).chunk(2, 1)
                    atten = atten_h * atten_w
            else:
                atten = F.conv3d(dg, w["recover"], w["recover_bias"], padding=(r, 0, 0), dilation=one)
                if not logits:
                    atten = torch.sigmoid(atten)
            motion = None
            if dm is not None:  # the motion channels' 1x1 on the sum over directions of Eq. 1
                motion = _as_dtype(F.conv3d(dm, w["motion"], w["motion_bias"], dilation=one), x2.dtype)
            elif self.motion_channels:  # "compressed"
                motion = _as_dtype(F.conv3d(dg, w["motion"], w["motion_bias"], padding=(r, 0, 0), dilation=one), x2.dtype)
        if logits:  # the fused tail takes x2's dtype or float32 (the float32 region's)
            return (atten if atten.dtype in (x2.dtype, torch.float32) else atten.float()), motion
        return _as_dtype(atten, x2.dtype), motion

    def _difference_scale(self, s: torch.Tensor, gate_channels: int) -> torch.Tensor:
        """``(1, C', T, 1, 1)``, the factor of ``F_t`` in Eq. 1 per channel of the merged depthwise conv
        (:attr:`merged_differences`): for the gate's channel ``p c + i``, 1 where direction p of frame t has its
        neighbour in the snippet and 0 where not (``edge="zero"``: no difference there; ``"frame"``: 1); for
        the motion channels, summed over the directions, how many neighbours count (``"frame"``: P)."""
        t, motion = s.shape[2], s.shape[1] - gate_channels

        def build() -> torch.Tensor:
            if self.edge == "zero":
                gate = direction_mask(self.offsets, t, 1, s).repeat_interleave(gate_channels // len(self.offsets), 0)
                count = neighbour_count(self.offsets, t, s)
            else:
                gate = torch.ones(gate_channels, t, dtype=s.dtype, device=s.device)
                count = torch.full((t,), float(len(self.offsets)), dtype=s.dtype, device=s.device)
            return torch.cat([gate, count.expand(motion, t)])[None, :, :, None, None]
        if torch.compiler.is_compiling():
            return build()
        key = ("scale", t, gate_channels, motion, s.dtype, s.device, torch.is_inference_mode_enabled())  # see _constant
        if key not in self._masks:
            self._masks[key] = build()
        return self._masks[key]

    def _mask(self, d: torch.Tensor) -> torch.Tensor:
        """``(1, c' P, T, 1, 1)``: 1 where direction p of frame t has its neighbour in the snippet."""
        t, channels = d.shape[2], d.shape[1] // len(self.offsets)
        if torch.compiler.is_compiling():
            return direction_mask(self.offsets, t, channels, d)[None, :, :, None, None]
        key = (t, channels, d.dtype, d.device, torch.is_inference_mode_enabled())  # inference mode: see _constant
        if key not in self._masks:
            self._masks[key] = direction_mask(self.offsets, t, channels, d)[None, :, :, None, None]
        return self._masks[key]


_CONSTANTS: dict = {}


def _constant(key: tuple, like: torch.Tensor, build: Callable[[], torch.Tensor]) -> torch.Tensor:
    """A constant tensor ``build()`` in ``like``'s dtype and device, made once per ``key`` (eagerly).

    Keyed on inference mode too, as every cache of these modules: a tensor made under
    ``torch.inference_mode()`` is an inference tensor, which autograd refuses to save for
    backward, so a forward with autograd (the next training epoch after a validation under
    inference mode) must not get it."""
    if torch.compiler.is_compiling():  # a constant of the graph (and is_inference_mode_enabled breaks a graph)
        return build().to(dtype=like.dtype, device=like.device)
    key = (*key, like.dtype, like.device, torch.is_inference_mode_enabled())
    if key not in _CONSTANTS:
        _CONSTANTS[key] = build().to(dtype=like.dtype, device=like.device)
    return _CONSTANTS[key]


def _centre(lead: int, rows: int, cols: int, kernel: tuple[int, ...], like: torch.Tensor,
            identity: bool = False) -> torch.Tensor:
    """A constant kernel ``(lead, rows, cols, *kernel)`` that is 1 at the centre tap (of the
    diagonal ``rows == cols`` with ``identity``), 0 elsewhere: the ``F_t`` of Eq. 1 and the
    ``+ D`` of Eq. 2-3 as a kernel. Made once per shape, dtype and device (eagerly)."""
    def build() -> torch.Tensor:
        out = torch.zeros((lead, rows, cols, *kernel))
        centre = tuple(k // 2 for k in kernel)
        if identity:
            i = torch.arange(rows)
            out[(slice(None), i, i) + centre] = 1.0
        else:
            out[(Ellipsis,) + centre] = 1.0
        return out
    return _constant(("centre", lead, rows, cols, kernel, identity), like, build)


def _as_dtype(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``t.to(dtype)``, without dispatching an op when it already is."""
    return t if t.dtype == dtype else t.to(dtype)


def _difference_conv(channels: int, kernel_size: int, init: str) -> nn.Conv2d:
    """Eq. 1's channel-wise conv on the neighbouring frame; ``init="identity"``: Conv3x3(F) = F at the
    start, so that ``F_t - Conv3x3(F_{t+1})`` is the plain temporal difference."""
    conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False)
    if init == "identity":
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[:, :, kernel_size // 2, kernel_size // 2] = 1.0
    return conv


def _mean(xs: list[torch.Tensor]) -> torch.Tensor:
    return xs[0] if len(xs) == 1 else sum(xs[1:], xs[0]) * (1.0 / len(xs))


class SnippetKernel(nn.Module):
    """Eq. 4: a per-sample, per-channel temporal kernel ``K(X_2)`` of ``k`` taps.

    ``(N*U*T, C2, H, W)`` -> ``(N*U, C2, k)``: GAP over H x W, then over the T values of each
    (snippet, channel): ``FC(T -> γT) -> ReLU -> FC(γT -> k) -> softmax`` (shared over
    channels, as in Figure 2's ``C/2 x U x T -> C/2 x U x γT -> C/2 x U x k``).

    ``init="random"``: PyTorch's default initialisation of both layers. ``init="centre"``:
    ``φ2`` starts with zero weights and a bias that puts ``CENTRE_WEIGHT`` of the softmax on
    the centre tap, so that the kernel starts close to the identity instead of averaging
    neighbouring frames (the paper leaves the initialisation open).
    """

    CENTRE_WEIGHT = 0.9

    def __init__(self, snippet_len: int = 4, gamma: int = 2, kernel_size: int = 3, init: str = "random") -> None:
        super().__init__()
        # gamma: Eq. 4's expansion T -> γT (0 would leave K a constant, not learnt from X_2)
        _check_sizes("SnippetKernel", snippet_len=(snippet_len, False), gamma=(gamma, False),
                     kernel_size=(kernel_size, True))
        if init not in KERNEL_INITS:
            raise ValueError(f"kernel_init must be one of {KERNEL_INITS}, got {init!r}")
        self.snippet_len = snippet_len
        self.kernel_size = kernel_size
        self.phi1 = nn.Linear(snippet_len, gamma * snippet_len)
        self.phi2 = nn.Linear(gamma * snippet_len, kernel_size)
        if init == "centre" and kernel_size > 1:
            # softmax([0, .., b, .., 0]) has CENTRE_WEIGHT at the centre when e^b = w (k - 1) / (1 - w)
            w = self.CENTRE_WEIGHT
            with torch.no_grad():
                self.phi2.weight.zero_()
                self.phi2.bias.zero_()
                self.phi2.bias[kernel_size // 2] = math.log(w * (kernel_size - 1) / (1 - w))

    def forward(self, x2: torch.Tensor) -> torch.Tensor:
        g = x2.mean((2, 3)).unflatten(0, (-1, self.snippet_len)).transpose(1, 2)  # "(b t) c -> b c t"
        return self.from_pooled(g)

    def from_pooled(self, g: torch.Tensor) -> torch.Tensor:
        """Eq. 4 after the GAP: ``(B, C2, T)`` -> ``(B, C2, k)``."""
        return torch.softmax(self.phi2(torch.relu(self.phi1(g))), dim=-1)


KERNEL_INITS = ("random", "centre")


class IntraSIM(nn.Module):
    """Intra-Snippet Inconsistency Module (Eq. 1-6).

    Args:
        channels: C, channels of the input feature map.
        snippet_len: T, consecutive frames per snippet.
        reduction: r, compression of the C/2 motion channels in Intra-SMA (default 16).
        gamma: expansion of the kernel branch's hidden layer, ``φ1: T -> γT`` (default 2).
        kernel_size: k, taps of the learnable temporal kernel (default 3).
        diff_kernel_size: the channel-wise conv of Eq. 1 (default 3).
        coord_kernel_size: the H x T / T x W convs of Eq. 2-3 (default 3).
        bidirectional, coord_attention, learnable_kernel: Table 5 ablation switches.
        edge: difference at a snippet's border, ``"zero"`` or ``"frame"``.
        fp32_differences: run the difference path in float32 under fp16 autocast (bf16, with
            float32's range, cannot overflow there and needs none).
        share_directions: one set of Eq. 1-3 convs for both directions (default False: one
            per direction, as in Figure 2).
        kernel_init: ``"random"`` (PyTorch's default) or ``"centre"`` (the learnable kernel
            starts near the identity), see :class:`SnippetKernel`.
        motion_shortcut: a **deviation** from Eq. 5, off by default: ``O_2 = K ⊗ (Atten ⊙ X_2
            + X_2 + Conv1x1(D̄))`` with ``D̄`` the differences averaged over directions and a
            zero-initialised 1x1 conv (so the module starts as the paper's): the difference
            reaches the features additively, not only through the sigmoid gate.
        motion_fraction: a **deviation** from Eq. 5, on by default (0.75; 0 is the paper's
            module): the last ``round(motion_fraction * C/2)`` channels of ``O_2`` carry a
            temporal difference (``motion_source``) instead of ``K ⊗ (Atten ⊙ X_2 + X_2)``: the
            difference reaches the next conv on channels of its own, not mixed into the content
            of ``X_2`` (a gate or a sum leaves the next layers to separate the difference from
            the picture; see docs/temporal_sensitivity.md).
        diff_init: Eq. 1's channel-wise convs start as the identity (``"identity"``, default:
            the plain temporal difference from the first step) or PyTorch's random init
            (``"random"``, the paper's "randomly initialized").
        motion_source: where the motion channels come from: ``"separate"`` (default) Eq. 1 on a
            1x1 compression of ``X_2`` of their own (``C/2 / motion_reduction`` channels), both
            directions averaged, then a 1x1 conv; ``"compressed"`` a 1x1 conv of the gate's
            averaged difference ``D̄``; ``"own"`` Eq. 1 on the motion channels themselves.
        motion_reduction: the compression of ``"separate"`` (1: none; the measured default).

    Shape: ``(N*U*T, C, H, W)`` -> ``(N*U*T, C, H, W)``. The first ``C // 2`` channels pass
    through unchanged (Eq. 6). ``num_snippets`` is accepted and ignored, so that every SIM
    can be called as ``sim(x, num_snippets=U)``.

    After a forward with ``record_attention = True`` the Intra-SMA map (Figure 4), the
    channel mean of ``Atten_H ⊙ Atten_W``, is in ``self.attention``: ``(N*U, T, H, W)``. With motion
    channels (``motion_fraction``) the mean is over the channels Eq. 5 keeps, the first ``C/2 - m``:
    the attention of the others is replaced by the motion channels and reaches no output.
    """

    def __init__(
        self,
        channels: int,
        snippet_len: int = 4,
        reduction: int = 16,
        gamma: int = 2,
        kernel_size: int = 3,
        diff_kernel_size: int = 3,
        coord_kernel_size: int = 3,
        bidirectional: bool = True,
        coord_attention: bool = True,
        learnable_kernel: bool = True,
        edge: str = "zero",
        fp32_differences: bool = True,
        share_directions: bool = False,
        kernel_init: str = "random",
        motion_shortcut: bool = False,
        motion_fraction: float = DEFAULT_MOTION_FRACTION,
        diff_init: str = "identity",
        motion_source: str = "separate",
        motion_reduction: int = 1,
    ) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError(f"IntraSIM needs at least 2 channels to split, got {channels}")
        if snippet_len < 1:
            raise ValueError(f"snippet_len must be >= 1, got {snippet_len}")
        self.channels = channels
        self.snippet_len = snippet_len
        self.split = (channels // 2, channels - channels // 2)  # (I_1, I_2)
        self.sma = IntraSMA(
            self.split[1], snippet_len, reduction, diff_kernel_size, coord_kernel_size,
            bidirectional, coord_attention, edge, fp32_differences, share_directions, motion_shortcut,
            motion_fraction, diff_init, motion_source, motion_reduction,
        )
        self.kernel = SnippetKernel(snippet_len, gamma, kernel_size, kernel_init) if learnable_kernel else None
        self._composed = ComposedWeights()
        self.record_attention = False
        self.attention: torch.Tensor | None = None

    #: Which path a forward with autograd on a CPU takes (eager): ``"frames"`` (default) or
    #: ``"volume"``. The volume path's Conv3d backward runs PyTorch's reference CPU kernel
    #: (``slow_conv3d``) at training batch sizes: a CPU training step of ``dil_resnet50`` with
    #: the paper's module took 1.41x resnet50's through it and 1.12x through the frame path
    #: (defaults: 1.25x and 1.23x; ``benchmarks/efficiency.py --threads 1``, one run, interleaved).
    #: Inference, GPUs and ``torch.compile`` take the volume path. Both compute the same (tested).
    cpu_training_path: str = "frames"

    #: Which path every forward takes: ``"auto"`` (default: the volume path where the options allow
    #: it, the frame path for CPU training as :attr:`cpu_training_path` says and for the attention
    #: maps), or ``"frames"`` (always the frame path: 2D convs only, no Conv3d; ``benchmarks/gpu.sh``
    #: compares it with the volume path on a GPU, where PyTorch's depthwise Conv3d kernels are slow).
    #: Both compute the same (tested).
    path: str = "auto"

    #: Whether eager inference on a GPU runs Eq. 5's elementwise tail (the attention's sigmoids, the
    #: gate and the learnable kernel) as one Triton kernel (:mod:`dynsnip.modules.gate_tap`; where
    #: :func:`~dynsnip.modules.gate_tap.gate_tap_available` says it applies), or as PyTorch ops (False).
    triton_tail: bool = True

    def forward(self, x: torch.Tensor, num_snippets: int | None = None) -> torch.Tensor:
        _check_frames(x, self.snippet_len, "IntraSIM", self.channels)
        self._composed.forward_started(self)
        if self.path not in ("auto", "frames"):
            raise ValueError(f"IntraSIM.path must be 'auto' or 'frames', got {self.path!r}")
        if (self.path == "auto" and self.sma.volume_path and not self.record_attention
                and not self._cpu_training_by_frames(x)):
            return self.forward_volume(x)
        return self.forward_frames(x)

    def _cpu_training_by_frames(self, x: torch.Tensor) -> bool:
        """Whether this forward is CPU training that :attr:`cpu_training_path` sends to the frame path."""
        if self.cpu_training_path not in ("frames", "volume"):
            raise ValueError(f"IntraSIM.cpu_training_path must be 'frames' or 'volume', got {self.cpu_training_path!r}")
        return (self.cpu_training_path == "frames" and x.device.type == "cpu" and torch.is_grad_enabled()
                and not torch.compiler.is_compiling())

    def forward_volume(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 1-6 on the snippet volume ``(N*U, C, T, H, W)``, a view of ``x``: a handful of
        kernels, the layout of ``x`` kept (see :meth:`IntraSMA.composed_weights`). Only the
        ``C/2 - m`` channels that Eq. 5 keeps get the attention and the kernel."""
        if not x.is_contiguous(memory_format=torch.channels_last):  # once: the layers after keep it
            x = x.contiguous(memory_format=torch.channels_last)
        v = frames_as_snippets(x, self.snippet_len)
        x1, x2 = v.split(self.split, 1)  # Eq. 6 split
        gated = self.split[1] - self.sma.motion_channels
        w = self._composed.get(self, lambda: self.composed_weights(gated), gated)
        # on a GPU in inference: Eq. 5's elementwise tail (sigmoids, gate, learnable kernel) as one kernel
        fused = self.triton_tail and not torch.is_grad_enabled() and gate_tap_available(x2)  # never when compiling
        atten, motion = self.sma.volume_attention_and_motion(x2, w, logits=fused)
        x2g = x2[:, :gated] if motion is not None else x2
        kernel = None
        if self.kernel is not None:  # Eq. 4: K(X_2), per sample and channel
            g = x2g.mean((3, 4))  # GAP: (B, gated, T)
            kernel = torch.softmax(F.linear(torch.relu(F.linear(g, w["phi1"], w["phi1_bias"])), w["phi2"], w["phi2_bias"]), -1)
        if fused:  # atten: the logits
            o2 = gate_tap(x2g, atten, kernel)
        else:
            o2 = torch.addcmul(x2g, atten, x2g)  # Atten_H ⊙ Atten_W ⊙ X_2 + X_2
            if kernel is not None:  # Eq. 5: K(X_2) ⊗ (...), depthwise over the T frames
                o2 = dynamic_tap_conv(o2, kernel)
        parts = [x1, o2] if motion is None else [x1, o2, motion]  # Eq. 6 (+ the motion channels)
        out = compiled_channels_last(torch.cat(parts, dim=1), v.stride(1) == 1)
        if out.stride(1) != 1 and not torch.compiler.is_compiling():
            # a part came back in another layout (CPU convs under fp16 autocast return NCDHW on some
            # CPUs): the frames leave channels_last as they came, for the convs after this block
            out = out.contiguous(memory_format=torch.channels_last_3d)
        return snippets_as_frames(out)

    def composed_weights(self, gated: int) -> dict[str, torch.Tensor]:
        """:meth:`IntraSMA.composed_weights` and the learnable kernel's two layers (Eq. 4)."""
        w = self.sma.composed_weights(gated)
        if self.kernel is not None:
            k = self.kernel
            w.update(phi1=k.phi1.weight, phi1_bias=k.phi1.bias, phi2=k.phi2.weight, phi2_bias=k.phi2.bias)
        return w

    def forward_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 1-6 frame by frame (views of the folded batch): every option, and the attention map."""
        x1, x2 = torch.split(x, self.split, dim=1)  # Eq. 6 split
        atten, motion, difference_channels = self.sma.attention_and_motion(x2)
        if self.record_attention:  # the channels Eq. 5 keeps: the motion channels' attention reaches no output
            kept = atten if difference_channels is None else atten[:, :atten.shape[1] - difference_channels.shape[1]]
            self.attention = kept.detach().float().mean(1).unflatten(0, (-1, self.snippet_len))
        o2 = torch.addcmul(x2, atten, x2)  # Atten_H ⊙ Atten_W ⊙ X_2 + X_2
        if motion is not None:  # deviation: + Conv1x1(mean D), see motion_shortcut
            o2 = o2 + motion
        if self.kernel is not None:  # Eq. 5: K(X_2) ⊗ (...), depthwise over the T frames
            k = self.kernel(x2).to(o2.dtype)  # (B, c, k)
            taps = [k[:, None, :, j, None, None] for j in range(k.shape[-1])]  # "b c -> b 1 c 1 1"
            o2v = o2.unflatten(0, (-1, self.snippet_len))  # "(b t) c h w -> b t c h w"
            o2 = tap_conv_axis(o2v, taps, dim=1).flatten(0, 1)
        if difference_channels is not None:  # deviation: the last channels of O_2 are the difference
            o2 = torch.cat([o2[:, :o2.shape[1] - difference_channels.shape[1]], difference_channels], dim=1)
        return torch.cat([x1, o2], dim=1)  # Eq. 6

    def train(self, mode: bool = True) -> "IntraSIM":
        self._composed.clear()  # training starts or ends here: nothing composed before it is kept
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True):  # type: ignore[override]
        self._composed.clear()  # .to() / .half(): new tensors; the kept views would block a swap-tensors conversion
        return super()._apply(fn, recurse)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``; a load that fails leaves the module's layout as it was (a
        state dict without motion channels takes them away only from a module it then loads into)."""
        with layout_restored_on_failure(self):
            return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        self._composed.clear()
        if not prefix and adopt_checkpoint_motion_channels(state_dict, self):  # a standalone module (a DIL
            # model decides for all its SIMs at once, and warns)
            warnings.warn("the state dict has no motion-channel tensors (saved before they became the default): "
                          "the IntraSIM is loaded as it was saved, without them (motion_fraction=0, the paper's "
                          "Eq. 5)", stacklevel=3)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, snippet_len={self.snippet_len}"


# Whether a state dict without motion-channel tensors may take them away from the model it loads into
# (adopt_checkpoint_motion_channels). A saved detector whose config records its motion channels must have
# their tensors: dynsnip.hub's loader turns the adoption off for it (motion_layout_adoption(False)).
_ADOPT_MOTION_LAYOUT = contextvars.ContextVar("dynsnip_adopt_motion_layout", default=True)


@contextmanager
def motion_layout_adoption(allowed: bool) -> Iterator[None]:
    """Within the block, checkpoints without motion-channel tensors do (``allowed``) or do not take
    them away from the model (:func:`adopt_checkpoint_motion_channels`); not: the strict load
    reports the missing tensors."""
    token = _ADOPT_MOTION_LAYOUT.set(bool(allowed))
    try:
        yield
    finally:
        _ADOPT_MOTION_LAYOUT.reset(token)


@contextmanager
def layout_restored_on_failure(model: nn.Module) -> Iterator[None]:
    """Put back the motion channels of ``model``'s Intra-SMAs when the block raises: a
    ``load_state_dict`` that fails (a mis-shaped tensor, a missing one) must not leave the model
    with another architecture than it had (values PyTorch copied before the failure stay copied,
    as for any module)."""
    smas = [m for m in model.modules() if isinstance(m, IntraSMA)]
    layouts = [m._layout() for m in smas]
    try:
        yield
    except BaseException:
        for m, layout in zip(smas, layouts):
            m._restore_layout(layout)
        raise


def adopt_checkpoint_motion_channels(state_dict: "Mapping[str, Any]", model: nn.Module, prefix: str = "") -> list[str]:
    """Give ``model``'s Intra-SIMs the layout of a checkpoint saved without motion channels.

    Checkpoints saved before motion channels became the default have none; when *every*
    Intra-SMA of ``model`` that has motion channels finds its other tensors in ``state_dict``
    but none of its motion-channel tensors, they are removed (:meth:`IntraSMA.drop_motion_channels`),
    so the checkpoint loads completely and computes what it computed before. A checkpoint
    that has them for some modules and not others is left to the strict load to report, and
    so is every checkpoint inside :func:`motion_layout_adoption` ``(False)``.

    Returns the names of the Intra-SMAs changed.
    """
    smas = [(name, m) for name, m in model.named_modules() if isinstance(m, IntraSMA) and m.motion_channels]
    if not smas or not _ADOPT_MOTION_LAYOUT.get():
        return []
    keys = list(state_dict)

    def legacy(name: str) -> bool:
        head = f"{prefix}{name}." if name else prefix
        return f"{head}squeeze.weight" in state_dict and not any(
            k.startswith(tuple(head + m for m in MOTION_MODULES)) for k in keys)

    if not all(legacy(name) for name, _ in smas):
        return []
    for _, m in smas:
        m.drop_motion_channels()
    return [name for name, _ in smas]
