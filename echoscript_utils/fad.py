"""Fréchet Audio Distance you can trust: exact and fast distance, bootstrap intervals, FAD∞, per-clip outliers.

FAD (Kilgour et al., 2019) fits one Gaussian to the embeddings of a reference set and one to those of a generated
set and measures the Fréchet (2-Wasserstein) distance between them::

    FAD = |mu_a - mu_b|² + tr(S_a) + tr(S_b) - 2 tr sqrt(S_a S_b)

**How the trace term is computed.** Write each covariance as ``S = F Fᵀ`` with a factor ``F`` of shape
``[D, r]``. The non-zero eigenvalues of ``S_a S_b`` equal those of ``(F_aᵀ F_b)(F_aᵀ F_b)ᵀ``, which is symmetric
positive semi-definite, so ``tr sqrt(S_a S_b)`` is the sum of the singular values of the small matrix
``F_aᵀ F_b``. The factor is the centred data itself (``F = X_cᵀ / sqrt(N-1)``, exact and cheap when ``N <= D``,
which is the rank-deficient case) or the Cholesky factor of the covariance (``N > D``; an eigen-factor with tiny
negative eigenvalues clamped to zero when Cholesky refuses a singular matrix). No general matrix square root is
taken, every step is real and symmetric, and the result agrees with ``scipy.linalg.sqrtm`` to rounding (see
``tests/test_fad.py``; ``benchmarks/bench_fad.py`` times both). All arithmetic is float64.

**Uncertainty.** A FAD is a statistic of two finite samples, so it gets an interval: :func:`bootstrap_fad`
resamples *clips* (all frames of a clip together, since frames of one clip are not independent) of the generated
set, or of both sets; :func:`paired_bootstrap_difference` compares two systems against the same reference with
shared reference resamples; :func:`fad_infinity` removes the sample-size bias by extrapolating FAD over subset
sizes to ``1/N → 0`` (Gui et al., ICASSP 2024); :func:`per_clip_contribution` finds clips that dominate the score.

Embeddings can be passed as one ``[N, D]`` array (each row is a resampling unit) or as a sequence of per-clip
``[n_i, D]`` arrays (each clip is a unit; its rows are pooled into the Gaussian).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import InputError

__all__ = [
    "EmbeddingStats",
    "FADInfinity",
    "FADInterval",
    "PairedDifference",
    "RelevanceScore",
    "bootstrap_fad",
    "clap_score",
    "fad_infinity",
    "frechet_distance",
    "frechet_distance_from_stats",
    "paired_bootstrap_difference",
    "per_clip_contribution",
    "tag_kl_divergence",
]

# ============================================================================================== statistics
@dataclass(frozen=True)
class EmbeddingStats:
    """Mean ``[D]`` and covariance ``[D, D]`` (ddof = 1) of a set of ``n`` embedding rows, in float64.

    Save them for a large reference set once (:meth:`save`) and compare any number of generated sets against it.
    """

    mu: np.ndarray
    cov: np.ndarray
    n: int

    @classmethod
    def from_embeddings(cls, emb) -> EmbeddingStats:
        """Statistics of ``[N, D]`` rows (or a sequence of per-clip ``[n_i, D]`` arrays, pooled)."""
        rows, _ = _rows_and_groups(emb, "embeddings")
        mu = rows.mean(axis=0)
        xc = rows - mu
        return cls(mu=mu, cov=xc.T @ xc / (rows.shape[0] - 1), n=int(rows.shape[0]))

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``mu``, ``cov`` and ``n`` to an ``.npz`` file atomically."""
        from .artifacts import atomic_path

        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, mu=self.mu, cov=self.cov, n=np.int64(self.n))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> EmbeddingStats:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: no such statistics file; write one with EmbeddingStats.save")
        with np.load(p) as data:
            return cls(mu=np.asarray(data["mu"], np.float64), cov=np.asarray(data["cov"], np.float64),
                       n=int(data["n"]))


class _Side:
    """One side of a comparison (float64): mean ``[D]``, ``tr(S)``, and the covariance ``S`` ``[D, D]`` or an exact
    low-rank data factor ``F`` ``[D, r]`` with ``F Fᵀ = S``. A factor of a covariance is computed when first
    needed and kept (a reference reused across bootstrap resamples is factored once)."""

    def __init__(self, mu: np.ndarray, trace: float, *, cov: np.ndarray | None = None,
                 factor: np.ndarray | None = None):
        self.mu, self.trace, self.cov = mu, trace, cov
        self._factor = factor
        self.triangular = False  # factor is square lower-triangular (plain Cholesky)

    @property
    def factor(self) -> np.ndarray:
        if self._factor is None:
            self._factor, self.triangular = _factor_cov(self.cov)
        return self._factor


def _rows_and_groups(emb, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``[N, D]`` float64 rows and the clip index of each row (one clip per row for a plain array)."""
    if isinstance(emb, np.ndarray) or (hasattr(emb, "shape") and hasattr(emb, "__array__")):
        rows = np.asarray(emb, dtype=np.float64)
        if rows.ndim != 2:
            raise InputError(f"{what}: expected an [N, D] array, got shape {rows.shape}")
        groups = np.arange(rows.shape[0])
    else:
        clips = [np.asarray(c, dtype=np.float64) for c in emb]
        if not clips:
            raise InputError(f"{what}: no embeddings (empty set)")
        clips = [c[None, :] if c.ndim == 1 else c for c in clips]
        dims = {c.shape[1] for c in clips if c.ndim == 2}
        if any(c.ndim != 2 for c in clips) or len(dims) != 1:
            raise InputError(f"{what}: every clip must be an [n_i, D] array with the same D (got {sorted(dims)})")
        rows = np.concatenate(clips, axis=0)
        groups = np.repeat(np.arange(len(clips)), [c.shape[0] for c in clips])
    if rows.shape[0] < 2:
        raise InputError(f"{what}: need at least 2 embedding rows for a covariance, got {rows.shape[0]}")
    if not np.isfinite(rows).all():
        raise InputError(f"{what}: embeddings contain NaN or inf; check the audio and the embedding model")
    return rows, groups


def _factor_cov(cov: np.ndarray) -> tuple[np.ndarray, bool]:
    """A real ``F`` ``[D, r]`` with ``F Fᵀ = cov``, and whether it is square lower-triangular.

    Cholesky when ``cov`` is positive definite; otherwise LAPACK's pivoted Cholesky (``?pstrf``), which stops at
    the numerical rank r and so keeps exactly singular directions exactly zero; an eigen-factor with negative
    rounding clamped to zero only if that fails.
    """
    import scipy.linalg
    from scipy.linalg.lapack import dpstrf

    cov = np.ascontiguousarray(0.5 * (cov + cov.T))
    try:
        return np.linalg.cholesky(cov), True
    except np.linalg.LinAlgError:
        pass
    c, piv, rank, info = dpstrf(cov, lower=1, tol=-1.0)
    if info >= 0 and np.isfinite(c).all():
        factor = np.empty((cov.shape[0], rank))
        factor[piv - 1] = np.tril(c)[:, :rank]
        return factor, False
    w, v = scipy.linalg.eigh(cov, driver="evd", check_finite=False)
    w[w <= _rounding_floor(w)] = 0.0
    keep = w > 0
    return v[:, keep] * np.sqrt(w[keep]), False


def _side_from_rows(rows: np.ndarray, weights: np.ndarray | None = None) -> _Side:
    """Side statistics of ``rows`` ``[N, D]``, each row counted ``weights[i]`` times (bootstrap) or once."""
    n_rows, dim = rows.shape
    if weights is None:
        total = float(n_rows)
        mu = rows.mean(axis=0)
        xc = rows - mu
    else:
        total = float(weights.sum())
        mu = weights @ rows / total
        xc = (rows - mu) * np.sqrt(weights)[:, None]
    if total < 2:
        raise InputError(f"need at least 2 embedding rows for a covariance, got {total:g}")
    denom = total - 1.0
    if n_rows <= dim:  # rank-deficient: the centred data is an exact, cheap factor
        return _Side(mu, float(np.einsum("ij,ij->", xc, xc)) / denom, factor=xc.T / math.sqrt(denom))
    cov = xc.T @ xc / denom
    return _Side(mu, float(np.trace(cov)), cov=cov)


def _side_from_stats(mu: np.ndarray, cov: np.ndarray) -> _Side:
    mu = np.asarray(mu, dtype=np.float64).reshape(-1)
    cov = np.asarray(cov, dtype=np.float64)
    if cov.shape != (mu.shape[0], mu.shape[0]):
        raise InputError(f"covariance of shape {cov.shape} does not match a mean of length {mu.shape[0]}")
    if not (np.isfinite(mu).all() and np.isfinite(cov).all()):
        raise InputError("statistics contain NaN or inf")
    return _Side(mu, float(np.trace(cov)), cov=cov)


def _as_side(emb, what: str) -> _Side:
    if isinstance(emb, EmbeddingStats):
        return _side_from_stats(emb.mu, emb.cov)
    if isinstance(emb, _Side):
        return emb
    rows, _ = _rows_and_groups(emb, what)
    return _side_from_rows(rows)


def _sandwich(f: np.ndarray, cov: np.ndarray, *, triangular: bool) -> np.ndarray:
    """``Fᵀ S F`` (= ``(Fᵀ F_S)(Fᵀ F_S)ᵀ`` for any factor ``F_S`` of S); triangular multiplies for a Cholesky F."""
    if not triangular:
        return f.T @ (cov @ f)
    from scipy.linalg.blas import dtrmm

    # BLAS is column-major: pass Lᵀ as a Fortran-ordered view (it is L's C-ordered memory) and say "upper".
    lt = f.T
    right = dtrmm(1.0, lt, np.array(cov.T, order="F"), side=1, lower=0, trans_a=1, overwrite_b=1)  # S L
    return dtrmm(1.0, lt, right, side=0, lower=0, trans_a=0, overwrite_b=1)  # Lᵀ S L


def _trace_sqrt_product(a: _Side, b: _Side) -> float:
    """``tr sqrt(S_a S_b)`` from the eigenvalues of a small symmetric PSD matrix with the same non-zero spectrum.

    Two data factors: ``G = F_aᵀ F_b`` and its smaller Gram matrix (eigenvalues = squared singular values of G).
    A factor and a covariance: ``F_aᵀ S_b F_a``. Two covariances: one is factored (Cholesky) and sandwiched.
    """
    import scipy.linalg

    if a.cov is None and b.cov is None:
        g = a.factor.T @ b.factor
        gram = g @ g.T if g.shape[0] <= g.shape[1] else g.T @ g
    elif a.cov is None or b.cov is None:
        data, full = (a, b) if a.cov is None else (b, a)
        gram = _sandwich(data.factor, full.cov, triangular=False)
    else:
        first, other = (a, b) if a._factor is not None or b._factor is None else (b, a)
        f = first.factor
        gram = _sandwich(f, other.cov, triangular=first.triangular)
    if gram.size == 0:
        return 0.0
    eig = scipy.linalg.eigh(gram, lower=False, eigvals_only=True, driver="evd", check_finite=False)
    eig[eig <= _rounding_floor(eig)] = 0.0  # clamp negatives and rounding-level noise of zero eigenvalues
    return float(np.sqrt(eig).sum())


def _rounding_floor(eig: np.ndarray) -> float:
    """Eigenvalues at or below this are zero up to the rounding of a symmetric eigensolver."""
    return float(eig.size * np.finfo(np.float64).eps * max(float(np.abs(eig).max(initial=0.0)), 0.0))


def _distance(a: _Side, b: _Side) -> float:
    if a.mu.shape != b.mu.shape:
        raise InputError(f"embedding sizes differ: {a.mu.shape[0]} vs {b.mu.shape[0]}; use the same embedder")
    diff = a.mu - b.mu
    value = float(diff @ diff) + a.trace + b.trace - 2.0 * _trace_sqrt_product(a, b)
    return max(value, 0.0)  # ≥ 0 mathematically; only rounding can take it below


def frechet_distance(emb_a, emb_b) -> float:
    """Fréchet distance between Gaussians fitted to two embedding sets (float64, exact, never complex).

    Args:
        emb_a, emb_b: ``[N_a, D]`` and ``[N_b, D]`` arrays, sequences of per-clip ``[n_i, D]`` arrays (rows pooled),
            or :class:`EmbeddingStats`. ``N < D`` (singular covariances) is handled exactly.

    Returns:
        The distance (≥ 0; symmetric in its arguments up to rounding).
    """
    return _distance(_as_side(emb_a, "first set"), _as_side(emb_b, "second set"))


def frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b) -> float:
    """Fréchet distance from means ``[D]`` and covariances ``[D, D]`` (e.g. precomputed reference statistics)."""
    return _distance(_side_from_stats(mu_a, cov_a), _side_from_stats(mu_b, cov_b))


# ============================================================================================== bootstrap
class _Resampler:
    """Draws clip-level bootstrap resamples of one set and returns its side statistics."""

    def __init__(self, emb, what: str):
        self.fixed: _Side | None = None
        if isinstance(emb, EmbeddingStats):
            self.fixed = _side_from_stats(emb.mu, emb.cov)
            self.n_clips, self.n_rows = emb.n, emb.n
            return
        self.rows, self.groups = _rows_and_groups(emb, what)
        self.n_clips = int(self.groups.max()) + 1
        self.n_rows = int(self.rows.shape[0])
        self.full = _side_from_rows(self.rows)

    def draw(self, rng: np.random.Generator) -> np.ndarray | None:
        """Clip indices of one bootstrap resample (None for fixed statistics, which cannot be resampled)."""
        if self.fixed is not None:
            return None
        return rng.integers(0, self.n_clips, size=self.n_clips)

    def side(self, clip_idx: np.ndarray | None) -> _Side:
        if self.fixed is not None:
            return self.fixed
        if clip_idx is None:
            return self.full
        counts = np.bincount(clip_idx, minlength=self.n_clips).astype(np.float64)
        w = counts[self.groups]
        keep = w > 0
        return _side_from_rows(self.rows[keep], w[keep])


@dataclass
class FADInterval:
    """A FAD with its bootstrap interval. ``samples`` holds the bootstrap FADs (not serialised by :meth:`as_dict`)."""

    point: float
    ci_low: float
    ci_high: float
    confidence: float
    n_boot: int
    method: str
    resample: str
    bias: float  # mean(bootstrap) - point: how much resampling with duplicates inflates the FAD
    std: float
    n_ref: int  # clips (resampling units) in the reference set
    n_gen: int
    samples: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("samples")
        return d

    def __str__(self) -> str:
        pct = round(100 * self.confidence)
        return f"{self.point:.4f} [{pct}% CI {self.ci_low:.4f}, {self.ci_high:.4f}]"


def _interval(point: float, samples: np.ndarray, confidence: float, method: str) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(samples, [alpha, 1.0 - alpha])
    if method == "percentile":
        return float(lo), float(hi)
    if method == "bias_corrected":
        shift = float(samples.mean()) - point
        return float(lo - shift), float(hi - shift)
    raise ValueError(f"unknown interval method {method!r}: use 'bias_corrected' or 'percentile'")


def _check_boot(n: int, confidence: float, resample: str) -> None:
    if n < 1:
        raise ValueError(f"n must be ≥ 1 bootstrap resamples, got {n}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if resample not in ("both", "generated"):
        raise ValueError(f"resample must be 'both' or 'generated', got {resample!r}")


def bootstrap_fad(emb_ref, emb_gen, *, n: int = 1000, confidence: float = 0.95, seed: int = 0,
                  resample: Literal["both", "generated"] = "both",
                  method: Literal["bias_corrected", "percentile"] = "bias_corrected",
                  progress: bool = False) -> FADInterval:
    """FAD with a bootstrap confidence interval.

    Each resample draws clips with replacement (all rows of a drawn clip together) from the generated set, and
    with ``resample="both"`` also from the reference set (both are finite samples; a reference given as
    :class:`EmbeddingStats` is held fixed, and so is a generated set given that way). Resampling with replacement duplicates clips, which lowers the
    effective sample size and so inflates every bootstrap FAD (FAD is biased upward at small N). The default
    ``method="bias_corrected"`` therefore shifts the percentile interval by that bootstrap bias
    (``mean(samples) - point``), so the interval describes the spread of the FAD at this sample size around the
    point estimate; ``"percentile"`` returns the raw percentiles. The bias is reported either way; for the
    sample-size bias of the point itself see :func:`fad_infinity`.

    Args:
        emb_ref, emb_gen: ``[N, D]`` rows or sequences of per-clip ``[n_i, D]`` arrays (see module docstring).
        n: bootstrap resamples. confidence: interval coverage. seed: for the resampling generator.

    Returns:
        :class:`FADInterval`.
    """
    _check_boot(n, confidence, resample)
    ref, gen = _Resampler(emb_ref, "reference"), _Resampler(emb_gen, "generated")
    point = _distance(ref.side(None), gen.side(None))
    rng = np.random.default_rng(seed)
    samples = np.empty(n)
    for i in _progress(range(n), progress, "bootstrap FAD"):
        ref_side = ref.side(ref.draw(rng) if resample == "both" else None)
        samples[i] = _distance(ref_side, gen.side(gen.draw(rng)))
    lo, hi = _interval(point, samples, confidence, method)
    return FADInterval(point=point, ci_low=lo, ci_high=hi, confidence=confidence, n_boot=n, method=method,
                       resample=resample, bias=float(samples.mean() - point), std=float(samples.std(ddof=1))
                       if n > 1 else 0.0, n_ref=ref.n_clips, n_gen=gen.n_clips, samples=samples)


@dataclass
class PairedDifference:
    """FAD_a − FAD_b against one reference, with its bootstrap interval and how often a beat b."""

    fad_a: float
    fad_b: float
    difference: float
    ci_low: float
    ci_high: float
    share_a_better: float  # share of resamples with FAD_a < FAD_b
    confidence: float
    n_boot: int
    method: str
    paired_generated: bool
    samples: np.ndarray = field(repr=False, default_factory=lambda: np.empty(0))

    @property
    def significant(self) -> bool:
        """True when the interval excludes 0."""
        return self.ci_low > 0 or self.ci_high < 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("samples")
        d["significant"] = self.significant
        return d


def paired_bootstrap_difference(emb_ref, emb_a, emb_b, *, n: int = 1000, confidence: float = 0.95, seed: int = 0,
                                resample: Literal["both", "generated"] = "both", paired_generated: bool = False,
                                method: Literal["bias_corrected", "percentile"] = "bias_corrected",
                                progress: bool = False) -> PairedDifference:
    """Is system a really closer to the reference than system b? Bootstrap of ``FAD_a − FAD_b``.

    In every resample both systems are scored against the *same* resampled reference, so reference sampling
    noise, which moves both FADs together, cancels in the difference. The two generated sets are resampled
    independently, or with the same clip indices when ``paired_generated=True`` (for sets generated from the same
    prompts and seeds in the same order; they must then have the same number of clips).

    Returns:
        :class:`PairedDifference`; a negative difference means a is closer to the reference.
    """
    _check_boot(n, confidence, resample)
    ref = _Resampler(emb_ref, "reference")
    sa, sb = _Resampler(emb_a, "system a"), _Resampler(emb_b, "system b")
    if paired_generated and sa.n_clips != sb.n_clips:
        raise InputError(f"paired_generated needs the same number of clips in both systems "
                         f"({sa.n_clips} vs {sb.n_clips})")
    ref_full = ref.side(None)
    fad_a, fad_b = _distance(ref_full, sa.side(None)), _distance(ref_full, sb.side(None))
    rng = np.random.default_rng(seed)
    samples = np.empty(n)
    a_better = 0
    for i in _progress(range(n), progress, "paired bootstrap"):
        ref_side = ref.side(ref.draw(rng) if resample == "both" else None)
        idx_a = sa.draw(rng)
        idx_b = idx_a if paired_generated else sb.draw(rng)
        da, db = _distance(ref_side, sa.side(idx_a)), _distance(ref_side, sb.side(idx_b))
        samples[i] = da - db
        a_better += da < db
    diff = fad_a - fad_b
    lo, hi = _interval(diff, samples, confidence, method)
    return PairedDifference(fad_a=fad_a, fad_b=fad_b, difference=diff, ci_low=lo, ci_high=hi,
                            share_a_better=a_better / n, confidence=confidence, n_boot=n, method=method,
                            paired_generated=paired_generated, samples=samples)


# ============================================================================================== FAD∞
@dataclass
class FADInfinity:
    """FAD extrapolated to an infinite generated set: ``FAD(N) ≈ fad_inf + slope / N`` fitted by least squares."""

    fad_inf: float
    slope: float
    r2: float
    points: Any  # DataFrame: n (clips), inv_n, fad (mean over repeats), fad_std

    def as_dict(self) -> dict[str, Any]:
        return {"fad_inf": self.fad_inf, "slope": self.slope, "r2": self.r2,
                "points": self.points.to_dict(orient="list")}


def fad_infinity(emb_ref, emb_gen, *, n_points: int = 8, min_n: int | None = None, repeats: int = 3,
                 seed: int = 0) -> FADInfinity:
    """FAD∞ (Gui et al., 2024): FAD at several subset sizes N of the generated set, linear in ``1/N``, intercept.

    Subsets are drawn *without* replacement from the generated clips: a random subset of a random sample is a
    random sample of that size, so ``E[FAD(N)]`` follows the population curve and the intercept estimates the FAD
    of an infinitely large generated set. (Drawing with replacement, as some toolkits do, converges to the pool's
    own plug-in FAD instead, which still carries the bias of the full sample size.) The reference is used whole.

    Args:
        emb_ref: reference rows, per-clip arrays, or :class:`EmbeddingStats`.
        emb_gen: generated rows or per-clip arrays; N counts clips (resampling units).
        n_points: number of subset sizes, evenly spaced from ``min_n`` to all clips.
        min_n: smallest subset (default: a quarter of the clips, at least 2).
        repeats: subsets averaged per size (the full set is used once).

    Returns:
        :class:`FADInfinity` with the fit points for :func:`echoscript_utils.plots.evaluation.plot_fad_infinity`.
    """
    import pandas as pd

    ref = _as_side(emb_ref, "reference")
    gen = _Resampler(emb_gen, "generated")
    total = gen.n_clips
    lo = max(2, total // 4) if min_n is None else int(min_n)
    if total < 3 or lo >= total:
        raise InputError(f"FAD∞ needs subsets of different sizes: {total} generated clips, min_n={lo}")
    sizes = np.unique(np.linspace(lo, total, max(2, n_points)).round().astype(int))
    rng = np.random.default_rng(seed)
    rows = []
    for size in sizes:
        reps = 1 if size == total else max(1, repeats)
        vals = [_distance(ref, gen.side(rng.choice(total, size=size, replace=False))) for _ in range(reps)]
        rows.append({"n": int(size), "inv_n": 1.0 / size, "fad": float(np.mean(vals)),
                     "fad_std": float(np.std(vals, ddof=1)) if reps > 1 else 0.0})
    points = pd.DataFrame(rows)
    slope, intercept = np.polyfit(points["inv_n"], points["fad"], 1)
    fit = intercept + slope * points["inv_n"]
    ss_tot = float(((points["fad"] - points["fad"].mean()) ** 2).sum())
    r2 = 1.0 - float(((points["fad"] - fit) ** 2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return FADInfinity(fad_inf=float(intercept), slope=float(slope), r2=r2, points=points)


# ============================================================================================== outliers
def per_clip_contribution(emb_ref, emb_gen, *, names: Sequence[str] | None = None, z_threshold: float = 3.0):
    """Leave-one-out influence of each generated clip on the FAD.

    ``delta = FAD(all) − FAD(all but this clip)``: positive when the clip pulls the generated set away from the
    reference. ``z`` is a robust z-score of delta (median / 1.4826·MAD); clips with ``z > z_threshold`` are
    flagged as outliers.

    Args:
        emb_ref: reference rows, per-clip arrays, or :class:`EmbeddingStats`.
        emb_gen: per-clip ``[n_i, D]`` arrays (or ``[N, D]`` rows, one per clip); at least 3 clips.
        names: one label per clip (default ``clip_0`` …).

    Returns:
        DataFrame ``clip, fad_without, delta, z, outlier`` sorted by delta, largest first.
    """
    import pandas as pd

    ref = _as_side(emb_ref, "reference")
    gen = _Resampler(emb_gen, "generated")
    if gen.n_clips < 3:
        raise InputError(f"leave-one-out needs at least 3 generated clips, got {gen.n_clips}")
    names = list(names) if names is not None else [f"clip_{i}" for i in range(gen.n_clips)]
    if len(names) != gen.n_clips:
        raise InputError(f"{len(names)} names for {gen.n_clips} clips")
    full = _distance(ref, gen.side(None))
    everyone = np.arange(gen.n_clips)
    without = np.array([_distance(ref, gen.side(np.delete(everyone, i))) for i in everyone])
    delta = full - without
    mad = 1.4826 * float(np.median(np.abs(delta - np.median(delta))))
    z = (delta - np.median(delta)) / mad if mad > 0 else np.zeros_like(delta)
    df = pd.DataFrame({"clip": names, "fad_without": without, "delta": delta, "z": z, "outlier": z > z_threshold})
    return df.sort_values("delta", ascending=False, ignore_index=True)


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


def _mean_ci(values: np.ndarray, *, n_boot: int, confidence: float, seed: int) -> tuple[float, float]:
    if values.size < 2 or n_boot < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_boot, values.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


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
    lo, hi = _mean_ci(cos, n_boot=n_boot, confidence=confidence, seed=seed)
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


# ============================================================================================== helpers
def _warn(message: str) -> None:
    import warnings

    warnings.warn(message, stacklevel=3)


def _progress(it, enabled: bool, desc: str):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False)



# ============================================================================================== the stage
#: Folders under 05_generation that are not text-to-music systems to score (MIDI-sketch control).
_NOT_SYSTEMS = ("sketch",)


@dataclass
class EvaluationSets:
    """The audio the evaluation stage compares: one reference set and one set per generating model."""

    reference: list[Path]
    reference_source: str  # in words: where the reference came from
    generated: dict[str, list[Path]]  # model label → WAV files
    prompts: dict[str, list[str | None]]  # model label → prompt of each file (from its JSON sidecar)

    def summary(self):
        """DataFrame ``set, files, source``."""
        import pandas as pd

        rows = [{"set": "reference", "files": len(self.reference), "source": self.reference_source}]
        rows += [{"set": m, "files": len(f), "source": f"05_generation/{m}"} for m, f in self.generated.items()]
        return pd.DataFrame(rows)


def audio_files(folder: str | os.PathLike, *, extensions: Sequence[str] = (".wav", ".flac", ".ogg", ".mp3", ".aiff",
                                                                          ".aif")) -> list[Path]:
    """Audio files under ``folder`` (recursive, sorted); :class:`InputError` when it is missing or has none."""
    p = Path(folder)
    if not p.is_dir():
        raise InputError(f"{p}: no such folder; pass a folder of audio files")
    exts = {e.lower() for e in extensions}
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in exts and not f.name.startswith("."))
    if not files:
        raise InputError(f"{p}: no audio files ({', '.join(sorted(exts))}) in this folder")
    return files


def _order_models(labels: Sequence[str], cfg) -> list[str]:
    first = [cfg.listening.baseline_label, cfg.listening.system_label]
    return [m for m in first if m in labels] + sorted(m for m in labels if m not in first)


def evaluation_sets(cfg) -> EvaluationSets:
    """Find the reference and generated audio of a run.

    Reference: ``evaluation.reference_dir`` when set, else the curated clips of ``01_curation`` whose split is in
    ``evaluation.reference_splits`` (the held-out ``eval`` split by default, never seen in fine-tuning).
    Generated: ``05_generation/<model>/*.wav`` for ``evaluation.models`` (default: every model folder there).
    """
    from .dataset import load_metadata

    ev = cfg.evaluation
    if ev.reference_dir is not None:
        reference = audio_files(ev.reference_dir, extensions=cfg.curation.extensions)
        source = f"folder {Path(ev.reference_dir).name}/ ({len(reference)} files)"
    else:
        meta = load_metadata(cfg.paths.curation)
        splits = list(ev.reference_splits)
        chosen = meta[meta["split"].isin(splits)]
        if chosen.empty:
            raise InputError(f"{cfg.paths.curation}: no curated clips in split(s) {', '.join(splits)}; set "
                             "evaluation.reference_dir or evaluation.reference_splits")
        reference = [Path(p) for p in chosen["path"]]
        source = f"01_curation clips, split {'+'.join(splits)} ({len(reference)} clips)"
    gen_dir = cfg.paths.generation
    if not gen_dir.is_dir():
        raise InputError(f"{gen_dir}: no generated audio; run the 05_generation stage first")
    available = [d.name for d in gen_dir.iterdir() if d.is_dir() and any(d.glob("*.wav"))]
    wanted = list(ev.models) or [m for m in available if m not in _NOT_SYSTEMS]
    missing = [m for m in wanted if m not in available]
    if missing:
        raise InputError(f"{gen_dir}: no WAV files for model(s) {', '.join(missing)}; "
                         f"found {', '.join(available) or 'none'}")
    generated, prompts = {}, {}
    for m in _order_models(wanted, cfg):
        files = sorted((gen_dir / m).glob("*.wav"))
        generated[m] = files
        prompts[m] = [_sidecar(f).get("prompt") for f in files]
    return EvaluationSets(reference=reference, reference_source=source, generated=generated, prompts=prompts)


def _sidecar(wav: Path) -> dict[str, Any]:
    from .artifacts import read_json

    side = wav.with_suffix(".json")
    try:
        return read_json(side) if side.is_file() else {}
    except ValueError:
        raise InputError(f"{side}: not valid JSON; rerun the generation stage") from None


@dataclass
class EmbeddedSets:
    """Per-clip embeddings of every set under every embedding that could be built."""

    data: dict[str, dict[str, list[np.ndarray]]]  # embedding → set label ("reference", models) → clips
    names: dict[str, list[str]]  # set label → clip names (file stems)
    embedders: dict[str, dict[str, Any]]  # embedding → Embedder.describe()
    skipped: dict[str, str]  # embedding → why it was not computed

    def summary(self):
        """DataFrame ``embedding, set, clips, rows, dim, row, normalisation`` (plus skipped embeddings)."""
        import pandas as pd

        rows = []
        for emb, sets in self.data.items():
            info = self.embedders[emb]
            for label, clips in sets.items():
                rows.append({"embedding": emb, "set": label, "clips": len(clips),
                             "rows": int(sum(c.shape[0] for c in clips)), "dim": int(clips[0].shape[1]),
                             "row": info["row"], "sample_rate": info["sample_rate"]})
        for emb, why in self.skipped.items():
            rows.append({"embedding": emb, "set": "(skipped)", "clips": 0, "rows": 0, "dim": 0, "row": why,
                         "sample_rate": None})
        return pd.DataFrame(rows)


def embed_sets(sets: EvaluationSets, cfg, *, embeddings: Sequence[str] | None = None,
               progress: bool = True) -> EmbeddedSets:
    """Embed the reference and every generated set with each of ``evaluation.embeddings`` (cached per file).

    An embedding whose weights are not available (e.g. VGGish offline without a local weights file) is skipped
    and the reason recorded, so the other embeddings still produce a table.
    """
    from .embeddings import embed_files, get_embedder
    from .errors import DependencyError

    all_sets = {"reference": sets.reference, **sets.generated}
    data: dict[str, dict[str, list[np.ndarray]]] = {}
    described, skipped = {}, {}
    for name in embeddings or cfg.evaluation.embeddings:
        try:
            embedder = get_embedder(name, cfg)
        except DependencyError as exc:
            skipped[name] = str(exc)
            continue
        data[name] = {label: list(embed_files(files, embedder, cache_dir=cfg.paths.cache, progress=progress).values())
                      for label, files in all_sets.items()}
        described[name] = embedder.describe()
        del embedder
    names = {label: [Path(f).stem for f in files] for label, files in all_sets.items()}
    return EmbeddedSets(data=data, names=names, embedders=described, skipped=skipped)


def fad_table(embedded: EmbeddedSets, cfg, *, progress: bool = False):
    """FAD of every model against the reference under every embedding, with bootstrap intervals and FAD∞.

    Returns:
        DataFrame ``embedding, model, fad, ci_low, ci_high, bias, fad_inf, fad_inf_r2, n_ref, n_gen, rows_ref,
        rows_gen, dim, inputs`` (clips counted in ``n_*``; embedding rows in ``rows_*``).
    """
    import pandas as pd

    ev = cfg.evaluation
    rows = []
    for emb, sets in embedded.data.items():
        ref = sets["reference"]
        for model, clips in sets.items():
            if model == "reference":
                continue
            row: dict[str, Any] = {"embedding": emb, "model": model}
            if ev.bootstrap > 0:
                res = bootstrap_fad(ref, clips, n=ev.bootstrap, confidence=ev.confidence, seed=cfg.seed,
                                    progress=progress)
                row |= {"fad": res.point, "ci_low": res.ci_low, "ci_high": res.ci_high, "bias": res.bias}
            else:
                row |= {"fad": frechet_distance(ref, clips), "ci_low": np.nan, "ci_high": np.nan, "bias": np.nan}
            try:
                inf = fad_infinity(ref, clips, n_points=ev.fad_inf_points, seed=cfg.seed)
                row |= {"fad_inf": inf.fad_inf, "fad_inf_r2": inf.r2}
            except InputError:
                row |= {"fad_inf": np.nan, "fad_inf_r2": np.nan}
            row |= {"n_ref": len(ref), "n_gen": len(clips), "rows_ref": int(sum(c.shape[0] for c in ref)),
                    "rows_gen": int(sum(c.shape[0] for c in clips)), "dim": int(clips[0].shape[1]),
                    "inputs": embedded.embedders[emb]["normalisation"]}
            rows.append(row)
    return pd.DataFrame(rows)


def paired_table(embedded: EmbeddedSets, cfg, *, a: str | None = None, b: str | None = None):
    """``FAD_a − FAD_b`` per embedding (a = fine-tuned, b = baseline by default) with paired bootstrap intervals.

    Generated sets are resampled with shared indices when both models made the same number of files (same
    prompts and seeds in the same order), otherwise independently.
    """
    import pandas as pd

    ev = cfg.evaluation
    a = a or cfg.listening.system_label
    b = b or cfg.listening.baseline_label
    rows = []
    for emb, sets in embedded.data.items():
        if a not in sets or b not in sets:
            continue
        paired = len(sets[a]) == len(sets[b]) and embedded.names.get(a) == embedded.names.get(b)
        res = paired_bootstrap_difference(sets["reference"], sets[a], sets[b], n=max(ev.bootstrap, 1),
                                          confidence=ev.confidence, seed=cfg.seed, paired_generated=paired)
        rows.append({"embedding": emb, "a": a, "b": b, **res.as_dict()})
    return pd.DataFrame(rows)


def fad_infinity_fits(embedded: EmbeddedSets, cfg, *, embedding: str | None = None) -> dict[str, FADInfinity]:
    """FAD∞ fit of every model for one embedding (default: the first computed), for the fit plot."""
    emb = embedding or next(iter(embedded.data), None)
    if emb is None:
        return {}
    sets = embedded.data[emb]
    out = {}
    for model, clips in sets.items():
        if model == "reference":
            continue
        try:
            out[model] = fad_infinity(sets["reference"], clips, n_points=cfg.evaluation.fad_inf_points, seed=cfg.seed)
        except InputError:
            continue
    return out


def outlier_table(embedded: EmbeddedSets, *, embedding: str | None = None, top: int | None = None):
    """Leave-one-out contribution of every generated clip (all models) for one embedding, largest first."""
    import pandas as pd

    emb = embedding or next(iter(embedded.data), None)
    if emb is None:
        return pd.DataFrame(columns=["embedding", "model", "clip", "fad_without", "delta", "z", "outlier"])
    sets = embedded.data[emb]
    frames = []
    for model, clips in sets.items():
        if model == "reference" or len(clips) < 3:
            continue
        df = per_clip_contribution(sets["reference"], clips, names=embedded.names[model])
        frames.append(df.assign(embedding=emb, model=model))
    if not frames:
        return pd.DataFrame(columns=["embedding", "model", "clip", "fad_without", "delta", "z", "outlier"])
    df = pd.concat(frames, ignore_index=True).sort_values("delta", ascending=False, ignore_index=True)
    df = df[["embedding", "model", "clip", "fad_without", "delta", "z", "outlier"]]
    return df.head(top) if top else df


def clap_scores(sets: EvaluationSets, cfg, *, progress: bool = True):
    """CLAP score of every model: cosine of each clip's CLAP audio embedding (mean over 10 s windows) with the
    CLAP text embedding of its own prompt (from the sidecar). Clips without a prompt are left out."""
    import pandas as pd

    from .embeddings import embed_files, get_embedder
    from .errors import DependencyError

    empty = pd.DataFrame(columns=["model", "score", "ci_low", "ci_high", "confidence", "n", "clap_model"])
    if not cfg.evaluation.relevance:
        return empty
    try:
        embedder = get_embedder("clap", cfg)
    except DependencyError as exc:
        _warn(f"CLAP score skipped: {exc}")
        return empty
    rows = []
    for model, files in sets.generated.items():
        keep = [(f, p) for f, p in zip(files, sets.prompts[model]) if p]
        if not keep:
            continue
        embs = embed_files([f for f, _ in keep], embedder, cache_dir=cfg.paths.cache, progress=progress)
        audio = np.stack([e.mean(axis=0) for e in embs.values()])
        text = embedder.embed_text([p for _, p in keep])
        res = clap_score(audio, text, n_boot=max(cfg.evaluation.bootstrap, 1), confidence=cfg.evaluation.confidence,
                         seed=cfg.seed)
        rows.append({"model": model, **res.as_dict(), "clap_model": embedder.identity})
    return pd.DataFrame(rows)


def tag_distributions(sets: EvaluationSets, cfg, *, progress: bool = True):
    """musicnn clip-level tag probabilities (mean over 3 s patches) of every set: ``{label: DataFrame [clips, tags]}``."""
    import pandas as pd

    from . import musicnn
    from .embeddings import MusicnnEmbedder, embed_files
    from .errors import DependencyError

    if not cfg.evaluation.relevance:
        return {}
    model = cfg.annotation.musicnn_model
    try:
        tagger = MusicnnEmbedder(model, layer="taggram", cache_dir=cfg.paths.cache)
    except DependencyError as exc:
        _warn(f"tag distributions skipped: {exc}")
        return {}
    labels = list(musicnn.LABELS[model])
    out = {}
    for label, files in {"reference": sets.reference, **sets.generated}.items():
        embs = embed_files(files, tagger, cache_dir=cfg.paths.cache, progress=progress)
        out[label] = pd.DataFrame([e.mean(axis=0) for e in embs.values()], columns=labels,
                                  index=[Path(f).stem for f in files])
    return out


def tag_kl_table(tags: Mapping[str, Any], *, top: int = 5):
    """KL(reference ‖ model) of mean musicnn tag distributions, with each set's top tags."""
    import pandas as pd

    if "reference" not in tags:
        return pd.DataFrame(columns=["set", "kl_from_reference", "clips", "top_tags"])
    ref = tags["reference"]
    rows = []
    for label, df in tags.items():
        top_tags = ", ".join(f"{t} {v:.2f}" for t, v in df.mean().sort_values(ascending=False).head(top).items())
        kl = 0.0 if label == "reference" else tag_kl_divergence(ref, df)
        rows.append({"set": label, "kl_from_reference": kl, "clips": len(df), "top_tags": top_tags})
    return pd.DataFrame(rows)


def verdict(paired, table=None) -> str:
    """Plain-language reading of the paired differences (one line per embedding), for the notebook and report."""
    if paired is None or len(paired) == 0:
        return "Only one model was generated, so there is no difference to test."
    lines = []
    for r in paired.to_dict("records"):
        pct = round(100 * r["confidence"])
        head = (f"{r['embedding']}: FAD({r['a']}) − FAD({r['b']}) = {r['difference']:+.4g} "
                f"[{pct}% CI {r['ci_low']:+.4g}, {r['ci_high']:+.4g}], {r['a']} lower in "
                f"{100 * r['share_a_better']:.0f}% of resamples")
        if r["significant"]:
            who = r["a"] if r["difference"] < 0 else r["b"]
            lines.append(f"{head} → {who} is closer to the reference on this embedding.")
        else:
            lines.append(f"{head} → the interval includes 0: no evidence of a difference at this sample size.")
    return "\n".join(lines)


def stage_metrics(sets: EvaluationSets, embedded: EmbeddedSets, table, paired, fits: Mapping[str, FADInfinity],
                  outliers, *, clap=None, tag_kl=None) -> dict[str, Any]:
    """Everything the evaluation stage measured, as one JSON-ready dict for ``06_evaluation/metrics.json``."""
    return {
        "reference": {"source": sets.reference_source, "files": len(sets.reference)},
        "generated": {m: len(f) for m, f in sets.generated.items()},
        "embedders": embedded.embedders,
        "skipped_embeddings": embedded.skipped,
        "fad": table.to_dict(orient="records"),
        "paired_difference": paired.to_dict(orient="records") if paired is not None else [],
        "fad_infinity": {m: f.as_dict() for m, f in fits.items()},
        "outliers": outliers[outliers["outlier"]].to_dict(orient="records") if len(outliers) else [],
        "clap_score": clap.to_dict(orient="records") if clap is not None else [],
        "tag_kl": tag_kl.to_dict(orient="records") if tag_kl is not None else [],
        "verdict": verdict(paired),
    }


# ============================================================================================== CLI
def fad_cli(args, cfg) -> int:
    """``echoscript fad --reference DIR --generated DIR --embedding NAME [--bootstrap N]``: print the FAD."""
    from .embeddings import embed_files, get_embedder

    ref_files = audio_files(args.reference, extensions=cfg.curation.extensions)
    gen_files = audio_files(args.generated, extensions=cfg.curation.extensions)
    embedder = get_embedder(args.embedding, cfg)
    ref = list(embed_files(ref_files, embedder, cache_dir=cfg.paths.cache).values())
    gen = list(embed_files(gen_files, embedder, cache_dir=cfg.paths.cache).values())
    rows_ref, rows_gen = sum(len(e) for e in ref), sum(len(e) for e in gen)
    n_boot = int(args.bootstrap)
    if n_boot > 0:
        res = bootstrap_fad(ref, gen, n=n_boot, confidence=cfg.evaluation.confidence, seed=cfg.seed)
        pct = round(100 * res.confidence)
        print(f"FAD ({embedder.name}) = {res.point:.4f}   {pct}% CI [{res.ci_low:.4f}, {res.ci_high:.4f}]   "
              f"(bootstrap: {n_boot} resamples of clips on both sides, bias-corrected; resampling bias "
              f"{res.bias:+.4f})")
    else:
        print(f"FAD ({embedder.name}) = {frechet_distance(ref, gen):.4f}   (no interval: --bootstrap 0)")
    print(f"reference: {len(ref)} files, {rows_ref} embedding rows   generated: {len(gen)} files, {rows_gen} rows   "
          f"D = {ref[0].shape[1]}")
    print(f"inputs (both sides): {embedder.normalisation}")
    if min(rows_ref, rows_gen) <= ref[0].shape[1]:
        print(f"note: fewer rows than dimensions on one side (N <= D = {ref[0].shape[1]}); the covariance is "
              "singular and FAD is strongly biased upward at this size — compare systems only at equal N")
    return 0
