"""Rendering the cards: :class:`huggingface_hub.ModelCard` / :class:`~huggingface_hub.DatasetCard` from the run's
facts and the templates ``data/model_card.md`` / ``data/dataset_card.md``, writing them into the run, and the HTML
the run report shows.

Every number goes through :func:`_num` (integers as they are, floats to four significant digits) so the cards and
``metrics.json`` can be compared; the hub's structured ``model-index`` carries the exact values.
"""

from __future__ import annotations

import csv
import html
import io
import math
import os
import re
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

from ..artifacts import atomic_write_text, json_text, read_json, write_if_changed
from ..config import Config
from .facts import FACTS_NAME, MUSICGEN_LICENCE, gather_facts

__all__ = ["DATASET_PLACEHOLDER", "DEMO_TAG", "MODEL_PLACEHOLDER", "REQUIRED_KEYS", "card_problems", "cards_html",
           "render_dataset_card", "render_model_card", "write_cards"]

#: Tag on every card of a demo run (tiny random model, random-weight dry run, generated demo corpus).
DEMO_TAG = "echoscript-demo"
#: Stand-ins for the hub repos until the folders are published (the usage snippets name them).
MODEL_PLACEHOLDER = "your-name/echoscript-musicgen"
DATASET_PLACEHOLDER = "your-name/echoscript-soundtracks"
#: Metadata keys the hub needs to list a repo properly (an absent one means the card would be empty).
REQUIRED_KEYS = {"model": ("license", "library_name", "pipeline_tag", "tags"),
                 "dataset": ("license", "task_categories", "tags", "configs")}


# =============================================================================================== formatting
def _num(v: Any, digits: int = 4) -> str:
    """How every number appears in a card: integers as they are, floats to ``digits`` significant digits."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.{digits}g}"


def _ci(row: dict, lo: str = "ci_low", hi: str = "ci_high") -> str:
    if row.get(lo) is None or row.get(hi) is None:
        return "–"
    return f"[{_num(row[lo])}, {_num(row[hi])}]"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.0f} %"


def _cell(v: Any) -> str:
    """A Markdown table cell: pipes escaped, newlines flattened."""
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    if not rows:
        return ""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _share_text(mix: dict[str, float]) -> str:
    return ", ".join(f"{k} {_pct(v)}" for k, v in sorted(mix.items(), key=lambda kv: (-kv[1], kv[0])) if v > 0) or "–"



# =============================================================================================== rendering
def _template(name: str) -> str:
    return resources.files("echoscript_utils").joinpath("data", name).read_text(encoding="utf-8")


def _tidy(card):
    card.text = "\n" + re.sub(r"\n{3,}", "\n\n", card.text).strip() + "\n"
    return card


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _usage_snippet(model: dict, repo: str) -> str:
    cls = "MusicgenMelodyForConditionalGeneration" if model.get("melody") else "MusicgenForConditionalGeneration"
    return "\n".join([
        "import scipy.io.wavfile",
        f"from transformers import AutoProcessor, {cls}",
        "",
        f'repo = "{repo}"',
        "processor = AutoProcessor.from_pretrained(repo)",
        f"model = {cls}.from_pretrained(repo)",
        'inputs = processor(text=["tense night chase through rain-soaked streets, low strings and pulsing synth"],',
        '                   padding=True, return_tensors="pt")',
        "seconds = 8",
        "audio = model.generate(**inputs, do_sample=True, guidance_scale=3.0,",
        "                       max_new_tokens=int(seconds * model.config.audio_encoder.frame_rate))",
        "sr = model.config.audio_encoder.sampling_rate",
        'scipy.io.wavfile.write("cue.wav", rate=sr, data=audio[0, 0].numpy())  # audio: [batch, channels, samples]',
    ])


def _eval_tables(ev: dict) -> dict[str, str]:
    def dist_rows(rows):
        return [[r["embedding"], r["model"], _num(r["value"]), _ci(r), _num(r.get("n_ref")), _num(r.get("n_gen")),
                 r.get("flags") or ""] for r in rows]

    header = ["embedding", "model", "{}", "interval", "reference clips", "generated clips", "flags"]
    conf = next((r.get("confidence") for r in ev["clap_score"] if r.get("confidence")), 0.95)
    fad = _table([h.format("FAD ↓") for h in header], dist_rows(ev["fad"]))
    kad = _table([h.format("KAD ↓") for h in header], dist_rows(ev["kad"]))
    clap = _table(["model", "CLAP score ↑", "interval", "clips"],
                  [[r["model"], _num(r["score"]), _ci(r), _num(r.get("n"))] for r in ev["clap_score"]])
    paired = _table(["embedding", "difference (FAD a − FAD b)", "interval", "a", "b", "interval excludes 0"],
                    [[r["embedding"], _num(r["difference"]), _ci(r), r["a"], r["b"], _num(bool(r["significant"]))]
                     for r in ev["paired"]])
    adherence = ""
    adh = ev.get("adherence")
    if isinstance(adh, list):
        adh_rows = [r for r in adh if isinstance(r, dict)]
        cols = [c for c in ("model", "metric", "value", "ci_low", "ci_high", "n") if any(c in r for r in adh_rows)]
        adherence = _table(cols, [[_num(r.get(c)) if isinstance(r.get(c), float) else r.get(c, "") for c in cols]
                                  for r in adh_rows])
    elif isinstance(adh, dict):
        flat = []
        for model, vals in adh.items():
            if isinstance(vals, dict):
                flat += [[model, k, _num(v)] for k, v in vals.items() if isinstance(v, int | float)]
            elif isinstance(vals, int | float):
                flat.append(["", model, _num(vals)])
        adherence = _table(["model", "metric", "value"], flat)
    return {"fad": fad, "kad": kad, "clap": clap, "paired": paired, "adherence": adherence,
            "confidence": f"{100 * (conf or 0.95):.0f} %"}


def _listening_text(lis: dict | None) -> str:
    if not lis:
        return "This run has no listening-test results."
    if lis.get("simulated"):
        return ("The listening test in this run was **simulated** (made-up responses that exercise the analysis "
                "code); no listening results are reported. Run a real study (`echoscript listening serve` or "
                "webMUSHRA) and set `listening.study_dir` to report one here.")
    conf = f"{100 * (lis.get('confidence') or 0.95):.0f} %"
    means = _table(["model", "MOS (audio quality, 1–5)", "REL (relevance to the scene, 1–5)"],
                   [[m, _num(d.get("MOS")), _num(d.get("REL"))] for m, d in sorted(lis["dimension_means"].items())])
    prefs = []
    for crit, models in sorted(lis["preference_shares"].items()):
        for m, s in sorted(models.items()):
            prefs.append([crit, m, _pct(s.get("share")), f"[{_pct(s.get('ci_low'))}, {_pct(s.get('ci_high'))}]",
                          _num(s.get("p_value"))])
    tests = [[m, dim, _num(t.get("mean_diff")), _num(t.get("p_holm"))]
             for m, dims in sorted(lis["tests"].items()) for dim, t in sorted(dims.items())]
    return "\n\n".join(x for x in (
        f"A blinded study with {_num(lis.get('participants'))} participants, {_num(lis.get('scenarios'))} scenarios "
        f"and {_num(lis.get('ratings'))} ratings (baseline: {lis.get('baseline')}; intervals at {conf}).",
        means, _table(["criterion", "model", "preferred", "interval", "p"], prefs),
        _table(["model", "dimension", "mean difference vs baseline", "p (Holm)"], tests)) if x)


def render_model_card(facts: dict[str, Any], *, repo_id: str | None = None, dataset_repo: str | None = None):
    """The model card of a run (a :class:`huggingface_hub.ModelCard`), from :func:`gather_facts`' dict.

    ``repo_id`` / ``dataset_repo`` name the hub repos once known (the usage snippet and the dataset link use them).
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    model, training, data = facts.get("model") or {}, facts.get("training") or {}, facts.get("training_data") or {}
    demo = facts["demo"]["model"]
    ev = facts.get("evaluation")
    repo = repo_id or MODEL_PLACEHOLDER
    tags = ["musicgen", "text-to-audio", "music", "film-score", "echoscript"]
    if model.get("melody"):
        tags.append("melody-conditioning")
    if training.get("lora"):
        tags.append("lora")
    if demo:
        tags += [DEMO_TAG, "random-weights" if model.get("random_weights") else "demo-data"]
    eval_results = None
    if ev and not demo:  # meaningless numbers stay out of the hub's structured results
        eval_results = [EvalResult(task_type="text-to-audio", dataset_type=dataset_repo or "echoscript-eval-split",
                                   dataset_name=ev.get("reference") or "curated eval split",
                                   metric_type=kind, metric_name=f"{kind.upper()} ({r['embedding']})",
                                   metric_value=r["value"], metric_config=r["embedding"])
                        for kind in ("fad", "kad") for r in ev[kind]
                        if r["model"] == ev["system"] and r["value"] is not None] or None
    data_card = ModelCardData(
        license=model.get("licence", "unknown"), library_name="transformers", pipeline_tag="text-to-audio",
        tags=tags, base_model=model.get("base_hub_id"), datasets=[dataset_repo] if dataset_repo else None,
        model_name=(repo_id or f"echoscript-{facts['run']['name']}") if eval_results else None,
        eval_results=eval_results)
    if model.get("base_hub_id"):
        data_card.base_model_relation = "finetune"
    lora = training.get("lora")
    recipe = [
        ["epochs / optimiser steps", f"{_num(training.get('epochs'))} / {_num(training.get('steps'))}"],
        ["batch (effective)", f"{_num(training.get('batch_size'))} (micro-batch {_num(training.get('micro_batch'))}"
                              f" × accumulation {_num(training.get('grad_accum'))} × processes "
                              f"{_num(training.get('processes'))})"],
        ["learning rate and schedule", f"{_num(training.get('learning_rate'))}, {training.get('scheduler')} with "
                                       f"{_num(training.get('warmup_steps'))} warmup steps; AdamW, weight decay "
                                       f"{_num(training.get('weight_decay'))}, betas {training.get('betas')}"],
        ["gradient clipping", _num(training.get("max_grad_norm"))],
        ["precision", training.get("precision")],
        ["trained weights", (f"LoRA r={lora['r']}, alpha={lora['alpha']}, dropout {_num(lora['dropout'])} on "
                             f"{', '.join(lora['target_modules'])} (merged into these weights)") if lora
         else ("full decoder" + (" and text encoder" if training.get("train_text_encoder") else
                                 "; text encoder and codec frozen"))],
        ["classifier-free-guidance dropout", f"whole caption dropped with p = {_num(training.get('cfg_dropout'))}; "
                                             "per attribute: " + ", ".join(
                                                 f"{k} {_num(v)}" for k, v in (training.get("caption_dropout") or {}).items())],
        ["weighted sampling", f"genre weights freq(genre)^-{_num(training.get('sampler_temperature'))}"
                              + (" (uniform over clips)" if not training.get("sampler_temperature") else "")],
        ["melody conditioning", f"yes (chroma dropout {_num(training.get('melody_dropout'))})" if model.get("melody")
         else "no (text only)"],
        ["crops", f"{_num(training.get('segment_s'))} s random crops" if training.get("segment_s") else "whole clips"],
        ["seed", _num(training.get("seed"))],
        ["loss (train, first → last epoch)", f"{_num(training.get('train_loss_first_epoch'))} → "
                                             f"{_num(training.get('train_loss_last_epoch'))}"],
        ["validation loss (last epoch)", _num(training.get("val_loss_last"))],
        ["non-finite steps skipped", _num(training.get("nonfinite_steps"))],
    ]
    facts_table = [
        ["base model", f"[{model['base_hub_id']}](https://huggingface.co/{model['base_hub_id']})"
         if model.get("base_hub_id") else f"`{model.get('base')}`"],
        ["architecture", f"{model.get('architecture')}" + (f", {model['parameters'] / 1e6:.3g} M parameters"
                                                          if model.get("parameters") else "")],
        ["audio", f"{_num(model.get('sample_rate'))} Hz, {_num(model.get('codebooks'))} codebooks"],
        ["licence", f"`{model.get('licence')}`. {model.get('licence_note', '')}"],
        ["run", f"`{facts['run']['name']}` (seed {facts['run']['seed']}, parameters "
                f"`{Path(facts['run']['params']).name if facts['run'].get('params') else 'built-in defaults'}`)"],
    ]
    dataset_ref = (f"[{dataset_repo}](https://huggingface.co/datasets/{dataset_repo})" if dataset_repo else
                   "the run's curated dataset, `01_curation/exports/hf/` (its card is `README.md` there)")
    tables = _eval_tables(ev) if ev else {}
    limitations = list(demo)
    if model.get("licence") == MUSICGEN_LICENCE:
        limitations.append("Non-commercial use only (CC-BY-NC 4.0, inherited from the MusicGen weights).")
    if ev and any("clips<min" in (r.get("flags") or "") or "rows<dim" in (r.get("flags") or "") for r in ev["fad"]):
        limitations.append("Some FAD rows are flagged (too few clips or embedding rows for a stable estimate): read "
                           "their intervals, not the point values.")
    limitations += [
        f"Trained on {_num(data.get('clips'))} clips ({_num(data.get('hours'))} h); genres and moods outside that "
        f"mix ({_share_text(data.get('genre_mix') or {})}) are not what it learnt.",
        "Text prompts describe mood, genre, instruments, tempo and key; the model has no notion of picture, "
        "timing to cuts or dialogue unless a cue plan tells it.",
        "Generated music can echo its training material; check the dataset's sources and licences before "
        "using outputs.",
    ]
    card = ModelCard.from_template(
        data_card, template_str=_template("model_card.md"), title=f"EchoScript MusicGen — run {facts['run']['name']}",
        demo=demo, facts_table=_table(["", ""], facts_table), usage=_usage_snippet(model, repo),
        repo=repo, published=repo_id is not None, data=data, dataset_ref=dataset_ref,
        genre_mix=_share_text(data.get("genre_mix") or {}), mood_mix=_share_text(data.get("mood_mix") or {}),
        truth_genre_mix=_share_text(data["truth_genre_mix"]) if data.get("truth_genre_mix") else None,
        truth_mood_mix=_share_text(data["truth_mood_mix"]) if data.get("truth_mood_mix") else None,
        drawn_mix=_share_text(data.get("drawn_mix") or {}) if data.get("drawn_mix") else None,
        recipe=_table(["setting", "value"], recipe), ev=ev, tables=tables,
        listening=_listening_text(facts.get("listening")), limitations=limitations,
        clips=_num(data.get("clips")), hours=_num(data.get("hours")), valid_clips=_num(data.get("valid_clips")),
        params=Path(facts["run"]["params"]).name if facts["run"].get("params") else "PARAMS.yaml")
    return _tidy(card)


def render_dataset_card(facts: dict[str, Any], *, repo_id: str | None = None, model_repo: str | None = None):
    """The dataset card of a run's curated dataset (a :class:`huggingface_hub.DatasetCard`)."""
    from huggingface_hub import DatasetCard, DatasetCardData

    d = facts.get("dataset") or {}
    cur, st, loud = d.get("curation") or {}, d.get("settings") or {}, d.get("loudness") or {}
    ann, ali = d.get("annotation"), d.get("alignment")
    sources = facts.get("sources") or []
    demo = facts["demo"]["dataset"]
    repo = repo_id or DATASET_PLACEHOLDER
    licences = sorted({s["hub_licence"] for s in sources}) or ["unknown"]
    other_names = sorted({s["licence"] for s in sources if s["hub_licence"] == "other"})
    tags = ["music", "film-score", "audio", "echoscript"] + ([DEMO_TAG, "synthetic"] if demo else [])
    n_clips = int(cur.get("n_clips") or 0)
    creators = ["machine-generated"]
    if ann and (ann.get("overrides") or {}).get("applied"):
        creators.append("expert-generated")
    data_card = DatasetCardData(
        license=licences if len(licences) > 1 else licences[0], pretty_name=f"EchoScript curated clips — run "
        f"{facts['run']['name']}", task_categories=["text-to-audio"], tags=tags,
        size_categories=[_size_category(n_clips)], annotations_creators=creators,
        configs=[{"config_name": "default",
                  "data_files": [{"split": theirs, "path": f"{theirs}/*.arrow"}
                                 for theirs in (d.get("hf_splits") or {}).values()]}])
    if other_names:
        data_card.license_name = "; ".join(other_names)
    splits = [[ours, theirs, _num((cur.get("tracks_per_split") or {}).get(ours)),
               _num((cur.get("clips_per_split") or {}).get(ours)), _num((d.get("split_hours") or {}).get(ours))]
              for ours, theirs in (d.get("hf_splits") or {}).items()]
    lic_counts = Counter(s["licence"] for s in sources)
    per_track = _table(["track", "source", "split", "clips", "licence", "attribution / url"],
                       [[s["track_id"], f"`{s['source']}`", s["split"], s["clips"], s["licence"],
                         " ".join(x for x in (s.get("attribution"), s.get("url")) if x)] for s in sources[:50]])
    accuracy_rows = []
    if ann:
        for name, acc in sorted((ann.get("accuracy") or {}).items()):
            accuracy_rows.append([name, f"{_num(acc.get('genre_accuracy'))} (majority "
                                        f"{_num(acc.get('genre_majority_baseline'))})",
                                  _num(acc.get("genre_macro_f1")), _num(acc.get("moods_macro_f1")),
                                  _num(acc.get("instruments_macro_f1")), _num(acc.get("n_clips"))])
    gate = (ali or {}).get("gate") or {}
    mix = d.get("mix") or {}
    n_mix = max(sum((mix.get("genre_counts") or {}).values()), 1)
    curation_rows = [
        ["clips", f"{_num(st.get('clip_s'))} s, " + (f"hop {_num(st.get('hop_s'))} s" if st.get("hop_s")
                                                      else "back to back") + f", {_num(st.get('sample_rate'))} Hz "
                                                                             f"{st.get('channels')}"],
        ["loudness", f"policy `{loud.get('policy')}`, target requested `{loud.get('target_requested')}`, chosen "
                     f"{_num(loud.get('target_lufs'))} LUFS under a {_num(loud.get('ceiling_dbtp'))} dBTP ceiling; "
                     f"{_num(loud.get('clips_reaching_target'))} clips reach it, {_num(loud.get('clips_limited'))} "
                     f"went through the limiter (at most {_num(st.get('max_limiting_db'))} dB)"],
        ["short cues", f"an input shorter than a clip but at least {_pct(st.get('short_cue_share'))} of it becomes "
                       f"one clip padded with silence ({_num(cur.get('short_cues_padded'))} here)"],
        ["dedupe", (f"on: exact and near-exact duplicates rejected (fingerprint correlation > "
                    f"{_num(st.get('dedupe_similarity'))})") if st.get("dedupe") else "off"],
        ["inputs", f"{_num(cur.get('n_inputs'))} files, {_num(cur.get('n_files_kept'))} kept, "
                   f"{_num(cur.get('n_skipped'))} skipped"
                   + (" (" + ", ".join(f"{k} {v}" for k, v in (cur.get("skipped_by_kind") or {}).items()) + ")"
                      if cur.get("skipped_by_kind") else "") + "; every skip with its reason in `skipped.csv`"],
        ["silent clips dropped", _num(cur.get("silent_clips_dropped"))],
    ]
    fa = d.get("features_accuracy") or {}
    card = DatasetCard.from_template(
        data_card, template_str=_template("dataset_card.md"),
        title=f"EchoScript curated clips — run {facts['run']['name']}", demo=demo, repo=repo,
        n_clips=_num(cur.get("n_clips")), n_tracks=_num(cur.get("n_tracks")), hours=_num(cur.get("clip_hours")),
        clip_s=_num(st.get("clip_s")), splits=_table(["split", "name here", "tracks", "clips", "hours"], splits),
        tracks_in_several_splits=d.get("tracks_in_several_splits"), seed=_num(st.get("seed")),
        split_shares=", ".join(f"{k} {_pct(v)}" for k, v in (st.get("splits") or {}).items()),
        split_from_folders=d.get("split_from_folders"), features=d.get("features") or [],
        lic_counts=_table(["licence", "tracks"], [[k, v] for k, v in lic_counts.most_common()]),
        per_track=per_track, n_sources=len(sources), unknown=lic_counts.get("unknown", 0),
        curation=_table(["setting", "value"], curation_rows),
        tempo=fa.get("tempo") or {}, key=fa.get("key") or {}, num=_num, pct=_pct,
        ann=ann, accuracy=_table(["tagger", "genre accuracy", "genre macro-F1", "moods macro-F1",
                                  "instruments macro-F1", "clips"], accuracy_rows),
        ali=ali, gate=gate, gate_enabled=d.get("gate_enabled"),
        genre_counts=_table(["genre", "clips", "share"],
                            [[g, c, _pct(c / n_mix)] for g, c in sorted((mix.get("genre_counts") or {}).items(),
                                                                         key=lambda kv: -kv[1])]),
        mood_mix=_share_text(mix.get("moods") or {}), labels_from=mix.get("labels_from"),
        missed=", ".join(f"{m['label']} ({m['field']}, F1 {_num(m['f1'])})" for m in (ann or {}).get("missed", [])),
        model_ref=(f"[{model_repo}](https://huggingface.co/{model_repo})" if model_repo else None),
        params=Path(facts["run"]["params"]).name if facts["run"].get("params") else "PARAMS.yaml")
    return _tidy(card)


def card_problems(card, kind: str, facts: dict[str, Any] | None = None) -> list[str]:
    """Why a card would be empty: required metadata keys it lacks, a body without text, or (given the facts) no
    measurements behind it (``04_finetuning/metrics.json`` for a model, curated clips for a dataset)."""
    data = card.data.to_dict()
    problems = [f"no '{k}' in its metadata" for k in REQUIRED_KEYS[kind] if not data.get(k)]
    if len(card.text.strip()) < 200:
        problems.append("no text")
    if facts is not None and kind == "model" and not facts.get("training"):
        problems.append("no training metrics (04_finetuning/metrics.json)")
    if facts is not None and kind == "dataset" and not ((facts.get("dataset") or {}).get("curation") or {}).get("n_clips"):
        problems.append("no curated clips (01_curation/metrics.json)")
    return problems


# =============================================================================================== writing
def _model_folder(root: Path) -> Path:
    return root / "04_finetuning" / "final"


def _dataset_folder(root: Path) -> Path:
    return root / "01_curation" / "exports" / "hf"


def _sources_csv(sources: list[dict]) -> str:
    buf = io.StringIO()
    cols = ["track_id", "source", "split", "clips", "hours", "licence", "hub_licence", "attribution", "url"]
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(sources)
    return buf.getvalue()


def _save_card(card, path: Path) -> Path:
    write_if_changed(path, str(card))
    return path


def write_cards(cfg: Config, *, model_repo: str | None = None, dataset_repo: str | None = None) -> dict[str, Path]:
    """Gather the run's facts and write ``<run>/card_facts.json`` and the cards of the folders that exist:
    ``04_finetuning/final/README.md`` and ``01_curation/exports/hf/README.md`` (+ ``sources.csv``).

    Returns ``{"model": path, "dataset": path}`` for the cards written. Files are rewritten only when their
    bytes change.
    """
    facts = gather_facts(cfg)
    root = cfg.paths.root
    old = root / FACTS_NAME
    if old.is_file():  # repos the folders were published to stay linked from the cards
        try:
            facts["published"] = read_json(old).get("published") or {}
        except (OSError, ValueError):
            pass
    atomic_write_text(root / FACTS_NAME, json_text(facts))
    return _write_from_facts(root, facts, model_repo=model_repo, dataset_repo=dataset_repo)


def _write_from_facts(root: Path, facts: dict, *, model_repo=None, dataset_repo=None) -> dict[str, Path]:
    published = facts.get("published") or {}
    model_repo, dataset_repo = model_repo or published.get("model"), dataset_repo or published.get("dataset")
    written: dict[str, Path] = {}
    if facts.get("model") and (_model_folder(root) / "config.json").is_file():
        written["model"] = _save_card(render_model_card(facts, repo_id=model_repo, dataset_repo=dataset_repo),
                                      _model_folder(root) / "README.md")
    export = _dataset_folder(root)
    if facts.get("dataset") and (export / "dataset_dict.json").is_file():
        write_if_changed(export / "sources.csv", _sources_csv(facts.get("sources") or []))
        written["dataset"] = _save_card(render_dataset_card(facts, repo_id=dataset_repo, model_repo=model_repo),
                                        export / "README.md")
    return written


def cards_html(root: str | os.PathLike) -> str:
    """Both cards of a run rendered as HTML (for ``report.html``): metadata in a collapsed block, body as
    Markdown. Empty string when the run has no card yet."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    root = Path(root)
    parts = []
    for kind, path in (("model", _model_folder(root) / "README.md"), ("dataset", _dataset_folder(root) / "README.md")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        meta, body = "", text
        m = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, flags=re.S)
        if m:
            meta, body = m.group(1), text[m.end():]
        rel = html.escape(os.path.relpath(path, root))
        parts.append(f"<section class='card' id='{kind}-card'><h2>{kind} card</h2>"
                     f"<p class='muted'>{rel}</p>"
                     f"<details><summary>metadata (YAML)</summary><pre>{html.escape(meta)}</pre></details>"
                     f"{md.render(body)}</section>")
    return "\n".join(parts)


