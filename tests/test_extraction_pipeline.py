"""extract-faces pipelined: detection and writing in threads of their own beside the decoding write
the very bytes of the sequential run, fail the video the same way, leave no thread and no
``.partial`` folder behind, and hold no more frames than the memory bound allows."""
from __future__ import annotations

import errno
import threading
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
from video_fixtures import carphone, decode_all, encode, two_people

from dynsnip.data.faces import extraction
from dynsnip.data.faces.detectors import create_face_detector
from dynsnip.data.faces.extraction import extract_face_frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return encode(tmp_path_factory.mktemp("clip") / "clip.mp4", decode_all(carphone())[:40])


@pytest.fixture(scope="module")
def detector():
    return create_face_detector("auto")


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("dynsnip-")]


class Recording:
    """A detector that notes the thread each batch runs in (and can be slow, or fail on a batch)."""

    def __init__(self, inner, fail_on_batch: int | None = None, delay: float = 0.0):
        self.inner, self.fail_on_batch, self.delay = inner, fail_on_batch, delay
        self.batch_size = getattr(inner, "batch_size", 1)
        self.batch_invariant = getattr(inner, "batch_invariant", False)
        self.threads: list[str] = []
        self.batches: list[int] = []

    def detect_batch(self, frames):
        self.threads.append(threading.current_thread().name)
        self.batches.append(len(frames))
        if self.fail_on_batch is not None and len(self.threads) > self.fail_on_batch:
            raise RuntimeError("the detector crashed on this batch")
        time.sleep(self.delay)
        return self.inner.detect_batch(frames)

    def __call__(self, frame):
        return self.detect_batch(np.asarray(frame)[None])[0]

    def __repr__(self) -> str:
        return repr(self.inner)


@pytest.mark.parametrize("video, faces", [("clip", "all"), ("two_people", "all"), ("clip", "largest")])
def test_pipelined_folder_is_byte_identical_to_the_sequential_one(video, faces, clip, detector, tmp_path,
                                                                  monkeypatch):
    """Every file (regions, faces.json with its detections, coverage and face tracks) is the same
    byte for byte, and the work really ran in the detector and writer threads (writes also in the
    decoding thread, when it helps instead of waiting)."""
    path = clip if video == "clip" else two_people()
    written_by: set[str] = set()
    write_png = extraction.write_png

    def noting_write_png(*args, **kwargs):
        written_by.add(threading.current_thread().name)
        return write_png(*args, **kwargs)

    monkeypatch.setattr(extraction, "write_png", noting_write_png)
    sequential, pipelined = Recording(detector), Recording(detector)
    sequential.batch_size = pipelined.batch_size = 16  # a batch size asked for (the CPU default is 8)
    a = extract_face_frames(path, tmp_path / "sequential", face_detector=sequential, faces=faces, pipeline=False)
    assert written_by == {"MainThread"} and set(sequential.threads) == {"MainThread"}
    written_by.clear()
    b = extract_face_frames(path, tmp_path / "pipelined", face_detector=pipelined, faces=faces, pipeline=True)
    assert "dynsnip-write" in written_by <= {"dynsnip-write", "MainThread"}
    assert set(pipelined.threads) == {"dynsnip-detect"}  # a detector not marked thread_safe: its thread only
    assert a == extraction.ExtractedFaces(**{**b.__dict__, "out_dir": a.out_dir})
    assert folder_bytes(tmp_path / "sequential") == folder_bytes(tmp_path / "pipelined")
    assert not pipeline_threads()
    # BlazeFace's rows do not depend on the batch: pipelined, its batches are small (the detector thread
    # starts early); the sequential run keeps the detector's own batch size
    looked_at = a.frames_checked
    assert sequential.batches == [min(16, looked_at - i) for i in range(0, looked_at, 16)]
    assert pipelined.batches == [min(extraction.PIPELINE_DETECTION_BATCH, looked_at - i)
                                 for i in range(0, looked_at, extraction.PIPELINE_DETECTION_BATCH)]


def test_a_detector_whose_rows_depend_on_the_batch_gets_its_own_batches_pipelined(clip, detector, tmp_path):
    """MTCNN on a GPU (batch_size 16, boxes depending on the batch): the pipelined run hands it the
    same batches as the sequential one, so that the rows are the same."""
    recording = Recording(detector)
    recording.batch_invariant, recording.batch_size = False, 16
    extract_face_frames(clip, tmp_path / "out", face_detector=recording, pipeline=True)
    assert recording.batches == [10]  # 40 frames, k = 4: one batch of 10 looked-at frames


def test_a_gpu_detector_runs_in_the_decoding_thread_pipelined(clip, detector, tmp_path, monkeypatch):
    """A detector on a GPU (alone, or as a stage of a cascade) is called from the calling thread, not
    from a new detection thread per video (PyTorch caches cuDNN's plans per thread: a new thread
    rebuilds them all); the writer thread still runs, and the folder is the same bytes."""
    from dynsnip.data.faces.detectors import AutoFaceDetector, runs_on_gpu

    class OnGpu(Recording):
        device = "cuda:0"  # what a detector made with device="cuda" says; the network itself runs here

    written_by: set[str] = set()
    write_png = extraction.write_png
    monkeypatch.setattr(extraction, "write_png",
                        lambda *a, **k: written_by.add(threading.current_thread().name) or write_png(*a, **k))
    gpu = OnGpu(detector)
    a = extract_face_frames(clip, tmp_path / "gpu", face_detector=gpu, pipeline=True)
    assert set(gpu.threads) == {"MainThread"}
    assert "dynsnip-write" in written_by <= {"dynsnip-write", "MainThread"}
    cpu = Recording(detector)
    b = extract_face_frames(clip, tmp_path / "cpu", face_detector=cpu, pipeline=True)
    assert set(cpu.threads) == {"dynsnip-detect"}
    assert a.frames_checked == b.frames_checked and folder_bytes(tmp_path / "gpu") == folder_bytes(tmp_path / "cpu")
    assert not pipeline_threads()
    # which detectors count as on a GPU: their device, or any stage's of a cascade
    assert runs_on_gpu(gpu) and not runs_on_gpu(cpu) and not runs_on_gpu(detector)
    assert runs_on_gpu(AutoFaceDetector(Recording(detector), gpu)) and not runs_on_gpu(AutoFaceDetector(cpu, cpu))


def test_pipelined_under_a_tight_memory_bound_writes_the_same_bytes(clip, detector, tmp_path, monkeypatch):
    """With room for two frames, the pipelined run waits for its threads and drops frames to decode
    again at the end: the folder is still the unbounded sequential run's."""
    extract_face_frames(clip, tmp_path / "reference", face_detector=detector, pipeline=False)
    monkeypatch.setattr(extraction, "MAX_BUFFERED_BYTES", 2 * 176 * 144 * 3)
    extract_face_frames(clip, tmp_path / "bounded", face_detector=detector, pipeline=True)
    assert folder_bytes(tmp_path / "reference") == folder_bytes(tmp_path / "bounded")


class TrackingReader(extraction.VideoReader):
    """Counts the decoded frames still alive (referenced anywhere) each time a new one is decoded."""

    alive: list = []
    peak = 0

    def iter_frames(self, start=0, stop=None):
        for index, frame in super().iter_frames(start, stop):
            TrackingReader.alive = [ref for ref in TrackingReader.alive if ref() is not None]
            TrackingReader.peak = max(TrackingReader.peak, len(TrackingReader.alive))
            TrackingReader.alive.append(weakref.ref(frame))
            yield index, frame


def test_memory_stays_bounded_when_the_detector_and_writer_fall_behind(clip, detector, tmp_path, monkeypatch):
    """A slow detector and a slow writer: decoding does not run ahead of them beyond the bound
    (waiting and queued frames within MAX_BUFFERED_BYTES, plus the looked-at frames of the
    detection batches not yet taken), and the folder is the sequential run's."""
    extract_face_frames(clip, tmp_path / "reference", face_detector=detector, pipeline=False)
    bound_frames = 6
    monkeypatch.setattr(extraction, "MAX_BUFFERED_BYTES", bound_frames * 176 * 144 * 3)
    monkeypatch.setattr(extraction, "VideoReader", TrackingReader)
    write_png = extraction.write_png

    def slow_write_png(*args, **kwargs):
        time.sleep(0.002)
        return write_png(*args, **kwargs)

    monkeypatch.setattr(extraction, "write_png", slow_write_png)
    TrackingReader.alive, TrackingReader.peak = [], 0
    slow = Recording(detector, delay=0.02)
    slow.batch_size = 2  # looked-at frames per batch: 2 frames of 4 k-steps apart
    extract_face_frames(clip, tmp_path / "bounded", face_detector=slow, pipeline=True)
    batches_held = (1 + extraction.DETECTION_BATCHES_IN_FLIGHT) * slow.batch_size  # pending + in flight
    assert 0 < TrackingReader.peak <= bound_frames + batches_held + 1  # + the decoding loop's previous frame
    assert folder_bytes(tmp_path / "reference") == folder_bytes(tmp_path / "bounded")


def failing_write_png(fail_at: int):
    write_png = extraction.write_png

    def write(path, image, *args, **kwargs):
        if Path(path).stem == f"{fail_at:06d}":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return write_png(path, image, *args, **kwargs)

    return write


@pytest.mark.parametrize("pipeline", [False, True])
def test_a_writer_failure_fails_the_video_with_its_reason_and_leaves_nothing(pipeline, clip, detector, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setattr(extraction, "write_png", failing_write_png(13))
    with pytest.raises(OSError, match="No space left on device") as failure:
        extract_face_frames(clip, tmp_path / "out", face_detector=detector, pipeline=pipeline)
    assert failure.value.errno == errno.ENOSPC and failure.value.filename.endswith("000013.png")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor out.partial
    assert not pipeline_threads()


@pytest.mark.parametrize("pipeline", [False, True])
def test_a_detector_failure_fails_the_video_with_its_reason_and_leaves_nothing(pipeline, clip, detector, tmp_path):
    crashing = Recording(detector, fail_on_batch=1)
    crashing.batch_size = 2  # several batches, the second fails
    with pytest.raises(RuntimeError, match="the detector crashed on this batch"):
        extract_face_frames(clip, tmp_path / "out", face_detector=crashing, pipeline=pipeline)
    assert list(tmp_path.iterdir()) == []
    assert not pipeline_threads()


def test_the_cli_reports_a_thread_failure_as_the_sequential_run_does(clip, detector, tmp_path, monkeypatch):
    """extract-faces' line for a failed video names the same reason whichever way it ran."""
    from dynsnip.cli.extract_workers import _extract

    monkeypatch.setattr(extraction, "write_png", failing_write_png(7))
    lines = [_extract((clip, tmp_path / f"out{int(p)}", dict(face_detector=detector, pipeline=p)))
             for p in (False, True)]
    assert [ok for ok, _ in lines] == [False, False]
    assert lines[0][1].replace("out0", "out1") == lines[1][1]
    assert "OSError: [Errno 28] No space left on device" in lines[1][1]


def test_an_interrupt_while_decoding_leaves_no_thread_and_no_partial_folder(clip, detector, tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt in the decoding thread) with detections and writes under way."""

    class Interrupted(extraction.VideoReader):
        def iter_frames(self, start=0, stop=None):
            for index, frame in super().iter_frames(start, stop):
                if index == 30:
                    raise KeyboardInterrupt
                yield index, frame

    monkeypatch.setattr(extraction, "VideoReader", Interrupted)
    slow = Recording(detector, delay=0.01)
    slow.batch_size = 2
    with pytest.raises(KeyboardInterrupt):
        extract_face_frames(clip, tmp_path / "out", face_detector=slow, pipeline=True)
    assert list(tmp_path.iterdir()) == []
    assert not pipeline_threads()


def test_pipeline_by_default_only_where_each_extraction_has_two_cpus(monkeypatch):
    from dynsnip.cli.extract_faces import pipeline_choice

    monkeypatch.setattr(extraction, "available_cpus", lambda: 2)
    assert extraction.pipeline_fits() and not extraction.pipeline_fits(2)
    assert pipeline_choice("auto", workers=2, jobs=1) == (True, 1)  # one video: one process, 2 CPUs for it
    assert pipeline_choice("auto", workers=2, jobs=5) == (False, 2)  # two processes already use the 2 CPUs
    assert pipeline_choice("auto", workers=1, jobs=5) == (True, 1)
    assert pipeline_choice("on", workers=2, jobs=5) == (True, 2)
    assert pipeline_choice("off", workers=1, jobs=1) == (False, 1)
    monkeypatch.setattr(extraction, "available_cpus", lambda: 8)
    assert pipeline_choice("auto", workers=4, jobs=5) == (True, 4)
    assert pipeline_choice("auto", workers=8, jobs=50) == (False, 8)
    monkeypatch.setattr(extraction, "available_cpus", lambda: 1)
    assert pipeline_choice("auto", workers=1, jobs=1) == (False, 1)


def test_which_detectors_may_be_handed_any_batch():
    from dynsnip.data.faces.detectors import AutoFaceDetector, DlibFaceDetector, MtcnnFaceDetector

    assert create_face_detector("auto").batch_invariant and DlibFaceDetector().batch_invariant
    assert MtcnnFaceDetector().batch_invariant and not MtcnnFaceDetector(batch_size=16).batch_invariant
    assert not AutoFaceDetector(create_face_detector("blazeface-short"), MtcnnFaceDetector(batch_size=16)).batch_invariant


def test_which_detectors_may_be_called_from_two_threads_at_once():
    """Stateless torch detectors may; dlib (a shared HOG object) and anything unmarked may not, nor a
    cascade holding one."""
    from dynsnip.data.faces.detectors import AutoFaceDetector, DlibFaceDetector, MtcnnFaceDetector

    blazeface = create_face_detector("blazeface-short")
    assert blazeface.thread_safe and MtcnnFaceDetector().thread_safe and create_face_detector("auto").thread_safe
    assert not getattr(DlibFaceDetector(), "thread_safe", False)
    assert not AutoFaceDetector(blazeface, DlibFaceDetector()).thread_safe
    assert not AutoFaceDetector(blazeface, Recording(blazeface)).thread_safe


class ThreadSafeRecording(Recording):
    thread_safe = True


def test_the_decoding_thread_detects_and_writes_instead_of_waiting(clip, detector, tmp_path, monkeypatch):
    """A slow thread-safe detector and slow writes: when the decoding thread would wait for them, it
    runs queued detection batches and writes itself; the rows still reach the stream in frame
    order, and the folder is the sequential run's byte for byte."""
    extract_face_frames(clip, tmp_path / "reference", face_detector=detector, pipeline=False)
    written_by: list[str] = []
    write_png = extraction.write_png

    def slow_write_png(*args, **kwargs):
        written_by.append(threading.current_thread().name)
        time.sleep(0.003)
        return write_png(*args, **kwargs)

    monkeypatch.setattr(extraction, "write_png", slow_write_png)
    slow = ThreadSafeRecording(detector, delay=0.03)
    slow.batch_size = 1
    extract_face_frames(clip, tmp_path / "helped", face_detector=slow, pipeline=True)
    assert set(slow.threads) == {"dynsnip-detect", "MainThread"}
    assert set(written_by) == {"dynsnip-write", "MainThread"} and len(written_by) == 40
    assert folder_bytes(tmp_path / "reference") == folder_bytes(tmp_path / "helped")
    assert not pipeline_threads()


def test_a_lane_runs_each_job_once_in_order_and_lets_a_waiting_thread_take_the_queued_ones():
    started, release = threading.Event(), threading.Event()
    ran: list[tuple[str, int]] = []

    def job(n):
        ran.append((threading.current_thread().name, n))
        if n == 0:
            started.set()
            release.wait(5)
        if n == 3:
            raise ValueError("job 3 failed")
        return n * 10

    lane = extraction._Lane("dynsnip-test")
    jobs = [lane.submit(job, n) for n in range(5)]
    assert started.wait(5)  # job 0 runs in the lane, 1-4 wait
    taken = lane.take()
    assert taken is jobs[1] and not taken.done()
    taken.run()  # this thread runs job 1; the lane never will
    assert taken.done() and taken.result() == 10
    release.set()
    assert [j.result() for j in (jobs[0], jobs[2], jobs[4])] == [0, 20, 40]
    with pytest.raises(ValueError, match="job 3 failed"):
        jobs[3].result()
    assert sorted(n for _, n in ran) == [0, 1, 2, 3, 4]  # each once
    assert [name for name, n in ran if n == 1] == ["MainThread"]
    assert {name for name, n in ran if n != 1} == {"dynsnip-test"}
    assert lane.take() is None
    lane.shutdown()
    assert not pipeline_threads()


def test_closing_a_lane_cancels_what_has_not_started_and_waits_for_what_has():
    from concurrent.futures import CancelledError

    started, release = threading.Event(), threading.Event()
    ran: list[int] = []

    def job(n):
        started.set()
        release.wait(5)
        ran.append(n)

    lane = extraction._Lane("dynsnip-test")
    jobs = [lane.submit(job, n) for n in range(3)]
    assert started.wait(5)
    threading.Timer(0.05, release.set).start()
    lane.shutdown()  # returns once job 0 has finished
    assert ran == [0] and jobs[0].result() is None
    for cancelled in jobs[1:]:
        with pytest.raises(CancelledError):
            cancelled.result()
    assert not pipeline_threads()


def test_an_interrupt_while_the_decoding_thread_helps_stops_at_once(clip, detector, tmp_path):
    """Ctrl-C arriving while the decoding thread runs a detection batch it took over: the extraction
    stops there (no further batch is started), leaving no thread and no partial folder."""

    class InterruptedInMain(ThreadSafeRecording):
        def detect_batch(self, frames):
            if threading.current_thread().name == "MainThread":
                self.threads.append("MainThread")
                raise KeyboardInterrupt
            return super().detect_batch(frames)

    slow = InterruptedInMain(detector, delay=0.03)
    slow.batch_size = 1
    with pytest.raises(KeyboardInterrupt):
        extract_face_frames(clip, tmp_path / "out", face_detector=slow, pipeline=True)
    assert slow.threads.count("MainThread") == 1
    assert list(tmp_path.iterdir()) == []
    assert not pipeline_threads()
