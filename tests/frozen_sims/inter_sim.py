"""Inter-Snippet Interaction Module (Inter-SIM), paper Eq. 7-11 and Figure 2.

Tensor layout
-------------
Input and output: ``(N*U*T, C, H, W)``, frames folded into the batch: clips (N) outermost,
then the U snippets of a clip, then the T consecutive frames of a snippet. ``T`` is fixed
at construction (``snippet_len``); ``U`` is given per call, ``m(x, num_snippets=U)``, and
no parameter depends on it, so a model trained with U=4 runs with U=8. The module mixes
information across the snippets of one clip and never across clips.

Equation -> code
----------------
=========  =========================================================  =======================
Eq.        what                                                       where
=========  =========================================================  =======================
GAP        ``F -> F̄ in R^{C x U x T}``                                ``InterSIM.forward``
(7)        ``F̄_1 = σ(Conv1x1(BN(Conv3x1(F̄))))``                       ``InterSIM.branch1``
squeeze    ``F̂ = Conv1x1(F̄) in R^{C/r x U x T}``                      ``InterSMA.squeeze``
(8)        ``D_{u,u+1} = F̂_u - Conv1x3(F̂_{u+1})``                     ``InterSMA.differences``
(9)        ``D_{u+1,u} = F̂_{u+1} - Conv1x3(F̂_u)`` (at position u+1)   ``InterSMA.differences``
(10)       ``F̄_2 = σ(Conv1x1(D_{u,u+1} + D_{u+1,u}))``                ``InterSMA.forward``
(11)       ``O = Conv_U(F̄_1 ⊙ F̄_2 ⊙ F + F)``                          ``InterSIM.forward``
=========  =========================================================  =======================

Constants the paper leaves open (named arguments, defaults and reasons)
-----------------------------------------------------------------------
* ``reduction=4``: Inter-SMA squeezes to C/4 (Figure 2; the text writes C/r).
* ``branch1_reduction=4``: Eq. 7's Conv3x1 reduces to C/4 (Figure 2).
* ``snippet_kernel_size=3``: the "3x1" of Eq. 7 and of ``Conv_U`` spans 3 snippets.
* ``frame_kernel_size=3``: the "1x3" of Eq. 8-9 spans 3 frames of a snippet.
* ``conv_u="depthwise"``: ``Conv_U`` is a per-channel temporal conv over U (3 taps).
  ``"dense"`` (a full C -> C conv over U) is one argument away. Measured on
  ``dil_resnet50`` (docs/performance.md, "Conv_U"): dense adds 1.48M parameters (26.00M vs 24.52M) and
  7% FLOPs (140.1 vs 131.4 GFLOPs per 16-frame clip: over the 1.05x budget against the
  2D backbone); on the demo task at equal budget it reached AUC 0.952 against 0.915 for
  depthwise (2 seeds each, a spread of 0.07-0.10 between seeds), a difference within the
  seed noise. Depthwise stays the default for its cost.
* ``conv_u_init="identity"``: ``Conv_U`` starts as the identity (centre tap 1), so that a
  freshly converted ImageNet network starts from its 2D features; ``"random"`` is PyTorch's
  default conv initialisation, the paper's "randomly initialized" read literally. On the
  demo task (2 seeds) random init reached AUC 0.927 against 0.915 for the identity, and the
  same training loss over the first 60 steps (0.71-0.72): no measurable difference, so the
  identity stays (it keeps an ImageNet backbone's features intact at the start).
* ``share_directions=False``: Eq. 8 and Eq. 9 each have their own ``Conv1x3`` (Figure 2
  colours the 3x1 conv boxes of Inter-SMA by the direction they serve, as in Intra-SMA);
  the two differences are summed (Eq. 10) before the one 1x1 conv. ``True`` shares the conv
  (dynsnip 0.1.0's layout; the sum then reduces to ``2 F̂_u - Conv1x3(F̂_{u-1} + F̂_{u+1})``).
* ``edge="zero"``: a difference at the first/last snippet, whose neighbour does not
  exist, is zero. ``"frame"`` (the missing neighbour is a zero feature) makes the U x T
  map localise a tampered first/last snippet as sharply as an inner one (measured in
  docs/explain.md); its effect on trained accuracy is not measured.
* ``fp32_differences=True``: under fp16 autocast the difference path runs in float32.

With ``record_attention = True`` the U x T map of Figure 5, the channel mean of
``F̄_1 ⊙ F̄_2``, is kept in ``self.attention``: ``(N, U, T)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from .directions import BACKWARD, DirectionPaths
from .intra_sim import _check_frames, _float32_region
from .temporal_ops import neighbour_difference, shift_axis, tap_conv_axis

CONV_U_MODES = ("depthwise", "dense")
CONV_U_INITS = ("identity", "random")


class InterSMA(DirectionPaths):
    """Inter-Snippet Motion Attention, Eq. 8-10: ``(N, C, U, T)`` -> ``(N, C, U, T)`` in (0, 1).

    Eq. 8 and Eq. 9 each have their own ``Conv1x3`` unless ``share_directions``.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 4,
        frame_kernel_size: int = 3,
        bidirectional: bool = True,
        edge: str = "zero",
        fp32_differences: bool = True,
        share_directions: bool = False,
    ) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.bidirectional = bidirectional
        self.share_directions = share_directions
        self.edge = edge
        self.fp32_differences = fp32_differences
        # +1: Eq. 8 at u, F̂_u - Conv(F̂_{u+1}); -1: Eq. 9 at u, F̂_u - Conv(F̂_{u-1})
        self.offsets = (+1, -1) if bidirectional else (+1,)
        self.untied = bidirectional and not share_directions
        self.path_convs = ("frame_conv",)
        self.squeeze = nn.Conv2d(channels, hidden, 1, bias=False)
        for suffix in ("", BACKWARD) if self.untied else ("",):
            # Conv1x3: 1 snippet x 3 frames ("intra-snippet interaction")
            self.add_module("frame_conv" + suffix, nn.Conv2d(
                hidden, hidden, (1, frame_kernel_size), padding=(0, frame_kernel_size // 2), bias=False))
        self.recover = nn.Conv2d(hidden, channels, 1)

    def differences(self, f: torch.Tensor) -> torch.Tensor:
        """Eq. 8 + Eq. 9 at every snippet u: ``(N, c, U, T)`` -> ``(N, c, U, T)``."""
        d = None
        for o in self.offsets:
            g = self.path("frame_conv", o)(f)
            d_o = neighbour_difference(f, g, o, dim=2, edge=self.edge)  # F̂_u - Conv1x3(F̂_{u+o})
            d = d_o if d is None else d + d_o
        return d

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        f = self.squeeze(pooled)
        with _float32_region(self.fp32_differences and f.dtype != torch.float32, f):
            f = f.to(self.frame_conv.weight.dtype)
            return torch.sigmoid(self.recover(self.differences(f)))  # Eq. 10


class InterSIM(nn.Module):
    """Inter-Snippet Interaction Module (Eq. 7-11).

    Args:
        channels: C.
        snippet_len: T, frames per snippet.
        reduction: squeeze of Inter-SMA (C -> C/reduction, default 4, Figure 2).
        branch1_reduction: reduction of Eq. 7's Conv3x1 (default 4, Figure 2).
        snippet_kernel_size: taps over U of Eq. 7's Conv3x1 and of Conv_U (default 3).
        frame_kernel_size: taps over T of Eq. 8-9's Conv1x3 (default 3).
        bidirectional: use both Eq. 8 and Eq. 9 (else Eq. 8 only).
        conv_u: ``"depthwise"`` (default) or ``"dense"``.
        edge: difference at the first/last snippet, ``"zero"`` or ``"frame"``.
        fp32_differences: run the difference path in float32 under autocast.
        share_directions: one ``Conv1x3`` for Eq. 8 and Eq. 9 (default False: one each).
        conv_u_init: ``"identity"`` (default) or ``"random"`` (PyTorch's conv default).

    Shape: ``forward(x, num_snippets=U)`` with ``x`` of shape ``(N*U*T, C, H, W)``, output
    the same shape.
    """

    def __init__(
        self,
        channels: int,
        snippet_len: int = 4,
        reduction: int = 4,
        branch1_reduction: int = 4,
        snippet_kernel_size: int = 3,
        frame_kernel_size: int = 3,
        bidirectional: bool = True,
        conv_u: str = "depthwise",
        edge: str = "zero",
        fp32_differences: bool = True,
        share_directions: bool = False,
        conv_u_init: str = "identity",
    ) -> None:
        super().__init__()
        if edge not in ("zero", "frame"):
            raise ValueError(f"edge must be 'zero' or 'frame', got {edge!r}")
        if conv_u not in CONV_U_MODES:
            raise ValueError(f"conv_u must be one of {CONV_U_MODES}, got {conv_u!r}")
        if conv_u_init not in CONV_U_INITS:
            raise ValueError(f"conv_u_init must be one of {CONV_U_INITS}, got {conv_u_init!r}")
        if snippet_kernel_size % 2 != 1:
            raise ValueError(f"snippet_kernel_size must be odd, got {snippet_kernel_size}")
        self.channels = channels
        self.snippet_len = snippet_len
        self.conv_u_mode = conv_u
        hidden = max(1, channels // branch1_reduction)
        k = snippet_kernel_size
        # Eq. 7: Conv3x1 (3 snippets x 1 frame) -> BN -> Conv1x1 -> σ
        self.branch1 = nn.Sequential(
            nn.Conv2d(channels, hidden, (k, 1), padding=(k // 2, 0), bias=False),
            nn.BatchNorm2d(hidden),
            nn.Conv2d(hidden, channels, 1),
        )
        self.conv_u_init = conv_u_init
        self.sma = InterSMA(
            channels, reduction, frame_kernel_size, bidirectional, edge, fp32_differences, share_directions
        )
        if conv_u == "depthwise":  # (C, k): one k-tap kernel over U per channel
            self.conv_u = nn.Parameter(torch.empty(channels, k))
        else:
            self.conv_u = nn.Conv2d(channels, channels, (k, 1), padding=(k // 2, 0), bias=False)
        self.reset_conv_u()
        self.record_attention = False
        self.attention: torch.Tensor | None = None

    def reset_conv_u(self) -> None:
        """Initialise ``Conv_U`` as ``conv_u_init`` says: the identity (centre tap 1, others 0),
        or PyTorch's default conv initialisation (uniform, ``1/sqrt(fan_in)`` bound)."""
        dense = isinstance(self.conv_u, nn.Conv2d)
        weight = self.conv_u.weight if dense else self.conv_u
        with torch.no_grad():
            if self.conv_u_init == "random":
                if dense:
                    self.conv_u.reset_parameters()
                else:  # as a depthwise Conv1d(C, C, k, groups=C) would be: fan_in = k
                    nn.init.kaiming_uniform_(weight.view(self.channels, 1, -1), a=math.sqrt(5))
                return
            weight.zero_()
            centre = weight.shape[2 if dense else 1] // 2
            if dense:
                weight[:, :, centre, 0].copy_(torch.eye(self.channels))
            else:
                weight[:, centre] = 1.0

    def forward(self, x: torch.Tensor, num_snippets: int | None = None) -> torch.Tensor:
        if num_snippets is None:
            raise TypeError(
                "InterSIM needs the number of snippets per clip: call it as m(x, num_snippets=U) "
                "with x folded as (N*U*T, C, H, W)"
            )
        _check_frames(x, self.snippet_len, "InterSIM")
        # int() of a symbolic size would specialise an exported graph to the U it was traced with
        u = num_snippets if isinstance(num_snippets, (int, torch.SymInt)) else int(num_snippets)
        t = self.snippet_len
        if u < 1 or x.shape[0] % (u * t):
            raise ValueError(
                f"InterSIM: {x.shape[0]} frames in the batch are not a multiple of "
                f"num_snippets U={u} x snippet_len T={t}"
            )
        pooled = x.mean((2, 3)).unflatten(0, (-1, u, t)).permute(0, 3, 1, 2)  # GAP: F̄, "(n u t) c -> n c u t"
        f1 = torch.sigmoid(self.branch1(pooled))  # Eq. 7
        f2 = self.sma(pooled).to(f1.dtype)  # Eq. 8-10
        atten = f1 * f2
        if self.record_attention:
            self.attention = atten.detach().float().mean(1)
        xv = x.unflatten(0, (-1, u, t))  # "(n u t) c h w -> n u t c h w"
        scale = (1 + atten.to(x.dtype)).permute(0, 2, 3, 1)[..., None, None]  # "n c u t -> n u t c 1 1"
        if self.conv_u_mode == "depthwise":
            # Eq. 11, Conv_U over the snippet axis applied to Y = (1 + F̄1⊙F̄2) ⊙ F: the per-(clip,
            # snippet, frame, channel) scale is folded into the taps, out_u = sum_j w_j s_{u+j-1}
            # F_{u+j-1}, so that Y is never materialised.
            w = self.conv_u.to(x.dtype)
            half = w.shape[1] // 2
            taps = [w[:, j, None, None] * shift_axis(scale, j - half, dim=1) for j in range(w.shape[1])]
            return tap_conv_axis(xv, taps, dim=1).flatten(0, 2)
        y = xv * scale  # F̄1⊙F̄2⊙F + F
        z = y.permute(0, 3, 1, 2, 4, 5).flatten(3)  # "n u t c h w -> n c u (t h w)"
        z = self.conv_u(z)
        h, w_ = x.shape[2], x.shape[3]
        return z.unflatten(3, (t, h, w_)).permute(0, 2, 3, 1, 4, 5).reshape(x.shape)  # "n c u (t h w) -> (n u t) c h w"

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, snippet_len={self.snippet_len}, conv_u={self.conv_u_mode!r}, "
                f"conv_u_init={self.conv_u_init!r}")
