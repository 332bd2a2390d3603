"""A webMUSHRA experiment for the pack (https://github.com/audiolabs/webMUSHRA).

The config follows webMUSHRA's YAML format: top-level ``testname``, ``testId``, ``bufferSize``,
``stopOnErrors``, ``showButtonPreviousPage``, ``remoteService`` and a ``pages`` list. Pages used here:

- ``generic`` (welcome and each scene's script), ``consent`` (``mustConsent``), ``volume`` (level check);
- ``likert_multi_stimulus``: one page per scenario and question, both clips of the scenario on the page
  (webMUSHRA shuffles their order), the 5-point scale as ``response``; page id ``<scenario>__<question>``;
- the binary preference per scenario, once for musical quality (``MOS``) and once for fit to the scene
  (``REL``), page id ``<scenario>__pref_<criterion>``. Stock webMUSHRA (its master branch) has no preference
  page, so by default this is a ``likert_multi_stimulus`` page with the two points "preferred" (1) and
  "not preferred" (0) and the instruction to prefer exactly one clip; :func:`import_webmushra` checks that.
  ``preference_page="preference_test"`` emits the forced A/B ``preference_test`` page of webMUSHRA's
  preference-test work instead (for builds that include it);
- a nested list starting with ``random``: webMUSHRA shuffles the scenario blocks for every session;
- ``finish`` with a ``questionnaire`` (participant code and the demographic survey) and ``writeResults``.

Stimulus keys are the blinded clip ids, so webMUSHRA's result files map back to ``key.csv`` directly:
:func:`import_webmushra` turns its ``lms.csv`` (one row per rating: the questionnaire answers, ``trial_id``,
``stimuli_rating``, ``stimuli``, ``rating_time``) into a study folder.
"""

from __future__ import annotations

import csv
import html
import os
from pathlib import Path

import pandas as pd
import yaml

from ..artifacts import atomic_write_text, ensure_dir
from ..errors import InputError
from .study import QUESTION_LABELS, QUESTION_TEXT, QUESTIONS, SCALE

__all__ = ["import_webmushra", "webmushra_config", "write_webmushra"]

PREFERENCE_TEXT = {
    "MOS": "Which clip has the better <b>musical quality</b> (clarity, production, transitions, balance)?",
    "REL": "Which clip <b>fits the scene</b> better (mood, scene, emotion, the script's cues)?",
}
PREFERRED, NOT_PREFERRED = 1, 0


def _likert_scale() -> list[dict]:
    return [{"value": k, "label": f"{k} – {v}"} for k, v in SCALE.items()]


def _choice(name: str, label: str, options) -> dict:
    return {"type": "likert", "name": name, "label": label,
            "response": [{"value": o, "label": o.replace("_", " ")} for o in options]}


def webmushra_config(key: pd.DataFrame, scenarios: pd.DataFrame, *, audio_prefix: str,
                     test_id: str = "listening_test", questions: dict[str, str] | None = None,
                     remote_service: str = "service/write.php", preference_page: str = "likert") -> dict:
    """The experiment as a dict (``yaml.safe_dump`` it, or use :func:`write_webmushra`).

    Args:
        key: ``clip,scenario`` (the model column is never read).
        scenarios: ``scenario,description`` (the script each pair is judged against).
        audio_prefix: folder of the WAVs relative to the webMUSHRA root.
        test_id: webMUSHRA's ``testId`` (names the results folder).
        questions: ``question → dimension``; default the paper's eight.
        preference_page: ``"likert"`` (stock webMUSHRA; see the module notes) or ``"preference_test"``.
    """
    if preference_page not in ("likert", "preference_test"):
        raise ValueError(f"preference_page must be 'likert' or 'preference_test', not {preference_page!r}")
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
            page = {"id": f"{s}__pref_{crit}", "name": f"{s}: preference ({crit})",
                    "content": scene + f"<p>{PREFERENCE_TEXT[crit]}</p>"}
            if preference_page == "preference_test":
                page.update({"type": "preference_test", "numPerTrial": 2, "considerOrder": False,
                             "stimuli": stimuli})
            else:
                page["content"] += "<p>Mark exactly <b>one</b> clip as preferred and the other as not preferred.</p>"
                page.update({"type": "likert_multi_stimulus", "mustRate": True, "stimuli": stimuli,
                             "response": [{"value": PREFERRED, "label": "preferred"},
                                          {"value": NOT_PREFERRED, "label": "not preferred"}]})
            block.append(page)
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


def import_webmushra(results, key, out_dir: str | os.PathLike, *, participant_field: str = "participant") -> Path:
    """Turn webMUSHRA's ``lms.csv`` (from the experiment :func:`webmushra_config` wrote) into a study folder.

    Args:
        results: ``lms.csv`` or the webMUSHRA results folder holding it (``results/<testId>/``).
        key: the pack's ``key.csv`` (copied into the study folder).
        out_dir: the study folder to write (``responses.csv``, ``preferences.csv``, ``demographics.csv``,
            ``key.csv``); validate it with :func:`~echoscript_utils.listening.study.validate_study`.
        participant_field: the questionnaire field holding the participant code.

    Raises:
        InputError: naming the ``lms.csv`` line, for a missing participant code, a rating that is not a number,
            or a preference page where not exactly one clip was marked preferred. Nothing is written then.
    """
    src = Path(results)
    if src.is_dir():
        src = src / "lms.csv"
    if not src.is_file():
        raise InputError(f"{src}: webMUSHRA results not found; pass lms.csv or the results/<testId>/ folder")
    key_path = Path(key)
    if not key_path.is_file():
        raise InputError(f"{key_path}: answer key not found")
    with open(src, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        rows = [(reader.line_num, [c.strip() for c in r]) for r in reader if r]
    need = {"trial_id", "stimuli_rating", "stimuli", participant_field}
    if not need <= set(header):
        raise InputError(f"{src}: header lacks {', '.join(sorted(need - set(header)))}; is this webMUSHRA's "
                         f"lms.csv from the pack's experiment (with a '{participant_field}' survey field)?")
    col = {h: i for i, h in enumerate(header)}
    survey = [h for h in header[1:col["trial_id"]] if h != participant_field]
    responses, prefs, demo, problems = [], {}, {}, []
    for line, r in rows:
        get = dict(zip(header, r, strict=False)).get
        part, trial, clip, rating = get(participant_field, ""), get("trial_id", ""), get("stimuli", ""), \
            get("stimuli_rating", "")
        if not part:
            problems.append(f"line {line}: no participant code")
            continue
        demo.setdefault(part, {"participant": part, **{h: get(h, "") for h in survey}})
        scenario, _, item = trial.partition("__")
        if item.startswith("pref_"):
            prefs.setdefault((part, scenario, item[5:]), []).append((line, clip, rating))
        elif item:
            responses.append({"participant": part, "scenario": scenario, "clip": clip, "question": item,
                              "score": rating})
    pref_rows = []
    for (part, scenario, crit), marks in prefs.items():
        chosen = [c for _, c, v in marks if v == str(PREFERRED)]
        if len(chosen) != 1:
            problems.append(f"lines {', '.join(str(ln) for ln, _, _ in marks)}: participant {part!r} marked "
                            f"{len(chosen)} clips preferred for {scenario!r} / {crit} (exactly one is needed)")
            continue
        pref_rows.append({"participant": part, "scenario": scenario, "criterion": crit, "chosen_clip": chosen[0]})
    if problems:
        raise InputError(f"{src}: {len(problems)} problem(s): " + "; ".join(problems[:8])
                         + ("; ..." if len(problems) > 8 else ""))
    out = ensure_dir(out_dir)
    tables = {"responses.csv": pd.DataFrame(responses, columns=["participant", "scenario", "clip", "question",
                                                                "score"]),
              "preferences.csv": pd.DataFrame(pref_rows, columns=["participant", "scenario", "criterion",
                                                                  "chosen_clip"]),
              "demographics.csv": pd.DataFrame(list(demo.values()), columns=["participant", *survey]),
              "key.csv": pd.read_csv(key_path, dtype=str)}
    for name, df in tables.items():
        atomic_write_text(out / name, df.to_csv(index=False, lineterminator="\n"))
    return out
