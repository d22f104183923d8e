"""Read a frame folder written by ``dynsnip extract-faces`` through the one crop policy.

The folder holds each frame's context region and ``faces.json`` (detections of the frames
the detector looked at, each frame's region in video pixels; see
:mod:`dynsnip.data.faces.extraction`). :meth:`FaceFolder.clip_frames` calls the same
:func:`~dynsnip.data.faces.crop_policy.snippet_crops` as ``predict`` and cuts each snippet's crop
out of the regions, so the clip equals the one ``predict`` makes from the video.

A folder without ``faces.json`` is a folder of ready crops (any numbered frame images, see
:mod:`dynsnip.data.datasets`), and so is one whose ``faces.json`` is a record without a
``crop_policy`` (the crops written by extract-faces before the crop policy): their frames are
used whole. A ``faces.json`` that exists but cannot be read (truncated, not JSON, not a record,
another crop-policy format, an entry missing, ``samples`` naming a face track it does not hold,
``detect_every`` below 1, a value no extraction writes: a NaN face box, a region outside the
frame, a ``scale`` or ``margin`` that is not positive) or whose frame images are not all there
(or, when cut, not of their region's size) fails
that video with :class:`~dynsnip.data.errors.FaceFolderError` (reason ``bad_face_folder``),
naming the folder, what is wrong and how to rebuild it: training skips it and evaluation
lists it, never reads its regions as crops. Snippets drawn where the detector found no face
(the face shows in other frames) fail as ``no_face`` (:class:`~dynsnip.data.errors.NoFaceError`),
as ``predict`` fails them: the folder is not broken, and is not to be rebuilt.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from .._optional import require
from ..errors import FaceFolderError, FrameGapError, NoFaceError
from .crop import crop_and_resize
from .crop_policy import SnippetCrops, snippet_crops
from .extraction import CROP_POLICY, read_detections, region_image_size
from .tracks import FaceTrack, tracks_from_json

np = require("numpy")
Image = require("PIL.Image")

META_FILE = "faces.json"
# how to rebuild a broken folder: extract-faces keeps an existing folder whose faces.json records the video,
# and replaces one without a readable faces.json only with --replace-stale
REBUILD = ("delete the folder and run dynsnip extract-faces again for its video (it skips a folder that is "
           "already there)")
REBUILD_UNREADABLE = ("run dynsnip extract-faces again for its video with --replace-stale (or delete the folder "
                      "first)")
_NUMBER = re.compile(r"(\d+)$")


def read_meta(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """``folder``'s ``faces.json`` as a dict, or None when there is none (a folder of ready crops).

    Raises:
        FaceFolderError: ``faces.json`` exists but is not a regular file, not UTF-8 JSON (the
            message gives the line and column of the error), or not a JSON object.
        OSError: it cannot be read (permissions, I/O error).
    """
    folder = Path(folder)
    meta_file = folder / META_FILE
    if not os.path.lexists(meta_file):
        return None
    if not meta_file.is_file():  # a directory, FIFO or broken link: never opened (a FIFO would hang)
        raise FaceFolderError(folder, f"{META_FILE} is not a regular file (a directory, FIFO or broken link); "
                                      f"expected the {META_FILE} extract-faces writes: {REBUILD_UNREADABLE}")
    data = meta_file.read_bytes()
    try:
        meta = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise FaceFolderError(folder, f"{META_FILE} is not UTF-8 text (byte {err.start} of {len(data)}); expected "
                                      f"the JSON record extract-faces writes: {REBUILD_UNREADABLE}") from None
    except json.JSONDecodeError as err:
        text = data.strip()
        cut = (", and the file ends in mid-record: truncated (an interrupted copy, a full disk?)"
               if text.startswith(b"{") and not text.endswith(b"}") else "")
        raise FaceFolderError(folder, f"{META_FILE} is not valid JSON: {err.msg} (line {err.lineno}, column "
                                      f"{err.colno} of its {len(data)} bytes){cut}; expected the JSON record "
                                      f"extract-faces writes: {REBUILD_UNREADABLE}") from None
    if not isinstance(meta, dict):
        raise FaceFolderError(folder, f"{META_FILE} holds a JSON {type(meta).__name__}, not an extract-faces record "
                                      f"(a JSON object); {REBUILD_UNREADABLE}")
    return meta


def _frame_names(numbers: list[int], suffix: str, limit: int = 5) -> str:
    shown = ", ".join(f"{n:06d}{suffix}" for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit} more" if len(numbers) > limit else "")


class FaceFolder:
    """One extracted video: its ``faces.json`` and frame images.

    Args:
        folder: the video's output folder of ``extract-faces``.
        frames: its frame images in order (``frames[i]`` is frame ``i``).
        meta: its ``faces.json`` when already read (:func:`read_meta`).

    Raises:
        FaceFolderError: ``faces.json`` is missing, unreadable, of another format (an older
            extraction) or incomplete, or the frame images are not one per frame it lists.
    """

    def __init__(self, folder: str | os.PathLike[str], frames: list[Path], meta: dict[str, Any] | None = None):
        self.folder = Path(folder)
        if meta is None:
            meta = read_meta(self.folder)
            if meta is None:
                raise FaceFolderError(self.folder, f"no {META_FILE}; expected the record extract-faces writes next "
                                                   f"to the frames: {REBUILD}")
        if meta.get("crop_policy") != CROP_POLICY:
            raise FaceFolderError(self.folder, f"{META_FILE} is of crop policy {meta.get('crop_policy')!r}, expected "
                                               f"{CROP_POLICY!r} (written by another version of dynsnip): {REBUILD}")
        self.frames = frames
        try:
            self.num_frames = int(meta["num_frames"])
            self.frame_size = tuple(int(v) for v in meta["frame_size"])
            self.margin = float(meta["margin"])
            self.detect_every = int(meta["detect_every"])
            self.scale = None if meta.get("scale") is None else float(meta["scale"])
            # frames after a cut or pause in the video (recorded since dynsnip records them; none for older folders)
            self.time_gaps = frozenset(int(i) for i in meta.get("time_gaps") or ())
            self.detections = read_detections(meta)
            # read as floats, checked (_check_values), then kept as the integer pixels extract-faces writes
            regions = np.array([f["region"] for f in meta["frames"]], dtype=np.float64).reshape(-1, 4)
            # face tracks (extract-faces --faces all); None for folders written without them
            self.tracks: list[FaceTrack] | None = (tracks_from_json(meta["tracks"], self.detections)
                                                   if meta.get("tracks") is not None else None)
            self.samples: list[int] | None = ([int(t) for t in meta["samples"]["tracks"]]
                                              if meta.get("samples") is not None else None)
        except KeyError as err:
            raise FaceFolderError(self.folder, f"{META_FILE} has no {err.args[0]!r} entry; expected the complete "
                                               f"record extract-faces writes: {REBUILD}") from None
        except (TypeError, ValueError, IndexError, AttributeError) as err:
            raise FaceFolderError(self.folder, f"{META_FILE} holds a malformed record ({type(err).__name__}: {err}); "
                                               f"expected the record extract-faces writes: {REBUILD}") from None
        if len(regions) != self.num_frames:
            raise FaceFolderError(self.folder, f"{META_FILE} lists {self.num_frames} frames but gives "
                                               f"{len(regions)} frame regions; expected one per frame: {REBUILD}")
        self._check_record()
        self._check_values(regions)
        self.regions = regions.astype(np.int64)
        self._check_frames()

    def _bad(self, what: str) -> FaceFolderError:
        return FaceFolderError(self.folder, f"{META_FILE} {what}; expected the record extract-faces writes: {REBUILD}")

    def _check_record(self) -> None:
        """Raise :class:`FaceFolderError` for a record no extraction writes, which reading would
        otherwise fail on mid-run with a raw error (a KeyError or ValueError ends a whole
        train or evaluate run; this fails the one video, ``bad_face_folder``): ``detect_every``
        below 1, or ``samples`` naming a face track the record does not hold."""
        if self.detect_every < 1:
            raise self._bad(f"gives detect_every {self.detect_every}, below 1 (the detector looks at every k-th "
                            "frame)")
        if self.num_frames < 1:
            raise self._bad(f"lists {self.num_frames} frames")
        ids = [t.id for t in self.tracks or []]
        if len(set(ids)) != len(ids):
            raise self._bad(f"lists face track ids {ids}, not one track per id")
        if self.samples is not None:
            unknown = [t for t in self.samples if t not in ids]
            if not self.samples:
                raise self._bad("names no sample face tracks")
            if unknown:
                raise self._bad(f"names sample face tracks {unknown} it does not hold (tracks: {ids})")

    def _check_values(self, regions: "np.ndarray") -> None:
        """Raise :class:`FaceFolderError` naming the field for values no extraction writes, which
        the crops would otherwise be computed from: a NaN face box would make every snippet
        borrow, a region outside the frame or a scale of 0 would be cut as some other part of
        the frame (``bad_face_folder`` instead: fail closed, docs/video.md).

        Checked: ``frame_size`` (two positive sides), ``margin`` and ``scale`` (positive, finite;
        ``scale`` may be null), each frame's ``region`` (whole pixels inside the frame, not
        empty) and each detection's box (finite, not empty, overlapping the frame)."""
        if len(self.frame_size) != 2 or min(self.frame_size) < 1:
            raise self._bad(f"gives frame_size {list(self.frame_size)}, expected [width, height] in pixels")
        if not math.isfinite(self.margin) or self.margin <= 0:
            raise self._bad(f"gives margin {self.margin}, expected a positive number (crop side / face box side)")
        if self.scale is not None and (not math.isfinite(self.scale) or self.scale <= 0):
            raise self._bad(f"gives scale {self.scale}, expected a positive factor (or null: the video's "
                            "resolution)")
        width, height = self.frame_size
        bad = ~np.isfinite(regions).all(axis=1)
        with np.errstate(invalid="ignore"):
            bad |= (regions != np.round(regions)).any(axis=1)
            bad |= (regions[:, 0] < 0) | (regions[:, 1] < 0) | (regions[:, 2] > width) | (regions[:, 3] > height)
            bad |= (regions[:, 2] <= regions[:, 0]) | (regions[:, 3] <= regions[:, 1])
        if bad.any():
            frame = int(np.flatnonzero(bad)[0])
            raise self._bad(f"gives frame {frame} the region {regions[frame].tolist()} ({int(bad.sum())} frame(s) "
                            f"so), expected whole pixels [x0, y0, x1, y1] inside its {width}x{height} frame_size")
        for index, rows in sorted(self.detections.items()):
            if not 0 <= index < self.num_frames:
                raise self._bad(f"gives detections of frame {index}, outside its {self.num_frames} frames")
            boxes = rows[:, :4]
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(boxes).all(axis=1) | (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
                bad |= (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0) | (boxes[:, 0] >= width) | (boxes[:, 1] >= height)
                # a face partly outside the frame is real; one whose box is more than twice the frame is no detection
                longest = 2 * max(width, height)
                bad |= (boxes[:, 2] - boxes[:, 0] > longest) | (boxes[:, 3] - boxes[:, 1] > longest)
            if bad.any():
                raise self._bad(f"gives frame {index} the detection box {boxes[bad][0].tolist()}, expected a finite "
                                f"[x0, y0, x1, y1] face box overlapping its {width}x{height} frame_size, at most "
                                "twice its side")

    def _check_frames(self) -> None:
        """Raise :class:`FaceFolderError` unless :attr:`frames` are the images of frames
        ``0 .. num_frames - 1``, one each (``frames[i]`` is read as frame ``i``)."""
        numbers = [int(m.group(1)) if (m := _NUMBER.search(p.stem)) else -1 for p in self.frames]
        if numbers == list(range(self.num_frames)):
            return
        suffix = self.frames[0].suffix if self.frames else ".png"
        missing = sorted(set(range(self.num_frames)) - set(numbers))
        extra = sorted(n for n in set(numbers) if not 0 <= n < self.num_frames)
        problems = []
        if missing:
            problems.append(f"frame image(s) {_frame_names(missing, suffix)} missing")
        if extra:
            problems.append(f"frame image(s) {_frame_names(extra, suffix)} beyond its {self.num_frames} frames")
        raise FaceFolderError(
            self.folder,
            f"{len(self.frames)} frame images, {META_FILE} lists {self.num_frames} "
            f"({_frame_names([0], suffix)} to {_frame_names([self.num_frames - 1], suffix)})"
            + (f": {'; '.join(problems)}" if problems else "")
            + f"; expected one image per frame (lost in a copy or a sync?): {REBUILD}",
        )

    @staticmethod
    def recorded_coverage(folder: str | os.PathLike[str]) -> float | None:
        """The ``face_coverage`` extract-faces recorded for ``folder`` (the fraction of the frames
        its detector looked at that showed a face), or None when it recorded none (or its
        ``faces.json`` cannot be read: reading the folder fails with the reason)."""
        try:
            value = (read_meta(folder) or {}).get("face_coverage")
        except (OSError, FaceFolderError):
            return None
        return float(value) if isinstance(value, (int, float)) else None

    @staticmethod
    def sample_tracks(folder: str | os.PathLike[str]) -> list[int] | None:
        """The face tracks of ``folder`` that are training samples (``faces.json``'s ``samples``:
        every kept track, or a fake's manipulated ones), without reading its frames; None for a
        folder written without face tracks (its largest face is the sample), or whose
        ``faces.json`` cannot be read (reading the folder then fails with the reason)."""
        try:
            samples = (read_meta(folder) or {}).get("samples")
            return [int(t) for t in samples["tracks"]] if isinstance(samples, dict) else None
        except (OSError, FaceFolderError, KeyError, TypeError, ValueError):
            return None

    def check_consecutive(self, indices: "np.ndarray | Any") -> None:
        """Raise :class:`~dynsnip.data.errors.FrameGapError` when a snippet (a row of frame
        ``indices``) spans a cut or a pause of the video the folder was extracted from
        (:meth:`~dynsnip.data.decode.VideoReader.time_gaps`): consecutive file numbers, but not
        consecutive in time."""
        from ..sampling import first_jump

        if (jump := first_jump(indices, lambda a, b: b in self.time_gaps)) is None:
            return
        u, row, a, b = jump
        raise FrameGapError(
            self.folder,
            f"snippet {u} (frames {row[0]}-{row[-1]}) spans a jump in time: the video was cut or paused "
            f"between frames {a} and {b} (faces.json's time_gaps); a snippet must be consecutive frames, "
            "since the jump would be scored as motion. Leave this folder out, or cut its video at the "
            "jump and extract the parts",
        )

    @staticmethod
    def open(folder: str | os.PathLike[str], frames: list[Path]) -> "FaceFolder | None":
        """The folder read through the crop policy, or None for a folder of ready crops (the frames
        are used whole): one without ``faces.json``, or whose ``faces.json`` is a record without
        a ``crop_policy`` (written by extract-faces before the crop policy, when it saved crops).

        Raises:
            FaceFolderError: ``faces.json`` exists but cannot be read, or the folder is broken
                (see :class:`FaceFolder`): the video fails with its reason, never read as crops.
        """
        meta = read_meta(folder)
        if meta is None or "crop_policy" not in meta:
            return None
        return FaceFolder(folder, frames, meta)

    def track(self, track_id: int) -> FaceTrack:
        """The face track ``track_id`` (KeyError naming the folder when it has no such track)."""
        for track in self.tracks or []:
            if track.id == track_id:
                return track
        raise KeyError(f"{self.folder}/faces.json has no face track {track_id} "
                       f"(tracks: {[t.id for t in self.tracks or []]})")

    def clip_frames(
        self, frame_indices: "np.ndarray", size: tuple[int, int], interpolation: str, track: int | None = None
    ) -> tuple["np.ndarray", SnippetCrops]:
        """The crops of ``frame_indices (U, T)``: ``(U*T, H, W, 3)`` uint8 and the policy's decision
        (``track``: of that face track, given only its detections, as ``predict`` crops it;
        None: the largest face)."""
        crops = self.snippet_boxes(frame_indices, track)
        return self.cut(frame_indices, crops, size, interpolation), crops

    def snippet_boxes(self, frame_indices: "np.ndarray", track: int | None = None) -> SnippetCrops:
        """The crop policy's decision for the snippets ``frame_indices (U, T)`` (``track``: given only
        that face track's detections; whole frames for a folder extracted without a face detector)."""
        frame_indices = np.asarray(frame_indices)
        if track is not None:
            return snippet_crops(frame_indices, self.track_detections(track), self.frame_size, self.margin,
                                 self.detect_every, self.num_frames)
        if self.detections:
            return snippet_crops(frame_indices, self.detections, self.frame_size, self.margin, self.detect_every,
                                 self.num_frames)
        width, height = self.frame_size  # extracted with face_detector="none": whole frames
        boxes = np.tile(np.array([0, 0, width, height], np.int64), (len(frame_indices), 1))
        return SnippetCrops(boxes, np.ones(len(frame_indices), bool), 0, 0)

    def track_detections(self, track: int) -> dict[int, "np.ndarray"]:
        """Looked-at frame -> that face track's own detection rows (0 or 1 per frame)."""
        return self.track(track).detections(range(0, self.num_frames, self.detect_every))

    def _read_image(self, frame: int) -> "np.ndarray":
        """Frame ``frame``'s stored region ``(h, w, 3)`` uint8; :class:`FaceFolderError` naming the image
        and how to rebuild the folder when it cannot be read (cut short by an interrupted copy or sync,
        overwritten, deleted since the folder was opened), as for an image missing."""
        path = self.frames[frame]
        try:
            with Image.open(path) as image:
                return np.asarray(image.convert("RGB"))
        except OSError as err:  # PIL's UnidentifiedImageError and "image file is truncated" included
            raise FaceFolderError(
                self.folder, f"frame image {path.name} cannot be read ({type(err).__name__}: {err}); expected the "
                             f"image extract-faces wrote (damaged in a copy or a sync?): {REBUILD}") from None

    def _check_region_image(self, frame: int, shape: tuple[int, int]) -> None:
        """Raise :class:`FaceFolderError` unless frame ``frame``'s image is the size of its recorded
        region (times ``scale``, rounded as extract-faces resizes it): else the region's
        coordinates would cut another part of the picture than the one recorded."""
        expected = region_image_size(self.regions[frame], self.scale)
        if tuple(shape) != expected:
            raise self._bad(f"gives frame {frame} the region {self.regions[frame].tolist()}"
                            + (f" at scale {self.scale}" if self.scale is not None else "")
                            + f", a {expected[1]}x{expected[0]} image, but {self.frames[frame].name} is "
                              f"{shape[1]}x{shape[0]} (the record and the frames of different extractions?)")

    def _check_inside(self, u: int, frame: int, crops: SnippetCrops) -> None:
        """Raise :class:`FaceFolderError` when snippet ``u``'s crop reaches outside frame ``frame``'s
        stored region: the crop cut would not be ``predict``'s (the part inside, or another part).
        extract-faces stores regions that hold every box a snippet can get, borrowed ones too
        (:func:`~dynsnip.data.faces.extraction.borrowed_regions`); folders written before it did
        may not hold a box borrowed from far away."""
        x0, y0, x1, y1 = (int(v) for v in crops.boxes[u])
        r0, s0, r1, s1 = (int(v) for v in self.regions[frame])
        if r0 <= x0 and s0 <= y0 and x1 <= r1 and y1 <= s1:
            return
        how = "" if crops.face_found[u] else ", borrowed from another snippet (no face in its own frames)"
        raise self._bad(f"gives frame {frame} the region {[r0, s0, r1, s1]}, which does not hold the crop "
                        f"{[x0, y0, x1, y1]} of a snippet holding it{how}: the crop cut would not be "
                        "predict's (written by an older extract-faces, whose regions did not hold every "
                        "borrowed box, or with another --snippet-len?); delete the folder and run dynsnip "
                        "extract-faces again for its video")

    def cut(self, frame_indices: "np.ndarray", crops: SnippetCrops, size: tuple[int, int],
            interpolation: str) -> "np.ndarray":
        """Each snippet's crop (``crops.boxes[u]``) out of its frames' regions: ``(U*T, H, W, 3)`` uint8.

        Raises:
            NoFaceError: the detector looked at frames of the snippets and found the face in none
                (the face is in other frames of the video): no crop to cut, as ``predict`` fails
                such a clip (``no_face``); the folder itself is fine.
        """
        if crops.frames_checked and crops.frames_with_face == 0:
            every = f" (every {self.detect_every}th frame)" if self.detect_every > 1 else ""
            raise NoFaceError(self.folder, f"no face in any of the {crops.frames_checked} sampled frames the detector "
                                           f"looked at{every}: faces.json records the face in other frames; expected "
                                           "snippets showing a face: such a clip is neither trained on nor scored, "
                                           "as predict fails a video whose sampled frames show none")
        frame_indices = np.asarray(frame_indices)
        out = np.empty((frame_indices.size, *size, 3), dtype=np.uint8)
        for n, (u, index) in enumerate(np.ndindex(*frame_indices.shape)):
            frame = int(frame_indices[u, index])
            region = self._read_image(frame)
            self._check_region_image(frame, region.shape[:2])
            self._check_inside(u, frame, crops)
            local = (crops.boxes[u] - np.tile(self.regions[frame][:2], 2)).astype(np.float64)
            if self.scale is not None:
                local = np.round(local * self.scale)
            out[n] = crop_and_resize(region[None], [tuple(local)], size, interpolation)[0]
        return out
