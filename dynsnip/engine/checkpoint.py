"""Resumable training checkpoints without pickle: tensors in safetensors, the rest in JSON.

A checkpoint is a folder::

    model.safetensors       the model's state dict
    optimizer.safetensors   every tensor of the optimizer state ("state.<param>.<name>")
    state.json              epoch, step, history, best, scheduler / scaler / optimizer
                            scalars, recipe, model architecture (written last)

It is written to ``<name>.tmp`` and swapped in with renames, so a run killed at any moment
leaves either the previous checkpoint or the new one, never a half-written one. Loading
never unpickles anything (``torch.load`` is not used), so a checkpoint from elsewhere can
at worst fail to load, not run code. A checkpoint that cannot be read or does not fit the
model (a damaged file, another model's checkpoint) raises :class:`CorruptCheckpointError`,
which names the folder and says that ``--no-resume`` starts the run over.
"""
from __future__ import annotations

import json
import math
import os
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
    "CorruptCheckpointError",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = 1
STATE_NAME = "state.json"
MODEL_NAME = "model.safetensors"
OPTIMIZER_NAME = "optimizer.safetensors"


class CorruptCheckpointError(ValueError):
    """A training checkpoint cannot be read, or does not fit the model and optimizer it is
    restored into; the message names the folder and says that ``--no-resume`` starts over."""


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
    (tmp / STATE_NAME).write_text(json.dumps(_float_json(payload), indent=1), encoding="utf-8")
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        directory.rename(old)
    tmp.rename(directory)
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


def restore_training_state(state: Mapping[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           scheduler: Any, scaler: Any = None) -> None:
    """Load a :func:`load_training_checkpoint` result into the training objects; a checkpoint of
    another model or optimizer raises :class:`CorruptCheckpointError` (naming ``--no-resume``)."""
    with _unreadable_checkpoint(state.get("path", "checkpoint")):
        for key in ("epoch", "global_step", "history", "best", "scheduler"):
            if key not in state:
                raise KeyError(f"{STATE_NAME} has no {key!r}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") and scaler is not None:
            scaler.load_state_dict(state["scaler"])
