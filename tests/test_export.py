"""Deployment guarantees: torch.compile with no graph break, channels_last, ONNX, autocast.

Small on purpose (dil_resnet18 on 1 x 3 x 8 x 64 x 64 clips; the inductor check on one
Intra-SIM and one Inter-SIM): the whole file runs in about a minute on 2 CPU cores.
Speed is not tested here; ``benchmarks/efficiency.py`` measures it (docs/performance.md).
"""
from __future__ import annotations

import json

import pytest
import timm
import torch
import torch.nn as nn

import dynsnip  # noqa: F401  (registers dil_*)
from dynsnip import InterSIM, IntraSIM
from project_scripts import load_script

T = 4


def randomise(module: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    """Random weights everywhere (Conv_U included, so that no path is an identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    m = timm.create_model("dil_resnet18", num_classes=2, zero_init_last=False)  # else every residual branch is 0
    for name, sim in m.named_modules():
        if isinstance(sim, (IntraSIM, InterSIM)):
            randomise(sim, seed=len(name))
    return m.eval()


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    return torch.randn(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))


class SIMPair(nn.Module):
    """An Intra-SIM then an Inter-SIM on folded frames: every SIM code path, small."""

    def __init__(self, channels: int = 16, conv_u: str = "depthwise") -> None:
        super().__init__()
        self.intra = IntraSIM(channels, T, reduction=4)
        self.inter = InterSIM(channels, T, conv_u=conv_u)

    def forward(self, x: torch.Tensor, num_snippets: int = 2) -> torch.Tensor:
        return self.inter(self.intra(x), num_snippets=num_snippets)


def frames(n_clips: int, u: int = 2, c: int = 16, hw: int = 6, seed: int = 2) -> torch.Tensor:
    return torch.randn(n_clips * u * T, c, hw, hw, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------- compile
def test_model_compiles_as_one_graph_and_matches_eager(model, clip):
    """fullgraph=True raises on any graph break (the backend does not matter for that)."""
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        torch.testing.assert_close(compiled(clip), model(clip), rtol=1e-5, atol=1e-5)


def test_sims_compile_with_inductor_and_match_eager():
    torch._dynamo.reset()
    pair = randomise(SIMPair()).eval()
    x = frames(2)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(pair, fullgraph=True)(x), pair(x), rtol=1e-4, atol=1e-5)


def test_compiled_training_step_matches_eager():
    """Forward and backward captured whole by AOTAutograd (in-place tap updates functionalised)."""
    torch._dynamo.reset()
    pair = randomise(SIMPair()).train()
    compiled = torch.compile(pair, fullgraph=True, backend="aot_eager")
    x = frames(2).requires_grad_()
    y = compiled(x)
    grads = torch.autograd.grad(y.square().sum(), [x, *pair.parameters()])
    x_ref = x.detach().requires_grad_()
    y_ref = pair(x_ref)
    grads_ref = torch.autograd.grad(y_ref.square().sum(), [x_ref, *pair.parameters()])
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-4)


def test_new_batch_sizes_do_not_recompile_each_time():
    """One static graph for the first size, then one dynamic graph for every other N and U."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    pair = randomise(SIMPair()).eval()
    compiled = torch.compile(pair, fullgraph=True, backend="eager")
    with torch.no_grad():
        for n_clips, u in ((1, 2), (2, 2), (3, 2), (5, 2)):
            x = frames(n_clips, u=u, seed=n_clips)
            torch.testing.assert_close(compiled(x, num_snippets=u), pair(x, num_snippets=u), rtol=1e-5, atol=1e-6)
    assert counters["stats"]["unique_graphs"] <= 2, dict(counters["stats"])


# ----------------------------------------------------------------------- channels_last
def test_channels_last_model_and_clip_give_the_same_verdict(model, clip):
    cl = timm.create_model("dil_resnet18", num_classes=2, zero_init_last=False)
    cl.load_state_dict(model.state_dict())
    cl = cl.eval().to(memory_format=torch.channels_last)
    x_cl = clip.contiguous(memory_format=torch.channels_last_3d)
    with torch.no_grad():
        torch.testing.assert_close(cl(x_cl), model(clip), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("conv_u", ["depthwise", "dense"])
def test_sims_accept_channels_last_frames(conv_u):
    pair = randomise(SIMPair(conv_u=conv_u)).eval()
    x = frames(2)
    with torch.no_grad():
        y = pair(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(y, pair(x), rtol=1e-5, atol=1e-6)


# -------------------------------------------------------------------------------- ONNX
def test_onnx_export_runs_in_onnxruntime_with_matching_outputs(model, clip, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    path = tmp_path / "dil_resnet18.onnx"
    # dynamic batch and number of snippets: U is read from the frame count, as in eager mode
    batch, snippets = torch.export.Dim("batch", min=1, max=64), torch.export.Dim("snippets", min=1, max=32)
    torch.onnx.export(model, (clip,), str(path), dynamo=True, input_names=["clip"], output_names=["logits"],
                      dynamic_shapes=({0: batch, 2: T * snippets},))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(7)
    others = [torch.randn(shape, generator=g) for shape in (clip.shape, (3, 3, 4 * T, 64, 64), (2, 3, T, 64, 64))]
    for x in (clip, *others):  # new clips, other B and U: the graph computes, it did not fold the first answer
        (out,) = session.run(None, {"clip": x.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(out), model(x), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- autocast
BIG = 4.0e4  # fits fp16 (max 65504); the difference of two of opposite sign does not


def _intra_with_planted_overflow() -> tuple[IntraSIM, torch.Tensor]:
    """Default Intra-SIM (coordinate attention, both directions, learnable kernel).

    Motion channels: two carry +-BIG alternating frame by frame, two carry small values.
    The squeezed features are +-BIG, so Eq. 1 gives +-2*BIG; the recovery conv reads the
    differences with a small weight into the attention of the small channels and with
    weight 0 into that of the big channels (0 * inf = nan if a difference overflowed).
    """
    sim = IntraSIM(8, T, reduction=2, motion_fraction=0.0).eval()  # x2: 4 channels, hidden 2
    sma = sim.sma
    with torch.no_grad():
        for p in sim.parameters():
            p.zero_()
        sma.squeeze.weight[:, :2] = 0.5  # f = mean of the two big channels = +-BIG
        sma.diff_conv.weight[:, :, 1, 1] = 1.0  # Conv3x3 = identity
        for conv in (sma.ht_conv, sma.tw_conv):
            conv.weight.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(3))
        for rec in (sma.recover_h, sma.recover_w):
            rec.weight[2:] = 2e-5  # small channels: attention depends on the differences
            rec.bias[:2] = -20.0  # big channels: attention ~ 0, output stays finite
    x = torch.rand(2 * T, 8, 5, 5, generator=torch.Generator().manual_seed(4)) + 0.5
    sign = torch.tensor([1.0, -1.0]).repeat(T)[:, None, None, None]
    x[:, 4:6] = BIG * sign  # two big motion channels, alternating over frames
    return sim, x


def _inter_with_planted_overflow() -> tuple[InterSIM, torch.Tensor]:
    """Default Inter-SIM; +-BIG channels alternate snippet by snippet, so Eq. 8-9 give +-2*BIG."""
    sim = InterSIM(8, T).eval()
    sma = sim.sma
    with torch.no_grad():
        for p in sim.parameters():
            p.zero_()
        sim.conv_u[:, 1] = 1.0  # identity Conv_U
        sma.squeeze.weight[:, :2] = 0.5  # f = +-BIG
        sma.frame_conv.weight[:, :, 0, 1] = torch.eye(2)  # Conv1x3 = identity
        sma.recover.weight[2:] = 1e-5
        sma.recover.bias[:2] = -20.0
    u = 4
    x = torch.rand(u * T, 8, 3, 3, generator=torch.Generator().manual_seed(5)) + 0.5
    sign = torch.tensor([1.0, -1.0]).repeat_interleave(T).repeat(u // 2)[:, None, None, None]
    x[:, :2] = BIG * sign
    return sim, x


@pytest.mark.parametrize("build", [_intra_with_planted_overflow, _inter_with_planted_overflow], ids=["intra", "inter"])
def test_difference_paths_do_not_overflow_under_fp16_autocast(build):
    sim, x = build()
    kw = {"num_snippets": x.shape[0] // T} if isinstance(sim, InterSIM) else {}
    with torch.no_grad():
        reference = sim(x, **kw)  # float32 throughout
        results = {}
        for fp32 in (True, False):
            sim.sma.fp32_differences = fp32
            with torch.autocast("cpu", dtype=torch.float16):
                results[fp32] = sim(x, **kw).float()
    assert torch.isfinite(reference).all()
    # the differences do reach the output: the small channels' attention depends on them
    small = reference[:, 6:] if isinstance(sim, IntraSIM) else reference[:, 2:]
    assert small.std() > 1e-3
    assert torch.isfinite(results[True]).all()
    torch.testing.assert_close(results[True], reference, rtol=2e-2, atol=2e-2)
    # the check above could fail: without the float32 region the same input overflows
    assert not torch.isfinite(results[False]).all()


def test_model_under_bf16_autocast_is_finite_and_close_to_float32(model, clip):
    with torch.no_grad():
        reference = model(clip)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = model(clip * 1e3)  # large activations as well
            z = model(clip)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(z.float(), reference, rtol=0.1, atol=0.1 * reference.abs().max().item())


# ---------------------------------------------------------------------------- benchmark
def test_benchmark_quick_path_prints_ratios_to_the_baseline(tmp_path, capsys):
    bench = load_script("benchmarks/efficiency.py")
    out = tmp_path / "bench.json"
    bench.main(["--quick", "--models", "dil_resnet18,resnet18", "--baseline", "resnet18", "--json", str(out)])
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    for figure in ("params M", "GFLOPs", "latency ms", "clips/s", "train ms", "peak MB"):
        assert header[header.index(figure) + 1] == "x"
    rows = {r.strip("|").split("|")[0].strip(): [c.strip() for c in r.strip("|").split("|")[1:]] for r in lines[2:]}
    assert set(rows) == {"dil_resnet18", "resnet18"}
    assert all(v == "1.00" for v in rows["resnet18"][1::2])  # the baseline against itself
    report = json.loads(out.read_text())
    dil = report["models"]["dil_resnet18"]
    assert dil["params"] > report["models"]["resnet18"]["params"]
    assert 1.0 < dil["ratio"]["params"] < 1.2 and 1.0 <= dil["ratio"]["flops"] < 1.1
    assert dil["peak_train"] > 0 and dil["latency"] > 0


def test_predict_throughput_benchmark_quick_path(tmp_path, capsys):
    bench = load_script("benchmarks/predict_throughput.py")
    out = tmp_path / "predict.json"
    bench.main(["--quick", "--workers", "1", "--json", str(out)])
    assert "same probabilities with every setting: True" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert [r["workers"] for r in report["rows"]] == [0, 1] and report["rows"][0]["speedup"] == 1.0
    assert report["videos"] == 3 and all(r["videos_per_s"] > 0 for r in report["rows"])
