"""The seven notebooks: committed clean, and executed end to end through papermill on the demo profile.

The demo run happens once per test session (it is the slowest test); each stage's declared products and the
figures it records are then checked separately.
"""

import ast
import json
from pathlib import Path

import pytest

from echoscript_utils import pipeline
from echoscript_utils.artifacts import read_json
from echoscript_utils.config import STAGES, load_config

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_every_stage_has_its_notebook():
    assert [p.stem for p in NOTEBOOKS] == list(STAGES)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_committed_clean(path):
    nb = json.loads(path.read_text())
    meta = nb["metadata"]
    assert meta["kernelspec"]["name"] == "python3" and meta["language_info"]["name"] == "python"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "strip outputs"
    first = code[0]
    assert "parameters" in first["metadata"].get("tags", []), "first code cell must be tagged 'parameters'"
    src = "".join(first["source"])
    names = {t.target.id for t in ast.parse(src).body if isinstance(t, ast.AnnAssign)}
    assert names == {"params_path", "output_root", "overrides"}
    assert nb["cells"][0]["cell_type"] == "markdown" and "".join(nb["cells"][0]["source"]).startswith("#")
    for c in code:
        tree = ast.parse("".join(line for line in c["source"] if not line.lstrip().startswith(("%", "!"))))
        defs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)]
        assert not defs, f"{path.name}: define functions in echoscript_utils, not in notebooks"


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo_outputs")
    params = REPO / "params" / "demo.yaml"
    results = pipeline.run_workbook(params, output_root=out, log=print)
    return load_config(params, output_root=out), results


@pytest.mark.notebook
def test_demo_workbook_runs_every_stage(demo_run):
    cfg, results = demo_run
    assert list(results) == [p.stem for p in NOTEBOOKS]
    assert all(r["status"] == "ran" for r in results.values())
    for stage in results:
        assert not pipeline.missing_products(cfg, stage), stage
        assert (cfg.paths.notebooks / f"{stage}.ipynb").is_file()
        assert pipeline.stage_complete(cfg, stage)
    report = cfg.paths.report.read_text()
    assert all(stage in report for stage in results)


@pytest.mark.notebook
def test_demo_workbook_figures_and_tables(demo_run):
    cfg, results = demo_run
    for stage in results:
        num = stage.split("_")[0]
        pngs = list(cfg.paths.figures.glob(f"{num}_*.png"))
        pdfs = list(cfg.paths.figures.glob(f"{num}_*.pdf"))
        assert pngs and len(pngs) == len(pdfs), f"{stage} should save each figure as PNG and PDF"
        assert all(p.stat().st_size > 2000 for p in pngs)


@pytest.mark.notebook
def test_demo_rerun_skips_everything(demo_run):
    cfg, _ = demo_run
    again = pipeline.run_workbook(cfg.source, output_root=cfg.params.run.output_root, log=print)
    assert all(r["status"] == "skipped" for r in again.values())


@pytest.mark.notebook
def test_demo_stage_metrics_are_recorded(demo_run):
    cfg, _ = demo_run
    for stage in STAGES:
        m = read_json(cfg.paths.metrics(stage))
        assert isinstance(m, dict) and m, stage
