"""Running the per-file tasks: in this process, or in forked worker processes of one thread each
(:func:`echoscript_utils.parallel.fork_map`), with a progress bar; results in task order."""

from __future__ import annotations

from typing import Any

from .. import features as feat
from ..parallel import fork_map
from .clips import _process


def _run_tasks(tasks: list[dict[str, Any]], *, num_workers: int, progress: bool,
               desc: str = "curation") -> list[dict[str, Any]]:
    # the workers inherit the imported, compiled analysis code (feat.warmup) instead of compiling it each
    return fork_map(_process, tasks, num_workers=num_workers, progress=progress, desc=desc, unit="file",
                    before_fork=feat.warmup)
