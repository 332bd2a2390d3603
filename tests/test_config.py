"""Parameter files: validation, one-line errors naming key and file, path resolution, overrides."""

from pathlib import Path

import pytest

from echoscript_utils.cli import main
from echoscript_utils.config import STAGES, load_config, parse_override, stage_name
from echoscript_utils.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["demo.yaml", "colab_a100.yaml", "paper.yaml"])
def test_shipped_params_validate(name):
    cfg = load_config(REPO / "params" / name)
    assert cfg.paths.root == (REPO / "outputs" / cfg.run.name).resolve()
    assert cfg.paths.stage("01") == cfg.paths.root / "01_curation"


def test_paper_profile_has_the_papers_settings():
    t = load_config(REPO / "params" / "paper.yaml").training
    assert (t.batch_size, t.learning_rate, t.epochs, t.scheduler, t.precision) == (12, 5e-5, 10, "cosine", "fp16")
    assert t.model == "facebook/musicgen-small"


def test_relative_paths_resolve_against_the_file(tmp_path):
    p = tmp_path / "sub" / "p.yaml"
    p.parent.mkdir()
    p.write_text("run: {name: x, output_root: out}\ndata: {input_dir: music}\n")
    cfg = load_config(p)
    assert cfg.paths.root == tmp_path / "sub" / "out" / "x"
    assert cfg.data.input_dir == tmp_path / "sub" / "music"
    assert cfg.paths.cache == tmp_path / "sub" / "out" / ".cache"


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("training:\n  epoch: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert "training.epoch" in msg and str(p) in msg and "\n" not in msg


def test_ill_typed_value_names_key(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("training:\n  learning_rate: fast\n")
    with pytest.raises(ConfigError, match=r"training\.learning_rate"):
        load_config(p)


def test_bad_yaml_and_missing_file(tmp_path):
    p = tmp_path / "broken.yaml"
    p.write_text("run: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    q = tmp_path / "list.yaml"
    q.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(q)


def test_overrides_are_dotted_and_typed():
    cfg = load_config(REPO / "params" / "demo.yaml", dict([parse_override("training.epochs=2")]))
    assert cfg.training.epochs == 2
    with pytest.raises(ConfigError):
        load_config(REPO / "params" / "demo.yaml", {"training.epochs": "many"})
    with pytest.raises(ConfigError):
        parse_override("training.epochs")


def test_run_name_must_be_a_plain_folder_name(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("run: {name: ../escape}\n")
    with pytest.raises(ConfigError, match="run.name"):
        load_config(p)


def test_stage_names():
    assert stage_name(1) == "01_curation" and stage_name("07") == "07_listening"
    assert stage_name("alignment") == "03_alignment"
    assert len(STAGES) == 8 and stage_name("08") == "08_scoring"
    with pytest.raises(ConfigError):
        stage_name("09")


def test_section_hash_changes_with_values():
    a = load_config(REPO / "params" / "demo.yaml")
    b = load_config(REPO / "params" / "demo.yaml", {"training.epochs": 9})
    assert a.section_hash("curation") == b.section_hash("curation")
    assert a.section_hash("training") != b.section_hash("training")


def test_cli_bad_params_exit_2(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("nonsense_section: {}\n")
    assert main(["run", str(p), "--output-root", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "nonsense_section" in err and len(err.splitlines()) == 1


def test_builtin_defaults_write_under_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None)
    assert cfg.paths.root == tmp_path / "outputs" / "demo"
    assert cfg.paths.cache == tmp_path / "outputs" / ".cache"
