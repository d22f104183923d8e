"""Option values the commands refuse before any work (exit code 2, one line naming the value and
what is expected), and what the command line does on Ctrl-C and with leftovers of a stopped run."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import pytest
import torch

from dynsnip.cli import main
from test_cli_predict import checkpoint  # noqa: F401 (fixture: a small saved detector, 64 px)
from test_cli_train import TINY_ARGS, manifest  # noqa: F401 (fixture: a tiny manifest of face-frame folders)
from video_fixtures import carphone, decode_all, encode


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dynsnip {command}: error: "), err
    return lines[0]


@pytest.fixture
def evaluate_manifest(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("path,label\nv.mp4,real\n")
    return path


def command_line(command: str, tmp_path, evaluate_manifest) -> list[str]:
    """The smallest command line of ``command`` that gets to its option checks."""
    return {
        "predict": ["predict", str(tmp_path / "v.mp4"), "--checkpoint", str(tmp_path / "none")],
        "evaluate": ["evaluate", "--model", "dil_resnet18", "--manifest", str(evaluate_manifest)],
        "benchmark": ["benchmark", "celebdf", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "b"),
                      "--model", "dil_resnet18"],
    }[command]


# ---------------------------------------------------------------------- item 1: --threshold
@pytest.mark.parametrize("command", ["predict", "evaluate", "benchmark"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1.5", "-0.1"])
def test_threshold_must_be_a_finite_probability(command, value, tmp_path, evaluate_manifest, capsys):
    assert main([*command_line(command, tmp_path, evaluate_manifest), f"--threshold={value}"]) == 2
    line = one_error_line(capsys, command)
    assert "--threshold must be a probability between 0 and 1" in line and f"got {float(value)}" in line
    assert not (tmp_path / "b").exists()  # refused before anything is written


@pytest.mark.parametrize("option, value, expected", [
    ("--batch-size", "0", "--batch-size must be a positive integer, got 0"),
    ("--workers", "-1", "--workers must be 0 (no worker processes) or more, got -1"),
    ("--num-snippets", "0", "--num-snippets must be a positive integer, got 0"),
    ("--img-size", "0", "--img-size must be a positive integer, got 0"),
])
def test_evaluate_refuses_counts_out_of_range(option, value, expected, tmp_path, evaluate_manifest, capsys):
    """evaluate --batch-size 0 / --workers -1 were a traceback with exit 1, --num-snippets 0 /
    --img-size 0 silently the model's defaults: a one-line usage error, exit 2, as train does."""
    out = tmp_path / "report"
    assert main([*command_line("evaluate", tmp_path, evaluate_manifest), option, value, "--out", str(out)]) == 2
    assert expected in one_error_line(capsys, "evaluate")
    assert not list(tmp_path.glob("report*"))


@pytest.mark.parametrize("value", ["0", "1", "0.5"])
def test_threshold_0_and_1_are_accepted(value, tmp_path, capsys):
    """0 calls every video fake, 1 only a probability of exactly 1 (the verdict is p >= threshold)."""
    assert main(["predict", str(tmp_path / "v.mp4"), "--threshold", value]) == 2
    err = capsys.readouterr().err
    assert "--threshold" not in err and "no detector" in err  # got past the threshold to the next check


@pytest.mark.parametrize("command", ["predict", "evaluate", "benchmark"])
def test_threshold_minus_zero_is_zero(command):
    """``--threshold -0`` is the threshold 0, not a -0.0 in the reports."""
    from dynsnip.cli import build_parser

    required = {"predict": ["v.mp4"], "evaluate": ["--model", "m", "--manifest", "x.csv"],
                "benchmark": ["celebdf", "--data", "d", "--out", "o"]}[command]
    args = build_parser().parse_args([command, "--threshold=-0", *required])
    assert args.threshold == 0.0 and str(args.threshold) == "0.0"


@pytest.mark.parametrize("option, value, message", [
    ("--min-face-coverage", "nan", "--min-face-coverage must be a fraction between 0 and 1, got nan"),
    ("--min-face-coverage", "inf", "--min-face-coverage must be a fraction between 0 and 1, got inf"),
    ("--margin", "nan", "--margin must be a positive number, got nan"),
    ("--margin", "inf", "--margin must be a positive number, got inf"),
    ("--min-face", "nan", "--min-face must be at least 12 px"),
])
def test_other_float_options_of_predict_refuse_nan_and_inf(option, value, message, tmp_path, capsys):
    assert main(["predict", str(tmp_path / "v.mp4"), "--checkpoint", "x", option, value]) == 2
    assert message in one_error_line(capsys, "predict")


@pytest.mark.parametrize("option", ["--lr", "--weight-decay", "--min-lr", "--grad-clip", "--lr-factor", "--hflip-prob"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_float_recipe_options_refuse_nan_and_inf(option, value, manifest, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert main(["train", "--manifest", str(manifest), "--out", str(out), option, value]) == 2
    assert f"{option} must be a finite number, got {float(value)}" in one_error_line(capsys, "train")
    assert not out.exists()


# ---------------------------------------------------------------------- item 2: --device
@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def device_command_lines(tmp_path, evaluate_manifest, manifest):  # noqa: F811
    video = str(tmp_path / "v.mp4")
    return {
        "predict": ["predict", video, "--checkpoint", "x"],
        "explain": ["explain", video, "--checkpoint", "x", "--out", str(tmp_path / "ex")],
        "evaluate": ["evaluate", "--model", "dil_resnet18", "--manifest", str(evaluate_manifest)],
        "train": ["train", "--manifest", str(manifest), "--out", str(tmp_path / "run")],
        "benchmark": ["benchmark", "celebdf", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "b"),
                      "--model", "dil_resnet18"],
    }


@pytest.mark.parametrize("command", ["predict", "explain", "evaluate", "train", "benchmark"])
def test_a_device_that_is_not_there_is_a_usage_error(command, no_gpu, tmp_path, evaluate_manifest, manifest,  # noqa: F811
                                                     capsys):
    argv = device_command_lines(tmp_path, evaluate_manifest, manifest)[command]
    assert main([*argv, "--device", "cuda"]) == 2
    line = one_error_line(capsys, command)
    assert "--device 'cuda'" in line and "PyTorch sees no CUDA device" in line  # what was asked, why not
    assert "this machine has cpu" in line and "pass --device cpu" in line  # what there is, what to pass

    assert main([*argv, "--device", "foo"]) == 2
    line = one_error_line(capsys, command)
    assert "--device 'foo' is not a device name" in line and "pass --device cpu" in line
    assert not any((tmp_path / name).exists() for name in ("ex", "run", "b"))


def test_a_gpu_index_the_machine_does_not_have(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert main(["predict", str(tmp_path / "v.mp4"), "--checkpoint", "x", "--device", "cuda:2"]) == 2
    line = one_error_line(capsys, "predict")
    assert "--device 'cuda:2': no such CUDA device (this machine has cpu, cuda:0, cuda:1)" in line


@pytest.mark.parametrize("command", ["predict", "explain", "extract-faces"])
def test_detect_device_that_is_not_there_is_a_usage_error(command, no_gpu, tmp_path, capsys):
    rest = {"predict": ["--workers", "0", "--checkpoint", "x"], "explain": ["--checkpoint", "x", "--out", "ex"],
            "extract-faces": ["--workers", "1", "--out", str(tmp_path / "faces")]}[command]
    argv = [command, str(tmp_path / "v.mp4"), "--detect-device", "cuda", *rest]
    assert main(argv) == 2
    line = one_error_line(capsys, command)
    assert "--detect-device 'cuda': PyTorch sees no CUDA device" in line and "pass --detect-device cpu" in line


# ---------------------------------------------------------------------- item 3: extract-faces --out FILE
def test_extract_faces_out_that_is_a_file(tmp_path, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("mine\n")
    assert main(["extract-faces", str(carphone()), "--out", str(file)]) == 2
    line = one_error_line(capsys, "extract-faces")
    assert f"--out {file} is an existing file, not a folder; expected a folder" in line
    assert main(["extract-faces", str(carphone()), "--out", str(file / "faces")]) == 2
    assert f"{file} is a file, not a folder" in one_error_line(capsys, "extract-faces")
    assert file.read_text() == "mine\n"


# ---------------------------------------------------------------------- item 4: train --val none
def tiny_train(manifest, out, *extra):  # noqa: F811
    return ["train", "--manifest", str(manifest), "--out", str(out), *TINY_ARGS, "--batch-size", "2",
            "--img-size", "16", "--num-snippets", "1", "--test-num-snippets", "1", "--workers", "0",
            "--no-progress", "--epochs", "1", *extra]


def test_train_val_none_means_no_validation_and_a_stopped_first_run_can_be_rerun(manifest, tmp_path, capsys):  # noqa: F811
    """Items 4 and 7: --val none is what its help says (no validation, even with --manifest's
    'val' rows); a run folder where a first run stopped before its first checkpoint (its
    recipe.json, a log) is started again, said in a note, and the log is kept."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "recipe.json").write_text(json.dumps({"model": "dil_resnet18", "epochs": 1}) + "\n")
    (out / "train.log").write_text("epoch 1 ... ^C\n")
    assert main(tiny_train(manifest, out, "--val", "none")) == 0
    printed = capsys.readouterr().out
    assert "on 4 clips, no validation set" in printed
    assert f"note: --out {out} holds no checkpoint and no results" in printed and "train.log kept" in printed
    assert "earlier run's results" not in printed  # nothing of value was replaced
    assert (out / "train.log").read_text() == "epoch 1 ... ^C\n"
    assert (out / "checkpoint").is_dir() and not (out / "val_report.json").exists()
    assert json.loads((out / "recipe.json").read_text())["img_size"] == 16

    # now it holds results: starting over still needs --overwrite
    assert main(tiny_train(manifest, out, "--val", "none", "--no-resume")) == 2
    assert "refusing to overwrite an earlier run" in capsys.readouterr().err

    assert main(tiny_train(manifest, out, "--val", "none", "--val-split", "val")) == 2
    assert "--val none asks for no validation" in one_error_line(capsys, "train")


# ---------------------------------------------------------------------- item 7: what is protected
@pytest.mark.parametrize("leftover", ["history.json", "model", "checkpoint", "val_report.json", "notes.txt",
                                      "complete checkpoint.tmp", "foreign recipe.json"])
def test_a_folder_with_results_still_needs_overwrite(leftover, manifest, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    out.mkdir()
    (out / "recipe.json").write_text(json.dumps({"model": "dil_resnet18"}))
    if leftover in ("model", "checkpoint"):
        (out / leftover).mkdir()
        (out / leftover / "model.safetensors").write_bytes(b"weights")
    elif leftover == "complete checkpoint.tmp":
        from dynsnip.engine.checkpoint import MODEL_NAME, STATE_NAME

        (out / "checkpoint.tmp").mkdir()
        (out / "checkpoint.tmp" / STATE_NAME).write_text("{}")
        (out / "checkpoint.tmp" / MODEL_NAME).write_bytes(b"weights")
    elif leftover == "foreign recipe.json":
        (out / "recipe.json").write_text("[1, 2, 3]")  # not a dynsnip recipe: not ours
    else:
        (out / leftover).write_text("{}")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert main(tiny_train(manifest, out)) == 2
    assert "refusing to overwrite an earlier run: pass --overwrite" in one_error_line(capsys, "train")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.name != ".dynsnip-train.lock") == before


# ---------------------------------------------------------------------- item 5: explain --snippets N
def test_explain_says_when_a_short_video_has_fewer_snippets_than_asked(checkpoint, tmp_path, capsys):  # noqa: F811
    video = encode(tmp_path / "short.mp4", decode_all(carphone())[:6])  # 6 frames: 3 different snippets of 4
    out = tmp_path / "explained"
    assert main(["explain", str(video), "--checkpoint", str(checkpoint), "--out", str(out), "--snippets", "8",
                 "--face-detector", "none", "--no-gradcam", "--device", "cpu"]) == 0
    note = ("8 snippets asked for, but its 6 frames hold only 3 different snippets of 4 frames: explained with 3")
    assert f"dynsnip explain: note: {video}: {note}" in capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_snippets"] == 3 and note in summary["snippets_note"]


# ---------------------------------------------------------------------- item 6: predict --output INPUT
@pytest.mark.parametrize("spelling", ["same", "relative", "hard link", "directory input"])
def test_predict_never_writes_its_report_over_an_input(spelling, tmp_path, capsys, monkeypatch):
    video = shutil.copy(carphone(), tmp_path / "clip.mp4")
    before = video.read_bytes() if hasattr(video, "read_bytes") else open(video, "rb").read()
    inputs, output = [str(video)], str(video)
    if spelling == "relative":
        monkeypatch.chdir(tmp_path)
        output = "./clip.mp4"
    elif spelling == "hard link":
        output = str(tmp_path / "report.json")
        os.link(video, output)
    elif spelling == "directory input":
        inputs = [str(tmp_path)]
    assert main(["predict", *inputs, "--checkpoint", "x", "--output", output, "--overwrite"]) == 2
    line = one_error_line(capsys, "predict")
    assert f"--output {os.path.normpath(output)} is one of the videos to score" in line and "even with --overwrite" in line
    assert open(video, "rb").read() == before


def test_predict_never_writes_its_report_over_the_detector(checkpoint, tmp_path, capsys):  # noqa: F811
    """--output in the detector's save_pretrained folder (its config.json, say) or over its weights
    file: refused even with --overwrite; a detector that cannot be loaded is one line, exit 2."""
    folder = shutil.copytree(checkpoint, tmp_path / "detector")
    config = (folder / "config.json").read_bytes()
    video = str(carphone())
    for output, ckpt in ((folder / "config.json", folder), (folder / "report.json", folder),
                         (folder / "model.safetensors", folder / "model.safetensors")):
        assert main(["predict", video, "--checkpoint", str(ckpt), "--output", str(output), "--overwrite"]) == 2
        line = one_error_line(capsys, "predict")
        assert "refusing to write the report over the detector, even with --overwrite" in line, line
    assert (folder / "config.json").read_bytes() == config and not (folder / "report.json").exists()
    (folder / "config.json").write_text('{"not": "a timm config"}')  # what such a report left before
    assert main(["predict", video, "--checkpoint", str(folder)]) == 2
    assert "cannot load the model" in one_error_line(capsys, "predict")


# ---------------------------------------------------------------------- item 8: Ctrl-C
def test_ctrl_c_is_one_line_and_exit_code_130(monkeypatch, capsys):
    import dynsnip.cli.predict
    import dynsnip.cli.train

    def interrupted(args):
        raise KeyboardInterrupt

    def run_main(argv):
        try:
            return main(argv)
        except KeyboardInterrupt:  # would stop pytest itself
            pytest.fail("Ctrl-C escaped dynsnip.cli.main (a traceback for the user)")

    monkeypatch.setattr(dynsnip.cli.predict, "run", interrupted)
    assert run_main(["predict", "video.mp4"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "dynsnip predict: interrupted (Ctrl-C)\n" and captured.out == ""
    monkeypatch.setattr(dynsnip.cli.train, "run_train", interrupted)
    assert run_main(["train", "--out", "x"]) == 130
    assert capsys.readouterr().err.startswith("dynsnip train: interrupted (Ctrl-C); run the same command again")


def test_evaluate_never_writes_its_report_over_the_manifest(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nv.mp4,real\n")
    assert main(["evaluate", "--model", "dil_resnet18", "--manifest", str(manifest), "--out", str(tmp_path / "m"),
                 "--overwrite"]) == 2
    line = one_error_line(capsys, "evaluate")
    assert f"would write the report over the manifest {manifest}" in line and "even with --overwrite" in line
    assert manifest.read_text() == "path,label\nv.mp4,real\n"


def test_every_help_says_what_the_exit_codes_mean():
    from dynsnip.cli import build_parser
    from dynsnip.cli.exit_codes import EXIT_INTERRUPTED, EXIT_SOME_FAILED, EXIT_USAGE

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert {"predict", "extract-faces", "train", "evaluate", "explain"} <= set(commands)
    for name, command in [("dynsnip", parser), *commands.items()]:
        text = " ".join(command.format_help().split())
        assert "exit status:" in text, name
        for code in (EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED):
            assert f"{code}: " in text, (name, code)


def test_commands_print_warnings_on_one_line_without_library_source(monkeypatch, capsys):
    import warnings

    from dynsnip.cli import _one_line_warnings

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored after the test
    _one_line_warnings()
    text = warnings.formatwarning("training on video files crops each video's largest face", UserWarning,
                                  "/site-packages/dynsnip/cli/train.py", 326, "train_set = make_dataset(...)")
    assert text == "dynsnip: warning: training on video files crops each video's largest face (UserWarning)\n"


@pytest.mark.parametrize("command", [
    ["predict", "{video}", "--checkpoint", "{out}/no_such_detector"],
    ["extract-faces", "{video}", "--out", "{out}/faces"],
    ["pseudo-fakes", "{video}", "--out", "{out}/pf"],
    ["demo", "--out", "{out}/demo"],
    ["explain", "{video}", "--checkpoint", "{out}/no_such_detector", "--out", "{out}/ex"],
], ids=lambda c: c[0])
def test_a_missing_video_extra_is_one_usage_error_and_creates_nothing(command, tmp_path, capsys, monkeypatch):
    """Without PyAV (the video extra) every video used to fail on its own (predict, extract-faces: exit 1), or
    the command ended in a traceback (pseudo-fakes, demo, explain)."""
    from video_fixtures import carphone

    monkeypatch.setitem(sys.modules, "av", None)  # `import av` raises ImportError, as when it is not installed
    args = [a.format(video=carphone(), out=tmp_path) for a in command]
    assert main(args) == 2
    assert "pip install 'dynsnip[video]'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
