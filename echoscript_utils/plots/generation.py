"""Figures of the 05_generation stage (each draws on ``ax`` and returns it)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..audio import load, to_mono
from .core import MODEL_COLORS, get_ax, styled


@styled
def spectrogram(wav: np.ndarray, sr: int, *, ax=None, title: str | None = None, n_fft: int = 2048,
                hop_length: int = 512):
    """Log-magnitude spectrogram (dB) of a mono mix of ``wav`` ``[C, T]`` with a log-frequency axis."""
    import librosa
    import librosa.display

    ax = get_ax(ax)
    mono = to_mono(np.asarray(wav, np.float32))[0]
    S = librosa.amplitude_to_db(np.abs(librosa.stft(mono, n_fft=n_fft, hop_length=hop_length)), ref=np.max)
    librosa.display.specshow(S, sr=sr, hop_length=hop_length, x_axis="time", y_axis="log", ax=ax, cmap="magma")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax


@styled
def spectrogram_grid(table: pd.DataFrame, *, row: str, columns, width: float = 4.2, height: float = 2.0):
    """Spectrograms in a grid: one row per ``table[row]`` value, one column per path column; returns the Figure."""
    import matplotlib.pyplot as plt

    columns = list(columns)
    fig, axes = plt.subplots(len(table), len(columns), figsize=(width * len(columns), height * len(table)),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    for i, rec in enumerate(table.to_dict("records")):
        for j, col in enumerate(columns):
            ax = axes[i, j]
            spectrogram(*load(rec[col]), ax=ax, title=f"{col} · {rec[row]}")
            if i < len(table) - 1:
                ax.set_xlabel("")
            if j > 0:
                ax.set_ylabel("")
    return fig


@styled
def chroma_comparison(sketch_chroma: np.ndarray, audio_chroma: np.ndarray, *, frame_rate: float, ax=None):
    """Pitch class over time of the MIDI sketch (squares) and of the generated audio (dots)."""
    ax = get_ax(ax)
    names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
    for chroma, marker, label, color in ((sketch_chroma, "s", "MIDI sketch", "#1f77b4"),
                                         (audio_chroma, "o", "generated audio", "#d62728")):
        active = chroma.sum(axis=1) > 0
        t = np.arange(len(chroma))[active] / frame_rate
        ax.scatter(t, chroma[active].argmax(axis=1), marker=marker, s=16, alpha=0.7, label=label, color=color)
    ax.set_yticks(range(12), names)
    ax.set(xlabel="time (s)", ylabel="pitch class", title="Melody condition vs result")
    ax.legend(loc="upper right", fontsize=8)
    return ax


@styled
def speed_bars(speed: pd.DataFrame, *, ax=None):
    """Seconds of audio generated per second of compute, per model."""
    ax = get_ax(ax)
    colors = [MODEL_COLORS.get(m, "#1f77b4") for m in speed["model"]]
    ax.bar(speed["model"], speed["audio_s_per_s"], color=colors)
    ax.set(ylabel="audio seconds per second", title="Generation speed")
    return ax
