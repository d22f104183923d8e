"""What a saved detector was trained on and how it scored.

``config.json`` may carry two optional records next to what timm reads (timm ignores them):

* ``training``: the recipe of the run that produced the weights (``dynsnip train`` /
  :func:`dynsnip.engine.train` write it), the epoch the saved weights come from, what the
  data is called, its sizes (clips, real and fake videos) and, where one applies, its
  ``scope`` (the demo's: "the embedded demo task: not a detector for real footage").
  :func:`describe_training` says it in one line, which ``dynsnip predict`` prints beside
  every verdict ("training data not recorded" for a detector saved without it);
* ``evaluation``: a list of results, one per evaluated set: the data's name and split, the
  test protocol (U x T, crop size, threshold), video-level AUC / accuracy overall and per
  manipulation method. Training appends the validation result of the saved epoch;
  ``dynsnip evaluate --record`` appends a test result.

The model card renders both (``## Training``, ``## Evaluation``) and lists the results in the
Hub's ``model-index`` metadata, so the Hub shows them on the model page. Nothing is carried
over automatically from the model a detector was loaded from: weights that were fine-tuned
further would otherwise inherit scores they never had.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from .card import model_card
from .config import CARD_NAME, CONFIG_NAME

__all__ = ["training_record", "evaluation_record", "json_safe", "record_evaluation", "card_license", "card_is_generated",
           "card_text_is_generated", "card_repo_id", "text_license", "describe_training", "NOT_RECORDED", "canonical_split"]

_METRIC_KEYS = ("auc", "accuracy", "num_videos", "num_real", "num_fake", "num_failed")


def json_safe(value: Any) -> Any:
    """``value`` with NaN / inf floats as None and tuples as lists: the Hub's JSON and YAML
    parsers reject ``NaN`` (an AUC is NaN when a set has one class only)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def training_record(
    recipe: Mapping[str, Any],
    *,
    epoch: int | None = None,
    num_train_clips: int | None = None,
    num_val_videos: int | None = None,
    data: str | None = None,
    num_train_real: int | None = None,
    num_train_fake: int | None = None,
    scope: str | None = None,
    precision: str | None = None,
) -> dict[str, Any]:
    """The ``training`` record of ``config.json``.

    Args:
        recipe: the run's settings (``Recipe.to_dict()``).
        epoch: the epoch whose weights are saved.
        num_train_clips, num_val_videos: the sizes of the training and validation sets.
        data: what the training data is called (e.g. ``"FaceForensics++ c23"``).
        num_train_real, num_train_fake: the real and fake items of the training set (before
            pseudo-fakes), when its labels are known.
        scope: what the detector is (not) for, when its data limits it, e.g. the demo's
            ``"the embedded demo task: not a detector for real footage"``.
        precision: the arithmetic the run trained in (``"float32"``, ``"float16 autocast"``,
            ``"bfloat16 autocast"``): the recipe's ``amp`` applies on a GPU only.
    """
    record = {"recipe": dict(recipe), "epoch": epoch, "num_train_clips": num_train_clips,
              "num_val_videos": num_val_videos, "data": data, "num_train_real": num_train_real,
              "num_train_fake": num_train_fake, "scope": scope, "precision": precision}
    return json_safe({k: v for k, v in record.items() if v is not None})


NOT_RECORDED = "training data not recorded"


def describe_training(record: Mapping[str, Any] | None) -> str:
    """One line on what a detector was trained on, from its ``training`` record:
    ``"trained on faces.csv (720 real and 2880 fake training videos; 224 px crops)"``, the
    ``scope`` after it; :data:`NOT_RECORDED` without a record or a data name (detectors saved
    before dynsnip recorded it, or weights from elsewhere)."""
    if not isinstance(record, Mapping) or not record.get("data"):
        return NOT_RECORDED
    recipe = record.get("recipe") if isinstance(record.get("recipe"), Mapping) else {}
    details = []
    real, fake = record.get("num_train_real"), record.get("num_train_fake")
    if real is not None and fake is not None:
        details.append(f"{real} real and {fake} fake training items")
    elif record.get("num_train_clips"):
        details.append(f"{record['num_train_clips']} training items")
    if recipe.get("pseudo_fakes"):
        details.append(f"a {recipe['pseudo_fakes']} pseudo-fake of every real one")
    if recipe.get("img_size"):
        details.append(f"{recipe['img_size']} px crops")
    text = f"trained on {record['data']}" + (f" ({'; '.join(details)})" if details else "")
    return text + (f"; scope: {record['scope']}" if record.get("scope") else "")


def canonical_split(split: str | None) -> str | None:
    """A record's split in the manifest reader's spelling: ``validation`` / ``Val`` / `` val `` ->
    ``val`` (likewise ``train``, ``test``; :func:`dynsnip.data.manifest.parse_split`), so that
    ``dynsnip train`` (the validation result of the saved epoch) and ``dynsnip evaluate --split val``
    name one split alike. Any other text (``"test (footage of other people)"``) is kept as given,
    stripped; empty or None -> None. Records are normalised when written and when rendered, so
    records saved with either spelling show the same."""
    from ..data.manifest import SPLIT_ALIASES, SPLITS

    if split is None:
        return None
    text = str(split).strip()
    key = SPLIT_ALIASES.get(text.lower(), text.lower())
    return key if key in SPLITS else (text or None)


def evaluation_record(
    report: Mapping[str, Any],
    *,
    data: str | None = None,
    split: str | None = None,
    num_snippets: int | None = None,
    snippet_len: int | None = None,
    img_size: int | None = None,
    source: str | None = None,
    missing_videos: int | None = None,
) -> dict[str, Any]:
    """One entry of ``config.json``'s ``evaluation`` list, from an evaluation report.

    A result that left videos out keeps their counts (``num_failed``, overall and per method, and
    ``missing_videos``): the card says how many of the set's videos it scored, and its model-index
    entry names the split with that coverage instead of claiming the whole split.

    Args:
        report: what :func:`dynsnip.engine.evaluate` reports (``overall``, ``per_method``,
            ``threshold``, ``num_failed``).
        data: what the evaluated data is called (default ``"unnamed"``).
        split: its split (``"val"``, ``"test"``...), stored as :func:`canonical_split` spells it
            (``"validation"`` -> ``"val"``).
        num_snippets, snippet_len, img_size: the test protocol (U, T, crop side).
        source: how the result was obtained (``"dynsnip train, epoch 7"``...).
        missing_videos: videos of the evaluated set missing on disk (``dynsnip benchmark`` on a
            partly downloaded dataset root), which the report's ``num_failed`` does not count.
    """
    def metrics(m: Mapping[str, Any]) -> dict[str, Any]:
        return {k: m[k] for k in _METRIC_KEYS if k in m}

    if not isinstance(report.get("overall"), Mapping):
        raise ValueError(
            f"an evaluation report needs an 'overall' dict of metrics (auc, accuracy...), got keys {sorted(report)}; "
            "pass EvalResult.report from dynsnip.engine.evaluate"
        )

    record = {
        "data": data or "unnamed",
        "split": canonical_split(split),
        "num_snippets": num_snippets,
        "snippet_len": snippet_len,
        "img_size": img_size,
        "threshold": report.get("threshold"),
        "overall": metrics(report["overall"]),
        "per_method": {name: metrics(m) for name, m in (report.get("per_method") or {}).items()},
        "num_failed": report.get("num_failed"),
        "missing_videos": missing_videos,
        "source": source,
    }
    return json_safe({k: v for k, v in record.items() if v is not None})


def card_license(card_file: Path) -> str | None:
    """The ``license`` of a model card's metadata (None without a card or a licence)."""
    if not card_file.is_file():
        return None
    from huggingface_hub import ModelCard

    return ModelCard.load(card_file).data.license


def text_license(text: str) -> str | None:
    """The ``license`` of a model card's metadata, given as text (None without one or with
    metadata that does not parse)."""
    from huggingface_hub import ModelCard

    try:
        return ModelCard(text).data.license
    except (ValueError, TypeError):  # YAML the Hub would refuse: no licence to keep
        return None


# The loading example of a rendered card names the repo it was rendered for (see card.model_card).
_CARD_REPO = re.compile(r'timm\.create_model\("hf-hub:([^"<>\s]+)", pretrained=True\)')


def card_repo_id(text: str) -> str | None:
    """The Hub repo a card rendered by dynsnip names in its loading example (None for the
    ``<user>/<repo>`` placeholder of a card saved without ``repo_id``, or no such example)."""
    found = _CARD_REPO.search(text)
    return found.group(1) if found else None


def card_text_is_generated(text: str, config: Mapping[str, Any], repo_id: str | None = None) -> bool:
    """Whether the card ``text`` is exactly what :func:`dynsnip.save_pretrained` renders from
    ``config`` with the card's own licence, for no repo, for the repo it names
    (:func:`card_repo_id`: saved with ``repo_id=``, or pushed) or for ``repo_id``: such a card may
    be rendered again, one edited by hand not."""
    license = text_license(text)
    candidates = dict.fromkeys((None, card_repo_id(text), repo_id))
    return any(text == model_card(config, repo_id=repo, license=license) for repo in candidates)


def card_is_generated(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory``'s ``README.md`` is exactly the card :func:`dynsnip.save_pretrained`
    renders from its ``config.json``, with or without a ``repo_id`` (False for a card edited by
    hand, one rendered by another dynsnip version, or none)."""
    directory = Path(directory)
    card_file, config_file = directory / CARD_NAME, directory / CONFIG_NAME
    if not (card_file.is_file() and config_file.is_file()):
        return False
    config = json.loads(config_file.read_text(encoding="utf-8"))
    return card_text_is_generated(card_file.read_text(encoding="utf-8"), config)


def record_evaluation(
    directory: str | os.PathLike[str], results: Sequence[Mapping[str, Any]] | Mapping[str, Any],
) -> bool:
    """Append evaluation result(s) to a saved detector's ``config.json`` and re-render its
    model card, keeping the card's licence; a card edited by hand is left alone. A result for
    the same ``data`` and ``split`` as an earlier one replaces it (splits compared as
    :func:`canonical_split` spells them: an earlier ``validation`` result is one on ``val``).

    Args:
        directory: a folder :func:`dynsnip.save_pretrained` wrote.
        results: one :func:`evaluation_record` or a list of them.

    Returns:
        True if the card was re-rendered, False if it was edited by hand and kept.

    Raises:
        FileNotFoundError: ``directory`` holds no ``config.json``.
    """
    directory = Path(directory)
    config_file = directory / CONFIG_NAME
    if not config_file.is_file():
        raise FileNotFoundError(
            f"{directory}: no {CONFIG_NAME}; expected a folder written by dynsnip.save_pretrained "
            "(a training run's model/ folder)"
        )
    config = json.loads(config_file.read_text(encoding="utf-8"))
    new = [json_safe(dict(r)) for r in ([results] if isinstance(results, Mapping) else list(results))]

    def same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:  # one measurement of one thing
        return a.get("data") == b.get("data") and canonical_split(a.get("split")) == canonical_split(b.get("split"))

    # a result for the same data and split replaces the earlier one: two values of one metric on one dataset
    # would be one model-index entry with the metric twice
    kept = [r for r in config.get("evaluation") or [] if not any(same(r, n) for n in new)]
    config["evaluation"] = kept + new
    return _rewrite(directory, config)


def _rewrite(directory: Path, config: Mapping[str, Any]) -> bool:
    """Write ``config`` as ``directory``'s ``config.json`` and re-render its card from it, keeping the
    card's licence, unless the card was edited by hand (kept). Returns whether the card was rendered."""
    card_file = directory / CARD_NAME
    regenerate = card_is_generated(directory) or not card_file.exists()  # before config.json changes
    license = card_license(card_file)
    repo_id = card_repo_id(card_file.read_text(encoding="utf-8")) if card_file.exists() else None
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if regenerate:  # for the repo the card was rendered for (save_pretrained's repo_id), if any
        card_file.write_text(model_card(config, repo_id=repo_id, license=license), encoding="utf-8")
    return regenerate


def update_training_recipe(directory: str | os.PathLike[str], recipe: Mapping[str, Any]) -> bool:
    """Record ``recipe`` as the run's in a saved detector's ``config.json`` (``training.recipe``) and
    re-render its card (a card edited by hand is left alone): a run resumed with more epochs keeps
    the weights of an earlier epoch when the later ones were not better, and the card must still say
    what ran. The epoch of the weights is kept. Returns whether anything changed."""
    directory = Path(directory)
    config = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
    training = config.get("training")
    recipe = json_safe(dict(recipe))
    if not isinstance(training, dict) or training.get("recipe") == recipe:
        return False
    training["recipe"] = recipe
    _rewrite(directory, config)
    return True
