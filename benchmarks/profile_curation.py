"""Where the curation stage spends its time: cProfile of ``curate`` in one process on the benchmark's files.

    python benchmarks/profile_curation.py [--files 4] [--duration 65] [--top 30] [--out FILE]

Generates the same stereo 48 kHz WAV files as ``bench_curation.py``, warms up (imports, compiled kernels), then
runs the stage with ``num_workers=0`` (in this process, so every call is seen) under :mod:`cProfile`. Prints the
functions with the largest cumulative and own (``tottime``) times; ``--out`` also writes that text to a file.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import sys
import tempfile
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_curation import synth  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--duration", type=float, default=65.0, help="seconds per generated file")
    ap.add_argument("--top", type=int, default=30, help="rows per table")
    ap.add_argument("--out", default=None, help="also write the report to this text file")
    args = ap.parse_args(argv)

    from echoscript_utils.config import CurationSection
    from echoscript_utils.curation import curate

    root = Path(tempfile.mkdtemp(prefix="profile_curation_"))
    try:
        src = root / "in"
        src.mkdir()
        for i in range(args.files):
            sf.write(str(src / f"track_{i:03d}.wav"), synth(i, args.duration, 48000), 48000, subtype="PCM_16")
        warm = root / "warm"
        warm.mkdir()
        sf.write(str(warm / "w.wav"), synth(999, 31.0, 48000), 48000, subtype="PCM_16")
        section = CurationSection()
        curate(warm, root / "warm_out", cfg_or_section=section, num_workers=0, progress=False)

        prof = cProfile.Profile()
        prof.enable()
        curate(src, root / "out", cfg_or_section=section, num_workers=0, progress=False)
        prof.disable()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    buf = io.StringIO()
    buf.write(f"cProfile of curate(num_workers=0) on {args.files} files x {args.duration:g} s "
              f"(48 kHz stereo WAV, bench_curation.synth)\n")
    buf.write(f"command: python benchmarks/profile_curation.py --files {args.files} --duration {args.duration:g}\n\n")
    stats = pstats.Stats(prof, stream=buf)
    stats.strip_dirs()
    buf.write("== by cumulative time ==\n")
    stats.sort_stats("cumulative").print_stats(args.top)
    buf.write("== by own time ==\n")
    stats.sort_stats("tottime").print_stats(args.top)
    text = buf.getvalue()
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
