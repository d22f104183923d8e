"""The Intra-SIM's fused elementwise tail (dynsnip/modules/gate_tap.py, issue 24).

The reference (plain torch) is checked here against independent formulations: a loop over frames
and taps in float64, and the ops ``IntraSIM.forward_volume`` runs today (``addcmul`` then
``dynamic_tap_conv``). The Triton kernel is checked against the reference under Triton's
interpreter (numpy on CPU tensors). The interpreter has to be chosen before triton is imported
(``triton.jit`` decides when it decorates, and triton's own ``tl.zeros``/``tl.sigmoid`` are
decorated at import), so those checks run in one subprocess with ``TRITON_INTERPRET=1``: this file
run as a script (``INTERPRETER_CHECKS``), which prints a JSON report that the tests read.
"""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager, nullcontext
from typing import Callable

import pytest
import torch

import dynsnip.modules.gate_tap as gate_tap
import dynsnip.modules.intra_sim as intra_sim_module
from dynsnip.modules.gate_tap import gate_tap_available, gate_tap_reference, gate_tap_triton
from dynsnip.modules.temporal_ops import dynamic_tap_conv
from project_scripts import load_script

import triton_interpreter

CL = torch.channels_last_3d


def volume(b: int, c: int, t: int, h: int, w: int, layout: str, dtype=torch.float32, offset: int = 0,
           scale: float = 1.0) -> torch.Tensor:
    """``(b, c, t, h, w)``: ``"slice"``: channels ``[offset, offset + c)`` of a channels_last_3d
    tensor with 5 channels more (what the model hands over); ``"contiguous"``: plain NCDHW."""
    if layout == "slice":
        parent = (torch.randn(b, c + offset + 5, t, h, w) * scale).to(dtype).contiguous(memory_format=CL)
        v = parent[:, offset:offset + c]
        assert v.stride(1) == 1 and not v.is_contiguous(memory_format=CL)  # a real strided view
        return v
    return (torch.randn(b, c, t, h, w) * scale).to(dtype)


def inputs(b=2, g=6, t=4, h=3, w=5, p=2, k: int | None = 3, dtype=torch.float32, logit_dtype=None,
           layout="slice", seed=0, kernel_dtype=torch.float32, kernel_transposed=False):
    """``x (b, g, t, h, w)``, ``logits (b, p g, t, h, w)``, a softmaxed ``kernel (b, g, k)`` or None
    (``kernel_transposed``: a view of a ``(b, k, g)`` tensor). The defaults: 120 positions and 6
    channels, no multiple of any block."""
    torch.manual_seed(seed)
    x = volume(b, g, t, h, w, layout, dtype, offset=7)
    logits = volume(b, p * g, t, h, w, layout, logit_dtype or dtype, offset=3, scale=2.0)
    kernel = None if k is None else torch.softmax(torch.randn(b, g, k) * 2, -1).to(kernel_dtype)
    if kernel_transposed and kernel is not None:
        kernel = kernel.transpose(1, 2).contiguous().transpose(1, 2)
    return x, logits, kernel


def loop_formulation(x, logits, kernel):
    """Eq. 5 written out frame by frame and tap by tap, in float64."""
    g, frames = x.shape[1], x.shape[2]
    xd, ld = x.double(), logits.double()
    atten = 1 / (1 + torch.exp(-ld[:, :g]))
    if ld.shape[1] == 2 * g:
        atten = atten / (1 + torch.exp(-ld[:, g:]))
    y = xd * atten + xd
    if kernel is None:
        return y
    k = kernel.shape[-1]
    out = torch.zeros_like(y)
    for t in range(frames):
        for j in range(k):
            s = t + j - k // 2
            if 0 <= s < frames:  # the snippet's border: no frame of another snippet
                out[:, :, t] += kernel[:, :, j, None, None].double() * y[:, :, s]
    return out


def gated(x, logits):
    """``Atten ⊙ X_2 + X_2`` in float32 (no kernel)."""
    g = x.shape[1]
    atten = torch.sigmoid(logits[:, :g].float())
    if logits.shape[1] == 2 * g:
        atten = atten * torch.sigmoid(logits[:, g:].float())
    return x.float() + atten * x.float()


def assert_matches(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
    if want.dtype == torch.float32:
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    else:  # both round the same float32 sum once: at most one unit in the last place apart
        torch.testing.assert_close(got, want)


def snippets_stay_apart(fn: Callable) -> None:
    """Snippet b's output depends on snippet b alone: the neighbouring snippets (b - 1, b + 1 in
    the folded batch) are changed completely, snippet b's output (its frames 0 and T-1 included)
    is unchanged to the bit. A kernel that only looks back (ahead) gives zeros at frame 0 (T-1)
    and the previous (next) frame's gated value elsewhere: the taps are not reversed and the
    border is zero, not another snippet's frame."""
    x, logits, kernel = inputs(b=3, t=4, k=3)
    base = fn(x, logits, kernel)
    x2, l2 = x.clone(), logits.clone()
    for other in (0, 2):
        x2[other] = torch.randn_like(x2[other]) * 10
        l2[other] = torch.randn_like(l2[other]) * 10
    changed = fn(x2, l2, kernel)
    assert torch.equal(changed[1], base[1])
    assert not torch.allclose(changed[0], base[0]) and not torch.allclose(changed[2], base[2])

    y = gated(x, logits)
    back = torch.zeros_like(kernel)
    back[..., 0] = 1.0  # tap 0 reads frame t - 1
    o = fn(x, logits, back)
    assert torch.equal(o[:, :, 0], torch.zeros_like(o[:, :, 0]))
    torch.testing.assert_close(o[:, :, 1:], y[:, :, :-1], rtol=1e-6, atol=1e-6)
    ahead = torch.zeros_like(kernel)
    ahead[..., 2] = 1.0  # tap k-1 reads frame t + 1
    o = fn(x, logits, ahead)
    assert torch.equal(o[:, :, -1], torch.zeros_like(o[:, :, -1]))
    torch.testing.assert_close(o[:, :, :-1], y[:, :, 1:], rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------ the reference (this process)


@pytest.mark.parametrize("t,k,p", [(1, 3, 2), (2, 5, 2), (4, 3, 1), (8, 5, 2), (4, None, 2)])
def test_reference_is_eq5_frame_by_frame(t, k, p):
    x, logits, kernel = inputs(t=t, k=k, p=p)
    got = gate_tap_reference(x, logits, kernel)
    assert got.dtype == x.dtype and got.shape == x.shape
    torch.testing.assert_close(got.double(), loop_formulation(x, logits, kernel), rtol=1e-6, atol=1e-6)


def test_reference_is_the_modules_eager_tail():
    """What IntraSIM.forward_volume runs from the recovery conv's logits to O_2."""
    x, logits, kernel = inputs(t=4, k=3, p=2)
    atten_h, atten_w = torch.sigmoid(logits).chunk(2, 1)
    eager = dynamic_tap_conv(torch.addcmul(x, atten_h * atten_w, x), kernel)
    torch.testing.assert_close(gate_tap_reference(x, logits, kernel), eager, rtol=1e-6, atol=1e-6)


def test_reference_keeps_snippets_apart():
    snippets_stay_apart(gate_tap_reference)


def test_reference_writes_into_out():
    x, logits, kernel = inputs()
    buffer = torch.randn(2, 20, 4, 3, 5).contiguous(memory_format=CL)
    before = buffer.clone()
    got = gate_tap_reference(x, logits, kernel, out=buffer[:, 9:15])
    assert got.data_ptr() == buffer[:, 9:15].data_ptr()
    torch.testing.assert_close(buffer[:, 9:15], gate_tap_reference(x, logits, kernel), rtol=0, atol=0)
    assert torch.equal(buffer[:, :9], before[:, :9]) and torch.equal(buffer[:, 15:], before[:, 15:])


# ------------------------------------------------------------------ the Triton kernel (interpreter)

INTERPRETER_CHECKS: dict[str, Callable[[], None]] = {}


def interpreter_check(fn: Callable[[], None]) -> Callable[[], None]:
    INTERPRETER_CHECKS[fn.__name__] = fn
    return fn


# T = 1, 2, 4, 8; P = 1, 2; k = None, 3, 5; positions and channels no multiple of the blocks;
# channels_last_3d channel slices and contiguous NCDHW; float32, bfloat16, float16
CASES = {
    "T1_k3_P2_slice": dict(t=1, k=3, p=2),
    "T2_k5_P2_slice": dict(t=2, k=5, p=2),
    "T2_k3_P1_contiguous": dict(t=2, k=3, p=1, layout="contiguous"),
    "T4_none_P2_slice": dict(t=4, k=None, p=2),
    "T4_none_P1_contiguous": dict(t=4, k=None, p=1, layout="contiguous"),
    "T8_k5_P2_slice_g10": dict(t=8, k=5, p=2, g=10, h=5, w=7),
    "T4_k3_P2_contiguous": dict(t=4, k=3, p=2, layout="contiguous"),
    "T4_k3_P2_bf16_slice": dict(t=4, k=3, p=2, dtype=torch.bfloat16),
    "T4_k3_P2_bf16_float32_logits": dict(t=4, k=3, p=2, dtype=torch.bfloat16, logit_dtype=torch.float32),
    "T4_k3_P1_fp16_contiguous": dict(t=4, k=3, p=1, dtype=torch.float16, layout="contiguous"),
    "T8_k3_P2_fp16_slice": dict(t=8, k=3, p=2, dtype=torch.float16),
    "T4_k3_P2_bf16_kernel_strided": dict(t=4, k=3, p=2, dtype=torch.bfloat16, kernel_dtype=torch.bfloat16,
                                         kernel_transposed=True),
}


def case_check(args: dict) -> Callable[[], None]:
    def check() -> None:
        x, logits, kernel = inputs(**args)
        assert gate_tap_available(x, logits, kernel)
        got = gate_tap_triton(x, logits, kernel)
        assert_matches(got, gate_tap_reference(x, logits, kernel))
        # the result's layout: channels_last_3d for a channel-stride-1 x, else contiguous
        assert got.is_contiguous(memory_format=CL if x.stride(1) == 1 else torch.contiguous_format)
    return check


for _name, _args in CASES.items():
    INTERPRETER_CHECKS[_name] = case_check(_args)


@interpreter_check
def runs_in_the_interpreter() -> None:
    """The checks below ran the interpreter, not a compiled kernel (there is no GPU here)."""
    import triton

    assert gate_tap._interpreting()
    assert type(gate_tap._kernel()).__name__ == "InterpretedFunction"
    assert not isinstance(gate_tap._kernel(), triton.runtime.JITFunction)


@interpreter_check
def partial_blocks_on_both_axes() -> None:
    """Several programs along positions and channels, the last of each partly outside
    (90 positions in blocks of 32, 6 channels in blocks of 4)."""
    x, logits, kernel = inputs(b=2, g=6, t=3, h=3, w=5, k=3)
    assert_matches(gate_tap_triton(x, logits, kernel, block=(32, 4)), gate_tap_reference(x, logits, kernel))


@interpreter_check
def int64_offsets() -> None:
    """The 64-bit offset variant (taken for views that span 2**31 elements or more), forced."""
    x, logits, kernel = inputs(t=4, k=3, p=2)
    limit = gate_tap._INT32_LIMIT
    gate_tap._INT32_LIMIT = 16
    try:
        assert_matches(gate_tap_triton(x, logits, kernel), gate_tap_reference(x, logits, kernel))
    finally:
        gate_tap._INT32_LIMIT = limit


@interpreter_check
def empty_volumes() -> None:
    """No channels, or no snippets: an empty result of the right shape, nothing launched."""
    for b, g in ((2, 0), (0, 3)):
        x, logits, kernel = torch.randn(b, g, 4, 3, 5), torch.randn(b, 2 * g, 4, 3, 5), torch.rand(b, g, 3)
        assert gate_tap_triton(x, logits, kernel).shape == x.shape == gate_tap_reference(x, logits, kernel).shape


@interpreter_check
def snippets_apart() -> None:
    snippets_stay_apart(gate_tap_triton)


def out_slice_check(layout: str) -> Callable[[], None]:
    def check() -> None:
        """``out=`` a channel slice of a bigger buffer: written there, the rest untouched."""
        x, logits, kernel = inputs(k=3, layout=layout)
        fmt = CL if layout == "slice" else torch.contiguous_format
        buffer = torch.randn(x.shape[0], 20, *x.shape[2:]).contiguous(memory_format=fmt)
        before = buffer.clone()
        out = buffer[:, 9:15]
        assert gate_tap_triton(x, logits, kernel, out=out).data_ptr() == out.data_ptr()
        assert_matches(buffer[:, 9:15], gate_tap_reference(x, logits, kernel))
        assert torch.equal(buffer[:, :9], before[:, :9]) and torch.equal(buffer[:, 15:], before[:, 15:])
    return check


INTERPRETER_CHECKS["out_channel_slice_channels_last"] = out_slice_check("slice")
INTERPRETER_CHECKS["out_channel_slice_contiguous"] = out_slice_check("contiguous")


@interpreter_check
def out_beside_x_in_one_tensor() -> None:
    """x and out: neighbouring channel slices of one tensor (no element shared): allowed, x unchanged."""
    torch.manual_seed(1)
    parent = torch.randn(2, 24, 4, 3, 5).contiguous(memory_format=CL)
    x, out = parent[:, 2:8], parent[:, 8:14]
    logits = torch.randn(2, 12, 4, 3, 5)
    kernel = torch.softmax(torch.randn(2, 6, 3), -1)
    x_before = x.clone()
    want = gate_tap_reference(x, logits, kernel)
    gate_tap_triton(x, logits, kernel, out=out)
    assert torch.equal(x, x_before)
    assert_matches(out, want)


@interpreter_check
def no_grad_inputs_that_require_grad() -> None:
    """Inputs that require grad are fine where autograd records nothing."""
    x, logits, kernel = inputs()
    kernel.requires_grad_(True)
    with torch.no_grad():
        assert gate_tap_available(x, logits, kernel)
        assert_matches(gate_tap_triton(x, logits, kernel), gate_tap_reference(x, logits, kernel))


@contextmanager
def depthwise_convs_as_conv3d():
    """The SIMs' depthwise convs (Eq. 1's motion channels, ``Conv_U``) as ``F.conv3d``: under the
    interpreter their own Triton kernels (``tests/test_depthwise_taps.py``) would run too, slowly, and
    these checks are about the gate's tail."""
    from dynsnip import InterSIM
    from dynsnip.modules.intra_sim import IntraSMA

    saved = IntraSMA.triton_depthwise, InterSIM.conv_u_op
    IntraSMA.triton_depthwise, InterSIM.conv_u_op = False, "conv3d"
    try:
        yield
    finally:
        IntraSMA.triton_depthwise, InterSIM.conv_u_op = saved


def _model_fused_against_plain(options: dict, fp16: bool = False) -> None:
    """``IntraSIM`` in eval inference: with the fused tail (``triton_tail``, the interpreter standing
    in for the GPU) the same outputs as with PyTorch's ops, and the kernel was what ran."""
    from dynsnip import IntraSIM

    torch.manual_seed(0)
    sim = IntraSIM(32, 4, reduction=4, **options).eval()
    with torch.no_grad():
        for param in sim.parameters():
            param.copy_(torch.randn_like(param) * 0.4)
    x = torch.randn(3 * 4, 32, 5, 6).contiguous(memory_format=torch.channels_last)
    calls = []
    real = intra_sim_module.gate_tap
    intra_sim_module.gate_tap = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        with torch.no_grad(), (torch.autocast("cpu", dtype=torch.float16) if fp16 else nullcontext()), \
                depthwise_convs_as_conv3d():
            IntraSIM.triton_tail = False
            plain = sim(x)
            IntraSIM.triton_tail = True
            fused = sim(x)
    finally:
        intra_sim_module.gate_tap = real
        IntraSIM.triton_tail = True
    assert calls == [1], calls
    assert fused.is_contiguous(memory_format=torch.channels_last)
    if fp16:
        torch.testing.assert_close(fused.float(), plain.float(), rtol=2e-3, atol=2e-3)
    else:
        torch.testing.assert_close(fused, plain, rtol=1e-5, atol=1e-5)


@interpreter_check
def intra_sim_fused_tail_defaults() -> None:
    _model_fused_against_plain({})


@interpreter_check
def intra_sim_fused_tail_paper_module() -> None:
    _model_fused_against_plain({"motion_fraction": 0.0})


@interpreter_check
def intra_sim_fused_tail_no_coordinate_attention_no_kernel() -> None:
    _model_fused_against_plain({"coord_attention": False, "learnable_kernel": False, "edge": "frame"})


@interpreter_check
def intra_sim_fused_tail_fp16_float32_region() -> None:
    """fp16 autocast: the logits come out of the float32 difference region, x2 is float16."""
    _model_fused_against_plain({}, fp16=True)


@interpreter_check
def dil_model_with_the_fused_tail() -> None:
    """A whole dil_resnet18 (4 Intra-SIMs) gives the plain path's logits."""
    import timm

    import dynsnip  # noqa: F401  (registers dil_*)
    from dynsnip import IntraSIM

    torch.manual_seed(0)
    model = timm.create_model("dil_resnet18", num_classes=2, zero_init_last=False).eval()
    clip = torch.randn(1, 3, 8, 32, 32)
    with torch.no_grad(), depthwise_convs_as_conv3d():
        IntraSIM.triton_tail = False
        plain = model(clip)
        IntraSIM.triton_tail = True
        fused = model(clip)
    torch.testing.assert_close(fused, plain, rtol=1e-4, atol=1e-5)


@interpreter_check
def first_use_check_turns_a_disagreeing_kernel_off() -> None:
    """gate_tap (what the Intra-SIM calls) checks the kernel against the reference on its first use on a
    device and dtype: a kernel that disagrees is reported once and not used again; the results are the
    reference's, never the wrong kernel's."""
    import warnings

    x, logits, kernel = inputs()
    want = gate_tap_reference(x, logits, kernel)
    real, calls = gate_tap.gate_tap_triton, []
    gate_tap._VERIFIED.clear()
    try:
        gate_tap.gate_tap_triton = lambda *a, **k: calls.append(1) or real(*a, **k)
        assert_matches(gate_tap.gate_tap(x, logits, kernel), want)  # agrees: checked once, then trusted
        assert_matches(gate_tap.gate_tap(x, logits, kernel), want)
        assert calls == [1, 1] and list(gate_tap._VERIFIED.values()) == [True]
        # another variant (P = 1, no learnable kernel) gets a check of its own
        x1, logits1, _ = inputs(p=1, k=None)
        assert_matches(gate_tap.gate_tap(x1, logits1, None), gate_tap_reference(x1, logits1, None))
        assert len(gate_tap._VERIFIED) == 2
        gate_tap._VERIFIED.clear()
        calls.clear()
        gate_tap.gate_tap_triton = lambda *a, **k: calls.append(1) or real(*a, **k) * 1.01  # a wrong kernel
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert_matches(gate_tap.gate_tap(x, logits, kernel), want)
            assert_matches(gate_tap.gate_tap(x, logits, kernel), want)
        assert calls == [1], calls  # not used again
        assert len(caught) == 1 and "disagrees" in str(caught[0].message)
        gate_tap._VERIFIED.clear()
        calls.clear()
        gate_tap.gate_tap_triton = real
        xn = x.clone()
        xn[0, 0, 0, 0, 0] = float("nan")  # a NaN in the input: NaN in both, not a disagreement
        out = gate_tap.gate_tap(xn, logits, kernel)
        assert out.isnan().any() and list(gate_tap._VERIFIED.values()) == [True]
        gate_tap._VERIFIED.clear()
        gate_tap.gate_tap_triton = lambda *a, **k: real(*a, **k).fill_(float("nan"))  # a kernel that makes NaN
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert_matches(gate_tap.gate_tap(x, logits, kernel), want)  # turned off, the reference's result
        assert list(gate_tap._VERIFIED.values()) == [False] and len(caught) == 1
        gate_tap._VERIFIED.clear()
        calls.clear()

        def does_not_compile(*a, **k):  # as Triton does for a GPU or driver the kernel was not made for
            calls.append(1)
            raise RuntimeError("PassManager::run failed")

        gate_tap.gate_tap_triton = does_not_compile
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert_matches(gate_tap.gate_tap(x, logits, kernel), want)  # the reference's result, no crash
            assert_matches(gate_tap.gate_tap(x, logits, kernel), want)
        assert calls == [1] and list(gate_tap._VERIFIED.values()) == [False]
        assert len(caught) == 1 and "failed" in str(caught[0].message) and "PassManager" in str(caught[0].message)
        gate_tap._VERIFIED.clear()

        def bad_inputs(*a, **k):  # the caller's mistake is not hidden behind the reference
            raise ValueError("x must be a (B, g, T, H, W) volume")

        gate_tap.gate_tap_triton = bad_inputs
        try:
            gate_tap.gate_tap(x, logits, kernel)
        except ValueError:
            pass
        else:
            raise AssertionError("a ValueError of the inputs was swallowed")
        assert not gate_tap._VERIFIED
    finally:
        gate_tap.gate_tap_triton = real
        gate_tap._VERIFIED.clear()


def load_op_counts():
    return load_script("benchmarks/op_counts.py", "op_counts_benchmark", beside_on_path=True)  # imports efficiency.py


@interpreter_check
def op_counts_count_the_fused_tail_as_one_launch() -> None:
    """benchmarks/op_counts.py --triton-tail: each of dil_resnet18's 4 Intra-SIMs dispatches its eager tail
    (9 ops, 6 of them kernels in float32; the window product and sum are one ``vecdot`` call) as one
    launch; the interpreter's own torch calls and the profiler's markers are not counted."""
    report = load_op_counts().main(["--quick", "--no-traffic", "--no-train-step", "--triton-tail"])["models"]
    # the plain counts are the model's, not the interpreter's: run through it, the SIMs' depthwise kernels
    # counted its own torch calls (424 calls, 5.8x resnet18's, against 225 without TRITON_INTERPRET)
    base = report["resnet18"]["fp32_inference"]["ops"]
    assert report["dil_resnet18 (defaults)"]["fp32_inference"]["ops"] <= 3.2 * base
    for module in ("defaults", "paper's module"):
        plain, fused = report[f"dil_resnet18 ({module})"], report[f"dil_resnet18 ({module}), fused tail"]
        for mode in ("fp32_inference", "bf16_inference"):
            assert plain[mode]["ops"] - fused[mode]["ops"] == 4 * 8, (module, mode)
            assert fused[mode]["ops_by_name"]["gate_tap_triton"] == fused[mode]["kernels_by_name"]["gate_tap_triton"] == 4
            assert not any(name.startswith("_record_function") for name in fused[mode]["kernels_by_name"])
        assert plain["fp32_inference"]["kernels"] - fused["fp32_inference"]["kernels"] == 4 * 5
        assert "bf16_train_step" not in fused  # the fused tail is inference only


def test_op_counts_refuse_the_fused_tail_without_the_interpreter(monkeypatch):
    monkeypatch.setattr(gate_tap, "_interpreting", lambda: False)
    with pytest.raises(SystemExit, match="TRITON_INTERPRET=1"):
        load_op_counts().main(["--quick", "--no-traffic", "--triton-tail"])


def load_benchmark():
    return load_script("benchmarks/gate_tap.py", "gate_tap_benchmark")


QUICK_BENCH = ["--device", "cpu", "--quick", "--repeats", "1", "--warmup", "0", "--inner", "1"]


@interpreter_check
def benchmark_fused_path() -> None:
    """benchmarks/gate_tap.py's GPU path (the kernel, its agreement check), on the interpreter."""
    report = load_benchmark().main(QUICK_BENCH + ["--configs", "default"])
    rows = report["configs"]["default"]["sims"]
    assert report["fused"] and report["configs"]["default"]["total"]["ok"]
    assert all(r["ok"] and r["triton_ops"] == 1 and r["eager_ops"] > 1 and r["triton_ms"] > 0 for r in rows)


@pytest.fixture(scope="module")
def interpreter_report() -> dict[str, str]:
    """This file's interpreter checks, run as a script under ``TRITON_INTERPRET=1`` (one process)."""
    return triton_interpreter.interpreter_report(__file__)


@pytest.mark.parametrize("name", list(INTERPRETER_CHECKS))
def test_triton_kernel_under_the_interpreter(interpreter_report, name):
    assert interpreter_report.get(name) == "ok", interpreter_report.get(name, "not run")


# ------------------------------------------------------------------ errors and availability (this process)


def test_not_available_on_cpu_without_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x, logits, kernel = inputs()
    assert not gate_tap_available(x, logits, kernel)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        gate_tap_triton(x, logits, kernel)


def test_not_available_for_autograd_or_other_dtypes(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setattr(gate_tap, "_interpreting", lambda: True)  # as under the interpreter
    x, logits, kernel = inputs()
    assert gate_tap_available(x, logits, kernel)
    assert not gate_tap_available(x.long())
    kernel.requires_grad_(True)
    assert not gate_tap_available(x, logits, kernel)
    with pytest.raises(RuntimeError, match="forward only"):
        gate_tap_triton(x, logits, kernel)
    with torch.no_grad():
        assert gate_tap_available(x, logits, kernel)


def test_bad_inputs_are_named():
    pytest.importorskip("triton")
    x, logits, kernel = inputs(g=6, p=2, k=3)
    with pytest.raises(ValueError, match="logits must be"):
        gate_tap_triton(x, logits[:, :5], kernel)
    with pytest.raises(ValueError, match="k odd"):
        gate_tap_triton(x, logits, torch.ones(2, 6, 2))
    with pytest.raises(ValueError, match="x must be a"):
        gate_tap_triton(x[:, :, 0], logits, kernel)
    with pytest.raises(ValueError, match="logits must be x's dtype"):
        gate_tap_triton(x, logits.half(), kernel)
    with pytest.raises(ValueError, match="out must be"):
        gate_tap_triton(x, logits, kernel, out=torch.empty_like(x).half())
    with pytest.raises(ValueError, match="on one device"):
        gate_tap_triton(x, logits, kernel.to("meta"))


def test_out_that_overlaps_an_input_is_refused():
    """The kernel reads x at neighbouring frames while it writes out: out must not share an
    element with x or the logits; a neighbouring channel slice of the same tensor is fine."""
    pytest.importorskip("triton")
    parent = torch.randn(2, 24, 4, 3, 5).contiguous(memory_format=CL)
    x = parent[:, 2:8]
    logits = torch.randn(2, 12, 4, 3, 5)
    kernel = torch.softmax(torch.randn(2, 6, 3), -1)
    for bad in (x, parent[:, 5:11], parent[:, 0:6], parent[:, 7:13]):  # all, or some, of x's elements
        with pytest.raises(ValueError, match="overlaps x"):
            gate_tap_triton(x, logits, kernel, out=bad)
    with pytest.raises(ValueError, match="overlaps logits"):
        gate_tap_triton(x, logits, kernel, out=logits[:, :6])
    for fine in (parent[:, 8:14], parent[:, 18:24], torch.empty_like(x)):
        assert not gate_tap._may_overlap(fine, x)


def test_benchmark_runs_the_eager_tail_on_cpu(monkeypatch, capsys):
    """benchmarks/gate_tap.py --device cpu --quick: the eager tail and the reference, at the shapes
    of dil_resnet18's Intra-SIMs (the paper's module: Eq. 5 on all C/2 channels)."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    report = load_benchmark().main(QUICK_BENCH + ["--configs", "paper"])
    rows = report["configs"]["paper"]["sims"]
    assert not report["fused"] and len(rows) == 4
    assert [r["g"] for r in rows] == [r["channels"] // 2 for r in rows]
    assert all(r["B"] == 2 * 8 // r["T"] and r["eager_ops"] > 1 and r["max_abs_eager"] < 0.1 for r in rows)
    assert "eager ms" in capsys.readouterr().out


def test_module_imports_and_falls_back_without_triton(monkeypatch):
    """A copy of the module loaded where ``import triton`` fails: importable, never available,
    the reference works, the kernel says what is missing."""
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setitem(sys.modules, "triton.language", None)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    module = load_script(gate_tap.__file__, "gate_tap_without_triton")
    x, logits, kernel = inputs()
    assert module.triton is None and not module.gate_tap_available(x)
    torch.testing.assert_close(module.gate_tap_reference(x, logits, kernel), gate_tap_reference(x, logits, kernel))
    with pytest.raises(RuntimeError, match="needs triton"):
        module.gate_tap_triton(x, logits, kernel)


def test_gpu_report_writes_the_fused_tail_figures(tmp_path):
    """benchmarks/gpu_report.py puts step 4's figures (gpu_gate_tap.json) into the doc's GPU section,
    and says "not measured" for what did not run."""
    report = load_script("benchmarks/gpu_report.py")
    doc = tmp_path / "performance.md"
    doc.write_text(f"before\n{report.BEGIN}\nold\n{report.END}\nafter\n")
    with pytest.raises(SystemExit) as stopped:  # nothing measured (no GPU): an earlier loan's figures stay
        report.main(["--results", str(tmp_path), "--doc", str(doc)])
    assert stopped.value.code == 1 and doc.read_text() == f"before\n{report.BEGIN}\nold\n{report.END}\nafter\n"
    sims = [{"ok": True}] * 3
    (tmp_path / "gpu_gate_tap.json").write_text(json.dumps({
        "fused": True, "arch": "dil_resnet50", "clips": 16, "frames": 16, "size": 224, "dtype": "bf16",
        "triton": "3.8.0", "configs": {"default": {"sims": sims, "total": {
            "eager_ms": 1.5, "eager_ops": 36, "triton_ms": 0.5, "ratio": 3.0, "ok": True}}}}))
    report.main(["--results", str(tmp_path), "--doc", str(doc)])
    text = doc.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text
    assert "| default | 1.500 | 36 | 0.500 | 3 | 3.00 | yes |" in text
    assert "Steps 1 and 3 (eager and compiled models): not measured." in text


if __name__ == "__main__":  # the interpreter checks, run by interpreter_report with TRITON_INTERPRET=1
    print(json.dumps(triton_interpreter.run_checks(INTERPRETER_CHECKS)))
