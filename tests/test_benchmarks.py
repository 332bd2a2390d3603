"""The GPU benchmark script runs end to end on a CPU at tiny shapes, so that it still runs when a GPU is at hand."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "benchmarks" / "gpu_musicgen_small.py"


def _run(*args, cwd):
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})


def test_gpu_benchmark_dry_run_counts_musicgen_small_shapes(tmp_path):
    res = _run("--dry", cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    # 12 × (1500 frames + 3 delay steps) decoder tokens a step, MusicGen-small's published shapes
    assert "shapes: musicgen-small" in res.stdout and "18036 decoder tokens/step" in res.stdout


def test_gpu_benchmark_tiny_run_writes_training_and_sampling_figures(tmp_path):
    out = tmp_path / "gpu.json"
    res = _run("--tiny", "--quick", "--cpu", "--steps", "1", "--warmup", "1", "--gen-seconds", "0.2",
               "--gen-precisions", "fp32,bf16", "--out", str(out), cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [(r["precision"], r["token_cache"]) for r in report["results"]] == [("no", True), ("no", False)]
    for r in report["results"]:
        assert r["tokens_per_s"] > 0 and r["paper_total_min"] > 0 and r["loss_first"] == r["loss_first"]
    assert [g["precision"] for g in report["generation"]] == ["fp32", "bf16"]
    assert all(g["finite"] and g["rms"] > 0 and g["audio_s_per_s"] > 0 for g in report["generation"])
    assert not list(tmp_path.glob("*.part"))
    assert "headline no sdpa with the token cache" in res.stdout and "fp32's speed" in res.stdout
