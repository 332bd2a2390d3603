"""Curation throughput: the stage vs a plain ``librosa.load`` + feature-call loop on the same generated files.

    python benchmarks/bench_curation.py [--files 8] [--duration 65] [--workers 2] [--repeats 3]

Both sides are warmed up first (imports, compiled kernels), then timed on the same folder of stereo 48 kHz
16-bit WAV files. The plain loop loads each file with ``librosa.load`` (22.05 kHz mono) and, per 30 s clip,
calls ``mfcc``, ``melspectrogram``, ``chroma_stft`` and ``beat_track`` and picks a key from the mean chroma;
it writes nothing. The stage also resamples to 44.1 kHz, normalises loudness with a true-peak check, writes
every clip, fingerprints for duplicates, computes the same features and writes metadata and both exports.
Each repeat times the plain loop and then the stage (from an empty output folder, so nothing comes from the
cache); on a shared machine the ratio of each repeat is steadier than either time. Prints the median real-time
factor of each (seconds of audio per second of wall time) and the median of the per-repeat ratios.

Two more rows in the same repeats say what the ratio is made of (``--no-context`` leaves them out):

- the stage in one process (``num_workers=0``) against the same plain loop: the work done per core;
- the plain loop's files split over the same number of forked processes as the stage's workers: what that many
  processes buy on this machine for work that shares nothing. The goal of 2× with 2 workers assumes they buy 2×.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def synth(seed: int, dur: float, sr: int) -> np.ndarray:
    """Stereo test music ``[T, 2]``: decaying harmonic notes on a beat grid plus a noise hi-hat."""
    rng = np.random.default_rng(seed)
    bpm = rng.uniform(70, 160)
    n = int(dur * sr)
    beat = int(sr * 60 / bpm)
    t = np.arange(beat) / sr
    env = np.exp(-5 * t)
    notes = 110 * 2 ** (rng.integers(0, 24, size=n // beat + 1) / 12)
    y = np.concatenate([env * (np.sin(2 * np.pi * f * t) + 0.4 * np.sin(4 * np.pi * f * t)) for f in notes])[:n]
    hat = np.zeros(n)
    hat[::beat // 2] = 1.0
    hat = np.convolve(hat, rng.standard_normal(400) * np.exp(-np.arange(400) / 60), mode="same")
    y = y + 0.2 * hat
    y = 0.3 * y / np.abs(y).max()
    return np.stack([y, 0.9 * y], axis=1).astype(np.float32)


def plain_loop(files: list[Path], clip_s: float = 30.0) -> None:
    import librosa

    for f in files:
        y, sr = librosa.load(f, sr=22050, mono=True)
        n = int(clip_s * sr)
        for start in range(0, len(y) - n + 1, n):
            seg = y[start:start + n]
            librosa.feature.mfcc(y=seg, sr=sr, n_mfcc=20)
            librosa.feature.melspectrogram(y=seg, sr=sr)
            chroma = librosa.feature.chroma_stft(y=seg, sr=sr)
            librosa.beat.beat_track(y=seg, sr=sr)
            int(np.argmax(chroma.mean(axis=1)))


def _plain_one(path: Path) -> None:
    plain_loop([path])


def plain_parallel(files: list[Path], workers: int) -> None:
    """The plain loop with its files spread over ``workers`` forked processes of one thread each."""
    from echoscript_utils.parallel import fork_map

    fork_map(_plain_one, files, num_workers=workers)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--duration", type=float, default=65.0, help="seconds per generated file")
    ap.add_argument("--workers", type=int, default=2, help="stage worker processes")
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (plain loop, then stage); medians reported")
    ap.add_argument("--keep", default=None, help="keep the generated folder and stage output here")
    ap.add_argument("--no-context", dest="context", action="store_false",
                    help="time only the plain loop and the stage (not the stage in one process, nor the plain "
                         "loop over forked processes)")
    args = ap.parse_args(argv)

    from echoscript_utils.config import CurationSection
    from echoscript_utils.curation import curate

    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_curation_"))
    src = root / "in"
    src.mkdir(parents=True, exist_ok=True)
    sr_in = 48000
    files = []
    for i in range(args.files):
        p = src / f"track_{i:03d}.wav"
        sf.write(str(p), synth(i, args.duration, sr_in), sr_in, subtype="PCM_16")
        files.append(p)
    warm = root / "warm"
    warm.mkdir(exist_ok=True)
    sf.write(str(warm / "w.wav"), synth(999, 31.0, sr_in), sr_in, subtype="PCM_16")
    audio_s = args.files * args.duration
    section = CurationSection()

    # warm-up: imports and compiled kernels on both sides
    plain_loop([warm / "w.wav"])
    curate(warm, root / "warm_out", cfg_or_section=section, num_workers=0, progress=False)

    out = root / "stage"
    t_plain, t_stage, ratios = [], [], []
    one_ratios, par_ratios = [], []
    for _ in range(max(1, args.repeats)):
        t0 = time.perf_counter()
        plain_loop(files)
        t_plain.append(time.perf_counter() - t0)
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        result = curate(src, out, cfg_or_section=section, num_workers=args.workers, progress=False)
        t_stage.append(time.perf_counter() - t0)
        ratios.append(t_plain[-1] / t_stage[-1])
        if args.context:
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            curate(src, out, cfg_or_section=section, num_workers=0, progress=False)
            one_ratios.append(t_plain[-1] / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            plain_parallel(files, args.workers)
            par_ratios.append(t_plain[-1] / (time.perf_counter() - t0))

    rtf_plain = audio_s / float(np.median(t_plain))
    rtf_stage = audio_s / float(np.median(t_stage))
    print(f"audio: {args.files} files x {args.duration:g} s = {audio_s / 60:.1f} min (48 kHz stereo WAV); "
          f"{os.cpu_count()} CPUs, stage workers {args.workers}; median of {len(ratios)} repeats")
    print(f"plain librosa loop : {np.median(t_plain):7.2f} s  {rtf_plain:6.1f}x real time")
    print(f"curation stage     : {np.median(t_stage):7.2f} s  {rtf_stage:6.1f}x real time  "
          f"({len(result.kept)} clips written)")
    print(f"ratio stage / plain: {np.median(ratios):.2f}x  (per repeat: {', '.join(f'{r:.2f}' for r in ratios)}; "
          "target >= 2x)")
    if one_ratios:
        print(f"stage in 1 process / plain: {np.median(one_ratios):.2f}x  "
              f"(per repeat: {', '.join(f'{r:.2f}' for r in one_ratios)}; the work per core)")
        print(f"plain loop over {args.workers} processes / plain: {np.median(par_ratios):.2f}x  "
              f"(per repeat: {', '.join(f'{r:.2f}' for r in par_ratios)}; what {args.workers} processes buy here)")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
