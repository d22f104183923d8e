"""``dynsnip extract-faces`` output as a DeepfakeBench dataset, so its baselines see DIL's crops.

``extract-faces`` does not store face crops: it stores each frame's *context region* and the
detections, and the crop of a snippet is decided when the snippet is drawn (one box per
snippet of T frames, :mod:`dynsnip.data.faces.crop_policy`). DeepfakeBench's loader reads
whole face crops, one image per frame. :func:`export_deepfakebench` therefore cuts, for every
frame, the crop the policy gives the **aligned snippet holding it**: the video's frames are
taken in blocks of T (frames 0..T-1, T..2T-1, ...; T = the ``snippet_len`` the folder was
extracted for; a last incomplete block uses the snippet of the video's last T frames), each
block gets its box from :meth:`~dynsnip.data.faces.face_folder.FaceFolder.snippet_boxes`
called on all blocks of the video at once (a block without a face borrows the nearest
block's box, as a snippet does in a clip), and the crop is resized once to ``size`` px with
``interpolation``, as :class:`~dynsnip.data.datasets.FaceFramesDataset` does for DIL (at the
DIL model's input size and interpolation: 224 px, bilinear for ``dil_resnet50.tv_in1k``).
These are exactly DIL's crops for snippets that start at a multiple of T (its evaluation
snippets with ``detect_every`` = T, the default); a training snippet at another offset may
get the box of its other looked-at frame. Folders of ready crops (no ``faces.json``, e.g.
WildDeepfake) are exported whole, resized to ``size``.

The face exported is each **sample face track** of ``faces.json`` (:func:`sample_tracks_of`: the
faces training reads, a fake's manipulated one), cut with that track's boxes: never the largest
face of a fake whose smaller face was swapped. One sample track: the video ``<video>``; several:
one video per track, ``<video>_track<id>``. A folder without face tracks: its largest face.

Output::

    FRAMES_OUT/<video>/000000.png ...   one crop per frame, named by frame index (consecutive)
                                        (<video>_track<id>/ per sample track when a folder has several)
    OUT.json                            {NAME: {label_name: {train|val|test: {[level:] {<video>: {"label", "frames"}}}}}}

``<video>`` is the frame folder's path relative to the manifest's folder. Frame paths in the
JSON are absolute, or relative to ``relative_to``. A video folder is written under a
temporary name and renamed when complete; a complete one from an earlier run with the same
crop settings and source folder (``size``, ``interpolation``, the face track, the frame folder:
recorded in ``.dynsnip-export.json`` beside the frames) is reused, unless the folder was extracted again since (the record holds the
SHA-256 of its ``faces.json``: the crops are then cut again), so an interrupted export is started again with the same command. Nothing is
overwritten without ``overwrite``: not the JSON, not the crops of an export made with other
settings or from another frame folder (another JSON may list them: that video fails, naming them), and not a folder without
the exporter's record (a user's). A frame folder of the manifest is never written into or
replaced, even with ``overwrite`` (``frames_out`` inside one is refused up front; a video whose
output folder is or holds one fails). A video that cannot be read, or whose video was cut or
paused (``faces.json``'s ``time_gaps``: its frames are not consecutive in time), is reported, the others are
exported.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import VideoError
from ..manifest import ManifestEntry, read_manifest
from .deepfakebench import COMPRESSIONS, DEFAULT_LABELS, SPLITS

__all__ = ["export_deepfakebench", "ExportResult", "LABEL_SCHEMES", "FFPP_NAMES", "aligned_blocks", "label_dict_lines"]

LABEL_SCHEMES = ("dataset", "ffpp")
# DeepfakeBench reads a compression level for the datasets of its FaceForensics++ family
FFPP_NAMES = ("FaceForensics++", "FaceShifter", "DeepFakeDetection", "FF-DF", "FF-F2F", "FF-FS", "FF-NT")
_FFPP_FAKE_LABELS = {method: name for name, (label, method) in DEFAULT_LABELS.items()
                     if label == 1 and name.startswith(("FF-", "DFD")) and name != "FF-SH"}


@dataclass
class ExportResult:
    """What :func:`export_deepfakebench` wrote: the JSON, the videos exported (``label_name ->
    count``), the frames whose block borrowed its box, and the videos that failed (``(folder, reason)``)."""

    json_path: Path
    name: str
    videos: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    frames: int = 0
    borrowed_frames: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def label_names(self) -> list[str]:
        return sorted(self.videos)


def aligned_blocks(num_frames: int, snippet_len: int) -> list[list[int]]:
    """The snippets of the export: frames in blocks of T from frame 0; a last incomplete block
    is the snippet of the last T frames; a video shorter than T repeats its last frame (as
    :func:`~dynsnip.data.sampling.sample_snippets`)."""
    t = int(snippet_len)
    starts = list(range(0, num_frames - t + 1, t)) or [0]
    if starts[-1] + t < num_frames:
        starts.append(num_frames - t)
    return [[min(s + i, num_frames - 1) for i in range(t)] for s in starts]


def _label_name(entry: ManifestEntry, name: str, scheme: str) -> str:
    if scheme == "dataset":
        return f"{name}_{'fake' if entry.label else 'real'}"
    if not entry.label:
        return "FF-real"
    if entry.method not in _FFPP_FAKE_LABELS:
        raise ValueError(f"--labels ffpp names fakes by FF++ method ({', '.join(sorted(_FFPP_FAKE_LABELS))}); "
                         f"{entry.path} has method {entry.method!r}: use --labels dataset")
    return _FFPP_FAKE_LABELS[entry.method]


def _video_id(entry: ManifestEntry, base: Path) -> str:
    try:
        return Path(os.path.abspath(entry.path)).relative_to(Path(os.path.abspath(base))).as_posix()
    except ValueError:
        return Path(entry.path).name


def sample_tracks_of(folder: Path) -> list[int | None]:
    """The face tracks of ``folder`` that the export writes, one video each: the tracks its
    ``faces.json`` lists as training samples (every kept face of a real video, the manipulated
    one(s) of a fake with a source: what ``FaceFramesDataset(faces="all")`` trains on), or
    ``[None]`` (the largest face) for a folder without face tracks or of ready crops. Exporting
    the largest face of a two-person fake would label its untouched face fake."""
    from ..faces.face_folder import FaceFolder, read_meta

    try:
        meta = read_meta(folder)
    except (OSError, VideoError):
        return [None]  # the export of the video fails with the reason when it reads the folder
    if meta is None or meta.get("samples") is None:
        return [None]
    tracks = FaceFolder.sample_tracks(folder)
    if not tracks:  # a samples record that names no track: nothing of the folder is a sample
        from ..errors import FaceFolderError

        raise FaceFolderError(folder, "faces.json's samples name no face track; expected the record extract-faces "
                                      "writes (delete the folder and run dynsnip extract-faces again for its video)")
    return list(tracks)


def _check_no_time_gap(folder: Path) -> None:
    """Raise :class:`~dynsnip.data.errors.FrameGapError` (``frame_gap``) when ``folder``'s video was cut
    or paused somewhere (``faces.json``'s ``time_gaps``, as
    :meth:`~dynsnip.data.faces.face_folder.FaceFolder.check_consecutive`): its frames are consecutive
    files but not consecutive in time, and the export writes a video as one run of consecutive frames
    (DeepfakeBench draws clips from anywhere in it, and the jump would be read as motion)."""
    from ..errors import FrameGapError
    from ..faces.face_folder import read_meta

    meta = read_meta(folder)
    if not isinstance(meta, dict):
        return
    try:
        gaps = sorted(int(i) for i in meta.get("time_gaps") or ())
        num_frames = len(meta.get("frames") or ())
    except (TypeError, ValueError):
        raise FrameGapError(folder, "faces.json's time_gaps is malformed; expected the list of frame indices "
                                    "extract-faces writes (extract the video again)") from None
    inside = [i for i in gaps if 0 < i and (num_frames == 0 or i < num_frames)]
    if inside:
        raise FrameGapError(folder, f"the video was cut or paused between frames {inside[0] - 1} and {inside[0]} "
                                    f"(faces.json's time_gaps: {len(inside)} jump(s)); the export writes a video as "
                                    "consecutive frames, and the jump would be read as motion: left out (cut the "
                                    "video at the jump and extract the parts to export them)")


def _export_video(folder: Path, out: Path, size: int, interpolation: str,
                  track: int | None = None) -> tuple[list[Path], int]:
    """Write ``folder``'s crops into ``out`` (see the module docstring): of face track ``track``
    (None: the largest face); returns the frame files and how many frames have a borrowed box.
    Raises an error naming the problem for an unreadable folder."""
    from .._optional import require
    from ..datasets import frame_sequence
    from ..errors import FrameGapError, NoFaceError
    from ..faces.crop import crop_and_resize
    from ..faces.face_folder import FaceFolder
    from ..faces.png_writer import write_png

    np = require("numpy")
    Image = require("PIL.Image")
    frames = frame_sequence(folder)
    gaps = [(a, b) for a, b in zip(frames.numbers, frames.numbers[1:]) if b - a != 1]
    if gaps:
        raise FrameGapError(folder, f"after frame {gaps[0][0]} comes {gaps[0][1]}: the export keeps consecutive frames "
                                    "only (extract the video again)")
    faces = FaceFolder.open(folder, frames.paths)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    names = [f"{n:06d}.png" for n in frames.numbers]
    borrowed = 0
    try:
        if faces is None:  # ready crops: the frames whole, resized as DIL reads them
            for path, name in zip(frames.paths, names):
                with Image.open(path) as image:
                    rgb = np.asarray(image.convert("RGB"))
                write_png(tmp / name, crop_and_resize(rgb[None], None, (size, size), interpolation)[0])
        else:
            snippet_len = int(json.loads((folder / "faces.json").read_text()).get("snippet_len") or 4)
            blocks = np.array(aligned_blocks(faces.num_frames, snippet_len))
            crops = faces.snippet_boxes(blocks, track=track)
            if faces.detections and not crops.face_found.any():
                which = "" if track is None else f" of face track {track}"
                raise NoFaceError(folder, f"no face{which} in any of its {faces.num_frames} frames")
            written = set()
            for u, block in enumerate(blocks):
                todo = [i for i in dict.fromkeys(block.tolist()) if i not in written]
                if not todo:
                    continue
                one = type(crops)(crops.boxes[u:u + 1], crops.face_found[u:u + 1], 0, 0)
                images = faces.cut(block[None], one, (size, size), interpolation)
                for i in todo:
                    write_png(tmp / names[i], images[block.tolist().index(i)])
                    written.add(i)
                borrowed += 0 if crops.face_found[u] else len(todo)
        (tmp / EXPORT_RECORD).write_text(json.dumps({"size": size, "interpolation": interpolation, "source": os.path.abspath(folder),
                                                     "track": track, "faces_json": folder_fingerprint(folder)}),
                                         encoding="utf-8")
        if os.path.lexists(out):  # checked by the caller (_complete): an export's own folder, or --overwrite
            if out.is_dir() and not out.is_symlink():
                shutil.rmtree(out)
            else:
                out.unlink()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / name for name in names], borrowed


# written beside an exported video's frames: the crop settings they were made with (_complete)
EXPORT_RECORD = ".dynsnip-export.json"


def folder_fingerprint(folder: Path) -> str | None:
    """SHA-256 of ``folder``'s ``faces.json`` (None without one: ready crops). Recorded with an
    export's crops: a folder extracted again (other settings, another detector) has other
    detections and regions, and crops cut from the old ones are stale (:func:`_complete`)."""
    import hashlib

    try:
        return hashlib.sha256((folder / "faces.json").read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _made_text(size: Any, interpolation: Any, track: Any = None) -> str:
    """How an export's crop settings are shown (``24 px, bilinear``; a face track's: ``, face track 1``)."""
    return f"{size} px, {interpolation}" + ("" if track is None else f", face track {track}")


def _within(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (links resolved)."""
    path, folder = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return path == folder or folder in path.parents


def _complete(out: Path, folder: Path, size: int, interpolation: str,
              track: int | None = None) -> tuple[list[Path] | None, str | None]:
    """What to do with ``out``, the video folder of ``folder``'s export, as ``(frames, refusal)``:
    the frames of an earlier export of ``folder`` when it is complete (same frame names, the same
    crop settings, face track and source folder in its record, cut from the same ``faces.json``):
    ``(frames, None)``, reused; ``(None, None)``: written (again): ``out`` does not exist, or holds
    this exporter's own record of an export of ``folder`` with these settings that is incomplete or
    was cut from an earlier extraction of the folder; ``(None, why)``: ``out`` is not this export's
    to replace (no export record: a user's folder, or an export of an earlier version; crops made
    with other settings or from another source folder: another export, which another JSON may
    list): it is written only with ``overwrite``."""
    from ..datasets import frame_sequence

    if not os.path.lexists(out):
        return None, None
    if not out.is_dir() or out.is_symlink():
        return None, "exists and is not a folder of exported crops"
    try:
        record = json.loads((out / EXPORT_RECORD).read_text(encoding="utf-8"))
        made = (record["size"], record["interpolation"], record.get("track"))
        source = str(record["source"])
    except FileNotFoundError:
        return None, (f"exists and holds no {EXPORT_RECORD} (the record of an export by dynsnip): it is not this "
                      "export's folder")
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None, f"holds an unreadable {EXPORT_RECORD}: it is not this export's folder"
    if os.path.realpath(source) != os.path.realpath(folder):
        return None, f"holds the crops of another export (cut from {source}, not from {folder})"
    if made != (size, interpolation, track):
        other_track = made[2] != track
        return None, (f"holds the crops of another export ({_made_text(made[0], made[1], made[2] if other_track else None)}), "
                      f"not {_made_text(size, interpolation, track if other_track else None)}")
    try:
        expected = [f"{n:06d}.png" for n in frame_sequence(folder).numbers]
    except (OSError, ValueError):
        return None, None  # the export of the video fails with the reason when it reads the folder
    present = set(os.listdir(out)) - {EXPORT_RECORD}
    if set(expected) != present or record.get("faces_json", "") != folder_fingerprint(folder):
        return None, None  # our own unfinished export, or cut from another extraction of the folder: cut again
    return [out / n for n in expected], None


def export_deepfakebench(
    manifest: str | os.PathLike[str],
    out_json: str | os.PathLike[str],
    frames_out: str | os.PathLike[str],
    *,
    name: str | None = None,
    compression: str | None = None,
    labels: str = "dataset",
    size: int = 224,
    interpolation: str = "bilinear",
    relative_to: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    log: Callable[[str], None] | None = None,
) -> ExportResult:
    """Export the frame folders of ``manifest`` (``extract-faces``' ``faces.csv``) as a DeepfakeBench dataset.

    Args:
        manifest: the manifest of frame folders (with ``split``; rows without one are reported and skipped).
        out_json: the dataset JSON to write; DeepfakeBench finds it as ``<dataset_json_folder>/<NAME>.json``.
        frames_out: where the crops go, one folder per video.
        name: the dataset's name in DeepfakeBench (``train_dataset: [NAME]``); default ``out_json``'s stem,
            which it must equal.
        compression: ``raw`` / ``c23`` / ``c40``: wrap each split in that level, as DeepfakeBench's FF++
            JSONs do (required for the names it reads a level for, :data:`FFPP_NAMES`).
        labels: ``dataset``: label names ``<NAME>_real`` / ``<NAME>_fake``; ``ffpp``: DeepfakeBench's
            FF++ names (``FF-real``, ``FF-DF``, ...) from the rows' methods.
        size, interpolation: the crops' side in px and resampling (DIL's input size and interpolation).
        relative_to: write frame paths relative to this folder (default absolute).
        overwrite: replace an existing ``out_json``, and crops in ``frames_out`` made with other settings.
        log: progress lines (None: silent).

    Raises:
        FileExistsError: ``out_json`` exists and ``overwrite`` is False.
        ValueError: a bad option, a name that does not match the file, no rows, or no video exported.
    """
    manifest, out_json, frames_out = Path(manifest), Path(out_json), Path(frames_out)
    if manifest.is_dir():
        manifest = manifest / "faces.csv"
    name = name or out_json.stem
    if out_json.suffix.lower() != ".json" or out_json.stem != name:
        raise ValueError(f"{out_json}: DeepfakeBench opens <dataset_json_folder>/<name>.json; expected {name}.json")
    if compression is not None and compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}; expected one of {', '.join(COMPRESSIONS)}")
    if name in FFPP_NAMES and compression is None:
        raise ValueError(f"DeepfakeBench reads a compression level for {name}: give --compression (e.g. c23), "
                         "or choose another name")
    if labels not in LABEL_SCHEMES:
        raise ValueError(f"labels must be one of {LABEL_SCHEMES}, got {labels!r}")
    from ..faces.crop import _PIL_FILTERS

    if interpolation not in _PIL_FILTERS:
        raise ValueError(f"unknown interpolation {interpolation!r}; expected one of {', '.join(sorted(_PIL_FILTERS))}")
    if not isinstance(size, int) or size < 8:
        raise ValueError(f"size must be an integer of at least 8 px, got {size!r}")
    if out_json.exists() and not overwrite:
        raise FileExistsError(f"{out_json} exists; refusing to overwrite it (pass --overwrite to replace it)")
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no such manifest; expected the faces.csv of `dynsnip extract-faces "
                                "--manifest` (or its output folder)")
    entries = read_manifest(manifest)
    if not entries:
        raise ValueError(f"{manifest}: no rows; expected frame folders with labels and splits")
    label_of = {id(e): _label_name(e, name, labels) for e in entries}  # fails before anything is written
    sources = [Path(e.path) for e in entries]  # crops are never written into (or over) a folder the export reads
    for source in sources:
        if _within(frames_out, source):
            raise ValueError(f"--frames-out {frames_out} is (or is inside) the frame folder {source} of the manifest; "
                             "choose a folder outside the frame folders")
    result = ExportResult(out_json, name)
    dataset: dict[str, Any] = {}
    used: dict[str, Path] = {}
    base = manifest.parent
    for n, entry in enumerate(entries, start=1):
        folder = Path(entry.path)
        if entry.split is None:
            result.failed.append((str(folder), "no split in the manifest; DeepfakeBench reads train / val / test"))
            continue
        try:
            tracks = sample_tracks_of(folder)
            _check_no_time_gap(folder)
        except (OSError, VideoError) as err:
            result.failed.append((str(folder), _reason(err)))
            continue
        base_id = _video_id(entry, base)
        for track in tracks:
            # one video per sample face track (as training reads the folder); several: <video>_track<id>
            video = base_id if len(tracks) == 1 else f"{base_id}_track{track}"
            if used.get(video, folder) != folder:
                result.failed.append((str(folder), f"its output folder {video} is already used by {used[video]}"))
                continue
            used[video] = folder
            out = frames_out / video
            clash = next((s for s in sources if _within(s, out) or _within(out, s)), None)
            if clash is not None:
                result.failed.append((str(folder), f"its output folder {out} is, holds or lies inside the frame folder "
                                                   f"{clash} of the manifest; never replaced: choose a --frames-out "
                                                   "outside the frame folders"))
                continue
            try:
                paths, refusal = _complete(out, folder, size, interpolation, track)
                if refusal is not None and not overwrite:
                    result.failed.append((str(folder), f"{out} {refusal}: left as it is; choose another frames folder, "
                                                       "or pass --overwrite to replace it"))
                    continue
                borrowed = 0
                if paths is None:
                    paths, borrowed = _export_video(folder, out, size, interpolation, track)
            except (OSError, ValueError, VideoError) as err:
                result.failed.append((str(folder), _reason(err)))
                continue
            label_name = label_of[id(entry)]
            shown = [_path_text(p, relative_to) for p in paths]
            splits = dataset.setdefault(label_name, {s: ({compression: {}} if compression else {}) for s in SPLITS})
            videos = splits[entry.split][compression] if compression else splits[entry.split]
            videos[video] = {"label": label_name, "frames": shown}
            result.videos[label_name] = result.videos.get(label_name, 0) + 1
            result.labels[label_name] = int(entry.label)
            result.frames += len(paths)
            result.borrowed_frames += borrowed
            if log is not None:
                log(f"[{n}/{len(entries)}] {video}: {len(paths)} frames")
    if not result.videos:
        reasons = "; ".join(f"{f}: {r}" for f, r in result.failed[:3])
        raise ValueError(f"{manifest}: no video could be exported ({reasons})")
    _write_json(out_json, {name: dataset})
    return result


def _path_text(path: Path, relative_to: str | os.PathLike[str] | None) -> str:
    absolute = os.path.abspath(path)
    return absolute if relative_to is None else os.path.relpath(absolute, os.path.abspath(relative_to))


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def label_dict_lines(result: ExportResult) -> Iterable[str]:
    """The ``label_dict`` entries DeepfakeBench's train_config.yaml needs for the exported names."""
    for label_name in result.label_names:
        yield f"  {label_name}: {result.labels[label_name]}"



def _reason(err: BaseException) -> str:
    """A failure's message without the folder it is listed under (a VideoError's text starts with its path)."""
    return err.message if isinstance(err, VideoError) else str(err)
