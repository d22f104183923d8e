"""``dynsnip predict``: fake probability of each video, and of each of its snippets.

For every video: U snippets of T frames are sampled uniformly (paper: U=8, T=4 at test
time), decoded, face-cropped and scored by the detector
(:func:`dynsnip.scoring.predict_videos`). The video's fake probability comes from the
model's video-level logit; each snippet's from the same forward pass (see
:func:`dynsnip.scoring.score_clip`), so a partly forged video shows where. A video that
cannot be processed (missing, corrupt, no video stream, unseekable raw stream, no face) is
reported with the reason and the others go on; the exit code is 1 when any video failed (or
its verdict is partial: a face seen but not scored could change it, see
:func:`dynsnip.scoring.score_tracks`; or ``--output`` could not be written: the report is
printed, an earlier one kept as it was), 2
for usage errors (no videos, no or an unloadable detector, existing ``--output``), 0 otherwise.
Ctrl-C or SIGTERM while scoring reports the videos finished, marked interrupted (exit code 130
or 143; under ``torchrun`` each rank its own, in ``--output``'s :func:`rank_output` file).

A verdict needs a trained detector: without ``--checkpoint`` the command refuses to run (an
untrained network's score is not a verdict), and every report says what the detector was
trained on (its ``config.json``'s ``training`` record, see :func:`dynsnip.hub.records.describe_training`),
or that this was not recorded.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .arguments import device_problem, probability_problem, real, resolve_device
from .exit_codes import EXIT_OK, EXIT_SOME_FAILED
from .exit_codes import usage_error as _usage_error
from ..engine.compile import add_compile_arguments, compile_mode_from_args, compile_model, compile_problem
from ..scoring import DEFAULT_WORKERS, PredictionInterrupted, predict_videos
from .interrupts import StopSignals
from .report_file import path_taken, write_report
from .face_options import (
    add_face_options,
    add_track_options,
    clip_loader,
    detect_device_problem,
    face_detector,
    face_options_problem,
)

DEFAULT_MODEL = "dil_resnet50"
THRESHOLD_MEANING = "the fake probability at or above which a video is called fake"
# Suffixes picked up when a directory is given (a file named explicitly is always tried).
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp", ".264", ".h264"}
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "predict",
        help="score videos: fake probability per video and per snippet",
        description=(
            "Score videos with a DIL detector (--checkpoint): prints what the detector was trained on, "
            "each video's fake probability and the "
            "probability of each snippet (U snippets of T consecutive frames spread over the "
            "video), as a table or JSON. Videos that cannot be read are reported with the "
            "reason; exit code 1 if any failed, 2 for usage errors (no detector among them: an "
            "untrained network's score is not a verdict)."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="VIDEO_OR_DIR",
                        help="video files, or directories searched recursively for videos")
    parser.add_argument("--checkpoint", default=None, metavar="DIR|hf-hub:ID|FILE",
                        help="the detector (required): a folder written by `dynsnip train` / dynsnip.save_pretrained "
                             "(a run's model/; `dynsnip demo` writes a small one), hf-hub:owner/name, or a "
                             ".safetensors file (or a .pt/.pth state dict) for --model")
    parser.add_argument("--model", default=None,
                        help=f"architecture of a state-dict --checkpoint (default {DEFAULT_MODEL}). "
                             "Deprecated: a detector folder or hf-hub:owner/name here, use --checkpoint")
    parser.add_argument("--snippets", type=int, default=None, metavar="U",
                        help="snippets per video (default: the model's test U, 8 in the paper)")
    add_face_options(parser, none_means="the videos are already face crops")
    add_track_options(parser)
    parser.add_argument("--threshold", type=real, default=0.5,
                        help="fake probability at or above which a video is called fake (a probability in [0, 1]; "
                             "default 0.5)")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    parser.add_argument("--output", type=Path, default=None, metavar="FILE",
                        help="also write the JSON report to FILE (refused if FILE exists, see --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="allow --output to replace an existing file")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, metavar="N",
                        help="processes that decode videos and crop faces while the model scores "
                             f"(default {DEFAULT_WORKERS}; 0: all in this process)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_compile_arguments(parser)
    parser.set_defaults(func=run)
    return parser


# ---------------------------------------------------------------------------- model
EXPECTED_CHECKPOINT = ("expected a .safetensors weights file (or a .pt/.pth state dict of tensors), a folder "
                       "written by dynsnip.save_pretrained, or hf-hub:owner/name")


def _read_state_dict(path: Path) -> dict[str, Any]:
    """The tensors of a weights file; a ValueError in one line naming the file and what is
    expected when it is not one (a corrupt file, a pickle of objects, a README...)."""
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise ValueError(f"--checkpoint {path} is not a valid safetensors file ({err}); {EXPECTED_CHECKPOINT}") from None
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols: the error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's text suggests weights_only=False: never
        raise ValueError(
            f"--checkpoint {path} is neither a .safetensors file nor a state dict of tensors that torch reads without "
            f"running code (a text file, a damaged file, or a pickle of other objects, which is never unpickled); "
            f"{EXPECTED_CHECKPOINT}"
        ) from None
    except Exception as err:  # zip / EOF / format errors of torch.load: all mean "not a weights file"
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"--checkpoint {path} cannot be read as torch weights ({first[:200]}); "
                         f"{EXPECTED_CHECKPOINT}") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"--checkpoint {path} holds a {type(state).__name__}, not a state dict (name -> tensor); "
                         f"{EXPECTED_CHECKPOINT}")
    from dynsnip.models.keys import unwrapped_key

    return {unwrapped_key(k): v for k, v in state.items()}


def _mismatch(state: dict[str, Any], detector: Any) -> str | None:
    """How ``state`` differs from ``detector``'s state dict (key lists cut to a few and a count); None if it fits."""
    from dynsnip.models.keys import preview_keys

    from dynsnip.models.dtypes import DTYPE_RULE, dtype_mismatches

    target = detector.state_dict()
    missing = [k for k in target if k not in state]
    unexpected = [k for k in state if k not in target]
    misshaped = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in target.items()
                 if k in state and tuple(state[k].shape) != tuple(v.shape)]
    wrong_dtype = dtype_mismatches(state, target)
    from dynsnip.models.dil_resnet import _non_finite

    non_finite = _non_finite(state, state)  # NaN / inf: no verdict from such weights (load_model refuses them too)
    parts = [f"{len(keys)} {what} ({preview_keys(keys, n)})" for keys, what, n in (
        (missing, "tensors missing", 5), (unexpected, "tensors the model does not have", 5),
        (misshaped, "mis-shaped", 3), (wrong_dtype, "of another dtype", 3),
        (non_finite, "non-finite weights, holding NaN or inf", 5)) if keys]
    return "; ".join(parts) + (f": {DTYPE_RULE}" if wrong_dtype else "") if parts else None


def _load_weights_beside_config(path: Path) -> Any:
    """The detector whose weights file is ``path``, built from the ``config.json`` next to it
    (``--checkpoint run/model/model.safetensors`` means the folder ``run/model``)."""
    from dynsnip.hub import load_model
    from dynsnip.hub.config import WEIGHTS_NAME

    if path.name == WEIGHTS_NAME:
        return load_model(path.parent)
    detector = load_model(path.parent, pretrained=False)  # config.json's training record is model.safetensors's
    state = _read_state_dict(path)
    problem = _mismatch(state, detector)
    if problem:
        raise ValueError(f"--checkpoint {path} does not fit the {path.parent / 'config.json'} next to it: {problem}")
    detector.load_state_dict(state)
    return detector


def open_detector(command: str, model: str | None, checkpoint: str | None) -> tuple[Any, str]:
    """:func:`load_detector` for a command: ``(model, where its weights came from)``, or
    ``(None, reason)`` when it cannot be loaded. Warns on stderr when the model is untrained."""
    from ..hub.errors import ModelLoadError

    try:
        detector, weights = load_detector(model, checkpoint)
    except (ValueError, FileNotFoundError, RuntimeError, OSError, ModelLoadError) as err:
        return None, "cannot load the model: " + " ".join(str(err).split())  # one line
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

    def is_saved_detector(name: str | None) -> bool:  # a link that leads nowhere: load_model says why
        return bool(name) and (name.startswith(("hf-hub:", "hf_hub:", "local-dir:")) or Path(name).is_dir()
                               or (os.path.islink(name) and not os.path.exists(name)))

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
        from dynsnip.hub.load import _REPO_ID

        hint = f"; for a Hub repo write hf-hub:{checkpoint}" if _REPO_ID.match(checkpoint) else ""
        raise FileNotFoundError(f"--checkpoint {checkpoint}: no such file or directory{hint}")
    if path.suffix == ".safetensors" and (path.parent / "config.json").is_file():
        detector = _load_weights_beside_config(path)
        arch = detector.pretrained_cfg.get("architecture", "")
        if model and model.split(".")[0] != arch.split(".")[0]:
            raise ValueError(f"--model {model} does not match {path.parent / 'config.json'}'s architecture {arch}; "
                             "drop --model")
        return detector.eval(), str(checkpoint)
    state = _read_state_dict(path)
    from timm.models import get_pretrained_cfg_value

    classifier = get_pretrained_cfg_value(name, "classifier") or "fc"
    head = state.get(f"{classifier}.weight")
    if head is None:
        raise ValueError(f"--checkpoint {checkpoint}: no '{classifier}.weight' tensor; is it a {name} detector?")
    detector = timm.create_model(name, pretrained=False, num_classes=int(head.shape[0]))
    problem = _mismatch(state, detector)
    if problem:
        hint = f"; it sits next to a config.json: pass the folder {path.parent}" if (
            path.parent / "config.json").is_file() else ""
        raise ValueError(f"--checkpoint {checkpoint} does not fit {name}: {problem}{hint}")
    detector.load_state_dict(state, strict=True)
    return detector.eval(), str(checkpoint)


NO_DETECTOR = ("no detector: give --checkpoint, a folder written by `dynsnip train` (its model/) or `dynsnip demo` "
               "(a small one trained in minutes on bundled footage), or hf-hub:owner/name; an untrained network's "
               "score is not a verdict")


def _names_a_detector(name: str) -> bool:
    """Whether ``--model NAME`` names a saved detector (the deprecated spelling of ``--checkpoint``)
    rather than an architecture: ``hf-hub:``/``local-dir:`` ids and existing folders (or links)."""
    return name.startswith(("hf-hub:", "hf_hub:", "local-dir:")) or Path(name).is_dir() or os.path.islink(name)


def training_summary(model: Any) -> tuple[str, dict[str, Any] | None]:
    """What ``model`` was trained on: the line the report prints (``"trained on ..."``, or
    ``"training data not recorded"``) and the record's facts for the JSON report (None if not
    recorded). See :func:`dynsnip.hub.records.describe_training`."""
    from dynsnip.hub.records import NOT_RECORDED, describe_training

    record = getattr(model, "training_record", None)
    text = describe_training(record)
    if text == NOT_RECORDED:
        return text, None
    recipe = record.get("recipe") if isinstance(record.get("recipe"), dict) else {}
    facts = {k: v for k, v in record.items() if k != "recipe"}
    facts.update({k: recipe[k] for k in ("model", "pseudo_fakes", "img_size") if recipe.get(k) is not None})
    return text, facts


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


# ---------------------------------------------------------------------------- output
def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:05.2f}"


def _coverage(result: dict[str, Any]) -> str:
    """``, face in 7/8 frames looked at for the snippets, 1 snippet borrowed, shown in 28/32 frames
    scored`` (empty without a detector). The frames looked at are those the snippets' crops come
    from, not every k-th frame of the video (``frames_looked_at`` in the JSON, for face tracks)."""
    checked = result.get("frames_checked", 0)
    if not checked:
        return ""
    borrowed = sum(not s["face_found"] for s in result["snippets"])
    scored = result.get("frames_scored", 0)
    return (f", face in {result['frames_with_face']}/{checked} frames looked at for the snippets"
            + (f", {borrowed} snippet(s) borrowed" if borrowed else "")
            + (f", shown in {result.get('frames_showing_face', 0)}/{scored} frames scored" if scored else ""))


def _track_line(track: dict[str, Any], deciding: int | None) -> tuple[str, str]:
    """``(probability cell, details)`` of one face track in the table."""
    box = track["box"]
    x0, y0, x1, y1 = box["median"]
    where = (f"frames {track['first_frame']}-{track['last_frame']} ({track['detections']} detections), face "
             f"{box['side_min']:.0f}-{box['side_max']:.0f} px at ({(x0 + x1) / 2:.0f}, {(y0 + y1) / 2:.0f})")
    mark = "track" if track["id"] != deciding else "* track"
    if track["status"] == "scored":
        return (f"{track['fake_probability']:7.4f}",
                f"{mark} {track['id']}: {where}, face in {track['frames_with_face']}/{track['frames_checked']} "
                "frames looked at for the snippets"
                + (f", shown in {track['frames_showing_face']}/{track['frames_scored']} frames scored"
                   if track.get("frames_scored") else "")
                + (" (decides the verdict)" if track["id"] == deciding else ""))
    if track["status"] in ("short", "static"):
        return f"{'-':>7}", f"{mark} {track['id']}: {where}; dropped, {track['status']}: {track['dropped']}"
    return (f"{'-':>7}", f"{mark} {track['id']}: {where}; not scored, {track['status']} "
            f"({track.get('face_coverage', 0):.0%} of the frames looked at)")


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """Human-readable report: one line per video, its face tracks (with ``--faces all``; ``*``
    marks the one that decides), then the snippets; failures with the reason."""
    width = max([len("VIDEO"), *(len(r["path"]) for r in results)])
    lines = [f"{'VIDEO':<{width}}  P(FAKE)  VERDICT  DETAILS"]
    for r in results:
        if r["status"] != "ok":
            lines.append(f"{r['path']:<{width}}  {'-':>7}  {'FAILED':<7}  {r['reason']}: {r['error']}")
            for track in r.get("tracks", []):
                cell, details = _track_line(track, None)
                lines.append(f"{'':<{width}}  {cell}  {'':<7}  {details}")
            continue
        tracks = r.get("tracks")
        faces = ""
        if tracks is not None:
            how = (f"max over tracks: track {r['deciding_track']}" if r["video_score"] == "max"
                   else f"mean over tracks {', '.join(map(str, r['scored_tracks']))}")
            faces = f"{len(r['scored_tracks'])} of {len(tracks)} face track(s) scored ({how}), "
        lines.append(
            f"{r['path']:<{width}}  {r['fake_probability']:7.4f}  {r['verdict'].upper():<7}  "
            f"{faces}{len(r['snippets'])} snippets, {r['num_frames']} frames{_coverage(r)}"
        )
        for track in tracks or []:
            cell, details = _track_line(track, r.get("deciding_track"))
            lines.append(f"{'':<{width}}  {cell}  {'':<7}  {details}")
        for key in ("tracks_note", "faces_note"):
            if r.get(key):
                lines.append(f"{'':<{width}}  {'':>7}  {'':<7}  note: {r[key]}")
        if tracks is not None:
            lines.append(f"{'':<{width}}  {'':>7}  {'':<7}  snippets of track {r['snippets_track']}:")
        for s in r["snippets"]:
            note = "" if s["face_found"] else "  (no face in this snippet: crop borrowed from a neighbour)"
            length = s["last_frame"] - s["first_frame"] + 1
            if s.get("frames_showing_face", length) < length:  # a hand over the face, a cut inside the snippet
                note += f"  (the face shown in {s['frames_showing_face']} of its {length} frames)"
            lines.append(
                f"{'':<{width}}  {s['fake_probability']:7.4f}  {'':<7}  snippet {s['index']}: frames "
                f"{s['first_frame']}-{s['last_frame']} ({_clock(s['start_s'])}-{_clock(s['end_s'])}){note}"
            )
    failed = sum(r["status"] != "ok" for r in results)
    partial = sum(bool(r.get("partial")) for r in results)
    lines.append(f"{len(results)} video(s): {len(results) - failed} scored, {failed} failed"
                 + (f"; {partial} verdict(s) partial (a face seen but not scored could change it)" if partial else ""))
    return "\n".join(lines)


def output_problem(output: Path | None, overwrite: bool) -> str | None:
    """What keeps ``--output`` from taking the report, or None; checked before any video is
    scored, so that a typo in the folder does not cost the whole run."""
    if output is None:
        return None
    if output.is_dir():
        return f"--output {output} is a folder; expected a file name for the JSON report"
    if path_taken(output) and not overwrite:
        what = "is a link to a missing file" if not output.exists() else "exists"
        return f"--output {output} {what}; refusing to overwrite it (pass --overwrite to replace it)"
    folder = output.parent
    if not folder.is_dir():
        return f"--output {output}: the folder {folder} does not exist; create it first"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"--output {output}: the folder {folder} is not writable"
    return None


def output_is_an_input(output: Path | None, videos: Sequence[Path]) -> str | None:
    """``--output`` is one of the videos to score (the same file, by path, link or hard link):
    refused even with ``--overwrite``, which replaces an earlier report, never an input."""
    if output is None or not output.exists():
        return None
    for video in videos:
        try:
            same = video.exists() and os.path.samefile(output, video)
        except OSError:
            same = False
        if same:
            shown = "" if str(video) == str(output) else f" ({video})"
            return (f"--output {output} is one of the videos to score{shown}; refusing to write the report over an "
                    "input, even with --overwrite: choose another file name for the JSON report")
    return None


def output_is_in_checkpoint(output: Path | None, checkpoint: str | None) -> str | None:
    """``--output`` is the detector's weights file or lies in its ``save_pretrained`` folder (its
    ``config.json``, weights...): refused even with ``--overwrite``, which replaces an earlier
    report, never the detector (writing over its config leaves a detector that cannot be loaded)."""
    if output is None or not checkpoint or checkpoint.startswith(("hf-hub:", "hf_hub:")):
        return None
    local = Path(checkpoint.removeprefix("local-dir:"))
    try:
        target = output.resolve()
        inside = local.is_dir() and local.resolve() in target.parents
        same = local.is_file() and output.exists() and os.path.samefile(output, local)
    except OSError:
        return None
    if inside or same:
        where = f"in the detector's folder {local}" if inside else f"the detector's weights file {local}"
        return (f"--output {output} is {where}; refusing to write the report over the detector, even with "
                "--overwrite: choose a file outside it")
    return None


def _note_capped_snippets(results: list[dict[str, Any]], loader: Any) -> list[str]:
    """Add a ``note`` to each result scored with fewer snippets than asked for (a video with
    fewer distinct snippets, see ``FaceClipLoader(cap_snippets=True)``); return the notes."""
    notes = []
    for r in results:
        if r["status"] == "ok" and len(r["snippets"]) < loader.num_snippets:
            r["note"] = (f"{loader.num_snippets} snippets asked for, but {r['num_frames']} frames hold only "
                         f"{len(r['snippets'])} different snippets of {loader.snippet_len}: scored with "
                         f"{len(r['snippets'])}")
            notes.append(f"{r['path']}: {r['note']}")
    return notes


def run(args: argparse.Namespace) -> int:
    def usage_error(message: str) -> int:
        return _usage_error("predict", message)

    if problem := output_problem(args.output, args.overwrite):
        return usage_error(problem)
    if args.snippets is not None and args.snippets < 1:
        return usage_error(f"--snippets must be at least 1, got {args.snippets}")
    if args.workers < 0:
        return usage_error(f"--workers must be 0 or more, got {args.workers}")
    if problem := (probability_problem("--threshold", args.threshold, THRESHOLD_MEANING)
                   or face_options_problem(args) or detect_device_problem(args, args.workers == 0)
                   or device_problem(args.device)):
        return usage_error(problem)
    videos, warnings = find_videos(args.inputs)
    for warning in warnings:
        print(f"dynsnip predict: warning: {warning}", file=sys.stderr)
    if not videos:
        return usage_error("no videos to score")
    if problem := output_is_an_input(args.output, videos):
        return usage_error(problem)
    if args.checkpoint is None and args.model and _names_a_detector(args.model):
        print(f"dynsnip predict: warning: --model {args.model} is deprecated for a detector; write --checkpoint "
              f"{args.model} (--model names the architecture of a weights file)", file=sys.stderr)
        args.checkpoint, args.model = args.model, None
    if args.checkpoint is None:
        return usage_error(NO_DETECTOR)
    if problem := output_is_in_checkpoint(args.output, args.checkpoint):
        return usage_error(problem)
    try:
        from dynsnip.data._optional import require_video_decoding

        require_video_decoding()  # fails here without the video extra: one usage error, not every video failed
        faces = face_detector(args)
    except ImportError as err:
        return usage_error(str(err))
    model, weights = open_detector("predict", args.model, args.checkpoint)
    if model is None:
        return usage_error(weights)

    from dynsnip.engine.distributed import (
        cleanup_distributed,
        gather_shards,
        join_torchrun,
        rank_zero_view,
        wait_for_ranks,
    )

    try:
        ranks = join_torchrun(args.device)  # torchrun: videos sharded across ranks, one merged report
    except ValueError as err:  # a bad DYNSNIP_TORCHRUN_TIMEOUT_S
        return usage_error(str(err))
    if ranks is not None:  # every rank shards rank 0's list: ranks can find different ones (a folder being filled)
        videos = rank_zero_view(videos)
    device = ranks.device if ranks is not None else resolve_device(args.device)
    model.to(device)
    if args.compile:  # --compile: torch.compile in place (dynsnip.engine.compile)
        if problem := compile_problem(device):
            return usage_error(problem)
        compile_model(model, device, compile_mode_from_args(args), inference=True)
    try:
        loader = clip_loader(model, args, faces)
    except ValueError as err:  # e.g. a loader option the model cannot take
        return usage_error(str(err))

    shard = videos if ranks is None else videos[ranks.rank::ranks.world_size]
    results: list[dict[str, Any]] | None = None
    not_scored: list[Path] | None = None  # set on Ctrl-C / SIGTERM: the videos it stopped
    with StopSignals() as signals:  # SIGTERM (a scheduler's stop) as Ctrl-C: what was scored is reported
        try:
            results = predict_videos(model, shard, loader=loader, threshold=args.threshold, workers=args.workers,
                                     device=device, progress=not args.no_progress, faces=args.faces,
                                     video_score=args.video_score)
            if ranks is not None:  # a wait that a signal interrupts: this rank can still report its shard
                wait_for_ranks(device)
        except PredictionInterrupted as stop:
            results, not_scored = stop.results, stop.not_scored
        except KeyboardInterrupt:  # before the first video, or while waiting for the other ranks
            not_scored = shard[len(results or []):]
            results = results or []
        signals.shield()  # from here on the report is written: a signal must not cut it
        if ranks is not None:
            if not_scored is not None:  # no collective now: the other ranks may be stopped, or still scoring
                report = _report(model, weights, args, loader, results)
                code = _report_rank_stopped(report, args, ranks, shard, not_scored, len(videos), signals)
                cleanup_distributed()  # (done already when the signal came in wait_for_ranks)
                return code
            results = gather_shards(results, [str(v) for v in videos], ranks)
            cleanup_distributed()
            if not ranks.is_main:  # rank 0 prints and writes the report
                return EXIT_SOME_FAILED if any(r["status"] != "ok" or r.get("partial") for r in results) else EXIT_OK
        return _report_all(model, weights, args, loader, results, shard, not_scored, signals)


def _report(model: Any, weights: str, args: argparse.Namespace, loader: Any,
            results: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON report of ``results`` (printed notes: snippets capped)."""
    for note in _note_capped_snippets(results, loader):
        print(f"dynsnip predict: note: {note}", file=sys.stderr)
    failed = sum(r["status"] != "ok" for r in results)
    partial = sum(bool(r.get("partial")) for r in results)
    trained_on, training_data = training_summary(model)
    return dict(
        model=getattr(model, "pretrained_cfg", {}).get("architecture", args.model or DEFAULT_MODEL),
        weights=weights,
        trained_on=trained_on,
        training_data=training_data,
        num_snippets=loader.num_snippets,
        snippet_len=loader.snippet_len,
        face_detector=args.face_detector,
        detect_every=loader.detect_every,
        min_face_coverage=loader.min_face_coverage,
        **({"faces": args.faces, "video_score": args.video_score} if args.faces != "largest" else {}),
        threshold=args.threshold,
        videos=results,
        summary=dict(videos=len(results), scored=len(results) - failed, failed=failed, partial=partial),
    )


def _mark_interrupted(report: dict[str, Any], not_scored: list[Path]) -> None:
    """A partial report says so: which videos it lacks, and why."""
    report["interrupted"] = True
    report["not_scored"] = [str(p) for p in not_scored]
    report["summary"]["not_scored"] = len(not_scored)


def rank_output(output: Path, rank: int, world_size: int) -> Path:
    """Where rank ``rank`` of ``world_size`` writes its own partial report when a ``torchrun`` run is
    stopped: ``report.rank1-of-4.json`` beside ``--output report.json``."""
    return output.with_name(f"{output.stem}.rank{rank}-of-{world_size}{output.suffix or '.json'}")


def _report_rank_stopped(report: dict[str, Any], args: argparse.Namespace, ranks: Any, shard: list[Path],
                         not_scored: list[Path], total: int, signals: StopSignals) -> int:
    """Under ``torchrun``, a rank stopped by Ctrl-C / SIGTERM (while scoring, or done and waiting for the
    others): its own videos finished, marked interrupted, printed and written to its
    :func:`rank_output` file (never over an existing one without ``--overwrite``). No merged report:
    what the other ranks finished is in their own files."""
    _mark_interrupted(report, not_scored)
    report.update(rank=ranks.rank, world_size=ranks.world_size, videos_of_all_ranks=total)
    text = json.dumps(report, indent=2)
    written = None
    if args.output is not None:
        path = rank_output(args.output, ranks.rank, ranks.world_size)
        try:
            write_report(path, text + "\n", args.overwrite)
            written = path
        except FileExistsError:
            print(f"dynsnip predict: warning: {path} exists; not overwritten (--overwrite replaces it): this rank's "
                  "partial report is only printed", file=sys.stderr)
        except OSError as err:
            print(f"dynsnip predict: warning: cannot write {path} ({err.strerror or err}): this rank's partial "
                  "report is only printed", file=sys.stderr)
    table = format_table(report["videos"]) if report["videos"] else "(no video finished)"
    print(text if args.json else f"rank {ranks.rank} of {ranks.world_size}: detector: {report['weights']}, "
                                 f"{report['trained_on']}\n{table}\ninterrupted ({signals.name}): "
                                 f"{len(not_scored)} of this rank's {len(shard)} videos not scored", flush=True)
    print(f"dynsnip predict: rank {ranks.rank} of {ranks.world_size} interrupted ({signals.name}); the "
          f"{len(report['videos'])} of its {len(shard)} video(s) finished are reported above"
          f"{' and in ' + str(written) if written is not None else ''}, marked \"interrupted\"; no merged report "
          f"of the {total} videos (each rank reports its own)", file=sys.stderr)
    return signals.exit_code


def _report_all(model: Any, weights: str, args: argparse.Namespace, loader: Any, results: list[dict[str, Any]],
                shard: list[Path], not_scored: list[Path] | None, signals: StopSignals) -> int:
    """Print the report of every video (all of them, or those finished before Ctrl-C / SIGTERM, marked
    interrupted) and write it to ``--output``; the exit code."""
    report = _report(model, weights, args, loader, results)
    failed = report["summary"]["failed"] + report["summary"]["partial"]
    if not_scored is not None:
        _mark_interrupted(report, not_scored)
    text = json.dumps(report, indent=2)
    table = format_table(results) if results else "(no video finished)"
    if not_scored is not None:
        table += f"\ninterrupted ({signals.name}): {len(not_scored)} of {len(shard)} videos not scored"
    appeared = False  # --output is written before the screen's copy: a reader that closes stdout loses nothing
    unwritten = None  # why --output could not be written (the report is still printed)
    if args.output is not None:
        try:
            write_report(args.output, text + "\n", args.overwrite)
        except FileExistsError:
            appeared = True
        except OSError as err:
            unwritten = err.strerror or str(err)
    print(text if args.json else f"detector: {weights}, {report['trained_on']}\n{table}")
    if appeared:
        return _usage_error("predict", f"--output {args.output} appeared while scoring; not overwritten")
    if unwritten is not None:
        kept = "the earlier report there is unchanged" if args.output.is_file() else "nothing was written there"
        print(f"dynsnip predict: error: cannot write --output {args.output} ({unwritten}); {kept}; the report of "
              f"the {len(results)} video(s) is printed above", file=sys.stderr)
    if not_scored is not None:  # the shell's code for the signal, after the report of what was finished
        written = args.output is not None and unwritten is None
        print(f"dynsnip predict: interrupted ({signals.name}); the {len(results)} video(s) finished before it are "
              f"reported above{' and in ' + str(args.output) if written else ''}, marked "
              "\"interrupted\"", file=sys.stderr)
        return signals.exit_code
    return EXIT_SOME_FAILED if failed or unwritten is not None else EXIT_OK
