"""``dynsnip demo``: DIL against a frame-level detector on face-region pseudo-fakes of real footage.

What it does (under 10 minutes on 2 CPU cores):

1. **Data**: real face footage shipped with the package is decoded once, faces are found
   with dlib and cropped (:mod:`dynsnip.demo.synthetic`). Real clips are the footage as it
   is; fake clips are its self-blended **pseudo-fakes** (:mod:`dynsnip.data.pseudo_fakes`),
   made on the fly by the training engine (``Recipe(pseudo_fakes=MODE)``, exactly what
   ``dynsnip train --pseudo-fakes MODE`` does). Two rows, one per mode (:data:`DEMO_MODES`):

   * ``temporal``: small per-frame jumps of the blend; the real clips carry the same blend
     drifting smoothly (the generator's consistent twin), so every frame has the same
     distribution in both classes: only the local temporal inconsistency tells them apart,
     and a frame-level detector must stay at chance;
   * ``both``: a per-clip blend artefact (colour, sharpness, scale) plus the per-frame
     jumps: a frame-level detector learns something too.

   Training footage and test footage are **different videos of different people**
   (:data:`TRAIN_FOOTAGE`, :data:`TEST_FOOTAGE`).
2. **Two detectors per row, same budget**: a small DIL model (a half-width ``dil_resnet18``:
   Intra-SIM / Inter-SIM in every block) and the same backbone **without SIMs**
   (``sim_stages=()``: the frame-level detector, whose video logit is the mean of per-frame
   logits). Same random init of the shared weights, same data order, same epochs, same
   optimiser (:func:`demo_recipe`).
3. **Test** on the held-out footage: AUC, accuracy and time, side by side; with
   ``cross=True`` every detector is also tested on the other modes and on the earlier
   brightness-flicker fakes (:class:`~dynsnip.demo.synthetic.FlickerClips`): the
   cross-manipulation table of ``docs/pseudo_fakes.md``.
4. **Saves** the first row's DIL detector in the hub layout to ``--out`` (``dynsnip predict
   --checkpoint OUT`` loads it), its frame-level one to ``OUT/frame_level``, the other rows' to
   ``OUT/<mode>/`` and ``OUT/<mode>/frame_level``, a report, and two test videos (the real
   footage and its pseudo-fake) under ``OUT/samples`` to try ``dynsnip predict`` on.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..engine.evaluate import evaluate
from ..hub.safetensors_file import current_umask
from ..engine.recipe import Recipe
from ..engine.train import save_model, train
from ..data.pseudo_fakes import MODES, PseudoFakeGenerator
from .pseudo_fake_clips import PseudoFakeClips, pseudo_fake_video_frames
from .synthetic import FaceFootage, FlickerClips, face_footage

__all__ = ["DemoConfig", "DemoResult", "run_demo", "demo_recipe", "TRAIN_FOOTAGE", "TEST_FOOTAGE", "MARKER", "DEMO_MODES"]

DEMO_MODES: tuple[str, ...] = ("temporal", "both")  # the rows of the table
CROSS_TESTS: tuple[str, ...] = (*MODES, "flicker")  # test sets of the cross-manipulation table

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
            wrote it, and only with ``overwrite``); :class:`DemoResult` gives it as an absolute path. The saved detectors'
            cards say what they are: "the embedded demo task: not a detector for real
            footage" (``dynsnip predict`` prints it beside every verdict).
        size: face crop side in pixels (32: small crops keep CPU training fast; the face
            box is about 25 px, so the blend's translation jitter is sub-pixel).
        channels, stem_width: widths of the ResNet-18 stages (half of the standard
            64-128-256-512): "a small DIL model" that trains on CPUs in minutes.
        num_snippets, test_num_snippets, snippet_len: U for training / testing and T.
        window: consecutive frames a training clip is cut from (U*T*2: room for the
            random snippet offsets of training).
        modes: pseudo-fake modes, one row each (:data:`DEMO_MODES`); magnitude: their strength
            (``strong``: at 32 px the face box is ~25 px, and the strong per-frame jitter, 3 %
            of it, is still under a pixel).
        cross: also test every detector on every mode and on the brightness-flicker fakes.
        epochs, batch_size, lr: the budget shared by both detectors of a row; ``batch_size``
            real clips per step, each with its pseudo-fake (2x clips). lr 1e-3 instead of the
            paper's 1e-4: the paper fine-tunes an ImageNet ResNet-50, the demo trains from
            random init (no weights can be downloaded offline).
        test_draws: draws per test window and label (the test set's size).
        seed: everything random (init, data order, re-rendering) follows from it.
        threads: torch CPU threads (default 1; None: torch's default, one per core). At this
            size the DIL network is hundreds of small operations per step, and OpenMP's
            spin-waiting between them made 2 threads 10x *slower* than 1 on a 2-core machine
            (0.25 s vs 2.5 s per step); the frame-level network gains little from 2 threads.
        samples: write the two sample videos for ``dynsnip predict``.
        max_frames: frames decoded from the start of each video (foreman's face is in its
            first 150; the other clips are shorter).
        progress: progress bars.
        overwrite: replace an earlier demo's folder at ``out`` (its results, and anything added to
            it); without it such a folder is refused before anything runs.
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
    modes: tuple[str, ...] = DEMO_MODES
    magnitude: str = "strong"
    cross: bool = False
    epochs: int = 8
    batch_size: int = 4
    lr: float = 1e-3
    test_draws: int = 24
    seed: int = 0
    threads: int | None = 1
    samples: bool = True
    max_frames: int = 160
    progress: bool = True
    overwrite: bool = False


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


def demo_recipe(config: DemoConfig, mode: str | None = None) -> Recipe:
    """The recipe both detectors of the ``mode`` row get: the paper's optimiser, loss and
    augmentation with the demo's budget, and pseudo-fakes of ``mode`` for every real clip. The learning rate is not divided on a plateau (a fixed budget of
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
        pseudo_fakes=mode,
        pseudo_fake_magnitude=config.magnitude,
    )


def format_table(rows: list[dict[str, Any]]) -> str:
    """The side-by-side table: test AUC / accuracy, mean fake probability of the real and of
    the fake test clips, training and test time, parameters."""
    head = (f"{'fakes':<9} {'detector':<32} {'AUC':>6} {'ACC':>6} {'p(fake) real':>12} {'p(fake) fake':>12} "
            f"{'train s':>8} {'test s':>7} {'params':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['mode']:<9} {r['name']:<32} {r['auc']:>6.3f} {r['accuracy']:>6.3f} {r['mean_score_real']:>12.3f} "
            f"{r['mean_score_fake']:>12.3f} {r['train_seconds']:>8.0f} {r['test_seconds']:>7.1f} {r['params'] / 1e6:>6.2f}M"
        )
    return "\n".join(lines)


def _check_out_dir(out: Path, overwrite: bool = False) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise FileExistsError(
            f"{out} exists and was not written by `dynsnip demo` (no {MARKER} in it); refusing to overwrite it. "
            "Choose another --out or remove the folder."
        )
    if (out / MARKER).is_file() and not overwrite:
        raise FileExistsError(
            f"{out} holds an earlier `dynsnip demo` run's results; refusing to overwrite them without --overwrite "
            "(overwrite=True). Pass --overwrite to replace them, or choose another --out."
        )


class OutNotWritableError(OSError):
    """``--out`` cannot be written (found before any training): a usage error, nothing was done."""


def _check_writable(out: Path) -> None:
    """Raise OSError now, before minutes of training, when the folder beside ``out`` (where the new folder is
    written before it is put in place) cannot be created or written: a read-only working directory, a
    missing permission, a parent path that is a file."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        probe = tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    except OSError as err:
        raise OutNotWritableError(err.errno, f"--out {out}: cannot write beside it in {out.parent} ({err.strerror}); "
                                             "expected a folder this user can write in") from None
    os.rmdir(probe)


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


def write_samples(footage: FaceFootage, out_dir: Path, generator: PseudoFakeGenerator, seed: int,
                  snippet_len: int = 4, max_side: int = 640) -> list[Path]:
    """The real footage and its pseudo-fake (mask in each frame's tracked face box) as MP4
    videos (whole frames, downscaled to ``max_side``), for ``dynsnip predict``."""
    import numpy as np
    from PIL import Image

    from ..data import VideoReader

    with VideoReader(footage.source) as video:
        frames = video.read([int(i) for i in footage.frame_indices])
        fps = video.fps
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    height, width = frames.shape[1:3]
    scale = min(1.0, max_side / max(height, width))
    new_size = (int(round(width * scale / 2)) * 2, int(round(height * scale / 2)) * 2)
    fake = pseudo_fake_video_frames(frames, footage.crop_boxes, generator, seed, snippet_len)
    for label, rendered in (("real", frames), ("fake", fake)):
        if scale < 1.0 or new_size != (width, height):
            rendered = np.stack([np.asarray(Image.fromarray(f).resize(new_size, Image.BILINEAR)) for f in rendered])
        path = out_dir / f"{label}_{footage.name.replace('#', '_')}.mp4"
        _write_video(rendered, path, fps)
        written.append(path)
    return written


DEMO_DATA_NAME = "dynsnip demo: bundled real face footage and its {mode} pseudo-fakes"
DEMO_SCOPE = ("the embedded demo task (two people's bundled footage, {size} px crops): not a detector for "
              "real footage")


def _card_records(recipe: Recipe, num_train_clips: int, test_report: dict[str, Any]) -> dict[str, Any]:
    """What the saved demo detectors' cards say about their training and test."""
    from ..hub.records import evaluation_record, training_record

    data = DEMO_DATA_NAME.format(mode=recipe.pseudo_fakes)
    return dict(  # the training clips are real ones only: the engine makes their pseudo-fakes
        training=training_record(recipe.to_dict(), epoch=recipe.epochs, num_train_clips=num_train_clips, data=data,
                                 num_train_real=num_train_clips, num_train_fake=0,
                                 scope=DEMO_SCOPE.format(size=recipe.img_size)),
        evaluation=[evaluation_record(
            test_report, data=data, split="test (footage of other people)",
            num_snippets=recipe.test_num_snippets, snippet_len=recipe.snippet_len, img_size=recipe.img_size,
            source="dynsnip demo",
        )],
    )


def run_demo(config: DemoConfig | None = None, log: Callable[[str], None] = print) -> DemoResult:
    """Run the whole demo (see module docstring) and return the table's numbers."""
    config = config or DemoConfig()
    out = Path(config.out).absolute()  # reported as an absolute path: a relative one depends on where you ran it
    _check_out_dir(out, config.overwrite)
    _check_writable(out)
    previous_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(int(config.threads))
    try:
        return _run(config, out, log)
    finally:
        torch.set_num_threads(previous_threads)


def _test_sets(config: DemoConfig, footage: list[FaceFootage], names: tuple[str, ...]) -> dict[str, Any]:
    """The held-out test set of each name: a pseudo-fake mode, or ``"flicker"`` (the earlier
    demo's smooth vs per-frame re-rendering)."""
    common = dict(window=config.window, stride=1, draws=config.test_draws, train=False, seed=config.seed + 1)
    sets = {}
    for name in names:
        if name == "flicker":
            sets[name] = FlickerClips(footage, config.test_num_snippets, config.snippet_len, **common)
        else:
            generator = PseudoFakeGenerator(mode=name, magnitude=config.magnitude)
            sets[name] = PseudoFakeClips(footage, config.test_num_snippets, config.snippet_len, generator=generator,
                                         **common)
    return sets


def _row(name: str, key: str, mode: str, evaluation: Any) -> dict[str, Any]:
    overall = evaluation.report["overall"]
    scores: dict[int, list[float]] = {0: [], 1: []}
    for p in evaluation.predictions:
        scores[p["label"]].append(p["score"])
    return dict(
        name=name, key=key, mode=mode, auc=overall["auc"], accuracy=overall["accuracy"], loss=evaluation.loss,
        mean_score_real=sum(scores[0]) / len(scores[0]), mean_score_fake=sum(scores[1]) / len(scores[1]),
        test_seconds=evaluation.report["seconds"],
    )


VARIANTS = (
    ("DIL (dil_resnet18/2, SIMs)", "dil", {}),
    ("frame-level (same net, no SIMs)", "frame_level", {"sim_stages": ()}),
)


def _run(config: DemoConfig, out: Path, log: Callable[[str], None]) -> DemoResult:
    start = time.perf_counter()
    for mode in config.modes:
        if mode not in MODES:
            raise ValueError(f"demo mode must be one of {MODES}, got {mode!r}")
    log(f"dynsnip demo: DIL vs a frame-level detector on face-region pseudo-fakes of real footage "
        f"({torch.get_num_threads()} CPU thread(s))")

    t0 = time.perf_counter()
    train_footage, test_footage = load_footage(config, log)
    train_set = PseudoFakeClips(  # real clips only: the engine adds their pseudo-fakes (Recipe.pseudo_fakes)
        train_footage, config.num_snippets, config.snippet_len, window=config.window, stride=config.train_stride,
        train=True, hflip_prob=demo_recipe(config).hflip_prob, labels=(0,), twin_reals=False,  # the untouched footage
        generator=PseudoFakeGenerator(mode=config.modes[0], magnitude=config.magnitude),
    )
    test_names = CROSS_TESTS if config.cross else tuple(config.modes)
    test_sets = _test_sets(config, test_footage, test_names)
    data_seconds = time.perf_counter() - t0
    describe = lambda fs: ", ".join(f"{f.name} ({len(f)} frames)" for f in fs)  # noqa: E731
    log(f"data ({data_seconds:.0f}s): train footage {describe(train_footage)} -> {len(train_set)} real clips per "
        f"epoch (U={config.num_snippets}), each with a new pseudo-fake every epoch")
    log(f"  held-out test footage {describe(test_footage)} -> {len(test_sets[config.modes[0]])} clips per test set "
        f"(U={config.test_num_snippets}, half real, half fake)")

    rows: list[dict[str, Any]] = []
    saved: list[tuple[Path, Any, Recipe, dict[str, Any]]] = []
    work = Path(tempfile.mkdtemp(prefix="dynsnip-demo-"))
    try:
        for mode_index, mode in enumerate(config.modes):
            recipe = demo_recipe(config, mode)
            steps = len(train_set) // recipe.batch_size + bool(len(train_set) % recipe.batch_size)
            for name, key, extra in VARIANTS:
                log(f"[{mode}] training {name}: {recipe.epochs} epochs x {steps} steps of {recipe.batch_size} real "
                    f"clips + their {mode} pseudo-fakes, Adam lr {recipe.lr:g}, BCE, horizontal flip")
                model_kwargs = dict(channels=config.channels, stem_width=config.stem_width, **extra)
                t0 = time.perf_counter()
                result = train(recipe, train_set, None, work / f"{mode}_{key}", model_kwargs=model_kwargs,
                               resume=False, progress=config.progress, log=lambda m: log("  " + m), device="cpu",
                               save_kwargs=dict(base_model=None), save_checkpoints=False)
                train_seconds = time.perf_counter() - t0
                evaluations = {test: evaluate(result.model, test_sets[test], batch_size=16, device="cpu",
                                              progress=config.progress) for test in test_names}
                row = _row(name, key, mode, evaluations[mode])
                row.update(train_seconds=train_seconds, params=sum(p.numel() for p in result.model.parameters()),
                           final_train_loss=result.history[-1]["train_loss"] if result.history else None,
                           train_clips_per_s=result.history[-1]["clips_per_s"] if result.history else None)
                if config.cross:
                    row["cross"] = {test: _row(name, key, mode, ev) for test, ev in evaluations.items()}
                    log(f"  [{mode}] {name}: cross AUC " + ", ".join(f"{t} {r['auc']:.3f}" for t, r in row["cross"].items()))
                rows.append(row)
                folder = out if mode_index == 0 else out / mode
                saved.append((folder if key == "dil" else folder / "frame_level", result.model, recipe,
                              evaluations[mode].report))
                log(f"  [{mode}] {name}: test AUC {row['auc']:.3f}, accuracy {row['accuracy']:.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    # written whole beside --out, then put in its place: an interruption or a full disk while writing leaves an
    # earlier demo's folder as it was (it was deleted first, and a half-written folder then loaded as a detector)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        for directory, model, recipe, report in saved:
            save_model(model, stage / directory.relative_to(out), recipe, base_model=None,
                       **_card_records(recipe, len(train_set), report))
        sample_generator = PseudoFakeGenerator(mode=config.modes[0], magnitude=config.magnitude)
        samples = ([out / "samples" / p.name for p in write_samples(test_footage[0], stage / "samples", sample_generator,
                                                                      config.seed, config.snippet_len)]
                   if config.samples else [])
        _finish(stage, out, config, train_footage, test_footage, train_set, test_sets, data_seconds, rows, samples,
                sample_generator, start)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    data = _data(config, train_footage, test_footage, train_set, test_sets, data_seconds, sample_generator)
    return DemoResult(rows=rows, out=out, seconds=seconds, data=data, samples=samples)


def _data(config: DemoConfig, train_footage: Any, test_footage: Any, train_set: Any, test_sets: Any,
          data_seconds: float, sample_generator: PseudoFakeGenerator) -> dict[str, Any]:
    return dict(
        train_footage=[f.name for f in train_footage], test_footage=[f.name for f in test_footage],
        train_clips_per_epoch=len(train_set), test_clips=len(test_sets[config.modes[0]]), data_seconds=data_seconds,
        pseudo_fakes=sample_generator.describe() | {"modes": list(config.modes)},
    )


def _finish(stage: Path, out: Path, config: DemoConfig, train_footage: Any, test_footage: Any, train_set: Any,
            test_sets: Any, data_seconds: float, rows: list, samples: list[Path],
            sample_generator: PseudoFakeGenerator, start: float) -> None:
    """Write the marker into the finished ``stage`` folder and put it in place of ``out`` (an earlier demo's
    folder is swapped out in one step where the system allows it, then removed)."""
    from ..data.faces.folder_swap import exchange_paths

    report = dict(
        config={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        recipes={mode: demo_recipe(config, mode).to_dict() for mode in config.modes},
        data=_data(config, train_footage, test_footage, train_set, test_sets, data_seconds, sample_generator),
        results=rows, seconds=time.perf_counter() - start, samples=[str(p) for p in samples],
        torch_threads=torch.get_num_threads(),
    )
    (stage / MARKER).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.chmod(stage, 0o777 & ~current_umask())  # mkdtemp's 0700 would make the folder private
    _check_out_dir(out, config.overwrite)  # filled by someone else while the demo ran: still never overwritten
    if os.path.lexists(out) and exchange_paths(stage, out):
        if os.path.islink(stage):  # --out was a link (to an earlier demo's folder): the link goes, its target stays
            os.unlink(stage)
        else:
            shutil.rmtree(stage, ignore_errors=True)  # the earlier demo's folder, now at the temporary name
        return
    if os.path.islink(out):
        os.unlink(out)
    elif os.path.lexists(out):
        shutil.rmtree(out)
    os.rename(stage, out)
