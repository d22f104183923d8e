"""Why a video could not be turned into a face clip.

Every failure of the pipeline on one video raises a :class:`VideoError` subclass whose
message names the file, what was wrong and what was expected, so that batch tools
(``dynsnip predict``, ``dynsnip extract-faces``) can report that video and go on with
the others.
"""
from __future__ import annotations

from ..picklable_errors import PicklableError


class VideoError(PicklableError, Exception):
    """Base class: this video cannot be processed. ``reason`` is a short machine tag."""

    reason = "video_error"

    def __init__(self, path: object, message: str):
        self.path = str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")


class VideoNotFoundError(VideoError):
    """The path does not exist or is not a file."""

    reason = "not_found"


class CorruptVideoError(VideoError):
    """The file is not a readable media container or its frames fail to decode."""

    reason = "corrupt"


class NoVideoStreamError(VideoError):
    """The container opens but holds no video stream (e.g. an audio-only file)."""

    reason = "no_video_stream"


class UnseekableVideoError(VideoError):
    """The stream has no timestamps (e.g. a raw ``.264`` elementary stream), so frames
    cannot be addressed exactly; remuxing into MP4/MKV fixes it."""

    reason = "unseekable"


class NoFaceError(VideoError):
    """The face detector found no face in any of the sampled frames."""

    reason = "no_face"


class FrameGapError(VideoError):
    """A sampled snippet of a frame folder spans a gap in the frame numbering: its frames are
    not consecutive, and the jump would look like motion to the model."""

    reason = "frame_gap"


class TooShortVideoError(VideoError):
    """The video has fewer frames than one snippet (T consecutive frames): no snippet can be
    formed without repeating frames, and a repeated frame shows the model a standstill (or, at
    the join, a jump) that the video does not have."""

    reason = "too_short"


class FrameFolderError(VideoError):
    """A frame folder whose frames cannot be read as one sequence: two files with the same
    frame number, or a frame that is not a regular file (a FIFO, a device, a broken link)."""

    reason = "bad_frame_folder"


class LowFaceCoverageError(VideoError):
    """A face was found, but in fewer of the looked-at frames than the required fraction
    (``min_face_coverage``): too many snippets would be cropped with a borrowed box for
    the verdict to be about the face. ``coverage`` is the fraction found."""

    reason = "low_face_coverage"

    def __init__(self, path: object, coverage: float, minimum: float, frames_checked: int,
                 which: str = "frames the detector looked at", found: str = "found", advice: str | None = None,
                 detector: object = None):
        self.coverage = float(coverage)
        self.minimum = float(minimum)
        super().__init__(
            path,
            f"face {found} in only {coverage:.0%} of the {frames_checked} {which} "
            f"(minimum {minimum:.0%}); " + (face_advice(detector) if advice is None else advice),
        )


class FrameSizeChangeError(VideoError):
    """The frame size changes within the video (a stream spliced from two resolutions): the
    face boxes of one size would crop the frames of the other at the wrong place."""

    reason = "frame_size_change"


class IncompleteFolderError(VideoError):
    """A frame folder that ``extract-faces`` is still writing or left unfinished (its name ends
    in ``.partial``, or it holds the writer's ``.owner`` record): its frames are not all there."""

    reason = "incomplete_folder"


class SourceMismatchError(VideoError):
    """A fake's source video (whose face boxes crop the fake) does not fit it: another frame
    size, or it cannot be read."""

    reason = "source_mismatch"


class NoManipulatedFaceError(VideoError):
    """A fake (with a ``source``) none of whose faces differs from its source's: nothing in it to
    train on as a fake (the wrong source, or a fake identical to it)."""

    reason = "no_manipulated_face"


class FaceFolderError(VideoError):
    """An ``extract-faces`` output folder that cannot be read as one: its ``faces.json`` exists but
    is not valid JSON (truncated by an interrupted copy), not an ``extract-faces`` record or of
    another crop-policy format, lacks an entry, or frame images it lists are missing. The
    message names the folder, what is wrong and how to rebuild it."""

    reason = "bad_face_folder"


# what to try when no face (or too few) is found, by the ``--face-detector`` that looked (None: not known)
_DETECTOR_ADVICE = {
    "auto": (
        "the face detector was auto (BlazeFace short and full range on every looked-at frame, then MTCNN on the "
        "frames where BlazeFace finds none): it handles a turned or tilted head, and --face-detector mtcnn would only rerun its MTCNN stage; "
        "small faces: a larger --detect-size or a smaller --min-face (MTCNN's stage); a face turned away or mostly "
        "covered is missed by every detector"
    ),
    "auto-cascade": (
        "the face detector was auto-cascade (BlazeFace short range, then full range and MTCNN only on the frames "
        "where the ones before found none): a smaller second person beside a large face is not looked for: "
        "--face-detector auto; small faces: a larger --detect-size or a smaller --min-face (MTCNN's stage); a face "
        "turned away or mostly covered is missed by every detector"
    ),
    "dlib": (
        "the face detector was dlib (frontal faces only): a turned or tilted head, or a hand over the face, defeats "
        "it: use a pose-robust one (auto, the default: BlazeFace then MTCNN, or --face-detector mtcnn); small "
        "faces: a larger --detect-size, --detect-upsample 1, or --face-detector mtcnn"
    ),
    "mtcnn": (
        "the face detector was mtcnn (MTCNN alone): small faces: a larger --detect-size or a smaller --min-face; "
        "a turned or tilted head: --face-detector auto (BlazeFace, then MTCNN where it finds none)"
    ),
    "blazeface": (
        "the face detector was blazeface (full range, at its own 192 px input: --detect-size does not change it): "
        "--face-detector auto adds MTCNN on the frames where BlazeFace finds none (or --face-detector mtcnn, "
        "with a larger --detect-size or a smaller --min-face for small faces)"
    ),
    "blazeface-short": (
        "the face detector was blazeface-short (faces close to the camera, at its own 128 px input): smaller or "
        "farther faces: --face-detector blazeface (full range), auto (BlazeFace, then MTCNN where it finds none) "
        "or mtcnn (with a larger --detect-size or a smaller --min-face)"
    ),
    None: (
        "a turned or tilted head defeats a frontal detector (dlib): --face-detector auto (BlazeFace, then MTCNN "
        "where it finds none) or mtcnn; small faces: a larger --detect-size or a smaller --min-face"
    ),
}
_DETECTOR_CLASSES = {"AutoFaceDetector": "auto", "DlibFaceDetector": "dlib", "MtcnnFaceDetector": "mtcnn"}


def detector_name(detector: object) -> str | None:
    """The ``--face-detector`` name of ``detector`` (such a name, or a detector of
    :mod:`dynsnip.data.faces.detectors`); None for None, another callable or an unknown name."""
    if isinstance(detector, str):
        return detector if detector in _DETECTOR_ADVICE else None
    name = type(detector).__name__
    if name == "AutoFaceDetector" and getattr(detector, "every_frame", 2) == 1:
        return "auto-cascade"
    if name == "BlazeFaceDetector":
        return "blazeface-short" if getattr(detector, "model", None) == "short" else "blazeface"
    return _DETECTOR_CLASSES.get(name)


def face_advice(detector: object = None) -> str:
    """What to try when ``detector`` (a ``--face-detector`` name or a detector; None: not known)
    found no face, or too few: it names the detector, and the options that could change its result."""
    name = detector_name(detector)
    custom = f"the face detector was {detector!r}; " if name is None and detector is not None else ""
    return custom + _DETECTOR_ADVICE[name] + "; input that is already a face crop: --face-detector none"


FACE_ADVICE = face_advice()  # the detector-neutral advice (the detector is not known)


def no_face_message(frames: int, which: str, detector: object = None) -> str:
    """The message of :class:`NoFaceError`: how many frames were searched, the detector that searched
    them (``detector``: its ``--face-detector`` name or the detector; None when not known) and what to try."""
    return f"no face found in any of the {frames} {which}; expected a video showing a face. " + face_advice(detector)
