"""Figures of the 08_scoring stage (each draws on ``ax`` and returns it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .core import MODEL_COLORS, empty_axes, get_ax, styled

#: One colour per taxonomy mood, the same in every scoring figure.
MOOD_COLORS = {"suspenseful": "#8c2d04", "uplifting": "#e6ab02", "melancholic": "#3f5d9a", "calming": "#4a9c6d"}


@styled
def timeline(scenes: pd.DataFrame, *, ax=None, label_scenes: bool = True, estimated: bool = False):
    """Scenes along screen time: one bar per scene from ``start_s`` for ``duration_s``, as high as its cue's
    ``intensity`` (0..1) and coloured by its ``mood`` (also shown as a band under the axis); scenes without a
    cue (``spotted`` false) are hatched outlines.

    ``scenes`` needs ``scene, start_s, duration_s, mood, intensity`` (``spotted`` optional), e.g.
    ``ScoringResult.scenes``. With ``label_scenes``, each scene wide enough to hold its number is numbered.
    ``estimated``: the screen times are the page-count estimate (no cut), and the axis says so.
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
    ax.set(xlim=(0, end), ylim=(-0.1, 1.12), ylabel="cue intensity",
           xlabel="screen time (s), estimated from page count" if estimated else "screen time (s)")
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


@styled
def spotting_timeline(cues: pd.DataFrame, hits: pd.DataFrame | None = None, *, ax=None, ticks: int = 8):
    """The cues spotted to the cut along record timecode: one bar per cue (``start_s`` for ``duration_s``,
    labelled with its ``cue`` number and tempo), the hit points as red ticks where they fall and black dots on the
    beats they land on. The x axis is labelled in timecode.

    ``cues``: ``SpottedCue.as_row()`` rows (``cue, start_s, duration_s, bpm, tc_in, fps``); ``hits``:
    ``Spotting.hit_table()`` rows (``cue, tc, beat_tc, label``), optional.
    """
    from ..spotting import frames_to_tc, tc_to_frames, timecode_rate

    ax = get_ax(ax, figsize=(8.0, 2.6))
    if cues is None or cues.empty:
        return empty_axes(ax, "no cut: the cue times are the page-count estimate")
    rate = timecode_rate(float(cues["fps"].iloc[0]))
    origin = tc_to_frames(cues["tc_in"].iloc[0], rate) - round(float(cues["start_s"].iloc[0]) * rate)
    for k, rec in enumerate(cues.to_dict("records")):
        ax.barh(0, rec["duration_s"], left=rec["start_s"], height=0.6, color=["#4a6fa5", "#7f9cc9"][k % 2],
                edgecolor="white")
        ax.text(rec["start_s"] + rec["duration_s"] / 2, 0, f"{rec['cue']}\n{rec['bpm']:g} bpm", ha="center",
                va="center", fontsize=7, color="white")
    if hits is not None and len(hits):
        at = [(tc_to_frames(t, rate) - origin) / rate for t in hits["tc"]]
        beat = [(tc_to_frames(t, rate) - origin) / rate for t in hits["beat_tc"]]
        ax.vlines(at, -0.45, 0.45, color="#c0392b", linewidth=1.5, label="hit point")
        ax.plot(beat, [0.38] * len(beat), "o", color="black", markersize=3, label="beat it lands on")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    end = float((cues["start_s"] + cues["duration_s"]).max())
    # ticks on whole timecode seconds (…:05:00, …:10:00, which an editor reads at a glance): round seconds of the
    # cut, each moved to the nearest frame whose timecode has frame field 00 (drop-frame timecode runs 0.1 % slow)
    from matplotlib.ticker import MaxNLocator

    nominal = round(rate)
    xt = []
    for x in MaxNLocator(nbins=ticks, steps=[1, 2, 5, 10]).tick_values(0.0, end):
        f = origin + round(x * rate)
        ff = int(frames_to_tc(f, rate)[-2:])
        f += nominal - ff if ff > nominal // 2 else -ff
        if 0.0 <= (f - origin) / rate <= end:
            xt.append((f - origin) / rate)
    ax.set_xticks(xt)
    ax.set_xticklabels([frames_to_tc(origin + round(x * rate), rate) for x in xt], rotation=30, ha="right",
                       fontsize=7)
    ax.set(xlim=(0, end), ylim=(-0.6, 0.6), yticks=[], xlabel="record timecode")
    return ax
