"""Read a frame folder written by ``dynsnip extract-faces`` through the one crop policy.

The folder holds each frame's context region and ``faces.json`` (detections of the frames
the detector looked at, each frame's region in video pixels; see
:mod:`dynsnip.data.faces.extraction`). :meth:`FaceFolder.clip_frames` calls the same
:func:`~dynsnip.data.faces.crop_policy.snippet_crops` as ``predict`` and cuts each snippet's crop
out of the regions, so the clip equals the one ``predict`` makes from the video.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .._optional import require
from .crop import crop_and_resize
from .crop_policy import SnippetCrops, snippet_crops
from .extraction import CROP_POLICY, read_detections
from .tracks import FaceTrack, tracks_from_json

np = require("numpy")
Image = require("PIL.Image")


class FaceFolder:
    """One extracted video: its ``faces.json`` and frame images.

    Args:
        folder: the video's output folder of ``extract-faces``.

    Raises:
        ValueError: ``faces.json`` is of another format (an older extraction).
    """

    def __init__(self, folder: str | os.PathLike[str], frames: list[Path]):
        self.folder = Path(folder)
        meta = json.loads((self.folder / "faces.json").read_text())
        if meta.get("crop_policy") != CROP_POLICY:
            raise ValueError(f"{self.folder}/faces.json: crop policy {meta.get('crop_policy')!r}, expected {CROP_POLICY!r}")
        self.frames = frames
        self.num_frames = int(meta["num_frames"])
        self.frame_size = tuple(meta["frame_size"])
        self.margin = float(meta["margin"])
        self.detect_every = int(meta["detect_every"])
        self.scale = meta.get("scale")
        self.detections = read_detections(meta)
        self.regions = np.array([f["region"] for f in meta["frames"]], dtype=np.int64)
        # face tracks (extract-faces --faces all); None for folders written without them
        self.tracks: list[FaceTrack] | None = (tracks_from_json(meta["tracks"], self.detections)
                                               if meta.get("tracks") is not None else None)
        self.samples: list[int] | None = (list(meta["samples"]["tracks"]) if meta.get("samples") is not None
                                          else None)
        if len(frames) != self.num_frames:
            raise ValueError(f"{self.folder}: {len(frames)} frame images, faces.json lists {self.num_frames}")

    @staticmethod
    def recorded_coverage(folder: str | os.PathLike[str]) -> float | None:
        """The ``face_coverage`` extract-faces recorded for ``folder`` (the fraction of the frames
        its detector looked at that showed a face), or None when it recorded none."""
        meta = Path(folder) / "faces.json"
        try:
            value = json.loads(meta.read_text()).get("face_coverage") if meta.is_file() else None
        except (OSError, ValueError, AttributeError):
            return None
        return float(value) if isinstance(value, (int, float)) else None

    @staticmethod
    def sample_tracks(folder: str | os.PathLike[str]) -> list[int] | None:
        """The face tracks of ``folder`` that are training samples (``faces.json``'s ``samples``:
        every kept track, or a fake's manipulated ones), without reading its frames; None for a
        folder written without face tracks (its largest face is the sample)."""
        meta = Path(folder) / "faces.json"
        try:
            samples = json.loads(meta.read_text()).get("samples") if meta.is_file() else None
        except (OSError, ValueError, AttributeError):
            return None
        return [int(t) for t in samples["tracks"]] if isinstance(samples, dict) else None

    @staticmethod
    def open(folder: str | os.PathLike[str], frames: list[Path]) -> "FaceFolder | None":
        """The folder read through the crop policy, or None when it has no such ``faces.json``
        (a folder of ready crops: the frames are used whole)."""
        meta = Path(folder) / "faces.json"
        if not meta.is_file() or CROP_POLICY not in meta.read_text()[:200]:
            return None
        return FaceFolder(folder, frames)

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

    def cut(self, frame_indices: "np.ndarray", crops: SnippetCrops, size: tuple[int, int],
            interpolation: str) -> "np.ndarray":
        """Each snippet's crop (``crops.boxes[u]``) out of its frames' regions: ``(U*T, H, W, 3)`` uint8."""
        frame_indices = np.asarray(frame_indices)
        out = np.empty((frame_indices.size, *size, 3), dtype=np.uint8)
        for n, (u, index) in enumerate(np.ndindex(*frame_indices.shape)):
            frame = int(frame_indices[u, index])
            with Image.open(self.frames[frame]) as image:
                region = np.asarray(image.convert("RGB"))
            local = (crops.boxes[u] - np.tile(self.regions[frame][:2], 2)).astype(np.float64)
            if self.scale is not None:
                local = np.round(local * self.scale)
            height, width = region.shape[:2]
            local = np.clip(local, 0, [width, height, width, height])  # a borrowed box may reach outside
            if local[2] <= local[0] or local[3] <= local[1]:
                local = np.array([0, 0, width, height], dtype=np.float64)
            out[n] = crop_and_resize(region[None], [tuple(local)], size, interpolation)[0]
        return out
