"""Face detection on video frames: BlazeFace, dlib's HOG detector, MTCNN, a cascade (``auto``) or none.

The paper pre-processes FaceForensics++ with dlib and the other datasets with MTCNN.

* ``"blazeface"`` / ``"blazeface-short"``: :class:`BlazeFaceDetector`, MediaPipe's full-range /
  short-range single-shot detectors as the package's own torch modules with bundled weights
  (:mod:`dynsnip.data.faces.blazeface`): a fixed 192 / 128 px input whatever the frame size, a few
  milliseconds a frame on one CPU core, turned, tilted and partly covered heads, six keypoints
  (three of them in the detection rows below); batched over frames, runs on a GPU.
* ``"dlib"``: dlib's frontal HOG detector (inside the ``dlib-bin`` wheel, no weights file).
  Misses turned and tilted heads.
* ``"mtcnn"``: :class:`MtcnnFaceDetector`, the package's own torch MTCNN with bundled
  weights (:mod:`dynsnip.data.faces.mtcnn`): finds profile and tilted faces and gives five facial
  keypoints; batched over frames, runs on a GPU. The slowest on a CPU.
* ``"auto"`` (the default, chosen by the measurement in docs/video.md): a cascade
  (:class:`AutoFaceDetector`): BlazeFace short range and full range on every frame (the second
  adding the faces the first did not find: a smaller person beside a large face), MTCNN where
  neither finds one (the BlazeFace stages with stricter score thresholds than alone).
* ``"auto-cascade"``: the same stages as a plain cascade, full range only on the frames where short
  range finds nothing: 1.7x faster extraction on the bundled footage (CPU time), but a smaller
  second person beside a large face is never detected (``auto`` before this version).
* ``"none"``: input that is already a face crop (e.g. frames from ``dynsnip extract-faces``).

**Detections** are float arrays ``(N, 15)`` per frame, one row per face (the layout of
:class:`Face`): ``x0, y0, x1, y1`` (frame pixels, x1/y1 exclusive), ``score``, then the
five keypoints ``x, y`` (left eye, right eye, nose, left and right mouth corner, as seen in
the image), NaN where the backend gives none (dlib; BlazeFace's mouth corners).
:func:`detect_faces` returns this layout for any detector. Scores of different backends are
not comparable, and no code here picks a face by score: callers keep the largest face and
follow it across frames (:mod:`dynsnip.data.faces.boxes`). (Scores do threshold each backend's
candidates, and BlazeFace's suppression averages the candidate boxes *of one face* weighted by
their scores; neither chooses between faces.)

Any callable ``frame (H, W, 3) uint8 RGB -> (N, 5) or (N, 15) float`` can be passed
wherever a detector is expected; one with a ``detect_batch(frames)`` method is given all
frames of a video at once. Two optional attributes let ``extract-faces`` schedule it more
freely: ``batch_invariant = True`` (each frame's rows are the same whatever frames share its
batch: it may be handed smaller batches) and ``thread_safe = True`` (two threads may call it at
once: the decoding thread then runs detection batches beside the detector thread instead of
waiting). Both default to False for a callable that does not say.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

import torch

from .._optional import require
from .boxes import box_iou

np = require("numpy")

FaceDetector = Callable[["np.ndarray"], "np.ndarray"]
DetectorSpec = Union[str, FaceDetector, None]

DETECTION_COLUMNS = 15  # x0 y0 x1 y1 score, then 5 keypoints (x, y)


@dataclass(frozen=True)
class Face:
    """One detected face: the documented meaning of a detection row.

    Attributes:
        box: float ``(4,)`` ``x0, y0, x1, y1`` in frame pixels (x1, y1 exclusive).
        score: the backend's confidence (dlib: SVM margin; MTCNN, BlazeFace: probability); not
            comparable across backends.
        keypoints: float ``(5, 2)`` ``(x, y)`` of left eye, right eye, nose tip, left and
            right mouth corner (as seen in the image), or None when the backend gives none
            (BlazeFace: eyes and nose, NaN mouth corners).
    """

    box: "np.ndarray"
    score: float
    keypoints: "np.ndarray | None"

    @classmethod
    def from_row(cls, row: "np.ndarray") -> "Face":
        """A :class:`Face` from one ``(5,)`` or ``(15,)`` detection row."""
        row = as_detections(row)[0]
        points = row[5:].reshape(5, 2)
        return cls(row[:4].copy(), float(row[4]), None if np.isnan(points).all() else points.copy())


def as_detections(faces: "np.ndarray") -> "np.ndarray":
    """Any ``(N, 4)``, ``(N, 5)`` or ``(N, 15)`` rows -> float ``(N, 15)`` (missing score 1, missing
    keypoints NaN)."""
    faces = np.asarray(faces, dtype=np.float64)
    if faces.size == 0:
        return np.zeros((0, DETECTION_COLUMNS))
    faces = faces.reshape(-1, faces.shape[-1])
    width = faces.shape[1]
    if width not in (4, 5, DETECTION_COLUMNS):
        raise ValueError(f"detections must have 4, 5 or {DETECTION_COLUMNS} columns, got {width}")
    out = np.full((len(faces), DETECTION_COLUMNS), np.nan)
    out[:, :width] = faces
    if width == 4:
        out[:, 4] = 1.0
    return out


@functools.lru_cache(maxsize=None)
def _dlib_hog_detector():
    """dlib's frontal-face detector, built once per process (building it takes ~1 s).

    Kept out of :class:`DlibFaceDetector` instances so that they pickle (DataLoader workers
    started with ``spawn``) and each process builds its own.
    """
    return require("dlib").get_frontal_face_detector()


def working_scale(frame_size: tuple[int, int], short_side: int | None, max_upscale: float | None) -> float:
    """The factor a frame of ``frame_size (H, W)`` is resized by before detection: its short side
    to ``short_side`` (None: 1, native resolution), upsampling by at most ``max_upscale`` (None: no cap)."""
    if not short_side:
        return 1.0
    scale = short_side / min(frame_size)
    return scale if max_upscale is None else min(scale, max(1.0, max_upscale))


class DlibFaceDetector:
    """dlib's frontal-face HOG detector, run at a fixed working resolution.

    Args:
        detect_short_side: frames are resized so that their shorter side has this many pixels
            before detection, and boxes are mapped back to the frame. The HOG window is 80x80
            px, so at the default 480 faces down to 1/6 of the frame's short side are found
            (a 120 px face in 720p); large frames (1080p) are downsampled, which keeps the cost
            near 30 ms a frame instead of 60-100 ms at 720p. ``None``: native resolution.
        max_upscale: small frames (e.g. 176x144) are upsampled towards ``detect_short_side``
            by at most this factor. At 2 the smallest face found is 40 px in the frame
            (dlib's 80 px window / 2), i.e. 1/3.6 of a 144 px short side: smaller faces carry too
            little detail for a 224 px model crop anyway, and HOG's cost grows with the
            upsampled area (the 176x144 clip at 480 px is 11x the pixels, 3-4x the time of
            2x, with the same faces found on the bundled footage). ``None``: no cap.
        upsample: extra pyramid upsamplings inside dlib (finds smaller faces, ~4x slower each).
        threshold: detection score threshold passed to dlib (0 = dlib's default; lower finds
            more faces and more false positives).
    """

    def __init__(
        self,
        detect_short_side: int | None = 480,
        upsample: int = 0,
        threshold: float = 0.0,
        max_upscale: float | None = 2.0,
    ):
        _dlib_hog_detector()  # fail here, not on the first frame, when dlib is missing
        self.detect_short_side = detect_short_side
        self.max_upscale = max_upscale
        self.upsample = upsample
        self.threshold = threshold

    def __call__(self, frame: "np.ndarray") -> "np.ndarray":
        """Faces in ``frame (H, W, 3) uint8 RGB`` as ``(N, 5)``: box in frame pixels and score."""
        image = np.ascontiguousarray(frame)
        scale = working_scale(image.shape[:2], self.detect_short_side, self.max_upscale)
        if abs(scale - 1.0) > 1e-3:
            pil = require("PIL.Image")
            height, width = image.shape[:2]
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            image = np.asarray(pil.fromarray(image).resize(size, pil.BILINEAR))
        rects, scores, _ = _dlib_hog_detector().run(image, self.upsample, self.threshold)
        out = np.array(
            [[r.left(), r.top(), r.right() + 1, r.bottom() + 1, s] for r, s in zip(rects, scores)],
            dtype=np.float64,
        ).reshape(-1, 5)
        out[:, :4] /= scale
        return out

    batch_invariant = True  # one frame at a time (see AutoFaceDetector.batch_invariant)

    def __repr__(self) -> str:
        return (
            f"DlibFaceDetector(detect_short_side={self.detect_short_side}, max_upscale={self.max_upscale}, "
            f"upsample={self.upsample}, threshold={self.threshold})"
        )


class MtcnnFaceDetector:
    """The package's MTCNN (:mod:`dynsnip.data.faces.mtcnn`) on frames resized to a working size.

    Args:
        detect_short_side: frames are resized so that their shorter side has this many
            pixels (as for dlib; None: native resolution); boxes and keypoints are mapped back.
        max_upscale: small frames are upsampled by at most this factor (as for dlib; the
            smallest face found is then ``min_face / max_upscale`` frame pixels). Default None
            (no cap), unlike dlib: on the 176x144 clip at 1.9-2x, MTCNN's box for a frame
            detected in a batch of 4 differs by up to 4 px from the same frame detected alone
            (at 1.5, 2.1 and the uncapped 3.3x they agree to 1e-4 px); a batch-size dependence
            not yet explained, so the cap stays off where it would show. MTCNN runs only on
            BlazeFace's misses in ``auto``, so its cost there is small.
        min_face: smallest face side searched for, in working-size pixels. 40 (1/12 of a
            480 px short side, half of dlib's 80 px window) skips the two finest pyramid levels
            of the original's 20, which are most of P-Net's cost, and still finds the faces
            these clips are about.
        thresholds: P-, R-, O-Net probability thresholds (the original's 0.6, 0.7, 0.7).
        device: where the networks run (``"cuda"`` batches the frames on the GPU).
        batch_size: frames per forward pass. None (default): 1 on the CPU, 16 on a GPU. On
            the CPU batching buys little, and one frame at a time makes each frame's boxes
            independent of which other frames share its batch (``extract-faces`` and
            ``predict`` group frames differently; see ``max_upscale`` for the dependence), so
            that training and prediction crops agree.
    """

    def __init__(
        self,
        detect_short_side: int | None = 480,
        min_face: float = 40.0,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        device: str | torch.device = "cpu",
        batch_size: int | None = None,
        max_upscale: float | None = None,
    ):
        from .mtcnn import MTCNN

        self.detect_short_side = detect_short_side
        self.max_upscale = max_upscale
        self.min_face = float(min_face)
        self.thresholds = tuple(thresholds)
        self.device = torch.device(device)
        self.batch_size = int(batch_size) if batch_size else (1 if self.device.type == "cpu" else 16)
        self.network = MTCNN.pretrained(min_face=min_face, thresholds=thresholds).to(self.device)

    def __call__(self, frame: "np.ndarray") -> "np.ndarray":
        """Faces in ``frame (H, W, 3) uint8 RGB`` as ``(N, 15)`` detection rows."""
        return self.detect_batch(np.asarray(frame)[None])[0]

    def detect_batch(self, frames: "np.ndarray | Sequence[np.ndarray]") -> list["np.ndarray"]:
        """Faces of each of ``frames (F, H, W, 3)`` uint8 RGB (same size): ``F`` arrays ``(N_i, 15)``."""
        frames = np.asarray(frames)
        out: list[np.ndarray] = []
        for start in range(0, len(frames), self.batch_size):
            chunk = torch.from_numpy(np.array(frames[start:start + self.batch_size]))  # a writable copy
            images = chunk.to(self.device).permute(0, 3, 1, 2).float()  # (B, 3, H, W)
            height, width = images.shape[-2:]
            scale = working_scale((height, width), self.detect_short_side, self.max_upscale)
            if abs(scale - 1.0) > 1e-3:
                size = (max(1, round(height * scale)), max(1, round(width * scale)))
                mode = "area" if scale < 1 else "bilinear"
                images = torch.nn.functional.interpolate(images, size=size, mode=mode)
                scale = size[0] / height  # the scale actually applied
            for faces in self.network.detect(images):
                faces = faces.double().cpu().numpy()
                faces[:, [0, 1, 2, 3, *range(5, 15)]] /= scale
                out.append(faces)
        return out

    @property
    def batch_invariant(self) -> bool:
        """Whether each frame's rows are the same in any batch: one frame per forward pass (the CPU default)."""
        return self.batch_size == 1

    # Calls from two threads at once are safe: the three networks keep no state between calls.
    thread_safe = True

    def __repr__(self) -> str:
        return (
            f"MtcnnFaceDetector(detect_short_side={self.detect_short_side}, max_upscale={self.max_upscale}, "
            f"min_face={self.min_face}, "
            f"thresholds={self.thresholds}, device='{self.device}')"
        )


class BlazeFaceDetector:
    """MediaPipe's BlazeFace (:mod:`dynsnip.data.faces.blazeface`, the package's torch port with bundled
    Apache-2.0 weights), batched over frames.

    Each frame is letterboxed into the network's square input (192 px full range, 128 px short
    range: a fixed cost per frame whatever its size, plus the resize), and the detections are mapped
    back to frame pixels. Rows hold the box, the face probability and three of MediaPipe's six
    keypoints in this package's layout: left and right eye (as seen in the image: MediaPipe's
    right and left eye of the person) and nose tip; the mouth-corner columns are NaN (MediaPipe
    gives the mouth *centre*, and the two ear tragions, which the 15-column row has no place for:
    :meth:`detect_batch_keypoints` returns all six).

    **Framing.** MediaPipe's boxes are square and sit lower on the face than MTCNN's (which are
    taller than wide and reach the forehead); squared with the same margin, the crops would differ
    (crop IoU with MTCNN's 0.6-0.85 on the bundled footage). With ``framing="mtcnn"`` (default)
    each box is re-framed the way MTCNN frames the same face: width, height and vertical centre
    shift as fixed multiples of the BlazeFace box's side (:data:`BLAZEFACE_MTCNN_FRAMING`, the
    medians over 112-116 frames of six clips, ``benchmarks/face_detectors.py --fit-framing``),
    so that crops agree with those of the paper's detectors (docs/video.md measures it).
    ``framing="mediapipe"`` keeps MediaPipe's boxes.

    Args:
        model: ``"full"`` (full range: faces at any distance, 192 px input; ``--face-detector
            blazeface``) or ``"short"`` (short range: faces that fill a good part of the frame,
            128 px, about 3x faster; ``blazeface-short``).
        min_score: face probability threshold (MediaPipe's default 0.5).
        framing: ``"mtcnn"`` (default) or ``"mediapipe"`` (see above).
        device: where the network runs.
        batch_size: frames per forward pass (default: 8 on the CPU, 16 on a GPU). Results do not
            depend on it (each frame's rows are bitwise the same alone or in any batch: tested), so
            training and prediction, which group frames differently, get the same boxes. On the CPU
            a frame costs the same in a batch of 8 as of 16, and ``extract-faces`` holds the
            decoded frames of a batch's snippets until it is detected: 8 halves that memory (on
            1080p, about 200 MB less, 0.3 s of first-touch page faults less per process).
    """

    def __init__(self, model: str = "full", min_score: float = 0.5, device: str | torch.device = "cpu",
                 batch_size: int | None = None, framing: str = "mtcnn"):
        from .blazeface import BlazeFace

        if framing not in ("mtcnn", "mediapipe"):
            raise ValueError(f"framing must be 'mtcnn' or 'mediapipe', got {framing!r}")
        self.model = model
        self.framing = framing
        self.min_score = float(min_score)
        self.device = torch.device(device)
        self.batch_size = int(batch_size) if batch_size else (8 if self.device.type == "cpu" else 16)
        self.network = BlazeFace.pretrained(model, min_score=min_score).to(self.device)

    def __call__(self, frame: "np.ndarray") -> "np.ndarray":
        """Faces in ``frame (H, W, 3) uint8 RGB`` as ``(N, 15)`` detection rows."""
        return self.detect_batch(np.asarray(frame)[None])[0]

    def detect_batch_keypoints(self, frames: "np.ndarray | Sequence[np.ndarray]") -> list["np.ndarray"]:
        """Faces of each of ``frames (F, H, W, 3)`` uint8 RGB (same size) with all six keypoints: ``F``
        arrays ``(N_i, 17)``: box, score, then ``x, y`` of the person's right eye, left eye, nose tip,
        mouth centre, right and left ear tragion (:data:`~dynsnip.data.faces.blazeface.KEYPOINTS`)."""
        frames = np.asarray(frames)
        out: list[np.ndarray] = []
        for start in range(0, len(frames), self.batch_size):
            chunk = frames[start:start + self.batch_size]
            if not (chunk.flags.writeable and chunk.flags.c_contiguous):  # torch wants a writable array
                chunk = np.array(chunk)  # (extract-faces hands over a fresh stack of frames: no copy)
            images = torch.from_numpy(chunk).to(self.device).permute(0, 3, 1, 2)  # (B, 3, H, W) uint8, channels-last
            out.extend(faces.double().cpu().numpy() for faces in self.network.detect(images))
        if self.framing == "mtcnn":
            out = [reframe_boxes(faces, *BLAZEFACE_MTCNN_FRAMING[self.model]) for faces in out]
        return out

    def detect_batch(self, frames: "np.ndarray | Sequence[np.ndarray]") -> list["np.ndarray"]:
        """Faces of each of ``frames (F, H, W, 3)`` uint8 RGB (same size): ``F`` arrays ``(N_i, 15)``."""
        return [blazeface_rows(faces) for faces in self.detect_batch_keypoints(frames)]

    @property
    def batch_invariant(self) -> bool:
        """Whether each frame's rows are the same in any batch: bitwise so on the CPU (tested)."""
        return self.device.type == "cpu"

    # Calls from two threads at once are safe: the forward pass keeps no state (no_grad, no caches).
    thread_safe = True

    def __repr__(self) -> str:
        return (f"BlazeFaceDetector(model='{self.model}', min_score={self.min_score}, framing='{self.framing}', "
                f"device='{self.device}')")


# BlazeFace box (side s, centre c) -> MTCNN's framing of the same face: width / s, height / s, (centre shift
# x, y) / s. Medians over the frames of the bundled footage and of the foreman, qcif and carphone_distorted
# clips where both find the face (full 112, short 116 frames; benchmarks/face_detectors.py --fit-framing);
# the horizontal shift (median -0.02 / -0.04, varying with the head's turn) is left at 0.
BLAZEFACE_MTCNN_FRAMING = {"full": (0.86, 1.09, 0.0, -0.065), "short": (0.95, 1.20, 0.0, -0.12)}


def reframe_boxes(rows: "np.ndarray", width: float, height: float, shift_x: float, shift_y: float) -> "np.ndarray":
    """Detection rows with each box replaced by one of ``width x height`` times its side (the square
    root of its area), centred at its centre moved by ``(shift_x, shift_y)`` times the side; other
    columns unchanged."""
    rows = np.array(rows, dtype=np.float64)
    side = np.sqrt(np.clip((rows[:, 2] - rows[:, 0]) * (rows[:, 3] - rows[:, 1]), 0, None))
    cx = (rows[:, 0] + rows[:, 2]) / 2 + shift_x * side
    cy = (rows[:, 1] + rows[:, 3]) / 2 + shift_y * side
    rows[:, 0], rows[:, 2] = cx - width * side / 2, cx + width * side / 2
    rows[:, 1], rows[:, 3] = cy - height * side / 2, cy + height * side / 2
    return rows


def blazeface_rows(faces: "np.ndarray") -> "np.ndarray":
    """BlazeFace's ``(N, 17)`` rows (six keypoints) -> the ``(N, 15)`` detection layout: eyes (image
    left, image right) and nose kept, mouth corners NaN; the mouth centre and ear tragions are dropped."""
    out = np.full((len(faces), DETECTION_COLUMNS), np.nan)
    out[:, :11] = faces[:, :11]  # box, score, right eye (image left), left eye (image right), nose tip
    return out


class AutoFaceDetector:
    """A cascade: the first ``every_frame`` detectors on every frame (each adding the faces the ones
    before it did not find), each next one only on the frames where every detector before it found
    nothing.

    The default (``create_face_detector("auto")``, chosen by measurement, docs/video.md) is
    BlazeFace's short-range model, then its full-range model, then MTCNN: the fastest detector
    finds most faces, and the slower ones run on its misses only (small faces, hard poses). In
    the cascade the BlazeFace stages keep faces above stricter scores than MediaPipe's 0.5
    (:data:`AUTO_BLAZEFACE_MIN_SCORES`: 0.6 short range, 0.7 full range): a frame they are unsure
    about goes on to MTCNN instead of becoming a false face (the full-range model scores brick
    walls at up to 0.68 in the shared foreman clip). Each face's row comes from one backend only:
    a detector that runs on every frame adds only the faces that overlap none found before it
    (:func:`added_faces`), so boxes of detectors that frame a face slightly differently are never
    mixed for one face.

    In the default both BlazeFace models run on every frame (``every_frame=2``): the short-range
    model is built for faces near the camera and, once it has found the large face, a second,
    smaller person in the same frame is only the full-range model's to find. As a cascade
    (``every_frame=1``, before) such a person was never detected: ``--faces all`` scored one
    face track, with no note, in a video of two people. The full-range model costs about 10 ms a
    looked-at frame on one CPU core (short range: 2-3 ms).

    Args:
        primary: the first detector (None: BlazeFace short range).
        fallback: the second (None: BlazeFace full range, then MTCNN).
        further: any later ones.
        every_frame: how many of the first detectors run on every frame (at least 1); None: 2 for
            the default stages (``primary`` and ``fallback`` None), else 1 (a plain cascade).
    """

    def __init__(self, primary: FaceDetector | None = None, fallback: FaceDetector | None = None,
                 *further: FaceDetector, every_frame: int | None = None):
        if every_frame is None:
            every_frame = 2 if primary is None and fallback is None else 1
        if primary is None:
            primary = BlazeFaceDetector("short", min_score=AUTO_BLAZEFACE_MIN_SCORES["short"])
        if fallback is None:
            fallback = BlazeFaceDetector("full", min_score=AUTO_BLAZEFACE_MIN_SCORES["full"])
            further = (MtcnnFaceDetector(), *further)
        self.detectors: tuple[FaceDetector, ...] = (primary, fallback, *further)
        if isinstance(every_frame, bool) or not isinstance(every_frame, int) \
                or not 1 <= every_frame <= len(self.detectors):
            raise ValueError(f"every_frame = {every_frame!r}; expected a whole number from 1 to the "
                             f"{len(self.detectors)} detectors of the cascade")
        self.every_frame = every_frame

    @property
    def primary(self) -> FaceDetector:
        return self.detectors[0]

    @property
    def fallback(self) -> FaceDetector:
        return self.detectors[1]

    @property
    def batch_size(self) -> int:
        """Frames worth handing over at once: the largest of the detectors' batch sizes."""
        return max(int(getattr(d, "batch_size", 1) or 1) for d in self.detectors)

    @property
    def batch_invariant(self) -> bool:
        """Whether each frame's rows are the same whichever frames share its batch (every stage's are), so
        that callers may group frames as suits them (``extract-faces`` pipelined hands over smaller batches)."""
        return all(getattr(d, "batch_invariant", not hasattr(d, "detect_batch")) for d in self.detectors)

    @property
    def thread_safe(self) -> bool:
        """Whether two threads may call the cascade at once: when every stage allows it."""
        return all(getattr(d, "thread_safe", False) for d in self.detectors)

    def __call__(self, frame: "np.ndarray") -> "np.ndarray":
        return self.detect_batch(np.asarray(frame)[None])[0]

    def detect_batch(self, frames: "np.ndarray | Sequence[np.ndarray]") -> list["np.ndarray"]:
        frames = np.asarray(frames)
        out = detect_faces(frames, self.detectors[0])
        for detector in self.detectors[1:self.every_frame]:  # on every frame: the faces not found yet
            out = [added_faces(found, more) for found, more in zip(out, detect_faces(frames, detector))]
        for detector in self.detectors[self.every_frame:]:
            missed = [i for i, faces in enumerate(out) if len(faces) == 0]
            if not missed:
                break
            for i, faces in zip(missed, detect_faces(frames[missed], detector)):
                out[i] = faces
        return out

    def __repr__(self) -> str:
        every = f", every_frame={self.every_frame}" if self.every_frame != 1 else ""  # faces.json: what found the faces
        return f"AutoFaceDetector({', '.join(repr(d) for d in self.detectors)}{every})"


def added_faces(found: "np.ndarray", more: "np.ndarray", max_iou: float = 0.3) -> "np.ndarray":
    """``found`` (a frame's rows so far) and the rows of ``more`` (another detector's, same frame) that are
    other faces: those whose box overlaps no box of ``found`` by more than ``max_iou`` and whose centre
    lies inside none of them. A face found by both keeps ``found``'s row (one backend's box per face)."""
    if len(more) == 0:
        return found
    if len(found) == 0:
        return more
    keep = []
    for row in more:
        cx, cy = (row[0] + row[2]) / 2, (row[1] + row[3]) / 2
        inside = ((found[:, 0] <= cx) & (cx <= found[:, 2]) & (found[:, 1] <= cy) & (cy <= found[:, 3])).any()
        if not inside and box_iou(row[:4], found[:, :4]).max() <= max_iou:
            keep.append(row)
    return np.concatenate([found, np.stack(keep)]) if keep else found


def runs_on_gpu(detector: Any) -> bool:
    """Whether ``detector`` (or any stage of a cascade) runs its network on a device other than the CPU.

    ``extract-faces`` calls such a detector from the decoding thread, not from a detection thread of
    its own (``dynsnip.data.faces.extraction._Pipeline``): PyTorch keeps cuDNN's execution plans in
    a cache per thread, so a new thread for every video builds the plan of every conv layer again.
    On an H200 that cost ``auto`` (BlazeFace's two networks, then MTCNN) about 2 s a video, 8x its
    detection (docs/video.md); on the GPU a batch of frames takes well under a millisecond each,
    little to overlap with decoding anyway."""
    device = getattr(detector, "device", None)
    if device is not None and torch.device(device).type != "cpu":
        return True
    return any(runs_on_gpu(stage) for stage in getattr(detector, "detectors", ()))


FACE_DETECTORS = ("auto", "auto-cascade", "blazeface", "blazeface-short", "dlib", "mtcnn", "none")
# BlazeFace's score thresholds inside ``auto`` (MediaPipe's own, used by the "blazeface" names, is 0.5): below
# them a frame is left to the next detector. Measured in docs/video.md (benchmarks/face_detectors.py).
AUTO_BLAZEFACE_MIN_SCORES = {"short": 0.6, "full": 0.7}
DEFAULT_FACE_DETECTOR = "auto"


def create_face_detector(spec: DetectorSpec = DEFAULT_FACE_DETECTOR, **options) -> FaceDetector | None:
    """A detector from a name (see :data:`FACE_DETECTORS` and the module docstring), a callable
    (returned as is) or None.

    ``options``: ``detect_short_side`` and ``max_upscale`` (dlib, MTCNN), ``upsample`` (dlib),
    ``min_face`` (MTCNN), ``device`` and ``batch_size`` (MTCNN, BlazeFace), ``min_score`` and
    ``framing`` (BlazeFace); options a backend does not take are ignored for it.
    """
    if spec is None or callable(spec):
        return spec
    dlib_keys = ("detect_short_side", "max_upscale", "upsample", "threshold")
    mtcnn_keys = ("detect_short_side", "max_upscale", "min_face", "device", "batch_size")
    blazeface_keys = ("min_score", "device", "batch_size", "framing")
    dlib_options = {k: v for k, v in options.items() if k in dlib_keys}
    mtcnn_options = {k: v for k, v in options.items() if k in mtcnn_keys}
    blazeface_options = {k: v for k, v in options.items() if k in blazeface_keys}
    if spec == "dlib":
        return DlibFaceDetector(**dlib_options)
    if spec == "mtcnn":
        return MtcnnFaceDetector(**mtcnn_options)
    if spec == "blazeface":
        return BlazeFaceDetector("full", **blazeface_options)
    if spec == "blazeface-short":
        return BlazeFaceDetector("short", **blazeface_options)
    if spec in ("auto", "auto-cascade"):  # the cascade: full range only where short range finds nothing
        stages = [BlazeFaceDetector(model, **{"min_score": AUTO_BLAZEFACE_MIN_SCORES[model], **blazeface_options})
                  for model in ("short", "full")]
        return AutoFaceDetector(*stages, MtcnnFaceDetector(**mtcnn_options), every_frame=2 if spec == "auto" else 1)
    if spec == "none":
        return None
    raise ValueError(f"unknown face detector {spec!r}; expected one of {FACE_DETECTORS} or a callable")


def detect_faces(frames: "np.ndarray", detector: FaceDetector) -> list["np.ndarray"]:
    """All faces of each frame.

    Args:
        frames: ``(F, H, W, 3)`` uint8 RGB (or any iterable of such frames).
        detector: see module docstring; its ``detect_batch`` is used when it has one.

    Returns:
        per frame an ``(N_i, 15)`` float array of detection rows (see :class:`Face`;
        ``N_i`` may be 0).
    """
    batch = getattr(detector, "detect_batch", None)
    found = batch(frames) if batch is not None else [detector(frame) for frame in frames]
    return [as_detections(faces) for faces in found]
