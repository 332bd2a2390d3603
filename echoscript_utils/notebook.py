"""Notebook helpers: audio players and small displays that keep notebook cells to one call."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence

import numpy as np

from .audio import load


def player(item: str | os.PathLike | np.ndarray, *, sr: int | None = 22050, max_s: float | None = 10.0,
           mono: bool = False):
    """The one audio player of the notebooks: an ``IPython.display.Audio`` of a file or a ``[C, T]`` array.

    Files are decoded at ``sr`` Hz (``None`` keeps the file's rate; arrays need ``sr``), optionally down-mixed to
    mono, and cut to the first ``max_s`` seconds (``None``: all of it) so executed notebooks stay small. The level
    is left as it is (``normalize=False``): players compare loudness honestly.
    """
    from IPython.display import Audio

    if isinstance(item, np.ndarray):
        if sr is None:
            raise ValueError("an array needs its sample rate: pass sr")
        wav, rate = np.atleast_2d(item), sr
        if mono:
            wav = wav.mean(axis=0, keepdims=True)
    else:
        wav, rate = load(item, sr=sr, mono=mono)
    if max_s is not None:
        wav = wav[:, : int(max_s * rate)]
    return Audio(wav[0] if wav.shape[0] == 1 else wav, rate=rate, normalize=False)


def display_audio(items: Sequence[str | os.PathLike] | str | os.PathLike, *, titles: Sequence[str] | None = None,
                  sr: int | None = None, max_s: float | None = None) -> None:
    """Show a :func:`player` per file (or per ``[C, T]`` array with ``sr``), each under an optional title."""
    from IPython.display import HTML, display

    if isinstance(items, str | os.PathLike | np.ndarray):
        items = [items]
    for i, item in enumerate(items):
        if titles is not None:
            display(HTML(f"<b>{titles[i]}</b>"))
        display(player(item, sr=sr, max_s=max_s))


def audio_grid(table, *, row: str, columns: Sequence[str], max_s: float = 10.0, sr: int = 22050):
    """An HTML table of audio players: one row per ``table[row]`` value, one column per path column.

    Players embed the first ``max_s`` seconds at ``sr`` Hz mono, so an executed notebook stays small; the full
    files are on disk beside their JSON sidecars.
    """
    from IPython.display import HTML

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for rec in table.to_dict("records"):
        cells = "".join(f"<td>{player(rec[c], max_s=max_s, sr=sr, mono=True)._repr_html_() if isinstance(rec[c], str) else ''}</td>"
                        for c in columns)
        body.append(f"<tr><th>{html.escape(str(rec[row]))}</th>{cells}</tr>")
    return HTML(f"<table><tr><th>{html.escape(row)}</th>{head}</tr>{''.join(body)}</table>")


def video(path: str | os.PathLike, *, width: int = 640, missing: str = "no video yet"):
    """An ``IPython.display.Video`` of a file (embedded, so the executed notebook carries it), or a one-line note
    ``missing`` when the file is not there."""
    from IPython.display import HTML, Video

    if not os.path.isfile(path):
        return HTML(f"<i>{html.escape(missing)}</i>")
    return Video(str(path), embed=True, width=width, mimetype="video/mp4")
