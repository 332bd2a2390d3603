"""Scene prompts: short film-scene descriptions with a mood, keywords and tempo words, used as text conditions.

Two providers, chosen by ``annotation.prompts.provider``:

``offline``
    Templates over scenes × moods × instruments × tempo words, sampled without repetition by a seeded
    generator: the same seed gives the same prompts on every machine, at no cost (:func:`offline_prompts`).
``openai``
    A chat model through the ``openai`` client asked for structured JSON (a JSON schema response format),
    one request per batch of prompts of one mood (:func:`openai_prompts`) through :class:`StructuredChat`. Every
    reply is cached on disk under a hash of the request (model, temperature, seed, messages, schema), so a rerun
    makes no call; rate limits, timeouts and server errors are retried by the openai client (honouring
    ``Retry-After``), replies that miss the schema are asked for again; an auth failure stops with one line.
    The API key is read from ``OPENAI_API_KEY`` in the environment only and is never written anywhere (it is
    not part of the request hash, the cache or any message).
``auto``
    ``openai`` when ``OPENAI_API_KEY`` is set, else ``offline``.

Every provider returns a DataFrame with :data:`PROMPT_COLUMNS`; ``keywords`` and ``tempo`` are lists.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import atomic_write_text, read_json, text_hash, write_json
from .errors import ConfigError, DependencyError, InputError
from .taxonomy import INSTRUMENTS, MOODS, join_list, split_list

__all__ = [
    "PROMPT_COLUMNS",
    "PROMPT_SCHEMA",
    "StructuredChat",
    "diversity",
    "generate_prompts",
    "mood_counts",
    "offline_prompts",
    "openai_client",
    "openai_prompts",
    "read_prompts",
    "resolve_provider",
    "write_prompts",
]

PROMPT_COLUMNS = ["prompt_id", "scene", "mood", "keywords", "tempo", "prompt", "source"]
API_KEY_ENV = "OPENAI_API_KEY"

# ----------------------------------------------------------------------------------------- offline vocabulary
#: Scenes that suit each mood (a scene can be scored against the grain, but these read naturally).
SCENES: dict[str, tuple[str, ...]] = {
    "uplifting": (
        "a crew of friends finally reaching the summit at sunrise",
        "a small-town parade rolling down main street",
        "a rookie pilot's first solo flight over the coast",
        "two rivals shaking hands after the championship match",
        "a family reunited at a busy train station",
        "a greenhouse bursting into bloom in time-lapse",
        "a lighthouse keeper spotting the lost boat returning home",
        "graduates throwing their caps into a bright spring sky",
        "a rebuilt village celebrating its first harvest festival",
        "a kite soaring over windswept dunes",
        "a young inventor's machine finally whirring to life",
        "the underdog team lifting the trophy in the rain",
        "a sailboat gliding out of the harbour at dawn",
        "a street musician drawing a joyful crowd",
        "an astronaut stepping out to see the earth rise",
    ),
    "suspenseful": (
        "a detective creeping through a dark warehouse",
        "footsteps echoing in an empty hospital corridor at night",
        "a hacker racing a countdown in a glowing server room",
        "a submarine drifting silently past an enemy destroyer",
        "a stranger watching from a car across the street",
        "a storm closing in on a stranded mountain cabin",
        "a thief balancing on a ledge above the city lights",
        "a radio crackling with a distress call from the ice",
        "a door creaking open in an abandoned lighthouse",
        "a chess master weighing the final, fatal move",
        "a bomb technician choosing which wire to cut",
        "a scout hiding in tall grass as riders pass",
        "a lift stalling between floors with the lights flickering",
        "an interrogation room where nobody speaks",
        "a train crossing a bridge as the fuse burns down",
    ),
    "melancholic": (
        "an old man sorting letters in an empty attic",
        "rain streaking the window of a departing bus",
        "a soldier reading a letter from home by candlelight",
        "a closed seaside carnival in late autumn",
        "a mother folding the clothes of a grown child who left",
        "a widow setting two cups of tea out of habit",
        "a dog waiting at the gate for someone who will not come",
        "snow settling on an overgrown family grave",
        "two old friends saying goodbye at an airport gate",
        "a ballerina packing away her shoes after her final show",
        "a town slowly flooding behind a new dam",
        "a childhood home being emptied by movers",
        "a lone violinist on a deserted bridge at dusk",
        "a photograph fading on a sunlit windowsill",
        "a fishing boat rusting on the shore of a dried lake",
    ),
    "calming": (
        "mist lifting off a still lake at dawn",
        "a cat asleep on a sunny windowsill",
        "a monk raking a zen garden",
        "snow falling softly over a quiet village",
        "waves rolling onto an empty beach at twilight",
        "a reader curled up by a crackling fireplace",
        "a meadow swaying in a warm summer breeze",
        "lanterns drifting down a slow river",
        "a gardener watering herbs in the early morning",
        "stars wheeling slowly over a desert camp",
        "a canoe drifting through lily pads",
        "a grandmother knitting while the kettle hums",
        "rain pattering on the roof of a forest cabin",
        "clouds passing over rolling green hills",
        "a potter shaping clay on a spinning wheel",
    ),
}

MOOD_WORDS: dict[str, tuple[str, ...]] = {
    "uplifting": ("triumphant", "hopeful", "bright", "soaring", "joyful", "heroic", "radiant"),
    "suspenseful": ("tense", "ominous", "uneasy", "dark", "menacing", "brooding", "nervous"),
    "melancholic": ("wistful", "sorrowful", "bittersweet", "aching", "nostalgic", "mournful", "lonely"),
    "calming": ("serene", "peaceful", "gentle", "tranquil", "soothing", "dreamy", "warm"),
}

TEMPO_WORDS: dict[str, tuple[str, ...]] = {
    "uplifting": ("brisk", "driving", "moderate", "lively", "marching", "building"),
    "suspenseful": ("slow", "pulsing", "creeping", "accelerating", "ticking", "halting"),
    "melancholic": ("slow", "rubato", "lilting", "adagio", "unhurried", "fading"),
    "calming": ("slow", "gentle", "unhurried", "flowing", "steady", "largo"),
}

#: Ways to name each taxonomy instrument in a prompt.
INSTRUMENT_PHRASES: dict[str, tuple[str, ...]] = {
    "guitar": ("fingerpicked acoustic guitar", "clean electric guitar", "nylon-string guitar", "strummed guitar"),
    "piano": ("solo piano", "soft felt piano", "grand piano", "sparse piano chords"),
    "violin": ("string ensemble", "solo violin", "lush strings", "tremolo strings", "cello and violins"),
    "synthesizer": ("warm analog synth pads", "pulsing synth arpeggios", "glassy synthesizer", "deep synth bass"),
    "percussion": ("low taiko drums", "soft brushed percussion", "timpani rolls", "tight electronic drums"),
}

GENRE_WORDS = ("cinematic", "orchestral", "ambient", "electronic", "classical")

TEMPLATES: tuple[str, ...] = (
    "{Mood} {genre} score for {scene}, {tempo} tempo, featuring {inst}.",
    "Scene: {scene}. Music: {mood}, {tempo}, {inst} with {inst2}.",
    "A {mood}, {tempo} theme on {inst} as we see {scene}.",
    "A {tempo}, {mood} cue under {scene}; {inst} over {inst2}.",
    "Underscore {scene} with {mood} {genre} music: {inst}, {tempo} pace.",
    "{Scene} — {mood2} and {mood} {genre} textures, {tempo}, led by {inst}.",
    "Film cue: {scene}. {Tempo} {inst}, a {mood} mood, hints of {inst2}.",
    "Write a {mood} {tempo} piece for {scene}, built on {inst}.",
)


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def offline_prompts(n: int = 170, *, seed: int = 1234) -> Any:
    """``n`` scene prompts from templates, balanced over :data:`~echoscript_utils.taxonomy.MOODS`.

    Deterministic from ``seed``; no two prompts share the same (scene, template, instrument, tempo)
    combination. Returns a DataFrame with :data:`PROMPT_COLUMNS` (``source = "offline"``).
    """
    import pandas as pd

    if n < 1:
        raise ConfigError(f"annotation.prompts.n_prompts must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    per_mood = {m: n // len(MOODS) for m in MOODS}
    for m in rng.permutation(MOODS)[: n % len(MOODS)]:
        per_mood[str(m)] += 1
    rows = []
    for mood in MOODS:
        scenes = list(SCENES[mood])
        used: set[tuple] = set()
        order = rng.permutation(len(scenes))
        k = 0
        while k < per_mood[mood]:
            scene = scenes[order[k % len(scenes)]]
            inst_a, inst_b = (str(x) for x in rng.choice(INSTRUMENTS, size=2, replace=False))
            tpl = int(rng.integers(len(TEMPLATES)))
            tempo = str(rng.choice(TEMPO_WORDS[mood]))
            key = (scene, tpl, inst_a, tempo)
            if key in used and len(used) < len(scenes) * len(TEMPLATES) * len(INSTRUMENTS):
                continue
            used.add(key)
            mood_a, mood_b = (str(x) for x in rng.choice(MOOD_WORDS[mood], size=2, replace=False))
            genre = str(rng.choice(GENRE_WORDS))
            phrase_a = str(rng.choice(INSTRUMENT_PHRASES[inst_a]))
            phrase_b = str(rng.choice(INSTRUMENT_PHRASES[inst_b]))
            text = TEMPLATES[tpl].format(
                scene=scene, Scene=_cap(scene), mood=mood_a, Mood=_cap(mood_a), mood2=mood_b, genre=genre,
                tempo=tempo, Tempo=_cap(tempo), inst=phrase_a, Inst=_cap(phrase_a), inst2=phrase_b)
            rows.append({"scene": scene, "mood": mood, "keywords": [mood_a, mood_b, inst_a, inst_b, genre],
                         "tempo": [tempo], "prompt": text, "source": "offline"})
            k += 1
    order = rng.permutation(len(rows))
    df = pd.DataFrame([rows[i] for i in order])
    df.insert(0, "prompt_id", [f"p{i:04d}" for i in range(len(df))])
    return df[PROMPT_COLUMNS]


# ----------------------------------------------------------------------------------------- OpenAI
#: The JSON schema the model must follow (OpenAI structured outputs, strict mode).
PROMPT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "prompts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "scene": {"type": "string", "description": "one-sentence film scene"},
                    "mood": {"type": "string", "enum": list(MOODS)},
                    "keywords": {"type": "array", "items": {"type": "string"}},
                    "tempo": {"type": "array", "items": {"type": "string"}},
                    "prompt": {"type": "string", "description": "the music prompt for this scene"},
                },
                "required": ["scene", "mood", "keywords", "tempo", "prompt"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["prompts"],
    "additionalProperties": False,
}

SYSTEM_MESSAGE = (
    "You write short prompts for a text-to-music model that scores film scenes. Each prompt names a concrete "
    "scene, the music's mood, instruments chosen from: " + ", ".join(INSTRUMENTS) + ", and tempo words. "
    "Vary scenes, settings and wording; never repeat a scene. Answer only with JSON that follows the schema."
)


def resolve_provider(provider: str = "auto") -> str:
    """``auto`` → ``openai`` when ``OPENAI_API_KEY`` is set in the environment, else ``offline``."""
    if provider not in ("auto", "offline", "openai"):
        raise ConfigError(f"annotation.prompts.provider must be auto, offline or openai, got {provider!r}")
    if provider == "auto":
        return "openai" if os.environ.get(API_KEY_ENV) else "offline"
    return provider


def _batches(n: int, batch_size: int) -> list[tuple[str, int, int]]:
    """Split ``n`` prompts into ``(mood, batch_index, count)`` requests, balanced over moods."""
    per_mood = {m: n // len(MOODS) + (1 if i < n % len(MOODS) else 0) for i, m in enumerate(MOODS)}
    out = []
    for mood in MOODS:
        left, b = per_mood[mood], 0
        while left > 0:
            k = min(batch_size, left)
            out.append((mood, b, k))
            left -= k
            b += 1
    return out


def _messages(mood: str, batch: int, count: int) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM_MESSAGE},
        {"role": "user", "content": (f"Write {count} different prompts whose mood is '{mood}' (batch {batch + 1}; "
                                     "use scenes unlike earlier batches). Return {\"prompts\": [...]}.")},
    ]


def _parse_reply(content: str | None, *, mood: str, count: int) -> list[dict[str, Any]]:
    """Validate one reply; raises ``ValueError`` when it is not usable."""
    if not content:
        raise ValueError("empty reply")
    data = json.loads(content)
    items = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ValueError("no 'prompts' list")
    rows = []
    for item in items:
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) and item.get(k).strip()
                                                 for k in ("scene", "prompt")):
            raise ValueError("an item lacks scene/prompt text")
        item_mood = str(item.get("mood", mood)).strip().lower()
        rows.append({
            "scene": item["scene"].strip(),
            "mood": item_mood if item_mood in MOODS else mood,
            "keywords": [str(k).strip() for k in item.get("keywords") or [] if str(k).strip()],
            "tempo": [str(k).strip() for k in item.get("tempo") or [] if str(k).strip()],
            "prompt": item["prompt"].strip(),
        })
    return rows[:count]


def openai_prompts(n: int = 170, *, model: str = "gpt-4o-mini", temperature: float = 0.9, seed: int = 1234,
                   cache_dir: str | os.PathLike, base_url: str | None = None, timeout_s: float = 60.0,
                   max_retries: int = 5, backoff_s: float = 1.0, batch_size: int = 20,
                   client: Any = None, sleep: Callable[[float], None] = time.sleep,
                   progress: bool = True) -> Any:
    """``n`` scene prompts from a chat model with structured JSON output, cached by request hash.

    Args:
        n: number of prompts (balanced over moods, ``batch_size`` per request).
        model, temperature, seed: sent with each request (and part of its cache key).
        cache_dir: replies are stored as ``<cache_dir>/prompts/<hash>.json``; a cached request is not sent.
        base_url: an OpenAI-compatible endpoint (None → the client's default).
        max_retries, backoff_s, sleep: retries of each request (see :class:`StructuredChat`): the openai
            client's own after a rate limit (429), timeout, connection error or 5xx, honouring ``Retry-After``;
            ours, waiting ``backoff_s × 2^attempt`` seconds (at most 60 s) through ``sleep``, after a reply that is
            not valid JSON of the schema.
        client: an ``openai.OpenAI`` instance to use instead of building one (its key is the caller's affair).

    Raises:
        ConfigError: no key in the environment, or the server rejected it (401/403).
        DependencyError: retries exhausted or the replies never matched the schema.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    chat = StructuredChat(Path(cache_dir) / "prompts", base_url=base_url, timeout_s=timeout_s,
                          max_retries=max_retries, backoff_s=backoff_s, sleep=sleep, client=client)
    requests = []
    for mood, batch, count in _batches(n, batch_size):
        body = {"model": model, "temperature": temperature, "seed": seed + batch,
                "messages": _messages(mood, batch, count),
                "response_format": {"type": "json_schema",
                                    "json_schema": {"name": "scene_prompts", "strict": True,
                                                    "schema": PROMPT_SCHEMA}}}
        requests.append((mood, count, body))
    todo = any(not chat.is_cached(body) for _, _, body in requests)
    rows: list[dict[str, Any]] = []
    for mood, count, body in tqdm(requests, desc="scene prompts", disable=not progress or not todo, leave=False):
        rows.extend(chat.ask(body, parse=lambda c, m=mood, k=count: _parse_reply(c, mood=m, count=k),
                             what=f"the {mood} scene prompts"))
    df = pd.DataFrame(rows, columns=PROMPT_COLUMNS[1:-1])
    df["source"] = f"openai:{model}"
    df.insert(0, "prompt_id", [f"p{i:04d}" for i in range(len(df))])
    return df[PROMPT_COLUMNS]


# ----------------------------------------------------------------------------------------- structured chat
def openai_client(*, base_url: str | None = None, timeout_s: float = 60.0, max_retries: int = 5,
                  setting: str = "annotation.prompts.provider"):
    """An ``openai.OpenAI`` client with the key from the environment (never from a file).

    Transport retries are the client's own: ``max_retries`` after a timeout, a connection error, 408, 409, 429
    or 5xx, waiting as the server's ``Retry-After`` says, else 0.5 s doubling up to 8 s (with jitter).
    ``setting`` names the parameter that chose the openai path, for the error message.

    Raises:
        ConfigError: ``OPENAI_API_KEY`` is not set.
    """
    key = os.environ.get(API_KEY_ENV)
    if not key:
        raise ConfigError(f"{setting} is openai but {API_KEY_ENV} is not set in the environment; "
                          "export it (never put it in a parameter file) or set it to offline")
    try:
        import openai
    except ImportError:  # pragma: no cover
        raise DependencyError("the openai package is not installed; pip install openai") from None
    return openai.OpenAI(api_key=key, base_url=base_url, timeout=timeout_s, max_retries=max_retries)


class StructuredChat:
    """Chat-completions requests with a JSON-schema reply, each answered once and cached on disk.

    A request body's reply is stored as ``<cache_dir>/<hash of the body>.json`` (``model``, ``base_url``,
    ``request_hash``, ``content``; never the key) and read from there on every later call. The client is built
    on the first request that is not cached (:func:`openai_client`: key from the environment, the client's own
    transport retries). A reply that ``parse`` rejects (``ValueError``) is asked for again, up to
    ``max_retries`` times, waiting ``backoff_s × 2^attempt`` seconds (at most 60 s) through ``sleep``; a
    rejected reply is never cached.

    >>> chat = StructuredChat("cache/prompts", base_url=None)                  # doctest: +SKIP
    >>> rows = chat.ask(body, parse=json.loads, what="the calm prompts")        # doctest: +SKIP
    """

    def __init__(self, cache_dir: str | os.PathLike, *, base_url: str | None = None, timeout_s: float = 60.0,
                 max_retries: int = 5, backoff_s: float = 1.0, sleep: Callable[[float], None] = time.sleep,
                 client: Any = None, setting: str = "annotation.prompts.provider"):
        self.cache_dir = Path(cache_dir)
        self.base_url, self.timeout_s, self.max_retries = base_url, timeout_s, max_retries
        self.backoff_s, self.sleep, self.setting = backoff_s, sleep, setting
        self.client = client

    def path(self, body: dict) -> Path:
        """Where the reply to ``body`` is cached."""
        return self.cache_dir / f"{text_hash(body, length=24)}.json"

    def is_cached(self, body: dict) -> bool:
        return self.path(body).is_file()

    def ask(self, body: dict, *, parse: Callable[[str | None], Any], what: str) -> Any:
        """``parse`` of the reply to ``body`` (from the cache, else from the server); ``what`` names the request
        in errors.

        Raises:
            ConfigError: no key, or the server rejected it (401/403).
            DependencyError: the transport retries ran out, the request was refused, or no reply parsed.
        """
        path = self.path(body)
        if path.is_file():
            return parse(read_json(path)["content"])
        if self.client is None:
            self.client = openai_client(base_url=self.base_url, timeout_s=self.timeout_s,
                                        max_retries=self.max_retries, setting=self.setting)
        content, parsed = self._send(body, parse=parse, what=what)
        write_json(path, {"model": body["model"], "base_url": self.base_url, "request_hash": path.stem,
                          "content": content})
        return parsed

    def _send(self, body: dict, *, parse: Callable[[str | None], Any], what: str) -> tuple[str, Any]:
        import openai

        tries = self.max_retries + 1
        last = "no attempt"
        for attempt in range(tries):
            if attempt:
                self.sleep(min(self.backoff_s * 2 ** (attempt - 1), 60.0))
            try:
                resp = self.client.chat.completions.create(**body)
            except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
                raise ConfigError(f"the OpenAI endpoint rejected the API key (HTTP {exc.status_code}); set a valid "
                                  f"{API_KEY_ENV} in the environment or use {self.setting}: offline") from None
            except openai.APIError as exc:
                status = getattr(exc, "status_code", None)
                if _retryable(exc):  # the client has already retried it max_retries times
                    last = type(exc).__name__ + (f" HTTP {status}" if status else "")
                    raise DependencyError(f"no usable reply for {what} after {tries} tries (last: {last}); rerun "
                                          f"later (finished batches are cached) or use {self.setting}: "
                                          "offline") from None
                raise DependencyError(f"the OpenAI request failed (HTTP {status}, {type(exc).__name__}) for model "
                                      f"{body['model']!r}; check the model name and base_url") from None
            try:
                content = resp.choices[0].message.content
                return content, parse(content)
            except (ValueError, AttributeError, IndexError, TypeError) as exc:
                last = f"malformed reply ({str(exc)[:80]})"
        raise DependencyError(f"no usable reply for {what} after {tries} tries "
                              f"(last: {last}); rerun later (finished batches are cached) or use {self.setting}: "
                              "offline")


def _retryable(exc: Exception) -> bool:
    """The errors the openai client retries itself (timeouts, connection errors, 408, 409, 429, 5xx)."""
    import openai

    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return True
    status = getattr(exc, "status_code", 0) or 0
    return isinstance(exc, openai.APIStatusError) and (status in (408, 409, 429) or status >= 500)


# ----------------------------------------------------------------------------------------- entry point
def generate_prompts(section, *, seed: int, cache_dir: str | os.PathLike, progress: bool = True,
                     client: Any = None) -> Any:
    """Prompts for the parameters in ``section`` (``cfg.annotation.prompts``), through the chosen provider."""
    provider = resolve_provider(section.provider)
    if provider == "offline":
        return offline_prompts(section.n_prompts, seed=seed)
    return openai_prompts(section.n_prompts, model=section.model, temperature=section.temperature, seed=seed,
                          cache_dir=cache_dir, base_url=section.base_url, timeout_s=section.timeout_s,
                          max_retries=section.max_retries, backoff_s=getattr(section, "backoff_s", 1.0),
                          batch_size=getattr(section, "batch_size", 20), client=client, progress=progress)


def write_prompts(df, path: str | os.PathLike) -> Path:
    """Write prompts atomically: ``.jsonl`` (one object per prompt, lists kept) or ``.csv`` (lists ``;``-joined)."""

    path = Path(path)
    if path.suffix == ".jsonl":
        lines = [json.dumps({c: r[c] for c in PROMPT_COLUMNS}, ensure_ascii=False) for r in df.to_dict("records")]
        return atomic_write_text(path, "".join(line + "\n" for line in lines))
    out = df.copy()
    for col in ("keywords", "tempo"):
        out[col] = out[col].map(join_list)
    return atomic_write_text(path, out[PROMPT_COLUMNS].to_csv(index=False, lineterminator="\n"))


def read_prompts(path: str | os.PathLike) -> Any:
    """Read prompts written by :func:`write_prompts` (``.jsonl`` or ``.csv``; lists restored)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: prompts file not found; run the annotation stage first")
    if path.suffix == ".jsonl":
        rows = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise InputError(f"{path}:{i}: not valid JSON; rerun the annotation stage") from None
        df = pd.DataFrame(rows)
    else:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
        for col in ("keywords", "tempo"):
            if col in df.columns:
                df[col] = df[col].map(split_list)
    missing = [c for c in PROMPT_COLUMNS if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing columns {missing}")
    return df[PROMPT_COLUMNS]


# ----------------------------------------------------------------------------------------- diversity
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")


def _tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def diversity(prompts: Sequence[str] | Any) -> dict[str, float]:
    """Diversity of a prompt set: distinct-n (unique n-grams / all n-grams, over the whole set) for n = 1, 2,
    3, the share of unique prompts, and mean length in words.

    ``prompts`` is a list of strings or a DataFrame with a ``prompt`` column.
    """
    texts = list(prompts["prompt"]) if hasattr(prompts, "columns") else list(prompts)
    toks = [_tokens(t) for t in texts]
    out: dict[str, float] = {"n_prompts": float(len(texts)),
                             "unique_share": len(set(texts)) / len(texts) if texts else 0.0,
                             "mean_words": float(np.mean([len(t) for t in toks])) if toks else 0.0}
    for n in (1, 2, 3):
        grams = [g for t in toks for g in _ngrams(t, n)]
        out[f"distinct_{n}"] = len(set(grams)) / len(grams) if grams else 0.0
    return out


def mood_counts(df) -> Any:
    """Prompts per mood (every taxonomy mood listed, zero when absent): DataFrame ``mood, n``."""
    import pandas as pd

    counts = df["mood"].value_counts()
    return pd.DataFrame({"mood": list(MOODS), "n": [int(counts.get(m, 0)) for m in MOODS]})
