"""Face-box geometry: one box per frame, gaps filled, jitter smoothed, squared with a margin.

Boxes are float arrays ``(..., 4)`` of ``(x0, y0, x1, y1)`` in frame pixels (x1, y1
exclusive). A frame where no face was found holds a row of NaN.

Why smoothing: a per-frame detector jitters by a few pixels from frame to frame, and
Intra-SIM's temporal differences would read that jitter as motion. Within a snippet the
crop is therefore fixed (:func:`snippet_face_box`: the mean box of the followed face in the
snippet's frames), the one crop policy of :mod:`dynsnip.data.faces.crop_policy`.
:func:`smooth_boxes` (a centred moving average) is kept for the demo's in-memory crops.
"""
from __future__ import annotations

from .._optional import require

np = require("numpy")


def largest_box(boxes: "np.ndarray") -> "np.ndarray":
    """The box of largest area among ``boxes (N, 4)``; a NaN row when ``N == 0``.

    The FaceForensics++ pre-processing keeps the largest face of a frame; so does this.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.full(4, np.nan)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return boxes[int(np.argmax(areas))]


def box_iou(box: "np.ndarray", boxes: "np.ndarray") -> "np.ndarray":
    """Intersection over union of ``box (4,)`` with each of ``boxes (N, 4)``: ``(N,)``."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def _as_boxes(boxes: "np.ndarray") -> "np.ndarray":
    """``(N, 4+)`` detections (any extra columns such as scores dropped) -> float ``(N, 4)``."""
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4))
    return boxes.reshape(len(boxes), -1)[:, :4]


def track_face(
    detections: "list[np.ndarray]", min_iou: float = 0.3, max_gap: int | None = None
) -> "np.ndarray":
    """Follow one face through consecutive frames.

    Starts from the largest face of the first frame that has one; in each later frame takes
    the detection overlapping the previous box most (IoU >= ``min_iou``), so that with two
    people the crop does not hop between them. A frame where the followed face is not found
    gets a NaN row (even if another face is there).

    Args:
        detections: per frame, an ``(N_i, 4+)`` array of boxes (extra columns ignored).
        min_iou: overlap needed to continue a track; 0.3 tolerates the motion of a face
            between adjacent frames while rejecting another person's face.
        max_gap: after this many consecutive frames without the followed face, the largest
            face of the next frame with any face starts a new track. None: never (the first
            face is followed to the end).

    Returns:
        ``(F, 4)``; NaN rows for frames without the followed face.
    """
    out = np.full((len(detections), 4), np.nan)
    previous = None
    gap = 0
    for i, frame_boxes in enumerate(detections):
        frame_boxes = _as_boxes(frame_boxes)
        if previous is None or (max_gap is not None and gap >= max_gap):
            if len(frame_boxes):
                out[i] = previous = largest_box(frame_boxes)
                gap = 0
            continue
        overlaps = box_iou(previous, frame_boxes)
        if len(frame_boxes) and overlaps.max() >= min_iou:
            out[i] = previous = frame_boxes[int(np.argmax(overlaps))]
            gap = 0
        else:
            gap += 1
    return out


def snippet_face_box(detections: "list[np.ndarray]", min_iou: float = 0.3) -> "np.ndarray":
    """One face box for one snippet from the detections of (some of) its frames, in time order.

    The largest face seen in any of the frames is followed with :func:`track_face` (never
    switching to another face inside the snippet) and its boxes are averaged: one fixed
    crop per snippet. Scores play no part: the largest face, then continuity.

    Returns:
        ``(4,)``; a NaN row when no frame has a face.
    """
    frames = [_as_boxes(d) for d in detections]
    found = [d for d in frames if len(d)]
    if not found:
        return np.full(4, np.nan)
    anchor = largest_box(np.concatenate(found))
    # seed the track with the snippet's largest face, then follow it frame by frame
    tracked = track_face([anchor[None], *frames], min_iou)[1:]
    tracked = tracked[~np.isnan(tracked).any(axis=1)]
    return tracked.mean(axis=0)


def snippet_face_boxes(
    detections: "list[np.ndarray]", snippet_len: int, min_iou: float = 0.3
) -> "np.ndarray":
    """:func:`snippet_face_box` of each snippet (detections of every frame, snippet by snippet).

    Returns:
        ``(U, 4)``; a NaN row for a snippet without any face.
    """
    if len(detections) % snippet_len:
        raise ValueError(f"{len(detections)} frames are not a multiple of snippet_len={snippet_len}")
    return np.stack([
        snippet_face_box(detections[start:start + snippet_len], min_iou)
        for start in range(0, len(detections), snippet_len)
    ])


def fill_missing_boxes(boxes: "np.ndarray") -> "np.ndarray":
    """Replace NaN rows of ``boxes (N, 4)`` by the nearest found row (the earlier on ties).

    Raises:
        ValueError: every row is NaN (no face anywhere).
    """
    boxes = np.array(boxes, dtype=np.float64)
    found = ~np.isnan(boxes).any(axis=1)
    if not found.any():
        raise ValueError("no face box to fill from: every row is missing")
    found_at = np.flatnonzero(found)
    for i in np.flatnonzero(~found):
        nearest = found_at[np.argmin(np.abs(found_at - i))]  # argmin takes the first (earlier) tie
        boxes[i] = boxes[nearest]
    return boxes


def snippet_boxes(frame_boxes: "np.ndarray", snippet_len: int) -> "np.ndarray":
    """One box per snippet: the mean of the boxes found in its frames.

    Args:
        frame_boxes: ``(U*T, 4)``, frames ordered snippet by snippet; NaN rows = no face.
        snippet_len: T.

    Returns:
        ``(U, 4)``; a NaN row for a snippet without any face.
    """
    frame_boxes = np.asarray(frame_boxes, dtype=np.float64)
    if len(frame_boxes) % snippet_len:
        raise ValueError(
            f"{len(frame_boxes)} frame boxes are not a multiple of snippet_len={snippet_len}"
        )
    grouped = frame_boxes.reshape(-1, snippet_len, 4)  # (U, T, 4)
    out = np.full((len(grouped), 4), np.nan)
    for u, boxes in enumerate(grouped):
        found = boxes[~np.isnan(boxes).any(axis=1)]
        if len(found):
            out[u] = found.mean(axis=0)
    return out


def smooth_boxes(boxes: "np.ndarray", window: int) -> "np.ndarray":
    """Centred moving average of ``boxes (N, 4)`` over ``window`` frames (found rows only).

    NaN rows stay NaN where no box lies inside the window. ``window=1`` returns a copy.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    boxes = np.asarray(boxes, dtype=np.float64)
    half = window // 2
    out = np.full_like(boxes, np.nan)
    for i in range(len(boxes)):
        near = boxes[max(0, i - half): i + half + 1]
        near = near[~np.isnan(near).any(axis=1)]
        if len(near):
            out[i] = near.mean(axis=0)
    return out


def square_crop_box(
    box: "np.ndarray", frame_size: tuple[int, int], margin: float = 1.3
) -> tuple[int, int, int, int]:
    """The square crop around a face box, enlarged by ``margin``, kept inside the frame.

    Args:
        box: ``(x0, y0, x1, y1)`` face box.
        frame_size: ``(width, height)`` of the frame.
        margin: side of the square = ``margin * max(box width, box height)``. Default 1.3 is
            the FaceForensics++ convention (its ``get_boundingbox`` scale) that the paper's
            dlib pre-processing follows: the crop holds the whole face and a little context.

    Returns:
        integer ``(x0, y0, x1, y1)``. A square that sticks out of the frame is shifted back
        inside (keeping its size, so faces near the border are not squeezed); if it is larger
        than the frame's shorter side it shrinks to that side.
    """
    width, height = frame_size
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0) * margin
    side = int(round(min(side, width, height)))
    side = max(side, 1)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(round(cx - side / 2))
    top = int(round(cy - side / 2))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return left, top, left + side, top + side
