"""What the curation stage reports in ``metrics.json``: counts, durations, loudness spreads and limiting, tempo
and key accuracy against ground truth, and the corpus loudness target of ``target_lufs: auto``."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np

from .. import audio as audio_mod
from .. import dataset as ds
from .. import features as feat
from ..config import CurationSection
from .clips import _db, _settings


def _stats(values: list[float]) -> dict[str, float | None]:
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if not v.size:
        return {"mean": None, "min": None, "max": None, "std": None}
    return {"mean": round(float(v.mean()), 3), "min": round(float(v.min()), 3), "max": round(float(v.max()), 3),
            "std": round(float(v.std()), 3)}


def _auto_target(results: list[dict[str, Any]], section: CurationSection) -> tuple[float, dict[str, Any]]:
    """The corpus target from the loudness pass, and what ``metrics.json`` records about the choice."""
    clips = [c for r in results if r["status"] == "kept" for c in r["clips"]]
    lufs = [c["loudness_in_lufs"] if c["loudness_in_lufs"] is not None else math.nan for c in clips]
    peaks = [c["true_peak_in_dbtp"] if c["true_peak_in_dbtp"] is not None else math.nan for c in clips]
    target = audio_mod.auto_target_lufs(lufs, peaks, ceiling_dbtp=section.peak_limit_db,
                                        share=section.auto_target_share, max_lufs=section.auto_target_max_lufs)
    reach = np.array(lufs) + section.peak_limit_db - np.array(peaks)
    reach = reach[np.isfinite(reach)]
    return target, {"n_clips_measured": int(reach.size),
                    "share_reaching_by_gain": round(float(np.mean(reach >= target - 1e-9)), 4) if reach.size else None,
                    "reachable_lufs": _stats(list(reach))}


def _loudness_metrics(records, section: CurationSection, *, target_lufs: float | None,
                      auto_info: dict[str, Any] | None) -> dict[str, Any]:
    """The loudness policy and what it achieved: spreads (middle 95 % of clips), limiting, peaks."""

    def spread(key):
        v = np.array([r[key] for r in records if r[key] is not None], dtype=np.float64)
        return round(float(np.percentile(v, 97.5) - np.percentile(v, 2.5)), 3) if v.size else None

    gr = [r["limiter_gain_reduction_db"] or 0.0 for r in records]
    limited = [g for g in gr if g > 0]
    peaks = [r["peak_amplitude"] for r in records if r["peak_amplitude"]]
    return {
        "policy": section.loudness_policy if target_lufs is not None else "none",
        "target_lufs": target_lufs, "target_requested": section.target_lufs,
        "auto_target_share": section.auto_target_share if section.target_lufs == "auto" else None,
        "auto": auto_info, "ceiling_dbtp": section.peak_limit_db, "max_limiting_db": section.max_limiting_db,
        "spread_in_lu_95": spread("loudness_in_lufs"), "spread_lu_95": spread("loudness_lufs"),
        "clips_reaching_target": int(sum(1 for r in records if target_lufs is not None and r["loudness_lufs"] is not None
                                         and abs(r["loudness_lufs"] - target_lufs) <= 0.5)),
        "clips_limited": len(limited),
        "limiter_gain_reduction_db": _stats(limited),
        "max_sample_peak_dbfs": round(_db(max(peaks)), 3) if peaks else None,
        "max_true_peak_dbtp": _stats([r["true_peak_dbtp"] for r in records])["max"],
    }


def _metrics(results, records, candidates, section: CurationSection, *, seed: int, temperature: float,
             target_lufs: float | None = None, auto_info: dict[str, Any] | None = None) -> dict:
    kept_files = [r for r in results if r["status"] == "kept"]
    kinds = Counter(r["kind"] for r in results if r["status"] != "kept")
    splits = Counter(r["split"] for r in records)
    tracks = {}
    for r in records:
        tracks.setdefault(r["split"], set()).add(r["track_id"])
    with_truth = [r for r in records if r["truth"]]
    tempo = feat.tempo_scores([r["features"].get("bpm") for r in with_truth],
                              [r["truth"].get("bpm") for r in with_truth])
    key = feat.key_scores([(r["features"].get("key"), r["features"].get("mode")) for r in with_truth],
                          [(r["truth"].get("key"), r["truth"].get("mode")) for r in with_truth])
    clip_s = section.clip_s
    return {
        "n_inputs": len(candidates),
        "n_files_kept": len(kept_files),
        "n_skipped": sum(kinds.values()),
        "skipped_by_kind": dict(sorted(kinds.items())),
        "n_clips": len(records),
        "n_tracks": len({r["track_id"] for r in records}),
        "clips_per_split": dict(sorted(splits.items())),
        "tracks_per_split": {k: len(v) for k, v in sorted(tracks.items())},
        "input_hours_kept": round(sum(r["source_info"]["duration_s"] for r in kept_files) / 3600, 4),
        "clip_hours": round(len(records) * clip_s / 3600, 4),
        "silent_clips_dropped": int(sum(r.get("n_silent_clips", 0) for r in kept_files)),
        "tail_seconds_dropped": round(sum(r.get("tail_s", 0.0) for r in kept_files), 3),
        "short_cues_padded": int(sum(1 for r in records if r["real_duration_s"] < r["duration_s"] - 1e-6)),
        "padding_seconds": round(sum(r["duration_s"] - r["real_duration_s"] for r in records), 3),
        "loudness_in_lufs": _stats([r["loudness_in_lufs"] for r in records]),
        "loudness_lufs": _stats([r["loudness_lufs"] for r in records]),
        "true_peak_dbtp": _stats([r["true_peak_dbtp"] for r in records]),
        "clips_below_target": int(sum(1 for r in records if target_lufs is not None
                                      and r["loudness_lufs"] is not None
                                      and r["loudness_lufs"] < target_lufs - 0.05)),
        "loudness": _loudness_metrics(records, section, target_lufs=target_lufs, auto_info=auto_info),
        "tempo": tempo,
        "key": key,
        "n_clips_with_truth": len(with_truth),
        "settings": {**_settings(section), "splits": section.splits, "seed": seed,
                     "sampler_temperature": temperature, "dedupe": section.dedupe,
                     "dedupe_similarity": section.dedupe_similarity},
        "schema_version": ds.SCHEMA_VERSION,
    }
