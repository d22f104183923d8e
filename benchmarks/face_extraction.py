"""Face extraction throughput against the physical limit (decoding), in one run, same videos.

A frame must at least be decoded, so decode-only frames/s on the same videos is the limit.
For each setting this script measures, over every frame of each video:

* ``decode only``: every frame decoded to RGB (the limit);
* ``before (...)``: what ``extract-faces`` did before detecting on every k-th frame: decode +
  dlib on every frame at a 480 px short side (small frames upsampled to it), and the same at
  the video's full resolution; with ``--write --history`` also the dlib+mtcnn, k = 4 extraction
  before small frames' upsampling was capped (``max_upscale=None``);
* per backend (dlib, mtcnn, blazeface, blazeface-short, auto, and ``dlib+mtcnn``: the ``auto`` of
  before BlazeFace) and ``detect_every`` k: decode + detection on every k-th
  frame (the detection's share), and with ``--write`` the whole ``extract_face_frames`` (one
  decoding pass: detection, and the regions written as PNGs) and, as the other share,
  ``extract_face_frames`` given the detections of an earlier run (decoding and writing only: a
  detector that replays them, so regions and face tracks are the same), for each of ``--formats``
  (PNG through :mod:`dynsnip.data.faces.png_writer`, BMP through Pillow);
* with ``--command 1,8``: the ``extract-faces`` command's own extraction of all the videos (the
  default ``auto`` detector, k = 4, PNG), given 1 and 8 copies of them: what the command runs
  after planning (``_run_all``, one job per video), with its default ``--workers`` (one process
  per CPU) and ``--pipeline auto`` choice: worker processes for several videos, each sequential
  on 2 CPUs, or one pipelined extraction in one process; timed in a new process set up as the
  command's (its worker processes then start from its memory, not this one's), its time per
  copy is the row's (its CPU time includes the worker processes');
* with ``--pipeline auto,off`` each extraction both as ``extract-faces`` runs it by default
  (``auto``: detection and writing in threads beside the decoding when the process has 2 CPUs)
  and sequentially (``off``, one thread); ``on`` forces the threads.

It prints a table of frames/s, face coverage (fraction of the looked-at frames with a face)
and the ratio of each setting's time to decode-only's (``x decode``; 1.0 = at the limit), in
wall time and in this process's CPU time (the latter hardly moves when other work shares the
machine; the two agree on an idle one, as everything here runs in one thread),
and writes the raw numbers as JSON. Settings run interleaved over ``--repeats`` so a change
of machine load affects them alike; the table shows medians. One process, ``--threads``
torch threads (MTCNN, BlazeFace) and dlib's single thread; a pipelined extraction adds its
detector and writer threads, so its CPU time is its work on every core and its wall time is
what a user waits on an otherwise idle machine of that many CPUs (printed, with the load
averages before and after: other work on the machine lengthens the wall time of the threaded
rows most). With ``--write`` and an ``auto, k=4`` row, the last line states the 2x-of-decode-only
target (wall and CPU time) against the ``mtcnn`` row's coverage.

Usage::

    python benchmarks/face_extraction.py                      # bundled footage, 2 repeats
    python benchmarks/face_extraction.py --write --every 4,8,16 --backends auto --no-full-resolution \
        --json benchmarks/results/cpu_face_extraction.json
    python benchmarks/face_extraction.py --videos a.mp4 b.mp4 --device cuda   # MTCNN, BlazeFace on a GPU
    # the HD pair: the bundled 720p clip and a 1080p copy of it
    python benchmarks/face_extraction.py --make-hd-copy /tmp/Zhling_1920x1080.mp4
    python benchmarks/face_extraction.py --videos dynsnip/assets/videos/Zhling_1280x720.mp4 /tmp/Zhling_1920x1080.mp4 \
        --write --every 4 --formats png --backends auto --no-full-resolution --command 1,4 --repeats 3
    # the extract-faces command's own path (worker processes), on the footage given once and 8 times
    python benchmarks/face_extraction.py --write --every 4 --formats png --backends auto --no-full-resolution \
        --command 1,8 --repeats 5 --json benchmarks/results/cpu_face_extraction_command.json
    # the 2x target: the default (auto, k = 4, PNG) against decode-only and the mtcnn detector, one run
    python benchmarks/face_extraction.py --write --every 4 --formats png --backends mtcnn,auto \
        --pipeline auto,off --no-full-resolution --repeats 5 --json benchmarks/results/cpu_face_extraction_pipeline.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def decode_only(path: Path) -> tuple[int, int]:
    from dynsnip.data import VideoReader

    with VideoReader(path) as video:
        count = sum(1 for _ in video.iter_frames())
    return count, count


def detect_all_frames(path: Path, detector) -> tuple[int, int]:
    """The old extraction's first pass: decode every frame, detect in every frame."""
    from dynsnip.data import VideoReader

    found = 0
    with VideoReader(path) as video:
        for _, frame in video.iter_frames():
            found += len(detector(frame)) > 0
        return video.num_frames, found


def detection_pass(path: Path, detector, every: int) -> tuple[int, int]:
    """The new extraction's first pass: decode, detect on every k-th frame (batched)."""
    from dynsnip.data import VideoReader
    from dynsnip.data.faces.extraction import _detect_every_kth

    with VideoReader(path) as video:
        detections = _detect_every_kth(video, video.num_frames, every, detector)
    return len(detections), sum(len(d) > 0 for d in detections.values())


PIPELINE = {"auto": None, "off": False, "on": True}  # --pipeline names -> extract_face_frames(pipeline=...)


def full_extraction(path: Path, detector, every: int, scratch: Path, image_format: str = "png",
                    pipeline: str = "auto") -> tuple[int, int]:
    from dynsnip.data.faces.extraction import extract_face_frames

    out = scratch / f"{path.stem}_{time.perf_counter_ns()}"
    result = extract_face_frames(path, out, face_detector=detector, detect_every=every, min_face_coverage=0.0,
                                 image_format=image_format, pipeline=PIPELINE[pipeline])
    return result.frames_checked, result.num_detected


class ReplayDetector:
    """Gives back the detections an earlier extraction of the same video recorded, batch by batch in
    frame order (as ``extract_face_frames`` asks for them): an extraction without the cost of
    detection, with the same regions and face tracks."""

    batch_size = 16

    def __init__(self, folder: Path) -> None:
        from dynsnip.data.faces.extraction import read_detections

        detections = read_detections(json.loads((folder / "faces.json").read_text()))
        self.rows = [detections[i] for i in sorted(detections)]
        self.next = 0

    def detect_batch(self, frames) -> list:
        out = self.rows[self.next:self.next + len(frames)]
        self.next += len(frames)
        return out

    def __call__(self, frame):
        return self.detect_batch([frame])[0]

    def __repr__(self) -> str:
        return "ReplayDetector()"


def boxes_source(path: Path, every: int, scratch: Path) -> Path:
    """An extraction of ``path`` with the default detector whose detections :func:`writing_only`
    replays (made before any timing)."""
    source = scratch / f"source_{path.stem}_k{every}"
    if not source.exists():
        full_extraction(path, "auto", every, scratch / "unused")
        next((scratch / "unused").glob(f"{path.stem}_*")).rename(source)
    return source


def writing_only(path: Path, every: int, scratch: Path, image_format: str = "png",
                 pipeline: str = "auto") -> tuple[int, int]:
    """extract_face_frames with the detections of an earlier extraction of the same video replayed:
    decoding and writing the regions (and the face tracks), no detection."""
    return full_extraction(path, ReplayDetector(boxes_source(path, every, scratch)), every, scratch, image_format,
                           pipeline)


def command_extraction(videos: list[Path], copies: int, scratch: Path, device: str) -> dict:
    """What ``extract-faces VIDEOS...`` runs after planning, on ``copies`` copies of ``videos`` (one job each),
    timed in a new process (:func:`command_child`) as the command would run it: worker processes forked from
    this one would inherit the memory of every setting timed before (their first writes copying those pages),
    not the command's small one. Returns the child's ``seconds``, ``cpu_seconds``, ``checked`` and ``found``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--command-child", str(copies), "--scratch", str(scratch),
               "--device", device, "--videos", *map(str, videos)]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"the command's extraction failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def command_child(videos: list[Path], copies: int, scratch: Path, device: str) -> dict:
    """In the new process of :func:`command_extraction`: set up as the command does (freed memory kept, the
    decoding libraries imported by ``require_video_decoding`` before planning, the detector made once, one torch
    thread when it extracts in this process) and time ``_run_all`` alone (the imports before it are the same for
    every command); CPU time includes the worker processes'. Without the command's import of PyAV before the
    worker processes fork, each worker imported it with its first video (about 75 ms of CPU, the decoding of the
    720p clip), a cost the command does not have."""
    from dynsnip.cli.extract_faces import _one_torch_thread, _run_all, pipeline_choice
    from dynsnip.data._optional import require_video_decoding
    from dynsnip.data.faces.detectors import create_face_detector
    from dynsnip.data.faces.extraction import available_cpus, read_detections
    from dynsnip.memory_reuse import keep_freed_memory

    require_video_decoding()  # extract-faces' run() does this before planning: PyAV, numpy, Pillow imported
    keep_freed_memory()
    workers = available_cpus()
    stamp = time.perf_counter_ns()
    detector = create_face_detector("auto", device=device)
    jobs = [(video, scratch / f"{video.stem}_copy{copy}_{stamp}", dict(face_detector=detector, detect_every=4,
                                                                       min_face_coverage=0.0))
            for copy in range(copies) for video in videos]
    pipeline, processes = pipeline_choice("auto", workers, len(jobs))
    if pipeline and processes == 1:
        _one_torch_thread()
    start, start_cpu = time.perf_counter(), process_and_children_cpu()
    outcomes = list(_run_all([(v, out, {**o, "pipeline": pipeline}) for v, out, o in jobs], workers))
    seconds, cpu_seconds = time.perf_counter() - start, process_and_children_cpu() - start_cpu
    if failed := [line for ok, line in outcomes if not ok]:
        raise RuntimeError(f"the command's extraction failed: {failed}")
    checked = found = 0
    for _, out, _ in jobs:
        detections = read_detections(json.loads((out / "faces.json").read_text()))
        checked, found = checked + len(detections), found + sum(len(d) > 0 for d in detections.values())
    return dict(seconds=seconds, cpu_seconds=cpu_seconds, checked=checked, found=found)


HD_COPY_FRAMES = 114  # the bundled 720p clip's 19 frames played forward and back, three times


def make_hd_copy(path: Path) -> Path:
    """Write the 1080p copy of the bundled 720p clip that the HD rows of docs/video.md use: its frames upscaled
    bicubic to 1920x1080, played forward and back to :data:`HD_COPY_FRAMES` frames, x264 at CRF 23, 25 fps."""
    import av
    import numpy as np
    from PIL import Image

    from dynsnip.data import VideoReader, bundled_video

    with VideoReader(bundled_video("Zhling_1280x720.mp4")) as video:
        frames = [frame for _, frame in video.iter_frames()]
    sequence = ((frames + frames[::-1]) * HD_COPY_FRAMES)[:HD_COPY_FRAMES]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt, stream.options = 1920, 1080, "yuv420p", {"crf": "23"}
        for frame in sequence:
            big = np.asarray(Image.fromarray(frame).resize((1920, 1080), Image.BICUBIC))
            out.mux(stream.encode(av.VideoFrame.from_ndarray(big, format="rgb24")))
        out.mux(stream.encode())
    return path


def command_processes(videos: int) -> str:
    """How ``extract-faces`` runs ``videos`` videos here by default (row names)."""
    from dynsnip.cli.extract_faces import pipeline_choice
    from dynsnip.data.faces.extraction import available_cpus

    pipeline, processes = pipeline_choice("auto", available_cpus(), videos)
    how = "pipelined" if pipeline else "sequential"
    return f"{processes} worker processes, each {how}" if processes > 1 else f"this process, {how}"


DECODE_SAMPLES = 5  # decode-only takes ~0.2 s on the bundled footage: sampled 5x per round for a stable median


def file_creation_cost(folder: Path, files: int = 200) -> float:
    """Median seconds to create one empty file in ``folder`` (then removed): what each written region pays
    besides encoding it, which depends on the file system (tmpfs ~10-20 us; this project's VM disk ~0.7 ms)."""
    probe = folder / "file_creation_probe"
    probe.mkdir()
    seconds = []
    for i in range(files):
        start = time.perf_counter()
        os.close(os.open(probe / f"{i:06d}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        seconds.append(time.perf_counter() - start)
    shutil.rmtree(probe)
    return statistics.median(seconds)


def time_setting(videos: list[Path], job, params: tuple, scratch: Path, counts: dict, name: str,
                 cpu: dict | None = None) -> float:
    """Seconds one setting takes over all ``videos``; records its (frames checked, with a face) in ``counts``
    and its CPU seconds (this process's and its ended children's) in ``cpu[name]``. The ``command`` job is
    timed in a process of its own (:func:`command_extraction`), per copy of the videos."""
    checked = found = 0
    start, start_cpu = time.perf_counter(), process_and_children_cpu()
    for video in videos if job != "command" else ():
        if job == "write":
            detector, every, *fmt = params
            c, f = full_extraction(video, detector, every, scratch, *fmt)
        elif job == "write_only":
            every, *fmt = params
            c, f = writing_only(video, every, scratch, *fmt)
        else:
            c, f = job(video, *params)
        checked, found = checked + c, found + f
    seconds, cpu_seconds = time.perf_counter() - start, process_and_children_cpu() - start_cpu
    if job == "command":  # all videos in one command, params[0] copies of them, in a new process: its time per copy
        copies, device = params
        child = command_extraction(videos, copies, scratch, device)
        checked, found = child["checked"], child["found"]
        seconds, cpu_seconds = child["seconds"] / copies, child["cpu_seconds"] / copies
    counts[name] = (checked, found)
    if cpu is not None:
        cpu.setdefault(name, []).append(cpu_seconds)
    return seconds


def process_and_children_cpu() -> float:
    """CPU seconds of this process and of its children that have ended (the command's worker processes)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


TARGET = 2.0  # the default extraction at most this many times decode-only's time (issue 23)


def verdict(default: dict | None, mtcnn: dict | None, cpus: int) -> str | None:
    """The 2x-of-decode-only target, in wall and CPU time, with the coverage against MTCNN's."""
    if default is None:
        return None

    def met(ratio: float) -> str:
        return f"{ratio:.2f}x ({'met' if ratio <= TARGET else 'not met'})"

    line = (f"target ({TARGET:g}x decode-only): the default extraction takes {met(default['x_decode'])} in wall time "
            f"on {cpus} CPUs and {met(default['x_decode_cpu'])} in CPU time; coverage {default['coverage']:.2f}")
    if mtcnn is not None:
        ok = default["coverage"] >= mtcnn["coverage"]
        line += f" against mtcnn's {mtcnn['coverage']:.2f} ({'no lower' if ok else 'LOWER'})"
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", nargs="*", type=Path, help="videos (default: the bundled footage)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--every", default="1,4", help="detect_every values (default 1,4)")
    parser.add_argument("--backends", default="dlib,mtcnn,blazeface,blazeface-short,auto",
                        help="detectors (a+b: a cascade; dlib+mtcnn: the auto of before BlazeFace)")
    parser.add_argument("--write", action="store_true", help="also time the whole extract_face_frames (PNG writing)")
    parser.add_argument("--formats", default="png,bmp", help="image formats of the --write rows (default png,bmp)")
    parser.add_argument("--pipeline", default="auto",
                        help="with --write, extractions as: auto (extract-faces' default: threads when the process has "
                             "2 CPUs), off (sequential), on; a list times each (default auto)")
    parser.add_argument("--command", default="",
                        help="also time the extract-faces command's own extraction of all the videos (default "
                             "workers and pipeline choice; the auto detector, k=4, PNG) given this many copies of "
                             "them, e.g. 1,8 (rows per copy)")
    parser.add_argument("--no-full-resolution", action="store_true", help="skip the slow full-resolution baseline")
    parser.add_argument("--history", action="store_true",
                        help="with --write, also the dlib+mtcnn extraction with uncapped upsampling (an earlier default)")
    parser.add_argument("--device", default="cpu", help="MTCNN's and BlazeFace's device")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    parser.add_argument("--scratch", type=Path, default=None,
                        help="folder the --write rows write into (default: a temporary folder in the system's temp "
                             "dir); put it on the disk the face folders will go to: creating a file costs 10 us on "
                             "some file systems and 0.7 ms on others (printed)")
    parser.add_argument("--command-child", type=int, default=None, help=argparse.SUPPRESS)  # command_extraction's
    parser.add_argument("--make-hd-copy", type=Path, metavar="PATH",
                        help="write the 1080p copy of the bundled 720p clip used by the HD rows of docs/video.md "
                             "to PATH, and exit")
    args = parser.parse_args(argv)
    if args.make_hd_copy is not None:
        print(make_hd_copy(args.make_hd_copy))
        return 0
    if args.command_child is not None:
        from dynsnip.data import bundled_videos

        print(json.dumps(command_child(args.videos or list(bundled_videos()), args.command_child, args.scratch,
                                       args.device)))
        return 0

    import torch

    from dynsnip.data import bundled_videos
    from dynsnip.data.faces.detectors import AutoFaceDetector, DlibFaceDetector, MtcnnFaceDetector, create_face_detector

    torch.set_num_threads(args.threads)
    videos = args.videos or list(bundled_videos())
    everies = [int(k) for k in args.every.split(",")]
    settings: dict[str, tuple] = {"decode only": (decode_only,)}
    skipped: dict[str, str] = {}  # setting -> why it was not measured

    def dlib_detector(**options):
        """A dlib detector, or None where dlib is not installed (a GPU image often lacks it): its rows
        are then left out and named, the others still measured."""
        try:
            return DlibFaceDetector(**options)
        except ImportError as err:
            skipped["dlib rows"] = str(err).split(" (")[0]
            return None

    if (detector := dlib_detector(max_upscale=None)) is not None:
        settings["before: dlib 480 px, every frame"] = (detect_all_frames, detector)
    if not args.no_full_resolution and (detector := dlib_detector(detect_short_side=None)) is not None:
        settings["before: dlib full resolution, every frame"] = (detect_all_frames, detector)
    if args.write and args.history:  # an earlier default: small frames upsampled to the 480 px working size
        settings["dlib+mtcnn, k=4, upsampling not capped: extract_face_frames"] = (
            "write", AutoFaceDetector(DlibFaceDetector(max_upscale=None), MtcnnFaceDetector(device=args.device)), 4)
    formats = args.formats.split(",")
    pipelines = args.pipeline.split(",")
    if unknown := [p for p in pipelines if p not in PIPELINE]:
        parser.error(f"--pipeline takes {', '.join(PIPELINE)}, got {', '.join(unknown)}")
    modes = {"auto": "", "off": ", sequential", "on": ", pipelined"}
    for backend in args.backends.split(","):
        if backend == "dlib+mtcnn":  # the auto of before BlazeFace
            detector = AutoFaceDetector(DlibFaceDetector(), MtcnnFaceDetector(device=args.device))
        elif "+" in backend:  # any cascade: a+b+c
            detector = AutoFaceDetector(*(create_face_detector(part, device=args.device) for part in backend.split("+")))
        else:
            detector = create_face_detector(backend, device=args.device)
        for every in everies:
            settings[f"{backend}, k={every}: detection pass"] = (detection_pass, detector, every)
            if args.write:
                for fmt in formats:
                    for mode in pipelines:
                        suffix = ("" if fmt == "png" else f", --format {fmt}") + modes[mode]
                        settings[f"{backend}, k={every}{suffix}: extract_face_frames"] = (
                            "write", detector, every, fmt, mode)
    if args.write:
        for fmt in formats:
            for mode in pipelines:
                settings[f"decode + write regions as {fmt}, boxes given (no detection), k=4{modes[mode]}"] = (
                    "write_only", 4, fmt, mode)

    if args.command:
        copies_asked = args.command.split(",")
        if not all(c.strip().isdigit() and int(c) > 0 for c in copies_asked):
            parser.error(f"--command takes positive numbers of copies of the videos, e.g. 1,8; got {args.command!r}")
        for copies in map(int, copies_asked):
            settings[f"extract-faces command, {copies * len(videos)} videos ({command_processes(copies * len(videos))})"
                     f", per {len(videos)}"] = ("command", copies, args.device)

    from dynsnip.data.faces.extraction import available_cpus, pipeline_fits
    from dynsnip.data.faces.png_writer import encoder
    from dynsnip.memory_reuse import keep_freed_memory

    malloc = keep_freed_memory()  # as extract-faces does at start (DYNSNIP_KEEP_FREED_MEMORY=0: glibc's default)

    load_before = os.getloadavg()
    times: dict[str, list[float]] = {name: [] for name in settings}
    cpu_times: dict[str, list[float]] = {}
    counts: dict[str, tuple[int, int]] = {}
    if args.scratch is not None:
        args.scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
        create_cost = file_creation_cost(Path(scratch))
        if args.write:
            for video in videos:
                boxes_source(video, 4, Path(scratch))
        for _ in range(args.repeats):
            for name, (job, *params) in settings.items():
                for _ in range(DECODE_SAMPLES if job is decode_only else 1):  # the short, noisy limit
                    times[name].append(time_setting(videos, job, params, Path(scratch), counts, name, cpu_times))
    load_after = os.getloadavg()
    frames = counts["decode only"][0]
    limit = statistics.median(times["decode only"])
    cpu_limit = statistics.median(cpu_times["decode only"])
    rows = []
    for name in settings:
        seconds = statistics.median(times[name])
        cpu_seconds = statistics.median(cpu_times[name])
        checked, found = counts[name]
        coverage = None if name == "decode only" else found / checked
        rows.append(dict(setting=name, seconds=seconds, frames_per_s=frames / seconds, coverage=coverage,
                         x_decode=seconds / limit, cpu_seconds=cpu_seconds, x_decode_cpu=cpu_seconds / cpu_limit,
                         frames_checked=checked, frames_with_face=found))
    cpus = available_cpus()
    print(f"{len(videos)} videos, {frames} frames; medians of {args.repeats} interleaved runs; "
          f"{args.threads} torch thread(s), MTCNN and BlazeFace on {args.device}; "
          f"{platform.processor() or platform.machine()}, {cpus} CPUs (pipeline auto: "
          f"{'on' if pipeline_fits() else 'off'}); PNG deflate: {encoder()}; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; creating a file in the "
          f"scratch folder: {create_cost * 1e6:.0f} us; freed memory: {malloc}")
    print("| setting | frames/s | face coverage | x decode-only time | x decode-only CPU time |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        coverage = "-" if r["coverage"] is None else f"{r['coverage']:.2f} ({r['frames_with_face']}/{r['frames_checked']})"
        print(f"| {r['setting']} | {r['frames_per_s']:.1f} | {coverage} | {r['x_decode']:.2f} | {r['x_decode_cpu']:.2f} |")
    by_name = {r["setting"]: r for r in rows}
    target = verdict(by_name.get("auto, k=4: extract_face_frames"), by_name.get("mtcnn, k=4: extract_face_frames"),
                     cpus)
    if target:
        print(target)
    for what, why in skipped.items():
        print(f"not measured: {what} ({why})")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(videos=[str(v) for v in videos], frames=frames, repeats=args.repeats,
                                             threads=args.threads, device=args.device, cpus=cpus,
                                             png_encoder=encoder(), file_creation_seconds=create_cost, freed_memory=malloc,
                                             load_average_before=load_before, load_average_after=load_after,
                                             rows=rows, target=target, skipped=skipped, raw_seconds=times, raw_cpu_seconds=cpu_times),
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
