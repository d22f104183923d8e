"""Audit fixes of ``dynsnip explain`` / ``predict``: the Grad-CAM drawn over the pixels it comes from,
the contact sheet and summary at the layer asked for, a --cam-layer that never runs refused by name,
and verdicts taken on the unrounded probability."""
from __future__ import annotations

import json
import math
import types
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

import dynsnip  # noqa: F401  (registers the dil_* models)
from dynsnip.cli import main
from dynsnip.data import bundled_video
from dynsnip.explain import explain_clip, save_figures
from dynsnip.hub import save_pretrained

SIZE, T = 64, 4
TINY = dict(num_classes=1, channels=[8, 16, 32, 64], stem_width=8)


def tiny_dil(seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("dil_resnet18", **TINY, **kwargs).eval()


# ------------------------------------------------------------------------------ 1. Grad-CAM alignment
class BlockNet(nn.Module):
    """Frames -> sum of RGB -> 32x32 average pooling (the CAM layer) -> logit = mean of the map.

    Its CAM layer's activation, hence the Grad-CAM, is one-hot at the cell of a bright 32x32 block.
    """

    snippet_len = T

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 1, 1, bias=False)
        nn.init.constant_(self.stem.weight, 1.0)
        self.pool = nn.AvgPool2d(32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        f = self.pool(self.stem(rearrange(x, "b c f h w -> (b f) c h w")))
        return f.mean((1, 2, 3)).view(b, -1).mean(1, keepdim=True)


@pytest.mark.parametrize("cell", [(1, 1), (3, 3), (5, 2)])
def test_gradcam_peaks_on_the_evidence_block_as_the_intra_sma_upsampling_does(cell):
    """224 px crops, a 7x7 CAM layer: the CAM of the evidence cell peaks at the block's centre and is the
    bilinear (align_corners=False) upsampling of the one-hot cell, as the Intra-SMA maps are drawn
    (grad-cam's spline zoom drew it 8 px toward the corner and stretched)."""
    size = 224
    clip = torch.zeros(1, 3, T, size, size)
    y0, x0 = 32 * cell[0], 32 * cell[1]
    clip[..., y0:y0 + 32, x0:x0 + 32] = 1.0
    cam = explain_clip(BlockNet(), clip, target_layer="pool", mean=(0, 0, 0), std=(1, 1, 1)).gradcam
    assert cam.shape == (T, size, size)
    peak = np.unravel_index(cam[0].argmax(), cam[0].shape)
    assert abs(peak[0] - (y0 + 15.5)) <= 0.5 and abs(peak[1] - (x0 + 15.5)) <= 0.5, peak
    onehot = torch.zeros(1, 1, 7, 7)
    onehot[0, 0, cell[0], cell[1]] = 1.0
    ref = F.interpolate(onehot, size=(size, size), mode="bilinear", align_corners=False)[0, 0].numpy()
    ref = ref / ref.max()  # the same min-max scaling, after the resize
    np.testing.assert_allclose(cam, np.broadcast_to(ref, cam.shape), atol=1e-5)
    assert cam[:, y0:y0 + 32, x0:x0 + 32].sum() / cam.sum() > 0.5  # most of the CAM lies on the block


def test_dil_gradcam_is_the_layer_grid_cam_upsampled_bilinearly():
    """A DIL model (5-D / frames-folded path): explain_clip's Grad-CAM equals ReLU(sum_k w_k A_k) computed on
    layer4.1's own grid (w_k: the gradients' mean over frames and space), resized bilinearly with
    align_corners=False to the crops and then min-max scaled over the clip; frames stay separate."""
    model = tiny_dil(zero_init_last=False)  # timm's zero-initialised last BN would leave no gradient
    torch.manual_seed(1)
    x = torch.randn(1, 3, 2 * T, SIZE, SIZE)
    exp = explain_clip(model, x, mean=(0, 0, 0), std=(1, 1, 1))
    acts = []
    handle = model.get_submodule("layer4.1").register_forward_hook(lambda m, i, o: acts.append(o) or o.retain_grad())
    model(x)[0, 0].backward()
    handle.remove()
    a, g = acts[0], acts[0].grad  # (F, C, h, w) frames folded
    assert a.shape[-2:] == (2, 2)  # 64 px input: a 2x2 grid, where the corner pinning was half the crop
    cam = torch.relu((g.mean((0, 2, 3))[None, :, None, None] * a).sum(1)).detach()
    cam = F.interpolate(cam[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
    cam = (cam - cam.min()) / (cam - cam.min()).max()
    assert float(cam.max()) == 1.0 and exp.gradcam.max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(exp.gradcam, cam.numpy(), atol=1e-4)


# ------------------------------------------------------------------------------ 2. contact sheet layer
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    model = tiny_dil(test_num_snippets=2)
    return save_pretrained(model, tmp_path_factory.mktemp("ckpt"), pretrained_cfg={"input_size": (3, SIZE, SIZE)},
                           base_model=None)


@pytest.fixture
def sheet_layers(monkeypatch) -> list[tuple[str | None, str | None]]:
    """The (intra, inter) layers contact_sheet.png is drawn at, as save_figures asks for them."""
    from dynsnip.explain import figures

    drawn: list[tuple[str | None, str | None]] = []
    original = figures.contact_sheet_figure

    def spy(exp, intra_layer=None, inter_layer=None, **kwargs):
        drawn.append((intra_layer or exp.intra_layer, inter_layer or exp.inter_layer))
        return original(exp, intra_layer=intra_layer, inter_layer=inter_layer, **kwargs)

    monkeypatch.setattr(figures, "contact_sheet_figure", spy)
    return drawn


def test_one_intra_and_inter_layer_asked_for_is_what_the_contact_sheet_and_summary_show(
        checkpoint, tmp_path, capsys, sheet_layers):
    out = tmp_path / "one"
    assert main(["explain", str(bundled_video("carphone_pristine")), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--faces", "largest", "--no-gradcam", "--intra-layer", "layer1.0.sim",
                 "--inter-layer", "layer2.1.sim"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["intra_layer"], summary["inter_layer"]) == ("layer1.0.sim", "layer2.1.sim")  # not the defaults
    assert summary["contact_sheet"] == {"intra_layer": "layer1.0.sim", "inter_layer": "layer2.1.sim"}
    assert sheet_layers == [("layer1.0.sim", "layer2.1.sim")]
    assert {"intra_sma.png", "ut_map.png", "contact_sheet.png"} <= {p.name for p in out.iterdir()}


def test_several_layers_asked_for_summary_says_which_the_contact_sheet_shows(
        checkpoint, tmp_path, capsys, sheet_layers):
    out = tmp_path / "several"
    assert main(["explain", str(bundled_video("carphone_pristine")), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--faces", "largest", "--no-gradcam", "--intra-layer", "layer2.0.sim", "--intra-layer",
                 "layer1.0.sim", "--inter-layer", "all"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    sheet = summary["contact_sheet"]
    assert (sheet["intra_layer"], sheet["inter_layer"]) == ("layer2.0.sim", "layer4.1.sim")  # first named; default
    assert sheet_layers == [("layer2.0.sim", "layer4.1.sim")]
    assert "contact_sheet.png shows the Intra-SMA map of layer2.0.sim" in sheet["note"]
    assert "contact_sheet.png shows the U x T map of layer4.1.sim" in sheet["note"]


def test_save_figures_draws_the_contact_sheet_at_the_one_layer_asked_for(tmp_path, sheet_layers):
    exp = explain_clip(tiny_dil(), torch.randn(1, 3, 2 * T, SIZE, SIZE), gradcam=False)
    assert exp.intra_layer != "layer1.0.sim" and exp.inter_layer != "layer1.1.sim"
    save_figures(exp, tmp_path, intra_layers="layer1.0.sim", inter_layers=["layer1.1.sim"])
    assert sheet_layers == [("layer1.0.sim", "layer1.1.sim")]


# ------------------------------------------------------------------------------ 3. a CAM layer that never runs
def test_a_cam_layer_that_never_runs_is_named_with_layers_that_do():
    with pytest.raises(ValueError, match=r"layer4\.0\.sim\.sma .*never ran.*layer4\.0\.sim"):
        explain_clip(tiny_dil(), torch.randn(1, 3, T, SIZE, SIZE), target_layer="layer4.0.sim.sma")


def test_cli_cam_layer_that_never_runs_is_a_usage_error(checkpoint, tmp_path, capsys):
    out = tmp_path / "sma"
    code = main(["explain", str(bundled_video("carphone_pristine")), "--checkpoint", str(checkpoint), "--out", str(out),
                 "--faces", "largest", "--cam-layer", "layer4.0.sim.sma"])
    err = capsys.readouterr().err
    assert code == 2
    assert "layer4.0.sim.sma" in err and "never ran" in err and "layer4.0.sim" in err and "layer4.1" in err
    assert "Traceback" not in err and not out.exists()


# ------------------------------------------------------------------------------ 4. verdict on the unrounded value
class MeanNet(nn.Module):
    """A DIL-style head (what score_clip calls) whose logit is the mean of the clip's red channel."""

    snippet_len = T

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 1)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0, 0.0]]))
            self.fc.bias.zero_()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def global_pool(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward_head(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(feats.mean((2, 3, 4)))


def face_clip(p: float, track: int | None = None) -> types.SimpleNamespace:
    """A clip of 2 snippets whose MeanNet fake probability is ``p``."""
    pixels = torch.zeros(3, 2 * T, 8, 8, dtype=torch.float64)
    pixels[0] = math.log(p / (1 - p))
    return types.SimpleNamespace(
        pixels=pixels.float(), frame_indices=np.arange(2 * T).reshape(2, T),
        timestamps=np.arange(2 * T).reshape(2, T) / 25.0, face_found=np.ones(2, bool),
        crop_boxes=np.zeros((2, 4), int), num_frames=2 * T, fps=25.0, face_coverage=1.0, frames_checked=2,
        frames_with_face=2, track=track)


def test_verdict_is_taken_on_the_unrounded_probability_and_the_report_agrees_with_it():
    from dynsnip.scoring import score_face_clip

    below = score_face_clip(MeanNet(), face_clip(0.49996), Path("v.mp4"), 0.5, "cpu")
    assert below["verdict"] == "real"  # 0.49996 < 0.5, although it rounds to 0.5
    assert below["fake_probability"] < 0.5 and below["fake_probability"] == pytest.approx(0.49996, abs=1e-4)
    assert all(s["fake_probability"] < 0.5 for s in below["snippets"])
    above = score_face_clip(MeanNet(), face_clip(0.509048), Path("v.mp4"), 0.50903, "cpu")
    assert above["verdict"] == "fake" and above["fake_probability"] >= 0.50903  # 0.509 would read as real


def test_tracks_deciding_track_and_verdict_on_unrounded_probabilities():
    from dynsnip.scoring import score_tracks

    def track(i: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(id=i, summary=lambda: {"id": i})

    video = types.SimpleNamespace(clips={0: face_clip(0.49995, 0), 1: face_clip(0.49996, 1)},
                                  tracks=[track(0), track(1)], failures={}, frames_looked_at=8)
    result = score_tracks(MeanNet(), video, Path("v.mp4"), 0.5, "cpu")
    assert result["deciding_track"] == 1  # both round to 0.5: the rounded tie went to track 0
    assert result["verdict"] == "real" and result["fake_probability"] < 0.5
    assert [t["fake_probability"] < 0.5 for t in result["tracks"]] == [True, True]
    mean = score_tracks(MeanNet(), video, Path("v.mp4"), 0.5, "cpu", video_score="mean")
    assert mean["verdict"] == "real" and mean["fake_probability"] < 0.5
