"""Figures of the 08_scoring stage (each draws on ``ax`` and returns it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .core import MODEL_COLORS, empty_axes, get_ax, styled

#: One colour per taxonomy mood, the same in every scoring figure.
MOOD_COLORS = {"suspenseful": "#8c2d04", "uplifting": "#e6ab02", "melancholic": "#3f5d9a", "calming": "#4a9c6d"}


@styled
def timeline(scenes: pd.DataFrame, *, ax=None, label_scenes: bool = True):
    """Scenes along screen time: one bar per scene from ``start_s`` for ``duration_s``, as high as its cue's
    ``intensity`` (0..1) and coloured by its ``mood`` (also shown as a band under the axis); scenes without a
    cue (``spotted`` false) are hatched outlines.

    ``scenes`` needs ``scene, start_s, duration_s, mood, intensity`` (``spotted`` optional), e.g.
    ``ScoringResult.scenes``. With ``label_scenes``, each scene wide enough to hold its number is numbered.
    """
    from matplotlib.patches import Patch

    ax = get_ax(ax, figsize=(8.0, 3.2))
    spotted = scenes["spotted"] if "spotted" in scenes else pd.Series(True, index=scenes.index)
    span = float((scenes["start_s"] + scenes["duration_s"]).max()) if len(scenes) else 1.0
    min_label_s = span / 70  # a number needs about 1/70 of the axis: narrower scenes (a feature's) go unlabelled
    for rec, on in zip(scenes.to_dict("records"), spotted):
        color = MOOD_COLORS.get(rec["mood"], "#777")
        ax.bar(rec["start_s"], rec["intensity"], width=rec["duration_s"], align="edge",
               color=color if on else "none", edgecolor=color, linewidth=1.2, alpha=0.85 if on else 1.0,
               hatch=None if on else "//")
        ax.bar(rec["start_s"], 0.06, bottom=-0.08, width=rec["duration_s"], align="edge", color=color,
               edgecolor="white", linewidth=0.8)  # the mood band under every scene
        if label_scenes and rec["duration_s"] >= min_label_s * len(str(rec["scene"])) / 2:
            ax.text(rec["start_s"] + rec["duration_s"] / 2, min(rec["intensity"] + 0.03, 1.02), str(rec["scene"]),
                    ha="center", va="bottom", fontsize=8)
    end = float((scenes["start_s"] + scenes["duration_s"]).max()) if len(scenes) else 1.0
    ax.set(xlim=(0, end), ylim=(-0.1, 1.12), xlabel="screen time (s)", ylabel="cue intensity")
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    moods = [m for m in MOOD_COLORS if m in set(scenes["mood"])]
    handles = [Patch(color=MOOD_COLORS[m], label=m) for m in moods]
    if not spotted.all():
        handles.append(Patch(facecolor="none", edgecolor="#777", hatch="//", label="no cue"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return ax


@styled
def relevance_bars(relevance: pd.DataFrame, *, ax=None):
    """CLAP cosine of each model's cues with their own scene text vs the other scenes' texts, with intervals."""
    ax = get_ax(ax)
    if relevance.empty:

        return empty_axes(ax, "no CLAP relevance (fewer than two cues, or turned off)")
    labels = [f"{m} s{s}" for m, s in zip(relevance["model"], relevance["seed"])]
    x = np.arange(len(relevance))
    for k, (col, hatch) in enumerate((("own", None), ("other", "//"))):
        mean = relevance[col].to_numpy(float)
        err = np.vstack([mean - relevance[f"{col}_ci_low"].to_numpy(float),
                         relevance[f"{col}_ci_high"].to_numpy(float) - mean])
        ax.bar(x + (k - 0.5) * 0.38, mean, width=0.38, yerr=np.nan_to_num(err), capsize=3, hatch=hatch,
               color=[MODEL_COLORS.get(m, "#1f77b4") for m in relevance["model"]], alpha=0.9 if k == 0 else 0.45,
               label="own scene" if k == 0 else "other scenes")
    ax.set_xticks(x, labels)
    ax.axhline(0, color="#444", linewidth=0.8)
    ax.set(ylabel="CLAP cosine", title="Cue ↔ scene text relevance")
    ax.legend(fontsize=8)
    return ax
