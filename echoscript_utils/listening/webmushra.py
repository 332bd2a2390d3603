"""A webMUSHRA experiment for the pack (https://github.com/audiolabs/webMUSHRA), and its results back in.

The config follows webMUSHRA's YAML format: top-level ``testname``, ``testId``, ``bufferSize``,
``stopOnErrors``, ``showButtonPreviousPage``, ``remoteService`` and a ``pages`` list. Pages used here:

- ``generic`` (welcome and each scene's script), ``consent`` (``mustConsent``), ``volume`` (level check);
- ``likert_multi_stimulus``: one page per scenario and question, both clips of the scenario on the page
  (webMUSHRA shuffles their order), the 5-point scale as ``response``; page id ``<scenario>__<question>``;
- the preference per scenario, once for musical quality (``MOS``) and once for fit to the scene (``REL``),
  page id ``<scenario>__pref_<criterion>``. Stock webMUSHRA (its master branch) has no preference page (its
  ``paired_comparison`` page asks which of A and B is a labelled reference), so this is a
  ``likert_multi_stimulus`` page with the two points "preferred" (1) and "not preferred" (0), and the page's own
  content carries a small script (:data:`ONE_PREFERRED_SCRIPT`) that admits exactly one "preferred" clip: marking
  one clip preferred marks the others not preferred, with two clips the reverse holds too, and with more clips
  "Next" stays locked until exactly one is preferred.
  :func:`read_webmushra` still checks every preference and sets aside a participant whose page did not hold
  exactly one. ``preference_page="preference_test"`` emits the forced A/B ``preference_test`` page of
  webMUSHRA's preference-test work instead (for builds that include it);
- a nested list starting with ``random``: webMUSHRA shuffles the scenario blocks for every session;
- ``finish`` with a ``questionnaire`` (participant code and the demographic survey), ``writeResults`` and
  ``showErrors`` (a failed submission is shown to the participant).

The YAML is written for webMUSHRA's bundled parser (yaml.js 0.3.0, ``lib/external/yaml/yaml.min.js``) as much as
for PyYAML: every string is double-quoted (so clip ids such as ``1e000000`` stay strings), every list is
indented under its key, and a list inside a list starts with ``-`` alone on its line, as in webMUSHRA's example
configs (yaml.js does not read the compact ``- - random``).

Results: webMUSHRA's ``service/write.php`` appends one row per rating to ``results/<testId>/lms.csv`` (the
questionnaire answers, ``trial_id``, ``stimuli_rating``, ``stimuli``, ``rating_time``).
:func:`read_webmushra` checks it participant by participant; :func:`import_webmushra` writes the valid ones as a
study folder and lists the ones set aside (file, line, reason) in ``import_report.csv``. The raw file is only
read. :func:`session_rows` turns one posted webMUSHRA session (its JSON) into rows of the same format, plus a
``session_uuid`` column, for :mod:`.serve`.
"""

from __future__ import annotations

import csv
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from ..artifacts import atomic_write_text, ensure_dir
from ..errors import InputError
from .study import (
    QUESTION_LABELS,
    QUESTION_TEXT,
    QUESTIONS,
    SCALE,
    clip_problems,
    preference_problems,
    rating_problems,
)

__all__ = [
    "ONE_PREFERRED_SCRIPT",
    "REPORT_NAME",
    "ImportProblem",
    "WebmushraImport",
    "import_webmushra",
    "lms_text",
    "read_webmushra",
    "session_rows",
    "webmushra_config",
    "webmushra_yaml",
    "write_webmushra",
]

PREFERENCE_TEXT = {
    "MOS": "Which clip has the better <b>musical quality</b> (clarity, production, transitions, balance)?",
    "REL": "Which clip <b>fits the scene</b> better (mood, scene, emotion, the script's cues)?",
}
PREFERRED, NOT_PREFERRED = 1, 0
#: The file :func:`import_webmushra` writes beside the study tables: ``participant,file,line,reason``.
REPORT_NAME = "import_report.csv"
#: Columns of webMUSHRA's lms.csv after the questionnaire answers (``session_uuid`` only in :mod:`.serve`'s).
LMS_TAIL = ("trial_id", "stimuli_rating", "stimuli", "rating_time")

#: Runs when a preference page is shown (webMUSHRA inserts page content with jQuery, which runs scripts, as it
#: does for its own page loading). The Likert radio groups of a ``likert_multi_stimulus`` page are named
#: ``<i>__response``; the marker element limits the handler to preference pages. Marking a clip preferred marks
#: every other clip not preferred; with two clips, marking one not preferred marks the other preferred; with more,
#: "Next" stays locked until exactly one clip is preferred (the handler runs after webMUSHRA's own unlock).
ONE_PREFERRED_SCRIPT = """<span class="es-one-preferred"></span><script>
(function () {
  var root = $("#page_content");
  root.off("change.esOnePreferred").on("change.esOnePreferred", "input[type=radio]", function () {
    if (!root.find(".es-one-preferred").length) { return; }
    var name = this.name, names = [];
    root.find("input[type=radio]").each(function () {
      if (this.name !== name && names.indexOf(this.name) < 0) { names.push(this.name); }
    });
    var other = this.value === "PREF" ? "NOTPREF" : (names.length === 1 ? "PREF" : null);
    if (other !== null) {
      names.forEach(function (n) {
        var radio = root.find("input[name='" + n + "'][value='" + other + "']");
        if (!radio.prop("checked")) {
          radio.prop("checked", true);
          root.find("input[name='" + n + "']").checkboxradio("refresh");
          radio.trigger("change");
        }
      });
    }
    if (root.find("input[type=radio][value='PREF']:checked").length !== 1) {
      $("#__button_next").attr("disabled", "disabled");
    }
  });
})();
</script>""".replace("NOTPREF", str(NOT_PREFERRED)).replace("PREF", str(PREFERRED))


def _likert_scale() -> list[dict]:
    return [{"value": k, "label": f"{k} – {v}"} for k, v in SCALE.items()]


def _choice(name: str, label: str, options) -> dict:
    return {"type": "likert", "name": name, "label": label,
            "response": [{"value": o, "label": o.replace("_", " ")} for o in options]}


def webmushra_config(key: pd.DataFrame, scenarios: pd.DataFrame, *, audio_prefix: str,
                     test_id: str = "listening_test", questions: dict[str, str] | None = None,
                     remote_service: str = "service/write.php", preference_page: str = "likert") -> dict:
    """The experiment as a dict (write it with :func:`write_webmushra`).

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
        clips = [str(c) for c in key.loc[key["scenario"] == s, "clip"]]
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
                others = "the other is" if len(clips) == 2 else "the others are"
                page["content"] += (f"<p>Mark the clip you prefer; {others} then marked not preferred.</p>"
                                    + ONE_PREFERRED_SCRIPT)
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
         "showResults": False, "writeResults": True, "showErrors": True,
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


# ------------------------------------------------------------------------------------------ YAML out
class _WebmushraDumper(yaml.SafeDumper):
    """PyYAML's safe dumper, laid out as webMUSHRA's example configs: lists indented under their key, and a list
    inside a list opened by ``-`` alone on its line (yaml.js 0.3.0 misreads the compact ``- - item``)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)

    def expect_block_sequence_item(self, first: bool = False):
        if not first and isinstance(self.event, yaml.SequenceEndEvent):
            return super().expect_block_sequence_item(first)
        self.write_indent()
        self.write_indicator("-", True, indention=True)
        if isinstance(self.event, yaml.SequenceStartEvent):
            self.indention = False  # the nested list's first item goes on the next line
        self.states.append(self.expect_block_sequence_item)
        self.expect_node(sequence=True)


def _quoted_str(dumper: yaml.SafeDumper, value: str):
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')


_WebmushraDumper.add_representer(str, _quoted_str)


def webmushra_yaml(config: dict) -> str:
    """The experiment as YAML text: key order kept, unicode as is, every string double-quoted, no line folding."""
    return yaml.dump(config, Dumper=_WebmushraDumper, sort_keys=False, allow_unicode=True, width=1 << 30,
                     indent=4)


def write_webmushra(config: dict, path: str | os.PathLike) -> Path:
    """Write the experiment as YAML (see :func:`webmushra_yaml`), atomically."""
    return atomic_write_text(path, webmushra_yaml(config))


# ------------------------------------------------------------------------------------------ results in
@dataclass(frozen=True)
class ImportProblem:
    """Why a participant was set aside: ``file`` and ``line`` (as a spreadsheet counts, header = 1)."""

    participant: str
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        who = f"participant {self.participant!r}" if self.participant else "no participant code"
        return f"{self.file} line {self.line}: {who}: {self.reason}"


@dataclass
class WebmushraImport:
    """What :func:`read_webmushra` found: the valid participants' tables and every problem of the others."""

    source: Path
    key: pd.DataFrame
    responses: pd.DataFrame
    preferences: pd.DataFrame
    demographics: pd.DataFrame
    problems: list[ImportProblem] = field(default_factory=list)
    repeated_rows: int = 0

    @property
    def participants(self) -> list[str]:
        """Imported participants (sorted)."""
        return sorted(self.demographics["participant"])

    @property
    def rejected(self) -> list[str]:
        """Participants set aside (sorted; ``""`` for rows without a participant code)."""
        return sorted({p.participant for p in self.problems})

    @property
    def partial(self) -> bool:
        return bool(self.problems)

    def report(self) -> pd.DataFrame:
        return pd.DataFrame([vars(p) for p in self.problems], columns=["participant", "file", "line", "reason"])

    def summary(self) -> str:
        head = (f"{len(self.participants)} participant(s) imported, {len(self.responses)} ratings, "
                f"{len(self.preferences)} preferences")
        if self.repeated_rows:
            head += f"; {self.repeated_rows} repeated row(s) of re-sent submissions ignored"
        if not self.problems:
            return head
        lines = [head + f"; {len(self.rejected)} set aside:"]
        for who in self.rejected:
            mine = [p for p in self.problems if p.participant == who]
            more = f" (and {len(mine) - 1} more)" if len(mine) > 1 else ""
            lines.append(f"  {mine[0]}{more}")
        return "\n".join(lines)

    def write(self, out_dir: str | os.PathLike) -> Path:
        """Write ``responses.csv``, ``preferences.csv``, ``demographics.csv``, ``key.csv`` and
        ``import_report.csv`` (header only when nobody was set aside) into ``out_dir``, each atomically.

        Raises:
            InputError: no participant is valid (naming the first problems); nothing is written then.
        """
        if not self.participants:
            shown = "; ".join(str(p) for p in self.problems[:6])
            more = f"; and {len(self.problems) - 6} more" if len(self.problems) > 6 else ""
            raise InputError(f"{self.source}: no valid participant ({len(self.problems)} problem(s): {shown}{more})"
                             if self.problems else f"{self.source}: no ratings in the file")
        out = ensure_dir(out_dir)
        for name, df in (("responses.csv", self.responses), ("preferences.csv", self.preferences),
                         ("demographics.csv", self.demographics), ("key.csv", self.key),
                         (REPORT_NAME, self.report())):
            atomic_write_text(out / name, df.to_csv(index=False, lineterminator="\n"))
        return out


def _lms_path(results) -> Path:
    src = Path(results)
    if src.is_dir():
        src = src / "lms.csv"
    if not src.is_file():
        raise InputError(f"{src}: webMUSHRA results not found; pass lms.csv or the results/<testId>/ folder")
    return src


def read_webmushra(results, key, *, participant_field: str = "participant",
                   questions: dict[str, str] | None = None) -> WebmushraImport:
    """Read webMUSHRA's ``lms.csv`` (from the experiment :func:`webmushra_config` wrote) and check it per
    participant; nothing is written.

    A participant (by the code typed into the closing survey) is set aside, with file, line and reason, when any
    of their rows breaks a rating's or a preference's rules (:func:`~.study.rating_problems`,
    :func:`~.study.preference_problems`, the ones a study folder is validated with: a clip not in the key or
    not of that page's scenario, an unknown question, a score off the scale, a criterion other than MOS or
    REL), has a preference page without exactly one preferred clip, rows of several sessions (with
    ``session_uuid``), or the same page and clip twice with different answers (without ``session_uuid``: a second
    session under the code cannot be told from an answer changed after going back from the last page, where
    webMUSHRA stores every page again). Rows without a participant code are set aside too. The same answer
    repeated (a submission sent twice, or a page stored again) counts once; within a session the last answer counts.

    Args:
        results: ``lms.csv`` or the webMUSHRA results folder holding it (``results/<testId>/``).
        key: the pack's ``key.csv``.
        participant_field: the questionnaire field holding the participant code.
        questions: ``question → dimension``; default the paper's eight.

    Raises:
        InputError: the file or key is missing, or the header is not an lms.csv of this experiment.
    """
    src = _lms_path(results)
    key_path, key_df, clip_scenario = _read_key(key)
    header, survey, rows = _read_lms(src, participant_field)
    rules = {"clip_scenario": clip_scenario, "questions": list(questions or QUESTIONS), "key_name": key_path.name,
             "low": min(SCALE), "high": max(SCALE)}
    problems: list[ImportProblem] = []
    records: dict[str, list[tuple[int, dict]]] = {}
    for line, row in rows:
        if row[participant_field]:
            records.setdefault(row[participant_field], []).append((line, row))
        else:
            problems.append(ImportProblem("", src.name, line, "no participant code in the closing survey"))
    responses, prefs, demo, repeated = [], [], [], 0
    for part, recs in records.items():
        mine: list[ImportProblem] = []

        def bad(line: int, reason: str, _mine=mine, _part=part) -> None:
            _mine.append(ImportProblem(_part, src.name, line, reason))

        kept, n_repeated = _latest_answers(recs, bad)
        part_rows, part_prefs = _participant_tables(part, kept, bad, rules)
        repeated += n_repeated
        if mine:
            problems.extend(mine)
            continue
        responses.extend(part_rows)
        prefs.extend(part_prefs)
        demo.append({"participant": part, **{h: recs[0][1].get(h, "") for h in survey}})
    return WebmushraImport(
        source=src, key=key_df,
        responses=pd.DataFrame(responses, columns=["participant", "scenario", "clip", "question", "score"]),
        preferences=pd.DataFrame(prefs, columns=["participant", "scenario", "criterion", "chosen_clip"]),
        demographics=pd.DataFrame(demo, columns=["participant", *survey]),
        problems=sorted(problems, key=lambda p: (p.line, p.participant)), repeated_rows=repeated)


def _read_key(key) -> tuple[Path, pd.DataFrame, dict[str, str]]:
    """The pack's answer key: its path, the table and each clip's scenario."""
    key_path = Path(key)
    if not key_path.is_file():
        raise InputError(f"{key_path}: answer key not found; pass the pack's key.csv")
    key_df = pd.read_csv(key_path, dtype=str, keep_default_na=False)
    if not {"clip", "scenario"} <= set(key_df.columns):
        raise InputError(f"{key_path}: not an answer key (needs the columns clip,model,scenario)")
    return key_path, key_df, dict(zip(key_df["clip"], key_df["scenario"], strict=True))


def _read_lms(src: Path, participant_field: str) -> tuple[list[str], list[str], list[tuple[int, dict]]]:
    """lms.csv → its header, the survey fields (beside the participant code) and ``(line, row dict)`` per
    non-blank row, cells stripped; a re-sent submission's second copy of the survey answers is dropped."""
    try:
        with open(src, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            raw = [(reader.line_num, [c.strip() for c in r]) for r in reader if r and any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise InputError(f"{src}: not a UTF-8 text file; pass webMUSHRA's lms.csv as written") from None
    except csv.Error as exc:
        raise InputError(f"{src}: not a readable CSV ({exc})") from None
    need = {*LMS_TAIL[:3], participant_field}
    if not need <= set(header) or header[-len(LMS_TAIL):] != list(LMS_TAIL):
        raise InputError(f"{src}: header lacks {', '.join(sorted(need - set(header))) or 'the trailing columns'} "
                         f"({','.join(LMS_TAIL)}); is this webMUSHRA's lms.csv from the pack's experiment "
                         f"(with a '{participant_field}' survey field)?")
    fields = header[:-len(LMS_TAIL)]  # session_test_id, the survey answers, [session_uuid]
    survey = [h for h in fields[1:] if h not in (participant_field, "session_uuid")]
    rows = []
    for line, r in raw:
        if len(r) > len(header):
            # webMUSHRA appends the survey answers again on every click of "send": a re-sent submission carries
            # them twice; the first copy and the trailing columns are what write.php meant
            r = r[:len(fields)] + r[len(fields) + len(r) - len(header):]
        rows.append((line, dict(zip(header, r + [""] * (len(header) - len(r)), strict=True))))
    return header, survey, rows


def _latest_answers(recs: list[tuple[int, dict]], bad) -> tuple[dict[tuple[str, str], tuple[int, dict]], int]:
    """One participant's rows → the answer that stands per (page, clip) and the number of repeated rows
    ignored; ``bad(line, reason)`` is told about several sessions under one code and answers that changed
    without a session id."""
    sessions = {row.get("session_uuid", "") for _, row in recs} - {""}
    if len(sessions) > 1:
        bad(recs[0][0], f"the code was used by {len(sessions)} sessions; give every participant their own code")
    kept: dict[tuple[str, str], tuple[int, dict]] = {}
    repeated = 0
    for line, row in recs:
        k = (row["trial_id"], row["stimuli"])
        if k in kept:
            first_line, prev = kept[k]
            same_session = row.get("session_uuid", "") == prev.get("session_uuid", "")
            same_value = row["stimuli_rating"] == prev["stimuli_rating"]
            if same_session and same_value and row["rating_time"] == prev["rating_time"]:
                repeated += 1  # a submission sent twice
                continue
            if not same_session:
                continue  # set aside above: several sessions under one code
            if not same_value and not row.get("session_uuid"):
                # webMUSHRA stores every page again when the last page is reached again; without session ids
                # a changed answer cannot be told from a second session under the same code
                bad(line, f"page {k[0]!r} clip {k[1]!r} answered {prev['stimuli_rating']!r} on line "
                          f"{first_line} and {row['stimuli_rating']!r} here: a second session under the same "
                          f"code, or an answer changed after reaching the last page; check with the participant")
                continue
        kept[k] = (line, row)  # within one session the last answer stands
    return kept, repeated


def _participant_tables(part: str, kept: dict[tuple[str, str], tuple[int, dict]], bad,
                        rules: dict) -> tuple[list[dict], list[dict]]:
    """One participant's standing answers → their ``responses.csv`` and ``preferences.csv`` rows, each row
    checked by the study's row rules; ``bad(line, reason)`` is told about every broken rule."""
    marks: dict[tuple[str, str], list[tuple[int, str, str]]] = {}
    ratings = []
    for (trial, clip), (line, row) in kept.items():
        scenario, _, item = trial.partition("__")
        value = row["stimuli_rating"]
        if not item:
            bad(line, f"page id {trial!r} is not one of the experiment's pages (<scenario>__<question>)")
        elif item.startswith("pref_"):
            found = clip_problems(clip, scenario, rules["clip_scenario"], key_name=rules["key_name"])
            for _, msg in found:
                bad(line, msg)
            if value not in (str(PREFERRED), str(NOT_PREFERRED)):
                bad(line, f"preference page {trial!r}: answer {value!r} is neither {PREFERRED} (preferred) nor "
                          f"{NOT_PREFERRED} (not preferred)")
            elif not found:
                marks.setdefault((scenario, item[len("pref_"):]), []).append((line, clip, value))
        else:
            score, found = rating_problems(clip, scenario, item, value, **rules)
            for _, msg in found:
                bad(line, msg)
            if not found:
                ratings.append({"participant": part, "scenario": scenario, "clip": clip, "question": item,
                                "score": score})
    prefs = []
    for (scenario, crit), page in marks.items():
        chosen = [(ln, c) for ln, c, v in page if v == str(PREFERRED)]
        first = min(ln for ln, _, _ in page)
        if len(chosen) != 1:
            bad(first, f"{len(chosen)} clips marked preferred for {scenario!r} / {crit} on lines "
                       f"{', '.join(str(ln) for ln, _, _ in sorted(page))} (exactly one is needed)")
            continue
        found = preference_problems(scenario, crit, chosen[0][1], clip_scenario=rules["clip_scenario"],
                                    key_name=rules["key_name"])
        for _, msg in found:
            bad(first, f"preference page {scenario}__pref_{crit}: {msg}")
        if not found:
            prefs.append({"participant": part, "scenario": scenario, "criterion": crit, "chosen_clip": chosen[0][1]})
    return ratings, prefs


def import_webmushra(results, key, out_dir: str | os.PathLike, *, participant_field: str = "participant",
                     questions: dict[str, str] | None = None) -> Path:
    """Turn webMUSHRA's ``lms.csv`` into a study folder: the valid participants' ``responses.csv``,
    ``preferences.csv``, ``demographics.csv``, the ``key.csv``, and ``import_report.csv`` listing every participant
    set aside (file, line, reason); see :func:`read_webmushra`. The results file is only read.

    Returns:
        The study folder; validate it with :func:`~echoscript_utils.listening.study.validate_study`.
        ``import_report.csv`` has rows exactly when the import was partial.

    Raises:
        InputError: as :func:`read_webmushra`, and when no participant is valid (naming the first problems);
            nothing is written then.
    """
    return read_webmushra(results, key, participant_field=participant_field, questions=questions).write(out_dir)


def session_rows(session: dict) -> tuple[list[str], list[list[str]]]:
    """One webMUSHRA session as posted to ``service/write.php`` (its ``sessionJSON``) → lms.csv header and rows.

    The columns are write.php's (``session_test_id``, the questionnaire fields, ``trial_id``,
    ``stimuli_rating``, ``stimuli``, ``rating_time``) with ``session_uuid`` before ``trial_id``. webMUSHRA
    appends the questionnaire again each time "send" is clicked and stores every page again each time the
    last page is reached: the first answer of each field and the last copy of each page are kept.

    Raises:
        InputError: the session lacks ``participant`` or ``trials``.
    """
    try:
        names = list(session["participant"]["name"])
        answers = list(session["participant"]["response"])
        trials = list(session["trials"])
    except (KeyError, TypeError):
        raise InputError("webMUSHRA session without participant answers or trials; is the client webMUSHRA "
                         "with the pack's experiment?") from None
    survey: dict[str, str] = {}
    for n, a in zip(names, answers + [None] * (len(names) - len(answers)), strict=True):
        survey.setdefault(str(n), "" if a is None else str(a))
    last: dict[str, dict] = {}
    for t in trials:
        if isinstance(t, dict) and t.get("type") == "likert_multi_stimulus":
            last.pop(str(t.get("id")), None)
            last[str(t.get("id"))] = t
    header = ["session_test_id", *survey, "session_uuid", *LMS_TAIL]
    head = [str(session.get("testId", "")), *survey.values(), str(session.get("uuid", ""))]
    rows = []
    for tid, t in last.items():
        for r in t.get("responses") or []:
            rows.append([*head, tid, _text(r.get("stimulusRating")), _text(r.get("stimulus")), _text(r.get("time"))])
    return header, rows


def _text(v) -> str:
    return "" if v is None else str(v)


def lms_text(sessions: list[dict]) -> str:
    """Several sessions (see :func:`session_rows`) as one lms.csv text; the header is the union of their fields."""
    parts = [session_rows(s) for s in sessions]
    names: list[str] = []
    for header, _ in parts:
        for h in header[1:-len(LMS_TAIL) - 1]:
            if h not in names:
                names.append(h)
    full = ["session_test_id", *names, "session_uuid", *LMS_TAIL]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(full)
    for header, rows in parts:
        for r in rows:
            d = dict(zip(header, r, strict=True))
            w.writerow([d.get(h, "") for h in full])
    return buf.getvalue()
