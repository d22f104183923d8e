"""The pictures of the paper's Figures 3-5 for an :class:`~dynsnip.explain.Explanation`.

* :func:`gradcam_figure` (Figure 3): the Grad-CAM over every sampled frame, one row per
  snippet;
* :func:`intra_figure` (Figure 4): for each snippet, its T face frames above the Intra-SMA
  map of one Intra-SIM;
* :func:`inter_figure` (Figure 5): the U x T face grid (border red where the snippet's fake
  probability is >= 0.5, blue otherwise) above the Inter-SIM U x T map, each cell labelled
  with its attention value and each row with its snippet's fake probability;
* :func:`contact_sheet_figure`: all of it on one page: per snippet, the faces, Grad-CAM and
  Intra-SMA rows, with that snippet's row of the U x T map and its fake probability beside it.

Figures are :class:`matplotlib.figure.Figure` objects drawn with the Agg renderer, never
through ``pyplot``, so the caller's backend and open figures are untouched (they display
in a notebook like any figure). matplotlib is imported on first use
(``pip install 'dynsnip[explain]'``).
"""
from __future__ import annotations

import os
import re
import textwrap
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
def _tile(ax: "Axes", image: "np.ndarray", border: str | None = None) -> None:
    ax.imshow(image, interpolation="bilinear")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(border is not None)
        if border is not None:
            spine.set_edgecolor(border)
            spine.set_linewidth(3)


def _overlay(ax: "Axes", image: "np.ndarray", heat: "np.ndarray", vmin: float, vmax: float, alpha: float = 0.5):
    _tile(ax, image)
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
        label += f"\np(fake)={exp.snippet_probs[u]:.2f}"
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
    return f"{what} — video p(fake) = {exp.fake_prob:.3f}  (U={exp.num_snippets}, T={exp.snippet_len})"


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
            mappable = _overlay(axes[u, t], exp.frames[f], exp.gradcam[f], 0.0, 1.0, alpha)
            axes[u, t].set_title(_frame_label(exp, u, t), fontsize=8)
        axes[u, 0].set_ylabel(_snippet_label(exp, u), fontsize=8)
    fig.colorbar(mappable, ax=axes, shrink=0.6, label=f"Grad-CAM ({exp.target})")
    fig.suptitle(_title(exp, f"Grad-CAM of the {exp.target} score, layer {exp.target_layer}"), fontsize=9)
    return fig


# ----------------------------------------------------------------------------- Figure 4
def intra_figure(exp: Explanation, layer: str | None = None, alpha: float = 0.5) -> "Figure":
    """Per snippet: its T faces above the Intra-SMA map of ``layer`` (default ``exp.intra_layer``).

    One colour scale for the whole clip (its min..max), so frames and snippets compare.
    """
    name = _layer(layer, exp.intra, exp.intra_layer, "Intra-SMA")
    maps = exp.intra[name]
    vmin, vmax = _range(maps)
    u_count, t_count = exp.num_snippets, exp.snippet_len
    fig = _mpl()(figsize=(TILE * t_count + 2.2, 2 * TILE * u_count + 0.9), layout="constrained")
    axes = fig.subplots(2 * u_count, t_count, squeeze=False)
    for u in range(u_count):
        for t in range(t_count):
            f = u * t_count + t
            _tile(axes[2 * u, t], exp.frames[f], _border(exp, u))
            axes[2 * u, t].set_title(_frame_label(exp, u, t), fontsize=8)
            mappable = _overlay(axes[2 * u + 1, t], exp.frames[f], maps[f], vmin, vmax, alpha)
        axes[2 * u, 0].set_ylabel(_snippet_label(exp, u), fontsize=8)
        axes[2 * u + 1, 0].set_ylabel("Intra-SMA", fontsize=8)
    fig.colorbar(mappable, ax=axes, shrink=0.5, label="Intra-SMA attention")
    fig.suptitle(_title(exp, f"Intra-SMA attention, {name}"), fontsize=9)
    return fig


# ----------------------------------------------------------------------------- Figure 5
def _ut_heatmap(ax: "Axes", exp: Explanation, ut: "np.ndarray", rows: Sequence[int] | None = None):
    """Draw the U x T map (or some of its rows) with each cell's value written in it."""
    rows = list(range(ut.shape[0])) if rows is None else list(rows)
    data = ut[rows]
    vmin, vmax = _range(ut)
    image = ax.imshow(data, cmap=UT_CMAP, vmin=vmin, vmax=vmax, aspect="auto")
    mid = (vmin + vmax) / 2
    digits = _decimals(float(ut.min()), float(ut.max()))
    for i in range(data.shape[0]):
        for t in range(data.shape[1]):
            ax.text(t, i, f"{data[i, t]:.{digits}f}", ha="center", va="center", fontsize=7,
                    color="white" if data[i, t] > mid else "black")
    ax.set_xticks(range(data.shape[1]), [f"t={t}" for t in range(data.shape[1])], fontsize=7)
    ax.set_yticks(range(data.shape[0]), [f"u={u}" for u in rows], fontsize=7)
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
            text, colour = f"{probs[u]:.2f}", _border(exp, u)
        ax.text(0.5, u, text, ha="center", va="center", fontsize=8, color=colour, fontweight="bold")


def inter_figure(exp: Explanation, layer: str | None = None) -> "Figure":
    """Figure 5: the U x T face grid above the U x T map of ``layer`` (default ``exp.inter_layer``)."""
    name = _layer(layer, exp.inter, exp.inter_layer, "Inter-SIM")
    ut = exp.inter[name]
    u_count, t_count = exp.num_snippets, exp.snippet_len
    fig = _mpl()(figsize=(TILE * t_count + 1.8, TILE * u_count + 0.55 * u_count + 1.4), layout="constrained")
    grid = fig.add_gridspec(u_count + 1, t_count + 1, height_ratios=[1] * u_count + [0.45 * u_count],
                            width_ratios=[1] * t_count + [0.35])
    for u in range(u_count):
        for t in range(t_count):
            ax = fig.add_subplot(grid[u, t])
            _tile(ax, exp.frames[u * t_count + t], _border(exp, u))
            ax.set_title(_frame_label(exp, u, t), fontsize=7, pad=2)
            if t == 0:
                ax.set_ylabel(f"u={u}", fontsize=8)
    heat_ax = fig.add_subplot(grid[u_count, :t_count])
    image = _ut_heatmap(heat_ax, exp, ut)
    heat_ax.set_xlabel(f"U x T attention map ({name})", fontsize=8)
    _prob_column(fig.add_subplot(grid[u_count, t_count]), exp)
    fig.colorbar(image, ax=heat_ax, location="bottom", shrink=0.6, aspect=30)
    legend = "border: red = snippet p(fake) >= 0.5, blue < 0.5" if exp.snippet_probs is not None else ""
    fig.suptitle(_title(exp, "Inter-SIM U x T map") + ("\n" + legend if legend else ""), fontsize=9)
    return fig


# ----------------------------------------------------------------------------- all of it
def contact_sheet_figure(exp: Explanation, intra_layer: str | None = None, inter_layer: str | None = None,
                         alpha: float = 0.5) -> "Figure":
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
    intra_range = _range(exp.intra[intra_name]) if intra_name else None
    for u in range(u_count):
        for k, kind in enumerate(kinds):
            row = u * r + k
            for t in range(t_count):
                f = u * t_count + t
                ax = fig.add_subplot(grid[row, t])
                if kind == "faces":
                    _tile(ax, exp.frames[f], _border(exp, u))
                    ax.set_title(_frame_label(exp, u, t), fontsize=7, pad=2)
                elif kind == "Grad-CAM":
                    _overlay(ax, exp.frames[f], exp.gradcam[f], 0.0, 1.0, alpha)
                else:
                    _overlay(ax, exp.frames[f], exp.intra[intra_name][f], *intra_range, alpha)
                if t == 0:
                    ax.set_ylabel(_snippet_label(exp, u) if kind == "faces" else kind, fontsize=7)
    if inter_name:
        heat_ax = fig.add_subplot(grid[:, t_count])
        _ut_heatmap(heat_ax, exp, exp.inter[inter_name])
        lo, hi = _range(exp.inter[inter_name])
        heat_ax.set_title(f"U x T map, {inter_name}\ncolours {lo:.{_decimals(lo, hi)}f} .. {hi:.{_decimals(lo, hi)}f}", fontsize=7)
        heat_ax.yaxis.tick_right()
    _prob_column(fig.add_subplot(grid[:, -1]), exp)
    lines = [_title(exp, "dynsnip explain")]
    details = []
    if exp.gradcam is not None:
        details.append(f"Grad-CAM: {exp.target} score at {exp.target_layer}")
    if intra_name:
        lo, hi = intra_range
        details.append(f"Intra-SMA: {intra_name}, colours {lo:.{_decimals(lo, hi)}f} .. {hi:.{_decimals(lo, hi)}f}")
    if details:
        lines.append("; ".join(details))
    width = max(40, int(fig.get_figwidth() * 13))  # characters per line at fontsize 8
    lines.extend(textwrap.fill(note, width) for note in exp.notes)
    fig.suptitle("\n".join(lines), fontsize=8)
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
        * ``contact_sheet.png`` (always).
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
    save("contact_sheet", contact_sheet_figure(exp))
    return written
