"""Resumable training checkpoints without pickle: tensors in safetensors, the rest in JSON.

A checkpoint is a folder::

    model.safetensors       the model's state dict
    optimizer.safetensors   every tensor of the optimizer state ("state.<param>.<name>")
    state.json              epoch, step, history, best, scheduler / scaler / optimizer
                            scalars, recipe, the model's build options
                            (``model_options``: class, ``model_kwargs`` / ``--model-arg``,
                            ``dil_args``) (written last)

It is written to ``<name>.tmp`` and swapped in with renames, so a run killed at any moment
leaves either the previous checkpoint or the new one, never a half-written one; its files and
the new folder are flushed to disk (``fsync``) before the swap, and the run folder (the renames)
after it, before the previous checkpoint is deleted, so that a power loss does not leave a
renamed but empty checkpoint either. Loading never
unpickles anything (``torch.load`` is not used), so a checkpoint from elsewhere can at worst
fail to load, not run code. A checkpoint that cannot be read (a damaged file) raises
:class:`CorruptCheckpointError`, which names the folder and says that ``--no-resume`` starts the
run over. An intact checkpoint of another model than the one being resumed (other build
options, weights of other keys or shapes) raises :class:`ResumedModelMismatchError` instead,
which names the differences and asks for the options the run was started with.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import safetensors.torch
import torch

from ..hub.safetensors_file import save_file

__all__ = [
    "save_training_checkpoint",
    "load_training_checkpoint",
    "find_training_checkpoint",
    "read_checkpoint_recipe",
    "read_checkpoint_epoch",
    "optimizer_state_to_flat",
    "optimizer_state_from_flat",
    "restore_training_state",
    "model_options_record",
    "model_option_differences",
    "CorruptCheckpointError",
    "ResumedModelMismatchError",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = 1
STATE_NAME = "state.json"
MODEL_NAME = "model.safetensors"
OPTIMIZER_NAME = "optimizer.safetensors"
# state.json's record of how the model was built (``state["model"]`` is replaced by the weights on loading)
MODEL_OPTIONS_KEY = "model_options"
# dil_args that follow the recipe (set_video_layout), compared as recipe settings already
_RECIPE_DIL_ARGS = ("num_snippets", "test_num_snippets")


class CorruptCheckpointError(ValueError):
    """A training checkpoint cannot be read, or does not fit the model and optimizer it is
    restored into; the message names the folder and says that ``--no-resume`` starts over."""


class ResumedModelMismatchError(CorruptCheckpointError):
    """The checkpoint is intact, but the model being resumed is not the one the run was started
    with (other build options, or weights of other keys / shapes); the message names the
    differences and asks for the original ``--model`` / ``--model-arg``. A subclass of
    :class:`CorruptCheckpointError` so that callers catching that (the checkpoint cannot be
    resumed into this model) still do; its message gives no advice to start the run over."""


@contextmanager
def _unreadable_checkpoint(directory: str | os.PathLike[str]) -> Iterator[None]:
    from safetensors import SafetensorError

    try:
        yield
    except CorruptCheckpointError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, RuntimeError, OSError, SafetensorError) as err:
        detail = str(err).splitlines()[0] if str(err) else ""
        raise CorruptCheckpointError(
            f"{directory}: the training checkpoint cannot be resumed ({type(err).__name__}: {detail[:200]}); "
            f"expected {MODEL_NAME}, {OPTIMIZER_NAME} and {STATE_NAME} as dynsnip train writes them for this "
            "model. `dynsnip train --no-resume --overwrite` (resume=False, overwrite=True) starts the run over and replaces it"
        ) from None


def _fsync_directory(path: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (new files, renames) to disk; a no-op where the platform or
    filesystem does not allow a folder to be opened or synced (Windows, some network mounts)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # EINVAL and the like: this filesystem does not sync folders
        pass
    finally:
        os.close(fd)


def _write_text_synced(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` and flush it to disk before returning."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _jsonable(value: Any) -> Any:
    """Tuples -> lists (marked), tensors -> numbers; everything else as is."""
    if isinstance(value, torch.Tensor):
        return {"__tensor_scalar__": value.item()} if value.numel() == 1 else value.tolist()
    if isinstance(value, tuple):
        return {"__tuple__": [_jsonable(v) for v in value]}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_from_json(v) for v in value["__tuple__"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def optimizer_state_to_flat(state_dict: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into ``{"state.<i>.<name>": tensor}`` and a JSON part."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, entries in state_dict["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{param_id}.{name}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    return tensors, {"param_groups": _jsonable(state_dict["param_groups"]), "scalars": _jsonable(scalars)}


def optimizer_state_from_flat(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_state_to_flat`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, param_id, name = key.split(".", 2)
        state.setdefault(int(param_id), {})[name] = value
    for param_id, entries in _from_json(meta.get("scalars", {})).items():
        state.setdefault(int(param_id), {}).update(entries)
    return {"state": state, "param_groups": _from_json(meta["param_groups"])}


def _float_json(value: Any) -> Any:
    """JSON has no inf/NaN in the standard; keep them as strings Python reads back."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, dict):
        return {k: _float_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_float_json(v) for v in value]
    return value


def _float_from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: _float_from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_float_from_json(v) for v in value]
    return value


def save_training_checkpoint(
    directory: str | os.PathLike[str],
    *,
    model_state: Mapping[str, torch.Tensor],
    optimizer_state: Mapping[str, Any],
    state: Mapping[str, Any],
) -> Path:
    """Write a checkpoint folder atomically (see module docstring) and return its path.

    Args:
        directory: the checkpoint folder (e.g. ``<run>/checkpoint``).
        model_state: the (unwrapped) model's ``state_dict()``.
        optimizer_state: ``optimizer.state_dict()``.
        state: JSON-able training state (epoch, history, scheduler ...); tuples and
            non-finite floats survive the round trip.
    """
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().to("cpu").contiguous() for k, v in model_state.items()}, tmp / MODEL_NAME)
    opt_tensors, opt_meta = optimizer_state_to_flat(optimizer_state)
    save_file(opt_tensors, tmp / OPTIMIZER_NAME)
    payload = dict(_jsonable(dict(state)), format=CHECKPOINT_FORMAT, optimizer=opt_meta)
    _write_text_synced(tmp / STATE_NAME, json.dumps(_float_json(payload), indent=1))  # save_file syncs the others
    _fsync_directory(tmp)  # the three files' entries, before the folder is swapped in
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    tmp.rename(directory)
    _fsync_directory(directory.parent)  # the renames, before the previous checkpoint is deleted
    shutil.rmtree(old, ignore_errors=True)
    return directory


def find_training_checkpoint(directory: str | os.PathLike[str]) -> Path | None:
    """The complete checkpoint at ``directory`` (or the ``.old`` one a kill between two renames
    left behind); None if there is none."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / STATE_NAME).is_file() and (candidate / MODEL_NAME).is_file():
            return candidate
    return None


def load_training_checkpoint(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint folder: ``{"model": state_dict, "optimizer": state_dict, **state}``.

    Raises:
        FileNotFoundError: no complete checkpoint there.
        ValueError: written by an unknown checkpoint format.
    """
    found = find_training_checkpoint(directory)
    if found is None:
        raise FileNotFoundError(
            f"{directory}: no training checkpoint ({STATE_NAME} + {MODEL_NAME}); expected a folder written "
            "by dynsnip's trainer"
        )
    with _unreadable_checkpoint(found):
        state = _float_from_json(json.loads((found / STATE_NAME).read_text(encoding="utf-8")))
        if not isinstance(state, dict):
            raise ValueError(f"{STATE_NAME} holds a {type(state).__name__}, not an object")
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"{found}: checkpoint format {state.get('format')!r}, this dynsnip reads format {CHECKPOINT_FORMAT}"
            )
        state = _from_json(state)
        opt_meta = state.pop("optimizer")
        state["model"] = safetensors.torch.load_file(found / MODEL_NAME)
        state["optimizer"] = optimizer_state_from_flat(safetensors.torch.load_file(found / OPTIMIZER_NAME), opt_meta)
    state["path"] = str(found)
    return state


def read_checkpoint_recipe(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The recipe (``Recipe.to_dict()``) saved in the checkpoint at ``directory``, read from its
    ``state.json`` alone (no tensors); None when there is no readable one (a damaged checkpoint
    is then reported by :func:`load_training_checkpoint`)."""
    state = _read_state(directory)
    recipe = state.get("recipe") if isinstance(state, dict) else None
    return dict(recipe) if isinstance(recipe, dict) else None


def read_checkpoint_data(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """What the run at ``directory`` trained on (``train(..., data=...)``: the manifests, their
    contents' hashes and splits), read from ``state.json`` alone; None when not recorded
    (checkpoints of earlier versions, or runs of the library API that gave none)."""
    state = _read_state(directory)
    data = state.get("data") if isinstance(state, dict) else None
    return dict(data) if isinstance(data, dict) else None


def read_checkpoint_epoch(directory: str | os.PathLike[str]) -> int | None:
    """The epoch (1-based, finished) of the checkpoint at ``directory``, read from its
    ``state.json`` alone; None when there is no readable one."""
    state = _read_state(directory)
    epoch = state.get("epoch") if isinstance(state, dict) else None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def _read_state(directory: str | os.PathLike[str]) -> Any:
    """The ``state.json`` of the checkpoint at ``directory`` (no tensors), or None."""
    found = find_training_checkpoint(directory)
    if found is None:
        return None
    try:
        return _from_json(_float_from_json(json.loads((found / STATE_NAME).read_text(encoding="utf-8"))))
    except (OSError, ValueError):
        return None


def _option_json(value: Any) -> Any:
    """``value`` (a model option) as plain JSON, the same for the same option in every process:
    tuples -> lists, dtypes / classes / functions -> their dotted names, other objects -> their
    ``repr`` without a memory address."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _option_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_option_json(v) for v in value]
    if isinstance(value, torch.dtype):
        return str(value)
    name = getattr(value, "__qualname__", None)
    if isinstance(name, str):
        return f"{getattr(value, '__module__', '')}.{name}".lstrip(".")
    text = repr(value)
    return f"<{type(value).__module__}.{type(value).__qualname__}>" if " at 0x" in text else text


def model_options_record(model: torch.nn.Module, model_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a checkpoint records of how ``model`` was built, to check that a resumed run builds the
    same one: its class, the options it was built with as given (``model_kwargs`` /
    ``--model-arg``; None: not known, e.g. a model passed in ready-made) and its ``dil_args``
    (every DIL option, :class:`~dynsnip.models.dil_resnet.DILResNet`; None for other models)."""
    dil_args = getattr(model, "dil_args", None)
    return {
        "class": type(model).__name__,
        "kwargs": None if model_kwargs is None else _option_json(dict(model_kwargs)),
        "dil_args": _option_json(dil_args) if isinstance(dil_args, Mapping) else None,
    }


_MISSING = object()  # an option one of two records does not have


def _flat_differences(saved: Mapping[str, Any], current: Mapping[str, Any], skip: tuple[str, ...] = (),
                      prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(name, saved, current)`` for every key whose value differs (``_MISSING`` where absent);
    dict values are compared key by key (``intra_args.motion_fraction``)."""
    found = []
    for key in sorted(set(saved) | set(current)):
        if key in skip:
            continue
        old, new = saved.get(key, _MISSING), current.get(key, _MISSING)
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            found += _flat_differences(old, new, prefix=f"{prefix}{key}.")
        elif old != new:
            found.append((f"{prefix}{key}", old, new))
    return found


def model_option_differences(saved: Mapping[str, Any], current: Mapping[str, Any], *,
                             dil_args: bool = True) -> list[tuple[str, Any, Any]]:
    """``(option, saved value, current value)`` for every build option in which two
    :func:`model_options_record` records differ: the class, the options given (compared only
    when both are known) and, with ``dil_args``, the DIL options (less ``num_snippets`` /
    ``test_num_snippets``, which follow the recipe, and those already named as given options).
    A value absent on one side is :data:`_MISSING` (shown as "not given")."""
    found: list[tuple[str, Any, Any]] = []
    if saved.get("class") and current.get("class") and saved["class"] != current["class"]:
        found.append(("model class", saved["class"], current["class"]))
    old_kwargs, new_kwargs = saved.get("kwargs"), current.get("kwargs")
    if isinstance(old_kwargs, Mapping) and isinstance(new_kwargs, Mapping):
        found += _flat_differences(_option_json(old_kwargs), _option_json(new_kwargs))
    old_dil, new_dil = saved.get("dil_args"), current.get("dil_args")
    if dil_args and isinstance(old_dil, Mapping) and isinstance(new_dil, Mapping):
        named = {name.split(".")[0] for name, _, _ in found}
        found += [d for d in _flat_differences(_option_json(old_dil), _option_json(new_dil), skip=_RECIPE_DIL_ARGS)
                  if d[0].split(".")[0] not in named]
    return found


def _shown_options(differences: list[tuple[str, Any, Any]]) -> str:
    """``"drop_rate was 0.0, now 0.5; channels was [8, 16], now not given"``."""
    def shown(value: Any) -> str:
        if value is _MISSING:
            return "not given"
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            return repr(value)

    return "; ".join(f"{name} was {shown(old)}, now {shown(new)}" for name, old, new in differences)


_SIZE_MISMATCH = re.compile(r"size mismatch for (\S+): copying a param with shape torch\.Size\(\[([^\]]*)\]\) "
                            r"from checkpoint, the shape in current model is torch\.Size\(\[([^\]]*)\]\)\.?")


def _state_dict_mismatch(err: BaseException) -> str:
    """torch's ``load_state_dict`` error in one line: the first few keys of each list, and the first
    few tensors of other shapes as ``name (checkpoint) vs (this model)``, each with a count."""
    from ..hub.load import _mismatch_details

    details = _mismatch_details(err)
    return _SIZE_MISMATCH.sub(lambda m: f"size mismatch for {m.group(1)}: ({m.group(2)}) in the checkpoint vs "
                                        f"({m.group(3)}) in this model", details)


def _mismatch_message(directory: Any, what: str) -> str:
    """The :class:`ResumedModelMismatchError` message: ``what`` differs, and what to do."""
    return (
        f"{directory}: the model being resumed is not the one this run was started with: {what}. The checkpoint is "
        "intact; resuming it into another model would continue the training with another network. Pass the model "
        f"options the run was started with (the same --model and --model-arg KEY=JSON, model_kwargs= in Python; "
        f"recorded under {MODEL_OPTIONS_KEY!r} in {STATE_NAME}, and the recipe in recipe.json), or train the other "
        "model in a new run folder (another --out; --no-resume --overwrite would delete this run's results)"
    )


def restore_training_state(state: Mapping[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           scheduler: Any, scaler: Any = None, model_options: Mapping[str, Any] | None = None) -> None:
    """Load a :func:`load_training_checkpoint` result into the training objects.

    ``model_options``: :func:`model_options_record` of ``model`` as this run built it; compared
    with the checkpoint's record (when it has one: checkpoints of earlier versions do not) before
    the weights are loaded (class, options given), and after (``dil_args``, which loading may
    adapt to the checkpoint's layout, see ``DILResNet.adopt_checkpoint_layout``).

    Raises:
        ResumedModelMismatchError: the model differs from the checkpoint's: other build options
            (each named, was / now), or weights of other keys or shapes (the first few named).
        CorruptCheckpointError: an unreadable checkpoint, or one of another optimizer (naming
            ``--no-resume``).
    """
    where = state.get("path", "checkpoint")
    saved = state.get(MODEL_OPTIONS_KEY)
    saved = saved if isinstance(saved, Mapping) and model_options is not None else None
    if saved is not None and (differences := model_option_differences(saved, model_options, dil_args=False)):
        raise ResumedModelMismatchError(_mismatch_message(where, f"its build options differ "
                                                                 f"({_shown_options(differences)})"))
    with _unreadable_checkpoint(where):
        for key in ("epoch", "global_step", "history", "best", "scheduler"):
            if key not in state:
                raise KeyError(f"{STATE_NAME} has no {key!r}")
        before = model_options_record(model, None)  # a failed load leaves dil_args as they were
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as err:
            if "Error(s) in loading state_dict" not in str(err):
                raise
            headline = str(err).splitlines()[0].strip()
            what = (f"its weights do not fit the checkpoint's ({type(err).__name__}: {headline} "
                    f"{_state_dict_mismatch(err)})")
            if saved is not None and (differences := model_option_differences(saved, before)):
                what += f"; its DIL options differ ({_shown_options(differences)})"
            raise ResumedModelMismatchError(_mismatch_message(where, what)) from None
        if saved is not None and (differences := model_option_differences(saved, model_options_record(model, None))):
            raise ResumedModelMismatchError(_mismatch_message(where, f"its DIL options differ "
                                                                     f"({_shown_options(differences)})"))
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") and scaler is not None:
            scaler.load_state_dict(state["scaler"])
