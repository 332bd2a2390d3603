"""The run report: every stage's figures, tables and metrics gathered into ``outputs/<run>/report.html``."""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

from .artifacts import atomic_write_text, ensure_dir, read_json
from .cards import cards_html
from .config import STAGES, Config


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    if isinstance(d, dict):
        for k, v in d.items():
            rows.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(d, list) and len(d) > 12:
        rows.append((prefix, f"[{len(d)} items]"))
    else:
        rows.append((prefix, d))
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(json.dumps(v) if isinstance(v, list | dict) else str(v))


def write_report(cfg: Config) -> Path:
    """Gather every stage's figures, tables and metrics into ``outputs/<run>/report.html``.

    Layout: a contents table (stage, run time, metrics file), then per stage its figures first, its tables and
    its full ``metrics.json`` in collapsible sections underneath; last, the run's model and dataset cards.
    """
    import pandas as pd

    root = cfg.paths.root
    timings = read_json(root / "timings.json") if (root / "timings.json").is_file() else {}
    figures = sorted(cfg.paths.figures.glob("*.png")) if cfg.paths.figures.is_dir() else []
    tables = sorted(cfg.paths.tables.glob("*.csv")) if cfg.paths.tables.is_dir() else []
    present = [s for s in STAGES if cfg.paths.metrics(s).is_file()
               or any(f.name.startswith(s[:3]) for f in figures + tables)]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>EchoScript report — {html.escape(cfg.params.run.name)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}td,th{border:1px solid #ccc;"
        "padding:.2em .5em;text-align:left}img{max-width:100%;border:1px solid #eee;margin:.3em 0}"
        "h2{border-bottom:2px solid #d62728;padding-bottom:.2em;margin-top:2em}.muted{color:#777}"
        "details{margin:.4em 0}summary{cursor:pointer;color:#444}.figs{display:grid;"
        "grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:.8em}figure{margin:0}"
        "figcaption{font-size:.85em;color:#555}</style></head><body>",
        f"<h1>EchoScript Workbook — run <code>{html.escape(cfg.params.run.name)}</code></h1>",
        f"<p class='muted'>Parameters: {html.escape(str(cfg.source))} · seed {cfg.seed} · "
        f"figures as PDF + PNG in <code>figures/</code>, tables as CSV + LaTeX in <code>tables/</code></p>",
        "<table><tr><th>stage</th><th>run time</th><th>figures</th><th>tables</th></tr>",
    ]
    for stage in present:
        num = stage[:3]
        secs = timings.get(stage)
        parts.append(f"<tr><td><a href='#{stage}'>{stage}</a></td>"
                     f"<td>{'' if secs is None else f'{secs:.1f} s'}</td>"
                     f"<td>{sum(f.name.startswith(num) for f in figures)}</td>"
                     f"<td>{sum(t.name.startswith(num) for t in tables)}</td></tr>")
    if timings:
        parts.append(f"<tr><th>total</th><th>{sum(timings.values()):.1f} s</th><th></th><th></th></tr>")
    parts.append("</table>")
    for stage in present:
        num = stage[:3]
        parts.append(f"<h2 id='{stage}'>{html.escape(stage)}</h2>")
        parts.append(f"<p class='muted'>executed notebook: notebooks/{stage}.ipynb</p>")
        stage_figs = [f for f in figures if f.name.startswith(num)]
        if stage_figs:
            parts.append("<div class='figs'>")
            for f in stage_figs:
                rel = html.escape(os.path.relpath(f, root))
                parts.append(f"<figure><img src='{rel}' alt='{html.escape(f.stem)}'>"
                             f"<figcaption>{html.escape(f.stem)}</figcaption></figure>")
            parts.append("</div>")
        for t in (t for t in tables if t.name.startswith(num)):
            try:
                df = pd.read_csv(t)
            except Exception:  # an unreadable table should not sink the whole report
                continue
            more = f" (first 40 of {len(df)} rows)" if len(df) > 40 else ""
            parts.append(f"<details><summary>table {html.escape(t.stem)}{more}</summary>")
            parts.append(df.head(40).to_html(index=False, float_format=lambda x: f"{x:.4g}", border=0))
            parts.append("</details>")
        metrics_file = cfg.paths.metrics(stage)
        if metrics_file.is_file():
            rows = _flatten(read_json(metrics_file))
            parts.append(f"<details><summary>all metrics ({len(rows)} values, {stage}/metrics.json)</summary>")
            parts.append("<table><tr><th>metric</th><th>value</th></tr>")
            parts.extend(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in rows)
            parts.append("</table></details>")
    parts.append(cards_html(root))  # the model and dataset cards, as the hub would show them
    parts.append("</body></html>")
    out = root / "report.html"

    ensure_dir(root)
    atomic_write_text(out, "\n".join(parts))
    return out
