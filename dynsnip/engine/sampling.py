"""Class balance for training sets: oversample the smaller class, drop nothing.

FaceForensics++ has four fakes per real video (1000 real, 4000 fake with the paper's four
methods); Celeb-DF about six. :func:`balance_classes` returns a view of a training set in
which every item appears at least once and the items of the smaller class are repeated
until both classes have as many items as the larger one. The training loop's shuffling
sampler then draws balanced epochs (with DDP too: the view is an ordinary dataset). One
epoch becomes ``2 * max(n_real, n_fake)`` clips long; each repeat of a clip still gets its
own random snippet offsets and flip.

The paper does not mention class balancing: its numbers are read as trained on the
unbalanced official training split (all videos, once per epoch), which is what
``dynsnip train`` does unless ``--balance-classes`` is given.
"""
from __future__ import annotations

import random
from typing import Sequence

from torch.utils.data import Dataset, Subset

__all__ = ["dataset_labels", "balance_classes"]


def dataset_labels(dataset: Dataset) -> list[int]:
    """The 0/1 label of every item, read from ``dataset.entries`` without loading pixels.

    Raises:
        TypeError: the dataset has no ``entries`` with a ``label`` (the
            :mod:`dynsnip.data` datasets have them).
    """
    if isinstance(dataset, Subset):
        inner = dataset_labels(dataset.dataset)
        return [inner[int(i)] for i in dataset.indices]
    entries = getattr(dataset, "entries", None)
    if entries is None or not all(hasattr(e, "label") for e in entries):
        raise TypeError(f"cannot balance a {type(dataset).__name__}: expected a dataset with .entries carrying a "
                        "label (VideoDataset / FaceFramesDataset from a manifest)")
    return [int(e.label) for e in entries]


def balanced_indices(labels: Sequence[int], seed: int = 0) -> list[int]:
    """Every index once, plus repeats of the smaller class's indices (each repeated as evenly
    as possible; which ones get one repeat more is drawn with ``seed``) until both classes
    have ``max(n_real, n_fake)`` items.

    Raises:
        ValueError: one class is absent (nothing to balance against).
    """
    by_class = {c: [i for i, y in enumerate(labels) if y == c] for c in (0, 1)}
    if not by_class[0] or not by_class[1]:
        missing = "real (0)" if not by_class[0] else "fake (1)"
        raise ValueError(f"cannot balance classes: the training set has no {missing} items")
    small, large = sorted(by_class.values(), key=len)
    full, rest = divmod(len(large), len(small))
    extra = random.Random(seed).sample(small, rest)
    return list(range(len(labels))) + small * (full - 1) + sorted(extra)


def balance_classes(dataset: Dataset, seed: int = 0) -> Subset:
    """``dataset`` with the smaller class oversampled to the size of the larger one (see the
    module docstring). Item ids and methods for reports still come from the original items.
    """
    return Subset(dataset, balanced_indices(dataset_labels(dataset), seed))
