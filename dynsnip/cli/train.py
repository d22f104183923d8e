"""``dynsnip train``: fine-tune a DIL detector with the paper's recipe.

Every default is the paper's (``dynsnip.engine.Recipe``); every setting can be overridden.
Run it under ``torchrun`` to train on several GPUs / nodes with DDP.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any, Mapping

from ..cpus import cpus_per_process
from ..engine.compile import add_compile_arguments, compile_mode_from_args, compile_problem
from ..engine.recipe import Recipe
from .arguments import device_problem, finite_problem
from .exit_codes import EXIT_SOME_FAILED, usage_error
from .face_options import add_video_entry_face_options, face_options_problem, video_entry_settings

_DEFAULT = Recipe()


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_model_args(items: list[str] | None) -> dict[str, Any]:
    """``["sim_stages=[1,2]", "drop_rate=0.1"]`` -> dict; values are JSON (else strings)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--model-arg expects KEY=VALUE (JSON value), got {item!r}")
        out[key.strip()] = _json_value(value)
    return out


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    """The recipe's settings as options; defaults shown are the paper's."""
    g = parser.add_argument_group("recipe (defaults: the paper's Implementation Details; the module: --config)")
    g.add_argument("--recipe", type=Path, help="recipe.json of an earlier run: its settings become the defaults")
    g.add_argument("--config", dest="module_config", choices=("paper", "default"),
                   help="the DIL module a dil_* --model is built as: 'paper' = the paper's module as written "
                        "(dynsnip.paper_config('paper'): no motion channels, Eq. 1's conv and Conv_U randomly initialised), "
                        "reproduces the paper; 'default' = dynsnip's (motion channels, a measured deviation, "
                        "docs/temporal_sensitivity.md). Default: default. A saved detector keeps its own module "
                        "and must not be the other one")
    g.add_argument("--epochs", type=int, help=f"training epochs (paper: {_DEFAULT.epochs}; 45 for cross-dataset)")
    g.add_argument("--batch-size", type=int, help=f"clips per step over all processes (paper: {_DEFAULT.batch_size})")
    g.add_argument("--lr", type=float, help=f"initial Adam learning rate (paper: {_DEFAULT.lr:g})")
    g.add_argument("--weight-decay", type=float, help=f"Adam weight decay (default {_DEFAULT.weight_decay:g})")
    g.add_argument("--lr-factor", type=float, help=f"multiply the lr by this on a plateau (paper: {_DEFAULT.lr_factor:g})")
    g.add_argument("--patience", dest="plateau_patience", type=int,
                   help=f"epochs without improvement tolerated; the lr drops after one more (default "
                        f"{_DEFAULT.plateau_patience}: after {_DEFAULT.plateau_patience + 1} in a row)")
    g.add_argument("--min-lr", type=float, help=f"lower bound of the lr (default {_DEFAULT.min_lr:g})")
    g.add_argument("--monitor", choices=Recipe.MONITORS, help=f"validation metric (default {_DEFAULT.monitor})")
    g.add_argument("--num-snippets", type=int, help=f"U for training (paper: {_DEFAULT.num_snippets})")
    g.add_argument("--test-num-snippets", type=int, help=f"U for validation/evaluation (paper: {_DEFAULT.test_num_snippets})")
    g.add_argument("--snippet-len", type=int, help=f"T, frames per snippet (paper: {_DEFAULT.snippet_len})")
    g.add_argument("--img-size", type=int, help=f"face crop side in pixels (paper: {_DEFAULT.img_size})")
    g.add_argument("--hflip-prob", type=float, help=f"horizontal flip probability, the only augmentation (default {_DEFAULT.hflip_prob})")
    g.add_argument("--no-amp", dest="amp", action="store_false", default=None, help="no mixed precision on GPU")
    g.add_argument("--amp-dtype", choices=("float16", "bfloat16"), help="autocast dtype on GPU (default float16)")
    g.add_argument("--workers", dest="num_workers", type=int,
                   help=f"DataLoader workers per process (default {_DEFAULT.num_workers}, or the CPU cores this "
                        "process may use if fewer; under torchrun its share of the node's cores)")
    g.add_argument("--seed", type=int, help=f"random seed (default {_DEFAULT.seed})")
    g.add_argument("--grad-clip", type=float, help="clip the gradient norm (default: no clipping)")
    g.add_argument("--sync-bn", action="store_true", default=None, help="SyncBatchNorm across GPUs under torchrun")
    g.add_argument("--grad-checkpointing", action="store_true", default=None,
                   help="recompute block activations in backward: much less GPU memory, ~1 more forward of time")
    g.add_argument("--pseudo-fakes", choices=("spatial", "temporal", "both"),
                   help="every real training clip also gives a self-blended pseudo-fake in the same batch "
                        "(docs/pseudo_fakes.md; default: none, the manifest's labels only)")
    g.add_argument("--pseudo-fake-magnitude", choices=("weak", "medium", "strong"),
                   help="strength of the pseudo-fakes' blend (default medium)")


# The recipe's float options (``--lr`` ...), by their ``args`` names.
FLOAT_OPTIONS = ("lr", "weight_decay", "lr_factor", "min_lr", "hflip_prob", "grad_clip")


def recipe_from_args(args: argparse.Namespace, **fixed: Any) -> Recipe:
    """A :class:`Recipe` from ``--recipe`` (or the paper's) with the given options applied."""
    base = Recipe.from_dict(json.loads(Path(args.recipe).read_text())) if getattr(args, "recipe", None) else Recipe()
    for name in FLOAT_OPTIONS:  # nan / inf pass the recipe's range checks (nan < 0 is False): refused here
        if problem := finite_problem(f"--{name.replace('_', '-')}", getattr(args, name, None)):
            raise ValueError(problem)
    changes = {}
    for name in ("epochs", "batch_size", "lr", "weight_decay", "lr_factor", "plateau_patience", "min_lr", "monitor",
                 "num_snippets", "test_num_snippets", "snippet_len", "img_size", "hflip_prob", "amp",
                 "num_workers", "seed", "grad_clip", "pseudo_fakes", "pseudo_fake_magnitude", "module_config"):
        value = getattr(args, name, None)
        if value is not None:
            changes[name] = value
    if getattr(args, "amp_dtype", None):
        changes["amp_dtype"] = args.amp_dtype
    if getattr(args, "sync_bn", None):
        changes["sync_bn"] = True
    if getattr(args, "grad_checkpointing", None):
        changes["grad_checkpointing"] = True
    changes.update(fixed)
    if getattr(args, "num_workers", None) is None:  # not asked for: no more loader processes than this
        # process's cores (under torchrun, its rank's share of the node's: each rank starts its own workers)
        changes["num_workers"] = min(changes.get("num_workers", base.num_workers), cpus_per_process())
    return base.replace(**changes)


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--model`` / ``--no-pretrained`` as recipe settings, only where the command gives them:
    a ``--recipe``'s model and pretrained choice stay the defaults (an option left out must not
    replace them with the paper's)."""
    options: dict[str, Any] = {}
    if getattr(args, "model", None) is not None:
        options["model"] = str(args.model)
    if getattr(args, "pretrained", None) is not None:
        options["pretrained"] = bool(args.pretrained)
    return options


def recipe_naming_module(recipe: Recipe, model_args: dict[str, Any]) -> Recipe:
    """``recipe`` whose ``module_config`` names what ``--config`` plus ``--model-arg`` build from a
    ``dil_*`` name (``--model-arg`` that spell out the paper's module make it ``paper``); kept
    for a saved detector (checked when it is loaded) or a ``custom`` result."""
    from ..hub.load import _locate
    from ..models.paper_configs import MODULE_CONFIGS, module_config_args, module_configuration

    text = str(recipe.model)
    if Path(text).exists() or _locate(text).kind != "registry":
        return recipe
    found = module_configuration(module_config_args(recipe.module_config, model_args))
    return recipe.replace(module_config=found) if found in MODULE_CONFIGS else recipe


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train",
        help="fine-tune a DIL detector (paper's recipe)",
        description=(
            "Fine-tune a DIL detector on a manifest of face-frame folders (from `dynsnip extract-faces`) or "
            "videos, with the paper's recipe: Adam, lr 1e-4, BCE on one 'fake' logit, batch 10, 30 epochs, lr/10 "
            "on a validation plateau, horizontal flip only, U=4 x T=4 at 224 px (U=8 for validation). Writes "
            "OUT/model (hub layout, best epoch) and OUT/checkpoint (resumable: run the same command again; other "
            "settings are refused, see --use-saved-recipe). An OUT holding an earlier run that is not resumed is "
            "refused (see --overwrite); one training at a time per OUT. "
            "Multi-GPU: torchrun --nproc_per_node N -m dynsnip train ..."
        ),
        epilog=(
            "example: dynsnip train --manifest faces/faces.csv --out runs/ff-c23 "
            "(rows with split 'train' train, rows with split 'val' validate)"
        ),
    )
    data = p.add_argument_group("data")
    data.add_argument("--manifest", type=Path, help="one manifest with a split column: rows 'train' train, rows 'val' validate")
    data.add_argument("--train", type=Path, help="training manifest (CSV/JSON: path,label[,split,method])")
    data.add_argument("--val", type=Path, metavar="MANIFEST|none",
                      help="validation manifest (default: --manifest's 'val' rows); none: no validation, even with "
                           "--manifest (the learning rate then follows the training loss and the last epoch is saved)")
    data.add_argument("--train-split", help="keep only these rows of the training manifest (default 'train' with --manifest)")
    data.add_argument("--val-split", help="keep only these rows of the validation manifest (default 'val' with --manifest)")
    data.add_argument("--data", choices=("auto", "frames", "video"), default="auto",
                      help="entries are face-frame folders or video files (default: look at the first)")
    data.add_argument("--balance-classes", action="store_true",
                      help="oversample the smaller class (FF++: the reals) to as many clips per epoch as the larger "
                           "one; nothing is dropped. Off by default, as the paper does not balance (docs/benchmarks.md)")
    data.add_argument("--face-detector", choices=("auto", "blazeface", "blazeface-short", "dlib", "mtcnn"), default="auto",
                      help="face detector for video entries (default auto: BlazeFace, MTCNN where it finds none)")
    add_video_entry_face_options(p.add_argument_group(
        "face crops of video entries", "as predict and extract-faces take them: give the extract-faces settings of "
        "folders to train on the same crops from their videos (frame folders keep the ones they were extracted with; "
        "--min-face-coverage also applies to their face tracks)"))
    data.add_argument("--faces", choices=("all", "largest"), default="all",
                      help="all (default): every face of a frame folder that extract-faces recorded as a sample (a "
                           "fake's swapped face only, when its manifest named the source), one clip each; validation "
                           "scores a video by its most suspicious face; largest: the largest face, as before face "
                           "tracks. Video entries are cropped at the largest face for training either way")
    data.add_argument("--data-name", help="what the data is called in the model card, e.g. 'FaceForensics++ c23' "
                                          "(default: the training manifest's file name)")
    m = p.add_argument_group("model")
    m.add_argument("--model",
                   help="dil_* name, pretrained tag, hub-layout dir, run dir, .safetensors file or hf-hub:owner/name "
                        f"(default: --recipe's model, else {_DEFAULT.model}: the paper's ImageNet ResNet-50)")
    m.add_argument("--no-pretrained", dest="pretrained", action="store_false", default=None,
                   help="random init for a dil_* name (default: --recipe's choice, else pretrained)")
    m.add_argument("--checkpoint", type=Path, help=".safetensors weights to load into --model")
    m.add_argument("--model-arg", action="append", metavar="KEY=JSON",
                   help="model option, e.g. sim_stages=[1,2,3] or drop_rate=0.1 (repeatable)")
    run = p.add_argument_group("run")
    run.add_argument("--out", type=Path, required=True, help="run directory (model/, checkpoint/, history.json)")
    run.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    run.add_argument("--no-resume", dest="resume", action="store_false",
                     help="start over even if OUT/checkpoint exists (with --overwrite: the earlier run is replaced)")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the results of an earlier run in OUT that is not resumed (model/, checkpoint/, "
                          "history.json, recipe.json, val_report.*); without it such an OUT is refused")
    run.add_argument("--use-saved-recipe", action="store_true",
                     help="when resuming, continue with the settings saved in OUT/checkpoint even where this "
                          "command's differ (without it a difference is refused, naming the settings)")
    run.add_argument("--stop-after-epoch", type=int, help="return after this epoch (resume later with the same command)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    add_compile_arguments(run)
    add_recipe_arguments(p)
    p.set_defaults(func=run_train)
    return p


NO_VALIDATION = "none"  # --val none


def _no_validation(args: argparse.Namespace) -> bool:
    """``--val none``: train without a validation set (documented in ``--val``'s help)."""
    return args.val is not None and str(args.val).lower() == NO_VALIDATION


def data_identity(path: Path | None, split: str | None) -> dict[str, Any] | None:
    """A manifest's (or dataset root's) resolved path, the SHA-256 of a manifest's bytes (one edited in
    place is other data; None for a folder) and the split read from it; None without a path."""
    if path is None:
        return None
    import hashlib

    path = Path(path)
    return {"manifest": str(path.resolve()), "split": split,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None}


def training_data_identity(args: argparse.Namespace, train: Path, train_split: str | None, val: Path | None,
                           val_split: str | None) -> dict[str, Any]:
    """What a run trains and validates on, for its checkpoint: each manifest's :func:`data_identity` and
    the options that pick the clips from it. A resumed run must train on the same
    (:func:`resumed_data_problem`)."""
    return {"train": data_identity(train, train_split), "val": data_identity(val, val_split),
            "balance_classes": bool(args.balance_classes), "faces": args.faces, "data": args.data}


def resumed_data_problem(out: Path, data: Mapping[str, Any]) -> str | None:
    """Why resuming the run in ``out`` with ``data`` would mix two training sets, or None (the same
    data, or a checkpoint that did not record its data)."""
    from ..engine.checkpoint import read_checkpoint_data
    from ..engine.run_folder import CHECKPOINT_DIR

    saved = read_checkpoint_data(Path(out) / CHECKPOINT_DIR)
    if saved is None:
        return None
    changed = []
    for key in sorted(set(saved) | set(data)):
        before, now = saved.get(key), data.get(key)
        if before == now:
            continue
        if isinstance(before, dict) and isinstance(now, dict) and before.get("manifest") == now.get("manifest") \
                and before.get("split") == now.get("split"):
            changed.append(f"{key}: {now['manifest']} was edited since the run started (its contents differ)")
        else:
            changed.append(f"{key}: {_data_shown(before)} (saved) vs {_data_shown(now)} (this command)")
    if not changed:
        return None
    return (f"{out} was started on other data than this command's: {'; '.join(changed)}. Resuming would train one "
            "run on two data sets: run the command with the data it started with, or --no-resume --overwrite to "
            "start over")


def _data_shown(value: Any) -> str:
    if isinstance(value, dict) and "manifest" in value:
        return f"{value['manifest']}" + (f" [{value['split']}]" if value.get("split") else "")
    return repr(value)


def _resolve_manifests(args: argparse.Namespace) -> tuple[Path, str | None, Path | None, str | None]:
    if args.manifest is None and args.train is None:
        raise ValueError("give --manifest (with a split column) or --train [--val]")
    train = args.train or args.manifest
    train_split = args.train_split or ("train" if args.train is None else None)
    if _no_validation(args):
        if args.val_split:
            raise ValueError(f"--val-split {args.val_split} picks validation rows, but --val none asks for no "
                             "validation; drop one of them")
        if not Path(train).is_file():
            raise FileNotFoundError(f"manifest {train} does not exist (expected a .csv or .json file)")
        return train, train_split, None, None
    val = args.val or (args.manifest if args.manifest is not None else None)
    val_split = args.val_split or ("val" if args.val is None and args.manifest is not None else None)
    for path in (train, val):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"manifest {path} does not exist (expected a .csv or .json file)")
    return train, train_split, val, val_split


def _usage_error(err: BaseException) -> int:
    return usage_error("train", str(err))


# Names a first run leaves before its first checkpoint (besides logs): its settings, a half-written checkpoint.
FIRST_RUN_LEFTOVERS = ("recipe.json", "checkpoint.tmp")
# Files of these suffixes are taken for logs (``... | tee OUT/train.log``, a scheduler's output): never deleted.
LOG_SUFFIXES = (".log", ".out", ".err")


def interrupted_first_run(out: Path) -> list[str] | None:
    """The names in ``out`` when all it holds is what a first run stopped (Ctrl-C, a crash, a
    killed job) before its first checkpoint left: its ``recipe.json``, a half-written
    ``checkpoint.tmp``, log files. None when it holds anything else (a checkpoint, a model,
    ``history.json``, a validation report, an unknown file or folder), or nothing: such a
    folder keeps needing ``--overwrite`` (:func:`dynsnip.engine.run_folder.plan_run`)."""
    from ..engine.checkpoint import find_training_checkpoint
    from ..engine.recipe import Recipe
    from ..engine.run_folder import CHECKPOINT_DIR, RUN_OUTPUTS
    from ..engine.run_lock import LOCK_NAME

    if not out.is_dir():
        return None
    entries = sorted((p for p in out.iterdir() if p.name != LOCK_NAME), key=lambda p: p.name)
    if not entries or find_training_checkpoint(out / CHECKPOINT_DIR) is not None:
        return None
    for path in entries:
        if path.is_symlink():
            return None
        if path.name == "recipe.json":
            try:
                Recipe.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError, AttributeError):  # not a dynsnip recipe: not ours to replace
                return None
        elif path.name == "checkpoint.tmp":
            if not path.is_dir() or find_training_checkpoint(path) is not None:  # a complete one: keep it
                return None
        elif path.name in RUN_OUTPUTS or not path.is_file() or path.suffix.lower() not in LOG_SUFFIXES:
            return None
    return [p.name for p in entries]


def _quiet_overwrite_note(message: str) -> None:
    """``print``, less the engine's "--overwrite: the earlier run's results ... are replaced"
    note, which is wrong for :func:`interrupted_first_run`'s leftovers (the command says what it does)."""
    if not message.startswith("note: --overwrite:"):
        print(message)


def run_train(args: argparse.Namespace) -> int:
    from ..data.manifest import read_manifest
    from ..engine import build_model, make_dataset, train
    from ..engine.distributed import cleanup_distributed, init_distributed
    from ..engine.data import check_training_labels, check_validation_labels
    from ..engine.run_folder import plan_run
    from ..engine.run_lock import RunFolderBusyError, RunFolderLock
    from ..engine.checkpoint import CorruptCheckpointError
    from ..engine.divergence import NonFiniteLossError
    from ..engine.failures import TooManyUnreadableError, ValidationUnreadableError
    from ..engine.train import seed_everything
    from ..hub.errors import ModelLoadError

    setup_errors = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, TypeError, ModelLoadError,
                    RunFolderBusyError)
    if problem := device_problem(args.device) or face_options_problem(args):
        return usage_error("train", problem)
    try:
        recipe = recipe_from_args(args, **model_options(args))
        recipe = recipe_naming_module(recipe, parse_model_args(args.model_arg))
        train_manifest, train_split, val_manifest, val_split = _resolve_manifests(args)
        if val_manifest is not None and val_split and not read_manifest(val_manifest, split=val_split):
            if args.val is None and not args.val_split:  # the default split "val" of the training manifest
                print(f"note: {val_manifest} has no rows with split {val_split!r}: training without validation "
                      "(the learning rate then follows the training loss and the last epoch is saved)")
                val_manifest = None
            else:  # asked for by name: a typo must not mean "no validation"
                raise ValueError(f"--val-split {args.val_split}: {val_manifest} has no rows with that split; expected "
                                 "one of its splits, or --val none to train without validation")
    except setup_errors as err:
        return _usage_error(err)
    try:
        info = init_distributed(args.device)
    except RuntimeError as err:  # e.g. more torchrun processes than GPUs
        return usage_error("train", " ".join(str(err).split()))
    overwrite, leftovers = args.overwrite, None
    held = contextlib.ExitStack()  # the run folder's lock, until the end of the command
    try:
        try:
            if info.is_main:
                held.enter_context(RunFolderLock(args.out))
            if not overwrite and (leftovers := interrupted_first_run(args.out)):
                overwrite = True  # nothing to protect: no checkpoint, no model, no history, no report
                if info.is_main:
                    logs = [n for n in leftovers if n not in FIRST_RUN_LEFTOVERS]
                    print(f"note: --out {args.out} holds no checkpoint and no results, only what an earlier run "
                          f"stopped before its first epoch ended left ({', '.join(leftovers)}): starting the run "
                          "there again" + (f" ({', '.join(logs)} kept)" if logs else ""))
            plan = plan_run(args.out, recipe, resume=args.resume, overwrite=overwrite,
                            use_saved_recipe=args.use_saved_recipe)
            data = training_data_identity(args, train_manifest, train_split, val_manifest, val_split)
            if plan.resume and (problem := resumed_data_problem(args.out, data)):
                raise ValueError(problem)
            if plan.resume and plan.recipe != recipe and info.is_main:
                print("note: " + " ".join(plan.notes))
            recipe, resuming = plan.recipe, plan.resume
            seed_everything(recipe.seed)
            if args.compile and (problem := compile_problem(info.device)):
                raise ValueError(problem)
            model = build_model(recipe.model, pretrained=recipe.pretrained and not resuming,
                                checkpoint=None if resuming else args.checkpoint, module_config=recipe.module_config,
                                **parse_model_args(args.model_arg))
            if getattr(model, "snippet_len", recipe.snippet_len) != recipe.snippet_len:  # T is architecture
                raise ValueError(
                    f"--snippet-len {recipe.snippet_len}: the model has T={model.snippet_len} frames per snippet (it "
                    f"is part of its architecture); build it with the same T: add --model-arg "
                    f"snippet_len={recipe.snippet_len}, or leave --snippet-len at {model.snippet_len}")
            train_set = make_dataset(train_manifest, model, recipe, train=True, split=train_split, kind=args.data,
                                     faces=args.faces, **video_entry_settings(args))
            check_training_labels(train_set, recipe.pseudo_fakes)  # before any training or balancing
            if args.balance_classes:
                from ..engine.sampling import balance_classes

                train_set = balance_classes(train_set, seed=recipe.seed)
            val_set = (make_dataset(val_manifest, model, recipe, train=False, split=val_split, kind=args.data,
                                    faces=args.faces, **video_entry_settings(args))
                       if val_manifest is not None else None)
            if val_set is not None:
                check_validation_labels(val_set, recipe.monitor)
        except setup_errors as err:
            return _usage_error(err)
        if info.is_main:
            print(f"training {recipe.model} on {len(train_set)} clips"
                  + (f", validating on {len(val_set)}" if val_set is not None else ", no validation set")
                  + f"; {info.world_size} process(es) on {info.device}; run dir {args.out}; "
                  f"module configuration {recipe.module_config!r}")
        try:
            result = train(recipe, train_set, val_set, args.out, model=model, device=info.device, resume=args.resume,
                           progress=args.progress, stop_after_epoch=args.stop_after_epoch,
                           data_name=(args.data_name or Path(train_manifest).name)
                           + (" (classes balanced by oversampling)" if args.balance_classes else ""),
                           overwrite=overwrite, use_saved_recipe=args.use_saved_recipe,
                           compile_mode=compile_mode_from_args(args), data=data,
                           model_kwargs=parse_model_args(args.model_arg),  # recorded, compared on resume
                           log=_quiet_overwrite_note if leftovers else print)
        except CorruptCheckpointError as err:
            return _usage_error(err)
        except (NonFiniteLossError, TooManyUnreadableError, ValidationUnreadableError) as err:
            print(f"dynsnip train: error: {err}", file=sys.stderr)
            return EXIT_SOME_FAILED
        if info.is_main and not (result.model_dir / "config.json").is_file():
            print(f"dynsnip train: error: no model was saved in {result.model_dir}: no epoch had a defined "
                  f"{result.best['metric']} (see {args.out / 'history.json'}); nothing to publish", file=sys.stderr)
            return EXIT_SOME_FAILED
        if info.is_main:
            best = result.best
            shown = f"{best['metric']} {best['value']:.4f} at epoch {best['epoch']}" if best["epoch"] else "no epoch run"
            print(f"done: {result.model_dir} ({shown}), hub layout; publish it with `dynsnip push {result.model_dir} OWNER/NAME`, "
                  f"use it with `dynsnip predict --checkpoint {result.model_dir} VIDEO`")
            skipped = {f["id"] for record in result.history for f in record.get("skipped", [])}
            unscored = {f["id"] for record in result.history for f in record.get("val_failed", [])}
            if skipped or unscored:  # the model is saved; exit 1 says that inputs failed, as in every command
                print(f"dynsnip train: {len(skipped)} training clip(s) could not be read and were skipped, "
                      f"{len(unscored)} validation video(s) could not be scored (each listed above and in "
                      f"{args.out / 'history.json'})", file=sys.stderr)
                return EXIT_SOME_FAILED
    finally:
        held.close()
        cleanup_distributed()
    return 0
