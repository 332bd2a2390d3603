"""What an editor, a mixer and a music supervisor open: the timeline (``.otio``, CMX 3600 ``.edl``, FCP 7 ``.xml``),
the PRO-style music cue sheet and the spotting notes (HTML).

The timeline (:func:`build_timeline`) starts at the cut's record timecode and holds the cut's picture track when
one was given, and a ``Music`` track with one clip per cue, named by its cue number, exactly its frames long, its
hit points as markers and its fades in the clip metadata (``echoscript.fade_in_s`` / ``fade_out_s``).
:func:`write_timelines` writes it through OpenTimelineIO's own adapters. The CMX 3600 writer writes one track and
no start timecode, so the EDL is written from the music track alone, starting at the cut's record timecode (its
events are ``A`` events at the cues' record times).
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifacts import atomic_path, atomic_write_text
from .cues import SpottedCue
from .cut import Cut, _otio, frames_to_tc
from .match import SceneMatch

__all__ = ["PRO_COLUMNS", "build_timeline", "pro_cue_sheet", "read_music_events", "spotting_notes_html",
           "write_timelines"]

#: The music cue sheet's columns (the layout performing-rights organisations take; composer and publisher are
#: left for the production to fill in).
PRO_COLUMNS = ["sequence", "cue_number", "title", "usage", "tc_in", "tc_out", "duration", "composer",
               "composer_affiliation", "composer_share", "publisher", "publisher_affiliation", "publisher_share"]


def build_timeline(cues: list[SpottedCue], cut: Cut | None, *, files: dict[str, str],
                   fades: dict[str, tuple[float, float]] | None = None, name: str = "score", rate: float | None = None,
                   origin: int | None = None, n_frames: int | None = None):
    """The score as an OTIO timeline (see the module notes).

    Args:
        cues: the spotted cues (picture order).
        cut: the cut (its picture track is copied in); ``None`` without one.
        files: cue number → the cue's audio file (a path relative to where the timeline is written).
        fades: cue number → ``(fade_in_s, fade_out_s)``.
    """
    otio = _otio()
    RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
    rate = float(rate or (cut.rate if cut else cues[0].rate))
    origin = int(origin if origin is not None else (cut.origin if cut else 0))
    tl = otio.schema.Timeline(name=name, global_start_time=RT(origin, rate))
    video = cut.video_track() if cut is not None else None
    if video is not None:
        tl.tracks.append(video)
    music = otio.schema.Track(name="Music", kind=otio.schema.TrackKind.Audio)
    at = 0
    for c in sorted(cues, key=lambda c: c.start):
        if c.start > at:
            music.append(otio.schema.Gap(source_range=TR(RT(0, rate), RT(c.start - at, rate))))
        fin, fout = (fades or {}).get(c.cue, (0.0, 0.0))
        clip = otio.schema.Clip(
            name=c.cue,
            media_reference=otio.schema.ExternalReference(target_url=files.get(c.cue, f"{c.cue}.wav"),
                                                          available_range=TR(RT(0, rate), RT(c.frames, rate))),
            source_range=TR(RT(0, rate), RT(c.frames, rate)),
            metadata={"echoscript": {"scene": c.scene, "heading": c.heading, "bpm": c.bpm, "tc_in": c.tc_in,
                                     "tc_out": c.tc_out, "frames": c.frames, "fade_in_s": round(fin, 4),
                                     "fade_out_s": round(fout, 4)}})
        for h in c.hits:
            label = h["label"] if h["label"].upper().startswith("HIT") else f"HIT {h['label']}"
            clip.markers.append(otio.schema.Marker(name=label[:60],
                                                   marked_range=TR(RT(h["frame"] - c.start, rate), RT(0, rate)),
                                                   color=otio.schema.MarkerColor.RED))
        music.append(clip)
        at = c.end
    total = max(int(n_frames or 0), at, cut.n_frames if cut else 0)
    if total > at:
        music.append(otio.schema.Gap(source_range=TR(RT(0, rate), RT(total - at, rate))))
    tl.tracks.append(music)
    return tl


def write_timelines(tl, folder: str | os.PathLike, *, stem: str = "timeline") -> dict[str, Path]:
    """Write ``tl`` as ``<stem>.otio``, ``<stem>.edl`` (the music track, CMX 3600) and ``<stem>.xml`` (FCP 7)
    through OTIO's adapters, atomically. Returns ``{"otio", "edl", "xml"}`` → path."""
    otio = _otio()
    folder = Path(folder)
    rate = float(tl.global_start_time.rate)
    origin = int(round(tl.global_start_time.value))
    music = next(t for t in tl.tracks if t.name == "Music")
    edl_tl = otio.schema.Timeline(name=tl.name)
    m = music.clone()
    m.source_range = otio.opentime.TimeRange(otio.opentime.RationalTime(-origin, rate), music.duration())
    placeholder = otio.schema.Track(name="V", kind=otio.schema.TrackKind.Video)
    placeholder.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(
        otio.opentime.RationalTime(0, rate), music.duration())))
    edl_tl.tracks.extend([m, placeholder])  # the CMX writer writes the first track and needs one picture track
    texts = {"otio": otio.adapters.write_to_string(tl, "otio_json"),
             "edl": otio.adapters.write_to_string(edl_tl, "cmx_3600", rate=rate),
             "xml": otio.adapters.write_to_string(tl, "fcp_xml")}
    return {k: atomic_write_text(folder / f"{stem}.{k}", v) for k, v in texts.items()}


def read_music_events(path: str | os.PathLike, *, rate: float) -> list[dict[str, Any]]:
    """Read a written timeline back through OTIO's adapters: ``[{"cue", "tc_in", "tc_out", "frames"}]`` of its
    music clips (the first audio track; an EDL's only track)."""
    otio = _otio()
    p = Path(path)
    kw = {"rate": rate} if p.suffix.lower() == ".edl" else {}
    tl = otio.adapters.read_from_file(str(p), **kw)
    tracks = [t for t in tl.tracks if t.kind == otio.schema.TrackKind.Audio] or list(tl.tracks)
    track = tracks[0]
    if p.suffix.lower() == ".edl":  # the EDL reader keeps the first record-in as the track's negative start
        origin = -int(round(track.source_range.start_time.rescaled_to(rate).value)) if track.source_range else 0
    else:
        origin = int(round(tl.global_start_time.rescaled_to(rate).value)) if tl.global_start_time else 0
    out = []
    for item in track:
        if isinstance(item, otio.schema.Clip):
            r = item.range_in_parent()
            a = int(round(r.start_time.rescaled_to(rate).value))
            b = int(round(r.end_time_exclusive().rescaled_to(rate).value))
            out.append({"cue": item.name, "tc_in": frames_to_tc(origin + a, rate),
                        "tc_out": frames_to_tc(origin + b, rate), "frames": b - a})
    return out


def pro_cue_sheet(cues: list[SpottedCue], *, title: str, moods: dict[int, str] | None = None,
                  usage: str = "BI") -> pd.DataFrame:
    """The music cue sheet (:data:`PRO_COLUMNS`), one row per cue in picture order. ``usage``: ``BI``
    (background instrumental: underscore, what the workbook writes); ``BV`` / ``BS`` / ``VI`` where the production
    changes it. Duration as ``MM:SS`` (rounded up to the second, as PROs count it)."""
    rows = []
    for k, c in enumerate(sorted(cues, key=lambda c: c.start), 1):
        secs = math.ceil(round(c.frames / c.rate, 6))
        mood = (moods or {}).get(c.scene)
        name = " ".join(w.capitalize() for w in c.heading.split()) + (f" ({mood})" if mood else "")
        rows.append({"sequence": k, "cue_number": c.cue, "title": f"{title}: {name}", "usage": usage,
                     "tc_in": c.tc_in, "tc_out": c.tc_out, "duration": f"{secs // 60:02d}:{secs % 60:02d}",
                     **{col: "" for col in PRO_COLUMNS[7:]}})
    return pd.DataFrame(rows, columns=PRO_COLUMNS)


def spotting_notes_html(path: str | os.PathLike, *, title: str, cues: list[SpottedCue], matches: list[SceneMatch],
                        plans: dict[int, dict[str, Any]], cut: Cut, unmatched_events: list[Any] = ()) -> Path:
    """The spotting notes as one HTML page: per cue its number, timecodes, frames, scene, mood and intensity,
    tempo and hit points (each with the beat it lands on, its error in ms and the frame); then the scene match."""
    e = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>Spotting notes: {e(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}th{background:#eee}</style>",
             f"<h1>Spotting notes: {e(title)}</h1>",
             f"<p>Cut <code>{e(cut.path.name)}</code> at {cut.fps:g} fps, {cut.tc(0)} – {cut.tc(cut.n_frames)} "
             f"({cut.n_frames} frames). Times are from the cut.</p>",
             "<table><tr><th>cue</th><th>scene</th><th>TC in</th><th>TC out</th><th>frames</th><th>mood</th>"
             "<th>intensity</th><th>tempo (bpm)</th><th>hit points</th></tr>"]
    for c in cues:
        p = plans.get(c.scene, {})
        hits = "<br>".join(f"{e(h['tc'])} {e(h['label'])} [{e(h['source'])}] → beat {h['beat']}, "
                           f"{h['error_ms']:+.1f} ms, frame {c.origin + h['beat_frame']} ({e(frames_to_tc(c.origin + h['beat_frame'], c.rate))})"
                           for h in c.hits) or "–"
        tempo = f"{c.bpm:g}" + (f" (planned {c.bpm_planned:g}, range {c.bpm_range[0]:g}–{c.bpm_range[1]:g})"
                                if c.hits else "")
        parts.append(f"<tr><td><b>{e(c.cue)}</b></td><td>{c.scene} {e(c.heading)}</td><td>{e(c.tc_in)}</td>"
                     f"<td>{e(c.tc_out)}</td><td>{c.frames}</td><td>{e(str(p.get('mood', '')))}</td>"
                     f"<td>{p.get('intensity', '')}</td><td>{e(tempo)}</td><td>{hits}</td></tr>")
    parts.append("</table><h2>Scenes matched to the cut</h2><table><tr><th>scene</th><th>heading</th>"
                 "<th>matched by</th><th>events</th><th>TC in</th><th>TC out</th><th>frames</th></tr>")
    for m in matches:
        r = m.as_row(cut)
        parts.append("<tr>" + "".join(f"<td>{e(str(r[k]))}</td>" for k in
                                      ("scene", "heading", "matched_by", "events", "tc_in", "tc_out", "frames"))
                     + "</tr>")
    parts.append("</table>")
    if unmatched_events:
        parts.append("<p>Events that name no scene: " + ", ".join(e(ev.name) for ev in unmatched_events) + "</p>")
    return atomic_write_text(path, "\n".join(parts) + "\n")


def write_cue_sheet_csv(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    with atomic_path(path, suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    return Path(path)
