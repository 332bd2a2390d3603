"""The papermill runner: execute the numbered notebooks in order, skip finished stages, write one report.

``echoscript run params/demo.yaml`` executes ``notebooks/01_curation.ipynb`` … ``07_listening.ipynb`` into
``outputs/<run>/notebooks/``. A stage counts as complete when its ``metrics.json`` exists and its stamp
(``NN_stage/.stage.json``) was written for the same parameters; complete stages are skipped unless
``redo=True``, and once a stage runs, every later stage runs too (its inputs changed).
"""

from __future__ import annotations

import html
import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .artifacts import ensure_dir, read_json, write_json
from .config import STAGES, Config, load_config, set_seed, stage_name
from .errors import ConfigError, InputError, StageError

#: The parameter sections each stage depends on (cumulative: a stage also depends on everything before it).
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "01_curation": ("data", "curation"),
    "02_annotation": ("annotation", "alignment"),  # the clap tagger uses alignment.clap_model
    "03_alignment": ("alignment",),
    "04_finetuning": ("training",),
    "05_generation": ("generation",),
    "06_evaluation": ("evaluation",),
    "07_listening": ("listening",),
}


#: What each stage declares it writes (globs relative to its folder); the runner checks them after the stage.
STAGE_PRODUCTS: dict[str, tuple[str, ...]] = {
    "01_curation": ("metadata.jsonl", "skipped.csv", "exports/audiocraft/*/data.jsonl", "exports/hf/*"),
    "02_annotation": ("metadata.jsonl",),
    "03_alignment": ("metadata.jsonl",),
    "04_finetuning": ("final/config.json",),
    "05_generation": ("musicgen/*.wav", "musicgen/*.json", "echoscript/*.wav", "echoscript/*.json"),
    "06_evaluation": (),
    "07_listening": ("pack/*", "key.csv", "analysis/question_means.csv", "analysis/preference_shares.csv"),
}


def missing_products(cfg: Config, stage: str) -> list[str]:
    """Declared products of ``stage`` that are absent (``metrics.json`` is always required)."""
    folder = cfg.paths.stage(stage)
    wanted = ("metrics.json", *STAGE_PRODUCTS.get(stage, ()))
    return [g for g in wanted if not any(folder.glob(g))]


def notebooks_dir() -> Path:
    """The folder holding the numbered notebooks (next to the package in a checkout)."""
    here = Path(__file__).resolve().parent.parent / "notebooks"
    if here.is_dir():
        return here
    cwd = Path.cwd() / "notebooks"
    if cwd.is_dir():
        return cwd
    raise InputError("notebooks/ folder not found; run from a checkout of the workbook (pip install -e .)")


def available_notebooks() -> dict[str, Path]:
    """``{"01_curation": Path(...), ...}`` for every numbered notebook that exists, in stage order."""
    folder = notebooks_dir()
    return {s: folder / f"{s}.ipynb" for s in STAGES if (folder / f"{s}.ipynb").is_file()}


def stage_params_hash(cfg: Config, stage: str) -> str:
    """Hash of the run seed plus every parameter section that ``stage`` (and its upstream) depends on."""
    sections: list[str] = []
    for s in STAGES:
        sections.extend(STAGE_SECTIONS[s])
        if s == stage:
            break
    data = cfg.to_dict()
    payload = {"seed": data["run"]["seed"], **{k: data[k] for k in sections}}
    from .artifacts import text_hash

    return text_hash(payload)


def _stamp_path(cfg: Config, stage: str) -> Path:
    return cfg.paths.stage(stage) / ".stage.json"


def stage_complete(cfg: Config, stage: str) -> bool:
    """True when ``stage`` finished for the current parameters (stamp + metrics.json present)."""
    stamp = _stamp_path(cfg, stage)
    if not stamp.is_file() or missing_products(cfg, stage):
        return False
    try:
        return read_json(stamp).get("params_hash") == stage_params_hash(cfg, stage)
    except (OSError, json.JSONDecodeError):
        return False


def notebook_setup(params_path: str | os.PathLike | None = None, *, overrides: dict[str, Any] | None = None,
                   output_root: str | os.PathLike | None = None, stage: str | None = None) -> Config:
    """What the second cell of every notebook calls: validate parameters, seed everything, make the folders.

    Args:
        params_path: the parameter file (the notebook's ``params_path`` parameter).
        overrides: dotted overrides (the notebook's ``overrides`` parameter).
        output_root: replace ``run.output_root`` ("" or None keeps the file's value).
        stage: this notebook's stage; its folder is created.
    """
    cfg = load_config(params_path or None, overrides or None, output_root=output_root or None)
    cfg.paths.ensure()
    set_seed(cfg.seed)
    if cfg.run.torch_threads:
        import torch

        torch.set_num_threads(cfg.run.torch_threads)
    if stage is not None:
        ensure_dir(cfg.paths.stage(stage))
    return cfg


def _select_stages(available: dict[str, Path], stages, from_stage) -> list[str]:
    chosen = list(available)
    if stages:
        wanted = [stage_name(s) for s in stages]
        missing = [s for s in wanted if s not in available]
        if missing:
            raise ConfigError(f"no notebook for stage(s) {', '.join(missing)} in {notebooks_dir()}")
        chosen = [s for s in chosen if s in wanted]
    if from_stage is not None:
        start = stage_name(from_stage)
        chosen = [s for s in chosen if s >= start]
    return chosen


def run_workbook(params: str | os.PathLike, *, stages=None, from_stage=None, redo: bool = False,
                 output_root: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None,
                 kernel_name: str | None = None, log=print) -> dict[str, dict[str, Any]]:
    """Execute the workbook's notebooks for one parameter file; returns ``{stage: {"status", "seconds"}}``.

    Raises :class:`StageError` naming the failed stage and its executed notebook.
    """
    import papermill as pm

    cfg = load_config(params, overrides, output_root=output_root)
    cfg.paths.ensure()
    available = available_notebooks()
    if not available:
        raise InputError(f"{notebooks_dir()}: no numbered notebooks found")
    chosen = _select_stages(available, stages, from_stage)
    music = cfg.data.input_dir
    if "01_curation" in chosen and music is not None and not Path(music).is_dir():
        raise InputError(f"{music}: data.input_dir is not a folder; set it in {params} to your folder of music "
                         f"(or to null for the demo corpus)")
    if from_stage is not None:
        for s in available:
            if s < stage_name(from_stage) and not stage_complete(cfg, s):
                raise StageError(f"--from {from_stage}: earlier stage {s} is not complete for these parameters; "
                                 f"run it first (echoscript run {params} --stages {s})")
    parameters = {
        "params_path": str(Path(params).resolve()),
        "output_root": str(cfg.params.run.output_root),
        "overrides": dict(overrides or {}),
    }
    results: dict[str, dict[str, Any]] = {}
    timings_path = cfg.paths.root / "timings.json"
    timings = read_json(timings_path) if timings_path.is_file() else {}
    upstream_ran = False
    log(f"EchoScript run '{cfg.params.run.name}' → {cfg.paths.root}")
    for i, stage in enumerate(chosen, 1):
        prefix = f"[{i}/{len(chosen)}] {stage}"
        if not redo and not upstream_ran and stage_complete(cfg, stage):
            log(f"{prefix}: complete, skipped (use --redo to rerun)")
            results[stage] = {"status": "skipped", "seconds": 0.0}
            continue
        out_nb = cfg.paths.notebooks / f"{stage}.ipynb"
        log(f"{prefix}: running …")
        t0 = time.perf_counter()
        stamp = _stamp_path(cfg, stage)
        if stamp.exists():
            stamp.unlink()
        try:
            pm.execute_notebook(
                str(available[stage]), str(out_nb), parameters=parameters, cwd=str(available[stage].parent),
                kernel_name=kernel_name, progress_bar=False, log_output=False, report_mode=False,
            )
        except pm.PapermillExecutionError as exc:
            raise StageError(f"stage {stage} failed: {exc.ename}: {exc.evalue.splitlines()[0] if exc.evalue else ''} "
                             f"— open the executed notebook {out_nb}") from None
        except Exception as exc:  # kernel died, notebook unreadable, ...
            raise StageError(f"stage {stage} could not run ({type(exc).__name__}: {exc}) — see {out_nb}") from None
        seconds = time.perf_counter() - t0
        missing = missing_products(cfg, stage)
        if missing:
            raise StageError(f"stage {stage} finished without writing {', '.join(missing)} in "
                             f"{cfg.paths.stage(stage)}; open the executed notebook {out_nb}")
        write_json(stamp, {"params_hash": stage_params_hash(cfg, stage), "seconds": round(seconds, 2),
                           "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        timings[stage] = round(seconds, 2)
        write_json(timings_path, timings)
        upstream_ran = True
        results[stage] = {"status": "ran", "seconds": seconds}
        log(f"{prefix}: done in {seconds:.1f} s")
    report = write_report(cfg)
    log(f"report: {report}")
    return results


# ------------------------------------------------------------------------------------------------ report
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
    its full ``metrics.json`` in collapsible sections underneath.
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
    parts.append("</body></html>")
    out = root / "report.html"
    from .artifacts import atomic_write_text

    ensure_dir(root)
    atomic_write_text(out, "\n".join(parts))
    return out
