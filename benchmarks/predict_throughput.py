"""Videos per second of ``dynsnip predict`` with 0, 1, 2... loader processes, in one process.

``dynsnip predict`` decodes U x T frames per video (PyAV, one seek per snippet), finds the
face in every frame (dlib HOG) and crops it, then runs the detector. ``--workers N`` moves
the first part into N processes that work ahead of the model. This script scores the same
videos (the footage bundled with dynsnip, repeated ``--copies`` times under new names) with
each ``--workers`` setting, checks that every setting gives the same probabilities, and
prints videos/s and the speed-up over ``--workers 0`` measured in the same run. Settings are
interleaved over ``--repeats`` so that a change of machine load affects them alike; the
table shows medians.

Usage::

    python benchmarks/predict_throughput.py                        # dil_resnet50, workers 0,1,2
    python benchmarks/predict_throughput.py --model dil_resnet18 --workers 0,2,4 --json out.json
    python benchmarks/predict_throughput.py --quick                # small model, few videos
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path


def make_videos(folder: Path, copies: int) -> list[Path]:
    """The bundled face videos, each linked ``copies`` times under a new name."""
    from dynsnip.data.assets import bundled_videos

    sources = bundled_videos()
    videos = []
    for copy in range(copies):
        for source in sources:
            link = folder / f"{source.stem}_{copy}{source.suffix}"
            os.symlink(source.resolve(), link)
            videos.append(link)
    return videos


def run_predict(model_dir: Path, videos: list[Path], workers: int, snippets: int, out: Path) -> float:
    """Seconds ``dynsnip predict`` takes on ``videos``; the JSON report goes to ``out``."""
    from dynsnip.cli import main

    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["predict", "--checkpoint", str(model_dir), "--snippets", str(snippets), "--workers", str(workers),
                     "--no-progress", "--output", str(out), "--overwrite", *map(str, videos)])
    seconds = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"dynsnip predict failed with exit code {code} (workers={workers})")
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dil_resnet50", help="dil_* architecture (random weights)")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated --workers settings (0 is the baseline)")
    parser.add_argument("--copies", type=int, default=4, help="times each bundled video is scored")
    parser.add_argument("--snippets", type=int, default=8, help="U per video (paper: 8)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the scoring process")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quick", action="store_true", help="dil_resnet18, 1 copy, U=2, 1 repeat")
    args = parser.parse_args(argv)
    if args.quick:
        args.model, args.copies, args.snippets, args.repeats = "dil_resnet18", 1, 2, 1

    import torch
    import timm

    import dynsnip

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = [int(w) for w in args.workers.split(",")]
    if 0 not in settings:
        settings.insert(0, 0)
    with tempfile.TemporaryDirectory(prefix="dynsnip-predict-bench-") as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        model = timm.create_model(args.model, num_classes=1)
        dynsnip.save_pretrained(model, tmp / "model")
        videos = make_videos(tmp, args.copies)
        times: dict[int, list[float]] = {w: [] for w in settings}
        reports: dict[int, list[float]] = {}
        for _ in range(args.repeats):
            for workers in settings:
                out = tmp / f"report_{workers}.json"
                times[workers].append(run_predict(tmp / "model", videos, workers, args.snippets, out))
                reports[workers] = [v["fake_probability"] for v in json.loads(out.read_text())["videos"]]
    same = all(reports[w] == reports[0] for w in settings)
    base = statistics.median(times[0])
    rows = []
    for workers in settings:
        seconds = statistics.median(times[workers])
        rows.append(dict(workers=workers, seconds=seconds, videos_per_s=len(videos) / seconds, speedup=base / seconds))
    from dynsnip.memory_reuse import keep_freed_memory

    malloc = keep_freed_memory()  # what the command line did at its first run (DYNSNIP_KEEP_FREED_MEMORY=0: not)
    print(f"{args.model}, {len(videos)} videos (bundled footage x {args.copies}), U={args.snippets} x T=4, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, medians of {args.repeats}; "
          f"freed memory: {malloc}")
    print("| --workers | seconds | videos/s | x workers 0 |\n|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['workers']} | {r['seconds']:.1f} | {r['videos_per_s']:.2f} | {r['speedup']:.2f} |")
    print("same probabilities with every setting:", same)
    if args.json:
        args.json.write_text(json.dumps(dict(
            model=args.model, videos=len(videos), snippets=args.snippets, repeats=args.repeats,
            cpus=os.cpu_count(), torch_threads=torch.get_num_threads(), torch=torch.__version__,
            machine=platform.machine(), freed_memory=malloc, rows=rows, same_probabilities=same, times=times,
        ), indent=2) + "\n")
    if not same:
        sys.exit("the probabilities differ between --workers settings")


if __name__ == "__main__":
    main()
