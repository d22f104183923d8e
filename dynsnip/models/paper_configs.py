"""The configurations of the paper's ablation tables (Tables 4, 5 and 6), by name.

Every row is a set of ``dil_resnet50`` builder arguments (the paper's backbone), so that it
can be built with ``timm.create_model("dil_resnet50.tv_in1k", pretrained=True, **args)`` or
trained with ``dynsnip train --model dil_resnet50.tv_in1k --model-arg KEY=VALUE ...``
(:func:`model_arg_flags` gives the flags)::

    >>> dynsnip.paper_config("table5/bp+ca")
    {'intra_args': {'motion_fraction': 0.0, 'diff_init': 'random', 'bidirectional': True, 'coord_attention': True, 'learnable_kernel': False}}

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
  default, see docs/temporal_sensitivity.md) and with Eq. 1's conv randomly initialised
  (``diff_init="random"``: "both Intra-SIM and Inter-SIM are randomly initialized"). Every
  other default is kept (also those the paper leaves open), so a row differs from ``full``
  only by what its table varies. ``paper`` is the same as ``full``: the paper-literal model,
  one argument away from dynsnip's default (``timm.create_model("dil_resnet50",
  **dynsnip.paper_config("paper"))``).
"""
from __future__ import annotations

import copy
import json
from typing import Any

__all__ = ["PAPER_CONFIGS", "PAPER_LITERAL_INTRA_ARGS", "paper_config", "paper_config_names", "model_arg_flags"]

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
for _row in PAPER_CONFIGS.values():
    _row["intra_args"] = {**PAPER_LITERAL_INTRA_ARGS, **_row.get("intra_args", {})}


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
