"""Datasets for ``dynsnip train`` / ``dynsnip evaluate`` from manifests (:mod:`dynsnip.data`).

A manifest lists videos or face-frame folders (written once by ``dynsnip extract-faces``)
with ``path``, ``label`` and optionally ``split`` and ``method`` (the manipulation method of
a fake: ``Deepfakes``, ``Face2Face``, ...; empty or ``real`` for real videos), see
:mod:`dynsnip.data.manifest`. Frame folders are the fast path: videos are decoded and
face-detected on every read.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from .recipe import Recipe

__all__ = ["make_dataset", "check_validation_labels", "check_training_labels", "class_counts", "DATA_KINDS"]

DATA_KINDS = ("auto", "frames", "video")


def _detect_kind(entries: list[Any], manifest: Any) -> str:
    """``"frames"`` or ``"video"`` for ``--data auto``: what the first entry that exists on disk is
    (a folder of face frames, or a video file). Entries missing on disk before it are not
    refused here: the dataset reports each as a video that could not be read (``not_found``) and
    the run skips it, as it does a missing entry anywhere else in the manifest.

    Raises:
        ValueError: no entries.
        FileNotFoundError: none of the entries exists (the kind cannot be told), naming the first
            few and suggesting ``--data frames|video``.
    """
    if not entries:
        raise ValueError(f"{manifest}: no rows (for the requested split); expected labelled videos or frame folders")
    for entry in entries:
        path = Path(entry.path)
        if path.is_dir():
            return "frames"
        if path.is_file():
            return "video"
    shown = ", ".join(str(e.path) for e in entries[:3]) + (", ..." if len(entries) > 3 else "")
    raise FileNotFoundError(
        f"{manifest}: none of its {len(entries)} entries exists on disk ({shown}), so whether they are video "
        "files or folders of face frames cannot be told; expected at least one existing video file or folder "
        "of face frames (check the paths, or name the kind with --data frames|video)"
    )


def _labels(dataset: Dataset) -> list[int] | None:
    """The labels of ``dataset`` from its manifest entries (or a ``labels`` attribute; through a
    ``Subset``, such as ``--balance-classes`` makes), or None when they are not known without
    reading the items."""
    if isinstance(dataset, torch.utils.data.Subset):
        inner = _labels(dataset.dataset)
        return None if inner is None else [inner[int(i)] for i in dataset.indices]
    entries = getattr(dataset, "entries", None)
    if entries is not None:
        return [int(e.label) for e in entries]
    labels = getattr(dataset, "labels", None)
    return [int(v) for v in labels] if labels is not None else None


def check_validation_labels(dataset: Dataset, monitor: str) -> None:
    """Refuse a validation set whose labels cannot give ``monitor``: AUC needs real and fake
    videos (with one class it is undefined, no epoch would ever be "best" and no model would
    be saved). Datasets whose labels are unknown up front are not checked.

    Raises:
        ValueError: naming the class present, the count and what to do.
    """
    labels = _labels(dataset)
    if monitor != "auc" or not labels:
        return
    present = sorted(set(labels))
    if len(present) == 1:
        name = "fake" if present[0] == 1 else "real"
        other = "real" if present[0] == 1 else "fake"
        raise ValueError(
            f"the validation set has only {name} videos ({len(labels)}): its AUC, the metric that picks the saved "
            f"model and drives the learning-rate drops, is undefined; add {other} videos to it, or choose "
            "another monitor (--monitor accuracy or --monitor loss)"
        )


def class_counts(dataset: Dataset) -> tuple[int, int] | None:
    """``(real, fake)`` items of ``dataset`` when its labels are known up front, else None."""
    labels = _labels(dataset)
    if labels is None:
        return None
    fake = sum(1 for y in labels if y == 1)
    return len(labels) - fake, fake


def check_training_labels(dataset: Dataset, pseudo_fakes: str | None = None) -> None:
    """Refuse a training set that cannot teach a detector: one with a single class (every
    label real, or every label fake: the model learns a constant), or, with pseudo-fakes
    (which are made from the real clips), one without real videos (the saved model's card
    would claim pseudo-fakes it never saw). Real videos alone are enough with pseudo-fakes:
    they make the fakes. Datasets whose labels are unknown up front are not checked.

    Raises:
        ValueError: naming what the set holds and what is needed.
    """
    counts = class_counts(dataset)
    if counts is None or not sum(counts):
        return
    real, fake = counts
    if pseudo_fakes and not real:
        raise ValueError(
            f"--pseudo-fakes {pseudo_fakes} makes its fakes from the real training videos, but the training set has "
            f"none ({fake} fake): add real videos (label 0) to the training split, or train without --pseudo-fakes"
        )
    if not pseudo_fakes and not (real and fake):
        have, other = ("real", "fake") if real else ("fake", "real")
        raise ValueError(
            f"the training set has only {have} videos ({real + fake}): a detector needs real and fake videos to "
            f"learn from; add {other} videos (label {int(other == 'fake')}) to the training split, or make fakes from "
            "the real ones with --pseudo-fakes spatial|temporal|both"
        )


def make_dataset(
    manifest: str | os.PathLike[str],
    model: torch.nn.Module,
    recipe: Recipe,
    *,
    train: bool,
    split: str | None = None,
    kind: str = "auto",
    num_snippets: int | None = None,
    img_size: int | None = None,
    face_detector: str = "auto",
    faces: str = "largest",
    detector_options: dict[str, Any] | None = None,
    margin: float = 1.3,
    detect_every: int | None = None,
    min_face_coverage: float | None = None,
) -> Dataset:
    """The training (``train=True``) or evaluation dataset of a manifest.

    Training clips: ``recipe.num_snippets`` snippets at random offsets and the paper's only
    augmentation, a horizontal flip of the whole clip with ``recipe.hflip_prob``.
    Evaluation clips: ``recipe.test_num_snippets`` centred snippets, no augmentation.
    Frames are resized to ``img_size`` (default ``recipe.img_size``) and normalised with the
    model's mean / std.

    Args:
        kind: ``"frames"`` (face-frame folders), ``"video"`` (video files, faces detected
            with ``face_detector`` on the fly) or ``"auto"`` (from the first entry that exists on disk).
        split: keep only rows of this split.
        num_snippets: override U.
        faces: ``"largest"``: each video's largest face; ``"all"``: every face track (frame
            folders: one item per sample track that ``extract-faces`` recorded; videos, for
            evaluation: every face of the video in one item, see :class:`VideoDataset`).
            Training on video files with ``"all"`` falls back to the largest face with a
            warning (which face of a fake was swapped is found by ``extract-faces``).
        detector_options: options of ``face_detector``
            (:func:`~dynsnip.data.faces.detectors.create_face_detector`: ``detect_short_side``,
            ``upsample``, ``min_face``, ``device``), for video entries.
        margin, detect_every: how video entries are cropped (:class:`FaceClipLoader`; None: its
            default k). A frame folder keeps those it was extracted with: the same values make
            the videos' clips the folders' (``predict`` and ``extract-faces`` take the same options).
        min_face_coverage: below it a video, or a face track of a frame folder, fails
            ``low_face_coverage`` (None: the default, 0.5).
    """
    from ..data import FaceClipLoader, FaceFramesDataset, VideoDataset, read_manifest
    from ..data.manifest import check_methods

    if kind not in DATA_KINDS:
        raise ValueError(f"data kind must be one of {DATA_KINDS}, got {kind!r}")
    entries = read_manifest(manifest, split=split)
    if not train:  # evaluated together: per-method metrics need every fake's method or none (refused before any work)
        check_methods(entries, f"{manifest}" + (f" (split {split})" if split else ""))
    if not entries:
        where = f" with split {split!r}" if split else ""
        raise ValueError(f"{manifest}: no rows{where}; expected labelled videos or frame folders")
    if kind == "auto":
        kind = _detect_kind(entries, manifest)
    size = int(img_size or recipe.img_size)
    u = int(num_snippets or (recipe.num_snippets if train else recipe.test_num_snippets))
    common = dict(num_snippets=u, snippet_len=recipe.snippet_len, size=(size, size), train=train,
                  hflip_prob=recipe.hflip_prob)
    if faces not in ("largest", "all"):
        raise ValueError(f"faces must be 'largest' or 'all', got {faces!r}")
    coverage = {} if min_face_coverage is None else {"min_face_coverage": float(min_face_coverage)}
    if kind == "frames":
        dataset: Dataset = FaceFramesDataset.from_model(entries, model, faces=faces, **coverage, **common)
    else:
        if faces == "all" and train:
            import warnings

            warnings.warn(f"{manifest}: training on video files crops each video's largest face; to train on every "
                          "face, with a fake's swapped face found by comparing it with its source, extract the faces "
                          "first (dynsnip extract-faces) and train on the folders", UserWarning, stacklevel=2)
            faces = "largest"
        from ..data.faces.detectors import create_face_detector

        every = {} if detect_every is None else {"detect_every": int(detect_every)}
        loader = FaceClipLoader.from_model(model, face_detector=create_face_detector(face_detector,
                                                                                     **(detector_options or {})),
                                           margin=margin, **every, **coverage, **common)
        dataset = VideoDataset(entries, loader, faces=faces)
    return dataset  # evaluation reads ids and methods from dataset.entries
