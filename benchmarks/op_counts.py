"""What DIL dispatches on a GPU, measured on the CPU: aten ops per forward and SIM memory traffic.

On a GPU every aten op that computes something is a kernel launch, and a small model's eager
forward is bound by how many it issues (host time), not by the GPU's FLOPs. This script counts
them, in one process, for DIL against its 2D backbone on the same frames:

* ``ops``: aten ops called by the model's Python code, from ``torch.profiler`` (top-level
  ``aten::`` events: the calls the Python code makes, views such as ``view``/``slice`` included;
  a composite such as ``aten::linear`` counts once). The measure of issue 24's "about 1,500
  against about 290";
* ``kernels``: ops that reach a backend kernel, from a ``TorchDispatchMode`` below autograd and
  autocast, views and allocations left out (``view``, ``slice``, ``permute``, ``empty`` ...):
  what launches work on a GPU;

each for float32 inference, bf16-autocast inference and a bf16-autocast forward + backward (through
the Intra-SIMs' volume path, as on a GPU: ``IntraSIM.cpu_training_path = "volume"`` while counting).

``--traffic``: bytes read and written by the non-view ops of each SIM's forward (inputs and
outputs of every op, weights included), in units of ``F``, the SIM's input feature map, at the
shape the SIM has in ``dil_resnet50`` (channels_last frames); and, for scale, the same figure for
a Bottleneck's own layers (conv1 .. act3) at one of those stages. It counts what eager mode
moves; a fused kernel moves less.

Usage::

    python benchmarks/op_counts.py --json benchmarks/results/cpu_op_counts.json
    python benchmarks/op_counts.py --quick     # dil_resnet18, small frames: a smoke test
    TRITON_INTERPRET=1 python benchmarks/op_counts.py --triton-tail   # + the fused tail of a GPU's inference
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from efficiency import build_model  # noqa: E402  (the same models as the efficiency table)

# ops that move no data (views, metadata, allocation without initialisation)
NO_KERNEL = {
    "view", "_unsafe_view", "reshape", "as_strided", "slice", "select", "narrow", "unsqueeze", "squeeze",
    "permute", "transpose", "t", "expand", "unflatten", "flatten", "split", "split_with_sizes", "chunk",
    "unbind", "alias", "detach", "empty", "empty_like", "empty_strided", "unfold", "_reshape_alias",
    "lift_fresh", "split_with_sizes_copy", "sym_size", "sym_stride", "sym_numel", "is_same_size",
    "_to_copy_noop", "new_empty", "new_empty_strided", "resize_", "set_", "result_type", "item",
    "_local_scalar_dense", "_has_compatible_shallow_copy_type", "view_as", "expand_as", "movedim",
    "swapaxes", "_nested_tensor_from_mask", "diagonal", "contiguous_noop",
    "_record_function_enter_new", "_record_function_exit",  # profiler bookkeeping (--triton-tail's marker)
}


FUSED_TAIL = "dynsnip::gate_tap_triton"  # the fused Intra-SIM tail's launch, counted as one op and one kernel
_ACTIVE: list["_Kernels"] = []


class _Kernels(TorchDispatchMode):
    """Counts ops below autograd/autocast, and the bytes each non-view op reads and writes."""

    def __init__(self) -> None:
        super().__init__()
        self.kernels = collections.Counter()
        self.bytes = 0

    def __enter__(self):
        _ACTIVE.append(self)
        return super().__enter__()

    def __exit__(self, *exc):
        _ACTIVE.remove(self)
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in NO_KERNEL or (name == "to" or name == "_to_copy") and out is (args[0] if args else None):
            return out
        self.kernels[name] += 1
        seen = set()
        for t in _tensors((args, kwargs, out)):
            key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()), t.dtype)
            if key not in seen:
                seen.add(key)
                self.bytes += t.numel() * t.element_size()
        return out


def _tensors(obj: Any):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def profiled_ops(fn: Callable[[], Any]) -> collections.Counter:
    """Top-level ``aten::`` calls of ``fn`` (the profiler's view of what Python dispatched)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    names = collections.Counter()
    for e in prof.events():
        if e.name == FUSED_TAIL:
            names["gate_tap_triton"] += 1
        elif e.name.startswith("aten::") and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")):
            if not _inside_fused_tail(e):
                names[e.name[len("aten::"):]] += 1
    return names


def _inside_fused_tail(event) -> bool:
    """Whether a profiler event ran inside the fused tail's launch (Triton's interpreter, which stands
    in for the GPU here, runs torch ops of its own there)."""
    while event is not None:
        if event.name == FUSED_TAIL:
            return True
        event = event.cpu_parent
    return False


def plain_depthwise() -> Callable[[], None]:
    """Count the SIMs' depthwise "same" convs (Eq. 1's motion channels, ``Conv_U``) as the conv ops they
    are on a CPU. Under ``TRITON_INTERPRET=1`` their Triton kernels (one launch each on a GPU) would run
    through the interpreter, whose own torch calls the profiler would count (and which takes minutes).
    Returns the function that undoes it."""
    import dynsnip.modules.inter_sim as inter_sim
    from dynsnip.modules.intra_sim import IntraSMA

    flag, available = IntraSMA.triton_depthwise, inter_sim.depthwise_taps_available
    IntraSMA.triton_depthwise = False
    inter_sim.depthwise_taps_available = lambda *args, **kwargs: False

    def undo() -> None:
        IntraSMA.triton_depthwise = flag
        inter_sim.depthwise_taps_available = available
    return undo


def count_fused_tail() -> Callable[[], None]:
    """Make the Intra-SIMs' fused tail (``gate_tap``) count as one op and one kernel, the
    launch it is on a GPU; returns the function that undoes it. Needs ``TRITON_INTERPRET=1``."""
    import dynsnip.modules.intra_sim as intra_sim
    from torch.utils._python_dispatch import _disable_current_modes

    real = intra_sim.gate_tap

    def launch(*args, **kwargs):
        with torch.profiler.record_function(FUSED_TAIL), _disable_current_modes():
            out = real(*args, **kwargs)
        for mode in _ACTIVE:
            mode.kernels["gate_tap_triton"] += 1
        return out

    intra_sim.gate_tap = launch
    return lambda: setattr(intra_sim, "gate_tap", real)


def kernels(fn: Callable[[], Any]) -> tuple[collections.Counter, int]:
    mode = _Kernels()
    with mode:
        fn()
    return mode.kernels, mode.bytes


def _autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()


def count_model(model: nn.Module, clip: torch.Tensor, train_step: bool = True) -> dict[str, Any]:
    """ops / kernels of one forward (float32, bf16) and (``train_step``) one bf16 forward + backward."""
    res: dict[str, Any] = {}
    model.eval()
    for label, bf16 in (("fp32_inference", False), ("bf16_inference", True)):
        def fwd() -> None:
            with torch.no_grad(), _autocast(bf16):
                model(clip)
        fwd()  # warm-up: caches, lazy inits
        ops = profiled_ops(fwd)
        kern, _ = kernels(fwd)
        res[label] = {"ops": sum(ops.values()), "kernels": sum(kern.values()),
                      "ops_by_name": dict(ops.most_common()), "kernels_by_name": dict(kern.most_common())}
    if not train_step:
        return res
    model.train()

    def step() -> None:
        with _autocast(True):
            y = model(clip)
        y.float().sum().backward()
    # the path a GPU's training step takes (a CPU's eager training takes the frame path by default)
    from dynsnip import IntraSIM

    path, IntraSIM.cpu_training_path = IntraSIM.cpu_training_path, "volume"
    try:
        step()
        ops = profiled_ops(step)
        kern, _ = kernels(step)
    finally:
        IntraSIM.cpu_training_path = path
    model.zero_grad(set_to_none=True)
    res["bf16_train_step"] = {"ops": sum(ops.values()), "kernels": sum(kern.values())}
    model.eval()
    return res


# ---------------------------------------------------------------------------------- traffic
def sim_traffic(arch: str, model_kwargs: dict, frames: int, size: int, bf16: bool) -> list[dict[str, Any]]:
    """Bytes moved by each SIM's forward (and each block's own layers), in units of its input F."""
    import timm

    from dynsnip import InterSIM, IntraSIM

    model = timm.create_model(arch, num_classes=2, **model_kwargs).eval().to(memory_format=torch.channels_last)
    clip = torch.randn(1, 3, frames, size, size).contiguous(memory_format=torch.channels_last_3d)
    inputs: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(module, args, kwargs) -> None:
            inputs.setdefault(name, args[0].detach())
        return hook
    hooks = [m.register_forward_pre_hook(keep(n), with_kwargs=True)
             for n, m in model.named_modules() if isinstance(m, (IntraSIM, InterSIM))]
    with torch.no_grad():
        model(clip)
    for h in hooks:
        h.remove()
    rows = []
    u = frames // model.snippet_len
    for name, x in inputs.items():
        sim = model.get_submodule(name)
        x2 = torch.cat([x, x]).contiguous(memory_format=torch.channels_last)  # two clips
        f_bytes = x.numel() * (2 if bf16 else 4)

        def moved(inp: torch.Tensor) -> tuple[int, int]:
            def fwd() -> None:
                with torch.no_grad(), _autocast(bf16):
                    sim(inp.to(torch.bfloat16) if bf16 else inp, num_snippets=u)
            fwd()
            kern, nbytes = kernels(fwd)
            return sum(kern.values()), nbytes

        (k1, b1), (_, b2) = moved(x), moved(x2)
        block = model.get_submodule(name.rsplit(".", 1)[0])
        rows.append({"sim": name, "kind": type(sim).__name__, "shape": list(x.shape), "kernels": k1,
                     "traffic_F": (b2 - b1) / f_bytes, "block_traffic_F": _block_traffic(block, x, f_bytes, bf16)})
    return rows


def _block_traffic(block: nn.Module, x_sim: torch.Tensor, f_bytes: int, bf16: bool) -> float:
    """A Bottleneck's own layers (no SIM), on an input that gives the SIM input's shape."""
    from timm.models.resnet import Bottleneck

    if not isinstance(block, Bottleneck) or block.downsample is not None:
        return float("nan")
    n, _, h, w = x_sim.shape

    def moved(frames: int) -> int:
        x = torch.randn(frames, block.conv1.in_channels, h, w).contiguous(memory_format=torch.channels_last)

        def fwd() -> None:
            with torch.no_grad(), _autocast(bf16):
                Bottleneck.forward(block, x.to(torch.bfloat16) if bf16 else x)
        fwd()
        return kernels(fwd)[1]
    return (moved(2 * n) - moved(n)) / f_bytes


# ------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=16, help="U*T frames per clip (default 16)")
    p.add_argument("--size", type=int, default=112, help="frame size for the op counts (default 112; counts do not depend on it until a stage's maps shrink to 1 x 1: 2 more calls at 32 px)")
    p.add_argument("--traffic-size", type=int, default=224, help="frame size for the traffic figures (default 224)")
    p.add_argument("--arch", default="dil_resnet50", help="the DIL model (default dil_resnet50)")
    p.add_argument("--baseline", default="resnet50", help="its 2D backbone on the same frames (default resnet50)")
    p.add_argument("--no-traffic", dest="traffic", action="store_false", help="skip the per-SIM traffic")
    p.add_argument("--json", default=None, help="write every figure here")
    p.add_argument("--label", default="", help="a label stored with the figures (e.g. 'before')")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1; with 1 thread PyTorch's CPU backend runs small 1x1 convs "
                        "without oneDNN and returns them in NCHW order, which no GPU backend does)")
    p.add_argument("--quick", action="store_true", help="dil_resnet18 / resnet18, 8 frames of 32 px")
    p.add_argument("--no-train-step", dest="train_step", action="store_false",
                   help="skip the bf16 forward + backward counts (inference only)")
    p.add_argument("--triton-tail", action="store_true",
                   help="also count the DIL models with the Intra-SIMs' fused Triton tail (the GPU's inference "
                        "path), its launch as one op; needs TRITON_INTERPRET=1 (Triton's interpreter runs it here)")
    args = p.parse_args(argv)
    if args.quick:
        args.arch, args.baseline, args.frames, args.size, args.traffic_size = "dil_resnet18", "resnet18", 8, 32, 32
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.triton_tail:
        from dynsnip.modules import gate_tap

        if not gate_tap._interpreting():
            raise SystemExit("--triton-tail counts the fused tail through Triton's interpreter: run with "
                             "TRITON_INTERPRET=1 set (before Python starts)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    import dynsnip

    paper = dynsnip.paper_config("paper")
    models = {
        f"{args.arch} (defaults)": build_model(args.arch, args.frames, 2),
        f"{args.arch} (paper's module)": build_model("paper", args.frames, 2, {"paper": (args.arch, paper)}),
        args.baseline: build_model(args.baseline, args.frames, 2),
        f"tsm_{args.baseline}": build_model(f"tsm_{args.baseline}", args.frames, 2),
    }
    clip = torch.randn(1, 3, args.frames, args.size, args.size)
    report: dict[str, Any] = {"label": args.label, "torch": torch.__version__, "frames": args.frames,
                              "size": args.size, "models": {}}
    from dynsnip import IntraSIM

    IntraSIM.triton_tail = False  # the plain PyTorch path (under TRITON_INTERPRET=1 the CPU could fuse)
    undo_depthwise = plain_depthwise()  # and the depthwise convs as the conv ops a GPU dispatches as one launch each
    try:
        for name, model in models.items():
            print(f"counting {name}", file=sys.stderr, flush=True)
            report["models"][name] = count_model(model, clip, train_step=args.train_step)
        if args.triton_tail:  # the same models with the fused tail: the interpreter stands in for the GPU
            IntraSIM.triton_tail = True
            undo = count_fused_tail()
            try:
                for name in (f"{args.arch} (defaults)", f"{args.arch} (paper's module)"):
                    print(f"counting {name}, fused tail", file=sys.stderr, flush=True)
                    report["models"][f"{name}, fused tail"] = count_model(models[name], clip, train_step=False)
            finally:
                undo()
                IntraSIM.triton_tail = False
        base = report["models"][args.baseline]
        lines = [f"aten ops per forward, clip 1x3x{args.frames}x{args.size}x{args.size} (x = ratio to {args.baseline})", "",
                 "| model | fp32 ops | x | fp32 kernels | x | bf16 ops | x | bf16 kernels | x | bf16 fwd+bwd ops | x | bf16 fwd+bwd kernels | x |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, res in report["models"].items():
            cells = []
            for mode in ("fp32_inference", "bf16_inference", "bf16_train_step"):
                for what in ("ops", "kernels"):
                    if mode not in res:  # the fused tail: inference only
                        cells += ["-", "-"]
                        continue
                    cells += [str(res[mode][what]), f"{res[mode][what] / base[mode][what]:.2f}"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        if args.traffic:
            report["traffic"] = {}
            for label, kw in (("defaults", {}), ("paper", paper)):
                for bf16 in (False, True):
                    key = f"{label}_{'bf16' if bf16 else 'fp32'}"
                    print(f"traffic {key}", file=sys.stderr, flush=True)
                    report["traffic"][key] = sim_traffic(args.arch, kw, args.frames, args.traffic_size, bf16)
            lines += ["", f"SIM memory traffic per forward in units of F (the SIM's input), channels_last, "
                      f"{args.frames}x{args.traffic_size}px; mean over the SIMs of {args.arch}", "",
                      "| module | intra-SIM F | inter-SIM F | Bottleneck's own layers F | kernels intra | kernels inter |",
                      "|---|---:|---:|---:|---:|---:|"]
            for key, rows in report["traffic"].items():
                intra = [r for r in rows if r["kind"] == "IntraSIM"]
                inter = [r for r in rows if r["kind"] == "InterSIM"]
                blocks = [r["block_traffic_F"] for r in rows if r["block_traffic_F"] == r["block_traffic_F"]]
                mean = lambda v: sum(v) / max(1, len(v))  # noqa: E731
                lines.append(f"| {key} | {mean([r['traffic_F'] for r in intra]):.1f} | {mean([r['traffic_F'] for r in inter]):.1f} "
                             f"| {mean(blocks):.1f} | {mean([r['kernels'] for r in intra]):.0f} | {mean([r['kernels'] for r in inter]):.0f} |")
    finally:
        undo_depthwise()
    table = "\n".join(lines)
    report["table"] = table
    print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
