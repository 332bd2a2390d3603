"""What adherence costs and what it can tell: its time on a run's stages 05 and 08, and each metric's ceiling and
floor on the run's demo corpus.

    python benchmarks/bench_adherence.py [--run outputs/demo] [--params params/demo.yaml]

Needs a run whose stages 05 and 08 have been executed (``echoscript run params/demo.yaml``). Scores every generated
file of ``05_generation`` against its scenario's brief and every cue of ``08_scoring`` against its sidecar (writing
nothing into the run), each timed after a warm-up, then validates the metrics on the run's ``00_demo_corpus``
(clips against their own truth = ceiling, against shuffled briefs = floor) and prints the tables.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    import numpy as np
    import pandas as pd

    from echoscript_utils import adherence
    from echoscript_utils.artifacts import read_json
    from echoscript_utils.config import load_config
    from echoscript_utils.generation import load_scenarios

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="outputs/demo", help="the run folder")
    ap.add_argument("--params", default="params/demo.yaml", help="the run's parameter file (seed, scenarios)")
    args = ap.parse_args()
    run = Path(args.run)
    cfg = load_config(args.params)
    pd.set_option("display.width", 160)

    t = np.linspace(0, 3, 3 * 22050, dtype=np.float32)
    adherence.analyse(np.sin(2 * np.pi * 220 * t), 22050, transcription=True)  # imports, kernels, ONNX session

    gen = run / "05_generation"
    scenarios = {s["name"]: s for s in load_scenarios(cfg.generation.scenarios)}
    wavs = sorted(p for p in gen.glob("*/*.wav") if p.with_suffix(".json").is_file())
    briefs = {}
    for w in wavs:
        side = read_json(w.with_suffix(".json"))
        plan = scenarios.get(side.get("scenario"), {})
        b = adherence.brief_from_sidecar(side, folder=w.parent)
        briefs[w] = adherence.Brief(**{**b.__dict__, "bpm": plan.get("bpm"), "key": plan.get("key")})
    t0 = time.perf_counter()
    t05 = adherence.score_folder(gen, files=wavs, briefs=briefs)
    s05 = time.perf_counter() - t0
    t0 = time.perf_counter()
    t08 = adherence.score_folder(run / "08_scoring")
    s08 = time.perf_counter() - t0
    print(f"05_generation: {len(wavs)} files, adherence {s05:.1f} s")
    n08 = len(t08.loc[t08["cue"] != "*", ["model", "cue"]].drop_duplicates())
    print(f"08_scoring: {n08} cues, adherence {s08:.1f} s "
          "(CLAP text rows come from the relevance step the stage already runs)")
    for name, table in (("05", t05), ("08", t08)):
        print(f"\n{name}: per model (mean, 95 % bootstrap interval)")
        print(adherence.adherence_summary(table, seed=cfg.seed).to_string(index=False))
    t0 = time.perf_counter()
    v = adherence.validate(run / "00_demo_corpus", seed=cfg.seed, min_s=12.0, max_s=24.0)
    print(f"\nvalidation on {run / '00_demo_corpus'} ({time.perf_counter() - t0:.1f} s)")
    print(v.to_string(index=False))


if __name__ == "__main__":
    main()
