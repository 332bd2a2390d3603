"""CLAP text relevance of each cue to its own scene versus the other scenes of the script.

For one model's cues (``N`` files) and the ``N`` scene texts they score, CLAP gives a cosine matrix
``S [N, N]`` (cue ``i`` against scene text ``j``). Per cue: ``own = S[i, i]``, ``other = mean_j≠i S[i, j]`` and
``margin = own − other``; over cues: their means with bootstrap intervals, and ``top1``, the share of cues whose
own scene is the best-matching text. A margin above zero says the score follows the script scene by scene, not
just its overall colour; the CLAP score on its own (``own``) cannot tell those apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..embeddings import embed_files
from ..stats import mean_ci

__all__ = ["relevance_matrix", "relevance_summary", "score_relevance"]


def relevance_matrix(audio_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """Cosine similarities ``[N_audio, N_text]`` of two sets of embedding rows."""
    a = np.asarray(audio_emb, np.float64)
    t = np.asarray(text_emb, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    return a @ t.T


def relevance_summary(sim: np.ndarray, *, n_boot: int = 1000, confidence: float = 0.95,
                      seed: int = 0) -> dict[str, Any]:
    """``own``, ``other`` and ``margin`` means with bootstrap intervals over cues, plus ``top1``, from a square
    cue × scene-text cosine matrix (row ``i`` is the cue of scene ``i``)."""
    sim = np.asarray(sim, np.float64)
    n = sim.shape[0]
    if sim.ndim != 2 or sim.shape[1] != n:
        raise ValueError(f"need a square cue × scene matrix, got {sim.shape}")
    own = np.diag(sim)
    other = (sim.sum(axis=1) - own) / max(n - 1, 1) if n > 1 else np.full(n, np.nan)
    margin = own - other
    out: dict[str, Any] = {"n": int(n), "confidence": confidence}  # "own" is the CLAP score of each cue
    for name, values in (("own", own), ("other", other), ("margin", margin)):
        lo, hi = mean_ci(values, n_boot=n_boot, confidence=confidence, seed=seed) if n > 1 else (np.nan, np.nan)
        out[name] = float(np.mean(values))
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = lo, hi
    out["top1"] = float(np.mean(sim.argmax(axis=1) == np.arange(n))) if n > 1 else float("nan")
    out["chance_top1"] = 1.0 / n if n else float("nan")
    return out


def score_relevance(files: list[str], texts: list[str], *, embedder, cache_dir=None, n_boot: int = 1000,
                    confidence: float = 0.95, seed: int = 0, progress: bool = True) -> tuple[dict[str, Any], np.ndarray]:
    """Embed the cue files (mean over CLAP windows) and their scene texts; returns the summary and the matrix.

    Args:
        files: cue WAVs, in scene order.
        texts: the scene text each cue scores (same order).
        embedder: an ``embeddings.ClapAudioEmbedder`` (``get_embedder("clap", ...)``).
    """

    if len(files) != len(texts):
        raise ValueError("one scene text per cue file")
    embs = embed_files(files, embedder, cache_dir=cache_dir, progress=progress)
    a = np.stack([e.mean(axis=0) for e in embs.values()])
    t = embedder.embed_text(list(texts))
    sim = relevance_matrix(a, t)
    return relevance_summary(sim, n_boot=n_boot, confidence=confidence, seed=seed), sim
