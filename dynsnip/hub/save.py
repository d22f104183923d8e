"""Write a DIL detector as ``config.json`` + ``model.safetensors`` + ``README.md``, locally or to the Hub.

Unlike timm's ``save_for_hf`` / ``push_to_hf_hub`` this never writes a pickle
(``pytorch_model.bin``), records every DIL option so that
``timm.create_model("hf-hub:...")`` rebuilds the same network, and writes a card tagged for
video classification and deepfake detection.
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from ..models.keys import preview_keys
from .card import model_card
from .config import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, base_weights, hub_config
from .records import card_is_generated, card_license, card_text_is_generated, json_safe, text_license
from .validate import config_problems
from .safetensors_file import save_file

if TYPE_CHECKING:
    from huggingface_hub import CommitInfo

__all__ = ["save_pretrained", "push_to_hub", "AUTO", "CardKeptWarning", "NoSuchBranchError", "OtherDetectorError"]


class NoSuchBranchError(ValueError):
    """``push_to_hub(..., revision=...)`` names a branch the repo does not have (nothing was created)."""


class OtherDetectorError(ValueError):
    """The repo (branch) already holds a detector of another architecture or other model options:
    a push would replace it for everyone who loads ``hf-hub:<repo>``. Raised before anything is uploaded."""


class CardKeptWarning(UserWarning):
    """A model card edited by hand was kept: it may not show what was just saved or pushed."""


class _Auto:
    def __repr__(self) -> str:
        return "AUTO"


AUTO: Any = _Auto()
"""Default of ``base_model``: the Hub repo named by ``model.pretrained_cfg`` (see :func:`base_weights`)."""


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The network inside DataParallel / DistributedDataParallel (``.module``) or torch.compile (``._orig_mod``)."""
    while True:
        inner = getattr(model, "_orig_mod", None) or (
            model.module if isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel))
            else None
        )
        if not isinstance(inner, torch.nn.Module):
            return model
        model = inner


def _state_dict_for_safetensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights to write; raises ValueError naming the tensors (first few and a count) that
    hold NaN or inf: such a model scores NaN on every video and must not be shared."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise ValueError(
            f"refusing to save a model with non-finite weights: {len(bad)} of {len(state)} tensors hold NaN or "
            f"inf ({preview_keys(bad)}); it would score NaN on every video. Save the last finite weights "
            "instead (a training run keeps them in its model/ and checkpoint/ folders)"
        )
    return state


def save_pretrained(
    model: torch.nn.Module,
    save_directory: str | os.PathLike[str],
    *,
    repo_id: str | None = None,
    base_model: str | None = AUTO,
    license: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    pretrained_cfg: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    evaluation: Sequence[Mapping[str, Any]] | None = None,
    card: bool = True,
    replace_card: bool = False,
) -> Path:
    """Save a DIL model so that timm (after ``import dynsnip``) loads it back bit-identically.

    Writes ``config.json`` (architecture, ``num_classes``, ``model_args`` with every DIL
    option, ``pretrained_cfg`` with input size / mean / std, the ``video`` frame layout,
    ``base_model``), ``model.safetensors`` and, if ``card``, a model card ``README.md``.
    Load it with ``timm.create_model("local-dir:<dir>", pretrained=True)`` or
    :func:`dynsnip.load_model`.

    Args:
        model: a DIL model (``dil_*`` from timm, or a ResNet converted by ``convert_resnet``),
            possibly inside DataParallel / DistributedDataParallel or ``torch.compile``.
        save_directory: created if needed; existing files of the same names are replaced.
        repo_id: the Hub repo the files are meant for (used in the card's loading example).
        base_model: Hub repo of the weights the model was fine-tuned from. By default the
            one ``model.pretrained_cfg`` names (``timm/resnet50.tv_in1k`` for
            ``dil_resnet50.tv_in1k``) when those weights were loaded, none for a model
            built with ``pretrained=False``; pass None to leave it out.
        license: licence id for the card metadata (e.g. ``"apache-2.0"``); omitted if None.
        model_args: builder arguments to add or replace in ``config.json``.
        pretrained_cfg: timm ``PretrainedCfg`` fields to record, e.g. the ``input_size``,
            ``mean`` and ``std`` used for fine-tuning.
        training: how the weights were trained (:func:`dynsnip.hub.records.training_record`);
            shown in the card.
        evaluation: results (:func:`dynsnip.hub.records.evaluation_record`); shown in the
            card and its ``model-index`` metadata.
        card: write ``README.md``.
        replace_card: overwrite a ``README.md`` in ``save_directory`` that is not the card
            dynsnip rendered there (edited by hand). Without it such a card is kept, with a
            warning, and only ``config.json`` and the weights are written.

    Returns:
        the directory.

    Raises:
        TypeError: ``model`` is not a DIL model.
        ValueError: a model argument is not JSON, the recorded arguments would not
            rebuild the same tensors, a weight is NaN / inf, or the config would not pass
            :func:`dynsnip.load_model`'s checks (no classifier, ``num_classes=0``; U outside
            1 to :data:`~dynsnip.hub.validate.MAX_SNIPPETS`); nothing is written then.
    """
    model = _unwrap(model)
    state = _state_dict_for_safetensors(model)
    base = base_weights(model) if base_model is AUTO else base_model
    if base is not None and repo_id is not None and base == repo_id:
        base = None  # re-pushing a detector to its own repo: it is not its own base
    config = hub_config(model, model_args=model_args, pretrained_cfg=pretrained_cfg, base_model=base,
                        training=json_safe(training) if training else None,
                        evaluation=json_safe(list(evaluation)) if evaluation else None)
    if problems := config_problems(config):  # what load_model would refuse: refused before anything is written
        raise ValueError(
            f"this model would be saved as a detector that dynsnip.load_model refuses: {'; '.join(problems)}"
            + (". A saved detector needs its classifier: reset_classifier(1) (and train it), or save "
               "model.state_dict() for a feature extractor" if config.get("num_classes") == 0 else "")
        )
    directory = Path(save_directory)
    directory.mkdir(parents=True, exist_ok=True)
    keep_card = card and not replace_card and _edited_card(directory, repo_id)
    save_file(  # the umask's permissions, not safetensors' 0600
        state,
        directory / WEIGHTS_NAME,
        metadata={"format": "pt", "architecture": config["architecture"]},
    )
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if card and not keep_card:
        (directory / CARD_NAME).write_text(model_card(config, repo_id=repo_id, license=license), encoding="utf-8")
    return directory


def _edited_card(directory: Path, repo_id: str | None) -> bool:
    """Whether ``directory`` holds a ``README.md`` that is not the card dynsnip rendered from its
    ``config.json`` (a hand-edited one); warns that it is kept."""
    card_file = directory / CARD_NAME
    if not card_file.is_file():
        return False
    try:
        config = json.loads((directory / CONFIG_NAME).read_text(encoding="utf-8"))
        if card_text_is_generated(card_file.read_text(encoding="utf-8"), config, repo_id):
            return False
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no readable config.json next to it: not a card rendered here
    warnings.warn(f"{card_file} was edited by hand (or not written by dynsnip): it is kept, so it may not show "
                  "this model's new config.json; pass replace_card=True to replace it", UserWarning, stacklevel=3)
    return True


def _check_branch(api: Any, repo_id: str, revision: str | None) -> None:
    """Raise NoSuchBranchError unless ``repo_id`` has the branch ``revision`` (None and ``main``:
    nothing to check; a repo that does not exist yet gets ``main`` only). Done before the repo is
    created: the commit would fail with a bare "404 Client Error." after creating it."""
    if revision is None or revision == "main":
        return
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    create = f"`hf repos branch create {repo_id} {revision}` (or HfApi().create_branch)"
    try:
        api.repo_info(repo_id, revision=revision)
    except RevisionNotFoundError:
        raise NoSuchBranchError(
            f"{repo_id} has no branch {revision!r}: create it first with {create}, or leave out the revision "
            "to commit to main"
        ) from None
    except RepositoryNotFoundError:  # a private one the token cannot read is refused by create_repo next
        raise NoSuchBranchError(
            f"{repo_id} does not exist yet (or cannot be read with this token), so it has no branch {revision!r}: "
            f"push to main first (no revision), then create the branch with {create}"
        ) from None


def _repo_card(api: Any, repo_id: str, revision: str | None) -> tuple[str, bool] | None:
    """The ``README.md`` already in ``repo_id`` at ``revision`` and whether dynsnip rendered it from
    the repo's ``config.json`` (then it may be rendered again with the new records and licence; one
    edited by hand is kept); None when the repo has no card."""
    if not api.file_exists(repo_id, CARD_NAME, revision=revision):
        return None
    text = Path(api.hf_hub_download(repo_id, CARD_NAME, revision=revision)).read_text(encoding="utf-8")
    if not api.file_exists(repo_id, CONFIG_NAME, revision=revision):
        return text, False
    try:
        config = json.loads(Path(api.hf_hub_download(repo_id, CONFIG_NAME, revision=revision)).read_text(encoding="utf-8"))
    except ValueError:  # not JSON: no card was rendered from it
        return text, False
    return text, isinstance(config, dict) and card_text_is_generated(text, config, repo_id)


def _other_detector(api: Any, repo_id: str, revision: str | None, config: dict) -> list[str]:
    """How the detector already in ``repo_id`` at ``revision`` differs from ``config`` (the one to push):
    ``"architecture: a -> b"``, ``"model_args.snippet_len: 4 -> 2"``...; empty when the repo holds no
    dynsnip ``config.json`` or one of the same architecture and model options (new weights of the same
    detector: a normal update)."""
    if not api.file_exists(repo_id, CONFIG_NAME, revision=revision):
        return []
    try:
        old = json.loads(Path(api.hf_hub_download(repo_id, CONFIG_NAME, revision=revision)).read_text(encoding="utf-8"))
    except ValueError:  # not JSON: not a dynsnip detector's config
        return []
    if not isinstance(old, dict) or "architecture" not in old:
        return []
    changes = []
    if old.get("architecture") != config.get("architecture"):
        changes.append(f"architecture: {old.get('architecture')} -> {config.get('architecture')}")
    before, after = old.get("model_args") or {}, config.get("model_args") or {}
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            changes.append(f"model_args.{key}: {json.dumps(before.get(key))} -> {json.dumps(after.get(key))}")
    return changes


def push_to_hub(
    model: torch.nn.Module | str | os.PathLike[str],
    repo_id: str,
    *,
    token: str | bool | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str = "Upload DIL detector with dynsnip",
    create_pr: bool = False,
    base_model: str | None = AUTO,
    license: str | None = None,
    model_args: Mapping[str, Any] | None = None,
    pretrained_cfg: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    evaluation: Sequence[Mapping[str, Any]] | None = None,
    replace_card: bool = False,
    replace_model: bool = False,
) -> "CommitInfo":
    """Upload a DIL model to the Hugging Face Hub repo ``repo_id`` (created if needed).

    Uploads what :func:`save_pretrained` writes, in one commit. A ``README.md`` already in the
    repo that dynsnip rendered is rendered again (new records; its licence unless ``license`` is
    given); one edited by hand is kept, with a :class:`CardKeptWarning`, unless ``replace_card``. Anyone can then load the model with
    ``import dynsnip; timm.create_model("hf-hub:<repo_id>", pretrained=True)``.

    Args:
        model: a DIL model, or a folder :func:`save_pretrained` wrote (a training run's
            ``model/``): it is loaded first (so a broken folder fails here, not for the
            people who download it), and its ``training`` / ``evaluation`` records and card
            licence are kept unless given. A card edited by hand is uploaded as it is; a
            generated one is rendered again for ``repo_id``.
        base_model, license, model_args, pretrained_cfg, training, evaluation: as for
            :func:`save_pretrained`.
        repo_id: ``owner/name``.
        token: Hub token; by default the one ``hf auth login`` stored or ``HF_TOKEN``.
        private: visibility of a repo this call creates (the Hub's default if None).
        revision: branch to commit to (default ``main``); it must exist (NoSuchBranchError, before
            anything is created, names it and how to create it).
        commit_message: message of the commit.
        create_pr: open a pull request instead of committing to the branch.
        replace_card: overwrite a ``README.md`` that is already in the repo, even one edited by hand.
        replace_model: commit over a detector of another architecture or other model options already
            in the repo (without it, :class:`OtherDetectorError`; new weights of the same detector
            are always committed, and a pull request, ``create_pr``, replaces nothing).

    Returns:
        huggingface_hub's ``CommitInfo`` (``.commit_url``, ``.oid``).

    Raises:
        ValueError: a weight is NaN / inf (nothing is created or uploaded), or as for
            :func:`save_pretrained`.
        NoSuchBranchError: ``revision`` is not a branch of the repo (nothing is created).
        OtherDetectorError: the repo holds another detector and ``replace_model`` is False (nothing
            is uploaded).
    """
    from huggingface_hub import HfApi

    from .. import __version__

    edited_card = None
    if isinstance(model, (str, os.PathLike)):
        from .load import load_model

        source = Path(model)
        model = load_model(source)
        if (source / CARD_NAME).is_file() and not card_is_generated(source):
            edited_card = (source / CARD_NAME).read_text(encoding="utf-8")
        saved = json.loads((source / CONFIG_NAME).read_text(encoding="utf-8"))
        training = saved.get("training") if training is None else training
        evaluation = saved.get("evaluation") if evaluation is None else evaluation
        license = card_license(source / CARD_NAME) if license is None else license
    api = HfApi(token=token, library_name="dynsnip", library_version=__version__)
    create_kwargs = {} if private is None else {"private": private}
    with tempfile.TemporaryDirectory(prefix="dynsnip-push-") as folder:
        # every check of save_pretrained (non-finite weights, a config load_model would refuse) runs here,
        # before anything exists on the Hub: a refused save leaves no empty repo behind
        save_pretrained(
            model, folder, repo_id=repo_id, base_model=base_model, license=license,
            model_args=model_args, pretrained_cfg=pretrained_cfg, training=training, evaluation=evaluation,
            card=False,
        )
        if "/" not in repo_id and revision not in (None, "main"):  # the branch is checked in the user's repo
            repo_id = f"{api.whoami()['name']}/{repo_id}"  # as create_repo completes "name" below
        _check_branch(api, repo_id, revision)
        repo_id = api.create_repo(repo_id, exist_ok=True, **create_kwargs).repo_id  # "name" -> "owner/name"
        if not (replace_model or create_pr):
            changes = _other_detector(api, repo_id, revision, json.loads(Path(folder, CONFIG_NAME).read_text(encoding="utf-8")))
            if changes:
                raise OtherDetectorError(
                    f"{repo_id}{'@' + revision if revision else ''} already holds another detector "
                    f"({'; '.join(changes[:4])}{f'; +{len(changes) - 4} more' if len(changes) > 4 else ''}): this push "
                    f"would replace it for everyone who loads hf-hub:{repo_id}; expected new weights of the same "
                    "detector. Push to another repo, open a pull request (create_pr=True, dynsnip push --create-pr), "
                    "or pass replace_model=True (dynsnip push --replace-model) to replace it")
        in_repo = None if replace_card else _repo_card(api, repo_id, revision)
        if in_repo is not None and not in_repo[1]:
            warnings.warn(
                f"the README.md of {repo_id} was edited by hand (or not written by dynsnip): it is kept, so it does "
                "not show this upload's training and evaluation records" + (f" or licence {license!r}" if license else "")
                + "; pass replace_card=True (dynsnip push --replace-card) to replace it", CardKeptWarning, stacklevel=2,
            )
        else:
            if license is None and in_repo is not None:
                license = text_license(in_repo[0])  # the generated card's licence is kept, as record_evaluation keeps it
            config = json.loads(Path(folder, CONFIG_NAME).read_text(encoding="utf-8"))
            Path(folder, CARD_NAME).write_text(
                edited_card if edited_card is not None else model_card(config, repo_id=repo_id, license=license),
                encoding="utf-8",
            )
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message,
            create_pr=create_pr,
        )
