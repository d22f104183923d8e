"""The model card (``README.md``) of a DIL detector on the Hugging Face Hub.

Hub metadata (YAML front matter): library ``timm`` (the Hub's "Use this model" then shows
``timm.create_model("hf-hub:...")``), tags for video classification and deepfake
detection, the base weights, the licence. The text says what the model takes and how to
load it.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from huggingface_hub import ModelCardData

__all__ = ["CARD_TAGS", "model_card"]

CARD_TAGS = ("video-classification", "deepfake-detection", "timm", "dynsnip", "dil")

_CITATION = """@inproceedings{gu2022delving,
  title     = {Delving into the Local: Dynamic Inconsistency Learning for DeepFake Video Detection},
  author    = {Gu, Zhihao and Chen, Yang and Yao, Taiping and Ding, Shouhong and Li, Jilin and Ma, Lizhuang},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  volume    = {36},
  number    = {1},
  pages     = {744--752},
  year      = {2022}
}"""


def model_card(config: Mapping[str, Any], repo_id: str | None = None, license: str | None = None) -> str:
    """Render the card for a model whose ``config.json`` is ``config``.

    Args:
        config: the dict :func:`dynsnip.hub.config.hub_config` returned.
        repo_id: the Hub repo it is pushed to (used in the loading example); a placeholder if None.
        license: SPDX-style licence id for the card metadata (``apache-2.0``, ``other``...); omitted if None.
    """
    arch = config["architecture"]
    video = config["video"]
    cfg = config["pretrained_cfg"]
    args = config["model_args"]
    base = config.get("base_model")
    metadata = ModelCardData(
        library_name="timm",
        pipeline_tag="video-classification",
        tags=list(CARD_TAGS),
        license=license,
        base_model=base,
        **({"base_model_relation": "finetune"} if base else {}),
    )
    name = repo_id or "<user>/<repo>"
    title = repo_id.split("/")[-1] if repo_id else arch
    c, h, w = cfg["input_size"]
    t, u, u_test = video["snippet_len"], video["num_snippets"], video["test_num_snippets"]
    sim_options = {k: args[k] for k in ("sim_stages", "sim_pattern", "intra_args", "inter_args") if k in args}
    base_line = (
        f"- **Initialised from:** [{base}](https://huggingface.co/{base})\n" if base else ""
    )
    return f"""---
{metadata.to_yaml()}
---
# {title}

A DeepFake video detector: `{arch}`, a timm ResNet with Intra-Snippet Inconsistency and
Inter-Snippet Interaction modules (DIL, Gu et al., AAAI 2022), built with the
`dynsnip` package. It returns {config["num_classes"]} logit(s) per video clip.

## Model details
- **Architecture:** `{arch}` ({config.get("num_features", "?")} features, classifier `{cfg.get("classifier", "fc")}`)
{base_line}- **Input:** clips of shape `{video["layout"]}` = `(B, {c}, {u}*{t}, {h}, {w})`: U snippets of
  T = {t} consecutive face frames each, frames ordered snippet by snippet
- **Snippets per clip:** U = {u} for training ({video["num_frames"]} frames), U = {u_test} for testing ({video["test_num_frames"]} frames); the network reads U from the input
- **Frame preprocessing:** RGB in [0, 1], normalised with mean `{list(cfg["mean"])}`, std `{list(cfg["std"])}`, {h}x{w} pixels
- **SIM options:** `{json.dumps(sim_options)}`

## How to load
```python
import dynsnip  # registers the dil_* architectures with timm
import timm

model = timm.create_model("hf-hub:{name}", pretrained=True).eval()
logits = model(clips)  # clips: (B, {c}, {u_test * t}, {h}, {w}) -> (B, {config["num_classes"]})
```
or `dynsnip.load_model("hf-hub:{name}")`, which explains a missing file, an unknown repo
or mismatched weights. The weights are `model.safetensors` (no pickle); `config.json` holds
the architecture, every DIL option (`model_args`) and the preprocessing (`pretrained_cfg`).

## Citation
```bibtex
{_CITATION}
```
"""
