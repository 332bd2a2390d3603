"""Time ``fad.frechet_distance`` against the usual float64 ``scipy.linalg.sqrtm`` formula on the same data.

    python benchmarks/bench_fad.py                      # D = 128, 512, 2048; N = 2·D (full-rank covariances)
    python benchmarks/bench_fad.py --rows 0.5           # N = D/2 (rank-deficient covariances)
    python benchmarks/bench_fad.py --dims 2048 --repeats 3
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_fad.py --repeats 3   # steadier numbers on a busy machine

Two tables. "from embeddings": both functions start from the same ``[N, D]`` arrays, so both times include the
means and covariances (an O(N·D²) cost the two share). "from statistics": both start from the same means and
covariances (the usual case when reference statistics are cached), which isolates the trace term
``tr sqrt(S_a S_b)``. Each row also gives the relative difference of the two values. The reference is the formula
most FAD code uses (``np.cov`` → ``sqrtm(S_a @ S_b)`` → real part, with an ``eps·I`` retry when the square root
is not finite). Timings are best-of ``--repeats`` wall-clock seconds and depend on the machine's load.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.linalg

from echoscript_utils.fad import frechet_distance, frechet_distance_from_stats


def sqrtm_reference(emb_a: np.ndarray, emb_b: np.ndarray, *, eps: float = 1e-6) -> float:
    """The textbook float64 FAD with a general matrix square root."""
    mu_a, mu_b = emb_a.mean(axis=0), emb_b.mean(axis=0)
    cov_a, cov_b = np.cov(emb_a, rowvar=False), np.cov(emb_b, rowvar=False)
    return sqrtm_reference_from_stats(mu_a, cov_a, mu_b, cov_b, eps=eps)


def sqrtm_reference_from_stats(mu_a, cov_a, mu_b, cov_b, *, eps: float = 1e-6) -> float:
    root = scipy.linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():
        offset = eps * np.eye(cov_a.shape[0])
        root = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(np.real(root)))


def make_data(dim: int, n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated Gaussian embedding sets with different means and covariances."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    a = rng.standard_normal((n_rows, dim)) @ mix
    b = (rng.standard_normal((n_rows, dim)) @ (mix + 0.1 * np.eye(dim))) * 1.1 + 0.05
    return a, b


def best_time(fn, *args, repeats: int) -> tuple[float, float]:
    best, value = float("inf"), float("nan")
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[128, 512, 2048])
    ap.add_argument("--rows", type=float, default=2.0, help="rows per set as a multiple of D (default 2)")
    ap.add_argument("--repeats", type=int, default=1, help="best of this many runs per function")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    header = f"{'D':>6} {'N':>6} {'sqrtm ref [s]':>14} {'ours [s]':>10} {'speed-up':>9} {'rel. diff':>10}"
    results = []
    for dim in args.dims:
        n_rows = max(2, int(round(args.rows * dim)))
        a, b = make_data(dim, n_rows, args.seed)
        frechet_distance(a[:8, :8], b[:8, :8])  # warm up BLAS threads
        t_ref, v_ref = best_time(sqrtm_reference, a, b, repeats=args.repeats)
        t_ours, v_ours = best_time(frechet_distance, a, b, repeats=args.repeats)
        stats = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
        s_ref, w_ref = best_time(sqrtm_reference_from_stats, *stats, repeats=args.repeats)
        s_ours, w_ours = best_time(frechet_distance_from_stats, *stats, repeats=args.repeats)
        results.append((dim, n_rows, (t_ref, t_ours, v_ref, v_ours), (s_ref, s_ours, w_ref, w_ours)))
    for title, k in (("from embeddings (means + covariances + distance)", 2), ("from statistics (distance only)", 3)):
        print(title)
        print(header)
        for row in results:
            dim, n_rows, (r, o, vr, vo) = row[0], row[1], row[k]
            rel = abs(vo - vr) / max(abs(vr), 1e-300)
            print(f"{dim:>6} {n_rows:>6} {r:>14.3f} {o:>10.3f} {r / o:>8.1f}x {rel:>10.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
