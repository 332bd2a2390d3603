"""Stage 02 step by step (what the notebook calls) and in one call (:func:`run`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifacts import write_metrics
from ..config import cpu_workers
from ..dataset import load_metadata
from ..prompts import diversity, generate_prompts, mood_counts, resolve_provider, write_prompts
from ..tagging import VOCAB, Tagger
from .accuracy import AccuracyReport, disagreements, recompute_accuracy
from .overrides import apply_overrides, overrides_path, read_overrides
from .records import build_records, prompt_candidates, write_annotated_metadata
from .schema import COMBINED
from .tags import build_taggers, choose_all, run_taggers, write_settings, write_tagger_outputs

__all__ = ["AnnotationResult", "final_tags", "load_clips", "run", "scene_prompts", "stage_metrics", "tag_clips",
           "write_stage_metadata"]


def load_clips(cfg_or_dir) -> pd.DataFrame:
    """Curated clips (``01_curation/metadata.jsonl``) as a DataFrame with absolute ``path``."""

    folder = cfg_or_dir.paths.curation if hasattr(cfg_or_dir, "paths") else Path(cfg_or_dir)
    return load_metadata(folder)


def tag_clips(cfg, clips: pd.DataFrame, taggers: Mapping[str, Tagger], *, progress: bool = True) -> pd.DataFrame:
    """Run the taggers (cached), then write ``tagger_outputs.csv`` and ``settings.json`` into the stage folder."""
    a = cfg.annotation
    outputs = run_taggers(clips, taggers, cache_dir=cfg.paths.cache, combine=a.combine, progress=progress,
                          threads=cfg.run.torch_threads, num_workers=cpu_workers(cfg))
    write_tagger_outputs(outputs, cfg.paths.annotation)
    write_settings(cfg.paths.annotation, taggers=taggers, combine=a.combine, threshold=a.threshold,
                   top_k=a.top_k, min_labels=a.min_labels, calibrate=a.calibrate)
    return outputs


def final_tags(cfg, outputs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The combined tagger's chosen labels with the human overrides applied (see :func:`apply_overrides`)."""
    a = cfg.annotation
    chosen = choose_all(outputs[outputs["tagger"] == COMBINED], threshold=a.threshold, top_k=a.top_k,
                        min_labels=a.min_labels, calibrate=a.calibrate)
    return apply_overrides(chosen.drop(columns="tagger"), read_overrides(overrides_path(cfg)))


def scene_prompts(cfg, *, progress: bool = True, client: Any = None) -> pd.DataFrame:
    """Generate (or read from the request cache) the scene prompts and write ``prompts.csv``."""

    df = generate_prompts(cfg.annotation.prompts, seed=cfg.seed, cache_dir=cfg.paths.cache, progress=progress,
                          client=client)
    write_prompts(df, cfg.paths.annotation / "prompts.jsonl")  # what the alignment stage reads
    write_prompts(df, cfg.paths.annotation / "prompts.csv")
    return df


def write_stage_metadata(cfg, clips: pd.DataFrame, outputs: pd.DataFrame, final: pd.DataFrame,
                         prompts: pd.DataFrame, taggers: Mapping[str, Tagger]) -> Path:
    """Prompt candidates + v2 records → ``<run>/02_annotation/metadata.jsonl``; returns its path."""
    a = cfg.annotation
    candidates = prompt_candidates(final, prompts, per_clip=a.prompts_per_clip, seed=cfg.seed)
    combined = [n for n in (a.combine or list(taggers)) if n in taggers] or list(taggers)
    info = {"names": list(taggers), "versions": {n: t.version for n, t in taggers.items()}, "combined": combined,
            "threshold": a.threshold, "top_k": a.top_k, "min_labels": a.min_labels, "calibrate": list(a.calibrate)}
    records = build_records(clips, outputs, final, tagger_info=info, candidates=candidates,
                            stage_dir=cfg.paths.annotation)
    path = cfg.paths.annotation / "metadata.jsonl"
    write_annotated_metadata(records, path)
    return path


def stage_metrics(cfg, *, clips: pd.DataFrame, availability: pd.DataFrame, final: pd.DataFrame,
                  override_report: Mapping[str, Any], prompts: pd.DataFrame,
                  accuracy: AccuracyReport | None, disagreement: pd.DataFrame | None = None) -> dict[str, Any]:
    """Everything the stage reports in ``metrics.json``."""

    avail = availability[availability["available"]]
    missing = availability[~availability["available"]]
    n_moods = final["moods"].map(len)
    n_inst = final["instruments"].map(len)
    out: dict[str, Any] = {
        "n_clips": int(len(clips)),
        "taggers": {r.tagger: r.version for r in avail.itertuples()},
        "taggers_unavailable": {r.tagger: r.reason for r in missing.itertuples()},
        "tags": {"genre_counts": {g: int((final["genre"] == g).sum()) for g in VOCAB["genre"]},
                 "mean_moods_per_clip": float(n_moods.mean()) if len(final) else 0.0,
                 "mean_instruments_per_clip": float(n_inst.mean()) if len(final) else 0.0},
        "overrides": {"applied": int(override_report.get("applied", 0)), "rows": int(override_report.get("rows", 0)),
                      "unmatched": list(override_report.get("unmatched", []))},
        "prompts": {"provider": resolve_provider(cfg.annotation.prompts.provider), **diversity(prompts),
                    "per_mood": {r.mood: int(r.n) for r in mood_counts(prompts).itertuples()}},
        "accuracy": accuracy.metrics() if accuracy is not None and accuracy.n_clips_with_truth else None,
    }
    if disagreement is not None:
        out["disagreements_shown"] = int(len(disagreement))
    return out


@dataclass
class AnnotationResult:
    """What :func:`run` produced (also on disk in the stage folder)."""

    clips: pd.DataFrame
    availability: pd.DataFrame
    outputs: pd.DataFrame
    final: pd.DataFrame
    override_report: dict[str, Any]
    prompts: pd.DataFrame
    accuracy: AccuracyReport
    metadata_path: Path
    metrics: dict[str, Any]


def run(cfg, *, progress: bool = True, client: Any = None) -> AnnotationResult:
    """Stage 02 in one call (what the notebook does step by step); writes ``metrics.json`` too."""
    clips = load_clips(cfg)
    taggers, availability = build_taggers(cfg)
    outputs = tag_clips(cfg, clips, taggers, progress=progress)
    final, report = final_tags(cfg, outputs)
    prompts = scene_prompts(cfg, progress=progress, client=client)
    meta = write_stage_metadata(cfg, clips, outputs, final, prompts, taggers)
    accuracy = recompute_accuracy(cfg.paths.annotation)
    a = cfg.annotation
    disagreement = disagreements(outputs, clips, threshold=a.threshold, top_k=a.top_k, min_labels=a.min_labels,
                                 calibrate=a.calibrate)
    metrics = stage_metrics(cfg, clips=clips, availability=availability, final=final, override_report=report,
                            prompts=prompts, accuracy=accuracy, disagreement=disagreement)
    write_metrics(cfg.paths.annotation, metrics)
    return AnnotationResult(clips, availability, outputs, final, report, prompts, accuracy, meta, metrics)
