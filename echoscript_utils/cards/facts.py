"""The facts both cards say, gathered from a run folder and its parameters (no stage module is imported).

:func:`gather_facts` reads every ``NN_stage/metrics.json``, the newest ``metadata.jsonl``,
``04_finetuning/genre_mix.csv``, the model's ``config.json`` and the licences the user gave (``data.licences`` or a
``licence`` column of the labels file), and returns one JSON-able dict; ``write_cards`` stores it as
``<run>/card_facts.json``. Numbers are copied, never recomputed: the cards show what the stages measured.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

from ..artifacts import read_json, read_metrics
from ..config import Config
from ..dataset import HF_SPLITS, real_duration
from ..errors import InputError

__all__ = ["FACTS_NAME", "MUSICGEN_LICENCE", "demo_reasons", "gather_facts", "hub_licence", "track_sources"]

#: Facts file in the run folder: what both cards are rendered from (``publish`` renders from it again).
FACTS_NAME = "card_facts.json"
FACTS_VERSION = 1
#: The licence of Meta's MusicGen weights; a fine-tune of them inherits it.
MUSICGEN_LICENCE = "cc-by-nc-4.0"
#: Hub licence ids a licences file may name (anything else is published as ``other`` with its own name).
HUB_LICENCES = frozenset({
    "apache-2.0", "mit", "bsd-2-clause", "bsd-3-clause", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0",
    "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0",
    "cc-by-nd-4.0", "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0",
    "cc-by-nc-sa-4.0", "gpl-2.0", "gpl-3.0", "lgpl-3.0", "agpl-3.0", "odc-by", "odbl", "pddl", "unlicense",
    "artistic-2.0", "unknown", "other",
})
_LICENCE_ALIASES = {"cc0": "cc0-1.0", "public-domain": "cc0-1.0", "pd": "cc0-1.0"}


def _rows_of(run_root: Path) -> tuple[list[dict], str | None]:
    """Rows of the newest ``metadata.jsonl`` of the run (alignment → annotation → curation) and its stage."""
    for stage in ("03_alignment", "02_annotation", "01_curation"):
        path = run_root / stage / "metadata.jsonl"
        if path.is_file():
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
            return rows, stage
    return [], None


def _labels(row: dict) -> tuple[str | None, list[str], list[str], str]:
    """A clip's genre, moods and instruments: its ground truth where it has one, else its automatic tags."""
    truth = row.get("truth") if isinstance(row.get("truth"), dict) else {}
    if truth and truth.get("genre"):
        return truth.get("genre"), list(truth.get("moods") or []), list(truth.get("instruments") or []), "truth"
    tags = row.get("tags") if isinstance(row.get("tags"), dict) else {}
    return tags.get("genre"), list(tags.get("moods") or []), list(tags.get("instruments") or []), "tags"


def _mix(rows: list[dict]) -> dict[str, Any]:
    """Genre, mood and instrument shares over ``rows`` (each clip counts once per label it carries)."""
    genres, moods, instruments, sources = Counter(), Counter(), Counter(), Counter()
    for r in rows:
        g, m, i, src = _labels(r)
        genres[g or "(none)"] += 1
        moods.update(m)
        instruments.update(i)
        sources[src] += 1
    n = max(len(rows), 1)
    return {"genres": {k: v / n for k, v in genres.items()}, "moods": {k: v / n for k, v in moods.items()},
            "instruments": {k: v / n for k, v in instruments.items()},
            "genre_counts": dict(genres), "mood_counts": dict(moods),
            "labels_from": ("ground-truth labels" if sources["truth"] == len(rows) else
                            "automatic tags" if sources["truth"] == 0 else
                            f"ground-truth labels ({sources['truth']} clips) and automatic tags "
                            f"({sources['tags']} clips)")}


def _caption_mix(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Genre and mood shares in the captions the model was trained on (``caption_fields``: the annotation's tags
    win over ground truth, as :func:`echoscript_utils.captions.caption_fields` decides)."""
    from ..captions import caption_fields

    genres, moods = Counter(), Counter()
    for r in rows:
        fields = r.get("caption_fields") if isinstance(r.get("caption_fields"), dict) else caption_fields(r)
        genres[fields.get("genre") or "(none)"] += 1
        moods.update(fields.get("moods") or [])
    n = max(len(rows), 1)
    return {"genres": {k: v / n for k, v in genres.items()}, "moods": {k: v / n for k, v in moods.items()}}


def _truth_mix(rows: list[dict]) -> dict[str, dict[str, float]] | None:
    truths = [r["truth"] for r in rows if isinstance(r.get("truth"), dict) and r["truth"].get("genre")]
    if not truths:
        return None
    n = len(truths)
    genres = Counter(t["genre"] for t in truths)
    moods = Counter(m for t in truths for m in t.get("moods") or [])
    return {"genres": {k: v / n for k, v in genres.items()}, "moods": {k: v / n for k, v in moods.items()}}


def _is_tiny(ref: str) -> bool:
    from ..models.tiny import is_tiny

    return is_tiny(ref)


def hub_licence(text: str | None) -> str:
    """A licence as the user wrote it (``CC BY-NC 4.0``) → a hub licence id (``cc-by-nc-4.0``), ``other`` for
    names the hub does not list, ``unknown`` for blanks."""
    if text is None or not str(text).strip() or str(text).strip().lower() in ("nan", "none", "unknown", "?"):
        return "unknown"
    key = re.sub(r"[\s_]+", "-", str(text).strip().lower())
    key = _LICENCE_ALIASES.get(key, key)
    return key if key in HUB_LICENCES else "other"


# =============================================================================================== licences
def _read_table(path: Path) -> list[dict[str, str]]:
    try:
        if path.suffix.lower() in (".jsonl", ".json"):
            return [{k: ("" if v is None else str(v)) for k, v in json.loads(line).items()}
                    for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [{(k or "").strip().lower(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]
    except (OSError, ValueError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read ({type(exc).__name__}: {exc}); expected a CSV with a header row") from None


def _licence_entries(path: Path, *, required: bool) -> dict[str, dict[str, str]]:
    """``{track_id or file: {licence, url, attribution}}`` from a licences file or a labels file's columns."""
    rows = _read_table(path)
    if not rows:
        return {}
    cols = set(rows[0])
    lic_col = next((c for c in ("licence", "license") if c in cols), None)
    key_cols = [c for c in ("track_id", "file", "source") if c in cols]
    if lic_col is None or not key_cols:
        if required:
            raise InputError(f"{path}: data.licences needs a 'licence' column and a 'track_id' or 'file' column; "
                             f"found {sorted(cols)}")
        return {}
    out: dict[str, dict[str, str]] = {}
    for r in rows:
        entry = {"licence": r.get(lic_col, ""),
                 "url": r.get("url") or r.get("source_url") or "",
                 "attribution": r.get("attribution") or r.get("artist") or r.get("credit") or ""}
        for c in key_cols:
            if r.get(c):
                out[r[c].replace("\\", "/")] = entry
    return out


def _labels_path(cfg: Config) -> Path | None:
    if cfg.data.labels is not None:
        return Path(cfg.data.labels)
    src = Path(cfg.data.input_dir) if cfg.data.input_dir is not None else cfg.paths.demo_corpus
    return src / "labels.csv" if (src / "labels.csv").is_file() else None


def track_sources(cfg: Config, rows: list[dict]) -> list[dict[str, Any]]:
    """One row per track: where it came from, its split, its clips and its licence (``data.licences`` first,
    then a ``licence`` column of the labels file; ``unknown`` when neither names it)."""
    given: dict[str, dict[str, str]] = {}
    labels = _labels_path(cfg)
    if labels is not None and labels.is_file():
        given.update(_licence_entries(labels, required=False))
    if cfg.data.licences is not None:
        lic = Path(cfg.data.licences)
        if not lic.is_file():
            raise InputError(f"{lic}: data.licences file not found; give a CSV with track_id (or file) and licence")
        given.update(_licence_entries(lic, required=True))
    tracks: dict[str, dict[str, Any]] = {}
    for r in rows:
        t = tracks.setdefault(r["track_id"], {"track_id": r["track_id"], "source": r.get("source", ""),
                                              "splits": set(), "clips": 0, "seconds": 0.0})
        t["splits"].add(r.get("split", ""))
        t["clips"] += 1
        t["seconds"] += real_duration(r)
    out = []
    for t in sorted(tracks.values(), key=lambda t: t["track_id"]):
        src = str(t["source"]).replace("\\", "/")
        entry = (given.get(t["track_id"]) or given.get(src)
                 or next((v for k, v in given.items() if src.endswith("/" + k) or k.endswith("/" + src)), None)
                 or {})
        written = entry.get("licence", "")
        out.append({"track_id": t["track_id"], "source": src, "split": ",".join(sorted(t["splits"])),
                    "clips": t["clips"], "hours": round(t["seconds"] / 3600, 4),
                    "licence": written or "unknown", "hub_licence": hub_licence(written),
                    "url": entry.get("url", ""), "attribution": entry.get("attribution", "")})
    return out


# =============================================================================================== facts
def demo_reasons(cfg: Config) -> dict[str, list[str]]:
    """Why the run's model and data are a demo's (``{"model": [...], "dataset": [...]}``; empty lists: real)."""
    t = cfg.training
    model, data = [], []
    if _is_tiny(t.model):
        model.append(f"the model is a tiny random model ({t.model}, built from a config by the workbook): it tests "
                     f"the code path and makes noise, not music")
    if cfg.run.fullsize_mirror:
        model.append("the base model has random weights at its published size (the full-size dry run): its "
                     "outputs and every number below mean nothing")
    if cfg.data.input_dir is None:
        why = ("the audio is the workbook's generated demo corpus (procedurally composed pieces rendered through a "
               "General MIDI soundfont), not anyone's music")
        data.append(why)
        model.append("it was trained on the workbook's generated demo corpus (procedurally composed pieces, not "
                     "anyone's music)")
    return {"model": model, "dataset": data}


def _model_facts(cfg: Config, final: Path) -> dict[str, Any]:
    t = cfg.training
    conf = read_json(final / "config.json") if (final / "config.json").is_file() else {}
    arch = (conf.get("architectures") or ["MusicgenForConditionalGeneration"])[0]
    params = None
    weights = final / "model.safetensors"
    if weights.is_file():
        try:
            from safetensors import safe_open

            with safe_open(str(weights), framework="numpy") as f:
                params = int(sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys()))  # noqa: SIM118
        except Exception:  # an unreadable header only costs the parameter count
            params = None
    codec = conf.get("audio_encoder") or {}
    random_weights = _is_tiny(t.model) or bool(cfg.run.fullsize_mirror)
    local = Path(str(t.model)).expanduser()
    if random_weights:
        base_hub, licence = None, "mit"
        licence_note = ("The weights are random (no MusicGen weights inside), built by the workbook, whose licence "
                        "(MIT) covers them.")
    elif local.is_dir():
        base_hub, licence, licence_note = None, "unknown", f"The base model is a local folder ({local})."
        if (local / "README.md").is_file():
            try:
                from huggingface_hub import ModelCard

                licence = ModelCard.load(local / "README.md").data.license or "unknown"
                licence_note += f" Its card gives the licence `{licence}`; the fine-tune inherits it."
            except Exception:
                licence_note += " Its licence could not be read: check it before publishing."
    else:
        base_hub = str(t.model)
        if base_hub.startswith("facebook/musicgen"):
            licence = MUSICGEN_LICENCE
            licence_note = (f"The base weights ({base_hub}) are released by Meta under CC-BY-NC 4.0; this fine-tune "
                            f"inherits that licence: attribution, no commercial use.")
        else:
            licence = "unknown"
            licence_note = f"The base model is {base_hub}: this fine-tune inherits its licence; check it."
    return {"base": str(t.model), "base_hub_id": base_hub, "random_weights": random_weights,
            "licence": licence, "licence_note": licence_note, "architecture": arch,
            "melody": "Melody" in arch, "parameters": params,
            "sample_rate": codec.get("sampling_rate"), "codebooks": (conf.get("decoder") or {}).get("num_codebooks"),
            "lora": t.lora.model_dump() if t.lora.enabled else None}


def _training_facts(cfg: Config, m04: dict) -> dict[str, Any]:
    t = cfg.training
    return {
        "epochs": m04.get("epochs", t.epochs), "steps": m04.get("steps"), "batch_size": m04.get("batch_size", t.batch_size),
        "micro_batch": m04.get("micro_batch"), "grad_accum": t.grad_accum, "processes": m04.get("processes"),
        "learning_rate": t.learning_rate, "scheduler": t.scheduler, "warmup_steps": t.warmup_steps,
        "weight_decay": t.weight_decay, "betas": list(t.betas), "max_grad_norm": t.max_grad_norm,
        "precision": m04.get("precision", t.precision), "attn_implementation": t.attn_implementation,
        "segment_s": t.segment_s, "cfg_dropout": t.cfg_dropout, "melody_dropout": t.melody_dropout,
        "caption_dropout": dict(cfg.alignment.caption_dropout), "sampler_temperature": t.sampler_temperature,
        "train_text_encoder": t.train_text_encoder, "gradient_checkpointing": t.gradient_checkpointing,
        "lora": t.lora.model_dump() if t.lora.enabled else None,
        "train_clips": m04.get("train_clips"), "valid_clips": m04.get("valid_clips"),
        "train_loss_first_epoch": m04.get("train_loss_first_epoch"),
        "train_loss_last_epoch": m04.get("train_loss_last_epoch"), "val_loss_last": m04.get("val_loss_last"),
        "nonfinite_steps": m04.get("nonfinite_steps"), "seconds": m04.get("seconds"),
        "tokens_per_s": m04.get("tokens_per_s"), "seed": cfg.seed,
    }


def _genre_mix_csv(path: Path) -> dict[str, dict[str, float]]:
    """Epoch 1's corpus and drawn genre shares from ``genre_mix.csv`` (what the sampler saw)."""
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("epoch") in ("1", "1.0")]
    return {"corpus": {r["genre"]: float(r["corpus_share"]) for r in rows},
            "drawn": {r["genre"]: float(r["drawn_share"]) for r in rows}}


def _evaluation_facts(m06: dict, *, system: str, baseline: str) -> dict[str, Any] | None:
    if not m06:
        return None
    keep = ("embedding", "model", "ci_low", "ci_high", "n_ref", "n_gen", "flags", "fad_inf", "confidence")
    fad = [{**{k: r.get(k) for k in keep}, "value": r.get("fad")} for r in m06.get("fad") or []]
    kad = []
    for r in m06.get("kad") or []:  # kernel audio distance, when the evaluation stage measured it
        value = next((r[k] for k in ("kad", "value", "distance") if isinstance(r.get(k), int | float)), None)
        kad.append({**{k: r.get(k) for k in keep}, "value": value})
    for r in m06.get("fad") or []:  # or as columns of the FAD rows
        if isinstance(r.get("kad"), int | float):
            kad.append({"embedding": r.get("embedding"), "model": r.get("model"), "value": r["kad"],
                        "ci_low": r.get("kad_ci_low"), "ci_high": r.get("kad_ci_high"),
                        "n_ref": r.get("n_ref"), "n_gen": r.get("n_gen"), "flags": r.get("flags")})
    adherence = m06.get("adherence")
    return {"reference": (m06.get("reference") or {}).get("source"), "system": system, "baseline": baseline,
            "fad": fad, "kad": kad,
            "clap_score": [{k: r.get(k) for k in ("model", "score", "ci_low", "ci_high", "n", "confidence")}
                           for r in m06.get("clap_score") or []],
            "paired": [{k: r.get(k) for k in ("embedding", "a", "b", "difference", "ci_low", "ci_high",
                                              "significant", "confidence")}
                       for r in m06.get("paired_difference") or []],
            "adherence": adherence if adherence else None, "verdict": m06.get("verdict")}


def _listening_facts(m07: dict) -> dict[str, Any] | None:
    if not m07:
        return None
    if m07.get("simulated"):
        return {"simulated": True}
    study = m07.get("study") or {}
    return {"simulated": False, "participants": study.get("participants"), "ratings": study.get("ratings"),
            "scenarios": study.get("scenarios"), "confidence": m07.get("confidence"),
            "baseline": m07.get("baseline"), "dimension_means": m07.get("dimension_means") or {},
            "preference_shares": m07.get("preference_shares") or {},
            "tests": {model: {dim: v for dim, v in dims.items() if dim in ("MOS", "REL")}
                      for model, dims in (m07.get("tests") or {}).items()}}


def _dataset_facts(cfg: Config, run_root: Path, metrics: dict[str, dict]) -> dict[str, Any]:
    m01, m02, m03 = metrics.get("01_curation", {}), metrics.get("02_annotation", {}), metrics.get("03_alignment", {})
    rows01 = []
    if (run_root / "01_curation" / "metadata.jsonl").is_file():
        rows01 = [json.loads(line) for line in
                  (run_root / "01_curation" / "metadata.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    rows, _ = _rows_of(run_root)
    by_track: dict[str, set] = {}
    for r in rows01:
        by_track.setdefault(r["track_id"], set()).add(r.get("split"))
    split_hours: dict[str, float] = Counter()
    for r in rows01:
        split_hours[r.get("split", "")] += real_duration(r) / 3600
    features: list[str] = []
    export = run_root / "01_curation" / "exports" / "hf"
    for name in ("train", "validation", "test"):
        info = export / name / "dataset_info.json"
        if info.is_file():
            features = list((read_json(info).get("features") or {}).keys())
            break
    ann = m02.get("accuracy") or {}
    combined = (ann.get("taggers") or {}).get("combined") or {}
    missed = []
    for field, labels in (combined.get("per_label_f1") or {}).items():
        missed += [{"field": field, "label": k, "f1": v} for k, v in labels.items() if v is not None and v < 0.5]
    p = cfg.annotation.prompts
    prompts = dict(m02.get("prompts") or {})
    if prompts.get("provider") == "openai":
        prompts["model"] = p.model
    reviewed = sum(1 for r in rows if isinstance(r.get("tags"), dict) and r["tags"].get("reviewed"))
    return {
        "curation": {k: m01.get(k) for k in ("n_inputs", "n_files_kept", "n_skipped", "skipped_by_kind", "n_tracks",
                                             "n_clips", "clip_hours", "input_hours_kept", "clips_per_split",
                                             "tracks_per_split", "short_cues_padded", "silent_clips_dropped",
                                             "tail_seconds_dropped", "n_clips_with_truth")},
        "settings": m01.get("settings") or {},
        "loudness": {k: (m01.get("loudness") or {}).get(k)
                     for k in ("policy", "target_requested", "target_lufs", "ceiling_dbtp", "clips_limited",
                               "clips_reaching_target", "clips_below_target", "max_true_peak_dbtp")}
        if m01.get("loudness") else {},
        "features_accuracy": {"tempo": m01.get("tempo"), "key": m01.get("key")},
        "split_hours": {k: round(v, 4) for k, v in split_hours.items()},
        "tracks_in_several_splits": sum(1 for s in by_track.values() if len(s) > 1),
        "split_from_folders": cfg.curation.split_from_folders,
        "hf_splits": {ours: theirs for ours, theirs in HF_SPLITS.items() if (export / theirs).is_dir()},
        "features": features,
        "mix": _mix(rows01 if rows01 else rows),
        "annotation": {
            "taggers": m02.get("taggers") or {}, "taggers_unavailable": m02.get("taggers_unavailable") or {},
            "combine": list(cfg.annotation.combine) if cfg.annotation.combine else None,
            "accuracy": {name: {k: v for k, v in acc.items() if k != "per_label_f1"}
                         for name, acc in (ann.get("taggers") or {}).items()},
            "n_clips_with_truth": ann.get("n_clips_with_truth"), "overrides": m02.get("overrides") or {},
            "clips_reviewed": reviewed, "prompts": prompts, "missed": missed,
            "tag_counts": (m02.get("tags") or {}).get("genre_counts"),
        } if m02 else None,
        "alignment": {k: m03.get(k) for k in ("clap_model", "gate", "keep_rule", "keep_value", "n_kept", "n_dropped",
                                              "n_clips", "clap_score_mean", "recall_at_1", "recall_chance_at_1",
                                              "candidates")} if m03 else None,
        "gate_enabled": cfg.alignment.gate,
    }


def _newer_than_model(stage_dir: Path, final: Path) -> bool:
    """True when the stage finished after the model in ``final/`` was saved (its stamp, else its metrics file,
    is at least as new as the weights); True when there is no model to compare with."""
    weights = [p for p in (final / "model.safetensors", final / "config.json") if p.is_file()]
    if not weights:
        return True
    mark = next((p for p in (stage_dir / ".stage.json", stage_dir / "metrics.json") if p.is_file()), None)
    return mark is not None and mark.stat().st_mtime >= max(p.stat().st_mtime for p in weights)


def gather_facts(cfg: Config) -> dict[str, Any]:
    """Everything both cards say, from the run folder of ``cfg`` and its parameters (JSON-able)."""
    root = cfg.paths.root
    metrics = {s: read_metrics(cfg.paths.stage(s)) for s in ("01_curation", "02_annotation", "03_alignment",
                                                             "04_finetuning", "05_generation", "06_evaluation",
                                                             "07_listening")}
    final = cfg.paths.finetuning / "final"
    for stage_name in ("05_generation", "06_evaluation", "07_listening"):
        if not _newer_than_model(cfg.paths.stage(stage_name), final):
            metrics[stage_name] = {}  # measured on an earlier model: not this model's numbers
    rows, stage = _rows_of(root)
    used = [r for r in rows if r.get("kept") is not False and r.get("split") == "train"]
    captions, truth = _caption_mix(used), _truth_mix(used)
    sampler = _genre_mix_csv(cfg.paths.finetuning / "genre_mix.csv")
    sources = track_sources(cfg, [json.loads(line) for line in
                                  (cfg.paths.curation / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
                                  if line.strip()]) if (cfg.paths.curation / "metadata.jsonl").is_file() else []
    m04 = metrics["04_finetuning"]
    return {
        "version": FACTS_VERSION,
        "run": {"name": cfg.params.run.name, "params": str(cfg.source) if cfg.source else None, "seed": cfg.seed},
        "demo": demo_reasons(cfg),
        "model": _model_facts(cfg, final) if (final / "config.json").is_file() else None,
        "training": _training_facts(cfg, m04) if m04 else None,
        "training_data": {"clips": m04.get("train_clips", len(used)), "valid_clips": m04.get("valid_clips"),
                          "hours": round(sum(real_duration(r) for r in used) / 3600, 4), "metadata": stage,
                          "genre_mix": captions["genres"], "mood_mix": captions["moods"],
                          "truth_genre_mix": truth["genres"] if truth else None,
                          "truth_mood_mix": truth["moods"] if truth else None,
                          "drawn_mix": sampler.get("drawn")} if m04 else None,
        "generation": {"settings": metrics["05_generation"].get("settings")} if metrics["05_generation"] else None,
        "evaluation": _evaluation_facts(metrics["06_evaluation"], system=cfg.listening.system_label,
                                        baseline=cfg.listening.baseline_label),
        "listening": _listening_facts(metrics["07_listening"]),
        "dataset": _dataset_facts(cfg, root, metrics) if metrics["01_curation"] else None,
        "sources": sources,
    }


