"""PyTorch datasets of labelled face clips for training and evaluation.

* :class:`VideoDataset`: a manifest of video files; each item is decoded, face-detected
  and cropped on the fly (:class:`~dynsnip.data.pipeline.FaceClipLoader`). Simple, but
  every item seeks in the video and runs the detector.
* :class:`FaceFramesDataset`: folders of face crops written once by ``dynsnip
  extract-faces`` (or any folder of consecutive frame images): the usual FF++ workflow.

A frame folder (:func:`frame_sequence`) holds images named ``<prefix><number>.<ext>``
(``000000.png``, ``frame_0001.jpg``); the most common prefix and extension make the
sequence, numbered with a constant step (1 for ``extract-faces``). Image files outside that
pattern (``cover.png``) are ignored with a :class:`StrayFrameFileWarning`; other files
(``faces.json``) silently. A snippet is sampled by position in the sequence, and a snippet
whose frames are not consecutive (frames 8-22 missing) fails with
:class:`~dynsnip.data.errors.FrameGapError` (reason ``frame_gap``): the jump would be read as
the very motion DIL scores. Only regular files are opened: a frame that is a FIFO, a device
or a broken link fails the folder (``bad_frame_folder``) instead of hanging the reader. A
folder that ``extract-faces`` is still writing or left unfinished (name ending in
``.partial``, or holding its ``.owner`` record) fails with
:class:`~dynsnip.data.errors.IncompleteFolderError` (``incomplete_folder``): its frames
are not all there (:mod:`~dynsnip.data.faces.folder_source`).

Both return ``(pixels, label)``: ``pixels`` float32 ``(3, U*T, H, W)`` (batch them into
the model's ``(B, 3, U*T, H, W)``), ``label`` a float32 scalar, 1.0 = fake (binary
cross-entropy on the detector's single logit, as in the paper).
"""
from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from ._optional import require
from .faces.crop import crop_and_resize
from .errors import FrameFolderError, FrameGapError, IncompleteFolderError, LowFaceCoverageError, NoFaceError
from .faces.crop_policy import DEFAULT_MIN_FACE_COVERAGE
from .faces.face_folder import FaceFolder
from .faces.folder_source import incomplete_folder_problem
from .manifest import ManifestEntry, check_entries, parse_split, read_manifest
from .pipeline import FaceClipLoader, data_config_from_model
from .sampling import ShortVideoPolicy, sample_snippets
from .transforms import frames_to_tensor, random_horizontal_flip

np = require("numpy")
Image = require("PIL.Image")

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_FRAME_NAME = re.compile(r"^(?P<prefix>.*?)(?P<number>\d+)$")


class StrayFrameFileWarning(UserWarning):
    """An image file in a frame folder that is not one of its numbered frames (ignored)."""


def _entries(source: Any, split: str | None) -> list[ManifestEntry]:
    if isinstance(source, (str, os.PathLike)):
        return read_manifest(source, split=split)
    entries = list(source)
    check_entries(entries, "manifest entries")
    split = parse_split(split, "requested split: ") if split is not None else None
    return [e for e in entries if split is None or e.split == split]


class VideoDataset(Dataset):
    """Face clips decoded from the videos of a manifest.

    An entry with a ``source`` (the real video it was made from; manifests of the benchmark
    datasets carry it) is cropped with the source's face boxes (the default for such
    manifests: detector misses and bias on fakes cannot leak into the labels).

    Args:
        manifest: a CSV/JSON manifest path (see :mod:`dynsnip.data.manifest`) or entries.
        loader: the :class:`FaceClipLoader` (U, T, size, detector, augmentation); e.g.
            ``FaceClipLoader.from_model(model, num_snippets=4, train=True)`` for training.
        split: keep only entries of this split (None: all).
        faces: ``"largest"`` (default): each item is the clip of the video's largest face;
            ``"all"`` (evaluation only: ``loader.train`` False): each item holds the clips of
            every scorable face track of the video, ``pixels`` ``(K, 3, U*T, H, W)``
            (:meth:`FaceClipLoader.load_tracks`), which :func:`~dynsnip.engine.evaluate.evaluate`
            scores and reduces to one video score. Training on every face needs
            ``extract-faces`` folders (they record which face of a fake was swapped).
    """

    def __init__(self, manifest: Any, loader: FaceClipLoader, split: str | None = None, faces: str = "largest"):
        if faces not in ("largest", "all"):
            raise ValueError(f"faces must be 'largest' or 'all', got {faces!r}")
        if faces == "all" and getattr(loader, "train", False):
            raise ValueError("VideoDataset(faces='all') is for evaluation (one item holds every face of a video); "
                             "to train on every face, extract the faces first (dynsnip extract-faces: it finds which "
                             "face of a fake was swapped) and train on the folders, or use faces='largest'")
        self.entries = _entries(manifest, split)
        self.loader = loader
        self.faces = faces

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        entry = self.entries[index]
        source = entry_source(entry)
        options = {} if source is None else {"boxes_from": source}
        if self.faces == "all":
            video = self.loader.load_tracks(entry.path, **options)
            return torch.stack([clip.pixels for _, clip in sorted(video.clips.items())]), torch.tensor(float(entry.label))
        clip = self.loader(entry.path, **options)
        return clip.pixels, torch.tensor(float(entry.label))


def entry_source(entry: Any) -> Path | None:
    """The real video a manifest entry (a fake) was made from: its ``source`` (or ``original``)
    column, or None. Its face boxes crop the fake (see :class:`FaceClipLoader`)."""
    source = getattr(entry, "source", None) or getattr(entry, "original", None)
    return None if source in (None, "") else Path(source)


@dataclass(frozen=True)
class FrameSequence:
    """The numbered frames of a folder in time order: ``paths[i]`` is frame ``numbers[i]``;
    consecutive frames differ by ``step``."""

    folder: Path
    paths: list[Path]
    numbers: list[int]
    step: int

    def check_consecutive(self, indices: "torch.Tensor") -> None:
        """Raise :class:`FrameGapError` if a snippet (row of ``indices``, positions in
        :attr:`paths`) spans a gap in the numbering."""
        from .sampling import first_jump

        numbers, step = self.numbers, self.step
        if (jump := first_jump(indices, lambda a, b: numbers[b] - numbers[a] != step)) is None:
            return
        u, row, a, b = jump
        raise FrameGapError(
            self.folder,
            f"snippet {u} (frames {numbers[row[0]]}-{numbers[row[-1]]}) spans a gap in the frame numbering: after "
            f"frame {numbers[a]} comes {numbers[b]} (step {step}); a snippet must be consecutive frames, since the "
            "jump would be scored as motion. Extract the frames again, or leave this folder out of the manifest",
        )


def _regular_file(path: Path | os.DirEntry) -> bool:
    try:
        return path.is_file()  # follows links; False for FIFOs, sockets, devices, broken links
    except OSError:
        return False


def frame_sequence(folder: str | os.PathLike[str]) -> FrameSequence:
    """The frames of ``folder`` (see module docstring).

    Raises:
        FileNotFoundError: no such folder, or no numbered images in it.
        IncompleteFolderError: an ``extract-faces`` folder being written or left unfinished.
        FrameFolderError: two files with one frame number, or a frame that is not a regular file.
    Warns:
        StrayFrameFileWarning: image files that are not frames of the sequence (ignored).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: expected a folder of face frames (from `dynsnip extract-faces`)")
    if problem := incomplete_folder_problem(folder):
        raise IncompleteFolderError(folder, problem)
    named: list[tuple[str, str, int, Path]] = []
    stray: list[str] = []
    regular: set[str] = set()
    with os.scandir(folder) as listing:  # DirEntry.is_file(): no stat per frame (one per link)
        for entry in listing:
            p = Path(entry.path)
            if p.suffix.lower() not in FRAME_SUFFIXES:
                continue
            if _regular_file(entry):
                regular.add(entry.name)
            match = _FRAME_NAME.match(p.stem)
            if match is None:
                stray.append(p.name)
            else:
                named.append((match["prefix"], p.suffix.lower(), int(match["number"]), p))
    if not named:
        raise FileNotFoundError(f"{folder}: no frame images (numbered, e.g. 000000.png; {', '.join(FRAME_SUFFIXES)}) in it")
    pattern, _ = Counter((prefix, suffix) for prefix, suffix, _, _ in named).most_common(1)[0]
    stray += [p.name for prefix, suffix, _, p in named if (prefix, suffix) != pattern]
    frames = sorted((number, p) for prefix, suffix, number, p in named if (prefix, suffix) == pattern)
    if stray:
        shown = ", ".join(sorted(stray)[:5]) + (f" and {len(stray) - 5} more" if len(stray) > 5 else "")
        warnings.warn(f"{folder}: ignoring {len(stray)} image file(s) that are not frames "
                      f"'{pattern[0]}<number>{pattern[1]}': {shown}", StrayFrameFileWarning, stacklevel=2)
    numbers = [number for number, _ in frames]
    for (n0, p0), (n1, p1) in zip(frames, frames[1:]):
        if n0 == n1:
            raise FrameFolderError(folder, f"{p0.name} and {p1.name} are both frame {n0}; expected one file per frame")
    for number, p in frames:
        if p.name not in regular:
            raise FrameFolderError(folder, f"frame {number} ({p.name}) is not a regular file (a FIFO, socket, device "
                                           "or broken link); expected image files only")
    diffs = [b - a for a, b in zip(numbers, numbers[1:])]
    return FrameSequence(folder, [p for _, p in frames], numbers, min(diffs) if diffs else 1)


def list_frames(folder: str | os.PathLike[str]) -> list[Path]:
    """The frame images of ``folder`` in time order (:func:`frame_sequence`)."""
    return frame_sequence(folder).paths


class FaceFramesDataset(Dataset):
    """Face clips sampled from folders of pre-cropped consecutive frames.

    Args:
        manifest: manifest path or entries whose ``path`` is a frame folder (``dynsnip
            extract-faces --manifest`` writes one), see also :meth:`from_class_folders`.
        num_snippets: U (paper: 4 for training, 8 for testing).
        snippet_len: T (paper: 4).
        size: ``(height, width)`` the frames are resized to (the model's input size).
        mean, std, interpolation: the model's data config.
        train: random snippet offsets and the paper's random horizontal flip.
        hflip_prob: flip probability when ``train``.
        short_video: policy for folders with fewer than U*T frames (see
            :mod:`dynsnip.data.sampling`).
        split: keep only entries of this split.
        faces: ``"largest"`` (default): one item per folder, its largest face (as before face
            tracks); ``"all"``: one item per face track that the folder's ``faces.json`` lists
            as a sample (``extract-faces`` with face tracks: every kept track of a real video or
            of a fake without a source, the manipulated track(s) of a fake with one), each with
            the folder's label; a folder without face tracks gives one item, its largest face.
            :attr:`entries` then has one entry per item (repeated for the tracks of a folder),
            and :attr:`tracks` the track of each; items of one folder share its id in
            reports (``evaluate`` takes the most suspicious, ``video_score``).
        min_face_coverage: with ``faces="all"``, a track item whose face is found in fewer of the
            snippets' looked-at frames than this fraction fails with
            :class:`~dynsnip.data.errors.LowFaceCoverageError` (in none: ``NoFaceError``), the
            per-track rule of ``predict`` (docs/video.md, *Scoring*), so a face seen on a quarter
            of the video is neither trained on nor scored from borrowed boxes (0 turns it off).
    """

    def __init__(
        self,
        manifest: Any,
        num_snippets: int = 4,
        snippet_len: int = 4,
        size: tuple[int, int] = (224, 224),
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        interpolation: str = "bilinear",
        train: bool = False,
        hflip_prob: float = 0.5,
        short_video: ShortVideoPolicy = "overlap",
        split: str | None = None,
        faces: str = "largest",
        min_face_coverage: float = DEFAULT_MIN_FACE_COVERAGE,
    ):
        if faces not in ("largest", "all"):
            raise ValueError(f"faces must be 'largest' or 'all', got {faces!r}")
        self.entries = _entries(manifest, split)
        self.faces = faces
        self.tracks: list[int | None] = [None] * len(self.entries)
        if faces == "all":  # one item per sample track of each folder
            items = [(entry, track) for entry in self.entries
                     for track in (FaceFolder.sample_tracks(entry.path) or [None])]
            self.entries = [entry for entry, _ in items]
            self.tracks = [track for _, track in items]
        self.num_snippets = num_snippets
        self.snippet_len = snippet_len
        self.size = tuple(size)
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.interpolation = interpolation
        self.train = train
        self.hflip_prob = hflip_prob
        self.short_video = short_video
        self.min_face_coverage = float(min_face_coverage)

    @classmethod
    def from_model(cls, manifest: Any, model: torch.nn.Module, **overrides: Any) -> "FaceFramesDataset":
        """A dataset with ``model``'s input size, mean/std and T; ``overrides`` win
        (e.g. ``num_snippets=4, train=True``; the default U is the model's test U)."""
        return cls(manifest, **{**data_config_from_model(model), **overrides})

    @classmethod
    def from_class_folders(
        cls, root: str | os.PathLike[str], classes: dict[str, int] | None = None, **kwargs: Any
    ) -> "FaceFramesDataset":
        """Frame folders laid out as ``root/<class>/<video>/`` (default classes: real=0, fake=1).
        Every folder is an entry, but hidden ones (names starting with ``.``): one that ``extract-faces``
        has not finished (``<video>.partial``) fails when read, with reason ``incomplete_folder``, and is
        reported, not read as complete."""
        root = Path(root)
        classes = classes or {"real": 0, "fake": 1}
        entries = []
        for name, label in classes.items():
            class_dir = root / name
            if not class_dir.is_dir():
                raise FileNotFoundError(f"{class_dir}: missing class folder; expected {sorted(classes)} under {root}")
            # hidden folders are no videos' (a ".<name>.partial.claim-*" left by a killed extract-faces)
            entries += [ManifestEntry(p, label) for p in sorted(class_dir.iterdir())
                        if p.is_dir() and not p.name.startswith(".")]
        return cls(entries, **kwargs)

    def __len__(self) -> int:
        return len(self.entries)

    def item_info(self, index: int) -> dict[str, Any]:
        """``{"id", "method", "face_coverage"}`` of item ``index`` for reports: the coverage
        extract-faces recorded for the folder (None for folders of ready crops)."""
        entry = self.entries[index]
        info = {"id": str(entry.path), "method": entry.method, "face_coverage": FaceFolder.recorded_coverage(entry.path)}
        if self.tracks[index] is not None:
            info["track"] = self.tracks[index]
        return info

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        entry = self.entries[index]
        frames = frame_sequence(entry.path)
        folder = FaceFolder.open(entry.path, frames.paths)
        indices = sample_snippets(
            len(frames.paths), self.num_snippets, self.snippet_len, train=self.train, short_video=self.short_video,
            align=folder.detect_every if folder is not None and folder.detections else None, source=entry.path,
        )
        frames.check_consecutive(indices)
        if folder is not None:
            folder.check_consecutive(indices)
        if folder is not None:  # extract-faces output: the crop policy cuts the snippets' crops
            crops = folder.snippet_boxes(indices.numpy(), track=self.tracks[index])
            if self.tracks[index] is not None:
                self._check_track_coverage(entry.path, self.tracks[index], crops, folder.detect_every)
            images = folder.cut(indices.numpy(), crops, self.size, self.interpolation)
        else:
            images = np.stack([self._load(frames.paths[i]) for i in indices.flatten().tolist()])
        pixels = frames_to_tensor(images, self.mean, self.std)
        if self.train:
            pixels = random_horizontal_flip(pixels, self.hflip_prob)
        return pixels, torch.tensor(float(entry.label))

    def _check_track_coverage(self, folder: Path, track: int, crops: Any, detect_every: int) -> None:
        """Raise as ``predict`` fails a face track (:meth:`FaceClipLoader.load_tracks`): found in none
        of the snippets' looked-at frames (``no_face``), or in fewer than ``min_face_coverage``
        of them (``low_face_coverage``)."""
        every = f" (every {detect_every}th frame)" if detect_every > 1 else ""
        if crops.frames_with_face == 0:
            raise NoFaceError(folder, f"face track {track} is in none of the {crops.frames_checked} sampled frames "
                                      f"the detector looked at{every}")
        if crops.coverage < self.min_face_coverage:
            raise LowFaceCoverageError(folder, crops.coverage, self.min_face_coverage, crops.frames_checked,
                                       which=f"sampled frames the detector looked at{every} (face track {track})",
                                       advice="a face seen on too few frames is not trained on or scored, as in "
                                              "predict (docs/video.md, Scoring)")

    def _load(self, path: Path) -> "np.ndarray":
        if not _regular_file(path):  # replaced since it was listed: never open a FIFO
            raise FrameFolderError(path.parent, f"{path.name} is not a regular file any more; expected an image file")
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
        if rgb.shape[:2] == self.size:
            return rgb
        return crop_and_resize(rgb[None], None, self.size, self.interpolation)[0]
