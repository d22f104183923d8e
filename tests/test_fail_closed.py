"""Fail closed (issue 12, items 1, 2, 3, 11, 12, 14, 16): a NaN is a reported failure, never a
verdict; a saved detector loads completely or not at all; a nonsense config.json, a pickle, a
corrupt file or an unreachable Hub is a one-line error that names the file and what is expected."""
from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import safetensors.torch
import timm
import torch
from torch.utils.data import Dataset

import dynsnip  # noqa: F401  (registers dil_*)
from dynsnip.cli import main
from dynsnip.engine import evaluate, train
from dynsnip.engine.checkpoint import CorruptCheckpointError
from dynsnip.engine.divergence import NonFiniteLossError
from dynsnip.engine.failures import SkipUnreadable
from dynsnip.hub import CheckpointMismatchError, InvalidConfigError, NotCachedError, load_model, save_pretrained
from dynsnip.hub.validate import accepted_model_args, config_problems
from dynsnip.models import DILResNet
from dynsnip.scoring import predict_videos
from test_cli_train import TINY_ARGS, manifest  # noqa: F401 (fixture)
from test_engine_train import TINY, Clips, run, tiny_recipe

SMALL = dict(snippet_len=2, num_snippets=1, test_num_snippets=2)


def small_detector(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("dil_test_resnet", num_classes=1, **SMALL).eval()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save_pretrained(small_detector(), tmp_path / "detector")


def one_line_error(captured: str) -> str:
    lines = [line for line in captured.splitlines() if line.strip()]
    assert len(lines) == 1, captured
    return lines[0]


# ------------------------------------------------------------- item 1: NaN is not a verdict
class Constant(torch.nn.Module):
    """Returns the mean pixel of each clip as its logit: NaN for a clip holding NaN is impossible
    here (inputs are checked first), so NaN comes from ``nan_for`` (a broken model's output)."""

    def __init__(self, nan_for: set[int]):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        self.nan_for = nan_for

    def forward(self, x):
        ids = x[:, 0, 0, 0, 0].round().long().tolist()
        out = x.mean(dim=(1, 2, 3, 4)) * self.w
        return torch.stack([torch.tensor(math.nan) if i in self.nan_for else v for i, v in zip(ids, out)])[:, None]


class Tagged(Dataset):
    """Item i: a clip whose first pixel is i (the Constant model reads it back), label i % 2."""

    def __init__(self, n: int = 6, bad_input: set[int] = frozenset()):
        self.n, self.bad_input = n, bad_input

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        x = torch.full((3, 2, 4, 4), 0.5 * (i % 2) - 0.2)
        x[0, 0, 0, 0] = i
        if i in self.bad_input:
            x[1, 1, 2, 2] = math.inf
        return x, float(i % 2)


def test_evaluate_reports_nan_logits_as_failures_not_scores():
    result = evaluate(Constant(nan_for={1, 4}), Tagged(), batch_size=4, device="cpu", progress=False)
    assert result.report["num_failed"] == 2
    assert {(f["id"], f["reason"]) for f in result.failures} == {("1", "non_finite_output"), ("4", "non_finite_output")}
    assert "expected a finite number" in result.failures[0]["message"]
    assert sorted(p["id"] for p in result.predictions) == ["0", "2", "3", "5"]
    assert all(math.isfinite(p["score"]) for p in result.predictions)
    assert result.report["overall"]["num_videos"] == 4 and math.isfinite(result.loss)
    with pytest.raises(ValueError, match="none of the 6 evaluation videos could be read or scored"):
        evaluate(Constant(nan_for=set(range(6))), Tagged(), batch_size=4, device="cpu", progress=False)


class FakeLoader:
    """FaceClipLoader stand-in: a clip of the model's layout (NaN pixels for names containing 'nan')."""

    num_snippets, snippet_len = 2, 2

    def __call__(self, path):
        from dynsnip.data.pipeline import FaceClip

        pixels = torch.zeros(3, 4, 32, 32)
        if "nan" in Path(path).name:
            pixels[0, 0, 0, 0] = math.nan
        u, t = self.num_snippets, self.snippet_len
        return FaceClip(pixels=pixels, frame_indices=torch.arange(u * t).view(u, t), crop_boxes=torch.zeros(u, 4, dtype=torch.long),
                        face_found=torch.ones(u, dtype=torch.bool), timestamps=torch.zeros(u, t, dtype=torch.float64),
                        num_frames=8, fps=25.0)


def test_predict_reports_nan_output_and_nan_input_as_failures():
    model = small_detector()
    good, = predict_videos(model, ["ok.mp4"], loader=FakeLoader(), workers=0)
    assert good["status"] == "ok" and math.isfinite(good["fake_probability"])
    with torch.no_grad():
        model.fc.bias.fill_(math.nan)  # as NaN weights or an fp16 overflow would
    results = predict_videos(model, ["ok.mp4", "nan.mp4"], loader=FakeLoader(), workers=0)
    assert [r["status"] for r in results] == ["error", "error"]
    assert [r["reason"] for r in results] == ["non_finite_output", "non_finite_input"]
    assert "not finite" in results[0]["error"] and "1 of 12288 input values are NaN" in results[1]["error"]
    assert "verdict" not in results[0] and "fake_probability" not in results[0]
    json.dumps(results, allow_nan=False)  # valid JSON: no bare NaN


def test_predict_command_with_nan_weights_fails_the_video_and_writes_valid_json(tmp_path, capsys):
    from video_fixtures import two_people

    model = timm.create_model("dil_resnet18", num_classes=1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["fc.bias"] = torch.tensor([math.nan])
    weights = tmp_path / "nan.safetensors"
    safetensors.torch.save_file(state, str(weights))
    out = tmp_path / "report.json"
    args = ["predict", str(two_people()), "--model", "dil_resnet18", "--checkpoint", str(weights),
            "--snippets", "1", "--face-detector", "none", "--json", "--output", str(out), "--no-progress"]
    assert main(args) == 2 and not out.exists()  # NaN weights are refused when the detector loads
    assert "non-finite weights" in capsys.readouterr().err
    # finite weights whose output overflows (a head of 1e38s on positive features): the video fails, no verdict
    state["fc.bias"] = torch.zeros(1)
    state["fc.weight"] = torch.full_like(state["fc.weight"], 1e38)
    safetensors.torch.save_file(state, str(weights))
    code = main(args)
    assert code == 1  # a failed video, not a verdict
    report = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"bare {c} in the JSON"))
    assert report["videos"][0]["reason"] == "non_finite_output" and report["summary"]["failed"] == 1
    assert "NaN" not in capsys.readouterr().out.replace("NaN / inf", "")


class NanLabels(Clips):
    """Clips whose labels turn NaN: the loss is NaN from the first step."""

    def __getitem__(self, i):
        x, _ = super().__getitem__(i)
        return x, torch.tensor(math.nan)


def test_training_stops_on_a_nan_loss_and_keeps_the_last_finite_weights(tmp_path):
    out = tmp_path / "run"
    run(tiny_recipe(epochs=2), out, stop_after_epoch=1)
    kept = {p.name: p.read_bytes() for p in (out / "model").iterdir()}
    checkpoint = (out / "checkpoint" / "model.safetensors").read_bytes()
    with pytest.raises(NonFiniteLossError) as caught:
        train(tiny_recipe(epochs=2), NanLabels(), None, out, model_kwargs=TINY, device="cpu", progress=False, log=None)
    err = caught.value
    assert (err.epoch, err.step) == (2, 1) and len(err.clips) == 4
    message = str(err)
    assert "the loss is nan at epoch 2, step 1" in message and "checkpoint/ keep the last finite weights" in message
    assert all(c in message for c in err.clips)  # the clips of the batch are named
    assert {p.name: p.read_bytes() for p in (out / "model").iterdir()} == kept
    assert (out / "checkpoint" / "model.safetensors").read_bytes() == checkpoint
    weights = safetensors.torch.load_file(str(out / "model" / "model.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_train_command_exits_non_zero_on_a_diverging_loss(manifest, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    code = main(["train", "--manifest", str(manifest), "--out", str(out), *TINY_ARGS, "--batch-size", "2",
                 "--img-size", "16", "--num-snippets", "1", "--test-num-snippets", "1", "--workers", "0",
                 "--no-progress", "--epochs", "1", "--lr", "1e30"])
    captured = capsys.readouterr()
    assert code == 1
    error = one_line_error(captured.err)
    assert error.startswith("dynsnip train: error: training stopped: the loss is") and "epoch 1, step 2" in error
    assert "done:" not in captured.out and "publish" not in captured.out
    assert not (out / "model").exists()  # nothing non-finite was saved


def test_save_pretrained_and_push_refuse_non_finite_weights(tmp_path, capsys, saved):
    model = small_detector()
    with torch.no_grad():
        model.layer2[0].conv1.weight[0, 0, 0, 0] = math.inf
        model.fc.weight.fill_(math.nan)
    with pytest.raises(ValueError, match=r"non-finite weights: 2 of \d+ tensors hold NaN or inf \(layer2.0.conv1.weight, fc.weight\)"):
        save_pretrained(model, tmp_path / "nan")
    assert not (tmp_path / "nan").exists()
    with pytest.raises(ValueError, match="non-finite weights"):
        dynsnip.push_to_hub(model, "me/nan", token="hf_test")  # refused before the Hub is contacted
    state = safetensors.torch.load_file(str(saved / "model.safetensors"))
    state["fc.bias"] = torch.tensor([math.nan])
    safetensors.torch.save_file(state, str(saved / "model.safetensors"))
    assert main(["push", str(saved), "me/nan", "--token", "hf_test"]) == 2
    error = one_line_error(capsys.readouterr().err)
    assert "non-finite weights" in error and "fc.bias" in error


def test_predict_refuses_a_weights_file_holding_nan_or_inf(tmp_path, saved):
    """`predict --checkpoint FILE.safetensors` (beside a config.json, or alone with the model's name) loads
    weights without load_model's check: an infinite BatchNorm variance gave a finite, wrong verdict."""
    from dynsnip.cli.predict import load_detector

    state = safetensors.torch.load_file(str(saved / "model.safetensors"))
    state["layer1.0.bn1.running_var"] = torch.full_like(state["layer1.0.bn1.running_var"], math.inf)
    safetensors.torch.save_file(state, str(saved / "epoch3.safetensors"))
    safetensors.torch.save_file(state, str(tmp_path / "alone.safetensors"))
    for model, weights in ((None, saved / "epoch3.safetensors"), ("dil_test_resnet", tmp_path / "alone.safetensors")):
        with pytest.raises(ValueError, match=r"non-finite weights, holding NaN or inf \(layer1.0.bn1.running_var\)"):
            load_detector(model, str(weights))


# ---------------------------------------------------- item 16: non-finite input clips
def test_non_finite_input_clips_are_failed_items_before_any_forward():
    items = SkipUnreadable(Tagged(bad_input={2}))
    assert items[2].reason == "non_finite_input" and "1 of 96 input values are NaN or infinite" in items[2].message
    assert isinstance(items[1], tuple)
    result = evaluate(Constant(nan_for=set()), Tagged(bad_input={2}), batch_size=3, device="cpu", progress=False)
    assert [(f["id"], f["reason"]) for f in result.failures] == [("2", "non_finite_input")]


class OnePoisonedClip(Clips):
    def __getitem__(self, i):
        x, y = super().__getitem__(i)
        return (torch.full_like(x, math.nan) if i == 5 else x), y


def test_training_skips_a_nan_clip_and_batchnorm_statistics_stay_finite(tmp_path):
    result = train(tiny_recipe(epochs=1), OnePoisonedClip(), None, tmp_path / "run", model_kwargs=TINY, device="cpu",
                   progress=False, log=None)
    assert [(s["id"], s["reason"]) for s in result.history[0]["skipped"]] == [("5", "non_finite_input")]
    stats = [b for name, b in result.model.named_buffers() if "running_" in name]
    assert stats and all(torch.isfinite(b).all() for b in stats)


class RealsOnly(Clips):
    """Validation clips that all turn out real when read (their labels are not known up front, so no
    check before the run sees it): every epoch's AUC is undefined."""

    def __getitem__(self, i):
        x, _ = super().__getitem__(i)
        return x, torch.tensor(0.0)


def test_an_undefined_validation_auc_neither_lowers_the_lr_nor_counts_as_no_improvement(tmp_path):
    logged = []
    train(tiny_recipe(epochs=3, plateau_patience=0), Clips(), RealsOnly(n=4), tmp_path / "run", model_kwargs=TINY,
          device="cpu", progress=False, log=logged.append)
    assert not (tmp_path / "run" / "model").exists()  # no epoch had a metric: none is the best (the command says so)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [h["lr"] for h in history] == [1e-3] * 3  # was 1e-3, 1e-4, 1e-5: a NaN read as "no improvement"
    assert sum("the validation auc is undefined" in line for line in logged) == 3


def test_a_nan_loss_in_the_first_epoch_says_that_nothing_was_saved(tmp_path):
    with pytest.raises(NonFiniteLossError) as caught:
        train(tiny_recipe(epochs=2), NanLabels(), None, tmp_path / "run", model_kwargs=TINY, device="cpu",
              progress=False, log=None)
    message = str(caught.value)
    assert "nothing was saved (no epoch finished)" in message and "checkpoint/" not in message


class OneUnreadableFake(Clips):
    def __getitem__(self, i):
        if i == 3:
            raise FileNotFoundError("clip 3 is gone")
        return super().__getitem__(i)

    @property
    def labels(self):
        return self.y.tolist()


def test_the_card_counts_the_training_clips_that_were_read(tmp_path):
    out = tmp_path / "run"
    train(tiny_recipe(epochs=1), OneUnreadableFake(), None, out, model_kwargs=TINY, device="cpu", progress=False,
          log=None)
    record = json.loads((out / "model" / "config.json").read_text())["training"]
    assert (record["num_train_clips"], record["num_train_real"], record["num_train_fake"]) == (7, 4, 3)
    history = json.loads((out / "history.json").read_text())
    assert history[0]["trained"] == {"real": 4, "fake": 3}


# --------------------------------------------------------- item 2: strict loading
@pytest.mark.parametrize("dropped, shown", [("fc.", "2 tensors missing (fc.weight, fc.bias)"),
                                            (".sim.", "tensors missing (layer")])
def test_a_saved_detector_missing_tensors_is_refused(saved, dropped, shown):
    state = safetensors.torch.load_file(str(saved / "model.safetensors"))
    safetensors.torch.save_file({k: v for k, v in state.items() if dropped not in k}, str(saved / "model.safetensors"))
    with pytest.raises(CheckpointMismatchError) as caught:
        load_model(saved)
    message = str(caught.value)
    assert message.startswith(f"model.safetensors of directory '{saved}' does not fit dil_test_resnet: ")
    assert shown in message and "must hold every tensor of its architecture" in message
    assert "(weights from" not in message and len(message) < 800
    with pytest.raises(ValueError, match="tensors missing"):  # plain timm too
        timm.create_model(f"local-dir:{saved}", pretrained=True)


def test_imagenet_adaptation_still_starts_new_sims_and_head():
    """The 2D path: no SIM tensors, another head: loads (the SIMs keep their initialisation)."""
    from dynsnip.models.dil_resnet import checkpoint_filter_fn

    model = small_detector()
    state_2d = {k: v for k, v in timm.create_model("test_resnet").state_dict().items() if not k.startswith("fc.")}
    loaded = checkpoint_filter_fn(state_2d, model)
    assert torch.equal(loaded["layer1.0.sim.sma.squeeze.weight"], model.state_dict()["layer1.0.sim.sma.squeeze.weight"])
    with pytest.raises(ValueError, match="2 tensors missing"):  # with SIMs, it is a saved detector: strict
        checkpoint_filter_fn({k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}, model)


# --------------------------------------------------------- item 3: config.json
@pytest.mark.parametrize("edit, shown", [
    (lambda c: c.update(num_classes=-1), "num_classes = -1: expected an integer >= 1"),
    (lambda c: c["model_args"].update(test_num_snippets=0), "model_args.test_num_snippets = 0: expected an integer from 1 to 256"),
    (lambda c: c["model_args"].update(test_num_snippets=1e6), "model_args.test_num_snippets = 1000000.0"),
    (lambda c: c["pretrained_cfg"].update(input_size=[3, 100000, 100000]), "pretrained_cfg.input_size = [3, 100000, 100000]: expected"),
    (lambda c: c["pretrained_cfg"].update(mean="abc"), "pretrained_cfg.mean = 'abc': expected a list of 3 finite numbers"),
    (lambda c: c["pretrained_cfg"].update(std=[0, 0, 0]), "pretrained_cfg.std = [0, 0, 0]: expected a list of 3 positive numbers"),
    (lambda c: c["model_args"].update(snippet_lenght=4), "model_args has unknown key(s) ['snippet_lenght']"),
])
def test_nonsense_config_is_refused_on_load_naming_folder_key_value(saved, edit, shown):
    config_file = saved / "config.json"
    config = json.loads(config_file.read_text())
    edit(config)
    config_file.write_text(json.dumps(config))
    with pytest.raises(InvalidConfigError) as caught:
        load_model(saved)
    message = str(caught.value)
    assert message.startswith(f"directory '{saved}': config.json cannot describe a working detector: ")
    assert shown in message and caught.value.filename == "config.json"


def test_model_args_a_builder_refuses_are_named_too(saved):
    config = json.loads((saved / "config.json").read_text())
    config["model_args"]["sim_pattern"] = "sideways"
    (saved / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidConfigError, match=rf"directory '{saved}': config.json's model_args .* do not build dil_test_resnet: .*sideways"):
        load_model(saved)


def test_accepted_model_args_follow_the_model_signature():
    assert {"snippet_len", "sim_stages", "intra_args", "num_classes", "stem_width", "channels"} <= accepted_model_args()

    class WithOption(DILResNet):  # a new option, as another issue may add to the dil_* models
        def __init__(self, *args, share_directions: bool = False, **kwargs):
            super().__init__(*args, **kwargs)

    assert "share_directions" in accepted_model_args(WithOption)
    assert config_problems({"model_args": {"share_directions": True}}, WithOption) == []
    assert config_problems({"model_args": {"share_directions": True}})  # unknown to DILResNet


# ---------------------------------- items 11, 12: --checkpoint files that are not weights
class PickleBomb:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


@pytest.mark.parametrize("kind", ["pickle", "pickle2", "corrupt", "readme", "truncated_pt"])
@pytest.mark.parametrize("command", ["predict", "explain"])
def test_a_checkpoint_that_is_not_weights_is_a_one_line_usage_error(tmp_path, capsys, kind, command):
    from video_fixtures import two_people

    marker = tmp_path / "marker"
    if kind.startswith("pickle"):
        path = tmp_path / "model.pt"
        path.write_bytes(pickle.dumps({"conv1.weight": PickleBomb(marker)}, protocol=2 if kind == "pickle2" else 4))
        expected = "a pickle of other objects, which is never unpickled"
    elif kind == "corrupt":
        path = tmp_path / "weights.safetensors"
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
        expected = "is not a valid safetensors file"
    elif kind == "readme":
        path = tmp_path / "README.md"
        path.write_text("# my detector\n")
        expected = "is neither a .safetensors file nor a state dict of tensors"
    else:
        path = tmp_path / "model.pth"
        torch.save({"a": torch.zeros(3)}, path)
        path.write_bytes(path.read_bytes()[:40])
        expected = "cannot be read as torch weights"
    extra = ["--out", str(tmp_path / "out")] if command == "explain" else []
    code = main([command, str(two_people()), "--model", "dil_resnet18", "--checkpoint", str(path), *extra])
    error = one_line_error(capsys.readouterr().err)
    assert code == 2
    assert error.startswith(f"dynsnip {command}: error: cannot load the model: --checkpoint {path}")
    assert expected in error and "expected a .safetensors weights file" in error
    assert "weights_only=False" not in error and not marker.exists()


def test_corrupt_resume_checkpoint_names_no_resume(tmp_path):
    out = tmp_path / "run"
    run(tiny_recipe(epochs=2), out, stop_after_epoch=1)
    state_file = out / "checkpoint" / "state.json"
    good = state_file.read_text()
    state_file.write_text(good[: len(good) // 2])
    with pytest.raises(CorruptCheckpointError, match=r"checkpoint cannot be resumed \(JSONDecodeError.*--no-resume"):
        run(tiny_recipe(epochs=2), out)
    state_file.write_text(good)
    weights = safetensors.torch.load_file(str(out / "checkpoint" / "model.safetensors"))
    del weights["fc.bias"]  # another model's checkpoint
    safetensors.torch.save_file(weights, str(out / "checkpoint" / "model.safetensors"))
    with pytest.raises(CorruptCheckpointError, match=r"RuntimeError: Error\(s\) in loading state_dict.*--no-resume"):
        run(tiny_recipe(epochs=2), out)


def test_weights_file_next_to_its_config_loads_with_that_config(saved):
    from dynsnip.cli.predict import load_detector

    folder_model, _ = load_detector(None, str(saved))
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        want = folder_model(x)
        model, weights = load_detector(None, str(saved / "model.safetensors"))
        assert weights == str(saved / "model.safetensors") and torch.equal(model(x), want)
        shutil.copy(saved / "model.safetensors", saved / "epoch3.safetensors")
        model, _ = load_detector("dil_test_resnet", str(saved / "epoch3.safetensors"))
        assert torch.equal(model(x), want) and model.snippet_len == SMALL["snippet_len"]
    with pytest.raises(ValueError, match="--model dil_resnet18 does not match"):
        load_detector("dil_resnet18", str(saved / "model.safetensors"))


def test_key_lists_are_summarised(tmp_path):
    from dynsnip.cli.predict import load_detector
    from dynsnip.hub.load import _mismatch_details

    lone = tmp_path / "lone" / "w.safetensors"
    lone.parent.mkdir()
    safetensors.torch.save_file(timm.create_model("dil_test_resnet", num_classes=1, sim_stages=()).state_dict(), str(lone))
    with pytest.raises(ValueError) as caught:
        load_detector("dil_test_resnet", str(lone))
    message = str(caught.value)
    assert "tensors missing (layer1.0.sim." in message and "in all)" in message and len(message) < 700
    model = timm.create_model("dil_test_resnet", num_classes=1)
    try:
        model.load_state_dict({})
    except RuntimeError as err:
        details = _mismatch_details(err)
    assert details.startswith("Missing key(s): conv1.0.weight, conv1.1.weight, conv1.1.bias, conv1.1.running_mean, "
                              "conv1.1.running_var, ... (") and details.endswith(" in all)")
    assert len(details) < 400


# -------------------------------------------------- item 14: unreachable Hub, fail fast
def test_hub_ids_and_tags_fail_fast_when_the_hub_refuses_connections(tmp_path):
    """The suite's HF_ENDPOINT is 127.0.0.1:9, where connections are refused (tests/conftest.py)."""
    start = time.perf_counter()
    with pytest.raises(NotCachedError, match=r"cannot be reached \(connection refused\), so it was not retried.*HF_HUB_OFFLINE=1"):
        load_model("hf-hub:me/not-cached")
    with pytest.raises(NotCachedError, match=r"'model.safetensors' of Hub repo 'timm/test_resnet.r160_in1k' is not in the local cache"):
        load_model("dil_test_resnet.r160_in1k")
    assert time.perf_counter() - start < 10  # huggingface_hub's retries took 30-47 s


def test_predict_with_an_unreachable_hub_prints_one_line(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dynsnip", "predict", "v.mp4", "--checkpoint", "hf-hub:me/det"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    error = one_line_error(proc.stderr)
    assert "cannot be reached (connection refused)" in error and "HF_HUB_OFFLINE=1" in error and "local cache (" in error
    assert time.perf_counter() - start < 60


def test_train_command_on_a_corrupt_checkpoint_is_a_usage_error_naming_no_resume(manifest, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    common = ["train", "--manifest", str(manifest), "--out", str(out), *TINY_ARGS, "--batch-size", "2",
              "--img-size", "16", "--num-snippets", "1", "--test-num-snippets", "1", "--workers", "0",
              "--no-progress", "--epochs", "2"]
    assert main([*common, "--stop-after-epoch", "1"]) == 0
    (out / "checkpoint" / "optimizer.safetensors").write_bytes(b"\x00" * 16)
    capsys.readouterr()
    assert main(common) == 2
    error = one_line_error(capsys.readouterr().err)
    assert error.startswith(f"dynsnip train: error: {out / 'checkpoint'}: the training checkpoint cannot be resumed")
    assert "--no-resume --overwrite` (resume=False, overwrite=True) starts the run over" in error


def test_explain_writes_nothing_for_a_nan_score(tmp_path, capsys):
    from video_fixtures import two_people

    state = timm.create_model("dil_resnet18", num_classes=1).state_dict()
    state["fc.weight"] = torch.full_like(state["fc.weight"], 1e38)  # finite weights, an overflowing score
    weights = tmp_path / "overflow.safetensors"
    safetensors.torch.save_file(state, str(weights))
    out = tmp_path / "explained"
    code = main(["explain", str(two_people()), "--model", "dil_resnet18", "--checkpoint", str(weights), "--out", str(out),
                 "--snippets", "1", "--face-detector", "none", "--no-gradcam"])
    captured = capsys.readouterr()
    assert code == 1 and "p(fake)" not in captured.out
    assert "dynsnip explain: non_finite_output:" in one_line_error(captured.err)
    assert not out.exists() or not any(out.iterdir())


# ============================================================= issue 21 (second pass)
# ------------------------------------ item 11: integer / bool tensors do not load by casting
def test_integer_weights_are_refused_by_predict_and_train_checkpoints(tmp_path, capsys):
    from dynsnip.cli.predict import load_detector
    from dynsnip.engine import build_model
    from video_fixtures import two_people

    state = timm.create_model("dil_resnet18", num_classes=1).state_dict()
    state["layer1.0.conv1.weight"] = torch.ones_like(state["layer1.0.conv1.weight"], dtype=torch.int32)
    state["fc.bias"] = torch.tensor([True])
    weights = tmp_path / "ints.safetensors"
    safetensors.torch.save_file(state, str(weights))
    torch.save(state, tmp_path / "ints.pt")
    expected = "layer1.0.conv1.weight: int32 in the file where the model has float32"
    for path in (weights, tmp_path / "ints.pt"):
        with pytest.raises(ValueError, match=rf"2 of another dtype \({expected}, fc.bias: bool in the file where"):
            load_detector("dil_resnet18", str(path))
    code = main(["predict", str(two_people()), "--model", "dil_resnet18", "--checkpoint", str(weights)])
    error = one_line_error(capsys.readouterr().err)
    assert code == 2 and expected in error and "integer or bool values in place of weights" in error
    with pytest.raises(ValueError, match=rf"ints.safetensors: checkpoint does not fit dil_resnet18: 2 of another dtype \({expected}"):
        build_model("dil_resnet18", pretrained=False, checkpoint=weights)  # dynsnip train --checkpoint
    state["layer1.0.conv1.weight"] = state["layer1.0.conv1.weight"].bfloat16()  # a lower precision: loads
    state["fc.bias"] = torch.tensor([0.5])
    safetensors.torch.save_file(state, str(weights))
    model = build_model("dil_resnet18", pretrained=False, checkpoint=weights)
    assert model.layer1[0].conv1.weight.dtype == torch.float32 and model.fc.bias.tolist() == [0.5]


# ------------------------- item 12: one class, or pseudo-fakes without reals: refused up front
class Labelled(Clips):
    """Clips whose labels are known up front (as a manifest's are), all of one class."""

    def __init__(self, label: int):
        super().__init__()
        self.y = torch.full_like(self.y, label)
        self.labels = self.y.tolist()


@pytest.mark.parametrize("label, pseudo_fakes, message", [
    (0, None, r"the training set has only real videos \(8\): a detector needs real and fake videos"),
    (1, None, r"only fake videos \(8\).*add real videos \(label 0\)"),
    (1, "temporal", r"--pseudo-fakes temporal makes its fakes from the real training videos, but the training set "
                    r"has none \(8 fake\)"),
])
def test_engine_refuses_a_training_set_it_cannot_learn_from(tmp_path, label, pseudo_fakes, message):
    with pytest.raises(ValueError, match=message):
        train(tiny_recipe(pseudo_fakes=pseudo_fakes), Labelled(label), None, tmp_path / "run", model_kwargs=TINY,
              device="cpu", progress=False, log=None)
    assert not (tmp_path / "run" / "model").exists()


def test_train_command_refuses_one_class_or_pseudo_fakes_without_reals(manifest, tmp_path, capsys):  # noqa: F811
    rows = manifest.read_text().splitlines()
    for name, keep, extra, message in (
            ("reals.csv", ",real,", [], "the training set has only real videos (2)"),
            ("fakes.csv", ",fake,", ["--pseudo-fakes", "temporal"],
             "--pseudo-fakes temporal makes its fakes from the real training videos, but the training set has none")):
        one_class = manifest.parent / name
        one_class.write_text("\n".join([rows[0], *[r for r in rows[1:] if keep in r]]) + "\n")
        out = tmp_path / name
        code = main(["train", "--manifest", str(one_class), "--out", str(out), *TINY_ARGS, "--img-size", "16",
                     "--num-snippets", "1", "--test-num-snippets", "1", "--workers", "0", "--no-progress", *extra])
        error = one_line_error(capsys.readouterr().err)
        assert code == 2 and error.startswith("dynsnip train: error: ") and message in error, error
        assert not (out / "model").exists() and not (out / "history.json").exists()


# ------------------------------------- item 14: a mistyped path is not a Hub repo, in every command
def test_commands_report_a_mistyped_model_folder_without_asking_the_hub(manifest, tmp_path, capsys,  # noqa: F811
                                                                        monkeypatch):
    monkeypatch.chdir(tmp_path)
    hint = "no folder runs/doesnotexist (directory 'runs/doesnotexist' does not exist); " \
           "for a Hub repo write hf-hub:runs/doesnotexist"
    commands = (
        ["evaluate", "--model", "runs/doesnotexist", "--manifest", str(manifest)],
        ["train", "--manifest", str(manifest), "--out", "run", "--model", "runs/doesnotexist", "--workers", "0"],
    )
    for argv in commands:
        start = time.perf_counter()
        assert main(argv) == 2
        error = one_line_error(capsys.readouterr().err)
        assert hint in error and "Hub" not in error.split(hint)[0], error
        assert time.perf_counter() - start < 20  # no download was tried (the Hub's retries take ~50 s)
