"""The listening test: a blinded pack, a webMUSHRA experiment, validated responses, statistics and figures.

>>> pack = build_pack("outputs/demo/05_generation", "outputs/demo/07_listening")      # doctest: +SKIP
>>> study_dir = simulate_study(pack.key_path, "outputs/demo/07_listening/simulated_study")  # doctest: +SKIP
>>> results = analyze(validate_study(study_dir))                                        # doctest: +SKIP
>>> write_outputs(results, "outputs/demo/07_listening/analysis")                       # doctest: +SKIP

Modules: :mod:`.pack` (blinded pack), :mod:`.webmushra` (experiment config), :mod:`.study` (study folder,
validation), :mod:`.stats` (analysis), :mod:`.simulate` (a labelled simulated study), :mod:`.report`
(tables, figures, metrics). The command line is
``echoscript listening pack|import|validate|analyze|simulate``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .pack import Pack, build_pack, collect_generated, load_pack
from .report import SIMULATED_LABEL, make_figures, make_tables, metrics, summary_text, write_outputs
from .simulate import PAPER_MEANS, simulate_study
from .stats import ListeningResults, analyze
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
from .webmushra import import_webmushra, webmushra_config, write_webmushra

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
    "analyze",
    "analyze_folder",
    "build_pack",
    "build_pack_from_config",
    "collect_generated",
    "default_questions",
    "import_webmushra",
    "listening_cli",
    "load_pack",
    "load_study",
    "make_figures",
    "make_tables",
    "metrics",
    "prepare_study",
    "simulate_study",
    "summary_text",
    "validate_study",
    "webmushra_config",
    "write_outputs",
    "write_webmushra",
]


def build_pack_from_config(cfg, *, progress: bool = True) -> Pack:
    """:func:`build_pack` with the run's settings: ``<run>/05_generation`` → ``<run>/07_listening``."""
    ls = cfg.listening
    return build_pack(cfg.paths.generation, cfg.paths.listening, baseline=ls.baseline_label,
                      system=ls.system_label, pairs_per_scenario=ls.pairs_per_scenario, clip_s=ls.clip_s,
                      target_lufs=ls.target_lufs, n_participants=ls.simulated_participants, seed=cfg.seed,
                      progress=progress)


def prepare_study(cfg, pack: Pack) -> Path:
    """The study folder to analyse: ``listening.study_dir`` when set, else (``listening.simulate``) a simulated
    study written to ``<run>/07_listening/simulated_study`` from the pack's key."""
    from ..errors import ConfigError

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


def _validate_or_list_problems(study_dir):
    """Validate a study folder; on failure print every problem (file, line, what) before the one-line error."""
    try:
        return validate_study(study_dir)
    except StudyValidationError as err:
        for p in err.problems:
            print(f"  {p}", file=sys.stderr)
        raise


def listening_cli(args) -> int:
    """``echoscript listening pack|import|validate|analyze|simulate`` (see ``cli._add_listening``)."""
    cmd = args.listening_command
    if cmd == "pack":
        from ..cli import _load

        cfg = _load(args)
        ls = cfg.listening
        pack = build_pack(args.generation, args.output, baseline=args.baseline, system=args.system,
                          pairs_per_scenario=args.pairs or ls.pairs_per_scenario,
                          clip_s=args.clip_s if args.clip_s is not None else ls.clip_s,
                          target_lufs=args.target_lufs if args.target_lufs is not None else ls.target_lufs,
                          n_participants=args.participants or ls.simulated_participants,
                          seed=args.seed if args.seed is not None else cfg.seed, redo=args.redo)
        m = pack.metrics()
        print(f"pack: {pack.pack_dir} ({m['clips']} clips, {m['scenarios']} scenarios, {m['duration_s']} s, "
              f"{m['sample_rate']} Hz, loudness spread {m['loudness_spread_lu']} LU)"
              f"{' [up to date]' if pack.cached else ''}")
        print(f"answer key (keep it from listeners): {pack.key_path}")
        for note in pack.notes:
            print(f"note: {note}")
        return 0
    if cmd == "validate":
        study = _validate_or_list_problems(args.study)
        s = study.summary()
        print(f"ok: {args.study}: {s['participants']} participants, {s['scenarios']} scenarios, {s['clips']} clips, "
              f"{s['ratings']} ratings, {s['preferences']} preferences"
              f"{' (' + SIMULATED_LABEL + ')' if s['simulated'] else ''}")
        return 0
    if cmd == "analyze":
        study = _validate_or_list_problems(args.study)
        results = analyze(study, baseline=args.baseline, confidence=args.confidence)
        write_outputs(results, args.output)
        print(summary_text(results))
        print(f"written: {args.output}")
        return 0
    if cmd == "import":
        out = import_webmushra(args.results, args.key, args.output)
        study = validate_study(out)
        s = study.summary()
        print(f"study folder: {out} ({s['participants']} participants, {s['ratings']} ratings, "
              f"{s['preferences']} preferences); analyse it with: echoscript listening analyze --study {out} "
              f"--output DIR")
        return 0
    if cmd == "simulate":
        out = simulate_study(args.key, args.output, n_participants=args.participants, seed=args.seed,
                             effect=args.effect, baseline=args.baseline)
        print(f"{SIMULATED_LABEL}: {out}")
        return 0
    raise SystemExit(f"unknown listening command {cmd!r}")  # pragma: no cover
