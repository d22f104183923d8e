"""The training engine: the paper's recipe, plateau lr drops, exact resume, pickle-free
checkpoints, model sources, flip as the only augmentation."""
from __future__ import annotations

import json
import math

import pytest
import timm
import torch
from torch.utils.data import Dataset

import dynsnip  # noqa: F401  (registers dil_*)
from dynsnip.engine import Recipe, build_model, evaluate, train
import importlib

train_module = importlib.import_module("dynsnip.engine.train")
from dynsnip.engine.checkpoint import find_training_checkpoint, load_training_checkpoint, save_training_checkpoint
from dynsnip.engine.evaluate import EvalResult
from dynsnip.engine.metrics import video_metrics

TINY = dict(channels=(8, 16, 32, 64), stem_width=8)  # a narrow ResNet-18: milliseconds per step


class Clips(Dataset):
    """Deterministic clips (3, U*T, 16, 16); fakes flicker frame to frame, reals do not."""

    def __init__(self, n: int = 8, frames: int = 4, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, 1, 16, 16, generator=g).repeat(1, 1, frames, 1, 1)
        self.y = torch.arange(n) % 2
        flicker = torch.randn(n, 1, frames, 1, 1, generator=g)
        self.x = self.x + self.y.view(n, 1, 1, 1, 1) * flicker

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i].float()


def tiny_recipe(**changes) -> Recipe:
    base = dict(model="dil_resnet18", pretrained=False, epochs=2, batch_size=4, lr=1e-3, num_snippets=1,
                test_num_snippets=1, img_size=16, amp=False, num_workers=0, seed=3)
    return Recipe(**{**base, **changes})


def run(recipe, out, val=None, **kw):
    return train(recipe, Clips(), val, out, model_kwargs=TINY, device="cpu", progress=False, log=None, **kw)


def test_recipe_defaults_are_the_papers():
    r = Recipe()
    assert (r.lr, r.batch_size, r.epochs, r.lr_factor, r.hflip_prob) == (1e-4, 10, 30, 0.1, 0.5)
    assert (r.num_snippets, r.snippet_len, r.test_num_snippets, r.img_size) == (4, 4, 8, 224)
    assert r.model == "dil_resnet50.tv_in1k" and r.num_classes == 1 and r.weight_decay == 0
    assert Recipe.from_dict(json.loads(r.to_json())) == r
    from dynsnip.engine import PAPER_RECIPE  # the paper's recipe is the paper's module too; Recipe() is dynsnip's

    assert PAPER_RECIPE.module_config == "paper" and r.module_config == "default"
    assert PAPER_RECIPE.replace(module_config="default") == r


@pytest.mark.parametrize("change, message", [
    (dict(lr=0), "lr must be > 0"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(lr_factor=10), "lr_factor must be in \\(0, 1\\)"),
    (dict(monitor="f1"), "monitor must be one of"),
    (dict(hflip_prob=2), "hflip_prob must be in"),
])
def test_recipe_rejects_bad_settings(change, message):
    with pytest.raises(ValueError, match=message):
        Recipe(**change)
    with pytest.raises(ValueError, match="unknown recipe settings \\['colour_jitter'\\]"):
        Recipe.from_dict({"colour_jitter": 0.4})


def test_lr_is_divided_by_10_when_validation_auc_plateaus(tmp_path, monkeypatch):
    aucs = iter([0.6, 0.7, 0.7, 0.7, 0.7])  # improves once, then saturates

    def scripted_eval(model, dataset, **kw):
        auc = next(aucs)
        report = video_metrics([0.0, 1.0], [0, 1])
        report["overall"]["auc"] = auc
        report["loss"], report["seconds"] = 0.5, 0.0
        return EvalResult(report=report, predictions=[])

    monkeypatch.setattr(train_module, "evaluate", scripted_eval)
    result = run(tiny_recipe(epochs=5, plateau_patience=1), tmp_path / "run", val=Clips(4))
    lrs = [h["lr"] for h in result.history]
    # epoch 3 and 4 do not improve on 0.7: after 2 > patience bad epochs the lr drops for epoch 5
    assert lrs == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3, 1e-4])
    assert result.best == {"epoch": 2, "metric": "auc", "value": 0.7}
    assert json.loads((tmp_path / "run" / "val_report.json").read_text())["epoch"] == 2


def test_no_drop_while_the_metric_improves(tmp_path, monkeypatch):
    aucs = iter([0.6, 0.7, 0.8, 0.9])

    def scripted_eval(model, dataset, **kw):
        report = video_metrics([0.0, 1.0], [0, 1])
        report["overall"]["auc"], report["loss"], report["seconds"] = next(aucs), 0.5, 0.0
        return EvalResult(report=report, predictions=[])

    monkeypatch.setattr(train_module, "evaluate", scripted_eval)
    result = run(tiny_recipe(epochs=4, plateau_patience=0), tmp_path / "run", val=Clips(4))
    assert [h["lr"] for h in result.history] == pytest.approx([1e-3] * 4)
    assert result.best["epoch"] == 4


def test_resume_continues_exactly_from_the_saved_epoch(tmp_path, monkeypatch):
    straight = run(tiny_recipe(epochs=3), tmp_path / "straight")
    first = run(tiny_recipe(epochs=3), tmp_path / "killed", stop_after_epoch=1)
    assert [h["epoch"] for h in first.history] == [1]
    # resuming must not unpickle anything
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load used while resuming"))
    resumed = run(tiny_recipe(epochs=3), tmp_path / "killed")
    assert resumed.resumed_from == 1 and [h["epoch"] for h in resumed.history] == [1, 2, 3]
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["train_loss"] for h in straight.history] == [h["train_loss"] for h in resumed.history]
    # the run directory holds the hub-layout model and the checkpoint of the last epoch
    assert (tmp_path / "killed" / "model" / "config.json").is_file()
    assert load_training_checkpoint(tmp_path / "killed" / "checkpoint")["epoch"] == 3


class NoisyClips(Clips):
    """Items drawn from torch's global generator, as training augmentation is."""

    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return x + 0.1 * torch.rand(()), y


def test_progress_bars_do_not_change_the_data_a_seeded_epoch_sees(tmp_path):
    runs = [train(tiny_recipe(epochs=1), NoisyClips(), None, tmp_path / str(p), model_kwargs=TINY, device="cpu",
                  progress=p, log=None) for p in (False, True)]
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_no_resume_starts_over_only_with_overwrite(tmp_path):
    run(tiny_recipe(epochs=1), tmp_path / "run")
    with pytest.raises(FileExistsError, match="not empty .* --overwrite"):
        run(tiny_recipe(epochs=1), tmp_path / "run", resume=False)
    again = run(tiny_recipe(epochs=1), tmp_path / "run", resume=False, overwrite=True)
    assert again.resumed_from == 0 and len(again.history) == 1


def test_checkpoint_roundtrip_and_interrupted_writes(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"epoch": 4, "best": {"value": float("inf")}, "betas": (0.9, 0.999)}
    ckpt = tmp_path / "checkpoint"
    save_training_checkpoint(ckpt, model_state=model.state_dict(), optimizer_state=opt.state_dict(), state=state)
    loaded = load_training_checkpoint(ckpt)
    assert loaded["epoch"] == 4 and loaded["best"]["value"] == float("inf") and loaded["betas"] == (0.9, 0.999)
    fresh = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1e-3)
    fresh.load_state_dict(loaded["optimizer"])
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert fresh.state_dict()["param_groups"][0]["betas"] == (0.9, 0.999)
    # a kill between the two renames leaves only "<name>.old": it is still found
    ckpt.rename(tmp_path / "checkpoint.old")
    (tmp_path / "checkpoint.tmp").mkdir()  # a half-written one is ignored
    assert find_training_checkpoint(ckpt) == tmp_path / "checkpoint.old"
    assert find_training_checkpoint(tmp_path / "nothing") is None


def test_model_sources_and_saved_layout(tmp_path):
    result = run(tiny_recipe(epochs=1, num_snippets=2, test_num_snippets=3), tmp_path / "run")
    config = json.loads((result.model_dir / "config.json").read_text())
    # the saved config tells data pipelines the training layout and crop size
    assert config["model_args"]["num_snippets"] == 2 and config["model_args"]["test_num_snippets"] == 3
    assert config["pretrained_cfg"]["input_size"] == [3, 16, 16]
    x = torch.randn(1, 3, 8, 16, 16)
    want = result.model.eval()(x)
    for source in (tmp_path / "run", result.model_dir, result.model_dir / "model.safetensors"):
        assert torch.allclose(build_model(source).eval()(x), want, atol=1e-6), source
    # a bare .safetensors file knows its architecture from its metadata
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes((result.model_dir / "model.safetensors").read_bytes())
    assert torch.allclose(build_model(lone, **TINY).eval()(x), want, atol=1e-6)
    pth = tmp_path / "weights.pth"
    pth.write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="only .safetensors"):
        build_model(pth)
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        build_model("./missing/run")


def test_snippet_len_and_head_must_fit_the_recipe(tmp_path):
    with pytest.raises(ValueError, match="snippet_len T=4 but the model was built with snippet_len=2"):
        train(tiny_recipe(), Clips(), None, tmp_path, model=timm.create_model("dil_resnet18", snippet_len=2, num_classes=1, **TINY),
              device="cpu", progress=False, log=None)
    with pytest.raises(ValueError, match="num_classes=2"):
        train(tiny_recipe(), Clips(), None, tmp_path, model=timm.create_model("dil_resnet18", num_classes=2, **TINY),
              device="cpu", progress=False, log=None)


def test_frame_level_baseline_starts_from_the_same_weights():
    torch.manual_seed(0)
    dil = timm.create_model("dil_resnet18", num_classes=1, **TINY)
    torch.manual_seed(0)
    frame = timm.create_model("dil_resnet18", num_classes=1, sim_stages=(), **TINY)
    d, f = dil.state_dict(), frame.state_dict()
    assert set(f) < set(d) and all(".sim." in k for k in set(d) - set(f))
    for k in f:
        assert torch.equal(f[k], d[k]), k
    # and it is frame-level: shuffling the frames of a clip does not change its logit
    x = torch.randn(2, 3, 8, 16, 16)
    frame.eval()
    assert torch.allclose(frame(x), frame(x[:, :, torch.randperm(8)]), atol=1e-5)


def test_evaluate_reports_video_level_metrics(tmp_path):
    model = timm.create_model("dil_resnet18", num_classes=1, **TINY)
    result = evaluate(model, Clips(6), batch_size=4, device="cpu", progress=False)
    assert result.report["overall"]["num_videos"] == 6 and 0 <= result.auc <= 1
    assert [p["id"] for p in result.predictions] == [str(i) for i in range(6)]
    assert model.training  # evaluate restores the mode
    with pytest.raises(ValueError, match="expected \\(B, 1\\)"):
        evaluate(timm.create_model("dil_resnet18", num_classes=3, **TINY), Clips(2), device="cpu", progress=False)
    # a (real, fake) head is scored as predict scores it: softmax's fake probability = sigmoid(l_fake - l_real)
    two = timm.create_model("dil_resnet18", num_classes=2, **TINY).eval()
    two_report = evaluate(two, Clips(2), device="cpu", progress=False).predictions
    assert len(two_report) == 2 and all(0.0 <= p["score"] <= 1.0 for p in two_report)


class PartlyUnreadable(Clips):
    """Clips whose items in ``bad`` fail as a corrupt video or a missing frame folder would."""

    def __init__(self, bad, n: int = 8, calls=None):
        super().__init__(n)
        self.bad = dict(bad)
        self.calls = calls if calls is not None else []

    def __getitem__(self, i):
        self.calls.append(i)
        if i in self.bad:
            from dynsnip.data.errors import CorruptVideoError

            if self.bad[i] == "corrupt":
                raise CorruptVideoError(f"video_{i}.mp4", "moov atom not found")
            raise FileNotFoundError(f"faces/video_{i}: expected a folder of face frames")
        return super().__getitem__(i)


def test_evaluate_reports_unreadable_videos_and_scores_the_rest():
    model = timm.create_model("dil_resnet18", num_classes=1, **TINY).eval()
    clean = evaluate(model, Clips(6), batch_size=4, device="cpu", progress=False)
    # items 1 and 4 cannot be read: one inside each batch of 4
    result = evaluate(model, PartlyUnreadable({1: "corrupt", 4: "missing"}, n=6), batch_size=4, device="cpu",
                      progress=False)
    assert result.report["num_failed"] == 2
    assert [(f["id"], f["reason"]) for f in result.failures] == [("1", "corrupt"), ("4", "not_found")]
    assert "moov atom not found" in result.failures[0]["message"]
    # the four readable videos are scored exactly as without the bad ones
    scores = {p["id"]: p["score"] for p in clean.predictions}
    assert [p["id"] for p in result.predictions] == ["0", "2", "3", "5"]
    assert all(p["score"] == pytest.approx(scores[p["id"]], abs=1e-6) for p in result.predictions)
    assert result.report["overall"]["num_videos"] == 4
    with pytest.raises(ValueError, match="none of the 2 evaluation videos could be read"):
        evaluate(model, PartlyUnreadable({0: "corrupt", 1: "missing"}, n=2), device="cpu", progress=False)


def test_training_skips_unreadable_clips_and_stops_when_most_fail(tmp_path):
    calls: list[int] = []
    bad = PartlyUnreadable({2: "corrupt"}, calls=calls)
    logged: list[str] = []
    result = train(tiny_recipe(epochs=2), bad, PartlyUnreadable({1: "corrupt"}, n=4), tmp_path / "run",
                   model_kwargs=TINY, device="cpu", progress=False, log=logged.append)
    assert all(h["val_failed"] == [{"id": "1", "reason": "corrupt", "message": "moov atom not found",
                                    "label": None, "method": None}]  # Clips names no label or method
               for h in result.history)
    assert any("1 validation video(s) could not be read" in line for line in logged)
    assert any("skipped 1 of 8 training clips" in line for line in logged)
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert all(h["skipped"] == [{"id": "2", "reason": "corrupt", "message": "moov atom not found"}]
               for h in result.history)
    assert sorted(calls) == sorted(list(range(8)) * 2)  # every clip was tried in every epoch
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[0]["skipped"][0]["id"] == "2"

    mostly_bad = PartlyUnreadable({i: "missing" for i in range(5)})
    with pytest.raises(RuntimeError, match="5 of the 8 training clips could not be read in epoch 1"):
        train(tiny_recipe(), mostly_bad, None, tmp_path / "bad", model_kwargs=TINY, device="cpu",
              progress=False, log=None)


def test_grad_checkpointing_trains_the_same_weights(tmp_path):
    plain = run(tiny_recipe(epochs=1), tmp_path / "plain")
    ckpt = run(tiny_recipe(epochs=1, grad_checkpointing=True), tmp_path / "ckpt")
    assert ckpt.model.grad_checkpointing and not plain.model.grad_checkpointing
    start = build_model("dil_resnet18", pretrained=False, **TINY)
    moved = 0
    for (name, a), b in zip(plain.model.named_parameters(), ckpt.model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
        moved += not torch.equal(a, dict(start.named_parameters())[name])
    assert moved > 0
    for (name, a), b in zip(plain.model.named_buffers(), ckpt.model.buffers()):  # BatchNorm statistics too
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)


def test_history_json_is_standard_json_when_a_metric_is_undefined(tmp_path):
    """A validation set of one class (monitor: loss) has no AUC: history.json holds null there, not
    NaN, which strict parsers (jq, browsers) reject."""
    from torch.utils.data import Subset

    reals = Subset(Clips(8), [0, 2, 4, 6])
    result = train(tiny_recipe(epochs=1, monitor="loss"), Clips(8), reals, tmp_path / "run", model_kwargs=TINY,
                   device="cpu", progress=False, log=lambda line: None)
    assert math.isnan(result.history[0]["val"]["auc"])  # in memory: the value as computed
    text = (tmp_path / "run" / "history.json").read_text()
    assert "NaN" not in text
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in history.json"))[0]["val"]["auc"] is None


class ReadableOnce(Clips):
    """A validation set whose videos can be read once (the check before training), then never
    again, as when its disk goes away during the first epoch."""

    def __init__(self, n: int = 4):
        super().__init__(n)
        self.reads = 0

    def __getitem__(self, i):
        self.reads += 1
        if self.reads > 1:
            raise FileNotFoundError(f"faces/video_{i}: expected a folder of face frames")
        return super().__getitem__(i)


def test_an_unreadable_validation_set_stops_training_and_keeps_the_epoch(tmp_path):
    """A validation set of which nothing can be read is refused before the first epoch (nothing
    trained); found by an epoch's validation, the run stops with that epoch's checkpoint kept,
    and the same call resumes after it once the data is back."""
    from dynsnip.engine.failures import ValidationUnreadableError

    calls: list[int] = []
    with pytest.raises(ValidationUnreadableError, match="none of the 4 validation videos could be read .*not_found 2"):
        train(tiny_recipe(), PartlyUnreadable({}, calls=calls),
              PartlyUnreadable({0: "corrupt", 1: "corrupt", 2: "missing", 3: "missing"}, n=4),
              tmp_path / "early", model_kwargs=TINY, device="cpu", progress=False, log=None)
    assert calls == [] and not (tmp_path / "early" / "checkpoint").exists()  # no clip was trained on

    out = tmp_path / "run"
    logged: list[str] = []
    with pytest.raises(ValidationUnreadableError, match="could be read or scored in epoch 1 .*kept in"):
        train(tiny_recipe(epochs=2), Clips(), ReadableOnce(), out, model_kwargs=TINY, device="cpu", progress=False,
              log=logged.append)
    assert any("none of the 4 validation videos could be read or scored" in line for line in logged)
    assert load_training_checkpoint(out / "checkpoint")["epoch"] == 1  # the epoch's training is kept
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1] and len(history[0]["val_failed"]) == 4 and "val" not in history[0]
    resumed = run(tiny_recipe(epochs=2), out, val=Clips(4))
    assert resumed.resumed_from == 1 and [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.best["epoch"] == 2


class NoisyFlippedClips(NoisyClips):
    """Items that draw from torch's, numpy's and Python's global generators, as snippet
    offsets, flips and other augmentations do."""

    def __getitem__(self, i):
        import random

        import numpy as np

        x, y = super().__getitem__(i)
        return x + 0.1 * float(np.random.rand()) - 0.1 * random.random(), y


@pytest.mark.parametrize("pseudo_fakes", [None, "spatial"])
def test_the_worker_count_does_not_change_what_an_epoch_trains_on(tmp_path, pseudo_fakes):
    """Each item's random draws (and each batch's pseudo-fakes) come from (seed, epoch, index),
    not from the process that reads them: --workers 0 and --workers 2 train the same weights
    (they used to see other snippets, flips and pseudo-fakes)."""
    runs = [train(tiny_recipe(epochs=1, num_workers=workers, pseudo_fakes=pseudo_fakes), NoisyFlippedClips(),
                  None, tmp_path / str(workers), model_kwargs=TINY, device="cpu", progress=False, log=None)
            for workers in (0, 2)]
    a, b = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert runs[0].history[0]["train_loss"] == runs[1].history[0]["train_loss"]


def test_default_patience_drops_the_lr_after_3_epochs_without_improvement_as_documented(tmp_path, monkeypatch):
    """patience 2 is PyTorch's: two epochs without improvement are tolerated, the third drops the
    lr (for the next epoch). docs/training.md and the model card used to say 2 epochs."""
    from pathlib import Path

    aucs = iter([0.7, 0.7, 0.7, 0.7, 0.7])  # epoch 1 is the best; 2, 3, 4 do not improve

    def scripted_eval(model, dataset, **kw):
        report = video_metrics([0.0, 1.0], [0, 1])
        report["overall"]["auc"], report["loss"], report["seconds"] = next(aucs), 0.5, 0.0
        return EvalResult(report=report, predictions=[])

    monkeypatch.setattr(train_module, "evaluate", scripted_eval)
    result = run(tiny_recipe(epochs=5), tmp_path / "run", val=Clips(4))
    assert Recipe().plateau_patience == 2
    assert [h["lr"] for h in result.history] == pytest.approx([1e-3, 1e-3, 1e-3, 1e-3, 1e-4])
    docs = (Path(__file__).parents[1] / "docs" / "training.md").read_text()
    assert "has not improved\nby 0.1 % (relative) for 3 epochs in a row" in docs
    assert "after 3 epochs without improvement: patience 2" in docs
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "has not improved for 3 epochs" in card


def test_a_trained_detector_of_other_input_channels_is_saved_with_them(tmp_path):
    """save_model recorded `input_size` with 3 channels whatever the model took, so a grey (in_chans=1) detector
    trained by `dynsnip train` was refused at save (config.json would not rebuild it)."""
    from dynsnip.engine.train import save_model

    model = timm.create_model("dil_resnet18", num_classes=1, in_chans=1, **TINY)
    folder = save_model(model, tmp_path / "grey", Recipe(model="dil_resnet18", img_size=32))
    assert json.loads((folder / "config.json").read_text())["pretrained_cfg"]["input_size"] == [1, 32, 32]
    assert dynsnip.load_model(folder).conv1.in_channels == 1
