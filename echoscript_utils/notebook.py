"""Notebook helpers: audio players and small displays that keep notebook cells to one call."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np


def display_audio(items: Sequence[str | os.PathLike] | str | os.PathLike, *, titles: Sequence[str] | None = None,
                  sr: int | None = None) -> None:
    """Show an HTML5 player per file (or per ``[C, T]`` array with ``sr``), each under an optional title."""
    from IPython.display import HTML, Audio, display

    if isinstance(items, str | os.PathLike | np.ndarray):
        items = [items]
    for i, item in enumerate(items):
        if titles is not None:
            display(HTML(f"<b>{titles[i]}</b>"))
        if isinstance(item, np.ndarray):
            display(Audio(item, rate=sr))
        else:
            display(Audio(str(item)))
