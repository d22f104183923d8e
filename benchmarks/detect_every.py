"""How far apart can the face detector's frames be? Crop accuracy and coverage against k.

The crop policy (:mod:`dynsnip.data.faces.crop_policy`) looks at frames whose index is a multiple
of ``detect_every`` (k). With k <= T every snippet holds one; with k > T the box of a
snippet between two looked-at frames is interpolated. Fewer detections make
``extract-faces`` faster (``benchmarks/face_extraction.py``); this script measures what
they cost in crop accuracy, on the same videos:

1. the detector runs on **every** frame of each video once;
2. the reference crop of every window of T consecutive frames is the policy's crop with
   k = 1 (the followed face's boxes of all T frames, averaged);
3. for each k, the policy's crop of every window from the detections of the multiples of
   k only, compared with the reference: IoU (mean, 5th percentile, minimum), the centre
   offset and the side change as fractions of the reference side, the fraction of windows
   flagged as found, and the face coverage of the looked-at frames.

Every window of the video is scored (training samples any window); evaluation snippets are
aligned to hold a looked-at frame (no interpolation there).

Usage::

    python benchmarks/detect_every.py                                   # bundled footage
    python benchmarks/detect_every.py --videos a.mp4 b.mp4 --json out.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def window_crops(detections: dict, num_frames: int, frame_size, k: int, t: int, margin: float):
    """Per window start: (crop (4,) or None, found) under the policy with detect_every k."""
    from dynsnip.data.faces.boxes import square_crop_box
    from dynsnip.data.faces.crop_policy import quantize_detections, snippet_face
    import numpy as np
    looked_at = {i: quantize_detections(d) for i, d in detections.items() if i % k == 0}
    out = []
    for s in range(num_frames - t + 1):
        box, found = snippet_face(range(s, s + t), looked_at, k, num_frames)
        out.append((None if np.isnan(box).any() else np.array(square_crop_box(box, frame_size, margin), float), found))
    return out


def compare(reference, crops) -> dict:
    import numpy as np

    from dynsnip.data.faces.boxes import box_iou

    ious, offsets, scales, found = [], [], [], []
    for (ref, _), (crop, ok) in zip(reference, crops):
        found.append(ok)
        if ref is None:
            continue
        if crop is None:
            ious.append(0.0)
            continue
        ious.append(float(box_iou(ref, crop[None])[0]))
        side = ref[2] - ref[0]
        offsets.append(float(np.hypot(*((crop[:2] + crop[2:]) / 2 - (ref[:2] + ref[2:]) / 2)) / side))
        scales.append(float(abs((crop[2] - crop[0]) / side - 1)))
    ious = np.array(ious)
    return dict(windows=len(crops), iou_mean=float(ious.mean()), iou_p5=float(np.percentile(ious, 5)),
                iou_min=float(ious.min()), offset_mean=float(np.mean(offsets)), offset_max=float(np.max(offsets)),
                side_change_mean=float(np.mean(scales)), found=float(np.mean(found)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", nargs="*", type=Path, help="videos (default: the bundled footage)")
    parser.add_argument("--every", default="1,2,4,8,16,32", help="detect_every values")
    parser.add_argument("--detector", default="auto")
    parser.add_argument("--snippet-len", type=int, default=4)
    parser.add_argument("--margin", type=float, default=1.3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from dynsnip.data import VideoReader, bundled_videos
    from dynsnip.data.faces.detectors import create_face_detector, detect_faces

    detector = create_face_detector(args.detector)
    videos = args.videos or list(bundled_videos())
    everies = [int(k) for k in args.every.split(",")]
    per_video, pooled = {}, {k: ([], []) for k in everies}
    for path in videos:
        with VideoReader(path) as video:
            frames = video.read(list(range(video.num_frames)))
            size, n = video.size, video.num_frames
        detections = dict(enumerate(detect_faces(frames, detector)))
        reference = window_crops(detections, n, size, 1, args.snippet_len, args.margin)
        per_video[path.name] = {"frames": n, "size": list(size)}
        for k in everies:
            crops = window_crops(detections, n, size, k, args.snippet_len, args.margin)
            looked = [i for i in detections if i % k == 0]
            row = compare(reference, crops)
            row["coverage"] = sum(len(detections[i]) > 0 for i in looked) / len(looked)
            per_video[path.name][k] = row
            pooled[k][0].extend(reference)
            pooled[k][1].extend(crops)
    print(f"{len(videos)} videos, detector {args.detector}, T={args.snippet_len}, margin {args.margin}; "
          "every window of T frames against the k=1 crop")
    print("| k | detections per frame | IoU mean | IoU 5th pct | IoU min | centre offset mean / max | side change | windows found |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    total = {}
    for k in everies:
        row = compare(*pooled[k])
        total[k] = row
        print(f"| {k} | 1/{k} | {row['iou_mean']:.3f} | {row['iou_p5']:.3f} | {row['iou_min']:.3f} | "
              f"{row['offset_mean']:.3f} / {row['offset_max']:.3f} | {row['side_change_mean']:.3f} | {row['found']:.3f} |")
    for name, rows in per_video.items():
        print(f"{name} ({rows['frames']} frames, {rows['size'][0]}x{rows['size'][1]}): " + ", ".join(
            f"k={k}: IoU {rows[k]['iou_mean']:.3f} (min {rows[k]['iou_min']:.3f}), coverage {rows[k]['coverage']:.2f}"
            for k in everies))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(dict(videos=[str(v) for v in videos], detector=args.detector,
                                             snippet_len=args.snippet_len, margin=args.margin,
                                             pooled={str(k): v for k, v in total.items()},
                                             per_video={name: {str(k): v for k, v in rows.items()}
                                                        for name, rows in per_video.items()}), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
