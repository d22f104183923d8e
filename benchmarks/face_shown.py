"""Do the scored frames still show the face? The numbers behind :mod:`dynsnip.data.faces.face_shown`.

The detector looks at every k-th frame; every frame of a snippet is scored. The check that a
scored frame still shows the face compares its grey 16x16 thumbnail in the crop box with the
frame next to it towards the looked-at frame (a chain). This script measures, on real videos:

1. per video, the correlation of the thumbnails of **consecutive** frames (what the chain
   compares) and of each frame with the **looked-at frame** of its group directly (what a
   chain-less check would compare), in the crop box of the looked-at frame's face
   (``--detector``, default ``auto``; the first measurements used dlib; k = 4): minimum, 1st
   and 5th percentile. ``MIN_CORRELATION`` must lie below the first on
   footage without cuts;
2. the cost: ``FaceClipLoader`` (U = 8, 224 px) and ``extract_face_frames`` with the check
   and with it stubbed out, interleaved in this process: the ratio.

Usage::

    python benchmarks/face_shown.py                           # bundled footage
    python benchmarks/face_shown.py --videos a.mp4 b.mp4 --json out.json
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def correlations(video: Path, k: int = 4, max_frames: int = 300, detector_name: str = "auto") -> dict:
    import numpy as np

    from dynsnip.data import VideoReader
    from dynsnip.data.faces.boxes import largest_box, square_crop_box
    from dynsnip.data.faces.detectors import create_face_detector, detect_faces
    from dynsnip.data.faces.face_shown import thumbnail

    detector = create_face_detector(detector_name)
    with VideoReader(video) as reader:
        frames = reader.read(list(range(min(reader.num_frames, max_frames))))
    size = (frames.shape[2], frames.shape[1])
    consecutive, direct = [], []
    for a in range(0, len(frames), k):
        rows = np.asarray(detect_faces(frames[a:a + 1], detector)[0])
        if not len(rows):
            continue
        box = square_crop_box(largest_box(rows[:, :4]), size, 1.3)
        thumbs = [thumbnail(frames[i], box).ravel() for i in range(a, min(a + k, len(frames)))]
        for j in range(1, len(thumbs)):
            consecutive.append(float(np.corrcoef(thumbs[j], thumbs[j - 1])[0, 1]))
            direct.append(float(np.corrcoef(thumbs[j], thumbs[0])[0, 1]))

    def summary(values: list[float]) -> dict:
        return dict(pairs=len(values), min=round(min(values), 3), p1=round(float(np.percentile(values, 1)), 3),
                    p5=round(float(np.percentile(values, 5)), 3)) if values else dict(pairs=0)

    return dict(video=video.name, consecutive=summary(consecutive), direct=summary(direct))


def cost(videos: list[Path], repeats: int = 3, detector: str = "auto") -> dict:
    """Median seconds with the check on and stubbed out (interleaved), and their ratio."""
    import numpy as np

    import dynsnip.data.faces.extraction as extraction
    import dynsnip.data.pipeline as pipeline
    from dynsnip.data import FaceClipLoader

    real = (pipeline.shows_face, extraction._FaceShown.record, extraction._FaceShown.count)
    stubs = (lambda frames, indices, *a, **k: np.ones(np.asarray(indices).shape, bool),
             lambda self, *args, **kwargs: None, lambda self: 0)
    loader = FaceClipLoader(face_detector=detector, size=(224, 224), num_snippets=8, min_face_coverage=0)
    times: dict[str, list[float]] = {f"{what} {mode}": [] for what in ("loader", "extract") for mode in ("on", "off")}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(repeats):
                for mode, (shows, record, count) in (("on", real), ("off", stubs)):
                    pipeline.shows_face, extraction._FaceShown.record, extraction._FaceShown.count = shows, record, count
                    start = time.perf_counter()
                    for video in videos:
                        loader(video)
                    times[f"loader {mode}"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    for video in videos:
                        shutil.rmtree(Path(tmp) / "out", ignore_errors=True)
                        extraction.extract_face_frames(video, Path(tmp) / "out", face_detector=detector, min_face_coverage=0)
                    times[f"extract {mode}"].append(time.perf_counter() - start)
    finally:  # the real check back, whatever happened
        pipeline.shows_face, extraction._FaceShown.record, extraction._FaceShown.count = real
    median = {name: round(statistics.median(values), 3) for name, values in times.items()}
    return dict(seconds=median, loader_ratio=round(median["loader on"] / median["loader off"], 3),
                extract_ratio=round(median["extract on"] / median["extract off"], 3))


def main() -> None:
    from dynsnip.data import bundled_videos

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", nargs="*", type=Path, default=None, help="videos (default: the bundled ones)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--detector", default="auto", help="face detector (default auto, extract-faces' default; "
                        "the first measurements used dlib)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats of the cost runs")
    args = parser.parse_args()
    videos = args.videos or list(bundled_videos())
    results = dict(detector=args.detector, correlations=[correlations(v, detector_name=args.detector) for v in videos],
                   cost=cost(videos, args.repeats, args.detector))
    for row in results["correlations"]:
        print(row)
    print(results["cost"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
