"""Cue planning: for each scene a mood, an intensity, a tempo, an instrumentation and a one-line direction.

Two planners, chosen by ``scoring.planner`` (``auto`` / ``offline`` / ``openai``, resolved like the prompts'
provider):

``offline``
    A deterministic lexicon over the scene's heading and action lines (dialogue counts half). Each of the four
    taxonomy moods has a word list; arousal words (``sprint``, ``explode`` … ``still``, ``asleep`` …), exclamation
    marks and short sentences give the intensity. The five scenario kinds of the study fall out of mood ×
    intensity: suspense (suspenseful, middling), action (suspenseful, high), tranquillity (calming, low),
    melancholy (melancholic, low), triumph (uplifting, high). Its accuracy is measured on a labelled set of scenes
    shipped in ``data/scene_moods.csv`` (:func:`planner_accuracy`); the lexicon was written against the
    ``dev`` rows only, the ``test`` rows were written afterwards and are what the reported number uses.
``openai``
    A chat model asked for structured JSON (strict JSON schema) over batches of scenes, through the same client,
    retries, key handling and on-disk reply cache as the scene prompts
    (:class:`echoscript_utils.prompts.StructuredChat`).

Tempo, instrumentation, genre and key follow from mood and intensity (:data:`MOOD_PROFILES`); the caption sent
to MusicGen is composed by the training-caption template (``build_caption``), so cues are prompted the way the
model was fine-tuned.

Spotting (``scoring.spotting``): ``all`` scenes get a cue, or only those whose intensity is at least
``scoring.spot_min_intensity`` (``intensity``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..captions import build_caption
from ..errors import ConfigError, InputError
from ..prompts import StructuredChat
from ..taxonomy import GENRES, INSTRUMENTS, MOODS

__all__ = [
    "CUE_SCHEMA",
    "CuePlan",
    "MOOD_PROFILES",
    "load_labelled_scenes",
    "offline_cue",
    "openai_plan",
    "plan_cues",
    "planner_accuracy",
    "scenario_kind",
    "spot",
]


@dataclass
class CuePlan:
    """The brief for one scene's cue."""

    scene: int
    heading: str
    mood: str  # one of taxonomy.MOODS
    intensity: float  # 0 (barely there) .. 1 (full force)
    bpm: int
    instruments: list[str] = field(default_factory=list)  # taxonomy.INSTRUMENTS
    genre: str = "cinematic"  # taxonomy.GENRES
    key: str | None = None
    direction: str = ""  # one line for the composer
    planner: str = "offline"
    spotted: bool = True
    prompt: str = ""  # the MusicGen caption (training template)

    def as_row(self) -> dict[str, Any]:
        d = asdict(self)
        d["instruments"] = ";".join(self.instruments)
        d["kind"] = scenario_kind(self.mood, self.intensity)
        return d


# --------------------------------------------------------------------------------------------- lexicon
#: Mood cue words (regular-expression stems, matched at a word start). Weight 1 unless given.
MOOD_LEXICON: dict[str, dict[str, float]] = {
    "suspenseful": {
        "creak": 1, "creep": 1, "shadow": 1, "dark": 0.7, "flicker": 1, "footstep": 1.5, "lurk": 1.5,
        "hid(e|ing|den)": 1, "crouch": 1, "watch": 0.5, "stalk": 1.5, "silhouet": 1, "whisper": 0.5,
        "tremb": 1, "shak(e|ing)": 0.7, "sweat": 1, "breath": 0.5, "freez": 1, "froze": 1, "knife": 1.5,
        "gun": 1.5, "pistol": 1.5, "rifle": 1.5, "trigger": 1.5, "bullet": 1.5, "shot": 1, "shoot": 1.5,
        "lock": 0.7, "static": 0.7, "crackl": 0.7, "distress": 1.5, "alarm": 1, "siren": 1, "countdown": 1.5,
        "tick": 0.7, "fuse": 1, "bomb": 1.5, "trap": 1, "vanish": 0.5, "stranger": 1, "intruder": 1.5,
        "blood": 1, "scream": 1, "corpse": 1.5, "body": 0.5, "fear": 1, "afraid": 1, "terrif": 1.5,
        "nervous": 1, "figure": 0.5, "mask": 1, "chase": 1.5, "pursu": 1.5, "sprint": 1, "swerv": 1.5,
        "explo": 1, "crash": 1, "smash": 1, "gunfire": 2, "fight": 1, "punch": 1, "storm": 1, "danger": 1.5,
        "threat": 1.5, "enemy": 1.5, "guard": 0.7, "laser": 1, "inch by inch": 1, "something moves": 1.5,
        "behind (him|her|them)": 0.7, "dies": 0.5, "handle turns": 1.5, "flare": 0.7, "sinking": 1,
        "going under": 1.5, "capsiz": 1.5, "lash": 0.7, "slam": 0.7, "horn": 0.5, "flames": 1, "burst": 0.5,
        "collaps": 0.7, "dive": 0.5, "escape": 1, "panic": 1.5, "frantic": 1, "suspicio": 1, "hunt": 1,
        "echo": 0.7, "ajar": 1, "crack(s|ed)? open": 0.7, "stain": 1, "someone": 0.5, "somebody": 0.5,
        "overhead": 0.3, "clamp": 0.7, "(stops|stop) when": 1, "sonar": 1, "ping": 0.5, "unattended": 1.5,
        "suspect": 1.5, "detective": 1, "thief": 1.5, "heist": 1.5, "siege": 2, "soldier": 1, "sword": 1.5,
        "arrow": 1, "archer": 1.5, "bolt": 0.5, "rider": 0.5, "tightens": 1, "sweeps": 0.5, "beam": 0.5,
        "pressure plate": 1.5, "clicks": 0.7, "goes silent": 1.5, "against the wind": 0.5, "burning": 1,
        "thud": 1, "drag": 0.7, "boots": 0.7, "radio": 0.5, "waits": 0.3, "keys": 0.3,
        "split(s)? open": 1, "black water": 1.5, "skid": 1, "fishtail": 1.5, "whip": 0.7, "grip": 0.7,
        "sneak": 1.5, "tiptoe": 1.5, "ambush": 2, "hostage": 2, "kidnap": 2, "murder": 2, "killer": 2,
        "kill": 1.5, "wound": 1, "hunted": 1.5, "warning": 1, "emergency": 1.5, "evacuat": 1.5,
    },
    "uplifting": {
        "cheer": 2, "crowd": 0.7, "applau": 2, "clap": 1, "celebrat": 2, "triumph": 2, "victor": 2,
        "win": 1, "won": 1, "trophy": 2, "medal": 1.5, "champion": 2, "cup high": 1.5, "hug": 1,
        "embrac": 1, "laugh": 1, "smil": 1, "grin": 1, "joy": 1.5, "confetti": 2, "firework": 2,
        "bells ring": 1.5, "band": 1, "flag": 1, "raises?": 0.7, "lifts?": 0.7, "soar": 1.5, "finally": 1,
        "reunit": 1.5, "succe": 1.5, "proud": 1.5, "danc": 1, "parade": 1.5, "graduat": 1.5, "summit": 1.5,
        "finish line": 1.5, "freedom": 1, "hope": 1, "bright": 1, "launch": 1, "hero": 1.5, "salute": 1,
        "whoop": 1.5, "punches the air": 2, "to life": 1, "bunting": 1.5, "ribbon": 1, "gush": 0.5,
        "all clear": 1.5, "roars?": 0.7, "thrill": 1, "wonder": 0.7, "gold": 0.7, "sunrise": 0.5,
        "arms to the sky": 1.5, "surg": 0.5, "full speed": 1, "open sea": 0.5,
        "rises to its feet": 2, "standing ovation": 2, "flowers land": 1, "chant": 1.5, "crosses the line": 1.5,
        "arms wide": 1, "not guilty": 2, "cork": 1.5, "toast": 1, "waving": 1, "wave(s)? (scarves|flags)": 1.5,
        "ticker tape": 2, "marching band": 2, "astronaut": 0.5, "diploma": 1.5, "whistles": 0.5, "jumps into": 1,
        "report card": 1, "home": 0.5, "returning": 1, "return(s)? home": 1.5, "rescue": 1, "saved": 1.5,
        "alive": 1.5, "together again": 1.5, "welcome": 1, "kiss": 1, "engage": 0.5, "wedding": 1.5,
        "birthday party": 1.5, "prize": 1, "award": 1.5, "promotion": 1, "accepted": 1.5, "winner": 2,
        "glory": 2, "brave": 1, "courage": 1, "rise(s)? up": 1, "stunned": 0.3, "delight": 1.5, "beam(s|ing)": 0.7,
        "first (time|customer|harvest|step)": 0.7, "reopen": 1.5, "refuses her money": 1, "queue forms": 1,
        "lifts? (her|him) off": 1.5, "catches": 0.3, "whoops": 1.5, "slaps": 0.3,
    },
    "melancholic": {
        "alone": 1.5, "empty": 1.5, "grave": 1.5, "funeral": 2, "coffin": 2, "cemeter": 2, "tear": 1,
        "cry": 1, "cries": 1, "weep": 1.5, "sob": 1.5, "mourn": 2, "grief": 2, "griev": 2, "loss": 1.5,
        "goodbye": 1.5, "farewell": 1.5, "depart": 1, "letters?": 1, "photograph": 1, "faded": 1.5,
        "memor": 1, "rememb": 1, "dust": 1, "grey": 1, "gray": 1, "wither": 1, "dying": 1.5, "died": 1.5,
        "dead": 1, "death": 1.5, "last": 0.7, "never": 0.7, "miss": 1, "ruin": 1, "ash": 1, "stopped": 0.7,
        "lonely": 2, "pack(s|ing)": 0.7, "box(es)?": 0.7, "habit": 1, "one cup": 1, "empty chair": 2,
        "husband": 0.5, "wife": 0.5, "father": 0.5, "mother": 0.5, "walks away": 1, "shrink": 1,
        "does not (look|cry|answer)": 1.5, "says nothing": 1, "rain": 0.7, "long moment": 1, "used to": 1,
        "old": 0.5, "rocks? back and forth": 1.5, "without (him|her)": 1.5, "blackened": 1, "abandon": 0.7,
        "boarded up": 1.5, "wrapped in": 0.7, "not speaking": 1.5, "untouched": 1.5, "unlit": 1,
        "doesn't ring": 1.5, "estate agent": 1, "moving van": 1.5, "long after": 1.5, "has gone": 1,
        "gone": 0.7, "winces": 1, "old ballet": 1, "unties": 0.5, "where (his|her|their) (house|home)": 2,
        "flood": 1, "spire": 0.5, "glass between": 1.5, "calls time": 1, "weeds": 1, "torn": 1,
        "as a girl": 1.5, "as a boy": 1.5, "plays three notes": 1, "and stops": 1, "old dog": 1.5,
        "good boy": 1, "over and over": 0.5, "frost": 0.7, "headstone": 2, "small grave": 2, "memorial": 2,
        "poppy": 2, "veteran": 1, "trembling finger": 1, "pale": 1, "doesn't need to say": 2, "sinks": 1,
        "stares": 0.7, "childhood": 1, "still there": 1, "pocket": 0.3, "closed": 1, "last time": 1,
        "regret": 2, "sorrow": 2, "broken": 1, "hollow": 1.5, "ghost of": 1, "once": 0.5, "bare": 1,
        "cannot": 0.7, "can't": 0.5, "hospital": 1, "surgeon": 1, "winter": 0.7, "autumn": 0.7,
        "left behind": 1.5, "nobody comes": 2, "no one comes": 2, "wilted": 1.5, "sad": 2, "sorry": 1,
    },
    "calming": {
        "still": 1, "calm": 1.5, "gentl": 1.5, "soft": 1, "quiet": 1, "peace": 2, "drift": 1.5, "float": 1,
        "breeze": 1.5, "meadow": 1.5, "garden": 1, "lake": 1, "pond": 1, "stream": 1, "mist": 1, "dawn": 0.7,
        "sunlight": 1, "warm": 1, "tea": 0.7, "kettle": 1, "asleep": 1.5, "sleep": 1, "doz": 1.5,
        "yawn": 1, "cat": 0.7, "birdsong": 1.5, "bird": 0.7, "hum": 0.7, "knit": 1.5, "read(s|ing)": 0.7,
        "candle": 0.5, "slow": 0.7, "stroll": 1.5, "wander": 1, "cradl": 1, "lullab": 1.5, "snow": 0.5,
        "lap(s|ping)? at": 1.5, "tide": 0.7, "cloud": 1, "glid": 1, "bee": 1, "flower": 1, "heron": 1,
        "rak(e|es|ing)": 1, "trickl": 1.5, "moss": 1, "barefoot": 1, "sunset": 1, "cocoa": 1.5,
        "blanket": 0.5, "lamp glows": 1, "patter": 1, "sway": 1, "settles": 1, "without a sound": 1,
        "rock(s|ing)? gently": 1.5, "moor": 0.5, "curl": 1, "sip": 1, "sigh": 0.5, "serene": 2,
        "mirror(s)? the sky": 1.5, "wades? slowly": 1.5, "dragonfl": 1.5, "folk song": 1, "crackle below": 1,
        "sleeping bag": 1, "breathing slows": 2, "lazily": 1.5, "trailing": 1, "hums at": 1, "clay": 1.5,
        "wheel turns": 1, "smooth": 1, "blossom": 1.5, "naps?": 1.5, "hammock": 2, "daisies": 1.5,
        "condensation": 1, "orchid": 1.5, "robin": 1, "steam rises": 1, "hot spring": 2, "stars": 0.7,
        "walking pace": 1.5, "ducks": 1, "paddle": 1, "tin whistle": 1, "herbs": 1, "mobile": 1, "cot": 1.5,
        "rocks in": 1, "in time": 0.7, "grazes?": 1.5, "sun sinks": 1, "sky burns": 0.5, "bell over the door": 1,
        "crossword": 1.5, "spines": 0.5, "side by side": 1, "barely moves": 1.5, "leans against": 1,
        "fishing": 0.5, "water": 0.3, "grass": 0.7, "valley": 0.7, "terrace": 1, "farmer": 0.7, "sail": 1,
        "deck": 0.5, "tiller": 1, "hills": 0.7, "picnic": 1.5, "cozy": 1.5, "cosy": 1.5, "hush": 1.5,
        "tranquil": 2, "idyll": 2, "leisure": 1.5, "relax": 1.5, "content": 1, "comfort": 1, "tender": 1,
        "lull": 1.5, "murmur": 1, "ripple": 1, "dew": 1.5, "pastel": 1, "unhurried": 2, "ease": 1,
    },
}

#: Arousal: words that push intensity up (+) or down (−).
AROUSAL_LEXICON: dict[str, float] = {
    "run": 1, "sprint": 1.5, "race": 1, "chase": 1.5, "explo": 2, "blast": 2, "crash": 1.5,
    "smash": 1.5, "slam": 1.5, "scream": 1.5, "shout": 1, "yell": 1, "roar": 1.5, "fire": 1, "flames": 1.5,
    "gunfire": 2, "shot": 1, "bullet": 1.5, "fight": 1.5, "punch": 1.5, "kick": 1, "storm": 1.5,
    "thunder": 1.5, "lightning": 1.5, "siren": 1.5, "swerv": 1.5, "leap": 1, "jump": 1, "collaps": 1.5,
    "erupt": 2, "stampede": 2, "charge": 1, "battle": 2, "panic": 1.5, "frantic": 1.5, "rush": 1,
    "pound": 1.5, "hammer": 1, "cheer": 1.5, "firework": 1.5, "confetti": 1.5, "floors it": 2, "faster": 1.5,
    "hurl": 1.5, "haul": 1, "lash": 1, "dive": 1, "rolls": 0.5, "surg": 1, "whoop": 1, "clapping": 1,
    "throttle": 1, "full speed": 1.5, "roll": 0.5, "bolt": 1, "vault": 1, "lands hard": 1, "burst": 1,
    "thunders": 1.5, "volley": 1.5, "pour in": 1, "races": 1, "yank": 1, "flinging": 1.5, "whistles": 0.5,
    "gasp": 1, "runs": 1, "jumps": 1, "chants": 1, "surge": 1, "applause": 1, "hurtl": 1.5, "shatter": 1.5,
    "nap": -1.5, "hammock": -1.5, "lazily": -1.5, "slowly": -1, "breathing": -0.7, "rocks": -0.7,
    "not speaking": -1, "untouched": -0.5, "watches": -0.3, "sinks": -0.5, "lies": -0.7, "rests": -1,
    "still": -1.5, "quiet": -1, "silent": -1, "silence": -1, "slow": -1, "gentl": -1.5, "soft": -1,
    "calm": -1.5, "asleep": -2, "sleep": -1.5, "doz": -2, "drift": -1.5, "linger": -1, "pause": -1,
    "sits": -1, "sit": -0.7, "stands": -0.5, "motionless": -2, "breath": -0.5, "hum": -0.5, "faint": -1,
    "dim": -0.7, "alone": -0.7, "empty": -0.7, "settl": -1, "float": -1, "glid": -1, "without a sound": -1.5,
    "long moment": -1, "says nothing": -1, "does not": -0.5, "lap": -1, "sway": -1, "tea": -0.5,
    "inch by inch": -0.5, "holds": -0.3, "patter": -1, "rest": -0.7,
}

_HEADING_HINTS = {"night": ("suspenseful", 0.3), "dawn": ("calming", 0.3), "morning": ("calming", 0.2),
                  "sunrise": ("uplifting", 0.3), "dusk": ("melancholic", 0.2), "storm": ("suspenseful", 0.5)}

#: The quietest cue the offline planner plans (a spotted scene never gets a cue of intensity 0).
INTENSITY_FLOOR = 0.05
#: Baseline intensity of each mood before arousal words move it.
MOOD_BASE_INTENSITY = {"suspenseful": 0.55, "uplifting": 0.6, "melancholic": 0.3, "calming": 0.15}

#: How each mood is scored: tempo range (bpm at intensity 0 → 1), instruments at low and high intensity,
#: genre at low and high intensity, key, and the words of the direction line.
MOOD_PROFILES: dict[str, dict[str, Any]] = {
    "suspenseful": {"bpm": (64, 156), "low": ["violin", "synthesizer"], "high": ["violin", "percussion", "synthesizer"],
                    "genre": ("cinematic", "orchestral"), "key": "D minor",
                    "words": ("tense", "driving"), "texture": ("low tremolo strings over a synth drone",
                                                              "hammering percussion under stabbing strings")},
    "uplifting": {"bpm": (84, 140), "low": ["piano", "violin"], "high": ["violin", "percussion", "piano"],
                  "genre": ("cinematic", "orchestral"), "key": "D major",
                  "words": ("hopeful", "triumphant"), "texture": ("warm strings with a rising piano line",
                                                                  "full strings and drums, a soaring melody")},
    "melancholic": {"bpm": (56, 84), "low": ["piano"], "high": ["piano", "violin"],
                    "genre": ("classical", "classical"), "key": "A minor",
                    "words": ("aching", "grieving"), "texture": ("sparse solo piano",
                                                                 "piano and a lamenting solo violin")},
    "calming": {"bpm": (52, 80), "low": ["piano", "synthesizer"], "high": ["guitar", "piano", "synthesizer"],
                "genre": ("ambient", "ambient"), "key": "F major",
                "words": ("serene", "gentle"), "texture": ("soft piano over warm synth pads",
                                                           "fingerpicked guitar over airy pads")},
}

_INSTRUMENT_MENTIONS = {"piano": "piano", "guitar": "guitar", "violin": "violin", "fiddle": "violin",
                        "cello": "violin", "drum": "percussion", "synth": "synthesizer"}


def _compile(lex: dict[str, float]) -> list[tuple[re.Pattern, float]]:
    return [(re.compile(r"\b" + stem + (r"\w*" if stem[-1].isalpha() else ""), re.IGNORECASE), w)
            for stem, w in lex.items()]


_MOOD_RX = {m: _compile(lex) for m, lex in MOOD_LEXICON.items()}
_AROUSAL_RX = _compile(AROUSAL_LEXICON)


def _hits(rx: list[tuple[re.Pattern, float]], text: str) -> float:
    return float(sum(w * len(p.findall(text)) for p, w in rx))


_VADER = None


def valence(text: str) -> float:
    """VADER's compound valence of ``text`` in [-1, 1] (the vaderSentiment lexicon, shipped in its wheel)."""
    global _VADER
    if _VADER is None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        _VADER = SentimentIntensityAnalyzer()
    return float(_VADER.polarity_scores(text)["compound"]) if text.strip() else 0.0


#: Weight of the valence × arousal (circumplex) term against the mood word counts.
CIRCUMPLEX_WEIGHT = 2.0


def mood_scores(heading: str, action: str, dialogue: str = "") -> dict[str, float]:
    """Evidence for each mood: lexicon hits (dialogue counts half, the heading's time of day a little) plus a
    circumplex term, VADER valence × lexicon arousal (pleasant+aroused → uplifting, pleasant+calm → calming,
    unpleasant+aroused → suspenseful, unpleasant+calm → melancholic)."""
    scores = {m: _hits(_MOOD_RX[m], action) + 0.5 * _hits(_MOOD_RX[m], dialogue) for m in MOODS}
    for word, (mood, w) in _HEADING_HINTS.items():
        if re.search(rf"\b{word}\b", heading, re.IGNORECASE):
            scores[mood] += w
    v = valence(f"{action} {dialogue}")
    a = float(np.tanh((_hits(_AROUSAL_RX, action) + 0.5 * _hits(_AROUSAL_RX, dialogue)) / 3.0))
    pos, neg, up, down = max(v, 0.0), max(-v, 0.0), (1 + a) / 2, (1 - a) / 2
    for mood, x in (("uplifting", pos * up), ("calming", pos * down), ("suspenseful", neg * up),
                    ("melancholic", neg * down)):
        scores[mood] += CIRCUMPLEX_WEIGHT * x
    return scores


def intensity_of(action: str, dialogue: str = "", *, mood: str) -> float:
    """0..1 from the mood's baseline, arousal words per sentence, exclamation marks and sentence length."""
    text = f"{action} {dialogue}".strip()
    sentences = [s for s in re.split(r"[.!?]+", text) if s.strip()] or [text]
    words = re.findall(r"[A-Za-z']+", text)
    arousal = _hits(_AROUSAL_RX, action) + 0.5 * _hits(_AROUSAL_RX, dialogue)
    per_sentence = arousal / max(len(sentences), 1)
    mean_len = len(words) / max(len(sentences), 1)
    excl = min(text.count("!"), 4) / 4.0
    x = MOOD_BASE_INTENSITY[mood] + 0.35 * np.tanh(per_sentence) + 0.1 * excl + 0.1 * np.tanh((9.0 - mean_len) / 4)
    return float(np.clip(round(x, 2), INTENSITY_FLOOR, 1.0))


def _shape(action: str, mood: str) -> str:
    """How the cue should move: build, settle or hold, from arousal in the first vs second half of the action."""
    words = action.split()
    half = len(words) // 2
    a = _hits(_AROUSAL_RX, " ".join(words[:half]))
    b = _hits(_AROUSAL_RX, " ".join(words[half:]))
    if b - a >= 1.5:
        return "build toward the end of the scene"
    if a - b >= 1.5:
        return "let it settle as the scene closes"
    return "hold the mood steady" if mood in ("calming", "melancholic") else "keep the pulse steady"


def offline_cue(heading: str, action: str, dialogue: str = "", *, scene: int = 0) -> CuePlan:
    """The deterministic lexicon planner for one scene (no model, no network)."""
    scores = mood_scores(heading, action, dialogue)
    if max(scores.values()) <= 0:  # no evidence: arousal decides between the two quiet and two loud moods
        arousal = _hits(_AROUSAL_RX, action)
        mood = "suspenseful" if arousal > 0 else "calming"
    else:
        mood = max(MOODS, key=lambda m: (scores[m], -MOODS.index(m)))
    intensity = intensity_of(action, dialogue, mood=mood)
    return _complete(CuePlan(scene=scene, heading=heading, mood=mood, intensity=intensity, bpm=0,
                             planner="offline"), text=f"{action} {dialogue}", shape=_shape(action, mood))


def _complete(cue: CuePlan, *, text: str = "", shape: str | None = None) -> CuePlan:
    """Fill tempo, instruments, genre, key and direction from mood × intensity where the planner left them."""
    prof = MOOD_PROFILES[cue.mood]
    lo, hi = prof["bpm"]
    if not cue.bpm:
        cue.bpm = int(round(lo + (hi - lo) * cue.intensity))
    loud = cue.intensity >= 0.6
    if not cue.instruments:
        inst = list(prof["high"] if loud else prof["low"])
        for word, name in _INSTRUMENT_MENTIONS.items():  # source music in the scene joins the score
            if re.search(rf"\b{word}", text, re.IGNORECASE) and name not in inst:
                inst.append(name)
        cue.instruments = inst[:3]
    if cue.genre not in GENRES or cue.planner == "offline":
        cue.genre = prof["genre"][int(loud)]
    cue.key = cue.key or prof["key"]
    if not cue.direction:
        level = "barely-there" if cue.intensity < 0.25 else "restrained" if cue.intensity < 0.5 else \
            "urgent" if cue.intensity < 0.8 else "full-force"
        cue.direction = (f"{level.capitalize()} {prof['words'][int(loud)]} cue at {cue.bpm} bpm: "
                         f"{prof['texture'][int(loud)]}; {shape or 'follow the scene'}.")
    return cue


def scenario_kind(mood: str, intensity: float) -> str:
    """Which of the study's five scenario kinds a planned cue is (mood × intensity)."""
    if mood == "suspenseful":
        return "action" if intensity >= 0.75 else "suspense"
    if mood == "uplifting":
        return "triumph" if intensity >= 0.6 else "hope"
    return {"melancholic": "melancholy", "calming": "tranquillity"}[mood]


# --------------------------------------------------------------------------------------------- LLM
#: What the chat model must return (OpenAI structured outputs, strict mode: every key required).
CUE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "cues": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "scene": {"type": "integer", "description": "the scene number given"},
                    "mood": {"type": "string", "enum": list(MOODS)},
                    "intensity": {"type": "number", "description": "0 (barely there) to 1 (full force)"},
                    "bpm": {"type": "integer", "description": "tempo, 40 to 200"},
                    "instruments": {"type": "array", "items": {"type": "string", "enum": list(INSTRUMENTS)}},
                    "genre": {"type": "string", "enum": list(GENRES)},
                    "direction": {"type": "string", "description": "one line of musical direction"},
                },
                "required": ["scene", "mood", "intensity", "bpm", "instruments", "genre", "direction"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["cues"],
    "additionalProperties": False,
}

CUE_SYSTEM_MESSAGE = (
    "You are a film composer's music supervisor spotting a screenplay. For each scene you are given, choose the "
    "underscore's mood (one of: " + ", ".join(MOODS) + "), its intensity from 0 (barely there) to 1 (full force), a "
    "tempo in bpm, up to three instruments from: " + ", ".join(INSTRUMENTS) + ", a genre from: " + ", ".join(GENRES)
    + ", and one line of musical direction. Answer only with JSON that follows the schema, one cue per scene."
)


def _scene_message(scenes: Sequence[Any]) -> str:
    parts = [f"Scene {s.index}: {s.heading}\n{s.action_text[:1500]}" for s in scenes]
    return "Spot these scenes. Return {\"cues\": [...]} with one cue per scene.\n\n" + "\n\n".join(parts)


def _parse_cues(content: str | None, *, scenes: Sequence[Any]) -> list[CuePlan]:
    """Validate one reply; raises ``ValueError`` when it is unusable (missing scenes, bad moods)."""
    if not content:
        raise ValueError("empty reply")
    data = json.loads(content)
    items = data.get("cues") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError("no 'cues' list")
    by_scene = {}
    for it in items:
        if not isinstance(it, dict) or it.get("mood") not in MOODS:
            raise ValueError("a cue lacks a taxonomy mood")
        by_scene[int(it["scene"])] = it
    out = []
    for s in scenes:
        it = by_scene.get(s.index)
        if it is None:
            raise ValueError(f"no cue for scene {s.index}")
        inst = [i for i in (it.get("instruments") or []) if i in INSTRUMENTS][:3]
        bpm = int(np.clip(int(round(float(it.get("bpm") or 0))), 40, 200)) if it.get("bpm") else 0
        cue = CuePlan(scene=s.index, heading=s.heading, mood=it["mood"],
                      intensity=float(np.clip(float(it.get("intensity", 0.5)), 0.0, 1.0)), bpm=bpm,
                      instruments=inst, genre=str(it.get("genre") or ""), direction=str(it.get("direction") or "")
                      .strip().splitlines()[0][:200] if str(it.get("direction") or "").strip() else "",
                      planner="openai")
        out.append(cue)
    return out


def openai_plan(scenes: Sequence[Any], *, model: str = "gpt-4o-mini", temperature: float = 0.2, seed: int = 1234,
                cache_dir, base_url: str | None = None, timeout_s: float = 60.0, max_retries: int = 5,
                backoff_s: float = 1.0, batch_size: int = 8, client: Any = None,
                sleep: Callable[[float], None] | None = None, progress: bool = True) -> list[CuePlan]:
    """Cue plans from a chat model with structured JSON, ``batch_size`` scenes per request.

    Same client, key handling (``OPENAI_API_KEY`` from the environment only, never stored), retries and on-disk
    cache (``<cache_dir>/scoring_plans/<request hash>.json``) as the scene prompts: one
    :class:`~echoscript_utils.prompts.StructuredChat`.
    """
    import time

    from tqdm.auto import tqdm

    chat = StructuredChat(Path(cache_dir) / "scoring_plans", base_url=base_url, timeout_s=timeout_s,
                                  max_retries=max_retries, backoff_s=backoff_s, sleep=sleep or time.sleep,
                                  client=client, setting="scoring.planner")
    requests = []
    for i in range(0, len(scenes), batch_size):
        batch = list(scenes[i:i + batch_size])
        body = {"model": model, "temperature": temperature, "seed": seed,
                "messages": [{"role": "system", "content": CUE_SYSTEM_MESSAGE},
                             {"role": "user", "content": _scene_message(batch)}],
                "response_format": {"type": "json_schema",
                                    "json_schema": {"name": "cue_plan", "strict": True, "schema": CUE_SCHEMA}}}
        requests.append((batch, body))
    todo = any(not chat.is_cached(body) for _, body in requests)
    out: list[CuePlan] = []
    for batch, body in tqdm(requests, desc="cue plan", disable=not progress or not todo, leave=False):
        out.extend(chat.ask(body, parse=lambda c, b=batch: _parse_cues(c, scenes=b),
                            what=f"the cue plan of scenes {batch[0].index}-{batch[-1].index}"))
    for cue, s in zip(out, scenes):
        _complete(cue, text=s.action_text)
        cue.planner = f"openai:{model}"
    return out


# --------------------------------------------------------------------------------------------- planning
def _caption(cue: CuePlan, scene: Any, *, max_words: int = 40) -> str:
    words = scene.text.split()
    text = " ".join(words[:max_words]).rstrip(",;:")
    return build_caption({"scene": text, "genre": cue.genre, "moods": [cue.mood], "instruments": cue.instruments,
                          "bpm": cue.bpm, "key": cue.key})


def spot(cues: Sequence[CuePlan], *, spotting: str = "all", min_intensity: float = 0.0) -> list[CuePlan]:
    """Mark which cues are scored: ``all``, or ``intensity`` (those with intensity ≥ ``min_intensity``)."""
    if spotting not in ("all", "intensity"):
        raise ConfigError(f"scoring.spotting must be 'all' or 'intensity', got {spotting!r}")
    for c in cues:
        c.spotted = spotting == "all" or c.intensity >= min_intensity
    return list(cues)


def plan_cues(scenes: Sequence[Any], *, planner: str = "offline", spotting: str = "all", min_intensity: float = 0.0,
              llm: dict[str, Any] | None = None, progress: bool = True) -> list[CuePlan]:
    """Plan one cue per scene (``planner``: ``offline`` or ``openai``; ``llm`` holds the latter's keyword
    arguments, see :func:`openai_plan`), compose each caption, and apply the spotting rule."""
    if planner == "offline":
        cues = [offline_cue(s.heading, s.action_text, " ".join(s.dialogue), scene=s.index) for s in scenes]
    elif planner == "openai":
        cues = openai_plan(scenes, progress=progress, **(llm or {}))
    else:
        raise ConfigError(f"scoring.planner must be auto, offline or openai, got {planner!r}")
    for cue, s in zip(cues, scenes):
        cue.prompt = _caption(cue, s)
    return spot(cues, spotting=spotting, min_intensity=min_intensity)


# --------------------------------------------------------------------------------------------- accuracy
def load_labelled_scenes(path=None):
    """The labelled scenes (``scene_id, split, heading, text, mood, intensity``); default: the shipped set."""
    import io

    import pandas as pd

    if path is None:
        text = resources.files("echoscript_utils").joinpath("data/scene_moods.csv").read_text(encoding="utf-8")
        df = pd.read_csv(io.StringIO(text))
    else:
        if not Path(path).is_file():
            raise InputError(f"{path}: labelled scenes not found")
        df = pd.read_csv(path)
    missing = {"text", "mood"} - set(df.columns)
    if missing:
        raise InputError(f"{path or 'scene_moods.csv'}: missing columns {sorted(missing)}")
    bad = df[~df["mood"].isin(MOODS)]
    if len(bad):
        raise InputError(f"{path or 'scene_moods.csv'}: row {bad.index[0] + 2}: mood {bad['mood'].iloc[0]!r} is "
                         f"not one of {', '.join(MOODS)}")
    df["heading"] = df.get("heading", "").fillna("") if "heading" in df else ""
    return df


def planner_accuracy(df, *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Offline planner on labelled scenes: mood accuracy (with a bootstrap interval) against the majority-class
    baseline, macro-F1, and intensity agreement (Spearman ρ, mean absolute error against predicting the mean)."""
    from scipy.stats import spearmanr

    pred = [offline_cue(h, t) for h, t in zip(df["heading"], df["text"])]
    y = df["mood"].to_numpy()
    yhat = np.array([p.mood for p in pred])
    correct = (y == yhat).astype(float)
    rng = np.random.default_rng(seed)
    boots = correct[rng.integers(0, len(correct), size=(n_boot, len(correct)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    majority = df["mood"].value_counts().iloc[0] / len(df)
    f1 = []
    for m in MOODS:
        tp = float(((yhat == m) & (y == m)).sum())
        prec = tp / max((yhat == m).sum(), 1)
        rec = tp / max((y == m).sum(), 1)
        f1.append(0.0 if tp == 0 else 2 * prec * rec / (prec + rec))
    out = {"n": int(len(df)), "accuracy": float(correct.mean()),
           "accuracy_ci": [float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))],
           "majority_baseline": float(majority), "macro_f1": float(np.mean(f1)),
           "confusion": {m: {p: int(((y == m) & (yhat == p)).sum()) for p in MOODS} for m in MOODS}}
    if "intensity" in df:
        yi = df["intensity"].to_numpy(float)
        pi = np.array([p.intensity for p in pred])
        out.update(intensity_spearman=float(spearmanr(yi, pi).statistic),
                   intensity_mae=float(np.abs(yi - pi).mean()),
                   intensity_mae_mean_baseline=float(np.abs(yi - yi.mean()).mean()))
    return out
