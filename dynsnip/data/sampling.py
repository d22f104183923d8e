"""Which frames form the snippets: U snippets of T consecutive frames spread over a video.

Paper ("Intra-Snippet Inconsistency Module" and "Implementation Details"): the video is
sampled "uniformly into U snippets, each of which contains T successive frames"; U=4,
T=4 for training and U=8, T=4 for inference. The paper does not spell out the offsets
inside each part of the video; this module uses the segment scheme of TSN-style video
samplers, which is what "uniformly" means there:

* the video's ``N`` frames are cut into ``U`` equal segments (segment ``u`` starts at
  frame ``floor(u * N / U)`` and is at least ``floor(N / U)`` frames long);
* evaluation (``train=False``): each snippet sits in the middle of its segment, so the
  result depends on ``N``, ``U`` and ``T`` only;
* training (``train=True``): each snippet starts at a random offset inside its segment
  (independently per segment, uniform over every start the segment holds, the last one
  included when the segment is a frame longer than the shortest), never crossing into the
  next segment.

Short videos (``N < U * T``, the segments cannot hold a whole snippet each), policy
``short_video="overlap"`` (default): snippets keep ``T`` *consecutive* frames and their
starts are spread evenly over ``[0, N - T]`` (rounded), so neighbouring snippets
overlap; training sampling is deterministic there because there is no slack. A video
with fewer than ``T`` frames holds no snippet at all and is a failure under either policy
(:class:`~dynsnip.data.errors.TooShortVideoError`, reason ``too_short``): filling a snippet by
repeating frames would show the model a standstill the video does not have, and its verdict
would be about frames that were never filmed. ``short_video="error"`` raises ``ValueError`` for
any ``N < U * T``.

A video of ``N`` frames holds only ``N - T + 1`` different snippets
(:func:`distinct_snippets`); asking for more repeats snippets, which costs memory and time
and adds nothing. Scoring a single video (``dynsnip predict``) therefore caps U there
(``FaceClipLoader(cap_snippets=True)``), and says so in its report.
"""
from __future__ import annotations

from typing import Any, Callable, Literal

import torch

from .errors import TooShortVideoError

ShortVideoPolicy = Literal["overlap", "error"]


def distinct_snippets(num_frames: int, snippet_len: int) -> int:
    """How many different snippets of ``snippet_len`` consecutive frames ``num_frames`` frames
    hold: ``N - T + 1``, and 1 for a video shorter than a snippet."""
    return max(int(num_frames) - int(snippet_len) + 1, 1)


def too_short_error(source: Any, num_frames: int, snippet_len: int, note: str = "") -> TooShortVideoError:
    """The ``too_short`` failure of ``source`` (a video or frame folder) with ``num_frames`` frames, fewer than
    one snippet of ``snippet_len``: the same message wherever it is found (``predict``, ``extract-faces``);
    ``note`` is added after the frame count (which frames were counted)."""
    return TooShortVideoError(
        source,
        f"{num_frames} frame(s){note}, fewer than the T = {snippet_len} consecutive frames of one snippet; expected "
        f"at least {snippet_len} frames (a snippet filled with repeated frames would show the model motion the video "
        "does not have)",
    )


def sample_snippets(
    num_frames: int,
    num_snippets: int,
    snippet_len: int,
    *,
    train: bool = False,
    generator: torch.Generator | None = None,
    short_video: ShortVideoPolicy = "overlap",
    align: int | None = None,
    source: object = None,
) -> torch.Tensor:
    """Frame indices of ``num_snippets`` snippets of ``snippet_len`` consecutive frames.

    Args:
        num_frames: frames in the video (N), at least 1.
        num_snippets: snippets to sample (U), at least 1.
        snippet_len: consecutive frames per snippet (T), at least 1.
        train: random offset inside each segment (True) or the segment's middle (False).
        generator: random source for ``train=True`` (``None``: torch's global one).
        short_video: what to do when ``num_frames < num_snippets * snippet_len``, see the
            module docstring.
        align: the face detector's ``detect_every`` (k). For evaluation (``train=False``)
            with k > T, each snippet moves from its segment's middle to the nearest start
            (inside the segment, the earlier on ties) whose snippet holds a frame index that
            is a multiple of k, where the segment has one: the crop policy then detects once
            per snippet instead of on the looked-at frames before and after it
            (:mod:`dynsnip.data.faces.crop_policy`). None, or k <= T (every snippet holds one): no change.
        source: the video or frame folder, named by the error of a video too short for a snippet.

    Returns:
        int64 tensor ``(U, T)``; row ``u`` holds snippet ``u``'s frame indices, rows in
        increasing time order.

    Raises:
        TooShortVideoError: ``num_frames < snippet_len`` (module docstring).
        ValueError: bad arguments; ``short_video="error"`` and ``num_frames < U * T``.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames} (the video has no frames)")
    if num_snippets < 1 or snippet_len < 1:
        raise ValueError(
            f"num_snippets and snippet_len must be >= 1, got {num_snippets} and {snippet_len}"
        )
    if num_frames < snippet_len:
        raise too_short_error("video" if source is None else source, num_frames, snippet_len)
    segment_len = num_frames // num_snippets
    if segment_len >= snippet_len:
        segment_starts = torch.arange(num_snippets + 1) * num_frames // num_snippets
        segment_starts, segment_ends = segment_starts[:-1], segment_starts[1:]
        slack = segment_len - snippet_len  # free frames inside the shortest segment
        if train:
            # each segment's own slack (segments differ by one frame when U does not divide N): a draw
            # from the shortest one's would never start a snippet on a longer segment's last free frame
            own_slack = segment_ends - segment_starts - snippet_len
            draws = torch.rand(num_snippets, generator=generator, dtype=torch.float64)
            offsets = (draws * (own_slack + 1)).long().clamp_(max=own_slack)
        else:
            offsets = torch.full((num_snippets,), slack // 2)
        starts = segment_starts + offsets
        if not train and align is not None and int(align) > snippet_len:
            starts = torch.tensor([
                _aligned_start(int(first), int(first) + slack, int(start), snippet_len, int(align))
                for first, start in zip(segment_starts, starts)
            ], dtype=torch.long)
    else:
        if short_video == "error":
            raise ValueError(
                f"video has {num_frames} frames, fewer than the {num_snippets} x {snippet_len} "
                f"= {num_snippets * snippet_len} needed for non-overlapping snippets"
            )
        if short_video != "overlap":
            raise ValueError(f"short_video must be 'overlap' or 'error', got {short_video!r}")
        last_start = max(num_frames - snippet_len, 0)
        starts = torch.linspace(0, last_start, num_snippets).round().long()
    return starts[:, None] + torch.arange(snippet_len)[None, :]


def first_jump(indices: Any, is_jump: Callable[[int, int], bool]) -> tuple[int, list[int], int, int] | None:
    """The first pair of neighbouring frames ``a, b`` of a snippet (a row of ``indices``, ``(U, T)``
    tensor, array or lists) that ``is_jump(a, b)`` calls a jump (a gap in a frame folder's numbering,
    a cut in a video's timestamps), as ``(u, row, a, b)``; None when every snippet is consecutive.
    The check behind every ``check_consecutive`` (frame folders, videos, extract-faces folders)."""
    rows = indices.tolist() if hasattr(indices, "tolist") else [list(row) for row in indices]
    for u, row in enumerate(rows):
        for a, b in zip(row, row[1:]):
            if is_jump(a, b):
                return u, row, a, b
    return None


def _aligned_start(first: int, last: int, start: int, snippet_len: int, align: int) -> int:
    """The start in ``[first, last]`` nearest ``start`` (the earlier on ties) whose snippet of
    ``snippet_len`` frames holds a multiple of ``align``; ``start`` when there is none."""
    candidates = [s for s in range(first, last + 1) if (s + snippet_len - 1) // align * align >= s]
    return min(candidates, key=lambda s: (abs(s - start), s)) if candidates else start
