"""PyTorch datasets of labelled face clips for training and evaluation.

* :class:`VideoDataset`: a manifest of video files; each item is decoded, face-detected
  and cropped on the fly (:class:`~dynsnip.data.pipeline.FaceClipLoader`). Simple, but
  every item seeks in the video and runs the detector.
* :class:`FaceFramesDataset`: folders of face crops written once by ``dynsnip
  extract-faces`` (or any folder of consecutive frame images): the usual FF++ workflow.

Both return ``(pixels, label)``: ``pixels`` float32 ``(3, U*T, H, W)`` (batch them into
the model's ``(B, 3, U*T, H, W)``), ``label`` a float32 scalar, 1.0 = fake (binary
cross-entropy on the detector's single logit, as in the paper).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.utils.data import Dataset

from ._optional import require
from .crop import crop_and_resize
from .face_folder import FaceFolder
from .manifest import ManifestEntry, read_manifest
from .pipeline import FaceClipLoader, data_config_from_model
from .sampling import ShortVideoPolicy, sample_snippets
from .transforms import frames_to_tensor, random_horizontal_flip

np = require("numpy")
Image = require("PIL.Image")

FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _entries(source: Any, split: str | None) -> list[ManifestEntry]:
    if isinstance(source, (str, os.PathLike)):
        return read_manifest(source, split=split)
    return [e for e in source if split is None or e.split == split]


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
    """

    def __init__(self, manifest: Any, loader: FaceClipLoader, split: str | None = None):
        self.entries = _entries(manifest, split)
        self.loader = loader

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        entry = self.entries[index]
        source = entry_source(entry)
        clip = self.loader(entry.path) if source is None else self.loader(entry.path, boxes_from=source)
        return clip.pixels, torch.tensor(float(entry.label))


def entry_source(entry: Any) -> Path | None:
    """The real video a manifest entry (a fake) was made from: its ``source`` (or ``original``)
    column, or None. Its face boxes crop the fake (see :class:`FaceClipLoader`)."""
    source = getattr(entry, "source", None) or getattr(entry, "original", None)
    return None if source in (None, "") else Path(source)


def list_frames(folder: str | os.PathLike[str]) -> list[Path]:
    """The frame images of ``folder`` in time order (by the number in the name, then by name)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: expected a folder of face frames (from `dynsnip extract-faces`)")
    frames = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES]

    def key(p: Path) -> tuple[int, str]:
        digits = "".join(ch for ch in p.stem if ch.isdigit())
        return (int(digits) if digits else -1, p.name)

    frames.sort(key=key)
    if not frames:
        raise FileNotFoundError(f"{folder}: no frame images ({', '.join(FRAME_SUFFIXES)}) in it")
    return frames


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
    ):
        self.entries = _entries(manifest, split)
        self.num_snippets = num_snippets
        self.snippet_len = snippet_len
        self.size = tuple(size)
        self.mean = tuple(mean)
        self.std = tuple(std)
        self.interpolation = interpolation
        self.train = train
        self.hflip_prob = hflip_prob
        self.short_video = short_video

    @classmethod
    def from_model(cls, manifest: Any, model: torch.nn.Module, **overrides: Any) -> "FaceFramesDataset":
        """A dataset with ``model``'s input size, mean/std and T; ``overrides`` win
        (e.g. ``num_snippets=4, train=True``; the default U is the model's test U)."""
        return cls(manifest, **{**data_config_from_model(model), **overrides})

    @classmethod
    def from_class_folders(
        cls, root: str | os.PathLike[str], classes: dict[str, int] | None = None, **kwargs: Any
    ) -> "FaceFramesDataset":
        """Frame folders laid out as ``root/<class>/<video>/`` (default classes: real=0, fake=1)."""
        root = Path(root)
        classes = classes or {"real": 0, "fake": 1}
        entries = []
        for name, label in classes.items():
            class_dir = root / name
            if not class_dir.is_dir():
                raise FileNotFoundError(f"{class_dir}: missing class folder; expected {sorted(classes)} under {root}")
            entries += [ManifestEntry(p, label) for p in sorted(class_dir.iterdir()) if p.is_dir()]
        return cls(entries, **kwargs)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        entry = self.entries[index]
        frames = list_frames(entry.path)
        indices = sample_snippets(
            len(frames), self.num_snippets, self.snippet_len, train=self.train, short_video=self.short_video
        )
        folder = FaceFolder.open(entry.path, frames)
        if folder is not None:  # extract-faces output: the crop policy cuts the snippets' crops
            images, _ = folder.clip_frames(indices.numpy(), self.size, self.interpolation)
        else:
            images = np.stack([self._load(frames[i]) for i in indices.flatten().tolist()])
        pixels = frames_to_tensor(images, self.mean, self.std)
        if self.train:
            pixels = random_horizontal_flip(pixels, self.hflip_prob)
        return pixels, torch.tensor(float(entry.label))

    def _load(self, path: Path) -> "np.ndarray":
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
        if rgb.shape[:2] == self.size:
            return rgb
        return crop_and_resize(rgb[None], None, self.size, self.interpolation)[0]
