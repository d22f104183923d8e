"""Write the face crops of every frame of a video once (``dynsnip extract-faces``).

Training samples new snippets every epoch; seeking in long-GOP videos and detecting faces
each time is slow, so the usual FaceForensics++ workflow crops the faces once into a folder
per video and trains from those (:class:`~dynsnip.data.datasets.FaceFramesDataset`).

Output of one video, ``out_dir/``:

* ``000000.png``, ``000001.png``, ...: the square face crop of each frame, named by the
  frame's index in the video (consecutive, so snippets can be sampled from the folder);
* ``faces.json``: source video, frame count, fps, margin, and per frame the crop box in
  video pixels and whether a face was detected in that very frame.

Two passes over the video: detection (boxes only, so memory does not grow with the
video's length; the largest face is followed from frame to frame with
:func:`~dynsnip.data.boxes.track_face`), then cropping with the boxes smoothed over
``smooth_window`` frames.
The folder is written under a temporary name and renamed when complete, so an interrupted
run never leaves a folder that looks finished; an existing folder is never overwritten.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ._optional import require
from .boxes import fill_missing_boxes, smooth_boxes, square_crop_box, track_face
from .crop import crop_and_resize
from .decode import VideoReader
from .errors import NoFaceError
from .faces import DEFAULT_FACE_DETECTOR, DetectorSpec, create_face_detector

np = require("numpy")
Image = require("PIL.Image")

IMAGE_FORMATS = ("png", "jpg")


@dataclass(frozen=True)
class ExtractedFaces:
    """Result of :func:`extract_face_frames`: the folder, frames written, frames with a face."""

    out_dir: Path
    num_frames: int
    num_detected: int


def extract_face_frames(
    video_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    face_detector: DetectorSpec = DEFAULT_FACE_DETECTOR,
    margin: float = 1.3,
    smooth_window: int = 5,
    max_gap: int = 25,
    size: tuple[int, int] | None = None,
    max_frames: int | None = None,
    image_format: str = "png",
    interpolation: str = "bilinear",
) -> ExtractedFaces:
    """Crop the face of every frame of ``video_path`` into ``out_dir``.

    Args:
        video_path: the video.
        out_dir: folder to create; must not exist yet.
        face_detector: ``"auto"`` (dlib, MTCNN where dlib finds nothing), ``"dlib"``,
            ``"mtcnn"``, ``"none"`` (whole frames) or a callable.
        margin: crop side / face-box side (1.3, FaceForensics++ convention).
        smooth_window: frames in the centred moving average of the boxes; 5 (+-2 frames,
            80 ms at 25 fps) removes the detector's frame-to-frame jitter, which temporal
            differences would otherwise read as motion, without lagging behind head motion.
        max_gap: frames the followed face may go undetected before the largest face of a
            later frame is taken instead (see :func:`~dynsnip.data.boxes.track_face`); 25 is
            one second at 25 fps: a missed detection or a hand in front of the face keeps
            the track, a cut to another person does not.
        size: ``(height, width)`` to resize crops to; None keeps the crop's own resolution
            (one resampling less; the dataset resizes to the model's input when loading).
        max_frames: crop only the first ``max_frames`` frames (None: all).
        image_format: ``"png"`` (lossless, default: JPEG would add compression traces of
            its own to the forgery traces) or ``"jpg"`` (quality 95).
        interpolation: resampling when ``size`` is given.

    Raises:
        FileExistsError: ``out_dir`` exists.
        VideoError subclasses: the video cannot be read, or no face in any frame.
    """
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists; refusing to overwrite it (remove it or choose another folder)")
    partial = out_dir.with_name(out_dir.name + ".partial")
    if partial.exists():
        raise FileExistsError(f"{partial} exists (left by an interrupted extraction?); remove it and run again")
    detector = create_face_detector(face_detector)
    with VideoReader(video_path) as video:
        num_frames = video.num_frames if max_frames is None else min(max_frames, video.num_frames)
        width, height = video.size
        fps = video.fps
        if detector is None:
            detected = np.ones(num_frames, dtype=bool)
            crop_boxes = np.tile([0, 0, width, height], (num_frames, 1))
        else:
            face_boxes = track_face(
                [detector(frame) for _, frame in video.iter_frames(0, num_frames)], max_gap=max_gap
            )
            detected = ~np.isnan(face_boxes).any(axis=1)
            if not detected.any():
                raise NoFaceError(
                    video_path, f"no face found in any of its {num_frames} frames; expected a video showing a face "
                    "(small faces: a larger --detect-size or --detect-upsample 1)"
                )
            face_boxes = fill_missing_boxes(smooth_boxes(face_boxes, smooth_window))
            crop_boxes = np.array([square_crop_box(b, (width, height), margin) for b in face_boxes])
        partial.mkdir(parents=True)
        try:
            for index, frame in video.iter_frames(0, num_frames):
                box = tuple(int(v) for v in crop_boxes[index])
                if size is None:
                    crop = frame[box[1]:box[3], box[0]:box[2]]
                else:
                    crop = crop_and_resize(frame[None], [box], size, interpolation)[0]
                image = Image.fromarray(np.ascontiguousarray(crop))
                target = partial / f"{index:06d}.{image_format}"
                image.save(target, quality=95) if image_format == "jpg" else image.save(target)
            meta = dict(
                source=str(Path(video_path)),
                num_frames=num_frames,
                fps=fps,
                frame_size=[width, height],
                face_detector=repr(detector) if detector is not None else "none",
                margin=margin,
                smooth_window=smooth_window,
                max_gap=max_gap,
                frames=[
                    dict(index=i, crop_box=[int(v) for v in crop_boxes[i]], face_detected=bool(detected[i]))
                    for i in range(num_frames)
                ],
            )
            (partial / "faces.json").write_text(json.dumps(meta, indent=1))
            partial.rename(out_dir)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return ExtractedFaces(out_dir=out_dir, num_frames=num_frames, num_detected=int(detected.sum()))
