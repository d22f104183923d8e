"""FaceForensics++ (and DeepFakeDetection) from the tree its download script writes.

Tree (``C`` = ``raw`` | ``c23`` | ``c40``)::

    <root>/original_sequences/youtube/C/videos/NNN.mp4                real, NNN = 000..999
    <root>/manipulated_sequences/<Method>/C/videos/<a>_<b>.mp4        fake of target a, source b
    <root>/original_sequences/actors/C/videos/<actor>__<scene>.mp4    DeepFakeDetection real
    <root>/manipulated_sequences/DeepFakeDetection/C/videos/<a>_<b>__<scene>__<id>.mp4

Splits: the official ``train`` / ``val`` / ``test`` files of the FaceForensics repository
(bundled in ``dynsnip/assets/benchmarks/ffpp_splits/``, MIT licence): 360 / 70 / 70 pairs
``[a, b]``. A pair puts reals ``a`` and ``b`` in its split and the fakes ``a_b`` and ``b_a``
of every method. A fake ``a_b`` is drawn into the frames of real ``a`` (the target), so its
``source`` is ``a``'s video.

Videos are matched with ``.mp4`` in any letter case (``953_974.MP4``), as Celeb-DF's are; an
exact ``.mp4`` wins where two files differ only in the suffix's case, and two such files
without an exact one are refused (which one is meant is unknown). Video files of a real or
method folder that are not among the official names (``000_001.mp4``: no split pairs 000
with 001) are left out and counted in a note, the first few named.

DeepFakeDetection has no official split; its rows get split ``test`` (it is used as an
extra test set) and a fake's source is the actors video of the same actor and scene. Its
real (actors) videos say ``actors`` in the method column (a name for the real class), so
that the FF++ protocols, whose reals are the YouTube originals only, leave them out.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..assets import VIDEO_SUFFIXES
from .layout import (BenchmarkManifest, BenchmarkRow, Inventory, LayoutError, first_named, load_json, relative_name,
                     require_path)
from .provenance import dataset_tag

__all__ = ["PAPER_METHODS", "EXTRA_METHODS", "COMPRESSIONS", "official_splits", "ffpp_manifest", "SPLITS_DIR",
           "DFD_REAL_METHOD"]

PAPER_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
EXTRA_METHODS = ("FaceShifter", "DeepFakeDetection")
COMPRESSIONS = ("raw", "c23", "c40")
SPLITS_DIR = Path(__file__).resolve().parent.parent.parent / "assets" / "benchmarks" / "ffpp_splits"
# DeepFakeDetection as documented by FaceForensics++: 363 real and 3068 fake videos.
DFD_EXPECTED = (363, 3068)
# the method column of DeepFakeDetection's real videos: a real-class name (data.manifest.REAL_METHODS)
DFD_REAL_METHOD = "actors"


def official_splits(folder: str | Path | None = None) -> dict[str, list[tuple[str, str]]]:
    """``{"train": [(a, b), ...], "val": [...], "test": [...]}`` from the official split files.

    Raises:
        LayoutError: a file is missing or malformed, a video id is in two splits, or an id is
            not a plain name (``../../etc/passwd``: ids become file names under the root).
    """
    folder = Path(folder) if folder is not None else SPLITS_DIR
    splits: dict[str, list[tuple[str, str]]] = {}
    seen: dict[str, str] = {}
    for split in ("train", "val", "test"):
        path = folder / f"{split}.json"
        try:
            pairs = load_json(path)
        except LayoutError as err:
            raise LayoutError(f"FF++ split file {err}") from None
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
        ):
            raise LayoutError(f"{path}: expected a JSON list of [target, source] id pairs")
        for pair in pairs:
            for vid in pair:
                if relative_name(vid, str(path), "the videos' folder") != vid or "/" in vid:
                    raise LayoutError(f"{path}: video id {vid!r} is not a plain name; expected ids such as '000'")
                if vid in seen:
                    raise LayoutError(f"{path}: video {vid} is already in split {seen[vid]!r}")
                seen[vid] = split
        splits[split] = [(a, b) for a, b in pairs]
    return splits


class _VideoFolder:
    """The video files of one folder, looked up by stem with ``.mp4`` in any letter case (as
    Celeb-DF's are), and the ones never looked up: files the layout does not name."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.videos = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
        self.by_stem: dict[str, list[Path]] = {}
        for path in self.videos:
            if path.suffix.lower() == ".mp4":
                self.by_stem.setdefault(path.stem, []).append(path)
        self.used: set[Path] = set()

    def get(self, stem: str) -> Path:
        """The video ``<stem>.mp4`` (any case of the suffix; the exact ``.mp4`` first), or that
        path when no file matches (the caller counts it as missing).

        Raises:
            LayoutError: two files match, differing only in the suffix's case, and none is ``.mp4``.
        """
        exact = self.folder / f"{stem}.mp4"
        candidates = self.by_stem.get(stem, [])
        chosen = [p for p in candidates if p.name == exact.name] or candidates
        if len(chosen) > 1:
            raise LayoutError(f"{self.folder}: {stem}.mp4 matches {len(chosen)} files that differ only in the letter "
                              f"case of their suffix ({', '.join(p.name for p in chosen)}); expected one")
        if chosen:
            self.used.add(chosen[0])
            return chosen[0]
        return exact

    def unexpected_note(self, root: Path, expected: str) -> str | None:
        """The note on the video files never looked up (None when there are none): they are
        not in the manifest, and a stray or misnamed download would otherwise go unseen."""
        extra = [p.name for p in self.videos if p not in self.used]
        if not extra:
            return None
        return (f"{self.folder.relative_to(root).as_posix()}: {len(extra)} video file(s) that are not among the "
                f"official names ({expected}) are not in the manifest: {first_named(extra)}")


def _method_rows(root: Path, method: str, compression: str, splits, real_of: dict[str, Path]):
    folder = require_path(root, f"manipulated_sequences/{method}/{compression}/videos", "FaceForensics++",
                          hint=f"download {method} at {compression} or leave it out of --methods")
    videos = _VideoFolder(folder)
    inventory = Inventory(method, expected=0)
    rows = []
    for split, pairs in splits.items():
        for a, b in pairs:
            for target, source in ((a, b), (b, a)):
                inventory.expected += 1
                path = videos.get(f"{target}_{source}")
                row = BenchmarkRow(path, 1, split, method, real_of.get(target))
                if inventory.present(path, path.relative_to(root).as_posix(), row):
                    rows.append(row)
    return rows, inventory, videos.unexpected_note(root, "<target>_<source>.mp4 of the official pairs")


def _dfd_rows(root: Path, compression: str):
    reals_dir = require_path(root, f"original_sequences/actors/{compression}/videos", "FaceForensics++ (DFD)",
                             hint="download DeepFakeDetection's original actors videos or leave it out of --methods")
    fakes_dir = require_path(root, f"manipulated_sequences/DeepFakeDetection/{compression}/videos",
                             "FaceForensics++ (DFD)")
    reals = sorted(p for p in reals_dir.iterdir() if p.suffix.lower() == ".mp4" and p.is_file())  # any case
    fakes = sorted(p for p in fakes_dir.iterdir() if p.suffix.lower() == ".mp4" and p.is_file())
    real_by_name = {p.stem: p for p in reals}
    rows = [BenchmarkRow(p, 0, "test", DFD_REAL_METHOD) for p in reals]
    for path in fakes:
        pair, _, rest = path.stem.partition("__")
        scene = rest.rsplit("__", 1)[0]
        target = pair.split("_")[0]
        rows.append(BenchmarkRow(path, 1, "test", "DeepFakeDetection", real_by_name.get(f"{target}__{scene}")))
    inventory = [Inventory("DFD real (actors)", DFD_EXPECTED[0], len(reals), split="test", method=DFD_REAL_METHOD),
                 Inventory("DeepFakeDetection", DFD_EXPECTED[1], len(fakes), split="test", method="DeepFakeDetection")]
    return rows, inventory


def ffpp_manifest(
    root: str | Path,
    compression: str = "c23",
    methods: Sequence[str] = PAPER_METHODS,
    splits_folder: str | Path | None = None,
) -> BenchmarkManifest:
    """Rows of an FF++ root at one compression for ``methods`` (default the paper's four).

    Raises:
        LayoutError: the root lacks ``original_sequences/youtube/<compression>/videos`` or a
            requested method's folder; an unknown method or compression.
    """
    root = Path(root)
    if compression not in COMPRESSIONS:
        raise LayoutError(f"FF++ compression must be one of {COMPRESSIONS}, got {compression!r}")
    unknown = [m for m in methods if m not in PAPER_METHODS + EXTRA_METHODS]
    if unknown or not methods:
        raise LayoutError(f"unknown FF++ method(s) {unknown}; expected some of {PAPER_METHODS + EXTRA_METHODS}")
    splits = official_splits(splits_folder)
    real_dir = require_path(root, f"original_sequences/youtube/{compression}/videos", "FaceForensics++")
    real_videos = _VideoFolder(real_dir)
    real_inventory = Inventory("real (youtube)", expected=0)
    rows: list[BenchmarkRow] = []
    real_of: dict[str, Path] = {}
    for split, pairs in splits.items():
        for vid in (v for pair in pairs for v in pair):
            real_inventory.expected += 1
            path = real_videos.get(vid)
            if real_inventory.present(path, path.relative_to(root).as_posix(), BenchmarkRow(path, 0, split)):
                real_of[vid] = path
                rows.append(BenchmarkRow(path, 0, split))
    inventory = [real_inventory]
    unexpected = [real_videos.unexpected_note(root, "NNN.mp4 of the split files")]
    for method in dict.fromkeys(methods):
        if method == "DeepFakeDetection":
            more, items = _dfd_rows(root, compression)
            inventory += items
        else:
            more, item, note = _method_rows(root, method, compression, splits, real_of)
            inventory.append(item)
            unexpected.append(note)
        rows += more
    notes = ["splits: the official FaceForensics++ split files (360/70/70 pairs)"]
    if "DeepFakeDetection" in methods:
        notes.append("DeepFakeDetection has no official split: its videos are all in split 'test'")
    notes += [note for note in unexpected if note]
    return BenchmarkManifest(f"FaceForensics++ {compression}", root, rows, inventory, notes,
                             tag=dataset_tag("ffpp", {"compression": compression}))
