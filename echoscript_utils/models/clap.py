"""CLAP (LAION, through transformers' ``ClapModel``): loading, and the audio/text embedder every stage shares.

Audio goes in at 48 kHz (:data:`CLAP_SAMPLE_RATE`). :class:`ClapEmbedder` is the one view onto a loaded CLAP:
alignment scores clips against prompts with it, the zero-shot tagger and the CLAP FAD embedding use its audio
side, scoring its text side.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..artifacts import atomic_path, ensure_dir, file_hash, text_hash
from ..audio import load, resample, windows
from .hub import load_pretrained, model_identity, resolve_model
from .tiny import text_token_limit

#: Sample rate (Hz) that CLAP's feature extractor expects (LAION checkpoints and the tiny model).
CLAP_SAMPLE_RATE = 48_000


def load_clap(name_or_path: str | os.PathLike, *, cache_dir: str | os.PathLike, device: str = "cpu", dtype=None,
              attn_implementation: str | None = None, seed: int = 1234, merge_lora: bool = True):
    """Load a CLAP model and its ``ClapProcessor`` (``tiny-clap``, a local folder, an adapter folder or a hub id
    such as ``laion/clap-htsat-unfused`` or ``laion/larger_clap_music_and_speech``). Audio goes in at
    :data:`CLAP_SAMPLE_RATE` (48 kHz). Same options and errors as :func:`load_musicgen`; ``attn_implementation``
    is accepted for symmetry and ignored (transformers' CLAP has eager attention only)."""
    return load_pretrained(str(name_or_path), family="clap", cache_dir=cache_dir, device=device, dtype=dtype,
                 attn_implementation=attn_implementation, seed=seed, merge_lora=merge_lora)


def audio_features(feature_extractor, wins: list[np.ndarray], *, batched: bool = True) -> dict:
    """CLAP's model inputs for mono windows ``wins`` at the extractor's rate: what
    ``feature_extractor(wins, truncation="rand_trunc", padding="repeatpad", return_tensors="pt")`` returns, with
    each window's log-mel spectrogram computed as one framed FFT instead of transformers' frame-by-frame loop.

    The arithmetic is the extractor's own: repeat-padding of a short window, float64 samples, reflect-padded centred
    frames times the periodic Hann window, ``rfft`` kept in complex64 as transformers keeps it, power, Slaney mel
    filters floored at 1e-10, ``10·log10`` and float32. A window longer than the extractor's maximum (which
    ``rand_trunc`` would crop at random), an empty one, or an extractor of another kind goes through the extractor
    itself, as every window does with ``batched=False`` (the reference path of the parity probes).

    Returns:
        ``{"input_features": [B, 1, frames, mels] float32, "is_longer": [B, 1] bool}`` torch tensors.
    """
    import torch
    from transformers import ClapFeatureExtractor
    from transformers.audio_utils import window_function

    fe = feature_extractor
    size = int(fe.nb_max_samples)
    if not batched or type(fe) is not ClapFeatureExtractor or any(len(w) == 0 or len(w) > size for w in wins):
        return fe(wins, sampling_rate=fe.sampling_rate, return_tensors="pt", truncation="rand_trunc",
                  padding="repeatpad")
    n_fft, hop = int(fe.fft_window_size), int(fe.hop_length)
    hann = window_function(n_fft, "hann").astype(np.float64)
    mels = []
    for w in wins:
        x = np.asarray(w, dtype=np.float64)
        if x.shape[0] < size:  # repeatpad: whole repeats, then zeros
            x = np.tile(x, int(size / len(x)))
            x = np.pad(x, (0, size - x.shape[0]))
        x = np.pad(x, (n_fft // 2, n_fft // 2), mode="reflect")
        frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop] * hann
        power = np.abs(np.fft.rfft(frames, axis=-1).astype(np.complex64), dtype=np.float64) ** 2.0
        mel = np.maximum(1e-10, power @ fe.mel_filters_slaney)
        mels.append((10.0 * np.log10(np.clip(mel, 1e-10, None))).astype(np.float32))
    return {"input_features": torch.from_numpy(np.stack(mels)[:, None]),
            "is_longer": torch.zeros((len(wins), 1), dtype=torch.bool)}


class ClapEmbedder:
    """CLAP audio and text embeddings (L2-normalised rows), cached per clip by content hash.

    Args:
        model: hub id (``laion/larger_clap_music_and_speech``), local folder, or ``tiny-clap``.
        cache_dir: the run cache (``cfg.paths.cache``); models are resolved under ``cache_dir/models``.
        device: torch device.
        batch_size: windows per forward pass.
        seed: seed for building tiny models.
    """

    def __init__(self, model: str, *, cache_dir: str | os.PathLike, device: str = "cpu", batch_size: int = 8,
                 seed: int = 1234):
        self.name = model
        self.cache_dir = Path(cache_dir)
        self.device = device
        self.batch_size = batch_size
        path = resolve_model(model, cache_dir=self.cache_dir / "models", seed=seed)
        self.model, self.processor = load_clap(path, cache_dir=self.cache_dir / "models", device=device)
        self.model.eval()
        self.identity = model_identity(path)
        fe = self.processor.feature_extractor
        self.sample_rate = int(fe.sampling_rate)
        self.window = int(round(getattr(fe, "nb_max_samples", 10 * self.sample_rate)))
        #: Most tokens a text may take (512 for LAION CLAP and the tiny CLAP); longer texts are cut to it.
        self.max_text_tokens = text_token_limit(self.processor.tokenizer, self.model.config.text_config)

    # audio ------------------------------------------------------------------------------------------------
    def embed_audio_array(self, wav: np.ndarray, sr: int) -> np.ndarray:
        """One clip ``[C, T]`` (or ``[T]``) at ``sr`` → ``[D]`` unit vector: its 10 s windows go through the model
        :attr:`batch_size` at a time (the feature extractor featurises each window on its own) and are averaged."""
        import torch

        x = np.asarray(resample(wav, sr, self.sample_rate), dtype=np.float32)
        # 10 s windows; a tail under a quarter window is dropped; the feature extractor repeat-pads the last one
        wins = windows(x.mean(axis=0) if x.ndim == 2 else x, self.window, pad=False)
        embs = []
        for i in range(0, len(wins), self.batch_size):
            feats = audio_features(self.processor.feature_extractor, wins[i:i + self.batch_size])
            feats = {k: v.to(self.device) for k, v in feats.items()}
            with torch.inference_mode():
                out = self.model.get_audio_features(**feats)
            out = getattr(out, "pooler_output", out)
            embs.append(out.float().cpu().numpy())
        e = np.concatenate(embs).mean(axis=0)
        return (e / max(np.linalg.norm(e), 1e-12)).astype(np.float32)

    def embed_audio_files(self, paths: list[str | os.PathLike], *, progress: bool = True,
                          durations: list[float | None] | None = None, num_workers: int = 1) -> np.ndarray:
        """Audio files → ``[N, D]``; each file's embedding is cached under ``cache_dir/clap`` by its content
        hash and the model identity, so reruns load instead of recomputing. ``durations`` (seconds, one per
        file, ``None`` = all of it): embed only the start of each file (a short cue without its padding).
        ``num_workers`` > 1 embeds a few files at a time in forked processes of one thread each
        (:func:`~echoscript_utils.parallel.fork_map`; on a CPU only: a forked process cannot use its parent's
        GPU)."""
        rows = []
        durations = list(durations) if durations is not None else [None] * len(paths)
        if num_workers > 1 and len(paths) > 1 and str(self.device).startswith("cpu"):
            from ..parallel import fork_chunks

            parts = fork_chunks(lambda chunk: self.embed_audio_files([p for p, _ in chunk], progress=False,
                                                                     durations=[d for _, d in chunk]),
                                list(zip(paths, durations, strict=True)), num_workers=num_workers, most=8,
                                progress=progress, desc="CLAP audio")
            return np.concatenate(parts)
        for p, dur in tqdm(list(zip(paths, durations, strict=True)), desc="CLAP audio", disable=not progress,
                           leave=False):
            f = self.audio_cache_file(file_hash(p), dur)
            if f.is_file():
                rows.append(np.load(f))
                continue
            wav, sr = load(p)
            if dur is not None:
                wav = wav[:, : int(round(dur * sr))]
            rows.append(self.store_audio_embedding(f, self.embed_audio_array(wav, sr)))
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    def audio_cache_file(self, audio_hash: str, duration: float | None = None) -> Path:
        """Where :meth:`embed_audio_files` keeps the embedding of the file with content hash ``audio_hash`` (its
        first ``duration`` seconds when given)."""
        key = text_hash(audio_hash, self.identity, "audio-v1", *([] if duration is None else [round(duration, 6)]))
        return ensure_dir(self.cache_dir / "clap") / f"{key}.npy"

    @staticmethod
    def store_audio_embedding(path: Path, embedding: np.ndarray) -> np.ndarray:
        """Write one :meth:`embed_audio_array` result to its :meth:`audio_cache_file` (atomically); returns it."""
        with atomic_path(path, suffix=".npy") as tmp:
            np.save(tmp, embedding)
        return embedding

    # text -------------------------------------------------------------------------------------------------
    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Texts → ``[N, D]`` unit rows. A text longer than :attr:`max_text_tokens` is cut to its first tokens
        (a long scene: the text tower's position table has no room for more)."""
        import torch

        out = []
        for i in range(0, len(texts), max(self.batch_size, 16)):
            batch = list(texts[i:i + max(self.batch_size, 16)])
            enc = self.processor.tokenizer(batch, padding=True, truncation=True, max_length=self.max_text_tokens,
                                           return_tensors="pt")
            enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            with torch.inference_mode():
                e = self.model.get_text_features(**enc)
            e = getattr(e, "pooler_output", e)
            out.append(e.float().cpu().numpy())
        e = np.concatenate(out) if out else np.zeros((0, 0), np.float32)
        return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
