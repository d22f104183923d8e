"""Running ``extract-faces``' jobs in worker processes, and stopping them on Ctrl-C or SIGTERM.

:func:`_run_all` extracts the jobs :mod:`dynsnip.cli.extract_faces` planned, ``(video, output folder,
options of`` :func:`~dynsnip.data.faces.extraction.extract_face_frames` ``)``, and yields each one's
outcome ``(ok, the line to print)`` (:func:`_extract`) in the order of the jobs. With more than one
worker and more than one job, a :class:`~concurrent.futures.ProcessPoolExecutor` of up to ``workers``
processes extracts them, one video per process at a time, taking the largest files first
(:func:`largest_first`) so that a long video does not start last. With one worker or one job, and for
the jobs left when the pool breaks (a decoder crash kills a process, and the pool with it: a warning
says so), this process extracts them itself, keeping the folders a worker completed before
(:func:`_done_by_worker`).

The processes. Each worker starts in :func:`_worker_init`, the pool's initializer: it ends with the
main process however that ends, ``kill -9`` included (:func:`exit_with_parent`: a main process killed
must not leave its workers blocked on the task pipe), computes with one torch thread
(:func:`_one_torch_thread`: a process forked after the parent started its OpenMP pool can hang, and
the workers use the cores already), and keeps the face detector every job shares, handed over once
instead of pickled into every job (:class:`_SharedDetector`), and the main process's stop event. The
initializer and the job function (:func:`_extract_in_worker`) are top-level functions of this module,
so that worker processes started by ``fork`` and by ``spawn`` alike find them by name.

The signals. The command runs under :class:`~dynsnip.cli.interrupts.StopSignals`: in the main process
Ctrl-C and SIGTERM raise KeyboardInterrupt, in :func:`_run_all` itself or in its caller, which throws
it into the generator where it waits (:func:`_interrupted`). Then no job starts any more (the stop
event is set, the jobs not handed out are cancelled) and each worker is sent SIGTERM
(:func:`_stop_workers`). In a worker SIGINT and SIGTERM raise KeyboardInterrupt in the job in
progress, once, and do nothing between jobs (:func:`_interrupt_job`, installed by
:func:`_stop_jobs_on_signals`): the interrupted extraction removes its unfinished ``.partial`` folder,
which a second signal must not cut (a terminal's Ctrl-C reaches every process of the group, and the
main process passes its stop on as well), and the worker answers the job "stopped" (or "not started",
for one it takes after the stop) instead of raising (:func:`_stopped_job`). Once every worker has
answered, :class:`ExtractionInterrupted` tells which jobs finished and which were stopped while being
extracted, so that the command reports every video and lists the folders complete. A worker stopped
alone (the main process got no signal) fails its video as ``interrupted``, and the others go on.

Why: the videos are extracted in processes so that several of them use several cores at once; and
with Python's pool alone, on Ctrl-C a worker caught the KeyboardInterrupt of one job and went on to
the next job queued, while SIGTERM ended a worker and left its folder unfinished. Here a stop ends the
work at once and leaves only complete folders, each of them reported.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Iterator


def _extract(job: tuple[Path, Path, dict[str, Any]]) -> tuple[bool, str]:
    """Extract one video (in a worker process): ``(ok, the line to print after the status)``;
    an error is caught here so that it is reported and the other videos go on."""
    from dynsnip.data.faces.extraction import extract_face_frames

    video, out_dir, options = job
    try:
        result = extract_face_frames(video, out_dir, **options)
    except Exception as err:
        reason = getattr(err, "reason", type(err).__name__)
        return False, f"{video}: {reason}: {getattr(err, 'message', str(err))}"
    coverage = (f"face found in {result.num_detected} of the {result.frames_checked} frames looked at "
                f"({result.num_detected / result.frames_checked:.0%}), shown in {result.frames_showing_face} of the "
                f"{result.num_frames} frames ({result.face_coverage:.0%})"
                if result.frames_checked else "no face detection")
    if result.tracks:
        coverage += (f", {result.tracks} face track(s), sample track(s) "
                     f"{', '.join(map(str, result.samples))}")
    return True, f"{video} -> {out_dir} ({result.num_frames} frames, {coverage})"


def _one_torch_thread() -> None:
    """Worker processes compute with one torch thread, as DataLoader workers do: a process
    forked after the parent started its OpenMP thread pool hangs in its first parallel region
    (seen with MTCNN in two workers), and several workers already use the cores."""
    import torch

    torch.set_num_threads(1)


class _SharedDetector:
    """A job's ``face_detector`` in a worker process: the detector the worker was given when it started
    (:func:`_worker_init`). A detector object in every job would be pickled with it, 4.6 MB and about 60 ms
    of CPU per video for ``auto`` (its three networks), in the main process and again in the worker."""


_worker_detector: Any = None  # this worker process's face detector (_worker_init)
_worker_stop: Any = None  # the main process's stop (a multiprocessing.Event, _worker_init): once set, no job starts
_job_state = {"running": False, "interrupted": False}  # this worker process's job in progress (_interrupt_job)
# what a worker process answers for a job it did not finish (besides the (ok, line) of one it did)
_STOPPED = "stopped"  # interrupted while extracting it: its unfinished folder removed
_NOT_STARTED = "not started"  # the main process had stopped when the worker took it


def _worker_init(parent_pid: int, detector: Any = None, stop: Any = None) -> None:
    """Initializer of the worker processes: stop jobs on SIGINT / SIGTERM (:func:`_interrupt_job`), end with
    the main process, compute with one torch thread, keep freed memory for reuse as the main process does (a
    worker started by spawn or forkserver does not inherit it), keep ``detector``, the face detector the jobs
    share (:class:`_SharedDetector`), and ``stop``, the main process's stop event."""
    global _worker_detector, _worker_stop
    from ..memory_reuse import keep_freed_memory

    _stop_jobs_on_signals()
    exit_with_parent(parent_pid)
    _one_torch_thread()
    keep_freed_memory()
    _worker_detector = detector
    _worker_stop = stop


def _interrupt_job(signum: int, frame: Any) -> None:
    """SIGINT / SIGTERM in a worker process: KeyboardInterrupt in the job in progress, once (its extraction
    then removes its unfinished ``.partial`` folder, which a second signal must not cut: a terminal's Ctrl-C
    reaches the workers and the main process, which passes its stop on to them as well); between jobs
    nothing. What comes next is the main process's to decide: after its own stop no job starts
    (:data:`_worker_stop`). Without it a worker caught the KeyboardInterrupt of one job (Python's
    pool does) and went on to the next job queued, and SIGTERM ended it, its folder left unfinished."""
    if _job_state["running"] and not _job_state["interrupted"]:
        _job_state["interrupted"] = True
        raise KeyboardInterrupt


def _stop_jobs_on_signals() -> None:
    """Install :func:`_interrupt_job` for SIGINT and SIGTERM in a worker process where they have their
    default action, or the main process's :class:`~dynsnip.cli.interrupts.StopSignals` handler that a
    forked worker inherits; a signal ignored (a background job ignores SIGINT) stays ignored."""
    import signal

    from .interrupts import StopSignals

    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler in (signal.default_int_handler, signal.SIG_DFL) or isinstance(getattr(handler, "__self__", None),
                                                                                 StopSignals):
            signal.signal(signum, _interrupt_job)


def _extract_in_worker(job: tuple[Path, Path, dict[str, Any]]) -> tuple[bool | None, str]:
    """:func:`_extract` in a worker process, the job's :class:`_SharedDetector` replaced by the worker's
    detector; ``(None, _NOT_STARTED)`` when the main process has stopped, ``(None, _STOPPED)`` when a signal
    interrupted it (:func:`_stopped_job`)."""
    video, out_dir, options = job
    if isinstance(options.get("face_detector"), _SharedDetector):
        options = {**options, "face_detector": _worker_detector}
    try:
        _job_state.update(running=True, interrupted=False)  # before the look at the stop: a signal after it raises
        if _worker_stop is not None and _worker_stop.is_set():
            return None, _NOT_STARTED
        return _extract((video, out_dir, options))
    except KeyboardInterrupt:
        return _stopped_job(video, out_dir, options)
    finally:
        _job_state["running"] = False


def _stopped_job(video: Path, out_dir: Path, options: dict[str, Any]) -> tuple[bool | None, str]:
    """The outcome of a job a signal interrupted: done, when its folder was complete as the signal came (the
    extraction had renamed it), else ``(None, _STOPPED)``: the extraction removed its ``.partial`` folder."""
    if _done_by_worker(video, out_dir, options):
        return True, f"{video} -> {out_dir} (completed as the stop came)"
    return None, _STOPPED


def _shared_detector(jobs: list[tuple[Path, Path, dict[str, Any]]]) -> tuple[list[tuple[Path, Path, dict[str, Any]]], Any]:
    """``jobs`` for the worker processes, and the detector to give each worker once: the detector object
    every job names (the command's), replaced in the jobs by a :class:`_SharedDetector`; a name
    (``"auto"``), None or jobs naming different detectors are left as they are."""
    detector = jobs[0][2].get("face_detector") if jobs else None
    if detector is None or isinstance(detector, str) or any(o.get("face_detector") is not detector for _, _, o in jobs):
        return jobs, None
    return [(video, out_dir, {**options, "face_detector": _SharedDetector()}) for video, out_dir, options in jobs], detector


PR_SET_PDEATHSIG = 1  # prctl(2) option: the signal this process gets when its parent thread dies
PARENT_POLL_S = 0.5  # how often the watchdog thread looks for the parent


def exit_with_parent(parent_pid: int) -> None:
    """End this process when the process ``parent_pid`` ends, however it ends (``kill -9``
    included): a killed main process must not leave its workers blocked on the task pipe forever.

    On Linux the kernel sends SIGKILL when the parent dies (``prctl(PR_SET_PDEATHSIG)``, via
    ctypes); everywhere a daemon thread checks every :data:`PARENT_POLL_S` seconds that the
    parent is still the same and alive, and ends the process with ``os._exit`` otherwise. A
    folder the worker was writing stays ``<name>.partial`` with the worker's pid in its
    ``.owner`` record (and its start time): the next run sees that process has ended and replaces it.
    """
    import signal
    import threading
    import time

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl here: the watchdog thread alone
            pass
    parent_now = os.getppid()

    def parent_alive() -> bool:
        if os.getppid() != parent_now:  # re-parented: the parent has died
            return False
        try:
            os.kill(parent_pid, 0)
        except ProcessLookupError:
            return False
        except OSError:  # exists, but not ours to signal
            pass
        return True

    if not parent_alive():  # it died before the death signal was armed
        os._exit(1)

    def watch() -> None:
        while parent_alive():
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="dynsnip-exit-with-parent", daemon=True).start()


class ExtractionInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM while :func:`_run_all` ran, raised once the videos in progress are finished or
    cleaned: ``finished`` maps the index (in its ``jobs``) of each job that finished and was not yet
    yielded to its outcome (the worker processes finish in their own order), ``stopped`` lists the jobs
    interrupted while being extracted (their unfinished folders removed); the other jobs not yielded were
    not started. A KeyboardInterrupt still: code that does not know it stops as before."""

    def __init__(self, finished: dict[int, tuple[bool, str]], stopped: list[int]) -> None:
        super().__init__(f"interrupted: {len(finished)} more video(s) finished, {len(stopped)} stopped")
        self.finished = finished
        self.stopped = stopped


def _run_all(jobs: list[tuple[Path, Path, dict[str, Any]]], workers: int) -> Iterator[tuple[bool, str]]:
    """:func:`_extract` of each job, in the order of ``jobs``, with up to ``workers`` processes.

    The processes take the videos largest file first (:func:`largest_first`), so that a long video
    does not start last while the other processes have nothing left; the outcomes still come in
    the order of ``jobs``.

    If the processes die (a decoder crash kills one, and the pool with it), a warning says so
    and the remaining videos are extracted in this process; a folder a process completed
    before that is kept (folders appear only when complete).

    Ctrl-C or SIGTERM (a KeyboardInterrupt here, or thrown in at a ``yield`` by the caller, where it
    came) stops at once: no job starts any more (the jobs queued to the processes are cancelled, or
    answered "not started" by the worker that takes them), the videos in progress are interrupted (the
    processes are sent SIGTERM, :func:`_interrupt_job`, unless the signal reached them already) and
    remove their unfinished folders, and once they have, :class:`ExtractionInterrupted` says which jobs
    finished. A worker process alone interrupted (not this one) fails its video as ``interrupted``.
    """
    done = 0  # outcomes yielded
    if workers > 1 and len(jobs) > 1:
        import multiprocessing
        from concurrent.futures import Future, ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        worker_jobs, detector = _shared_detector(jobs)
        stop = multiprocessing.Event()
        try:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=_worker_init,
                                     initargs=(os.getpid(), detector, stop)) as pool:
                futures: dict[int, Future] = {}
                try:
                    for i in largest_first([video for video, _, _ in jobs]):
                        futures[i] = pool.submit(_extract_in_worker, worker_jobs[i])
                    for i in range(len(jobs)):
                        ok, line = _outcome(futures[i], jobs[i])
                        if ok is None:  # its worker alone got a signal (this process got none, so far)
                            _await_own_stop()  # a signal to the whole process group reaches this process too
                            ok, line = False, (f"{jobs[i][0]}: interrupted: its worker process was stopped by a signal "
                                               "while extracting it (its unfinished folder removed); expected to "
                                               "extract it: run again")
                        done += 1  # before the yield: a stop thrown in there is after this job
                        yield ok, line
                except KeyboardInterrupt:
                    raise _stop_workers(pool, futures, jobs, done, stop) from None
                finally:  # stopped early (an error, or the caller closed this generator): no job starts any more
                    stop.set()
                    for future in futures.values():
                        future.cancel()
            return
        except BrokenProcessPool as err:
            print(f"dynsnip extract-faces: warning: the worker processes failed after {done} of {len(jobs)} "
                  f"videos ({err}); extracting the others in this process", file=sys.stderr)
    current = None  # the job being extracted in this process
    try:
        for i in range(done, len(jobs)):
            video, out_dir, options = jobs[i]
            current = i
            if _done_by_worker(video, out_dir, options):
                outcome = True, f"{video} -> {out_dir} (written by a worker process)"
            else:
                outcome = _extract((video, out_dir, options))
            current = None
            yield outcome
    except KeyboardInterrupt:  # extract_face_frames removed the unfinished folder of the one in progress
        finished: dict[int, tuple[bool, str]] = {}
        stopped: list[int] = []
        if current is not None:
            ok, line = _stopped_job(*jobs[current])
            if ok is None:
                stopped.append(current)
            else:
                finished[current] = (ok, line)
        raise ExtractionInterrupted(finished, stopped) from None


def _outcome(future: Any, job: tuple[Path, Path, dict[str, Any]]) -> tuple[bool | None, str]:
    """The outcome of a worker's job, once done (a signal while waiting raises KeyboardInterrupt here, in
    this process). A KeyboardInterrupt the worker raised after its job, in the instant before it
    answered, is no error: the job's folder tells whether it was completed (:func:`_stopped_job`)."""
    from concurrent.futures import wait

    wait([future])
    if future.cancelled():
        return None, _NOT_STARTED
    error = future.exception()
    if isinstance(error, KeyboardInterrupt):
        return _stopped_job(*job)
    return future.result()  # raises another error (BrokenProcessPool: the processes died) as before


def _await_own_stop(seconds: float = 1.0) -> None:
    """Wait up to ``seconds`` for this process's own signal: a worker interrupted by a signal sent to the
    whole process group (a terminal's Ctrl-C) may answer before this process's handler runs (on a busy
    machine), and its video is then not a failure but one the stop left unextracted."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


def _stop_workers(pool: Any, futures: dict[int, Any], jobs: list[tuple[Path, Path, dict[str, Any]]], first: int,
                  stop: Any) -> ExtractionInterrupted:
    """Stop the worker processes' work (Ctrl-C or SIGTERM came): no job starts any more (``stop``, and the
    jobs not handed to a process are cancelled), the ones in progress are interrupted (each process is sent
    SIGTERM: :func:`_interrupt_job`; a second signal there does nothing) and remove their unfinished
    folders; returns, once every process has answered, which of ``jobs[first:]`` finished and which were
    stopped while being extracted."""
    import signal
    from concurrent.futures import wait
    from concurrent.futures.process import BrokenProcessPool

    stop.set()
    for future in futures.values():
        future.cancel()
    # the pool's processes (ProcessPoolExecutor's own table, pid -> process, since Python 3.2; without it the
    # videos in progress would finish instead, the stop event still keeping any other from starting)
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            os.kill(process.pid, signal.SIGTERM)
        except OSError:  # ended already
            pass
    wait(list(futures.values()))
    finished: dict[int, tuple[bool, str]] = {}
    stopped: list[int] = []
    for i in range(first, len(jobs)):
        future = futures.get(i)
        if future is None or future.cancelled():
            continue
        error = future.exception()
        if error is None:
            ok, line = future.result()
        elif isinstance(error, (KeyboardInterrupt, BrokenProcessPool)):  # the folder tells
            ok, line = _stopped_job(*jobs[i])
        else:
            ok, line = False, f"{jobs[i][0]}: {type(error).__name__}: {error}"
        if ok is not None:
            finished[i] = (ok, line)
        elif line == _STOPPED:
            stopped.append(i)
    return ExtractionInterrupted(finished, stopped)


def _interrupted(err: KeyboardInterrupt, outcomes: Iterator[tuple[bool, str]], consumed: int) -> ExtractionInterrupted:
    """What the extraction finished when Ctrl-C / SIGTERM (``err``) came: raised by :func:`_run_all` itself,
    or, when it came while this process was reporting, what it says once the KeyboardInterrupt is thrown
    into it where it waits; outcomes known already (``torchrun``: gathered) are all finished."""
    if isinstance(err, ExtractionInterrupted):
        return err
    throw = getattr(outcomes, "throw", None)
    if throw is None:
        return ExtractionInterrupted({consumed + k: outcome for k, outcome in enumerate(outcomes)}, [])
    try:
        throw(KeyboardInterrupt())
    except ExtractionInterrupted as stop:
        return stop
    except (KeyboardInterrupt, StopIteration):  # not started, or over
        pass
    return ExtractionInterrupted({}, [])


def largest_first(videos: list[Path]) -> list[int]:
    """Indices of ``videos`` by decreasing file size (ties in their order; an unreadable file last): the
    order the worker processes take them in. Each process takes the next video when it finishes one, so
    the longest ones, started first, no longer leave one process working alone at the end (the largest
    first rule of scheduling on parallel machines). The file size stands in for a video's extraction time
    (frames x pixels, unknown before opening it): a ``stat``, no decoding. On the bundled footage given 8
    times (24 videos, 2 processes) the processes' busy times differed by about 6% in the order given, the
    largest clip coming last (docs/video.md)."""
    def size(i: int) -> int:
        try:
            return os.path.getsize(videos[i])
        except OSError:
            return -1

    return sorted(range(len(videos)), key=lambda i: -size(i))


def _done_by_worker(video: Path, out_dir: Path, options: dict[str, Any]) -> bool:
    """Whether ``out_dir`` is now the folder the job asked for (a worker completed it before the pool
    broke): it holds ``video``, made with the job's settings (a stale folder being replaced is not)."""
    from dynsnip.data.faces.extraction import settings_differences
    from dynsnip.data.faces.folder_source import folder_source_problem

    try:
        return (out_dir.exists() and folder_source_problem(out_dir, video) is None
                and not settings_differences(out_dir, video, options))
    except (OSError, ValueError, TypeError, KeyError):
        return False
