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

A bad script (missing, empty, binary, not UTF-8, no scene) raises :class:`~echoscript_utils.errors.InputError`
before anything is written.
"""

from __future__ import annotations

from .stage import CUE_SHEET_COLUMNS, ScoringResult, demo_script, plan_screenplay, read_screenplay, run, score

__all__ = ["CUE_SHEET_COLUMNS", "ScoringResult", "demo_script", "plan_screenplay", "read_screenplay", "run",
           "score"]
