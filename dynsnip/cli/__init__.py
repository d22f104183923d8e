"""The ``dynsnip`` command line.

Each sub-command lives in its own module of this package and exposes
``add_parser(subparsers) -> argparse.ArgumentParser`` which registers the
command and sets ``func`` (a callable taking the parsed ``argparse.Namespace``
and returning the process exit code) as a default on its parser.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

# Module names under ``dynsnip.cli``; each defines ``add_parser``.
COMMANDS: tuple[str, ...] = (
    "predict",
    "extract_faces",
    "train",
    "evaluate",
    "explain",
    "push",
    "demo",
    "manifest",
    "benchmark",
    "pseudo_fakes",
    "export",
)


def build_parser() -> argparse.ArgumentParser:
    from dynsnip import __version__

    parser = argparse.ArgumentParser(
        prog="dynsnip",
        description="DeepFake video detection with Dynamic Inconsistency Learning (DIL).",
    )
    parser.add_argument("--version", action="version", version=f"dynsnip {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"{__name__}.{name}":
                continue  # command not built yet
            raise
        module.add_parser(subparsers)
    from .exit_codes import EXIT_STATUS_HELP

    for command in (parser, *subparsers.choices.values()):
        command.add_argument_group("exit status", EXIT_STATUS_HELP)
    return parser


# What to do after Ctrl-C, per command (the default: nothing to add).
AFTER_INTERRUPT = {
    "train": "; run the same command again to resume after the last finished epoch (or to start again if none "
             "finished)",
}


def _one_line_warnings() -> None:
    """Warnings as ``dynsnip: warning: <message> (<Category>)``: a command's user reads what to do, not
    the source line of the library code that warned (Python's default format)."""
    import warnings

    def one_line(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001 (warnings' signature)
        return f"dynsnip: warning: {message} ({category.__name__})\n"

    warnings.formatwarning = one_line


class _StdoutReaderMayLeave:
    """``sys.stdout`` for a command whose reader may stop reading (``dynsnip predict ... | head -1``):
    the first write that finds the pipe closed points the descriptor at ``/dev/null`` and the command
    goes on (every video processed, every output file written) instead of dying of ``BrokenPipeError``
    halfway; what it would have printed is dropped, as the reader asked."""

    def __init__(self, stream) -> None:  # noqa: ANN001 (any text stream)
        self._stream = stream
        self.reader_left = False

    def write(self, text: str) -> int:
        if not self.reader_left:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._reader_gone()
        return len(text)

    def flush(self) -> None:
        if not self.reader_left:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._reader_gone()

    def _reader_gone(self) -> None:
        self.reader_left = True
        try:  # the interpreter flushes stdout at exit: let that go to /dev/null, not raise again
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        except (OSError, AttributeError, ValueError):  # io.UnsupportedOperation is an OSError and ValueError
            pass

    def __getattr__(self, name: str):  # noqa: ANN204 (isatty, fileno, encoding, ...: the stream's)
        return getattr(self._stream, name)


def main(argv: Sequence[str] | None = None) -> int:
    from ..memory_reuse import keep_freed_memory
    from .exit_codes import EXIT_INTERRUPTED, EXIT_USAGE

    # a command scores, trains or extracts in a loop: freed tensor memory is reused, not faulted back in at every
    # forward (glibc; 1.27x faster CPU predict, see dynsnip.memory_reuse)
    keep_freed_memory()
    _one_line_warnings()
    command = None
    stdout = sys.stdout
    sys.stdout = _StdoutReaderMayLeave(stdout)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        command = getattr(args, "command", None)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C: one line and the shell's code for SIGINT, no traceback
        name = f"dynsnip {command}" if command else "dynsnip"
        print(f"{name}: interrupted (Ctrl-C){AFTER_INTERRUPT.get(command or '', '')}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        sys.stdout = stdout


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
