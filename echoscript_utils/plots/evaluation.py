"""Evaluation figures: FAD with intervals per embedding and model, the paired difference, the FAD∞ fit, and the
per-clip leave-one-out contributions. Each function draws on ``ax`` (a new one when ``None``) and returns it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .core import MODEL_COLORS, empty_axes, get_ax, group_offsets, styled

__all__ = ["clip_contributions", "fad_infinity", "fad_intervals", "paired_difference"]

_FALLBACK = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")


def _color(model: str, i: int) -> str:
    return MODEL_COLORS.get(model, _FALLBACK[i % len(_FALLBACK)])


@styled
def fad_intervals(table, *, ax=None, relative_to: str | None = None, log: bool = True):
    """FAD point and interval for every (embedding, model): one row per embedding, one marker per model.

    Args:
        table: :func:`echoscript_utils.fad.fad_table` output (``embedding, model, fad, ci_low, ci_high``).
        relative_to: divide each embedding's FADs and intervals by this model's FAD on that embedding (e.g. the
            baseline), so embeddings whose FADs differ by orders of magnitude share one linear axis.
        log: log-scale x axis when plotting absolute FADs.
    """
    ax = get_ax(ax)
    if relative_to is not None and relative_to in set(table["model"]):
        base = table[table["model"] == relative_to].set_index("embedding")["fad"]
        scale = table["embedding"].map(base).to_numpy(dtype=float)
        table = table.assign(fad=table["fad"] / scale, ci_low=table["ci_low"] / scale,
                             ci_high=table["ci_high"] / scale)
        log = False
    else:
        relative_to = None
    embeddings = list(dict.fromkeys(table["embedding"]))
    models = list(dict.fromkeys(table["model"]))
    offsets, _ = group_offsets(len(models), span=0.6)
    for j, model in enumerate(models):
        sub = table[table["model"] == model].set_index("embedding")
        y = np.array([embeddings.index(e) for e in sub.index]) + offsets[j]
        x = sub["fad"].to_numpy(dtype=float)
        lo = sub["ci_low"].to_numpy(dtype=float)
        hi = sub["ci_high"].to_numpy(dtype=float)
        has_ci = np.isfinite(lo) & np.isfinite(hi)
        err = np.vstack([np.where(has_ci, np.clip(x - lo, 0, None), 0), np.where(has_ci, np.clip(hi - x, 0, None), 0)])
        ax.errorbar(x, y, xerr=err, fmt="o", capsize=3, color=_color(model, j), label=model)
    ax.set_yticks(range(len(embeddings)), embeddings)
    ax.invert_yaxis()
    if log and (table["fad"] > 0).all():
        ax.set_xscale("log")
    if relative_to is not None:
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_xlabel(f"FAD / FAD({relative_to}) on the same embedding (lower is closer)")
    else:
        ax.set_xlabel("FAD to the reference (lower is closer)")
    ax.set_title("FAD per embedding, with bootstrap intervals")
    ax.legend(loc="best")
    return ax


@styled
def paired_difference(paired, *, ax=None):
    """``FAD_a − FAD_b`` with its paired-bootstrap interval per embedding; left of 0 means a is closer."""
    ax = get_ax(ax)
    if paired.empty:
        return empty_axes(ax, "no pair of models to compare")
    y = np.arange(len(paired))
    d = paired["difference"].to_numpy(dtype=float)
    err = np.vstack([np.clip(d - paired["ci_low"].to_numpy(dtype=float), 0, None),
                     np.clip(paired["ci_high"].to_numpy(dtype=float) - d, 0, None)])
    colors = ["#d62728" if s else "#7f7f7f" for s in paired["significant"]]
    for yi, di, e0, e1, c in zip(y, d, err[0], err[1], colors):
        ax.errorbar([di], [yi], xerr=[[e0], [e1]], fmt="o", capsize=3, color=c)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(y, paired["embedding"])
    ax.invert_yaxis()
    a, b = paired["a"].iloc[0], paired["b"].iloc[0]
    ax.set_xlabel(f"FAD({a}) − FAD({b})   (< 0: {a} closer)")
    ax.set_title("Paired bootstrap difference (red: interval excludes 0)")
    return ax


@styled
def fad_infinity(fits: Mapping, *, ax=None):
    """FAD at subset sizes N against 1/N with the fitted line extended to 1/N = 0 (the FAD∞ intercept)."""
    ax = get_ax(ax)
    for i, (model, fit) in enumerate(fits.items()):
        pts = fit.points
        c = _color(model, i)
        ax.errorbar(pts["inv_n"], pts["fad"], yerr=pts["fad_std"], fmt="o", color=c, capsize=2, label=model)
        xs = np.linspace(0.0, float(pts["inv_n"].max()), 50)
        ax.plot(xs, fit.fad_inf + fit.slope * xs, "--", color=c, lw=1)
        ax.plot([0.0], [fit.fad_inf], marker="*", ms=12, color=c)
        ax.annotate(f"FAD∞ {fit.fad_inf:.3g}", (0.0, fit.fad_inf), textcoords="offset points", xytext=(6, 4),
                    fontsize=8, color=c)
    ax.set_xlim(left=0.0)
    ax.set_xlabel("1 / N (generated clips)")
    ax.set_ylabel("FAD")
    ax.set_title("FAD∞: extrapolation to an infinite generated set")
    if fits:
        ax.legend(loc="best")
    return ax


@styled
def clip_contributions(outliers, *, ax=None, top: int = 15):
    """Leave-one-out ``delta`` of the most influential generated clips (outliers in red)."""
    ax = get_ax(ax)
    df = outliers.head(top)
    y = np.arange(len(df))
    colors = ["#d62728" if o else "#7f7f7f" for o in df["outlier"]]
    ax.barh(y, df["delta"], color=colors)
    ax.set_yticks(y, [f"{m}/{c}" for m, c in zip(df["model"], df["clip"])], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlabel("FAD(all) − FAD(without clip)   (> 0: clip pulls away from the reference)")
    ax.set_title("Per-clip contribution (leave one out)")
    return ax
