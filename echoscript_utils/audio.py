"""Audio I/O and standardisation without torchaudio: soundfile to decode/encode, soxr to resample,
pyloudnorm for loudness (ITU-R BS.1770).

Convention everywhere: ``wav`` is float32 ``[C, T]`` (channels first, like audiocraft), ``sr`` in Hz.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .artifacts import atomic_path
from .errors import InputError

__all__ = ["load", "loudness", "normalize_loudness", "peak_db", "resample", "to_mono", "write"]


def _as_2d(wav: np.ndarray) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        return wav[None, :]
    if wav.ndim != 2:
        raise ValueError(f"expected audio of shape [C, T] or [T], got {wav.shape}")
    return wav


def load(path: str | os.PathLike, *, sr: int | None = None, mono: bool = False) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 ``[C, T]``.

    Args:
        path: WAV/FLAC/OGG/MP3/AIFF file (anything libsndfile reads).
        sr: resample to this rate (soxr, high quality); ``None`` keeps the file's rate.
        mono: average the channels into one.

    Returns:
        ``(wav, sr)`` with ``wav`` float32 ``[C, T]`` in [-1, 1] for integer formats.

    Raises:
        InputError: the file is missing or cannot be decoded (the message names it).
    """
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such audio file")
    try:
        data, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise InputError(f"{p}: cannot decode audio ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    wav = np.ascontiguousarray(data.T)
    if mono:
        wav = to_mono(wav)
    if sr is not None and sr != file_sr:
        wav = resample(wav, file_sr, sr)
        file_sr = sr
    return wav, int(file_sr)


def to_mono(wav: np.ndarray) -> np.ndarray:
    """Average channels: ``[C, T]`` → ``[1, T]``."""
    wav = _as_2d(wav)
    return wav.mean(axis=0, keepdims=True, dtype=np.float32) if wav.shape[0] > 1 else wav


def resample(wav: np.ndarray, sr_in: int, sr_out: int, *, quality: str = "HQ") -> np.ndarray:
    """Resample ``[C, T]`` (or ``[T]``) from ``sr_in`` to ``sr_out`` Hz with soxr."""
    import soxr

    if sr_in == sr_out:
        return np.asarray(wav, dtype=np.float32)
    one_d = np.ndim(wav) == 1
    x = _as_2d(wav)
    y = soxr.resample(x.T, sr_in, sr_out, quality=quality).T
    y = np.ascontiguousarray(y, dtype=np.float32)
    return y[0] if one_d else y


def write(path: str | os.PathLike, wav: np.ndarray, sr: int, *, subtype: str = "PCM_16") -> Path:
    """Atomically write ``[C, T]`` float audio (clipped to [-1, 1]) as WAV/FLAC by extension."""
    import soundfile as sf

    x = np.clip(_as_2d(wav), -1.0, 1.0).T
    final = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(final.suffix.lower(), "WAV")
    if fmt == "OGG":
        subtype = "VORBIS"
    with atomic_path(final) as tmp:
        sf.write(str(tmp), x, sr, format=fmt, subtype=subtype)
    return final


def peak_db(wav: np.ndarray) -> float:
    """Sample peak in dBFS (−inf for silence)."""
    peak = float(np.max(np.abs(wav))) if np.size(wav) else 0.0
    return 20 * np.log10(peak) if peak > 0 else float("-inf")


def loudness(wav: np.ndarray, sr: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770 via pyloudnorm); −inf for silence or < 0.4 s."""
    import pyloudnorm as pyln

    x = _as_2d(wav)
    if x.shape[1] < int(0.4 * sr) + 1:
        return float("-inf")
    meter = pyln.Meter(sr)
    with np.errstate(divide="ignore"):
        value = meter.integrated_loudness(x.T.astype(np.float64))
    return float(value)


def normalize_loudness(wav: np.ndarray, sr: int, target_lufs: float, *, peak_db: float = -1.0) -> np.ndarray:
    """Scale to ``target_lufs`` integrated loudness, then lower the gain if the sample peak would pass
    ``peak_db`` dBFS (a gain change, never a limiter, so the waveform shape is kept). Silence is returned as is.
    """
    x = _as_2d(wav)
    current = loudness(x, sr)
    if not np.isfinite(current):
        return x.copy()
    gain = 10 ** ((target_lufs - current) / 20)
    peak = float(np.max(np.abs(x))) * gain
    ceiling = 10 ** (peak_db / 20)
    if peak > ceiling:
        gain *= ceiling / peak
    return (x * gain).astype(np.float32)
