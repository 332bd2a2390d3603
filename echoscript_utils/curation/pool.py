"""Running the per-file tasks: in this process, or in forked worker processes of one thread each, forked once for
every pass of a stage run (:class:`echoscript_utils.parallel.ForkPool`), with a progress bar; results in task
order."""

from __future__ import annotations

from typing import Any

from .. import features as feat
from ..parallel import ForkPool
from .clips import _process


def _task_pool(num_workers: int) -> ForkPool:
    """The stage's workers; they inherit the imported, compiled analysis code (``feat.warmup``) instead of
    compiling it each."""
    return ForkPool(_process, num_workers=num_workers, before_fork=feat.warmup)


def _run_tasks(tasks: list[dict[str, Any]], *, pool: ForkPool, progress: bool,
               desc: str = "curation") -> list[dict[str, Any]]:
    return pool.map(tasks, progress=progress, desc=desc, unit="file")
