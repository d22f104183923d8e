"""Edge cases of the SIMs and the dil_* models: kept composed weights after fused optimizer steps,
SIMs with (almost) no channels, empty batches, ``global_pool=''`` and pretrained weights for
``in_chans != 3``.
"""
from __future__ import annotations

import copy
import logging

import pytest
import timm
import torch
import torch.nn as nn
from safetensors.torch import save_file
from timm.models._manipulate import adapt_input_conv

import dynsnip  # noqa: F401  (registers dil_*)
from dynsnip import InterSIM, IntraSIM
from dynsnip.models.dil_resnet import checkpoint_filter_fn
from dynsnip.modules.composed_weights import clear_composed_weights
from reference_dil import inter_sim_reference, intra_sim_reference
from test_modules import randomise

T = 4


def frames(n: int, c: int, h: int = 5, w: int = 7, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


def sim_output(sim: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return sim(x, num_snippets=x.shape[0] // (2 * T) if isinstance(sim, InterSIM) else None)


def rebuilt(sim: nn.Module, build) -> nn.Module:
    """A new module with ``sim``'s state dict: nothing composed is kept in it."""
    fresh = build().eval()
    fresh.load_state_dict(sim.state_dict())
    return fresh


# ------------------------------------------------------------- kept composed weights
SIMS = {"intra": lambda: IntraSIM(16, T, reduction=4), "inter": lambda: InterSIM(16, T)}


def _update(sim: nn.Module, x: torch.Tensor, how: str) -> None:
    """Change ``sim``'s parameters in place, with no version counter bumped, in one of the ways
    the kept composed weights must see (each exercises one of the things that drop them)."""
    params = list(sim.parameters())
    if how in ("train-mode", "eval-mode", "step-only"):  # a fused optimizer (CPU fused AdamW)
        opt = torch.optim.AdamW(params, lr=0.05, fused=True)
        if how == "train-mode":
            sim.train()
        for step in range(3):
            if how == "step-only":  # no forward at all: only the optimizer step says anything
                g = torch.Generator().manual_seed(step)
                for p in params:
                    p.grad = torch.randn(p.shape, generator=g)
            else:
                sim_output(sim, x).square().mean().backward()
            opt.step()
            opt.zero_grad()
        if how == "train-mode":
            sim.eval()
    elif how == "data-sgd":  # hand-written SGD through .data, in eval mode: only the forwards with autograd say it
        for _ in range(3):
            sim_output(sim, x).square().mean().backward()
            for p in params:
                p.data.add_(p.grad, alpha=-0.5)
                p.grad = None
    else:  # "toggle": a .data write, then train() / eval() and no forward
        for p in params:
            p.data.mul_(-1.0)
        sim.train()
        sim.eval()


@pytest.mark.parametrize("kind", SIMS)
@pytest.mark.parametrize("no_grad", [torch.no_grad, torch.inference_mode], ids=["no_grad", "inference_mode"])
@pytest.mark.parametrize("how", ["train-mode", "eval-mode", "step-only", "data-sgd", "toggle"])
def test_kept_weights_follow_in_place_updates_that_bump_no_version(kind, no_grad, how):
    """A fused optimizer (``AdamW(fused=True)``, here on the CPU) writes the parameters without
    bumping their version counters, as does a write through ``.data``: the eval forward after them
    must not score with the weights composed before. ``train-mode``: the usual loop (train(),
    steps, eval()); ``eval-mode``: steps on a module left in eval mode (frozen BatchNorm
    statistics); ``step-only``: steps with given gradients and no forward in between (the
    optimizer step hook); ``data-sgd``: SGD by hand through ``.data`` (the forwards with
    autograd); ``toggle``: a ``.data`` write, then ``train()`` / ``eval()``."""
    build = SIMS[kind]
    sim = randomise(build())
    x = frames(2 * 2 * T, 16)
    with no_grad():
        before = sim_output(sim, x)  # composes and keeps the weights
    _update(sim, x, how)
    assert not sim.training
    with no_grad():
        after, expected = sim_output(sim, x), sim_output(rebuilt(sim, build), x)
    assert not torch.allclose(before, expected)  # the update changed what the module computes
    torch.testing.assert_close(after, expected, rtol=0, atol=0)


def test_a_dil_model_scores_with_the_weights_of_its_last_fused_step():
    """The QA reproduction: a validation pass, training steps with ``AdamW(fused=True)``, then
    evaluation gives what a new model with the same state dict gives."""
    torch.manual_seed(0)
    model = timm.create_model("dil_resnet18", num_classes=1, zero_init_last=False).eval()
    x = torch.randn(1, 3, 2 * T, 32, 32, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, fused=True)
    with torch.inference_mode():
        model(x)  # validation pass: the SIMs keep their composed weights
    for _ in range(3):
        model.train()
        model(x).sum().backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    fresh = timm.create_model("dil_resnet18", num_classes=1, zero_init_last=False).eval()
    fresh.load_state_dict(model.state_dict())
    with torch.inference_mode():
        torch.testing.assert_close(model(x), fresh(x), rtol=0, atol=0)


@pytest.mark.parametrize("kind", SIMS)
def test_kept_weights_are_reused_in_eval_inference_and_dropped_on_request(kind, monkeypatch):
    """Eval inference composes once and keeps (the cache's purpose); training-mode forwards keep
    nothing; a write through ``.data`` is not seen until clear_composed_weights."""
    sim = randomise(SIMS[kind]())
    x = frames(2 * 2 * T, 16)
    built = []
    original = type(sim).composed_weights
    monkeypatch.setattr(type(sim), "composed_weights", lambda self, *a: built.append(1) or original(self, *a))
    with torch.no_grad():
        first = sim_output(sim, x)
        sim_output(sim, x)
        assert len(built) == 1
        sim.train()
        sim_output(sim, x)
        sim_output(sim, x)
        sim.eval()
        n = len(built)
        sim_output(sim, x)
        sim_output(sim, x)
        assert len(built) == n + 1
        for p in sim.parameters():
            p.data.mul_(-1.0)  # .data: no version counter records it
        model = nn.Sequential(sim)
        clear_composed_weights(model)
        after = sim_output(sim, x)
        assert not torch.allclose(first, after)
        torch.testing.assert_close(after, sim_output(rebuilt(sim, SIMS[kind]), x), rtol=0, atol=0)


@pytest.mark.parametrize("no_grad", [torch.no_grad, torch.inference_mode], ids=["no_grad", "inference_mode"])
def test_an_inter_sim_whose_batchnorm_trains_in_eval_mode_uses_batch_statistics(no_grad):
    """AdaBN / test-time BatchNorm recalibration: an eval-mode Inter-SIM whose Eq. 7 BatchNorm is
    switched back to train() normalises with the batch statistics and updates the running ones,
    without autograd as with it: the BatchNorm is not folded into kept weights then (not even
    ones composed before the switch)."""
    sim = randomise(InterSIM(16, T)).eval()
    x = frames(2 * 2 * T, 16)
    with no_grad():
        sim_output(sim, x)  # all eval: composes and keeps the folded weights
    bn = sim.branch1[1]
    reference = copy.deepcopy(sim)
    bn.train()
    reference.branch1[1].train()
    before = bn.running_mean.clone()
    with no_grad():
        out = sim_output(sim, x)
    expected = sim_output(reference, x)  # autograd on: the step-by-step path, BatchNorm as it is
    assert not torch.equal(bn.running_mean, before)  # the batch updated the running statistics
    torch.testing.assert_close(bn.running_mean, reference.branch1[1].running_mean, rtol=0, atol=0)
    torch.testing.assert_close(out, expected.detach(), rtol=1e-5, atol=1e-6)
    bn.eval()
    reference.eval()
    with no_grad():  # back to eval: the folded weights follow the recalibrated statistics
        torch.testing.assert_close(sim_output(sim, x), sim_output(rebuilt(reference, lambda: InterSIM(16, T)), x),
                                   rtol=0, atol=0)


@pytest.mark.parametrize("kind", SIMS)
def test_kept_weights_are_not_used_while_a_submodule_trains(kind, monkeypatch):
    """ComposedWeights keeps weights only while the module and every submodule are in eval mode."""
    sim = randomise(SIMS[kind]()).eval()
    x = frames(2 * 2 * T, 16)
    built = []
    original = type(sim).composed_weights
    monkeypatch.setattr(type(sim), "composed_weights", lambda self, *a: built.append(1) or original(self, *a))
    with torch.no_grad():
        sim_output(sim, x)
        sub = next(m for m in sim.modules() if m is not sim and any(True for _ in m.parameters(recurse=False)))
        sub.train()
        n = len(built)
        sim_output(sim, x)
        sim_output(sim, x)
        assert len(built) in (n, n + 2)  # composed in each forward (volume path) or not at all: never kept
        assert sim._composed._key is None
        sub.eval()
        sim_output(sim, x)
        sim_output(sim, x)
        assert sim._composed._key is not None


@pytest.mark.parametrize("kind", SIMS)
@pytest.mark.parametrize("cpu_path", ["volume", "frames"])
def test_a_forward_under_inference_mode_leaves_nothing_that_breaks_a_later_backward(kind, cpu_path, monkeypatch):
    """Validation under torch.inference_mode() (as the README advises), then the next epoch's
    training step: the constants the modules keep (neighbour counts, direction masks, centre
    kernels) are inference tensors when made in inference mode, which autograd refuses to save.
    The training step must run, on the volume path (a GPU's) as on the CPU's frame path, and
    give the gradients of a module that never ran in inference mode."""
    monkeypatch.setattr(IntraSIM, "cpu_training_path", cpu_path)
    sim = randomise(SIMS[kind]())
    fresh = rebuilt(sim, SIMS[kind])
    x = frames(2 * 2 * T, 16)
    with torch.inference_mode():
        sim_output(sim, x)
    grads = []
    for module in (sim, fresh):
        module.train()
        sim_output(module, x).square().mean().backward()
        grads.append([p.grad for p in module.parameters()])
    for got, expected in zip(*grads):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


# ------------------------------------------------------------- SIMs with few channels
@pytest.mark.parametrize("channels, options", [
    (2, {}), (3, {}), (4, {}), (16, {"motion_fraction": 0.95}), (4, {"motion_source": "compressed"}),
    (4, {"coord_attention": False}), (4, {"edge": "frame"}), (4, {"bidirectional": False, "learnable_kernel": False}),
])
def test_an_intra_sim_whose_o2_is_all_motion_channels_runs_in_every_mode(channels, options):
    """With C/2 <= 2 channels (default motion_fraction) or a motion_fraction that rounds to all of
    C/2, no channel of O_2 is gated: every mode (train/eval, with/without autograd) computes the
    equations (the volume path, which composes weights for gated channels only, is not taken)."""
    sim = randomise(IntraSIM(channels, T, **options))
    assert sim.sma.motion_channels == channels - channels // 2
    x = frames(2 * T, channels)
    with torch.no_grad():
        expected = intra_sim_reference(sim, x)
    for training in (True, False):
        sim.train(training)
        for grad in (True, False):
            with torch.set_grad_enabled(grad):
                torch.testing.assert_close(sim(x), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 2, 3])
@pytest.mark.parametrize("conv_u", ["depthwise", "dense"])
def test_an_inter_sim_with_few_channels_runs_in_every_mode(channels, conv_u):
    """Inter-SMA's squeeze and Eq. 7's reduction floor at one channel: every mode runs, and the
    eval modes (composed weights without autograd, step by step with it) compute the equations."""
    sim = randomise(InterSIM(channels, T, conv_u=conv_u))
    x = frames(2 * 3 * T, channels)
    expected = inter_sim_reference(copy.deepcopy(sim).double(), x.double(), 3)
    training = copy.deepcopy(sim).train()  # (its BatchNorm statistics move)
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            torch.testing.assert_close(sim(x, num_snippets=3).double(), expected, rtol=1e-4, atol=1e-5)
            assert training(x, num_snippets=3).shape == x.shape


# ------------------------------------------------------------- dil_* models
@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return timm.create_model("dil_resnet18", num_classes=2, zero_init_last=False).eval()


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_an_empty_batch_gives_an_empty_output(small_model, training):
    """B = 0 clips: empty outputs of the right shape, as timm's 2D ResNet gives (no unflatten error)."""
    x = torch.randn(0, 3, 2 * T, 32, 32)
    small_model.train(training)
    try:
        for grad in (True, False):
            with torch.set_grad_enabled(grad):
                assert small_model(x).shape == (0, 2)
                assert small_model.forward_features(x).shape == (0, 512, 2 * T, 1, 1)
                shapes = [tuple(t.shape) for t in small_model.forward_intermediates(x, intermediates_only=True)]
                assert shapes == [(0, 64, 8, 16, 16), (0, 64, 8, 8, 8), (0, 128, 8, 4, 4), (0, 256, 8, 2, 2),
                                  (0, 512, 8, 1, 1)]
        assert all(torch.isfinite(b).all() for b in small_model.buffers() if b.is_floating_point())
    finally:
        small_model.eval()


def test_global_pool_off_returns_maps_without_a_classifier_and_refuses_one():
    """``global_pool=''``: timm's ResNet returns the maps with ``num_classes=0`` and cannot apply
    its classifier to them otherwise (a shape error); dil_* return the video maps, or say why not."""
    x = torch.randn(1, 3, 2 * T, 32, 32)
    maps = timm.create_model("dil_resnet18", num_classes=0, global_pool="").eval()
    with torch.no_grad():
        assert maps(x).shape == (1, 512, 2 * T, 1, 1)
    head = timm.create_model("dil_resnet18", num_classes=2, global_pool="").eval()
    with torch.no_grad():
        feats = head.forward_features(x)
        assert head.forward_head(feats, pre_logits=True).shape == (1, 512, 2 * T, 1, 1)
        with pytest.raises(ValueError, match=r"global_pool='' keeps the feature maps .*classifier \(2 classes\).*"
                                             r"num_classes=0"):
            head(x)
        with pytest.raises(RuntimeError):  # timm's own ResNet with the same arguments
            timm.create_model("resnet18", num_classes=2, global_pool="").eval()(x[:, :, 0])


@pytest.fixture(scope="module")
def imagenet_files(tmp_path_factory):
    files = {}
    for name in ("resnet18", "resnet18d", "resnetaa34d"):
        torch.manual_seed(1)
        ref = timm.create_model(name).eval()
        path = tmp_path_factory.mktemp("ckpt") / f"{name}.safetensors"
        save_file(ref.state_dict(), str(path))
        files[name] = ref.state_dict(), path
    return files


@pytest.mark.parametrize("base, first_conv", [("resnet18", "conv1"), ("resnet18d", "conv1.0"),
                                              ("resnetaa34d", "conv1.0")])  # a deep stem without Hub weights
@pytest.mark.parametrize("in_chans", [1, 2, 4])
def test_pretrained_2d_weights_load_for_other_input_channels(imagenet_files, base, first_conv, in_chans, caplog):
    """``in_chans != 3`` with ImageNet weights: the input conv is adapted as timm adapts its own
    models' (adapt_input_conv, by timm itself after the filter: no warning that the weight was
    adapted twice), the rest of the backbone loads exactly; deep stems too."""
    ref, path = imagenet_files[base]
    with caplog.at_level(logging.WARNING, logger="timm"):
        m = timm.create_model(f"dil_{base}", pretrained=True, in_chans=in_chans, num_classes=1,
                              pretrained_cfg_overlay=dict(file=str(path)))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert m.pretrained_cfg["first_conv"] == first_conv
    key = first_conv + ".weight"
    sd = m.state_dict()
    torch.testing.assert_close(sd[key], adapt_input_conv(in_chans, ref[key]), rtol=0, atol=0)
    assert all(torch.equal(sd[k], v) for k, v in ref.items() if k != key and not k.startswith("fc."))
    assert m(torch.randn(1, in_chans, T, 32, 32)).shape == (1, 1)
    # called directly (dynsnip train --init): the filter adapts it itself
    fresh = timm.create_model(f"dil_{base}", in_chans=in_chans, num_classes=1)
    out = checkpoint_filter_fn(ref, fresh)
    torch.testing.assert_close(out[key], adapt_input_conv(in_chans, ref[key]), rtol=0, atol=0)
    assert torch.equal(checkpoint_filter_fn(ref, fresh, adapt_first_conv=False)[key], ref[key])
    # another kernel size is still another architecture
    wrong = dict(ref, **{key: torch.zeros(ref[key].shape[0], 3, 5, 5)})
    with pytest.raises(ValueError, match=r"mis-shaped \(" + key.replace(".", r"\.")):
        checkpoint_filter_fn(wrong, fresh)


# ------------------------------------------------------------- wrong arguments and inputs
@pytest.mark.parametrize("build, message", [
    (lambda: InterSIM(8, snippet_len=0), r"InterSIM: snippet_len = 0; expected a whole number >= 1"),
    (lambda: InterSIM(8, frame_kernel_size=2), r"InterSMA: frame_kernel_size = 2; expected an odd whole number"),
    (lambda: InterSIM(8, branch1_reduction=0), r"InterSIM: branch1_reduction = 0"),
    (lambda: IntraSIM(32, coord_kernel_size=2), r"IntraSMA: coord_kernel_size = 2; expected an odd whole number"),
    (lambda: IntraSIM(32, diff_kernel_size=4), r"IntraSMA: diff_kernel_size = 4"),
    (lambda: IntraSIM(32, reduction=0), r"IntraSMA: reduction = 0"),
    (lambda: IntraSIM(32, gamma=0), r"SnippetKernel: gamma = 0"),  # K would be a constant, not learnt
    (lambda: IntraSIM(32, gamma=1.5), r"SnippetKernel: gamma = 1.5"),
    (lambda: IntraSIM(32, kernel_size=-1), r"SnippetKernel: kernel_size = -1; expected an odd whole number"),
    (lambda: IntraSIM(32, kernel_size=3.0), r"SnippetKernel: kernel_size = 3.0"),
    (lambda: IntraSIM(32, motion_fraction="0.5"), r"motion_fraction must be a number in \[0, 1\), got '0.5'"),
])
def test_a_size_the_module_cannot_build_is_refused_when_it_is_built(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_wrong_inputs_name_what_the_module_expects():
    with torch.no_grad():
        with pytest.raises(ValueError, match=r"IntraSIM was built for C=16 channels, got 8 on dim 1"):
            IntraSIM(16, T).eval()(frames(2 * T, 8))
        with pytest.raises(ValueError, match=r"InterSIM was built for C=16 channels, got 8 on dim 1"):
            InterSIM(16, T).eval()(frames(2 * T, 8), num_snippets=2)
        inter = InterSIM(16, T).eval()
        with pytest.raises(ValueError, match=r"num_snippets = 2.5; expected a whole number"):
            inter(frames(2 * T, 16), num_snippets=2.5)  # was truncated to 2, silently
        for bad in (True, False, torch.tensor(True), 0, -1, torch.tensor(0)):  # True was taken as U=1
            with pytest.raises(ValueError, match=r"num_snippets = .*; expected a whole number U >= 1"):
                inter(frames(T, 16), num_snippets=bad)
        with pytest.raises(ValueError, match=r"8 frames in the batch are not a multiple of num_snippets U=3"):
            inter(frames(2 * T, 16), num_snippets=3)
        torch.testing.assert_close(inter(frames(2 * T, 16), num_snippets=torch.tensor(2)),
                                   inter(frames(2 * T, 16), num_snippets=2), rtol=0, atol=0)
        model = timm.create_model("dil_resnet18", num_classes=2, channels=[8, 16, 32, 64], stem_width=8).eval()
        with pytest.raises(ValueError, match=r"forward_head expects the video features .* C'=64, U\*T, H', W'\), got "
                                             r"shape \(2, 64, 2, 2\); frame features"):
            model.forward_head(torch.randn(2, 64, 2, 2))
        with pytest.raises(ValueError, match=r"expects floating-point clips .* got dtype torch.uint8"):
            model(torch.zeros(1, 3, 2 * T, 32, 32, dtype=torch.uint8))
