"""Frame-exact decoding of chosen frames with PyAV, without decoding the whole file.

Opening a video demuxes its packets once (no decoding, cheap) to build the frame index:
frame ``i`` is the packet with the ``i``-th smallest presentation timestamp, so indices
are presentation order even with B-frames, and the keyframes are known. Reading a set of
frames then walks them in increasing order and, for each one, either keeps decoding
from where the decoder is (when no keyframe lies between it and the wanted frame, so a
seek would land at or before the current position anyway) or seeks to the keyframe before
it. In long-GOP deepfake videos (2-4 keyframes in 300-750 frames) this decodes each GOP at
most once; frames that are not wanted are decoded but never converted to arrays.

A stream without timestamps (a raw ``.264`` Annex-B stream) cannot be addressed frame by
frame and raises :class:`~dynsnip.data.errors.UnseekableVideoError`; remuxing it into MP4
(``ffmpeg -i in.264 -c copy out.mp4``) fixes that.

Frames come out as a player shows them: a phone's portrait clip is usually stored as landscape
frames with a display rotation in the container (a display matrix, ``rotate`` in older tools), and
without it faces would be found, cropped and scored lying on their side. The rotation (a multiple
of 90 degrees; the first decoded frame says which, when the video is opened) is applied to every
frame and to :attr:`VideoReader.size`; ``apply_rotation=False`` gives the stored frames. A display
matrix that mirrors the picture is not applied: such a video fails (re-encode it as shown).

A snippet must be consecutive frames *in time* as well: a video cut and joined, or paused while
recording, has frames that follow each other in the file but lie seconds apart, and that jump
would be scored as motion. :meth:`VideoReader.check_consecutive` fails a snippet whose frames
are more than :data:`MAX_FRAME_STEP` times the video's usual frame interval apart
(:class:`~dynsnip.data.errors.FrameGapError`, as for a gap in a frame folder's numbering).
"""
from __future__ import annotations

import bisect
import functools
import os
import struct
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ._optional import require
from .manifest import video_file_problem
from .errors import (
    CorruptVideoError,
    FrameGapError,
    FrameSizeChangeError,
    NoVideoStreamError,
    UnseekableVideoError,
    VideoNotFoundError,
)

if TYPE_CHECKING:
    import numpy as np
    import torch


# MPEG program and transport streams (.mpg, .ts): FFmpeg's seek there lands on another keyframe than the
# one asked for (a TS with B-frames: the second GOP for frame 0) and frames decoded after a seek can carry
# the next frame's timestamp (MPEG-PS), so a frame found by its timestamp after a seek may be the wrong one.
# These are read front to back from a freshly opened file instead (VideoReader._restart): exact, and slower
# only for reads that go backwards.
SEQUENTIAL_FORMATS = frozenset({"mpeg", "mpegts", "mpegvideo", "vob"})

# A step between neighbouring frames of a snippet above this many of the video's usual frame intervals is a
# cut or a pause, not footage (VideoReader.check_consecutive). Not 1: variable-frame-rate phone footage and
# dropped frames give steps of 2x (a frame missing) routinely; a 3x step already hides two frames of motion.
MAX_FRAME_STEP = 2.5


def main_video_stream(container: Any) -> Any:
    """The video stream a player shows: of several, the one with the most pixels (the ``ffmpeg``
    command's choice), cover art (attached pictures) left out unless there is nothing else; the
    first of equals. Phones and editors can add a small preview stream, and an MKV may carry its
    cover as a one-frame video stream before the video itself."""
    av = require("av")
    streams = list(container.streams.video)
    pictures = av.stream.Disposition.attached_pic
    moving = [s for s in streams if not (int(s.disposition) & int(pictures))] or streams
    return max(moving, key=lambda s: ((s.codec_context.width or 0) * (s.codec_context.height or 0), -s.index))


class VideoReader:
    """Random access to the frames of one video file, as RGB ``uint8`` arrays.

    Use as a context manager (or call :meth:`close`)::

        with VideoReader("clip.mp4") as video:
            frames = video.read([0, 1, 2, 3, 60, 61, 62, 63])  # (8, H, W, 3)

    Raises (all :class:`~dynsnip.data.errors.VideoError`): ``VideoNotFoundError``,
    ``CorruptVideoError`` (not a media file, truncated, or its packets fail to decode),
    ``NoVideoStreamError``, ``UnseekableVideoError`` (no timestamps), and on reading,
    ``FrameSizeChangeError`` (a frame whose size or display rotation differs from the stream's
    first), and ``CorruptVideoError`` for a display rotation that is not a multiple of 90 degrees.

    Args:
        path: the video file.
        apply_rotation: turn frames as the container's display rotation says (default True: what
            a player shows, so that faces stand upright); False: the frames as stored.
    """

    def __init__(self, path: str | os.PathLike[str], apply_rotation: bool = True):
        av = require("av")
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            # what it is instead (a folder, a FIFO: never opened), from its metadata only
            raise VideoNotFoundError(self.path, video_file_problem(self.path) or "no such file (expected a video file)")
        try:
            self._container = av.open(self.path)
        except av.error.FFmpegError as err:
            if os.path.getsize(self.path) == 0:  # an interrupted copy or download
                raise CorruptVideoError(self.path, "empty file (0 bytes); expected a video file (copy it again)") from err
            if (cut := mp4_cut_short(self.path)) is not None:  # the usual interrupted download
                raise CorruptVideoError(self.path, cut) from err
            raise CorruptVideoError(
                self.path, f"not a readable video container ({err.strerror or err})"
            ) from err
        try:
            if not self._container.streams.video:
                kinds = sorted({s.type for s in self._container.streams}) or ["none"]
                raise NoVideoStreamError(
                    self.path, f"the file has no video stream (streams found: {', '.join(kinds)})"
                )
            self._stream = main_video_stream(self._container)
            self._opened_size = (self._stream.codec_context.width, self._stream.codec_context.height)
            #: Whether frames are read front to back, never by seeking (:data:`SEQUENTIAL_FORMATS`).
            self.sequential = bool(SEQUENTIAL_FORMATS & set(str(self._container.format.name).split(",")))
            self._index_frames()
            self._decoder: Iterator | None = None  # frames decoding since the last seek
            self._next_index: int | None = None  # index of the frame the decoder yields next
            self._opening: tuple[int, object] | None = None  # (index, frame) decoded when opening
            self.frames_decoded = 0  # frames decoded so far (wanted or not): the cost of reads
            self.seeks = 0  # seeks done so far
            #: Counterclockwise display rotation in degrees (0, 90, 180 or 270) applied to every frame
            #: (0 with ``apply_rotation=False``); ``stored_rotation`` is the container's either way.
            self.stored_rotation = self._open_decoder()
            self.rotation = self.stored_rotation if apply_rotation else 0
        except BaseException:
            self._container.close()
            raise

    def _index_frames(self) -> None:
        av = require("av")
        pts_list: list[int] = []
        keyframe_pts: list[int] = []
        leading: list[int] = []  # packets before the first keyframe in decode order (a stream cut mid-GOP)
        started = False  # whether a keyframe came (decoding can start there)
        packets = 0
        cut_off = False  # whether the last packet is flagged corrupt: the file ends inside it
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0:  # the demuxer's final flush packet
                    continue
                packets += 1
                # a flag mid-stream (an MPEG-TS splice, a damaged packet) is left to the decoder, which reports
                # a frame it cannot decode; a flagged last packet is the cut-off end of an interrupted recording
                cut_off = bool(packet.is_corrupt)
                started = started or bool(packet.is_keyframe)  # a discarded keyframe is decoded all the same
                if packet.is_discard:
                    # decoded but never shown: the pre-roll before the start of a trimmed video's edit list
                    # (`ffmpeg -ss T -i IN -c copy OUT.mp4`); the decoder drops its frame, so the index does too
                    continue
                if packet.pts is None:
                    raise UnseekableVideoError(
                        self.path,
                        "the video stream has no timestamps (a raw elementary stream such as "
                        ".264?), so frames cannot be sought exactly; remux it into a container, "
                        "e.g. `ffmpeg -i IN -c copy OUT.mp4`",
                    )
                if not started:
                    leading.append(packet.pts)
                    continue
                pts_list.append(packet.pts)
                if packet.is_keyframe:
                    keyframe_pts.append(packet.pts)
        except av.error.FFmpegError as err:
            raise CorruptVideoError(self.path, f"cannot read the video packets ({err})") from err
        if not started:  # no packet flagged a keyframe at all: decoding starts at the first one, as before
            pts_list, leading = leading, []
        #: Packets before the first keyframe (a video cut with stream copy, without an edit list, in the
        #: middle of a group of pictures): they cannot be decoded and no player shows them, so the frames
        #: are indexed from the first keyframe on.
        self.leading_packets = len(leading)
        if not pts_list:
            raise CorruptVideoError(self.path, "the video stream holds no frames")
        listed = self._stream.frames  # packet count from the container header (0: unknown), pre-roll included
        if listed and packets < listed:
            raise CorruptVideoError(
                self.path,
                f"truncated or damaged: the container lists {listed} frames but only "
                f"{packets} can be read",
            )
        if cut_off:  # a fragmented MP4's header lists no frame count: this flag tells instead
            raise CorruptVideoError(
                self.path, f"truncated: the file ends inside the packet of its last frame ({packets - 1}); "
                "expected a complete video (an interrupted recording or copy?)")
        pts_list.sort()
        self._frame_pts = pts_list
        self._index_of_pts = {pts: i for i, pts in enumerate(pts_list)}
        keyframes = sorted(self._index_of_pts[p] for p in keyframe_pts)
        # a stream whose first packet is not flagged as a keyframe still starts decoding there
        self.keyframes: list[int] = keyframes if keyframes and keyframes[0] == 0 else [0, *keyframes]

    # ------------------------------------------------------------------ properties
    @property
    def num_frames(self) -> int:
        """Frames in the video: the packets of its main video stream (:func:`main_video_stream`) that are shown."""
        return len(self._frame_pts)

    @property
    def fps(self) -> float:
        """Average frame rate (frames per second); 0.0 when the container does not say."""
        rate = self._stream.average_rate or self._stream.guessed_rate
        return float(rate) if rate else 0.0

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of the frames :meth:`read` returns: the stream's size when it was
        opened (the decoder's changes with a spliced stream's frames, which :meth:`read` refuses),
        turned by :attr:`rotation` (a portrait phone clip stored as 1920x1080 is 1080x1920)."""
        width, height = self._stored_size()
        return (height, width) if self.rotation in (90, 270) else (width, height)

    def _stored_size(self) -> tuple[int, int]:
        if not all(self._opened_size):  # the container did not say: the decoder's, once it knows
            self._opened_size = (self._stream.codec_context.width, self._stream.codec_context.height)
        return self._opened_size

    def timestamp(self, index: int) -> float:
        """Presentation time of frame ``index`` in seconds from the stream's first frame."""
        time_base = self._stream.time_base or Fraction(1, 1)
        return float((self._frame_pts[index] - self._frame_pts[0]) * time_base)

    @functools.cached_property
    def _median_step(self) -> int:
        """The median step between consecutive presentation timestamps (stream time-base units)."""
        steps = sorted(b - a for a, b in zip(self._frame_pts, self._frame_pts[1:]))
        return steps[len(steps) // 2] if steps else 0

    @property
    def frame_interval(self) -> float:
        """The video's usual time between two frames (seconds): the median step between
        consecutive timestamps (robust to a header's wrong frame rate and to a few dropped
        frames); 0.0 for a single frame."""
        return float(self._median_step * (self._stream.time_base or Fraction(1, 1)))

    def time_gaps(self, num_frames: int | None = None) -> list[int]:
        """The frames ``i`` (of the first ``num_frames``) that come more than :data:`MAX_FRAME_STEP`
        frame intervals after frame ``i - 1``: where the video was cut or paused. ``extract-faces``
        records them, so that snippets of its frame folder do not span them either."""
        limit = self.num_frames if num_frames is None else min(int(num_frames), self.num_frames)
        pts, longest = self._frame_pts, MAX_FRAME_STEP * self._median_step  # integer timestamps: no Fraction per frame
        return [i for i in range(1, limit) if pts[i] - pts[i - 1] > longest] if longest > 0 else []

    def check_consecutive(self, indices: "Sequence[Sequence[int]] | torch.Tensor") -> None:
        """Raise :class:`~dynsnip.data.errors.FrameGapError` when a snippet (a row of frame
        ``indices``) holds two neighbouring frames more than :data:`MAX_FRAME_STEP` frame
        intervals apart in time (module docstring): a cut or a pause inside the snippet."""
        from .sampling import first_jump

        interval = self.frame_interval
        pts, longest = self._frame_pts, MAX_FRAME_STEP * self._median_step
        if interval <= 0 or (jump := first_jump(indices, lambda a, b: pts[b] - pts[a] > longest)) is None:
            return
        u, row, a, b = jump
        raise FrameGapError(
            self.path,
            f"snippet {u} (frames {row[0]}-{row[-1]}) spans a jump in time: frame {b} comes "
            f"{self.timestamp(b) - self.timestamp(a):.3f} s after frame {a}, where the video's frames are "
            f"{interval * 1000:.0f} ms apart (more than {MAX_FRAME_STEP:g}x: the video was cut or paused there); a "
            "snippet must be consecutive frames, since the jump would be scored as motion. Score the parts on either "
            "side of the cut as videos of their own",
        )

    # ------------------------------------------------------------------ decoding
    def read(self, indices: Sequence[int]) -> "np.ndarray":
        """Decode the frames at ``indices`` (any order, repeats allowed).

        Returns:
            ``uint8`` array ``(len(indices), H, W, 3)``, RGB, in the order of ``indices``.
        """
        np = require("numpy")
        indices = [int(i) for i in indices]
        if not indices:
            raise ValueError("read() needs at least one frame index")
        bad = [i for i in indices if not 0 <= i < self.num_frames]
        if bad:
            raise IndexError(
                f"{self.path}: frame indices {bad[:5]} out of range; the video has "
                f"{self.num_frames} frames (valid: 0..{self.num_frames - 1})"
            )
        decoded: dict[int, np.ndarray] = {}
        for wanted in sorted(set(indices)):
            decoded[wanted] = self._decode_frame(wanted)
        return np.stack([decoded[i] for i in indices])

    def iter_frames(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, "np.ndarray"]]:
        """Decode frames ``start .. stop-1`` sequentially; yields ``(index, (H, W, 3) uint8)``."""
        stop = self.num_frames if stop is None else min(stop, self.num_frames)
        for index in range(start, stop):
            yield index, self._decode_frame(index)

    def _open_decoder(self) -> int:
        """Decode the first frame (kept for a read that wants it; the decoder stays after it) and
        return the stream's display rotation, counterclockwise degrees in 0, 90, 180, 270."""
        av = require("av")
        try:
            if self.sequential:
                self._restart()
                decoder = self._decoder
            else:
                self._container.seek(self._frame_pts[0], stream=self._stream, backward=True, any_frame=False)
                decoder = self._container.decode(self._stream)
            frame = next(self._frames(decoder), None)
        except av.error.FFmpegError as err:
            raise CorruptVideoError(self.path, f"decoding the first frame failed ({err})") from err
        if frame is None:
            raise CorruptVideoError(self.path, "the video stream holds no decodable frame")
        rotation = _display_rotation(frame)
        if rotation is None and _mirrored(frame):
            raise CorruptVideoError(
                self.path, "the container's display matrix mirrors the picture (a flipped recording); expected a "
                "rotation only, which is applied: re-encode it as shown, e.g. with ffmpeg, which applies the matrix")
        if rotation is None:
            raise CorruptVideoError(
                self.path, f"the container's display rotation is {getattr(frame, 'rotation', '?')} degrees; expected a "
                "multiple of 90 (re-encode it upright, e.g. with ffmpeg, which applies the rotation)")
        index = self._index_of_pts.get(frame.pts)
        if index is not None:
            self._decoder, self._next_index, self._opening = decoder, index + 1, (index, frame)
        return rotation

    def _count_opening(self) -> None:
        """The first frame decoded when opening, counted as the opening seek to it when a read uses it."""
        if self._opening is not None:
            self._opening = None
            self.seeks += 1
            self.frames_decoded += 1

    def _decode_frame(self, wanted: int) -> "np.ndarray":
        av = _av()
        if self._opening is not None and self._opening[0] == wanted and self._next_index == wanted + 1:
            frame = self._opening[1]
            self._count_opening()
            self._check_size(frame, wanted)
            return self._to_array(frame)
        keyframe = 0 if self.sequential else self.keyframes[bisect.bisect_right(self.keyframes, wanted) - 1]
        # keep decoding when no keyframe lies between the decoder's position and ``wanted``
        resume = (
            self._decoder is not None
            and self._next_index is not None
            and keyframe <= self._next_index <= wanted
        )
        if not resume:
            self._restart() if self.sequential else self._seek(keyframe)
        else:
            self._count_opening()
        for attempt in range(2):
            try:
                for frame in self._frames(self._decoder):
                    self.frames_decoded += 1
                    index = self._index_of_pts.get(frame.pts)
                    if index is None:
                        continue  # a frame the index does not know (e.g. pts None): skip it
                    self._next_index = index + 1
                    if index == wanted:
                        self._check_size(frame, index)
                        return self._to_array(frame)
                    if index > wanted:
                        break  # the seek overshot the wanted frame
            except av.error.FFmpegError as err:
                self._decoder = None
                raise CorruptVideoError(
                    self.path, f"decoding failed near frame {wanted} ({err})"
                ) from err
            if attempt == 0:
                self._restart()  # overshoot or early end: decode from the very start once, without seeking
        self._decoder = None
        raise CorruptVideoError(
            self.path,
            f"frame {wanted} of {self.num_frames} could not be decoded (the stream ends or is "
            "damaged before it)",
        )

    def _to_array(self, frame: object) -> "np.ndarray":
        """``frame`` as ``(H, W, 3)`` RGB, turned upright by :attr:`rotation`."""
        rgb = _to_rgb(frame)
        if self.rotation:
            np = require("numpy")
            rgb = np.ascontiguousarray(np.rot90(rgb, self.rotation // 90))  # counterclockwise, as the display matrix
        return rgb

    def _check_size(self, frame: object, index: int) -> None:
        """Fail closed on a frame size or display rotation that differs from the stream's: face boxes
        found on one size would crop frames of the other at the wrong place (a spliced stream, 176x144
        then 352x288)."""
        rotation = _display_rotation(frame)
        if rotation != self.stored_rotation:
            raise FrameSizeChangeError(
                self.path, f"frame {index} is displayed turned by {getattr(frame, 'rotation', '?')} degrees but the video "
                f"starts at {self.stored_rotation}; expected one display rotation throughout: re-encode it upright "
                "(e.g. with ffmpeg, which applies the rotation)")
        width, height = self._stored_size()
        if width and height and (frame.width, frame.height) != (width, height):
            raise FrameSizeChangeError(
                self.path, f"frame {index} is {frame.width}x{frame.height} but the video starts at {width}x{height}; "
                "expected one frame size throughout (the face boxes of one size would crop the other at the wrong "
                f"place): re-encode it at one size, e.g. `ffmpeg -i IN -vf scale={width}:{height} OUT.mp4`")

    def _frames(self, decoder: Iterator) -> Iterator:
        """``decoder``'s frames, less those of the packets before the first keyframe (which FFmpeg may
        still output, broken, after decoding from the start)."""
        first = self._frame_pts[0]
        for frame in decoder:
            if self.leading_packets and frame.pts is not None and frame.pts < first \
                    and frame.pts not in self._index_of_pts:
                continue
            yield frame

    def _restart(self) -> None:
        """Decode from the very start of the file: a fresh container, no seek (whose landing point the
        sequential formats do not keep, :data:`SEQUENTIAL_FORMATS`)."""
        av = require("av")
        try:
            container = av.open(self.path)
        except av.error.FFmpegError as err:
            raise CorruptVideoError(self.path, f"reopening the video failed ({err})") from err
        self._container.close()
        self._container = container
        self._stream = main_video_stream(container)
        self._decoder = container.decode(self._stream)
        self._next_index = None
        self._opening = None
        self.seeks += 1

    def _seek(self, keyframe: int) -> None:
        av = require("av")
        try:
            self._container.seek(
                self._frame_pts[keyframe], stream=self._stream, backward=True, any_frame=False
            )
        except av.error.FFmpegError as err:
            raise CorruptVideoError(self.path, f"seeking to frame {keyframe} failed ({err})") from err
        self._decoder = self._container.decode(self._stream)
        self._next_index = None
        self._opening = None
        self.seeks += 1

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        self._decoder = None
        self._container.close()

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        width, height = self.size
        turned = f", rotation={self.rotation}" if self.rotation else ""
        return (
            f"VideoReader({self.path!r}, frames={self.num_frames}, size={width}x{height}{turned}, "
            f"fps={self.fps:.2f}, keyframes={len(self.keyframes)})"
        )


def _mirrored(frame: object) -> bool:
    """Whether ``frame``'s display matrix mirrors the picture (a negative determinant of its 2x2
    part: a flip, alone or with a rotation, as some phones' front cameras record); False without
    one. ``frame.rotation`` alone cannot tell: a vertical flip reads as rotation 0."""
    for side_data in getattr(frame, "side_data", ()):
        if getattr(getattr(side_data, "type", None), "name", "") != "DISPLAYMATRIX":
            continue
        raw = bytes(side_data)
        if len(raw) != 36:  # nine int32, the first four the 2x2 part in 16.16 fixed point
            return False
        a, b, _, c, d, *_ = struct.unpack("=9i", raw)
        return a * d - b * c < 0
    return False


def _display_rotation(frame: object) -> int | None:
    """The counterclockwise display rotation of ``frame`` in 0, 90, 180, 270 (0 without a display
    matrix, or with a PyAV too old to say); None for an angle that is not a multiple of 90, or a
    display matrix that mirrors the picture (not applied: such a video fails, see :class:`VideoReader`)."""
    if _mirrored(frame):
        return None
    degrees = getattr(frame, "rotation", 0) or 0
    quarter = round(degrees / 90)
    if abs(degrees - 90 * quarter) > 1:  # the matrix's angle is rounded to whole degrees
        return None
    return (90 * quarter) % 360


@functools.lru_cache(maxsize=None)
def _av():
    """PyAV, looked up once (per frame it cost 2% of the decoding)."""
    return require("av")


# The conversion to RGB in the calling thread. PyAV >= 15 lets swscale split each frame's conversion across
# threads by default ("auto"); on video frames that costs more than it saves: each frame waits for every thread,
# a long wait when other work holds a core (decode-only on the bundled footage, 2 cores, one other busy process:
# 357 ms wall / 170 ms CPU with it, 140 / 132 ms in one thread). The pixels are the same (tested).
_RGB_OPTIONS: dict = {"format": "rgb24", "threads": 1}


def _to_rgb(frame: object) -> "np.ndarray":
    """``frame`` as an ``(H, W, 3)`` uint8 RGB array, converted by swscale in this thread."""
    global _RGB_OPTIONS
    try:
        return frame.to_ndarray(**_RGB_OPTIONS)
    except TypeError:  # an older PyAV: no ``threads`` option (and a one-thread conversion anyway)
        if "threads" not in _RGB_OPTIONS:
            raise
        _RGB_OPTIONS = {"format": "rgb24"}
        return frame.to_ndarray(**_RGB_OPTIONS)


def read_frames(path: str | os.PathLike[str], indices: Sequence[int]) -> "np.ndarray":
    """Decode the frames ``indices`` of the video at ``path``: ``(len(indices), H, W, 3)`` RGB."""
    with VideoReader(path) as video:
        return video.read(indices)


# top-level boxes of an ISO base media file (MP4, MOV, M4V, 3GP) that may come first
_FIRST_BOXES = frozenset({b"ftyp", b"wide", b"free", b"skip", b"mdat", b"moov", b"pnot"})


def mp4_cut_short(path: str | os.PathLike[str]) -> str | None:
    """Why an MP4 / MOV file that FFmpeg cannot open looks cut short, or None.

    Most cameras and encoders write the index (the ``moov`` box) after the frames (``mdat``),
    so a download or copy that stopped early leaves a file that starts like an MP4 and has no
    index: FFmpeg says only "invalid data". This walks the file's top-level boxes (their 8- or
    16-byte headers, nothing else is read) and names what is missing: the file ending inside a
    box, or no ``moov`` box at all.
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            offset, boxes = 0, []
            while offset + 8 <= size:
                f.seek(offset)
                length, kind = struct.unpack(">I4s", f.read(8))
                if not boxes and kind not in _FIRST_BOXES:
                    return None  # not an ISO media file: FFmpeg's own message stands
                if length == 1:  # a 64-bit size follows
                    if offset + 16 > size:
                        break
                    length = struct.unpack(">Q", f.read(8))[0]
                elif length == 0:  # the box runs to the end of the file
                    length = size - offset
                if length < 8:
                    return None  # not a box header: some other damage
                boxes.append(kind)
                if offset + length > size:
                    name = kind.decode("latin-1")
                    index = "" if b"moov" in boxes else " and has no 'moov' index (the table of its frames)"
                    return (f"MP4/MOV file cut short: it ends at byte {size:,} inside its '{name}' box, which declares "
                            f"{length:,} bytes from byte {offset:,}{index}; an interrupted download, copy or recording. "
                            "Expected a complete file: copy or download it again")
                offset += length
    except (OSError, struct.error):
        return None
    if boxes and b"moov" not in boxes:
        return ("MP4/MOV file without its 'moov' index (the table of its frames): top-level boxes "
                f"{', '.join(repr(b.decode('latin-1')) for b in boxes)}; an interrupted download, copy or recording "
                "usually loses it. Expected a complete file: copy or download it again")
    return None
