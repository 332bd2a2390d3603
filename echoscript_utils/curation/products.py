"""What the curation stage writes: the splits, one metadata record per clip, ``metadata.jsonl`` and
``skipped.csv`` (only when their bytes change), the audiocraft and Hugging Face exports, and the pruning of clips
and cache entries no longer used."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from .. import dataset as ds
from ..config import CurationSection

SKIPPED_COLUMNS = ("source", "reason")


def _track_splits(kept: list[dict[str, Any]], task_by_source: dict[str, dict[str, Any]], label_map: dict, *,
                  section: CurationSection, seed: int) -> dict[str, str]:
    """Split of every kept track: pinned by its top folder when asked, else drawn stratified by genre."""
    track_genre = {}
    pinned: dict[str, str] = {}
    for r in kept:
        tid = task_by_source[r["source"]]["track_id"]
        track_genre[tid] = (label_map.get(r["source"]) or {}).get("genre")
        top = r["source"].split("/", 1)[0]
        if section.split_from_folders and "/" in r["source"] and top in section.splits:
            pinned[tid] = top
    free = {t: g for t, g in track_genre.items() if t not in pinned}
    return {**ds.assign_splits(free, section.splits, seed=seed), **pinned} if free else dict(pinned)


def _clip_records(kept: list[dict[str, Any]], task_by_source: dict[str, dict[str, Any]], label_map: dict,
                  split_of: dict[str, str]) -> list[dict[str, Any]]:
    """One metadata record (schema v1) per kept clip."""
    records: list[dict[str, Any]] = []
    for r in kept:
        t = task_by_source[r["source"]]
        lab = label_map.get(r["source"])
        truth = None
        if lab:
            truth = {k: lab.get(k) for k in ("title", "artist", "genre", "moods", "instruments", "bpm", "key", "mode")}
        si = r["source_info"]
        for c in r["clips"]:
            records.append({
                "schema_version": ds.SCHEMA_VERSION, "clip_id": c["clip_id"], "track_id": t["track_id"],
                "source": r["source"], "source_sha256": r["sha256"], "path": c["path"], "start_s": c["start_s"],
                "duration_s": c["duration_s"], "real_duration_s": c["real_duration_s"],
                "sample_rate": c["sample_rate"], "channels": c["channels"],
                "split": split_of[t["track_id"]], "source_sample_rate": si["sample_rate"],
                "source_channels": si["channels"], "source_duration_s": si["duration_s"],
                "source_format": si["format"], "loudness_in_lufs": c["loudness_in_lufs"],
                "loudness_lufs": c["loudness_lufs"], "true_peak_in_dbtp": c["true_peak_in_dbtp"],
                "true_peak_dbtp": c["true_peak_dbtp"], "gain_db": c["gain_db"],
                "loudness_policy": c["loudness_policy"], "target_lufs": c["target_lufs"],
                "limiter_gain_reduction_db": c["limiter_gain_reduction_db"], "limited_share": c["limited_share"],
                "peak_amplitude": c["peak_amplitude"], "features": c["features"],
                "truth": truth, "tags": None, "prompt": None,
            })
    return records


def _write_tables(results: list[dict[str, Any]], records: list[dict[str, Any]], *, meta_path: Path, out: Path,
                  clips_dir: Path, cache_dir: Path,
                  keep_cached: list[dict[str, Any]] = ()) -> tuple[list[str], list[tuple[str, str]]]:
    """Write ``metadata.jsonl`` and ``skipped.csv`` (when their bytes change), remove clips and cache entries no
    longer used (``keep_cached``: further results whose cache entries stay, the loudness pass's); returns the names
    of the files that changed and the skipped rows."""
    changed = []
    if ds.write_metadata(records, meta_path):
        changed.append("metadata.jsonl")
    skipped_rows = sorted((r["source"], r["reason"]) for r in results if r["status"] != "kept")
    if _write_skipped(skipped_rows, out / "skipped.csv"):
        changed.append("skipped.csv")
    _prune_clips(clips_dir, {Path(rec["path"]).name for rec in records})

    _prune_cache(cache_dir, {r["cache_key"] for r in [*results, *keep_cached] if r.get("cache_key")})
    return changed, skipped_rows


def _write_exports(kept_df, out: Path, *, temperature: float) -> None:
    """``exports/audiocraft`` (with genre-balanced sampling weights) and ``exports/hf``."""
    weights = ds.genre_weights([ds.clip_genre(r) for r in kept_df.to_dict("records")], temperature=temperature)
    ds.export_audiocraft(kept_df, out / "exports" / "audiocraft", weights=weights)
    ds.export_hf(kept_df, out / "exports" / "hf")


def _write_skipped(rows: list[tuple[str, str]], path: Path) -> bool:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SKIPPED_COLUMNS)
    w.writerows(rows)
    return ds.write_if_changed(path, buf.getvalue())


def _prune_cache(cache_dir: Path, keep: set[str]) -> None:
    """Drop cached results of inputs that are gone or changed (keys not seen in this run)."""
    for f in cache_dir.glob("*"):
        if f.is_file() and f.name.split(".", 1)[0] not in keep and not f.name.startswith("."):
            f.unlink()


def _prune_clips(clips_dir: Path, keep: set[str]) -> int:
    n = 0
    if clips_dir.is_dir():
        for f in clips_dir.iterdir():
            if f.is_file() and f.suffix == ".wav" and f.name not in keep:
                f.unlink()
                n += 1
    return n
