"""WildDeepfake: face sequences already cropped, one frame folder per manifest row.

Tree (after extracting the release's tar archives in place)::

    <root>/{real_train, fake_train, real_test, fake_test}/<video>/.../<frames>.png

Every folder that directly holds frame images is one face sequence, i.e. one manifest row
(a frame-folder entry: ``dynsnip train`` / ``evaluate`` read its frames, no face detection).
``val_fraction`` of the training sequences move to ``val``, drawn by ``<video>`` (the
archive they came from), so the sequences of one video never straddle train and val.
"""
from __future__ import annotations

from pathlib import Path

from .layout import BenchmarkManifest, BenchmarkRow, Inventory, LayoutError, assign_val_by_group, require_path

__all__ = ["wilddeepfake_manifest", "FOLDERS", "EXPECTED_SEQUENCES"]

FOLDERS = (("real_train", 0, "train"), ("fake_train", 1, "train"), ("real_test", 0, "test"), ("fake_test", 1, "test"))
EXPECTED_SEQUENCES = 7314  # the paper's (and the dataset's) count of face sequences
ARCHIVE_SUFFIXES = (".tar", ".gz", ".tgz")


def _frame_folders(folder: Path) -> list[Path]:
    """Folders under ``folder`` (itself excluded) that directly hold frame images, sorted."""
    from ..datasets import FRAME_SUFFIXES

    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_dir()):
        if any(c.suffix.lower() in FRAME_SUFFIXES for c in path.iterdir()):
            found.append(path)
    return found


def wilddeepfake_manifest(root: str | Path, val_fraction: float = 0.1, seed: int = 0) -> BenchmarkManifest:
    """Rows of a WildDeepfake root: one frame folder per row.

    Raises:
        LayoutError: one of the four folders is missing, or holds only archives (extract them first).
    """
    root = Path(root)
    rows: list[BenchmarkRow] = []
    inventory = []
    for name, label, split in FOLDERS:
        folder = require_path(root, name, "WildDeepfake")
        sequences = _frame_folders(folder)
        archives = [p for p in folder.iterdir() if p.suffix.lower() in ARCHIVE_SUFFIXES]
        if archives and not sequences:
            raise LayoutError(f"{folder} holds {len(archives)} archive(s) (e.g. {archives[0].name}) and no frame "
                              f"folders: extract them in place first (e.g. `tar -xzf {archives[0].name}` in {folder})")
        inventory.append(Inventory(name, None, len(sequences)))
        rows += [BenchmarkRow(p, label, split, "WildDeepfake" if label else "") for p in sequences]
    inventory.append(Inventory("all sequences", EXPECTED_SEQUENCES, len(rows)))

    def video(row: BenchmarkRow) -> str:
        relative = row.path.relative_to(root).parts
        return "/".join(relative[:2])

    rows = assign_val_by_group(rows, video, val_fraction, seed)
    notes = [f"val: {val_fraction:g} of the training sequences, drawn by video folder (seed {seed})"]
    return BenchmarkManifest("WildDeepfake", root, rows, inventory, notes)
