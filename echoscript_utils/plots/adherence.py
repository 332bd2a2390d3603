"""Figures of cue adherence (stages 05 and 08; each draws on ``ax`` and returns it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .core import MODEL_COLORS, empty_axes, get_ax, styled


@styled
def validation_bars(validation: pd.DataFrame, summary: pd.DataFrame | None = None, *, ax=None):
    """Each metric's ceiling (scored against the demo corpus's own truth) and floor (against shuffled briefs), with
    the models' means beside them when ``summary`` is given.

    Args:
        validation: :func:`echoscript_utils.adherence.validate`'s table (``metric, ceiling, floor, validated``).
        summary: :func:`echoscript_utils.adherence.adherence_summary`'s table (``model, metric, mean, ci_low,
            ci_high``); its metrics not in ``validation`` are left out.

    Error metrics (lower is better) are drawn as ``1 − value / floor``, so that for every metric up is better, the
    floor sits at 0 and the ceiling shows how much of the way to perfect the truth gets. Metrics the corpus does
    not validate are left out and named under the axis. Values are clipped to [−0.5, 1].
    """
    if validation is None or not len(validation):
        return empty_axes(get_ax(ax), "no validation")
    left_out = list(validation.loc[~validation["validated"].astype(bool), "metric"])
    v = validation[validation["validated"].astype(bool)].reset_index(drop=True)
    ax = get_ax(ax, figsize=(max(6.0, 0.55 * len(v) + 2), 3.6))

    def scaled(metric_row, value):
        if not metric_row["higher_is_better"]:
            value = 1.0 - value / metric_row["floor"] if metric_row["floor"] > 0 else np.nan
        return float(np.clip(value, -0.5, 1.0))

    x = np.arange(len(v))
    models = [] if summary is None or not len(summary) else list(dict.fromkeys(summary["model"]))
    width = 0.8 / (2 + len(models))
    ax.bar(x - 0.4 + width / 2, [scaled(r, r["ceiling"]) for _, r in v.iterrows()], width, color="#1b9e77",
           label="ceiling (own truth)")
    ax.bar(x - 0.4 + 1.5 * width, [scaled(r, r["floor"]) for _, r in v.iterrows()], width, color="#bbbbbb",
           label="floor (shuffled briefs)")
    # every model its own colour: the house colours where it has one, else one no other bar uses
    taken = {"#1b9e77", "#bbbbbb", *(MODEL_COLORS[m] for m in models if m in MODEL_COLORS)}
    spare = (c for c in ("#1f77b4", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22") if c not in taken)
    for k, model in enumerate(models):
        s = summary[summary["model"] == model].set_index("metric")
        vals = [scaled(r, s.loc[r["metric"], "mean"]) if r["metric"] in s.index else np.nan for _, r in v.iterrows()]
        color = MODEL_COLORS.get(model) or next(spare, f"C{k}")
        ax.bar(x - 0.4 + (2.5 + k) * width, vals, width, color=color, label=model)
    ax.set_xticks(x, list(v["metric"]), rotation=60, ha="right", fontsize=8)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set(ylim=(-0.55, 1.45), ylabel="score (error metrics: 1 − error / floor)")
    ax.legend(fontsize=7, ncol=3 + len(models) // 2, loc="upper left", frameon=False)
    if left_out:
        ax.set_title("not validated on the corpus: " + ", ".join(left_out), fontsize=8, loc="left")
    return ax
