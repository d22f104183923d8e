"""``dynsnip demo``: train DIL and a frame-level detector on pseudo-fakes made from bundled real footage."""
from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from .exit_codes import usage_error


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ..demo.run import DemoConfig

    d = DemoConfig()
    p = subparsers.add_parser(
        "demo",
        help="show DIL working: DIL vs a frame-level detector on pseudo-fakes of bundled footage (minutes, CPU)",
        description=(
            "Train a small DIL model and the same network without SIMs (frame-level, averaging per-frame logits) "
            "on real face footage bundled with dynsnip and its self-blended pseudo-fakes (the training engine's "
            "--pseudo-fakes), in two rows: 'temporal' pseudo-fakes (the blend jumps from frame to frame; the real clips "
            "carry the same blend drifting smoothly, so no single frame tells them apart and a frame-level model must "
            "stay at chance) and 'both' (a "
            "per-clip blend artefact as well: the frame-level model can learn something too). Test on footage of "
            "other people, print the table and save the DIL detector for `dynsnip predict`. Under 10 minutes on "
            "2 CPU cores."
        ),
    )
    p.add_argument("--out", type=Path, default=d.out, help=f"output folder (default ./{d.out}, in the current folder); "
                   "only a folder an earlier demo wrote is replaced, with --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier demo's folder at --out (without it such a folder is refused before "
                        "anything runs)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"training epochs for each detector (default {d.epochs})")
    p.add_argument("--size", type=int, default=d.size, help=f"face crop side in pixels (default {d.size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr:g}: training from scratch)")
    p.add_argument("--batch-size", type=int, default=d.batch_size,
                   help=f"real clips per step, each with its pseudo-fake (default {d.batch_size})")
    p.add_argument("--test-draws", type=int, default=d.test_draws,
                   help=f"pseudo-fakes per test window (default {d.test_draws})")
    p.add_argument("--magnitude", choices=("weak", "medium", "strong"), default=d.magnitude,
                   help=f"strength of the pseudo-fakes (default {d.magnitude})")
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default {d.seed})")
    p.add_argument("--threads", type=int, default=d.threads,
                   help=f"torch CPU threads, at least 1 (default {d.threads}: faster than several for this small "
                        "network)")
    p.add_argument("--no-samples", dest="samples", action="store_false", help="do not write the sample videos")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)
    return p


NEAR_CHANCE = 0.15
"""A test AUC within this of 0.5 is "near chance"; more than this above 0.5 is "clearly above chance"."""
DIL_CLEAR = 0.8
"""The test AUC from which DIL is said to separate the ``temporal`` clips."""


def summary_lines(rows: list[dict]) -> list[str]:
    """The sentences printed under the demo's table, each claim only where the numbers show it.

    ``rows`` are the demo's result rows (``mode``, ``key`` in ``dil`` / ``frame_level``, ``auc``).
    ``temporal``: DIL at AUC >= :data:`DIL_CLEAR` and the frame-level model within
    :data:`NEAR_CHANCE` of 0.5, else a note that the expected gap did not show. ``both``: the
    frame-level model "learns it too" only at an AUC more than :data:`NEAR_CHANCE` above 0.5 (the
    same margin the ``temporal`` row calls near chance), else a note that it did not show.
    """
    by = {(r["mode"], r["key"]): r for r in rows}
    lines = []
    dil, frame = by.get(("temporal", "dil")), by.get(("temporal", "frame_level"))
    if dil and frame:
        if dil["auc"] >= DIL_CLEAR and abs(frame["auc"] - 0.5) <= NEAR_CHANCE:
            lines.append("temporal: DIL separates the clips by their local temporal inconsistency; the frame-level "
                         "model, which sees each frame on its own, stays near chance (AUC 0.5): no single frame "
                         "carries the label.")
        else:
            lines.append("note: the expected gap on the temporal row (DIL clearly above the frame-level model, the "
                         "latter near AUC 0.5) did not show up with these settings; try more --epochs.")
    dil, frame = by.get(("both", "dil")), by.get(("both", "frame_level"))
    if dil and frame:
        if frame["auc"] > 0.5 + NEAR_CHANCE:
            lines.append(f"both: the per-clip blend artefact is visible in single frames, so the frame-level model "
                         f"learns it too (AUC {frame['auc']:.2f}; DIL {dil['auc']:.2f}).")
        else:
            lines.append(f"note: on the both row the frame-level model did not get clearly above chance on the "
                         f"held-out clips (AUC {frame['auc']:.2f}, not above {0.5 + NEAR_CHANCE:.2f}; DIL "
                         f"{dil['auc']:.2f}), so it did not show that it learns the per-clip blend artefact with "
                         f"these settings; try more --epochs.")
    return lines


def option_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the demo's numeric options, said as a usage error before anything runs (they
    failed deep inside, with a traceback, some of them after minutes of training); None when nothing."""
    import math

    for option, value, least in (("--epochs", args.epochs, 1), ("--size", args.size, 8),
                                 ("--batch-size", args.batch_size, 1), ("--test-draws", args.test_draws, 1),
                                 ("--threads", args.threads, 1)):
        if value < least:
            return f"{option} {value}: expected a whole number of at least {least}"
    if not (math.isfinite(args.lr) and args.lr > 0):
        return f"--lr {args.lr}: expected a positive, finite learning rate"
    return None


def run(args: argparse.Namespace) -> int:
    from ..data._optional import require, require_video_decoding
    from ..demo.run import DemoConfig, OutNotWritableError, run_demo
    from .interrupts import StopSignals

    if problem := option_problem(args):
        return usage_error("demo", problem)
    try:
        require_video_decoding()  # the demo decodes its bundled footage
        require("dlib")  # and finds its faces with dlib (the [video] extra's dlib-bin)
    except ImportError as err:
        return usage_error("demo", str(err))
    config = DemoConfig(
        out=args.out, epochs=args.epochs, size=args.size, lr=args.lr, batch_size=args.batch_size,
        test_draws=args.test_draws, magnitude=args.magnitude, seed=args.seed, threads=args.threads, samples=args.samples,
        progress=args.progress, overwrite=args.overwrite,
    )
    try:
        with StopSignals() as signals:  # SIGTERM as Ctrl-C: the temporary training folder is removed
            result = run_demo(config)
    except (FileExistsError, OutNotWritableError) as err:
        return usage_error("demo", str(err))
    except OSError as err:  # a folder that cannot be written (found before training), a full disk while saving
        import sys

        print(f"dynsnip demo: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        import sys

        print(f"dynsnip demo: interrupted ({signals.name})", file=sys.stderr)
        return signals.exit_code
    print()
    print(f"held-out test clips of other people ({result.data['test_clips']}, half fake); total time {result.seconds:.0f}s")
    print(result.table())
    print()
    for line in summary_lines(result.rows):
        print(line)
    folder = Path(result.out).absolute()
    out = shlex.quote(str(folder))
    print(f"\nDIL detector saved to {folder} (hub layout; frame-level model in {folder / 'frame_level'}). It knows "
          "the demo task only: not a detector for real footage.")
    if result.samples:
        files = " ".join(shlex.quote(str(Path(p).absolute())) for p in result.samples)
        print(f"try it:  dynsnip predict --checkpoint {out} {files}")
    else:
        print(f"try it:  dynsnip predict --checkpoint {out} VIDEO.mp4")
    return 0
