"""``extract-faces`` run again over an existing OUT: a folder made with other settings is stale, not
done (item 1); a video given twice is extracted once (item 2); a manifest row naming a directory
or a FIFO says what it is, and a FIFO is never opened (item 3)."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
from video_fixtures import carphone, decode_all, encode

from dynsnip.cli import main
from dynsnip.data.faces.extraction import settings_differences
from dynsnip.data.manifest import read_manifest, video_file_problem

FRAMES = 8


def extract(*argv: str, detector: str = "dlib") -> int:
    return main(["extract-faces", *argv, "--face-detector", detector, "--workers", "1", "--no-progress"])


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """``v.mp4`` (8 frames of carphone) and ``w.mp4`` (the same, mirrored: another video)."""
    root = tmp_path_factory.mktemp("videos")
    frames = decode_all(carphone())[:FRAMES]
    encode(root / "v.mp4", frames)
    encode(root / "w.mp4", [np.ascontiguousarray(f[:, ::-1]) for f in frames])
    return root


@pytest.fixture(scope="module")
def made(videos, tmp_path_factory):
    """OUT with ``v``'s folder, made with the default settings (and dlib)."""
    out = tmp_path_factory.mktemp("made") / "out"
    assert extract(str(videos / "v.mp4"), "--out", str(out)) == 0
    return out


@pytest.fixture
def out(made, tmp_path):
    """A copy of :func:`made`'s OUT to change."""
    copy = tmp_path / "out"
    shutil.copytree(made, copy)
    return copy


def edit_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / "faces.json").read_text())
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    (folder / "faces.json").write_text(json.dumps(meta))


# ------------------------------------------------------------ item 1: a folder made with other settings
@pytest.mark.parametrize("option, shown", [
    (["--max-frames", "4"], "--max-frames asked 4, recorded all"),
    (["--format", "bmp"], "--format asked bmp, recorded png"),
    (["--margin", "1.5"], "--margin asked 1.5, recorded 1.3"),
    (["--detect-every", "2"], "--detect-every asked 2, recorded 4"),
    (["--scale", "0.5"], "--scale asked 0.5, recorded none"),
    (["--snippet-len", "2"], "--snippet-len asked 2, recorded 4"),
    (["--faces", "largest"], "--faces asked largest, recorded all"),
    (["--detect-size", "240"], "detect_short_side=240"),
])
def test_a_folder_made_with_other_settings_is_stale_and_the_others_go_on(videos, made, option, shown, capsys):
    before = (made / "v" / "faces.json").read_bytes()
    capsys.readouterr()
    assert extract(str(videos / "v.mp4"), "--out", str(made), *option) == 1
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if "v.mp4" in line)
    assert line.startswith("FAILED") and "stale_folder" in line and "made with other settings" in line, printed
    assert shown in line and "--replace-stale" in line
    assert "1 video(s): 0 done, 1 failed (1 of them with a stale folder" in printed
    assert (made / "v" / "faces.json").read_bytes() == before  # kept as it was


def test_a_stale_folder_is_one_failure_among_videos_processed(videos, out, capsys):
    (videos / "m.csv").write_text("path,label\nv.mp4,0\nw.mp4,1\n")
    capsys.readouterr()
    assert extract("--manifest", str(videos / "m.csv"), "--out", str(out), "--format", "bmp") == 1
    printed = capsys.readouterr().out
    assert "FAILED   " + str(videos / "v.mp4") in printed and "--format asked bmp, recorded png" in printed
    assert "OK       " + str(videos / "w.mp4") in printed
    assert "2 video(s): 1 done, 1 failed" in printed
    rows = (out / "faces.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("w,1,")  # the stale folder is not listed for training


def test_overwrite_never_replaces_a_manifest_with_an_empty_one(videos, out, capsys):
    """--overwrite where every video fails (here all stale): the earlier faces.csv stays, and the run says so."""
    (videos / "one.csv").write_text("path,label\nv.mp4,0\n")
    assert extract("--manifest", str(videos / "one.csv"), "--out", str(out)) == 0
    before = (out / "faces.csv").read_text()
    assert len(before.splitlines()) == 2
    capsys.readouterr()
    assert extract("--manifest", str(videos / "one.csv"), "--out", str(out), "--format", "bmp", "--overwrite") == 1
    assert f"kept {out / 'faces.csv'} as it was" in capsys.readouterr().out
    assert (out / "faces.csv").read_text() == before


def test_a_run_where_every_video_fails_keeps_faces_csv_and_its_failed_list_together(videos, out, capsys):
    """The kept faces.csv keeps its faces_failed.csv: this run's list (every video, those of the kept
    rows too) beside it would count them as both scored and failed in evaluate and benchmark."""
    from dynsnip.engine.failures import extraction_failures

    (videos / "broken.mp4").write_text("not a video")
    (videos / "some_fail.csv").write_text("path,label\nv.mp4,0\nbroken.mp4,1\n")
    assert extract("--manifest", str(videos / "some_fail.csv"), "--out", str(out)) == 1
    failed_before = (out / "faces_failed.csv").read_text()
    assert [row["reason"] for row in csv.DictReader((out / "faces_failed.csv").open())] == ["corrupt"]
    capsys.readouterr()
    assert extract("--manifest", str(videos / "some_fail.csv"), "--out", str(out), "--margin", "1.5",
                   "--overwrite") == 1  # v's folder is stale: every video fails
    printed = capsys.readouterr().out
    assert f"kept {out / 'faces.csv'} as it was" in printed
    assert f"kept {out / 'faces_failed.csv'} as it was too" in printed and "2 failed row(s)" in printed
    assert (out / "faces_failed.csv").read_text() == failed_before
    assert [f["reason"] for f in extraction_failures(out / "faces.csv")] == ["corrupt"]
    # nothing failed in the run that wrote faces.csv: none is written beside it now
    (videos / "fine.csv").write_text("path,label\nv.mp4,0\n")
    assert extract("--manifest", str(videos / "fine.csv"), "--out", str(out), "--overwrite") == 0
    assert not (out / "faces_failed.csv").exists()
    capsys.readouterr()
    assert extract("--manifest", str(videos / "some_fail.csv"), "--out", str(out), "--margin", "1.5",
                   "--overwrite") == 1
    assert f"wrote no {out / 'faces_failed.csv'}" in capsys.readouterr().out
    assert not (out / "faces_failed.csv").exists() and extraction_failures(out / "faces.csv") == []


def test_replace_stale_rebuilds_a_folder_made_with_other_settings(videos, out, capsys):
    assert extract(str(videos / "v.mp4"), "--out", str(out), "--max-frames", "4", "--format", "bmp",
                   "--replace-stale") == 0
    printed = capsys.readouterr().out
    assert "replaced the stale folder (--replace-stale)" in printed and "--max-frames asked 4" in printed
    meta = json.loads((out / "v" / "faces.json").read_text())
    assert (meta["num_frames"], meta["max_frames"], meta["image_format"]) == (4, 4, "bmp")
    assert sorted(p.name for p in (out / "v").iterdir()) == [f"{i:06d}.bmp" for i in range(4)] + ["faces.json"]
    assert extract(str(videos / "v.mp4"), "--out", str(out), "--max-frames", "4", "--format", "bmp") == 0
    assert "SKIPPED" in capsys.readouterr().out
    assert extract(str(videos / "v.mp4"), "--out", str(out), "--format", "bmp") == 1  # all 8 frames now
    assert "--max-frames asked all, recorded 4" in capsys.readouterr().out


def test_settings_that_do_not_change_the_folder_keep_it(videos, made, capsys):
    # workers, pipelining, the detector's device, and --max-frames beyond the video's 8 frames
    assert main(["extract-faces", str(videos / "v.mp4"), "--out", str(made), "--face-detector", "dlib",
                 "--workers", "3", "--pipeline", "on", "--detect-device", "cpu", "--max-frames", "100",
                 "--no-progress"]) == 0
    assert "SKIPPED" in capsys.readouterr().out
    # without a detector the margin, k and T change nothing: whole frames
    out = made.parent / "none"
    assert extract(str(videos / "v.mp4"), "--out", str(out), "--max-frames", "4", detector="none") == 0
    capsys.readouterr()
    assert extract(str(videos / "v.mp4"), "--out", str(out), "--max-frames", "4", "--margin", "2",
                   "--detect-every", "1", "--snippet-len", "2", detector="none") == 0
    assert "SKIPPED" in capsys.readouterr().out


def test_the_detectors_device_is_not_a_difference(videos, out):
    from dynsnip.data.faces.detectors import create_face_detector

    detector = create_face_detector("blazeface")  # its repr names its device, cpu
    assert "device='cpu'" in repr(detector)
    edit_meta(out / "v", face_detector=repr(detector).replace("device='cpu'", "device='cuda:0'"))
    assert settings_differences(out / "v", videos / "v.mp4", dict(face_detector=detector)) == []
    (difference,) = settings_differences(out / "v", videos / "v.mp4", dict(face_detector="blazeface-short"))
    assert difference.setting == "face_detector" and "model='short'" in difference.asked
    assert "device" not in difference.asked + difference.recorded


def test_folders_of_older_versions_are_stale_only_where_they_differ(videos, out, capsys):
    """Written before max_frames, video_frames and image_format were recorded: the frames and the
    files tell; before face tracks (no ``faces``): the largest face only."""
    edit_meta(out / "v", max_frames=None, video_frames=None, image_format=None)
    assert settings_differences(out / "v", videos / "v.mp4", dict(face_detector="dlib")) == []
    assert extract(str(videos / "v.mp4"), "--out", str(out)) == 0
    assert "SKIPPED" in capsys.readouterr().out
    assert extract(str(videos / "v.mp4"), "--out", str(out), "--max-frames", "4") == 1
    assert "--max-frames asked 4, recorded not recorded (8 of 8 frames written)" in capsys.readouterr().out
    assert extract(str(videos / "v.mp4"), "--out", str(out), "--format", "jpg") == 1
    assert "--format asked jpg, recorded png" in capsys.readouterr().out
    edit_meta(out / "v", faces=None)
    assert extract(str(videos / "v.mp4"), "--out", str(out), "--faces", "largest") == 0
    assert extract(str(videos / "v.mp4"), "--out", str(out)) == 1
    assert "--faces asked all, recorded not recorded (written before face tracks" in capsys.readouterr().out


def test_a_fake_now_given_its_source_is_stale(videos, out, capsys):
    (videos / "src.csv").write_text("path,label,source\nv.mp4,1,w.mp4\n")
    assert extract("--manifest", str(videos / "src.csv"), "--out", str(out)) == 1
    assert "the source of the fake (its manifest row's source column) asked " in capsys.readouterr().out


def test_a_folder_below_the_face_coverage_asked_fails_as_extracting_it_would(videos, out, capsys):
    edit_meta(out / "v", frames_with_face=1)  # 1 of the 2 looked-at frames
    assert extract(str(videos / "v.mp4"), "--out", str(out)) == 0  # 0.5: enough for the default
    capsys.readouterr()
    assert extract(str(videos / "v.mp4"), "--out", str(out), "--min-face-coverage", "0.9") == 1
    printed = capsys.readouterr().out
    assert "FAILED" in printed and "low_face_coverage" in printed and "1 of the 2 frames looked at" in printed


# ------------------------------------------------------------ item 2: a video given twice
def test_a_video_given_twice_is_extracted_once(videos, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    shutil.copy(videos / "v.mp4", tmp_path / "in" / "v.mp4")
    os.symlink(tmp_path / "in" / "v.mp4", tmp_path / "link.mp4")
    video = str(tmp_path / "in" / "v.mp4")
    assert extract(video, video, str(tmp_path / "in"), "--out", str(tmp_path / "out"), detector="none") == 0
    captured = capsys.readouterr()
    assert "1 video(s): 1 done, 0 failed" in captured.out and "FAILED" not in captured.out
    assert "is given 3 times" in captured.err and "extracting it once" in captured.err
    # beside its manifest row (and through a link): the row is kept, its label listed
    (tmp_path / "in" / "m.csv").write_text("path,label\nv.mp4,fake\n")
    assert extract(str(tmp_path / "link.mp4"), "--manifest", str(tmp_path / "in" / "m.csv"),
                   "--out", str(tmp_path / "out2"), detector="none") == 0
    captured = capsys.readouterr()
    assert "is given 2 times" in captured.err and "with its manifest row" in captured.err
    assert (tmp_path / "out2" / "faces.csv").read_text().splitlines()[1].startswith("v,1,")


# ------------------------------------------------------------ item 3: a directory or a FIFO as a video
@pytest.fixture
def no_hang():
    """Fail instead of hanging (a FIFO opened for reading blocks until a writer comes)."""
    def timeout(*_):
        raise TimeoutError("blocked: a FIFO was opened")

    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def test_manifest_rows_naming_a_directory_or_a_fifo_say_what_they_are(videos, tmp_path, capsys, no_hang):
    shutil.copy(videos / "v.mp4", tmp_path / "v.mp4")
    shutil.copy(videos / "v.mp4", tmp_path / "pipe.mp4")
    (tmp_path / "clips.mp4").mkdir()
    out = tmp_path / "out"
    assert extract(str(tmp_path / "pipe.mp4"), "--out", str(out), detector="none") == 0
    (tmp_path / "pipe.mp4").unlink()
    os.mkfifo(tmp_path / "pipe.mp4")  # its folder exists: comparing them must not open the FIFO
    (tmp_path / "m.csv").write_text("path,label\nv.mp4,0\nclips.mp4,1\npipe.mp4,1\n")
    capsys.readouterr()
    assert extract("--manifest", str(tmp_path / "m.csv"), "--out", str(out), detector="none") == 1
    printed = capsys.readouterr().out
    assert f"FAILED   {tmp_path / 'clips.mp4'}: not_found: is a directory, expected a video file" in printed
    assert (f"FAILED   {tmp_path / 'pipe.mp4'}: not_found: is not a regular file (a FIFO, a named pipe), expected a "
            "video file") in printed
    assert f"OK       {tmp_path / 'v.mp4'}" in printed and "3 video(s): 1 done, 2 failed" in printed
    assert "no such file" not in printed
    # the failed rows are kept beside faces.csv, as a manifest with their reasons (not only on the screen)
    failed = list(csv.DictReader((out / "faces_failed.csv").open()))
    assert [(Path(r["path"]).name, r["label"], r["reason"]) for r in failed] == [
        ("clips.mp4", "1", "not_found"), ("pipe.mp4", "1", "not_found")]
    assert failed[0]["message"] == "is a directory, expected a video file"
    assert [e.path.name for e in read_manifest(out / "faces_failed.csv")] == ["clips.mp4", "pipe.mp4"]
    # a later run replaces both files only with --overwrite; with nothing failing, the old list goes
    assert extract("--manifest", str(tmp_path / "m.csv"), "--out", str(out), detector="none") == 2
    (tmp_path / "m.csv").write_text("path,label\nv.mp4,0\n")
    assert extract("--manifest", str(tmp_path / "m.csv"), "--out", str(out), "--overwrite", detector="none") == 0
    assert (out / "faces.csv").exists() and not (out / "faces_failed.csv").exists()


def test_video_file_problem(tmp_path):
    (tmp_path / "v.mp4").write_bytes(b"x")
    os.mkfifo(tmp_path / "p")
    assert video_file_problem(tmp_path / "v.mp4") is None
    assert video_file_problem(tmp_path) == "is a directory, expected a video file"
    assert "FIFO" in video_file_problem(tmp_path / "p")
    assert video_file_problem(tmp_path / "nope.mp4").startswith("no such file")
    assert video_file_problem(tmp_path / "v.mp4" / "x").startswith("no such file")


def test_a_stale_folder_is_not_taken_for_one_a_worker_completed(videos, out):
    """After the worker pool breaks, the jobs left are done in-process unless a worker completed their
    folder: a stale folder being replaced is not that."""
    from dynsnip.cli.extract_workers import _done_by_worker

    assert _done_by_worker(videos / "v.mp4", out / "v", dict(face_detector="dlib"))
    assert not _done_by_worker(videos / "v.mp4", out / "v", dict(face_detector="dlib", max_frames=4, replace=True))
    assert not _done_by_worker(videos / "w.mp4", out / "v", dict(face_detector="dlib"))


def test_a_folder_extracted_before_display_rotations_of_a_turned_video_is_stale(tmp_path, capsys):
    """Folders written before frames were turned upright (no ``display_rotation`` recorded) hold a
    turned video's faces on their side, where predict crops them upright: stale, named; a video
    without a rotation keeps such a folder."""
    frames = decode_all(carphone())[:FRAMES]
    turned = encode(tmp_path / "phone.mp4", [np.ascontiguousarray(np.rot90(f, 1)) for f in frames],
                    display_rotation=-90)
    plain = encode(tmp_path / "plain.mp4", frames)
    out = tmp_path / "out"
    assert extract(str(turned), str(plain), "--out", str(out)) == 0
    for name, video in (("phone", turned), ("plain", plain)):
        meta = json.loads((out / name / "faces.json").read_text())
        assert meta["display_rotation"] == (270 if name == "phone" else 0)
        assert settings_differences(out / name, video, {"face_detector": "dlib"}) == []
        del meta["display_rotation"]  # as written before rotations were applied
        (out / name / "faces.json").write_text(json.dumps(meta))
    (stale,) = settings_differences(out / "phone", turned, {"face_detector": "dlib"})
    assert stale.setting == "display_rotation" and "faces on their side" in stale.recorded
    assert settings_differences(out / "plain", plain, {"face_detector": "dlib"}) == []
    capsys.readouterr()
    assert extract(str(turned), str(plain), "--out", str(out)) == 1  # the turned one fails, the plain one is kept
    printed = capsys.readouterr()
    report = printed.out + printed.err
    assert "stale_folder" in report and "phone" in report and "faces on their side" in report


def test_equivalent_scales_are_not_stale_and_close_values_are_shown_apart(videos, tmp_path, capsys):
    """--scale 1 writes what no --scale writes: not a difference; a margin that differs in the 8th
    digit is named with the digits that differ, not as "asked 1.3, recorded 1.3"."""
    out = tmp_path / "out"
    video = str(videos / "v.mp4")
    assert extract(video, "--out", str(out)) == 0
    folder = next(p for p in out.iterdir() if p.is_dir())
    assert settings_differences(folder, video, {"face_detector": "dlib", "scale": 1.0}) == []
    capsys.readouterr()
    assert extract(video, "--out", str(out), "--scale", "1.0") == 0
    assert extract(video, "--out", str(out), "--margin", "1.30000001") == 1
    printed = capsys.readouterr()
    assert "--margin asked 1.30000001, recorded 1.3" in printed.out + printed.err


def test_videos_outside_the_manifests_folder_sharing_a_file_name_get_folders_of_their_own(videos, tmp_path, capsys):
    """A manifest written beside the dataset (not above it): FF++'s Deepfakes/000_003.mp4 and
    Face2Face/000_003.mp4 were both named 000_003 and the second failed as the folder's other
    claimant. They are named by their path below their common folder; a name no other video
    shares stays the file name (as folders extracted before are named)."""
    data = tmp_path / "data"
    for method in ("Deepfakes", "Face2Face"):
        (data / method).mkdir(parents=True)
        shutil.copy(videos / "v.mp4", data / method / "000_003.mp4")
    shutil.copy(videos / "w.mp4", data / "Face2Face" / "only.mp4")
    (tmp_path / "lists").mkdir()
    manifest = tmp_path / "lists" / "m.csv"
    manifest.write_text("path,label\n../data/Deepfakes/000_003.mp4,1\n../data/Face2Face/000_003.mp4,1\n"
                        "../data/Face2Face/only.mp4,1\n")
    out = tmp_path / "out"
    assert extract("--manifest", str(manifest), "--out", str(out), detector="none") == 0
    assert "already used by" not in capsys.readouterr().out
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("**/faces.json")) == [
        "Deepfakes/000_003/faces.json", "Face2Face/000_003/faces.json", "only/faces.json"]


def test_a_failed_video_leaves_no_empty_folders_behind(tmp_path, capsys):
    """A video below a subfolder (`clips/blank.mp4` -> OUT/clips/blank) that fails (no face) left the empty
    OUT/clips behind; a folder another video of the run wrote into stays."""
    from video_fixtures import faceless_frames

    (tmp_path / "clips").mkdir()
    (tmp_path / "more").mkdir()
    encode(tmp_path / "clips" / "blank.mp4", faceless_frames())
    shutil.copy(carphone(), tmp_path / "more" / "face.mp4")
    encode(tmp_path / "more" / "blank.mp4", faceless_frames())
    manifest = tmp_path / "videos.csv"
    manifest.write_text("path,label,split\nclips/blank.mp4,real,train\nmore/face.mp4,real,train\n"
                        "more/blank.mp4,real,train\n")
    out = tmp_path / "faces"
    assert main(["extract-faces", "--manifest", str(manifest), "--out", str(out), "--max-frames", "8",
                 "--workers", "1", "--no-progress"]) == 1
    assert "no_face" in capsys.readouterr().out
    assert not (out / "clips").exists()
    assert sorted(p.name for p in (out / "more").iterdir()) == ["face"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_manifest_written_by_another_shard_meanwhile_is_kept_and_ours_gets_its_own_name(tmp_path, capsys,
                                                                                         monkeypatch, overwrite):
    """Two --manifest shards into one OUT: the one that finishes second found no faces.csv (or the one
    --overwrite was to replace) when it started, and another run's when it writes. It crashed with a
    FileExistsError traceback (or, with --overwrite, replaced the other's rows); now it writes its own
    faces.<time>-<pid>.csv and faces_failed.<...>.csv, says so, and the other run's files stay as they are."""
    from video_fixtures import write_text_as_mp4

    from dynsnip.cli import extract_faces

    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(carphone(), data / "a.mp4")
    write_text_as_mp4(data / "broken.mp4")
    (data / "shard.csv").write_text("path,label\na.mp4,real\nbroken.mp4,fake\n")
    out = tmp_path / "out"
    out.mkdir()
    if overwrite:
        (out / "faces.csv").write_text("path,label\nold/run,0\n")
    other = "path,label,split\nother/shard,1,train\n"
    run_all = extract_faces._run_all

    def other_shard_finishes_meanwhile(jobs, workers):
        for n, outcome in enumerate(run_all(jobs, workers)):
            if n == 0:
                (out / "faces.csv").write_text(other)
                (out / "faces_failed.csv").write_text("path,label,reason,message\nother/bad.mp4,0,corrupt,x\n")
            yield outcome

    monkeypatch.setattr(extract_faces, "_run_all", other_shard_finishes_meanwhile)
    code = main(["extract-faces", "--manifest", str(data / "shard.csv"), "--out", str(out), "--face-detector", "none",
                 "--max-frames", "4", "--workers", "1", "--no-progress", *(["--overwrite"] if overwrite else [])])
    printed = capsys.readouterr().out
    assert code == 1  # broken.mp4 failed; nothing crashed
    assert (out / "faces.csv").read_text() == other  # the other shard's rows, as it wrote them
    ours = sorted(out.glob("faces.*-*.csv"))
    failed = sorted(out.glob("faces_failed.*-*.csv"))
    assert len(ours) == 1 and len(failed) == 1 and ours[0].name[len("faces."):] == failed[0].name[len("faces_failed."):]
    assert [e.path.name for e in read_manifest(ours[0])] == ["a"]
    assert "broken.mp4" in failed[0].read_text()
    assert f"this run's rows go to {ours[0].name}" in printed and f"wrote {ours[0]} (1 entries)" in printed


# ------------------------------------------------------------- a .partial folder left behind: whose is it?
def test_the_owner_record_names_the_writer_by_id_and_start_time(videos, tmp_path, monkeypatch):
    """While a folder is written, its .owner record names the writer by host, process id and the process's
    start time: the id alone names another process once it is reused."""
    import socket

    from dynsnip.data.faces import extraction
    from dynsnip.data.faces.folder_source import OWNER_FILE

    seen: list[str] = []
    write = extraction._RegionWriter._write

    def look(self, *args, **kwargs):
        if not seen:
            seen.append((self.folder / OWNER_FILE).read_text())
        return write(self, *args, **kwargs)

    monkeypatch.setattr(extraction._RegionWriter, "_write", look)
    extraction.extract_face_frames(videos / "v.mp4", tmp_path / "v", face_detector="none")
    fields = seen[0].split()
    assert fields[:2] == [socket.gethostname(), str(os.getpid())]
    if Path("/proc/self/stat").exists():
        assert fields[2] == extraction.process_start(os.getpid()) and fields[2].split("@")[0].isdigit()
    assert not (tmp_path / "v" / OWNER_FILE).exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times from /proc")
def test_a_partial_folder_whose_process_id_was_reused_is_replaced(videos, tmp_path, capsys):
    """A container restarted numbers its processes from 1 again: the .owner record of a folder left by a
    killed extraction names an id that a live process now has, and the rerun failed with a raw
    ``FileExistsError``. The record's start time now tells that the writer has ended: the folder is
    replaced. A record naming a live writer (its id and start time; or its id alone, as records written
    before start times were, trusted as before; or another machine) fails the video with the reason
    ``partial_folder_in_use`` and a message naming the writer, in the report and in faces_failed.csv."""
    import socket

    from dynsnip.data.faces.extraction import PartialFolderInUseError, process_start
    from dynsnip.data.faces.folder_source import OWNER_FILE

    out = tmp_path / "out"
    partial = out / "v.partial"
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,label\n{videos / 'v.mp4'},1\n")
    host, pid = socket.gethostname(), os.getpid()

    def leave(record: str) -> None:
        partial.mkdir(parents=True, exist_ok=True)
        (partial / "000000.png").write_bytes(b"half")
        (partial / OWNER_FILE).write_text(record)

    for record, writer in [(f"{host} {pid} {process_start(pid)}", f"process {pid} of this machine, which wrote it, "
                                                                  "is still running"),
                           (f"{host} {pid}", f"process {pid} of this machine, which wrote it, is still running (a "
                                             "record without the start time of its writer)"),
                           (f"elsewhere {pid} 42@boot", f"it is written by process {pid} on the machine elsewhere, or "
                                                         "was left there by an interrupted extraction")]:
        leave(record)
        for name in ("faces.csv", "faces_failed.csv"):
            (out / name).unlink(missing_ok=True)
        capsys.readouterr()
        assert extract("--manifest", str(manifest), "--out", str(out), detector="none") == 1
        printed = capsys.readouterr().out
        assert f"FAILED   {videos / 'v.mp4'}: partial_folder_in_use: {partial} exists: {writer}; another extraction " \
               "may be writing it" in printed, printed
        assert "FileExistsError" not in printed
        failed = list(csv.DictReader((out / "faces_failed.csv").open()))
        assert [row["reason"] for row in failed] == ["partial_folder_in_use"]
        assert (partial / "000000.png").read_bytes() == b"half"  # untouched
    with pytest.raises(PartialFolderInUseError) as in_use:  # a FileExistsError, as it was before it had a reason
        from dynsnip.data.faces.extraction import extract_face_frames

        extract_face_frames(videos / "v.mp4", out / "v", face_detector="none")
    assert isinstance(in_use.value, FileExistsError) and in_use.value.reason == "partial_folder_in_use"

    leave(f"{host} {pid} 1@{'0' * 8}-boot-before-the-restart")  # this id, another process: the writer ended
    capsys.readouterr()
    assert extract("--manifest", str(manifest), "--out", str(out), "--overwrite", detector="none") == 0
    assert not partial.exists() and (out / "v" / "faces.json").is_file() and not (out / "v" / OWNER_FILE).exists()
    assert listed_names(out / "faces.csv") == ["v"] and not (out / "faces_failed.csv").exists()


def listed_names(manifest: Path) -> list[str]:
    return [entry.path.name for entry in read_manifest(manifest)]


@pytest.mark.parametrize("record", ["host \u00b2", "host 99999999999999999999", "host 0", "host -5", "x"])
def test_a_malformed_owner_record_is_named_not_a_python_error(tmp_path, record):
    """Unicode digits pass str.isdigit and a huge id overflows os.kill: both escaped as ValueError /
    OverflowError, and pid 0 signals the process group (reported as a running writer)."""
    from dynsnip.data.faces.extraction import OWNER_FILE, partial_folder_writer

    partial = tmp_path / "v.partial"
    partial.mkdir()
    (partial / OWNER_FILE).write_text(record)
    assert "does not name its writer as expected" in partial_folder_writer(partial)

