"""What a training may do with its run folder: resume it, start it, or refuse.

A run folder holds an earlier run's results (``model/``, ``checkpoint/``, ``history.json``,
``recipe.json``, ``val_report.*``, see :mod:`dynsnip.engine.train`). :func:`plan_run`
decides, before any work starts:

* a resumable checkpoint and ``resume``: continue it, but only with the recipe it was
  started with. Every setting of the command's recipe is compared with the saved one; a
  difference is refused, naming the settings, unless ``use_saved_recipe`` (then the saved
  settings are used and the command's differing ones are ignored, said in a note).
  ``epochs`` may change (extending or shortening a run is what resuming is for; not below the
  epochs already run, which ``recipe.json`` and the model card would then misstate), and so may
  ``num_workers`` / ``log_every``, which do not change what is computed. The settings of
  :data:`RESUME_MAY_TUNE` (``lr``, ``amp``, ``amp_dtype``, ``grad_clip``) may change too: they
  are what a run stopped on a NaN loss is resumed with (:mod:`dynsnip.engine.divergence`);
  :func:`dynsnip.engine.train` says so in a note and records in ``history.json`` from which
  epoch on the new values ran (``use_saved_recipe`` keeps the saved ones);
* an empty (or missing) folder: start;
* a folder holding only what a run writes before its first checkpoint (:data:`FIRST_RUN_LEFTOVERS`:
  its ``recipe.json``, a half-written ``checkpoint.tmp``; the lock file is not counted): that run
  was stopped during its first epoch and had nothing to keep, so it is started over (its
  leftovers deleted), said in a note: the command that was killed can simply be run again;
* a folder with anything else in it (an earlier run without a checkpoint, ``resume=False``
  on a resumable run, or unrelated files): refused unless ``overwrite``. With ``overwrite``
  the earlier run's outputs are deleted before the new run starts
  (:func:`clear_run_outputs`); files that are not run outputs are left alone.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checkpoint import find_training_checkpoint, read_checkpoint_epoch, read_checkpoint_recipe
from .recipe import Recipe
from .run_lock import LOCK_NAME

__all__ = ["RunPlan", "plan_run", "recipe_differences", "clear_run_outputs", "stopped_before_first_checkpoint",
           "RESUME_MAY_CHANGE", "RESUME_MAY_TUNE", "RUN_OUTPUTS", "FIRST_RUN_LEFTOVERS"]

CHECKPOINT_DIR = "checkpoint"
# Settings a resumed run may change: the length of the run, and how fast data is read.
RESUME_MAY_CHANGE = ("epochs", "num_workers", "log_every")
# Settings a resumed run may change from its next epoch on, with a note and a record in history.json: what the
# advice after a NaN loss asks for (a lower lr, float32 or bfloat16, gradient clipping).
RESUME_MAY_TUNE = ("lr", "amp", "amp_dtype", "grad_clip")
# What a training writes into its folder before its first checkpoint (besides the lock file): a folder holding
# nothing else is what a run stopped during its first epoch left, and is started over without --overwrite.
FIRST_RUN_LEFTOVERS = ("recipe.json", f"{CHECKPOINT_DIR}.tmp")
# What a training writes into its folder (removed by --overwrite; nothing else is).
RUN_OUTPUTS = ("model", CHECKPOINT_DIR, f"{CHECKPOINT_DIR}.old", f"{CHECKPOINT_DIR}.tmp", "history.json",
               "recipe.json", "val_report.json", "val_report.csv", "val_report_videos.csv")


@dataclass
class RunPlan:
    """``recipe``: the settings the run uses; ``resume``: continue the checkpoint;
    ``clear``: delete the earlier run's outputs first; ``notes``: what to tell the user."""

    recipe: Recipe
    resume: bool
    clear: bool = False
    notes: list[str] = field(default_factory=list)


def recipe_differences(saved: dict[str, Any], recipe: Recipe,
                       may_change: tuple[str, ...] = RESUME_MAY_CHANGE + RESUME_MAY_TUNE) -> list[tuple[str, Any, Any]]:
    """``(setting, saved value, command's value)`` for every setting that differs, except those
    in ``may_change`` (default :data:`RESUME_MAY_CHANGE` and :data:`RESUME_MAY_TUNE`: what a
    resumed run may change); settings absent from ``saved`` (older versions) are not compared."""
    current = recipe.to_dict()
    return [(name, saved[name], value) for name, value in current.items()
            if name in saved and name not in may_change and saved[name] != value]


def _shown(differences: list[tuple[str, Any, Any]]) -> str:
    """``"lr 0.0001 (saved) vs 0.001 (this command), ..."``."""
    return ", ".join(f"{name} {old!r} (saved) vs {new!r} (this command)" for name, old, new in differences)


def _existing_contents(out_dir: Path) -> list[str]:
    if not out_dir.is_dir():
        return []
    return sorted(p.name for p in out_dir.iterdir() if p.name != LOCK_NAME)


def stopped_before_first_checkpoint(out_dir: str | os.PathLike[str]) -> list[str] | None:
    """The names in ``out_dir`` (lock file aside) when all it holds is what a run stopped before its
    first checkpoint left (:data:`FIRST_RUN_LEFTOVERS`): a ``recipe.json`` that is a dynsnip recipe
    and, if any, a ``checkpoint.tmp`` folder without a complete checkpoint in it (a kill while the
    first one was written). None when it holds anything else (a checkpoint, ``model/``,
    ``history.json``, a report, a link, any other file or folder), or nothing."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir() or find_training_checkpoint(out_dir / CHECKPOINT_DIR) is not None:
        return None
    entries = [p for p in out_dir.iterdir() if p.name != LOCK_NAME]
    if not entries or any(p.name not in FIRST_RUN_LEFTOVERS or p.is_symlink() for p in entries):
        return None
    for path in entries:
        if path.name == "recipe.json":
            try:
                Recipe.from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError, AttributeError):  # not a dynsnip recipe: not ours to delete
                return None
        elif not path.is_dir() or find_training_checkpoint(path) is not None:  # checkpoint.tmp: a complete one is kept
            return None
    return sorted(p.name for p in entries)


def plan_run(
    out_dir: str | os.PathLike[str],
    recipe: Recipe,
    *,
    resume: bool = True,
    overwrite: bool = False,
    use_saved_recipe: bool = False,
) -> RunPlan:
    """Decide what to do with ``out_dir`` (see module docstring).

    Raises:
        FileExistsError: a non-empty folder that is not resumed, without ``overwrite`` (but for
            one holding only a first run's leftovers, :func:`stopped_before_first_checkpoint`).
        ValueError: resuming with settings that differ from the saved ones (other than
            :data:`RESUME_MAY_CHANGE` and :data:`RESUME_MAY_TUNE`), without ``use_saved_recipe``;
            the message names each setting with both values.
            Also ``recipe.epochs`` below the epochs the checkpoint has already run.
        NotADirectoryError: ``out_dir`` is a file.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out {out_dir} is a file; expected a run folder (new, empty or an earlier run)")
    ckpt_dir = out_dir / CHECKPOINT_DIR
    if resume and find_training_checkpoint(ckpt_dir) is not None:
        done = read_checkpoint_epoch(ckpt_dir)
        if done is not None and recipe.epochs < done:  # recipe.json and the card would say fewer than ran
            raise ValueError(
                f"--epochs {recipe.epochs}: {out_dir} has already run {done} epochs (its checkpoint is of epoch "
                f"{done}); a resumed run cannot be shorter than what ran: give --epochs {done} or more ({done} "
                "leaves it as it is), or --no-resume --overwrite to start over")
        saved = read_checkpoint_recipe(ckpt_dir)
        if saved is None:
            return RunPlan(recipe, resume=True)
        differences = recipe_differences(saved, recipe)
        if not use_saved_recipe:
            if not differences:
                return RunPlan(recipe, resume=True)
            raise ValueError(
                f"{out_dir} was started with other settings than this command's: {_shown(differences)}. Resuming "
                "would mix two recipes: run the command with the saved settings (they are in its recipe.json), pass "
                "--use-saved-recipe to continue with the saved ones, or --no-resume --overwrite to start over"
            )
        differences = recipe_differences(saved, recipe, RESUME_MAY_CHANGE)  # the saved RESUME_MAY_TUNE too
        if not differences:
            return RunPlan(recipe, resume=True)
        shown = _shown(differences)
        kept = Recipe.from_dict({**{k: v for k, v in saved.items() if k in recipe.to_dict()},
                                 **{name: getattr(recipe, name) for name in RESUME_MAY_CHANGE}})
        return RunPlan(kept, resume=True, notes=[f"continuing with the saved recipe of {out_dir}: {shown}; "
                                                 "the saved values are used"])
    contents = _existing_contents(out_dir)
    if not contents:
        return RunPlan(recipe, resume=False)
    shown = ", ".join(contents[:5]) + (f" and {len(contents) - 5} more" if len(contents) > 5 else "")
    if not overwrite and (leftovers := stopped_before_first_checkpoint(out_dir)):
        return RunPlan(recipe, resume=False, clear=True, notes=[
            f"{out_dir} holds only what an earlier run wrote before its first checkpoint ({', '.join(leftovers)}): "
            "that run stopped before its first epoch ended, so there is nothing to resume; it is started over"])
    if not overwrite:
        why = ("its checkpoint is not resumed (--no-resume)" if find_training_checkpoint(ckpt_dir) is not None
               else "it has no checkpoint to resume")
        raise FileExistsError(
            f"--out {out_dir} is not empty ({shown}) and {why}; refusing to overwrite an earlier run: pass "
            "--overwrite to replace its results, or choose another --out"
        )
    return RunPlan(recipe, resume=False, clear=True,
                   notes=[f"--overwrite: the earlier run's results in {out_dir} are replaced"])


def clear_run_outputs(out_dir: str | os.PathLike[str]) -> list[str]:
    """Delete what an earlier training wrote into ``out_dir`` (:data:`RUN_OUTPUTS`); return the names removed."""
    removed = []
    for name in RUN_OUTPUTS:
        path = Path(out_dir) / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(name)
    return removed
