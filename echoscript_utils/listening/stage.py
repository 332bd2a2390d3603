"""Stage 07 in code: the pack from the run's settings, the study to analyse, its analysis, and the stage entry
:func:`run`; :mod:`echoscript_utils.listening` describes the parts."""

from __future__ import annotations

from pathlib import Path

from ..artifacts import write_metrics
from ..errors import ConfigError
from .analysis import ListeningResults, analyze
from .pack import Pack, build_pack
from .report import metrics, write_outputs
from .simulate import simulate_study
from .study import validate_study

__all__ = ["analyze_folder", "build_pack_from_config", "prepare_study", "run"]


def build_pack_from_config(cfg, *, progress: bool = True) -> Pack:
    """:func:`build_pack` with the run's settings: ``<run>/05_generation`` → ``<run>/07_listening``."""
    ls = cfg.listening
    return build_pack(cfg.paths.generation, cfg.paths.listening, baseline=ls.baseline_label,
                      system=ls.system_label, pairs_per_scenario=ls.pairs_per_scenario, clip_s=ls.clip_s,
                      target_lufs=ls.target_lufs, peak_db=cfg.curation.peak_limit_db,
                      policy=cfg.curation.loudness_policy, max_limiting_db=cfg.curation.max_limiting_db,
                      n_participants=ls.simulated_participants, seed=cfg.seed,
                      progress=progress)


def prepare_study(cfg, pack: Pack) -> Path:
    """The study folder to analyse: ``listening.study_dir`` when set, else (``listening.simulate``) a simulated
    study written to ``<run>/07_listening/simulated_study`` from the pack's key."""

    ls = cfg.listening
    if ls.study_dir is not None:
        return Path(ls.study_dir)
    if not ls.simulate:
        raise ConfigError("listening.study_dir is not set and listening.simulate is false: point study_dir at the "
                          "folder of returned responses (responses.csv, preferences.csv, demographics.csv, key.csv)")
    return simulate_study(pack.key_path, cfg.paths.listening / "simulated_study",
                          n_participants=ls.simulated_participants, seed=cfg.seed, effect=ls.simulated_effect,
                          baseline=ls.baseline_label)


def analyze_folder(study_dir, out_dir, *, baseline: str | None = None, confidence: float = 0.95,
                   figures_dir=None, tables_dir=None) -> ListeningResults:
    """Validate ``study_dir`` (nothing is written if it is bad), analyse it and write every product."""
    study = validate_study(study_dir)
    results = analyze(study, baseline=baseline, confidence=confidence)
    write_outputs(results, out_dir, figures_dir=figures_dir, tables_dir=tables_dir)
    return results


def run(cfg, *, progress: bool = True) -> ListeningResults:
    """Stage 07 in one call: the pack, the study (returned or simulated), its analysis with tables and figures,
    and ``07_listening/metrics.json``."""
    pack = build_pack_from_config(cfg, progress=progress)
    study = validate_study(prepare_study(cfg, pack))
    results = analyze(study, baseline=cfg.listening.baseline_label, confidence=cfg.listening.confidence)
    write_outputs(results, cfg.paths.listening / "analysis", figures_dir=cfg.paths.figures,
                  tables_dir=cfg.paths.tables)
    write_metrics(cfg.paths.listening, metrics(results, pack=pack))
    return results
