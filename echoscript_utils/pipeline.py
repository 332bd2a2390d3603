"""The papermill runner: execute the numbered notebooks in order, skip finished stages, write one report.

``echoscript run params/demo.yaml`` executes ``notebooks/01_curation.ipynb`` … ``08_scoring.ipynb`` into
``outputs/<run>/notebooks/``. A stage counts as complete when its ``metrics.json`` exists and its stamp
(``NN_stage/.stage.json``) was written for the same parameters; complete stages are skipped unless
``redo=True``, and once a stage runs, every later stage runs too (its inputs changed).
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .artifacts import ensure_dir, read_json, text_hash, write_json
from .cards import write_cards
from .config import STAGES, Config, load_config, set_seed, stage_name
from .errors import ConfigError, InputError, StageError
from .models.fullsize import ensure_mirror, hub_environment
from .report import write_report

#: The parameter sections each stage depends on (cumulative: a stage also depends on everything before it).
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "01_curation": ("data", "curation"),
    "02_annotation": ("annotation", "alignment"),  # the clap tagger uses alignment.clap_model
    "03_alignment": ("alignment",),
    "04_finetuning": ("training",),
    "05_generation": ("generation",),
    "06_evaluation": ("evaluation",),
    "07_listening": ("listening",),
    "08_scoring": ("scoring",),
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
    "08_scoring": ("cue_sheet.csv", "cue_sheet.tex", "score.wav", "*/cue*.wav", "*/cue*.json"),
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


def stage_entry_points() -> list[tuple[str, Callable[..., Any]]]:
    """``[(stage, run)]`` in stage order: each stage module's ``run(cfg, progress=...)``, which does the whole stage
    without its notebook (imported here, when asked: importing is part of no stage)."""
    return [(s, importlib.import_module(f"{__package__}.{s.split('_', 1)[1]}").run) for s in STAGES]


def stage_params_hash(cfg: Config, stage: str) -> str:
    """Hash of the run seed plus every parameter section that ``stage`` (and its upstream) depends on."""
    sections: list[str] = []
    for s in STAGES:
        sections.extend(STAGE_SECTIONS[s])
        if s == stage:
            break
    data = cfg.to_dict()
    data["data"].pop("licences", None)  # read by the cards only: no stage's products depend on it
    payload = {"seed": data["run"]["seed"], **{k: data[k] for k in sections}}

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


def apply_hub_environment(cfg: Config) -> dict[str, str]:
    """Export ``run.hub_cache`` / ``run.hub_offline`` as ``HF_HUB_CACHE`` / ``HF_HUB_OFFLINE`` into this process's
    environment, which every stage's kernel inherits (huggingface_hub reads them when it is imported). Returns
    what was set."""

    env = hub_environment(cfg)
    os.environ.update(env)
    return env


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
    apply_hub_environment(cfg)  # effective here only if no hub library was imported yet; the runner sets it first
    set_seed(cfg.seed)
    if cfg.run.torch_threads:
        import torch

        torch.set_num_threads(cfg.run.torch_threads)
    if stage is not None:
        ensure_dir(cfg.paths.stage(stage))
    return cfg


def kernel_config(socket_dir: str | os.PathLike):
    """Settings of the kernels that run the notebooks: they talk to papermill over Unix sockets (IPC transport)
    in ``socket_dir`` (a private temporary folder, never the notebooks' folder), so no TCP port is opened for a
    local kernel and ipykernel has no reason to print its warning about unencrypted TCP into every stage's log."""
    from traitlets.config import Config as TraitletsConfig

    c = TraitletsConfig()
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = str(Path(socket_dir) / "kernel")
    return c


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
    apply_hub_environment(cfg)
    if cfg.run.fullsize_mirror:

        t0 = time.perf_counter()
        ensure_mirror(cfg, log=log)
        log(f"full-size mirror ready in {time.perf_counter() - t0:.1f} s ({cfg.run.hub_cache})")
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
            with tempfile.TemporaryDirectory(prefix="echoscript-kernel-") as sockets:
                pm.execute_notebook(
                    str(available[stage]), str(out_nb), parameters=parameters, cwd=str(available[stage].parent),
                    kernel_name=kernel_name, progress_bar=False, log_output=False, report_mode=False,
                    config=kernel_config(sockets),
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
                           "finished": datetime.now(UTC).isoformat(timespec="seconds")})
        timings[stage] = round(seconds, 2)
        write_json(timings_path, timings)
        upstream_ran = True
        results[stage] = {"status": "ran", "seconds": seconds}
        log(f"{prefix}: done in {seconds:.1f} s")
    for kind, card in write_cards(cfg).items():
        log(f"{kind} card: {card}")
    report = write_report(cfg)
    log(f"report: {report}")
    return results
