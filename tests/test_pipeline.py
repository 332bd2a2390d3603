"""The papermill runner on small throwaway notebooks: order, skipping, failure messages, report."""

import json
import os
from pathlib import Path

import pytest

from echoscript_utils import pipeline
from echoscript_utils.cli import main
from echoscript_utils.errors import StageError

REPO = Path(__file__).resolve().parent.parent


def _notebook(code_cells):
    cells = [{"cell_type": "code", "execution_count": None, "id": "p", "metadata": {"tags": ["parameters"]},
              "outputs": [], "source": 'params_path: str = ""\noutput_root: str = ""\noverrides: dict = {}'}]
    for i, src in enumerate(code_cells):
        cells.append({"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
                      "source": src})
    return {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                        "language": "python"},
                                         "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}


SETUP = ("from echoscript_utils import pipeline\n"
         "from echoscript_utils.artifacts import write_metrics\n"
         "cfg = pipeline.notebook_setup(params_path, overrides=overrides, output_root=output_root, stage='{s}')\n")


@pytest.fixture
def nbdir(tmp_path, monkeypatch):
    d = tmp_path / "notebooks"
    d.mkdir()
    monkeypatch.setattr(pipeline, "notebooks_dir", lambda: d)
    monkeypatch.setattr(pipeline, "STAGE_PRODUCTS", {"01_curation": ("extra.txt",)})
    return d


def _write(d, stage, body):
    (d / f"{stage}.ipynb").write_text(json.dumps(_notebook([SETUP.format(s=stage) + body])))


def test_runs_in_order_skips_complete_and_reruns_downstream(nbdir, tmp_path):
    log = tmp_path / "order.txt"
    for stage in ("01_curation", "02_annotation"):
        _write(nbdir, stage, f"open({str(log)!r}, 'a').write('{stage}\\n')\n"
                             f"(cfg.paths.stage('{stage}') / 'extra.txt').write_text('x')\n"
                             f"write_metrics(cfg.paths.stage('{stage}'), {{'n': 1}})\n")
    out = tmp_path / "out"
    params = REPO / "params" / "demo.yaml"
    res = pipeline.run_workbook(params, output_root=out, log=lambda *a: None)
    assert [r["status"] for r in res.values()] == ["ran", "ran"]
    assert log.read_text().split() == ["01_curation", "02_annotation"]
    assert (out / "demo" / "notebooks" / "01_curation.ipynb").is_file()
    report = (out / "demo" / "report.html").read_text()
    assert "01_curation" in report and "02_annotation" in report
    # second run: both complete → skipped
    res = pipeline.run_workbook(params, output_root=out, log=lambda *a: None)
    assert [r["status"] for r in res.values()] == ["skipped", "skipped"]
    # a changed annotation parameter reruns stage 02 only
    res = pipeline.run_workbook(params, output_root=out, overrides={"annotation.top_k": 5}, log=lambda *a: None)
    assert [r["status"] for r in res.values()] == ["skipped", "ran"]
    # --redo of stage 01 forces 02 as well
    res = pipeline.run_workbook(params, output_root=out, redo=True, stages=["01"], log=lambda *a: None)
    assert list(res) == ["01_curation"]


def test_failure_names_stage_and_notebook(nbdir, tmp_path):
    _write(nbdir, "01_curation", "raise ValueError('boom in curation')\n")
    with pytest.raises(StageError) as e:
        pipeline.run_workbook(REPO / "params" / "demo.yaml", output_root=tmp_path / "o", log=lambda *a: None)
    msg = str(e.value)
    assert "01_curation" in msg and "boom in curation" in msg and "notebooks/01_curation.ipynb" in msg


def test_stage_without_declared_products_fails(nbdir, tmp_path):
    _write(nbdir, "01_curation", "x = 1\n")
    with pytest.raises(StageError, match="metrics.json, extra.txt"):
        pipeline.run_workbook(REPO / "params" / "demo.yaml", output_root=tmp_path / "o", log=lambda *a: None)


def test_cli_run_exit_codes(nbdir, tmp_path, capsys):
    _write(nbdir, "01_curation", "raise RuntimeError('nope')\n")
    assert main(["run", str(REPO / "params" / "demo.yaml"), "--output-root", str(tmp_path / "o")]) == 2
    assert "01_curation" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2


def test_unwritable_output_root(tmp_path, capsys):
    if os.geteuid() == 0:
        target = "/proc/echoscript-cannot-write-here"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = str(ro / "x")
    assert main(["run", str(REPO / "params" / "demo.yaml"), "--output-root", target]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "writable" in err


def test_missing_music_folder_is_named_before_anything_runs(tmp_path, capsys):
    code = main(["run", str(REPO / "params" / "demo.yaml"), "--set", f"data.input_dir={tmp_path / 'nope'}",
                 "--output-root", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "data.input_dir" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "demo" / "notebooks" / "01_curation.ipynb").exists()


def test_kernels_talk_over_private_sockets_without_a_tcp_warning(nbdir, tmp_path, capfd):
    """The kernel's warning about unencrypted TCP reached the run log once per stage; kernels now use IPC sockets
    in a temporary folder of their own (nothing is left beside the notebooks)."""
    _write(nbdir, "01_curation", "import json\nimport ipykernel\n"
                                 "info = json.load(open(ipykernel.get_connection_file()))\n"
                                 "(cfg.paths.stage('01_curation') / 'extra.txt').write_text(info['transport'])\n"
                                 "write_metrics(cfg.paths.stage('01_curation'), {'n': 1})\n")
    out = tmp_path / "out"
    pipeline.run_workbook(REPO / "params" / "demo.yaml", output_root=out, log=lambda *a: None)
    assert (out / "demo" / "01_curation" / "extra.txt").read_text() == "ipc"
    assert "without encryption" not in capfd.readouterr().err
    assert sorted(p.name for p in nbdir.iterdir()) == ["01_curation.ipynb"]
