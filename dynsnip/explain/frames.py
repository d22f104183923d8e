"""Normalised clip tensor <-> displayable uint8 face frames."""
from __future__ import annotations

from typing import Sequence

import torch
from einops import rearrange

from ._optional import require

np = require("numpy")


def clip_to_frames(clip: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> "np.ndarray":
    """Undo the model's normalisation of a clip.

    Args:
        clip: ``(3, F, H, W)`` or ``(1, 3, F, H, W)``, ``(pixels / 255 - mean) / std``.
        mean, std: the per-channel statistics it was normalised with (0-1 scale).

    Returns:
        uint8 ``(F, H, W, 3)`` RGB. For a clip made by :mod:`dynsnip.data` from uint8 crops
        this gives the crops back exactly.
    """
    if clip.ndim == 5:
        if clip.shape[0] != 1:
            raise ValueError(f"expected one clip, got a batch of {clip.shape[0]}")
        clip = clip[0]
    if clip.ndim != 4 or clip.shape[0] != len(mean):
        raise ValueError(f"expected a clip of shape ({len(mean)}, F, H, W), got {tuple(clip.shape)}")
    c = clip.detach().float().cpu()
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1, 1)
    pixels = ((c * std_t + mean_t) * 255).round().clamp(0, 255).to(torch.uint8)
    return rearrange(pixels, "c f h w -> f h w c").numpy()


def check_frames(frames: "np.ndarray", num_frames: int) -> "np.ndarray":
    """Validate user-given display frames: uint8 ``(F, H, W, 3)`` with F = the clip's frames."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] != num_frames:
        raise ValueError(
            f"frames must be RGB images (F, H, W, 3) with F={num_frames} (the clip's frames), "
            f"got shape {frames.shape}"
        )
    if frames.dtype != np.uint8:
        if np.issubdtype(frames.dtype, np.floating) and frames.min() >= 0 and frames.max() <= 1:
            frames = frames * 255
        frames = np.clip(np.round(frames), 0, 255).astype(np.uint8)
    return frames
