"""Figures: one style, plot functions that draw on an ``ax`` and return it, one :func:`save_figure`.

Stage-specific plots live in submodules (``plots.curation``, ``plots.listening``, ...); every one follows the
librosa convention: ``fn(data, *, ax=None, ...) -> Axes``, never saving files itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt

from ..artifacts import atomic_path, ensure_dir

__all__ = ["STYLE", "empty_axes", "get_ax", "save_figure", "use_style"]

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
MODEL_COLORS = {"musicgen": "#7f7f7f", "baseline": "#7f7f7f", "echoscript": "#d62728", "finetuned": "#d62728"}


def use_style() -> None:
    """Apply :data:`STYLE` globally (notebooks call it once through ``echoscript_utils.plots``)."""
    plt.rcParams.update(STYLE)


use_style()


def get_ax(ax=None, **subplots_kw):
    """Return ``ax`` or a new one on a fresh figure."""
    if ax is not None:
        return ax
    _, ax = plt.subplots(**subplots_kw)
    return ax


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
        with atomic_path(final) as tmp:
            fig.savefig(tmp, format=ext, metadata=meta)
        paths[ext] = final
    if close:
        plt.close(fig)
    return paths
