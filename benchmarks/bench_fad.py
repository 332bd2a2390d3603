"""Time ``fad.frechet_distance`` against the usual float64 ``scipy.linalg.sqrtm`` formula on the same data.

    python benchmarks/bench_fad.py                      # D = 128, 512, 2048; N = 2·D (full-rank covariances)
    python benchmarks/bench_fad.py --rows 0.5           # N = D/2 (rank-deficient covariances)
    python benchmarks/bench_fad.py --dims 2048 --repeats 3
    python benchmarks/bench_fad.py --shape lowrank      # rank D/32 signal + isotropic noise, stored as float32
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_fad.py --repeats 3   # steadier numbers on a busy machine
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_fad.py --clock cpu   # CPU seconds: the steadiest on a shared machine
    python benchmarks/bench_fad.py --dims 2048 --eigensolvers --repeats 8   # LAPACK's two-stage eigensolver vs scipy's

Two tables. "from embeddings": both functions start from the same ``[N, D]`` arrays, so both times include the
means and covariances (an O(N·D²) cost the two share). "from statistics": both start from the same means and
covariances (the usual case when reference statistics are cached), which isolates the trace term
``tr sqrt(S_a S_b)``. The timed reference is the formula most FAD code uses (``np.cov`` → ``sqrtm(S_a @ S_b)`` →
real part, with an ``eps·I`` retry when the square root is not finite). Both values are also compared with an
exact float64 value (untimed): the singular values of ``S_a^½ S_b^½`` from symmetric eigendecompositions, i.e. the
square roots of the eigenvalues of ``S_a^½ S_b S_a^½``. Shapes: ``mixed`` (default) is a dense random mixing of
Gaussian noise; ``lowrank`` is the shape of real CLAP or PANNs embeddings, a low-rank signal over a small isotropic
noise floor, cast to float32. Timings are best-of ``--repeats`` wall-clock seconds and depend on the machine's load.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import scipy.linalg

from echoscript_utils import fad as fad_module
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


def exact_from_stats(mu_a, cov_a, mu_b, cov_b) -> float:
    """FAD with the trace term as the sum of singular values of ``S_a^½ S_b^½`` (symmetric square roots)."""

    def root(cov):
        w, v = np.linalg.eigh(cov)
        return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T

    diff = mu_a - mu_b
    trace_sqrt = scipy.linalg.svdvals(root(cov_a) @ root(cov_b)).sum()
    return float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt)


def make_data(dim: int, n_rows: int, seed: int, *, shape: str = "mixed") -> tuple[np.ndarray, np.ndarray]:
    """Two correlated Gaussian embedding sets with different means and covariances."""
    rng = np.random.default_rng(seed)
    if shape == "lowrank":
        rank = max(2, dim // 32)
        basis = rng.standard_normal((rank, dim)) / np.sqrt(rank)
        a = rng.standard_normal((n_rows, rank)) @ basis + 1e-3 * rng.standard_normal((n_rows, dim))
        b = (rng.standard_normal((n_rows, rank)) * 1.05) @ basis + 1e-3 * rng.standard_normal((n_rows, dim)) + 0.003
        return a.astype(np.float32), b.astype(np.float32)
    mix = rng.standard_normal((dim, dim)) / np.sqrt(dim)
    a = rng.standard_normal((n_rows, dim)) @ mix
    b = (rng.standard_normal((n_rows, dim)) @ (mix + 0.1 * np.eye(dim))) * 1.1 + 0.05
    return a, b


#: What the timings measure: wall-clock seconds, or CPU seconds of this process (``--clock cpu``; with one BLAS
#: thread it is barely moved by other work on the machine, which wall-clock multithreaded BLAS is very much).
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def eigensolver_times(a: np.ndarray, b: np.ndarray, *, repeats: int, clock=time.perf_counter) -> dict[str, list[float]]:
    """``frechet_distance(a, b)`` with LAPACK's two-stage eigensolver (the default where a loaded OpenBLAS has it)
    and with scipy's one-stage ``eigh``, interleaved (alternating which goes first) so that both see the same load."""
    if fad_module._lapacke_dsyevd_2stage() is None:
        raise SystemExit("no LAPACKE_dsyevd_2stage in the loaded OpenBLAS: nothing to compare")
    times: dict[str, list[float]] = {"two-stage": [], "scipy eigh": []}
    size_min = fad_module._TWO_STAGE_MIN
    try:
        for i in range(repeats):
            order = [("two-stage", size_min), ("scipy eigh", sys.maxsize)]  # scipy's eigh below the size
            for name, threshold in order if i % 2 == 0 else order[::-1]:
                fad_module._TWO_STAGE_MIN = threshold
                t0 = clock()
                frechet_distance(a, b)
                times[name].append(clock() - t0)
    finally:
        fad_module._TWO_STAGE_MIN = size_min
    return times


def best_time(fn, *args, repeats: int, clock=time.perf_counter) -> tuple[float, float]:
    best, value = float("inf"), float("nan")
    for _ in range(repeats):
        t0 = clock()
        value = fn(*args)
        best = min(best, clock() - t0)
    return best, value


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[128, 512, 2048])
    ap.add_argument("--rows", type=float, default=2.0, help="rows per set as a multiple of D (default 2)")
    ap.add_argument("--repeats", type=int, default=1, help="best of this many runs per function")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shape", choices=["mixed", "lowrank"], default="mixed")
    ap.add_argument("--clock", choices=list(CLOCKS), default="wall",
                    help="wall-clock or process CPU seconds (use cpu with OPENBLAS_NUM_THREADS=1 on a busy machine)")
    ap.add_argument("--eigensolvers", action="store_true",
                    help="only time ours with LAPACK's two-stage eigensolver against ours with scipy's eigh, "
                         "interleaved, from embeddings (median and best of --repeats)")
    args = ap.parse_args(argv)
    clock = CLOCKS[args.clock]
    if args.eigensolvers:
        print(f"shape: {args.shape}; {args.clock} seconds, from embeddings, interleaved, {args.repeats} repeats")
        print(f"{'D':>6} {'N':>6} {'two-stage median [s]':>21} {'scipy eigh median [s]':>22} {'ratio':>6} "
              f"{'best':>13}")
        for dim in args.dims:
            n_rows = max(2, int(round(args.rows * dim)))
            a, b = make_data(dim, n_rows, args.seed, shape=args.shape)
            frechet_distance(a, b)  # warm up
            t = eigensolver_times(a, b, repeats=args.repeats, clock=clock)
            med = {k: float(np.median(v)) for k, v in t.items()}
            print(f"{dim:>6} {n_rows:>6} {med['two-stage']:>21.3f} {med['scipy eigh']:>22.3f} "
                  f"{med['scipy eigh'] / med['two-stage']:>5.2f}x {min(t['two-stage']):>6.3f}/{min(t['scipy eigh']):.3f}")
        return 0

    header = (f"{'D':>6} {'N':>6} {'sqrtm ref [s]':>14} {'ours [s]':>10} {'speed-up':>9} {'ours vs exact':>14} "
              f"{'sqrtm vs exact':>15}")
    results = []
    for dim in args.dims:
        n_rows = max(2, int(round(args.rows * dim)))
        a, b = make_data(dim, n_rows, args.seed, shape=args.shape)
        frechet_distance(a[:8, :8], b[:8, :8])  # warm up BLAS threads
        t_ref, v_ref = best_time(sqrtm_reference, a, b, repeats=args.repeats, clock=clock)
        t_ours, v_ours = best_time(frechet_distance, a, b, repeats=args.repeats, clock=clock)
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        stats = (a64.mean(0), np.cov(a64, rowvar=False), b64.mean(0), np.cov(b64, rowvar=False))
        s_ref, w_ref = best_time(sqrtm_reference_from_stats, *stats, repeats=args.repeats, clock=clock)
        s_ours, w_ours = best_time(frechet_distance_from_stats, *stats, repeats=args.repeats, clock=clock)
        exact = exact_from_stats(*stats)
        results.append((dim, n_rows, exact, (t_ref, t_ours, v_ref, v_ours), (s_ref, s_ours, w_ref, w_ours)))
    print(f"shape: {args.shape}; {args.clock} seconds, best of {args.repeats}")
    for title, k in (("from embeddings (means + covariances + distance)", 3), ("from statistics (distance only)", 4)):
        print(title)
        print(header)
        for row in results:
            dim, n_rows, exact, (r, o, vr, vo) = row[0], row[1], row[2], row[k]
            rel_o, rel_r = (abs(v - exact) / max(abs(exact), 1e-300) for v in (vo, vr))
            print(f"{dim:>6} {n_rows:>6} {r:>14.3f} {o:>10.3f} {r / o:>8.1f}x {rel_o:>14.1e} {rel_r:>15.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
