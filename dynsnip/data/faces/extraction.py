"""Write the faces of every frame of a video once (``dynsnip extract-faces``).

Training samples new snippets every epoch; seeking in long-GOP videos and detecting faces
each time is slow, so the usual FaceForensics++ workflow crops the faces once into a folder
per video and trains from those (:class:`~dynsnip.data.datasets.FaceFramesDataset`).

The crop itself is *not* decided here: a snippet's crop depends on which snippet it is
(one box per snippet, :mod:`dynsnip.data.faces.crop_policy`), and snippets are drawn at training
time. So each frame is saved as a **context region**: the part of the frame holding every
crop that the crop policy can give a snippet containing that frame (the union of the crops
of the T windows of T frames that contain it, padded so resampling filters see the same
neighbouring pixels), at the video's resolution. ``faces.json`` stores the detections the
policy needs; the dataset calls the same :func:`~dynsnip.data.faces.crop_policy.snippet_crops` as
``predict``, and cuts the crop out of the regions: the training clip is the prediction
clip, pixel for pixel (tested). A snippet without the face borrows the box of the nearest
sampled snippet with it, which may lie anywhere in the video: once every detection is known,
the frames of windows without the face (of the largest face, and of each sample face track)
get regions that also hold every crop of that face in the video
(:func:`borrowed_regions`), and are written again; so a borrowed crop is ``predict``'s too.
A crop outside its frame's region (a folder written before) fails the folder when cut,
never cut as another crop.

Output of one video, ``out_dir/``:

* ``000000.png``, ``000001.png``, ...: the context region of each frame, named by the
  frame's index in the video (consecutive, so snippets can be sampled from the folder);
* ``faces.json``: source video and its record (path, size, time, hash of its ends:
  :mod:`~dynsnip.data.faces.folder_source`, which tells whether a folder holds a given video),
  frame count (and the video's, and ``max_frames``), fps, frame size, margin, ``detect_every``,
  ``snippet_len``, detector, ``scale``, ``image_format``, ``faces`` (the settings
  :func:`settings_differences` compares when a folder exists),
  coverage (frames looked at / with a face; frames that show the face, the
  ``face_coverage``: :mod:`~dynsnip.data.faces.face_shown`), the detections of the
  looked-at frames (rows of :class:`~dynsnip.data.faces.Face`: box, score, keypoints), and
  per frame its region in video pixels.

One decoding pass: every frame is decoded once; the detector runs on every
``detect_every``-th frame as it comes, and a frame's region is written as soon as the
detections of the windows holding it are known (:class:`RegionStream`; a few frames later,
more where faces are missing; the frames near missing faces are written again at the end,
:func:`borrowed_regions`). Only the frames waiting for their region are held in memory,
at most :data:`MAX_BUFFERED_BYTES`; beyond that the oldest are dropped and decoded again at
the end. The folder is written under a temporary name (``<name>.partial``) and renamed when
complete, so an interrupted run never leaves a folder that looks finished; an existing
folder is replaced only when asked (``replace``), once the new one is complete.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import threading
from collections import deque
from concurrent.futures import CancelledError
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .._optional import require
from .boxes import square_crop_box
from .crop import crop_and_resize
from .crop_policy import (
    DEFAULT_DETECT_EVERY,
    DEFAULT_MIN_FACE_COVERAGE,
    check_detect_every,
    quantize_detections,
    snippet_detection_frames,
    snippet_face,
)
from ...cpus import available_cpus
from ..decode import VideoReader
from ..errors import LowFaceCoverageError, NoFaceError, VideoError, no_face_message
from .detectors import DEFAULT_FACE_DETECTOR, DetectorSpec, create_face_detector, detect_faces, runs_on_gpu
from .face_shown import not_shown_error, same_picture, thumbnail
from .folder_swap import exchange_paths
from .folder_source import OWNER_FILE, PARTIAL_SUFFIX, source_record
from .png_writer import write_png
from .tracks import (
    face_signatures,
    kept_tracks,
    link_tracks,
    manipulated_tracks,
    no_track_message,
    track_rules,
    tracks_from_json,
    tracks_to_json,
    tracks_within,
)

np = require("numpy")
Image = require("PIL.Image")

CROP_POLICY = "snippet-box-v1"  # faces.json format: regions + detections for crop_policy.snippet_crops
DETECTION_BATCH = 16
# decoded frames held while their regions wait for detections (beyond it: decoded again at the end)
MAX_BUFFERED_BYTES = 512 * 2**20
# pipelined extraction (:class:`_Pipeline`): detection batches submitted to the detector thread and not yet
# taken (2 batches of 8: at most 24 looked-at frames held for detection, about the 20 of the earlier 4 batches of 4,
# and as fast: see PIPELINE_DETECTION_BATCH), and region writes queued for the writer thread
DETECTION_BATCHES_IN_FLIGHT = 2
# looked-at frames per batch, pipelined, for detectors whose rows do not depend on it. 8 with the decoding thread
# helping (docs/video.md): regions on tmpfs, bundled footage 2.24x decode-only against 2.37x with 4 and 2.33x with 16,
# HD pair 1.49x against 1.70x and 1.83x; on this machine's disk, where creating the files dominates, 2.54x against
# 2.58x and 1.68x against 1.71x (medians of 4-12 interleaved rounds; 4 batches in flight). With 2 in flight (the
# default): 2.33x against 2.46x (4 x 4) on the bundled footage, 1.44x against 1.58x on the HD pair (tmpfs)
PIPELINE_DETECTION_BATCH = 8
WRITE_QUEUE_FRAMES = 32
WRITE_CHUNK = 8  # regions handed over as one job (fewer hand-overs); also the frames decoded again at once
IMAGE_FORMATS = ("png", "jpg", "bmp")
FACES = ("all", "largest")  # every face track recorded (and its crops kept), or the largest face only


@dataclass(frozen=True)
class ExtractedFaces:
    """Result of :func:`extract_face_frames`: the folder, frames written, how many frames the
    detector looked at and how many of those had a face, and how many of the frames written
    show that face (:mod:`~dynsnip.data.faces.face_shown`; None without a detector)."""

    out_dir: Path
    num_frames: int
    num_detected: int
    frames_checked: int = 0
    frames_showing_face: int | None = None
    tracks: int = 0  # face tracks kept (0: written without face tracks)
    samples: tuple[int, ...] = ()  # the tracks that are training samples

    @property
    def face_coverage(self) -> float:
        """Fraction of the frames written that show the face (1.0 without a detector)."""
        if self.frames_showing_face is not None and self.num_frames:
            return self.frames_showing_face / self.num_frames
        return self.num_detected / self.frames_checked if self.frames_checked else 1.0


def _pad_region(box: "np.ndarray", frame_size: tuple[int, int]) -> list[int]:
    """Grow a crop box by 10% of its side + 4 px on each side (room for the resampling filter
    of any output size >= 1/5 of the crop), clipped to the frame."""
    width, height = frame_size
    pad = int(np.ceil(0.1 * (box[2] - box[0]))) + 4
    return [max(0, int(box[0]) - pad), max(0, int(box[1]) - pad),
            min(width, int(box[2]) + pad), min(height, int(box[3]) + pad)]


def region_image_size(region: "np.ndarray | tuple[int, int, int, int]", scale: float | None) -> tuple[int, int]:
    """``(height, width)`` of the image a frame's ``region`` is saved as (resized by ``scale``;
    None: the region's own size), which :class:`~dynsnip.data.faces.face_folder.FaceFolder` checks."""
    x0, y0, x1, y1 = (int(v) for v in region)
    if scale is None:
        return y1 - y0, x1 - x0
    return max(1, round((y1 - y0) * scale)), max(1, round((x1 - x0) * scale))


class RegionStream:
    """The context region of each frame (see :func:`context_regions`), frame by frame, as the
    detections of the looked-at frames arrive in increasing frame order.

    A frame's region is final once the windows of T frames containing it are known (the
    detections through ``i + T - 1``; with k > T, through the looked-at frame after a window
    that holds none), and, where one of those windows has no face, once the
    nearest later window with a face is known too (or the video has ended): a single pass
    over the video can then write each frame a few frames after decoding it.

    Usage: :meth:`add` the detections of frames ``0, k, 2k, ...`` in order (an empty array for
    no face), then take :meth:`ready` regions; after the last looked-at frame every region is
    ready.
    """

    def __init__(self, num_frames: int, frame_size: tuple[int, int], margin: float, snippet_len: int,
                 detect_every: int, all_faces: bool = False) -> None:
        self.num_frames, self.frame_size, self.margin = int(num_frames), frame_size, margin
        self.snippet_len, self.detect_every = int(snippet_len), int(detect_every)
        self.all_faces = all_faces  # regions hold the crop of every face (face tracks), not only the largest
        self.windows = np.full((self.num_frames, 4), np.nan)  # crop of the window starting at s
        # what the regions hold of the window starting at s: its crop, or (all_faces) every face's crop in it
        self.spans = np.full((self.num_frames, 4), np.nan) if all_faces else self.windows
        self.detections: dict[int, np.ndarray] = {}
        self.known = 0  # windows[s] is final for s < known
        self.next_frame = 0  # the next frame whose region :meth:`ready` returns
        self._next_looked_at = 0
        # the window and span of the last windows whose looked-at frames lie inside them: the same for every
        # window with the same looked-at frames (T - k + 1 consecutive windows for k <= T), computed once
        self._same: tuple[tuple[int, ...], "np.ndarray", "np.ndarray"] | None = None

    def add(self, index: int, detections: "np.ndarray") -> None:
        """Record the detections of looked-at frame ``index`` (the next multiple of k)."""
        if index != self._next_looked_at:
            raise ValueError(f"detections must arrive for frames 0, k, 2k, ... in order: expected frame "
                             f"{self._next_looked_at}, got {index}")
        self.detections[index] = detections
        self._next_looked_at += self.detect_every
        t, last = self.snippet_len, self.num_frames - 1
        # window s is final once the looked-at frames it needs (snippet_detection_frames) are all added
        while self.known < self.num_frames:
            frames = [min(f, last) for f in range(self.known, self.known + t)]
            needed = snippet_detection_frames(frames, self.detect_every, self.num_frames)
            if needed[-1] >= self._next_looked_at and self._next_looked_at <= last:
                break  # window ``known`` waits for a later looked-at frame
            inside = needed[0] >= frames[0]  # the window's box depends on its looked-at frames alone
            if inside and self._same is not None and self._same[0] == tuple(needed):
                self.windows[self.known], self.spans[self.known] = self._same[1:]
                self.known += 1
                continue
            face, _ = snippet_face(frames, self.detections, self.detect_every, self.num_frames)
            if not np.isnan(face).any():
                self.windows[self.known] = square_crop_box(face, self.frame_size, self.margin)
                if self.all_faces:  # any track's box of this window lies within its faces' boxes
                    crops = [self.windows[self.known]] + [square_crop_box(row[:4], self.frame_size, self.margin)
                                                          for f in needed for row in self.detections[f]]
                    crops = np.asarray(crops, dtype=np.float64)
                    self.spans[self.known] = [crops[:, 0].min(), crops[:, 1].min(), crops[:, 2].max(),
                                              crops[:, 3].max()]
            if inside:
                self._same = (tuple(needed), self.windows[self.known].copy(), self.spans[self.known].copy())
            self.known += 1

    @property
    def complete(self) -> bool:
        """Every looked-at frame has been added."""
        return self.known == self.num_frames

    def ready(self, until: int | None = None) -> list[tuple[int, "np.ndarray"]]:
        """``(frame index, region (4,) int)`` of the frames whose region is now final, in order
        (only frames before ``until``, when given: those decoded so far).

        Raises:
            ValueError: the video is complete and no window has a face.
        """
        out = []
        t = self.snippet_len
        stop = self.known if until is None else min(self.known, until)
        while self.next_frame < stop:
            i = self.next_frame
            near = self.spans[max(0, i - t + 1): i + 1]
            near = near[~np.isnan(near).any(axis=1)]
            if len(near) < min(t, i + 1):  # some window borrows: add the nearest found ones
                found = np.flatnonzero(~np.isnan(self.spans[:self.known]).any(axis=1))
                before, after = found[found <= i], found[found > i]
                if len(after) == 0 and not self.complete:
                    break  # a later window may still have a face
                if len(before) == 0 and len(after) == 0:
                    raise ValueError("no window with a face")
                extra = [self.spans[before[-1]]] if len(before) else []
                extra += [self.spans[after[0]]] if len(after) else []
                near = np.concatenate([near, np.array(extra).reshape(-1, 4)])
            union = np.array([near[:, 0].min(), near[:, 1].min(), near[:, 2].max(), near[:, 3].max()])
            out.append((i, np.array(_pad_region(union, self.frame_size), dtype=np.int64)))
            self.next_frame += 1
        return out


def context_regions(
    detections: Mapping[int, "np.ndarray"],
    num_frames: int,
    frame_size: tuple[int, int],
    margin: float,
    snippet_len: int,
    detect_every: int,
) -> "np.ndarray":
    """Per frame, the region holding every snippet crop the policy can give it: ``(F, 4)`` int.

    The snippets containing frame i start at i-T+1 .. i; each window's crop is the policy's
    (:func:`~dynsnip.data.faces.boxes.snippet_face_box` of its looked-at frames, squared with
    ``margin``); the region is their union, padded (:func:`_pad_region`). A frame none of
    whose windows has a face gets the crops of the nearest windows with a face before and
    after it (where a borrowed box most likely comes from; :func:`borrowed_regions` then grows
    them to every box one can borrow). The same as :class:`RegionStream` fed every detection at once.
    """
    stream = RegionStream(num_frames, frame_size, margin, snippet_len, detect_every)
    for index in range(0, num_frames, detect_every):
        stream.add(index, detections[index])
    regions = np.zeros((num_frames, 4), dtype=np.int64)
    for i, region in stream.ready():
        regions[i] = region
    return regions


def borrowed_regions(
    regions: "np.ndarray",
    face_detections: "list[Mapping[int, np.ndarray]]",
    frame_size: tuple[int, int],
    margin: float,
    snippet_len: int,
    detect_every: int,
    windows: "np.ndarray | None" = None,
) -> "np.ndarray":
    """``regions (F, 4)`` grown to hold every box a snippet can borrow (a copy; the rows that need
    no more are unchanged).

    A snippet without the face takes the box of the nearest *sampled* snippet that has it
    (:func:`~dynsnip.data.faces.crop_policy.snippet_crops`), which may lie anywhere in the
    video: the regions of the windows holding a face cannot tell which. So each frame in a
    window of T frames without the face gets, besides its own region, the (padded) union of
    the crops of every window that has it: the crop a folder snippet cuts is then ``predict``'s,
    pixel for pixel, wherever its box comes from.

    Args:
        regions: the context regions (:class:`RegionStream`).
        face_detections: the detections of each way of cropping the folder: all of them (the
            largest face) and each sample face track's own
            (:meth:`~dynsnip.data.faces.tracks.FaceTrack.detections`), looked-at frame -> rows.
        frame_size, margin, snippet_len, detect_every: as for :class:`RegionStream`.
        windows: ``(F, 4)`` the crop of each window of ``face_detections[0]`` (NaN: no face), when
            already known: :attr:`RegionStream.windows` of the stream those detections were added to
            (the same :func:`~dynsnip.data.faces.crop_policy.snippet_face` and ``square_crop_box`` of
            each window, so not computed again: on the bundled footage this loop was about 3% of an
            extraction's time).
    """
    num_frames, t = len(regions), int(snippet_len)
    grown = np.array(regions, dtype=np.int64, copy=True)
    for way, detections in enumerate(face_detections):
        if way == 0 and windows is not None:
            missing = np.isnan(windows).any(axis=1)
            crops = windows[~missing]
        else:
            missing, crops = _window_crops(detections, num_frames, frame_size, margin, t, detect_every)
        if not len(crops) or not missing.any():
            continue
        crops = np.asarray(crops, dtype=np.float64)
        union = _pad_region([crops[:, 0].min(), crops[:, 1].min(), crops[:, 2].max(), crops[:, 3].max()], frame_size)
        # frame i lies in the windows starting at i - T + 1 .. i
        borrows = np.convolve(missing, np.ones(t, dtype=int))[:num_frames] > 0
        grown[borrows, :2] = np.minimum(grown[borrows, :2], union[:2])
        grown[borrows, 2:] = np.maximum(grown[borrows, 2:], union[2:])
    return grown


def _window_crops(detections: Mapping[int, "np.ndarray"], num_frames: int, frame_size: tuple[int, int], margin: float,
                  t: int, detect_every: int) -> tuple["np.ndarray", list]:
    """Which windows of ``t`` frames (by first frame) have no face in ``detections`` ``(F,)`` bool, and the
    crops of those that have one (as :class:`RegionStream` computes its ``windows``)."""
    last = num_frames - 1
    missing = np.zeros(num_frames, dtype=bool)  # windows (by first frame) without the face
    crops = []
    cache: dict[tuple[int, ...], "np.ndarray"] = {}
    for start in range(num_frames):
        frames = [min(f, last) for f in range(start, start + t)]
        needed = tuple(snippet_detection_frames(frames, detect_every, num_frames))
        if needed[0] >= frames[0] and needed in cache:  # the box depends on these looked-at frames alone
            face = cache[needed]
        else:
            face, _ = snippet_face(frames, detections, detect_every, num_frames)
            if needed[0] >= frames[0]:
                cache[needed] = face
        if np.isnan(face).any():
            missing[start] = True
        else:
            crops.append(square_crop_box(face, frame_size, margin))
    return missing, crops


def _rewrite_regions(video: Any, writer: _RegionWriter, regions: "np.ndarray", grown: "np.ndarray") -> None:
    """Write again (decoded again) the frames whose region :func:`borrowed_regions` grew."""
    changed = np.flatnonzero((grown != regions).any(axis=1)).tolist()
    for start in range(0, len(changed), WRITE_CHUNK):
        chunk = changed[start:start + WRITE_CHUNK]
        for i, frame in zip(chunk, video.read(chunk)):
            writer.write(i, frame, grown[i])


def _rows(faces: "np.ndarray") -> list[list[float | None]]:
    """Detection rows for JSON (2 decimals; NaN keypoints as null)."""
    return [[None if np.isnan(v) else float(v) for v in row] for row in quantize_detections(faces)]


def read_detections(meta: Mapping[str, Any]) -> dict[int, "np.ndarray"]:
    """The detections of a ``faces.json`` (as written by :func:`extract_face_frames`)."""
    return {
        int(index): np.array([[np.nan if v is None else v for v in row] for row in rows], dtype=np.float64)
        .reshape(-1, 15)
        for index, rows in meta["detections"].items()
    }


def extract_face_frames(
    video_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    face_detector: DetectorSpec = DEFAULT_FACE_DETECTOR,
    margin: float = 1.3,
    detect_every: int = DEFAULT_DETECT_EVERY,
    snippet_len: int = 4,
    scale: float | None = None,
    max_frames: int | None = None,
    image_format: str = "png",
    interpolation: str = "bilinear",
    min_face_coverage: float = DEFAULT_MIN_FACE_COVERAGE,
    boxes_from: str | os.PathLike[str] | None = None,
    replace: bool = False,
    faces: str = "all",
    pipeline: bool | None = None,
) -> ExtractedFaces:
    """Save the face context region of every frame of ``video_path`` into ``out_dir``.

    Args:
        video_path: the video.
        out_dir: folder to create; must not exist yet (unless ``replace``). Its name must not
            end in ``.partial`` (the name of a folder being written).
        face_detector: ``"auto"`` (BlazeFace, MTCNN where it finds nothing), ``"blazeface"``, ``"dlib"``,
            ``"mtcnn"``, ``"none"`` (whole frames) or a callable.
        margin: crop side / face-box side (1.3, FaceForensics++ convention).
        detect_every: the detector looks at frames whose index is a multiple of this (see
            :mod:`dynsnip.data.faces.crop_policy`; must match ``predict``'s for identical crops).
        snippet_len: T of the models that will train on it (regions cover its snippets).
        scale: resize the regions by this factor (e.g. 0.5 halves storage); None keeps the
            video's resolution, which is what makes training crops identical to predict's.
        max_frames: only the first ``max_frames`` frames (None: all; else at least 1).
        image_format: ``"png"`` (lossless, default: JPEG would add compression traces of
            its own to the forgery traces), ``"bmp"`` (lossless and uncompressed: about twice
            PNG's disk space, written ~3x faster, the choice when writing is the bottleneck;
            docs/video.md) or ``"jpg"`` (quality 95).
        interpolation: resampling when ``scale`` is given.
        min_face_coverage: fail with :class:`LowFaceCoverageError` when a face is found in
            fewer of the looked-at frames than this fraction, or fewer of the frames written
            show it (:mod:`~dynsnip.data.faces.face_shown`) (0.5; 0 turns the checks off).
        boxes_from: the real video a fake was made from, or its ``extract-faces`` folder: the
            fake is cropped with the real video's face boxes (its detections are read from the
            folder's ``faces.json``, or detected in the video), so detector misses and bias on
            fakes cannot leak into the labels. With ``faces="all"`` the fake's manipulated
            track is found by comparing its crops with the source's
            (:func:`~dynsnip.data.faces.tracks.manipulated_tracks`): only that track is a
            sample of the folder (``faces.json``'s ``samples``), the other faces are not.
        faces: ``"all"`` (default): the detections are linked into face tracks
            (:mod:`~dynsnip.data.faces.tracks`), recorded in ``faces.json`` (``tracks``,
            ``track_rules``, and ``samples``: the tracks that are training samples: every kept
            track, or a fake's manipulated ones), and every frame's region holds the crop of
            every face; ``"largest"``: the largest face only (regions around it, no tracks), as
            before face tracks.
        replace: an existing ``out_dir`` (made from another video, say) is replaced once the
            new folder is complete; until then it stays as it was.
        pipeline: detect and write in two threads of their own while the video decodes
            (:class:`_Pipeline`; a detector on a GPU detects in the calling thread instead,
            :func:`~dynsnip.data.faces.detectors.runs_on_gpu`): the same bytes, less wall time
            when cores are idle, no less CPU time. None (default): when this process has at least 2 CPUs of its own
            (:func:`pipeline_fits`); pass False when running several extractions at once on
            fewer than twice as many cores (``extract-faces --workers`` decides so).

    Raises:
        FileExistsError: ``out_dir`` exists (and not ``replace``).
        PartialFolderInUseError: (a ``FileExistsError``, reason ``partial_folder_in_use``) ``<out_dir>.partial``
            exists and may still be written: by a running process of this machine (its ``.owner`` record,
            :func:`partial_folder_writer`), or on another machine. One left by a process that has ended is
            replaced.
        ValueError: a bad setting (``max_frames`` < 1, ``snippet_len`` < 1, a ``.partial`` name).
        VideoError subclasses: the video cannot be read, no face in any frame, too few, only
            dropped face tracks (``no_face``), a fake identical to its source
            (``no_manipulated_face``).
    """
    if faces not in FACES:
        raise ValueError(f"faces must be one of {FACES}, got {faces!r}")
    if image_format not in IMAGE_FORMATS:
        raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")
    check_detect_every(detect_every)
    if max_frames is not None and (int(max_frames) != max_frames or max_frames < 1):
        raise ValueError(f"max_frames must be a positive number of frames (or None for all), got {max_frames}")
    if int(snippet_len) != snippet_len or snippet_len < 1:
        raise ValueError(f"snippet_len must be a positive number of frames (the T of the models), got {snippet_len}")
    out_dir = Path(out_dir)
    if out_dir.name.endswith(PARTIAL_SUFFIX):
        raise ValueError(f"{out_dir}: a folder name ending in {PARTIAL_SUFFIX} is the name of a folder being written; "
                         "expected another name (extract-faces appends _ to such video names)")
    if out_dir.exists() and not replace:
        raise FileExistsError(f"{out_dir} exists; refusing to overwrite it (remove it or choose another folder)")
    partial = out_dir.with_name(out_dir.name + PARTIAL_SUFFIX)
    if partial.exists():
        if (writer_now := partial_folder_writer(partial)) is not None:
            raise PartialFolderInUseError(video_path, partial, writer_now)
        shutil.rmtree(partial)  # left by a process of this machine that no longer runs
    detector = create_face_detector(face_detector)
    source_detections = source_size = source_tracks = source_frames = None
    if boxes_from is not None:
        source_detections, source_size, source_tracks, source_frames = source_face_detections(
            boxes_from, detector, detect_every, video_path, tracks=faces == "all")
    with VideoReader(video_path) as video:
        record = source_record(video_path)
        num_frames = video.num_frames if max_frames is None else min(max_frames, video.num_frames)
        if num_frames < snippet_len:  # never one snippet: fail as predict does, before any folder is made
            from ..sampling import too_short_error

            raise too_short_error(video_path, num_frames, snippet_len,
                                  "" if num_frames == video.num_frames
                                  else f" (--max-frames {max_frames} of its {video.num_frames})")
        if source_tracks is not None:  # the source's tracks run over its whole video: only the frames written
            source_tracks = tracks_within(source_tracks, num_frames)
        width, height = video.size
        if source_size is not None and tuple(source_size) != (width, height):
            from ..errors import SourceMismatchError

            raise SourceMismatchError(video_path, f"its source {boxes_from} is {source_size[0]}x{source_size[1]}, "
                                      f"the fake {width}x{height}; expected the same frame size to share face boxes")
        if source_frames is not None:
            from ..errors import SourceMismatchError
            from ..pipeline import source_frames_problem

            if problem := source_frames_problem(boxes_from, source_frames, num_frames):
                raise SourceMismatchError(video_path, problem)  # as predict does (no frozen or missing boxes)
        fps = video.fps
        looked_at = list(range(0, num_frames, detect_every))
        writer = _RegionWriter(partial, image_format, scale, interpolation)
        created = [p for p in partial.parents if not p.exists()]  # folders this extraction makes (removed if it fails)
        try:
            claim_partial_folder(partial)
        except FileExistsError:  # another extraction of this folder began since the look above
            raise PartialFolderInUseError(video_path, partial, "another extraction created it a moment ago") from None
        try:
            showing = None
            threads = pipeline_fits() if pipeline is None else bool(pipeline)
            if detector is None and source_detections is None:
                detections: dict[int, np.ndarray] = {}
                regions = np.tile([0, 0, width, height], (num_frames, 1))
                work = _Pipeline(threads, detect=False)
                try:
                    for index, frame in video.iter_frames(0, num_frames):
                        work.write([writer.job(index, frame, regions[index])], frame.nbytes)
                    work.finish()
                finally:
                    work.close()
                with_face = checked = 0
            else:
                def check_coverage(found: int) -> None:
                    if found == 0:
                        what = "frames the detector looked at" + (f" (every {detect_every}th)" if detect_every > 1 else "")
                        raise NoFaceError(video_path, no_face_message(len(looked_at), what, detector))
                    if found / len(looked_at) < min_face_coverage:
                        raise LowFaceCoverageError(video_path, found / len(looked_at), min_face_coverage,
                                                   len(looked_at), detector=detector)

                stream = RegionStream(num_frames, (width, height), margin, snippet_len, detect_every,
                                      all_faces=faces == "all")
                if source_detections is not None:
                    for i in looked_at:
                        stream.add(i, source_detections.get(i, np.zeros((0, 15))))
                signatures: dict[int, np.ndarray] | None = {} if faces == "all" else None
                writer.shown = _FaceShown(stream)
                regions = _single_pass(video, num_frames, stream, detector if source_detections is None else None,
                                       writer, check_coverage, signatures, threads)
                detections = stream.detections
                with_face = sum(1 for i in looked_at if len(detections[i]))
                checked = len(looked_at)
                showing = writer.shown.count()
                if showing < min_face_coverage * num_frames:
                    raise not_shown_error(video_path, showing, num_frames, with_face, checked, min_face_coverage,
                                          "frames written")
            track_meta: dict[str, Any] = {}
            if faces == "all" and detections:
                tracks = source_tracks if source_tracks is not None else link_tracks(detections, signatures)
                track_meta = _track_meta(tracks, video_path, boxes_from, (width, height), margin, num_frames,
                                         len(looked_at), detect_every, min_face_coverage, detector)
            if detections:  # a borrowed box may come from anywhere in the video: the regions hold it too
                samples = set(track_meta.get("samples", {}).get("tracks", ()))
                # each sample track as FaceFolder reads it back (faces.json's tracks)
                ways = [detections] + [t.detections(looked_at) for t in
                                       tracks_from_json(track_meta.get("tracks", []), detections) if t.id in samples]
                grown = borrowed_regions(regions, ways, (width, height), margin, snippet_len, detect_every,
                                         windows=stream.windows if ways[0] is stream.detections else None)
                writer.shown = None  # counted already
                _rewrite_regions(video, writer, regions, grown)
                regions = grown
            meta = dict(
                crop_policy=CROP_POLICY,
                source=str(Path(video_path)),
                source_file=record,
                num_frames=num_frames,
                video_frames=video.num_frames,  # the whole video's (settings_differences: --max-frames)
                display_rotation=video.rotation,  # turned upright by it (settings_differences: older folders)
                max_frames=max_frames,
                fps=fps,
                # frames that follow a cut or a pause (VideoReader.time_gaps): no snippet of the folder may span one
                time_gaps=video.time_gaps(num_frames),
                frame_size=[width, height],
                face_detector=detector_setting(detector),
                boxes_from=None if boxes_from is None else str(boxes_from),
                margin=margin,
                detect_every=detect_every,
                snippet_len=snippet_len,
                scale=scale,
                image_format=image_format,
                frames_checked=checked,
                frames_with_face=with_face,
                detector_coverage=round(with_face / checked, 4) if checked else 1.0,
                frames_showing_face=showing,
                face_coverage=round(showing / num_frames, 4) if showing is not None else 1.0,
                detections={str(i): _rows(faces) for i, faces in detections.items()},
                frames=[dict(index=i, region=[int(v) for v in regions[i]]) for i in range(num_frames)],
                faces=faces,
                **track_meta,
            )
            (partial / "faces.json").write_text(json.dumps(meta, indent=None, separators=(",", ":")))
            if replace and out_dir.exists():
                (partial / OWNER_FILE).unlink()
                # one step where the system allows it: out_dir is the old complete folder or the new one, never
                # missing; the old one is then at the .partial name (no owner: a later run clears it if killed here)
                if exchange_paths(partial, out_dir):
                    shutil.rmtree(partial, ignore_errors=True)
                else:  # two renames, with a moment between them where out_dir does not exist
                    replaced = partial / ".replaced"  # the old folder, moved into the new one until it takes its place
                    out_dir.rename(replaced)
                    partial.rename(out_dir)
                    shutil.rmtree(out_dir / replaced.name, ignore_errors=True)
            else:
                (partial / OWNER_FILE).unlink()
                partial.rename(out_dir)
        except BaseException:
            if replace and not os.path.lexists(out_dir) and (partial / ".replaced").is_dir():
                (partial / ".replaced").rename(out_dir)  # stopped between the two renames: the old folder goes back
            shutil.rmtree(partial, ignore_errors=True)
            for folder in created:  # innermost first; one another video's extraction has written into stays
                try:
                    folder.rmdir()
                except OSError:
                    break
            raise
    kept = sum(t["status"] == "kept" for t in track_meta.get("tracks", []))
    return ExtractedFaces(out_dir=out_dir, num_frames=num_frames, num_detected=with_face, frames_checked=checked,
                          frames_showing_face=showing, tracks=kept,
                          samples=tuple(track_meta.get("samples", {}).get("tracks", ())))


@dataclass(frozen=True)
class SettingDifference:
    """A setting an existing ``extract-faces`` folder was made with that differs from the one asked
    (:func:`settings_differences`): ``setting`` is :func:`extract_face_frames`' parameter, ``asked`` and
    ``recorded`` its two values as shown to the user."""

    setting: str
    asked: Any
    recorded: Any


def detector_setting(detector: Any) -> str:
    """How ``faces.json`` names a detector (``face_detector``): its repr (which holds its options, e.g.
    ``detect_short_side``), or ``"none"``; :func:`settings_differences` compares it without the
    ``device`` the networks run on, which is where it runs, not what it finds."""
    return "none" if detector is None else repr(detector)


def _without_device(setting: Any) -> str:
    return re.sub(r",\s*device='[^']*'", "", str(setting))


def _source_identity(path: Any) -> Path | None:
    """The video a ``boxes_from`` names: the video itself, or the video an ``extract-faces`` folder
    records; None when the path no longer exists (what it was cannot be told)."""
    path = Path(path)
    if (path / "faces.json").is_file():
        try:
            meta = json.loads((path / "faces.json").read_text())
            record = meta.get("source_file")
            return Path(record["path"] if isinstance(record, dict) else meta["source"]).resolve()
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return path.resolve()
    return path.resolve() if path.exists() else None


def _folder_image_format(folder: Path) -> str | None:
    """The image format of a folder's frame files (``000000.png`` -> ``png``), None without frames."""
    first = next(iter(sorted(folder.glob("000000.*"))), None)
    return first.suffix[1:].lower() if first is not None else None


def settings_differences(folder: str | os.PathLike[str], video: str | os.PathLike[str],
                         asked: Mapping[str, Any]) -> list[SettingDifference]:
    """The settings of :func:`extract_face_frames` (``asked``: its keyword arguments, e.g.
    ``face_detector`` as the detector object or ``"none"``) that the existing ``folder`` of ``video``
    was made with differently, in a way that changes what the folder holds; empty when it is what
    extracting now would write. ``extract-faces`` keeps a folder only when this is empty.

    Compared: ``crop_policy`` (the ``faces.json`` format), ``face_detector`` (its options included,
    without its device), ``boxes_from`` (the source video a fake's boxes come from; a
    folder of the source is the same source as its video), ``scale``, ``image_format``, the frames
    written (``max_frames``: asking 100 of a 50-frame video writes its 50), and where faces are
    detected (a detector, or a source's boxes) ``margin``, ``detect_every``, ``snippet_len`` and
    ``faces``. Not compared: what does not change the folder (workers, ``pipeline``, devices);
    ``min_face_coverage`` decides only whether a folder is written (:func:`folder_coverage_problem`).

    Folders written by older versions lack some records; they are not taken for stale for a setting
    they could not record, unless the folder shows it differs: ``image_format`` is then read from
    the frame files' names, ``max_frames`` from the frames written against the video's frame count
    (the video is opened once for that and for its display rotation: a folder written before
    rotations were applied, of a video that has one, holds its faces on their side and differs),
    and a folder without ``faces`` was written before face tracks,
    with the regions of the largest face only and no tracks: what ``faces="largest"`` writes, so it
    differs from ``faces="all"`` only. A ``boxes_from`` whose path no longer exists is not compared
    (nothing tells which source it was).

    Raises:
        ValueError, OSError: ``folder`` has no readable ``faces.json`` (check
            :func:`~dynsnip.data.faces.folder_source.folder_source_problem` first).
    """
    folder = Path(folder)
    meta = json.loads((folder / "faces.json").read_text())
    if not isinstance(meta, dict):
        raise ValueError(f"{folder}/faces.json is not an extract-faces record")
    out: list[SettingDifference] = []

    def differ(setting: str, asked_value: Any, recorded: Any) -> None:
        out.append(SettingDifference(setting, asked_value, recorded))

    if meta.get("crop_policy") != CROP_POLICY:
        differ("crop_policy", CROP_POLICY, meta.get("crop_policy", "not recorded"))
    detector = asked.get("face_detector", DEFAULT_FACE_DETECTOR)
    if isinstance(detector, str):  # a name: as the extraction would create it
        detector = create_face_detector(detector)
    asked_detector, recorded_detector = detector_setting(detector), meta.get("face_detector")
    if recorded_detector is not None and _without_device(asked_detector) != _without_device(recorded_detector):
        differ("face_detector", _without_device(asked_detector), _without_device(recorded_detector))
    boxes_from, recorded_boxes = asked.get("boxes_from"), meta.get("boxes_from")
    if (boxes_from is None) != (recorded_boxes is None):
        differ("boxes_from", "none" if boxes_from is None else str(boxes_from),
               "none" if recorded_boxes is None else recorded_boxes)
    elif boxes_from is not None:
        source, recorded_source = _source_identity(boxes_from), _source_identity(recorded_boxes)
        if source is not None and recorded_source is not None and source != recorded_source:
            differ("boxes_from", str(boxes_from), recorded_boxes)
    scale, recorded_scale = asked.get("scale"), meta.get("scale")
    if (1.0 if scale is None else float(scale)) != (1.0 if recorded_scale is None else float(recorded_scale)):
        # (scale 1 resizes each region to its own size: the frames None writes)
        differ("scale", "none" if scale is None else scale, "none" if recorded_scale is None else recorded_scale)
    image_format = asked.get("image_format", "png")
    recorded_format = meta.get("image_format") or _folder_image_format(folder)
    if recorded_format is not None and recorded_format != image_format:
        differ("image_format", image_format, recorded_format)
    opened = _opened_facts(video) if ("video_frames" not in meta or "display_rotation" not in meta) else None
    _frames_difference(meta, opened, asked.get("max_frames"), differ)
    _rotation_difference(meta, opened, differ)
    # the detections and the regions around them: only where faces are detected or a source's are used
    faces_used = "none" not in (asked_detector, recorded_detector) or boxes_from is not None \
        or recorded_boxes is not None
    if faces_used:
        for setting, kind, default in (("margin", float, 1.3), ("detect_every", int, DEFAULT_DETECT_EVERY),
                                       ("snippet_len", int, 4)):
            value = kind(asked.get(setting, default))
            if setting in meta and kind(meta[setting]) != value:
                differ(setting, value, meta[setting])
        faces = asked.get("faces", "all")
        recorded_faces = meta.get("faces", "largest")  # before face tracks: the largest face only (docstring)
        if recorded_faces != faces:
            differ("faces", faces, meta.get("faces", "not recorded (written before face tracks: the largest "
                                                     "face only)"))
    return out


def _opened_facts(video: Any) -> tuple[int, int] | None:
    """``(frame count, display rotation)`` of ``video``, opened once for a folder written before
    they were recorded; None when it cannot be read (gone, unreadable: nothing tells, the folder stays)."""
    try:
        with VideoReader(video) as reader:
            return reader.num_frames, reader.rotation
    except Exception:  # noqa: BLE001
        return None


def _rotation_difference(meta: Mapping[str, Any], opened: tuple[int, int] | None,
                         differ: Callable[[str, Any, Any], None]) -> None:
    """A folder written before frames were turned by the video's display rotation (no
    ``display_rotation`` recorded) of a video that has one holds its faces on their side, where
    ``predict`` now crops them upright: it differs."""
    if "display_rotation" in meta or opened is None:
        return
    rotation = opened[1]
    if rotation:
        differ("display_rotation", f"{rotation} (frames turned upright)",
               "not applied (extracted before display rotations were: faces on their side)")


def _frames_difference(meta: Mapping[str, Any], opened: tuple[int, int] | None, max_frames: int | None,
                       differ: Callable[[str, Any, Any], None]) -> None:
    """Compare the frames a folder holds with those ``max_frames`` asks for (see :func:`settings_differences`;
    ``opened``: the video's frame count and rotation, read for a folder that did not record them)."""
    written = int(meta.get("num_frames", -1))
    if max_frames is not None and written == int(max_frames):
        return  # the first max_frames frames, whatever the video's length
    total = meta.get("video_frames")
    if total is None:  # written before the video's frame count was recorded: counted now
        if opened is None:  # gone, unreadable: nothing tells; the folder stays
            return
        total = opened[0]
    expected = int(total) if max_frames is None else min(int(max_frames), int(total))
    if expected != written:
        recorded = meta["max_frames"] if "max_frames" in meta else f"not recorded ({written} of {total} frames written)"
        differ("max_frames", "all" if max_frames is None else max_frames, "all" if recorded is None else recorded)


def folder_coverage_problem(folder: str | os.PathLike[str], min_face_coverage: float) -> str | None:
    """Why the existing ``folder`` would not be written with ``min_face_coverage`` (its face found in
    too few of the frames looked at, or shown in too few of those written: the checks of
    :func:`extract_face_frames`, on the counts its ``faces.json`` records), or None."""
    try:
        meta = json.loads((Path(folder) / "faces.json").read_text())
        checked, found = int(meta["frames_checked"]), int(meta["frames_with_face"])
        showing, frames = meta.get("frames_showing_face"), int(meta["num_frames"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if checked and found / checked < min_face_coverage:
        return (f"its folder {folder} records the face found in {found} of the {checked} frames looked at "
                f"({found / checked:.0%}), below --min-face-coverage {min_face_coverage:g}")
    if showing is not None and frames and int(showing) < min_face_coverage * frames:
        return (f"its folder {folder} records the face shown in {showing} of the {frames} frames written "
                f"({int(showing) / frames:.0%}), below --min-face-coverage {min_face_coverage:g}")
    return None


class _FaceShown:
    """Counts the frames written that show the face (:mod:`~dynsnip.data.faces.face_shown`): frame
    i is anchored on the looked-at frame ``a`` at or before it and compared with frame i - 1
    (which must show the face itself), inside the crop of the window starting at ``a`` (known
    when frame i is written: its region needs that window). Frames may be written out of order
    (dropped and decoded again), so the grey thumbnails are kept (1 KiB a frame) and compared
    at the end."""

    def __init__(self, stream: RegionStream) -> None:
        self.stream = stream
        self.thumbnails: dict[int, np.ndarray] = {}
        self.agrees: dict[int, bool] = {}  # i -> whether thumbnails i and i - 1 show the same picture (i % k != 0)
        self._lock = threading.Lock()  # writes may run in two threads at once (_Pipeline: helping)

    def anchor_box(self, index: int) -> "np.ndarray | None":
        """The box frame ``index`` is compared in (None: its anchor has no face). Final once the
        frame's region is: read in the decoding thread, when the frame is handed to the writer."""
        anchor = index // self.stream.detect_every * self.stream.detect_every
        box = self.stream.windows[anchor]
        if len(self.stream.detections.get(anchor, ())) and not np.isnan(box).any():
            return box.copy()
        return None

    def record(self, index: int, frame: "np.ndarray", box: "np.ndarray | None") -> None:
        """Keep frame ``index``'s thumbnail in ``box`` (:meth:`anchor_box`), and compare it with its
        neighbours' already kept. Called from any thread, in any frame order."""
        if box is None:
            return
        picture = thumbnail(frame, box)
        k = self.stream.detect_every
        with self._lock:
            self.thumbnails[index] = picture
            pairs = [(i, self.thumbnails[i], self.thumbnails[i - 1]) for i in (index, index + 1)
                     if i % k and i in self.thumbnails and i - 1 in self.thumbnails]
        for i, a, b in pairs:
            self.agrees[i] = same_picture(a, b)

    def count(self) -> int:
        k, shown = self.stream.detect_every, set()
        for i in sorted(self.thumbnails):  # thumbnails[i - 1] exists when frame i is not an anchor
            if i % k == 0 or (i - 1 in shown and self.agrees[i]):
                shown.add(i)
        return len(shown)


class PartialFolderInUseError(VideoError, FileExistsError):
    """``<out_dir>.partial``, the folder of this video being written, exists and may still be written
    (:func:`partial_folder_writer` says by whom): the video fails with reason ``partial_folder_in_use``,
    as any other extraction failure (a ``FileExistsError`` still, as it was before it had a reason)."""

    reason = "partial_folder_in_use"

    def __init__(self, video: object, partial: Path, writer: str) -> None:
        super().__init__(video, f"{partial} exists: {writer}; another extraction may be writing it (expected one "
                                "extraction at a time per folder): wait for it to end and run again, or, if none "
                                f"runs, remove {partial} and run again")
        self.partial = str(partial)

    def __str__(self) -> str:  # the message, not OSError's "[Errno ...]" form (also once unpickled)
        return str(self.args[0]) if self.args else ""


def process_start(pid: int) -> str | None:
    """When process ``pid`` started, as ``<clock ticks after boot>@<boot id>`` (field 22 of
    ``/proc/<pid>/stat``, and ``/proc/sys/kernel/random/boot_id``), or None where it cannot be read (no
    ``/proc``: not Linux; no such process). A process id is reused once its process has ended (a
    container restarted counts from 1 again); the id and this start time together name one process."""
    try:
        ticks = Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError, ValueError):
        return None
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return f"{ticks}@{boot}" if boot else ticks


def owner_record() -> str:
    """The :data:`~dynsnip.data.faces.folder_source.OWNER_FILE` record of a folder this process writes:
    ``"<host> <pid> <start>"`` (:func:`process_start`; ``"<host> <pid>"`` where it cannot be read)."""
    start = process_start(os.getpid())
    return f"{socket.gethostname()} {os.getpid()}" + (f" {start}" if start else "")


CLAIM_INFIX = ".claim-"  # ".<name>.partial.claim-<pid>-<random>": a folder being made into <name>.partial


def claim_partial_folder(partial: Path) -> None:
    """Create the folder ``partial`` (``<name>.partial``) with its :data:`OWNER_FILE` record in it, in one step.

    A ``mkdir`` followed by writing the record leaves, when the process is killed between the two (a
    worker process of a pool that broke, a kill), a ``.partial`` folder without a record, which no later
    run can tell from one another extraction has just begun: it is refused as in use until removed by
    hand. So the record is written into a hidden folder beside it first
    (``.<name>.partial.claim-<pid>-<random>``), which is then renamed to ``partial``: a ``.partial``
    folder always names its writer. Such a hidden folder left by a kill before the rename is removed
    here when its writer has ended (a later extraction of the same video).

    Raises:
        FileExistsError: ``partial`` exists already (another extraction claimed it first).
    """
    import errno
    import glob
    import secrets

    parent = partial.parent
    parent.mkdir(parents=True, exist_ok=True)
    for stray in parent.glob(f".{glob.escape(partial.name)}{CLAIM_INFIX}*"):  # a video named "[1].mp4" is no pattern
        if stray.is_dir() and not stray.is_symlink() and (stray / OWNER_FILE).is_file() \
                and partial_folder_writer(stray) is None:  # its writer has ended: garbage
            shutil.rmtree(stray, ignore_errors=True)
    staging = parent / f".{partial.name}{CLAIM_INFIX}{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()  # the umask's mode, as partial.mkdir() gave
    try:
        (staging / OWNER_FILE).write_text(owner_record())
        os.rename(staging, partial)  # refused when partial exists with anything in it (every claimed one does)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        if err.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise FileExistsError(errno.EEXIST, "claimed by another extraction", str(partial)) from None
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def partial_folder_writer(partial: Path) -> str | None:
    """Who may still be writing the folder ``partial`` (``<name>.partial``), said for a message; None when
    it is abandoned, left by a process of this machine that has ended (a killed worker, a container
    stopped): then it can only be garbage, and the next extraction replaces it.

    Its ``.owner`` record names the writer's host and process id, and its start time
    (:func:`owner_record`): a live process with that id but another start time is another process
    that reuses the id (a container restarted, its processes numbered from 1 again), so the writer has
    ended. A record without a start time (written by an earlier version) trusts the id alone, as before.
    Without a record, or from another machine, the folder is never taken for abandoned: whether its
    writer still runs cannot be told."""
    try:
        fields = (partial / OWNER_FILE).read_text().split()
    except OSError:
        return f"it holds no readable {OWNER_FILE} record of its writer"
    # an id as this module writes it: ASCII digits ("²" is a digit to isdigit), a positive process id in range
    if len(fields) not in (2, 3) or not (fields[1].isascii() and fields[1].isdigit()) \
            or not 0 < int(fields[1]) < 2**31:
        return (f"its {OWNER_FILE} record {' '.join(fields)!r} does not name its writer as expected (host, process "
                "id): if no extraction runs, remove the folder")
    host, pid, recorded_start = fields[0], int(fields[1]), (fields[2] if len(fields) == 3 else None)
    if host != socket.gethostname():
        return f"it is written by process {pid} on the machine {host}, or was left there by an interrupted extraction"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # the writer has ended
    except OSError:  # the process exists, another user's
        pass
    if recorded_start is not None:
        start = process_start(pid)
        if start is not None and start != recorded_start:
            return None  # the id now names another process: the writer has ended
    started = "" if recorded_start is not None else " (a record without the start time of its writer)"
    return f"process {pid} of this machine, which wrote it, is still running{started}"


class _RegionWriter:
    """Saves the context region of a frame as ``<index>.png`` (:mod:`~dynsnip.data.faces.png_writer`),
    ``.bmp`` or ``.jpg`` in ``folder``.

    :meth:`job` reads what the write needs from the extraction's state (in the decoding thread)
    and returns the work itself, which touches nothing shared but its own file and thumbnail:
    it can run in the writer thread of a pipelined extraction (:class:`_Pipeline`)."""

    def __init__(self, folder: Path, image_format: str, scale: float | None, interpolation: str) -> None:
        self.folder, self.image_format, self.scale, self.interpolation = folder, image_format, scale, interpolation
        self.shown: _FaceShown | None = None  # counts the frames that show the face, when set

    def job(self, index: int, frame: "np.ndarray", region: "np.ndarray") -> Callable[[], None]:
        """The write of frame ``index``'s ``region``, to run now or in another thread."""
        box = self.shown.anchor_box(index) if self.shown is not None else None
        return functools.partial(self._write, index, frame, tuple(int(v) for v in region), box)

    def write(self, index: int, frame: "np.ndarray", region: "np.ndarray") -> None:
        self.job(index, frame, region)()

    def _write(self, index: int, frame: "np.ndarray", region: tuple[int, int, int, int],
               box: "np.ndarray | None") -> None:
        x0, y0, x1, y1 = region
        if self.scale is None:
            crop = frame[y0:y1, x0:x1]
        else:
            crop = crop_and_resize(frame[None], [(x0, y0, x1, y1)], region_image_size(region, self.scale),
                                   self.interpolation)[0]
        target = self.folder / f"{index:06d}.{self.image_format}"
        if self.image_format == "png":  # 2-3x faster than Pillow's encoder (png_writer)
            write_png(target, crop)
        elif self.image_format == "jpg":
            Image.fromarray(np.ascontiguousarray(crop)).save(target, quality=95)
        else:
            Image.fromarray(np.ascontiguousarray(crop)).save(target)
        if self.shown is not None:
            self.shown.record(index, frame, box)


def pipeline_fits(extractions: int = 1) -> bool:
    """Whether ``extractions`` running at once each have 2 CPUs for a pipelined extraction
    (:class:`_Pipeline`: decoding, detection and writing overlap, about 1.7 cores busy on the
    bundled footage); with fewer the cores are busy anyway, and threads would only contend."""
    return available_cpus() >= 2 * max(1, int(extractions))


def detection_batch_size(detector: Any, pipeline: bool = False) -> int:
    """Looked-at frames handed to ``detector`` at once: its ``batch_size`` (MTCNN on a GPU), else 1;
    pipelined, at most :data:`PIPELINE_DETECTION_BATCH` when its rows do not depend on the batch
    (``batch_invariant``: BlazeFace and MTCNN on the CPU, dlib, ``auto`` of those), so that the
    detector thread starts after a few frames instead of 4 x 16 (the same rows either way)."""
    batch = max(1, int(getattr(detector, "batch_size", 1) or 1))
    if pipeline and getattr(detector, "batch_invariant", not hasattr(detector, "detect_batch")):
        batch = min(batch, PIPELINE_DETECTION_BATCH)
    return batch


def _track_meta(tracks: list, video_path: Any, boxes_from: Any, frame_size: tuple[int, int], margin: float,
                num_frames: int, looked_at: int, detect_every: int, min_face_coverage: float = 0.0,
                detector: Any = None) -> dict[str, Any]:
    """The ``faces.json`` entries of the face tracks: ``tracks``, ``track_rules`` and ``samples``
    (the tracks that are training samples: every kept one; for a fake with a source, its
    manipulated ones, found by comparing it with the source). The per-track coverage rule of
    ``predict`` (docs/video.md, *Scoring*) applies: a track found on fewer than
    ``min_face_coverage`` of the ``looked_at`` frames is no sample; ``samples`` lists it under
    ``low_face_coverage`` with its coverage (a face seen for a quarter of the video would
    otherwise be trained on and scored from its borrowed boxes, where ``predict`` refuses it).

    Raises:
        NoFaceError: every track was dropped (only photos on the wall, or passers-by).
        NoManipulatedFaceError: a fake whose every face equals its source's.
        LowFaceCoverageError: no sample track reaches ``min_face_coverage`` (its best coverage).
    """
    from ..errors import NoManipulatedFaceError

    kept = kept_tracks(tracks)
    if not kept:
        raise NoFaceError(video_path, no_track_message(tracks, looked_at, detect_every))
    meta: dict[str, Any] = dict(tracks=tracks_to_json(tracks), track_rules=track_rules())
    coverage = {t.id: len(t.frames) / looked_at if looked_at else 1.0 for t in kept}

    def covered(samples: dict[str, Any]) -> dict[str, Any]:
        """``samples`` without the tracks below the coverage (listed under ``low_face_coverage``)."""
        low = {t: coverage[t] for t in samples["tracks"] if coverage[t] < min_face_coverage}
        if low and len(low) == len(samples["tracks"]):
            best = max(low.values())
            every = f" (every {detect_every}th)" if detect_every > 1 else ""
            raise LowFaceCoverageError(video_path, best, min_face_coverage, looked_at,
                                       which=f"frames the detector looked at{every}, by its best sample face track "
                                             f"({', '.join(f'track {t}: {c:.0%}' for t, c in low.items())})",
                                       detector=detector)
        samples["tracks"] = [t for t in samples["tracks"] if t not in low]
        if low:
            samples["low_face_coverage"] = {str(t): round(c, 4) for t, c in low.items()}
        return samples

    if boxes_from is None:
        meta["samples"] = covered(dict(tracks=[t.id for t in kept],
                                       how="every kept face track (no source to compare with)"))
        return meta
    with VideoReader(video_path) as fake, _SourceFrames(boxes_from, num_frames) as source:
        choice = manipulated_tracks(tracks, fake.read, source.read, frame_size, margin)
    if not choice.tracks:
        raise NoManipulatedFaceError(video_path, f"no face of it differs from its source {boxes_from} (mean absolute "
                                     f"differences by track: {choice.evidence}; {choice.rule}): expected a fake "
                                     "made from this source, with at least one face changed")
    meta["samples"] = covered(dict(choice.to_json(),
                                   how="the manipulated face track(s), found by comparing with the source"))
    return meta


class _SourceFrames:
    """Frames of a fake's source for :func:`~dynsnip.data.faces.tracks.manipulated_tracks`: its
    video, or (an ``extract-faces`` folder whose video is gone) the folder's regions pasted at
    their place in black frames (the track crops lie inside the regions)."""

    def __init__(self, source: Any, num_frames: int) -> None:
        source = Path(source)
        self.folder = None
        if (source / "faces.json").is_file():
            meta = json.loads((source / "faces.json").read_text())
            video = Path(meta.get("source", ""))
            if video.is_file():
                source = video
            else:
                self.folder, self.meta = source, meta
        self.video = None if self.folder is not None else VideoReader(source)
        self.last = (self.video.num_frames if self.video is not None else int(self.meta["num_frames"])) - 1

    def read(self, indices: list[int]) -> "np.ndarray":
        indices = [min(int(i), self.last) for i in indices]
        if self.video is not None:
            return self.video.read(indices)
        width, height = self.meta["frame_size"]
        scale = self.meta.get("scale")
        out = np.zeros((len(indices), height, width, 3), np.uint8)
        for n, i in enumerate(indices):
            x0, y0, x1, y1 = self.meta["frames"][i]["region"]
            image = Image.open(next(self.folder.glob(f"{i:06d}.*"))).convert("RGB")
            if scale is not None:
                image = image.resize((x1 - x0, y1 - y0), Image.BILINEAR)
            out[n, y0:y1, x0:x1] = np.asarray(image)
        return out

    def __enter__(self) -> "_SourceFrames":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.video is not None:
            self.video.close()


class _Job:
    """A job of a :class:`_Lane`: run once, by the lane's thread or by whoever takes it first."""

    __slots__ = ("fn", "args", "_done", "_value", "_error")

    def __init__(self, fn: Callable[..., Any], args: tuple) -> None:
        self.fn, self.args = fn, args
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._value = self.fn(*self.args)
        except BaseException as error:  # noqa: B036 - kept for the thread that takes the result
            self._error = error
        finally:
            # the job's frames go with it now, not when the lane's thread takes its next job or the
            # result is taken: the memory bound (_single_pass) counts a job's frames until it is done
            self.fn, self.args = None, ()
            self._done.set()

    def cancel(self) -> None:
        self._error = CancelledError()
        self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    @property
    def error(self) -> BaseException | None:
        """The exception the job raised (None: none, or not run yet)."""
        return self._error

    def result(self) -> Any:
        """The job's return value, once it has run (waits); its exception, raised again."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


class _Lane:
    """One worker thread running jobs in submission order; a job it has not started yet can be
    taken by another thread (:meth:`take`) and run there, so that a thread about to wait works
    instead."""

    def __init__(self, name: str) -> None:
        self._jobs: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Job:
        job = _Job(fn, args)
        with self._ready:
            self._jobs.append(job)
            self._ready.notify()
        return job

    def take(self) -> _Job | None:
        """The oldest job not started yet, now the caller's to run (None: there is none)."""
        with self._ready:
            return self._jobs.popleft() if self._jobs else None

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._jobs and not self._closed:
                    self._ready.wait()
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            job.run()

    def shutdown(self) -> None:
        """Cancel the jobs not started, wait for the running one (the thread ends)."""
        with self._ready:
            while self._jobs:
                self._jobs.popleft().cancel()
            self._closed = True
            self._ready.notify()
        self._thread.join()


class _Inline:
    """Runs each job at once in the calling thread (the sequential extraction): a failure
    raises right there, as a direct call would."""

    def submit(self, job: Callable[..., Any], *args: Any) -> _Job:
        done = _Job(job, args)
        done.run()
        if done.error is not None:
            raise done.error
        return done

    def take(self) -> None:
        return None

    def shutdown(self) -> None:
        pass


class _Pipeline:
    """Where the work of one extraction runs besides the decoding: detection batches and region
    writes, each in a thread of its own (``threads``: a detector lane and a writer lane,
    :class:`_Lane`), or inline, one after the other in the decoding thread.

    What may run in another thread touches nothing the decoding thread changes: a detection
    batch is its frames (and the detector) and returns rows; a write is a frame, its region
    and its anchor box, and writes one file and one thumbnail. Results are taken in submission
    order, so the detections reach the :class:`RegionStream` in frame order whatever the timing,
    and every output byte is the sequential run's. A job's exception is raised again in the
    decoding thread (the same exception object) when its result is taken. Torch, zlib, numpy,
    Pillow and file I/O release the GIL, so the threads share the cores.

    **Helping instead of waiting.** When the decoding thread must wait (the detector behind,
    the write queue full, the end of the video), it runs queued jobs itself: writes, and
    detection batches when the detector may be called from two threads at once
    (``helpable_detector``: BlazeFace and MTCNN on the CPU, whose forward passes keep no state).
    On 2 cores the lane threads alone left the decoding thread waiting for about 40% of the
    wall time on the bundled footage (docs/video.md).

    Bounds: at most :data:`DETECTION_BATCHES_IN_FLIGHT` detection batches submitted and not yet
    taken, at most :data:`WRITE_QUEUE_FRAMES` writes queued (and their frames' bytes within
    :data:`MAX_BUFFERED_BYTES`; :func:`_single_pass` counts them with the waiting frames).
    :meth:`close` cancels the queued jobs and waits for the running ones: no thread outlives
    the extraction, whether it ends, fails or is interrupted (KeyboardInterrupt).
    """

    def __init__(self, threads: bool, detect: bool = True, helpable_detector: bool = False) -> None:
        self.threads = threads
        self._detector = _Lane("dynsnip-detect") if threads and detect else _Inline()
        self._writer = _Lane("dynsnip-write") if threads else _Inline()
        self._helpable = (self._detector, self._writer) if helpable_detector else (self._writer,)
        self.detecting: deque[_Job] = deque()
        self.writing: deque[tuple[_Job, int, int]] = deque()  # a job, its frames' bytes, its frames
        self.writing_bytes = 0  # bytes of the frames of the queued writes
        self.writing_frames = 0

    def _help(self) -> bool:
        """Run one queued job in this thread (a detection batch first, when allowed); False: none is queued."""
        for lane in self._helpable:
            job = lane.take()
            if job is not None:
                job.run()
                if job.error is not None and not isinstance(job.error, Exception):
                    raise job.error  # KeyboardInterrupt while helping: stop now
                return True
        return False

    def _wait(self, job: _Job) -> None:
        while not job.done() and self._help():
            pass

    def detect(self, job: Callable[..., Any], *args: Any) -> None:
        self.detecting.append(self._detector.submit(job, *args))

    def detected(self, wait: bool = False) -> list[Any]:
        """Results of the finished detection batches, oldest first (``wait``: at least the oldest)."""
        out = []
        while self.detecting and (wait or self.detecting[0].done()):
            if wait:
                self._wait(self.detecting[0])
            out.append(self.detecting.popleft().result())
            wait = False
        return out

    def write(self, jobs: list[Callable[[], None]], nbytes: int) -> None:
        """Queue writes (:meth:`_RegionWriter.job`; ``nbytes``: their frames'), as one job for the
        writer thread (fewer hand-overs), waiting first while the queue is full."""
        self.written()
        while self.writing and (self.writing_frames + len(jobs) > WRITE_QUEUE_FRAMES
                                or self.writing_bytes + nbytes > MAX_BUFFERED_BYTES):
            self.written(wait=True)
        self.writing.append((self._writer.submit(_run_all, jobs), nbytes, len(jobs)))
        self.writing_bytes += nbytes
        self.writing_frames += len(jobs)
        self.written()

    def written(self, wait: bool = False) -> None:
        """Forget the finished writes, oldest first (``wait``: wait for the oldest); raise a failed one's exception."""
        while self.writing and (wait or self.writing[0][0].done()):
            if wait:
                self._wait(self.writing[0][0])
            job, nbytes, frames = self.writing.popleft()
            self.writing_bytes -= nbytes
            self.writing_frames -= frames
            job.result()
            wait = False

    def finish(self) -> None:
        """Wait for every write queued (raising the first failure)."""
        while self.writing:
            self.written(wait=True)

    def close(self) -> None:
        """Cancel what has not started, wait for what has (the threads end)."""
        for lane in (self._detector, self._writer):
            lane.shutdown()


def _run_all(jobs: list[Callable[[], None]]) -> None:
    for job in jobs:
        job()


def _detect_batch(detector: Any, batch: list[tuple[int, "np.ndarray"]], with_signatures: bool) -> list[tuple]:
    """A detection batch (in the detector thread when pipelined): per looked-at frame its index, its
    detection rows at ``faces.json``'s precision and (``with_signatures``) its faces' signatures."""
    found = detect_faces(np.stack([frame for _, frame in batch]), detector)
    out = []
    for (i, frame), rows in zip(batch, found):
        rows = quantize_detections(rows)
        out.append((i, rows, face_signatures(frame, rows) if with_signatures else None))
    return out


def _single_pass(
    video: Any, num_frames: int, stream: RegionStream, detector: Any, writer: _RegionWriter, check_coverage: Any,
    signatures: dict[int, "np.ndarray"] | None = None, pipeline: bool = False,
) -> "np.ndarray":
    """Decode every frame once: detect on the looked-at frames (``detector``; None when the
    stream already holds every detection), write each frame's region as soon as it is final.
    ``signatures``: filled with the face thumbnails of the looked-at frames (face tracks).
    ``pipeline``: detect and write in threads of their own while decoding goes on
    (:class:`_Pipeline`; the same bytes written).

    Frames wait in memory only until their region is known (T - 1 + k frames or so, more
    where faces are missing) and, pipelined, until the writer has written them; beyond
    :data:`MAX_BUFFERED_BYTES` (waiting and queued frames together) the decoding first waits
    for the writer and the detector, then drops the oldest waiting frames, which are decoded
    again at the end (a second, partial pass). The looked-at frames of the detection batches
    not yet taken are held besides (at most 1 + :data:`DETECTION_BATCHES_IN_FLIGHT` batches).
    Returns the regions.
    """
    regions = np.zeros((num_frames, 4), dtype=np.int64)
    waiting: dict[int, np.ndarray] = {}  # decoded frames whose region is not final yet
    dropped: list[int] = []  # frames to decode again at the end
    pending: list[tuple[int, np.ndarray]] = []  # looked-at frames waiting for a detection batch (kept even when
    # dropped from ``waiting``: at most one batch)
    batch = detection_batch_size(detector, pipeline)
    k = stream.detect_every
    last_looked_at = (num_frames - 1) // k * k
    checked = False
    # a GPU detector runs in this thread: cuDNN's plans are cached per thread (detectors.runs_on_gpu)
    work = _Pipeline(pipeline, detect=detector is not None and not runs_on_gpu(detector),
                     helpable_detector=bool(getattr(detector, "thread_safe", False)))

    def advance(decoded: int, wait: bool = False) -> None:
        """Take the finished detection batches (``wait``: at least the oldest), then hand the
        regions now final (of the frames before ``decoded``) to the writer."""
        nonlocal checked
        for found in work.detected(wait):
            for i, rows, signature in found:
                stream.add(i, rows)
                if signatures is not None:
                    signatures[i] = signature
        if stream.complete and not checked:  # every detection known: fail before writing the rest
            check_coverage(sum(1 for rows in stream.detections.values() if len(rows)))
            checked = True
        jobs, nbytes = [], 0
        for i, region in stream.ready(until=decoded):
            regions[i] = region
            frame = waiting.pop(i, None)
            if frame is not None:  # else dropped: written at the end
                jobs.append(writer.job(i, frame, region))
                nbytes += frame.nbytes
                if len(jobs) == WRITE_CHUNK:
                    work.write(jobs, nbytes)
                    jobs, nbytes = [], 0
        if jobs:
            work.write(jobs, nbytes)

    try:
        for index, frame in video.iter_frames(0, num_frames):
            waiting[index] = frame
            if detector is not None and index % k == 0:
                pending.append((index, frame))
                if len(pending) >= batch or index == last_looked_at:
                    while len(work.detecting) >= DETECTION_BATCHES_IN_FLIGHT:
                        advance(index + 1, wait=True)
                    work.detect(_detect_batch, detector, pending, signatures is not None)
                    pending = []
            advance(index + 1)
            while waiting and len(waiting) * frame.nbytes + work.writing_bytes > MAX_BUFFERED_BYTES:
                if work.writing:  # pipelined: the writer is behind, wait for it
                    work.written(wait=True)
                elif work.detecting:  # the detector is behind: its regions free frames
                    advance(index + 1, wait=True)
                else:
                    oldest = min(waiting)
                    del waiting[oldest]
                    dropped.append(oldest)
        while work.detecting:
            advance(num_frames, wait=True)
        if not checked:
            check_coverage(sum(1 for rows in stream.detections.values() if len(rows)))
        advance(num_frames)
        for start in range(0, len(dropped), WRITE_CHUNK):
            chunk = sorted(dropped[start:start + WRITE_CHUNK])
            frames = video.read(chunk)
            work.write([writer.job(i, frame, regions[i]) for i, frame in zip(chunk, frames)], frames.nbytes)
        work.finish()
    finally:
        work.close()
    return regions


def source_face_detections(
    source: str | os.PathLike[str], detector: Any, detect_every: int, fake: object, tracks: bool = False
) -> tuple[dict[int, "np.ndarray"], tuple[int, int], list | None, int]:
    """The detections, frame size, (``tracks``) face tracks and frame count of a fake's source: from
    its ``extract-faces`` folder (when made with the same ``detect_every``; its recorded tracks, or
    tracks linked now from its detections when it has none), else detected in the source video now."""
    from ..errors import SourceMismatchError, VideoError

    source = Path(source)
    meta_file = source / "faces.json"
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        if meta.get("crop_policy") == CROP_POLICY and int(meta["detect_every"]) == detect_every:
            detections = read_detections(meta)
            found = None
            if tracks:
                found = (tracks_from_json(meta["tracks"], detections) if meta.get("tracks") is not None
                         else link_tracks(detections))
            return detections, tuple(meta["frame_size"]), found, int(meta["num_frames"])
        raise SourceMismatchError(fake, f"{meta_file} was made with other settings (detect_every "
                                  f"{meta.get('detect_every')}, expected {detect_every})")
    if detector is None:
        raise SourceMismatchError(fake, "cropping with the source's boxes needs a face detector, not 'none'")
    try:
        with VideoReader(source) as video:
            signatures: dict[int, np.ndarray] | None = {} if tracks else None
            detections = _detect_every_kth(video, video.num_frames, detect_every, detector, signatures)
            return (detections, video.size, (link_tracks(detections, signatures) if tracks else None),
                    video.num_frames)
    except VideoError as err:
        raise SourceMismatchError(fake, f"its source video cannot be read: {err}") from err


def _detect_every_kth(video: Any, num_frames: int, detect_every: int, detector: Any,
                      signatures: dict[int, "np.ndarray"] | None = None) -> dict[int, "np.ndarray"]:
    """Detections of frames 0, k, 2k, ..., batched for the detector (``signatures``: filled with
    the face thumbnails, for face tracks). Decoding runs front to back; only the looked-at
    frames are converted to RGB arrays."""
    looked_at = list(range(0, num_frames, detect_every))
    detections: dict[int, np.ndarray] = {}
    for start in range(0, len(looked_at), DETECTION_BATCH):
        chunk = looked_at[start:start + DETECTION_BATCH]
        frames = video.read(chunk)
        detections.update(zip(chunk, map(quantize_detections, detect_faces(frames, detector))))
        if signatures is not None:
            signatures.update((i, face_signatures(frame, detections[i])) for i, frame in zip(chunk, frames))
    return detections
