"""The paper's training recipe as one dataclass: every default says where it comes from.

"Implementation Details" of the paper (AAAI 2022): ImageNet ResNet-50 backbone, SIMs
randomly initialised; U = 4 snippets of T = 4 frames sampled uniformly, images resized to
224 x 224; Adam on the binary cross-entropy; batch size 10; initial learning rate 1e-4;
30 epochs (45 for cross-dataset generalisation); learning rate divided by 10 when the
performance on the validation set saturates; only horizontal flip; at inference U = 8,
T = 4 at the training size.

What the paper leaves open is named here with the choice made:

* ``monitor="auc"``: "performance on the validation set" is read as video-level AUC, the
  threshold-free metric of the paper's tables (accuracy is also logged);
* ``plateau_patience=2``: epochs without improvement tolerated (PyTorch's ``ReduceLROnPlateau``
  patience): the learning rate is divided by 10 after the third in a row, with
  ``plateau_threshold=1e-3`` (relative) as "saturates";
* ``min_lr=1e-7``: three divisions below the initial rate, then it stays;
* ``hflip_prob=0.5``: the usual probability for a random flip;
* ``weight_decay=0``: not mentioned, so none (plain Adam);
* ``amp=True``: mixed precision on GPU only (fp16 autocast + gradient scaling); it changes
  the arithmetic, not the recipe. CPU runs are always float32.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["Recipe", "PAPER_RECIPE"]

PSEUDO_FAKE_MODES = ("spatial", "temporal", "both")  # dynsnip.data.pseudo_fakes.MODES (no numpy needed here)
PSEUDO_FAKE_MAGNITUDES = ("weak", "medium", "strong")


@dataclass
class Recipe:
    """Training / evaluation settings; defaults are the paper's (see module docstring).

    Attributes:
        model: what to start from: a ``dil_*`` name (random init), a pretrained tag
            (``dil_resnet50.tv_in1k``: the paper's ImageNet ResNet-50), a directory written
            by :func:`dynsnip.save_pretrained` or a training run, a ``.safetensors`` file, or
            an ``hf-hub:owner/name`` id.
        pretrained: load the weights named by ``model`` (ignored for local checkpoints,
            which are always loaded).
        module_config: the DIL module a ``dil_*`` ``model`` is built as: ``"default"``
            (dynsnip's, with Intra-SIM's motion channels: a measured deviation) or ``"paper"``
            (the paper's module as written, ``dynsnip.paper_config("paper")``); see
            :data:`dynsnip.models.paper_configs.MODULE_CONFIGS`. A saved detector keeps its own
            and must not contradict it.
        num_classes: 1: one "fake" logit trained with binary cross-entropy (paper).
        epochs: 30 (paper; 45 for cross-dataset generalisation).
        batch_size: 10 clips per step, over all processes (paper). With DDP each process
            gets ``batch_size / world_size`` (must divide).
        lr: 1e-4, Adam (paper).
        weight_decay: 0 (not mentioned in the paper).
        betas: Adam's defaults (0.9, 0.999).
        lr_factor: 0.1: "divide the learning rate by 10" (paper).
        plateau_patience, plateau_threshold, min_lr, monitor: when validation "saturates"
            (open in the paper, see module docstring).
        num_snippets: U = 4 for training (paper).
        test_num_snippets: U = 8 for evaluation (paper).
        snippet_len: T = 4 (paper); must equal the model's ``snippet_len``.
        img_size: 224 (paper: "resized to 224 x 224").
        hflip_prob: 0.5; horizontal flip is the paper's only augmentation.
        amp: mixed precision when training on GPU.
        amp_dtype: ``"float16"`` (with gradient scaling; the SIMs keep their difference
            paths in float32) or ``"bfloat16"``.
        sync_bn: synchronise BatchNorm statistics across GPUs under ``torchrun`` (the paper
            trains on one machine with batch 10; with few clips per GPU this keeps the
            statistics of a 10-clip batch).
        num_workers: DataLoader worker processes.
        seed: seeds parameters' random init and every epoch's shuffling/augmentation.
        log_every: steps between log lines when no progress bar is shown.
        grad_clip: clip the gradient norm (None: no clipping, as in the paper).
        grad_checkpointing: recompute each residual block's activations in the backward
            pass (``model.set_grad_checkpointing()``): far less activation memory for about
            one more forward pass of time; the gradients are the same. Off by default.
        pseudo_fakes: None (default: the manifest's labels only) or a mode of
            :mod:`dynsnip.data.pseudo_fakes` (``"spatial"``, ``"temporal"``, ``"both"``):
            every real training clip also gives its pseudo-fake, on the fly, in the same
            batch (:mod:`dynsnip.engine.pseudo_fakes`). Not in the paper.
        pseudo_fake_magnitude: ``"weak"``, ``"medium"`` (default) or ``"strong"``.
    """

    model: str = "dil_resnet50.tv_in1k"
    pretrained: bool = True
    module_config: str = "default"
    num_classes: int = 1
    epochs: int = 30
    batch_size: int = 10
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    lr_factor: float = 0.1
    plateau_patience: int = 2
    plateau_threshold: float = 1e-3
    min_lr: float = 1e-7
    monitor: str = "auc"
    num_snippets: int = 4
    test_num_snippets: int = 8
    snippet_len: int = 4
    img_size: int = 224
    hflip_prob: float = 0.5
    amp: bool = True
    amp_dtype: str = "float16"
    sync_bn: bool = False
    num_workers: int = 4
    seed: int = 0
    log_every: int = 20
    grad_clip: float | None = None
    grad_checkpointing: bool = False
    pseudo_fakes: str | None = None
    pseudo_fake_magnitude: str = "medium"

    MONITORS = ("auc", "accuracy", "loss")

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # type: ignore[assignment]
        self.validate()

    def validate(self) -> "Recipe":
        """Raise ValueError naming the first setting that is out of range."""
        positive_ints = ("epochs", "batch_size", "num_snippets", "test_num_snippets", "snippet_len", "img_size", "num_classes")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"recipe {name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"recipe lr must be > 0, got {self.lr!r}")
        if not 0 < self.lr_factor < 1:
            raise ValueError(f"recipe lr_factor must be in (0, 1) (paper: 0.1), got {self.lr_factor!r}")
        if self.plateau_patience < 0:
            raise ValueError(f"recipe plateau_patience must be >= 0, got {self.plateau_patience!r}")
        if not 0 <= self.hflip_prob <= 1:
            raise ValueError(f"recipe hflip_prob must be in [0, 1], got {self.hflip_prob!r}")
        if self.module_config not in ("default", "paper"):
            raise ValueError(f"recipe module_config must be 'default' (dynsnip's module) or 'paper' (the paper's "
                             f"module as written), got {self.module_config!r}")
        if self.monitor not in self.MONITORS:
            raise ValueError(f"recipe monitor must be one of {self.MONITORS}, got {self.monitor!r}")
        if self.weight_decay < 0 or self.min_lr < 0:
            raise ValueError("recipe weight_decay and min_lr must be >= 0")
        if self.num_workers < 0:
            raise ValueError(f"recipe num_workers must be >= 0, got {self.num_workers!r}")
        if self.amp_dtype not in ("float16", "bfloat16"):
            raise ValueError(f"recipe amp_dtype must be 'float16' or 'bfloat16', got {self.amp_dtype!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"recipe grad_clip must be > 0 or None, got {self.grad_clip!r}")
        if self.pseudo_fakes is not None and self.pseudo_fakes not in PSEUDO_FAKE_MODES:
            raise ValueError(f"recipe pseudo_fakes must be None or one of {PSEUDO_FAKE_MODES}, got {self.pseudo_fakes!r}")
        if self.pseudo_fake_magnitude not in PSEUDO_FAKE_MAGNITUDES:
            raise ValueError(f"recipe pseudo_fake_magnitude must be one of {PSEUDO_FAKE_MAGNITUDES}, "
                             f"got {self.pseudo_fake_magnitude!r}")
        return self

    @property
    def monitor_mode(self) -> str:
        """``"max"`` for AUC/accuracy, ``"min"`` for loss."""
        return "min" if self.monitor == "loss" else "max"

    def replace(self, **changes: Any) -> "Recipe":
        """A copy with ``changes`` applied (unknown names raise TypeError)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Recipe":
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown recipe settings {unknown}; known: {sorted(names)}")
        return cls(**dict(data))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


PAPER_RECIPE = Recipe(module_config="paper")
"""The paper's recipe with the paper's module as written. ``Recipe()`` differs in
``module_config`` alone: ``"default"`` is dynsnip's module, a measured deviation
(docs/temporal_sensitivity.md); every training setting is the paper's in both."""
