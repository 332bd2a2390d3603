"""Stage 08, script to score: a screenplay in, a spotted cue sheet and a scored timeline out.

``score(script, cfg, output_dir=DIR)`` (and ``echoscript score SCRIPT --params P --output DIR``) reads a Fountain
or Final Draft screenplay (:mod:`.parse`), plans one cue per scene (:mod:`.plan`), generates each spotted cue
with every model (:mod:`.generate`), and lays them on the screen-time timeline with crossfades at the scene
boundaries (:mod:`.timeline`). Products under ``DIR``:

- ``cue_sheet.csv`` (``scene, heading, start_s, duration_s, mood, intensity, bpm, prompt, file`` and more; one
  row per model × seed × cue) and ``cue_sheet.tex``; ``scenes.csv`` (every scene, spotted or not);
- ``<model>/cueNNN_s<seed>.wav`` with a JSON sidecar each, and ``<model>/score_s<seed>.wav``;
- ``score.wav``: the first model's first seed on the full timeline;
- ``timeline.pdf`` / ``timeline.png`` (scenes along screen time with mood and intensity), ``players.html``;
- ``relevance.csv``: CLAP relevance of each cue to its own scene text vs the other scenes', with intervals;
- ``metrics.json``.

With a cut (``edit=`` / ``scoring.edit`` / ``--edit CUT``, see :mod:`.picture`), cue times come from the cut, to the
frame, and ``DIR`` also holds ``spotting_notes.html``, ``spotting.csv``, ``scene_match.csv``, ``hits.csv``,
``music_cue_sheet.csv``, ``score.otio`` / ``score.edl`` / ``score.xml``, ``delivery/<model>/stems/<cue>.wav``
(Broadcast WAV) and ``delivery/<model>/score.wav``, ``delivery.csv`` and ``preview.mp4``. Without one the cue
sheet's ``timing`` column says ``estimate`` (page count).

A bad script (missing, empty, binary, not UTF-8, no scene; for the offline planner, not in Latin letters) raises
:class:`~echoscript_utils.errors.InputError` before anything is written. Everything after planning is written into
a staging folder beside ``DIR`` and swapped in at the end; a failure names the step (and the scene) in one line and
leaves ``DIR`` as it was: a complete earlier product set, or nothing.
"""

from __future__ import annotations

from .stage import (
    CUE_SHEET_COLUMNS,
    ScoringResult,
    demo_cut,
    demo_script,
    labelled_screenplays,
    plan_screenplay,
    planner_report,
    read_screenplay,
    run,
    score,
)

__all__ = ["CUE_SHEET_COLUMNS", "ScoringResult", "demo_cut", "demo_script", "labelled_screenplays", "plan_screenplay",
           "planner_report", "read_screenplay", "run", "score"]
