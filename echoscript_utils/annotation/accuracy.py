"""How well the taggers do against ground truth: per-label precision, recall and F1, genre confusion and
threshold-free ROC AUC (all by :mod:`sklearn.metrics`), their summary per tagger, and the clips the taggers
disagree on."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import (
    confusion_matrix,
    f1_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from ..artifacts import read_json
from ..errors import InputError
from ..tagging import FIELDS, VOCAB
from ..taxonomy import join_list, split_list
from .records import load_annotated
from .schema import COMBINED
from .tags import choose_all, read_tagger_outputs

__all__ = ["AccuracyReport", "disagreements", "evaluate", "genre_confusion", "label_auc", "label_metrics",
           "recompute_accuracy", "truth_table"]


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


PER_LABEL_COLUMNS = ["tagger", "field", "label", "precision", "recall", "f1", "support", "tp", "fp", "fn"]


def _indicators(merged: pd.DataFrame) -> Iterator[tuple[str, str, np.ndarray, np.ndarray]]:
    """``(tagger, field, y_true, y_pred)`` for every tagger and field of ``chosen`` merged with the truth:
    boolean indicator matrices ``[N, L]`` over ``VOCAB[field]``, one row per clip with truth for that field.

    Genre is single-label, so its rows are one-hot (a true genre outside the vocabulary is an all-false row: the
    prediction still counts as a false positive); moods and instruments are multi-label.
    """
    for tagger, grp in merged.groupby("tagger", sort=False):
        for f in FIELDS:
            if f == "genre":
                ok = grp["genre_true"].notna()
                pairs = [({p}, {t}) for p, t in zip(grp.loc[ok, "genre"], grp.loc[ok, "genre_true"], strict=True)]
            else:
                pairs = [(set(p), set(t)) for p, t in zip(grp[f], grp[f"{f}_true"], strict=True) if len(t)]
            labels = VOCAB[f]
            y_true = np.array([[lab in t for lab in labels] for _, t in pairs], dtype=bool).reshape(-1, len(labels))
            y_pred = np.array([[lab in p for lab in labels] for p, _ in pairs], dtype=bool).reshape(-1, len(labels))
            yield tagger, f, y_true, y_pred


def _merge_truth(chosen: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    return chosen.merge(truth, on="clip_id", suffixes=("", "_true"))


def label_metrics(chosen: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Per-label precision, recall and F1 for every tagger against ground truth
    (:func:`sklearn.metrics.precision_recall_fscore_support`, 0 where a ratio has no denominator).

    Genre is single-label (one-vs-rest counts from the confusion matrix); moods and instruments are multi-label
    (a label is a hit when it is both chosen and true). Clips without truth for a field are skipped for it.

    Returns:
        DataFrame ``tagger, field, label, precision, recall, f1, support, tp, fp, fn`` (support = true count).
    """
    rows = []
    for tagger, f, y_true, y_pred in _indicators(_merge_truth(chosen, truth)):
        n_labels = len(VOCAB[f])
        if len(y_true):
            prec, rec, f1, support = precision_recall_fscore_support(y_true, y_pred, average=None,
                                                                     zero_division=0.0)
            (_, fp), (fn, tp) = multilabel_confusion_matrix(y_true, y_pred).transpose(1, 2, 0)
        else:  # no clip with truth for this field
            prec = rec = f1 = np.zeros(n_labels)
            support = tp = fp = fn = np.zeros(n_labels, dtype=int)
        for i, label in enumerate(VOCAB[f]):
            rows.append({"tagger": tagger, "field": f, "label": label, "precision": float(prec[i]),
                         "recall": float(rec[i]), "f1": float(f1[i]), "support": int(support[i]), "tp": int(tp[i]),
                         "fp": int(fp[i]), "fn": int(fn[i])})
    return pd.DataFrame(rows, columns=PER_LABEL_COLUMNS)


def _micro_f1(chosen: pd.DataFrame, truth: pd.DataFrame) -> dict[tuple[str, str], float]:
    """``{(tagger, field): micro-averaged F1}`` (:func:`sklearn.metrics.f1_score`, 0 without any label)."""
    return {(tagger, f): float(f1_score(y_true, y_pred, average="micro", zero_division=0.0)) if len(y_true) else 0.0
            for tagger, f, y_true, y_pred in _indicators(_merge_truth(chosen, truth))}


def genre_confusion(chosen: pd.DataFrame, truth: pd.DataFrame, *, tagger: str) -> pd.DataFrame:
    """Genre confusion counts for one tagger (:func:`sklearn.metrics.confusion_matrix`): rows = true genre,
    columns = predicted genre; clips whose true or chosen genre is outside the vocabulary are left out."""
    merged = _merge_truth(chosen[chosen["tagger"] == tagger], truth)
    labels = VOCAB["genre"]
    inside = merged["genre_true"].isin(labels) & merged["genre"].isin(labels)
    counts = (confusion_matrix(merged.loc[inside, "genre_true"], merged.loc[inside, "genre"], labels=labels)
              if inside.any() else np.zeros((len(labels), len(labels)), dtype=np.int64))
    return pd.DataFrame(counts.astype(np.int64), index=pd.Index(labels, name="true"),
                        columns=pd.Index(labels, name="predicted"))


def _auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC (:func:`sklearn.metrics.roc_auc_score`, ties counted half); NaN without both classes."""
    if positive.all() or not positive.any():
        return float("nan")
    return float(roc_auc_score(positive, scores))


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
    micro = _micro_f1(chosen, truth)
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
            rec[f"{f}_micro_f1"] = micro.get((tagger, f), 0.0)
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
