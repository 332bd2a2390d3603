"""The study folder: reading and validating a returned listening test (tidy CSVs).

A study folder holds

- ``responses.csv``: ``participant,scenario,clip,question,score`` (one row per rating, integer scores 1-5);
- ``key.csv``: ``clip,model,scenario`` (the answer key of the pack);
- ``preferences.csv``: ``participant,scenario,criterion,chosen_clip`` (``criterion`` is ``MOS`` or ``REL``);
- ``demographics.csv``: ``participant,...`` (any further columns: age, gender, musical_training, ...);
- ``questions.csv`` (optional): ``question,dimension``; by default the paper's eight questions;
- ``SIMULATED.txt`` (only in simulated studies): marks every product of the analysis as simulated.

:func:`validate_study` checks everything before anything is written and raises
:class:`StudyValidationError` whose message names the file, the row (the line number a spreadsheet shows,
header = line 1) and the problem of every fault it found.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import InputError

__all__ = [
    "CRITERIA",
    "DIMENSIONS",
    "QUESTIONS",
    "QUESTION_LABELS",
    "QUESTION_TEXT",
    "SCALE",
    "SIMULATED_MARKER",
    "Study",
    "StudyProblem",
    "StudyValidationError",
    "clip_problems",
    "default_questions",
    "load_study",
    "parse_score",
    "preference_problems",
    "rating_problems",
    "validate_study",
]

#: The paper's eight questions and their dimension (MOS: musical quality, REL: relevance to the script).
QUESTIONS: dict[str, str] = {
    "audio_clarity": "MOS",
    "production_quality": "MOS",
    "transition_smoothness": "MOS",
    "instrument_balance": "MOS",
    "mood_conveyance": "REL",
    "scene_matching": "REL",
    "emotional_expressivity": "REL",
    "script_adherence": "REL",
}
#: Short labels for tables and figures.
QUESTION_LABELS: dict[str, str] = {q: q.replace("_", " ").capitalize() for q in QUESTIONS}
#: What a listener is asked for each question (used in the webMUSHRA pages and the response sheet).
QUESTION_TEXT: dict[str, str] = {
    "audio_clarity": "How clear is the audio, free of distortion, noise and artefacts?",
    "production_quality": "How professional does the production sound?",
    "transition_smoothness": "How natural are the transitions and the musical phrasing?",
    "instrument_balance": "How balanced and coherent is the instrumentation?",
    "mood_conveyance": "How well does the music convey the mood of the scene?",
    "scene_matching": "How well does the music fit the scene and its theme?",
    "emotional_expressivity": "How emotionally expressive is the music for this scene?",
    "script_adherence": "How closely does the music follow the script's cues (tempo, dynamics, instruments)?",
}
#: The two dimensions and the two preference criteria (same names).
DIMENSIONS: tuple[str, ...] = ("MOS", "REL")
CRITERIA: tuple[str, ...] = DIMENSIONS
#: The 5-point Likert scale (1 = very poor, 5 = excellent).
SCALE: dict[int, str] = {1: "very poor", 2: "poor", 3: "fair", 4: "good", 5: "excellent"}
#: A file with this name in a study folder marks it as simulated.
SIMULATED_MARKER = "SIMULATED.txt"

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "responses.csv": ("participant", "scenario", "clip", "question", "score"),
    "key.csv": ("clip", "model", "scenario"),
    "preferences.csv": ("participant", "scenario", "criterion", "chosen_clip"),
    "demographics.csv": ("participant",),
    "questions.csv": ("question", "dimension"),
}
_MISSING = {"", "na", "n/a", "nan", "null"}
_INT_RE = re.compile(r"^[+-]?\d+(\.0*)?$")


def default_questions() -> pd.DataFrame:
    """The paper's eight questions as a ``question,dimension`` frame."""
    return pd.DataFrame({"question": list(QUESTIONS), "dimension": list(QUESTIONS.values())})


@dataclass(frozen=True)
class StudyProblem:
    """One fault in a study folder: ``file``, spreadsheet ``line`` (header = 1; 0 = the whole file),
    a stable ``code`` (e.g. ``score_out_of_range``) and a readable ``message``."""

    file: str
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}" if self.line else self.file
        return f"{where}: {self.message} [{self.code}]"


class StudyValidationError(InputError):
    """A study folder failed validation; ``problems`` lists every :class:`StudyProblem` found."""

    def __init__(self, study_dir: str | os.PathLike, problems: list[StudyProblem], *, shown: int = 8):
        self.study_dir = Path(study_dir)
        self.problems = list(problems)
        head = "; ".join(str(p) for p in self.problems[:shown])
        more = f"; and {len(self.problems) - shown} more" if len(self.problems) > shown else ""
        super().__init__(f"study folder {self.study_dir} has {len(self.problems)} problem(s): {head}{more} "
                         f"— fix these rows and validate again")

    @property
    def codes(self) -> set[str]:
        return {p.code for p in self.problems}


@dataclass
class Study:
    """A validated study.

    ``responses`` has the CSV's columns with integer ``score`` plus ``model`` and ``dimension`` (from the key and
    the questions); ``preferences`` (or None) adds ``chosen_model``; ``simulated`` is True when the folder holds
    ``SIMULATED.txt``.
    """

    responses: pd.DataFrame
    key: pd.DataFrame
    demographics: pd.DataFrame
    questions: pd.DataFrame
    preferences: pd.DataFrame | None = None
    simulated: bool = False
    path: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        return sorted(self.key["model"].unique())

    @property
    def scenarios(self) -> list[str]:
        return list(dict.fromkeys(self.key["scenario"]))

    @property
    def participants(self) -> list[str]:
        return sorted(self.responses["participant"].unique())

    def summary(self) -> dict:
        return {"participants": len(self.participants), "scenarios": len(self.scenarios),
                "clips": int(len(self.key)), "questions": int(len(self.questions)), "models": self.models,
                "ratings": int(len(self.responses)),
                "preferences": int(len(self.preferences)) if self.preferences is not None else 0,
                "simulated": self.simulated}


# --------------------------------------------------------------------------------------------- reading
def _read_csv(path: Path) -> tuple[pd.DataFrame, list[int]]:
    """Read a CSV as strings (stripped), skipping blank lines; returns the frame and each row's line number."""
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            first = f.readline()
            f.seek(0)
            # spreadsheets set to a comma decimal locale export ';'-separated files
            delimiter = ";" if first.count(";") > first.count(",") else ","
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                return pd.DataFrame(), []
            header = [h.strip() for h in header]
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                row = [c.strip() for c in row] + [""] * max(0, len(header) - len(row))
                rows.append(row[: len(header)])
                lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file; export it as CSV (UTF-8)") from None
    except csv.Error as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None
    return pd.DataFrame(rows, columns=header, dtype=str), lines


def _is_missing(value: str) -> bool:
    return value.strip().lower() in _MISSING


class _Checker:
    def __init__(self) -> None:
        self.problems: list[StudyProblem] = []

    def add(self, file: str, line: int, code: str, message: str) -> None:
        self.problems.append(StudyProblem(file, line, code, message))


def _load_table(study_dir: Path, name: str, chk: _Checker, *, required: bool = True):
    path = study_dir / name
    if not path.is_file():
        if required:
            chk.add(name, 0, "missing_file", f"file not found in {study_dir}; "
                    f"it needs the columns {','.join(REQUIRED_COLUMNS[name])}")
        return None, []
    df, lines = _read_csv(path)
    missing = [c for c in REQUIRED_COLUMNS[name] if c not in df.columns]
    if missing:
        chk.add(name, 1, "missing_column", f"header lacks column(s) {', '.join(missing)} "
                f"(expected {','.join(REQUIRED_COLUMNS[name])}, found {','.join(df.columns) or 'nothing'})")
        return None, []
    return df, lines


def _check_missing(df: pd.DataFrame, lines: list[int], name: str, columns, chk: _Checker) -> list[bool]:
    """Flag empty cells in ``columns``; returns per-row "complete" flags."""
    ok = []
    for i, line in enumerate(lines):
        empty = [c for c in columns if _is_missing(df.iloc[i][c])]
        if empty:
            chk.add(name, line, "missing_value", f"empty value in column(s) {', '.join(empty)}")
        ok.append(not empty)
    return ok


# --------------------------------------------------------------------------------------------- row rules
#: One broken rule of a row: a stable ``code`` (e.g. ``score_out_of_range``) and a readable message.
RowProblem = tuple[str, str]


def parse_score(text: str, *, low: int = 1, high: int = 5) -> tuple[int | None, RowProblem | None]:
    """A score cell → ``(int score, None)``, or ``(None, problem)`` when it is not an integer from ``low`` to
    ``high`` (``"4"``, ``" 4 "``, ``"4.0"`` and ``"+4"`` are 4)."""
    if _INT_RE.match(text.strip()):
        value = int(float(text))
        if low <= value <= high:
            return value, None
        return None, ("score_out_of_range", f"score {text!r} is outside the scale {low}-{high}")
    return None, ("non_integer_score", f"score {text!r} is not an integer from {low} to {high}")


def clip_problems(clip: str, scenario: str, clip_scenario: Mapping[str, str], *,
                  key_name: str = "key.csv") -> list[RowProblem]:
    """A clip named under ``scenario`` must be in the answer key (``clip_scenario``: clip → scenario), under
    that scenario."""
    if clip not in clip_scenario:
        return [("unknown_clip", f"clip {clip!r} is not in {key_name}")]
    if clip_scenario[clip] != scenario:
        return [("scenario_mismatch", f"clip {clip!r} belongs to scenario {clip_scenario[clip]!r} in {key_name}, "
                                      f"not {scenario!r}")]
    return []


def rating_problems(clip: str, scenario: str, question: str, score: str, *,
                    clip_scenario: Mapping[str, str] | None, questions: Collection[str], low: int = 1,
                    high: int = 5, key_name: str = "key.csv") -> tuple[int | None, list[RowProblem]]:
    """The rules of one rating, wherever it comes from (``responses.csv``, webMUSHRA's ``lms.csv``): an integer
    score on the scale (:func:`parse_score`), a clip of the key under its own scenario (:func:`clip_problems`;
    skipped when ``clip_scenario`` is None, i.e. the key could not be read), a known question.

    Returns:
        ``(score or None, problems)``.
    """
    value, bad_score = parse_score(score, low=low, high=high)
    problems = [bad_score] if bad_score else []
    if clip_scenario is not None:
        problems += clip_problems(clip, scenario, clip_scenario, key_name=key_name)
    if question not in questions:
        problems.append(("unknown_question", f"question {question!r} is not one of {', '.join(questions)}"))
    return value, problems


def preference_problems(scenario: str, criterion: str, chosen_clip: str, *,
                        clip_scenario: Mapping[str, str] | None, key_name: str = "key.csv") -> list[RowProblem]:
    """The rules of one preference: criterion ``MOS`` or ``REL``, a scenario of the key, and a chosen clip of
    that scenario (the key rules are skipped when ``clip_scenario`` is None)."""
    problems = []
    if criterion not in CRITERIA:
        problems.append(("bad_criterion", f"criterion {criterion!r} must be MOS or REL"))
    if clip_scenario is not None:
        if scenario not in set(clip_scenario.values()):
            problems.append(("unknown_scenario", f"scenario {scenario!r} is not in {key_name}"))
        elif clip_scenario.get(chosen_clip) != scenario:
            problems.append(("bad_chosen_clip", f"chosen_clip {chosen_clip!r} is not one of scenario {scenario!r}'s "
                                                f"clips in {key_name}"))
    return problems


def _check_key(study_dir: Path, chk: _Checker) -> tuple[pd.DataFrame | None, dict[str, str], dict[str, str]]:
    """key.csv: complete rows, one row per clip; returns the key and each clip's scenario and model."""
    key, key_lines = _load_table(study_dir, "key.csv", chk)
    clip_scenario: dict[str, str] = {}
    clip_model: dict[str, str] = {}
    if key is not None:
        ok = _check_missing(key, key_lines, "key.csv", REQUIRED_COLUMNS["key.csv"], chk)
        seen: dict[str, int] = {}
        for i, line in enumerate(key_lines):
            if not ok[i]:
                continue
            clip = key.iloc[i]["clip"]
            if clip in seen:
                chk.add("key.csv", line, "duplicate_clip", f"clip {clip!r} already listed on line {seen[clip]}")
                continue
            seen[clip] = line
            clip_scenario[clip] = key.iloc[i]["scenario"]
            clip_model[clip] = key.iloc[i]["model"]
        key = key.loc[[ok[i] for i in range(len(key))], list(REQUIRED_COLUMNS["key.csv"])]
        key = key.drop_duplicates("clip").reset_index(drop=True)
    return key, clip_scenario, clip_model


def _check_questions(study_dir: Path, chk: _Checker) -> pd.DataFrame:
    """questions.csv if present (dimensions MOS or REL), else the paper's eight questions."""
    questions = default_questions()
    if (study_dir / "questions.csv").is_file():
        qdf, q_lines = _load_table(study_dir, "questions.csv", chk)
        if qdf is not None:
            ok = _check_missing(qdf, q_lines, "questions.csv", REQUIRED_COLUMNS["questions.csv"], chk)
            for i, line in enumerate(q_lines):
                if ok[i] and qdf.iloc[i]["dimension"] not in DIMENSIONS:
                    chk.add("questions.csv", line, "bad_dimension",
                            f"dimension {qdf.iloc[i]['dimension']!r} must be MOS or REL")
            questions = qdf.loc[[bool(v) for v in ok], ["question", "dimension"]].drop_duplicates("question")
            questions = questions.reset_index(drop=True)
    return questions


def _check_demographics(study_dir: Path, chk: _Checker) -> tuple[pd.DataFrame | None, set[str] | None]:
    """demographics.csv: one row per participant; returns the table (empty answers as None) and the
    participants it lists (None when the file could not be read)."""
    demo, demo_lines = _load_table(study_dir, "demographics.csv", chk)
    known_participants: set[str] | None = None
    if demo is not None:
        ok = _check_missing(demo, demo_lines, "demographics.csv", ("participant",), chk)
        known_participants = set()
        first: dict[str, int] = {}
        for i, line in enumerate(demo_lines):
            p = demo.iloc[i]["participant"]
            if not ok[i]:
                continue
            if p in first:
                chk.add("demographics.csv", line, "duplicate_participant",
                        f"participant {p!r} already listed on line {first[p]}")
            first.setdefault(p, line)
            known_participants.add(p)
        demo = demo.loc[[bool(v) for v in ok]].drop_duplicates("participant").reset_index(drop=True)
        for col in demo.columns:
            demo[col] = demo[col].where(~demo[col].map(_is_missing), None)
    return demo, known_participants


def _check_participant(chk: _Checker, known_participants: set[str] | None, file: str, line: int, p: str) -> None:
    if known_participants is not None and p not in known_participants:
        chk.add(file, line, "unknown_participant",
                f"participant {p!r} is not in demographics.csv; add a row for them there")


def _check_responses(study_dir: Path, chk: _Checker, *, has_key: bool, clip_scenario: dict[str, str],
                     question_dim: dict[str, str], known_participants: set[str] | None,
                     low: int, high: int) -> tuple[pd.DataFrame | None, list[int | None]]:
    """responses.csv: scores on the scale, known clips under their own scenario, known questions and
    participants, one rating per (participant, clip, question); returns the table and each row's score."""
    resp, resp_lines = _load_table(study_dir, "responses.csv", chk)
    scores: list[int | None] = []
    if resp is not None:
        ok = _check_missing(resp, resp_lines, "responses.csv", REQUIRED_COLUMNS["responses.csv"], chk)
        first_seen: dict[tuple[str, str, str], int] = {}
        for i, line in enumerate(resp_lines):
            row = resp.iloc[i]
            if not ok[i]:
                scores.append(None)
                continue
            value, problems = rating_problems(row["clip"], row["scenario"], row["question"], row["score"],
                                              clip_scenario=clip_scenario if has_key else None,
                                              questions=list(question_dim), low=low, high=high)
            for code, msg in problems:
                chk.add("responses.csv", line, code, msg)
            scores.append(value)
            _check_participant(chk, known_participants, "responses.csv", line, row["participant"])
            k = (row["participant"], row["clip"], row["question"])
            if k in first_seen:
                chk.add("responses.csv", line, "duplicate_rating",
                        f"participant {k[0]!r} already rated clip {k[1]!r} on {k[2]!r} (line {first_seen[k]})")
            else:
                first_seen[k] = line
        if not resp_lines:
            chk.add("responses.csv", 0, "no_rows", "no ratings in the file")
    return resp, scores


def _check_preferences(study_dir: Path, chk: _Checker, *, has_key: bool, clip_scenario: dict[str, str],
                       known_participants: set[str] | None) -> pd.DataFrame | None:
    """preferences.csv if present: criterion MOS or REL, a chosen clip of that scenario, known participants,
    one choice per (participant, scenario, criterion)."""
    prefs, pref_lines = _load_table(study_dir, "preferences.csv", chk, required=False)
    if prefs is not None:
        ok = _check_missing(prefs, pref_lines, "preferences.csv", REQUIRED_COLUMNS["preferences.csv"], chk)
        first_pref: dict[tuple[str, str, str], int] = {}
        for i, line in enumerate(pref_lines):
            row = prefs.iloc[i]
            if not ok[i]:
                continue
            for code, msg in preference_problems(row["scenario"], row["criterion"], row["chosen_clip"],
                                                 clip_scenario=clip_scenario if has_key else None):
                chk.add("preferences.csv", line, code, msg)
            _check_participant(chk, known_participants, "preferences.csv", line, row["participant"])
            k = (row["participant"], row["scenario"], row["criterion"])
            if k in first_pref:
                chk.add("preferences.csv", line, "duplicate_preference",
                        f"participant {k[0]!r} already chose for {k[1]!r} / {k[2]} (line {first_pref[k]})")
            else:
                first_pref[k] = line
    return prefs


def _assemble_study(study_dir: Path, *, resp: pd.DataFrame, scores: list[int | None], key: pd.DataFrame,
                    clip_model: dict[str, str], questions: pd.DataFrame, question_dim: dict[str, str],
                    demo: pd.DataFrame, prefs: pd.DataFrame | None) -> Study:
    """The validated tables joined into a :class:`Study` (model and dimension per rating, model per choice)."""
    responses = resp[list(REQUIRED_COLUMNS["responses.csv"])].copy()
    responses["score"] = pd.Series(scores, dtype="int64").to_numpy()
    responses["model"] = responses["clip"].map(clip_model)
    responses["dimension"] = responses["question"].map(question_dim)
    preferences = None
    if prefs is not None:
        preferences = prefs[list(REQUIRED_COLUMNS["preferences.csv"])].copy().reset_index(drop=True)
        preferences["chosen_model"] = preferences["chosen_clip"].map(clip_model)
    notes = []
    if preferences is None:
        notes.append("no preferences.csv: preference shares are skipped")
    return Study(responses=responses.reset_index(drop=True), key=key, demographics=demo,
                 questions=questions, preferences=preferences,
                 simulated=(study_dir / SIMULATED_MARKER).is_file(), path=study_dir, notes=notes)


def validate_study(study_dir: str | os.PathLike, *, scale: tuple[int, int] = (1, 5)) -> Study:
    """Read and check a study folder; return a :class:`Study` or raise :class:`StudyValidationError`.

    Checks: required files and columns; no empty cells (except optional demographic answers); integer scores
    within ``scale``; every clip known to the key and rated under its own scenario; known questions; no duplicate
    (participant, clip, question) or (participant, scenario, criterion); every participant listed in the
    demographics; criterion ``MOS`` or ``REL``; ``chosen_clip`` one of that scenario's clips.
    Nothing is written.
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise InputError(f"{study_dir}: study folder not found; it must hold responses.csv, key.csv, "
                         f"preferences.csv and demographics.csv")
    chk = _Checker()
    low, high = scale

    key, clip_scenario, clip_model = _check_key(study_dir, chk)
    questions = _check_questions(study_dir, chk)
    question_dim = dict(zip(questions["question"], questions["dimension"], strict=True))
    demo, known_participants = _check_demographics(study_dir, chk)
    resp, scores = _check_responses(study_dir, chk, has_key=key is not None, clip_scenario=clip_scenario,
                                    question_dim=question_dim, known_participants=known_participants,
                                    low=low, high=high)
    prefs = _check_preferences(study_dir, chk, has_key=key is not None, clip_scenario=clip_scenario,
                               known_participants=known_participants)
    if chk.problems:
        raise StudyValidationError(study_dir, chk.problems)

    return _assemble_study(study_dir, resp=resp, scores=scores, key=key, clip_model=clip_model,
                           questions=questions, question_dim=question_dim, demo=demo, prefs=prefs)


def load_study(study_dir: str | os.PathLike) -> Study:
    """Alias of :func:`validate_study` (a study is only ever loaded validated)."""
    return validate_study(study_dir)
