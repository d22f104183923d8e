"""Face tracks: every face of a video followed through it, under a stable id.

A video with several people (interviews, talk shows, DFDC, FFIW) has one face *track* per
person. :func:`link_tracks` builds them from the detections of the looked-at frames (every
``detect_every``-th frame, the frames of :mod:`~dynsnip.data.faces.crop_policy`), in frame
order:

1. **Linking.** A detection continues a track when it overlaps the track's last box
   (IoU >= :data:`TRACK_MIN_IOU`) or lies near it (centre within
   :data:`TRACK_MAX_CENTRE_SHIFT` face sides, sides within a factor
   :data:`TRACK_MAX_SIZE_RATIO`): overlap for faces that stay put, position for faces that
   moved between two looked-at frames. Pairs are taken greedily, the closest first, one
   detection per track and one track per detection. A track unseen for more than
   :data:`TRACK_MAX_GAP_FRAMES` frames is closed: a face that appears after that is a new
   track (no re-identification by appearance: a person who leaves for longer than that and
   comes back is two tracks, each judged on its own coverage). Within a gap the crop policy
   bridges the track as it bridges the single face: snippets without the track's face
   borrow the nearest snippet's box, flagged ``face_found: false``.
2. **Ids.** New tracks get the next id in order of appearance; faces appearing in the same
   frame are numbered largest first (track 0 is usually the main face). Ids never change
   after linking; dropped tracks keep theirs, so reports can name them.
3. **Dropped tracks**, listed with their reason but never cropped or scored:

   * ``short``: detected on fewer than :data:`MIN_TRACK_DETECTIONS` looked-at frames (or,
     in a video with fewer looked-at frames, on fewer than all of them): a face seen for a
     moment (a passer-by, a false detection) is not a person the video is about;
   * ``static``: a face that never moves: over at least :data:`STATIC_MIN_FRAMES` frames
     neither its box (by more than :data:`STATIC_MAX_SHIFT` of its side) nor its pixels
     (by more than :data:`STATIC_MAX_CHANGE` grey levels, mean over a
     :data:`SIGNATURE_SIZE` x :data:`SIGNATURE_SIZE` thumbnail) change between two
     looked-at frames: a photo or poster on the wall. Judged only where the thumbnails are
     known (:func:`face_signatures`); a face on a background TV whose picture moves is not
     caught by this rule (its coverage and score are reported like any face's).

Every route computes tracks with this one function on the same detections (``predict``
on the video, ``extract-faces`` records them in ``faces.json``, which the training datasets
read back), and a track's crops come from the one crop policy given only that track's
detections (:func:`track_detections`): the training and prediction crops of a track are
the same tensor (tested).

**The swapped face.** A fake made from a real video (the manifest's ``source``) is cropped
with its source's boxes, so both share the tracks. :func:`manipulated_tracks` compares the
fake's crops of each track with the source's at the same frames: the manipulated face is
the one that differs (see the constants :data:`SWAP_MIN_DIFFERENCE` and
:data:`SWAP_RELATIVE`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from .._optional import require
from .boxes import box_iou, square_crop_box

np = require("numpy")
Image = require("PIL.Image")

# linking: overlap, or position for faces that moved between two looked-at frames
TRACK_MIN_IOU = 0.3  # the crop policy's own "same face" overlap (boxes.track_face)
TRACK_MAX_CENTRE_SHIFT = 0.75  # centre distance / mean face side: a head moves less than this between two
# looked-at frames, and two people's faces are further apart (IoU alone stops at a shift of ~0.54 sides)
TRACK_MAX_SIZE_RATIO = 1.5  # the two faces' sides differ by less than this factor
TRACK_MAX_GAP_FRAMES = 50  # 2 s at 25 fps: a face unseen for longer starts a new track when it comes back
# dropped tracks
MIN_TRACK_DETECTIONS = 3  # fewer looked-at frames with the face: "short" (a passer-by, a false detection)
STATIC_MIN_FRAMES = 50  # a face judged "static" must have been seen still for 2 s at 25 fps at least
STATIC_MAX_SHIFT = 0.02  # ... its box moving by at most 2% of its side
# ... and its 16x16 grey thumbnail changing by at most this many grey levels (mean): a pasted still face changes
# by 0.5 under dlib's grid-aligned boxes, 1.9-4.2 under the sub-pixel jitter of MTCNN's and BlazeFace's; real faces 12-58
STATIC_MAX_CHANGE = 5.0
SIGNATURE_SIZE = 16
# the swapped face of a fake: compared with its source at up to this many frames per track
SOURCE_COMPARE_FRAMES = 8
SOURCE_COMPARE_SIZE = 16  # crops averaged down to 16x16 RGB before comparing: the re-encoding noise of the
# untouched faces averages out, a changed face does not (bundled composite: noise 2.3 -> 1.2, a temporal
# pseudo-fake 4.8 -> 3.7 grey levels from 64 to 16 px)
SWAP_MIN_DIFFERENCE = 2.0  # mean absolute difference (0-255) below which a face is its source's (re-encoding noise)
SWAP_RELATIVE = 0.5  # every track differing by at least half the largest difference is manipulated

KEPT, SHORT, STATIC = "kept", "short", "static"
DROP_REASONS = {
    SHORT: "seen on too few looked-at frames (a passer-by or a false detection)",
    STATIC: "never moves: its box and pixels stay the same (a photo or poster)",
}


@dataclass
class FaceTrack:
    """One face followed through a video.

    Attributes:
        id: stable id (order of appearance; largest first within a frame).
        frames: the looked-at frames where the face was detected, increasing.
        rows: float ``(N, 15)`` detection rows (:class:`~dynsnip.data.faces.detectors.Face`),
            one per frame of ``frames``.
        row_index: for each frame, the row's position among that frame's detections.
        status: ``kept``, or why it was dropped (``short``, ``static``).
        shift: the largest box movement between two consecutive detections, in face sides.
        change: the largest thumbnail change between two consecutive detections (grey
            levels), or None when no thumbnails were given.
    """

    id: int
    frames: list[int]
    rows: "np.ndarray"
    row_index: list[int]
    status: str = KEPT
    shift: float = 0.0
    change: float | None = None

    @property
    def kept(self) -> bool:
        return self.status == KEPT

    def detections(self, looked_at: Iterable[int]) -> dict[int, "np.ndarray"]:
        """``{frame: (0 or 1, 15) rows}`` for every frame of ``looked_at``: this track's own
        detections, the input of :func:`~dynsnip.data.faces.crop_policy.snippet_crops`."""
        mine = {f: self.rows[n:n + 1] for n, f in enumerate(self.frames)}
        empty = np.zeros((0, self.rows.shape[1] if self.rows.ndim == 2 else 15))
        return {int(f): mine.get(int(f), empty) for f in looked_at}

    def summary(self) -> dict[str, Any]:
        """What reports list about the track: id, status, frames covered, a box summary."""
        boxes = self.rows[:, :4]
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        centres = (boxes[:, :2] + boxes[:, 2:4]) / 2
        out = dict(
            id=self.id, status=self.status, first_frame=self.frames[0], last_frame=self.frames[-1],
            detections=len(self.frames),
            box=dict(median=[round(float(v), 1) for v in np.median(boxes, axis=0)],
                     side_min=round(float(sides.min()), 1), side_max=round(float(sides.max()), 1),
                     centre_min=[round(float(v), 1) for v in centres.min(axis=0)],
                     centre_max=[round(float(v), 1) for v in centres.max(axis=0)]),
        )
        if not self.kept:
            out["dropped"] = DROP_REASONS[self.status]
        return out


def _side(box: "np.ndarray") -> float:
    return float(max(box[2] - box[0], box[3] - box[1], 1e-6))


def _affinity(last: "np.ndarray", box: "np.ndarray") -> float | None:
    """How well ``box`` continues a track whose last box is ``last``: larger is better; None
    when neither the overlap nor the position rule links them."""
    iou = float(box_iou(last, box[None])[0])
    side_a, side_b = _side(last), _side(box)
    shift = float(np.hypot(*(((box[:2] + box[2:4]) - (last[:2] + last[2:4])) / 2))) / ((side_a + side_b) / 2)
    near = shift <= TRACK_MAX_CENTRE_SHIFT and max(side_a, side_b) / min(side_a, side_b) <= TRACK_MAX_SIZE_RATIO
    if iou < TRACK_MIN_IOU and not near:
        return None
    return iou - shift


def face_signatures(frame: "np.ndarray", rows: "np.ndarray") -> "np.ndarray":
    """Grey ``SIGNATURE_SIZE`` x ``SIGNATURE_SIZE`` thumbnails of the faces ``rows (N, 4+)`` in
    ``frame (H, W, 3)``: float32 ``(N, SIGNATURE_SIZE**2)``, what the ``static`` rule compares."""
    rows = np.asarray(rows, dtype=np.float64)
    out = np.zeros((len(rows), SIGNATURE_SIZE * SIGNATURE_SIZE), np.float32)
    if not len(rows):
        return out
    rows = rows.reshape(len(rows), -1)
    height, width = frame.shape[:2]
    for n, row in enumerate(rows):
        x0, y0 = min(max(int(round(row[0])), 0), width - 1), min(max(int(round(row[1])), 0), height - 1)
        x1, y1 = max(min(int(round(row[2])), width), x0 + 1), max(min(int(round(row[3])), height), y0 + 1)
        # only the face turned grey (the whole 1080p frame took 2 ms per looked-at frame); PIL's filter
        # positions depend on the box's offset, so a pixel may differ by one grey level from the whole
        # grey frame's thumbnail that earlier versions made: far below STATIC_MAX_CHANGE's margins
        grey = Image.fromarray(np.ascontiguousarray(frame[y0:y1, x0:x1])).convert("L")
        out[n] = np.asarray(grey.resize((SIGNATURE_SIZE, SIGNATURE_SIZE), Image.BOX), np.float32).ravel()
    return out


def link_tracks(
    detections: Mapping[int, "np.ndarray"], signatures: Mapping[int, "np.ndarray"] | None = None
) -> list[FaceTrack]:
    """The face tracks of a video from the detections of its looked-at frames (module docstring).

    Args:
        detections: looked-at frame index -> ``(N, 4+)`` detection rows (every looked-at frame,
            faceless ones as empty arrays: they count for the ``short`` rule).
        signatures: looked-at frame index -> ``(N, S*S)`` thumbnails of those rows
            (:func:`face_signatures`), for the ``static`` rule; None: that rule is not applied.

    Returns:
        every track, ``kept`` and dropped, in id order.
    """
    tracks: list[FaceTrack] = []
    change: dict[int, float] = {}
    frames = sorted(int(f) for f in detections)
    for frame in frames:
        rows = np.asarray(detections[frame], dtype=np.float64)
        rows = rows.reshape(len(rows), -1) if rows.size else np.zeros((0, 15))
        active = [t for t in tracks if frame - t.frames[-1] <= TRACK_MAX_GAP_FRAMES]
        pairs = []
        for t in active:
            for n, row in enumerate(rows):
                if (a := _affinity(t.rows[-1, :4], row[:4])) is not None:
                    pairs.append((-a, t.id, n))
        taken_tracks: set[int] = set()
        taken_rows: set[int] = set()
        for _, tid, n in sorted(pairs):
            if tid in taken_tracks or n in taken_rows:
                continue
            taken_tracks.add(tid)
            taken_rows.add(n)
            t = tracks[tid]
            last = t.rows[-1]
            t.shift = max(t.shift, float(np.abs(rows[n, :4] - last[:4]).max()) / _side(last[:4]))
            if signatures is not None:
                before = signatures[t.frames[-1]][t.row_index[-1]]
                diff = float(np.abs(np.asarray(signatures[frame][n], np.float32) - before).mean())
                change[tid] = max(change.get(tid, 0.0), diff)
            t.frames.append(frame)
            t.row_index.append(n)
            t.rows = np.vstack([t.rows, rows[n:n + 1]])
        fresh = [n for n in range(len(rows)) if n not in taken_rows]
        areas = [(rows[n, 2] - rows[n, 0]) * (rows[n, 3] - rows[n, 1]) for n in fresh]
        for n in [fresh[i] for i in np.argsort(-np.asarray(areas), kind="stable")]:
            tracks.append(FaceTrack(len(tracks), [frame], rows[n:n + 1].copy(), [n]))
    min_detections = min(MIN_TRACK_DETECTIONS, len(frames))
    for t in tracks:
        if signatures is not None:
            t.change = change.get(t.id, 0.0)
        if len(t.frames) < min_detections:
            t.status = SHORT
        elif (t.change is not None and len(t.frames) >= 2 and t.frames[-1] - t.frames[0] >= STATIC_MIN_FRAMES
              and t.shift <= STATIC_MAX_SHIFT and t.change <= STATIC_MAX_CHANGE):
            t.status = STATIC
    return tracks


def no_track_message(tracks: Sequence[FaceTrack], looked_at: int, detect_every: int) -> str:
    """Why a video has no face track to crop: no face at all, or only dropped tracks."""
    from ..errors import no_face_message

    every = f" (every {detect_every}th frame)" if detect_every > 1 else ""
    if not tracks:
        return no_face_message(looked_at, f"frames the detector looked at{every}")
    dropped = ", ".join(f"track {t.id} ({t.status}: {DROP_REASONS[t.status]})" for t in tracks)
    return (f"faces were found in the {looked_at} frames looked at{every}, but every face track was dropped: "
            f"{dropped}; expected a face that moves and stays in the video (a photo or poster on the wall is not "
            "scored)")


def kept_tracks(tracks: Sequence[FaceTrack]) -> list[FaceTrack]:
    """The tracks that are cropped and scored."""
    return [t for t in tracks if t.kept]


def track_rules() -> dict[str, float]:
    """The constants of the linking and dropping rules, recorded with the tracks (``faces.json``)."""
    return dict(min_iou=TRACK_MIN_IOU, max_centre_shift=TRACK_MAX_CENTRE_SHIFT, max_size_ratio=TRACK_MAX_SIZE_RATIO,
                max_gap_frames=TRACK_MAX_GAP_FRAMES, min_detections=MIN_TRACK_DETECTIONS,
                static_min_frames=STATIC_MIN_FRAMES, static_max_shift=STATIC_MAX_SHIFT,
                static_max_change=STATIC_MAX_CHANGE, signature_size=SIGNATURE_SIZE)


def tracks_to_json(tracks: Sequence[FaceTrack]) -> list[dict[str, Any]]:
    """The tracks as ``faces.json`` stores them: per track its id, status, frames, and which row
    of each frame's ``detections`` it is (the rows themselves are stored once, by frame)."""
    return [dict(id=t.id, status=t.status, frames=list(map(int, t.frames)), rows=list(map(int, t.row_index)),
                 shift=round(t.shift, 4), change=None if t.change is None else round(t.change, 3)) for t in tracks]


def tracks_within(tracks: Sequence[FaceTrack], num_frames: int) -> list[FaceTrack]:
    """``tracks`` cut to the frames before ``num_frames`` (a video extracted with ``--max-frames``
    whose source's tracks cover its whole length); a track with no frame left is left out. Ids and
    statuses stay the source's, so that fake and source name their faces alike."""
    out = []
    for track in tracks:
        keep = [n for n, frame in enumerate(track.frames) if frame < num_frames]
        if keep:
            out.append(replace(track, frames=[track.frames[n] for n in keep], rows=track.rows[keep],
                               row_index=[track.row_index[n] for n in keep]))
    return out


def tracks_from_json(items: Sequence[Mapping[str, Any]], detections: Mapping[int, "np.ndarray"]) -> list[FaceTrack]:
    """The tracks :func:`tracks_to_json` wrote, with their rows taken from ``detections``."""
    out = []
    for item in items:
        frames, index = [int(f) for f in item["frames"]], [int(r) for r in item["rows"]]
        rows = np.stack([np.asarray(detections[f])[r] for f, r in zip(frames, index)])
        out.append(FaceTrack(int(item["id"]), frames, rows, index, item["status"], float(item.get("shift", 0.0)),
                             item.get("change")))
    return out


# ---------------------------------------------------------------------------- the swapped face
@dataclass(frozen=True)
class TrackChoice:
    """Which tracks of a fake are manipulated, and the evidence.

    Attributes:
        tracks: the manipulated track ids (the fake samples); empty when none differs.
        evidence: per kept track id, the mean absolute difference (0-255) between the fake's
            and the source's crops of that track at the compared frames.
        frames: per kept track id, the frames compared.
        rule: how the evidence was read.
    """

    tracks: list[int]
    evidence: dict[int, float]
    frames: dict[int, list[int]] = field(default_factory=dict)
    rule: str = ""

    def to_json(self) -> dict[str, Any]:
        return dict(tracks=list(self.tracks), evidence={str(k): v for k, v in self.evidence.items()},
                    frames={str(k): v for k, v in self.frames.items()}, rule=self.rule)


SWAP_RULE = (f"the fake's and the source's crops of each track compared at up to {SOURCE_COMPARE_FRAMES} frames "
             f"(averaged down to {SOURCE_COMPARE_SIZE}x{SOURCE_COMPARE_SIZE} RGB, mean absolute difference); "
             "manipulated: the tracks "
             f"differing by at least {SWAP_RELATIVE:g} x the largest difference and by at least "
             f"{SWAP_MIN_DIFFERENCE:g} grey levels")


def compare_frames(track: FaceTrack, count: int = SOURCE_COMPARE_FRAMES) -> list[int]:
    """Up to ``count`` of the track's detected frames, spread evenly over it."""
    if len(track.frames) <= count:
        return list(track.frames)
    picks = np.linspace(0, len(track.frames) - 1, count).round().astype(int)
    return [track.frames[i] for i in sorted(set(picks.tolist()))]


def manipulated_tracks(
    tracks: Sequence[FaceTrack],
    fake_frames: Callable[[list[int]], "np.ndarray"],
    source_frames: Callable[[list[int]], "np.ndarray"],
    frame_size: tuple[int, int],
    margin: float = 1.3,
) -> TrackChoice:
    """The tracks of a fake that differ from its source (see module docstring).

    Args:
        tracks: the source's tracks (the fake is cropped with its source's boxes).
        fake_frames, source_frames: ``frame indices -> (N, H, W, 3)`` uint8 frames of the fake
            and of its source.
        frame_size: ``(width, height)``.
        margin: the crop margin (each track's crop square at the compared frames).
    """
    from .crop import crop_and_resize

    kept = kept_tracks(tracks)
    picks = {t.id: compare_frames(t) for t in kept}
    wanted = sorted({f for frames in picks.values() for f in frames})
    evidence: dict[int, float] = {}
    if wanted:
        fake, source = fake_frames(wanted), source_frames(wanted)
        at = {f: n for n, f in enumerate(wanted)}
        size = (SOURCE_COMPARE_SIZE, SOURCE_COMPARE_SIZE)
        for t in kept:
            rows = dict(zip(t.frames, t.rows))
            boxes = [square_crop_box(rows[f][:4], frame_size, margin) for f in picks[t.id]]
            a = crop_and_resize(fake[[at[f] for f in picks[t.id]]], boxes, size, "box").astype(np.float32)
            b = crop_and_resize(source[[at[f] for f in picks[t.id]]], boxes, size, "box").astype(np.float32)
            evidence[t.id] = round(float(np.abs(a - b).mean()), 3)
    largest = max(evidence.values(), default=0.0)
    chosen = [tid for tid, d in evidence.items() if d >= SWAP_MIN_DIFFERENCE and d >= SWAP_RELATIVE * largest]
    return TrackChoice(sorted(chosen), evidence, picks, SWAP_RULE)
