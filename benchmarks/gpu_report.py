"""Put the figures of ``benchmarks/gpu.sh`` into docs/performance.md (between the ``gpu:begin`` and
``gpu:end`` markers), with the GPU targets of issue 24 checked against them.

Usage::

    python benchmarks/gpu_report.py --results benchmarks/results --doc docs/performance.md

Reads ``gpu_eager.json``, ``gpu_compiled.json`` and ``gpu_compiled_paper.json`` (the steps of
gpu.sh; a missing step is reported as not measured, never filled in), ``gpu_profile.json`` (where
the eager GPU time goes), ``gpu_gate_tap.json`` (the fused Intra-SIM tail) and ``gpu_depthwise_taps.json`` (the
SIMs' depthwise convs as Triton kernels), and rewrites the section.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- gpu:begin -->", "<!-- gpu:end -->"
STEPS = (("gpu_eager", "eager"), ("gpu_compiled", "compiled"), ("gpu_compiled_paper", "compiled"))
# issue 24, on a GPU (bf16, channels_last, 16 clips of U=4 x T=4 at 224 px), same mode as resnet50
TARGETS = (("clips_per_s", ">=", 0.9, "clip throughput"), ("train", "<=", 1.2, "training step"),
           ("peak_train", "<=", 1.3, "peak training memory"))


def load(results: Path) -> dict[str, dict[str, Any]]:
    runs = {}
    for name, _ in STEPS:
        path = results / f"{name}.json"
        if path.is_file():
            runs[name] = json.loads(path.read_text())
    return runs


def fused_tail(results: Path) -> list[str]:
    """Lines for step 4 (``benchmarks/gate_tap.py``: the Intra-SIMs' eager tail against the fused
    Triton kernel), or none when it did not run."""
    path = results / "gpu_gate_tap.json"
    if not path.is_file():
        return ["", "Step 4 (the fused Intra-SIM tail, `benchmarks/gate_tap.py`): not measured (no `gpu_gate_tap.json`)."]
    run = json.loads(path.read_text())
    if not run.get("fused"):
        return ["", "Step 4 (the fused Intra-SIM tail): ran without the Triton path (no CUDA or no triton): not measured."]
    lines = ["", f"Step 4, the Intra-SIMs' elementwise tail (Eq. 5: sigmoids, gate, learnable kernel), eager ops "
             f"against the fused Triton kernel (`dynsnip/modules/gate_tap.py`), summed over the Intra-SIMs of "
             f"{run['arch']} ({run['clips']} clips of {run['frames']} frames at {run['size']} px, {run['dtype']}, "
             f"triton {run['triton']}):", "",
             "| module | eager ms | eager ops | fused ms | fused launches | eager / fused | agrees with the reference |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for config, res in run["configs"].items():
        t, sims = res["total"], res["sims"]
        lines.append(f"| {config} | {t['eager_ms']:.3f} | {t['eager_ops']} | {t['triton_ms']:.3f} | {len(sims)} | "
                     f"{t['ratio']:.2f} | {'yes' if t['ok'] else '**no**'} |")
    return lines


def profile_rows(run: dict[str, Any]) -> list[str]:
    """The table rows of a ``gpu_profile.py`` report: model, mode, wall and GPU ms per step, busy
    share, kernel launches, the Intra-SIMs' and Inter-SIMs' forward and backward ms (gpu_profile.py prints them too)."""
    return [f"| {name} | {mode} | {m['wall_ms']:.1f} | {m['device_ms']:.1f} | {m['busy']:.2f} | {m['launches']:.0f} | "
            f"{m['ranges_ms']['IntraSIM']:.2f} | {m['ranges_ms']['InterSIM']:.2f} | "
            f"{m.get('backward_ms', {}).get('IntraSIM', 0.0):.2f} | {m.get('backward_ms', {}).get('InterSIM', 0.0):.2f} |"
            for name, modes in run["models"].items() for mode, m in modes.items()]


def profile_lines(results: Path, top: int = 5) -> list[str]:
    """Lines for the profile step (``benchmarks/gpu_profile.py``): per model and mode the wall and
    GPU time per step, the GPU's busy share, kernel launches and the SIMs' forward share; the
    ``top`` kernels of each DIL mode. None when the step did not run."""
    path = results / "gpu_profile.json"
    if not path.is_file():
        return ["", "Profile step (`benchmarks/gpu_profile.py`): not measured (no `gpu_profile.json`)."]
    run = json.loads(path.read_text())
    a = run["args"]
    lines = ["", f"Profile (`benchmarks/gpu_profile.py`, eager, {a['batch']} clips, {a['amp']}, "
             f"channels_last {a['channels_last']}, {a['steps']} steps after {a['warmup']} warm-up): time per step; "
             "busy = GPU kernel time / wall time (well below 1: the host, not the GPU, is the limit); the SIMs' "
             "columns are the kernels their forwards and backwards launch (`gpu_profile.md` has the kernels and ops):", "",
             "| model | mode | wall ms | GPU ms | busy | kernels | Intra-SIM fwd ms | Inter-SIM fwd ms | Intra-SIM bwd ms "
             "| Inter-SIM bwd ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += profile_rows(run)
    for name, modes in run["models"].items():
        if not name.startswith("dil_") or "@" in name:
            continue
        for mode, m in modes.items():
            top_kernels = "; ".join(f"`{k['name'][:60]}` {k['share']:.0%}" for k in m["top_kernels"][:top])
            lines += ["", f"Top kernels, {name} {mode}: {top_kernels}."]
    return lines


def rows(runs: dict[str, dict[str, Any]], baseline: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(mode, model, figures with ratios to the baseline of the same run) for every measured model."""
    out = []
    for name, mode in STEPS:
        run = runs.get(name)
        if run is None:
            continue
        for model, res in run["models"].items():
            if model == baseline and any(m == mode and n == model for m, n, _ in out):
                continue  # the baseline once per mode
            out.append((mode, model, res))
    return out


def section(runs: dict[str, dict[str, Any]], dil: str, baseline: str, tail: list[str] | None = None) -> str:
    lines = [BEGIN, "", "### Issue 24 figures (`benchmarks/gpu.sh`)", ""]
    if not runs and not any(line.startswith("|") for line in tail or []):
        lines += ["**Not measured yet.** No GPU was at hand when the SIMs were rewritten (issue 24): the CPU "
                  "proxies above are what was measured. `bash benchmarks/gpu.sh` fills this section in "
                  "(one short loan, under 9 minutes on an H200).", "", END]
        return "\n".join(lines)
    if not runs:
        return "\n".join(lines + ["Steps 1 and 3 (eager and compiled models): not measured.", *(tail or []), "", END])
    first = next(iter(runs.values()))
    env, a = first["env"], first["args"]
    repeats = ", ".join(f"{runs[name]['args']['repeats']} {name.removeprefix('gpu_').replace('_', ' ')}"
                        for name, _ in STEPS if name in runs)
    lines += [f"{env['device']}, torch {env['torch']}, bf16 autocast {a['amp']}, channels_last {a['channels_last']}, "
              f"1x3x{a['frames']}x{a['size']}x{a['size']} clips, throughput and training on {a['batch']} clips, "
              f"latency on 1 clip, interleaved repeats ({repeats}; medians); x = ratio to {baseline} "
              "in the same run and mode. Steps not in the table ran out of their time limit: not measured.", "",
              "| mode | model | clips/s | x | latency ms | x | train ms | x | peak MB | x |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, model, res in rows(runs, baseline):
        r = res["ratio"]
        lines.append(f"| {mode} | {model} | {res['clips_per_s']:.1f} | {r['clips_per_s']:.2f} | {res['latency'] * 1e3:.1f} "
                     f"| {r['latency']:.2f} | {res['train'] * 1e3:.0f} | {r['train']:.2f} | "
                     f"{res['peak_train'] / 2 ** 20:.0f} | {r['peak_train']:.2f} |")
    lines += ["", "Against the targets (DIL against resnet50 in the same mode):", "",
              "| mode | model | " + " | ".join(f"{label} {op} {v}x" for _, op, v, label in TARGETS) + " |",
              "|---|---|" + "---|" * len(TARGETS)]
    for mode, model, res in rows(runs, baseline):
        if not model.startswith(dil):
            continue
        cells = []
        for key, op, bound, _ in TARGETS:
            value = res["ratio"][key]
            ok = value >= bound if op == ">=" else value <= bound
            cells.append(f"{value:.2f} ({'met' if ok else 'not met'})")
        lines.append(f"| {mode} | {model} | " + " | ".join(cells) + " |")
    missing = [name for name, _ in STEPS if name not in runs]
    if missing:
        lines += ["", "Not measured (step not run, out of time or failed): " + ", ".join(missing) + "."]
    lines += [*(tail or []), "", END]
    return "\n".join(lines)


def update(doc: Path, text: str) -> None:
    content = doc.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(content):
        raise SystemExit(f"{doc} has no {BEGIN} ... {END} section to fill")
    doc.write_text(pattern.sub(lambda _: text, content))


def depthwise_kernels(results: Path) -> list[str]:
    """Lines for step 5 (``benchmarks/depthwise_taps.py``: the SIMs' depthwise convs, PyTorch's conv against
    the Triton kernels), or a line saying it was not measured."""
    path = results / "gpu_depthwise_taps.json"
    if not path.is_file():
        return ["", "Step 5 (the SIMs' depthwise convs, `benchmarks/depthwise_taps.py`): not measured "
                    "(no `gpu_depthwise_taps.json`)."]
    run = json.loads(path.read_text())
    if not run.get("kernels"):
        return ["", "Step 5 (the SIMs' depthwise convs): ran without the Triton kernels (no CUDA or no triton): not measured."]
    t = run["total"]
    return ["", f"Step 5, the SIMs' depthwise convs (the motion channels' Eq. 1, each Inter-SIM's Conv_U), PyTorch's "
                f"conv against the Triton kernels (`dynsnip/modules/depthwise_taps.py`), summed over the "
                f"{len(run['convs'])} convs of {run['arch']} ({run['clips']} clips of {run['frames']} frames at "
                f"{run['size']} px, {run['dtype']}, triton {run['triton']}):", "",
            "| pass | conv ms | kernels ms | conv / kernels | agrees with F.conv3d |", "|---|---:|---:|---:|---|",
            f"| forward | {t['conv_ms']:.3f} | {t['triton_ms']:.3f} | {t['ratio']:.2f} | {'yes' if t['ok'] else '**no**'} |",
            f"| forward + backward | {t['conv_train_ms']:.3f} | {t['triton_train_ms']:.3f} | {t['train_ratio']:.2f} | |"]


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--results", type=Path, default=Path("benchmarks/results"))
    p.add_argument("--doc", type=Path, default=Path("docs/performance.md"))
    p.add_argument("--dil", default="dil_resnet50")
    p.add_argument("--baseline", default="resnet50")
    args = p.parse_args(argv)
    runs = load(args.results)
    tail = profile_lines(args.results) + fused_tail(args.results) + depthwise_kernels(args.results)
    if not runs and not any(line.startswith("|") for line in tail):
        # nothing measured (no GPU, every step failed): the figures of an earlier loan stay in the doc
        print(f"gpu_report: no GPU results in {args.results} (every step failed or none ran): {args.doc} left as it is",
              file=sys.stderr)
        raise SystemExit(1)
    text = section(runs, args.dil, args.baseline, tail)
    update(args.doc, text)
    print(text)
    return text


if __name__ == "__main__":
    main()
