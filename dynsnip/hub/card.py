"""The model card (``README.md``) of a DIL detector on the Hugging Face Hub.

Hub metadata (YAML front matter): library ``timm`` (the Hub's "Use this model" then shows
``timm.create_model("hf-hub:...")``), tags for video classification and deepfake
detection, the base weights, the licence and, when ``config.json`` records evaluation
results, the Hub's ``model-index``. The text says what the model takes and how to load it,
and how it was trained and how it scored when ``config.json`` says so
(:mod:`dynsnip.hub.records`).
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from huggingface_hub import EvalResult, ModelCardData

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


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _cell(text: Any) -> str:
    """``text`` for a Markdown table cell (a ``|`` in a data name would split the cell)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _precision(recipe: Mapping[str, Any]) -> str:
    """The precision row of the training table. ``amp`` only asks for mixed precision: training
    autocasts on a GPU alone (a CPU run stays float32), and the training record holds the recipe,
    not the device the run had, so with ``amp`` on the row says both cases rather than claim a GPU."""
    if recipe.get("precision"):  # recorded by the run itself
        return str(recipe["precision"]) + (" with gradient scaling" if recipe["precision"] == "float16 autocast" else "")
    if not recipe.get("amp"):
        return "float32"
    dtype = recipe.get("amp_dtype") or "float16"
    scaling = " with gradient scaling" if dtype == "float16" else ""
    return (f"{dtype} autocast{scaling} if the run had a GPU, float32 if it ran on CPU "
            "(mixed precision was requested; the training record does not name the device)")


def _training_section(config: Mapping[str, Any]) -> str:
    """``## Training`` from the ``training`` record (see :mod:`dynsnip.hub.records`); empty without one."""
    record = config.get("training")
    if not record:
        return ""
    r = record.get("recipe", {})
    rows = []
    if r.get("model"):
        rows.append(("started from", f"`{r['model']}`" + ("" if r.get("pretrained", True) else " (random init)")))
    if r.get("module_config"):
        rows.append(("module", {"paper": "the paper's module as written (`--config paper`)",
                                "default": "dynsnip's default (`--config default`: Intra-SIM motion channels, "
                                           "a deviation from the paper)"}.get(r["module_config"], str(r["module_config"]))))
    if record.get("data"):
        rows.append(("data", str(record["data"])))
    if record.get("scope"):
        rows.append(("scope", str(record["scope"])))
    sizes = [f"{record[k]} {what}" for k, what in (("num_train_clips", "clips per training epoch"),
                                                   ("num_train_real", "real training items"),
                                                   ("num_train_fake", "fake training items"),
                                                   ("num_val_videos", "validation videos")) if k in record]
    if sizes:
        rows.append(("size", ", ".join(sizes)))
    if "lr" in r:
        betas = r.get("betas")
        rows.append(("optimiser", f"Adam, lr {r['lr']:g}" + (f", betas {tuple(betas)}" if betas else "")
                     + (f", weight decay {r['weight_decay']:g}" if r.get("weight_decay") else "")))
    if "lr_factor" in r:
        patience = r.get("plateau_patience", 0)
        watched = f"validation {r.get('monitor', 'auc')}" if record.get("num_val_videos") else "training loss"
        rows.append(("schedule", "constant lr (no plateau drop within the run)" if patience >= r.get("epochs", 0)
                     else f"lr x {r['lr_factor']:g} when the {watched} has not improved for {patience + 1} epochs"))
    if "batch_size" in r:
        rows.append(("batch", f"{r['batch_size']} clips, binary cross-entropy on one fake logit"))
    if "epochs" in r:
        rows.append(("epochs", f"{r['epochs']}" + (f"; these weights are from epoch {record['epoch']}"
                                                   if record.get("epoch") else "")))
    if "num_snippets" in r:
        rows.append(("clips", f"U = {r['num_snippets']} x T = {r.get('snippet_len', '?')} frames at "
                              f"{r.get('img_size', '?')} px for training, U = {r.get('test_num_snippets', '?')} "
                              "for validation"))
    if "hflip_prob" in r:
        rows.append(("augmentation", f"horizontal flip of the whole clip, p = {r['hflip_prob']:g}"))
    if r.get("pseudo_fakes"):
        rows.append(("pseudo-fakes", f"every real clip also trained as a `{r['pseudo_fakes']}` self-blended pseudo-fake "
                                     f"({r.get('pseudo_fake_magnitude', 'medium')}), docs/pseudo_fakes.md"))
    if "amp" in r or record.get("precision"):
        rows.append(("precision", _precision({**r, "precision": record.get("precision")})))
    table = "\n".join(f"| {k} | {_cell(v)} |" for k, v in rows)
    return f"""
## Training
Fine-tuned with `dynsnip train`; the full recipe is under `training` in `config.json`.

| setting | value |
|---|---|
{table}
"""


def coverage(record: Mapping[str, Any], metrics: Mapping[str, Any] | None = None) -> tuple[int, int] | None:
    """``(scored, total)`` videos of a result (``metrics``: one of its subsets, default overall) when
    some were not scored: its failed videos (``num_failed``) and, overall, the test videos missing on
    disk (``missing_videos``); None when every video was scored or the record does not say (records
    written before these counts)."""
    m = record.get("overall", {}) if metrics is None else metrics
    scored = m.get("num_videos")
    overall = metrics is None or metrics is record.get("overall")
    failed = m.get("num_failed", record.get("num_failed") if overall else None) or 0
    missing = (record.get("missing_videos") or 0) if overall else 0
    if scored is None or not (failed or missing):
        return None
    return int(scored), int(scored) + int(failed) + int(missing)


def _scored_note(record: Mapping[str, Any], metrics: Mapping[str, Any] | None = None) -> str:
    covered = coverage(record, metrics)
    return "" if covered is None else f" ({covered[0]} of {covered[1]} videos scored)"


def _split(record: Mapping[str, Any]) -> str | None:
    """The record's split as :func:`dynsnip.hub.records.canonical_split` spells it (records saved
    before it with ``validation`` render as ``val``)."""
    from .records import canonical_split  # records imports this module

    return canonical_split(record.get("split"))


def _evaluation_rows(config: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """``(name, record, metrics)`` for each result and each manipulation method in it; a name says how
    many of its videos were scored when some were not."""
    rows = []
    for record in config.get("evaluation") or []:
        split = _split(record)
        name = record.get("data", "unnamed") + (f" [{split}]" if split else "")
        rows.append((name + _scored_note(record), record, record.get("overall", {})))
        methods = record.get("per_method") or {}
        if len(methods) > 1:  # one method's row would repeat the overall one
            rows += [(f"{name}: {method}{_scored_note(record, m)}", record, m) for method, m in methods.items()]
    return rows


def _evaluation_section(config: Mapping[str, Any]) -> str:
    """``## Evaluation`` from the ``evaluation`` records; empty without any."""
    rows = _evaluation_rows(config)
    if not rows:
        return ""
    lines = []
    for name, record, m in rows:
        protocol = f"{record.get('num_snippets', '?')} x {record.get('snippet_len', '?')}"
        lines.append(f"| {_cell(name)} | {protocol} | {m.get('num_real', '?')} / {m.get('num_fake', '?')} | "
                     f"{_fmt(m.get('auc'))} | {_fmt(m.get('accuracy'))} | {_cell(record.get('source', ''))} |")
    table = "\n".join(lines)
    partial = ("\nA row marked \"N of M videos scored\" is not a result on the whole set: the other videos could "
               "not be read or scored (or were missing on disk), and its model-index split says so too.\n"
               if any(coverage(record, m) for _, record, m in rows) else "")
    return f"""
## Evaluation
Video-level AUC and accuracy (fake probability >= the recorded threshold, 0.5 by default). A
row per manipulation method holds all real videos and that method's fakes.
{partial}
| data | U x T | real / fake videos | AUC | ACC | how |
|---|---|---|---|---|---|
{table}
"""


def _eval_results(config: Mapping[str, Any]) -> list[EvalResult]:
    """The overall results as the Hub's ``model-index`` entries (AUC and accuracy). A result that left
    videos out (failed, or missing on disk) does not claim the whole split: its split is named with
    its coverage, ``"test (690 of 700 videos scored)"``."""
    out = []
    for record in config.get("evaluation") or []:
        data = record.get("data", "unnamed")
        split = _split(record)
        if (covered := coverage(record)) is not None:
            split = (f"{split} " if split else "") + f"({covered[0]} of {covered[1]} videos scored)"
        for metric, key, label in (("roc_auc", "auc", "AUC"), ("accuracy", "accuracy", "ACC")):
            value = record.get("overall", {}).get(key)
            if value is not None:
                out.append(EvalResult(
                    task_type="video-classification", task_name="DeepFake video detection",
                    dataset_type=data, dataset_name=data, dataset_split=split,
                    metric_type=metric, metric_name=label, metric_value=value,
                ))
    return out


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
    name = repo_id or "<user>/<repo>"
    title = repo_id.split("/")[-1] if repo_id else arch
    eval_results = _eval_results(config)
    metadata = ModelCardData(
        model_name=title if eval_results else None,
        eval_results=eval_results or None,
        library_name="timm",
        pipeline_tag="video-classification",
        tags=list(CARD_TAGS),
        license=license,
        base_model=base,
        **({"base_model_relation": "finetune"} if base else {}),
    )
    c, h, w = cfg["input_size"]
    t, u, u_test = video["snippet_len"], video["num_snippets"], video["test_num_snippets"]
    sim_options = {k: args[k] for k in ("sim_stages", "sim_pattern", "intra_args", "inter_args") if k in args}
    base_line = (
        f"- **Initialised from:** [{base}](https://huggingface.co/{base})\n" if base else ""
    )
    what = ("a timm ResNet with Intra-Snippet Inconsistency and\nInter-Snippet Interaction modules (DIL, Gu et al., AAAI 2022)"
            if args.get("sim_stages", (1,)) else
            "a timm ResNet without the SIM modules (`sim_stages=()`: the\nframe-level baseline of DIL, Gu et al., AAAI 2022; "
            "the video logit averages per-frame logits)")
    return f"""---
{metadata.to_yaml()}
---
# {title}

A DeepFake video detector: `{arch}`, {what}, built with the
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

Score video files (face detection, snippet sampling and cropping included; a fake probability
per video and per snippet):
```bash
pip install "dynsnip[video]"
dynsnip predict --checkpoint hf-hub:{name} video.mp4 more_videos/
```
{_training_section(config)}{_evaluation_section(config)}
## Citation
```bibtex
{_CITATION}
```
"""
