"""Cues spotted to picture: numbers in the reel/M convention, frames, hit points and the tempo that lands them.

A cue runs over its scene's frames ``[start, end)`` of the cut, exactly (its length in seconds is
``frames / rate``), or from a ``MUSIC IN`` marker to a ``MUSIC OUT`` marker inside the scene, when the cut has them. Cue numbers follow the film convention ``<reel>M<n>`` (1M1, 1M2, 2M1 …): the reel is the
``reel_minutes`` stretch of the cut the cue starts in (20-minute reels by default), ``n`` counts the cues within
that reel.

Tempo (:func:`solve_tempo`): with the cue's downbeat on its first frame, beats fall every ``60 / bpm`` seconds. The
solver scans the mood's tempo range in 0.01 bpm steps and keeps the tempi whose worst marker hit lies closest to a
beat, then those whose worst hit of all (script beats too) does (each within a millisecond), then the one closest
to the planned tempo. Each hit reports the beat it lands on, its error in milliseconds and the
frame of that beat. Without hits the planned tempo stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cut import Cut, frames_to_tc
from .match import Hit, SceneMatch

__all__ = ["SpottedCue", "cue_number", "solve_tempo", "spot_cues"]


@dataclass
class SpottedCue:
    """One cue spotted to the cut (frames from the cut's start; ``rate`` is the timecode rate)."""

    cue: str
    scene: int
    heading: str
    start: int
    end: int
    rate: float
    origin: int
    bpm: float
    bpm_planned: float
    bpm_range: tuple[float, float]
    hits: list[dict[str, Any]] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def start_s(self) -> float:
        return self.start / self.rate

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate

    @property
    def tc_in(self) -> str:
        return frames_to_tc(self.origin + self.start, self.rate)

    @property
    def tc_out(self) -> str:
        return frames_to_tc(self.origin + self.end, self.rate)

    @property
    def hits_s(self) -> list[float]:
        """Hit times in seconds from the cue's start."""
        return [round((h["frame"] - self.start) / self.rate, 4) for h in self.hits]

    @property
    def max_error_ms(self) -> float | None:
        return max((abs(h["error_ms"]) for h in self.hits), default=None)

    def as_row(self) -> dict[str, Any]:
        return {"cue": self.cue, "scene": self.scene, "heading": self.heading, "tc_in": self.tc_in,
                "tc_out": self.tc_out, "frames": self.frames, "fps": round(self.rate, 3),
                "start_s": round(self.start_s, 6), "duration_s": round(self.duration_s, 6), "bpm": self.bpm,
                "bpm_planned": self.bpm_planned, "n_hits": len(self.hits),
                "max_hit_error_ms": None if self.max_error_ms is None else round(self.max_error_ms, 2)}


def cue_number(start_s: float, counts: dict[int, int], *, reel_minutes: float = 20.0) -> str:
    """The next cue number ``<reel>M<n>`` for a cue starting ``start_s`` into the cut (``counts`` is updated)."""
    reel = int(start_s // (reel_minutes * 60.0)) + 1
    counts[reel] = counts.get(reel, 0) + 1
    return f"{reel}M{counts[reel]}"


def solve_tempo(hits_s: list[float], *, bpm_range: tuple[float, float], bpm: float, step: float = 0.01,
                firm: list[bool] | None = None, tolerance_s: float = 0.001) -> tuple[float, list[float]]:
    """The tempo in ``bpm_range`` that puts the hits (seconds from the downbeat) closest to beats.

    ``firm`` marks the hits that must land first (default: all): the editor's markers, where
    :func:`spot_cues` passes the script's beats (placed by their position in the action text, so approximate) as
    not firm. The solver keeps the tempi whose worst firm hit is within ``tolerance_s`` of the best possible, then
    among them those whose worst hit of all is within ``tolerance_s`` of the smallest, and of these the one closest
    to the planned ``bpm``.

    Returns ``(bpm, errors_s)``: the tempo (rounded to ``step``) and each hit's signed distance to its nearest
    beat (seconds, hit minus beat). Without hits: ``(bpm, [])``.
    """
    full = np.asarray(hits_s, dtype=np.float64)
    if not (full > 0).any():
        return float(bpm), [float(x) for x in full] if full.size else []
    firm_mask = np.ones(full.size, dtype=bool) if firm is None else np.asarray(firm, dtype=bool)
    lo, hi = sorted(float(x) for x in bpm_range)
    grid = np.round(np.arange(lo, hi + step / 2, step), 2)
    beat = 60.0 / grid[:, None]
    err = np.abs(full[None, :] - np.round(full[None, :] / beat) * beat)
    err[:, full <= 0] = 0.0  # a hit on the downbeat itself is always on the beat
    first = err[:, firm_mask].max(axis=1) if firm_mask.any() else np.zeros(len(grid))
    ok = first <= first.min() + tolerance_s
    overall = np.where(ok, err.max(axis=1), np.inf)
    cand = np.flatnonzero(overall <= overall.min() + tolerance_s)
    k = int(cand[np.argmin(np.abs(grid[cand] - bpm))])
    b = 60.0 / grid[k]
    return float(grid[k]), [float(x) for x in full - np.round(full / b) * b]


def spot_cues(matches: list[SceneMatch], cut: Cut, *, plans: dict[int, dict[str, Any]],
              reel_minutes: float = 20.0, solve: bool = True) -> list[SpottedCue]:
    """One cue per matched, spotted scene, in picture order.

    Args:
        matches: :func:`.match.match_scenes`'s matches.
        plans: scene index → ``{"bpm", "bpm_range"}`` for every scene to score (others get no cue).
        solve: solve the tempo for the hits (else keep the planned tempo and only measure the errors).
    """
    counts: dict[int, int] = {}
    out = []
    for m in sorted((m for m in matches if m.matched_by and m.scene in plans and m.frames > 0),
                    key=lambda m: m.start):
        p = plans[m.scene]
        start = m.cue_in if m.cue_in is not None else m.start
        end = m.cue_out if m.cue_out is not None and m.cue_out > start else m.end
        hits: list[Hit] = [h for h in m.hits if start < h.frame < end]
        rel = [(h.frame - start) / cut.rate for h in hits]
        if solve:
            bpm, errs = solve_tempo(rel, bpm_range=p["bpm_range"], bpm=p["bpm"],
                                    firm=[h.source != "script" for h in hits])
        else:
            bpm = float(p["bpm"])
            errs = solve_tempo(rel, bpm_range=(bpm, bpm), bpm=bpm)[1]
        rows = []
        for h, t, e in zip(hits, rel, errs):
            beat_s = t - e
            rows.append({"frame": h.frame, "label": h.label, "source": h.source, "tc": cut.tc(h.frame),
                         "beat": int(round(beat_s * bpm / 60.0)), "error_ms": round(e * 1000.0, 2),
                         "beat_frame": start + int(round(beat_s * cut.rate)),
                         "error_frames": round(e * cut.rate, 3)})
        out.append(SpottedCue(cue=cue_number(start / cut.rate, counts, reel_minutes=reel_minutes), scene=m.scene,
                              heading=m.heading, start=start, end=end, rate=cut.rate, origin=cut.origin, bpm=bpm,
                              bpm_planned=float(p["bpm"]), bpm_range=tuple(p["bpm_range"]), hits=rows))
    return out
