"""The workbook's label vocabulary: the paper's genres, moods and instruments.

Every tagger maps its own labels onto these (mapping files in ``echoscript_utils/data/``), the demo corpus is
composed from them, and accuracy is measured against them.
"""

from __future__ import annotations

#: The paper's genres (one per clip).
GENRES: tuple[str, ...] = ("classical", "electronic", "orchestral", "ambient", "cinematic")
#: The paper's moods (one or more per clip).
MOODS: tuple[str, ...] = ("uplifting", "suspenseful", "melancholic", "calming")
#: The paper's instruments (one or more per clip). "violin" covers solo violin and string sections.
INSTRUMENTS: tuple[str, ...] = ("guitar", "piano", "violin", "synthesizer", "percussion")

#: Pitch-class names used for keys ("C", "C#", ... "B") and the two modes.
PITCH_CLASSES: tuple[str, ...] = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODES: tuple[str, ...] = ("major", "minor")

#: Multi-valued fields are stored joined by this separator in CSV files.
LIST_SEP = ";"


def split_list(value) -> list[str]:
    """``"piano;violin"`` → ``["piano", "violin"]``; lists pass through; empty/NaN → ``[]``."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if str(v)]
    if isinstance(value, float):  # pandas NaN
        return []
    return [v.strip() for v in str(value).split(LIST_SEP) if v.strip()]


def join_list(values) -> str:
    return LIST_SEP.join(values)
