"""Scoring to picture: the cut's times, cue numbers, hit points and tempi for the planned cues, and the products an
editor opens (the stage's glue around :mod:`echoscript_utils.spotting`).

With a cut (``scoring.edit`` / ``echoscript score --edit CUT``): every matched scene takes its screen time from the
cut, each cue lasts exactly its scene's frames (its sample count tiles the timeline: a cue from frame ``a`` to
``b`` holds ``round(b·sr/rate) − round(a·sr/rate)`` samples), the tempo is solved for its hits, and scenes the cut
lacks get no cue. Without one, the page-count estimate stays: cues are still numbered (1M1 …) but their timing is
marked ``estimate`` everywhere it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifacts import atomic_path
from ..spotting import (
    Cut,
    SceneMatch,
    SpottedCue,
    build_timeline,
    cue_number,
    match_scenes,
    pro_cue_sheet,
    read_cut,
    spot_cues,
    spotting_notes_html,
    write_timelines,
)
from .plan import MOOD_PROFILES, CuePlan, finish_cues
from .timeline import DECLICK_S, CueTiming

__all__ = ["Spotting", "estimate_fields", "picture_products", "spot_to_cut"]


@dataclass
class Spotting:
    """A script spotted against a cut."""

    cut: Cut
    matches: list[SceneMatch]
    unmatched_events: list[Any]
    cues: list[SpottedCue]
    timings: list[CueTiming]
    fields: dict[int, dict[str, Any]] = field(default_factory=dict)  # scene → cue-sheet / sidecar fields

    @property
    def total_s(self) -> float:
        return self.cut.n_frames / self.cut.rate

    def match_table(self) -> pd.DataFrame:
        return pd.DataFrame([m.as_row(self.cut) for m in self.matches])

    def cue_table(self) -> pd.DataFrame:
        return pd.DataFrame([c.as_row() for c in self.cues])

    def hit_table(self) -> pd.DataFrame:
        cols = ["cue", "scene", "tc", "label", "source", "beat", "beat_tc", "error_ms", "error_frames"]
        rows = [{"cue": c.cue, "scene": c.scene, "tc": h["tc"], "label": h["label"], "source": h["source"],
                 "beat": h["beat"], "beat_tc": self.cut.tc(h["beat_frame"]), "error_ms": h["error_ms"],
                 "error_frames": h["error_frames"]} for c in self.cues for h in c.hits]
        return pd.DataFrame(rows, columns=cols)


def spot_to_cut(cfg, screenplay, cues: list[CuePlan], edit, *, fps: float | None = None) -> Spotting:
    """Read the cut, match the scenes, set their screen times from it, number and time the cues, solve their
    tempi and re-caption them with the solved tempo. Raises :class:`~echoscript_utils.errors.InputError` before
    anything is written."""
    s = cfg.scoring
    cut = read_cut(edit, fps=fps or s.fps)
    matches, unmatched = match_scenes(screenplay.scenes, cut)
    if not s.script_hits:
        for m in matches:
            m.hits = [h for h in m.hits if h.source != "script"]
    by_scene = {m.scene: m for m in matches}
    t = 0.0
    for sc in screenplay.scenes:  # screen time from the cut; scenes it lacks last 0 s
        m = by_scene[sc.index]
        if m.matched_by is not None:
            sc.start_s, sc.duration_s = m.start / cut.rate, m.frames / cut.rate
            t = max(t, m.end / cut.rate)
        else:
            sc.start_s, sc.duration_s = t, 0.0
    plans = {c.scene: {"bpm": c.bpm, "bpm_range": MOOD_PROFILES[c.mood]["bpm"]} for c in cues
             if c.spotted and by_scene[c.scene].matched_by is not None}
    spotted = spot_cues(matches, cut, plans=plans, reel_minutes=s.reel_minutes, solve=s.solve_tempo)
    new_bpm = {c.scene: c.bpm for c in spotted}
    for c in cues:
        old = c.bpm
        if c.scene in new_bpm and new_bpm[c.scene] != old:
            c.bpm = int(new_bpm[c.scene]) if float(new_bpm[c.scene]).is_integer() else new_bpm[c.scene]
            c.direction = c.direction.replace(f"at {old} bpm", f"at {c.bpm:g} bpm")
    finish_cues(cues, screenplay.scenes, spotting=s.spotting, min_intensity=s.spot_min_intensity)  # new captions
    for c in cues:
        if c.scene not in new_bpm:
            c.spotted = False
    sr = cfg.curation.sample_rate
    timings, fields = [], {}
    ordered = sorted(spotted, key=lambda c: c.start)
    for k, c in enumerate(ordered):
        a, b = round(c.start * sr / cut.rate), round(c.end * sr / cut.rate)
        cue_s = (b - a) / sr
        joined_before = k > 0 and ordered[k - 1].end == c.start
        joined_after = k + 1 < len(ordered) and ordered[k + 1].start == c.end
        edge = max(min(s.crossfade_s / 2, cue_s / 4), DECLICK_S)
        timings.append(CueTiming(scene=c.scene, start_s=a / sr, duration_s=cue_s, cue_s=cue_s,
                                 fade_in_s=round(edge if joined_before else DECLICK_S, 4),
                                 fade_out_s=round(edge if joined_after or k + 1 == len(ordered) else DECLICK_S, 4)))
        fields[c.scene] = {"cue": c.cue, "timing": "cut", "tc_in": c.tc_in, "tc_out": c.tc_out, "frames": c.frames,
                           "fps": c.rate, "hits_s": c.hits_s, "bpm": c.bpm,
                           "hit_errors_ms": [h["error_ms"] for h in c.hits]}
    timings.sort(key=lambda t: t.scene)
    return Spotting(cut=cut, matches=matches, unmatched_events=unmatched, cues=spotted, timings=timings,
                    fields=fields)


def estimate_fields(timings: list[CueTiming], *, reel_minutes: float = 20.0) -> dict[int, dict[str, Any]]:
    """Cue numbers and hit fields for page-count timings (no cut): ``timing`` is ``estimate`` and ``hits_s``
    holds the scene boundary inside the cue (where its tail crosses into the next scene), if any."""
    counts: dict[int, int] = {}
    out = {}
    for t in sorted(timings, key=lambda t: t.start_s):
        inside = [round(t.duration_s, 4)] if t.cue_s > t.duration_s + 1e-9 else []
        out[t.scene] = {"cue": cue_number(t.start_s, counts, reel_minutes=reel_minutes), "timing": "estimate",
                        "hits_s": inside}
    return out


def picture_products(spotting: Spotting, out_dir: Path, *, title: str, cues: list[CuePlan],
                     sheet: pd.DataFrame) -> dict[str, str]:
    """Write the spotting notes (HTML), the tables behind them, the PRO-style music cue sheet and the timeline
    (``score.otio`` / ``.edl`` / ``.xml``, whose music clips point at the first model's first seed). Returns the
    products' names relative to ``out_dir``."""
    from ..artifacts import write_table

    plans = {c.scene: {"mood": c.mood, "intensity": round(c.intensity, 2)} for c in cues}
    spotting_notes_html(out_dir / "spotting_notes.html", title=title, cues=spotting.cues, matches=spotting.matches,
                        plans=plans, cut=spotting.cut, unmatched_events=spotting.unmatched_events)
    write_table(spotting.cue_table(), out_dir, "spotting")
    write_table(spotting.match_table(), out_dir, "scene_match")
    write_table(spotting.hit_table(), out_dir, "hits")
    pro = pro_cue_sheet(spotting.cues, title=title, moods={c.scene: c.mood for c in cues})
    with atomic_path(out_dir / "music_cue_sheet.csv", suffix=".csv") as tmp:
        pro.to_csv(tmp, index=False)
    files: dict[str, str] = {}
    if len(sheet):
        first = sheet[(sheet["model"] == sheet["model"].iloc[0]) & (sheet["seed"] == sheet["seed"].iloc[0])]
        by_scene = dict(zip(first["scene"].astype(int), first["file"], strict=True))
        files = {c.cue: by_scene[c.scene] for c in spotting.cues if c.scene in by_scene}
    fades = {f["cue"]: (t.fade_in_s, t.fade_out_s) for t in spotting.timings
             for f in [spotting.fields[t.scene]]}
    tl = build_timeline(spotting.cues, spotting.cut, files=files, fades=fades, name=title)
    written = write_timelines(tl, out_dir, stem="score")
    return {"spotting_notes": "spotting_notes.html", "music_cue_sheet": "music_cue_sheet.csv",
            **{f"timeline_{k}": p.name for k, p in written.items()}}
