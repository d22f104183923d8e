"""Whether the frames that are scored still show the face the detector found: honest coverage.

The detector looks at every k-th frame only (:mod:`~dynsnip.data.faces.crop_policy`), but the
model scores every frame of a snippet. A face found on the looked-at frames says nothing
about the frames in between: a video whose face shows only on the frames the detector looks
at (the others black, a cut to another shot, a title card) would report "face in 8/8 frames"
and be scored on clips that are mostly something else. So every scored frame is checked,
cheaply, against the looked-at frame it borrows its face from.

The rule (:func:`shows_face`): a scored frame *shows the face* when

1. its **anchor**, the looked-at frame it is traced back to, had a face: within a snippet,
   the looked-at frame at or before it in the snippet, else the first one after it in the
   snippet; for a snippet holding no looked-at frame (k > T), the looked-at frame before the
   snippet. ``extract-faces``, which writes every frame for snippets drawn later, anchors
   each frame on the looked-at frame at or before it;
2. and the chain of frames from the anchor to it holds: the frame's picture inside the crop
   box agrees with that of its neighbour one frame nearer the anchor, which shows the face
   itself (a looked-at frame with a face is its own anchor and shows it). Two pictures
   agree when, reduced to :data:`THUMBNAIL` x :data:`THUMBNAIL` grey thumbnails, both have
   some contrast (standard deviation >= :data:`MIN_CONTRAST` grey levels: a black, grey or
   white frame has none) and they correlate (Pearson r >= :data:`MIN_CORRELATION`); two flat
   ones (a region painted over in every frame) agree when their grey levels are equal within
   :data:`MIN_CONTRAST`, a flat one and a picture never (the black frame after a face). A
   snippet without a looked-at frame (k > T) compares its first frame with the anchor
   before it directly, across the frames in between (stricter for fast-moving faces).

Why this test: from one frame to the next (1/25 s) a face moves by a percent or two of its
crop, and a brightness change (auto exposure, a flash) scales the grey levels; neither
changes the correlation of 16x16 thumbnails much, while a black frame, a cut or another
picture in the box leaves it near 0 or undefined. Measured with ``benchmarks/face_shown.py``
(dlib, k = 4, in the face box of each looked-at frame; ``benchmarks/results/cpu_face_shown.json``):
next-frame correlations were >= 0.77 on the four real clips without cuts (1st percentile
>= 0.84), and down to -0.37 in ``qcif_mixed_sequences`` (several sequences spliced
together). Comparing with the looked-at frame directly instead of frame by frame fell to
0.48 for a moving face three frames away, hence the chain. The cost is one 16x16
resampling per frame (of every s-th pixel of the box): the clip loader and ``extract-faces``
took 1.04x and 0.98x their time without the check with dlib (same process, interleaved, 2
shared cores: within the noise), and 1.07x and 1.02x with BlazeFace's faster ``auto`` (idle
machine, bundled footage, 5 repeats; ``benchmarks/results/cpu_face_shown_auto.json``, where
next-frame correlations were >= 0.91 in BlazeFace's boxes). It does not detect a face in each
frame (that is what the looked-at frames are for); it tells "the picture where the face was
found, moving on" from "something else".

Coverage then is the fraction of the scored frames that show the face; below
``min_face_coverage`` the video is a failure (``low_face_coverage``), never a verdict.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from .._optional import require
from ..errors import LowFaceCoverageError
from .crop_policy import snippet_detection_frames

np = require("numpy")
Image = require("PIL.Image")

THUMBNAIL = 16  # side of the grey thumbnails compared (pixels)
MIN_CORRELATION = 0.5  # Pearson r between the thumbnails of a frame and of its neighbour towards the anchor
MIN_CONTRAST = 2.0  # grey-level standard deviation below which a thumbnail is a flat picture


def thumbnail(frame: "np.ndarray", box: Sequence[float]) -> "np.ndarray":
    """The ``(THUMBNAIL, THUMBNAIL)`` float32 grey picture of ``frame (H, W, 3)`` inside ``box``
    ``(x0, y0, x1, y1)`` (clipped to the frame): every s-th pixel of the box, with s such that
    about 4 x 4 of them remain per thumbnail pixel (cheap on 1080p crops), box-filtered."""
    height, width = frame.shape[:2]
    x0, y0 = min(max(0, int(box[0])), width - 1), min(max(0, int(box[1])), height - 1)
    x1, y1 = max(x0 + 1, min(width, int(box[2]))), max(y0 + 1, min(height, int(box[3])))
    step = max(1, min(x1 - x0, y1 - y0) // (4 * THUMBNAIL))
    image = Image.fromarray(np.ascontiguousarray(frame[y0:y1:step, x0:x1:step])).convert("L")
    return np.asarray(image.resize((THUMBNAIL, THUMBNAIL), Image.BOX), dtype=np.float32)


def same_picture(thumb: "np.ndarray", other: "np.ndarray") -> bool:
    """Whether two thumbnails show the same picture (module docstring, step 2): both have
    contrast and they correlate; a flat one (no contrast: a black frame) agrees only with
    another flat one of the same grey level."""
    a, b = thumb.ravel().astype(np.float64), other.ravel().astype(np.float64)
    mean_a, mean_b = a.mean(), b.mean()
    a -= mean_a
    b -= mean_b
    # Pearson r from the centred vectors (np.corrcoef and two std() took 4x as long, per written frame)
    sum_aa, sum_bb = float(a @ a), float(b @ b)
    flat_a, flat_b = sum_aa < MIN_CONTRAST**2 * a.size, sum_bb < MIN_CONTRAST**2 * b.size  # std < MIN_CONTRAST
    if flat_a or flat_b:
        return bool(flat_a and flat_b and abs(mean_a - mean_b) < MIN_CONTRAST)
    return float(a @ b) >= MIN_CORRELATION * math.sqrt(sum_aa * sum_bb)


def snippet_anchor(frame: int, snippet: Sequence[int], detect_every: int, num_frames: int | None) -> int:
    """The looked-at frame a scored ``frame`` of ``snippet`` is compared with (module docstring, step 1)."""
    looked_at = snippet_detection_frames(snippet, detect_every, num_frames)
    inside = [i for i in looked_at if min(snippet) <= i <= max(snippet)]
    if not inside:
        return looked_at[0]
    before = [i for i in inside if i <= frame]
    return before[-1] if before else inside[0]


def shows_face(
    frames: Mapping[int, "np.ndarray"],
    frame_indices: "np.ndarray",
    boxes: "np.ndarray",
    detections: Mapping[int, "np.ndarray"],
    detect_every: int,
    num_frames: int | None = None,
) -> "np.ndarray":
    """Per scored frame, whether it shows the face: bool ``(U, T)`` (module docstring).

    Args:
        frames: frame index -> ``(H, W, 3)`` uint8, for every frame of ``frame_indices`` and
            every anchor (the looked-at frames of :func:`~dynsnip.data.faces.crop_policy.detection_frames`).
        frame_indices: ``(U, T)`` the scored frames, snippet by snippet (consecutive frames).
        boxes: ``(U, 4)`` the crop box of each snippet.
        detections: looked-at frame -> ``(N, 4+)`` detection rows (empty: no face).
        detect_every, num_frames: as for :func:`~dynsnip.data.faces.crop_policy.snippet_crops`.
    """
    frame_indices = np.asarray(frame_indices).reshape(len(frame_indices), -1)
    shown = np.zeros(frame_indices.shape, dtype=bool)
    for u, snippet in enumerate(frame_indices.tolist()):
        thumbs: dict[int, np.ndarray] = {}

        def thumb(frame: int) -> "np.ndarray":
            if frame not in thumbs:
                thumbs[frame] = thumbnail(frames[frame], boxes[u])
            return thumbs[frame]

        anchors = [snippet_anchor(frame, snippet, detect_every, num_frames) for frame in snippet]
        # nearest the anchor first, so that the neighbour towards it is decided before
        for t in sorted(range(len(snippet)), key=lambda t: abs(snippet[t] - anchors[t])):
            frame, anchor = snippet[t], anchors[t]
            if not len(detections.get(anchor, ())):
                continue  # the detector found nothing there: nothing to carry over
            if frame == anchor:
                shown[u, t] = True
                continue
            step = -1 if frame > anchor else 1
            neighbour = t + step
            if 0 <= neighbour < len(snippet) and (snippet[neighbour] - anchor) * step <= 0:
                shown[u, t] = shown[u, neighbour] and same_picture(thumb(frame), thumb(snippet[neighbour]))
            else:  # the anchor lies outside the snippet (k > T): compared across the gap
                shown[u, t] = same_picture(thumb(frame), thumb(anchor))
    return shown


def not_shown_error(path: object, showing: int, scored: int, with_face: int, checked: int, minimum: float,
                    scored_name: str = "frames scored") -> LowFaceCoverageError:
    """The :class:`~dynsnip.data.errors.LowFaceCoverageError` of a video whose face the detector
    found, but which too few of the scored frames show."""
    return LowFaceCoverageError(
        path, showing / scored, minimum, scored,
        f"{scored_name} (the detector found it in {with_face} of the {checked} frames it looked at; {scored - showing} "
        f"of the {scored_name} do not show the picture it found there)", found="shown",
        advice="the frames between the looked-at ones show something else (black frames, a cut to another shot, "
               "a title card): cut the video to the part that shows the face, and see docs/video.md (face coverage)")
