"""Fine-tune a DIL detector with the paper's recipe; single process or ``torchrun`` + DDP.

:func:`train` runs the loop of the paper's Implementation Details (:class:`~dynsnip.engine.recipe.Recipe`):
Adam on the binary cross-entropy of one "fake" logit, learning rate divided by 10 when the
validation metric stops improving, horizontal flip as the only augmentation (applied by
the dataset), evaluation with U = 8 snippets. What it writes into ``out_dir``::

    model/              the best model so far (by the validation metric; the last one
                        without validation), Hugging Face hub layout (config.json +
                        model.safetensors + README.md with the recipe and the
                        validation result), ready for `dynsnip push out_dir/model
                        OWNER/NAME`, loadable by `dynsnip predict --checkpoint out_dir/model`
    checkpoint/         the last finished epoch: weights, optimizer, scheduler, history
                        (see :mod:`dynsnip.engine.checkpoint`); a killed run started again
                        with the same command resumes after that epoch. Written before
                        model/ and val_report.*: a run killed in between saves them again
                        from it when it resumes
    history.json        per epoch: train loss, lr, throughput, validation metrics, the
                        clips skipped because they could not be read
    recipe.json         the settings used
    val_report.json/csv the validation report of the best epoch (with a validation set)
    .dynsnip-train.lock held while a training runs in the folder (see
                        :mod:`dynsnip.engine.run_lock`): a second training is refused

A folder with an earlier run that cannot be resumed is refused unless ``overwrite`` (a folder
holding only what a run writes before its first checkpoint, ``recipe.json`` and a half-written
``checkpoint.tmp``, is started over, said in a note), and a resumed run must use the recipe it
was started with (:mod:`dynsnip.engine.run_folder`), but for the length of the run, the loader
workers and the settings that the advice after a NaN loss changes (``lr``, ``amp``,
``amp_dtype``, ``grad_clip``: recorded in ``history.json``). It must also build the same model:
the checkpoint records its build options (``model_kwargs`` / ``--model-arg`` and the model's
``dil_args``), and a resumed run with other ones is refused naming each
(:class:`~dynsnip.engine.checkpoint.ResumedModelMismatchError`).

Reproducibility: every epoch starts by seeding torch / random / numpy from
``(recipe.seed, epoch, rank)``, the sampler shuffles with ``(seed, epoch)`` and every training
item draws its snippets, flip and pseudo-fakes from ``(seed, epoch, item index)``
(:mod:`dynsnip.engine.item_seeds`), so a resumed run repeats exactly what the uninterrupted
run would have done, with any number of DataLoader workers.

Unreadable clips (a corrupt video, no face, a missing frame folder: see
:mod:`dynsnip.engine.failures`) are skipped and logged at the end of the epoch, with the
reason; an epoch in which more than half of the clips cannot be read stops the run, and so
does a validation set of which no video can be read (checked before the first epoch, and
by each validation: the epoch's checkpoint is kept). Under
``torchrun`` a step in which any process has no readable clip is skipped by all of them.
"""
from __future__ import annotations

import functools
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .checkpoint import (
    MODEL_OPTIONS_KEY, load_training_checkpoint, model_options_record, restore_training_state, save_training_checkpoint,
)
from .data import _labels, check_training_labels, check_validation_labels, class_counts
from .distributed import (
    DistInfo, all_gather_objects, all_reduce_mean, any_rank, barrier, broadcast_buffers, init_distributed, unwrap_model,
)
from .divergence import batch_indices, check_finite_loss, check_finite_weights
from .compile import compile_model
from .evaluate import EvalResult, NothingScoredError, autocast_context, evaluate, item_id, progress_bar
from .failures import (
    FailedItem, SkipUnreadable, TooManyUnreadableError, ValidationUnreadableError, count_reasons, describe_failures,
    first_readable_failures,
)
from .item_seeds import SeededItems, isolated_rng, seeded
from .metrics import write_report
from .pseudo_fakes import collate_for_recipe
from .recipe import Recipe
from .run_folder import RESUME_MAY_TUNE, clear_run_outputs, plan_run
from .run_lock import RunFolderLock

__all__ = ["train", "TrainResult", "build_model", "saved_model_folder", "set_video_layout", "save_model", "epoch_seed", "seed_everything"]

MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoint"


# --------------------------------------------------------------------------- models
def _hub():
    """The hub issue's API (``dynsnip.hub``): ``load_model`` and ``save_pretrained``."""
    from ..hub.load import load_model
    from ..hub.save import save_pretrained

    return load_model, save_pretrained


def _safetensors_architecture(path: Path) -> str | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("architecture")


def saved_model_folder(path: str | os.PathLike[str]) -> Path | None:
    """The hub-layout folder (with ``config.json``) ``path`` names: ``path`` itself, or the
    ``model/`` of a training run folder; None if neither."""
    for folder in (Path(path), Path(path) / MODEL_DIR):
        if (folder / "config.json").is_file():
            return folder
    return None


def build_model(
    source: str | os.PathLike[str],
    *,
    pretrained: bool = True,
    num_classes: int | None = 1,
    checkpoint: str | os.PathLike[str] | None = None,
    module_config: str | None = None,
    **model_kwargs: Any,
) -> torch.nn.Module:
    """Create the detector to fine-tune or evaluate.

    Args:
        source: one of
            * a ``dil_*`` name (``pretrained=False``: random init) or a pretrained tag
              (``dil_resnet50.tv_in1k``: timm's ImageNet ResNet-50 inside the DIL network,
              SIMs freshly initialised, as in the paper);
            * ``hf-hub:owner/name``: a detector pushed with :func:`dynsnip.push_to_hub` (a bare
              ``owner/name`` is a local path; a missing one is reported, not downloaded);
            * a directory written by :func:`dynsnip.save_pretrained`, or a training run
              directory (its ``model/`` is used);
            * a ``.safetensors`` file whose metadata names the architecture (files written
              by dynsnip do), or that sits next to a ``config.json``.
        pretrained: load the weights of a name/tag (local checkpoints always load).
        num_classes: 1, the single "fake" logit, for training: a saved detector with another
            head keeps its backbone and gets a new, random head (``load_model``'s
            ``replace_head``, with a warning). None, for evaluation: a saved detector as saved,
            its trained head kept (a ``.safetensors`` file's head, its keys read as every loader
            reads them: ``module.fc.weight`` of DDP weights too), never a random one; a name gets 1.
        checkpoint: a ``.safetensors`` state dict to load into the model built from
            ``source`` (a name), e.g. weights saved by another tool. Its head must fit the
            model's when ``num_classes`` is None (ValueError); else another head is replaced, with a warning.
        module_config: ``"paper"`` or ``"default"``
            (:data:`~dynsnip.models.paper_configs.MODULE_CONFIGS`): a ``dil_*`` name is built as
            that module (``model_kwargs`` on top); a saved detector keeps its own and must
            not be the other one (ValueError). None: ``model_kwargs`` only.
        **model_kwargs: DIL / timm options, e.g. ``sim_stages=()`` or ``img_size``.

    Raises:
        FileNotFoundError / ValueError: naming the path and what was expected.
    """
    if module_config is not None:
        return _build_as(source, module_config, pretrained=pretrained, num_classes=num_classes,
                         checkpoint=checkpoint, **model_kwargs)
    load_model, _ = _hub()
    text = os.fspath(source)
    path = Path(text)
    path = saved_model_folder(path) or path
    # a saved detector: as saved (None), or with a new head of num_classes if it has another one
    saved_head: dict[str, Any] = {} if num_classes is None else {"num_classes": num_classes, "replace_head": True}
    named_head = 1 if num_classes is None else num_classes  # a dil_* name has no head of its own to keep
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ValueError(
                f"{path}: only .safetensors weight files are loaded (pickled .pth/.bin files can run code); "
                "convert it, or pass a directory written by dynsnip.save_pretrained"
            )
        # the file's own head decides the classes when evaluating (never a random head); _load_weights warns
        # when training replaces it, and refuses another head when evaluating
        file_head = {"num_classes": num_classes if num_classes is not None else _head_classes(path) or 1}
        if (path.parent / "config.json").is_file():
            model = load_model(path.parent, pretrained=False, **file_head, **model_kwargs)
        else:
            arch = _safetensors_architecture(path)
            if not arch:
                raise ValueError(
                    f"{path}: cannot tell its architecture (no 'architecture' in the safetensors metadata and "
                    "no config.json next to it); pass the model name and this file as checkpoint="
                )
            model = load_model(arch, pretrained=False, **file_head, **model_kwargs)
        checkpoint = path
    elif path.is_dir():
        model = load_model(path, pretrained=True, **saved_head, **model_kwargs)
    elif (text.startswith((".", "/", "~")) or path.suffix in (".safetensors", ".pth", ".pt", ".bin")) \
            and not os.path.islink(text):  # a link that loops or leads nowhere: load_model says which
        raise FileNotFoundError(f"{text}: no such checkpoint file or directory")
    elif text.startswith("hf-hub:"):
        model = load_model(text, pretrained=pretrained, **saved_head, **model_kwargs)
    else:
        model = load_model(text, pretrained=pretrained, num_classes=named_head, **model_kwargs)
    if checkpoint is not None:
        _load_weights(model, Path(checkpoint), replace_head=num_classes is not None)
    return model


def _build_as(source: str | os.PathLike[str], module_config: str, **kwargs: Any) -> torch.nn.Module:
    """:func:`build_model` with a module configuration (see its ``module_config``)."""
    from ..hub.load import _locate
    from ..models.paper_configs import MODULE_CONFIGS, module_config_args, module_configuration

    text = os.fspath(source)
    model_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k not in ("pretrained", "num_classes", "checkpoint")}
    named = not Path(text).exists() and saved_model_folder(text) is None and _locate(text).kind == "registry"
    if named:
        return build_model(text, **kwargs, **module_config_args(module_config, model_kwargs))
    module_config_args(module_config)  # an unknown name fails here, before anything is loaded
    model = build_model(text, **kwargs, **model_kwargs)
    found = module_configuration(model)
    if found in MODULE_CONFIGS and found != module_config:
        raise ValueError(
            f"{text} is a detector of the {found!r} module configuration ({MODULE_CONFIGS[found]}), not "
            f"{module_config!r}: a saved detector keeps the module it was trained as. Use --config {found} "
            f"(module_config={found!r}) to continue from it, or start from a dil_* name to train the "
            f"{module_config!r} module")
    return model


def _head_classes(path: Path) -> int | None:
    """The classes of the ``fc`` head in the weights file ``path`` (None: it has none), read from
    its header without loading the tensors; keys are read as every loader reads them
    (:func:`~dynsnip.models.keys.unwrapped_key`: a DDP file's ``module.fc.weight`` is its head)."""
    import safetensors

    from ..models.keys import unwrapped_key

    with safetensors.safe_open(str(path), "pt") as f:
        head = next((k for k in f.keys() if unwrapped_key(k) == "fc.weight"), None)
        return int(f.get_slice(head).get_shape()[0]) if head is not None else None


def _load_weights(model: torch.nn.Module, path: Path, replace_head: bool) -> None:
    """Load the weights file ``path`` into ``model``. A head of other classes than the model's is
    replaced by the model's new one with a warning when ``replace_head`` (training to one logit),
    else it is a ValueError: evaluation never scores with a random head."""
    import safetensors.torch

    if path.suffix != ".safetensors" or not path.is_file():
        raise ValueError(f"{path}: expected an existing .safetensors file of model weights")
    from ..models.dil_resnet import checkpoint_filter_fn

    state = safetensors.torch.load_file(str(path))
    try:
        state = checkpoint_filter_fn(state, model)
    except ValueError as err:  # name the file: the message names the model only
        raise ValueError(f"{path}: {err}") from None
    target = model.state_dict()
    head = [k for k in state if k.startswith("fc.") and state[k].shape != target[k].shape]
    if not head:
        model.load_state_dict(state)
        return
    shapes = ", ".join(f"{k} {tuple(state[k].shape)} vs {tuple(target[k].shape)}" for k in head)
    theirs = f"{state['fc.weight'].shape[0]}-class head" if "fc.weight" in head else f"head ({shapes})"
    if not replace_head:
        raise ValueError(
            f"{path}: its {theirs} does not fit the model's {model.num_classes}-class head ({shapes}); expected "
            "weights of the model's classes: a detector is evaluated with its trained head, never a new random "
            "one (build it from the file itself, or pass num_classes to train a new head)")
    for k in head:  # another head (training to other labels): keep the model's new one, and say so
        state[k] = target[k]
    import warnings

    warnings.warn(f"{path}: its {theirs} was dropped for a new, randomly initialised {model.num_classes}-class "
                  "head; train it before using the model", UserWarning, stacklevel=3)
    model.load_state_dict(state)


def set_video_layout(model: torch.nn.Module, recipe: Recipe) -> torch.nn.Module:
    """Record the recipe's U (train / test) on the model, so the saved config tells data
    pipelines (``dynsnip predict``) how many snippets to sample. Checks T."""
    model = unwrap_model(model)
    if not hasattr(model, "dil_args"):
        raise TypeError(f"expected a DIL model (dynsnip's dil_* models), got {type(model).__name__}")
    if model.snippet_len != recipe.snippet_len:
        raise ValueError(
            f"recipe snippet_len T={recipe.snippet_len} but the model was built with snippet_len={model.snippet_len}; "
            "T is part of the architecture: create the model with snippet_len=T or change the recipe"
        )
    if getattr(model, "num_classes", 1) != 1:
        raise ValueError(
            f"the model has num_classes={model.num_classes}; training uses binary cross-entropy on one "
            "'fake' logit (num_classes=1), as in the paper"
        )
    model.num_snippets = recipe.num_snippets
    model.test_num_snippets = recipe.test_num_snippets
    model.dil_args.update(num_snippets=recipe.num_snippets, test_num_snippets=recipe.test_num_snippets)
    return model


def save_model(model: torch.nn.Module, directory: str | os.PathLike[str], recipe: Recipe | None = None,
               **kwargs: Any) -> Path:
    """Write ``model`` in the hub layout (:func:`dynsnip.save_pretrained`), recording the
    recipe's input size so that loaders crop faces at the size it was trained on."""
    _, save_pretrained = _hub()
    cfg = dict(kwargs.pop("pretrained_cfg", None) or {})
    if recipe is not None:  # the model's input channels (a grey or in_chans=4 detector), at the recipe's size
        stem = next((w for w in unwrap_model(model).parameters() if w.ndim == 4), None)  # the first conv's weight
        channels = int(stem.shape[1]) if stem is not None else 3
        cfg.setdefault("input_size", (channels, recipe.img_size, recipe.img_size))
    return save_pretrained(unwrap_model(model), directory, pretrained_cfg=cfg or None, **kwargs)


def _card_records(recipe: Recipe, epoch: int, train_set: Dataset, val_result: EvalResult | None,
                  data_name: str | None, unread: Sequence[FailedItem] = (), precision: str | None = None) -> dict[str, Any]:
    """``training`` / ``evaluation`` records of the saved model (:mod:`dynsnip.hub.records`): the
    training clips counted are those read in the saved epoch (``unread``: those that were not)."""
    from ..hub.records import evaluation_record, training_record

    real, fake = class_counts(train_set) or (None, None)
    labels = _labels(train_set)
    if unread and labels is not None:
        unread_fake = sum(labels[f.index] for f in unread)
        real, fake = real - (len(unread) - unread_fake), fake - unread_fake
    records: dict[str, Any] = {"training": training_record(
        recipe.to_dict(), epoch=epoch, num_train_clips=len(train_set) - len(unread),
        num_val_videos=val_result.report["overall"]["num_videos"] if val_result else None, data=data_name,
        num_train_real=real, num_train_fake=fake, precision=precision,
    )}
    if val_result is not None:
        records["evaluation"] = [evaluation_record(
            val_result.report, data=data_name, split="val", num_snippets=recipe.test_num_snippets,
            snippet_len=recipe.snippet_len, img_size=recipe.img_size, source=f"dynsnip train, epoch {epoch}",
        )]
    return records


# --------------------------------------------------------------------------- loop
@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: the trained model (unwrapped; the last epoch's weights).
        history: one dict per epoch (``epoch``, ``train_loss``, ``lr``, ``clips_per_s``, ``val``...).
        best: ``{"epoch", "metric", "value"}`` of the model in ``model_dir``.
        out_dir, model_dir: the run folder and its hub-layout ``model/``.
        seconds: wall time of the epochs run by this call.
        resumed_from: the epoch the run resumed after (0 for a fresh run).
    """

    model: torch.nn.Module
    history: list[dict[str, Any]]
    best: dict[str, Any]
    out_dir: Path
    model_dir: Path
    seconds: float
    resumed_from: int = 0


def epoch_seed(seed: int, epoch: int, rank: int = 0) -> int:
    """The seed of epoch ``epoch`` (1-based) on ``rank``: a resumed run reuses it."""
    return (int(seed) * 1_000_003 + int(epoch) * 10_007 + int(rank) * 101) % (2**63 - 1)


seed_everything = seeded  # torch's CPU generator, ``random`` and numpy's (:func:`dynsnip.engine.item_seeds.seeded`)


def _isolated_batches(loader: Any) -> Iterator[Any]:
    """``loader``'s batches, each fetched with the global random generators restored afterwards:
    without workers the items and their collate (:class:`~dynsnip.engine.item_seeds.SeededItems`)
    run in this process and must not change the draws of the training step (dropout), just as
    worker processes do not."""
    iterator = iter(loader)
    while True:
        with isolated_rng():
            try:
                batch = next(iterator)
            except StopIteration:
                return
        yield batch


def _unique_failures(parts: list[list[FailedItem]]) -> list[FailedItem]:
    """The failures of all ranks, one per dataset index (the distributed sampler pads with repeats)."""
    unique = {f.index: f for part in parts for f in part}
    return [unique[i] for i in sorted(unique)]


def _save_best_model(model: torch.nn.Module, out_dir: Path, recipe: Recipe, epoch: int, train_set: Dataset,
                     val_result: EvalResult | None, data_name: str | None,
                     save_kwargs: Mapping[str, Any] | None, unread: Sequence[FailedItem] = (),
                     precision: str | None = None) -> None:
    """Write ``out_dir/model`` (hub layout, card records) and, with validation, ``val_report.*``
    for the best epoch ``epoch`` (``unread``: its training clips that could not be read;
    ``precision``: the arithmetic it trained in)."""
    records = _card_records(recipe, epoch, train_set, val_result, data_name, unread, precision)
    save_model(model, out_dir / MODEL_DIR, recipe, **{**records, **dict(save_kwargs or {})})
    if val_result is not None:
        write_report(dict(val_result.report, epoch=epoch), out_dir / "val_report", val_result.predictions)


def _best_model_saved(out_dir: Path, epoch: int, validated: bool) -> bool:
    """Whether ``out_dir`` holds the complete ``model/`` (and, ``validated``, ``val_report.*``)
    of epoch ``epoch``. Each epoch writes its checkpoint first and then these, so a run killed
    in between resumes with a checkpoint whose best epoch has no model yet: :func:`train` then
    saves it again from the checkpoint's weights, which are that epoch's."""
    from .metrics import report_paths

    def read(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    model_dir = out_dir / MODEL_DIR
    training = read(model_dir / "config.json").get("training")
    if not (model_dir / "model.safetensors").is_file() or not isinstance(training, dict) \
            or training.get("epoch") != epoch:
        return False
    if validated:  # write_report: the JSON, the CSV, then the per-video CSV when there are videos
        json_path, csv_path, videos_path = report_paths(out_dir / "val_report")
        report = read(json_path)
        return (report.get("epoch") == epoch and csv_path.is_file()
                and (videos_path.is_file() or not report.get("videos")))
    return True


def _improved(value: float, best: float | None, mode: str) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return value > best if mode == "max" else value < best


def _log(message: str, info: DistInfo, log: Callable[[str], None] | None) -> None:
    if info.is_main and log is not None:
        log(message)


def _holding_run_folder_lock(function: Callable[..., "TrainResult"]) -> Callable[..., "TrainResult"]:
    """Run ``function`` (:func:`train`) holding its run folder's lock (main process only:
    under ``torchrun`` rank 0 writes the folder)."""

    @functools.wraps(function)
    def locked(recipe: Recipe, train_set: Dataset, val_set: Dataset | None = None,
               out_dir: str | os.PathLike[str] = "runs/dil", **kwargs: Any) -> "TrainResult":
        if int(os.environ.get("RANK", "0")) != 0:
            return function(recipe, train_set, val_set, out_dir, **kwargs)
        with RunFolderLock(out_dir):
            return function(recipe, train_set, val_set, out_dir, **kwargs)

    return locked


def _prepare_run_folder(out_dir: Path, recipe: Recipe, val_set: Dataset | None, info: DistInfo,
                        log: Callable[[str], None] | None, *, resume: bool, overwrite: bool,
                        use_saved_recipe: bool) -> tuple[Recipe, bool]:
    """``(the recipe to run, whether to resume)`` for ``out_dir`` (:func:`plan_run`), after
    checking that ``val_set`` can give the monitored metric and that some of its videos can be
    read (:func:`_check_validation_readable`); only then clears an earlier run's outputs when
    ``overwrite`` replaces it."""
    plan = plan_run(out_dir, recipe, resume=resume, overwrite=overwrite, use_saved_recipe=use_saved_recipe)
    if val_set is not None:
        check_validation_labels(val_set, plan.recipe.monitor)
        _check_validation_readable(val_set, info, log, both_classes=plan.recipe.monitor == "auc")
    for note in plan.notes:
        _log(f"note: {note}", info, log)
    if plan.clear and info.is_main:
        clear_run_outputs(out_dir)
    barrier()
    return plan.recipe, plan.resume


def _check_validation_readable(val_set: Dataset, info: DistInfo, log: Callable[[str], None] | None,
                               both_classes: bool = False) -> None:
    """Raise :class:`ValidationUnreadableError` (the failures logged first) when no video of
    ``val_set`` can be read, before any epoch runs: otherwise the first epoch's validation
    would find out, after a whole epoch of training. Reads items until one is readable,
    usually one. With ``both_classes`` (an AUC to monitor) and labels known up front, one of
    each class: with a class unreadable, every epoch's AUC would be undefined and no model saved."""
    ids = functools.partial(item_id, val_set)
    labels = _labels(val_set) if both_classes else None
    groups = [("", None)] + ([] if labels is None else
                             [(f"{name} ", [i for i, y in enumerate(labels) if y == label])
                              for name, label in (("real", 0), ("fake", 1))])
    for name, indices in groups:
        failures = first_readable_failures(val_set, item_id=ids, indices=indices)
        if failures:
            _log(f"none of the {name}validation videos could be read:\n" + describe_failures(failures), info, log)
            raise ValidationUnreadableError(
                f"none of the {len(failures)} {name}validation videos could be read ({_reasons(failures)}; listed "
                "above), so no epoch could be validated" + (" (an AUC needs real and fake videos)" if name else "")
                + "; nothing was trained: fix the validation manifest or its data, or train without validation")


def _reasons(failures: list[FailedItem] | list[dict[str, Any]]) -> str:
    """``"no_face 3, not_found 1"``: how many failures of each reason."""
    return ", ".join(f"{reason} {n}" for reason, n in count_reasons(failures).items())


def _retune(saved: Mapping[str, Any], recipe: Recipe, optimizer: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau) -> dict[str, dict[str, Any]]:
    """Apply the :data:`~dynsnip.engine.run_folder.RESUME_MAY_TUNE` settings in which ``recipe``
    differs from the checkpoint's ``saved`` recipe, and return them as ``{name: {"from", "to"}}``
    for ``history.json``. ``amp`` / ``amp_dtype`` / ``grad_clip`` are read from the recipe at
    every step; a new ``lr`` scales the learning rate in use by ``lr / saved lr``, so that a
    lower ``--lr`` lowers it even after plateau drops (and those drops are kept), which is what
    the advice after a NaN loss asks for (:mod:`dynsnip.engine.divergence`)."""
    changes = {name: {"from": saved[name], "to": getattr(recipe, name)} for name in RESUME_MAY_TUNE
               if name in saved and saved[name] != getattr(recipe, name)}
    if "lr" in changes and saved["lr"]:
        scale = recipe.lr / float(saved["lr"])
        changes["lr"]["in_use_before"] = optimizer.param_groups[0]["lr"]
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * scale
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
        changes["lr"]["in_use"] = optimizer.param_groups[0]["lr"]
    return changes


def _recipe_naming_module(recipe: Recipe, model: torch.nn.Module) -> Recipe:
    """``recipe`` with ``module_config`` set to what ``model`` is, where it is one of the named
    configurations (a ``"custom"`` model keeps the recipe's: its ``dil_args`` say the rest)."""
    from ..models.paper_configs import MODULE_CONFIGS, module_configuration

    if not hasattr(unwrap_model(model), "dil_args"):
        return recipe
    found = module_configuration(unwrap_model(model))
    return recipe.replace(module_config=found) if found in MODULE_CONFIGS else recipe


@_holding_run_folder_lock
def train(
    recipe: Recipe,
    train_set: Dataset,
    val_set: Dataset | None = None,
    out_dir: str | os.PathLike[str] = "runs/dil",
    *,
    model: torch.nn.Module | None = None,
    device: str | torch.device | None = None,
    resume: bool = True,
    progress: bool = True,
    stop_after_epoch: int | None = None,
    log: Callable[[str], None] | None = print,
    model_kwargs: Mapping[str, Any] | None = None,
    save_kwargs: Mapping[str, Any] | None = None,
    save_checkpoints: bool = True,
    data_name: str | None = None,
    overwrite: bool = False,
    use_saved_recipe: bool = False,
    compile_mode: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Fine-tune a detector following ``recipe``.

    Args:
        recipe: the settings (:class:`Recipe`; defaults = paper).
        train_set: items ``(pixels (3, U*T, H, W), label)`` sampled with ``recipe.num_snippets``
            snippets, random offsets and horizontal flip (e.g. ``FaceFramesDataset(...,
            train=True)``); 1 = fake.
        val_set: the same with ``recipe.test_num_snippets`` and no augmentation; drives the
            learning-rate drops and the choice of the saved model. Without it the
            training loss drives them and the last model is saved.
        out_dir: run folder (see module docstring).
        model: the model to train; by default ``build_model(recipe.model, pretrained=recipe.pretrained)``.
            It is created (and randomly initialised) after seeding with ``recipe.seed``.
        device: ``"cuda"`` / ``"cpu"``; default CUDA when available. Under ``torchrun`` each
            process uses GPU ``LOCAL_RANK`` and gradients are averaged by DDP.
        resume: continue from ``out_dir/checkpoint`` when it exists (its weights replace
            ``model``'s), with the recipe it was started with, except ``epochs``, ``num_workers``,
            ``log_every`` and :data:`~dynsnip.engine.run_folder.RESUME_MAY_TUNE` (``lr``,
            ``amp``, ``amp_dtype``, ``grad_clip``: applied from the next epoch on, said in a
            note and recorded as ``recipe_changed`` in that epoch's ``history.json`` entry;
            a new ``lr`` scales the learning rate in use); False starts over (which
            needs ``overwrite`` when the folder holds that earlier run).
        progress: tqdm progress bars (loss, clips/s) in the main process.
        stop_after_epoch: return after this epoch even if ``recipe.epochs`` is larger
            (the run can be resumed later, e.g. to split a long run into jobs).
        log: where epoch summaries go (main process only); None: silent.
        model_kwargs: extra options for :func:`build_model` (e.g. ``{"sim_stages": ()}``). With
            ``model`` given they build nothing: they are the options that model was built with
            (``dynsnip train`` passes its ``--model-arg``), recorded like those of a model built
            here. The checkpoint records them and the model's ``dil_args``; a resumed run
            whose options differ is refused (with ``model`` and no ``model_kwargs``, only the
            ``dil_args`` are compared).
        save_kwargs: extra options for :func:`dynsnip.save_pretrained` (``license``...).
        save_checkpoints: write ``out_dir/checkpoint`` after every epoch (False: only the
            hub-layout model, for throw-away runs such as the demo's).
        data_name: what the data is called in the saved model's card (e.g. ``"FF++ c23"``).
            The card and ``config.json`` record the recipe, the epoch and the validation
            result of the saved weights (:mod:`dynsnip.hub.records`).
        overwrite: replace the results of an earlier run in ``out_dir`` that is not resumed
            (without it such a folder raises FileExistsError).
        use_saved_recipe: when resuming with a ``recipe`` that differs from the saved one
            (other than ``epochs``, ``num_workers``, ``log_every``), continue with the saved
            settings (those of ``RESUME_MAY_TUNE`` too) instead of raising ValueError.
        compile_mode: ``torch.compile`` the model in place first (``dynsnip train --compile``;
            :func:`dynsnip.engine.compile.compile_model`, e.g. ``"auto"``); None: eager.
        data: what the data is (JSON: ``dynsnip train`` gives its manifests' paths, the hashes
            of their contents, the splits and the options that pick the clips), kept in the
            checkpoint so that a resumed run can be checked to train on the same data
            (:func:`~dynsnip.engine.checkpoint.read_checkpoint_data`).

    Returns:
        :class:`TrainResult`.

    Raises:
        RunFolderBusyError: another training holds ``out_dir``.
        FileExistsError / ValueError: see ``overwrite`` / ``use_saved_recipe``; also a
            validation set that cannot give the monitored metric (one class with ``auc``), and
            a training set of one class only, or without real videos with pseudo-fakes
            (:func:`~dynsnip.engine.data.check_training_labels`).
        ValidationUnreadableError: no validation video can be read, found before the first
            epoch (nothing trained) or by an epoch's validation (that epoch's checkpoint is
            written first, so the same call resumes after it).
        ResumedModelMismatchError: resuming with another model than the checkpoint's (other
            ``model_kwargs`` / ``dil_args``, or weights of other keys or shapes); nothing is written.
        CorruptCheckpointError: the checkpoint to resume cannot be read.
    """
    recipe.validate()
    if model is not None:  # the recipe names the module the given model is (recipe.json, model card)
        recipe = _recipe_naming_module(recipe, model)
    out_dir = Path(out_dir)
    info = init_distributed(device)
    device = info.device
    if recipe.batch_size % info.world_size:
        raise ValueError(
            f"batch_size {recipe.batch_size} (clips per step over all processes) is not divisible by the "
            f"{info.world_size} processes; choose a multiple of {info.world_size}"
        )
    if len(train_set) == 0:
        raise ValueError("the training dataset is empty; expected labelled clips")
    check_training_labels(train_set, recipe.pseudo_fakes)  # one class, or pseudo-fakes without reals: refused
    per_rank_batch = recipe.batch_size // info.world_size

    ckpt_dir = out_dir / CHECKPOINT_DIR
    recipe, will_resume = _prepare_run_folder(out_dir, recipe, val_set, info, log, resume=resume,
                                              overwrite=overwrite, use_saved_recipe=use_saved_recipe)
    seed_everything(recipe.seed)
    # the options the model is built with, as given (None: a ready-made model of unknown options), for the checkpoint
    given_kwargs = dict(model_kwargs or {}) if model is None else None if model_kwargs is None else dict(model_kwargs)
    if model is None:  # resuming: the checkpoint's weights replace the pretrained ones, no need to fetch them
        model = build_model(recipe.model, pretrained=recipe.pretrained and not will_resume,
                            num_classes=recipe.num_classes, module_config=recipe.module_config,
                            **dict(model_kwargs or {}))
    set_video_layout(model, recipe)
    if recipe.grad_checkpointing:
        model.set_grad_checkpointing(True)
    model.to(device)
    if info.distributed and recipe.sync_bn and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if compile_mode is not None:  # --compile: torch.compile in place (dynsnip.engine.compile)
        compile_model(model, device, compile_mode, inference=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, betas=recipe.betas, weight_decay=recipe.weight_decay)
    monitor = recipe.monitor if val_set is not None else "loss"
    mode = "max" if monitor in ("auc", "accuracy") else "min"
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode=mode, factor=recipe.lr_factor, patience=recipe.plateau_patience,
        threshold=recipe.plateau_threshold, min_lr=recipe.min_lr,
    )
    use_amp = recipe.amp and device.type == "cuda"
    amp_dtype = getattr(torch, recipe.amp_dtype)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": None, "metric": monitor, "value": None}
    retuned: dict[str, dict[str, Any]] = {}
    start_epoch = 0
    global_step = 0
    if will_resume:
        state = load_training_checkpoint(ckpt_dir)
        saved = state.get("recipe", {})
        if saved.get("batch_size") not in (None, recipe.batch_size):
            _log(f"note: resuming with batch_size {recipe.batch_size} (checkpoint used {saved.get('batch_size')})", info, log)
        if state.get(MODEL_OPTIONS_KEY) is None:  # written before dynsnip recorded them
            _log(f"note: the checkpoint in {ckpt_dir} does not record the options its model was built with (written by "
                 "an earlier dynsnip): they could not be checked against this run's (--model-arg / model_kwargs); "
                 "resuming, assuming they are the same", info, log)
        restore_training_state(state, unwrap_model(model), optimizer, scheduler, scaler,
                               model_options=model_options_record(unwrap_model(model), given_kwargs))
        if given_kwargs is None and isinstance(state.get(MODEL_OPTIONS_KEY), Mapping):
            given_kwargs = state[MODEL_OPTIONS_KEY].get("kwargs")  # a ready-made model: keep the record it resumed
        history, best = state["history"], state["best"]
        start_epoch, global_step = int(state["epoch"]), int(state["global_step"])
        _log(f"resuming {out_dir} after epoch {start_epoch} of {recipe.epochs}", info, log)
        if any_rank(info.is_main and best["epoch"] == start_epoch
                    and not _best_model_saved(out_dir, start_epoch, val_set is not None),
                    device if device.type == "cuda" else None):
            _log(f"note: the model of epoch {start_epoch} (the best so far) was not completely saved before the run "
                 "stopped: saving it again from the checkpoint", info, log)
            val_result = None if val_set is None else evaluate(
                model, val_set, batch_size=per_rank_batch, device=device, amp=recipe.amp and device.type == "cuda",
                amp_dtype=getattr(torch, recipe.amp_dtype), num_workers=recipe.num_workers, dist_info=info,
                progress=progress, desc=f"val {start_epoch}")
            if info.is_main:
                _save_best_model(model, out_dir, recipe, start_epoch, train_set, val_result, data_name, save_kwargs,
                                 precision=f"{recipe.amp_dtype} autocast" if use_amp else "float32")
        retuned = _retune(saved, recipe, optimizer, scheduler)
        if retuned:
            _log(f"note: from epoch {start_epoch + 1} on: " + ", ".join(
                f"{name} {change['to']!r} (until now {change['from']!r})" for name, change in retuned.items())
                + (f"; the learning rate in use, {retuned['lr']['in_use_before']:g} (plateau drops included), "
                   f"becomes {retuned['lr']['in_use']:g}" if "lr" in retuned else "")
                + f"; history.json records the change at epoch {start_epoch + 1}", info, log)

    if info.distributed:
        ddp_args = {"device_ids": [device.index]} if device.type == "cuda" else {}
        train_model: torch.nn.Module = torch.nn.parallel.DistributedDataParallel(model, **ddp_args)
    else:
        train_model = model
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "recipe.json").write_text(recipe.to_json() + "\n", encoding="utf-8")

    sampler = DistributedSampler(
        train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=recipe.seed, drop_last=False
    )
    loader_args = dict(
        batch_size=per_rank_batch, sampler=sampler, num_workers=recipe.num_workers, drop_last=False,
        pin_memory=device.type == "cuda", persistent_workers=False,
        collate_fn=collate_for_recipe(recipe, unwrap_model(model)),  # + a pseudo-fake per real clip when set
    )
    readable_train_set = SkipUnreadable(train_set, item_id=functools.partial(item_id, train_set))
    reduce_device = device if device.type == "cuda" else None
    last_epoch = recipe.epochs if stop_after_epoch is None else min(recipe.epochs, int(stop_after_epoch))
    run_start = time.perf_counter()
    for epoch in range(start_epoch + 1, last_epoch + 1):
        seed_everything(epoch_seed(recipe.seed, epoch, info.rank))
        sampler.set_epoch(epoch)
        # every item's (and batch's) random draws from (seed, epoch, index): the same with any number of workers
        loader = DataLoader(SeededItems(readable_train_set, recipe.seed, epoch), **loader_args)
        train_model.train()
        lr = optimizer.param_groups[0]["lr"]
        epoch_start = time.perf_counter()
        loss_sum, seen = 0.0, 0
        trained = [0, 0]  # real and fake clips this process trained on (pseudo-fakes included)
        failures: list[FailedItem] = []
        order = list(sampler)  # this process's clips in this epoch's order: names a batch whose loss is NaN
        bar = progress_bar(loader, len(loader), f"epoch {epoch}/{recipe.epochs}", progress and info.is_main)
        for step, (batch, failed) in enumerate(_isolated_batches(bar), start=1):
            failures += failed
            if any_rank(batch is None, reduce_device):  # DDP: every process skips the step together
                continue
            pixels, labels = batch
            pixels = pixels.to(device, non_blocking=True)
            labels = torch.as_tensor(labels, dtype=torch.float32).to(device, non_blocking=True).flatten()
            with autocast_context(device, use_amp, amp_dtype):
                logits = train_model(pixels)
            if logits.ndim != 2 or logits.shape[1] != 1:
                raise ValueError(f"model returned logits of shape {tuple(logits.shape)}; expected (B, 1)")
            loss = F.binary_cross_entropy_with_logits(logits[:, 0].float(), labels)
            check_finite_loss(loss, epoch, step, lambda: [item_id(train_set, i) for i in batch_indices(
                order, step, per_rank_batch, [f.index for f in failed])], reduce_device)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if recipe.grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            global_step += 1
            loss_sum += loss.item() * len(labels)
            seen += len(labels)
            fakes = int(labels.sum().item())
            trained[0] += len(labels) - fakes
            trained[1] += fakes
            elapsed = time.perf_counter() - epoch_start
            rate = seen * info.world_size / max(elapsed, 1e-9)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", clips_s=f"{rate:.1f}", lr=f"{lr:.1e}")
            elif progress and recipe.log_every and step % recipe.log_every == 0:
                _log(f"  epoch {epoch} step {step}/{len(loader)} loss {loss_sum / seen:.4f} {rate:.1f} clips/s", info, log)
        epoch_seconds = time.perf_counter() - epoch_start
        check_finite_weights(model, epoch, global_step)
        skipped = _unique_failures(all_gather_objects(failures))
        if skipped:
            _log(f"epoch {epoch}: skipped {len(skipped)} of {len(train_set)} training clips that could not be read:\n"
                 + describe_failures(skipped), info, log)
            if 2 * len(skipped) > len(train_set):
                reasons = ", ".join(f"{reason} {n}" for reason, n in count_reasons(skipped).items())
                raise TooManyUnreadableError(
                    f"{len(skipped)} of the {len(train_set)} training clips could not be read in epoch {epoch} "
                    f"({reasons}; listed above); expected a few bad files at most: check the manifest paths and "
                    "the data"
                )
        real_trained, fake_trained = (sum(c) for c in zip(*all_gather_objects(tuple(trained))))
        absent = 1 if not fake_trained else 0 if not real_trained else None
        labels = _labels(train_set) if absent is not None and skipped else None
        if absent is not None and skipped and (labels is None or any(labels[f.index] == absent for f in skipped)):
            # the clips of one class could not be read: trained on the other alone, a constant, not a detector
            present, absent = ("real", "fake") if real_trained else ("fake", "real")
            raise TooManyUnreadableError(
                f"epoch {epoch} trained on {real_trained + fake_trained} {present} clips and no {absent} one: every "
                f"{absent} training clip that was drawn could not be read"
                + (f" ({_reasons(skipped)}; listed above)" if skipped else "")
                + f"; a detector needs both classes, so nothing of this epoch is saved: fix the {absent} videos' "
                "paths or data")
        broadcast_buffers(model)  # every rank evaluates and saves rank 0's BatchNorm statistics
        train_loss = all_reduce_mean(loss_sum / max(seen, 1), reduce_device)
        record: dict[str, Any] = {
            "epoch": epoch, "lr": lr, "train_loss": train_loss, "seconds": epoch_seconds,
            "clips_per_s": seen * info.world_size / max(epoch_seconds, 1e-9), "steps": global_step,
            "trained": {"real": real_trained, "fake": fake_trained},
        }
        if retuned and epoch == start_epoch + 1:  # what this resumed run changed, from this epoch on
            record["recipe_changed"] = retuned
        if skipped:
            record["skipped"] = [f.report() for f in skipped]
        val_result: EvalResult | None = None
        unscored: list[dict[str, Any]] | None = None  # no validation video could be scored this epoch
        if val_set is not None:
            try:
                val_result = evaluate(
                    model, val_set, batch_size=per_rank_batch, device=device, amp=use_amp, amp_dtype=amp_dtype,
                    num_workers=recipe.num_workers, dist_info=info, progress=progress, desc=f"val {epoch}",
                )
            except NothingScoredError as err:
                unscored = [f.report() if isinstance(f, FailedItem) else f for f in err.failures]
                _log(f"epoch {epoch}: none of the {len(val_set)} validation videos could be read or scored:\n"
                     + describe_failures(unscored), info, log)
                record["val_failed"] = unscored
        if val_result is not None:
            if val_result.failures:
                _log(f"epoch {epoch}: {len(val_result.failures)} validation video(s) could not be read and are not "
                     "in the metrics:\n" + describe_failures(val_result.failures), info, log)
                record["val_failed"] = val_result.failures
            overall = val_result.report["overall"]
            record["val"] = {"auc": overall["auc"], "accuracy": overall["accuracy"], "loss": val_result.loss}
            value = {"auc": overall["auc"], "accuracy": overall["accuracy"], "loss": val_result.loss}[monitor]
        else:
            value = train_loss
        defined = unscored is None and math.isfinite(value)  # an AUC of one class scored is undefined (NaN)
        if unscored is None and not defined:
            _log(f"epoch {epoch}: the validation {monitor} is undefined (the videos scored were of one class): "
                 "the learning-rate schedule waits, and this epoch cannot be the best", info, log)
        if defined:  # no metric: the schedule waits for one (a NaN would count as no improvement and lower it)
            scheduler.step(value)
        history.append(record)
        improved = defined and (_improved(value, best["value"], mode) or val_set is None)
        if improved:
            best = {"epoch": epoch, "metric": monitor, "value": value}
        if info.is_main:
            if save_checkpoints:
                save_training_checkpoint(
                    ckpt_dir,
                    model_state=unwrap_model(model).state_dict(),
                    optimizer_state=optimizer.state_dict(),
                    state={
                        "epoch": epoch, "global_step": global_step, "history": history, "best": best,
                        "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                        "recipe": recipe.to_dict(),
                        "model": {"class": type(unwrap_model(model)).__name__},
                        MODEL_OPTIONS_KEY: model_options_record(unwrap_model(model), given_kwargs),
                        **({"data": dict(data)} if data is not None else {}),
                    },
                )
            if improved:  # after the checkpoint: a kill in between is repaired on resume (_resave_best_model)
                _save_best_model(model, out_dir, recipe, epoch, train_set, val_result, data_name, save_kwargs,
                                 unread=skipped, precision=f"{recipe.amp_dtype} autocast" if use_amp else "float32")
            # standard JSON (jq, other languages): an undefined metric (an AUC on one class) is null, not NaN
            from ..hub.records import json_safe

            (out_dir / "history.json").write_text(json.dumps(json_safe(history), indent=1, allow_nan=False) + "\n",
                                                  encoding="utf-8")
            val_text = ""
            if "val" in record:
                v = record["val"]
                val_text = f" | val auc {v['auc']:.4f} acc {v['accuracy']:.4f} loss {v['loss']:.4f}"
            _log(
                f"epoch {epoch}/{recipe.epochs} loss {train_loss:.4f} lr {lr:.1e} "
                f"{record['clips_per_s']:.1f} clips/s {epoch_seconds:.0f}s{val_text}"
                + (" *" if improved and val_set is not None else ""),
                info, log,
            )
        if unscored is not None:  # every rank got NothingScoredError: all stop, the epoch's training kept
            kept = (f"this epoch's training is kept in {ckpt_dir} (the same command resumes after it)"
                    if save_checkpoints else "its weights are not saved")
            raise ValidationUnreadableError(
                f"none of the {len(val_set)} validation videos could be read or scored in epoch {epoch} "
                f"({_reasons(unscored)}; listed above), so the epoch has no {monitor}: training stopped; {kept}. "
                "Fix the validation manifest or its data, or train without validation")
        barrier()
    if info.is_main and (out_dir / MODEL_DIR / "config.json").is_file():
        # resumed with another recipe (more epochs) and no better epoch since: the weights stay, the card says what ran
        from ..hub.records import update_training_recipe

        update_training_recipe(out_dir / MODEL_DIR, recipe.to_dict())
    return TrainResult(
        model=unwrap_model(model), history=history, best=best, out_dir=out_dir, model_dir=out_dir / MODEL_DIR,
        seconds=time.perf_counter() - run_start, resumed_from=start_epoch,
    )
