"""A labelled real/fake face-clip set that the package makes from its bundled real footage.

Why it exists: there are no public DIL weights and the DeepFake benchmarks cannot be shipped,
so the demo needs data on which the *method* can be shown to work. The task is built so
that **no single frame tells real from fake; only local temporal inconsistency does**,
which is exactly what DIL's Intra-SIM / Inter-SIM are for and what a frame-level detector
(the same backbone averaging per-frame logits) cannot see.

How a clip is made (:class:`FaceRerender`): the face crops of a real video get their
face region (a soft ellipse) re-rendered with a brightness gain and a red/blue colour
balance. Each of the two parameters is ``amplitude * p_t`` with ``p_t`` in [-1, 1]:

* **real** clips: ``p_t = sin(2*pi*t/P + phi)``, one random phase ``phi ~ U(0, 2*pi)`` and
  period ``P`` per clip: the re-rendering drifts smoothly over time, like lighting does
  (and like a temporally coherent re-render would);
* **fake** clips: ``p_t = sin(psi_t)`` with ``psi_t ~ U(0, 2*pi)`` drawn independently for
  every frame, as frame-by-frame face manipulation does.

For every frame ``t`` both give ``p_t`` the same distribution (the arcsine law of a sine at
a uniform phase, whatever ``P``), and the footage, the face crop and the mask are the same
for both labels; every window is used once as real and once as fake. So the distribution
of any single frame is *exactly* the same for the two classes, and a per-frame detector
is at chance by construction. What differs is only the frame-to-frame change of ``p_t``:
at most ``2*pi/P`` (0.26 at the shortest period) for real clips, ``8/pi**2 = 0.81`` on
average (anything up to 2) for fakes.

Footage (:func:`face_footage`): frames are decoded once with PyAV, the face is found with
dlib (every ``detect_every``-th frame, boxes followed from frame to frame, gaps filled and
smoothed, FF++ 1.3 margin) and the crops are kept in memory at the demo's small size.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from ..data._optional import require

np = require("numpy")

__all__ = [
    "FaceFootage",
    "face_footage",
    "FaceRerender",
    "smooth_path",
    "independent_path",
    "FlickerClips",
    "LABELS",
]

LABELS = {"real": 0, "fake": 1}


# --------------------------------------------------------------------------- footage
@dataclass
class FaceFootage:
    """Face crops of one real video, in memory.

    Attributes:
        name: short name (the video's file stem).
        crops: ``uint8 (F, S, S, 3)`` RGB face crops of consecutive frames.
        frame_indices: ``(F,)`` the video frames behind ``crops``.
        source: the video file.
        crop_boxes: ``(F, 4)`` integer ``(x0, y0, x1, y1)`` crop of each frame in video pixels.
    """

    name: str
    crops: "np.ndarray"
    frame_indices: "np.ndarray"
    source: Path
    crop_boxes: "np.ndarray | None" = None

    def __len__(self) -> int:
        return len(self.crops)


def _follow_face(detections: Sequence["np.ndarray"], face: int | None = None, min_iou: float = 0.3) -> "np.ndarray":
    """One box per frame (NaN where none): the largest face (``face=None``) or face number
    ``face`` from the left, in the first frame that has it; then in each frame the detection
    overlapping the previous box most (when none overlaps: the largest face again with
    ``face=None``, no box with a face index, so the track never jumps to another person)."""
    from ..data.faces.boxes import box_iou, largest_box

    out = np.full((len(detections), 4), np.nan)
    previous = None
    for i, found in enumerate(detections):
        found = np.asarray(found, dtype=np.float64)
        if found.size == 0:
            continue
        found = found.reshape(len(found), -1)[:, :4]
        chosen = None
        if previous is not None:
            overlaps = box_iou(previous, found)
            if overlaps.max() >= min_iou:
                chosen = found[int(np.argmax(overlaps))]
        elif face is not None and len(found) > face:
            chosen = found[np.argsort(found[:, 0])[face]]
        if chosen is None and face is None:
            chosen = largest_box(found)
        if chosen is not None:
            out[i] = previous = chosen
    return out


def _longest_run(mask: "np.ndarray") -> tuple[int, int]:
    """``(start, stop)`` of the longest run of True in ``mask`` (``(0, 0)`` if none)."""
    best, start = (0, 0), None
    for i, value in enumerate(list(mask) + [False]):
        if value and start is None:
            start = i
        elif not value and start is not None:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    return best


def face_footage(
    path: str | os.PathLike[str],
    size: int = 64,
    *,
    max_frames: int | None = 160,
    detect_every: int = 2,
    margin: float = 1.3,
    smooth_window: int = 5,
    face: int | None = None,
    detector=None,
) -> FaceFootage:
    """Decode a real video once and keep its face crops in memory.

    Args:
        path: a video file (e.g. one of :func:`dynsnip.data.bundled_videos`).
        size: side of the square crops in pixels (the demo uses 64: small enough for CPUs).
        max_frames: decode at most this many frames from the start (None: all).
        detect_every: run the face detector on every n-th frame only; the boxes between
            are filled from the nearest detection and smoothed (faces move little in
            ``n`` frames, and detection is the slowest step).
        margin: crop side / face-box side (1.3: the FaceForensics++ convention).
        smooth_window: frames in the moving average of the boxes (removes detector jitter,
            which temporal differences would read as motion).
        face: which face to follow: None = the largest, 0 = the leftmost, 1 = the next...
        detector: a face detector callable (default: dlib's HOG,
            :class:`dynsnip.data.DlibFaceDetector`).

    Returns:
        the crops of the longest stretch of frames in which a face is found within
        ``2 * detect_every`` frames (e.g. foreman's final pan away from the face is dropped).

    Raises:
        dynsnip.data.NoFaceError: no face anywhere in the decoded frames.
    """
    from ..data import DlibFaceDetector, VideoReader, crop_and_resize, fill_missing_boxes, smooth_boxes, square_crop_box
    from ..data.errors import NoFaceError

    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    if detect_every < 1:
        raise ValueError(f"detect_every must be >= 1, got {detect_every}")
    path = Path(path)
    detector = detector or DlibFaceDetector()
    with VideoReader(path) as video:
        stop = video.num_frames if max_frames is None else min(max_frames, video.num_frames)
        frames = np.stack([frame for _, frame in video.iter_frames(0, stop)])
        width, height = video.size
    detected_at = list(range(0, len(frames), detect_every))
    if detected_at[-1] != len(frames) - 1:
        detected_at.append(len(frames) - 1)
    boxes = np.full((len(frames), 4), np.nan)
    boxes[detected_at] = _follow_face([detector(frames[i]) for i in detected_at], face)
    found = np.flatnonzero(~np.isnan(boxes).any(axis=1))
    if len(found) == 0:
        raise NoFaceError(path, f"no face found in the first {len(frames)} frames; expected real face footage")
    distance = np.abs(np.arange(len(frames))[:, None] - found[None, :]).min(axis=1)
    start, stop = _longest_run(distance <= 2 * detect_every)
    boxes = fill_missing_boxes(boxes[start:stop])
    boxes = smooth_boxes(boxes, smooth_window)
    crop_boxes = np.array([square_crop_box(b, (width, height), margin) for b in boxes], dtype=np.int64)
    crops = crop_and_resize(frames[start:stop], crop_boxes, (size, size), "bilinear")
    name = path.stem if face is None else f"{path.stem}#face{face}"
    return FaceFootage(name, crops, np.arange(start, stop), path, crop_boxes)


# --------------------------------------------------------------------------- re-rendering
def smooth_path(num_frames: int, rng: "np.random.Generator", period: tuple[float, float]) -> "np.ndarray":
    """``sin(2*pi*t/P + phi)`` for ``t = 0..num_frames-1``; ``phi ~ U(0, 2*pi)``, ``P ~ U(period)``.

    At every ``t`` the value has the arcsine distribution on [-1, 1] (a sine at a uniform
    phase), the same as :func:`independent_path`.
    """
    p = rng.uniform(*period)
    phi = rng.uniform(0.0, 2 * math.pi)
    return np.sin(2 * math.pi * np.arange(num_frames) / p + phi)


def independent_path(num_frames: int, rng: "np.random.Generator") -> "np.ndarray":
    """``sin(psi_t)`` with ``psi_t ~ U(0, 2*pi)`` independent per frame: the same marginal as
    :func:`smooth_path`, no temporal coherence."""
    return np.sin(rng.uniform(0.0, 2 * math.pi, size=num_frames))


def face_mask(size: int, feather: float = 0.12) -> "np.ndarray":
    """Soft elliptical face-region mask ``(size, size, 1)`` in [0, 1] for a 1.3-margin crop.

    The face box fills the middle 1/1.3 of the crop; the ellipse covers it (slightly taller
    than wide, centred a little below the middle, where cheeks and mouth are) and fades
    to 0 over ``feather`` of the crop side, like the blending mask of a face swap.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    yy = (yy + 0.5) / size - 0.54
    xx = (xx + 0.5) / size - 0.5
    r = np.sqrt((xx / 0.33) ** 2 + (yy / 0.40) ** 2)  # 1 on the ellipse's border
    # (1 - r) * 0.36 approximates the distance to the border in crop sides (mean radius 0.36)
    mask = np.clip(0.5 + (1.0 - r) * 0.36 / feather, 0.0, 1.0)
    return mask[..., None]


@dataclass(frozen=True)
class FaceRerender:
    """Re-render the face region of crops with per-frame parameters (see module docstring).

    Args:
        brightness: amplitude of the gain ``1 + brightness * p0`` (0.3: +-30 %, a clearly
            visible change of the face's exposure, like a badly matched face swap).
        colour: amplitude of the red/blue balance ``R * (1 + colour * p1)``,
            ``B * (1 - colour * p1)`` (0.12).
        period: range of the real clips' period ``P`` in frames; (24, 72) at 25-30 fps is
            1-3 s per cycle, a slow drift compared to the 4-frame snippets (``p`` moves at
            most 0.26 per frame, against 0.81 on average for the fakes).
    """

    brightness: float = 0.3
    colour: float = 0.12
    period: tuple[float, float] = (24.0, 72.0)

    num_params = 2

    def paths(self, num_frames: int, fake: bool, rng: "np.random.Generator") -> "np.ndarray":
        """``(num_frames, 2)`` parameters in [-1, 1]: independent per frame if ``fake``, else smooth."""
        if fake:
            return np.stack([independent_path(num_frames, rng) for _ in range(self.num_params)], 1)
        return np.stack([smooth_path(num_frames, rng, self.period) for _ in range(self.num_params)], 1)

    def apply(self, crops: "np.ndarray", params: "np.ndarray") -> "np.ndarray":
        """Re-render ``crops (F, S, S, 3) uint8`` with ``params (F, 2)``; returns uint8."""
        if crops.ndim != 4 or crops.shape[-1] != 3 or crops.shape[1] != crops.shape[2]:
            raise ValueError(f"expected square RGB crops (F, S, S, 3), got {tuple(crops.shape)}")
        if params.shape != (len(crops), self.num_params):
            raise ValueError(f"expected params of shape ({len(crops)}, {self.num_params}), got {tuple(params.shape)}")
        x = crops.astype(np.float32)
        rendered = np.clip(x * self.channel_gains(params)[:, None, None, :], 0, 255)
        mask = face_mask(crops.shape[1]).astype(np.float32)
        out = x + mask * (rendered - x)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def channel_gains(self, params: "np.ndarray") -> "np.ndarray":
        """``(F, 3)`` float32 RGB gains of parameters ``(F, 2)``."""
        gain = 1.0 + self.brightness * params[:, 0]
        tint = self.colour * params[:, 1]
        return np.stack([gain * (1 + tint), gain, gain * (1 - tint)], axis=1).astype(np.float32)

    def apply_to_frames(self, frames: "np.ndarray", params: "np.ndarray", crop_boxes: "np.ndarray") -> "np.ndarray":
        """The same re-rendering on whole video frames ``(F, H, W, 3)``: the mask is placed in
        each frame's square face crop ``crop_boxes (F, 4)``. Used to write demo videos that
        ``dynsnip predict`` crops again itself."""
        out = frames.copy()
        gains = self.channel_gains(params)
        for i, (x0, y0, x1, y1) in enumerate(np.asarray(crop_boxes, dtype=np.int64)):
            region = frames[i, y0:y1, x0:x1].astype(np.float32)
            mask = face_mask(region.shape[0]).astype(np.float32)[:, : region.shape[1]]
            rendered = np.clip(region * gains[i], 0, 255)
            out[i, y0:y1, x0:x1] = np.clip(np.rint(region + mask * (rendered - region)), 0, 255).astype(np.uint8)
        return out


# --------------------------------------------------------------------------- dataset
@dataclass(frozen=True)
class ClipSpec:
    """One item: frames ``start .. start+length-1`` of footage ``footage``, as ``label``."""

    footage: int
    start: int
    length: int
    label: int
    draw: int


class FlickerClips(Dataset):
    """Real/fake clips re-rendered from in-memory face footage.

    Every window of ``window`` consecutive frames (every ``stride`` frames) of each footage
    gives ``draws`` real and ``draws`` fake items, so both classes see the same content.

    Args:
        footage: the :class:`FaceFootage` to use.
        num_snippets, snippet_len: U and T of the clips (snippets are placed by
            :func:`dynsnip.data.sample_snippets` inside the window: random offsets when
            ``train``, centred otherwise).
        window: frames per window (default ``num_snippets * snippet_len * 2``, so that
            training offsets have slack); footage shorter than this gives one window of
            all its frames.
        stride: frames between window starts (default ``window // 2``).
        draws: re-renderings per window and label.
        train: random snippet offsets, the paper's horizontal flip, and new re-render
            parameters every time an item is read (drawn from torch's global generator,
            so the training engine's per-epoch seeding makes epochs reproducible);
            otherwise fixed parameters from ``seed`` and the item index.
        seed: seed of the evaluation draws.
        rerender: the :class:`FaceRerender`.
        mean, std: normalisation (the model's data config; ImageNet by default).
        hflip_prob: flip probability when ``train``.
        labels: the labels each window gives (``(0,)``: real clips only).

    Items are ``(pixels (3, U*T, S, S) float32, label float32 scalar)``; :meth:`item_info`
    names the footage, window and label of an item (used in evaluation reports).
    """

    def __init__(
        self,
        footage: Sequence[FaceFootage],
        num_snippets: int = 2,
        snippet_len: int = 4,
        *,
        window: int | None = None,
        stride: int | None = None,
        draws: int = 1,
        train: bool = False,
        seed: int = 0,
        rerender: FaceRerender = FaceRerender(),
        mean: Sequence[float] = (0.485, 0.456, 0.406),
        std: Sequence[float] = (0.229, 0.224, 0.225),
        hflip_prob: float = 0.5,
        labels: Sequence[int] = (0, 1),
    ):
        if not footage:
            raise ValueError("FlickerClips needs at least one FaceFootage")
        self.footage = list(footage)
        self.num_snippets = int(num_snippets)
        self.snippet_len = int(snippet_len)
        self.window = int(window or num_snippets * snippet_len * 2)
        self.stride = int(stride or max(1, self.window // 2))
        self.train = train
        self.seed = seed
        self.rerender = rerender
        self.mean, self.std = tuple(mean), tuple(std)
        self.hflip_prob = hflip_prob
        self.items: list[ClipSpec] = []
        for f, clip in enumerate(self.footage):
            length = min(self.window, len(clip))
            starts = list(range(0, len(clip) - length + 1, self.stride)) or [0]
            for start in starts:
                for draw in range(draws):
                    for label in labels:
                        self.items.append(ClipSpec(f, start, length, label, draw))

    def __len__(self) -> int:
        return len(self.items)

    def item_info(self, index: int) -> dict:
        """``id`` (unique per item), ``footage``, ``label``, ``method`` of item ``index``."""
        spec = self.items[index]
        name = self.footage[spec.footage].name
        label = "fake" if spec.label else "real"
        return dict(
            id=f"{name}@{spec.start}+{spec.length}#{spec.draw}:{label}",
            footage=name,
            label=spec.label,
            method="flicker" if spec.label else "real",
        )

    def _rng(self, index: int) -> "np.random.Generator":
        if self.train:
            return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        return np.random.default_rng([self.seed, index])

    def sample(self, index: int) -> tuple[ClipSpec, "np.ndarray", "np.random.Generator"]:
        """Item ``index``'s spec, the window frames its U snippets use ``(U*T,)`` and the
        generator of its remaining randomness."""
        from ..data import sample_snippets

        spec = self.items[index]
        rng = self._rng(index)
        generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        indices = sample_snippets(
            spec.length, self.num_snippets, self.snippet_len, train=self.train, generator=generator
        ).flatten().numpy()
        return spec, indices, rng

    def render(self, index: int) -> tuple["np.ndarray", int]:
        """The clip's frames ``uint8 (U*T, S, S, 3)`` (before normalisation/flip) and its label."""
        spec, indices, rng = self.sample(index)
        params = self.rerender.paths(spec.length, bool(spec.label), rng)[indices]
        crops = self.footage[spec.footage].crops[spec.start + indices]
        return self.rerender.apply(crops, params), spec.label

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        from ..data import frames_to_tensor, random_horizontal_flip

        frames, label = self.render(index)
        pixels = frames_to_tensor(frames, self.mean, self.std)
        if self.train:
            pixels = random_horizontal_flip(pixels, self.hflip_prob)
        return pixels, torch.tensor(float(label))
