"""Training from real videos: every real clip of a batch also gives its pseudo-fake, on the fly.

``Recipe(pseudo_fakes="temporal")`` (``dynsnip train --pseudo-fakes temporal``) makes
:func:`~dynsnip.engine.train.train` batch its data with :class:`PseudoFakeCollate`: after
the dataset has read a batch (normalised clips ``(3, U*T, H, W)``, already sampled and
flipped), each real clip (label 0) gets a pseudo-fake (label 1) made from the very same
frames by :class:`dynsnip.data.pseudo_fakes.PseudoFakeGenerator`, appended to the batch.
In ``temporal`` mode the real clip itself is replaced by the generator's consistent twin
(the same blend drifting smoothly), so that no single frame tells the two apart.
A manifest of real videos only thus gives batches of half reals, half pseudo-fakes (a
real and its pseudo-fake differ only inside the blend mask, the strongest supervision the
blend can give, as in SBI); fakes already in the manifest stay in the batch as they are.
``recipe.batch_size`` counts the clips read: a step sees up to twice as many.

Face crops come from ``extract-faces`` / the video loader with the face box in the middle
``1/1.3`` of the crop, which is where the generator puts the mask. Randomness comes from
torch's global generator, which :func:`train` seeds for each batch from ``(seed, epoch, the
batch's first index)`` (:class:`~dynsnip.engine.item_seeds.SeededItems`), so runs repeat,
whatever the number of DataLoader workers.
"""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Sequence

import torch
from einops import rearrange
from torch.utils.data import Dataset

from .failures import FailedItem, collate_readable

if TYPE_CHECKING:
    from ..data.pseudo_fakes import PseudoFakeGenerator

__all__ = ["PseudoFakeCollate", "PseudoFakePairs", "pseudo_fake_clip", "collate_for_recipe"]


def pseudo_fake_clip(
    pixels: torch.Tensor,
    generator: "PseudoFakeGenerator",
    mean: Sequence[float],
    std: Sequence[float],
    *,
    snippet_len: int | None = None,
    seed: int | Sequence[int] | None = None,
    twin: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The pseudo-fake of a normalised clip ``pixels (3, F, H, W)`` (``(x - mean) / std``);
    ``twin``: its consistent twin (see :class:`~dynsnip.data.pseudo_fakes.PseudoFakeGenerator`).

    Returns ``(pixels of the pseudo-fake (3, F, H, W), masks (F, H, W))``; the pseudo-fake
    equals ``pixels`` exactly wherever the mask is 0.
    """
    import numpy as np

    mean_t = rearrange(torch.tensor(mean, dtype=torch.float32), "c -> c 1 1 1")
    std_t = rearrange(torch.tensor(std, dtype=torch.float32), "c -> c 1 1 1")
    clip01 = (pixels.float() * std_t + mean_t).clamp(0.0, 1.0)
    params = generator.draw(pixels.shape[1], np.random.default_rng(seed), snippet_len, twin)
    fake01, masks = generator.blend_tensor(clip01, params)
    change = rearrange(masks, "f h w -> 1 f h w") > 0
    return torch.where(change, pixels + (fake01 - clip01) / std_t, pixels), masks


class PseudoFakeCollate:
    """A DataLoader ``collate_fn``: the items of a batch plus a pseudo-fake of each real one.

    Args:
        generator: the :class:`PseudoFakeGenerator` (mode, magnitude).
        mean, std: the normalisation of the dataset's clips (the model's data config).
        snippet_len: T.

    Items are ``(pixels, label)`` or :class:`~dynsnip.engine.failures.FailedItem` (skipped
    and handed on, as :func:`~dynsnip.engine.failures.collate_readable` does).
    """

    def __init__(self, generator: "PseudoFakeGenerator", mean: Sequence[float], std: Sequence[float], snippet_len: int):
        self.generator = generator
        self.mean, self.std = tuple(mean), tuple(std)
        self.snippet_len = int(snippet_len)

    def __call__(self, batch: Sequence[Any]) -> tuple[Any, list[FailedItem]]:
        items, fakes = [], []
        for item in batch:
            if isinstance(item, FailedItem) or float(item[1]) != 0.0:
                items.append(item)
                continue
            seeds = torch.randint(0, 2**62, (2,)).tolist()
            make = functools.partial(pseudo_fake_clip, item[0], self.generator, self.mean, self.std,
                                     snippet_len=self.snippet_len)
            real = make(seed=seeds[1], twin=True)[0] if self.generator.real_is_twin else item[0]
            items.append((real, torch.as_tensor(item[1], dtype=torch.float32)))
            fakes.append((make(seed=seeds[0])[0], torch.tensor(1.0)))
        return collate_readable(items + fakes)


class PseudoFakePairs(Dataset):
    """An evaluation set of real clips and their pseudo-fakes, fixed by ``seed``.

    Items ``0 .. N-1`` are ``dataset``'s (a real one in ``temporal`` mode as its consistent
    twin, as in training); item ``N + k`` is the pseudo-fake of the ``k``-th real item
    (label 0) of ``dataset``, drawn with the seed ``(seed, k)``: the same every time it is read. Use it to validate or test a detector trained with
    ``--pseudo-fakes`` on held-out real videos. Reading the labels needs one pass over
    ``dataset`` (``labels`` skips it).

    Args:
        dataset: items ``(pixels (3, U*T, H, W), label)`` without augmentation.
        generator, mean, std, snippet_len: as :class:`PseudoFakeCollate`.
        seed: seed of the pseudo-fakes.
        labels: the labels of ``dataset``'s items, if known (e.g. from its manifest).
    """

    def __init__(self, dataset: Dataset, generator: "PseudoFakeGenerator", mean: Sequence[float],
                 std: Sequence[float], snippet_len: int, seed: int = 0, labels: Sequence[float] | None = None):
        self.dataset = dataset
        self.generator = generator
        self.mean, self.std = tuple(mean), tuple(std)
        self.snippet_len = int(snippet_len)
        self.seed = int(seed)
        if labels is None:
            entries = getattr(dataset, "entries", None)
            labels = ([e.label for e in entries] if entries is not None
                      else [float(dataset[i][1]) for i in range(len(dataset))])
        self.reals = [i for i, label in enumerate(labels) if float(label) == 0.0]

    def __len__(self) -> int:
        return len(self.dataset) + len(self.reals)

    def item_info(self, index: int) -> dict:
        from .evaluate import item_info

        if index < len(self.dataset):
            return item_info(self.dataset, index)
        base = item_info(self.dataset, self.reals[index - len(self.dataset)])
        k = index - len(self.dataset)
        return dict(base, id=f"{base['id']}#pseudo-fake-{k}", method=f"pseudo-fake ({self.generator.mode})",
                    label=1)  # not its real's label: a failed pseudo-fake is reported as the fake it is

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index < len(self.dataset):
            pixels, label = self.dataset[index]
            if self.generator.real_is_twin and float(label) == 0.0:
                pixels, _ = pseudo_fake_clip(pixels, self.generator, self.mean, self.std, snippet_len=self.snippet_len,
                                             seed=[self.seed, index, 1], twin=True)
            return pixels, label
        k = index - len(self.dataset)
        pixels, _ = self.dataset[self.reals[k]]
        fake, _ = pseudo_fake_clip(pixels, self.generator, self.mean, self.std, snippet_len=self.snippet_len,
                                   seed=[self.seed, k])
        return fake, torch.tensor(1.0)


def collate_for_recipe(recipe: Any, model: torch.nn.Module) -> Any:
    """The training ``collate_fn`` of ``recipe``: :func:`collate_readable`, or a
    :class:`PseudoFakeCollate` with the model's mean / std when ``recipe.pseudo_fakes`` is set."""
    mode = getattr(recipe, "pseudo_fakes", None)
    if not mode:
        return collate_readable
    from ..data.pipeline import data_config_from_model
    from ..data.pseudo_fakes import PseudoFakeGenerator

    config = data_config_from_model(model)
    generator = PseudoFakeGenerator(mode=mode, magnitude=recipe.pseudo_fake_magnitude)
    return PseudoFakeCollate(generator, config["mean"], config["std"], recipe.snippet_len)

