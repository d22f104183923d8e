"""``dynsnip extract-faces``: save the faces of every frame once, for training.

Each video becomes a folder ``OUT/<name>/`` of face context regions (``000000.png`` ... named
by frame index; the crop of a snippet is cut from them at training time by the same crop
policy as ``predict``) plus ``faces.json`` (see :mod:`dynsnip.data.faces.extraction`). With ``--manifest`` (a
CSV/JSON of videos with labels and splits) the command also writes ``OUT/faces.csv``, the
same manifest pointing at the frame folders, ready for
:class:`dynsnip.data.FaceFramesDataset`.

Nothing is overwritten: a video whose folder exists, holds that video (its ``faces.json``
records the video's size and a hash of its ends, :mod:`dynsnip.data.faces.folder_source`) and
was made with the settings asked (``faces.json`` records them:
:func:`~dynsnip.data.faces.extraction.settings_differences`; workers and devices do not count)
is skipped, so an interrupted run can simply be started again; a folder that holds another
video (``real/001.mp4``'s, when ``fake/001.mp4`` is asked into the same ``OUT``) fails that
video, naming both, and a folder of the video made with other settings (``--max-frames``,
``--format``, ``--margin``, ...) fails it naming each setting asked and recorded; either is
replaced only with ``--replace-stale``. A folder whose recorded face coverage is below
``--min-face-coverage`` fails its video (``low_face_coverage``), as extracting it would. An
existing ``OUT/faces.csv`` is replaced only with ``--overwrite``, and never when another run wrote it
while this one worked (several ``--manifest`` shards into one ``OUT``): this run's rows then go to
``OUT/faces.<time>-<pid>.csv`` (:func:`own_manifest_names`), named in one line, to combine by hand
(docs/video.md). The manifest rows that failed are written
to ``OUT/faces_failed.csv`` (the manifest's columns plus ``reason`` and ``message``: a manifest itself,
to run again once they are fixed), so that a long run's failures are not only on the screen; it is
replaced with ``faces.csv`` (and removed when a new run has none), and kept with it: a run where every
video failed keeps the existing ``faces.csv`` and its ``faces_failed.csv`` as they were (and says so),
so the pair never lists a video as both extracted and failed. A video given twice (also
through a link, or inside a folder also given) is extracted once, with a note; an input that
is a directory or not a regular file (a FIFO: never opened) fails with what it is. Folder
names are the videos' paths relative to the input folder (or the manifest's) without the
extension; names that would be ``.``, ``..`` or end in ``.partial`` (the name of a folder
being written) get a ``_`` appended. Worker processes end when the main process dies (even by ``kill -9``).

Under ``torchrun --nnodes N --nproc_per_node M -m dynsnip extract-faces
...`` the videos are sharded across the ranks (rank r takes every world-size-th video still
to do; each writes its own video folders and prints each video it finishes to stderr as it goes),
and rank 0 prints the report and writes the one ``faces.csv`` once the slowest rank is done (the ranks
wait for each other up to ``$DYNSNIP_TORCHRUN_TIMEOUT_S`` seconds, 7 days by default); ``OUT`` must be a folder every rank can reach. A video that cannot be read or shows no face is reported and the others
go on; exit code 1 if any failed, 2 for usage errors.

Ctrl-C, or SIGTERM (a scheduler's stop, ``docker stop``: :class:`~dynsnip.cli.interrupts.StopSignals`),
stops at once: no video starts after it, the ones being extracted are interrupted (the main process
passes the stop on to its worker processes) and remove their unfinished folders
(:func:`~dynsnip.cli.extract_workers._run_all`; the worker processes and how they stop:
:mod:`dynsnip.cli.extract_workers`).
Every video is reported (``STOPPED``: interrupted, ``NOT DONE``: not started), the folders complete
and the rows failed are listed in ``OUT/faces.interrupted.csv`` and ``OUT/faces_failed.interrupted.csv``
(never in ``faces.csv``: :func:`write_interrupted_lists`), one line on stderr says to run the same
command again, which finishes, writes ``faces.csv`` without ``--overwrite`` and removes those lists
(:func:`drop_interrupted_lists`); exit code 130 after Ctrl-C, 143 after SIGTERM.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from ..cpus import cpus_per_process
from .exit_codes import EXIT_OK, EXIT_SOME_FAILED
from .exit_codes import usage_error as _usage_error
from .face_options import (
    add_face_options,
    detect_device_problem,
    detection_policy_problem,
    face_detector,
    face_options_problem,
)
from .extract_workers import ExtractionInterrupted, _interrupted, _one_torch_thread, _run_all
from .interrupts import StopSignals
from .predict import VIDEO_SUFFIXES

MANIFEST_NAME = "faces.csv"
FAILED_NAME = "faces_failed.csv"  # with --manifest: the rows that failed, with reason and message
# with --manifest, a run stopped by Ctrl-C / SIGTERM: the folders complete then, and the rows failed
# (write_interrupted_lists); the run that finishes writes faces.csv and removes them
INTERRUPTED_NAME = "faces.interrupted.csv"
INTERRUPTED_FAILED_NAME = "faces_failed.interrupted.csv"
# the plan steps (run) that fail a video without extracting it
FAILED_PLANS = ("taken", "stale", "stale_settings", "not_a_file", "low_coverage")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "extract-faces",
        help="write the face crops of every frame of videos once, for training",
        description=(
            "Detect the face on every k-th frame of each video and save every frame's face region into "
            "OUT/<video>/ (PNG frames named by frame index + faces.json with the detections and the face "
            "coverage); training cuts the crops out with the same crop policy as predict. With --manifest, also write "
            f"OUT/{MANIFEST_NAME} listing the frame folders with the videos' labels and splits. "
            "An existing folder is skipped when it holds the same video (size and hash recorded in its faces.json) "
            "made with the same settings; one made from another video, or with other settings (--max-frames, "
            "--format, --margin, ...), fails that video unless --replace-stale. Ctrl-C or SIGTERM stops it: the "
            f"finished folders are kept (with --manifest listed in OUT/{INTERRUPTED_NAME}, not in OUT/{MANIFEST_NAME}) "
            "and the same command run again finishes the rest."
        ),
    )
    parser.add_argument("inputs", nargs="*", metavar="VIDEO_OR_DIR",
                        help="video files, or directories searched recursively for videos")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="CSV/JSON manifest of videos (path,label[,split]) instead of / besides inputs")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT", help="output directory")
    add_face_options(parser, none_means="keep whole frames")
    parser.add_argument("--faces", choices=("all", "largest"), default="all",
                        help="all (default): every face is followed (face tracks, recorded in faces.json; regions "
                             "hold every face) and, for a fake whose manifest row names its source, the swapped face "
                             f"is found by comparing with the source (OUT/{MANIFEST_NAME}: tracks, track_evidence); "
                             "largest: the largest face only, as before face tracks")
    parser.add_argument("--snippet-len", type=int, default=4, metavar="T",
                        help="snippet length of the models that will train on it (default 4, the paper's T)")
    parser.add_argument("--scale", type=float, default=None,
                        help="resize the saved regions by this factor to save disk (default: the video's "
                             "resolution, which keeps training crops identical to predict's)")
    parser.add_argument("--max-frames", type=int, default=None, help="only the first N frames of each video")
    parser.add_argument("--format", choices=("png", "bmp", "jpg"), default="png",
                        help="image format: png (default, lossless), bmp (lossless, uncompressed: about 2.8x the disk, "
                             "the extraction about 10%% faster, docs/video.md), jpg (quality 95, adds its own "
                             "compression traces)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="videos processed at once, one process each (default: the number of CPUs; under "
                             "torchrun, each rank's share of the node's CPUs: CPUs / LOCAL_WORLD_SIZE)")
    parser.add_argument("--pipeline", choices=("auto", "on", "off"), default="auto",
                        help="detect and write each video's faces in two threads beside its decoding: the same files, "
                             "less wall time where cores would idle. auto (default): when the CPUs number at least "
                             "twice the videos extracted at once (one video on 2 CPUs, say; with --workers covering "
                             "the CPUs they are busy anyway)")
    parser.add_argument("--overwrite", action="store_true", help=f"replace an existing OUT/{MANIFEST_NAME}")
    parser.add_argument("--replace-stale", action="store_true",
                        help="re-extract a video whose existing output folder holds another video (or an older "
                             "version of it) or was made with other settings than asked (--max-frames, --format, "
                             "--margin, --detect-every, --face-detector, --scale, --snippet-len, --faces), replacing "
                             "that folder once the new one is complete")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def _jobs(args: argparse.Namespace) -> list[tuple[Path, str, Any]]:
    """``(video, output folder name, manifest entry or None)`` for every input video; names by
    :func:`~dynsnip.data.faces.folder_source.output_folder_name`."""
    from dynsnip.data.faces.folder_source import output_folder_name
    from dynsnip.data.manifest import read_manifest

    jobs: list[tuple[Path, str, Any]] = []
    for item in args.inputs:
        path = Path(item)
        if path.is_dir():
            for video in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
                jobs.append((video, output_folder_name(video.relative_to(path)), None))
        else:
            jobs.append((path, output_folder_name(path.name), None))
    if args.manifest is not None:
        root = args.manifest.parent.resolve()
        entries = read_manifest(args.manifest)
        outside = [e.path.resolve() for e in entries if not e.path.resolve().is_relative_to(root)]
        # a video outside the manifest's folder is named by its file name; where two of them share one (FF++'s
        # Deepfakes/.../000_003.mp4 and Face2Face/.../000_003.mp4, a manifest written beside the dataset), by its
        # path below their common folder instead, so that they do not claim one output folder
        shared = {n for n, count in Counter(p.name for p in outside).items() if count > 1}
        common = Path(os.path.commonpath(outside)) if shared else None
        for entry in entries:
            resolved = entry.path.resolve()
            if resolved.is_relative_to(root):
                name = output_folder_name(resolved.relative_to(root))
            elif common is not None and resolved.name in shared:
                name = output_folder_name(resolved.relative_to(common))
            else:
                name = output_folder_name(entry.path.name)
            jobs.append((entry.path, name, entry))
    return jobs


def deduplicated(jobs: list[tuple[Path, str, Any]]) -> tuple[list[tuple[Path, str, Any]], list[str]]:
    """Each video of ``jobs`` once, and a note for each video given more than once.

    A video is its resolved path: a file given twice, as itself and inside a folder also given, or
    through a link, is extracted once (two jobs of one video would race for one folder, or fail
    the second as its folder's other claimant). The job kept is the first, or the manifest row's
    when one is (its label goes into the output manifest). Two manifest rows are both kept:
    :func:`~dynsnip.data.manifest.read_manifest` refuses a path listed twice, and two links to one
    file stay two entries on purpose (:mod:`dynsnip.data.manifest`; their folders differ by name)."""
    kept: list[tuple[Path, str, Any] | None] = []
    first: dict[Path, int] = {}  # resolved video -> its kept job (the one without a manifest row, if any)
    also: dict[int, list[Path]] = {}  # kept job -> the other spellings of its video dropped
    for job in jobs:
        video, _, entry = job
        key = video.resolve()
        n = first.get(key)
        if n is None or (kept[n][2] is not None and entry is not None):
            first.setdefault(key, len(kept))
            kept.append(job)
            continue
        if kept[n][2] is None and entry is not None:  # the manifest row's job replaces the plain input
            also.setdefault(len(kept), []).extend([kept[n][0], *also.pop(n, [])])
            kept[n] = None
            first[key] = len(kept)
            kept.append(job)
        else:
            also.setdefault(n, []).append(video)
    notes = []
    for n, others in sorted(also.items()):
        video, name, entry = kept[n]
        spellings = ", ".join(dict.fromkeys(str(v) for v in others))
        notes.append(f"{video} is given {len(others) + 1} times (also as {spellings}); extracting it once, into "
                     f"OUT/{name}" + (", with its manifest row" if entry is not None else ""))
    return [job for job in kept if job is not None], notes


def folder_coverage(folder: Path) -> float | None:
    """The ``face_coverage`` of an extracted folder's ``faces.json`` (None: not recorded)."""
    import json

    try:
        return float(json.loads((Path(folder) / "faces.json").read_text())["face_coverage"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def append_columns(manifest: Path, names: list[str], values: list[list[str]]) -> None:
    """Append the columns ``names`` to the CSV manifest just written, ``values[i]`` to its row ``i``.
    Readers of manifests ignore columns they do not know."""
    import csv

    with manifest.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    rows[0] += names
    for row, cells in zip(rows[1:], values):
        row += cells
    with manifest.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def add_coverage_column(manifest: Path, coverages: list[float | None]) -> None:
    """Append a ``face_coverage`` column to the CSV manifest just written (one value per row;
    empty where unknown)."""
    append_columns(manifest, ["face_coverage"], [["" if c is None else f"{c:.4f}"] for c in coverages])


def folder_tracks(folder: Path) -> tuple[str, str]:
    """The ``tracks`` and ``track_evidence`` cells of an extracted folder's manifest row: its sample
    tracks (``0;2``: every kept face track, or a fake's manipulated ones) and, for a fake
    compared with its source, each track's difference from it (``0:0.8;1:14.2``); empty for a
    folder written without face tracks."""
    import json

    try:
        samples = json.loads((Path(folder) / "faces.json").read_text()).get("samples")
    except (OSError, ValueError, AttributeError):
        return "", ""
    if not isinstance(samples, dict):
        return "", ""
    evidence = samples.get("evidence") or {}
    return (";".join(str(t) for t in samples["tracks"]),
            ";".join(f"{track}:{difference:g}" for track, difference in evidence.items()))


def add_track_columns(manifest: Path, folders: list[Path]) -> None:
    """Append ``tracks`` and ``track_evidence`` columns (:func:`folder_tracks`) to the CSV manifest
    just written (one row per folder): which faces of each video are training samples, and why."""
    append_columns(manifest, ["tracks", "track_evidence"], [list(folder_tracks(folder)) for folder in folders])


def coverage_summary(coverages: list[tuple[Path, float | None]], low: int, minimum: float) -> str:
    """``face coverage: mean 0.93, lowest 0.50 (a.mp4); 1 video(s) below 0.5 failed`` (or "")."""
    known = [(c, v) for v, c in coverages if c is not None]
    parts = []
    if known:
        lowest, video = min(known, key=lambda item: item[0])
        mean = sum(c for c, _ in known) / len(known)
        parts.append(f"face coverage of {len(known)} video(s): mean {mean:.2f}, lowest {lowest:.2f} ({video})")
    if low:
        parts.append(f"{low} video(s) below --min-face-coverage {minimum:g} failed (low_face_coverage)")
    return "; ".join(parts)


def _source_of(entry: Any) -> dict[str, Any]:
    """``{"boxes_from": the source video}`` for a fake whose manifest row names its ``source`` (the
    real video), else ``{}``."""
    from dynsnip.data.datasets import entry_source

    source = None if entry is None else entry_source(entry)
    return {} if source is None else {"boxes_from": source}


def _boxes_from(entry: Any, args: argparse.Namespace, claimed: dict[str, Path], kept: set[Path]) -> dict[str, Any]:
    """``{"boxes_from": ...}`` for a fake whose manifest row names its ``source`` (the real video):
    the source's output folder when it is already extracted and kept as it is (``kept``: it holds that
    video and was made with the settings asked), else the source video itself."""
    source = _source_of(entry).get("boxes_from")
    if source is None:
        return {}
    names = {video.resolve(): name for name, video in claimed.items()}
    folder = args.out / names[source.resolve()] if source.resolve() in names else None
    return {"boxes_from": folder if folder is not None and folder in kept else source}


def stale_settings_message(out_dir: Path, differences: list[Any]) -> str:
    """Why a folder that holds the video is not the one asked for: the settings that differ, by option."""
    shown = "; ".join(f"{SETTING_OPTIONS.get(d.setting, d.setting)} asked {_value(d.asked)}, recorded "
                      f"{_value(d.recorded)}" for d in differences)
    return f"{out_dir} holds this video but was made with other settings ({shown})"


def _value(value: Any) -> str:
    if isinstance(value, float):  # short, unless that hides the difference (1.30000001 is not 1.3)
        return f"{value:g}" if float(f"{value:g}") == value else repr(value)
    return "none" if value is None else str(value)


# the option of each setting compared (settings_differences), as the messages name it
SETTING_OPTIONS = {"face_detector": "--face-detector (with --detect-size, --detect-upsample, --min-face)",
                   "image_format": "--format", "max_frames": "--max-frames", "scale": "--scale",
                   "margin": "--margin", "detect_every": "--detect-every", "snippet_len": "--snippet-len",
                   "faces": "--faces", "boxes_from": "the source of the fake (its manifest row's source column)",
                   "crop_policy": "the faces.json format (crop policy; written by another version)"}


def _run_sharded(jobs: list[tuple[Path, Path, dict[str, Any]]], workers: int, ranks: Any) -> list[tuple[bool, str]]:
    """Under ``torchrun``: rank r extracts jobs r, r + world, ... (its own video folders), printing each
    outcome to stderr as it comes (``rank r/N: OK ...``: the report waits for the slowest rank), then
    every rank gets all outcomes in the order of ``jobs`` (rank 0 prints them and merges the
    manifest)."""
    from dynsnip.engine.distributed import gather_shards, wait_for_ranks

    share = jobs[ranks.rank::ranks.world_size]
    mine = []

    def show(ok: bool, line: str) -> None:
        print(f"dynsnip extract-faces: rank {ranks.rank}/{ranks.world_size}: {'OK' if ok else 'FAILED'} {line}",
              file=sys.stderr, flush=True)
        mine.append((ok, line))

    try:
        for ok, line in _run_all(share, workers):
            show(ok, line)
    except KeyboardInterrupt as err:  # Ctrl-C / SIGTERM: the videos finished meanwhile are shown too
        for _, (ok, line) in sorted(getattr(err, "finished", {}).items()):
            show(ok, line)
        raise RankInterrupted(len(mine), len(share)) from None
    try:
        wait_for_ranks()  # a rank done first waits here, where Ctrl-C still reaches it
    except KeyboardInterrupt:
        raise RankInterrupted(len(mine), len(share)) from None
    return gather_shards(mine, [str(video) for video, _, _ in jobs], ranks)


class RankInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped this ``torchrun`` rank's share (:func:`_run_sharded`): ``finished`` of its
    ``total`` videos were extracted (or failed), each shown on stderr as it finished."""

    def __init__(self, finished: int, total: int) -> None:
        super().__init__(f"interrupted after {finished} of {total} videos")
        self.finished, self.total = finished, total


def file_state(path: Path) -> tuple[int, int, int] | None:
    """``(inode, mtime ns, size)`` of ``path``, or None when it does not exist: enough to tell whether
    another process wrote it since."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_ino, found.st_mtime_ns, found.st_size


def own_manifest_names(out: Path, taken: Path) -> tuple[Path, Path]:
    """``OUT/faces.<time>-<pid>.csv`` and its ``faces_failed.<time>-<pid>.csv``: where this run writes its
    manifest when ``taken`` (``OUT/faces.csv``) was written by another run since this one started (several
    ``--manifest`` shards into one ``OUT``): never over that run's rows. Says so in one line."""
    import time

    stamp = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    manifest, failed = out / f"{Path(MANIFEST_NAME).stem}.{stamp}.csv", out / f"{Path(FAILED_NAME).stem}.{stamp}.csv"
    print(f"{taken} was written by another run while this one worked (another shard into the same --out?): this "
          f"run's rows go to {manifest.name} (and its failed rows, if any, to {failed.name}); combine them with "
          f"{taken.name} as docs/video.md shows (Several manifest shards into one folder)")
    return manifest, failed


def write_failed_rows(rows: list[tuple[Any, str, str]], path: Path) -> None:
    """``OUT/faces_failed.csv``: the failed manifest rows as a manifest (the videos' paths relative to
    ``OUT`` or absolute, labels, splits, ...: :func:`~dynsnip.data.manifest.write_manifest`) with
    their ``reason`` and ``message`` columns."""
    from dynsnip.data.manifest import write_manifest

    write_manifest([entry for entry, _, _ in rows], path, overwrite=True)  # --overwrite was checked up front
    append_columns(path, ["reason", "message"], [[reason, message] for _, reason, message in rows])


def pipeline_choice(choice: str, workers: int, jobs: int, ranks: Any = None) -> tuple[bool, int]:
    """Whether each video's extraction is pipelined (``--pipeline``; ``auto``: when every extraction
    running at once on this machine has 2 CPUs, :func:`~dynsnip.data.faces.extraction.pipeline_fits`),
    and how many processes of this one extract at once."""
    from dynsnip.data.faces.extraction import pipeline_fits

    if ranks is not None:  # torchrun: this rank's share of the videos, beside the other ranks of this node
        jobs = len(range(ranks.rank, jobs, ranks.world_size))
    processes = min(workers, jobs) if workers > 1 and jobs > 1 else 1
    if choice != "auto":
        return choice == "on", processes
    on_this_machine = processes * (int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if ranks is not None else 1)
    return pipeline_fits(on_this_machine), processes


def out_folder_problem(out: Path) -> str | None:
    """``--out`` is (or lies under) something that is not a folder, or cannot be written; None if fine."""
    if out.exists() and not out.is_dir():
        return (f"--out {out} is an existing file, not a folder; expected a folder for the face crops (new or "
                "existing): choose another --out")
    folder = next((f for f in out.parents if f.exists()), None)
    if not out.exists() and folder is not None and not folder.is_dir():
        return f"--out {out}: {folder} is a file, not a folder; expected a folder for the face crops: choose another --out"
    writable = out if out.exists() else folder
    if writable is not None and writable.is_dir() and not os.access(writable, os.W_OK | os.X_OK):
        return f"--out {out}: {writable} is not writable; expected a folder the face crops can be written to"
    return None


def run(args: argparse.Namespace) -> int:
    def usage_error(message: str) -> int:
        return _usage_error("extract-faces", message)

    if not args.inputs and args.manifest is None:
        return usage_error("give videos / directories, or --manifest")
    if problem := out_folder_problem(args.out):
        return usage_error(problem)
    manifest_out = args.out / MANIFEST_NAME
    failed_out = args.out / FAILED_NAME
    for listed in (manifest_out, failed_out):
        if args.manifest is not None and listed.exists() and not args.overwrite:
            return usage_error(f"{listed} exists; refusing to overwrite it (pass --overwrite to replace it)")
    manifest_found = file_state(manifest_out)  # what --overwrite may replace: not one another run writes meanwhile
    if problem := face_options_problem(args):
        return usage_error(problem)
    if args.workers is None:  # one process per CPU; under torchrun, per CPU of this rank's share of the node
        args.workers = cpus_per_process()
    if problem := detection_policy_problem(args) or detect_device_problem(args, args.workers == 1):
        return usage_error(problem)
    if args.scale is not None and not 0 < args.scale <= 4:
        return usage_error(f"--scale must be a factor in (0, 4], got {args.scale}")
    if args.workers < 1:
        return usage_error(f"--workers must be at least 1, got {args.workers}")
    if args.max_frames is not None and args.max_frames < 1:
        return usage_error(f"--max-frames must be a positive number of frames (leave it out for all), "
                           f"got {args.max_frames}")
    if args.snippet_len < 1:
        return usage_error(f"--snippet-len must be a positive number of frames (the T of the models), "
                           f"got {args.snippet_len}")
    try:
        import dynsnip.data.faces.extraction  # noqa: F401  (fails here without the video extra)
        from dynsnip.data._optional import require_video_decoding

        require_video_decoding()
        jobs, notes = deduplicated(_jobs(args))
        detector = face_detector(args)
    except (ImportError, ValueError, OSError) as err:
        return usage_error(str(err))
    if not jobs:
        return usage_error("no videos found")
    for note in notes:
        print(f"dynsnip extract-faces: note: {note}", file=sys.stderr)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # e.g. a file appeared there meanwhile
        return usage_error(f"--out {args.out}: cannot create the output folder ({err.strerror or err}); "
                           "expected a folder for the face crops (new or existing)")

    options = dict(face_detector=detector, margin=args.margin, detect_every=args.detect_every,
                   snippet_len=args.snippet_len, scale=args.scale, max_frames=args.max_frames,
                   image_format=args.format, min_face_coverage=args.min_face_coverage, faces=args.faces)
    with StopSignals() as signals:  # SIGTERM (a scheduler's stop) as Ctrl-C: what was finished is reported and listed
        try:
            return _extract_planned(args, jobs, options, manifest_found, signals)
        except KeyboardInterrupt:  # while planning, before any video was extracted (or a third signal)
            signals.shield()
            print(f"dynsnip extract-faces: interrupted ({signals.name}); run the same command again to finish (the "
                  "folders already complete are skipped)", file=sys.stderr)
            return signals.exit_code


EXTRACTING = ("extract", "replace")  # the plan steps (_extract_planned) that extract their video


def _extract_planned(args: argparse.Namespace, jobs: list[tuple[Path, str, Any]], options: dict[str, Any],
                     manifest_found: tuple[int, int, int] | None, signals: StopSignals) -> int:
    """Decide what each video needs (what OUT holds already), extract those that need it, report every
    video and write the manifests; the exit code. Ctrl-C or SIGTERM (``signals``) stops the extraction at
    once (:func:`~dynsnip.cli.extract_workers._run_all`): the videos finished are reported and listed, as the others would have been, in
    :data:`INTERRUPTED_NAME` (:func:`_report_stopped`)."""
    from dynsnip.engine.evaluate import progress_bar
    from dynsnip.scoring import VIDEO_BAR

    # decide in this process what each video needs, so that the workers only extract
    from dynsnip.data.faces.extraction import folder_coverage_problem, settings_differences
    from dynsnip.data.faces.folder_source import folder_source_problem
    from dynsnip.data.manifest import video_file_problem

    claimed: dict[str, Path] = {}
    # video, out_dir, entry, the video that already claimed out_dir (or None), what to do, why:
    # "extract" (no folder yet), "skip" (the folder holds this video, made with the settings asked), "replace" /
    # "stale" / "stale_settings" (it holds another video / this one made with other settings, and --replace-stale
    # was / was not given), "taken" (another input has the same folder name), "not_a_file" (the input names a
    # directory, a FIFO...: never opened), "low_coverage" (the folder holds this video, its face coverage below
    # the one asked)
    plan: list[tuple[Path, Path, Any, Path | None, str, str | None]] = []
    for video, name, entry in jobs:
        owner, out_dir, problem = claimed.get(name), args.out / name, None
        kind = video_file_problem(video)
        if kind is not None and os.path.exists(video):  # a directory, a FIFO...: said before anything opens it
            action, problem = "not_a_file", kind  # (a video missing may be one deleted since: its folder is kept)
        elif owner is not None:
            action = "taken"
        elif not out_dir.exists():
            action = "extract"
        elif (problem := folder_source_problem(out_dir, video)) is None:
            try:
                differences = settings_differences(out_dir, video, {**options, **_source_of(entry)})
                problem = stale_settings_message(out_dir, differences) if differences else None
            except (OSError, ValueError, TypeError, KeyError) as err:  # a faces.json with values of other types
                problem = (f"{out_dir} holds this video but its faces.json does not tell which settings made it "
                           f"({err})")
            if problem is not None:
                action = "replace" if args.replace_stale else "stale_settings"
            elif (problem := folder_coverage_problem(out_dir, args.min_face_coverage)) is not None:
                action = "low_coverage"
            else:
                action = "skip"
        else:
            action = "replace" if args.replace_stale else "stale"
        plan.append((video, out_dir, entry, owner, action, problem))
        if action != "not_a_file":
            claimed.setdefault(name, video)
    kept = {out_dir for _, out_dir, _, _, action, _ in plan if action == "skip"}
    from dynsnip.engine.distributed import join_torchrun

    try:
        ranks = join_torchrun("cpu")  # extraction runs on CPUs (gloo)
    except ValueError as err:  # a bad DYNSNIP_TORCHRUN_TIMEOUT_S
        return _usage_error("extract-faces", str(err))
    if ranks is not None:  # torchrun: every rank works from rank 0's view of what exists
        from dynsnip.engine.distributed import rank_zero_view

        plan = rank_zero_view(plan)
    extract_jobs = [(video, out_dir, {**options, **_boxes_from(entry, args, claimed, kept),
                                      **({"replace": True} if action == "replace" else {})})
                    for video, out_dir, entry, _, action, _ in plan if action in EXTRACTING]
    pipeline, processes = pipeline_choice(args.pipeline, args.workers, len(extract_jobs), ranks)
    extract_jobs = [(video, out_dir, {**job_options, "pipeline": pipeline}) for video, out_dir, job_options in extract_jobs]
    if pipeline and processes == 1:  # extracted in this process: its detector thread shares the cores with decoding
        _one_torch_thread()  # and writing, torch's own threads would only contend with them
    if ranks is None:
        outcomes: Iterator[tuple[bool, str]] = _run_all(extract_jobs, args.workers)
    else:
        try:
            outcomes = iter(_run_sharded(extract_jobs, args.workers, ranks))
        except RankInterrupted as stop:
            signals.shield()
            return _rank_stopped(stop, ranks, signals)
        if not ranks.is_main:  # rank 0 reports and writes the manifest
            from dynsnip.engine.distributed import cleanup_distributed

            failed = any(not ok for ok, _ in outcomes) or any(step[4] in FAILED_PLANS for step in plan)
            cleanup_distributed()
            return EXIT_SOME_FAILED if failed else EXIT_OK

    report = _Report()
    job_of = {n: j for j, n in enumerate(n for n, step in enumerate(plan) if step[4] in EXTRACTING)}
    bar = progress_bar(plan, len(plan), "videos", not args.no_progress, **VIDEO_BAR)
    reported = consumed = 0  # plan steps reported, outcomes taken
    taken: tuple[int, tuple[bool, str]] | None = None  # the last outcome taken, with its step
    stop: ExtractionInterrupted | None = None
    try:
        for n, step in enumerate(bar):
            outcome = None
            if step[4] in EXTRACTING:
                outcome = next(outcomes)
                consumed += 1
                taken = (n, outcome)
            report.step(n, step, outcome)
            reported = n + 1
    except KeyboardInterrupt as err:  # Ctrl-C / SIGTERM: the workers stop; report what finished
        signals.shield()
        stop = _interrupted(err, outcomes, consumed)
        getattr(bar, "close", lambda: None)()
        if taken is not None and taken[0] == reported:  # taken, not reported yet
            stop.finished.setdefault(job_of[reported], taken[1])
        for n in range(reported, len(plan)):
            step = plan[n]
            if step[4] not in EXTRACTING:  # what OUT held already, or a failure found without extracting
                report.step(n, step, None)
            elif job_of[n] in stop.finished:
                report.step(n, step, stop.finished[job_of[n]])
            else:
                report.unfinished(step[0], job_of[n] in stop.stopped, signals.name)
    signals.shield()  # the work is done: a signal must not cut the report and the manifests
    if stop is not None:
        return _report_stopped(args, report, len(plan), signals)
    written, failed_rows = report.rows()
    failures, stale, low_coverage = report.failures()
    manifest_out, failed_out = args.out / MANIFEST_NAME, args.out / FAILED_NAME
    if args.manifest is not None and file_state(manifest_out) != manifest_found:
        manifest_out, failed_out = own_manifest_names(args.out, manifest_out)
    if args.manifest is not None:
        from dynsnip.data.manifest import write_manifest

        if not written and manifest_out.exists():
            # every video failed (all stale, say): a header-only file over a good faces.csv would lose its rows.
            # faces_failed.csv goes with the faces.csv it was written beside: this run's list (every video)
            # next to the kept rows would count their videos as failed as well as scored (evaluate, benchmark)
            print(f"kept {manifest_out} as it was: no video of this run gave a folder, and an empty manifest is "
                  "never written over an existing one (even with --overwrite)")
            if failed_out.exists():
                print(f"kept {failed_out} as it was too: it lists the failures of the run that wrote "
                      f"{manifest_out.name}; this run's {len(failed_rows)} failed row(s) are only printed above")
            else:
                print(f"wrote no {failed_out}: the run that wrote the kept {manifest_out.name} failed nothing; "
                      f"this run's {len(failed_rows)} failed row(s) are only printed above")
        else:
            try:
                write_manifest(written, manifest_out, overwrite=args.overwrite)
            except FileExistsError:  # another run wrote it since the look above
                manifest_out, failed_out = own_manifest_names(args.out, manifest_out)
                write_manifest(written, manifest_out)
            add_coverage_column(manifest_out, [folder_coverage(e.path) for e in written])
            if args.faces == "all":
                add_track_columns(manifest_out, [e.path for e in written])
            print(f"wrote {manifest_out} ({len(written)} entries)")
            if failed_rows:
                write_failed_rows(failed_rows, failed_out)
                print(f"wrote {failed_out} ({len(failed_rows)} failed row(s), with reason and message)")
            else:
                failed_out.unlink(missing_ok=True)  # an earlier run's list (replaced with --overwrite): nothing failed
            drop_interrupted_lists(args.out, manifest_out, [e.path for e in written])
    print(f"{len(jobs)} video(s): {len(jobs) - failures} done, {failures} failed"
          + (f" ({stale} of them with a stale folder, from another video or made with other settings: pass "
             "--replace-stale to extract them again)" if stale else ""))
    if line := coverage_summary(report.coverage_list(), low_coverage, args.min_face_coverage):
        print(line)
    if ranks is not None:
        from dynsnip.engine.distributed import cleanup_distributed

        cleanup_distributed()
    return EXIT_SOME_FAILED if failures else EXIT_OK


class _Report:
    """What ``extract-faces`` reports of each step of its plan (a video): the line printed, its manifest row
    (the folder's, or the failed row's) and its face coverage. Kept by step, so that a step reported twice
    (a stop in the middle of reporting it reports it again) counts once."""

    def __init__(self) -> None:
        self.written: dict[int, Any] = {}  # step -> the ManifestEntry of its folder (a manifest row's video)
        self.failed_rows: dict[int, tuple[Any, str, str]] = {}  # step -> (manifest entry, reason, message)
        self.coverages: dict[int, tuple[Path, float | None]] = {}  # step -> (video, its folder's face coverage)
        self.failed: dict[int, str] = {}  # step -> "stale", "low_coverage" or "other"
        self.stopped: list[Path] = []  # videos interrupted while being extracted (a stop)
        self.not_started: list[Path] = []  # videos a stop left unextracted before they started

    def step(self, n: int, step: tuple[Path, Path, Any, Path | None, str, str | None],
             outcome: tuple[bool, str] | None) -> None:
        """Report plan step ``n`` (``outcome``: its extraction's, for the steps that extract)."""
        from dynsnip.data.manifest import ManifestEntry

        video, out_dir, entry, owner, action, problem = step
        if entry is not None and action in FAILED_PLANS:
            reason = {"taken": "output_taken", "not_a_file": "not_found", "low_coverage": "low_face_coverage"}.get(
                action, "stale_folder")
            self.failed_rows[n] = (entry, reason, str(problem or f"output folder {out_dir} is already used by {owner}"))
        if action == "taken":
            print(f"FAILED   {video}: output folder {out_dir} is already used by {owner}; expected one folder per "
                  "video: rename one of them, or give their folder as the input (names are then relative paths)")
            self.failed[n] = "other"
            return
        if action == "stale_settings":
            print(f"FAILED   {video}: stale_folder: {problem}; expected a folder made with the settings asked: "
                  "pass --replace-stale to extract it again with them (the folder is replaced once the new one is "
                  "complete), or ask for the recorded settings, or choose another --out")
        elif action == "stale":
            print(f"FAILED   {video}: {problem}; expected the folder of this video: pass --replace-stale to extract "
                  "it there instead, or choose another --out")
        if action in ("stale", "stale_settings"):
            self.failed[n] = "stale"
            return
        if action == "not_a_file":
            print(f"FAILED   {video}: not_found: {problem}")
            self.failed[n] = "other"
            return
        if action == "low_coverage":
            print(f"FAILED   {video}: low_face_coverage: {problem}; expected at least that coverage: lower "
                  "--min-face-coverage to keep it, or leave this video out (kept as it is, not listed)")
            self.failed[n] = "low_coverage"
            return
        if action == "skip":
            print(f"SKIPPED  {video}: {out_dir} exists and holds this video, made with the settings asked "
                  "(kept as it is)")
        else:
            ok, line = outcome
            print(f"{'OK' if ok else 'FAILED':<8} {line}", flush=True)
            if ok and action == "replace":
                print(f"{'':<8} replaced the stale folder (--replace-stale): {problem}")
            if not ok:
                self.failed[n] = "low_coverage" if ": low_face_coverage: " in line else "other"
                if entry is not None:  # the line is "<video>: <reason>: <message>" (extract_workers._extract)
                    reason, _, message = line[len(f"{video}: "):].partition(": ")
                    self.failed_rows[n] = (entry, reason, message)
                return
        self.coverages[n] = (video, folder_coverage(out_dir))
        if entry is not None:
            self.written[n] = ManifestEntry(out_dir, entry.label, entry.split, entry.method, dataset=entry.dataset)

    def unfinished(self, video: Path, stopped: bool, signal_name: str) -> None:
        """A video a stop left unextracted: interrupted while being extracted (``stopped``: said in a line),
        or not started (counted, :func:`_report_stopped`)."""
        if stopped:
            print(f"STOPPED  {video}: interrupted ({signal_name}) while being extracted; its unfinished folder was "
                  "removed")
            self.stopped.append(video)
        else:
            self.not_started.append(video)

    def rows(self) -> tuple[list[Any], list[tuple[Any, str, str]]]:
        """The manifest entries of the folders and the failed rows, in the order of the plan."""
        return ([self.written[n] for n in sorted(self.written)],
                [self.failed_rows[n] for n in sorted(self.failed_rows)])

    def failures(self) -> tuple[int, int, int]:
        """Videos failed, of them with a stale folder, and with too low a face coverage."""
        kinds = list(self.failed.values())
        return len(kinds), kinds.count("stale"), kinds.count("low_coverage")

    def coverage_list(self) -> list[tuple[Path, float | None]]:
        return [self.coverages[n] for n in sorted(self.coverages)]


def _report_stopped(args: argparse.Namespace, report: _Report, total: int, signals: StopSignals) -> int:
    """After Ctrl-C / SIGTERM: say what was not extracted, list the folders complete and the rows failed in
    :data:`INTERRUPTED_NAME` and :data:`INTERRUPTED_FAILED_NAME` (with ``--manifest``), the summary, and how
    to finish; the exit code, 130 or 143."""
    if report.not_started:
        shown = ", ".join(map(str, report.not_started[:5]))
        more = len(report.not_started) - 5
        print(f"NOT DONE {len(report.not_started)} video(s) not started: {shown}"
              + (f", and {more} more" if more > 0 else ""))
    written, failed_rows = report.rows()
    failures, _, low_coverage = report.failures()
    unfinished = len(report.stopped) + len(report.not_started)
    listed = write_interrupted_lists(args.out, written, failed_rows, args.faces) if args.manifest is not None else None
    done = total - failures - unfinished
    print(f"{total} video(s): {done} done, {failures} failed, {unfinished} not extracted (interrupted by "
          f"{signals.name})")
    if line := coverage_summary(report.coverage_list(), low_coverage, args.min_face_coverage):
        print(line)
    finish = ("run the same command again to finish: it skips the folders already complete, extracts the others"
              + (f" and writes {args.out / MANIFEST_NAME}" if args.manifest is not None else ""))
    print(f"dynsnip extract-faces: interrupted ({signals.name}): {done} of the {total} video(s) done and {failures} "
          f"failed before it (reported above{', listed in ' + str(listed) if listed is not None else ''}), "
          f"{unfinished} not extracted ({len(report.stopped)} stopped while being extracted, their unfinished folders "
          f"removed; {len(report.not_started)} not started); {finish}", file=sys.stderr)
    return signals.exit_code


def _rank_stopped(stop: RankInterrupted, ranks: Any, signals: StopSignals) -> int:
    """A ``torchrun`` rank stopped by Ctrl-C / SIGTERM: one line on what it finished (each video was shown
    as it finished) and how to finish; no manifest, whose rows are the ranks' together (the other ranks
    stop each on its own). The exit code, 130 or 143."""
    from dynsnip.engine.distributed import cleanup_distributed

    print(f"dynsnip extract-faces: rank {ranks.rank} of {ranks.world_size} interrupted ({signals.name}): "
          f"{stop.finished} of its {stop.total} video(s) finished (each shown above; their folders are complete); "
          f"no {MANIFEST_NAME} is written by a stopped torchrun run; run the same command again to finish: it skips "
          f"the folders already complete and writes {MANIFEST_NAME}", file=sys.stderr)
    cleanup_distributed()
    return signals.exit_code


def write_interrupted_lists(out: Path, written: list[Any], failed_rows: list[tuple[Any, str, str]],
                            faces: str) -> Path | None:
    """``OUT/faces.interrupted.csv`` (:data:`INTERRUPTED_NAME`): the manifest of the folders complete when a
    run was stopped (the rows of ``faces.csv``, face coverage and tracks included), and beside it
    ``faces_failed.interrupted.csv`` with the rows failed meanwhile (or none). Not ``faces.csv``: a partial
    manifest there would be taken for the whole data set (``train`` reads any manifest it is given, and
    nothing in a CSV says it is partial), and an earlier run's complete ``faces.csv`` is never replaced by
    a partial one; the run that finishes writes ``faces.csv`` and removes these
    (:func:`drop_interrupted_lists`). An interrupted run's own files: the next stopped run replaces them.
    Returns the list written (None: nothing was done or failed, or it could not be written: said)."""
    listing, failed_list = out / INTERRUPTED_NAME, out / INTERRUPTED_FAILED_NAME
    if not written and not failed_rows:
        print(f"wrote no {listing}: no video of the manifest was done or failed before the stop")
        return None
    from dynsnip.data.manifest import write_manifest

    try:
        write_manifest(written, listing, overwrite=True)
        add_coverage_column(listing, [folder_coverage(e.path) for e in written])
        if faces == "all":
            add_track_columns(listing, [e.path for e in written])
        print(f"wrote {listing} ({len(written)} entries: the folders complete when the run stopped; "
              f"{MANIFEST_NAME} is written by the run that finishes the others)")
        if failed_rows:
            write_failed_rows(failed_rows, failed_list)
            print(f"wrote {failed_list} ({len(failed_rows)} failed row(s), with reason and message)")
        else:
            failed_list.unlink(missing_ok=True)  # an earlier stopped run's
    except OSError as err:
        print(f"dynsnip extract-faces: warning: cannot write {listing} or {failed_list.name} ({err.strerror or err}); "
              "the videos done and failed are only printed above", file=sys.stderr)
        return None
    return listing


def drop_interrupted_lists(out: Path, manifest: Path, folders: list[Path]) -> None:
    """Remove :data:`INTERRUPTED_NAME` and :data:`INTERRUPTED_FAILED_NAME`, the lists of an interrupted run,
    once ``manifest`` (the complete one just written, of ``folders``) lists every folder they list; kept,
    and said, where they list others (an interrupted run of another manifest into the same OUT)."""
    import csv

    listing = out / INTERRUPTED_NAME
    if not listing.exists():
        return
    try:
        with listing.open(newline="", encoding="utf-8") as f:
            listed = {(out / row["path"]).resolve() for row in csv.DictReader(f) if row.get("path")}
    except (OSError, csv.Error, KeyError, UnicodeDecodeError):
        listed = None
    if listed is None or not listed <= {Path(folder).resolve() for folder in folders}:
        print(f"kept {listing}: it lists folders that {manifest.name} does not (the interrupted run of another "
              "manifest into this folder?)")
        return
    listing.unlink(missing_ok=True)
    failed_list = out / INTERRUPTED_FAILED_NAME
    also = f" (and {failed_list.name})" if failed_list.exists() else ""
    failed_list.unlink(missing_ok=True)
    print(f"removed {listing}{also}: the list of an interrupted run, whose folders {manifest.name} now lists")
