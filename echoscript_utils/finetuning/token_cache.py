"""Codec tokens (and melody chroma) computed once per clip and kept on disk.

Fine-tuning never feeds audio to the frozen codec inside the training loop: every clip is encoded a single time
into ``<cache>/tokens/<codec_id>/<hh>/<clip_hash>.npy`` and epochs read the tokens back. The key is the SHA-256
of the clip file's bytes plus the codec's identity (a hash of its configuration and weights), so a rerun, a
second run on the same clips, or a resumed run skips finished clips, and a different codec never reads stale
tokens. Chroma for MusicGen-Melody is cached the same way under ``<cache>/chroma/<chroma_id>/``.

Shapes: codes are ``int16 [K, T]`` (K codebooks, T frames at the codec's frame rate, 50 Hz for MusicGen's
EnCodec); chroma is ``float32 [N, 12]`` at MusicGen-Melody's 7.8125 frames per second.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from .. import audio
from ..artifacts import cached, file_hash, read_cached, text_hash, write_cached
from ..melody import CHROMA_FRAME_RATE, chroma_from_audio
from ..models.musicgen import codec_identity, encode_audio, model_sample_rate

__all__ = ["ArrayCache", "chroma_for_clips", "encode_clips"]


class ArrayCache:
    """A folder of ``.npy`` arrays keyed by a content hash (two-level fan-out), read and written through the
    workbook's cache helpers (:func:`echoscript_utils.artifacts.cached`: atomic writes, a damaged entry is a miss).

    >>> cache = ArrayCache("cache/tokens/abc123")      # doctest: +SKIP
    >>> cache.get(clip_hash, lambda: encode(clip))     # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def __contains__(self, key: str) -> bool:
        return self.path(key).is_file()

    def read(self, key: str) -> np.ndarray | None:
        """The array stored under ``key``, or ``None`` when it is absent or unreadable."""
        return read_cached(self.path(key), fmt="npy")

    def load(self, key: str) -> np.ndarray:
        return np.load(self.path(key), allow_pickle=False)

    def save(self, key: str, array: np.ndarray) -> Path:
        return write_cached(self.path(key), np.ascontiguousarray(array), fmt="npy")

    def get(self, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The array under ``key``, computed by ``compute()`` and stored when absent."""
        return cached(self.path(key), lambda: np.ascontiguousarray(compute()), fmt="npy")


def _load_mono(path: str | os.PathLike, sr: int) -> np.ndarray:

    wav, _ = audio.load(path, sr=sr, mono=True)
    return wav[0]


def _batches(items: Sequence, size: int) -> Iterable[Sequence]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def encode_clips(model, paths: Sequence[str | os.PathLike], *, cache_dir: str | os.PathLike,
                 device: str = "cpu", batch_size: int | None = None, hashes: Sequence[str] | None = None,
                 progress: bool = True, num_workers: int = 1) -> list[np.ndarray]:
    """Codec tokens for each audio file, read from the cache or encoded once and stored.

    Args:
        model: a ``MusicgenForConditionalGeneration`` (or Melody) whose ``audio_encoder`` is the codec.
        paths: audio files (any rate / channels; decoded to mono and resampled to the codec's ``sampling_rate``).
        cache_dir: the workbook's cache root (``cfg.paths.cache``); tokens go to ``<cache_dir>/tokens/<codec_id>``.
        device: where the codec runs while encoding the misses.
        batch_size: clips encoded together (clips of equal length are grouped; 30 s clips batch fully). ``None``:
            1 on a CPU, where the codec's full-rate activations of one clip stay nearer the caches (8 clips of 30 s
            encode 1.6x faster one at a time, to the same codes), 8 on an accelerator.
        hashes: content hashes of ``paths`` when the caller already has them.
        num_workers: forked processes of one thread each that encode the misses a few clips at a time
            (:func:`~echoscript_utils.parallel.fork_map`), on a CPU only; 1 = this process.

    Returns:
        One ``int16 [K, T]`` array per path, in order.
    """
    import torch
    from tqdm.auto import tqdm

    cache = ArrayCache(Path(cache_dir) / "tokens" / codec_identity(model))
    keys = list(hashes) if hashes is not None else [file_hash(p) for p in paths]
    codes = [cache.read(k) for k in keys]
    missing = [i for i, c in enumerate(codes) if c is None]
    if missing and num_workers > 1 and str(device).startswith("cpu") and len(missing) > 1:
        from ..parallel import fork_chunks

        def fill(chunk: list[int]) -> None:  # in a worker: encode into the cache; the codes are read back here
            encode_clips(model, [paths[i] for i in chunk], cache_dir=cache_dir, device=device, batch_size=batch_size,
                         hashes=[keys[i] for i in chunk], progress=False)

        fork_chunks(fill, missing, num_workers=num_workers, most=4, progress=progress, desc="codec tokens")
        codes = [c if c is not None else cache.read(k) for c, k in zip(codes, keys, strict=True)]
        missing = [i for i, c in enumerate(codes) if c is None]  # none, unless the cache could not be written
    if missing:
        encoder = model.audio_encoder
        if batch_size is None:
            batch_size = 1 if str(device).startswith("cpu") else 8
        sr = model_sample_rate(model)
        prev_device = next(encoder.parameters()).device
        encoder.to(device)
        by_length: dict[int, list[tuple[int, np.ndarray]]] = {}
        bar = tqdm(total=len(missing), desc="codec tokens", disable=not progress, unit="clip")
        try:
            for i in missing:
                wav = _load_mono(paths[i], sr)
                by_length.setdefault(len(wav), []).append((i, wav))
                group = by_length[len(wav)]
                if len(group) >= batch_size:
                    _encode_group(model, group, cache, keys, codes)
                    bar.update(len(group))
                    by_length[len(wav)] = []
            for group in by_length.values():
                if group:
                    _encode_group(model, group, cache, keys, codes)
                    bar.update(len(group))
        finally:
            bar.close()
            encoder.to(prev_device)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    return codes


def _encode_group(model, group: list[tuple[int, np.ndarray]], cache: ArrayCache, keys: list[str],
                  codes: list[np.ndarray | None]) -> None:
    """Encode one batch of equal-length clips, store each clip's ``int16 [K, T]`` codes and put them in
    ``codes``."""
    batch = encode_audio(model, np.stack([w for _, w in group])[:, None, :]).to("cpu").numpy()  # [B, K, T]
    if batch.max(initial=0) > np.iinfo(np.int16).max:
        raise ValueError("codebook larger than int16; cannot cache these codes")
    for (i, _), c in zip(group, batch, strict=True):
        cache.save(keys[i], c.astype(np.int16))
        codes[i] = cache.load(keys[i])


def chroma_for_clips(paths: Sequence[str | os.PathLike], *, cache_dir: str | os.PathLike,
                     hashes: Sequence[str] | None = None, progress: bool = True) -> list[np.ndarray]:
    """Melody chroma ``float32 [N, 12]`` for each audio file, cached by content hash.

    The chroma is :func:`echoscript_utils.melody.chroma_from_audio` at its natural frame count
    (MusicGen-Melody's 7.8125 frames per second: 30 s → 235 frames), one-hot on the strongest pitch class.
    """
    from tqdm.auto import tqdm

    cache = ArrayCache(Path(cache_dir) / "chroma" / text_hash("chroma-v1", CHROMA_FRAME_RATE))
    keys = list(hashes) if hashes is not None else [file_hash(p) for p in paths]
    return [cache.get(key, functools.partial(_chroma, paths[i]))
            for i, key in enumerate(tqdm(keys, desc="chroma", disable=not progress, unit="clip"))]


def _chroma(path: str | os.PathLike) -> np.ndarray:
    wav, sr = audio.load(path, mono=True)
    return np.asarray(chroma_from_audio(wav, sr), dtype=np.float32)
