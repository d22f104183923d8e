"""``dynsnip explain``: the pictures of the paper's Figures 3-5 for one video.

Samples U snippets of T frames, crops the face (as ``dynsnip predict`` does), runs the
detector once forward and once backward, and writes into ``--out``:

* ``gradcam.png``: Grad-CAM of the fake (or ``--target real``) score over every sampled frame;
* ``intra_sma.png``: each snippet's faces above the Intra-SMA attention of one Intra-SIM
  (``intra_sma_<layer>.png`` per layer with several ``--intra-layer`` or ``all``);
* ``ut_map.png``: the Inter-SIM U x T attention map with each snippet's fake probability
  (``ut_map_<layer>.png`` per layer with several ``--inter-layer`` or ``all``);
* ``contact_sheet.png``: all of it over the face frames on one page (at the ``--intra-layer`` /
  ``--inter-layer`` asked for; with several, or ``all``, at the first named / the default one, as
  ``summary.json``'s ``contact_sheet`` says);
* ``explanation.npz``: the arrays (``dynsnip.explain.Explanation.load``);
* ``summary.json``: probabilities, layers, frame numbers, crop boxes, notes;
* ``tracks.png`` (``--faces all``, the default): every face track of the video on a few of
  its frames, scored ones with their fake probability, the one that decides the verdict (its
  most suspicious face, which the other pictures explain; ``--track`` picks another) marked,
  dropped ones (a photo on the wall, a passer-by) with the reason; ``summary.json`` lists
  the tracks.

Every output is written into a temporary folder beside ``--out`` (``.<name>.dynsnip-explain-*.partial``)
and put in place only once all of it is written: a new ``--out`` by renaming the folder, an
existing one (``--overwrite``) file by file at the end, after removing the earlier run's files
that this run does not write. ``--out`` therefore never holds a half-written run nor a mix of
two runs, and a run that fails or is stopped (Ctrl-C, or SIGTERM from a scheduler, handled alike:
:class:`~dynsnip.cli.interrupts.StopSignals`) leaves it as it was and removes its temporary
folder, so a rerun is not blocked by leftovers.

Exit codes: 0 written, 1 the video could not be processed (the reason is printed), 2 usage
errors (model cannot be loaded, bad option, missing extra), 130 stopped by Ctrl-C, 143 stopped by
SIGTERM (nothing of the stopped run is written).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from dynsnip.modules import InterSIM, IntraSIM

from .arguments import device_problem, resolve_device
from .exit_codes import EXIT_OK
from .exit_codes import EXIT_SOME_FAILED as EXIT_VIDEO_FAILED
from .exit_codes import usage_error as _usage_error
from .face_options import add_face_options, clip_loader, detect_device_problem, face_detector, face_options_problem
from .interrupts import StopSignals
from ..hub.safetensors_file import current_umask

# what the titles of the pictures and summary.json's notes say of a network without weights, so that a
# picture shared on its own says it (the warning on stderr is seen only by who ran the command)
UNTRAINED_CAVEAT = "untrained network: the maps mean nothing (random weights: no --checkpoint was given)"
# the temporary folder a run writes into before its outputs are put in place (see the module docstring)
STAGING_PREFIX, STAGING_SUFFIX = ".dynsnip-explain-", ".partial"
# the files an explain run writes (to recognise an earlier run's, and a partial one of an older version)
_OUTPUT_NAME = re.compile(r"^(summary\.json|explanation\.npz|contact_sheet\.png|gradcam\.png|tracks\.png"
                          r"|intra_sma(_\w+)?\.png|ut_map(_\w+)?\.png)$")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "explain",
        help="pictures of what the detector sees: Grad-CAM, Intra-SMA maps, U x T map",
        description=(
            "Explain the detector's verdict on one video: writes the Grad-CAM over the sampled "
            "face frames, the Intra-SMA attention of each snippet (paper Fig. 4), the Inter-SIM "
            "U x T attention map with per-snippet fake probabilities (Fig. 5), a contact sheet "
            "of all of them, and the arrays (explanation.npz, summary.json)."
        ),
    )
    parser.add_argument("video", metavar="VIDEO", help="the video file")
    parser.add_argument("--checkpoint", default=None, metavar="FILE|DIR|hf-hub:ID",
                        help="detector weights: a directory written by dynsnip.save_pretrained, "
                             "hf-hub:owner/name, or a .safetensors/.pt state dict for --model")
    parser.add_argument("--model", default=None,
                        help="architecture for a state-dict --checkpoint (default dil_resnet50)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR",
                        help="output directory (created; an existing non-empty one is refused unless --overwrite)")
    parser.add_argument("--overwrite", action="store_true",
                        help="write into an existing non-empty --out: the earlier explain run's files are replaced "
                             "(those this run does not write are removed), other files are left alone; nothing is "
                             "replaced until the new run's outputs are all written")
    parser.add_argument("--snippets", type=int, default=None, metavar="U",
                        help="snippets to sample (default: the model's test U, 8 in the paper); a video of N "
                             "frames holds at most N - T + 1 different ones, so a short video gets fewer (a note "
                             "says so)")
    parser.add_argument("--target", choices=("fake", "real"), default="fake",
                        help="the class whose evidence the Grad-CAM shows (default fake)")
    parser.add_argument("--intra-layer", action="append", default=None, metavar="NAME|all",
                        help="Intra-SIM(s) to draw, e.g. layer3.0.sim, or 'all' (repeatable; "
                             "default: the deepest whose map is at least 7x7)")
    parser.add_argument("--inter-layer", action="append", default=None, metavar="NAME|all",
                        help="Inter-SIM(s) whose U x T map to draw, or 'all' (repeatable; default: the deepest)")
    parser.add_argument("--cam-layer", default=None, metavar="NAME",
                        help="Grad-CAM layer (default: layer4's last block); e.g. layer4.0.sim for a "
                             "CAM at an Intra-SIM's output")
    parser.add_argument("--no-gradcam", action="store_true", help="skip the Grad-CAM (attention maps only)")
    add_face_options(parser, none_means="the video is already a face crop")
    parser.add_argument("--faces", choices=("all", "largest"), default="all",
                        help="all (default): every face is followed and scored, tracks.png draws them, and the "
                             "pictures explain the most suspicious one (or --track); largest: the largest face only")
    parser.add_argument("--track", type=int, default=None, metavar="ID",
                        help="with --faces all: explain this face track instead of the most suspicious one")
    parser.add_argument("--dpi", type=int, default=100, help="resolution of the PNGs (default 100)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.set_defaults(func=run)
    return parser


def _layers(values: list[str] | None) -> str | list[str] | None:
    if not values:
        return None
    return "all" if "all" in values else values


def _first_layer(values: list[str] | None) -> str | None:
    """The layer named first by ``--intra-layer`` / ``--inter-layer`` (None without one, or with ``all``):
    the explanation's layer, so that ``contact_sheet.png``, ``summary.json`` and ``explanation.npz``
    show the layer asked for, as ``intra_sma.png`` / ``ut_map.png`` do, not the default one."""
    if not values or "all" in values:
        return None
    return values[0]


def _contact_sheet_entry(exp: Any, args: argparse.Namespace) -> dict[str, Any]:
    """``summary.json``'s ``contact_sheet``: the layers ``contact_sheet.png`` shows, and, where several layers
    of a kind are drawn (several names, or ``all``), a note saying which one it is and why."""
    from dynsnip.explain.figures import contact_sheet_layers

    intra_asked, inter_asked = _layers(args.intra_layer), _layers(args.inter_layer)
    intra, inter = contact_sheet_layers(exp, intra_asked, inter_asked)
    entry: dict[str, Any] = dict(intra_layer=intra, inter_layer=inter)
    notes = []
    for kind, option, asked, shown, available, picture in (
            ("Intra-SMA", "--intra-layer", intra_asked, intra, exp.intra, "intra_sma_<layer>.png"),
            ("U x T", "--inter-layer", inter_asked, inter, exp.inter, "ut_map_<layer>.png")):
        drawn = list(available) if asked == "all" else list(asked or [])
        if shown is not None and len(drawn) > 1:
            why = "the default layer, of 'all'" if asked == "all" else f"the first {option}"
            notes.append(f"contact_sheet.png shows the {kind} map of {shown} ({why}); {picture} draw each of "
                         f"{', '.join(drawn)}")
    if notes:
        entry["note"] = "; ".join(notes)
    return entry


def _unknown_layer(model: Any, names: list[str] | None, kind: type) -> str | None:
    """An error message if one of ``names`` is not a ``kind`` module of ``model``."""
    have = [n for n, m in model.named_modules() if isinstance(m, kind)]
    for name in names or []:
        if name != "all" and name not in have:
            return (
                f"--{kind.__name__[:5].lower()}-layer {name}: the model has no {kind.__name__} of that name "
                f"(it has: {', '.join(have) or 'none'})"
            )
    return None


def _earlier_run_files(out: Path) -> set[str]:
    """The files an earlier ``dynsnip explain`` wrote in ``out`` (its ``summary.json``'s list): with
    ``--overwrite`` those this run does not write again are removed, so that the folder never
    mixes two runs' pictures. Files it does not list (the user's own) are never touched."""
    try:
        names = json.loads((out / "summary.json").read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    # plain file names only: a hand-edited list cannot reach outside the folder
    return {n for n in names if isinstance(n, str) and n == Path(n).name and n not in ("", ".", "..")}


def _summary(exp: Any, clip: Any, args: argparse.Namespace, weights: str, files: dict[str, Path],
             tracks: dict[str, Any] | None = None) -> dict[str, Any]:
    return dict(
        video=str(args.video),
        weights=weights,
        **exp.summary(),
        crop_boxes=clip.crop_boxes.tolist(),
        face_coverage=round(clip.face_coverage, 4),
        frames_checked=clip.frames_checked,
        frames_with_face=clip.frames_with_face,
        timestamps=[[round(s, 3) for s in row] for row in clip.timestamps.tolist()],
        files=sorted(p.name for p in files.values()),
        **(tracks or {}),
    )


def _track_entry(track: Any, video: Any, probabilities: dict[int, float]) -> dict[str, Any]:
    """``track`` as ``predict``'s report lists it: ``status`` ``scored`` (with its coverage and
    probability), the reason it was not scored (``low_face_coverage``, with ``not_scored``), or
    why it was dropped (``short`` / ``static``)."""
    entry = track.summary()
    if track.id in probabilities:
        scored = video.clips[track.id]
        entry.update(status="scored", face_coverage=round(scored.face_coverage, 4), frames_checked=scored.frames_checked,
                     frames_with_face=scored.frames_with_face, fake_probability=round(probabilities[track.id], 4))
    elif track.id in video.failures:
        err = video.failures[track.id]
        entry.update(status=err.reason, face_coverage=round(err.coverage, 4), not_scored=err.message)
    return entry


def _capped_snippets_note(clip: Any, loader: Any) -> str | None:
    """Why ``clip`` has fewer snippets than asked for (``--snippets`` or the model's test U), or
    None: a video of N frames holds only N - T + 1 different snippets of T frames, and the loader
    takes each at most once (``FaceClipLoader(cap_snippets=True)``, as ``predict`` does)."""
    got = int(clip.frame_indices.shape[0])
    if got >= loader.num_snippets:
        return None
    return (f"{loader.num_snippets} snippets asked for, but its {clip.num_frames} frames hold only {got} different "
            f"snippets of {loader.snippet_len} frames: explained with {got} (a snippet repeated would add nothing)")


def _score_tracks(model: Any, video: Any, device: Any) -> dict[int, float]:
    """Fake probability of each scorable face track (one forward per track; NonFiniteError if not finite)."""
    import torch

    from dynsnip.engine.failures import NON_FINITE_OUTPUT, NonFiniteError, non_finite_input
    from dynsnip.scoring import fake_probability

    out = {}
    for track_id, clip in sorted(video.clips.items()):
        if (bad := non_finite_input(clip.pixels)) is not None:
            raise bad
        with torch.inference_mode():
            logits = model(clip.pixels[None].to(device))
        p = float(fake_probability(logits)[0])
        if not bool(torch.isfinite(logits).all()):  # an overflowing logit is no score, even if its sigmoid is 1.0
            raise NonFiniteError(NON_FINITE_OUTPUT, f"track {track_id}: the model's logits are {logits.flatten().tolist()}; "
                                                    "expected finite numbers")
        out[track_id] = p
    return out


def _tracks_picture(args: argparse.Namespace, video: Any, probabilities: dict[int, float], deciding: int,
                    explained: int, caveat: str | None = None) -> Any:
    """The figure of :func:`dynsnip.explain.tracks.tracks_figure` for this video (``caveat``, e.g. an
    untrained network's, as its first title line)."""
    from dynsnip.data import read_frames
    from dynsnip.explain.tracks import shown_frames, tracks_figure

    indices = shown_frames(video.tracks)
    frames = dict(zip(indices, read_frames(args.video, indices)))
    title = (f"{args.video}: {len(video.clips)} of {len(video.tracks)} face track(s) scored; video p(fake) = "
             f"{probabilities[deciding]:.3f} (track {deciding})"
             + (f"; pictures explain track {explained}" if explained != deciding else ""))
    return tracks_figure(frames, video.tracks, probabilities, deciding, (caveat + "\n" if caveat else "") + title)


def _is_staging(name: str) -> bool:
    """Whether ``name`` is the temporary folder of an explain run inside ``--out`` (:class:`_Staging`)."""
    return name.startswith(STAGING_PREFIX) and name.endswith(STAGING_SUFFIX)


def _entries(out: Path) -> list[str]:
    """The names in the folder ``out``, less explain runs' temporary folders (one a killed run could not
    remove is no reason to refuse ``out``: it holds nothing of the user's)."""
    return sorted(n for n in os.listdir(out) if not _is_staging(n))


def _explain_outputs(out: Path) -> list[str]:
    """The files in ``out`` with the names an explain run writes."""
    return [n for n in _entries(out) if _OUTPUT_NAME.match(n)] if out.is_dir() else []


class _Staging:
    """The temporary folder a run writes its outputs into, and putting them in place in ``--out``.

    The folder is made beside ``--out`` (in its parent), so that one rename puts a new ``--out`` in
    place. Where an existing ``--out``'s parent cannot hold it (not writable, or another file
    system: ``--out`` a mount point, or a link to another disk, where a move is a copy, not a
    rename), it is made inside ``--out`` instead, as ``.dynsnip-explain-*.partial``.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path: Path | None = None

    def create(self) -> Path:
        """Make the temporary folder (OSError when neither beside nor inside ``--out`` can hold one)."""
        target = Path(os.path.realpath(self.out))  # a link to a folder: beside the folder it leads to
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
        elif not _same_file_system(target.parent, target):
            return self._make(target, STAGING_PREFIX)
        try:
            return self._make(target.parent, f".{target.name}{STAGING_PREFIX}")
        except OSError:
            if not target.is_dir():
                raise
            return self._make(target, STAGING_PREFIX)  # a parent we may not write in

    def _make(self, where: Path, prefix: str) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix=prefix, suffix=STAGING_SUFFIX, dir=where))
        return self.path

    def put_in_place(self, earlier: set[str], overwrite: bool = True) -> list[str]:
        """Move the written files into ``--out``; return the earlier run's files removed.

        A new ``--out`` is the temporary folder renamed, in one step. Into an existing one each file
        is moved in with ``os.replace`` (each one whole, in one step), ``summary.json`` last, and only
        then are the earlier run's files (``earlier``) that this run does not write removed; other
        files are not touched. Where a rename cannot cross into ``--out`` (a bind mount of the same
        file system: EXDEV), a file is copied beside its place in ``--out`` and renamed there. Raises
        OSError when a file of the run's names is a folder there, and FileExistsError when ``--out``
        appeared (and is not empty) while the run wrote, without ``overwrite``.
        """
        assert self.path is not None, "put_in_place before create"
        stage, out = self.path, Path(os.path.realpath(self.out))
        names = sorted(os.listdir(stage), key=lambda n: (n == "summary.json", n))  # the list of the run, last
        if not os.path.lexists(out):
            os.chmod(stage, 0o777 & ~current_umask())  # mkdtemp's 0700 would make the folder private
            try:
                os.rename(stage, out)
            except OSError:
                if not out.is_dir():  # not a folder made meanwhile by someone else: a real failure
                    raise
            else:
                self.path = None
                return []
        if not overwrite and _entries(out):  # --out appeared while this run wrote: never written over unasked
            raise FileExistsError(f"--out {self.out} appeared and was filled while this run wrote; nothing is "
                                  "overwritten without --overwrite")
        for name in names:
            if (out / name).is_dir() and not (out / name).is_symlink():
                raise IsADirectoryError(f"--out {self.out} holds a folder named {name}, where this run writes a file; "
                                        "expected a file or nothing of that name")
        for name in names:
            _move_into(stage / name, out / name)
        removed = []
        for name in sorted(earlier - set(names)):  # after every new file is in place: a failure above removed nothing
            if os.path.lexists(out / name) and not (out / name).is_dir():
                (out / name).unlink()
                removed.append(name)
        self.discard()
        return removed

    def discard(self) -> None:
        """Remove the temporary folder and what it holds (a run that failed or was stopped)."""
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None


def _move_into(source: Path, target: Path) -> None:
    """``os.replace(source, target)``; across mount points (EXDEV: a bind mount of the same file system,
    which a device check does not see) a copy beside ``target``, then a rename in its folder."""
    import errno

    try:
        os.replace(source, target)
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
        tmp = target.with_name(f".{target.name}.dynsnip-explain.partial")
        shutil.copy2(source, tmp)
        os.replace(tmp, target)
        source.unlink()


def _same_file_system(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


def _left_as_it_was(out: Path) -> str:
    """What a run that writes nothing leaves of ``out``, as its error message ends."""
    if not os.path.lexists(out):
        return f"nothing is written (--out {out} is not created)"
    if _explain_outputs(out):
        return f"the earlier explanation in {out} is left as it was"
    return f"nothing is written into {out}"


def _refused_out(out: Path) -> str:
    """Why a non-empty ``out`` is refused without ``--overwrite``, saying what is in it."""
    message = (f"--out {out} already exists and is not an empty directory; nothing is overwritten: "
               "choose another --out or pass --overwrite")
    outputs = _explain_outputs(out)
    if outputs and "summary.json" not in outputs:
        message += (f" (it holds {', '.join(outputs)} but no summary.json: the partial output of an explain run that "
                    "did not finish; --overwrite replaces those files)")
    return message


def run(args: argparse.Namespace) -> int:
    """``dynsnip explain``: Ctrl-C and SIGTERM stop it alike, leaving ``--out`` as it was (module docstring)."""
    staging = _Staging(args.out)
    with StopSignals() as signals:  # SIGTERM (a scheduler's stop, docker stop) as Ctrl-C
        try:
            return _run(args, staging, signals)
        except KeyboardInterrupt:
            staging.discard()
            print(f"dynsnip explain: interrupted ({signals.name}); {_left_as_it_was(args.out)}", file=sys.stderr)
            return signals.exit_code
        finally:
            staging.discard()  # a failure or an error: no temporary folder stays behind


def _run(args: argparse.Namespace, staging: _Staging, signals: StopSignals) -> int:
    """The command's work: checks, model, video, explanation, all written into ``staging`` and put in
    place in ``--out`` at the end (after ``signals.shield()``, so a signal cannot cut that halfway).
    Every error after ``--out`` was checked says, with ``--overwrite``, that ``--out`` is left as it was."""
    started = False  # whether --out was checked: errors after it say what is left of --out

    def usage_error(message: str) -> int:
        left = f"; {_left_as_it_was(args.out)}" if started and args.overwrite else ""
        return _usage_error("explain", message + left)

    def video_failed(message: str) -> int:
        print(f"dynsnip explain: {message}" + (f"; {_left_as_it_was(args.out)}" if args.overwrite else ""),
              file=sys.stderr)
        return EXIT_VIDEO_FAILED

    if args.snippets is not None and args.snippets < 1:
        return usage_error(f"--snippets must be at least 1, got {args.snippets}")
    if problem := (face_options_problem(args) or detect_device_problem(args, in_process=True)
                   or device_problem(args.device)):
        return usage_error(problem)
    if args.dpi < 10:
        return usage_error(f"--dpi must be at least 10, got {args.dpi}")
    if args.track is not None and args.faces != "all":
        return usage_error("--track picks one of the face tracks of --faces all")
    if args.out.exists() and not args.out.is_dir():
        return usage_error(f"--out {args.out} is a file, expected a folder (created if missing); --overwrite replaces "
                           "the files of an earlier explain run inside a folder, never a file given as --out")
    if os.path.islink(args.out) and not args.out.exists():
        return usage_error(f"--out {args.out} is a link to nothing ({os.readlink(args.out)}); expected a folder or a "
                           "link to one")
    if args.out.exists() and _entries(args.out) and not args.overwrite:
        return usage_error(_refused_out(args.out))
    started = True
    try:
        from dynsnip.data._optional import require_video_decoding
        from dynsnip.explain import explain_clip, save_figures
        from dynsnip.explain._optional import require

        require_video_decoding()  # fails here without the video extra
        require("matplotlib")
        if not args.no_gradcam:
            require("pytorch_grad_cam")
        faces = face_detector(args)
    except ImportError as err:
        return usage_error(str(err))

    from .predict import open_detector

    model, weights = open_detector("explain", args.model, args.checkpoint)
    if model is None:
        return usage_error(weights)

    bad_layer = _unknown_layer(model, args.intra_layer, IntraSIM) or _unknown_layer(model, args.inter_layer, InterSIM)
    if bad_layer:
        return usage_error(bad_layer)
    if args.cam_layer is not None and args.cam_layer not in dict(model.named_modules()):
        return usage_error(f"--cam-layer {args.cam_layer}: the model has no module of that name (e.g. layer4.1, layer4.0.sim)")
    # a --cam-layer that exists but never runs as a module in the forward (layer4.0.sim.sma, called through
    # its Intra-SIM's methods) is found by explain_clip, whose ValueError names layers that do run: exit 2 below
    try:
        stage = staging.create()  # before the work: a folder that cannot be written is said at once
    except OSError as err:
        return usage_error(f"--out {args.out}: cannot write there ({err}); expected a folder that can be created or "
                           "written in")

    from dynsnip.data.errors import VideoError
    from dynsnip.engine.failures import NON_FINITE_OUTPUT, NonFiniteError, non_finite_input

    device = resolve_device(args.device)
    model.to(device)
    loader = clip_loader(model, args, faces)
    video = track_probs = deciding = None
    try:
        if args.faces == "all" and faces is not None:
            video = loader.load_tracks(args.video)
            track_probs = _score_tracks(model, video, device)
            deciding = max(track_probs, key=lambda t: (track_probs[t], -t))
            explained = deciding if args.track is None else args.track
            if explained not in video.clips:
                return usage_error(f"--track {args.track}: no such scored face track in {args.video} (scored: "
                                   f"{', '.join(map(str, sorted(video.clips)))}; all: "
                                   f"{', '.join(f'{t.id} ({t.status})' for t in video.tracks)})")
            clip = video.clips[explained]
        else:
            clip = loader(args.video)
        if (bad := non_finite_input(clip.pixels)) is not None:
            raise bad
    except (VideoError, NonFiniteError) as err:
        return video_failed(f"{err.reason}: {err}")
    capped = _capped_snippets_note(clip, loader)
    if capped:
        print(f"dynsnip explain: note: {args.video}: {capped}", file=sys.stderr)

    try:
        exp = explain_clip(
            model,
            clip.pixels,
            target=args.target,
            gradcam=not args.no_gradcam,
            target_layer=args.cam_layer,
            mean=loader.mean,
            std=loader.std,
            frame_indices=clip.frame_indices,
            face_found=clip.face_found,
            intra_layer=_first_layer(args.intra_layer),
            inter_layer=_first_layer(args.inter_layer),
        )
        if video is not None and clip.track != deciding:  # another face than the one that decides the verdict
            exp.subject = f"face track {clip.track}"
        if weights.startswith("untrained"):  # on every picture and in summary.json: they travel without stderr
            exp.caveat = UNTRAINED_CAVEAT
        probabilities = [exp.fake_prob, *([] if exp.snippet_probs is None else [float(p) for p in exp.snippet_probs])]
        if not all(math.isfinite(p) for p in probabilities):
            return video_failed(f"{NON_FINITE_OUTPUT}: {args.video}: the model's fake probability is {exp.fake_prob}; "
                                "expected a finite number (NaN / inf weights, or a config.json whose mean / std are "
                                "wrong); nothing is written for a score that is not one")
        files = save_figures(
            exp, stage, intra_layers=_layers(args.intra_layer), inter_layers=_layers(args.inter_layer), dpi=args.dpi
        )
    except NonFiniteError as err:  # the model's output: a failed video, not a usage error
        return video_failed(f"{err.reason}: {args.video}: {err}; nothing is written for a score that is not one")
    except ValueError as err:  # e.g. an --intra-layer the model does not have, a --cam-layer that never runs
        return usage_error(str(err))
    tracks = None
    if video is not None:
        files["tracks"] = stage / "tracks.png"
        _tracks_picture(args, video, track_probs, deciding, clip.track, exp.caveat).savefig(files["tracks"],
                                                                                            dpi=args.dpi)
        tracks = dict(deciding_track=deciding, explained_track=clip.track,
                      video_fake_probability=round(track_probs[deciding], 6),
                      tracks=[_track_entry(t, video, track_probs) for t in video.tracks])
    files["explanation"] = stage / "explanation.npz"
    exp.save(files["explanation"])
    files["summary"] = stage / "summary.json"
    summary = _summary(exp, clip, args, weights, files, tracks)
    summary["contact_sheet"] = _contact_sheet_entry(exp, args)
    if capped:
        summary["snippets_note"] = capped
    files["summary"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")

    earlier = _earlier_run_files(args.out) if args.overwrite else set()
    signals.shield()  # all written: putting it in place must not be cut halfway by a signal
    try:
        removed = staging.put_in_place(earlier, overwrite=args.overwrite)
    except FileExistsError as err:
        return usage_error(str(err))
    except OSError as err:
        print(f"dynsnip explain: error: could not put the explanation in place in --out {args.out}: {err}",
              file=sys.stderr)
        return EXIT_VIDEO_FAILED
    for name in removed:  # --overwrite: no picture of another run stays
        print(f"dynsnip explain: removed {args.out / name} (written by the earlier explain run in --out; this run "
              "writes no such file)", file=sys.stderr)
    for note in exp.notes:
        print(f"dynsnip explain: note: {note}", file=sys.stderr)
    probs = "" if exp.snippet_probs is None else " (snippets: " + ", ".join(f"{p:.3f}" for p in exp.snippet_probs) + ")"
    if video is not None:
        print(f"{args.video}: {len(video.clips)} face track(s) scored: "
              + ", ".join(f"{'*' if t == deciding else ''}track {t} p(fake) = {p:.3f}" for t, p in track_probs.items())
              + f"; explaining track {clip.track}")
    if exp.subject == "video":
        print(f"{args.video}: p(fake) = {exp.fake_prob:.3f}{probs}")
    else:  # --track: the face explained is not the one whose probability is the video's
        print(f"{args.video}: video p(fake) = {track_probs[deciding]:.3f} (track {deciding}, the most suspicious face, "
              f"decides it); explained {exp.subject}: p(fake) = {exp.fake_prob:.3f}{probs}")
    for path in files.values():
        print(f"wrote {args.out / path.name}")
    if signals.received is not None:  # came while the finished outputs were put in place: they are whole
        print(f"dynsnip explain: note: {signals.name} came after the explanation was complete; it is written whole",
              file=sys.stderr)
    return EXIT_OK
