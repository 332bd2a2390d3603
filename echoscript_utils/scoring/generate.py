"""Cue audio: one WAV + JSON sidecar per spotted scene, seed and model, extended past the model window.

A cue is generated at its full timeline length (scene + crossfade tail, see :mod:`.timeline`): the first
``scoring.window_s`` seconds in one call, the rest by continuation from its own last seconds (MusicGen) or, for
the melody model, by further windows that follow the leitmotif's chroma on from where the last one stopped,
joined with an equal-power crossfade. Output is standardised exactly like the generation stage's files (sample
rate, channels, loudness target and peak ceiling of the ``curation`` section).

Reruns skip a cue whose sidecar records the same model identity, prompt, seed, length, sampling settings and
leitmotif (its ``settings_hash``), as the generation stage does.

Sampling, continuation and the rendering job (model identity, skip check, lazy load, output format, WAV +
sidecar) are shared with the generation stage through :mod:`echoscript_utils.musicgen_sampling`
(:func:`~echoscript_utils.musicgen_sampling.render_files`; no stage imports another).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import ensure_dir
from ..captions import build_caption
from ..errors import ConfigError, InputError
from ..melody import CHROMA_FRAME_RATE, chroma_from_midi, demo_sketch, n_chroma_frames
from ..models import is_melody, model_sample_rate
from ..musicgen_sampling import (
    RenderJob,
    continue_long_form,
    corpus_loudness,
    crossfade_concat,
    generate_batch,
    render_files,
)

__all__ = ["BASELINE_LABEL", "FINETUNED_LABEL", "LEITMOTIF_LABEL", "build_caption", "cue_settings",
           "generate_cues", "leitmotif_chroma", "model_label", "scoring_models"]

BASELINE_LABEL = "musicgen"
FINETUNED_LABEL = "echoscript"
LEITMOTIF_LABEL = "leitmotif"


def cue_settings(cfg) -> dict[str, Any]:
    """What every cue records (and whose change makes a rerun regenerate it)."""
    g, c, s = cfg.generation, cfg.curation, cfg.scoring
    loud = corpus_loudness(cfg, require_corpus=False)  # the corpus's level when curated, else the auto cap
    return {"guidance_scale": g.guidance_scale, "do_sample": g.do_sample, "top_k": g.top_k, "top_p": g.top_p,
            "temperature": g.temperature, "window_s": s.window_s,
            "continuation_context_s": g.continuation_context_s, "join_crossfade_s": g.crossfade_s,
            "output_sample_rate": c.sample_rate, "output_channels": c.channels, "target_lufs": loud["target_lufs"],
            "peak_limit_db": c.peak_limit_db, "loudness_policy": loud["policy"],
            "max_limiting_db": loud["max_limiting_db"]}


def model_label(ref: str, cfg) -> str:
    """``musicgen`` for the baseline, ``echoscript`` for the run's fine-tuned model, else a folder-safe name."""
    final = cfg.paths.finetuning / "final"
    if str(ref) == str(cfg.generation.baseline_model):
        return BASELINE_LABEL
    try:
        if Path(ref).resolve() == final.resolve():
            return FINETUNED_LABEL
    except OSError:  # pragma: no cover
        pass
    name = Path(str(ref).rstrip("/")).name or str(ref)
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)


def scoring_models(cfg, refs: list[str] | None = None) -> dict[str, str]:
    """``{label: model reference}`` in scoring order (the first one's first seed becomes ``score.wav``).

    ``refs`` (the CLI's ``--model``) or ``scoring.models`` when given; otherwise the run's fine-tuned
    ``04_finetuning/final`` when it exists (plus the baseline when ``scoring.compare_baseline``), else the
    baseline ``generation.baseline_model``.
    """
    refs = list(refs or cfg.scoring.models or [])
    if refs:
        plan: dict[str, str] = {}
        for r in refs:
            label = model_label(r, cfg)
            if label in plan:
                raise ConfigError(f"model {r!r} given twice (as {label!r}); pass each model once")
            plan[label] = str(r)
        return plan
    final = cfg.paths.finetuning / "final"
    if (final / "config.json").is_file():
        plan = {FINETUNED_LABEL: str(final)}
        if cfg.scoring.compare_baseline:
            plan[BASELINE_LABEL] = cfg.generation.baseline_model
        return plan
    return {BASELINE_LABEL: cfg.generation.baseline_model}


def leitmotif_chroma(cfg, out_dir: Path) -> tuple[np.ndarray, str]:
    """The leitmotif as chroma ``[n_frames, 12]`` (MusicGen-Melody's 7.8125 Hz frames) and its label.

    ``scoring.leitmotif_midi``, or a generated demo theme written to ``out_dir/leitmotif.mid``.
    """

    midi = cfg.scoring.leitmotif_midi
    if midi is None:
        midi = demo_sketch(ensure_dir(out_dir) / "leitmotif.mid", seed=cfg.seed)
    if not Path(midi).is_file():
        raise InputError(f"{midi}: leitmotif MIDI not found; set scoring.leitmotif_midi to a .mid file")
    chroma = chroma_from_midi(midi)
    if not chroma.any():
        raise InputError(f"{midi}: the MIDI file has no pitched notes to carry as a leitmotif")
    return chroma, f"midi:{Path(midi).name}"


def _theme_frames(theme: np.ndarray, start_s: float, duration_s: float) -> np.ndarray:
    """The looping theme's chroma from ``start_s`` for ``duration_s`` (cue time), as melody-model frames."""

    n = n_chroma_frames(duration_s)
    first = int(round(start_s * CHROMA_FRAME_RATE))
    idx = (first + np.arange(n)) % len(theme)
    return theme[idx]


def _render_cue(model, processor, prompt: str, *, seed: int, cue_s: float, cfg, theme: np.ndarray | None):
    """One cue ``[C, T]`` at the model rate, ``cue_s`` long."""

    g, s = cfg.generation, cfg.scoring
    kw = dict(guidance_scale=g.guidance_scale, do_sample=g.do_sample, top_k=g.top_k, top_p=g.top_p,
              temperature=g.temperature)
    window = min(s.window_s, cue_s)
    melody = is_melody(model)
    chroma = None if theme is None or not melody else _theme_frames(theme, 0.0, window)[None]
    wav = generate_batch(model, processor, [prompt], seed=seed, duration_s=window, chroma=chroma, **kw)
    if cue_s <= window + 1e-6:
        return wav[0]
    sr = model_sample_rate(model)
    ctx = min(g.continuation_context_s, window / 2)
    step = max(window - ctx, 1.0)  # new seconds per continuation call (as continue_long_form computes it)
    fade = min(g.crossfade_s, step / 2)  # each join must leave new audio, or the loop below never ends
    if not melody:
        return continue_long_form(model, processor, [prompt], wav, seed=seed, total_s=cue_s, window_s=window,
                                  context_s=ctx, crossfade_s=fade, **kw)[0]
    out = wav[0]  # melody model: further windows along the theme, crossfaded on
    fade = min(g.crossfade_s, window / 2)
    k = 0
    while out.shape[-1] < int(round(cue_s * sr)):
        k += 1
        at = out.shape[-1] / sr - fade
        chroma = None if theme is None else _theme_frames(theme, at, window)[None]
        nxt = generate_batch(model, processor, [prompt], seed=seed + 1000 * k, duration_s=window, chroma=chroma,
                             **kw)[0]
        out = crossfade_concat(out, nxt, int(fade * sr))
    return out[..., : int(round(cue_s * sr))]


def generate_cues(cfg, label: str, ref: str, cues: list[dict[str, Any]], *, out_dir: Path, seeds: list[int],
                  theme: np.ndarray | None = None, leitmotif: str | None = None, script: str = "",
                  progress: bool = True, step: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Generate every cue × seed for one model into ``out_dir/<label>/`` and return one row per file.

    Args:
        cues: one dict per spotted scene with ``scene``, ``heading``, ``prompt``, ``cue_s`` (and anything else
            to record in the sidecar: mood, intensity, bpm, timing …).
        seeds: each seed gives one full score; cue ``k`` of seed ``s`` samples with torch seed
            ``1000 × s + scene`` (the same for every model, so baseline and fine-tuned share their noise draws).
        theme: leitmotif chroma (:func:`leitmotif_chroma`) for a melody model; ignored by plain MusicGen.
        script: the screenplay's content hash (recorded, not part of the skip key: the cue's prompt and length
            are).

        step: updated with the ``scene`` being rendered, so a failure can name it.

    Raises:
        ConfigError: a ``theme`` for a model that is not MusicGen-Melody (when a cue has to be rendered).
    """
    settings = cue_settings(cfg)

    def render(model, processor, job: RenderJob) -> np.ndarray:
        if theme is not None and not is_melody(model):
            raise ConfigError(f"scoring.leitmotif needs a MusicGen-Melody model, but {ref!r} is plain "
                              "MusicGen; set scoring.leitmotif_model (e.g. facebook/musicgen-melody)")
        return _render_cue(model, processor, job.prompts[0], seed=job.seed, cue_s=job.length_s, cfg=cfg,
                           theme=theme)[None]

    jobs, order = [], [(seed, cue) for seed in seeds for cue in cues]
    for seed, cue in order:
        cue_seed = 1000 * int(seed) + int(cue["scene"])
        jobs.append(RenderJob(
            prompts=[cue["prompt"]], seed=cue_seed, stems=[f"cue{int(cue['scene']):03d}_s{seed}"],
            key_parts=[(cue["prompt"], cue_seed, round(float(cue["cue_s"]), 3), settings, leitmotif)],
            records=[{**cue, "seed": seed, "cue_seed": cue_seed, "leitmotif": leitmotif, "script_hash": script}],
            length_s=float(cue["cue_s"])))
    files = render_files(cfg, label, ref, jobs, out_dir=out_dir, settings=settings, render=render,
                         duration_field="duration_file_s", loudness_record=False, desc=f"cues {label}",
                         progress=progress, on_job=None if step is None else
                         lambda job: step.update(scene=int(job.records[0]["scene"])))
    return [{"model": label, "seed": seed, "scene": int(cue["scene"]), "file": f"{label}/{side['file']}",
             "lufs": side.get("lufs"), "wall_time_s": side.get("wall_time_s"), "generated": generated}
            for (seed, cue), (side, generated) in zip(order, files, strict=True)]
