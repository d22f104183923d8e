"""Video files for the data-pipeline tests: the bundled real clips, and bad or re-encoded
variants generated in temporary folders (nothing here reads outside the repository)."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from dynsnip.data import bundled_video

TEST_DATA = Path(__file__).parent / "data"
RAW_H264 = TEST_DATA / "Cisco_Men_whisper_640x320_CAVLC_Bframe_9.264"

# Hand-marked landmarks (x, y in frame pixels: eye, eye, mouth centre) on real frames,
# read off enlarged frames with a pixel grid; independent of any detector.
LANDMARKS = {
    ("carphone_pristine", 0): [(76, 60), (97, 55), (91, 81)],
    ("carphone_pristine", 29): [(67, 61), (89, 55), (84, 81)],
    ("carphone_pristine", 60): [(65, 54), (86, 47), (82, 75)],
    ("carphone_pristine", 89): [(50, 65), (70, 53), (75, 76)],
    ("Zhling_1280x720", 10): [(585, 465), (665, 455), (635, 545)],
    # two_people frame 0: the woman on the right (larger face) and the man on the left
    ("two_people_320x192_test_vd_rc", "woman"): [(217, 73), (248, 73), (233, 98)],
    ("two_people_320x192_test_vd_rc", "man"): [(55, 33), (75, 33), (65, 55)],
}


def carphone() -> Path:
    return bundled_video("carphone_pristine")


def two_people() -> Path:
    return bundled_video("two_people_320x192_test_vd_rc")


def decode_all(path: Path) -> list[np.ndarray]:
    """Every frame, decoded front to back with plain PyAV: the reference for seeking reads."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def encode(path: Path, frames: list[np.ndarray], fps: int = 25, gop: int = 250, bframes: int = 0,
           display_rotation: float | None = None, display_hflip: bool = False, pts: list[int] | None = None,
           codec: str = "libx264") -> Path:
    """Write ``frames`` (RGB uint8) as an H.264 video (``codec``: another encoder, e.g. ``mpeg2video``)
    with a keyframe every ``gop`` frames, in the container ``path``'s suffix names (MP4, ``.ts``,
    ``.mpg``, ...); ``display_rotation``: the container's display matrix, counterclockwise degrees (as a
    phone writes a portrait clip: landscape frames, -90), mirrored after it with ``display_hflip``;
    ``pts``: each frame's presentation time in frame intervals (default 0, 1, 2, ...: a jump is a cut or
    a pause)."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if display_rotation is not None:
            stream.set_display_rotation(display_rotation, hflip=display_hflip)
        stream.options = ({"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": str(bframes),
                           "preset": "ultrafast"} if codec == "libx264" else {"g": str(gop), "bf": str(bframes)})
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def faceless_frames(n: int = 12, size: tuple[int, int] = (160, 128)) -> list[np.ndarray]:
    """A grey gradient with a moving bright square: real video content, no face."""
    width, height = size
    base = np.linspace(40, 200, width, dtype=np.uint8)[None, :, None].repeat(height, 0).repeat(3, 2)
    frames = []
    for i in range(n):
        frame = base.copy()
        frame[30:60, 10 + 5 * i: 40 + 5 * i] = (230, 200, 60)
        frames.append(frame)
    return frames


def write_text_as_mp4(path: Path) -> Path:
    path.write_text("this is a text file, not a video\n" * 20)
    return path


def write_audio_only(path: Path) -> Path:
    """A WAV file: a valid container with one audio stream and no video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _remuxed_and_cut(src: Path, path: Path, movflags: str) -> Path:
    """``src`` remuxed with these MP4 ``movflags``, then cut in half."""
    full = path.with_name(path.stem + "_full.mp4")
    with av.open(str(src)) as source, av.open(str(full), "w", options={"movflags": movflags} if movflags else {}) as out:
        in_stream = source.streams.video[0]
        out_stream = out.add_stream_from_template(in_stream)
        for packet in source.demux(in_stream):
            if packet.dts is None:
                continue
            packet.stream = out_stream
            out.mux(packet)
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    full.unlink()
    return path


def write_cut_mid_gop(src: Path, path: Path, skip: int = 5) -> Path:
    """``src``'s packets from the ``skip``-th on, remuxed as they are (a cut with stream copy and no edit
    list): the file starts inside a group of pictures, with packets no decoder can decode."""
    with av.open(str(src)) as source, av.open(str(path), "w") as out:
        in_stream = source.streams.video[0]
        out_stream = out.add_stream_from_template(in_stream)
        for i, packet in enumerate(source.demux(in_stream)):
            if packet.size and i >= skip:
                packet.stream = out_stream
                out.mux(packet)
    return path


def write_truncated_mp4(src: Path, path: Path) -> Path:
    """``src`` remuxed with its index first (faststart), then cut in half: opens, then ends early."""
    return _remuxed_and_cut(src, path, "faststart")


def write_cut_before_its_index(src: Path, path: Path) -> Path:
    """``src`` remuxed as cameras write MP4 (the frames first, the ``moov`` index at the end), cut in
    half: the usual interrupted download, which FFmpeg cannot open at all."""
    return _remuxed_and_cut(src, path, "")


def write_truncated_fragmented_mp4(src: Path, path: Path) -> Path:
    """``src`` remuxed as a fragmented MP4 (what phones, browsers and stream recorders write: no
    frame count in the header), cut in half: an interrupted recording, its last packet cut off."""
    return _remuxed_and_cut(src, path, "frag_keyframe+empty_moov")


def write_trimmed_with_edit_list(src: Path, path: Path, pre_roll: int = 5) -> Path:
    """What ``ffmpeg -ss T -i IN -c copy OUT.mp4`` writes: ``src`` (a keyframe every 12 frames and
    B-frames, re-encoded here) cut at its second keyframe, ``pre_roll`` frames before the cut kept
    as packets an edit list hides (flagged discard: decoded, never shown)."""
    frames = decode_all(src)
    gop = path.with_name(path.stem + "_gop.mp4")
    encode(gop, frames, fps=30, gop=12, bframes=3)
    with av.open(str(gop)) as source, av.open(str(path), "w") as out:
        stream = source.streams.video[0]
        step = int(round(1 / (30 * stream.time_base)))
        packets = [p for p in source.demux(stream) if p.dts is not None]
        cut = sorted(p.pts for p in packets if p.is_keyframe)[1]
        out_stream = out.add_stream_from_template(stream)
        for packet in packets:
            if packet.dts < cut - 3 * step or (packet.pts < cut and packet.dts < cut):
                continue
            packet.pts -= cut + pre_roll * step
            packet.dts -= cut + pre_roll * step
            packet.stream = out_stream
            out.mux(packet)
    gop.unlink()
    return path


@pytest.fixture(scope="session")
def gop_video(tmp_path_factory) -> Path:
    """carphone re-encoded with a keyframe every 12 frames and 2 B-frames: seeks land mid-file."""
    return encode(tmp_path_factory.mktemp("gop") / "carphone_gop12.mp4", decode_all(carphone()), fps=30, gop=12, bframes=2)


@pytest.fixture(scope="session")
def faceless_video(tmp_path_factory) -> Path:
    return encode(tmp_path_factory.mktemp("faceless") / "no_face.mp4", faceless_frames())


def blinking_frames(frames: list[np.ndarray], every: int = 4) -> list[np.ndarray]:
    """``frames`` with every frame black except those whose index is a multiple of ``every``: the
    face shows only on the frames a detector with ``detect_every = every`` looks at."""
    return [frame if i % every == 0 else np.zeros_like(frame) for i, frame in enumerate(frames)]


def write_size_change(path: Path, frames: list[np.ndarray], change_at: int) -> Path:
    """An MPEG-TS H.264 stream whose frames from ``change_at`` on are twice the size (176x144, then
    352x288 for carphone): two encodes spliced, as a capture that switched resolution writes."""
    from fractions import Fraction

    from PIL import Image

    def part(frames: list[np.ndarray], start: int) -> bytes:
        height, width = frames[0].shape[:2]
        target = path.with_name(f"{path.stem}.part{start}.ts")
        with av.open(str(target), "w", format="mpegts") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.options = {"g": "8", "bf": "0", "preset": "ultrafast"}
            for i, array in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(array, format="rgb24")
                frame.pts, frame.time_base = start + i, Fraction(1, 25)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
        data = target.read_bytes()
        target.unlink()
        return data

    larger = [np.asarray(Image.fromarray(f).resize((2 * f.shape[1], 2 * f.shape[0]))) for f in frames[change_at:]]
    path.write_bytes(part(frames[:change_at], 0) + part(larger, change_at))
    return path
