"""The face-cropping options of ``predict``, ``explain`` and ``extract-faces`` (and, for their
video entries, ``evaluate`` and ``train``: :func:`add_video_entry_face_options`).

``--face-detector auto|blazeface|blazeface-short|dlib|mtcnn|none`` and ``--margin`` choose whether,
with what and how wide the face is cropped (see :mod:`dynsnip.data.faces.detectors`; ``auto``, the
default: BlazeFace's short-range model, its full-range model on the frames where that finds no
face, and MTCNN where neither does). ``--detect-size`` is the working size of dlib and MTCNN
(BlazeFace always works at its own 128/192 px input); ``--detect-upsample`` tunes dlib's HOG
detector (:class:`dynsnip.data.faces.DlibFaceDetector`) for faces that are small in the frame: its
window is 80x80 px, so at the default working size of 480 px (the frame's shorter side) it
finds faces down to about 1/6 of the short side; MTCNN (``--min-face``, 40 px at the working
size) goes down to 1/12.
"""
from __future__ import annotations

import argparse
import math
import os
from typing import Any

DEFAULT_MARGIN = 1.3
DEFAULT_DETECT_SIZE = 480
DEFAULT_MIN_FACE = 40.0


def add_face_options(parser: argparse.ArgumentParser, *, none_means: str) -> None:
    """Add ``--face-detector``, ``--margin``, ``--detect-size`` and ``--detect-upsample``."""
    from dynsnip.data.faces.detectors import DEFAULT_FACE_DETECTOR, FACE_DETECTORS

    parser.add_argument("--face-detector", choices=FACE_DETECTORS, default=DEFAULT_FACE_DETECTOR,
                        help="auto (default): BlazeFace short and full range on every looked-at frame (the second adds "
                             "the faces the first missed: a smaller person beside a large face), then MTCNN where neither "
                             "finds one (docs/video.md measures it); auto-cascade: full range only where short range "
                             "finds nothing (faster; misses such a second person); blazeface / "
                             "blazeface-short: MediaPipe's full- / short-range detector only; dlib: frontal HOG "
                             "detector only; mtcnn: MTCNN only (the paper's for datasets other than FF++); "
                             f"none: {none_means}")
    _add_crop_options(parser)
    parser.add_argument("--detect-device", default="cpu", metavar="DEVICE",
                        help="where MTCNN and BlazeFace run (default cpu; cuda: frames batched on the GPU, each "
                             "torchrun rank on its LOCAL_RANK GPU; needs the detection in the main process: --workers 0 for predict, "
                             "--workers 1 for extract-faces)")
    add_detection_policy_options(parser)


def _add_crop_options(parser: argparse.ArgumentParser | Any) -> None:
    """Add ``--margin``, ``--detect-size``, ``--detect-upsample`` and ``--min-face``."""
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                        help=f"face crop side / face box side (default {DEFAULT_MARGIN}, FaceForensics++ convention)")
    parser.add_argument("--detect-size", type=int, default=DEFAULT_DETECT_SIZE, metavar="PX",
                        help=f"dlib and MTCNN work on frames resized to this short side (default {DEFAULT_DETECT_SIZE}: "
                             "dlib finds faces down to ~1/6 of the short side); larger finds smaller faces, slower")
    parser.add_argument("--detect-upsample", type=int, default=0, metavar="K",
                        help="extra dlib pyramid upsamplings for small faces (default 0; each ~4x slower)")
    parser.add_argument("--min-face", type=float, default=DEFAULT_MIN_FACE, metavar="PX",
                        help=f"smallest face MTCNN looks for, in pixels at --detect-size (default {DEFAULT_MIN_FACE:g}); "
                             "smaller finds smaller faces, slower")


def add_video_entry_face_options(parser: argparse.ArgumentParser | Any) -> None:
    """Add the face options of ``predict`` / ``extract-faces`` that decide the crops of video
    entries, for ``evaluate`` and ``train`` (their own ``--face-detector`` has no ``none``):
    ``--margin``, ``--detect-size``, ``--detect-upsample``, ``--min-face``, ``--detect-every`` and
    ``--min-face-coverage``. With the settings a folder was extracted with, evaluating its
    videos scores the same crops as evaluating the folder (:func:`video_entry_settings`)."""
    _add_crop_options(parser)
    add_detection_policy_options(parser)


def video_entry_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`dynsnip.engine.data.make_dataset` that the options of
    :func:`add_video_entry_face_options` give: the detector's name and options (built only for
    video entries), ``margin``, ``detect_every`` and ``min_face_coverage``."""
    return dict(face_detector=args.face_detector, detector_options=detector_options(args), margin=args.margin,
                detect_every=args.detect_every, min_face_coverage=args.min_face_coverage)


def add_track_options(parser: argparse.ArgumentParser, listed: str = "the report lists each") -> None:
    """Add ``--faces all|largest`` and ``--video-score max|mean`` (see :mod:`dynsnip.data.faces.tracks`);
    ``listed``: what the command's report says of each face."""
    parser.add_argument("--faces", choices=("all", "largest"), default="all",
                        help="all (default): every face of the video is followed (face tracks) and scored, and "
                             f"{listed}; largest: the largest face only, as before face tracks (faster: "
                             "the detector looks only at the sampled snippets)")
    parser.add_argument("--video-score", choices=("max", "mean"), default="max",
                        help="with --faces all, the video's fake probability: max (default), that of its most "
                             "suspicious face; mean, the mean over its scored faces")


def add_detection_policy_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--detect-every`` and ``--min-face-coverage`` (see :mod:`dynsnip.data.faces.crop_policy`)."""
    from dynsnip.data.faces.crop_policy import DEFAULT_DETECT_EVERY, DEFAULT_MIN_FACE_COVERAGE

    parser.add_argument("--detect-every", type=int, default=DEFAULT_DETECT_EVERY, metavar="K",
                        help=f"the detector looks at frames whose index is a multiple of K (default "
                             f"{DEFAULT_DETECT_EVERY} = T: one frame per snippet; the crop is one box per snippet "
                             "either way). K > T: fewer detections, boxes interpolated between them for the "
                             "snippets in between (docs/video.md measures the accuracy); predict and extract-faces "
                             "must use the same K for identical crops")
    parser.add_argument("--min-face-coverage", type=float, default=DEFAULT_MIN_FACE_COVERAGE, metavar="F",
                        help="a video whose face is found in fewer than this fraction of the frames the detector "
                             f"looks at fails with reason low_face_coverage (default {DEFAULT_MIN_FACE_COVERAGE}: "
                             "at most half of the crops borrowed from other frames; 0 turns the check off)")


def detection_policy_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with ``--detect-every`` / ``--min-face-coverage``, or None."""
    if not 0.0 <= args.min_face_coverage <= 1.0:
        return f"--min-face-coverage must be a fraction between 0 and 1, got {args.min_face_coverage}"
    if args.detect_every < 1:
        return f"--detect-every must be a positive number of frames, got {args.detect_every}"
    return None


def face_options_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the face options of ``args``, or None."""
    if not math.isfinite(args.margin) or args.margin <= 0:
        return f"--margin must be a positive number, got {args.margin}"
    if args.detect_size < 80:
        return f"--detect-size must be at least 80 px (dlib's detection window), got {args.detect_size}"
    if args.detect_upsample < 0:
        return f"--detect-upsample must be 0 or more, got {args.detect_upsample}"
    if problem := detection_policy_problem(args):
        return problem
    if not math.isfinite(args.min_face) or args.min_face < 12:
        return f"--min-face must be at least 12 px (MTCNN's smallest window), got {args.min_face}"
    if getattr(args, "faces", None) == "largest" and getattr(args, "video_score", None) == "mean":
        return ("--video-score mean reduces several faces to one score, but --faces largest scores one face: drop "
                "one of them (--faces all, the default, scores every face)")
    return None


def face_detector(args: argparse.Namespace) -> Any:
    """``None`` for ``--face-detector none``, else the configured detector.

    Raises:
        ImportError: dlib (the ``video`` extra) is not installed, with the install command.
    """
    from dynsnip.data.faces.detectors import create_face_detector

    return create_face_detector(args.face_detector, **detector_options(args))


def detector_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of :func:`~dynsnip.data.faces.detectors.create_face_detector` that ``args`` give
    (``--detect-size``, ``--detect-upsample``, ``--min-face``, ``--detect-device``: cpu where the
    command has none)."""
    return dict(detect_short_side=args.detect_size, upsample=args.detect_upsample, min_face=args.min_face,
                device=detect_device(getattr(args, "detect_device", "cpu")))


def detect_device(device: str) -> str:
    """``--detect-device``; a bare ``cuda`` under ``torchrun`` is this rank's GPU (``LOCAL_RANK``)."""
    if device == "cuda" and int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0') or 0)}"
    return device


def detect_device_problem(args: argparse.Namespace, in_process: bool) -> str | None:
    """What is wrong with ``--detect-device``, or None: a GPU detector cannot run in forked loader
    processes (CUDA does not survive a fork), and a device this machine does not have (or not a
    device name) is refused (:func:`dynsnip.cli.arguments.device_problem`)."""
    from .arguments import device_problem

    if str(args.detect_device).startswith("cuda") and not in_process:
        return (f"--detect-device {args.detect_device} needs the detection in the main process "
                "(--workers 0 for predict, --workers 1 for extract-faces): CUDA does not work in forked workers")
    return device_problem(detect_device(args.detect_device), "--detect-device", default_hint=False)


def clip_loader(model: Any, args: argparse.Namespace, faces: Any) -> Any:
    """The ``FaceClipLoader`` of ``predict`` / ``explain``: the model's input size, mean/std
    and test U, with ``faces`` (see :func:`face_detector`), ``--margin``, ``--detect-every``,
    ``--min-face-coverage`` and ``--snippets``."""
    from dynsnip.data import FaceClipLoader

    overrides: dict[str, Any] = dict(face_detector=faces, margin=args.margin, detect_every=args.detect_every,
                                     min_face_coverage=args.min_face_coverage, cap_snippets=True)
    if args.snippets is not None:
        overrides["num_snippets"] = args.snippets
    return FaceClipLoader.from_model(model, **overrides)
