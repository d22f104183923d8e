"""Stop a training run whose loss or weights stop being finite, keeping what was saved.

A loss that turns NaN / inf (a learning rate too high, an fp16 overflow, a bad clip that
slipped through) poisons every weight at the next optimizer step; training on would save a
model that scores NaN on every video. :func:`check_finite_loss` runs before the backward
pass of every step and :func:`check_finite_weights` at the end of every epoch; both raise
:class:`NonFiniteLossError` naming the epoch, the step and the clips of the batch. Nothing
of the failing epoch is written: ``model/`` and ``checkpoint/`` keep the last finite
weights (``dynsnip train`` then exits non-zero and says so). The advice it gives (a lower
``--lr``, ``--grad-clip``, ``--no-amp`` / ``--amp-dtype``) can be followed by resuming: those
settings may change on resume (:data:`dynsnip.engine.run_folder.RESUME_MAY_TUNE`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..models.keys import preview_keys
from ..picklable_errors import PicklableError
from .distributed import any_rank

__all__ = ["NonFiniteLossError", "check_finite_loss", "check_finite_weights", "batch_indices"]


class NonFiniteLossError(PicklableError, RuntimeError):
    """The training loss (or, after a step, a weight) is NaN or infinite; the run stopped."""

    def __init__(self, message: str, epoch: int, step: int, clips: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.epoch, self.step, self.clips = epoch, step, list(clips)


_SETTINGS = ("a lower --lr, --grad-clip, or in float32 (--no-amp) or bfloat16 (--amp-dtype bfloat16)")


def _kept(epoch: int) -> str:
    """What a run stopped by a NaN / inf in ``epoch`` kept, and how to go on."""
    if epoch <= 1:  # no epoch finished: no checkpoint/, no model/
        return ("nothing was saved (no epoch finished). Check these clips, then run the command again with "
                f"{_SETTINGS} (with --overwrite: it starts over)")
    return ("nothing of this epoch was saved: model/ and checkpoint/ keep the last finite weights. Check these "
            f"clips, then run the command again with {_SETTINGS}: it resumes from checkpoint/ with them (those "
            "settings may change on resume)")


def batch_indices(order: Sequence[int], step: int, batch_size: int, failed: Sequence[int]) -> list[int]:
    """The dataset indices of the readable clips of step ``step`` (1-based) of an epoch that
    visits ``order`` in batches of ``batch_size`` (the ``failed`` indices were dropped)."""
    skipped = set(failed)
    return [i for i in order[(step - 1) * batch_size: step * batch_size] if i not in skipped]


def check_finite_loss(loss: torch.Tensor, epoch: int, step: int, batch_clips: Callable[[], Sequence[str]],
                      reduce_device: torch.device | None = None) -> None:
    """Raise :class:`NonFiniteLossError` if ``loss`` is NaN / inf on any process (all of them stop);
    ``batch_clips()`` names this process's clips of the batch (called only then)."""
    if not any_rank(not bool(torch.isfinite(loss.detach()).all()), reduce_device):
        return
    clips = list(batch_clips())
    value = float(loss.detach().float().mean()) if loss.numel() else float("nan")
    raise NonFiniteLossError(
        f"training stopped: the loss is {value} at epoch {epoch}, step {step}; clips of that batch: "
        f"{preview_keys(list(clips)) or 'on another process'}. {_kept(epoch)}",
        epoch, step, clips,
    )


def check_finite_weights(model: torch.nn.Module, epoch: int, step: int) -> None:
    """Raise :class:`NonFiniteLossError` if a parameter or buffer of ``model`` holds NaN / inf."""
    bad = [k for k, v in model.state_dict().items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise NonFiniteLossError(
            f"training stopped: after epoch {epoch} (step {step}) {len(bad)} weight tensors hold NaN or inf "
            f"({preview_keys(bad)}). {_kept(epoch)}",
            epoch, step,
        )
