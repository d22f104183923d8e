"""Build the paper's detector (dil_resnet50), run one clip through it, print the verdict.

    python examples/quickstart.py
"""
from __future__ import annotations

import time

import timm
import torch

import dynsnip  # registers the dil_* models with timm


def main() -> None:
    torch.manual_seed(0)
    model = timm.create_model("dil_resnet50", num_classes=1).eval()
    u, t = model.test_num_snippets, model.snippet_len  # the paper tests with U=8 x T=4
    clip = torch.rand(1, 3, u * t, 224, 224)  # (B, C, U*T, H, W)
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1, 1)
    start = time.perf_counter()
    with torch.no_grad(), dynsnip.record_attention(model) as maps:
        logit = model((clip - mean) / std)
    seconds = time.perf_counter() - start
    n_params = sum(p.numel() for p in model.parameters())
    n_sim = sum(p.numel() for n, p in model.named_parameters() if ".sim." in n)
    print(f"dil_resnet50: {n_params / 1e6:.2f}M parameters ({n_sim / 1e6:.2f}M in the SIMs), "
          f"{len(maps.intra())} Intra-SI + {len(maps.inter())} Inter-SI blocks")
    print(f"clip {tuple(clip.shape)} -> logit {logit.item():+.4f}, "
          f"fake probability {torch.sigmoid(logit).item():.3f} (untrained) in {seconds:.2f} s")
    uxt = maps.inter()["layer4.1.sim"][0]
    print(f"Inter-SIM U x T map of the last stage: {tuple(uxt.shape)}, range [{uxt.min():.3f}, {uxt.max():.3f}]")


if __name__ == "__main__":
    main()
