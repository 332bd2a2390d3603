"""Screenplays → scenes: Fountain (through the ``fountain-py`` parser) and Final Draft ``.fdx`` (stdlib XML).

Each scene gets its heading, action text, dialogue, characters, an estimated page count and an estimated screen
time.

Fountain
    Parsed by ``fountain.FountainParser`` (fountain-py), chosen over screenplain, jouvence and screenplay-tools
    because it got most of the format right and keeps source line numbers: forced headings (``.FLASHBACK``),
    transitions (``CUT TO:``, ``> BURN TO PINK.``), centred text (``>THE END<``), dual dialogue (``^``), notes
    ``[[ ]]`` (dropped), boneyard ``/* */`` (dropped), sections, synopses, lyrics and page breaks. Where it
    departs from the spec (https://fountain.io/syntax) or from what real scripts need, the fix sits *around* it:

    * :func:`_spec_parser` (a subclass that swaps only two class constants and the title-page pass):
      ``I./E.`` is a heading prefix, as in the spec authors' own parser and tests (fountain-py knows ``I/E`` only);
      a forced heading is a ``.`` followed by any letter or digit, Polish or Cyrillic too (fountain-py: ASCII
      only); the title page is read as :func:`_title_page` says.
    * :func:`_separate_headings` rewrites the text before parsing (and maps line numbers back): a heading
      followed directly by action gets the blank line the spec asks for (real scripts often lack it), unless the
      next line is itself a heading (two heading lines in a row are action, as the spec authors' tests say); a
      heading on the line right after a boneyard's ``*/`` gets a blank line before it (the boneyard leaves one
      behind: screenplain's and fountain-tools' tests read that line as a heading).
Final Draft
    ``<FinalDraft><Content><Paragraph Type="Scene Heading|Action|Character|Dialogue|...">`` with ``<Text>`` runs;
    ``<DualDialogue>`` paragraphs nest their own; the title page lives under ``<TitlePage>``. Only a paragraph's
    own ``<Text>`` children are read: script notes (``<ScriptNote>``) and scene properties nested in a heading
    stay out of the text, except the scene's ``<Summary>``, read as its synopsis.

Page count: a screenplay page holds about :data:`LINES_PER_PAGE` (55) printed lines of 12 pt Courier. Each
element is wrapped at its printed width (action 61 characters, dialogue 35, parenthetical 25, cue and heading
one line) and followed by a blank line, the way screenwriting software lays it out, so ``pages = lines / 55``.
Screen time (:func:`screen_times`) is then ``pages × seconds_per_page`` (the "one page ≈ one minute" rule,
default 60 s) or ``words / words_per_minute``.
"""

from __future__ import annotations

import os
import re
import textwrap
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = [
    "LINES_PER_PAGE",
    "Scene",
    "Screenplay",
    "alphabet",
    "parse_fdx",
    "parse_fountain",
    "read_script",
    "scenes_table",
    "screen_times",
]

#: Printed lines on a US-letter screenplay page (12 pt Courier, 1" margins, 6 lines per inch).
LINES_PER_PAGE = 55
#: Printed width in characters (10 per inch) of each element type.
WIDTHS = {"action": 61, "dialogue": 35, "parenthetical": 25, "heading": 61, "transition": 61}
FOUNTAIN_SUFFIXES = (".fountain", ".spmd", ".txt", ".md")


@dataclass
class Scene:
    """One scene of a screenplay.

    ``index`` counts from 1 in script order; ``line`` is the 1-based source line of the heading (``None`` for
    Final Draft files); ``pages`` is the estimated page count (see the module notes); ``start_s`` and
    ``duration_s`` are filled by :func:`screen_times`.
    """

    index: int
    heading: str
    line: int | None = None
    scene_number: str | None = None
    action: list[str] = field(default_factory=list)  # action paragraphs (centred text included)
    dialogue: list[str] = field(default_factory=list)  # dialogue and lyric lines
    characters: list[str] = field(default_factory=list)  # speaking characters, first appearance order
    transitions: list[str] = field(default_factory=list)
    synopsis: str = ""
    printed_lines: int = 0
    start_s: float = 0.0
    duration_s: float = 0.0
    # printed-line offsets [start, end) of each dialogue block (character cue to its last line) within the scene
    dialogue_spans: list[tuple[int, int]] = field(default_factory=list)

    @property
    def action_text(self) -> str:
        return " ".join(a.replace("\n", " ") for a in self.action).strip()

    @property
    def text(self) -> str:
        """Heading, synopsis and action as one string (what cue planning and relevance read)."""
        parts = [self.heading.rstrip(".") + "."] + ([self.synopsis] if self.synopsis else []) + [self.action_text]
        return " ".join(p for p in parts if p).strip()

    @property
    def n_words(self) -> int:
        return len(re.findall(r"\w+", " ".join([self.heading, *self.action, *self.dialogue])))

    @property
    def pages(self) -> float:
        return self.printed_lines / LINES_PER_PAGE

    def as_row(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(action=self.action_text, dialogue=" ".join(self.dialogue), characters=";".join(self.characters),
                 transitions=";".join(self.transitions), pages=round(self.pages, 3), n_words=self.n_words,
                 dialogue_spans=";".join(f"{a}-{b}" for a, b in self.dialogue_spans))
        return d


@dataclass
class Screenplay:
    """A parsed script: where it came from, its title-page fields and its scenes."""

    source: str
    format: str  # "fountain" or "fdx"
    title_page: dict[str, str]
    scenes: list[Scene]

    @property
    def title(self) -> str:
        return self.title_page.get("title") or Path(self.source).stem

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.scenes)


# --------------------------------------------------------------------------------------------- layout
def _wrapped(text: str, width: int) -> int:
    """Printed lines of ``text`` wrapped at ``width`` characters (each source line at least one)."""
    return sum(max(1, len(textwrap.wrap(line, width))) for line in text.split("\n"))


class _SceneBuilder:
    def __init__(self):
        self.scenes: list[Scene] = []
        self.current: Scene | None = None
        self._block: tuple[Scene, int] | None = None  # the dialogue block being read: its scene and first line

    def _close_block(self) -> None:
        if self._block is not None:
            scene, start = self._block
            if scene.printed_lines > start:
                scene.dialogue_spans.append((start, scene.printed_lines))
            self._block = None

    def heading(self, text: str, *, line: int | None, number: str | None = None) -> None:
        self._close_block()
        self.current = Scene(index=len(self.scenes) + 1, heading=" ".join(text.split()), line=line,
                             scene_number=number, printed_lines=2)
        self.scenes.append(self.current)

    def _scene(self, line: int | None) -> Scene:
        if self.current is None:  # material before the first heading: a cold open
            self.heading("OPENING", line=line)
        return self.current

    def action(self, text: str, *, line: int | None) -> None:
        text = text.strip()
        if text:
            self._close_block()
            s = self._scene(line)
            s.action.append(text)
            s.printed_lines += _wrapped(text, WIDTHS["action"]) + 1

    def cue(self, name: str, *, line: int | None) -> None:
        s = self._scene(line)
        self._close_block()
        self._block = (s, s.printed_lines)
        name = " ".join(name.split())
        if name and name not in s.characters:
            s.characters.append(name)
        s.printed_lines += 1

    def speech(self, text: str, *, kind: str = "dialogue", line: int | None = None, end: bool = False) -> None:
        s = self._scene(line)
        text = text.strip()
        if text and kind != "parenthetical":
            s.dialogue.append(text.replace("\n", " "))
        if text:
            s.printed_lines += _wrapped(text, WIDTHS["parenthetical" if kind == "parenthetical" else "dialogue"])
        if end:
            self._close_block()
            s.printed_lines += 1

    def transition(self, text: str, *, line: int | None) -> None:
        self._close_block()
        if self.current is not None:  # a FADE IN: before the first heading is no scene
            self.current.transitions.append(text.strip())
            self.current.printed_lines += 2

    def synopsis(self, text: str, *, line: int | None) -> None:
        if self.current is not None and not self.current.synopsis:
            self.current.synopsis = text.strip()


# --------------------------------------------------------------------------------------------- Fountain
#: Scene-heading prefixes (spec: INT, EXT, EST, INT./EXT, INT/EXT, I/E, each followed by a dot or a space; case
#: insensitive), plus ``I./E.``, which the spec authors' reference parser and its tests (SceneHeaders.fountain)
#: accept. fountain-py's own pattern, with ``I./E`` added.
HEADING_PATTERN = re.compile(r"^(?:INT|EXT|EST|I/E|I\./E|INT/EXT|INT\./EXT)(?:\s*\.|\s)", re.IGNORECASE)
#: A forced heading: one ``.`` and then a letter or digit of any script (``.WNĘTRZE.``, ``.ИНТ.``); ``...`` is not.
FORCED_HEADING_PATTERN = re.compile(r"^\.(?!\.)(?=[^\W_])")
#: A title-page key: a word that starts with a letter, then letters, digits, spaces and a little punctuation,
#: then a colon (``Title:``, ``Draft date:``, ``e-mail:``); the value may be empty. See :func:`_title_key`.
_TITLE_KEY = re.compile(r"^([^\W\d_][\w '&/()\-]{0,39}?)\s*:(.*)$")
#: Keys the spec and common tools write; any other key must look like a label (capitalised, three words at most).
_TITLE_FIELDS = frozenset({"title", "credit", "author", "authors", "source", "draft date", "date", "contact",
                           "notes", "copyright", "revision", "format", "font"})


def _title_key(line: str) -> re.Match | None:
    """The ``key: value`` match of a title-page line, or ``None``. The spec allows any key; a lowercase phrase of
    several words (``he opens the card: a threat.``) is read as a line of action instead, as fountain-py does."""
    m = _TITLE_KEY.match(line.strip())
    if m is None or _is_heading_line(line):
        return None
    key = m.group(1).strip()
    if key.lower() in _TITLE_FIELDS or (key[0].isupper() and len(key.split()) <= 3):
        return m
    return None


def _is_heading_line(line: str) -> bool:
    s = line.strip()
    return bool(HEADING_PATTERN.match(s) or FORCED_HEADING_PATTERN.match(s))


def _title_page(lines: list[str]) -> tuple[dict[str, str], int]:
    """Read the title page at the start of a Fountain text: ``(fields, index of the first body line)``.

    The spec: the title page is the first thing in the document, ``key: value`` pairs, values inline or on
    indented lines below the key (3+ spaces or a tab), ending where the writer "drops down" to a blank line. What
    real files add, read here too: a key with an empty value (``Credit:``), continuation lines that are not
    indented (the way Beat writes ``Contact:``), and notes or boneyard before the title page (skipped). A title
    page that runs straight into a scene heading ends at the heading. Without a ``key:`` line first there is no
    title page: ``({}, 0)``. Keys are lowercased; multi-line values are joined with newlines.
    """
    i, n = 0, len(lines)
    while i < n:  # blank lines, notes and boneyard before the title page
        s = lines[i].strip()
        closer = "]]" if s.startswith("[[") else "*/" if s.startswith("/*") else None
        if not s:
            i += 1
        elif closer:
            j = i
            while j < n and closer not in lines[j][(2 if j == i else 0):]:
                j += 1
            i = j + 1
        else:
            break
    if i >= n or lines[i][:1].isspace() or not _title_key(lines[i]):
        return {}, 0
    fields: dict[str, list[str]] = {}
    key = None
    while i < n and lines[i].strip():
        raw, s = lines[i], lines[i].strip()
        indented = raw.startswith("\t") or len(raw) - len(raw.lstrip(" ")) >= 3
        m = None if indented else _title_key(s)
        if s.startswith("[[") and s.endswith("]]"):
            pass  # a note inside the title page
        elif m:
            key = m.group(1).strip().lower()
            fields.setdefault(key, [])
            if m.group(2).strip():
                fields[key].append(m.group(2).strip())
        elif not indented and _is_heading_line(s):
            break  # no blank line between the title page and the first scene
        else:  # a continuation line, indented (spec) or not (Beat)
            fields[key].append(s)
        i += 1
    return {k: "\n".join(v) for k, v in fields.items()}, i


@lru_cache(maxsize=1)
def _spec_parser():
    """fountain-py's parser with the spec's heading prefixes, Unicode forced headings and :func:`_title_page`."""
    from fountain import FountainParser

    swap = {id(FountainParser.SCENE_HEADING_PATTERN): HEADING_PATTERN,
            id(FountainParser.FORCED_SCENE_HEADING_PATTERN): FORCED_HEADING_PATTERN}

    class _SpecParser(FountainParser):
        SCENE_HEADING_PATTERN = HEADING_PATTERN
        FORCED_SCENE_HEADING_PATTERN = FORCED_HEADING_PATTERN
        HARD_STRUCTURAL_PATTERNS = tuple(swap.get(id(p), p) for p in FountainParser.HARD_STRUCTURAL_PATTERNS)

        def _parse_title_page(self) -> dict[str, str]:
            fields, self.current_line = _title_page(self.lines)
            return fields

    return _SpecParser


def _separate_headings(text: str) -> tuple[str, list[int]]:
    """Give natural scene headings the blank lines around them that the parser needs.

    * A heading followed directly by another line gets a blank line after it (the lenient reading real scripts
      need), unless that line is itself a heading line: two heading lines in a row are action.
    * A heading on the line right after a boneyard's closing ``*/`` (nothing after it on that line) gets a blank
      line before it: the boneyard leaves an empty line behind.

    Only lines that stand after a blank line (or open the body, or follow such a ``*/``), match
    :data:`HEADING_PATTERN`, and lie outside boneyard and notes are touched. Returns the new text and, for each of
    its lines, the 1-based line of the original text it came from.
    """
    lines = text.split("\n")
    out: list[str] = []
    origin: list[int] = []
    in_boneyard = in_note = False
    after_boneyard = False  # the previous line closed a boneyard and held nothing after the */
    for i, line in enumerate(lines):
        stripped = line.strip()
        prev_blank = i == 0 or not lines[i - 1].strip() or after_boneyard
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        is_heading = (not in_boneyard and not in_note and prev_blank and HEADING_PATTERN.match(stripped)
                      and not stripped.endswith(":"))
        if is_heading and after_boneyard:
            out.append("")
            origin.append(i + 1)
        out.append(line)
        origin.append(i + 1)
        if is_heading and nxt and not _is_heading_line(nxt):
            out.append("")
            origin.append(i + 1)
        # state after this line (the last opener or closer on the line wins)
        was_in_boneyard = in_boneyard
        tokens = re.findall(r"/\*|\*/|\[\[|\]\]", line)
        for token in tokens:
            if token == "/*":
                in_boneyard = True
            elif token == "*/":
                in_boneyard = False
            elif token == "[[":
                in_note = True
            else:
                in_note = False
        after_boneyard = (was_in_boneyard and not in_boneyard and tokens[-1] == "*/"
                          and not line[line.rindex("*/") + 2:].strip())
    return "\n".join(out), origin


def alphabet(text: str) -> str:
    """The writing system most letters of ``text`` belong to, from their Unicode names: ``"Latin"`` (English,
    Polish, …), ``"Cyrillic"``, ``"Greek"``, ``"Arabic"``, ``"CJK"``, …; ``"none"`` when there is no letter."""
    counts: dict[str, int] = {}
    for c in text:
        if c.isalpha():
            name = unicodedata.name(c, "UNKNOWN").split(" ")[0]
            counts[name] = counts.get(name, 0) + 1
    if not counts:
        return "none"
    top = max(counts, key=counts.get)
    return top if top == "CJK" else top.capitalize()


def parse_fountain(text: str, *, source: str = "<text>") -> Screenplay:
    """Parse Fountain text into scenes (see the module notes for the edge cases handled).

    Raises:
        InputError: no scene heading at all (the message names ``source``; for a script not written in Latin
            letters it says how to force its headings).
    """
    from fountain import ElementType as E

    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    fixed, origin = _separate_headings(text)
    doc = _spec_parser()().parse(fixed)

    def src(el) -> int | None:
        n = getattr(el, "line_number", None)
        return origin[n - 1] if n and 0 < n <= len(origin) else n

    b = _SceneBuilder()
    speech_types = {E.DIALOGUE: "dialogue", E.PARENTHETICAL: "parenthetical", E.LYRICS: "dialogue"}
    elements = list(doc.elements)
    for k, el in enumerate(elements):
        t = el.type
        nxt = elements[k + 1].type if k + 1 < len(elements) else None
        if t == E.SCENE_HEADING:
            b.heading(el.text, line=src(el), number=(el.metadata or {}).get("scene_number"))
        elif t in (E.ACTION, E.CENTERED):
            b.action(el.text, line=src(el))
        elif t == E.CHARACTER:
            b.cue(el.text, line=src(el))
        elif t in speech_types:
            if t == E.LYRICS and b.current is None:
                continue
            b.speech(el.text, kind=speech_types[t], line=src(el), end=nxt not in speech_types)
        elif t == E.DUAL_DIALOGUE:
            meta = el.metadata or {}
            before = b._scene(src(el)).printed_lines
            sides = []
            for side in ("left", "right"):
                start = b.current.printed_lines
                ch = meta.get(f"{side}_character")
                if ch is not None:
                    b.cue(ch.text, line=src(ch))
                for d in meta.get(f"{side}_dialogue") or []:
                    b.speech(d.text, kind=speech_types.get(d.type, "dialogue"), line=src(d))
                sides.append(b.current.printed_lines - start)
            b.current.printed_lines = before + max(sides, default=0) + 1  # side by side: the longer column
        elif t == E.TRANSITION:
            b.transition(el.text, line=src(el))
        elif t == E.SYNOPSIS:
            b.synopsis(el.text, line=src(el))
        # notes, boneyard, sections, page breaks and the title page carry no screen time
    meta = {str(k).lower(): (v if isinstance(v, str) else " ".join(map(str, v)) if isinstance(v, list) else str(v))
            for k, v in (getattr(doc, "metadata", None) or {}).items()}
    meta = {k: " ".join(re.sub(r"[*_]", "", v).split()) for k, v in meta.items()}
    b._close_block()
    scenes = [s for s in b.scenes if s.heading != "OPENING" or s.action or s.dialogue]
    for i, s in enumerate(scenes, 1):
        s.index = i
    real = [s for s in scenes if s.heading != "OPENING"]
    if not real:
        script = alphabet(text)
        if script not in ("Latin", "none"):
            raise InputError(f"{source}: no scene heading found in this {script} script (Fountain headings start "
                             f"with INT, EXT, EST, INT./EXT, INT/EXT or I/E); put a '.' before each heading to force "
                             f"it, and plan its cues with planner: openai or local (the offline planner reads only "
                             f"Latin-script words)")
        raise InputError(f"{source}: no scene found (no scene heading such as 'INT. KITCHEN - NIGHT' or a forced "
                         f"'.HEADING'); pass a Fountain or Final Draft screenplay")
    return Screenplay(source=source, format="fountain", title_page=meta, scenes=scenes)


# --------------------------------------------------------------------------------------------- Final Draft
def _fdx_text(par: ET.Element) -> str:
    return "".join("".join(t.itertext()) for t in par.findall("Text"))


def parse_fdx(data: bytes | str, *, source: str = "<fdx>") -> Screenplay:
    """Parse a Final Draft ``.fdx`` document into scenes.

    Raises:
        InputError: not XML (with the line), not a Final Draft document, or no scene heading.
    """
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else "?"
        raise InputError(f"{source}:{line}: not a readable Final Draft file (XML error: {exc.msg if hasattr(exc, 'msg') else exc}); "
                         "export it again from Final Draft") from None
    if root.tag != "FinalDraft" or root.find("Content") is None:
        raise InputError(f"{source}: not a Final Draft document (no <FinalDraft><Content>); pass a .fdx or Fountain file")
    b = _SceneBuilder()

    def walk(pars):
        pars = list(pars)
        for k, par in enumerate(pars):
            dual = par.find("DualDialogue")
            if dual is not None:
                before = b._scene(None).printed_lines
                walk(dual.findall("Paragraph"))
                b.current.printed_lines = before + max(1, (b.current.printed_lines - before + 1) // 2) + 1
                continue
            kind = (par.get("Type") or "General").strip().lower()
            text = _fdx_text(par)
            nxt = (pars[k + 1].get("Type") or "").lower() if k + 1 < len(pars) else ""
            if kind == "scene heading":
                b.heading(text, line=None, number=par.get("Number"))
                summary = " ".join(" ".join(t.itertext()) for t in par.findall("SceneProperties/Summary//Text"))
                if summary.strip():  # Final Draft's scene summary: the Fountain synopsis's counterpart
                    b.synopsis(" ".join(summary.split()), line=None)
            elif kind in ("action", "general", "shot"):
                b.action(text, line=None)
            elif kind == "character":
                b.cue(re.sub(r"\s*\([^)]*\)\s*$", "", text), line=None)
            elif kind in ("dialogue", "parenthetical", "lyrics"):
                b.speech(text, kind="parenthetical" if kind == "parenthetical" else "dialogue",
                         end=nxt not in ("dialogue", "parenthetical", "lyrics"))
            elif kind == "transition":
                b.transition(text, line=None)

    walk(root.find("Content").findall("Paragraph"))
    title: dict[str, str] = {}
    for par in root.findall("TitlePage/Content/Paragraph"):
        text = " ".join(_fdx_text(par).split())
        if text:
            key = (par.get("Type") or "").strip().lower()
            if key in ("", "general"):  # untyped lines (Final Draft, Fade In): the first is the title
                key = "title" if not title else f"line{len(title)}"
            title.setdefault(key, text)
    b._close_block()
    scenes = [s for s in b.scenes if s.heading != "OPENING" or s.action or s.dialogue]
    for i, s in enumerate(scenes, 1):
        s.index = i
    if not any(s.heading != "OPENING" for s in scenes):
        raise InputError(f"{source}: no scene found (no 'Scene Heading' paragraph); pass a screenplay with scenes")
    return Screenplay(source=source, format="fdx", title_page=title, scenes=scenes)


# --------------------------------------------------------------------------------------------- files
def _first_bad_utf8_line(data: bytes, exc: UnicodeDecodeError) -> int:
    return data[: exc.start].count(b"\n") + 1


def read_script(path: str | os.PathLike, *, seconds_per_page: float = 60.0, words_per_minute: float | None = None,
                min_scene_s: float = 0.0, latin_only: bool = False) -> Screenplay:
    """Read a screenplay file (Fountain or ``.fdx``), parse its scenes and give each its screen time.

    Args:
        path: ``.fountain`` / ``.spmd`` / ``.txt`` (Fountain) or ``.fdx`` (Final Draft XML; also recognised by
            content).
        seconds_per_page, words_per_minute, min_scene_s: the screen-time estimate (:func:`screen_times`).
        latin_only: refuse a script whose scenes are not written mostly in Latin letters (:func:`alphabet`):
            the offline cue planner reads English words only, so a Cyrillic or Greek script would get cues planned
            from nothing. Pass it when the offline planner will read the scenes.

    Raises:
        InputError: missing, empty or binary file, text that is not UTF-8 (with its line), a malformed Final
            Draft file, a script without any scene, or (``latin_only``) a script in another alphabet; the
            one-line message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: screenplay not found; pass a Fountain (.fountain) or Final Draft (.fdx) file")
    data = p.read_bytes()
    if not data.strip():
        raise InputError(f"{p}: the file is empty; pass a screenplay with at least one scene")
    if b"\x00" in data[:65536]:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise InputError(f"{p}:{line}: binary data, not a screenplay; pass a Fountain text or Final Draft .fdx file")
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if p.suffix.lower() == ".fdx" or head.startswith((b"<?xml", b"<FinalDraft")):
        sp = parse_fdx(data, source=str(p))
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(f"{p}:{_first_bad_utf8_line(data, exc)}: not UTF-8 text (byte {exc.start}); save the "
                             "screenplay as UTF-8 Fountain") from None
        if sum(not (c.isprintable() or c in "\n\r\t") for c in text[:65536]) > 0.05 * min(len(text), 65536):
            raise InputError(f"{p}: mostly control characters, not a screenplay; pass a Fountain or .fdx file")
        sp = parse_fountain(text, source=str(p))
    if latin_only:
        script = alphabet(" ".join(f"{s.heading} {s.action_text} {' '.join(s.dialogue)}" for s in sp.scenes))
        if script not in ("Latin", "none"):
            raise InputError(f"{p}: the script is written in {script} letters, not in the Latin alphabet the offline "
                             f"planner reads; use scoring.planner: openai or local")
    screen_times(sp, seconds_per_page=seconds_per_page, words_per_minute=words_per_minute, min_scene_s=min_scene_s)
    return sp


def screen_times(sp: Screenplay, *, seconds_per_page: float = 60.0, words_per_minute: float | None = None,
                 min_scene_s: float = 0.0) -> Screenplay:
    """Fill ``start_s`` / ``duration_s`` of every scene, back to back from 0.

    ``duration_s = pages × seconds_per_page`` (default: one page ≈ one minute), or, when ``words_per_minute`` is
    given, ``n_words / words_per_minute × 60``; never below ``min_scene_s``. Durations are rounded to
    milliseconds so that cue boundaries fall on whole samples at common rates.
    """
    t = 0.0
    for s in sp.scenes:
        if words_per_minute:
            d = s.n_words / float(words_per_minute) * 60.0
        else:
            d = s.pages * float(seconds_per_page)
        d = round(max(d, float(min_scene_s), 0.001), 3)
        s.start_s, s.duration_s = round(t, 3), d
        t += d
    return sp


def scenes_table(sp: Screenplay):
    """One row per scene: index, heading, line, characters, pages, words, start_s, duration_s, action."""
    import pandas as pd

    cols = ["index", "heading", "line", "scene_number", "characters", "pages", "n_words", "start_s", "duration_s",
            "transitions", "action"]
    df = pd.DataFrame([s.as_row() for s in sp.scenes])
    return df[cols].rename(columns={"index": "scene"})
