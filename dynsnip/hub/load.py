"""``load_model``: ``timm.create_model`` for DIL models, with errors that say what is wrong.

It accepts what timm accepts (``"dil_resnet50.tv_in1k"``, ``"hf-hub:owner/name"``,
``"local-dir:path"``) plus a directory written by :func:`dynsnip.save_pretrained` (a bare
``"owner/name"`` is a path: only ``hf-hub:`` goes to the Hub), and always loads weights from ``model.safetensors``:
nothing falls back to a pickled ``pytorch_model.bin``. huggingface_hub / timm / safetensors
errors become :mod:`dynsnip.hub.errors` errors naming the repo or directory and the file.
"""
from __future__ import annotations

import errno
import json
import os
import re
import warnings
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import unquote, urlsplit

import timm
from timm.models import get_pretrained_cfg, is_model, split_model_name_tag

from ..models.dil_resnet import DILResNet, checkpoint_filter_fn, refuse_unloadable_tensors
from ..models.keys import preview_keys
from ..modules.intra_sim import motion_layout_adoption
from .config import CONFIG_NAME, WEIGHTS_NAME
from .reachability import cache_only, hub_unreachable
from .validate import config_problems, option_problems
from .errors import (
    CheckpointMismatchError,
    InvalidConfigError,
    ModelFileNotFoundError,
    ModelLoadError,
    NotADILModelError,
    NotCachedError,
    RepoNotFoundError,
)

__all__ = ["load_model", "pretrained_download"]

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*(@[\w.\-/]+)?$")
_FILTER_PREFIX = "checkpoint does not fit"  # how checkpoint_filter_fn's ValueError starts (stripped if present)
_STATE_DICT_MISMATCH = "Error(s) in loading state_dict"  # torch's load_state_dict RuntimeError
# Set while _explained_errors explains what goes wrong inside a load (see pretrained_download).
_EXPLAINED: ContextVar[bool] = ContextVar("dynsnip_hub_load_explained", default=False)


@dataclass(frozen=True)
class _Source:
    """Where a model comes from: a Hub repo, a local directory or a timm registry name."""

    kind: str  # "hub" | "dir" | "registry"
    name: str  # repo id, directory, or model name with tag
    revision: str | None = None

    @property
    def label(self) -> str:
        if self.kind == "hub":
            return f"Hub repo '{self.name}'" + (f" (revision {self.revision})" if self.revision else "")
        if self.kind == "dir":
            return f"directory '{self.name}'"
        return f"model '{self.name}'"


def _locate(name_or_path: str | os.PathLike[str]) -> _Source:
    """Where ``name_or_path`` points. Only an explicit ``hf-hub:`` prefix goes to the Hub: a bare
    ``owner/name`` is a local path as well, so a mistyped folder (``runs/doesnotexist``) or a link
    that loops is reported as such (naming the ``hf-hub:`` spelling) instead of being downloaded."""
    if isinstance(name_or_path, os.PathLike):
        return _Source("dir", os.fspath(name_or_path))
    name = str(name_or_path)
    if name.startswith("local-dir:"):
        return _Source("dir", name[len("local-dir:"):])
    if name.startswith(("hf-hub:", "hf_hub:")):
        repo, _, revision = name.split(":", 1)[1].partition("@")
        return _Source("hub", repo, revision or None)
    if os.path.isdir(name) or os.path.islink(name):
        return _Source("dir", name)
    if "/" in name or os.sep in name:
        return _Source("dir", name)
    return _Source("registry", name)


def _not_a_folder(name: str) -> str:
    """Why the local path ``name`` is no model folder, in one sentence that names the Hub spelling
    when ``name`` could also be a repo id."""
    if os.path.islink(name) and not os.path.exists(name):
        try:
            os.stat(name)
            why = "its target is missing"
        except OSError as err:
            why = "it loops back to itself" if err.errno == errno.ELOOP else f"its target is missing ({err.strerror})"
        return f"'{name}' is a symbolic link that leads to no folder: {why}"
    if os.path.exists(name):
        return f"'{name}' is a file, not a folder"
    hint = f"; for a Hub repo write hf-hub:{name}" if _REPO_ID.match(name) else ""
    return f"no folder {name} (directory '{name}' does not exist){hint}"


def _default_tag(arch: str) -> str | None:
    try:
        return getattr(get_pretrained_cfg(arch), "tag", None)
    except RuntimeError:
        return None


def _require_dil(arch: Any, source: _Source) -> None:
    """Raise NotADILModelError unless ``arch`` is a registered ``dil_*`` architecture."""
    if isinstance(arch, str) and arch.startswith("dil_") and is_model(arch):
        return
    registry = source.kind == "registry"
    filename = None if registry else CONFIG_NAME
    if isinstance(arch, str) and is_model(f"dil_{arch}"):
        tag = split_model_name_tag(source.name)[1] if registry else None
        tags = [name.split(".", 1)[1] for name in timm.list_pretrained(f"dil_{arch}.*")]
        if tag in tags:
            hint = f"To start a detector from these ImageNet weights use dynsnip.load_model('dil_{arch}.{tag}')"
        elif tags:
            example = _default_tag(f"dil_{arch}") or tags[0]
            hint = (f"To start a detector from {arch}'s ImageNet weights use dynsnip.load_model('dil_{arch}.<tag>') "
                    f"with a tag of timm.list_pretrained('dil_{arch}.*'), e.g. 'dil_{arch}.{example}'")
        else:
            hint = f"Use 'dil_{arch}'"
        what = f"'{source.name}' is" if registry else f"{source.label}: {CONFIG_NAME} describes '{arch}',"
        raise NotADILModelError(
            f"{what} an image model, not a DIL video model. {hint}; "
            "use timm.create_model() to load the image model itself.",
            source.name, filename,
        )
    what = f"'{source.name}' is" if registry else f"{source.label}: {CONFIG_NAME} names architecture {arch!r}, which is"
    raise NotADILModelError(
        f"{what} not a dil_* model registered by this dynsnip (see dynsnip.models.dil_model_names()). "
        "Upgrade dynsnip if the model was saved by a newer version.",
        source.name, filename,
    )


def _read_config(config_file: str | Path, source: _Source) -> dict[str, Any]:
    """The checked ``config.json``: a ``dil_*`` architecture (NotADILModelError otherwise) and
    values a detector can work with (InvalidConfigError naming the key, the value and what is
    allowed, see :mod:`dynsnip.hub.validate`)."""
    try:
        config = json.loads(Path(config_file).read_text(encoding="utf-8"))
        arch = config["architecture"]
    except (ValueError, KeyError, TypeError) as err:
        raise ModelLoadError(
            f"{source.label}: {CONFIG_NAME} is not a timm model config ({type(err).__name__}: {err}); "
            "save the model with dynsnip.save_pretrained / dynsnip.push_to_hub.",
            source.name, CONFIG_NAME, err,
        ) from None
    _require_dil(arch, source)
    if isinstance(config, dict) and "pretrained_cfg" not in config:
        # timm would read the whole file as a legacy pretrained_cfg and fail on its first model key
        raise InvalidConfigError(
            f"{source.label}: {CONFIG_NAME} has no pretrained_cfg section (the timm PretrainedCfg fields "
            "dynsnip.save_pretrained writes: input size, mean, std, classifier...). Save the model again with "
            "dynsnip.save_pretrained, or upgrade dynsnip and timm if a newer version wrote it.",
            source.name, CONFIG_NAME,
        )
    problems = config_problems(config)
    if problems:
        raise InvalidConfigError(
            f"{source.label}: {CONFIG_NAME} cannot describe a working detector: {'; '.join(problems)}. "
            "Fix the file, or save the model again with dynsnip.save_pretrained.",
            source.name, CONFIG_NAME,
        )
    return config


def _checked_options(source: _Source, kwargs: dict[str, Any]) -> None:
    """Raise InvalidConfigError unless the keyword options passed to :func:`load_model` are values
    a ``config.json`` could hold (:func:`~dynsnip.hub.validate.option_problems`): an override
    must not build a model that fails on every video (``test_num_snippets=1000``) or returns its
    pooled features as logits (``num_classes=-1``). ``num_classes=0`` (no head) is allowed for an
    ImageNet backbone only: a saved detector is a classifier."""
    problems = option_problems(kwargs, min_classes=0 if source.kind == "registry" else 1)
    if problems:
        raise InvalidConfigError(
            f"{source.label}: load_model option {'; '.join(problems)}. Leave the option out to use the saved value.",
            source.name,
        )


def _saved_in_chans(config: dict[str, Any]) -> int:
    """The input channels of the saved stem: ``model_args.in_chans`` (every dynsnip config records it),
    else the channels of ``pretrained_cfg.input_size``, else timm's 3."""
    saved = (config.get("model_args") or {}).get("in_chans")
    if saved is None:
        size = (config.get("pretrained_cfg") or {}).get("input_size") or (3,)
        saved = size[0]
    return int(saved)


def _same_in_chans(source: _Source, config: dict[str, Any], pretrained: bool, kwargs: dict[str, Any]) -> None:
    """Raise CheckpointMismatchError when ``in_chans`` asks a saved detector for another number of
    input channels than its stem was trained on: timm would adapt the trained stem silently
    (summed to one channel, repeated for more) and the model's pretrained config would still say
    the saved number, while another ``num_classes`` is refused; a saved detector loads whole or not
    at all. Adapting a stem is for 2D ImageNet weights, from a ``dil_*`` name."""
    wanted = kwargs.get("in_chans")
    if not pretrained or wanted is None:
        return
    saved = _saved_in_chans(config)
    if wanted == saved:
        return
    raise CheckpointMismatchError(
        f"{source.label} is a detector trained on {saved}-channel input: load_model(..., in_chans={wanted}) would "
        f"adapt its trained stem silently (what the stem detects changes; its pretrained config would still say "
        f"{saved} channels). Leave in_chans out to load the detector as saved; to train a {wanted}-channel detector "
        f"from ImageNet weights, start from a dil_* name (load_model('dil_<resnet>.<tag>', in_chans={wanted})).",
        source.name, WEIGHTS_NAME,
    )


def _saved_classes(config: dict[str, Any]) -> int:
    """The classes of the saved head (config.json's ``num_classes``; :func:`_read_config` checked
    that ``model_args`` and ``pretrained_cfg`` agree), timm's 1000 when it records none."""
    return config.get("num_classes", (config.get("model_args") or {}).get("num_classes", 1000))


def _new_head(source: _Source, config: dict[str, Any], pretrained: bool, kwargs: dict[str, Any],
              replace_head: bool) -> int | None:
    """The classes of a new head to put on the loaded detector, or None to keep the saved one.

    A ``num_classes`` that differs from the saved head's would have timm drop that head (the
    detector's trained decision) and run a random one, so it is refused unless ``replace_head``
    says that a new head is wanted (fine-tuning to other labels); it is then taken out of
    ``kwargs``: the detector loads completely, as saved, and :func:`_replaced_head` swaps the
    head afterwards."""
    wanted, saved = kwargs.get("num_classes"), _saved_classes(config)
    if not pretrained or wanted is None or wanted == saved or kwargs.get("features_only"):
        return None
    if not replace_head:
        raise CheckpointMismatchError(
            f"{source.label} is a detector with a {saved}-class head: load_model(..., num_classes={wanted}) would "
            f"drop it and run a random {wanted}-class head. Leave num_classes out to load the detector as saved, "
            "or pass replace_head=True to start a new head (to fine-tune it to other labels).",
            source.name, WEIGHTS_NAME,
        )
    del kwargs["num_classes"]
    return wanted


def _replaced_head(model: DILResNet, source: _Source, num_classes: int | None) -> DILResNet:
    """``model`` with a new, randomly initialised ``num_classes`` head (None: unchanged), with a
    warning that the saved one was dropped, and no ``training_record``: the weights are no longer
    the ones that record describes."""
    if num_classes is None:
        return model
    saved = model.num_classes
    model.reset_classifier(num_classes)
    model.training_record = None
    warnings.warn(
        f"{source.label}: the saved {saved}-class head was dropped for a new, randomly initialised {num_classes}-class "
        "head (replace_head=True); train it before using the model, whose training record no longer applies",
        UserWarning, stacklevel=3,
    )
    return model


def _records_motion_channels(config: dict[str, Any]) -> bool:
    """Whether ``config.json`` says the saved detector has Intra-SIM motion channels
    (``intra_args.motion_fraction`` > 0, recorded by every dynsnip since they became the default).
    Its weights must then hold their tensors: a file without them is not the detector the config
    describes, and fails to load instead of being adopted as a checkpoint of the earlier layout."""
    intra = (config.get("model_args") or {}).get("intra_args") or {}
    try:
        return float(intra.get("motion_fraction") or 0) > 0
    except (TypeError, ValueError):
        return False  # the builder reports the value


@contextmanager
def _builds(source: _Source, arch: str) -> Iterator[None]:
    """A TypeError / ValueError of the ``dil_*`` builder (a model_args value it refuses) as an
    InvalidConfigError naming the folder or repo; mismatched weights are told apart by the caller."""
    try:
        yield
    except (TypeError, ValueError) as err:
        if (isinstance(err, (ModelLoadError, OSError)) or type(err).__module__.startswith("huggingface_hub")
                or _raised_in_checkpoint_filter(err)):
            raise  # Hub / file errors and mismatched weights: explained by _explained_errors
        raise InvalidConfigError(
            f"{source.label}: {CONFIG_NAME}'s model_args (with the options passed to load_model) do not build "
            f"{arch}: {type(err).__name__}: {err}",
            source.name, CONFIG_NAME, err,
        ) from None


def _filename_in_url(url: str) -> str | None:
    path = urlsplit(url).path
    if "/resolve/" not in path:
        return None
    return unquote(path.split("/resolve/", 1)[1].split("/", 1)[-1])


def _uncached(repo: str, revision: str | None, filenames: Sequence[str], cache_dir: Any) -> str:
    """The first of ``filenames`` the local cache lacks (the last one if all are there)."""
    from huggingface_hub import try_to_load_from_cache

    for filename in filenames:
        found = try_to_load_from_cache(repo, filename, cache_dir=cache_dir, revision=revision)
        if not isinstance(found, str):
            return filename
    return filenames[-1]


def _raised_in_checkpoint_filter(err: BaseException) -> bool:
    """Whether ``err`` is a refusal of the weights (checkpoint_filter_fn, or the same checks in
    DILResNet.load_state_dict), not of the model's options."""
    codes = (checkpoint_filter_fn.__code__, refuse_unloadable_tensors.__code__)
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            return True
        tb = tb.tb_next
    return False


_KEY_LIST = re.compile(r'^(Missing key\(s\)|Unexpected key\(s\)) in state_dict: (.*)$')


def _mismatch_details(err: BaseException) -> str:
    """torch's load_state_dict error in one line, each key list cut to its first few and a count."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    details = []
    for line in lines:
        listed = _KEY_LIST.match(line)
        if listed:
            keys = re.findall(r'"([^"]+)"', listed.group(2))
            details.append(f"{listed.group(1)}: {preview_keys(keys)}")
        elif line.startswith("size mismatch"):
            details.append(line)
    sizes = [d for d in details if d.startswith("size mismatch")]
    if len(sizes) > 3:
        details = [d for d in details if not d.startswith("size mismatch")] + sizes[:3] + [f"... ({len(sizes)} size mismatches in all)"]
    return "; ".join(details or lines[:3])


@contextmanager
def _explained_errors(source: _Source, files: Sequence[str], arch: str, cache_dir: Any = None,
                      missing_file_hint: str = "", unreachable: str | None = None,
                      not_cached_advice: str = "") -> Iterator[None]:
    """Turn huggingface_hub / timm / safetensors errors raised inside the block into ModelLoadErrors.

    ``unreachable``: why the Hub could not be reached (:func:`hub_unreachable`), when the
    block ran on the cache alone because of it. ``not_cached_advice``: a last sentence for
    :class:`NotCachedError`. A ``dil_*`` builder called inside the block leaves its download
    errors to it (see :func:`pretrained_download`)."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from safetensors import SafetensorError

    where = source.label
    explaining = _EXPLAINED.set(True)
    try:
        yield
    except GatedRepoError as err:
        raise RepoNotFoundError(
            f"{where} is gated: accept its conditions on the Hub, then log in (`hf auth login`) or set HF_TOKEN.",
            source.name, None, err,
        ) from None
    except RepositoryNotFoundError as err:
        raise RepoNotFoundError(
            f"{where} does not exist on {constants.ENDPOINT}, or it is private and no token that can read it "
            "was sent. Check the 'owner/name' spelling; for a private repo log in with `hf auth login` or set HF_TOKEN.",
            source.name, None, err,
        ) from None
    except RevisionNotFoundError as err:
        raise RepoNotFoundError(
            f"{where}: no such branch, tag or commit. Drop the '@{source.revision}' suffix to use main, "
            "or name a revision that exists.",
            source.name, None, err,
        ) from None
    except RemoteEntryNotFoundError as err:
        filename = _filename_in_url(str(err.response.url)) or files[-1]
        raise ModelFileNotFoundError(
            f"{where} has no file '{filename}'. dynsnip loads {' + '.join(files)} (never a pickled "
            f"pytorch_model.bin). {missing_file_hint}".rstrip(),
            source.name, filename, err,
        ) from None
    except LocalEntryNotFoundError as err:
        raise _not_cached(source, files, cache_dir, unreachable, err, not_cached_advice) from None
    except SafetensorError as err:
        raise CheckpointMismatchError(
            f"{WEIGHTS_NAME} of {where} is not a valid safetensors file ({err}). Re-save the model with "
            "dynsnip.save_pretrained / dynsnip.push_to_hub.",
            source.name, WEIGHTS_NAME, err,
        ) from None
    except ValueError as err:
        if not _raised_in_checkpoint_filter(err):
            raise
        details = str(err)
        if details.startswith(_FILTER_PREFIX):
            details = details[len(_FILTER_PREFIX):].lstrip()
            details = details[len(arch):].lstrip(" :") if details.startswith(arch) else details.lstrip(" :")
            if details.startswith("(weights from "):  # the source is named at the start of the message already
                details = details.split("): ", 1)[-1]
        raise CheckpointMismatchError(
            f"{WEIGHTS_NAME} of {where} does not fit {arch}: {details}",
            source.name, WEIGHTS_NAME, err,
        ) from None
    except RuntimeError as err:
        if _STATE_DICT_MISMATCH not in str(err):
            raise
        raise CheckpointMismatchError(
            f"{WEIGHTS_NAME} of {where} does not fit {arch}: {_mismatch_details(err)}. The checkpoint was "
            "saved from another architecture or head; create the model it was trained as.",
            source.name, WEIGHTS_NAME, err,
        ) from None
    finally:
        _EXPLAINED.reset(explaining)


def _not_cached(source: _Source, files: Sequence[str], cache_dir: Any, unreachable: str | None,
                err: BaseException, advice: str = "") -> NotCachedError:
    """The one-line NotCachedError for a file of ``source`` that is neither cached nor downloadable:
    which file, the cache, and why the Hub was not asked (unreachable, ``HF_HUB_OFFLINE``)."""
    from huggingface_hub import constants

    filename = _uncached(source.name, source.revision, files, cache_dir)
    cache = cache_dir or constants.HF_HUB_CACHE
    if unreachable:
        why = (
            f"the Hub at {constants.ENDPOINT} cannot be reached ({unreachable}), so it was not retried. "
            "Check the network connection and HF_ENDPOINT; set HF_HUB_OFFLINE=1 to use the cache only "
            "without trying the network."
        )
    elif constants.is_offline_mode():
        why = (
            "HF_HUB_OFFLINE=1 forbids downloading it. Run the same call once online (unset HF_HUB_OFFLINE) "
            f"or `hf download {source.name}` to cache it, or point HF_HUB_CACHE at a cache that has it."
        )
    else:
        why = (
            f"the Hub at {constants.ENDPOINT} could not be reached to download it. Check the network "
            "connection and HF_ENDPOINT; once the files are cached, HF_HUB_OFFLINE=1 works without a network."
        )
    return NotCachedError(
        f"'{filename}' of {source.label} is not in the local cache ({cache}) and {why}" + (f" {advice}" if advice else ""),
        source.name, filename, err,
    )


PRETRAINED_FALSE = "Without the download, pretrained=False builds the model with random weights."


@contextmanager
def pretrained_download(hub_id: str, filename: str = WEIGHTS_NAME, cache_dir: Any = None) -> Iterator[None]:
    """The download of pretrained weights from Hub repo ``hub_id`` by a ``dil_*`` builder called
    by plain ``timm.create_model(..., pretrained=True)``: as fast and as clear as :func:`load_model`.

    When the Hub is evidently unreachable (:func:`hub_unreachable`) the block reads the cache only
    (no retries with back-off), and a file that is not cached, there or with ``HF_HUB_OFFLINE=1``,
    becomes one :class:`NotCachedError` line naming the file, the cache, ``HF_HUB_OFFLINE`` and
    ``pretrained=False``, instead of huggingface_hub's retries and traceback. Inside
    :func:`load_model`, which does the same around the whole load, it does nothing.
    """
    if _EXPLAINED.get():
        yield
        return
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    repo, _, revision = hub_id.partition("@")
    source = _Source("hub", repo, revision or None)
    unreachable = hub_unreachable()
    with cache_only() if unreachable else nullcontext():
        try:
            yield
        except LocalEntryNotFoundError as err:
            raise _not_cached(source, (filename,), cache_dir, unreachable, err, PRETRAINED_FALSE) from None
        except RemoteEntryNotFoundError as err:
            missing = _filename_in_url(str(err.response.url)) or filename
            raise ModelFileNotFoundError(
                f"{source.label} has no file '{missing}'. dil_* weights load from {filename} only (never a pickled "
                "pytorch_model.bin): save and push the model with dynsnip.save_pretrained / dynsnip.push_to_hub.",
                source.name, missing, err,
            ) from None


def _safetensors_only(kwargs: dict[str, Any]) -> dict[str, Any]:
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    overlay.setdefault("hf_hub_filename", WEIGHTS_NAME)
    return overlay


def _checked_repo_id(source: _Source) -> None:
    """Raise RepoNotFoundError naming the id, why and the expected spelling unless ``source.name``
    is a valid Hub repo id (``hf-hub:me/det/`` or ``hf-hub:/me/det`` would raise huggingface_hub's
    HFValidationError from inside the download, which no caller catching ModelLoadError expects)."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(source.name)
    except HFValidationError as err:
        why = str(err).splitlines()[0].split(". Use `repo_type`", 1)[0].rstrip(".")  # no repo_type argument here
        raise RepoNotFoundError(
            f"'hf-hub:{source.name}' does not name a Hub repo ({why}). "
            "Write hf-hub:owner/name, optionally with @revision.",
            source.name, None, err,
        ) from None


def _load_from_hub(source: _Source, pretrained: bool, kwargs: dict[str, Any], replace_head: bool = False) -> DILResNet:
    from huggingface_hub import hf_hub_download

    from .. import __version__

    _checked_repo_id(source)

    cache_dir = kwargs.get("cache_dir")
    files = (CONFIG_NAME, WEIGHTS_NAME)
    hint = f"Re-upload it with dynsnip.push_to_hub(model, '{source.name}')."
    unreachable = hub_unreachable()
    network = cache_only() if unreachable else nullcontext()
    with network:
        with _explained_errors(source, files, "its architecture", cache_dir, hint, unreachable):
            config_file = hf_hub_download(
                source.name, CONFIG_NAME, revision=source.revision, cache_dir=cache_dir,
                library_name="dynsnip", library_version=__version__,
            )
        config = _read_config(config_file, source)
        arch = config["architecture"]
        _same_in_chans(source, config, pretrained, kwargs)
        new_head = _new_head(source, config, pretrained, kwargs, replace_head)
        name = f"hf-hub:{source.name}" + (f"@{source.revision}" if source.revision else "")
        overlay = _safetensors_only(kwargs)
        with _explained_errors(source, files, arch, cache_dir, hint, unreachable), _builds(source, arch), \
                motion_layout_adoption(not _records_motion_channels(config)):
            model = timm.create_model(name, pretrained=pretrained, pretrained_cfg_overlay=overlay, **kwargs)
    return _replaced_head(_with_training_record(model, config, pretrained), source, new_head)


def _load_from_directory(source: _Source, pretrained: bool, kwargs: dict[str, Any],
                         replace_head: bool = False) -> DILResNet:
    directory = Path(source.name)
    if not directory.is_dir():
        raise ModelFileNotFoundError(
            f"{_not_a_folder(source.name)}. Pass a folder written by dynsnip.save_pretrained (a training run's "
            "model/), hf-hub:owner/name or a dil_* model name.",
            source.name,
        )
    needed = (CONFIG_NAME, WEIGHTS_NAME) if pretrained else (CONFIG_NAME,)
    for filename in needed:
        if not (directory / filename).is_file():
            run = (directory / "model" / CONFIG_NAME).is_file()  # a dynsnip train run folder: its model is in model/
            raise ModelFileNotFoundError(
                f"{source.label} has no '{filename}'. "
                + (f"It is a training run's folder: load its model, {directory / 'model'}."
                   if run else f"dynsnip loads {' + '.join(needed)} (never a pickled pytorch_model.bin); write them "
                               "with dynsnip.save_pretrained(model, directory)."),
                source.name, filename,
            )
    config = _read_config(directory / CONFIG_NAME, source)
    arch = config["architecture"]
    _same_in_chans(source, config, pretrained, kwargs)
    new_head = _new_head(source, config, pretrained, kwargs, replace_head)
    with _explained_errors(source, needed, arch), _builds(source, arch), \
            motion_layout_adoption(not _records_motion_channels(config)):
        model = timm.create_model(f"local-dir:{directory}", pretrained=pretrained, **kwargs)
    return _replaced_head(_with_training_record(model, config, pretrained), source, new_head)


def _with_training_record(model: DILResNet, config: dict[str, Any], pretrained: bool) -> DILResNet:
    """``model`` with ``training_record``: what its saved weights were trained on (``config.json``'s
    ``training``, :mod:`dynsnip.hub.records`), or None when it has none or the weights were not loaded.
    ``dynsnip predict`` reports it beside every verdict."""
    record = config.get("training") if pretrained else None
    model.training_record = dict(record) if isinstance(record, dict) else None
    return model


def _load_from_registry(source: _Source, pretrained: bool, kwargs: dict[str, Any]) -> DILResNet:
    arch, _ = split_model_name_tag(source.name)
    _require_dil(arch, source)
    if not pretrained:
        return timm.create_model(source.name, pretrained=False, **kwargs)
    try:
        hub_id = getattr(get_pretrained_cfg(source.name), "hf_hub_id", None)
    except RuntimeError:  # timm: "Invalid pretrained tag"
        hub_id = None
    if not hub_id:
        tags = timm.list_pretrained(f"{arch}.*")
        raise ModelLoadError(
            f"{source.label} has no pretrained weights. Use pretrained=False, or one of: {', '.join(tags) or 'none'}.",
            source.name,
        )
    weights_repo = _Source("hub", hub_id)
    hint = f"Choose another tag: {', '.join(timm.list_pretrained(f'{arch}.*'))}."
    overlay = _safetensors_only(kwargs)
    unreachable = hub_unreachable()
    with cache_only() if unreachable else nullcontext():
        with _explained_errors(weights_repo, (WEIGHTS_NAME,), arch, kwargs.get("cache_dir"), hint, unreachable,
                               not_cached_advice=PRETRAINED_FALSE):
            return timm.create_model(source.name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)


def load_model(name_or_path: str | os.PathLike[str], pretrained: bool = True, *, replace_head: bool = False,
               **kwargs: Any) -> DILResNet:
    """Create a DIL model, with its weights, from the Hub, a local directory or a pretrained tag.

    Args:
        name_or_path: one of
            * ``"hf-hub:owner/name"`` (optionally ``@revision``): a detector pushed with
              :func:`dynsnip.push_to_hub`. The prefix is needed: a bare ``owner/name`` is read as a
              local path, and a missing one is reported (with the ``hf-hub:`` spelling), never
              downloaded;
            * a directory written by :func:`dynsnip.save_pretrained` (or ``"local-dir:<dir>"``);
            * ``"dil_<resnet>.<tag>"``: the ImageNet ResNet of timm's repo ``timm/<resnet>.<tag>``
              adapted into the video network (the SIMs start from their initialisation).
        pretrained: load the weights (default); False builds the architecture only.
        replace_head: a saved detector only: allow a ``num_classes`` other than its head's. The
            detector loads completely, then its head is replaced by a new, randomly initialised
            one (with a warning, and ``training_record`` None), which is what fine-tuning to
            other labels needs. Without it such a ``num_classes`` is refused: the trained head
            would be dropped silently.
        **kwargs: passed to ``timm.create_model`` (``num_classes``, ``cache_dir``, DIL options...).
            ``num_classes``, ``in_chans``, ``snippet_len``, ``num_snippets`` and
            ``test_num_snippets`` are checked as in ``config.json`` (``num_classes=0``, no head,
            only for a ``dil_*`` name).

    Returns:
        the model, in training mode like every ``timm.create_model`` result. A detector from a
        folder or repo carries ``training_record``: what its weights were trained on (the
        ``training`` record of its ``config.json``), None when it has none.

    Raises:
        RepoNotFoundError: no such Hub repo or revision (or no access to it).
        ModelFileNotFoundError: no such folder (or a link that loops), or the repo / directory lacks
            ``config.json`` or ``model.safetensors``.
        NotCachedError: offline (``HF_HUB_OFFLINE=1``) or unreachable Hub, and the file is not cached.
        CheckpointMismatchError: the weights belong to another architecture, lack a tensor of a saved
            detector (its SIMs or head: a saved detector loads completely or not at all), have a
            mis-shaped tensor or are not a valid safetensors file; or ``num_classes`` differs
            from a saved detector's head without ``replace_head``; or ``in_chans`` differs from
            the input channels a saved detector's stem was trained on (adapting a stem is for 2D
            ImageNet weights: a ``dil_*`` name).
        InvalidConfigError: ``config.json``, or an option passed here, holds a value no detector
            can work with (names the key, the value and what is allowed).
        NotADILModelError: the name, repo or directory is not a ``dil_*`` model.
    """
    source = _locate(name_or_path)
    kwargs = dict(kwargs)
    _checked_options(source, kwargs)
    if source.kind == "hub":
        return _load_from_hub(source, pretrained, kwargs, replace_head)
    if source.kind == "dir":
        return _load_from_directory(source, pretrained, kwargs, replace_head)
    return _load_from_registry(source, pretrained, kwargs)
