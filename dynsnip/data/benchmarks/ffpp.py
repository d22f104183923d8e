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

DeepFakeDetection has no official split; its rows get split ``test`` (it is used as an
extra test set) and a fake's source is the actors video of the same actor and scene. Its
real (actors) videos say ``actors`` in the method column (a name for the real class), so
that the FF++ protocols, whose reals are the YouTube originals only, leave them out.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .layout import BenchmarkManifest, BenchmarkRow, Inventory, LayoutError, load_json, relative_name, require_path
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


def _method_rows(root: Path, method: str, compression: str, splits, real_of: dict[str, Path]):
    folder = require_path(root, f"manipulated_sequences/{method}/{compression}/videos", "FaceForensics++",
                          hint=f"download {method} at {compression} or leave it out of --methods")
    inventory = Inventory(method, expected=0)
    rows = []
    for split, pairs in splits.items():
        for a, b in pairs:
            for target, source in ((a, b), (b, a)):
                inventory.expected += 1
                path = folder / f"{target}_{source}.mp4"
                row = BenchmarkRow(path, 1, split, method, real_of.get(target))
                if inventory.present(path, path.relative_to(root).as_posix(), row):
                    rows.append(row)
    return rows, inventory


def _dfd_rows(root: Path, compression: str):
    reals_dir = require_path(root, f"original_sequences/actors/{compression}/videos", "FaceForensics++ (DFD)",
                             hint="download DeepFakeDetection's original actors videos or leave it out of --methods")
    fakes_dir = require_path(root, f"manipulated_sequences/DeepFakeDetection/{compression}/videos",
                             "FaceForensics++ (DFD)")
    reals = sorted(reals_dir.glob("*.mp4"))
    fakes = sorted(fakes_dir.glob("*.mp4"))
    real_by_name = {p.stem: p for p in reals}
    rows = [BenchmarkRow(p, 0, "test", DFD_REAL_METHOD) for p in reals]
    for path in fakes:
        pair, _, rest = path.stem.partition("__")
        scene = rest.rsplit("__", 1)[0]
        target = pair.split("_")[0]
        rows.append(BenchmarkRow(path, 1, "test", "DeepFakeDetection", real_by_name.get(f"{target}__{scene}")))
    inventory = [Inventory("DFD real (actors)", DFD_EXPECTED[0], len(reals)),
                 Inventory("DeepFakeDetection", DFD_EXPECTED[1], len(fakes))]
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
    real_inventory = Inventory("real (youtube)", expected=0)
    rows: list[BenchmarkRow] = []
    real_of: dict[str, Path] = {}
    for split, pairs in splits.items():
        for vid in (v for pair in pairs for v in pair):
            real_inventory.expected += 1
            path = real_dir / f"{vid}.mp4"
            if real_inventory.present(path, path.relative_to(root).as_posix(), BenchmarkRow(path, 0, split)):
                real_of[vid] = path
                rows.append(BenchmarkRow(path, 0, split))
    inventory = [real_inventory]
    for method in dict.fromkeys(methods):
        if method == "DeepFakeDetection":
            more, items = _dfd_rows(root, compression)
            inventory += items
        else:
            more, item = _method_rows(root, method, compression, splits, real_of)
            inventory.append(item)
        rows += more
    notes = ["splits: the official FaceForensics++ split files (360/70/70 pairs)"]
    if "DeepFakeDetection" in methods:
        notes.append("DeepFakeDetection has no official split: its videos are all in split 'test'")
    return BenchmarkManifest(f"FaceForensics++ {compression}", root, rows, inventory, notes,
                             tag=dataset_tag("ffpp", {"compression": compression}))
