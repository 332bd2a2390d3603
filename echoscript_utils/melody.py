"""Chroma melody conditioning for MusicGen-Melody, from audio or from a MIDI sketch (no torchaudio).

MusicGen-Melody is conditioned on a *one-hot chromagram*: for every chroma frame, the pitch class with the most
energy is 1 and the other eleven are 0. The model takes it as ``input_features`` of shape
``[B, n_frames, 12]`` (float), projects each frame into the decoder and prepends the frames to the text
condition, repeating a short chromagram or cutting a long one to ``config.chroma_length`` frames (235 for the
hub and tiny models).

The reference feature extractor computes the chroma at 32 kHz with a 16384-point STFT (Hann window, centred)
and a hop of 4096 samples, i.e. **7.8125 chroma frames per second** (30 s → 235 frames), and not at the codec's
50 Hz. :func:`chroma_from_audio` reproduces that computation with torch's STFT and
``librosa.filters.chroma``; :func:`chroma_from_midi` builds the same kind of chromagram from a MIDI file's
notes, which turns a composer's sketch into a melody condition.

>>> chroma = chroma_from_midi("sketch.mid", n_frames=n_chroma_frames(10.0))          # doctest: +SKIP
>>> audio = model.generate(**tokenizer(["tense strings"], return_tensors="pt"),
...                        input_features=torch.from_numpy(chroma)[None], max_new_tokens=500)  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .errors import InputError
from .models import model_sample_rate
from .synth import write_midi

__all__ = [
    "CHROMA_FRAME_RATE",
    "CHROMA_HOP",
    "CHROMA_N_FFT",
    "CHROMA_SR",
    "chroma_frame_rate",
    "chroma_from_audio",
    "chroma_from_midi",
    "n_chroma_frames",
]

#: Sample rate (Hz) at which MusicGen-Melody's chroma is computed.
CHROMA_SR = 32_000
#: STFT size (samples at :data:`CHROMA_SR`) of the reference chroma extractor.
CHROMA_N_FFT = 16_384
#: Hop (samples at :data:`CHROMA_SR`) of the reference chroma extractor: ``n_fft // 4``.
CHROMA_HOP = 4_096
#: Chroma frames per second expected by MusicGen-Melody: 32000 / 4096 = 7.8125.
CHROMA_FRAME_RATE = CHROMA_SR / CHROMA_HOP


def chroma_frame_rate(model=None) -> float:
    """Chroma frames per second for ``model`` (its codec sample rate / 4096); 7.8125 without a model."""
    if model is None:
        return CHROMA_FRAME_RATE

    return model_sample_rate(model) / CHROMA_HOP


def n_chroma_frames(duration_s: float, *, frame_rate: float = CHROMA_FRAME_RATE) -> int:
    """Number of chroma frames the reference extractor gives for ``duration_s`` seconds of audio
    (centred frames: ``1 + floor(duration_s * frame_rate)``; 30 s → 235 at 7.8125 Hz)."""
    return 1 + int(math.floor(duration_s * frame_rate + 1e-9))


def _fit_frames(chroma: np.ndarray, n_frames: int | None) -> np.ndarray:
    """Cut to ``n_frames`` or pad with all-zero rows."""
    if n_frames is None or n_frames == chroma.shape[0]:
        return chroma
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    if n_frames < chroma.shape[0]:
        return chroma[:n_frames]
    return np.concatenate([chroma, np.zeros((n_frames - chroma.shape[0], 12), dtype=chroma.dtype)])


def _one_hot_argmax(energy: np.ndarray, *, silent: np.ndarray | None = None) -> np.ndarray:
    """``energy [n_frames, 12]`` → one-hot of each row's argmax (float32); rows in ``silent`` become zeros."""
    out = np.zeros(energy.shape, dtype=np.float32)
    out[np.arange(energy.shape[0]), energy.argmax(axis=1)] = 1.0
    if silent is not None:
        out[silent] = 0.0
    return out


def chroma_from_audio(wav, sr: int, *, n_frames: int | None = None,
                      frame_rate: float = CHROMA_FRAME_RATE) -> np.ndarray:
    """One-hot chromagram of audio, computed as MusicGen-Melody's own feature extractor does.

    The audio is mixed to mono, resampled to 32 kHz (soxr), given a centred 16384-point STFT (Hann window,
    reflect padding; clips shorter than 16384 samples are zero-padded on both sides first), mapped to 12 pitch
    classes with ``librosa.filters.chroma(sr=32000, n_fft=16384, tuning=0)``, and reduced to the argmax pitch
    class per frame. As in the reference, a silent frame has no maximum and comes out as pitch class C.

    Parameters
    ----------
    wav : audio ``[C, T]`` or ``[T]`` (numpy or torch), any float dtype.
    sr : its sample rate in Hz.
    n_frames : frames to return; the chromagram is cut, or padded with all-zero rows. ``None`` keeps the
        natural count ``1 + T_32k // hop`` (see :func:`n_chroma_frames`).
    frame_rate : chroma frames per second; the hop is ``round(32000 / frame_rate)`` samples. Keep the default
        (7.8125 Hz, hop 4096) for MusicGen-Melody, whose ``chroma_length`` of 235 frames covers 30 s at it.

    Returns
    -------
    chroma : ``np.float32 [n_frames, 12]``, one 1 per frame; columns in the order C, C#, ..., B.
    """
    import librosa
    import soxr
    import torch

    x = np.asarray(wav.detach().cpu().numpy() if hasattr(wav, "detach") else wav, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1:
        raise ValueError(f"wav must be [C, T] or [T], got shape {x.shape}")
    if sr != CHROMA_SR:
        x = soxr.resample(x, sr, CHROMA_SR, quality="HQ")
    hop = max(1, int(round(CHROMA_SR / frame_rate)))
    if x.shape[0] < CHROMA_N_FFT:
        pad = CHROMA_N_FFT - x.shape[0]
        x = np.pad(x, (pad // 2, pad - pad // 2))
    signal = torch.from_numpy(x.astype(np.float32))
    window = torch.hann_window(CHROMA_N_FFT)
    spec = torch.stft(signal, n_fft=CHROMA_N_FFT, hop_length=hop, win_length=CHROMA_N_FFT, window=window,
                      center=True, pad_mode="reflect", return_complex=True).abs().pow(2).numpy()  # [F, frames]
    filters = librosa.filters.chroma(sr=CHROMA_SR, n_fft=CHROMA_N_FFT, tuning=0.0, n_chroma=12)  # [12, F]
    energy = (filters @ spec).T  # [frames, 12]
    norm = np.maximum(np.abs(energy).max(axis=1, keepdims=True), 1e-6)
    return _fit_frames(_one_hot_argmax(energy / norm), n_frames)


def chroma_from_midi(path_or_pm, *, n_frames: int | None = None, frame_rate: float = CHROMA_FRAME_RATE,
                     instruments: list[int] | None = None) -> np.ndarray:
    """One-hot chromagram from a MIDI file's notes (a composer's sketch as a melody condition).

    Frame ``i`` covers the time window ``[(i - 0.5) / frame_rate, (i + 0.5) / frame_rate)`` seconds, the span a
    centred STFT frame sees. Every pitched note adds ``velocity x overlap (s)`` to its pitch class (drum tracks are
    ignored, sustain pedal is not applied); each frame keeps its strongest pitch class as a one-hot row.

    Parameters
    ----------
    path_or_pm : a MIDI file path or a ``pretty_midi.PrettyMIDI``.
    n_frames : frames to return; ``None`` covers the file to its last note end
        (:func:`n_chroma_frames` of the end time).
    frame_rate : chroma frames per second; 7.8125 (the default) for MusicGen-Melody.
    instruments : indices into ``pm.instruments`` to use (e.g. ``[0]`` for the melody track); ``None`` = all.

    Returns
    -------
    chroma : ``np.float32 [n_frames, 12]`` (C, C#, ..., B); frames without any sounding note are all zeros.
    """
    import pretty_midi

    if isinstance(path_or_pm, pretty_midi.PrettyMIDI):
        pm = path_or_pm
    else:

        path = os.fspath(path_or_pm)
        try:
            pm = pretty_midi.PrettyMIDI(path)
        except (OSError, ValueError, EOFError, KeyError, IndexError) as exc:
            raise InputError(f"{path}: cannot read MIDI file ({exc}); pass a standard .mid file") from None
    chosen = pm.instruments if instruments is None else [pm.instruments[i] for i in instruments]
    notes = [(n.pitch % 12, n.start, n.end, n.velocity) for inst in chosen if not inst.is_drum for n in inst.notes]
    if n_frames is None:
        end = max((e for _, _, e, _ in notes), default=0.0)
        n_frames = n_chroma_frames(end, frame_rate=frame_rate)
    energy = np.zeros((n_frames, 12), dtype=np.float64)
    half = 0.5 / frame_rate
    centres = np.arange(n_frames) / frame_rate
    lo, hi = centres - half, centres + half
    for pc, start, end, velocity in notes:
        overlap = np.clip(np.minimum(hi, end) - np.maximum(lo, start), 0.0, None)
        energy[:, pc] += velocity * overlap
    return _one_hot_argmax(energy, silent=energy.sum(axis=1) <= 0)


def demo_sketch(path: str | os.PathLike, *, bpm: float = 90.0, seed: int = 0) -> Path:
    """Write a short MIDI sketch (an 8-bar D-minor theme over a held bass) — a stand-in for a composer's sketch."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    lead = pretty_midi.Instrument(program=40, name="theme")  # violin
    bass = pretty_midi.Instrument(program=42, name="bass")  # cello
    beat = 60.0 / bpm
    scale = [62, 64, 65, 67, 69, 70, 72, 74]  # D natural minor from D4
    roots = [50, 46, 48, 45]  # D, Bb, C, A
    t = 0.0
    for bar in range(8):
        bass.notes.append(pretty_midi.Note(velocity=70, pitch=roots[bar % 4], start=t, end=t + 4 * beat))
        idx = int(rng.integers(0, 4))
        for step in range(4):
            idx = int(np.clip(idx + rng.choice([-1, 1, 2]), 0, len(scale) - 1))
            lead.notes.append(pretty_midi.Note(velocity=90, pitch=scale[idx], start=t + step * beat,
                                               end=t + (step + 0.95) * beat))
        t += 4 * beat
    pm.instruments.extend([lead, bass])
    return write_midi(pm, path)
