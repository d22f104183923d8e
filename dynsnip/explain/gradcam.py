"""Grad-CAM over the frames of a clip, with the maintained ``grad-cam`` package.

The DIL network is a 2D CNN on frames folded into the batch: a layer such as
``model.layer4[-1]`` outputs ``(B*U*T, C, h, w)`` while the model's input is the video
``(B, 3, U*T, H, W)``. ``pytorch_grad_cam`` takes the CAM's output size from the input's
trailing dims, ``(U*T, H, W)`` for a 5-D input, and would resize a 2-D per-frame CAM to that
3-tuple (an OpenCV error). So the layer's activations and gradients are unfolded into a
video ``(B, C, U*T, h, w)`` (its ``reshape_transform``) and the package's 3-D path does the
rest: channel weights = gradients averaged over frames and space (one set of weights for the
whole clip, as Grad-CAM on a 3-D CNN), ReLU, upsampling to ``(U*T, H, W)``, and one min-max
scaling over the whole clip, so that the frames' maps are comparable with each other.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

import torch
import torch.nn as nn

from ._optional import require
from .adapter import VideoCall, fold_frames

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

    grad-cam calls ``model.zero_grad()`` and ``model.eval()``; the parameters are frozen for
    the backward (only activation gradients are needed: faster, and nothing accumulates),
    and their ``requires_grad``, ``.grad`` and the training flag are restored afterwards.
    """
    params = list(model.parameters())
    saved = [(p.requires_grad, p.grad) for p in params]
    training = model.training
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, (requires_grad, grad) in zip(params, saved):
            p.requires_grad_(requires_grad)
            p.grad = grad
        model.train(training)


def clip_gradcam(
    wrapper: VideoCall, clip: torch.Tensor, target_layer: nn.Module, target: str = "fake"
) -> tuple["np.ndarray", torch.Tensor]:
    """Grad-CAM of one clip.

    Args:
        wrapper: the model as ``(1, 3, U*T, H, W) -> (1, K)`` (see :class:`VideoCall`).
        clip: ``(1, 3, U*T, H, W)``, normalised.
        target_layer: a module of the model whose output is ``(U*T, C, h, w)`` (frames folded)
            or ``(1, C, U*T, h, w)``.
        target: ``"fake"`` or ``"real"``: the evidence to localise.

    Returns:
        ``(cam, logits)``: float32 numpy ``(U*T, H, W)`` in [0, 1] (0 everywhere when no
        location speaks for the target), and the ``(1, K)`` logits of the same forward.
    """
    pgc = require("pytorch_grad_cam")
    batch, num_frames = clip.shape[0], clip.shape[2]
    if batch != 1:
        raise ValueError(f"clip_gradcam explains one clip at a time, got a batch of {batch}")

    def to_video(t: torch.Tensor) -> torch.Tensor:
        return fold_frames(t, batch, num_frames, f"the Grad-CAM target layer {type(target_layer).__name__}")

    # Grad-CAM needs a backward: called under torch.no_grad() or torch.inference_mode() (as scoring code often
    # is), autograd is switched back on here; the clip is copied out of inference mode first
    with torch.inference_mode(False), torch.enable_grad():
        x = clip.detach().clone().requires_grad_(True)  # gradients flow although the weights are frozen
        with _gradients_kept(wrapper.model), pgc.GradCAM(wrapper, [target_layer], reshape_transform=to_video) as cam:
            num_outputs = _num_outputs(wrapper, x)
            maps = cam(x, targets=[cam_target(target, num_outputs)])
            logits = cam.outputs.detach()
    return maps[0].astype("float32"), logits


def _num_outputs(wrapper: VideoCall, x: torch.Tensor) -> int:
    """K, read from the classifier when it says, else from a no-grad forward."""
    head = wrapper.classifier if wrapper.classifier is not None else None
    if head is None and callable(getattr(wrapper.model, "get_classifier", None)):
        head = wrapper.model.get_classifier()
    if isinstance(head, nn.Linear):
        return head.out_features
    with torch.no_grad():
        return int(wrapper(x).shape[-1])
