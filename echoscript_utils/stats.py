"""Pure statistics shared by the stages: relevance scores with bootstrap intervals, scores of predicted labels,
tag-distribution divergence, and the listening test's interval, paired-test and power calculations. No file I/O,
no models.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from .errors import InputError


# ============================================================================================== relevance
@dataclass
class RelevanceScore:
    """Mean of per-clip scores with a bootstrap interval (``per_clip`` keeps the individual values)."""

    score: float
    ci_low: float
    ci_high: float
    confidence: float
    n: int
    per_clip: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("per_clip")
        return d


def mean_ci(values: np.ndarray, *, n_boot: int, confidence: float, seed: int) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` ``[N]``: ``scipy.stats.bootstrap`` with
    ``method="percentile"``, ``n_boot`` resamples drawn by ``numpy.random.default_rng(seed)`` (the same seed gives
    the same interval). ``(nan, nan)`` for fewer than two values or no resample.

    Percentile, not BCa: the intervals the workbook has always reported (and, for a mean of bounded scores, BCa
    moves them little while failing on constant data).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2 or n_boot < 1:
        return float("nan"), float("nan")
    with warnings.catch_warnings():  # one resample has no standard error (ddof=1): numpy warns, scipy reports nan
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.bootstrap((values,), np.mean, n_resamples=n_boot, confidence_level=confidence,
                              method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def label_scores(truth, pred, truth_value=None, pred_value=None, *, labels, n_boot: int = 1000,
                 confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """How well predicted labels ``pred`` ``[N]`` match ``truth`` ``[N]`` (one of ``labels`` each): accuracy with its
    bootstrap interval (:func:`mean_ci`), the majority-class baseline, macro-F1 and the confusion counts
    (``{true: {predicted: n}}``); with ``truth_value`` / ``pred_value`` ``[N]`` (e.g. intensities) also their
    Spearman ρ and mean absolute error against always predicting the mean."""
    from sklearn.metrics import confusion_matrix, f1_score

    y = np.asarray(truth, dtype=object)
    yhat = np.asarray(pred, dtype=object)
    correct = (y == yhat).astype(float)
    labels = list(labels)
    out: dict[str, Any] = {"n": int(len(y)), "accuracy": float(correct.mean())}
    out["accuracy_ci"] = list(mean_ci(correct, n_boot=n_boot, confidence=confidence, seed=seed))
    _, counts = np.unique(y, return_counts=True)
    out["majority_baseline"] = float(counts.max() / len(y)) if len(y) else 0.0
    out["macro_f1"] = float(f1_score(y, yhat, labels=labels, average="macro", zero_division=0))
    cm = confusion_matrix(y, yhat, labels=labels)
    out["confusion"] = {t: {p: int(cm[i, j]) for j, p in enumerate(labels)} for i, t in enumerate(labels)}
    if truth_value is not None and pred_value is not None:
        yi = np.asarray(truth_value, dtype=float)
        pi = np.asarray(pred_value, dtype=float)
        out.update(intensity_spearman=float(stats.spearmanr(yi, pi).statistic),
                   intensity_mae=float(np.abs(yi - pi).mean()),
                   intensity_mae_mean_baseline=float(np.abs(yi - yi.mean()).mean()))
    return out


def clap_score(audio_emb, text_emb, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> RelevanceScore:
    """CLAP score: mean cosine similarity between each generated clip and its *own* prompt.

    Args:
        audio_emb: ``[N, D]`` CLAP audio embeddings, one row per clip.
        text_emb: ``[N, D]`` CLAP text embeddings of the prompt each clip was generated from (same order).

    Returns:
        :class:`RelevanceScore` of the cosine (in [-1, 1]; some papers report ``100 · max(cos, 0)``), with a
        bootstrap interval over clips.
    """
    a = np.asarray(audio_emb, dtype=np.float64)
    t = np.asarray(text_emb, dtype=np.float64)
    if a.ndim != 2 or a.shape != t.shape:
        raise InputError(f"audio and text embeddings must both be [N, D] with the same shape: {a.shape} vs {t.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(t, axis=1)
    cos = np.einsum("ij,ij->i", a, t) / np.maximum(norms, 1e-12)
    lo, hi = mean_ci(cos, n_boot=n_boot, confidence=confidence, seed=seed)
    return RelevanceScore(score=float(cos.mean()), ci_low=lo, ci_high=hi, confidence=confidence, n=int(cos.size),
                          per_clip=cos)


def tag_kl_divergence(p_ref, p_gen, *, eps: float = 1e-6) -> float:
    """KL(ref ‖ gen) between the mean tag distributions of two sets of clips (nats).

    Args:
        p_ref, p_gen: ``[N, T]`` tag probabilities per clip (sigmoid outputs of a tagger such as musicnn), or
            DataFrames with one column per tag (aligned by column name; tags missing on one side count as 0).
        eps: added to every tag before normalising, so that a tag absent from the generated set gives a large but
            finite divergence.

    Each set's mean tag vector is normalised to sum to one, so the score compares *which* tags dominate, not how
    confident the tagger is overall. 0 means identical distributions.
    """
    if hasattr(p_ref, "columns") and hasattr(p_gen, "columns"):
        tags = sorted(set(p_ref.columns) | set(p_gen.columns))
        p_ref = p_ref.reindex(columns=tags, fill_value=0.0).to_numpy(dtype=np.float64)
        p_gen = p_gen.reindex(columns=tags, fill_value=0.0).to_numpy(dtype=np.float64)
    r = np.atleast_2d(np.asarray(p_ref, dtype=np.float64))
    g = np.atleast_2d(np.asarray(p_gen, dtype=np.float64))
    if r.shape[1] != g.shape[1]:
        raise InputError(f"tag vectors differ in length: {r.shape[1]} vs {g.shape[1]}")
    if (r < 0).any() or (g < 0).any():
        raise InputError("tag probabilities must be non-negative")
    pr = r.mean(axis=0) + eps
    pg = g.mean(axis=0) + eps
    pr, pg = pr / pr.sum(), pg / pg.sum()
    return float(np.sum(pr * np.log(pr / pg)))


WILCOXON_ARE = 3 / math.pi  # asymptotic relative efficiency of Wilcoxon vs t under normality (0.955)


def t_interval(values, *, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)`` of a Student-t interval; the bounds are NaN for fewer than two values."""
    x = np.asarray(values, dtype=float)
    n = int(x.size)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(x.mean())
    if n < 2:
        return mean, float("nan"), float("nan"), n
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half, n


def rank_biserial(x, y) -> float:
    """Matched-pairs rank-biserial correlation of ``x − y`` (zero differences dropped; 0 if none remain)."""
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    plus, minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


def wilcoxon_method(x, y) -> str:
    """``"exact"`` when there are at most 50 pairs with no zero and no tied differences, else ``"approx"``
    (normal approximation with tie correction). scipy's own ``auto`` would run a slow permutation test for
    small samples with ties; this rule is the classic one and fast."""
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    nz = d[d != 0]
    exact = d.size <= 50 and nz.size == d.size and np.unique(np.abs(nz)).size == nz.size
    return "exact" if exact else "approx"


def wilcoxon_paired(x, y) -> tuple[float, float, str]:
    """Two-sided Wilcoxon signed-rank ``(statistic, p, method)`` of paired ``x`` and ``y`` (scipy; zero
    differences dropped; ``method`` from :func:`wilcoxon_method`).

    All-zero differences give ``(nan, 1.0, "none")``; fewer than two pairs give ``(nan, nan, "none")``.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.size < 2:
        return float("nan"), float("nan"), "none"
    if np.all(x == y):
        return float("nan"), 1.0, "none"
    method = wilcoxon_method(x, y)
    res = stats.wilcoxon(x, y, alternative="two-sided", zero_method="wilcox", method=method)
    return float(res.statistic), float(res.pvalue), method
