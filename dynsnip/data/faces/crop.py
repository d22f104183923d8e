"""Cut face crops out of frames and resize them to the model's input size."""
from __future__ import annotations

from typing import Sequence

from .._optional import require

np = require("numpy")
Image = require("PIL.Image")

# timm's interpolation names -> Pillow filters
_PIL_FILTERS = {
    "nearest": Image.NEAREST,
    "bilinear": Image.BILINEAR,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
    "box": Image.BOX,
    "hamming": Image.HAMMING,
}


def crop_and_resize(
    frames: "np.ndarray",
    crop_boxes: Sequence[tuple[int, int, int, int]] | None,
    size: tuple[int, int],
    interpolation: str = "bicubic",
) -> "np.ndarray":
    """Crop each frame to its box and resize to ``size`` in one resampling step.

    Args:
        frames: ``(F, H, W, 3)`` uint8 RGB.
        crop_boxes: ``F`` integer boxes ``(x0, y0, x1, y1)``, or None for the whole frame.
        size: output ``(height, width)``, e.g. the model's ``input_size[1:]``.
        interpolation: a timm interpolation name (``bicubic``, ``bilinear``, ...): use the
            model's data config so crops are resampled the way it was pre-trained.

    Returns:
        ``(F, height, width, 3)`` uint8.
    """
    if interpolation not in _PIL_FILTERS:
        raise ValueError(f"unknown interpolation {interpolation!r}; expected one of {sorted(_PIL_FILTERS)}")
    if crop_boxes is not None and len(crop_boxes) != len(frames):
        raise ValueError(f"{len(crop_boxes)} crop boxes for {len(frames)} frames; need one per frame")
    height, width = size
    out = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        box = None if crop_boxes is None else tuple(int(v) for v in crop_boxes[i])
        image = Image.fromarray(np.ascontiguousarray(frame))
        out[i] = np.asarray(image.resize((width, height), _PIL_FILTERS[interpolation], box=box))
    return out
