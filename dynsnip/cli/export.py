"""``dynsnip export``: dynsnip's data in other frameworks' formats.

``dynsnip export deepfakebench FACES --out dataset_json/NAME.json --frames-out DIR`` writes the
frame folders of ``dynsnip extract-faces`` as a DeepfakeBench dataset (one face crop per frame,
cut by dynsnip's crop policy, and the dataset JSON), so that DeepfakeBench's baselines train and
test on the crops DIL sees (:mod:`dynsnip.data.benchmarks.deepfakebench_export`, docs/deepfakebench.md).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .exit_codes import EXIT_OK, EXIT_SOME_FAILED, usage_error

# the resampling names the crops' resize accepts (dynsnip.data.faces.crop._PIL_FILTERS; tested equal)
INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos", "box", "hamming")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "export",
        help="write dynsnip's data for another framework (deepfakebench)",
        description="Write dynsnip's data in another framework's format. Targets: deepfakebench.",
    )
    targets = p.add_subparsers(dest="target", metavar="TARGET")
    d = targets.add_parser(
        "deepfakebench",
        help="extract-faces output as a DeepfakeBench dataset (crops + dataset JSON)",
        description=(
            "Export the frame folders of `dynsnip extract-faces` (its faces.csv, with labels and splits) as a "
            "DeepfakeBench dataset: one face crop per frame in FRAMES_OUT/<video>/, cut by dynsnip's crop policy "
            "(each block of T frames from frame 0 gets the box the policy gives that snippet) and resized once to "
            "--size px, plus the dataset JSON --out, which DeepfakeBench opens as <dataset_json_folder>/<NAME>.json. "
            "Its baselines then train and test on the crops DIL sees. Complete video folders of an earlier run are "
            "reused; --out is never replaced without --overwrite. See docs/deepfakebench.md."
        ),
        epilog=("example: dynsnip export deepfakebench faces_c23/faces.csv --out DeepfakeBench/preprocessing/"
                "dataset_json/dynsnip_ffpp.json --frames-out /data/dynsnip_ffpp_crops --labels ffpp"),
    )
    d.add_argument("faces", type=Path, help="faces.csv of `dynsnip extract-faces --manifest` (or its output folder)")
    d.add_argument("--out", type=Path, required=True, help="the dataset JSON to write, named <NAME>.json")
    d.add_argument("--frames-out", type=Path, required=True, help="folder for the crops (one folder per video)")
    d.add_argument("--name", help="the dataset's name in DeepfakeBench (train_dataset: [NAME]); default --out's stem")
    d.add_argument("--compression", choices=("raw", "c23", "c40"),
                   help="wrap each split in this level, as DeepfakeBench's FF++ JSONs (needed for its FF++ names)")
    d.add_argument("--labels", choices=("dataset", "ffpp"), default="dataset",
                   help="label names: dataset = <NAME>_real / <NAME>_fake (add them to DeepfakeBench's label_dict); "
                        "ffpp = FF-real, FF-DF, FF-F2F, FF-FS, FF-NT, FF-FH by the rows' methods (default dataset)")
    d.add_argument("--size", type=int, default=224,
                   help="crop side in px (default 224, DIL's input size; use your baselines' resolution to avoid "
                        "a second resize)")
    d.add_argument("--interpolation", default="bilinear", choices=INTERPOLATIONS,
                   help="resampling of the crops (default bilinear, dil_resnet50.tv_in1k's)")
    d.add_argument("--relative-to", type=Path,
                   help="write frame paths relative to this folder (e.g. DeepfakeBench's folder); default absolute")
    d.add_argument("--overwrite", action="store_true", help="replace --out if it exists, and folders in --frames-out that are not this export's (crops made with "
                        "other settings, folders without an export record); never the frame folders themselves")
    d.add_argument("--quiet", action="store_true", help="no line per video")
    d.set_defaults(func=run_export_deepfakebench)
    p.set_defaults(func=lambda args: _no_target(p))
    return p


def _no_target(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return usage_error("export", "name a target: deepfakebench")


def run_export_deepfakebench(args: argparse.Namespace) -> int:
    from ..data.benchmarks.deepfakebench_export import export_deepfakebench, label_dict_lines

    try:
        result = export_deepfakebench(
            args.faces, args.out, args.frames_out, name=args.name, compression=args.compression, labels=args.labels,
            size=args.size, interpolation=args.interpolation, relative_to=args.relative_to, overwrite=args.overwrite,
            log=None if args.quiet else print)
    except (ValueError, FileExistsError, FileNotFoundError, OSError) as err:
        return usage_error("export", str(err))
    counts = ", ".join(f"{n} {name}" for name, n in sorted(result.videos.items()))
    print(f"wrote {result.json_path}: dataset {result.name}, {sum(result.videos.values())} videos ({counts}), "
          f"{result.frames} crops in {args.frames_out}"
          + (f"; {result.borrowed_frames} crops borrowed their box from a neighbouring block (no face found in theirs)"
             if result.borrowed_frames else ""))
    print(f"DeepfakeBench: put {result.json_path.name} in its dataset_json_folder, use {result.name} in train_dataset / "
          "test_dataset, and make sure its label_dict holds:")
    for line in label_dict_lines(result):
        print(line)
    if result.failed:
        print(f"dynsnip export: {len(result.failed)} video(s) were not exported:", file=sys.stderr)
        for folder, reason in result.failed:
            print(f"  {folder}: {reason}", file=sys.stderr)
        return EXIT_SOME_FAILED
    return EXIT_OK
