"""``extract-faces`` stopped by Ctrl-C or SIGTERM: it stops at once (no video starts after the signal,
the ones in progress remove their unfinished folders), reports which videos finished and which did not,
lists the folders complete in ``faces.interrupted.csv`` (never over a ``faces.csv``), says how to finish,
and exits 130 / 143; the same command run again finishes without ``--overwrite``."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from video_fixtures import carphone, decode_all, encode, write_text_as_mp4

from dynsnip.cli import main
from dynsnip.data.manifest import read_manifest

ROOT = Path(__file__).resolve().parent.parent
VIDEOS = [f"v{i}" for i in range(6)]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """8 frames of carphone: a short video, extracted in well under a second."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    return encode(path, decode_all(carphone())[:8])


def data_set(root: Path, clip: Path, broken: bool = False) -> Path:
    """``root/m.csv``: the manifest of ``v0.mp4`` ... ``v5.mp4`` (copies of ``clip``; with ``broken``, a
    ``bad.mp4`` that is no video second)."""
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for name in VIDEOS:
        shutil.copy(clip, root / f"{name}.mp4")
        names.append(f"{name}.mp4")
        if broken and name == "v0":
            write_text_as_mp4(root / "bad.mp4")
            names.append("bad.mp4")
    (root / "m.csv").write_text("path,label\n" + "".join(f"{n},real\n" for n in names))
    return root / "m.csv"


def listed(manifest: Path) -> list[str]:
    return [entry.path.name for entry in read_manifest(manifest)]


def printed(text: str, status: str) -> list[str]:
    """The video names of the report lines starting with ``status`` (``OK``, ``STOPPED``...)."""
    return [Path(line.split()[1].rstrip(":")).stem for line in text.splitlines() if line.startswith(f"{status} ")]


# ------------------------------------------------------------------ the command, stopped by a real signal
# Runs `dynsnip ARGS` with the writing of a frame region patched: the first frame of video STEM sends SIGNAL to
# the main process or the whole process group (as a scheduler or a terminal's Ctrl-C does), writes MARKER and
# then takes 120 s; so does every frame written after it. A stop that is not at once shows as a run of minutes.
HARNESS = r"""
import os, signal, sys, time
from pathlib import Path
from dynsnip.cli import main
from dynsnip.data.faces import extraction

marker, stem, name, target, argv = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
main_pid = os.getpid()
write = extraction._RegionWriter._write

def write_then_stop(self, *args, **kwargs):
    if self.folder.name == stem + ".partial" and not marker.exists():
        marker.write_text(str(time.time()))
        if target == "group":
            os.killpg(os.getpgid(0), getattr(signal, name))
        else:
            os.kill(main_pid, getattr(signal, name))
        time.sleep(120)
    elif marker.exists():
        time.sleep(120)
    return write(self, *args, **kwargs)

extraction._RegionWriter._write = write_then_stop
sys.exit(main(argv))
"""


@pytest.mark.parametrize("name, target, workers, code", [
    ("SIGTERM", "group", "2", 143),  # a scheduler stopping the job (Slurm, Kubernetes: every process)
    ("SIGTERM", "main", "2", 143),  # docker stop: the main process only, which stops its workers
    ("SIGINT", "main", "2", 130),
    ("SIGINT", "group", "1", 130),  # a terminal's Ctrl-C, one process
], ids=lambda v: str(v))
def test_a_stopped_run_lists_what_finished_and_the_same_command_finishes(clip, tmp_path, capsys, name, target,
                                                                         workers, code):
    """SIGTERM ended extract-faces at once with nothing on stderr and no manifest; Ctrl-C (exit 130, one line)
    wrote no manifest either, went on extracting the videos queued to the worker processes without reporting
    them, and neither said how to finish. Now: no video starts after the signal, the ones in progress remove
    their unfinished folders, every video is reported (OK / STOPPED / NOT DONE), the folders complete are
    listed in faces.interrupted.csv, stderr says how to finish, exit 130 / 143; run again, the same command
    skips what was done, extracts the rest, writes faces.csv and removes the interrupted run's list."""
    manifest = data_set(tmp_path / "data", clip)
    out, marker = tmp_path / "out", tmp_path / "stopped"
    argv = ["extract-faces", "--manifest", str(manifest), "--out", str(out), "--face-detector", "none",
            "--workers", workers, "--pipeline", "off", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", HARNESS, str(marker), "v2", name, target, *argv], capture_output=True,
                          text=True, timeout=200, env=env, start_new_session=True)
    ended = time.time()
    assert proc.returncode == code, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert ended - float(marker.read_text()) < 60, "not stopped at once: the videos in progress ran on"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    done, stopped = printed(proc.stdout, "OK"), printed(proc.stdout, "STOPPED")
    if workers == "1":
        assert (done, stopped) == (["v0", "v1"], ["v2"])
        assert "NOT DONE 3 video(s) not started: " in proc.stdout
    else:  # v2 starts once v0 or v1 is done; nothing finishes after the signal
        assert done in (["v0"], ["v1"], ["v0", "v1"]) and "v2" in stopped, proc.stdout
    not_started = len(VIDEOS) - len(done) - len(stopped)
    assert f"6 video(s): {len(done)} done, 0 failed, {6 - len(done)} not extracted (interrupted by " in proc.stdout
    # exactly the videos reported done have a folder; no unfinished folder is left
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == done
    assert listed(out / "faces.interrupted.csv") == done and not (out / "faces.csv").exists()
    shown = "SIGTERM" if name == "SIGTERM" else "Ctrl-C"
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"dynsnip extract-faces: interrupted ({shown}): {len(done)} of the 6 video(s) done"), last
    assert (f"{6 - len(done)} not extracted ({len(stopped)} stopped while being extracted, their unfinished folders "
            f"removed; {not_started} not started); run the same command again to finish") in last

    assert main(argv) == 0  # no --overwrite needed: the interrupted run wrote no faces.csv
    rerun = capsys.readouterr().out
    assert printed(rerun, "SKIPPED") == done and len(printed(rerun, "OK")) == 6 - len(done)
    assert listed(out / "faces.csv") == VIDEOS
    assert not (out / "faces.interrupted.csv").exists()
    assert f"removed {out / 'faces.interrupted.csv'}: the list of an interrupted run" in rerun


# ------------------------------------------------------------------ in this process: Ctrl-C as a KeyboardInterrupt
def test_a_stop_never_replaces_an_earlier_faces_csv_and_lists_failures_apart(clip, tmp_path, capsys, monkeypatch):
    """Stopped with --overwrite over an earlier faces.csv: that file stays as it was (a partial manifest is
    never written over it); the folders complete and the rows failed go to faces.interrupted.csv and
    faces_failed.interrupted.csv. The earlier faces.csv is still the user's: run again, the command asks
    for --overwrite as before, and with it writes the complete pair and removes the interrupted lists."""
    from dynsnip.data.faces import extraction

    manifest = data_set(tmp_path / "data", clip, broken=True)
    out = tmp_path / "out"
    out.mkdir()
    earlier = "path,label\nsomewhere/else,1\n"
    (out / "faces.csv").write_text(earlier)
    extract = extraction.extract_face_frames

    def ctrl_c_at_v2(video, out_dir, **options):
        if Path(video).stem == "v2":
            raise KeyboardInterrupt
        return extract(video, out_dir, **options)

    monkeypatch.setattr(extraction, "extract_face_frames", ctrl_c_at_v2)
    argv = ["extract-faces", "--manifest", str(manifest), "--out", str(out), "--face-detector", "none",
            "--workers", "1", "--no-progress", "--overwrite"]
    assert main(argv) == 130
    captured = capsys.readouterr()
    assert (out / "faces.csv").read_text() == earlier
    assert listed(out / "faces.interrupted.csv") == ["v0", "v1"]
    assert "bad.mp4,0,,,corrupt," in (out / "faces_failed.interrupted.csv").read_text()
    assert "7 video(s): 2 done, 1 failed, 4 not extracted (interrupted by Ctrl-C)" in captured.out
    assert printed(captured.out, "STOPPED") == ["v2"] and "NOT DONE 3 video(s) not started: " in captured.out
    assert "interrupted (Ctrl-C): 2 of the 7 video(s) done and 1 failed before it" in captured.err
    assert "run the same command again to finish" in captured.err

    monkeypatch.setattr(extraction, "extract_face_frames", extract)
    assert main(argv[:-1]) == 2  # the earlier faces.csv: replaced only with --overwrite, as before
    assert "faces.csv exists; refusing to overwrite it" in capsys.readouterr().err
    assert main(argv) == 1  # bad.mp4 fails again
    assert listed(out / "faces.csv") == VIDEOS and "bad.mp4" in (out / "faces_failed.csv").read_text()
    assert not (out / "faces.interrupted.csv").exists() and not (out / "faces_failed.interrupted.csv").exists()
    assert "(and faces_failed.interrupted.csv)" in capsys.readouterr().out


class SlowDetector:
    """A face detector (one box in the middle) that takes ``delay`` seconds a frame and appends the id of the
    process that called it to ``log``: a video that is surely still in progress a moment after it started."""

    def __init__(self, log: Path, delay: float) -> None:
        self.log, self.delay = log, delay

    def __call__(self, frame):
        with open(self.log, "a") as log:
            log.write(f"{os.getpid()}\n")
        time.sleep(self.delay)
        height, width = frame.shape[:2]
        return np.array([[width * 0.3, height * 0.2, width * 0.7, height * 0.8, 0.9]])


def slow_jobs(clip: Path, tmp_path: Path, delay: float) -> list:
    detector = SlowDetector(tmp_path / "calls.log", delay)
    return [(clip, tmp_path / "faces" / name, dict(face_detector=detector, min_face_coverage=0.0, pipeline=False))
            for name in VIDEOS]


def folders(tmp_path: Path) -> set[str]:
    return {p.name for p in (tmp_path / "faces").iterdir()} if (tmp_path / "faces").exists() else set()


def test_the_workers_start_no_job_after_a_stop_and_interrupt_the_ones_in_progress(clip, tmp_path):
    """A KeyboardInterrupt thrown into _run_all where its caller was (reporting) stops the worker processes:
    the videos queued to them were extracted anyway, and not reported; a worker that caught the
    KeyboardInterrupt of one video went on to the next. Now no job starts, the ones in progress are
    interrupted and remove their unfinished folders, and ExtractionInterrupted names exactly the jobs
    finished: the folders on disk are those."""
    from dynsnip.cli.extract_workers import ExtractionInterrupted, _run_all

    jobs = slow_jobs(clip, tmp_path, delay=1.0)  # 2 looked-at frames: a video takes 2 s
    outcomes = _run_all(jobs, 2)
    first = next(outcomes)
    assert first[0], first
    time.sleep(0.5)  # the next two videos are being extracted (for 2 s)
    started = time.monotonic()
    with pytest.raises(ExtractionInterrupted) as stop:
        outcomes.throw(KeyboardInterrupt())
    assert time.monotonic() - started < 8  # the 4 to 5 videos left would take 4 s or more each pair
    finished, stopped = stop.value.finished, stop.value.stopped
    assert all(ok for ok, _ in finished.values()) and set(finished) <= {1}
    assert stopped and set(stopped) <= {1, 2, 3} and not set(stopped) & set(finished)
    assert folders(tmp_path) == {VIDEOS[0], *(VIDEOS[i] for i in finished)}  # and no .partial
    assert len(folders(tmp_path)) + len(stopped) < len(VIDEOS)  # some were never started


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_a_worker_process_stopped_alone_fails_its_video_and_the_others_go_on(clip, tmp_path):
    """SIGTERM to one worker process only (not the main process): that video fails as ``interrupted`` (its
    unfinished folder removed) and the worker goes on with the next videos; nothing is skipped silently."""
    from dynsnip.cli.extract_workers import _run_all

    jobs = slow_jobs(clip, tmp_path, delay=0.3)
    log = tmp_path / "calls.log"

    def stop_one_worker() -> None:
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(int(log.read_text().split()[0]), signal.SIGTERM)

    stopper = threading.Thread(target=stop_one_worker)
    stopper.start()
    outcomes = list(_run_all(jobs, 2))
    stopper.join()
    failed = [line for ok, line in outcomes if not ok]
    assert len(failed) == 1 and ": interrupted: its worker process was stopped by a signal" in failed[0], outcomes
    assert sum(ok for ok, _ in outcomes) == len(VIDEOS) - 1
    assert len(folders(tmp_path)) == len(VIDEOS) - 1  # the others extracted, no .partial left
