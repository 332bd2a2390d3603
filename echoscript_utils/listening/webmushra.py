"""A webMUSHRA experiment for the pack (https://github.com/audiolabs/webMUSHRA).

The config follows webMUSHRA's YAML format: top-level ``testname``, ``testId``, ``bufferSize``,
``stopOnErrors``, ``showButtonPreviousPage``, ``remoteService`` and a ``pages`` list. Pages used here:

- ``generic`` (welcome and each scene's script), ``consent`` (``mustConsent``), ``volume`` (level check);
- ``likert_multi_stimulus``: one page per scenario and question, both clips of the scenario on the page
  (webMUSHRA shuffles their order), the 5-point scale as ``response``; page id ``<scenario>__<question>``;
- ``preference_test``: the binary preference per scenario, once for musical quality (``MOS``) and once for fit
  to the scene (``REL``); page id ``<scenario>__pref_<criterion>``;
- a nested list starting with ``random``: webMUSHRA shuffles the scenario blocks for every session;
- ``finish`` with a ``questionnaire`` (participant code and the demographic survey) and ``writeResults``.

Stimulus keys are the blinded clip ids, so webMUSHRA's result files map back to ``key.csv`` directly.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import pandas as pd
import yaml

from ..artifacts import atomic_write_text
from .study import QUESTION_LABELS, QUESTION_TEXT, QUESTIONS, SCALE

__all__ = ["webmushra_config", "write_webmushra"]

PREFERENCE_TEXT = {
    "MOS": "Which clip has the better <b>musical quality</b> (clarity, production, transitions, balance)?",
    "REL": "Which clip <b>fits the scene</b> better (mood, scene, emotion, the script's cues)?",
}


def _likert_scale() -> list[dict]:
    return [{"value": k, "label": f"{k} – {v}"} for k, v in SCALE.items()]


def _choice(name: str, label: str, options) -> dict:
    return {"type": "likert", "name": name, "label": label,
            "response": [{"value": o, "label": o.replace("_", " ")} for o in options]}


def webmushra_config(key: pd.DataFrame, scenarios: pd.DataFrame, *, audio_prefix: str,
                     test_id: str = "listening_test", questions: dict[str, str] | None = None,
                     remote_service: str = "service/write.php") -> dict:
    """The experiment as a dict (``yaml.safe_dump`` it, or use :func:`write_webmushra`).

    Args:
        key: ``clip,scenario`` (the model column is never read).
        scenarios: ``scenario,description`` (the script each pair is judged against).
        audio_prefix: folder of the WAVs relative to the webMUSHRA root.
        test_id: webMUSHRA's ``testId`` (names the results folder).
        questions: ``question → dimension``; default the paper's eight.
    """
    questions = questions or QUESTIONS
    desc = dict(zip(scenarios["scenario"], scenarios["description"], strict=True))

    def path(clip: str) -> str:
        return f"{audio_prefix.rstrip('/')}/{clip}.wav"

    blocks: list = ["random"]
    for s in desc:
        clips = list(key.loc[key["scenario"] == s, "clip"])
        stimuli = {c: path(c) for c in clips}
        scene = f"<p><b>Scene:</b> {html.escape(desc[s])}</p>"
        block = [{"type": "generic", "id": f"{s}__intro", "name": f"Scene: {s}",
                  "content": scene + "<p>You will hear the clips for this scene, rate each of them on "
                                     f"{len(questions)} questions, then choose the one you prefer.</p>"}]
        for i, q in enumerate(questions):
            page = {"type": "likert_multi_stimulus", "id": f"{s}__{q}",
                    "name": f"{s}: {QUESTION_LABELS.get(q, q)}",
                    "content": scene + f"<p>{html.escape(QUESTION_TEXT.get(q, q))}</p>",
                    "mustRate": True, "stimuli": stimuli, "response": _likert_scale()}
            if i == 0:
                page["mustPlayback"] = "ended"
            block.append(page)
        for crit in ("MOS", "REL"):
            block.append({"type": "preference_test", "id": f"{s}__pref_{crit}",
                          "name": f"{s}: preference ({crit})", "content": scene + f"<p>{PREFERENCE_TEXT[crit]}</p>",
                          "numPerTrial": 2, "considerOrder": False, "stimuli": stimuli})
        blocks.append(block)

    first_clip = str(key["clip"].iloc[0])
    pages = [
        {"type": "generic", "id": "welcome", "name": "Welcome",
         "content": ("<p>Thank you for taking part. You will hear short pieces of music written for film scenes. "
                     "Please use good headphones in a quiet room.</p>"
                     f"<p>For each of {len(desc)} scenes you rate every clip from 1 (very poor) to 5 "
                     "(excellent) and pick the clip you prefer. The clips are anonymous and their order is "
                     "random.</p>")},
        {"type": "consent", "id": "consent", "name": "Consent", "mustConsent": True,
         "content": ("<p>Your ratings and survey answers are stored without your name and used only for research "
                     "on music generation. You may stop at any time. Do you agree to take part?</p>")},
        {"type": "volume", "id": "volume", "name": "Volume",
         "content": "<p>Set a comfortable listening level now and keep it for the whole test.</p>",
         "stimulus": path(first_clip), "defaultVolume": 0.5},
        blocks,
        {"type": "finish", "name": "Thank you",
         "content": "<p>Please answer a few questions about yourself, then send your results.</p>",
         "showResults": False, "writeResults": True,
         "questionnaire": [
             {"type": "text", "name": "participant", "label": "Participant code (from the experimenter)"},
             {"type": "number", "name": "age", "label": "Age", "min": 16, "max": 100, "default": 25},
             _choice("gender", "Gender", ["female", "male", "non-binary", "prefer_not_to_say"]),
             _choice("education", "Highest education", ["secondary", "undergraduate", "postgraduate", "other"]),
             _choice("musical_training", "Musical training", ["none", "casual", "hobbyist", "professional"]),
             _choice("ai_music_familiarity", "Familiarity with AI-generated music", ["low", "medium", "high"]),
             _choice("listening_habits", "How often do you listen to instrumental or film music?",
                     ["rarely", "weekly", "daily"]),
         ]},
    ]
    return {"testname": "Music for film scenes: listening test", "testId": test_id, "bufferSize": 2048,
            "stopOnErrors": True, "showButtonPreviousPage": True, "remoteService": remote_service,
            "pages": pages}


def write_webmushra(config: dict, path: str | os.PathLike) -> Path:
    """Write the experiment as YAML (key order kept, unicode as is)."""
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=120)
    return atomic_write_text(path, text)
