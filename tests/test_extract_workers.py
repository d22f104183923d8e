"""extract-faces with worker processes must not hang in torch after the fork.

The parent process starts torch's OpenMP thread pool (building the face detector does);
a process forked after that hung in its first parallel region (MTCNN in two workers),
until the workers were made to compute with one torch thread, as DataLoader workers do. And
they must end when the main process dies, however it dies.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from video_fixtures import carphone, two_people

ROOT = Path(__file__).resolve().parent.parent


def test_extract_faces_with_two_workers_finishes(tmp_path):
    videos = [carphone(), two_people()]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "dynsnip", "extract-faces", *map(str, videos), "--out", str(tmp_path / "faces"),
         "--face-detector", "mtcnn", "--max-frames", "24", "--workers", "2", "--no-progress"],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "2 video(s): 2 done, 0 failed" in proc.stdout
    for video in videos:
        assert any((tmp_path / "faces" / video.stem).glob("*.png")), video.stem


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not ended, nor a zombie waiting to be reaped)."""
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_workers_end_when_the_main_process_is_killed(tmp_path):
    """``kill -9`` of the main process: its worker processes must not live on, blocked on the task
    pipe forever (issue 21, item 13)."""
    import signal
    import time

    import numpy as np

    from video_fixtures import encode

    rng = np.random.default_rng(0)  # noise: slow to write as PNG, so the workers are busy when the main dies
    video = encode(tmp_path / "v0.mp4", [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(60)])
    for i in range(1, 8):
        (tmp_path / f"v{i}.mp4").write_bytes(video.read_bytes())
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    main = subprocess.Popen(
        [sys.executable, "-m", "dynsnip", "extract-faces", str(tmp_path), "--out", str(tmp_path / "faces"),
         "--face-detector", "none", "--workers", "2", "--no-progress"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and main.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
            workers = [pid for pid in _children(main.pid) if _running(pid)]
        assert len(workers) == 2, "the two worker processes did not start"
        os.kill(main.pid, signal.SIGKILL)
        main.wait()
        deadline = time.monotonic() + 15
        while any(map(_running, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(_running, workers)), "worker processes outlived the killed main process"
    finally:
        if main.poll() is None:
            main.kill()
            main.wait()
        for pid in workers:  # leave nothing behind if the test failed
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


class PickleCountingDetector:
    """A face detector (one fixed box in the middle of each frame) that writes a line to ``log`` each
    time it is pickled: how often it went to a worker process."""

    def __init__(self, log: Path) -> None:
        self.log = log

    def __call__(self, frame):
        import numpy as np

        height, width = frame.shape[:2]
        return np.array([[width * 0.3, height * 0.2, width * 0.7, height * 0.8, 0.9]])

    def __getstate__(self) -> dict:
        with open(self.log, "a") as log:
            log.write(f"{os.getpid()}\n")
        return self.__dict__


def test_worker_processes_get_the_detector_once_not_with_every_video(tmp_path):
    """The command's detector object goes to each worker process once (when it starts), not pickled into
    every job: ``auto``'s three networks are 4.6 MB and about 60 ms of CPU to pickle and unpickle, per
    video, which kept extract-faces over 24 copies of the bundled clips at 4.8x decode-only instead of 2.1x
    (docs/video.md). Every job still uses that detector, and a job naming a detector of its own keeps it."""
    from dynsnip.cli.extract_workers import _SharedDetector, _run_all, _shared_detector
    from dynsnip.data.faces.face_folder import read_meta

    log = tmp_path / "pickled.log"
    detector = PickleCountingDetector(log)
    videos = [two_people()] * 6
    jobs = [(video, tmp_path / f"faces{i}", dict(face_detector=detector, max_frames=8, min_face_coverage=0.0))
            for i, video in enumerate(videos)]
    outcomes = list(_run_all(jobs, 2))
    assert all(ok for ok, _ in outcomes), outcomes
    pickled = log.read_text().split() if log.exists() else []
    assert len(pickled) <= 2, f"the detector was pickled {len(pickled)} times for 6 videos on 2 workers"
    for _, out, _ in jobs:  # every folder made with it: its box, in every looked-at frame
        meta = read_meta(out)
        assert "PickleCountingDetector" in meta["face_detector"]
        assert all(len(rows) == 1 for rows in meta["detections"].values())

    shipped, once = _shared_detector(jobs)
    assert once is detector and all(isinstance(o["face_detector"], _SharedDetector) for _, _, o in shipped)
    other = PickleCountingDetector(log)
    mixed = jobs[:1] + [(jobs[1][0], jobs[1][1], {**jobs[1][2], "face_detector": other})]
    assert _shared_detector(mixed) == (mixed, None)  # different detectors: each job keeps its own
    named = [(v, out, {**o, "face_detector": "auto"}) for v, out, o in jobs]
    assert _shared_detector(named) == (named, None)  # a name: built in the worker, as before


def test_worker_processes_take_the_largest_videos_first_and_report_in_the_given_order(tmp_path):
    """The worker processes take the videos largest file first (a long video started last keeps one
    process working alone at the end), but the outcomes come in the order the videos were given: a
    video that fails is reported at its place and the others are extracted."""
    from dynsnip.cli.extract_workers import _run_all, largest_first

    small, large = two_people(), carphone()
    missing = tmp_path / "gone.mp4"
    assert small.stat().st_size < large.stat().st_size
    assert largest_first([small, large, missing, small, large]) == [1, 4, 0, 3, 2]
    assert largest_first([]) == []
    videos = [small, missing, large, small]
    jobs = [(video, tmp_path / f"faces{i}", dict(face_detector="auto", max_frames=8, min_face_coverage=0.0))
            for i, video in enumerate(videos)]
    outcomes = list(_run_all(jobs, 2))
    assert [ok for ok, _ in outcomes] == [True, False, True, True]
    for (video, out, _), (ok, line) in zip(jobs, outcomes):
        assert str(video) in line
        assert (out / "faces.json").is_file() == ok


def test_under_torchrun_each_rank_defaults_to_its_share_of_the_cpus(tmp_path, monkeypatch):
    """extract-faces starts one process per CPU by default; under torchrun with M ranks on the node each
    rank started that many too (M x CPUs processes). Each rank now takes CPUs / LOCAL_WORLD_SIZE (at
    least 1); a --workers given is kept, and a single process keeps every CPU."""
    from dynsnip import cpus
    from dynsnip.cli import extract_faces, main
    from dynsnip.engine import distributed

    monkeypatch.setattr(cpus, "available_cpus", lambda: 8)
    started: list[int] = []

    class Started(Exception):
        pass

    def run_all(jobs, workers):
        started.append(workers)
        raise Started

    monkeypatch.setattr(extract_faces, "_run_all", run_all)
    monkeypatch.setattr(distributed, "join_torchrun", lambda device: None)  # the rank's own part of the run
    argv = ["extract-faces", str(carphone()), "--face-detector", "none", "--no-progress"]
    for env, extra, expected in [({}, [], 8), ({"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}, [], 4),
                                 ({"WORLD_SIZE": "16", "LOCAL_WORLD_SIZE": "16"}, [], 1),
                                 ({"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}, ["--workers", "3"], 3)]:
        for name in ("WORLD_SIZE", "LOCAL_WORLD_SIZE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(Started):
            main([*argv, "--out", str(tmp_path / f"out{len(started)}"), *extra])
        assert started[-1] == expected, (env, extra)
    assert cpus.cpus_per_process() == 4  # WORLD_SIZE 4, LOCAL_WORLD_SIZE 2 of 8 CPUs: also evaluate's default
