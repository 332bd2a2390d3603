"""Notebook helpers: audio players and small displays that keep notebook cells to one call."""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence

import numpy as np

from .audio import load


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


def _audio_tag(path: str | os.PathLike, *, max_s: float, sr: int) -> str:
    import soundfile as sf


    wav, _ = load(path, sr=sr, mono=True)
    buf = io.BytesIO()
    sf.write(buf, wav[0, : int(max_s * sr)], sr, format="WAV", subtype="PCM_16")
    data = base64.b64encode(buf.getvalue()).decode()
    return f"<audio controls preload='none' src='data:audio/wav;base64,{data}'></audio>"


def audio_grid(table, *, row: str, columns: Sequence[str], max_s: float = 10.0, sr: int = 22050):
    """An HTML table of audio players: one row per ``table[row]`` value, one column per path column.

    Players embed the first ``max_s`` seconds at ``sr`` Hz mono, so an executed notebook stays small; the full
    files are on disk beside their JSON sidecars.
    """
    from IPython.display import HTML

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for rec in table.to_dict("records"):
        cells = "".join(f"<td>{_audio_tag(rec[c], max_s=max_s, sr=sr) if isinstance(rec[c], str) else ''}</td>"
                        for c in columns)
        body.append(f"<tr><th>{html.escape(str(rec[row]))}</th>{cells}</tr>")
    return HTML(f"<table><tr><th>{html.escape(row)}</th>{head}</tr>{''.join(body)}</table>")
