"""``dynsnip evaluate``: video-level accuracy and AUC of a detector on a manifest (per method)."""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from ..engine.compile import add_compile_arguments, compile_mode_from_args, compile_model
from .arguments import device_problem, probability_problem, real
from .exit_codes import EXIT_OK, EXIT_SOME_FAILED, usage_error
from .face_options import (
    add_track_options,
    add_video_entry_face_options,
    face_options_problem,
    video_entry_settings,
)

THRESHOLD_MEANING = "the fake probability at or above which a video is called fake"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "evaluate",
        help="video-level accuracy / AUC of a detector on a manifest",
        description=(
            "Score every video of a manifest (face-frame folders or videos) with U=8 snippets of T=4 frames "
            "(the paper's test protocol; the model's own test U by default) and report video-level accuracy "
            "and AUC, per manipulation method when the manifest has a 'method' column (each method: all "
            "real videos + that method's fakes). Writes REPORT.json and REPORT.csv. Videos that cannot be read "
            "(corrupt, no face, missing frames) are listed with the reason and left out of the metrics; the exit "
            "code is then 1. A face track that cannot be scored (below --min-face-coverage) in a video scored on its "
            "other faces is listed under tracks_not_scored, as predict lists it beside its verdict, and does not "
            "change the exit code."
        ),
        epilog="example: dynsnip evaluate --model runs/ff-c23/model --manifest faces/faces.csv --split test --out test_report",
    )
    p.add_argument("--model", required=True, help="hub-layout dir, run dir, hf-hub:owner/name, .safetensors file or dil_* tag")
    p.add_argument("--manifest", type=Path, required=True, help="CSV/JSON manifest: path,label[,split,method]")
    p.add_argument("--split", help="evaluate only the rows of this split (e.g. test)")
    p.add_argument("--data", choices=("auto", "frames", "video"), default="auto",
                   help="entries are face-frame folders or video files (default: look at the first)")
    p.add_argument("--face-detector", choices=("auto", "blazeface", "blazeface-short", "dlib", "mtcnn"), default="auto",
                   help="face detector for video entries (default auto: BlazeFace, MTCNN where it finds none)")
    add_video_entry_face_options(p.add_argument_group(
        "face crops of video entries", "as predict and extract-faces take them: give a folder's extract-faces settings "
        "to score the same crops from its videos (frame folders keep the ones they were extracted with; "
        "--min-face-coverage also applies to their face tracks)"))
    add_track_options(p, listed="the per-video report gives each face track's fake probability (column "
                            "tracks, track:probability) for extract-faces folders, the video's score for video files")
    p.add_argument("--num-snippets", type=int, help="U (default: the model's test_num_snippets, paper 8)")
    p.add_argument("--img-size", type=int, help="face crop side (default: the model's input size)")
    p.add_argument("--batch-size", type=int, default=10, help="clips per forward pass (default 10)")
    p.add_argument("--threshold", type=real, default=0.5, help="fake-probability threshold for accuracy: a video is called fake when its probability is at or "
                        "above it (a probability in [0, 1], default 0.5)")
    p.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no fp16 autocast on GPU")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers (default 4, or the CPU cores this process may use if fewer; under torchrun, "
                        "its share of the node's CPUs: CPUs / LOCAL_WORLD_SIZE)")
    p.add_argument("--out", type=Path, help="report path without extension (writes .json, .csv, _videos.csv; "
                                            "refused if one of them exists, see --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="allow --out to replace an existing report")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_compile_arguments(p)
    p.add_argument("--record", action="store_true",
                   help="add the result to --model's config.json and model card (a local hub-layout folder, "
                        "e.g. a run's model/), so that `dynsnip push` publishes it")
    p.add_argument("--data-name", help="what the data is called in the model card (default: the manifest's file name)")
    p.set_defaults(func=run_evaluate)
    return p


def format_report(report: dict) -> str:
    """The report as a text table: one row for all videos and one per method, each with the videos
    of that subset that could not be scored (``failed``: the real ones and the method's fakes)."""
    def fmt(v: float) -> str:
        return "  n/a " if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"

    rows = [("all videos", report["overall"])] + list(report.get("per_method", {}).items())
    width = max(12, *(len(name) for name, _ in rows))
    lines = [f"{'subset':<{width}}  {'AUC':>6}  {'ACC':>6}  {'real':>5}  {'fake':>5}  {'failed':>6}"]
    for name, m in rows:
        lines.append(f"{name:<{width}}  {fmt(m['auc']):>6}  {fmt(m['accuracy']):>6}  {m['num_real']:>5}  {m['num_fake']:>5}"
                     f"  {m.get('num_failed', '?'):>6}")
    return "\n".join(lines)


def report_problem(out: Path | None, overwrite: bool, manifest: Path | None = None) -> str | None:
    """What keeps ``--out`` from taking the report (checked before any video is scored), or None;
    a report file that is the ``manifest`` itself is refused even with ``overwrite``."""
    from ..engine.metrics import report_paths

    if out is None:
        return None
    paths = report_paths(out)
    if manifest is not None and manifest.exists():
        for path in paths:
            if path.exists() and os.path.samefile(path, manifest):
                return (f"--out {out} would write the report over the manifest {manifest} ({path}); refusing, even "
                        "with --overwrite: choose another --out")
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        return f"--out {out}: {', '.join(existing)} exist(s); refusing to overwrite an earlier report (pass --overwrite)"
    folder = next((f for f in paths[0].parents if f.exists()), None)
    if folder is not None and (not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK)):
        return f"--out {out}: cannot write the report under {folder} (not a writable folder)"
    return None


def count_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with ``--batch-size`` / ``--num-snippets`` / ``--img-size`` (positive
    integers) or ``--workers`` (0 or more), as a usage error (train refuses the same values);
    None if nothing. Checked before the model is loaded: 0 must not mean "the default"."""
    for option, value, minimum in (("--batch-size", args.batch_size, 1), ("--num-snippets", args.num_snippets, 1),
                                   ("--img-size", args.img_size, 1), ("--workers", args.workers, 0)):
        if value is not None and value < minimum:
            expected = "a positive integer" if minimum == 1 else "0 (no worker processes) or more"
            return f"{option} must be {expected}, got {value}"
    return None


def run_evaluate(args: argparse.Namespace) -> int:
    from ..engine import Recipe, build_model, evaluate, make_dataset, write_report
    from ..engine.evaluate import NothingScoredError
    from ..engine.failures import describe_failures, extraction_failures, with_earlier_failures
    from ..engine.distributed import cleanup_distributed, init_distributed

    from ..hub.errors import ModelLoadError
    from ..cpus import cpus_per_process

    if not args.manifest.is_file():
        return usage_error("evaluate", f"manifest {args.manifest} does not exist (expected a .csv or .json file)")
    if problem := (count_problem(args) or face_options_problem(args)
                   or probability_problem("--threshold", args.threshold, THRESHOLD_MEANING)
                   or device_problem(args.device) or report_problem(args.out, args.overwrite, args.manifest)):
        return usage_error("evaluate", problem)
    from ..engine.train import saved_model_folder

    model_folder = saved_model_folder(args.model)
    if args.record and model_folder is None:
        return usage_error("evaluate", f"--record needs --model to be a local folder written by save_pretrained or "
                                       f"dynsnip train (with config.json); got {args.model}")
    try:
        info = init_distributed(args.device)
    except RuntimeError as err:  # e.g. more torchrun processes than GPUs
        return usage_error("evaluate", " ".join(str(err).split()))
    try:
        try:
            model = build_model(args.model, pretrained=True, num_classes=None).to(info.device).eval()  # as saved
            compile_model(model, info.device, compile_mode_from_args(args), inference=True)  # --compile
            size = args.img_size if args.img_size is not None else int(
                model.pretrained_cfg.get("input_size", (3, 224, 224))[-1])
            recipe = Recipe(model=str(args.model), snippet_len=model.snippet_len,
                            test_num_snippets=int(model.test_num_snippets if args.num_snippets is None
                                                  else args.num_snippets), img_size=size)
            dataset = make_dataset(args.manifest, model, recipe, train=False, split=args.split, kind=args.data,
                                   faces=args.faces, **video_entry_settings(args))
            # a faces.csv's videos that extract-faces could not crop (its faces_failed.csv): failures of this report
            not_extracted = extraction_failures(args.manifest, args.split)
        except (ValueError, FileNotFoundError, TypeError, ModelLoadError) as err:
            return usage_error("evaluate", str(err))
        workers = min(4, cpus_per_process()) if args.workers is None else args.workers  # torchrun: per rank
        try:
            result = evaluate(model, dataset, batch_size=args.batch_size, device=info.device, amp=args.amp,
                              num_workers=workers, threshold=args.threshold, dist_info=info, progress=args.progress,
                              video_score=args.video_score)
        except NothingScoredError as err:  # every video failed, each with its reason: no metrics, no report
            if info.is_main:
                print(f"dynsnip evaluate: {err}\nno metrics and no report: fix or remove these videos", file=sys.stderr)
            return EXIT_SOME_FAILED
        report = with_earlier_failures(result.report, not_extracted)
        if info.is_main:
            print(f"{args.model} on {args.manifest}" + (f" [{args.split}]" if args.split else "")
                  + f": U={recipe.test_num_snippets} x T={recipe.snippet_len} at {size} px")
            print(format_report(report))
            if cover := report.get("face_coverage"):
                print(f"face coverage of {cover['videos']} video(s): mean {cover['mean']:.2f}, lowest {cover['lowest']:.2f}, "
                      f"{cover['videos_below_half']} below 0.5")
            if report["failed"]:
                print(f"dynsnip evaluate: {len(report['failed'])} video(s) could not be read or scored and are not in "
                      "the metrics:", file=sys.stderr)
                print(describe_failures(report["failed"], limit=None), file=sys.stderr)
            if unscored := report.get("tracks_not_scored"):
                print(f"dynsnip evaluate: {len(unscored)} face track(s) of {len({t['id'] for t in unscored})} scored "
                      "video(s) were not scored; those videos are scored on their other faces, as predict does "
                      "(tracks_not_scored in the report):", file=sys.stderr)
                print(describe_failures(unscored, limit=None), file=sys.stderr)
            if args.out:
                json_path, csv_path = write_report(
                    dict(report, model=str(args.model), manifest=str(args.manifest), split=args.split),
                    args.out, result.predictions,
                )
                print(f"report: {json_path} {csv_path}")
            if args.record:
                from ..hub.records import evaluation_record, record_evaluation

                from ..hub.card import coverage

                record = evaluation_record(
                    report, data=args.data_name or args.manifest.name, split=args.split,
                    num_snippets=recipe.test_num_snippets, snippet_len=recipe.snippet_len, img_size=size,
                    source="dynsnip evaluate",
                )
                card_updated = record_evaluation(model_folder, record)
                covered = coverage(record)
                print(f"recorded in {model_folder / 'config.json'}" + (
                    f" as {covered[0]} of {covered[1]} videos scored (the card and its model-index split say so)"
                    if covered else "") + (
                    " and its model card" if card_updated else
                    "; its README.md is not the card dynsnip renders (edited by hand, or written by another "
                    "version) and is left alone: add the result there yourself"))
    finally:
        cleanup_distributed()
    return EXIT_SOME_FAILED if report["failed"] else EXIT_OK
