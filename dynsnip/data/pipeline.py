"""Video file -> normalised face clip ``(3, U*T, H, W)``: sample, decode, detect, crop.

:class:`FaceClipLoader` chains the steps of this package for one video:

1. :func:`~dynsnip.data.sampling.sample_snippets` picks U snippets of T frames;
2. :class:`~dynsnip.data.decode.VideoReader` decodes exactly those frames;
3. the face detector runs on the frames whose index is a multiple of ``detect_every``, and
   :func:`~dynsnip.data.faces.crop_policy.snippet_crops` (the one crop policy, shared with
   ``extract-faces`` and the frame-folder dataset) gives one box per snippet; a snippet
   without any face borrows the box of the nearest snippet that has one (flagged in
   ``FaceClip.face_found``); a video without any face raises
   :class:`~dynsnip.data.errors.NoFaceError`; every scored frame is checked to still show
   the face found on its looked-at frame (:mod:`~dynsnip.data.faces.face_shown`), and
   a clip where too few do raises :class:`~dynsnip.data.errors.LowFaceCoverageError`;
4. the square crop (``margin`` around the box) is resized to the model's input size and
   normalised with the model's mean/std.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch

from ._optional import require
from .faces.crop import crop_and_resize
from .faces.crop_policy import (
    DEFAULT_DETECT_EVERY,
    DEFAULT_MIN_FACE_COVERAGE,
    SnippetCrops,
    check_detect_every,
    detection_frames,
    snippet_crops,
)
from .decode import VideoReader
from .errors import LowFaceCoverageError, NoFaceError, no_face_message
from .faces.detectors import DEFAULT_FACE_DETECTOR, DetectorSpec, create_face_detector, detect_faces
from .faces.face_shown import not_shown_error, shows_face
from .sampling import ShortVideoPolicy, distinct_snippets, sample_snippets
from .transforms import frames_to_tensor, random_horizontal_flip

np = require("numpy")


@dataclass
class FaceClip:
    """One video's model input and where it came from.

    Attributes:
        pixels: float32 ``(3, U*T, H, W)``, normalised, frames ordered snippet by snippet.
        frame_indices: int64 ``(U, T)``, the video frames behind ``pixels``.
        crop_boxes: int64 ``(U, 4)`` ``(x0, y0, x1, y1)`` crop of each snippet in frame pixels
            (the whole frame with ``face_detector="none"``).
        face_found: bool ``(U,)``; False where the snippet had no face and borrowed a box.
        frames_checked: sampled frames the detector looked at (0 with ``face_detector="none"``).
        frames_with_face: of those, the frames where it found a face.
        frames_scored: frames in ``pixels`` that were checked for the face (U*T; 0 without a detector).
        frames_showing_face: of those, the frames that show the face found on their looked-at
            frame (:mod:`~dynsnip.data.faces.face_shown`).
        most_faces: the most faces the detector found in one looked-at frame (0 without a
            detector; more than 1: a clip of the largest face may show different people).
        snippet_showing: int64 ``(U,)``, per snippet its frames that show the face (of T; None
            without a detector): fewer than T marks a snippet with frames that do not (a hand
            over the face, the face leaving, a cut to another shot inside the snippet).
        timestamps: float64 ``(U, T)`` presentation time of each frame in seconds.
        num_frames: frames in the whole video.
        fps: the video's average frame rate.
    """

    pixels: torch.Tensor
    frame_indices: torch.Tensor
    crop_boxes: torch.Tensor
    face_found: torch.Tensor
    timestamps: torch.Tensor
    num_frames: int
    fps: float
    frames_checked: int = 0
    frames_with_face: int = 0
    frames_scored: int = 0
    frames_showing_face: int = 0
    track: int | None = None
    most_faces: int = 0
    snippet_showing: "np.ndarray | None" = None

    @property
    def face_coverage(self) -> float:
        """Fraction of the scored frames that show the face (1.0 without a detector; the looked-at
        frames with a face where the scored frames were not checked)."""
        if self.frames_scored:
            return self.frames_showing_face / self.frames_scored
        return self.frames_with_face / self.frames_checked if self.frames_checked else 1.0


@dataclass
class VideoTracks:
    """Every face of one video, followed (:mod:`~dynsnip.data.faces.tracks`) and cropped.

    Attributes:
        tracks: every face track, kept and dropped (``status``), in id order.
        clips: track id -> :class:`FaceClip` of each kept track whose face is found in enough
            of the snippets' looked-at frames (``min_face_coverage``): the tracks to score.
        failures: track id -> the :class:`~dynsnip.data.errors.VideoError` of each kept track
            that is not scored (its face found in too few of the snippets' looked-at frames:
            ``low_face_coverage``, or in none of them: ``no_face``), with its ``coverage``.
        frame_indices: int64 ``(U, T)``, the same snippets for every track.
        num_frames, fps: of the video.
        frames_looked_at: the looked-at frames of the whole video the tracks were linked on.
    """

    tracks: list
    clips: dict
    failures: dict
    frame_indices: torch.Tensor
    num_frames: int
    fps: float
    frames_looked_at: int

    def track(self, track_id: int) -> Any:
        return next(t for t in self.tracks if t.id == track_id)


def data_config_from_model(model: torch.nn.Module) -> dict[str, Any]:
    """Input size, interpolation, mean/std (timm's data config) and T / test U of a DIL model."""
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=model)
    return dict(
        size=tuple(config["input_size"][1:]),
        interpolation=config["interpolation"],
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        snippet_len=int(getattr(model, "snippet_len", 4)),
        num_snippets=int(getattr(model, "test_num_snippets", 8)),
    )


class FaceClipLoader:
    """Turns a video file into a :class:`FaceClip`.

    Args:
        num_snippets: U (paper: 4 for training, 8 for inference).
        snippet_len: T (paper: 4); must match the model's ``snippet_len``.
        size: ``(height, width)`` of the crops (paper: 224x224, the model's ``input_size``).
        mean, std: normalisation (the model's data config; defaults: ImageNet).
        interpolation: resampling of the crops (the model's data config).
        face_detector: ``"auto"`` (default: BlazeFace, MTCNN on the frames where it finds
            nothing), ``"blazeface"``, ``"dlib"``, ``"mtcnn"``, ``"none"`` for already-cropped input (frames
            are resized whole), or a callable, see :mod:`dynsnip.data.faces.detectors`.
        margin: crop side / face-box side; 1.3 is the FaceForensics++ convention.
        detect_every: the detector looks at frames whose index is a multiple of this (k;
            see :mod:`dynsnip.data.faces.crop_policy`). k <= T: every snippet holds one; k > T:
            snippets between two looked-at frames get a box interpolated between them, and
            evaluation snippets (``train=False``) are placed to hold one, so that the
            detector still runs once per snippet. Must match the ``detect_every`` of
            ``extract-faces`` folders for identical crops. Default and measurement:
            :data:`~dynsnip.data.faces.crop_policy.DEFAULT_DETECT_EVERY`, docs/video.md.
        min_face_coverage: a video whose face is found in fewer of the looked-at frames than
            this fraction, or shown in fewer of the scored frames
            (:mod:`~dynsnip.data.faces.face_shown`), raises
            :class:`~dynsnip.data.errors.LowFaceCoverageError` (0.5: more than half of the
            crops would be borrowed or show something else; 0 turns the checks off).
        train: random snippet offsets and random horizontal flip (paper's augmentation);
            False: deterministic snippets, no flip.
        hflip_prob: flip probability when ``train`` (0.5).
        short_video: policy for videos shorter than U*T frames, see
            :mod:`dynsnip.data.sampling`.
        cap_snippets: use at most as many snippets as the video has different ones
            (:func:`~dynsnip.data.sampling.distinct_snippets`); the clip then has fewer than
            ``num_snippets``. For scoring single videos; a dataset needs a fixed U.
    """

    def __init__(
        self,
        num_snippets: int = 8,
        snippet_len: int = 4,
        size: tuple[int, int] = (224, 224),
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        interpolation: str = "bilinear",
        face_detector: DetectorSpec = DEFAULT_FACE_DETECTOR,
        margin: float = 1.3,
        train: bool = False,
        hflip_prob: float = 0.5,
        short_video: ShortVideoPolicy = "overlap",
        detect_every: int = DEFAULT_DETECT_EVERY,
        min_face_coverage: float = DEFAULT_MIN_FACE_COVERAGE,
        cap_snippets: bool = False,
    ):
        check_detect_every(detect_every)
        self.num_snippets = num_snippets
        self.snippet_len = snippet_len
        self.size = tuple(size)
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.interpolation = interpolation
        self.face_detector = create_face_detector(face_detector)
        self.margin = margin
        self.train = train
        self.hflip_prob = hflip_prob
        self.short_video = short_video
        self.detect_every = int(detect_every)
        self.min_face_coverage = float(min_face_coverage)
        self.cap_snippets = cap_snippets

    @classmethod
    def from_model(cls, model: torch.nn.Module, **overrides: Any) -> "FaceClipLoader":
        """A loader matching ``model``'s input size, mean/std, T and test U; ``overrides`` win."""
        return cls(**{**data_config_from_model(model), **overrides})

    def __call__(
        self,
        path: str | os.PathLike[str],
        generator: torch.Generator | None = None,
        boxes_from: str | os.PathLike[str] | None = None,
    ) -> FaceClip:
        """Load the face clip of the video at ``path``.

        Args:
            boxes_from: the real video a fake was made from: the faces are detected in its
                frames (same indices) and the fake is cropped with those boxes, so detector
                misses and detector bias on fakes cannot leak into the labels.

        Raises:
            VideoError subclasses (see :mod:`dynsnip.data.errors`) naming the file and the
            problem: not found, corrupt, no video stream, unseekable, too short for a snippet,
            a snippet across a cut or pause (frame gap), no face.
        """
        with VideoReader(path) as video:
            num_snippets = self.num_snippets
            if self.cap_snippets:
                num_snippets = min(num_snippets, distinct_snippets(video.num_frames, self.snippet_len))
            indices = sample_snippets(
                video.num_frames,
                num_snippets,
                self.snippet_len,
                train=self.train,
                generator=generator,
                short_video=self.short_video,
                align=self.detect_every if self.face_detector is not None else None,
                source=path,
            )
            video.check_consecutive(indices)
            flat = indices.flatten().tolist()
            looked_at = [] if self.face_detector is None else detection_frames(indices, self.detect_every, video.num_frames)
            extra = sorted(set(looked_at) - set(flat))  # with k > T: looked-at frames outside the snippets
            decoded = video.read(flat + extra)  # (U*T + extra, H, W, 3)
            frames = decoded[:len(flat)]
            timestamps = torch.tensor([video.timestamp(i) for i in flat], dtype=torch.float64)
            num_frames, fps, frame_size = video.num_frames, video.fps, video.size
        if not looked_at:  # no detector: whole frames
            detect_in = decoded[:0]
        elif boxes_from is None:
            position = {index: n for n, index in enumerate(flat + extra)}
            detect_in = decoded[[position[i] for i in looked_at]]
        else:
            detect_in = _source_frames(path, boxes_from, looked_at, frame_size, num_frames)
        crops, detections = self._crop_boxes(path, indices, looked_at, detect_in, frame_size, num_frames)
        crop_boxes, face_found = crops.boxes, crops.face_found
        showing = scored = 0
        snippet_showing = None
        if looked_at:  # do the scored frames still show the face found on their looked-at frames?
            shown = shows_face(dict(zip(flat + extra, decoded)), indices.numpy(), crop_boxes, detections,
                               self.detect_every, num_frames)
            showing, scored = int(shown.sum()), shown.size
            snippet_showing = shown.sum(1).astype(np.int64)
            if showing < self.min_face_coverage * scored:
                raise not_shown_error(path, showing, scored, crops.frames_with_face, crops.frames_checked,
                                      self.min_face_coverage)
        crops_px = crop_and_resize(
            frames, np.repeat(crop_boxes, self.snippet_len, axis=0), self.size, self.interpolation
        )
        pixels = frames_to_tensor(crops_px, self.mean, self.std)
        if self.train:
            pixels = random_horizontal_flip(pixels, self.hflip_prob, generator)
        return FaceClip(
            pixels=pixels,
            frame_indices=indices,
            crop_boxes=torch.from_numpy(crop_boxes),
            face_found=torch.from_numpy(face_found),
            timestamps=timestamps.reshape(num_snippets, self.snippet_len),
            num_frames=num_frames,
            fps=fps,
            frames_checked=crops.frames_checked,
            frames_with_face=crops.frames_with_face,
            frames_scored=scored,
            frames_showing_face=showing,
            most_faces=crops.most_faces,
            snippet_showing=snippet_showing,
        )

    def _crop_boxes(
        self,
        path: object,
        indices: torch.Tensor,
        looked_at: list[int],
        frames: "np.ndarray",
        frame_size: tuple[int, int],
        num_frames: int,
    ) -> tuple[SnippetCrops, dict[int, "np.ndarray"]]:
        """The crop policy's boxes for the clip, and the detections they come from: detect on the
        looked-at frames (``frames``, in the order of ``looked_at``), then
        :func:`~dynsnip.data.faces.crop_policy.snippet_crops`."""
        width, height = frame_size
        if self.face_detector is None:
            boxes = np.tile(np.array([0, 0, width, height], dtype=np.int64), (len(indices), 1))
            return SnippetCrops(boxes, np.ones(len(indices), dtype=bool), 0, 0), {}
        found = detect_faces(frames, self.face_detector)
        crops = snippet_crops(indices.numpy(), dict(zip(looked_at, found)), frame_size, self.margin,
                              self.detect_every, num_frames)
        if crops.frames_with_face == 0:
            every = f" (every {self.detect_every}th frame index)" if self.detect_every > 1 else ""
            raise NoFaceError(path, no_face_message(len(looked_at), f"sampled frames the detector looked at{every}",
                                                    self.face_detector))
        if crops.coverage < self.min_face_coverage:
            raise LowFaceCoverageError(path, crops.coverage, self.min_face_coverage, crops.frames_checked,
                                       detector=self.face_detector)
        return crops, dict(zip(looked_at, found))

    def load_tracks(
        self,
        path: str | os.PathLike[str],
        generator: torch.Generator | None = None,
        boxes_from: str | os.PathLike[str] | None = None,
    ) -> VideoTracks:
        """Every face of the video at ``path``: its tracks, and a :class:`FaceClip` per kept track.

        One pass over the video: every looked-at frame (index a multiple of ``detect_every``) of
        the whole video is decoded and searched for faces (the frames ``extract-faces`` looks
        at, so both link the same tracks), the snippets' frames on the way. The detections
        are linked into tracks (:func:`~dynsnip.data.faces.tracks.link_tracks`); each kept
        track is cropped by the one crop policy given only its own detections, so a snippet
        where that face is missing borrows the box of its nearest snippet with it (flagged).
        All tracks share the snippets (the same U x T frames).

        Args:
            boxes_from: the real video a fake was made from: the tracks are those of the
                source's frames (same indices), so the fake's faces are where the source's are.

        Raises:
            NoFaceError: no face, only dropped tracks (static or short: the message says), or no
                kept track in any of the snippets' looked-at frames (nothing to score, even with
                ``min_face_coverage`` 0; the message names the tracks and where they are).
            LowFaceCoverageError: no kept track is found in enough of the snippets'
                looked-at frames (the best coverage is reported; ``err.tracks`` lists them).
            ValueError: no face detector (``face_detector="none"``: whole frames, no faces).
        """
        from .faces.tracks import kept_tracks, link_tracks, no_track_message

        if self.face_detector is None:
            raise ValueError("face tracks need a face detector; with face_detector='none' the whole frame is the clip")
        with VideoReader(path) as video:
            num_frames, fps, frame_size = video.num_frames, video.fps, video.size
            num_snippets = self.num_snippets
            if self.cap_snippets:
                num_snippets = min(num_snippets, distinct_snippets(num_frames, self.snippet_len))
            indices = sample_snippets(num_frames, num_snippets, self.snippet_len, train=self.train, generator=generator,
                                      short_video=self.short_video, align=self.detect_every, source=path)
            video.check_consecutive(indices)
            flat = indices.flatten().tolist()
            looked_at = list(range(0, num_frames, self.detect_every))
            anchors = detection_frames(indices, self.detect_every, num_frames)  # what the scored frames are traced to
            wanted = sorted(set(flat) | set(anchors))
            if boxes_from is None:
                detections, signatures, kept = _track_pass(video, looked_at, set(wanted), self.face_detector)
            else:
                kept = dict(zip(wanted, video.read(wanted)))
            frames = np.stack([kept[i] for i in flat])
            timestamps = torch.tensor([video.timestamp(i) for i in flat], dtype=torch.float64)
        if boxes_from is not None:
            detections, signatures = _source_track_pass(path, boxes_from, looked_at, frame_size, self.face_detector,
                                                        num_frames)
        tracks = link_tracks(detections, signatures)
        every = f" (every {self.detect_every}th frame)" if self.detect_every > 1 else ""
        if not kept_tracks(tracks):
            err = NoFaceError(path, no_track_message(tracks, len(looked_at), self.detect_every) if tracks
                              else no_face_message(len(looked_at), f"frames the detector looked at{every}",
                                                   self.face_detector))
            err.tracks = [t.summary() for t in tracks]
            raise err
        clips: dict[int, FaceClip] = {}
        failures: dict[int, LowFaceCoverageError | NoFaceError] = {}
        for track in kept_tracks(tracks):
            own = track.detections(looked_at)
            crops = snippet_crops(indices.numpy(), own, frame_size, self.margin, self.detect_every, num_frames)
            if crops.frames_with_face == 0:  # nothing of this face to score, whatever min_face_coverage says
                failures[track.id] = _track_not_sampled(path, track, crops.frames_checked, every)
                continue
            if crops.coverage < self.min_face_coverage:
                failures[track.id] = LowFaceCoverageError(path, crops.coverage, self.min_face_coverage,
                                                          crops.frames_checked, detector=self.face_detector)
                continue
            # do the scored frames still show this face (as for the single face, face_shown)?
            shown = shows_face(kept, indices.numpy(), crops.boxes, own, self.detect_every, num_frames)
            showing, scored = int(shown.sum()), shown.size
            if showing < self.min_face_coverage * scored:
                failures[track.id] = not_shown_error(path, showing, scored, crops.frames_with_face,
                                                     crops.frames_checked, self.min_face_coverage)
                continue
            clips[track.id] = self._clip(frames, indices, crops, timestamps, num_frames, fps, generator, track.id,
                                         scored, showing, shown.sum(1).astype(np.int64))
        if not clips:
            err = max(failures.values(), key=lambda err: err.coverage)  # the best of the faces
            if all(isinstance(e, NoFaceError) for e in failures.values()):  # no face in any sampled frame
                missed = ", ".join(f"track {t.id} (frames {t.frames[0]}-{t.frames[-1]})" for t in kept_tracks(tracks))
                err = NoFaceError(path, f"no face found in any of the {err.frames_checked} sampled frames the "
                                        f"detector looked at{every}: the video's face track(s), {missed}, lie "
                                        f"outside the sampled snippets; {_NOT_SAMPLED_ADVICE}")
            # as a scored video's report lists them (scoring.score_tracks): why each kept face is not scored
            err.tracks = [dict(t.summary(), status=failures[t.id].reason, face_coverage=round(failures[t.id].coverage, 4),
                               not_scored=failures[t.id].message) if t.id in failures
                          else t.summary() for t in tracks]
            raise err
        return VideoTracks(tracks, clips, failures, indices, num_frames, fps, len(looked_at))

    def _clip(self, frames: "np.ndarray", indices: torch.Tensor, crops: SnippetCrops, timestamps: torch.Tensor,
              num_frames: int, fps: float, generator: torch.Generator | None, track: int | None, scored: int = 0,
              showing: int = 0, snippet_showing: "np.ndarray | None" = None) -> FaceClip:
        """The :class:`FaceClip` of ``frames (U*T, H, W, 3)`` cropped as ``crops`` decided."""
        crops_px = crop_and_resize(frames, np.repeat(crops.boxes, self.snippet_len, axis=0), self.size,
                                   self.interpolation)
        pixels = frames_to_tensor(crops_px, self.mean, self.std)
        if self.train:
            pixels = random_horizontal_flip(pixels, self.hflip_prob, generator)
        return FaceClip(pixels=pixels, frame_indices=indices, crop_boxes=torch.from_numpy(crops.boxes),
                        face_found=torch.from_numpy(crops.face_found),
                        timestamps=timestamps.reshape(len(indices), self.snippet_len), num_frames=num_frames, fps=fps,
                        frames_checked=crops.frames_checked, frames_with_face=crops.frames_with_face,
                        frames_scored=scored, frames_showing_face=showing, track=track,
                        snippet_showing=snippet_showing)

    def __repr__(self) -> str:
        return (
            f"FaceClipLoader(num_snippets={self.num_snippets}, snippet_len={self.snippet_len}, "
            f"size={self.size}, face_detector={self.face_detector!r}, margin={self.margin}, "
            f"detect_every={self.detect_every}, train={self.train})"
        )


_NOT_SAMPLED_ADVICE = ("expected the face in the frames that are scored: cut the video to the part that shows the "
                      "face, or score more snippets (predict --snippets)")


def _track_not_sampled(path: object, track: Any, frames_checked: int, every: str) -> NoFaceError:
    """The failure of a kept face track found in none of the snippets' looked-at frames: nothing of
    that face to score, whatever ``min_face_coverage`` (even 0) says. ``coverage`` is 0."""
    err = NoFaceError(path, f"face track {track.id} (found in frames {track.frames[0]}-{track.frames[-1]}) is in "
                            f"none of the {frames_checked} sampled frames the detector looked at{every}; "
                            + _NOT_SAMPLED_ADVICE)
    err.coverage, err.frames_checked = 0.0, frames_checked
    return err


def source_frames_problem(source: object, source_frames: int, fake_frames: int) -> str | None:
    """Why a fake's source with ``source_frames`` frames cannot give the face boxes of the fake's
    ``fake_frames`` frames, or None. A shorter source has no boxes for the fake's later frames:
    cropping them with its last frame's box (a frozen box) would score whatever is there as the
    face, so the pair fails (``source_mismatch``), the same on the video route (``predict``,
    ``evaluate`` on videos) and in ``extract-faces``."""
    if source_frames >= fake_frames:
        return None
    return (f"its source {source} has {source_frames} frames, fewer than the {fake_frames} frames of the fake "
            "used: the fake's later frames would have no face boxes; expected the source video the fake was made "
            "from, at least as long as the fake (or its extract-faces folder of as many frames)")


@contextlib.contextmanager
def _source_video(path: object, source: str | os.PathLike[str], frame_size: tuple[int, int],
                  num_frames: int) -> Iterator[VideoReader]:
    """The source video of the fake ``path`` (of ``num_frames`` frames), open, checked to have the
    fake's frame size and at least its frames (:func:`source_frames_problem`); any failure reading
    it (inside the ``with`` block too) raised as a :class:`~dynsnip.data.errors.SourceMismatchError`."""
    from .errors import SourceMismatchError, VideoError

    try:
        with VideoReader(source) as video:
            if video.size != frame_size:
                raise SourceMismatchError(
                    path, f"its source video {source} is {video.size[0]}x{video.size[1]}, the fake "
                    f"{frame_size[0]}x{frame_size[1]}; expected the same frame size to share face boxes"
                )
            if problem := source_frames_problem(source, video.num_frames, num_frames):
                raise SourceMismatchError(path, problem)
            yield video
    except SourceMismatchError:
        raise
    except VideoError as err:
        raise SourceMismatchError(path, f"its source video cannot be read: {err}") from err


def _source_frames(
    path: object, source: str | os.PathLike[str], indices: Sequence[int], frame_size: tuple[int, int],
    num_frames: int,
) -> "np.ndarray":
    """The source video's frames at ``indices``, for its face boxes (the fake has ``num_frames``)."""
    with _source_video(path, source, frame_size, num_frames) as video:
        return video.read([int(i) for i in indices])


TRACK_PASS_CHUNK = 16  # frames decoded (and looked-at frames detected) at once in the track pass


def _track_pass(
    video: VideoReader, looked_at: list[int], keep: set[int], detector: Any
) -> tuple[dict[int, "np.ndarray"], dict[int, "np.ndarray"], dict[int, "np.ndarray"]]:
    """Decode the looked-at frames and the frames in ``keep`` front to back, in chunks; detect on
    the looked-at ones. Returns their detections and face thumbnails (by looked-at frame) and
    the frames of ``keep``."""
    from .faces.crop_policy import quantize_detections
    from .faces.tracks import face_signatures

    detections: dict[int, np.ndarray] = {}
    signatures: dict[int, np.ndarray] = {}
    kept: dict[int, np.ndarray] = {}
    wanted = sorted(set(looked_at) | keep)
    looking = set(looked_at)
    for start in range(0, len(wanted), TRACK_PASS_CHUNK):
        chunk = wanted[start:start + TRACK_PASS_CHUNK]
        decoded = video.read(chunk)
        kept.update((i, frame) for i, frame in zip(chunk, decoded) if i in keep)
        at = [n for n, i in enumerate(chunk) if i in looking]
        if at:
            for n, rows in zip(at, detect_faces(decoded[at], detector)):
                detections[chunk[n]] = rows = quantize_detections(rows)
                signatures[chunk[n]] = face_signatures(decoded[n], rows)
    return detections, signatures, kept


def _source_track_pass(
    path: object, source: str | os.PathLike[str], looked_at: list[int], frame_size: tuple[int, int], detector: Any,
    num_frames: int,
) -> tuple[dict[int, "np.ndarray"], dict[int, "np.ndarray"]]:
    """:func:`_track_pass` on a fake's source video (the fake has ``num_frames``), at the fake's looked-at frames."""
    with _source_video(path, source, frame_size, num_frames) as video:
        found, signatures, _ = _track_pass(video, sorted(looked_at), set(), detector)
    return found, signatures


def load_face_clip(path: str | os.PathLike[str], **loader_args: Any) -> FaceClip:
    """One-off: ``FaceClipLoader(**loader_args)(path)``."""
    return FaceClipLoader(**loader_args)(path)
