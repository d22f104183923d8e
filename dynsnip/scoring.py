"""Fake probabilities of face clips and videos, per video and per snippet: the library
behind ``dynsnip predict``.

:func:`predict_videos` turns video files into result entries (the ``videos`` of
``dynsnip predict --json``); a video that cannot be read becomes an entry with
``status: "error"`` and the reason, so one bad file never stops the others. Fail closed: a
clip with NaN / inf pixels is not scored (``non_finite_input``) and a NaN / inf output is
a failure (``non_finite_output``), never a probability or a verdict.
:func:`score_clip` is the forward pass that gives the video logit and the U snippet logits
together; :func:`fake_probability` reads a one-logit or two-logit head.

Layout: clips ``(B, 3, U*T, H, W)``, frames ordered snippet by snippet.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch

from .engine.evaluate import progress_bar
from .engine.failures import NON_FINITE_OUTPUT, UNREADABLE, NonFiniteError, failed_item, non_finite_input

__all__ = ["predict_videos", "score_clip", "fake_probability", "score_face_clip", "score_tracks", "load_clips",
           "failure", "PredictionInterrupted", "DEFAULT_WORKERS", "FACES", "VIDEO_SCORES"]

# Decoding and face detection take a large share of the time (most of it next to a GPU); two
# loader processes working ahead of the model gave 1.2-1.3x on 2 CPU cores
# (benchmarks/predict_throughput.py, docs/video.md).
DEFAULT_WORKERS = 2
# tqdm options of a bar over videos: shown only when stderr is a terminal
VIDEO_BAR = dict(unit="video", leave=True, disable=None)
# which faces of a video are scored: every face track (default), or the largest face as before tracks
FACES = ("all", "largest")
# how the tracks' scores make the video's: the most suspicious face (default), or their mean
VIDEO_SCORES = ("max", "mean")


class PredictionInterrupted(KeyboardInterrupt):
    """Ctrl-C (or another KeyboardInterrupt) while :func:`predict_videos` ran: ``results`` holds the
    entries of the videos finished before it, in order, and ``not_scored`` the paths it did not
    finish (the one in progress first). A KeyboardInterrupt still: code that does not know it stops
    as before; ``dynsnip predict`` reports what was scored, marked interrupted."""

    def __init__(self, results: list[dict[str, Any]], not_scored: list[Path]) -> None:
        super().__init__(f"interrupted after {len(results)} of {len(results) + len(not_scored)} videos")
        self.results = results
        self.not_scored = not_scored


def predict_videos(
    model: torch.nn.Module,
    videos: Iterable[str | os.PathLike[str]],
    *,
    loader: Any = None,
    threshold: float = 0.5,
    workers: int = DEFAULT_WORKERS,
    device: str | torch.device | None = None,
    progress: bool = False,
    faces: str = "all",
    video_score: str = "max",
) -> list[dict[str, Any]]:
    """Score video files with a detector; one result entry per video, in order.

    Args:
        model: a DIL detector (one fake logit, or two: real, fake); put in eval mode.
        videos: video file paths (or one path).
        loader: turns a path into a :class:`~dynsnip.data.FaceClip`; default
            ``FaceClipLoader.from_model(model)`` (the model's input size, mean/std, T and test
            U, dlib face crops). Needs the ``video`` extra.
        threshold: fake probability at or above which the verdict is ``"fake"``.
        workers: processes decoding and cropping videos ahead of the model (0: none).
        device: where the model runs (default: where its parameters are).
        progress: a tqdm bar on stderr.
        faces: ``"all"``: every face track of the video is scored (:meth:`FaceClipLoader.load_tracks`,
            :func:`score_tracks`); ``"largest"``: the largest face only, as before tracks. A
            loader without a face detector crops whole frames either way.
        video_score: with ``faces="all"``, the video's probability: ``"max"``, that of its most
            suspicious track, or ``"mean"`` over its scored tracks.

    Raises:
        PredictionInterrupted: on Ctrl-C, with the entries of the videos finished before it.

    Returns:
        per video ``{"path", "status": "ok", "fake_probability", "verdict", "num_frames",
        "fps", "snippets": [...]}`` (see :func:`score_face_clip`; with ``faces="all"`` also
        ``"tracks"`` and ``"deciding_track"``, see :func:`score_tracks`) or ``{"path",
        "status": "error", "reason", "error"}`` (see :func:`failure`).
    """
    if faces not in FACES:
        raise ValueError(f"faces must be one of {FACES}, got {faces!r}")
    if video_score not in VIDEO_SCORES:
        raise ValueError(f"video_score must be one of {VIDEO_SCORES}, got {video_score!r}")
    if loader is None:
        from .data import FaceClipLoader

        loader = FaceClipLoader.from_model(model)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    if isinstance(videos, (str, os.PathLike)):  # one video, not a sequence of characters
        videos = [videos]
    paths = [Path(v) for v in videos]
    # a loader without face tracks (a custom callable) gives one clip per video: scored as one face
    tracked = faces == "all" and hasattr(loader, "load_tracks") and getattr(loader, "face_detector", None) is not None
    clips = progress_bar(load_clips(paths, loader, workers, tracks=tracked), len(paths), "videos", progress,
                         **VIDEO_BAR)
    results: list[dict[str, Any]] = []
    try:
        for path, clip, failed_load in clips:
            if failed_load is not None:
                results.append(failed_load)
                continue
            try:
                if tracked:
                    results.append(score_tracks(model, clip, path, threshold, device, video_score))
                    continue
                if (bad := non_finite_input(clip.pixels)) is not None:
                    raise bad
                results.append(score_face_clip(model, clip, path, threshold, device))
            except Exception as err:  # one bad video must not stop the others: report it, go on
                results.append(failure(path, err))
    except KeyboardInterrupt:  # what was scored is kept: one entry per finished video, in order
        raise PredictionInterrupted(results, paths[len(results):]) from None
    return results


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


class _LoadedClips:
    """``paths[i] -> (path, FaceClip or None, failure dict or None)``, as a map-style dataset
    for worker processes: a video that cannot be read becomes its failure, so one bad file
    never stops the others."""

    def __init__(self, paths: Sequence[Path], loader: Any, tracks: bool = False) -> None:
        self.paths, self.loader, self.tracks = list(paths), loader, tracks

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Path, Any, dict[str, Any] | None]:
        path = self.paths[index]
        try:
            return path, (self.loader.load_tracks(path) if self.tracks else self.loader(path)), None
        except Exception as err:  # reported with its reason in the results
            return path, None, failure(path, err)


def _as_is(item: Any) -> Any:
    return item


def _loader_ignores_sigterm(worker_id: int) -> None:
    """A loader process ignores SIGTERM: a stop sent to the whole process group (a scheduler,
    ``kill -TERM -PGID``) is the main process's to handle (``dynsnip predict`` keeps what was
    scored, and ending the loaders is then DataLoader's); a loader ended by it would instead
    be reported as a failure of the video being scored. It still ends with the main process."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def load_clips(paths: Sequence[Path], loader: Any, workers: int,
               tracks: bool = False) -> Iterator[tuple[Path, Any, dict[str, Any] | None]]:
    """Yield ``(path, clip, failure)`` in the order of ``paths``; with ``workers`` > 0 the
    videos are decoded and cropped in that many processes, ahead of the model. ``tracks``:
    every face (``loader.load_tracks``, a :class:`~dynsnip.data.VideoTracks` per video)
    instead of the largest one.

    If the worker processes die (a decoder crash, or too little shared memory for the clips,
    as in a container with a small ``/dev/shm``), a warning says so and the remaining videos
    are loaded in this process: nothing already scored is lost, nothing is skipped.
    """
    dataset = _LoadedClips(paths, loader, tracks)
    done = 0
    if workers > 0 and len(paths) > 1:
        batches = torch.utils.data.DataLoader(
            dataset, batch_size=None, shuffle=False, num_workers=min(workers, len(paths)),
            collate_fn=_as_is, prefetch_factor=2, worker_init_fn=_loader_ignores_sigterm,
        )
        try:
            for item in batches:
                yield item
                done += 1
            return
        except RuntimeError as err:  # DataLoader: "worker (pid N) exited unexpectedly" and the like
            warnings.warn(
                f"the {workers} video loader process(es) failed after {done} of {len(paths)} videos "
                f"({str(err).splitlines()[0]}); loading the other videos in this process (--workers 0 "
                "avoids the processes; in a container, a larger /dev/shm lets them work)",
                RuntimeWarning, stacklevel=2,
            )
    for index in range(done, len(dataset)):
        yield dataset[index]


# decimals of the probabilities a report gives (the verdict is taken on the unrounded value)
REPORTED_DECIMALS = 4


def reported_probability(probability: float, threshold: float, decimals: int = REPORTED_DECIMALS) -> float:
    """``probability`` rounded to ``decimals`` for a report, on the same side of ``threshold`` as the value.

    The verdict is taken on the unrounded probability (``probability >= threshold``: fake). The
    nearest rounding can cross the threshold (0.49996 reads 0.5 at threshold 0.5, a "real" verdict;
    0.509048 reads 0.509 at threshold 0.50903, a "fake" one), so that the report would contradict its
    own verdict. There the value is rounded toward its own side instead (0.4999, 0.5091): the reported
    probability is within ``10**-decimals`` of the true one, and ``reported >= threshold`` holds
    exactly when the verdict is fake. (Should float rounding of ``probability * 10**decimals`` still
    land on the wrong side, the nearest value is returned: the verdict follows the unrounded value
    whatever is reported.)
    """
    import math

    nearest = round(probability, decimals)
    fake = probability >= threshold
    if (nearest >= threshold) == fake:
        return nearest
    scale = 10 ** decimals
    directed = (math.ceil(probability * scale) if fake else math.floor(probability * scale)) / scale
    return directed if (directed >= threshold) == fake else nearest


def _verdict(probability: float, threshold: float) -> str:
    """``"fake"`` at or above ``threshold``, else ``"real"``: always on the unrounded probability."""
    return "fake" if probability >= threshold else "real"


def score_tracks(model: Any, video: Any, path: Path, threshold: float, device: Any,
                 video_score: str = "max") -> dict[str, Any]:
    """The result entry of every face of a video (``video``: a :class:`~dynsnip.data.VideoTracks`).

    Each scored track (a kept track whose face is in enough of the snippets' looked-at
    frames) is scored like a single face (:func:`score_face_clip`, the same U snippets). The
    video's ``fake_probability`` is the largest track probability (``video_score="max"``: the
    most suspicious face decides, ``deciding_track``) or their mean (``"mean"``:
    ``deciding_track`` is None). The deciding track, the video's probability and the verdict are
    taken on the unrounded track probabilities (as ``dynsnip explain`` picks the face it explains);
    every reported probability is rounded to 4 decimals on its side of ``threshold``
    (:func:`reported_probability`), so a track's and the video's reported value never contradict
    the verdict. The top-level ``face_coverage``, ``frames_checked``,
    ``frames_with_face`` and ``snippets`` are those of the most suspicious track
    (``snippets_track``), so readers of single-face reports find what they expect. ``partial`` is
    True when a kept track could not be scored and scoring it could change the verdict (a "real"
    verdict, or any ``"mean"``): the verdict stands, flagged, and ``predict`` exits with 1. ``tracks``
    lists every track: ``id``, ``status`` (``scored``; ``low_face_coverage`` (not scored);
    ``short`` / ``static`` (dropped, with the rule in ``dropped``)), ``first_frame`` /
    ``last_frame`` / ``detections`` (looked-at frames with the face), ``box`` (median box, side
    and centre ranges), and for kept tracks ``face_coverage``, ``frames_checked``,
    ``frames_with_face``, for scored ones ``fake_probability`` and ``snippets``.

    Raises:
        NonFiniteError: a track's clip or output is not finite (the whole video fails closed).
    """
    if video_score not in VIDEO_SCORES:
        raise ValueError(f"video_score must be one of {VIDEO_SCORES}, got {video_score!r}")
    scored: dict[int, dict[str, Any]] = {}
    probabilities: dict[int, float] = {}  # unrounded: the deciding track and the verdict are taken on these
    for track_id, clip in sorted(video.clips.items()):
        if (bad := non_finite_input(clip.pixels)) is not None:
            raise bad
        scored[track_id], probabilities[track_id] = _score_face_clip(model, clip, path, threshold, device)
    # as dynsnip explain picks the face it explains: the largest unrounded probability, the lowest id on a tie
    suspicious = max(probabilities, key=lambda track_id: (probabilities[track_id], -track_id))
    if video_score == "max":
        raw = probabilities[suspicious]
    else:
        raw = sum(probabilities.values()) / len(probabilities)
    probability = reported_probability(raw, threshold)
    tracks = []
    for track in video.tracks:
        item = track.summary()
        if track.id in scored:
            entry = scored[track.id]
            item.update(status="scored", face_coverage=entry["face_coverage"], frames_checked=entry["frames_checked"],
                        frames_with_face=entry["frames_with_face"], frames_scored=entry["frames_scored"],
                        frames_showing_face=entry["frames_showing_face"],
                        fake_probability=entry["fake_probability"], snippets=entry["snippets"])
        elif track.id in video.failures:
            err = video.failures[track.id]
            item.update(status=err.reason, face_coverage=round(err.coverage, 4), not_scored=err.message)
        tracks.append(item)
    top = scored[suspicious]
    unscored = sorted(video.failures)
    verdict = _verdict(raw, threshold)
    # a face seen but not scored could change a "real" verdict, or any mean: the verdict is partial
    partial = bool(unscored) and (verdict == "real" or video_score == "mean")
    note = {}
    if unscored:  # never a silent verdict: say which faces it is not about
        note["tracks_note"] = (f"track(s) {', '.join(map(str, unscored))} not scored (face in too few of the frames looked "
                               f"at); the verdict is about track(s) {', '.join(map(str, sorted(scored)))} only"
                               + ("; scored, they could change it (a partial verdict)" if partial else
                                  "; a face not scored cannot lower the most suspicious face's score"))
    return dict(
        path=str(path),
        status="ok",
        fake_probability=probability,
        verdict=verdict,
        partial=partial,
        num_frames=top["num_frames"],
        fps=top["fps"],
        face_coverage=top["face_coverage"],
        frames_checked=top["frames_checked"],
        frames_with_face=top["frames_with_face"],
        frames_scored=top["frames_scored"],
        frames_showing_face=top["frames_showing_face"],
        snippets=top["snippets"],
        faces="all",
        video_score=video_score,
        deciding_track=suspicious if video_score == "max" else None,
        snippets_track=suspicious,
        scored_tracks=sorted(scored),
        frames_looked_at=video.frames_looked_at,
        tracks=tracks,
        **note,
    )


def score_face_clip(model: Any, clip: Any, path: Path, threshold: float, device: Any) -> dict[str, Any]:
    """The result entry of ``clip`` (a :class:`~dynsnip.data.FaceClip` of the video at ``path``):
    its fake probability and verdict, and per snippet the frames, times, probability, whether
    a face was found and the crop box.

    The verdict compares the unrounded fake probability with ``threshold`` (``>=``: fake), as
    ``dynsnip explain`` colours it; the reported ``fake_probability`` is rounded to 4 decimals on the
    verdict's side of the threshold (:func:`reported_probability`: 0.49996 at threshold 0.5 is
    reported 0.4999, "real"), so the report never contradicts its verdict. Snippet probabilities
    are rounded the same way, so that each reads on the side of the threshold its unrounded value
    is on (as ``dynsnip explain`` colours the snippets).
    """
    return _score_face_clip(model, clip, path, threshold, device)[0]


def _score_face_clip(model: Any, clip: Any, path: Path, threshold: float, device: Any) -> tuple[dict[str, Any], float]:
    """:func:`score_face_clip`'s entry and the unrounded fake probability (for :func:`score_tracks`)."""
    import torch

    with torch.inference_mode():
        video_logits, snippet_logits = score_clip(model, clip.pixels[None].to(device))
    if not (torch.isfinite(video_logits).all() and torch.isfinite(snippet_logits).all()):
        raise NonFiniteError(
            NON_FINITE_OUTPUT,
            f"the model's output is not finite (video logits {video_logits[0].tolist()}); expected finite "
            "logits: the weights hold NaN / inf, the input overflowed, or config.json's mean / std are wrong",
        )
    # the verdict is the unrounded probability's, as in score_tracks and dynsnip explain: one video, one verdict,
    # whatever --faces; the reported value is rounded on the verdict's side of the threshold
    raw = float(fake_probability(video_logits)[0])
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
                fake_probability=reported_probability(prob, threshold),
                face_found=bool(clip.face_found[u]),
                **({} if getattr(clip, "snippet_showing", None) is None
                   else {"frames_showing_face": int(clip.snippet_showing[u])}),
                crop_box=clip.crop_boxes[u].tolist(),
            )
        )
    entry = dict(
        path=str(path),
        status="ok",
        fake_probability=reported_probability(raw, threshold),
        verdict=_verdict(raw, threshold),
        num_frames=clip.num_frames,
        fps=round(clip.fps, 3),
        face_coverage=round(clip.face_coverage, 4),
        frames_checked=clip.frames_checked,
        frames_with_face=clip.frames_with_face,
        frames_scored=getattr(clip, "frames_scored", 0),
        frames_showing_face=getattr(clip, "frames_showing_face", 0),
        snippets=snippets,
        **_several_faces_note(clip),
    )
    return entry, raw


def _several_faces_note(clip: Any) -> dict[str, str]:
    """``faces_note`` of a clip of the largest face (``--faces largest``) where the detector saw more
    than one face in a frame: the largest face need not be the same person in every snippet."""
    most = getattr(clip, "most_faces", 0)
    if getattr(clip, "track", None) is not None or most < 2:
        return {}
    return {"faces_note": (f"up to {most} faces in a frame looked at: the clip holds the largest face of each "
                           "snippet, which may be another person from one snippet to the next; --faces all "
                           "follows and scores each face")}


def failure(path: str | os.PathLike[str], err: BaseException) -> dict[str, Any]:
    """The result entry of a video that could not be scored: ``status: "error"``, the
    ``reason`` as training and evaluation report it (``not_found``, ``corrupt``,
    ``no_video_stream``, ``unseekable``, ``too_short``, ``frame_size_change``, ``frame_gap``, ``no_face``,
    ``low_face_coverage`` (with its
    ``face_coverage``), ``unreadable``, ``non_finite_input``, ``non_finite_output``; ``error``
    for anything else) and the message."""
    if isinstance(err, (*UNREADABLE, NonFiniteError)):
        failed = failed_item(0, str(path), err)
        entry = dict(path=str(path), status="error", reason=failed.reason, error=failed.message)
        if hasattr(err, "coverage"):  # low_face_coverage: the fraction it had
            entry["face_coverage"] = round(err.coverage, 4)
        if getattr(err, "tracks", None) is not None:  # every face track, none of them scorable
            entry["tracks"] = err.tracks
        return entry
    return dict(path=str(path), status="error", reason="error", error=f"{type(err).__name__}: {err}")
