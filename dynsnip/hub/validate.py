"""Check a saved detector's ``config.json`` before building anything from it.

A hand-edited or truncated ``config.json`` (``num_classes: -1``, ``test_num_snippets: 0``,
``input_size: 100000``, ``mean: "abc"``, ``std: 0``, a misspelt ``model_args`` key) would
otherwise build a model that fails on every video, or scores NaN. :func:`config_problems`
lists what is wrong, each as ``key = value: what is allowed``; :func:`dynsnip.load_model`
refuses such a folder or repo with :class:`~dynsnip.hub.errors.InvalidConfigError`.

The ``model_args`` keys are checked against what the model class actually accepts (the
keyword parameters of :class:`~dynsnip.models.DILResNet` and of the timm ``ResNet`` it
extends, read from their signatures), so an option added to the models is accepted here
without a second list to keep in sync.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Mapping

from timm.models import PretrainedCfg

from ..models.dil_resnet import DILResNet

__all__ = ["config_problems", "option_problems", "accepted_model_args", "MAX_SNIPPETS", "MIN_SIDE", "MAX_SIDE"]

MAX_SNIPPETS = 256
"""Largest U (``num_snippets`` / ``test_num_snippets``): all U*T frames go through the network
at once, and 256 snippets is 32x the paper's test clip (U = 8); more is a typo."""
MIN_SIDE = 8
"""Smallest crop side: the network still runs on less (its stages pad to a 1x1 map), but below
8 px a face crop holds no detail to judge; tiny test models train at 16 px."""
MAX_SIDE = 2048
"""Largest crop side: the paper crops faces at 224 px; 2048 already exceeds a 1080p frame's height."""

# Options timm's builder takes besides the model class's own (feature extraction, see
# dynsnip.models.dil_resnet._create_dil_resnet).
_BUILDER_ARGS = frozenset({"features_only", "out_indices", "feature_cls", "feature_cfg"})


def accepted_model_args(model_cls: type = DILResNet) -> frozenset[str]:
    """The keyword arguments ``model_cls(...)`` accepts: its ``__init__`` parameters and those of
    each base class its ``**kwargs`` are passed on to, plus timm's builder options."""
    names: set[str] = set(_BUILDER_ARGS)
    for cls in model_cls.__mro__:
        if "__init__" not in cls.__dict__ or cls.__module__.startswith("torch."):
            continue
        params = inspect.signature(cls.__init__).parameters.values()
        names |= {p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return frozenset(names)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_problem(key: str, value: Any, low: int, high: int | None = None) -> list[str]:
    if _is_int(value) and value >= low and (high is None or value <= high):
        return []
    allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
    return [f"{key} = {value!r}: expected {allowed}"]


def _size_problems(key: str, value: Any, channels: Any) -> list[str]:
    ok = (isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_int(v) for v in value)
          and MIN_SIDE <= value[1] <= MAX_SIDE and MIN_SIDE <= value[2] <= MAX_SIDE)
    if not ok:
        return [f"{key} = {value!r}: expected [channels, height, width] with height and width from "
                f"{MIN_SIDE} to {MAX_SIDE} pixels"]
    if _is_int(channels) and value[0] != channels:
        return [f"{key} = {value!r}: expected {channels} channels (model_args.in_chans)"]
    return []


def _stats_problems(key: str, value: Any, channels: int, positive: bool) -> list[str]:
    ok = (isinstance(value, (list, tuple)) and len(value) in (channels, 3) and all(_is_number(v) for v in value)
          and (not positive or all(v > 0 for v in value)))
    if ok:
        return []
    what = "positive numbers" if positive else "finite numbers"
    return [f"{key} = {value!r}: expected a list of {channels} {what}, one per channel"]


# What timm's PretrainedCfg accepts: a config.json field it does not know fails its constructor.
_PRETRAINED_CFG_FIELDS = frozenset(f.name for f in dataclasses.fields(PretrainedCfg))

# The integer model_args a detector can work with: (smallest, largest or None).
_MODEL_ARG_BOUNDS: dict[str, tuple[int, int | None]] = {
    "num_classes": (1, None), "in_chans": (1, None), "snippet_len": (1, None),
    "num_snippets": (1, MAX_SNIPPETS), "test_num_snippets": (1, MAX_SNIPPETS),
}


def option_problems(options: Mapping[str, Any], min_classes: int = 1) -> list[str]:
    """What is wrong with keyword options passed to :func:`dynsnip.load_model` on top of a
    ``config.json`` (``num_classes``, ``in_chans``, ``snippet_len``, ``num_snippets``,
    ``test_num_snippets``), each as ``key = value: what is allowed``, with the bounds
    :func:`config_problems` applies to the saved values: an override must not build what a
    config.json could not describe (``num_classes=-1`` returning features as logits,
    ``test_num_snippets=1000``). ``min_classes``: 0 where no head is a choice (an ImageNet
    backbone built as a feature extractor); ``None`` values are timm's "not given"."""
    problems: list[str] = []
    for key, (low, high) in _MODEL_ARG_BOUNDS.items():
        if options.get(key) is not None:
            problems += _int_problem(key, options[key], min_classes if key == "num_classes" else low, high)
    return problems


# timm's PretrainedCfg default: the classes timm assumes a checkpoint's head has when config.json names none
_TIMM_DEFAULT_CLASSES = 1000


def _num_classes_problems(config: Mapping[str, Any], args: Mapping[str, Any], cfg: Mapping[str, Any]) -> list[str]:
    """Whether the three records of the head's size agree: ``num_classes`` (which timm copies
    into ``pretrained_cfg.num_classes``), ``model_args.num_classes`` (the head the model is
    built with) and ``pretrained_cfg.num_classes``. timm's pretrained loading drops a
    checkpoint's classifier when the model's classes differ from the pretrained config's, so a
    disagreement (or no record at all, which timm reads as 1000) would run the detector with a
    random head instead of the saved one. Values that are not valid counts are reported by the
    range checks, not here."""
    found = [(key, where.get("num_classes")) for key, where in
             (("num_classes", config), ("model_args.num_classes", args), ("pretrained_cfg.num_classes", cfg))
             if "num_classes" in where]
    valid = [(key, value) for key, value in found if _is_int(value) and value >= 1]
    if len(valid) != len(found):
        return []
    if len({value for _, value in valid}) > 1:
        shown = ", ".join(f"{key} = {value}" for key, value in valid)
        return [f"{shown}: expected one number of classes in all of them (the saved head's); timm would drop "
                "the saved classifier and run a random one"]
    if "num_classes" in args and "num_classes" not in config and "num_classes" not in cfg:
        return [f"model_args.num_classes = {args['num_classes']} but no top-level num_classes (or "
                f"pretrained_cfg.num_classes), which timm then takes as {_TIMM_DEFAULT_CLASSES}: expected "
                f"num_classes = {args['num_classes']}; timm would drop the saved classifier and run a random one"]
    return []


def config_problems(config: Any, model_cls: type = DILResNet) -> list[str]:
    """What is wrong with a detector's ``config.json`` (an empty list when nothing is).

    Checked: ``num_classes`` (>= 1, the same at the top level, in ``model_args`` and in
    ``pretrained_cfg``: otherwise timm drops the saved head), ``model_args`` (a dict of keys the model accepts;
    ``snippet_len`` >= 1, ``num_snippets`` / ``test_num_snippets`` from 1 to
    :data:`MAX_SNIPPETS`, ``in_chans`` >= 1, ``num_classes`` as above), ``pretrained_cfg``
    (fields of timm's ``PretrainedCfg`` only; ``input_size`` / ``test_input_size`` ``[C, H, W]``
    with sides from :data:`MIN_SIDE` to :data:`MAX_SIDE`, ``mean`` finite and ``std`` positive,
    one per channel) and ``video``
    (a dict). The architecture itself is checked by the loader.
    """
    if not isinstance(config, Mapping):
        return [f"the file holds a {type(config).__name__}, expected a JSON object"]
    problems: list[str] = []
    if "num_classes" in config:
        problems += _int_problem("num_classes", config["num_classes"], 1)
    args = config.get("model_args", {})
    if not isinstance(args, Mapping):
        return problems + [f"model_args = {args!r}: expected an object of {model_cls.__name__} options"]
    accepted = accepted_model_args(model_cls)
    unknown = sorted(set(args) - accepted)
    if unknown:
        problems.append(f"model_args has unknown key(s) {unknown}: expected options of {model_cls.__name__} "
                        f"({', '.join(sorted(accepted))})")
    for key, (low, high) in _MODEL_ARG_BOUNDS.items():
        if key in args:
            problems += _int_problem(f"model_args.{key}", args[key], low, high)
    channels = args.get("in_chans", 3)
    cfg = config.get("pretrained_cfg", {})
    if not isinstance(cfg, Mapping):
        return problems + [f"pretrained_cfg = {cfg!r}: expected an object of timm PretrainedCfg fields"]
    unknown_fields = sorted(set(cfg) - _PRETRAINED_CFG_FIELDS)
    if unknown_fields:  # timm's PretrainedCfg(**cfg) would fail with a TypeError
        problems.append(f"pretrained_cfg has field(s) {unknown_fields} that this timm's PretrainedCfg does not know: "
                        "expected fields of timm.models.PretrainedCfg (saved by a newer dynsnip or timm? upgrade "
                        "dynsnip and timm, or save the model again with this version)")
    for key in ("input_size", "test_input_size"):
        if cfg.get(key) is not None:
            problems += _size_problems(f"pretrained_cfg.{key}", cfg[key], channels)
    n = channels if _is_int(channels) and channels >= 1 else 3
    for key, positive in (("mean", False), ("std", True)):
        if key in cfg:
            problems += _stats_problems(f"pretrained_cfg.{key}", cfg[key], n, positive)
    if "num_classes" in cfg:
        problems += _int_problem("pretrained_cfg.num_classes", cfg["num_classes"], 1)
    problems += _num_classes_problems(config, args, cfg)
    if "video" in config and not isinstance(config["video"], Mapping):
        problems.append(f"video = {config['video']!r}: expected an object (the frame layout)")
    return problems
