"""DeeperForensics-1.0: its fakes, with the real videos taken from an FF++ root.

Tree::

    <root>/manipulated_videos/<variant>/<target>_<actor>.mp4   variant: end_to_end, end_to_end_level_1..5, ...
    <root>/lists/splits/{train,val,test}.txt                    fake video names, one a line
    <ffpp_root>/original_sequences/youtube/c23/videos/<target>.mp4   the real videos

A fake ``<target>_<actor>`` is FF++ real video ``<target>`` (three-digit id) with the face of
DeeperForensics actor ``<actor>`` (its ``source``); the dataset's documentation names FF++'s
c23 YouTube videos as its real part. A real video goes to the split of its fakes; a real
whose fakes are in several splits goes to the first of test, val, train (noted). A list
entry must be a bare file name (one that names a folder, ``../../etc/passwd``, is refused),
and a fake listed in two splits is refused. A video of the variant's folder that no list names is
left out of the manifest (its split is unknown) and counted in a note and in ``left_out``.
"""
from __future__ import annotations

from pathlib import Path

from .layout import (BenchmarkManifest, BenchmarkRow, Inventory, LayoutError, first_named, relative_name,
                     require_path)
from .provenance import dataset_tag

__all__ = ["deeperforensics_manifest", "SPLITS"]

SPLITS = ("train", "val", "test")
PRIORITY = ("test", "val", "train")


def _read_list(path: Path) -> list[str]:
    names = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = line.strip()
        if name:
            where = f"{path}, line {n}"
            if "/" in relative_name(name, where, "manipulated_videos/<variant>"):
                raise LayoutError(f"{where}: {name!r} names a folder; expected a bare video name (<target>_<actor>.mp4)")
            names.append(name if name.lower().endswith(".mp4") else f"{name}.mp4")  # x.MP4 is a video name too
    return names


def deeperforensics_manifest(root: str | Path, ffpp_root: str | Path, variant: str = "end_to_end") -> BenchmarkManifest:
    """Rows of DeeperForensics-1.0 ``variant`` fakes and their FF++ c23 real videos.

    Raises:
        LayoutError: a folder or split list is missing at either root, or a fake's name does
            not start with a three-digit FF++ id.
    """
    root, ffpp_root = Path(root), Path(ffpp_root)
    if "/" in relative_name(variant, "--variant", "manipulated_videos/"):
        raise LayoutError(f"--variant {variant!r} names a path; expected a folder name of manipulated_videos/")
    fakes_dir = require_path(root, f"manipulated_videos/{variant}", "DeeperForensics-1.0",
                             hint="--variant names a folder of manipulated_videos/")
    lists = {split: _read_list(require_path(root, f"lists/splits/{split}.txt", "DeeperForensics-1.0")) for split in SPLITS}
    reals_dir = require_path(ffpp_root, "original_sequences/youtube/c23/videos", "FaceForensics++",
                             hint="--ffpp-root gives the real videos of DeeperForensics")
    split_of_target: dict[str, str] = {}
    conflicts = 0
    fake_entries = []
    split_of_fake: dict[str, str] = {}
    for split in SPLITS:
        for name in lists[split]:
            if name in split_of_fake:
                if split_of_fake[name] != split:
                    raise LayoutError(f"{root}/lists/splits: {name} is listed in {split_of_fake[name]}.txt and "
                                      f"{split}.txt; expected each fake in one split")
                continue  # listed twice in one split: one video
            split_of_fake[name] = split
            target = name.split("_")[0]
            if len(target) != 3 or not target.isdigit():
                raise LayoutError(f"{root}/lists/splits/{split}.txt: {name!r} does not start with a three-digit "
                                  "FF++ id (<target>_<actor>.mp4)")
            if target in split_of_target and split_of_target[target] != split:
                conflicts += 1
                if PRIORITY.index(split) < PRIORITY.index(split_of_target[target]):
                    split_of_target[target] = split
            else:
                split_of_target.setdefault(target, split)
            fake_entries.append((fakes_dir / name, split, target))
    real_inventory = Inventory("real (FF++ c23)", len(split_of_target))
    fake_inventory = Inventory(f"fake ({variant})", len(fake_entries))
    rows: list[BenchmarkRow] = []
    real_of: dict[str, Path] = {}
    for target, split in sorted(split_of_target.items()):
        path = reals_dir / f"{target}.mp4"
        if real_inventory.present(path, path.relative_to(ffpp_root).as_posix(),  # relative to its root, as the fakes
                                  BenchmarkRow(path, 0, split)):
            real_of[target] = path
            rows.append(BenchmarkRow(path, 0, split))
    for path, split, target in fake_entries:
        row = BenchmarkRow(path, 1, split, f"DeeperForensics-{variant}", real_of.get(target))
        if fake_inventory.present(path, path.relative_to(root).as_posix(), row):
            rows.append(row)
    notes = [f"reals from {reals_dir}"]
    if conflicts:
        notes.append(f"{conflicts} fake(s) share a real video with fakes of another split; "
                     "that real is in the first of test, val, train")
    left_out: dict[str, int] = {}
    unlisted = _unlisted_fakes(fakes_dir, set(split_of_fake))
    if unlisted:
        notes.append(f"manipulated_videos/{variant}: {len(unlisted)} video(s) on disk that no split list "
                     f"(lists/splits/{{train,val,test}}.txt) names are not in the manifest, their split being "
                     f"unknown (truncated lists, or videos from another release?): {first_named(unlisted)}")
        left_out[f"{variant} fakes no split list names"] = len(unlisted)
    return BenchmarkManifest(f"DeeperForensics-1.0 {variant}", root, rows, [real_inventory, fake_inventory], notes,
                             tag=dataset_tag("deeperforensics", {"variant": variant}), left_out=left_out)


def _unlisted_fakes(fakes_dir: Path, listed: set[str]) -> list[str]:
    """The ``.mp4`` files directly in ``fakes_dir`` whose names no split list holds (``listed``): left out of
    the manifest, since a fake without a split could be a test video trained on, and noted, never dropped
    silently."""
    return sorted(p.name for p in fakes_dir.iterdir()
                  if p.suffix.lower() == ".mp4" and p.name not in listed and p.is_file())
