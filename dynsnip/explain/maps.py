"""``explain_clip``: what the detector looks at in one clip, as numpy arrays.

One forward (and one backward for Grad-CAM) of the clip gives:

* the Grad-CAM of the fake (or real) logit over the sampled frames (paper Figure 3);
* the Intra-SMA attention of every Intra-SIM (Figure 4), upsampled to the frames;
* the U x T attention ``F̄_1 ⊙ F̄_2`` of every Inter-SIM (Figure 5);
* the video's and each snippet's fake probability (the p(fake) column beside the U x T map;
  the paper's Figure 5 prints a number per cell instead, which DIL has no probability for:
  docs/explain.md, "The U x T map and the paper's Figure 5").

The pictures are drawn by :mod:`dynsnip.explain.figures`; ``dynsnip explain`` does both for
a video file.
"""
from __future__ import annotations

import json
import os
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..attention_maps import record_attention
from ._optional import require
from .adapter import (
    CallConvention,
    VideoCall,
    default_classifier,
    default_target_layer,
    has_dil_head,
    resolve_layer,
    resolve_snippet_len,
    sim_modules,
)
from .frames import check_frames, clip_to_frames

np = require("numpy")

NO_SIMS_NOTE = (
    "{model} has no IntraSIM/InterSIM modules: no Intra-SMA maps and no U x T map exist for it; "
    "only the Grad-CAM is available"
)
# Intra-SMA maps smaller than this (on the short side) are too coarse to be the default picture.
MIN_DEFAULT_INTRA_SIDE = 7


@dataclass
class Explanation:
    """What the detector saw in one clip of U snippets of T frames (F = U*T frames).

    Attributes:
        frames: uint8 ``(F, H, W, 3)`` RGB face frames, snippet by snippet.
        gradcam: float32 ``(F, H, W)`` in [0, 1], Grad-CAM of ``target`` computed at the CAM
            layer's grid and upsampled as the Intra-SMA maps are (bilinear,
            ``align_corners=False``), then one min-max scaling for the whole clip; None when not
            computed.
        intra: ``{Intra-SIM name: float32 (F, H, W)}``, each Intra-SMA map (channel mean of
            ``Atten_H ⊙ Atten_W``, values in (0, 1)) upsampled bilinearly to the frames.
        inter: ``{Inter-SIM name: float32 (U, T)}``, the U x T map (channel mean of
            ``F̄_1 ⊙ F̄_2``, values in (0, 1)); row u is snippet u.
        fake_prob: the fake probability of the clip explained: the video's, or (``subject``) one
            face track's.
        snippet_probs: float32 ``(U,)`` each snippet's fake probability (the classifier on the
            snippet's own frames, in the context of the whole clip), or None.
        num_snippets, snippet_len: U and T.
        target: ``"fake"`` or ``"real"``, the class the Grad-CAM explains.
        target_layer: the Grad-CAM layer's name.
        intra_layer, inter_layer: the maps shown by default (None when there are none).
        frame_indices: int ``(U, T)`` video frame numbers behind ``frames``, or None.
        face_found: bool ``(U,)``, False where the snippet had no face and its crop was
            borrowed from another snippet (marked on the pictures), or None (unknown).
        notes: what could not be computed, and why.
        subject: what ``fake_prob`` is the probability of, as the pictures' titles say it
            (``"video"``; ``dynsnip explain --track 1``: ``"face track 1"``).
        caveat: a warning that every picture's title carries and that :meth:`summary` puts first in
            its notes, so that a picture or file shared on its own says it (``dynsnip explain``
            without ``--checkpoint``: "untrained network: the maps mean nothing ..."), or None.
    """

    frames: "np.ndarray"
    gradcam: "np.ndarray | None"
    intra: dict[str, "np.ndarray"]
    inter: dict[str, "np.ndarray"]
    fake_prob: float
    snippet_probs: "np.ndarray | None"
    num_snippets: int
    snippet_len: int
    target: str = "fake"
    target_layer: str | None = None
    intra_layer: str | None = None
    inter_layer: str | None = None
    frame_indices: "np.ndarray | None" = None
    notes: list[str] = field(default_factory=list)
    face_found: "np.ndarray | None" = None
    subject: str = "video"
    caveat: str | None = None

    @property
    def intra_map(self) -> "np.ndarray | None":
        """``(F, H, W)`` Intra-SMA map of ``intra_layer`` (None without Intra-SIMs)."""
        return self.intra[self.intra_layer] if self.intra_layer else None

    @property
    def inter_map(self) -> "np.ndarray | None":
        """``(U, T)`` map of ``inter_layer`` (None without Inter-SIMs)."""
        return self.inter[self.inter_layer] if self.inter_layer else None

    def summary(self) -> dict[str, Any]:
        """JSON-serialisable scalars and small arrays (no images); ``notes`` begins with the ``caveat``.

        The U x T values are rounded to 6 decimals as Python floats: a float32 rounded in numpy is
        still the nearest float32 (``0.253606`` prints as ``0.25360599160194397``).
        """
        return dict(
            fake_probability=round(self.fake_prob, 6),
            snippet_fake_probabilities=None if self.snippet_probs is None else [round(float(p), 6) for p in self.snippet_probs],
            num_snippets=self.num_snippets,
            snippet_len=self.snippet_len,
            crop_size=list(self.frames.shape[1:3]),  # (height, width) of the face crops shown
            face_found=None if self.face_found is None else [bool(f) for f in self.face_found],
            frame_indices=None if self.frame_indices is None else self.frame_indices.tolist(),
            subject=self.subject,
            target=self.target,
            target_layer=self.target_layer,
            intra_layers=list(self.intra),
            inter_layers=list(self.inter),
            intra_layer=self.intra_layer,
            inter_layer=self.inter_layer,
            inter_maps={k: [[round(float(x), 6) for x in row] for row in np.asarray(v).tolist()]
                        for k, v in self.inter.items()},
            notes=([self.caveat] if self.caveat else []) + list(self.notes),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write every array to one compressed ``.npz`` (read it back with :meth:`load`).

        The maps are stored as float16 (3 significant digits, far finer than any colour
        scale), which with the compression keeps a U=8 explanation to a few MB.
        """
        arrays: dict[str, Any] = {"frames": self.frames}
        if self.gradcam is not None:
            arrays["gradcam"] = self.gradcam.astype(np.float16)
        if self.face_found is not None:
            arrays["face_found"] = np.asarray(self.face_found, dtype=bool)
        if self.snippet_probs is not None:
            arrays["snippet_probs"] = self.snippet_probs
        if self.frame_indices is not None:
            arrays["frame_indices"] = self.frame_indices
        for k, v in self.intra.items():
            arrays[f"intra/{k}"] = v.astype(np.float16)
        for k, v in self.inter.items():
            arrays[f"inter/{k}"] = v.astype(np.float16)
        meta = {k: v for k, v in self.summary().items() if k in _META_KEYS}
        meta.update(fake_probability=self.fake_prob, notes=list(self.notes), caveat=self.caveat)
        arrays["meta"] = np.array(json.dumps(meta))
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Explanation":
        """Read an :meth:`save`'d explanation."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            get = lambda k: data[k] if k in data.files else None  # noqa: E731
            as_float = lambda a: None if a is None else a.astype(np.float32)  # noqa: E731
            return cls(
                frames=data["frames"],
                gradcam=as_float(get("gradcam")),
                intra={k.split("/", 1)[1]: as_float(data[k]) for k in data.files if k.startswith("intra/")},
                inter={k.split("/", 1)[1]: as_float(data[k]) for k in data.files if k.startswith("inter/")},
                face_found=get("face_found"),
                fake_prob=float(meta["fake_probability"]),
                snippet_probs=get("snippet_probs"),
                num_snippets=meta["num_snippets"],
                snippet_len=meta["snippet_len"],
                target=meta["target"],
                target_layer=meta["target_layer"],
                intra_layer=meta["intra_layer"],
                inter_layer=meta["inter_layer"],
                frame_indices=get("frame_indices"),
                notes=meta["notes"],
                subject=meta.get("subject", "video"),  # files saved before it was recorded: a video's
                caveat=meta.get("caveat"),
            )


_META_KEYS = ("num_snippets", "snippet_len", "target", "target_layer", "intra_layer", "inter_layer", "notes", "subject")


def _as_clip(clip: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    x = torch.as_tensor(clip)
    if x.ndim == 4:
        x = x[None]
    if x.ndim != 5 or x.shape[0] != 1:
        raise ValueError(
            f"explain_clip takes one clip (3, U*T, H, W) or (1, 3, U*T, H, W), got shape {tuple(x.shape)}"
        )
    return x.to(device=device, dtype=dtype)


def _normalisation(model: nn.Module, mean: Sequence[float] | None, std: Sequence[float] | None):
    if mean is not None and std is not None:
        return tuple(mean), tuple(std)
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=model)
    return tuple(mean or config["mean"]), tuple(std or config["std"])


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(F, h, w)`` -> float32 ``(F, *size)``: bilinear, ``align_corners=False`` (a convex mix: the range is kept).

    The one resize of every map drawn over the frames (Intra-SMA maps and the Grad-CAM), so that
    they line up with each other and with the faces: cell ``(i, j)`` of an ``h x w`` grid covers
    the pixels ``[i H/h, (i+1) H/h) x [j W/w, (j+1) W/w)`` of the frame and peaks at their centre.
    """
    maps = maps.detach().float().cpu()
    if tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]
    return maps


def _resize(maps: torch.Tensor, size: tuple[int, int]) -> "np.ndarray":
    """``(F, h, w)`` -> float32 numpy ``(F, *size)`` (:func:`upsample`)."""
    return upsample(maps, size).numpy().astype(np.float32)


def default_intra_layer(native_sizes: dict[str, tuple[int, int]]) -> str | None:
    """The deepest Intra-SIM whose map is at least 7 px on its short side (else the largest).

    At 224 px input that is the last stage of a ResNet (7x7), at 64 px the second (8x8):
    maps coarser than that are a few blobs over the whole face.
    """
    if not native_sizes:
        return None
    fine = [n for n, s in native_sizes.items() if min(s) >= MIN_DEFAULT_INTRA_SIDE]
    if fine:
        return fine[-1]
    return max(native_sizes, key=lambda n: native_sizes[n][0] * native_sizes[n][1])


def _pick(name: str | None, available: dict[str, Any], default: str | None, kind: str) -> str | None:
    if name is None:
        return default
    if name not in available:
        have = ", ".join(available) or "none"
        raise ValueError(f"{kind} {name!r} is not in the model (it has: {have})")
    return name


def explain_clip(
    model: nn.Module,
    clip: torch.Tensor,
    *,
    frames: "np.ndarray | None" = None,
    target: str = "fake",
    gradcam: bool = True,
    target_layer: nn.Module | str | None = None,
    snippet_len: int | None = None,
    call: CallConvention = "video",
    feature_layer: nn.Module | str | None = None,
    classifier: nn.Module | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    frame_indices: Any = None,
    intra_layer: str | None = None,
    inter_layer: str | None = None,
    face_found: Any = None,
) -> Explanation:
    """Grad-CAM, Intra-SMA maps, U x T maps and fake probabilities of one clip.

    Args:
        model: a ``dil_*`` model, or any video model built with the SIMs (see
            :mod:`dynsnip.explain.adapter` for what a custom backbone must say).
        clip: ``(3, U*T, H, W)`` or ``(1, 3, U*T, H, W)``, normalised as the model expects
            (e.g. :class:`dynsnip.data.FaceClip`'s ``pixels``).
        frames: uint8 ``(U*T, H', W', 3)`` face frames to show and to map onto; default: the
            clip with its normalisation undone (``mean``/``std``, default the model's).
            Every map is returned at the frames' geometry.
        target: ``"fake"`` or ``"real"``: which evidence the Grad-CAM localises.
        gradcam: compute the Grad-CAM (needs ``pip install 'dynsnip[explain]'``).
        target_layer: the Grad-CAM layer (module or dotted name); default ``layer4[-1]`` for
            timm ResNets, required for other models.
        snippet_len: T; default ``model.snippet_len`` or the T of its SIMs.
        call: ``"video"``: ``model((B, 3, U*T, H, W))``; ``"frames"``:
            ``model((B*U*T, 3, H, W), num_snippets=U)``.
        feature_layer, classifier: for the per-snippet probabilities of a custom backbone
            (default: ``target_layer`` and ``model.get_classifier()`` / ``model.fc``).
        mean, std: the clip's normalisation, to recover the frames.
        frame_indices: ``(U, T)`` video frame numbers, for the figures' labels.
        face_found: ``(U,)`` bool, False for snippets whose crop was borrowed (no face
            found in them; :class:`dynsnip.data.FaceClip`'s ``face_found``): marked on the
            pictures.
        intra_layer, inter_layer: the maps the figures show by default (names as in
            ``dynsnip.record_attention``); default: see :func:`default_intra_layer` and the
            deepest Inter-SIM.

    Returns:
        an :class:`Explanation`. A model without SIMs gets empty ``intra``/``inter`` and a
        note saying so.

    The model is run in eval mode; its mode, ``requires_grad`` flags and ``.grad`` are left
    as they were.
    """
    if target not in ("fake", "real"):
        raise ValueError(f"target must be 'fake' or 'real', got {target!r}")
    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    x = _as_clip(clip, device, dtype)
    t = resolve_snippet_len(model, snippet_len)
    num_frames = x.shape[2]
    if num_frames % t:
        raise ValueError(f"the clip has {num_frames} frames, not a whole number of snippets of T={t}")
    u = num_frames // t
    if frames is None:
        mean, std = _normalisation(model, mean, std)
        frames = clip_to_frames(x, mean, std)
    else:
        frames = check_frames(frames, num_frames)
    size = tuple(frames.shape[1:3])
    notes: list[str] = []

    layer_name = cam_layer = None
    if gradcam:
        layer_name, cam_layer = resolve_layer(model, target_layer or default_target_layer(model), "target_layer")
    use_dil_head = call == "video" and feature_layer is None and classifier is None and has_dil_head(model)
    feat_module = None
    if not use_dil_head:
        feat = feature_layer if feature_layer is not None else (target_layer or cam_layer)
        if feat is not None:
            feat_module = resolve_layer(model, feat, "feature_layer")[1]
        classifier = classifier if classifier is not None else default_classifier(model)
    wrapper = VideoCall(model, t, call, feat_module, None if use_dil_head else classifier, score_clip=use_dil_head)

    sims = sim_modules(model)
    if not sims:
        notes.append(NO_SIMS_NOTE.format(model=type(model).__name__))
    training = model.training
    model.eval()
    try:
        with record_attention(model) if sims else nullcontext({}) as maps:
            if gradcam:
                from .gradcam import clip_gradcam

                cam_sizes: list[tuple[int, ...]] = []
                hook = cam_layer.register_forward_hook(
                    lambda m, i, o: cam_sizes.append(tuple(o.shape[-2:])) if isinstance(o, torch.Tensor) else None)
                try:  # the CAM is computed at the layer's grid and upsampled once, to the frames
                    cam, logits = clip_gradcam(wrapper, x, cam_layer, target, size=size)
                finally:
                    hook.remove()
                if cam_sizes and cam_sizes[0] == (1, 1):
                    notes.append(
                        f"the Grad-CAM layer {layer_name} outputs 1x1 at this input size ({x.shape[-2]}x{x.shape[-1]}): "
                        "the Grad-CAM is one value per frame spread over the face (a flat wash), not a location; "
                        "use the model's input size or an earlier layer (--cam-layer)"
                    )
            else:
                with torch.no_grad():
                    logits = wrapper(x)
                cam = None
    finally:
        model.train(training)
    notes.extend(wrapper.notes)

    from ..engine.failures import NON_FINITE_OUTPUT, NonFiniteError
    from ..scoring import fake_probability

    for name, values in (("video", logits), ("snippet", wrapper.snippet_logits)):
        if values is not None and not bool(torch.isfinite(values).all()):  # as predict fails it: no picture of a score
            raise NonFiniteError(NON_FINITE_OUTPUT, f"the model's {name} logits are not finite "
                                 f"({values.detach().float().flatten()[:4].tolist()}); expected finite logits: NaN / "
                                 "inf weights, an overflow, or a config.json whose mean / std are wrong")
    fake_prob = float(fake_probability(logits.float())[0])
    snippet_probs = None
    if wrapper.snippet_logits is not None:
        snippet_probs = fake_probability(wrapper.snippet_logits.float())[0].cpu().numpy().astype(np.float32)

    gradcam_map = None
    if cam is not None:
        gradcam_map = np.clip(cam, 0.0, 1.0)  # already at the frames' size (clip_gradcam)
        if not gradcam_map.any():
            notes.append(f"the Grad-CAM is zero everywhere: no location raises the {target} score")

    intra: dict[str, np.ndarray] = {}
    native: dict[str, tuple[int, int]] = {}
    inter: dict[str, np.ndarray] = {}
    for name, a in maps.items():
        if a.ndim == 4:  # (U, T, h, w): one clip
            native[name] = tuple(a.shape[-2:])
            intra[name] = _resize(a.reshape(num_frames, *a.shape[-2:]), size)
        else:  # (1, U, T)
            inter[name] = a[0].cpu().numpy().astype(np.float32)
    if sims and not intra:
        notes.append("the model has no Intra-SIM: no Intra-SMA maps")
    if sims and not inter:
        notes.append("the model has no Inter-SIM: no U x T map")

    if frame_indices is not None:
        frame_indices = np.asarray(frame_indices).reshape(u, t)
    return Explanation(
        frames=frames,
        gradcam=gradcam_map,
        intra=intra,
        inter=inter,
        fake_prob=fake_prob,
        snippet_probs=snippet_probs,
        num_snippets=u,
        snippet_len=t,
        target=target,
        target_layer=layer_name,
        intra_layer=_pick(intra_layer, intra, default_intra_layer(native), "intra_layer"),
        inter_layer=_pick(inter_layer, inter, next(reversed(inter), None), "inter_layer"),
        frame_indices=frame_indices,
        notes=notes,
        face_found=None if face_found is None else np.asarray(face_found, dtype=bool).reshape(u),
    )
