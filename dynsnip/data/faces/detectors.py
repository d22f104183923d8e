"""Face detection on video frames: dlib's HOG detector, MTCNN, both (``auto``) or none.

The paper pre-processes FaceForensics++ with dlib and the other datasets with MTCNN.

* ``"dlib"``: dlib's frontal HOG detector (inside the ``dlib-bin`` wheel, no weights file).
  Fast on frontal faces; misses turned and tilted heads.
* ``"mtcnn"``: :class:`MtcnnFaceDetector`, the package's own torch MTCNN with bundled
  weights (:mod:`dynsnip.data.faces.mtcnn`): finds profile and tilted faces and gives five facial
  keypoints; batched over frames, runs on a GPU. Slower than dlib on a CPU.
* ``"auto"`` (the default, see docs/video.md for the measurement): dlib on every frame,
  MTCNN on the frames where dlib finds nothing: dlib's speed on frontal footage, MTCNN's
  coverage on hard poses.
* ``"none"``: input that is already a face crop (e.g. frames from ``dynsnip extract-faces``).

**Detections** are float arrays ``(N, 15)`` per frame, one row per face (the layout of
:class:`Face`): ``x0, y0, x1, y1`` (frame pixels, x1/y1 exclusive), ``score``, then the
five keypoints ``x, y`` (left eye, right eye, nose, left and right mouth corner, as seen in
the image), NaN where the backend gives none (dlib). :func:`detect_faces` returns this
layout for any detector. Scores of different backends are not comparable, and no code here
picks a face by score: callers keep the largest face and follow it across frames
(:mod:`dynsnip.data.faces.boxes`).

Any callable ``frame (H, W, 3) uint8 RGB -> (N, 5) or (N, 15) float`` can be passed
wherever a detector is expected; one with a ``detect_batch(frames)`` method is given all
frames of a video at once.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Sequence, Union

import torch

from .._optional import require

np = require("numpy")

FaceDetector = Callable[["np.ndarray"], "np.ndarray"]
DetectorSpec = Union[str, FaceDetector, None]

DETECTION_COLUMNS = 15  # x0 y0 x1 y1 score, then 5 keypoints (x, y)


@dataclass(frozen=True)
class Face:
    """One detected face: the documented meaning of a detection row.

    Attributes:
        box: float ``(4,)`` ``x0, y0, x1, y1`` in frame pixels (x1, y1 exclusive).
        score: the backend's confidence (dlib: SVM margin; MTCNN: probability); not
            comparable across backends.
        keypoints: float ``(5, 2)`` ``(x, y)`` of left eye, right eye, nose tip, left and
            right mouth corner (as seen in the image), or None when the backend gives none.
    """

    box: "np.ndarray"
    score: float
    keypoints: "np.ndarray | None"

    @classmethod
    def from_row(cls, row: "np.ndarray") -> "Face":
        """A :class:`Face` from one ``(5,)`` or ``(15,)`` detection row."""
        row = as_detections(row)[0]
        points = row[5:].reshape(5, 2)
        return cls(row[:4].copy(), float(row[4]), None if np.isnan(points).all() else points.copy())


def as_detections(faces: "np.ndarray") -> "np.ndarray":
    """Any ``(N, 4)``, ``(N, 5)`` or ``(N, 15)`` rows -> float ``(N, 15)`` (missing score 1, missing
    keypoints NaN)."""
    faces = np.asarray(faces, dtype=np.float64)
    if faces.size == 0:
        return np.zeros((0, DETECTION_COLUMNS))
    faces = faces.reshape(-1, faces.shape[-1])
    width = faces.shape[1]
    if width not in (4, 5, DETECTION_COLUMNS):
        raise ValueError(f"detections must have 4, 5 or {DETECTION_COLUMNS} columns, got {width}")
    out = np.full((len(faces), DETECTION_COLUMNS), np.nan)
    out[:, :width] = faces
    if width == 4:
        out[:, 4] = 1.0
    return out


@functools.lru_cache(maxsize=None)
def _dlib_hog_detector():
    """dlib's frontal-face detector, built once per process (building it takes ~1 s).

    Kept out of :class:`DlibFaceDetector` instances so that they pickle (DataLoader workers
    started with ``spawn``) and each process builds its own.
    """
    return require("dlib").get_frontal_face_detector()


def working_scale(frame_size: tuple[int, int], short_side: int | None, max_upscale: float | None) -> float:
    """The factor a frame of ``frame_size (H, W)`` is resized by before detection: its short side
    to ``short_side`` (None: 1, native resolution), upsampling by at most ``max_upscale`` (None: no cap)."""
    if not short_side:
        return 1.0
    scale = short_side / min(frame_size)
    return scale if max_upscale is None else min(scale, max(1.0, max_upscale))


class DlibFaceDetector:
    """dlib's frontal-face HOG detector, run at a fixed working resolution.

    Args:
        detect_short_side: frames are resized so that their shorter side has this many pixels
            before detection, and boxes are mapped back to the frame. The HOG window is 80x80
            px, so at the default 480 faces down to 1/6 of the frame's short side are found
            (a 120 px face in 720p); large frames (1080p) are downsampled, which keeps the cost
            near 30 ms a frame instead of 60-100 ms at 720p. ``None``: native resolution.
        max_upscale: small frames (e.g. 176x144) are upsampled towards ``detect_short_side``
            by at most this factor. At 2 the smallest face found is 40 px in the frame
            (dlib's 80 px window / 2), i.e. 1/3.6 of a 144 px short side: smaller faces carry too
            little detail for a 224 px model crop anyway, and HOG's cost grows with the
            upsampled area (the 176x144 clip at 480 px is 11x the pixels, 3-4x the time of
            2x, with the same faces found on the bundled footage). ``None``: no cap.
        upsample: extra pyramid upsamplings inside dlib (finds smaller faces, ~4x slower each).
        threshold: detection score threshold passed to dlib (0 = dlib's default; lower finds
            more faces and more false positives).
    """

    def __init__(
        self,
        detect_short_side: int | None = 480,
        upsample: int = 0,
        threshold: float = 0.0,
        max_upscale: float | None = 2.0,
    ):
        _dlib_hog_detector()  # fail here, not on the first frame, when dlib is missing
        self.detect_short_side = detect_short_side
        self.max_upscale = max_upscale
        self.upsample = upsample
        self.threshold = threshold

    def __call__(self, frame: "np.ndarray") -> "np.ndarray":
        """Faces in ``frame (H, W, 3) uint8 RGB`` as ``(N, 5)``: box in frame pixels and score."""
        image = np.ascontiguousarray(frame)
        scale = working_scale(image.shape[:2], self.detect_short_side, self.max_upscale)
        if abs(scale - 1.0) > 1e-3:
            pil = require("PIL.Image")
            height, width = image.shape[:2]
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = np.asarray(pil.fromarray(image).resize(size, pil.BILINEAR))
        rects, scores, _ = _dlib_hog_detector().run(image, self.upsample, self.threshold)
        out = np.array(
            [[r.left(), r.top(), r.right() + 1, r.bottom() + 1, s] for r, s in zip(rects, scores)],
            dtype=np.float64,
        ).reshape(-1, 5)
        out[:, :4] /= scale
        return out

    def __repr__(self) -> str:
        return (
            f"DlibFaceDetector(detect_short_side={self.detect_short_side}, max_upscale={self.max_upscale}, "
            f"upsample={self.upsample}, threshold={self.threshold})"
        )


class MtcnnFaceDetector:
    """The package's MTCNN (:mod:`dynsnip.data.faces.mtcnn`) on frames resized to a working size.

    Args:
        detect_short_side: frames are resized so that their shorter side has this many
            pixels (as for dlib; None: native resolution); boxes and keypoints are mapped back.
        max_upscale: small frames are upsampled by at most this factor (as for dlib; the
            smallest face found is then ``min_face / max_upscale`` frame pixels). Default None
            (no cap), unlike dlib: on the 176x144 clip at 1.9-2x, MTCNN's box for a frame
            detected in a batch of 4 differs by up to 4 px from the same frame detected alone
            (at 1.5, 2.1 and the uncapped 3.3x they agree to 1e-4 px); a batch-size dependence
            not yet explained, so the cap stays off where it would show. MTCNN runs only on
            dlib's misses in ``auto``, so its cost there is small.
        min_face: smallest face side searched for, in working-size pixels. 40 (1/12 of a
            480 px short side, half of dlib's 80 px window) skips the two finest pyramid levels
            of the original's 20, which are most of P-Net's cost, and still finds the faces
            these clips are about.
        thresholds: P-, R-, O-Net probability thresholds (the original's 0.6, 0.7, 0.7).
        device: where the networks run (``"cuda"`` batches the frames on the GPU).
        batch_size: frames per forward pass. None (default): 1 on the CPU, 16 on a GPU. On
            the CPU batching buys little, and one frame at a time makes each frame's boxes
            independent of which other frames share its batch (``extract-faces`` and
            ``predict`` group frames differently; see ``max_upscale`` for the dependence), so
            that training and prediction crops agree.
    """

    def __init__(
        self,
        detect_short_side: int | None = 480,
        min_face: float = 40.0,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
        max_upscale: float | None = None,
    ):
        from .mtcnn import MTCNN

        self.detect_short_side = detect_short_side
        self.max_upscale = max_upscale
        self.min_face = float(min_face)
        self.thresholds = tuple(thresholds)
        self.device = torch.device(device)
        self.batch_size = int(batch_size) if batch_size else (1 if self.device.type == "cpu" else 16)
        self.network = MTCNN.pretrained(min_face=min_face, thresholds=thresholds).to(self.device)

    def __call__(self, frame: "np.ndarray") -> "np.ndarray":
        """Faces in ``frame (H, W, 3) uint8 RGB`` as ``(N, 15)`` detection rows."""
        return self.detect_batch(np.asarray(frame)[None])[0]

    def detect_batch(self, frames: "np.ndarray | Sequence[np.ndarray]") -> list["np.ndarray"]:
        """Faces of each of ``frames (F, H, W, 3)`` uint8 RGB (same size): ``F`` arrays ``(N_i, 15)``."""
        frames = np.asarray(frames)
        out: list[np.ndarray] = []
        for start in range(0, len(frames), self.batch_size):
            chunk = torch.from_numpy(np.array(frames[start:start + self.batch_size]))  # a writable copy
            images = chunk.to(self.device).permute(0, 3, 1, 2).float()  # (B, 3, H, W)
            height, width = images.shape[-2:]
            scale = working_scale((height, width), self.detect_short_side, self.max_upscale)
            if abs(scale - 1.0) > 1e-3:
                size = (max(1, round(height * scale)), max(1, round(width * scale)))
                mode = "area" if scale < 1 else "bilinear"
                images = torch.nn.functional.interpolate(images, size=size, mode=mode)
                scale = size[0] / height  # the scale actually applied
            for faces in self.network.detect(images):
                faces = faces.double().cpu().numpy()
                faces[:, [0, 1, 2, 3, *range(5, 15)]] /= scale
                out.append(faces)
        return out

    def __repr__(self) -> str:
        return (
            f"MtcnnFaceDetector(detect_short_side={self.detect_short_side}, max_upscale={self.max_upscale}, "
            f"min_face={self.min_face}, "
            f"thresholds={self.thresholds}, device='{self.device}')"
        )


class AutoFaceDetector:
    """``primary`` (dlib) on every frame; ``fallback`` (MTCNN) on the frames where it finds nothing.

    dlib's speed on frontal footage (the fallback never runs there), MTCNN's coverage on
    turned and tilted heads. Each frame's rows come from one backend only, so boxes of the
    two detectors (which frame a face slightly differently) are never mixed within a frame.
    """

    def __init__(self, primary: FaceDetector | None = None, fallback: FaceDetector | None = None):
        self.primary = primary if primary is not None else DlibFaceDetector()
        self.fallback = fallback if fallback is not None else MtcnnFaceDetector()

    @property
    def batch_size(self) -> int:
        """Frames worth handing over at once: the fallback's (dlib runs frame by frame anyway)."""
        return int(getattr(self.fallback, "batch_size", 1) or 1)

    def __call__(self, frame: "np.ndarray") -> "np.ndarray":
        return self.detect_batch(np.asarray(frame)[None])[0]

    def detect_batch(self, frames: "np.ndarray | Sequence[np.ndarray]") -> list["np.ndarray"]:
        out = detect_faces(frames, self.primary)
        missed = [i for i, faces in enumerate(out) if len(faces) == 0]
        if missed:
            for i, faces in zip(missed, detect_faces(np.asarray(frames)[missed], self.fallback)):
                out[i] = faces
        return out

    def __repr__(self) -> str:
        return f"AutoFaceDetector(primary={self.primary!r}, fallback={self.fallback!r})"


FACE_DETECTORS = ("auto", "dlib", "mtcnn", "none")
DEFAULT_FACE_DETECTOR = "auto"


def create_face_detector(spec: DetectorSpec = DEFAULT_FACE_DETECTOR, **options) -> FaceDetector | None:
    """A detector from a name (``"auto"``, ``"dlib"``, ``"mtcnn"``, ``"none"``), a callable
    (returned as is) or None.

    ``options``: ``detect_short_side`` and ``max_upscale`` (both backends), ``upsample`` (dlib), ``min_face`` and
    ``device`` (MTCNN); options a backend does not take are ignored for it.
    """
    if spec is None or callable(spec):
        return spec
    dlib_keys = ("detect_short_side", "max_upscale", "upsample", "threshold")
    mtcnn_keys = ("detect_short_side", "max_upscale", "min_face", "device", "batch_size")
    dlib_options = {k: v for k, v in options.items() if k in dlib_keys}
    mtcnn_options = {k: v for k, v in options.items() if k in mtcnn_keys}
    if spec == "dlib":
        return DlibFaceDetector(**dlib_options)
    if spec == "mtcnn":
        return MtcnnFaceDetector(**mtcnn_options)
    if spec == "auto":
        return AutoFaceDetector(DlibFaceDetector(**dlib_options), MtcnnFaceDetector(**mtcnn_options))
    if spec == "none":
        return None
    raise ValueError(f"unknown face detector {spec!r}; expected one of {FACE_DETECTORS} or a callable")


def detect_faces(frames: "np.ndarray", detector: FaceDetector) -> list["np.ndarray"]:
    """All faces of each frame.

    Args:
        frames: ``(F, H, W, 3)`` uint8 RGB (or any iterable of such frames).
        detector: see module docstring; its ``detect_batch`` is used when it has one.

    Returns:
        per frame an ``(N_i, 15)`` float array of detection rows (see :class:`Face`;
        ``N_i`` may be 0).
    """
    batch = getattr(detector, "detect_batch", None)
    found = batch(frames) if batch is not None else [detector(frame) for frame in frames]
    return [as_detections(faces) for faces in found]
