"""Figures of the curation stage. Each function draws on ``ax`` (a new one when None) and returns it."""

from __future__ import annotations

import numpy as np

from . import empty_axes, get_ax

__all__ = [
    "clip_spectrogram",
    "key_scores",
    "label_counts",
    "loudness_before_after",
    "skipped_reasons",
    "source_durations",
    "tempo_scatter",
]

SPLIT_ORDER = ("train", "valid", "eval")


def source_durations(kept, *, clip_s: float = 30.0, ax=None):
    """Histogram of source-track durations (s) of the kept inputs, with the clip length marked.

    Args:
        kept: curation metadata (one row per clip; ``source``, ``source_duration_s``).
    """
    ax = get_ax(ax)
    d = kept.drop_duplicates("source")["source_duration_s"].astype(float)
    ax.hist(d, bins=min(20, max(5, len(d))), color="#4c72b0", alpha=0.85)
    for k in range(1, int(d.max() // clip_s) + 1 if len(d) else 1):
        ax.axvline(k * clip_s, color="#d62728", lw=1, ls="--", alpha=0.6)
    ax.set_xlabel(f"source duration (s); dashed: whole clips of {clip_s:g} s")
    ax.set_ylabel("tracks")
    ax.set_title("Kept tracks by duration")
    return ax


def loudness_before_after(kept, *, target_lufs: float | None = -14.0, ax=None):
    """Per-clip integrated loudness before and after normalisation (LUFS), paired points joined by lines."""
    ax = get_ax(ax)
    before = kept["loudness_in_lufs"].astype(float).to_numpy()
    after = kept["loudness_lufs"].astype(float).to_numpy()
    for b, a in zip(before, after, strict=True):
        ax.plot([0, 1], [b, a], color="#999999", lw=0.6, alpha=0.6)
    ax.scatter(np.zeros_like(before), before, color="#4c72b0", s=14, label="before", zorder=3)
    ax.scatter(np.ones_like(after), after, color="#d62728", s=14, label="after", zorder=3)
    if target_lufs is not None:
        ax.axhline(target_lufs, color="#d62728", ls="--", lw=1, label=f"target {target_lufs:g} LUFS")
    ax.set_xticks([0, 1], ["source clip", "stored clip"])
    ax.set_xlim(-0.4, 1.4)
    ax.set_ylabel("integrated loudness (LUFS)")
    ax.set_title("Loudness normalisation (below target: held by the −1 dBTP ceiling)")
    ax.legend(loc="lower center", fontsize=8)
    return ax


def label_counts(kept, *, field: str = "genre", source: str = "truth", ax=None):
    """Clip counts per label value and split, stacked bars (multi-valued fields count each value)."""
    import pandas as pd

    ax = get_ax(ax)
    rows = []
    for r in kept.to_dict("records"):
        lab = r.get(source)
        if not isinstance(lab, dict):
            continue
        values = lab.get(field)
        for v in values if isinstance(values, list) else [values]:
            if v:
                rows.append({"value": v, "split": r["split"]})
    if not rows:
        return empty_axes(ax, f"no {field} labels")
    table = pd.DataFrame(rows).value_counts().unstack("split", fill_value=0)
    table = table[[s for s in SPLIT_ORDER if s in table.columns]]
    bottom = np.zeros(len(table))
    colors = {"train": "#4c72b0", "valid": "#dd8452", "eval": "#55a868"}
    for split in table.columns:
        ax.bar(table.index, table[split], bottom=bottom, label=split, color=colors.get(split))
        bottom += table[split].to_numpy()
    ax.set_ylabel("clips")
    ax.set_title(f"{field} per split")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=8)
    return ax


def clip_spectrogram(frames: dict, *, axes=None):
    """Log-mel spectrogram (top) and chroma (bottom) of one clip; ``frames`` from ``curation.clip_frames``.

    Returns:
        the two Axes.
    """
    import librosa.display
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(7.5, 5.0), sharex=True, layout="constrained")
    sr, hop = frames["sr"], frames["hop_length"]
    img = librosa.display.specshow(frames["mel_db"], sr=sr, hop_length=hop, x_axis="time", y_axis="mel",
                                   ax=axes[0], cmap="magma")
    axes[0].set_title("log-mel spectrogram (dB)")
    axes[0].figure.colorbar(img, ax=axes[0], format="%+.0f")
    img = librosa.display.specshow(frames["chroma"], sr=sr, hop_length=hop, x_axis="time", y_axis="chroma",
                                   ax=axes[1], cmap="Blues")
    axes[1].set_title("chroma")
    axes[1].figure.colorbar(img, ax=axes[1])
    axes[0].set_xlabel("")  # the shared time axis is labelled once, under the chroma
    return axes


def tempo_scatter(acc, *, ax=None):
    """Estimated vs true tempo (BPM) with the ±4 % band and the octave lines (×2, ×½)."""
    ax = get_ax(ax)
    if acc.empty:
        return empty_axes(ax, "no ground truth")
    lo, hi = 0.4 * acc["true_bpm"].min(), 2.3 * acc["true_bpm"].max()
    x = np.linspace(lo, hi, 50)
    ax.fill_between(x, 0.96 * x, 1.04 * x, color="#55a868", alpha=0.25, label="±4 %")
    ax.plot(x, 2 * x, color="#999999", ls=":", lw=1, label="octave errors (×2, ×½)")
    ax.plot(x, 0.5 * x, color="#999999", ls=":", lw=1)
    colors = np.where(acc["tempo_ok"], "#55a868", np.where(acc["tempo_octave"], "#dd8452", "#d62728"))
    ax.scatter(acc["true_bpm"], acc["bpm"], c=colors, s=24, zorder=3)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("true tempo (BPM)")
    ax.set_ylabel("estimated tempo (BPM)")
    ax.set_title("Tempo: green hit, orange octave error, red miss")
    ax.legend(loc="upper left", fontsize=8)
    return ax


def key_scores(acc, *, ax=None):
    """How key estimates relate to the truth (MIREX categories), as bars of clip counts."""
    ax = get_ax(ax)
    names = {1.0: "same", 0.5: "fifth", 0.3: "relative", 0.2: "parallel", 0.0: "other"}
    counts = acc["key_score"].map(names).value_counts() if len(acc) else None
    labels = list(names.values())
    vals = [int(counts.get(k, 0)) if counts is not None else 0 for k in labels]
    ax.bar(labels, vals, color=["#55a868", "#8fbc8f", "#dd8452", "#e5ae38", "#d62728"])
    score = acc["key_score"].mean() if len(acc) else float("nan")
    ax.set_ylabel("clips")
    ax.set_title(f"Key vs ground truth (MIREX weighted score {score:.2f})")
    return ax


def skipped_reasons(skipped, *, ax=None):
    """Horizontal bars: rejected inputs per reason kind (the text before the first colon)."""
    ax = get_ax(ax)
    if skipped.empty:
        return empty_axes(ax, "nothing skipped")
    kinds = skipped["reason"].str.split(":", n=1).str[0].value_counts().sort_values()
    ax.barh(kinds.index, kinds.to_numpy(), color="#d62728", alpha=0.8)
    ax.set_xlabel("inputs")
    ax.set_title("Skipped inputs by reason")
    return ax
