"""``dynsnip benchmark``: a detector under one of the paper's protocols, beside the paper's numbers."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .arguments import device_problem, probability_problem, real
from .exit_codes import EXIT_OK, EXIT_SOME_FAILED, usage_error


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..data.benchmarks.protocols import PROTOCOLS
    from .train import add_recipe_arguments

    p = subparsers.add_parser(
        "benchmark",
        help="evaluate (and with --train, first train) under a protocol of the paper's Tables 1-3",
        description=(
            "Evaluate a detector under one of the paper's protocols and write the table in the paper's shape with "
            "the paper's numbers beside ours: video-level accuracy and AUC (U=8 x T=4, the paper's test sampling) "
            "and frame-level AUC (labelled as such). --data is a manifest (from `dynsnip manifest`, or the faces.csv "
            "of `dynsnip extract-faces`: the fast path) or a dataset root (its videos are then read with face "
            "detection on the fly). With --train, first trains with the paper's recipe on the training and "
            "validation splits of --train-data (default --data) in OUT/run. Writes OUT/benchmark.json, "
            "OUT/benchmark.md and the per-video report OUT/report.*; never overwrites them, nor the manifests it writes "
            "there, without --overwrite. "
            "Nothing is scored unless the data is the protocol's dataset: the manifest's 'dataset' column (written by "
            "`dynsnip manifest`, kept by `extract-faces`) must name it, or, for a manifest that records none, "
            "--data-is must vouch for it. See docs/benchmarks.md."
        ),
        epilog=("example: dynsnip benchmark ffpp-hq --model runs/ffpp-c23/model --data faces_c23/faces.csv "
                "--out bench/ffpp-hq"),
    )
    p.add_argument("protocol", choices=sorted(PROTOCOLS), help="the protocol (see docs/benchmarks.md)")
    p.add_argument("--model", default=None,
                   help="detector to evaluate (hub-layout dir, run dir, hf-hub:owner/name, .safetensors); with --train, "
                        "the starting point (default dil_resnet50.tv_in1k, the paper's ImageNet ResNet-50)")
    p.add_argument("--data", type=Path, required=True, help="test data: a manifest (.csv/.json) or the dataset's root")
    p.add_argument("--train-data", type=Path,
                   help="with --train: training data, a manifest with train/val splits or a dataset root "
                        "(default --data; ffpp-to-celebdf and ffpp-to-dfdc need FF++ here)")
    p.add_argument("--data-is", metavar="TAG",
                   help="vouch that a --data manifest which records no dataset (no 'dataset' column: hand-made, "
                        "another tool, an older dynsnip) is the protocol's data, named by its tag (ffpp:c23, ffpp:c40, "
                        "celebdf:v2, dfdc, wilddeepfake; the error says which). A recorded dataset is never overridden, "
                        "and methods or folders of another dataset still refuse it")
    p.add_argument("--train-data-is", metavar="TAG",
                   help="the same vouch for a --train-data manifest that records no dataset (only its dataset is "
                        "checked: ffpp-to-celebdf trains on ffpp)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--train", action="store_true", help="train first with the paper's recipe (30 epochs, 45 cross-dataset)")
    p.add_argument("--no-pretrained", dest="pretrained", action="store_false", default=None,
                   help="with --train: start from a random init of a dil_* --model (as `dynsnip train --no-pretrained`; "
                        "default: a --recipe's choice, else pretrained)")
    p.add_argument("--balance-classes", action="store_true",
                   help="with --train: oversample the smaller class (the paper does not; see docs/benchmarks.md)")
    p.add_argument("--record", action="store_true",
                   help="add the video-level result to the model's config.json, model card and Hub model-index "
                        "(--model must be a local folder, or use --train)")
    p.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    p.add_argument("--threshold", type=real, default=0.5, help="fake-probability threshold for accuracy (paper 0.5)")
    p.add_argument("--no-frame-level", dest="frame_level", action="store_false", help="skip the frame-level AUC")
    from .face_options import add_track_options, add_video_entry_face_options

    p.add_argument("--face-detector", choices=("auto", "blazeface", "blazeface-short", "dlib", "mtcnn"), default="auto",
                   help="face detector for video entries (a dataset root's videos, a manifest of videos; default "
                        "auto: BlazeFace, MTCNN where it finds none)")
    add_video_entry_face_options(p.add_argument_group(
        "face crops of video entries", "as predict, evaluate and extract-faces take them: give the extract-faces "
        "settings the detector was trained with to test it on the same crops from a dataset root's videos (frame "
        "folders keep the ones they were extracted with; --min-face-coverage also applies to their face tracks)"))
    add_track_options(p, listed="the per-video report gives each face track's fake probability (column "
                            "tracks, track:probability) for extract-faces folders, the video's score for video files")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier benchmark in --out: its files (benchmark.*, report.*, the manifests) are "
                        "removed before the first new one is written (a training run/ in it is kept and resumed)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    add_recipe_arguments(p)
    p.set_defaults(func=run_benchmark_command)
    return p


# what a benchmark writes in --out besides its results (engine.benchmark.result_paths): the manifests it derives
MANIFEST_NAMES = ("data_manifest.csv", "test_manifest.csv", "train_manifest.csv", "train_rows.csv")


def output_paths(out: Path) -> list[Path]:
    """Every file ``dynsnip benchmark`` writes in ``out`` (``run/``, a training run, is not one: it resumes)."""
    from ..engine.benchmark import result_paths

    return result_paths(out) + [out / name for name in MANIFEST_NAMES]


def output_problem(out: Path, overwrite: bool, resuming: bool) -> str | None:
    """What keeps ``out`` from taking this benchmark (checked before anything is read or written), or
    None. An earlier benchmark's files are refused without ``overwrite``; with ``resuming`` (``--train``
    and ``out/run`` there, no result yet: an interrupted run started again) its manifests are not results
    and are written again."""
    if out.exists() and not out.is_dir():
        return f"--out {out} is a file; expected a folder (new or holding an earlier benchmark)"
    from ..engine.benchmark import result_paths

    existing = [p for p in output_paths(out) if p.exists()]
    if resuming and not any(p.exists() for p in result_paths(out)):
        existing = []
    if existing and not overwrite:
        return (f"--out {out} holds an earlier benchmark ({', '.join(p.name for p in existing)}); refusing to "
                "overwrite it (pass --overwrite to replace it: its files are removed before the new ones are written)")
    return None


def clear_outputs(out: Path) -> None:
    """Remove the files of an earlier benchmark in ``out`` (after :func:`output_problem` allowed it),
    so that the folder never holds the manifests of one run beside the results of another."""
    for path in output_paths(out):
        path.unlink(missing_ok=True)


def _manifest_for(data: Path, protocol, dataset: str, options: dict, out: Path, overwrite: bool,
                  before_write=None, train: bool = False) -> tuple[Path, dict[str, int]]:
    """``(data itself, {})`` when it is a manifest file; else the manifest of the dataset root,
    written to ``out`` (``before_write()`` first), and how many videos its layout promises are missing
    on disk (a partial download), split by whether ``protocol`` tests them (with ``train``: trains on
    them; :func:`~dynsnip.engine.benchmark.missing_counts`): the used ones and those of unknown split are
    reported in the result with exit code 1, the others in a note."""
    from ..engine.benchmark import missing_counts

    if data.is_file():
        return data, {}
    if not data.is_dir():
        raise FileNotFoundError(f"{data} does not exist; expected a manifest file or a dataset root")
    from ..data.benchmarks import build_manifest

    manifest = build_manifest(dataset, data, **options)
    print(manifest.summary())
    if before_write is not None:
        before_write()
    return manifest.write(out, overwrite=overwrite), missing_counts(protocol, manifest, train=train)


# what a training manifest's dataset tag (the `dataset` column) is called in a table's title
TRAINING_DATA_TITLES = {"ffpp:c23": "FF++ HQ (c23)", "ffpp:c40": "FF++ LQ (c40)", "ffpp:raw": "FF++ raw"}


def trained_title(protocol, datasets: list[str]) -> str:
    """The table's title for a protocol trained here on data tagged ``datasets``: the protocol's
    (``FF++ LQ (c40) -> Celeb-DF (v2)``) names the paper's training data; the title names what was
    trained on (``FF++ HQ (c23) -> ...``), or says that its compression is not recorded."""
    if " -> " not in protocol.title:
        return protocol.title
    paper_train, test = protocol.title.split(" -> ", 1)
    if len(datasets) == 1 and datasets[0] in TRAINING_DATA_TITLES:
        return f"{TRAINING_DATA_TITLES[datasets[0]]} -> {test}"
    shown = ", ".join(datasets) if datasets else "not recorded in its manifest"
    return f"FF++ ({shown}) -> {test}" if paper_train.startswith("FF++") else f"{paper_train} ({shown}) -> {test}"


def recipe_overrides(args: argparse.Namespace, protocol: Any) -> dict[str, Any]:
    """The recipe settings the benchmark command fixes: the protocol's epochs (unless ``--epochs``), and
    ``--model`` / ``--no-pretrained`` only where given, so a ``--recipe``'s model and pretrained choice stay."""
    fixed: dict[str, Any] = {"epochs": args.epochs or protocol.epochs}
    if args.pretrained is not None:
        fixed["pretrained"] = args.pretrained
    if args.model is not None:
        fixed["model"] = str(args.model)
    return fixed


# recipe options that change only a training (--train): given without it, they would be ignored silently
TRAINING_ONLY = {"epochs": "--epochs", "lr": "--lr", "weight_decay": "--weight-decay", "lr_factor": "--lr-factor",
                 "plateau_patience": "--patience", "min_lr": "--min-lr", "monitor": "--monitor",
                 "num_snippets": "--num-snippets", "hflip_prob": "--hflip-prob", "seed": "--seed",
                 "grad_clip": "--grad-clip", "sync_bn": "--sync-bn", "grad_checkpointing": "--grad-checkpointing",
                 "pseudo_fakes": "--pseudo-fakes", "pseudo_fake_magnitude": "--pseudo-fake-magnitude"}


def training_only_options(args: argparse.Namespace) -> list[str]:
    """The training-only options given (:data:`TRAINING_ONLY`, ``--balance-classes``)."""
    given = [flag for name, flag in TRAINING_ONLY.items() if getattr(args, name, None) not in (None, False)]
    return given + (["--balance-classes"] if getattr(args, "balance_classes", False) else [])


def input_among_outputs(out: Path, inputs: list[Path | None]) -> str | None:
    """Why an input manifest cannot be read from ``out``, or None: it is one of the files this benchmark
    writes there (``data_manifest.csv`` of an earlier run given as ``--data``), which are removed before
    the new ones are written, so the run would delete its own input."""
    written = {os.path.realpath(p) for p in output_paths(out)}
    for given in inputs:
        if given is not None and Path(given).is_file() and os.path.realpath(given) in written:
            return (f"{given} is one of the files dynsnip benchmark writes in --out {out}, which are replaced: copy it "
                    "out of that folder (or give another --out) and pass the copy")
    return None


def _train(args: argparse.Namespace, protocol, recipe, out: Path, device, test_paths: list[str]) -> tuple[Path, dict]:
    """Train with ``recipe`` on the train / val rows of ``--train-data`` (default ``--data``) in ``out/run``
    (the protocol's methods only; none of ``test_paths``, the test videos); returns the saved model folder
    and what it was trained on (manifest, provenance, dataset tags, rows, missing videos)."""
    from ..data.manifest import read_manifest
    from ..engine import build_model, make_dataset, train
    from ..engine.benchmark import check_no_test_leak, check_protocol_data, write_train_manifest
    from ..engine.sampling import balance_classes

    dataset, options = protocol.train_reader()
    given, missing = _manifest_for(args.train_data or args.data, protocol, dataset, dict(options),
                                   out / "train_manifest.csv", overwrite=True, train=True)
    vouch = (args.train_data_is, "--train-data-is") if args.train_data is not None else (args.data_is, "--data-is")
    provenance = check_protocol_data(protocol, given, vouch[0], train=True, flag=vouch[1])
    if given != (args.train_data or args.data):  # a dataset root: its manifest was built here
        provenance = provenance.replace("recorded in the manifest's dataset column",
                                        f"built here from the dataset root {args.train_data or args.data}", 1)
    print(f"training data: {provenance}")
    check_no_test_leak(test_paths, given)  # before any training: no test video among the train / val rows
    manifest, rows_note = write_train_manifest(protocol, given, out / "train_rows.csv", overwrite=True)
    if rows_note:
        print(f"training data: {rows_note}")
    model = build_model(recipe.model, pretrained=recipe.pretrained, module_config=recipe.module_config)
    from .face_options import video_entry_settings

    crops = video_entry_settings(args)  # video entries are cropped as for testing
    train_set = make_dataset(manifest, model, recipe, train=True, split="train", **crops)
    if args.balance_classes:
        train_set = balance_classes(train_set, seed=recipe.seed)
    val_set = (make_dataset(manifest, model, recipe, train=False, split="val", **crops)
               if read_manifest(manifest, "val") else None)
    print(f"training {recipe.model} ({recipe.module_config} module) for {recipe.epochs} epochs on {len(train_set)} clips"
          + (f", validating on {len(val_set)}" if val_set is not None else ", no validation split") + f"; run dir {out / 'run'}")
    result = train(recipe, train_set, val_set, out / "run", model=model, device=device, progress=args.progress,
                   data_name=f"{args.train_data or args.data} ({protocol.name} training)"
                   + (" (classes balanced by oversampling)" if args.balance_classes else ""),
                   data=training_identity(args, protocol))
    datasets = sorted({e.dataset for e in read_manifest(given, "train") if e.dataset})
    return result.model_dir, {"manifest": str(args.train_data or args.data), "provenance": provenance,
                              "datasets": datasets, "rows": rows_note or "every train/val row",
                              "missing_videos": missing.get("used", 0) + missing.get("split_unknown", 0),
                              "recipe_deviations": recipe_deviations(recipe, protocol, args.balance_classes)}


def training_identity(args: argparse.Namespace, protocol) -> dict[str, Any]:
    """What ``--train`` trains on, kept in ``OUT/run``'s checkpoint: the protocol, the training data (a
    manifest's path and the SHA-256 of its bytes; a dataset root's path) and the options that pick the
    clips. A resumed training (an interrupted benchmark started again) must train on the same data, never
    finish another protocol's or another manifest's training (:func:`resumed_training_problem`)."""
    from .train import data_identity

    return {"protocol": protocol.name, "train": data_identity(args.train_data or args.data, "train"),
            "balance_classes": bool(args.balance_classes), "faces": args.faces}


def resumed_training_problem(args: argparse.Namespace, protocol, out: Path) -> str | None:
    """Why ``OUT/run`` cannot be resumed by this command (its training was started on other data), or None."""
    from .train import resumed_data_problem

    problem = resumed_data_problem(out / "run", training_identity(args, protocol))
    if problem is None:
        return None
    return (problem.replace(str(out / "run"), f"{out / 'run'} (the training of an earlier benchmark)", 1)
            .replace("--no-resume --overwrite to start over", "another --out (or remove its run/ folder) to start over",
                     1))


# training settings of the recipe that the paper fixes (Implementation Details), compared with the run's
PAPER_TRAINING_SETTINGS = ("epochs", "batch_size", "lr", "lr_factor", "weight_decay", "num_snippets", "snippet_len",
                           "test_num_snippets", "img_size", "hflip_prob", "pseudo_fakes")


def recipe_deviations(recipe: Any, protocol: Any, balance_classes: bool = False) -> list[str]:
    """Where a ``--train`` run's recipe departs from the paper's (its epochs: the protocol's), one
    ``"name ours (paper: theirs)"`` each, for the table beside the paper's numbers."""
    from ..engine.recipe import PAPER_RECIPE

    paper = PAPER_RECIPE.replace(epochs=protocol.epochs)
    def shown(value: Any) -> str:
        return "none" if value is None else str(value)

    out = [f"{name} {shown(getattr(recipe, name))} (paper: {shown(getattr(paper, name))})"
           for name in PAPER_TRAINING_SETTINGS if getattr(recipe, name) != getattr(paper, name)]
    return out + (["classes balanced by oversampling (paper: not)"] if balance_classes else [])


def _check_module_config(model, wanted: str, source) -> None:
    """Without --train, --config names what the evaluated model must be (ValueError otherwise)."""
    from ..models.paper_configs import module_configuration

    found = module_configuration(model)
    if found != wanted:
        raise ValueError(f"--config {wanted}: {source} is a detector of the {found!r} module configuration; "
                         "--config chooses what --train trains, an evaluated detector keeps its own (drop --config)")


def run_benchmark_command(args: argparse.Namespace) -> int:
    from ..data.benchmarks import LayoutError
    from ..data.benchmarks.protocols import PROTOCOLS
    from ..engine import build_model
    from ..engine.distributed import cleanup_distributed, init_distributed
    from ..engine.benchmark import (RESULT_NAME, check_protocol_data, extraction_failures, format_table, run_benchmark,
                                    test_set_shortfall, write_benchmark, write_test_manifest)
    from ..engine.evaluate import NothingScoredError
    from ..engine.train import saved_model_folder
    from ..hub.errors import ModelLoadError
    from .face_options import face_options_problem, video_entry_settings
    from .train import recipe_from_args

    protocol = PROTOCOLS[args.protocol]
    out: Path = args.out
    if problem := (probability_problem("--threshold", args.threshold,
                                       "the fake probability at or above which a video is called fake")
                   or face_options_problem(args) or device_problem(args.device)):
        return usage_error("benchmark", problem)
    if not args.train and args.model is None:
        return usage_error("benchmark", "give --model (the detector to evaluate), or --train to train one first")
    if args.train and protocol.train_dataset is not None and args.train_data is None:
        return usage_error("benchmark", f"{protocol.name} trains on {protocol.train_dataset}, not on the test data: "
                                        "give --train-data (a manifest or the dataset's root)")
    if args.train_data is not None and not args.train:
        return usage_error("benchmark", "--train-data is only used with --train")
    if not args.train and (given := training_only_options(args)):
        return usage_error("benchmark", f"{', '.join(given)} set(s) the training of --train; without --train nothing "
                                        "is trained and they would be ignored: drop them, or add --train")
    if args.pretrained is False and not args.train:
        return usage_error("benchmark", "--no-pretrained chooses the random starting point of --train; without --train, "
                                        "--model must be a trained detector (a folder written by dynsnip train, or "
                                        "hf-hub:owner/name)")
    if args.train_data_is is not None and args.train_data is None:
        return usage_error("benchmark", "--train-data-is vouches for --train-data; without --train-data the training "
                                        "data is --data (use --data-is)")
    if args.record and not args.train and saved_model_folder(args.model) is None:
        return usage_error("benchmark", f"--record needs --model to be a local folder written by save_pretrained or "
                                        f"dynsnip train (with config.json), or --train; got {args.model}")
    if problem := output_problem(out, args.overwrite, resuming=args.train and (out / "run").is_dir()):
        return usage_error("benchmark", problem)
    if problem := input_among_outputs(out, [args.data, args.train_data]):
        return usage_error("benchmark", problem)
    if args.train and (out / "run").is_dir() and (problem := resumed_training_problem(args, PROTOCOLS[args.protocol],
                                                                                      out)):
        return usage_error("benchmark", problem)  # before anything in --out is replaced
    setup_errors = (ValueError, FileNotFoundError, FileExistsError, TypeError, LayoutError, ModelLoadError)

    def refused(err: Exception) -> int:  # nothing was done: no manifest of this run is left to block the next one
        if cleared:
            for name in MANIFEST_NAMES:
                (out / name).unlink(missing_ok=True)
        return usage_error("benchmark", str(err))

    cleared: list[bool] = []
    try:  # the test data first: a wrong root fails now, not after training
        out.mkdir(parents=True, exist_ok=True)
        recipe = recipe_from_args(args, **recipe_overrides(args, protocol))

        def clear_once() -> None:  # the earlier benchmark's files go just before this one writes its first
            if not cleared:
                clear_outputs(out)
                cleared.append(True)

        source, missing_on_disk = _manifest_for(args.data, protocol, protocol.dataset, dict(protocol.options),
                                                out / "data_manifest.csv", overwrite=True, before_write=clear_once)
        missing = missing_on_disk.get("used", 0)  # test videos of the protocol: what the metrics lack
        provenance = check_protocol_data(protocol, source, args.data_is)  # before anything is scored
        if source != args.data:  # a dataset root: its manifest was built here, from the layout
            provenance = provenance.replace("recorded in the manifest's dataset column",
                                            f"built here from the dataset root {args.data} ({source.name})", 1)
        print(f"test data: {provenance}")
        clear_once()
        manifest = write_test_manifest(protocol, source, out / "test_manifest.csv", overwrite=True,
                                       data_is=args.data_is)
        not_extracted = extraction_failures(protocol, source)  # test videos extract-faces could not crop
        if not_extracted:
            print(f"test data: {len(not_extracted)} test video(s) of {protocol.name} are listed in "
                  f"{source.parent / 'faces_failed.csv'} (extract-faces could not crop them): reported as failed")
        if source == args.data:  # a manifest names only what it holds: its shortfall against the official test set
            from ..data.manifest import read_manifest

            short = test_set_shortfall(protocol, read_manifest(manifest), not_extracted)
            if short:
                missing += sum(short.values())
                print(f"test data: {args.data} lacks {sum(short.values())} of the videos of the complete "
                      f"{protocol.title} test set ({', '.join(f'{n} {group}' for group, n in short.items())}): a "
                      "partial download or a partial manifest; reported as missing test videos")
    except setup_errors as err:
        return refused(err)
    info = init_distributed(args.device)
    try:
        if info.world_size > 1:
            return usage_error("benchmark", "run dynsnip benchmark in one process (not under torchrun): frame scores "
                                            "are matched to videos in order; train with torchrun and dynsnip train")
        try:
            training = None
            if args.train:
                from ..data.manifest import read_manifest

                test_paths = [str(e.path) for e in read_manifest(manifest)] + [f["id"] for f in not_extracted]
                model_source, training = _train(args, protocol, recipe, out, info.device, test_paths)
            else:
                model_source = args.model
            model = build_model(str(model_source), pretrained=True, num_classes=None).to(info.device).eval()
            if not args.train and args.module_config is not None:
                _check_module_config(model, args.module_config, model_source)
            cfg_size = model.pretrained_cfg.get("input_size", (3, recipe.img_size, recipe.img_size))[-1]
            recipe = recipe.replace(
                snippet_len=model.snippet_len, img_size=int(args.img_size or cfg_size),
                test_num_snippets=int(args.test_num_snippets or getattr(model, "test_num_snippets", recipe.test_num_snippets)),
            )
        except setup_errors as err:
            return refused(err)
        try:
            result = run_benchmark(protocol, model, manifest, recipe, device=info.device, threshold=args.threshold,
                                   frame_level=args.frame_level, progress=args.progress, faces=args.faces,
                                   video_score=args.video_score, failed_before=not_extracted,
                                   video_crops=video_entry_settings(args))
        except NothingScoredError as err:  # every video failed, each with its reason: no metrics, no table
            from ..engine.failures import describe_failures

            print(f"dynsnip benchmark: {err}", file=sys.stderr)
            if not_extracted:
                print(f"and {len(not_extracted)} that extract-faces could not crop:\n"
                      f"{describe_failures(not_extracted, limit=None)}", file=sys.stderr)
            print(f"no metrics and no {RESULT_NAME}.json: fix or remove these videos", file=sys.stderr)
            return EXIT_SOME_FAILED
    finally:
        cleanup_distributed()
    result["model"] = str(model_source)
    result["data"] = str(args.data)
    result["data_provenance"] = provenance
    result["missing_videos"] = missing  # test videos promised by the --data root's layout (or the official test set), absent
    result["missing_videos_split_unknown"] = missing_on_disk.get("split_unknown", 0)  # maybe test videos
    result["missing_videos_not_tested"] = missing_on_disk.get("not_used", 0)  # train/val: not in this benchmark
    if training is not None:  # trained here: the title and the result say on what
        result["training_data"] = training
        result["title"] = trained_title(protocol, training["datasets"])
    print(format_table(result))
    paths = write_benchmark(result, out, overwrite=True)
    print("wrote " + " ".join(str(p) for p in paths))
    if result["failed"]:
        from ..engine.failures import describe_failures

        print(f"dynsnip benchmark: {result['num_failed']} video(s) could not be read or scored and are not in the "
              "metrics:", file=sys.stderr)
        print(describe_failures(result["failed"], limit=None), file=sys.stderr)
    if unscored := result.get("tracks_not_scored"):
        from ..engine.failures import describe_failures

        print(f"dynsnip benchmark: {len(unscored)} face track(s) of {len({t['id'] for t in unscored})} scored video(s) "
              "were not scored; those videos are scored on their other faces, as predict does:", file=sys.stderr)
        print(describe_failures(unscored, limit=None), file=sys.stderr)
    overall = result["report"]["overall"]
    one_class = not (overall.get("num_real") and overall.get("num_fake"))
    if args.record and one_class:  # a result over one class is no benchmark result: the card must not show one
        print(f"dynsnip benchmark: not recorded: the videos scored are of one class ({overall.get('num_real') or 0} "
              f"real, {overall.get('num_fake') or 0} fake; the others failed), so the protocol's metric is not "
              "defined", file=sys.stderr)
    if args.record and not one_class:
        from ..hub.records import evaluation_record, record_evaluation

        from ..hub.card import coverage

        folder = saved_model_folder(model_source)
        record = evaluation_record(
            result["report"], data=result["title"], split=protocol.split, num_snippets=recipe.test_num_snippets,
            snippet_len=recipe.snippet_len, img_size=recipe.img_size, missing_videos=missing,
            source=f"dynsnip benchmark {protocol.name}" + (f" (test data {provenance})" if provenance.startswith("vouched")
                                                            else ""))
        record_evaluation(folder, record)
        covered = coverage(record)
        print(f"recorded in {folder / 'config.json'}" + (
            f" as {covered[0]} of {covered[1]} test videos scored (the card and its model-index split say so)"
            if covered else ""))
    unknown, untested = result["missing_videos_split_unknown"], result["missing_videos_not_tested"]
    trained_missing = (training or {}).get("missing_videos", 0)
    if missing or unknown or trained_missing:
        print("dynsnip benchmark: the test data is incomplete: "
              + "; ".join(f"{n} {what} the dataset promises are missing" for what, n in (
                  (f"test video(s) of {protocol.name}", missing),
                  ("video(s) of unknown split (maybe test videos)", unknown),
                  ("training (train/val) video(s)", trained_missing)) if n), file=sys.stderr)
    if untested:
        print(f"dynsnip benchmark: note: {untested} video(s) of the --data root that {protocol.name} does not test "
              "(train/val, other methods) are missing on disk too; they are not used here", file=sys.stderr)
    return (EXIT_SOME_FAILED if result["failed"] or missing or unknown or trained_missing or one_class else EXIT_OK)
