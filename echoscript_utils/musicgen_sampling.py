"""MusicGen sampling shared by the stages that generate audio (05 generation, 08 scoring): one batch of prompts,
long-form continuation past the model window, equal-power joins, the curated clips' output format, and the one
rendering job (:func:`render_files`) that both stages run: resolve the model, take its identity, skip files whose
sidecar records the same settings, load the model only when a file is missing, generate, standardise, and write
each WAV with its JSON sidecar.

Output loudness follows the curated clips' policy (:func:`corpus_loudness`): the same target — the one the
curation stage chose and recorded when ``curation.target_lufs`` is ``auto`` — the same true-peak ceiling and
the same limiter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import audio
from .artifacts import ensure_dir, read_json, text_hash, write_json
from .config import cpu_workers, resolve_device
from .errors import InputError
from .models import (
    frame_rate,
    is_melody,
    load_musicgen,
    model_identity,
    model_sample_rate,
    resolve_model,
    sampling_attention,
    text_token_limit,
)
from .parallel import fork_map

__all__ = ["RenderJob", "continue_long_form", "corpus_loudness", "crossfade_concat", "fit_length", "generate_batch",
           "render_files", "sidecar_matches", "standardise"]


def corpus_loudness(cfg, *, require_corpus: bool = True) -> dict[str, Any]:
    """The loudness policy of the curated clips: ``target_lufs`` (resolved: the curation stage's ``metrics.json``
    records the target ``auto`` chose), ``ceiling_dbtp``, ``policy``, ``max_limiting_db`` (keywords of
    :func:`echoscript_utils.audio.standardise_loudness`).

    Args:
        require_corpus: with ``target_lufs: auto`` and no curated corpus, raise (generation, whose files are
            compared with the corpus); ``False`` takes ``auto_target_max_lufs`` instead (scoring a script alone).

    Raises:
        InputError: ``target_lufs`` is ``auto``, the curation stage has not run and ``require_corpus`` is set.
    """
    c = cfg.curation
    target = c.target_lufs
    if target == "auto":
        path = cfg.paths.metrics("01_curation")
        try:
            target = read_json(path)["loudness"]["target_lufs"]
        except (OSError, ValueError, KeyError, TypeError):
            if not require_corpus:
                target = c.auto_target_max_lufs
            else:
                raise InputError(f"{path}: no loudness target recorded; curation.target_lufs is auto, so run "
                                 f"stage 01_curation first (echoscript run <params> --stages 01)") from None
    return {"target_lufs": None if target is None else float(target), "ceiling_dbtp": c.peak_limit_db,
            "policy": c.loudness_policy, "max_limiting_db": c.max_limiting_db}


def standardise(wav: np.ndarray, sr: int, *, sr_out: int, channels: str = "mono",
                target_lufs: float | None = -14.0, peak_db: float = -1.0, policy: str = "limit",
                max_limiting_db: float = 6.0, return_record: bool = False):
    """Bring model output ``[C, T]`` at ``sr`` Hz to the curated clips' format: resample (soxr HQ) to
    ``sr_out`` Hz, mono or stereo, and the curated clips' loudness policy
    (:func:`echoscript_utils.audio.standardise_loudness`: ``target_lufs`` under a ``peak_db`` dBTP ceiling, with
    the true-peak limiter when ``policy="limit"``; :func:`corpus_loudness` gives a run's values).

    Returns:
        float32 ``[C, T]`` at ``sr_out``; with ``return_record=True`` also the
        :class:`~echoscript_utils.audio.LoudnessRecord`.
    """
    x = audio.resample(np.asarray(wav, np.float32), sr, sr_out)
    x = audio.to_mono(x) if channels == "mono" else (x if x.shape[0] == 2 else np.repeat(audio.to_mono(x), 2, 0))
    x, rec = audio.standardise_loudness(x, sr_out, target_lufs=target_lufs, ceiling_dbtp=peak_db,
                                        policy=policy, max_limiting_db=max_limiting_db)
    return (x, rec) if return_record else x


def fit_length(wav: np.ndarray, n: int) -> np.ndarray:
    if wav.shape[-1] >= n:
        return wav[..., :n]
    return np.pad(wav, ((0, 0), (0, n - wav.shape[-1])))


def crossfade_concat(a: np.ndarray, b: np.ndarray, n_fade: int) -> np.ndarray:
    """Join ``a`` and ``b`` ``[C, T]`` with an equal-power crossfade of ``n_fade`` samples."""
    n_fade = int(min(n_fade, a.shape[-1], b.shape[-1]))
    if n_fade <= 0:
        return np.concatenate([a, b], axis=-1)
    t = np.linspace(0, np.pi / 2, n_fade, dtype=np.float32)
    mixed = a[:, -n_fade:] * np.cos(t) + b[:, :n_fade] * np.sin(t)
    return np.concatenate([a[:, :-n_fade], mixed, b[:, n_fade:]], axis=-1)


def generate_batch(model, processor, prompts: list[str], *, seed: int, duration_s: float,
                   guidance_scale: float = 3.0, do_sample: bool = True, top_k: int = 250, top_p: float = 0.0,
                   temperature: float = 1.0, chroma: np.ndarray | None = None,
                   audio_prompt: np.ndarray | None = None) -> np.ndarray:
    """Generate one batch; returns float32 ``[B, C, T]`` at the model's sample rate, exactly
    ``duration_s`` long (the continuation only, when ``audio_prompt`` is given). A prompt longer than the text
    encoder's limit (512 tokens for t5-base and the tiny models, :func:`~echoscript_utils.models.text_token_limit`)
    is cut to it.

    Args:
        prompts: ``B`` texts.
        seed: torch is seeded with it right before sampling.
        chroma: MusicGen-Melody only: ``[B, n_frames, 12]`` one-hot chroma (``echoscript_utils.melody``).
        audio_prompt: MusicGen only: ``[B, T_p]`` mono audio at the model rate to continue from.
    """
    import torch

    sr = model_sample_rate(model)
    n_tokens = int(np.ceil(duration_s * frame_rate(model))) + 4
    tokenizer = getattr(processor, "tokenizer", processor)
    # a prompt longer than the text encoder's limit is cut to it (512 tokens for t5-base and the tiny models)
    limit = text_token_limit(tokenizer, getattr(getattr(model, "config", None), "text_encoder", None))
    if audio_prompt is not None:
        # truncation goes to the text side only: flat, it would reach the feature extractor and cut the audio
        inputs = processor(text=list(prompts), audio=[a for a in audio_prompt], sampling_rate=sr, padding=True,
                           text_kwargs={"truncation": True, "max_length": limit}, return_tensors="pt")
    else:
        inputs = tokenizer(list(prompts), padding=True, truncation=True, max_length=limit, return_tensors="pt")
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in inputs.items()}
    if chroma is not None and is_melody(model):
        inputs["input_features"] = torch.as_tensor(chroma, dtype=torch.float32, device=device)
    kwargs = dict(do_sample=do_sample, guidance_scale=guidance_scale, max_new_tokens=n_tokens)
    if do_sample:
        kwargs.update(top_k=top_k or None, top_p=top_p or None, temperature=temperature)
    torch.manual_seed(seed)
    with torch.inference_mode(), sampling_attention(model):
        out = model.generate(**inputs, **kwargs)
    wav = out.float().cpu().numpy()
    if audio_prompt is not None:
        wav = wav[..., audio_prompt.shape[-1]:]
    return np.stack([fit_length(w, int(round(duration_s * sr))) for w in wav]).astype(np.float32)


def continue_long_form(model, processor, prompts: list[str], first: np.ndarray, *, seed: int, total_s: float,
                       window_s: float, context_s: float, crossfade_s: float, **gen_kwargs) -> np.ndarray:
    """Extend ``first`` ``[B, C, T]`` past the model's window: repeatedly condition on its last ``context_s``
    seconds, generate ``window_s − context_s`` new seconds, and crossfade them on, until ``total_s``."""
    sr = model_sample_rate(model)
    out = [w for w in first]
    step = max(window_s - context_s, 1.0)
    if crossfade_s >= step:
        raise ValueError(f"crossfade_s ({crossfade_s}) must be shorter than the {step:g} s each continuation adds "
                         "(window_s - context_s), or the audio never grows")
    k = 0
    while out[0].shape[-1] < int(total_s * sr):
        k += 1
        ctx = np.stack([w.mean(axis=0)[-int(context_s * sr):] for w in out])
        new = generate_batch(model, processor, prompts, seed=seed + 1000 * k, duration_s=step, audio_prompt=ctx,
                             **gen_kwargs)
        n_fade = int(crossfade_s * sr)
        pre = int(min(n_fade, new.shape[-1]))
        out = [crossfade_concat(w, nw, pre) for w, nw in zip(out, new)]
    return np.stack([fit_length(w, int(total_s * sr)) for w in out])


def sidecar_matches(path: Path, key: str) -> bool:
    """True when ``path`` (a JSON sidecar) and its WAV exist and the sidecar records ``settings_hash == key``;
    an unreadable or damaged sidecar counts as missing (the file is rendered again)."""
    if not path.with_suffix(".wav").is_file() or not path.is_file():
        return False
    try:
        side = read_json(path)
    except (OSError, ValueError):  # unreadable, or not JSON (a ValueError): render the file again
        return False
    return isinstance(side, dict) and side.get("settings_hash") == key


# --------------------------------------------------------------------------------------------- rendering
@dataclass
class RenderJob:
    """One sampling call and the files it makes.

    Attributes:
        prompts: ``B`` texts, one per file.
        seed: the torch seed of the call.
        stems: ``B`` file stems (``<stem>.wav`` + ``<stem>.json``).
        key_parts: per file, what its skip key hashes besides the model identity (prompt, seed, settings …).
        records: per file, what its sidecar records besides the fields every sidecar has.
        length_s: cut the standardised audio to this many seconds (``None``: keep the rendered length).
    """

    prompts: list[str]
    seed: int
    stems: list[str]
    key_parts: list[tuple]
    records: list[dict[str, Any]]
    length_s: float | None = None


#: ``render(model, processor, job) -> [B, C, T]`` float audio at the model's rate, one row per file of ``job``.
Renderer = Callable[[Any, Any, RenderJob], np.ndarray]


def render_files(cfg, label: str, ref: str, jobs: list[RenderJob], *, out_dir: Path, settings: dict[str, Any],
                 render: Renderer, duration_field: str = "duration_s", loudness_record: bool = True,
                 desc: str | None = None, progress: bool = True,
                 on_job: Callable[[RenderJob], None] | None = None) -> list[tuple[dict[str, Any], bool]]:
    """Render every job's files for one model into ``out_dir/<label>/``; the one rendering job of stages 05 and 08.

    The model reference is resolved and identified first (:func:`~echoscript_utils.models.model_identity`); a
    job whose files all have a sidecar recording the same ``settings_hash`` (the identity hashed with the file's
    ``key_parts``) is skipped, and the model is loaded (``run.device``) only when some job is not. Rendered audio
    is brought to the curated clips' format (:func:`standardise`: ``curation.sample_rate``, ``curation.channels``,
    ``curation.peak_limit_db``, and ``settings``' ``target_lufs``, ``loudness_policy``, ``max_limiting_db``),
    cut to ``length_s`` when given, and written as a WAV with a JSON sidecar holding the job's record plus
    ``model``, ``model_id``, ``checkpoint``, ``settings``, ``settings_hash``, ``duration_field`` (seconds of the
    file), ``sample_rate``, ``model_sample_rate``, ``lufs``, ``peak_db``, ``wall_time_s`` (rendering seconds per
    file), ``file`` and, with ``loudness_record``, ``loudness`` (:class:`~echoscript_utils.audio.LoudnessRecord`).

    On a CPU with ``run.num_workers`` > 1 the jobs to render are shared among that many forked processes of one
    thread each (:func:`~echoscript_utils.parallel.fork_map`; the model is loaded once, before the fork); each job
    seeds its own sampling, so the files are those one process writes. ``on_job`` is called here with a job before
    it is rendered, or, with workers, with the first job (in job order) that failed, before its error is raised.

    Returns:
        One ``(sidecar as read back, rendered now)`` pair per file, in job order.
    """
    from tqdm.auto import tqdm

    folder = ensure_dir(Path(out_dir) / label)
    path = resolve_model(ref, cache_dir=cfg.paths.models, seed=cfg.seed)
    identity = model_identity(path, seed=cfg.seed)
    c = cfg.curation
    sr_out = c.sample_rate
    keyed = [[text_hash(identity, *parts) for parts in job.key_parts] for job in jobs]
    todo = [not all(sidecar_matches(folder / f"{stem}.json", k) for stem, k in zip(job.stems, keys, strict=True))
            for job, keys in zip(jobs, keyed, strict=True)]
    pending = [i for i, t in enumerate(todo) if t]
    bar = tqdm(total=sum(len(j.stems) for j in jobs), desc=desc or label, disable=not progress, leave=False)
    bar.update(sum(len(j.stems) for j, t in zip(jobs, todo, strict=True) if not t))
    if pending:
        model, processor = load_musicgen(path, cache_dir=cfg.paths.models, device=resolve_device(cfg.run.device),
                                         seed=cfg.seed)
        sr_model = model_sample_rate(model)

        def write(i: int) -> None:
            job = jobs[i]
            t0 = time.perf_counter()
            wavs = render(model, processor, job)
            wall = (time.perf_counter() - t0) / len(job.stems)
            for stem, key, record, wav in zip(job.stems, keyed[i], job.records, wavs, strict=True):
                std, loud = standardise(wav, sr_model, sr_out=sr_out, channels=c.channels,
                                        target_lufs=settings["target_lufs"], peak_db=c.peak_limit_db,
                                        policy=settings["loudness_policy"],
                                        max_limiting_db=settings["max_limiting_db"], return_record=True)
                if job.length_s is not None:  # exactly the job's length (resampling may leave a sample short)
                    n = int(round(float(job.length_s) * sr_out))
                    std = np.pad(std[..., :n], [(0, 0)] * (std.ndim - 1) + [(0, max(n - std.shape[-1], 0))])
                wav_path = folder / f"{stem}.wav"
                audio.write(wav_path, std, sr_out)
                side = {**record, "model": label, "model_id": ref, "checkpoint": identity, "settings": settings,
                        "settings_hash": key, duration_field: std.shape[-1] / sr_out, "sample_rate": sr_out,
                        "model_sample_rate": sr_model, "lufs": audio.loudness(std, sr_out),
                        "peak_db": audio.peak_db(std), "wall_time_s": wall, "file": wav_path.name}
                if loudness_record:
                    side["loudness"] = loud.to_dict()
                write_json(wav_path.with_suffix(".json"), side)

        workers = min(cpu_workers(cfg), len(pending))
        if workers <= 1:
            for i in pending:
                if on_job is not None:
                    on_job(jobs[i])
                write(i)
                bar.update(len(jobs[i].stems))
        else:
            def attempt(i: int) -> Exception | None:  # in a worker: hand a failure back with its job
                try:
                    write(i)
                except Exception as exc:  # noqa: BLE001 (raised below, in job order, after on_job names it)
                    return exc
                return None

            failures = fork_map(attempt, pending, num_workers=workers,
                                on_result=lambda k, _: bar.update(len(jobs[pending[k]].stems)))
            for i, exc in zip(pending, failures, strict=True):
                if exc is not None:
                    if on_job is not None:
                        on_job(jobs[i])
                    bar.close()
                    raise exc
    bar.close()
    return [(read_json(folder / f"{stem}.json"), t) for job, t in zip(jobs, todo, strict=True) for stem in job.stems]
