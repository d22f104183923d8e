"""The face tracks of a video on its frames: which faces were followed, scored or dropped.

:func:`tracks_figure` draws, on a few frames spread over the video, the box of every face
track detected there: scored tracks in the colours of Figure 5 (red when the track's fake
probability is >= 0.5, blue otherwise) with their id and probability, the track that
decides the video's verdict (its most suspicious face) with a thick border and a star,
tracks that were not scored (too few frames with the face) in grey, and dropped tracks
(``static``: a photo on the wall; ``short``: a passer-by) in dashed grey with the reason.
Drawn with the Agg renderer, never through ``pyplot`` (see :mod:`dynsnip.explain.figures`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ._optional import require
from .figures import FAKE_COLOUR, REAL_COLOUR, THRESHOLD, _mpl, fit_title

if TYPE_CHECKING:
    from matplotlib.figure import Figure

np = require("numpy")

UNSCORED_COLOUR = "#7f7f7f"
MAX_FRAMES = 4


def shown_frames(tracks: Sequence[Any], count: int = MAX_FRAMES) -> list[int]:
    """Up to ``count`` looked-at frames, spread over the tracks' span, preferring frames where
    the most tracks are detected (so that the faces are seen together)."""
    frames = sorted({f for t in tracks for f in t.frames})
    if len(frames) <= count:
        return frames
    seen = {f: sum(f in t.frames for t in tracks) for f in frames}
    bins = np.array_split(np.array(frames), count)
    return [int(max(part.tolist(), key=lambda f: (seen[f], -abs(f - part[len(part) // 2])))) for part in bins]


def tracks_figure(
    frames: Mapping[int, "np.ndarray"],
    tracks: Sequence[Any],
    probabilities: Mapping[int, float],
    deciding: int | None,
    title: str = "",
) -> "Figure":
    """Every track's box on each of ``frames`` (``{frame index: (H, W, 3) uint8}``).

    Args:
        tracks: the video's :class:`~dynsnip.data.faces.tracks.FaceTrack` s, kept and dropped.
        probabilities: fake probability of each scored track.
        deciding: the track whose probability is the video's (marked), or None.
    """
    from matplotlib.patches import Rectangle

    indices = sorted(frames)
    first = frames[indices[0]]
    aspect = first.shape[1] / first.shape[0]
    fig = _mpl()(figsize=(min(4.0 * len(indices), 16), 4.0 / aspect + 1.0), layout="constrained")
    axes = fig.subplots(1, len(indices), squeeze=False)[0]
    for ax, index in zip(axes, indices):
        ax.imshow(frames[index])
        ax.set_title(f"frame {index}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        for track in tracks:
            if index not in track.frames:
                continue
            x0, y0, x1, y1 = track.rows[track.frames.index(index), :4]
            if track.id in probabilities:
                p = probabilities[track.id]
                colour = FAKE_COLOUR if p >= THRESHOLD else REAL_COLOUR
                label = f"{'* ' if track.id == deciding else ''}track {track.id}: p(fake) {p:.3f}"
                style, width = "solid", 3.5 if track.id == deciding else 1.5
            elif track.kept:
                colour, label, style, width = UNSCORED_COLOUR, f"track {track.id}: not scored", "solid", 1.5
            else:
                colour, label, style, width = UNSCORED_COLOUR, f"track {track.id}: dropped ({track.status})", "dashed", 1.5
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=width,
                                   linestyle=style))
            ax.text(x0, max(y0 - 2, 0), label, color="white", fontsize=7, va="bottom",
                    bbox=dict(facecolor=colour, edgecolor="none", pad=1, alpha=0.85))
    legend = (f"red: p(fake) >= {THRESHOLD}, blue: < {THRESHOLD}; * thick: the track that decides the verdict; "
              "grey: not scored (face in too few frames); dashed: dropped (static: never moves, a photo; "
              "short: seen on too few frames)")
    fig.suptitle(fit_title(fig, (title + "\n" if title else "") + legend, 8), fontsize=8)  # wrapped to the figure
    return fig
