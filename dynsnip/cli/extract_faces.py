"""``dynsnip extract-faces``: save the faces of every frame once, for training.

Each video becomes a folder ``OUT/<name>/`` of face context regions (``000000.png`` ... named
by frame index; the crop of a snippet is cut from them at training time by the same crop
policy as ``predict``) plus ``faces.json`` (see :mod:`dynsnip.data.faces.extraction`). With ``--manifest`` (a
CSV/JSON of videos with labels and splits) the command also writes ``OUT/faces.csv``, the
same manifest pointing at the frame folders, ready for
:class:`dynsnip.data.FaceFramesDataset`.

Nothing is overwritten: a video whose folder exists is skipped (so an interrupted run can
simply be started again), and an existing ``OUT/faces.csv`` is replaced only with
``--overwrite``. Under ``torchrun --nnodes N --nproc_per_node M -m dynsnip extract-faces
...`` the videos are sharded across the ranks (rank r takes every world-size-th video still
to do; each writes its own video folders), and rank 0 prints the report and writes the one
``faces.csv``; ``OUT`` must be a folder every rank can reach. A video that cannot be read or shows no face is reported and the others
go on; exit code 1 if any failed, 2 for usage errors.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Iterator

from .exit_codes import EXIT_OK, EXIT_SOME_FAILED
from .exit_codes import usage_error as _usage_error
from .face_options import (
    add_face_options,
    detect_device_problem,
    detection_policy_problem,
    face_detector,
    face_options_problem,
)
from .predict import VIDEO_SUFFIXES

MANIFEST_NAME = "faces.csv"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "extract-faces",
        help="write the face crops of every frame of videos once, for training",
        description=(
            "Detect the face on every k-th frame of each video and save every frame's face region into "
            "OUT/<video>/ (PNG frames named by frame index + faces.json with the detections and the face "
            "coverage); training cuts the crops out with the same crop policy as predict. With --manifest, also write "
            f"OUT/{MANIFEST_NAME} listing the frame folders with the videos' labels and splits. "
            "Existing folders are skipped, never overwritten."
        ),
    )
    parser.add_argument("inputs", nargs="*", metavar="VIDEO_OR_DIR",
                        help="video files, or directories searched recursively for videos")
    parser.add_argument("--manifest", type=Path, default=None,
                        help="CSV/JSON manifest of videos (path,label[,split]) instead of / besides inputs")
    parser.add_argument("--out", type=Path, required=True, metavar="OUT", help="output directory")
    add_face_options(parser, none_means="keep whole frames")
    parser.add_argument("--snippet-len", type=int, default=4, metavar="T",
                        help="snippet length of the models that will train on it (default 4, the paper's T)")
    parser.add_argument("--scale", type=float, default=None,
                        help="resize the saved regions by this factor to save disk (default: the video's "
                             "resolution, which keeps training crops identical to predict's)")
    parser.add_argument("--max-frames", type=int, default=None, help="only the first N frames of each video")
    parser.add_argument("--format", choices=("png", "bmp", "jpg"), default="png",
                        help="image format: png (default, lossless), bmp (lossless, uncompressed: ~2x the disk, "
                             "written ~3x faster), jpg (quality 95, adds its own compression traces)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="videos processed at once, one process each (default: the number of CPUs)")
    parser.add_argument("--overwrite", action="store_true", help=f"replace an existing OUT/{MANIFEST_NAME}")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


def _jobs(args: argparse.Namespace) -> list[tuple[Path, str, Any]]:
    """``(video, output folder name, manifest entry or None)`` for every input video."""
    from dynsnip.data.manifest import read_manifest

    jobs: list[tuple[Path, str, Any]] = []
    for item in args.inputs:
        path = Path(item)
        if path.is_dir():
            for video in sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES):
                jobs.append((video, video.relative_to(path).with_suffix("").as_posix(), None))
        else:
            jobs.append((path, path.stem, None))
    if args.manifest is not None:
        root = args.manifest.parent.resolve()
        for entry in read_manifest(args.manifest):
            try:
                name = entry.path.resolve().relative_to(root).with_suffix("").as_posix()
            except ValueError:
                name = entry.path.stem
            jobs.append((entry.path, name, entry))
    return jobs


def folder_coverage(folder: Path) -> float | None:
    """The ``face_coverage`` of an extracted folder's ``faces.json`` (None: not recorded)."""
    import json

    try:
        return float(json.loads((Path(folder) / "faces.json").read_text())["face_coverage"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def add_coverage_column(manifest: Path, coverages: list[float | None]) -> None:
    """Append a ``face_coverage`` column to the CSV manifest just written (one value per row;
    empty where unknown). Readers of manifests ignore columns they do not know."""
    import csv

    with manifest.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    rows[0].append("face_coverage")
    for row, coverage in zip(rows[1:], coverages):
        row.append("" if coverage is None else f"{coverage:.4f}")
    with manifest.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


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


def _boxes_from(entry: Any, args: argparse.Namespace, claimed: dict[str, Path]) -> dict[str, Any]:
    """``{"boxes_from": ...}`` for a fake whose manifest row names its ``source`` (the real video):
    the source's output folder when it is already extracted, else the source video itself."""
    from dynsnip.data.datasets import entry_source

    source = None if entry is None else entry_source(entry)
    if source is None:
        return {}
    names = {video.resolve(): name for name, video in claimed.items()}
    folder = args.out / names[source.resolve()] if source.resolve() in names else None
    return {"boxes_from": folder if folder is not None and (folder / "faces.json").is_file() else source}


def _extract(job: tuple[Path, Path, dict[str, Any]]) -> tuple[bool, str]:
    """Extract one video (in a worker process): ``(ok, the line to print after the status)``;
    an error is caught here so that it is reported and the other videos go on."""
    from dynsnip.data.faces.extraction import extract_face_frames

    video, out_dir, options = job
    try:
        result = extract_face_frames(video, out_dir, **options)
    except Exception as err:
        reason = getattr(err, "reason", type(err).__name__)
        return False, f"{video}: {reason}: {getattr(err, 'message', str(err))}"
    coverage = (f"face found in {result.num_detected} of the {result.frames_checked} frames looked at "
                f"({result.face_coverage:.0%})" if result.frames_checked else "no face detection")
    return True, f"{video} -> {out_dir} ({result.num_frames} frames, {coverage})"


def _run_sharded(jobs: list[tuple[Path, Path, dict[str, Any]]], workers: int, ranks: Any) -> list[tuple[bool, str]]:
    """Under ``torchrun``: rank r extracts jobs r, r + world, ... (its own video folders), then
    every rank gets all outcomes in the order of ``jobs`` (rank 0 prints them and merges the
    manifest)."""
    from dynsnip.engine.distributed import gather_shards

    return gather_shards(list(_run_all(jobs[ranks.rank::ranks.world_size], workers)), len(jobs), ranks)


def _one_torch_thread() -> None:
    """Worker processes compute with one torch thread, as DataLoader workers do: a process
    forked after the parent started its OpenMP thread pool hangs in its first parallel region
    (seen with MTCNN in two workers), and several workers already use the cores."""
    import torch

    torch.set_num_threads(1)


def _run_all(jobs: list[tuple[Path, Path, dict[str, Any]]], workers: int) -> Iterator[tuple[bool, str]]:
    """:func:`_extract` of each job, in the order of ``jobs``, with up to ``workers`` processes.

    If the processes die (a decoder crash kills one, and the pool with it), a warning says so
    and the remaining videos are extracted in this process; a folder a process completed
    before that is kept (folders appear only when complete).
    """
    done = 0
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        try:
            with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), initializer=_one_torch_thread) as pool:
                for outcome in pool.map(_extract, jobs):
                    yield outcome
                    done += 1
            return
        except BrokenProcessPool as err:
            print(f"dynsnip extract-faces: warning: the worker processes failed after {done} of {len(jobs)} "
                  f"videos ({err}); extracting the others in this process", file=sys.stderr)
    for video, out_dir, options in jobs[done:]:
        if out_dir.exists():  # completed by a worker before the pool broke
            yield True, f"{video} -> {out_dir} (written by a worker process)"
        else:
            yield _extract((video, out_dir, options))


def run(args: argparse.Namespace) -> int:
    def usage_error(message: str) -> int:
        return _usage_error("extract-faces", message)

    if not args.inputs and args.manifest is None:
        return usage_error("give videos / directories, or --manifest")
    manifest_out = args.out / MANIFEST_NAME
    if args.manifest is not None and manifest_out.exists() and not args.overwrite:
        return usage_error(f"{manifest_out} exists; refusing to overwrite it (pass --overwrite to replace it)")
    if problem := face_options_problem(args):
        return usage_error(problem)
    if problem := detection_policy_problem(args) or detect_device_problem(args, args.workers == 1):
        return usage_error(problem)
    if args.scale is not None and not 0 < args.scale <= 4:
        return usage_error(f"--scale must be a factor in (0, 4], got {args.scale}")
    if args.workers < 1:
        return usage_error(f"--workers must be at least 1, got {args.workers}")
    try:
        import dynsnip.data.faces.extraction  # noqa: F401  (fails here without the video extra)
        from dynsnip.data.manifest import ManifestEntry, write_manifest
        from dynsnip.engine.evaluate import progress_bar
        from dynsnip.scoring import VIDEO_BAR

        jobs = _jobs(args)
        detector = face_detector(args)
    except (ImportError, ValueError, OSError) as err:
        return usage_error(str(err))
    if not jobs:
        return usage_error("no videos found")
    args.out.mkdir(parents=True, exist_ok=True)

    options = dict(face_detector=detector, margin=args.margin, detect_every=args.detect_every,
                   snippet_len=args.snippet_len, scale=args.scale, max_frames=args.max_frames,
                   image_format=args.format, min_face_coverage=args.min_face_coverage)
    # decide in this process what each video needs, so that the workers only extract
    claimed: dict[str, Path] = {}
    # video, out_dir, entry, the video that already claimed out_dir (or None), whether to extract it
    plan: list[tuple[Path, Path, Any, Path | None, bool]] = []
    for video, name, entry in jobs:
        owner, out_dir = claimed.get(name), args.out / name
        plan.append((video, out_dir, entry, owner, owner is None and not out_dir.exists()))
        claimed.setdefault(name, video)
    from dynsnip.engine.distributed import join_torchrun

    ranks = join_torchrun("cpu")  # extraction runs on CPUs (gloo)
    if ranks is not None:  # torchrun: every rank works from rank 0's view of what exists
        from dynsnip.engine.distributed import broadcast_object

        plan = broadcast_object(plan)
    extract_jobs = [(video, out_dir, {**options, **_boxes_from(entry, args, claimed)})
                    for video, out_dir, entry, _, extract in plan if extract]
    if ranks is None:
        outcomes = _run_all(extract_jobs, args.workers)
    else:
        outcomes = iter(_run_sharded(extract_jobs, args.workers, ranks))
        if not ranks.is_main:  # rank 0 reports and writes the manifest
            from dynsnip.engine.distributed import cleanup_distributed

            failed = any(not ok for ok, _ in outcomes) or any(owner is not None for _, _, _, owner, _ in plan)
            cleanup_distributed()
            return EXIT_SOME_FAILED if failed else EXIT_OK

    written: list[Any] = []
    coverages: list[tuple[Path, float | None]] = []
    failures = low_coverage = 0
    bar = progress_bar(plan, len(plan), "videos", not args.no_progress, **VIDEO_BAR)
    for video, out_dir, entry, owner, extract in bar:
        if owner is not None:
            print(f"FAILED   {video}: output folder {out_dir} is already used by {owner}; rename one of them")
            failures += 1
            continue
        if not extract:
            print(f"SKIPPED  {video}: {out_dir} exists (kept as it is)")
        else:
            ok, line = next(outcomes)
            print(f"{'OK' if ok else 'FAILED':<8} {line}", flush=True)
            if not ok:
                failures += 1
                low_coverage += ": low_face_coverage: " in line
                continue
        coverages.append((video, folder_coverage(out_dir)))
        if entry is not None:
            written.append(ManifestEntry(out_dir, entry.label, entry.split, entry.method, dataset=entry.dataset))
    if args.manifest is not None:
        write_manifest(written, manifest_out, overwrite=args.overwrite)
        add_coverage_column(manifest_out, [folder_coverage(e.path) for e in written])
        print(f"wrote {manifest_out} ({len(written)} entries)")
    print(f"{len(jobs)} video(s): {len(jobs) - failures} done, {failures} failed")
    if line := coverage_summary(coverages, low_coverage, args.min_face_coverage):
        print(line)
    if ranks is not None:
        from dynsnip.engine.distributed import cleanup_distributed

        cleanup_distributed()
    return EXIT_SOME_FAILED if failures else EXIT_OK
