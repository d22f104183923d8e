"""The embedded demo: face-region pseudo-fakes of bundled footage (temporal / both rows), the
earlier flicker task (kept as a cross-manipulation test set), and the demo job."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dynsnip.data.pseudo_fakes import PseudoFakeGenerator
from dynsnip.demo.pseudo_fake_clips import PseudoFakeClips
from dynsnip.demo.run import MARKER, DemoConfig, run_demo
from dynsnip.demo.synthetic import FaceFootage, FaceRerender, FlickerClips, face_footage


def ks_statistic(a, b) -> float:
    """Two-sample Kolmogorov-Smirnov distance between empirical CDFs."""
    a, b = np.sort(np.ravel(a)), np.sort(np.ravel(b))
    grid = np.concatenate([a, b])
    return float(np.abs(np.searchsorted(a, grid, "right") / len(a) - np.searchsorted(b, grid, "right") / len(b)).max())


def test_parameter_paths_same_marginal_different_smoothness():
    rerender = FaceRerender()
    rng = np.random.default_rng(0)
    real = np.stack([rerender.paths(16, False, rng) for _ in range(3000)])  # (N, 16, 2)
    fake = np.stack([rerender.paths(16, True, rng) for _ in range(3000)])
    for t in (0, 7, 15):  # any single frame: same distribution of both parameters
        for k in range(2):
            assert ks_statistic(real[:, t, k], fake[:, t, k]) < 0.05
    # only the frame-to-frame change differs: bounded by 2*pi/P for reals, large for fakes
    real_step = np.abs(np.diff(real, axis=1))
    fake_step = np.abs(np.diff(fake, axis=1))
    assert real_step.max() <= 2 * np.pi / rerender.period[0] + 1e-9
    assert fake_step.mean() > 0.75 and fake_step.mean() > 5 * real_step.mean()
    assert (fake_step > real_step.max()).mean() > 0.7  # most fake steps are larger than any real one


def synthetic_footage(frames: int = 24, size: int = 16, seed: int = 0, still: bool = False) -> FaceFootage:
    """Random crops; with ``still`` the same crop in every frame (so only the rendering moves)."""
    rng = np.random.default_rng(seed)
    crops = rng.integers(40, 200, size=(1 if still else frames, size, size, 3), dtype=np.uint8)
    return FaceFootage("noise", np.repeat(crops, frames // len(crops), 0), np.arange(frames), Path("noise.mp4"))


def test_rendered_clips_only_differ_in_temporal_consistency():
    footage = synthetic_footage(still=True)
    clips = FlickerClips([footage], num_snippets=2, snippet_len=4, window=16, stride=8, draws=300, seed=1)
    frames = {0: [], 1: []}
    for i in range(len(clips)):
        x, label = clips.render(i)
        frames[label].append(x.astype(np.float32).mean(axis=(2, 3)))  # (U*T, 3) face colour per frame
    real, fake = np.stack(frames[0]), np.stack(frames[1])
    assert len(real) == len(fake) == 2 * 300  # every window once as real, once as fake
    # per frame: same colour distribution for both labels
    for t in (0, 5):
        for c in range(3):
            assert ks_statistic(real[:, t, c], fake[:, t, c]) < 0.1
    # within a snippet the fakes flicker
    real_jump = np.abs(np.diff(real[:, :4], axis=1)).mean()
    fake_jump = np.abs(np.diff(fake[:, :4], axis=1)).mean()
    assert fake_jump > 3 * real_jump


def test_flicker_clips_items():
    footage = synthetic_footage(frames=20)
    test_set = FlickerClips([footage], num_snippets=2, snippet_len=4, window=16, stride=4, draws=2)
    assert len(test_set) == 2 * 2 * 2  # 2 windows x 2 draws x (real, fake)
    x, y = test_set[0]
    assert x.shape == (3, 8, 16, 16) and x.dtype == torch.float32
    assert sorted(int(test_set[i][1]) for i in range(len(test_set))) == [0] * 4 + [1] * 4
    assert torch.equal(test_set[3][0], test_set[3][0])  # evaluation items are fixed
    ids = [test_set.item_info(i)["id"] for i in range(len(test_set))]
    assert len(set(ids)) == len(ids)
    assert {test_set.item_info(i)["method"] for i in range(len(test_set))} == {"real", "flicker"}
    train_set = FlickerClips([footage], num_snippets=2, snippet_len=4, train=True)
    torch.manual_seed(0)
    a = train_set[1][0]
    assert not torch.equal(a, train_set[1][0])  # training items are re-rendered on every read
    torch.manual_seed(0)
    assert torch.equal(a, train_set[1][0])  # ... from torch's generator: seeded epochs repeat
    with pytest.raises(ValueError, match="square RGB crops"):
        FaceRerender().apply(np.zeros((2, 8, 9, 3), np.uint8), np.zeros((2, 2)))


def test_pseudo_fake_clips_reals_are_the_footage_fakes_its_blend():
    footage = synthetic_footage(frames=20)
    clips = PseudoFakeClips([footage], num_snippets=2, snippet_len=4, window=16, stride=4, draws=2,
                            generator=PseudoFakeGenerator(mode="both"))
    assert len(clips) == 2 * 2 * 2
    spec, indices, _ = clips.sample(0)
    real, label = clips.render(0)
    assert label == 0 and np.array_equal(real, footage.crops[spec.start + indices])  # untouched footage
    fake, label = clips.render(1)
    assert label == 1 and not np.array_equal(fake, real) and np.array_equal(fake, clips.render(1)[0])
    assert clips.item_info(1)["method"] == "pseudo-fake (both)"
    twins = PseudoFakeClips([footage], 2, 4, window=16, stride=4, generator=PseudoFakeGenerator(mode="temporal"))
    assert not np.array_equal(twins.render(0)[0], real)  # temporal: the real item is the consistent twin
    reals_only = PseudoFakeClips([footage], 2, 4, window=16, stride=4, labels=(0,), generator=PseudoFakeGenerator())
    assert {reals_only.items[i].label for i in range(len(reals_only))} == {0}
    # the demo's training set: the engine makes the twins and the fakes itself, so its reals are the untouched
    # footage (a twin there was blended a second time by the engine)
    untouched = PseudoFakeClips([footage], 2, 4, window=16, stride=4, labels=(0,), twin_reals=False,
                                generator=PseudoFakeGenerator(mode="temporal"))
    spec, indices, _ = untouched.sample(0)
    assert np.array_equal(untouched.render(0)[0], footage.crops[spec.start + indices])


def test_demo_training_set_gives_the_untouched_footage(monkeypatch, tmp_path):
    """run_demo's training set is built with twin_reals=False (checked where it is made, without training)."""
    import dynsnip.demo.run as demo_run

    made = []

    class Stop(Exception):
        pass

    def spy(*args, **kwargs):
        made.append(kwargs)
        raise Stop

    monkeypatch.setattr(demo_run, "PseudoFakeClips", spy)
    monkeypatch.setattr(demo_run, "load_footage", lambda config, log: ([], []))
    with pytest.raises(Stop):
        run_demo(DemoConfig(out=tmp_path / "demo", progress=False))
    assert made[0]["twin_reals"] is False and made[0]["train"] is True


@pytest.mark.parametrize("option, value, message", [
    ("--epochs", "0", "--epochs 0: expected a whole number of at least 1"),
    ("--size", "4", "--size 4: expected a whole number of at least 8"),
    ("--batch-size", "0", "--batch-size 0"),
    ("--test-draws", "0", "--test-draws 0"),
    ("--threads", "-1", "--threads -1"),
    ("--lr", "nan", "--lr nan: expected a positive, finite learning rate"),
])
def test_demo_bad_options_are_usage_errors_before_anything_runs(option, value, message, tmp_path, capsys, monkeypatch):
    import dynsnip.demo.run as demo_run
    from dynsnip.cli import main

    monkeypatch.setattr(demo_run, "run_demo", lambda config: pytest.fail("ran with a bad option"))
    assert main(["demo", "--out", str(tmp_path / "d"), option, value]) == 2
    assert message in capsys.readouterr().err


def test_demo_without_dlib_is_a_usage_error(tmp_path, capsys, monkeypatch):
    import sys

    import dynsnip.demo.run as demo_run
    from dynsnip.cli import main

    monkeypatch.setitem(sys.modules, "dlib", None)
    monkeypatch.setattr(demo_run, "run_demo", lambda config: pytest.fail("ran without dlib"))
    assert main(["demo", "--out", str(tmp_path / "d")]) == 2
    assert "dlib" in capsys.readouterr().err


def test_demo_stopped_by_sigterm_exits_143_like_ctrl_c(tmp_path, capsys, monkeypatch):
    """SIGTERM (a scheduler's stop) is turned into the interrupt Ctrl-C raises, so run_demo's cleanup
    (its temporary training folder) runs; it killed the process outright before."""
    import os
    import signal
    import time

    import dynsnip.demo.run as demo_run
    from dynsnip.cli import main

    def stopped(config):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        pytest.fail("SIGTERM did not stop the demo")

    monkeypatch.setattr(demo_run, "run_demo", stopped)
    assert main(["demo", "--out", str(tmp_path / "d"), "--no-progress"]) == 143
    assert "interrupted (SIGTERM)" in capsys.readouterr().err


def test_face_footage_from_bundled_video():
    from dynsnip.data import bundled_video

    footage = face_footage(bundled_video("carphone_pristine"), size=24, max_frames=16, detect_every=4)
    assert footage.crops.shape == (16, 24, 24, 3) and footage.crops.dtype == np.uint8
    assert footage.frame_indices.tolist() == list(range(16))
    boxes = footage.crop_boxes
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 176).all() and (boxes[:, 3] <= 144).all()
    assert ((boxes[:, 2] - boxes[:, 0]) == (boxes[:, 3] - boxes[:, 1])).all()  # square crops


SMALL = dict(size=16, channels=(8, 16, 32, 64), stem_width=8, window=8, epochs=1, max_frames=24, test_draws=1,
             threads=1, progress=False)


def test_demo_job_end_to_end_small(tmp_path, capsys):
    from dynsnip.cli import main
    from dynsnip.data import VideoReader
    from dynsnip.hub.load import load_model

    out = tmp_path / "demo"
    result = run_demo(DemoConfig(out=out, **SMALL), log=lambda m: None)
    assert [(r["mode"], r["key"]) for r in result.rows] == [
        ("temporal", "dil"), ("temporal", "frame_level"), ("both", "dil"), ("both", "frame_level")]
    for row in result.rows:
        assert 0.0 <= row["auc"] <= 1.0 and row["train_seconds"] > 0
    report = json.loads((out / MARKER).read_text())
    assert report["recipes"]["temporal"]["pseudo_fakes"] == "temporal"  # the engine made the fakes
    assert report["data"]["train_footage"] == ["carphone_pristine", "foreman_cif_BA1_FT_C"]
    assert not set(report["data"]["train_footage"]) & set(report["data"]["test_footage"])  # held-out footage
    model = load_model(out)
    assert model.dil_args["sim_stages"] == [1, 2, 3, 4] and model.test_num_snippets == 4
    assert model.pretrained_cfg["input_size"][-1] == 16
    assert load_model(out / "frame_level").dil_args["sim_stages"] == []
    # each saved detector's card states its recipe and its score on the held-out footage
    folders = {("temporal", "dil"): out, ("temporal", "frame_level"): out / "frame_level",
               ("both", "dil"): out / "both", ("both", "frame_level"): out / "both" / "frame_level"}
    for (mode, key), folder in folders.items():
        config = json.loads((folder / "config.json").read_text())
        (test,) = config["evaluation"]
        row = next(r for r in result.rows if (r["mode"], r["key"]) == (mode, key))
        assert test["overall"]["auc"] == pytest.approx(row["auc"]) and test["source"] == "dynsnip demo"
        assert config["training"]["recipe"]["epochs"] == config["training"]["epoch"] == SMALL["epochs"]
        assert config["training"]["recipe"]["pseudo_fakes"] == mode
        assert "## Evaluation" in (folder / "README.md").read_text()
    assert "without the SIM modules" in (out / "frame_level" / "README.md").read_text()  # its card says what it is
    assert "with Intra-Snippet Inconsistency" in (out / "README.md").read_text()
    assert [p.name for p in result.samples] == ["real_Zhling_1280x720.mp4", "fake_Zhling_1280x720.mp4"]
    with VideoReader(result.samples[1]) as video:
        assert video.num_frames == 19 and video.size == (640, 360)
        assert config["training"]["scope"].endswith(": not a detector for real footage")  # issue 21, item 9
        assert "| scope | the embedded demo task" in (folder / "README.md").read_text()
    assert result.out.is_absolute() and all(p.is_absolute() for p in result.samples)
    # the saved detector is what `dynsnip predict` loads; every report says what it is
    capsys.readouterr()
    code = main(["predict", "--checkpoint", str(out), "--no-progress", "--workers", "0", *map(str, result.samples)])
    printed = capsys.readouterr().out
    assert code == 0 and "real_Zhling" in printed and "fake_Zhling" in printed
    # a second run stopped while it saves (Ctrl-C, a full disk) leaves the first one's folder as it was: the new
    # folder is written beside it and put in its place only when whole
    import dynsnip.demo.run as demo_run

    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    real_save = demo_run.save_model
    calls = []

    def interrupted_save(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_save(*args, **kwargs)

    demo_run.save_model = interrupted_save
    try:
        with pytest.raises(KeyboardInterrupt):
            run_demo(DemoConfig(out=out, overwrite=True, **SMALL), log=lambda m: None)
    finally:
        demo_run.save_model = real_save
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # no half-written folder beside it
    assert printed.splitlines()[0] == (
        f"detector: {out}, trained on dynsnip demo: bundled real face footage and its temporal pseudo-fakes "
        f"({result.data['train_clips_per_epoch']} real and 0 fake training items; a temporal pseudo-fake of every "
        "real one; 16 px crops); scope: the embedded demo task (two people's bundled footage, 16 px crops): "
        "not a detector for real footage")
    assert main(["predict", "--checkpoint", str(out), "--no-progress", "--workers", "0", "--json",
                 str(result.samples[0])]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["trained_on"].endswith("not a detector for real footage")
    assert report["training_data"]["pseudo_fakes"] == "temporal" and report["training_data"]["num_train_fake"] == 0
    # a folder the demo wrote is replaced by the next demo run only with --overwrite: they are the user's results
    with pytest.raises(FileExistsError, match="earlier `dynsnip demo` run's results.*--overwrite"):
        run_demo(DemoConfig(out=out, samples=False, **SMALL), log=lambda m: None)
    assert main(["demo", "--out", str(out), "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "samples").is_dir()
    run_demo(DemoConfig(out=out, samples=False, overwrite=True, **SMALL), log=lambda m: None)
    assert (out / MARKER).is_file() and not (out / "samples").exists()


def test_demo_never_overwrites_a_foreign_folder(tmp_path, capsys):
    from dynsnip.cli import main

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    assert main(["demo", "--out", str(foreign), "--no-progress"]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (foreign / "thesis.tex").read_text() == "precious"
    with pytest.raises(FileExistsError, match="not written by `dynsnip demo`"):
        run_demo(DemoConfig(out=foreign))


def test_demo_command_prints_absolute_paths(tmp_path, capsys, monkeypatch):
    """Issue 21, item 17: the demo's folder (./dynsnip-demo by default) is printed as an absolute path,
    and the command to try names the detector with --checkpoint."""
    import dynsnip.demo.run as demo_run
    from dynsnip.cli import main
    from dynsnip.demo.run import DemoResult

    def fake_demo(config):
        out = Path(config.out)
        return DemoResult(rows=[], out=out, seconds=1.0, data={"test_clips": 0},
                          samples=[out / "samples" / "real_x.mp4", out / "samples" / "fake_x.mp4"])

    monkeypatch.setattr(demo_run, "run_demo", fake_demo)
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    folder = tmp_path / "dynsnip-demo"
    assert f"DIL detector saved to {folder} (hub layout; frame-level model in {folder / 'frame_level'})" in printed
    assert (f"try it:  dynsnip predict --checkpoint {folder} {folder / 'samples' / 'real_x.mp4'} "
            f"{folder / 'samples' / 'fake_x.mp4'}") in printed


def _demo_row(mode: str, key: str, auc: float) -> dict:
    return {"mode": mode, "key": key, "name": key, "auc": auc, "accuracy": 0.5, "mean_score_real": 0.5,
            "mean_score_fake": 0.5, "train_seconds": 1.0, "test_seconds": 0.1, "params": 1e6}


@pytest.mark.parametrize("frame_auc,learns", [(0.53, False), (0.65, False), (0.35, False), (0.66, True), (0.9, True)])
def test_demo_claims_the_both_row_only_when_the_frame_level_model_is_clearly_above_chance(
        tmp_path, capsys, monkeypatch, frame_auc, learns):
    """The `both` sentence says the frame-level model learns the per-clip artefact only at a test AUC
    more than NEAR_CHANCE (0.15) above 0.5, the margin the `temporal` row calls near chance; at chance
    (AUC 0.53, as one short run gave) it prints a note that it did not show instead."""
    import dynsnip.demo.run as demo_run
    from dynsnip.cli import main
    from dynsnip.demo.run import DemoResult

    rows = [_demo_row("temporal", "dil", 0.99), _demo_row("temporal", "frame_level", 0.51),
            _demo_row("both", "dil", 0.51), _demo_row("both", "frame_level", frame_auc)]
    monkeypatch.setattr(demo_run, "run_demo", lambda config: DemoResult(
        rows=rows, out=Path(config.out), seconds=1.0, data={"test_clips": 4}, samples=[]))
    assert main(["demo", "--out", str(tmp_path / "d"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "temporal: DIL separates the clips" in printed
    assert ("the frame-level model learns it too" in printed) == learns
    assert ("note: on the both row the frame-level model did not get clearly above chance" in printed) == (not learns)
    assert f"AUC {frame_auc:.2f}" in printed and "DIL 0.51" in printed


def test_demo_temporal_sentence_needs_the_gap():
    from dynsnip.cli.demo import summary_lines

    rows = [_demo_row("temporal", "dil", 0.7), _demo_row("temporal", "frame_level", 0.5)]
    assert summary_lines(rows) == [
        "note: the expected gap on the temporal row (DIL clearly above the frame-level model, the latter near AUC "
        "0.5) did not show up with these settings; try more --epochs."]
    rows = [_demo_row("temporal", "dil", 0.9), _demo_row("temporal", "frame_level", 0.7)]
    assert summary_lines(rows)[0].startswith("note: the expected gap")
    rows = [_demo_row("temporal", "dil", 0.9), _demo_row("temporal", "frame_level", 0.6)]
    assert summary_lines(rows)[0].startswith("temporal: DIL separates")


def test_demo_refuses_an_out_it_cannot_write_before_training(tmp_path, capsys, monkeypatch):
    """A read-only working directory was found only after the training (a traceback minutes in)."""
    import os

    import dynsnip.demo.run as demo_run
    from dynsnip.cli import main

    if os.geteuid() == 0:  # root writes anywhere: stand a file in for the parent folder instead
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "demo"
    else:
        (tmp_path / "ro").mkdir(mode=0o555)
        out = tmp_path / "ro" / "demo"
    monkeypatch.setattr(demo_run, "_run", lambda *a: pytest.fail("trained although --out cannot be written"))
    assert main(["demo", "--out", str(out), "--no-progress"]) == 2  # a usage error: nothing was done
    err = capsys.readouterr().err
    assert f"--out {out}: cannot write beside it" in err and "Traceback" not in err
