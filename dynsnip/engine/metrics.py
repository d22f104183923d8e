"""Video-level metrics the paper reports: accuracy and AUC, overall and per manipulation method.

No scikit-learn: AUC is the Mann-Whitney statistic computed from ranks (ties get their
average rank, so a tie between a real and a fake counts one half), which equals the area
under the ROC curve exactly.

Scores are probabilities of "fake" (``sigmoid`` of the detector's single logit) or the
logits themselves: AUC only uses their order; accuracy thresholds them at ``threshold``
(0.5 for probabilities, the paper's decision rule).

A probability in float64 does not keep the order of large logits: every logit above about 37
rounds to 1.0 (and from about 33 on only a few values remain), so a confident detector's fakes
and reals would tie there and its AUC fall towards 0.5. The ranking metrics (AUC, AP, EER)
therefore take the ``logits`` behind the probabilities where the caller has them: videos are
ranked by probability, and those whose probabilities are equal by their logits (see
:func:`video_logits` for the logit of a video scored from several clips). Reports keep the
probabilities, and accuracy keeps thresholding them.

Per-method protocol (FaceForensics++ tables): for manipulation method ``m`` the test set is
all real videos plus the fakes of ``m``; its AUC and accuracy are computed on that subset.
``fake_recall`` (the share of ``m``'s fakes called fake) is reported too: it needs no real
videos.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch

from ..data.manifest import REAL_METHODS, is_real_method  # the manifest's convention

__all__ = [
    "roc_auc",
    "accuracy",
    "average_precision",
    "equal_error_rate",
    "binary_metrics",
    "video_metrics",
    "aggregate_by_video",
    "video_logits",
    "with_failed_counts",
    "write_report",
    "REAL_METHODS",
]



def _as_1d(values: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64).flatten()
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} holds {bad} non-finite values (NaN/inf); expected finite numbers")
    return t


def _check_pair(scores: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s = _as_1d(scores, "scores")
    y = _as_1d(labels, "labels")
    if s.numel() != y.numel():
        raise ValueError(f"{s.numel()} scores for {y.numel()} labels; expected one score per label")
    if not ((y == 0) | (y == 1)).all():
        raise ValueError("labels must be 0 (real) or 1 (fake)")
    return s, y


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks of ``x``; tied values share the mean of their ranks."""
    order = torch.argsort(x, stable=True)
    sorted_x = x[order]
    n = x.numel()
    # start index of each run of equal values
    new_run = torch.ones(n, dtype=torch.bool)
    new_run[1:] = sorted_x[1:] != sorted_x[:-1]
    run_id = torch.cumsum(new_run.long(), 0) - 1
    starts = torch.nonzero(new_run).flatten()
    ends = torch.cat([starts[1:], torch.tensor([n])])
    mean_rank = (starts + ends + 1).double() / 2  # mean of ranks starts+1 .. ends
    ranks = torch.empty(n, dtype=torch.float64)
    ranks[order] = mean_rank[run_id]
    return ranks


def _ranking_key(s: torch.Tensor, logits: Any) -> torch.Tensor:
    """What the ranking metrics sort: ``s`` itself without ``logits``; with them, the dense rank
    of each ``(score, logit)`` pair (ordered by score, then by logit), so that scores that are
    equal only because a probability rounded (a saturated sigmoid) are told apart by their logits,
    while scores that differ keep their order and pairs equal in both stay tied."""
    if logits is None:
        return s
    t = _as_1d(logits, "logits")
    if t.numel() != s.numel():
        raise ValueError(f"{t.numel()} logits for {s.numel()} scores; expected the logit behind each score")
    order = torch.argsort(t, stable=True)
    order = order[torch.argsort(s[order], stable=True)]  # by score, ties by logit
    ss, tt = s[order], t[order]
    new_value = torch.ones(s.numel(), dtype=torch.bool)
    new_value[1:] = (ss[1:] != ss[:-1]) | (tt[1:] != tt[:-1])
    key = torch.empty(s.numel(), dtype=torch.float64)
    key[order] = (torch.cumsum(new_value.long(), 0) - 1).double()
    return key


def roc_auc(scores: Any, labels: Any, logits: Any = None) -> float:
    """Area under the ROC curve of ``scores`` for ``labels`` (1 = fake, the positive class).

    Rank form (Mann-Whitney U): ``(sum of fake ranks - n1 (n1 + 1) / 2) / (n0 n1)``.
    Returns NaN when only one class is present (the AUC is undefined there).

    Args:
        logits: the logit behind each score (probability), optional: equal scores are then
            ranked by their logits (a sigmoid saturated to 1.0 loses their order; module docstring).
    """
    s, y = _check_pair(scores, labels)
    s = _ranking_key(s, logits)
    n1 = int(y.sum())
    n0 = y.numel() - n1
    if n0 == 0 or n1 == 0:
        return math.nan
    ranks = _average_ranks(s)
    u = ranks[y == 1].sum().item() - n1 * (n1 + 1) / 2
    return u / (n0 * n1)


def _roc_points(s: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """True and false positive counts at each distinct score, from the highest down
    (a threshold at a tied score takes the whole tie)."""
    order = torch.argsort(s, descending=True, stable=True)
    s, y = s[order], y[order]
    last_of_tie = torch.ones(s.numel(), dtype=torch.bool)
    last_of_tie[:-1] = s[1:] != s[:-1]
    tp = torch.cumsum(y, 0)[last_of_tie]
    fp = torch.cumsum(1 - y, 0)[last_of_tie]
    return tp, fp


def average_precision(scores: Any, labels: Any, logits: Any = None) -> float:
    """Average precision of ``scores`` for ``labels`` (1 = fake): ``sum_n (R_n - R_{n-1}) P_n`` over
    the distinct scores from the highest down (precision at each recall step, no interpolation;
    tied scores form one step). NaN without fakes. ``logits``: as in :func:`roc_auc`."""
    s, y = _check_pair(scores, labels)
    s = _ranking_key(s, logits)
    positives = y.sum().item()
    if positives == 0:
        return math.nan
    tp, fp = _roc_points(s, y)
    precision = tp / (tp + fp)
    recall = tp / positives
    steps = torch.diff(recall, prepend=torch.zeros(1, dtype=recall.dtype))
    return float((steps * precision).sum())


def equal_error_rate(scores: Any, labels: Any, logits: Any = None) -> float:
    """The equal error rate: on the ROC curve (thresholds at the distinct scores), the point where
    the false positive rate and the false negative rate are closest; their mean there. NaN
    when only one class is present. ``logits``: as in :func:`roc_auc`."""
    s, y = _check_pair(scores, labels)
    s = _ranking_key(s, logits)
    n1 = y.sum().item()
    n0 = y.numel() - n1
    if n0 == 0 or n1 == 0:
        return math.nan
    tp, fp = _roc_points(s, y)
    fpr = torch.cat([torch.zeros(1, dtype=fp.dtype), fp / n0])
    fnr = torch.cat([torch.ones(1, dtype=tp.dtype), 1 - tp / n1])
    i = int(torch.argmin((fnr - fpr).abs()))
    return float((fpr[i] + fnr[i]) / 2)


def accuracy(scores: Any, labels: Any, threshold: float = 0.5) -> float:
    """Share of videos with ``(score >= threshold) == label``; NaN for no videos."""
    s, y = _check_pair(scores, labels)
    if s.numel() == 0:
        return math.nan
    return ((s >= threshold).double() == y).double().mean().item()


def binary_metrics(scores: Any, labels: Any, threshold: float = 0.5, logits: Any = None) -> dict[str, float]:
    """``auc``, ``accuracy``, counts, and the accuracy on each class. Accuracy thresholds the
    scores; ``logits`` (optional, the logit behind each score) only break the AUC's ties between
    equal scores (:func:`roc_auc`)."""
    s, y = _check_pair(scores, labels)
    pred = (s >= threshold).double()
    n_fake = int(y.sum())
    n_real = y.numel() - n_fake
    return dict(
        auc=roc_auc(s, y, logits),
        accuracy=accuracy(s, y, threshold),
        num_videos=int(y.numel()),
        num_real=n_real,
        num_fake=n_fake,
        real_accuracy=(1 - pred[y == 0]).mean().item() if n_real else math.nan,
        fake_recall=pred[y == 1].mean().item() if n_fake else math.nan,
    )


def video_metrics(
    scores: Sequence[float],
    labels: Sequence[int],
    methods: Sequence[str | None] | None = None,
    threshold: float = 0.5,
    logits: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Overall metrics, and per manipulation method when ``methods`` names them.

    Args:
        scores: one fake-probability per video.
        labels: 0 real / 1 fake per video.
        methods: per video its manipulation method (``"Deepfakes"``, ``"Face2Face"``, ...);
            real videos may say ``None``, ``"real"`` or ``"original"``. None: overall only.
        threshold: decision threshold on ``scores``.
        logits: per video the logit of its score (:func:`video_logits`), optional: the AUC of
            every subset then ranks videos with equal probabilities by their logits, which keeps
            the order of confident scores that a float64 sigmoid rounds to 1.0.

    Returns:
        ``{"overall": {...}, "per_method": {method: {...}}}``; each entry as
        :func:`binary_metrics` (per method: all reals + that method's fakes).

    Raises:
        ValueError: a fake video without a method while others have one, or a real video
            labelled with a manipulation method.
    """
    s, y = _check_pair(scores, labels)
    # the (score, logit) order over all videos: each subset's order is its restriction
    key = None if logits is None else _ranking_key(s, logits)
    report: dict[str, Any] = {"overall": binary_metrics(s, y, threshold, key), "per_method": {}}
    if methods is None:
        return report
    methods = list(methods)
    if len(methods) != s.numel():
        raise ValueError(f"{len(methods)} methods for {s.numel()} videos; expected one per video")
    fake_methods = {}
    for i, (label, method) in enumerate(zip(y.tolist(), methods)):
        if label == 1:
            if is_real_method(method):
                if any(not is_real_method(m) for m in methods):
                    raise ValueError(
                        f"video {i} is fake but has no manipulation method ({method!r}) while others do; "
                        "give every fake its method in the manifest"
                    )
                continue
            fake_methods.setdefault(str(method), []).append(i)
        elif not is_real_method(method):
            raise ValueError(
                f"video {i} is labelled real but its method is {method!r}; real videos should have "
                f"an empty method or one of {REAL_METHODS}"
            )
    real_idx = torch.nonzero(y == 0).flatten()
    for method, idx in sorted(fake_methods.items()):
        subset = torch.cat([real_idx, torch.tensor(idx, dtype=torch.long)])
        report["per_method"][method] = binary_metrics(s[subset], y[subset], threshold,
                                                    None if key is None else key[subset])
    return report


def aggregate_by_video(
    ids: Sequence[str], scores: Sequence[float], labels: Sequence[int], methods: Sequence[Any] | None = None,
    reduce: str = "mean",
) -> tuple[list[str], list[float], list[int], list[Any] | None]:
    """Average (``reduce="mean"``) or take the largest (``"max"``) of the scores of items sharing
    an id (several clips or face tracks of one video, or the copies a distributed sampler pads
    with) into one video-level score, keeping first-seen order.

    Raises:
        ValueError: one id with two different labels, or an unknown ``reduce``.
    """
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    highest: dict[str, float] = {}
    order: list[str] = []
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    label_of: dict[str, int] = {}
    method_of: dict[str, Any] = {}
    methods = list(methods) if methods is not None else [None] * len(ids)
    for vid, score, label, method in zip(ids, scores, labels, methods):
        label = int(label)
        if vid not in sums:
            order.append(vid)
            sums[vid], counts[vid], label_of[vid], method_of[vid] = 0.0, 0, label, method
        elif label_of[vid] != label:
            raise ValueError(f"video {vid!r} appears with labels {label_of[vid]} and {label}")
        sums[vid] += float(score)
        counts[vid] += 1
        highest[vid] = max(highest.get(vid, float(score)), float(score))
    out_methods = [method_of[v] for v in order] if any(m is not None for m in methods) else None
    scores_out = [highest[v] for v in order] if reduce == "max" else [sums[v] / counts[v] for v in order]
    return order, scores_out, [label_of[v] for v in order], out_methods


def video_logits(ids: Sequence[str], logits: Sequence[float], reduce: str = "mean") -> list[float]:
    """Per video (items sharing an id, first-seen order as :func:`aggregate_by_video`) the logit of
    the score :func:`aggregate_by_video` gives it from the items' probabilities ``sigmoid(logit)``:
    what :func:`video_metrics` ranks equal probabilities by.

    ``"max"``: the largest logit (the sigmoid is increasing). ``"mean"``: a video of one item keeps
    its logit; of several, ``logit(mean_i sigmoid(l_i))`` computed in log space,
    ``logsumexp_i(logsigmoid(l_i)) - logsumexp_i(logsigmoid(-l_i))``, which stays exact in order
    where the mean probability itself has rounded to 1.0 (a video's logits are sorted first, so
    that two videos with the same logits get the same value whatever their items' order).

    Raises:
        ValueError: an unknown ``reduce``, a non-finite logit, or not one logit per id.
    """
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    values = _as_1d(logits, "logits")
    ids = list(ids)
    if len(ids) != values.numel():
        raise ValueError(f"{values.numel()} logits for {len(ids)} ids; expected one logit per item")
    of_video: dict[str, list[float]] = {}
    for vid, logit in zip(ids, values.tolist()):
        of_video.setdefault(vid, []).append(logit)
    out = []
    for items in of_video.values():
        if reduce == "max" or len(items) == 1:
            out.append(max(items))
            continue
        x = torch.tensor(sorted(items), dtype=torch.float64)
        out.append(float(torch.logsumexp(torch.nn.functional.logsigmoid(x), 0)
                         - torch.logsumexp(torch.nn.functional.logsigmoid(-x), 0)))
    return out


def with_failed_counts(report: Mapping[str, Any]) -> dict[str, Any]:
    """``report`` with, from its ``failed`` videos (each with its ``label`` and ``method`` where
    known), ``num_failed`` in ``overall`` and in each ``per_method`` row (by the per-method
    protocol: the failed real videos and that method's failed fakes) and ``failed_by_method``
    (``{method: n}``, real videos under ``"real"``, unknown ones under ``"unknown"``), so that a
    subset's metrics say how many of its videos they are missing. A fake whose method has no
    row (none of its fakes was scored) is counted in ``overall`` and ``failed_by_method``."""
    failed = list(report.get("failed") or [])

    def kind(f: Mapping[str, Any]) -> str:
        label, method = f.get("label"), f.get("method")
        if label is not None and int(label) == 0:
            return "real"
        if label is None and (method is None or is_real_method(method)):
            return "unknown" if method is None else "real"
        return "unknown" if is_real_method(method) else str(method)

    kinds = [kind(f) for f in failed]
    by_method: dict[str, int] = {}
    for k in kinds:
        by_method[k] = by_method.get(k, 0) + 1
    out = dict(report, failed_by_method=by_method)
    if isinstance(report.get("overall"), Mapping):
        out["overall"] = dict(report["overall"], num_failed=len(failed))
    out["per_method"] = {method: dict(m, num_failed=by_method.get("real", 0) + by_method.get(method, 0))
                         for method, m in (report.get("per_method") or {}).items()}
    return out


def _clean(value: Any) -> Any:
    """NaN -> None so the JSON is standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def report_paths(path: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """The JSON, CSV and per-video CSV files :func:`write_report` writes for ``path``: the names
    are appended to it (``bench/ffpp_thr0.5`` -> ``bench/ffpp_thr0.5.json``, ``.csv``,
    ``_videos.csv``), after dropping only a literal ``.json`` / ``.csv`` suffix, so that a dot
    in the name (a threshold, a version) never makes two reports share files."""
    base = Path(path)
    if base.suffix.lower() in (".json", ".csv"):
        base = base.with_name(base.name[: -len(base.suffix)])
    return (base.with_name(base.name + ".json"), base.with_name(base.name + ".csv"),
            base.with_name(base.name + "_videos.csv"))


def write_report(
    report: Mapping[str, Any],
    path: str | os.PathLike[str],
    predictions: Iterable[Mapping[str, Any]] | None = None,
) -> tuple[Path, Path]:
    """Write ``report`` as ``<path>.json`` and a metrics table ``<path>.csv``.

    The CSV has one row per subset (``overall`` and each method) with the columns of
    :func:`binary_metrics` and ``num_failed`` (the subset's videos that could not be scored, when
    the report says: :func:`with_failed_counts`). ``predictions`` (one mapping per video: id, label, score,
    logit, method) go into the JSON under ``"videos"`` and into ``<path>_videos.csv``.

    Args:
        path: file name with or without ``.json``/``.csv`` (any other dot is part of the name:
            ``thr0.5`` writes ``thr0.5.json``).

    Returns:
        the JSON and CSV paths.
    """
    json_path, csv_path, videos_path = report_paths(path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    data = dict(report)
    rows = [("overall", report["overall"])] + list(report.get("per_method", {}).items())
    if predictions is not None:
        predictions = [dict(p) for p in predictions]
        data["videos"] = predictions
    json_path.write_text(json.dumps(_clean(data), indent=2) + "\n", encoding="utf-8")
    columns = ["subset", "auc", "accuracy", "num_videos", "num_real", "num_fake", "num_failed", "real_accuracy",
               "fake_recall"]
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for name, m in rows:
            writer.writerow([name] + ["" if _clean(m.get(c)) is None else m.get(c) for c in columns[1:]])
    if predictions:
        keys = list(dict.fromkeys(k for p in predictions for k in p))
        with videos_path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(predictions)
    return json_path, csv_path
