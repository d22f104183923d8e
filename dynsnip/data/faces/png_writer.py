"""Encode uint8 images as lossless PNG files, faster than Pillow.

Why this exists: ``dynsnip extract-faces`` writes one lossless PNG per video frame, and with
Pillow (``Image.save(path, compress_level=1)``) that write costs about as much as decoding
the video. Pillow's encoder spends most of its time choosing a filter for every row
(176x144 RGB: 4.1 ms per image at level 1, still 2.0 ms at level 0). Applying one fixed
filter with numpy and compressing with zlib's run-length strategy takes about 0.8 ms for the
same image (540x640: ~7-10 ms against Pillow's 19 ms), for files about 10% larger than
Pillow's level 1. Any PNG decoder reads the result: it is a plain PNG as the specification
defines it (signature, IHDR, one IDAT, IEND, each chunk with its CRC-32).

**The deflate encoder.** With the ``isal`` package installed (Intel's ISA-L through python-isal;
in the ``video`` extra), the filtered rows are compressed by ISA-L's deflate at its level 1
instead of zlib: 3-4x faster than zlib's run-length strategy and 5-7% smaller files, measured on
the face regions of the bundled footage and a 1080p clip (zlib Z_RLE / ISA-L level 1: 66 / 19 ms
and 0.271 / 0.255 of the raw size for the 720p clip's 19 regions, 99 / 26 ms and 0.195 / 0.185
for 19 1080p regions, 33 / 11 ms and 0.642 / 0.597 for carphone's 120). Either way the file is a
standard PNG holding exactly the input pixels (the zlib stream differs, the image does not);
without ``isal`` zlib is used (:func:`encoder` says which). A level of 0 always stores the rows
uncompressed (zlib's stored blocks).

Expected layout: a numpy ``uint8`` array, row-major, top row first:

* ``(H, W)`` grayscale -> PNG colour type 0,
* ``(H, W, 3)`` RGB -> colour type 2,
* ``(H, W, 4)`` RGBA -> colour type 6,

all at bit depth 8. Views into a bigger array (``frame[y0:y1, x0:x1]``) are fine; the
filter step reads them in place, without a copy.
"""
from __future__ import annotations

import os
import struct
import zlib

from .._optional import require

np = require("numpy")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Filter type 2, "Up": each byte minus the byte above it. One fixed filter is a single numpy
# subtraction instead of Pillow's per-row search, and on video frames (smooth vertically)
# it leaves long runs of small values that compress well.
PNG_FILTER_UP = 2

# Z_RLE only looks for repeats of the previous byte: much faster than the default strategy's
# match search, and the "Up"-filtered rows are mostly runs, so files stay near Pillow's
# level 1 size (measured: ~10% larger on small clips, no larger on a 1280x720 frame).
ZLIB_STRATEGY = zlib.Z_RLE

# Level 1, the level extract-faces used with Pillow. With Z_RLE, zlib (1.2.x) only tells
# level 0 (stored, uncompressed) from the rest: levels 1-9 give the same bytes at the same speed.
# ISA-L takes levels 1-3 (4-9 are its 3).
DEFAULT_LEVEL = 1

try:  # ISA-L's deflate (module docstring); zlib without it
    from isal import isal_zlib as _isal
except ImportError:  # pragma: no cover - depends on the installation
    _isal = None
ISAL_MAX_LEVEL = 3


def encoder() -> str:
    """The deflate encoder of the PNGs written: ``"isal"`` (ISA-L) or ``"zlib"``."""
    return "isal" if _isal is not None else "zlib"

# PNG colour type by channel count (bit depth is always 8).
_COLOUR_TYPES = {1: 0, 3: 2, 4: 6}

# A chunk's length field is 4 bytes, at most 2**31 - 1.
_MAX_CHUNK_LENGTH = 2**31 - 1


def encode_png(image: "np.ndarray", level: int = DEFAULT_LEVEL) -> bytes:
    """The PNG file bytes of ``image``.

    Args:
        image: ``(H, W)`` grayscale, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA, dtype uint8;
            need not be contiguous.
        level: compression level, 0 (stored, no compression) to 9; with zlib's Z_RLE
            levels 1-9 currently produce the same output, with ISA-L 3-9 do.

    Raises:
        ValueError: wrong dtype, shape, an empty image, or a level outside 0-9.
    """
    pixels = _check_image(image)
    _check_level(level)
    height, width, channels = pixels.shape

    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[channels], 0, 0, 0)
    data = _deflate(_filter_up(pixels), level)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _deflate(rows: "np.ndarray", level: int) -> bytes:
    """The zlib stream (RFC 1950) of the filtered rows: ISA-L's deflate when installed, else zlib's
    run-length strategy; level 0: stored, uncompressed (zlib). Both release the GIL."""
    if level and _isal is not None:
        return _isal.compress(rows, min(level, ISAL_MAX_LEVEL))
    compressor = zlib.compressobj(level, zlib.DEFLATED, 15, 9, ZLIB_STRATEGY)
    return compressor.compress(rows) + compressor.flush()


def write_png(path: str | os.PathLike, image: "np.ndarray", level: int = DEFAULT_LEVEL) -> None:
    """Write ``image`` to ``path`` as a PNG file (see :func:`encode_png`).

    The bytes go to the file descriptor directly (``os.write``), as ``open(path, "wb")`` would create
    the file (mode 0o666 less the umask, truncated if it exists), without a buffered file object around
    one write: extract-faces writes one small file per frame, and that object cost about a fifth of the
    file's creation (70 of 360 us per file on this project's loaded 2-core VM, interleaved)."""
    data = memoryview(encode_png(image, level))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o666)
    try:
        while data:  # a regular file takes it in one call; a short write is continued
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


def _check_image(image: "np.ndarray") -> "np.ndarray":
    """``image`` as an ``(H, W, C)`` uint8 view, or ValueError saying what is wrong."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy uint8 array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"image dtype is {image.dtype}; expected uint8 (bit depth 8)")
    if image.ndim not in (2, 3):
        raise ValueError(
            f"image has {image.ndim} dimensions (shape {image.shape}); expected (H, W) grayscale,"
            " (H, W, 3) RGB or (H, W, 4) RGBA"
        )
    if image.ndim == 3 and image.shape[2] not in (3, 4):
        raise ValueError(
            f"image has {image.shape[2]} channels (shape {image.shape}); expected 3 (RGB) or"
            " 4 (RGBA), or a 2-D (H, W) array for grayscale"
        )
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty (shape {image.shape}); expected height and width >= 1")
    return image[:, :, np.newaxis] if image.ndim == 2 else image


def _check_level(level: int) -> None:
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= level <= 9:
        raise ValueError(f"compression level is {level!r}; expected an integer from 0 to 9")


def _filter_up(pixels: "np.ndarray") -> "np.ndarray":
    """The filtered scanlines ``(H, 1 + W * C)`` uint8, C-contiguous (zlib reads them in place, no
    copy to bytes): per row a filter-type byte, then the row minus the row above.

    The spec treats the row above the first as zeros, so the first row is stored as is.
    uint8 subtraction wraps modulo 256, which is what the spec asks for.
    """
    height, width, channels = pixels.shape
    scanlines = np.empty((height, 1 + width * channels), dtype=np.uint8)
    scanlines[:, 0] = PNG_FILTER_UP
    # Split each row's bytes back into (W, C): a view, so numpy writes into scanlines directly.
    rows = scanlines[:, 1:].reshape(height, width, channels)
    rows[0] = pixels[0]
    np.subtract(pixels[1:], pixels[:-1], out=rows[1:])
    return scanlines


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: big-endian length, type, data, CRC-32 of type and data."""
    if len(data) > _MAX_CHUNK_LENGTH:
        raise ValueError(f"{kind.decode()} chunk of {len(data)} bytes; PNG allows at most {_MAX_CHUNK_LENGTH}")
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)
