"""Fake probabilities of face clips and videos, per video and per snippet: the library
behind ``dynsnip predict``.

:func:`predict_videos` turns video files into result entries (the ``videos`` of
``dynsnip predict --json``); a video that cannot be read becomes an entry with
``status: "error"`` and the reason, so one bad file never stops the others. Fail closed: a
clip with NaN / inf pixels is not scored (``non_finite_input``) and a NaN / inf output is
a failure (``non_finite_output``), never a probability or a verdict.
:func:`score_clip` is the forward pass that gives the video logit and the U snippet logits
together; :func:`fake_probability` reads a one-logit or two-logit head.

Layout: clips ``(B, 3, U*T, H, W)``, frames ordered snippet by snippet.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

from .engine.evaluate import progress_bar
from .engine.failures import NON_FINITE_OUTPUT, UNREADABLE, NonFiniteError, failed_item, non_finite_input

__all__ = ["predict_videos", "score_clip", "fake_probability", "score_face_clip", "load_clips", "failure",
           "DEFAULT_WORKERS"]

# Decoding and face detection take a large share of the time (most of it next to a GPU); two
# loader processes working ahead of the model gave 1.2-1.3x on 2 CPU cores
# (benchmarks/predict_throughput.py, docs/video.md).
DEFAULT_WORKERS = 2
# tqdm options of a bar over videos: shown only when stderr is a terminal
VIDEO_BAR = dict(unit="video", leave=True, disable=None)


def predict_videos(
    model: torch.nn.Module,
    videos: Iterable[str | os.PathLike[str]],
    *,
    loader: Any = None,
    threshold: float = 0.5,
    workers: int = DEFAULT_WORKERS,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Score video files with a detector; one result entry per video, in order.

    Args:
        model: a DIL detector (one fake logit, or two: real, fake); put in eval mode.
        videos: video file paths (or one path).
        loader: turns a path into a :class:`~dynsnip.data.FaceClip`; default
            ``FaceClipLoader.from_model(model)`` (the model's input size, mean/std, T and test
            U, dlib face crops). Needs the ``video`` extra.
        threshold: fake probability at or above which the verdict is ``"fake"``.
        workers: processes decoding and cropping videos ahead of the model (0: none).
        device: where the model runs (default: where its parameters are).
        progress: a tqdm bar on stderr.

    Returns:
        per video ``{"path", "status": "ok", "fake_probability", "verdict", "num_frames",
        "fps", "snippets": [...]}`` (see :func:`score_face_clip`) or ``{"path", "status":
        "error", "reason", "error"}`` (see :func:`failure`).
    """
    if loader is None:
        from .data import FaceClipLoader

        loader = FaceClipLoader.from_model(model)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    if isinstance(videos, (str, os.PathLike)):  # one video, not a sequence of characters
        videos = [videos]
    paths = [Path(v) for v in videos]
    clips = progress_bar(load_clips(paths, loader, workers), len(paths), "videos", progress, **VIDEO_BAR)
    results = []
    for path, clip, failed_load in clips:
        if failed_load is not None:
            results.append(failed_load)
            continue
        try:
            if (bad := non_finite_input(clip.pixels)) is not None:
                raise bad
            results.append(score_face_clip(model, clip, path, threshold, device))
        except Exception as err:  # one bad video must not stop the others: report it, go on
            results.append(failure(path, err))
    return results


def score_clip(model: Any, pixels: Any) -> tuple[Any, Any]:
    """Video-level and per-snippet logits from one forward pass.

    Args:
        model: a DIL model (``forward_features``/``forward_head``, ``snippet_len``).
        pixels: ``(B, 3, U*T, H, W)``.

    Returns:
        ``(video_logits (B, K), snippet_logits (B, U, K))``. The head pools each frame
        spatially, averages the frames and applies a linear classifier, so a snippet's logit
        is the classifier applied to the mean of its own T frames, and the mean of the U
        snippet logits equals the video logit exactly (linear classifier, equal T per
        snippet). The snippets interact inside the network (Inter-SIM), so each snippet
        score is "this part of the video, seen in the context of the whole".
    """
    from einops import rearrange, reduce

    feats = model.forward_features(pixels)  # (B, C, U*T, h, w)
    video_logits = model.forward_head(feats)
    per_frame = model.global_pool(rearrange(feats, "b c f h w -> (b f) c h w"))  # (B*U*T, C)
    per_snippet = reduce(
        per_frame, "(b u t) c -> b u c", "mean", b=pixels.shape[0], t=model.snippet_len
    )
    return video_logits, model.get_classifier()(per_snippet)


def fake_probability(logits: Any) -> Any:
    """``(..., K)`` logits -> ``(...)`` fake probability: sigmoid for K=1, softmax class 1 for K=2."""
    if logits.shape[-1] == 1:
        return logits[..., 0].sigmoid()
    if logits.shape[-1] == 2:
        return logits.softmax(-1)[..., 1]
    raise ValueError(f"a detector has 1 (fake logit) or 2 (real, fake) outputs, this one has {logits.shape[-1]}")


class _LoadedClips:
    """``paths[i] -> (path, FaceClip or None, failure dict or None)``, as a map-style dataset
    for worker processes: a video that cannot be read becomes its failure, so one bad file
    never stops the others."""

    def __init__(self, paths: Sequence[Path], loader: Any) -> None:
        self.paths, self.loader = list(paths), loader

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Path, Any, dict[str, Any] | None]:
        path = self.paths[index]
        try:
            return path, self.loader(path), None
        except Exception as err:  # reported with its reason in the results
            return path, None, failure(path, err)


def _as_is(item: Any) -> Any:
    return item


def load_clips(paths: Sequence[Path], loader: Any, workers: int) -> Iterator[tuple[Path, Any, dict[str, Any] | None]]:
    """Yield ``(path, clip, failure)`` in the order of ``paths``; with ``workers`` > 0 the
    videos are decoded and cropped in that many processes, ahead of the model.

    If the worker processes die (a decoder crash, or too little shared memory for the clips,
    as in a container with a small ``/dev/shm``), a warning says so and the remaining videos
    are loaded in this process: nothing already scored is lost, nothing is skipped.
    """
    dataset = _LoadedClips(paths, loader)
    done = 0
    if workers > 0 and len(paths) > 1:
        batches = torch.utils.data.DataLoader(
            dataset, batch_size=None, shuffle=False, num_workers=min(workers, len(paths)),
            collate_fn=_as_is, prefetch_factor=2,
        )
        try:
            for item in batches:
                yield item
                done += 1
            return
        except RuntimeError as err:  # DataLoader: "worker (pid N) exited unexpectedly" and the like
            warnings.warn(
                f"the {workers} video loader process(es) failed after {done} of {len(paths)} videos "
                f"({str(err).splitlines()[0]}); loading the other videos in this process (--workers 0 "
                "avoids the processes; in a container, a larger /dev/shm lets them work)",
                RuntimeWarning, stacklevel=2,
            )
    for index in range(done, len(dataset)):
        yield dataset[index]


def score_face_clip(model: Any, clip: Any, path: Path, threshold: float, device: Any) -> dict[str, Any]:
    """The result entry of ``clip`` (a :class:`~dynsnip.data.FaceClip` of the video at ``path``):
    its fake probability and verdict, and per snippet the frames, times, probability, whether
    a face was found and the crop box."""
    import torch

    with torch.inference_mode():
        video_logits, snippet_logits = score_clip(model, clip.pixels[None].to(device))
    if not (torch.isfinite(video_logits).all() and torch.isfinite(snippet_logits).all()):
        raise NonFiniteError(
            NON_FINITE_OUTPUT,
            f"the model's output is not finite (video logits {video_logits[0].tolist()}); expected finite "
            "logits: the weights hold NaN / inf, the input overflowed, or config.json's mean / std are wrong",
        )
    probability = float(fake_probability(video_logits)[0])
    snippet_probs = fake_probability(snippet_logits)[0].tolist()
    snippets = []
    for u, prob in enumerate(snippet_probs):
        frames = clip.frame_indices[u].tolist()
        times = clip.timestamps[u].tolist()
        snippets.append(
            dict(
                index=u,
                first_frame=frames[0],
                last_frame=frames[-1],
                start_s=round(times[0], 3),
                end_s=round(times[-1], 3),
                fake_probability=round(prob, 4),
                face_found=bool(clip.face_found[u]),
                crop_box=clip.crop_boxes[u].tolist(),
            )
        )
    return dict(
        path=str(path),
        status="ok",
        fake_probability=round(probability, 4),
        verdict="fake" if probability >= threshold else "real",
        num_frames=clip.num_frames,
        fps=round(clip.fps, 3),
        face_coverage=round(clip.face_coverage, 4),
        frames_checked=clip.frames_checked,
        frames_with_face=clip.frames_with_face,
        frames_scored=getattr(clip, "frames_scored", 0),
        frames_showing_face=getattr(clip, "frames_showing_face", 0),
        snippets=snippets,
    )


def failure(path: str | os.PathLike[str], err: BaseException) -> dict[str, Any]:
    """The result entry of a video that could not be scored: ``status: "error"``, the
    ``reason`` as training and evaluation report it (``not_found``, ``corrupt``,
    ``no_video_stream``, ``unseekable``, ``frame_size_change``, ``no_face``, ``low_face_coverage`` (with its
    ``face_coverage``), ``unreadable``, ``non_finite_input``, ``non_finite_output``; ``error``
    for anything else) and the message."""
    if isinstance(err, (*UNREADABLE, NonFiniteError)):
        failed = failed_item(0, str(path), err)
        entry = dict(path=str(path), status="error", reason=failed.reason, error=failed.message)
        if hasattr(err, "coverage"):  # low_face_coverage: the fraction it had
            entry["face_coverage"] = round(err.coverage, 4)
        return entry
    return dict(path=str(path), status="error", reason="error", error=f"{type(err).__name__}: {err}")
