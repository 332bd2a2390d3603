"""CLAP alignment: audio–text similarity, the best scene prompt per clip, a collapsed-checkpoint gate, and the
training captions.

The paper paired every clip with the scene prompt CLAP found closest to it and kept the well-aligned pairs. This
module does that with transformers' ``ClapModel`` (any LAION checkpoint, or the tiny demo model), and first checks
that the checkpoint is usable at all: some public CLAP checkpoints map every text to nearly the same vector, which
silently turns "alignment" into noise.

Audio goes in at the model's rate (48 kHz for LAION CLAP). Clips longer than the model's window (10 s) are cut
into consecutive windows whose embeddings are averaged and re-normalised, so a 30 s clip gets one deterministic
embedding (the feature extractor's own ``rand_trunc`` would pick a random 10 s crop).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .artifacts import atomic_path, ensure_dir, write_metrics
from .captions import build_caption, caption_fields
from .config import cpu_workers, resolve_device
from .dataset import load_metadata, real_duration, write_metadata
from .errors import EchoScriptError, InputError
from .models.clap import ClapEmbedder
from .prompts import offline_prompts, read_prompts

__all__ = [
    "PROBE_CAPTIONS",
    "ClapEmbedder",
    "GateReport",
    "align_clips",
    "build_caption",
    "caption_fields",
    "checkpoint_gate",
    "keep_mask",
    "pca_2d",
    "retrieval_recall",
]


#: Unrelated captions for the collapse check: a healthy text tower spreads them apart.
PROBE_CAPTIONS: tuple[str, ...] = (
    "a solo piano playing a slow sad melody",
    "heavy metal guitars with fast double-kick drums",
    "a dog barking in the distance",
    "rain falling on a tin roof",
    "an orchestra swelling into a triumphant fanfare",
    "a techno beat with a pulsing synthesizer bass",
    "a crowd cheering in a stadium",
    "a quiet ambient drone with soft pads",
    "a man speaking on the telephone",
    "a string quartet playing a gentle waltz",
    "birds singing at dawn in a forest",
    "a marching band with brass and snare drums",
)

#: Checkpoints that are known to give spread-out text embeddings (suggested when the gate refuses one).
RECOMMENDED_CHECKPOINTS = ("laion/larger_clap_music_and_speech", "laion/clap-htsat-unfused")


class CollapsedCheckpointError(EchoScriptError):
    """The CLAP checkpoint's text embeddings are (nearly) constant."""


# ----------------------------------------------------------------------------------------------- captions


# ----------------------------------------------------------------------------------------------- embedder


# ----------------------------------------------------------------------------------------------- gate
@dataclass
class GateReport:
    """What the checkpoint gate measured."""

    model: str
    mean_pairwise_cosine: float  # over PROBE_CAPTIONS; near 1.0 = collapsed
    min_pairwise_cosine: float
    max_mean_cosine: float  # the refusal threshold
    retrieval_recall_at_1: float | None = None  # known audio–text pairs, if given
    n_pairs: int = 0
    passed: bool = True
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def checkpoint_gate(embedder: ClapEmbedder, *, max_mean_cosine: float = 0.95,
                    known_pairs: tuple[np.ndarray, list[str]] | None = None, raise_on_fail: bool = True) -> GateReport:
    """Refuse a CLAP checkpoint whose text embeddings have collapsed.

    Measures the mean pairwise cosine of :data:`PROBE_CAPTIONS` (unrelated sounds and music) and, if
    ``known_pairs=(audio_emb [N, D], captions)`` is given, audio → text recall@1 on them (reported; chance is
    1/N). A mean cosine above ``max_mean_cosine`` fails the gate.
    """
    t = embedder.embed_text(list(PROBE_CAPTIONS))
    sims = t @ t.T
    iu = np.triu_indices(len(t), k=1)
    mean_cos = float(sims[iu].mean())
    report = GateReport(model=embedder.name, mean_pairwise_cosine=mean_cos, min_pairwise_cosine=float(sims[iu].min()),
                        max_mean_cosine=max_mean_cosine)
    if known_pairs is not None:
        audio_emb, captions = known_pairs
        text_emb = embedder.embed_text(list(captions))
        report.retrieval_recall_at_1 = retrieval_recall(audio_emb, text_emb, k=1)
        report.n_pairs = len(captions)
    report.passed = mean_cos <= max_mean_cosine
    if not report.passed:
        report.notes.append("text embeddings collapsed")
        if raise_on_fail:
            raise CollapsedCheckpointError(
                f"CLAP checkpoint {embedder.name!r} looks collapsed: mean pairwise cosine of "
                f"{len(PROBE_CAPTIONS)} unrelated captions is {mean_cos:.4f} (> {max_mean_cosine}); "
                f"try {' or '.join(RECOMMENDED_CHECKPOINTS)}, or set alignment.gate: false to override")
    return report


# ----------------------------------------------------------------------------------------------- scoring
def retrieval_recall(audio_emb: np.ndarray, text_emb: np.ndarray, *, k: int = 1) -> float:
    """Share of clips whose own caption (same row index) is among the ``k`` most similar captions."""
    if len(audio_emb) == 0:
        return float("nan")
    sims = audio_emb @ text_emb.T
    own = np.diag(sims)[:, None]
    rank = (sims > own).sum(axis=1)  # captions strictly better than the clip's own; ties favour the clip
    return float((rank < k).mean())


def align_clips(audio_emb: np.ndarray, prompt_emb: np.ndarray, prompts: list[str], *,
                allowed: list[list[int] | None] | None = None) -> pd.DataFrame:
    """Best prompt per clip.

    Args:
        audio_emb: ``[N, D]`` unit rows, one per clip.
        prompt_emb: ``[P, D]`` unit rows, one per candidate prompt.
        prompts: the ``P`` prompt texts.
        allowed: per clip, the prompt indices it may choose from (``None`` or an empty list: all of them).

    Returns:
        DataFrame with ``best_prompt``, ``best_index``, ``clap_score`` (cosine of the best), ``runner_up_score``
        and ``margin`` (best − runner-up), one row per clip in input order.
    """
    sims = audio_emb @ prompt_emb.T
    if allowed is not None:
        for i, idx in enumerate(allowed):
            if idx:
                mask = np.full(sims.shape[1], -np.inf)
                mask[list(idx)] = 0.0
                sims[i] = sims[i] + mask
    order = np.argsort(-sims, axis=1, kind="stable")
    best = order[:, 0]
    best_score = sims[np.arange(len(sims)), best]
    if sims.shape[1] > 1:
        second = sims[np.arange(len(sims)), order[:, 1]]
        second = np.where(np.isfinite(second), second, np.nan)
    else:
        second = np.full(len(sims), np.nan)
    return pd.DataFrame({
        "best_index": best,
        "best_prompt": [prompts[i] for i in best],
        "clap_score": best_score,
        "runner_up_score": second,
        "margin": best_score - second,
    })


def keep_mask(scores: np.ndarray, *, rule: str = "percentile", value: float = 10.0) -> tuple[np.ndarray, list[str]]:
    """Which clips to keep: ``all``; ``threshold`` (score ≥ value); ``percentile`` (score ≥ the value-th
    percentile of the scores). Returns the mask and a reason per clip ("" for kept ones)."""
    scores = np.asarray(scores, dtype=float)
    if rule == "all" or len(scores) == 0:
        return np.ones(len(scores), bool), [""] * len(scores)
    if rule == "threshold":
        cut = float(value)
        why = f"CLAP score below the threshold {cut:.3f}"
    elif rule == "percentile":
        cut = float(np.percentile(scores, value))
        why = f"CLAP score below the {value:g}th percentile ({cut:.3f})"
    else:
        raise ValueError(f"unknown keep rule {rule!r}")
    mask = scores >= cut
    return mask, ["" if m else why for m in mask]


def pca_2d(*blocks: np.ndarray) -> list[np.ndarray]:
    """Project several ``[N_i, D]`` blocks onto the first two principal axes of all rows together."""
    x = np.concatenate(blocks)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    proj = x @ vt[:2].T
    out, i = [], 0
    for b in blocks:
        out.append(proj[i:i + len(b)])
        i += len(b)
    return out


# ----------------------------------------------------------------------------------------------- the stage
@dataclass
class AlignmentResult:
    """Everything the 03_alignment notebook shows."""

    clips: pd.DataFrame  # one row per clip: clip_id, split, genre, best_prompt, clap_score, margin, kept, …
    audio_emb: np.ndarray  # [N, D]
    prompt_emb: np.ndarray  # [P, D]
    caption_emb: np.ndarray  # [N, D] (each clip's tag caption)
    prompts: list[str]
    gate: GateReport
    metrics: dict[str, Any]


def _upstream_metadata(cfg) -> Path:
    for stage in ("02_annotation", "01_curation"):
        p = cfg.paths.stage(stage) / "metadata.jsonl"
        if p.is_file():
            return p

    raise InputError(f"{cfg.paths.root}: no metadata.jsonl from 02_annotation or 01_curation; run those stages first")


def _scene_prompts(cfg) -> list[str]:
    """The annotation stage's scene prompts (its ``prompts.jsonl``), or the offline set when it wrote none."""

    f = cfg.paths.annotation / "prompts.jsonl"
    df = read_prompts(f) if f.is_file() else offline_prompts(cfg.annotation.prompts.n_prompts, seed=cfg.seed)
    return [p for p in df["prompt"].astype(str) if p.strip()]


def run_alignment(cfg, *, progress: bool = True) -> AlignmentResult:
    """The 03_alignment stage: gate the checkpoint, embed clips and texts, choose prompts, compose captions,
    keep or drop, and write ``03_alignment/metadata.jsonl``, ``dropped.csv`` and ``embeddings.npz``.
    """

    a = cfg.alignment
    out_dir = ensure_dir(cfg.paths.alignment)
    meta = load_metadata(_upstream_metadata(cfg))
    emb = ClapEmbedder(a.clap_model, cache_dir=cfg.paths.cache, device=resolve_device(cfg.run.device),
                       batch_size=a.batch_size, seed=cfg.seed)
    rows = meta.to_dict("records")  # short cues padded with silence: their music only
    music = [real_duration(r) if real_duration(r) < float(r["duration_s"]) - 1e-6 else None for r in rows]
    audio_emb = emb.embed_audio_files(list(meta["path"]), progress=progress, durations=music,
                                      num_workers=cpu_workers(cfg))

    fields = [caption_fields({**row, "prompt": ""}) for row in meta.to_dict("records")]
    tag_captions = [build_caption(f) or "music" for f in fields]
    caption_emb = emb.embed_text(tag_captions)

    gate = checkpoint_gate(emb, max_mean_cosine=a.gate_max_mean_cosine,
                           known_pairs=(audio_emb[:16], tag_captions[:16]), raise_on_fail=a.gate)

    prompts = _scene_prompts(cfg)
    prompt_emb = emb.embed_text(prompts)
    allowed = None
    if a.candidates == "annotation" and "prompt_candidates" in meta.columns:
        index = {p: i for i, p in enumerate(prompts)}
        allowed = [[index[c["prompt"]] for c in (cands if isinstance(cands, list) else []) if c.get("prompt") in index]
                   for cands in meta["prompt_candidates"]]
    best = align_clips(audio_emb, prompt_emb, prompts, allowed=allowed)
    kept, reasons = keep_mask(best["clap_score"].to_numpy(), rule=a.keep, value=a.keep_value)

    rows = []
    records = meta.to_dict("records")
    for i, rec in enumerate(records):
        f = dict(fields[i], scene=best.at[i, "best_prompt"])
        rec = {k: v for k, v in rec.items() if not (isinstance(v, float) and np.isnan(v)) and v is not None}
        rec.update({
            "prompt": best.at[i, "best_prompt"],
            "clap_score": float(best.at[i, "clap_score"]),
            "clap_margin": float(best.at[i, "margin"]) if np.isfinite(best.at[i, "margin"]) else None,
            "caption_score": float(audio_emb[i] @ caption_emb[i]),
            "caption_fields": f,
            "caption": build_caption(f),
            "kept": bool(kept[i]),
            "drop_reason": reasons[i] or None,
            "clap_model": a.clap_model,
        })
        rec["path"] = os.path.relpath(rec["path"], out_dir) if os.path.isabs(str(rec["path"])) else rec["path"]
        rows.append(rec)
    write_metadata(rows, out_dir / "metadata.jsonl")
    clips = pd.DataFrame({
        "clip_id": meta["clip_id"], "split": meta.get("split"),
        "genre": [f["genre"] for f in fields], "moods": [", ".join(f["moods"]) for f in fields],
        "best_prompt": best["best_prompt"], "clap_score": best["clap_score"], "margin": best["margin"],
        "caption_score": [r["caption_score"] for r in rows], "kept": kept, "drop_reason": reasons,
        "caption": [r["caption"] for r in rows],
    })
    clips[~clips["kept"]][["clip_id", "split", "clap_score", "drop_reason"]].to_csv(out_dir / "dropped.csv",
                                                                                    index=False)
    with atomic_path(out_dir / "embeddings.npz") as t:
        np.savez_compressed(t, audio=audio_emb, prompts=prompt_emb, captions=caption_emb)
    n = len(clips)
    metrics = {
        "clap_model": a.clap_model,
        "n_clips": n,
        "n_prompts": len(prompts),
        "n_kept": int(kept.sum()),
        "n_dropped": int(n - kept.sum()),
        "keep_rule": a.keep,
        "keep_value": a.keep_value,
        "clap_score_mean": float(best["clap_score"].mean()) if n else None,
        "margin_mean": float(best["margin"].mean()) if n else None,
        "recall_at_1": retrieval_recall(audio_emb, caption_emb, k=1),
        "recall_at_5": retrieval_recall(audio_emb, caption_emb, k=5),
        "recall_chance_at_1": 1.0 / n if n else None,
        "recall_chance_at_5": min(5, n) / n if n else None,
        "gate": gate.as_dict(),
        "distinct_prompts_chosen": int(best["best_prompt"].nunique()),
        "candidates": "annotation (mood-matched)" if allowed is not None else "all prompts",
    }
    return AlignmentResult(clips=clips, audio_emb=audio_emb, prompt_emb=prompt_emb, caption_emb=caption_emb,
                           prompts=prompts, gate=gate, metrics=metrics)


def run(cfg, *, progress: bool = True) -> AlignmentResult:
    """Stage 03 in one call: :func:`run_alignment`, then ``03_alignment/metrics.json``."""
    result = run_alignment(cfg, progress=progress)
    write_metrics(cfg.paths.alignment, result.metrics)
    return result
