"""Screenplays → scenes: Fountain (through the ``fountain-py`` parser) and Final Draft ``.fdx`` (stdlib XML).

Each scene gets its heading, action text, dialogue, characters, an estimated page count and an estimated screen
time.

Fountain
    Parsed by ``fountain.FountainParser`` (fountain-py), chosen over screenplain, jouvence and screenplay-tools
    because it alone got every case below right except one, and it keeps source line numbers: title page,
    forced headings (``.FLASHBACK``), transitions (``CUT TO:``, ``> BURN TO PINK.``), centred text
    (``>THE END<``), dual dialogue (``^``), notes ``[[ ]]`` (dropped), boneyard ``/* */`` (dropped), sections,
    synopses, lyrics and page breaks. The miss: a heading followed directly by action, with no blank line
    between them, is read as action (the spec asks for the blank line; real scripts often lack it). That case is
    handled *around* the parser: :func:`_separate_headings` inserts the blank line before parsing (outside
    notes and boneyard, using the parser's own heading pattern) and maps line numbers back.
Final Draft
    ``<FinalDraft><Content><Paragraph Type="Scene Heading|Action|Character|Dialogue|...">`` with ``<Text>`` runs;
    ``<DualDialogue>`` paragraphs nest their own; the title page lives under ``<TitlePage>``.

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
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = [
    "LINES_PER_PAGE",
    "Scene",
    "Screenplay",
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
                 transitions=";".join(self.transitions), pages=round(self.pages, 3), n_words=self.n_words)
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

    def heading(self, text: str, *, line: int | None, number: str | None = None) -> None:
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
            s = self._scene(line)
            s.action.append(text)
            s.printed_lines += _wrapped(text, WIDTHS["action"]) + 1

    def cue(self, name: str, *, line: int | None) -> None:
        s = self._scene(line)
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
            s.printed_lines += 1

    def transition(self, text: str, *, line: int | None) -> None:
        if self.current is not None:  # a FADE IN: before the first heading is no scene
            self.current.transitions.append(text.strip())
            self.current.printed_lines += 2

    def synopsis(self, text: str, *, line: int | None) -> None:
        if self.current is not None and not self.current.synopsis:
            self.current.synopsis = text.strip()


# --------------------------------------------------------------------------------------------- Fountain
def _separate_headings(text: str) -> tuple[str, list[int]]:
    """Insert a blank line after every scene heading that is followed directly by another line.

    Only lines that stand after a blank line (or open the body), match the parser's own heading pattern, and lie
    outside boneyard and notes are touched. Returns the new text and, for each of its lines, the 1-based line of
    the original text it came from.
    """
    from fountain import FountainParser

    pattern = FountainParser.SCENE_HEADING_PATTERN
    lines = text.split("\n")
    out: list[str] = []
    origin: list[int] = []
    in_boneyard = in_note = False
    for i, line in enumerate(lines):
        out.append(line)
        origin.append(i + 1)
        stripped = line.strip()
        prev_blank = i == 0 or not lines[i - 1].strip()
        next_text = i + 1 < len(lines) and lines[i + 1].strip()
        if (not in_boneyard and not in_note and prev_blank and next_text and pattern.match(stripped)
                and not stripped.endswith(":")):
            out.append("")
            origin.append(i + 1)
        # state after this line (the last opener or closer on the line wins)
        for token in re.findall(r"/\*|\*/|\[\[|\]\]", line):
            if token == "/*":
                in_boneyard = True
            elif token == "*/":
                in_boneyard = False
            elif token == "[[":
                in_note = True
            else:
                in_note = False
    return "\n".join(out), origin


def parse_fountain(text: str, *, source: str = "<text>") -> Screenplay:
    """Parse Fountain text into scenes (see the module notes for the edge cases handled).

    Raises:
        InputError: no scene heading at all (the message names ``source``).
    """
    from fountain import ElementType as E
    from fountain import FountainParser

    text = text.replace("\r\n", "\n").replace("\r", "\n")
    fixed, origin = _separate_headings(text)
    doc = FountainParser().parse(fixed)

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
    scenes = [s for s in b.scenes if s.heading != "OPENING" or s.action or s.dialogue]
    for i, s in enumerate(scenes, 1):
        s.index = i
    real = [s for s in scenes if s.heading != "OPENING"]
    if not real:
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
            key = (par.get("Type") or "").strip().lower() or ("title" if not title else f"line{len(title)}")
            title.setdefault(key, text)
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
                min_scene_s: float = 0.0) -> Screenplay:
    """Read a screenplay file (Fountain or ``.fdx``), parse its scenes and give each its screen time.

    Args:
        path: ``.fountain`` / ``.spmd`` / ``.txt`` (Fountain) or ``.fdx`` (Final Draft XML; also recognised by
            content).
        seconds_per_page, words_per_minute, min_scene_s: the screen-time estimate (:func:`screen_times`).

    Raises:
        InputError: missing, empty or binary file, text that is not UTF-8 (with its line), a malformed Final
            Draft file, or a script without any scene; the one-line message names the file.
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
