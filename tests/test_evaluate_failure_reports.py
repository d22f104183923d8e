"""What evaluate and benchmark report of the videos they could not score: counted per video, a
face track that failed in a video scored on its other faces kept apart (as predict keeps it),
and each failure with the label and method it is missing from."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.data import Dataset

from dynsnip.cli import main
from dynsnip.data.errors import LowFaceCoverageError, NoFaceError
from dynsnip.engine import Recipe, build_model, evaluate, save_model


class MeanLogit(torch.nn.Module):
    """The mean pixel of each clip as its fake logit."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return (x.mean(dim=(1, 2, 3, 4)) * self.w)[:, None]


class Tracks(Dataset):
    """One item per face track, ``(video, track, label, method, failure)`` per item: the failure
    (``"low"``: below the coverage, ``"none"``: no face) is raised as FaceFramesDataset raises it."""

    def __init__(self, items, shape=(3, 2, 4, 4)):
        self.items, self.shape = items, shape

    def __len__(self):
        return len(self.items)

    def item_info(self, index):
        video, track, label, method, _ = self.items[index]
        return {"id": video, "method": method, "track": track, "label": label}

    def __getitem__(self, index):
        video, track, label, _, failure = self.items[index]
        if failure == "low":
            raise LowFaceCoverageError(video, 0.3, 0.5, 10, advice=f"face track {track}")
        if failure == "none":
            raise NoFaceError(video, f"face track {track} is in none of the sampled frames")
        return torch.full(self.shape, 0.1 * index - 0.3), float(label)


ITEMS = [
    ("real_a", 0, 0, None, None),
    ("fake_b", 0, 1, "Deepfakes", None),
    ("fake_b", 1, 1, "Deepfakes", "low"),          # scored on track 0: a track not scored, not a failed video
    ("fake_c", 0, 1, "Face2Face", "low"),          # nothing of it scored: one failed video, not three
    ("fake_c", 1, 1, "Face2Face", "none"),
    ("fake_c", 2, 1, "Face2Face", "low"),
    ("real_d", 0, 0, None, None),
    ("fake_e", 0, 1, "Face2Face", None),
]


def test_failures_are_counted_per_video_and_unscored_tracks_of_scored_videos_apart():
    result = evaluate(MeanLogit(), Tracks(ITEMS), batch_size=3, device="cpu", progress=False)
    report = result.report
    assert sorted(p["id"] for p in result.predictions) == ["fake_b", "fake_e", "real_a", "real_d"]
    assert report["num_failed"] == 1 and [f["id"] for f in report["failed"]] == ["fake_c"]
    (failed,) = report["failed"]
    assert failed["reason"] == "low_face_coverage" and failed["failed_items"] == 3
    assert "all 3 face tracks of this video failed: low_face_coverage 2, no_face 1" in failed["message"]
    assert report["failed_by_reason"] == {"low_face_coverage": 1}
    assert [(t["id"], t["track"], t["reason"]) for t in report["tracks_not_scored"]] == [
        ("fake_b", 1, "low_face_coverage")]
    assert {p["id"]: p.get("tracks_not_scored") for p in result.predictions} == {
        "real_a": None, "fake_b": "1:low_face_coverage", "real_d": None, "fake_e": None}


def test_nan_logits_of_several_clips_of_one_video_are_one_failed_video():
    class NanFor(MeanLogit):
        def forward(self, x):
            out = super().forward(x)
            return torch.where(x[:, :1, :1, :1, :1].flatten(1) > 0.05, torch.full_like(out, math.nan), out)

    items = [("v", 0, 1, "Deepfakes", None), ("w", 0, 0, None, None), ("v", 1, 1, "Deepfakes", None),
             ("x", 0, 1, "Deepfakes", None), ("x", 1, 1, "Deepfakes", None), ("x", 2, 1, "Deepfakes", None)]
    result = evaluate(NanFor(), Tracks(items), batch_size=4, device="cpu", progress=False)  # items 4, 5: NaN
    assert result.report["num_failed"] == 1 and result.failures[0]["id"] == "x"
    assert result.failures[0]["reason"] == "non_finite_output" and result.failures[0]["failed_items"] == 2
    assert result.report["tracks_not_scored"] == [] and sorted(p["id"] for p in result.predictions) == ["v", "w"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("dil_resnet18", pretrained=False, channels=[8, 16, 32, 64], stem_width=8)
    return save_model(model, tmp_path_factory.mktemp("tiny") / "model", recipe=Recipe(model="dil_resnet18", img_size=16))


def evaluate_command(tiny_model, tmp_path, monkeypatch, items):
    """``dynsnip evaluate`` on ``items`` (a Tracks dataset of (3, 2*4, 16, 16) clips in place of the manifest's)."""
    import dynsnip.engine as engine

    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nreal_a,0\n")
    monkeypatch.setattr(engine, "make_dataset", lambda *a, **k: Tracks(items, shape=(3, 8, 16, 16)))
    out = tmp_path / "report"
    code = main(["evaluate", "--model", str(tiny_model), "--manifest", str(manifest), "--workers", "0",
                 "--no-progress", "--num-snippets", "2", "--img-size", "16", "--out", str(out), "--overwrite"])
    return code, json.loads((tmp_path / "report.json").read_text())


def test_evaluate_command_exits_0_for_a_track_not_scored_and_1_for_a_failed_video(tiny_model, tmp_path,
                                                                                  monkeypatch, capsys):
    scored = [i for i in ITEMS if i[0] != "fake_c"]
    code, data = evaluate_command(tiny_model, tmp_path, monkeypatch, scored)
    err = capsys.readouterr().err
    assert code == 0, err
    assert data["num_failed"] == 0 and data["failed"] == []
    assert [t["id"] for t in data["tracks_not_scored"]] == ["fake_b"]
    assert "1 face track(s) of 1 scored video(s) were not scored" in err and "could not be read" not in err
    code, data = evaluate_command(tiny_model, tmp_path, monkeypatch, ITEMS)
    err = capsys.readouterr().err
    assert code == 1 and data["num_failed"] == 1
    assert "1 video(s) could not be read or scored and are not in the metrics" in err


def test_each_failure_names_its_label_and_method_and_each_subset_counts_its_failed_videos(tmp_path):
    import csv

    from dynsnip.engine.metrics import write_report

    items = ITEMS + [("real_f", 0, 0, None, "none"), ("fake_g", 0, 1, "NeuralTextures", "none")]
    result = evaluate(MeanLogit(), Tracks(items), batch_size=3, device="cpu", progress=False)
    report = result.report
    assert [(f["id"], f["label"], f["method"]) for f in report["failed"]] == [
        ("fake_c", 1, "Face2Face"), ("real_f", 0, None), ("fake_g", 1, "NeuralTextures")]
    assert report["tracks_not_scored"][0]["method"] == "Deepfakes" and report["tracks_not_scored"][0]["label"] == 1
    assert report["overall"]["num_failed"] == 3
    # per method: the failed reals and that method's failed fakes
    assert {m: r["num_failed"] for m, r in report["per_method"].items()} == {"Deepfakes": 1, "Face2Face": 2}
    assert report["failed_by_method"] == {"Face2Face": 1, "real": 1, "NeuralTextures": 1}  # NT: none scored, no row
    json_path, csv_path = write_report(report, tmp_path / "r")
    assert {r["subset"]: r["num_failed"] for r in csv.DictReader(csv_path.open())} == {
        "overall": "3", "Deepfakes": "1", "Face2Face": "2"}
    from dynsnip.cli.evaluate import format_report

    table = format_report(report).splitlines()
    assert table[0].split()[-1] == "failed" and [line.split()[-1] for line in table[1:]] == ["3", "1", "2"]


def test_earlier_failures_keep_their_label_and_method_and_are_counted_per_subset():
    from dynsnip.engine.failures import with_earlier_failures

    result = evaluate(MeanLogit(), Tracks(ITEMS), batch_size=3, device="cpu", progress=False)
    report = with_earlier_failures(result.report, [{"id": "/x/dd.mp4", "reason": "corrupt", "message": "m",
                                                    "label": 1, "method": "Deepfakes"}])
    assert report["num_failed"] == 2 and report["overall"]["num_failed"] == 2
    assert {m: r["num_failed"] for m, r in report["per_method"].items()} == {"Deepfakes": 1, "Face2Face": 1}


def test_a_pseudo_fake_is_reported_with_the_fake_label_not_its_reals():
    from dynsnip.data.pseudo_fakes import PseudoFakeGenerator
    from dynsnip.engine.evaluate import item_label
    from dynsnip.engine.pseudo_fakes import PseudoFakePairs

    reals = Tracks([("real_a", None, 0, None, None), ("fake_b", None, 1, "Deepfakes", None)])
    pairs = PseudoFakePairs(reals, PseudoFakeGenerator(), mean=(0.5,) * 3, std=(0.5,) * 3, snippet_len=2,
                            labels=[0, 1])
    assert [item_label(pairs, i) for i in range(len(pairs))] == [0, 1, 1]
    assert pairs.item_info(2)["id"] == "real_a#pseudo-fake-0"
