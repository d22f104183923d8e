"""The Intra-SIM's elementwise tail: eager PyTorch ops against the fused Triton kernel (issue 24).

For every Intra-SIM of ``--arch`` (default ``dil_resnet50``), at the shape it has for ``--clips``
clips of ``--frames`` frames at ``--size`` px (default 16 x 16 x 224: 64 snippet volumes of T = 4),
with dynsnip's default module and the paper's (``--configs default,paper``), this times the tail of
``IntraSIM.forward_volume`` from the recovery convs' logits to ``O_2``:

* ``eager``: what the module runs today: ``sigmoid``, ``chunk``, the product, ``addcmul``, then
  :func:`dynsnip.modules.temporal_ops.dynamic_tap_conv` (pad, window view, product, sum);
* ``triton``: :func:`dynsnip.modules.gate_tap.gate_tap_triton`, one launch;

on ``x`` a channels_last_3d channel slice of the SIM's volume (the gated channels of ``X_2``), the
logits a channels_last_3d tensor of their own (the recovery conv's output), the kernel float32
(autocast's softmax), ``--dtype`` (default bf16) for the rest. Timings are CUDA events around
``--inner`` back-to-back calls (host launch gaps included: the eager tail is host-bound), the
two variants interleaved, medians of ``--repeats``, in ms per call; ``ratio`` = eager / triton.
Each row also has the kernels each variant dispatches (``ops``: non-view aten ops of the eager
tail, from a dispatch mode; 1 for the fused kernel), the fused kernel's effective bandwidth
(``GB/s``: the bytes it must move, x and logits read once, out written once, over its time), and
the largest difference of each variant from :func:`gate_tap_reference` (float32 arithmetic,
rounded once): the Triton kernel must agree with it within one rounding of ``--dtype`` (else the
script exits 1).

Without CUDA (``--device cpu``) only the eager tail and the reference run: the Triton path needs a
GPU. With ``TRITON_INTERPRET=1`` the kernel runs in Triton's CPU interpreter: its agreement is
checked (the script's GPU path, tried on a CPU), its timings mean nothing.

Usage::

    python benchmarks/gate_tap.py --json benchmarks/results/gpu_gate_tap.json   # on a GPU
    python benchmarks/gate_tap.py --device cpu --quick                          # smoke test
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dynsnip, also when run as a script

from dynsnip.modules.gate_tap import gate_tap_available, gate_tap_reference, gate_tap_triton  # noqa: E402
from dynsnip.modules.temporal_ops import dynamic_tap_conv  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from op_counts import kernels  # noqa: E402  (one definition of what launches a kernel)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# ------------------------------------------------------------------ shapes


def intra_sim_shapes(arch: str, config: str, frames: int, size: int, snippet_len: int | None = None) -> list[dict]:
    """Each Intra-SIM of ``arch`` (``config``: ``"default"`` or ``"paper"``) with the frame shape it
    sees for one clip of ``frames`` frames at ``size`` px: a forward on the meta device (no weights,
    no compute) with the SIMs replaced by the identity (they keep the shape)."""
    import timm

    import dynsnip
    from dynsnip.modules import InterSIM, IntraSIM

    kwargs = dynsnip.paper_config("paper") if config == "paper" else {}
    with torch.device("meta"):
        model = timm.create_model(arch, num_classes=1, **kwargs).eval()
    found: list[dict] = []

    def record(name: str, sim: IntraSIM) -> Callable:
        def forward(x: torch.Tensor, num_snippets: int | None = None) -> torch.Tensor:
            gated = sim.split[1] - sim.sma.motion_channels
            found.append(dict(name=name, channels=sim.channels, T=sim.snippet_len, H=x.shape[2], W=x.shape[3],
                              g=gated, offset=sim.split[0], P=2 if sim.sma.coord_attention else 1,
                              k=None if sim.kernel is None else sim.kernel.kernel_size))
            return x
        return forward

    for name, module in model.named_modules():
        if isinstance(module, IntraSIM):
            module.forward = record(name, module)
        elif isinstance(module, InterSIM):
            module.forward = lambda x, num_snippets=None: x
    with torch.no_grad():
        model(torch.empty(1, 3, frames, size, size, device="meta"))
    if not found:
        raise SystemExit(f"{arch} has no Intra-SIM")
    return found


def make_inputs(s: dict, snippets: int, dtype: torch.dtype, device: torch.device, seed: int = 0):
    """The tail's inputs for one Intra-SIM ``s`` over ``snippets`` volumes, laid out as in the model."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    shape = (snippets, s["channels"], s["T"], s["H"], s["W"])
    volume = torch.randn(shape, generator=gen).to(device, dtype).contiguous(memory_format=torch.channels_last_3d)
    x = volume[:, s["offset"]:s["offset"] + s["g"]]  # the gated channels of X_2
    logits = (2 * torch.randn(snippets, s["P"] * s["g"], *shape[2:], generator=gen)).to(device, dtype)
    logits = logits.contiguous(memory_format=torch.channels_last_3d)
    kernel = None
    if s["k"]:
        kernel = torch.softmax(torch.randn(snippets, s["g"], s["k"], generator=gen), -1).to(device)
    return x, logits, kernel


def eager_tail(x: torch.Tensor, logits: torch.Tensor, kernel: torch.Tensor | None) -> torch.Tensor:
    """IntraSIM.forward_volume from the recovery convs' logits to O_2, op for op."""
    if logits.shape[1] == 2 * x.shape[1]:
        atten_h, atten_w = torch.sigmoid(logits).chunk(2, 1)
        atten = atten_h * atten_w
    else:
        atten = torch.sigmoid(logits)
    o2 = torch.addcmul(x, atten, x)  # Atten_H ⊙ Atten_W ⊙ X_2 + X_2
    return o2 if kernel is None else dynamic_tap_conv(o2, kernel)


def eager_launches(x, logits, kernel) -> int:
    """Kernels the eager tail launches (``op_counts.kernels``: views and allocations left out)."""
    def tail() -> None:
        with torch.no_grad():
            eager_tail(x, logits, kernel)
    return sum(kernels(tail)[0].values())


# ------------------------------------------------------------------ timing


def time_interleaved(fns: dict[str, Callable[[], Any]], device: torch.device, warmup: int, repeats: int,
                     inner: int) -> dict[str, float]:
    """Median ms per call of each function, ``inner`` back-to-back calls per sample, interleaved."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(inner):
                    fn()
                end.record()
                end.synchronize()
                samples[name].append(start.elapsed_time(end) / inner)
            else:
                t0 = time.perf_counter()
                for _ in range(inner):
                    fn()
                samples[name].append((time.perf_counter() - t0) * 1e3 / inner)
    return {name: statistics.median(v) for name, v in samples.items()}


def agrees(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Within one rounding of the dtype (torch.testing's default tolerances for it)."""
    try:
        torch.testing.assert_close(got, want)
        return True
    except AssertionError:
        return False


def bench_sim(s: dict, args: argparse.Namespace, device: torch.device, fused: bool) -> dict:
    dtype = DTYPES[args.dtype]
    snippets = args.clips * args.frames // s["T"]
    x, logits, kernel = make_inputs(s, snippets, dtype, device)
    row = dict(s, B=snippets, eager_ops=eager_launches(x, logits, kernel))
    with torch.no_grad():
        want = gate_tap_reference(x, logits, kernel)
        row["max_abs_eager"] = (eager_tail(x, logits, kernel).float() - want.float()).abs().max().item()
        fns: dict[str, Callable] = {"eager": lambda: eager_tail(x, logits, kernel)}
        if fused:
            got = gate_tap_triton(x, logits, kernel)
            row["max_abs_triton"] = (got.float() - want.float()).abs().max().item()
            row["ok"] = agrees(got, want)
            row["triton_ops"] = 1
            fns["triton"] = lambda: gate_tap_triton(x, logits, kernel)
        del want
        ms = time_interleaved(fns, device, args.warmup, args.repeats, args.inner)
    row["eager_ms"] = ms["eager"]
    if fused:
        row["triton_ms"] = ms["triton"]
        row["ratio"] = ms["eager"] / ms["triton"]
        moved = x.numel() * x.element_size() * 2 + logits.numel() * logits.element_size()  # x, out, logits
        row["triton_GBps"] = moved / (ms["triton"] * 1e-3) / 1e9
    return row


# ------------------------------------------------------------------ report


def table(config: str, rows: list[dict], total: dict) -> str:
    fused = "triton_ms" in total
    head = "| SIM | B x g x T x H x W | P | k | eager ms | ops |"
    head += " triton ms | eager / triton | triton GB/s | max abs triton | max abs eager |" if fused else " max abs eager |"
    lines = [f"### Intra-SIM tail, {config} module", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        line = f"| {r['name']} | {r['B']} x {r['g']} x {r['T']} x {r['H']} x {r['W']} | {r['P']} | {r['k']} | " \
               f"{r['eager_ms']:.4f} | {r['eager_ops']} |"
        if fused:
            flag = "" if r["ok"] else " **DISAGREES**"
            line += f" {r['triton_ms']:.4f} | {r['ratio']:.2f}x | {r['triton_GBps']:.0f} | " \
                    f"{r['max_abs_triton']:.3g}{flag} | {r['max_abs_eager']:.3g} |"
        else:
            line += f" {r['max_abs_eager']:.3g} |"
        lines.append(line)
    line = f"| **all {len(rows)}** | | | | {total['eager_ms']:.4f} | {total['eager_ops']} |"
    if fused:
        line += f" {total['triton_ms']:.4f} | {total['ratio']:.2f}x | | | |"
    else:
        line += " |"
    lines.append(line)
    return "\n".join(lines)


FULL = dict(arch="dil_resnet50", clips=16, frames=16, size=224, repeats=20, warmup=3, inner=10)
QUICK = dict(arch="dil_resnet18", clips=2, frames=8, size=32, repeats=3, warmup=1, inner=2)


def kernel_benchmark_args(p: argparse.ArgumentParser, argv: list[str] | None, what: str, sims: str,
                          dtype_help: str) -> argparse.Namespace:
    """The options a GPU-kernel benchmark of the SIMs takes (this script's, benchmarks/depthwise_taps.py's):
    device, model, batch, dtype, timing, --json and --quick (QUICK's defaults instead of FULL's)."""
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help=f"cuda (default where available: {what} and Triton) or cpu ({what} only)")
    p.add_argument("--arch", help=f"the DIL model whose {sims} give the shapes (default dil_resnet50)")
    p.add_argument("--clips", type=int, help="clips per batch (default 16)")
    p.add_argument("--frames", type=int, help="U*T frames per clip (default 16)")
    p.add_argument("--size", type=int, help="frame size in px (default 224)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help=f"{dtype_help} (default bf16)")
    p.add_argument("--repeats", type=int, help="timed samples per variant (default 20)")
    p.add_argument("--warmup", type=int, help="untimed calls first (default 3)")
    p.add_argument("--inner", type=int, help="back-to-back calls per sample (default 10)")
    p.add_argument("--json", default=None, help="write every figure here")
    p.add_argument("--quick", action="store_true", help="a smoke test: defaults " + ", ".join(
        f"--{k} {v}" for k, v in QUICK.items()) + " (each can still be given)")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", default="default,paper", help="module configurations, comma separated: default, paper")
    args = kernel_benchmark_args(p, argv, "eager", "Intra-SIMs", "x and logits")
    for config in args.configs.split(","):
        if config not in ("default", "paper"):
            p.error(f"--configs: unknown configuration {config!r} (default, paper)")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    probe = torch.empty(1, device=device, dtype=DTYPES[args.dtype])
    fused = gate_tap_available(probe)
    if device.type == "cuda" and not fused:
        raise SystemExit("gate_tap: the Triton path is not available on this CUDA device (is triton installed?)")
    report: dict[str, Any] = dict(
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        torch=torch.__version__, triton=_triton_version(), arch=args.arch, clips=args.clips, frames=args.frames,
        size=args.size, dtype=args.dtype, repeats=args.repeats, inner=args.inner, fused=fused, configs={},
    )
    if not fused:
        print("(no CUDA: the eager tail and the reference only; the Triton kernel needs a GPU)\n")
    elif device.type != "cuda":  # TRITON_INTERPRET=1: checks the script's fused path, times nothing useful
        print("(Triton's interpreter on the CPU: agreement is checked, its timings mean nothing)\n")
    for config in args.configs.split(","):
        rows = [bench_sim(s, args, device, fused) for s in intra_sim_shapes(args.arch, config, args.frames, args.size)]
        total = {"eager_ms": sum(r["eager_ms"] for r in rows), "eager_ops": sum(r["eager_ops"] for r in rows)}
        if fused:
            total["triton_ms"] = sum(r["triton_ms"] for r in rows)
            total["ratio"] = total["eager_ms"] / total["triton_ms"]
            total["ok"] = all(r["ok"] for r in rows)
        report["configs"][config] = {"sims": rows, "total": total}
        print(table(config, rows, total), "\n", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    if fused and not all(c["total"]["ok"] for c in report["configs"].values()):
        print("gate_tap_triton DISAGREES with gate_tap_reference (see max abs triton)", file=sys.stderr)
        raise SystemExit(1)
    return report


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


if __name__ == "__main__":
    main()
