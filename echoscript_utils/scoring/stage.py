"""Stage 08 in code: :func:`score` (a screenplay to a cue sheet and scored timelines) and the stage entry
:func:`run`; :mod:`echoscript_utils.scoring` describes the products."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from ..adherence import adherence_means
from ..artifacts import atomic_path, file_hash, staged_dir, write_json, write_metrics, write_table
from ..config import cpu_workers, resolve_device
from ..embeddings import get_embedder
from ..errors import ConfigError, DependencyError, EchoScriptError, StageError
from ..plots import save_figure
from ..plots import scoring as splots
from ..prompts import resolve_provider
from .generate import LEITMOTIF_LABEL, generate_cues, leitmotif_chroma, scoring_models
from .local_plan import local_plan
from .parse import Screenplay, read_script, scenes_table
from .picture import Spotting, check_delivery, deliver, estimate_fields, picture_products, spot_to_cut
from .plan import CuePlan, finish_cues, load_labelled_scenes, plan_cues, planner_accuracy
from .planner_eval import SCREENPLAYS_ENV, evaluate_planner
from .relevance import score_relevance
from .timeline import CueTiming, assemble_score, cue_timings, write_players

__all__ = ["CUE_SHEET_COLUMNS", "ScoringResult", "demo_cut", "demo_script", "labelled_screenplays", "plan_screenplay",
           "planner_report", "read_screenplay", "run", "score"]

#: The cue sheet's columns (the first nine are the contract).
CUE_SHEET_COLUMNS = ["scene", "heading", "start_s", "duration_s", "mood", "intensity", "bpm", "prompt", "file",
                     "model", "seed", "cue_s", "end_s", "fade_in_s", "fade_out_s", "kind", "instruments", "genre",
                     "key", "direction", "planner", "planner_confidence", "lufs", "cue", "timing", "tc_in", "tc_out",
                     "frames", "fps", "hits_s"]


def demo_script() -> Path:
    """The bundled demo screenplay (six scenes covering the study's five scenario moods)."""
    return Path(str(resources.files("echoscript_utils").joinpath("data/demo_screenplay.fountain")))


@dataclass
class ScoringResult:
    screenplay: Screenplay
    cues: list[CuePlan]
    timings: list[CueTiming]
    cue_sheet: pd.DataFrame  # one row per model × seed × spotted cue
    scenes: pd.DataFrame  # one row per scene, with its plan
    relevance: pd.DataFrame  # one row per model × seed
    plan: dict[str, str]  # {label: model reference}
    scores: dict[str, Path]  # {"<label>_s<seed>": score wav}
    out_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    adherence: pd.DataFrame = field(default_factory=pd.DataFrame)  # model, cue, metric, value (adherence.csv)
    spotting: Spotting | None = None  # the cut, the scene match and the spotted cues (None: page-count estimate)

    @property
    def score_path(self) -> Path:
        return self.out_dir / "score.wav"

    def players(self, *, seed: int | None = None) -> pd.DataFrame:
        """One row per scored scene (``scene`` label) plus a last ``full score`` row, one column of file paths
        per model (first seed by default): the table ``notebook.audio_grid`` shows side by side."""
        d = self.cue_sheet
        seed = int(d["seed"].min()) if seed is None else seed
        d = d[d["seed"] == seed]
        wide = (d.assign(path=[str(self.out_dir / f) for f in d["file"]],
                         label=[f"{sc} · {h} ({m}, {i:.2f})" for sc, h, m, i in
                                zip(d["scene"], d["heading"], d["mood"], d["intensity"])])
                .pivot(index="label", columns="model", values="path"))
        order = list(dict.fromkeys(f"{sc} · {h} ({m}, {i:.2f})" for sc, h, m, i in
                                   zip(d["scene"], d["heading"], d["mood"], d["intensity"])))
        wide = wide.reindex(order)[[m for m in self.plan if m in wide.columns]]
        full = {m: str(self.out_dir / m / f"score_s{seed}.wav") for m in wide.columns}
        wide.loc["full score"] = full
        return wide.reset_index().rename(columns={"label": "scene"})


def read_screenplay(cfg, script: str | os.PathLike | None = None) -> Screenplay:
    """Parse ``script`` (default ``scoring.script``, else the demo) with the run's screen-time estimate."""
    s = cfg.scoring
    return read_script(script or s.script or demo_script(), seconds_per_page=s.seconds_per_page,
                       words_per_minute=s.words_per_minute, min_scene_s=s.min_scene_s,
                       latin_only=_planner(cfg) == "offline")


def _planner(cfg) -> str:
    """``scoring.planner`` resolved: ``local`` as it is, ``auto`` to ``openai`` or ``offline`` like the prompts."""
    return cfg.scoring.planner if cfg.scoring.planner == "local" else resolve_provider(cfg.scoring.planner)


def plan_screenplay(cfg, screenplay: Screenplay, *, progress: bool = True) -> list[CuePlan]:
    """Plan every scene's cue with ``scoring.planner`` and apply ``scoring.spotting``."""

    s, p = cfg.scoring, cfg.annotation.prompts
    planner = _planner(cfg)
    if planner == "local":
        cues = local_plan(screenplay.scenes, model=s.local_model, cache_dir=cfg.paths.cache,
                          device=resolve_device(cfg.run.device), seed=cfg.seed, progress=progress)
        return finish_cues(cues, screenplay.scenes, spotting=s.spotting, min_intensity=s.spot_min_intensity)
    llm = {"model": s.llm_model or p.model, "temperature": s.llm_temperature, "seed": cfg.seed,
           "cache_dir": cfg.paths.cache, "base_url": p.base_url, "timeout_s": p.timeout_s,
           "max_retries": p.max_retries, "backoff_s": p.backoff_s, "batch_size": s.llm_batch_size}
    return plan_cues(screenplay.scenes, planner=planner, spotting=s.spotting, min_intensity=s.spot_min_intensity,
                     llm=llm, progress=progress)


def _relevance(cfg, sheet: pd.DataFrame, scenes_by_index, out_dir: Path, *, progress: bool,
               per_cue: list[dict[str, Any]] | None = None) -> pd.DataFrame:
    """CLAP relevance per model × seed; with ``per_cue``, also appends each cue's ``clap_own`` and
    ``clap_margin`` as adherence rows (``model, cue, metric, value``)."""

    cols = ["model", "seed", "n", "own", "own_ci_low", "own_ci_high", "other", "other_ci_low", "other_ci_high",
            "margin", "margin_ci_low", "margin_ci_high", "top1", "chance_top1", "confidence", "clap_model"]
    if not cfg.scoring.relevance or sheet["scene"].nunique() < 2:
        return pd.DataFrame(columns=cols)

    model = cfg.scoring.clap_model or cfg.evaluation.clap_model or cfg.alignment.clap_model
    try:
        embedder = get_embedder("clap", {"model": model, "cache_dir": cfg.paths.cache,
                                         "device": resolve_device(cfg.run.device), "seed": cfg.seed})
    except DependencyError as exc:
        print(f"CLAP relevance skipped: {exc}")
        return pd.DataFrame(columns=cols)
    rows = []
    for (label, seed), d in sheet.groupby(["model", "seed"], sort=False):
        d = d.sort_values("scene")
        summary, sim = score_relevance([str(out_dir / f) for f in d["file"]],
                                        [scenes_by_index[i].text for i in d["scene"]], embedder=embedder,
                                        cache_dir=cfg.paths.cache, n_boot=max(cfg.scoring.bootstrap, 1),
                                        confidence=cfg.scoring.confidence, seed=cfg.seed, progress=progress)
        rows.append({"model": label, "seed": int(seed), **summary, "clap_model": embedder.identity})
        if per_cue is not None:
            n = len(d)
            for i, f in enumerate(d["file"]):
                own = float(sim[i, i])
                other = float((sim[i].sum() - own) / (n - 1))
                per_cue += [{"model": label, "cue": Path(f).stem, "metric": "clap_own", "value": own},
                            {"model": label, "cue": Path(f).stem, "metric": "clap_margin", "value": own - other}]
    return pd.DataFrame(rows)[cols]


def score(script: str | os.PathLike | None, cfg, *, output_dir: str | os.PathLike, models: list[str] | None = None,
          edit: str | os.PathLike | None = None, fps: float | None = None, progress: bool = True) -> ScoringResult:
    """Score a screenplay: parse, plan, generate every spotted cue per model and seed, assemble the timelines,
    write the cue sheet, figure, players, relevance and metrics under ``output_dir``.

    Args:
        script: a ``.fountain`` / ``.fdx`` file; ``None`` → ``scoring.script`` or the demo screenplay.
        cfg: the run's :class:`~echoscript_utils.config.Config` (sections ``scoring``, ``generation`` for the
            sampling settings, ``curation`` for the output format and loudness).
        output_dir: the products' folder (created only after the script parsed).
        models: model references (as generation takes them); ``None`` → :func:`.generate.scoring_models`.
        edit: the picture cut (``None`` → ``scoring.edit``; without one, screen time is the page-count estimate);
            see :mod:`.picture`. With a cut, ``output_dir`` also gets the spotting notes, the music cue sheet and
            the timeline (``score.otio`` / ``.edl`` / ``.xml``).
        fps: the cut's frame rate (``None`` → ``scoring.fps``; EDLs and CSVs default to 24).
    """

    t_start = time.perf_counter()
    sp = read_screenplay(cfg, script)  # raises before anything is written
    cues = plan_screenplay(cfg, sp, progress=progress)
    s = cfg.scoring
    edit = _edit(edit, s.edit, script or s.script)
    spotting = spot_to_cut(cfg, sp, cues, edit, fps=fps) if edit else None  # raises before anything is written
    if spotting is not None:
        check_delivery(cfg)
    if spotting is not None:
        timings, fields, total_s = spotting.timings, spotting.fields, spotting.total_s
    else:
        timings = cue_timings(sp.scenes, {c.scene for c in cues if c.spotted}, crossfade_s=s.crossfade_s,
                              max_cue_s=s.max_cue_s)
        fields, total_s = estimate_fields(timings, reel_minutes=s.reel_minutes), sp.duration_s
    models_plan = scoring_models(cfg, models)
    melody_ref = (s.leitmotif_model or cfg.generation.melody_model) if s.leitmotif else None
    if s.leitmotif and not melody_ref:
        raise ConfigError("scoring.leitmotif is on but no melody model is set; set scoring.leitmotif_model or "
                          "generation.melody_model (e.g. facebook/musicgen-melody)")
    script_path = Path(script or s.script or demo_script())
    script_hash = file_hash(script_path)
    final_dir = Path(output_dir)
    step = {"name": "preparing the output folder"}
    try:
        # Everything is written into a staging folder beside output_dir and swapped in at the end: a failure
        # leaves output_dir as it was (a complete earlier product set, or nothing). Earlier cues are reused.
        with staged_dir(final_dir, reuse=_reusable, owned=_is_score_folder) as out_dir:
            step["name"] = "generating the cues"
            jobs = _cue_jobs(cues, timings, fields)
            models_plan, rows, leitmotif = _generate(cfg, models_plan, melody_ref, jobs, out_dir=out_dir,
                                                     script_hash=script_hash, progress=progress, step=step)
            step["name"] = "writing the cue sheet"
            plan_df = pd.DataFrame([c.as_row() for c in cues])
            files, sheet = _cue_sheet(rows, jobs, plan_df)
            step["name"] = "assembling the score"
            scores, assembled = _assemble(cfg, sheet, timings, out_dir, total_s=total_s, progress=progress)
            step["name"] = "writing the scene table and timeline"
            scenes_df = _write_sheets(sp, sheet, plan_df, out_dir)
            picture = {}
            if spotting is not None:
                step["name"] = "writing the spotting notes, music cue sheet and timeline"
                picture = picture_products(spotting, out_dir, title=sp.title, cues=cues, sheet=sheet)
                step["name"] = "delivering (ducking, loudness, Broadcast WAV stems, preview.mp4)"
                picture["delivery"] = deliver(cfg, spotting, sheet, out_dir, sp, progress=progress)
            step["name"] = "measuring CLAP relevance"
            text_rows: list[dict[str, Any]] = []
            relevance = _relevance(cfg, sheet, {sc.index: sc for sc in sp.scenes}, out_dir, progress=progress,
                                   per_cue=text_rows)
            write_table(relevance, out_dir, "relevance")
            step["name"] = "measuring adherence to the cue briefs"
            t_adh = time.perf_counter()
            adherence = _adherence(sheet, out_dir, text_rows, theme=s.leitmotif_midi, progress=progress,
                                   num_workers=cpu_workers(cfg))
            step["name"] = "writing the metrics"
            metrics = {
                "script": script_path.name, "script_hash": script_hash, "format": sp.format, "title": sp.title,
                "n_scenes": len(sp.scenes), "n_spotted": len(timings), "screen_time_s": round(total_s, 6),
                "timing": "cut" if spotting is not None else "estimate", **_cut_metrics(spotting, picture),
                "pages": round(sum(x.pages for x in sp.scenes), 3), "planner": cues[0].planner if cues else None,
                "models": models_plan, "seeds": list(s.seeds), "n_cues": int(len(sheet)),
                "n_generated": int(files["generated"].sum()) if len(files) else 0,
                "moods": plan_df["mood"].value_counts().to_dict(), "kinds": plan_df["kind"].value_counts().to_dict(),
                "planner_no_evidence": int(sum(1 for c in cues if c.confidence == 0)),
                "scores": {k: {**v, "file": os.path.relpath(scores[k], out_dir)} for k, v in assembled.items()},
                "relevance": relevance.drop(columns=["clap_model"]).to_dict("records") if len(relevance) else [],
                "leitmotif": leitmotif, "adherence": adherence_means(adherence),
                "adherence_seconds": round(time.perf_counter() - t_adh, 2),
                "seconds": round(time.perf_counter() - t_start, 2),
            }
            write_metrics(out_dir, metrics)
            write_json(out_dir / "screenplay.json", {"title_page": sp.title_page, "source": script_path.name})
            step["name"] = "swapping the products in"
    except EchoScriptError as exc:
        raise type(exc)(f"{script_path.name}: scoring failed while {_where(step)} ({exc}); {final_dir} was left "
                        f"as it was") from None
    except (RuntimeError, ValueError, OSError, KeyError, IndexError, MemoryError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise StageError(f"{script_path.name}: scoring failed while {_where(step)} ({type(exc).__name__}: "
                         f"{reason}); {final_dir} was left as it was") from exc
    out_dir = final_dir
    scores = {k: final_dir / Path(v).relative_to(v.parents[1]) for k, v in scores.items()}
    return ScoringResult(screenplay=sp, cues=cues, timings=timings, cue_sheet=sheet, scenes=scenes_df,
                         relevance=relevance, plan=models_plan, scores=scores, out_dir=out_dir, metrics=metrics,
                         adherence=adherence, spotting=spotting)


def _adherence(sheet: pd.DataFrame, out_dir: Path, text_rows: list[dict[str, Any]], *, theme=None,
               progress: bool, num_workers: int = 1) -> pd.DataFrame:
    """Every cue scored against the brief its sidecar records (``theme``: the leitmotif MIDI when it is not the
    generated one beside the model folders), plus its CLAP text rows; writes ``adherence.csv``."""
    from ..adherence import TABLE_COLUMNS, brief_from_sidecar, score_folder, write_adherence
    from ..artifacts import read_json

    if len(sheet):
        wavs = [out_dir / f for f in sheet["file"]]
        briefs = {w: brief_from_sidecar(read_json(w.with_suffix(".json")), folder=w.parent, midi=theme)
                  for w in wavs} if theme else None
        table = score_folder(out_dir, files=wavs, briefs=briefs, progress=progress, num_workers=num_workers)
    else:
        table = pd.DataFrame(columns=TABLE_COLUMNS)
    if text_rows:
        table = pd.concat([table, pd.DataFrame(text_rows, columns=TABLE_COLUMNS)], ignore_index=True)
    write_adherence(table, out_dir / "adherence.csv")
    return table


def _cut_metrics(spotting: Spotting | None, picture: dict[str, str]) -> dict[str, Any]:
    """What metrics.json records of the cut: its file, rate and length, the scene match and the hit errors."""
    if spotting is None:
        return {}
    cut, errs = spotting.cut, [abs(h["error_ms"]) for c in spotting.cues for h in c.hits]
    return {"cut": {"file": cut.path.name, "format": cut.format, "fps": cut.fps, "frames": cut.n_frames,
                    "tc_in": cut.tc(0), "tc_out": cut.tc(cut.n_frames),
                    "matched_by": {str(m.scene): m.matched_by for m in spotting.matches},
                    "scenes_not_in_cut": [m.scene for m in spotting.matches if m.matched_by is None],
                    "events_without_scene": [e.name for e in spotting.unmatched_events]},
            "hits": {"n": len(errs), "max_error_ms": round(max(errs), 2) if errs else None,
                     "mean_error_ms": round(sum(errs) / len(errs), 2) if errs else None},
            "products": picture}


def demo_cut() -> Path:
    """The bundled EDL of the demo screenplay's cut (24 fps, from 01:00:00:00, three hit markers)."""
    return Path(str(resources.files("echoscript_utils").joinpath("data/demo_cut.edl")))


def _edit(given, configured, script) -> Path | None:
    """The cut to spot against: ``given`` (the caller's), else ``scoring.edit``. ``demo`` is the bundled cut of the
    demo screenplay: asked for by the caller with another script it is an error; set in the parameters it
    applies to the demo screenplay only (other scripts keep the page-count estimate)."""
    edit = given or configured
    if edit is None or str(edit) != "demo":
        return edit
    if script is None or Path(script).resolve() == demo_script().resolve():
        return demo_cut()
    if given:
        raise ConfigError(f"--edit demo is the cut of the demo screenplay, not of {Path(script).name}; pass the "
                          f"cut of this script (.otio, .edl, .xml, .fcpxml or a spotting .csv)")
    return None


def _reusable(rel: Path) -> bool:
    """Earlier cues (``<model>/cue*.wav`` and their sidecars) are reused when their content key still matches."""
    return len(rel.parts) == 2 and rel.name.startswith("cue") and rel.suffix in (".wav", ".json")


def _is_score_folder(folder: Path) -> bool:
    """An earlier score's folder (which a rerun may replace), not someone's other files."""
    return (folder / "cue_sheet.csv").is_file() or (folder / "metrics.json").is_file()


def _where(step: dict[str, Any]) -> str:
    return step["name"] + (f" (scene {step['scene']}, {step['model']})" if step.get("scene") is not None else "")


def _cue_jobs(cues: list[CuePlan], timings: list[CueTiming],
              fields: dict[int, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One generation job per spotted cue: its plan, its place on the timeline and its spotting fields (cue
    number, timing, frames, fps, hits_s …; they go into the cue sheet and each cue's sidecar)."""
    by_scene = {c.scene: c for c in cues}
    jobs = []
    for t in timings:
        c = by_scene[t.scene]
        jobs.append({"scene": t.scene, "heading": c.heading, "prompt": c.prompt, "mood": c.mood,
                     "intensity": c.intensity, "bpm": c.bpm, "instruments": c.instruments, "genre": c.genre,
                     "key": c.key, "direction": c.direction, "planner": c.planner,
                     "planner_confidence": c.confidence, **t.as_dict(), **(fields or {}).get(t.scene, {})})
    return jobs


def _generate(cfg, models_plan: dict[str, str], melody_ref: str | None, jobs: list[dict[str, Any]], *,
              out_dir: Path, script_hash: str, progress: bool,
              step: dict[str, Any] | None = None) -> tuple[dict[str, str], list[dict[str, Any]], Any]:
    """Every job with every model and seed, then with the leitmotif model when it is on.

    Returns ``(models_plan, rows, leitmotif)``: the plan with the leitmotif label added when it ran, one row per
    written cue, and what :func:`.generate.leitmotif_chroma` said about the theme (``None`` without one).
    """
    s = cfg.scoring
    theme = leitmotif = None
    if s.leitmotif and jobs:
        theme, leitmotif = leitmotif_chroma(cfg, out_dir)
    rows = []
    step = step if step is not None else {}
    for label, ref in models_plan.items():
        step["model"] = label
        rows += generate_cues(cfg, label, ref, jobs, out_dir=out_dir, seeds=list(s.seeds), script=script_hash,
                              progress=progress, step=step)
    if s.leitmotif:
        models_plan = {**models_plan, LEITMOTIF_LABEL: melody_ref}
        step["model"] = LEITMOTIF_LABEL
        rows += generate_cues(cfg, LEITMOTIF_LABEL, melody_ref, jobs, out_dir=out_dir, seeds=list(s.seeds),
                              theme=theme, leitmotif=leitmotif, script=script_hash, progress=progress, step=step)
    step["scene"] = None
    return models_plan, rows, leitmotif


def _cue_sheet(rows: list[dict[str, Any]], jobs: list[dict[str, Any]],
               plan_df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(files, sheet)``: the generated files, and the cue sheet (:data:`CUE_SHEET_COLUMNS`, one row per
    model × seed × cue; empty when nothing was spotted)."""
    if not rows:  # nothing spotted: an empty cue sheet and a silent timeline
        return pd.DataFrame(columns=["generated"]), pd.DataFrame(columns=CUE_SHEET_COLUMNS)
    files = pd.DataFrame(rows)
    job_df = pd.DataFrame(jobs).drop(columns=["prompt"])
    sheet = files.merge(plan_df[["scene", "prompt", "kind"]], on="scene").merge(job_df, on="scene")
    sheet["instruments"] = sheet["instruments"].map(lambda v: ";".join(v) if isinstance(v, list) else v)
    if "hits_s" in sheet:
        sheet["hits_s"] = sheet["hits_s"].map(lambda v: ";".join(f"{x:g}" for x in v) if isinstance(v, list) else v)
    order = {m: k for k, m in enumerate(dict.fromkeys(sheet["model"]))}  # each model's cues in time order
    sheet = sheet.sort_values(["model", "seed", "start_s"], key=lambda col: col.map(order) if col.name == "model"
                              else col, kind="stable").reset_index(drop=True)
    return files, sheet[[c for c in CUE_SHEET_COLUMNS if c in sheet.columns]]


def _assemble(cfg, sheet: pd.DataFrame, timings: list[CueTiming], out_dir: Path, *, total_s: float,
              progress: bool) -> tuple[dict[str, Path], dict[str, Any]]:
    """One score per model × seed on the screen-time timeline, and ``score.wav`` (the first model's first seed,
    or a silent timeline when nothing was spotted). Returns ``({"<label>_s<seed>": path}, {same: info})``."""
    sr, ch = cfg.curation.sample_rate, (1 if cfg.curation.channels == "mono" else 2)
    scores: dict[str, Path] = {}
    assembled: dict[str, Any] = {}
    tmap = {t.scene: t for t in timings}
    for (label, seed), d in sheet.groupby(["model", "seed"], sort=False):
        path = out_dir / label / f"score_s{seed}.wav"
        info = assemble_score([(tmap[int(r.scene)], out_dir / r.file) for r in d.itertuples()], path,
                              total_s=total_s, sr=sr, channels=ch, peak_db=cfg.curation.peak_limit_db,
                              progress=progress)
        scores[f"{label}_s{seed}"] = path
        assembled[f"{label}_s{seed}"] = info
    if scores:
        first = next(iter(scores.values()))
        with atomic_path(out_dir / "score.wav", suffix=".wav") as tmp:
            shutil.copyfile(first, tmp)
    else:  # nothing spotted: a silent timeline
        assemble_score([], out_dir / "score.wav", total_s=total_s, sr=sr, channels=ch)
    return scores, assembled


def _write_sheets(sp: Screenplay, sheet: pd.DataFrame, plan_df: pd.DataFrame, out_dir: Path) -> pd.DataFrame:
    """``cue_sheet`` and ``scenes`` tables, the timeline figure and ``players.html``; returns the scenes table."""
    scenes_df = scenes_table(sp).merge(plan_df.drop(columns=["heading"]), on="scene")
    write_table(sheet, out_dir, "cue_sheet", caption=f"Cue sheet of {sp.title}")
    write_table(scenes_df, out_dir, "scenes", caption=f"Scenes of {sp.title}")
    ax = splots.timeline(scenes_df, estimated=bool(len(sheet)) and (sheet["timing"] == "estimate").all())
    ax.set_title(f"{sp.title}: cues along screen time")
    save_figure(ax, "timeline", out_dir)
    write_players(out_dir / "players.html",
                  [{"label": "score.wav", "file": "score.wav"}]
                  + [{"label": f"{r.model} · seed {r.seed} · scene {r.scene} ({r.mood}, {r.intensity:.2f})",
                      "file": r.file} for r in sheet.itertuples()], title=sp.title)
    return scenes_df


#: The shared screenplay corpus, where a checkout of this repository has it beside itself (``../shared/screenplays``).
BESIDE_CHECKOUT = Path(__file__).resolve().parents[3] / "shared" / "screenplays"


def labelled_screenplays(cfg) -> Path | None:
    """Where the labelled real screenplays are: ``scoring.labelled_screenplays``, else ``$ECHOSCRIPT_SCREENPLAYS``,
    else the shared corpus beside the checkout (:data:`BESIDE_CHECKOUT`); ``None`` when none of them is a folder."""
    folder = cfg.scoring.labelled_screenplays or os.environ.get(SCREENPLAYS_ENV)
    if folder:
        return Path(folder) if Path(folder).is_dir() else None
    return BESIDE_CHECKOUT if BESIDE_CHECKOUT.is_dir() else None


def planner_report(cfg) -> dict[str, Any]:
    """The offline planner measured on the independently labelled real scenes of the test split (when their scripts
    are at hand, see :func:`labelled_screenplays`), with the cross-validated figure recorded when it was fitted and
    its accuracy on the project's own hand-written scenes."""
    from .scene_model import load_scene_model

    out: dict[str, Any] = {"fit": load_scene_model().spec["fit"]}
    folder = labelled_screenplays(cfg)
    if folder is not None:
        scores, _ = evaluate_planner(folder, split="test", seed=cfg.seed)
        out["real_test"] = {k: v for k, v in scores.items() if k != "confusion"}
        out["real_test"]["confusion"] = scores["confusion"]
    own = load_labelled_scenes()
    acc = planner_accuracy(own[own["split"] == "test"], seed=cfg.seed)
    out["own_scenes_test"] = {k: v for k, v in acc.items() if k != "confusion"}
    return out


def run(cfg, *, progress: bool = True) -> ScoringResult:
    """The 08_scoring stage: ``scoring.script`` (or the demo screenplay) scored into ``<run>/08_scoring/``; its
    ``metrics.json`` also records the offline planner's accuracy (:func:`planner_report`)."""

    result = score(None, cfg, output_dir=cfg.paths.scoring, progress=progress)
    result.metrics["planner_accuracy"] = planner_report(cfg)
    write_metrics(cfg.paths.scoring, result.metrics)
    return result
