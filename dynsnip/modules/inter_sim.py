"""Inter-Snippet Interaction Module (Inter-SIM), paper Eq. 7-11 and Figure 2.

Tensor layout
-------------
Input and output: ``(N*U*T, C, H, W)``, frames folded into the batch: clips (N) outermost,
then the U snippets of a clip, then the T consecutive frames of a snippet. ``T`` is fixed
at construction (``snippet_len``); ``U`` is given per call, ``m(x, num_snippets=U)``, and
no parameter depends on it, so a model trained with U=4 runs with U=8. The module mixes
information across the snippets of one clip and never across clips, except through Eq. 7's
BatchNorm in training mode, whose batch statistics pool every clip of the batch (as the
backbone's own BatchNorm layers do); in eval mode (running statistics) nothing crosses clips.

Eq. 8-9's ``Conv1x3`` is a full conv over the squeezed channels (no bias): the paper calls
Eq. 1's conv channel-wise but not this one, and at the pooled size (U x T per channel) a full
conv costs next to nothing.

Two paths compute the same equations (``forward``): the *volume path* views the folded frames
as volumes (a view; channels_last frames are a channels_last_3d volume) and runs each step as
one Conv3d whose weight is put together from the convs below (``composed_weights``; kept
between eager inference calls); the *frame path* (the methods below, frame by frame on views
of the folded batch) is the readable one, and runs the options the volume path does not take.
docs/performance.md ("Issue 24") says what each step became and what it costs.

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
import operator

import torch
import torch.nn as nn
import torch.nn.functional as F

from .composed_weights import ComposedWeights, training_anywhere
from .depthwise_taps import COMPILED_AS_SUM, depthwise_taps, depthwise_taps_available
from .directions import BACKWARD, DirectionPaths
from .intra_sim import _as_dtype, _check_frames, _check_sizes, _float32_region
from .temporal_ops import clips_as_frames, compiled_channels_last, cpu_dilation, frames_as_clips, neighbour_count, neighbour_difference

CONV_U_MODES = ("depthwise", "dense")
CONV_U_INITS = ("identity", "random")


def _fp16(x: torch.Tensor) -> bool:
    """Whether ``x`` is, or autocast makes convolutions of it, float16."""
    dev = x.device.type
    return x.dtype == torch.float16 or (torch.is_autocast_enabled(dev) and torch.get_autocast_dtype(dev) == torch.float16)


def _slot_product(s: torch.Tensor) -> torch.Tensor:
    """``(..., 2) -> (..., 1)``: the product of the two slots, in the dtype of ``s``. Autocast runs ``prod`` in
    float32 (a cast of its input, and a float32 attention that would turn Eq. 11's full-size multiply-add to
    float32), so it is called outside autocast: one kernel, as the product of two halves was."""
    if torch.is_autocast_enabled(s.device.type):
        with torch.autocast(s.device.type, enabled=False):
            return s.prod(-1, keepdim=True)
    return s.prod(-1, keepdim=True)


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
        _check_sizes("InterSMA", channels=(channels, False), reduction=(reduction, False),
                     frame_kernel_size=(frame_kernel_size, True))
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
        self._counts: dict = {}

    def differences(self, f: torch.Tensor) -> torch.Tensor:
        """Eq. 8 + Eq. 9 at every snippet u: ``(N, c, U, T)`` -> ``(N, c, U, T)``."""
        d = None
        for o in self.offsets:
            g = self.path("frame_conv", o)(f)
            d_o = neighbour_difference(f, g, o, dim=2, edge=self.edge)  # F̂_u - Conv1x3(F̂_{u+o})
            d = d_o if d is None else d + d_o
        return d

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.attention(self.squeeze(pooled))

    def difference_weight(self) -> torch.Tensor:
        """Eq. 8-9's convs of every direction as one conv over (U, T): ``(c, c, 3, k)`` with
        ``-Conv1x3_o`` in the row of the neighbour ``u + o`` (cross-correlation tap ``1 + o``)."""
        return -sum(F.pad(self.path("frame_conv", o).weight, (0, 0, 1 + o, 1 - o)) for o in self.offsets)

    def attention(self, f: torch.Tensor, weight: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Eq. 8-10 from the squeezed ``F̂`` ``(N, c, U, T[, 1])``: ``σ(Conv1x1(sum_o D_o))``.

        ``sum_o D_o = n ⊙ F̂ - sum_o Conv1x3_o(F̂_{u+o})``, ``n`` the number of directions whose
        neighbour exists (``edge="zero"``; all of them with ``"frame"``): one conv over (U, T)
        with the zero padding at the clip's first and last snippet, one multiply-add.
        """
        region = self.fp32_differences and f.dtype == torch.float16  # bf16 has float32's range
        with _float32_region(region, f):
            if weight is None:
                weight, rw, rb = self.difference_weight(), self.recover.weight, self.recover.bias
            else:
                weight, rw, rb = weight["difference"], weight["recover"], weight["recover_bias"]
            if region:
                f, weight, rw, rb = (_as_dtype(t, torch.float32) for t in (f, weight, rw, rb))
            conv = F.conv3d if f.ndim == 5 else F.conv2d  # (N, c, U, T, 1) on the volume path
            if weight.ndim < f.ndim:
                weight, rw = weight.unsqueeze(-1), rw.unsqueeze(-1)
            g = conv(f, weight, padding=(1, weight.shape[3] // 2) + (0,) * (f.ndim - 4))  # - sum_o Conv1x3_o(F̂_{u+o})
            if self.edge == "zero":
                d = torch.addcmul(g, f, self._count(f))
            else:
                d = torch.add(g, f, alpha=len(self.offsets))
            return torch.sigmoid(conv(d, rw, rb))  # Eq. 10

    def _count(self, f: torch.Tensor) -> torch.Tensor:
        """``(U, 1[, 1])``: how many directions have their neighbouring snippet."""
        u = f.shape[2]
        shape = (u,) + (1,) * (f.ndim - 3)
        if torch.compiler.is_compiling():
            return neighbour_count(self.offsets, u, f).view(shape)
        # keyed on inference mode: an inference tensor cannot be saved for a later backward (intra_sim._constant)
        key = (shape, f.dtype, f.device, torch.is_inference_mode_enabled())
        if key not in self._counts:
            self._counts[key] = neighbour_count(self.offsets, u, f).view(shape)
        return self._counts[key]


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
        fp32_differences: run the difference path in float32 under fp16 autocast (bf16, with
            float32's range, cannot overflow there and needs none).
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
        _check_sizes("InterSIM", channels=(channels, False), snippet_len=(snippet_len, False),
                     branch1_reduction=(branch1_reduction, False), snippet_kernel_size=(snippet_kernel_size, True))
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
        self._composed = ComposedWeights()
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
        _check_frames(x, self.snippet_len, "InterSIM", self.channels)
        # int() of a symbolic size would specialise an exported graph to the U it was traced with
        if isinstance(num_snippets, (int, torch.SymInt)) and not isinstance(num_snippets, bool):
            u = num_snippets
        else:
            try:
                u = operator.index(num_snippets)  # a numpy or 0-d tensor integer; never truncates 2.5 to 2
                if isinstance(num_snippets, bool) or getattr(num_snippets, "dtype", None) == torch.bool:  # True is no count
                    raise TypeError
            except TypeError:
                raise ValueError(f"InterSIM: num_snippets = {num_snippets!r}; expected a whole number U >= 1") from None
        if u < 1:
            raise ValueError(f"InterSIM: num_snippets = {num_snippets!r}; expected a whole number U >= 1")
        t = self.snippet_len
        if x.shape[0] % (u * t):
            raise ValueError(
                f"InterSIM: {x.shape[0]} frames in the batch are not a multiple of "
                f"num_snippets U={u} x snippet_len T={t}"
            )
        v = frames_as_clips(x, u, t)  # "(n u t) c h w -> n c u t (h w)", a view
        self._composed.forward_started(self)
        if self._folds():  # eval-mode inference: Eq. 7's first conv (BatchNorm folded) and the squeeze as one conv
            w = self._composed.get(self, self.composed_weights, self.branch1[1].eps)  # eps: folded, no tensor
            pooled = v.mean(-1, keepdim=True)  # GAP: F̄, (N, C, U, T, 1)
            hf = F.conv3d(pooled, w["first"], w["first_bias"], padding=w["padding"])
            if _fp16(hf):  # Inter-SMA's differences in float32 (fp32_differences): the step by step path
                h, f = hf.split(w["split"], 1)[:2]
                f1 = F.conv3d(h, w["second"], w["second_bias"])  # Eq. 7 before σ
                f2 = self.sma.attention(f, w)  # Eq. 8-10
                atten = torch.sigmoid(f1) * _as_dtype(f2, f1.dtype)
            else:  # Eq. 7's Conv1x1 of h and Eq. 10's Conv1x1 of Eq. 8-9 as one conv of (h, F̂): (F̄1, F̄2) before σ
                if self.sma.edge == "zero":  # two slots along the last axis, "n c' u t 1 -> n c' u t 2": slot 0 holds
                    # (h, 0, 0, 1), slot 1 (0, F̂, n ⊙ F̂, 0) (n: existing neighbours of snippet u; composed_weights). One
                    # conv reads both with the same weights: slot 0 gives Eq. 7's logits, Conv1x1(h) + its bias (the
                    # constant channel), slot 1 Eq. 10's, R(-sum_o Conv1x3_o(F̂_{u+o})) + R(n ⊙ F̂) = R(sum_o D_o)
                    z = F.conv3d(hf * self._pair_slots(hf, w["split"]), w["second_attention"],
                                 w["second_attention_bias"], padding=w["second_attention_padding"])
                    atten = _slot_product(torch.sigmoid(z))  # Eq. 7 ⊙ Eq. 10
                else:  # edge "frame": n is the number of directions everywhere, inside the conv's weight
                    z = F.conv3d(hf, w["second_attention"], w["second_attention_bias"], padding=w["second_attention_padding"])
                    atten_1, atten_2 = torch.sigmoid(z).chunk(2, 1)
                    atten = atten_1 * atten_2  # Eq. 7 ⊙ Eq. 10
            conv_u = w["conv_u"]
        else:
            pooled = v.mean(-1)  # GAP: F̄, (N, C, U, T)
            f1 = self.branch1(pooled)  # Eq. 7 before σ
            atten = (torch.sigmoid(f1) * _as_dtype(self.sma(pooled), f1.dtype)).unsqueeze(-1)  # Eq. 8-10
            conv_u = self.conv_u_weight()
        if self.record_attention:
            self.attention = atten.detach().float().mean(1).squeeze(-1)
        # Eq. 11: Conv_U over the snippets of Y = F̄1⊙F̄2⊙F + F, one conv on the clip volume (conv_u_op)
        y = compiled_channels_last(torch.addcmul(v, v, atten), v.stride(1) == 1)
        k = conv_u.shape[2]
        depthwise = conv_u.shape[1] == 1
        op = self._conv_u_op(y, conv_u) if depthwise else "conv2d"
        if op == "triton":  # Triton kernels, forward and backward (dynsnip.modules.depthwise_taps)
            out = depthwise_taps(y, conv_u)
        elif op == "conv3d":
            out = F.conv3d(y, conv_u, padding=(k // 2, 0, 0), dilation=cpu_dilation(y), groups=self.channels)
        else:  # a (k, 1) Conv2d on "n c u t hw -> n c u (t hw)" (a view), depthwise or dense
            out = F.conv2d(y.flatten(3), conv_u.squeeze(-1), padding=(k // 2, 0),
                           groups=self.channels if depthwise else 1).unflatten(3, y.shape[3:])
        return clips_as_frames(out, x.shape)

    #: How a depthwise ``Conv_U`` runs (the same numbers every way, tested): ``"auto"`` (default): on a GPU
    #: in eager mode, Triton kernels, forward and backward (``"triton"``, :mod:`dynsnip.modules.depthwise_taps`:
    #: the H200 profile put cuDNN's grouped kernels and their layout transforms for this conv at 4.3 ms of
    #: ``dil_resnet50``'s 41.7 ms forward); in CPU inference a depthwise Conv3d over ``(U, T, H*W)``, where
    #: oneDNN runs it (``cpu_dilation``) and it measured fastest in the model; elsewhere (CPU training,
    #: ``torch.compile``) the same taps as a ``(k, 1)`` depthwise Conv2d over ``(U, T*H*W)``, which CPU
    #: training measured 2% faster. ``"triton"`` (where the kernels apply, else "auto"'s choice), ``"conv3d"``
    #: or ``"conv2d"`` force one (``benchmarks/gpu.sh`` compares them on a GPU).
    conv_u_op: str = "auto"

    def _conv_u_op(self, y: torch.Tensor, conv_u: torch.Tensor) -> str:
        if self.conv_u_op not in ("auto", "triton", "conv3d", "conv2d"):
            raise ValueError(f"InterSIM.conv_u_op must be 'auto', 'triton', 'conv3d' or 'conv2d', got {self.conv_u_op!r}")
        if self.conv_u_op in ("conv3d", "conv2d"):
            return self.conv_u_op
        if depthwise_taps_available(y, conv_u) or (torch.compiler.is_compiling() and y.device.type in COMPILED_AS_SUM):
            return "triton"  # depthwise_taps: the kernels, or under torch.compile their sum of shifted views
        cpu_inference = y.device.type == "cpu" and not torch.is_grad_enabled() and not torch.compiler.is_compiling()
        return "conv3d" if cpu_inference else "conv2d"

    def _pair_slots(self, hf: torch.Tensor, split: list[int]) -> torch.Tensor:
        """``(c', U, 1, 2)`` for ``hf = (h, F̂, F̂, 1)`` of shape ``(N, c', U, T, 1)`` (channel counts ``split``):
        ``hf * _pair_slots(...)`` puts ``(h, 0, 0, 1)`` on slot 0 and ``(0, F̂, n ⊙ F̂, 0)`` on slot 1, ``n_u`` how many
        directions of snippet u have their neighbouring snippet (:meth:`composed_weights`)."""
        u = hf.shape[2]
        hidden, c = split[0], split[1]

        def build() -> torch.Tensor:
            n = neighbour_count(self.sma.offsets, u, hf)  # (U,)
            ones, zeros = torch.ones_like(n), torch.zeros_like(n)
            rows = ([torch.stack([ones, zeros], -1)] * hidden + [torch.stack([zeros, ones], -1)] * c
                    + [torch.stack([zeros, n], -1)] * c + [torch.stack([ones, zeros], -1)])
            return torch.stack(rows)[:, :, None]  # (c', U, 1, 2)
        if torch.compiler.is_compiling():
            return build()
        # keyed on inference mode: an inference tensor cannot be saved for a later backward (intra_sim._constant)
        key = ("pair_slots", u, hidden, c, hf.dtype, hf.device, torch.is_inference_mode_enabled())
        if key not in self.sma._counts:
            self.sma._counts[key] = build()
        return self.sma._counts[key]

    def conv_u_weight(self) -> torch.Tensor:
        """``Conv_U`` as a Conv3d weight over (U, T, H*W): ``(C, 1, k, 1, 1)`` (depthwise) or
        ``(C, C, k, 1, 1)`` (dense)."""
        if self.conv_u_mode == "depthwise":
            return self.conv_u.view(self.channels, 1, -1, 1, 1)
        return self.conv_u.weight.unsqueeze(-1)

    def _folds(self) -> bool:
        """Whether this forward may use :meth:`composed_weights` (eval-mode inference, eager): not when
        a submodule is training (Eq. 7's BatchNorm switched to train() for test-time recalibration
        normalises with batch statistics, which the folded weights do not)."""
        return not (torch.compiler.is_compiling() or torch.is_grad_enabled() or training_anywhere(self))

    def composed_weights(self) -> dict:
        """Eval-mode weights of the volume path: Eq. 7's ``Conv3x1`` with its BatchNorm folded in
        (affine in eval mode) and Inter-SMA's squeeze in the centre tap of more output channels,
        as one conv of F̄ (``first``); then one conv of its output (``second_attention``) that
        gives Eq. 7's ``Conv1x1`` of ``h`` and Eq. 10's ``Conv1x1`` R put together with Eq. 8-9's convs
        (:meth:`InterSMA.difference_weight`), the logits of ``F̄1`` and ``F̄2`` (Eq. 7 and 10 before σ): the
        latter is ``R(-sum_o Conv1x3_o(F̂_{u+o})) + R(n ⊙ F̂)`` (``n``: existing neighbours of snippet u).
        With ``edge="zero"`` the first conv gives ``(h, F̂, F̂, 1)``, which the forward puts on two slots of
        the last axis (:meth:`_pair_slots`: ``(h, 0, 0, 1)`` and ``(0, F̂, n ⊙ F̂, 0)``), and the second conv
        gives ``F̄1``'s logits on slot 0 and ``F̄2``'s on slot 1 (the attention is then one sigmoid and one
        product over the slots); with ``edge="frame"`` n is constant and inside the weight, and the second
        conv gives both logits as channels of one slot. And ``Conv_U``. The step-by-step weights (``second``,
        ``difference``, ``recover``) serve the float32 difference region under fp16."""
        conv1, bn, conv2 = self.branch1
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        sma = self.sma
        sq = sma.squeeze.weight  # (c, C, 1, 1)
        k = conv1.weight.shape[2]
        diff = sma.difference_weight()  # (c, c, 3, kf)
        kf = diff.shape[3]
        hidden, c = conv1.weight.shape[0], sq.shape[0]
        second = F.pad(conv2.weight, (kf // 2, kf // 2, 1, 1, 0, c))  # (C, h + c, 3, kf): reads h only
        # Eq. 10's Conv1x1 R (no σ before it) composed with Eq. 8-9's conv, R ∘ (-sum_o Conv1x3_o), and R
        # alone at the centre tap (for + n ⊙ F̂, n per snippet: the count of existing neighbours)
        rw = sma.recover.weight.flatten(1)  # (C, c)
        r_diff = torch.einsum("oc,cikl->oikl", rw, diff)  # (C, c, 3, kf)
        r_centre = F.pad(rw[:, :, None, None], (kf // 2, kf // 2, 1, 1))  # (C, c, 3, kf)
        first = torch.cat([conv1.weight * scale[:, None, None, None], F.pad(sq, (0, 0, k // 2, k // 2))])
        first_bias = torch.cat([bn.bias - bn.running_mean * scale, sq.new_zeros(c)])
        if sma.edge == "zero":
            # F̂ twice and a constant channel (weight 0, bias 1) in the first conv's output, (h, F̂, F̂, 1), which the
            # forward puts on two slots of the last axis (_pair_slots): one conv of C outputs, the same weights on
            # both slots, reads h (Eq. 7's Conv1x1) and the constant (the difference of the two biases) on slot 0,
            # F̂ through R ∘ (-sum_o Conv1x3_o) and n ⊙ F̂ through R on slot 1
            first = torch.cat([first, F.pad(sq, (0, 0, k // 2, k // 2)), sq.new_zeros(1, *first.shape[1:])])
            first_bias = torch.cat([first_bias, sq.new_zeros(c), sq.new_ones(1)])
            bias_gap = F.pad((conv2.bias - sma.recover.bias)[:, None, None, None], (kf // 2, kf // 2, 1, 1))
            attention = torch.cat([second[:, :hidden], r_diff, r_centre, bias_gap], 1).unsqueeze(-1)
            attention_bias, split = sma.recover.bias, [hidden, c, c + 1]
        else:
            n = len(sma.offsets)
            attention = torch.cat([second, F.pad(r_diff + n * r_centre, (0, 0, 0, 0, hidden, 0))]).unsqueeze(-1)
            attention_bias, split = torch.cat([conv2.bias, sma.recover.bias]), [hidden, c]
        return {"first": first.unsqueeze(-1), "first_bias": first_bias,
                "padding": (k // 2, 0, 0), "split": split,
                "second": conv2.weight.unsqueeze(-1), "second_bias": conv2.bias,
                "second_attention": attention, "second_attention_bias": attention_bias,
                "second_attention_padding": (1, kf // 2, 0),
                "difference": diff.unsqueeze(-1), "recover": sma.recover.weight.unsqueeze(-1),
                "recover_bias": sma.recover.bias, "conv_u": self.conv_u_weight()}

    def train(self, mode: bool = True) -> "InterSIM":
        self._composed.clear()  # training starts or ends here: nothing composed before it is kept
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True):  # type: ignore[override]
        self._composed.clear()  # .to() / .half(): new tensors; the kept views would block a swap-tensors conversion
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        self._composed.clear()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f"channels={self.channels}, snippet_len={self.snippet_len}, conv_u={self.conv_u_mode!r}, "
                f"conv_u_init={self.conv_u_init!r}")
