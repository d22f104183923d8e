"""Celeb-DF (v1 and v2) from its release tree.

Tree (v1 and v2 have the same shape)::

    <root>/Celeb-real/idX_NNNN.mp4            real
    <root>/YouTube-real/NNNNN.mp4             real
    <root>/Celeb-synthesis/idX_idY_NNNN.mp4   fake: identity Y's face in video idX_NNNN
    <root>/List_of_testing_videos.txt         "<label> <relative path>" per line

The test list's label is **1 = real, 0 = fake** (the opposite of the detector's 1 = fake); it
is converted here. The listed videos are the test split; every other video is training
data, of which ``val_fraction`` moves to ``val`` drawn by identity: the target identity
``idX`` (the person in the video: ``Celeb-real/idX_*`` and ``Celeb-synthesis/idX_*``) is
never split between train and val; each YouTube-real video is its own group.

``source`` of a fake ``idX_idY_NNNN`` is ``Celeb-real/idX_NNNN.mp4``, read from the naming
(the fake re-renders that real video's frames), when that video is on disk.
"""
from __future__ import annotations

from pathlib import Path

from .layout import BenchmarkManifest, BenchmarkRow, Inventory, LayoutError, assign_val_by_group, require_path

__all__ = ["celebdf_manifest", "EXPECTED", "TEST_LIST", "FOLDERS"]

TEST_LIST = "List_of_testing_videos.txt"
FOLDERS = (("Celeb-real", 0), ("YouTube-real", 0), ("Celeb-synthesis", 1))
# Counts stated by the dataset's authors (None: not stated). v1: 408 real, 795 fake; v2:
# 590 Celeb-real, 300 YouTube-real, 5639 Celeb-synthesis, 518 test videos.
EXPECTED = {
    "v1": {"Celeb-real": 408, "YouTube-real": None, "Celeb-synthesis": 795, "test list": None},
    "v2": {"Celeb-real": 590, "YouTube-real": 300, "Celeb-synthesis": 5639, "test list": 518},
}


def _read_test_list(path: Path) -> dict[str, int]:
    """``{relative path: detector label (1 = fake)}`` from the list's ``1 = real`` lines."""
    labels: dict[str, int] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise LayoutError(f"{path}, line {n}: expected '<1 = real | 0 = fake> <relative path>', got {line!r}")
        labels[parts[1].replace("\\", "/")] = 1 - int(parts[0])  # the list says 1 = real
    return labels


def _identity(row: BenchmarkRow) -> str:
    folder, name = row.path.parent.name, row.path.stem
    return f"youtube:{name}" if folder == "YouTube-real" else name.split("_")[0]


def celebdf_manifest(root: str | Path, version: str = "v2", val_fraction: float = 0.1, seed: int = 0) -> BenchmarkManifest:
    """Rows of a Celeb-DF root: the test list as ``test``, the rest ``train`` / ``val``.

    Raises:
        LayoutError: a folder or the test list is missing, a list line is malformed, a listed
            video's folder disagrees with its label.
    """
    root = Path(root)
    if version not in EXPECTED:
        raise LayoutError(f"Celeb-DF version must be one of {sorted(EXPECTED)}, got {version!r}")
    for folder, _ in FOLDERS:
        require_path(root, folder, f"Celeb-DF {version}")
    test = _read_test_list(require_path(root, TEST_LIST, f"Celeb-DF {version}"))
    rows: list[BenchmarkRow] = []
    inventory = []
    real_by_name: dict[str, Path] = {}
    for folder, label in FOLDERS:
        videos = sorted((root / folder).glob("*.mp4"))
        inventory.append(Inventory(folder, EXPECTED[version][folder], len(videos)))
        for path in videos:
            relative = f"{folder}/{path.name}"
            if relative in test and test[relative] != label:
                raise LayoutError(
                    f"{root / TEST_LIST} labels {relative} as {'real' if test[relative] == 0 else 'fake'} "
                    f"(list: 1 = real, 0 = fake) but its folder {folder} holds {'fake' if label else 'real'} videos"
                )
            if label == 0 and folder == "Celeb-real":
                real_by_name[path.stem] = path
            rows.append(BenchmarkRow(path, label, "test" if relative in test else "train",
                                     "Celeb-synthesis" if label else ""))
    listed = Inventory("test list", EXPECTED[version]["test list"] or len(test))
    on_disk = {f"{r.path.parent.name}/{r.path.name}" for r in rows}
    listed.found = sum(1 for p in test if p in on_disk)
    listed.missing = [p for p in test if p not in on_disk]
    inventory.append(listed)
    sourced = []
    for row in rows:
        if row.label == 1:
            parts = row.path.stem.split("_")
            real = real_by_name.get(f"{parts[0]}_{parts[-1]}") if len(parts) == 3 else None
            row = BenchmarkRow(row.path, row.label, row.split, row.method, real)
        sourced.append(row)
    rows = assign_val_by_group(sourced, _identity, val_fraction, seed)
    notes = [f"test = {TEST_LIST} (its 1 = real converted to label 0)",
             f"val: {val_fraction:g} of the training videos, drawn by target identity (seed {seed})"]
    return BenchmarkManifest(f"Celeb-DF {version}", root, rows, inventory, notes)
