"""parallel.fork_map and ForkPool: results in input order, closures reach the workers, errors come back as they are,
and a pool keeps its workers over several maps."""

from __future__ import annotations

import os

import pytest

from echoscript_utils.parallel import ForkPool, can_fork, fork_map

needs_fork = pytest.mark.skipif(not can_fork(), reason="this platform cannot fork worker processes")


@needs_fork
def test_results_in_input_order_from_several_processes():
    held = {"offset": 100}  # a closure over local state: inherited by fork, never pickled
    out = fork_map(lambda i: (i + held["offset"], os.getpid()), list(range(12)), num_workers=2)
    assert [v for v, _ in out] == list(range(100, 112))
    assert os.getpid() not in {pid for _, pid in out}


def test_one_worker_runs_here_with_one_thread():
    import torch

    before = torch.get_num_threads()
    out = fork_map(lambda i: (os.getpid(), torch.get_num_threads()), [1, 2], num_workers=1)
    assert out == [(os.getpid(), 1)] * 2 and torch.get_num_threads() == before


@needs_fork
def test_a_workers_error_is_raised_here():
    def fn(i):
        if i == 3:
            raise ValueError("item 3: bad")
        return i

    with pytest.raises(ValueError, match="item 3: bad"):
        fork_map(fn, list(range(6)), num_workers=2)


@needs_fork
def test_before_fork_runs_once_in_this_process():
    seen = []
    fork_map(lambda i: i, [1, 2, 3], num_workers=2, before_fork=lambda: seen.append(os.getpid()))
    assert seen == [os.getpid()]


@needs_fork
def test_fork_chunks_slices_lists_and_dataframes_in_order_every_worker_busy():
    import pandas as pd

    from echoscript_utils.parallel import fork_chunks

    sizes = fork_chunks(len, list(range(10)), num_workers=2, most=8)
    assert sizes == [5, 5]  # at most 8 a slice, but both workers get one
    assert fork_chunks(len, list(range(20)), num_workers=2, most=8) == [8, 8, 4]
    df = pd.DataFrame({"x": range(7)}, index=list("abcdefg"))  # rows by position, whatever the index
    parts = fork_chunks(lambda d: list(d["x"]), df, num_workers=2, most=3)
    assert parts == [[0, 1, 2], [3, 4, 5], [6]]


@needs_fork
def test_workers_reuse_the_memory_they_free():
    """A worker allocates the same arrays item after item: from the second item on, they come from memory its heap
    kept (no page faults) instead of fresh pages, faulted in again for every item."""
    import resource
    import sys

    import numpy as np

    if not sys.platform.startswith("linux"):
        pytest.skip("glibc's allocator only")

    def item(_):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a = np.ones(4 << 20, np.float32)  # 16 MiB, above glibc's default mmap threshold
        b = np.ones(4 << 20, np.float32)
        total = float(a.sum() + b.sum())
        del a, b
        return os.getpid(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, total

    out = fork_map(item, list(range(8)), num_workers=2)
    by_worker: dict[int, list[int]] = {}
    for pid, faults, total in out:
        assert total == 2 * (4 << 20)
        by_worker.setdefault(pid, []).append(faults)
    later = [f for faults in by_worker.values() for f in faults[1:]]
    assert later and max(later) < 100, by_worker  # glibc's defaults: about a thousand faults every item


@needs_fork
def test_a_pool_forks_once_for_every_map():
    import time

    forks = []

    def item(i):
        time.sleep(0.05)  # long enough that both workers take items in each map
        return 2 * i, os.getpid()

    with ForkPool(item, num_workers=2, before_fork=lambda: forks.append(os.getpid())) as pool:
        first = pool.map(range(6))
        second = pool.map(range(6, 10), desc="second pass")
        assert pool.map([10]) == [item(10)[:1] + (os.getpid(),)]  # one item runs here
    assert [v for v, _ in first + second] == [2 * i for i in range(10)]
    pids = {p for _, p in first + second}
    assert len(pids) == 2 and os.getpid() not in pids  # the same two workers for both maps
    assert forks == [os.getpid()]
