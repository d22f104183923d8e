"""Guards on the routes that bring weights into a DIL model (audit of the Hub loading paths).

1. ``model.load_state_dict`` and timm's ``create_model(..., checkpoint_path=...)`` refuse integer
   weights and NaN / inf weights, as the pretrained route (``checkpoint_filter_fn``) does, while
   legitimate loads (half precision, ``strict=False``, ``assign=True``, int64 BatchNorm counters)
   still load.
2. ``convert_resnet`` records whether the source held its pretrained weights: a randomly
   initialised ResNet publishes no ``base_model``.
3. A saved detector loads with the input channels it was trained on or not at all; an ImageNet
   backbone is still adapted to ``in_chans``.
4. A pruned ResNet is refused by ``save_pretrained`` with a message saying why and what to do.

The Hub is the one tests/local_hub.py serves on 127.0.0.1 (fixture ``local_hub``).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from timm.models._manipulate import adapt_input_conv

import dynsnip
from dynsnip import hub as dynsnip_hub
from dynsnip.hub import CheckpointMismatchError
from dynsnip.models.dil_resnet import checkpoint_filter_fn
from hub_fixtures import local_hub  # noqa: F401 (fixture)
from local_hub import LocalHub
from test_hub import random_state_dict

# timm's smallest ResNet (a deep stem: the input conv is conv1.0), as in tests/test_hub.py
BASE, TAG = "test_resnet", "r160_in1k"
ARCH = f"dil_{BASE}"
BASE_REPO = f"timm/{BASE}.{TAG}"
STEM = "conv1.0.weight"


# --------------------------------------------------------------------------- helpers
def detector(num_classes: int = 1, **options) -> torch.nn.Module:
    """A small DIL detector whose weights all differ from a fresh initialisation."""
    model = timm.create_model(ARCH, num_classes=num_classes, **options)
    model.load_state_dict(random_state_dict(model, seed=2))
    return model.eval()


def clips(model: torch.nn.Module, channels: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(1, channels, 2 * model.snippet_len, 32, 32, generator=gen)


def outputs(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(x)


def snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def unchanged(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def serve_imagenet_resnet(hub: LocalHub) -> dict[str, torch.Tensor]:
    """Serve a 2D ImageNet ResNet under timm's repo name ``timm/<base>.<tag>``; returns its state dict."""
    model_2d = timm.create_model(BASE)
    state_dict = random_state_dict(model_2d, seed=1)
    config = {
        "architecture": BASE, "num_classes": model_2d.num_classes, "num_features": model_2d.num_features,
        "pretrained_cfg": {"tag": TAG, "input_size": [3, 160, 160], "num_classes": 1000, "classifier": "fc"},
    }
    hub.add_repo(BASE_REPO, {
        "config.json": json.dumps(config).encode(),
        "model.safetensors": safetensors.torch.save({k: v.contiguous() for k, v in state_dict.items()}),
    })
    return state_dict


# ------------------------------------------------- 1. load_state_dict / checkpoint_path
def bad_state_dicts(good: dict[str, torch.Tensor]) -> dict[str, tuple[dict[str, torch.Tensor], str]]:
    """Damaged copies of ``good``, each with the message (regex) its refusal must carry."""
    return {
        "int64": ({**good, "fc.weight": (good["fc.weight"] * 100).long()},
                  r"checkpoint does not fit dil_test_resnet: 1 of another dtype \(fc\.weight: int64 in the file "
                  r"where the model has float32\): a tensor loads only with the model's dtype"),
        "nan": ({**good, "fc.weight": torch.full_like(good["fc.weight"], float("nan"))},
                r"checkpoint does not fit dil_test_resnet: non-finite weights: 1 tensor holds NaN or inf \(fc\.weight\)"),
        "inf": ({**good, "bn1.running_var": torch.full_like(good["bn1.running_var"], float("inf"))},
                r"non-finite weights: 1 tensor holds NaN or inf \(bn1\.running_var\)"),
    }


@pytest.mark.parametrize("damage", ["int64", "nan", "inf"])
def test_load_state_dict_refuses_integer_and_non_finite_weights(damage: str) -> None:
    """Plain load_state_dict used to cast int64 weights and copy NaN / inf ones silently (the
    detector then scored nonsense or NaN): it refuses them, naming the tensor, and copies nothing."""
    model = detector()
    state, message = bad_state_dicts(random_state_dict(model, seed=3))[damage]
    before = snapshot(model)
    with pytest.raises(ValueError, match=message):
        model.load_state_dict(state)
    with pytest.raises(ValueError, match=message):
        model.load_state_dict(state, strict=False)
    with pytest.raises(ValueError, match=message):
        model.load_state_dict(state, assign=True)
    assert unchanged(model, before)
    # inside another module (DataParallel, a Sequential): the keys carry its prefix
    wrapped = torch.nn.Sequential(model)
    with pytest.raises(ValueError, match=r"non-finite|another dtype") as refused:
        wrapped.load_state_dict({f"0.{k}": v for k, v in state.items()})
    assert "0.fc.weight" in str(refused.value) or "0.bn1.running_var" in str(refused.value)
    assert unchanged(model, before)


@pytest.mark.parametrize("damage", ["int64", "nan", "inf"])
def test_checkpoint_path_refuses_integer_and_non_finite_weights(damage: str, tmp_path: Path) -> None:
    """timm.create_model(..., checkpoint_path=...) loads through DILResNet.load_state_dict: it refuses
    what the pretrained route (pretrained_cfg_overlay=dict(file=...)) refuses."""
    good = random_state_dict(timm.create_model(ARCH, num_classes=1), seed=3)
    state, message = bad_state_dicts(good)[damage]
    path = tmp_path / f"{damage}.safetensors"
    safetensors.torch.save_file(state, str(path))
    with pytest.raises(ValueError, match=message):
        timm.create_model(ARCH, num_classes=1, checkpoint_path=str(path))
    with pytest.raises(ValueError, match=message.split(": ", 1)[-1]):  # the pretrained route agrees
        timm.create_model(ARCH, num_classes=1, pretrained=True, pretrained_cfg_overlay=dict(file=str(path), num_classes=1))


def test_legitimate_loads_still_load(tmp_path: Path) -> None:
    """Half-precision files, partial strict=False loads, assign=True and the int64 BatchNorm step
    counters load as before (the checks cover the model's own tensors, by dtype class)."""
    reference = detector()
    state = reference.state_dict()
    assert state["bn1.num_batches_tracked"].dtype == torch.int64
    x = clips(reference)
    half = tmp_path / "half.safetensors"
    safetensors.torch.save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(half))
    loaded = timm.create_model(ARCH, num_classes=1, checkpoint_path=str(half))
    torch.testing.assert_close(outputs(loaded, x), outputs(reference, x), rtol=1e-2, atol=1e-2)

    partial = timm.create_model(ARCH, num_classes=1)
    result = partial.load_state_dict({"fc.weight": state["fc.weight"], "fc.bias": state["fc.bias"],
                                      "not.a.key": torch.tensor(float("nan"))}, strict=False)
    assert "not.a.key" in result.unexpected_keys  # ignored by a strict=False load, so not refused
    assert torch.equal(partial.fc.weight, state["fc.weight"])

    assigned = timm.create_model(ARCH, num_classes=1)
    assigned.load_state_dict({k: v.clone() for k, v in state.items()}, assign=True)
    assert torch.equal(outputs(assigned, x), outputs(reference, x))


# ------------------------------------------------------------- 2. convert_resnet's base model
def test_converted_random_resnet_publishes_no_base_model(tmp_path: Path) -> None:
    """A randomly initialised timm ResNet, converted: config.json and the card used to name
    timm's ImageNet weights as its base; unknown (the default) and pretrained=False record none."""
    for pretrained in (None, False):
        kwargs = {} if pretrained is None else {"pretrained": pretrained}
        model = dynsnip.convert_resnet(timm.create_model(BASE, num_classes=1), **kwargs)
        out = dynsnip_hub.save_pretrained(model, tmp_path / f"random-{pretrained}")
        assert "base_model" not in json.loads((out / "config.json").read_text())
        card = (out / "README.md").read_text()
        assert BASE_REPO not in card and "Initialised from" not in card
        assert model.pretrained_loaded is pretrained
    with pytest.raises(TypeError, match=r"pretrained = 'yes': expected True, False or None"):
        dynsnip.convert_resnet(timm.create_model(BASE, num_classes=1), pretrained="yes")


def test_converted_pretrained_resnet_records_its_base_model(local_hub: LocalHub, tmp_path: Path) -> None:
    """convert_resnet(..., pretrained=True) on a ResNet that loaded timm's ImageNet weights names
    them as base_model, in config.json and in the card."""
    served = serve_imagenet_resnet(local_hub)
    resnet = timm.create_model(f"{BASE}.{TAG}", pretrained=True, num_classes=1)
    assert torch.equal(resnet.state_dict()["layer1.0.conv1.weight"], served["layer1.0.conv1.weight"])
    model = dynsnip.convert_resnet(resnet, pretrained=True)
    out = dynsnip_hub.save_pretrained(model, tmp_path / "pretrained")
    assert json.loads((out / "config.json").read_text())["base_model"] == BASE_REPO
    assert f"Initialised from:** [{BASE_REPO}]" in (out / "README.md").read_text()


# ------------------------------------------------------- 3. a saved detector's input channels
def test_saved_detector_refuses_other_in_chans_from_a_folder(tmp_path: Path) -> None:
    """load_model(saved, in_chans=1) and timm's local-dir: used to sum the trained RGB stem to one
    channel silently (and keep a 3-channel pretrained_cfg): refused, naming saved and asked."""
    model = detector()
    folder = dynsnip_hub.save_pretrained(model, tmp_path / "rgb")
    with pytest.raises(CheckpointMismatchError,
                       match=r"trained on 3-channel input: load_model\(\.\.\., in_chans=1\) would adapt its trained "
                             r"stem silently.*Leave in_chans out.*dil_\* name"):
        dynsnip_hub.load_model(folder, in_chans=1)
    with pytest.raises(ValueError, match=r"the saved detector's stem \(conv1\.0\.weight\) takes 3 input channels and "
                                         r"the model was built with in_chans=1\. A trained detector's stem is not "
                                         r"adapted silently.*dil_<resnet>\.<tag>"):
        timm.create_model(f"local-dir:{folder}", pretrained=True, in_chans=1)
    # dynsnip train --checkpoint (checkpoint_filter_fn called directly) refuses it too
    with pytest.raises(ValueError, match=r"takes 3 input channels and the model was built with in_chans=2"):
        checkpoint_filter_fn(model.state_dict(), timm.create_model(ARCH, num_classes=1, in_chans=2))
    # as saved (or with the saved in_chans) it loads exactly
    x = clips(model)
    for kwargs in ({}, {"in_chans": 3}):
        assert torch.equal(outputs(dynsnip_hub.load_model(folder, **kwargs), x), outputs(model, x))
    # the architecture alone (pretrained=False) may take other channels: there is no trained stem
    assert dynsnip_hub.load_model(folder, pretrained=False, in_chans=1).conv1[0].in_channels == 1


def test_saved_detector_refuses_other_in_chans_from_the_hub(local_hub: LocalHub) -> None:
    model = detector()
    dynsnip_hub.push_to_hub(model, "me/rgb-detector", token="hf_test")
    with pytest.raises(CheckpointMismatchError, match=r"Hub repo 'me/rgb-detector' is a detector trained on "
                                                      r"3-channel input: load_model\(\.\.\., in_chans=1\)"):
        dynsnip_hub.load_model("hf-hub:me/rgb-detector", in_chans=1)
    with pytest.raises(ValueError, match=r"takes 3 input channels and the model was built with in_chans=1"):
        timm.create_model("hf-hub:me/rgb-detector", pretrained=True, in_chans=1)
    x = clips(model)
    assert torch.equal(outputs(timm.create_model("hf-hub:me/rgb-detector", pretrained=True), x), outputs(model, x))


def test_one_channel_detector_and_imagenet_backbone_still_load(local_hub: LocalHub, tmp_path: Path) -> None:
    """A detector trained on 1 channel loads with its channels; an ImageNet backbone (a dil_* name)
    is still adapted to in_chans as timm adapts its own models."""
    gray = detector(in_chans=1)
    folder = dynsnip_hub.save_pretrained(gray, tmp_path / "gray")
    x = clips(gray, channels=1)
    for kwargs in ({}, {"in_chans": 1}):
        assert torch.equal(outputs(dynsnip_hub.load_model(folder, **kwargs), x), outputs(gray, x))
    with pytest.raises(CheckpointMismatchError, match=r"trained on 1-channel input: load_model\(\.\.\., in_chans=3\)"):
        dynsnip_hub.load_model(folder, in_chans=3)

    served = serve_imagenet_resnet(local_hub)
    backbone = timm.create_model(f"{ARCH}.{TAG}", pretrained=True, in_chans=1, num_classes=1)
    torch.testing.assert_close(backbone.state_dict()[STEM], adapt_input_conv(1, served[STEM]), rtol=0, atol=0)
    backbone = dynsnip_hub.load_model(f"{ARCH}.{TAG}", in_chans=1, num_classes=1)
    torch.testing.assert_close(backbone.state_dict()[STEM], adapt_input_conv(1, served[STEM]), rtol=0, atol=0)


# --------------------------------------------------------------------- 4. pruned ResNets
def test_pruned_resnet_save_says_why_and_what_to_do(tmp_path: Path) -> None:
    """save_pretrained of a converted pruned ResNet used to advise converting a timm ResNet (what
    the user did): it says pruned models have no dil_* twin, and how to keep the detector."""
    model = dynsnip.convert_resnet(timm.create_model("ecaresnet50d_pruned", num_classes=1))
    with pytest.raises(ValueError, match=r"ecaresnet50d_pruned is a pruned ResNet.*no registered dil_\* twin.*cannot "
                                         r"be saved in the Hub layout.*safetensors\.torch\.save_file.*convert_resnet"):
        dynsnip_hub.save_pretrained(model, tmp_path / "pruned")
    assert not (tmp_path / "pruned" / "model.safetensors").exists()
    # the advice works: a state dict saved with safetensors loads into a rebuilt, converted model
    path = tmp_path / "pruned.safetensors"
    safetensors.torch.save_file(model.state_dict(), str(path))
    rebuilt = dynsnip.convert_resnet(timm.create_model("ecaresnet50d_pruned", num_classes=1))
    rebuilt.load_state_dict(safetensors.torch.load_file(str(path)))
    x = clips(model)
    assert torch.equal(outputs(rebuilt, x), outputs(model, x))
