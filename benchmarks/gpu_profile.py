"""Where a DIL step spends its GPU time: kernels, launches and idle time, the SIMs against the rest.

The first GPU figures of issue 24 (``benchmarks/gpu.sh`` on an H200, 2026-12-04) gave
``dil_resnet50`` 0.39x ``resnet50``'s clip throughput eager and 0.32x compiled, for 1.04x its
FLOPs. This script says where the time goes, for each model and mode (inference on ``--batch``
clips under ``torch.no_grad``, and a training step: forward, cross-entropy, backward, SGD), from
``torch.profiler`` over ``--steps`` steps after ``--warmup``:

* ``wall ms``: wall-clock time per step (synchronised);
* ``device ms``, ``busy``: the GPU kernels' summed time per step and its share of the wall time.
  A busy share well below 1 means the host (Python, dispatch, launches) is the limit, not the GPU;
* ``launches``: kernels per step;
* ``IntraSIM fwd ms``, ``InterSIM fwd ms``: device time of the kernels the SIMs' forwards launch
  (a ``record_function`` range around every SIM's forward); ``... bwd ms``: that of their
  backward, the autograd nodes made by those forward ops (matched by autograd's sequence numbers);
* the ``--top`` kernels by device time (calls and ms per step, share of the device time), and
  the aten ops inside the SIMs' ranges by device time with their input shapes: the ops to fuse,
  rewrite or move off a slow backend (a depthwise ``Conv3d`` on a naive kernel, say).

On a CPU (``--device cpu``, the dry run of ``benchmarks/gpu.sh``) there are no kernels: the
figures are the CPU time of the ops instead (``self_cpu_time``), which checks the script, not the GPU.

Models come from ``benchmarks/efficiency.py`` (``dil_resnet50``, ``dil_resnet50@paper``, any timm
2D name on the same frames, ``tsm_<resnet>``).

Usage::

    python benchmarks/gpu_profile.py --device cuda --amp bf16 --channels-last \\
        --models dil_resnet50,resnet50 --json gpu_profile.json > gpu_profile.md
    python benchmarks/gpu_profile.py --quick      # dil_resnet18 on small CPU clips: a smoke test
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficiency import Runner  # noqa: E402  (the same models, inputs, autocast and training step)
from gpu_report import profile_rows  # noqa: E402  (the table gpu_report.py puts in the docs)

RANGED = ("IntraSIM", "InterSIM")  # module classes whose forwards get a profiler range


def range_sims(model: nn.Module) -> list[Any]:
    """A ``record_function`` range named after the class around the forward of every SIM of
    ``model``; returns the hook handles (``.remove()`` them to take the ranges away)."""
    handles = []
    for module in model.modules():
        name = type(module).__name__
        if name not in RANGED:
            continue

        def enter(mod: nn.Module, args: Any, name: str = name) -> None:
            ctx = torch.profiler.record_function(name)
            ctx.__enter__()
            mod.__dict__.setdefault("_profile_ranges", []).append(ctx)

        def leave(mod: nn.Module, args: Any, out: Any) -> None:
            mod.__dict__["_profile_ranges"].pop().__exit__(None, None, None)

        handles += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    return handles


def device_us(event: Any, on_device: bool) -> float:
    """Microseconds of ``event``: its kernels' and its children's (GPU), or its own CPU time (CPU)."""
    if on_device:
        return float(getattr(event, "device_time_total", 0.0))
    return float(event.self_cpu_time_total)


def walk(events: list[Any]) -> list[Any]:
    """Every event below (and including) ``events``, depth first."""
    out, stack = [], list(events)
    while stack:
        e = stack.pop()
        out.append(e)
        stack.extend(e.cpu_children)
    return out


def summarise(prof: Any, steps: int, wall_s: float, on_device: bool, top: int) -> dict[str, Any]:
    """The figures of one profiled mode (see the module docstring), per step."""
    events = list(prof.events())
    kernels = [k for e in events for k in getattr(e, "kernels", [])]
    if on_device:
        device_total = sum(k.duration for k in kernels)  # microseconds
        by_kernel = collections.defaultdict(lambda: [0, 0.0])
        for k in kernels:
            by_kernel[k.name][0] += 1
            by_kernel[k.name][1] += k.duration
    else:  # no kernels: the ops' own CPU time stands in
        device_total = sum(e.self_cpu_time_total for e in events if e.name.startswith("aten::"))
        by_kernel = collections.defaultdict(lambda: [0, 0.0])
        for e in events:
            if e.name.startswith("aten::") and e.self_cpu_time_total > 0:
                by_kernel[e.name][0] += 1
                by_kernel[e.name][1] += e.self_cpu_time_total
    def cost(event: Any) -> float:  # microseconds: the kernels below it (GPU), or its aten ops' own CPU time
        if on_device:
            return sum(k.duration for d in walk([event]) for k in getattr(d, "kernels", []))
        return sum(d.self_cpu_time_total for d in walk([event]) if d.name.startswith("aten::"))

    ranges = {name: 0.0 for name in RANGED}
    backward = {name: 0.0 for name in RANGED}
    sim_sequence: dict[int, str] = {}  # autograd sequence number of the SIMs' forward ops -> SIM class
    sim_ops = collections.defaultdict(lambda: [0, 0.0])
    for e in events:
        if e.name in ranges and (e.cpu_parent is None or e.cpu_parent.name not in RANGED):
            ranges[e.name] += cost(e)
            for d in walk([e]):
                if getattr(d, "sequence_nr", -1) >= 0:
                    sim_sequence[d.sequence_nr] = e.name
            for child in e.cpu_children:  # the ops the SIM's Python code calls
                if child.name.startswith("aten::"):
                    key = f"{child.name} {child.input_shapes}"
                    sim_ops[key][0] += 1
                    sim_ops[key][1] += cost(child)
    # the backward of those ops: autograd runs each node in an "evaluate_function" event that carries the
    # sequence number of the forward op that made it
    for e in events:
        if e.name.startswith("autograd::engine::evaluate_function") and e.sequence_nr in sim_sequence:
            backward[sim_sequence[e.sequence_nr]] += cost(e)
    per_step = lambda us: us / 1000.0 / steps  # noqa: E731  (microseconds in total -> ms per step)
    wall_ms = wall_s * 1000.0 / steps
    top_kernels = sorted(by_kernel.items(), key=lambda kv: -kv[1][1])[:top]
    top_sim_ops = sorted(sim_ops.items(), key=lambda kv: -kv[1][1])[:top]
    return {
        "wall_ms": wall_ms,
        "device_ms": per_step(device_total),
        "busy": per_step(device_total) / wall_ms if wall_ms else 0.0,
        "launches": (len(kernels) if on_device else sum(v[0] for v in by_kernel.values())) / steps,
        "ranges_ms": {name: per_step(us) for name, us in ranges.items()},
        "backward_ms": {name: per_step(us) for name, us in backward.items()},
        "top_kernels": [{"name": name, "calls": calls / steps, "ms": per_step(us),
                         "share": us / device_total if device_total else 0.0}
                        for name, (calls, us) in top_kernels],
        "top_sim_ops": [{"op": key, "calls": calls / steps, "ms": per_step(us)} for key, (calls, us) in top_sim_ops],
    }


def profile_mode(fn: Callable[[], None], device: torch.device, steps: int, top: int) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    on_device = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])
    with profile(activities=activities, record_shapes=True) as prof:
        if on_device:
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        if on_device:
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - start
    return summarise(prof, steps, wall, on_device, top)


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.threads:
        torch.set_num_threads(args.threads)
    bench = argparse.Namespace(frames=args.frames, size=args.size, num_classes=2, variant_models={},
                               channels_last=args.channels_last, grad_checkpointing=False, amp=args.amp,
                               compile=False, compile_backend="inductor", compile_mode="default")
    report: dict[str, Any] = {"args": vars(args), "torch": torch.__version__,
                              "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                              "models": {}}
    for name in [n.strip() for n in args.models.split(",") if n.strip()]:
        print(f"profiling {name}", file=sys.stderr, flush=True)
        r = Runner(name, bench, device)
        x = r.clip(args.batch)
        y = torch.zeros(args.batch, dtype=torch.long, device=device)
        handles = range_sims(r.model)
        modes = {}
        for mode, fn in (("inference", lambda: r.infer(x)), ("training", lambda: r.train_step(x, y))):
            for _ in range(args.warmup):
                fn()
            modes[mode] = profile_mode(fn, device, args.steps, args.top)
        for h in handles:
            h.remove()
        report["models"][name] = modes
        r = x = y = None  # free the model before the next one is built
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return report


def table(report: dict[str, Any]) -> str:
    a = report["args"]
    unit = "device" if a["device"].startswith("cuda") else "CPU (no GPU: the ops' own CPU time)"
    lines = [f"{report['device']}, torch {report['torch']}, amp {a['amp']}, channels_last {a['channels_last']}, "
             f"{a['batch']} clips of {a['frames']} frames at {a['size']} px, {a['steps']} profiled steps after "
             f"{a['warmup']} warm-up; time per step, {unit}", "",
             "| model | mode | wall ms | device ms | busy | launches | IntraSIM fwd ms | InterSIM fwd ms "
             "| IntraSIM bwd ms | InterSIM bwd ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += profile_rows(report)
    for name, modes in report["models"].items():
        if not name.startswith("dil_"):
            continue
        for mode, m in modes.items():
            lines += ["", f"**{name}, {mode}: top kernels**", "", "| kernel | calls | ms | share |", "|---|---:|---:|---:|"]
            lines += [f"| `{k['name'][:90]}` | {k['calls']:.0f} | {k['ms']:.2f} | {k['share']:.1%} |"
                      for k in m["top_kernels"]]
            lines += ["", f"**{name}, {mode}: ops in the SIMs' forwards**", "", "| op (input shapes) | calls | ms |",
                      "|---|---:|---:|"]
            lines += [f"| `{o['op'][:120]}` | {o['calls']:.0f} | {o['ms']:.2f} |" for o in m["top_sim_ops"]]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cuda or cpu (default cpu: a check of the script)")
    p.add_argument("--models", default="dil_resnet50,resnet50", help="comma separated (efficiency.py's names)")
    p.add_argument("--frames", type=int, default=16, help="U*T frames per clip (default 16)")
    p.add_argument("--size", type=int, default=224, help="frame side in px (default 224)")
    p.add_argument("--batch", type=int, default=16, help="clips per step (default 16)")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--steps", type=int, default=3, help="profiled steps per mode (default 3)")
    p.add_argument("--warmup", type=int, default=2, help="steps before profiling (default 2)")
    p.add_argument("--top", type=int, default=20, help="kernels and SIM ops listed (default 20)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--json", type=Path, help="write every figure here")
    p.add_argument("--quick", action="store_true", help="dil_resnet18 and resnet18, 2 clips of 8 frames at 32 px")
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.frames, args.size, args.batch = "dil_resnet18,resnet18", 8, 32, 2
        args.steps, args.warmup, args.threads = 1, 1, args.threads or 1
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    report = run(args)
    print(table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()
