"""DIL ResNets: timm ResNets with alternating Intra-SI / Inter-SI blocks, registered as ``dil_*``.

``import dynsnip`` registers ``dil_<name>`` for every architecture of timm's ``resnet``
module (all are built from BasicBlock/Bottleneck), with pretrained tags
``dil_<name>.<tag>`` whose weights are timm's own hub repos ``timm/<name>.<tag>``: the 2D
ImageNet backbone loads exactly, the SIMs start from their own initialisation.

Video in, verdict out: ``model(x)`` with ``x`` of shape ``(B, C, U*T, H, W)``
(torchvision's video layout; frames ordered snippet by snippet) returns ``(B, num_classes)``.
T is fixed by the architecture (``snippet_len``), U is read from the input.

The file is named ``dil_resnet.py`` because timm files a model under the last component
of its module path and ``resnet`` is timm's own.
"""
from __future__ import annotations

import types
import warnings

from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator, Mapping

import torch
import torch.nn.functional as F
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models import resnet as timm_resnet
from timm.models._features import FeatureGetterNet, feature_take_indices
from timm.layers import SelectAdaptivePool2d
from timm.layers.adaptive_avgmax_pool import FastAdaptiveAvgPool
from timm.models._manipulate import adapt_input_conv
from timm.models._registry import get_arch_pretrained_cfgs
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.checkpoint import checkpoint

from ..convert import SIBlock, insert_sims, sim_stage_tuple
from ..modules import untie_shared_checkpoint
from ..modules.intra_sim import DEFAULT_MOTION_FRACTION, adopt_checkpoint_motion_channels, layout_restored_on_failure
from ..modules.temporal_ops import frames_as_snippets, snippets_as_frames
from .dtypes import DTYPE_RULE, dtype_mismatches
from .keys import preview_keys as _preview
from .keys import unwrapped_key

__all__ = ["DILResNet", "DILFeatures", "convert_resnet", "checkpoint_filter_fn", "saved_detector_checkpoint",
           "dil_model_names", "DEFAULT_TAGS"]

STAGES = ("layer1", "layer2", "layer3", "layer4")


def fold_frames(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, F, H, W)`` -> ``(B*F, C, H, W)`` ("b c f h w -> (b f) c h w").

    A view when the clip is ``channels_last_3d`` (or came from :func:`unfold_frames`), else a copy;
    in eager inference such a view is one ``as_strided`` call (``temporal_ops.snippets_as_frames``).
    Plain tensor methods rather than einops: einops calls cost ~0.5 s each to trace in
    ``torch.compile``.
    """
    return snippets_as_frames(x)


def channels_last_clip(x: torch.Tensor) -> torch.Tensor:
    """In eager inference, the clip ``(B, C, F, H, W)`` in channels_last_3d order (one copy, none if it is
    already), so that :func:`fold_frames` is a view and the network runs channels_last from the stem on:
    the copy that folding a clip in torchvision's layout makes anyway, in the order the SIMs' volume path
    wants (it would convert the frames at the first Intra-SIM otherwise). Training and compiled graphs
    keep the clip as given (autograd and inductor choose their own layouts)."""
    if torch.is_grad_enabled() or torch.compiler.is_compiling() or x.is_contiguous(memory_format=torch.channels_last_3d):
        return x
    return x.contiguous(memory_format=torch.channels_last_3d)


def unfold_frames(x: torch.Tensor, b: int, f: int = -1) -> torch.Tensor:
    """``(B*F, C, H, W)`` -> ``(B, C, F, H, W)`` ("(b f) c h w -> b c f h w"), a view.

    ``f`` (F) is needed when ``B`` may be 0: an empty batch does not say how many frames a clip has.
    In eager inference one ``as_strided`` call (``temporal_ops.frames_as_snippets``).
    """
    frames = f if f != -1 else (x.shape[0] // b if b else -1)
    if frames > 0 and b * frames == x.shape[0]:
        return frames_as_snippets(x, frames)
    return x.unflatten(0, (b, f)).transpose(1, 2)


# SIM options recorded in ``dil_args`` (and so in config.json) even when left at their default,
# because their default changed: a config that lacks one was written before the change.
# share_directions: False since per-direction weights became the default (0.1.0 shared them;
# such checkpoints still load exactly, see dynsnip.modules.directions).
# motion_fraction, motion_source, diff_init (Intra-SIM): the motion channels and the identity
# start of Eq. 1's conv became the default after dynsnip 0.1.0 (docs/temporal_sensitivity.md);
# checkpoints saved without motion channels still load exactly (adopt_checkpoint_layout).
RECORDED_SIM_DEFAULTS = {"share_directions": False}
RECORDED_INTRA_DEFAULTS = {
    **RECORDED_SIM_DEFAULTS, "motion_fraction": DEFAULT_MOTION_FRACTION, "motion_source": "separate",
    "diff_init": "identity",
}


def _recorded_sim_args(args: Mapping[str, Any] | None, defaults: Mapping[str, Any] = RECORDED_SIM_DEFAULTS) -> dict[str, Any]:
    return {**defaults, **dict(args or {})}


_COUNTS = {"snippet_len": "T, consecutive frames per snippet", "num_snippets": "U, snippets per clip",
           "test_num_snippets": "U, snippets per clip"}


def _check_counts(**values: Any) -> None:
    """Refuse a ``snippet_len`` / ``num_snippets`` / ``test_num_snippets`` that is not an integer
    >= 1 (a bool, a float such as 2.7 or 2.0, a string, 0), naming it: a model built with one
    fails later, deep inside (0: a division by zero at the first forward), or computes with a
    truncated value."""
    for name, value in values.items():
        if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) < 1:
            raise ValueError(f"{name} = {value!r}: expected an integer >= 1 ({_COUNTS[name]})")


NOT_SCRIPTABLE = (
    "dil_* models cannot be compiled by TorchScript (torch.jit.script / timm's scriptable=True): the SIMs' Python "
    "(per-module caches, branches on device and autograd) is outside TorchScript's language, which PyTorch 2 has "
    "deprecated. For a graph use torch.export or the ONNX export, for speed torch.compile (docs/performance.md)."
)


class DILResNet(timm_resnet.ResNet):
    """A timm ResNet whose blocks carry Intra-SIMs / Inter-SIMs; takes video clips.

    Args (besides timm's ResNet arguments):
        snippet_len: T, consecutive frames per snippet (paper: 4).
        num_snippets: U the model is meant to be trained with (paper: 4). Recorded for data
            pipelines; the network itself reads U from each input.
        test_num_snippets: U for evaluation (paper: 8).
        sim_stages: stages (1-4) that get SIMs (Table 6; paper: all).
        sim_pattern: ``"alternate"`` (paper), ``"intra"`` or ``"inter"`` (Table 4).
        intra_args / inter_args: options of :class:`~dynsnip.IntraSIM` / :class:`~dynsnip.InterSIM`.

    Shapes: ``forward_features``: ``(B, C, U*T, H, W) -> (B, C', U*T, H', W')``;
    ``forward_head``: ``(B, C', U*T, H', W') -> (B, num_classes)`` (spatial pooling, then the
    mean over frames, then the classifier: video-level logits equal the mean of per-frame
    logits). ``model.dil_args`` holds every DIL option, JSON-serialisable, so that
    ``timm.create_model(arch, **model.dil_args)`` rebuilds the same network.
    """

    def __init__(
        self,
        *args: Any,
        snippet_len: int = 4,
        num_snippets: int = 4,
        test_num_snippets: int = 8,
        sim_stages: Iterable[int] = (1, 2, 3, 4),
        sim_pattern: str = "alternate",
        intra_args: Mapping[str, Any] | None = None,
        inter_args: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        sim_stages = sim_stage_tuple(sim_stages)  # once: a generator is read here only
        _check_counts(snippet_len=snippet_len, num_snippets=num_snippets, test_num_snippets=test_num_snippets)
        super().__init__(*args, **kwargs)
        insert_sims(self, snippet_len, sim_stages, sim_pattern, intra_args, inter_args)
        self.init_dil(snippet_len, sim_stages, sim_pattern, intra_args, inter_args, num_snippets, test_num_snippets)

    def init_dil(
        self,
        snippet_len: int,
        sim_stages: Iterable[int],
        sim_pattern: str,
        intra_args: Mapping[str, Any] | None,
        inter_args: Mapping[str, Any] | None,
        num_snippets: int = 4,
        test_num_snippets: int = 8,
    ) -> None:
        """Record the DIL settings (also used by :func:`dynsnip.convert_resnet`)."""
        _check_counts(snippet_len=snippet_len, num_snippets=num_snippets, test_num_snippets=test_num_snippets)
        self.snippet_len = int(snippet_len)
        self.num_snippets = int(num_snippets)
        self.test_num_snippets = int(test_num_snippets)
        self.dil_args = dict(
            snippet_len=self.snippet_len,
            num_snippets=self.num_snippets,
            test_num_snippets=self.test_num_snippets,
            sim_stages=[int(s) for s in sim_stages],
            sim_pattern=sim_pattern,
            intra_args=_recorded_sim_args(intra_args, RECORDED_INTRA_DEFAULTS),
            inter_args=_recorded_sim_args(inter_args),
        )

    # ------------------------------------------------------------------ input
    def check_video(self, x: torch.Tensor) -> int:
        """Validate a ``(B, C, U*T, H, W)`` clip batch and return U."""
        name = type(self).__name__
        if x.ndim != 5:
            raise ValueError(
                f"{name} expects video clips of shape (B, C, U*T, H, W), got a {x.ndim}-d tensor "
                f"of shape {tuple(x.shape)}; frames go on dim 2 (torchvision's video layout)"
            )
        if not x.is_floating_point():
            raise ValueError(
                f"{name} expects floating-point clips normalised with the model's mean and std (see "
                f"timm.data.resolve_data_config(model=...)), got dtype {x.dtype}; e.g. (x / 255 - mean) / std"
            )
        b, c, f, h, w = x.shape
        in_chans = self.conv1.in_channels if isinstance(self.conv1, torch.nn.Conv2d) else self.conv1[0].in_channels
        if c != in_chans:
            raise ValueError(f"{name} expects {in_chans} channels on dim 1 of (B, C, U*T, H, W), got {c} (shape {tuple(x.shape)})")
        if f == 0 or f % self.snippet_len:
            raise ValueError(
                f"{name}: {f} frames on dim 2 are not a positive multiple of snippet_len "
                f"T={self.snippet_len}; a clip holds U snippets of T consecutive frames"
            )
        return f // self.snippet_len

    # --------------------------------------------------------------- backbone
    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.bn1(x)
        x = self.act1(x)
        return self.maxpool(x)

    def _run_stage(self, stage: torch.nn.Module, x: torch.Tensor, u: int) -> torch.Tensor:
        ckpt = self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting()
        for block in stage:
            args = (x, u) if isinstance(block, SIBlock) else (x,)
            if not ckpt:
                x = block(*args)
            elif torch.compiler.is_compiling():
                # dynamo accepts only its own context_fn, and needs none: AOTAutograd applies the
                # BatchNorm buffer updates once even though backward recomputes the block
                # (measured: dil_resnet18, one compiled step, num_batches_tracked 1, same stats)
                x = checkpoint(block, *args, use_reentrant=False)
            else:
                x = checkpoint(block, *args, use_reentrant=False, context_fn=lambda b=block: _recompute_contexts(b))
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, U*T, H, W)`` -> ``(B, C', U*T, H', W')``."""
        u = self.check_video(x)
        b, f = x.shape[0], x.shape[2]
        x = self._stem(fold_frames(channels_last_clip(x)))
        for name in STAGES:
            x = self._run_stage(getattr(self, name), x, u)
        return unfold_frames(x, b, f)

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCFHW",
        intermediates_only: bool = False,
    ):
        """Like timm's, for video: intermediates are ``(B, C, U*T, H, W)`` (stem = index 0)."""
        if output_fmt not in ("NCFHW", "NCHW"):
            raise ValueError(f"output_fmt must be 'NCFHW' (or 'NCHW' for folded frames), got {output_fmt!r}")
        take_indices, max_index = feature_take_indices(5, indices)
        u = self.check_video(x)
        b, f = x.shape[0], x.shape[2]

        def out(t: torch.Tensor) -> torch.Tensor:
            return t if output_fmt == "NCHW" else unfold_frames(t, b, f)

        intermediates = []
        x = self.act1(self.bn1(self.conv1(fold_frames(x))))
        if 0 in take_indices:
            intermediates.append(out(x))
        x = self.maxpool(x)
        names = STAGES[:max_index] if stop_early else STAGES
        for i, name in enumerate(names, start=1):
            x = self._run_stage(getattr(self, name), x, u)
            if i in take_indices:
                intermediates.append(out(x))
        if intermediates_only:
            return intermediates
        return out(x), intermediates

    # ------------------------------------------------------------------- head
    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``(B, C', U*T, H', W')`` -> ``(B, num_classes)`` (or pooled features with ``pre_logits``).

        With ``global_pool=''`` nothing is pooled: the maps ``(B, C', U*T, H', W')`` come back when
        there is no classifier (``num_classes=0``) or with ``pre_logits``; a classifier cannot take
        them (timm's ResNet fails there too), which raises a ValueError.
        """
        if x.ndim != 5 or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}.forward_head expects the video features of forward_features, "
                f"(B, C'={self.num_features}, U*T, H', W'), got shape {tuple(x.shape)}"
                + ("; frame features (B*U*T, C', H', W') are folded: unfold them to (B, C', U*T, H', W')"
                   if x.ndim == 4 else "")
            )
        b, f = x.shape[0], x.shape[2]
        if self._pools_by_mean():  # the average over the frames of each frame's spatial average, in one call
            x = x.mean((2, 3, 4))
            if self.drop_rate:
                x = F.dropout(x, p=float(self.drop_rate), training=self.training)
            return x if pre_logits else self.fc(x)
        pooled = self.global_pool(fold_frames(x))
        if pooled.ndim == 2:  # spatially pooled: average over the frames (temporal consensus)
            x = pooled.unflatten(0, (b, f)).mean(1)  # "(b f) c -> b c", mean
        elif pre_logits or isinstance(self.fc, torch.nn.Identity):  # global_pool='' keeps the maps
            return unfold_frames(pooled, b, f)
        else:
            raise ValueError(
                f"{type(self).__name__}: global_pool='' keeps the feature maps {tuple(x.shape)}, which the classifier "
                f"({self.num_classes} classes) cannot take: use num_classes=0 (or forward_head(x, pre_logits=True)) "
                f"for the maps, or a global_pool such as 'avg' for the classifier"
            )
        if self.drop_rate:
            x = F.dropout(x, p=float(self.drop_rate), training=self.training)
        return x if pre_logits else self.fc(x)

    def _pools_by_mean(self) -> bool:
        """Whether the head's pooling is timm's global average (``global_pool="avg"``, flattened): then the
        clip's feature, the mean over its U*T frames of each frame's spatial average (the temporal
        consensus of a 2D backbone run on frames), is one mean over ``(U*T, H', W')`` (every frame has
        the same H' x W'), not a fold, a pool, a flatten, an unflatten and a mean (issue 24: calls per
        forward)."""
        pool = self.global_pool
        if not isinstance(pool, SelectAdaptivePool2d):
            return False
        inner = pool.pool
        if isinstance(inner, torch.nn.AdaptiveAvgPool2d):  # "avg": flattened by pool.flatten
            return inner.output_size in (1, (1, 1)) and isinstance(pool.flatten, torch.nn.Flatten)
        return isinstance(inner, FastAdaptiveAvgPool) and bool(inner.flatten) and tuple(inner.dim) == (2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def __prepare_scriptable__(self) -> "DILResNet":
        """``torch.jit.script`` calls this first: say why it cannot work, instead of its parser's error."""
        raise TypeError(NOT_SCRIPTABLE)

    # ------------------------------------------------------------ checkpoints
    def adopt_checkpoint_layout(self, state_dict: Mapping[str, Any], prefix: str = "") -> None:
        """Models saved before Intra-SIM's motion channels became the default have none: such a
        checkpoint turns them off here (``intra_args["motion_fraction"] = 0``, recorded in
        ``dil_args``), so it loads completely and computes what it computed before."""
        if adopt_checkpoint_motion_channels(state_dict, self, prefix):
            self.dil_args["intra_args"] = {**self.dil_args["intra_args"], "motion_fraction": 0.0}
            warnings.warn(
                "the checkpoint has no Intra-SIM motion-channel tensors (saved before they became the default): "
                "the model is loaded as it was saved, without them (motion_fraction=0, the paper's Eq. 5)",
                stacklevel=3,
            )

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``, refusing weights no dynsnip loading route loads.

        A tensor of another dtype than the model's (integer or bool values where the model has
        floating point weights, :mod:`dynsnip.models.dtypes`) or a floating-point tensor holding
        NaN or inf raises a ValueError naming the tensors, before anything is copied:
        ``nn.Module.load_state_dict`` would cast the first silently and copy the second, and the
        detector would then score nonsense or NaN. This also covers timm's
        ``create_model(..., checkpoint_path=...)``, which loads through this method, and models
        wrapped in another module (the check runs in :meth:`_load_from_state_dict`). Only the
        tensors the model has are checked (``strict=False`` partial loads, ``assign=True`` and
        integer buffers such as BatchNorm's ``num_batches_tracked`` load as before).

        A load that fails leaves the architecture as it was (:meth:`adopt_checkpoint_layout`
        changes it only for a checkpoint that then loads)."""
        dil_args = {k: dict(v) if isinstance(v, dict) else v for k, v in self.dil_args.items()}
        try:
            with layout_restored_on_failure(self):
                return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except BaseException:
            self.dil_args = dil_args
            raise

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        # called before any submodule copies a tensor: a refused state dict changes nothing
        refuse_unloadable_tensors(state_dict, self, prefix)
        self.adopt_checkpoint_layout(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def convert_resnet(
    model: timm_resnet.ResNet,
    snippet_len: int = 4,
    stages: Iterable[int] = (1, 2, 3, 4),
    pattern: str = "alternate",
    intra_args: Mapping[str, Any] | None = None,
    inter_args: Mapping[str, Any] | None = None,
    pretrained: bool | None = None,
) -> DILResNet:
    """Turn a timm ResNet into the DIL video network, in place, and return it.

    Args:
        model: a :class:`timm.models.resnet.ResNet` with BasicBlock/Bottleneck blocks.
        snippet_len: T, consecutive frames per snippet.
        stages: which of the stages 1-4 get SIMs (Table 6; the paper uses all four).
        pattern: ``"alternate"`` (Intra, Inter, Intra, ... in each stage, the paper's),
            ``"intra"`` or ``"inter"`` (one kind only, Table 4).
        intra_args, inter_args: keyword arguments of :class:`IntraSIM` / :class:`InterSIM`.
        pretrained: whether ``model`` holds the weights its ``pretrained_cfg`` names (True for
            ``timm.create_model("resnet50.tv_in1k", pretrained=True)``, False for a random
            init or weights of your own). Recorded as ``model.pretrained_loaded``:
            :func:`dynsnip.save_pretrained` names those weights as the detector's
            ``base_model`` (config.json, model card) only when it is True. The default, None
            (unknown: a model object does not say whether its weights were loaded), records no
            base model, so a card never claims an initialisation that may not have happened;
            pass ``pretrained=True`` to record it (or ``base_model=`` to ``save_pretrained``).

    Returns:
        the same object, now a :class:`DILResNet` that takes video ``(B, C, U*T, H, W)`` and
        returns ``(B, num_classes)``. Existing weights are kept and keep their state-dict
        keys; the SIMs are new ``*.sim.*`` entries.
    """
    if pretrained is not None and not isinstance(pretrained, bool):
        raise TypeError(f"convert_resnet: pretrained = {pretrained!r}: expected True, False or None (unknown), "
                        "whether the model holds the weights its pretrained_cfg names")
    stages = sim_stage_tuple(stages)  # once: a generator is read here only
    _check_counts(snippet_len=snippet_len)  # before the model is changed
    insert_sims(model, snippet_len, stages, pattern, intra_args, inter_args)
    model.__class__ = DILResNet
    model.init_dil(snippet_len, stages, pattern, intra_args, inter_args)
    # None (unknown) is kept: dynsnip.hub.config.base_weights names a base model only for True
    model.pretrained_loaded = pretrained
    return model


# ------------------------------------------------------------------ weights
def _unwrap_state_dict(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    for key in ("state_dict", "model", "model_state_dict"):
        if key in state_dict and isinstance(state_dict[key], Mapping):
            state_dict = state_dict[key]
            break
    return {unwrapped_key(k): v for k, v in state_dict.items()}


def saved_detector_checkpoint(state_dict: Mapping[str, Any], model: DILResNet, head_classes: int | None = None) -> bool:
    """Whether ``state_dict`` is a saved detector, which must load completely: it holds SIM
    tensors, or ``model`` was rebuilt from a saved ``config.json`` (timm marks a model built
    from a local directory or a Hub repo with ``source`` ``local-dir`` / ``hf-hub``), or (given
    ``head_classes``, the classes the pretrained config says the source head has: 1000 for
    ImageNet) its classifier ``fc.weight`` has another number of outputs: a detector saved
    without SIMs (``sim_stages=[]``) has no SIM tensors, but its trained head is not ImageNet's.
    An ImageNet 2D ResNet (a ``dil_<resnet>.<tag>`` name) is the other case: its SIMs and head
    are new by design."""
    source = (getattr(model, "pretrained_cfg", None) or {}).get("source")
    if source in ("local-dir", "hf-hub") or any(".sim." in k for k in state_dict):
        return True
    head = state_dict.get("fc.weight")
    return head_classes is not None and torch.is_tensor(head) and head.ndim == 2 and head.shape[0] != head_classes


@contextmanager
def _batchnorm_stats_frozen(module: torch.nn.Module) -> Iterator[None]:
    """BatchNorm layers of ``module`` normalise as before but leave their running statistics
    alone: momentum 0 keeps ``running = 0 * batch + 1 * running`` (and the same tensors are
    saved for backward as in the first forward); the step counter is put back afterwards."""
    layers = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in layers]
    for m in layers:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, steps) in zip(layers, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(steps)


def _recompute_contexts(block: torch.nn.Module) -> tuple[ContextManager, ContextManager]:
    """Gradient checkpointing re-runs ``block``'s forward in backward; without this its
    BatchNorm running statistics would be updated twice per step."""
    return nullcontext(), _batchnorm_stats_frozen(block)


def _first_conv(model: DILResNet) -> str:
    """The name of the input conv: ``conv1``, or ``conv1.0`` in a deep stem (a Sequential)."""
    return "conv1" if isinstance(model.conv1, torch.nn.Conv2d) else "conv1.0"


def checkpoint_filter_fn(
    state_dict: Mapping[str, Any], model: DILResNet, adapt_first_conv: bool = True,
    head_classes: int | None = None,
) -> dict[str, torch.Tensor]:
    """Adapt a 2D ResNet (or DIL) checkpoint to ``model``.

    * every backbone tensor must be present with the model's shape: it is loaded exactly;
    * a saved detector (:func:`saved_detector_checkpoint`) is loaded strictly: every tensor
      of the architecture, SIMs and classifier included, must be there; one saved with shared
      forward/backward weights (``share_directions=True``, the only layout of dynsnip 0.1.0)
      gets them copied into both directions, which computes exactly what it computed before; given
      ``head_classes``, a checkpoint whose classifier has another number of outputs is a saved
      detector too (one without SIMs: ``sim_stages=[]``);
    * an ImageNet 2D ResNet has no SIM tensors (``*.sim.*``) and another head: the SIMs keep
      the model's own initialisation, the classifier is new;
    * the classifier is passed through: timm drops it when ``num_classes`` differs, and a
      caller that replaces another head itself (``dynsnip train --checkpoint``) gets it as it is.
      ``head_classes`` is given by timm's pretrained loading: the classes it assumes the
      checkpoint's head has (``pretrained_cfg["num_classes"]``). For a saved detector they must
      be the model's, and so must the classifier's shape: timm would otherwise drop the trained
      head after this filter and leave a random one (a ``config.json`` whose top-level
      ``num_classes`` disagrees with its ``model_args``);
    * a 3-channel input conv for a model with ``in_chans != 3`` is adapted as timm adapts its own
      models' (``timm.models._manipulate.adapt_input_conv``: summed for 1 channel, else repeated
      and scaled by ``3 / in_chans``); ``adapt_first_conv=False`` passes it through unchanged,
      for timm's pretrained loading, which adapts it after this filter. That is for a 2D
      ImageNet backbone only: a saved detector whose stem has other input channels than the
      model's (``load_model(saved, in_chans=1)``) raises a ValueError saying what was saved and
      what was asked, as another ``num_classes`` does: its trained stem is not adapted silently;
    * a missing or mis-shaped tensor, or tensors the model does not have, raise a ValueError
      naming the first few and the count: such a checkpoint belongs to another architecture,
      or is incomplete;
    * so does a tensor of another dtype (integer or bool values where the model has floating
      point weights, see :mod:`dynsnip.models.dtypes`), naming the key, the file's dtype and the
      model's: ``load_state_dict`` would cast it silently;
    * and so do tensors holding NaN or inf (named, first few and a count): ``save_pretrained``
      never writes them, and an infinite BN variance gives a finite, wrong verdict.
    """
    sd = _unwrap_state_dict(state_dict)
    model.adopt_checkpoint_layout(sd)  # SIMs saved without motion channels (before they were the default)
    untie_shared_checkpoint(sd, model)  # SIMs saved with shared direction weights (dynsnip 0.1.0)
    target = model.state_dict()
    classifier = "fc."
    first_conv = _first_conv(model) + ".weight"
    strict = saved_detector_checkpoint(sd, model, head_classes)
    # timm keeps the checkpoint's head when the model has its classes: then the head must be in it
    head_kept = head_classes is not None and head_classes == model.num_classes and model.num_classes > 0
    out: dict[str, torch.Tensor] = {}
    stem: tuple[str, int, int] | None = None  # a saved detector's stem with other input channels: (key, saved, model)
    missing, misshaped = [], []
    head_shapes = []  # the saved head's shape against the model's (a detector loaded with another num_classes)
    for k, v in target.items():
        if k in sd:
            src = sd[k]
            if k.startswith(classifier) and not (strict and head_classes is not None):
                out[k] = src
            elif k.startswith(classifier) and tuple(src.shape) != tuple(v.shape):
                head_shapes.append(f"{k}: checkpoint {tuple(src.shape)} vs model {tuple(v.shape)}")
            elif k == first_conv and strict and _stem_channels_differ(src, v):
                stem = (k, int(src.shape[1]), int(v.shape[1]))
            elif k == first_conv and _other_input_channels(src, v):
                out[k] = adapt_input_conv(v.shape[1], src) if adapt_first_conv else src
            elif tuple(src.shape) != tuple(v.shape):
                misshaped.append(f"{k}: checkpoint {tuple(src.shape)} vs model {tuple(v.shape)}")
            else:
                out[k] = src
        elif not strict and (".sim." in k or k.endswith("num_batches_tracked")
                             or (k.startswith(classifier) and not head_kept)):
            out[k] = v
        else:
            missing.append(k)
    # a 2D checkpoint's head for a model without one is dropped; a saved detector's extra head tensors are not its head
    model_head = any(k.startswith(classifier) for k in target)
    unexpected = [k for k in sd if k not in target and (not k.startswith(classifier) or (strict and model_head))]
    wrong_dtype = dtype_mismatches(sd, target)
    dropped_head = strict and head_classes is not None and head_classes != model.num_classes
    if head_shapes and not dropped_head:
        misshaped += head_shapes
    if stem and not (missing or misshaped or unexpected or wrong_dtype or dropped_head):
        raise ValueError(f"checkpoint does not fit {_described(model)}: {_stem_message(*stem)}.")
    if stem:  # among other problems: another architecture, reported as such
        misshaped.insert(0, f"{stem[0]}: checkpoint {tuple(sd[stem[0]].shape)} vs model {tuple(target[stem[0]].shape)}")
    non_finite = _non_finite(sd, out)
    if non_finite and not (missing or misshaped or unexpected or wrong_dtype or dropped_head):
        raise ValueError(f"checkpoint does not fit {_described(model)}: {_non_finite_reason(non_finite)}.")
    if missing or misshaped or unexpected or wrong_dtype or dropped_head:
        arch = _described(model)
        parts = []
        head_missing = [k for k in missing if k.startswith(classifier)]
        if head_missing and len(head_missing) == len(missing) and not strict and not (
                misshaped or unexpected or wrong_dtype):
            raise ValueError(
                f"checkpoint does not fit {arch}: it has no classifier ({', '.join(head_missing)}), and the model has "
                f"the {model.num_classes} classes of its pretrained config, so its head would stay random. Pass "
                "num_classes=0 for the features without a head, or the number of classes of a new head to train.")
        if missing:
            what = "tensors" if strict else "backbone tensors"
            parts.append(f"{len(missing)} {what} missing ({_preview(missing)})")
        if misshaped:
            parts.append(f"{len(misshaped)} mis-shaped ({_preview(misshaped, 3)})")
        if unexpected:
            parts.append(f"{len(unexpected)} tensors the model does not have ({_preview(unexpected)})")
        if wrong_dtype:
            parts.append(f"{len(wrong_dtype)} of another dtype ({_preview(wrong_dtype, 3)})")
        if wrong_dtype and not (missing or misshaped or unexpected or dropped_head):
            raise ValueError(f"checkpoint does not fit {arch}: " + "; ".join(parts) + f": {DTYPE_RULE}.")
        if dropped_head and not parts:
            raise ValueError(f"checkpoint does not fit {arch}: " + _dropped_head_message(sd, model, head_classes))
        advice = (
            ". A saved detector must hold every tensor of its architecture (SIMs and classifier included): "
            "this one is incomplete or of another architecture or SIM configuration; save it again with "
            "dynsnip.save_pretrained (to start from 2D ImageNet weights, with new SIMs and head, use a "
            "dil_<resnet>.<tag> name)" if strict and missing else
            ". It is probably a checkpoint of another architecture or SIM configuration: "
            "create the model it was trained as (same name and DIL options)"
        )
        raise ValueError(f"checkpoint does not fit {arch}: " + "; ".join(parts) + advice + ".")
    return out


def _dropped_head_message(sd: Mapping[str, Any], model: DILResNet, head_classes: int) -> str:
    """Why a saved detector's head would not be loaded by timm, and what to write instead."""
    weight = sd.get("fc.weight")
    saved = int(weight.shape[0]) if isinstance(weight, torch.Tensor) and weight.ndim == 2 else None
    if saved == model.num_classes:  # the file fits; the pretrained config names other classes
        return (f"the saved classifier has {saved} classes, as the model, but the pretrained config says "
                f"{head_classes}, so timm would drop the saved classifier (fc.weight, fc.bias) after loading and run "
                f"a random one. Give the config the saved head's classes: pretrained_cfg_overlay=dict(..., "
                f"num_classes={saved}) (in a config.json: num_classes, model_args.num_classes and "
                "pretrained_cfg.num_classes), or load the file with checkpoint_path= or dynsnip.load_model.")
    saved = saved if saved is not None else head_classes
    then = ("for its features without a head" if model.num_classes == 0 else "to train a new head")
    return (f"the saved detector's head has {saved} classes and the model {model.num_classes}, so timm would drop "
            "the trained classifier (fc.weight, fc.bias) and run a random one. Load the detector as saved "
            f"(num_classes left out, or {saved}), then call model.reset_classifier({model.num_classes}) {then}.")


def _described(model: DILResNet) -> str:
    """``model``'s architecture, with the source of the weights being loaded when it names one,
    for :func:`checkpoint_filter_fn`'s errors."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture") or type(model).__name__
    # a model built without its pretrained weights (then loaded from a file) names no source
    source = (cfg.get("file") or cfg.get("hf_hub_id") or cfg.get("url")) if getattr(
        model, "pretrained_loaded", True) else None
    return f"{arch} (weights from {source})" if source else arch


def _non_finite(checkpoint: Mapping[str, Any], loaded: Mapping[str, torch.Tensor]) -> list[str]:
    """The tensors taken from ``checkpoint`` into ``loaded`` that hold NaN or inf: an infinite BN
    variance or a NaN weight would score every video NaN, or give a finite but wrong verdict, and
    ``save_pretrained`` refuses to write such weights, so none is loaded either."""
    return [k for k, v in loaded.items()
            if k in checkpoint and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def _non_finite_reason(names: list[str]) -> str:
    """Why tensors holding NaN or inf (``names``) are refused, and what to load instead."""
    return ("non-finite weights: " + ("1 tensor holds" if len(names) == 1 else f"{len(names)} tensors hold")
            + f" NaN or inf ({_preview(names)}): such weights score NaN (or a finite, wrong verdict) on every video. "
            "Load the last finite weights instead (a training run keeps them in its model/ and checkpoint/ folders)")


def refuse_unloadable_tensors(state_dict: Mapping[str, Any], model: DILResNet, prefix: str = "") -> None:
    """Raise ValueError naming the tensors of ``state_dict`` that ``model`` must not load: those of
    another dtype than the model's (:func:`~dynsnip.models.dtypes.dtype_mismatches`: integer or
    bool values in place of floating-point weights) and floating-point ones holding NaN or inf.

    The checks of :func:`checkpoint_filter_fn`, for :meth:`DILResNet.load_state_dict` (and so
    timm's ``create_model(..., checkpoint_path=...)``), which would otherwise cast the first
    silently and copy the second. Only keys the model has (under ``prefix``, the model's name in
    a wrapping module) are checked: keys a ``strict=False`` load ignores are not loaded, and a
    tensor with the model's own dtype (BatchNorm's int64 ``num_batches_tracked``) always loads.
    Tensors on the meta device hold no values and are not checked for NaN.
    """
    target = {k: v for k, v in model.state_dict(prefix=prefix, keep_vars=True).items() if isinstance(v, torch.Tensor)}
    wrong_dtype = dtype_mismatches(state_dict, target)
    loaded = {k: v for k, v in state_dict.items()
              if k in target and isinstance(v, torch.Tensor) and v.device.type != "meta"}
    non_finite = _non_finite(state_dict, loaded)
    if not (wrong_dtype or non_finite):
        return
    arch = (getattr(model, "pretrained_cfg", None) or {}).get("architecture") or type(model).__name__
    parts = []
    if wrong_dtype:
        parts.append(f"{len(wrong_dtype)} of another dtype ({_preview(wrong_dtype, 3)}): {DTYPE_RULE}")
    if non_finite:
        parts.append(_non_finite_reason(non_finite))
    raise ValueError(f"checkpoint does not fit {arch}: " + "; ".join(parts) + ".")


def _stem_channels_differ(src: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether the conv weight ``src`` ``(O, I, kh, kw)`` differs from ``target`` in its input channels only."""
    return (src.ndim == 4 and target.ndim == 4 and src.shape[1] != target.shape[1]
            and (src.shape[0], *src.shape[2:]) == (target.shape[0], *target.shape[2:]))


def _stem_message(key: str, saved: int, asked: int) -> str:
    """Why a saved detector's stem with ``saved`` input channels is not loaded into a model with
    ``in_chans=asked``, and what to do instead."""
    return (f"the saved detector's stem ({key}) takes {saved} input channels and the model was built with "
            f"in_chans={asked}. A trained detector's stem is not adapted silently: summing or repeating its "
            f"kernels changes what it detects (and its pretrained config would still say {saved} channels). Load it "
            f"as saved (in_chans left out, or {saved}); to train a {asked}-channel detector from ImageNet weights, "
            f"build it from the dil_* name (timm.create_model('dil_<resnet>.<tag>', pretrained=True, in_chans={asked})), "
            "which adapts the 2D backbone's stem as timm does")


def _other_input_channels(src: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether ``src`` is a 3-channel (RGB) conv weight ``(O, 3, kh, kw)`` that ``target``
    ``(O, in_chans, kh, kw)`` differs from in its input channels only."""
    return (src.ndim == 4 and target.ndim == 4 and src.shape[1] == 3 and target.shape[1] != 3
            and (src.shape[0], *src.shape[2:]) == (target.shape[0], *target.shape[2:]))


# ----------------------------------------------------------------- registry
def _timm_resnet_args(name: str) -> dict[str, Any]:
    """The ResNet constructor arguments timm's builder ``timm.models.resnet.<name>`` uses.

    timm's builders pass them straight to ``_create_resnet``; recording that call (without
    building anything) keeps every block type, depth, stem and attention option in sync
    with timm instead of copying 81 tables here. The call is recorded by a copy of the builder
    whose globals name a recorder as ``_create_resnet``: timm's module is never changed, so
    ResNets built at the same time (other threads, timm's own) are not affected.
    """
    recorded: dict[str, Any] = {}

    class _Recorded(Exception):
        pass

    def record(variant: str, pretrained: bool = False, **kwargs: Any):
        recorded.update(kwargs)
        raise _Recorded

    builder = getattr(timm_resnet, name)
    probe = types.FunctionType(builder.__code__, {**builder.__globals__, "_create_resnet": record},
                               builder.__name__, builder.__defaults__, builder.__closure__)
    probe.__kwdefaults__ = builder.__kwdefaults__
    try:
        probe(pretrained=False)
    except _Recorded:
        pass
    if not recorded:
        raise RuntimeError(f"could not read the ResNet arguments of timm's {name}")
    return recorded


def is_pruned_resnet(name: str | None) -> bool:
    """Whether ``name`` is one of timm's pruned ResNets (``ecaresnet50d_pruned``, ...), which have no
    ``dil_*`` twin (see :func:`_base_names`)."""
    if not name or not callable(getattr(timm_resnet, str(name), None)):
        return False
    try:
        return bool(_timm_resnet_args(str(name)).get("pruned"))
    except Exception:  # not a model builder of timm's resnet module: a yes / no question, not an error
        return False


def _base_names() -> list[str]:
    """timm's ResNets that get a ``dil_`` twin: every one in its ``resnet`` module but the pruned
    ones (``ecaresnet50d_pruned``, ``ecaresnet101d_pruned``): timm narrows their layers from a
    file named after the model (``_pruned/<name>.txt``), after building, which a ``dil_`` name has
    no file for and which would leave the SIMs inserted at the unpruned widths.
    ``dynsnip.convert_resnet(timm.create_model("ecaresnet50d_pruned"))`` converts one, with SIMs
    at its own widths."""
    from timm import list_models

    return [n for n in list_models(module="resnet") if getattr(timm_resnet, n, None) is not None
            and not is_pruned_resnet(n)]


# The paper starts from torchvision's ImageNet ResNet-50: make that the default tag where timm has it.
DEFAULT_TAGS = ("tv_in1k",)


def _timm_cfg(cfg: Any) -> dict[str, Any]:
    """timm's pretrained config of a base ResNet without its weight source (url, file, Hub id) and
    name: first_conv (``conv1.0`` in the deep stems of resnet*d / *t, which timm adapts to
    ``in_chans != 3``), input and pool sizes, crop, mean and std stay timm's."""
    d = {k: v for k, v in cfg.to_dict(remove_source=True, remove_null=True).items() if k not in ("architecture", "tag")}
    d.update(url=None, first_conv=cfg.first_conv or "conv1", classifier="fc")
    return d


def _dil_cfgs(base: str) -> dict[str, dict[str, Any]]:
    cfgs: dict[str, dict[str, Any]] = {}
    tags = []
    arch_cfgs = get_arch_pretrained_cfgs(base)
    for full, cfg in arch_cfgs.items():
        tag = full.split(".", 1)[1] if "." in full else ""
        if not cfg.hf_hub_id:
            continue
        hub_id = cfg.hf_hub_id if cfg.hf_hub_id != "timm/" else f"timm/{base}.{tag}"
        d = _timm_cfg(cfg)
        d["hf_hub_id"] = hub_id
        d["notes"] = (f"2D ImageNet weights timm/{base}.{tag} adapted to the DIL video network",)
        tags.append((tag, d))
    tags.sort(key=lambda td: td[0] not in DEFAULT_TAGS)  # stable: tv_in1k first, then timm's order
    for tag, d in tags:
        cfgs[f"dil_{base}.{tag}" if tag else f"dil_{base}"] = d
    if not cfgs:  # no ImageNet weights on the Hub (timm's "untrained" tag): timm's config for the base, no source
        default = next(iter(arch_cfgs.values()), None)  # timm's default tag comes first
        cfgs[f"dil_{base}"] = _timm_cfg(default) if default is not None else dict(first_conv="conv1", classifier="fc")
    return cfgs


_BASES = _base_names()
default_cfgs = generate_default_cfgs({k: v for base in _BASES for k, v in _dil_cfgs(base).items()})


class DILFeatures(FeatureGetterNet):
    """What ``timm.create_model("dil_*", features_only=True)`` returns: the per-stage video
    features of :meth:`DILResNet.forward_intermediates`.

    ``forward(x)`` with ``x`` ``(B, C, U*T, H, W)`` returns a list with one tensor per index of
    ``out_indices`` (0 = stem, 1-4 = stages; default all five): ``(B, C_i, U*T, H_i, W_i)``, or
    the folded frames ``(B*U*T, C_i, H_i, W_i)`` with ``output_fmt="NCHW"`` (what 2D necks
    such as an FPN take). ``feature_info`` gives channels and reductions as for timm's ResNets;
    stages after the last index are removed (timm's pruning). ``set_grad_checkpointing`` and
    ``group_matcher`` (parameter groups for layer-wise learning-rate decay) act on the wrapped model.
    """

    def __init__(self, model: DILResNet, out_indices: Any = (0, 1, 2, 3, 4), output_fmt: str = "NCFHW",
                 **kwargs: Any) -> None:
        if output_fmt not in ("NCFHW", "NCHW"):
            raise ValueError(f"output_fmt must be 'NCFHW' (video) or 'NCHW' (folded frames), got {output_fmt!r}")
        super().__init__(model, out_indices=out_indices, output_fmt="NCHW", **kwargs)
        self.video_output_fmt = output_fmt

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(
            x, indices=self.out_indices, norm=self.norm, output_fmt=self.video_output_fmt, intermediates_only=True,
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Gradient checkpointing of the wrapped model's blocks (as timm's feature wrappers offer)."""
        self.model.set_grad_checkpointing(enable)

    @property
    def grad_checkpointing(self) -> bool:
        """The wrapped model's flag (the wrapper's forward runs the model's blocks)."""
        return bool(self.model.grad_checkpointing)

    @grad_checkpointing.setter
    def grad_checkpointing(self, enable: bool) -> None:
        self.model.set_grad_checkpointing(enable)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """The wrapped model's parameter groups (stem, then stage or block), for this wrapper's
        parameter names (``model.<name>``): what timm's layer-wise learning-rate decay groups by."""
        return {group: _under_model(spec) for group, spec in self.model.group_matcher(coarse).items()}


def _under_model(spec: Any) -> Any:
    """A timm group-matcher spec (a regex, or a list of ``(regex, suffix)``) for the same
    parameters seen from a wrapper that holds the model as ``model``."""
    if spec is None:
        return None
    if isinstance(spec, str):  # matched from the start of the name (re.match): so is the prefix
        return r"^model\.(?:" + spec.removeprefix("^") + ")"
    return [(_under_model(regex), suffix) for regex, suffix in spec]


def _pretrained_download(variant: str, pretrained: bool, kwargs: Mapping[str, Any]) -> ContextManager:
    """Around the build: when its weights come from a Hub repo (a ``dil_<resnet>.<tag>``, or an
    ``hf-hub:`` detector), an unreachable Hub or a file missing from the offline cache fails at
    once in one line (:func:`dynsnip.hub.load.pretrained_download`), not after huggingface_hub's
    retries (about a minute) and a long traceback."""
    if not pretrained:
        return nullcontext()
    from timm.models._builder import resolve_pretrained_cfg

    cfg = resolve_pretrained_cfg(variant, kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay")).to_dict()
    from_hub = cfg.get("source") == "hf-hub" or (
        cfg.get("source") != "local-dir" and not cfg.get("state_dict") and not cfg.get("file"))
    if not (from_hub and cfg.get("hf_hub_id")):
        return nullcontext()
    from ..hub.load import pretrained_download

    return pretrained_download(cfg["hf_hub_id"], cfg.get("hf_hub_filename") or "model.safetensors",
                               kwargs.get("cache_dir"))


def _timm_checkpoint_filter(state_dict: Mapping[str, Any], model: DILResNet,
                            features_only: bool = False) -> dict[str, torch.Tensor]:
    """:func:`checkpoint_filter_fn` for timm's pretrained loading, which adapts the input conv to
    ``in_chans`` itself after the filter (from the ``first_conv`` of the pretrained config) and
    then drops the classifier when the model's ``num_classes`` differs from the pretrained
    config's: passed on as ``head_classes``, so that a saved detector is refused rather than
    run with a random head. A ``features_only`` model has no head to keep (timm drops it by
    design)."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    head_classes = None if features_only or not cfg.get("classifier") else cfg.get("num_classes", 1000)
    return checkpoint_filter_fn(state_dict, model, adapt_first_conv=False, head_classes=head_classes)


def _safetensors_only(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> None:
    """Weights from a Hub repo or a ``local-dir:`` folder come from ``model.safetensors`` only, never
    a pickle (timm falls back to ``pytorch_model.bin``): the Hub's file is named in the pretrained
    config's overlay (``hf_hub_filename``) unless the config names a safetensors file itself; a
    config naming another file, or a folder without ``model.safetensors``, is refused."""
    if not pretrained:
        return
    from timm.models._builder import resolve_pretrained_cfg

    from ..hub.config import WEIGHTS_NAME

    cfg = resolve_pretrained_cfg(variant, kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay")).to_dict()
    source = cfg.get("source")
    if source == "local-dir":
        folder = Path(cfg.get("file") or "")
        if folder.is_dir() and not (folder / WEIGHTS_NAME).is_file():
            found = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl"))
            raise RuntimeError(
                f"local-dir:{folder} holds no {WEIGHTS_NAME}" + (f" (it has {', '.join(found)})" if found else "")
                + f": dil_* weights load from safetensors only, never a pickle. Expected {folder / WEIGHTS_NAME}, "
                "as dynsnip.save_pretrained writes it (a state dict: safetensors.torch.save_file).")
        return
    from_hub = source == "hf-hub" or (not cfg.get("state_dict") and not cfg.get("file") and cfg.get("hf_hub_id"))
    if not from_hub:
        return
    name = cfg.get("hf_hub_filename")
    if name is None:
        kwargs["pretrained_cfg_overlay"] = dict(kwargs.get("pretrained_cfg_overlay") or {}, hf_hub_filename=WEIGHTS_NAME)
    elif not str(name).endswith(".safetensors"):
        raise RuntimeError(
            f"{cfg.get('hf_hub_id')}: the pretrained config names the weights file {name!r}; dil_* weights load "
            f"from safetensors only, never a pickle: expected a .safetensors file ({WEIGHTS_NAME}, as "
            "dynsnip.push_to_hub writes it)")


def _create_dil_resnet(variant: str, pretrained: bool = False, **kwargs: Any) -> DILResNet:
    from timm.layers import is_scriptable

    if is_scriptable():  # timm.create_model(..., scriptable=True): TorchScript will come next
        raise TypeError(NOT_SCRIPTABLE)
    _safetensors_only(variant, pretrained, kwargs)
    base = variant[len("dil_"):]
    model_args = dict(_timm_resnet_args(base), **kwargs)
    if kwargs.get("features_only"):
        feature_cls = model_args.pop("feature_cls", None)
        if feature_cls not in (None, "getter", DILFeatures):
            raise ValueError(
                f"{variant}: features_only supports only feature_cls='getter' (dynsnip's DILFeatures), got "
                f"{feature_cls!r}: timm's list / dict / hook / fx wrappers call the blocks without the number of snippets"
            )
        model_args["feature_cfg"] = dict(model_args.get("feature_cfg") or {}, feature_cls=DILFeatures)
        try:
            feature_take_indices(5, model_args.get("out_indices", (0, 1, 2, 3, 4)))
        except AssertionError as err:  # timm asserts; say what is allowed
            raise ValueError(f"{variant}: bad out_indices ({err}); 0 = stem, 1-4 = the four stages") from None
    with _pretrained_download(variant, pretrained, kwargs):
        model = build_model_with_cfg(
            DILResNet, variant, pretrained,
            pretrained_filter_fn=partial(_timm_checkpoint_filter, features_only=bool(kwargs.get("features_only"))),
            **model_args
        )
    # Whether the weights named by pretrained_cfg were loaded: a model card must not name the
    # ImageNet weights as the base of a detector that was trained from a random init.
    model.pretrained_loaded = bool(pretrained)
    return model


def _make_entrypoint(base: str) -> Callable[..., DILResNet]:
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> DILResNet:
        return _create_dil_resnet(f"dil_{base}", pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = f"dil_{base}"
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"timm's ``{base}`` with alternating Intra-SI / Inter-SI blocks (DIL, AAAI 2022)."
    return entrypoint


for _base in _BASES:
    globals()[f"dil_{_base}"] = register_model(_make_entrypoint(_base))


def dil_model_names() -> list[str]:
    """Names of the registered ``dil_*`` architectures."""
    return [f"dil_{b}" for b in _BASES]
