"""MusicGen sampling shared by the stages that generate audio (05 generation, 08 scoring): one batch of prompts,
long-form continuation past the model window, equal-power joins, the curated clips' output format, and the
sidecar check that lets reruns skip finished files.

Output loudness follows the curated clips' policy (:func:`corpus_loudness`): the same target — the one the
curation stage chose and recorded when ``curation.target_lufs`` is ``auto`` — the same true-peak ceiling and
the same limiter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from . import audio
from .artifacts import read_json
from .errors import InputError
from .models import frame_rate, model_sample_rate, text_token_limit

__all__ = ["continue_long_form", "corpus_loudness", "crossfade_concat", "fit_length", "generate_batch",
           "sidecar_matches", "standardise"]


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


def standardise(wav: np.ndarray, sr: int, *, sample_rate: int, channels: str = "mono",
                target_lufs: float | None = -14.0, peak_db: float = -1.0, policy: str = "limit",
                max_limiting_db: float = 6.0, return_record: bool = False):
    """Bring model output ``[C, T]`` at ``sr`` to the curated clips' format: resample (soxr HQ) to
    ``sample_rate``, mono or stereo, and the curated clips' loudness policy
    (:func:`echoscript_utils.audio.standardise_loudness`: ``target_lufs`` under a ``peak_db`` dBTP ceiling, with
    the true-peak limiter when ``policy="limit"``; :func:`corpus_loudness` gives a run's values).

    Returns:
        float32 ``[C, T]`` at ``sample_rate``; with ``return_record=True`` also the
        :class:`~echoscript_utils.audio.LoudnessRecord`.
    """
    x = audio.resample(np.asarray(wav, np.float32), sr, sample_rate)
    x = audio.to_mono(x) if channels == "mono" else (x if x.shape[0] == 2 else np.repeat(audio.to_mono(x), 2, 0))
    x, rec = audio.standardise_loudness(x, sample_rate, target_lufs=target_lufs, ceiling_dbtp=peak_db,
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
    is_melody = "Melody" in type(getattr(model, "get_base_model", lambda: model)()).__name__
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
    if is_melody and chroma is not None:
        inputs["input_features"] = torch.as_tensor(chroma, dtype=torch.float32, device=device)
    kwargs = dict(do_sample=do_sample, guidance_scale=guidance_scale, max_new_tokens=n_tokens)
    if do_sample:
        kwargs.update(top_k=top_k or None, top_p=top_p or None, temperature=temperature)
    torch.manual_seed(seed)
    with torch.inference_mode():
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
    """True when ``path`` (a JSON sidecar) and its WAV exist and the sidecar records ``settings_hash == key``."""
    if not path.with_suffix(".wav").is_file() or not path.is_file():
        return False
    try:
        return read_json(path).get("settings_hash") == key
    except Exception:
        return False
