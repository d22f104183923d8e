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


# ------------------------------------------------------------------ clip volumes (issue 24)
# The SIMs' fast path views the folded frames ``(N*U*T, C, H, W)`` as a volume per snippet,
# ``(N*U, C, T, H, W)``, or per clip, ``(N, C, U, T, H*W)``: for channels_last frames such a view
# is exactly a channels_last_3d tensor, so that a temporal operation becomes one Conv3d over the
# volume (zero padding at the snippet's or clip's border: nothing leaks across), with no copy and
# no change of layout in or out.


def _restrided(x: torch.Tensor) -> bool:
    """Whether to take a view with one ``as_strided`` call instead of a chain of view ops: in eager
    inference, where each call is host time. Not under autograd (``as_strided``'s backward
    materialises the whole storage) nor under ``torch.compile``/export (a view chain is what
    they trace best)."""
    return not (torch.is_grad_enabled() or torch.compiler.is_compiling())


def frames_as_snippets(x: torch.Tensor, snippet_len: int) -> torch.Tensor:
    """``(N*U*T, C, H, W)`` -> ``(N*U, C, T, H, W)`` ("(b t) c h w -> b c t h w"), a view."""
    if _restrided(x):
        s0, s1, s2, s3 = x.stride()
        return x.as_strided((x.shape[0] // snippet_len, x.shape[1], snippet_len, *x.shape[2:]),
                            (snippet_len * s0, s1, s0, s2, s3), x.storage_offset())
    return x.unflatten(0, (-1, snippet_len)).transpose(1, 2)


def snippets_as_frames(v: torch.Tensor) -> torch.Tensor:
    """``(N*U, C, T, H, W)`` -> ``(N*U*T, C, H, W)`` ("b c t h w -> (b t) c h w"); a view for a
    channels_last_3d volume (what :func:`frames_as_snippets` gives for channels_last frames)."""
    b, c, t, h, w = v.shape
    a = v.stride()
    if _restrided(v) and a[0] == t * a[2]:
        return v.as_strided((b * t, c, h, w), (a[2], a[1], a[3], a[4]), v.storage_offset())
    return v.transpose(1, 2).flatten(0, 1)


def frames_as_clips(x: torch.Tensor, num_snippets: int, snippet_len: int) -> torch.Tensor:
    """``(N*U*T, C, H, W)`` -> ``(N, C, U, T, H*W)`` ("(n u t) c h w -> n c u t (h w)"), a view
    when H and W can be merged (channels_last or contiguous frames)."""
    n_ut, c, h, w = x.shape
    s0, s1, s2, s3 = x.stride()
    if _restrided(x) and s2 == w * s3:
        u, t = num_snippets, snippet_len
        return x.as_strided((n_ut // (u * t), c, u, t, h * w), (u * t * s0, s1, t * s0, s0, s3), x.storage_offset())
    return x.reshape(-1, num_snippets, snippet_len, c, h * w).permute(0, 3, 1, 2, 4)


def clips_as_frames(v: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Inverse of :func:`frames_as_clips` for frames of ``shape``."""
    n, c, u, t, hw = v.shape
    b = v.stride()
    if _restrided(v) and b[0] == u * b[2] and b[2] == t * b[3]:
        return v.as_strided(shape, (b[3], b[1], shape[3] * b[4], b[4]), v.storage_offset())
    return v.permute(0, 2, 3, 1, 4).reshape(shape)


def cpu_dilation(x: torch.Tensor) -> tuple[int, int, int] | int:
    """Dilation for a Conv3d whose kernel is 1 along W: ``(1, 1, 2)`` for CPU inference, else 1.

    Along a kernel dimension of size 1 a dilation changes nothing, but PyTorch's CPU backend
    picks oneDNN for a dilated convolution; an undilated one with a 1x1 kernel, a batch under 16
    and one thread goes to its reference ``slow_conv3d`` (unfold + matmul), which returns NCDHW
    and costs copies back to channels last. Inference only: the backward of such a dilated
    Conv3d crashes in torch 2.14's oneDNN (memory corruption on 224 px clips, found here).
    GPUs are left alone.
    """
    return (1, 1, 2) if x.device.type == "cpu" and not torch.is_grad_enabled() else 1


def compiled_channels_last(t: torch.Tensor, enabled: bool) -> torch.Tensor:
    """Under ``torch.compile``, pin ``t`` to channels_last_3d order (``enabled``: the frames came
    channels_last). Inductor chooses the layout of the buffers it fuses itself, and for a 5-d
    tensor before a Conv3d or a concatenation it chooses NCDHW (its channels-last preference
    covers 4-d tensors only): a full-size buffer in the wrong order and a conversion back.
    Eager ops keep the layout of their inputs: there this is nothing (no op)."""
    # not under torch.export (ONNX): the pin is inductor's own op, no exporter knows it
    if enabled and torch.compiler.is_compiling() and not torch.compiler.is_exporting():
        return _ForceChannelsLast3d.apply(t)
    return t


def _channels_last_3d_strides(shape: Sequence[int]) -> tuple[int, ...]:
    b, c, d, h, w = shape
    return (d * h * w * c, 1, h * w * c, w * c, c)


class _ForceChannelsLast3d(torch.autograd.Function):
    """Inductor's ``force_stride_order`` (a copy only where the order differs), in both directions."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        import torch._inductor.inductor_prims  # noqa: F401  (registers prims.inductor_force_stride_order)

        return torch.ops.prims.inductor_force_stride_order(t, _channels_last_3d_strides(t.shape))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        import torch._inductor.inductor_prims  # noqa: F401

        return torch.ops.prims.inductor_force_stride_order(grad, _channels_last_3d_strides(grad.shape))


def dynamic_tap_conv(v: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """A per-sample, per-channel ``k``-tap kernel along T of a volume, zero-padded.

    ``v``: ``(B, C, T, H, W)``, ``kernel``: ``(B, C, k)``, ``k`` odd. ``out[b, c, t] =
    sum_j kernel[b, c, j] * v[b, c, t + j - k//2]`` (terms outside the snippet dropped). One pad,
    one window view and one dot product of each window with its kernel (``torch.linalg.vecdot``: one
    call, a product and a sum below it; a kernel that differs per sample is no Conv3d weight); a
    channels_last_3d ``v`` gives a channels_last_3d result.
    """
    k = kernel.shape[-1]
    if k % 2 != 1:
        raise ValueError(f"kernel size must be odd, got {k}")
    if v.ndim != 5:
        raise ValueError(f"expects a (B, C, T, H, W) volume, got shape {tuple(v.shape)}")
    b, c = kernel.shape[:2]
    kernel = kernel if kernel.dtype == v.dtype else kernel.to(v.dtype)
    # channels last (b t h w c): the k neighbours of every position as the last axis, then a sum
    # over it; with the channel axis before it the result keeps v's memory format
    padded = F.pad(v, (0, 0, 0, 0, k // 2, k // 2))  # (B, C, T + k - 1, H, W), v's memory format
    if _restrided(padded):  # eager inference: the window view in one call
        s = padded.stride()
        windows = padded.as_strided((b, padded.shape[2] - k + 1, *padded.shape[3:], c, k),
                                    (s[0], s[2], s[3], s[4], s[1], s[2]), padded.storage_offset())
    else:
        windows = padded.permute(0, 2, 3, 4, 1).unfold(1, k, 1)  # (B, T, H, W, C, k)
    # "b t h w c k, b c k -> b c t h w"
    return torch.linalg.vecdot(windows, kernel.view(b, 1, 1, 1, c, k), dim=-1).permute(0, 4, 1, 2, 3)


def direction_mask(offsets: Sequence[int], length: int, repeat: int, like: torch.Tensor) -> torch.Tensor:
    """``(repeat * P, length)`` with 1 where position ``i`` has a neighbour ``i + o`` in the axis.

    Row ``r * P + p`` belongs to direction ``offsets[p]`` (the channel order of a depthwise conv
    with one output per direction): multiplying a difference by it makes the difference zero at
    the border (``edge="zero"``).
    """
    i = torch.arange(length, device=like.device)
    valid = torch.stack([((i + o) >= 0) & ((i + o) < length) for o in offsets])  # (P, length)
    return valid.repeat(repeat, 1).to(like.dtype)


def neighbour_count(offsets: Sequence[int], length: int, like: torch.Tensor) -> torch.Tensor:
    """``(length,)``: how many of the neighbours ``i + o`` of each position exist."""
    i = torch.arange(length, device=like.device)
    return sum((((i + o) >= 0) & ((i + o) < length)).to(like.dtype) for o in offsets)
