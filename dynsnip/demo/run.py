"""``dynsnip demo``: DIL against a frame-level detector on real/fake clips the package makes itself.

What it does (a few minutes on 2 CPU cores):

1. **Data** (:mod:`dynsnip.demo.synthetic`): real face footage shipped with the package is
   decoded once, faces are found with dlib and cropped. "Real" clips re-render the face
   region with a brightness / colour change that drifts smoothly over time, "fake" clips draw
   the same change independently for every frame. Every single frame has the same
   distribution in both classes; only the local temporal inconsistency differs.
   Training footage and test footage are **different videos of different people**
   (:data:`TRAIN_FOOTAGE`, :data:`TEST_FOOTAGE`).
2. **Two detectors, same budget**: a small DIL model (a half-width ``dil_resnet18``: Intra-SIM
   / Inter-SIM in every block) and the same backbone **without SIMs** (``sim_stages=()``: the
   frame-level detector, whose video logit is the mean of per-frame logits). Same random
   init of the shared weights, same data order, same epochs, same optimiser
   (:func:`demo_recipe`).
3. **Test** on the held-out footage: AUC, accuracy and time, side by side.
4. **Saves** the DIL detector in the hub layout to ``--out`` (``dynsnip predict --model OUT``
   loads it), the frame-level one to ``OUT/frame_level``, a report, and two test videos
   (one real, one fake) under ``OUT/samples`` to try ``dynsnip predict`` on.

Expected outcome: the frame-level model sits at chance (AUC about 0.5) because no single frame
carries the label; DIL separates the classes clearly.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..engine.evaluate import evaluate
from ..engine.recipe import Recipe
from ..engine.train import save_model, train
from .synthetic import FaceFootage, FaceRerender, FlickerClips, face_footage

__all__ = ["DemoConfig", "DemoResult", "run_demo", "demo_recipe", "TRAIN_FOOTAGE", "TEST_FOOTAGE", "MARKER"]

# (file in the package, face to follow: None = the largest, k = k-th from the left)
TRAIN_FOOTAGE: tuple[tuple[str, int | None], ...] = (
    ("videos/carphone_pristine.mp4", None),  # a man talking in a car, 120 frames, 176x144
    ("demo/foreman_cif_BA1_FT_C.mp4", None),  # a man in a hard hat, ~150 frames with his face, 352x288
)
TEST_FOOTAGE: tuple[tuple[str, int | None], ...] = (
    ("videos/Zhling_1280x720.mp4", None),  # a woman at a desk, 19 frames, 1280x720
    ("videos/two_people_320x192_test_vd_rc.mp4", 0),  # two people side by side, 9 frames: the left one
    ("videos/two_people_320x192_test_vd_rc.mp4", 1),  # ... and the right one
)
MARKER = "dynsnip_demo.json"  # written into the output folder; only such folders are overwritten


def assets_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "assets"


@dataclass
class DemoConfig:
    """Settings of the demo; the defaults finish in a few minutes on 2 CPU cores.

    Attributes:
        out: output folder (created; an existing folder is replaced only if an earlier demo
            wrote it).
        size: face crop side in pixels (32: the flicker is a face-wide change, visible at
            any resolution; small crops keep CPU training fast).
        channels, stem_width: widths of the ResNet-18 stages (half of the standard
            64-128-256-512): "a small DIL model" that trains on CPUs in minutes.
        num_snippets, test_num_snippets, snippet_len: U for training / testing and T.
        window: consecutive frames a training clip is cut from (U*T*2: room for the
            random snippet offsets of training).
        epochs, batch_size, lr: the budget shared by both detectors. lr 1e-3 instead of the
            paper's 1e-4: the paper fine-tunes an ImageNet ResNet-50, the demo trains from
            random init (no weights can be downloaded offline).
        test_draws: re-renderings per test window and label (the test set's size).
        seed: everything random (init, data order, re-rendering) follows from it.
        threads: torch CPU threads (default 1; None: torch's default, one per core). At this
            size the DIL network is hundreds of small operations per step, and OpenMP's
            spin-waiting between them made 2 threads 10x *slower* than 1 on a 2-core machine
            (0.25 s vs 2.5 s per step); the frame-level network gains little from 2 threads.
        samples: write the two sample videos for ``dynsnip predict``.
        max_frames: frames decoded from the start of each video (foreman's face is in its
            first 150; the other clips are shorter).
        progress: progress bars.
    """

    out: Path = Path("dynsnip-demo")
    size: int = 32
    channels: tuple[int, int, int, int] = (32, 64, 128, 256)
    stem_width: int = 32
    num_snippets: int = 2
    test_num_snippets: int = 4
    snippet_len: int = 4
    window: int = 16
    train_stride: int = 1
    epochs: int = 12
    batch_size: int = 8
    lr: float = 1e-3
    test_draws: int = 24
    seed: int = 0
    threads: int | None = 1
    samples: bool = True
    max_frames: int = 160
    progress: bool = True


@dataclass
class DemoResult:
    """Test metrics and timings of both detectors, and where things were written."""

    rows: list[dict[str, Any]]
    out: Path
    seconds: float
    data: dict[str, Any] = field(default_factory=dict)
    samples: list[Path] = field(default_factory=list)

    def table(self) -> str:
        return format_table(self.rows)


def demo_recipe(config: DemoConfig) -> Recipe:
    """The recipe both detectors get: the paper's optimiser, loss and augmentation with the
    demo's budget. The learning rate is not divided on a plateau (a fixed budget of
    ``epochs``; the training loss of a from-scratch model sits flat before it drops, and a
    division there would only slow it down)."""
    return Recipe(
        model="dil_resnet18",
        pretrained=False,
        epochs=config.epochs,
        batch_size=config.batch_size,
        lr=config.lr,
        plateau_patience=10**6,
        num_snippets=config.num_snippets,
        test_num_snippets=config.test_num_snippets,
        snippet_len=config.snippet_len,
        img_size=config.size,
        amp=False,
        num_workers=0,
        seed=config.seed,
    )


def format_table(rows: list[dict[str, Any]]) -> str:
    """The side-by-side table: test AUC / accuracy, mean fake probability of the real and of
    the fake test clips, training and test time, parameters."""
    head = (f"{'detector':<32} {'AUC':>6} {'ACC':>6} {'p(fake) real':>12} {'p(fake) fake':>12} "
            f"{'train s':>8} {'test s':>7} {'params':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['name']:<32} {r['auc']:>6.3f} {r['accuracy']:>6.3f} {r['mean_score_real']:>12.3f} "
            f"{r['mean_score_fake']:>12.3f} {r['train_seconds']:>8.0f} {r['test_seconds']:>7.1f} {r['params'] / 1e6:>6.2f}M"
        )
    return "\n".join(lines)


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(
            f"{out} exists and was not written by `dynsnip demo` (no {MARKER} in it); refusing to overwrite it. "
            "Choose another --out or remove the folder."
        )


def load_footage(config: DemoConfig, log: Callable[[str], None] = print) -> tuple[list[FaceFootage], list[FaceFootage]]:
    """Decode and face-crop the training and test footage (see :data:`TRAIN_FOOTAGE`)."""
    root = assets_dir()
    out = []
    for group in (TRAIN_FOOTAGE, TEST_FOOTAGE):
        items = []
        for rel, face in group:
            path = root / rel
            if not path.is_file():
                raise FileNotFoundError(f"bundled footage {path} is missing; reinstall dynsnip (it ships with the package)")
            items.append(face_footage(path, config.size, face=face, max_frames=config.max_frames))
        out.append(items)
    return out[0], out[1]


def _write_video(frames, path: Path, fps: float) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=round(fps) or 25)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_samples(footage: FaceFootage, out_dir: Path, rerender: FaceRerender, seed: int, max_side: int = 640) -> list[Path]:
    """One real and one fake re-rendering of ``footage`` as MP4 videos (whole frames,
    downscaled to ``max_side``), for ``dynsnip predict``."""
    import numpy as np
    from PIL import Image

    from ..data import VideoReader

    with VideoReader(footage.source) as video:
        frames = video.read([int(i) for i in footage.frame_indices])
        fps = video.fps
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    rng = np.random.default_rng([seed, 7])
    height, width = frames.shape[1:3]
    scale = min(1.0, max_side / max(height, width))
    new_size = (int(round(width * scale / 2)) * 2, int(round(height * scale / 2)) * 2)
    for label in ("real", "fake"):
        params = rerender.paths(len(frames), label == "fake", rng)
        rendered = rerender.apply_to_frames(frames, params, footage.crop_boxes)
        if scale < 1.0 or new_size != (width, height):
            rendered = np.stack([np.asarray(Image.fromarray(f).resize(new_size, Image.BILINEAR)) for f in rendered])
        path = out_dir / f"{label}_{footage.name.replace('#', '_')}.mp4"
        _write_video(rendered, path, fps)
        written.append(path)
    return written


DEMO_DATA_NAME = "dynsnip demo: bundled face footage, smooth (real) vs per-frame (fake) re-rendering"


def _card_records(recipe: Recipe, num_train_clips: int, test_report: dict[str, Any]) -> dict[str, Any]:
    """What the saved demo detectors' cards say about their training and test."""
    from ..hub.records import evaluation_record, training_record

    return dict(
        training=training_record(recipe.to_dict(), epoch=recipe.epochs, num_train_clips=num_train_clips,
                                 data=DEMO_DATA_NAME),
        evaluation=[evaluation_record(
            test_report, data=DEMO_DATA_NAME, split="test (footage of other people)",
            num_snippets=recipe.test_num_snippets, snippet_len=recipe.snippet_len, img_size=recipe.img_size,
            source="dynsnip demo",
        )],
    )


def run_demo(config: DemoConfig | None = None, log: Callable[[str], None] = print) -> DemoResult:
    """Run the whole demo (see module docstring) and return the table's numbers."""
    config = config or DemoConfig()
    out = Path(config.out)
    _check_out_dir(out)
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(int(config.threads))
    try:
        return _run(config, out, log)
    finally:
        torch.set_num_threads(previous_threads)


def _run(config: DemoConfig, out: Path, log: Callable[[str], None]) -> DemoResult:
    start = time.perf_counter()
    log(f"dynsnip demo: DIL vs a frame-level detector on re-rendered real footage ({torch.get_num_threads()} CPU thread(s))")

    t0 = time.perf_counter()
    train_footage, test_footage = load_footage(config, log)
    recipe = demo_recipe(config)
    train_set = FlickerClips(
        train_footage, config.num_snippets, config.snippet_len, window=config.window, stride=config.train_stride,
        train=True, hflip_prob=recipe.hflip_prob,
    )
    test_set = FlickerClips(
        test_footage, config.test_num_snippets, config.snippet_len, window=config.window, stride=1,
        draws=config.test_draws, train=False, seed=config.seed + 1,
    )
    data_seconds = time.perf_counter() - t0
    describe = lambda fs: ", ".join(f"{f.name} ({len(f)} frames)" for f in fs)  # noqa: E731
    log(f"data ({data_seconds:.0f}s): train footage {describe(train_footage)} -> {len(train_set)} clips per epoch "
        f"(U={config.num_snippets}, new re-renderings every epoch)")
    log(f"  held-out test footage {describe(test_footage)} -> {len(test_set)} clips "
        f"(U={config.test_num_snippets}, half real, half fake)")

    variants = (
        ("DIL (dil_resnet18/2, SIMs)", "dil", {}),
        ("frame-level (same net, no SIMs)", "frame_level", {"sim_stages": ()}),
    )
    rows: list[dict[str, Any]] = []
    models, reports = {}, {}
    work = Path(tempfile.mkdtemp(prefix="dynsnip-demo-"))
    try:
        for name, key, extra in variants:
            log(f"training {name}: {recipe.epochs} epochs x {len(train_set) // recipe.batch_size + bool(len(train_set) % recipe.batch_size)} "
                f"steps of {recipe.batch_size} clips, Adam lr {recipe.lr:g}, BCE, horizontal flip")
            model_kwargs = dict(channels=config.channels, stem_width=config.stem_width, **extra)
            t0 = time.perf_counter()
            result = train(recipe, train_set, None, work / key, model_kwargs=model_kwargs, resume=False,
                           progress=config.progress, log=lambda m: log("  " + m), device="cpu",
                           save_kwargs=dict(base_model=None), save_checkpoints=False)
            train_seconds = time.perf_counter() - t0
            evaluation = evaluate(result.model, test_set, batch_size=16, device="cpu", progress=config.progress)
            overall = evaluation.report["overall"]
            scores = {0: [], 1: []}
            for p in evaluation.predictions:
                scores[p["label"]].append(p["score"])
            rows.append(dict(
                name=name, key=key, auc=overall["auc"], accuracy=overall["accuracy"], loss=evaluation.loss,
                mean_score_real=sum(scores[0]) / len(scores[0]), mean_score_fake=sum(scores[1]) / len(scores[1]),
                train_seconds=train_seconds, test_seconds=evaluation.report["seconds"],
                params=sum(p.numel() for p in result.model.parameters()),
                final_train_loss=result.history[-1]["train_loss"] if result.history else None,
            ))
            models[key] = result.model
            reports[key] = evaluation.report
            log(f"  {name}: test AUC {overall['auc']:.3f}, accuracy {overall['accuracy']:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for key, directory in (("dil", out), ("frame_level", out / "frame_level")):
        save_model(models[key], directory, recipe, base_model=None, **_card_records(recipe, len(train_set), reports[key]))
    samples = write_samples(test_footage[0], out / "samples", train_set.rerender, config.seed) if config.samples else []
    seconds = time.perf_counter() - start
    data = dict(
        train_footage=[f.name for f in train_footage], test_footage=[f.name for f in test_footage],
        train_clips_per_epoch=len(train_set), test_clips=len(test_set), data_seconds=data_seconds,
        rerender=asdict(train_set.rerender),
    )
    report = dict(
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        recipe=recipe.to_dict(), data=data, results=rows, seconds=seconds,
        samples=[str(p) for p in samples], torch_threads=torch.get_num_threads(),
    )
    (out / MARKER).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return DemoResult(rows=rows, out=out, seconds=seconds, data=data, samples=samples)
