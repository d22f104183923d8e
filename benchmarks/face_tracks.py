"""What following every face costs against the single-face pass, in one run, same videos.

For each video, interleaved over ``--repeats`` (so that a change of machine load affects all
settings alike; the table shows medians):

* ``predict, --faces largest`` (the single-face pass of before face tracks):
  ``FaceClipLoader(...)(video)``: the U sampled snippets decoded, the detector on their
  looked-at frames only;
* ``predict, --faces all``: ``FaceClipLoader(...).load_tracks(video)``: every looked-at frame
  of the video decoded and searched (the frames extract-faces looks at), tracks linked, every
  kept track cropped;
* ``extract-faces --faces largest`` and ``--faces all``: ``extract_face_frames`` (one decoding
  pass over every frame; with tracks, the face thumbnails, the linking and regions holding
  every face);
* ``decode only``: every frame decoded (the limit of any pass over the whole video).

Throughput is in video frames per second (the video's frames / seconds taken: how fast the
footage goes through, whatever the setting looks at), with each setting's time as a ratio
of its single-face counterpart in the same run. Loading only: no model runs (the model's
cost is the same per clip, times the number of scored faces). One process, ``--threads``
torch threads, dlib's single thread.

Usage::

    python benchmarks/face_tracks.py                                   # bundled footage
    python benchmarks/face_tracks.py --repeats 3 --json benchmarks/results/cpu_face_tracks.json
    python benchmarks/face_tracks.py --videos ../shared/data/videos/*.mp4
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def run_settings(video: Path, work: Path, args: argparse.Namespace) -> dict[str, tuple[float, int]]:
    """``{setting: (seconds, faces scored or kept)}`` for one video, one repeat."""
    from dynsnip.data import FaceClipLoader, VideoReader, extract_face_frames

    # the cost of each pass is measured, not the verdict: no coverage check (a video whose faces come and go
    # would otherwise fail one setting and not the other)
    loader = FaceClipLoader(num_snippets=args.snippets, size=(224, 224), detect_every=args.detect_every,
                            face_detector=args.detector, cap_snippets=True, min_face_coverage=0.0)
    out: dict[str, tuple[float, int]] = {}

    start = time.perf_counter()
    with VideoReader(video) as reader:
        sum(1 for _ in reader.iter_frames())
    out["decode only"] = (time.perf_counter() - start, 0)

    start = time.perf_counter()
    loader(video)
    out["predict, --faces largest"] = (time.perf_counter() - start, 1)
    start = time.perf_counter()
    tracked = loader.load_tracks(video)
    out["predict, --faces all"] = (time.perf_counter() - start, len(tracked.clips))

    for faces in ("largest", "all"):
        folder = work / f"{video.stem}_{faces}"
        shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        result = extract_face_frames(video, folder, face_detector=loader.face_detector, detect_every=args.detect_every,
                                     faces=faces, min_face_coverage=0.0)
        out[f"extract-faces --faces {faces}"] = (time.perf_counter() - start, result.tracks or 1)
        shutil.rmtree(folder, ignore_errors=True)
    return out


BASELINE = {"predict, --faces all": "predict, --faces largest",
            "extract-faces --faces all": "extract-faces --faces largest"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", nargs="*", type=Path, help="videos (default: the bundled footage)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--snippets", type=int, default=8, help="U of predict (default 8, the paper's test U)")
    parser.add_argument("--detect-every", type=int, default=4)
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    args = parser.parse_args(argv)

    import torch

    from dynsnip.data import VideoReader, bundled_videos

    torch.set_num_threads(args.threads)
    videos = args.videos or bundled_videos()
    frames = {}
    for video in videos:
        with VideoReader(video) as reader:
            frames[str(video)] = reader.num_frames
    runs: dict[str, dict[str, list[float]]] = {}
    faces: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for video in videos:
                for setting, (seconds, count) in run_settings(Path(video), Path(tmp), args).items():
                    runs.setdefault(setting, {}).setdefault(str(video), []).append(seconds)
                    faces.setdefault(setting, {})[str(video)] = count
            print(f"repeat {repeat + 1}/{args.repeats} done", file=sys.stderr)
    total_frames = sum(frames.values())
    rows = []
    for setting, by_video in runs.items():
        seconds = sum(statistics.median(times) for times in by_video.values())
        rows.append(dict(setting=setting, seconds=seconds, frames_per_s=total_frames / seconds,
                         faces=faces[setting]))
    by_name = {r["setting"]: r for r in rows}
    for row in rows:
        base = BASELINE.get(row["setting"])
        row["x_single_face_time"] = row["seconds"] / by_name[base]["seconds"] if base else None
    width = max(len(r["setting"]) for r in rows)
    print(f"{len(videos)} video(s), {total_frames} frames, U={args.snippets}, detect_every={args.detect_every}, "
          f"{args.detector}; medians of {args.repeats}")
    print(f"{'setting':<{width}}  {'frames/s':>9}  {'x single-face time':>18}  faces")
    for row in rows:
        ratio = "" if row["x_single_face_time"] is None else f"{row['x_single_face_time']:.2f}"
        print(f"{row['setting']:<{width}}  {row['frames_per_s']:9.1f}  {ratio:>18}  "
              f"{sum(row['faces'].values())}")
    if args.json:
        args.json.write_text(json.dumps(dict(
            machine=platform.platform(), python=sys.version.split()[0], torch_threads=args.threads,
            repeats=args.repeats, snippets=args.snippets, detect_every=args.detect_every, detector=args.detector,
            videos=frames, rows=rows, raw=runs), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
