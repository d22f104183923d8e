"""Why a video could not be turned into a face clip.

Every failure of the pipeline on one video raises a :class:`VideoError` subclass whose
message names the file, what was wrong and what was expected, so that batch tools
(``dynsnip predict``, ``dynsnip extract-faces``) can report that video and go on with
the others.
"""
from __future__ import annotations


class VideoError(Exception):
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
                 which: str = "frames the detector looked at", found: str = "found", advice: str | None = None):
        self.coverage = float(coverage)
        self.minimum = float(minimum)
        super().__init__(
            path,
            f"face {found} in only {coverage:.0%} of the {frames_checked} {which} "
            f"(minimum {minimum:.0%}); " + (FACE_ADVICE if advice is None else advice),
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


FACE_ADVICE = (
    "a turned or tilted head, or a hand over the face, defeats the frontal detector (dlib): use a pose-robust "
    "one (auto = BlazeFace then MTCNN, or --face-detector mtcnn); small faces: --face-detector blazeface or mtcnn, "
    "a larger --detect-size, --detect-upsample 1 or a smaller --min-face; input that is already a face crop: "
    "--face-detector none"
)


def no_face_message(frames: int, which: str) -> str:
    """The message of :class:`NoFaceError`: how many frames were searched, and what to try."""
    return f"no face found in any of the {frames} {which}; expected a video showing a face. " + FACE_ADVICE
