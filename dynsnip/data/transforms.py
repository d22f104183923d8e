"""Face crops (uint8 frames) to the model's input tensor, and the paper's one augmentation."""
from __future__ import annotations

from typing import Sequence

import torch
from einops import rearrange

from ._optional import require

np = require("numpy")


def frames_to_tensor(
    frames: "np.ndarray", mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """Normalise RGB frames with the model's mean/std into torchvision's video layout.

    Args:
        frames: ``(F, H, W, 3)`` uint8 RGB, frames ordered snippet by snippet.
        mean, std: per-channel statistics on the 0-1 scale (timm's data config).

    Returns:
        float32 ``(3, F, H, W)``: ``(frames / 255 - mean) / std``.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (F, H, W, 3), got {tuple(frames.shape)}")
    pixels = torch.from_numpy(frames.astype(np.float32)).div_(255)  # astype: a writable copy
    pixels = rearrange(pixels, "f h w c -> c f h w")
    mean_t = torch.tensor(mean, dtype=torch.float32)
    std_t = torch.tensor(std, dtype=torch.float32)
    return (pixels - rearrange(mean_t, "c -> c 1 1 1")) / rearrange(std_t, "c -> c 1 1 1")


def random_horizontal_flip(
    clip: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Flip a whole clip ``(C, F, H, W)`` left-right with probability ``p``.

    The paper's only augmentation ("Only horizontal flip is employed"). Every frame flips
    together: flipping frames independently would create motion that is not in the video.
    """
    if torch.rand((), generator=generator).item() < p:
        return clip.flip(-1)
    return clip
