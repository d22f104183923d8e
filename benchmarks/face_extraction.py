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
  ``extract_face_frames`` given the boxes of an earlier run (decoding and writing only), for
  each of ``--formats`` (PNG through :mod:`dynsnip.data.faces.png_writer`, BMP through Pillow).

It prints a table of frames/s, face coverage (fraction of the looked-at frames with a face)
and the ratio of each setting's time to decode-only's (``x decode``; 1.0 = at the limit), in
wall time and in this process's CPU time (the latter hardly moves when other work shares the
machine; the two agree on an idle one, as everything here runs in one thread),
and writes the raw numbers as JSON. Settings run interleaved over ``--repeats`` so a change
of machine load affects them alike; the table shows medians. One process, ``--threads``
torch threads (MTCNN, BlazeFace) and dlib's single thread.

Usage::

    python benchmarks/face_extraction.py                      # bundled footage, 2 repeats
    python benchmarks/face_extraction.py --write --every 4,8,16 --backends auto --no-full-resolution \
        --json benchmarks/results/cpu_face_extraction.json
    python benchmarks/face_extraction.py --videos a.mp4 b.mp4 --device cuda   # MTCNN, BlazeFace on a GPU
    # the 2x target: the default (auto, k = 4, PNG) against decode-only and the mtcnn detector, one run
    python benchmarks/face_extraction.py --write --every 4 --formats png --backends mtcnn,auto,dlib+mtcnn \
        --no-full-resolution --repeats 5
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
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


def full_extraction(path: Path, detector, every: int, scratch: Path, boxes_from: Path | None = None,
                    image_format: str = "png") -> tuple[int, int]:
    from dynsnip.data.faces.extraction import extract_face_frames

    out = scratch / f"{path.stem}_{time.perf_counter_ns()}"
    result = extract_face_frames(path, out, face_detector=detector, detect_every=every, min_face_coverage=0.0,
                                 boxes_from=boxes_from, image_format=image_format)
    return result.frames_checked, result.num_detected


def boxes_source(path: Path, every: int, scratch: Path) -> Path:
    """An extraction of ``path`` whose boxes :func:`writing_only` reuses (made before any timing)."""
    source = scratch / f"source_{path.stem}_k{every}"
    if not source.exists():
        full_extraction(path, "dlib", every, scratch / "unused", None)  # any boxes will do
        next((scratch / "unused").glob(f"{path.stem}_*")).rename(source)
    return source


def writing_only(path: Path, every: int, scratch: Path, image_format: str = "png") -> tuple[int, int]:
    """extract_face_frames with the boxes read from an earlier extraction of the same video
    (``boxes_from``): decoding and writing the regions, no detection."""
    return full_extraction(path, "dlib", every, scratch, boxes_source(path, every, scratch), image_format)


DECODE_SAMPLES = 5  # decode-only takes ~0.2 s on the bundled footage: sampled 5x per round for a stable median


def time_setting(videos: list[Path], job, params: tuple, scratch: Path, counts: dict, name: str,
                 cpu: dict | None = None) -> float:
    """Seconds one setting takes over all ``videos``; records its (frames checked, with a face) in ``counts``
    and its CPU seconds (this process's) in ``cpu[name]``."""
    checked = found = 0
    start, start_cpu = time.perf_counter(), time.process_time()
    for video in videos:
        if job == "write":
            detector, every, *fmt = params
            c, f = full_extraction(video, detector, every, scratch, None, *fmt)
        elif job == "write_only":
            every, *fmt = params
            c, f = writing_only(video, every, scratch, *fmt)
        else:
            c, f = job(video, *params)
        checked, found = checked + c, found + f
    counts[name] = (checked, found)
    if cpu is not None:
        cpu.setdefault(name, []).append(time.process_time() - start_cpu)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", nargs="*", type=Path, help="videos (default: the bundled footage)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--every", default="1,4", help="detect_every values (default 1,4)")
    parser.add_argument("--backends", default="dlib,mtcnn,blazeface,blazeface-short,auto",
                        help="detectors (a+b: a cascade; dlib+mtcnn: the auto of before BlazeFace)")
    parser.add_argument("--write", action="store_true", help="also time the whole extract_face_frames (PNG writing)")
    parser.add_argument("--formats", default="png,bmp", help="image formats of the --write rows (default png,bmp)")
    parser.add_argument("--no-full-resolution", action="store_true", help="skip the slow full-resolution baseline")
    parser.add_argument("--history", action="store_true",
                        help="with --write, also the dlib+mtcnn extraction with uncapped upsampling (an earlier default)")
    parser.add_argument("--device", default="cpu", help="MTCNN's and BlazeFace's device")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    args = parser.parse_args(argv)

    import torch

    from dynsnip.data import bundled_videos
    from dynsnip.data.faces.detectors import AutoFaceDetector, DlibFaceDetector, MtcnnFaceDetector, create_face_detector

    torch.set_num_threads(args.threads)
    videos = args.videos or list(bundled_videos())
    everies = [int(k) for k in args.every.split(",")]
    settings: dict[str, tuple] = {"decode only": (decode_only,)}
    settings["before: dlib 480 px, every frame"] = (detect_all_frames, DlibFaceDetector(max_upscale=None))
    if not args.no_full_resolution:
        settings["before: dlib full resolution, every frame"] = (detect_all_frames, DlibFaceDetector(detect_short_side=None))
    if args.write and args.history:  # an earlier default: small frames upsampled to the 480 px working size
        settings["dlib+mtcnn, k=4, upsampling not capped: extract_face_frames"] = (
            "write", AutoFaceDetector(DlibFaceDetector(max_upscale=None), MtcnnFaceDetector(device=args.device)), 4)
    formats = args.formats.split(",")
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
                    suffix = "" if fmt == "png" else f", --format {fmt}"
                    settings[f"{backend}, k={every}{suffix}: extract_face_frames"] = ("write", detector, every, fmt)
    if args.write:
        for fmt in formats:
            settings[f"decode + write regions as {fmt}, boxes given (no detection), k=4"] = ("write_only", 4, fmt)

    times: dict[str, list[float]] = {name: [] for name in settings}
    cpu_times: dict[str, list[float]] = {}
    counts: dict[str, tuple[int, int]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        if args.write:
            for video in videos:
                boxes_source(video, 4, Path(scratch))
        for _ in range(args.repeats):
            for name, (job, *params) in settings.items():
                for _ in range(DECODE_SAMPLES if job is decode_only else 1):  # the short, noisy limit
                    times[name].append(time_setting(videos, job, params, Path(scratch), counts, name, cpu_times))
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
    print(f"{len(videos)} videos, {frames} frames; medians of {args.repeats} interleaved runs; "
          f"{args.threads} torch thread(s), MTCNN and BlazeFace on {args.device}; "
          f"{platform.processor() or platform.machine()}")
    print("| setting | frames/s | face coverage | x decode-only time | x decode-only CPU time |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        coverage = "-" if r["coverage"] is None else f"{r['coverage']:.2f} ({r['frames_with_face']}/{r['frames_checked']})"
        print(f"| {r['setting']} | {r['frames_per_s']:.1f} | {coverage} | {r['x_decode']:.2f} | {r['x_decode_cpu']:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(videos=[str(v) for v in videos], frames=frames, repeats=args.repeats,
                                             threads=args.threads, device=args.device, rows=rows,
                                             raw_seconds=times, raw_cpu_seconds=cpu_times), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
