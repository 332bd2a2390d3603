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

import numpy as np
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

__all__ = ["Spotting", "check_delivery", "deliver", "dialogue_regions", "estimate_fields", "picture_products",
           "spot_to_cut"]


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


# --------------------------------------------------------------------------------------------------- delivery
def dialogue_regions(cue: SpottedCue, scene, cut: Cut) -> tuple[list[tuple[float, float]], str]:
    """Where dialogue plays under a cue, in seconds from the cue's start, and where that came from: the cut's
    dialogue track when it has one (``cut``), else the script's dialogue blocks placed by their printed-line
    position within the scene (``script``)."""
    if cut.dialogue:
        regions = [((max(a, cue.start) - cue.start) / cut.rate, (min(b, cue.end) - cue.start) / cut.rate)
                   for a, b in cut.dialogue if a < cue.end and b > cue.start]
        return regions, "cut"
    total = max(int(scene.printed_lines), 1)
    return [(cue.duration_s * a / total, cue.duration_s * b / total) for a, b in scene.dialogue_spans], "script"


def check_delivery(cfg) -> None:
    """Refuse an unknown ``scoring.loudness_profile`` before anything is written."""
    if cfg.scoring.loudness_profile:
        from ..delivery import profile

        profile(cfg.scoring.loudness_profile)


def deliver(cfg, spotting: Spotting, sheet: pd.DataFrame, out_dir: Path, screenplay, *,
            progress: bool = False) -> dict[str, Any]:
    """What goes to the mix, for each model and seed (the first seed in ``delivery/<model>/``, others in
    ``delivery/<model>_s<seed>/``): every cue ducked under dialogue
    (``scoring.duck_dialogue``); the ducked score assembled and conformed as a whole to ``scoring.loudness_profile``
    when one is set (a programme loudness: ``delivery/<model>/score.wav``); each cue's stretch of that delivered
    score written as a Broadcast WAV stem ``delivery/<model>/stems/<cue>.wav`` whose ``bext`` TimeReference is its
    start timecode (so the stems keep the cues' relative levels, hold the true-peak ceiling and lay back up into the
    score); ``delivery.csv`` (one row per stem: dialogue regions, gain reduction, the programme gain, measured
    loudness and true peak); each cue's sidecar gains ``stem``, ``delivered_score``, ``ducking``, the stem's
    measured figures and, with a profile, ``loudness_target_lufs`` (the programme's) / ``true_peak_target_dbtp``; and ``preview.mp4`` (ffmpeg) with the first model's delivered score under the picture
    (``scoring.video``, else a plain frame with burnt-in timecode, scene heading and cue number).

    Returns the metrics of the delivery (per model: the score's measured loudness; the preview or why not).
    """
    import shutil

    from opentimelineio.opentime import RationalTime

    from .. import audio, delivery
    from ..artifacts import read_json, write_json, write_table
    from ..errors import DependencyError
    from .timeline import assemble_score

    s, cut = cfg.scoring, spotting.cut
    sr, ch = cfg.curation.sample_rate, (1 if cfg.curation.channels == "mono" else 2)
    prof = s.loudness_profile
    scenes = {sc.index: sc for sc in screenplay.scenes}
    by_scene = {c.scene: c for c in spotting.cues}
    tmap = {t.scene: t for t in spotting.timings}
    rows: list[dict[str, Any]] = []
    out: dict[str, Any] = {"profile": prof, "ducking": bool(s.duck_dialogue), "scores": {}}
    work = out_dir / ".delivery_work"
    if not len(sheet):
        return out
    seed0 = sheet["seed"].iloc[0]
    for (label, seed), d in sheet.groupby(["model", "seed"], sort=False):
        key = str(label) if seed == seed0 else f"{label}_s{seed}"  # the first seed keeps the plain model name
        folder = out_dir / "delivery" / key
        ducked_files, per_cue = [], []
        for r in d.sort_values("start_s").itertuples():
            c = by_scene[int(r.scene)]
            wav, _ = audio.load(out_dir / r.file)
            regions, source = dialogue_regions(c, scenes[c.scene], cut)
            ducking: list[dict[str, Any]] = []
            if s.duck_dialogue and regions:
                wav, ducking = delivery.duck(wav, sr, regions=regions, depth_db=s.duck_db, ramp_s=s.duck_ramp_s)
            ducked = work / key / f"{c.cue}.wav"
            ducked.parent.mkdir(parents=True, exist_ok=True)
            audio.write(ducked, wav, sr, subtype="FLOAT")
            ducked_files.append((tmap[c.scene], ducked))
            per_cue.append((r, c, regions, source, ducking))
        # The profile is a programme loudness: the ducked score is conformed as a whole, and each stem is its cue's
        # stretch of that delivered score, so the stems keep the cues' relative levels and lay back up into it.
        raw = work / key / "score.wav"
        assemble_score(ducked_files, raw, total_s=spotting.total_s, sr=sr, channels=ch, peak_db=None,
                       progress=progress)
        score, _ = audio.load(raw)
        report: dict[str, Any] = {}
        if prof:
            score, report = delivery.conform(score, sr, profile=prof)
        audio.write(folder / "score.wav", score, sr, subtype="PCM_24")
        out["scores"][key] = {"file": str((folder / "score.wav").relative_to(out_dir)), **report}
        for r, c, regions, source, ducking in per_cue:
            t = tmap[c.scene]
            a = int(round(t.start_s * sr))
            stem = score[:, a: a + int(round(t.cue_s * sr))]
            lufs, peak = audio.loudness(stem[:5], sr), audio.true_peak_db(stem, sr)
            lufs = round(float(lufs), 3) if np.isfinite(lufs) else None  # a cue under 0.4 s has no gated loudness
            peak = round(float(peak), 3) if np.isfinite(peak) else None
            stem_path = folder / "stems" / f"{c.cue}.wav"
            stem_path.parent.mkdir(parents=True, exist_ok=True)
            delivery.write_bwf(stem_path, stem, sr, time_reference=RationalTime(cut.origin + c.start, cut.rate),
                               description=f"{c.cue} {c.heading}", originator_reference=c.cue,
                               loudness_lufs=lufs, true_peak_dbtp=peak)
            rel = str(stem_path.relative_to(out_dir))
            rows.append({"model": label, "seed": int(seed), "cue": c.cue, "scene": c.scene, "stem": rel, "tc_in": c.tc_in,
                         "time_reference_samples": round((cut.origin + c.start) * sr / cut.rate),
                         "dialogue_source": source if regions else "", "dialogue_regions": len(regions),
                         "ducked_db": max((x["gain_reduction_db"] for x in ducking), default=0.0),
                         "programme_gain_db": report.get("gain_db"), "loudness_lufs": lufs, "true_peak_dbtp": peak,
                         "true_peak_target_dbtp": report.get("true_peak_target_dbtp")})
            side_path = (out_dir / r.file).with_suffix(".json")
            side = read_json(side_path)
            side.update({"stem": rel, "delivered_score": out["scores"][key]["file"],
                         "ducking": {"source": source, "regions": ducking}, "stem_loudness_lufs": lufs,
                         "stem_true_peak_dbtp": peak})
            if prof:
                side.update({k: report[k] for k in ("loudness_target_lufs", "true_peak_target_dbtp")})
            write_json(side_path, side)
    write_table(pd.DataFrame(rows), out_dir, "delivery")
    out["stems"] = len(rows)
    first = next(iter(out["scores"].values()))
    if s.preview:
        try:
            delivery.render_preview(out_dir / "preview.mp4", duration_s=spotting.total_s, fps=cut.fps,
                                    cues=[{"start_s": c.start_s, "end_s": c.start_s + c.duration_s, "cue": c.cue,
                                           "heading": c.heading} for c in spotting.cues],
                                    audio=out_dir / first["file"], video=s.video, start_timecode=cut.tc(0))
            out["preview"] = "preview.mp4"
        except DependencyError as exc:  # no ffmpeg: everything else is delivered; say what is missing
            out["preview"] = f"not rendered: {exc}"
    shutil.rmtree(work, ignore_errors=True)
    return out
