"""WildDeepfake: face sequences already cropped, one frame folder per manifest row.

Tree (after extracting the release's tar archives in place)::

    <root>/{real_train, fake_train, real_test, fake_test}/<video>/.../<frames>.png

Every folder that directly holds frame images is one face sequence, i.e. one manifest row
(a frame-folder entry: ``dynsnip train`` / ``evaluate`` read its frames, no face detection).
``val_fraction`` of the training sequences move to ``val``, drawn by ``<video>`` (the
archive they came from), so the sequences of one video never straddle train and val.

An archive (``.tar.gz``, ``.tgz``, ``.tar``, ``.zip``) left in a class folder beside extracted
sequences, with no folder of its own name beside it (``real_test/6.tar.gz`` without
``real_test/6/``), is a partial extraction: its sequences are not in the manifest, and a note
names such archives (a folder holding archives and no sequences at all is an error).

Frames reached twice are refused: a sequence folder (or a frame file) that symbolic links
make reachable from two rows (``real_test/x`` linked to ``fake_test/y``: the same frames
under both labels, or in train and in test) is a :class:`~.layout.LayoutError` naming both.
"""
from __future__ import annotations

import os
from pathlib import Path

from .layout import (BenchmarkManifest, BenchmarkRow, Inventory, LayoutError, assign_val_by_group, first_named,
                     require_path, val_note)
from .provenance import dataset_tag

__all__ = ["wilddeepfake_manifest", "FOLDERS", "EXPECTED_SEQUENCES"]

FOLDERS = (("real_train", 0, "train"), ("fake_train", 1, "train"), ("real_test", 0, "test"), ("fake_test", 1, "test"))
EXPECTED_SEQUENCES = 7314  # the paper's (and the dataset's) count of face sequences
ARCHIVE_SUFFIXES = (".tar", ".gz", ".tgz", ".zip")


def _archive_stem(name: str) -> str:
    """``6.tar.gz`` -> ``6``: the name of the folder an archive extracts to, by convention."""
    while Path(name).suffix.lower() in ARCHIVE_SUFFIXES:
        name = Path(name).stem
    return name


def _extract_command(name: str) -> str:
    """The shell command that extracts the archive ``name`` in place, for a hint."""
    suffix = Path(name).suffix.lower()
    return f"unzip {name}" if suffix == ".zip" else f"tar -x{'z' if suffix in ('.gz', '.tgz') else ''}f {name}"


def _frame_folders(folder: Path) -> list[Path]:
    """Folders under ``folder`` (itself excluded) that directly hold frame images, sorted.
    Folders reached through symbolic links are followed (a video folder linked in from
    another disk is a sequence like any other), each real folder once: a link back to a
    folder above it (a loop) is not walked again."""
    from ..datasets import FRAME_SUFFIXES

    found = []
    walked = {os.path.realpath(folder)}
    for top, dirs, files in os.walk(folder, followlinks=True):
        kept = []
        for name in sorted(dirs):
            real = os.path.realpath(os.path.join(top, name))
            if real not in walked:
                walked.add(real)
                kept.append(name)
        dirs[:] = kept
        if Path(top) != folder and any(Path(f).suffix.lower() in FRAME_SUFFIXES for f in files):
            found.append(Path(top))
    return sorted(found)


def _frames_reached(folder: Path) -> set[str]:
    """The real folders whose frames the sequence ``folder`` shows: its own (links resolved),
    and that of every frame file that is a symbolic link."""
    from ..datasets import FRAME_SUFFIXES

    reached = {os.path.realpath(folder)}
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_symlink() and Path(entry.name).suffix.lower() in FRAME_SUFFIXES:
                reached.add(os.path.dirname(os.path.realpath(entry.path)))
    return reached


def _refuse_frames_reached_twice(rows: list[BenchmarkRow], root: Path) -> None:
    owner: dict[str, BenchmarkRow] = {}
    for row in rows:
        for real in _frames_reached(row.path):
            first = owner.setdefault(real, row)
            if first is not row:
                def shown(r: BenchmarkRow) -> str:
                    return f"{r.path.relative_to(root).as_posix()} ({'fake' if r.label else 'real'}, {r.split})"
                raise LayoutError(f"{root}: the frames of {real} are reached from two sequences, {shown(first)} and "
                                  f"{shown(row)} (a symbolic link?); expected each sequence once, under one label")


def _video_groups(rows: list[BenchmarkRow], root: Path) -> dict[Path, str]:
    """Each row's ``<video>``: its first folder below the folders that every sequence of its
    class folder shares, so that an extraction wrapper (``real_train/extracted/<video>/...``,
    one folder holding every video) is not taken for one video of the whole class."""
    by_class: dict[str, list[tuple[str, ...]]] = {}
    for row in rows:
        parts = row.path.relative_to(root).parts
        by_class.setdefault(parts[0], []).append(parts[1:])
    shared: dict[str, int] = {}
    for name, paths in by_class.items():
        depth = 0
        while all(len(p) > depth + 1 for p in paths) and len({p[depth] for p in paths}) == 1 and len(paths) > 1:
            depth += 1
        shared[name] = depth
    groups = {}
    for row in rows:
        parts = row.path.relative_to(root).parts
        groups[row.path] = "/".join(parts[:shared[parts[0]] + 2])
    return groups


def wilddeepfake_manifest(root: str | Path, val_fraction: float = 0.1, seed: int = 0) -> BenchmarkManifest:
    """Rows of a WildDeepfake root: one frame folder per row.

    Raises:
        LayoutError: one of the four folders is missing, or holds only archives (extract them
            first); frames reachable from two rows (see the module docstring). Archives left
            beside extracted sequences are named in a note instead.
    """
    root = Path(root)
    rows: list[BenchmarkRow] = []
    inventory = []
    archive_notes = []
    left_out: dict[str, int] = {}
    for name, label, split in FOLDERS:
        folder = require_path(root, name, "WildDeepfake")
        sequences = _frame_folders(folder)
        archives = sorted(p for p in folder.iterdir() if p.suffix.lower() in ARCHIVE_SUFFIXES and p.is_file())
        if archives and not sequences:
            raise LayoutError(f"{folder} holds {len(archives)} archive(s) (e.g. {archives[0].name}) and no frame "
                              "folders: extract them in place first "
                              f"(e.g. `{_extract_command(archives[0].name)}` in {folder})")
        # an archive kept beside the folder it was extracted to is not a gap; one without it is
        unextracted = [p.name for p in archives if not (folder / _archive_stem(p.name)).is_dir()]
        if unextracted:
            left_out[f"{name}: archives not extracted"] = len(unextracted)
            archive_notes.append(
                f"{name}: {len(unextracted)} archive(s) not extracted (no folder of their name beside them): "
                f"{first_named(unextracted)}; their sequences are not in the manifest: extract them in place "
                f"(e.g. `{_extract_command(unextracted[0])}` in {folder}) and write the manifest again")
        inventory.append(Inventory(name, None, len(sequences)))
        rows += [BenchmarkRow(p, label, split, "WildDeepfake" if label else "") for p in sequences]
    inventory.append(Inventory("all sequences", EXPECTED_SEQUENCES, len(rows)))
    _refuse_frames_reached_twice(rows, root)

    video = _video_groups(rows, root)

    rows = assign_val_by_group(rows, lambda row: video[row.path], val_fraction, seed)
    notes = [val_note(rows, val_fraction, seed, "video folder")] + archive_notes
    return BenchmarkManifest("WildDeepfake", root, rows, inventory, notes, tag=dataset_tag("wilddeepfake"),
                             left_out=left_out)
