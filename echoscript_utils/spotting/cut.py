"""The picture cut as the spotting reads it: events (shots or scenes) and markers on one frame grid.

:func:`read_cut` takes anything OpenTimelineIO reads through its maintained adapters (``.otio``, CMX 3600
``.edl``, FCP 7 ``.xml``, FCP X ``.fcpxml`` / ``.fcpx``) and a plain spotting CSV (``scene, start_tc, end_tc``
and an optional ``hits`` column of timecodes separated by ``;``). Every time is a whole frame of the cut's rate,
counted from the start of the cut's first track; ``origin`` is the record timecode of frame 0. Timecode text is
read and written by OpenTimelineIO's :class:`~opentimelineio.opentime.RationalTime` (23.976, 24, 25, 29.97
drop-frame, …), never by hand.

Bad input raises :class:`~echoscript_utils.errors.InputError` with the file and, where there is one, the line: a
cut OTIO cannot read, a frame rate the timecodes do not fit (a frame field at or beyond the rate), events whose
record times overlap, an end before its start.
"""

from __future__ import annotations

import csv
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DependencyError, InputError

__all__ = ["CUT_SUFFIXES", "Cut", "Event", "Marker", "frames_to_tc", "read_cut", "timecode_rate", "tc_to_frames"]

#: What :func:`read_cut` reads, by suffix.
CUT_SUFFIXES = {".otio": "otio_json", ".edl": "cmx_3600", ".xml": "fcp_xml", ".fcpxml": "fcpx_xml",
                ".fcpx": "fcpx_xml", ".csv": "csv"}
_TC = re.compile(r"\b\d{1,2}:\d{2}:\d{2}[:;.]\d{2,3}\b")
_LOC_LINE = re.compile(r"^\s*\*\s*LOC:\s*(\d{2}:\d{2}:\d{2}[:;.]\d{2})\s*(\w*)\s*(.*?)\s*$", re.IGNORECASE)
_EVENT_LINE = re.compile(r"^\s*(\d{1,6})\s+(\S+)\s+(\S+)\s+(\S+)\s+(?:\d+\s+)?"
                         r"(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*$")


def _otio():
    try:
        import opentimelineio as otio
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise DependencyError("opentimelineio is not installed; pip install opentimelineio otio-cmx3600-adapter "
                              "otio-fcp-adapter otio-fcpx-xml-adapter") from exc
    return otio


def timecode_rate(fps: float) -> float:
    """The timecode rate OTIO uses for ``fps`` (23.976 → 24000/1001, 29.97 → 30000/1001, 24 → 24.0)."""
    otio = _otio()
    if fps <= 0:
        raise InputError(f"frame rate {fps} is not positive; pass --fps 24 (or 23.976, 25, 29.97)")
    rate = otio.opentime.RationalTime.nearest_valid_timecode_rate(float(fps))
    return float(rate) if abs(rate - fps) < 0.01 else float(fps)


def tc_to_frames(tc: str, rate: float) -> int:
    """Frames since 00:00:00:00 of a timecode (``;`` marks drop-frame), through OTIO; ``ValueError`` when the
    timecode does not fit ``rate``."""
    return int(round(_otio().opentime.from_timecode(tc.strip(), rate).value))


def frames_to_tc(frames: int, rate: float) -> str:
    """The timecode of a frame count at ``rate`` (drop-frame at 29.97 and 59.94), through OTIO."""
    otio = _otio()
    return otio.opentime.to_timecode(otio.opentime.RationalTime(int(frames), rate), rate)


@dataclass
class Marker:
    """A marker of the cut: a name at a frame (from the cut's start), with its source line when known."""

    name: str
    frame: int
    line: int | None = None
    color: str = ""


@dataclass
class Event:
    """One event of the cut: frames ``[start, end)`` from the cut's start."""

    name: str
    start: int
    end: int
    line: int | None = None
    scene: str | None = None  # a spotting CSV's scene column (number or heading)
    hits: list[int] = field(default_factory=list)  # a spotting CSV's hit frames

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass
class Cut:
    """A picture cut on one frame grid (see the module notes)."""

    path: Path
    rate: float  # timecode rate (24000/1001 for 23.976)
    origin: int  # record timecode of frame 0, in frames
    events: list[Event]
    markers: list[Marker] = field(default_factory=list)
    dialogue: list[tuple[int, int]] = field(default_factory=list)  # frames [start, end) of a dialogue track
    timeline: Any = None  # the opentimelineio Timeline as read (None for a spotting CSV)
    format: str = "otio_json"

    @property
    def n_frames(self) -> int:
        return max((e.end for e in self.events), default=0)

    @property
    def fps(self) -> float:
        return round(self.rate, 3)

    def tc(self, frame: int) -> str:
        """Record timecode of a frame of the cut."""
        return frames_to_tc(self.origin + int(frame), self.rate)

    def seconds(self, frame: int) -> float:
        return int(frame) / self.rate

    def video_track(self):
        """The cut's first video track (a clone), or ``None``. Media without a known extent get their clip's
        source range as their available range (the FCP XML writer needs one; an EDL gives none)."""
        if self.timeline is None:
            return None
        otio = _otio()
        for t in self.timeline.tracks:
            if t.kind == otio.schema.TrackKind.Video:
                track = t.clone()
                for clip in track.find_clips():
                    ref = clip.media_reference
                    if getattr(ref, "available_range", True) is None and clip.source_range is not None:
                        ref.available_range = clip.source_range
                return track
        return None


def read_cut(path: str | os.PathLike, *, fps: float | None = None) -> Cut:
    """Read a cut (see the module notes).

    Args:
        path: ``.otio``, ``.edl``, ``.xml`` (FCP 7), ``.fcpxml`` / ``.fcpx`` or a spotting ``.csv``.
        fps: the frame rate; needed by EDLs and CSVs (they carry none; default 24), checked against the
            file's own rate for the others.

    Raises:
        InputError: one line naming the file (and line) and what to do.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: cut not found; pass an .otio, .edl, FCP .xml, .fcpxml or spotting .csv file")
    fmt = CUT_SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        raise InputError(f"{p}: unknown cut format {p.suffix!r}; pass one of {', '.join(sorted(CUT_SUFFIXES))}")
    if fmt == "csv":
        return _read_csv(p, timecode_rate(fps or 24.0))
    if fmt == "cmx_3600":
        rate = timecode_rate(fps or 24.0)
        origin, locators = _scan_edl(p, rate)
        cut = _from_timeline(p, _read_otio(p, fmt, rate=rate), rate=rate, fmt=fmt, origin=origin,
                             locators=locators)
    else:
        if fmt in ("fcp_xml", "fcpx_xml"):
            _check_xml(p)
        tl = _read_otio(p, fmt)
        rate = _timeline_rate(p, tl)
        if fps is not None and abs(timecode_rate(fps) - rate) > 0.01:
            raise InputError(f"{p}: the cut runs at {rate:.3f} fps but {fps} fps was given; drop --fps or pass "
                             f"--fps {round(rate, 3):g}")
        cut = _from_timeline(p, tl, rate=rate, fmt=fmt, origin=None)
    if not cut.events:
        raise InputError(f"{p}: the cut has no clips on its picture track; export the cut with its events")
    return cut


# --------------------------------------------------------------------------------------------- readers
def _read_otio(p: Path, fmt: str, **kw):
    otio = _otio()
    try:
        return otio.adapters.read_from_file(str(p), adapter_name=fmt, **kw)
    except Exception as exc:  # adapters raise anything from ValueError to their own parse errors
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        line = _line_of(p, msg)
        where = f"{p}:{line}" if line else f"{p}"
        raise InputError(f"{where}: OpenTimelineIO cannot read this cut ({type(exc).__name__}: {msg}); export it "
                         f"again as .otio, CMX 3600 .edl or FCP .xml") from None


def _line_of(p: Path, msg: str) -> int | None:
    """The line of ``p`` holding a timecode or name quoted in an adapter's message, when there is one."""
    m = re.search(r"line (\d+)", msg)
    if m:
        return int(m.group(1))
    tokens = _TC.findall(msg) or re.findall(r"'([^']{3,})'", msg)
    if not tokens:
        return None
    try:
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for i, text in enumerate(lines, 1):
        if any(t in text for t in tokens):
            return i
    return None


def _check_xml(p: Path) -> None:
    try:
        ET.parse(p)
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        raise InputError(f"{p}:{line}: not well-formed XML ({exc}); export the cut again") from None


def _scan_edl(p: Path, rate: float) -> tuple[int, dict[int, list[tuple[int, str, str, int]]]]:
    """Check every event line of an EDL against ``rate`` and for overlapping record times before OTIO reads it.

    Returns the first record-in (the cut's origin) in frames, and the ``* LOC:`` locators of each event (its
    1-based position among the event lines → ``[(frames, color, name, line)]``): the CMX 3600 reader drops
    locators written in drop-frame timecode (``;``), so the spotting reads them here for every rate.
    """
    locators: dict[int, list[tuple[int, str, str, int]]] = {}
    n_event = 0
    try:
        lines = p.read_text(encoding="utf-8", errors="strict").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not a text EDL ({exc.reason}); export the cut as CMX 3600") from None
    origin = None
    last_out: dict[str, tuple[int, int]] = {}
    for i, text in enumerate(lines, 1):
        loc = _LOC_LINE.match(text)
        if loc and n_event:
            try:
                at = tc_to_frames(loc.group(1), rate)
            except ValueError as exc:
                raise InputError(f"{p}:{i}: the locator timecode {loc.group(1)} does not fit {rate:.3f} fps ({exc}); "
                                 f"pass the cut's frame rate with --fps") from None
            locators.setdefault(n_event, []).append((at, loc.group(2), loc.group(3), i))
            continue
        m = _EVENT_LINE.match(text)
        if not m:
            continue
        n_event += 1
        tcs = m.groups()[4:8]
        if not all(_TC.fullmatch(t) for t in tcs):
            continue
        frames = []
        for t in tcs:
            try:
                frames.append(tc_to_frames(t, rate))
            except ValueError as exc:
                raise InputError(f"{p}:{i}: the timecode {t} does not fit {rate:.3f} fps ({exc}); pass the cut's "
                                 f"frame rate with --fps") from None
        rec_in, rec_out = frames[2], frames[3]
        if rec_out < rec_in:
            raise InputError(f"{p}:{i}: event {m.group(1)} ends ({tcs[3]}) before it starts ({tcs[2]}); fix the EDL")
        channel = m.group(3).upper()
        track = "V" if channel.startswith("V") else "A"
        prev = last_out.get(track)
        if prev is not None and rec_in < prev[0] and m.group(4).upper() == "C":
            raise InputError(f"{p}:{i}: event {m.group(1)} starts at {tcs[2]}, inside the event on line {prev[1]} "
                             f"(overlapping events); fix the cut's record times")
        last_out[track] = (max(rec_out, prev[0] if prev else rec_out), i)
        origin = rec_in if origin is None else min(origin, rec_in)
    if origin is None:
        raise InputError(f"{p}: no CMX 3600 event lines (NNN REEL V C IN OUT IN OUT); export the cut as CMX 3600")
    return origin, locators


def _timeline_rate(p: Path, tl) -> float:
    for clip in tl.find_clips():
        return timecode_rate(clip.duration().rate)
    raise InputError(f"{p}: the cut has no clips; export the cut with its events")


def _event_lines(p: Path) -> dict[int, int]:
    """EDL event number → line (so events read by OTIO keep their line)."""
    out = {}
    for i, text in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        m = _EVENT_LINE.match(text)
        if m:
            out.setdefault(int(m.group(1)), i)
    return out


def _from_timeline(p: Path, tl, *, rate: float, fmt: str, origin: int | None,
                   locators: dict[int, list[tuple[int, str, str, int]]] | None = None) -> Cut:
    otio = _otio()
    tracks = list(tl.tracks)
    video = [t for t in tracks if t.kind == otio.schema.TrackKind.Video] or tracks
    if not video:
        raise InputError(f"{p}: the cut has no tracks; export the cut with its picture track")
    track = video[0]
    if origin is None:  # the EDL's first record-in is scanned by the caller (its reader keeps no start time)
        gst = tl.global_start_time
        origin = int(round(gst.rescaled_to(rate).value)) if gst is not None else 0

    def frame(t) -> int:
        return int(round(t.rescaled_to(rate).value))

    numbers = _event_lines(p) if fmt == "cmx_3600" else {}
    events, markers = [], []
    n_clip = 0
    for item in track:
        if not isinstance(item, otio.schema.Clip):
            continue
        n_clip += 1
        r = item.range_in_parent()
        start, end = frame(r.start_time), frame(r.end_time_exclusive())
        events.append(Event(name=item.name or f"event {n_clip}", start=start, end=end, line=numbers.get(n_clip)))
        src = int(round(item.trimmed_range().start_time.rescaled_to(rate).value))
        if locators is not None:  # an EDL: its locators as scanned (see _scan_edl)
            found = [(at, color, name, line) for at, color, name, line in locators.get(n_clip, [])]
        else:
            found = [(frame(mk.marked_range.start_time), str(mk.color or ""), mk.name, numbers.get(n_clip))
                     for mk in item.markers]
        for at, color, name, line in found:
            f = start + at - src  # a marker lies in its clip's source time (OTIO, and EDLs that OTIO writes) …
            if not start <= f < end:  # … or, in many editors' EDLs, at its record timecode
                f = at - origin
            markers.append(Marker(name=name or color or "marker", frame=f, line=line, color=color))
    for holder in (track, tl.tracks):
        for mk in holder.markers:
            markers.append(Marker(name=mk.name or "marker", frame=frame(mk.marked_range.start_time),
                                  color=str(mk.color or "")))
    dialogue = []
    for t in tracks:
        if t.kind == otio.schema.TrackKind.Audio and re.search(r"dia|dx", t.name or "", re.IGNORECASE):
            for item in t:
                if isinstance(item, otio.schema.Clip):
                    r = item.range_in_parent()
                    dialogue.append((frame(r.start_time), frame(r.end_time_exclusive())))
    events.sort(key=lambda e: e.start)
    markers.sort(key=lambda m: m.frame)
    return Cut(path=p, rate=rate, origin=origin, events=events, markers=markers, dialogue=dialogue, timeline=tl,
               format=fmt)


def _read_csv(p: Path, rate: float) -> Cut:
    """A spotting CSV: ``scene, start_tc, end_tc[, hits]`` (hits: timecodes separated by ``;``)."""
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not UTF-8 text ({exc.reason}); save the spotting CSV as UTF-8") from None
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        raise InputError(f"{p}: the spotting CSV is empty; give a header scene,start_tc,end_tc[,hits] and rows")
    head = [h.strip().lower() for h in rows[0]]
    missing = [c for c in ("scene", "start_tc", "end_tc") if c not in head]
    if missing:
        raise InputError(f"{p}:1: missing column(s) {', '.join(missing)}; the header is scene,start_tc,end_tc[,hits]")
    col = {h: i for i, h in enumerate(head)}

    def frames(value: str, line: int, what: str) -> int:
        value = value.strip()
        try:
            return tc_to_frames(value, rate)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{p}:{line}: {what} {value!r} is not a timecode at {rate:.3f} fps ({exc}); pass "
                             f"HH:MM:SS:FF and the cut's rate with --fps") from None

    parsed = []
    for i, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        if len(row) < 3:
            raise InputError(f"{p}:{i}: expected scene,start_tc,end_tc[,hits], got {len(row)} field(s)")
        def get(c: str, row: list[str] = row) -> str:
            return row[col[c]] if col[c] < len(row) else ""

        start, end = frames(get("start_tc"), i, "start_tc"), frames(get("end_tc"), i, "end_tc")
        if end <= start:
            raise InputError(f"{p}:{i}: end_tc {get('end_tc').strip()} is not after start_tc "
                             f"{get('start_tc').strip()}; fix the row")
        hits = []
        if "hits" in col:
            for h in re.split(r"[;\s]+", get("hits").strip()):
                if h:
                    f = frames(h, i, "hit")
                    if not start <= f < end:
                        raise InputError(f"{p}:{i}: hit {h} lies outside its scene ({get('start_tc').strip()} – "
                                         f"{get('end_tc').strip()}); move it inside")
                    hits.append(f)
        parsed.append((start, end, i, get("scene").strip(), hits))
    if not parsed:
        raise InputError(f"{p}: the spotting CSV has no rows; add one row per scene")
    parsed.sort()
    for (_, e0, l0, _, _), (s1, _, l1, _, _) in zip(parsed, parsed[1:]):
        if s1 < e0:
            raise InputError(f"{p}:{l1}: this row starts inside the row on line {l0} (overlapping events); fix "
                             f"the timecodes")
    origin = parsed[0][0]
    events = [Event(name=sc or f"row {ln}", start=s - origin, end=e - origin, line=ln, scene=sc or None,
                    hits=[h - origin for h in hits]) for s, e, ln, sc, hits in parsed]
    return Cut(path=p, rate=rate, origin=origin, events=events, format="csv")
