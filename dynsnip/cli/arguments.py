"""Checks of option values shared by the ``dynsnip`` commands: probabilities, finite numbers, devices.

Each check returns the one-line problem (naming the option, the value given and what is
expected) or None; the commands print it with :func:`dynsnip.cli.exit_codes.usage_error`
(exit code 2) before any work starts.
"""
from __future__ import annotations

import math
from typing import Any

# Device types the commands can run a model on (``torch.device`` also parses "meta", "hpu"...).
RUN_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


def real(text: str) -> float:
    """argparse ``type`` of a number option: ``float(text)``, with ``-0`` read as ``0`` (a threshold of
    ``-0`` would otherwise be recorded in reports as ``-0.0``)."""
    return float(text) + 0.0


def probability_problem(option: str, value: float | None, meaning: str = "") -> str | None:
    """``value`` is not a finite probability in [0, 1] (``nan``, ``inf``, ``1.5``, ``-0.1``)."""
    if value is None or (math.isfinite(value) and 0.0 <= value <= 1.0):
        return None
    return (f"{option} must be a probability between 0 and 1{f' ({meaning})' if meaning else ''}, "
            f"got {value}")


def finite_problem(option: str, value: float | None, expected: str = "a finite number") -> str | None:
    """``value`` is ``nan`` or ``inf``."""
    if value is None or math.isfinite(value):
        return None
    return f"{option} must be {expected}, got {value}"


def available_devices() -> list[str]:
    """The devices this process can run on: ``cpu``, then ``cuda:0`` ... and ``mps`` / ``xpu`` where present."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    xpu = getattr(torch, "xpu", None)
    if xpu is not None and xpu.is_available():
        found += [f"xpu:{i}" for i in range(xpu.device_count())]
    return found


def device_problem(text: str | None, option: str = "--device", *, default_hint: bool = True) -> str | None:
    """What is wrong with ``--device TEXT`` on this machine, or None (None: the default, fine).

    A string ``torch.device`` cannot parse (``foo``), a device type no model runs on
    (``meta``), a GPU PyTorch does not see (``cuda`` without CUDA, ``cuda:3`` on a two-GPU
    machine) or an ``mps`` / ``xpu`` that is not there: the message names what was asked, what
    this machine has, and what to pass instead.
    """
    if text is None:
        return None
    import torch

    available = available_devices()
    instead = f"pass {option} cpu" + (f" (or {', '.join(available[1:])})" if len(available) > 1 else "") + (
        f", or leave {option} out (the default: cuda when available, else cpu)" if default_hint else "")
    has = f"this machine has {', '.join(available)}"
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        return f"{option} {text!r} is not a device name ({'/'.join(RUN_DEVICE_TYPES)}[:INDEX]); {has}: {instead}"
    if device.type not in RUN_DEVICE_TYPES:
        return f"{option} {text!r}: the models do not run on a {device.type!r} device; {has}: {instead}"
    if device.type == "cpu":
        return None
    present = [d for d in available if d.split(":")[0] == device.type]
    if not present:
        return f"{option} {text!r}: PyTorch sees no {device.type.upper()} device here ({has}): {instead}"
    if device.index is not None and f"{device.type}:{device.index}" not in present and device.type != "mps":
        return f"{option} {text!r}: no such {device.type.upper()} device ({has}): {instead}"
    return None


def resolve_device(text: str | None) -> Any:
    """The ``torch.device`` of a checked ``--device`` (see :func:`device_problem`); None: cuda when available."""
    import torch

    return torch.device(text or ("cuda" if torch.cuda.is_available() else "cpu"))
