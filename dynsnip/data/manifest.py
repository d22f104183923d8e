"""Training manifests: which videos (or face-frame folders) exist, their label and split.

Formats (chosen by the file extension):

* CSV with a header row containing ``path`` and ``label`` and optionally ``split``,
  ``method`` (manipulation method of a fake, for per-method metrics) and ``source`` (or
  ``original``: the real video a fake was made from; its face boxes crop the fake, see
  :class:`~dynsnip.data.datasets.VideoDataset`; ``dynsnip manifest`` writes it) and
  ``dataset`` (the benchmark dataset the row comes from, e.g. ``celebdf:v2``, as ``dynsnip
  manifest`` records it; ``dynsnip benchmark`` checks it against its protocol);
* JSON: a list of objects ``{"path": ..., "label": ..., "split": ...}`` (split optional).

``label`` is ``0``/``1`` or ``real``/``fake`` (case-insensitive; 1 = fake, the positive
class of the detector's single logit). ``split`` is ``train``, ``val`` (or ``validation``)
or ``test``, case and surrounding spaces ignored, or empty; any other value is refused by
name rather than leaving its rows out silently. Relative paths are relative to the
manifest's folder, so a dataset folder with its manifest can be moved as a whole. A UTF-8
byte-order mark (as spreadsheet programs write) is accepted.

Before anything is read, the whole manifest is checked (:func:`check_entries`): a video
listed twice (also under two spellings of its path, ``a/../a/v9`` and ``a/v9``) or with two
labels is an error naming the rows; a video in two splits (e.g. train and val) is a
:class:`ManifestOverlapWarning`, since results on it are then not held out.
"""
from __future__ import annotations

import csv
import json
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

LABEL_NAMES = {"real": 0, "fake": 1}
SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"validation": "val"}


class ManifestOverlapWarning(UserWarning):
    """A video is in more than one split of a manifest (e.g. train and val)."""


@dataclass(frozen=True)
class ManifestEntry:
    """One video (or face-frame folder): absolute ``path``, ``label`` (0 real, 1 fake), ``split``,
    ``method``, the manipulation method of a fake (e.g. ``Deepfakes``) for per-method metrics,
    and ``source``, the real video a fake was made from (absolute), where the dataset says so;
    ``dataset``, the tag of the benchmark dataset the row comes from (``celebdf:v2``), where recorded."""

    path: Path
    label: int
    split: str | None = None
    method: str | None = None
    source: Path | None = None
    dataset: str | None = None


def parse_label(value: object, where: str = "") -> int:
    """``0``/``1``/``real``/``fake`` -> 0 or 1; anything else is a ValueError naming ``where``."""
    text = str(value).strip().lower()
    if text in LABEL_NAMES:
        return LABEL_NAMES[text]
    if text in ("0", "1", "0.0", "1.0"):
        return int(float(text))
    raise ValueError(f"{where}bad label {value!r}: expected 0/1 or real/fake")


def parse_split(value: object, where: str = "") -> str | None:
    """``Train`` / `` train `` -> ``train``, ``validation`` -> ``val``, empty -> None; any other
    value is a ValueError naming it and ``where``."""
    text = "" if value is None else str(value).strip().lower()
    if not text:
        return None
    text = SPLIT_ALIASES.get(text, text)
    if text not in SPLITS:
        raise ValueError(f"{where}unknown split {value!r}: expected one of {', '.join(SPLITS)} "
                         "(or validation for val), case-insensitive, or empty")
    return text


# Names a manifest may use for the real class in its ``method`` column (empty: no method).
REAL_METHODS = ("real", "original", "pristine", "youtube", "actors")


def is_real_method(method: str | None) -> bool:
    """Whether ``method`` names no manipulation: empty, or one of :data:`REAL_METHODS`."""
    return method is None or not str(method).strip() or str(method).strip().lower() in REAL_METHODS


def check_methods(entries: Sequence[ManifestEntry], source: object = "manifest") -> None:
    """Check the ``method`` column of the videos evaluated together (per-method metrics): every
    fake has its manipulation method or none does, and no real video names one.

    Raises:
        ValueError: naming the first few offending rows (paths) and how many there are.
    """
    names = [str(e.path) for e in entries]
    with_method = [i for i, e in enumerate(entries) if e.label == 1 and not is_real_method(e.method)]
    without = [i for i, e in enumerate(entries) if e.label == 1 and is_real_method(e.method)]
    real_with = [i for i, e in enumerate(entries) if e.label == 0 and not is_real_method(e.method)]

    def listed(where: list[int]) -> str:
        shown = ", ".join(names[i] for i in where[:3])
        return shown + (f" and {len(where) - 3} more" if len(where) > 3 else "")

    if with_method and without:
        raise ValueError(f"{source}: {len(without)} fake video(s) have no manipulation method ({listed(without)}) "
                         f"while {len(with_method)} others do; expected every fake's method (for the per-method "
                         "metrics) or none")
    if real_with:
        raise ValueError(f"{source}: {len(real_with)} real video(s) name a manipulation method ({listed(real_with)}: "
                         f"{entries[real_with[0]].method!r}); expected an empty method or one of {REAL_METHODS}")


def check_entries(entries: Sequence[ManifestEntry], source: object = "manifest",
                  rows: Sequence[str] | None = None) -> None:
    """Check a whole manifest before any work starts (see module docstring).

    Args:
        entries: every entry of the manifest (all splits).
        source: what to call the manifest in messages.
        rows: how to call each entry in messages (default ``item <i>``).

    Raises:
        ValueError: a video listed twice in one split, or with two labels (the first few,
            then a count).
    Warns:
        ManifestOverlapWarning: a video in more than one split.
    """
    names = list(rows) if rows is not None else [f"item {i}" for i in range(len(entries))]
    seen: dict[Path, list[int]] = {}
    for i, entry in enumerate(entries):
        # Lexical normalisation: `a/../a/v9` and `a/v9` are one video; two symbolic links to
        # one file stay two entries (datasets are often assembled from links on purpose).
        seen.setdefault(Path(os.path.normpath(os.path.abspath(entry.path))), []).append(i)
    errors, overlaps = [], []
    for key, where in seen.items():
        if len(where) == 1:
            continue
        listed = ", ".join(f"{names[i]} ({entries[i].path}, {'fake' if entries[i].label else 'real'}, "
                           f"split {entries[i].split or '-'})" for i in where[:4])
        listed += f" and {len(where) - 4} more row(s)" if len(where) > 4 else ""
        splits = [entries[i].split for i in where]
        if len({entries[i].label for i in where}) > 1:
            errors.append(f"{key} has two labels: {listed}")
        elif len(set(splits)) < len(splits):
            errors.append(f"{key} is listed more than once in one split: {listed}")
        else:
            overlaps.append(f"{key} ({' and '.join(str(s) for s in splits)})")
    if errors:
        more = f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
        raise ValueError(f"{source}: " + "; ".join(errors[:5]) + more
                         + ". Expected each video once, with one label")
    if overlaps:
        more = f" and {len(overlaps) - 5} more" if len(overlaps) > 5 else ""
        warnings.warn(f"{source}: {len(overlaps)} video(s) in more than one split, so results on them are not "
                      f"held out: {', '.join(overlaps[:5])}{more}", ManifestOverlapWarning, stacklevel=3)


def read_manifest(path: str | os.PathLike[str], split: str | None = None) -> list[ManifestEntry]:
    """Read and check (:func:`check_entries`) a CSV or JSON manifest; keep only rows of
    ``split`` when given (normalised like the column: ``Validation`` -> ``val``).

    Raises:
        FileNotFoundError: no such file (or a folder).
        ValueError: unknown extension, not UTF-8, not valid JSON, missing ``path``/``label``
            column, a bad label or split, a video listed twice or with two labels (the message
            names the file and rows).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: " + ("is a folder, not a manifest file" if path.is_dir() else "no such manifest file")
                                + "; expected a .csv (path,label[,split]) or .json manifest")
    try:
        return _read_manifest(path, split)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}: {err.reason}); expected a UTF-8 CSV or JSON "
                         "manifest (save it as UTF-8)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); expected a list "
                         "of {path, label, split} objects") from None


def _read_manifest(path: Path, split: str | None) -> list[ManifestEntry]:
    root = path.parent
    split = parse_split(split, "requested split: ") if split is not None else None
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {"path", "label"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(
                    f"{path}: CSV manifest lacks column(s) {sorted(missing)}; expected a header "
                    f"with path,label[,split], got {reader.fieldnames}"
                )
            rows = [(f"{path}, row {n}: ", row) for n, row in enumerate(reader, start=2)]
    elif path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8-sig"))
        if not isinstance(data, list):
            raise ValueError(f"{path}: JSON manifest must be a list of {{path, label, split}} objects")
        rows = [(f"{path}, item {n}: ", row) for n, row in enumerate(data)]
    else:
        raise ValueError(f"{path}: manifest must be a .csv or .json file")
    entries = []
    for where, row in rows:
        if not isinstance(row, dict) or not row.get("path") or row.get("label") in (None, ""):
            raise ValueError(f"{where}needs a path and a label, got {row!r}")
        entries.append(
            ManifestEntry(
                path=Path(os.path.normpath(root / str(row["path"]))),
                label=parse_label(row["label"], where),
                split=parse_split(row.get("split"), where),
                method=(str(row.get("method") or "").strip() or None),
                source=_source_path(root, row),
                dataset=(str(row.get("dataset") or "").strip() or None),
            )
        )
    check_entries(entries, path, [where[len(f"{path}, "):].rstrip(": ") for where, _ in rows])
    return [e for e in entries if split is None or e.split == split]


def video_file_problem(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is when it is not a video file that can be read (``"is a directory, expected a
    video file"``, ``"is not a regular file (a FIFO, a named pipe), expected a video file"``, ``"no
    such file ..."``), or None for a regular file (a link to one included).

    Looks at the path's metadata only (``os.stat``) and never opens it: opening a FIFO for reading
    blocks until something writes into it, so a manifest row naming one would hang the command.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file (expected a video file)"
    except NotADirectoryError:
        return "no such file (a part of its path is a file, not a folder); expected a video file"
    except OSError as err:
        return f"cannot be looked at ({err.strerror or err}); expected a readable video file"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a directory, expected a video file"
    kinds = ((stat.S_ISFIFO, "a FIFO, a named pipe"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    kind = next((name for test, name in kinds if test(mode)), "of an unknown kind")
    return f"is not a regular file ({kind}), expected a video file"


def _source_path(root: Path, row: dict) -> Path | None:
    """The ``source`` (or ``original``) column of a row, relative to the manifest's folder."""
    text = str(row.get("source") or row.get("original") or "").strip()
    return Path(os.path.normpath(root / text)) if text else None


def write_manifest(
    entries: Iterable[ManifestEntry], path: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """Write ``entries`` as a CSV manifest (paths relative to its folder where possible; a
    ``source`` or ``dataset`` column only when an entry has one).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite it")
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        entries = list(entries)
        with_source = any(getattr(entry, "source", None) for entry in entries)
        with_dataset = any(getattr(entry, "dataset", None) for entry in entries)
        writer.writerow(["path", "label", "split", "method"] + (["source"] if with_source else [])
                        + (["dataset"] if with_dataset else []))
        for entry in entries:
            row = [_shown(entry.path, path.parent).as_posix(), entry.label, entry.split or "", entry.method or ""]
            if with_source:
                source = getattr(entry, "source", None)
                row.append(_shown(source, path.parent).as_posix() if source else "")
            if with_dataset:
                row.append(getattr(entry, "dataset", None) or "")
            writer.writerow(row)
    return path


def _shown(file: str | os.PathLike[str], folder: Path) -> Path:
    """``file`` relative to ``folder`` where it lies inside it, else absolute."""
    try:
        return Path(file).resolve().relative_to(folder.resolve())
    except ValueError:
        return Path(file).resolve()
