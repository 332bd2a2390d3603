"""How cost grows with the work: curation, annotation and evaluation at 1×, 2× and 4× a corpus, and scoring 10, 50
and 190 scenes of a feature-length screenplay.

    python benchmarks/bench_scaling.py [--input DIR] [--params params/demo.yaml] [--out FILE]
    python benchmarks/bench_scaling.py --quick          # small: demo corpus of 3/6/12 tracks, 5/10/20 scenes

Corpus: with ``--input``, the music files of DIR sorted by name; 1× is the first quarter of them, 2× the first
half, 4× all (sizes are measured in minutes of audio, so tracks of unequal length are fine). Without it, the
demo corpus composed at 1×, 2× and 4× a base number of tracks. Each size is one run folder: curation, then
annotation, then evaluation, whose reference is every other curated clip and whose generated set the rest
(copied as a model folder with prompt sidecars), so both sets grow with the corpus.

Script: ``big-fish.fountain`` from the shared screenplays (``$ECHOSCRIPT_SCREENPLAYS``, else ``../shared/
screenplays`` beside the checkout, as the tests find it), cut after its first N scenes, scored with the demo
profile's settings.

Every point runs in its own child process, so points share no memory: the time is the stage call's wall time in
the child (imports and set-up excluded) and its CPU time (the child's and its workers'; on a shared machine
less inflated by other people's load than wall time, so the fit is made on both), the peak memory the child's peak RSS (its own or its worker processes',
whichever is larger). For each series the script fits ``time = a + b·size``, prints the R², and compares the
cost of the second step (2× → 4×) with the first (1× → 2×): linear growth makes that ratio 2 (sizes 1, 2, 4);
it says "linear" when the ratio is within 2 ± 0.6 or the fit's R² is at least 0.98. Peak memory counts as flat
when the 4× point is at most 1.25 × the 1× point. Wall times on a shared machine include other people's load:
the load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AUDIO_EXT = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")


def screenplays_dir() -> Path:
    """The shared screenplays: ``$ECHOSCRIPT_SCREENPLAYS``, else ``../shared/screenplays`` beside the checkout."""
    env = os.environ.get("ECHOSCRIPT_SCREENPLAYS")
    return Path(env) if env else (ROOT.parent / "shared" / "screenplays").resolve()


# ------------------------------------------------------------------------------------------------ child side
def _config(params: str, root: str, input_dir: str | None, overrides: dict | None = None):
    from echoscript_utils.config import load_config, set_seed
    from echoscript_utils.pipeline import apply_hub_environment

    over = {**({"data.input_dir": input_dir} if input_dir else {}), **(overrides or {})}
    cfg = load_config(params, over or None, output_root=root)
    cfg.paths.ensure()
    apply_hub_environment(cfg)
    set_seed(cfg.seed)
    if cfg.run.torch_threads:
        import torch

        torch.set_num_threads(cfg.run.torch_threads)
    return cfg


def _evaluation_folders(cfg, root: Path) -> tuple[Path, int, int]:
    """Curated clips in two halves (alternate clips, so both hold every track): the reference folder, and the
    generated set ``05_generation/musicgen`` (WAV + sidecar with the clip's prompt). Returns
    ``(reference_dir, n_reference, n_generated)``."""
    from echoscript_utils.artifacts import write_json
    from echoscript_utils.dataset import load_metadata

    meta = load_metadata(cfg.paths.curation).sort_values("clip_id", ignore_index=True)
    ref_dir, gen_dir = root / "eval-reference", cfg.paths.generation / "musicgen"
    for d in (ref_dir, gen_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    for i, row in enumerate(meta.itertuples(index=False)):
        if i % 2 == 0:
            shutil.copyfile(row.path, ref_dir / f"{row.clip_id}.wav")
        else:
            shutil.copyfile(row.path, gen_dir / f"{row.clip_id}.wav")
            write_json(gen_dir / f"{row.clip_id}.json", {"prompt": str(getattr(row, "prompt", "") or "music"),
                                                           "model": "musicgen"})
    return ref_dir, (len(meta) + 1) // 2, len(meta) // 2


def _cut_script(script: Path, n_scenes: int, out: Path, cfg) -> int:
    """``script`` up to (not including) the heading of scene ``n_scenes + 1`` → ``out``; returns the scene count."""
    from echoscript_utils.scoring import read_screenplay

    scenes = read_screenplay(cfg, script).scenes
    lines = script.read_text(encoding="utf-8").splitlines(keepends=True)
    stop = scenes[n_scenes].line - 1 if n_scenes < len(scenes) else len(lines)
    out.write_text("".join(lines[:stop]), encoding="utf-8")
    return min(n_scenes, len(scenes))


def child(args) -> None:
    base = json.loads(args.overrides or "{}")
    cfg = _config(args.params, args.root, args.input_dir, base)
    extra: dict = {}
    if args.child == "curation":
        from echoscript_utils import curation as stage

        run = stage.run
    elif args.child == "annotation":
        from echoscript_utils import annotation as stage

        run = stage.run
    elif args.child == "evaluation":
        from echoscript_utils import evaluation as stage

        ref_dir, extra["reference_clips"], extra["generated_clips"] = _evaluation_folders(cfg, Path(args.root))
        cfg = _config(args.params, args.root, args.input_dir,
                      {**base, "evaluation.reference_dir": str(ref_dir), "evaluation.models": ["musicgen"]})
        run = stage.run
    else:  # scoring N scenes
        from echoscript_utils.scoring import score

        script = Path(args.root) / f"first-{args.scenes}-scenes.fountain"
        extra["scenes"] = _cut_script(Path(args.script), args.scenes, script, cfg)

        def run(cfg, progress=False):
            return score(script, cfg, output_dir=Path(args.root) / f"score-{args.scenes}", progress=progress)
    cpu0 = _cpu_s()
    t0 = time.perf_counter()
    run(cfg, progress=False)
    seconds = time.perf_counter() - t0
    cpu = _cpu_s() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_kib": peak, "workers_peak_kib": kids, **extra}))


def _cpu_s() -> float:
    """CPU seconds of this process and its finished workers (less inflated by other people's load than wall)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


# ------------------------------------------------------------------------------------------------ parent side
def run_child(argv: list[str], env: dict) -> dict:
    """One point in a fresh process; its JSON answer with ``peak_mib``: the larger of the child's own peak RSS
    and its worker processes' (``getrusage`` in the child at the end)."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv], capture_output=True, env=env,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"point {' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["peak_mib"] = max(res.pop("peak_kib"), res.pop("workers_peak_kib")) / 1024
    return res


def fit(sizes: list[float], seconds: list[float]) -> dict:
    """Least-squares ``seconds = a + b·size``, its R², and the growth ratio of the second step over the first."""
    import numpy as np

    x, y = np.asarray(sizes, float), np.asarray(seconds, float)
    b, a = np.polyfit(x, y, 1)
    resid = y - (a + b * x)
    r2 = 1.0 - float((resid ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12))
    first = y[1] - y[0]
    step = (y[2] - y[1]) / first if first > 0 else float("nan")  # nan: the first step is lost in the noise
    ideal = (x[2] - x[1]) / (x[1] - x[0])
    return {"a": float(a), "b": float(b), "r2": r2, "step_ratio": float(step), "ideal_ratio": float(ideal),
            "linear": bool((first > 0 and abs(step - ideal) <= 0.3 * ideal) or r2 >= 0.98)}


def _duration_min(files: list[Path]) -> float:
    import soundfile as sf

    return sum(sf.info(str(f)).duration for f in files) / 60.0


def prepare_corpora(args, work: Path) -> list[tuple[int, Path, float]]:
    """``[(factor, folder, minutes)]`` for 1×, 2×, 4×."""
    out = []
    if args.input:
        files = sorted(p for p in Path(args.input).rglob("*") if p.suffix.lower() in AUDIO_EXT)
        if len(files) < 4:
            raise SystemExit(f"{args.input}: needs at least 4 audio files for 1×/2×/4×, found {len(files)}")
        for factor in (1, 2, 4):
            folder = work / f"corpus-{factor}x"
            folder.mkdir(parents=True, exist_ok=True)
            chosen = files[: len(files) * factor // 4]
            for f in chosen:
                (folder / f.name).symlink_to(f)
            out.append((factor, folder, _duration_min(chosen)))
        return out
    from echoscript_utils.demo_corpus import build_corpus

    for factor in (1, 2, 4):
        folder = work / f"corpus-{factor}x"
        build_corpus(folder, n_tracks=args.base_tracks * factor, seed=1234, min_duration_s=35.0,
                     max_duration_s=50.0, progress=False)
        out.append((factor, folder / "audio", _duration_min(sorted((folder / "audio").glob("*.wav")))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params" / "demo.yaml"))
    ap.add_argument("--input", help="folder of music (default: the demo corpus)")
    ap.add_argument("--script", default=None, help="screenplay (default: big-fish.fountain of the shared set)")
    ap.add_argument("--scenes", type=int, nargs=3, default=None, help="scene counts (default 10 50 190)")
    ap.add_argument("--base-tracks", type=int, default=4, help="demo tracks at 1× (without --input)")
    ap.add_argument("--quick", action="store_true", help="small: 3/6/12 demo tracks, 5/10/20 scenes")
    ap.add_argument("--series", choices=["all", "corpus", "scoring"], default="all",
                    help="run only the corpus series (curation, annotation, evaluation) or only scoring")
    ap.add_argument("--work", help="folder for the runs (default: a temporary one, deleted afterwards)")
    ap.add_argument("--out", help="also write the table to this file")
    ap.add_argument("--child", choices=["curation", "annotation", "evaluation", "scoring"], help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--input-dir", help=argparse.SUPPRESS)
    ap.add_argument("--overrides", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        args.scenes = args.scenes[0] if args.scenes else 0
        child(args)
        return
    overrides = {}
    if args.quick:  # 10 s clips: enough clips from 3 short tracks for two sets of several clips each
        overrides["curation.clip_s"] = 10
        args.base_tracks = 3
        args.scenes = args.scenes or [5, 10, 20]
    scenes = args.scenes or [10, 50, 190]
    script = Path(args.script) if args.script else screenplays_dir() / "big-fish.fountain"
    if not script.is_file():
        raise SystemExit(f"{script}: screenplay not found; pass --script or set ECHOSCRIPT_SCREENPLAYS")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    load0 = os.getloadavg()
    lines, rows = [], []
    with tempfile.TemporaryDirectory(prefix="echoscript-scaling-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        corpora = prepare_corpora(args, work) if args.series != "scoring" else []
        for factor, folder, minutes in corpora:
            root = work / f"run-{factor}x"
            for stage in ("curation", "annotation", "evaluation"):
                res = run_child(["--child", stage, "--params", args.params, "--root", str(root),
                                 "--input-dir", str(folder), "--overrides", json.dumps(overrides)], env)
                rows.append({"series": stage, "size": factor, "minutes": minutes, **res})
                print(f"{stage:<11} {factor}× ({minutes:5.1f} min): {res['seconds']:7.1f} s, "
                      f"cpu {res['cpu_s']:7.1f} s, peak {res['peak_mib']:6.0f} MiB", file=sys.stderr)
        base = work / "run-scoring"
        for n in scenes if args.series != "corpus" else []:
            res = run_child(["--child", "scoring", "--params", args.params, "--root", str(base),
                             "--scenes", str(n), "0", "0", "--script", str(script),
                             "--overrides", json.dumps(overrides)], env)
            rows.append({"series": "scoring", "size": res["scenes"], "minutes": None, **res})
            print(f"scoring     {res['scenes']} scenes: {res['seconds']:7.1f} s, cpu {res['cpu_s']:7.1f} s, "
                  f"peak {res['peak_mib']:6.0f} MiB", file=sys.stderr)
    load1 = os.getloadavg()
    lines.append(f"# Scaling benchmark, {datetime.now(UTC).isoformat(timespec='minutes')}"
                 f"{' (--quick)' if args.quick else ''}")
    corpus = Path(args.input).name + "/" if args.input else f"demo corpus, {args.base_tracks} tracks at 1x"
    lines.append(f"corpus: {corpus if args.series != 'scoring' else '(not run)'}"
                 f"; script: {script.name}; params {Path(args.params).name}"
                 f"{''.join(f', {k}={v}' for k, v in overrides.items())}; {os.cpu_count()} cores; load average "
                 f"{'/'.join(f'{x:.2f}' for x in load0)} at the start, {'/'.join(f'{x:.2f}' for x in load1)} "
                 f"at the end")
    lines.append("")
    lines.append(f"{'series':<11}{'size':>6}{'audio min':>11}{'wall s':>9}{'cpu s':>8}{'cpu s/unit':>12}"
                 f"{'peak MiB':>10}")
    for r in rows:
        unit = r["minutes"] if r["minutes"] else r["size"]
        mins = f"{r['minutes']:.1f}" if r["minutes"] else "-"
        size = f"{r['size']}x" if r["series"] != "scoring" else f"{r['size']}sc"
        lines.append(f"{r['series']:<11}{size:>6}{mins:>11}{r['seconds']:>9.1f}{r['cpu_s']:>8.1f}"
                     f"{r['cpu_s'] / unit:>12.2f}{r['peak_mib']:>10.0f}")
    lines.append("")
    for series in ("curation", "annotation", "evaluation", "scoring"):
        pts = [r for r in rows if r["series"] == series]
        if not pts:
            continue
        sizes = [r["minutes"] if r["minutes"] else r["size"] for r in pts]
        mem = pts[-1]["peak_mib"] / max(pts[0]["peak_mib"], 1e-9)
        unit = "min of audio" if series != "scoring" else "scene"
        for what in ("cpu_s", "seconds"):
            f = fit(sizes, [r[what] for r in pts])
            verdict = "linear" if f["linear"] else "NOT linear"
            lines.append(f"{series:<11}{'cpu' if what == 'cpu_s' else 'wall':>5} = {f['a']:.1f} s + {f['b']:.2f} s/"
                         f"{unit}, R² {f['r2']:.3f}; second step / first {f['step_ratio']:.2f} (linear: "
                         f"{f['ideal_ratio']:.2f}) → {verdict}")
        lines.append(f"{'':<11} peak memory largest/smallest {mem:.2f} → {'flat' if mem <= 1.25 else 'GROWS'}")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
