"""Cue audio: one WAV + JSON sidecar per spotted scene and model, extended past the model window by continuation.

Imports from the generation stage live here and only here (see the package notes).
"""

from __future__ import annotations

try:  # the caption template moves out of the alignment stage in the package layout
    from ..captions import build_caption
except ImportError:  # pragma: no cover - before the move
    from ..alignment import build_caption

__all__ = ["build_caption"]
