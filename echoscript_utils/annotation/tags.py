"""Tagging the clips: build the taggers, run them with a content-hashed cache, write and read their outputs,
and choose each clip's labels from the probabilities."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import atomic_write_text, file_hash, read_cached, text_hash, write_cached, write_json
from ..audio import load
from ..dataset import real_duration
from ..errors import ConfigError, DependencyError, EchoScriptError, InputError
from ..parallel import torch_threads
from ..tagging import (
    FIELDS,
    VOCAB,
    ClapTagger,
    MusicnnTagger,
    Tagger,
    choose_labels,
    combine_tags,
    get_tagger,
)
from .schema import COMBINED

__all__ = ["OUTPUT_COLUMNS", "build_taggers", "choose_all", "corpus_scores", "read_tagger_outputs", "run_taggers",
           "tag_distribution", "torch_threads", "write_settings", "write_tagger_outputs"]

#: Columns of ``tagger_outputs.csv``.
OUTPUT_COLUMNS = ["clip_id", "tagger", "field", "label", "probability"]


def build_taggers(cfg, *, names: Sequence[str] | None = None) -> tuple[dict[str, Tagger], pd.DataFrame]:
    """Build every tagger in ``annotation.taggers`` that can run here.

    Returns ``({name: Tagger}, availability)`` where ``availability`` has one row per requested tagger:
    ``tagger, available, version, reason``. Raises :class:`DependencyError` when none can run.
    """

    taggers: dict[str, Tagger] = {}
    rows = []
    for name in names or cfg.annotation.taggers:
        try:
            with torch_threads(cfg.run.torch_threads):
                tg = get_tagger(name, cfg)
        except EchoScriptError as exc:
            rows.append({"tagger": name, "available": False, "version": "", "reason": str(exc)})
            continue
        taggers[name] = tg
        rows.append({"tagger": name, "available": True, "version": tg.version, "reason": ""})
    table = pd.DataFrame(rows, columns=["tagger", "available", "version", "reason"])
    if not taggers:
        raise DependencyError("no tagger in annotation.taggers can run here: "
                              + "; ".join(f"{r['tagger']}: {r['reason']}" for r in rows))
    return taggers, table


def _cache_file(cache_dir: Path, tagger: Tagger, audio_hash: str) -> Path:
    return cache_dir / "tags" / tagger.name / f"{text_hash(audio_hash, tagger.name, tagger.version)}.json"


def _entry(tagger: Tagger, name: str, audio_hash: str, tags: dict) -> dict:
    """One tag-cache entry: ``tagger``'s tags of the clip whose audio hashes to ``audio_hash``."""
    return {"tagger": name, "version": tagger.version, "audio_sha256": audio_hash, "tags": tags}


def _valid_entry(e) -> bool:
    return isinstance(e, dict) and "tags" in e


def _share_musicnn(cache_dir: Path, tagger: MusicnnTagger, audio_hash: str, outputs: dict, embedders: dict) -> None:
    """Store ``outputs`` (one clip's :meth:`MusicnnTagger.predict`) as the evaluation stage's musicnn rows."""
    from ..embeddings import MusicnnEmbedder, store_embedding

    if tagger.model not in embedders:
        embedders[tagger.model] = [MusicnnEmbedder(tagger.model, layer=layer, cache_dir=cache_dir)
                                   for layer in ("penultimate", "taggram")]
    for emb in embedders[tagger.model]:
        store_embedding(cache_dir, emb, audio_hash, outputs[emb.layer])


def run_taggers(clips: pd.DataFrame, taggers: Mapping[str, Tagger], *, cache_dir: str | os.PathLike,
                combine: Sequence[str] | None = None, progress: bool = True,
                threads: int | None = None, batch_size: int = 8,
                share_embeddings: bool = True, num_workers: int = 1) -> pd.DataFrame:
    """Tag every clip with every tagger (cached by audio hash × tagger version) and add the combined rows.

    Args:
        clips: rows with ``clip_id`` and absolute ``path``.
        taggers: ``{name: Tagger}``.
        cache_dir: shared cache folder; results go to ``<cache_dir>/tags/<tagger>/<hash>.json``.
        combine: taggers averaged into :data:`COMBINED` (``None`` = all of them; unavailable ones are skipped).
        threads: torch CPU threads while tagging (``None`` = unchanged).
        batch_size: clips decoded and tagged together: each clip is decoded once for all its taggers, and
            taggers that batch (:meth:`~echoscript_utils.tagging.Tagger.tag_many`) run them in one pass.
        share_embeddings: the musicnn tagger's forward pass on a whole clip also fills the embedding cache
            (``<cache_dir>/embeddings/musicnn``) with that clip's musicnn embedding and taggram, which the
            evaluation stage would otherwise compute again for its reference clips; the CLAP tagger's audio
            embedding of a clip fills the alignment stage's cache (``<cache_dir>/clap``) the same way.
        num_workers: forked processes of one thread each, which tag a batch of clips at a time
            (:func:`~echoscript_utils.parallel.fork_map`; 1 = this process). Only for taggers on the CPU: a forked
            process cannot use its parent's GPU.

    Returns:
        Long DataFrame :data:`OUTPUT_COLUMNS`, one row per clip × tagger × field × label.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if num_workers > 1 and len(clips) > batch_size:
        from ..parallel import fork_chunks

        parts = fork_chunks(lambda chunk: run_taggers(chunk, taggers, cache_dir=cache_dir, combine=combine,
                                                      progress=False, threads=threads, batch_size=batch_size,
                                                      share_embeddings=share_embeddings),
                            clips, num_workers=num_workers, most=batch_size, progress=progress, desc="tagging")
        return pd.concat(parts, ignore_index=True)
    cache_dir = Path(cache_dir)
    names = list(taggers)
    chosen = [n for n in (combine or names) if n in taggers] or names
    share: dict = {} if share_embeddings else None  # musicnn embedders by model (built on first use)
    rows = list(clips.itertuples(index=False))
    records = []
    bar = tqdm(total=len(rows), desc="tagging", disable=not progress, leave=False)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        hashes, cuts, files = [], [], []
        for row in chunk:
            path = Path(row.path)
            if not path.is_file():
                raise InputError(f"{path}: clip audio of {row.clip_id} is missing; rerun the curation stage")
            # a short cue padded with silence is tagged on its music only (the cache key says how much of it)
            real_s = real_duration(row._asdict()) if hasattr(row, "duration_s") else None
            padded = real_s is not None and real_s < float(row.duration_s) - 1e-6
            files.append(file_hash(path))
            hashes.append(text_hash(files[-1], real_s) if padded else files[-1])
            cuts.append(real_s if padded else None)
        per: list[dict[str, dict]] = [{} for _ in chunk]
        misses: dict[str, list[int]] = {}
        for name in names:
            for j, audio_hash in enumerate(hashes):
                entry = read_cached(_cache_file(cache_dir, taggers[name], audio_hash), valid=_valid_entry)
                if entry is None:
                    misses.setdefault(name, []).append(j)
                else:
                    per[j][name] = entry["tags"]
        decoded: dict[int, tuple[np.ndarray, int]] = {}  # each clip decoded once, for all its taggers
        for name, todo in misses.items():
            tg = taggers[name]
            for j in todo:
                if j not in decoded:
                    wav, sr = load(Path(chunk[j].path))
                    decoded[j] = (wav if cuts[j] is None else wav[:, : int(round(cuts[j] * sr))], sr)
            with torch_threads(threads):
                if share is not None and isinstance(tg, MusicnnTagger):
                    outs = [tg.predict(*decoded[j]) for j in todo]
                    tags = [tg.tags_from(o) for o in outs]
                    for j, o in zip(todo, outs, strict=True):
                        if cuts[j] is None:  # the whole file: its musicnn rows are the evaluation stage's too
                            _share_musicnn(cache_dir, tg, hashes[j], o, share)
                elif share is not None and isinstance(tg, ClapTagger):
                    # the clip's CLAP audio embedding is the alignment stage's too (same model, batch and cut)
                    embs = [tg.audio_embedding(*decoded[j]) for j in todo]
                    tags = [tg.tags_from(e) for e in embs]
                    for j, e in zip(todo, embs, strict=True):
                        tg.embedder.store_audio_embedding(tg.embedder.audio_cache_file(files[j], cuts[j]), e)
                else:
                    tags = tg.tag_many([decoded[j] for j in todo])
            for j, t in zip(todo, tags, strict=True):
                write_cached(_cache_file(cache_dir, tg, hashes[j]), _entry(tg, name, hashes[j], t))
                per[j][name] = t
        for row, tags in zip(chunk, per, strict=True):
            tags[COMBINED] = combine_tags(tags[n] for n in chosen)
            for name in (*names, COMBINED):
                for f in FIELDS:
                    for label in VOCAB[f]:
                        records.append((row.clip_id, name, f, label, float(tags[name][f].get(label, 0.0))))
        bar.update(len(chunk))
    bar.close()
    return pd.DataFrame(records, columns=OUTPUT_COLUMNS)


def write_tagger_outputs(outputs: pd.DataFrame, stage_dir: str | os.PathLike) -> Path:
    """``<stage_dir>/tagger_outputs.csv`` (probabilities to 6 decimals)."""
    path = Path(stage_dir) / "tagger_outputs.csv"
    atomic_write_text(path, outputs[OUTPUT_COLUMNS].to_csv(index=False, float_format="%.6f", lineterminator="\n"))
    return path


def read_tagger_outputs(stage_dir: str | os.PathLike) -> pd.DataFrame:
    path = Path(stage_dir) / "tagger_outputs.csv"
    if not path.is_file():
        raise InputError(f"{path}: not found; run the annotation stage first")
    df = pd.read_csv(path, dtype={"clip_id": str, "tagger": str, "field": str, "label": str})
    missing = [c for c in OUTPUT_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}")
    return df


def write_settings(stage_dir: str | os.PathLike, *, taggers: Mapping[str, Tagger] | Mapping[str, str],
                   combine: Sequence[str] | None, threshold: float, top_k: int, min_labels: int,
                   calibrate: Sequence[str] = ()) -> Path:
    """``<stage_dir>/settings.json``: what :func:`recompute_accuracy` needs besides the outputs."""
    versions = {n: (t if isinstance(t, str) else t.version) for n, t in taggers.items()}
    combined = [n for n in (combine or list(versions)) if n in versions] or list(versions)
    return write_json(Path(stage_dir) / "settings.json", {
        "taggers": versions, "combined": combined, "threshold": threshold, "top_k": top_k,
        "min_labels": min_labels, "calibrate": list(calibrate)})



def _probs_by_clip(outputs: pd.DataFrame) -> dict[tuple[str, str], dict[str, dict[str, float]]]:
    out: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for (clip, tagger, f), grp in outputs.groupby(["clip_id", "tagger", "field"], sort=False):
        out.setdefault((clip, tagger), {})[f] = dict(zip(grp["label"], grp["probability"].astype(float),
                                                         strict=True))
    return out


def corpus_scores(outputs: pd.DataFrame) -> pd.DataFrame:
    """Each probability as a z-score against the same tagger, field and label over all clips of the corpus.

    A tagger whose raw probability for one label is high on every clip (musicnn's "calming": its mood proxies
    are quiet and slow tags) would otherwise give that label to nearly every clip; the z-score says how much a
    label stands out *for this clip*. Labels that never vary (std 0) get ``-inf``: they carry no information.
    Uses no ground truth.
    """
    out = outputs.copy()
    grp = out.groupby(["tagger", "field", "label"])["probability"]
    mean, std = grp.transform("mean"), grp.transform("std", ddof=0)
    out["probability"] = np.where(std > 0, (out["probability"] - mean) / std.where(std > 0, 1.0), -np.inf)
    return out


def choose_all(outputs: pd.DataFrame, *, threshold: float = 0.2, top_k: int = 3,
               min_labels: int = 1, calibrate: Sequence[str] = ()) -> pd.DataFrame:
    """Chosen labels for every clip × tagger: DataFrame ``clip_id, tagger, genre, moods, instruments``
    (lists), by :func:`~echoscript_utils.tagging.choose_labels`. For the fields named in ``calibrate``
    (``"moods"``, ``"instruments"``), the labels that fill up to ``min_labels`` are the ones that stand out most
    for the clip relative to the corpus (:func:`corpus_scores`), not the ones with the highest raw probability."""
    calibrate = [f for f in calibrate if f in ("moods", "instruments")]
    scores = _probs_by_clip(corpus_scores(outputs[outputs["field"].isin(calibrate)])) if calibrate else {}
    rows = []
    for (clip, tagger), tags in _probs_by_clip(outputs).items():
        full = {f: tags.get(f, {}) for f in FIELDS}
        rows.append({"clip_id": clip, "tagger": tagger,
                     **choose_labels(full, threshold=threshold, top_k=top_k, min_labels=min_labels,
                                     fallback=scores.get((clip, tagger)))})
    return pd.DataFrame(rows, columns=["clip_id", "tagger", *FIELDS])



def tag_distribution(final: pd.DataFrame, clips: pd.DataFrame) -> pd.DataFrame:
    """Counts of chosen labels per split: DataFrame ``split, field, label, n`` (every label listed)."""
    split = dict(zip(clips["clip_id"], clips["split"], strict=True))
    counts: dict[tuple[str, str, str], int] = {}
    for row in final.itertuples(index=False):
        s = split.get(row.clip_id, "?")
        for f in FIELDS:
            labels = [getattr(row, f)] if f == "genre" else list(getattr(row, f))
            for lab in labels:
                counts[(s, f, lab)] = counts.get((s, f, lab), 0) + 1
    order = ["train", "valid", "eval"]
    splits = sorted(set(split.values()), key=lambda s: (order.index(s) if s in order else len(order), s))
    rows = [{"split": s, "field": f, "label": lab, "n": counts.get((s, f, lab), 0)}
            for s in splits for f in FIELDS for lab in VOCAB[f]]
    return pd.DataFrame(rows, columns=["split", "field", "label", "n"])
