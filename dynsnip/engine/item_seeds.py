"""Random draws of a training item that depend on ``(seed, epoch, item index)`` only.

A training item's random snippet offsets and horizontal flip (:mod:`dynsnip.data`), and the
pseudo-fakes made in the batch's collate (:mod:`dynsnip.engine.pseudo_fakes`), are drawn from
the global random generators (torch, ``random``, numpy). Left alone, what those draw depends
on the process that reads the item: a DataLoader worker is seeded from the loader's base
seed and its worker id, so ``--workers 0`` and ``--workers 4`` trained on different clips,
although ``num_workers`` is documented not to change what is computed
(:mod:`dynsnip.engine.run_folder`). :class:`SeededItems` reads every item with the global
generators seeded from :func:`item_seed` and restores them afterwards, and seeds them from
the batch's first index for the collate that follows (run in the same process, worker or
not), so an epoch's data is the same whatever the number of workers (and processes).
"""
from __future__ import annotations

import contextlib
import hashlib
import random
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import Dataset

__all__ = ["item_seed", "SeededItems", "seeded", "isolated_rng"]


def item_seed(seed: int, epoch: int, index: int, purpose: str = "item") -> int:
    """A 63-bit seed mixed from ``(seed, epoch, index, purpose)`` (a hash, so that neighbouring
    items or epochs get unrelated streams)."""
    digest = hashlib.blake2b(f"{int(seed)}:{int(epoch)}:{int(index)}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def seeded(seed: int) -> None:
    """Seed torch's CPU generator, ``random`` and numpy's global generator with ``seed``."""
    torch.manual_seed(seed)
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed % 2**32)
    except ImportError:  # numpy is optional
        pass


@contextlib.contextmanager
def isolated_rng() -> Iterator[None]:
    """Run the block with the global generators (torch CPU, ``random``, numpy) restored afterwards."""
    np: Any = None
    try:
        import numpy as np
    except ImportError:  # numpy is optional
        pass
    python_state = random.getstate()
    numpy_state = np.random.get_state() if np is not None else None
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python_state)
            if np is not None:
                np.random.set_state(numpy_state)


class SeededItems(Dataset):
    """``dataset``'s items, each read with the global generators seeded from
    ``item_seed(seed, epoch, index)`` (and restored afterwards).

    A DataLoader batch (``__getitems__``) also leaves the generators seeded from its first
    index, for the collate_fn that follows in the same process (pseudo-fakes): run the
    loader's ``next()`` under :func:`isolated_rng` so that, without workers, this does not
    reach the training process's own draws either.
    """

    def __init__(self, dataset: Dataset, seed: int, epoch: int) -> None:
        self.dataset = dataset
        self.seed, self.epoch = int(seed), int(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        with isolated_rng():
            seeded(item_seed(self.seed, self.epoch, index))
            return self.dataset[index]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        items = [self[i] for i in indices]
        if len(indices):
            seeded(item_seed(self.seed, self.epoch, indices[0], "batch"))
        return items
