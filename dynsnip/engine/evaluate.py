"""Video-level evaluation: one fake-probability per video, then accuracy / AUC (per method).

Works on any dataset whose items are ``(pixels (3, U*T, H, W), label)``; ids and
manipulation methods for the report come from, in this order:

* ``dataset.item_info(i)`` -> ``{"id": ..., "method": ...}`` (the demo's datasets);
* ``dataset.entries[i]`` (the :mod:`dynsnip.data` datasets): the entry's ``path`` is the
  id, its ``method`` attribute (if the manifest has that column) the method;
* otherwise the item's index, and no method.

A video that cannot be read (:mod:`dynsnip.engine.failures`: corrupt, no face, missing
frames, NaN / inf pixels...) or whose logit is not finite (reason ``non_finite_output``:
NaN weights, an fp16 overflow) is listed in ``report["failed"]`` with the reason, and the
metrics are computed on the others: a NaN is never turned into a score. Failures are
counted per video: a video is in ``failed`` (once, however many of its items or clips
failed) only when nothing of it was scored. A face track that failed in a video scored on
its other faces (a track below ``min_face_coverage``) is what ``predict`` does with it: the
video keeps its verdict, and the track is listed under ``report["tracks_not_scored"]`` (and
in the video's prediction, ``tracks_not_scored``), not among the failed videos.

Items sharing an id (the face tracks of one video, ``FaceFramesDataset(faces="all")``) are
reduced to one video score, the most suspicious (``video_score="max"``, default) or their
mean; an item holding several clips, ``(K, 3, U*T, H, W)`` (``VideoDataset(faces="all")``:
every face of a video), is scored clip by clip and reduced the same way. Under
``torchrun`` each process scores every ``world_size``-th item and the results are gathered,
so every video is scored exactly once.
"""
from __future__ import annotations

import functools
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from .distributed import DistInfo, all_gather_objects
from .failures import (
    NON_FINITE_OUTPUT, FailedItem, SkipUnreadable, collate_readable, count_reasons, describe_failures,
)
from .metrics import aggregate_by_video, video_logits, video_metrics, with_failed_counts

__all__ = ["EvalResult", "NothingScoredError", "evaluate", "item_info", "autocast_context", "progress_bar"]


class NothingScoredError(ValueError):
    """No video of the evaluation set could be read or scored: there are no metrics. ``failures``
    holds each video's failure (its reason and message), as :attr:`EvalResult.failures` would."""

    def __init__(self, message: str, failures: Sequence[Any]) -> None:
        super().__init__(message)
        self.failures = list(failures)


@dataclass
class EvalResult:
    """``report``: :func:`~dynsnip.engine.metrics.video_metrics` plus ``loss``, ``seconds``,
    ``num_failed`` and ``failed`` (the videos of which nothing could be scored, one entry each:
    ``id``, ``reason``, ``message``, ``label``, ``method``; counted per subset in ``overall`` /
    ``per_method`` ``num_failed`` and in ``failed_by_method``), ``tracks_not_scored`` (face tracks that failed in videos
    scored on their other faces: ``id``, ``track``, ``reason``, ``message``); ``predictions``:
    one dict per scored video (``id``, ``label``, ``score``: its fake probability, ``logit``: the logit
    of that probability, by which the AUC orders videos whose probabilities are equal, such as the
    1.0 of every logit above ~37; ``method``)."""

    report: dict[str, Any]
    predictions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return self.report.get("failed", [])

    @property
    def auc(self) -> float:
        return self.report["overall"]["auc"]

    @property
    def accuracy(self) -> float:
        return self.report["overall"]["accuracy"]

    @property
    def loss(self) -> float:
        return self.report["loss"]


def item_info(dataset: Dataset, index: int) -> dict[str, Any]:
    """``{"id", "method"}`` of item ``index`` (see module docstring)."""
    if isinstance(dataset, Subset):
        return item_info(dataset.dataset, int(dataset.indices[index]))
    info_fn = getattr(dataset, "item_info", None)
    if callable(info_fn):
        info = dict(info_fn(index))
        info.setdefault("id", str(index))
        info.setdefault("method", None)
        return info
    entries = getattr(dataset, "entries", None)
    if entries is not None:
        entry = entries[index]
        path = getattr(entry, "path", None)
        return {"id": str(path) if path is not None else str(index), "method": getattr(entry, "method", None)}
    return {"id": str(index), "method": None}


def item_label(dataset: Dataset, index: int) -> int | None:
    """The label of item ``index`` without reading it (its ``item_info``'s, else its manifest
    entry's), or None when the dataset does not say: what a failed video's report gives."""
    if isinstance(dataset, Subset):
        return item_label(dataset.dataset, int(dataset.indices[index]))
    label = item_info(dataset, index).get("label")
    entries = getattr(dataset, "entries", None)
    if label is None and entries is not None:
        label = getattr(entries[index], "label", None)
    return int(label) if label is not None else None


def item_id(dataset: Dataset, index: int) -> str:
    """The id of item ``index`` in reports (its video or frame folder when known)."""
    return str(item_info(dataset, index)["id"])


class _Indexed(Dataset):
    """Items ``(pixels, label, index)`` of ``dataset`` restricted to ``indices``."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset = dataset
        self.indices = list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        index = self.indices[i]
        item = self.dataset[index]
        if isinstance(item, FailedItem):
            return item
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError(
                f"dataset item {index} is a {type(item).__name__}; expected (pixels, label) with pixels "
                "(3, U*T, H, W) and label 0 (real) / 1 (fake)"
            )
        return item[0], torch.as_tensor(item[1], dtype=torch.float32), index


def collate_tracks(batch: Sequence[Any]) -> tuple[Any, list[FailedItem]]:
    """:func:`~dynsnip.engine.failures.collate_readable`, with items holding the clips of several
    face tracks (``(K, 3, U*T, H, W)`` pixels) flattened into K rows sharing their index."""
    rows = []
    for item in batch:
        if not isinstance(item, FailedItem) and item[0].ndim == 5:
            rows += [(pixels, *item[1:]) for pixels in item[0]]
        else:
            rows.append(item)
    return collate_readable(rows)


def autocast_context(device: torch.device, enabled: bool, dtype: torch.dtype = torch.float16):
    """``torch.autocast`` on CUDA when ``enabled``; a no-op elsewhere (CPU runs stay float32)."""
    return torch.autocast(device_type="cuda", dtype=dtype, enabled=enabled and device.type == "cuda")


def progress_bar(iterable, total: int | None, desc: str, enabled: bool, **tqdm_options: Any):
    """A tqdm bar when tqdm is installed, ``enabled`` and its output (``file``, default stderr)
    is a terminal; the bare iterable otherwise. ``tqdm_options`` go to tqdm (e.g. ``unit="video"``).

    Into a log file or a pipe a bar writes a new line at every refresh, burying the log in
    thousands of lines, so there is none; ``train`` then logs a line every ``log_every``
    steps instead.

    The iterator is created here, before tqdm sees it: iterating ``tqdm(DataLoader)`` draws
    the loader's random state differently from iterating the loader (tqdm 4.70), and a
    progress bar must not change which clips a seeded epoch sees.
    """
    iterator = iter(iterable)
    stream = tqdm_options.get("file") or sys.stderr
    if not enabled or not (hasattr(stream, "isatty") and stream.isatty()):
        return iterator
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterator
    return tqdm(iterator, **{"total": total, "desc": desc, "dynamic_ncols": True, "leave": False, **tqdm_options})


def _check_logits(logits: torch.Tensor) -> torch.Tensor:
    """The fake logit per clip, ``(B,)``: of a one-logit head (dynsnip's), or of a (real, fake)
    head, ``l_fake - l_real``, whose sigmoid is that head's softmax probability of fake (as
    ``predict`` scores it)."""
    if logits.ndim != 2 or logits.shape[1] not in (1, 2):
        raise ValueError(
            f"the model returned logits of shape {tuple(logits.shape)}; expected (B, 1): one 'fake' logit, "
            "or (B, 2): real and fake"
        )
    if logits.shape[1] == 2:
        return (logits[:, 1].float() - logits[:, 0].float())
    return logits[:, 0].float()


def coverage_summary(coverages: Sequence[float]) -> dict[str, Any]:
    """``{"videos", "mean", "lowest", "videos_below_half"}`` of the per-video face coverages of a
    report (the fraction of the frames the face detector looked at that showed a face; one half
    is the default ``--min-face-coverage``, below which prediction refuses a verdict)."""
    values = [float(c) for c in coverages]
    return {"videos": len(values), "mean": sum(values) / len(values), "lowest": min(values),
            "videos_below_half": sum(v < 0.5 for v in values)}


def _non_finite_outputs(dataset: Dataset, rows: list[tuple[int, float, float, float]]) -> tuple[list, list[FailedItem]]:
    """``rows`` without the videos that have a clip with a NaN / inf logit, and a failure per such clip."""
    failed = [FailedItem(r[0], item_id(dataset, r[0]), NON_FINITE_OUTPUT,
                         f"the model's logit is {r[2]}; expected a finite number (NaN or infinite weights, "
                         "an overflow in half precision, or a preprocessing that divides by zero)")
              for r in rows if not math.isfinite(r[2])]
    bad_ids = {f.id for f in failed}
    return [r for r in rows if item_id(dataset, r[0]) not in bad_ids], failed


def _group_failures(dataset: Dataset, failures: Sequence[FailedItem],
                    scored_ids: set[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(failed, tracks_not_scored)`` of ``failures`` (one per failed item or clip), grouped by video:
    one entry per video none of whose items was scored (its first failure's reason and message,
    with how many more of its items failed), and one per failed item of a scored video (its face
    track), as ``predict`` lists a track below the coverage beside the verdict on the others.
    Each entry has the video's ``label`` and ``method`` (None where the dataset does not say)."""
    by_video: dict[str, list[FailedItem]] = {}
    for f in failures:
        by_video.setdefault(f.id, []).append(f)
    failed, not_scored = [], []
    for vid, items in by_video.items():
        tracks = [item_info(dataset, f.index).get("track") for f in items]
        where = {"label": item_label(dataset, items[0].index), "method": item_info(dataset, items[0].index)["method"]}
        if vid in scored_ids:
            not_scored += [{**f.report(), **where, **({"track": t} if t is not None else {})}
                           for f, t in zip(items, tracks)]
            continue
        entry = {**items[0].report(), **where}
        if len(items) > 1:
            what = "face tracks" if any(t is not None for t in tracks) else "items / clips"
            counts = count_reasons(items)
            entry["message"] += (f" (all {len(items)} {what} of this video failed: "
                                 + ", ".join(f"{reason} {n}" for reason, n in counts.items()) + ")")
            entry["failed_items"] = len(items)
        failed.append(entry)
    return failed, not_scored


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 10,
    device: str | torch.device | None = None,
    amp: bool = True,
    amp_dtype: torch.dtype = torch.float16,
    num_workers: int = 0,
    threshold: float = 0.5,
    dist_info: DistInfo | None = None,
    progress: bool = True,
    desc: str = "eval",
    video_score: str = "max",
) -> EvalResult:
    """Score every item of ``dataset`` with ``model`` and compute the paper's metrics.

    Args:
        model: a detector with one "fake" logit (``(B, 3, U*T, H, W) -> (B, 1)``).
        dataset: items ``(pixels, label)``; build it with the evaluation U (paper: 8).
        batch_size: clips per forward pass (per process).
        device: where to run (default: the model's device).
        amp: fp16 autocast on CUDA (ignored on CPU).
        threshold: on the fake probability, for accuracy (paper: 0.5).
        dist_info: from :func:`~dynsnip.engine.distributed.init_distributed`; the items are
            split over the ranks and the results gathered on all of them.
        progress: show a progress bar (main process only).
        video_score: how the items of one video (its face tracks) make its score: ``"max"``
            (the most suspicious face) or ``"mean"``.

    Returns:
        :class:`EvalResult`; ``report["loss"]`` is the mean binary cross-entropy per item.
    """
    if len(dataset) == 0:
        raise ValueError("the evaluation dataset is empty; expected at least one labelled video")
    info = dist_info or DistInfo()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    indices = list(range(info.rank, len(dataset), info.world_size))
    readable = SkipUnreadable(dataset, item_id=functools.partial(item_id, dataset))
    loader = DataLoader(
        _Indexed(readable, indices), batch_size=batch_size, shuffle=False, num_workers=num_workers,
        pin_memory=device.type == "cuda", collate_fn=collate_tracks,
    )
    was_training = model.training
    model.eval()
    rows: list[tuple[int, float, float, float]] = []  # index, label, logit, loss
    failures: list[FailedItem] = []
    start = time.perf_counter()
    try:
        bar = progress_bar(loader, len(loader), desc, progress and info.is_main)
        for batch, failed in bar:
            failures += failed
            if batch is None:
                continue
            pixels, labels, idx = batch
            pixels = pixels.to(device, non_blocking=True)
            with autocast_context(device, amp, amp_dtype):
                logits = _check_logits(model(pixels))
            labels = labels.to(logits.device)
            losses = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
            rows += list(zip(idx.tolist(), labels.tolist(), logits.tolist(), losses.tolist()))
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - start
    rows = [r for part in all_gather_objects(rows) for r in part]
    rows.sort(key=lambda r: r[0])
    rows, non_finite = _non_finite_outputs(dataset, rows)
    failures = sorted((f for part in all_gather_objects(failures) for f in part), key=lambda f: f.index)
    failures = sorted(failures + non_finite, key=lambda f: f.index)
    if not rows:
        per_video, _ = _group_failures(dataset, failures, set())
        raise NothingScoredError(f"none of the {len(per_video)} evaluation videos could be read or scored:\n"
                                 f"{describe_failures(per_video, limit=None)}", per_video)
    infos = [item_info(dataset, r[0]) for r in rows]
    probs = [1.0 / (1.0 + math.exp(-r[2])) if r[2] > -700 else 0.0 for r in rows]
    ids, scores, labels, methods = aggregate_by_video(
        [i["id"] for i in infos], probs, [int(r[1]) for r in rows], [i.get("method") for i in infos],
        reduce=video_score,
    )
    # the AUC ranks equal probabilities by their logits: every logit above ~37 has probability 1.0
    logits = video_logits([i["id"] for i in infos], [r[2] for r in rows], reduce=video_score)
    report = video_metrics(scores, labels, methods, threshold, logits=logits)
    report["loss"] = sum(r[3] for r in rows) / len(rows)
    report["seconds"] = seconds
    report["threshold"] = threshold
    if len(rows) > len(ids):  # several face tracks of some videos
        report["video_score"] = video_score
        report["scored_clips"] = len(rows)
    failed, tracks_not_scored = _group_failures(dataset, failures, set(ids))
    report["num_failed"] = len(failed)  # videos, not items: a video of 3 failed face tracks is one
    report["failed"] = failed
    report["failed_by_reason"] = count_reasons(failed)  # e.g. low_face_coverage: below the face-coverage threshold
    report["tracks_not_scored"] = tracks_not_scored  # the verdict on these videos is about their other faces
    report = with_failed_counts(report)  # num_failed per subset, failed_by_method
    unscored_of: dict[str, list[str]] = {}
    for t in tracks_not_scored:
        unscored_of.setdefault(t["id"], []).append(f"{t.get('track', '?')}:{t['reason']}")
    coverage_of = {i["id"]: i["face_coverage"] for i in infos if i.get("face_coverage") is not None}
    tracks_of: dict[str, dict[str, float]] = {}  # --faces all: each scored face track's fake probability
    for info, prob in zip(infos, probs):
        if info.get("track") is not None:
            tracks_of.setdefault(info["id"], {})[str(info["track"])] = prob
    predictions = [
        {"id": v, "label": y, "score": s, "logit": z, **({"method": m} if methods is not None else {}),
         **({"face_coverage": coverage_of[v]} if v in coverage_of else {}),
         **({"tracks": ";".join(f"{t}:{p:.4f}" for t, p in sorted(tracks_of[v].items(), key=lambda kv: int(kv[0])))}
            if v in tracks_of else {}),
         **({"tracks_not_scored": ";".join(unscored_of[v])} if v in unscored_of else {})}
        for v, y, s, z, m in zip(ids, labels, scores, logits, methods or [None] * len(ids))
    ]
    scored_coverages = [coverage_of[v] for v in ids if v in coverage_of]
    if scored_coverages:  # frame folders written by extract-faces: how much of each video showed a face
        report["face_coverage"] = coverage_summary(scored_coverages)
    return EvalResult(report=report, predictions=predictions)
