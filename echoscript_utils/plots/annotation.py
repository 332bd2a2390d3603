"""Plots of the annotation stage: tag distributions, per-label F1, genre confusion matrices, prompt moods.

Each function draws on ``ax`` (or a new one; the multi-panel ones on ``axes``), returns what it drew on and never
saves; the notebook calls :func:`echoscript_utils.plots.save_figure`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .core import empty_axes, get_ax, group_offsets, styled

__all__ = ["confusion", "confusions", "label_f1", "prompt_moods", "tag_distribution",
           "tag_distributions"]

SPLIT_COLORS = {"train": "#1f77b4", "valid": "#ff7f0e", "eval": "#2ca02c"}
TAGGER_COLORS = {"panns": "#9467bd", "musicnn": "#1f77b4", "clap": "#ff7f0e", "combined": "#d62728"}


@styled
def tag_distribution(dist: pd.DataFrame, *, field: str, ax=None):
    """Bars of chosen-label counts for one ``field``, one bar group per label, one colour per split.

    ``dist`` is :func:`echoscript_utils.annotation.tag_distribution` (``split, field, label, n``).
    """
    ax = get_ax(ax)
    sub = dist[dist["field"] == field]
    if sub.empty:
        return empty_axes(ax, f"no {field} tags")
    table = sub.pivot_table(index="label", columns="split", values="n", aggfunc="sum", sort=False).fillna(0)
    splits = sorted(table.columns, key=lambda s: (list(SPLIT_COLORS).index(s) if s in SPLIT_COLORS else 99, s))
    offsets, width = group_offsets(len(splits))
    x = np.arange(len(table))
    for i, s in enumerate(splits):
        ax.bar(x + offsets[i], table[s].to_numpy(), width, label=s,
               color=SPLIT_COLORS.get(s))
    ax.set_xticks(x, table.index, rotation=30, ha="right")
    ax.set_ylabel("clips")
    ax.set_title(field)
    ax.legend(fontsize=8)
    return ax


@styled
def tag_distributions(dist: pd.DataFrame, *, axes=None):
    """:func:`tag_distribution` for genre, moods and instruments side by side; returns the axes."""
    if axes is None:
        _, axes = plt.subplots(1, 3, figsize=(12, 3.4), layout="constrained")
    for ax, field in zip(axes, ("genre", "moods", "instruments"), strict=True):
        tag_distribution(dist, field=field, ax=ax)
    return axes


@styled
def label_f1(per_label: pd.DataFrame, *, field: str, ax=None):
    """F1 per label of ``field``, one bar per tagger (``per_label`` from ``AccuracyReport.per_label``)."""
    ax = get_ax(ax)
    sub = per_label[per_label["field"] == field] if len(per_label) else per_label
    if sub is None or sub.empty:
        return empty_axes(ax, "no ground truth")
    table = sub.pivot_table(index="label", columns="tagger", values="f1", sort=False)
    taggers = list(dict.fromkeys(sub["tagger"]))
    offsets, width = group_offsets(len(taggers))
    x = np.arange(len(table))
    for i, t in enumerate(taggers):
        ax.bar(x + offsets[i], table[t].to_numpy(), width, label=t,
               color=TAGGER_COLORS.get(t))
    ax.set_xticks(x, table.index, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1")
    ax.set_title(field)
    ax.legend(fontsize=8)
    return ax


@styled
def confusion(cm: pd.DataFrame, *, ax=None, title: str | None = None):
    """Heat map of a confusion matrix (rows = true, columns = predicted) with the counts written in."""
    ax = get_ax(ax)
    if cm is None or cm.empty or cm.to_numpy().sum() == 0:
        return empty_axes(ax, "no ground truth")
    data = cm.to_numpy()
    ax.imshow(data, cmap="Blues", vmin=0, vmax=max(1, data.max()))
    ax.grid(False)
    for (i, j), v in np.ndenumerate(data):
        ax.text(j, i, int(v), ha="center", va="center", fontsize=8,
                color="white" if v > data.max() / 2 else "black")
    ax.set_xticks(range(len(cm.columns)), cm.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(cm.index)), cm.index, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    return ax


@styled
def confusions(confusions: dict[str, pd.DataFrame], *, axes=None):
    """One :func:`confusion` per tagger, in a row; returns the axes."""
    names = list(confusions) or ["(none)"]
    if axes is None:
        _, axes = plt.subplots(1, len(names), figsize=(3.8 * len(names), 3.6), squeeze=False, layout="constrained")
        axes = axes[0]
    for ax, name in zip(axes, names, strict=False):
        confusion(confusions.get(name, pd.DataFrame()), ax=ax, title=name)
    return axes


@styled
def prompt_moods(counts: pd.DataFrame, *, ax=None):
    """Prompts per mood (``counts`` from :func:`echoscript_utils.prompts.mood_counts`)."""
    ax = get_ax(ax)
    ax.bar(counts["mood"], counts["n"], color="#7f7f7f")
    ax.set_ylabel("prompts")
    ax.set_title("scene prompts per mood")
    return ax
