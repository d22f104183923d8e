"""``dynsnip predict`` and ``dynsnip extract-faces`` end to end on real and broken files."""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file
from video_fixtures import RAW_H264, carphone, decode_all, encode, faceless_frames, two_people, write_audio_only, write_text_as_mp4, write_truncated_mp4

import dynsnip  # also registers dil_*
from dynsnip.cli import main
from dynsnip.cli.extract_workers import _extract as original_extract
from dynsnip.data import sample_snippets
from dynsnip.scoring import fake_probability, score_clip


def detector_state(num_classes=1, bias=(2.0,), zero_weights=True, seed=0):
    torch.manual_seed(seed)
    model = timm.create_model("dil_resnet18", num_classes=num_classes)
    with torch.no_grad():
        if zero_weights:
            model.fc.weight.zero_()
        model.fc.bias.copy_(torch.tensor(bias))
    return model


def logit(p):
    return math.log(p / (1 - p))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    return dict(
        carphone=carphone(),
        two_people=two_people(),
        text=write_text_as_mp4(d / "notes.mp4"),
        audio=write_audio_only(d / "speech.wav"),
        raw=shutil.copy(RAW_H264, d / "call.264"),
        no_face=encode(d / "no_face.mp4", faceless_frames()),
        truncated=write_truncated_mp4(carphone(), d / "cut.mp4"),
        missing=d / "missing.mp4",
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A two-class dil_resnet18 with a random classifier, saved by dynsnip.save_pretrained with a
    64x64 input size (its config.json carries it; predict crops to it: a small, fast test)."""
    from dynsnip.hub import save_pretrained

    model = detector_state(num_classes=2, bias=(0.1, -0.1), zero_weights=False)
    return save_pretrained(model, tmp_path_factory.mktemp("ckpt") / "detector", pretrained_cfg={"input_size": (3, 64, 64)})


@pytest.fixture(scope="module")
def report(videos, checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.json"
    args = ["predict", *map(str, videos.values()), "--checkpoint", str(checkpoint),
            "--snippets", "2", "--json", "--output", str(out), "--no-progress"]
    capture = pytest.MonkeyPatch()
    import io
    import sys

    stdout = io.StringIO()
    capture.setattr(sys, "stdout", stdout)
    try:
        code = main(args)
    finally:
        capture.undo()
    return code, json.loads(stdout.getvalue()), out


def test_json_report_scores_good_videos_and_reports_bad_ones(report, videos, checkpoint):
    code, data, out = report
    assert code == 1  # some videos failed
    assert json.loads(out.read_text()) == data  # --output holds the same report
    assert data["model"] == "dil_resnet18" and data["num_snippets"] == 2 and data["snippet_len"] == 4
    assert data["weights"] == str(checkpoint)
    # saved without a training record (as every detector before issue 21): the report says so
    assert data["trained_on"] == "training data not recorded" and data["training_data"] is None
    by_path = {v["path"]: v for v in data["videos"]}
    assert list(by_path) == [str(p) for p in videos.values()]  # input order kept
    reasons = {name: by_path[str(path)].get("reason") for name, path in videos.items()}
    assert reasons == dict(carphone=None, two_people=None, text="corrupt", audio="no_video_stream",
                           raw="unseekable", no_face="no_face", truncated="corrupt", missing="not_found")
    assert "no timestamps" in by_path[str(videos["raw"])]["error"]
    assert "lists 120 frames" in by_path[str(videos["truncated"])]["error"]
    assert data["summary"] == dict(videos=8, scored=2, failed=6, partial=0)


def test_loader_processes_change_nothing_but_speed(report, videos, checkpoint, capsys):
    """The report fixture decoded in worker processes (the default); in this process, the same
    videos give the same report: same order, probabilities, snippets and failure reasons."""
    from dynsnip.scoring import DEFAULT_WORKERS

    assert DEFAULT_WORKERS > 0
    capsys.readouterr()
    code = main(["predict", *map(str, videos.values()), "--checkpoint", str(checkpoint), "--snippets", "2",
                 "--json", "--no-progress", "--workers", "0"])
    assert code == report[0] and json.loads(capsys.readouterr().out) == report[1]
    assert main(["predict", str(videos["carphone"]), "--workers", "-1"]) == 2
    assert "--workers must be 0 or more" in capsys.readouterr().err


def test_predict_videos_is_the_library_call_behind_the_command(report, videos, checkpoint):
    """dynsnip.predict_videos gives the entries the command prints, failures included."""
    from dynsnip.data import FaceClipLoader
    from dynsnip.hub import load_model

    model = load_model(checkpoint)
    loader = FaceClipLoader.from_model(model, num_snippets=2)
    results = dynsnip.predict_videos(model, videos.values(), loader=loader, workers=0)
    assert results == report[1]["videos"]
    # the default loader takes the model's settings: its test U (8 here), its 64 px input
    (carphone,) = dynsnip.predict_videos(model, str(videos["carphone"]))  # one path
    assert len(carphone["snippets"]) == model.test_num_snippets == 8


class InterruptedAt:
    """A clip loader that raises KeyboardInterrupt (Ctrl-C) when it reaches one video."""

    def __init__(self, loader, stop_at: str) -> None:
        self.loader, self.stop_at = loader, stop_at

    @property
    def face_detector(self):
        return self.loader.face_detector

    def load_tracks(self, path, generator=None):
        if Path(path).name == self.stop_at:
            raise KeyboardInterrupt
        return self.loader.load_tracks(path, generator)


def test_ctrl_c_keeps_the_videos_scored_before_it(report, videos, checkpoint, tmp_path, capsys, monkeypatch):
    """predict_videos: Ctrl-C raises PredictionInterrupted (a KeyboardInterrupt) holding the entries of the
    videos finished before it, in order, and the paths not scored. dynsnip predict: the report of those
    videos, marked interrupted and naming the others, printed and written to --output; exit code 130."""
    from dynsnip.data import FaceClipLoader
    from dynsnip.hub import load_model
    from dynsnip.scoring import PredictionInterrupted

    model = load_model(checkpoint)
    paths = list(videos.values())
    loader = InterruptedAt(FaceClipLoader.from_model(model, num_snippets=2), stop_at=Path(paths[3]).name)
    with pytest.raises(PredictionInterrupted) as stop:
        dynsnip.predict_videos(model, paths, loader=loader, workers=0)
    assert isinstance(stop.value, KeyboardInterrupt)
    assert stop.value.results == report[1]["videos"][:3]
    assert stop.value.not_scored == [Path(p) for p in paths[3:]]

    def interrupted_predict(model, shard, **kwargs):
        raise PredictionInterrupted(report[1]["videos"][:3], [Path(p) for p in shard[3:]])

    monkeypatch.setattr("dynsnip.cli.predict.predict_videos", interrupted_predict)
    out = tmp_path / "partial.json"
    code = main(["predict", *map(str, paths[:6]), "--checkpoint", str(checkpoint), "--snippets", "2",
                 "--output", str(out), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 130
    assert "interrupted (Ctrl-C): 3 of 6 videos not scored" in captured.out
    assert f"the 3 video(s) finished before it are reported above and in {out}" in captured.err
    written = json.loads(out.read_text())
    assert written["interrupted"] is True and written["videos"] == report[1]["videos"][:3]
    assert written["not_scored"] == [str(p) for p in paths[3:6]]
    assert written["summary"]["not_scored"] == 3 and written["summary"]["videos"] == 3


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_stop_signals_raise_on_the_first_signal_and_only_note_the_next():
    """StopSignals: SIGTERM raises KeyboardInterrupt as Ctrl-C does; a second signal (torchrun forwards the
    terminal's Ctrl-C again) is noted, not raised, so the report of what was finished is written; after
    shield() nothing raises; the handlers before it come back."""
    import signal
    import time

    from dynsnip.cli.interrupts import StopSignals

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopSignals() as stop:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(2)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        assert (stop.received, stop.later, stop.exit_code, stop.name) == (signal.SIGTERM, 1, 143, "SIGTERM")
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    with StopSignals() as stop:
        stop.shield()  # the work is done: a signal now is only noted
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
        assert (stop.received, stop.exit_code, stop.name) == (signal.SIGINT, 130, "Ctrl-C")


def run_stopper(action: str, args: list[str], tmp_path: Path):
    """``dynsnip predict args`` in a process group of its own, stopped as ``action`` says (tests/predict_stopper.py)."""
    import subprocess

    tests = Path(__file__).resolve().parent
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(tests.parent), str(tests), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, str(tests / "predict_stopper.py"), str(tmp_path), action, "predict", *args],
                          capture_output=True, text=True, timeout=300, env=env, start_new_session=True)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("workers, action", [("0", "term-main:3"), ("2", "term-group:2")])
def test_sigterm_keeps_the_videos_scored_before_it(checkpoint, tmp_path, workers, action):
    """SIGTERM (a scheduler's stop, docker stop) is handled as Ctrl-C: the report of the videos finished,
    marked interrupted, and exit code 143. Sent to the whole process group, the loader processes ignore
    it: no video is reported failed because its loader died."""
    videos = tmp_path / "videos"
    videos.mkdir()
    for i in range(6):
        shutil.copy(carphone(), videos / f"{i}.mp4")
    out = tmp_path / "partial.json"
    proc = run_stopper(action, [str(videos), "--checkpoint", str(checkpoint), "--snippets", "2", "--workers", workers,
                                "--face-detector", "none", "--no-progress", "--device", "cpu", "--output", str(out)],
                       tmp_path)
    assert proc.returncode == 143, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    written = json.loads(out.read_text())
    assert written["interrupted"] is True
    assert [v["status"] for v in written["videos"]] == ["ok"] * len(written["videos"])
    scored = [Path(v["path"]).name for v in written["videos"]]
    assert scored + [Path(p).name for p in written["not_scored"]] == [f"{i}.mp4" for i in range(6)]
    if workers == "0":  # stopped before loading the third video: two were scored
        assert scored == ["0.mp4", "1.mp4"]
    assert "interrupted (SIGTERM)" in proc.stderr and "marked \"interrupted\"" in proc.stderr


class CrashesInWorkers:
    """A clip loader whose worker process dies on one video, as a decoder crash or a full
    /dev/shm would kill it; in the main process it loads that video normally."""

    def __init__(self, loader, crash_on: str) -> None:
        self.loader, self.crash_on = loader, crash_on

    @property
    def face_detector(self):
        return self.loader.face_detector

    def _crash(self, path):
        if torch.utils.data.get_worker_info() is not None and Path(path).name == self.crash_on:
            os._exit(3)

    def __call__(self, path, generator=None):
        self._crash(path)
        return self.loader(path, generator)

    def load_tracks(self, path, generator=None):  # every face (predict's default)
        self._crash(path)
        return self.loader.load_tracks(path, generator)


def test_dead_loader_processes_lose_no_video(report, videos, checkpoint):
    from dynsnip.data import FaceClipLoader
    from dynsnip.hub import load_model

    model = load_model(checkpoint)
    loader = CrashesInWorkers(FaceClipLoader.from_model(model, num_snippets=2), crash_on=Path(videos["two_people"]).name)
    with pytest.warns(RuntimeWarning, match=r"video loader process\(es\) failed after \d+ of 8 videos"):
        results = dynsnip.predict_videos(model, videos.values(), loader=loader, workers=2)
    assert results == report[1]["videos"]  # every video, in order, with the same numbers


def test_snippet_scores_locate_the_sampled_frames(report, videos):
    _, data, _ = report
    result = next(v for v in data["videos"] if v["path"] == str(videos["carphone"]))
    assert result["status"] == "ok" and result["num_frames"] == 120
    expected = sample_snippets(120, 2, 4)
    snippets = result["snippets"]
    assert [(s["first_frame"], s["last_frame"]) for s in snippets] == [(int(r[0]), int(r[-1])) for r in expected]
    assert snippets[1]["start_s"] == pytest.approx(int(expected[1, 0]) * 1001 / 30000, abs=1e-3)
    assert all(s["face_found"] for s in snippets)
    # the video logit is the mean of the snippet logits (linear head over averaged frames); for
    # this two-class head logit(P(fake)) = l_fake - l_real is linear in them as well
    mean_logit = sum(logit(s["fake_probability"]) for s in snippets) / len(snippets)
    assert mean_logit == pytest.approx(logit(result["fake_probability"]), abs=2e-3)
    assert result["verdict"] == ("fake" if result["fake_probability"] >= 0.5 else "real")


def test_score_clip_matches_the_model_head():
    model = detector_state(bias=(0.3,), zero_weights=False).eval()
    x = torch.randn(2, 3, 3 * 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        video, snippets = score_clip(model, x)
        feats = model.forward_features(x)
        assert torch.allclose(video, model(x), atol=1e-5)
        for u in range(3):  # a snippet's logit: the head applied to that snippet's frames only
            assert torch.allclose(snippets[:, u], model.forward_head(feats[:, :, 4 * u: 4 * u + 4]), atol=1e-5)
    assert torch.allclose(snippets.mean(1), video, atol=1e-5)
    assert not torch.allclose(snippets[:, 0], snippets[:, 1])


def test_table_output_directory_input_and_overwrite(tmp_path, capsys):
    folder = tmp_path / "in" / "sub"
    folder.mkdir(parents=True)
    shutil.copy(two_people(), folder / "clip.mp4")
    (folder / "README.txt").write_text("not a video, and not picked up from a directory")
    write_text_as_mp4(folder / "broken.mp4")
    ckpt = tmp_path / "fake.safetensors"
    save_file(detector_state(bias=(2.0,)).state_dict(), str(ckpt))
    existing = tmp_path / "report.json"
    existing.write_text("keep me")

    code = main(["predict", str(tmp_path / "in"), "--model", "dil_resnet18", "--checkpoint", str(ckpt),
                 "--snippets", "1", "--output", str(existing), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2 and "refusing to overwrite" in captured.err
    assert existing.read_text() == "keep me"

    code = main(["predict", str(tmp_path / "in"), "--model", "dil_resnet18", "--checkpoint", str(ckpt),
                 "--snippets", "1", "--output", str(existing), "--overwrite", "--no-progress"])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0] == f"detector: {ckpt}, training data not recorded"  # a bare weights file says nothing of its data
    assert out[1].split() == ["VIDEO", "P(FAKE)", "VERDICT", "DETAILS"]
    clip_line = next(line for line in out if line.startswith(str(folder / "clip.mp4")))
    assert clip_line.split()[1:3] == [f"{1 / (1 + math.exp(-2)):.4f}", "FAKE"]  # zero weights: sigmoid(bias)
    assert any("snippet 0: frames 2-5" in line for line in out)  # 9 frames, U=1: the middle snippet
    broken = next(line for line in out if line.startswith(str(folder / "broken.mp4")))
    assert "FAILED" in broken and "corrupt: not a readable video container" in broken
    assert out[-1] == "2 video(s): 1 scored, 1 failed"
    assert json.loads(existing.read_text())["summary"] == dict(videos=2, scored=1, failed=1, partial=0)


def test_one_verdict_whatever_faces_mode_next_to_the_threshold(tmp_path, capsys):
    """Probability 0.509048 against threshold 0.50903: one verdict in both modes, taken on the unrounded
    value (fake), and reported as 0.5091, rounded on the verdict's side of the threshold (the nearest
    rounding, 0.509, read "real" and once decided the verdict; --faces largest compared the unrounded
    value: the two modes disagreed)."""
    ckpt = tmp_path / "edge.safetensors"
    save_file(detector_state(bias=(logit(0.509048),)).state_dict(), str(ckpt))  # zero weights: sigmoid(bias)
    verdicts = {}
    for faces in ("all", "largest"):
        assert main(["predict", str(carphone()), "--model", "dil_resnet18", "--checkpoint", str(ckpt), "--snippets", "1",
                     "--threshold", "0.50903", "--faces", faces, "--json", "--workers", "0", "--no-progress"]) == 0
        video = json.loads(capsys.readouterr().out)["videos"][0]
        verdicts[faces] = (video["fake_probability"], video["verdict"])
    assert verdicts == {"all": (0.5091, "fake"), "largest": (0.5091, "fake")}


def test_pth_state_dict_checkpoint(tmp_path, capsys):
    pth = tmp_path / "det.pth"
    torch.save({"state_dict": detector_state(bias=(-2.0,)).state_dict()}, pth)
    code = main(["predict", str(two_people()), "--model", "dil_resnet18", "--checkpoint", str(pth),
                 "--snippets", "1", "--json", "--no-progress"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["summary"] == dict(videos=1, scored=1, failed=0, partial=0)
    assert result["videos"][0]["fake_probability"] == round(1 / (1 + math.exp(2)), 4)  # zero weights: sigmoid(bias)
    assert result["videos"][0]["verdict"] == "real"


def test_no_detector_is_a_usage_error_not_a_verdict(tmp_path, capsys, monkeypatch):
    """Issue 21, item 7: without --checkpoint an untrained network would print REAL / FAKE: refused,
    naming the option and where a detector comes from, before anything is decoded."""
    import dynsnip.cli.predict as predict

    monkeypatch.setattr(predict, "predict_videos", lambda *a, **k: pytest.fail("scored without a detector"))
    for extra in ([], ["--model", "dil_resnet18"], ["--model", "dil_resnet18", "--json"]):
        assert main(["predict", str(two_people()), "--no-progress", *extra]) == 2
        captured = capsys.readouterr()
        (line,) = [ln for ln in captured.err.splitlines() if ln.strip()]
        assert line.startswith("dynsnip predict: error: no detector: give --checkpoint")
        assert "`dynsnip demo`" in line and "hf-hub:owner/name" in line and "not a verdict" in line
        assert captured.out == ""


def test_model_naming_a_detector_is_a_deprecated_alias_of_checkpoint(checkpoint, capsys):
    """Issue 21, item 17: --checkpoint is the detector's option; --model DIR (what the demo printed) still works."""
    common = [str(two_people()), "--snippets", "1", "--json", "--no-progress", "--workers", "0"]
    assert main(["predict", *common, "--checkpoint", str(checkpoint)]) == 0
    wanted = json.loads(capsys.readouterr().out)
    assert main(["predict", *common, "--model", str(checkpoint)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == wanted
    assert f"--model {checkpoint} is deprecated for a detector; write --checkpoint {checkpoint}" in captured.err
    assert main(["predict", *common, "--checkpoint", "runs/doesnotexist"]) == 2  # a mistyped folder: never the Hub
    assert "for a Hub repo write hf-hub:runs/doesnotexist" in capsys.readouterr().err


def test_fake_probability_of_one_and_two_logit_heads():
    assert fake_probability(torch.tensor([[0.0]])).tolist() == [0.5]
    assert fake_probability(torch.tensor([[0.0, math.log(3.0)]])).tolist() == [pytest.approx(0.75)]  # class 1 = fake
    with pytest.raises(ValueError, match="1 .* or 2"):
        fake_probability(torch.zeros(1, 3))


def test_unusable_checkpoint_or_no_videos_are_usage_errors(tmp_path, capsys):
    wrong = tmp_path / "resnet18.safetensors"
    save_file(timm.create_model("resnet18", num_classes=1).state_dict(), str(wrong))
    assert main(["predict", str(two_people()), "--model", "dil_resnet18", "--checkpoint", str(wrong)]) == 2
    assert "does not fit dil_resnet18" in capsys.readouterr().err
    assert main(["predict", str(two_people()), "--checkpoint", str(tmp_path / "none.safetensors")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty")]) == 2
    assert "no videos to score" in capsys.readouterr().err


def small_face_video(path):
    """The carphone clip (a ~45 px face) inside a 640x480 frame: below dlib's 80 px window at the
    default working size (short side 480), found when the frames are enlarged for detection."""
    frames = []
    for frame in decode_all(carphone())[:12]:
        canvas = np.full((480, 640, 3), 90, np.uint8)
        canvas[200:344, 300:476] = frame
        frames.append(canvas)
    return encode(path, frames)


def test_detect_size_finds_small_faces_the_default_misses(tmp_path, checkpoint, capsys):
    video = small_face_video(tmp_path / "wide_shot.mp4")
    base = ["predict", str(video), "--checkpoint", str(checkpoint), "--snippets", "2", "--json", "--no-progress"]
    assert main(base) == 0  # auto: BlazeFace (full range) and MTCNN find what dlib misses
    assert all(s["face_found"] for s in json.loads(capsys.readouterr().out)["videos"][0]["snippets"])
    common = [*base, "--face-detector", "dlib"]
    assert main(common) == 1
    missed = json.loads(capsys.readouterr().out)["videos"][0]
    assert missed["status"] == "error" and "--detect-size" in missed["error"], missed
    assert main([*common, "--detect-size", "960"]) == 0
    found = json.loads(capsys.readouterr().out)["videos"][0]
    assert found["status"] == "ok" and all(s["face_found"] for s in found["snippets"]), found
    for snippet in found["snippets"]:  # the crop is around the small face, inside the pasted clip
        x0, y0, x1, y1 = snippet["crop_box"]
        assert 300 <= x0 < x1 <= 476 and 200 <= y0 < y1 <= 344, snippet
    for bad, message in ((["--detect-size", "40"], "at least 80 px"), (["--detect-upsample", "-1"], "0 or more"),
                         (["--margin", "0"], "positive number"), (["--min-face", "5"], "at least 12 px"),
                         (["--detect-device", "cuda"], "needs the detection in the main process")):
        assert main([*common, *bad]) == 2
        assert message in capsys.readouterr().err


def test_extract_faces_command(tmp_path, capsys):
    manifest = tmp_path / "videos.csv"
    write_text_as_mp4(tmp_path / "broken.mp4")
    shutil.copy(two_people(), tmp_path / "people.mp4")
    manifest.write_text("path,label,split\npeople.mp4,real,train\nbroken.mp4,fake,val\n")
    out = tmp_path / "faces"
    code = main(["extract-faces", "--manifest", str(manifest), "--out", str(out), "--scale", "0.5", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "FAILED   " + str(tmp_path / "broken.mp4") + ": corrupt" in printed
    assert sorted(p.name for p in (out / "people").iterdir()) == [f"{i:06d}.png" for i in range(9)] + ["faces.json"]
    # face tracks: both people of the real video are samples (no source, so no evidence)
    assert (out / "faces.csv").read_text().splitlines() == ["path,label,split,method,face_coverage,tracks,track_evidence",
                                                             "people,0,train,,1.0000,0;1,"]
    assert "face coverage of 1 video(s): mean 1.00, lowest 1.00" in printed
    # a second run skips what exists and refuses to replace the manifest without --overwrite
    assert main(["extract-faces", "--manifest", str(manifest), "--out", str(out), "--no-progress"]) == 2
    assert "faces.csv exists" in capsys.readouterr().err
    stamp = (out / "people" / "000000.png").stat().st_mtime_ns
    assert main(["extract-faces", str(tmp_path / "people.mp4"), "--out", str(out), "--scale", "0.5",
                 "--no-progress"]) == 0  # the same settings: kept
    assert "SKIPPED" in capsys.readouterr().out
    assert (out / "people" / "000000.png").stat().st_mtime_ns == stamp
    assert main(["extract-faces", str(tmp_path / "people.mp4"), "--out", str(out), "--no-progress"]) == 1
    assert "stale_folder" in capsys.readouterr().out  # other settings (no --scale): not taken for done
    assert (out / "people" / "000000.png").stat().st_mtime_ns == stamp


class ClosedPipe:
    """stdout whose reader has gone (`dynsnip predict ... | head -1`): every write raises BrokenPipeError."""

    writes = 0

    def write(self, text):
        ClosedPipe.writes += 1
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_a_reader_that_closes_stdout_loses_no_video_and_no_output_file(tmp_path, checkpoint, monkeypatch):
    shutil.copy(carphone(), tmp_path / "a.mp4")
    shutil.copy(two_people(), tmp_path / "b.mp4")
    manifest = tmp_path / "videos.csv"
    manifest.write_text("path,label,split\na.mp4,real,train\nb.mp4,fake,val\n")
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    out = tmp_path / "faces"
    assert main(["extract-faces", "--manifest", str(manifest), "--out", str(out), "--scale", "0.5",
                 "--workers", "1", "--no-progress"]) == 0  # was: BrokenPipeError after the first video
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "faces.csv"]
    report = tmp_path / "report.json"
    assert main(["predict", str(tmp_path / "a.mp4"), "--checkpoint", str(checkpoint), "--snippets", "1", "--json",
                 "--output", str(report), "--workers", "0", "--no-progress"]) == 0
    assert json.loads(report.read_text())["summary"] == dict(videos=1, scored=1, failed=0, partial=0)
    assert ClosedPipe.writes >= 1 and sys.stdout.__class__ is ClosedPipe  # main() gave stdout back


def test_a_report_that_cannot_be_written_is_printed_and_the_earlier_one_kept(tmp_path, checkpoint, capsys, monkeypatch):
    report = tmp_path / "report.json"
    report.write_text("earlier")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    code = main(["predict", str(carphone()), "--checkpoint", str(checkpoint), "--snippets", "1", "--json",
                 "--output", str(report), "--overwrite", "--workers", "0", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1  # the video was scored; the report file was not written
    assert json.loads(captured.out)["summary"] == dict(videos=1, scored=1, failed=0, partial=0)  # printed all the same
    assert f"cannot write --output {report} (No space left on device); the earlier report there is unchanged" in captured.err
    assert report.read_text() == "earlier" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_extract_faces_in_parallel_writes_what_one_process_writes(tmp_path, capsys):
    people = shutil.copy(two_people(), tmp_path / "people.mp4")
    (tmp_path / "again").mkdir()
    clash = shutil.copy(two_people(), tmp_path / "again" / "people.mp4")  # same output folder name
    broken = write_text_as_mp4(tmp_path / "broken.mp4")
    car = shutil.copy(carphone(), tmp_path / "car.mp4")
    inputs = [str(p) for p in (people, broken, clash, car)]
    printed = {}
    for workers in (1, 3):
        out = tmp_path / f"faces{workers}"
        code = main(["extract-faces", *inputs, "--out", str(out), "--scale", "0.25", "--max-frames", "6",
                     "--workers", str(workers), "--no-progress"])
        assert code == 1
        printed[workers] = capsys.readouterr().out.replace(str(out), "OUT").splitlines()
    assert printed[1] == printed[3]  # same lines, in the order of the inputs
    assert [line.split()[0] for line in printed[1]] == ["OK", "FAILED", "FAILED", "OK", "4", "face"]
    assert f"already used by {people}" in printed[1][2]
    for name in ("people", "car"):
        files = sorted(p.name for p in (tmp_path / "faces1" / name).iterdir())
        assert files == sorted(p.name for p in (tmp_path / "faces3" / name).iterdir())
        for f in files:
            assert (tmp_path / "faces1" / name / f).read_bytes() == (tmp_path / "faces3" / name / f).read_bytes()
    assert main(["extract-faces", str(car), "--out", str(tmp_path / "x"), "--workers", "0"]) == 2
    assert "--workers must be at least 1" in capsys.readouterr().err


MAIN_PID = os.getpid()


def extract_but_crash_in_a_worker(job):
    """``_extract``, except that a worker process handed ``crash.mp4`` dies (as on a decoder crash)."""
    if os.getpid() != MAIN_PID and Path(job[0]).name == "crash.mp4":
        os._exit(3)
    return original_extract(job)


def test_extract_faces_goes_on_when_a_worker_process_dies(tmp_path, capsys, monkeypatch):
    from dynsnip.cli import extract_workers

    monkeypatch.setattr(extract_workers, "_extract", extract_but_crash_in_a_worker)
    inputs = [shutil.copy(two_people(), tmp_path / "people.mp4"), shutil.copy(carphone(), tmp_path / "crash.mp4"),
              shutil.copy(carphone(), tmp_path / "car.mp4")]
    out = tmp_path / "faces"
    code = main(["extract-faces", *map(str, inputs), "--out", str(out), "--scale", "0.25", "--max-frames", "4",
                 "--workers", "2", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured
    assert "the worker processes failed after" in captured.err
    assert [line.split()[0] for line in captured.out.splitlines()] == ["OK", "OK", "OK", "3", "face"]
    assert all(len(list((out / name).glob("*.png"))) == 4 for name in ("people", "crash", "car"))


def partly_faceless_video(path, face_frames: int, total: int = 32):
    """The carphone face in the first ``face_frames`` frames, then a face-free picture."""
    faces = decode_all(carphone())[:face_frames]
    from video_fixtures import faceless_frames

    empty = [np.ascontiguousarray(np.resize(f, (144, 176, 3))) for f in faceless_frames(total - face_frames, (176, 144))]
    return encode(path, faces + empty)


def test_face_coverage_is_reported_and_a_low_one_fails(tmp_path, checkpoint, capsys):
    """8 snippets of 4 frames, the detector looks at one frame per snippet (--detect-every 4):
    a face in the first 12 of 32 frames is found in 3 of 8 looked-at frames (37.5%)."""
    video = partly_faceless_video(tmp_path / "mostly_empty.mp4", 12)
    table = ["predict", str(video), "--checkpoint", str(checkpoint), "--snippets", "8", "--no-progress",
             "--workers", "0"]
    base = [*table, "--json"]
    assert main(base) == 1  # below the default 0.5: a failure with its reason and coverage, not a verdict
    failed = json.loads(capsys.readouterr().out)
    entry = failed["videos"][0]
    assert entry["status"] == "error" and entry["reason"] == "low_face_coverage", entry
    assert entry["face_coverage"] == 0.375 and "in only 38% of the 8 frames" in entry["error"]
    assert "turned or tilted head" in entry["error"] and "--face-detector mtcnn" in entry["error"]
    assert failed["summary"]["failed"] == 1 and failed["min_face_coverage"] == 0.5
    assert main([*base, "--min-face-coverage", "0.3"]) == 0
    scored = json.loads(capsys.readouterr().out)["videos"][0]
    assert (scored["frames_checked"], scored["frames_with_face"], scored["face_coverage"]) == (8, 3, 0.375)
    assert [s["face_found"] for s in scored["snippets"]] == [True] * 3 + [False] * 5
    assert main([*table, "--min-face-coverage", "0.3"]) == 0  # the table says it too
    assert "face in 3/8 frames looked at for the snippets, 5 snippet(s) borrowed" in capsys.readouterr().out
    # extract-faces applies the same threshold (over every 4th frame of the whole video)
    out = tmp_path / "faces"
    assert main(["extract-faces", str(video), "--out", str(out), "--no-progress", "--workers", "1"]) == 1
    assert "low_face_coverage: face found in only 38% of the 8 frames" in capsys.readouterr().out
    assert main(["extract-faces", str(video), "--out", str(out), "--no-progress", "--workers", "1",
                 "--min-face-coverage", "0.2"]) == 0
    assert "face found in 3 of the 8 frames looked at (38%)" in capsys.readouterr().out


def test_docs_sample_table_shows_what_the_default_detector_finds(checkpoint, tmp_path, capsys):
    """docs/video.md's sample `predict` table (the bundled two_people clip, `--snippets 2`, default
    `--face-detector auto`) shows the face tracks the current detector gives: frames, detections,
    face sizes and positions, coverage. The probabilities (random weights) are not compared."""
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "video.md").read_text(encoding="utf-8")
    sample = doc[doc.index("```\ndetector: detector_dir, training data not recorded\n"):]
    sample = sample[:sample.index("\n```", 4)]

    def track_lines(text):  # which track decides the verdict depends on the weights: not compared
        lines = re.findall(r"^ +[0-9.]+ +\*? ?(track \d+: .*)$", text, re.M)
        return [line.removesuffix(" (decides the verdict)") for line in lines]

    tracks = track_lines(sample)
    assert len(tracks) == 2
    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(two_people(), videos / "two_people.mp4")
    assert main(["predict", str(videos), "--checkpoint", str(checkpoint), "--snippets", "2", "--no-progress"]) == 0
    assert track_lines(capsys.readouterr().out) == tracks


def test_a_snippet_with_frames_that_do_not_show_the_face_is_marked(tmp_path, checkpoint, capsys):
    """A cut to another picture inside a snippet (frames 14-15 of snippet 3, frames 12-15) leaves the
    video's coverage high (30 of 32 frames); the snippet itself is marked: its frames_showing_face in
    the JSON, a note in the table. The others show the face in all T frames."""
    from video_fixtures import faceless_frames

    faces = decode_all(carphone())[:32]
    cut = [np.ascontiguousarray(np.resize(f, (144, 176, 3))) for f in faceless_frames(2, (176, 144))]
    video = encode(tmp_path / "cut.mp4", faces[:14] + cut + faces[16:])
    argv = ["predict", str(video), "--checkpoint", str(checkpoint), "--snippets", "8", "--no-progress",
            "--workers", "0"]
    assert main([*argv, "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)["videos"][0]
    assert [s["frames_showing_face"] for s in entry["snippets"]] == [4, 4, 4, 2, 4, 4, 4, 4]
    assert (entry["frames_showing_face"], entry["frames_scored"]) == (30, 32)
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "snippet " in line]
    assert [("the face shown in 2 of its 4 frames" in line) for line in lines] == [False] * 3 + [True] + [False] * 4
