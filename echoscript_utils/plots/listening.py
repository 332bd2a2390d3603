"""Listening-test plots: the paper's five figures and the interval / paired versions that go beyond them.

Each function draws on ``ax`` (a new one when None), returns it, and never saves; pass ``title`` to set the
title (the analysis adds "SIMULATED responses" to every title of a simulated study).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .core import MODEL_COLORS, get_ax, group_offsets, styled

__all__ = ["dimension_bars", "interval_plot", "paired_slopes", "participant_boxplots", "preference_pie",
           "question_bars"]

_NAMES = {"echoscript": "EchoScript", "musicgen": "MusicGen"}


def _name(m: str) -> str:
    return _NAMES.get(m, m)


def _color(m: str, i: int) -> str:
    import matplotlib.pyplot as plt

    return MODEL_COLORS.get(m, plt.rcParams["axes.prop_cycle"].by_key()["color"][i % 10])


def _label(q: str) -> str:
    return q.replace("_", " ").capitalize()


def _grouped_bars(ax, groups, models, values, lows=None, highs=None):
    offsets, width = group_offsets(len(models))
    x = np.arange(len(groups))
    for i, m in enumerate(models):
        v = np.array([values.get((g, m), np.nan) for g in groups], dtype=float)
        kw = {}
        if lows is not None:
            lo = np.array([lows.get((g, m), np.nan) for g in groups], dtype=float)
            hi = np.array([highs.get((g, m), np.nan) for g in groups], dtype=float)
            kw = {"yerr": np.vstack([v - lo, hi - v]), "capsize": 3, "error_kw": {"elinewidth": 1}}
        bars = ax.bar(x + offsets[i], v, width, label=_name(m), color=_color(m, i), **kw)
        for b, val in zip(bars, v, strict=True):
            if np.isfinite(val) and lows is None:
                ax.annotate(f"{val:.2f}", (b.get_x() + b.get_width() / 2, val), ha="center", va="bottom",
                            fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(x)
    return x


def _mean_bars(means: pd.DataFrame, key: str, groups: list[str], labels: list[str], *, models,
               error_bars: bool, ax, title: str | None):
    """Mean score per ``key`` group (``groups`` in order, ticks ``labels``) and model, with the intervals when
    ``error_bars``: the one body of :func:`question_bars` and :func:`dimension_bars`."""
    rows = list(means.itertuples())
    vals = {(getattr(r, key), r.model): r.mean for r in rows}
    lows = highs = None
    if error_bars:
        lows = {(getattr(r, key), r.model): r.ci_low for r in rows}
        highs = {(getattr(r, key), r.model): r.ci_high for r in rows}
    _grouped_bars(ax, groups, list(models), vals, lows, highs)
    ax.set_xticklabels(labels)
    ax.set_ylim(1, 5.4)
    ax.set_ylabel("mean score (1–5)")
    ax.legend(loc="upper right", ncols=len(models))
    if title:
        ax.set_title(title)
    return ax


@styled
def question_bars(question_means: pd.DataFrame, *, models, dimension: str | None = None, questions=None,
                  error_bars: bool = False, ax=None, title: str | None = None):
    """Mean Likert score per question and model (paper Figures 1 and 5; ``error_bars`` adds the intervals).

    ``question_means`` needs ``model,question,mean`` (+ ``dimension`` to filter, ``ci_low,ci_high`` for bars).
    """
    ax = get_ax(ax)
    qm = question_means if dimension is None else question_means[question_means["dimension"] == dimension]
    questions = [q for q in (questions or list(dict.fromkeys(qm["question"]))) if q in set(qm["question"])]
    return _mean_bars(qm, "question", questions, [_label(q).replace(" ", "\n", 1) for q in questions],
                      models=models, error_bars=error_bars, ax=ax, title=title)


@styled
def dimension_bars(dimension_means: pd.DataFrame, *, models, error_bars: bool = False, ax=None,
                   title: str | None = None):
    """Overall MOS and REL per model (paper Figure 2). Needs ``model,dimension,mean`` (+ ``ci_low,ci_high``)."""
    ax = get_ax(ax)
    dims = list(dict.fromkeys(dimension_means["dimension"]))
    return _mean_bars(dimension_means, "dimension", dims, dims, models=models, error_bars=error_bars, ax=ax,
                      title=title)


@styled
def participant_boxplots(participant_means: pd.DataFrame, *, models, ax=None, title: str | None = None):
    """Distribution of each participant's mean MOS and REL per model (paper Figure 3).

    Needs ``participant_means`` rows with ``level == "dimension"`` (``name`` = MOS/REL, ``model``, ``mean``).
    """
    ax = get_ax(ax)
    pm = participant_means[participant_means["level"] == "dimension"]
    dims = list(dict.fromkeys(pm["name"]))
    models = list(models)
    offsets, width = group_offsets(len(models))
    for i, m in enumerate(models):
        data = [pm[(pm["name"] == d) & (pm["model"] == m)]["mean"].to_numpy() for d in dims]
        pos = np.arange(len(dims)) + offsets[i]
        bp = ax.boxplot(data, positions=pos, widths=width * 0.85, patch_artist=True, manage_ticks=False)
        for box in bp["boxes"]:
            box.set_facecolor(_color(m, i))
            box.set_alpha(0.75)
        for med in bp["medians"]:
            med.set_color("black")
        ax.plot([], [], color=_color(m, i), lw=8, alpha=0.75, label=_name(m))
    ax.set_xticks(np.arange(len(dims)))
    ax.set_xticklabels(dims)
    ax.set_ylim(0.8, 5.2)
    ax.set_ylabel("participant's mean score")
    ax.legend(loc="lower right", ncols=len(models))
    if title:
        ax.set_title(title)
    return ax


@styled
def preference_pie(shares: pd.DataFrame, *, criterion: str, models, ax=None, title: str | None = None):
    """Share of binary preferences per model for one criterion (paper Figure 4; one pie per criterion).

    Needs ``criterion,model,share`` (+ ``count``).
    """
    ax = get_ax(ax)
    sub = shares[shares["criterion"] == criterion].set_index("model")
    models = [m for m in models if m in sub.index]
    vals = [float(sub.loc[m, "share"]) for m in models]
    ax.pie(vals, labels=[_name(m) for m in models], colors=[_color(m, i) for i, m in enumerate(models)],
           autopct="%.1f%%", startangle=90, counterclock=False, wedgeprops={"edgecolor": "white"})
    ax.set_aspect("equal")
    ax.set_title(title or f"Preference ({criterion})")
    return ax


@styled
def paired_slopes(participant_means: pd.DataFrame, *, dimension: str, model: str, baseline: str, ax=None,
                  title: str | None = None):
    """One line per participant from their baseline mean to their ``model`` mean on ``dimension``, plus the
    group means (the paired view the Wilcoxon test uses)."""
    ax = get_ax(ax)
    pm = participant_means[(participant_means["level"] == "dimension") & (participant_means["name"] == dimension)]
    wide = pm.pivot_table(index="participant", columns="model", values="mean")[[baseline, model]].dropna()
    for _, r in wide.iterrows():
        up = r[model] > r[baseline]
        ax.plot([0, 1], [r[baseline], r[model]], color=_color(model, 1) if up else "#1f77b4", alpha=0.45, lw=1,
                marker="o", ms=3)
    ax.plot([0, 1], [wide[baseline].mean(), wide[model].mean()], color="black", lw=2.5, marker="s",
            label="mean")
    ax.set_xticks([0, 1])
    ax.set_xticklabels([_name(baseline), _name(model)])
    ax.set_xlim(-0.3, 1.3)
    ax.set_ylim(0.8, 5.2)
    ax.set_ylabel(f"participant's mean {dimension}")
    ax.legend(loc="lower right")
    ax.set_title(title or f"{dimension}: paired by participant")
    return ax


@styled
def interval_plot(question_means: pd.DataFrame, *, models, questions=None, ax=None, title: str | None = None):
    """Every question's mean with its interval, models side by side (a forest plot of ``question_means``)."""
    ax = get_ax(ax, figsize=(6.4, 4.2))
    questions = questions or list(dict.fromkeys(question_means["question"]))
    y = np.arange(len(questions))[::-1]
    models = list(models)
    offsets, _ = group_offsets(len(models), span=0.6)
    for i, m in enumerate(models):
        sub = question_means[question_means["model"] == m].set_index("question").reindex(questions)
        yy = y + offsets[i]
        ax.errorbar(sub["mean"], yy, xerr=np.vstack([sub["mean"] - sub["ci_low"], sub["ci_high"] - sub["mean"]]),
                    fmt="o", color=_color(m, i), capsize=3, label=_name(m))
    ax.set_yticks(y)
    ax.set_yticklabels([_label(q) for q in questions])
    ax.set_xlim(1, 5)
    ax.set_xlabel("mean score with interval (1–5)")
    ax.legend(loc="lower left")
    if title:
        ax.set_title(title)
    return ax
