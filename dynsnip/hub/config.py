"""``config.json`` for a DIL detector, in the layout ``timm.create_model("hf-hub:...")`` reads.

timm rebuilds a model from ``architecture`` + ``model_args`` (passed as keyword arguments to
the ``dil_*`` builder) and takes data settings from ``pretrained_cfg``. The DIL options
(snippet length and counts, SIM stages, pattern and module arguments) therefore go into
``model_args``; timm's own recording of ``create_model`` keyword arguments would miss the
defaults and anything set by :func:`dynsnip.convert_resnet`.

``pretrained_cfg`` keeps only fields of timm's ``PretrainedCfg`` (timm rejects others when it
reads the file back) and names ``model.safetensors`` as the weights file, so that loading
never falls back to a pickled ``pytorch_model.bin``. The frame layout a data pipeline needs
(frames per snippet, snippets per clip for training and testing) is summarised under
``video``; ``base_model`` names the weights the detector was fine-tuned from; the optional
``training`` and ``evaluation`` records (:mod:`dynsnip.hub.records`) say how it was trained
and how it scored.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
import timm
from timm.models import PretrainedCfg, is_model

from ..models.dil_resnet import DILResNet, is_pruned_resnet

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CARD_NAME",
    "dil_architecture",
    "dil_model_args",
    "hub_config",
    "base_weights",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"

VIDEO_LAYOUT = "(B, C, U*T, H, W)"

# create_model() arguments that describe a run, not the network.
_RUNTIME_ARGS = frozenset({"device", "dtype", "pretrained_model_args", "drop_rate", "drop_path_rate", "drop_block_rate"})
# PretrainedCfg fields that locate or describe the *source* weights, not the detector being saved.
_SOURCE_FIELDS = frozenset({
    "url", "file", "state_dict", "hf_hub_id", "hf_hub_filename", "source", "architecture", "tag",
    "notes", "origin_url", "paper_name", "paper_ids", "description", "license", "label_offset",
})
_PRETRAINED_CFG_FIELDS = frozenset(f.name for f in dataclasses.fields(PretrainedCfg))
# PretrainedCfg fields of the source's test-time preprocessing, tied to its input_size.
_TEST_TIME_FIELDS = ("test_input_size", "test_crop_pct", "test_pool_size")


def dil_architecture(model: torch.nn.Module) -> str:
    """The registered ``dil_*`` name that rebuilds ``model`` (``dil_resnet50`` for a converted ``resnet50``)."""
    if not isinstance(model, DILResNet):
        raise TypeError(
            f"expected a DIL model (dynsnip.models.DILResNet), got {type(model).__name__}; create one with "
            "timm.create_model('dil_<resnet>', ...) or dynsnip.convert_resnet(model)"
        )
    arch = (getattr(model, "pretrained_cfg", None) or {}).get("architecture")
    if arch and arch.startswith("dil_") and is_model(arch):
        return arch
    if arch and is_model(f"dil_{arch}"):
        return f"dil_{arch}"  # a timm ResNet turned into a DIL network by convert_resnet
    if is_pruned_resnet(arch):
        raise ValueError(
            f"{arch} is a pruned ResNet: timm narrows its layers after building, from a file named after the model, "
            "so it has no registered dil_* twin that could rebuild it from a config.json, and it cannot be saved in "
            "the Hub layout (save_pretrained / push_to_hub). Save its weights instead, "
            "safetensors.torch.save_file(model.state_dict(), 'detector.safetensors'), and rebuild it with "
            f"dynsnip.convert_resnet(timm.create_model({arch!r}, num_classes=...), <the same DIL options>) followed by "
            "model.load_state_dict(safetensors.torch.load_file('detector.safetensors'))"
        )
    raise ValueError(
        f"cannot tell which registered dil_* architecture this model is (pretrained_cfg architecture: {arch!r}); "
        "build it with timm.create_model('dil_<resnet>') or convert a timm.create_model('<resnet>') model"
    )


def _input_channels(model: DILResNet) -> int:
    return next(m.in_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def dil_model_args(model: DILResNet, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Keyword arguments that make the ``dil_*`` builder rebuild ``model``'s exact network.

    The ``create_model`` arguments timm recorded (minus run-time ones such as drop rates),
    every DIL option (``model.dil_args``), the current ``num_classes`` / ``in_chans`` /
    ``global_pool``, then ``extra``. Raises ValueError naming an argument that is not JSON.
    """
    args = {
        k: v for k, v in getattr(model, "_model_args", {}).items()
        if k not in _RUNTIME_ARGS and not k.endswith("_drop_rate")
    }
    args.update(model.dil_args)
    args["num_classes"] = model.num_classes
    args["in_chans"] = _input_channels(model)
    pool = getattr(getattr(model, "global_pool", None), "pool_type", None)
    if isinstance(pool, str):
        args["global_pool"] = pool
    args.update(extra or {})
    for key, value in args.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"model argument {key}={value!r} cannot be written to config.json (not JSON); "
                f"pass a JSON replacement, e.g. model_args={{{key!r}: ...}}"
            ) from None
    return args


def _check_rebuilds(arch: str, model_args: Mapping[str, Any], model: DILResNet) -> None:
    """Raise ValueError unless ``timm.create_model(arch, **model_args)`` has ``model``'s tensors."""
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        rebuilt = timm.create_model(arch, **model_args)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    problems = [f"{k} missing" for k in want if k not in got]
    problems += [f"{k} unexpected" for k in got if k not in want]
    problems += [f"{k}: {got[k]} instead of {want[k]}" for k in want if k in got and got[k] != want[k]]
    if problems:
        shown = "; ".join(problems[:4]) + (f"; ... ({len(problems)} in all)" if len(problems) > 4 else "")
        raise ValueError(
            f"config.json would not rebuild this model: timm.create_model({arch!r}, **model_args) differs ({shown}). "
            "Pass the missing constructor options with model_args={...}."
        )


def base_weights(model: torch.nn.Module) -> str | None:
    """The Hub repo of the weights ``model`` was created from, if its pretrained config names one.

    ``timm/resnet50.tv_in1k`` for ``dil_resnet50.tv_in1k``, ``me/my-detector`` for a model
    loaded from that repo, the recorded ``base_model`` for one loaded from a local directory.
    Returns None unless the model says it holds those weights (``model.pretrained_loaded`` True:
    a ``dil_*`` builder given ``pretrained=True``, :func:`dynsnip.convert_resnet` given
    ``pretrained=True``), unless it was rebuilt from a local directory: a model built with
    ``pretrained=False``, or converted without saying (``pretrained_loaded`` None, unknown), may
    hold random weights, and a card must not name an initialisation that may not have happened.
    """
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if getattr(model, "pretrained_loaded", None) is not True and cfg.get("source") != "local-dir":
        return None
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        return str(hub_id).split("@", 1)[0]
    if cfg.get("source") == "local-dir" and cfg.get("file"):
        config_file = Path(cfg["file"]) / CONFIG_NAME
        if config_file.is_file():
            return json.loads(config_file.read_text(encoding="utf-8")).get("base_model")
    return None


def _pretrained_cfg(model: DILResNet, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    source = dict(getattr(model, "pretrained_cfg", None) or {})
    cfg = {
        k: v for k, v in source.items()
        if k in _PRETRAINED_CFG_FIELDS and k not in _SOURCE_FIELDS and v is not None
    }
    if source.get("num_classes") != model.num_classes:  # a new head: the source's labels do not apply
        cfg.pop("label_names", None)
        cfg.pop("label_descriptions", None)
    cfg["num_classes"] = model.num_classes
    cfg["custom_load"] = False
    cfg["hf_hub_filename"] = WEIGHTS_NAME  # plain timm loads these weights and never looks for a pickle
    cfg.setdefault("input_size", (3, 224, 224))
    channels = _input_channels(model)
    for key in ("input_size", "test_input_size", "min_input_size"):  # the source's sizes are RGB: in_chans != 3
        if cfg.get(key) is not None:
            cfg[key] = (channels, *tuple(cfg[key])[1:])
    unknown = sorted(set(overrides or {}) - _PRETRAINED_CFG_FIELDS)
    if unknown:
        raise ValueError(
            f"pretrained_cfg keys {unknown} are not fields of timm's PretrainedCfg "
            f"(allowed: {sorted(_PRETRAINED_CFG_FIELDS - _SOURCE_FIELDS)})"
        )
    if "input_size" in (overrides or {}):
        # the detector records the size it was trained at: the source's test-time sizes are ImageNet's
        # (timm's resolve_data_config(use_test_size=True) would crop 288 px for a 112 px detector)
        for key in _TEST_TIME_FIELDS:
            if key not in overrides:
                cfg.pop(key, None)
    cfg.update(overrides or {})
    for key in ("input_size", "test_input_size", "min_input_size", "mean", "std", "pool_size", "test_pool_size"):
        if cfg.get(key) is not None:
            cfg[key] = list(cfg[key])
    return cfg


def hub_config(
    model: DILResNet,
    model_args: Mapping[str, Any] | None = None,
    pretrained_cfg: Mapping[str, Any] | None = None,
    base_model: str | None = None,
    training: Mapping[str, Any] | None = None,
    evaluation: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``config.json`` dict for ``model``; checks that it rebuilds the same network.

    Args:
        model: a DIL model.
        model_args: builder arguments to add or replace (e.g. a JSON stand-in for an object).
        pretrained_cfg: ``PretrainedCfg`` fields to set, e.g. the ``input_size`` / ``mean`` /
            ``std`` the detector was fine-tuned with. With an ``input_size``, the source's
            ``test_input_size`` / ``test_crop_pct`` / ``test_pool_size`` (ImageNet's test-time
            sizes) are left out unless given too.
        base_model: Hub repo of the weights fine-tuned from, recorded as ``base_model``.
        training, evaluation: the optional records of :mod:`dynsnip.hub.records`.
    """
    from .. import __version__

    arch = dil_architecture(model)
    args = dil_model_args(model, model_args)
    _check_rebuilds(arch, args, model)
    dil = model.dil_args
    config: dict[str, Any] = {
        "architecture": arch,
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "global_pool": args.get("global_pool"),
        "model_args": args,
        "pretrained_cfg": _pretrained_cfg(model, pretrained_cfg),
        "video": {
            "layout": VIDEO_LAYOUT,
            "snippet_len": dil["snippet_len"],
            "num_snippets": dil["num_snippets"],
            "test_num_snippets": dil["test_num_snippets"],
            "num_frames": dil["snippet_len"] * dil["num_snippets"],
            "test_num_frames": dil["snippet_len"] * dil["test_num_snippets"],
        },
        "library": {"name": "dynsnip", "version": __version__},
    }
    if base_model:
        config["base_model"] = base_model
    if training:
        config["training"] = dict(training)
    if evaluation:
        config["evaluation"] = [dict(e) for e in evaluation]
    return {k: v for k, v in config.items() if v is not None}
