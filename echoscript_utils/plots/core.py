"""What every figure shares: the style, new axes, the grouped-bar layout, and :func:`save_figure`.

The style is never applied at import: plot functions run inside it (:func:`styled`), :func:`save_figure` saves
inside it, and :func:`use_style` applies it for the rest of a session on request, as ``seaborn.set_theme`` does.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..artifacts import atomic_path, ensure_dir

__all__ = ["MODEL_COLORS", "STYLE", "empty_axes", "get_ax", "group_offsets", "save_figure", "style", "styled",
           "subplots", "use_style"]

#: The shared look of every figure (paper-ready: readable at column width, no chart junk).
STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 10,
    "axes.titlesize": 11,
    "legend.frameon": False,
    "svg.hashsalt": "echoscript",
    "pdf.fonttype": 42,
}

#: Colours by model label, so baseline and fine-tuned look the same in every figure.
MODEL_COLORS = {"musicgen": "#7f7f7f", "baseline": "#7f7f7f", "echoscript": "#d62728", "finetuned": "#d62728",
                # the melody-conditioned model: the MIDI sketch of stage 05, the leitmotif of stage 08
                "sketch": "#9467bd", "leitmotif": "#9467bd"}


def style():
    """A context in which figures get :data:`STYLE` (matplotlib's ``rc_context``; the caller's settings return
    on exit)."""
    return plt.rc_context(STYLE)


def use_style() -> None:
    """Apply :data:`STYLE` for the rest of the session (matplotlib's global settings), for figures drawn outside
    the workbook's plot functions. Nothing calls it at import."""
    plt.rcParams.update(STYLE)


def styled(fn):
    """Run the plot function ``fn`` inside :func:`style` (new figures, axes and text get the workbook's look)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with style():
            return fn(*args, **kwargs)

    return wrapper


@styled
def subplots(*args, **kwargs):
    """``matplotlib.pyplot.subplots`` in the workbook's style: ``(fig, axes)``."""
    return plt.subplots(*args, **kwargs)


@styled
def get_ax(ax=None, **subplots_kw):
    """Return ``ax`` or a new one on a fresh figure (in the workbook's style)."""
    if ax is not None:
        return ax
    _, ax = plt.subplots(**subplots_kw)
    return ax


def group_offsets(n: int, *, span: float = 0.8) -> tuple[np.ndarray, float]:
    """Side-by-side layout of ``n`` bars (or points) per group: the offset of each from the group's centre and
    the width of one, together ``span`` wide (x units)."""
    width = span / max(n, 1)
    return (np.arange(n) - (n - 1) / 2) * width, width


def empty_axes(ax, text: str):
    """Say on ``ax`` why there is nothing to draw (no ground truth, nothing skipped …) and return it."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#777")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def save_figure(fig, name: str, figures_dir: str | os.PathLike, *, close: bool = False) -> dict[str, Path]:
    """Write ``fig`` as ``<figures_dir>/<name>.pdf`` (for the paper) and ``.png`` (for notebooks and reports).

    Metadata that would change between reruns (creation date, producer) is stripped, so the files are
    byte-stable where the data are. Accepts a Figure or an Axes. Returns ``{"pdf": path, "png": path}``.
    """
    if hasattr(fig, "get_figure") and not hasattr(fig, "savefig"):
        fig = fig.get_figure()
    out = ensure_dir(figures_dir)
    paths = {}
    for ext, meta in (("pdf", {"CreationDate": None, "Producer": None, "Creator": None}),
                      ("png", {"Software": None})):
        final = out / f"{name}.{ext}"
        with atomic_path(final) as tmp, style():
            fig.savefig(tmp, format=ext, metadata=meta)
        paths[ext] = final
    if close:
        plt.close(fig)
    return paths
