"""Face detection on video frames: dlib's HOG detector (no model file) or none.

The paper pre-processes FaceForensics++ with dlib (and MTCNN for the other datasets).
dlib's frontal HOG detector ships inside the ``dlib-bin`` wheel, needs no weights file and
runs offline, so it is the default here. ``face_detector="none"`` is for input that is
already a face crop (e.g. frames written by ``dynsnip extract-faces``).

Any callable ``frame (H, W, 3) uint8 RGB -> (N, 5) float [x0, y0, x1, y1, score]`` can be
passed wherever a detector is expected.
"""
from __future__ import annotations

import functools
from typing import Callable, Union

from ._optional import require

np = require("numpy")

FaceDetector = Callable[["np.ndarray"], "np.ndarray"]
DetectorSpec = Union[str, FaceDetector, None]


@functools.lru_cache(maxsize=None)
def _dlib_hog_detector():
    """dlib's frontal-face detector, built once per process (building it takes ~1 s).

    Kept out of :class:`DlibFaceDetector` instances so that they pickle (DataLoader workers
    started with ``spawn``) and each process builds its own.
    """
    return require("dlib").get_frontal_face_detector()


class DlibFaceDetector:
    """dlib's frontal-face HOG detector, run at a fixed working resolution.

    Args:
        detect_short_side: frames are resized so that their shorter side has this many pixels
            before detection, and boxes are mapped back to the frame. The HOG window is 80x80
            px, so at the default 480 faces down to 1/6 of the frame's short side are found
            (a 120 px face in 720p); small frames (e.g. 176x144) are upsampled so their faces
            reach the window size, and large ones (1080p) are downsampled, which keeps the cost
            near 30 ms a frame instead of 60-100 ms at 720p. ``None``: native resolution.
        upsample: extra pyramid upsamplings inside dlib (finds smaller faces, ~4x slower each).
        threshold: detection score threshold passed to dlib (0 = dlib's default; lower finds
            more faces and more false positives).
    """

    def __init__(self, detect_short_side: int | None = 480, upsample: int = 0, threshold: float = 0.0):
        _dlib_hog_detector()  # fail here, not on the first frame, when dlib is missing
        self.detect_short_side = detect_short_side
        self.upsample = upsample
        self.threshold = threshold

    def __call__(self, frame: "np.ndarray") -> "np.ndarray":
        """Faces in ``frame (H, W, 3) uint8 RGB`` as ``(N, 5)``: box in frame pixels and score."""
        image = np.ascontiguousarray(frame)
        scale = 1.0
        if self.detect_short_side:
            pil = require("PIL.Image")
            height, width = image.shape[:2]
            scale = self.detect_short_side / min(height, width)
            if abs(scale - 1.0) > 1e-3:
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
            f"DlibFaceDetector(detect_short_side={self.detect_short_side}, "
            f"upsample={self.upsample}, threshold={self.threshold})"
        )


FACE_DETECTORS = ("dlib", "none")


def create_face_detector(spec: DetectorSpec = "dlib") -> FaceDetector | None:
    """A detector from a name (``"dlib"``, ``"none"``), a callable (returned as is) or None."""
    if spec is None or callable(spec):
        return spec
    if spec == "dlib":
        return DlibFaceDetector()
    if spec == "none":
        return None
    raise ValueError(f"unknown face detector {spec!r}; expected one of {FACE_DETECTORS} or a callable")


def detect_faces(frames: "np.ndarray", detector: FaceDetector) -> list["np.ndarray"]:
    """All faces of each frame.

    Args:
        frames: ``(F, H, W, 3)`` uint8 RGB (or any iterable of such frames).
        detector: see module docstring.

    Returns:
        per frame an ``(N_i, 5)`` float array ``[x0, y0, x1, y1, score]`` (``N_i`` may be 0).
    """
    return [np.asarray(detector(frame), dtype=np.float64).reshape(-1, 5) for frame in frames]
