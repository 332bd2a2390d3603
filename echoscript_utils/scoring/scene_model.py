"""The offline planner's scene reader: published text resources turned into features, and a linear model over them.

Features of one scene (:func:`scene_features`), all from maintained, openly licensed resources that work offline:

- **WordLlama** (``wordllama``, MIT; its 256-d embedding and tokenizer ship inside the wheel): the cosine
  similarity of the scene's action, dialogue and heading to a short description of each mood (the definitions
  the labelling guide gives the readers, :data:`MOOD_DESCRIPTIONS`), and to a loud and a quiet description
  (arousal).
- **Empath** (Fast et al., 2016; MIT): the share of tokens in its categories, summed per mood over the categories
  that name that mood's situations (:data:`EMPATH_GROUPS`: ``death``, ``medical_emergency`` and ``sadness`` for
  melancholic, ``violence``, ``weapon`` and ``fear`` for suspenseful …). Action counts fully, dialogue half, and
  the heading twice, so a HOSPITAL or a CEMETERY is heard.
- **VADER** (Hutto & Gilbert, 2014; MIT): compound, positive and negative valence of action and of dialogue
  (VADER handles negation, intensifiers and capitals itself).
- **Form**: exclamation and question rates, mean sentence length, the share of words in capitals (sound effects,
  shouted lines), the share of dialogue, length, and whether the scene is at night or outside.

- **Words**: the scene's TF-IDF weights (scikit-learn's ``TfidfVectorizer``: English stop words dropped, sublinear
  term frequency) over the words of at least :data:`MIN_DF` labelled dev scenes, so that what the readers heard in
  a scene's vocabulary (a safe, a badge, a funeral home) is learned rather than listed by hand.

The model (``data/scene_planner.json``) is a multinomial logistic regression for the mood and a ridge regression
for the intensity over the words' weights beside the standardised features (scaled by :data:`DENSE_SCALE`, to
the size of the words' weights), fitted by ``scripts/train_scene_planner.py`` on the ``dev`` split of
independently labelled real screenplay scenes only (:mod:`echoscript_utils.scoring.planner_eval`). Its mood
probabilities are smoothed with the neighbouring scenes' (a story's arc), and a scene with no text evidence is
flagged, not guessed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DependencyError

__all__ = ["DENSE_SCALE", "EMPATH_GROUPS", "MIN_DF", "MOOD_DESCRIPTIONS", "SceneModel", "empath_counts", "feature_names",
           "load_scene_model", "scene_features", "scene_words", "smooth_neighbours", "words_vectorizer"]

_WORD = re.compile(r"[A-Za-z][A-Za-z']*")
_SENTENCE = re.compile(r"[.!?]+")
_MOODS = ("uplifting", "suspenseful", "melancholic", "calming")
#: A word joins the model's vocabulary when at least this many labelled dev scenes use it.
MIN_DF = 5
#: The standardised features are scaled by this beside the words' TF-IDF weights (an L2-normalised row each).
DENSE_SCALE = 0.1

#: What each mood covers: the labelling guide's definitions, split into phrases (each embedded on its own; a
#: scene's similarity to a mood is its best match among that mood's phrases).
MOOD_DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "uplifting": ("hopeful, joyful, triumphant, happy", "playful, funny, a comic moment, laughing",
                  "romantic and warm, a kiss, love", "celebrating, cheering, winning, a victory"),
    "suspenseful": ("tense, threatening, dangerous, mysterious, anxious", "a chase, a fight, guns, shooting, violence",
                    "fear, a threat, a crime, a body, blood", "conflict, an angry confrontation, shouting"),
    "melancholic": ("sad, grieving, lonely, regretful", "bittersweet, defeated, loss",
                    "illness, a hospital, death, a funeral", "crying, tears, heartbreak"),
    "calming": ("peaceful, quiet, still, relaxed", "ordinary everyday conversation, small talk",
                "contemplative, tender, gentle", "a calm morning at home, breakfast, reading"),
}
#: Loud and quiet: the two ends of the intensity scale in the labelling guide's words.
AROUSAL_DESCRIPTIONS: tuple[str, str] = (
    "a chase, a battle, an explosion, screaming, running, shooting, a huge climax",
    "a quiet room, silence, sitting still, soft talk, asleep")
#: Empath categories that name each mood's situations (summed into one share per mood).
EMPATH_GROUPS: dict[str, tuple[str, ...]] = {
    "uplifting": ("joy", "celebration", "party", "wedding", "achievement", "optimism", "cheerfulness", "fun", "love",
                  "affection", "positive_emotion", "friends", "dance", "music", "play", "heroic", "zest", "sports",
                  "vacation", "giving", "beauty"),
    "suspenseful": ("violence", "crime", "weapon", "kill", "fight", "fear", "horror", "terrorism", "war",
                    "aggression", "injury", "prison", "dispute", "anger", "rage", "stealing", "deception",
                    "nervousness", "pain", "monster", "fire", "military", "hate", "swearing_terms", "breaking"),
    "melancholic": ("sadness", "death", "suffering", "disappointment", "shame", "neglect", "torment",
                    "negative_emotion", "weakness", "medical_emergency", "health", "poor"),
    "calming": ("leisure", "sleep", "home", "family", "cooking", "eating", "restaurant", "reading", "water", "beach",
                "plant", "contentment", "morning", "domestic_work", "office", "meeting", "communication", "listen",
                "speaking", "work"),
}


@lru_cache(maxsize=1)
def _wordllama():
    import logging

    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        import wordllama
        from wordllama import WordLlama
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise DependencyError("the offline planner needs the 'wordllama' package: pip install wordllama") from exc
    finally:  # wordllama calls logging.basicConfig(level=INFO) on import, which floods a run with libraries' INFO
        for h in root.handlers[:]:
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)
    # The wheel ships the 256-d weights and the tokenizer; point the loader at them and never download.
    return WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)


@lru_cache(maxsize=1)
def _prototypes() -> tuple[list[np.ndarray], np.ndarray]:
    wl = _wordllama()
    moods = [wl.embed(list(MOOD_DESCRIPTIONS[m]), norm=True) for m in _MOODS]
    return moods, wl.embed(list(AROUSAL_DESCRIPTIONS), norm=True)


@lru_cache(maxsize=1)
def _empath():
    try:
        from empath import Empath
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise DependencyError("the offline planner needs the 'empath' package: pip install empath") from exc
    return Empath()


@lru_cache(maxsize=1)
def _empath_index() -> tuple[dict[str, tuple[str, ...]], tuple[str, ...]]:
    """Empath's lexicon inverted (term → its categories, in the lexicon's order) and its category names."""
    index: dict[str, list[str]] = {}
    cats = _empath().cats
    for cat, terms in cats.items():
        for term in terms:
            index.setdefault(term, []).append(cat)
    return {t: tuple(c) for t, c in index.items()}, tuple(cats)


def empath_counts(text: str) -> dict[str, float]:
    """``Empath().analyze(text, normalize=False)``: how many of ``text``'s whitespace tokens fall in each Empath
    category. The same counts, with the term → categories index built once per process; ``analyze`` rebuilds
    it from the whole lexicon on every call, which made it most of the offline planner's time."""
    index, cats = _empath_index()
    count = dict.fromkeys(cats, 0.0)
    for token in text.split():
        for cat in index.get(token, ()):
            count[cat] += 1.0
    return count


@lru_cache(maxsize=1)
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _form(action: str, dialogue: str) -> list[float]:
    text = f"{action} {dialogue}".strip()
    words = _WORD.findall(text)
    n = max(len(words), 1)
    sentences = [s for s in _SENTENCE.split(text) if s.strip()] or [text]
    caps = sum(1 for w in words if len(w) > 1 and w.isupper())
    return [min(text.count("!") / len(sentences), 2.0), min(text.count("?") / len(sentences), 2.0),
            math.log1p(n / len(sentences)), caps / n, len(_WORD.findall(dialogue)) / n, math.log1p(n)]


def feature_names() -> list[str]:
    """The names of the features :func:`scene_features` returns, in order."""
    parts = ("action", "dialogue", "heading")
    names = [f"describes:{p}:{m}" for p in parts for m in _MOODS]
    names += [f"arousal:{p}:{end}" for p in ("action", "dialogue") for end in ("loud", "quiet")]
    names += [f"empath:{m}" for m in _MOODS]
    names += [f"vader:{p}:{k}" for p in ("action", "dialogue") for k in ("compound", "pos", "neg")]
    names += ["form:exclaim", "form:question", "form:sentence_len", "form:caps", "form:dialogue_share",
              "form:length", "heading:night", "heading:ext"]
    return names


def scene_features(heading: str, action: str, dialogue: str = "") -> tuple[np.ndarray, int]:
    """Features of one scene ``[F]`` (order of :func:`feature_names`) and its evidence: how many Empath categories
    and VADER valence words its action and dialogue hit. A scene with none is one the planner cannot read."""
    wl = _wordllama()
    moods, arousal = _prototypes()
    texts = {"action": action, "dialogue": dialogue, "heading": heading}
    emb = {k: (wl.embed([v], norm=True)[0] if v.strip() else None) for k, v in texts.items()}
    vec: list[float] = []
    for part in ("action", "dialogue", "heading"):
        e = emb[part]
        vec += [float((p @ e).max()) if e is not None else 0.0 for p in moods]
    for part in ("action", "dialogue"):
        e = emb[part]
        vec += [float(arousal[0] @ e), float(arousal[1] @ e)] if e is not None else [0.0, 0.0]
    shares = dict.fromkeys(_MOODS, 0.0)
    total, hits = 0.0, 0
    for text, w in ((heading, 2.0), (action, 1.0), (dialogue, 0.5)):
        if not text.strip():
            continue
        counts = empath_counts(text.lower())
        total += w * len(_WORD.findall(text))
        for m in _MOODS:
            shares[m] += w * sum(counts.get(c, 0.0) for c in EMPATH_GROUPS[m])
        if text is not heading:  # evidence is what the scene's action and dialogue say, not its place
            hits += int(sum(1 for v in counts.values() if v))
    vec += [shares[m] / max(total, 1.0) for m in _MOODS]
    lexicon = _vader().lexicon
    hits += sum(1 for w in _WORD.findall(f"{action} {dialogue}".lower()) if w in lexicon)
    for text in (action, dialogue):
        s = _vader().polarity_scores(text) if text.strip() else {"compound": 0.0, "pos": 0.0, "neg": 0.0}
        vec += [s["compound"], s["pos"], s["neg"]]
    vec += _form(action, dialogue)
    head = heading.upper()
    vec += [float(bool(re.search(r"\bNIGHT\b", head))), float(bool(re.search(r"\bEXT\b|\bEXTERIOR\b", head)))]
    return np.asarray(vec, dtype=np.float64), hits


def scene_words(heading: str, action: str, dialogue: str = "") -> str:
    """The text whose words the model weighs: heading, action and dialogue."""
    return f"{heading} . {action} . {dialogue}"


def words_vectorizer(vocabulary: Sequence[str] | None = None, idf: Sequence[float] | None = None):
    """scikit-learn's TF-IDF vectoriser with the model's settings: to fit (no arguments; words of at least
    :data:`MIN_DF` scenes), or fitted already from a stored ``vocabulary`` (in column order) and its ``idf``."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if vocabulary is None:
        return TfidfVectorizer(min_df=MIN_DF, sublinear_tf=True, stop_words="english")
    vec = TfidfVectorizer(vocabulary=list(vocabulary), sublinear_tf=True, stop_words="english")
    vec.idf_ = np.asarray(idf, dtype=np.float64)
    return vec


def smooth_neighbours(probs: np.ndarray, w: float) -> np.ndarray:
    """Each row of ``probs`` (consecutive scenes of one script) blended with the rows before and after it, with
    weight ``w`` each side (the first and last scene count as their own outer neighbour); rows still sum to 1."""
    if w <= 0 or len(probs) < 2:
        return probs
    padded = np.vstack([probs[:1], probs, probs[-1:]])
    out = (1 - 2 * w) * probs + w * padded[:-2] + w * padded[2:]
    return out / out.sum(axis=1, keepdims=True)


class SceneModel:
    """A fitted mood classifier and intensity regressor over a scene's words and :func:`scene_features` (see the
    module docstring)."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.moods: list[str] = list(spec["moods"])
        self.names: list[str] = list(spec["features"])
        self.mean = np.asarray(spec["mean"], dtype=np.float64)
        self.scale = np.asarray(spec["scale"], dtype=np.float64)
        self.mood_coef = np.asarray(spec["mood_coef"], dtype=np.float64)  # [M, V + F]
        self.mood_intercept = np.asarray(spec["mood_intercept"], dtype=np.float64)  # [M]
        self.int_coef = np.asarray(spec["intensity_coef"], dtype=np.float64)  # [V + F]
        self.int_intercept = float(spec["intensity_intercept"])
        self.smoothing = float(spec.get("smoothing", 0.0))
        q = spec.get("intensity_quantiles")
        self.int_map = (np.asarray(q["predicted"]), np.asarray(q["labels"])) if q else None
        words = spec.get("words")  # absent: a model of the features alone
        self.vectorizer = words_vectorizer(words["vocabulary"], words["idf"]) if words else None
        self.dense_scale = float(words["dense_scale"]) if words else 1.0
        width = (len(words["vocabulary"]) if words else 0) + len(self.names)
        if self.names != feature_names() or self.mood_coef.shape[1] != width or self.int_coef.shape[0] != width:
            raise DependencyError("data/scene_planner.json was fitted on other features than this version "
                                  "computes; refit it with scripts/train_scene_planner.py")

    def design(self, scenes: Sequence[tuple[str, str, str]]) -> tuple[np.ndarray, list[int]]:
        """The model's input ``[N, V + F]`` for scenes ``(heading, action, dialogue)`` (the words' TF-IDF weights,
        then the standardised features scaled by :data:`DENSE_SCALE`), and each scene's evidence count."""
        feats = [scene_features(h, a, d) for h, a, d in scenes]
        z = (np.vstack([f for f, _ in feats]) - self.mean) / self.scale
        if self.vectorizer is not None:
            w = self.vectorizer.transform([scene_words(h, a, d) for h, a, d in scenes]).toarray()
            z = np.hstack([w, self.dense_scale * z])
        return z, [hits for _, hits in feats]

    def mood_probabilities(self, design: np.ndarray) -> np.ndarray:
        """``[N, M]`` mood probabilities (order :attr:`moods`) for a :meth:`design` ``[N, V + F]``, before
        smoothing."""
        logits = np.atleast_2d(design) @ self.mood_coef.T + self.mood_intercept
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def intensity(self, design: np.ndarray) -> np.ndarray:
        """``[N]`` intensities in [0, 1] for a :meth:`design` (the ridge prediction mapped onto the labels'
        distribution by quantiles)."""
        raw = np.atleast_2d(design) @ self.int_coef + self.int_intercept
        if self.int_map is not None:
            raw = np.interp(raw, *self.int_map)
        return np.clip(raw, 0.0, 1.0)

    def smooth(self, probs: np.ndarray) -> np.ndarray:
        """Blend each scene's mood probabilities with its neighbours' (weight :attr:`smoothing` each side)."""
        return smooth_neighbours(probs, self.smoothing)

    def predict(self, scenes: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
        """Mood, probability, intensity and evidence for a run of consecutive scenes ``(heading, action,
        dialogue)``."""
        if not scenes:
            return []
        x, evidence = self.design(scenes)
        probs = self.smooth(self.mood_probabilities(x))
        inten = self.intensity(x)
        out = []
        for p, i, hits in zip(probs, inten, evidence):
            k = int(np.argmax(p))
            out.append({"mood": self.moods[k], "probability": float(p[k]), "intensity": float(i),
                        "evidence": int(hits), "probabilities": dict(zip(self.moods, map(float, p)))})
        return out


@lru_cache(maxsize=1)
def load_scene_model() -> SceneModel:
    """The shipped model (``echoscript_utils/data/scene_planner.json``)."""
    text = resources.files("echoscript_utils").joinpath("data/scene_planner.json").read_text(encoding="utf-8")
    return SceneModel(json.loads(text))
