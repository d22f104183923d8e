"""AUC on saturated probabilities, a manifest whose first row is missing on disk,
and the precision a model card claims.

* A float64 sigmoid rounds every logit above ~37 to 1.0: ranking those probabilities tied a
  confident detector's fakes and reals (AUC 0.5 where the logits' order gives 0.75). The ranking
  metrics now break equal probabilities by the logits; scores and accuracy stay probabilities.
* ``--data auto`` decided video files vs frame folders from the first row only, and refused the
  whole command when that row was missing, while a missing row elsewhere was skipped.
* The card of a CPU float32 run said "float16 autocast on GPU".
"""
from __future__ import annotations

import csv
import json
import math
import random

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch.utils.data import Dataset

import dynsnip  # noqa: F401  (registers dil_*)
from dynsnip.engine import Recipe, evaluate, make_dataset
from dynsnip.engine.metrics import (
    average_precision, binary_metrics, equal_error_rate, roc_auc, video_logits, video_metrics,
)

TINY = dict(channels=(8, 16, 32, 64), stem_width=8)


def pairwise_auc(keys, labels):
    """Independent definition: P(key of a fake > key of a real), ties count 1/2 (keys compare as tuples)."""
    fakes = [k for k, y in zip(keys, labels) if y == 1]
    reals = [k for k, y in zip(keys, labels) if y == 0]
    wins = sum((f > r) + 0.5 * (f == r) for f in fakes for r in reals)
    return wins / (len(fakes) * len(reals))


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


# --------------------------------------------------------------------------- 1. saturated probabilities
def test_saturated_probabilities_are_ranked_by_their_logits():
    logits = [38.0, 40.0, 45.0, 50.0]
    labels = [0, 1, 0, 1]
    probs = [sigmoid(z) for z in logits]
    assert probs == [1.0] * 4  # the float64 sigmoid has lost their order
    assert roc_auc(probs, labels) == 0.5
    assert roc_auc(probs, labels, logits) == pytest.approx(0.75) == roc_auc(logits, labels)
    assert average_precision(probs, labels, logits) == pytest.approx(average_precision(logits, labels))
    assert equal_error_rate(probs, labels, logits) == pytest.approx(equal_error_rate(logits, labels))
    m = binary_metrics(probs, labels, logits=logits)
    assert m["auc"] == pytest.approx(0.75) and m["accuracy"] == 0.5  # accuracy still thresholds the probability
    report = video_metrics(probs, [0, 1, 0, 1], ["", "DF", "", "NT"], logits=logits)
    assert report["overall"]["auc"] == pytest.approx(0.75)
    # per method: both reals (38, 45) against DF's fake (40) -> 1/2; against NT's fake (50) -> 1
    assert report["per_method"]["DF"]["auc"] == pytest.approx(0.5)
    assert report["per_method"]["NT"]["auc"] == pytest.approx(1.0)


def test_logits_change_nothing_where_probabilities_are_distinct_or_truly_tied():
    rng = random.Random(0)
    for _ in range(20):
        logits = [rng.uniform(-8, 8) for _ in range(30)]
        labels = [rng.randint(0, 1) for _ in range(30)]
        labels[:2] = [0, 1]
        probs = [sigmoid(z) for z in logits]
        methods = [("DF" if i % 2 else "NT") if y else "" for i, y in enumerate(labels)]
        plain, ranked = video_metrics(probs, labels, methods), video_metrics(probs, labels, methods, logits=logits)
        assert ranked == plain
        for metric in (roc_auc, average_precision, equal_error_rate):
            assert metric(probs, labels, logits) == metric(probs, labels)
    # equal probabilities from equal logits stay a tie (a half)
    assert roc_auc([0.7, 0.7], [0, 1], [0.8473, 0.8473]) == 0.5
    # a probability order is kept even where a logit disagrees: the logit only breaks ties
    keys = list(zip([0.2, 0.9, 0.9, 0.9], [5.0, 1.0, 3.0, 2.0]))
    assert roc_auc([0.2, 0.9, 0.9, 0.9], [1, 0, 1, 0], [5.0, 1.0, 3.0, 2.0]) == pytest.approx(
        pairwise_auc(keys, [1, 0, 1, 0]))


def test_logits_must_match_the_scores():
    with pytest.raises(ValueError, match="3 logits for 2 scores; expected the logit behind each score"):
        roc_auc([0.1, 0.9], [0, 1], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="logits holds 1 non-finite"):
        video_metrics([0.1, 0.9], [0, 1], logits=[0.0, float("nan")])


def test_video_logits_keep_the_meaning_of_the_video_score():
    ids = ["a", "b", "a", "c", "b"]
    assert video_logits(ids, [1.0, 2.0, 3.0, -4.0, 0.5], reduce="max") == [3.0, 2.0, -4.0]
    mean = video_logits(ids, [1.0, 2.0, 3.0, -4.0, 0.5], reduce="mean")
    assert mean[2] == -4.0  # one item: its own logit
    for got, items in zip(mean[:2], ([1.0, 3.0], [2.0, 0.5])):
        p = sum(sigmoid(z) for z in items) / len(items)
        assert got == pytest.approx(math.log(p / (1 - p)), abs=1e-12)  # the logit of the mean probability
    # where the mean probability is 1.0 in float64, its logit still orders the videos exactly:
    # mean of (38, 60) is 1 - (e^-38 + e^-60) / 2, below the 1 - e^-50 of (50, 50)
    lo, hi = video_logits(["x", "x", "y", "y"], [38.0, 60.0, 50.0, 50.0])
    assert lo < hi and lo == pytest.approx(38 + math.log(2), abs=1e-9) and hi == pytest.approx(50.0)
    # the same logits in another order give the very same value (a tie stays a tie)
    x, y = video_logits(["x", "x", "y", "y"], [0.3, 2.0, 2.0, 0.3])
    assert x == y
    with pytest.raises(ValueError, match="reduce must be 'mean' or 'max'"):
        video_logits(["a"], [1.0], reduce="median")
    with pytest.raises(ValueError, match="2 logits for 1 ids"):
        video_logits(["a"], [1.0, 2.0])


class LogitClips(Dataset):
    """Items whose pixels carry the logit the :class:`Identity` model returns; ``ids`` groups items
    into videos (face tracks)."""

    def __init__(self, logits, labels, ids=None):
        self.logits, self.labels = list(logits), list(labels)
        self.ids = list(ids) if ids is not None else [str(i) for i in range(len(self.labels))]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return torch.full((3, 4, 8, 8), float(self.logits[i])), float(self.labels[i])

    def item_info(self, i):
        return {"id": self.ids[i], "method": None, "track": i}


class Identity(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return x.flatten(1)[:, :1] + 0 * self.w


def test_evaluate_ranks_confident_videos_by_their_logits_and_reports_probabilities():
    result = evaluate(Identity(), LogitClips([38.0, 40.0, 45.0, 50.0], [0, 1, 0, 1]), device="cpu", progress=False)
    assert result.auc == pytest.approx(0.75)
    assert result.accuracy == 0.5  # every video called fake at probability 1.0 >= 0.5
    assert [p["score"] for p in result.predictions] == [1.0] * 4
    assert [p["logit"] for p in result.predictions] == [38.0, 40.0, 45.0, 50.0]
    # ordinary logits: the AUC of the reported probabilities, as before
    rng = random.Random(1)
    logits, labels = [rng.uniform(-5, 5) for _ in range(12)], [i % 2 for i in range(12)]
    result = evaluate(Identity(), LogitClips(logits, labels), device="cpu", progress=False)
    scores = [p["score"] for p in result.predictions]
    assert result.auc == roc_auc(scores, labels) == pytest.approx(pairwise_auc(logits, labels))


def test_evaluate_keeps_max_and_mean_over_tracks_when_probabilities_saturate():
    """Video A (fake): tracks at logits 38 and 60; video B (real): 50 and 50. The most suspicious
    track makes A the more fake (60 > 50); the mean probability makes B the more fake
    (1 - e^-50 > 1 - (e^-38 + e^-60) / 2). Both are 1.0 in float64."""
    data = LogitClips([38.0, 60.0, 50.0, 50.0], [1, 1, 0, 0], ids=["A", "A", "B", "B"])
    by_max = evaluate(Identity(), data, device="cpu", progress=False, video_score="max")
    by_mean = evaluate(Identity(), data, device="cpu", progress=False, video_score="mean")
    assert [p["score"] for p in by_max.predictions] == [1.0, 1.0] == [p["score"] for p in by_mean.predictions]
    assert by_max.auc == 1.0 and by_mean.auc == 0.0
    assert [p["logit"] for p in by_max.predictions] == [60.0, 50.0]


# --------------------------------------------------------------------------- 2. first manifest row missing
def write_frames(folder, frames: int, seed: int, size: int = 16) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for i in range(frames):
        Image.fromarray(rng.integers(0, 255, size=(size, size, 3)).astype(np.uint8)).save(folder / f"{i:06d}.png")


@pytest.fixture()
def gone_first(tmp_path):
    """A manifest of frame folders whose first row is missing on disk."""
    rows = [{"path": "gone", "label": "fake", "split": "test", "method": "DF"}]
    for i in range(4):
        write_frames(tmp_path / f"v{i}", 8, seed=i)
        rows.append({"path": f"v{i}", "label": "fake" if i % 2 else "real", "split": "test",
                     "method": "DF" if i % 2 else ""})
    path = tmp_path / "m.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_missing_first_row_does_not_decide_the_data_kind(gone_first):
    from dynsnip.data import FaceFramesDataset

    model = timm.create_model("dil_resnet18", num_classes=1, **TINY)
    for train in (True, False):
        dataset = make_dataset(gone_first, model, Recipe(img_size=16), train=train)
        assert isinstance(dataset, FaceFramesDataset) and len(dataset) == 5  # the missing row is kept, to be reported


def test_no_existing_row_is_a_clear_error(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\ngone1,real\ngone2,fake\n")
    model = timm.create_model("dil_resnet18", num_classes=1, **TINY)
    with pytest.raises(FileNotFoundError, match=r"m\.csv: none of its 2 entries exists on disk \(.*gone1, .*gone2\).*"
                                                r"--data frames\|video"):
        make_dataset(manifest, model, Recipe(img_size=16), train=False)


def test_evaluate_reports_and_skips_a_missing_first_row(gone_first, tmp_path, capsys):
    from dynsnip.cli import main
    from dynsnip.engine import build_model
    from dynsnip.hub import save_pretrained

    model = build_model("dil_resnet18", pretrained=False, **TINY)
    folder = save_pretrained(model, tmp_path / "model", pretrained_cfg={"input_size": (3, 16, 16)})
    code = main(["evaluate", "--model", str(folder), "--manifest", str(gone_first), "--workers", "0", "--no-progress",
                 "--num-snippets", "1", "--out", str(tmp_path / "report")])
    err = capsys.readouterr().err
    assert code == 1 and "1 video(s) could not be read" in err and "gone: not_found" in err
    with (tmp_path / "report_videos.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4


# --------------------------------------------------------------------------- 3. the card's precision
@pytest.mark.parametrize("amp, dtype, expected, absent", [
    (False, "float16", "| precision | float32 |", "autocast"),
    (True, "float16", "| precision | float16 autocast with gradient scaling if the run had a GPU, float32 if it ran "
                      "on CPU (mixed precision was requested; the training record does not name the device) |",
     "on GPU |"),
    (True, "bfloat16", "| precision | bfloat16 autocast if the run had a GPU, float32 if it ran on CPU", "scaling"),
])
def test_the_card_does_not_claim_a_gpu_the_record_does_not_show(tmp_path, amp, dtype, expected, absent):
    from dynsnip.hub import save_pretrained
    from dynsnip.hub.records import training_record

    model = timm.create_model("dil_resnet18", num_classes=1, **TINY)
    recipe = Recipe(model="dil_resnet18", amp=amp, amp_dtype=dtype, epochs=1)
    folder = save_pretrained(model, tmp_path / "m", training=training_record(recipe.to_dict(), epoch=1, data="x.csv"))
    card = (folder / "README.md").read_text()
    assert expected in card
    precision = next(line for line in card.splitlines() if line.startswith("| precision |"))
    assert absent not in precision


def test_a_run_records_the_precision_it_trained_in_and_the_card_states_it(tmp_path):
    """A CPU run with amp on (the default recipe) trains in float32: its record and card say so."""
    from dynsnip.engine import train
    from test_engine_train import TINY as ENGINE_TINY, Clips, tiny_recipe

    train(tiny_recipe(epochs=1, amp=True), Clips(), None, tmp_path / "run", model_kwargs=ENGINE_TINY, device="cpu",
          progress=False, log=None)
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["training"]["precision"] == "float32"
    assert "| precision | float32 |" in (tmp_path / "run" / "model" / "README.md").read_text()


def test_frame_level_and_deepfakebench_metrics_rank_saturated_scores_by_their_logits():
    from dynsnip.engine.frame_level import frame_level_report
    from dynsnip.integrations.deepfakebench import _batch_metrics

    # float32 sigmoid is 1.0 from logit ~17: reals at 20, 30; fakes at 25, 40 -> AUC 0.75 by the logits
    frames = [torch.tensor([20.0]), torch.tensor([25.0]), torch.tensor([30.0]), torch.tensor([40.0])]
    videos = [{"id": str(i), "label": y} for i, y in enumerate((0, 1, 0, 1))]
    assert frame_level_report(frames, videos)["overall"]["auc"] == pytest.approx(0.75)
    logits = torch.cat(frames)
    probs = torch.sigmoid(logits)
    assert bool((probs == 1.0).all())
    labels = torch.tensor([0.0, 1.0, 0.0, 1.0])
    assert _batch_metrics(probs, labels)["auc"] == pytest.approx(0.5)  # what ranking the probabilities gives
    assert _batch_metrics(probs, labels, logits)["auc"] == pytest.approx(0.75)
