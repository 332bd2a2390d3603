"""Tables and frames for the curation notebook: per-clip tempo and key against the truth, one row per kept
input, and the frame-level features of one clip."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

from .. import audio as audio_mod
from .. import features as feat

__all__ = ["accuracy_table", "clip_frames", "source_table"]


def clip_frames(path: str | os.PathLike) -> dict[str, Any]:
    """Frame-level log-mel and chroma of one clip (for the spectrogram + chroma figure)."""
    wav, sr = audio_mod.load(path)
    return feat.clip_features(wav, sr, return_frames=True)["_frames"]


def accuracy_table(df):
    """Per-clip estimated vs true tempo and key with the MIREX key score (rows with ground truth only)."""
    rows = []
    for r in df.to_dict("records"):
        truth = r.get("truth")
        if not isinstance(truth, dict):
            continue
        f = r["features"]
        est_bpm, ref_bpm = f.get("bpm"), truth.get("bpm")
        ratio = est_bpm / ref_bpm if est_bpm and ref_bpm else None
        rows.append({
            "clip_id": r["clip_id"], "genre": truth.get("genre"), "true_bpm": ref_bpm, "bpm": est_bpm,
            "tempo_ok": ratio is not None and abs(ratio - 1) <= 0.04,
            "tempo_octave": ratio is not None and abs(ratio - 1) > 0.04
            and any(abs(ratio - m) <= 0.04 * m for m in (2, 0.5, 3, 1 / 3)),
            "true_key": f"{truth.get('key')} {truth.get('mode')}", "key": f"{f.get('key')} {f.get('mode')}",
            "key_score": feat.mirex_key_score(f.get("key"), f.get("mode"), truth.get("key"), truth.get("mode")),
            "key_confidence": f.get("key_confidence"),
        })
    cols = ["clip_id", "genre", "true_bpm", "bpm", "tempo_ok", "tempo_octave", "true_key", "key", "key_score",
            "key_confidence"]
    return pd.DataFrame(rows, columns=cols)


def source_table(kept):
    """One row per kept input: source, track, split, clips, duration, original format, rate and channels."""
    if kept.empty:
        return pd.DataFrame(columns=["source", "track_id", "split", "clips", "duration_s", "format", "sample_rate",
                                     "channels"])
    g = kept.groupby("source", sort=True)
    return pd.DataFrame({
        "track_id": g["track_id"].first(), "split": g["split"].first(), "clips": g.size(),
        "duration_s": g["source_duration_s"].first().round(1), "format": g["source_format"].first(),
        "sample_rate": g["source_sample_rate"].first(), "channels": g["source_channels"].first(),
    }).reset_index()
