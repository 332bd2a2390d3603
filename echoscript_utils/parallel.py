"""Per-item work over forked worker processes, with a progress bar and results in input order.

Torch on a CPU runs the workbook's networks (musicnn's front end, the codec's full-rate convolutions) little faster
on two threads than on one (1.15x and 0.85x measured on 2 cores), but two processes with one thread each run at
full speed side by side: the work splits over processes, not threads. The function is handed to the workers by
``fork`` (it may be a closure holding loaded models, which need not pickle); only the items and results travel.
Where the platform cannot fork, or one worker or one item is asked for, everything runs in this process.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import multiprocessing as mp
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, TypeVar

__all__ = ["ForkPool", "can_fork", "fork_chunks", "fork_map", "keep_freed_memory", "one_thread", "torch_threads"]

T = TypeVar("T")
R = TypeVar("R")

_TASK: dict[str, Callable[[Any], Any]] = {}  # the function of the pool being forked (inherited, never pickled)
_KEYS = itertools.count()


def can_fork() -> bool:
    """Whether worker processes can be forked here (Linux, and macOS where Python still offers it)."""
    return "fork" in mp.get_all_start_methods()


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily limit torch's CPU threads (``None`` leaves them as they are)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_thread():
    """A context in which BLAS and OpenMP pools (threadpoolctl) and torch, if imported, use one thread each."""
    stack = contextlib.ExitStack()
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        stack.enter_context(threadpool_limits(1))
    if "torch" in sys.modules:
        stack.enter_context(torch_threads(1))
    return stack


#: glibc ``mallopt`` parameters: ``M_TRIM_THRESHOLD`` and ``M_MMAP_THRESHOLD``.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(*, mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Have glibc's allocator keep freed memory for reuse in this process instead of handing it back to the system.

    By default glibc serves arrays above a (self-adjusting) size with fresh ``mmap`` pages and returns them on
    ``free``, and it trims the heap top above a threshold, so a loop that allocates and frees the same tens of
    megabytes of audio per item pays page faults (zero-filled pages) for all of them, every item. A worker that
    does the same work item after item is faster when its heap keeps them: arrays up to ``mmap_threshold`` come
    from the heap, and up to ``trim_threshold`` of free heap top is kept. The memory is returned when the process
    ends. Returns False where the C library has no ``mallopt`` (not glibc), where nothing changes.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) and mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))


def _init_worker() -> None:
    """One thread per worker: BLAS and torch threads of several processes fighting over the cores run the small
    products of the features and the tiny models many times slower. The worker's heap keeps what it frees
    (:func:`keep_freed_memory`): its items allocate arrays of the same sizes again and again."""
    one_thread().__enter__()  # for the worker's whole life
    keep_freed_memory()


def _call(key: str, index: int, item: Any) -> tuple[int, Any]:
    return index, _TASK[key](item)


class ForkPool:
    """Worker processes forked once and kept for several :meth:`map` calls of one function (a stage that makes
    several passes over its items pays for the fork, and for the workers' first, slower item, once).

    Use it as a context manager; the workers are forked by the first :meth:`map` that needs them (as many as it has
    items, up to ``num_workers``) and stopped on leaving the block. A map with one item, or a pool of one worker
    (or no fork on this platform), runs here.
    """

    def __init__(self, fn: Callable[[T], R], *, num_workers: int,
                 before_fork: Callable[[], None] | None = None):
        """``fn``, ``num_workers`` and ``before_fork`` as in :func:`fork_map`."""
        self.fn, self.num_workers, self.before_fork = fn, int(num_workers), before_fork
        self._executor: ProcessPoolExecutor | None = None
        self._key: str | None = None

    def __enter__(self) -> ForkPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (after the items they are running)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._key is not None:
            _TASK.pop(self._key, None)
            self._key = None

    def _workers(self, n_items: int) -> ProcessPoolExecutor:
        if self._executor is None:
            if self.before_fork is not None:
                self.before_fork()
            self._key = f"{id(self)}:{next(_KEYS)}"
            _TASK[self._key] = self.fn
            self._executor = ProcessPoolExecutor(max_workers=min(self.num_workers, n_items),
                                                 mp_context=mp.get_context("fork"), initializer=_init_worker)
        return self._executor

    def map(self, items: Sequence[T], *, progress: bool = False, desc: str = "", unit: str = "item",
            on_result: Callable[[int, R], None] | None = None) -> list[R]:
        """``[fn(item) for item in items]`` over the workers; ``progress``, ``desc``, ``unit`` and ``on_result``
        as in :func:`fork_map`. Returns the results in the order of ``items``."""
        from tqdm.auto import tqdm

        items = list(items)
        results: list[Any] = [None] * len(items)
        bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress or not items, file=sys.stderr)
        try:
            if self.num_workers <= 1 or len(items) <= 1 or not can_fork():
                with one_thread():
                    for i, item in enumerate(items):
                        results[i] = self.fn(item)
                        if on_result is not None:
                            on_result(i, results[i])
                        bar.update()
                return results
            pool = self._workers(len(items))
            futures = [pool.submit(_call, self._key, i, item) for i, item in enumerate(items)]
            try:
                for fut in as_completed(futures):
                    i, res = fut.result()
                    results[i] = res
                    if on_result is not None:
                        on_result(i, res)
                    bar.update()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
        finally:
            bar.close()
        return results


def fork_map(fn: Callable[[T], R], items: Sequence[T], *, num_workers: int, progress: bool = False,
             desc: str = "", unit: str = "item", before_fork: Callable[[], None] | None = None,
             on_result: Callable[[int, R], None] | None = None) -> list[R]:
    """``[fn(item) for item in items]`` over up to ``num_workers`` forked processes of one thread each (a
    :class:`ForkPool` for this one call).

    Args:
        fn: called once per item in a worker (inherited through fork: closures and loaded models are fine); an
            exception it raises is raised here, as it is.
        items: picklable items; results must pickle too.
        num_workers: processes; 1 (or one item, or no fork on this platform) runs every item here, with one
            thread.
        progress: a bar of finished items (on stderr).
        before_fork: called in this process before the workers are forked (e.g. compile or load what every worker
            needs once, so that the workers inherit it).
        on_result: called in this process with each item's index and result as it finishes (in the order they
            finish), e.g. to move a progress bar of the caller's own.

    Returns:
        The results in the order of ``items``.
    """
    with ForkPool(fn, num_workers=num_workers, before_fork=before_fork) as pool:
        return pool.map(items, progress=progress, desc=desc, unit=unit, on_result=on_result)


def fork_chunks(fn: Callable[[Any], R], items: Any, *, num_workers: int, most: int, progress: bool = False,
                desc: str = "") -> list[R]:
    """``fn`` on consecutive slices of ``items`` (a sequence, an array, or a DataFrame's rows) through
    :func:`fork_map`: slices of at most ``most`` items, and small enough that every worker gets one. Returns
    ``fn``'s result for each slice, in order (the caller joins them)."""
    n = len(items)
    step = max(1, min(int(most), math.ceil(n / max(int(num_workers), 1))))
    take = items.iloc if hasattr(items, "iloc") else items
    slices = [take[i:i + step] for i in range(0, n, step)]
    return fork_map(fn, slices, num_workers=num_workers, progress=progress, desc=desc, unit="batch")
