"""The screenplay parser on real scripts written by other people, and on the spec's edge cases.

Real scripts: every file in ``../shared/screenplays`` beside the checkout (or ``$ECHOSCRIPT_SCREENPLAYS``; see its
README and MANIFEST.tsv). Their expected scene counts are in ``tests/data/screenplay_scene_counts.csv``, derived
from the Fountain spec (https://fountain.io/syntax) and not from this parser: for each Fountain file the lines that
begin with a heading prefix (INT, EXT, EST, INT./EXT, INT/EXT, I/E, and I./E. as in the spec authors' tests, then a
dot or a space) or with a forcing ``.`` were listed by grep with the lines around them (boneyard and notes taken
out), the spec's blank-line rules applied to each, and where the file comes from another parser's test suite its
expected output was read too (the spec authors' SceneHeaderTests.m, screenplain's .html, fountain-tools' .txt); for
Final Draft files the ``Scene Heading`` paragraphs of ``<Content>`` were counted. ``cold_open`` is 1 where action or
dialogue comes before the first heading (it becomes an ``OPENING`` scene); the ``derived`` column says how each
count was reached. The unit tests at the end need no shared folder.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import pytest
from fountain import FountainParser

from echoscript_utils.errors import InputError
from echoscript_utils.scoring import parse

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "tests" / "data" / "screenplay_scene_counts.csv"
SCREENPLAYS_ENV = "ECHOSCRIPT_SCREENPLAYS"


def _screenplays() -> Path | None:
    env = os.environ.get(SCREENPLAYS_ENV)
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "screenplays"]:
        if (cand / "MANIFEST.tsv").is_file():
            return cand
    return None


SHARED = _screenplays()
ROWS = list(csv.DictReader(TABLE.open(encoding="utf-8")))
needs_shared = pytest.mark.skipif(SHARED is None, reason=f"real screenplays not found: set {SCREENPLAYS_ENV} or put "
                                                         f"shared/screenplays/ beside the checkout")


def _read(name: str, **kw) -> parse.Screenplay:
    return parse.read_script(SHARED / name, **kw)


# ------------------------------------------------------------------------------------------ real scripts
@needs_shared
def test_the_table_covers_every_shared_screenplay():
    files = sorted(p.name for p in SHARED.iterdir() if p.suffix in (".fountain", ".fdx"))
    assert files == sorted(r["file"] for r in ROWS), "add a row for each new file to " + TABLE.name
    manifest = {line.split("\t")[0] for line in (SHARED / "MANIFEST.tsv").read_text().splitlines()[1:]}
    assert manifest <= set(files)


@needs_shared
@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_every_real_script_gives_the_specs_scene_count(row):
    path = SHARED / row["file"]
    if int(row["scenes"]) == 0:
        with pytest.raises(InputError) as err:
            parse.read_script(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)
        return
    sp = parse.read_script(path)
    headings = [s for s in sp.scenes if s.heading != "OPENING"]
    openings = [s for s in sp.scenes if s.heading == "OPENING"]
    assert (len(headings), len(openings)) == (int(row["headings"]), int(row["cold_open"]))
    assert len(sp.scenes) == int(row["scenes"]) and sp.format == row["format"]
    assert [s.index for s in sp.scenes] == list(range(1, len(sp.scenes) + 1))
    assert all(s.duration_s > 0 for s in sp.scenes)


@needs_shared
def test_the_spec_authors_scene_heading_tests():
    """SceneHeaders.fountain with the expectations of its SceneHeaderTests.m: I./E. is a heading; two heading
    lines in a row are not (they are one action paragraph); ESTABLISHING and '...' are not."""
    heads = [s.heading for s in _read("ny-SceneHeaders.fountain").scenes]
    assert "I./E. HOUSE - DAY" in heads and "ESTABLISHING" not in heads and heads[-1] == "int. house - day"
    assert heads.count("INT. HOUSE - DAY") == 1 and heads.count("EXT. HOUSE - DAY") == 1  # not the pair
    pair = _read("ny-SceneHeaders.fountain").scenes[heads.index("INT. HOUSE - DAY (1979)") + 1]
    assert pair.heading == "KITCHEN" and "INT. HOUSE - DAY\nEXT. HOUSE - DAY" in pair.action


@needs_shared
@pytest.mark.parametrize("name", ["sp-boneyard.fountain", "ww-Boneyards.fountain"])
def test_a_heading_right_after_a_boneyard_is_a_scene(name):
    sp = _read(name)
    assert [s.heading for s in sp.scenes] == ["OPENING", "EXT. PALATIAL MANSION - DAY"]
    assert len(sp.scenes[1].action) == 1 and "HANDSOME MAN drinks a beer" in sp.scenes[1].action[0]
    assert "GARAGE" not in " ".join(s.text for s in sp.scenes)  # the boneyard's own heading stays out


@needs_shared
def test_title_pages_end_where_the_spec_says():
    """Empty values, unindented continuation lines (Beat) and a note before the title page: the fields land in
    the title page and no title-page text becomes a scene."""
    beat = _read("big-fish-beat.fountain")
    assert beat.title_page["contact"] == "contact@gmail.com +358 50 1234 567 Finland"
    assert beat.title_page["notes"].endswith("and omitted scenes") and beat.title == "Big Fish"
    plain = _read("big-fish.fountain")
    assert beat.scenes[0].heading == "OPENING" and beat.scenes[0].action[0].startswith("This is a Southern story")
    assert beat.scenes[0].duration_s == plain.scenes[0].duration_s  # the same cold open as the other edition
    outline = _read("beat-outlining.fountain")
    assert outline.title_page["credit"] == "" and outline.title_page["contact"].endswith("www.kapitan.fi/beat/")
    aw = _read("aw-test.fountain")
    assert aw.title_page["title"] == "Screenplay title Second line"
    assert aw.title_page["contact"] == "e-mail: email@email.com phone: +12 34 567 89"
    assert aw.title_page["copyright"] == "Licence info" and aw.scenes[0].heading == "INT. BASIC BLOCKS - DAY"
    field = re.compile(r"^(title|credit|authors?|source|draft date|date|contact|notes|copyright)\s*:", re.I)
    for name in [r["file"] for r in ROWS if r["format"] == "fountain" and int(r["scenes"])]:
        sp = _read(name)
        leaked = [a for s in sp.scenes for a in s.action if field.match(a)]
        assert not leaked, (name, leaked[:2])
        if sp.title_page:  # the first scene starts after the blank line that ends the title page
            lines = (SHARED / name).read_text(encoding="utf-8-sig").splitlines()
            start = next(i for i, line in enumerate(lines) if re.match(r"[^\s\[/][^:]*:", line))  # first key
            end = next(i for i in range(start, len(lines)) if not lines[i].strip()) + 1  # 1-based blank line
            assert sp.scenes[0].line > end, name


@needs_shared
def test_final_draft_notes_and_summaries_stay_out_of_the_action():
    (note,) = _read("aw-header_note.fdx").scenes
    assert note.heading == "INT. SCENE HEADING - DAY" and not note.action and "Note" not in note.text
    (syn,) = _read("aw-synopsis.fdx").scenes
    assert syn.synopsis == "Here is the synopsis." and not syn.action
    fd, fi = _read("ww-TestFDX-FD.fdx"), _read("ww-TestFDX-FI.fdx")
    assert [s.heading for s in fd.scenes] == ["INT. RADIO STUDIO", "EXT. OUTSIDE THE FOOD STORE"]
    for a, b in zip(fd.scenes, fi.scenes, strict=True):  # Final Draft 12 and Fade In exports of one script
        assert (a.heading, a.action, a.dialogue, a.characters) == (b.heading, b.action, b.dialogue, b.characters)
    assert fd.scenes[0].action == ["We are in a TV station listening to the announcer on the other site of the "
                                   "glass.", "Dave is at the coffee machine."]
    assert fd.title == fi.title == "FDX Test Script"


@needs_shared
def test_fdx_and_fountain_editions_agree():
    for stem in ("big-fish", "the-last-birthday-card"):
        a, b = _read(f"{stem}.fountain"), _read(f"{stem}.fdx")
        assert [s.heading for s in a.scenes] == [" ".join(s.heading.split()) for s in b.scenes]


@needs_shared
def test_the_cyrillic_script_is_refused_with_what_to_do(tmp_path):
    src = SHARED / "aw-cyrillic.fountain"
    with pytest.raises(InputError) as err:
        parse.read_script(src)
    msg = str(err.value)
    assert msg.startswith(f"{src}:") and "\n" not in msg
    assert "Cyrillic" in msg and "'.'" in msg and "planner: openai or local" in msg
    # following the advice (force the headings) gives its two scenes, which the offline planner cannot read
    forced = tmp_path / "forced.fountain"
    forced.write_text(re.sub(r"(?m)^ИНТ\.", ".ИНТ.", src.read_text(encoding="utf-8")), encoding="utf-8")
    sp = parse.read_script(forced)
    assert [s.heading for s in sp.scenes] == ["ИНТ. КВАРТИРА МАШИ – СТОЛОВАЯ – ДЕНЬ", "ИНТ. КВАРТИРА МАШИ – КУХНЯ – ДЕНЬ"]
    with pytest.raises(InputError) as err:
        parse.read_script(forced, latin_only=True)
    msg = str(err.value)
    assert msg.startswith(f"{forced}:") and "\n" not in msg and "Cyrillic" in msg and "Latin" in msg
    assert "planner: openai or local" in msg


@needs_shared
@pytest.mark.parametrize("name", ["if-na-kazda-droge.fountain", "if-laboratorium.fountain", "aw-test.fountain"])
def test_polish_scripts_are_latin_and_parse(name):
    sp = _read(name, latin_only=True)
    assert parse.alphabet(" ".join(s.text for s in sp.scenes)) == "Latin"
    assert any(s.heading.startswith("WNĘTRZE.") for s in sp.scenes)


# ------------------------------------------------------------------------------------------ spec edge cases
def _heads(text: str) -> list[str]:
    return [s.heading for s in parse.parse_fountain(text).scenes]


def test_i_e_headings_and_what_fountain_py_alone_reads():
    text = "I./E. CAR - NIGHT\n\nThey drive.\n\ni./e. car - day\n\nStill driving.\n"
    assert _heads(text) == ["I./E. CAR - NIGHT", "i./e. car - day"]
    assert "scene_heading" not in [e.type.value for e in FountainParser().parse(text).elements]


def test_two_heading_lines_in_a_row_are_action():
    text = "INT. A - DAY\n\nx\n\nINT. HOUSE - DAY\nEXT. HOUSE - DAY\n\nmore\n"
    sp = parse.parse_fountain(text)
    assert [s.heading for s in sp.scenes] == ["INT. A - DAY"]
    assert sp.scenes[0].action == ["x", "INT. HOUSE - DAY\nEXT. HOUSE - DAY", "more"]
    # a heading followed directly by action stays a heading (the lenient reading), also after a boneyard
    assert _heads("INT. A - DAY\nAction.\n\n/*\ncut\n*/\nEXT. B - DAY\nMore.\n") == ["INT. A - DAY", "EXT. B - DAY"]


def test_heading_after_boneyard_and_what_fountain_py_alone_reads():
    text = "Action.\n\n/*\nINT. CUT - DAY\n\ngone\n*/\nEXT. KEPT - DAY\n\nStays.\n"
    sp = parse.parse_fountain(text)
    assert [s.heading for s in sp.scenes] == ["OPENING", "EXT. KEPT - DAY"] and sp.scenes[1].line == 8
    assert "scene_heading" not in [e.type.value for e in FountainParser().parse(text).elements]
    fixed, origin = parse._separate_headings(text)
    assert fixed.split("\n")[6:9] == ["*/", "", "EXT. KEPT - DAY"] and origin[7] == origin[8] == 8
    # text after the */ on its line, or a heading inside a boneyard, is not touched
    assert parse._separate_headings("/*\nx\n*/ y\nEXT. A - DAY\n\nz\n")[0].count("\n\n") == 1


def test_forced_headings_in_any_script():
    assert _heads(".ŚCIANA - DZIEŃ\n\nTekst.\n\n.ИНТ. КУХНЯ – ДЕНЬ\n\nТекст.\n\n...not forced\n") == [
        "ŚCIANA - DZIEŃ", "ИНТ. КУХНЯ – ДЕНЬ"]


@pytest.mark.parametrize("text, fields, first", [
    # empty value, unindented continuation lines (Beat), then the body after the blank line
    ("Title: T\nCredit:\nAuthor: A\nContact:\nmail@x.org\n+1 555\n\nINT. A - DAY\n\nGo.\n",
     {"title": "T", "credit": "", "author": "A", "contact": "mail@x.org +1 555"}, "INT. A - DAY"),
    # a note (several lines) before the title page; indented values with colons stay values
    ("[[A note.\nmore]]\n\nTitle:\n\tLine one\n    e-mail: a@b.c\nDraft date: 1/2/3\n\nEXT. B - DAY\n\nGo.\n",
     {"title": "Line one e-mail: a@b.c", "draft date": "1/2/3"}, "EXT. B - DAY"),
    # no blank line between the title page and the first heading
    ("Title: T\nINT. C - DAY\n\nGo.\n", {"title": "T"}, "INT. C - DAY"),
    # no title page: the first line is action that holds a colon
    ("he opens the card: a threat.\n\nINT. D - DAY\n\nGo.\n", {}, "OPENING"),
])
def test_title_page_cases(text, fields, first):
    sp = parse.parse_fountain(text)
    assert sp.title_page == fields and sp.scenes[0].heading == first
    body = " ".join(s.action_text for s in sp.scenes)
    assert all(v not in body for v in fields.values() if v)


def test_title_page_ends_at_the_first_blank_line():
    """Key-like lines after the blank line are the script's, not the title page's."""
    sp = parse.parse_fountain("Title: T\n\nNote: this line is action.\n\nINT. A - DAY\n\nGo.\n")
    assert sp.title_page == {"title": "T"}
    assert sp.scenes[0].heading == "OPENING" and sp.scenes[0].action == ["Note: this line is action."]


def test_alphabet():
    assert parse.alphabet("Pchnąć w tę łódź jeża") == "Latin"
    assert parse.alphabet("Квартира Маши, Eа") == "Cyrillic"
    assert parse.alphabet("Καλημέρα") == "Greek" and parse.alphabet("12 — !") == "none"
