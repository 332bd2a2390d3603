"""Cue planning: for each scene a mood, an intensity, a tempo, an instrumentation and a one-line direction.

Three planners, chosen by ``scoring.planner`` (``auto`` / ``offline`` / ``openai`` / ``local``; ``auto`` resolves
like the prompts' provider):

``offline``
    Deterministic, no model download, no network: the scene model of :mod:`.scene_model` (published lexicons and
    a static text embedding that ship in their wheels, with a linear model fitted on independently labelled real
    screenplay scenes) reads each scene's heading, action and dialogue; its mood probabilities are smoothed with
    the neighbouring scenes'. Each cue carries the mood's probability as ``confidence``; a scene whose text gives
    no evidence gets confidence 0 and says so in its direction. Its accuracy on real scenes is measured by
    :mod:`.planner_eval`. The five scenario kinds of the study fall out of mood × intensity: suspense
    (suspenseful, middling), action (suspenseful, high), tranquillity (calming, low), melancholy (melancholic,
    low), triumph (uplifting, high).
``openai``
    A chat model asked for structured JSON (strict JSON schema) over batches of scenes, through the same client,
    retries, key handling and on-disk reply cache as the scene prompts
    (:class:`echoscript_utils.prompts.StructuredChat`).
``local``
    An open instruction model through transformers (:mod:`.local_plan`), same schema, validator and cache, for
    GPU users without an API key.

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
from ..stats import label_scores
from ..taxonomy import GENRES, INSTRUMENTS, MOODS
from .scene_model import load_scene_model

__all__ = [
    "CUE_SCHEMA",
    "CuePlan",
    "MOOD_PROFILES",
    "load_labelled_scenes",
    "offline_cue",
    "offline_plan",
    "finish_cues",
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
    confidence: float | None = None  # the planner's probability of its mood (0: no evidence in the scene); None: not given

    def as_row(self) -> dict[str, Any]:
        d = asdict(self)
        d["instruments"] = ";".join(self.instruments)
        d["kind"] = scenario_kind(self.mood, self.intensity)
        return d


# --------------------------------------------------------------------------------------------- offline
#: The quietest cue the offline planner plans (a spotted scene never gets a cue of intensity 0).
INTENSITY_FLOOR = 0.05

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


def _scene_args(scene: Any) -> tuple[str, str, str]:
    return scene.heading, scene.action_text, " ".join(getattr(scene, "dialogue", []) or [])


def _shape(model, heading: str, action: str, mood: str) -> str:
    """How the cue should move: build, settle or hold, from the scene model's intensity of the first vs the second
    half of the action."""
    words = action.split()
    if len(words) >= 16:
        half = len(words) // 2
        a, b = model.intensity(model.design([(heading, " ".join(part), "")
                                             for part in (words[:half], words[half:])])[0])
        if b - a >= 0.15:
            return "build toward the end of the scene"
        if a - b >= 0.15:
            return "let it settle as the scene closes"
    return "hold the mood steady" if mood in ("calming", "melancholic") else "keep the pulse steady"


def _offline_cue(model, pred: dict[str, Any], *, scene: int, heading: str, action: str, dialogue: str) -> CuePlan:
    evidence = pred["evidence"] > 0
    cue = CuePlan(scene=scene, heading=heading, mood=pred["mood"],
                  intensity=float(np.clip(round(pred["intensity"], 2), INTENSITY_FLOOR, 1.0)), bpm=0,
                  planner="offline", confidence=round(pred["probability"], 3) if evidence else 0.0)
    if not evidence:  # said, not guessed silently: the cue sheet's planner_confidence is 0 and the brief says why
        cue.direction = ("No mood evidence in this scene's text (no word the planner's lexicons know): a restrained "
                         f"{cue.mood} placeholder at {MOOD_PROFILES[cue.mood]['bpm'][0]} bpm; spot it by hand.")
    return _complete(cue, text=f"{action} {dialogue}", shape=_shape(model, heading, action, cue.mood))


def offline_plan(scenes: Sequence[Any]) -> list[CuePlan]:
    """The offline planner over a run of consecutive scenes (each with ``index``, ``heading``, ``action_text`` and
    ``dialogue``): the scene model (:mod:`.scene_model`) reads each scene, its mood probabilities are smoothed with
    the neighbours', and each cue carries the chosen mood's probability as its ``confidence`` (0: no evidence)."""
    model = load_scene_model()
    args = [_scene_args(s) for s in scenes]
    preds = model.predict(args)
    return [_offline_cue(model, p, scene=s.index, heading=h, action=a, dialogue=d)
            for s, p, (h, a, d) in zip(scenes, preds, args)]


def offline_cue(heading: str, action: str, dialogue: str = "", *, scene: int = 0) -> CuePlan:
    """The offline planner for one scene on its own (no neighbours to smooth with); deterministic, no network."""
    model = load_scene_model()
    (pred,) = model.predict([(heading, action, dialogue)])
    return _offline_cue(model, pred, scene=scene, heading=heading, action=action, dialogue=dialogue)


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
        cues = offline_plan(scenes)
    elif planner == "openai":
        cues = openai_plan(scenes, progress=progress, **(llm or {}))
    else:
        raise ConfigError(f"plan_cues takes planner offline or openai, got {planner!r} (the local planner is "
                          f"scoring.local_plan.local_plan; finish its cues with finish_cues)")
    return finish_cues(cues, scenes, spotting=spotting, min_intensity=min_intensity)


def finish_cues(cues: Sequence[CuePlan], scenes: Sequence[Any], *, spotting: str = "all",
                min_intensity: float = 0.0) -> list[CuePlan]:
    """Compose each planned cue's MusicGen caption from its scene and apply the spotting rule (any planner)."""
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
    """Offline planner on labelled scenes (``heading, text, mood[, intensity]``), each read on its own:
    :func:`~echoscript_utils.stats.label_scores` of its moods (and intensities) against the labels."""
    pred = [offline_cue(h, t) for h, t in zip(df["heading"], df["text"])]
    values = (df["intensity"], [p.intensity for p in pred]) if "intensity" in df else (None, None)
    return label_scores(df["mood"], [p.mood for p in pred], *values, labels=MOODS, n_boot=n_boot,
                        confidence=confidence, seed=seed)
