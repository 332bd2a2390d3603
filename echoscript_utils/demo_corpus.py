"""A labelled demo corpus: procedurally composed pieces rendered through a General MIDI soundfont.

Every piece is planned from the paper's taxonomy (:mod:`echoscript_utils.taxonomy`) and composed so that its
labels are true by construction:

* **genre** from the instrumentation and texture: classical = piano / violin / guitar solo or duo with
  Alberti or finger-picked accompaniment; orchestral = string section, brass, timpani and concert bass drum;
  electronic = synth bass, lead and pad over a drum machine; ambient = slow synth pads with a sparse voice;
  cinematic = strings, piano and big drums;
* **mood** from mode, tempo, register and dynamics: uplifting = major, fast, high, loud; suspenseful = minor,
  low ostinato with semitone clashes; melancholic = minor, slow, legato; calming = major, slow, soft;
* **instruments** are exactly the taxonomy instruments whose parts are written (``violin`` covers solo violin
  and string sections, ``percussion`` the General MIDI drum channel);
* **bpm**, **key** and **mode** are the tempo grid and the key every chord progression is built in
  (progressions start and end on the tonic).

Genres and moods are cycled so that any 5 tracks cover all genres and any 4 all moods; the first five tracks
cover all instruments. Everything is drawn from one seed: the same seed gives byte-identical files.

>>> df = build_corpus("demo", n_tracks=5, min_duration_s=35, max_duration_s=60)   # doctest: +SKIP
>>> df[["track_id", "genre", "moods", "bpm", "key", "mode"]]                       # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .artifacts import atomic_write_text, ensure_dir, read_json, text_hash, write_json
from .audio import load, loudness, write
from .config import cpu_workers
from .errors import ConfigError, OutputError
from .parallel import fork_map
from .synth import render_midi, write_midi
from .taxonomy import GENRES, INSTRUMENTS, MOODS, PITCH_CLASSES, join_list

__all__ = [
    "CORPUS_VERSION",
    "LABEL_COLUMNS",
    "TrackSpec",
    "build_corpus",
    "compose_track",
    "ensure_demo_corpus",
    "make_messy_folder",
    "plan_corpus",
]

#: Bump when the composer changes, so cached corpora are rebuilt.
CORPUS_VERSION = 3
#: Columns of ``labels.csv`` (the demo-corpus contract).
LABEL_COLUMNS = ("file", "track_id", "title", "genre", "moods", "instruments", "bpm", "key", "mode", "duration_s")
STAMP_NAME = "corpus.json"

# ---------------------------------------------------------------------------------------------- plan
#: Instrument sets per genre; track ``i`` of a genre uses variant ``i // len(GENRES)`` (cycled), so the first
#: five tracks together contain every instrument of the taxonomy.
GENRE_VARIANTS: dict[str, tuple[tuple[str, ...], ...]] = {
    "classical": (("piano", "violin"), ("guitar",), ("piano",), ("guitar", "violin")),
    "electronic": (("synthesizer", "percussion"), ("synthesizer", "piano", "percussion"),
                   ("synthesizer", "guitar", "percussion")),
    "orchestral": (("violin", "percussion"),),
    "ambient": (("synthesizer", "guitar"), ("synthesizer", "piano"), ("synthesizer",)),
    "cinematic": (("violin", "piano", "percussion"), ("violin", "synthesizer", "percussion")),
}

#: Mood → (mode, bpm range, melody register centre (MIDI), base velocity, target loudness in LUFS).
MOOD_STYLE: dict[str, dict] = {
    "uplifting": {"mode": "major", "bpm": (116, 140), "centre": 76, "velocity": 104, "lufs": -14.0},
    "suspenseful": {"mode": "minor", "bpm": (88, 108), "centre": 62, "velocity": 84, "lufs": -16.0},
    "melancholic": {"mode": "minor", "bpm": (60, 76), "centre": 69, "velocity": 70, "lufs": -18.0},
    "calming": {"mode": "major", "bpm": (62, 80), "centre": 72, "velocity": 56, "lufs": -19.0},
}
#: Highest sample peak of a rendered track (-1 dBFS less 0.01 dB for 16-bit rounding).
_PEAK_CEILING = 10 ** (-1.01 / 20)
#: Ambient pieces stay slow whatever the mood.
_MAX_BPM = {"ambient": 100}

_SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
#: Four-bar progressions as scale degrees (0 = tonic); every one starts on the tonic, and the tonic
#: recurs so the key is not mistaken for its relative major/minor.
_PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 0), (0, 1, 4, 0), (0, 3, 0, 4)),
    "minor": ((0, 6, 5, 4), (0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4)),
}


@dataclass(frozen=True)
class TrackSpec:
    """What one demo track is, i.e. its labels, decided before it is composed."""

    track_id: str
    title: str
    genre: str
    moods: tuple[str, ...]
    instruments: tuple[str, ...]
    bpm: int
    key: str  # tonic pitch class, e.g. "A"
    mode: str  # "major" / "minor"
    duration_s: float  # exact length of the rendered audio

    @property
    def tonic(self) -> int:
        return PITCH_CLASSES.index(self.key)

    def label_row(self, *, file: str) -> dict:
        return {"file": file, "track_id": self.track_id, "title": self.title, "genre": self.genre,
                "moods": join_list(self.moods), "instruments": join_list(self.instruments), "bpm": self.bpm,
                "key": self.key, "mode": self.mode, "duration_s": self.duration_s}


def plan_corpus(n_tracks: int, *, seed: int = 1234, min_duration_s: float = 35.0, max_duration_s: float = 100.0,
                sr: int = 44100) -> list[tuple[TrackSpec, int]]:
    """Decide the labels of ``n_tracks`` pieces; returns ``(spec, compose_seed)`` pairs.

    Genres cycle in taxonomy order, moods cycle from a seed-dependent offset, keys are a seeded permutation of
    the twelve tonics, tempi and durations are drawn uniformly (durations rounded to whole samples at ``sr``).
    """
    if n_tracks < 1:
        raise ConfigError(f"demo corpus: n_tracks must be at least 1 (got {n_tracks})")
    if not 0 < min_duration_s <= max_duration_s:
        raise ConfigError(f"demo corpus: need 0 < min_duration_s <= max_duration_s "
                          f"(got {min_duration_s}, {max_duration_s})")
    rng = np.random.default_rng(seed)
    mood_offset = int(rng.integers(len(MOODS)))
    tonics = [int(t) for t in rng.permutation(12)]
    plan = []
    for i in range(n_tracks):
        genre = GENRES[i % len(GENRES)]
        variants = GENRE_VARIANTS[genre]
        instruments = variants[(i // len(GENRES)) % len(variants)]
        mood = MOODS[(i + mood_offset) % len(MOODS)]
        style = MOOD_STYLE[mood]
        lo, hi = style["bpm"]
        hi = min(hi, _MAX_BPM.get(genre, hi))
        lo = min(lo, hi)
        bpm = int(rng.integers(lo, hi + 1))
        key = PITCH_CLASSES[tonics[i % 12]]
        n_samples = int(round(rng.uniform(min_duration_s, max_duration_s) * sr))
        n_samples = min(max(n_samples, int(np.ceil(min_duration_s * sr))), int(np.floor(max_duration_s * sr)))
        track_id = f"demo_{i:03d}"
        title = f"{mood.capitalize()} {genre} in {key} {style['mode']}"
        spec = TrackSpec(track_id=track_id, title=title, genre=genre, moods=(mood,),
                         instruments=tuple(x for x in INSTRUMENTS if x in instruments), bpm=bpm, key=key,
                         mode=style["mode"], duration_s=round(n_samples / sr, 6))
        plan.append((spec, int(rng.integers(2**31 - 1))))
    return plan


# ------------------------------------------------------------------------------------------ compose
class _Score:
    """Beat-based note writer around one ``PrettyMIDI`` (4/4, fixed tempo)."""

    def __init__(self, spec: TrackSpec, rng: np.random.Generator):
        import pretty_midi

        self.pm = pretty_midi.PrettyMIDI(initial_tempo=float(spec.bpm))
        self.spec = spec
        self.rng = rng
        self.spb = 60.0 / spec.bpm
        self.scale = _SCALES[spec.mode]
        self.tonic = spec.tonic
        style = MOOD_STYLE[spec.moods[0]]
        self.centre = style["centre"]
        self.velocity = style["velocity"]
        self.n_bars = max(1, int((spec.duration_s - 0.6) // (4 * self.spb)))
        self.end_beat = 4.0 * self.n_bars
        # Chord degree per bar: A/B sections of 8 bars, each repeating a 4-bar progression; last bar on the tonic.
        progs = _PROGRESSIONS[spec.mode]
        pick = rng.choice(len(progs), size=2, replace=False)
        self.prog_a, self.prog_b = progs[pick[0]], progs[pick[1]]
        self.chords = [(self.prog_a if (b // 8) % 2 == 0 else self.prog_b)[b % 4] for b in range(self.n_bars)]
        self.chords[-1] = 0

    # -- instruments and notes
    def part(self, program: int, *, drum: bool = False, name: str = ""):
        import pretty_midi

        inst = pretty_midi.Instrument(program=program, is_drum=drum, name=name)
        self.pm.instruments.append(inst)
        return inst

    def note(self, inst, pitch: int, beat: float, beats: float, velocity: float) -> None:
        import pretty_midi

        start = beat * self.spb
        end = min(beat + beats, self.end_beat + 8) * self.spb
        end = min(end, self.spec.duration_s - 0.35)
        if end - start < 0.02 or not 0 <= pitch <= 127:
            return
        vel = int(np.clip(round(velocity), 1, 127))
        inst.notes.append(pretty_midi.Note(velocity=vel, pitch=int(pitch), start=start, end=end))

    def vel(self, offset: float = 0.0, spread: float = 6.0) -> float:
        return self.velocity + offset + float(self.rng.uniform(-spread, spread))

    # -- harmony
    def chord_pcs(self, degree: int, *, seventh: bool = False) -> list[int]:
        steps = (0, 2, 4, 6) if seventh else (0, 2, 4)
        return [(self.tonic + self.scale[(degree + k) % 7]) % 12 for k in steps]

    def scale_pcs(self) -> set[int]:
        return {(self.tonic + s) % 12 for s in self.scale}

    @staticmethod
    def near(pc: int, centre: int) -> int:
        """The pitch of class ``pc`` closest to ``centre``."""
        return centre + ((pc - centre + 6) % 12) - 6

    def voicing(self, degree: int, centre: int) -> list[int]:
        return sorted(self.near(pc, centre) for pc in self.chord_pcs(degree))

    def root(self, degree: int, centre: int) -> int:
        return self.near(self.chord_pcs(degree)[0], centre)

    def sections(self):
        """``(bar, degree, section_index)`` for every bar."""
        for b, d in enumerate(self.chords):
            yield b, d, b // 8

    # -- parts
    def pad(self, inst, centre: int, *, offset: float = -8, bars_per_chord: int = 1, bass: bool = True) -> None:
        for b, d, _ in self.sections():
            if b % bars_per_chord:
                continue
            span = min(bars_per_chord, self.n_bars - b)
            pitches = self.voicing(d, centre)
            if bass:
                pitches = [self.root(d, centre - 12)] + pitches
            for p in pitches:
                self.note(inst, p, 4 * b, 4 * span - 0.05, self.vel(offset, 3))

    def arpeggio(self, inst, centre: int, *, step: float = 0.5, offset: float = -10, pattern=(0, 1, 2, 3, 2, 1)):
        n = int(round(4 / step))
        for b, d, _ in self.sections():
            tones = self.voicing(d, centre)
            tones = tones + [tones[0] + 12]
            for k in range(n):
                p = tones[pattern[k % len(pattern)] % len(tones)]
                accent = 6 if k * step % 1 == 0 else 0
                self.note(inst, p, 4 * b + k * step, step * 1.6, self.vel(offset + accent, 4))

    def alberti(self, inst, centre: int, *, offset: float = -12) -> None:
        """Classical left hand: root-fifth-third-fifth in eighth notes."""
        for b, d, _ in self.sections():
            pcs = self.chord_pcs(d)
            r = self.root(d, centre - 4)
            t, f = r + (pcs[1] - pcs[0]) % 12, r + (pcs[2] - pcs[0]) % 12
            low = [r, f, t, f]
            for k in range(8):
                p = low[k % 4]
                self.note(inst, p, 4 * b + 0.5 * k, 0.55, self.vel(offset + (8 if k % 2 == 0 else 0), 3))

    def bass(self, inst, centre: int, *, step: float = 1.0, offset: float = -2, length: float = 0.9,
             fifth: bool = False) -> None:
        n = int(round(4 / step))
        for b, d, _ in self.sections():
            r = self.root(d, centre)
            for k in range(n):
                p = r + 7 if fifth and k % 2 == 1 else r
                self.note(inst, p, 4 * b + k * step, step * length, self.vel(offset + (6 if k == 0 else 0), 3))

    def ostinato(self, inst, centre: int, *, offset: float = 0) -> None:
        """Suspense: driving eighth notes on the tonic and minor third, with semitone and tritone clashes."""
        t = self.near(self.tonic, centre)
        cells = ((0, 0, 1, 0, 3, 0, 1, 0), (0, 0, 1, 0, 3, 6, 1, 0))
        for b, _d, s in self.sections():
            cell = cells[(b + s) % 2]
            for k, iv in enumerate(cell):
                self.note(inst, t + iv, 4 * b + 0.5 * k, 0.45, self.vel(offset + (10 if k % 4 == 0 else 0), 3))

    def melody(self, inst, centre: int, *, rhythms, offset: float = 0, legato: float = 0.95,
               rest_bars: int = 0, octave_in_b: int = 0) -> None:
        """Phrases of 4 bars over the chords: chord tones on strong beats, scale steps between; each phrase
        is repeated so the tune is recognisable, and the last note is the tonic."""
        pcs = self.scale_pcs()
        ladder = [p for p in range(centre - 12, centre + 13) if p % 12 in pcs]  # scale pitches in range
        phrases: dict[tuple, dict[int, list]] = {}
        prev = self.near(self.tonic, centre)
        for b, d, s in self.sections():
            if b < rest_bars and self.n_bars > rest_bars + 2:
                continue
            key = (s % 2, tuple(self.chords[4 * (b // 4):4 * (b // 4) + 4]))
            phrase = phrases.setdefault(key, {})
            bar_in = b % 4
            if bar_in not in phrase:
                rhythm = rhythms[int(self.rng.integers(len(rhythms)))]
                chord = set(self.chord_pcs(d))
                notes, pos = [], 0.0
                for dur in rhythm:
                    if pos == 0 and bar_in in (0, 2):  # phrase and half-phrase starts sound the chord root
                        p = self.near(self.chord_pcs(d)[0], prev)
                    elif pos % 2 == 0:  # strong beat: one of the two chord tones nearest the previous note
                        cands = sorted((p for p in ladder if p % 12 in chord and p != prev),
                                       key=lambda p: (abs(p - prev), p))
                        repeat = prev % 12 in chord and self.rng.random() < 0.2
                        p = prev if repeat else cands[int(self.rng.integers(2))]
                    else:  # weak beat: a step or a skip along the scale
                        i = min(range(len(ladder)), key=lambda k: abs(ladder[k] - prev))
                        i = int(np.clip(i + int(self.rng.choice((-2, -1, 1, 1, 2))), 0, len(ladder) - 1))
                        p = ladder[i]
                    notes.append((p, pos, dur))
                    pos += dur
                    prev = p
                phrase[bar_in] = notes
            shift = 12 * octave_in_b if s % 2 else 0
            for p, pos, dur in phrase[bar_in]:
                if b == self.n_bars - 1 and pos == 0:
                    p, dur = self.near(self.tonic, p), 4.0
                elif b == self.n_bars - 1:
                    continue
                self.note(inst, p + shift, 4 * b + pos, dur * legato, self.vel(offset + (6 if pos == 0 else 0)))

    def drums(self, inst, style: str) -> None:
        kick, snare, clap, hat, ohat, crash, bdrum, tom_lo, tom_hi, shaker = 36, 38, 39, 42, 46, 49, 35, 41, 45, 70
        soft = self.velocity < 65
        for b, _d, _s in self.sections():
            t0 = 4 * b
            if b % 8 == 0:
                self.note(inst, crash, t0, 2, self.vel(0 if b else -10))
            if style == "electronic":
                for k in range(4):
                    if not soft or k % 2 == 0:
                        self.note(inst, kick, t0 + k, 0.2, self.vel(14 if k == 0 else 8, 3))
                    if k % 2 == 1:
                        self.note(inst, snare if soft else clap, t0 + k, 0.2, self.vel(0 if soft else 6, 3))
                for k in range(8 if soft else 16):
                    step = 0.5 if soft else 0.25
                    self.note(inst, hat, t0 + k * step, 0.1, self.vel(-16 + (8 if k % 2 == 0 else 0), 4))
                if not soft and b % 2 == 1:
                    self.note(inst, ohat, t0 + 3.5, 0.4, self.vel(-8))
            elif style == "cinematic":
                for k in range(4):
                    self.note(inst, bdrum, t0 + k, 0.3, self.vel(14 if k % 2 == 0 else 4, 3))
                for k in (0.5, 2.5) if soft else (1.5, 2.5, 3.5):
                    self.note(inst, tom_lo if k < 2.6 else tom_hi, t0 + k, 0.3, self.vel(-4))
                for k in range(8):
                    self.note(inst, shaker, t0 + 0.5 * k, 0.1, self.vel(-18 + (6 if k % 2 == 0 else 0), 3))
            else:  # orchestral: concert bass drum on the beat, cymbal swells at phrase ends
                for k in range(4):
                    if not soft or k % 2 == 0:
                        self.note(inst, bdrum, t0 + k, 0.5, self.vel(10 if k == 0 else -2, 3))
                if b % 4 == 3 and not soft:
                    self.note(inst, 52 if (b // 4) % 2 else crash, t0 + 3, 1, self.vel(-6))

    def finale(self, parts: list[tuple[object, int]]) -> None:
        """Hold a tonic chord from the end of the last bar to the end of the track."""
        hold = self.spec.duration_s - 0.35 - self.end_beat * self.spb
        if hold < 0.4:
            return
        for inst, centre in parts:
            for p in self.voicing(0, centre):
                self.note(inst, p, self.end_beat, hold / self.spb, self.vel(-6, 2))


_MELODY_RHYTHMS = {
    "uplifting": ((1, 0.5, 0.5, 1, 1), (0.5, 0.5, 0.5, 0.5, 1, 1), (1, 1, 0.5, 0.5, 1), (2, 1, 1)),
    "suspenseful": ((4,), (2, 2), (3, 1)),
    "melancholic": ((3, 1), (2, 1, 1), (4,), (1.5, 0.5, 2)),
    "calming": ((2, 2), (4,), (1, 1, 2), (3, 1)),
}


def compose_track(spec: TrackSpec, *, seed: int):
    """Compose the piece that ``spec`` describes; returns a ``pretty_midi.PrettyMIDI``.

    The tempo is ``spec.bpm`` (4/4, notes on the beat grid), every chord belongs to ``spec.key`` ``spec.mode``
    and the piece starts and ends on the tonic chord; parts are written only for ``spec.instruments`` (plus
    non-taxonomy support such as brass, cello or timpani in orchestral and cinematic pieces). The MIDI lasts
    at most ``spec.duration_s`` seconds.
    """
    rng = np.random.default_rng(seed)
    sc = _Score(spec, rng)
    mood = spec.moods[0]
    inst = set(spec.instruments)
    c = sc.centre
    rhythms = _MELODY_RHYTHMS[mood]
    suspense = mood == "suspenseful"
    staccato = 0.6 if mood == "uplifting" else 0.95
    finale: list[tuple[object, int]] = []

    if spec.genre == "classical":
        if "piano" in inst:
            lh = sc.part(0, name="piano left hand")
            if suspense:
                sc.ostinato(lh, 45)
            else:
                sc.alberti(lh, c - 12, offset=-2)
            finale.append((lh, c - 12))
        if "guitar" in inst:
            g = sc.part(24, name="nylon guitar")
            if suspense:
                sc.ostinato(g, 48)
            else:
                sc.arpeggio(g, c - 10, step=0.5, pattern=(0, 2, 1, 3, 2, 1))
            finale.append((g, c - 10))
        lead = 40 if "violin" in inst else (0 if "piano" in inst else 24)
        m = sc.part(lead, name="melody")
        sc.melody(m, c + (7 if lead == 40 else 0), rhythms=rhythms, legato=staccato if lead != 40 else 0.98,
                  offset=-8 if lead == 40 else 0)
    elif spec.genre == "electronic":
        bass = sc.part(38, name="synth bass")
        if suspense:
            sc.ostinato(bass, 40, offset=4)
        else:
            sc.bass(bass, 40, step=0.5, length=0.6 if mood == "uplifting" else 0.9)
        pad = sc.part(89 if mood in ("calming", "melancholic") else 90, name="synth pad")
        sc.pad(pad, c - 7, offset=-14, bass=False)
        finale.append((pad, c - 7))
        if "piano" in inst:
            sc.arpeggio(sc.part(0, name="piano"), c - 3, step=1.0, pattern=(0, 1, 2, 1), offset=-10)
        if "guitar" in inst:
            sc.arpeggio(sc.part(27, name="clean guitar"), c - 5, step=0.5, pattern=(0, 1, 2, 3), offset=-12)
        sc.melody(sc.part(81 if mood != "calming" else 80, name="synth lead"), c, rhythms=rhythms,
                  offset=-4, legato=staccato, rest_bars=4)
        sc.drums(sc.part(0, drum=True, name="drum machine"), "electronic")
    elif spec.genre == "orchestral":
        strings = sc.part(49 if mood in ("calming", "melancholic") else 48, name="string section")
        if suspense:
            sc.ostinato(sc.part(44, name="tremolo strings"), 48, offset=-4)
            sc.pad(strings, c - 5, offset=-16)
        else:
            sc.pad(strings, c - 5, offset=-10)
        finale.append((strings, c - 5))
        sc.bass(sc.part(42, name="cellos"), 43, step=2.0, length=0.95, offset=-6)
        sc.melody(sc.part(40, name="violins"), c + 5, rhythms=rhythms, legato=0.98, rest_bars=2)
        sc.melody(sc.part(60 if mood != "uplifting" else 61, name="brass"), c - 5, rhythms=_MELODY_RHYTHMS["calming"],
                  offset=-8, rest_bars=8)
        sc.bass(sc.part(47, name="timpani"), 43, step=2.0 if not suspense else 1.0, length=0.5, offset=-4)
        sc.drums(sc.part(48, drum=True, name="orchestra percussion"), "orchestral")
    elif spec.genre == "ambient":
        pad = sc.part(88 if mood in ("uplifting", "calming") else 94, name="synth pad")
        sc.pad(pad, c - 5, offset=-6, bars_per_chord=1)
        warm = sc.part(89, name="warm pad")
        sc.pad(warm, c - 12, offset=-10, bass=True)
        finale.append((pad, c - 5))
        if suspense:
            sc.ostinato(sc.part(95, name="sweep pad"), 45, offset=-10)
        if "guitar" in inst:
            sc.arpeggio(sc.part(27, name="clean guitar"), c, step=1.0 if mood != "uplifting" else 0.5,
                        pattern=(0, 2, 1, 3), offset=-8)
        if "piano" in inst:
            sc.melody(sc.part(0, name="piano"), c + 5, rhythms=_MELODY_RHYTHMS["calming"], offset=-8, rest_bars=2)
        if inst == {"synthesizer"}:
            sc.melody(sc.part(92, name="bowed glass"), c + 3, rhythms=_MELODY_RHYTHMS["calming"], offset=-6,
                      rest_bars=2)
    else:  # cinematic
        strings = sc.part(48, name="string section")
        if suspense:
            sc.ostinato(sc.part(44 if "synthesizer" not in inst else 38, name="ostinato"), 45, offset=-2)
        else:
            sc.arpeggio(sc.part(48, name="string ostinato"), c - 10, step=0.5, pattern=(0, 1, 2, 1), offset=-12)
        sc.pad(strings, c - 5, offset=-12)
        finale.append((strings, c - 5))
        if "piano" in inst:
            sc.melody(sc.part(0, name="piano"), c + 3, rhythms=rhythms, offset=-2, rest_bars=2)
        if "synthesizer" in inst:
            sc.pad(sc.part(95, name="synth pad"), c, offset=-14, bass=False)
            sc.melody(sc.part(81, name="synth lead"), c + 3, rhythms=rhythms, offset=-10, rest_bars=2)
        sc.melody(sc.part(61 if mood == "uplifting" else 60, name="brass"), c - 7,
                  rhythms=_MELODY_RHYTHMS["calming"], offset=-6, rest_bars=8)
        sc.bass(sc.part(47, name="timpani"), 43, step=1.0, length=0.5, offset=-6)
        sc.drums(sc.part(0, drum=True, name="drums"), "cinematic")
    sc.finale(finale)
    return sc.pm


# ------------------------------------------------------------------------------------------- render
def _render_track(spec: TrackSpec, seed: int, *, sr: int):
    """Compose and render one track; returns ``(midi, wav)`` with ``wav`` float32 ``[2, T]`` at ``sr``."""
    from scipy.signal import butter, sosfilt

    midi = compose_track(spec, seed=seed)
    wav = render_midi(midi, sr=sr, duration_s=spec.duration_s)
    # Some soundfont samples carry a DC offset and sub-audio rumble; a 20 Hz high-pass removes both.
    wav = sosfilt(butter(2, 20.0, btype="highpass", fs=sr, output="sos"), wav, axis=1).astype(np.float32)
    fade = min(int(0.3 * sr), wav.shape[1] // 4)
    if fade > 0:
        wav[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    # One gain per track: the mood's loudness target, lowered where needed to keep the sample peak under
    # -1 dBFS (a margin of 0.01 dB absorbs 16-bit rounding). A gain, not a limiter, so dynamics are kept.
    current = loudness(wav, sr)
    gain = 10 ** ((MOOD_STYLE[spec.moods[0]]["lufs"] - current) / 20) if np.isfinite(current) else 1.0
    peak = float(np.abs(wav).max())
    if peak * gain > _PEAK_CEILING:
        gain = _PEAK_CEILING / peak
    return midi, (wav * np.float32(gain)).astype(np.float32)


def build_corpus(out_dir: str | os.PathLike, *, n_tracks: int = 12, seed: int = 1234, min_duration_s: float = 35.0,
                 max_duration_s: float = 100.0, sr: int = 44100, progress: bool = True, num_workers: int = 1):
    """Compose, render and label ``n_tracks`` pieces into ``out_dir``.

    Writes ``out_dir/audio/<track_id>.wav`` (stereo, 16-bit PCM at ``sr`` Hz; loudness targets by mood from
    −19 LUFS (calming) to −14 LUFS (uplifting), lowered where needed to keep sample peaks at or below −1 dBFS), ``out_dir/labels.csv`` (columns :data:`LABEL_COLUMNS`,
    lists joined with ``;``), ``out_dir/midi/<track_id>.mid`` (the score, e.g. for melody conditioning) and
    ``out_dir/corpus.json`` (settings, settings hash, per-track detail). Every file is written atomically; the
    same arguments give byte-identical files, with any ``num_workers`` (forked processes that render and write a
    track each; :func:`~echoscript_utils.parallel.fork_map`). Demo tracks left over from an earlier, larger build
    are removed.

    Returns:
        the labels as a ``pandas.DataFrame`` (one row per track, columns :data:`LABEL_COLUMNS`).

    Raises:
        OutputError: ``out_dir`` cannot be created or written.
        ConfigError: bad sizes or durations.
    """
    import pandas as pd

    plan = plan_corpus(n_tracks, seed=seed, min_duration_s=min_duration_s, max_duration_s=max_duration_s, sr=sr)
    out = ensure_dir(out_dir)
    audio_dir, midi_dir = ensure_dir(out / "audio"), ensure_dir(out / "midi")

    def render(item) -> None:
        spec, track_seed = item
        midi, wav = _render_track(spec, track_seed, sr=sr)
        write(out / f"audio/{spec.track_id}.wav", wav, sr)
        write_midi(midi, midi_dir / f"{spec.track_id}.mid")

    fork_map(render, plan, num_workers=num_workers, progress=progress, desc="demo corpus", unit="track")
    rows, details = [], []
    for spec, track_seed in plan:
        rel = f"audio/{spec.track_id}.wav"
        rows.append(spec.label_row(file=rel))
        details.append({**asdict(spec), "file": rel, "midi": f"midi/{spec.track_id}.mid",
                        "compose_seed": track_seed, "target_lufs": MOOD_STYLE[spec.moods[0]]["lufs"]})
    keep = {spec.track_id for spec, _ in plan}
    for folder, pattern in ((audio_dir, "demo_*.wav"), (midi_dir, "demo_*.mid")):
        for stale in folder.glob(pattern):
            if stale.stem not in keep:
                stale.unlink()
    df = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    atomic_write_text(out / "labels.csv", df.to_csv(index=False, lineterminator="\n"))
    settings = _settings(n_tracks=n_tracks, seed=seed, min_duration_s=min_duration_s,
                         max_duration_s=max_duration_s, sr=sr)
    write_json(out / STAMP_NAME, {"settings": settings, "settings_hash": text_hash(settings), "tracks": details,
                                  "columns": list(LABEL_COLUMNS),
                                  "about": "Procedurally composed pieces rendered through the General MIDI "
                                           "soundfont bundled with pretty_midi; labels are true by construction."})
    return df


def _settings(**kw) -> dict:
    return {"version": CORPUS_VERSION, **{k: (float(v) if isinstance(v, float) else v) for k, v in kw.items()}}


def ensure_demo_corpus(cfg, *, progress: bool = True) -> Path:
    """Build the demo corpus into ``cfg.paths.demo_corpus`` unless an identical one is already there.

    Settings come from ``cfg.data.demo`` (``n_tracks``, ``min_duration_s``, ``max_duration_s``, ``sample_rate``)
    and ``cfg.seed``. A corpus whose ``corpus.json`` carries the same settings hash and whose files all exist is
    reused; otherwise the corpus is built in a temporary folder beside the target and renamed into place, so a
    half-built corpus is never visible. Returns the corpus folder.
    """
    demo = cfg.data.demo
    settings = _settings(n_tracks=int(demo.n_tracks), seed=int(cfg.seed), min_duration_s=float(demo.min_duration_s),
                         max_duration_s=float(demo.max_duration_s), sr=int(demo.sample_rate))
    target = Path(cfg.paths.demo_corpus)
    if _is_complete(target, text_hash(settings)):
        return target
    parent = ensure_dir(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
    try:
        build_corpus(tmp, n_tracks=settings["n_tracks"], seed=settings["seed"],
                     min_duration_s=settings["min_duration_s"], max_duration_s=settings["max_duration_s"],
                     sr=settings["sr"], progress=progress, num_workers=cpu_workers(cfg))
        tmp.chmod(0o755)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write the demo corpus ({exc.strerror or exc}); "
                          "choose a writable output folder") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _is_complete(folder: Path, settings_hash: str) -> bool:
    stamp = folder / STAMP_NAME
    if not (stamp.is_file() and (folder / "labels.csv").is_file()):
        return False
    try:
        meta = read_json(stamp)
    except (OSError, ValueError):
        return False
    if meta.get("settings_hash") != settings_hash:
        return False
    return all((folder / t["file"]).is_file() for t in meta.get("tracks", []))


# ---------------------------------------------------------------------------------------- robustness
def make_messy_folder(source: str | os.PathLike, out_dir: str | os.PathLike, *, clip_s: float = 30.0,
                      seed: int = 0) -> Path:
    """Build a small folder that exercises every rejection rule from one real track (a robustness check).

    Writes ``keep/`` (the track as 24-bit 48 kHz stereo, and as a 5.1 FLAC with the music in the centre channel)
    and ``reject/`` (sorted after ``keep/``, so the copies there are the later ones): an empty file, text named
    ``.mp3``, a truncated WAV, a folder named ``.wav``, a float WAV with a NaN, digital silence, a file shorter
    than one clip, a byte-identical copy and a quieter MP3 re-encode of the good WAV. Only the first
    ``clip_s + 5`` seconds of ``source`` are used. The curation stage's tests and notebook run it.

    Returns:
        ``out_dir``.
    """
    import soundfile as sf

    wav, sr = load(source, sr=48000, mono=True)
    wav = wav[:, : int((clip_s + 5) * sr)]
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    good, bad = ensure_dir(out / "keep"), ensure_dir(out / "reject")
    stereo = np.concatenate([wav, 0.8 * wav])
    sf.write(str(good / "stereo 48k 24-bit.wav"), stereo.T, sr, subtype="PCM_24")
    surround = np.zeros((6, wav.shape[1]), np.float32)
    surround[2] = np.roll(wav[0], int(0.37 * sr))  # other content than the stereo file: not a duplicate
    sf.write(str(good / "surround 5.1.flac"), surround.T, sr, subtype="PCM_24")
    (bad / "empty.wav").write_bytes(b"")
    (bad / "notes.mp3").write_text("shopping list: strings, timpani, rosin\n" * 40, encoding="utf-8")
    full = (good / "stereo 48k 24-bit.wav").read_bytes()
    (bad / "truncated.wav").write_bytes(full[: len(full) // 3])
    (bad / "album.wav").mkdir()
    nan = wav.copy()
    nan[0, sr] = np.nan
    sf.write(str(bad / "nan.wav"), nan.T, sr, subtype="FLOAT")
    sf.write(str(bad / "silence.wav"), np.zeros((wav.shape[1], 1), np.float32), sr, subtype="PCM_16")
    sf.write(str(bad / "jingle.wav"), wav[:, : int(min(clip_s / 3, 10) * sr)].T, sr, subtype="PCM_16")
    shutil.copyfile(good / "stereo 48k 24-bit.wav", bad / "stereo copy.wav")
    sf.write(str(bad / "re-encoded.mp3"), (0.5 * stereo).T, sr)
    return out
