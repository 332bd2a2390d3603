"""Products of an analysis: contract CSVs, the paper's Tables 3-4 and Figures 1-5 (+ better versions), metrics.

Every title, caption and metrics file of a simulated study carries "SIMULATED responses".
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..artifacts import atomic_write_text, ensure_dir, write_json, write_table
from ..plots import listening as lplots
from ..plots import save_figure, styled
from .analysis import ListeningResults, model_name

__all__ = ["SIMULATED_LABEL", "make_figures", "make_tables", "metrics", "summary_text", "write_outputs"]

SIMULATED_LABEL = "SIMULATED responses"
QUESTION_MEANS_COLUMNS = ["model", "question", "mean", "ci_low", "ci_high", "n"]
PREFERENCE_COLUMNS = ["criterion", "model", "share", "ci_low", "ci_high", "p_value"]
FIGURE_NAMES = ("07_fig1_mos_questions", "07_fig2_overall", "07_fig3_participant_boxplots", "07_fig4_preferences",
                "07_fig5_rel_questions", "07_question_intervals", "07_overall_intervals", "07_paired_slopes")


def _title(text: str, results: ListeningResults) -> str:
    return f"{text} — {SIMULATED_LABEL}" if results.simulated else text


@styled
def make_figures(results: ListeningResults) -> dict[str, plt.Figure]:
    """The figures by file name: ``07_fig1_mos_questions`` … ``07_fig5_rel_questions`` (the paper's five),
    ``07_question_intervals``, ``07_overall_intervals`` and ``07_paired_slopes``."""
    r, models = results, results.models
    qs = list(r.study.questions["question"])
    figs: dict[str, plt.Figure] = {}

    ax = lplots.question_bars(r.question_means, models=models, dimension="MOS", questions=qs,
                              title=_title("Figure 1: mean MOS score per question", r))
    figs["07_fig1_mos_questions"] = ax.figure
    ax = lplots.dimension_bars(r.dimension_means, models=models, title=_title("Figure 2: overall MOS and REL", r))
    figs["07_fig2_overall"] = ax.figure
    ax = lplots.participant_boxplots(r.participant_means, models=models,
                                     title=_title("Figure 3: participants' mean MOS and REL", r))
    figs["07_fig3_participant_boxplots"] = ax.figure
    if not r.preference_shares.empty:
        fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.4))
        for a, crit in zip(axes, ("MOS", "REL"), strict=True):
            lplots.preference_pie(r.preference_shares, criterion=crit, models=models, ax=a,
                                  title=f"Preferred for {'musical quality' if crit == 'MOS' else 'the scene'} ({crit})")
        fig.suptitle(_title("Figure 4: binary preferences", r))
        figs["07_fig4_preferences"] = fig
    ax = lplots.question_bars(r.question_means, models=models, dimension="REL", questions=qs,
                              title=_title("Figure 5: mean REL score per question", r))
    figs["07_fig5_rel_questions"] = ax.figure

    pct = f"{r.confidence:.0%}"
    ax = lplots.interval_plot(r.question_means, models=models, questions=qs,
                              title=_title(f"Question means with {pct} t-intervals", r))
    figs["07_question_intervals"] = ax.figure
    ax = lplots.dimension_bars(r.dimension_means, models=models, error_bars=True,
                               title=_title(f"Overall MOS and REL with {pct} t-intervals", r))
    figs["07_overall_intervals"] = ax.figure
    if r.compared:
        fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.6), sharey=True)
        for a, dim in zip(axes, ("MOS", "REL"), strict=True):
            t = r.tests[(r.tests["level"] == "dimension") & (r.tests["name"] == dim) &
                        (r.tests["model"] == r.compared[0])]
            sub = f"{dim}: Wilcoxon p={t['p_value'].iloc[0]:.3g}" if len(t) and np.isfinite(t["p_value"].iloc[0]) \
                else dim
            lplots.paired_slopes(r.participant_means, dimension=dim, model=r.compared[0], baseline=r.baseline,
                                 ax=a, title=sub)
        fig.suptitle(_title("Paired by participant", r))
        figs["07_paired_slopes"] = fig
    return figs


def make_tables(results: ListeningResults) -> dict[str, tuple[pd.DataFrame, str]]:
    """Tables by file name → ``(frame, caption)``: ``07_table3_mos`` and ``07_table4_rel`` (the paper's Tables
    3-4), ``07_tests``, ``07_preferences``, ``07_agreement``."""
    r = results
    sim = f" ({SIMULATED_LABEL})" if r.simulated else ""
    tests = r.tests.copy()
    if not tests.empty:
        tests["model"] = tests["model"].map(model_name)
        tests["baseline"] = tests["baseline"].map(model_name)
        tests = tests.drop(columns=["dimension", "significant"])
    prefs = r.preference_shares.copy()
    prefs["model"] = prefs["model"].map(model_name)
    out = {
        "07_table3_mos": (r.question_table("MOS"), f"Mean opinion scores for musical quality (MOS), 1-5{sim}"),
        "07_table4_rel": (r.question_table("REL"), f"Relevance to the script (REL), mean scores 1-5{sim}"),
        "07_tests": (tests, f"Wilcoxon signed-rank tests against {model_name(r.baseline)}, paired by participant; "
                            f"Holm-adjusted p; rank-biserial effect size{sim}"),
        "07_preferences": (prefs, f"Binary preferences: shares, Wilson {r.confidence:.0%} intervals, exact "
                                  f"binomial test against chance{sim}"),
        "07_agreement": (r.agreement, f"Inter-rater agreement, Krippendorff's alpha (ordinal){sim}"),
    }
    if r.simulated:
        for name in ("07_tests", "07_preferences", "07_agreement"):
            out[name][0]["data"] = SIMULATED_LABEL
    return out


def metrics(results: ListeningResults, *, pack=None) -> dict:
    """A JSON-able summary (the stage's ``metrics.json``)."""
    r = results
    qm = r.question_means
    dm = r.dimension_means
    out = {
        "data": SIMULATED_LABEL if r.simulated else "collected responses",
        "simulated": r.simulated,
        "baseline": r.baseline,
        "models": r.models,
        "study": r.study.summary(),
        "confidence": r.confidence,
        "interval_method": "Student-t interval over ratings",
        "question_means": {m: dict(zip(g["question"], g["mean"].round(4), strict=True))
                           for m, g in qm.groupby("model")},
        "dimension_means": {m: dict(zip(g["dimension"], g["mean"].round(4), strict=True))
                            for m, g in dm.groupby("model")},
        "tests": {m: {t.name: {"p_value": t.p_value, "p_holm": t.p_holm, "rank_biserial": t.rank_biserial,
                               "mean_diff": t.mean_diff, "n": t.n} for t in g.itertuples()}
                  for m, g in r.tests.groupby("model")} if not r.tests.empty else {},
        "preference_shares": {c: {t.model: {"share": t.share, "ci_low": t.ci_low, "ci_high": t.ci_high,
                                            "p_value": t.p_value, "count": t.count, "n": t.n}
                                  for t in g.itertuples()}
                              for c, g in r.preference_shares.groupby("criterion")},
        "krippendorff_alpha": dict(zip(r.agreement["scope"], r.agreement["alpha"], strict=True)),
        "power": r.power.to_dict(orient="records"),
        "power_note": r.power_note,
        "notes": r.notes,
    }
    if pack is not None:
        out["pack"] = pack.metrics()
    return out


def summary_text(results: ListeningResults) -> str:
    """A short plain-text summary (what ``echoscript listening analyze`` prints)."""
    r = results
    lines = []
    if r.simulated:
        lines.append(f"*** {SIMULATED_LABEL}: the numbers below test the code, not the models ***")
    s = r.study.summary()
    lines.append(f"{s['participants']} participants, {s['scenarios']} scenarios, {s['clips']} clips, "
                 f"{s['ratings']} ratings; baseline {r.baseline}")
    for row in r.dimension_means.itertuples():
        lines.append(f"  {row.dimension} {model_name(row.model)}: {row.mean:.2f} "
                     f"[{row.ci_low:.2f}, {row.ci_high:.2f}] (n={row.n})")
    for t in r.tests[r.tests["level"] == "dimension"].itertuples() if not r.tests.empty else []:
        lines.append(f"  {t.name}: {model_name(t.model)} − {model_name(t.baseline)} = {t.mean_diff:+.2f}, "
                     f"Wilcoxon p={t.p_value:.3g} (Holm {t.p_holm:.3g}), rank-biserial {t.rank_biserial:+.2f}")
    for t in r.preference_shares.itertuples():
        lines.append(f"  preference {t.criterion} {model_name(t.model)}: {t.share:.1%} "
                     f"[{t.ci_low:.1%}, {t.ci_high:.1%}], binomial p={t.p_value:.3g}")
    alpha = dict(zip(r.agreement["scope"], r.agreement["alpha"], strict=True))
    lines.append(f"  Krippendorff's alpha (ordinal): overall {alpha.get('overall', float('nan')):.3f}")
    lines.append("  " + r.power_note)
    return "\n".join(lines)


def write_outputs(results: ListeningResults, out_dir: str | os.PathLike, *, figures_dir=None, tables_dir=None,
                  figures: dict | None = None, close: bool = True) -> dict[str, Path]:
    """Write the analysis: contract CSVs (``question_means.csv``, ``preference_shares.csv``) and the detail CSVs
    in ``out_dir``; figures (PDF + PNG) in ``figures_dir`` and tables (CSV + LaTeX) in ``tables_dir`` (default
    ``out_dir/figures`` and ``out_dir/tables``); ``summary.json`` and ``summary.txt``. Returns the paths."""
    out = ensure_dir(out_dir)
    figures_dir = Path(figures_dir) if figures_dir is not None else out / "figures"
    tables_dir = Path(tables_dir) if tables_dir is not None else out / "tables"
    r = results
    paths: dict[str, Path] = {}

    def csv(name: str, df: pd.DataFrame) -> None:
        if r.simulated:
            df = df.assign(data=SIMULATED_LABEL)
        paths[name] = atomic_write_text(out / name, df.to_csv(index=False, lineterminator="\n"))

    # contract files keep exactly their columns (the SIMULATED marker lives in summary.json and the folder)
    paths["question_means.csv"] = atomic_write_text(
        out / "question_means.csv", r.question_means[QUESTION_MEANS_COLUMNS].to_csv(index=False, lineterminator="\n"))
    paths["preference_shares.csv"] = atomic_write_text(
        out / "preference_shares.csv",
        r.preference_shares[PREFERENCE_COLUMNS].to_csv(index=False, lineterminator="\n"))
    csv("dimension_means.csv", r.dimension_means)
    csv("participant_means.csv", r.participant_means)
    csv("tests.csv", r.tests)
    csv("preference_details.csv", r.preference_shares)
    csv("agreement.csv", r.agreement)
    csv("breakdown.csv", r.breakdown)
    csv("power.csv", r.power)
    paths["summary.json"] = write_json(out / "summary.json", metrics(r))
    paths["summary.txt"] = atomic_write_text(out / "summary.txt", summary_text(r) + "\n")
    if r.simulated:
        paths["SIMULATED.txt"] = atomic_write_text(out / "SIMULATED.txt",
                                                   f"{SIMULATED_LABEL}: this analysis was made from simulated "
                                                   f"ratings and says nothing about the models.\n")
    else:  # a real study analysed where a simulated one was before: drop the stale marker
        (out / "SIMULATED.txt").unlink(missing_ok=True)
    for name, (df, caption) in make_tables(r).items():
        paths[name] = write_table(df, tables_dir, name, caption=caption)[0]
    figs = figures if figures is not None else make_figures(r)
    for name in set(FIGURE_NAMES) - set(figs):  # e.g. no preferences this time: no stale pie from an earlier run
        for ext in ("pdf", "png"):
            (figures_dir / f"{name}.{ext}").unlink(missing_ok=True)
    for name, fig in figs.items():
        paths[name] = save_figure(fig, name, figures_dir)["png"]
        if close and figures is None:
            plt.close(fig)
    return paths
