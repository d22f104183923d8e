"""``dynsnip manifest``: the manifest of a standard benchmark from its dataset root."""
from __future__ import annotations

import argparse
from pathlib import Path

from .exit_codes import EXIT_OK, EXIT_SOME_FAILED, usage_error

# option -> the datasets it applies to (None: not given)
_OPTIONS = {
    "compression": ("ffpp", "deepfakebench"),
    "frames_root": ("deepfakebench",),
    "label_dict": ("deepfakebench",),
    "labels": ("deepfakebench",),
    "methods": ("ffpp",),
    "version": ("celebdf",),
    "val_fraction": ("celebdf", "dfdc", "wilddeepfake"),
    "seed": ("celebdf", "dfdc", "wilddeepfake"),
    "ffpp_root": ("deeperforensics",),
    "variant": ("deeperforensics",),
}


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..data.benchmarks import DATASETS, EXTRA_METHODS, PAPER_METHODS

    p = subparsers.add_parser(
        "manifest",
        help="write the manifest of a benchmark dataset (FF++, Celeb-DF, DFDC, ...) from its root",
        description=(
            "Read a benchmark dataset as downloaded and write the manifest that train, evaluate, extract-faces and "
            "benchmark read: path,label,split,method,source,dataset (label 1 = fake; source = the real video a fake "
            "was made from, where the dataset says so). Official splits are used where they exist. Videos the layout lists "
            "but that are not on disk are counted and named (exit code 1; the manifest holds the others). Nothing "
            "is written when the root is not the named dataset, or when --out lies inside it. Each row records the "
            "dataset in a 'dataset' column (e.g. ffpp:c23), which `dynsnip benchmark` checks. See docs/benchmarks.md."
        ),
        epilog="example: dynsnip manifest ffpp /data/FaceForensics++ --compression c23 --out ffpp_c23.csv",
    )
    p.add_argument("dataset", choices=sorted([*DATASETS, "deepfakebench"]),
                   help="which dataset ROOT holds (deepfakebench: ROOT is a DeepfakeBench dataset JSON, docs/deepfakebench.md)")
    p.add_argument("root", type=Path, help="the dataset's root folder, as its download script leaves it "
                                           "(deepfakebench: the dataset JSON file)")
    p.add_argument("--out", type=Path, required=True,
                   help="manifest file to write (.csv), outside ROOT (e.g. in the folder above it)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--compression", choices=("raw", "c23", "c40"), help="ffpp: quality (default c23 = the paper's HQ)")
    p.add_argument("--methods", type=lambda s: [m.strip() for m in s.split(",") if m.strip()],
                   help=f"ffpp: comma-separated methods (default the paper's four: {','.join(PAPER_METHODS)}; "
                        f"also {','.join(EXTRA_METHODS)})")
    p.add_argument("--version", choices=("v1", "v2"), help="celebdf: release (default: v2, or v1 where the root holds exactly v1's videos; noted)")
    p.add_argument("--val-fraction", type=float,
                   help="celebdf, dfdc, wilddeepfake: share of the training videos moved to 'val', drawn by "
                        "identity / original video (default 0.1)")
    p.add_argument("--seed", type=int, help="celebdf, dfdc, wilddeepfake: seed of the validation draw (default 0)")
    p.add_argument("--ffpp-root", type=Path, help="deeperforensics: FF++ root holding the real c23 videos (required)")
    p.add_argument("--variant", help="deeperforensics: folder of manipulated_videos/ (default end_to_end)")
    p.add_argument("--frames-root", type=Path,
                   help="deepfakebench: the folder the JSON's frame paths are relative to (e.g. DeepfakeBench's "
                        "datasets/rgb); default: the paths as they are")
    p.add_argument("--label-dict", type=Path,
                   help="deepfakebench: YAML/JSON mapping label names to 0/1 (DeepfakeBench's train_config.yaml works), "
                        "added to dynsnip's table of DeepfakeBench's names")
    p.add_argument("--label", dest="labels", action="append", metavar="NAME=0|1",
                   help="deepfakebench: map one more label name to 0 (real) or 1 (fake) (repeatable)")
    p.add_argument("--show-missing", type=int, default=5, metavar="N", help="name the first N missing videos per group")
    p.set_defaults(func=run_manifest)
    return p


def run_manifest(args: argparse.Namespace) -> int:
    from ..data.benchmarks import LayoutError, build_manifest
    from ..data.benchmarks.layout import is_inside

    options = {}
    for name, datasets in _OPTIONS.items():
        value = getattr(args, name)
        if value is None:
            continue
        if args.dataset not in datasets:
            return usage_error("manifest", f"--{name.replace('_', '-')} applies to {', '.join(datasets)}, "
                                           f"not {args.dataset}")
        options[name] = value
    if args.dataset == "deeperforensics" and "ffpp_root" not in options:
        return usage_error("manifest", "deeperforensics needs --ffpp-root: its real videos are FF++'s c23 videos")
    for root in (args.root, options.get("ffpp_root")):
        if root is not None and is_inside(args.out, root):
            return usage_error("manifest", f"--out {args.out} is inside the dataset root {root}; refusing to write there "
                                           "(it could replace the dataset's own files): expected a path outside it")
    if args.out.exists() and not args.overwrite:
        return usage_error("manifest", f"{args.out} exists; refusing to overwrite it (pass --overwrite to replace it)")
    try:
        manifest = (_deepfakebench_manifest(args.root, options) if args.dataset == "deepfakebench"
                    else build_manifest(args.dataset, args.root, **options))
        print(manifest.summary(limit=args.show_missing))  # also when nothing is found: what was looked for
        manifest.write(args.out, overwrite=args.overwrite)
    except (LayoutError, ValueError, FileExistsError, OSError) as err:
        return usage_error("manifest", str(err))
    print(f"wrote {args.out} ({len(manifest.rows)} rows, dataset {manifest.tag or 'not recorded'})")
    return EXIT_SOME_FAILED if manifest.num_missing or manifest.left_out or getattr(manifest, "refused", None) else EXIT_OK


def _deepfakebench_manifest(json_path: Path, options: dict):
    """``dynsnip manifest deepfakebench JSON``: the frame folders of a DeepfakeBench dataset JSON."""
    from ..data.benchmarks.deepfakebench import deepfakebench_manifest, read_label_dict

    labels = dict(read_label_dict(options.pop("label_dict"))) if "label_dict" in options else {}
    for item in options.pop("labels", []):
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or value.strip() not in ("0", "1"):
            raise ValueError(f"--label expects NAME=0 or NAME=1 (1 = fake), got {item!r}")
        labels[name.strip()] = int(value)
    return deepfakebench_manifest(json_path, label_dict=labels, **options)
