"""Plug Intra-SIM and Inter-SIM into your own 2D CNN.

The modules take frames folded into the batch, ``(N*U*T, C, H, W)``: N clips, U snippets per
clip, T consecutive frames per snippet. IntraSIM only needs T; InterSIM is told U per call.

    python examples/custom_backbone.py
"""
from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange, reduce

from dynsnip import InterSIM, IntraSIM


class TinyVideoNet(nn.Module):
    """conv -> IntraSIM -> conv -> InterSIM -> conv -> pool over space and frames -> logit."""

    def __init__(self, snippet_len: int = 4, num_classes: int = 1) -> None:
        super().__init__()
        self.snippet_len = snippet_len
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.intra = IntraSIM(32, snippet_len=snippet_len)
        self.conv1 = nn.Sequential(nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU())
        self.inter = InterSIM(64, snippet_len=snippet_len)
        self.conv2 = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU())
        self.fc = nn.Linear(64, num_classes)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """``(B, 3, U*T, H, W)`` -> ``(B, num_classes)``."""
        b, _, f, _, _ = video.shape
        u = f // self.snippet_len
        x = rearrange(video, "b c f h w -> (b f) c h w")  # (B*U*T, C, H, W)
        x = self.stem(x)
        x = self.intra(x)  # mixes frames inside each snippet only
        x = self.conv1(x)
        x = self.inter(x, num_snippets=u)  # mixes the snippets of each clip
        x = self.conv2(x)
        x = reduce(x, "(b f) c h w -> b c", "mean", b=b)
        return self.fc(x)


if __name__ == "__main__":
    torch.manual_seed(0)
    net = TinyVideoNet().eval()
    clip = torch.randn(2, 3, 4 * 4, 64, 64)  # 2 clips, U=4 snippets of T=4 frames
    with torch.no_grad():
        print("U=4 logits:", net(clip).flatten().tolist())
        print("U=8 logits:", net(torch.randn(2, 3, 8 * 4, 64, 64)).flatten().tolist())
