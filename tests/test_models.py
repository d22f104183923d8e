"""dil_* models in timm: registry, video input, timm's model API, weights from 2D checkpoints.

Models whose outputs are compared are built with ``zero_init_last=False``: timm zero-initialises
the last BatchNorm of every residual block, so in a fresh model every residual branch, SIMs
included, outputs zero and a test of what mixes across snippets or clips would pass for any SIM.
"""
from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import save_file

import dynsnip
from dynsnip.models.dil_resnet import checkpoint_filter_fn


def clip(b=2, u=2, t=4, hw=32, seed=0):
    return torch.randn(b, 3, u * t, hw, hw, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return timm.create_model("dil_resnet18", num_classes=2, zero_init_last=False).eval()


def test_registry():
    names = timm.list_models("dil_*")
    assert {"dil_resnet18", "dil_resnet50", "dil_resnet101", "dil_seresnet50", "dil_resnext50_32x4d"} <= set(names)
    pruned = {"ecaresnet50d_pruned", "ecaresnet101d_pruned"}  # left out (_base_names)
    assert pruned <= set(timm.list_models(module="resnet"))
    assert sorted(names) == sorted(f"dil_{n}" for n in timm.list_models(module="resnet") if n not in pruned)
    for name in names:  # every registered name builds (on the meta device: no memory, no time)
        with torch.device("meta"):
            timm.create_model(name)
    assert "resnet50" in timm.list_models("resnet50")  # timm's own model untouched
    assert "resnet50.tv_in1k" in timm.list_pretrained("resnet50.*")  # its tags kept
    pretrained = timm.list_pretrained("dil_resnet50.*")
    assert "dil_resnet50.tv_in1k" in pretrained and "dil_resnet50.a1_in1k" in pretrained
    m = timm.create_model("dil_resnet50")
    assert m.pretrained_cfg["tag"] == "tv_in1k"  # the paper's torchvision ImageNet ResNet-50
    assert m.pretrained_cfg["hf_hub_id"] == "timm/resnet50.tv_in1k"
    m = timm.create_model("dil_resnet18.a1_in1k")
    assert m.pretrained_cfg["hf_hub_id"] == "timm/resnet18.a1_in1k"


def test_a_base_without_hub_weights_keeps_timms_pretrained_config():
    """A dil_* whose base has no ImageNet weights on the Hub (timm's "untrained" tag) gets timm's
    config for the base, without a weight source: the deep stems' first_conv ``conv1.0`` (which
    timm adapts to in_chans != 3), input and pool sizes, crop, mean and std."""
    from timm.models import get_pretrained_cfg
    from timm.models._registry import get_arch_pretrained_cfgs

    untagged = [n[len("dil_"):] for n in dynsnip.models.dil_resnet.dil_model_names()
                if not any(c.hf_hub_id for c in get_arch_pretrained_cfgs(n[len("dil_"):]).values())]
    assert {"resnet50t", "resnetaa34d", "seresnet200d", "ecaresnext26t_32x4d", "seresnet18"} <= set(untagged)
    keys = ("first_conv", "classifier", "num_classes", "input_size", "test_input_size", "pool_size", "crop_pct",
            "test_crop_pct", "crop_mode", "interpolation", "mean", "std")
    for base in untagged:
        timm_cfg, dil_cfg = get_pretrained_cfg(base), get_pretrained_cfg(f"dil_{base}")
        assert {k: getattr(dil_cfg, k) for k in keys} == {k: getattr(timm_cfg, k) for k in keys}, base
        assert dil_cfg.hf_hub_id is None and dil_cfg.url is None and dil_cfg.file is None, base
    assert get_pretrained_cfg("dil_seresnet200d").input_size == (3, 256, 256)
    assert get_pretrained_cfg("dil_resnet50t").first_conv == "conv1.0"


def test_building_a_dil_model_leaves_timms_resnet_module_alone(monkeypatch):
    """create_model("dil_*") reads the base ResNet's arguments without replacing anything in timm's
    ``resnet`` module (a replaced ``_create_resnet`` broke timm ResNets built by other threads at
    the same time), and models built from several threads at once all build."""
    import threading
    import types

    from timm.models import resnet as timm_resnet

    writes = []

    class Watched(types.ModuleType):
        def __setattr__(self, name, value):
            writes.append(name)
            super().__setattr__(name, value)

    monkeypatch.setattr(timm_resnet, "__class__", Watched)
    with torch.device("meta"):
        for name in ("dil_resnet18", "dil_seresnet50", "dil_resnet50d"):
            timm.create_model(name)
    assert writes == []
    monkeypatch.undo()

    errors = []

    def build(name):
        try:
            for _ in range(5):
                with torch.device("meta"):
                    timm.create_model(name)
        except Exception as err:  # noqa: BLE001 - collected for the assertion below
            errors.append(f"{name}: {type(err).__name__} {err}")

    threads = [threading.Thread(target=build, args=(n,)) for n in ("dil_resnet18", "resnet18", "dil_resnet34", "resnet34")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_video_in_verdict_out_and_u_from_the_input(model):
    x4 = clip(u=4)
    x8 = clip(u=8)
    with torch.no_grad():
        y4, y8 = model(x4), model(x8)
    assert y4.shape == y8.shape == (2, 2)
    assert torch.isfinite(y8).all()
    assert not torch.allclose(y4, y8)


class Leaky(torch.nn.Module):
    """A deliberately broken SIM: ``sim``'s output plus a little of the frame ``shift`` places
    earlier in the folded batch (1: across a snippet border; U*T: from the previous clip)."""

    def __init__(self, sim: torch.nn.Module, shift: int) -> None:
        super().__init__()
        self.sim, self.shift = sim, shift

    def forward(self, x, num_snippets=None):
        return self.sim(x, num_snippets=num_snippets) + 0.1 * torch.roll(x, self.shift, dims=0)


def clip_leaks(model, x) -> bool:
    """Whether changing clip 1 of the batch changes another clip's logits or the batch differs
    from the clips run one at a time."""
    with torch.no_grad():
        y = model(x)
        x2 = x.clone()
        x2[1] = torch.randn_like(x2[1])
        y2 = model(x2)
        alone = torch.cat([model(x[i:i + 1]) for i in range(x.shape[0])])
    assert not torch.allclose(y[1], y2[1])  # the clip itself does matter
    return not (torch.allclose(y[[0, 2]], y2[[0, 2]]) and torch.allclose(y, alone, rtol=1e-4, atol=1e-5))


def snippet_leaks(model, x) -> bool:
    """Whether changing snippet 1 of a clip changes the last-stage features of snippet 0's frames."""
    t = model.snippet_len
    with torch.no_grad():
        f = model.forward_features(x)
        x2 = x.clone()
        x2[:, :, t:2 * t] = torch.randn_like(x2[:, :, t:2 * t])
        f2 = model.forward_features(x2)
    return not torch.allclose(f[:, :, :t], f2[:, :, :t], rtol=1e-4, atol=1e-5)


def test_clips_in_a_batch_are_independent(model):
    assert not clip_leaks(model, clip(b=3, u=2))


def test_the_clip_check_catches_a_sim_that_leaks_across_clips():
    torch.manual_seed(0)
    m = timm.create_model("dil_resnet18", num_classes=2, zero_init_last=False).eval()
    x = clip(b=3, u=2)
    assert not clip_leaks(m, x)
    m.layer3[1].sim = Leaky(m.layer3[1].sim, shift=2 * 4)  # an Inter-SIM that sees the previous clip
    assert clip_leaks(m, x)


def test_snippets_of_a_clip_interact(model):
    """Changing only snippet 1 changes the features of snippet 0's frames (Inter-SIM), and not
    without Inter-SIMs."""
    x = clip(b=1, u=2)
    assert snippet_leaks(model, x)
    torch.manual_seed(0)
    no_inter = timm.create_model("dil_resnet18", sim_pattern="intra", num_classes=2, zero_init_last=False).eval()
    assert not snippet_leaks(no_inter, x)
    # the check bites: one Intra-SIM that lets the previous frame in across the snippet border
    no_inter.layer2[0].sim = Leaky(no_inter.layer2[0].sim, shift=1)
    assert snippet_leaks(no_inter, x)


def test_bad_video_input_is_named(model):
    with pytest.raises(ValueError, match=r"\(B, C, U\*T, H, W\), got a 4-d tensor"):
        model(torch.randn(8, 3, 32, 32))
    with pytest.raises(ValueError, match=r"15 frames .* snippet_len T=4"):
        model(torch.randn(1, 3, 15, 32, 32))
    with pytest.raises(ValueError, match=r"expects 3 channels .* got 1"):
        model(torch.randn(1, 1, 8, 32, 32))


@pytest.mark.parametrize("sim_stages", [[1, 2, 3, 4], []], ids=["sims", "no-sims"])
@pytest.mark.parametrize("bad", [0, -1, 2.7, 2.0, "4", True])
def test_a_snippet_len_that_is_no_count_is_refused_when_the_model_is_built(bad, sim_stages):
    """T must be an integer >= 1, checked by the model whether or not it has SIMs (without any, 0
    used to fail at the first forward with a ZeroDivisionError, 2.7 to become 2, "4" to pass)."""
    with pytest.raises(ValueError, match=rf"snippet_len = {bad!r}: expected an integer >= 1 \(T, "):
        timm.create_model("dil_resnet18", snippet_len=bad, sim_stages=sim_stages)
    resnet = timm.create_model("resnet18")
    with pytest.raises(ValueError, match=rf"snippet_len = {bad!r}: expected an integer >= 1"):
        dynsnip.convert_resnet(resnet, snippet_len=bad, stages=sim_stages)
    assert type(resnet).__name__ == "ResNet" and not any(".sim." in k for k in resnet.state_dict())  # left as it was


def test_timm_model_api(model):
    x = clip(u=2)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (2, 512, 8, 1, 1)
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (2, model.num_features)
        logits = model.forward_head(feats)
        torch.testing.assert_close(logits, model(x))
        # video logit == mean of per-frame logits (average pooling + linear classifier)
        per_frame = model.get_classifier()(feats.mean((3, 4)).transpose(1, 2))
        torch.testing.assert_close(logits, per_frame.mean(1))
        final, inter = model.forward_intermediates(x)
        assert [t.shape[2] for t in inter] == [8] * 5 and torch.equal(final, feats)
    m = timm.create_model("dil_resnet18", num_classes=2)
    m.reset_classifier(5)
    assert m.get_classifier().out_features == 5 and m(x).shape == (2, 5)


def test_features_only_gives_the_video_intermediates(model):
    """timm's features_only=True: the per-stage video features, Inter-SIM mixing included."""
    feats = timm.create_model("dil_resnet18", features_only=True, zero_init_last=False).eval()
    assert isinstance(feats, dynsnip.models.DILFeatures)
    assert feats.feature_info.channels() == [64, 64, 128, 256, 512]
    assert feats.feature_info.reduction() == [2, 4, 8, 16, 32]
    feats.model.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("fc.")})
    x = clip(u=3)
    with torch.no_grad():
        got = feats(x)
        expected = model.forward_intermediates(x, intermediates_only=True)
        assert [tuple(f.shape) for f in got] == [(2, c, 12, 32 // r, 32 // r) for c, r in
                                                 zip(feats.feature_info.channels(), feats.feature_info.reduction())]
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
        # snippets interact in the features too: changing snippet 2 moves snippet 0's last-stage map
        y = x.clone()
        y[:, :, 8:] = torch.randn_like(y[:, :, 8:])
        assert not torch.allclose(feats(y)[4][:, :, :4], got[4][:, :, :4])
        assert torch.equal(feats(y)[0][:, :, :4], got[0][:, :, :4])  # the stem mixes nothing across frames
    # fewer stages: the later ones are pruned, the frames can come folded for a 2D neck
    two = timm.create_model("dil_resnet18", features_only=True, out_indices=(1, 2), feature_cfg=dict(output_fmt="NCHW"))
    assert len(two.model.layer3) == len(two.model.layer4) == 0
    assert [tuple(f.shape) for f in two(x)] == [(24, 64, 8, 8), (24, 128, 4, 4)]
    with pytest.raises(ValueError, match="output_fmt must be 'NCFHW'"):
        timm.create_model("dil_resnet18", features_only=True, feature_cfg=dict(output_fmt="NHWC"))
    with pytest.raises(ValueError, match="supports only feature_cls='getter'"):
        timm.create_model("dil_resnet18", features_only=True, feature_cls="hook")
    with pytest.raises(ValueError, match="out_indices"):
        timm.create_model("dil_resnet18", features_only=True, out_indices=(5,))


def test_features_only_offers_gradient_checkpointing_and_parameter_groups(monkeypatch):
    """Like timm's feature wrappers: set_grad_checkpointing reaches the wrapped model's blocks (the
    same gradients, the blocks run through torch.utils.checkpoint), and group_matcher groups the
    wrapper's parameters (``model.*``) as the model's own groups its parameters."""
    from timm.models import group_parameters

    from dynsnip.models import dil_resnet

    torch.manual_seed(0)
    a = timm.create_model("dil_resnet18", features_only=True, out_indices=(2, 3), zero_init_last=False)
    b = timm.create_model("dil_resnet18", features_only=True, out_indices=(2, 3), zero_init_last=False)
    b.load_state_dict(a.state_dict())
    b.set_grad_checkpointing(True)
    assert b.grad_checkpointing and b.model.grad_checkpointing and not a.grad_checkpointing
    calls = []
    original = dil_resnet.checkpoint
    monkeypatch.setattr(dil_resnet, "checkpoint", lambda *args, **kw: calls.append(1) or original(*args, **kw))
    x = clip(u=2)
    for m in (a, b):
        sum(f.sum() for f in m(x)).backward()
    assert len(calls) == len(b.model.layer1) + len(b.model.layer2) + len(b.model.layer3)  # b's blocks only
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=n)
    b.set_grad_checkpointing(False)
    assert not b.model.grad_checkpointing
    for coarse in (False, True):
        wrapped = group_parameters(b, b.group_matcher(coarse))
        own = group_parameters(b.model, b.model.group_matcher(coarse))
        assert len(wrapped) == len(own) > 2
        assert all(wrapped[g] == [f"model.{n}" for n in own[g]] for g in own)


def test_gradient_checkpointing_gives_the_same_gradients_and_batchnorm_statistics():
    torch.manual_seed(0)
    a = timm.create_model("dil_resnet18", num_classes=1, zero_init_last=False)
    b = timm.create_model("dil_resnet18", num_classes=1, zero_init_last=False)
    b.load_state_dict(a.state_dict())
    b.set_grad_checkpointing(True)
    x = clip(u=2)
    for m in (a, b):
        m(x).sum().backward()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=n)
    # the recomputation in backward must not update the running statistics a second time
    for (n, s), t in zip(a.named_buffers(), b.buffers()):
        torch.testing.assert_close(s, t, rtol=1e-5, atol=1e-6, msg=n)


def test_gradients_reach_every_new_parameter():
    torch.manual_seed(0)
    m = timm.create_model("dil_resnet18", num_classes=1, zero_init_last=False).train()
    m(clip(u=3)).sum().backward()
    sim_params = {n: p for n, p in m.named_parameters() if ".sim." in n}
    assert len(sim_params) > 50
    dead = [n for n, p in sim_params.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert not dead, dead


def test_dil_args_record_the_direction_layout():
    """Options whose default changed are always recorded, so that config.json says them."""
    m = timm.create_model("dil_resnet18")
    changed = {"motion_fraction": 0.75, "motion_source": "separate", "diff_init": "identity"}
    assert m.dil_args["intra_args"] == {"share_directions": False, **changed}
    assert m.dil_args["inter_args"] == {"share_directions": False}
    m = timm.create_model("dil_resnet18", intra_args=dict(share_directions=True, reduction=8, motion_fraction=0))
    assert m.dil_args["intra_args"] == {**changed, "share_directions": True, "reduction": 8, "motion_fraction": 0}


def test_dil_args_rebuild_the_same_network():
    m = timm.create_model("dil_resnet18", snippet_len=2, sim_stages=(1, 2), sim_pattern="intra",
                          intra_args=dict(reduction=8, learnable_kernel=False), inter_args=dict(conv_u="dense"))
    again = timm.create_model("dil_resnet18", **m.dil_args)
    assert {k: v.shape for k, v in m.state_dict().items()} == {k: v.shape for k, v in again.state_dict().items()}
    assert again.snippet_len == 2 and again(torch.randn(1, 3, 6, 32, 32)).shape == (1, 1000)
    plain = timm.create_model("dil_resnet18", sim_stages=())
    assert not any(".sim." in k for k in plain.state_dict())


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    torch.manual_seed(1)
    ref = timm.create_model("resnet18").eval()
    path = tmp_path_factory.mktemp("ckpt") / "resnet18.safetensors"
    save_file(ref.state_dict(), str(path))
    return ref, path


def test_backbone_loads_exactly_from_a_2d_checkpoint(resnet18_file):
    ref, path = resnet18_file
    m = timm.create_model("dil_resnet18", pretrained=True, num_classes=1,
                          pretrained_cfg_overlay=dict(file=str(path)))
    sd = m.state_dict()
    for k, v in ref.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(sd[k], v), k
    assert m.fc.out_features == 1
    # the same number of classes keeps the classifier too
    m = timm.create_model("dil_resnet18", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert torch.equal(m.fc.weight, ref.fc.weight)


def test_features_only_loads_the_imagenet_backbone(resnet18_file):
    ref, path = resnet18_file
    feats = timm.create_model("dil_resnet18", pretrained=True, features_only=True,
                              pretrained_cfg_overlay=dict(file=str(path)))
    sd = feats.model.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in ref.state_dict().items() if not k.startswith("fc."))


def test_checkpoint_that_lacks_or_misshapes_backbone_tensors_is_refused(resnet18_file, tmp_path):
    ref, _ = resnet18_file
    sd = dict(ref.state_dict())
    del sd["layer2.0.conv1.weight"]
    path = tmp_path / "broken.safetensors"
    save_file(sd, str(path))
    with pytest.raises(ValueError, match=r"1 backbone tensors missing \(layer2\.0\.conv1\.weight\)"):
        timm.create_model("dil_resnet18", pretrained=True, num_classes=1, pretrained_cfg_overlay=dict(file=str(path)))
    m = timm.create_model("dil_resnet34")
    with pytest.raises(ValueError, match=r"mis-shaped|missing"):
        checkpoint_filter_fn(ref.state_dict(), m)
    wide = timm.create_model("wide_resnet50_2").state_dict()
    with pytest.raises(ValueError, match=r"mis-shaped \(conv1.weight|mis-shaped \(layer1"):
        checkpoint_filter_fn(wide, timm.create_model("dil_resnet50"))


def test_fine_tuned_sim_weights_are_kept(resnet18_file):
    m = timm.create_model("dil_resnet18", num_classes=1)
    sd = {k: v + 1.0 if v.dtype.is_floating_point else v for k, v in m.state_dict().items()}
    fresh = timm.create_model("dil_resnet18", num_classes=1)
    out = checkpoint_filter_fn(sd, fresh)
    assert all(torch.equal(out[k], sd[k]) for k in sd if ".sim." in k)


@pytest.mark.parametrize("sim_stages", [[], [1]], ids=["no-sims", "sims"])
def test_a_saved_detector_never_loads_with_a_random_head_through_timms_file_route(sim_stages, tmp_path):
    """A detector's state dict given to timm as a file (pretrained_cfg_overlay=dict(file=...)), whose
    config says ImageNet's 1000 classes: timm would drop the trained head. Refused with SIMs and, by
    its head of another size than 1000, without any (sim_stages=[]: no SIM tensors to tell); with
    the config naming the saved head's classes it loads exactly, head included."""
    torch.manual_seed(0)
    det = timm.create_model("dil_resnet18", num_classes=1, sim_stages=sim_stages)
    path = tmp_path / "det.safetensors"
    save_file(det.state_dict(), str(path))
    with pytest.raises(ValueError, match=r"saved classifier has 1 classes, as the model, but the pretrained config "
                                         r"says 1000, so timm would drop the saved classifier"):
        timm.create_model("dil_resnet18", pretrained=True, num_classes=1, sim_stages=sim_stages,
                          pretrained_cfg_overlay=dict(file=str(path)))
    loaded = timm.create_model("dil_resnet18", pretrained=True, num_classes=1, sim_stages=sim_stages,
                               pretrained_cfg_overlay=dict(file=str(path), num_classes=1))
    assert all(torch.equal(v, det.state_dict()[k]) for k, v in loaded.state_dict().items())
    if not sim_stages:  # a 2-class head is another detector, not an ImageNet backbone either
        other = timm.create_model("dil_resnet18", num_classes=2, sim_stages=[])
        save_file(other.state_dict(), str(path))
        with pytest.raises(ValueError, match=r"the saved detector's head has 2 classes and the model 1"):
            timm.create_model("dil_resnet18", pretrained=True, num_classes=1, sim_stages=[],
                              pretrained_cfg_overlay=dict(file=str(path)))


def shared_and_default(motion_fraction=0.75, **kw):
    """A model whose directions share their weights (with ``motion_fraction=0``: the 0.1.0
    layout), random SIMs, and a default (per-direction) model of the same architecture."""
    torch.manual_seed(2)
    old = timm.create_model("dil_resnet18", num_classes=1, zero_init_last=False,
                            intra_args=dict(share_directions=True, motion_fraction=motion_fraction),
                            inter_args=dict(share_directions=True), **kw)
    with torch.no_grad():
        for n, p in old.named_parameters():
            if ".sim." in n:
                p.normal_(0, 0.3)
    return old.eval(), timm.create_model("dil_resnet18", num_classes=1, zero_init_last=False, **kw).eval()


def test_a_checkpoint_with_shared_directions_loads_exactly_into_the_default_layout(tmp_path):
    old, new = shared_and_default()
    sd = old.state_dict()
    assert not any("_backward" in k for k in sd)
    x = clip(b=1, u=2)
    with torch.no_grad():
        expected = old(x)
        new.load_state_dict(sd)  # strict: the backward paths are filled from the forward ones
        torch.testing.assert_close(new(x), expected, rtol=1e-4, atol=1e-5)
        # the same through timm's pretrained loading (checkpoint_filter_fn)
        path = tmp_path / "old.safetensors"
        save_file(sd, str(path))
        loaded = timm.create_model("dil_resnet18", pretrained=True, num_classes=1, zero_init_last=False,
                                   pretrained_cfg_overlay=dict(file=str(path), num_classes=1)).eval()
        torch.testing.assert_close(loaded(x), expected, rtol=1e-4, atol=1e-5)
        out = checkpoint_filter_fn(sd, new)
        assert all(torch.equal(out[k], out[k.replace("_backward", "")]) for k in out if "_backward" in k)


def test_a_model_saved_before_share_directions_existed_loads_with_its_old_behaviour(tmp_path):
    """config.json of dynsnip 0.1.0 has no share_directions: dynsnip.load_model builds the
    default layout and the shared weights fill both directions, giving the same outputs."""
    old, _ = shared_and_default(motion_fraction=0.0)
    dynsnip.save_pretrained(old, tmp_path / "old")
    config_file = tmp_path / "old" / "config.json"
    config = json.loads(config_file.read_text())
    assert config["model_args"]["intra_args"] == {  # recorded for new models
        "share_directions": True, "motion_fraction": 0.0, "motion_source": "separate", "diff_init": "identity"}
    for key in ("intra_args", "inter_args"):
        config["model_args"][key] = {}  # as 0.1.0 wrote it
    config_file.write_text(json.dumps(config))
    loaded = dynsnip.load_model(tmp_path / "old").eval()
    x = clip(b=1, u=2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), old(x), rtol=1e-4, atol=1e-5)
    assert loaded.dil_args["intra_args"]["motion_fraction"] == 0.0  # a new save says what it is


def test_every_row_of_the_ablation_tables_builds_by_name():
    from dynsnip.cli.train import parse_model_args
    from dynsnip.models import model_arg_flags

    names = dynsnip.paper_config_names()
    assert {"table4/none", "table4/intra", "table4/inter", "table4/intra+inter", "table5/none", "table5/bp",
            "table5/bp+ca", "table5/bp+ca+lk", "table6/stages1-2", "table6/stages2-3", "table6/stages3-4",
            "table6/stages2-4", "table6/stages1-3", "table6/all"} <= set(names)
    kinds = {}
    for name in names:
        args = dynsnip.paper_config(name)
        flags = model_arg_flags(name)
        assert parse_model_args(flags[1::2]) == args  # what `dynsnip train --model-arg` receives
        with torch.device("meta"):
            m = timm.create_model("dil_resnet50", **args)
        intra = [b.sim for s in dynsnip.models.dil_resnet.STAGES for b in getattr(m, s) if hasattr(b, "sim")]
        kinds[name] = (sorted({i for i in range(1, 5) if any(hasattr(b, "sim") for b in getattr(m, f"layer{i}"))}),
                       sorted({type(x).__name__ for x in intra}))
        for sim in intra:
            if isinstance(sim, dynsnip.IntraSIM):
                want = args.get("intra_args", {})
                assert sim.sma.bidirectional == want.get("bidirectional", True)
                assert sim.sma.coord_attention == want.get("coord_attention", True)
                assert (sim.kernel is not None) == want.get("learnable_kernel", True)
                assert sim.sma.motion_channels == 0  # the paper's Eq. 5, not dynsnip's default
                assert want["diff_init"] == "random"  # "both Intra-SIM and Inter-SIM are randomly initialized"
            else:
                assert sim.conv_u_init == "random"
    assert kinds["table4/none"] == ([], [])
    assert kinds["table4/intra"] == ([1, 2, 3, 4], ["IntraSIM"])
    assert kinds["table4/inter"] == ([1, 2, 3, 4], ["InterSIM"])
    assert kinds["table6/stages2-4"] == ([2, 3, 4], ["InterSIM", "IntraSIM"])
    with pytest.raises(ValueError, match="known: table4/none"):
        dynsnip.paper_config("table5/bp+lk")


def test_the_readme_lists_every_ablation_row_with_its_arguments():
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(" `"): line for line in readme.splitlines() if line.startswith(("| `table", "| `full", "| `paper"))}
    assert set(rows) == set(dynsnip.paper_config_names())
    for name, line in rows.items():
        for key, value in dynsnip.paper_config(name).items():
            assert f"{key}={json.dumps(value, separators=(',', ':'))}" in line, (name, line)


@pytest.mark.parametrize("source", ["separate", "own", "compressed"])
def test_a_checkpoint_without_motion_channels_loads_as_it_was_saved(source, tmp_path):
    """Detectors saved before Intra-SIM's motion channels existed have none: they load into a
    model built with them (strictly, with load_state_dict and through checkpoint_filter_fn),
    compute exactly what they computed, and record motion_fraction 0 for the next save."""
    tiny = dict(num_classes=1, channels=[8, 16, 32, 64], stem_width=8, zero_init_last=False)
    torch.manual_seed(0)
    old = timm.create_model("dil_resnet18", **tiny, intra_args=dict(motion_fraction=0.0)).eval()
    x = clip(hw=32)
    for load in ("load_state_dict", "checkpoint_filter_fn"):
        new = timm.create_model("dil_resnet18", **tiny, intra_args=dict(motion_fraction=0.5, motion_source=source)).eval()
        assert new.dil_args["intra_args"]["motion_fraction"] == 0.5
        with torch.no_grad():
            assert not torch.allclose(new(x), old(x))
        with pytest.warns(UserWarning, match="no Intra-SIM motion-channel tensors"):
            if load == "load_state_dict":
                new.load_state_dict(old.state_dict())
            else:
                new.load_state_dict(checkpoint_filter_fn(old.state_dict(), new))
        with torch.no_grad():
            torch.testing.assert_close(new(x), old(x), rtol=0, atol=0)
        assert new.dil_args["intra_args"]["motion_fraction"] == 0.0
        rebuilt = timm.create_model("dil_resnet18", **{**tiny, **new.dil_args})
        assert rebuilt.state_dict().keys() == new.state_dict().keys()
    # a checkpoint that has motion channels for some SIMs only is incomplete, not old: refused
    full = timm.create_model("dil_resnet18", **tiny, intra_args=dict(motion_fraction=0.5, motion_source=source))
    partial = {k: v for k, v in full.state_dict().items() if not k.startswith("layer1.0.sim.sma.motion")
               and not k.startswith("layer1.0.sim.sma.own")}
    target = timm.create_model("dil_resnet18", **tiny, intra_args=dict(motion_fraction=0.5, motion_source=source))
    with pytest.raises(RuntimeError, match="Missing key"):
        target.load_state_dict(partial)


@pytest.mark.parametrize("kind", ["model", "intra_sim"])
def test_a_load_that_fails_leaves_the_architecture_as_it_was(kind):
    """A state dict without motion channels that does not fit anyway (a mis-shaped tensor): the
    load raises, and the model keeps its motion channels and its recorded options, so that the
    right checkpoint still loads into it afterwards."""
    tiny = dict(num_classes=2, channels=[8, 16, 32, 64], stem_width=8)
    if kind == "model":
        build = lambda: timm.create_model("dil_resnet18", **tiny)  # noqa: E731
        bad_key = "fc.weight"
    else:
        build = lambda: dynsnip.IntraSIM(16, 4)  # noqa: E731
        bad_key = "sma.squeeze.weight"
    source, target = build(), build()
    keys = target.state_dict().keys()
    bad = {k: v for k, v in source.state_dict().items() if ".motion" not in k and not k.startswith("motion")}
    assert len(bad) < len(keys)
    bad[bad_key] = torch.zeros(5, *bad[bad_key].shape[1:])
    with pytest.warns(UserWarning, match="motion-channel tensors"), pytest.raises(RuntimeError, match="size mismatch"):
        target.load_state_dict(bad)
    assert target.state_dict().keys() == keys
    if kind == "model":
        assert target.dil_args["intra_args"]["motion_fraction"] == source.dil_args["intra_args"]["motion_fraction"] > 0
    target.load_state_dict(source.state_dict())  # the full checkpoint still fits
    for k, v in source.state_dict().items():
        assert torch.equal(target.state_dict()[k], v), k


def test_a_saved_detector_whose_config_records_motion_channels_needs_their_tensors(tmp_path):
    """config.json records motion_fraction > 0: weights without the motion-channel tensors are not
    that detector (they were not saved with it), and loading them is refused, naming the missing
    tensors, instead of adopting the earlier layout and scoring with another network."""
    from safetensors.torch import load_file, save_file

    from dynsnip.hub.errors import CheckpointMismatchError

    model = timm.create_model("dil_resnet18", num_classes=1, channels=[8, 16, 32, 64], stem_width=8)
    folder = dynsnip.save_pretrained(model, tmp_path / "detector")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_args"]["intra_args"]["motion_fraction"] > 0
    weights = load_file(str(folder / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if ".motion_" not in k}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError, match="motion_squeeze"):
        dynsnip.load_model(folder)
    # a config written before motion channels existed (no motion_fraction) still adopts the old layout
    config["model_args"]["intra_args"].pop("motion_fraction")
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.warns(UserWarning, match="no Intra-SIM motion-channel tensors"):
        loaded = dynsnip.load_model(folder)
    assert loaded.dil_args["intra_args"]["motion_fraction"] == 0.0
