"""Kernel Audio Distance (KAD): an unbiased, distribution-free distance between two sets of embeddings.

KAD (Chung et al., 2025; the ``kadtk`` toolkit) is the squared maximum mean discrepancy (MMD²) between the
reference and the generated embedding distributions under a characteristic kernel, estimated without bias::

    KAD = s · [ 1/(m(m-1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n-1)) Σ_{i≠j} k(y_i, y_j) - 2/(mn) Σ_{i,j} k(x_i, y_j) ]

for ``m`` reference rows ``x`` and ``n`` generated rows ``y``, with

- the Gaussian kernel ``k(a, b) = exp(-γ |a - b|²)`` with ``γ = 1 / (2 σ² + ε)``, where kadtk's guard
  ``ε = 1e-8`` is kept because it is not negligible for tightly clustered embeddings (at σ = 0.014 it moves KAD by
  1e-5 relative); kadtk also offers the inverse quadratic ``1 / (1 + γ d²)`` and the inverse multiquadric
  ``1 / sqrt(1 + γ d²)``;
- the bandwidth ``σ`` = the median Euclidean distance between distinct rows of the **reference** set (the lower
  median of the ``m(m-1)/2`` distances, as ``torch.median`` takes it), so that every generated set is scored with the
  same kernel;
- the scale ``s = 100``.

Unlike FAD, which is biased upward at small sample sizes, the estimator's expectation is the population MMD²
(exactly so for a fixed bandwidth), so it can come out slightly negative when the two sets are alike.
**kadtk 1.1.0's code** takes the median of its *second* (generated) set although its documentation says the
reference set (its issue #9); ``bandwidth="generated"`` reproduces that code path.

Every sum is taken over blocks of rows in float64, so memory stays at ``block_rows²`` values whatever the number of
rows; the median is exact and also blocked (a bracket from a random sample of pairs, then one pass that keeps only
the distances inside it). :func:`bootstrap_kad` gives the interval the same way :func:`~echoscript_utils.fad.bootstrap_fad`
does (clips resampled with replacement); :func:`per_clip_kad` scores each generated clip on its own against the
reference (fadtk's and kadtk's "individual" score).

Embeddings can be one ``[N, D]`` array (each row a clip) or a sequence of per-clip ``[n_i, D]`` arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from .errors import InputError
from .fad import FADInterval, _check_boot, _interval, _rows_and_groups

__all__ = [
    "KAD_KERNELS",
    "KAD_SCALE",
    "KADInterval",
    "bootstrap_kad",
    "kad_bandwidth",
    "kernel_audio_distance",
    "median_pairwise_distance",
    "per_clip_kad",
]

#: kadtk's scale factor: KAD is reported as 100 × MMD².
KAD_SCALE = 100.0
#: Kernels of kadtk, each a function of ``γ d²`` with ``γ = 1 / (2 σ² + ε)``.
KAD_KERNELS = ("gaussian", "iq", "imq")
#: kadtk's guard in ``γ = 1 / (2 σ² + ε)``.
_GAMMA_EPS = 1e-8
#: Rows per block of every blocked kernel sum (a block holds ``_BLOCK_ROWS²`` float64 values, 8 MB).
_BLOCK_ROWS = 1024
#: Pairwise distances the median may hold at once.
_MEDIAN_MAX_VALUES = 4_000_000

Bandwidth = float | Literal["reference", "generated"]


# ============================================================================================== blocked sums
def _kernel(scaled_d2: np.ndarray, kernel: str) -> np.ndarray:
    """``k`` of ``γ d²`` in place (``scaled_d2`` is overwritten and returned)."""
    if kernel == "gaussian":
        return np.exp(np.negative(scaled_d2, out=scaled_d2), out=scaled_d2)
    if kernel == "iq":
        scaled_d2 += 1.0
        return np.reciprocal(scaled_d2, out=scaled_d2)
    if kernel == "imq":
        scaled_d2 += 1.0
        np.sqrt(scaled_d2, out=scaled_d2)
        return np.reciprocal(scaled_d2, out=scaled_d2)
    raise ValueError(f"unknown kernel {kernel!r}: use one of {', '.join(KAD_KERNELS)}")


def _sq_dists(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``[len(a), len(b)]`` (float64; rounding below zero clamped)."""
    d2 = a @ b.T
    d2 *= -2.0
    d2 += a_sq[:, None]
    d2 += b_sq[None, :]
    return np.maximum(d2, 0.0, out=d2)


def _blocks(n_a: int, n_b: int, *, same: bool, block: int):
    """``(i0, i1, j0, j1)`` row ranges covering ``[n_a, n_b]`` (only ``j0 >= i0`` when ``same``)."""
    for i0 in range(0, n_a, block):
        for j0 in range(i0 if same else 0, n_b, block):
            yield i0, min(i0 + block, n_a), j0, min(j0 + block, n_b)


def _starts(groups: np.ndarray) -> np.ndarray:
    """Index of the first row of each run of equal (sorted) clip indices."""
    return np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])


def _kernel_sums(a: np.ndarray, b: np.ndarray | None, *, gamma: float, kernel: str, block: int,
                 groups_a: np.ndarray | None = None, groups_b: np.ndarray | None = None,
                 clip_level: bool = False) -> float | np.ndarray:
    """``Σ k(a_i, b_j)`` over all row pairs, or with ``b=None`` over the pairs ``i ≠ j`` of ``a`` with itself.

    With ``clip_level=True`` the sums per pair of clips instead, a ``[C_a, C_b]`` matrix (with ``b=None`` the
    symmetric ``[C_a, C_a]`` matrix whose diagonal holds each clip's sum over its own pairs ``i ≠ j``); clips are
    runs of equal, sorted indices in ``groups_a`` / ``groups_b``. Memory: one ``block × block`` float64 block
    besides the result.
    """
    same = b is None
    if same:
        b, groups_b = a, groups_a
    a_sq = np.einsum("ij,ij->i", a, a)
    b_sq = a_sq if same else np.einsum("ij,ij->i", b, b)
    if clip_level:
        out = np.zeros((int(groups_a[-1]) + 1, int(groups_b[-1]) + 1))
    total = 0.0
    for i0, i1, j0, j1 in _blocks(a.shape[0], b.shape[0], same=same, block=block):
        k = _sq_dists(a[i0:i1], a_sq[i0:i1], b[j0:j1], b_sq[j0:j1])
        diagonal = same and i0 == j0
        k *= gamma
        k = _kernel(k, kernel)
        if diagonal:
            np.fill_diagonal(k, 0.0)  # the pairs i = j are not in the estimator
        if not clip_level:
            total += float(k.sum()) * (2.0 if same and not diagonal else 1.0)
            continue
        ga, gb = groups_a[i0:i1], groups_b[j0:j1]
        sums = np.add.reduceat(np.add.reduceat(k, _starts(ga), axis=0), _starts(gb), axis=1)
        rows = slice(int(ga[0]), int(ga[-1]) + 1)
        cols = slice(int(gb[0]), int(gb[-1]) + 1)
        out[rows, cols] += sums
        if same and not diagonal:
            out[cols, rows] += sums.T
    return out if clip_level else total


# ============================================================================================== bandwidth
def median_pairwise_distance(emb, *, block_rows: int = _BLOCK_ROWS, max_values: int = _MEDIAN_MAX_VALUES,
                             seed: int = 0) -> float:
    """Median Euclidean distance between the distinct rows of one set (the lower median, as ``torch.median``).

    Exact, in float64, and in bounded memory: up to ``max_values`` distances are held at once. Beyond that, one pass
    keeps the distances inside a narrow bracket of a random sample of pairs' quantiles around the median and selects
    it among them, when the counts show the bracket holds it (up to some 150 million pairs, 17,000 rows
    at the default). Otherwise blocked counting passes narrow an interval holding the median (the first into 1,024
    bins at the sample's quantiles, later ones inside the chosen bin), holding no distances, until one bin holds at
    most ``max_values`` of them; a last pass keeps that bin's distances and selects the median among them. Two
    passes suffice up to about ``1024 × max_values`` pairs (90,000 rows at the default).

    Args:
        emb: ``[N, D]`` rows or a sequence of per-clip ``[n_i, D]`` arrays (rows pooled); N ≥ 2.
        block_rows: rows per block. max_values: distances held at once. seed: for the pair sample.
    """
    rows, _ = _rows_and_groups(emb, "embeddings")
    n = rows.shape[0]
    n_pairs = n * (n - 1) // 2
    rank = (n_pairs - 1) // 2  # 0-based rank of the lower median among the squared distances
    sq = np.einsum("ij,ij->i", rows, rows)

    def pair_blocks():
        """Squared distances of the pairs i < j, a block of rows at a time (flattened; the pairs i ≥ j of a
        diagonal block are NaN, which fails every comparison below)."""
        for i0, i1, j0, j1 in _blocks(n, n, same=True, block=block_rows):
            d2 = _sq_dists(rows[i0:i1], sq[i0:i1], rows[j0:j1], sq[j0:j1])
            if i0 == j0:
                d2[np.tri(i1 - i0, dtype=bool)] = np.nan
            yield d2.ravel()

    def scan(lo: float, hi: float, cap: int) -> tuple[int, np.ndarray | None]:
        """Distances² below ``lo``, and those in ``[lo, hi]`` (None when more than ``cap``)."""
        below, kept, n_kept = 0, [], 0
        for vals in pair_blocks():
            below += int(np.count_nonzero(vals < lo))
            inside = vals[(vals >= lo) & (vals <= hi)]
            n_kept += inside.size
            if n_kept > cap:
                return below, None
            kept.append(inside)
        return below, np.concatenate(kept)

    if n_pairs <= max_values:
        _, vals = scan(-np.inf, np.inf, n_pairs)
        return float(np.sqrt(np.partition(vals, rank)[rank]))
    rng = np.random.default_rng(seed)
    n_sample = min(200_000, max(max_values // 4, 1))
    i = rng.integers(0, n, size=2 * n_sample)
    j = rng.integers(0, n, size=2 * n_sample)
    keep = i != j
    i, j = i[keep][:n_sample], j[keep][:n_sample]
    sample = np.empty(i.size)
    for c0 in range(0, i.size, block_rows):  # in chunks: rows[i] of all pairs at once would be [n_sample, D]
        ic, jc = i[c0: c0 + block_rows], j[c0: c0 + block_rows]
        sample[c0: c0 + block_rows] = sq[ic] + sq[jc] - 2.0 * np.einsum("ij,ij->i", rows[ic], rows[jc])
    sample = np.sort(np.maximum(sample, 0.0))

    # First a single pass over a bracket of the sample's quantiles around the median's rank (a Floyd–Rivest step):
    # six standard errors of the sample quantile wide, it holds the median unless the sample is off by more than
    # that, and when it also holds no more than ``max_values`` distances the median is selected among them. The
    # counts say whether it worked, so the result stays exact; otherwise the counting passes below take over.
    q = rank / max(n_pairs - 1, 1)
    margin = 6.0 * math.sqrt(max(q * (1.0 - q), 1.0 / n_sample) / n_sample)
    if 2.0 * margin * n_pairs <= 0.5 * max_values:
        lo = float(np.quantile(sample, q - margin)) if q - margin > 0 else -np.inf
        hi = float(np.quantile(sample, q + margin)) if q + margin < 1 else np.inf
        below, vals = scan(lo, hi, max_values)
        if vals is not None and below <= rank < below + vals.size:
            return float(np.sqrt(max(np.partition(vals, rank - below)[rank - below], 0.0)))

    def histogram(lo: float, hi: float, edges: np.ndarray) -> tuple[int, int, np.ndarray]:
        """Distances² below ``lo``, equal to ``lo``, and per bin of ``[lo, e_0), [e_0, e_1), …, [e_last, hi]``."""
        below, at_lo, counts = 0, 0, np.zeros(edges.size + 1, dtype=np.int64)
        for vals in pair_blocks():
            below += int(np.count_nonzero(vals < lo))
            at_lo += int(np.count_nonzero(vals == lo))
            inside = vals[(vals >= lo) & (vals <= hi)]
            counts += np.bincount(np.searchsorted(edges, inside, side="right"), minlength=edges.size + 1)
        return below, at_lo, counts

    # Narrow an interval [lo, hi] that holds the median by counting passes (bins from the pair sample's quantiles,
    # then even splits), holding no distances, until one bin holds at most ``max_values``; then select in it.
    lo, hi = -np.inf, np.inf
    edges = np.unique(np.quantile(sample, np.linspace(0.0, 1.0, 1025)[1:-1]))
    for _ in range(12):
        below, at_lo, counts = histogram(lo, hi, edges)
        if np.isfinite(lo) and below <= rank < below + at_lo:
            return float(np.sqrt(max(lo, 0.0)))  # the median is tied at the interval's lower end
        bounds = np.concatenate([[lo], edges, [hi]])
        k = int(np.searchsorted(below + np.cumsum(counts), rank, side="right"))
        below += int(counts[:k].sum())
        lo, hi, last = float(bounds[k]), float(bounds[k + 1]), k == counts.size - 1
        if counts[k] <= max_values:
            vals = np.concatenate([v[(v >= lo) & ((v <= hi) if last else (v < hi))] for v in pair_blocks()])
            return float(np.sqrt(max(np.partition(vals, rank - below)[rank - below], 0.0)))
        inner = sample[(sample > lo) & (sample < hi)]
        if inner.size >= 64:
            edges = np.unique(np.quantile(inner, np.linspace(0.0, 1.0, 1025)[1:-1]))
        else:
            top = hi if np.isfinite(hi) else max(float(sample[-1]), lo) * 2.0 + 1.0
            base = lo if np.isfinite(lo) else min(float(sample[0]), 0.0)
            edges = np.unique(np.linspace(base, top, 1025)[1:-1])
            if not np.isfinite(hi):
                edges = np.append(edges, top)
    _, vals = scan(-np.inf, np.inf, n_pairs)  # did not narrow (pathological ties): hold everything
    return float(np.sqrt(np.partition(vals, rank)[rank]))


def kad_bandwidth(emb_ref, emb_gen, bandwidth: Bandwidth = "reference", *, block_rows: int = _BLOCK_ROWS,
                  seed: int = 0) -> float:
    """The kernel bandwidth σ: a positive number as given, or the median pairwise distance of the ``"reference"``
    set (kadtk's documented rule, the default) or of the ``"generated"`` set (what kadtk 1.1.0's code computes)."""
    if isinstance(bandwidth, str):
        if bandwidth not in ("reference", "generated"):
            raise ValueError(f"bandwidth must be a positive number, 'reference' or 'generated', got {bandwidth!r}")
        source = emb_ref if bandwidth == "reference" else emb_gen
        sigma = median_pairwise_distance(source, block_rows=block_rows, seed=seed)
        if not sigma > 0:
            raise InputError(f"the {bandwidth} set's median pairwise distance is 0 (most of its rows coincide); "
                             "pass a bandwidth")
        return sigma
    sigma = float(bandwidth)
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"bandwidth must be a positive number, 'reference' or 'generated', got {bandwidth!r}")
    return sigma


# ============================================================================================== KAD
def _gamma(sigma: float) -> float:
    return 1.0 / (2.0 * sigma * sigma + _GAMMA_EPS)


def _check_kernel(kernel: str) -> None:
    if kernel not in KAD_KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}: use one of {', '.join(KAD_KERNELS)}")


def _check_dims(ref: np.ndarray, gen: np.ndarray) -> None:
    if ref.shape[1] != gen.shape[1]:
        raise InputError(f"reference rows have {ref.shape[1]} dimensions, generated rows {gen.shape[1]}; "
                         "embed both sets with the same embedding")


def kernel_audio_distance(emb_ref, emb_gen, *, bandwidth: Bandwidth = "reference", kernel: str = "gaussian",
                          scale: float = KAD_SCALE, block_rows: int = _BLOCK_ROWS) -> float:
    """KAD between a reference and a generated embedding set (float64, unbiased, blocked).

    Args:
        emb_ref, emb_gen: ``[N, D]`` rows or sequences of per-clip ``[n_i, D]`` arrays (rows pooled); at least 2
            rows each. Not symmetric: the bandwidth comes from the reference by default.
        bandwidth: σ of the kernel, or ``"reference"`` / ``"generated"`` for that set's median pairwise distance.
        kernel: ``"gaussian"`` (KAD's), ``"iq"`` or ``"imq"``.
        scale: the factor in front of MMD² (kadtk's 100).
        block_rows: rows per block of the kernel sums (memory ``block_rows²`` float64 values).

    Returns:
        ``scale · MMD²_u``; ≈ 0 for sets from the same distribution, and it may then be slightly negative.
    """
    _check_kernel(kernel)
    ref, _ = _rows_and_groups(emb_ref, "reference")
    gen, _ = _rows_and_groups(emb_gen, "generated")
    _check_dims(ref, gen)
    gamma = _gamma(kad_bandwidth(ref, gen, bandwidth, block_rows=block_rows))
    m, n = ref.shape[0], gen.shape[0]
    k_xx = _kernel_sums(ref, None, gamma=gamma, kernel=kernel, block=block_rows) / (m * (m - 1))
    k_yy = _kernel_sums(gen, None, gamma=gamma, kernel=kernel, block=block_rows) / (n * (n - 1))
    k_xy = _kernel_sums(ref, gen, gamma=gamma, kernel=kernel, block=block_rows) / (m * n)
    return float(scale * (k_xx + k_yy - 2.0 * k_xy))


# ============================================================================================== bootstrap
@dataclass
class KADInterval(FADInterval):
    """A KAD with its bootstrap interval: the fields of :class:`~echoscript_utils.fad.FADInterval` (``point`` is
    the KAD), plus the kernel bandwidth used (held fixed across resamples)."""

    bandwidth: float = float("nan")


class _ClipKernels:
    """Kernel sums between the clips of one comparison (``[C_ref, C_ref]``, ``[C_gen, C_gen]``,
    ``[C_ref, C_gen]``), from which the KAD of any clip-level resample follows exactly (:meth:`kad`)."""

    def __init__(self, ref: np.ndarray, g_ref: np.ndarray, gen: np.ndarray, g_gen: np.ndarray, *, gamma: float,
                 kernel: str, block: int):
        self.t_xx = _kernel_sums(ref, None, gamma=gamma, kernel=kernel, block=block, groups_a=g_ref,
                                 clip_level=True)
        self.t_yy = _kernel_sums(gen, None, gamma=gamma, kernel=kernel, block=block, groups_a=g_gen,
                                 clip_level=True)
        self.t_xy = _kernel_sums(ref, gen, gamma=gamma, kernel=kernel, block=block, groups_a=g_ref,
                                 groups_b=g_gen, clip_level=True)
        self.rows_ref = np.bincount(g_ref).astype(np.float64)
        self.rows_gen = np.bincount(g_gen).astype(np.float64)

    @staticmethod
    def _within(t: np.ndarray, rows: np.ndarray, w: np.ndarray | None) -> float:
        """Mean of ``k`` over pairs of distinct row positions of a resample with clip multiplicities ``w``.

        ``t`` holds sums over pairs of distinct rows; a clip drawn ``w_c`` times adds, besides ``w_c²`` copies of
        every pair in ``t``, the ``w_c (w_c − 1)`` pairs of each of its ``r_c`` rows with a copy of itself
        (``k = 1``)."""
        if w is None:
            total, size = float(t.sum()), float(rows.sum())
            return total / (size * (size - 1.0))
        size = float(w @ rows)
        total = float(w @ t @ w) + float((w * (w - 1.0)) @ rows)
        return total / (size * (size - 1.0))

    def kad(self, w_ref: np.ndarray | None, w_gen: np.ndarray | None, scale: float) -> float:
        k_xx = self._within(self.t_xx, self.rows_ref, w_ref)
        k_yy = self._within(self.t_yy, self.rows_gen, w_gen)
        wr = np.ones_like(self.rows_ref) if w_ref is None else w_ref
        wg = np.ones_like(self.rows_gen) if w_gen is None else w_gen
        k_xy = float(wr @ self.t_xy @ wg) / (float(wr @ self.rows_ref) * float(wg @ self.rows_gen))
        return scale * (k_xx + k_yy - 2.0 * k_xy)


def bootstrap_kad(emb_ref, emb_gen, *, n: int = 1000, confidence: float = 0.95, seed: int = 0,
                  resample: Literal["both", "generated"] = "both",
                  method: Literal["bias_corrected", "percentile"] = "bias_corrected",
                  bandwidth: Bandwidth = "reference", kernel: str = "gaussian", scale: float = KAD_SCALE,
                  block_rows: int = _BLOCK_ROWS, progress: bool = False) -> KADInterval:
    """KAD with a bootstrap confidence interval, resampled as :func:`~echoscript_utils.fad.bootstrap_fad` does.

    Each resample draws clips with replacement (all rows of a drawn clip together) from the generated set, and with
    ``resample="both"`` also from the reference set. The kernel, bandwidth included, is that of the full sets and is
    held fixed, so each resample's KAD follows exactly from the clip-by-clip kernel sums, computed once (memory
    ``C_ref² + C_gen² + C_ref·C_gen`` values for C clips per set). Duplicated clips in a resample make pairs of a
    row with its own copy (kernel value 1), which inflates the bootstrap KADs; ``method="bias_corrected"``
    (default) shifts the percentile interval by that bootstrap bias (``mean(samples) - point``), ``"percentile"``
    returns the raw percentiles.

    Returns:
        :class:`KADInterval`.
    """
    _check_boot(n, confidence, resample)
    _check_kernel(kernel)
    ref, g_ref = _rows_and_groups(emb_ref, "reference")
    gen, g_gen = _rows_and_groups(emb_gen, "generated")
    _check_dims(ref, gen)
    sigma = kad_bandwidth(ref, gen, bandwidth, block_rows=block_rows)
    sums = _ClipKernels(ref, g_ref, gen, g_gen, gamma=_gamma(sigma), kernel=kernel, block=block_rows)
    point = sums.kad(None, None, scale)
    c_ref, c_gen = sums.rows_ref.size, sums.rows_gen.size
    rng = np.random.default_rng(seed)
    samples = np.empty(n)
    for b in tqdm(range(n), desc="bootstrap KAD", disable=not progress, leave=False):
        w_ref = np.bincount(rng.integers(0, c_ref, size=c_ref), minlength=c_ref).astype(np.float64) \
            if resample == "both" else None
        w_gen = np.bincount(rng.integers(0, c_gen, size=c_gen), minlength=c_gen).astype(np.float64)
        samples[b] = sums.kad(w_ref, w_gen, scale)
    lo, hi = _interval(point, samples, confidence, method)
    return KADInterval(point=point, ci_low=lo, ci_high=hi, confidence=confidence, n_boot=n, method=method,
                       resample=resample, bias=float(samples.mean() - point),
                       std=float(samples.std(ddof=1)) if n > 1 else 0.0, n_ref=c_ref, n_gen=c_gen,
                       samples=samples, bandwidth=sigma)


# ============================================================================================== per clip
def per_clip_kad(emb_ref, emb_gen, *, names: Sequence[str] | None = None, bandwidth: Bandwidth = "reference",
                 kernel: str = "gaussian", scale: float = KAD_SCALE, block_rows: int = _BLOCK_ROWS,
                 z_threshold: float = 3.0):
    """Each generated clip's own KAD to the whole reference set (fadtk's and kadtk's "individual" score).

    The clip's rows are the generated set of a KAD against all reference rows, with the kernel of the full
    comparison (``bandwidth="reference"``: the reference's median distance, the same for every clip, so the clips
    are ranked on one scale; a ``"generated"`` bandwidth is that of the whole generated set). A clip with several
    rows is a sample of its own frames (unbiased within-clip term, as kadtk's individual score); a clip with a single
    row is a point, whose self-similarity ``k(y, y) = 1`` is exact. Memory: blocked, one block plus ``[C]`` vectors.

    Args:
        emb_ref: reference rows or per-clip arrays. emb_gen: per-clip ``[n_i, D]`` arrays, or ``[N, D]`` rows (one
            clip each). names: one label per generated clip (default ``clip_0`` …).
        z_threshold: clips whose robust z-score (median / 1.4826·MAD) of KAD exceeds it are flagged.

    Returns:
        DataFrame ``clip, rows, kad, z, outlier`` sorted by ``kad``, furthest from the reference first.
    """
    import pandas as pd

    _check_kernel(kernel)
    ref, _ = _rows_and_groups(emb_ref, "reference")
    gen, g_gen = _rows_and_groups(emb_gen, "generated")
    _check_dims(ref, gen)
    n_clips = int(g_gen[-1]) + 1
    names = list(names) if names is not None else [f"clip_{i}" for i in range(n_clips)]
    if len(names) != n_clips:
        raise InputError(f"{len(names)} names for {n_clips} generated clips")
    gamma = _gamma(kad_bandwidth(ref, gen, bandwidth, block_rows=block_rows))
    m = ref.shape[0]
    k_xx = _kernel_sums(ref, None, gamma=gamma, kernel=kernel, block=block_rows) / (m * (m - 1))
    rows = np.bincount(g_gen).astype(np.float64)
    one_clip = np.zeros(m, dtype=np.int64)  # the whole reference as one group: sums per generated clip
    cross = _kernel_sums(ref, gen, gamma=gamma, kernel=kernel, block=block_rows, groups_a=one_clip, groups_b=g_gen,
                         clip_level=True)[0]
    starts = _starts(g_gen)
    within = np.ones(n_clips)
    for c in np.flatnonzero(rows > 1):
        clip = gen[starts[c]: starts[c] + int(rows[c])]
        within[c] = _kernel_sums(clip, None, gamma=gamma, kernel=kernel, block=block_rows) / (rows[c] * (rows[c] - 1))
    kad = scale * (k_xx + within - 2.0 * cross / (m * rows))
    mad = 1.4826 * float(np.median(np.abs(kad - np.median(kad))))
    z = (kad - np.median(kad)) / mad if mad > 0 else np.zeros_like(kad)
    df = pd.DataFrame({"clip": names, "rows": rows.astype(int), "kad": kad, "z": z, "outlier": z > z_threshold})
    return df.sort_values("kad", ascending=False, ignore_index=True)
