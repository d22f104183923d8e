"""Fail closed, second pass (issue 21, items 1, 2, 10, 15): a frame folder is reused only for the
video it holds, an unfinished folder is never read as complete, coverage describes the frames
that are scored, a frame-size change is a named failure, and bad numbers are usage errors."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from video_fixtures import blinking_frames, carphone, decode_all, encode, faceless_frames, write_size_change

from dynsnip.cli import main
from dynsnip.data import FaceClipLoader, FaceFramesDataset, VideoReader
from dynsnip.data.errors import FrameSizeChangeError, IncompleteFolderError, LowFaceCoverageError
from dynsnip.data.faces import extraction
from dynsnip.data.faces.extraction import extract_face_frames
from dynsnip.data.faces.face_shown import shows_face
from dynsnip.data.faces.folder_source import OWNER_FILE, folder_source_problem, output_folder_name
from dynsnip.data.manifest import ManifestEntry
from dynsnip.engine.failures import SkipUnreadable
from project_scripts import load_script


@pytest.fixture(scope="module")
def frames():
    return decode_all(carphone())[:16]


@pytest.fixture(scope="module")
def videos(tmp_path_factory, frames):
    """``real/001.mp4`` and ``fake/001.mp4``: same name, different videos (the fake is mirrored)."""
    root = tmp_path_factory.mktemp("videos")
    (root / "real").mkdir(), (root / "fake").mkdir()
    encode(root / "real" / "001.mp4", frames)
    encode(root / "fake" / "001.mp4", [np.ascontiguousarray(f[:, ::-1]) for f in frames])
    return root


def extract(*argv: str) -> int:
    return main(["extract-faces", *argv, "--face-detector", "dlib", "--workers", "1", "--no-progress"])


# ------------------------------------------------------------- item 1: a folder holds one video
def test_a_folder_of_another_video_with_the_same_name_is_not_reused(videos, tmp_path, capsys):
    out = tmp_path / "out"
    assert extract(str(videos / "real" / "001.mp4"), "--out", str(out)) == 0
    (videos / "fake" / "m.csv").write_text("path,label\n001.mp4,fake\n")  # fake/001.mp4, named 001 too
    capsys.readouterr()
    assert extract("--manifest", str(videos / "fake" / "m.csv"), "--out", str(out)) == 1
    printed = capsys.readouterr().out
    assert "FAILED" in printed and f"holds the frames of {(videos / 'real' / '001.mp4').resolve()}" in printed
    assert "--replace-stale" in printed and "0 done, 1 failed" in printed
    assert (out / "faces.csv").read_text().splitlines() == ["path,label,split,method,face_coverage,tracks,track_evidence"]
    # the same file elsewhere (a copied dataset) is the same video: its folder is reused
    (tmp_path / "copy").mkdir()
    shutil.copy(videos / "fake" / "001.mp4", tmp_path / "copy" / "001.mp4")
    extract_face_frames(videos / "fake" / "001.mp4", tmp_path / "again", face_detector="dlib")
    assert folder_source_problem(tmp_path / "again", tmp_path / "copy" / "001.mp4") is None
    assert folder_source_problem(tmp_path / "again", videos / "real" / "001.mp4") is not None
    # --replace-stale: extracted again, the folder now holds the fake
    assert extract("--manifest", str(videos / "fake" / "m.csv"), "--out", str(out), "--overwrite",
                   "--replace-stale") == 0
    meta = json.loads((out / "001" / "faces.json").read_text())
    assert meta["source_file"]["path"] == str((videos / "fake" / "001.mp4").resolve())
    assert not (out / "001" / ".replaced").exists() and not (out / "001.partial").exists()
    assert (out / "faces.csv").read_text().splitlines()[1].startswith("001,1,")


def test_a_video_changed_at_the_same_path_is_not_its_old_folder(videos, tmp_path, capsys):
    video = tmp_path / "v.mp4"
    shutil.copy(videos / "real" / "001.mp4", video)
    assert extract(str(video), "--out", str(tmp_path / "out")) == 0
    assert extract(str(video), "--out", str(tmp_path / "out")) == 0
    assert "SKIPPED" in capsys.readouterr().out
    shutil.copy(videos / "fake" / "001.mp4", video)  # re-downloaded, re-encoded...
    assert extract(str(video), "--out", str(tmp_path / "out")) == 1
    assert "the video changed since it was extracted" in capsys.readouterr().out


def test_a_killed_extraction_does_not_become_the_folder_of_a_video_named_partial(videos, tmp_path, capsys):
    """``x.mp4`` killed mid-way leaves ``x.partial``; ``x.partial.mp4`` gets ``x.partial_``, and the
    next run of ``x.mp4`` replaces the abandoned folder."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out = tmp_path / "out"
    left = out / "x.partial"
    left.mkdir(parents=True)
    (left / "000000.png").write_bytes(b"half")
    (left / OWNER_FILE).write_text(f"{socket.gethostname()} {int(dead.stdout)}")
    shutil.copy(videos / "fake" / "001.mp4", tmp_path / "x.partial.mp4")
    shutil.copy(videos / "real" / "001.mp4", tmp_path / "x.mp4")
    (tmp_path / "m.csv").write_text("path,label\nx.partial.mp4,1\n")
    assert extract("--manifest", str(tmp_path / "m.csv"), "--out", str(out)) == 0
    assert (out / "faces.csv").read_text().splitlines()[1].startswith("x.partial_,1,")
    assert json.loads((out / "x.partial_" / "faces.json").read_text())["source"].endswith("x.partial.mp4")
    assert extract(str(tmp_path / "x.mp4"), "--out", str(out)) == 0
    assert not left.exists() and len(list((out / "x").glob("*.png"))) == 16
    with pytest.raises(ValueError, match="name of a folder being written"):
        extract_face_frames(tmp_path / "x.mp4", out / "y.partial", face_detector="dlib")


def test_videos_named_dots_get_folders_inside_out(frames, tmp_path, capsys):
    for name in ("..mp4", "...mp4"):
        encode(tmp_path / name, frames[:8])
    (tmp_path / "m.csv").write_text("path,label\n..mp4,0\n...mp4,1\n")
    out = tmp_path / "faces"
    assert extract("--manifest", str(tmp_path / "m.csv"), "--out", str(out), "--min-face-coverage", "0") == 0
    listed = [row.split(",")[0] for row in (out / "faces.csv").read_text().splitlines()[1:]]
    assert listed == ["._", ".._"]
    assert all((out / name / "faces.json").is_file() for name in listed)


def test_output_folder_names_are_one_to_one_and_never_look_unfinished():
    names = ["a.mp4", "..mp4", "...mp4", "._.mp4", ".._.mp4", "x.partial.mp4", "x.partial_.mp4", "x.partial__.mp4",
             "x.mp4", "x_.mp4", "sub/..mp4", "real/001.mp4", "fake/001.mp4", "x.partial/y.mp4", ".mp4"]
    out = [output_folder_name(n) for n in names]
    assert len(set(out)) == len(out), out
    for name in out:
        assert all(part not in (".", "..", "") and not part.endswith(".partial") for part in name.split("/")), name
    assert out[:3] == ["a", "._", ".._"] and output_folder_name("x.partial.mp4") == "x.partial_"


# ------------------------------------------------------------- item 2: unfinished folders are refused
@pytest.fixture(scope="module")
def extracted(tmp_path_factory, videos):
    out = tmp_path_factory.mktemp("extracted") / "001"
    extract_face_frames(videos / "real" / "001.mp4", out, face_detector="dlib")
    return out


@pytest.mark.parametrize("how", ["partial name", "owner record"])
def test_an_unfinished_folder_is_a_reported_failure_not_a_clip(extracted, tmp_path, how):
    folder = tmp_path / "real" / ("001.partial" if how == "partial name" else "001")
    shutil.copytree(extracted, folder)
    if how == "owner record":
        (folder / OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}")
    complete = tmp_path / "fake" / "002"
    shutil.copytree(extracted, complete)
    small = dict(num_snippets=1, snippet_len=4, size=(16, 16))
    for dataset in (FaceFramesDataset([ManifestEntry(folder, 0), ManifestEntry(complete, 1)], **small),
                    FaceFramesDataset.from_class_folders(tmp_path, **small)):
        items = {str(e.path): SkipUnreadable(dataset)[i] for i, e in enumerate(dataset.entries)}
        assert items[str(folder)].reason == "incomplete_folder", items[str(folder)]
        assert "expected a complete folder" in items[str(folder)].message
        assert not hasattr(items[str(complete)], "reason")  # the complete one is read
    with pytest.raises(IncompleteFolderError):
        FaceFramesDataset([ManifestEntry(folder, 0)], **small)[0]


# ------------------------------------------------------------- item 10: coverage of the scored frames
@pytest.fixture(scope="module")
def blinking(tmp_path_factory):
    """A face on frames 0, 4, 8, ... (the ones the detector looks at), black frames in between."""
    return encode(tmp_path_factory.mktemp("blink") / "blink.mp4", blinking_frames(decode_all(carphone())[:32]))


def test_a_face_only_on_the_looked_at_frames_is_no_verdict(blinking, videos, tmp_path):
    loader = FaceClipLoader(face_detector="dlib", size=(32, 32), num_snippets=8, detect_every=4)
    with pytest.raises(LowFaceCoverageError, match="shown in only") as err:
        loader(blinking)
    assert err.value.coverage <= 0.25 and "of the 32 frames scored" in str(err.value)
    clip = loader(videos / "real" / "001.mp4")  # a real video: every scored frame shows its face
    assert (clip.frames_scored, clip.frames_showing_face, clip.face_coverage) == (32, 32, 1.0)
    with pytest.raises(LowFaceCoverageError, match="of the 32 frames written"):
        extract_face_frames(blinking, tmp_path / "out", face_detector="dlib")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    result = extract_face_frames(blinking, tmp_path / "out", face_detector="dlib", min_face_coverage=0)
    meta = json.loads((tmp_path / "out" / "faces.json").read_text())
    assert meta["frames_checked"] == 8 and meta["frames_with_face"] >= 7  # what the detector saw: a face
    assert meta["detector_coverage"] >= 0.875  # ... and the coverage is that of the frames written:
    assert meta["frames_showing_face"] == result.frames_showing_face == meta["frames_with_face"]
    assert meta["face_coverage"] == round(meta["frames_with_face"] / 32, 4) == round(result.face_coverage, 4)


def test_a_cut_inside_a_snippet_is_seen_from_the_looked_at_frame():
    """Frames 0-5 one picture, 6-7 another: with the face found on frame 4, frame 5 shows it, 6
    and 7 do not; frames 1-3 are traced back to frame 0, whose detector found nothing."""
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    frames = {i: (a if i < 6 else b) for i in range(8)}
    detections = {0: np.zeros((0, 4)), 4: np.array([[10.0, 10, 30, 30]])}
    shown = shows_face(frames, np.arange(8).reshape(1, 8), np.array([[0, 0, 40, 40]]), detections, 4, 8)
    assert shown.tolist() == [[False, False, False, False, True, True, False, False]]


@pytest.fixture(scope="module")
def size_change(tmp_path_factory):
    return write_size_change(tmp_path_factory.mktemp("size") / "size_change.ts", decode_all(carphone())[:32], 16)


def test_a_frame_size_change_is_a_named_failure_everywhere(size_change, tmp_path, capsys):
    with VideoReader(size_change) as video:
        assert video.size == (176, 144)
        assert video.read([0, 15]).shape == (2, 144, 176, 3)
        with pytest.raises(FrameSizeChangeError, match="frame 20 is 352x288 but the video starts at 176x144"):
            video.read([0, 20])
    loader = FaceClipLoader(face_detector="dlib", size=(32, 32), num_snippets=2, snippet_len=2)
    with pytest.raises(FrameSizeChangeError):
        loader(size_change)
    from test_fail_closed import small_detector

    from dynsnip.data import VideoDataset
    from dynsnip.scoring import predict_videos

    (entry,) = predict_videos(small_detector(), [size_change], loader=loader, workers=0)  # predict: no verdict
    assert (entry["status"], entry["reason"]) == ("error", "frame_size_change") and "verdict" not in entry
    failed = SkipUnreadable(VideoDataset([ManifestEntry(size_change, 1)], loader))[0]  # evaluate, train
    assert failed.reason == "frame_size_change"
    with pytest.raises(FrameSizeChangeError):
        extract_face_frames(size_change, tmp_path / "out", face_detector="dlib")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    assert main(["pseudo-fakes", str(size_change), "--out", str(tmp_path / "pf")]) == 1  # the input failed
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "frame 16 is 352x288" in err and "Traceback" not in err


# ------------------------------------------------------------- item 15: numbers checked up front
@pytest.mark.parametrize("argv, message", [
    (["--max-frames", "-5"], "--max-frames must be a positive number of frames"),
    (["--snippet-len", "0"], "--snippet-len must be a positive number of frames"),
    (["--face-detector", "none", "--max-frames", "0"], "--max-frames must be a positive number of frames"),
])
def test_bad_extraction_numbers_are_usage_errors(videos, tmp_path, capsys, argv, message):
    assert main(["extract-faces", str(videos / "real" / "001.mp4"), "--out", str(tmp_path / "out"), "--workers", "1",
                 "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_library_refuses_them_too(videos, tmp_path):
    with pytest.raises(ValueError, match="max_frames must be a positive"):
        extract_face_frames(videos / "real" / "001.mp4", tmp_path / "a", face_detector="none", max_frames=0)
    with pytest.raises(ValueError, match="snippet_len must be a positive"):
        extract_face_frames(videos / "real" / "001.mp4", tmp_path / "a", face_detector="dlib", snippet_len=0)
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("argv, message", [
    (["--size", "100000"], "--size must be a face crop side between 16 and 512 pixels, got 100000"),
    (["--size", "512", "--max-frames", "1000"], "lower --max-frames or --size"),
    (["--snippet-len", "0"], "--snippet-len must be at least 1"),
])
def test_pseudo_fakes_numbers_are_usage_errors(videos, tmp_path, capsys, argv, message):
    assert main(["pseudo-fakes", str(videos / "real" / "001.mp4"), "--out", str(tmp_path / "pf"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_training_on_videos_without_a_face_is_a_named_failure(tmp_path, capsys):
    from test_cli_train import TINY_ARGS

    for i in range(2):
        encode(tmp_path / f"n{i}.mp4", faceless_frames(8))
    (tmp_path / "m.csv").write_text("path,label,split\nn0.mp4,0,train\nn1.mp4,1,train\n")
    assert main(["train", "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "run"), *TINY_ARGS,
                 "--batch-size", "2", "--img-size", "16", "--num-snippets", "1", "--test-num-snippets", "1",
                 "--workers", "0", "--no-progress", "--epochs", "1", "--face-detector", "dlib"]) == 1
    err = capsys.readouterr().err
    assert "dynsnip train: error: 2 of the 2 training clips could not be read in epoch 1 (no_face 2" in err
    assert "Traceback" not in err


def test_face_shown_benchmark_times_the_check_and_puts_it_back(monkeypatch):
    """benchmarks/face_shown.py stubs the check out to time it: it runs with today's extraction, and the
    real check is back afterwards, also when a run fails half-way."""
    import dynsnip.data.pipeline as pipeline
    from dynsnip.data import bundled_videos

    script = load_script("benchmarks/face_shown.py", "face_shown_benchmark")
    real = (pipeline.shows_face, extraction._FaceShown.record, extraction._FaceShown.count)
    video = [v for v in bundled_videos() if v.name.startswith("two_people")]
    result = script.cost(video, repeats=1, detector="blazeface-short")
    assert result["loader_ratio"] > 0 and result["extract_ratio"] > 0
    assert (pipeline.shows_face, extraction._FaceShown.record, extraction._FaceShown.count) == real

    def broken(*args, **kwargs):
        raise RuntimeError("extraction failed")

    monkeypatch.setattr(extraction, "extract_face_frames", broken)
    with pytest.raises(RuntimeError, match="extraction failed"):
        script.cost(video, repeats=1, detector="blazeface-short")
    assert (pipeline.shows_face, extraction._FaceShown.record, extraction._FaceShown.count) == real


def test_a_video_shorter_than_one_snippet_fails_too_short_before_any_folder(tmp_path, frames, capsys):
    """A 1-frame video, or --max-frames below T, can never give a snippet: extract-faces fails it as
    predict does (too_short, the same message), writes no folder (nor a .partial one), and lists it
    in faces_failed.csv, not in faces.csv."""
    from dynsnip.data.errors import TooShortVideoError
    from dynsnip.data.sampling import sample_snippets

    data = tmp_path / "data"
    data.mkdir()
    encode(data / "one.mp4", frames[:1])
    shutil.copy(carphone(), data / "long.mp4")
    with pytest.raises(TooShortVideoError) as err:
        extract_face_frames(data / "one.mp4", tmp_path / "one", face_detector="none")
    with pytest.raises(TooShortVideoError) as predicts:
        sample_snippets(1, 8, 4, train=False, source=data / "one.mp4")
    assert err.value.reason == "too_short" and err.value.message == predicts.value.message
    with pytest.raises(TooShortVideoError, match=r"2 frame\(s\) \(--max-frames 2 of its \d+\), fewer than the T = 4"):
        extract_face_frames(data / "long.mp4", tmp_path / "long", face_detector="none", max_frames=2)
    assert list(tmp_path.glob("one*")) == [] and list(tmp_path.glob("long*")) == []

    (data / "videos.csv").write_text("path,label\none.mp4,real\nlong.mp4,fake\n")
    out = tmp_path / "out"
    assert main(["extract-faces", "--manifest", str(data / "videos.csv"), "--out", str(out), "--face-detector", "none",
                 "--max-frames", "3", "--workers", "1", "--no-progress"]) == 1
    printed = capsys.readouterr().out
    assert printed.count(": too_short: ") == 2, printed
    assert sorted(p.name for p in out.iterdir()) == ["faces.csv", "faces_failed.csv"]
    assert (out / "faces.csv").read_text().count("\n") == 1  # the header only
    assert (out / "faces_failed.csv").read_text().count(",too_short,") == 2
