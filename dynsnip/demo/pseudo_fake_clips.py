"""The demo's face-region pseudo-fakes: real footage clips and their self-blended pseudo-fakes.

:class:`PseudoFakeClips` cuts the bundled footage into windows like
:class:`~dynsnip.demo.synthetic.FlickerClips`, but a real item is the footage **as it is**
(in ``temporal`` mode: the generator's consistent twin, the same blend drifting smoothly,
as the training engine uses it) and a fake item is its pseudo-fake (:class:`dynsnip.data.pseudo_fakes.PseudoFakeGenerator`,
the same generator ``dynsnip train --pseudo-fakes`` uses). For training, the demo reads only
the real items (``labels=(0,)``) and lets the training engine add the pseudo-fakes
(``Recipe(pseudo_fakes=MODE)``); the test sets hold both, with fixed draws per item.

:func:`pseudo_fake_video_frames` makes a pseudo-fake of whole video frames (mask placed in
the tracked face box of each frame), for the sample videos ``dynsnip predict`` reads.
"""
from __future__ import annotations

from typing import Any, Sequence

from ..data.pseudo_fakes import PseudoFakeGenerator
from .synthetic import FaceFootage, FlickerClips

import numpy as np

__all__ = ["PseudoFakeClips", "pseudo_fake_video_frames", "face_boxes_of_crops"]


class PseudoFakeClips(FlickerClips):
    """Real footage clips (label 0) and their pseudo-fakes (label 1).

    Args:
        footage, num_snippets, snippet_len, window, stride, draws, train, seed, mean, std,
        hflip_prob, labels: as :class:`~dynsnip.demo.synthetic.FlickerClips`.
        generator: the :class:`PseudoFakeGenerator` (its mode names the fakes' ``method``).
        twin_reals: give the real clips as the generator's consistent twin where its mode has one
            (``temporal``: the test sets, as the training engine shows reals); False: the untouched
            footage, for a training set whose pseudo-fakes and twins the engine makes itself
            (``Recipe.pseudo_fakes``), which would otherwise blend the reals twice.
    """

    def __init__(self, footage: Sequence[FaceFootage], num_snippets: int = 2, snippet_len: int = 4, *,
                 generator: PseudoFakeGenerator, twin_reals: bool = True, **kwargs: Any):
        super().__init__(footage, num_snippets, snippet_len, **kwargs)
        self.generator = generator
        self.twin_reals = twin_reals

    def item_info(self, index: int) -> dict:
        info = super().item_info(index)
        if info["label"]:
            info["method"] = f"pseudo-fake ({self.generator.mode})"
        return info

    def render(self, index: int) -> tuple["np.ndarray", int]:
        """The clip's frames ``uint8 (U*T, S, S, 3)``: the footage (in ``temporal`` mode its
        consistent twin, as the training engine makes it), or its pseudo-fake."""
        spec, indices, rng = self.sample(index)
        crops = self.footage[spec.footage].crops[spec.start + indices]
        if spec.label or (self.twin_reals and self.generator.real_is_twin):
            crops = self.generator(crops, rng=rng, snippet_len=self.snippet_len, twin=not spec.label).frames
        return crops, spec.label


def face_boxes_of_crops(crop_boxes: "np.ndarray", margin: float = 1.3) -> "np.ndarray":
    """The face boxes ``(F, 4)`` inside square crops ``(F, 4)`` made with ``margin``."""
    crop_boxes = np.asarray(crop_boxes, dtype=np.float64)
    centre = (crop_boxes[:, :2] + crop_boxes[:, 2:]) / 2
    half = (crop_boxes[:, 2:] - crop_boxes[:, :2]) / (2 * margin)
    return np.concatenate([centre - half, centre + half], axis=1)


def pseudo_fake_video_frames(frames: "np.ndarray", crop_boxes: "np.ndarray", generator: PseudoFakeGenerator,
                             seed: int, snippet_len: int = 4) -> "np.ndarray":
    """The pseudo-fake of whole frames ``(F, H, W, 3)``, the mask in each frame's face box."""
    boxes = face_boxes_of_crops(crop_boxes, generator.margin)
    return generator(frames, boxes=boxes, seed=seed, snippet_len=snippet_len).frames
