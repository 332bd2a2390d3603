"""Human review of tags in a notebook: listen to a clip, see its tags, correct them, save to the overrides file.

>>> review.review_widget(cfg)            # doctest: +SKIP

The widget reads the stage's ``metadata.jsonl`` (v2) and writes corrections with
:func:`echoscript_utils.annotation.append_overrides` (atomic rewrite of the overrides CSV). Only fields that
differ from the clip's current tags are written. The next run of the stage applies them, so corrections survive
reruns. Building and displaying the widget does not wait for input, so an unattended (papermill) run passes it.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from ..notebook import player as audio_player
from ..tagging import FIELDS, VOCAB
from .overrides import append_overrides, overrides_path
from .records import load_annotated

__all__ = ["review_widget", "tags_html"]


def tags_html(row: dict[str, Any]) -> str:
    """A small HTML table of a clip's chosen tags, their probabilities and the ground truth (if known)."""
    tags = row.get("tags") or {}
    probs = tags.get("probabilities") or {}
    truth = row.get("truth") or {}
    parts = [f"<b>{html.escape(str(row.get('clip_id')))}</b> · split {html.escape(str(row.get('split')))}",
             "<table><tr><th>field</th><th>chosen</th><th>probabilities</th><th>truth</th></tr>"]
    for f in FIELDS:
        chosen = tags.get(f)
        chosen = ", ".join(chosen) if isinstance(chosen, list) else (chosen or "")
        p = probs.get(f, {})
        ranked = sorted(p.items(), key=lambda kv: -kv[1])
        prob_txt = ", ".join(f"{k} {v:.2f}" for k, v in ranked)
        t = truth.get(f) if isinstance(truth, dict) else None
        t = ", ".join(t) if isinstance(t, list) else (t or "")
        mark = " ✎" if f in (tags.get("reviewed") or []) else ""
        parts.append(f"<tr><td>{f}</td><td>{html.escape(chosen)}{mark}</td><td>{html.escape(prob_txt)}</td>"
                     f"<td>{html.escape(t)}</td></tr>")
    parts.append("</table>")
    return "".join(parts)


def review_widget(cfg_or_stage_dir, *, overrides_file: str | os.PathLike | None = None, max_s: float = 15.0,
                  reviewer: str = ""):
    """An ipywidgets panel to review one clip at a time.

    Args:
        cfg_or_stage_dir: a :class:`~echoscript_utils.config.Config` (its ``02_annotation`` folder and
            overrides file) or an annotation stage folder.
        overrides_file: where corrections go (default: the config's, or ``<stage>/overrides.csv``).
        max_s: seconds of audio in the player.
        reviewer: pre-filled reviewer name stored with each correction.

    Returns:
        ``ipywidgets.VBox``; display it as the last expression of a cell.
    """
    import ipywidgets as w

    if hasattr(cfg_or_stage_dir, "paths"):
        stage = Path(cfg_or_stage_dir.paths.annotation)
        target = Path(overrides_file or overrides_path(cfg_or_stage_dir))
    else:
        stage = Path(cfg_or_stage_dir)
        target = Path(overrides_file or stage / "overrides.csv")
    rows = {r["clip_id"]: r for r in load_annotated(stage).to_dict("records")}
    if not rows:
        return w.HTML("<i>no clips to review</i>")

    def label(cid: str) -> str:
        t = rows[cid].get("tags") or {}
        return f"{cid} — {t.get('genre')} / {', '.join(t.get('moods') or [])}"

    clip = w.Dropdown(options=[(label(c), c) for c in rows], description="clip", layout=w.Layout(width="60%"))
    info = w.HTML()
    player = w.Output()
    listen = w.Button(description="listen", icon="play")
    genre = w.Dropdown(options=list(VOCAB["genre"]), description="genre")
    moods = w.SelectMultiple(options=list(VOCAB["moods"]), description="moods", rows=4)
    insts = w.SelectMultiple(options=list(VOCAB["instruments"]), description="instruments", rows=5)
    who = w.Text(value=reviewer, description="reviewer")
    note = w.Text(description="note")
    save = w.Button(description="save corrections", button_style="success", icon="check")
    status = w.HTML(f"<small>corrections go to {html.escape(str(target))}</small>")

    def show(_=None):
        row = rows[clip.value]
        tags = row.get("tags") or {}
        info.value = tags_html(row)
        player.outputs = ()
        genre.value = tags.get("genre") if tags.get("genre") in VOCAB["genre"] else VOCAB["genre"][0]
        moods.value = tuple(m for m in tags.get("moods") or [] if m in VOCAB["moods"])
        insts.value = tuple(i for i in tags.get("instruments") or [] if i in VOCAB["instruments"])

    def play(_=None):
        player.outputs = ()
        player.append_display_data(audio_player(rows[clip.value]["path"], max_s=max_s, mono=True))

    def on_save(_=None):
        row = rows[clip.value]
        tags = dict(row.get("tags") or {})
        new = {"genre": genre.value, "moods": list(moods.value), "instruments": list(insts.value)}
        changed = [{"clip_id": clip.value, "field": f, "value": new[f]} for f in FIELDS
                   if (new[f] if f == "genre" else sorted(new[f])) != (tags.get(f) if f == "genre"
                                                                       else sorted(tags.get(f) or []))]
        if not changed:
            status.value = "<small>nothing changed</small>"
            return
        try:
            append_overrides(target, changed, reviewer=who.value, note=note.value)
        except Exception as exc:  # show the one-line error in the widget instead of a traceback
            status.value = f"<span style='color:#d62728'>{html.escape(str(exc))}</span>"
            return
        tags.update(new)
        tags["reviewed"] = sorted({*(tags.get("reviewed") or []), *(c["field"] for c in changed)})
        row["tags"] = tags
        info.value = tags_html(row)
        status.value = (f"<small>saved {len(changed)} correction(s) to {html.escape(str(target))}; "
                        "rerun the stage to apply them everywhere</small>")

    clip.observe(show, names="value")
    listen.on_click(play)
    save.on_click(on_save)
    show()
    return w.VBox([w.HBox([clip, listen]), info, player, genre, moods, insts, w.HBox([who, note]), save, status])
