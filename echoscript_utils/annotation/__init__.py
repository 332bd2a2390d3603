"""The annotation stage: tag curated clips, measure the taggers against ground truth, apply human corrections,
attach scene-prompt candidates and write ``02_annotation/metadata.jsonl`` (clip schema version 2).

Products in ``<run>/02_annotation/`` (every one written atomically):

``tagger_outputs.csv``
    ``clip_id, tagger, field, label, probability``: every tagger's probabilities for every clip, plus the
    ``combined`` rows (mean over the taggers in ``annotation.combine``). Accuracy is recomputed from this file,
    ``settings.json`` and the ``truth`` in ``metadata.jsonl`` alone (:func:`recompute_accuracy`).
``settings.json``
    Selection rule (``threshold``, ``top_k``, ``min_labels``), the combined taggers and each tagger's version.
``overrides.csv`` (or ``annotation.overrides_file``)
    Human corrections, ``clip_id, field, value, reviewer, timestamp, note``; ``value`` is a genre or a
    ``;``-joined label list. The newest row per (clip, field) wins and is applied on every run, so a rerun
    never loses a reviewer's work. Written only by people and :func:`append_overrides` (the review widget).
``prompts.jsonl`` / ``prompts.csv``
    The scene prompts (see :mod:`echoscript_utils.prompts`).
``metadata.jsonl``
    The curation rows plus ``tags`` (chosen ``genre``/``moods``/``instruments``, ``probabilities`` per field,
    ``reviewed`` fields, ``source``), ``tagger`` (names, versions, selection rule) and ``prompt_candidates``,
    with ``schema_version`` 2 (:class:`AnnotatedClipRecord`); ``dataset.load_metadata`` reads it like v1.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..artifacts import (
    atomic_write_text,
    file_hash,
    json_default,
    read_json,
    text_hash,
    write_if_changed,
    write_json,
    write_metrics,
)
from ..audio import load
from ..dataset import ClipRecord, find_metadata, load_metadata, read_records, real_duration
from ..errors import DependencyError, EchoScriptError, InputError
from ..prompts import diversity, generate_prompts, mood_counts, resolve_provider, write_prompts
from ..tagging import FIELDS, VOCAB, Tagger, choose_labels, combine_tags, get_tagger
from ..taxonomy import join_list, split_list

__all__ = [
    "ANNOTATION_SCHEMA_VERSION",
    "AccuracyReport",
    "AnnotatedClipRecord",
    "AnnotationResult",
    "COMBINED",
    "OVERRIDE_COLUMNS",
    "run",
    "append_overrides",
    "apply_overrides",
    "build_records",
    "build_taggers",
    "choose_all",
    "disagreements",
    "evaluate",
    "final_tags",
    "genre_confusion",
    "json_schema",
    "label_auc",
    "label_metrics",
    "load_annotated",
    "load_clips",
    "overrides_path",
    "prompt_candidates",
    "read_overrides",
    "read_tagger_outputs",
    "recompute_accuracy",
    "run_taggers",
    "scene_prompts",
    "stage_metrics",
    "tag_clips",
    "tag_distribution",
    "truth_table",
    "write_annotated_metadata",
    "write_settings",
    "write_stage_metadata",
    "write_tagger_outputs",
]

#: Schema version of rows written by this stage (curation writes 1).
ANNOTATION_SCHEMA_VERSION = 2
#: Name of the pseudo-tagger that averages the chosen taggers.
COMBINED = "combined"
OVERRIDE_COLUMNS = ["clip_id", "field", "value", "reviewer", "timestamp", "note"]
OUTPUT_COLUMNS = ["clip_id", "tagger", "field", "label", "probability"]


# ----------------------------------------------------------------------------------------- schema v2
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ClipTags(_Open):
    """The tags of one clip: chosen labels, probabilities per field and which fields a person set."""

    genre: str | None = Field(None, description="one genre (argmax of the combined probabilities, or a reviewer's)")
    moods: list[str] = Field(default_factory=list)
    instruments: list[str] = Field(default_factory=list)
    probabilities: dict[str, dict[str, float]] = Field(default_factory=dict,
                                                       description="field → label → combined probability")
    reviewed: list[str] = Field(default_factory=list, description="fields set by a human override")
    source: str = Field(COMBINED, description="tagger whose probabilities the labels come from")


class TaggerInfo(_Open):
    names: list[str] = Field(default_factory=list, description="taggers that ran")
    versions: dict[str, str] = Field(default_factory=dict, description="tagger name → version (weights + mapping)")
    combined: list[str] = Field(default_factory=list, description="taggers averaged into the tags")
    threshold: float = 0.2
    top_k: int = 3
    min_labels: int = 1


class PromptCandidate(_Open):
    prompt_id: str
    prompt: str
    scene: str = ""
    mood: str = ""
    keywords: list[str] = Field(default_factory=list)
    tempo: list[str] = Field(default_factory=list)


class AnnotatedClipRecord(ClipRecord):
    """A clip row after annotation (schema v2): v1 plus ``tags``, ``tagger`` and ``prompt_candidates``."""

    schema_version: int = Field(ANNOTATION_SCHEMA_VERSION, description="version of this schema")
    tags: ClipTags | None = None  # type: ignore[assignment]
    tagger: TaggerInfo | None = None
    prompt_candidates: list[PromptCandidate] = Field(default_factory=list)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one annotation ``metadata.jsonl`` row (schema v2)."""
    schema = AnnotatedClipRecord.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"echoscript-clip-metadata-v{ANNOTATION_SCHEMA_VERSION}"
    return schema


# ----------------------------------------------------------------------------------------- inputs
def load_clips(cfg_or_dir) -> pd.DataFrame:
    """Curated clips (``01_curation/metadata.jsonl``) as a DataFrame with absolute ``path``."""

    folder = cfg_or_dir.paths.curation if hasattr(cfg_or_dir, "paths") else Path(cfg_or_dir)
    return load_metadata(folder)


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


# ----------------------------------------------------------------------------------------- tagging
def _cache_file(cache_dir: Path, tagger: Tagger, audio_hash: str) -> Path:
    return cache_dir / "tags" / tagger.name / f"{text_hash(audio_hash, tagger.name, tagger.version)}.json"


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Temporarily limit torch's CPU threads (``None`` leaves them as they are)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_taggers(clips: pd.DataFrame, taggers: Mapping[str, Tagger], *, cache_dir: str | os.PathLike,
                combine: Sequence[str] | None = None, progress: bool = True,
                threads: int | None = None) -> pd.DataFrame:
    """Tag every clip with every tagger (cached by audio hash × tagger version) and add the combined rows.

    Args:
        clips: rows with ``clip_id`` and absolute ``path``.
        taggers: ``{name: Tagger}``.
        cache_dir: shared cache folder; results go to ``<cache_dir>/tags/<tagger>/<hash>.json``.
        combine: taggers averaged into :data:`COMBINED` (``None`` = all of them; unavailable ones are skipped).
        threads: torch CPU threads while tagging (``None`` = unchanged).

    Returns:
        Long DataFrame :data:`OUTPUT_COLUMNS`, one row per clip × tagger × field × label.
    """
    from tqdm.auto import tqdm

    cache_dir = Path(cache_dir)
    names = list(taggers)
    chosen = [n for n in (combine or names) if n in taggers] or names
    records = []
    for row in tqdm(list(clips.itertuples(index=False)), desc="tagging", disable=not progress, leave=False):
        path = Path(row.path)
        if not path.is_file():
            raise InputError(f"{path}: clip audio of {row.clip_id} is missing; rerun the curation stage")
        # a short cue padded with silence is tagged on its music only (the cache key says how much of it)
        real_s = real_duration(row._asdict()) if hasattr(row, "duration_s") else None
        padded = real_s is not None and real_s < float(row.duration_s) - 1e-6
        audio_hash = text_hash(file_hash(path), real_s) if padded else file_hash(path)
        wav = sr = None
        per: dict[str, dict] = {}
        for name in names:
            tg = taggers[name]
            cf = _cache_file(cache_dir, tg, audio_hash)
            tags = None
            if cf.is_file():
                try:
                    tags = read_json(cf)["tags"]
                except (OSError, ValueError, KeyError):
                    tags = None
            if tags is None:
                if wav is None:
                    wav, sr = load(path)
                    if padded:
                        wav = wav[:, : int(round(real_s * sr))]
                with torch_threads(threads):
                    tags = tg.tag(wav, sr)
                write_json(cf, {"tagger": name, "version": tg.version, "audio_sha256": audio_hash, "tags": tags})
            per[name] = tags
        per[COMBINED] = combine_tags(per[n] for n in chosen)
        for name, tags in per.items():
            for f in FIELDS:
                for label in VOCAB[f]:
                    records.append((row.clip_id, name, f, label, float(tags[f].get(label, 0.0))))
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


# ----------------------------------------------------------------------------------------- selection
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


# ----------------------------------------------------------------------------------------- ground truth
def truth_table(clips: pd.DataFrame) -> pd.DataFrame:
    """Ground truth per clip from the ``truth`` column: ``clip_id, genre, moods, instruments`` (clips without
    truth are left out)."""
    rows = []
    for clip_id, truth in zip(clips["clip_id"], clips.get("truth", pd.Series([None] * len(clips))), strict=True):
        if not isinstance(truth, Mapping):
            continue
        genre = truth.get("genre") or None
        moods, insts = split_list(truth.get("moods")), split_list(truth.get("instruments"))
        if genre is None and not moods and not insts:
            continue
        rows.append({"clip_id": clip_id, "genre": genre, "moods": moods, "instruments": insts})
    return pd.DataFrame(rows, columns=["clip_id", *FIELDS])


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def label_metrics(chosen: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per-label precision, recall and F1 for every tagger against ground truth.

    Genre is single-label (one-vs-rest counts from the confusion matrix); moods and instruments are multi-label
    (a label is a hit when it is both chosen and true). Clips without truth for a field are skipped for it.

    Returns:
        DataFrame ``tagger, field, label, precision, recall, f1, support, tp, fp, fn`` (support = true count).
    """
    merged = chosen.merge(truth, on="clip_id", suffixes=("", "_true"))
    rows = []
    for tagger, grp in merged.groupby("tagger", sort=False):
        for f in FIELDS:
            if f == "genre":
                ok = grp["genre_true"].notna()
                pred, true = grp.loc[ok, "genre"], grp.loc[ok, "genre_true"]
                sets = [({p}, {t}) for p, t in zip(pred, true, strict=True)]
            else:
                sets = [(set(p), set(t)) for p, t in zip(grp[f], grp[f"{f}_true"], strict=True) if len(t)]
            for label in VOCAB[f]:
                tp = sum(label in p and label in t for p, t in sets)
                fp = sum(label in p and label not in t for p, t in sets)
                fn = sum(label not in p and label in t for p, t in sets)
                prec, rec, f1 = _prf(tp, fp, fn)
                rows.append({"tagger": tagger, "field": f, "label": label, "precision": prec, "recall": rec,
                             "f1": f1, "support": tp + fn, "tp": tp, "fp": fp, "fn": fn})
    return pd.DataFrame(rows, columns=["tagger", "field", "label", "precision", "recall", "f1", "support",
                                       "tp", "fp", "fn"])


def genre_confusion(chosen: pd.DataFrame, truth: pd.DataFrame, *, tagger: str) -> pd.DataFrame:
    """Genre confusion counts for one tagger: rows = true genre, columns = predicted genre."""
    merged = chosen[chosen["tagger"] == tagger].merge(truth, on="clip_id", suffixes=("", "_true"))
    merged = merged[merged["genre_true"].notna()]
    cm = pd.DataFrame(0, index=pd.Index(VOCAB["genre"], name="true"),
                      columns=pd.Index(VOCAB["genre"], name="predicted"))
    for t, p in zip(merged["genre_true"], merged["genre"], strict=True):
        if t in cm.index and p in cm.columns:
            cm.loc[t, p] += 1
    return cm


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann–Whitney) formula, ties counted half; NaN without both classes."""
    from scipy.stats import rankdata

    pos = int(positive.sum())
    neg = len(positive) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - pos * (pos + 1) / 2) / (pos * neg))


def label_auc(outputs: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Threshold-free ranking quality: ROC AUC of each tagger's probability for each label against the truth.

    For genre a clip is positive when its true genre is the label; for moods and instruments when the label is
    among its true ones (clips without truth for the field are left out). 0.5 = chance, 1 = perfect ranking.

    Returns:
        DataFrame ``tagger, field, label, auc`` (NaN when the label is always or never true).
    """
    t = truth.set_index("clip_id")
    rows = []
    for (tagger, f, label), grp in outputs.groupby(["tagger", "field", "label"], sort=False):
        grp = grp[grp["clip_id"].isin(t.index)]
        if f == "genre":
            true = t.loc[grp["clip_id"], "genre"]
            keep = true.notna().to_numpy()
            positive = (true == label).to_numpy()
        else:
            true = t.loc[grp["clip_id"], f]
            keep = true.map(len).to_numpy() > 0
            positive = true.map(lambda v, lab=label: lab in v).to_numpy()
        rows.append({"tagger": tagger, "field": f, "label": label,
                     "auc": _auc(grp["probability"].to_numpy()[keep], positive[keep].astype(bool))})
    return pd.DataFrame(rows, columns=["tagger", "field", "label", "auc"])


@dataclass
class AccuracyReport:
    """Accuracy of every tagger against ground truth (see :func:`evaluate`)."""

    per_label: pd.DataFrame
    summary: pd.DataFrame
    confusion: dict[str, pd.DataFrame] = field(default_factory=dict)
    n_clips_with_truth: int = 0

    def metrics(self) -> dict[str, Any]:
        """Nested dict for ``metrics.json``: ``{tagger: {genre_accuracy, ..., per_label: {field: {label: f1}}}}``."""
        out: dict[str, Any] = {"n_clips_with_truth": self.n_clips_with_truth, "taggers": {}}
        for rec in self.summary.to_dict("records"):
            name = rec.pop("tagger")
            per = self.per_label[self.per_label["tagger"] == name]
            rec["per_label_f1"] = {f: {r.label: round(float(r.f1), 4) for r in per[per["field"] == f].itertuples()}
                                   for f in FIELDS}
            out["taggers"][name] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in rec.items()}
        return out


def evaluate(outputs: pd.DataFrame, truth: pd.DataFrame, *, threshold: float = 0.2, top_k: int = 3,
             min_labels: int = 1, calibrate: Sequence[str] = ()) -> AccuracyReport:
    """Per-label and summary accuracy of every tagger in ``outputs`` (including :data:`COMBINED`).

    Summary columns: ``tagger, n_clips, genre_accuracy, genre_macro_f1, moods_macro_f1, moods_micro_f1,
    instruments_macro_f1, instruments_micro_f1, genre_mean_auc, moods_mean_auc, instruments_mean_auc,
    genre_majority_baseline`` (accuracy of always answering the most frequent true genre, the floor a useful
    tagger must beat). F1 depends on the selection rule; the AUCs (:func:`label_auc`) do not.
    """
    chosen = choose_all(outputs, threshold=threshold, top_k=top_k, min_labels=min_labels, calibrate=calibrate)
    chosen = chosen[chosen["clip_id"].isin(truth["clip_id"])]
    per = label_metrics(chosen, truth).merge(label_auc(outputs, truth), on=["tagger", "field", "label"], how="left")
    genres = truth["genre"].dropna()
    majority = float(genres.value_counts().iloc[0] / len(genres)) if len(genres) else float("nan")
    rows = []
    for tagger, grp in per.groupby("tagger", sort=False):
        rec: dict[str, Any] = {"tagger": tagger, "n_clips": int((chosen["tagger"] == tagger).sum())}
        g = grp[grp["field"] == "genre"]
        n_genre = int(g["support"].sum())
        rec["genre_accuracy"] = float(g["tp"].sum() / n_genre) if n_genre else float("nan")
        rec["genre_macro_f1"] = float(g.loc[g["support"] > 0, "f1"].mean()) if n_genre else float("nan")
        for f in ("moods", "instruments"):
            sub = grp[grp["field"] == f]
            present = sub[sub["support"] > 0]
            rec[f"{f}_macro_f1"] = float(present["f1"].mean()) if len(present) else float("nan")
            rec[f"{f}_micro_f1"] = _prf(int(sub["tp"].sum()), int(sub["fp"].sum()), int(sub["fn"].sum()))[2]
        for f in FIELDS:
            aucs = grp.loc[grp["field"] == f, "auc"].dropna()
            rec[f"{f}_mean_auc"] = float(aucs.mean()) if len(aucs) else float("nan")
        rec["genre_majority_baseline"] = majority
        rows.append(rec)
    summary = pd.DataFrame(rows)
    confusion = {t: genre_confusion(chosen, truth, tagger=t) for t in summary.get("tagger", [])}
    return AccuracyReport(per_label=per, summary=summary, confusion=confusion, n_clips_with_truth=len(truth))


def recompute_accuracy(stage_dir: str | os.PathLike) -> AccuracyReport:
    """Recompute :func:`evaluate` from the products in ``stage_dir`` alone (``tagger_outputs.csv``,
    ``settings.json`` and the ``truth`` in ``metadata.jsonl``)."""
    stage_dir = Path(stage_dir)
    outputs = read_tagger_outputs(stage_dir)
    settings_path = stage_dir / "settings.json"
    if not settings_path.is_file():
        raise InputError(f"{settings_path}: not found; run the annotation stage first")
    s = read_json(settings_path)
    truth = truth_table(load_annotated(stage_dir))
    return evaluate(outputs, truth, threshold=s["threshold"], top_k=s["top_k"], min_labels=s["min_labels"],
                    calibrate=s.get("calibrate", []))


def disagreements(outputs: pd.DataFrame, clips: pd.DataFrame | None = None, *, threshold: float = 0.2,
                  top_k: int = 3, min_labels: int = 1, calibrate: Sequence[str] = (),
                  limit: int | None = 10) -> pd.DataFrame:
    """Clips on which the taggers (not :data:`COMBINED`) disagree, most disagreement first.

    One row per clip: each tagger's genre and moods, the truth when known, ``genre_agree`` and the mean
    pairwise Jaccard overlap of the chosen moods and instruments (``overlap``, 1 = identical).
    """
    chosen = choose_all(outputs, threshold=threshold, top_k=top_k, min_labels=min_labels, calibrate=calibrate)
    chosen = chosen[chosen["tagger"] != COMBINED]
    names = list(dict.fromkeys(chosen["tagger"]))
    if len(names) < 2:
        return pd.DataFrame(columns=["clip_id", "genre_agree", "overlap"])
    truth = truth_table(clips).set_index("clip_id") if clips is not None else pd.DataFrame()
    rows = []
    for clip, grp in chosen.groupby("clip_id", sort=False):
        by = grp.set_index("tagger")
        overlaps = []
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                for f in ("moods", "instruments"):
                    sa, sb = set(by.loc[a, f]), set(by.loc[b, f])
                    overlaps.append(len(sa & sb) / len(sa | sb) if sa | sb else 1.0)
        rec = {"clip_id": clip, "genre_agree": by["genre"].nunique() == 1, "overlap": float(np.mean(overlaps))}
        for n in names:
            rec[f"{n}_genre"] = by.loc[n, "genre"]
            rec[f"{n}_moods"] = join_list(by.loc[n, "moods"])
            rec[f"{n}_instruments"] = join_list(by.loc[n, "instruments"])
        if clip in truth.index:
            rec["true_genre"] = truth.loc[clip, "genre"]
            rec["true_moods"] = join_list(truth.loc[clip, "moods"])
        rows.append(rec)
    df = pd.DataFrame(rows)
    df = df[(~df["genre_agree"]) | (df["overlap"] < 1.0)]
    df = df.sort_values(["genre_agree", "overlap", "clip_id"], kind="stable").reset_index(drop=True)
    return df.head(limit) if limit else df


# ----------------------------------------------------------------------------------------- overrides
def overrides_path(cfg) -> Path:
    """``annotation.overrides_file`` or ``<run>/02_annotation/overrides.csv``."""
    return Path(cfg.annotation.overrides_file or (cfg.paths.annotation / "overrides.csv"))


def _check_value(field_name: str, value: str, where: str) -> str:
    if field_name not in FIELDS:
        raise InputError(f"{where}: field {field_name!r} must be one of {', '.join(FIELDS)}")
    labels = [value.strip()] if field_name == "genre" else split_list(value)
    if field_name == "genre" and not labels[0]:
        raise InputError(f"{where}: a genre override needs a value ({', '.join(VOCAB['genre'])})")
    bad = [lab for lab in labels if lab not in VOCAB[field_name]]
    if bad:
        raise InputError(f"{where}: {bad[0]!r} is not a {field_name} label; use one of "
                         f"{', '.join(VOCAB[field_name])}")
    return labels[0] if field_name == "genre" else join_list(labels)


def read_overrides(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate an overrides CSV (a missing file is an empty table).

    Errors name the line. Returns :data:`OVERRIDE_COLUMNS` in file order.
    """
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=OVERRIDE_COLUMNS)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in ("clip_id", "field", "value"):
        if col not in df.columns:
            raise InputError(f"{path}: missing column {col!r}; the header must be {','.join(OVERRIDE_COLUMNS)}")
    for col in OVERRIDE_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    for i, row in enumerate(df.itertuples(index=False), start=2):
        where = f"{path} line {i}"
        if not row.clip_id.strip():
            raise InputError(f"{where}: clip_id is empty")
        df.loc[i - 2, "value"] = _check_value(row.field.strip(), row.value, where)
        df.loc[i - 2, "field"] = row.field.strip()
    return df[OVERRIDE_COLUMNS]


def append_overrides(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], *,
                     reviewer: str = "", note: str = "") -> pd.DataFrame:
    """Validate ``rows`` (``clip_id, field, value`` [, ``reviewer, note``]) and append them to the overrides
    file, rewriting it atomically (so a crash never leaves half a file). Returns the whole file's table."""
    path = Path(path)
    existing = read_overrides(path)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    new = []
    for row in rows:
        value = row.get("value", "")
        if isinstance(value, list | tuple):
            value = join_list(value)
        fld = str(row["field"])
        new.append({"clip_id": str(row["clip_id"]), "field": fld,
                    "value": _check_value(fld, str(value), f"override for {row['clip_id']}"),
                    "reviewer": str(row.get("reviewer", reviewer)), "timestamp": str(row.get("timestamp", stamp)),
                    "note": str(row.get("note", note))})
    table = pd.concat([existing, pd.DataFrame(new, columns=OVERRIDE_COLUMNS)], ignore_index=True)
    buf = io.StringIO()
    table.to_csv(buf, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    atomic_write_text(path, buf.getvalue())
    return table


def apply_overrides(chosen: pd.DataFrame, overrides: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Replace chosen labels by the newest override per (clip, field).

    Args:
        chosen: one row per clip (``clip_id, genre, moods, instruments``), e.g. the combined tagger's.
        overrides: from :func:`read_overrides`.

    Returns:
        ``(final, report)``: ``final`` adds ``reviewed`` (list of overridden fields); ``report`` counts
        ``applied`` and lists ``unmatched`` clip ids (overrides for clips not in this run, kept in the file).
    """
    final = chosen.copy().reset_index(drop=True)
    final["reviewed"] = [[] for _ in range(len(final))]
    index = {c: i for i, c in enumerate(final["clip_id"])}
    latest = overrides.drop_duplicates(["clip_id", "field"], keep="last")
    applied, unmatched = 0, []
    for row in latest.itertuples(index=False):
        i = index.get(row.clip_id)
        if i is None:
            unmatched.append(row.clip_id)
            continue
        final.at[i, row.field] = row.value if row.field == "genre" else split_list(row.value)
        final.at[i, "reviewed"] = sorted({*final.at[i, "reviewed"], row.field})
        applied += 1
    return final, {"applied": applied, "rows": len(overrides), "unmatched": sorted(set(unmatched))}


# ----------------------------------------------------------------------------------------- prompts per clip
def prompt_candidates(final: pd.DataFrame, prompts: pd.DataFrame, *, per_clip: int = 3,
                      seed: int = 1234) -> dict[str, list[dict[str, Any]]]:
    """A few prompts per clip whose mood is one of the clip's moods, ranked by how many of the clip's
    instruments and genre appear in the prompt's keywords (ties broken by a generator seeded from ``seed``
    and the clip id, so the choice is stable)."""
    out: dict[str, list[dict[str, Any]]] = {}
    if per_clip <= 0 or prompts is None or prompts.empty:
        return {c: [] for c in final["clip_id"]}
    records = prompts.to_dict("records")
    for row in final.itertuples(index=False):
        moods = set(row.moods)
        pool = [p for p in records if p["mood"] in moods] or records
        wanted = {*row.instruments, row.genre}
        rng = np.random.default_rng(int(text_hash(seed, row.clip_id), 16))
        jitter = rng.random(len(pool))
        scored = sorted(range(len(pool)), key=lambda i: (-len(wanted & set(pool[i]["keywords"])), jitter[i]))
        out[row.clip_id] = [{k: pool[i][k] for k in ("prompt_id", "prompt", "scene", "mood", "keywords", "tempo")}
                            for i in scored[:per_clip]]
    return out


# ----------------------------------------------------------------------------------------- metadata
def build_records(clips: pd.DataFrame, outputs: pd.DataFrame, final: pd.DataFrame, *,
                  tagger_info: Mapping[str, Any], candidates: Mapping[str, list[dict[str, Any]]],
                  stage_dir: str | os.PathLike) -> list[AnnotatedClipRecord]:
    """Curation rows + ``tags``, ``tagger`` and ``prompt_candidates`` as validated v2 records, with ``path``
    made relative to ``stage_dir`` (where the new ``metadata.jsonl`` lives)."""
    stage_dir = Path(stage_dir).resolve()
    probs = _probs_by_clip(outputs[outputs["tagger"] == COMBINED])
    by_clip = final.set_index("clip_id")
    info = TaggerInfo.model_validate(dict(tagger_info))
    records = []
    for row in clips.to_dict("records"):
        row = {k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))}
        clip = row["clip_id"]
        row["path"] = os.path.relpath(Path(row["path"]).resolve(), stage_dir)
        if clip in by_clip.index:
            f = by_clip.loc[clip]
            row["tags"] = ClipTags(genre=f["genre"], moods=list(f["moods"]), instruments=list(f["instruments"]),
                                   probabilities={k: {lab: round(v, 6) for lab, v in d.items()}
                                                  for k, d in probs.get((clip, COMBINED), {}).items()},
                                   reviewed=list(f.get("reviewed", [])), source=COMBINED)
        row["tagger"] = info
        row["prompt_candidates"] = [PromptCandidate.model_validate(c) for c in candidates.get(clip, [])]
        row["schema_version"] = ANNOTATION_SCHEMA_VERSION
        records.append(AnnotatedClipRecord.model_validate(row))
    return records


def write_annotated_metadata(records: Sequence[AnnotatedClipRecord], path: str | os.PathLike) -> bool:
    """Write ``metadata.jsonl`` (v2 rows) atomically; False when the file already held these bytes."""
    import json

    lines = [json.dumps(r.model_dump(mode="json"), ensure_ascii=False, default=json_default, allow_nan=False)
             for r in records]
    return write_if_changed(path, "".join(line + "\n" for line in lines))


def load_annotated(path_or_stage_dir: str | os.PathLike) -> pd.DataFrame:
    """Read an annotation ``metadata.jsonl`` (v2; v1 files read too, without the new columns filled) and check
    every v2 row against :class:`AnnotatedClipRecord`."""

    path = find_metadata(path_or_stage_dir)
    for i, row in enumerate(read_records(path, validate=False), 1):
        if int(row.get("schema_version", 1)) >= ANNOTATION_SCHEMA_VERSION:
            try:
                AnnotatedClipRecord.model_validate(row)
            except Exception as err:  # pydantic ValidationError
                raise InputError(f"{path}:{i}: not a valid v2 row ({str(err).splitlines()[0]}); rerun the "
                                 "annotation stage") from None
    df = load_metadata(path)
    for col in ("tagger", "prompt_candidates"):
        if col not in df.columns:
            df[col] = None
    return df


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


# ----------------------------------------------------------------------------------------- stage steps
def tag_clips(cfg, clips: pd.DataFrame, taggers: Mapping[str, Tagger], *, progress: bool = True) -> pd.DataFrame:
    """Run the taggers (cached), then write ``tagger_outputs.csv`` and ``settings.json`` into the stage folder."""
    a = cfg.annotation
    outputs = run_taggers(clips, taggers, cache_dir=cfg.paths.cache, combine=a.combine, progress=progress,
                          threads=cfg.run.torch_threads)
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
    """What :func:`annotate` produced (also on disk in the stage folder)."""

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
