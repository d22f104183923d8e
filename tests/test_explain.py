"""`dynsnip explain` and `explain_clip`: Grad-CAM, Intra-SMA maps, U x T map, on real footage."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn
from einops import rearrange, reduce
from PIL import Image

import dynsnip
from dynsnip.cli import main
from dynsnip.data import FaceClipLoader, bundled_video, frames_to_tensor
from dynsnip.explain import Explanation, explain_clip, save_figures
from dynsnip.hub import save_pretrained
from video_fixtures import write_text_as_mp4
from project_scripts import load_script

U, T, SIZE = 4, 4, 64
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@pytest.fixture(scope="module")
def face_clip():
    """4 snippets of 4 frames of real footage (a man talking in a car), dlib face crops at 64 px."""
    loader = FaceClipLoader(num_snippets=U, snippet_len=T, size=(SIZE, SIZE), mean=MEAN, std=STD)
    return loader(bundled_video("carphone_pristine"))


def dil18(seed: int = 0, **kwargs) -> nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("dil_resnet18", num_classes=1, **kwargs).eval()


@pytest.fixture(scope="module")
def model():
    return dil18()


@pytest.fixture(scope="module")
def explanation(model, face_clip):
    return explain_clip(model, face_clip.pixels, mean=MEAN, std=STD, frame_indices=face_clip.frame_indices)


def logit(p):
    p = np.asarray(p, dtype=np.float64)
    return np.log(p / (1 - p))


# ------------------------------------------------------------------------------ arrays
def test_maps_have_the_frames_geometry_and_range(explanation, face_clip, model):
    exp = explanation
    frames = U * T
    assert exp.frames.shape == (frames, SIZE, SIZE, 3) and exp.frames.dtype == np.uint8
    # the face crops come back exactly: normalising them again gives the model's input
    torch.testing.assert_close(frames_to_tensor(exp.frames, MEAN, STD), face_clip.pixels, atol=1e-5, rtol=0)

    assert exp.gradcam.shape == (frames, SIZE, SIZE) and exp.gradcam.dtype == np.float32
    assert exp.gradcam.min() >= 0 and exp.gradcam.max() == pytest.approx(1, abs=1e-5)  # one scaling for the clip
    assert exp.target_layer == "layer4.1"

    assert list(exp.intra) == ["layer1.0.sim", "layer2.0.sim", "layer3.0.sim", "layer4.0.sim"]
    for name, m in exp.intra.items():
        assert m.shape == (frames, SIZE, SIZE), name
        assert 0 < m.min() and m.max() < 1, name  # channel mean of a product of sigmoids
        assert m.std() > 0, name
    # layer3.0's SIM sees layer2's 8x8 output at 64 px: the deepest map of at least 7x7
    assert exp.intra_layer == "layer3.0.sim"
    assert exp.intra_map is exp.intra["layer3.0.sim"]

    assert list(exp.inter) == ["layer1.1.sim", "layer2.1.sim", "layer3.1.sim", "layer4.1.sim"]
    for name, m in exp.inter.items():
        assert m.shape == (U, T), name
        assert 0 < m.min() and m.max() < 1, name
    assert exp.inter_layer == "layer4.1.sim"
    assert exp.notes == []


def test_probabilities_are_the_models(explanation, face_clip, model):
    exp = explanation
    with torch.no_grad():
        video_logit = model(face_clip.pixels[None]).item()
    assert exp.fake_prob == pytest.approx(torch.sigmoid(torch.tensor(video_logit)).item(), abs=1e-5)
    assert exp.snippet_probs.shape == (U,)
    assert ((exp.snippet_probs > 0) & (exp.snippet_probs < 1)).all()
    # pooling is an average and the classifier linear: the video logit is the snippets' mean
    assert logit(exp.snippet_probs).mean() == pytest.approx(video_logit, abs=1e-4)
    np.testing.assert_array_equal(exp.frame_indices, face_clip.frame_indices.numpy())


def test_model_state_is_left_as_it_was(face_clip):
    model = dil18().train()
    model.fc.weight.grad = torch.full_like(model.fc.weight, 7.0)
    model.layer1[0].conv1.weight.requires_grad_(False)
    explain_clip(model, face_clip.pixels[:, : 2 * T])
    assert model.training
    assert torch.equal(model.fc.weight.grad, torch.full_like(model.fc.weight, 7.0))
    assert model.layer1[0].conv1.weight.grad is None
    assert not model.layer1[0].conv1.weight.requires_grad and model.fc.weight.requires_grad


@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode], ids=["no_grad", "inference_mode"])
def test_grad_cam_under_no_grad_or_inference_mode_is_the_same(model, face_clip, context):
    """Scoring code often runs under no_grad / inference_mode; Grad-CAM's backward switches autograd
    back on for itself (it failed with "element 0 of tensors does not require grad")."""
    pixels = face_clip.pixels[:, : 2 * T]
    expected = explain_clip(model, pixels)
    with context():
        got = explain_clip(model, pixels)
    np.testing.assert_array_equal(got.gradcam, expected.gradcam)
    assert got.fake_prob == expected.fake_prob


def test_save_and_load_round_trip(explanation, tmp_path):
    """Frames exactly, maps as float16 (1/2048 relative: far below any colour step), compressed."""
    explanation.save(tmp_path / "e.npz")
    back = Explanation.load(tmp_path / "e.npz")
    np.testing.assert_array_equal(back.frames, explanation.frames)
    close = dict(rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(back.gradcam, explanation.gradcam, **close)
    assert back.gradcam.dtype == np.float32
    for name in explanation.intra:
        np.testing.assert_allclose(back.intra[name], explanation.intra[name], **close)
    for name in explanation.inter:
        np.testing.assert_allclose(back.inter[name], explanation.inter[name], **close)
    summary, back_summary = explanation.summary(), back.summary()
    summary.pop("inter_maps"), back_summary.pop("inter_maps")
    assert back_summary == summary
    with np.load(tmp_path / "e.npz") as stored:
        assert stored["gradcam"].dtype == np.float16
    arrays = {"frames": explanation.frames, "gradcam": explanation.gradcam,
              **{f"intra/{k}": v for k, v in explanation.intra.items()}}
    np.savez_compressed(tmp_path / "float32.npz", **arrays)
    assert (tmp_path / "e.npz").stat().st_size < 0.75 * (tmp_path / "float32.npz").stat().st_size


# ------------------------------------------------------------------------------ tampering
def jitter_snippet(clip: torch.Tensor, u: int, shift: int = 6, seed: int = 0) -> torch.Tensor:
    """Each frame of snippet ``u`` shifted and re-lit independently: a temporally inconsistent
    snippet (what a per-frame face swap does), the rest of the real clip untouched."""
    rng = np.random.default_rng(seed)
    out = clip.clone()
    for f in range(u * T, (u + 1) * T):
        dy, dx = (int(v) for v in rng.integers(-shift, shift + 1, 2))
        out[:, f] = torch.roll(clip[:, f], (dy, dx), dims=(1, 2)) * float(rng.uniform(0.7, 1.3))
    return out


def test_ut_map_responds_most_in_the_tampered_snippets_row(model, face_clip):
    clean = explain_clip(model, face_clip.pixels, gradcam=False)
    for u in (1, 2):  # inner snippets have neighbours on both sides, as Eq. 8-9 need
        tampered = explain_clip(model, jitter_snippet(face_clip.pixels, u), gradcam=False)
        # change of each row, each Inter-SIM's change normalised to sum 1, added over the Inter-SIMs
        change = sum(
            d / d.sum()
            for d in (np.abs(tampered.inter[k] - clean.inter[k]).mean(1) for k in clean.inter)
        )
        assert int(np.argmax(change)) == u, (u, change)
        assert change[u] > 1.2 * np.delete(change, u).max(), (u, change)

        # the first Intra-SIM sees each snippet alone: only the tampered frames' maps move
        first = "layer1.0.sim"
        moved = np.abs(tampered.intra[first] - clean.intra[first]).reshape(U, T, -1).max(-1)
        assert (moved[u] > 1e-4).all(), moved
        assert np.delete(moved, u, axis=0).max() < 1e-6, moved


def test_with_frame_edges_the_ut_map_also_finds_a_tampered_first_or_last_snippet(face_clip):
    """``inter_args={"edge": "frame"}``: a first/last snippet's missing neighbour is a zero
    feature instead of a zero difference, and its own row responds most (docs/explain.md)."""
    model = dil18(0, inter_args={"edge": "frame"})
    clean = explain_clip(model, face_clip.pixels, gradcam=False)
    for u in range(U):
        tampered = explain_clip(model, jitter_snippet(face_clip.pixels, u), gradcam=False)
        change = sum(
            d / d.sum()
            for d in (np.abs(tampered.inter[k] - clean.inter[k]).mean(1) for k in clean.inter)
        )
        assert int(np.argmax(change)) == u and change[u] > 1.2 * np.delete(change, u).max(), (u, change)


# ------------------------------------------------------------------------------ Grad-CAM
class BrightnessNet(nn.Module):
    """Fake logit = mean brightness (no SIMs): its Grad-CAM must be the bright pixels."""

    snippet_len = T

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)
        self.fc = nn.Linear(4, 1)
        with torch.no_grad():
            self.conv.weight.fill_(1 / 3)
            self.fc.weight.fill_(1.0)
            self.fc.bias.fill_(-0.05)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b = video.shape[0]
        x = torch.relu(self.conv(rearrange(video, "b c f h w -> (b f) c h w")))
        return self.fc(reduce(x, "(b f) c h w -> b c", "mean", b=b))


def test_gradcam_finds_the_evidence_in_the_right_frame_and_place():
    clip = torch.zeros(3, 2 * T, SIZE, SIZE)
    clip[:, 5, 8:16, 40:48] = 1.0  # bright square in frame 5 (snippet 1)
    clip[:, 2, 40:48, 8:16] = 0.5  # half as bright, frame 2 (snippet 0)
    exp = explain_clip(BrightnessNet(), clip, target_layer="conv", mean=(0, 0, 0), std=(1, 1, 1))
    cam = exp.gradcam
    assert cam.shape == (2 * T, SIZE, SIZE)
    assert np.unravel_index(cam.argmax(), cam.shape)[0] == 5
    assert cam[5, 10:14, 42:46].min() > 0.95
    # one scaling for the clip: the dimmer square keeps half the weight (a per-frame scaling gives 1)
    assert cam[2, 42:46, 10:14] == pytest.approx(0.5, abs=0.05)
    cam[5, 8:16, 40:48] = 0
    cam[2, 40:48, 8:16] = 0
    assert cam.max() < 0.05  # nothing outside the squares
    # no SIMs: said, and no maps; per-snippet probabilities from conv -> mean -> fc
    assert exp.intra == {} and exp.inter == {} and exp.intra_map is None and exp.inter_map is None
    assert any("no IntraSIM/InterSIM" in n for n in exp.notes)
    assert exp.snippet_probs[1] > exp.snippet_probs[0]
    # the "real" score has no positive evidence here: an all-zero map, and a note
    real = explain_clip(BrightnessNet(), clip, target_layer="conv", target="real", mean=(0, 0, 0), std=(1, 1, 1))
    assert not real.gradcam.any() and any("zero everywhere" in n for n in real.notes)


def test_model_without_sims_still_gets_gradcam_and_contact_sheet(tmp_path):
    clip = torch.rand(3, 2 * T, SIZE, SIZE)
    exp = explain_clip(BrightnessNet(), clip, target_layer="conv", mean=(0, 0, 0), std=(1, 1, 1))
    files = save_figures(exp, tmp_path)
    assert sorted(files) == ["contact_sheet", "gradcam"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contact_sheet.png", "gradcam.png"]


# ------------------------------------------------------------------------------ custom backbones
def load_example_backbone():
    return load_script("examples/custom_backbone.py", "custom_backbone_example").TinyVideoNet


class FramesNet(nn.Module):
    """Called with frames folded, ``model((B*U*T, 3, H, W), num_snippets=U)``, as the SIMs are."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU())
        self.intra = dynsnip.IntraSIM(16, snippet_len=T)
        self.inter = dynsnip.InterSIM(16, snippet_len=T)
        self.conv = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.fc = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor, num_snippets: int) -> torch.Tensor:
        x = self.inter(self.intra(self.stem(x)), num_snippets=num_snippets)
        x = self.conv(x)
        return self.fc(reduce(x, "(b f) c h w -> b c", "mean", f=num_snippets * T))


def test_custom_backbones(face_clip):
    torch.manual_seed(0)
    net = load_example_backbone()(snippet_len=T).eval()
    pixels = face_clip.pixels
    with pytest.raises(ValueError, match="target_layer"):
        explain_clip(net, pixels)
    exp = explain_clip(net, pixels, target_layer="conv2", mean=MEAN, std=STD)
    assert exp.gradcam.shape == exp.intra["intra"].shape == (U * T, SIZE, SIZE)
    assert list(exp.inter) == ["inter"] and exp.inter["inter"].shape == (U, T)
    with torch.no_grad():
        video_logit = net(pixels[None]).item()
    assert logit(exp.snippet_probs).mean() == pytest.approx(video_logit, abs=1e-4)
    # a CAM layer that is not the one the head pools: per-snippet scores cannot be derived
    mid = explain_clip(net, pixels, target_layer="conv1", gradcam=False)
    assert mid.snippet_probs is None and any("per-snippet probabilities skipped" in n for n in mid.notes)

    torch.manual_seed(0)
    frames_net = FramesNet().eval()
    exp = explain_clip(frames_net, pixels, call="frames", target_layer=frames_net.conv, mean=MEAN, std=STD)
    with torch.no_grad():
        expected = torch.sigmoid(frames_net(rearrange(pixels, "c f h w -> f c h w"), num_snippets=U)).item()
    assert exp.fake_prob == pytest.approx(expected, abs=1e-5)
    assert exp.snippet_len == T and exp.num_snippets == U  # T read from the SIMs
    assert exp.target_layer == "conv" and exp.gradcam.shape == (U * T, SIZE, SIZE)
    assert exp.inter["inter"].shape == (U, T) and exp.snippet_probs.shape == (U,)


# ------------------------------------------------------------------------------ command line
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = dil18(test_num_snippets=2)
    return save_pretrained(model, tmp_path_factory.mktemp("ckpt"), pretrained_cfg={"input_size": (3, SIZE, SIZE)},
                           base_model=None)


def test_cli_writes_the_pictures_and_arrays(checkpoint, tmp_path, capsys):
    out = tmp_path / "explained"
    video = bundled_video("carphone_pristine")
    assert main(["explain", str(video), "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    expected = {"gradcam.png", "intra_sma.png", "ut_map.png", "contact_sheet.png", "explanation.npz", "summary.json",
                "tracks.png"}  # tracks.png: the face tracks (--faces all, the default)
    assert {p.name for p in out.iterdir()} == expected
    printed = capsys.readouterr().out
    assert all(name in printed for name in expected)
    for name in expected - {"explanation.npz", "summary.json"}:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and min(image.size) > 200, name
    with Image.open(out / "contact_sheet.png") as sheet, Image.open(out / "gradcam.png") as cam:
        assert sheet.size[1] > 2 * cam.size[1]  # faces, Grad-CAM and Intra-SMA rows per snippet

    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_snippets"] == 2 and summary["snippet_len"] == T  # the model's test U
    assert len(summary["snippet_fake_probabilities"]) == 2 and summary["crop_size"] == [SIZE, SIZE]
    assert np.array(summary["frame_indices"]).shape == (2, T)
    exp = Explanation.load(out / "explanation.npz")
    assert exp.gradcam.shape == exp.intra_map.shape == (2 * T, SIZE, SIZE) and exp.inter_map.shape == (2, T)
    assert exp.fake_prob == pytest.approx(summary["fake_probability"], abs=1e-6)

    # nothing is overwritten without --overwrite
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["explain", str(video), "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert main(["explain", str(video), "--checkpoint", str(checkpoint), "--out", str(out), "--overwrite"]) == 0

    # --overwrite with another run's options: the earlier run's pictures that this one does not draw go (the
    # folder never mixes two runs); a file the user put there stays
    (out / "my_notes.txt").write_text("mine")
    capsys.readouterr()
    assert main(["explain", str(video), "--checkpoint", str(checkpoint), "--out", str(out), "--overwrite",
                 "--no-gradcam", "--faces", "largest"]) == 0
    assert "removed" in capsys.readouterr().err
    written = set(json.loads((out / "summary.json").read_text())["files"])
    assert "gradcam.png" not in written and "tracks.png" not in written
    assert {p.name for p in out.iterdir()} == written | {"my_notes.txt"}

    # a file given as --out: refused before any work, with or without --overwrite
    a_file = tmp_path / "a_file"
    a_file.write_text("keep")
    for extra in ([], ["--overwrite"]):
        assert main(["explain", str(video), "--checkpoint", str(checkpoint), "--out", str(a_file), *extra]) == 2
        assert "is a file, expected a folder" in capsys.readouterr().err
    assert a_file.read_text() == "keep"


def test_cli_errors(checkpoint, tmp_path, capsys):
    video = str(bundled_video("carphone_pristine"))
    out = tmp_path / "out"
    assert main(["explain", video, "--checkpoint", str(checkpoint), "--out", str(out), "--intra-layer", "layer9.0.sim"]) == 2
    err = capsys.readouterr().err
    assert "layer9.0.sim" in err and "layer3.0.sim" in err  # names what exists
    assert not out.exists()  # refused before any work

    bad = write_text_as_mp4(tmp_path / "not_a_video.mp4")
    assert main(["explain", str(bad), "--checkpoint", str(checkpoint), "--out", str(out)]) == 1
    assert "corrupt" in capsys.readouterr().err

    assert main(["explain", video, "--checkpoint", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "cannot load the model" in capsys.readouterr().err


def test_missing_extra_says_how_to_install(monkeypatch, face_clip):
    monkeypatch.setitem(sys.modules, "pytorch_grad_cam", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install 'dynsnip\[explain\]'"):
        explain_clip(dil18(), face_clip.pixels[:, :T])


def test_gradcam_at_an_intra_sim_and_dil_scores_kept(face_clip):
    # timm zero-initialises each block's last BN: untrained, no gradient reaches a SIM's output
    model = dil18(zero_init_last=False)
    exp = explain_clip(model, face_clip.pixels[:, : 2 * T], target_layer="layer4.0.sim")
    assert exp.target_layer == "layer4.0.sim"
    assert exp.gradcam.shape == (2 * T, SIZE, SIZE) and exp.gradcam.max() == pytest.approx(1, abs=1e-5)
    assert exp.snippet_probs.shape == (2,)  # the DIL head's scores do not depend on the CAM layer
    with pytest.raises(ValueError, match="not a submodule"):
        explain_clip(model, face_clip.pixels[:, :T], target_layer="layer9")


# ------------------------------------------------------------------------------ honest pictures
def _suptitle(fig) -> str:
    """The figure's title, its lines joined (titles are wrapped to the figure's width)."""
    return " ".join(fig._suptitle.get_text().split())


def test_pictures_state_the_real_range_legend_and_no_face_snippets(explanation):
    from dataclasses import replace

    from dynsnip.explain.figures import contact_sheet_figure, gradcam_figure, inter_figure, intra_figure

    borrowed = replace(explanation, face_found=np.array([True, False, True, True]))
    for figure in (gradcam_figure, intra_figure, inter_figure, contact_sheet_figure):
        title = _suptitle(figure(borrowed))
        assert "border: red = snippet p(fake) >= 0.5, blue < 0.5" in title, figure.__name__  # every picture
        assert "no face found in the snippet" in title, figure.__name__
    assert "layer layer" not in _suptitle(gradcam_figure(explanation))
    intra = explanation.intra[explanation.intra_layer]
    title = _suptitle(intra_figure(explanation))
    lo, hi = float(intra.min()), float(intra.max())
    assert "(colours 0 .. 1)" in title and f"{lo:.2f}"[:3] in title  # the real range, on a fixed scale
    fig = intra_figure(explanation)
    images = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == "jet"]
    assert images and all(im.get_clim() == (0.0, 1.0) for im in images)
    stretched = [im for ax in intra_figure(explanation, scale="range").axes for im in ax.get_images()
                 if im.get_cmap().name == "jet"]
    assert stretched[0].get_clim() == pytest.approx((lo, hi), rel=1e-5)
    labels = [ax.get_ylabel() for ax in intra_figure(borrowed).axes]
    assert any("snippet 1" in label and "no face" in label for label in labels)
    assert not any("snippet 0" in label and "no face" in label for label in labels)


def test_probabilities_get_the_digits_that_tell_them_apart(explanation):
    from dataclasses import replace

    from dynsnip.explain.figures import _prob_text

    close = replace(explanation, fake_prob=0.5041, snippet_probs=np.array([0.5041, 0.5032, 0.5049, 0.5011], np.float32))
    texts = {_prob_text(close, float(p)) for p in close.snippet_probs}
    assert len(texts) == 4  # at 2 decimals all four read 0.50
    assert _prob_text(replace(explanation, fake_prob=0.2, snippet_probs=np.array([0.1, 0.9], np.float32)), 0.1) == "0.100"


def test_a_1x1_cam_layer_is_flagged(face_clip):
    """At 32x32 input ResNet's layer4 is 1x1: the Grad-CAM cannot localise anything."""
    small = torch.nn.functional.interpolate(face_clip.pixels[:, : 2 * T], size=(32, 32), mode="bilinear")
    exp = explain_clip(dil18(), small)
    assert any("outputs 1x1" in note and "flat wash" in note for note in exp.notes)
    assert not any("1x1" in note for note in explain_clip(dil18(), face_clip.pixels[:, : 2 * T]).notes)


def test_cli_draws_the_face_tracks_with_the_deciding_one_marked(checkpoint, tmp_path, capsys):
    """Two people: tracks.png draws both tracks, summary.json lists them with their probabilities
    and the track that decides; the other pictures explain that track (or --track's)."""
    video = bundled_video("two_people_320x192_test_vd_rc")
    out = tmp_path / "two"
    assert main(["explain", str(video), "--checkpoint", str(checkpoint), "--out", str(out), "--no-gradcam"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    probs = {t["id"]: t["fake_probability"] for t in summary["tracks"]}
    assert sorted(probs) == [0, 1] and summary["deciding_track"] == max(probs, key=probs.get)
    # the tracks as predict's report lists them (they were "kept", without their coverage)
    assert all(t["status"] == "scored" and 0 < t["face_coverage"] <= 1 and t["frames_checked"] for t in summary["tracks"])
    assert summary["explained_track"] == summary["deciding_track"]
    assert summary["fake_probability"] == pytest.approx(probs[summary["deciding_track"]], abs=1e-4)
    with Image.open(out / "tracks.png") as image:
        picture = np.asarray(image.convert("RGB")).astype(int)
    red, blue = np.array([0xd6, 0x27, 0x28]), np.array([0x1f, 0x77, 0xb4])
    colour = red if probs[summary["deciding_track"]] >= 0.5 else blue
    assert (np.abs(picture - colour).sum(axis=-1) < 30).sum() > 200  # the deciding track's thick box
    other = 1 - summary["deciding_track"]
    capsys.readouterr()
    assert main(["explain", str(video), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "other"),
                 "--no-gradcam", "--track", str(other)]) == 0
    other_summary = json.loads((tmp_path / "other" / "summary.json").read_text())
    # the verdict line names both: the video's probability (the deciding track's) and the explained face's
    verdict = [line for line in capsys.readouterr().out.splitlines() if "p(fake) = " in line][-1]
    video_p = other_summary["video_fake_probability"]
    assert f"video p(fake) = {video_p:.3f} (track {summary['deciding_track']}" in verdict
    assert f"explained face track {other}: p(fake) = {other_summary['fake_probability']:.3f}" in verdict
    assert f"{video}: p(fake) = " not in verdict  # the face's probability is not labelled the video's
    assert other_summary["explained_track"] == other
    # the explained face's probability is named as such; the video's stays the deciding track's
    assert other_summary["subject"] == f"face track {other}" and summary["subject"] == "video"
    assert other_summary["fake_probability"] == pytest.approx(probs[other], abs=1e-4)
    assert other_summary["video_fake_probability"] == pytest.approx(probs[summary["deciding_track"]], abs=1e-4)
    assert Explanation.load(tmp_path / "other" / "explanation.npz").subject == f"face track {other}"
    assert main(["explain", str(video), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "x"),
                 "--track", "7"]) == 2
    assert "no such scored face track" in capsys.readouterr().err


# ------------------------------------------------------------------------------ titles, summary, untrained
def _titles_outside(fig) -> list[str]:
    """The titles (the figure's, the axes') that reach past the figure's left or right edge, drawn."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [fig._suptitle] + [ax.title for ax in fig.axes] + [ax.xaxis.label for ax in fig.axes]
    return [t.get_text() for t in texts if t is not None and t.get_text()
            and (t.get_window_extent(renderer).x0 < 0 or t.get_window_extent(renderer).x1 > fig.bbox.width)]


def test_titles_fit_the_figure_at_the_papers_t(explanation):
    """At T = 4 (the paper's) the pictures are ~7 inches wide: a title naming the layer, the range, a face
    track's probability, the untrained caveat and the no-face legend is wrapped, never cut off."""
    from dataclasses import replace

    from dynsnip.data.faces.tracks import FaceTrack
    from dynsnip.explain.figures import contact_sheet_figure, gradcam_figure, inter_figure, intra_figure
    from dynsnip.explain.tracks import tracks_figure

    assert explanation.snippet_len == 4
    crowded = replace(explanation, face_found=np.array([True, False, True, True]), subject="face track 12")
    for figure in (gradcam_figure, intra_figure, inter_figure, contact_sheet_figure):
        fig = figure(crowded)
        assert _titles_outside(fig) == [], figure.__name__
        assert "no face found in the snippet" in _suptitle(fig), figure.__name__  # wrapped, not dropped
    untrained = replace(crowded, caveat="untrained network: the maps mean nothing (random weights: no --checkpoint "
                                        "was given)")
    for figure in (gradcam_figure, intra_figure, inter_figure, contact_sheet_figure):
        fig = figure(untrained)
        assert _titles_outside(fig) == [], figure.__name__
        assert fig._suptitle.get_text().startswith("untrained network: the maps mean nothing"), figure.__name__
    # one frame of a video with one face: a 4-inch picture under a long path
    rows = np.zeros((1, 15))
    rows[0, :4] = (10, 10, 50, 50)
    track = FaceTrack(id=0, frames=[0], rows=rows, row_index=[0])
    fig = tracks_figure({0: np.zeros((64, 64, 3), np.uint8)}, [track], {0: 0.7}, 0,
                        "/some/rather/long/folder/of/videos/" + "clip_" * 8 + ".mp4: 1 of 1 face track(s) scored")
    assert _titles_outside(fig) == []


def test_summary_rounds_the_ut_values(explanation):
    """summary.json's U x T values have 6 decimals at most (a float32 rounded in numpy is not: 0.25360599160194397)."""
    values = [v for rows in explanation.summary()["inter_maps"].values() for row in rows for v in row]
    assert values and all(isinstance(v, float) and v == round(v, 6) for v in values)
    assert max(len(repr(v).split(".")[1]) for v in values) <= 6
    layer = explanation.inter_layer
    np.testing.assert_allclose(explanation.summary()["inter_maps"][layer], explanation.inter[layer], atol=5e-7)


def test_a_caveat_is_on_every_picture_and_in_the_notes_once(explanation, tmp_path):
    from dataclasses import replace

    exp = replace(explanation, caveat="untrained network: the maps mean nothing", notes=["a note"])
    assert exp.summary()["notes"] == ["untrained network: the maps mean nothing", "a note"]
    exp.save(tmp_path / "e.npz")
    back = Explanation.load(tmp_path / "e.npz")
    assert back.caveat == exp.caveat and back.notes == ["a note"]  # kept apart: saved again, not doubled
    assert back.summary()["notes"] == exp.summary()["notes"]


def test_cli_says_an_untrained_network_on_the_pictures_and_in_the_summary(tmp_path):
    """No --checkpoint: the warning on stderr is not all; summary.json's notes and the saved
    explanation (whose pictures are drawn with it) say it, so a file shared on its own says it."""
    from dynsnip.explain.figures import inter_figure

    out = tmp_path / "untrained"
    assert main(["explain", str(bundled_video("carphone_pristine")), "--model", "dil_resnet18", "--out", str(out),
                 "--snippets", "1", "--no-gradcam", "--face-detector", "none", "--device", "cpu"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["weights"].startswith("untrained")
    assert summary["notes"] and summary["notes"][0].startswith("untrained network: the maps mean nothing")
    exp = Explanation.load(out / "explanation.npz")
    assert exp.caveat == summary["notes"][0]
    assert _suptitle(inter_figure(exp)).startswith("untrained network: the maps mean nothing")


# ------------------------------------------------------------------------------ --out: whole runs only
def _folder(path: Path) -> dict[str, tuple[str, int]]:
    """``{name: (md5, mtime_ns)}`` of the files in ``path``."""
    return {p.name: (hashlib.md5(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(path.iterdir()) if p.is_file()}


def _stop_after_the_gradcam(monkeypatch, stop) -> None:
    """Make ``stop()`` happen while the pictures are written: after gradcam.png, before the others."""
    import dynsnip.explain.figures as figures

    def intra_figure(*args, **kwargs):
        stop()
        raise AssertionError("the run went on after it was stopped")

    monkeypatch.setattr(figures, "intra_figure", intra_figure)


def test_cli_interrupted_overwrite_leaves_the_earlier_explanation(checkpoint, tmp_path, monkeypatch, capsys):
    """Ctrl-C during an --overwrite run: --out keeps the earlier run whole (no gradcam.png of the new run
    among the old pictures), no temporary folder stays, and a rerun writes the new run whole."""
    video = str(bundled_video("carphone_pristine"))
    out = tmp_path / "out"
    assert main(["explain", video, "--checkpoint", str(checkpoint), "--out", str(out), "--faces", "largest"]) == 0
    (out / "my_notes.txt").write_text("mine")
    before = _folder(out)

    def ctrl_c():
        raise KeyboardInterrupt

    _stop_after_the_gradcam(monkeypatch, ctrl_c)
    capsys.readouterr()
    new_run = ["explain", video, "--checkpoint", str(checkpoint), "--out", str(out), "--faces", "largest",
               "--overwrite", "--target", "real"]
    assert main(new_run) == 130
    assert _folder(out) == before
    err = capsys.readouterr().err
    assert "interrupted (Ctrl-C)" in err and f"the earlier explanation in {out} is left as it was" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder beside it
    monkeypatch.undo()
    assert main(new_run) == 0
    after = _folder(out)
    assert after["my_notes.txt"] == before["my_notes.txt"]
    assert all(after[name] != before[name] for name in before if name != "my_notes.txt")  # every file the new run's
    assert json.loads((out / "summary.json").read_text())["target"] == "real"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_cli_sigterm_on_a_first_run_writes_nothing_and_a_rerun_is_not_blocked(checkpoint, tmp_path, monkeypatch,
                                                                               capsys):
    """SIGTERM (a scheduler's stop) is handled as Ctrl-C: exit 143, no --out (not a partial one holding
    gradcam.png only, which a rerun refused), no temporary folder; the same command then runs."""
    def sigterm():
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL, "SIGTERM would end the process at once"
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    _stop_after_the_gradcam(monkeypatch, sigterm)
    out = tmp_path / "new" / "out"
    command = ["explain", str(bundled_video("carphone_pristine")), "--checkpoint", str(checkpoint), "--out", str(out),
               "--faces", "largest"]
    assert main(command) == 143
    assert "interrupted (SIGTERM)" in capsys.readouterr().err
    assert not out.exists() and list(out.parent.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler before the run is back
    monkeypatch.undo()
    assert main(command) == 0
    assert "summary.json" in os.listdir(out) and list(out.parent.iterdir()) == [out]


def test_cli_failed_overwrite_says_the_earlier_explanation_stays(checkpoint, tmp_path, capsys):
    video = str(bundled_video("carphone_pristine"))
    out = tmp_path / "out"
    assert main(["explain", video, "--checkpoint", str(checkpoint), "--out", str(out), "--faces", "largest",
                 "--no-gradcam"]) == 0
    before = _folder(out)
    bad = write_text_as_mp4(tmp_path / "not_a_video.mp4")
    capsys.readouterr()
    assert main(["explain", str(bad), "--checkpoint", str(checkpoint), "--out", str(out), "--overwrite"]) == 1
    err = capsys.readouterr().err
    assert _folder(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["not_a_video.mp4", "out"]
    assert "corrupt" in err and f"the earlier explanation in {out} is left as it was" in err


def test_cli_partial_folders_and_leftovers(checkpoint, tmp_path, monkeypatch, capsys):
    """A folder an older version left half-written is named as such when refused; the temporary folder
    of a run killed outright (SIGKILL) does not block a rerun; where --out's parent cannot hold the
    temporary folder (another file system) it is made inside --out and leaves nothing there."""
    import dynsnip.cli.explain as cli_explain

    video = str(bundled_video("carphone_pristine"))
    args = ["explain", video, "--checkpoint", str(checkpoint), "--faces", "largest", "--no-gradcam"]
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "intra_sma.png").write_bytes(b"an older version's half-written run")
    assert main([*args, "--out", str(partial)]) == 2
    err = capsys.readouterr().err
    assert "no summary.json" in err and "did not finish" in err and "--overwrite" in err

    killed = tmp_path / "killed"
    (killed / ".dynsnip-explain-abc123.partial").mkdir(parents=True)  # a run killed with -9, inside --out
    assert main([*args, "--out", str(killed)]) == 0
    assert "summary.json" in os.listdir(killed)

    monkeypatch.setattr(cli_explain, "_same_file_system", lambda a, b: False)
    (killed / "mine.txt").write_text("mine")
    assert main([*args, "--out", str(killed), "--overwrite", "--target", "real"]) == 0
    assert json.loads((killed / "summary.json").read_text())["target"] == "real"
    assert sorted(os.listdir(killed)) == sorted([".dynsnip-explain-abc123.partial", "mine.txt",
                                                 *json.loads((killed / "summary.json").read_text())["files"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed", "partial"]


def test_putting_outputs_in_place_across_a_mount_and_into_an_out_filled_meanwhile(tmp_path, monkeypatch):
    """A bind mount of the same file system refuses renames into it (EXDEV) though the devices agree: each
    file is then copied beside its place and renamed there, and the earlier run's files are removed only
    once the new ones are in. An --out that appeared and was filled while the run wrote is not written
    over without --overwrite."""
    import errno

    import dynsnip.cli.explain as explain

    out = tmp_path / "out"
    out.mkdir()
    (out / "tracks.png").write_text("earlier")
    (out / "notes.txt").write_text("the user's")
    staging = explain._Staging(out)
    stage = staging.create()
    (stage / "gradcam.png").write_text("new")
    (stage / "summary.json").write_text("{}")
    real_replace = os.replace

    def replace(src, dst):
        if Path(src).parent == stage:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(explain.os, "replace", replace)
    assert staging.put_in_place({"tracks.png", "summary.json"}) == ["tracks.png"]
    assert sorted(p.name for p in out.iterdir()) == ["gradcam.png", "notes.txt", "summary.json"]
    assert (out / "gradcam.png").read_text() == "new" and (out / "notes.txt").read_text() == "the user's"
    monkeypatch.undo()
    fresh = tmp_path / "fresh"
    staging = explain._Staging(fresh)
    (staging.create() / "gradcam.png").write_text("new")
    fresh.mkdir()
    (fresh / "gradcam.png").write_text("someone else's")
    with pytest.raises(FileExistsError, match="appeared and was filled while this run wrote"):
        staging.put_in_place(set(), overwrite=False)
    assert (fresh / "gradcam.png").read_text() == "someone else's"
    staging.discard()
