"""The configurations of the paper's ablation tables (Tables 4, 5 and 6), by name.

Every row is a set of ``dil_resnet50`` builder arguments (the paper's backbone), so that it
can be built with ``timm.create_model("dil_resnet50.tv_in1k", pretrained=True, **args)`` or
trained with ``dynsnip train --model dil_resnet50.tv_in1k --model-arg KEY=VALUE ...``
(:func:`model_arg_flags` gives the flags)::

    >>> dynsnip.paper_config("table5/bp+ca")
    {'intra_args': {'motion_fraction': 0.0, 'diff_init': 'random', 'bidirectional': True, 'coord_attention': True, 'learnable_kernel': False}, 'inter_args': {'conv_u_init': 'random'}}

Readings of the tables, where they leave something open:

* Table 4 "inserts the corresponding modules into all stages": with only one kind of SIM,
  every block of every stage gets it (``sim_pattern="intra"`` / ``"inter"``); the first row
  (no SIM) is the plain ResNet-50 on the same frames, whose video logit is the mean of
  per-frame logits (``sim_stages=[]``).
* Table 5's three switches (bi-directional path, coordinate attention, learnable kernels)
  are elements of the Intra-SIM (Figure 2), so they are applied to the Intra-SIMs; the
  Inter-SIMs keep their defaults in every row. The first row has all three off: one
  forward difference, ``σ(Conv1x1(D))`` as the attention, no kernel.
* Table 6 places the modules "in a alternate manner in each stage" of the listed stages.
* Every row is the paper's module as its equations and text state it: Intra-SIM without
  dynsnip's motion channels (``motion_fraction=0``, a deviation from Eq. 5 that is on by
  default, see docs/temporal_sensitivity.md), with Eq. 1's conv randomly initialised
  (``diff_init="random"``) and Inter-SIM's ``Conv_U`` too (``conv_u_init="random"``): "both
  Intra-SIM and Inter-SIM are randomly initialized". Every
  other default is kept (also those the paper leaves open), so a row differs from ``full``
  only by what its table varies. ``paper`` is the same as ``full``: the paper-literal model,
  one argument away from dynsnip's default (``timm.create_model("dil_resnet50",
  **dynsnip.paper_config("paper"))``).
"""
from __future__ import annotations

import copy
import json
from typing import Any

__all__ = ["PAPER_CONFIGS", "PAPER_LITERAL_INTRA_ARGS", "PAPER_LITERAL_INTER_ARGS", "paper_config", "paper_config_names", "model_arg_flags",
           "MODULE_CONFIGS", "module_config_args", "module_configuration"]

_BP = "bidirectional"
_CA = "coord_attention"
_LK = "learnable_kernel"

PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    # Table 4: effects of Intra-SIM and Inter-SIM (all stages)
    "table4/none": {"sim_stages": []},
    "table4/intra": {"sim_pattern": "intra"},
    "table4/inter": {"sim_pattern": "inter"},
    "table4/intra+inter": {"sim_pattern": "alternate"},
    # Table 5: bi-directional path (BP), coordinate attention (CA), learnable kernels (LK)
    "table5/none": {"intra_args": {_BP: False, _CA: False, _LK: False}},
    "table5/bp": {"intra_args": {_BP: True, _CA: False, _LK: False}},
    "table5/bp+ca": {"intra_args": {_BP: True, _CA: True, _LK: False}},
    "table5/bp+ca+lk": {"intra_args": {_BP: True, _CA: True, _LK: True}},
    # Table 6: locations (alternating Intra-SI / Inter-SI blocks in the listed stages)
    "table6/stages1-2": {"sim_stages": [1, 2]},
    "table6/stages2-3": {"sim_stages": [2, 3]},
    "table6/stages3-4": {"sim_stages": [3, 4]},
    "table6/stages2-4": {"sim_stages": [2, 3, 4]},
    "table6/stages1-3": {"sim_stages": [1, 2, 3]},
    "table6/all": {"sim_stages": [1, 2, 3, 4]},
    # the full model (the last row of each table)
    "full": {},
    "paper": {},
}

# what makes a row the paper's module rather than dynsnip's default (see the module docstring)
PAPER_LITERAL_INTRA_ARGS: dict[str, Any] = {"motion_fraction": 0.0, "diff_init": "random"}
# dynsnip starts Conv_U at the identity; the paper's "randomly initialized" is PyTorch's default init
PAPER_LITERAL_INTER_ARGS: dict[str, Any] = {"conv_u_init": "random"}
for _row in PAPER_CONFIGS.values():
    _row["intra_args"] = {**PAPER_LITERAL_INTRA_ARGS, **_row.get("intra_args", {})}
    _row["inter_args"] = {**PAPER_LITERAL_INTER_ARGS, **_row.get("inter_args", {})}


def paper_config_names() -> list[str]:
    """Every name :func:`paper_config` accepts, table by table."""
    return list(PAPER_CONFIGS)


def paper_config(name: str) -> dict[str, Any]:
    """``dil_resnet50`` builder arguments of the row ``name`` (e.g. ``"table5/bp+ca"``).

    Returns a new dict (changing it changes nothing here). Raises ValueError naming the
    accepted names for an unknown one.
    """
    if name not in PAPER_CONFIGS:
        raise ValueError(f"unknown paper configuration {name!r}; known: {', '.join(PAPER_CONFIGS)}")
    return copy.deepcopy(PAPER_CONFIGS[name])


def model_arg_flags(name: str) -> list[str]:
    """The ``dynsnip train --model-arg`` flags of row ``name``: ``['--model-arg', 'KEY=JSON', ...]``."""
    flags: list[str] = []
    for key, value in paper_config(name).items():
        flags += ["--model-arg", f"{key}={json.dumps(value, separators=(',', ':'))}"]
    return flags


# ------------------------------------------------------------------ the two module configurations
MODULE_CONFIGS: dict[str, str] = {
    "default": "dynsnip's default: Intra-SIM with motion channels (a measured deviation from Eq. 5, "
               "docs/temporal_sensitivity.md) and Eq. 1's conv started at the identity",
    "paper": "the paper's module as written: Intra-SIM without motion channels (Eq. 5), Eq. 1's conv and "
             "Inter-SIM's Conv_U randomly initialised (paper_config('paper'))",
}
"""What ``dynsnip train / benchmark --config`` (and the DeepfakeBench integration's
``dynsnip.config``) build: ``"paper"`` reproduces the paper, ``"default"`` is ours."""

_SIM_ARGS = ("intra_args", "inter_args")


def module_config_args(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``dil_*`` builder arguments of module configuration ``name`` (``"default"``: none,
    ``"paper"``: :func:`paper_config` ``("paper")``), with ``overrides`` (``--model-arg``)
    applied on top; ``intra_args`` / ``inter_args`` are merged key by key, so
    ``--config paper --model-arg 'intra_args={"coord_attention":false}'`` keeps the paper's
    Intra-SIM otherwise.

    Raises:
        ValueError: an unknown ``name``, naming the known ones.
    """
    if name not in MODULE_CONFIGS:
        raise ValueError(f"unknown module configuration {name!r}; expected one of {', '.join(MODULE_CONFIGS)} "
                         "(paper: the paper's module as written; default: dynsnip's)")
    args = paper_config("paper") if name == "paper" else {}
    for key, value in (overrides or {}).items():
        if key in _SIM_ARGS and isinstance(value, dict) and isinstance(args.get(key), dict):
            args[key] = {**args[key], **value}
        else:
            args[key] = copy.deepcopy(value)
    return args


def _non_default(args: dict[str, Any], module: type) -> dict[str, Any]:
    """The entries of ``args`` that differ from ``module.__init__``'s defaults."""
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(module.__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return {k: v for k, v in args.items() if k not in defaults or defaults[k] != v}


def module_configuration(model_or_dil_args: Any) -> str:
    """Which module configuration a DIL model is: ``"paper"``, ``"default"`` or ``"custom"``.

    Read from the model's ``dil_args`` (what ``config.json`` records), so it names the
    configuration of any saved detector: ``"paper"`` when its SIMs are exactly those of
    ``paper_config("paper")`` (all stages, alternating, the paper-literal Intra-SIM),
    ``"default"`` when they are dynsnip's defaults, ``"custom"`` otherwise (an ablation row, a
    ``--model-arg``). T and U are not part of it.
    """
    from ..modules import InterSIM, IntraSIM

    dil_args = getattr(model_or_dil_args, "dil_args", model_or_dil_args)
    if not isinstance(dil_args, dict):
        raise TypeError(f"expected a DIL model (with dil_args) or its dil_args dict, got {type(model_or_dil_args).__name__}")
    layout = (sorted(int(s) for s in dil_args.get("sim_stages", (1, 2, 3, 4))), dil_args.get("sim_pattern", "alternate"))
    inter = _non_default(dict(dil_args.get("inter_args") or {}), InterSIM)
    if layout != ([1, 2, 3, 4], "alternate") or (inter and inter != PAPER_LITERAL_INTER_ARGS):
        return "custom"
    intra = _non_default(dict(dil_args.get("intra_args") or {}), IntraSIM)
    if not intra and not inter:
        return "default"
    paper = _non_default(PAPER_LITERAL_INTRA_ARGS, IntraSIM)
    if intra == paper or (intra.keys() - {"motion_source", "motion_reduction"} == paper.keys()
                          and all(intra[k] == v for k, v in paper.items())):
        # motion_source / motion_reduction do nothing without motion channels; detectors saved before
        # the paper's rows set conv_u_init="random" record inter_args {}: Conv_U's init is not the network
        return "paper"
    return "custom"
