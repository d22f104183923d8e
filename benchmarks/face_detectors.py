"""Face detectors side by side: coverage, agreement with MTCNN, hard poses, and cost per frame size.

Part 1, **agreement and hard poses** (per video, on the frames the default policy looks at:
every 4th frame, at most ``--frames`` of them spread over the video):

* ``coverage``: the fraction of frames where the detector finds any face;
* ``crop IoU vs MTCNN``: on frames where both find a face, the IoU of the crop the pipeline would
  cut around the detector's largest face (squared with margin 1.3:
  :func:`~dynsnip.data.faces.boxes.square_crop_box`) with the crop MTCNN's box *of the same face*
  (the one overlapping it most) gives; mean and 5th percentile: how alike two detectors frame a
  face;
* ``same largest face``: how often the detector's largest face is MTCNN's largest face (two
  people of about the same size can swap places);
* **hard poses** made from the frames where MTCNN finds a face in the original (so a face is
  known to be there, at MTCNN's box): ``rotated`` (the frame turned by 45 degrees about the face's
  centre), ``small`` (the frame shrunk to a third and centred on a black canvas of the original
  size: a wide shot), ``covered`` (a grey bar over the lower 45% of the face box: nose tip, mouth
  and chin, like a hand). A hard frame counts as found when a detection's centre lies inside the
  face's (transformed) box, so a false positive elsewhere is not a hit.

``--fit-framing``: how MTCNN frames the faces BlazeFace finds (width, height and centre shift
in units of BlazeFace's box side; medians), the constants of BlazeFace's default ``framing``.

Part 2, **cost** (``--cost``): milliseconds per frame of each detector on a 720p, a 352x288 and a
176x144 frame (the frame as decoded: resizing included), given alone and 16 at once (as
``extract-faces`` hands them over: the torch detectors batch them), and BlazeFace's network alone per
128 / 192 px input (batch 1 and 16); medians of interleaved repeats, one process, ``--threads``
torch threads; CPU time of the process on a CPU (robust to other load on the machine), wall time
with ``--device cuda`` (then the torch detectors, MTCNN and BlazeFace, run on the GPU).

Usage::

    python benchmarks/face_detectors.py --videos dynsnip/assets/videos/*.mp4 ../shared/data/videos/*.mp4 \\
        --cost --json benchmarks/results/cpu_face_detectors.json
    python benchmarks/face_detectors.py --device cuda --cost --detectors mtcnn,blazeface,auto   # on a GPU
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

DETECTORS = "dlib,mtcnn,blazeface,blazeface-short,blazeface-mediapipe,auto,dlib+mtcnn"
VARIANTS = ("rotated", "small", "covered")


def make_detector(name: str, device: str):
    from dynsnip.data.faces.detectors import AutoFaceDetector, DlibFaceDetector, MtcnnFaceDetector, create_face_detector

    if name == "dlib+mtcnn":  # the previous default `auto`
        return AutoFaceDetector(DlibFaceDetector(), MtcnnFaceDetector(device=device))
    if "+" in name:  # any cascade: a+b+c
        return AutoFaceDetector(*(make_detector(part, device) for part in name.split("+")))
    if "@" in name:  # BlazeFace with another score threshold: blazeface@0.7
        base, score = name.split("@")
        return create_face_detector(base, device=device, min_score=float(score))
    if name.endswith("-mediapipe"):  # BlazeFace with MediaPipe's own boxes
        return create_face_detector(name[:-len("-mediapipe")], device=device, framing="mediapipe")
    return create_face_detector(name, device=device)


def largest(rows):
    import numpy as np

    from dynsnip.data.faces.boxes import largest_box

    return largest_box(np.asarray(rows)[:, :4]) if len(rows) else None


def hard_variant(frame, box, kind: str):
    """``frame`` made harder around the face ``box`` (x0, y0, x1, y1); returns the frame and the face's box in it."""
    import numpy as np
    from PIL import Image

    height, width = frame.shape[:2]
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if kind == "rotated":
        out = np.asarray(Image.fromarray(frame).rotate(45, resample=Image.BICUBIC, center=(cx, cy)))
        return out, box  # turned about the face's centre: the face stays where it was
    if kind == "small":
        w, h = max(1, width // 3), max(1, height // 3)
        small = np.asarray(Image.fromarray(frame).resize((w, h), Image.BILINEAR))
        out = np.zeros_like(frame)
        left, top = (width - w) // 2, (height - h) // 2
        out[top:top + h, left:left + w] = small
        sx, sy = w / width, h / height
        return out, np.array([left + x0 * sx, top + y0 * sy, left + x1 * sx, top + y1 * sy])
    if kind == "covered":
        out = frame.copy()
        top = int(round(y0 + 0.55 * (y1 - y0)))
        out[max(0, top):max(0, int(round(y1))), max(0, int(round(x0))):max(0, int(round(x1)))] = 128
        return out, box
    raise ValueError(kind)


def hit(rows, box) -> bool:
    """A detection whose centre lies inside ``box``."""
    import numpy as np

    rows = np.asarray(rows)
    if not len(rows):
        return False
    cx, cy = (rows[:, 0] + rows[:, 2]) / 2, (rows[:, 1] + rows[:, 3]) / 2
    return bool(((cx >= box[0]) & (cx <= box[2]) & (cy >= box[1]) & (cy <= box[3])).any())


def agreement(videos: list[Path], names: list[str], detectors: dict, max_frames: int, every: int) -> dict:
    import numpy as np

    from dynsnip.data import VideoReader
    from dynsnip.data.faces.boxes import box_iou, square_crop_box
    from dynsnip.data.faces.detectors import detect_faces

    reference = detectors.get("mtcnn") or make_detector("mtcnn", "cpu")
    out = {}
    for path in videos:
        with VideoReader(path) as video:
            looked_at = list(range(0, video.num_frames, every))
            picks = sorted({looked_at[int(i)] for i in np.linspace(0, len(looked_at) - 1, min(max_frames, len(looked_at)))})
            frames = np.stack(video.read(picks))
            size = video.size
        ref_rows = detect_faces(frames, reference)
        ref_boxes = [largest(r) for r in ref_rows]
        known = [i for i, b in enumerate(ref_boxes) if b is not None]
        hard = {kind: [hard_variant(frames[i], ref_boxes[i], kind) for i in known] for kind in VARIANTS}
        row: dict = {"frames": len(frames), "size": list(size), "mtcnn_faces": len(known)}
        for name in names:
            start = time.process_time()
            rows = detect_faces(frames, detectors[name])
            seconds = time.process_time() - start
            ious, same = [], []
            for mine, ref, ref_largest in zip(rows, ref_rows, ref_boxes):
                box = largest(mine)
                if box is not None and ref_largest is not None:
                    overlaps = box_iou(box, ref[:, :4])
                    if overlaps.max() > 0:  # the same face in MTCNN's detections (a miss of either is coverage's)
                        match = ref[int(np.argmax(overlaps)), :4]
                        a = np.array(square_crop_box(box, size, 1.3), float)
                        b = np.array(square_crop_box(match, size, 1.3), float)
                        ious.append(float(box_iou(a, b[None])[0]))
                    same.append(bool(box_iou(box, ref_largest[None])[0] > 0.3))
            entry = {"coverage": float(np.mean([len(r) > 0 for r in rows])), "cpu_ms_per_frame": 1000 * seconds / len(frames),
                     "crop_iou_mean": float(np.mean(ious)) if ious else None,
                     "crop_iou_p5": float(np.percentile(ious, 5)) if ious else None,
                     "same_largest_face": float(np.mean(same)) if same else None}
            for kind, items in hard.items():
                if items:
                    found = detect_faces(np.stack([f for f, _ in items]), detectors[name])
                    entry[kind] = float(np.mean([hit(r, b) for r, (_, b) in zip(found, items)]))
            row[name] = entry
        out[path.name] = row
        print(f"{path.name}: {len(frames)} frames, {size[0]}x{size[1]}, MTCNN face in {len(known)}", flush=True)
    return out


def cost(names: list[str], detectors: dict, repeats: int, device: str) -> dict:
    import numpy as np
    import torch

    from dynsnip.data import bundled_video, read_frames
    from dynsnip.data.faces.blazeface import BlazeFace
    from dynsnip.data.faces.detectors import detect_faces

    frames = {
        "1280x720": read_frames(bundled_video("Zhling_1280x720"), [10])[0],
        "352x288": np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(
            read_frames(bundled_video("Zhling_1280x720"), [10])[0]).resize((352, 288))),
        "176x144": read_frames(bundled_video("carphone_pristine"), [0])[0],
    }
    jobs = {}
    for name in names:
        for label, frame in frames.items():
            jobs[f"{name}, {label} frame, alone"] = (lambda d=detectors[name], f=frame: detect_faces(f[None], d))
            batch = np.stack([frame] * 16)
            jobs[f"{name}, {label} frame, 16 at once (per frame)"] = (
                lambda d=detectors[name], b=batch: detect_faces(b, d), 16)
    for model in ("short", "full"):
        net = BlazeFace.pretrained(model).to(device)
        for batch in (1, 16):
            x = (torch.rand(batch, 3, net.input_size, net.input_size, device=device) * 2 - 1).contiguous(
                memory_format=torch.channels_last)

            def run(net=net, x=x):
                with torch.no_grad():
                    net.network(x)
                if x.is_cuda:
                    torch.cuda.synchronize()
            jobs[f"BlazeFace {model} range network, {net.input_size} px input, batch {batch} (per input)"] = (run, batch)
    clock = time.perf_counter if device != "cpu" else time.process_time  # CPU time: robust to a shared machine
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for job in jobs.values():  # warm-up
        (job[0] if isinstance(job, tuple) else job)()
    for _ in range(repeats):
        for name, job in jobs.items():
            fn, per = job if isinstance(job, tuple) else (job, 1)
            start = clock()
            fn()
            times[name].append(1000 * (clock() - start) / per)
    return {name: statistics.median(t) for name, t in times.items()}


def fit_framing(videos: list[Path], every: int, max_frames: int) -> dict:
    """How MTCNN frames the faces BlazeFace finds: per BlazeFace model, the medians (and quartiles) of MTCNN's
    box width and height and centre shift, in units of the BlazeFace box's side, over the frames where both
    find the largest face at the same place (box IoU >= 0.4). These are the constants of
    :data:`~dynsnip.data.faces.detectors.BLAZEFACE_MTCNN_FRAMING`."""
    import numpy as np

    from dynsnip.data import VideoReader
    from dynsnip.data.faces.boxes import box_iou
    from dynsnip.data.faces.detectors import BlazeFaceDetector, MtcnnFaceDetector, detect_faces

    mtcnn = MtcnnFaceDetector()
    models = {m: BlazeFaceDetector(m, framing="mediapipe") for m in ("full", "short")}
    ratios: dict[str, list] = {m: [] for m in models}
    for path in videos:
        with VideoReader(path) as video:
            looked_at = list(range(0, video.num_frames, every))
            picks = looked_at[::max(1, len(looked_at) // max_frames)]
            frames = np.stack(video.read(picks))
        reference = detect_faces(frames, mtcnn)
        for model, detector in models.items():
            for ref, mine in zip(reference, detect_faces(frames, detector)):
                a, b = largest(ref), largest(mine)
                if a is None or b is None or box_iou(a, b[None])[0] < 0.4:
                    continue
                side = np.sqrt((b[2] - b[0]) * (b[3] - b[1]))
                ratios[model].append([(a[2] - a[0]) / side, (a[3] - a[1]) / side,
                                      (a[0] + a[2] - b[0] - b[2]) / 2 / side, (a[1] + a[3] - b[1] - b[3]) / 2 / side])
    out = {}
    for model, rows in ratios.items():
        rows = np.array(rows)
        out[model] = dict(frames=len(rows), median=np.median(rows, 0).round(3).tolist(),
                          quartiles=np.percentile(rows, [25, 75], 0).round(3).tolist())
        print(f"BlazeFace {model} range, {len(rows)} frames: MTCNN's width, height, centre shift x, y "
              f"(x BlazeFace side): medians {out[model]['median']}, quartiles {out[model]['quartiles']}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", nargs="*", type=Path, help="videos (default: the bundled footage)")
    parser.add_argument("--detectors", default=DETECTORS, help=f"comma-separated (default {DETECTORS}; "
                        "dlib+mtcnn is the previous auto, a+b any cascade; NAME-mediapipe: BlazeFace with MediaPipe's boxes; "
                        "NAME@0.7: BlazeFace with that score threshold)")
    parser.add_argument("--frames", type=int, default=40, help="looked-at frames per video at most (default 40)")
    parser.add_argument("--every", type=int, default=4, help="frames looked at: multiples of this (default 4)")
    parser.add_argument("--cost", action="store_true", help="also the cost per frame size")
    parser.add_argument("--no-agreement", action="store_true", help="skip part 1")
    parser.add_argument("--fit-framing", action="store_true",
                        help="also measure how MTCNN frames BlazeFace's faces (BLAZEFACE_MTCNN_FRAMING)")
    parser.add_argument("--repeats", type=int, default=7, help="interleaved repeats of the cost runs")
    parser.add_argument("--device", default="cpu", help="where MTCNN and BlazeFace run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import torch

    from dynsnip.data import bundled_videos

    torch.set_num_threads(args.threads)
    names = args.detectors.split(",")
    detectors = {name: make_detector(name, args.device) for name in names}
    videos = args.videos or list(bundled_videos())
    result: dict = dict(device=args.device, threads=args.threads, machine=platform.processor() or platform.machine())
    if not args.no_agreement:
        result["agreement"] = per_video = agreement(videos, names, detectors, args.frames, args.every)
        print(f"\n{len(videos)} videos; every {args.every}th frame, at most {args.frames} per video; "
              f"hard poses on the frames where MTCNN finds the face")
        print("| video | detector | coverage | crop IoU vs MTCNN mean / 5th pct | same largest face | rotated 45 | "
              "small (1/3) | covered | CPU ms/frame |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        # the process's CPU time of one pass, the detector's first use included: a cost on a CPU only (on a
        # GPU it is launches and warm-up, not the GPU's work: --cost times the GPU properly)
        cpu_ms = (lambda v: f"{v:.1f}") if args.device == "cpu" else (lambda v: "-")  # noqa: E731
        for video, row in per_video.items():
            for name in names:
                e = row[name]
                iou = "-" if e["crop_iou_mean"] is None else f"{e['crop_iou_mean']:.3f} / {e['crop_iou_p5']:.3f}"
                print(f"| {video} ({row['frames']}) | {name} | {e['coverage']:.2f} | {iou} | {fmt(e['same_largest_face'])} | "
                      f"{fmt(e.get('rotated'))} | "
                      f"{fmt(e.get('small'))} | {fmt(e.get('covered'))} | {cpu_ms(e['cpu_ms_per_frame'])} |")
    if args.fit_framing:
        result["framing"] = fit_framing(videos, args.every, 50)
    if args.cost:
        result["cost_ms"] = costs = cost(names, detectors, args.repeats, args.device)
        print(f"\ncost per frame, medians of {args.repeats} interleaved runs, {args.threads} thread(s), {args.device}")
        print("| what | ms |")
        print("|---|---:|")
        for name, ms in costs.items():
            print(f"| {name} | {ms:.2f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
