"""Depthwise "same" convolutions as Triton kernels (dynsnip/modules/depthwise_taps.py, issue 24).

The kernels run under Triton's interpreter (numpy on CPU tensors) and are checked against
``F.conv3d`` and its autograd gradients, and inside the modules against the same modules with the
kernels switched off. The interpreter has to be chosen before triton is imported, so those checks
run in one subprocess with ``TRITON_INTERPRET=1`` (this file run as a script), which prints a JSON
report the tests read (as tests/test_gate_tap.py does).
"""
from __future__ import annotations

import json
import warnings
from typing import Callable

import pytest
import torch
import torch.nn.functional as F

import dynsnip.modules.depthwise_taps as depthwise_taps_module
from dynsnip.modules.depthwise_taps import (depthwise_taps, depthwise_taps_available, depthwise_taps_reference,
                                            depthwise_taps_triton, depthwise_taps_weight_grad)

import triton_interpreter

CL = torch.channels_last_3d


def volume(b: int, c: int, d: int, h: int, w: int, layout: str, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    """``"slice"``: channels ``[3, 3 + c)`` of a channels_last_3d tensor with 5 more (the motion
    channels are such a slice); ``"channels_last"``; ``"contiguous"``: NCDHW."""
    g = torch.Generator().manual_seed(seed)
    if layout == "slice":
        return torch.randn(b, c + 5, d, h, w, generator=g).to(dtype).contiguous(memory_format=CL)[:, 3:3 + c]
    x = torch.randn(b, c, d, h, w, generator=g).to(dtype)
    return x.contiguous(memory_format=CL) if layout == "channels_last" else x


def assert_matches(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    if got.dtype == torch.float32:
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    else:  # one rounding of the result (the reference rounds its own way)
        torch.testing.assert_close(got.float(), want.float(), rtol=2e-2, atol=2e-2)


# ------------------------------------------------------------------ under the interpreter

INTERPRETER_CHECKS: dict[str, Callable[[], None]] = {}


def interpreter_check(fn: Callable[[], None]) -> Callable[[], None]:
    INTERPRETER_CHECKS[fn.__name__] = fn
    return fn


# the model's two kernels (3x3x3: Eq. 1 of the motion channels; (3, 1, 1): Conv_U) and others; positions
# and channels no multiple of the blocks (70 channels: two channel blocks); slices, channels_last, NCDHW
CASES = {
    "k333_slice": dict(kernel=(3, 3, 3), layout="slice", shape=(2, 6, 4, 5, 7)),
    "k311_channels_last": dict(kernel=(3, 1, 1), layout="channels_last", shape=(2, 6, 3, 4, 5)),
    "k133_contiguous": dict(kernel=(1, 3, 3), layout="contiguous", shape=(1, 5, 2, 6, 3)),
    "k511_d1": dict(kernel=(5, 1, 1), layout="slice", shape=(3, 4, 1, 2, 3)),
    "k333_70_channels": dict(kernel=(3, 3, 3), layout="channels_last", shape=(1, 70, 2, 3, 3)),
    "k333_bf16": dict(kernel=(3, 3, 3), layout="slice", shape=(2, 6, 4, 5, 7), dtype=torch.bfloat16),
    "k311_fp16": dict(kernel=(3, 1, 1), layout="channels_last", shape=(2, 6, 3, 4, 5), dtype=torch.float16),
}


def case_check(args: dict) -> Callable[[], None]:
    def check() -> None:
        dtype = args.get("dtype", torch.float32)
        x = volume(*args["shape"], args["layout"], dtype)
        weight = torch.randn(x.shape[1], 1, *args["kernel"], generator=torch.Generator().manual_seed(1))
        assert depthwise_taps_available(x, weight)
        got = depthwise_taps_triton(x, weight)
        assert_matches(got, depthwise_taps_reference(x, weight))
        assert got.is_contiguous(memory_format=CL if x.stride(1) == 1 else torch.contiguous_format)
        if dtype != torch.float32:
            return
        # backward: the input's and the weight's gradients of F.conv3d
        grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
        xr, wr = x.detach().requires_grad_(), weight.detach().requires_grad_()
        F.conv3d(xr, wr, padding=tuple(k // 2 for k in args["kernel"]), groups=x.shape[1]).backward(grad)
        torch.testing.assert_close(depthwise_taps_weight_grad(grad, x, args["kernel"]), wr.grad, rtol=1e-4, atol=1e-4)
        xk, wk = x.detach().requires_grad_(), weight.detach().requires_grad_()
        depthwise_taps(xk, wk).backward(grad)
        torch.testing.assert_close(xk.grad, xr.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(wk.grad, wr.grad, rtol=1e-4, atol=1e-4)
    return check


for _name, _args in CASES.items():
    INTERPRETER_CHECKS[_name] = case_check(_args)


@interpreter_check
def runs_the_kernels_in_the_interpreter() -> None:
    import triton

    assert depthwise_taps_module._interpreting()
    for name in ("forward", "weight_grad"):
        kernel = depthwise_taps_module._kernel(name)
        assert type(kernel).__name__ == "InterpretedFunction" and not isinstance(kernel, triton.runtime.JITFunction)


@interpreter_check
def volumes_stay_apart() -> None:
    """Zero padding at the border of the volume's D axis (a snippet's frames; a clip's snippets): a change
    in one volume of the batch reaches no other, and inside it only the frames within the kernel's reach."""
    x = volume(3, 4, 4, 3, 5, "channels_last")
    weight = torch.randn(4, 1, 3, 3, 3)
    y = depthwise_taps_triton(x, weight)
    x2 = x.clone()
    x2[1, :, 0] += 10.0  # volume 1, its first frame
    changed = (depthwise_taps_triton(x2, weight) - y).abs().amax((1, 3, 4)) > 0  # (b, d)
    assert changed.tolist() == [[False] * 4, [True, True, False, False], [False] * 4]


@interpreter_check
def int64_offsets() -> None:
    """The wide (int64) offsets give the same numbers as the int32 ones."""
    x = volume(2, 6, 3, 4, 5, "slice")
    weight = torch.randn(6, 1, 3, 3, 3)
    want = depthwise_taps_triton(x, weight)
    limit = depthwise_taps_module._INT32_LIMIT
    depthwise_taps_module._INT32_LIMIT = 1  # every launch takes the int64 path
    try:
        got = depthwise_taps_triton(x, weight)
        grad = torch.randn(x.shape)
        gw = depthwise_taps_weight_grad(grad, x, (3, 3, 3))
    finally:
        depthwise_taps_module._INT32_LIMIT = limit
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(gw, depthwise_taps_weight_grad(grad, x, (3, 3, 3)))


@interpreter_check
def empty_volumes() -> None:
    x = torch.randn(0, 4, 3, 2, 2).contiguous(memory_format=CL)
    weight = torch.randn(4, 1, 3, 3, 3)
    assert depthwise_taps_triton(x, weight).shape == x.shape
    assert depthwise_taps_weight_grad(x, x, (3, 3, 3)).abs().sum() == 0


def _sims_with_and_without_kernels(module_name: str, autocast: torch.dtype | None = None) -> None:
    """An Intra-SIM (defaults: motion channels) or Inter-SIM in training (forward and backward) and in
    eval inference: with the kernels (the interpreter standing in for the GPU) the same outputs and
    gradients as with PyTorch's convs, and the kernels were what ran."""
    from contextlib import nullcontext

    from dynsnip import InterSIM, IntraSIM
    from dynsnip.modules import inter_sim, intra_sim

    torch.manual_seed(0)
    sim = (IntraSIM(32, 4, reduction=4) if module_name == "IntraSIM" else InterSIM(32, 4))
    with torch.no_grad():
        for param in sim.parameters():
            param.copy_(torch.randn_like(param) * 0.3)
    x = torch.randn(2 * 3 * 4, 32, 3, 4).contiguous(memory_format=torch.channels_last)  # N=2, U=3, T=4
    kwargs = {} if module_name == "IntraSIM" else {"num_snippets": 3}
    module = intra_sim if module_name == "IntraSIM" else inter_sim
    calls = []
    real = module.depthwise_taps
    module.depthwise_taps = lambda *a: calls.append(1) or real(*a)

    def run(kernels: bool, train: bool):
        intra_sim.IntraSMA.triton_depthwise = kernels
        inter_sim.InterSIM.conv_u_op = "auto" if kernels else "conv2d"
        sim.train(train)
        xg = x.clone().requires_grad_(train)
        with torch.set_grad_enabled(train), (torch.autocast("cpu", dtype=autocast) if autocast else nullcontext()):
            y = sim(xg, **kwargs)
        if not train:
            return y, []
        y.float().square().mean().backward()
        grads = [xg.grad] + [p.grad.clone() for p in sim.parameters()]
        sim.zero_grad(set_to_none=True)
        return y, grads

    intra_sim.IntraSIM.cpu_training_path = "volume"  # CPU training as a GPU trains: the volume path
    # bf16 autocast: inference only. Training there (the volume path, which CPUs do not train on by default)
    # measured nondeterministic garbage in the coordinate convs' weight gradients of PyTorch's own CPU
    # conv3d backward, kernels or not (torch 2.14.1, AMD EPYC): no reference to compare with
    modes = (True, False) if autocast is None else (False,)
    try:
        for train in modes:
            plain, plain_grads = run(False, train)
            n = len(calls)
            fused, fused_grads = run(True, train)
            assert len(calls) > n, "the kernels did not run"
            assert fused.is_contiguous(memory_format=torch.channels_last)
            tol = dict(rtol=1e-4, atol=1e-5) if autocast is None else dict(rtol=2e-2, atol=2e-2)
            torch.testing.assert_close(fused.float(), plain.float(), **tol)
            for got, want in zip(fused_grads, plain_grads):
                torch.testing.assert_close(got.float(), want.float(), **(dict(rtol=1e-3, atol=1e-4) if autocast is None else tol))
    finally:
        module.depthwise_taps = real
        intra_sim.IntraSIM.cpu_training_path = "frames"
        intra_sim.IntraSMA.triton_depthwise = True
        inter_sim.InterSIM.conv_u_op = "auto"


@interpreter_check
def intra_sim_motion_channels_train_and_eval() -> None:
    _sims_with_and_without_kernels("IntraSIM")


@interpreter_check
def inter_sim_conv_u_train_and_eval() -> None:
    _sims_with_and_without_kernels("InterSIM")


@interpreter_check
def intra_sim_motion_channels_bf16_autocast() -> None:
    _sims_with_and_without_kernels("IntraSIM", torch.bfloat16)


@interpreter_check
def first_use_check_turns_a_disagreeing_kernel_off() -> None:
    """A forward kernel that disagrees with F.conv3d on its first use is turned off there with a warning,
    and its result is never returned; the same for the backward; a kernel that raises likewise."""
    x = volume(2, 6, 4, 5, 7, "channels_last")
    weight = torch.randn(6, 1, 3, 3, 3)
    want = depthwise_taps_reference(x, weight)
    real = depthwise_taps_module.depthwise_taps_triton
    saved = dict(depthwise_taps_module._VERIFIED)
    try:
        depthwise_taps_module._VERIFIED.clear()
        depthwise_taps_module.depthwise_taps_triton = lambda a, w: real(a, w) + 1.0  # wrong by one everywhere
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = depthwise_taps(x, weight)
        assert any("disagrees with the reference" in str(w.message) for w in caught), [str(w.message) for w in caught]
        torch.testing.assert_close(got, want)
        depthwise_taps_module.depthwise_taps_triton = real  # fixed, but this process keeps it off
        torch.testing.assert_close(depthwise_taps(x, weight), want)
        assert depthwise_taps_module._VERIFIED[("forward", "cpu", torch.float32, (3, 3, 3))] is False

        depthwise_taps_module._VERIFIED.clear()  # a backward whose weight gradient is wrong
        real_grad = depthwise_taps_module.depthwise_taps_weight_grad
        depthwise_taps_module.depthwise_taps_weight_grad = lambda g, a, k: real_grad(g, a, k) * 2
        xr, wr = x.detach().requires_grad_(), weight.detach().requires_grad_()
        F.conv3d(xr, wr, padding=1, groups=6).sum().backward()
        xk, wk = x.detach().requires_grad_(), weight.detach().requires_grad_()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            depthwise_taps(xk, wk).sum().backward()
        assert any("backward kernel" in str(w.message) for w in caught), [str(w.message) for w in caught]
        torch.testing.assert_close(wk.grad, wr.grad, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(xk.grad, xr.grad, rtol=1e-5, atol=1e-5)
        depthwise_taps_module.depthwise_taps_weight_grad = real_grad

        depthwise_taps_module._VERIFIED.clear()  # a kernel that does not compile here

        def does_not_compile(*a, **k):
            raise RuntimeError("PTX .version 9.9 does not support .target sm_42")
        depthwise_taps_module.depthwise_taps_triton = does_not_compile
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = depthwise_taps(x, weight)
        assert any("failed: RuntimeError: PTX" in str(w.message) for w in caught)
        torch.testing.assert_close(got, want)
    finally:
        depthwise_taps_module.depthwise_taps_triton = real
        depthwise_taps_module._VERIFIED.clear()
        depthwise_taps_module._VERIFIED.update(saved)


QUICK_BENCH = ["--device", "cpu", "--quick", "--dtype", "fp32", "--size", "16", "--frames", "4", "--clips", "1",
               "--repeats", "1", "--warmup", "0", "--inner", "1"]


@interpreter_check
def benchmark_kernel_path() -> None:
    """benchmarks/depthwise_taps.py's GPU path on the interpreter: every depthwise conv of dil_resnet18 (the
    motion channels' Eq. 1 of each Intra-SIM, each Inter-SIM's Conv_U), the kernels agreeing with F.conv3d."""
    from project_scripts import load_script

    # 8 px: every stage still has its convs (the interpreter's time grows with the positions)
    size = QUICK_BENCH.index("--size") + 1
    args = QUICK_BENCH[:size] + ["8"] + QUICK_BENCH[size + 1:]
    report = load_script("benchmarks/depthwise_taps.py", "depthwise_taps_benchmark").main(args)
    rows = report["convs"]
    assert report["kernels"] and report["total"]["ok"]
    assert [r["kernel"] for r in rows] == [[3, 3, 3], [3, 1, 1]] * 4  # Intra-SIM, Inter-SIM alternating, 4 stages
    assert all(r["ok"] and r["triton_ms"] > 0 and r["triton_train_ms"] > 0 for r in rows)


def test_benchmark_conv_path_on_the_cpu():
    """Without a GPU (or the interpreter) the benchmark times PyTorch's conv only, at the model's shapes."""
    from project_scripts import load_script

    report = load_script("benchmarks/depthwise_taps.py", "depthwise_taps_benchmark").main(QUICK_BENCH)
    assert not report["kernels"] and len(report["convs"]) == 8
    assert all(r["conv_ms"] > 0 and "triton_ms" not in r for r in report["convs"])
    # layer1's Eq. 1 (U x c x T x H x W, U = 1): the 32 motion channels and the gate's 2 squeezed channels
    # once per direction, one depthwise conv (IntraSMA.merged_differences)
    assert report["convs"][0]["shape"] == [1, 36, 4, 4, 4]


def test_gpu_report_writes_step_5(tmp_path):
    """gpu_report.py's lines for the benchmark's JSON: not measured without it or without the kernels, else
    the summed forward and forward + backward times and the agreement."""
    from project_scripts import load_script

    report = load_script("benchmarks/gpu_report.py")
    assert "not measured (no `gpu_depthwise_taps.json`)" in report.depthwise_kernels(tmp_path)[1]
    load_script("benchmarks/depthwise_taps.py", "depthwise_taps_benchmark").main(
        QUICK_BENCH + ["--json", str(tmp_path / "gpu_depthwise_taps.json")])
    assert "ran without the Triton kernels" in report.depthwise_kernels(tmp_path)[1]
    run = json.loads((tmp_path / "gpu_depthwise_taps.json").read_text())
    run.update(kernels=True, triton="3.5.0")
    run["total"].update(triton_ms=0.5, triton_train_ms=2.0, ratio=8.0, train_ratio=4.5, ok=False)
    (tmp_path / "gpu_depthwise_taps.json").write_text(json.dumps(run))
    lines = report.depthwise_kernels(tmp_path)
    assert "8 convs of dil_resnet18" in lines[1]
    assert lines[-2].startswith("| forward | ") and lines[-2].endswith("| 0.500 | 8.00 | **no** |")
    assert lines[-1].endswith("| 2.000 | 4.50 | |")


@pytest.fixture(scope="module")
def interpreter_report() -> dict[str, str]:
    """This file's interpreter checks, run as a script under ``TRITON_INTERPRET=1`` (one process)."""
    return triton_interpreter.interpreter_report(__file__)


@pytest.mark.parametrize("name", list(INTERPRETER_CHECKS))
def test_triton_kernels_under_the_interpreter(interpreter_report, name):
    assert interpreter_report.get(name) == "ok", interpreter_report.get(name, "not run")


# ------------------------------------------------------------------ this process (no interpreter)


def test_reference_is_the_modules_conv():
    """Where the kernels do not apply (here: a CPU without the interpreter) the modules' conv runs, unchanged."""
    x = volume(2, 6, 4, 5, 7, "slice")
    weight = torch.randn(6, 1, 3, 3, 3)
    assert not depthwise_taps_available(x, weight)
    want = F.conv3d(x, weight, padding=(1, 1, 1), groups=6)
    assert torch.equal(depthwise_taps(x, weight), want)
    assert torch.equal(depthwise_taps_reference(x, weight), want)


def test_kernels_refuse_a_cpu_without_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    x = volume(1, 2, 2, 2, 2, "contiguous")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        depthwise_taps_triton(x, torch.randn(2, 1, 3, 3, 3))


@pytest.mark.parametrize("weight_shape, match", [
    ((6, 1, 3, 3), "weight must be \\(C, 1, kd, kh, kw\\)"),
    ((6, 1, 2, 3, 3), "odd kernel sizes"),
    ((5, 1, 3, 3, 3), "C = x's 6 channels"),
])
def test_bad_weights_are_named(weight_shape, match):
    x = volume(1, 6, 2, 2, 2, "contiguous")
    with pytest.raises(ValueError, match=match):
        depthwise_taps_reference(x, torch.randn(weight_shape))


def test_not_available_while_compiling_or_for_other_dtypes(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setattr(depthwise_taps_module, "_interpreting", lambda: True)  # as under the interpreter
    x, weight = volume(1, 4, 2, 3, 3, "channels_last"), torch.randn(4, 1, 3, 3, 3)
    assert depthwise_taps_available(x, weight)
    assert not depthwise_taps_available(x.double(), weight)
    assert not depthwise_taps_available(x, torch.randn(4, 1, 2, 3, 3))  # an even size: not a "same" conv
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not depthwise_taps_available(x, weight)


@pytest.mark.parametrize("kernel", [(3, 3, 3), (3, 1, 1), (1, 3, 5)])
def test_sum_of_shifted_views_is_the_conv(kernel):
    """What torch.compile sees on a GPU: the same numbers as F.conv3d, and the same gradients."""
    x = volume(2, 6, 4, 5, 7, "slice")
    weight = torch.randn(6, 1, *kernel)
    xs, ws = x.detach().requires_grad_(), weight.detach().requires_grad_()
    xr, wr = x.detach().requires_grad_(), weight.detach().requires_grad_()
    got = depthwise_taps_module.depthwise_taps_as_sum(xs, ws)
    want = depthwise_taps_reference(xr, wr)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    grad = torch.randn(want.shape)
    got.backward(grad)
    want.backward(grad)
    torch.testing.assert_close(xs.grad, xr.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ws.grad, wr.grad, rtol=1e-4, atol=1e-4)


def _compiled_conv_groups(sim, x, kwargs) -> tuple[list[int], torch.Tensor]:
    """The ``groups`` of every conv in the graph dynamo captures (fullgraph), and the compiled output."""
    groups = []

    def backend(gm: torch.fx.GraphModule, example_inputs):
        for node in gm.graph.nodes:
            if node.op == "call_function" and getattr(node.target, "__name__", "") in ("conv2d", "conv3d"):
                groups.append(node.kwargs.get("groups", node.args[6] if len(node.args) > 6 else 1))
        return gm.forward

    torch._dynamo.reset()
    try:
        with torch.no_grad():
            out = torch.compile(sim, backend=backend, fullgraph=True)(x, **kwargs)
    finally:
        torch._dynamo.reset()
    return groups, out


@pytest.mark.parametrize("module_name", ["IntraSIM", "InterSIM"])
def test_compiled_sims_have_no_depthwise_conv_on_a_gpu(module_name, monkeypatch):
    """Under torch.compile on a GPU (here: the CPU added to COMPILED_AS_SUM), the graph dynamo hands
    to inductor has no depthwise conv over the SIM's channels left: Eq. 1 of the motion channels and
    of the gate's (16 + 2 x 4 channels here, one conv: IntraSMA.merged_differences) and Conv_U (32) are pointwise ops inductor fuses into stencils; the compiled SIM
    computes what the eager one does. On the CPU (not in COMPILED_AS_SUM) the conv stays."""
    from dynsnip import InterSIM, IntraSIM
    from dynsnip.modules import inter_sim

    torch.manual_seed(0)
    sim = (IntraSIM(32, 4, reduction=4) if module_name == "IntraSIM" else InterSIM(32, 4)).eval()
    x = torch.randn(2 * 4, 32, 5, 6).contiguous(memory_format=torch.channels_last)  # U = 2, T = 4
    kwargs = {} if module_name == "IntraSIM" else {"num_snippets": 2}
    depthwise = 24 if module_name == "IntraSIM" else 32
    with torch.no_grad():
        want = sim(x, **kwargs)
    groups, _ = _compiled_conv_groups(sim, x, kwargs)
    assert depthwise in groups, groups  # the CPU's compiled graph: the conv
    for module in (depthwise_taps_module, inter_sim):
        monkeypatch.setattr(module, "COMPILED_AS_SUM", ("cuda", "cpu"))
    groups, got = _compiled_conv_groups(sim, x, kwargs)
    assert groups and depthwise not in groups and max(groups) < 16, groups
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


if __name__ == "__main__":  # the interpreter checks, run by interpreter_report with TRITON_INTERPRET=1
    # a kernel that disagrees is turned off with a RuntimeWarning and the reference answers instead: here
    # that is a failure (first_use_check_turns_a_disagreeing_kernel_off catches its own warnings)
    warnings.simplefilter("error", RuntimeWarning)
    print(json.dumps(triton_interpreter.run_checks(INTERPRETER_CHECKS)))
