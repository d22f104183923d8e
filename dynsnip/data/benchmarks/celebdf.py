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

Version: ``version`` names the release (it sets the published counts and the ``dataset``
tag, ``celebdf:v1`` / ``celebdf:v2``). Both have the same tree and file names, only their
sizes tell them apart, so when it is not given the root is read as v2 unless it clearly is
v1: folders holding exactly v1's published totals (408 real, 795 fake) with a test list that
is not v2's 518 videos are read as v1 (noted; ``version="v2"`` overrides). A root that may be
v1 (folders holding v1's totals beside a 518-video list, or no more than v1's counts with a
list that is not v2's: a partial download of either) is read as v2 with a note saying to
give ``--version v1`` if it is v1. Other roots (a complete v2, a partial v2 with its
518-video list) are read as v2 without a note, as before.

A test-list path matches its video however it is spelled: ``./Celeb-real/id0_0000.mp4``,
``celeb-real/ID0_0000.MP4`` and ``Celeb-real/id0_0000.mp4`` are one video (an exact match
wins where two files differ only in letter case). Refused, with the line named: a path
outside the three folders (``../../etc/passwd``), one video listed twice with two labels,
a list spelling that matches two files.
"""
from __future__ import annotations

from pathlib import Path

from .layout import (BenchmarkManifest, BenchmarkRow, Inventory, LayoutError, assign_val_by_group, relative_name,
                     require_path, val_note)
from .provenance import dataset_tag

__all__ = ["celebdf_manifest", "EXPECTED", "TEST_LIST", "FOLDERS"]

TEST_LIST = "List_of_testing_videos.txt"
FOLDERS = (("Celeb-real", 0), ("YouTube-real", 0), ("Celeb-synthesis", 1))
# Counts stated by the dataset's authors (None: not stated). v1: 408 real videos, 795 fake;
# its 408 reals are 158 celebrity (Celeb-real) + 250 YouTube (YouTube-real) videos (our reading
# of the v1 release: the authors give the 408 total); v2: 590 Celeb-real, 300 YouTube-real,
# 5639 Celeb-synthesis, 518 test videos.
EXPECTED = {
    "v1": {"Celeb-real": 158, "YouTube-real": 250, "Celeb-synthesis": 795, "test list": None},
    "v2": {"Celeb-real": 590, "YouTube-real": 300, "Celeb-synthesis": 5639, "test list": 518},
}
# the totals the v1 authors state (real, fake): what tells a complete v1 root from v2 when no version is given
V1_TOTALS = (408, 795)


def _infer_version(counts: dict[str, int], listed: int) -> tuple[str, str | None]:
    """``(version, note or None)`` of a root read without a version, from its folders' video
    counts and its test list's number of videos (see the module docstring). Conservative: v1
    only when the folders hold exactly v1's published totals and the list is not v2's; every
    other root is v2, as before, with a note where it may be v1."""
    real, fake = counts["Celeb-real"] + counts["YouTube-real"], counts["Celeb-synthesis"]
    v2_list = EXPECTED["v2"]["test list"]
    shown = (f"{counts['Celeb-real']} Celeb-real + {counts['YouTube-real']} YouTube-real = {real} real, "
             f"{fake} Celeb-synthesis, a test list of {listed} videos")
    v1_counts = f"v1 has {V1_TOTALS[0]} real and {V1_TOTALS[1]} fake videos"
    v2_counts = (f"v2 {EXPECTED['v2']['Celeb-real'] + EXPECTED['v2']['YouTube-real']} real, "
                 f"{EXPECTED['v2']['Celeb-synthesis']} fake and a test list of {v2_list}")
    if (real, fake) == V1_TOTALS and listed != v2_list:
        return "v1", (f"version not given: read as Celeb-DF v1, the release this root matches ({shown}; {v1_counts}, "
                      f"{v2_counts}); pass --version v2 to read it as v2")
    if (real, fake) == V1_TOTALS or (listed != v2_list and real <= V1_TOTALS[0] and fake <= V1_TOTALS[1]):
        return "v2", (f"version not given: read as Celeb-DF v2, the default, but this root may be v1 ({shown}; "
                      f"{v1_counts}, {v2_counts}): if it is Celeb-DF v1, pass --version v1 (v1's counts and the "
                      "'celebdf:v1' tag follow)")
    return "v2", None


def _read_test_list(path: Path) -> dict[str, tuple[int, int, str]]:
    """``{path folded to lower case: (detector label (1 = fake), line number, path as normalised)}``
    from the list's ``1 = real`` lines; a video listed twice with one label is kept once."""
    labels: dict[str, tuple[int, int, str]] = {}
    folders = {folder.casefold() for folder, _ in FOLDERS}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        where = f"{path}, line {n}"
        if len(parts) != 2 or parts[0] not in ("0", "1"):
            raise LayoutError(f"{where}: expected '<1 = real | 0 = fake> <relative path>', got {line!r}")
        name = relative_name(parts[1], where, "the Celeb-DF root")
        if "/" not in name or name.split("/")[0].casefold() not in folders:
            raise LayoutError(f"{where}: {parts[1]!r} is not a video of {', '.join(f for f, _ in FOLDERS)}; "
                              "expected '<label> <folder>/<video>.mp4'")
        label = 1 - int(parts[0])  # the list says 1 = real
        key = name.casefold()
        if key in labels and labels[key][0] != label:
            first, first_line, _ = labels[key]
            raise LayoutError(f"{where}: {parts[1]} is listed as {'fake' if label else 'real'} but line {first_line} "
                              f"lists it as {'fake' if first else 'real'}; expected one label per video")
        labels.setdefault(key, (label, n, name))
    return labels


def _match_list(listed: dict[str, tuple[int, int, str]], on_disk: list[str], where: Path):
    """``({relative path on disk: label}, [listed paths not on disk])``."""
    by_key: dict[str, list[str]] = {}
    for relative in on_disk:
        by_key.setdefault(relative.casefold(), []).append(relative)
    test: dict[str, int] = {}
    missing = []
    for key, (label, n, name) in listed.items():
        candidates = by_key.get(key, [])
        chosen = [c for c in candidates if c == name] or candidates
        if len(chosen) > 1:
            raise LayoutError(f"{where}, line {n}: {name} matches {len(chosen)} videos that differ only in letter case "
                              f"({', '.join(chosen)}); expected one")
        if chosen:
            test[chosen[0]] = label
        else:
            missing.append(name)
    return test, missing


def _identity(row: BenchmarkRow) -> str:
    folder, name = row.path.parent.name, row.path.stem
    return f"youtube:{name}" if folder == "YouTube-real" else name.split("_")[0]


def celebdf_manifest(root: str | Path, version: str | None = None, val_fraction: float = 0.1,
                     seed: int = 0) -> BenchmarkManifest:
    """Rows of a Celeb-DF root: the test list as ``test``, the rest ``train`` / ``val``.
    ``version`` (``v1`` / ``v2``): the release; None reads a v2 root as v2 and infers v1 only
    where the root clearly is v1 (see the module docstring; noted).

    Raises:
        LayoutError: a folder or the test list is missing, a list line is malformed, a listed
            video's folder disagrees with its label.
    """
    root = Path(root)
    if version is not None and version not in EXPECTED:
        raise LayoutError(f"Celeb-DF version must be one of {sorted(EXPECTED)}, got {version!r}")
    for folder, _ in FOLDERS:
        require_path(root, folder, f"Celeb-DF {version or ''}".rstrip())
    list_file = require_path(root, TEST_LIST, f"Celeb-DF {version or ''}".rstrip())
    listed = _read_test_list(list_file)
    rows: list[BenchmarkRow] = []
    inventory = []
    real_by_name: dict[str, Path] = {}
    videos = {folder: sorted(p for p in (root / folder).iterdir() if p.suffix.lower() == ".mp4" and p.is_file())
              for folder, _ in FOLDERS}  # .mp4 in any letter case, as a list path matches
    version_note = None
    if version is None:
        version, version_note = _infer_version({folder: len(paths) for folder, paths in videos.items()}, len(listed))
    test, missing = _match_list(listed, [f"{f}/{p.name}" for f, paths in videos.items() for p in paths], list_file)
    for folder, label in FOLDERS:
        inventory.append(Inventory(folder, EXPECTED[version][folder], len(videos[folder])))
        for path in videos[folder]:
            relative = f"{folder}/{path.name}"
            if relative in test and test[relative] != label:
                raise LayoutError(
                    f"{list_file} labels {relative} as {'real' if test[relative] == 0 else 'fake'} "
                    f"(list: 1 = real, 0 = fake) but its folder {folder} holds {'fake' if label else 'real'} videos"
                )
            if label == 0 and folder == "Celeb-real":
                real_by_name[path.stem] = path
            rows.append(BenchmarkRow(path, label, "test" if relative in test else "train",
                                     "Celeb-synthesis" if label else ""))
    listed_inventory = Inventory("test list", EXPECTED[version]["test list"] or len(listed), split="test")
    listed_inventory.found = len(test)
    listed_inventory.missing = missing
    label_of = {name: label for label, _, name in listed.values()}
    listed_inventory.missing_rows = [BenchmarkRow(root / name, label_of[name], "test",
                                                  "Celeb-synthesis" if label_of[name] else "") for name in missing]
    inventory.append(listed_inventory)
    sourced = []
    for row in rows:
        if row.label == 1:
            parts = row.path.stem.split("_")
            real = real_by_name.get(f"{parts[0]}_{parts[-1]}") if len(parts) == 3 else None
            row = BenchmarkRow(row.path, row.label, row.split, row.method, real)
        sourced.append(row)
    rows = assign_val_by_group(sourced, _identity, val_fraction, seed)
    notes = [f"test = {TEST_LIST} (its 1 = real converted to label 0)",
             val_note(rows, val_fraction, seed, "target identity")] + ([version_note] if version_note else [])
    return BenchmarkManifest(f"Celeb-DF {version}", root, rows, inventory, notes,
                             tag=dataset_tag("celebdf", {"version": version}))
