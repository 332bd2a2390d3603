"""Spotting to picture: a screenplay's cues timed from the editor's cut, and the score handed back as a timeline.

Below the stages (a stage may import it; it imports no stage). :mod:`.cut` reads the cut through OpenTimelineIO
(``.otio``, CMX 3600 ``.edl``, FCP 7 ``.xml``, FCP X ``.fcpxml``) or a spotting CSV; :mod:`.match` matches the
script's scenes to it and finds the hit points; :mod:`.cues` numbers the cues (1M1 …), times them to the frame and
solves each cue's tempo so its hits fall on beats; :mod:`.export` writes the timeline (``.otio``, ``.edl``,
``.xml``), the PRO-style music cue sheet and the spotting notes.
"""

from __future__ import annotations

from .cues import SpottedCue, cue_number, solve_tempo, spot_cues
from .cut import CUT_SUFFIXES, Cut, Event, Marker, frames_to_tc, read_cut, tc_to_frames, timecode_rate
from .export import (
    PRO_COLUMNS,
    build_timeline,
    pro_cue_sheet,
    read_music_events,
    spotting_notes_html,
    write_timelines,
)
from .match import ACTION_BEATS, Hit, SceneMatch, action_beats, match_scenes, scene_hits

__all__ = ["ACTION_BEATS", "CUT_SUFFIXES", "PRO_COLUMNS", "Cut", "Event", "Hit", "Marker", "SceneMatch",
           "SpottedCue", "action_beats", "build_timeline", "cue_number", "frames_to_tc", "match_scenes",
           "pro_cue_sheet", "read_cut", "read_music_events", "scene_hits", "solve_tempo", "spot_cues",
           "spotting_notes_html", "tc_to_frames", "timecode_rate", "write_timelines"]
