"""The numpy/zlib PNG writer: Pillow decodes its files to the exact input, chunks are valid."""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from dynsnip.data import VideoReader, bundled_videos
from dynsnip.data.faces import png_writer
from dynsnip.data.faces.png_writer import PNG_SIGNATURE, encode_png, write_png

MODES = {2: "L", 3: "RGB", 4: "RGBA"}


@pytest.fixture(autouse=True, params=["zlib", "isal"])
def deflate_encoder(request, monkeypatch):
    """Every test with both deflate encoders: zlib, and ISA-L where ``isal`` is installed (the
    ``video`` extra installs it)."""
    if request.param == "zlib":
        monkeypatch.setattr(png_writer, "_isal", None)
    else:
        monkeypatch.setattr(png_writer, "_isal", pytest.importorskip("isal.isal_zlib"))
    assert png_writer.encoder() == request.param
    return request.param


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def assert_round_trip(array: np.ndarray, level: int = 1) -> bytes:
    data = encode_png(array, level)
    image = decode(data)
    expected_mode = "L" if array.ndim == 2 else MODES[array.shape[2]]
    assert image.format == "PNG"
    assert image.mode == expected_mode
    assert image.size == (array.shape[1], array.shape[0])
    decoded = np.asarray(image)
    assert decoded.shape == array.shape
    assert np.array_equal(decoded, array), "decoded pixels differ from the input"
    return data


def chunks(data: bytes) -> list[tuple[bytes, bytes, int]]:
    """(type, data, stored CRC) of each chunk after the signature; fails on truncation."""
    out = []
    position = len(PNG_SIGNATURE)
    while position < len(data):
        assert position + 12 <= len(data), "truncated chunk header"
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        assert len(body) == length, f"{kind!r} chunk truncated"
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        out.append((kind, body, crc))
        position += 12 + length
    assert position == len(data)
    return out


def noise(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def gradient(height=48, width=64) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), (x + y) % 256], axis=-1).astype(np.uint8)


@pytest.mark.parametrize(
    "array",
    [
        noise((24, 32, 3)),
        noise((24, 32)),
        noise((24, 32, 4)),
        noise((1, 1, 3)),
        noise((1, 1)),
        noise((1, 1, 4)),
        noise((7, 13, 3)),
        noise((13, 7)),
        noise((1, 9, 3)),
        noise((9, 1, 4)),
        gradient(),
        gradient()[:, :, 0],
    ],
    ids=[
        "rgb", "gray", "rgba", "rgb-1x1", "gray-1x1", "rgba-1x1", "rgb-7x13", "gray-13x7",
        "one-row", "one-column", "gradient-rgb", "gradient-gray",
    ],
)
def test_round_trip(array):
    assert_round_trip(array)


def test_round_trip_exercises_wraparound():
    # Rows alternating 0 and 255 make "Up" differences of +255 and -255 (mod 256 both ways).
    array = np.zeros((6, 5, 3), dtype=np.uint8)
    array[1::2] = 255
    assert_round_trip(array)


def test_non_contiguous_slices_round_trip_without_a_copy_by_the_caller():
    frame = noise((60, 80, 4), seed=1)
    crop = frame[5:42, 11:70, :3]  # strided rows and pixels: not C-contiguous
    assert not crop.flags.c_contiguous
    assert_round_trip(crop)
    assert_round_trip(frame[::2, ::3, :3])  # every other row, every third column
    assert_round_trip(frame[::-1, :, 1])  # flipped, single channel (gray)
    assert_round_trip(np.asfortranarray(frame[:, :, :3]))


def test_a_real_frame_round_trips():
    path = min(bundled_videos(), key=lambda p: p.stat().st_size)
    with VideoReader(path) as reader:
        frames = reader.read([0])
    assert frames.shape[0] == 1 and frames.dtype == np.uint8
    assert_round_trip(frames[0])
    assert_round_trip(frames[0, 10:50, 20:90])  # a face-crop-like slice


@pytest.mark.parametrize("level", range(10))
def test_every_level_round_trips(level):
    assert_round_trip(noise((17, 23, 3), seed=level), level)
    assert_round_trip(gradient(), level)


def test_higher_level_is_not_larger_on_a_smooth_image():
    smooth = gradient(120, 160)
    stored = encode_png(smooth, 0)
    best = encode_png(smooth, 9)
    assert len(best) <= len(stored)
    assert len(best) < len(stored) / 2, "a smooth image should compress well at level 9"


@pytest.mark.parametrize(
    "array, colour_type",
    [(noise((7, 13, 3)), 2), (noise((7, 13)), 0), (noise((7, 13, 4)), 6)],
    ids=["rgb", "gray", "rgba"],
)
def test_chunk_structure(array, colour_type):
    data = encode_png(array)
    assert data.startswith(PNG_SIGNATURE)
    parsed = chunks(data)
    assert [kind for kind, _, _ in parsed] == [b"IHDR", b"IDAT", b"IEND"]
    for kind, body, crc in parsed:
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", parsed[0][1])
    assert (width, height) == (13, 7)
    assert depth == 8
    assert colour == colour_type
    assert (compression, filtering, interlace) == (0, 0, 0)
    assert parsed[2][1] == b""
    # The image data is a zlib stream of H scanlines, each one filter byte plus W * C bytes.
    raw = zlib.decompress(parsed[1][1])
    channels = 1 if array.ndim == 2 else array.shape[2]
    assert len(raw) == 7 * (1 + 13 * channels)
    assert all(raw[row * (1 + 13 * channels)] == 2 for row in range(7)), "every row uses filter 2 (Up)"


def test_write_png_writes_the_encoded_bytes(tmp_path):
    array = noise((9, 11, 3))
    path = tmp_path / "frame.png"
    write_png(path, array, level=3)
    assert path.read_bytes() == encode_png(array, 3)
    with Image.open(path) as image:
        assert np.array_equal(np.asarray(image), array)
    write_png(str(tmp_path / "str.png"), array)  # str paths too
    assert (tmp_path / "str.png").read_bytes() == encode_png(array)
    path.write_bytes(b"x" * 10_000)  # a longer file there already: replaced, not written over its start
    write_png(path, array)
    assert path.read_bytes() == encode_png(array)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~_umask())  # as open(path, "wb") creates it


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_write_png_continues_a_short_write(tmp_path, monkeypatch):
    """os.write may take fewer bytes than given: the rest is written, the file is the whole PNG."""
    array = noise((40, 50, 3))
    real_write = os.write
    monkeypatch.setattr(png_writer.os, "write", lambda fd, data: real_write(fd, bytes(data[:97])))
    write_png(tmp_path / "short.png", array)
    assert (tmp_path / "short.png").read_bytes() == encode_png(array)


@pytest.mark.parametrize(
    "array, level, words",
    [
        (np.zeros((4, 4, 3), dtype=np.float32), 1, ["float32", "uint8"]),
        (np.zeros((1, 4, 4, 3), dtype=np.uint8), 1, ["4 dimensions", "(H, W, 3)"]),
        (np.zeros((4,), dtype=np.uint8), 1, ["1 dimensions"]),
        (np.zeros((4, 4, 2), dtype=np.uint8), 1, ["2 channels", "3 (RGB)"]),
        (np.zeros((4, 4, 1), dtype=np.uint8), 1, ["1 channels"]),
        (np.zeros((0, 4, 3), dtype=np.uint8), 1, ["empty", "(0, 4, 3)"]),
        (np.zeros((4, 0), dtype=np.uint8), 1, ["empty"]),
        (np.zeros((4, 4, 3), dtype=np.uint8), 10, ["level", "10", "0 to 9"]),
        (np.zeros((4, 4, 3), dtype=np.uint8), -1, ["level", "-1", "0 to 9"]),
        (np.zeros((4, 4, 3), dtype=np.uint8), 1.5, ["level", "1.5"]),
        ([[0, 1], [2, 3]], 1, ["numpy", "list"]),
    ],
    ids=[
        "float", "4-d", "1-d", "2-channels", "1-channel-3d", "empty-rows", "empty-cols",
        "level-10", "level-negative", "level-float", "list",
    ],
)
def test_bad_input_raises_a_value_error_naming_the_problem(array, level, words):
    with pytest.raises(ValueError) as error:
        encode_png(array, level)
    for word in words:
        assert word in str(error.value)


def test_isal_writes_smaller_files_of_the_same_pixels_as_zlib(monkeypatch):
    """ISA-L's deflate (the default where installed) against zlib's run-length strategy on a real
    face region: the same pixels, a smaller file."""
    isal = pytest.importorskip("isal.isal_zlib")
    path = min(bundled_videos(), key=lambda p: p.stat().st_size)
    with VideoReader(path) as reader:
        region = reader.read([0])[0, 10:150, 30:200]
    monkeypatch.setattr(png_writer, "_isal", None)
    with_zlib = encode_png(region)
    monkeypatch.setattr(png_writer, "_isal", isal)
    with_isal = encode_png(region)
    assert with_isal != with_zlib and len(with_isal) < len(with_zlib)
    assert np.array_equal(np.asarray(decode(with_isal)), np.asarray(decode(with_zlib)))
    assert len(encode_png(region, 0)) > len(with_zlib)  # level 0: stored, whatever the encoder
