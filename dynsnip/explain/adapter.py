"""How the explainer drives a video model: call convention, T, CAM layer, per-snippet scores.

:func:`~dynsnip.explain.explain_clip` works on any ``dil_*`` model without options, and on a
custom 2D backbone that uses :class:`~dynsnip.IntraSIM` / :class:`~dynsnip.InterSIM` once
it is told what it cannot guess:

* ``call``: how the model takes a clip of U snippets of T frames.
  ``"video"`` (``dil_*`` models, ``examples/custom_backbone.py``): ``model(x)`` with ``x`` of
  shape ``(B, 3, U*T, H, W)``, the model reads U from the frame count.
  ``"frames"``: ``model(x, num_snippets=U)`` with frames folded, ``x`` of shape
  ``(B*U*T, 3, H, W)``, as the SIMs themselves are called.
  Either way the model returns ``(B, K)`` logits: K=1 (the fake logit) or K=2 (real, fake).
* ``snippet_len``: T; default ``model.snippet_len``, else the T of the model's SIMs.
* ``target_layer``: the Grad-CAM layer, a module or its dotted name (``"layer4.1"``). Its
  output must be frames folded, ``(B*U*T, C, h, w)``, or a video ``(B, C, U*T, h, w)``.
  Default for timm ResNets (all ``dil_*``): ``layer4[-1]``, the last residual block.
* ``feature_layer`` / ``classifier``: for per-snippet fake probabilities of a custom
  backbone whose head is "pool space and frames, then a linear classifier": the layer whose
  output the head pools (default: ``target_layer``) and the classifier (default:
  ``model.get_classifier()``, else a ``model.fc`` / ``model.head`` ``nn.Linear``). A snippet's
  logit is the classifier on the mean of its own T frames; the explainer checks that the
  mean of the snippet logits equals the model's video logit and drops them (with a note)
  when it does not (the head is not of that kind, or the layer is not the last one).
  ``dil_*`` models use :func:`dynsnip.scoring.score_clip`, the same numbers
  ``dynsnip predict`` prints.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
from einops import rearrange, reduce

from ..modules import InterSIM, IntraSIM

CallConvention = Literal["video", "frames"]
CALLS = ("video", "frames")


def sim_modules(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: module}`` of every IntraSIM / InterSIM in ``model``, in forward order."""
    return {n: m for n, m in model.named_modules() if isinstance(m, (IntraSIM, InterSIM))}


def resolve_snippet_len(model: nn.Module, snippet_len: int | None) -> int:
    """T: the argument, else ``model.snippet_len``, else the (common) T of the model's SIMs."""
    if snippet_len is not None:
        if int(snippet_len) < 1:
            raise ValueError(f"snippet_len must be >= 1, got {snippet_len}")
        return int(snippet_len)
    if isinstance(getattr(model, "snippet_len", None), int):
        return int(model.snippet_len)
    lengths = {m.snippet_len for m in sim_modules(model).values()}
    if len(lengths) == 1:
        return lengths.pop()
    if len(lengths) > 1:
        raise ValueError(
            f"{type(model).__name__}'s SIMs disagree on snippet_len ({sorted(lengths)}); pass snippet_len=T"
        )
    raise ValueError(
        f"cannot tell the snippet length T of {type(model).__name__}: it has no `snippet_len` "
        "attribute and no IntraSIM/InterSIM; pass snippet_len=T"
    )


def resolve_layer(model: nn.Module, layer: nn.Module | str, what: str) -> tuple[str, nn.Module]:
    """``(dotted name, module)`` of ``layer`` given as a module of ``model`` or its name."""
    if isinstance(layer, str):
        try:
            return layer, model.get_submodule(layer)
        except AttributeError:
            names = [n for n, _ in model.named_children()]
            raise ValueError(
                f"{what} {layer!r} is not a submodule of {type(model).__name__} "
                f"(its top-level modules: {', '.join(names)})"
            ) from None
    for name, module in model.named_modules():
        if module is layer:
            return name or "<model>", module
    raise ValueError(f"{what} {type(layer).__name__} is not a submodule of {type(model).__name__}")


def default_target_layer(model: nn.Module) -> str:
    """``"layer4.<last>"`` for timm ResNets (every ``dil_*`` model); a ValueError otherwise."""
    stage = getattr(model, "layer4", None)
    if isinstance(stage, nn.Sequential) and len(stage):
        return f"layer4.{len(stage) - 1}"
    raise ValueError(
        f"cannot guess the Grad-CAM layer of {type(model).__name__}: pass target_layer= "
        "(a module or its dotted name), normally the last convolutional block, whose output is "
        "frames folded (B*U*T, C, h, w) or a video (B, C, U*T, h, w)"
    )


def default_classifier(model: nn.Module) -> nn.Module | None:
    """``model.get_classifier()``, else a linear ``model.fc`` / ``model.head``, else None."""
    getter = getattr(model, "get_classifier", None)
    if callable(getter):
        head = getter()
        if isinstance(head, nn.Module) and not isinstance(head, nn.Identity):
            return head
    for name in ("fc", "head", "classifier"):
        head = getattr(model, name, None)
        if isinstance(head, nn.Linear):
            return head
    return None


def has_dil_head(model: nn.Module) -> bool:
    """The ``dil_*`` head API that :func:`dynsnip.scoring.score_clip` relies on."""
    return all(
        hasattr(model, a) for a in ("forward_features", "forward_head", "global_pool", "get_classifier", "snippet_len")
    )


def fold_frames(out: torch.Tensor, batch: int, num_frames: int, where: str) -> torch.Tensor:
    """A layer output as a video ``(B, C, F, h, w)``, from ``(B*F, C, h, w)`` or as is."""
    if out.ndim == 4 and out.shape[0] == batch * num_frames:
        return rearrange(out, "(b f) c h w -> b c f h w", b=batch)
    if out.ndim == 5 and out.shape[0] == batch and out.shape[2] == num_frames:
        return out
    raise ValueError(
        f"{where} gives a tensor of shape {tuple(out.shape)}; expected frames folded "
        f"({batch * num_frames}, C, h, w) or a video ({batch}, C, {num_frames}, h, w) "
        f"for a clip of {num_frames} frames: choose a convolutional layer of the 2D backbone"
    )


class VideoCall(nn.Module):
    """Presents any supported model as ``(B, 3, U*T, H, W) -> (B, K)`` logits.

    Besides the logits, a forward leaves ``snippet_logits`` ``(B, U, K)`` (or None) and
    ``notes`` (why they are missing): with ``score_clip`` from
    :func:`dynsnip.scoring.score_clip` (``dil_*`` models), else from ``feature_layer``'s
    output and ``classifier`` when both are given. Grad-CAM is run on this wrapper.
    """

    def __init__(
        self,
        model: nn.Module,
        snippet_len: int,
        call: str = "video",
        feature_layer: nn.Module | None = None,
        classifier: nn.Module | None = None,
        score_clip: bool = False,
    ) -> None:
        super().__init__()
        if call not in CALLS:
            raise ValueError(f"call must be one of {CALLS}, got {call!r}")
        self.model = model
        self.snippet_len = int(snippet_len)
        self.call = call
        # kept out of the module tree: they belong to ``model``
        self.__dict__["feature_layer"] = feature_layer
        self.__dict__["classifier"] = classifier
        if score_clip and not (call == "video" and has_dil_head(model)):
            raise ValueError("score_clip needs a dil_* style model (forward_features/forward_head) called as 'video'")
        self.use_score_clip = score_clip
        self.snippet_logits: torch.Tensor | None = None
        self.notes: list[str] = []

    def _call_model(self, x: torch.Tensor) -> torch.Tensor:
        if self.call == "video":
            return self.model(x)
        u = x.shape[2] // self.snippet_len
        return self.model(rearrange(x, "b c f h w -> (b f) c h w"), num_snippets=u)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, U*T, H, W)`` -> ``(B, K)``; sets ``snippet_logits``."""
        b, _, f = x.shape[:3]
        if f == 0 or f % self.snippet_len:
            raise ValueError(
                f"a clip of {f} frames is not U snippets of T={self.snippet_len} frames (shape {tuple(x.shape)})"
            )
        self.snippet_logits, self.notes = None, []
        if self.use_score_clip:
            from ..scoring import score_clip

            logits, snippet_logits = score_clip(self.model, x)
            self.snippet_logits = snippet_logits.detach()
            return logits
        captured: list[torch.Tensor] = []
        handle = None
        if self.feature_layer is not None and self.classifier is not None:
            handle = self.feature_layer.register_forward_hook(lambda m, i, o: captured.append(o.detach()))
        try:
            logits = self._call_model(x)
        finally:
            if handle is not None:
                handle.remove()
        if logits.ndim == 1:
            logits = logits[:, None]
        if logits.ndim != 2 or logits.shape[0] != b:
            raise ValueError(
                f"{type(self.model).__name__} returned logits of shape {tuple(logits.shape)} for {b} clip(s); "
                f"expected ({b}, K) (call convention {self.call!r})"
            )
        if handle is None:
            self.notes.append(
                "per-snippet fake probabilities need the classifier and the layer it pools "
                "(feature_layer=, classifier=): not available for this model"
            )
        elif len(captured) != 1:
            self.notes.append(
                f"the feature layer ran {len(captured)} times in one forward; per-snippet probabilities skipped"
            )
        else:
            self.snippet_logits = self._snippet_logits(captured[0], b, f, logits.detach())
        return logits

    def _snippet_logits(
        self, feats: torch.Tensor, batch: int, num_frames: int, logits: torch.Tensor
    ) -> torch.Tensor | None:
        video = fold_frames(feats, batch, num_frames, "the feature layer")  # (B, C, F, h, w)
        pooled = reduce(video, "b c (u t) h w -> b u c", "mean", t=self.snippet_len)
        with torch.no_grad():
            weight = next(self.classifier.parameters(), None)
            snippet_logits = self.classifier(pooled if weight is None else pooled.to(weight.dtype))
        if snippet_logits.shape[-1] != logits.shape[-1] or not torch.allclose(
            snippet_logits.mean(1).float(), logits.float(), rtol=1e-3, atol=1e-4
        ):
            self.notes.append(
                "per-snippet probabilities skipped: the classifier on the pooled feature-layer output "
                "does not reproduce the model's logit (the head is not 'average over space and frames, "
                "then linear', or feature_layer is not the last layer before it)"
            )
            return None
        return snippet_logits
