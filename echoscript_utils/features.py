"""Clip features with librosa from ONE short-time Fourier transform, key/tempo estimation and their scores.

:func:`clip_features` resamples a clip to 22.05 kHz mono (librosa's analysis rate) and computes a single
power spectrogram (``n_fft=2048``, ``hop_length=512``, 43 frames/s); mel bands, MFCCs, the onset envelope,
the spectral centroid and chroma all derive from it, where calling ``librosa.feature.mfcc``,
``melspectrogram``, ``chroma_stft`` and ``beat_track`` one by one would compute four STFTs.

* **Tempo**: autocorrelation of the onset-strength envelope over the whole clip, weighted by a log-normal
  prior around 120 BPM (one octave wide, librosa's default), the peak refined to a fractional lag by parabolic
  interpolation (integer lags alone quantise 150 BPM in 3 % steps). Confidence = normalised autocorrelation
  at that lag, in [0, 1].
* **Key**: the clip's chroma (from a second, 8192-point STFT whose 2.7 Hz bins separate semitones down to the
  bass register), summed over time, correlated with the 24 rotations of the Krumhansl–Kessler major and minor
  profiles (Krumhansl 1990); the best correlation is the key, its value (clipped to [0, 1]) the confidence.
* **Scores** against ground truth: :func:`tempo_scores` (within 4 %, octave errors ×2, ×½, ×3, ×⅓ counted
  apart) and :func:`mirex_key_score` (1 same key, 0.5 perfect fifth, 0.3 relative, 0.2 parallel, else 0).
* **Fingerprint** (:class:`Fingerprinter`): a coarse chroma + band-energy sequence computed while a file
  streams, used to find near-duplicate inputs (:func:`fingerprint_similarity`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.fft

from .audio import resample, to_mono
from .taxonomy import PITCH_CLASSES

__all__ = [
    "ANALYSIS_SR",
    "FEATURES_VERSION",
    "Fingerprinter",
    "clip_features",
    "estimate_key",
    "estimate_tempo",
    "fingerprint_signature",
    "fingerprint_similarity",
    "key_profiles",
    "mirex_key_score",
    "spectral_frames",
    "tempo_scores",
    "warmup",
]

#: Bump when any feature changes meaning, so cached clip features are recomputed.
FEATURES_VERSION = 1
#: Analysis rate of every feature (Hz).
ANALYSIS_SR = 22050
N_FFT = 2048
HOP = 512
N_MELS = 64
N_MFCC = 20
KEY_N_FFT = 8192

# Krumhansl–Kessler probe-tone ratings, C major / C minor (Krumhansl 1990, Table 2.1).
_KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def key_profiles() -> tuple[np.ndarray, list[tuple[str, str]]]:
    """The 24 key templates ``[24, 12]`` (z-scored rows) and their ``(tonic, mode)`` labels."""
    rows, labels = [], []
    for mode, prof in (("major", _KK_MAJOR), ("minor", _KK_MINOR)):
        for tonic in range(12):
            p = np.roll(prof, tonic)
            rows.append((p - p.mean()) / p.std())
            labels.append((PITCH_CLASSES[tonic], mode))
    return np.array(rows), labels


_PROFILES, _PROFILE_LABELS = key_profiles()


def estimate_key(chroma: np.ndarray) -> tuple[str | None, str | None, float]:
    """Krumhansl–Schmuckler key from chroma ``[12]`` (mean) or ``[12, frames]``.

    Returns:
        ``(tonic, mode, confidence)``: e.g. ``("A", "minor", 0.81)``; ``(None, None, 0.0)`` for a flat chroma.
    """
    c = np.asarray(chroma, dtype=np.float64)
    if c.ndim == 2:
        c = c.mean(axis=1)
    if c.shape != (12,) or not np.isfinite(c).all() or c.std() < 1e-9:
        return None, None, 0.0
    z = (c - c.mean()) / c.std()
    r = _PROFILES @ z / 12.0
    best = int(np.argmax(r))
    tonic, mode = _PROFILE_LABELS[best]
    return tonic, mode, float(np.clip(r[best], 0.0, 1.0))


def estimate_tempo(onset_env: np.ndarray, *, sr: int = ANALYSIS_SR, hop_length: int = HOP,
                   start_bpm: float = 120.0, std_bpm: float = 1.0, min_bpm: float = 40.0,
                   max_bpm: float = 240.0) -> tuple[float | None, float]:
    """Global tempo from an onset-strength envelope.

    Args:
        onset_env: ``[frames]`` onset strength at ``sr / hop_length`` frames per second.
        start_bpm: centre of the log-normal tempo prior.
        std_bpm: its width in octaves.

    Returns:
        ``(bpm, confidence)``; ``(None, 0.0)`` when there are no onsets.
    """
    import librosa

    env = np.asarray(onset_env, dtype=np.float64)
    env = env - env.mean()
    if env.size < 8 or not np.any(env):
        return None, 0.0
    fps = sr / hop_length
    max_lag = min(env.size - 2, int(np.ceil(fps * 60.0 / min_bpm)) + 1)
    ac = librosa.autocorrelate(env, max_size=max_lag + 2)
    if ac[0] <= 0:
        return None, 0.0
    ac = ac / ac[0]
    lags = np.arange(ac.size, dtype=np.float64)
    with np.errstate(divide="ignore"):
        bpms = 60.0 * fps / lags
    valid = (bpms >= min_bpm) & (bpms <= max_bpm)
    prior = np.exp(-0.5 * ((np.log2(np.where(valid, bpms, 1.0)) - np.log2(start_bpm)) / std_bpm) ** 2)
    score = np.where(valid, np.clip(ac, 0, None) * prior, -np.inf)
    k = int(np.argmax(score))
    if not np.isfinite(score[k]) or score[k] <= 0:
        return None, 0.0
    lag = float(k)
    if 1 <= k < ac.size - 1:  # parabolic refinement on the raw autocorrelation
        a, b, c = ac[k - 1], ac[k], ac[k + 1]
        denom = a - 2 * b + c
        if denom < 0:
            lag = k + float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))
    return float(60.0 * fps / lag), float(np.clip(ac[k], 0.0, 1.0))


def spectral_frames(wav: np.ndarray, *, n_fft: int = N_FFT, hop_length: int = HOP) -> np.ndarray:
    """Power spectrogram ``[1 + n_fft/2, frames]`` of mono ``wav`` ``[T]`` (periodic Hann window, frames centred
    with zero padding: the same frames as ``librosa.stft(wav, center=True)``, without its first-call JIT cost)."""
    x = np.asarray(wav, dtype=np.float32)
    pad = n_fft // 2
    x = np.pad(x, (pad, pad))
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop_length]
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    return _frame_power(frames * window).T


def _frame_power(windowed: np.ndarray) -> np.ndarray:
    """Power spectra ``[frames, 1 + n/2]`` of windowed float32 frames ``[frames, n]`` (overwritten): a single
    precision FFT (faster than numpy.fft), its real and imaginary parts squared in place and added."""
    spec = scipy.fft.rfft(windowed, axis=1, overwrite_x=True)
    parts = spec.view(np.float32)  # real and imaginary parts side by side
    np.square(parts, out=parts)
    return np.add(parts[:, 0::2], parts[:, 1::2])


_FILTERS: dict[tuple, np.ndarray] = {}


def _filters(kind: str, sr: int, n_fft: int, n: int) -> np.ndarray:
    import librosa

    key = (kind, sr, n_fft, n)
    if key not in _FILTERS:
        if kind == "mel":
            _FILTERS[key] = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n).astype(np.float32)
        else:
            _FILTERS[key] = librosa.filters.chroma(sr=sr, n_fft=n_fft, n_chroma=12).astype(np.float32)
    return _FILTERS[key]


def clip_features(wav: np.ndarray, sr: int, *, n_mfcc: int = N_MFCC, n_mels: int = N_MELS,
                  return_frames: bool = False) -> dict[str, Any]:
    """librosa features of one clip.

    Args:
        wav: float32 ``[C, T]`` or ``[T]`` at ``sr`` Hz (folded to mono, resampled to 22.05 kHz with soxr).
        sr: sample rate of ``wav`` in Hz.
        n_mfcc: number of MFCCs summarised.
        n_mels: mel bands (summarised as mean dB per band).
        return_frames: also return the frame-level ``mel_db`` ``[n_mels, F]`` and ``chroma`` ``[12, F]``
            under ``"_frames"`` (for plots; not stored in metadata).

    Returns:
        dict with the :class:`~echoscript_utils.dataset.ClipFeatures` keys: ``bpm``, ``bpm_confidence``,
        ``key``, ``mode``, ``key_confidence``, ``mfcc_mean``/``mfcc_std`` ``[n_mfcc]``, ``mel_mean_db``
        ``[n_mels]``, ``chroma_mean``/``chroma_std`` ``[12]``, ``spectral_centroid_hz``, ``rms_db``,
        ``onset_rate`` (onsets per second).
    """
    import librosa

    mono = to_mono(wav)[0]
    if sr != ANALYSIS_SR:
        mono = resample(mono, sr, ANALYSIS_SR)
    power = spectral_frames(mono)
    mel = _filters("mel", ANALYSIS_SR, N_FFT, n_mels) @ power
    mel_db = librosa.power_to_db(mel, ref=1.0, top_db=None)
    mel_db = np.maximum(mel_db, mel_db.max() - 80.0)
    mfcc = librosa.feature.mfcc(S=mel_db, n_mfcc=n_mfcc)
    chroma_raw = _filters("chroma", ANALYSIS_SR, N_FFT, 12) @ power
    chroma = chroma_raw / np.maximum(chroma_raw.max(axis=0, keepdims=True), 1e-10)
    onset_env = librosa.onset.onset_strength(S=mel_db, sr=ANALYSIS_SR, hop_length=HOP)
    bpm, bpm_conf = estimate_tempo(onset_env)
    onsets = librosa.onset.onset_detect(onset_envelope=onset_env, sr=ANALYSIS_SR, hop_length=HOP)
    # key from a long-window chroma (2.7 Hz bins resolve semitones down to the bass register), energy-weighted
    # so loud frames count more than near-silent ones
    key_power = spectral_frames(mono, n_fft=KEY_N_FFT, hop_length=KEY_N_FFT // 2)
    key, mode, key_conf = estimate_key((_filters("chroma", ANALYSIS_SR, KEY_N_FFT, 12) @ key_power).sum(axis=1))
    freqs = librosa.fft_frequencies(sr=ANALYSIS_SR, n_fft=N_FFT)
    total = power.sum(axis=0)
    centroid = float(np.sum(freqs[:, None] * power) / max(total.sum(), 1e-20))
    rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64)))) if mono.size else 0.0
    r4 = lambda a: [round(float(v), 4) for v in a]  # noqa: E731
    out: dict[str, Any] = {
        "bpm": None if bpm is None else round(bpm, 2),
        "bpm_confidence": round(bpm_conf, 4),
        "key": key,
        "mode": mode,
        "key_confidence": round(key_conf, 4),
        "mfcc_mean": r4(mfcc.mean(axis=1)),
        "mfcc_std": r4(mfcc.std(axis=1)),
        "mel_mean_db": r4(mel_db.mean(axis=1)),
        "chroma_mean": r4(chroma.mean(axis=1)),
        "chroma_std": r4(chroma.std(axis=1)),
        "spectral_centroid_hz": round(centroid, 2),
        "rms_db": round(20 * np.log10(rms), 3) if rms > 0 else None,
        "onset_rate": round(len(onsets) / (mono.size / ANALYSIS_SR), 4) if mono.size else 0.0,
    }
    if return_frames:
        out["_frames"] = {"mel_db": mel_db, "chroma": chroma, "sr": ANALYSIS_SR, "hop_length": HOP}
    return out


def warmup() -> None:
    """Import librosa's lazy submodules and load its compiled kernels once (a few seconds on a cold machine), so
    that worker processes forked afterwards start warm."""
    t = np.arange(ANALYSIS_SR, dtype=np.float32) / ANALYSIS_SR
    clip_features(np.sin(2 * np.pi * 440 * t)[None], ANALYSIS_SR)


# ------------------------------------------------------------------------------------------------ scores
def tempo_scores(est: Sequence[float | None], ref: Sequence[float | None], *,
                 tolerance: float = 0.04) -> dict[str, Any]:
    """Tempo accuracy against ground truth (pairs with a missing value are left out).

    ``accuracy`` counts estimates within ``tolerance`` (relative) of the reference; ``octave_errors`` those
    that miss it but land within tolerance of 2×, ½×, 3× or ⅓× the reference; ``accuracy2`` is their sum
    (MIREX "accuracy 2").
    """
    pairs = [(float(e), float(r)) for e, r in zip(est, ref, strict=True)
             if e is not None and r is not None and np.isfinite(e) and np.isfinite(r) and r > 0]
    n = len(pairs)
    hit = octave = 0
    for e, r in pairs:
        if abs(e - r) <= tolerance * r:
            hit += 1
        elif any(abs(e - f * r) <= tolerance * f * r for f in (2.0, 0.5, 3.0, 1 / 3)):
            octave += 1
    return {
        "n": n,
        "tolerance": tolerance,
        "accuracy": hit / n if n else None,
        "octave_errors": octave,
        "octave_error_rate": octave / n if n else None,
        "accuracy2": (hit + octave) / n if n else None,
    }


def _pc(name: str | None) -> int | None:
    if name is None:
        return None
    alias = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#", "Cb": "B", "Fb": "E", "E#": "F",
             "B#": "C"}
    n = str(name).strip()
    n = n[:1].upper() + n[1:]
    n = alias.get(n, n)
    return PITCH_CLASSES.index(n) if n in PITCH_CLASSES else None


def mirex_key_score(est_key: str | None, est_mode: str | None, ref_key: str | None, ref_mode: str | None) -> float:
    """MIREX weighted key score of one estimate: 1 same key, 0.5 a perfect fifth apart in the same mode,
    0.3 relative major/minor, 0.2 parallel major/minor, 0 otherwise (and for a missing estimate)."""
    e, r = _pc(est_key), _pc(ref_key)
    if e is None or r is None or est_mode not in ("major", "minor") or ref_mode not in ("major", "minor"):
        return 0.0
    if est_mode == ref_mode:
        if e == r:
            return 1.0
        if (e - r) % 12 in (5, 7):
            return 0.5
        return 0.0
    if e == r:
        return 0.2
    # relative: minor tonic is 3 semitones below the major tonic
    major, minor = (e, r) if est_mode == "major" else (r, e)
    return 0.3 if (major - minor) % 12 == 3 else 0.0


def key_scores(est: Sequence[tuple], ref: Sequence[tuple]) -> dict[str, Any]:
    """Aggregate :func:`mirex_key_score` over ``(key, mode)`` pairs; references missing a key are left out."""
    scores, exact = [], 0
    counts = {"same": 0, "fifth": 0, "relative": 0, "parallel": 0, "other": 0}
    names = {1.0: "same", 0.5: "fifth", 0.3: "relative", 0.2: "parallel", 0.0: "other"}
    for (ek, em), (rk, rm) in zip(est, ref, strict=True):
        if _pc(rk) is None or rm not in ("major", "minor"):
            continue
        s = mirex_key_score(ek, em, rk, rm)
        scores.append(s)
        exact += s == 1.0
        counts[names[s]] += 1
    n = len(scores)
    return {"n": n, "weighted_score": float(np.mean(scores)) if n else None,
            "accuracy": exact / n if n else None, **counts}


# ------------------------------------------------------------------------------------------------ fingerprint
class Fingerprinter:
    """Streaming fingerprint: per 8192-sample frame (186 ms at 44.1 kHz) the 12 chroma energies and the total
    energy, in dB. Feed mono blocks in order with :meth:`update`; :meth:`result` gives ``[frames, 13]``.

    Gain changes shift every value equally, which :func:`fingerprint_similarity` removes; re-encoding (MP3,
    resampling) barely moves the chroma; different music, even in the same key and tempo, decorrelates.
    """

    def __init__(self, sr: int, *, frame: int = 8192):
        self.sr, self.frame = sr, frame
        self._buf = np.zeros(0, dtype=np.float32)
        self._rows: list[np.ndarray] = []
        self._window = np.hanning(frame).astype(np.float32)
        self._chroma = _filters("chroma", sr, frame, 12)

    def update(self, mono: np.ndarray) -> None:
        x = np.concatenate([self._buf, np.asarray(mono, dtype=np.float32).ravel()])
        n = x.size // self.frame
        if n:
            frames = x[: n * self.frame].reshape(n, self.frame) * self._window
            power = _frame_power(frames)
            chroma = power @ self._chroma.T
            total = power.sum(axis=1, keepdims=True)
            self._rows.append(10 * np.log10(np.concatenate([chroma, total], axis=1) + 1e-10))
        self._buf = x[n * self.frame:]

    def result(self) -> np.ndarray:
        if not self._rows:
            return np.zeros((0, 13), np.float32)
        fp = np.concatenate(self._rows)
        # floor 40 dB below the loudest value: codecs discard quiet detail, which must not count as a difference
        return np.maximum(fp, fp.max() - 40.0).astype(np.float32)


def fingerprint_signature(fp: np.ndarray, *, n: int = 64) -> np.ndarray:
    """A fixed-size unit vector ``[n * 13]`` summarising a fingerprint (time pooled into ``n`` segments, mean
    removed): dot products of signatures are a cheap first screen before :func:`fingerprint_similarity`."""
    fp = np.asarray(fp, dtype=np.float32)
    if fp.shape[0] == 0:
        return np.zeros(n * 13, np.float32)
    edges = np.linspace(0, fp.shape[0], n + 1).astype(int)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    edges = np.minimum(edges, fp.shape[0])
    pooled = np.stack([fp[a:max(b, a + 1)].mean(axis=0) if a < fp.shape[0] else fp[-1]
                       for a, b in zip(edges[:-1], edges[1:], strict=True)])
    v = (pooled - pooled.mean()).ravel()
    norm = np.linalg.norm(v)
    return (v / norm).astype(np.float32) if norm > 0 else v


def fingerprint_similarity(a: np.ndarray, b: np.ndarray, *, max_lag: int = 2) -> float:
    """Similarity in [-1, 1] of two fingerprints: the best Pearson correlation of their flattened, mean-removed
    values over lags of up to ``max_lag`` frames (covers encoder delays). Lengths may differ by a few frames;
    a sequence much shorter than the other gives a low score."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return 0.0
    best = -1.0
    for lag in range(-max_lag, max_lag + 1):
        x = a[max(lag, 0):]
        y = b[max(-lag, 0):]
        n = min(len(x), len(y))
        if n < 4 or n < 0.9 * max(len(a), len(b)):
            continue
        x = x[:n] - x[:n].mean()
        y = y[:n] - y[:n].mean()
        den = np.sqrt((x * x).sum() * (y * y).sum())
        if den > 0:
            best = max(best, float((x * y).sum() / den))
    return best
