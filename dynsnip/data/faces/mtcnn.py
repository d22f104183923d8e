"""MTCNN face detector (Zhang et al., 2016) as a small torch module, batched over frames.

Three cascaded networks, each a few conv layers (layouts below are ``(B, C, H, W)``):

* :class:`PNet` (proposal): fully convolutional, run on an image pyramid; per 12x12 window
  (stride 2) a face probability and a box regression.
* :class:`RNet` (refine): the proposals cropped to 24x24; probability and regression.
* :class:`ONet` (output): the survivors cropped to 48x48; probability, regression and the
  five facial keypoints (eyes, nose, mouth corners).

The weights are those of the original Caffe release (Zhang et al.) as converted and shipped,
MIT-licensed, in the ``facenet-pytorch`` 2.6.0 wheel; ``tools/convert_mtcnn_weights.py``
turns its three state dicts into the bundled ``dynsnip/assets/mtcnn/mtcnn.safetensors``
(licence next to it and in NOTICE). The networks here are written for this package; only
the parameter names and shapes follow the weights (``conv1``, ``prelu1``, ...).

Everything is torch (``torchvision.ops`` for NMS and crops, which timm already depends on),
so :class:`MtcnnFaceDetector` runs a batch of frames on whatever device it is moved to.

Face *selection* is not done here: every face above the thresholds is returned, and the
callers keep the largest face and follow it from frame to frame
(:func:`~dynsnip.data.faces.boxes.track_face`). MTCNN's highest score is not a selection rule: on
footage with framed photos on the wall the top-scoring box lands on a photo in a sixth of
the frames.
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

WEIGHTS_FILE = Path(__file__).resolve().parents[2] / "assets" / "mtcnn" / "mtcnn.safetensors"
# Caffe MTCNN's input normalisation: (pixel - 127.5) / 128
_PIXEL_MEAN = 127.5
_PIXEL_SCALE = 0.0078125


def _conv_prelu(in_ch: int, out_ch: int, kernel: int) -> tuple[nn.Conv2d, nn.PReLU]:
    return nn.Conv2d(in_ch, out_ch, kernel), nn.PReLU(out_ch)


class PNet(nn.Module):
    """Proposal net: ``(B, 3, H, W)`` -> regression ``(B, 4, H', W')``, face probability
    ``(B, H', W')`` with ``H' = (ceil((H - 2) / 2) - 4)``: one output per 12x12 window, stride 2."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = _conv_prelu(3, 10, 3)
        self.conv2, self.prelu2 = _conv_prelu(10, 16, 3)
        self.conv3, self.prelu3 = _conv_prelu(16, 32, 3)
        self.conv4_1 = nn.Conv2d(32, 2, 1)  # face / not-face logits
        self.conv4_2 = nn.Conv2d(32, 4, 1)  # box regression (dx0, dy0, dx1, dy1) in box sizes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), self.conv4_1(x).softmax(dim=1)[:, 1]


class RNet(nn.Module):
    """Refine net: ``(N, 3, 24, 24)`` -> regression ``(N, 4)``, face probability ``(N,)``."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = _conv_prelu(3, 28, 3)
        self.conv2, self.prelu2 = _conv_prelu(28, 48, 3)
        self.conv3, self.prelu3 = _conv_prelu(48, 64, 2)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1 = nn.Linear(128, 2)
        self.dense5_2 = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(x))  # (N, 64, 3, 3)
        # the converted weights flatten width-major (the Caffe model saw transposed images)
        x = self.prelu4(self.dense4(rearrange(x, "n c h w -> n (w h c)")))
        return self.dense5_2(x), self.dense5_1(x).softmax(dim=1)[:, 1]


class ONet(nn.Module):
    """Output net: ``(N, 3, 48, 48)`` -> regression ``(N, 4)``, keypoints ``(N, 10)``
    (five x in box fractions, then five y), face probability ``(N,)``."""

    def __init__(self):
        super().__init__()
        self.conv1, self.prelu1 = _conv_prelu(3, 32, 3)
        self.conv2, self.prelu2 = _conv_prelu(32, 64, 3)
        self.conv3, self.prelu3 = _conv_prelu(64, 64, 3)
        self.conv4, self.prelu4 = _conv_prelu(64, 128, 2)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)
        self.dense6_2 = nn.Linear(256, 4)
        self.dense6_3 = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu4(self.conv4(x))  # (N, 128, 3, 3)
        x = self.prelu5(self.dense5(rearrange(x, "n c h w -> n (w h c)")))
        return self.dense6_2(x), self.dense6_3(x), self.dense6_1(x).softmax(dim=1)[:, 1]


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` boxes -> squares of side max(w, h) around the same centres."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    side = (boxes[:, 2:] - boxes[:, :2]).amax(dim=1, keepdim=True)
    return torch.cat([centre - side / 2, centre + side / 2], dim=1)


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply MTCNN's regression: each corner moves by ``offset * box size``."""
    size = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
    return boxes + offsets * size


def _suppress_contained(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS with overlap = intersection / smaller area (MTCNN's last stage): indices kept."""
    order = scores.argsort(descending=True)
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in order.tolist():
        if keep:
            kept = boxes[keep]
            wh = (torch.minimum(kept[:, 2:], boxes[i, 2:]) - torch.maximum(kept[:, :2], boxes[i, :2])).clamp(min=0)
            overlap = wh.prod(dim=1) / torch.minimum(areas[keep], areas[i]).clamp(min=1e-9)
            if bool((overlap > threshold).any()):
                continue
        keep.append(i)
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


class MTCNN(nn.Module):
    """The three networks and the cascade that runs them on a batch of frames.

    Args:
        min_face: smallest face side searched for, in pixels of the image given to
            :meth:`detect` (the pyramid starts at scale ``12 / min_face``).
        scale_factor: ratio between pyramid levels (0.709 = 1/sqrt(2), the original's).
        thresholds: face-probability thresholds of P-, R- and O-Net (0.6, 0.7, 0.7: the
            original's).
    """

    def __init__(
        self,
        min_face: float = 20.0,
        scale_factor: float = 0.709,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
    ):
        super().__init__()
        self.pnet, self.rnet, self.onet = PNet(), RNet(), ONet()
        self.min_face = float(min_face)
        self.scale_factor = float(scale_factor)
        self.thresholds = tuple(float(t) for t in thresholds)

    @classmethod
    def pretrained(cls, **kwargs) -> "MTCNN":
        """The networks with the bundled weights (see module docstring), in eval mode."""
        model = cls(**kwargs)
        model.load_state_dict(_bundled_state_dict(), strict=True)
        return model.eval().requires_grad_(False)

    def _scales(self, height: int, width: int) -> list[float]:
        scales = []
        scale = 12.0 / self.min_face
        while min(height, width) * scale >= 12:
            scales.append(scale)
            scale *= self.scale_factor
        return scales

    def _proposals(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """P-Net over the pyramid: ``(K, 4)`` squared boxes, ``(K,)`` scores, ``(K,)`` frame index."""
        from torchvision.ops import batched_nms

        height, width = images.shape[-2:]
        all_boxes, all_scores, all_frames = [], [], []
        for scale in self._scales(height, width):
            size = (math.ceil(height * scale), math.ceil(width * scale))
            level_images = F.interpolate(images, size=size, mode="area")
            offsets, prob = self.pnet((level_images - _PIXEL_MEAN) * _PIXEL_SCALE)
            frame, y, x = torch.nonzero(prob >= self.thresholds[0], as_tuple=True)
            if len(frame) == 0:
                continue
            corner = torch.stack([x, y], dim=1).to(images.dtype) * 2  # window's top-left, pyramid px
            boxes = torch.cat([corner, corner + 12], dim=1) / scale
            scores = prob[frame, y, x]
            keep = batched_nms(boxes, scores, frame, 0.5)
            all_boxes.append(_regress(boxes[keep], offsets[frame[keep], :, y[keep], x[keep]]))
            all_scores.append(scores[keep])
            all_frames.append(frame[keep])
        if not all_boxes:
            empty = images.new_zeros((0, 4))
            return empty, images.new_zeros(0), torch.zeros(0, dtype=torch.long, device=images.device)
        boxes, scores, frames = torch.cat(all_boxes), torch.cat(all_scores), torch.cat(all_frames)
        keep = batched_nms(boxes, scores, frames, 0.7)
        return _square(boxes[keep]), scores[keep], frames[keep]

    def _crops(self, images: torch.Tensor, boxes: torch.Tensor, frames: torch.Tensor, side: int) -> torch.Tensor:
        """``(N, 3, side, side)`` normalised crops; area-averaged (roi_align with adaptive
        sampling), black outside the frame as in the original."""
        from torchvision.ops import roi_align

        rois = torch.cat([frames[:, None].to(boxes.dtype), boxes], dim=1)
        crops = roi_align(images, rois, output_size=side, spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        return (crops - _PIXEL_MEAN) * _PIXEL_SCALE

    @torch.no_grad()
    def detect(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Faces of each image.

        Args:
            images: float ``(B, 3, H, W)``, RGB pixel values 0-255, on the module's device.

        Returns:
            per image a float ``(N, 15)`` tensor: box ``x0, y0, x1, y1`` (pixels of
            ``images``), face probability, then the five keypoints ``x, y`` (left eye,
            right eye, nose, left and right mouth corner, as seen in the image).
        """
        from torchvision.ops import batched_nms

        images = images.float()
        batch = images.shape[0]
        boxes, scores, frames = self._proposals(images)
        if len(boxes):
            offsets, prob = self.rnet(self._crops(images, boxes, frames, 24))
            ok = prob >= self.thresholds[1]
            boxes, offsets, scores, frames = boxes[ok], offsets[ok], prob[ok], frames[ok]
            keep = batched_nms(boxes, scores, frames, 0.7)
            boxes = _square(_regress(boxes[keep], offsets[keep]))
            frames = frames[keep]
        out = [images.new_zeros((0, 15)) for _ in range(batch)]
        if len(boxes) == 0:
            return out
        offsets, points, prob = self.onet(self._crops(images, boxes, frames, 48))
        ok = prob >= self.thresholds[2]
        boxes, offsets, points, scores, frames = boxes[ok], offsets[ok], points[ok], prob[ok], frames[ok]
        size = boxes[:, 2:] - boxes[:, :2]
        xs = boxes[:, :1] + size[:, :1] * points[:, :5]
        ys = boxes[:, 1:2] + size[:, 1:] * points[:, 5:]
        keypoints = rearrange(torch.stack([xs, ys], dim=2), "n k xy -> n (k xy)")
        boxes = _regress(boxes, offsets)
        keep = batched_nms(boxes, scores, frames, 0.7)
        for b in range(batch):
            mine = keep[frames[keep] == b]
            if len(mine) == 0:
                continue
            mine = mine[_suppress_contained(boxes[mine], scores[mine], 0.7)]
            out[b] = torch.cat([boxes[mine], scores[mine, None], keypoints[mine]], dim=1)
        return out


@functools.lru_cache(maxsize=1)
def _bundled_state_dict() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not WEIGHTS_FILE.is_file():
        raise FileNotFoundError(
            f"{WEIGHTS_FILE}: the bundled MTCNN weights are missing (a broken install?); "
            "expected the file shipped with the package (tools/convert_mtcnn_weights.py makes it)"
        )
    return load_file(str(WEIGHTS_FILE))
