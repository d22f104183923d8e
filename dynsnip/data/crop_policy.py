"""The one crop policy: which square of which frame the model sees, in training and testing.

Every route from a video to a clip (``predict``/``explain``, :class:`VideoDataset`, and the
frame folders of ``extract-faces`` read by :class:`FaceFramesDataset`) calls
:func:`snippet_crops` with the same detections and gets the same boxes, so the training
clip and the prediction clip of the same frames are the same tensor (tested).

The policy, per snippet of T consecutive frames:

1. the detector looks at the snippet's frames whose video index is a multiple of
   ``detect_every`` (k; :func:`detection_frames`). The rule depends on the frame index only,
   not on which snippets were sampled, so ``extract-faces`` (which detects on every k-th
   frame of the whole video) and ``predict`` (which detects on the k-th frames of its
   snippets) look at the same frames. k <= T, so every snippet has at least one;
2. the largest face among those frames is followed from frame to frame (IoU >= 0.3;
   :func:`~dynsnip.data.boxes.snippet_face_box`) and its boxes are averaged: **one box per
   snippet**, no zoom or shift inside a snippet (Intra-SIM would read that as motion);
3. a snippet without any face borrows the box of the nearest snippet that has one (it is
   flagged, never hidden: ``face_found``); a clip without any face is an error of the caller;
4. the crop is the square of ``margin`` x the box's longer side around its centre, shifted
   inside the frame (:func:`~dynsnip.data.boxes.square_crop_box`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from ._optional import require
from .boxes import fill_missing_boxes, snippet_face_box, square_crop_box

np = require("numpy")

DEFAULT_DETECT_EVERY = 4
# below this fraction of looked-at frames with a face, a video is a failure (low_face_coverage):
# then more than half of the crops would be borrowed from other frames
DEFAULT_MIN_FACE_COVERAGE = 0.5


@dataclass(frozen=True)
class SnippetCrops:
    """What :func:`snippet_crops` decided for one clip.

    Attributes:
        boxes: int64 ``(U, 4)`` square crop ``(x0, y0, x1, y1)`` of each snippet, frame pixels.
        face_found: bool ``(U,)``; False where the snippet borrowed its box.
        frames_checked: frames the detector looked at (``(U*T)/k`` or so).
        frames_with_face: of those, frames where it found a face.
    """

    boxes: "np.ndarray"
    face_found: "np.ndarray"
    frames_checked: int
    frames_with_face: int

    @property
    def coverage(self) -> float:
        """Fraction of the looked-at frames with a face (1.0 when no detector ran)."""
        return self.frames_with_face / self.frames_checked if self.frames_checked else 1.0


def quantize_detections(rows: "np.ndarray") -> "np.ndarray":
    """Detection rows kept to 1/100 px, the precision ``faces.json`` stores, so that every route
    (a video now, a folder extracted earlier) computes the crops from the same numbers."""
    return np.round(np.asarray(rows, dtype=np.float64), 2)


def check_detect_every(detect_every: int, snippet_len: int) -> None:
    """Raise ValueError unless ``1 <= detect_every <= snippet_len``."""
    if not 1 <= int(detect_every) <= int(snippet_len):
        raise ValueError(
            f"detect_every must be between 1 and the snippet length T={snippet_len} (so that every snippet "
            f"has a frame the detector looks at), got {detect_every}"
        )


def detection_frames(frame_indices: Iterable[int], detect_every: int) -> list[int]:
    """The frames among ``frame_indices`` the detector looks at: multiples of ``detect_every``
    (sorted, without repeats)."""
    return sorted({int(i) for i in frame_indices if int(i) % detect_every == 0})


def snippet_crops(
    frame_indices: "np.ndarray",
    detections: Mapping[int, "np.ndarray"],
    frame_size: tuple[int, int],
    margin: float,
    detect_every: int,
) -> SnippetCrops:
    """The crop box of each snippet (see module docstring).

    Args:
        frame_indices: ``(U, T)`` video frame indices, snippet by snippet.
        detections: frame index -> ``(N, 4+)`` detection rows, for (at least) the frames of
            :func:`detection_frames`; other entries are ignored.
        frame_size: ``(width, height)`` of the video.
        margin: crop side / face-box side.
        detect_every: k.

    Returns:
        :class:`SnippetCrops`; ``face_found`` all False (and ``boxes`` all zero) when no
        snippet has a face: the caller raises its own "no face" error.
    """
    frame_indices = np.asarray(frame_indices).reshape(len(frame_indices), -1)
    check_detect_every(detect_every, frame_indices.shape[1])
    face_boxes = np.full((len(frame_indices), 4), np.nan)
    checked = detection_frames(frame_indices.flatten(), detect_every)
    for u, snippet in enumerate(frame_indices):
        looked_at = [quantize_detections(detections[int(i)]) for i in snippet if int(i) % detect_every == 0]
        face_boxes[u] = snippet_face_box(looked_at)
    face_found = ~np.isnan(face_boxes).any(axis=1)
    with_face = sum(1 for i in checked if len(detections[i]))
    if not face_found.any():
        return SnippetCrops(np.zeros((len(frame_indices), 4), np.int64), face_found, len(checked), with_face)
    face_boxes = fill_missing_boxes(face_boxes)
    boxes = np.array([square_crop_box(box, frame_size, margin) for box in face_boxes], dtype=np.int64)
    return SnippetCrops(boxes, face_found, len(checked), with_face)
