"""Does a detector see local temporal inconsistency? Photometric flicker and sub-pixel geometric jitter.

Two tasks made from real face footage bundled with dynsnip, built so that **no single frame
and no bag-of-frames statistic separates real from fake**; only the order of the frames does:

* every clip is a window of consecutive face crops whose face region (a feathered ellipse,
  like a face swap's blending mask) is re-rendered frame by frame with per-frame parameters;
* **real**: the parameters follow a smooth path, ``A * sin(2*pi*t/P + phi)`` per parameter
  (random phase ``phi``, period ``P`` of 24-72 frames);
* **fake**: the *same* values, in a random order (a permutation of the window's frames).
  Per frame the parameter has the same law in both classes (a sine at a uniform phase;
  permuting frames keeps it), and a clip's multiset of parameters is the same; only
  neighbouring frames differ, as in frame-by-frame face manipulation.

Tasks (``--tasks``):

* ``flicker``: brightness gain ``1 + 0.3 p0`` and red/blue balance ``+-0.12 p1`` of the face
  region (the demo's re-rendering);
* ``geometric``: the face region is warped by a small similarity transform, shifts
  ``dx, dy`` of amplitude ``--shift`` px (default 3 px at 64 px crops: shuffled neighbours
  jump by about 1.3 px on average, the smooth path moves by at most 0.8 px per frame), a
  scale of +-2 % and a rotation of +-1.5 degrees, against the background that stays put;
* ``--still``: every clip re-renders one still frame of the footage, so that the manipulation
  is the only change over time (the footage's own motion, head and camera, is the noise the
  detectors must see the jitter through otherwise);
* ``--fake independent`` instead draws every fake frame's phase independently (the demo's
  original construction; per-frame law unchanged, bag-of-frames statistics then differ).

Models (``--variants``, names of :data:`VARIANTS`, or ``--variant LABEL JSON`` for
``dil_resnet18`` built with the builder arguments ``JSON``):

* ``frame``: the ResNet-18 without SIMs (per-frame logits averaged): must be at chance;
* ``diff_ref``: the issue's temporal-difference reference: ResNet-18 whose blocks in stages
  1-2 add ``x_t - x_{t-1}`` to a quarter of the channels and ``x_{t+1} - x_t`` to another
  quarter, inside each snippet (zero at the snippet's border);
* ``diff_replace``: the same with the differences *in place of* those channels (TSM/TDN-style
  difference channels): the plain reference that learns the geometric task;
* ``dil`` (dynsnip's defaults), ``paper`` (the paper's module) and the diagnosis variants:
  see :data:`VARIANTS`.

Each (task, variant, seed) trains from scratch with Adam (``--lr`` 1e-3), BCE, batch
``--batch`` clips of U=2 snippets x T=4 frames for ``--steps`` steps on the training footage,
and is tested on clips of U=4 snippets from footage of other people (``--test-draws``
renderings per window and label). The report has the test AUC and accuracy, the mean
training loss over the first and last ``--steps // 5`` steps, and the seconds taken.

Footage: decoded and face-cropped once with PyAV and dlib (the ``video`` extra) and cached
in ``--footage`` (``.npz``); with the cache present, neither is needed (the GPU machine).

Usage::

    python benchmarks/temporal_sensitivity.py --tasks geometric,flicker --variants frame,diff_ref,dil \\
        --seeds 0,1,2 --steps 200 --device cuda --workers 8 --out results.json
    python benchmarks/temporal_sensitivity.py --quick           # smoke test, seconds
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

T = 4  # frames per snippet
TRAIN_U, TEST_U = 2, 4

# (file under dynsnip/assets, face: None = the largest, k = k-th from the left); people differ
TRAIN_FOOTAGE = (("videos/carphone_pristine.mp4", None), ("videos/Zhling_1280x720.mp4", None))
TEST_FOOTAGE = (
    ("demo/foreman_cif_BA1_FT_C.mp4", None),
    ("videos/two_people_320x192_test_vd_rc.mp4", 0),
    ("videos/two_people_320x192_test_vd_rc.mp4", 1),
)

_NO_ZIL = {"zero_init_last": False}
_ALL_INTRA = {"sim_pattern": "intra"}
# the paper's module as written (dynsnip's default has motion channels and identity-initialised Eq. 1 convs)
_PAPER = {"motion_fraction": 0.0, "diff_init": "random"}


def _paper(**intra: Any) -> dict[str, Any]:
    return {**_PAPER, **intra}


def _motion(fraction: float, source: str, **intra: Any) -> dict[str, Any]:
    return {"motion_fraction": fraction, "motion_source": source, "diff_init": "identity", **intra}


# name -> dil_resnet18 builder arguments (None: a special model, see build_model). Every name
# spells out what it measures, so that it means the same whatever dynsnip's defaults are.
VARIANTS: dict[str, dict[str, Any] | None] = {
    "frame": None,
    "diff_ref": None,  # the reference: differences *added* to a quarter of the channels each
    "diff_replace": None,  # differences *in place of* a quarter of the channels each (TSM/TDN-style)
    "dil": {},  # dynsnip's defaults
    # the paper's module and its diagnosis, one change at a time
    "paper": {"intra_args": _paper()},
    "paper_shared": {"intra_args": _paper(share_directions=True)},
    "paper_nozil": {**_NO_ZIL, "intra_args": _paper()},
    "paper_nozil_nolk": {**_NO_ZIL, "intra_args": _paper(learnable_kernel=False)},
    "paper_nozil_r4": {**_NO_ZIL, "intra_args": _paper(reduction=4)},
    "paper_nozil_intra_r2": {**_NO_ZIL, **_ALL_INTRA, "intra_args": _paper(reduction=2)},
    "paper_nozil_kid": {**_NO_ZIL, "intra_args": _paper(kernel_init="centre")},
    "paper_nozil_r4_kid": {**_NO_ZIL, "intra_args": _paper(reduction=4, kernel_init="centre")},
    "paper_nozil_ms": {**_NO_ZIL, "intra_args": _paper(motion_shortcut=True)},
    "paper_nozil_r4_kid_ms": {**_NO_ZIL, "intra_args": _paper(reduction=4, kernel_init="centre", motion_shortcut=True)},
    "paper_did": {"intra_args": _paper(diff_init="identity")},
    "paper_zero_recover": {"intra_args": _paper(), "recover_init": "zero"},
    "paper_did_r1": {"intra_args": _paper(diff_init="identity", reduction=1)},
    # motion channels (the deviation), by source and share of O_2
    "own25": {"intra_args": _motion(0.25, "own")},
    "own50": {"intra_args": _motion(0.5, "own")},
    "compressed25": {"intra_args": _motion(0.25, "compressed")},
    "compressed50": {"intra_args": _motion(0.5, "compressed")},
    "compressed50_r4": {"intra_args": _motion(0.5, "compressed", reduction=4)},
    "compressed50_r1": {"intra_args": _motion(0.5, "compressed", reduction=1)},
    "compressed50_r1_intra12": {"sim_stages": [1, 2], **_ALL_INTRA, "intra_args": _motion(0.5, "compressed", reduction=1)},
    "nozil_compressed25_rnd": {**_NO_ZIL, "intra_args": _motion(0.25, "compressed", diff_init="random")},
    "separate50": {"intra_args": _motion(0.5, "separate")},
    "separate50_nozil": {**_NO_ZIL, "intra_args": _motion(0.5, "separate")},
    "separate75": {"intra_args": _motion(0.75, "separate")},
    "separate75_rnd": {"intra_args": _motion(0.75, "separate", diff_init="random")},
}


# ------------------------------------------------------------------------------ footage
def load_footage(path: Path, size: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    """``{"train": [(name, crops uint8 (F, S, S, 3)), ...], "test": [...]}``, cached in ``path``."""
    if path.is_file():
        data = np.load(path, allow_pickle=False)
        out: dict[str, list[tuple[str, np.ndarray]]] = {"train": [], "test": []}
        for key in data.files:
            split, name = key.split("/", 1)
            out[split].append((name, data[key]))
        if out["train"] and out["train"][0][1].shape[1] == size:
            return out
        raise SystemExit(f"{path} holds {out['train'][0][1].shape[1]} px crops, not {size}: remove it or pass --size")
    from dynsnip.demo.synthetic import face_footage

    assets = Path(__file__).resolve().parent.parent / "dynsnip" / "assets"
    arrays = {}
    for split, footage in (("train", TRAIN_FOOTAGE), ("test", TEST_FOOTAGE)):
        for file, face in footage:
            f = face_footage(assets / file, size=size, face=face, max_frames=160)
            arrays[f"{split}/{f.name}"] = f.crops
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return load_footage(path, size)


# ------------------------------------------------------------------------------ rendering
def face_region(size: int, feather: float = 0.12) -> torch.Tensor:
    """Feathered ellipse ``(1, 1, S, S)`` in [0, 1] over the face of a 1.3-margin crop."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    yy = (yy + 0.5) / size - 0.54
    xx = (xx + 0.5) / size - 0.5
    r = torch.sqrt((xx / 0.33) ** 2 + (yy / 0.40) ** 2)
    return ((0.5 + (1.0 - r) * 0.36 / feather).clamp(0, 1))[None, None].float()


def parameter_paths(n: int, k: int, fake: str | None, rng: np.random.Generator) -> np.ndarray:
    """``(n, k)`` values in [-1, 1]: smooth sines (real), permuted (``fake="shuffle"``) or with
    an independent phase per frame (``fake="independent"``)."""
    t = np.arange(n)[:, None]
    if fake == "independent":
        return np.sin(rng.uniform(0, 2 * math.pi, size=(n, k)))
    period = rng.uniform(24.0, 72.0, size=k)
    p = np.sin(2 * math.pi * t / period + rng.uniform(0, 2 * math.pi, size=k))
    return p[rng.permutation(n)] if fake == "shuffle" else p


def render(task: str, crops: torch.Tensor, params: np.ndarray, shift: float) -> torch.Tensor:
    """Re-render the face region of ``crops`` (F, 3, S, S) float in [0, 1] with ``params`` (F, k)."""
    s = crops.shape[-1]
    mask = face_region(s)
    p = torch.as_tensor(params, dtype=torch.float32)
    if task == "flicker":
        gain = 1.0 + 0.3 * p[:, 0]
        tint = 0.12 * p[:, 1]
        gains = torch.stack([gain * (1 + tint), gain, gain * (1 - tint)], 1)[:, :, None, None]
        changed = (crops * gains).clamp(0, 1)
    elif task == "geometric":
        # similarity transform of the crop around its centre, in normalised coordinates
        scale = 1.0 + 0.02 * p[:, 2]
        angle = math.radians(1.5) * p[:, 3]
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        tx, ty = -2 * shift * p[:, 0] / s, -2 * shift * p[:, 1] / s  # pixels -> [-1, 1] units
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(crops.shape), align_corners=False)
        changed = F.grid_sample(crops, grid, mode="bilinear", padding_mode="border", align_corners=False)
    else:
        raise ValueError(f"unknown task {task!r}")
    out = crops + mask * (changed - crops)
    return (out * 255).round().clamp(0, 255) / 255  # stored as 8-bit video would be


NUM_PARAMS = {"flicker": 2, "geometric": 4}


def snippet_indices(n: int, u: int, train: bool, rng: np.random.Generator) -> np.ndarray:
    """Frame indices of U snippets of T consecutive frames in a window of n frames (U*T)."""
    seg = n / u
    starts = []
    for i in range(u):
        lo, hi = int(round(i * seg)), max(int(round(i * seg)), int(round((i + 1) * seg)) - T)
        starts.append(rng.integers(lo, hi + 1) if train else (lo + hi) // 2)
    return (np.asarray(starts)[:, None] + np.arange(T)[None]).clip(0, n - 1).reshape(-1)


def make_clip(task: str, crops: np.ndarray, start: int, window: int, label: int, u: int, train: bool,
              fake_mode: str, shift: float, rng: np.random.Generator, still: bool = False) -> torch.Tensor:
    n = min(window, len(crops))
    params = parameter_paths(n, NUM_PARAMS[task], fake_mode if label else None, rng)
    idx = snippet_indices(n, u, train, rng)
    source = crops[start + (np.zeros_like(idx) if still else idx)]  # still: one frame, the only change is ours
    frames = torch.from_numpy(source).permute(0, 3, 1, 2).float() / 255
    x = render(task, frames, params[idx], shift)
    if train and rng.random() < 0.5:
        x = x.flip(-1)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    return ((x - mean) / std).transpose(0, 1)  # (3, U*T, S, S)


def test_set(task: str, footage, window: int, draws: int, fake_mode: str, shift: float, seed: int, still: bool):
    xs, ys = [], []
    for f, (_, crops) in enumerate(footage):
        n = min(window, len(crops))
        for start in range(0, len(crops) - n + 1, max(1, n // 2)):
            for d in range(draws):
                for label in (0, 1):
                    rng = np.random.default_rng([seed, f, start, d, label])
                    xs.append(make_clip(task, crops, start, window, label, TEST_U, False, fake_mode, shift, rng, still))
                    ys.append(label)
    return torch.stack(xs), torch.tensor(ys, dtype=torch.float32)


# ------------------------------------------------------------------------------ models
class DifferenceReference(nn.Module):
    """Adds ``x_t - x_{t-1}`` to the first quarter of the channels and ``x_{t+1} - x_t`` to the
    second, inside each snippet of T frames (zero where the neighbour is in another snippet).
    Frames folded as ``(N*U*T, C, H, W)``; the rest of the channels pass unchanged."""

    def __init__(self, channels: int, snippet_len: int = T, replace: bool = False) -> None:
        super().__init__()
        self.q, self.t, self.replace = channels // 4, snippet_len, replace

    def forward(self, x: torch.Tensor, num_snippets: int | None = None) -> torch.Tensor:
        v = x.unflatten(0, (-1, self.t))  # "(b t) c h w -> b t c h w"
        q = self.q
        back = F.pad(v[:, 1:, :q] - v[:, :-1, :q], (0, 0, 0, 0, 0, 0, 1, 0))  # x_t - x_{t-1}
        fwd = F.pad(v[:, 1:, q:2 * q] - v[:, :-1, q:2 * q], (0, 0, 0, 0, 0, 0, 0, 1))  # x_{t+1} - x_t
        if self.replace:  # the quarters hold the differences alone (TSM/TDN-style channels)
            return torch.cat([back, fwd, v[:, :, 2 * q:]], 2).flatten(0, 1)
        return torch.cat([v[:, :, :q] + back, v[:, :, q:2 * q] + fwd, v[:, :, 2 * q:]], 2).flatten(0, 1)


def build_model(variant: str, spec: dict[str, Any] | None, width: dict[str, Any]) -> nn.Module:
    import timm

    import dynsnip  # noqa: F401  (registers dil_*)
    from dynsnip.modules import IntraSMA

    if variant == "frame":
        return timm.create_model("dil_resnet18", num_classes=1, sim_stages=(), **width)
    if variant in ("diff_ref", "diff_replace"):
        m = timm.create_model("dil_resnet18", num_classes=1, sim_stages=(1, 2), sim_pattern="intra", **width)
        for stage in (m.layer1, m.layer2):
            for block in stage:
                block.sim = DifferenceReference(block.sim.channels, replace=variant == "diff_replace")
        return m
    spec = dict(spec or {})
    recover_init = spec.pop("recover_init", None)  # a diagnosis of this script, not a model option
    model = timm.create_model("dil_resnet18", num_classes=1, **{**width, **spec})
    if recover_init == "zero":  # Intra-SMA's 1x1 recovery convs start at zero: a flat attention, sigma(0)^2
        for m in model.modules():
            if isinstance(m, IntraSMA):
                for conv in (getattr(m, "recover_h", None), getattr(m, "recover_w", None), getattr(m, "recover", None)):
                    if conv is not None:
                        nn.init.zeros_(conv.weight)
                        nn.init.zeros_(conv.bias)
    elif recover_init is not None:
        raise SystemExit(f"unknown recover_init {recover_init!r} (known: zero)")
    return model


def auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    from dynsnip.engine.metrics import roc_auc

    return float(roc_auc(scores, labels))


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Train one (task, variant, seed) and test it."""
    torch.set_num_threads(job["threads"])
    device = torch.device(job["device"])
    footage = load_footage(Path(job["footage"]), job["size"])
    seed = job["seed"]
    torch.manual_seed(seed)
    width = {} if job["width"] == 1.0 else dict(
        channels=tuple(int(c * job["width"]) for c in (64, 128, 256, 512)), stem_width=int(64 * job["width"]))
    model = build_model(job["variant"], job["spec"], width).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=job["lr"])
    rng = np.random.default_rng([seed, 12345])
    window = job["window"]
    train_footage = [c for _, c in footage["train"]]
    weights = np.array([max(1, len(c) - window + 1) for c in train_footage], dtype=float)
    losses = []
    t0 = time.perf_counter()
    model.train()
    for _ in range(job["steps"]):
        xs, ys = [], []
        for _ in range(job["batch"]):
            f = rng.choice(len(train_footage), p=weights / weights.sum())
            crops = train_footage[f]
            start = int(rng.integers(0, max(1, len(crops) - window + 1)))
            label = int(rng.integers(0, 2))
            xs.append(make_clip(job["task"], crops, start, window, label, TRAIN_U, True, job["fake"], job["shift"], rng,
                                job["still"]))
            ys.append(label)
        x = torch.stack(xs).to(device)
        y = torch.tensor(ys, dtype=torch.float32, device=device)
        loss = F.binary_cross_entropy_with_logits(model(x)[:, 0], y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    train_s = time.perf_counter() - t0
    xt, yt = test_set(job["task"], footage["test"], window, job["test_draws"], job["fake"], job["shift"],
                      seed=10**6 + seed, still=job["still"])
    model.eval()
    with torch.no_grad():
        scores = torch.cat([torch.sigmoid(model(xt[i:i + 32].to(device))[:, 0]).cpu() for i in range(0, len(xt), 32)])
    k = max(1, job["steps"] // 5)
    return dict(
        task=job["task"] + (" (still)" if job["still"] else ""), variant=job["variant"], seed=seed, spec=job["spec"],
        auc=auc(scores, yt),
        accuracy=float(((scores > 0.5).float() == yt).float().mean()), test_clips=len(yt),
        loss_first=float(np.mean(losses[:k])), loss_last=float(np.mean(losses[-k:])),
        train_seconds=train_s, steps=job["steps"], params=sum(p.numel() for p in model.parameters()),
    )


# ------------------------------------------------------------------------------ driver
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="geometric,flicker", help="comma-separated: geometric, flicker")
    p.add_argument("--variants", default="frame,diff_ref,dil", help=f"comma-separated, of: {', '.join(VARIANTS)}")
    p.add_argument("--variant", nargs=2, action="append", default=[], metavar=("LABEL", "JSON"),
                   help="add a dil_resnet18 variant built with the builder arguments JSON (repeatable)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--size", type=int, default=64, help="face crop side in pixels (default 64)")
    p.add_argument("--width", type=float, default=1.0, help="ResNet-18 width factor (0.5: the demo's half width)")
    p.add_argument("--window", type=int, default=16, help="frames a clip is cut from (default 16)")
    p.add_argument("--shift", type=float, default=3.0, help="amplitude of the geometric shifts in px (default 3)")
    p.add_argument("--fake", choices=("shuffle", "independent"), default="shuffle")
    p.add_argument("--still", action="store_true",
                   help="every clip re-renders one still frame: the manipulation is the only temporal change")
    p.add_argument("--test-draws", type=int, default=4, help="renderings per test window and label (default 4)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=1, help="jobs run in parallel processes (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per job (default 1)")
    p.add_argument("--footage", default=None, help="footage cache .npz (default <tmp>/dynsnip_footage_<size>.npz)")
    p.add_argument("--out", default=None, help="write the results here (JSON; rewritten after every job)")
    p.add_argument("--quick", action="store_true", help="smoke test: 3 steps, one seed, 1 test draw")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.seeds, args.test_draws = 3, "0", 1
    args.footage = args.footage or str(Path(tempfile.gettempdir()) / f"dynsnip_footage_{args.size}.npz")
    return args


def summarise(results: list[dict[str, Any]]) -> str:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["task"], r["variant"]), []).append(r)
    lines = ["| task | variant | AUC per seed | mean AUC | loss first -> last 20% | train s |", "|---|---|---|---:|---|---:|"]
    for (task, variant), rs in sorted(groups.items()):
        rs.sort(key=lambda r: r["seed"])
        aucs = [r["auc"] for r in rs]
        lines.append(
            f"| {task} | {variant} | {', '.join(f'{a:.3f}' for a in aucs)} | {np.mean(aucs):.3f} | "
            f"{np.mean([r['loss_first'] for r in rs]):.3f} -> {np.mean([r['loss_last'] for r in rs]):.3f} | "
            f"{np.mean([r['train_seconds'] for r in rs]):.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    specs = {}
    for name in (v.strip() for v in args.variants.split(",") if v.strip()):
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}; known: {', '.join(VARIANTS)} (or --variant LABEL JSON)")
        specs[name] = VARIANTS[name]
    for label, spec in args.variant:
        specs[label] = json.loads(spec)
    load_footage(Path(args.footage), args.size)  # extract once, before the workers start
    jobs = [
        dict(task=task, variant=name, spec=spec, seed=int(seed), steps=args.steps, batch=args.batch, lr=args.lr,
             size=args.size, width=args.width, window=args.window, shift=args.shift, fake=args.fake,
             test_draws=args.test_draws, still=args.still, device=args.device, threads=args.threads, footage=args.footage)
        for task in args.tasks.split(",") for seed in args.seeds.split(",") for name, spec in specs.items()
    ]
    results: list[dict[str, Any]] = []
    t0 = time.perf_counter()

    def done(r: dict[str, Any]) -> None:
        results.append(r)
        print(f"[{time.perf_counter() - t0:.0f}s] {r['task']} {r['variant']} seed {r['seed']}: AUC {r['auc']:.3f} "
              f"(loss {r['loss_first']:.3f} -> {r['loss_last']:.3f}, {r['train_seconds']:.0f}s)", file=sys.stderr, flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(dict(args=vars(args), results=results), indent=1))

    if args.workers <= 1:
        for job in jobs:
            done(run_job(job))
    else:
        import torch.multiprocessing as mp

        with mp.get_context("spawn").Pool(args.workers) as pool:
            for r in pool.imap_unordered(run_job, jobs):
                done(r)
    print(summarise(results))
    return results


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
