"""Exit codes shared by the ``dynsnip`` commands, and the one-line usage error they print.

* 0 (``EXIT_OK``): everything was processed;
* 1 (``EXIT_SOME_FAILED``): some inputs failed (each reported with its reason), the others
  were processed; for ``train``: clips were skipped (the model is saved), or the run stopped
  on a NaN / inf loss (the last finite weights are kept) or on a validation set of which
  nothing could be read; for ``predict``: also when a verdict is partial (a face seen but not
  scored could change it: ``summary.partial``) or ``--output`` could not be written (the
  report is printed; an earlier report there is left as it was);
* 2 (``EXIT_USAGE``): nothing was done: a bad option, a model that cannot be loaded, a
  missing extra, an output that would be overwritten;
* 130 (``EXIT_INTERRUPTED``): stopped by Ctrl-C (SIGINT, 128 + 2 as shells report it); one
  line says so, no traceback (:func:`dynsnip.cli.main`);
* 143: ``predict``, ``extract-faces`` or ``explain`` stopped by SIGTERM (128 + 15: a scheduler,
  ``docker stop``, torchrun's agent), after writing what it had finished
  (:mod:`dynsnip.cli.interrupts`).
"""
from __future__ import annotations

import sys

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130

# the "exit status" section of every command's --help (dynsnip.cli.build_parser)
EXIT_STATUS_HELP = (
    f"{EXIT_OK}: everything was processed; {EXIT_SOME_FAILED}: some inputs failed, each reported with its reason, the "
    f"others processed (train: clips skipped, the model saved; or stopped on a NaN / inf loss, the last finite weights "
    f"kept, or on an unreadable validation set; predict: or a verdict partial, a face seen but not scored, or --output not written, the report printed); {EXIT_USAGE}: nothing was "
    "done (a bad option, a model that cannot be loaded, a missing extra, an output that would be overwritten); "
    f"{EXIT_INTERRUPTED}: stopped by Ctrl-C; 143: predict, extract-faces or explain stopped by SIGTERM (what it "
    "finished is written)."
)


def usage_error(command: str, message: str) -> int:
    """Print ``dynsnip <command>: error: <message>`` to stderr and return ``EXIT_USAGE``."""
    print(f"dynsnip {command}: error: {message}", file=sys.stderr)
    return EXIT_USAGE
