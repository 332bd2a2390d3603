"""Generation: baseline and fine-tuned scores for script scenarios under identical prompts, seeds and settings,
plus melody / MIDI-sketch control through MusicGen-Melody and long-form continuation.

Every output is ``<run>/05_generation/<model_label>/<name>.wav`` with a JSON sidecar of the same stem that records
the prompt, scenario, seed, model id and checkpoint identity, every generation setting, duration, loudness and
wall time. The model's 32 kHz output is standardised exactly like the curated reference clips (sample rate,
channels, and the loudness policy: the target the curation stage used, read from its ``metrics.json`` when
``target_lufs`` is ``auto``, the same true-peak ceiling and limiter), so FAD compares like with like.

Seeds: items are generated in batches of ``generation.batch_size`` prompts; before each batch ``torch`` is seeded
with the item seed, and every model sees the same batches in the same order, so a given seed gives the same audio
on CPU for a given model, and the baseline and fine-tuned models are compared on identical noise draws.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import audio
from .artifacts import ensure_dir, write_metrics
from .captions import build_caption
from .config import cpu_workers
from .dataset import load_metadata
from .errors import InputError
from .melody import chroma_from_audio, chroma_from_midi, demo_sketch, n_chroma_frames
from .musicgen_sampling import (
    RenderJob,
    continue_long_form,
    corpus_loudness,
    generate_batch,
    render_files,
    standardise,
)

__all__ = [
    "GenerationItem",
    "adherence_table",
    "continue_long_form",
    "demo_sketch",
    "generate_batch",
    "generation_items",
    "generation_settings",
    "load_scenarios",
    "model_plan",
    "run_generation",
    "run_sketch",
    "standardise",
]

BASELINE_LABEL = "musicgen"
FINETUNED_LABEL = "echoscript"


@dataclass
class GenerationItem:
    """One thing to score: a prompt with its scenario name and the stem its files get."""

    name: str  # file stem (without the seed)
    prompt: str
    scenario: str  # scenario name, or "eval" for the eval split's prompts
    source: str  # "scenario" or "eval:<clip_id>"


# --------------------------------------------------------------------------------------------- inputs
def load_scenarios(path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Scenario list from YAML (default: the paper's five in ``echoscript_utils/data/scenarios.yaml``).

    Each entry: ``name``, ``scene`` (script-style text) and optional ``genre``, ``moods``, ``instruments``,
    ``bpm``, ``key``; its prompt is composed with the same caption template as the training captions.
    """
    import yaml

    if path is None:
        text = resources.files("echoscript_utils").joinpath("data/scenarios.yaml").read_text(encoding="utf-8")
        where = "scenarios.yaml"
    else:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"{p}: scenario file not found; pass a YAML list of scenarios (see data/scenarios.yaml)")
        text, where = p.read_text(encoding="utf-8"), str(p)
    data = yaml.safe_load(text)
    if not isinstance(data, list) or not data:
        raise InputError(f"{where}: expected a non-empty YAML list of scenarios")
    seen = set()
    for i, s in enumerate(data, 1):
        if not isinstance(s, dict) or not s.get("name") or not s.get("scene"):
            raise InputError(f"{where}: scenario {i} needs a 'name' and a 'scene'")
        if s["name"] in seen:
            raise InputError(f"{where}: scenario name {s['name']!r} appears twice")
        seen.add(s["name"])
    return data


def _scenario_prompt(s: dict[str, Any]) -> str:

    return build_caption({"scene": s["scene"], "genre": s.get("genre"), "moods": list(s.get("moods") or []),
                          "instruments": list(s.get("instruments") or []), "bpm": s.get("bpm"),
                          "key": s.get("key")})


def generation_items(cfg) -> list[GenerationItem]:
    """The scenarios plus (if ``generation.use_eval_prompts``) up to ``max_eval_prompts`` captions of the eval
    split's clips, read from the newest metadata of the run."""
    items = [GenerationItem(name=s["name"], prompt=_scenario_prompt(s), scenario=s["name"], source="scenario")
             for s in load_scenarios(cfg.generation.scenarios)]
    g = cfg.generation
    if g.use_eval_prompts and g.max_eval_prompts > 0:

        for stage in ("03_alignment", "02_annotation", "01_curation"):
            f = cfg.paths.stage(stage) / "metadata.jsonl"
            if f.is_file():
                meta = load_metadata(f)
                meta = meta[meta["split"] == "eval"].sort_values("clip_id")
                for rec in meta.head(g.max_eval_prompts).to_dict("records"):
                    text = rec.get("caption") or rec.get("prompt")
                    if isinstance(text, str) and text.strip():
                        items.append(GenerationItem(name=f"eval-{rec['clip_id']}", prompt=text, scenario="eval",
                                                    source=f"eval:{rec['clip_id']}"))
                break
    return items


def model_plan(cfg, *, require_finetuned: bool = True) -> dict[str, str]:
    """``{label: model reference}``: the baseline, the run's fine-tuned ``final/``, and ``generation.models``."""
    final = cfg.paths.finetuning / "final"
    plan = {BASELINE_LABEL: cfg.generation.baseline_model}
    if (final / "config.json").is_file():
        plan[FINETUNED_LABEL] = str(final)
    elif require_finetuned:
        raise InputError(f"{final}: no fine-tuned model; run stage 04_finetuning first "
                         f"(echoscript run <params> --stages 04)")
    plan.update(cfg.generation.models)
    return plan


def generation_settings(cfg) -> dict[str, Any]:
    """The settings every file records (and whose change makes a rerun regenerate)."""
    g, c = cfg.generation, cfg.curation
    loud = corpus_loudness(cfg)
    return {
        "duration_s": g.duration_s, "guidance_scale": g.guidance_scale, "do_sample": g.do_sample,
        "top_k": g.top_k, "top_p": g.top_p, "temperature": g.temperature, "batch_size": g.batch_size,
        "long_form_s": g.long_form_s, "continuation_context_s": g.continuation_context_s,
        "crossfade_s": g.crossfade_s, "output_sample_rate": c.sample_rate, "output_channels": c.channels,
        "target_lufs": loud["target_lufs"], "peak_limit_db": c.peak_limit_db, "loudness_policy": loud["policy"],
        "max_limiting_db": loud["max_limiting_db"],
    }


def _chunks(seq, n):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def generate_for_model(cfg, label: str, ref: str, items: list[GenerationItem], *, out_dir: Path,
                       progress: bool = True, chroma: np.ndarray | None = None,
                       melody_source: str | None = None) -> pd.DataFrame:
    """Generate every item × seed for one model into ``out_dir/<label>/``; skips files whose sidecar already
    records the same model identity, prompt, seed and settings. Returns one row per file."""
    g = cfg.generation
    settings = generation_settings(cfg)
    window = min(g.duration_s, 30.0) if g.long_form_s else g.duration_s
    gen_kwargs = dict(guidance_scale=g.guidance_scale, do_sample=g.do_sample, top_k=g.top_k, top_p=g.top_p,
                      temperature=g.temperature)

    def render(model, processor, job: RenderJob) -> np.ndarray:
        batch_chroma = None if chroma is None else np.repeat(chroma[None], len(job.prompts), axis=0)
        wavs = generate_batch(model, processor, job.prompts, seed=job.seed, duration_s=window, chroma=batch_chroma,
                              **gen_kwargs)
        if g.long_form_s and g.long_form_s > window:
            wavs = continue_long_form(model, processor, job.prompts, wavs, seed=job.seed, total_s=g.long_form_s,
                                      window_s=window, context_s=g.continuation_context_s,
                                      crossfade_s=g.crossfade_s, **gen_kwargs)
        return wavs

    jobs = [RenderJob(prompts=[it.prompt for it in batch], seed=seed,
                      stems=[f"{it.name}_s{seed}" for it in batch],
                      key_parts=[(it.prompt, seed, settings, melody_source) for it in batch],
                      records=[{"prompt": it.prompt, "scenario": it.scenario, "source": it.source, "seed": seed,
                                "melody": melody_source} for it in batch])
            for seed in g.seeds for batch in _chunks(items, g.batch_size)]
    files = render_files(cfg, label, ref, jobs, out_dir=out_dir, settings=settings, render=render,
                         desc=f"generate {label}", progress=progress)
    return pd.DataFrame([{k: side.get(k) for k in ("model", "scenario", "seed", "file", "duration_s", "lufs",
                                                   "wall_time_s", "prompt")} | {"generated": generated}
                         for side, generated in files])


# --------------------------------------------------------------------------------------------- sketch
def run_sketch(cfg, *, out_dir: Path | None = None, progress: bool = True) -> pd.DataFrame:
    """MIDI-sketch control: chroma of ``generation.melody_midi`` (or a generated demo sketch) conditions
    ``generation.melody_model`` on the scenarios; files go to ``05_generation/sketch/`` with sidecars."""

    g = cfg.generation
    if not g.melody_model:
        return pd.DataFrame()
    out_dir = out_dir or cfg.paths.generation
    midi = g.melody_midi or demo_sketch(ensure_dir(out_dir) / "sketch.mid", seed=cfg.seed)
    if not Path(midi).is_file():
        raise InputError(f"{midi}: MIDI sketch not found; set generation.melody_midi to a .mid file")
    window = min(g.duration_s, 30.0)
    chroma = chroma_from_midi(midi, n_frames=n_chroma_frames(window))
    items = [GenerationItem(name=s["name"], prompt=_scenario_prompt(s), scenario=s["name"], source="scenario")
             for s in load_scenarios(g.scenarios)][: max(1, g.sketch_scenarios)]
    return generate_for_model(cfg, "sketch", g.melody_model, items, out_dir=out_dir, progress=progress,
                              chroma=chroma, melody_source=f"midi:{Path(midi).name}")


# --------------------------------------------------------------------------------------------- the stage
@dataclass
class GenerationResult:
    files: pd.DataFrame  # one row per generated file (all models)
    speed: pd.DataFrame  # per model: seconds of audio per second of compute
    items: list[GenerationItem]
    plan: dict[str, str]
    metrics: dict[str, Any]
    out_dir: Path  # the stage folder; files are out_dir/<model>/<file>


def run_generation(cfg, *, progress: bool = True) -> GenerationResult:
    """The 05_generation stage: every model × item × seed, standardised, with sidecars; returns the file table
    and generation speed per model."""
    out_dir = ensure_dir(cfg.paths.generation)
    items = generation_items(cfg)
    plan = model_plan(cfg)
    frames = [generate_for_model(cfg, label, ref, items, out_dir=out_dir, progress=progress)
              for label, ref in plan.items()]
    files = pd.concat(frames, ignore_index=True)
    speed = (files.groupby("model")
             .apply(lambda d: pd.Series({"files": len(d), "audio_s": d["duration_s"].sum(),
                                         "mean_wall_s": d["wall_time_s"].mean(),
                                         "audio_s_per_s": d["duration_s"].sum() / max(d["wall_time_s"].sum(), 1e-9)}),
                    include_groups=False)
             .reset_index())
    metrics = {
        "models": plan,
        "n_items": len(items),
        "n_seeds": len(cfg.generation.seeds),
        "n_files": int(len(files)),
        "duration_s": cfg.generation.duration_s if not cfg.generation.long_form_s else cfg.generation.long_form_s,
        "settings": generation_settings(cfg),
        "lufs_mean": float(files["lufs"].mean()),
        "speed_audio_s_per_s": {r["model"]: float(r["audio_s_per_s"]) for r in speed.to_dict("records")},
    }
    return GenerationResult(files=files, speed=speed, items=items, plan=plan, metrics=metrics, out_dir=out_dir)


def chroma_agreement(sketch_chroma: np.ndarray, audio_chroma: np.ndarray) -> float:
    """Share of frames where the sketch sounds a note and the audio's strongest pitch class is the same."""
    n = min(len(sketch_chroma), len(audio_chroma))
    s, a = sketch_chroma[:n], audio_chroma[:n]
    active = s.sum(axis=1) > 0
    if not active.any():
        return float("nan")
    return float((s[active].argmax(axis=1) == a[active].argmax(axis=1)).mean())


def pairs_table(result: GenerationResult, *, seed: int | None = None) -> pd.DataFrame:
    """One row per scenario (first seed by default) and one path column per model, for side-by-side players
    and spectrograms."""
    f = result.files[result.files["scenario"] != "eval"]
    seed = f["seed"].min() if seed is None else seed
    f = f[f["seed"] == seed]
    base = result.out_dir
    wide = (f.assign(path=[str(base / m / name) for m, name in zip(f["model"], f["file"])])
            .pivot(index="scenario", columns="model", values="path"))
    order = [i.scenario for i in result.items if i.scenario in wide.index]
    wide = wide.reindex(list(dict.fromkeys(order)))
    return wide[list(result.plan)].reset_index()


def sketch_chroma_pair(cfg, sketch: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, Path]:
    """The MIDI sketch's chroma and the chroma of the first sketch-conditioned file, over the generated window.

    Returns ``(sketch_chroma [n_frames, 12], audio_chroma [n_frames, 12], audio_path)`` at the melody model's
    chroma frame rate (:data:`echoscript_utils.melody.CHROMA_FRAME_RATE`).
    """
    sketch_chroma = chroma_from_midi(cfg.generation.melody_midi or cfg.paths.generation / "sketch.mid",
                                     n_frames=n_chroma_frames(min(cfg.generation.duration_s, 30.0)))
    first = cfg.paths.generation / "sketch" / sketch["file"].iloc[0]
    audio_chroma = chroma_from_audio(*audio.load(first), n_frames=len(sketch_chroma))
    return sketch_chroma, audio_chroma, first


def adherence_table(cfg, *files: pd.DataFrame, progress: bool = True) -> pd.DataFrame:
    """Does each generated file follow its scenario's brief? Writes and returns ``05_generation/adherence.csv``
    (``model, cue, metric, value``; ``cue`` = file stem, the same for every model) for every file listed in
    ``files`` (tables with columns ``model``, ``file``: ``run_generation(...).files``, ``run_sketch(...)``).

    The brief is the scenario's tempo and key (``scenarios.yaml``), the generated length, the loudness policy the
    file was standardised to and, for the sketch-conditioned files, the MIDI sketch (see
    :mod:`echoscript_utils.adherence`); eval-split prompts have no tempo or key to follow.
    """
    from dataclasses import replace

    from .adherence import brief_from_sidecar, score_folder, write_adherence
    from .artifacts import read_json

    out_dir = cfg.paths.generation
    scenarios = {s["name"]: s for s in load_scenarios(cfg.generation.scenarios)}
    listed = pd.concat([f for f in files if len(f)], ignore_index=True)
    wavs = [out_dir / m / f for m, f in zip(listed["model"], listed["file"])]
    briefs = {}
    for wav in wavs:
        side = read_json(wav.with_suffix(".json"))
        brief = brief_from_sidecar(side, folder=wav.parent, midi=cfg.generation.melody_midi)
        plan = scenarios.get(side.get("scenario"), {})
        briefs[wav] = replace(brief, bpm=plan.get("bpm"), key=plan.get("key"))
    table = score_folder(out_dir, files=wavs, briefs=briefs, progress=progress,
                             num_workers=cpu_workers(cfg))
    write_adherence(table, out_dir / "adherence.csv")
    return table


def run(cfg, *, progress: bool = True) -> GenerationResult:
    """Stage 05 in one call: every model's files, the MIDI-sketch files when a melody model is set, the
    adherence table (``adherence.csv``) and ``05_generation/metrics.json``."""
    import time

    from .adherence import adherence_means, validate_demo

    result = run_generation(cfg, progress=progress)
    metrics = dict(result.metrics)
    sketch = pd.DataFrame()
    if cfg.generation.melody_model:
        sketch = run_sketch(cfg, progress=progress)
        metrics["sketch_files"] = int(len(sketch))
        if len(sketch):
            metrics["sketch_chroma_agreement"] = chroma_agreement(*sketch_chroma_pair(cfg, sketch)[:2])
    t0 = time.perf_counter()
    table = adherence_table(cfg, result.files, sketch, progress=progress)
    metrics["adherence"] = adherence_means(table)
    metrics["adherence_seconds"] = round(time.perf_counter() - t0, 2)
    metrics["adherence_validation"] = validate_demo(cfg, progress=progress).set_index("metric").to_dict("index")
    write_metrics(cfg.paths.generation, metrics)
    return result
