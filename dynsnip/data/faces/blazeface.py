"""BlazeFace (Bazarevsky et al., 2019): MediaPipe's single-shot face detectors as torch modules.

Two networks, both mapping an RGB image scaled to ``[-1, 1]`` to, per anchor, a face logit and
16 regression values (box centre x, y, width, height, then six keypoints x, y; input pixels,
relative to the anchor's centre). Layouts are ``(B, C, H, W)``:

* :class:`BlazeFaceShortRange`: ``(B, 3, 128, 128)`` -> 896 anchors (a 16x16 grid with 2
  anchors per cell, an 8x8 grid with 6). Faces that fill a good part of the image (MediaPipe:
  "within 2 m of the camera"). A 5x5 stem and 16 :class:`BlazeBlock` s (depthwise 3x3 +
  pointwise 1x1, residual; TensorFlow "SAME" padding, channel-padded max-pool shortcut where
  the block strides).
* :class:`BlazeFaceFullRange`: ``(B, 3, 192, 192)`` -> 2304 anchors (a 48x48 grid, one per
  cell). Faces at any distance ("within 5 m"). A feature pyramid: a 3x3 stem, bottleneck
  :class:`ResidualBlock` s at 96, 48, 24, 12 and 6 px, then back up to 48 px through
  bilinear upsampling and 1x1 lateral connections; the heads end in a strided depthwise
  convolution and a depth-to-space step.

:class:`BlazeFace` wraps either network with the post-processing MediaPipe's face-detection
graph documents (``face_detection_{short,full}_range.pbtxt``): the image is letterboxed into
the square input (aspect kept, black borders), the SSD anchors of
``SsdAnchorsCalculator`` (fixed size, offset 0.5; :func:`anchor_centres`), the decoding of
``TensorsToDetectionsCalculator`` (``reverse_output_order``: x before y; score = sigmoid of the
logit clipped to +-100; :func:`decode`), and the *weighted* non-maximum suppression of
``NonMaxSuppressionCalculator`` (IoU > 0.3 clusters a face's candidates, whose boxes and
keypoints are averaged with their scores as weights; :func:`weighted_nms`). Output rows are
box, score and the six keypoints (:data:`KEYPOINTS`).

The weights are MediaPipe's (Apache-2.0), from the TFLite files of the ``mediapipe==0.10.21``
wheel (float16, the full-range model's pointwise kernels stored sparse), converted to
float32 by ``tools/convert_blazeface_weights.py`` into the bundled
``dynsnip/assets/blazeface/blazeface.safetensors`` (licence and notice beside it). The
networks here are written for this package from the TFLite graphs (op by op; the tool checks
the outputs against TFLite's interpreter); no MediaPipe code is used. The modules'
construction order is the graphs' convolution order, which is how the tool names the
tensors.

Face *selection* is not done here: every face above ``min_score`` is returned, and callers keep
the largest face and follow it (:mod:`dynsnip.data.faces.boxes`). The scores weight the
candidates *of one face* in the suppression; they never choose between faces.
"""
from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

WEIGHTS_FILE = Path(__file__).resolve().parents[2] / "assets" / "blazeface" / "blazeface.safetensors"
MODELS = ("short", "full")
# MediaPipe's face-detection keypoints, in the order of the network's outputs (the person's right eye is on
# the left of an unmirrored image)
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear_tragion", "left_ear_tragion")
NUM_COORDS = 16  # per anchor: box (x, y, w, h) + 6 keypoints (x, y)
SCORE_CLIP = 100.0  # TensorsToDetectionsCalculator's score_clipping_thresh


def _nhwc_pad(x: torch.Tensor, pads: Sequence[int]) -> torch.Tensor:
    """Zero padding ``(left, right, top, bottom[, channels_before, channels_after])`` of a channels-last
    ``(B, C, H, W)`` tensor, done on its NHWC view so that the result stays channels-last (a plain
    ``F.pad`` would return a contiguous NCHW tensor, and every later op would pay a layout copy)."""
    left, right, top, bottom, *channels = pads
    nhwc = F.pad(x.permute(0, 2, 3, 1), (*(channels or (0, 0)), left, right, top, bottom))
    return nhwc.permute(0, 3, 1, 2)


def _same_padding(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow's "SAME" padding: output ``ceil(size / stride)``, the odd pixel of padding at the
    bottom/right (for a stride of 2 on an even size, all of it)."""
    height, width = x.shape[-2:]
    pads = []
    for size in (width, height):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return _nhwc_pad(x, pads)


# a strided "SAME" conv pads its input explicitly when it has at most this many channels (_conv_same)
PAD_COPY_MAX_CHANNELS = 4


def _conv_same(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv`` (odd kernel k, stride s, no padding of its own) with TensorFlow's "SAME" padding.

    Stride 1: symmetric padding (k - 1) / 2. Stride 2 on even sizes (all of this network's), where
    "SAME" pads one pixel more after than before: the kernel is grown by a zero row and column in
    front and the convolution padded symmetrically by (k - 1) / 2, which reads exactly the same
    pixels; this avoids padding the activation (a copy of it, which cost as much as the network's
    convolutions). Other cases pad explicitly, and so does the stem (at most
    :data:`PAD_COPY_MAX_CHANNELS` input channels: the RGB input is a small copy, and its 5x5
    kernel grown to 6x6 took 44% more multiply-adds, a third of the short-range network's; padded,
    the stem took 0.75x the time, with the same output bits).
    """
    k, s = conv.kernel_size[0], conv.stride[0]
    if s == 1:
        return F.conv2d(x, conv.weight, conv.bias, 1, (k - 1) // 2, 1, conv.groups)
    if s == 2 and x.shape[-1] % 2 == 0 and x.shape[-2] % 2 == 0 and x.shape[1] > PAD_COPY_MAX_CHANNELS:
        return F.conv2d(x, F.pad(conv.weight, (1, 0, 1, 0)), conv.bias, 2, (k - 1) // 2, 1, conv.groups)
    return conv(_same_padding(x, k, s))


def _depth_to_space(x: torch.Tensor, block: int = 2) -> torch.Tensor:
    """TensorFlow's DEPTH_TO_SPACE (channels ordered block row, block column, channel):
    ``(B, block*block*C, H, W)`` -> ``(B, C, H*block, W*block)``. (torch's ``pixel_shuffle``
    orders the channels the other way round.)"""
    return rearrange(x, "b (i j c) h w -> b c (h i) (w j)", i=block, j=block)


class BlazeBlock(nn.Module):
    """Short-range block: ``relu(pointwise(depthwise3x3(x)) + shortcut(x))``, ``(B, C_in, H, W)`` ->
    ``(B, C_out, H/stride, W/stride)``; the shortcut max-pools when the block strides and is padded
    with zero channels up to ``C_out``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.stride = stride
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pointwise(_conv_same(x, self.depthwise))
        shortcut = F.max_pool2d(x, 2) if self.stride == 2 else x
        # the shortcut padded with zero channels: added to the first channels only (``out`` is this block's own
        # temporary, changed in place)
        out[:, :shortcut.shape[1]] += shortcut
        return out.relu_()


class BlazeFaceShortRange(nn.Module):
    """The short-range network: ``(B, 3, 128, 128)`` in ``[-1, 1]`` -> regression ``(B, 896, 16)``,
    face logits ``(B, 896)``; anchors ordered grid row, grid column, anchor (16x16x2, then 8x8x6)."""

    input_size = 128
    strides = (8, 16, 16, 16)  # SsdAnchorsCalculator: four layers, the last three share a grid
    interpolated_anchor = True  # an extra anchor per layer (interpolated_scale_aspect_ratio 1.0)

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 24, 5, 2)
        channels_16 = [(24, 24, 1), (24, 28, 1), (28, 32, 2), (32, 36, 1), (36, 42, 1), (42, 48, 2),
                       (48, 56, 1), (56, 64, 1), (64, 72, 1), (72, 80, 1), (80, 88, 1)]
        self.backbone_16 = nn.Sequential(*(BlazeBlock(*c) for c in channels_16))  # -> (B, 88, 16, 16)
        self.backbone_8 = nn.Sequential(BlazeBlock(88, 96, 2), *(BlazeBlock(96, 96) for _ in range(4)))  # -> 8x8
        self.scores_16 = nn.Conv2d(88, 2, 1)  # 2 anchors per cell of the 16x16 grid
        self.scores_8 = nn.Conv2d(96, 6, 1)  # 6 anchors per cell of the 8x8 grid
        self.boxes_16 = nn.Conv2d(88, 2 * NUM_COORDS, 1)
        self.boxes_8 = nn.Conv2d(96, 6 * NUM_COORDS, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _conv_same(x, self.stem).relu_()
        fine = self.backbone_16(x)
        coarse = self.backbone_8(fine)
        logits = torch.cat([rearrange(self.scores_16(fine), "b a h w -> b (h w a)"),
                            rearrange(self.scores_8(coarse), "b a h w -> b (h w a)")], dim=1)
        boxes = torch.cat([rearrange(self.boxes_16(fine), "b (a k) h w -> b (h w a) k", k=NUM_COORDS),
                           rearrange(self.boxes_8(coarse), "b (a k) h w -> b (h w a) k", k=NUM_COORDS)], dim=1)
        return boxes, logits


class SeparableConv(nn.Module):
    """Full-range unit: depthwise 3x3 (zero padding 1, ``stride``) then pointwise 1x1, both with
    bias (batch norm folded in), ReLU after when ``relu``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, relu: bool = False):
        super().__init__()
        self.depthwise = nn.Conv2d(in_channels, in_channels, 3, stride, padding=1, groups=in_channels)
        self.pointwise = nn.Conv2d(in_channels, out_channels, 1)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pointwise(self.depthwise(x))
        return x.relu_() if self.relu else x


class ResidualBlock(nn.Module):
    """Full-range bottleneck: ``relu(x + sep(relu(sep(x))))`` through ``mid`` channels, ``(B, C, H, W)``."""

    def __init__(self, channels: int, mid: int):
        super().__init__()
        self.reduce = SeparableConv(channels, mid, relu=True)
        self.expand = SeparableConv(mid, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expand(self.reduce(x)).add_(x).relu_()


def _stage(channels: int, mid: int, blocks: int) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels, mid) for _ in range(blocks)))


def _downsample(in_channels: int, mid: int, out_channels: int) -> nn.Sequential:
    """Halve the resolution: a strided separable conv to ``mid`` channels, a second one to ``out``."""
    return nn.Sequential(SeparableConv(in_channels, mid, 2, relu=True), SeparableConv(mid, out_channels, relu=True))


class BlazeFaceFullRange(nn.Module):
    """The full-range network: ``(B, 3, 192, 192)`` in ``[-1, 1]`` -> regression ``(B, 2304, 16)``,
    face logits ``(B, 2304)``; anchors ordered grid row, grid column (48x48, one per cell).

    Down: stem 96 px (32 ch) -> 48 (64) -> 24 (128) -> 12 (192) -> 6 (384); up: 6 -> 12 (96) ->
    24 (64) -> 48 (48), each step a 1x1 conv + ReLU, x2 bilinear upsampling (half-pixel centres),
    plus a 1x1 + ReLU lateral of the same resolution on the way down.
    """

    input_size = 192
    strides = (4,)
    interpolated_anchor = False  # interpolated_scale_aspect_ratio 0: one anchor per cell

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, 2, padding=1)
        self.stage_96 = _stage(32, 8, 2)
        self.down_48, self.stage_48 = _downsample(32, 16, 64), _stage(64, 16, 2)
        self.lateral_48 = nn.Conv2d(64, 48, 1)
        self.down_24, self.stage_24 = _downsample(64, 32, 128), _stage(128, 32, 2)
        self.lateral_24 = nn.Conv2d(128, 64, 1)
        self.down_12, self.stage_12 = _downsample(128, 48, 192), _stage(192, 48, 2)
        self.lateral_12 = nn.Conv2d(192, 96, 1)
        self.down_6, self.stage_6 = _downsample(192, 96, 384), _stage(384, 96, 3)
        self.top_6 = nn.Conv2d(384, 96, 1)
        self.up_12 = _stage(96, 48, 2)
        self.top_12 = nn.Conv2d(96, 64, 1)
        self.up_24 = _stage(64, 32, 2)
        self.top_24 = nn.Conv2d(64, 48, 1)
        self.up_48 = _stage(48, 24, 1)
        self.scores = nn.Conv2d(48, 4, 1)
        self.scores_space = nn.Conv2d(4, 4, 3, 2, padding=1, groups=4)  # 24x24x(2x2) -> depth to space -> 48x48
        self.boxes = nn.Conv2d(48, 4 * NUM_COORDS, 1)
        self.boxes_space = nn.Conv2d(4 * NUM_COORDS, 4 * NUM_COORDS, 3, 2, padding=1, groups=4 * NUM_COORDS)

    @staticmethod
    def _up(x: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False) + lateral

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stage_96(F.relu(self.stem(x)))
        x48 = self.stage_48(self.down_48(x))
        lateral_48 = F.relu(self.lateral_48(x48))
        x24 = self.stage_24(self.down_24(x48))
        lateral_24 = F.relu(self.lateral_24(x24))
        x12 = self.stage_12(self.down_12(x24))
        lateral_12 = F.relu(self.lateral_12(x12))
        x = self.stage_6(self.down_6(x12))
        x = self.up_12(self._up(F.relu(self.top_6(x)), lateral_12))
        x = self.up_24(self._up(F.relu(self.top_12(x)), lateral_24))
        x = self.up_48(self._up(F.relu(self.top_24(x)), lateral_48))
        logits = _depth_to_space(self.scores_space(self.scores(x)))  # (B, 1, 48, 48)
        boxes = _depth_to_space(self.boxes_space(self.boxes(x)))  # (B, 16, 48, 48)
        return rearrange(boxes, "b k h w -> b (h w) k"), rearrange(logits, "b 1 h w -> b (h w)")


NETWORKS = {"short": BlazeFaceShortRange, "full": BlazeFaceFullRange}


def anchor_centres(input_size: int, strides: Sequence[int], interpolated_anchor: bool) -> torch.Tensor:
    """SsdAnchorsCalculator's anchors for the face models: ``(A, 2)`` centres ``(x, y)`` in input pixels.

    With ``fixed_anchor_size`` every anchor is 1x1 (so only the centres matter); consecutive layers
    with the same stride share one grid (``ceil(input_size / stride)`` cells a side), each layer
    adding one anchor per cell for aspect ratio 1, and one more when ``interpolated_anchor``.
    Cell centres are at offset 0.5. Order: grid, row, column, anchor.
    """
    out = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        per_cell = (same - layer) * (2 if interpolated_anchor else 1)
        cells = math.ceil(input_size / strides[layer])
        centre = (torch.arange(cells, dtype=torch.float32) + 0.5) / cells * input_size
        y, x = torch.meshgrid(centre, centre, indexing="ij")
        grid = torch.stack([x, y], dim=-1).reshape(-1, 1, 2).expand(-1, per_cell, 2)
        out.append(grid.reshape(-1, 2))
        layer = same
    return torch.cat(out)


def decode(raw: torch.Tensor, logits: torch.Tensor, anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """TensorsToDetectionsCalculator for these models: ``raw (..., A, 16)``, ``logits (..., A)`` and
    ``anchors (A, 2)`` -> boxes + keypoints ``(..., A, 16)`` (``x0, y0, x1, y1``, then six ``x, y``;
    input pixels) and scores ``(..., A)`` = sigmoid of the logit clipped to +-100."""
    centre = raw[..., :2] + anchors
    half = raw[..., 2:4] / 2
    keypoints = raw[..., 4:] + anchors.repeat(1, 6)
    boxes = torch.cat([centre - half, centre + half, keypoints], dim=-1)
    return boxes, logits.clamp(-SCORE_CLIP, SCORE_CLIP).sigmoid()


def _iou_matrix(boxes: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` boxes -> ``(N, N)`` intersection over union."""
    low = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    high = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (high - low).clamp(min=0).prod(dim=-1)
    area = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(dim=-1)
    union = area[:, None] + area[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def weighted_nms(detections: torch.Tensor, scores: torch.Tensor, threshold: float = 0.3) -> torch.Tensor:
    """NonMaxSuppressionCalculator's WEIGHTED algorithm (IoU overlap).

    Candidates are taken in decreasing score; the best remaining one and every remaining
    candidate overlapping it by IoU > ``threshold`` (itself included) form one face, whose box and
    keypoints are their score-weighted mean and whose score is the best one's; the cluster is
    removed and the next best remaining candidate starts the next face.

    Args:
        detections: ``(N, 4 + K)``: box ``x0, y0, x1, y1`` then any further coordinates (keypoints).
        scores: ``(N,)``.
        threshold: the IoU above which a candidate belongs to the face (MediaPipe's 0.3).

    Returns:
        ``(M, 5 + K)``: box, score, keypoints; in decreasing score.
    """
    order = scores.argsort(descending=True, stable=True)
    detections, scores = detections[order], scores[order]
    # The greedy clustering in plain Python on the overlap matrix (a handful of candidates per frame: a
    # tensor index per candidate cost more than the arithmetic); the merge stays in torch, on the same rows in
    # the same order as a boolean mask would select, so the faces are the same bits.
    overlap = (_iou_matrix(detections[:, :4]) > threshold).tolist()
    remaining = [True] * len(overlap)
    faces = []
    for best, row in enumerate(overlap):  # in score order: the first remaining candidate is the best one
        if not remaining[best]:
            continue
        cluster = [i for i in range(best, len(row)) if remaining[i] and (row[i] or i == best)]
        for i in cluster:
            remaining[i] = False
        members = torch.tensor(cluster, device=detections.device)
        weights = scores[members]
        merged = (detections[members] * weights[:, None]).sum(dim=0) / weights.sum()
        faces.append(torch.cat([merged[:4], scores[best:best + 1], merged[4:]]))
    if not faces:
        return detections.new_zeros((0, detections.shape[1] + 1))
    return torch.stack(faces)


class BlazeFace(nn.Module):
    """A BlazeFace network with MediaPipe's pre- and post-processing, batched over images.

    Args:
        model: ``"full"`` (full range, 192 px input, faces at any distance; default) or
            ``"short"`` (short range, 128 px, faces close to the camera).
        min_score: face probability threshold (0.5: MediaPipe's ``min_detection_confidence``
            default).
        nms_threshold: IoU above which candidates merge into one face (0.3, MediaPipe's).
    """

    def __init__(self, model: str = "full", min_score: float = 0.5, nms_threshold: float = 0.3):
        super().__init__()
        if model not in NETWORKS:
            raise ValueError(f"unknown BlazeFace model {model!r}; expected one of {MODELS}")
        self.model = model
        self.network = NETWORKS[model]()
        self.input_size = self.network.input_size
        self.min_score = float(min_score)
        self.nms_threshold = float(nms_threshold)
        net = NETWORKS[model]
        self.register_buffer("anchors", anchor_centres(net.input_size, net.strides, net.interpolated_anchor),
                             persistent=False)

    @classmethod
    def pretrained(cls, model: str = "full", **kwargs) -> "BlazeFace":
        """The network with the bundled weights (see module docstring), in eval mode, channels-last
        (NHWC: depthwise convolutions run 1.5-2x faster so on a CPU; :meth:`letterbox` makes its input so)."""
        detector = cls(model, **kwargs)
        detector.network.load_state_dict(bundled_state_dict(model), strict=True)
        detector.network.to(memory_format=torch.channels_last)
        return detector.eval().requires_grad_(False)

    def letterbox(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[float, float], tuple[float, float]]:
        """``images (B, 3, H, W)`` 0-255 -> the network's input ``(B, 3, S, S)`` in ``[-1, 1]``: resized
        to fit with the aspect ratio kept (bilinear, antialiased when shrinking), centred on black
        borders (MediaPipe's ``keep_aspect_ratio``, ``BORDER_ZERO``). Also returns the ``(x, y)``
        scale and offset of the image inside the input, to map boxes back.

        uint8 images on the CPU are resized as uint8 (torch's vectorised path: a 720p frame in
        ~0.5 ms instead of ~10 ms as float; the values differ from the float path by rounding
        only); anything else is resized as float.
        """
        height, width = images.shape[-2:]
        size = self.input_size
        scale = size / max(height, width)
        new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))
        if images.dtype != torch.uint8 or images.device.type != "cpu":
            images = images.float()
        if (new_h, new_w) != (height, width):
            images = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False,
                                   antialias=scale < 1)
        top, left = (size - new_h) // 2, (size - new_w) // 2
        x = images.float() / 127.5 - 1.0
        x = F.pad(x, (left, size - new_w - left, top, size - new_h - top), value=-1.0)  # black borders
        return x.contiguous(memory_format=torch.channels_last), (new_w / width, new_h / height), (float(left), float(top))

    @torch.no_grad()
    def detect(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Faces of each image.

        Args:
            images: ``(B, 3, H, W)`` RGB 0-255, uint8 (fastest) or float, on the module's device.

        Returns:
            per image a float ``(N, 17)`` tensor (on the images' device): box ``x0, y0, x1, y1``
            (pixels of ``images``), score, then the six keypoints ``x, y`` in the order of
            :data:`KEYPOINTS`; in decreasing score.
        """
        x, (scale_x, scale_y), (left, top) = self.letterbox(images)
        raw, logits = self.network(x)
        boxes, scores = decode(raw, logits, self.anchors)
        keep = scores >= self.min_score
        # the few candidates above the threshold go to the CPU at once (one device sync), where the
        # suppression's short sequential loop runs
        counts = keep.sum(dim=1).tolist()
        candidates, candidate_scores = boxes[keep].cpu().split(counts), scores[keep].cpu().split(counts)
        coords = [0, 1, 2, 3, *range(5, 17)]  # x, y alternating
        shift = torch.tensor([left, top]).repeat(8)
        scale = torch.tensor([scale_x, scale_y]).repeat(8)
        out = []
        for frame_boxes, frame_scores in zip(candidates, candidate_scores):
            faces = weighted_nms(frame_boxes, frame_scores, self.nms_threshold)
            faces[:, coords] = (faces[:, coords] - shift) / scale
            out.append(faces.to(images.device))
        return out


@functools.lru_cache(maxsize=2)
def bundled_state_dict(model: str) -> dict[str, torch.Tensor]:
    """The bundled weights of ``model`` (``"short"`` or ``"full"``), names as in its network."""
    from safetensors import safe_open

    if not WEIGHTS_FILE.is_file():
        raise FileNotFoundError(
            f"{WEIGHTS_FILE}: the bundled BlazeFace weights are missing (a broken install?); "
            "expected the file shipped with the package (tools/convert_blazeface_weights.py makes it)"
        )
    prefix = f"{model}_range."
    with safe_open(str(WEIGHTS_FILE), framework="pt") as weights:
        return {name[len(prefix):]: weights.get_tensor(name) for name in weights.keys() if name.startswith(prefix)}
