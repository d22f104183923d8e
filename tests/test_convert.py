"""The conversion hook: where the SIMs go, that the blocks stay timm's, and what is refused."""
from __future__ import annotations

import pytest
import timm
import torch
import torch.nn as nn
from timm.models.resnet import BasicBlock, Bottleneck

import dynsnip
from dynsnip import InterSIM, IntraSIM, convert_resnet
from dynsnip.convert import SIBlock

VARIANTS = ["resnet18", "resnet50", "resnet26d", "resnext50_32x4d", "seresnet18", "ecaresnet26t", "wide_resnet50_2", "resnetaa34d"]


def tiny(name: str, **kw) -> nn.Module:
    return timm.create_model(name, pretrained=False, num_classes=3, **kw).eval()


@pytest.mark.parametrize("name", [n for n in VARIANTS if n in timm.list_models(module="resnet")])
def test_sims_alternate_before_the_spatial_conv_in_every_stage(name):
    model = tiny(name)
    depths = [len(getattr(model, f"layer{s}")) for s in range(1, 5)]
    convert_resnet(model)
    for s, depth in zip(range(1, 5), depths):
        stage = getattr(model, f"layer{s}")
        kinds = [type(b.sim) for b in stage]
        assert kinds == [IntraSIM if i % 2 == 0 else InterSIM for i in range(depth)]
        for block in stage:
            conv3x3 = block.conv2 if isinstance(block, Bottleneck) else block.conv1
            assert block.sim.channels == conv3x3.in_channels
    n_sims = sum(isinstance(m, (IntraSIM, InterSIM)) for m in model.modules())
    assert n_sims == sum(depths)


def test_stages_and_patterns():
    model = convert_resnet(tiny("resnet50"), stages=(1, 2), pattern="intra")
    assert all(isinstance(b.sim, IntraSIM) for b in list(model.layer1) + list(model.layer2))
    assert not any(hasattr(b, "sim") for b in list(model.layer3) + list(model.layer4))
    model = convert_resnet(tiny("resnet18"), pattern="inter")
    assert all(isinstance(b.sim, InterSIM) for s in (1, 2, 3, 4) for b in getattr(model, f"layer{s}"))
    with pytest.raises(ValueError, match="stages"):
        convert_resnet(tiny("resnet18"), stages=(0, 5))
    for stages, message in (([1, 1], "a stage is named twice"), ([1.5], "1.5 is not a stage"),
                            ([True], "True is not a stage"), (1, "expected a list of stage numbers")):
        with pytest.raises(ValueError, match=message):
            convert_resnet(tiny("resnet18"), stages=stages)
    # a generator is read once: the SIMs inserted are the stages recorded (and rebuilt from config.json)
    model = convert_resnet(tiny("resnet18"), stages=(s for s in (2, 3)))
    assert model.dil_args["sim_stages"] == [2, 3] and hasattr(model.layer2[0], "sim")
    model = timm.create_model("dil_resnet18", sim_stages=iter([3]), channels=[8, 16, 32, 64], stem_width=8)
    assert model.dil_args["sim_stages"] == [3] and hasattr(model.layer3[0], "sim") and not hasattr(model.layer2[0], "sim")
    with pytest.raises(ValueError, match="pattern"):
        convert_resnet(tiny("resnet18"), pattern="random")


class PassThrough(nn.Module):
    def forward(self, x, num_snippets=None):
        return x


@pytest.mark.parametrize("name", ["resnet50d", "seresnet18", "resnetaa34d", "ecaresnet26t"])
def test_si_blocks_are_timms_blocks_plus_the_sim(name):
    """With the SIM replaced by an identity, every converted block computes timm's forward."""
    if name not in timm.list_models(module="resnet"):
        pytest.skip(f"{name} not in this timm")
    # zero_init_last=False: timm's zero-initialised last BN would make every residual branch
    # output zero, and the comparison would pass for any block forward
    ref = tiny(name, drop_path_rate=0.0, zero_init_last=False)
    model = convert_resnet(tiny(name, zero_init_last=False))
    model.load_state_dict(ref.state_dict(), strict=False)
    x = torch.randn(8, ref.layer1[0].conv1.in_channels, 16, 16)
    for block_ref, block in zip(ref.layer1, model.layer1):
        block.sim = PassThrough()
        torch.testing.assert_close(block(x, 2), block_ref(x))
        last_bn = block_ref.bn3 if isinstance(block_ref, Bottleneck) else block_ref.bn2
        assert last_bn.weight.abs().min() > 0  # the residual branch is not zero
        x = block_ref(x)


def test_backbone_keys_keep_their_names():
    ref = tiny("resnet50")
    sd = {k: v.clone() for k, v in ref.state_dict().items()}
    model = convert_resnet(ref)
    new = model.state_dict()
    assert set(sd) < set(new)
    assert all(".sim." in k for k in set(new) - set(sd))
    assert all(torch.equal(sd[k], new[k]) for k in sd)


def test_converted_model_is_a_video_network():
    model = convert_resnet(tiny("resnet18"), snippet_len=2)
    assert isinstance(model, dynsnip.DILResNet)
    assert model.dil_args["snippet_len"] == 2
    assert model(torch.randn(2, 3, 6, 32, 32)).shape == (2, 3)


@pytest.mark.parametrize("name", ["res2net50_14w_8s", "resnest14d", "skresnet18", "vit_tiny_patch16_224"])
def test_unsupported_models_are_refused_by_name(name):
    model = timm.create_model(name, pretrained=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(TypeError) as err:
        convert_resnet(model)
    msg = str(err.value)
    assert "supported are" in msg
    assert (type(model).__name__ in msg) or any(
        type(m).__name__ in msg for m in model.modules() if type(m) not in (BasicBlock, Bottleneck)
    )
    # nothing half-converted
    assert not any(isinstance(m, SIBlock) for m in model.modules())
    assert set(model.state_dict()) == set(before)


def test_converting_twice_is_refused():
    model = convert_resnet(tiny("resnet18"))
    with pytest.raises(TypeError, match="converted before"):
        convert_resnet(model)


def test_the_conversion_does_not_import_the_model_family():
    """One-way dependency: dynsnip.models.dil_resnet uses dynsnip.convert, not the reverse."""
    import ast
    import inspect

    import dynsnip.convert

    tree = ast.parse(inspect.getsource(dynsnip.convert))
    imported = ["." * node.level + (node.module or "") for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names]
    assert not [m for m in imported if m.lstrip(".").startswith("models") or m.startswith("dynsnip.models")], imported
