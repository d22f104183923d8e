"""The one crop policy: which square of which frame the model sees, in training and testing.

Every route from a video to a clip (``predict``/``explain``, :class:`VideoDataset`, and the
frame folders of ``extract-faces`` read by :class:`FaceFramesDataset`) calls
:func:`snippet_crops` with the same detections and gets the same boxes, so the training
clip and the prediction clip of the same frames are the same tensor (tested).

The policy, per snippet of T consecutive frames:

1. the detector looks at the frames whose video index is a multiple of ``detect_every``
   (k; :func:`snippet_detection_frames`). The rule depends on the frame index only, not on
   which snippets were sampled, so ``extract-faces`` (which detects on every k-th frame of
   the whole video) and ``predict`` (which detects on the k-th frames its snippets need) look
   at the same frames;
2. a snippet holding such frames: the largest face among them is followed from frame to
   frame (IoU >= 0.3; :func:`~dynsnip.data.faces.boxes.snippet_face_box`) and its boxes are
   averaged: **one box per snippet**, no zoom or shift inside a snippet (Intra-SIM would
   read that as motion);
3. a snippet between two looked-at frames (only when k > T): the box is **interpolated**
   linearly, at the snippet's middle frame, between the largest face of the looked-at frame
   before it and the same face (IoU >= 0.3) in the looked-at frame after it; past the last
   looked-at frame of the video, the face of the one before it is held
   (:func:`interpolated_face_box`). Where only one side has the face (or the two sides hold
   different faces) the snippet takes the largest face of the two sides and is flagged as
   borrowed;
4. a snippet without any face borrows the box of the nearest snippet that has one (it is
   flagged, never hidden: ``face_found``); a clip without any face is an error of the caller;
5. the crop is the square of ``margin`` x the box's longer side around its centre, shifted
   inside the frame (:func:`~dynsnip.data.faces.boxes.square_crop_box`).

With k <= T every snippet holds a looked-at frame and step 3 never runs. With k > T the
detector runs on fewer frames (``extract-faces`` is that much faster, docs/video.md), and
evaluation snippets are placed so that they hold a looked-at frame
(:func:`~dynsnip.data.sampling.sample_snippets` ``align``), so that ``predict`` still
detects once per snippet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from .._optional import require
from .boxes import box_iou, fill_missing_boxes, largest_box, snippet_face_box, square_crop_box

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
        most_faces: the most faces it found in one looked-at frame (more than 1: the largest face
            of one snippet may be another person than the next one's).
    """

    boxes: "np.ndarray"
    face_found: "np.ndarray"
    frames_checked: int
    frames_with_face: int
    most_faces: int = 0

    @property
    def coverage(self) -> float:
        """Fraction of the looked-at frames with a face (1.0 when no detector ran)."""
        return self.frames_with_face / self.frames_checked if self.frames_checked else 1.0


def quantize_detections(rows: "np.ndarray") -> "np.ndarray":
    """Detection rows kept to 1/100 px, the precision ``faces.json`` stores, so that every route
    (a video now, a folder extracted earlier) computes the crops from the same numbers."""
    return np.round(np.asarray(rows, dtype=np.float64), 2)


def check_detect_every(detect_every: int) -> None:
    """Raise ValueError unless ``detect_every`` is a positive integer."""
    if int(detect_every) != detect_every or int(detect_every) < 1:
        raise ValueError(f"detect_every must be a positive integer (the detector looks at every k-th frame), "
                         f"got {detect_every}")


def snippet_detection_frames(snippet: Iterable[int], detect_every: int, num_frames: int | None = None) -> list[int]:
    """The looked-at frames (multiples of ``detect_every``) that decide one snippet's box.

    The ones inside the snippet; when it holds none (only possible for k > T), the one
    before it and the one after it (when the video, of ``num_frames`` frames, has one; None:
    unknown length, the one after is assumed to exist).
    """
    frames = [int(i) for i in snippet]
    k = int(detect_every)
    inside = sorted({i for i in frames if i % k == 0})
    if inside:
        return inside
    before, after = min(frames) // k * k, (max(frames) // k + 1) * k
    return [before] if num_frames is not None and after >= num_frames else [before, after]


def detection_frames(frame_indices: "np.ndarray", detect_every: int, num_frames: int | None = None) -> list[int]:
    """The looked-at frames that decide the boxes of the snippets ``frame_indices (U, T)``
    (:func:`snippet_detection_frames` of each), sorted, without repeats."""
    frame_indices = np.asarray(frame_indices)
    frame_indices = frame_indices.reshape(len(frame_indices), -1) if frame_indices.ndim else frame_indices.reshape(1, 1)
    return sorted({i for snippet in frame_indices for i in snippet_detection_frames(snippet, detect_every, num_frames)})


def interpolated_face_box(
    position: float, before: int, after: int | None, detections: Mapping[int, "np.ndarray"], min_iou: float = 0.3
) -> tuple["np.ndarray", bool]:
    """The face box at frame ``position`` (a snippet's middle) between looked-at frames ``before``
    and ``after`` (None: the video has no later looked-at frame), and whether it is supported
    on both sides.

    The largest face of ``before`` is looked for in ``after`` (the detection overlapping it
    most, IoU >= ``min_iou``); found on both sides, the box is the linear interpolation at
    ``position`` (True). Past the last looked-at frame, the face of
    ``before`` is held (True). Otherwise (a face on one side only, or different faces on the
    two) the largest face of either side, as within a snippet, with False; a NaN box when
    neither side has a face.
    """
    first = quantize_detections(detections[before])[:, :4]
    if after is None:
        box = largest_box(first)
        return box, not np.isnan(box).any()
    second = quantize_detections(detections[after])[:, :4]
    if len(first) and len(second):
        anchor = largest_box(first)
        overlaps = box_iou(anchor, second)
        if overlaps.max() >= min_iou:
            weight = (position - before) / (after - before)
            return (1 - weight) * anchor + weight * second[int(np.argmax(overlaps))], True
    return largest_box(np.concatenate([first, second])), False  # NaN when neither side has a face


def snippet_face(
    snippet: Iterable[int], detections: Mapping[int, "np.ndarray"], detect_every: int, num_frames: int | None = None
) -> tuple["np.ndarray", bool]:
    """One snippet's face box ``(4,)`` (NaN: no face) and whether its own evidence found it (False:
    borrowed from one side only), steps 2 and 3 of the policy (module docstring)."""
    frames = [int(i) for i in snippet]
    looked_at = snippet_detection_frames(frames, detect_every, num_frames)
    if looked_at[0] >= min(frames):  # inside the snippet
        box = snippet_face_box([quantize_detections(detections[i]) for i in looked_at])
        return box, not np.isnan(box).any()
    after = looked_at[1] if len(looked_at) > 1 else None
    return interpolated_face_box((min(frames) + max(frames)) / 2, looked_at[0], after, detections)


def snippet_crops(
    frame_indices: "np.ndarray",
    detections: Mapping[int, "np.ndarray"],
    frame_size: tuple[int, int],
    margin: float,
    detect_every: int,
    num_frames: int | None = None,
) -> SnippetCrops:
    """The crop box of each snippet (see module docstring).

    Args:
        frame_indices: ``(U, T)`` video frame indices, snippet by snippet.
        detections: frame index -> ``(N, 4+)`` detection rows, for (at least) the frames of
            :func:`detection_frames`; other entries are ignored.
        frame_size: ``(width, height)`` of the video.
        margin: crop side / face-box side.
        detect_every: k.
        num_frames: frames in the video: with k > T, whether a snippet after the last
            looked-at frame holds its face (None: every snippet has a looked-at frame after it).

    Returns:
        :class:`SnippetCrops`; ``face_found`` all False (and ``boxes`` all zero) when no
        snippet has a face: the caller raises its own "no face" error.
    """
    frame_indices = np.asarray(frame_indices).reshape(len(frame_indices), -1)
    check_detect_every(detect_every)
    face_boxes = np.full((len(frame_indices), 4), np.nan)
    face_found = np.zeros(len(frame_indices), dtype=bool)
    for u, snippet in enumerate(frame_indices):
        face_boxes[u], face_found[u] = snippet_face(snippet, detections, detect_every, num_frames)
    checked = detection_frames(frame_indices, detect_every, num_frames)
    with_face = sum(1 for i in checked if len(detections[i]))
    most = max((len(detections[i]) for i in checked), default=0)
    if np.isnan(face_boxes).any(axis=1).all():
        return SnippetCrops(np.zeros((len(frame_indices), 4), np.int64), face_found, len(checked), with_face, most)
    face_boxes = fill_missing_boxes(face_boxes)
    boxes = np.array([square_crop_box(box, frame_size, margin) for box in face_boxes], dtype=np.int64)
    return SnippetCrops(boxes, face_found, len(checked), with_face, most)
