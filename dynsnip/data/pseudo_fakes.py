"""Video pseudo-fakes from real clips: self-blended faces whose blend is consistent or not over time.

A pseudo-fake is a real face blended with a transformed copy of *itself* inside a
face-shaped mask (Self-Blended Images, Shiohara & Yamasaki, CVPR 2022): the detector learns
the traces every face swap leaves (a blending boundary, a colour / sharpness / alignment
mismatch between the inner face and its surroundings) without any fake video. Face swaps
made frame by frame also leave *temporal* traces: the blend boundary, the colour match and
the alignment of the inner face change from one frame to the next. That is what DIL's
Intra-SIM looks for, so the generator controls the two parts separately.

Per frame ``t`` of a clip ``x`` (values in [0, 1])::

    source_t = colour_t(sharpen(warp_t(x_t)))       # the same frame, transformed
    mask_t   = alpha_t * face_mask_t                 # deformed, feathered face-shaped mask
    fake_t   = x_t + mask_t * (source_t - x_t)       # = x_t wherever mask_t == 0

* ``warp_t``: scale by ``s_t`` around the face centre and translate by ``(dx_t, dy_t)``
  (fractions of the face box side; sub-pixel, bicubic).
* ``sharpen``: ``x + k * (x - blur(x))``, ``k < 0`` blurs, ``k > 0`` sharpens (per clip).
* ``colour_t``: per-channel gain ``1 + g_t`` and offset ``o_t``.
* ``face_mask_t``: an ellipse in the face box (or fitted to the five keypoints of the face
  detector when given), its radius deformed by ``1 + sum_k a_k cos(k*theta + phi_k)``,
  k = 2, 3, and feathered over ``f_t`` of its radius (the soft edge of a blurred mask).
  Its support always lies inside the face box.

Modes (:data:`MODES`): which parameters are drawn once per clip and which per frame.

* ``spatial``: every parameter drawn **once per clip** (SBI on every frame with the same
  blend): a per-frame artefact only, as a face swap with a temporally stable blend leaves
  (e.g. a well-tracked face swap / reenactment rendered with a fixed colour transfer).
* ``temporal``: no per-clip artefact (identity source), but **small per-frame jumps** of
  the translation, colour offset, mask shape, feather and blend ratio. Every frame's
  parameters are drawn from the same distribution (a stationary process, see
  ``correlation``), and they are small, so a single frame stays within the range of real
  frames (a frame-level statistic cannot separate them, see ``tests``); only the
  frame-to-frame change of the blend gives it away. Imitates the flicker and jitter of
  frame-by-frame face swaps (Deepfakes / FaceSwap in FF++: each frame's face is aligned,
  colour-corrected and blended independently, and the blend boundary "boils"). Training
  pairs it with its **consistent twin**, the same blend drifting smoothly over the clip
  (``twin_correlation``), as the real clip: then every frame has *exactly* the same
  distribution in both classes, by construction.
* ``both``: the per-clip artefact of ``spatial`` plus the per-frame jumps of ``temporal``,
  as most real face swaps have both.

Magnitudes (:data:`MAGNITUDES`): ``weak``, ``medium`` (default), ``strong``; each names a
:class:`BlendRanges` for the per-clip part and one for the per-frame part.

Layout: clips are ``(F, H, W, 3)`` uint8 (:meth:`PseudoFakeGenerator.__call__`) or
``(3, F, H, W)`` float in [0, 1] (:meth:`PseudoFakeGenerator.blend_tensor`), frames
ordered snippet by snippet (``F = U * T``); masks are ``(F, H, W)`` float32 in [0, 1].
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange

from ._optional import require

np = require("numpy")

__all__ = [
    "MODES", "MAGNITUDES", "BlendRanges", "BlendParams", "PseudoFake", "PseudoFakeGenerator",
    "crop_face_box", "face_region_mask",
]

Mode = Literal["spatial", "temporal", "both"]
MODES: tuple[str, ...] = ("spatial", "temporal", "both")

KEYPOINT_ORDER = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class BlendRanges:
    """Ranges of the blend parameters of one part (per clip or per frame).

    Attributes:
        translate: max ``|dx|``, ``|dy|`` of the source, fraction of the face box side.
        scale: max ``|s - 1|`` of the source around the face centre.
        colour: max ``|o|`` of the per-channel offset (0-1 pixel scale).
        gain: max ``|g|`` of the brightness gain ``1 + g`` (shared by the channels).
        sharpness: max ``|k|`` of ``x + k (x - blur(x))`` (per-clip part only).
        deform: max amplitude ``|a_k|`` of each of the two radial deformation harmonics.
        feather: ``(lo, hi)`` soft edge of the mask, fraction of its radius.
        alpha: ``(lo, hi)`` blend ratio.
    """

    translate: float = 0.0
    scale: float = 0.0
    colour: float = 0.0
    gain: float = 0.0
    sharpness: float = 0.0
    deform: float = 0.0
    feather: tuple[float, float] = (0.2, 0.5)
    alpha: tuple[float, float] = (0.5, 1.0)


# Per-clip part: SBI's source transforms at roughly its scale (colour shifts of a few %,
# a few % of scale / translation, blur or sharpening). Per-frame part of weak / medium: an
# order of magnitude smaller, so that a single frame stays within the range of real ones
# (tested for medium); strong adds a visible colour / brightness flicker of the face (up to
# 15 %, a badly colour-matched frame-by-frame swap): with the consistent twin the classes
# still have the same distribution at every frame, and it is what a small network trained
# from scratch learns within the demo's budget (the medium jitter was not learnt in 8 epochs).
MAGNITUDES: dict[str, dict[str, BlendRanges]] = {
    "weak": dict(
        clip=BlendRanges(translate=0.01, scale=0.02, colour=0.03, gain=0.04, sharpness=0.5, deform=0.05),
        frame=BlendRanges(translate=0.01, colour=0.003, deform=0.04, alpha=(0.7, 1.0)),
    ),
    "medium": dict(
        clip=BlendRanges(translate=0.02, scale=0.04, colour=0.06, gain=0.08, sharpness=1.0, deform=0.08),
        frame=BlendRanges(translate=0.02, colour=0.006, deform=0.06, alpha=(0.7, 1.0)),
    ),
    "strong": dict(
        clip=BlendRanges(translate=0.03, scale=0.06, colour=0.10, gain=0.12, sharpness=1.5, deform=0.10),
        frame=BlendRanges(translate=0.03, colour=0.06, gain=0.15, deform=0.08, alpha=(0.7, 1.0)),
    ),
}


@dataclass
class BlendParams:
    """The drawn parameters of one clip, one row per frame (``F`` frames)."""

    translate: np.ndarray  # (F, 2) fraction of the face side
    scale: np.ndarray  # (F,)
    colour: np.ndarray  # (F, 3)
    gain: np.ndarray  # (F,)
    sharpness: float
    deform: np.ndarray  # (F, 2, 2): harmonics k=2,3 x (amplitude, phase)
    feather: np.ndarray  # (F,)
    alpha: np.ndarray  # (F,)


@dataclass
class PseudoFake:
    """A generated pseudo-fake: ``frames`` like the input, ``masks (F, H, W)`` the blend
    mask ``alpha_t * face_mask_t`` of each frame, ``params`` what was drawn."""

    frames: "np.ndarray | torch.Tensor"
    masks: "np.ndarray | torch.Tensor"
    params: BlendParams


def crop_face_box(height: int, width: int, margin: float = 1.3) -> np.ndarray:
    """The face box ``(x0, y0, x1, y1)`` of a face crop made with ``margin`` (crop side /
    face side, 1.3 for ``dynsnip extract-faces`` and the FF++ convention): its middle part."""
    side_x, side_y = width / margin, height / margin
    return np.array([(width - side_x) / 2, (height - side_y) / 2, (width + side_x) / 2, (height + side_y) / 2])


def _stationary_uniform(rng: "np.random.Generator", num_frames: int, shape: tuple[int, ...], correlation: float,
                        snippet_len: int) -> np.ndarray:
    """``(num_frames, *shape)`` values with a U(-1, 1) marginal at **every** frame.

    A Gaussian AR(1) process ``z_t = rho z_{t-1} + sqrt(1 - rho^2) e_t`` started from its
    stationary law (restarted at every snippet: snippets are far apart in the video) is
    mapped through the normal CDF: ``rho = 0`` jumps independently per frame, ``rho -> 1``
    drifts; either way no frame's distribution differs from another's.
    """
    z = rng.standard_normal((num_frames, *shape))
    rho = float(correlation)
    if rho:
        noise = math.sqrt(1.0 - rho * rho)
        for t in range(1, num_frames):
            if t % snippet_len:
                z[t] = rho * z[t - 1] + noise * z[t]
    return torch.erf(torch.from_numpy(z / math.sqrt(2.0))).numpy()  # 2 * Phi(z) - 1 ~ U(-1, 1)


def face_region_mask(
    height: int,
    width: int,
    boxes: np.ndarray,
    deform: np.ndarray,
    feather: np.ndarray,
    keypoints: np.ndarray | None = None,
) -> torch.Tensor:
    """Face-shaped soft masks ``(F, H, W)`` float32 whose support lies inside ``boxes``.

    Args:
        height, width: frame size.
        boxes: ``(F, 4)`` face boxes ``(x0, y0, x1, y1)`` in pixels.
        deform: ``(F, 2, 2)`` amplitude and phase of the radial harmonics k = 2, 3.
        feather: ``(F,)`` width of the soft edge, fraction of the radius.
        keypoints: optional ``(F, 5, 2)`` ``(x, y)`` in the order of :data:`KEYPOINT_ORDER`
            (MTCNN / RetinaFace's five points): the ellipse is then fitted to the face
            (centre between eyes and mouth, axes from the eye distance and the eye-mouth
            distance, tilted with the eye line); without them an upright ellipse fills the box.

    The ellipse's base radii are shrunk by ``1 + sum |a_k|`` so that the deformed shape
    never leaves its box; with keypoints the mask is also cut at the box.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    grow = 1.0 + np.abs(deform[:, :, 0]).sum(axis=1)  # (F,)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    rx, ry = (boxes[:, 2] - boxes[:, 0]) / 2 / grow, (boxes[:, 3] - boxes[:, 1]) / 2 / grow
    tilt = np.zeros(n)
    if keypoints is not None:
        kp = np.asarray(keypoints, dtype=np.float64).reshape(n, 5, 2)
        eyes, mouth = kp[:, 0:2].mean(axis=1), kp[:, 3:5].mean(axis=1)
        eye_vec = kp[:, 1] - kp[:, 0]
        eye_dist = np.linalg.norm(eye_vec, axis=1)
        eye_mouth = np.linalg.norm(mouth - eyes, axis=1)
        centre = (eyes + mouth) / 2
        cx, cy = centre[:, 0], centre[:, 1]
        # a face is about 2 eye distances wide and 2.6 eye-mouth distances tall (forehead to chin)
        rx, ry = 1.0 * eye_dist / grow, 1.3 * eye_mouth / grow
        tilt = np.arctan2(eye_vec[:, 1], eye_vec[:, 0])
    as_t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32).view(-1, 1, 1)  # noqa: E731
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32) + 0.5,
                            torch.arange(width, dtype=torch.float32) + 0.5, indexing="ij")
    dx, dy = xx[None] - as_t(cx), yy[None] - as_t(cy)
    cos, sin = torch.cos(as_t(tilt)), torch.sin(as_t(tilt))
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos  # face-aligned coordinates
    theta = torch.atan2(v / as_t(ry), u / as_t(rx))
    d = torch.as_tensor(deform, dtype=torch.float32)
    radius = 1.0 + sum(d[:, i, 0].view(-1, 1, 1) * torch.cos((i + 2) * theta + d[:, i, 1].view(-1, 1, 1))
                       for i in range(d.shape[1]))
    rho = torch.sqrt((u / as_t(rx)) ** 2 + (v / as_t(ry)) ** 2) / radius
    edge = ((1.0 - rho) / as_t(np.maximum(feather, 1e-3))).clamp(0.0, 1.0)
    mask = edge * edge * (3.0 - 2.0 * edge)  # smoothstep: a blurred edge, exactly 0 outside the shape
    if keypoints is not None:
        inside = ((xx[None] >= as_t(boxes[:, 0])) & (xx[None] <= as_t(boxes[:, 2]))
                  & (yy[None] >= as_t(boxes[:, 1])) & (yy[None] <= as_t(boxes[:, 3])))
        mask = mask * inside
    return mask


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)`` with reflected borders."""
    radius = max(1, int(math.ceil(2.5 * sigma)))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    pad_x = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    x = F.conv2d(pad_x, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    pad_y = F.pad(x, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(pad_y, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


@dataclass(frozen=True)
class PseudoFakeGenerator:
    """Makes video pseudo-fakes from real clips (see module docstring). Deterministic: the
    same clip, boxes and seed give the same pseudo-fake.

    Args:
        mode: ``"spatial"``, ``"temporal"`` or ``"both"`` (:data:`MODES`).
        magnitude: ``"weak"``, ``"medium"`` or ``"strong"`` (:data:`MAGNITUDES`).
        correlation: frame-to-frame correlation of the per-frame part, in [0, 1): 0 (default)
            draws it independently for every frame (the parameters *jump*, as independent
            per-frame swaps do); close to 1 they *drift*. The distribution at any single
            frame is the same whatever this is.
        margin: crop side / face side of face crops given without boxes (1.3: dynsnip's
            ``extract-faces`` and FF++).
        blur_sigma: the blur of the sharpness transform, fraction of the face side (0.02).
        twin_correlation: the correlation of the **consistent twin** (0.98): the same blend
            drifting smoothly instead of jumping. ``temporal`` training uses the twin as the real
            clip (:attr:`real_is_twin`), so both classes have exactly the same distribution at
            every frame and only the frame-to-frame change tells them apart (a blend of this
            size with sub-pixel resampling is otherwise visible to a frame-level CNN: measured
            AUC 0.77 on held-out people in ``docs/pseudo_fakes.md``).
    """

    mode: str = "both"
    magnitude: str = "medium"
    correlation: float = 0.0
    margin: float = 1.3
    blur_sigma: float = 0.02
    twin_correlation: float = 0.98
    ranges: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"pseudo-fake mode must be one of {MODES}, got {self.mode!r}")
        if self.magnitude not in MAGNITUDES:
            raise ValueError(f"pseudo-fake magnitude must be one of {tuple(MAGNITUDES)}, got {self.magnitude!r}")
        for name in ("correlation", "twin_correlation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        object.__setattr__(self, "ranges", MAGNITUDES[self.magnitude])

    @property
    def real_is_twin(self) -> bool:
        """True in ``temporal`` mode: the real side of a training pair is the consistent twin
        (:meth:`__call__` with ``twin=True``), not the untouched clip."""
        return self.mode == "temporal"

    def describe(self) -> dict:
        """What to record in a run's settings."""
        return dict(mode=self.mode, magnitude=self.magnitude, correlation=self.correlation, margin=self.margin,
                    twin_correlation=self.twin_correlation, real_is_twin=self.real_is_twin,
                    clip=asdict(self.ranges["clip"]), frame=asdict(self.ranges["frame"]))

    # ------------------------------------------------------------------ parameters
    def draw(self, num_frames: int, rng: "np.random.Generator", snippet_len: int | None = None,
             twin: bool = False) -> BlendParams:
        """Parameters of one clip of ``num_frames`` frames (see module docstring for the modes);
        ``twin``: of the consistent twin (the per-frame part drifts with ``twin_correlation``)."""
        snippet_len = int(snippet_len or num_frames)
        clip_part, frame_part = self.mode in ("spatial", "both"), self.mode in ("temporal", "both")
        c, f = self.ranges["clip"], self.ranges["frame"]
        n = num_frames
        once = lambda *shape: np.broadcast_to(rng.uniform(-1, 1, shape), (n, *shape)).copy()  # noqa: E731
        correlation = self.twin_correlation if twin else self.correlation
        each = lambda *shape: _stationary_uniform(rng, n, shape, correlation, snippet_len)  # noqa: E731
        zero = lambda *shape: np.zeros((n, *shape))  # noqa: E731
        translate = (once(2) * c.translate if clip_part else zero(2)) + (each(2) * f.translate if frame_part else 0)
        scale = 1.0 + (once() * c.scale if clip_part else zero())
        colour = (once(3) * c.colour if clip_part else zero(3)) + (each(3) * f.colour if frame_part else 0)
        gain = (once() * c.gain if clip_part else zero()) + (each() * f.gain if frame_part else 0)
        sharpness = float(rng.uniform(-1, 1) * c.sharpness) if clip_part else 0.0
        shape_ranges = f if frame_part else c
        pick = each if frame_part else once
        unit = lambda values: (values + 1) / 2  # noqa: E731  U(-1, 1) -> U(0, 1)
        amplitude = pick(2) * shape_ranges.deform
        phase = unit(pick(2)) * 2 * math.pi
        deform = np.stack([amplitude, phase], axis=-1)
        lo, hi = shape_ranges.feather
        feather = lo + unit(pick()) * (hi - lo)
        lo, hi = shape_ranges.alpha
        alpha = lo + unit(pick()) * (hi - lo)
        return BlendParams(translate, scale, colour, gain, sharpness, deform, feather, alpha)

    # ------------------------------------------------------------------ blending
    def blend_tensor(
        self,
        clip: torch.Tensor,
        params: BlendParams,
        boxes: np.ndarray | None = None,
        keypoints: np.ndarray | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Blend ``clip (3, F, H, W)`` float in [0, 1] with ``params``.

        Returns ``(pseudo-fake (3, F, H, W) in [0, 1], masks (F, H, W))``; outside the
        support of a frame's mask the pseudo-fake equals the input exactly.
        """
        if clip.ndim != 4 or clip.shape[0] != 3:
            raise ValueError(f"expected a clip (3, F, H, W), got {tuple(clip.shape)}")
        _, n, height, width = clip.shape
        boxes = self._boxes(boxes, n, height, width)
        x = rearrange(clip.float(), "c f h w -> f c h w")
        side = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))  # (F,)
        source = self._warp(x, params, boxes, side)
        if params.sharpness:
            sigma = max(0.5, self.blur_sigma * float(side.mean()))
            source = source + params.sharpness * (source - _gaussian_blur(source, sigma))
        gain = torch.as_tensor(1.0 + params.gain, dtype=torch.float32).view(n, 1, 1, 1)
        offset = torch.as_tensor(params.colour, dtype=torch.float32).view(n, 3, 1, 1)
        source = (source * gain + offset).clamp(0.0, 1.0)
        mask = face_region_mask(height, width, boxes, params.deform, params.feather, keypoints)
        mask = mask * torch.as_tensor(params.alpha, dtype=torch.float32).view(n, 1, 1)
        out = x + mask[:, None] * (source - x)
        return rearrange(out, "f c h w -> c f h w"), mask

    def __call__(
        self,
        frames: np.ndarray,
        *,
        boxes: np.ndarray | None = None,
        keypoints: np.ndarray | None = None,
        seed: int | Sequence[int] | None = None,
        rng: "np.random.Generator | None" = None,
        snippet_len: int | None = None,
        twin: bool = False,
    ) -> PseudoFake:
        """The pseudo-fake of ``frames (F, H, W, 3)`` uint8 RGB (``twin``: its consistent twin).

        Args:
            boxes: ``(F, 4)`` face boxes in frame pixels (default: the frames are face crops
                made with ``margin``: the box is their middle part, :func:`crop_face_box`).
            keypoints: optional ``(F, 5, 2)`` five facial points per frame (a face-shaped
                mask fitted to them; :data:`KEYPOINT_ORDER`).
            seed / rng: the randomness (one of them; same seed, same pseudo-fake).
            snippet_len: T; the per-frame process restarts at every snippet (only matters
                with ``correlation > 0``).

        Returns:
            :class:`PseudoFake` with uint8 ``frames (F, H, W, 3)`` (identical to the input
            wherever the mask is 0) and float32 ``masks (F, H, W)``.
        """
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 RGB frames (F, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
        if rng is None:
            rng = np.random.default_rng(seed)
        params = self.draw(len(frames), rng, snippet_len, twin)
        clip = rearrange(torch.from_numpy(frames.astype(np.float32) / 255.0), "f h w c -> c f h w")
        out, mask = self.blend_tensor(clip, params, boxes, keypoints)
        fake = torch.round(rearrange(out, "c f h w -> f h w c") * 255.0).clamp(0, 255).to(torch.uint8).numpy()
        fake = np.where(mask.numpy()[..., None] > 0, fake, frames)  # bit-exact outside the mask
        return PseudoFake(fake, mask.numpy(), params)

    # ------------------------------------------------------------------ helpers
    def _boxes(self, boxes: np.ndarray | None, n: int, height: int, width: int) -> np.ndarray:
        if boxes is None:
            return np.tile(crop_face_box(height, width, self.margin), (n, 1))
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.shape == (4,):
            boxes = np.tile(boxes, (n, 1))
        if boxes.shape != (n, 4) or not np.isfinite(boxes).all():
            raise ValueError(f"expected finite face boxes (F={n}, 4) (x0, y0, x1, y1), got shape {boxes.shape}")
        if ((boxes[:, 2] - boxes[:, 0]) < 2).any() or ((boxes[:, 3] - boxes[:, 1]) < 2).any():
            raise ValueError("face boxes must be at least 2 pixels wide and tall (x1 > x0, y1 > y0)")
        return boxes

    @staticmethod
    def _warp(x: torch.Tensor, params: BlendParams, boxes: np.ndarray, side: np.ndarray) -> torch.Tensor:
        """``x (F, 3, H, W)`` scaled by ``s`` around the face centre and shifted by ``translate * side``."""
        n, _, height, width = x.shape
        if not np.any(params.translate) and np.all(params.scale == 1.0):
            return x
        s = params.scale
        centre = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
        shift = params.translate * side[:, None]  # pixels
        theta = np.zeros((n, 2, 3))
        for axis, size in ((0, width), (1, height)):
            # output pixel p samples c + (p - c - shift) / s; in grid_sample's [-1, 1] coordinates
            theta[:, axis, axis] = 1.0 / s
            theta[:, axis, 2] = (1.0 / s - 1.0) + 2.0 * (centre[:, axis] * (1.0 - 1.0 / s) - shift[:, axis] / s) / size
        grid = F.affine_grid(torch.as_tensor(theta, dtype=torch.float32), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bicubic", padding_mode="border", align_corners=False)
