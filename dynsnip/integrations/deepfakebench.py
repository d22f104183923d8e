"""DIL as a DeepfakeBench detector, trained with dynsnip's loss and metrics.

DeepfakeBench (SCLBD/DeepfakeBench, licence CC BY-NC 4.0) builds a detector as
``DETECTOR[config["model_name"]](config)`` from a registry filled by decorated classes that
subclass its ``AbstractDetector``. dynsnip meets it at that interface and never imports it:
the caller passes its registry and base class. Two lines in DeepfakeBench's
``training/detectors/__init__.py`` (docs/deepfakebench.md)::

    from dynsnip.integrations.deepfakebench import register
    register(DETECTOR, AbstractDetector)          # detector "dil"

and a detector config such as :data:`CONFIG_PATH` (``deepfakebench_dil.yaml``, shipped with
dynsnip) with ``model_name: dil``.

What the detector takes and returns (DeepfakeBench's video mode):

* ``data_dict["image"]``: ``(B, F, C, H, W)``, one clip of ``F = clip_size`` consecutive frames
  per item, normalised with the config's ``mean`` / ``std``. DIL reads it as ``U = F / T``
  snippets of ``T`` consecutive frames (``T = dynsnip.snippet_len``), so U is whatever the
  batch holds: ``clip_size: 16`` trains with U = 4 (the paper's), a test config with
  ``clip_size: 32`` tests with U = 8 (the paper's test U). The U snippets of a clip are
  adjacent (DeepfakeBench's clips are consecutive frames), not spread over the video as in
  dynsnip's own sampler (:mod:`dynsnip.data.sampling`).
* ``data_dict["label"]``: ``(B,)``, 0 real / 1 fake.
* ``forward(data_dict, inference=False)`` returns ``{"cls", "prob", "feat"}``: ``cls`` the two-class
  logits ``[0, z]`` of the detector's one fake logit ``z`` (so ``softmax(cls)[:, 1] =
  sigmoid(z) = prob``, and cross-entropy on ``cls`` equals the paper's binary cross-entropy on
  ``z``), ``prob`` ``(B,)``, ``feat`` the pooled features ``(B, C)``.
* :meth:`get_losses`: ``{"overall": BCE(z, label)}``, the loss ``dynsnip train`` computes;
  :meth:`get_train_metrics`: ``acc``, ``auc``, ``eer``, ``ap`` of the batch from
  :mod:`dynsnip.engine.metrics` (None where a batch holds one class, which DeepfakeBench's
  recorder skips); :meth:`get_test_metrics` (older DeepfakeBench trainers) the same over
  everything scored in inference mode since the last call.

The config: DeepfakeBench's keys (``model_name``, ``video_mode``, ``clip_size``, ``frame_num``,
``resolution``, ``mean``, ``std``, ``loss_func``) plus dynsnip's under ``dynsnip``:

=================== ================ ==========================================================
key                 default          meaning
=================== ================ ==========================================================
``model``           ``dil_resnet50`` a ``dil_*`` architecture (the paper: ResNet-50)
``snippet_len``     4                T, consecutive frames per snippet (the paper's)
``config``          ``default``      ``paper``: the paper's module as written; ``default``:
                                     dynsnip's (motion channels), see
                                     :data:`~dynsnip.models.paper_configs.MODULE_CONFIGS`
``pretrained``      true             true: the architecture's ImageNet weights (timm's Hub
                                     repo: needs the network); false: random init, no network;
                                     a string: a saved dynsnip detector (directory,
                                     ``hf-hub:owner/name``, ``.safetensors``)
``model_args``      {}               further ``dil_*`` builder options (``drop_rate``...)
=================== ================ ==========================================================

Without ``dynsnip.pretrained`` DeepfakeBench's own ``pretrained`` key is read (a bool or a
source as above; null: no pretrained weights, as DeepfakeBench means it). When the config's ``mean`` / ``std`` differ from the backbone's (e.g.
DeepfakeBench's usual 0.5), the detector maps its input back to the backbone's
normalisation, so ImageNet weights see what they were trained on.
"""
from __future__ import annotations

import math
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F

__all__ = ["register", "DILSettings", "dil_settings", "CONFIG_PATH", "DETECTOR_NAME", "DeepfakeBenchConfigError"]

CONFIG_PATH = Path(__file__).with_name("deepfakebench_dil.yaml")
"""The ready DeepfakeBench detector config shipped with dynsnip (copy it to ``training/config/detector/``)."""

DETECTOR_NAME = "dil"
DYNSNIP_KEY = "dynsnip"
_DYNSNIP_KEYS = ("model", "snippet_len", "config", "pretrained", "model_args")
# DeepfakeBench loss names whose loss on the two-class logits [0, z] is the paper's BCE on z
_EQUIVALENT_LOSSES = (None, "cross_entropy")


class DeepfakeBenchConfigError(ValueError):
    """A DeepfakeBench config the DIL detector cannot be built from (names the key and what is expected)."""


@dataclass(frozen=True)
class DILSettings:
    """What the DIL detector reads from a DeepfakeBench config (see the module docstring)."""

    model: str = "dil_resnet50"
    snippet_len: int = 4
    clip_size: int = 16
    frame_num: Mapping[str, int] = field(default_factory=lambda: {"train": 32, "test": 32})
    module_config: str = "default"
    pretrained: bool | str = True
    model_args: Mapping[str, Any] = field(default_factory=dict)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resolution: int = 224  # DeepfakeBench's input side: recorded as the network's input size

    @property
    def num_snippets(self) -> int:
        """U of a clip of ``clip_size`` frames."""
        return self.clip_size // self.snippet_len


def _positive_int(value: Any, key: str, expected: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DeepfakeBenchConfigError(f"DeepfakeBench config: {key} must be {expected}, got {value!r}")
    return value


def _triple(value: Any, key: str) -> tuple[float, ...] | None:
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise DeepfakeBenchConfigError(f"DeepfakeBench config: {key} must be three numbers (one per RGB channel), got {value!r}")
    if key == "std" and not all(v > 0 for v in value):
        raise DeepfakeBenchConfigError(f"DeepfakeBench config: std must be positive, got {value!r}")
    return tuple(float(v) for v in value)


def dil_settings(config: Mapping[str, Any]) -> DILSettings:
    """Read and check the DIL settings of a DeepfakeBench detector config.

    Raises:
        DeepfakeBenchConfigError: naming the first key that is missing or wrong and what it must be.
    """
    if not isinstance(config, Mapping):
        raise DeepfakeBenchConfigError(f"expected a DeepfakeBench config dict (the detector YAML, loaded), "
                                       f"got {type(config).__name__}")
    own = config.get(DYNSNIP_KEY) or {}
    if not isinstance(own, Mapping):
        raise DeepfakeBenchConfigError(f"DeepfakeBench config: '{DYNSNIP_KEY}' must be a mapping of "
                                       f"{', '.join(_DYNSNIP_KEYS)}, got {own!r}")
    unknown = sorted(set(own) - set(_DYNSNIP_KEYS))
    if unknown:
        raise DeepfakeBenchConfigError(f"DeepfakeBench config: unknown key(s) {unknown} under '{DYNSNIP_KEY}'; "
                                       f"expected {', '.join(_DYNSNIP_KEYS)}")
    if not config.get("video_mode"):
        raise DeepfakeBenchConfigError(
            "DeepfakeBench config: DIL is a video detector: set video_mode: true (DeepfakeBench then feeds clips "
            f"of clip_size consecutive frames), got video_mode: {config.get('video_mode')!r}")
    snippet_len = _positive_int(own.get("snippet_len", 4), f"{DYNSNIP_KEY}.snippet_len", "a positive integer (T)")
    clip_size = _positive_int(config.get("clip_size"), "clip_size", f"a positive multiple of {DYNSNIP_KEY}.snippet_len")
    if clip_size % snippet_len:
        raise DeepfakeBenchConfigError(
            f"DeepfakeBench config: clip_size {clip_size} is not a multiple of {DYNSNIP_KEY}.snippet_len T={snippet_len}: "
            f"a clip holds U snippets of T consecutive frames (e.g. clip_size {4 * snippet_len} for U=4)")
    frame_num = config.get("frame_num")
    if not isinstance(frame_num, Mapping) or not {"train", "test"} <= set(frame_num):
        raise DeepfakeBenchConfigError(f"DeepfakeBench config: frame_num must be {{train: N, test: N}}, got {frame_num!r}")
    for mode in ("train", "test"):
        n = _positive_int(frame_num[mode], f"frame_num.{mode}", "a positive integer")
        if n < clip_size:
            raise DeepfakeBenchConfigError(
                f"DeepfakeBench config: frame_num.{mode} {n} is below clip_size {clip_size}: DeepfakeBench would skip "
                f"every video in {mode}; give at least clip_size frames per video")
    loss = config.get("loss_func")
    if loss not in _EQUIVALENT_LOSSES:
        raise DeepfakeBenchConfigError(
            f"DeepfakeBench config: loss_func {loss!r}: DIL trains with the paper's binary cross-entropy on its fake logit, "
            "which is cross_entropy on its two-class logits; set loss_func: cross_entropy")
    module_config = own.get("config", "default")
    if module_config not in ("paper", "default"):
        raise DeepfakeBenchConfigError(
            f"DeepfakeBench config: {DYNSNIP_KEY}.config must be 'paper' (the paper's module as written) or 'default' "
            f"(dynsnip's), got {module_config!r}")
    if "pretrained" in own:
        pretrained = own["pretrained"]
    elif "pretrained" in config:  # DeepfakeBench's own key; null there means no pretrained weights
        pretrained = False if config["pretrained"] is None else config["pretrained"]
    else:
        pretrained = True
    if not isinstance(pretrained, (bool, str)) or (isinstance(pretrained, str) and not pretrained.strip()):
        raise DeepfakeBenchConfigError(
            f"DeepfakeBench config: {DYNSNIP_KEY}.pretrained must be true (ImageNet weights), false (random init, no "
            f"network) or a saved dynsnip detector (directory, hf-hub:owner/name, .safetensors), got {pretrained!r}")
    model = own.get("model", "dil_resnet50")
    if not isinstance(model, str) or not model.startswith("dil_"):
        raise DeepfakeBenchConfigError(f"DeepfakeBench config: {DYNSNIP_KEY}.model must be a dil_* architecture "
                                       f"(e.g. dil_resnet50), got {model!r}")
    model_args = own.get("model_args") or {}
    if not isinstance(model_args, Mapping):
        raise DeepfakeBenchConfigError(f"DeepfakeBench config: {DYNSNIP_KEY}.model_args must be a mapping, got {model_args!r}")
    owned = {"snippet_len": f"{DYNSNIP_KEY}.snippet_len", "num_snippets": "clip_size (U = clip_size / snippet_len)",
             "num_classes": "nothing: DIL has one fake logit", "pretrained": f"{DYNSNIP_KEY}.pretrained"}
    for key in sorted(set(model_args) & set(owned)):
        raise DeepfakeBenchConfigError(f"DeepfakeBench config: {DYNSNIP_KEY}.model_args.{key} is set by the "
                                       f"integration itself; set {owned[key]} instead")
    return DILSettings(model=model, snippet_len=snippet_len, clip_size=clip_size,
                       frame_num={"train": int(frame_num["train"]), "test": int(frame_num["test"])},
                       module_config=module_config, pretrained=pretrained, model_args=dict(model_args),
                       mean=_triple(config.get("mean"), "mean"), std=_triple(config.get("std"), "std"),
                       resolution=_resolution(config.get("resolution", 224)))


def _resolution(value: Any) -> int:
    """DeepfakeBench's ``resolution``: the side of the square frames the detector is trained on."""
    if isinstance(value, bool) or not isinstance(value, int) or not 16 <= value <= 4096:
        raise DeepfakeBenchConfigError(f"DeepfakeBench config: resolution must be the frames' side in pixels, a whole "
                                       f"number from 16 to 4096, got {value!r}")
    return value


# --------------------------------------------------------------------------- the detector
def _build_backbone(settings: DILSettings, config_given: bool) -> torch.nn.Module:
    try:
        model = _built_backbone(settings, config_given)
    except TypeError as err:  # an option the model does not take: the config's key, not a traceback
        raise DeepfakeBenchConfigError(f"DeepfakeBench config: {DYNSNIP_KEY}.model_args {settings.model_args} do not "
                                       f"build {settings.model}: {err}") from None
    # the size it is trained and tested at, so that `dynsnip.save_pretrained(detector.backbone)` records it and
    # `dynsnip predict` crops faces to it (not the ImageNet tag's 224 px, nor its test-time sizes)
    from ..hub.config import _TEST_TIME_FIELDS

    cfg = {k: v for k, v in dict(getattr(model, "pretrained_cfg", None) or {}).items() if k not in _TEST_TIME_FIELDS}
    channels = tuple(cfg.get("input_size") or (3,))[0]
    model.pretrained_cfg = {**cfg, "input_size": (channels, settings.resolution, settings.resolution)}
    return model


def _built_backbone(settings: DILSettings, config_given: bool) -> torch.nn.Module:
    from ..engine.train import build_model

    kwargs = dict(settings.model_args)
    if isinstance(settings.pretrained, str):  # a saved detector: it keeps its own T and module
        model = build_model(settings.pretrained, num_classes=1,
                            module_config=settings.module_config if config_given else None, **kwargs)
        if model.snippet_len != settings.snippet_len:
            raise DeepfakeBenchConfigError(
                f"DeepfakeBench config: {settings.pretrained} was trained with T={model.snippet_len} frames per snippet, "
                f"but {DYNSNIP_KEY}.snippet_len is {settings.snippet_len}; set snippet_len: {model.snippet_len}")
        return model
    return build_model(settings.model, pretrained=settings.pretrained, num_classes=1,
                       module_config=settings.module_config, snippet_len=settings.snippet_len,
                       num_snippets=settings.num_snippets, **kwargs)


def _fake_logit(pred_dict: Mapping[str, Any]) -> torch.Tensor:
    """The fake logit ``z`` from ``cls = [0, z]`` (any two-class logits: their difference)."""
    cls = pred_dict["cls"]
    return cls[:, 1] - cls[:, 0]


def _binary_labels(data_dict: Mapping[str, Any]) -> torch.Tensor:
    label = torch.as_tensor(data_dict["label"]).flatten()
    bad = sorted({int(v) for v in label.tolist() if v not in (0, 1)})
    if bad:
        raise ValueError(f"DIL is a binary detector: labels must be 0 (real) or 1 (fake), got {bad}; map every label "
                         "name to 0 or 1 in DeepfakeBench's label_dict")
    return label.float()


def _batch_metrics(probs: torch.Tensor, labels: torch.Tensor,
                   logits: torch.Tensor | None = None) -> dict[str, float | None]:
    """``acc``, ``auc``, ``eer``, ``ap`` (dynsnip.engine.metrics); None where undefined (one class).
    ``logits``: the order of clips whose probabilities are equal (float32 rounds every logit above
    about 17 to 1.0), for the ranking metrics."""
    from ..engine.metrics import accuracy, average_precision, equal_error_rate, roc_auc

    def defined(value: float) -> float | None:
        return None if math.isnan(value) else float(value)

    probs, labels = probs.detach().float().cpu(), labels.detach().float().cpu()
    z = None if logits is None else logits.detach().double().cpu()
    return {"acc": defined(accuracy(probs, labels)), "auc": defined(roc_auc(probs, labels, logits=z)),
            "eer": defined(equal_error_rate(probs, labels, logits=z)),
            "ap": defined(average_precision(probs, labels, logits=z))}


class _DILDetector:
    """The methods of the DeepfakeBench DIL detector (mixed into their ``AbstractDetector``
    by :func:`register`; see the module docstring)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()  # DeepfakeBench's AbstractDetector(config=None, ...) -> nn.Module
        self.config = config
        self.settings = dil_settings(config)
        self._config_given = "config" in (config.get(DYNSNIP_KEY) or {})
        self.backbone = self.build_backbone(config)
        self.loss_func = self.build_loss(config)
        self._set_input_mapping()
        self._test_probs: list[torch.Tensor] = []
        self._test_logits: list[torch.Tensor] = []
        self._test_labels: list[torch.Tensor] = []
        self._steps = 0

    # ------------------------------------------------------------ DeepfakeBench's interface
    def build_backbone(self, config: Mapping[str, Any]) -> torch.nn.Module:
        """The ``dil_*`` network (a :class:`~dynsnip.DILResNet` with one fake logit)."""
        return _build_backbone(dil_settings(config), "config" in (config.get(DYNSNIP_KEY) or {}))

    def build_loss(self, config: Mapping[str, Any]):
        """The paper's loss, as ``dynsnip train`` computes it: binary cross-entropy on the fake logit."""
        dil_settings(config)  # loss_func checked there

        def binary_cross_entropy(fake_logit: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(fake_logit.float(), label.float())

        return binary_cross_entropy

    def features(self, data_dict: Mapping[str, Any]) -> torch.Tensor:
        """``data_dict["image"]`` ``(B, F, C, H, W)`` -> backbone features ``(B, C', F, H', W')``."""
        x = data_dict["image"]
        t = self.settings.snippet_len
        if not isinstance(x, torch.Tensor) or x.ndim != 5:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"DIL expects data_dict['image'] of shape (B, F, C, H, W), clips of F consecutive frames "
                             f"(DeepfakeBench's video_mode), got {shape}; set video_mode: true and clip_size")
        if x.shape[1] % t:
            raise ValueError(f"DIL: a clip of {x.shape[1]} frames is not U snippets of T={t} frames; "
                             f"set clip_size to a multiple of {t}")
        x = x.transpose(1, 2)  # "b f c h w -> b c f h w", the layout of dil_* models
        if self._input_scale is not None:
            x = x * self._input_scale + self._input_shift
        return self.backbone.forward_features(x)

    def classifier(self, features: torch.Tensor) -> torch.Tensor:
        """Two-class logits ``[0, z]`` ``(B, 2)`` from backbone features (maps, or pooled ``(B, C)``)."""
        z = self.backbone.fc(features) if features.ndim == 2 else self.backbone.forward_head(features)
        return torch.cat([torch.zeros_like(z), z], dim=1)

    def forward(self, data_dict: Mapping[str, Any], inference: bool = False) -> dict[str, torch.Tensor]:
        """``{"cls": (B, 2), "prob": (B,), "feat": (B, C)}``; in inference mode also remembered for
        :meth:`get_test_metrics`. Raises ValueError for a NaN / inf score in inference mode (a score
        that is no verdict)."""
        pooled = self.backbone.forward_head(self.features(data_dict), pre_logits=True)
        cls = self.classifier(pooled)
        prob = torch.sigmoid(cls[:, 1].float())
        if inference:
            if not bool(torch.isfinite(prob).all()):
                bad = int((~torch.isfinite(prob)).sum())
                raise ValueError(f"DIL scored {bad} of {len(prob)} clips of the batch NaN/inf: no verdict; the weights "
                                 "or the input are broken (check the checkpoint and the frames)")
            self._test_probs.append(prob.detach().cpu())
            self._test_logits.append(cls[:, 1].detach().float().cpu())
            if "label" in data_dict and data_dict["label"] is not None:  # 0 / 1 only, as training refuses others
                self._test_labels.append(_binary_labels(data_dict).detach().cpu().flatten().float())
        return {"cls": cls, "prob": prob, "feat": pooled}

    def get_losses(self, data_dict: Mapping[str, Any], pred_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        """``{"overall": BCE}``; raises :class:`~dynsnip.engine.divergence.NonFiniteLossError` for a NaN /
        inf loss (before it reaches the weights)."""
        from ..engine.divergence import NonFiniteLossError

        loss = self.loss_func(_fake_logit(pred_dict), _binary_labels(data_dict).to(pred_dict["cls"].device))
        if self.training:
            self._steps += 1
        if not bool(torch.isfinite(loss.detach()).all()):
            raise NonFiniteLossError(
                f"DIL's loss is {float(loss.detach())} at training step {self._steps}: training would poison every "
                "weight; lower the learning rate, or check the batch's frames", 0, self._steps)
        return {"overall": loss}

    def get_train_metrics(self, data_dict: Mapping[str, Any], pred_dict: Mapping[str, Any]) -> dict[str, float | None]:
        """``acc``, ``auc``, ``eer``, ``ap`` of the batch (None where undefined)."""
        return _batch_metrics(pred_dict["prob"], _binary_labels(data_dict), pred_dict["cls"][:, 1])

    def get_test_metrics(self) -> dict[str, Any]:
        """Metrics over every clip scored with ``inference=True`` since the last call (older DeepfakeBench
        trainers call it after a test pass), with ``pred`` and ``label``; then forgets them."""
        if not self._test_probs:
            raise ValueError("no clips were scored with inference=True since the last get_test_metrics()")
        probs = torch.cat(self._test_probs)
        if len(self._test_labels) != len(self._test_probs):
            raise ValueError("some test batches had no data_dict['label']: no metrics without labels")
        labels = torch.cat(self._test_labels)
        logits = torch.cat(self._test_logits) if len(self._test_logits) == len(self._test_probs) else None
        self._test_probs, self._test_labels, self._test_logits = [], [], []
        return {**_batch_metrics(probs, labels, logits), "pred": probs.numpy(), "label": labels.numpy()}

    # ------------------------------------------------------------------ normalisation
    def _set_input_mapping(self) -> None:
        """Buffers mapping the config's normalisation to the backbone's (None when they agree)."""
        cfg = getattr(self.backbone, "pretrained_cfg", None) or {}
        own_mean, own_std = cfg.get("mean"), cfg.get("std")
        mean, std = self.settings.mean, self.settings.std
        if mean is None or std is None or own_mean is None or own_std is None or (
                torch.allclose(torch.tensor(mean), torch.tensor(own_mean, dtype=torch.float32))
                and torch.allclose(torch.tensor(std), torch.tensor(own_std, dtype=torch.float32))):
            self._input_scale = self._input_shift = None
            return
        shape = (1, 3, 1, 1, 1)
        own_mean_t, own_std_t = torch.tensor(own_mean).view(shape), torch.tensor(own_std).view(shape)
        # x = (pixel - mean) / std  ->  (pixel - own_mean) / own_std = x * std / own_std + (mean - own_mean) / own_std
        self.register_buffer("_input_scale", torch.tensor(std).view(shape) / own_std_t, persistent=False)
        self.register_buffer("_input_shift", (torch.tensor(mean).view(shape) - own_mean_t) / own_std_t, persistent=False)


# --------------------------------------------------------------------------- registration
def _check_registry(registry: Any) -> None:
    if not callable(getattr(registry, "register_module", None)) or not hasattr(type(registry), "__getitem__"):
        raise TypeError(
            "expected DeepfakeBench's DETECTOR registry (from training/metrics/registry.py: an object with "
            f"register_module(module_name=...) and DETECTOR[name] lookup), got {type(registry).__name__}")


def _check_base(base: Any) -> None:
    if not isinstance(base, type) or not issubclass(base, torch.nn.Module):
        raise TypeError(
            "expected DeepfakeBench's AbstractDetector class (from training/detectors/base_detector.py, an "
            f"nn.Module subclass), got {base!r}")


def _registered(registry: Any, name: str) -> Any:
    try:
        return registry[name]
    except (KeyError, IndexError, TypeError):
        return None


def register(registry: Any, base: type, name: str = DETECTOR_NAME) -> type:
    """Add the DIL detector to DeepfakeBench's detector registry, as ``name``.

    Args:
        registry: DeepfakeBench's ``DETECTOR`` (``training/metrics/registry.py``).
        base: DeepfakeBench's ``AbstractDetector`` (``training/detectors/base_detector.py``).
        name: the ``model_name`` configs use (default ``"dil"``).

    Returns:
        the detector class (a subclass of ``base``), also ``registry[name]``.

    Raises:
        TypeError: ``registry`` or ``base`` is not of DeepfakeBench's shape (one line naming what
            was expected), or the registry did not keep the class.
        ValueError: ``name`` is already another detector.
    """
    _check_registry(registry)
    _check_base(base)
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string (the config's model_name), got {name!r}")
    existing = _registered(registry, name)
    if existing is not None and not getattr(existing, "_dynsnip_dil", False):
        raise ValueError(f"DeepfakeBench detector {name!r} is already {getattr(existing, '__name__', existing)}; "
                         "register DIL under another name (register(DETECTOR, AbstractDetector, name=...))")

    def body(namespace: dict[str, Any]) -> None:
        namespace.update(__module__=__name__, __doc__=_DILDetector.__doc__, _dynsnip_dil=True)

    cls = types.new_class("DILDetector", (_DILDetector, base), {}, body)
    cls.__qualname__ = "DILDetector"
    decorator = registry.register_module(module_name=name)
    if not callable(decorator):
        raise TypeError(f"DETECTOR.register_module(module_name={name!r}) returned {decorator!r}, expected a class "
                        "decorator (DeepfakeBench's registry)")
    decorator(cls)
    if _registered(registry, name) is not cls:
        raise TypeError(f"the registry did not register the detector: DETECTOR[{name!r}] is not it after "
                        "register_module; expected DeepfakeBench's registry")
    return cls
