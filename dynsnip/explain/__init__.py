"""See what the detector sees: Grad-CAM, Intra-SMA maps and the Inter-SIM U x T map.

Library call (arrays, for notebooks)::

    from dynsnip.explain import explain_clip, save_figures
    exp = explain_clip(model, clip)          # clip: (3, U*T, H, W), normalised
    exp.gradcam        # (U*T, H, W) in [0, 1]
    exp.intra_map      # (U*T, H, W) Intra-SMA attention of the default Intra-SIM
    exp.inter_map      # (U, T) Inter-SIM attention F1 ⊙ F2
    exp.snippet_probs  # (U,) per-snippet fake probabilities
    save_figures(exp, "out/")                # the PNGs that `dynsnip explain` writes

Command line: ``dynsnip explain VIDEO --checkpoint DIR_OR_HUB_ID --out DIR``.
Needs the ``explain`` extra for Grad-CAM and the pictures: ``pip install 'dynsnip[explain]'``.
"""
from __future__ import annotations

from .adapter import VideoCall
from .figures import (
    contact_sheet_figure,
    gradcam_figure,
    inter_figure,
    intra_figure,
    save_figures,
)
from .maps import Explanation, explain_clip

__all__ = [
    "Explanation",
    "explain_clip",
    "save_figures",
    "gradcam_figure",
    "intra_figure",
    "inter_figure",
    "contact_sheet_figure",
    "VideoCall",
]
