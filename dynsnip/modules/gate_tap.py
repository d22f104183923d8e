"""The Intra-SIM's elementwise tail as one Triton kernel: sigmoids, gate and the k-tap kernel (Eq. 5).

What it computes
----------------
Eq. 5 of the paper, ``O_2 = K ⊗ (Atten_H ⊙ Atten_W ⊙ X_2 + X_2)``, from the attention's logits
(the output of the recovery 1x1 convs, before their sigmoids)::

    y[b, c, t, h, w] = x[b, c, t, h, w] * (1 + σ(a[b, c, t, h, w]) * σ(b'[b, c, t, h, w]))
    o[b, c, t, h, w] = sum_j kernel[b, c, j] * y[b, c, t + j - k//2, h, w]

with the terms whose frame ``t + j - k//2`` falls outside ``[0, T)`` dropped: zero padding at the
snippet's border, so that frames of another snippet never mix in. Accumulated in float32, stored
in ``x.dtype``.

Tensor layouts (volumes are ``(B, C, T, H, W)``, one snippet of T frames per ``B``):

* ``x``: ``(B, g, T, H, W)``, the gated channels ``X_2`` (float32, float16 or bfloat16);
* ``logits``: ``(B, P g, T, H, W)``, ``P = 2``: channels ``[0, g)`` are the H x T plane's logits
  ``a``, ``[g, 2g)`` the T x W plane's ``b'`` (``Atten_H ⊙ Atten_W``); ``P = 1``: ``[0, g)`` only,
  attention ``σ(a)`` (no coordinate attention). ``x``'s dtype or float32;
* ``kernel``: ``(B, g, k)``, ``k`` odd, softmaxed already (Eq. 4), or ``None``: no learnable
  kernel (Table 5's LK off), ``o = y``;
* ``out`` (optional): a ``(B, g, T, H, W)`` view to write into (a channel slice of the module's
  output, say); without it the result is channels_last_3d when ``x`` has channel stride 1, else
  contiguous.

Every input may be an arbitrary strided view: in the model they are channel slices of a
channels_last_3d volume (channel stride 1, a batch stride of the whole tensor).

What is fused, and why
----------------------
On a GPU the eager tail (``IntraSIM.forward_volume`` from the recovery conv to ``O_2``) is twelve
aten ops, each a host dispatch: seven kernels, six of which read and write full-size maps
(sigmoid, the product of the two maps, addcmul, pad, the product with the kernel, the sum; and
the kernel's cast to ``x.dtype``), and five views (chunk, the window view, the permutes around it).
Here it is one launch that reads ``x`` and the logits once per tap (the neighbouring frames'
reads hit the cache) and writes ``o`` once. One program handles a block of ``(b, t, h, w)`` positions times
a block of channels, the channel the fastest axis (the memory order of channels_last_3d).

:func:`gate_tap_reference` is the same computation in plain torch ops, simple and slow: it is
the check (``tests/test_gate_tap.py`` runs the kernel under Triton's interpreter,
``TRITON_INTERPRET=1``, on CPU tensors, against it). Forward only: the kernel has no autograd;
:func:`gate_tap_available` says when it applies (elsewhere the module's eager ops run).
:func:`gate_tap` is what the Intra-SIM calls: the kernel, checked against the reference on its
first use on each device and dtype (a disagreement turns it off there, with a warning).
"""
from __future__ import annotations

import warnings
from contextlib import nullcontext

import torch
import torch.nn.functional as F

try:  # optional: CUDA builds of torch bring triton; CPU-only installs may not have it
    import triton
    import triton.language as tl

    _NO_TRITON = ""
except Exception as error:  # missing, or an install that does not import: the eager ops run instead
    triton = None
    tl = None
    _NO_TRITON = f"{type(error).__name__}: {error}"

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# a block of about this many (position, channel) elements per program, channels up to MAX_BLOCK_C
BLOCK_ELEMENTS = 1024
MAX_BLOCK_C = 64
_INT32_LIMIT = 2**31 - 1


def _interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (numpy on the CPU). ``triton.jit`` decides
    when it decorates, and triton's own library functions (``tl.zeros``, ``tl.sigmoid``) are
    decorated when triton is imported: so ``TRITON_INTERPRET=1`` must be set *before* triton is
    imported, and must still be set now."""
    return (triton is not None and bool(triton.knobs.runtime.interpret)
            and not isinstance(tl.zeros, triton.runtime.JITFunction))


def gate_tap_available(x: torch.Tensor, *others: torch.Tensor | None) -> bool:
    """Whether :func:`gate_tap_triton` applies to ``x`` (and the other inputs ``others``).

    True for a CUDA tensor of a supported dtype (float32, float16, bfloat16), with triton
    importable, in inference (autograd off, or no input requires grad) and not while
    ``torch.compile`` traces (inductor fuses the plain ops itself there). On a CPU only under
    Triton's interpreter (``TRITON_INTERPRET=1`` set before triton is imported), which is how
    the tests drive it.
    """
    if torch.compiler.is_compiling() or triton is None or x.dtype not in SUPPORTED_DTYPES:
        return False  # (compiling first: dynamo cannot trace triton's knobs)
    if x.device.type != "cuda" and not (x.device.type == "cpu" and _interpreting()):
        return False
    tensors = [t for t in (x, *others) if t is not None]
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def gate_tap_reference(
    x: torch.Tensor, logits: torch.Tensor, kernel: torch.Tensor | None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 5 in plain torch ops, in float32: the ground truth of :func:`gate_tap_triton`.

    Shapes and ``out`` as in the module docstring. Differentiable (plain ops), but not fast.
    """
    g, _, kernel_size = _check_inputs(x, logits, kernel, out)
    xf = x.float()
    atten = torch.sigmoid(logits[:, :g].float())  # Atten_H (or the one map with P = 1)
    if logits.shape[1] == 2 * g:
        atten = atten * torch.sigmoid(logits[:, g:].float())  # ⊙ Atten_W
    y = xf + atten * xf  # Atten ⊙ X_2 + X_2
    if kernel is None:
        o = y
    else:  # K ⊗ y along T, zero-padded: tap j looks at frame t + j - k//2
        half, frames = kernel_size // 2, x.shape[2]
        padded = F.pad(y, (0, 0, 0, 0, half, half))  # (B, g, T + k - 1, H, W)
        kf = kernel.float()
        o = torch.zeros_like(y)
        for j in range(kernel_size):
            o = o + kf[:, :, j, None, None, None] * padded[:, :, j:j + frames]
    if out is None:
        return o.to(x.dtype, memory_format=_result_format(x))
    return out.copy_(o)


def gate_tap_triton(
    x: torch.Tensor,
    logits: torch.Tensor,
    kernel: torch.Tensor | None,
    out: torch.Tensor | None = None,
    *,
    block: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Eq. 5 as one Triton kernel launch (forward only); the same result as :func:`gate_tap_reference`.

    Shapes and ``out`` as in the module docstring. ``block``: ``(positions, channels)`` per
    program, powers of two (default: the channels rounded up to a power of two, at most
    ``MAX_BLOCK_C``, and ``BLOCK_ELEMENTS`` elements in all), for tuning and tests.

    Raises ``RuntimeError`` where the kernel cannot run (no triton, a CPU tensor without
    ``TRITON_INTERPRET=1``, autograd on an input that requires grad) and ``ValueError`` for
    inputs of the wrong shape, dtype or device, or an ``out`` that overlaps an input.
    """
    if triton is None:
        raise RuntimeError(f"gate_tap_triton needs triton (pip install triton; CUDA builds of torch bring it); "
                           f"import triton failed: {_NO_TRITON}")
    tensors = [t for t in (x, logits, kernel, out) if t is not None]
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        raise RuntimeError("gate_tap_triton is forward only (no autograd): an input requires grad; run it under "
                           "torch.no_grad()/torch.inference_mode() or use gate_tap_reference")
    g, p, kernel_size = _check_inputs(x, logits, kernel, out)
    for name, t in (("x", x), ("logits", logits)):
        if out is not None and _may_overlap(out, t):
            raise ValueError(f"gate_tap_triton: out overlaps {name} (the kernel reads {name} at neighbouring "
                             f"frames while it writes out): give out memory of its own")
    if x.device.type != "cuda" and not (x.device.type == "cpu" and _interpreting()):
        raise RuntimeError(f"gate_tap_triton runs CUDA tensors (a CPU tensor only under Triton's interpreter: "
                           f"TRITON_INTERPRET=1 set before triton is imported), got a tensor on {x.device}")
    if out is None:
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device, memory_format=_result_format(x))
    if out.numel() == 0:
        return out
    b, _, frames, h, w = x.shape
    positions = b * frames * h * w
    if block is None:
        block_c = min(1 << (g - 1).bit_length(), MAX_BLOCK_C)  # the next power of two (plain Python: host time)
        block_p = max(1, BLOCK_ELEMENTS // block_c)
    else:
        block_p, block_c = block
        if any(n < 1 or n & (n - 1) for n in block):
            raise ValueError(f"block sizes must be powers of two, got {block}")
    # int64 offsets only where an int32 one could overflow (the pointer arithmetic of a huge view); a view's
    # offsets are bounded by its storage's size, which is cheaper to ask than its span (host time per call)
    wide = max(_storage_elements(x), _storage_elements(logits), _storage_elements(out),
               positions + block_p) > _INT32_LIMIT
    if kernel is None:
        kernel_arg, kernel_strides = x, (0, 0, 0)  # not read (HAS_KERNEL=False)
    else:
        kernel_arg, kernel_strides = kernel, kernel.stride()
    grid = (-(-positions // block_p), -(-g // block_c))
    with torch.cuda.device(x.device) if x.is_cuda else nullcontext():  # launch on x's GPU, not the current one
        _kernel()[grid](
            x, logits, kernel_arg, out,
            positions, g, frames, h, w,
            *x.stride(), *logits.stride(), *kernel_strides, *out.stride(),
            P=p, K=kernel_size, HAS_KERNEL=kernel is not None, WIDE=wide,
            BLOCK_P=block_p, BLOCK_C=block_c,
            num_warps=4,
        )
    return out


# ------------------------------------------------------------------ the module's entry point

#: (device, dtypes, P, k) -> whether that compiled variant of the kernel agreed with the reference on its first use
_VERIFIED: dict[tuple, bool] = {}


def gate_tap(x: torch.Tensor, logits: torch.Tensor, kernel: torch.Tensor | None) -> torch.Tensor:
    """:func:`gate_tap_triton`, checked once per variant against :func:`gate_tap_reference`.

    The first call on a device with given dtypes, P and k computes both and compares them
    (float32: within 1e-4 of the output's scale; bfloat16/float16: within 2e-2; non-finite values
    where the other has finite ones are a disagreement). If they disagree the kernel is not used
    again in this process there: a warning says so, and this call and every later one return the
    reference's result, which is correct (fail closed: a detector's scores never come from a
    kernel that disagreed). A kernel that raises on that first call (it does not compile or
    launch on this GPU, driver or Triton) is turned off the same way; a ``ValueError`` (the
    inputs) or running out of GPU memory is raised as it is. Callers check
    :func:`gate_tap_available` first.
    """
    # one check per variant Triton compiles (its constexprs: P and k) and per device and dtypes
    key = (str(x.device), x.dtype, logits.dtype, logits.shape[1] // max(x.shape[1], 1),
           None if kernel is None else (kernel.shape[-1], kernel.dtype))
    verified = _VERIFIED.get(key)
    if verified is False:
        return gate_tap_reference(x, logits, kernel)
    if verified:
        return gate_tap_triton(x, logits, kernel)
    try:
        out = gate_tap_triton(x, logits, kernel)
    except (ValueError, torch.cuda.OutOfMemoryError):  # the caller's inputs, or memory: not the kernel's to hide
        raise
    except Exception as err:  # the kernel cannot compile or launch here (a Triton, driver or GPU it was not made for)
        _VERIFIED[key] = False
        warnings.warn(f"gate_tap_triton failed on {x.device} ({x.dtype}): {type(err).__name__}: {err}; the Intra-SIMs "
                      "use PyTorch's ops there from now on (please report this with your GPU, torch and triton versions)",
                      RuntimeWarning, stacklevel=2)
        return gate_tap_reference(x, logits, kernel)
    # the first use of this variant: compared with the reference
    want = gate_tap_reference(x, logits, kernel)
    problem = disagreement(out, want)
    _VERIFIED[key] = problem is None
    if problem is not None:
        warnings.warn(f"gate_tap_triton disagrees with gate_tap_reference on {x.device} ({x.dtype}): {problem}; the "
                      f"Intra-SIMs use PyTorch's ops there from now on (please report this with your GPU, torch and "
                      f"triton versions)", RuntimeWarning, stacklevel=2)
        return want
    return out


def disagreement(got: torch.Tensor, want: torch.Tensor) -> str | None:
    """How a kernel's result ``got`` differs from its reference's ``want`` (same shape), or None where they
    agree: within 1e-4 of the largest reference value (at least 1) for float32, 2e-2 for bfloat16/float16
    (one rounding); a NaN or inf on one side only is a disagreement. Non-finite inputs (the caller's to
    report) make non-finite values on both sides: the rest is compared. The first-use check of every
    Triton kernel of the SIMs (this one, :mod:`~dynsnip.modules.depthwise_taps`)."""
    got, ref = got.float(), want.float()
    finite = torch.isfinite(ref)
    if not torch.equal(finite, torch.isfinite(got)):
        return "non-finite values where the reference has finite ones (or the reverse)"
    if not finite.any():
        return None
    error = (got - ref).abs()[finite].max().item()
    scale = max(ref.abs()[finite].max().item(), 1.0)
    tolerance = 1e-4 if want.dtype == torch.float32 else 2e-2
    if error <= tolerance * scale:
        return None
    return f"max abs difference {error:.3g} for values up to {scale:.3g}"


# ------------------------------------------------------------------ checks and layout


def _check_inputs(
    x: torch.Tensor, logits: torch.Tensor, kernel: torch.Tensor | None, out: torch.Tensor | None
) -> tuple[int, int, int]:
    """``(g, P, k)`` of valid inputs; a ValueError that names what is wrong otherwise."""
    if x.ndim != 5:
        raise ValueError(f"x must be a (B, g, T, H, W) volume, got shape {tuple(x.shape)}")
    if x.dtype not in SUPPORTED_DTYPES:
        raise ValueError(f"x must be float32, float16 or bfloat16, got {x.dtype}")
    b, g, t, h, w = x.shape
    if logits.ndim != 5 or logits.shape[1] not in (g, 2 * g) or (logits.shape[0], *logits.shape[2:]) != (b, t, h, w):
        raise ValueError(f"logits must be (B, P*g, T, H, W) with P = 1 or 2 and x's B, T, H, W; got "
                         f"{tuple(logits.shape)} for x of shape {tuple(x.shape)}")
    if logits.dtype not in (x.dtype, torch.float32):
        raise ValueError(f"logits must be x's dtype ({x.dtype}) or float32, got {logits.dtype}")
    kernel_size = 1
    if kernel is not None:
        if kernel.ndim != 3 or kernel.shape[:2] != (b, g) or kernel.shape[2] % 2 != 1:
            raise ValueError(f"kernel must be (B, g, k) with k odd, got {tuple(kernel.shape)} for x of shape "
                             f"{tuple(x.shape)}")
        if kernel.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"kernel must be float32, float16 or bfloat16, got {kernel.dtype}")
        kernel_size = kernel.shape[2]
    if out is not None:
        if out.shape != x.shape or out.dtype != x.dtype:
            raise ValueError(f"out must be {tuple(x.shape)} {x.dtype} (x's shape and dtype), got "
                             f"{tuple(out.shape)} {out.dtype}")
    for name, t in (("logits", logits), ("kernel", kernel), ("out", out)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name} is on {t.device}, x on {x.device}: all inputs must be on one device")
    return g, (logits.shape[1] // g if g else 1), kernel_size


def _result_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last_3d for a channels-last-ish ``x`` (channel stride 1), else contiguous."""
    return torch.channels_last_3d if x.stride(1) == 1 else torch.contiguous_format


def _storage_elements(t: torch.Tensor) -> int:
    """How many elements of ``t``'s dtype its storage holds: a bound on any offset from ``t``'s first element."""
    return t.untyped_storage().nbytes() // t.element_size()


def _span(t: torch.Tensor) -> int:
    """The largest element offset of ``t`` from its first element."""
    return sum((n - 1) * abs(s) for n, s in zip(t.shape, t.stride()) if n > 0)


def _may_overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether ``a`` and ``b`` may share an element: exact for two channel slices of one
    channels-last tensor (same strides, channel stride 1), conservative otherwise (the byte
    ranges they span intersect)."""
    if a.numel() == 0 or b.numel() == 0 or a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False
    lo_a, lo_b = a.data_ptr(), b.data_ptr()
    if lo_a + _span(a) * a.element_size() < lo_b or lo_b + _span(b) * b.element_size() < lo_a:
        return False
    others = [s for i, s in enumerate(a.stride()) if i != 1 and a.shape[i] > 1]
    if a.dtype == b.dtype and a.stride() == b.stride() and a.stride(1) == 1 and others:
        # elements: a at R s + i (i < g_a), b at R' s + delta + j (j < g_b), every other stride a
        # multiple of s: they meet only if a multiple of s lies in [delta - g_a + 1, delta + g_b - 1]
        s = min(others)
        if all(o % s == 0 for o in others) and max(a.shape[1], b.shape[1]) <= s:
            delta = (lo_b - lo_a) // a.element_size()
            lo, hi = delta - a.shape[1] + 1, delta + b.shape[1] - 1
            return (hi // s) * s >= lo
    return True


# ------------------------------------------------------------------ the kernel

if triton is not None:

    def _gate_tap_program(
        x_ptr, a_ptr, k_ptr, o_ptr,
        positions, G, T, H, W,
        sxb, sxc, sxt, sxh, sxw,
        sab, sac, sat, sah, saw,
        skb, skc, skj,
        sob, soc, sot, soh, sow,
        P: tl.constexpr, K: tl.constexpr, HAS_KERNEL: tl.constexpr, WIDE: tl.constexpr,
        BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
    ):
        """One block of (b, t, h, w) positions x a block of channels: Eq. 5 for all k taps."""
        pos = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
        ch = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        if WIDE:
            pos = pos.to(tl.int64)
            ch = ch.to(tl.int64)
        in_pos = pos < positions
        in_ch = ch < G
        # position -> (b, t, h, w), w the fastest (the order of a (B, T, H, W) walk)
        w = pos % W
        rest = pos // W
        h = rest % H
        rest = rest // H
        t = rest % T
        b = rest // T
        x_row = b * sxb + h * sxh + w * sxw
        a_row = b * sab + h * sah + w * saw
        x_col = ch * sxc
        a_col = ch * sac
        acc = tl.zeros((BLOCK_P, BLOCK_C), dtype=tl.float32)
        for j in tl.static_range(K):
            src = t + (j - K // 2)  # the frame tap j reads; outside the snippet: dropped (zero padding)
            inside = (in_pos & (src >= 0) & (src < T))[:, None] & in_ch[None, :]
            xv = tl.load(x_ptr + (x_row + src * sxt)[:, None] + x_col[None, :], mask=inside, other=0.0)
            xv = xv.to(tl.float32)
            a_at = a_ptr + (a_row + src * sat)[:, None] + a_col[None, :]
            atten = tl.sigmoid(tl.load(a_at, mask=inside, other=0.0).to(tl.float32))
            if P == 2:  # Atten_H ⊙ Atten_W: the W plane's logits are channels [G, 2G)
                atten = atten * tl.sigmoid(tl.load(a_at + G * sac, mask=inside, other=0.0).to(tl.float32))
            y = xv + atten * xv
            if HAS_KERNEL:
                k_at = k_ptr + (b * skb)[:, None] + (ch * skc)[None, :] + j * skj
                kv = tl.load(k_at, mask=in_pos[:, None] & in_ch[None, :], other=0.0).to(tl.float32)
                acc += kv * y
            else:
                acc += y
        o_at = o_ptr + (b * sob + t * sot + h * soh + w * sow)[:, None] + (ch * soc)[None, :]
        tl.store(o_at, acc.to(o_ptr.dtype.element_ty), mask=in_pos[:, None] & in_ch[None, :])


_KERNELS: dict = {}


def _kernel():
    """The jitted kernel, made on first use (``triton.jit`` decides between compiler and
    interpreter when it decorates: one is kept for each mode)."""
    mode = _interpreting()
    if mode not in _KERNELS:
        _KERNELS[mode] = triton.jit(_gate_tap_program)
    return _KERNELS[mode]
