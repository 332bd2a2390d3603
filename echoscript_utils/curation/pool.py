"""Running the per-file tasks: in this process, or in a pool of worker processes (forked where the platform
allows, one BLAS thread each), with a progress bar."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from .. import features as feat
from .clips import _process


def _worker_init() -> None:
    """One BLAS thread per worker: the small matrix products of the features run 20x slower when BLAS
    threads of several processes fight over the cores."""
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)


def _single_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _run_tasks(tasks: list[dict[str, Any]], *, num_workers: int, progress: bool,
               desc: str = "curation") -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    results: list[dict[str, Any]] = []
    bar = tqdm(total=len(tasks), desc=desc, unit="file", disable=not progress or not tasks,
               file=sys.stderr)
    try:
        if num_workers <= 1 or len(tasks) <= 1:
            with _single_thread():
                for t in tasks:
                    results.append(_process(t))
                    bar.update()
        else:
            feat.warmup()  # forked workers inherit the imported, compiled analysis code
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(num_workers, len(tasks)), mp_context=ctx,
                                     initializer=_worker_init) as pool:
                futures = [pool.submit(_process, t) for t in tasks]
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update()
    finally:
        bar.close()
    return results
