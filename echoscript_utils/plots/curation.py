"""Figures of the curation stage. Each function draws on ``ax`` (a new one when None) and returns it."""

from __future__ import annotations

import numpy as np

from .core import empty_axes, get_ax, styled

__all__ = [
    "clip_spectrogram",
    "key_categories",
    "label_counts",
    "limiter_gain_reduction",
    "loudness_before_after",
    "skipped_reasons",
    "source_durations",
    "tempo_scatter",
]

SPLIT_ORDER = ("train", "valid", "eval")


@styled
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


@styled
def loudness_before_after(kept, *, target_lufs: float | None = None, ax=None):
    """Per-clip integrated loudness before and after the loudness policy (LUFS), paired points joined by lines;
    clips the limiter touched are drawn in orange. ``target_lufs`` defaults to the ``target_lufs`` the clips
    record (the corpus target when curation chose it with ``auto``)."""
    ax = get_ax(ax)
    before = kept["loudness_in_lufs"].astype(float).to_numpy()
    after = kept["loudness_lufs"].astype(float).to_numpy()
    gr = (kept["limiter_gain_reduction_db"].astype(float).fillna(0.0).to_numpy()
          if "limiter_gain_reduction_db" in kept else np.zeros_like(after))
    if target_lufs is None and "target_lufs" in kept and kept["target_lufs"].notna().any():
        target_lufs = float(kept["target_lufs"].dropna().iloc[0])
    for b, a, g in zip(before, after, gr, strict=True):
        ax.plot([0, 1], [b, a], color="#dd8452" if g > 0 else "#999999", lw=0.6, alpha=0.6)
    ax.scatter(np.zeros_like(before), before, color="#4c72b0", s=14, label="before", zorder=3)
    ax.scatter(np.ones_like(after), after, color="#d62728", s=14, label="after", zorder=3)
    if (gr > 0).any():
        n = int((gr > 0).sum())
        ax.plot([], [], color="#dd8452", lw=1, label=f"limited ({n} clip{'' if n == 1 else 's'})")
    if target_lufs is not None:
        ax.axhline(target_lufs, color="#d62728", ls="--", lw=1, label=f"target {target_lufs:g} LUFS")

    def spread(v):
        v = v[np.isfinite(v)]
        return np.percentile(v, 97.5) - np.percentile(v, 2.5) if v.size else float("nan")

    ax.set_xticks([0, 1], [f"source clip\n(middle 95 %: {spread(before):.1f} LU)",
                           f"stored clip\n(middle 95 %: {spread(after):.1f} LU)"])
    ax.set_xlim(-0.4, 1.4)
    ax.set_ylabel("integrated loudness (LUFS)")
    ax.set_title("Loudness before and after the loudness policy")
    ax.legend(loc="lower center", fontsize=8)
    return ax


@styled
def limiter_gain_reduction(kept, *, ax=None):
    """Histogram of the true-peak limiter's largest gain reduction per clip (dB); clips it left alone are counted
    in the title."""
    ax = get_ax(ax)
    if "limiter_gain_reduction_db" not in kept:
        return empty_axes(ax, "no limiter data (curated before the loudness policy was recorded)")
    gr = kept["limiter_gain_reduction_db"].astype(float).fillna(0.0).to_numpy()
    touched = gr[gr > 0]
    if not touched.size:
        return empty_axes(ax, f"the limiter left all {len(gr)} clips alone (gain alone reached the target)")
    ax.hist(touched, bins=min(20, max(5, touched.size)), color="#dd8452", alpha=0.9)
    ax.set_xlabel("largest gain reduction of the limiter (dB)")
    ax.set_ylabel("clips")
    ax.set_title(f"Limiter: {touched.size} of {len(gr)} clips limited, at most {touched.max():.1f} dB")
    return ax


@styled
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


@styled
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


@styled
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


@styled
def key_categories(acc, *, ax=None):
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


@styled
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
