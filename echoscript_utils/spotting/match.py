"""Scenes matched to the events of a cut, and the hit points of each scene.

Matching, in this order (:func:`match_scenes`):

1. **scene number**: an event whose name (or spotting-CSV ``scene`` field) carries a scene number (``SC 3``,
   ``scene_03``, ``sq001_s003``, a bare ``3``, or the script's own ``#3#`` number);
2. **name**: an event named after the scene's heading or its location (``HARBOUR TOWN`` for
   ``EXT. HARBOUR TOWN - DAWN``), or a marker of that name (the scene starts at the marker);
3. **in order**: when no event names a scene, the events are taken one per scene in script order.

With names or numbers, shots without one belong to the scene before them, and a scene runs from its first shot
to the next scene's first shot. Scenes no event names get no cue and are named in the report, as are events that
name no scene. In order, a cut with fewer events than the script has scenes is an error (the cut is shorter than
the script); extra events are named.

A marker named ``MUSIC IN`` / ``CUE IN`` (or ``OUT``, ``START``, ``END``; :data:`BOUNDARY`) inside a scene puts
its cue's start (or end) there instead of at the scene's edge: the cue boundary falls on that hit.

Hit points (:func:`scene_hits`): the cut's markers inside the scene (except those that name a scene or a cue
boundary), the
spotting CSV's hits, and the script's action beats (:data:`ACTION_BEATS`: a gunshot, a door slam, a reveal …),
each placed at its position within the scene's action text (a beat two thirds of the way through the action
lands two thirds of the way through the scene on screen). Hits closer than ``min_gap_frames`` keep the first
(markers before script beats).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import InputError
from .cut import Cut, Event

__all__ = ["ACTION_BEATS", "BOUNDARY", "Hit", "SceneMatch", "action_beats", "match_scenes", "scene_hits"]

#: Action beats that music hits: label → pattern (whole words, any case).
ACTION_BEATS: dict[str, str] = {
    "gunshot": r"gun\s?shots?|shots? rings? out|shoots|fires (?:a|the|at|twice|again)|pulls the trigger",
    "door slam": r"door slams|slams the door|slams shut|door bursts open|kicks the door",
    "explosion": r"explodes?|explosion|blast|detonat\w+",
    "crash": r"crash(?:es|ing)?|smash(?:es)?|shatters?",
    "impact": r"slams (?:down|into)|snaps taut|collides?|hits the (?:ground|floor|water)",
    "lightning": r"lightning|thunder(?:clap)?",
    "scream": r"screams?|shrieks?",
    "freeze": r"freezes|stops dead|goes still",
    "reveal": r"reveal(?:s|ed|ing)?|turns to see|and there,|comes into view",
    "bells": r"bells? rings?|bells? toll",
    "cheer": r"crowd (?:cheers|roars)|cheers erupt",
}
_BEATS = [(label, re.compile(rf"\b(?:{pat})\b", re.IGNORECASE)) for label, pat in ACTION_BEATS.items()]
_NUMBER = re.compile(r"(?:^|[^a-z0-9])(?:sc|scn|scene|s)[\s_.\-]*0*(\d{1,4})[a-z]?(?![0-9])", re.IGNORECASE)
#: A marker that places a cue's start or end rather than a hit: ``MUSIC IN``, ``CUE OUT``, ``MX START`` …
BOUNDARY = re.compile(r"^\s*(?:cue|music|mx)\s*[-_ ]?\s*(in|out|start|end|stop)\b", re.IGNORECASE)
_BARE = re.compile(r"^\s*0*(\d{1,4})[a-z]?\s*$", re.IGNORECASE)
_PREFIX = re.compile(r"^\s*(?:int|ext|est|i/e|int\./ext|ext\./int)[\s./]+", re.IGNORECASE)


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _location(heading: str) -> str:
    """``EXT. HARBOUR TOWN - DAWN`` → ``harbour town``."""
    return _norm(re.split(r"\s+[-–—]\s+", _PREFIX.sub("", heading))[0])


@dataclass
class Hit:
    """A hit point: a frame of the cut, what it is and where it came from (``marker``, ``csv`` or ``script``)."""

    frame: int
    label: str
    source: str


@dataclass
class SceneMatch:
    """Where one scene lies in the cut (frames ``[start, end)``), and how it was found."""

    scene: int
    heading: str
    matched_by: str | None  # "scene number", "name", "marker", "order"; None: not in the cut
    events: list[str] = field(default_factory=list)
    start: int = 0
    end: int = 0
    hits: list[Hit] = field(default_factory=list)
    cue_in: int | None = None  # a MUSIC IN marker inside the scene: the cue starts there, not at the scene's start
    cue_out: int | None = None  # a MUSIC OUT marker: the cue ends there

    @property
    def frames(self) -> int:
        return self.end - self.start

    def as_row(self, cut: Cut) -> dict[str, Any]:
        ok = self.matched_by is not None
        return {"scene": self.scene, "heading": self.heading, "matched_by": self.matched_by or "not in the cut",
                "events": ";".join(self.events), "tc_in": cut.tc(self.start) if ok else "",
                "tc_out": cut.tc(self.end) if ok else "", "frames": self.frames if ok else 0,
                "hits": len(self.hits)}


def _scene_of(text: str, scenes, *, headings: bool = True) -> tuple[int, str] | None:
    """The scene a name points at: ``(index, how)``."""
    if not text:
        return None
    numbers = {str(s.scene_number).strip().lstrip("0").upper(): s.index for s in scenes if s.scene_number}
    m = _BARE.match(text) or _NUMBER.search(text)
    if m:
        n = m.group(1).lstrip("0") or "0"
        if n.upper() in numbers:
            return numbers[n.upper()], "scene number"
        if any(s.index == int(n) for s in scenes):
            return int(n), "scene number"
    if headings:
        t = _norm(text)
        if len(t) >= 4:
            for s in scenes:
                h, loc = _norm(s.heading), _location(s.heading)
                if t == h or (loc and (t == loc or (len(loc) >= 4 and loc in t))):
                    return s.index, "name"
    return None


def match_scenes(scenes, cut: Cut) -> tuple[list[SceneMatch], list[Event]]:
    """Match every scene to the cut (see the module notes).

    Returns ``(matches, unmatched_events)``: one :class:`SceneMatch` per scene in script order (``matched_by``
    ``None`` for a scene the cut lacks), and the events that name no scene.

    Raises:
        InputError: matching in order with fewer events than scenes (the cut is shorter than the script).
    """
    scenes = list(scenes)
    keyed = [(e, _scene_of(e.scene or e.name, scenes)) for e in cut.events]
    scene_marks = [(mk, _scene_of(mk.name, scenes)) for mk in cut.markers]
    scene_marks = [(mk, k) for mk, k in scene_marks if k is not None and re.search(r"sc|scene", mk.name, re.I)]
    out = {s.index: SceneMatch(scene=s.index, heading=s.heading, matched_by=None) for s in scenes}
    unmatched: list[Event] = []
    if any(k for _, k in keyed):
        current = None
        starts: list[tuple[int, int]] = []
        for e, k in keyed:
            if k is not None:
                current = out[k[0]]
                if current.matched_by is None:
                    current.matched_by, current.start, current.end = k[1], e.start, e.end
                    starts.append((e.start, current.scene))
            if current is None:
                unmatched.append(e)
                continue
            current.events.append(e.name)
            current.end = max(current.end, e.end)
        _close(out, starts, cut)
    elif scene_marks:
        starts = []
        for mk, (idx, _) in scene_marks:
            if out[idx].matched_by is None:
                out[idx].matched_by, out[idx].start = "marker", mk.frame
                out[idx].events.append(mk.name)
                starts.append((mk.frame, idx))
        for idx, _ in [(i, 0) for _, i in starts]:
            out[idx].end = cut.n_frames
        _close(out, starts, cut)
    else:
        if len(cut.events) < len(scenes):
            first_line = cut.events[-1].line
            where = f"{cut.path}:{first_line}" if first_line else f"{cut.path}"
            raise InputError(f"{where}: the cut has {len(cut.events)} event(s) but the script has {len(scenes)} "
                             f"scenes, and no event names a scene (the cut is shorter than the script); name the "
                             f"events after the scenes (SC 1, SC 2 …) or pass the cut of the whole script")
        for s, e in zip(scenes, cut.events):
            m = out[s.index]
            m.matched_by, m.start, m.end, m.events = "order", e.start, e.end, [e.name]
        unmatched = list(cut.events[len(scenes):])
    for s in scenes:
        m = out[s.index]
        if m.matched_by is not None:
            for mk in cut.markers:
                b = BOUNDARY.match(mk.name)
                if b and m.start <= mk.frame < m.end:
                    if b.group(1).lower() in ("in", "start"):
                        m.cue_in = mk.frame
                    elif mk.frame > m.start:
                        m.cue_out = mk.frame
            m.hits = scene_hits(s, m, cut, scene_markers={mk.name for mk, _ in scene_marks})
    return [out[s.index] for s in scenes], unmatched


def _close(out: dict[int, SceneMatch], starts: list[tuple[int, int]], cut: Cut) -> None:
    """Each named scene ends where the next one (in picture order) starts."""
    starts.sort()
    for (s0, i0), (s1, _i1) in zip(starts, starts[1:]):
        out[i0].end = min(out[i0].end, s1) if out[i0].end > s0 else s1
    if starts:
        last = out[starts[-1][1]]
        last.end = max(last.end, last.start + 1)


def action_beats(scene) -> list[tuple[float, str, str]]:
    """The scene's action beats: ``(position 0..1 within its action text, label, matched words)``."""
    text = scene.action_text
    if not text:
        return []
    found = []
    for label, pat in _BEATS:
        for m in pat.finditer(text):
            found.append((m.start() / max(len(text), 1), label, m.group(0)))
    return sorted(found)


def scene_hits(scene, match: SceneMatch, cut: Cut, *, script_beats: bool = True, min_gap_frames: int | None = None,
               scene_markers: set[str] | None = None) -> list[Hit]:
    """The hit points of one matched scene (see the module notes), in time order."""
    gap = int(round(cut.rate)) if min_gap_frames is None else int(min_gap_frames)
    lo, hi = match.start, match.end
    cands: list[Hit] = [Hit(frame=mk.frame, label=mk.name, source="marker") for mk in cut.markers
                        if lo <= mk.frame < hi and mk.name not in (scene_markers or set())
                        and not BOUNDARY.match(mk.name)]
    for e in cut.events:
        if e.name in match.events:
            cands += [Hit(frame=f, label="hit", source="csv") for f in e.hits if lo <= f < hi]
    if script_beats:
        for pos, label, words in action_beats(scene):
            f = lo + int(round(pos * (hi - lo)))
            if lo < f < hi:
                cands.append(Hit(frame=f, label=f"{label} ({words})", source="script"))
    kept: list[Hit] = []
    for h in sorted(cands, key=lambda h: (h.source == "script", h.frame)):
        if lo < h.frame < hi and all(abs(h.frame - k.frame) >= gap for k in kept):
            kept.append(h)
    return sorted(kept, key=lambda h: h.frame)
