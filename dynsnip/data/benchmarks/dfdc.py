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
video (a real video and every fake made from it stay together, grouped by the ``original``
that ``metadata.json`` names, whether that video is on disk or not); test videos to ``test``;
the preview's ``train`` videos give ``val_fraction`` to ``val`` drawn by subject folder
(``method_A/<subject>/...``, shared by a real and its fakes). ``labels.csv`` may start with
a byte order mark and give its labels as ``0.0`` / ``1.0``.

Nothing on disk is left out silently; the manifest's notes say (first few named):

- videos in ``test/videos`` when ``test/labels.csv`` is missing (their labels are unknown:
  not in the manifest);
- videos in a training part or in ``test/videos`` that its ``metadata.json`` /
  ``labels.csv`` does not list (a truncated file, a part of another download): not in the
  manifest;
- a root that holds both the preview set and the public test set: both are split ``test``
  (the note counts the rows of each); the paper's DFDC numbers refer to the **preview**
  dataset (it cites "The deepfake detection challenge (dfdc) preview dataset", about 5,000
  videos), so a comparison with the paper reads a root holding the preview alone.

Refused with a :class:`~.layout.LayoutError` naming the entry: a name or ``original`` that
leaves its folder (``../../etc/passwd``), an ``original`` that is not a file name (a list,
an object), a key given twice with two values in a JSON file, a ``labels.csv`` file name
given twice with two labels, metadata nested too deeply to parse.
"""
from __future__ import annotations

import csv
from pathlib import Path

from ..assets import VIDEO_SUFFIXES
from .layout import (BenchmarkManifest, BenchmarkRow, Inventory, LayoutError, assign_val_by_group, first_named,
                     load_json, relative_name, val_note)
from .provenance import dataset_tag

__all__ = ["dfdc_manifest", "NUM_PARTS"]

NUM_PARTS = 50
METHOD = "DFDC"
PAPER_SET = ("the paper's DFDC numbers refer to the preview dataset (it cites \"The deepfake detection challenge "
             "(dfdc) preview dataset\", around 5,000 videos)")


def _videos_in(folder: Path) -> list[Path]:
    """The video files directly in ``folder`` (any letter case of the suffix), sorted; none when
    it is not a folder."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def _unlisted_note(folders: list[Path], listed: set[Path], root: Path, what: str,
                   list_file: str) -> tuple[str, int] | None:
    """The note on the videos directly in ``folders`` that no entry of their list file names
    (``listed``: every path the layout files name, on disk or not), or None when there are none.
    They are left out of the manifest, since no file gives their label; a truncated
    ``labels.csv`` or a part's videos from another download would otherwise go unseen. With
    the note, how many they are."""
    unlisted = [p.relative_to(root).as_posix() for folder in folders for p in _videos_in(folder) if p not in listed]
    if not unlisted:
        return None
    return (f"{what}: {len(unlisted)} video(s) on disk that {list_file} does not list (a truncated or partial "
            f"file?) are not in the manifest, their labels being unknown: {first_named(unlisted)}"), len(unlisted)


def _unlisted_preview_note(root: Path, listed: set[Path], other: set[str]) -> tuple[str, int] | None:
    """The note on the videos under the preview set's top folders (those ``dataset.json``'s entries start
    with: ``method_A/``, ``original_videos/``, ...) that no entry names, as :func:`_unlisted_note` for a
    part: their labels are unknown, so they are left out. ``other``: top folders of the root's other sets
    (training parts, ``test``), whose unlisted videos their own notes count. None when there are none."""
    tops = sorted({path.relative_to(root).parts[0] for path in listed
                   if path.is_relative_to(root) and len(path.relative_to(root).parts) > 1} - other)
    unlisted = sorted(p.relative_to(root).as_posix() for top in tops if (root / top).is_dir()
                      for p in (root / top).rglob("*")
                      if p.suffix.lower() in VIDEO_SUFFIXES and p not in listed and p.is_file())
    if not unlisted:
        return None
    return (f"preview set: {len(unlisted)} video(s) on disk under {', '.join(t + '/' for t in tops)} that dataset.json "
            f"does not list (a truncated or partial file?) are not in the manifest, their labels being unknown: "
            f"{first_named(unlisted)}"), len(unlisted)


def _load_json(path: Path) -> dict:
    data = load_json(path)
    if not isinstance(data, dict):
        raise LayoutError(f"{path}: expected a JSON object mapping video names to their metadata")
    return data


def _label(value: object, where: str) -> int:
    text = str(value).strip().upper()
    if text in ("FAKE", "1", "1.0"):
        return 1
    if text in ("REAL", "0", "0.0"):
        return 0
    raise LayoutError(f"{where}: label {value!r}; expected FAKE / REAL (or 1 / 0, 1.0 / 0.0)")


def _training_parts(root: Path) -> list[Path]:
    parts = sorted((p for p in root.glob("dfdc_train_part_*") if p.is_dir()),
                   key=lambda p: int("".join(c for c in p.name.rsplit("_", 1)[-1] if c.isdigit()) or -1))
    if (root / "metadata.json").is_file():
        parts.insert(0, root)
    return parts


def _original(value: object, where: str) -> str | None:
    """A fake's ``original``: None, or the file name of a video of the same part."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise LayoutError(f"{where}: 'original' is a {type(value).__name__} ({value!r:.60}); expected the file "
                          "name of the real video the fake was made from, or null")
    name = relative_name(value, f"{where}: 'original'", "its part folder")
    if "/" in name:
        raise LayoutError(f"{where}: 'original' {value!r} names a folder; expected a bare file name (xxxxxxxxxx.mp4)")
    return name


def _part_rows(root: Path, parts: list[Path]):
    """``(rows, inventory, group of each row's path)``: a row's group is the name of its
    original video (a fake's ``original``, a real's own name), on disk or not."""
    entries = []  # (path, label, original name)
    seen: dict[Path, tuple] = {}
    for part in parts:
        meta_file = part / "metadata.json"
        if not meta_file.is_file():
            raise LayoutError(f"{part} is not a DFDC training part: metadata.json is missing (expected {meta_file})")
        for name, info in _load_json(meta_file).items():
            where = f"{meta_file}, {name!r}"
            if not isinstance(info, dict) or "label" not in info:
                raise LayoutError(f"{meta_file}: entry {name!r} has no 'label'; expected "
                                  '{"label": "FAKE"|"REAL", "split": ..., "original": ...}')
            path = part / relative_name(name, where, f"its part folder {part}")
            entry = (path, _label(info["label"], where), _original(info.get("original"), where))
            if path in seen:  # two spellings of one name (x.mp4, ./x.mp4)
                if seen[path][1:3] != entry[1:]:
                    raise LayoutError(f"{where}: {path.name} is listed twice (as {seen[path][3]!r} and {name!r}) with "
                                      "different labels or originals; expected one entry per video")
                continue
            seen[path] = entry + (name,)
            entries.append(entry)
    inventory = Inventory(f"training parts ({len(parts)} of {NUM_PARTS})", len(entries))
    found = [e for e in entries if e[0].is_file()]
    inventory.found = len(found)
    inventory.missing = [e[0].relative_to(root).as_posix() for e in entries if not e[0].is_file()]
    inventory.missing_rows = [BenchmarkRow(path, label, "train", METHOD if label else "")  # train or val: not tested
                              for path, label, _ in entries if not path.is_file()]
    found_by_name = {path.name: path for path, _, _ in found}
    rows, group_of = [], {}
    for path, label, original in found:
        fake_of = original if label == 1 else None
        rows.append(BenchmarkRow(path, label, "train", METHOD if label else "",
                                 found_by_name.get(fake_of) if fake_of else None))
        group_of[path] = fake_of or path.name
    return rows, inventory, group_of


def _test_rows(root: Path):
    labels_file = root / "test" / "labels.csv"
    videos = root / "test" / "videos"
    inventory = Inventory("public test set", 0)
    rows = []
    seen: dict[str, tuple[int, int]] = {}  # name -> (row, label)
    with labels_file.open(newline="", encoding="utf-8-sig") as f:  # a spreadsheet's byte order mark is not a name
        reader = csv.DictReader(f)
        if not {"filename", "label"} <= set(reader.fieldnames or ()):
            raise LayoutError(f"{labels_file}: expected a header filename,label, got {reader.fieldnames}")
        for n, line in enumerate(reader, start=2):
            where = f"{labels_file}, row {n}"
            name = relative_name(line["filename"], where, f"the test videos' folder {videos}")
            label = _label(line["label"], where)
            if name in seen:
                first, first_label = seen[name]
                if first_label != label:
                    raise LayoutError(f"{where}: {name} is labelled {label} but row {first} labels it {first_label}; "
                                      "expected one label per video")
                continue  # the same line twice: one video
            seen[name] = (n, label)
            inventory.expected += 1
            path = videos / name
            row = BenchmarkRow(path, label, "test", METHOD if label else "")
            if inventory.present(path, path.relative_to(root).as_posix(), row):
                rows.append(row)
    return rows, inventory


def _preview_rows(root: Path):
    meta_file = root / "dataset.json"
    inventory = Inventory("preview set", 0)
    rows = []
    seen: dict[str, tuple[str, int, str]] = {}  # normalised name -> (as written, label, split)
    for written, info in _load_json(meta_file).items():
        if not isinstance(info, dict) or "label" not in info or "set" not in info:
            raise LayoutError(f"{meta_file}: entry {written!r} needs 'label' and 'set'")
        name = relative_name(written, f"{meta_file}, {written!r}")
        path = root / name
        label = _label(info["label"], f"{meta_file}, {name}")
        split = {"train": "train", "test": "test"}.get(str(info["set"]).lower())
        if split is None:
            raise LayoutError(f"{meta_file}: entry {name!r} has set {info['set']!r}; expected train or test")
        if name in seen:
            if seen[name][1:] != (label, split):
                raise LayoutError(f"{meta_file}: {name} is listed twice (as {seen[name][0]!r} and {written!r}) with "
                                  "different labels or sets; expected one entry per video")
            continue
        seen[name] = (written, label, split)
        inventory.expected += 1
        row = BenchmarkRow(path, label, split, Path(name).parts[0] if label else "")
        if inventory.present(path, name, row):
            rows.append(row)
    return rows, inventory


def _preview_subject(row: BenchmarkRow, root: Path) -> str:
    """A preview video's subject: the folder under its top folder (``method_A/<subject>/...``,
    ``original_videos/<subject>/...``), which a real and its fakes share; the file name when
    the path is shallower."""
    parts = row.path.relative_to(root).parts
    return parts[1] if len(parts) > 2 else row.path.name


def dfdc_manifest(root: str | Path, val_fraction: float = 0.1, seed: int = 0) -> BenchmarkManifest:
    """Rows of a DFDC root (training parts, preview set and/or public test set). The notes
    name the videos on disk that no layout file labels (left out) and say which test set
    the rows come from (see the module docstring).

    Raises:
        LayoutError: none of the layouts is found (the message lists what was looked for),
            or a metadata / labels file is malformed.
    """
    root = Path(root)
    parts = _training_parts(root)
    labels_file = root / "test" / "labels.csv"
    has_test = labels_file.is_file()
    has_preview = (root / "dataset.json").is_file()
    unlabelled = [] if has_test else _videos_in(root / "test" / "videos")
    unlabelled_text = (f"test/videos holds {len(unlabelled)} video(s) ({first_named([p.name for p in unlabelled])}) but "
                       f"test/labels.csv, their labels, is missing (expected {labels_file}: filename,label; 1 = fake)")
    if not (parts or has_test or has_preview):
        raise LayoutError(
            f"{root} is not a DFDC root: none of dfdc_train_part_*/metadata.json, metadata.json, "
            "test/labels.csv or dataset.json (preview) is there" + (f"; {unlabelled_text}" if unlabelled else "")
        )
    rows: list[BenchmarkRow] = []
    inventory = []
    notes = []
    if parts:
        part_rows, item, group_of = _part_rows(root, parts)
        inventory.append(item)
        rows += assign_val_by_group(part_rows, lambda row: group_of[row.path], val_fraction, seed)
        notes.append(val_note(rows, val_fraction, seed, "original video"))
        if root not in parts and len(parts) < NUM_PARTS:
            notes.append(f"only {len(parts)} of the {NUM_PARTS} training parts are there")
    preview_tests = 0
    if has_preview:
        more, item = _preview_rows(root)
        more = assign_val_by_group(more, lambda row: _preview_subject(row, root), val_fraction, seed)
        rows += more
        inventory.append(item)
        notes.append(val_note(more, val_fraction, seed, "subject folder") + " of the preview set")
        preview_tests = sum(row.split == "test" for row in more)
    if has_test:
        more, item = _test_rows(root)
        rows += more
        inventory.append(item)
        if has_preview:
            notes.append(f"this root holds two DFDC test sets, both in split 'test': {preview_tests} row(s) of the "
                         f"preview set (dataset.json, its 'set': test) and {len(more)} of the public test set "
                         f"(test/videos, test/labels.csv); {PAPER_SET}: for a comparison with the paper, write the "
                         "manifest of a root that holds the preview set alone")
        else:
            notes.append(f"test = the public test set (test/labels.csv); {PAPER_SET}, a different set")
    left_out: dict[str, int] = {}
    if not has_test and unlabelled:
        notes.append(f"{unlabelled_text}: they are not in the manifest")
        left_out["test videos without test/labels.csv"] = len(unlabelled)
    # every path a layout file names (on disk or not): the videos beside them that none names are noted
    listed = {row.path for row in rows} | {row.path for item in inventory for row in item.missing_rows}
    for what, found in (("training-part videos no metadata.json lists",
                         _unlisted_note(parts, listed, root, "training parts", "their part's metadata.json")),
                        ("test videos test/labels.csv does not list",
                         _unlisted_note([root / "test" / "videos"] if has_test else [], listed, root, "public test set",
                                        "test/labels.csv"))):
        if found:
            notes.append(found[0])
            left_out[what] = found[1]
    if has_preview:
        found = _unlisted_preview_note(root, listed, {"test"} | {part.name for part in parts})
        if found:
            notes.append(found[0])
            left_out["preview videos dataset.json does not list"] = found[1]
    return BenchmarkManifest("DFDC", root, rows, inventory, notes, tag=dataset_tag("dfdc"), left_out=left_out)
