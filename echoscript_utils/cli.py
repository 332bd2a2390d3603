"""Command line: ``echoscript <command>`` (also ``python -m echoscript_utils <command>``).

Each command lives in its own ``_add_<command>`` function below and calls into the package lazily, so that
``echoscript --help`` stays fast. Every :class:`~echoscript_utils.errors.EchoScriptError` becomes one line on
stderr (``error: ...``) and exit code 2. ``listening import`` exits 3 when it wrote the study folder but set
participants aside (each listed with file, line and reason in the folder's ``import_report.csv``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from . import __version__
from .errors import EchoScriptError, InputError

#: ``echoscript listening import``: the study folder was written, but some participants were set aside.
EXIT_PARTIAL_IMPORT = 3


def _params_arg(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    p.add_argument("--params", default=None, required=required,
                   help="parameter file (YAML); defaults to the built-in demo settings")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter, e.g. --set training.epochs=2 (repeatable)")


def _load(args) -> object:
    from .config import load_config, parse_override

    overrides = dict(parse_override(o) for o in getattr(args, "overrides", []) or [])
    cfg = load_config(getattr(args, "params", None), overrides, output_root=getattr(args, "output_root", None))
    if cfg.run.torch_threads:  # every command, as the notebooks do (tiny models run fastest on one thread)
        import torch

        torch.set_num_threads(cfg.run.torch_threads)
    return cfg


# ------------------------------------------------------------------------------------------------ run
def _add_run(sub) -> None:
    p = sub.add_parser("run", help="execute the numbered notebooks in order with papermill")
    p.add_argument("params", help="parameter file, e.g. params/demo.yaml")
    p.add_argument("--stages", nargs="+", default=None, metavar="STAGE",
                   help="only these stages (numbers or names, e.g. 01 02 or curation)")
    p.add_argument("--from", dest="from_stage", default=None, metavar="STAGE",
                   help="start at this stage (earlier ones must be complete)")
    p.add_argument("--redo", action="store_true", help="rerun stages even when their products are complete")
    p.add_argument("--output-root", default=None, help="put the run folder here instead of run.output_root")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one parameter (repeatable)")

    def run(args) -> int:
        from .config import parse_override
        from .pipeline import run_workbook

        overrides = dict(parse_override(o) for o in args.overrides)
        run_workbook(args.params, stages=args.stages, from_stage=args.from_stage, redo=args.redo,
                     output_root=args.output_root, overrides=overrides)
        return 0

    p.set_defaults(func=run)


def _add_report(sub) -> None:
    p = sub.add_parser("report", help="(re)write outputs/<run>/report.html and the model and dataset cards")
    p.add_argument("params", help="parameter file of the run")
    p.add_argument("--output-root", default=None)

    def run(args) -> int:
        from .cards import write_cards
        from .config import load_config
        from .report import write_report

        cfg = load_config(args.params, output_root=args.output_root)
        write_cards(cfg)
        print(write_report(cfg))
        return 0

    p.set_defaults(func=run)


# -------------------------------------------------------------------------------------------- publish
def _add_publish(sub) -> None:
    p = sub.add_parser("publish", help="push a run's fine-tuned model and/or curated dataset to the hub, each with "
                                       "its card")
    p.add_argument("run", help="the run folder (outputs/<run>) or its parameter file (the cards are rewritten first)")
    p.add_argument("--model", default=None, metavar="OWNER/NAME", help="hub repo for 04_finetuning/final/")
    p.add_argument("--dataset", default=None, metavar="OWNER/NAME", help="hub dataset repo for 01_curation/exports/hf/")
    p.add_argument("--allow-demo", action="store_true",
                   help="push even a demo's model or data (tiny random model, random-weight dry run, demo corpus)")
    p.add_argument("--private", action="store_true", default=None, help="create new repos private")
    p.add_argument("--output-root", default=None, help="with a parameter file: where its run folder lives")

    def run(args) -> int:
        from .cards import publish

        publish(args.run, model_repo=args.model, dataset_repo=args.dataset, allow_demo=args.allow_demo,
                private=args.private, output_root=args.output_root)
        return 0

    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------ demo-data
def _add_demo_data(sub) -> None:
    p = sub.add_parser("demo-data", help="compose and render the labelled demo corpus")
    p.add_argument("--out", required=True, help="output folder (audio/ and labels.csv are written there)")
    p.add_argument("--n-tracks", type=int, default=12)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--min-duration", type=float, default=35.0, help="shortest track in seconds")
    p.add_argument("--max-duration", type=float, default=100.0, help="longest track in seconds")
    p.add_argument("--sample-rate", type=int, default=44100)

    def run(args) -> int:
        from pathlib import Path

        from .demo_corpus import build_corpus

        labels = build_corpus(args.out, n_tracks=args.n_tracks, seed=args.seed, min_duration_s=args.min_duration,
                              max_duration_s=args.max_duration, sr=args.sample_rate)
        print(f"{len(labels)} tracks ({labels['duration_s'].sum():.0f} s of audio) → "
              f"{Path(args.out) / 'labels.csv'}")
        return 0

    p.set_defaults(func=run)


# --------------------------------------------------------------------------------------------- curate
def _add_curate(sub) -> None:
    p = sub.add_parser("curate", help="folder of music → 30 s clips, features, metadata.jsonl, exports")
    p.add_argument("--input", required=True, help="folder of audio files (searched recursively)")
    p.add_argument("--output", required=True, help="folder for clips, metadata.jsonl, skipped.csv, exports/")
    p.add_argument("--labels", default=None, help="optional ground-truth labels CSV (one row per track)")
    _params_arg(p)

    def run(args) -> int:
        return _curate(args)

    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------------ fad
def _add_fad(sub) -> None:
    p = sub.add_parser("fad", help="Fréchet Audio Distance (and KAD) between two folders, with bootstrap intervals")
    p.add_argument("--reference", required=True, help="folder of reference audio")
    p.add_argument("--generated", required=True, help="folder of generated audio")
    p.add_argument("--embedding", default="musicnn", help="vggish, panns, clap, encodec or musicnn")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the interval (0: none)")
    _params_arg(p)

    def run(args) -> int:
        return _fad(args)

    p.set_defaults(func=run)


# ---------------------------------------------------------------------------------------------- score
def _add_score(sub) -> None:
    p = sub.add_parser("score", help="screenplay (Fountain or .fdx) → cue sheet, one cue per scene, score.wav")
    p.add_argument("script", help="a Fountain (.fountain) or Final Draft (.fdx) screenplay")
    p.add_argument("--output", required=True, help="folder for cue_sheet.csv, the cues, score.wav, timeline, ...")
    p.add_argument("--model", nargs="+", default=None, metavar="REF",
                   help="model reference(s) as generation takes them (hub id, folder, adapter, tiny-*); default: "
                        "the run's fine-tuned 04_finetuning/final when it exists, else generation.baseline_model")
    p.add_argument("--edit", default=None, metavar="CUT",
                   help="the picture cut to spot against (.otio, CMX 3600 .edl, FCP .xml, .fcpxml, or a spotting "
                        ".csv scene,start_tc,end_tc[,hits]); without it, screen time is estimated from page count")
    p.add_argument("--fps", type=float, default=None,
                   help="the cut's frame rate (23.976, 24, 25, 29.97); EDLs and CSVs carry none (default 24)")
    _params_arg(p)

    def run(args) -> int:
        return _score(args)

    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------ adherence
def _add_adherence(sub) -> None:
    p = sub.add_parser("adherence", help="score a folder of cues against the briefs in their JSON sidecars")
    p.add_argument("--cues", required=True, help="folder of cue WAVs with JSON sidecars (or one folder per model)")
    p.add_argument("--output", default=None, help="CSV to write (default: CUES/adherence.csv)")
    p.add_argument("--no-transcription", action="store_true", help="skip basic-pitch on cues with a melody")
    p.add_argument("--workers", type=int, default=2,
                   help="worker processes that analyse the cues, one thread each (default 2; 1 = in this process)")

    def run(args) -> int:
        from pathlib import Path

        from .adherence import adherence_summary, score_folder, write_adherence

        if args.workers < 1:
            raise InputError(f"--workers {args.workers}: give 1 or more worker processes")
        table = score_folder(args.cues, transcription=not args.no_transcription, num_workers=args.workers,
                             progress=True)
        out = write_adherence(table, args.output or Path(args.cues) / "adherence.csv")
        summary = adherence_summary(table, n_boot=0)
        print(summary[["model", "metric", "mean", "n"]].to_string(index=False))
        print(f"adherence: {out} ({table['cue'].nunique()} cues, {len(table)} rows)")
        return 0

    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------ listening
def _add_listening(sub) -> None:
    p = sub.add_parser("listening", help="listening test: build a pack, validate and analyse a study")
    lsub = p.add_subparsers(dest="listening_command", required=True)

    pk = lsub.add_parser("pack", help="blinded, loudness-matched pack + webMUSHRA config from generated audio")
    pk.add_argument("--generation", required=True, help="generation folder (<run>/05_generation)")
    pk.add_argument("--output", required=True, help="folder for pack/ and the answer key (kept outside pack/)")
    pk.add_argument("--baseline", default="musicgen", help="label of the baseline model folder")
    pk.add_argument("--system", default="echoscript", nargs="+",
                    help="label(s) of the model folder(s) compared with the baseline")
    pk.add_argument("--pairs", type=int, default=None, help="clips per model and scenario (default 1)")
    pk.add_argument("--clip-s", type=float, default=None, help="cut every clip to this length in seconds")
    pk.add_argument("--target-lufs", type=float, default=None, help="common loudness (default -23 LUFS)")
    pk.add_argument("--participants", type=int, default=None, help="playlists / response sheet rows (default 20)")
    pk.add_argument("--seed", type=int, default=None, help="seed for clip ids and orders (default run.seed)")
    pk.add_argument("--redo", action="store_true", help="rebuild even if the pack is up to date")
    _params_arg(pk)

    im = lsub.add_parser("import", help="webMUSHRA results (lms.csv) → a study folder")
    im.add_argument("--results", required=True, help="webMUSHRA's lms.csv or its results/<testId>/ folder")
    im.add_argument("--key", required=True, help="the pack's key.csv")
    im.add_argument("--output", required=True, help="study folder to write")
    im.epilog = (f"exit {EXIT_PARTIAL_IMPORT}: imported, with participants set aside (listed in the study folder's "
                 f"import_report.csv)")

    se = lsub.add_parser("serve", help="a pilot on this machine: webMUSHRA + the pack on 127.0.0.1, each submission "
                                       "written into a study folder (no PHP, no web server)")
    se.add_argument("--pack", required=True, help="the pack folder (pack/) or the folder holding it and key.csv")
    se.add_argument("--study", required=True, help="study folder to write (sessions already there are kept)")
    se.add_argument("--webmushra", default=None,
                    help="your webMUSHRA folder (https://github.com/audiolabs/webMUSHRA); "
                         "default $ECHOSCRIPT_WEBMUSHRA")
    se.add_argument("--key", default=None, help="the answer key (default: key.csv beside pack/)")
    se.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port)")

    va = lsub.add_parser("validate", help="check a returned study folder; exit 2 with named rows if bad")
    va.add_argument("--study", required=True)

    an = lsub.add_parser("analyze", help="statistics, tables and figures from a study folder")
    an.add_argument("--study", required=True, help="folder with responses.csv, key.csv, preferences.csv, ...")
    an.add_argument("--output", required=True)
    an.add_argument("--baseline", default=None, help="model label treated as the baseline")
    an.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")

    si = lsub.add_parser("simulate", help="a clearly labelled SIMULATED study from a pack's answer key")
    si.add_argument("--key", required=True, help="key.csv of a pack (or the folder holding it)")
    si.add_argument("--output", required=True, help="study folder to write")
    si.add_argument("--participants", type=int, default=20)
    si.add_argument("--seed", type=int, default=1234)
    si.add_argument("--effect", type=float, default=None,
                    help="score points added to non-baseline models (default: the paper's per-question means)")
    si.add_argument("--baseline", default="musicgen")

    def run(args) -> int:
        return _listening(args)

    p.set_defaults(func=run)


# -------------------------------------------------------------------------------------------- models
def _add_models(sub) -> None:
    p = sub.add_parser("models", help="build the tiny models as standard transformers folders")
    p.add_argument("--out", required=True, help="folder to save the tiny models in")
    p.add_argument("--seed", type=int, default=1234)

    def run(args) -> int:
        from .models import TINY_MODELS, resolve_model

        for name in TINY_MODELS:
            print(f"{name}: {resolve_model(name, cache_dir=args.out, seed=args.seed)}")
        return 0

    p.set_defaults(func=run)


# ------------------------------------------------------------------------------------------------ train
def _add_train(sub) -> None:
    p = sub.add_parser("train", help="fine-tune MusicGen (the 04_finetuning stage; works under accelerate launch)")
    p.add_argument("params", help="parameter file")
    p.add_argument("--output-root", default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")

    def run(args) -> int:
        from .finetuning import train_from_config

        train_from_config(_load(args))
        return 0

    p.set_defaults(func=run)


# ------------------------------------------------------------------------------ command bodies
def _curate(args) -> int:
    """``echoscript curate --input DIR --output DIR [--labels CSV]``: prints a summary, exits 0 on success."""
    from .curation import curate

    cfg = _load(args)
    labels = getattr(args, "labels", None) or (cfg.data.labels if cfg.data.labels else None)
    result = curate(args.input, args.output, cfg_or_section=cfg, labels=labels)
    print(result.summary())
    if result.metrics["tempo"]["n"]:
        t, k = result.metrics["tempo"], result.metrics["key"]
        print(f"tempo accuracy {t['accuracy']:.2f} (octave errors {t['octave_errors']}), "
              f"key MIREX score {k['weighted_score']:.2f} on {t['n']} labelled clips")
    print(f"skipped inputs: {result.output_dir / 'skipped.csv'}")
    return 0


def _score(args) -> int:
    """``echoscript score SCRIPT --output DIR [--model REF ...]``: prints the cue sheet's summary."""
    from . import scoring
    from .config import set_seed

    cfg = _load(args)
    set_seed(cfg.seed)
    res = scoring.score(args.script, cfg, output_dir=args.output, models=args.model, edit=args.edit, fps=args.fps)
    m = res.metrics
    sp = res.spotting
    timing = (f"{m['screen_time_s']:.2f} s of screen time from the cut {sp.cut.path.name} ({sp.cut.fps:g} fps, "
              f"{sp.cut.tc(0)} – {sp.cut.tc(sp.cut.n_frames)})" if sp is not None else
              f"≈ {m['screen_time_s']:.0f} s of screen time (estimated from page count)")
    print(f"{m['title']}: {m['n_scenes']} scenes, {m['pages']:.1f} pages, {timing}; "
          f"{m['n_spotted']} cues × {len(res.plan)} model(s) × {len(m['seeds'])} seed(s) "
          f"({m['n_generated']} generated, {m['n_cues'] - m['n_generated']} reused) in {m['seconds']:.1f} s")
    spotted = {c.scene: c for c in sp.cues} if sp is not None else {}
    matched = {x.scene: x for x in sp.matches} if sp is not None else {}
    for c in res.cues:
        if sp is not None and c.scene in spotted:
            k = spotted[c.scene]
            worst = "" if k.max_error_ms is None else f", {len(k.hits)} hit(s) within {k.max_error_ms:.0f} ms"
            where = f"{k.cue:<5} {k.tc_in}–{k.tc_out} {k.frames:>5} fr  {k.bpm:g} bpm{worst}  "
        elif sp is not None:
            where = "(not in the cut) " if matched[c.scene].matched_by is None else "(no cue) "
        else:
            where = f"{c.bpm:>3} bpm  {'' if c.spotted else '(no cue) '}"
        print(f"  scene {c.scene:>3}  {c.mood:<11} {c.intensity:.2f}  {where}{c.heading}")
    if sp is not None and sp.unmatched_events:
        print("  events that name no scene: " + ", ".join(e.name for e in sp.unmatched_events))
    extra = "   spotting notes: " + str(res.out_dir / "spotting_notes.html") if sp is not None else ""
    print(f"cue sheet: {res.out_dir / 'cue_sheet.csv'}   score: {res.score_path}{extra}")
    return 0


def _fad(args) -> int:
    """``echoscript fad --reference DIR --generated DIR --embedding NAME [--bootstrap N]``: print the FAD."""
    from .embeddings import embed_files, get_embedder
    from .evaluation import audio_files
    from .fad import RELIABILITY_FLAGS, bootstrap_fad, frechet_distance, reliability_flags
    from .kad import bootstrap_kad, kernel_audio_distance

    cfg = _load(args)

    ref_files = audio_files(args.reference, extensions=cfg.curation.extensions)
    gen_files = audio_files(args.generated, extensions=cfg.curation.extensions)
    embedder = get_embedder(args.embedding, cfg)
    ref = list(embed_files(ref_files, embedder, cache_dir=cfg.paths.cache).values())
    gen = list(embed_files(gen_files, embedder, cache_dir=cfg.paths.cache).values())
    rows_ref, rows_gen = sum(len(e) for e in ref), sum(len(e) for e in gen)
    n_boot = int(args.bootstrap)
    if n_boot > 0:
        res = bootstrap_fad(ref, gen, n=n_boot, confidence=cfg.evaluation.confidence, seed=cfg.seed)
        pct = round(100 * res.confidence)
        print(f"FAD ({embedder.name}) = {res.point:.4f}   {pct}% CI [{res.ci_low:.4f}, {res.ci_high:.4f}]   "
              f"(bootstrap: {n_boot} resamples of clips on both sides, bias-corrected; resampling bias "
              f"{res.bias:+.4f})")
        kad = bootstrap_kad(ref, gen, n=n_boot, confidence=cfg.evaluation.confidence, seed=cfg.seed)
        print(f"KAD ({embedder.name}) = {kad.point:.4f}   {pct}% CI [{kad.ci_low:.4f}, {kad.ci_high:.4f}]   "
              f"(unbiased MMD² × 100, Gaussian kernel σ = {kad.bandwidth:.4g}, the reference's median distance)")
    else:
        print(f"FAD ({embedder.name}) = {frechet_distance(ref, gen):.4f}   (no interval: --bootstrap 0)")
        print(f"KAD ({embedder.name}) = {kernel_audio_distance(ref, gen):.4f}   (no interval: --bootstrap 0)")
    print(f"reference: {len(ref)} files, {rows_ref} embedding rows   generated: {len(gen)} files, {rows_gen} rows   "
          f"D = {ref[0].shape[1]}")
    print(f"inputs (both sides): {embedder.normalisation}")
    for flag in reliability_flags(n_ref=len(ref), n_gen=len(gen), rows_ref=rows_ref, rows_gen=rows_gen,
                                  dim=ref[0].shape[1], min_clips=cfg.evaluation.min_clips):
        print(f"flag {flag}: {RELIABILITY_FLAGS[flag]}")
    return 0


def _validate_or_list_problems(study_dir):
    from .listening import StudyValidationError, validate_study

    """Validate a study folder; on failure print every problem (file, line, what) before the one-line error."""
    try:
        return validate_study(study_dir)
    except StudyValidationError as err:
        for p in err.problems:
            print(f"  {p}", file=sys.stderr)
        raise


def _listening(args) -> int:
    """``echoscript listening pack|import|validate|analyze|simulate|serve`` (see ``cli._add_listening``)."""
    from .listening import (
        SIMULATED_LABEL,
        analyze,
        build_pack,
        simulate_study,
        summary_text,
        validate_study,
        write_outputs,
    )

    cmd = args.listening_command
    if cmd == "pack":
        cfg = _load(args)
        ls = cfg.listening
        pack = build_pack(args.generation, args.output, baseline=args.baseline, system=args.system,
                          pairs_per_scenario=args.pairs or ls.pairs_per_scenario,
                          clip_s=args.clip_s if args.clip_s is not None else ls.clip_s,
                          target_lufs=args.target_lufs if args.target_lufs is not None else ls.target_lufs,
                          peak_db=cfg.curation.peak_limit_db, policy=cfg.curation.loudness_policy,
                          max_limiting_db=cfg.curation.max_limiting_db,
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
        from .listening.webmushra import REPORT_NAME, read_webmushra

        found = read_webmushra(args.results, args.key)
        out = found.write(args.output)
        study = validate_study(out)
        s = study.summary()
        print(f"study folder: {out} ({s['participants']} participants, {s['ratings']} ratings, "
              f"{s['preferences']} preferences); analyse it with: echoscript listening analyze --study {out} "
              f"--output DIR")
        if found.partial:
            print(found.summary(), file=sys.stderr)
            print(f"set aside: {len(found.rejected)} participant(s), listed in {out / REPORT_NAME}; "
                  f"{found.source} is unchanged", file=sys.stderr)
            return EXIT_PARTIAL_IMPORT
        return 0
    if cmd == "serve":
        from .listening.serve import serve

        serve(args.pack, args.study, webmushra_dir=args.webmushra, key=args.key, port=args.port)
        return 0
    if cmd == "simulate":
        out = simulate_study(args.key, args.output, n_participants=args.participants, seed=args.seed,
                             effect=args.effect, baseline=args.baseline)
        print(f"{SIMULATED_LABEL}: {out}")
        return 0
    raise SystemExit(f"unknown listening command {cmd!r}")  # pragma: no cover


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="echoscript", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_run, _add_report, _add_publish, _add_demo_data, _add_curate, _add_fad, _add_score, _add_adherence, _add_listening,
                _add_models, _add_train):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EchoScriptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
