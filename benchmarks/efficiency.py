"""Cost of DIL against its 2D backbone and its peers, on the same clip, in one process.

Models (``--models``, comma separated; the baseline is always added):

* ``dil_resnet50`` (any ``dil_*``): the DIL network, ``(B, 3, U*T, H, W) -> (B, classes)``, with
  dynsnip's defaults; ``dil_resnet50@paper``: the same with the paper's module
  (``dynsnip.paper_config("paper")``: no motion channels, Eq. 1 randomly initialised);
* ``resnet50`` (any other timm name): the 2D backbone applied to the same U*T frames,
  logits averaged over frames. This is the limit: the SIMs cannot make the backbone cheaper;
* ``tsm_resnet50`` (``tsm_<timm resnet>``): the backbone with a residual temporal shift
  (TSM: 1/8 of the channels from the next frame, 1/8 from the previous one, zero FLOPs)
  before the first conv of every block, the shift running over the clip's frames; written as
  the TSM authors' shift, so that it keeps a channels_last layout;
* ``r2plus1d_18``, ``r3d_18``, ``mc3_18``: torchvision's 3D CNNs (randomly initialised);
* a variant named with ``--variant LABEL ARCH JSON``: ``ARCH`` (a ``dil_*`` model, ``@paper`` allowed)
  built with the builder arguments ``JSON``, listed as ``LABEL`` (e.g. ``--variant dense_conv_u
  dil_resnet50 '{"inter_args": {"conv_u": "dense"}}'``); the key ``module_attrs`` sets attributes
  on every module of a class instead (``'{"module_attrs": {"InterSIM": {"conv_u_op": "conv3d"}}}'``:
  how a SIM runs, not what it computes); variants are added to ``--models``.

Figures, each also as a ratio to the baseline (``--baseline``, default ``resnet50``):

* ``params``: parameters, in millions;
* ``GFLOPs``: ``torch.utils.flop_counter`` on one clip (inference; FLOPs = 2 x MACs;
  convolutions, matmuls and the other ops the counter knows; elementwise ops count 0);
* ``latency``: inference time of one clip (``torch.no_grad``), median of ``--repeats``;
* ``clips/s``: inference throughput on ``--infer-batch`` clips (default ``--batch``);
* ``train``: one training step (forward, cross-entropy, backward, SGD with momentum) on
  ``--batch`` clips, median of ``--repeats``;
* ``peak MB``: peak tensor memory of one training step: the bytes live when the step
  starts (parameters, optimizer state, the batch; gradients were just set to None) plus the
  largest growth during the step (activations, gradients, workspace). CUDA: growth =
  ``torch.cuda.max_memory_allocated`` minus ``memory_allocated`` before the step. CPU: the
  allocations and frees that ``torch.profiler(profile_memory=True)`` records, summed in
  time order, maximum taken; buffers oneDNN allocates outside PyTorch's allocator are
  not seen.

Timings are interleaved: each repeat times every model once, in turn, so that a change of
machine load during the run affects all models alike; the table shows medians.

Usage::

    python benchmarks/efficiency.py                       # CPU, 1x3x16x224x224, batch 2
    python benchmarks/efficiency.py --device cuda --amp bf16 --channels-last --compile \\
        --batch 8 --repeats 20 --json gpu.json
    python benchmarks/efficiency.py --quick               # small sizes, a smoke test
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

PAPER_SUFFIX = "@paper"
DEFAULT_MODELS = ("dil_resnet50", "dil_resnet50@paper", "resnet50", "tsm_resnet50", "r2plus1d_18", "r3d_18")
VIDEO_3D = ("r2plus1d_18", "r3d_18", "mc3_18")


# ------------------------------------------------------------------------------- models
class FrameModel(nn.Module):
    """A 2D classifier applied to each frame of ``(B, C, F, H, W)``; logits averaged over F."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        y = self.net(x.transpose(1, 2).reshape(b * f, c, h, w))
        return y.view(b, f, -1).mean(1)


class TemporalShift(nn.Module):
    """Residual temporal shift (TSM) in front of ``conv``; frames folded as ``(B*F, C, H, W)``.

    As the TSM authors' ``shift``: the shifted copy is written into a ``zeros_like`` of the input,
    which keeps its memory format (a channels_last input gives a channels_last conv input, no
    conversion); 1/``fold_div`` of the channels come from the next frame, as many from the
    previous one (zero at the clip's ends).
    """

    def __init__(self, conv: nn.Module, frames: int, fold_div: int = 8) -> None:
        super().__init__()
        self.conv, self.frames, self.fold_div = conv, frames, fold_div

    @staticmethod
    def shift(x: torch.Tensor, frames: int, fold_div: int = 8) -> torch.Tensor:
        v = x.unflatten(0, (-1, frames))  # "(b f) c h w -> b f c h w", a view
        k = x.shape[1] // fold_div
        out = torch.zeros_like(v)
        out[:, :-1, :k] = v[:, 1:, :k]  # frame t gets t+1
        out[:, 1:, k:2 * k] = v[:, :-1, k:2 * k]  # frame t gets t-1
        out[:, :, 2 * k:] = v[:, :, 2 * k:]
        return out.flatten(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.shift(x, self.frames, self.fold_div))


def build_model(name: str, frames: int, num_classes: int, variants: dict[str, tuple[str, dict]] | None = None) -> nn.Module:
    import timm

    import dynsnip  # registers dil_*

    if variants and name in variants:
        arch, kwargs = variants[name]
        kwargs = dict(kwargs)
        module_attrs = kwargs.pop("module_attrs", {})  # {"InterSIM": {"conv_u_op": "conv3d"}}: per instance
        if arch.endswith(PAPER_SUFFIX):
            arch, kwargs = arch[: -len(PAPER_SUFFIX)], {**dynsnip.paper_config("paper"), **kwargs}
        model = timm.create_model(arch, num_classes=num_classes, **kwargs)
        for module in model.modules():
            for attr, value in module_attrs.get(type(module).__name__, {}).items():
                if not hasattr(module, attr):
                    raise ValueError(f"variant {name}: {type(module).__name__} has no attribute {attr!r}")
                setattr(module, attr, value)
        return model
    if name.startswith("dil_") and name.endswith(PAPER_SUFFIX):  # the paper's module: dynsnip.paper_config("paper")
        return timm.create_model(name[: -len(PAPER_SUFFIX)], num_classes=num_classes, **dynsnip.paper_config("paper"))
    if name.startswith("dil_"):
        return timm.create_model(name, num_classes=num_classes)
    if name in VIDEO_3D:
        import torchvision.models.video as tvv

        return getattr(tvv, name)(num_classes=num_classes)
    if name.startswith("tsm_"):
        net = timm.create_model(name[len("tsm_"):], num_classes=num_classes)
        for stage in (net.layer1, net.layer2, net.layer3, net.layer4):
            for block in stage:
                block.conv1 = TemporalShift(block.conv1, frames)
        return FrameModel(net)
    return FrameModel(timm.create_model(name, num_classes=num_classes))


# -------------------------------------------------------------------------- measuring
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process) that ``fn`` takes."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad():
        model(x)  # once first: the SIMs' composed weights, which eager inference keeps, are made here, not counted
        with FlopCounterMode(display=False) as counter:
            model(x)
    return int(counter.get_total_flops())


def cpu_peak_bytes(fn: Callable[[], Any]) -> int:
    """Peak of (allocated - freed) CPU tensor bytes while ``fn`` runs, from the profiler."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")
    ]
    live = peak = 0
    for _, nbytes in sorted(events):
        live += nbytes
        peak = max(peak, live)
    return peak


def tensor_bytes(*objs: Any) -> int:
    """Bytes held by the tensors in modules, optimizers and tensors given (shared storages once)."""
    seen, total = set(), 0

    def add(t: torch.Tensor) -> None:
        nonlocal total
        s = t.untyped_storage()
        if s.data_ptr() not in seen:
            seen.add(s.data_ptr())
            total += s.nbytes()

    for o in objs:
        if isinstance(o, nn.Module):
            for t in list(o.parameters()) + list(o.buffers()):
                add(t)
                if t.grad is not None:
                    add(t.grad)
        elif isinstance(o, torch.optim.Optimizer):
            for state in o.state.values():
                for v in state.values():
                    if torch.is_tensor(v):
                        add(v)
        elif torch.is_tensor(o):
            add(o)
    return total


class Runner:
    """One model with its input, optimizer and the closures the benchmark times."""

    def __init__(self, name: str, args: argparse.Namespace, device: torch.device) -> None:
        self.name = name
        self.args = args
        self.device = device
        torch.manual_seed(0)
        self.model = build_model(name, args.frames, args.num_classes, args.variant_models).to(device)
        self.params = sum(p.numel() for p in self.model.parameters())
        fmt = torch.channels_last_3d if name in VIDEO_3D else torch.channels_last
        if args.channels_last:
            self.model.to(memory_format=fmt)
        if args.grad_checkpointing:  # timm models (DIL, and the 2D nets inside FrameModel); not the 3D CNNs
            target = self.model.net if isinstance(self.model, FrameModel) else self.model
            if hasattr(target, "set_grad_checkpointing"):
                target.set_grad_checkpointing(True)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-4, momentum=0.9)
        options = {"backend": args.compile_backend, "dynamic": False}  # one graph per clip shape, as --compile
        if args.compile_backend == "inductor":
            options["mode"] = args.compile_mode
        self.net = torch.compile(self.model, fullgraph=True, **options) if args.compile else self.model
        self.first_call_s: dict[str, float] = {}
        self.samples: dict[str, dict[str, list[float]]] = {
            clock: {"latency": [], "throughput": [], "train": []} for clock in ("wall", "cpu")
        }
        self.peak_train_bytes = 0

    def clip(self, batch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        a = self.args
        x = torch.randn(batch, 3, a.frames, a.size, a.size, generator=g).to(self.device)
        return x.contiguous(memory_format=torch.channels_last_3d) if a.channels_last else x

    def autocast(self):
        if self.args.amp == "none":
            return nullcontext()
        return torch.autocast(self.device.type, dtype=getattr(torch, {"bf16": "bfloat16", "fp16": "float16"}[self.args.amp]))

    def infer(self, x: torch.Tensor) -> None:
        self.model.eval()
        with torch.no_grad(), self.autocast():
            self.net(x)

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            out = self.net(x)
        loss = F.cross_entropy(out.float(), y)
        loss.backward()
        self.optimizer.step()

    def measure_peak(self, x: torch.Tensor, y: torch.Tensor) -> int:
        """Bytes of this model's live tensors at the start of a step plus the step's peak growth.

        (All models stay resident, so the device-wide figure would count the others too.)
        """
        self.optimizer.zero_grad(set_to_none=True)
        own = tensor_bytes(self.model, self.optimizer, x, y)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            before = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.train_step(x, y)
            torch.cuda.synchronize(self.device)
            return own + int(torch.cuda.max_memory_allocated(self.device)) - before
        return own + cpu_peak_bytes(lambda: self.train_step(x, y))


# --------------------------------------------------------------------------------- run
COLUMNS = (  # key, header, format, scale
    ("params", "params M", "{:.2f}", 1e-6),
    ("flops", "GFLOPs", "{:.1f}", 1e-9),
    ("latency", "latency ms", "{:.0f}", 1e3),
    ("clips_per_s", "clips/s", "{:.2f}", 1.0),
    ("train", "train ms", "{:.0f}", 1e3),
    ("peak_train", "peak MB", "{:.0f}", 2.0 ** -20),
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--frames", type=int, default=16, help="U*T frames per clip (default 16)")
    p.add_argument("--size", type=int, default=224, help="frame height = width (default 224)")
    p.add_argument("--batch", type=int, default=2, help="clips per training step (default 2)")
    p.add_argument("--infer-batch", type=int, default=None, help="clips for the throughput figure (default --batch)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per figure, median reported (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (default 1)")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated model names")
    p.add_argument("--baseline", default="resnet50", help="the model ratios are taken against (default resnet50)")
    p.add_argument("--num-classes", type=int, default=2, help="classifier outputs (default 2: real/fake)")
    p.add_argument("--compile", action="store_true", help="torch.compile(model, fullgraph=True, dynamic=False)")
    p.add_argument("--compile-mode", default="default",
                   help="torch.compile mode with --compile (default 'default'; 'reduce-overhead': CUDA graphs)")
    p.add_argument("--compile-backend", default="inductor",
                   help="torch.compile backend with --compile (default inductor; 'eager' checks the capture only)")
    p.add_argument("--channels-last", action="store_true", help="channels_last weights and channels_last_3d clips")
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none", help="autocast dtype (default none)")
    p.add_argument("--grad-checkpointing", action="store_true",
                   help="set_grad_checkpointing(True) on the timm models (not the 3D CNNs) for the training figures")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall",
        help="wall: elapsed time (default). cpu: CPU time of this process, steadier on a shared "
        "machine; meaningful on CPU with --threads 1 only (both are kept in --json)",
    )
    p.add_argument("--variant", nargs=3, action="append", default=[], metavar=("LABEL", "ARCH", "JSON"),
                   help="add model LABEL: ARCH built with the builder arguments JSON (repeatable)")
    p.add_argument("--json", default=None, help="write every figure and raw sample here")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat, one thread: a smoke test, not a measurement")
    args = p.parse_args(argv)
    if args.quick:
        args.frames, args.size, args.batch, args.repeats, args.warmup = 8, 64, 1, 1, 1
        args.threads = args.threads or 1
    args.infer_batch = args.infer_batch or args.batch
    args.variant_models = {}
    for label, arch, kwargs in args.variant:
        try:
            args.variant_models[label] = (arch, json.loads(kwargs))
        except json.JSONDecodeError as err:
            p.error(f"--variant {label}: JSON {kwargs!r} does not parse ({err})")
    if args.clock == "cpu" and not args.device.startswith("cpu"):
        p.error("--clock cpu measures CPU time: use it with --device cpu")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its algorithms
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    names += [label for label in args.variant_models if label not in names]
    if args.baseline not in names:
        names.insert(0, args.baseline)
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731
    runners = [Runner(n, args, device) for n in names]
    x1, xb = runners[0].clip(1), runners[0].clip(args.infer_batch)
    xt = runners[0].clip(args.batch)
    yt = torch.zeros(args.batch, dtype=torch.long, device=device)

    results: dict[str, dict[str, Any]] = {}
    for r in runners:
        results[r.name] = {"params": r.params, "flops": count_flops(r.model.eval(), runners[0].clip(1))}
    for r in runners:  # warm-up (and compilation) of every path, timed for --compile
        log(f"warm-up {r.name}")
        r.first_call_s["infer"] = timed(lambda: r.infer(x1), device)[0]
        r.first_call_s["train"] = timed(lambda: r.train_step(xt, yt), device)[0]
        for _ in range(args.warmup):
            r.infer(x1)
            r.infer(xb)
            r.train_step(xt, yt)
    for i in range(args.repeats):
        log(f"repeat {i + 1}/{args.repeats}")
        for key, fn in (
            ("latency", lambda r: r.infer(x1)),
            ("throughput", lambda r: r.infer(xb)),
            ("train", lambda r: r.train_step(xt, yt)),
        ):
            for r in runners:
                wall, cpu = timed(lambda: fn(r), device)
                r.samples["wall"][key].append(wall)
                r.samples["cpu"][key].append(cpu)
    for r in runners:
        log(f"peak memory {r.name}")
        r.peak_train_bytes = r.measure_peak(xt, yt)

    for r in runners:
        res = results[r.name]
        samples = r.samples[args.clock]
        res["latency"] = statistics.median(samples["latency"])
        res["clips_per_s"] = args.infer_batch / statistics.median(samples["throughput"])
        res["train"] = statistics.median(samples["train"])
        res["peak_train"] = r.peak_train_bytes
        res["samples_s"] = r.samples
        res["first_call_s"] = r.first_call_s
    base = results[args.baseline]
    for res in results.values():
        res["ratio"] = {k: res[k] / base[k] for k, *_ in COLUMNS}
    env = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    return {"args": vars(args), "env": env, "baseline": args.baseline, "models": results}


def table(report: dict[str, Any]) -> str:
    a = report["args"]
    head = ["model"]
    for _, h, _, _ in COLUMNS:
        head += [h, "x"]
    lines = [
        f"clip 1x3x{a['frames']}x{a['size']}x{a['size']}, train batch {a['batch']}, throughput batch "
        f"{a['infer_batch']}, device {a['device']} ({report['env']['device']}, {report['env']['threads']} threads), "
        f"amp {a['amp']}, channels_last {a['channels_last']}, compile {a['compile']}"
        + (f" ({a.get('compile_mode', 'default')}, {a.get('compile_backend', 'inductor')})" if a["compile"] else "") + ", "
        f"grad_checkpointing {a.get('grad_checkpointing', False)}, {a['clock']} clock; "
        f"x = ratio to {report['baseline']} in this run (for clips/s, below 1 is slower)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for name, res in report["models"].items():
        row = [name]
        for key, _, fmt, scale in COLUMNS:
            row += [fmt.format(res[key] * scale), f"{res['ratio'][key]:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    if a["compile"]:
        lines.append("")
        lines.append("first calls (compilation included): " + ", ".join(
            f"{name} {res['first_call_s']['infer']:.0f} s inference / {res['first_call_s']['train']:.0f} s training"
            for name, res in report["models"].items()
        ))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    report = run(args)
    print(table(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
