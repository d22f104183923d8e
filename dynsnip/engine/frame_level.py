"""Frame-level scores next to the video-level ones, from the same forward pass.

Most DeepFake papers and DeepfakeBench also report a *frame-level* AUC. A DIL detector
sees whole clips, so here a frame's score is the detector's classifier applied to that
frame's own pooled features (:class:`FrameScoreRecorder`): the head pools every frame
spatially, averages the U*T frames and applies a linear layer, so the mean of the U*T frame
logits is exactly the video logit. Frames still see their neighbours through the SIMs: a
frame score is "this frame, in the context of its clip", not a single-image detector.

Layout: clips ``(B, 3, U*T, H, W)``; recorded frame logits ``(B, U*T)``.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from .metrics import video_metrics

__all__ = ["FrameScoreRecorder", "frame_level_report"]


class FrameScoreRecorder(torch.nn.Module):
    """Wraps a DIL detector: ``forward`` returns its video logits ``(B, 1)`` unchanged and
    appends each clip's frame logits ``(U*T,)`` to :attr:`frame_logits`, in call order.

    Needs ``forward_features``, ``forward_head``, ``global_pool`` and ``get_classifier``
    (every ``dil_*`` model; TypeError otherwise).
    """

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        missing = [n for n in ("forward_features", "forward_head", "global_pool", "get_classifier")
                   if not hasattr(model, n)]
        if missing:
            raise TypeError(f"frame-level scores need a dil_* model; {type(model).__name__} lacks {missing}")
        self.model = model
        self.frame_logits: list[torch.Tensor] = []

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        feats = self.model.forward_features(pixels)  # (B, C, U*T, h, w)
        video = self.model.forward_head(feats)
        b, frames = feats.shape[0], feats.shape[2]
        pooled = self.model.global_pool(feats.transpose(1, 2).flatten(0, 1))  # (B*U*T, C)
        per_frame = self.model.get_classifier()(pooled)[:, 0].float().reshape(b, frames)
        self.frame_logits += list(per_frame.detach().cpu())
        return video


def frame_level_report(
    frame_logits: Sequence[torch.Tensor], predictions: Sequence[dict[str, Any]], threshold: float = 0.5,
) -> dict[str, Any]:
    """Frame-level metrics: every recorded frame is one sample with its video's label (and
    method); ``overall`` and ``per_method`` as :func:`~dynsnip.engine.metrics.video_metrics`.

    Args:
        frame_logits: :attr:`FrameScoreRecorder.frame_logits`, one per scored clip in order.
        predictions: ``EvalResult.predictions`` (one per video, same order).

    Raises:
        ValueError: the counts differ (several clips per video, or a distributed run): the
            frames cannot be matched to their videos.
    """
    if len(frame_logits) != len(predictions):
        raise ValueError(f"{len(frame_logits)} scored clips for {len(predictions)} videos; frame scores can only "
                         "be matched to videos scored once each, in one process")
    probs, labels, methods, ranks = [], [], [], []
    for logits, video in zip(frame_logits, predictions):
        probs += torch.sigmoid(logits).tolist()
        ranks += logits.double().flatten().tolist()  # the AUC's order where probabilities round to 1.0 (logit ~17)
        labels += [int(video["label"])] * logits.numel()
        methods += [video.get("method")] * logits.numel()
    report = video_metrics(probs, labels, methods if any(m is not None for m in methods) else None, threshold,
                           logits=ranks)
    report["frames_per_video"] = int(frame_logits[0].numel()) if frame_logits else 0
    return report
