"""Items that cannot be read: reported and skipped, so that one bad video does not end a run.

A manifest of thousands of videos often holds a few that are truncated, have no face or
whose frame folder went missing. :class:`SkipUnreadable` wraps a dataset so that such an
item becomes a :class:`FailedItem` (index, id, reason, message) instead of an exception
in a DataLoader worker; :func:`collate_readable` batches the readable items and hands the
failures on. :func:`train` logs the skipped clips of each epoch (and stops when most of an
epoch fails: then the data, not a few files, is broken); :func:`evaluate` reports the
failed videos next to the metrics of the others.

What counts as unreadable: :class:`dynsnip.data.VideoError` (missing, corrupt, no video
stream, unseekable, no face; a broken ``extract-faces`` folder, ``bad_face_folder``: its
``faces.json`` truncated or not JSON, or frame images it lists missing) and ``OSError``
(missing frame folder, unreadable image). Anything else is a bug or a wrong setting and
still raises.

Fail closed on NaN / inf: a clip with a non-finite pixel would poison the BatchNorm
running statistics of the whole model in training and score NaN in evaluation, so
:class:`SkipUnreadable` turns it into a failed item (reason ``non_finite_input``) before
any forward pass; a model output that is not finite is a failure with reason
``non_finite_output`` (:class:`NonFiniteError`), never a verdict.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import torch
from torch.utils.data import Dataset, default_collate

from ..data.errors import VideoError
from ..picklable_errors import PicklableError

__all__ = [
    "FailedItem", "SkipUnreadable", "collate_readable", "UNREADABLE", "describe_failures", "NonFiniteError",
    "NON_FINITE_INPUT", "NON_FINITE_OUTPUT", "non_finite_input", "TooManyUnreadableError",
    "ValidationUnreadableError", "first_readable_failures", "EXTRACTION_FAILED_NAME", "extraction_failures",
    "with_earlier_failures",
]

UNREADABLE = (VideoError, OSError)
NON_FINITE_INPUT, NON_FINITE_OUTPUT = "non_finite_input", "non_finite_output"


class NonFiniteError(PicklableError, ValueError):
    """A clip (``reason`` ``non_finite_input``) or a model output (``non_finite_output``) holds
    NaN or inf: a failure with its reason, never a verdict."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def non_finite_input(pixels: Any) -> NonFiniteError | None:
    """The error for a clip tensor with NaN / inf pixels (how many, of how many); None if all are finite."""
    if not isinstance(pixels, torch.Tensor) or not pixels.is_floating_point():
        return None
    bad = int((~torch.isfinite(pixels)).sum())
    if not bad:
        return None
    return NonFiniteError(
        NON_FINITE_INPUT,
        f"{bad} of {pixels.numel()} input values are NaN or infinite; expected finite pixels "
        "(the clip is not fed to the model: one such clip would corrupt the BatchNorm statistics)",
    )


class TooManyUnreadableError(RuntimeError):
    """Most of an epoch's training clips could not be read (each reported with its reason before):
    the data, not a few files, is broken (no face in the videos, wrong paths), so training stops."""

    reason = "too_many_unreadable"


class ValidationUnreadableError(RuntimeError):
    """No video of the validation set could be read (each reported with its reason before): no
    validation metric, so no learning-rate schedule and no best model. Raised before the first
    epoch when a probe finds nothing readable, or after an epoch whose validation scored nothing
    (that epoch's training is kept in the checkpoint), so that training stops instead of
    losing every epoch after it."""

    reason = "validation_unreadable"


class FailedItem(NamedTuple):
    """An item that could not be read: ``index`` in the dataset, ``id`` (its path), a short
    ``reason`` (``corrupt``, ``no_face``, ``not_found``, ``bad_face_folder``, ``unreadable``...) and the message."""

    index: int
    id: str
    reason: str
    message: str

    def report(self) -> dict[str, str]:
        """``{"id", "reason", "message"}``: the entry of reports and ``history.json``."""
        return {"id": self.id, "reason": self.reason, "message": self.message}


class SkipUnreadable(Dataset):
    """``dataset[i]``, or a :class:`FailedItem` when reading it raises an unreadable-input error.

    Args:
        dataset: any map-style dataset.
        item_id: ``index -> id`` for the failure report (default: the index as text).
    """

    def __init__(self, dataset: Dataset, item_id: Callable[[int], str] | None = None):
        self.dataset = dataset
        self.item_id = item_id or str

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        try:
            item = self.dataset[index]
        except UNREADABLE as err:
            return failed_item(index, self.item_id(index), err)
        if isinstance(item, (tuple, list)) and item and (bad := non_finite_input(item[0])) is not None:
            return failed_item(index, self.item_id(index), bad)
        return item


def first_readable_failures(dataset: Dataset, item_id: Callable[[int], str] | None = None,
                            indices: Sequence[int] | None = None) -> list[FailedItem]:
    """Read ``dataset``'s items in order (``indices``: those only) until one can be read: ``[]``
    then (usually after one item, so it is cheap), else the failure of every item. Lets a
    training check, before its first epoch, that its validation set is not entirely unreadable
    (wrong paths, empty folders), or one of its classes."""
    readable = SkipUnreadable(dataset, item_id=item_id)
    failures: list[FailedItem] = []
    for index in (range(len(dataset)) if indices is None else indices):
        item = readable[index]
        if not isinstance(item, FailedItem):
            return []
        failures.append(item)
    return failures


def failed_item(index: int, item_id: str, err: BaseException) -> FailedItem:
    if isinstance(err, (VideoError, NonFiniteError)):
        return FailedItem(index, item_id, err.reason, err.message)
    reason = "not_found" if isinstance(err, FileNotFoundError) else "unreadable"
    return FailedItem(index, item_id, reason, f"{type(err).__name__}: {err}")


def collate_readable(batch: Sequence[Any]) -> tuple[Any, list[FailedItem]]:
    """``(default_collate of the readable items, or None when there are none; the failures)``."""
    failed = [item for item in batch if isinstance(item, FailedItem)]
    good = [item for item in batch if not isinstance(item, FailedItem)]
    return (default_collate(good) if good else None), failed


def describe_failures(failures: Sequence[FailedItem | Mapping[str, Any]], limit: int | None = 5) -> str:
    """One line per failure (``FailedItem`` or a report's ``{"id", "reason", "message"}``), the
    first ``limit`` of them (None: all), then how many more."""
    rows = [f.report() if isinstance(f, FailedItem) else f for f in failures]
    shown = rows if limit is None else rows[:limit]
    lines = [f"  {r['id']}: {r['reason']}: {r['message']}" for r in shown]
    if len(rows) > len(shown):
        lines.append(f"  ... and {len(rows) - len(shown)} more")
    counts = count_reasons(rows)
    if len(rows) > 1:  # e.g. how many clips fell below --min-face-coverage
        lines.append("  by reason: " + ", ".join(f"{reason} {n}" for reason, n in counts.items()))
    return "\n".join(lines)


def count_reasons(failures: Sequence[FailedItem | Mapping[str, Any]]) -> dict[str, int]:
    """``{reason: number of failures}``, most frequent first (e.g. ``low_face_coverage``: the
    clips whose face was found in too few frames)."""
    counts: dict[str, int] = {}
    for f in failures:
        reason = f.reason if isinstance(f, FailedItem) else f["reason"]
        counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


# written by `dynsnip extract-faces --manifest` beside its faces.csv: the rows it could not crop
EXTRACTION_FAILED_NAME = "faces_failed.csv"


def extraction_failures(manifest: "str | os.PathLike[str]", split: str | None = None,
                        keep: Callable[[list[Any]], list[Any]] | None = None) -> list[dict[str, str]]:
    """The videos that never reached ``manifest``: the rows of the ``faces_failed.csv`` beside it
    (``dynsnip extract-faces --manifest`` writes it next to its ``faces.csv``, and removes it when
    a later run fails nothing), of ``split`` (None: every split) and, with ``keep``, those it
    keeps of them (a benchmark's subsets), as failures of a report (``{"id", "reason",
    "message"}``). Metrics of the crops that did extract must not read as those of the whole
    set, so these count as videos that could not be read. A row whose video ``manifest``
    scores is left out, so no video counts as scored and failed at once: the video listed
    itself, or the video a listed frame folder holds (its ``faces.json`` source).

    Raises:
        ValueError: the file is there but is not a manifest with ``reason`` and ``message``.
    """
    import csv
    from pathlib import Path

    from ..data.faces.folder_source import recorded_video
    from ..data.manifest import read_manifest

    failed_file = Path(manifest).parent / EXTRACTION_FAILED_NAME
    if not failed_file.is_file() or failed_file.resolve() == Path(manifest).resolve():
        return []
    with failed_file.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not {"reason", "message"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{failed_file}: expected the failed rows of `dynsnip extract-faces` (columns path, label, "
                             f"..., reason, message), got columns {reader.fieldnames}")
        why = [(row["reason"] or "unreadable", row["message"] or "") for row in reader]
    entries = read_manifest(failed_file)  # the rows in file order, paths resolved as the manifest's
    failed = {id(e): w for e, w in zip(entries, why)}
    # a video the manifest scores is not a failure too: listed itself (a manifest of the videos beside
    # the list), or as the source its frame folder's faces.json records (a faces.csv kept from an
    # earlier run while a later one failed the same videos)
    listed = set()
    for entry in read_manifest(manifest):
        listed.add(os.path.realpath(entry.path))
        if (video := recorded_video(entry.path)) is not None:
            listed.add(os.path.realpath(video))
    chosen = [e for e in entries if (split is None or e.split == split) and os.path.realpath(e.path) not in listed]
    if keep is not None:
        chosen = keep(chosen)
    return [{"id": str(e.path), "reason": failed[id(e)][0],
             "message": f"not extracted by dynsnip extract-faces ({failed_file.name}): {failed[id(e)][1]}",
             "label": e.label, "method": e.method}
            for e in chosen]


def with_earlier_failures(report: dict[str, Any], earlier: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """``report`` with the ``earlier`` failures (videos that never reached the scored data) listed
    first, and the failed counts (overall, per method) updated."""
    from .metrics import with_failed_counts

    failed = [dict(f) for f in earlier] + list(report.get("failed", []))
    return with_failed_counts(dict(report, failed=failed, num_failed=len(failed), failed_by_reason=count_reasons(failed)))
