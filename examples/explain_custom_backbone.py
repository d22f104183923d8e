"""Explain a custom 2D backbone that uses IntraSIM / InterSIM (see custom_backbone.py).

``dil_*`` models need no options; for your own network tell ``explain_clip`` what it cannot
guess: the Grad-CAM layer (the last conv block, frames folded ``(N*U*T, C, h, w)``) and, if
the network takes folded frames plus ``num_snippets=U`` instead of a ``(B, 3, U*T, H, W)``
video, ``call="frames"``. T is read from ``net.snippet_len`` or from the SIMs.

    python examples/explain_custom_backbone.py [OUT_DIR]
"""
from __future__ import annotations

import argparse

import torch
from custom_backbone import TinyVideoNet  # the network of examples/custom_backbone.py

from dynsnip.data import FaceClipLoader, bundled_video
from dynsnip.explain import explain_clip, save_figures

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Explain a custom 2D backbone with IntraSIM / InterSIM")
    parser.add_argument("out_dir", nargs="?", default="explain_custom_backbone", help="where the pictures go")
    out_dir = parser.parse_args().out_dir
    torch.manual_seed(0)
    net = TinyVideoNet(snippet_len=4).eval()  # untrained: the pictures show the mechanics only

    loader = FaceClipLoader(num_snippets=4, snippet_len=4, size=(112, 112))
    clip = loader(bundled_video("carphone_pristine"))  # real footage shipped with dynsnip

    exp = explain_clip(
        net,
        clip.pixels,                 # (3, U*T, H, W), normalised
        target_layer="conv2",        # Grad-CAM layer: net.conv2, the last conv block
        call="video",                # net(x) with x (B, 3, U*T, H, W); "frames" for net(x, num_snippets=U)
        mean=loader.mean, std=loader.std,  # to show the face crops
        frame_indices=clip.frame_indices,
    )
    print(f"p(fake) = {exp.fake_prob:.3f}, per snippet: {', '.join(f'{p:.3f}' for p in exp.snippet_probs)}")
    print(f"Grad-CAM {exp.gradcam.shape}, Intra-SMA maps {[k for k in exp.intra]}, U x T maps {[k for k in exp.inter]}")
    for kind, path in save_figures(exp, out_dir).items():
        print(f"wrote {path}")
