"""Time and memory of ``kad.kernel_audio_distance`` against KAD from full kernel matrices, and FAD, as N grows.

    python benchmarks/bench_kad.py                         # D = 128; N = 500, 1000, 2000, 4000 rows per set
    python benchmarks/bench_kad.py --rows 1000 8000 --dense-max 4000
    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_kad.py --repeats 3   # steadier numbers on a busy machine

The baseline is the definition computed as most KAD code does it: the three full kernel matrices in float64 (what
kadtk does on a GPU in float32), whose memory grows as N²; it is skipped above ``--dense-max`` rows. Ours sums the
same kernels over blocks of rows, so its peak memory stays flat. Both include the median-distance bandwidth. Peak
memory is numpy's allocations as ``tracemalloc`` sees them; times are best-of ``--repeats`` wall-clock seconds and
depend on the machine's load. FAD (``fad.frechet_distance``) on the same rows is timed for scale.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from echoscript_utils.fad import frechet_distance
from echoscript_utils.kad import kernel_audio_distance


def dense_kad(ref: np.ndarray, gen: np.ndarray) -> float:
    """KAD from full ``[N, N]`` kernel matrices (float64): the median of all pairwise distances, then the sums."""

    def sq_dists(a, b):
        return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)

    m, n = len(ref), len(gen)
    d_ref = np.sqrt(sq_dists(ref, ref)[np.triu_indices(m, 1)])
    sigma = np.sort(d_ref)[(d_ref.size - 1) // 2]
    gamma = 1.0 / (2.0 * sigma**2 + 1e-8)
    k_xx, k_yy, k_xy = (np.exp(-gamma * sq_dists(a, b)) for a, b in ((ref, ref), (gen, gen), (ref, gen)))
    return 100.0 * ((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                    - 2.0 * k_xy.mean())


def measure(fn, ref: np.ndarray, gen: np.ndarray, repeats: int) -> tuple[float, float, float]:
    """``(fn(ref, gen), best seconds, peak MB)``."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn(ref, gen)
        best = min(best, time.perf_counter() - t0)
    tracemalloc.start()
    fn(ref, gen)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return value, best, peak / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[500, 1000, 2000, 4000], help="rows per set")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--dense-max", type=int, default=4000, help="largest N for the full-matrix baseline")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'N':>6} {'ours s':>8} {'ours MB':>8} {'dense s':>8} {'dense MB':>9} {'time ×':>7} {'rel diff':>9} "
          f"{'FAD s':>7}")
    for n in args.rows:
        ref = rng.standard_normal((n, args.dim))
        gen = rng.standard_normal((n, args.dim)) * 1.1 + 0.05
        ours, t_ours, mb_ours = measure(kernel_audio_distance, ref, gen, args.repeats)
        _, t_fad, _ = measure(frechet_distance, ref, gen, args.repeats)
        dense = "—"
        if n <= args.dense_max:
            value, t_dense, mb_dense = measure(dense_kad, ref, gen, args.repeats)
            rel = abs(ours - value) / abs(value)
            dense = f"{t_dense:8.3f} {mb_dense:9.1f} {t_dense / t_ours:7.2f} {rel:9.1e}"
        print(f"{n:6d} {t_ours:8.3f} {mb_ours:8.1f} {dense} {t_fad:7.3f}")


if __name__ == "__main__":
    main()
