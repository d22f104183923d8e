"""Grad-CAM over the frames of a clip, computed at the CAM layer's own resolution.

The DIL network is a 2D CNN on frames folded into the batch: a layer such as
``model.layer4[-1]`` outputs ``(B*U*T, C, h, w)`` while the model's input is the video
``(B, 3, U*T, H, W)``. The layer's activations ``A`` and the gradients of the target score
with respect to them are taken from one forward and one backward, unfolded into a video
``(1, C, U*T, h, w)``, and the Grad-CAM is ``ReLU(sum_k w_k A_k)`` with the channel weights
``w_k`` = the gradients averaged over frames and space (one set of weights for the whole clip,
as Grad-CAM on a 3-D CNN). That ``(U*T, h, w)`` map is then upsampled to the crops exactly as the
Intra-SMA maps are (:func:`dynsnip.explain.maps.upsample`: bilinear, ``align_corners=False``,
so that cell ``(i, j)`` of the ``h x w`` grid is drawn over the pixels it comes from, centred at
``((i + 0.5) H / h, (j + 0.5) W / w)``), and scaled to [0, 1] with one min-max over the whole
clip (after the resize), so that the frames' maps are comparable with each other.

Why not ``pytorch_grad_cam``'s own upsampling: for a 5-D (video) activation it resizes with
``scipy.ndimage.zoom`` (a cubic spline that pins the grid's corner cells to the crop's corners),
which stretches the CAM outward by up to half a cell (16 px at 224 px input, 7x7 grid) and
smears it with spline ringing: the CAM was drawn beside the evidence and did not line up with
the Intra-SMA maps. The package's target classes (:func:`cam_target`) are still used, so the
class and sign of the explained score are the package's.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

import torch
import torch.nn as nn

from ._optional import require
from .adapter import VideoCall, default_target_layer, fold_frames

if TYPE_CHECKING:
    import numpy as np

TARGETS = ("fake", "real")


def cam_target(target: str, num_outputs: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """The grad-cam target for ``"fake"`` or ``"real"``.

    One output (the fake logit): the logit itself (fake) or its negative (real), grad-cam's
    ``BinaryClassifierOutputTarget``. Two outputs (real, fake): that class's logit,
    ``ClassifierOutputTarget``.
    """
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    targets = require("pytorch_grad_cam.utils.model_targets")
    if num_outputs == 1:
        return targets.BinaryClassifierOutputTarget(1 if target == "fake" else 0)
    if num_outputs == 2:
        return targets.ClassifierOutputTarget(1 if target == "fake" else 0)
    raise ValueError(f"a detector has 1 (fake logit) or 2 (real, fake) outputs, this one has {num_outputs}")


@contextmanager
def _gradients_kept(model: nn.Module) -> Iterator[None]:
    """No parameter gradients during the CAM, and the model's own ``.grad``/mode untouched.

    The parameters are frozen for the backward (only activation gradients are needed: faster,
    and nothing accumulates), the model runs in eval mode, and the parameters'
    ``requires_grad``, ``.grad`` and the training flag are restored afterwards.
    """
    params = list(model.parameters())
    saved = [(p.requires_grad, p.grad) for p in params]
    training = model.training
    for p in params:
        p.requires_grad_(False)
    model.eval()
    try:
        yield
    finally:
        for p, (requires_grad, grad) in zip(params, saved):
            p.requires_grad_(requires_grad)
            p.grad = grad
        model.train(training)


def _module_name(model: nn.Module, module: nn.Module) -> str:
    """``module``'s dotted name in ``model`` (its class name if it is not one of ``model``'s)."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return name or "<model>"
    return type(module).__name__


def _is_frames_output(out: object, batch: int, num_frames: int) -> bool:
    """Whether a module's output is frames folded ``(B*F, C, h, w)`` or a video ``(B, C, F, h, w)``."""
    if not isinstance(out, torch.Tensor):
        return False
    return (out.ndim == 4 and out.shape[0] == batch * num_frames) or (
        out.ndim == 5 and out.shape[0] == batch and out.shape[2] == num_frames
    )


def _layers_that_run(wrapper: VideoCall, x: torch.Tensor, asked: str, limit: int = 3) -> list[str]:
    """Up to ``limit`` layers that run as modules in ``wrapper``'s forward with a per-frame output
    (usable as the Grad-CAM layer): the nearest ancestors of ``asked`` first, then the default
    layer (``layer4.<last>``), then the last such layers of the forward. One extra no-grad forward,
    on the error path only."""
    batch, num_frames = x.shape[0], x.shape[2]
    ran: list[str] = []
    handles = []
    for name, module in wrapper.model.named_modules():
        if name:
            handles.append(module.register_forward_hook(
                lambda m, i, o, name=name: ran.append(name) if _is_frames_output(o, batch, num_frames) else None))
    try:
        with torch.no_grad():
            wrapper(x)
    except Exception:  # suggestions are a courtesy: never hide the real error behind another one
        pass
    finally:
        for handle in handles:
            handle.remove()
    ran = list(dict.fromkeys(ran))  # first call order, each once
    parts = asked.split(".")
    picks = [a for a in (".".join(parts[:n]) for n in range(len(parts) - 1, 0, -1)) if a in ran]
    try:
        default = default_target_layer(wrapper.model)
    except ValueError:
        default = None
    if default in ran:
        picks.append(default)
    picks.extend(reversed(ran))
    return list(dict.fromkeys(picks))[:limit]


def clip_gradcam(
    wrapper: VideoCall,
    clip: torch.Tensor,
    target_layer: nn.Module,
    target: str = "fake",
    size: tuple[int, int] | None = None,
) -> tuple["np.ndarray", torch.Tensor]:
    """Grad-CAM of one clip.

    Args:
        wrapper: the model as ``(1, 3, U*T, H, W) -> (1, K)`` (see :class:`VideoCall`).
        clip: ``(1, 3, U*T, H, W)``, normalised.
        target_layer: a module of the model that runs in its forward (a forward hook fires)
            and outputs ``(U*T, C, h, w)`` (frames folded) or ``(1, C, U*T, h, w)``. Its first
            call in the forward is the one explained.
        target: ``"fake"`` or ``"real"``: the evidence to localise.
        size: ``(height, width)`` of the returned maps (the face crops they are drawn on);
            default the clip's ``(H, W)``.

    Returns:
        ``(cam, logits)``: float32 numpy ``(U*T, *size)`` in [0, 1] (0 everywhere when no
        location speaks for the target), and the ``(1, K)`` logits of the same forward. The CAM
        is computed on the layer's ``h x w`` grid and upsampled bilinearly (``align_corners=False``,
        as the Intra-SMA maps), then min-max scaled over the whole clip.

    Raises:
        ValueError: the layer never ran as a module in the forward (e.g. ``layer4.0.sim.sma``, which
            its Intra-SIM calls through methods, not ``__call__``): the message names layers that
            do run; or its output is not per frame, or does not reach the score.
    """
    require("pytorch_grad_cam")  # the target classes are the package's: say how to install it first
    from .maps import upsample

    batch, num_frames = clip.shape[0], clip.shape[2]
    if batch != 1:
        raise ValueError(f"clip_gradcam explains one clip at a time, got a batch of {batch}")
    size = tuple(size) if size is not None else tuple(clip.shape[-2:])
    name = _module_name(wrapper.model, target_layer)
    where = f"the Grad-CAM target layer {name} ({type(target_layer).__name__})"
    outputs: list[object] = []

    def keep_first(module: nn.Module, inputs: object, output: object) -> None:
        if not outputs:
            outputs.append(output)

    # Grad-CAM needs a backward: called under torch.no_grad() or torch.inference_mode() (as scoring code often
    # is), autograd is switched back on here; the clip is copied out of inference mode first
    with torch.inference_mode(False), torch.enable_grad():
        x = clip.detach().clone().requires_grad_(True)  # gradients flow although the weights are frozen
        with _gradients_kept(wrapper.model):
            handle = target_layer.register_forward_hook(keep_first)
            try:
                logits = wrapper(x)
            finally:
                handle.remove()
            if not outputs:
                others = _layers_that_run(wrapper, x.detach(), name)
                raise ValueError(
                    f"{where} never ran as a module in the model's forward (its forward hook did not fire: it is "
                    "called through its parent's methods, or not at all), so it has no activations to explain; "
                    f"expected a layer that runs, e.g. {', '.join(others) or 'layer4.1'}"
                )
            if not isinstance(outputs[0], torch.Tensor):
                raise ValueError(f"{where} outputs a {type(outputs[0]).__name__}, expected a tensor of frames "
                                 "folded (U*T, C, h, w) or a video (1, C, U*T, h, w)")
            activations = outputs[0]
            score = cam_target(target, int(logits.shape[-1]))(logits[0]).sum()
            grads = None
            if activations.requires_grad:
                (grads,) = torch.autograd.grad(score, activations, allow_unused=True)
            if grads is None:
                raise ValueError(f"{where}: its output does not reach the model's {target} score (no gradient "
                                 "flows back to it); expected a layer on the path to the classifier")
    acts = fold_frames(activations.detach(), batch, num_frames, where).float()  # (1, C, F, h, w)
    grads = fold_frames(grads.detach(), batch, num_frames, where).float()
    weights = grads.mean(dim=(2, 3, 4))  # (1, C): one weight per channel for the whole clip
    cam = torch.relu((weights[:, :, None, None, None] * acts).sum(1))[0]  # (F, h, w), at the layer's grid
    cam = upsample(cam, size)  # as the Intra-SMA maps: bilinear, align_corners=False
    cam = cam - cam.min()
    peak = float(cam.max())
    if peak > 0:  # one scaling for the clip, after the resize: its max is 1 (an all-zero map stays 0)
        cam = cam / peak
    return cam.cpu().numpy().astype("float32"), logits.detach()
