"""Pseudo-fakes on the bundled footage: the cross-manipulation table, generation cost, throughput.

    python benchmarks/pseudo_fakes.py --out benchmarks/results/pseudo_fakes   # CPU, ~20 min on 2 shared cores

1. **Cross-manipulation table**: the demo's DIL and frame-level detectors trained with each
   pseudo-fake mode (``spatial``, ``temporal``, ``both``; the demo's budget), each tested on
   held-out people with every mode and with the earlier demo's brightness-flicker fakes
   (``dynsnip.demo.run.run_demo(cross=True)``).
2. **Generation cost** per clip (ms): one U*T clip at the demo's 32 px and at the paper's
   224 px (U=4 x T=4), per mode, median of repeats, in this process.
3. **Training throughput with the generator on vs off**: the same steps of the demo's DIL
   model on the same real clips, with ``Recipe.pseudo_fakes`` None and ``"both"``: clips
   read per second (and clips trained on per second: twice as many with the generator).

Writes ``pseudo_fakes.json`` and ``pseudo_fakes.md`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def generation_cost(repeats: int = 10) -> list[dict]:
    from dynsnip.data.pseudo_fakes import MODES, PseudoFakeGenerator

    rng = np.random.default_rng(0)
    rows = []
    for size, frames in ((32, 8), (224, 16)):
        clip = rng.integers(0, 256, size=(frames, size, size, 3), dtype=np.uint8)
        for mode in MODES:
            gen = PseudoFakeGenerator(mode=mode)
            gen(clip, seed=0)  # warm-up
            times = []
            for seed in range(repeats):
                t0 = time.perf_counter()
                gen(clip, seed=seed, snippet_len=4)
                times.append(time.perf_counter() - t0)
            rows.append(dict(size=size, frames=frames, mode=mode, ms=1000 * statistics.median(times)))
    return rows


def throughput(epochs: int = 1, steps: int = 20) -> list[dict]:
    """Clips per second of the demo's DIL model on the demo's real clips, generator off / on."""
    from torch.utils.data import Subset

    from dynsnip.demo.pseudo_fake_clips import PseudoFakeClips
    from dynsnip.demo.run import DemoConfig, demo_recipe, load_footage
    from dynsnip.data.pseudo_fakes import PseudoFakeGenerator
    from dynsnip.engine.train import train

    config = DemoConfig(progress=False)
    train_footage, _ = load_footage(config)
    reals = PseudoFakeClips(train_footage, config.num_snippets, config.snippet_len, window=config.window,
                            stride=config.train_stride, train=True, labels=(0,), generator=PseudoFakeGenerator())
    subset = Subset(reals, list(range(steps * config.batch_size)))
    rows = []
    for mode in (None, "both", None, "both"):  # twice, interleaved: the machine is shared
        recipe = demo_recipe(config, mode).replace(epochs=epochs)
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="dynsnip-pf-throughput-") as run_dir:  # a new run folder each time:
            # train() refuses to overwrite an earlier run's results
            result = train(recipe, subset, None, Path(run_dir), device="cpu", progress=False,
                           log=None, resume=False, save_checkpoints=False, save_kwargs=dict(base_model=None),
                           model_kwargs=dict(channels=config.channels, stem_width=config.stem_width))
        seconds = result.history[-1]["seconds"]
        rows.append(dict(pseudo_fakes=mode or "off", steps=steps, seconds=seconds,
                         clips_read_per_s=len(subset) / seconds, clips_trained_per_s=result.history[-1]["clips_per_s"],
                         wall_s=time.perf_counter() - t0))
    return rows


def cross_table(out: Path, epochs: int | None) -> dict:
    from dynsnip.demo.run import DemoConfig, run_demo

    changes = {} if epochs is None else dict(epochs=epochs)
    result = run_demo(DemoConfig(out=out / "demo_runs", modes=("temporal", "both", "spatial"), cross=True, samples=False, progress=False,
                                 **changes))
    return dict(rows=result.rows, seconds=result.seconds, data=result.data)


def markdown(report: dict) -> str:
    lines = []
    if "cross" in report:
        tests = list(report["cross"]["rows"][0]["cross"])
        lines += ["| trained on | detector | " + " | ".join(f"test: {t}" for t in tests) + " | train s |",
                  "|---|---|" + "---|" * len(tests) + "---|"]
        for r in report["cross"]["rows"]:
            cells = " | ".join(f"{r['cross'][t]['auc']:.3f}" for t in tests)
            lines.append(f"| {r['mode']} | {r['key']} | {cells} | {r['train_seconds']:.0f} |")
        lines.append("")
    if "generation" in report:
        lines += ["| clip | mode | ms per clip |", "|---|---|---|"]
        lines += [f"| {r['frames']} x {r['size']} px | {r['mode']} | {r['ms']:.1f} |" for r in report["generation"]]
        lines.append("")
    if "throughput" in report:
        lines += ["| pseudo-fakes | clips read / s | clips trained / s | s for the steps |", "|---|---|---|---|"]
        lines += [f"| {r['pseudo_fakes']} | {r['clips_read_per_s']:.1f} | {r['clips_trained_per_s']:.1f} | "
                  f"{r['seconds']:.1f} |" for r in report["throughput"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/pseudo_fakes"))
    parser.add_argument("--skip-cross", action="store_true", help="only generation cost and throughput")
    parser.add_argument("--cross-from", type=Path, help="take the cross table from an earlier run's dynsnip_demo.json")
    parser.add_argument("--epochs", type=int, help="epochs of the cross-table runs (default: the demo's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict = {"torch_threads": torch.get_num_threads()}
    t0 = time.perf_counter()
    if args.cross_from:
        earlier = json.loads(args.cross_from.read_text())
        report["cross"] = dict(rows=earlier["results"], seconds=earlier["seconds"], data=earlier["data"])
    elif not args.skip_cross:
        report["cross"] = cross_table(args.out, args.epochs)
        (args.out / "pseudo_fakes.json").write_text(json.dumps(report, indent=1) + "\n")
    report["generation"] = generation_cost()
    report["throughput"] = throughput()
    report["seconds"] = time.perf_counter() - t0
    (args.out / "pseudo_fakes.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "pseudo_fakes.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
