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

from .analysis import ListeningResults, analyze
from .pack import Pack, build_pack, collect_generated, load_pack
from .report import SIMULATED_LABEL, make_figures, make_tables, metrics, summary_text, write_outputs
from .simulate import PAPER_MEANS, simulate_study
from .stage import analyze_folder, build_pack_from_config, prepare_study, run
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
