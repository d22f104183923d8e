"""The SIMs' depthwise convolutions: PyTorch's conv (cuDNN) against dynsnip's Triton kernels (issue 24).

Every depthwise "same" conv that ``--arch`` (default ``dil_resnet50``, dynsnip's default module) runs
through :func:`dynsnip.modules.depthwise_taps.depthwise_taps`, at the shape and layout it has for
``--clips`` clips of ``--frames`` frames at ``--size`` px (default 16 x 16 x 224): Eq. 1 of the motion
channels and of the gate's channels of each Intra-SIM (a 3x3x3 kernel on the squeezed snippet volume,
``IntraSMA.merged_differences``) and each
Inter-SIM's ``Conv_U`` (a (3, 1, 1) kernel on the clip volume ``(N, C, U, T, H*W)``). Per conv:

* ``conv``: what runs with the kernels off (``IntraSMA.triton_depthwise = False``, ``InterSIM.conv_u_op =
  "conv2d"``): ``F.conv3d`` for Eq. 1, the ``(k, 1)`` ``F.conv2d`` on the ``n c u (t hw)`` view for Conv_U;
* ``triton``: :func:`~dynsnip.modules.depthwise_taps.depthwise_taps_triton` (forward) and, for
  ``train``, forward and backward through the kernels (input and weight gradients);

interleaved, CUDA events around ``--inner`` back-to-back calls, medians of ``--repeats``, ms per call;
``ratio`` = conv / triton; ``GB/s``: the forward kernel's input read once and output written once,
over its time. Each row has the largest difference of the kernels from ``F.conv3d`` (forward; the
input's and weight's gradients for ``train``), which must stay within one rounding of ``--dtype``
(else the script exits 1).

Without CUDA only the conv runs (the kernels need a GPU). With ``TRITON_INTERPRET=1`` the kernels
run in Triton's CPU interpreter: their agreement is checked, their timings mean nothing.

Usage::

    python benchmarks/depthwise_taps.py --json benchmarks/results/gpu_depthwise_taps.json   # on a GPU
    python benchmarks/depthwise_taps.py --device cpu --quick                                # smoke test
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's dynsnip, also when run as a script
sys.path.insert(0, str(ROOT / "benchmarks"))

from dynsnip.modules import depthwise_taps as taps_module  # noqa: E402
from gate_tap import DTYPES, _triton_version, agrees, kernel_benchmark_args, time_interleaved  # noqa: E402

def depthwise_convs(arch: str, frames: int, size: int) -> list[dict]:
    """Every call of ``depthwise_taps`` in ``arch`` (dynsnip's defaults) for one clip of ``frames`` frames at
    ``size`` px: its SIM, ``x``'s shape and strides (a channel slice keeps its parent's), the kernel size.
    One channels_last forward on the CPU (about a second for dil_resnet50; the SIMs' composed weights ask
    autocast, which the meta device does not have), with the kernels' path taken as on a GPU."""
    import timm

    import dynsnip  # noqa: F401  (registers dil_*)
    from dynsnip.modules import InterSIM, IntraSIM, inter_sim, intra_sim

    model = timm.create_model(arch, num_classes=1).eval().to(memory_format=torch.channels_last)
    found: list[dict] = []
    owner = {"name": None}

    def record(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        found.append(dict(name=owner["name"], shape=tuple(x.shape), stride=tuple(x.stride()),
                          kernel=tuple(weight.shape[2:]), conv="conv2d" if weight.shape[2:][1:] == (1, 1) else "conv3d"))
        return taps_module.depthwise_taps_reference(x, weight)

    def named(name: str, forward: Callable) -> Callable:
        def call(*args, **kwargs):
            owner["name"] = name
            return forward(*args, **kwargs)
        return call

    for name, module in model.named_modules():
        if isinstance(module, (IntraSIM, InterSIM)):
            module.forward = named(name, module.forward)
    saved = intra_sim.depthwise_taps, inter_sim.depthwise_taps, inter_sim.depthwise_taps_available
    intra_sim.depthwise_taps = inter_sim.depthwise_taps = record
    inter_sim.depthwise_taps_available = lambda x, weight: True  # Conv_U takes the kernels' branch, as on a GPU
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, frames, size, size).contiguous(memory_format=torch.channels_last_3d))
    finally:
        intra_sim.depthwise_taps, inter_sim.depthwise_taps, inter_sim.depthwise_taps_available = saved
    if not found:
        raise SystemExit(f"{arch} runs no depthwise conv through depthwise_taps")
    return found


def make_inputs(c: dict, clips: int, dtype: torch.dtype, device: torch.device, seed: int = 0):
    """``x`` laid out as in the model (its strides, for ``clips`` clips), a weight and an output gradient."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    shape = (c["shape"][0] * clips, *c["shape"][1:])  # one clip's strides hold for more clips (batch outermost)
    x = torch.empty_strided(shape, c["stride"], dtype=dtype, device=device)
    x.copy_(torch.randn(shape, generator=gen))
    weight = (torch.randn(shape[1], 1, *c["kernel"], generator=gen) / 3).to(device)
    grad = torch.randn(shape, generator=gen).to(device, dtype).contiguous(memory_format=torch.channels_last_3d)
    return x, weight, grad


def conv(c: dict, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """What the SIM runs with the kernels off."""
    w = weight.to(x.dtype)
    k = c["kernel"]
    if c["conv"] == "conv2d":  # Conv_U: the (k, 1) Conv2d over "n c u t hw -> n c u (t hw)"
        return F.conv2d(x.flatten(3), w.squeeze(-1), padding=(k[0] // 2, 0), groups=x.shape[1]).unflatten(3, x.shape[3:])
    return F.conv3d(x, w, padding=tuple(n // 2 for n in k), groups=x.shape[1])


def train_step(forward: Callable, x: torch.Tensor, weight: torch.Tensor, grad: torch.Tensor) -> Callable[[], Any]:
    """Forward and backward (the input's and the weight's gradients) of ``forward``."""
    def step():
        xr = x.detach().requires_grad_()
        wr = weight.detach().requires_grad_()
        return torch.autograd.grad(forward(xr, wr), (xr, wr), grad)
    return step


def bench_conv(c: dict, args: argparse.Namespace, device: torch.device, kernels: bool) -> dict:
    dtype = DTYPES[args.dtype]
    x, weight, grad = make_inputs(c, args.clips, dtype, device)
    row = dict(name=c["name"], shape=list(x.shape), kernel=list(c["kernel"]), conv=c["conv"])

    def with_conv(a, w):
        return conv(c, a, w)

    def with_kernels(a, w):
        return taps_module._DepthwiseTapsFunction.apply(a, w.to(a.dtype))

    fns: dict[str, Callable] = {"conv": lambda: conv(c, x, weight)}
    train: dict[str, Callable] = {"conv": train_step(with_conv, x, weight, grad)}
    if kernels:
        with torch.no_grad():
            want = taps_module.depthwise_taps_reference(x, weight)
            got = taps_module.depthwise_taps_triton(x, weight)
        want_grads = train_step(lambda a, w: taps_module.depthwise_taps_reference(a, w), x, weight, grad)()
        got_grads = train_step(with_kernels, x, weight, grad)()
        row["max_abs"] = (got.float() - want.float()).abs().max().item()
        row["max_abs_grad_x"] = (got_grads[0].float() - want_grads[0].float()).abs().max().item()
        row["max_abs_grad_w"] = (got_grads[1].float() - want_grads[1].float()).abs().max().item()
        scale = max(want_grads[1].abs().max().item(), 1.0)  # the weight's gradient sums every position
        row["ok"] = agrees(got, want) and agrees(got_grads[0], want_grads[0]) and row["max_abs_grad_w"] <= 2e-2 * scale
        del want, got, want_grads, got_grads
        fns["triton"] = lambda: taps_module.depthwise_taps_triton(x, weight)
        train["triton"] = train_step(with_kernels, x, weight, grad)
    with torch.no_grad():
        ms = time_interleaved(fns, device, args.warmup, args.repeats, args.inner)
    train_ms = time_interleaved(train, device, args.warmup, args.repeats, args.inner)
    row.update(conv_ms=ms["conv"], conv_train_ms=train_ms["conv"])
    if kernels:
        row.update(triton_ms=ms["triton"], triton_train_ms=train_ms["triton"], ratio=ms["conv"] / ms["triton"],
                   train_ratio=train_ms["conv"] / train_ms["triton"],
                   triton_GBps=2 * x.numel() * x.element_size() / (ms["triton"] * 1e-3) / 1e9)
    return row


def table(rows: list[dict], total: dict) -> str:
    kernels = "triton_ms" in total
    head = "| SIM | conv | B x C x D x H x W | kernel | conv ms | conv train ms |"
    if kernels:
        head += " triton ms | train ms | conv / triton | train conv / triton | GB/s | max abs (fwd, dx, dw) |"
    lines = ["### The SIMs' depthwise convs: PyTorch's conv against the Triton kernels", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        line = (f"| {r['name']} | {r['conv']} | {' x '.join(map(str, r['shape']))} | {'x'.join(map(str, r['kernel']))} | "
                f"{r['conv_ms']:.4f} | {r['conv_train_ms']:.4f} |")
        if kernels:
            flag = "" if r["ok"] else " **DISAGREES**"
            line += (f" {r['triton_ms']:.4f} | {r['triton_train_ms']:.4f} | {r['ratio']:.2f}x | {r['train_ratio']:.2f}x | "
                     f"{r['triton_GBps']:.0f} | {r['max_abs']:.3g}, {r['max_abs_grad_x']:.3g}, {r['max_abs_grad_w']:.3g}{flag} |")
        lines.append(line)
    line = f"| **all {len(rows)}** | | | | {total['conv_ms']:.4f} | {total['conv_train_ms']:.4f} |"
    if kernels:
        line += f" {total['triton_ms']:.4f} | {total['triton_train_ms']:.4f} | {total['ratio']:.2f}x | {total['train_ratio']:.2f}x | | |"
    lines.append(line)
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    return kernel_benchmark_args(p, argv, "the conv", "SIMs", "the activations")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    device = torch.device(args.device)
    torch.manual_seed(0)
    probe = torch.empty(1, 1, 1, 1, 1, device=device, dtype=DTYPES[args.dtype])
    kernels = taps_module.depthwise_taps_available(probe, torch.empty(1, 1, 3, 3, 3, device=device))
    if device.type == "cuda" and not kernels:
        raise SystemExit("depthwise_taps: the Triton kernels are not available on this CUDA device (is triton installed?)")
    if not kernels:
        print("(no CUDA: PyTorch's conv only; the Triton kernels need a GPU)\n")
    elif device.type != "cuda":
        print("(Triton's interpreter on the CPU: agreement is checked, its timings mean nothing)\n")
    rows = [bench_conv(c, args, device, kernels) for c in depthwise_convs(args.arch, args.frames, args.size)]
    total = {key: sum(r[key] for r in rows) for key in ("conv_ms", "conv_train_ms")}
    if kernels:
        total.update(triton_ms=sum(r["triton_ms"] for r in rows), triton_train_ms=sum(r["triton_train_ms"] for r in rows))
        total.update(ratio=total["conv_ms"] / total["triton_ms"], train_ratio=total["conv_train_ms"] / total["triton_train_ms"],
                     ok=all(r["ok"] for r in rows))
    report: dict[str, Any] = dict(
        device=torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        torch=torch.__version__, triton=_triton_version(), arch=args.arch, clips=args.clips, frames=args.frames,
        size=args.size, dtype=args.dtype, repeats=args.repeats, inner=args.inner, kernels=kernels, convs=rows, total=total,
    )
    print(table(rows, total), "\n", flush=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1))
    if kernels and not total["ok"]:
        print("the depthwise kernels DISAGREE with F.conv3d (see max abs)", file=sys.stderr)
        raise SystemExit(1)
    return report


if __name__ == "__main__":
    main()
