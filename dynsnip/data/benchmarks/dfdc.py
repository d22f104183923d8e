"""DFDC (DeepFake Detection Challenge): the training parts, the preview set, the public test set.

Layouts, recognised at the root in this order (several may be present together)::

    <root>/dfdc_train_part_N/{*.mp4, metadata.json}     full training set, N = 0..49
    <root>/{*.mp4, metadata.json}                         one training part on its own
    <root>/test/{videos/*.mp4, labels.csv}                public test set (labels.csv: filename,label; 1 = fake)
    <root>/dataset.json (+ the files it names)            preview set

``metadata.json``: ``{"name.mp4": {"label": "FAKE" | "REAL", "split": "train", "original":
"other.mp4" | null}}``; ``original`` names the real video a fake was made from (its
``source``). The preview's ``dataset.json`` maps relative paths to ``{"label": "real" |
"fake", "set": "train" | "test"}``; a fake's method is its top folder (``method_A``...).

Training-part videos go to ``train`` except ``val_fraction`` of them, drawn by original
video (a real video and every fake made from it stay together); test videos to ``test``.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from .layout import BenchmarkManifest, BenchmarkRow, Inventory, LayoutError, assign_val_by_group

__all__ = ["dfdc_manifest", "NUM_PARTS"]

NUM_PARTS = 50
METHOD = "DFDC"


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise LayoutError(f"{path} cannot be read as JSON: {err}") from err
    if not isinstance(data, dict):
        raise LayoutError(f"{path}: expected a JSON object mapping video names to their metadata")
    return data


def _label(value: object, where: str) -> int:
    text = str(value).strip().upper()
    if text in ("FAKE", "1"):
        return 1
    if text in ("REAL", "0"):
        return 0
    raise LayoutError(f"{where}: label {value!r}; expected FAKE / REAL (or 1 / 0)")


def _training_parts(root: Path) -> list[Path]:
    parts = sorted((p for p in root.glob("dfdc_train_part_*") if p.is_dir()),
                   key=lambda p: int("".join(c for c in p.name.rsplit("_", 1)[-1] if c.isdigit()) or -1))
    if (root / "metadata.json").is_file():
        parts.insert(0, root)
    return parts


def _part_rows(root: Path, parts: list[Path]):
    entries = []  # (path, label, original name)
    for part in parts:
        meta_file = part / "metadata.json"
        if not meta_file.is_file():
            raise LayoutError(f"{part} is not a DFDC training part: metadata.json is missing (expected {meta_file})")
        for name, info in _load_json(meta_file).items():
            if not isinstance(info, dict) or "label" not in info:
                raise LayoutError(f"{meta_file}: entry {name!r} has no 'label'; expected "
                                  '{"label": "FAKE"|"REAL", "split": ..., "original": ...}')
            entries.append((part / name, _label(info["label"], f"{meta_file}, {name}"), info.get("original")))
    inventory = Inventory(f"training parts ({len(parts)} of {NUM_PARTS})", len(entries))
    found = [e for e in entries if e[0].is_file()]
    inventory.found = len(found)
    inventory.missing = [e[0].relative_to(root).as_posix() for e in entries if not e[0].is_file()]
    found_by_name = {path.name: path for path, _, _ in found}
    rows = [BenchmarkRow(path, label, "train", METHOD if label else "",
                         found_by_name.get(original) if label == 1 and original else None)
            for path, label, original in found]
    return rows, inventory


def _test_rows(root: Path):
    labels_file = root / "test" / "labels.csv"
    videos = root / "test" / "videos"
    inventory = Inventory("public test set", 0)
    rows = []
    with labels_file.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"filename", "label"} <= set(reader.fieldnames or ()):
            raise LayoutError(f"{labels_file}: expected a header filename,label, got {reader.fieldnames}")
        for n, line in enumerate(reader, start=2):
            inventory.expected += 1
            path = videos / line["filename"]
            label = _label(line["label"], f"{labels_file}, row {n}")
            if inventory.present(path, path.relative_to(root).as_posix()):
                rows.append(BenchmarkRow(path, label, "test", METHOD if label else ""))
    return rows, inventory


def _preview_rows(root: Path):
    meta_file = root / "dataset.json"
    inventory = Inventory("preview set", 0)
    rows = []
    for name, info in _load_json(meta_file).items():
        if not isinstance(info, dict) or "label" not in info or "set" not in info:
            raise LayoutError(f"{meta_file}: entry {name!r} needs 'label' and 'set'")
        inventory.expected += 1
        path = root / name
        label = _label(info["label"], f"{meta_file}, {name}")
        split = {"train": "train", "test": "test"}.get(str(info["set"]).lower())
        if split is None:
            raise LayoutError(f"{meta_file}: entry {name!r} has set {info['set']!r}; expected train or test")
        if inventory.present(path, name):
            rows.append(BenchmarkRow(path, label, split, Path(name).parts[0] if label else ""))
    return rows, inventory


def _original_group(row: BenchmarkRow) -> str:
    return (row.source or row.path).name


def dfdc_manifest(root: str | Path, val_fraction: float = 0.1, seed: int = 0) -> BenchmarkManifest:
    """Rows of a DFDC root (training parts, preview set and/or public test set).

    Raises:
        LayoutError: none of the layouts is found (the message lists what was looked for),
            or a metadata / labels file is malformed.
    """
    root = Path(root)
    parts = _training_parts(root)
    has_test = (root / "test" / "labels.csv").is_file()
    has_preview = (root / "dataset.json").is_file()
    if not (parts or has_test or has_preview):
        raise LayoutError(
            f"{root} is not a DFDC root: none of dfdc_train_part_*/metadata.json, metadata.json, "
            "test/labels.csv or dataset.json (preview) is there"
        )
    rows: list[BenchmarkRow] = []
    inventory = []
    notes = []
    if parts:
        part_rows, item = _part_rows(root, parts)
        inventory.append(item)
        rows += assign_val_by_group(part_rows, _original_group, val_fraction, seed)
        notes.append(f"val: {val_fraction:g} of the training videos, drawn by original video (seed {seed})")
        if root not in parts and len(parts) < NUM_PARTS:
            notes.append(f"only {len(parts)} of the {NUM_PARTS} training parts are there")
    if has_preview:
        more, item = _preview_rows(root)
        rows += more
        inventory.append(item)
    if has_test:
        more, item = _test_rows(root)
        rows += more
        inventory.append(item)
    return BenchmarkManifest("DFDC", root, rows, inventory, notes)
