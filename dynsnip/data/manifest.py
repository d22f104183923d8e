"""Training manifests: which videos (or face-frame folders) exist, their label and split.

Formats (chosen by the file extension):

* CSV with a header row containing ``path`` and ``label`` and optionally ``split`` and
  ``method`` (manipulation method of a fake, for per-method metrics);
* JSON: a list of objects ``{"path": ..., "label": ..., "split": ...}`` (split optional).

``label`` is ``0``/``1`` or ``real``/``fake`` (case-insensitive; 1 = fake, the positive
class of the detector's single logit). Relative paths are relative to the manifest's
folder, so a dataset folder with its manifest can be moved as a whole.
"""
from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

LABEL_NAMES = {"real": 0, "fake": 1}


@dataclass(frozen=True)
class ManifestEntry:
    """One video (or face-frame folder): absolute ``path``, ``label`` (0 real, 1 fake), ``split``,
    and ``method``, the manipulation method of a fake (e.g. ``Deepfakes``) for per-method metrics."""

    path: Path
    label: int
    split: str | None = None
    method: str | None = None


def parse_label(value: object, where: str = "") -> int:
    """``0``/``1``/``real``/``fake`` -> 0 or 1; anything else is a ValueError naming ``where``."""
    text = str(value).strip().lower()
    if text in LABEL_NAMES:
        return LABEL_NAMES[text]
    if text in ("0", "1", "0.0", "1.0"):
        return int(float(text))
    raise ValueError(f"{where}bad label {value!r}: expected 0/1 or real/fake")


def read_manifest(path: str | os.PathLike[str], split: str | None = None) -> list[ManifestEntry]:
    """Read a CSV or JSON manifest; keep only rows of ``split`` when given.

    Raises:
        ValueError: unknown extension, missing ``path``/``label`` column or a bad label
            (the message names the file and row).
    """
    path = Path(path)
    root = path.parent
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"path", "label"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(
                    f"{path}: CSV manifest lacks column(s) {sorted(missing)}; expected a header "
                    f"with path,label[,split], got {reader.fieldnames}"
                )
            rows = [(f"{path}, row {n}: ", row) for n, row in enumerate(reader, start=2)]
    elif path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise ValueError(f"{path}: JSON manifest must be a list of {{path, label, split}} objects")
        rows = [(f"{path}, item {n}: ", row) for n, row in enumerate(data)]
    else:
        raise ValueError(f"{path}: manifest must be a .csv or .json file")
    entries = []
    for where, row in rows:
        if not isinstance(row, dict) or not row.get("path") or row.get("label") in (None, ""):
            raise ValueError(f"{where}needs a path and a label, got {row!r}")
        row_split = row.get("split") or None
        if split is not None and row_split != split:
            continue
        entry_path = Path(row["path"])
        entries.append(
            ManifestEntry(
                path=entry_path if entry_path.is_absolute() else root / entry_path,
                label=parse_label(row["label"], where),
                split=row_split,
                method=(str(row.get("method") or "").strip() or None),
            )
        )
    return entries


def write_manifest(
    entries: Iterable[ManifestEntry], path: str | os.PathLike[str], overwrite: bool = False
) -> Path:
    """Write ``entries`` as a CSV manifest (paths relative to its folder where possible).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; refusing to overwrite it")
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "label", "split", "method"])
        for entry in entries:
            try:
                shown = Path(entry.path).resolve().relative_to(path.parent.resolve())
            except ValueError:
                shown = Path(entry.path).resolve()
            writer.writerow([shown.as_posix(), entry.label, entry.split or "", entry.method or ""])
    return path
