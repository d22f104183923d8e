"""``dynsnip train`` / ``dynsnip evaluate`` on a tiny manifest of face-frame folders."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dynsnip
from dynsnip.cli import main
from dynsnip.engine import Recipe, build_model, make_dataset
from hub_fixtures import local_hub  # noqa: F401 (fixture)

TINY_ARGS = ["--model", "dil_resnet18", "--no-pretrained", "--model-arg", "channels=[8,16,32,64]",
             "--model-arg", "stem_width=8"]


def write_frames(folder, frames: int, fake: bool, seed: int, size: int = 16):
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 180, size=(size, size, 3))
    folder.mkdir(parents=True)
    for i in range(frames):
        gain = 1.0 + (rng.uniform(-0.4, 0.4) if fake else 0.0)
        Image.fromarray(np.clip(base * gain, 0, 255).astype(np.uint8)).save(folder / f"{i:06d}.png")


def write_rows(path, rows: list[dict]) -> None:
    """A manifest of ``rows`` (dicts with the same keys), the header from the first."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    rows = []
    for split, n in (("train", 4), ("val", 4)):
        for i in range(n):
            fake = i % 2 == 1
            method = ("DF" if i % 4 == 1 else "NT") if fake else ""
            name = f"{split}_{i}"
            write_frames(root / name, 8, fake, seed=hash(name) % 1000)
            rows.append({"path": name, "label": "fake" if fake else "real", "split": split, "method": method})
    path = root / "manifest.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split", "method"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_train_then_resume_then_evaluate(manifest, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "--manifest", str(manifest), "--out", str(out), *TINY_ARGS, "--batch-size", "2",
              "--img-size", "16", "--num-snippets", "1", "--test-num-snippets", "2", "--workers", "0",
              "--no-progress", "--seed", "1"]
    assert main([*common, "--epochs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "training dil_resnet18 on 4 clips, validating on 4" in printed and "done:" in printed
    recipe = json.loads((out / "recipe.json").read_text())
    # overridden settings changed, the others are the paper's
    assert (recipe["epochs"], recipe["batch_size"], recipe["img_size"], recipe["num_snippets"]) == (2, 2, 16, 1)
    assert (recipe["lr"], recipe["lr_factor"], recipe["hflip_prob"]) == (1e-4, 0.1, 0.5)
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and all("auc" in h["val"] for h in history)
    config = json.loads((out / "model" / "config.json").read_text())
    assert config["pretrained_cfg"]["input_size"] == [3, 16, 16]
    assert (config["video"]["num_snippets"], config["video"]["test_num_snippets"]) == (1, 2)
    val_report = json.loads((out / "val_report.json").read_text())
    assert set(val_report["per_method"]) == {"DF", "NT"}
    # the saved model records how it was trained and its validation result; the card shows both
    best_epoch = val_report["epoch"]
    assert config["training"]["epoch"] == best_epoch and config["training"]["recipe"] == recipe
    assert config["training"]["data"] == "manifest.csv" and config["training"]["num_train_clips"] == 4
    (validation,) = config["evaluation"]
    assert validation["overall"]["auc"] == pytest.approx(val_report["overall"]["auc"])
    assert validation["source"] == f"dynsnip train, epoch {best_epoch}" and set(validation["per_method"]) == {"DF", "NT"}
    card = (out / "model" / "README.md").read_text()
    assert f"these weights are from epoch {best_epoch}" in card and "| manifest.csv [val]: DF | 2 x 4 |" in card
    assert "constant lr (no plateau drop within the run)" in card  # 2 epochs, patience 2

    # the same command with more epochs resumes after epoch 2
    assert main([*common, "--epochs", "3"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2, 3]

    report = tmp_path / "report"
    assert main(["evaluate", "--model", str(out / "model"), "--manifest", str(manifest), "--split", "val",
                 "--workers", "0", "--no-progress", "--out", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "U=2 x T=4 at 16 px" in printed and "DF" in printed and "NT" in printed
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["overall"]["num_videos"] == 4 and data["per_method"]["DF"]["num_real"] == 2
    assert [r["subset"] for r in csv.DictReader(report.with_suffix(".csv").open())] == ["overall", "DF", "NT"]
    assert len(json.loads((out / "model" / "config.json").read_text())["evaluation"]) == 1  # not without --record

    # issue 21, item 9: the detector says what it was trained on, and predict says it beside the verdicts
    assert (config["training"]["num_train_real"], config["training"]["num_train_fake"]) == (2, 2)
    assert "| size | 4 clips per training epoch, 2 real training items, 2 fake training items, 4 validation videos |" in card
    from video_fixtures import two_people

    predict = ["predict", str(two_people()), "--checkpoint", str(out / "model"), "--face-detector", "none",
               "--snippets", "1", "--workers", "0", "--no-progress"]
    assert main([*predict, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    trained_on = "trained on manifest.csv (2 real and 2 fake training items; 16 px crops)"
    assert report["trained_on"] == trained_on
    assert report["training_data"]["data"] == "manifest.csv" and report["training_data"]["img_size"] == 16
    assert main(predict) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"detector: {out / 'model'}, {trained_on}"

    # `evaluate --split val --record` measures the split training validated on: one split, one spelling
    # ("val", as the manifest reader spells it), so its result replaces training's instead of a second
    # "manifest.csv [validation]" row next to "manifest.csv [val]"
    assert main(["evaluate", "--model", str(out / "model"), "--manifest", str(manifest), "--split", "val", "--record",
                 "--workers", "0", "--no-progress", "--out", str(tmp_path / "recorded")]) == 0
    capsys.readouterr()
    evaluation = json.loads((out / "model" / "config.json").read_text())["evaluation"]
    assert [(e["data"], e["split"], e["source"]) for e in evaluation] == [("manifest.csv", "val", "dynsnip evaluate")]
    card = (out / "model" / "README.md").read_text()
    assert "| manifest.csv [val] |" in card and "[validation]" not in card


def test_default_loader_workers_are_what_the_machine_has(monkeypatch):
    """Issue 21, item 17: 4 DataLoader workers on a 2-core machine make PyTorch warn; train and
    benchmark default to the cores this process may use, under torchrun its rank's share of the
    node's (an explicit --workers is kept)."""
    import argparse

    from dynsnip.cli import benchmark, train as train_cli

    from dynsnip import cpus

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(cpus, "available_cpus", lambda: 2)
    for add in (train_cli.add_parser, benchmark.add_parser):
        sub = argparse.ArgumentParser().add_subparsers()
        parser = add(sub)
        base = ["--out", "x"] + (["ffpp-hq", "--data", "d"] if add is benchmark.add_parser else [])
        assert train_cli.recipe_from_args(parser.parse_args(base)).num_workers == 2
        assert train_cli.recipe_from_args(parser.parse_args([*base, "--workers", "3"])).num_workers == 3
    # under torchrun each rank starts its own workers: 4 ranks on a 12-core node get 3 each, not 4 each
    monkeypatch.setattr(cpus, "available_cpus", lambda: 12)
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    sub = argparse.ArgumentParser().add_subparsers()
    parser = train_cli.add_parser(sub)
    assert train_cli.recipe_from_args(parser.parse_args(["--out", "x"])).num_workers == 3
    assert train_cli.recipe_from_args(parser.parse_args(["--out", "x", "--workers", "4"])).num_workers == 4
    monkeypatch.setenv("WORLD_SIZE", "1")  # one process: all 12 cores, so the recipe's 4
    assert train_cli.recipe_from_args(parser.parse_args(["--out", "x"])).num_workers == 4
    monkeypatch.undo()
    assert 1 <= cpus.available_cpus() <= 4096


def test_evaluate_record_then_push_a_run_and_pull_it_back(manifest, tmp_path, capsys, local_hub):
    """train -> evaluate --record -> dynsnip push -> timm.create_model("hf-hub:...") on the local hub."""
    import timm
    from huggingface_hub import ModelCard

    out = tmp_path / "run"
    assert main(["train", "--manifest", str(manifest), "--out", str(out), *TINY_ARGS, "--batch-size", "2",
                 "--img-size", "16", "--num-snippets", "1", "--test-num-snippets", "2", "--workers", "0",
                 "--no-progress", "--epochs", "1", "--data-name", "tiny frames"]) == 0
    report = tmp_path / "test_report"
    assert main(["evaluate", "--model", str(out), "--manifest", str(manifest), "--split", "train", "--record",
                 "--data-name", "tiny test", "--workers", "0", "--no-progress", "--out", str(report)]) == 0
    assert "recorded in" in capsys.readouterr().out
    config = json.loads((out / "model" / "config.json").read_text())
    assert [(e["data"], e.get("split")) for e in config["evaluation"]] == [("tiny frames", "val"), ("tiny test", "train")]
    tested = json.loads(report.with_suffix(".json").read_text())["overall"]
    assert config["evaluation"][1]["overall"]["accuracy"] == tested["accuracy"]

    assert main(["push", str(out), "me/tiny-detector", "--license", "apache-2.0"]) == 0
    assert "pushed" in capsys.readouterr().out
    assert local_hub.requests_to("/api/validate-yaml", "POST")[-1].status == 200
    card = ModelCard(local_hub.files("me/tiny-detector")["README.md"].decode())
    assert card.data.license == "apache-2.0" and card.data.base_model is None  # trained from scratch
    results = {(r.dataset_name, r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("tiny test", "train", "accuracy")] == tested["accuracy"]
    assert ("tiny frames", "val", "roc_auc") in results
    assert "tiny test [train]" in card.text and 'timm.create_model("hf-hub:me/tiny-detector"' in card.text
    pushed = json.loads(local_hub.files("me/tiny-detector")["config.json"])
    assert pushed["training"] == config["training"] and pushed["evaluation"] == config["evaluation"]

    local = build_model(str(out)).eval()
    pulled = timm.create_model("hf-hub:me/tiny-detector", pretrained=True).eval()
    x = torch.randn(2, 3, 8, 16, 16)
    with torch.no_grad():
        assert torch.equal(local(x), pulled(x))


def test_push_refuses_what_it_cannot_publish(manifest, tmp_path, capsys, local_hub):
    assert main(["push", str(tmp_path), "me/x"]) == 2
    assert "holds no config.json" in capsys.readouterr().err
    assert main(["push", str(tmp_path / "runs" / "nope"), "me/x"]) == 2
    assert f"{tmp_path / 'runs' / 'nope'} does not exist; expected a folder" in capsys.readouterr().err
    model_dir = tmp_path / "model"
    from dynsnip.hub import save_pretrained
    from dynsnip.hub.errors import ModelFileNotFoundError

    save_pretrained(build_model("dil_resnet18", pretrained=False, channels=(8, 16, 32, 64), stem_width=8), model_dir)
    with pytest.raises(ModelFileNotFoundError, match=r"It is a training run's folder: load its model, .*model"):
        dynsnip.load_model(tmp_path)  # the run folder, not its model/
    assert main(["push", str(model_dir), "not-a-repo-id"]) == 2
    assert "REPO must be owner/name" in capsys.readouterr().err
    assert main(["push", str(model_dir), "me/my detector"]) == 2
    assert "REPO 'me/my detector' is not a valid repo id" in capsys.readouterr().err
    (model_dir / "model.safetensors").write_bytes(b"truncated")
    assert main(["push", str(model_dir), "me/x"]) == 2
    assert "does not load as a DIL detector" in capsys.readouterr().err
    assert not local_hub.has_repo("me/x")  # nothing was created or uploaded
    assert main(["evaluate", "--model", "dil_resnet18", "--manifest", str(manifest), "--record"]) == 2
    assert "--record needs --model to be a local folder" in capsys.readouterr().err
    # a hub that wants a token, then one that cannot be reached
    save_pretrained(build_model("dil_resnet18", pretrained=False, channels=(8, 16, 32, 64), stem_width=8), model_dir)
    local_hub.write_token = "hf_right"
    assert main(["push", str(model_dir), "me/x", "--token", "hf_wrong"]) == 2
    err = capsys.readouterr().err
    assert "the Hub refused the upload to me/x" in err and "401 Unauthorized" in err and "run `hf auth login`, set HF_TOKEN or pass --token" in err
    assert main(["push", str(model_dir), "me/x", "--token", "hf_right"]) == 0 and local_hub.has_repo("me/x")
    capsys.readouterr()
    endpoint = local_hub.endpoint
    local_hub.stop()
    import huggingface_hub.utils._http as hf_http

    hf_http.close_session()
    assert main(["push", str(model_dir), "me/y", "--token", "hf_right"]) == 2
    assert f"cannot reach the Hub at {endpoint}" in capsys.readouterr().err


def test_horizontal_flip_is_the_only_augmentation(manifest, tmp_path):
    # a folder of exactly U*T frames leaves no room for random offsets: what varies is the flip
    model = build_model("dil_resnet18", pretrained=False, channels=(8, 16, 32, 64), stem_width=8)
    recipe = Recipe(model="dil_resnet18", num_snippets=2, test_num_snippets=2, img_size=16)
    clean = make_dataset(manifest, model, recipe, train=False, split="train")[1][0]
    train_set = make_dataset(manifest, model, recipe, train=True, split="train")
    torch.manual_seed(0)
    seen = {"same": 0, "flipped": 0}
    for _ in range(24):
        x, y = train_set[1]
        assert y == 1.0
        if torch.equal(x, clean):
            seen["same"] += 1
        else:
            assert torch.equal(x, clean.flip(-1)), "a training clip differs from its clean clip by more than a flip"
            seen["flipped"] += 1
    assert seen["same"] > 3 and seen["flipped"] > 3
    no_flip = make_dataset(manifest, model, recipe.replace(hflip_prob=0.0), train=True, split="train")
    assert all(torch.equal(no_flip[1][0], clean) for _ in range(5))


@pytest.mark.parametrize("argv, message", [
    (["train", "--out", "x"], "give --manifest"),
    (["train", "--train", "nope.csv", "--out", "x"], "manifest nope.csv does not exist"),
    (["train", "--train", "{m}", "--out", "x", "--model-arg", "sim_stages"], "--model-arg expects KEY=VALUE"),
    (["train", "--train", "{m}", "--out", "x", "--batch-size", "0"], "batch_size must be a positive integer"),
    (["train", "--train", "{m}", "--train-split", "test", "--out", "x", *TINY_ARGS], "no rows with split 'test'"),
    (["evaluate", "--model", "dil_resnet18", "--manifest", "nope.csv"], "manifest nope.csv does not exist"),
    (["train", "--train", "{m}", "--out", "x", *TINY_ARGS, "--snippet-len", "2", "--workers", "0"],
     "--snippet-len 2: the model has T=4 frames per snippet (it is part of its architecture); build it with the same "
     "T: add --model-arg snippet_len=2"),
])
def test_bad_input_is_a_clear_usage_error(manifest, argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([a.replace("{m}", str(manifest)) for a in argv]) == 2
    assert message in capsys.readouterr().err


def test_evaluate_scores_a_two_logit_detector_with_its_own_head(manifest, tmp_path, recwarn):
    """A saved 2-logit detector: evaluate scored it through a new, random 1-logit head (build_model's
    default num_classes=1); it is evaluated as saved. Fine-tuning it (num_classes=1) still starts a new
    head, with a warning."""
    from dynsnip.hub import save_pretrained

    model = build_model("dil_resnet18", pretrained=False, num_classes=2, channels=(8, 16, 32, 64), stem_width=8)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(torch.tensor([-3.0, 3.0]))  # softmax: P(fake) = 0.9975 whatever the input
    folder = save_pretrained(model, tmp_path / "two_logit", pretrained_cfg={"input_size": (3, 16, 16)})
    report = tmp_path / "report"
    assert main(["evaluate", "--model", str(folder), "--manifest", str(manifest), "--split", "val", "--workers", "0",
                 "--no-progress", "--out", str(report)]) == 0
    with (tmp_path / "report_videos.csv").open() as f:
        scores = [float(row["score"]) for row in csv.DictReader(f)]
    assert len(scores) == 4 and all(abs(p - 0.9975) < 1e-3 for p in scores)
    tuned = build_model(folder)  # training: the single fake logit, a new head
    assert tuned.num_classes == 1 and tuned.training_record is None
    assert any("saved 2-class head was dropped" in str(w.message) for w in recwarn)
    # the weights file, beside its config.json or alone (its metadata names the architecture: default sizes)
    full = build_model("dil_resnet18", pretrained=False, num_classes=2)
    (tmp_path / "bare").mkdir()
    shutil.copy(save_pretrained(full, tmp_path / "full") / "model.safetensors", tmp_path / "bare" / "model.safetensors")
    for weights, saved in ((folder / "model.safetensors", model), (tmp_path / "bare" / "model.safetensors", full)):
        as_saved = build_model(weights, num_classes=None)  # what evaluate builds: the file's own head
        assert as_saved.num_classes == 2 and torch.equal(as_saved.fc.weight, saved.fc.weight)
        recwarn.clear()
        assert build_model(weights).num_classes == 1
        assert any("2-class head was dropped" in str(w.message) for w in recwarn)


def test_a_ddp_weights_file_is_evaluated_with_its_own_head_and_never_a_random_one(manifest, tmp_path, recwarn):
    """Keys saved from a DDP-wrapped model (``module.fc.weight``): evaluate sized the head without the
    prefix, found none, and scored through a new random 1-logit head with a "None-class" warning."""
    from safetensors.torch import save_file

    from dynsnip.hub import save_pretrained

    model = build_model("dil_resnet18", pretrained=False, num_classes=2, channels=(8, 16, 32, 64), stem_width=8)
    with torch.no_grad():
        model.fc.weight.zero_()
        model.fc.bias.copy_(torch.tensor([-3.0, 3.0]))  # softmax: P(fake) = 0.9975 whatever the input
    folder = save_pretrained(model, tmp_path / "two_logit", pretrained_cfg={"input_size": (3, 16, 16)})
    ddp = folder / "ddp.safetensors"  # beside the config.json of its architecture
    save_file({"module." + k: v.contiguous() for k, v in model.state_dict().items()}, str(ddp))
    recwarn.clear()
    report = tmp_path / "report"
    assert main(["evaluate", "--model", str(ddp), "--manifest", str(manifest), "--split", "val", "--workers", "0",
                 "--no-progress", "--out", str(report)]) == 0
    with (tmp_path / "report_videos.csv").open() as f:
        scores = [float(row["score"]) for row in csv.DictReader(f)]
    assert len(scores) == 4 and all(abs(p - 0.9975) < 1e-3 for p in scores)
    assert not [w for w in recwarn if "head" in str(w.message)]
    # fine-tuning it (one logit) replaces the head, and the warning names the file's classes
    assert build_model(ddp).num_classes == 1
    assert any("its 2-class head was dropped" in str(w.message) for w in recwarn)
    assert not any("None-class" in str(w.message) for w in recwarn)
    # as saved (num_classes=None) a head is never replaced: weights of another head are refused
    with pytest.raises(ValueError, match=r"ddp.safetensors: its 2-class head does not fit the model's 1-class head"):
        build_model("dil_resnet18", pretrained=False, num_classes=None, checkpoint=ddp, channels=(8, 16, 32, 64),
                    stem_width=8)


def test_evaluate_lists_unreadable_videos_and_scores_the_rest(manifest, tmp_path, capsys):
    model_dir = tmp_path / "model"
    model = build_model("dil_resnet18", pretrained=False, channels=(8, 16, 32, 64), stem_width=8)
    from dynsnip.hub import save_pretrained

    save_pretrained(model, model_dir, pretrained_cfg={"input_size": (3, 16, 16)})
    broken = tmp_path / "broken.csv"  # the val rows, with absolute paths, and a folder without frames
    header, *rows = manifest.read_text().splitlines()
    rows = [f"{manifest.parent / row.split(',', 1)[0]},{row.split(',', 1)[1]}" for row in rows]
    broken.write_text("\n".join([header, *rows[:6], "gone_away,fake,val,DF", *rows[6:]]) + "\n")
    (tmp_path / "gone_away").mkdir()
    report = tmp_path / "report"
    code = main(["evaluate", "--model", str(model_dir), "--manifest", str(broken), "--split", "val",
                 "--workers", "0", "--no-progress", "--out", str(report)])
    captured = capsys.readouterr()
    assert code == 1
    assert "1 video(s) could not be read" in captured.err and "gone_away: not_found" in captured.err
    data = json.loads(report.with_suffix(".json").read_text())
    assert data["overall"]["num_videos"] == 4 and data["num_failed"] == 1
    assert data["failed"][0]["id"].endswith("gone_away") and "no frame images" in data["failed"][0]["message"]

    # every video fails: each is listed with its reason, in one message without a traceback, exit 1, no report
    all_bad = tmp_path / "all_bad.csv"
    (tmp_path / "empty_folder").mkdir()
    all_bad.write_text(f"path,label\n{tmp_path / 'empty_folder'},real\n{tmp_path / 'gone_away'},fake\n")
    code = main(["evaluate", "--model", str(model_dir), "--manifest", str(all_bad), "--workers", "0", "--no-progress",
                 "--out", str(tmp_path / "all_bad_report")])
    err = capsys.readouterr().err
    assert code == 1
    assert "none of the 2 evaluation videos could be read or scored" in err and "Traceback" not in err
    assert "empty_folder: not_found" in err and "gone_away: not_found" in err
    assert not list(tmp_path.glob("all_bad_report*"))


@pytest.mark.filterwarnings("ignore::dynsnip.data.manifest.ManifestOverlapWarning")  # the same clips train and test
def test_train_and_evaluate_straight_from_video_files(tmp_path, capsys):
    """A manifest of video files (no extract-faces step): faces are detected and cropped on the fly,
    and one video without a face is skipped in training and listed by evaluate."""
    from video_fixtures import carphone, encode, faceless_frames, two_people

    from dynsnip.data import VideoDataset

    encode(tmp_path / "no_face.mp4", faceless_frames())
    manifest = tmp_path / "videos.csv"
    manifest.write_text(f"path,label,split\n{carphone()},real,train\n{two_people()},fake,train\n"
                        f"no_face.mp4,fake,train\n{carphone()},real,test\n{two_people()},fake,test\n")
    model = build_model("dil_resnet18", pretrained=False, channels=(8, 16, 32, 64), stem_width=8)
    recipe = Recipe(model="dil_resnet18", num_snippets=2, test_num_snippets=2, img_size=32)
    dataset = make_dataset(manifest, model, recipe, train=True, split="train")
    assert isinstance(dataset, VideoDataset) and len(dataset) == 3
    pixels, label = dataset[1]
    assert pixels.shape == (3, 8, 32, 32) and label == 1.0
    out = tmp_path / "run"
    assert main(["train", "--train", str(manifest), "--train-split", "train", "--out", str(out), *TINY_ARGS,
                 "--batch-size", "3", "--img-size", "32", "--num-snippets", "2", "--test-num-snippets", "2",
                 "--workers", "0", "--no-progress", "--epochs", "1"]) == 1  # trained and saved; an input failed
    captured = capsys.readouterr()
    printed = captured.out
    assert "skipped 1 of 3 training clips" in printed and "no_face.mp4" in printed
    assert "1 training clip(s) could not be read and were skipped, 0 validation video(s)" in captured.err
    assert (out / "model" / "config.json").is_file()
    history = json.loads((out / "history.json").read_text())
    assert history[0]["skipped"][0]["reason"] == "no_face"
    assert main(["evaluate", "--model", str(out), "--manifest", str(manifest), "--split", "test",
                 "--workers", "0", "--no-progress"]) == 0
    assert "U=2 x T=4 at 32 px" in capsys.readouterr().out


def test_train_refuses_what_would_lose_or_mislabel_a_run(manifest, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["train", "--manifest", str(manifest), "--out", str(out), *TINY_ARGS, "--batch-size", "2",
              "--img-size", "16", "--num-snippets", "1", "--test-num-snippets", "1", "--workers", "0",
              "--no-progress", "--epochs", "2"]
    assert main([*common, "--stop-after-epoch", "1"]) == 0
    capsys.readouterr()
    # resuming with another weight decay: refused, naming it
    assert main([*common, "--weight-decay", "1e-3"]) == 2
    assert "weight_decay 0.0 (saved) vs 0.001 (this command)" in capsys.readouterr().err
    # ... unless asked to continue with the saved recipe (its lr too); what is recorded is what ran
    assert main([*common, "--weight-decay", "1e-3", "--lr", "1e-3", "--use-saved-recipe"]) == 0
    assert "continuing with the saved recipe" in capsys.readouterr().out
    assert json.loads((out / "recipe.json").read_text())["weight_decay"] == 0
    assert json.loads((out / "model" / "config.json").read_text())["training"]["recipe"]["lr"] == 1e-4
    # starting over in the same folder needs --overwrite
    assert main([*common, "--no-resume"]) == 2
    assert "refusing to overwrite an earlier run: pass --overwrite" in capsys.readouterr().err
    assert main([*common, "--no-resume", "--overwrite", "--epochs", "1"]) == 0
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1]


def test_a_run_resumes_only_on_the_data_it_started_with(manifest, tmp_path, capsys):
    out = tmp_path / "run"
    copy = tmp_path / "m.csv"
    with manifest.open() as f:
        rows = [{**r, "path": str(manifest.parent / r["path"])} for r in csv.DictReader(f)]
    write_rows(copy, rows)
    common = ["train", "--out", str(out), *TINY_ARGS, "--batch-size", "2", "--img-size", "16", "--num-snippets", "1",
              "--test-num-snippets", "1", "--workers", "0", "--no-progress", "--epochs", "2"]
    assert main([*common, "--manifest", str(copy), "--stop-after-epoch", "1"]) == 0
    capsys.readouterr()
    assert main([*common, "--manifest", str(manifest)]) == 2  # another manifest
    assert f"train: {copy} [train] (saved) vs {manifest} [train] (this command)" in capsys.readouterr().err
    assert main([*common, "--manifest", str(copy), "--balance-classes"]) == 2  # other clips of it
    assert "balance_classes: False (saved) vs True (this command)" in capsys.readouterr().err
    write_rows(copy, rows[:-1] + [{**rows[-1], "label": "real"}])  # the same file, edited: other labels
    assert main([*common, "--manifest", str(copy)]) == 2
    assert f"train: {copy} was edited since the run started" in capsys.readouterr().err
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1]  # nothing ran
    write_rows(copy, rows)
    assert main([*common, "--manifest", str(copy)]) == 0  # the data it started with: resumed
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [1, 2]


def test_train_refuses_a_validation_split_of_one_class(manifest, tmp_path, capsys):
    one_class = tmp_path / "one_class.csv"
    with manifest.open() as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train" or r["label"] == "fake"]
    write_rows(one_class, [{**r, "path": str(manifest.parent / r["path"])} for r in rows])
    out = tmp_path / "run"
    assert main(["train", "--manifest", str(one_class), "--out", str(out), *TINY_ARGS, "--img-size", "16",
                 "--num-snippets", "1", "--workers", "0", "--no-progress", "--epochs", "1"]) == 2
    assert "the validation set has only fake videos (2)" in capsys.readouterr().err
    assert not (out / "model").exists()


def train_with_gone(manifest, tmp_path, split: str, label: str) -> tuple[int, Path]:
    """``dynsnip train`` (one epoch, tiny) on ``manifest`` with the folders of its ``split`` rows of
    ``label`` gone: the exit code and the run folder."""
    broken = tmp_path / "m.csv"
    with manifest.open() as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        gone = r["split"] == split and r["label"] == label
        r["path"] = str(tmp_path / "gone" / r["path"]) if gone else str(manifest.parent / r["path"])
    write_rows(broken, rows)
    out = tmp_path / "run"
    return main(["train", "--manifest", str(broken), "--out", str(out), *TINY_ARGS, "--img-size", "16",
                 "--num-snippets", "1", "--test-num-snippets", "1", "--batch-size", "2", "--workers", "0",
                 "--no-progress", "--epochs", "1", "--data", "frames"]), out


def test_train_never_points_at_a_model_it_did_not_save(manifest, tmp_path, capsys):
    # both classes are listed for validation, but the real videos' folders are gone: AUC is undefined
    code, out = train_with_gone(manifest, tmp_path, "val", "real")
    assert code == 1
    captured = capsys.readouterr()
    # found before the first epoch (it was after every epoch, each with an undefined AUC that lowered the lr)
    assert "none of the 2 real validation videos could be read (not_found 2; listed above), so no epoch could be " \
           "validated (an AUC needs real and fake videos)" in captured.err and "done:" not in captured.out
    assert not (out / "model").exists() and not (out / "checkpoint").exists()


def test_an_epoch_whose_readable_clips_are_one_class_is_not_a_detector(manifest, tmp_path, capsys):
    """The fake training clips' folders are gone (fewer than half the clips: the epoch runs): its readable
    clips are all real, and a model trained on them is a constant, not a detector. Refused, nothing saved."""
    code, out = train_with_gone(manifest, tmp_path, "train", "fake")
    assert code == 1
    err = capsys.readouterr().err
    assert "epoch 1 trained on 2 real clips and no fake one: every fake training clip that was drawn could not be " \
           "read (not_found 2; listed above)" in err
    assert not (out / "model").exists()


def test_a_validation_split_named_but_absent_is_an_error_not_no_validation(manifest, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--manifest", str(manifest), "--val-split", "test", "--out", str(out), *TINY_ARGS,
                 "--img-size", "16", "--num-snippets", "1", "--workers", "0", "--no-progress", "--epochs", "1"]) == 2
    assert "--val-split test: " in capsys.readouterr().err and not out.exists()


def test_benchmark_trains_from_a_random_init_with_no_pretrained(tmp_path, capsys, monkeypatch):
    """Issue 21, item 17: `benchmark --train --no-pretrained` starts from a random init (as train does),
    instead of needing a saved folder; without --train the option is a usage error."""
    from dynsnip.cli import benchmark
    from test_benchmarks_protocol import write_sequence

    root = tmp_path / "wild"
    for folder, fake in (("real_train", False), ("fake_train", True), ("real_test", False), ("fake_test", True)):
        write_sequence(root / folder / "0" / ("fake" if fake else "real") / "0", fake, seed=len(folder))
    seen = {}

    def stop(args, protocol, recipe, out, device, *test_paths):
        seen.update(model=recipe.model, pretrained=recipe.pretrained)
        raise ValueError("stopped before training")

    monkeypatch.setattr(benchmark, "_train", stop)
    common = ["benchmark", "wilddeepfake", "--data", str(root), "--out", str(tmp_path / "bench"), "--no-progress"]
    assert main([*common, "--train", "--model", "dil_resnet18", "--no-pretrained"]) == 2
    assert seen == {"model": "dil_resnet18", "pretrained": False}
    assert "stopped before training" in capsys.readouterr().err
    assert main([*common, "--train", "--model", "dil_resnet18"]) == 2 and seen["pretrained"] is True
    capsys.readouterr()
    assert main([*common, "--model", "dil_resnet18", "--no-pretrained"]) == 2
    assert "--no-pretrained chooses the random starting point of --train" in capsys.readouterr().err


def test_train_recipe_file_sets_model_and_pretrained(manifest, tmp_path, capsys, monkeypatch):
    """`train --recipe FILE` builds the recipe's model with its pretrained choice; --model /
    --no-pretrained override them only when given (they used to always win with their defaults)."""
    import dynsnip.engine

    built = []

    def stop(source, *, pretrained, **kwargs):
        built.append((str(source), pretrained))
        raise ValueError("stopped before training")

    monkeypatch.setattr(dynsnip.engine, "build_model", stop)
    recipe_file = tmp_path / "recipe.json"
    recipe_file.write_text(Recipe(model="dil_resnet18", pretrained=False, img_size=16).to_json())
    common = ["train", "--manifest", str(manifest), "--workers", "0", "--no-progress"]
    assert main([*common, "--recipe", str(recipe_file), "--out", str(tmp_path / "a")]) == 2
    assert main([*common, "--recipe", str(recipe_file), "--out", str(tmp_path / "b"), "--model", "dil_resnet34"]) == 2
    assert main([*common, "--out", str(tmp_path / "c")]) == 2
    assert main([*common, "--out", str(tmp_path / "d"), "--no-pretrained"]) == 2
    assert "stopped before training" in capsys.readouterr().err
    default = Recipe().model
    assert built == [("dil_resnet18", False), ("dil_resnet34", False), (default, True), (default, False)]


def test_train_with_an_unreadable_validation_set_is_one_line_exit_1(manifest, tmp_path, capsys):
    """Validation rows of which nothing can be read: refused before the first epoch with a
    one-line error and exit 1, not a NothingScoredError traceback after a whole epoch."""
    bad = tmp_path / "bad_val.csv"
    with manifest.open() as f:
        rows = [{**r, "path": str(manifest.parent / r["path"])} for r in csv.DictReader(f) if r["split"] == "train"]
    for i, label in enumerate(("real", "fake")):
        (tmp_path / f"empty_{i}").mkdir()
        rows.append({"path": str(tmp_path / f"empty_{i}"), "label": label, "split": "val", "method": ""})
    write_rows(bad, rows)
    out = tmp_path / "run"
    assert main(["train", "--manifest", str(bad), "--out", str(out), *TINY_ARGS, "--img-size", "16",
                 "--num-snippets", "1", "--test-num-snippets", "1", "--batch-size", "2", "--workers", "0",
                 "--no-progress", "--epochs", "1", "--data", "frames"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("dynsnip train: error:") == 1
    (line,) = [x for x in err.splitlines() if x.startswith("dynsnip train: error:")]
    assert "none of the 2 validation videos could be read (not_found 2" in line
    assert not (out / "checkpoint").exists() and not (out / "model").exists()


def test_a_run_killed_after_its_checkpoint_and_before_its_model_resumes(manifest, tmp_path, capsys, monkeypatch):
    """Each epoch writes checkpoint/ before model/ and val_report.*: a kill between them (here
    while the validation report is written, the model already saved) leaves a run that the same
    command resumes, saving the best epoch's model and report again from the checkpoint; the
    command used to refuse the folder (a model, no checkpoint) without --overwrite."""
    import importlib

    engine_train = importlib.import_module("dynsnip.engine.train")
    out = tmp_path / "run"
    command = ["train", "--manifest", str(manifest), "--out", str(out), *TINY_ARGS, "--batch-size", "2",
               "--img-size", "16", "--num-snippets", "1", "--test-num-snippets", "1", "--workers", "0",
               "--no-progress", "--epochs", "1"]

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(engine_train, "write_report", killed)
        assert main(command) == 130
    capsys.readouterr()
    assert main(command) == 0
    printed = capsys.readouterr().out
    assert "resuming" in printed and "was not completely saved" in printed and "done:" in printed
    assert json.loads((out / "model" / "config.json").read_text())["training"]["epoch"] == 1
    assert json.loads((out / "val_report.json").read_text())["epoch"] == 1
    # a complete run is not saved again
    assert main(command) == 0
    assert "was not completely saved" not in capsys.readouterr().out


def test_evaluate_on_videos_takes_the_face_options_a_folder_was_extracted_with(tmp_path):
    """--detect-every 8 and --margin 1.5 given to evaluate on the videos crop as extract-faces did with
    them: the scores are those of evaluate on the folders, to the last digit (the options were
    predict's and extract-faces' only, so a folder made with other settings could not be matched
    from its videos)."""
    import shutil

    from video_fixtures import carphone

    from dynsnip.hub import save_pretrained

    torch.manual_seed(0)
    model_dir = save_pretrained(build_model("dil_resnet18", pretrained=False, channels=(8, 16, 32, 64), stem_width=8),
                                tmp_path / "model", pretrained_cfg={"input_size": (3, 16, 16)})
    shutil.copy(carphone(), tmp_path / "real.mp4")
    shutil.copy(carphone(), tmp_path / "fake.mp4")
    videos = tmp_path / "videos.csv"
    videos.write_text("path,label\nreal.mp4,real\nfake.mp4,fake\n")
    settings = ["--detect-every", "8", "--margin", "1.5"]
    assert main(["extract-faces", "--manifest", str(videos), "--out", str(tmp_path / "faces"), *settings]) == 0

    def scores(manifest, *options):
        out = tmp_path / f"report{len(list(tmp_path.glob('report*.json')))}"
        assert main(["evaluate", "--model", str(model_dir), "--manifest", str(manifest), "--workers", "0",
                     "--no-progress", "--num-snippets", "2", "--out", str(out), *options]) == 0
        return {v["id"].rsplit("/", 1)[-1].removesuffix(".mp4"): v["score"]
                for v in json.loads(out.with_suffix(".json").read_text())["videos"]}

    from_folders = scores(tmp_path / "faces" / "faces.csv")
    assert scores(videos, *settings) == from_folders
    assert scores(videos) != from_folders  # the defaults (k = 4, margin 1.3) crop otherwise
    assert main(["evaluate", "--model", str(model_dir), "--manifest", str(videos), "--detect-every", "0"]) == 2
