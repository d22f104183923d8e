"""Keep freed memory in the process (glibc's malloc on Linux): CPU forwards without page faults.

Why: glibc's ``malloc`` serves large blocks (from 128 KiB; the threshold rises with use, up to
32 MiB) with fresh ``mmap``'d pages, gives them back to the kernel on ``free``, and trims the
heap's free top. A CPU forward allocates its activations, frees them, and the next forward
allocates them again, so every forward faults its pages back in, each zeroed by the kernel:
for ``dil_resnet50`` on 16 frames of 224 px, about 214,000 minor page faults (0.8 GB) per
forward on this project's machine, and 20% of the forward's time (1165 -> 899 ms; ``resnet50``
895 -> 707 ms; ``dynsnip predict`` on the bundled footage 1.27x faster; docs/performance.md).
PyTorch's CPU performance guide recommends jemalloc or tcmalloc (``LD_PRELOAD``) for this; this
module gets the same effect from glibc itself, with two ``mallopt`` settings:

* ``M_MMAP_THRESHOLD`` = :data:`MMAP_THRESHOLD` (1 GiB): blocks up to it come from the heap,
  where freed memory is reused; larger ones are still mapped and given back when freed;
* ``M_TRIM_THRESHOLD`` = :data:`TRIM_THRESHOLD` (the largest value): the heap's free top is kept.

The price: the process holds on to its peak heap until it exits, memory the next forward,
batch or video uses again. That is what a command that scores, trains or extracts wants, so
the ``dynsnip`` command line does it at start (:func:`keep_freed_memory`); importing the
library does not change the allocator of someone else's process (call it yourself if you run
models in a loop on a CPU).

Left alone: where it cannot apply or the user has chosen (the reason is returned): not glibc
(macOS, Windows, musl), an allocator preloaded in its place (jemalloc, tcmalloc, mimalloc),
glibc's own settings given in the environment (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``, ``MALLOC_MMAP_MAX_``, or ``glibc.malloc``
tunables in ``GLIBC_TUNABLES``), and ``DYNSNIP_KEEP_FREED_MEMORY=0``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

# mallopt parameters (glibc's malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 2**30  # blocks above 1 GiB are still mapped and returned (a one-off buffer, not a forward's)
TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int: the largest, never trim

OPT_OUT = "DYNSNIP_KEEP_FREED_MEMORY"
GLIBC_MALLOC_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")
PRELOADED_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")

_applied: str | None = None  # what the first call did (later calls repeat it)


def keep_freed_memory() -> str:
    """Set glibc's malloc to keep freed memory for reuse (module docstring), once per process.

    Returns ``"kept"`` when set (now or by an earlier call), else ``"left alone: <reason>"``.
    Never raises: the allocator's settings are a matter of speed, not of results.
    """
    global _applied
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> str:
    if os.environ.get(OPT_OUT, "").strip().lower() in ("0", "false", "no", "off"):
        return f"left alone: {OPT_OUT}={os.environ[OPT_OUT]}"
    chosen = [name for name in GLIBC_MALLOC_ENVIRONMENT if name in os.environ]
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        chosen.append("GLIBC_TUNABLES")
    if chosen:
        return f"left alone: glibc's malloc is set in the environment ({', '.join(chosen)})"
    preloaded = [name for name in PRELOADED_ALLOCATORS if name in os.environ.get("LD_PRELOAD", "")]
    if preloaded:
        return f"left alone: {preloaded[0]} is preloaded (LD_PRELOAD)"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return f"left alone: not glibc ({platform.system()} {' '.join(platform.libc_ver()).strip() or 'libc'})"
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError) as error:
        return f"left alone: glibc's mallopt not found ({error})"
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # the mmap threshold first: setting either turns off glibc's dynamic threshold, and a trim threshold
    # alone would send every block above 128 KiB to mmap (measured: slower than glibc's default)
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) != 1:
        return "left alone: glibc refused M_MMAP_THRESHOLD"
    if mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) != 1:
        return "left alone: glibc refused M_TRIM_THRESHOLD (M_MMAP_THRESHOLD set)"
    return "kept"
