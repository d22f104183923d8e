"""The SIMs' volume path (issue 24): same checkpoints, same outputs, few kernels, layouts kept.

``frozen_sims`` is the SIM code that computed every checkpoint saved before the rewrite; the
state dicts it makes must load into today's modules (same keys and shapes) and give the same
outputs, in every mode the modules have (eval inference with composed weights kept, with
autograd, training-mode BatchNorm, channels_last frames). ``reference_dil.py`` checks the
equations themselves (tests/test_modules.py).
"""
from __future__ import annotations

import copy
import re

import pytest
import timm
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

import dynsnip
import frozen_sims
from dynsnip import InterSIM, IntraSIM
import dynsnip.modules.inter_sim as inter_sim_module
from project_scripts import load_script

T = 4
C = 64


def randomise(module: nn.Module, seed: int = 0, scale: float = 0.4) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
        for name, b in module.named_buffers():
            if b.dtype.is_floating_point:
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return module


def frames(n: int, c: int = C, h: int = 5, w: int = 7, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def pair(cls, frozen_cls, options, seed=0):
    """A module made by the frozen code (random weights), and today's module loaded from its state dict."""
    old = randomise(frozen_cls(C, T, **options), seed)
    new = cls(C, T, **options)
    assert {k: v.shape for k, v in new.state_dict().items()} == {k: v.shape for k, v in old.state_dict().items()}
    new.load_state_dict(old.state_dict())  # strict
    return old, new


INTRA_OPTIONS = [
    {},  # dynsnip's defaults: motion channels, per-direction weights
    dynsnip.paper_config("paper")["intra_args"],  # the paper's module
    {"share_directions": True, "motion_fraction": 0.0},  # dynsnip 0.1.0's layout
    {"share_directions": True},
    {"bidirectional": False, "coord_attention": False, "learnable_kernel": False},
    {"edge": "frame", "motion_source": "compressed"},
    {"reduction": 8, "kernel_size": 5, "diff_kernel_size": 5, "coord_kernel_size": 5, "motion_fraction": 0.5},
]
INTER_OPTIONS = [{}, {"share_directions": True}, {"bidirectional": False, "edge": "frame"},
                 {"conv_u": "dense"}, {"snippet_kernel_size": 5, "frame_kernel_size": 5}]


@pytest.mark.parametrize("cpu_training_path", ["volume", "frames"])
@pytest.mark.parametrize("options", INTRA_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_intra_sim_computes_what_the_saved_checkpoints_computed(options, cpu_training_path, monkeypatch):
    """Inference takes the volume path; with autograd on the CPU, ``cpu_training_path`` chooses
    (the frame path by default, the volume path as on a GPU): both give the frozen outputs and
    gradients."""
    monkeypatch.setattr(IntraSIM, "cpu_training_path", cpu_training_path)
    old, new = pair(IntraSIM, frozen_sims.IntraSIM, options)
    calls = []
    monkeypatch.setattr(new, "forward_volume", lambda x, f=new.forward_volume: calls.append("volume") or f(x))
    monkeypatch.setattr(new, "forward_frames", lambda x, f=new.forward_frames: calls.append("frames") or f(x))
    x = frames(3 * T)
    with torch.no_grad():
        expected = old(x)
        for _ in range(2):  # the second call uses the composed weights kept by the first
            torch.testing.assert_close(new(x), expected, rtol=1e-4, atol=1e-5)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(new(x_cl), expected, rtol=1e-4, atol=1e-5)
    # with autograd: the weights are composed in the forward, gradients reach the parameters
    xg = x.clone().requires_grad_()
    y = new(xg)
    torch.testing.assert_close(y, expected, rtol=1e-4, atol=1e-5)
    xo = x.clone().requires_grad_()
    y.square().sum().backward()
    old(xo).square().sum().backward()
    torch.testing.assert_close(xg.grad, xo.grad, rtol=1e-3, atol=1e-4)
    for (name, p), q in zip(new.named_parameters(), old.parameters()):
        assert p.grad is not None, name
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-3, msg=name)
    if new.sma.volume_path:  # three inference calls on the volume path, then the training one on the chosen path
        assert calls == ["volume"] * 3 + [cpu_training_path], calls


@pytest.mark.parametrize("conv_u_op", ["auto", "conv3d", "conv2d"])
@pytest.mark.parametrize("options", INTER_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "defaults")
def test_inter_sim_computes_what_the_saved_checkpoints_computed(options, conv_u_op, monkeypatch):
    """In every mode, whichever op runs Conv_U (``InterSIM.conv_u_op``)."""
    monkeypatch.setattr(InterSIM, "conv_u_op", conv_u_op)
    old, new = pair(InterSIM, frozen_sims.InterSIM, options)
    u = 3
    x = frames(2 * u * T)
    old.eval(), new.eval()
    with torch.no_grad():  # eval: BatchNorm folded into the composed weights
        expected = old(x, num_snippets=u)
        for _ in range(2):
            torch.testing.assert_close(new(x, num_snippets=u), expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(new(x.contiguous(memory_format=torch.channels_last), num_snippets=u), expected,
                                   rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(new(x, num_snippets=u), expected, rtol=1e-4, atol=1e-5)  # with autograd
    old.train(), new.train()  # training: BatchNorm on the batch, running statistics updated alike
    xg, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    y, y_old = new(xg, num_snippets=u), old(xo, num_snippets=u)
    torch.testing.assert_close(y, y_old, rtol=1e-4, atol=1e-5)
    y.square().sum().backward()
    y_old.square().sum().backward()
    torch.testing.assert_close(xg.grad, xo.grad, rtol=1e-3, atol=1e-4)
    for (name, p), q in zip(new.named_parameters(), old.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-3, msg=name)
    for (name, b), b_old in zip(new.named_buffers(), old.buffers()):
        torch.testing.assert_close(b, b_old, msg=name)


def test_conv_u_runs_as_a_conv3d_in_cpu_inference_only_unless_told(monkeypatch):
    """``conv_u_op="auto"``: the depthwise Conv3d (oneDNN) in CPU inference, the (k, 1) Conv2d with
    autograd (CPU training), the Triton kernels where they apply (a GPU); a forced op is taken
    everywhere ("triton" only where the kernels apply); a typo is refused."""
    sim = InterSIM(C, T)
    y = torch.zeros(1, C, 2, T, 6)
    w = sim.conv_u_weight()
    with torch.no_grad():
        assert sim._conv_u_op(y, w) == "conv3d"
    assert sim._conv_u_op(y, w) == "conv2d"  # autograd on
    sim.conv_u_op = "triton"  # no GPU, no interpreter: auto's choice
    assert sim._conv_u_op(y, w) == "conv2d"
    sim.conv_u_op = "conv2d"
    with torch.no_grad():
        assert sim._conv_u_op(y, w) == "conv2d"
    sim.conv_u_op = "conv3d"
    assert sim._conv_u_op(y, w) == "conv3d"
    monkeypatch.setattr(inter_sim_module, "depthwise_taps_available", lambda x, weight: True)  # as on a GPU
    assert sim._conv_u_op(y, w) == "conv3d"  # forced
    sim.conv_u_op = "auto"
    assert sim._conv_u_op(y, w) == "triton"
    sim.conv_u_op = "conv3D"
    with pytest.raises(ValueError, match="conv_u_op must be 'auto', 'triton', 'conv3d' or 'conv2d', got 'conv3D'"):
        sim(frames(2 * T), num_snippets=2)


@pytest.mark.parametrize("options", INTRA_OPTIONS[:2], ids=["defaults", "paper"])
def test_intra_sim_frame_path_on_request_computes_the_same(options, monkeypatch):
    """``IntraSIM.path = "frames"`` (what gpu.sh compares with the volume path on a GPU): every
    forward takes the frame path, with the frozen outputs and gradients."""
    old, new = pair(IntraSIM, frozen_sims.IntraSIM, options)
    new.path = "frames"
    calls = []
    monkeypatch.setattr(new, "forward_volume", lambda x, f=new.forward_volume: calls.append("volume") or f(x))
    monkeypatch.setattr(new, "forward_frames", lambda x, f=new.forward_frames: calls.append("frames") or f(x))
    x = frames(2 * T)
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x), rtol=1e-4, atol=1e-5)
    xg, xo = x.clone().requires_grad_(), x.clone().requires_grad_()
    new(xg).square().sum().backward()
    old(xo).square().sum().backward()
    torch.testing.assert_close(xg.grad, xo.grad, rtol=1e-3, atol=1e-4)
    assert calls == ["frames", "frames"]
    new.path = "volumes"
    with pytest.raises(ValueError, match="IntraSIM.path must be 'auto' or 'frames', got 'volumes'"):
        new(x)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("fp32_differences", [True, False])
@pytest.mark.parametrize("cls, frozen_cls, options", [
    (IntraSIM, frozen_sims.IntraSIM, {}), (IntraSIM, frozen_sims.IntraSIM, {"edge": "frame"}),
    (InterSIM, frozen_sims.InterSIM, {}), (InterSIM, frozen_sims.InterSIM, {"edge": "frame"}),
], ids=["intra", "intra-edge-frame", "inter", "inter-edge-frame"])
def test_eval_inference_under_autocast_computes_what_the_saved_checkpoints_computed(cls, frozen_cls, options,
                                                                                   fp32_differences, dtype):
    """The composed weights (Inter-SIM: Eq. 10's 1x1 folded into the conv of Eq. 7-9; Intra-SIM: the
    motion channels' Eq. 1 in the gate's conv) under bf16 and fp16 autocast, with and without the
    float32 difference region: the frozen code's outputs, to the precision of the dtype."""
    old, new = pair(cls, frozen_cls, {**options, "fp32_differences": fp32_differences}, seed=4)
    old.eval(), new.eval()
    x = frames(2 * 3 * T, h=6, w=6).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = old(x, num_snippets=3)  # float32
        with torch.autocast("cpu", dtype=dtype):
            got = new(x, num_snippets=3)
    assert got.dtype in (dtype, torch.float32)
    err = (got.float() - expected).abs().max() / expected.abs().max()
    assert err < 3e-2, float(err)


def _with_frozen_sims(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose SIMs are the frozen code's, with the same weights."""
    frozen = copy.deepcopy(model)
    for name, sim in list(frozen.named_modules()):
        if isinstance(sim, (IntraSIM, InterSIM)):
            cls = frozen_sims.IntraSIM if isinstance(sim, IntraSIM) else frozen_sims.InterSIM
            args = frozen.dil_args["intra_args" if isinstance(sim, IntraSIM) else "inter_args"]
            old = cls(sim.channels, sim.snippet_len, **args)
            old.load_state_dict(sim.state_dict())
            parent, child = name.rsplit(".", 1)
            setattr(frozen.get_submodule(parent), child, old.train(sim.training))
    return frozen


@pytest.mark.parametrize("kwargs", [{}, dynsnip.paper_config("paper")], ids=["defaults", "paper"])
def test_a_model_saved_before_the_rewrite_loads_and_gives_the_same_verdicts(kwargs, tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("dil_resnet18", num_classes=2, zero_init_last=False, **kwargs)
    randomise(model, seed=3, scale=0.1)
    saved = _with_frozen_sims(model).eval()  # the model as the code before the rewrite computed it
    path = tmp_path / "model.safetensors"
    from safetensors.torch import load_file, save_file

    save_file({k: v.contiguous() for k, v in saved.state_dict().items()}, str(path))
    loaded = timm.create_model("dil_resnet18", num_classes=2, **kwargs)
    loaded.load_state_dict(load_file(str(path)))  # strict: same keys and shapes
    loaded.eval()
    clip = torch.randn(2, 3, 2 * T, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = saved(clip)
        torch.testing.assert_close(loaded(clip), expected, rtol=1e-4, atol=1e-4)
        cl = loaded.to(memory_format=torch.channels_last)
        torch.testing.assert_close(cl(clip.contiguous(memory_format=torch.channels_last_3d)), expected,
                                   rtol=1e-4, atol=1e-4)


def test_kept_weights_follow_every_change_of_the_parameters():
    """Eager inference keeps the composed weights; an optimizer step, load_state_dict or an in-place
    change under no_grad must be seen by the next forward."""
    sim = randomise(IntraSIM(C, T)).eval()
    inter = randomise(InterSIM(C, T)).eval()
    x = frames(2 * T)
    fresh = lambda m: copy.deepcopy(m)  # noqa: E731  (a copy starts with nothing kept)
    with torch.no_grad():
        sim(x), inter(x, num_snippets=2)
    opt = torch.optim.SGD(list(sim.parameters()) + list(inter.parameters()), lr=0.5)
    (sim(x).sum() + inter(x, num_snippets=2).sum()).backward()
    opt.step()
    with torch.no_grad():
        torch.testing.assert_close(sim(x), fresh(sim)(x))
        torch.testing.assert_close(inter(x, num_snippets=2), fresh(inter)(x, num_snippets=2))
        sim.sma.ht_conv.weight.mul_(-1.0)
        inter.branch1[1].running_var.mul_(3.0)  # a buffer: BatchNorm is folded into the kept weights
        torch.testing.assert_close(sim(x), fresh(sim)(x))
        torch.testing.assert_close(inter(x, num_snippets=2), fresh(inter)(x, num_snippets=2))
        other = randomise(IntraSIM(C, T), seed=9).state_dict()
        before = sim(x)
        sim.load_state_dict(other)
        after = sim(x)
        assert not torch.allclose(before, after)
        torch.testing.assert_close(after, fresh(sim)(x))


class _Kernels(TorchDispatchMode):
    """Ops that reach a kernel (below autograd), views and allocations left out."""

    VIEWS = {"view", "_unsafe_view", "as_strided", "slice", "select", "unsqueeze", "squeeze", "permute", "transpose",
             "t", "expand", "split", "split_with_sizes", "unbind", "alias", "detach", "unfold", "empty", "empty_like",
             "empty_strided"}

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ not in self.VIEWS:
            self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("cls, budget, before", [(IntraSIM, 18, 55), (InterSIM, 8, 25)])
def test_an_eager_forward_is_a_handful_of_kernels(cls, budget, before):
    """Each kernel is a launch on a GPU: the rewrite cut them from ``before`` (the frozen code:
    55 / 25 for these defaults) to at most ``budget`` (Intra-SIM: Eq. 1 of the gate's and the motion
    channels as one depthwise conv and one multiply-add; Inter-SIM: Eq. 10's 1x1 and the ``+ n ⊙ F̂``
    of Eq. 8-9 inside the conv of Eq. 7-9)."""
    sim = cls(C, T).eval()
    x = frames(16 * 4 * T, h=4, w=4).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        sim(x, num_snippets=4)
        counted = _Kernels()
        with counted:
            y = sim(x, num_snippets=4)
    assert len(counted.names) <= budget, counted.names
    old = (frozen_sims.IntraSIM if cls is IntraSIM else frozen_sims.InterSIM)(C, T).eval()
    with torch.no_grad(), _Kernels() as old_counted:
        old(x, num_snippets=4)
    assert len(old_counted.names) >= before
    # 16 clips: PyTorch's CPU convolutions keep channels_last (as cuDNN does; on one thread and a
    # batch under 16 its 1x1 convolutions return NCHW, a CPU-only quirk)
    assert y.is_contiguous(memory_format=torch.channels_last)


def _top_level_ops(fn) -> list[str]:
    """The aten ops ``fn`` calls from Python, views included (``benchmarks/op_counts.py``'s "ops")."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return [e.name for e in prof.events() if e.name.startswith("aten::")
            and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))]


INTRA_OPS, INTER_OPS = 26, 10  # per SIM in eager inference (plain PyTorch), views included


@pytest.mark.parametrize("cls, options, budget", [(IntraSIM, {}, INTRA_OPS), (IntraSIM, {"motion_fraction": 0.0}, 22),
                                                  (InterSIM, {}, INTER_OPS)], ids=["intra", "intra-paper", "inter"])
def test_an_eager_inference_calls_few_ops(cls, options, budget):
    """What the host dispatches per forward in eager inference, views included (issue 24's measure):
    at most ``budget`` aten calls (Intra-SIM 28 / 23 and Inter-SIM 12 before session P; Inter-SIM 11
    before its two logits shared one conv's slots, session 20)."""
    sim = cls(C, T, **options).eval()
    x = frames(2 * 4 * T, h=4, w=4).contiguous(memory_format=torch.channels_last)
    old = IntraSIM.triton_tail
    IntraSIM.triton_tail = False  # the plain PyTorch path (a GPU's eager inference fuses the tail)
    try:
        with torch.no_grad():
            y = sim(x, num_snippets=4)
            ops = _top_level_ops(lambda: sim(x, num_snippets=4))
    finally:
        IntraSIM.triton_tail = old
    assert len(ops) <= budget, ops
    assert y.is_contiguous(memory_format=torch.channels_last)


class _FullSizeFloat32(TorchDispatchMode):
    """Records the ops whose output is a float32 tensor of at least ``numel`` elements."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel, self.names = numel, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.numel() >= self.numel:
            self.names.append(func.overloadpacket.__name__)
        return out


def test_inter_sim_under_bf16_autocast_stays_bf16_at_full_size():
    """Under bf16 autocast the Inter-SIM's attention (the product of Eq. 7's and Eq. 10's sigmoids, over the two
    slots of one conv's output) stays bf16: autocast would run ``prod`` in float32, and a float32 attention makes
    Eq. 11's multiply-add over the whole clip volume float32 (twice the bytes, and a cast back for Conv_U). One
    kernel per step, as the product of two halves was."""
    sim = randomise(InterSIM(C, T)).eval()
    x = frames(2 * 4 * T, h=6, w=6).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        reference = sim.forward(x.float(), num_snippets=4)  # float32 input: the float32 path under autocast
        sim(x, num_snippets=4)
        wide, counted = _FullSizeFloat32(x.numel()), _Kernels()
        with wide:
            y = sim(x, num_snippets=4)
        with counted:
            sim(x, num_snippets=4)
    assert y.dtype == torch.bfloat16 and not wide.names, wide.names
    assert counted.names.count("prod") == 1 and len(counted.names) <= 9, counted.names  # no cast for prod
    torch.testing.assert_close(y.float(), reference.float(), rtol=0.05, atol=0.05)


def test_the_model_adds_two_calls_to_its_sims():
    """Outside its SIMs, an eager forward of dil_resnet18 dispatches at most 2 calls more than resnet18 on the
    same frames: the clip to channels_last frames (a copy and a view; resnet18 gets them folded already) and
    back out as a view, against resnet18's pool and flatten; the head's temporal consensus is one mean
    (before session 20: 7 more, a transpose, a flatten and a layout copy in, and a fold, pool, flatten,
    unflatten and mean in the head)."""
    IntraSIM.triton_tail, old = False, IntraSIM.triton_tail
    try:
        model = timm.create_model("dil_resnet18", num_classes=2).eval()
        backbone = timm.create_model("resnet18", num_classes=2).eval()
        clip = torch.randn(1, 3, 2 * T, 64, 64)  # layer4's maps 2 x 2 (at 1 x 1 a few ops differ)
        frames_ = clip.transpose(1, 2).flatten(0, 1)
        with torch.no_grad():
            model(clip), backbone(frames_)
            ops, base = _top_level_ops(lambda: model(clip)), _top_level_ops(lambda: backbone(frames_))
    finally:
        IntraSIM.triton_tail = old
    sims = [m for m in model.modules() if isinstance(m, (IntraSIM, InterSIM))]
    n_intra = sum(isinstance(m, IntraSIM) for m in sims)
    assert n_intra == 4 and len(sims) == 8
    assert len(ops) <= len(base) + n_intra * INTRA_OPS + (len(sims) - n_intra) * INTER_OPS + 2, (len(ops), len(base))
    assert "aten::unflatten" not in ops and "aten::adaptive_avg_pool2d" not in ops  # the head: one mean


@pytest.mark.parametrize("pool", ["avg", "fast", "max", "avgmax"])
def test_the_head_pools_a_clip_as_the_mean_of_its_frames(pool):
    """The clip's score from its frames: each frame's features pooled, then averaged over the U*T frames
    (temporal consensus), then the classifier. For global average pooling that is one mean over (frames, H',
    W'); the other pools keep the per-frame path. Both give what the per-frame recipe gives."""
    model = timm.create_model("dil_resnet18", num_classes=3, global_pool=pool).eval()
    clip = torch.randn(2, 3, 2 * T, 32, 32)
    with torch.no_grad():
        feats = model.forward_features(clip)  # (B, C', U*T, H', W')
        per_frame = model.global_pool(feats.transpose(1, 2).flatten(0, 1)).unflatten(0, (2, 2 * T)).mean(1)
        expected = model.fc(per_frame)
        got = model.forward_head(feats)
    assert model._pools_by_mean() == (pool in ("avg", "fast"))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_eager_inference_runs_channels_last_from_the_stem_and_leaves_the_clip_alone():
    """A clip in torchvision's layout is copied once into channels_last_3d order in eager inference (the
    stem gets channels_last frames, no later layout copy); the caller's tensor is untouched, and training
    (autograd) keeps the clip as given. The same logits either way."""
    model = timm.create_model("dil_resnet18", num_classes=2).eval()
    clip = torch.randn(1, 3, 2 * T, 32, 32)
    before = clip.clone()
    seen = []
    model.conv1.register_forward_pre_hook(lambda m, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last)))
    with torch.no_grad():
        y = model(clip)
    y_grad = model(clip)
    assert seen == [True, False]
    assert clip.is_contiguous() and torch.equal(clip, before)
    torch.testing.assert_close(y, y_grad.detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("options", [{}, {"motion_source": "compressed"}, {"coord_attention": False}],
                         ids=["defaults", "compressed", "no-coord"])
def test_cpu_inference_on_one_clip_keeps_channels_last(options):
    """One clip (a batch under 16) on one thread: PyTorch's CPU backend would return NCDHW from the
    1x1 (and 1-wide) Conv3d; the volume path routes them to oneDNN (``cpu_dilation``), so the output
    stays channels_last and the next layers get no layout conversion."""
    sim = randomise(IntraSIM(C, T, **options)).eval()
    x = frames(4 * T, h=6, w=6).contiguous(memory_format=torch.channels_last)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            y = sim(x)
    finally:
        torch.set_num_threads(threads)
    assert y.is_contiguous(memory_format=torch.channels_last)


def test_the_benchmark_tsm_shift_keeps_channels_last_and_copies_nothing_else():
    bench = load_script("benchmarks/efficiency.py")
    x = frames(2 * 8, c=16, h=4, w=4).contiguous(memory_format=torch.channels_last)
    y = bench.TemporalShift.shift(x, 8, fold_div=8)
    assert y.is_contiguous(memory_format=torch.channels_last)
    v, out = x.unflatten(0, (2, 8)), y.unflatten(0, (2, 8))
    torch.testing.assert_close(out[:, :-1, :2], v[:, 1:, :2])  # from the next frame
    assert out[:, -1, :2].abs().max() == 0
    torch.testing.assert_close(out[:, 1:, 2:4], v[:, :-1, 2:4])  # from the previous frame
    torch.testing.assert_close(out[:, :, 4:], v[:, :, 4:])
    with _Kernels() as counted:
        bench.TemporalShift.shift(x, 8)
    assert sorted(set(counted.names)) == ["copy_", "zeros_like"] and counted.names.count("copy_") == 3, counted.names


def test_compiled_sims_keep_channels_last_with_no_nchw_buffer():
    """Inductor's generated code for channels_last frames: every activation buffer channels last
    (inductor would lay the 5-d volumes out NCDHW by itself), outputs equal to eager."""
    from torch._inductor.utils import run_and_get_code

    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.intra, self.inter = IntraSIM(16, T, reduction=4), InterSIM(16, T)

        def forward(self, x):
            return self.inter(self.intra(x), num_snippets=2)

    torch._dynamo.reset()
    m = randomise(Pair(), scale=0.3).eval()
    x = frames(16 * 2 * T, c=16, h=6, w=6).contiguous(memory_format=torch.channels_last)  # 16 clips
    with torch.no_grad():
        y, codes = run_and_get_code(torch.compile(m, fullgraph=True), x)
        torch.testing.assert_close(y, m(x), rtol=1e-4, atol=1e-5)
    assert y.is_contiguous(memory_format=torch.channels_last)
    n = x.numel()
    wrong = []
    for size, stride in re.findall(r"empty_strided_\w+\(\(([^)]*)\), \(([^)]*)\)", "\n".join(codes)):
        size = [int(s) for s in size.split(",") if s.strip()]
        stride = [int(s) for s in stride.split(",") if s.strip()]
        if len(size) >= 4 and torch.Size(size).numel() >= n // 4 and stride[1] != 1:  # channels not innermost
            wrong.append((size, stride))
    assert not wrong, wrong
