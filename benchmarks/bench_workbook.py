"""Time the demo workbook end to end, per stage.

    python benchmarks/bench_workbook.py [--params params/demo.yaml]

Runs every notebook with ``redo`` into a temporary output root and prints seconds per stage, the total, and the
total's ratio to the budget the foundation issue sets for the demo ("a few minutes" on 2 cores: 300 s).
"""

import argparse
import tempfile
import time
from pathlib import Path

from echoscript_utils.pipeline import run_workbook

BUDGET_S = 300.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default=str(Path(__file__).resolve().parent.parent / "params" / "demo.yaml"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        results = run_workbook(args.params, output_root=out, redo=True, log=lambda *a: None)
        total = time.perf_counter() - t0
    print(f"{'stage':<16}{'seconds':>10}")
    for stage, r in results.items():
        print(f"{stage:<16}{r['seconds']:>10.1f}")
    print(f"{'total':<16}{total:>10.1f}   (includes kernel start-ups and the report)")
    print(f"ratio to the {BUDGET_S:.0f} s demo budget: {total / BUDGET_S:.2f}")


if __name__ == "__main__":
    main()
