"""DeepfakeBench's preprocessed data as a dynsnip manifest of frame folders.

DeepfakeBench (SCLBD/DeepfakeBench) describes each dataset it has preprocessed with a JSON
file (``preprocessing/dataset_json/<Name>.json``)::

    {dataset: {label_name: {train|val|test: {[c23|c40|raw:] {video: {"label": label_name,
                                                                     "frames": [paths], ...}}}}}}

The compression level appears only in the FaceForensics++ family (FF++, DeepFakeDetection,
FaceShifter); the label names (``FF-real``, ``FF-DF``, ``CelebDFv2_fake``...) map to 0 / 1 through
its ``label_dict``; the frames live in ``.../frames/<video>/<n>.png``, ``n`` the frame's index
in the video. :func:`deepfakebench_manifest` turns such a file into dynsnip manifest rows, one
per frame folder: ``path,label,split,method,source,dataset,compression,label_name`` (``dataset``
the provenance tag ``dynsnip benchmark`` checks, e.g. ``ffpp:c23`` for FF-DF.json at c23, empty
for datasets dynsnip has no reader of: vouch for those with ``--data-is``).

Frame paths in these files are whatever the preprocessing machine wrote (relative to
DeepfakeBench's folder, absolute, or with Windows separators). With ``frames_root`` each
frame folder is looked for under that folder: the leading components of its path are
dropped until the rest exists there (``./datasets/rgb/FaceForensics++/...`` is found under a
``frames_root`` of ``/data/rgb`` as ``/data/rgb/FaceForensics++/...``); without it a path is
used as it is (relative ones from the current folder, then from the JSON's folder).

DIL reads snippets of T *consecutive* frames. DeepfakeBench's default preprocessing keeps 32
frames spread evenly over each video: Intra-SIM would take its differences across gaps of
about ten frames and score the jump as the very motion it looks for. A folder whose frame
numbers are not consecutive is therefore **refused** (not written into the manifest), with
the gap named; a folder that lacks a frame the JSON lists likewise. Nothing is sampled
across gaps. The summary says how to get consecutive frames: ``dynsnip extract-faces`` on
the videos, or DeepfakeBench's preprocessing set to keep every frame.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Mapping

from .layout import BenchmarkManifest, BenchmarkRow, Inventory, LayoutError, _shown, write_csv_whole

__all__ = ["deepfakebench_manifest", "DeepfakeBenchManifest", "DEFAULT_LABELS", "DATASET_TAGS", "COMPRESSIONS", "SPLITS",
           "read_label_dict", "CONSECUTIVE_HINT", "JSON_SHAPE"]

COMPRESSIONS = ("raw", "c23", "c40")
SPLITS = ("train", "val", "test")
JSON_SHAPE = ('{dataset: {label_name: {train|val|test: {[c23|c40|raw:] {video: {"label": label_name, '
              '"frames": [paths]}}}}}}')
CONSECUTIVE_HINT = (
    "DIL's snippets need T consecutive frames (Intra-SIM would score the jumps as motion); DeepfakeBench's default "
    "preprocessing keeps frames spread over each video. Get consecutive frames with `dynsnip extract-faces` on the "
    "videos (then `dynsnip manifest` for their labels and splits), or rerun DeepfakeBench's preprocessing so that it "
    "keeps every frame (see docs/deepfakebench.md)")

# DeepfakeBench's label names: label (1 = fake) and the manipulation method dynsnip's metrics use
DEFAULT_LABELS: dict[str, tuple[int, str]] = {
    "FF-real": (0, ""), "FF-DF": (1, "Deepfakes"), "FF-F2F": (1, "Face2Face"), "FF-FS": (1, "FaceSwap"),
    "FF-NT": (1, "NeuralTextures"), "FF-FH": (1, "FaceShifter"), "FF-SH": (1, "FaceShifter"),
    "DFD_real": (0, ""), "DFD_fake": (1, "DeepFakeDetection"),
    "CelebDFv1_real": (0, ""), "CelebDFv1_fake": (1, "Celeb-synthesis"),
    "CelebDFv2_real": (0, ""), "CelebDFv2_fake": (1, "Celeb-synthesis"),
    "DFDCP_Real": (0, ""), "DFDCP_FakeA": (1, "DFDC"), "DFDCP_FakeB": (1, "DFDC"),
    "DFDC_Real": (0, ""), "DFDC_Fake": (1, "DFDC"),
    "DF_real": (0, ""), "DF_fake": (1, "DeeperForensics-1.0"),
    "UADFV_Real": (0, ""), "UADFV_Fake": (1, "UADFV"),
}
# DeepfakeBench's dataset names -> dynsnip's provenance tags (:mod:`.provenance`; FF++ gets its level)
DATASET_TAGS = {"FaceForensics++": "ffpp", "FF-DF": "ffpp", "FF-F2F": "ffpp", "FF-FS": "ffpp", "FF-NT": "ffpp",
                "FaceShifter": "ffpp", "DeepFakeDetection": "ffpp", "Celeb-DF-v1": "celebdf:v1",
                "Celeb-DF-v2": "celebdf:v2", "DFDC": "dfdc", "DFDCP": "dfdc"}


def dataset_tag(name: str, compression: str) -> str:
    """The provenance tag of DeepfakeBench dataset ``name`` (empty for one dynsnip has no reader of)."""
    tag = DATASET_TAGS.get(name, "")
    return f"{tag}:{compression}" if tag == "ffpp" and compression else tag


def read_label_dict(path: str | os.PathLike[str]) -> dict[str, int]:
    """Label names -> 0 / 1 from a YAML or JSON file: DeepfakeBench's ``train_config.yaml`` (its
    ``label_dict``) or a plain mapping.

    Raises:
        LayoutError: not such a mapping, or a value other than 0 / 1 (DIL is a binary detector).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as err:  # yaml / json syntax errors
        raise LayoutError(f"{path}: cannot be read as {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {err}") from None
    if isinstance(data, Mapping) and isinstance(data.get("label_dict"), Mapping):
        data = data["label_dict"]
    if not isinstance(data, Mapping) or not data:
        raise LayoutError(f"{path}: expected a label_dict mapping of label names to 0 (real) / 1 (fake), "
                          f"e.g. DeepfakeBench's train_config.yaml")
    return {str(k): _binary(v, f"{path}: label {k!r}") for k, v in data.items()}


def _binary(value: Any, where: str) -> int:
    if isinstance(value, bool) or value not in (0, 1):
        raise LayoutError(f"{where} maps to {value!r}; DIL is a binary detector: expected 0 (real) or 1 (fake)")
    return int(value)


@dataclass
class DeepfakeBenchManifest(BenchmarkManifest):
    """A :class:`BenchmarkManifest` with each row's ``compression`` and DeepfakeBench ``label_name``
    (aligned with ``rows``), and the frame folders ``refused`` (``(folder, reason)``)."""

    compression: list[str] = field(default_factory=list)
    label_names: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    @property
    def num_refused(self) -> int:
        return len(self.refused)

    def summary(self, limit: int = 5) -> str:
        lines = [super().summary(limit)]
        if self.refused:
            lines.append(f"  refused: {len(self.refused)} frame folder(s) DIL cannot read, not in the manifest:")
            lines += [f"    {folder}: {reason}" for folder, reason in self.refused[:limit]]
            if len(self.refused) > limit:
                lines.append(f"    (+{len(self.refused) - limit} more)")
            lines.append(f"  {CONSECUTIVE_HINT}")
        return "\n".join(lines)

    def write(self, out: str | os.PathLike[str], overwrite: bool = False) -> Path:
        """The rows as CSV, ``path,label,split,method,source,dataset,compression,label_name`` (``dataset``:
        the provenance tag, empty for datasets dynsnip has no reader of); whole or not at all.

        Raises:
            FileExistsError: ``out`` exists and ``overwrite`` is False.
            ValueError: there are no rows.
        """
        if not self.rows:
            raise ValueError(f"{self.dataset} at {self.root}: no readable frame folders; nothing to write")

        def lines(folder: Path) -> Iterator[list]:
            for row, tag, level, name in zip(self.rows, self.tags, self.compression, self.label_names):
                yield [_shown(row.path, folder), row.label, row.split, row.method, "", tag, level, name]

        return write_csv_whole(out, ("path", "label", "split", "method", "source", "dataset", "compression",
                                     "label_name"), lines, overwrite)


# --------------------------------------------------------------------------- reading the JSON
@dataclass(frozen=True)
class _Video:
    dataset: str
    group: str  # the label_name key the video is listed under
    split: str
    compression: str
    name: str
    label_name: str
    frames: list[str]
    where: str  # its position in the JSON, for messages


def _shape_error(json_path: Path, where: str, found: Any) -> LayoutError:
    what = type(found).__name__ if not isinstance(found, Mapping) else f"keys {sorted(map(str, found))[:5]}"
    return LayoutError(f"{json_path}: expected DeepfakeBench's dataset JSON {JSON_SHAPE}; at {where or 'the top'} "
                       f"found {what}")


def _is_video(value: Any) -> bool:
    return isinstance(value, Mapping) and "frames" in value


def _has_levels(split_dict: Mapping[str, Any]) -> bool:
    """Whether a split's entries are compression levels (FF++ family) rather than videos."""
    return bool(split_dict) and all(k in COMPRESSIONS and isinstance(v, Mapping) and not _is_video(v)
                                    for k, v in split_dict.items())


def _videos(json_path: Path, data: Any, compression: str | None) -> tuple[list[_Video], set[str]]:
    """Every video of the JSON (at ``compression`` where it has levels) and the levels it has."""
    if not isinstance(data, Mapping) or not data:
        raise _shape_error(json_path, "", data)
    videos: list[_Video] = []
    levels: set[str] = set()
    for dataset, groups in data.items():
        if not isinstance(groups, Mapping):
            raise _shape_error(json_path, str(dataset), groups)
        for group, splits in groups.items():
            where = f"{dataset}/{group}"
            if not isinstance(splits, Mapping) or not set(splits) <= set(SPLITS):
                raise _shape_error(json_path, where, splits)
            for split, entries in splits.items():
                if not isinstance(entries, Mapping):
                    raise _shape_error(json_path, f"{where}/{split}", entries)
                if _has_levels(entries):
                    levels |= set(entries)
                    chosen = [(level, entries[level]) for level in entries if level == (compression or "c23")]
                else:
                    chosen = [("", entries)]
                for level, by_video in chosen:
                    for name, info in by_video.items():
                        at = "/".join(p for p in (where, split, level, str(name)) if p)
                        if not _is_video(info) or not isinstance(info["frames"], list) or "label" not in info:
                            raise _shape_error(json_path, at, info)
                        videos.append(_Video(str(dataset), str(group), split, level, str(name), str(info["label"]),
                                             [str(p) for p in info["frames"]], at))
    return videos, levels


class _FolderResolver:
    """Where a JSON frame path's folder is on this machine (module docstring)."""

    def __init__(self, json_path: Path, frames_root: Path | None) -> None:
        self.json_dir = json_path.parent
        self.root = frames_root
        self.drop: int | None = None  # leading components dropped for the last folder found

    def __call__(self, frame_path: str) -> Path | None:
        parts = PurePosixPath(frame_path.replace("\\", "/")).parts[:-1]
        if self.root is None:
            folder = Path(*parts) if parts else Path(".")
            tried = [folder] if folder.is_absolute() else [Path.cwd() / folder, self.json_dir / folder]
            return next((p for p in tried if p.is_dir()), None)
        relative = [p for p in parts if p not in ("/", ".", "..", "")]
        order = ([self.drop] if self.drop is not None and self.drop < len(relative) else []) + list(range(len(relative)))
        for k in order:
            candidate = self.root.joinpath(*relative[k:])
            if candidate.is_dir():
                self.drop = k
                return candidate
        return None


def _frame_problem(folder: Path, listed: list[str]) -> str | None:
    """Why DIL cannot read ``folder`` (a listed frame missing, numbers not consecutive), or None."""
    from ..datasets import StrayFrameFileWarning, frame_sequence
    from ..errors import FrameFolderError

    names = [PurePosixPath(p.replace("\\", "/")).name for p in listed]
    present = set(os.listdir(folder))
    missing = [n for n in names if n not in present]
    if missing:
        return (f"{len(missing)} of the {len(names)} frames the JSON lists are not in the folder (e.g. {missing[0]}); "
                "expected every listed frame on disk")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StrayFrameFileWarning)
            sequence = frame_sequence(folder)
    except (FileNotFoundError, FrameFolderError) as err:
        return str(err)
    numbers = sequence.numbers
    for a, b in zip(numbers, numbers[1:]):
        if b - a != 1:
            spread = (f"; its {len(numbers)} frames are spread over frames {numbers[0]}-{numbers[-1]}"
                      if len(numbers) > 2 and sequence.step > 1 else "")
            return f"frame numbers are not consecutive: after frame {a} comes {b}{spread}"
    return None


def deepfakebench_manifest(
    json_path: str | os.PathLike[str],
    frames_root: str | os.PathLike[str] | None = None,
    compression: str | None = None,
    label_dict: Mapping[str, int] | None = None,
) -> DeepfakeBenchManifest:
    """The manifest of a DeepfakeBench dataset JSON (see the module docstring).

    Args:
        json_path: the dataset JSON (``preprocessing/dataset_json/<Name>.json``).
        frames_root: the folder its frame paths are relative to (None: paths as they are).
        compression: ``raw`` / ``c23`` / ``c40`` for JSONs with levels (default ``c23``, the
            paper's HQ and DeepfakeBench's default); an error for one without.
        label_dict: label names -> 0 / 1, added to (and overriding) :data:`DEFAULT_LABELS` and the
            names ``<dataset>_real`` (0) / ``<dataset>_fake`` (1) of the file's datasets (those
            ``dynsnip export deepfakebench`` writes).

    Returns:
        a :class:`DeepfakeBenchManifest`: rows of readable frame folders; per label name and
        split an inventory (videos listed / found / missing); refused folders with the reason.

    Raises:
        LayoutError: a JSON of another shape, a label name not in the mapping, a compression level
            the file does not have, no frame folder found at all, or none with consecutive frames;
            each one line naming what was expected.
    """
    json_path = Path(json_path)
    if not json_path.is_file():
        raise LayoutError(f"{json_path}: no such file; expected a DeepfakeBench dataset JSON "
                          "(preprocessing/dataset_json/<Name>.json)")
    if compression is not None and compression not in COMPRESSIONS:
        raise LayoutError(f"unknown compression {compression!r}; expected one of {', '.join(COMPRESSIONS)}")
    root = Path(frames_root) if frames_root is not None else None
    if root is not None and not root.is_dir():
        raise LayoutError(f"--frames-root {root} is not a folder; expected the folder the JSON's frame paths are "
                          "relative to (e.g. DeepfakeBench's datasets/rgb)")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8-sig"))
    except ValueError as err:
        raise LayoutError(f"{json_path}: not JSON ({err}); expected DeepfakeBench's dataset JSON {JSON_SHAPE}") from None
    videos, levels = _videos(json_path, data, compression)
    if compression is not None and not levels:
        raise LayoutError(f"{json_path} has no compression levels (only FF++, DeepFakeDetection and FaceShifter JSONs "
                          f"have them); leave --compression out")
    if levels and (compression or "c23") not in levels:
        raise LayoutError(f"{json_path} has compression level(s) {', '.join(sorted(levels))}, not {compression or 'c23'}; "
                          f"choose one with --compression")
    # the names `dynsnip export deepfakebench --labels dataset` writes: <dataset>_real / <dataset>_fake
    labels = {f"{video.dataset}_{kind}": label for video in videos for kind, label in (("real", 0), ("fake", 1))}
    labels.update({name: label for name, (label, _) in DEFAULT_LABELS.items()})
    labels.update({str(k): _binary(v, f"label_dict: {k!r}") for k, v in (label_dict or {}).items()})
    for video in videos:
        if video.label_name not in labels:
            raise LayoutError(
                f"{json_path}: label name {video.label_name!r} (video {video.where}) is not in the label mapping; "
                f"known: {', '.join(sorted(labels))}; map it to 0 (real) or 1 (fake) with --label-dict FILE "
                "(DeepfakeBench's train_config.yaml works) or --label NAME=0|1")

    resolve = _FolderResolver(json_path, root)
    inventory: dict[tuple[str, str], Inventory] = {}
    rows: list[BenchmarkRow] = []
    manifest = DeepfakeBenchManifest("DeepfakeBench " + ", ".join(sorted({v.dataset for v in videos})) if videos
                                     else "DeepfakeBench", json_path, rows, [])
    checked: dict[Path, str | None] = {}
    refused: set[Path] = set()
    for video in videos:
        group = inventory.setdefault((video.label_name, video.split),
                                     Inventory(f"{video.label_name} {video.split}", 0))
        group.expected += 1
        folder = resolve(video.frames[0]) if video.frames else None
        if folder is None:
            shown = video.frames[0] if video.frames else "(no frames listed)"
            group.missing.append(f"{video.name} ({shown})")
            continue
        group.found += 1
        if folder not in checked:
            parents = {PurePosixPath(p.replace("\\", "/")).parent for p in video.frames}
            checked[folder] = (f"its frames are in {len(parents)} folders; expected one folder per video"
                               if len(parents) > 1 else _frame_problem(folder, video.frames))
        problem = checked[folder]
        if problem is not None:
            if folder not in refused:
                refused.add(folder)
                manifest.refused.append((str(folder), problem))
            continue
        label = labels[video.label_name]
        method = DEFAULT_LABELS.get(video.label_name, (label, video.label_name))[1] if label else ""
        rows.append(BenchmarkRow(folder, label, video.split, method or (video.label_name if label else "")))
        manifest.compression.append(video.compression)
        manifest.label_names.append(video.label_name)
        manifest.tags.append(dataset_tag(video.dataset, video.compression))
    manifest.inventory = list(inventory.values())
    manifest.tag = manifest.tags[0] if len(set(manifest.tags)) == 1 else ""
    if levels and not videos:
        raise LayoutError(f"{json_path}: lists no videos at compression {compression or 'c23'} (it has "
                          f"{', '.join(sorted(levels))}); choose another level with --compression")
    _check_usable(manifest, json_path, root, videos)
    shared = _in_several_splits(rows)
    if shared:
        manifest.notes.append(f"{shared} frame folder(s) are in more than one split, as the JSON lists them "
                              "(results on them are not held out)")
    if levels:
        manifest.notes.append(f"compression {compression or 'c23'} (the JSON has {', '.join(sorted(levels))})")
    return manifest


def _check_usable(manifest: DeepfakeBenchManifest, json_path: Path, root: Path | None, videos: list[_Video]) -> None:
    if not videos:
        raise LayoutError(f"{json_path}: lists no videos; expected DeepfakeBench's dataset JSON {JSON_SHAPE}")
    if not any(i.found for i in manifest.inventory):
        first = videos[0].frames[0] if videos[0].frames else "(no frames listed)"
        where = f"under --frames-root {root}" if root is not None else "(relative paths from here or the JSON's folder)"
        raise LayoutError(f"{json_path}: none of the {len(videos)} frame folders it lists exists {where}, e.g. "
                          f"{first}; expected --frames-root to be the folder its frame paths are relative to "
                          "(e.g. DeepfakeBench's datasets/rgb)")
    if not manifest.rows and manifest.refused:
        folder, reason = manifest.refused[0]
        raise LayoutError(f"{json_path}: none of its frame folders can be read by DIL (e.g. {folder}: {reason}). "
                          + CONSECUTIVE_HINT)


def _in_several_splits(rows: list[BenchmarkRow]) -> int:
    splits: dict[Path, set[str]] = {}
    for row in rows:
        splits.setdefault(row.path, set()).add(row.split)
    return sum(1 for s in splits.values() if len(s) > 1)

