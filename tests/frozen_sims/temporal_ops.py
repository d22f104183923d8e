"""Zero-padded shifts and tap-wise convolutions along one axis of a folded video tensor.

The SIMs see frames folded into the batch, ``(N*U*T, C, H, W)``; viewed as
``(N*U, T, C, H, W)`` (frames of a snippet) or ``(N, U, T, C, H, W)`` (snippets of a clip)
a temporal operation is an operation along one axis of a *view*, with no copy of the
layout. The helpers here express "the neighbouring frame" and "a kernel of k taps along an
axis" as zero-padded slices of such views, so that:

* frames never leak across the border of the axis (a snippet's last frame has no
  successor: it sees zeros, never the first frame of the next snippet);
* nothing loops over frames, snippets or clips; a kernel of k taps costs k multiply-adds;
* the same code runs eagerly, under ``torch.compile(fullgraph=True)`` and in ONNX export.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def pad_axis(x: torch.Tensor, dim: int, before: int, after: int) -> torch.Tensor:
    """Zero-pad ``x`` along ``dim`` with ``before``/``after`` elements."""
    dim = dim % x.ndim
    pad = [0, 0] * (x.ndim - dim - 1) + [before, after]
    return F.pad(x, pad)


def shift_axis(x: torch.Tensor, offset: int, dim: int) -> torch.Tensor:
    """``y[..., i, ...] = x[..., i + offset, ...]``, zero where ``i + offset`` falls outside.

    ``offset=+1`` brings each element's successor into its place (``F_{t+1}`` at ``t``),
    ``offset=-1`` its predecessor (``F_{t-1}`` at ``t``).
    """
    if offset == 0:
        return x
    n = x.shape[dim]
    if offset > 0:
        return pad_axis(x.narrow(dim, offset, n - offset), dim, 0, offset)
    return pad_axis(x.narrow(dim, 0, n + offset), dim, -offset, 0)


def neighbour_difference(
    f: torch.Tensor, g: torch.Tensor, offset: int, dim: int, edge: str = "zero"
) -> torch.Tensor:
    """``D_t = f_t - g_{t+offset}`` along ``dim`` (Eq. 1, 8, 9 with ``g = Conv(f)``).

    ``edge`` decides what the difference is where the neighbour ``t+offset`` does not exist
    (a snippet's first/last frame, a clip's first/last snippet):

    * ``"zero"``: the difference is 0 there (no motion evidence at the border; the
      convention of TEA/TDN-style difference modules);
    * ``"frame"``: the missing neighbour is a zero feature, so ``D_t = f_t``.
    """
    if edge == "frame":
        return f - shift_axis(g, offset, dim)
    if edge != "zero":
        raise ValueError(f"edge must be 'zero' or 'frame', got {edge!r}")
    n = f.shape[dim]
    k = abs(offset)
    if offset > 0:
        d = f.narrow(dim, 0, n - k) - g.narrow(dim, k, n - k)
        return pad_axis(d, dim, 0, k)
    d = f.narrow(dim, k, n - k) - g.narrow(dim, 0, n - k)
    return pad_axis(d, dim, k, 0)


def tap_conv_axis(x: torch.Tensor, taps: Sequence[torch.Tensor], dim: int) -> torch.Tensor:
    """Cross-correlation of ``x`` with a ``k``-tap kernel along ``dim``, zero-padded.

    ``out_i = sum_j taps[j]_i * x_{i + j - k//2}`` (terms whose ``x`` index falls outside
    the axis are dropped: zero padding). Each ``taps[j]`` broadcasts against ``x`` (so it can
    be per-sample and per-channel: a depthwise, possibly dynamic, kernel); a tap whose size
    along ``dim`` is the axis length holds one value per *output* position ``i``.
    ``k`` must be odd so that the output stays aligned with the input.

    The centre tap makes the output, the others are accumulated in place into the slices
    that have a neighbour (``addcmul_``): no padded copy of ``x`` and no temporaries, which
    autograd, ``torch.compile`` and ONNX export (as slice updates) all accept.
    """
    k = len(taps)
    if k % 2 != 1:
        raise ValueError(f"kernel size must be odd, got {k}")
    half = k // 2
    dim = dim % x.ndim
    n = x.shape[dim]
    out = x * taps[half]
    for j, tap in enumerate(taps):  # loop over kernel taps, not over frames
        o = j - half
        if o == 0 or abs(o) >= n:
            continue
        m = n - abs(o)
        tdim = dim - (x.ndim - tap.ndim)  # taps broadcast from the right
        if tdim >= 0 and tap.shape[tdim] != 1:
            tap = tap.narrow(tdim, max(-o, 0), m)
        out.narrow(dim, max(-o, 0), m).addcmul_(x.narrow(dim, max(o, 0), m), tap)
    return out
