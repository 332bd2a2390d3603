"""Cue timing on the screen-time timeline and the assembly of ``score.wav``.

Timing: every spotted scene's cue starts at its scene's first second (cues start at scene boundaries) and runs
for the scene's screen time plus ``crossfade_s`` (its tail, except in the last scene), so that at a boundary the
outgoing cue fades out (cosine) exactly while the incoming one fades in (sine): an equal-power crossfade.
``max_cue_s`` caps a cue's length (previews, the CPU demo); a capped cue fades out before its scene ends.
The first cue fades in over :data:`DECLICK_S`; a cue whose predecessor has no tail in its scene fades in over
``crossfade_s`` from silence.

Assembly: ``score.wav`` covers the whole screen time, sample-exact (``round(total_s × sr)`` frames); unspotted
scenes are silent. It is mixed block by block (``block_s`` seconds at a time) with ``soundfile``, reading only
the needed frames of each cue file, so memory stays bounded whatever the length of the script. A first pass
measures the mix's peak; if it exceeds ``peak_db`` (the curation ceiling), the second, writing pass scales the
whole score down by one gain, so the cues keep their standardised loudness relative to one another.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..artifacts import atomic_path, atomic_write_text

__all__ = ["DECLICK_S", "CueTiming", "assemble_score", "cue_timings", "envelope"]

#: Fade-in of a cue that starts from silence at the very beginning of the timeline.
DECLICK_S = 0.01


@dataclass
class CueTiming:
    """Where one cue sits on the timeline (seconds)."""

    scene: int
    start_s: float  # = the scene's start
    duration_s: float  # the scene's screen time
    cue_s: float  # the cue's generated length (scene + crossfade tail, capped by max_cue_s)
    fade_in_s: float
    fade_out_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.cue_s

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"end_s": self.end_s}


def cue_timings(scenes, spotted: set[int] | None = None, *, crossfade_s: float = 2.0,
                max_cue_s: float | None = None) -> list[CueTiming]:
    """Timing of every spotted scene's cue.

    Args:
        scenes: parsed scenes with ``index``, ``start_s`` and ``duration_s`` (see ``parse.screen_times``).
        spotted: indices of the scenes that get a cue (``None``: all).
        crossfade_s: overlap at each scene boundary.
        max_cue_s: cap on a cue's length.
    """
    scenes = list(scenes)
    spotted = {s.index for s in scenes} if spotted is None else set(spotted)
    out: list[CueTiming] = []
    prev: CueTiming | None = None  # the cue of the scene just before, if that scene was spotted
    for k, s in enumerate(scenes):
        if s.index not in spotted:
            prev = None
            continue
        last = k == len(scenes) - 1
        cue_s = s.duration_s + (0.0 if last else min(crossfade_s, scenes[k + 1].duration_s))
        if max_cue_s is not None:
            cue_s = min(cue_s, float(max_cue_s))
        cue_s = round(cue_s, 3)
        tail = round(max(cue_s - s.duration_s, 0.0), 3)
        t = CueTiming(scene=s.index, start_s=s.start_s, duration_s=s.duration_s, cue_s=cue_s, fade_in_s=DECLICK_S,
                      fade_out_s=max(min(tail if tail > 0 else crossfade_s, cue_s / 2), DECLICK_S))
        overlap = round(prev.end_s - s.start_s, 3) if prev is not None else 0.0
        if overlap > 0:  # equal-power crossfade: both fades span the same overlap
            both = max(min(overlap, cue_s / 2, prev.cue_s / 2), DECLICK_S)
            t.fade_in_s = prev.fade_out_s = round(both, 3)
        elif k > 0:
            t.fade_in_s = round(max(min(crossfade_s, cue_s / 2), DECLICK_S), 3)
        t.fade_out_s = round(t.fade_out_s, 3)
        out.append(t)
        prev = t
    return out


def envelope(n: int, *, sr: int, fade_in_s: float, fade_out_s: float, offset: int = 0, total: int | None = None):
    """Gain ``[n]`` for frames ``offset … offset + n`` of a cue of ``total`` frames: a sine fade-in over
    ``fade_in_s`` and a cosine fade-out over the last ``fade_out_s`` (their squares sum to one across a
    crossfade: equal power)."""
    total = n if total is None else total
    idx = np.arange(offset, offset + n, dtype=np.float64)
    g = np.ones(n, dtype=np.float64)
    nin = max(int(round(fade_in_s * sr)), 1)
    nout = max(int(round(fade_out_s * sr)), 1)
    m = idx < nin
    g[m] *= np.sin(0.5 * np.pi * (idx[m] + 0.5) / nin)
    start_out = total - nout
    m = idx >= start_out
    g[m] *= np.cos(0.5 * np.pi * (idx[m] - start_out + 0.5) / nout)
    return g.astype(np.float32)


def assemble_score(cues: list[tuple[CueTiming, str | os.PathLike]], path: str | os.PathLike, *, total_s: float,
                   sr: int, channels: int = 1, peak_db: float | None = -1.0, block_s: float = 10.0,
                   progress: bool = False) -> dict[str, Any]:
    """Mix cue files onto one timeline of ``total_s`` seconds and write it to ``path`` atomically.

    Args:
        cues: ``(timing, wav_path)`` pairs; each file is at ``sr`` with ``channels`` channels (shorter files are
            padded with silence, longer ones cut to ``timing.cue_s``).
        total_s: the screen time; the file has exactly ``round(total_s × sr)`` frames.
        peak_db: sample-peak ceiling of the mix (dBFS); ``None`` leaves the mix as it is.
        block_s: seconds mixed per step (bounds memory to a few blocks of audio).

    Returns:
        ``{"frames", "duration_s", "peak_db", "gain_db"}``.
    """
    import soundfile as sf
    from tqdm.auto import tqdm

    total = int(round(total_s * sr))
    block = max(int(block_s * sr), 1)
    placed = []
    for t, f in cues:
        start = int(round(t.start_s * sr))
        n = int(round(t.cue_s * sr))
        placed.append((start, n, t, str(f)))

    def mixed_blocks():
        handles = {}
        try:
            for b0 in range(0, total, block):
                b1 = min(b0 + block, total)
                out = np.zeros((b1 - b0, channels), dtype=np.float32)
                for start, n, t, f in placed:
                    lo, hi = max(b0, start), min(b1, start + n)
                    if lo >= hi:
                        continue
                    h = handles.get(f)
                    if h is None:
                        h = handles[f] = sf.SoundFile(f)
                    h.seek(min(lo - start, h.frames))
                    seg = h.read(hi - lo, dtype="float32", always_2d=True)
                    if seg.shape[1] != channels:
                        seg = np.repeat(seg.mean(axis=1, keepdims=True), channels, axis=1)
                    if len(seg) < hi - lo:
                        seg = np.pad(seg, ((0, hi - lo - len(seg)), (0, 0)))
                    g = envelope(hi - lo, sr=sr, fade_in_s=t.fade_in_s, fade_out_s=t.fade_out_s, offset=lo - start,
                                 total=n)
                    out[lo - b0:hi - b0] += seg * g[:, None]
                    if hi == start + n:  # this cue is done: release its file
                        handles.pop(f).close()
                yield out
        finally:
            for h in handles.values():
                h.close()

    peak = 0.0
    for out in mixed_blocks():
        if out.size:
            peak = max(peak, float(np.abs(out).max()))
    gain = 1.0
    if peak_db is not None and peak > 10 ** (peak_db / 20):
        gain = 10 ** (peak_db / 20) / peak
    bar = tqdm(total=total, desc="score.wav", unit="frame", unit_scale=True, disable=not progress, leave=False)
    with atomic_path(path, suffix=".wav") as tmp:
        with sf.SoundFile(str(tmp), "w", samplerate=sr, channels=channels, format="WAV", subtype="PCM_16") as f:
            for out in mixed_blocks():
                f.write(np.clip(out * gain, -1.0, 1.0))
                bar.update(len(out))
    bar.close()
    return {"frames": total, "duration_s": total / sr, "peak_db": float(20 * np.log10(max(peak * gain, 1e-12))),
            "gain_db": float(20 * np.log10(gain))}


def write_players(path: str | os.PathLike, rows: list[dict[str, Any]], *, title: str) -> Path:
    """A small HTML page of ``<audio>`` players with links relative to ``path``'s folder (the CLI's players):
    ``rows`` hold ``label`` and ``file`` (relative path)."""
    import html

    items = "".join(f"<tr><td>{html.escape(str(r['label']))}</td><td><audio controls preload='none' "
                    f"src='{html.escape(str(r['file']))}'></audio></td></tr>" for r in rows)
    return atomic_write_text(path, f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
                                   f"<h1>{html.escape(title)}</h1><table>{items}</table>\n")
