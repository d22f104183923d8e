"""``dynsnip predict``: fake probability of each video, and of each of its snippets.

For every video: U snippets of T frames are sampled uniformly (paper: U=8, T=4 at test
time), decoded, face-cropped and scored by the detector. The video's fake probability comes
from the model's video-level logit; each snippet's from the same forward pass (see
:func:`score_clip`), so a partly forged video shows where. A video that cannot be processed
(missing, corrupt, no video stream, unseekable raw stream, no face) is reported with the
reason and the others go on; the exit code is 1 when any video failed, 2 for usage errors
(no videos, unloadable model, existing ``--output``), 0 otherwise.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

from .exit_codes import EXIT_OK, EXIT_SOME_FAILED
from .exit_codes import usage_error as _usage_error
from .face_options import add_face_options, clip_loader, face_detector, face_options_problem

DEFAULT_MODEL = "dil_resnet50"
# Decoding and face detection take a large share of the time (most of it next to a GPU); two
# loader processes working ahead of the model gave 1.2-1.3x on 2 CPU cores
# (benchmarks/predict_throughput.py, docs/video.md).
DEFAULT_WORKERS = 2
# Suffixes picked up when a directory is given (a file named explicitly is always tried).
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp", ".264", ".h264"}
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict",
        help="score videos: fake probability per video and per snippet",
        description=(
            "Score videos with a DIL detector: prints each video's fake probability and the "
            "probability of each snippet (U snippets of T consecutive frames spread over the "
            "video), as a table or JSON. Videos that cannot be read are reported with the "
            "reason; exit code 1 if any failed, 2 for usage errors."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_DIR",
                        help="video files, or directories searched recursively for videos")
    parser.add_argument("--model", default=None,
                        help=f"architecture (default {DEFAULT_MODEL}, or the checkpoint's own), "
                             "or a detector to load: hf-hub:owner/name or a save_pretrained directory")
    parser.add_argument("--checkpoint", default=None, metavar="FILE|DIR|hf-hub:ID",
                        help="detector weights: a .safetensors file (or a .pt/.pth state dict) for "
                             "--model, a directory written by dynsnip.save_pretrained, or hf-hub:owner/name")
    parser.add_argument("--snippets", type=int, default=None, metavar="U",
                        help="snippets per video (default: the model's test U, 8 in the paper)")
    add_face_options(parser, none_means="the videos are already face crops")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="fake probability at or above which a video is called fake (default 0.5)")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    parser.add_argument("--output", type=Path, default=None, metavar="FILE",
                        help="also write the JSON report to FILE (refused if FILE exists, see --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="allow --output to replace an existing file")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, metavar="N",
                        help="processes that decode videos and crop faces while the model scores "
                             f"(default {DEFAULT_WORKERS}; 0: all in this process)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)
    return parser


# ---------------------------------------------------------------------------- model
def _read_state_dict(path: Path) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict (name -> tensor), got {type(state).__name__}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def open_detector(command: str, model: str | None, checkpoint: str | None) -> tuple[Any, str]:
    """:func:`load_detector` for a command: ``(model, where its weights came from)``, or
    ``(None, reason)`` when it cannot be loaded. Warns on stderr when the model is untrained."""
    try:
        detector, weights = load_detector(model, checkpoint)
    except (ValueError, FileNotFoundError, RuntimeError, OSError) as err:
        return None, f"cannot load the model: {err}"
    if weights.startswith("untrained"):
        print(f"dynsnip {command}: warning: model {weights}", file=sys.stderr)
    return detector, weights


def load_detector(model: str | None, checkpoint: str | None) -> tuple[Any, str]:
    """Build the detector (in eval mode) and say where its weights came from.

    Args:
        model: a ``dil_*`` architecture name (default ``dil_resnet50``), or a detector to load
            (``hf-hub:owner/name`` or a :func:`dynsnip.save_pretrained` directory).
        checkpoint: weights for ``model``: a ``.safetensors`` file (or a ``.pt``/``.pth``
            state dict, read with ``weights_only=True``), a ``save_pretrained`` directory or
            ``hf-hub:owner/name`` (which bring their own architecture).

    Returns:
        ``(model, description)``; the description says "untrained" when no weights were given.

    Raises:
        ValueError / FileNotFoundError / dynsnip.hub.ModelLoadError with the reason.
    """
    import timm

    import dynsnip  # noqa: F401  (registers the dil_* models)
    from dynsnip.hub import load_model

    def is_saved_detector(name: str | None) -> bool:
        return bool(name) and (name.startswith(("hf-hub:", "hf_hub:", "local-dir:")) or Path(name).is_dir())

    if checkpoint is None and is_saved_detector(model):
        return load_model(model).eval(), f"{model}"
    if checkpoint is not None and is_saved_detector(checkpoint):
        detector = load_model(checkpoint)
        arch = detector.pretrained_cfg.get("architecture", "")
        if model and model.split(".")[0] != arch.split(".")[0]:
            raise ValueError(f"--model {model} does not match the checkpoint's architecture {arch}; drop --model")
        return detector.eval(), f"{checkpoint}"
    name = model or DEFAULT_MODEL
    if checkpoint is None:
        detector = timm.create_model(name, pretrained=False, num_classes=1)
        return detector.eval(), "untrained (no --checkpoint): the scores are not meaningful"
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"--checkpoint {checkpoint}: no such file or directory")
    state = _read_state_dict(path)
    from timm.models import get_pretrained_cfg_value

    classifier = get_pretrained_cfg_value(name, "classifier") or "fc"
    head = state.get(f"{classifier}.weight")
    if head is None:
        raise ValueError(f"--checkpoint {checkpoint}: no '{classifier}.weight' tensor; is it a {name} detector?")
    detector = timm.create_model(name, pretrained=False, num_classes=int(head.shape[0]))
    try:
        detector.load_state_dict(state, strict=True)
    except RuntimeError as err:
        details = "; ".join(line.strip() for line in str(err).splitlines()[1:4])
        raise ValueError(f"--checkpoint {checkpoint} does not fit {name}: {details}") from None
    return detector.eval(), str(checkpoint)


def score_clip(model: Any, pixels: Any) -> tuple[Any, Any]:
    """Video-level and per-snippet logits from one forward pass.

    Args:
        model: a DIL model (``forward_features``/``forward_head``, ``snippet_len``).
        pixels: ``(B, 3, U*T, H, W)``.

    Returns:
        ``(video_logits (B, K), snippet_logits (B, U, K))``. The head pools each frame
        spatially, averages the frames and applies a linear classifier, so a snippet's logit
        is the classifier applied to the mean of its own T frames, and the mean of the U
        snippet logits equals the video logit exactly (linear classifier, equal T per
        snippet). The snippets interact inside the network (Inter-SIM), so each snippet
        score is "this part of the video, seen in the context of the whole".
    """
    from einops import rearrange, reduce

    feats = model.forward_features(pixels)  # (B, C, U*T, h, w)
    video_logits = model.forward_head(feats)
    per_frame = model.global_pool(rearrange(feats, "b c f h w -> (b f) c h w"))  # (B*U*T, C)
    per_snippet = reduce(
        per_frame, "(b u t) c -> b u c", "mean", b=pixels.shape[0], t=model.snippet_len
    )
    return video_logits, model.get_classifier()(per_snippet)


def fake_probability(logits: Any) -> Any:
    """``(..., K)`` logits -> ``(...)`` fake probability: sigmoid for K=1, softmax class 1 for K=2."""
    if logits.shape[-1] == 1:
        return logits[..., 0].sigmoid()
    if logits.shape[-1] == 2:
        return logits.softmax(-1)[..., 1]
    raise ValueError(f"a detector has 1 (fake logit) or 2 (real, fake) outputs, this one has {logits.shape[-1]}")


# ---------------------------------------------------------------------------- inputs
def find_videos(inputs: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Expand the command-line inputs: files as given, directories searched recursively.

    Returns:
        ``(videos, warnings)``; a missing path is kept (it is reported as failed), a
        directory without videos gives a warning. Duplicates are dropped.
    """
    videos: list[Path] = []
    warnings: list[str] = []
    seen: set[Path] = set()
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                warnings.append(f"{path}: no video files ({', '.join(sorted(VIDEO_SUFFIXES))}) in this directory")
        else:
            found = [path]
        for p in found:
            key = p.resolve()
            if key not in seen:
                seen.add(key)
                videos.append(p)
    return videos, warnings


# ---------------------------------------------------------------------------- scoring
def predict_video(model: Any, loader: Any, path: Path, threshold: float, device: Any) -> dict[str, Any]:
    """Score one video; the result dict of the JSON report (raises VideoError on bad input)."""
    return score_face_clip(model, loader(path), path, threshold, device)


class _LoadedClips:
    """``paths[i] -> (path, FaceClip or None, failure dict or None)``, as a map-style dataset
    for worker processes: a video that cannot be read becomes its failure, so one bad file
    never stops the others."""

    def __init__(self, paths: Sequence[Path], loader: Any) -> None:
        self.paths, self.loader = list(paths), loader

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Path, Any, dict[str, Any] | None]:
        path = self.paths[index]
        try:
            return path, self.loader(path), None
        except Exception as err:  # reported with its reason in the results
            return path, None, failure(path, err)


def _as_is(item: Any) -> Any:
    return item


def load_clips(paths: Sequence[Path], loader: Any, workers: int):
    """Yield ``(path, clip, failure)`` in the order of ``paths``; with ``workers`` > 0 the
    videos are decoded and cropped in that many processes, ahead of the model."""
    if workers <= 0 or len(paths) < 2:
        dataset = _LoadedClips(paths, loader)
        yield from (dataset[i] for i in range(len(dataset)))
        return
    import torch

    yield from torch.utils.data.DataLoader(
        _LoadedClips(paths, loader), batch_size=None, shuffle=False, num_workers=min(workers, len(paths)),
        collate_fn=_as_is, prefetch_factor=2,
    )


def score_face_clip(model: Any, clip: Any, path: Path, threshold: float, device: Any) -> dict[str, Any]:
    """The result dict of the JSON report for ``clip`` (a :class:`~dynsnip.data.FaceClip` of ``path``)."""
    import torch

    with torch.inference_mode():
        video_logits, snippet_logits = score_clip(model, clip.pixels[None].to(device))
    probability = float(fake_probability(video_logits)[0])
    snippet_probs = fake_probability(snippet_logits)[0].tolist()
    snippets = []
    for u, prob in enumerate(snippet_probs):
        frames = clip.frame_indices[u].tolist()
        times = clip.timestamps[u].tolist()
        snippets.append(
            dict(
                index=u,
                first_frame=frames[0],
                last_frame=frames[-1],
                start_s=round(times[0], 3),
                end_s=round(times[-1], 3),
                fake_probability=round(prob, 4),
                face_found=bool(clip.face_found[u]),
                crop_box=clip.crop_boxes[u].tolist(),
            )
        )
    return dict(
        path=str(path),
        status="ok",
        fake_probability=round(probability, 4),
        verdict="fake" if probability >= threshold else "real",
        num_frames=clip.num_frames,
        fps=round(clip.fps, 3),
        snippets=snippets,
    )


def failure(path: Path, err: BaseException) -> dict[str, Any]:
    from dynsnip.data.errors import VideoError

    if isinstance(err, VideoError):
        return dict(path=str(path), status="error", reason=err.reason, error=err.message)
    return dict(path=str(path), status="error", reason="error", error=f"{type(err).__name__}: {err}")


# ---------------------------------------------------------------------------- output
def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:05.2f}"


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """Human-readable report: one line per video, then its snippets; failures with the reason."""
    width = max([len("VIDEO"), *(len(r["path"]) for r in results)])
    lines = [f"{'VIDEO':<{width}}  P(FAKE)  VERDICT  DETAILS"]
    for r in results:
        if r["status"] != "ok":
            lines.append(f"{r['path']:<{width}}  {'-':>7}  {'FAILED':<7}  {r['reason']}: {r['error']}")
            continue
        lines.append(
            f"{r['path']:<{width}}  {r['fake_probability']:7.3f}  {r['verdict'].upper():<7}  "
            f"{len(r['snippets'])} snippets, {r['num_frames']} frames"
        )
        for s in r["snippets"]:
            note = "" if s["face_found"] else "  (no face in this snippet: crop borrowed from a neighbour)"
            lines.append(
                f"{'':<{width}}  {s['fake_probability']:7.3f}  {'':<7}  snippet {s['index']}: frames "
                f"{s['first_frame']}-{s['last_frame']} ({_clock(s['start_s'])}-{_clock(s['end_s'])}){note}"
            )
    failed = sum(r["status"] != "ok" for r in results)
    lines.append(f"{len(results)} video(s): {len(results) - failed} scored, {failed} failed")
    return "\n".join(lines)


def progress_bar(items: Iterable[Any], enabled: bool, total: int | None = None):
    """``items`` wrapped in a tqdm bar on stderr (shown when stderr is a terminal; no tqdm: none)."""
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc="videos", unit="video", file=sys.stderr, disable=None, total=total)


def run(args: argparse.Namespace) -> int:
    def usage_error(message: str) -> int:
        return _usage_error("predict", message)

    if args.output is not None and args.output.exists() and not args.overwrite:
        return usage_error(f"--output {args.output} exists; refusing to overwrite it (pass --overwrite to replace it)")
    if args.snippets is not None and args.snippets < 1:
        return usage_error(f"--snippets must be at least 1, got {args.snippets}")
    if args.workers < 0:
        return usage_error(f"--workers must be 0 or more, got {args.workers}")
    if problem := face_options_problem(args):
        return usage_error(problem)
    videos, warnings = find_videos(args.inputs)
    for warning in warnings:
        print(f"dynsnip predict: warning: {warning}", file=sys.stderr)
    if not videos:
        return usage_error("no videos to score")
    try:
        from dynsnip.data import FaceClipLoader  # noqa: F401  (fails here without the video extra)

        faces = face_detector(args)
    except ImportError as err:
        return usage_error(str(err))
    model, weights = open_detector("predict", args.model, args.checkpoint)
    if model is None:
        return usage_error(weights)

    import torch

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(device)
    loader = clip_loader(model, args, faces)

    results = []
    clips = load_clips(videos, loader, args.workers)
    for path, clip, failed_load in progress_bar(clips, enabled=not args.no_progress, total=len(videos)):
        if failed_load is not None:
            results.append(failed_load)
            continue
        try:
            results.append(score_face_clip(model, clip, path, args.threshold, device))
        except Exception as err:  # one bad video must not stop the batch: report it, go on
            results.append(failure(path, err))

    failed = sum(r["status"] != "ok" for r in results)
    report = dict(
        model=getattr(model, "pretrained_cfg", {}).get("architecture", args.model or DEFAULT_MODEL),
        weights=weights,
        num_snippets=loader.num_snippets,
        snippet_len=loader.snippet_len,
        face_detector=args.face_detector,
        threshold=args.threshold,
        videos=results,
        summary=dict(videos=len(results), scored=len(results) - failed, failed=failed),
    )
    text = json.dumps(report, indent=2)
    print(text if args.json else format_table(results))
    if args.output is not None:
        try:
            with open(args.output, "w" if args.overwrite else "x", encoding="utf-8") as f:
                f.write(text + "\n")
        except FileExistsError:
            return usage_error(f"--output {args.output} appeared while scoring; not overwritten")
    return EXIT_SOME_FAILED if failed else EXIT_OK
