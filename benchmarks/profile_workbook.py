"""Profile the whole workbook on a folder of real music, stage by stage, with each stage's top functions.

    python benchmarks/profile_workbook.py --input DIR [--params params/demo.yaml] [--out FILE] [--top 15]
    python benchmarks/profile_workbook.py --fetch     # a real soundtrack from Debian's archive (see below)

Each stage's ``run(cfg)`` (what its notebook calls step by step, without the plots) runs in this process under
``cProfile``, in order, into a fresh output root with a fresh cache, so every stage does its full work. Printed
per stage: wall seconds, CPU seconds of this process and of finished child processes (curation's workers), the
stage's share of the total, and the functions with the most time of their own (``tottime``) and the most time
under them (``cumtime``). The load average at the start and the end is printed too: on a shared machine wall
times inflate, shares and CPU seconds much less.

``--fetch`` downloads ``singularity-music`` (Endgame: Singularity's soundtrack, CC BY-SA 3.0: 16 Ogg Vorbis
tracks, 64 min, 44.1 kHz stereo) with ``apt-get download`` and unpacks it with ``dpkg -x`` into
``~/.cache/echoscript/corpus`` (never into the repository), then prints the music folder.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Debian packages of freely licensed soundtracks, and the folder inside each that holds the music.
SOUNDTRACKS = {"singularity-music": "usr/share/games/singularity/music",
               "warzone2100-music": "usr/share/games/warzone2100/music"}
CORPUS_CACHE = Path(os.environ.get("ECHOSCRIPT_CORPUS_CACHE", Path.home() / ".cache" / "echoscript" / "corpus"))


def fetch_soundtrack(package: str = "singularity-music", *, cache: Path = CORPUS_CACHE) -> Path:
    """``apt-get download`` + ``dpkg -x`` ``package`` into ``cache`` (once); returns its music folder."""
    unpacked = cache / package
    music = unpacked / SOUNDTRACKS[package]
    if music.is_dir() and any(music.iterdir()):
        return music
    cache.mkdir(parents=True, exist_ok=True)
    debs = sorted(cache.glob(f"{package}_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", package], cwd=cache, check=True)
        debs = sorted(cache.glob(f"{package}_*.deb"))
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(unpacked)], check=True)
    if not music.is_dir():
        found = sorted({p.parent for p in unpacked.rglob("*") if p.suffix in (".ogg", ".opus")})
        if not found:
            raise SystemExit(f"{debs[-1]}: no .ogg/.opus files inside; pick another --fetch package")
        music = found[0]
    return music


def _stage_runs():
    """``[(stage, run)]`` in workbook order (imported lazily: importing is part of no stage)."""
    from echoscript_utils.pipeline import stage_entry_points

    return stage_entry_points()


def _cpu() -> tuple[float, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _short(line: str) -> str:
    """A profile line without the paths of this machine: the checkout and the site-packages folders."""
    import site
    import sysconfig

    for prefix in sorted({str(ROOT), *site.getsitepackages(), sysconfig.get_paths()["stdlib"]}, key=len,
                         reverse=True):
        line = line.replace(prefix + "/", "")
    return line


def _top(prof: cProfile.Profile, key: str, n: int) -> str:
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats(key).print_stats(n)
    lines = buf.getvalue().splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    return "\n".join(_short(ln) for ln in lines[start:] if ln.strip())


def profile(params: str, *, input_dir: str | None, stages: list[str] | None, top: int,
            output_root: str, enabled: bool = True, log=print) -> tuple[list[dict], str]:
    """Run and profile the stages; returns ``(rows, text)`` with one row per stage and the full report."""
    from echoscript_utils.config import load_config, set_seed
    from echoscript_utils.pipeline import apply_hub_environment

    overrides = {"data.input_dir": input_dir} if input_dir else None
    cfg = load_config(params, overrides, output_root=output_root)
    cfg.paths.ensure()
    apply_hub_environment(cfg)
    if cfg.run.torch_threads:
        import torch

        torch.set_num_threads(cfg.run.torch_threads)
    rows, sections = [], []
    for stage, run in _stage_runs():
        if stages and stage not in stages:
            continue
        set_seed(cfg.seed)
        log(f"{stage} …")
        prof = cProfile.Profile()
        cpu0, kid0 = _cpu()
        t0 = time.perf_counter()
        if enabled:
            prof.enable()
        try:
            run(cfg, progress=False)
        finally:
            prof.disable()
        wall = time.perf_counter() - t0
        cpu1, kid1 = _cpu()
        rows.append({"stage": stage, "wall_s": wall, "cpu_s": cpu1 - cpu0, "child_cpu_s": kid1 - kid0})
        log(f"{stage}: {wall:.1f} s")
        if enabled:
            sections.append(f"### {stage}: {wall:.1f} s wall\n\n-- top {top} by own time (tottime)\n"
                        f"{_top(prof, 'tottime', top)}\n\n-- top {top} by time under (cumtime)\n"
                            f"{_top(prof, 'cumulative', top)}\n")
    return rows, "\n".join(sections)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(ROOT / "params" / "demo.yaml"))
    ap.add_argument("--input", help="folder of music (default: the demo corpus)")
    ap.add_argument("--fetch", nargs="?", const="singularity-music", choices=sorted(SOUNDTRACKS),
                    help="download a soundtrack from Debian's archive and print its folder")
    ap.add_argument("--stages", nargs="*", help="only these stages (e.g. 02_annotation); earlier ones must be "
                                                "in --output-root already")
    ap.add_argument("--output-root", help="run folder (default: a temporary one, deleted afterwards)")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--out", help="also write the report to this file")
    ap.add_argument("--no-profile", action="store_true", help="times only (cProfile inflates Python-heavy loops)")
    args = ap.parse_args()
    if args.fetch:
        print(fetch_soundtrack(args.fetch))
        return
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="echoscript-profile-") as tmp:
        rows, text = profile(args.params, input_dir=args.input, stages=args.stages, top=args.top,
                             output_root=args.output_root or tmp, enabled=not args.no_profile,
                             log=lambda m: print(m, file=sys.stderr))
    total = time.perf_counter() - t0
    load1 = os.getloadavg()
    stage_total = sum(r["wall_s"] for r in rows) or 1.0
    head = [f"# Workbook profile, {datetime.now(UTC).isoformat(timespec='minutes')}",
            f"params {Path(args.params).name}, input {Path(args.input).name + '/' if args.input else 'demo corpus'}, "
            f"{os.cpu_count()} cores, load average (1/5/15 min) {'/'.join(f'{x:.2f}' for x in load0)} at the "
            f"start, {'/'.join(f'{x:.2f}' for x in load1)} at the end",
            ("Each stage's run(cfg) in one process under cProfile (it inflates Python-heavy loops several-fold: "
             "read own times of pure-Python code as upper bounds)." if not args.no_profile else
             "Each stage's run(cfg) in one process, without the profiler."),
            "", f"{'stage':<16}{'wall s':>9}{'share':>8}{'cpu s':>9}{'child cpu s':>13}"]
    for r in rows:
        head.append(f"{r['stage']:<16}{r['wall_s']:>9.1f}{100 * r['wall_s'] / stage_total:>7.1f}%"
                    f"{r['cpu_s']:>9.1f}{r['child_cpu_s']:>13.1f}")
    head.append(f"{'total':<16}{stage_total:>9.1f}{'':>8}{sum(r['cpu_s'] for r in rows):>9.1f}"
                f"{sum(r['child_cpu_s'] for r in rows):>13.1f}   ({total:.1f} s with imports and set-up)")
    report = "\n".join(head) + "\n\n" + text
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
