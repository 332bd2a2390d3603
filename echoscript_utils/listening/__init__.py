"""The listening test: a blinded pack, a webMUSHRA experiment, validated responses, statistics and figures.

>>> pack = build_pack("outputs/demo/05_generation", "outputs/demo/07_listening")      # doctest: +SKIP
>>> study_dir = simulate_study(pack.key_path, "outputs/demo/07_listening/simulated_study")  # doctest: +SKIP
>>> results = analyze(validate_study(study_dir))                                        # doctest: +SKIP
>>> write_outputs(results, "outputs/demo/07_listening/analysis")                       # doctest: +SKIP

Modules: :mod:`.pack` (blinded pack), :mod:`.webmushra` (experiment config and results in), :mod:`.serve` (a pilot server), :mod:`.study` (study folder,
validation), :mod:`.analysis` (statistics over a study; the maths is :mod:`echoscript_utils.stats`), :mod:`.simulate` (a labelled simulated study), :mod:`.report`
(tables, figures, metrics). The command line
``echoscript listening pack|import|validate|analyze|simulate|serve`` lives in :mod:`echoscript_utils.cli`.
"""

from __future__ import annotations

from pathlib import Path

from ..artifacts import write_metrics
from ..errors import ConfigError
from .analysis import ListeningResults, analyze
from .pack import Pack, build_pack, collect_generated, load_pack
from .report import SIMULATED_LABEL, make_figures, make_tables, metrics, summary_text, write_outputs
from .simulate import PAPER_MEANS, simulate_study
from .study import (
    QUESTIONS,
    SIMULATED_MARKER,
    Study,
    StudyProblem,
    StudyValidationError,
    default_questions,
    load_study,
    validate_study,
)
from .webmushra import (
    WebmushraImport,
    import_webmushra,
    read_webmushra,
    webmushra_config,
    webmushra_yaml,
    write_webmushra,
)

__all__ = [
    "PAPER_MEANS",
    "QUESTIONS",
    "SIMULATED_LABEL",
    "SIMULATED_MARKER",
    "ListeningResults",
    "Pack",
    "Study",
    "StudyProblem",
    "StudyValidationError",
    "WebmushraImport",
    "analyze",
    "analyze_folder",
    "build_pack",
    "build_pack_from_config",
    "collect_generated",
    "default_questions",
    "import_webmushra",
    "load_pack",
    "load_study",
    "make_figures",
    "make_tables",
    "metrics",
    "prepare_study",
    "read_webmushra",
    "run",
    "simulate_study",
    "summary_text",
    "validate_study",
    "webmushra_config",
    "webmushra_yaml",
    "write_outputs",
    "write_webmushra",
]


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
