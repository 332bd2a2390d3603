"""The curation stage in one call: :func:`curate` (any folder → clips, metadata, exports, metrics) and the stage
entry :func:`run`; :mod:`echoscript_utils.curation` describes every step."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .. import dataset as ds
from ..artifacts import ensure_dir, write_metrics
from ..config import Config, CurationSection
from ..demo_corpus import ensure_demo_corpus
from ..errors import InputError
from ..parallel import ForkPool
from .clips import CACHE_DIR, CLIPS_DIR, SPILL_DIR, _measure_settings, _settings, measured_by_index
from .dedupe import _dedupe
from .inputs import _label_map, _plan_tasks, _resolve, find_inputs
from .metrics import _auto_target, _metrics
from .pool import _run_tasks, _task_pool
from .products import SKIPPED_COLUMNS, _clip_records, _track_splits, _write_exports, _write_tables

__all__ = ["CurationResult", "curate", "run"]


@dataclass
class CurationResult:
    """What :func:`curate` produced.

    Attributes:
        output_dir: the stage folder.
        metadata_path: its ``metadata.jsonl``.
        kept: one row per clip (the metadata, paths absolute).
        skipped: ``source, reason`` per rejected input.
        metrics: what ``metrics.json`` holds.
        seconds: wall time of this call; ``realtime_factor``: seconds of input audio handled per second
            (decoded this time, cached inputs excluded).
    """

    output_dir: Path
    metadata_path: Path
    kept: Any
    skipped: Any
    metrics: dict[str, Any]
    seconds: float = 0.0
    audio_seconds_processed: float = 0.0
    n_cached: int = 0
    changed: list[str] = field(default_factory=list)

    @property
    def realtime_factor(self) -> float | None:
        return self.audio_seconds_processed / self.seconds if self.seconds > 0 and self.audio_seconds_processed else None

    def summary(self) -> str:
        m = self.metrics
        lines = [f"kept {m['n_files_kept']} of {m['n_inputs']} files → {m['n_clips']} clips "
                 f"({m['clips_per_split']}) in {self.output_dir}"]
        for kind, n in sorted(m["skipped_by_kind"].items()):
            lines.append(f"  skipped {n:4d}  {kind}")
        if self.realtime_factor:
            lines.append(f"processed {self.audio_seconds_processed / 60:.1f} min of audio in {self.seconds:.1f} s "
                         f"({self.realtime_factor:.0f}x real time); {self.n_cached} inputs from cache")
        elif self.n_cached:
            lines.append(f"all {self.n_cached} inputs from cache ({self.seconds:.1f} s); nothing decoded")
        return "\n".join(lines)


def curate(input_dir: str | os.PathLike, output_dir: str | os.PathLike, *, cfg_or_section,
           labels: str | os.PathLike | Mapping | None = None, num_workers: int | None = None,
           seed: int | None = None, progress: bool = True, exports: bool = True) -> CurationResult:
    """Run the curation stage (see the module docstring for every step).

    Args:
        input_dir: folder of music, searched recursively.
        output_dir: stage folder: ``clips/``, ``metadata.jsonl``, ``skipped.csv``, ``metrics.json``, ``exports/``.
        cfg_or_section: a :class:`~echoscript_utils.config.Config` (its ``curation`` section, ``run.num_workers``,
            ``seed`` and ``training.sampler_temperature`` are used) or a bare ``CurationSection``/mapping.
        labels: ground-truth labels file (CSV/JSONL with a ``file`` column) or an already loaded mapping; by
            default ``labels.csv`` at the input root when present (the demo corpus writes one).
        num_workers: worker processes (default ``run.num_workers``; 0/1 = in this process).
        seed: split seed (default the run seed).
        progress: show a progress bar.
        exports: write ``exports/audiocraft`` and ``exports/hf``.

    Returns:
        :class:`CurationResult`.

    Raises:
        InputError: the input folder does not exist or the labels cannot be read.
    """
    t0 = time.perf_counter()
    section, cfg_workers, cfg_seed, temperature = _resolve(cfg_or_section)
    workers = cfg_workers if num_workers is None else num_workers
    seed = cfg_seed if seed is None else seed
    src, out, clips_dir, cache_dir = _stage_folders(input_dir, output_dir)
    label_map = _label_map(labels, src)

    candidates = find_inputs(src, extensions=section.extensions, exclude=out)
    settings = _settings(section)
    tasks = _plan_tasks(candidates, label_map, settings=settings, clips_dir=clips_dir, cache_dir=cache_dir)
    measured, auto_info = [], None
    spill_dir = cache_dir / SPILL_DIR
    shutil.rmtree(spill_dir, ignore_errors=True)  # left by an interrupted run: never read another run's samples
    try:
        with _task_pool(workers) as pool:  # one set of workers for every pass
            if section.target_lufs == "auto":  # a loudness pass over every clip first; the target comes from the corpus
                # the pass keeps each input's decoded samples (spill) so that the second pass does not decode again
                tasks = [dict(t, spill=str(spill_dir / f"{i:06d}.f32")) for i, t in enumerate(tasks)]
                measured = _run_tasks([dict(t, settings=_measure_settings(settings)) for t in tasks],
                                      pool=pool, progress=progress, desc="curation: loudness")
                target, auto_info = _auto_target(measured, section)
                settings = {**settings, "target_lufs": target}
                kept = {r["source"]: r for r in measured if r["status"] == "kept"}
                tasks = [dict(t, settings=settings, measured=measured_by_index(kept[t["rel"]]),
                              sha256=kept[t["rel"]].get("sha256")) if t["rel"] in kept else dict(t, settings=settings)
                         for t in tasks]
            task_by_source = {t["rel"]: t for t in tasks}
            results = _run_and_dedupe(tasks, task_by_source, out=out, section=section, pool=pool,
                                      progress=progress)
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)

    kept = sorted((r for r in results if r["status"] == "kept"), key=lambda r: r["source"])
    split_of = _track_splits(kept, task_by_source, label_map, section=section, seed=seed)
    records = _clip_records(kept, task_by_source, label_map, split_of)
    meta_path = out / "metadata.jsonl"
    changed, skipped_rows = _write_tables(results, records, meta_path=meta_path, out=out, clips_dir=clips_dir,
                                          cache_dir=cache_dir, keep_cached=measured)

    kept_df = ds.load_metadata(meta_path, validate=False)
    skipped_df = pd.DataFrame(skipped_rows, columns=list(SKIPPED_COLUMNS))
    if exports and len(kept_df):
        _write_exports(kept_df, out, temperature=temperature)

    metrics = _metrics(results, records, candidates, section, seed=seed, temperature=temperature,
                       target_lufs=settings["target_lufs"], auto_info=auto_info)
    if write_metrics(out, metrics):
        changed.append("metrics.json")
    processed = sum(r.get("audio_s", 0.0) for r in results)
    return CurationResult(output_dir=out, metadata_path=meta_path, kept=kept_df, skipped=skipped_df,
                          metrics=metrics, seconds=time.perf_counter() - t0, audio_seconds_processed=processed,
                          n_cached=sum(1 for r in results if r.get("cached")), changed=changed)


def _stage_folders(input_dir: str | os.PathLike, output_dir: str | os.PathLike) -> tuple[Path, Path, Path, Path]:
    """The resolved input folder (checked), and the output, clips and cache folders (created)."""
    src = Path(input_dir).expanduser()
    if not src.is_dir():
        raise InputError(f"{src}: input folder not found; pass a folder of audio files (--input)")
    src = src.resolve()
    out = ensure_dir(Path(output_dir).expanduser()).resolve()
    clips_dir = ensure_dir(out / CLIPS_DIR)
    cache_dir = ensure_dir(out / CACHE_DIR)
    return src, out, clips_dir, cache_dir


def _run_and_dedupe(tasks: list[dict[str, Any]], task_by_source: dict[str, dict[str, Any]], *, out: Path,
                    section: CurationSection, pool: ForkPool, progress: bool) -> list[dict[str, Any]]:
    """Run every task, mark duplicates, and redo the kept inputs whose clips are missing; returns the results."""
    results = _run_tasks(tasks, pool=pool, progress=progress)
    by_source = {r["source"]: r for r in results}

    # cached results whose clips went missing (deleted by hand, or dropped as a duplicate last time) are redone
    def missing_clips(r):
        return r["status"] == "kept" and any(not (out / c["path"]).is_file() for c in r["clips"])

    if section.dedupe:
        _dedupe(results, threshold=section.dedupe_similarity)
    redo = [dict(task_by_source[r["source"]], force=True) for r in results if missing_clips(r)]
    if redo:
        for r in _run_tasks(redo, pool=pool, progress=progress):
            by_source[r["source"]].update(r)
    return results


def run(cfg: Config, *, progress: bool = True) -> CurationResult:
    """Stage 01 in one call: curate ``data.input_dir`` (or the demo corpus when it is unset) into the run's
    ``01_curation/`` with ``data.labels`` as ground truth; :func:`curate` writes ``metrics.json``."""
    input_dir = cfg.data.input_dir or ensure_demo_corpus(cfg, progress=progress)
    return curate(input_dir, cfg.paths.curation, cfg_or_section=cfg, labels=cfg.data.labels, progress=progress)
