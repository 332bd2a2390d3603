"""Training captions: the one template that fine-tuning, generation and scoring all write prompts with.

A caption joins a scene description with the clip's attributes (genre, moods, instruments, tempo, key), in the
order of :data:`CAPTION_FIELDS`; fine-tuning can drop attributes at random (CFG-style caption dropout).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Attributes a training caption can carry, in the order the template writes them.
CAPTION_FIELDS: tuple[str, ...] = ("scene", "genre", "moods", "instruments", "bpm", "key")


def caption_fields(row: dict[str, Any] | pd.Series) -> dict[str, Any]:
    """Collect the caption attributes of one clip from its metadata row.

    Tags chosen by the annotation stage win over ground truth (``truth``), which wins over curation features:
    the captions must describe what a user of the real workbook has, and real corpora have no ground truth.
    """
    row = dict(row)
    tags = row.get("tags") or {}
    truth = row.get("truth") or {}
    feats = row.get("features") or {}
    if not isinstance(tags, dict):
        tags = {}
    if not isinstance(truth, dict):
        truth = {}
    if not isinstance(feats, dict):
        feats = {}

    def chosen(name: str):
        value = tags.get(name)
        if isinstance(value, dict):  # {"labels": [...], "probs": {...}} or {label: prob}
            value = value.get("labels", value.get("chosen", sorted(value, key=value.get, reverse=True)[:1]))
        return value if value not in (None, [], "") else truth.get(name)

    genre = chosen("genre")
    if isinstance(genre, list):
        genre = genre[0] if genre else None
    bpm = feats.get("bpm") or truth.get("bpm")
    key = feats.get("key") or truth.get("key")
    mode = feats.get("mode") or truth.get("mode")
    return {
        "scene": row.get("prompt") or "",
        "genre": genre,
        "moods": list(chosen("moods") or []),
        "instruments": list(chosen("instruments") or []),
        "bpm": float(bpm) if bpm else None,
        "key": f"{key} {mode}" if key and mode else key,
    }


def build_caption(fields: dict[str, Any], *, dropout: dict[str, float] | None = None,
                  rng: np.random.Generator | None = None) -> str:
    """Compose a training caption from clip attributes.

    The template (every part optional)::

        "<scene>. <genre> score, <mood1> and <mood2> mood, featuring <inst1>, <inst2>, <bpm> bpm, in <key>."

    Args:
        fields: ``scene`` (str), ``genre`` (str), ``moods`` / ``instruments`` (lists of str), ``bpm`` (float),
            ``key`` (e.g. ``"A minor"``), as from :func:`caption_fields`.
        dropout: per-attribute probability of leaving it out (``{"bpm": 0.3, ...}``), applied independently,
            like audiocraft's music-info attribute dropout; needs ``rng``. ``None`` keeps everything.
        rng: numpy Generator for the dropout draws.
    """
    dropout = dropout or {}
    keep = {}
    for name in CAPTION_FIELDS:
        p = float(dropout.get(name, 0.0))
        keep[name] = not (p > 0 and rng is not None and rng.random() < p)
    parts: list[str] = []
    scene = (fields.get("scene") or "").strip().rstrip(".")
    if keep["scene"] and scene:
        parts.append(scene + ".")
    desc: list[str] = []
    if keep["genre"] and fields.get("genre"):
        desc.append(f"{fields['genre']} score")
    moods = fields.get("moods") or []
    if keep["moods"] and moods:
        desc.append(f"{' and '.join(moods)} mood")
    inst = fields.get("instruments") or []
    if keep["instruments"] and inst:
        desc.append(f"featuring {', '.join(inst)}")
    if keep["bpm"] and fields.get("bpm"):
        desc.append(f"{round(float(fields['bpm']))} bpm")
    if keep["key"] and fields.get("key"):
        desc.append(f"in {fields['key']}")
    if desc:
        text = ", ".join(desc)
        parts.append(text[0].upper() + text[1:] + ".")
    return " ".join(parts)
