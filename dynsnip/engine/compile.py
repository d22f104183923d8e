"""``--compile``: ``torch.compile`` for ``dynsnip train``, ``predict`` and ``evaluate``, in one place.

On a GPU an eager DIL forward is bound by the host issuing kernels, not by the GPU; compiled,
its small elementwise steps are fused into a few kernels (docs/performance.md). What the
switch does:

* the model's ``forward_features`` (the backbone and every SIM: where the time goes) is
  replaced **in place** by its ``torch.compile``\\ d version, so that everything that calls the
  model (``model(x)``, DDP, :func:`dynsnip.scoring.score_clip`, which calls
  ``forward_features`` itself) runs it, and the model object, its state dict and what is saved
  stay as they were (``del model.forward_features`` undoes it);
* on CUDA the model is also made ``channels_last`` (the layout cuDNN's fast convolutions and
  the SIMs' Conv3d volumes want), and inference uses mode ``"reduce-overhead"``: CUDA graphs,
  one recorded graph per clip shape, replayed without a launch per kernel; training uses the
  default mode;
* the first call of each clip shape compiles (tens of seconds to minutes; static shapes: a run
  has few, the batch, the last batch, the evaluation U); later calls reuse it.

:func:`compile_problem` says why compiling cannot work here (no Triton for CUDA, no C++
compiler for the CPU backend, a Python that dynamo does not support) before any work starts;
the commands turn it into a usage error that names what is missing.
"""
from __future__ import annotations

import argparse
from typing import Any

import torch
import torch.nn as nn

MODES = ("auto", "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class CompileUnavailableError(ValueError):
    """``torch.compile`` cannot run on this machine (the message says what is missing)."""


class _CompileModeAction(argparse.Action):
    """``--compile-mode MODE`` sets the mode and turns ``--compile`` on: asked for on its own it used to be
    accepted and the run stayed eager, without a word."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, values)
        namespace.compile = True


def add_compile_arguments(parser: argparse.ArgumentParser | Any) -> None:
    """``--compile`` and ``--compile-mode`` (for a parser or an argument group); ``--compile-mode``
    implies ``--compile``."""
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model (docs/performance.md): fused SIM kernels, CUDA graphs for "
                             "inference on GPU; the first batch of each shape compiles")
    parser.add_argument("--compile-mode", choices=MODES, default="auto", action=_CompileModeAction,
                        help="torch.compile mode, implies --compile (default auto: reduce-overhead for inference "
                             "on CUDA, else default)")


def compile_mode_from_args(args: argparse.Namespace) -> str | None:
    """The mode asked for on the command line, or None without ``--compile``."""
    return getattr(args, "compile_mode", "auto") if getattr(args, "compile", False) else None


def compile_problem(device: str | torch.device) -> str | None:
    """Why ``torch.compile`` (inductor) cannot run on ``device`` here, or None."""
    device = torch.device(device)
    from torch._dynamo.eval_frame import is_dynamo_supported

    if not is_dynamo_supported():
        import sys

        return (f"torch.compile is not supported with Python {sys.version.split()[0]} and torch {torch.__version__} "
                "on this platform; run without --compile")
    if device.type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return "torch.compile on CUDA needs Triton, which is not installed (pip install triton); run without --compile"
    elif device.type == "cpu":
        try:
            from torch._inductor.cpp_builder import get_cpp_compiler

            get_cpp_compiler()
        except Exception as err:  # noqa: BLE001  (whatever inductor's search raises)
            return (f"torch.compile on the CPU needs a C++ compiler (g++ or clang++ on PATH, or CXX=...): {err}; "
                    "run without --compile")
    return None


def compile_model(model: nn.Module, device: str | torch.device, mode: str | None = "auto", *,
                  inference: bool, backend: str = "inductor") -> nn.Module:
    """Compile ``model`` in place for ``device`` (see the module docstring); returns it.

    Args:
        mode: one of :data:`MODES`; ``"auto"``: ``"reduce-overhead"`` (CUDA graphs) for
            inference on CUDA, ``"default"`` otherwise; None: leave the model as it is.
        inference: the model will only run under ``no_grad`` (evaluation, prediction).
        backend: ``torch.compile``'s backend (tests use ``"eager"``: the capture without code
            generation).

    Raises:
        CompileUnavailableError: when :func:`compile_problem` finds a problem (only checked for
            the inductor backend).
    """
    if mode is None:
        return model
    if mode not in MODES:
        raise ValueError(f"compile mode must be one of {MODES}, got {mode!r}")
    device = torch.device(device)
    if backend == "inductor" and (problem := compile_problem(device)):
        raise CompileUnavailableError(problem)
    if mode == "auto":
        mode = "reduce-overhead" if inference and device.type == "cuda" else "default"
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    # static shapes: a run sees few clip shapes (the batch, the last batch, the evaluation U), each
    # compiled once; dynamic-shape tracing of the whole network is slow (minutes in sympy) and
    # CUDA graphs record one graph per shape anyway
    options: dict[str, Any] = {"backend": backend, "dynamic": False}
    if backend == "inductor":
        options["mode"] = mode
    name = "forward_features" if callable(getattr(model, "forward_features", None)) else "forward"
    setattr(model, name, torch.compile(getattr(model, name), **options))
    return model


def is_compiled(model: nn.Module) -> bool:
    """Whether :func:`compile_model` compiled ``model``."""
    return any(name in vars(model) for name in ("forward_features", "forward"))
