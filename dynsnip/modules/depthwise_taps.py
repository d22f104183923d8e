"""Depthwise "same" convolutions of a channels-last volume as Triton kernels, forward and backward.

What it computes
----------------
For ``x (B, C, D, H, W)`` and ``weight (C, 1, kd, kh, kw)`` (odd sizes), :func:`depthwise_taps` is
``F.conv3d(x, weight, padding=(kd // 2, kh // 2, kw // 2), groups=C)``::

    y[b, c, d, h, w] = sum_{i, j, l} weight[c, 0, i, j, l] * x[b, c, d + i - kd//2, h + j - kh//2, w + l - kw//2]

with every term whose source lies outside the volume dropped (zero padding). Accumulated in float32,
stored in ``x.dtype`` (the weight is cast to ``x.dtype`` first, as autocast does for the conv).

Tensor layouts: ``x`` may be any strided view; in the model it is channels-last (channel stride 1):

* the Intra-SIM's motion channels, Eq. 1 summed over the directions (``IntraSMA.volume_attention_and_motion``):
  ``x`` is a channel slice of the squeezed snippet volume ``(N*U, c, T, H, W)``, kernel ``(3, 3, 3)``: the
  padding along T is the snippet's border, so frames of two snippets never meet;
* the Inter-SIM's ``Conv_U`` (Eq. 11): ``x`` is the clip volume ``(N, C, U, T, H*W)``, kernel ``(k, 1, 1)``:
  the padding along U is the clip's border.

The result is channels_last_3d when ``x`` has channel stride 1, else contiguous.

Why
---
On a GPU, PyTorch hands these convs to cuDNN's grouped "direct" kernels, and for a channels-last
input brackets them with layout transforms (``tensorTransformGeneric``). The H200 profile of
``dil_resnet50`` (bf16, 16 clips; ``benchmarks/results/h200_2026-12-04/``) put the motion channels'
depthwise Conv3d at about 12.8 ms and ``Conv_U``'s at 4.3 ms of a 41.7 ms forward whose backbone
takes 15.9 ms: each moves a few hundred MB, a tenth of a millisecond at the GPU's bandwidth. Here
one program handles a block of ``(b, d, h, w)`` positions times a block of channels, the channel the
fastest axis (the memory order of channels-last), and reads the neighbours' values from the cache.

Backward (:class:`_DepthwiseTapsFunction`): for a "same" depthwise conv the input's gradient is the
same conv of the output's gradient with the kernel flipped (one more forward launch), and the
weight's gradient a reduction per channel and tap (:func:`depthwise_taps_weight_grad`: each program
sums a stretch of positions into per-tap partial sums, which one ``sum`` adds up).

Under ``torch.compile`` (on the devices of :data:`COMPILED_AS_SUM`) the conv is written as a sum of
shifted views (:func:`depthwise_taps_as_sum`), which inductor turns into stencil kernels of its own.

Checks
------
:func:`depthwise_taps_reference` (``F.conv3d``) is the ground truth; ``tests/test_depthwise_taps.py``
runs the kernels under Triton's interpreter (``TRITON_INTERPRET=1``, CPU tensors) against it and
against autograd's gradients. :func:`depthwise_taps` is what the modules call: the kernels where
:func:`depthwise_taps_available` says they apply, each direction (forward, backward) checked against
the reference on its first use on a device, dtype and kernel size; a disagreement, or a kernel that
does not compile or launch there, turns them off there with a warning (the reference runs instead).
"""
from __future__ import annotations

import warnings
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from .gate_tap import SUPPORTED_DTYPES, _interpreting, _storage_elements, disagreement, tl, triton

# a block of about this many (position, channel) elements per program, channels up to MAX_BLOCK_C
BLOCK_ELEMENTS = 1024
MAX_BLOCK_C = 64
# the weight gradient's programs along the positions: each sums a stretch of them into per-tap partials
WEIGHT_GRAD_PROGRAMS = 512
_INT32_LIMIT = 2**31 - 1


def _check_inputs(x: torch.Tensor, weight: torch.Tensor) -> tuple[int, int, int]:
    """``(kd, kh, kw)`` of valid inputs; a ValueError that names what is wrong otherwise."""
    if x.ndim != 5:
        raise ValueError(f"depthwise_taps: x must be a (B, C, D, H, W) volume, got shape {tuple(x.shape)}")
    c = x.shape[1]
    if weight.ndim != 5 or weight.shape[:2] != (c, 1) or any(k % 2 == 0 for k in weight.shape[2:]):
        raise ValueError(f"depthwise_taps: weight must be (C, 1, kd, kh, kw) with C = x's {c} channels and odd "
                         f"kernel sizes, got {tuple(weight.shape)}")
    if weight.device != x.device:
        raise ValueError(f"depthwise_taps: weight is on {weight.device}, x on {x.device}")
    return tuple(weight.shape[2:])  # type: ignore[return-value]


def _padding(weight: torch.Tensor) -> tuple[int, int, int]:
    return tuple(k // 2 for k in weight.shape[2:])  # type: ignore[return-value]


def depthwise_taps_reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The depthwise "same" conv as ``F.conv3d``: the ground truth of the kernels (and what runs where they do not)."""
    _check_inputs(x, weight)
    # the conv's dtype is x's: cast where autocast would not (a .to is an op to dispatch even when it does
    # nothing, and under autocast the conv casts its weight itself: docs/performance.md counts the ops)
    if weight.dtype != x.dtype and not torch.is_autocast_enabled(x.device.type):
        weight = weight.to(x.dtype)
    return F.conv3d(x, weight, padding=_padding(weight), groups=x.shape[1])


def depthwise_taps_as_sum(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The same conv as a sum of shifted, scaled views of the zero-padded ``x`` (plain pointwise ops):
    what ``torch.compile`` sees on the devices of :data:`COMPILED_AS_SUM`, so that inductor generates the
    stencil (one kernel with the ops around it, its backward too) instead of calling the conv, which on a
    GPU is cuDNN's grouped kernel between layout transforms. Slow in eager mode (one op per tap)."""
    kd, kh, kw = _check_inputs(x, weight)
    d, h, w = x.shape[2:]
    pd, ph, pw = kd // 2, kh // 2, kw // 2
    padded = F.pad(x, (pw, pw, ph, ph, pd, pd))
    taps = weight.to(x.dtype)
    out = None
    for i in range(kd):
        for j in range(kh):
            for m in range(kw):
                term = padded[:, :, i:i + d, j:j + h, m:m + w] * taps[:, 0, i, j, m].view(1, -1, 1, 1, 1)
                out = term if out is None else out + term
    return out


#: The devices on which a compiled model runs these convs as :func:`depthwise_taps_as_sum` (inductor's own
#: stencil kernels) rather than as the conv op. CUDA: cuDNN's grouped kernels are the slow ones (module
#: docstring); the CPU keeps oneDNN's conv, whose compiled figures docs/performance.md reports.
COMPILED_AS_SUM: tuple[str, ...] = ("cuda",)


def depthwise_taps_available(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the Triton kernels apply: a CUDA tensor of a supported dtype (float32, float16,
    bfloat16), triton importable, not while ``torch.compile`` traces (the conv stays an op of the
    graph there), a 5-d ``x`` and a ``(C, 1, k, k, k)`` weight with odd sizes. On a CPU only under
    Triton's interpreter (``TRITON_INTERPRET=1`` set before triton is imported): the tests."""
    if torch.compiler.is_compiling() or triton is None or x.dtype not in SUPPORTED_DTYPES:
        return False
    if x.device.type != "cuda" and not (x.device.type == "cpu" and _interpreting()):
        return False
    return (x.ndim == 5 and weight.ndim == 5 and weight.shape[:2] == (x.shape[1], 1)
            and all(k % 2 for k in weight.shape[2:]) and weight.device == x.device)


def _result_format(x: torch.Tensor) -> torch.memory_format:
    return torch.channels_last_3d if x.stride(1) == 1 else torch.contiguous_format


def _blocks(channels: int) -> tuple[int, int]:
    block_c = min(1 << max(channels - 1, 0).bit_length(), MAX_BLOCK_C)
    return max(1, BLOCK_ELEMENTS // block_c), block_c


def _device(x: torch.Tensor):
    return torch.cuda.device(x.device) if x.is_cuda else nullcontext()  # launch on x's GPU, not the current one


def _require_kernels(x: torch.Tensor) -> None:
    if triton is None:
        raise RuntimeError("depthwise_taps' kernels need triton (CUDA builds of torch bring it)")
    if x.device.type != "cuda" and not (x.device.type == "cpu" and _interpreting()):
        raise RuntimeError(f"depthwise_taps' kernels run CUDA tensors (a CPU tensor only under Triton's interpreter: "
                           f"TRITON_INTERPRET=1 set before triton is imported), got a tensor on {x.device}")


def depthwise_taps_triton(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The forward kernel, one launch (no autograd: :func:`depthwise_taps` gives that)."""
    _require_kernels(x)
    kd, kh, kw = _check_inputs(x, weight)
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=_result_format(x))
    if out.numel() == 0:
        return out
    b, c, d, h, w = x.shape
    positions = b * d * h * w
    block_p, block_c = _blocks(c)
    wide = max(_storage_elements(x), out.numel() + block_p * c) > _INT32_LIMIT
    taps = weight.detach().to(x.dtype).reshape(c, kd * kh * kw).contiguous()
    grid = (-(-positions // block_p), -(-c // block_c))
    with _device(x):
        _kernel("forward")[grid](
            x, taps, out, positions, c, d, h, w, *x.stride(), *out.stride(),
            KD=kd, KH=kh, KW=kw, WIDE=wide, BLOCK_P=block_p, BLOCK_C=block_c, num_warps=4,
        )
    return out


def depthwise_taps_weight_grad(grad: torch.Tensor, x: torch.Tensor, kernel: tuple[int, int, int]) -> torch.Tensor:
    """The weight's gradient ``(C, 1, kd, kh, kw)`` (float32) of the "same" depthwise conv of ``x``,
    given the output's gradient ``grad`` (x's shape): ``sum_{b, d, h, w} grad[b, c, d, h, w] *
    x[b, c, d + i - kd//2, h + j - kh//2, w + l - kw//2]`` per channel c and tap (i, j, l)."""
    _require_kernels(x)
    kd, kh, kw = kernel
    b, c, d, h, w = x.shape
    taps = kd * kh * kw
    positions = b * d * h * w
    if positions == 0 or c == 0:
        return torch.zeros(c, 1, kd, kh, kw, dtype=torch.float32, device=x.device)
    block_p, block_c = _blocks(c)
    programs = min(-(-positions // block_p), WEIGHT_GRAD_PROGRAMS)
    chunk = -(-(-(-positions // programs)) // block_p) * block_p  # positions per program, a multiple of block_p
    programs = -(-positions // chunk)
    taps_p2 = 1 << max(taps - 1, 0).bit_length()
    partial = torch.empty(programs, taps_p2, c, dtype=torch.float32, device=x.device)
    wide = max(_storage_elements(x), _storage_elements(grad), positions + chunk) > _INT32_LIMIT
    with _device(x):
        _kernel("weight_grad")[(programs, -(-c // block_c))](
            grad, x, partial, positions, chunk, c, d, h, w, *grad.stride(), *x.stride(),
            KD=kd, KH=kh, KW=kw, TAPS_P2=taps_p2, WIDE=wide, BLOCK_P=block_p, BLOCK_C=block_c, num_warps=4,
        )
    return partial.sum(0)[:taps].t().reshape(c, 1, kd, kh, kw)


class _DepthwiseTapsFunction(torch.autograd.Function):
    """Forward: :func:`depthwise_taps_triton`. Backward: the input's gradient is the conv of the output's
    gradient with the flipped kernel ("same" padding, odd sizes), the weight's :func:`depthwise_taps_weight_grad`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, weight)
        return depthwise_taps_triton(x, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        x, weight = ctx.saved_tensors
        want_x, want_w = ctx.needs_input_grad[:2]
        return _checked_backward(x, weight, grad, want_x, want_w)


def _backward_kernels(x, weight, grad, want_x, want_w):
    grad_x = depthwise_taps_triton(grad, weight.flip(2, 3, 4)) if want_x else None
    grad_w = depthwise_taps_weight_grad(grad, x, tuple(weight.shape[2:])).to(weight.dtype) if want_w else None
    return grad_x, grad_w


def _backward_reference(x, weight, grad, want_x, want_w):
    with torch.enable_grad():
        xr = x.detach().requires_grad_(want_x)
        wr = weight.detach().requires_grad_(want_w)
        y = F.conv3d(xr, wr, padding=_padding(wr), groups=x.shape[1])
        wanted = [t for t, want in ((xr, want_x), (wr, want_w)) if want]
        grads = iter(torch.autograd.grad(y, wanted, grad))
    return (next(grads) if want_x else None), (next(grads) if want_w else None)


# ------------------------------------------------------------------ the modules' entry point

#: (direction, device, dtype, kernel size) -> whether the kernels agreed with the reference on their first use
_VERIFIED: dict[tuple, bool] = {}


def depthwise_taps(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The depthwise "same" conv of ``x`` (module docstring): the Triton kernels where
    :func:`depthwise_taps_available` says they apply, else :func:`depthwise_taps_reference`.
    Differentiable either way. Each direction is checked once per device, dtype and kernel size
    against the reference (float32: within 1e-4 of the output's scale; bfloat16/float16: 2e-2;
    a NaN or inf on one side only is a disagreement); a kernel that disagrees, or raises on that
    first use (it does not compile or launch on this GPU, driver or Triton), is turned off there
    with a warning, and that call returns the reference's result (fail closed: a detector's scores
    never come from a kernel that disagreed). ``ValueError`` (the inputs) and running out of GPU
    memory are raised as they are."""
    if torch.compiler.is_compiling() and x.device.type in COMPILED_AS_SUM:
        return depthwise_taps_as_sum(x, weight)
    if not depthwise_taps_available(x, weight):
        return depthwise_taps_reference(x, weight)
    weight = weight.to(x.dtype)  # as autocast casts the conv's weight
    key = ("forward", str(x.device), x.dtype, tuple(weight.shape[2:]))
    verified = _VERIFIED.get(key)
    if verified is False:
        return depthwise_taps_reference(x, weight)
    if verified:
        return _DepthwiseTapsFunction.apply(x, weight)
    try:
        out = _DepthwiseTapsFunction.apply(x, weight)
    except (ValueError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as err:
        return _turn_off(key, f"failed: {type(err).__name__}: {err}", lambda: depthwise_taps_reference(x, weight))
    with torch.no_grad():
        want = depthwise_taps_reference(x.detach(), weight.detach())
    problem = disagreement(out.detach(), want)
    _VERIFIED[key] = problem is None
    if problem is not None:
        return _turn_off(key, f"disagrees with the reference: {problem}", lambda: depthwise_taps_reference(x, weight))
    return out


def _checked_backward(x, weight, grad, want_x, want_w):
    key = ("backward", str(x.device), x.dtype, tuple(weight.shape[2:]))
    verified = _VERIFIED.get(key)
    if verified is False:
        return _backward_reference(x, weight, grad, want_x, want_w)
    try:
        got = _backward_kernels(x, weight, grad, want_x, want_w)
    except (ValueError, torch.cuda.OutOfMemoryError):
        raise
    except Exception as err:
        return _turn_off(key, f"failed: {type(err).__name__}: {err}",
                         lambda: _backward_reference(x, weight, grad, want_x, want_w))
    if verified:
        return got
    want = _backward_reference(x, weight, grad, want_x, want_w)
    problems = [p for p in (disagreement(g, r) for g, r in zip(got, want) if g is not None) if p is not None]
    _VERIFIED[key] = not problems
    if problems:
        return _turn_off(key, f"disagrees with the reference: {problems[0]}", lambda: want)
    return got


def _turn_off(key: tuple, problem: str, reference):
    _VERIFIED[key] = False
    direction, device, dtype, kernel = key
    warnings.warn(f"depthwise_taps' {direction} kernel on {device} ({dtype}, kernel {kernel}) {problem}; the SIMs "
                  "use PyTorch's conv there from now on (please report this with your GPU, torch and triton versions)",
                  RuntimeWarning, stacklevel=3)
    return reference()


# ------------------------------------------------------------------ the kernels

if triton is not None:

    def _forward_program(
        x_ptr, w_ptr, o_ptr,
        positions, C, D, H, W,
        sxb, sxc, sxd, sxh, sxw,
        sob, soc, sod, soh, sow,
        KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, WIDE: tl.constexpr,
        BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
    ):
        """One block of (b, d, h, w) positions x a block of channels: the sum over all KD*KH*KW taps."""
        pos = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
        ch = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        if WIDE:
            pos = pos.to(tl.int64)
            ch = ch.to(tl.int64)
        in_pos = pos < positions
        in_ch = ch < C
        w = pos % W
        rest = pos // W
        h = rest % H
        rest = rest // H
        d = rest % D
        b = rest // D
        x_col = (ch * sxc)[None, :]
        acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
        for i in tl.static_range(KD):
            di = d + (i - KD // 2)
            ok_d = in_pos & (di >= 0) & (di < D)
            for j in tl.static_range(KH):
                hj = h + (j - KH // 2)
                ok_h = ok_d & (hj >= 0) & (hj < H)
                for m in tl.static_range(KW):
                    wm = w + (m - KW // 2)
                    ok = ok_h & (wm >= 0) & (wm < W)
                    row = b * sxb + di * sxd + hj * sxh + wm * sxw
                    xv = tl.load(x_ptr + row[:, None] + x_col, mask=ok[:, None] & in_ch[None, :], other=0.0)
                    tap = tl.load(w_ptr + ch * (KD * KH * KW) + (i * KH * KW + j * KW + m), mask=in_ch, other=0.0)
                    acc += xv.to(tl.float32) * tap.to(tl.float32)[None, :]
        o_at = o_ptr + (b * sob + d * sod + h * soh + w * sow)[:, None] + (ch * soc)[None, :]
        tl.store(o_at, acc.to(o_ptr.dtype.element_ty), mask=in_pos[:, None] & in_ch[None, :])

    def _weight_grad_program(
        g_ptr, x_ptr, p_ptr,
        positions, chunk, C, D, H, W,
        sgb, sgc, sgd, sgh, sgw,
        sxb, sxc, sxd, sxh, sxw,
        KD: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr, TAPS_P2: tl.constexpr, WIDE: tl.constexpr,
        BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
    ):
        """Positions [pid * chunk, (pid + 1) * chunk) x a block of channels: per-tap partial sums of grad * x."""
        pid = tl.program_id(0)
        ch = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        if WIDE:
            ch = ch.to(tl.int64)
        in_ch = ch < C
        tap_ids = tl.arange(0, TAPS_P2)
        acc = tl.zeros((TAPS_P2, BLOCK_C), dtype=tl.float32)
        if WIDE:
            pid = pid.to(tl.int64)  # before the product: pid * chunk may pass 2**31
        start = pid * chunk
        end = tl.minimum(start + chunk, positions)
        for offset in range(0, chunk, BLOCK_P):
            pos = start + offset + tl.arange(0, BLOCK_P)
            in_pos = pos < end
            w = pos % W
            rest = pos // W
            h = rest % H
            rest = rest // H
            d = rest % D
            b = rest // D
            g_at = g_ptr + (b * sgb + d * sgd + h * sgh + w * sgw)[:, None] + (ch * sgc)[None, :]
            gv = tl.load(g_at, mask=in_pos[:, None] & in_ch[None, :], other=0.0).to(tl.float32)
            for i in tl.static_range(KD):
                di = d + (i - KD // 2)
                ok_d = in_pos & (di >= 0) & (di < D)
                for j in tl.static_range(KH):
                    hj = h + (j - KH // 2)
                    ok_h = ok_d & (hj >= 0) & (hj < H)
                    for m in tl.static_range(KW):
                        wm = w + (m - KW // 2)
                        ok = ok_h & (wm >= 0) & (wm < W)
                        row = b * sxb + di * sxd + hj * sxh + wm * sxw
                        xv = tl.load(x_ptr + row[:, None] + (ch * sxc)[None, :], mask=ok[:, None] & in_ch[None, :],
                                     other=0.0)
                        s = tl.sum(gv * xv.to(tl.float32), axis=0)  # (BLOCK_C,)
                        acc += tl.where(tap_ids[:, None] == (i * KH * KW + j * KW + m), s[None, :], 0.0)
        p_at = p_ptr + pid * (TAPS_P2 * C) + (tap_ids * C)[:, None] + ch[None, :]
        tl.store(p_at, acc, mask=(tap_ids < KD * KH * KW)[:, None] & in_ch[None, :])


_KERNELS: dict = {}


def _kernel(name: str):
    """The jitted kernel, made on first use (``triton.jit`` decides between compiler and interpreter when
    it decorates: one is kept for each mode)."""
    key = (name, _interpreting())
    if key not in _KERNELS:
        _KERNELS[key] = triton.jit(_forward_program if name == "forward" else _weight_grad_program)
    return _KERNELS[key]
