"""Fréchet Audio Distance you can trust: exact and fast distance, bootstrap intervals, FAD∞, per-clip outliers.

FAD (Kilgour et al., 2019) fits one Gaussian to the embeddings of a reference set and one to those of a generated
set and measures the Fréchet (2-Wasserstein) distance between them::

    FAD = |mu_a - mu_b|² + tr(S_a) + tr(S_b) - 2 tr sqrt(S_a S_b)

**How the trace term is computed.** Write each covariance as ``S = F Fᵀ`` with a factor ``F`` of shape
``[D, r]``. The singular values of the small matrix ``G = F_aᵀ F_b`` are the square roots of the eigenvalues of
``S_a^½ S_b S_a^½``, so ``tr sqrt(S_a S_b)`` is the sum of the singular values of G. The factor is the centred data
itself (``F = X_cᵀ / sqrt(N-1)``, exact and cheap when ``N <= D``, the rank-deficient case) or a Cholesky factor of
the covariance (``N > D``; pivoted Cholesky or an eigen-factor when the covariance is singular). Real embeddings
(CLAP, PANNs) are a low-rank signal over a small noise floor, often stored as float32: their small singular values
are lost if one takes square roots of the eigenvalues of ``G Gᵀ`` (rounding at ``eps · σ_max²``), so they are
taken from G itself, by eigenvalues of ``Gᵀ G`` and of ``(G Gᵀ)⁻¹`` (each exact on its own end of the spectrum)
for two covariances, by an SVD otherwise. No general matrix square root is taken, every step is real, and the
result agrees with an exact float64 reference to rounding on low-rank-plus-noise, near-singular, ``N < D`` and
identical sets, from float32 or float64 rows (``tests/test_fad.py``; ``benchmarks/bench_fad.py`` times it
against ``scipy.linalg.sqrtm``). All arithmetic is float64.

**Uncertainty.** A FAD is a statistic of two finite samples, so it gets an interval: :func:`bootstrap_fad`
resamples *clips* (all frames of a clip together, since frames of one clip are not independent) of the generated
set, or of both sets; :func:`paired_bootstrap_difference` compares two systems against the same reference with
shared reference resamples; :func:`fad_infinity` removes the sample-size bias by extrapolating FAD over subset
sizes to ``1/N → 0`` (Gui et al., ICASSP 2024); :func:`per_clip_contribution` finds clips that dominate the score.

Embeddings can be passed as one ``[N, D]`` array (each row is a resampling unit) or as a sequence of per-clip
``[n_i, D]`` arrays (each clip is a unit; its rows are pooled into the Gaussian).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from .artifacts import atomic_path
from .errors import InputError

__all__ = [
    "RELIABILITY_FLAGS",
    "ClipsNeeded",
    "EmbeddingStats",
    "FADInfinity",
    "FADInterval",
    "PairedDifference",
    "bootstrap_fad",
    "clips_needed",
    "fad_infinity",
    "frechet_distance",
    "frechet_distance_from_stats",
    "paired_bootstrap_difference",
    "per_clip_contribution",
    "reliability_flags",
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
    low-rank data factor ``F`` ``[D, r]`` with ``F Fᵀ = S``. Factors of a covariance are computed when first needed
    and kept (a reference reused across bootstrap resamples is factored once)."""

    def __init__(self, mu: np.ndarray, trace: float, *, cov: np.ndarray | None = None,
                 factor: np.ndarray | None = None, symmetric: bool = False):
        self.mu, self.trace, self.cov = mu, trace, cov
        self.symmetric = symmetric  # cov is exactly symmetric (made here by a symmetric product): no averaging
        self._data = factor
        self._factors: dict[str, tuple[np.ndarray, bool]] = {}

    def factor(self, *, upper: bool = False) -> tuple[np.ndarray, bool]:
        """``(F, triangular)``: a factor with ``F Fᵀ = S`` and whether it is square triangular (lower, or upper
        with ``upper=True``). A data factor, or a covariance that Cholesky refuses, gives a general ``[D, r]``."""
        if self._data is not None:
            return self._data, False
        key = "upper" if upper else "lower"
        if key not in self._factors:
            other = self._factors.get("lower" if upper else "upper")
            if other is not None and not other[1]:  # Cholesky refused this covariance already
                self._factors[key] = other
            else:
                self._factors[key] = _factor_cov(self.cov, upper=upper, symmetric=self.symmetric)
        return self._factors[key]


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


def _factor_cov(cov: np.ndarray, *, upper: bool = False, symmetric: bool = False) -> tuple[np.ndarray, bool]:
    """A real ``F`` ``[D, r]`` with ``F Fᵀ = cov``, and whether it is square triangular.

    Cholesky when ``cov`` is positive definite: lower-triangular ``L``, or with ``upper=True`` an upper-triangular
    ``U`` (the Cholesky factor of the reversed matrix, reversed back). Otherwise LAPACK's pivoted Cholesky
    (``?pstrf``), which stops at the numerical rank r (directions whose remaining variance is at the rounding level
    of ``cov`` itself), and an eigen-factor with negative rounding clamped to zero only if that fails. A ``cov``
    not known to be ``symmetric`` to the last bit is averaged with its transpose first.
    """
    import scipy.linalg
    from scipy.linalg.lapack import dpotrf, dpstrf

    cov = np.ascontiguousarray(cov) if symmetric else np.ascontiguousarray(0.5 * (cov + cov.T))
    # LAPACK's ?potrf on the Fortran view of the symmetric matrix (no reordering copy; numpy's cholesky makes
    # two), the same factor as numpy's
    if upper:
        # For a symmetric C-ordered matrix, its memory read backwards is the Fortran layout of the matrix with
        # rows and columns reversed, and the reversed lower factor read backwards is the upper factor (Fortran
        # order): two linear copies instead of two transposing ones
        n = cov.shape[0]
        c, info = dpotrf(_reversed_memory(cov).reshape(n, n).T, lower=1, clean=1, overwrite_a=1)
        if info == 0 and np.isfinite(c).all():
            return _reversed_memory(c.T).reshape(n, n).T, True
    else:
        c, info = dpotrf(cov.T, lower=1, clean=1)
        if info == 0 and np.isfinite(c).all():
            return c, True
    c, piv, rank, info = dpstrf(cov, lower=1, tol=-1.0)
    if info >= 0 and np.isfinite(c).all():
        factor = np.empty((cov.shape[0], rank))
        factor[piv - 1] = np.tril(c)[:, :rank]
        return factor, False
    w, v = scipy.linalg.eigh(cov, driver="evd", check_finite=False)
    w[w <= _rounding_floor(w)] = 0.0
    keep = w > 0
    return v[:, keep] * np.sqrt(w[keep]), False


def _reversed_memory(a: np.ndarray) -> np.ndarray:
    """The elements of a C-contiguous ``a`` in reverse memory order, as a new flat array."""
    return np.flip(a.reshape(-1)).copy()


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
    cov = xc.T @ xc  # numpy takes ?syrk for a product with its own transpose: exactly symmetric
    cov /= denom
    return _Side(mu, float(np.trace(cov)), cov=cov, symmetric=True)


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


#: Relative accuracy asked of the trace term, as a share of the distance (the bound is a worst case; the distance comes out far closer).
_TRACE_RTOL = 1e-8


def _trace_sqrt_product(a: _Side, b: _Side, *, rest: float) -> float:
    """``tr sqrt(S_a S_b)`` as the nuclear norm (sum of singular values) of ``G = F_aᵀ F_b`` for factors
    ``F Fᵀ = S``: the singular values of G are the square roots of the eigenvalues of ``S_a^½ S_b S_a^½``.

    Singular values are taken of G itself, never square roots of the eigenvalues of ``G Gᵀ``: those lose the small
    singular values (noise-floor directions of real embeddings) to rounding at ``eps · σ_max²``. Two covariances
    give a square lower-triangular ``G = U_aᵀ L_b`` (``U_a`` upper, ``L_b`` lower Cholesky factors), handled by
    :func:`_nuclear_norm_triangular`; any other pair (a data factor, a singular covariance) by an SVD of G, whose
    smaller side is at most the smaller number of rows. ``rest = |mu_a − mu_b|² + tr S_a + tr S_b`` sets the
    accuracy asked for (see :data:`_TRACE_RTOL`).
    """
    import scipy.linalg

    fa, tri_a = a.factor(upper=True)
    fb, tri_b = b.factor()
    if fa.shape[1] == 0 or fb.shape[1] == 0:
        return 0.0
    if tri_a and tri_b:
        return _nuclear_norm_triangular(_upper_t_lower_product(fa, fb), rest=rest)
    g = fa.T @ fb
    return float(scipy.linalg.svdvals(g, check_finite=False).sum())


def _upper_t_lower_product(u: np.ndarray, b: np.ndarray, *, block: int = 256) -> np.ndarray:
    """``uᵀ @ b`` for square upper-triangular ``u`` and lower-triangular ``b`` (both Fortran order), which is lower
    triangular: one triangular multiply (``?trmm``, transposed) per block column of ``b``, on the rows at and
    below it, so a third of the work of a triangular-times-full product, with the same values."""
    from scipy.linalg.blas import dtrmm

    n = u.shape[0]
    out = np.zeros((n, n), order="F")
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        out[j0:, j0:j1] = dtrmm(1.0, u[j0:, j0:], b[j0:, j0:j1], side=0, lower=0, trans_a=1)
    return out


def _nuclear_norm_triangular(g: np.ndarray, *, rest: float) -> float:
    """Sum of singular values of a square lower-triangular ``g`` (Fortran order; overwritten), exact and fast.

    1. Eigenvalues ``λ`` of ``gᵀ g`` (``?lauum`` + a symmetric eigensolver): about 4× cheaper than an SVD, and
       exact for every ``λ`` well above the solver's absolute rounding ``δ = eps · λ_max``.
    2. When the first-order error bound ``Σ δ / (2 sqrt λ)`` of ``Σ sqrt λ`` is not small against the distance
       (``rest − 2 Σ sqrt λ``), the small ``λ`` are taken instead from the eigenvalues of ``(g gᵀ)⁻¹ = g⁻ᵀ g⁻¹``
       (``?trtri`` + ``?lauum``), where they are the large ones and so exact; each ``λ`` comes from the side
       that computes it more accurately (split at ``sqrt(λ_max λ_min)``).
    3. Only if that bound is still too large (condition number of g beyond ~1e8, or g singular) an SVD.

    When g's diagonal already shows that step 1 cannot be accurate enough (a low-rank signal over a noise floor:
    :func:`_graded`), :func:`_nuclear_norm_graded` goes to the inverse side first and takes the few large ``λ``
    from a subspace iteration instead, which saves step 1's eigensolver; it falls back to the steps above.
    """
    import scipy.linalg
    from scipy.linalg.lapack import dlauum, dtrtri

    eps = float(np.finfo(np.float64).eps)

    def acceptable(total, bound):
        distance = max(rest - 2.0 * total, 0.0)
        return 2.0 * bound <= _TRACE_RTOL * distance + 64 * eps * rest

    if _graded(g, rest=rest):
        total = _nuclear_norm_graded(g, rest=rest, acceptable=acceptable, eigvals_lower=_eigvalsh_lower)
        if total is not None:
            return total
    gram, _ = dlauum(g, lower=1)
    lam = np.maximum(_eigvalsh_lower(gram), 0.0)
    del gram
    lam_max = float(lam[-1])
    if lam_max == 0.0:
        return 0.0
    delta = eps * lam_max
    err_direct = np.where(lam > delta, delta / (2.0 * np.sqrt(np.maximum(lam, delta))), np.sqrt(delta))
    total = float(np.sqrt(lam).sum())
    if acceptable(total, float(err_direct.sum())):
        return total
    inv, info = dtrtri(g, lower=1, overwrite_c=0)
    if info == 0 and np.isfinite(inv).all():
        gram_inv, _ = dlauum(inv, lower=1)
        mu = _eigvalsh_lower(gram_inv)[::-1]  # descending: mu[i] estimates 1 / lam[i]
        del inv, gram_inv
        mu_max = float(mu[0])
        if mu_max > 0:
            lam_inv = 1.0 / np.maximum(mu, eps * mu_max)  # guards only the large λ, which come from step 1
            err_inv = eps * mu_max * lam_inv ** 1.5 / 2.0
            split = math.sqrt(lam_max / mu_max)
            low = lam < split
            lam = np.where(low, lam_inv, lam)
            total = float(np.sqrt(lam).sum())
            if acceptable(total, float(np.where(low, err_inv, err_direct).sum())):
                return total
    return float(scipy.linalg.svdvals(np.tril(g), check_finite=False).sum())


def _graded(g: np.ndarray, *, rest: float) -> bool:
    """Whether the first step of :func:`_nuclear_norm_triangular` would miss its accuracy, judged from the
    triangular ``g`` alone (O(D²)): its smallest singular values are about its small diagonal entries, its largest
    squared singular value at least its largest squared column norm, so the step's error bound is about
    ``Σ eps · max‖g_j‖² / (2 |g_ii|)``. Graded factors (low-rank signal over a noise floor) exceed the accuracy
    asked by orders of magnitude, dense well-conditioned ones stay far below it; a wrong guess costs time only."""
    eps = float(np.finfo(np.float64).eps)
    diag = np.abs(np.diagonal(g))
    lam_max = float(np.einsum("ij,ij->j", g, g).max())
    if lam_max == 0.0 or not np.all(diag > 0):
        return False
    return eps * lam_max * float((0.5 / diag).sum()) > 1e-3 * _TRACE_RTOL * rest


def _nuclear_norm_graded(g: np.ndarray, *, rest: float, acceptable, eigvals_lower, seed: int = 0) -> float | None:
    """Sum of singular values of a lower-triangular ``g`` whose spectrum spans many orders of magnitude, or
    ``None`` when this route cannot vouch for its accuracy (the caller then takes the general one).

    1. Eigenvalues ``μ`` of ``(g gᵀ)⁻¹`` (``?trtri`` + ``?lauum`` + a symmetric eigensolver) give every
       ``λ = 1/μ`` of ``gᵀ g`` that is small against ``sqrt(λ_max λ_min)`` exactly (error ``eps μ_max λ^1.5 / 2``
       on ``sqrt λ``).
    2. The k larger ``λ`` (the signal directions; k ≤ D/4) are Ritz values of ``gᵀ g`` on a block subspace
       iteration of k + 8 vectors: singular values of ``g Q``, with residual norms ``r_i`` that bound their error
       (``r_i / (2 sqrt θ_i)`` on ``sqrt θ_i``).
    3. Checks: the eigenvalues so found must add up to ``tr(gᵀ g) = ‖g‖²_F`` (a missed large eigenvalue would not),
       and the summed error bounds must pass ``acceptable``.
    """
    from scipy.linalg.lapack import dlauum, dtrtri

    eps = float(np.finfo(np.float64).eps)
    n = g.shape[0]
    inv, info = dtrtri(g, lower=1, overwrite_c=0)
    if info != 0 or not np.isfinite(inv).all():
        return None
    gram_inv, _ = dlauum(inv, lower=1)
    del inv
    mu = eigvals_lower(gram_inv)[::-1]  # descending, so 1/mu is ascending λ
    del gram_inv
    mu_max = float(mu[0])
    if not mu_max > 0:
        return None
    lam = 1.0 / np.maximum(mu, eps * mu_max)
    err = eps * mu_max * lam ** 1.5 / 2.0
    split = math.sqrt(float(lam[-1]) / mu_max)  # sqrt(λ_max λ_min), λ_max from this side (good to a few %)
    k = int(np.count_nonzero(lam >= split))
    if k > n // 4:
        return None
    total_small = float(np.sqrt(lam[: n - k]).sum())
    bound = float(err[: n - k].sum())
    sum_small = float(lam[: n - k].sum())
    sum_small_err = float((lam[: n - k] ** 2).sum()) * eps * mu_max
    total_large = sum_large = sum_large_err = 0.0
    if k:
        m = min(n, k + 8)
        rng = np.random.default_rng(seed)
        q = rng.standard_normal((n, m))
        for _ in range(3):  # the gap below the k-th eigenvalue is wide (that is why they are few): 3 steps suffice
            q, _ = np.linalg.qr(g.T @ (g @ q))
        w, sv, vt = np.linalg.svd(g @ q, full_matrices=False)
        theta = sv ** 2
        resid = g.T @ (w * sv) - (q @ vt.T) * theta  # gᵀ g u_i - θ_i u_i for the Ritz vectors u = Q V
        r = np.sqrt(np.einsum("ij,ij->j", resid, resid)) + 4 * m * eps * float(theta[0])
        theta, r = theta[:k], r[:k]
        if not theta[-1] > split:
            return None
        total_large = float(np.sqrt(theta).sum())
        bound += float((r / (2.0 * np.sqrt(theta))).sum())
        sum_large, sum_large_err = float(theta.sum()), float(r.sum())
    frob = float(np.einsum("ij,ij->", g, g))
    if abs(sum_small + sum_large - frob) > sum_small_err + sum_large_err + 8 * n * eps * frob:
        return None
    total = total_small + total_large
    return total if acceptable(total, bound) else None


#: Below this size LAPACK's one-stage tridiagonal reduction was as fast as the two-stage one or faster (measured
#: with OpenBLAS 0.3.30 on 2 cores: 0.14 s both at 1536, 0.22 s vs 0.19 s at 1792, 0.34 s vs 0.28 s at 2048).
_TWO_STAGE_MIN = 1792


def _eigvalsh_lower(m: np.ndarray) -> np.ndarray:
    """Eigenvalues (ascending) of the symmetric matrix held in the lower triangle of ``m`` (overwritten).

    Large matrices go to LAPACK's two-stage driver (``dsyevd_2stage``: a blocked reduction to a band first, then
    the band to tridiagonal), which scipy does not wrap, through the OpenBLAS that numpy or scipy already loaded:
    about a third faster at D = 2048 than the one-stage ``?syevd``/``?syevr`` behind ``scipy.linalg.eigh``, whose
    reduction spends half its work in matrix-vector products. Both are backward stable (error ``O(eps ‖m‖)`` on
    every eigenvalue), which is all the callers' error bounds assume. Without that driver, ``scipy.linalg.eigh``.
    """
    import scipy.linalg

    n = m.shape[0]
    fn = _lapacke_dsyevd_2stage() if n >= _TWO_STAGE_MIN else None
    if fn is not None:
        a = m if m.flags.f_contiguous else np.asfortranarray(m)
        w = np.empty(n)
        info = fn(102, b"N", b"L", n, a.ctypes.data, n, w.ctypes.data)  # 102: column-major
        if info != 0:  # the driver has overwritten the matrix: there is nothing left to fall back on
            raise np.linalg.LinAlgError(f"LAPACK dsyevd_2stage failed (info {info}) on a {n} x {n} matrix")
        return w
    return scipy.linalg.eigh(m, lower=True, eigvals_only=True, overwrite_a=True, check_finite=False)


@functools.lru_cache(maxsize=1)
def _lapacke_dsyevd_2stage():
    """``LAPACKE_dsyevd_2stage`` of a loaded OpenBLAS (scipy's and numpy's wheels bundle one; found through
    threadpoolctl), as a ctypes function, or ``None``; looked up once per process."""
    import ctypes

    import scipy.linalg.lapack  # noqa: F401  (loads scipy's BLAS/LAPACK, so that threadpoolctl lists it)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    names = [(f"{prefix}LAPACKE_dsyevd_2stage{suffix}", ctypes.c_int64 if suffix else ctypes.c_int)
             for prefix in ("scipy_", "") for suffix in ("", "64_")]
    for lib in threadpool_info():
        if lib.get("internal_api") != "openblas" or not lib.get("filepath"):
            continue
        try:
            cdll = ctypes.CDLL(lib["filepath"])
        except OSError:
            continue
        for name, lapack_int in names:
            fn = getattr(cdll, name, None)
            if fn is not None:
                fn.restype = lapack_int
                fn.argtypes = [ctypes.c_int, ctypes.c_char, ctypes.c_char, lapack_int, ctypes.c_void_p, lapack_int,
                               ctypes.c_void_p]
                return fn
    return None


def _rounding_floor(eig: np.ndarray) -> float:
    """Eigenvalues at or below this are zero up to the rounding of a symmetric eigensolver."""
    return float(eig.size * np.finfo(np.float64).eps * max(float(np.abs(eig).max(initial=0.0)), 0.0))


def _distance(a: _Side, b: _Side) -> float:
    if a.mu.shape != b.mu.shape:
        raise InputError(f"embedding sizes differ: {a.mu.shape[0]} vs {b.mu.shape[0]}; use the same embedder")
    diff = a.mu - b.mu
    rest = float(diff @ diff) + a.trace + b.trace
    value = rest - 2.0 * _trace_sqrt_product(a, b, rest=rest)
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
        self.clip_stats = _clip_stats(self.rows, self.groups, self.n_clips)

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
        if self.clip_stats is not None:
            side = _side_from_clip_stats(self.clip_stats, counts)
            if side is not None:
                return side
        w = counts[self.groups]
        keep = w > 0
        return _side_from_rows(self.rows[keep], w[keep])


#: Largest per-clip scatter matrices kept for a bootstrap (bytes): C clips × D² float64.
_CLIP_STATS_MAX_BYTES = 256 * 2 ** 20


def _clip_stats(rows: np.ndarray, groups: np.ndarray, n_clips: int):
    """``(n_c, mean_c, scatter_c)`` of every clip (rows, ``[C, D]`` means, ``[C, D, D]`` centred scatter about the
    clip's own mean), when clips hold several rows each and the matrices fit in memory; else ``None``.

    A clip-level bootstrap resample counts each clip ``k_c`` times, so its covariance is
    ``(Σ k_c scatter_c + Σ k_c n_c (mean_c − μ)(mean_c − μ)ᵀ) / (N − 1)``: O(C·D²) a resample instead of O(N·D²),
    with every term centred (no cancellation of large means)."""
    n_rows, dim = rows.shape
    if n_rows < 4 * n_clips or n_clips * dim * dim * 8 > _CLIP_STATS_MAX_BYTES:
        return None
    n_c = np.bincount(groups, minlength=n_clips).astype(np.float64)
    if (n_c == 0).any():
        return None
    order = np.argsort(groups, kind="stable")
    starts = np.concatenate([[0], np.cumsum(n_c.astype(np.int64))])
    means = np.empty((n_clips, dim))
    scatter = np.empty((n_clips, dim, dim))
    for c in range(n_clips):
        block = rows[order[starts[c]:starts[c + 1]]]
        means[c] = block.mean(axis=0)
        xc = block - means[c]
        scatter[c] = xc.T @ xc
    return n_c, means, scatter


def _side_from_clip_stats(stats, counts: np.ndarray) -> _Side | None:
    """The side of a resample that counts clip c ``counts[c]`` times, from :func:`_clip_stats` (equal to
    :func:`_side_from_rows` on the repeated rows up to rounding); ``None`` when its distinct rows are no more than
    the dimension (that case takes the exact low-rank factor of the rows)."""
    n_c, means, scatter = stats
    keep = counts > 0
    if n_c[keep].sum() <= means.shape[1]:
        return None
    k = counts[keep]
    kn = k * n_c[keep]
    total = float(kn.sum())
    mu = kn @ means[keep] / total
    d = means[keep] - mu
    cov = np.tensordot(k, scatter[keep], axes=1) + (d * kn[:, None]).T @ d
    cov /= total - 1.0
    return _Side(mu, float(np.trace(cov)), cov=cov)


@dataclass
class FADInterval:
    """A FAD with its bootstrap interval. ``samples`` holds the bootstrap FADs (not serialised by :meth:`as_dict`)."""

    point: float
    ci_low: float
    ci_high: float
    confidence: float
    n_boot: int
    method: str
    resample: str  # what was resampled: "both", or "generated" (also when the reference is fixed statistics)
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
    for i in tqdm(range(n), desc="bootstrap FAD", disable=not progress, leave=False):
        ref_side = ref.side(ref.draw(rng) if resample == "both" else None)
        samples[i] = _distance(ref_side, gen.side(gen.draw(rng)))
    lo, hi = _interval(point, samples, confidence, method)
    effective = "generated" if ref.fixed is not None else resample  # fixed statistics are never resampled
    return FADInterval(point=point, ci_low=lo, ci_high=hi, confidence=confidence, n_boot=n, method=method,
                       resample=effective, bias=float(samples.mean() - point), std=float(samples.std(ddof=1))
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
    for i in tqdm(range(n), desc="paired bootstrap", disable=not progress, leave=False):
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
        :class:`FADInfinity` with the fit points for :func:`echoscript_utils.plots.evaluation.fad_infinity`.
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


# ============================================================================================== reliability
#: Flag codes of :func:`reliability_flags`, with what each means for the reader.
RELIABILITY_FLAGS = {
    "rows<dim": "fewer embedding rows than dimensions: the covariance is singular and the FAD is dominated by its "
                "sample-size bias (compare with FAD∞, and only with FADs from the same number of rows)",
    "clips<min": "fewer clips than the minimum asked for: the interval rests on a handful of resampling units",
}


def reliability_flags(*, n_ref: int, n_gen: int, rows_ref: int, rows_gen: int, dim: int,
                      min_clips: int) -> list[str]:
    """Which of :data:`RELIABILITY_FLAGS` apply to one FAD: ``rows<dim`` when either set has fewer rows than the
    embedding has dimensions, ``clips<min`` when either set has fewer than ``min_clips`` clips."""
    flags = []
    if min(rows_ref, rows_gen) < dim:
        flags.append("rows<dim")
    if min(n_ref, n_gen) < min_clips:
        flags.append("clips<min")
    return flags


@dataclass
class ClipsNeeded:
    """How many clips a FAD needs for an interval of a chosen width (see :func:`clips_needed`)."""

    width: float  # the interval width asked for (FAD units)
    width_now: float  # the bootstrap interval's width at the current size
    n_gen_now: int
    n_ref_now: int
    n_for_width: int | None  # generated clips for the width (reference grown by the same factor)
    n_for_bias: int | None  # generated clips for the FAD∞ bias slope / N to fall to half the width
    n_gen: int | None  # the larger of the two: the estimate
    n_ref: int | None  # reference clips at the same growth factor (when the reference is resampled too)
    fad_inf_r2: float | None  # quality of the FAD∞ line the bias estimate rests on

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def clips_needed(interval: FADInterval, *, width: float, fad_inf: FADInfinity | None = None) -> ClipsNeeded:
    """Clips per set for a FAD interval ``width`` wide, from the bootstrap and the FAD∞ fit.

    Two requirements, the larger wins:

    - **spread**: a bootstrap interval narrows as ``1/sqrt(N)`` when both sets grow by the same factor, so the
      width ``w`` needs ``N_gen · (w_now / w)²`` generated clips (and the reference grown alike when it was
      resampled too);
    - **bias**: FAD(N) ≈ FAD∞ + slope / N (:func:`fad_infinity`), so the bias falls to half the width at
      ``N = 2 · slope / w`` (nothing needed when the fitted slope is not positive).

    Both are extrapolations from the current sample (the ``1/sqrt(N)`` law and the straight line in ``1/N``
    are asymptotic), so read them as an order of magnitude, better when ``fad_inf_r2`` is close to 1.
    """
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}")
    width_now = float(interval.ci_high - interval.ci_low)
    n_gen_now, n_ref_now = int(interval.n_gen), int(interval.n_ref)
    n_for_width = factor = None
    if np.isfinite(width_now) and width_now > 0:
        factor = (width_now / width) ** 2
        n_for_width = max(2, math.ceil(n_gen_now * factor))
    n_for_bias = r2 = None
    if fad_inf is not None:
        r2 = float(fad_inf.r2)
        n_for_bias = max(2, math.ceil(2.0 * fad_inf.slope / width)) if fad_inf.slope > 0 else 2
    candidates = [n for n in (n_for_width, n_for_bias) if n is not None]
    n_gen = max(candidates) if candidates else None
    n_ref = None
    if n_gen is not None:
        growth = n_gen / max(n_gen_now, 1)
        n_ref = max(n_ref_now, math.ceil(n_ref_now * growth)) if interval.resample == "both" else n_ref_now
    return ClipsNeeded(width=float(width), width_now=width_now, n_gen_now=n_gen_now, n_ref_now=n_ref_now,
                       n_for_width=n_for_width, n_for_bias=n_for_bias, n_gen=n_gen, n_ref=n_ref, fad_inf_r2=r2)
