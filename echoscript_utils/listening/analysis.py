"""Statistics of a listening test: means with intervals, paired tests, preferences, agreement, power.

Choices (stated once, used everywhere):

- **Means** (``question_means``, ``dimension_means``): the plain mean of all ratings of a model; the 95 %
  interval is a Student-t interval over those ratings (``mean ± t(0.975, n-1)·sd/√n``, ``n`` = ratings). It
  treats ratings as independent; the tests below use the participant as the unit instead.
- **Paired tests**: each participant's mean score per model (over scenarios, and over the dimension's questions
  for MOS / REL) → Wilcoxon signed-rank test (scipy, two-sided, zero differences dropped; exact null
  distribution without ties and up to 50 pairs, else the normal approximation) of each model against
  the baseline; effect size = matched-pairs rank-biserial correlation ``(R+ − R−) / (R+ + R−)``; Holm
  correction across the questions (and, separately, across the two dimensions) per compared model.
- **Preferences**: share of choices per model and criterion, Wilson score interval (statsmodels) and an exact
  two-sided binomial test (scipy) against chance (1 / number of models).
- **Agreement**: Krippendorff's α (ordinal, value domain 1-5) with participants as raters and
  (clip, question) as units.
- **Power**: the paired effect ``dz = mean(diff) / sd(diff)`` over participants → statsmodels ``TTestPower``
  gives the participants needed for 80 % power at α = 0.05 (Wilcoxon needs about 1 / 0.955 as many under
  normality, its asymptotic relative efficiency).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InputError
from ..stats import WILCOXON_ARE, rank_biserial, t_interval, wilcoxon_paired
from .study import DIMENSIONS, QUESTION_LABELS, Study

__all__ = [
    "ListeningResults",
    "agreement",
    "analyze",
    "choose_baseline",
    "demographic_breakdown",
    "dimension_means",
    "paired_tests",
    "participant_means",
    "power_analysis",
    "preference_shares",
    "question_means",
    "rank_biserial",
    "t_interval",
    "wilcoxon_paired",
]

#: Display names of the two standard model labels.
MODEL_NAMES = {"echoscript": "EchoScript", "musicgen": "MusicGen"}


def model_name(label: str) -> str:
    return MODEL_NAMES.get(label, label)


def choose_baseline(models, baseline: str | None = None) -> str:
    """The reference model: ``baseline`` if given (must be one of ``models``), else ``musicgen`` if present,
    else the first label in sorted order."""

    models = sorted(models)
    if baseline is not None:
        if baseline not in models:
            raise InputError(f"--baseline {baseline!r} is not a model in key.csv (models: {', '.join(models)})")
        return baseline
    return "musicgen" if "musicgen" in models else models[0]


def _model_order(models, baseline: str) -> list[str]:
    """Compared models first (as in the paper's tables: EchoScript, MusicGen), the baseline last."""
    return [m for m in sorted(models) if m != baseline] + [baseline]


# ------------------------------------------------------------------------------------------------ means
def question_means(study: Study, *, confidence: float = 0.95) -> pd.DataFrame:
    """Per model and question: ``model,question,dimension,mean,ci_low,ci_high,n`` (t-interval over ratings)."""
    rows = []
    order = {q: i for i, q in enumerate(study.questions["question"])}
    for (model, question), g in study.responses.groupby(["model", "question"], sort=False):
        mean, lo, hi, n = t_interval(g["score"], confidence=confidence)
        rows.append({"model": model, "question": question, "dimension": g["dimension"].iloc[0], "mean": mean,
                     "ci_low": lo, "ci_high": hi, "n": n})
    df = pd.DataFrame(rows)
    df["_q"] = df["question"].map(order)
    return df.sort_values(["model", "_q"]).drop(columns="_q").reset_index(drop=True)


def dimension_means(study: Study, *, confidence: float = 0.95) -> pd.DataFrame:
    """MOS and REL aggregates per model: ``model,dimension,mean,ci_low,ci_high,n`` (t-interval over ratings)."""
    rows = []
    for (model, dim), g in study.responses.groupby(["model", "dimension"]):
        mean, lo, hi, n = t_interval(g["score"], confidence=confidence)
        rows.append({"model": model, "dimension": dim, "mean": mean, "ci_low": lo, "ci_high": hi, "n": n})
    return pd.DataFrame(rows).sort_values(["model", "dimension"]).reset_index(drop=True)


def participant_means(study: Study) -> pd.DataFrame:
    """Each participant's mean score per model, for every question and every dimension.

    Returns ``participant,model,level,name,dimension,mean,n`` with ``level`` ``question`` or ``dimension``
    (``name`` is the question or ``MOS`` / ``REL``).
    """
    r = study.responses
    q = r.groupby(["participant", "model", "question", "dimension"], as_index=False)["score"].agg(["mean", "size"])
    q = q.rename(columns={"question": "name", "size": "n"}).assign(level="question")
    d = r.groupby(["participant", "model", "dimension"], as_index=False)["score"].agg(["mean", "size"])
    d = d.rename(columns={"size": "n"}).assign(level="dimension", name=lambda x: x["dimension"])
    cols = ["participant", "model", "level", "name", "dimension", "mean", "n"]
    return pd.concat([q[cols], d[cols]], ignore_index=True)


# ------------------------------------------------------------------------------------------------ tests


def _paired_frame(pm: pd.DataFrame, level: str, name: str, model: str, baseline: str) -> pd.DataFrame:
    sub = pm[(pm["level"] == level) & (pm["name"] == name) & pm["model"].isin([model, baseline])]
    wide = sub.pivot_table(index="participant", columns="model", values="mean")
    if model not in wide or baseline not in wide:
        return pd.DataFrame(columns=[model, baseline])
    return wide[[model, baseline]].dropna()


def paired_tests(study: Study, *, baseline: str, pm: pd.DataFrame | None = None) -> pd.DataFrame:
    """Wilcoxon signed-rank tests of every model against ``baseline``, paired by participant.

    Returns one row per (level, name, model): ``level`` (``question`` / ``dimension``), ``name``, ``dimension``,
    ``model``, ``baseline``, ``n`` (participants with both), ``mean_model``, ``mean_baseline``, ``mean_diff``,
    ``statistic``, ``p_value``, ``method`` (exact / approx), ``p_holm`` (Holm across the questions, or across the dimensions, of that model),
    ``rank_biserial``, ``dz`` (mean / sd of the differences), ``significant`` (``p_holm < 0.05``).
    """
    from statsmodels.stats.multitest import multipletests

    pm = participant_means(study) if pm is None else pm
    units = [("question", q, d) for q, d in zip(study.questions["question"], study.questions["dimension"],
                                                strict=True)]
    units += [("dimension", d, d) for d in DIMENSIONS if d in set(study.questions["dimension"])]
    rows = []
    for model in [m for m in study.models if m != baseline]:
        for level, name, dim in units:
            w = _paired_frame(pm, level, name, model, baseline)
            x, y = w[model].to_numpy(), w[baseline].to_numpy()
            stat, p, method = wilcoxon_paired(x, y)
            diff = x - y
            sd = float(diff.std(ddof=1)) if diff.size > 1 else float("nan")
            rows.append({"level": level, "name": name, "dimension": dim, "model": model, "baseline": baseline,
                         "n": int(len(w)), "mean_model": float(x.mean()) if x.size else float("nan"),
                         "mean_baseline": float(y.mean()) if y.size else float("nan"),
                         "mean_diff": float(diff.mean()) if diff.size else float("nan"),
                         "statistic": stat, "p_value": p, "method": method, "rank_biserial": rank_biserial(x, y),
                         "dz": float(diff.mean() / sd) if sd and np.isfinite(sd) and sd > 0 else float("nan")})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["p_holm"] = np.nan
    for (_, _), idx in df.groupby(["model", "level"]).groups.items():
        p = df.loc[idx, "p_value"]
        ok = p.notna()
        if ok.any():
            df.loc[p[ok].index, "p_holm"] = multipletests(p[ok].to_numpy(), method="holm")[1]
    df["significant"] = df["p_holm"] < 0.05
    cols = ["level", "name", "dimension", "model", "baseline", "n", "mean_model", "mean_baseline", "mean_diff",
            "statistic", "p_value", "method", "p_holm", "rank_biserial", "dz", "significant"]
    return df[cols]


# ------------------------------------------------------------------------------------------ preferences
def preference_shares(study: Study, *, confidence: float = 0.95) -> pd.DataFrame:
    """Per criterion and model: ``criterion,model,share,ci_low,ci_high,p_value,count,n``.

    ``share`` = choices of the model / all choices for the criterion; Wilson interval; exact two-sided
    binomial test against 1 / (number of models).
    """
    from statsmodels.stats.proportion import proportion_confint

    cols = ["criterion", "model", "share", "ci_low", "ci_high", "p_value", "count", "n"]
    if study.preferences is None or study.preferences.empty:
        return pd.DataFrame(columns=cols)
    models = study.models
    p0 = 1.0 / len(models)
    rows = []
    for criterion, g in study.preferences.groupby("criterion"):
        n = int(len(g))
        counts = g["chosen_model"].value_counts()
        for model in models:
            k = int(counts.get(model, 0))
            lo, hi = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
            p = stats.binomtest(k, n, p0, alternative="two-sided").pvalue
            rows.append({"criterion": criterion, "model": model, "share": k / n, "ci_low": float(lo),
                         "ci_high": float(hi), "p_value": float(p), "count": k, "n": n})
    return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------------------------------- agreement
def agreement(study: Study) -> pd.DataFrame:
    """Krippendorff's α (ordinal) overall, per dimension and per question: ``scope,alpha,units,raters``."""
    import krippendorff

    r = study.responses
    scopes = [("overall", r)] + [(d, r[r["dimension"] == d]) for d in DIMENSIONS if (r["dimension"] == d).any()]
    scopes += [(q, r[r["question"] == q]) for q in study.questions["question"] if (r["question"] == q).any()]
    rows = []
    for scope, g in scopes:
        wide = g.pivot_table(index="participant", columns=["clip", "question"], values="score", aggfunc="first")
        data = wide.to_numpy(dtype=float)
        alpha = float("nan")
        values = np.unique(data[np.isfinite(data)])
        if data.shape[0] >= 2 and data.shape[1] >= 1 and values.size >= 2:
            try:
                alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal",
                                                 value_domain=list(range(1, 6))))
            except (ValueError, ZeroDivisionError):  # degenerate data: no pairable values
                alpha = float("nan")
        rows.append({"scope": scope, "alpha": alpha, "units": int(data.shape[1]), "raters": int(data.shape[0])})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------- demographics
def _groups(series: pd.Series, *, max_levels: int = 6) -> pd.Series | None:
    s = series.dropna().astype(str)
    if s.empty:
        return None
    num = pd.to_numeric(s, errors="coerce")
    if num.notna().all() and num.nunique() > max_levels:
        med = float(num.median())
        return pd.Series(np.where(num <= med, f"<= {med:g}", f"> {med:g}"), index=s.index)
    if s.nunique() > max_levels or s.nunique() < 2:
        return None
    return s


def demographic_breakdown(study: Study, *, baseline: str, max_levels: int = 6) -> pd.DataFrame:
    """Mean MOS / REL per model within each demographic group.

    Every demographics column with 2-``max_levels`` distinct answers is a grouping; numeric columns with more
    values (age) are split at their median. Returns ``variable,group,model,dimension,mean,n_participants,
    diff_vs_baseline`` (the model's mean minus the baseline's mean in that group).
    """
    demo = study.demographics.set_index("participant")
    pm = participant_means(study)
    pm = pm[pm["level"] == "dimension"]
    rows = []
    for col in demo.columns:
        groups = _groups(demo[col], max_levels=max_levels)
        if groups is None:
            continue
        sub = pm[pm["participant"].isin(groups.index)]
        sub = sub.assign(group=sub["participant"].map(groups))
        agg = sub.groupby(["group", "model", "dimension"], as_index=False).agg(
            mean=("mean", "mean"), n_participants=("participant", "nunique"))
        base = agg[agg["model"] == baseline].set_index(["group", "dimension"])["mean"]
        agg["diff_vs_baseline"] = [m - base.get((g, d), np.nan)
                                   for g, d, m in zip(agg["group"], agg["dimension"], agg["mean"], strict=True)]
        agg.insert(0, "variable", col)
        rows.append(agg)
    cols = ["variable", "group", "model", "dimension", "mean", "n_participants", "diff_vs_baseline"]
    return pd.concat(rows, ignore_index=True)[cols] if rows else pd.DataFrame(columns=cols)


# --------------------------------------------------------------------------------------------- power
def power_analysis(tests: pd.DataFrame, *, alpha: float = 0.05, power: float = 0.8) -> pd.DataFrame:
    """Sample size for the observed paired effects.

    For each dimension-level test: ``dz``, the power a paired t-test had with the observed ``n``, and the
    participants needed for ``power`` at ``alpha`` (t-test, and Wilcoxon by the ARE 3/π).
    Returns ``name,model,baseline,n,dz,power_observed,n_required_t,n_required_wilcoxon``.
    """
    from statsmodels.stats.power import TTestPower

    cols = ["name", "model", "baseline", "n", "dz", "power_observed", "n_required_t", "n_required_wilcoxon"]
    if tests.empty:
        return pd.DataFrame(columns=cols)
    tp = TTestPower()
    rows = []
    for _, t in tests[tests["level"] == "dimension"].iterrows():
        dz = abs(t["dz"]) if np.isfinite(t["dz"]) else float("nan")
        row = {"name": t["name"], "model": t["model"], "baseline": t["baseline"], "n": int(t["n"]), "dz": t["dz"],
               "power_observed": float("nan"), "n_required_t": float("nan"), "n_required_wilcoxon": float("nan")}
        if np.isfinite(dz) and dz > 0 and t["n"] >= 2:
            row["power_observed"] = float(tp.power(effect_size=dz, nobs=int(t["n"]), alpha=alpha))
            try:
                n_t = float(tp.solve_power(effect_size=dz, alpha=alpha, power=power, alternative="two-sided"))
                row["n_required_t"] = math.ceil(n_t)
                row["n_required_wilcoxon"] = math.ceil(n_t / WILCOXON_ARE)
            except (ValueError, RuntimeError):
                pass
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


def power_note(power: pd.DataFrame, *, alpha: float = 0.05, target: float = 0.8) -> str:
    """One paragraph that states the sample size each observed effect needs."""
    if power.empty:
        return "No paired effects to size (a single model, or no complete pairs)."
    parts = []
    for _, r in power.iterrows():
        who = f"{model_name(r['model'])} vs {model_name(r['baseline'])} on {r['name']}"
        if not np.isfinite(r["n_required_t"]):
            parts.append(f"{who}: no measurable paired effect (dz={r['dz']:.2f}), so no sample size follows")
            continue
        parts.append(f"{who}: dz={r['dz']:.2f}; a paired t-test needs {int(r['n_required_t'])} participants "
                     f"(Wilcoxon about {int(r['n_required_wilcoxon'])}) for {target:.0%} power at α={alpha}; "
                     f"with {int(r['n'])} the power was {r['power_observed']:.2f}")
    return ". ".join(parts) + "."


# ----------------------------------------------------------------------------------------- the bundle
@dataclass
class ListeningResults:
    """Everything :func:`analyze` computes (DataFrames documented on the functions that make them)."""

    study: Study
    baseline: str
    models: list[str]
    confidence: float
    question_means: pd.DataFrame
    dimension_means: pd.DataFrame
    participant_means: pd.DataFrame
    tests: pd.DataFrame
    preference_shares: pd.DataFrame
    agreement: pd.DataFrame
    breakdown: pd.DataFrame
    power: pd.DataFrame
    power_note: str
    notes: list[str] = field(default_factory=list)

    @property
    def simulated(self) -> bool:
        return self.study.simulated

    @property
    def compared(self) -> list[str]:
        return [m for m in self.models if m != self.baseline]

    def question_table(self, dimension: str) -> pd.DataFrame:
        """The paper's Table 3 (``MOS``) or Table 4 (``REL``): one row per question, one mean column per model
        (compared models first, the baseline last)."""
        qm = self.question_means[self.question_means["dimension"] == dimension]
        wide = qm.pivot_table(index="question", columns="model", values="mean")
        order = [q for q in self.study.questions["question"] if q in wide.index]
        wide = wide.loc[order, [m for m in self.models if m in wide.columns]]
        wide.index = [QUESTION_LABELS.get(q, q) for q in wide.index]
        wide.columns = [model_name(m) for m in wide.columns]
        out = wide.reset_index().rename(columns={"index": "Attribute"})
        if self.simulated:
            out["data"] = "SIMULATED responses"
        return out


def analyze(study: Study, *, baseline: str | None = None, confidence: float = 0.95) -> ListeningResults:
    """Run every analysis of a validated study (see the module docstring for the methods).

    Args:
        study: from :func:`~echoscript_utils.listening.study.validate_study`.
        baseline: reference model label; default ``musicgen`` when the key has it.
        confidence: level of every interval (0.95 → 95 %).
    """
    base = choose_baseline(study.models, baseline)
    models = _model_order(study.models, base)
    pm = participant_means(study)
    tests = paired_tests(study, baseline=base, pm=pm)
    pw = power_analysis(tests)
    notes = list(study.notes)
    if study.simulated:
        notes.insert(0, "SIMULATED responses: these numbers test the analysis code, not the models.")
    return ListeningResults(
        study=study, baseline=base, models=models, confidence=confidence,
        question_means=question_means(study, confidence=confidence),
        dimension_means=dimension_means(study, confidence=confidence),
        participant_means=pm, tests=tests,
        preference_shares=preference_shares(study, confidence=confidence),
        agreement=agreement(study), breakdown=demographic_breakdown(study, baseline=base),
        power=pw, power_note=power_note(pw), notes=notes,
    )
