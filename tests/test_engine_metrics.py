"""Video-level metrics: rank AUC (with ties), accuracy, per-method protocol, reports."""
from __future__ import annotations

import csv
import json
import math
import random

import pytest
import timm

import dynsnip  # noqa: F401  (registers dil_*)
from dynsnip.engine import Recipe
from dynsnip.engine.metrics import accuracy, aggregate_by_video, binary_metrics, roc_auc, video_metrics, write_report


def pairwise_auc(scores, labels):
    """Independent definition: P(score of a fake > score of a real), ties count 1/2."""
    fakes = [s for s, y in zip(scores, labels) if y == 1]
    reals = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum((f > r) + 0.5 * (f == r) for f in fakes for r in reals)
    return wins / (len(fakes) * len(reals))


def test_auc_known_cases():
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]) == 0.5
    # the classic example: one of four real/fake pairs is misordered
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # a tie between a real and a fake counts one half: pairs (0.3>0.2, 0.3=0.3 -> 1.5 of 2)
    assert roc_auc([0.2, 0.3, 0.3], [0, 0, 1]) == pytest.approx(0.75)


def test_auc_matches_pairwise_definition_with_many_ties():
    rng = random.Random(0)
    for _ in range(20):
        n = rng.randint(2, 40)
        labels = [rng.randint(0, 1) for _ in range(n)]
        labels[0], labels[1] = 0, 1
        scores = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(n)]  # many ties
        assert roc_auc(scores, labels) == pytest.approx(pairwise_auc(scores, labels), abs=1e-12)


def test_auc_is_invariant_to_monotone_transform_and_undefined_for_one_class():
    scores, labels = [0.1, 0.7, 0.3, 0.9, 0.2], [0, 1, 0, 1, 1]
    logits = [math.log(s / (1 - s)) for s in scores]
    assert roc_auc(scores, labels) == roc_auc(logits, labels)
    assert math.isnan(roc_auc([0.1, 0.2], [1, 1]))


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="3 scores for 2 labels"):
        roc_auc([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(ValueError, match="0 \\(real\\) or 1 \\(fake\\)"):
        roc_auc([0.1, 0.2], [0, 2])
    with pytest.raises(ValueError, match="non-finite"):
        roc_auc([0.1, float("nan")], [0, 1])


def test_accuracy_and_class_rates():
    scores, labels = [0.2, 0.6, 0.4, 0.9], [0, 0, 1, 1]
    assert accuracy(scores, labels) == 0.5
    assert accuracy(scores, labels, threshold=0.3) == 0.75
    m = binary_metrics(scores, labels)
    assert (m["num_real"], m["num_fake"], m["real_accuracy"], m["fake_recall"]) == (2, 2, 0.5, 0.5)


def test_per_method_uses_all_reals_plus_that_methods_fakes():
    # reals 0.1 0.2 0.6; Deepfakes perfectly above every real; Face2Face mixed
    scores = [0.1, 0.2, 0.6, 0.9, 0.8, 0.15, 0.7]
    labels = [0, 0, 0, 1, 1, 1, 1]
    methods = ["real", None, "original", "Deepfakes", "Deepfakes", "Face2Face", "Face2Face"]
    report = video_metrics(scores, labels, methods)
    df, f2f = report["per_method"]["Deepfakes"], report["per_method"]["Face2Face"]
    assert (df["num_real"], df["num_fake"]) == (3, 2) and df["auc"] == 1.0
    assert (f2f["num_real"], f2f["num_fake"]) == (3, 2)
    assert f2f["auc"] == pytest.approx(pairwise_auc([0.1, 0.2, 0.6, 0.15, 0.7], [0, 0, 0, 1, 1]))
    assert report["overall"]["num_videos"] == 7
    assert video_metrics(scores, labels)["per_method"] == {}


def test_per_method_rejects_inconsistent_methods():
    with pytest.raises(ValueError, match="labelled real but its method is 'Deepfakes'"):
        video_metrics([0.1, 0.9], [0, 1], ["Deepfakes", "Deepfakes"])
    with pytest.raises(ValueError, match="fake but has no manipulation method"):
        video_metrics([0.1, 0.9, 0.8], [0, 1, 1], [None, "Deepfakes", None])


def test_aggregate_by_video_averages_clips_of_one_video():
    ids, scores, labels, methods = aggregate_by_video(
        ["a", "b", "a", "c", "c"], [0.2, 0.9, 0.4, 0.5, 0.7], [0, 1, 0, 1, 1], ["real", "DF", "real", "NT", "NT"]
    )
    assert ids == ["a", "b", "c"]
    assert scores == pytest.approx([0.3, 0.9, 0.6])
    assert labels == [0, 1, 1] and methods == ["real", "DF", "NT"]
    with pytest.raises(ValueError, match="labels 0 and 1"):
        aggregate_by_video(["a", "a"], [0.1, 0.2], [0, 1])


def test_write_report_json_and_csv(tmp_path):
    report = video_metrics([0.1, 0.9, 0.8], [0, 1, 1], ["real", "DF", "NT"])
    preds = [{"id": "v1", "label": 0, "score": 0.1}, {"id": "v2", "label": 1, "score": 0.9}]
    json_path, csv_path = write_report(dict(report, note="x"), tmp_path / "rep.json", preds)
    data = json.loads(json_path.read_text())
    assert data["per_method"]["DF"]["auc"] == 1.0 and data["videos"][1]["id"] == "v2"
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["subset"] for r in rows] == ["overall", "DF", "NT"]
    assert float(rows[0]["auc"]) == 1.0
    assert (tmp_path / "rep_videos.csv").read_text().splitlines()[0] == "id,label,score"
    # an undefined AUC is written as null / empty, not as a non-standard NaN
    json_path, csv_path = write_report(video_metrics([0.1, 0.2], [1, 1]), tmp_path / "one_class")
    assert json.loads(json_path.read_text())["overall"]["auc"] is None
    assert list(csv.DictReader(csv_path.open()))[0]["auc"] == ""


def test_a_dot_in_the_report_name_is_part_of_it_not_a_suffix(tmp_path):
    """--out bench/ffpp_thr0.5 and bench/ffpp_thr0.7 are two reports: neither may take the other's files."""
    from dynsnip.engine.metrics import report_paths

    assert [p.name for p in report_paths(tmp_path / "ffpp_thr0.5")] == [
        "ffpp_thr0.5.json", "ffpp_thr0.5.csv", "ffpp_thr0.5_videos.csv"]
    assert [p.name for p in report_paths(tmp_path / "ffpp_thr0.5.JSON")] == [
        "ffpp_thr0.5.json", "ffpp_thr0.5.csv", "ffpp_thr0.5_videos.csv"]
    assert report_paths(tmp_path / "r.csv")[0].name == "r.json"
    report = video_metrics([0.1, 0.9], [0, 1])
    first = write_report(report, tmp_path / "ffpp_thr0.5", [{"id": "a", "label": 0, "score": 0.1}])
    second = write_report(dict(report, threshold=0.7), tmp_path / "ffpp_thr0.7", [{"id": "a", "label": 0, "score": 0.1}])
    assert set(first).isdisjoint(second)
    assert "threshold" not in json.loads(first[0].read_text())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"ffpp_thr0.{t}{end}" for t in (5, 7) for end in (".json", ".csv", "_videos.csv"))


def test_an_empty_method_is_no_method_for_fakes_as_for_reals():
    """``""`` (an empty CSV cell) is no method: a fake with it is not a per-method group named ''."""
    report = video_metrics([0.1, 0.9, 0.8], [0, 1, 1], methods=["", "", None])
    assert report["per_method"] == {}
    with pytest.raises(ValueError, match="fake but has no manipulation method"):
        video_metrics([0.1, 0.9, 0.8], [0, 1, 1], methods=["", "", "Deepfakes"])


def test_the_methods_of_an_evaluation_set_are_checked_before_any_work(tmp_path):
    """A fake without a method among fakes with one (or a real naming one) fails at the start,
    naming the rows: before, evaluate scored every video and train ran an epoch, then crashed."""
    from dynsnip.data.manifest import ManifestEntry, check_methods
    from dynsnip.engine import make_dataset

    entries = [ManifestEntry(tmp_path / "r.mp4", 0), ManifestEntry(tmp_path / "a.mp4", 1, method="Deepfakes"),
               ManifestEntry(tmp_path / "b.mp4", 1, method=""), ManifestEntry(tmp_path / "c.mp4", 1)]
    with pytest.raises(ValueError, match=r"m\.csv: 2 fake video\(s\) have no manipulation method \(.*b\.mp4, .*c\.mp4\) "
                                         r"while 1 others do"):
        check_methods(entries, "m.csv")
    check_methods(entries[:1] + entries[2:])  # no fake has one: fine
    with pytest.raises(ValueError, match=r"1 real video\(s\) name a manipulation method .*'Face2Face'"):
        check_methods([ManifestEntry(tmp_path / "r.mp4", 0, method="Face2Face")])
    check_methods([ManifestEntry(tmp_path / "r.mp4", 0, method="original")])
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,split,method\nr.mp4,real,test,\na.mp4,fake,test,Deepfakes\nb.mp4,fake,test,\n"
                        "c.mp4,fake,train,\n")
    for name in ("r", "a", "b", "c"):
        (tmp_path / f"{name}.mp4").write_bytes(b"")  # never opened: the check comes first
    model = timm.create_model("dil_resnet18", num_classes=1, channels=(8, 16, 32, 64), stem_width=8)
    with pytest.raises(ValueError, match="1 fake video"):
        make_dataset(manifest, model, Recipe(), train=False, split="test")
    make_dataset(manifest, model, Recipe(), train=True, split="train")  # training computes no per-method metrics
