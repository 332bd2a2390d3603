"""Script to score on real screenplays written by other people (``../shared/screenplays`` beside the checkout, or
``$ECHOSCRIPT_SCREENPLAYS``): the planner measured on independently labelled real scenes, real short scripts
scored end to end, and a failure after planning that leaves no partial product set."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from echoscript_utils import scoring
from echoscript_utils.cli import main
from echoscript_utils.config import load_config
from echoscript_utils.errors import OutputError, StageError
from echoscript_utils.scoring import plan
from echoscript_utils.scoring.planner_eval import (
    SCREENPLAYS_ENV,
    evaluate_planner,
    label_agreement,
    labelled_scenes,
    load_scene_labels,
)
from echoscript_utils.taxonomy import MOODS

REPO = Path(__file__).resolve().parents[1]


SHARED = Path(os.environ[SCREENPLAYS_ENV]) if os.environ.get(SCREENPLAYS_ENV) else None  # set by conftest
needs_shared = pytest.mark.skipif(SHARED is None, reason="the shared screenplay corpus (../shared/screenplays or "
                                                         f"${SCREENPLAYS_ENV}) is not beside this checkout")


# ------------------------------------------------------------------------------------------------ the labels
def test_labels_keep_scripts_whole_and_big_fish_out():
    df = load_scene_labels()
    assert set(df["split"]) == {"dev", "test"} and set(df["mood"]) == set(MOODS)
    assert df.groupby("script")["split"].nunique().max() == 1  # no script in both splits
    assert not df["title"].str.contains("big fish", case=False).any()
    assert not df["file"].str.contains("big-fish", case=False).any()
    assert "text" not in df.columns  # no scene text is redistributed
    assert df["scene_id"].is_unique and df["intensity"].between(0, 1).all()
    both = df[df["mood_b"].isin(MOODS)]
    agree = label_agreement(both)
    # two readers, independently: measured 0.92 agreement, kappa 0.88, intensity rho 0.97 on 455 scenes
    assert agree["n"] == 455 and agree["mood_agreement"] >= 0.9 and agree["intensity_spearman"] >= 0.9


@needs_shared
def test_empath_counts_equal_empath_analyze_on_real_scenes():
    """The planner's Empath counts (index built once) equal Empath's own analyze on every part of real scenes."""
    from empath import Empath

    from echoscript_utils.scoring.scene_model import empath_counts

    lexicon = Empath()
    df = labelled_scenes(SHARED)
    texts = [t.lower() for col in ("heading", "action", "dialogue") for t in df[col].head(60)]
    assert sum(bool(t.strip()) for t in texts) > 120
    for text in texts:
        assert empath_counts(text) == lexicon.analyze(text, normalize=False)
    assert any(sum(empath_counts(t).values()) > 5 for t in texts)


@needs_shared
def test_labelled_shared_scenes_are_found_by_the_parser():
    df = labelled_scenes(SHARED)
    shared = load_scene_labels().query("shared == True")
    assert len(df) == len(shared) == 171 and df["matched"].all()
    assert (df["action"].str.len() + df["dialogue"].str.len() > 0).all()


@needs_shared
def test_offline_planner_on_real_test_scenes():
    scores, table = evaluate_planner(SHARED, split="test", n_boot=200)
    assert scores["n"] == 107 and set(scores["scripts"]) == {"dde", "lbc", "mlm", "prt", "sfl", "trn"}
    assert set(table["pred_mood"]) <= set(MOODS)
    assert scores["accuracy_ci"][0] <= scores["accuracy"] <= scores["accuracy_ci"][1]
    # Measured on these 107 scenes: mood accuracy 0.50 (majority class 0.56), intensity rho 0.50, MAE 0.146 vs
    # 0.177 for the mean (all 225 test scenes, with the three test scripts outside the shared corpus: 0.52, rho
    # 0.62). Far from the goal (0.70 / 0.65); these floors only guard against getting worse.
    assert scores["accuracy"] >= 0.35 and scores["intensity_spearman"] >= 0.25
    assert scores["intensity_mae"] <= scores["intensity_mae_mean_baseline"] + 0.01


def _training_script():
    """``scripts/train_scene_planner.py`` as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_scene_planner", REPO / "scripts" / "train_scene_planner.py")
    train = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train)
    return train


@needs_shared
def test_the_training_script_refits_on_dev_and_compares_features(tmp_path, capsys):
    import json

    train = _training_script()
    out = tmp_path / "planner.json"
    # the shared corpus holds four of the sixteen dev scripts (64 scenes); no test script is read
    assert train.main(["--screenplays", str(SHARED), "--out", str(out)]) == 0
    fit = json.loads(out.read_text())["fit"]
    assert fit["split"] == "dev" and fit["scenes"] == 64 and fit["scripts"] == ["bas", "hbs", "lyh", "sam"]
    assert sum(fit["mood_counts"].values()) == 64 and fit["cv"]["folds"] == 4
    capsys.readouterr()
    encoder = _tiny_encoder(tmp_path / "encoder")
    assert train.main(["--screenplays", str(SHARED), "--out", str(tmp_path / "not-written.json"), "--ablation",
                       "--encoder", str(encoder)]) == 0
    printed = capsys.readouterr().out
    accuracies = [float(a) for a in re.findall(r" (\d\.\d{3})  \(C=", printed)]
    assert len(accuracies) == 6 and all(0.0 < a < 1.0 for a in accuracies)  # one per feature set, two with the encoder
    assert "(not all-MiniLM-L6-v2)" in printed
    assert not (tmp_path / "not-written.json").exists()


def _tiny_encoder(folder: Path) -> Path:
    """A BERT of random weights with a 16-token window and a word-level vocabulary, saved as a transformers folder."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True)
    words = sorted({w for line in (REPO / "echoscript_utils" / "data" / "tiny_vocab.txt").read_text().splitlines()
                    if not line.startswith("#") for w in line.lower().split()})
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizer(str(folder / "vocab.txt"), model_max_length=16).save_pretrained(folder)
    config = BertConfig(vocab_size=len(words) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16)
    BertModel(config).save_pretrained(folder)
    return folder


def test_the_encoder_reads_a_long_scene_in_windows(tmp_path):
    import numpy as np

    train = _training_script()
    folder = _tiny_encoder(tmp_path / "encoder")
    words = "guitar piano violin strings drums cello viola harp flute oboe clarinet horn trumpet brass choir bass".split()
    first, rest = " ".join(words[:14]), " ".join(words[14:])  # a 16-token window holds 14 words and [CLS], [SEP]
    whole, a, b, empty = train.encoder_embeddings(folder, [" ".join(words), first, rest, ""])
    assert np.allclose(np.linalg.norm([a, b], axis=1), 1.0)
    # the second window is padded beside the first; its mean must not see the padding
    assert np.allclose(whole, (14 * a + 2 * b) / 16, atol=1e-6)
    assert not np.allclose(a, b) and not empty.any()


# ------------------------------------------------------------------------------------------------ the planner
def test_offline_planner_flags_scenes_without_evidence():
    (cue,) = plan.offline_plan(plan_scenes := scoring.parse.parse_fountain(
        "INT. ROOM - DAY\n\nQqq xvq.\n").scenes)
    assert plan_scenes[0].heading == "INT. ROOM - DAY"
    assert cue.confidence == 0.0 and "No mood evidence" in cue.direction
    read = plan.offline_cue("EXT. GRAVEYARD - DUSK", "She weeps at her father's grave.")
    assert read.mood == "melancholic" and 0.25 < read.confidence <= 1.0


def test_neighbouring_scenes_smooth_the_mood():
    from echoscript_utils.scoring.scene_model import load_scene_model

    model = load_scene_model()
    assert 0 < model.smoothing < 0.5
    import numpy as np

    p = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [1.0, 0, 0, 0]])
    s = model.smooth(p)
    assert s[1, 0] == pytest.approx(2 * model.smoothing) and np.allclose(s.sum(1), 1)


# ------------------------------------------------------------------------------------------------ scoring
@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _cfg(tmp_path, model_cache, **over):
    base = {"run.cache_dir": str(model_cache), "scoring.planner": "offline", "scoring.words_per_minute": 900,
            "scoring.window_s": 1.0, "scoring.crossfade_s": 0.2, "scoring.max_cue_s": 0.4, "scoring.seeds": [0],
            "scoring.leitmotif": False, "scoring.bootstrap": 50, "generation.top_k": 20,
            "generation.continuation_context_s": 0.2, "generation.crossfade_s": 0.1}
    base.update(over)
    cfg = load_config(REPO / "params" / "demo.yaml", base, output_root=tmp_path)
    cfg.paths.ensure()
    return cfg


PRODUCTS = ("cue_sheet.csv", "cue_sheet.tex", "scenes.csv", "timeline.png", "players.html", "relevance.csv",
            "metrics.json", "screenplay.json", "score.wav")


@needs_shared
@pytest.mark.parametrize("name", ["silent-as-murderers.fountain", "brick-and-steel.fdx"])
def test_real_short_scripts_score_with_every_product(tmp_path, model_cache, name, capsys):
    """Silent as Murderers crashed in the CLAP relevance step (scenes past 512 tokens) and left a half-written
    run; both scripts now write every product from the command line."""
    out = tmp_path / "scored"
    sets = ["--set", f"run.cache_dir={model_cache}", "--set", "scoring.leitmotif=false", "--set",
            "scoring.words_per_minute=900", "--set", "scoring.max_cue_s=0.4", "--set", "scoring.window_s=1",
            "--set", "scoring.bootstrap=50", "--set", "scoring.planner=offline",
            "--set", f"run.output_root={tmp_path / 'runs'}"]
    assert main(["score", str(SHARED / name), "--params", str(REPO / "params" / "demo.yaml"), "--output",
                 str(out), *sets]) == 0
    for product in PRODUCTS:
        assert (out / product).is_file(), product
    sheet = pd.read_csv(out / "cue_sheet.csv")
    scenes = pd.read_csv(out / "scenes.csv")
    assert not (scenes["heading"] == "OPENING").any()  # no title page leaked into a scene of its own
    assert len(sheet) == len(scenes) and sheet["planner_confidence"].between(0, 1).all()
    rel = pd.read_csv(out / "relevance.csv")
    assert len(rel) == 1 and rel["n"].iloc[0] == len(scenes)
    assert not list(tmp_path.glob(".scored.*"))  # no staging folder left behind


def test_a_failure_after_planning_leaves_no_partial_products(tmp_path, model_cache, monkeypatch):
    cfg = _cfg(tmp_path, model_cache, **{"scoring.relevance": False})
    script = tmp_path / "s.fountain"
    script.write_text("INT. KITCHEN - DAY\n\nAnna pours tea.\n\nEXT. STREET - NIGHT\n\nSirens. Ben runs!\n")
    out = tmp_path / "scored"

    def broken(*a, **k):
        raise RuntimeError("disk on fire")

    # a fresh folder: a failure leaves nothing at all
    monkeypatch.setattr("echoscript_utils.scoring.stage._assemble", broken)
    with pytest.raises(StageError) as err:
        scoring.score(script, cfg, output_dir=out, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "assembling the score" in msg and "s.fountain" in msg and "disk on fire" in msg
    assert not out.exists() and not list(tmp_path.glob(".scored.*"))
    monkeypatch.undo()

    # a complete run, then a rerun that fails: the earlier product set stays exactly as it was
    scoring.score(script, cfg, output_dir=out, progress=False)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert {Path(x) for x in PRODUCTS if x != "relevance.csv"} <= set(before)
    script.write_text("INT. KITCHEN - DAY\n\nAnna pours tea, smiling.\n\nEXT. STREET - NIGHT\n\nSirens. Ben runs!\n")
    monkeypatch.setattr("echoscript_utils.scoring.stage._write_sheets", broken)
    with pytest.raises(StageError, match="writing the scene table"):
        scoring.score(script, cfg, output_dir=out, progress=False)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and not list(tmp_path.glob(".scored.*"))

    # a generation failure names the scene it was on
    monkeypatch.undo()
    monkeypatch.setattr("echoscript_utils.scoring.generate._render_cue", broken)
    with pytest.raises(StageError, match=r"generating the cues \(scene 1, musicgen\)"):
        scoring.score(script, cfg, output_dir=out, progress=False)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_the_notebook_finds_the_shared_corpus_beside_the_checkout(tmp_path, monkeypatch):
    from echoscript_utils.scoring import stage

    cfg = load_config(REPO / "params" / "demo.yaml", output_root=tmp_path)
    monkeypatch.delenv(SCREENPLAYS_ENV, raising=False)
    assert stage.BESIDE_CHECKOUT == REPO.parent / "shared" / "screenplays"
    assert stage.labelled_screenplays(cfg) == (stage.BESIDE_CHECKOUT if stage.BESIDE_CHECKOUT.is_dir() else None)
    monkeypatch.setenv(SCREENPLAYS_ENV, str(tmp_path / "missing"))
    assert stage.labelled_screenplays(cfg) is None  # a folder named but absent is not replaced by another
    monkeypatch.setenv(SCREENPLAYS_ENV, str(tmp_path))
    assert stage.labelled_screenplays(cfg) == tmp_path


def test_a_folder_of_other_files_is_refused(tmp_path, model_cache):
    cfg = _cfg(tmp_path, model_cache, **{"scoring.relevance": False})
    script = tmp_path / "s.fountain"
    script.write_text("INT. KITCHEN - DAY\n\nAnna pours tea.\n")
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(OutputError, match="holds files this command did not write"):
        scoring.score(script, cfg, output_dir=other, progress=False)
    assert [p.name for p in other.iterdir()] == ["thesis.tex"]


def test_cyrillic_script_is_refused_by_the_offline_planner(tmp_path, model_cache, capsys):
    script = tmp_path / "ru.fountain"
    script.write_text(".ИНТ. КВАРТИРА - НОЧЬ\n\nАнна сидит у окна и смотрит на дождь.\n")
    out = tmp_path / "never"
    rc = main(["score", str(script), "--params", str(REPO / "params" / "demo.yaml"), "--output", str(out),
               "--set", f"run.cache_dir={model_cache}", "--set", "scoring.planner=offline",
               "--set", f"run.output_root={tmp_path / 'runs'}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "ru.fountain" in err and "Latin" in err
    assert not out.exists()


def test_long_real_scene_shows_in_progress_per_cue(tmp_path, model_cache, capsys):
    """The progress bar counts cues (tqdm writes to stderr; it always draws its empty state, while later redraws
    depend on speed)."""
    cfg = _cfg(tmp_path, model_cache, **{"scoring.relevance": False})
    script = tmp_path / "s.fountain"
    script.write_text("".join(f"INT. ROOM {i} - DAY\n\nAnna waits.\n\n" for i in range(1, 5)))
    shutil.rmtree(tmp_path / "o", ignore_errors=True)
    scoring.score(script, cfg, output_dir=tmp_path / "o", progress=True)
    err = capsys.readouterr().err
    assert re.search(r"cues musicgen:\s+0%\|[^|]*\| 0/4", err)  # one step per cue, four cues
