"""The pictures of the paper's Figures 3-5 for an :class:`~dynsnip.explain.Explanation`.

* :func:`gradcam_figure` (Figure 3): the Grad-CAM over every sampled frame, one row per
  snippet;
* :func:`intra_figure` (Figure 4): for each snippet, its T face frames above the Intra-SMA
  map of one Intra-SIM;
* :func:`inter_figure` (Figure 5): the U x T face grid (border red where the snippet's fake
  probability is >= 0.5, blue otherwise) above the Inter-SIM U x T map, each cell labelled
  with its attention value and each row with its snippet's fake probability (the paper's
  picture prints a fake probability per cell and colours each frame's box: DIL has no
  per-frame probability, see docs/explain.md, "The U x T map and the paper's Figure 5");
* :func:`contact_sheet_figure`: all of it on one page: per snippet, the faces, Grad-CAM and
  Intra-SMA rows, with that snippet's row of the U x T map and its fake probability beside it.

Pictures do not overstate: the attention maps are drawn on a fixed 0..1 colour scale (their
values lie in (0, 1) by construction; ``scale="range"`` stretches them instead) and every
title prints the map's real range, so a flat map looks flat; probabilities get the digits
that tell them apart; every picture with coloured borders explains them; snippets whose
crop was borrowed (no face found in them) are marked "no face" with a dashed border; an
explanation's ``caveat`` (an untrained network) opens every title. Titles are wrapped to the
figure's width (:func:`fit_title`): a long layer name, subject or legend is never cut off.

Figures are :class:`matplotlib.figure.Figure` objects drawn with the Agg renderer, never
through ``pyplot``, so the caller's backend and open figures are untouched (they display
in a notebook like any figure). matplotlib is imported on first use
(``pip install 'dynsnip[explain]'``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

from ._optional import require
from .maps import Explanation

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

np = require("numpy")

TILE = 1.25  # inches per face tile
OVERLAY_CMAP = "jet"  # the paper's CAM colours
UT_CMAP = "YlGnBu"  # the paper's U x T map colours
FAKE_COLOUR, REAL_COLOUR = "#d62728", "#1f77b4"  # Figure 5: red boxes fake, blue real
THRESHOLD = 0.5
NO_FACE_STYLE = (0, (2, 2))  # dashed border: the snippet's crop was borrowed (no face found in it)
SCALES = ("fixed", "range")


def _mpl():
    """matplotlib's Figure class, with the Agg canvas (no pyplot, no GUI)."""
    require("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def new_figure(**kwargs) -> "Figure":
        fig = Figure(**kwargs)
        FigureCanvasAgg(fig)
        return fig

    return new_figure


# ----------------------------------------------------------------------------- tiles
def _tile(ax: "Axes", image: "np.ndarray", border: str | None = None, no_face: bool = False) -> None:
    ax.imshow(image, interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    if no_face and border is None:
        border = "grey"
    for spine in ax.spines.values():
        spine.set_visible(border is not None)
        if border is not None:
            spine.set_edgecolor(border)
            spine.set_linewidth(3)
            if no_face:
                spine.set_linestyle(NO_FACE_STYLE)


def _no_face(exp: Explanation, u: int) -> bool:
    return exp.face_found is not None and not bool(exp.face_found[u])


def _legend(exp: Explanation) -> str:
    """What the borders mean (every picture that draws them says it)."""
    parts = []
    if exp.snippet_probs is not None:
        parts.append(f"border: red = snippet p(fake) >= {THRESHOLD}, blue < {THRESHOLD}")
    if exp.face_found is not None and not np.all(exp.face_found):
        parts.append("dashed + 'no face' = no face found in the snippet, crop borrowed from another snippet")
    return "; ".join(parts)


def _scale(values: "np.ndarray", scale: str) -> tuple[float, float]:
    """Colour limits: ``fixed`` 0..1 (the maps' possible range), ``range`` the values' min..max."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    return (0.0, 1.0) if scale == "fixed" else _range(values)


def _range_text(values: "np.ndarray", scale: str) -> str:
    """``values 0.2489 .. 0.2513 (colours 0 .. 1)``: the real range, and what the colours span."""
    lo, hi = float(values.min()), float(values.max())
    digits = _decimals(lo, hi)
    colours = "colours 0 .. 1" if scale == "fixed" else "colours stretched to this range"
    return f"values {lo:.{digits}f} .. {hi:.{digits}f} ({colours})"


def _prob_text(exp: Explanation, p: float) -> str:
    """A probability with the digits that tell the clip's probabilities apart (3 to 5)."""
    probs = np.asarray(exp.snippet_probs if exp.snippet_probs is not None else [p], dtype=np.float64)
    distinct = np.unique(np.concatenate([probs, [exp.fake_prob]]))
    gap = np.diff(distinct).min() if len(distinct) > 1 else 1.0
    digits = int(min(5, max(3, np.ceil(-np.log10(max(gap, 1e-12))) + 1)))
    return f"{p:.{digits}f}"


def _overlay(ax: "Axes", image: "np.ndarray", heat: "np.ndarray", vmin: float, vmax: float, alpha: float = 0.5,
             border: str | None = None, no_face: bool = False):
    _tile(ax, image, border, no_face)
    return ax.imshow(heat, cmap=OVERLAY_CMAP, vmin=vmin, vmax=vmax, alpha=alpha, interpolation="bilinear")


def _border(exp: Explanation, u: int) -> str | None:
    if exp.snippet_probs is None:
        return None
    return FAKE_COLOUR if exp.snippet_probs[u] >= THRESHOLD else REAL_COLOUR


def _frame_label(exp: Explanation, u: int, t: int) -> str:
    if exp.frame_indices is not None:
        return f"#{int(exp.frame_indices[u, t])}"
    return f"t={t}"


def _snippet_label(exp: Explanation, u: int) -> str:
    label = f"snippet {u}"
    if exp.snippet_probs is not None:
        label += f"\np(fake)={_prob_text(exp, float(exp.snippet_probs[u]))}"
    if _no_face(exp, u):
        label += "\nno face"
    return label


def _range(values: "np.ndarray") -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    return (lo, hi) if hi > lo else (lo, lo + 1e-6)


def _decimals(lo: float, hi: float) -> int:
    """Decimals that tell the values of a map apart: 2, more when its range is narrow (max 4)."""
    spread = hi - lo
    if spread <= 0:
        return 2
    return int(min(4, max(2, np.ceil(-np.log10(spread)) + 1)))


def _title(exp: Explanation, what: str) -> str:
    """A picture's title: the caveat (if any), what it shows with the probability and U, T, the legend."""
    title = f"{what} — {exp.subject} p(fake) = {_prob_text(exp, exp.fake_prob)}  (U={exp.num_snippets}, T={exp.snippet_len})"
    legend = _legend(exp)
    return "\n".join(line for line in (exp.caveat, title, legend) if line)


# where a title line too wide breaks, tried in this order: between clauses, then inside one, then between words
_BREAKS = (re.compile(r"(?<=; )|(?<= — )"), re.compile(r"(?<=: )|(?<=, )|(?<=\) )"), re.compile(r"(?<= )"),
           re.compile(r"(?<=[/\\_.-])"), re.compile(r"(?<=.)(?=.)"))  # then a path at its separators, then anywhere


def fit_title(fig: "Figure", text: str, fontsize: float, margin: float = 0.02) -> str:
    """``text`` with each line wrapped to fit ``fig``'s width at ``fontsize`` (as rendered, not guessed).

    A line too wide for the figure breaks between clauses (after ``; `` or `` — ``) where that is
    enough, else inside one (after ``: ``, ``, ``, ``) ``), else between words, and a word too
    wide (a long video path) after ``/``, ``_``, ``.`` or ``-``, else anywhere; ``margin`` of the
    width is kept free on each side. A picture at the paper's T = 4 is about 7 inches wide,
    narrower than a title that names a layer, the range of its values, the subject's probability
    and the legend on one line.
    """
    from matplotlib.font_manager import FontProperties

    renderer = fig.canvas.get_renderer()
    font = FontProperties(size=fontsize)
    limit = fig.bbox.width * (1 - 2 * margin)

    def fits(line: str) -> bool:
        return renderer.get_text_width_height_descent(line, font, ismath=False)[0] <= limit

    def wrap(line: str, level: int) -> list[str]:
        if fits(line) or level == len(_BREAKS):
            return [line]
        lines = [""]
        for piece in (p for p in _BREAKS[level].split(line) if p):
            if lines[-1] and not fits(lines[-1] + piece.rstrip()):
                lines.append("")
            lines[-1] += piece
        return [part for line in lines for part in wrap(line.rstrip(), level + 1)]

    return "\n".join(part for line in text.split("\n") for part in wrap(line, 0))


def _suptitle(fig: "Figure", text: str, fontsize: float) -> None:
    """``fig.suptitle`` with the text wrapped to the figure (:func:`fit_title`)."""
    fig.suptitle(fit_title(fig, text, fontsize), fontsize=fontsize)


def _layer(name: str | None, available: dict, default: str | None, kind: str) -> str:
    name = name or default
    if not available:
        raise ValueError(f"this explanation has no {kind} maps (the model has no {kind.split('-')[0]}-SIM)")
    if name not in available:
        raise ValueError(f"no {kind} map {name!r}; available: {', '.join(available)}")
    return name


# ----------------------------------------------------------------------------- Figure 3
def gradcam_figure(exp: Explanation, alpha: float = 0.5) -> "Figure":
    """Grad-CAM overlaid on every frame: U rows (snippets) x T columns (frames)."""
    if exp.gradcam is None:
        raise ValueError("this explanation has no Grad-CAM (explain_clip(..., gradcam=False))")
    u_count, t_count = exp.num_snippets, exp.snippet_len
    fig = _mpl()(figsize=(TILE * t_count + 2.2, TILE * u_count + 0.9), layout="constrained")
    axes = fig.subplots(u_count, t_count, squeeze=False)
    for u in range(u_count):
        for t in range(t_count):
            f = u * t_count + t
            mappable = _overlay(axes[u, t], exp.frames[f], exp.gradcam[f], 0.0, 1.0, alpha,
                                _border(exp, u), _no_face(exp, u))
            axes[u, t].set_title(_frame_label(exp, u, t), fontsize=8)
        axes[u, 0].set_ylabel(_snippet_label(exp, u), fontsize=8)
    fig.colorbar(mappable, ax=axes, shrink=0.6, label=f"Grad-CAM ({exp.target})")
    _suptitle(fig, _title(exp, f"Grad-CAM of the {exp.target} score at {exp.target_layer} (scaled 0..1 per clip)"), 9)
    return fig


# ----------------------------------------------------------------------------- Figure 4
def intra_figure(exp: Explanation, layer: str | None = None, alpha: float = 0.5, scale: str = "fixed") -> "Figure":
    """Per snippet: its T faces above the Intra-SMA map of ``layer`` (default ``exp.intra_layer``).

    One colour scale for the whole clip: 0..1 (``scale="fixed"``) or the clip's min..max
    (``"range"``); the title gives the real range either way.
    """
    name = _layer(layer, exp.intra, exp.intra_layer, "Intra-SMA")
    maps = exp.intra[name]
    vmin, vmax = _scale(maps, scale)
    u_count, t_count = exp.num_snippets, exp.snippet_len
    fig = _mpl()(figsize=(TILE * t_count + 2.2, 2 * TILE * u_count + 0.9), layout="constrained")
    axes = fig.subplots(2 * u_count, t_count, squeeze=False)
    for u in range(u_count):
        for t in range(t_count):
            f = u * t_count + t
            _tile(axes[2 * u, t], exp.frames[f], _border(exp, u), _no_face(exp, u))
            axes[2 * u, t].set_title(_frame_label(exp, u, t), fontsize=8)
            mappable = _overlay(axes[2 * u + 1, t], exp.frames[f], maps[f], vmin, vmax, alpha)
        axes[2 * u, 0].set_ylabel(_snippet_label(exp, u), fontsize=8)
        axes[2 * u + 1, 0].set_ylabel("Intra-SMA", fontsize=8)
    fig.colorbar(mappable, ax=axes, shrink=0.5, label="Intra-SMA attention")
    _suptitle(fig, _title(exp, f"Intra-SMA attention, {name}: {_range_text(maps, scale)}"), 9)
    return fig


# ----------------------------------------------------------------------------- Figure 5
def _ut_heatmap(ax: "Axes", exp: Explanation, ut: "np.ndarray", rows: Sequence[int] | None = None,
                scale: str = "fixed"):
    """Draw the U x T map (or some of its rows) with each cell's value written in it."""
    rows = list(range(ut.shape[0])) if rows is None else list(rows)
    data = ut[rows]
    vmin, vmax = _scale(ut, scale)
    image = ax.imshow(data, cmap=UT_CMAP, vmin=vmin, vmax=vmax, aspect="auto")
    mid = (vmin + vmax) / 2
    digits = _decimals(float(ut.min()), float(ut.max()))
    for i in range(data.shape[0]):
        for t in range(data.shape[1]):
            ax.text(t, i, f"{data[i, t]:.{digits}f}", ha="center", va="center", fontsize=7,
                    color="white" if data[i, t] > mid else "black")
    ax.set_xticks(range(data.shape[1]), [f"t={t}" for t in range(data.shape[1])], fontsize=7)
    ax.set_yticks(range(data.shape[0]), [f"u={u}" + (" no face" if _no_face(exp, u) else "") for u in rows], fontsize=7)
    return image


def _prob_column(ax: "Axes", exp: Explanation) -> None:
    """One cell per snippet: its fake probability, coloured like Figure 5's boxes."""
    probs = exp.snippet_probs
    u_count = exp.num_snippets
    ax.set_xlim(0, 1)
    ax.set_ylim(u_count - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("p(fake)", fontsize=7)
    for u in range(u_count):
        if probs is None:
            text, colour = "n/a", "grey"
        else:
            text, colour = _prob_text(exp, float(probs[u])), _border(exp, u)
        ax.text(0.5, u, text, ha="center", va="center", fontsize=8, color=colour, fontweight="bold")


def inter_figure(exp: Explanation, layer: str | None = None, scale: str = "fixed") -> "Figure":
    """Figure 5: the U x T face grid above the U x T map of ``layer`` (default ``exp.inter_layer``).

    Each cell prints the attention ``F̄_1 ⊙ F̄_2`` (not a probability, as the heat map's label says);
    the borders and the ``p(fake)`` column are per snippet (module docstring).
    """
    name = _layer(layer, exp.inter, exp.inter_layer, "Inter-SIM")
    ut = exp.inter[name]
    u_count, t_count = exp.num_snippets, exp.snippet_len
    fig = _mpl()(figsize=(TILE * t_count + 1.8, TILE * u_count + 0.55 * u_count + 1.4), layout="constrained")
    grid = fig.add_gridspec(u_count + 1, t_count + 1, height_ratios=[1] * u_count + [0.45 * u_count],
                            width_ratios=[1] * t_count + [0.35])
    for u in range(u_count):
        for t in range(t_count):
            ax = fig.add_subplot(grid[u, t])
            _tile(ax, exp.frames[u * t_count + t], _border(exp, u), _no_face(exp, u))
            ax.set_title(_frame_label(exp, u, t), fontsize=7, pad=2)
            if t == 0:
                ax.set_ylabel(f"u={u}" + ("\nno face" if _no_face(exp, u) else ""), fontsize=8)
    heat_ax = fig.add_subplot(grid[u_count, :t_count])
    image = _ut_heatmap(heat_ax, exp, ut, scale=scale)
    heat_ax.set_xlabel(f"U x T attention map ({name}): each cell the attention F1 ⊙ F2, not a probability",
                       fontsize=8)
    _prob_column(fig.add_subplot(grid[u_count, t_count]), exp)
    fig.colorbar(image, ax=heat_ax, location="bottom", shrink=0.6, aspect=30)
    _suptitle(fig, _title(exp, f"Inter-SIM U x T map: {_range_text(ut, scale)}"), 9)
    return fig


# ----------------------------------------------------------------------------- all of it
def contact_sheet_figure(exp: Explanation, intra_layer: str | None = None, inter_layer: str | None = None,
                         alpha: float = 0.5, scale: str = "fixed") -> "Figure":
    """One page: for each snippet its faces, Grad-CAM and Intra-SMA rows, its U x T row and p(fake).

    Rows for maps the explanation lacks (no Grad-CAM, a model without SIMs) are left out and
    the page says so.
    """
    intra_name = intra_layer or exp.intra_layer
    inter_name = inter_layer or exp.inter_layer
    if intra_name is not None:
        _layer(intra_name, exp.intra, None, "Intra-SMA")
    if inter_name is not None:
        _layer(inter_name, exp.inter, None, "Inter-SIM")
    kinds = ["faces"] + (["Grad-CAM"] if exp.gradcam is not None else []) + (["Intra-SMA"] if intra_name else [])
    r, u_count, t_count = len(kinds), exp.num_snippets, exp.snippet_len
    extra = [1.5, 0.5] if inter_name else [0.5]
    fig = _mpl()(figsize=(TILE * (t_count + sum(extra)) + 1.2, TILE * r * u_count + 1.2), layout="constrained")
    grid = fig.add_gridspec(r * u_count, t_count + len(extra), width_ratios=[1] * t_count + extra)
    intra_range = _scale(exp.intra[intra_name], scale) if intra_name else None
    for u in range(u_count):
        for k, kind in enumerate(kinds):
            row = u * r + k
            for t in range(t_count):
                f = u * t_count + t
                ax = fig.add_subplot(grid[row, t])
                if kind == "faces":
                    _tile(ax, exp.frames[f], _border(exp, u), _no_face(exp, u))
                    ax.set_title(_frame_label(exp, u, t), fontsize=7, pad=2)
                elif kind == "Grad-CAM":
                    _overlay(ax, exp.frames[f], exp.gradcam[f], 0.0, 1.0, alpha)
                else:
                    _overlay(ax, exp.frames[f], exp.intra[intra_name][f], *intra_range, alpha)
                if t == 0:
                    ax.set_ylabel(_snippet_label(exp, u) if kind == "faces" else kind, fontsize=7)
    if inter_name:
        heat_ax = fig.add_subplot(grid[:, t_count])
        _ut_heatmap(heat_ax, exp, exp.inter[inter_name], scale=scale)
        heat_ax.set_title(f"U x T map, {inter_name}\n{_range_text(exp.inter[inter_name], scale)}", fontsize=7)
        heat_ax.yaxis.tick_right()
    _prob_column(fig.add_subplot(grid[:, -1]), exp)
    lines = [_title(exp, "dynsnip explain")]
    details = []
    if exp.gradcam is not None:
        details.append(f"Grad-CAM: {exp.target} score at {exp.target_layer}")
    if intra_name:
        details.append(f"Intra-SMA: {intra_name}, {_range_text(exp.intra[intra_name], scale)}")
    if details:
        lines.append("; ".join(details))
    lines.extend(exp.notes)
    _suptitle(fig, "\n".join(lines), 8)
    return fig


# ----------------------------------------------------------------------------- files
def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def _layers(requested: str | Iterable[str] | None, available: dict, default: str | None) -> list[str]:
    if not available:
        return []
    if requested is None:
        return [default] if default else []
    if requested == "all":
        return list(available)
    names = [requested] if isinstance(requested, str) else list(requested)
    for n in names:
        if n not in available:
            raise ValueError(f"no map for layer {n!r}; available: {', '.join(available)}")
    return names


def contact_sheet_layers(
    exp: Explanation,
    intra_layers: str | Iterable[str] | None = None,
    inter_layers: str | Iterable[str] | None = None,
) -> tuple[str | None, str | None]:
    """``(intra layer, inter layer)`` that :func:`save_figures` draws on ``contact_sheet.png``.

    The contact sheet has room for one layer of each kind. Per kind: the one layer asked for
    (a name, or a list of one), so that the contact sheet shows what ``intra_sma.png`` /
    ``ut_map.png`` show; with several names, the explanation's own layer if it is one of them,
    else the first; with None or ``"all"``, the explanation's own layer (``exp.intra_layer`` /
    ``exp.inter_layer``). None where the explanation has no maps of that kind.
    """
    picked = []
    for requested, available, own in ((intra_layers, exp.intra, exp.intra_layer),
                                      (inter_layers, exp.inter, exp.inter_layer)):
        drawn = _layers(requested, available, own)
        if not drawn:
            picked.append(None)
        elif requested is None or requested == "all":
            picked.append(own if own in drawn else drawn[0])
        else:
            picked.append(own if len(drawn) > 1 and own in drawn else drawn[0])
    return picked[0], picked[1]


def save_figures(
    exp: Explanation,
    out_dir: str | os.PathLike[str],
    intra_layers: str | Iterable[str] | None = None,
    inter_layers: str | Iterable[str] | None = None,
    dpi: int = 100,
) -> dict[str, Path]:
    """Write the PNGs of ``exp`` into ``out_dir`` (created if needed).

    Args:
        intra_layers, inter_layers: the layers to draw: None (the explanation's default
            layer), ``"all"``, a name or a list of names.
        dpi: resolution of the PNGs.

    Returns:
        ``{kind: path}`` of the files written:

        * ``gradcam.png``, when the explanation has a Grad-CAM;
        * ``intra_sma.png`` (one layer) or ``intra_sma_<layer>.png`` (several);
        * ``ut_map.png`` (one layer) or ``ut_map_<layer>.png`` (several);
        * ``contact_sheet.png`` (always), at the layers of :func:`contact_sheet_layers`: the one
          asked for, not the explanation's default, when one layer is asked for.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    def save(key: str, fig: "Figure") -> None:
        path = out / f"{key}.png"
        fig.savefig(path, dpi=dpi)
        written[key] = path

    if exp.gradcam is not None:
        save("gradcam", gradcam_figure(exp))
    intra = _layers(intra_layers, exp.intra, exp.intra_layer)
    for name in intra:
        save("intra_sma" if len(intra) == 1 else f"intra_sma_{_slug(name)}", intra_figure(exp, name))
    inter = _layers(inter_layers, exp.inter, exp.inter_layer)
    for name in inter:
        save("ut_map" if len(inter) == 1 else f"ut_map_{_slug(name)}", inter_figure(exp, name))
    sheet_intra, sheet_inter = contact_sheet_layers(exp, intra_layers, inter_layers)
    save("contact_sheet", contact_sheet_figure(exp, intra_layer=sheet_intra, inter_layer=sheet_inter))
    return written
