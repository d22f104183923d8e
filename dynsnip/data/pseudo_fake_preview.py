"""Pictures of what the pseudo-fake generator teaches: real, pseudo-fake and mask side by side.

* :func:`preview_sheet`: one image, a column per frame of a snippet and the rows real,
  pseudo-fake, blend mask and the difference (amplified), each row labelled.
* :func:`write_preview_gif`: an animated GIF, each frame ``[real | pseudo-fake | mask]``,
  so the temporal part (the blend jumping from frame to frame) can be seen.

Frames are ``(F, H, W, 3)`` uint8 RGB, masks ``(F, H, W)`` float in [0, 1].
"""
from __future__ import annotations

import os
from pathlib import Path

from ._optional import require

np = require("numpy")
Image = require("PIL.Image")

__all__ = ["preview_sheet", "write_preview_gif", "DIFF_GAIN"]

DIFF_GAIN = 4.0  # the difference row shows |fake - real| x 4, so that small blends are visible
LABEL_WIDTH = 84


def _mask_rgb(masks: "np.ndarray") -> "np.ndarray":
    return np.repeat((np.clip(masks, 0, 1) * 255).round().astype(np.uint8)[..., None], 3, axis=-1)


def _label(text: str, height: int) -> "np.ndarray":
    from PIL import ImageDraw

    image = Image.new("RGB", (LABEL_WIDTH, height), (255, 255, 255))
    ImageDraw.Draw(image).text((4, height // 2 - 6), text, fill=(0, 0, 0))
    return np.asarray(image)


def preview_sheet(real: "np.ndarray", fake: "np.ndarray", masks: "np.ndarray", gap: int = 2) -> "np.ndarray":
    """``(4 * (H + gap), LABEL_WIDTH + F * (W + gap), 3)`` uint8: rows real, pseudo-fake, mask,
    ``|fake - real| * DIFF_GAIN``; a column per frame."""
    if real.shape != fake.shape or masks.shape != real.shape[:3]:
        raise ValueError(f"real {real.shape}, pseudo-fake {fake.shape} and masks {masks.shape} must match "
                         "((F, H, W, 3) and (F, H, W))")
    diff = np.clip(np.abs(fake.astype(np.int16) - real.astype(np.int16)) * DIFF_GAIN, 0, 255).astype(np.uint8)
    rows = []
    for name, frames in (("real", real), ("pseudo-fake", fake), ("mask", _mask_rgb(masks)),
                         (f"|diff| x{DIFF_GAIN:g}", diff)):
        padded = np.pad(frames, ((0, 0), (0, gap), (0, gap), (0, 0)), constant_values=255)
        rows.append(np.concatenate([_label(name, padded.shape[1]), *padded], axis=1))
    return np.concatenate(rows, axis=0)


def write_preview_gif(path: str | os.PathLike[str], real: "np.ndarray", fake: "np.ndarray", masks: "np.ndarray",
                      fps: float = 10.0) -> Path:
    """An animated GIF of ``[real | pseudo-fake | mask]`` per frame, looping."""
    frames = np.concatenate([real, fake, _mask_rgb(masks)], axis=2)
    images = [Image.fromarray(f) for f in frames]
    path = Path(path)
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(20, round(1000 / fps)), loop=0)
    return path
