"""Figures of the 03_alignment stage (each draws on ``ax`` and returns it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .core import get_ax, styled


@styled
def score_histogram(clips: pd.DataFrame, *, ax=None, bins: int = 20):
    """Histogram of each clip's best-prompt CLAP score, kept vs dropped."""
    ax = get_ax(ax)
    kept = clips[clips["kept"]]["clap_score"]
    dropped = clips[~clips["kept"]]["clap_score"]
    edges = np.histogram_bin_edges(clips["clap_score"], bins=bins)
    ax.hist(kept, bins=edges, color="#1f77b4", alpha=0.8, label=f"kept ({len(kept)})")
    if len(dropped):
        ax.hist(dropped, bins=edges, color="#d62728", alpha=0.8, label=f"dropped ({len(dropped)})")
    ax.set(xlabel="cosine similarity with the best scene prompt", ylabel="clips", title="Audio–prompt alignment")
    ax.legend()
    return ax


@styled
def score_by_group(clips: pd.DataFrame, group: str = "genre", *, ax=None):
    """Strip + box plot of CLAP scores per genre (or mood, split …)."""
    ax = get_ax(ax)
    groups = [g for g in sorted(clips[group].dropna().astype(str).unique())]
    data = [clips.loc[clips[group].astype(str) == g, "clap_score"].to_numpy() for g in groups]
    if data:
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(groups) + 1), groups, rotation=20)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, 1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=12, alpha=0.7, color="#444")
    ax.set(xlabel=group, ylabel="best-prompt CLAP score", title=f"Alignment per {group}")
    return ax


@styled
def retrieval_bars(metrics: dict, *, ax=None):
    """Recall@1 and @5 of clip → own caption against chance."""
    ax = get_ax(ax)
    names = ["recall@1", "recall@5"]
    vals = [metrics.get("recall_at_1") or 0, metrics.get("recall_at_5") or 0]
    chance = [metrics.get("recall_chance_at_1") or 0, metrics.get("recall_chance_at_5") or 0]
    x = np.arange(2)
    ax.bar(x - 0.2, vals, width=0.4, label="model", color="#1f77b4")
    ax.bar(x + 0.2, chance, width=0.4, label="chance", color="#bbbbbb")
    ax.set_xticks(x, names)
    ax.set(ylim=(0, 1), ylabel="share of clips", title="Clip → own caption retrieval")
    ax.legend()
    return ax


@styled
def embedding_map(audio_2d: np.ndarray, text_2d: np.ndarray, *, labels=None, ax=None):
    """Audio (dots, coloured by ``labels``) and text (crosses) embeddings on a shared 2-D PCA plane."""
    ax = get_ax(ax)
    if labels is None:
        ax.scatter(audio_2d[:, 0], audio_2d[:, 1], s=18, label="clips")
    else:
        labels = np.asarray(labels).astype(str)
        for lab in sorted(set(labels)):
            m = labels == lab
            ax.scatter(audio_2d[m, 0], audio_2d[m, 1], s=18, label=lab)
    ax.scatter(text_2d[:, 0], text_2d[:, 1], marker="x", s=14, color="#555", alpha=0.6, label="prompts")
    ax.set(xlabel="PC 1", ylabel="PC 2", title="CLAP embeddings (PCA)")
    ax.legend(fontsize=8, ncol=2)
    return ax
