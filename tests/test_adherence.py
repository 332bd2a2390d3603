"""Adherence: each metric separates truth from chance on the demo corpus, basic-pitch (ONNX) transcribes a rendered
melody, sidecar briefs, the CLI, and the adherence tables of stages 05 and 08."""

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import mir_eval
import numpy as np
import pandas as pd
import pretty_midi
import pytest
from screenplay_texts import SHORT

from echoscript_utils import adherence, generation, scoring
from echoscript_utils.artifacts import read_json, write_json
from echoscript_utils.audio import write
from echoscript_utils.cli import main
from echoscript_utils.config import load_config
from echoscript_utils.demo_corpus import build_corpus
from echoscript_utils.melody import demo_sketch
from echoscript_utils.models import resolve_model
from echoscript_utils.synth import render_midi

REPO = Path(__file__).resolve().parent.parent

#: The metrics the corpus validates (ceiling clears floor by MIN_MARGIN); the rest are reported as not validated.
VALIDATED = {"tempo_acc1", "tempo_acc2", "hit_rate", "hit_distance_s", "hit_rate_over_chance", "key_weighted", "melody_chroma_cosine",
             "melody_raw_pitch", "melody_raw_chroma", "melody_note_f1", "intensity_rho", "arc_rho", "length_error_s",
             "loudness_error_lu"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(out, n_tracks=8, min_duration_s=20, max_duration_s=32, progress=False)
    return out


def test_every_kept_metric_separates_truth_from_chance(corpus):
    v = adherence.validate(corpus, n_shuffles=10, seed=0).set_index("metric")
    assert VALIDATED <= set(v.index)
    for metric in VALIDATED:
        r = v.loc[metric]
        assert r["validated"], (metric, r.to_dict())
        assert r["margin"] >= adherence.MIN_MARGIN * (1 if r["higher_is_better"] else r["floor"]), metric
    # what the corpus cannot test is labelled, not dropped silently
    assert not v.loc["true_peak_over_db", "validated"]  # every corpus clip is under its ceiling: no contrast
    # the floors are chance: a shuffled tempo or key almost never matches
    assert v.loc["tempo_acc1", "floor"] < 0.2 and v.loc["key_weighted", "floor"] < 0.25
    assert v.loc["tempo_acc2", "ceiling"] >= 0.75 and v.loc["key_weighted", "ceiling"] >= 0.6
    # two worker processes analysing the clips give the same table
    pd.testing.assert_frame_equal(adherence.validate(corpus, n_shuffles=10, seed=0, num_workers=2).set_index("metric"),
                                  v)


def test_basic_pitch_onnx_recovers_a_rendered_melody(tmp_path):
    pm = pretty_midi.PrettyMIDI(str(demo_sketch(tmp_path / "sketch.mid", bpm=96)))
    pm.instruments = pm.instruments[:1]
    pm.instruments[0].program = 0  # piano: clear onsets
    wav = render_midi(pm, sr=44100)
    ref = adherence.midi_notes(pm)
    est = adherence.transcribe(wav, 44100)
    assert est.shape[1] == 3 and len(est) >= 0.8 * len(ref)
    hz = lambda n: 440.0 * 2 ** ((n[:, 2] - 69) / 12)  # noqa: E731
    p, r, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(ref[:, :2], hz(ref), est[:, :2], hz(est),
                                                                     offset_ratio=None)
    assert r >= 0.8 and f1 >= 0.6, (p, r, f1)  # MIREX 50 ms onsets, 50 cents
    scores = adherence.score_cue(adherence.analyse(wav, 44100, transcription=True),
                                 adherence.Brief(melody=ref))
    assert scores["melody_raw_pitch"] >= 0.5 and scores["melody_note_f1"] >= 0.5
    assert "tensorflow" not in sys.modules


def test_brief_from_sidecar_reads_the_spotting_fields(tmp_path):
    demo_sketch(tmp_path / "theme.mid", bpm=90)
    side = {"bpm": 90, "key": "d minor", "frames": 240, "fps": 24, "hits_s": [1.0, 4.5], "intensity": 0.7,
            "direction": "Urgent cue: build toward the end of the scene.", "theme": "theme.mid",
            "loudness_target_lufs": -23.0, "true_peak_target_dbtp": -2.0, "cue_s": 12.0, "duration_s": 10.0}
    b = adherence.brief_from_sidecar(side, folder=tmp_path)
    assert b.length_s == pytest.approx(10.0) and b.hits_s == [1.0, 4.5] and b.arc == "build"
    assert b.loudness_lufs == -23.0 and b.true_peak_dbtp == -2.0 and b.melody[:, 0].max() < 10.0
    assert adherence._mir_key(b.key) == "D minor" and adherence._mir_key("Bb major") == "A# major"
    # without spotting: the scene end inside the cue is the hit, the render's policy is the loudness target
    b = adherence.brief_from_sidecar({"cue_s": 12.0, "duration_s": 10.0, "settings": {"target_lufs": -18.5}})
    assert b.hits_s == [10.0] and b.loudness_lufs == -18.5 and b.key is None and b.melody is None
    assert adherence.brief_from_sidecar({}).length_s is None
    # a leitmotif named by its label loops over the cue; a user's theme elsewhere is found through midi=
    (tmp_path / "model").mkdir()
    side = {"leitmotif": "midi:theme.mid", "cue_s": 60.0}
    theme = adherence.midi_notes(tmp_path / "theme.mid")
    looped = adherence.brief_from_sidecar(side, folder=tmp_path / "model").melody
    assert len(looped) > len(theme) and looped[:, 0].max() < 60.0
    (tmp_path / "elsewhere").mkdir()
    shutil.move(tmp_path / "theme.mid", tmp_path / "elsewhere" / "theme.mid")
    assert adherence.brief_from_sidecar(side, folder=tmp_path / "model").melody is None
    found = adherence.brief_from_sidecar(side, folder=tmp_path / "model", midi=tmp_path / "elsewhere" / "theme.mid")
    np.testing.assert_allclose(found.melody, looped)


def _cue_folder(tmp_path: Path) -> Path:
    """Two 'models' × three cues rendered from MIDI at known tempo and key."""
    folder = tmp_path / "cues"
    for model, bpm in (("a", 90), ("b", 120)):
        for k in range(3):
            pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
            inst = pretty_midi.Instrument(program=0)
            spb = 60 / bpm
            for i in range(int(8 / spb)):
                pitch = (62, 65, 69, 65)[i % 4] + (12 if i % 8 == 0 else 0)
                inst.notes.append(pretty_midi.Note(velocity=70 + 10 * k, pitch=pitch, start=i * spb,
                                                   end=(i + 0.9) * spb))
            pm.instruments.append(inst)
            wav = render_midi(pm, sr=22050, duration_s=8.0)
            write(folder / model / f"cue{k + 1:03d}_s0.wav", wav, 22050)
            write_json(folder / model / f"cue{k + 1:03d}_s0.json",
                       {"model": model, "bpm": 90, "key": "D minor", "cue_s": 8.0, "intensity": 0.2 + 0.3 * k})
    return folder


def test_cli_scores_a_folder_and_names_bad_folders(tmp_path, capsys):
    folder = _cue_folder(tmp_path)
    assert main(["adherence", "--cues", str(folder), "--output", str(tmp_path / "adh.csv"),
                 "--no-transcription"]) == 0  # two worker processes by default
    table = pd.read_csv(tmp_path / "adh.csv")
    assert main(["adherence", "--cues", str(folder), "--output", str(tmp_path / "adh1.csv"),
                 "--no-transcription", "--workers", "1"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "adh1.csv"), table)  # the same table in one process
    assert list(table.columns[:4]) == ["model", "cue", "metric", "value"]
    per = table.pivot_table(index="model", columns="metric", values="value", aggfunc="mean")
    assert per.loc["a", "tempo_acc2"] > per.loc["b", "tempo_acc2"]  # a was asked for 90 bpm and plays at 90
    assert per.loc["a", "length_error_s"] < 0.01
    assert set(table.loc[table["metric"] == "intensity_rho", "cue"]) == {"*"}
    diff = adherence.paired_difference(table, a="a", b="b", n_boot=50)
    assert set(diff["metric"]) >= {"tempo_acc1", "key_weighted"} and (diff["n"] == 3).all()
    summary = adherence.adherence_summary(table, n_boot=50)
    assert {"mean", "ci_low", "ci_high", "n"} <= set(summary.columns)
    capsys.readouterr()
    for bad in (tmp_path / "missing", tmp_path):  # no folder; a folder without cues
        assert main(["adherence", "--cues", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and str(bad) in err and "\n" not in err
    assert main(["adherence", "--cues", str(folder), "--workers", "0"]) == 2
    assert "--workers 0" in capsys.readouterr().err
    (folder / "a" / "cue001_s0.json").write_text("{not json")
    assert main(["adherence", "--cues", str(folder)]) == 2
    assert "cue001_s0.json" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ stages
@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def test_generation_stage_writes_adherence(tmp_path, model_cache):
    cfg = load_config(REPO / "params" / "demo.yaml",
                      {"run.cache_dir": str(model_cache), "generation.duration_s": 1.0, "generation.seeds": [0],
                       "generation.use_eval_prompts": False, "generation.batch_size": 5, "generation.top_k": 20,
                       "curation.target_lufs": -14.0, "generation.melody_model": None},
                      output_root=tmp_path)
    cfg.paths.ensure()
    shutil.copytree(resolve_model("tiny-musicgen", cache_dir=cfg.paths.models, seed=cfg.seed),
                    cfg.paths.finetuning / "final")
    generation.run(cfg, progress=False)
    table = pd.read_csv(cfg.paths.generation / "adherence.csv")
    assert set(table["model"]) == {"musicgen", "echoscript"}
    assert {"tempo_acc1", "key_weighted", "length_error_s", "loudness_error_lu"} <= set(table["metric"])
    assert table.groupby("model")["cue"].nunique().eq(5).all()  # the five scenarios, same stems for both
    metrics = read_json(cfg.paths.generation / "metrics.json")
    assert set(metrics["adherence"]) == {"musicgen", "echoscript"} and metrics["adherence_seconds"] >= 0
    diff = adherence.paired_difference(table, a="musicgen", b="echoscript", n_boot=20)
    assert (diff["n"] == 5).all()


def test_scoring_stage_writes_adherence_with_text_rows(tmp_path, model_cache):
    cfg = load_config(REPO / "params" / "demo.yaml",
                      {"run.cache_dir": str(model_cache), "scoring.planner": "offline",
                       "scoring.words_per_minute": 600, "scoring.window_s": 1.0, "scoring.crossfade_s": 0.5,
                       "scoring.max_cue_s": 1.5, "scoring.seeds": [0], "scoring.leitmotif": True,
                       "scoring.bootstrap": 20, "generation.top_k": 20, "generation.continuation_context_s": 0.5,
                       "generation.crossfade_s": 0.2}, output_root=tmp_path)
    cfg.paths.ensure()
    script = tmp_path / "short.fountain"
    script.write_text(SHORT)
    res = scoring.score(script, cfg, output_dir=tmp_path / "scored", progress=False)
    table = pd.read_csv(tmp_path / "scored" / "adherence.csv")
    assert list(table.columns[:4]) == ["model", "cue", "metric", "value"]
    models = set(res.plan)
    assert set(table["model"]) == models and "leitmotif" in models
    assert {"clap_own", "clap_margin", "tempo_acc1", "length_error_s"} <= set(table["metric"])
    assert {"melody_chroma_cosine", "melody_raw_pitch", "melody_note_f1"} <= \
        set(table.loc[table["model"] == "leitmotif", "metric"])
    assert (table.loc[table["metric"] == "length_error_s", "value"] < 0.01).all()
    assert set(res.metrics["adherence"]) == models and res.metrics["adherence_seconds"] >= 0
    assert len(res.adherence) == len(table)
    np.testing.assert_allclose(np.sort(res.adherence["value"].astype(float)), np.sort(table["value"]))


def test_validation_figure_leaves_out_what_the_corpus_cannot_validate():
    from echoscript_utils.plots import adherence as aplots

    v = pd.DataFrame([["tempo_acc1", 0.8, 0.05, 0.75, 12, True, True],
                      ["length_error_s", 0.0, 4.0, 4.0, 12, False, True],
                      ["true_peak_over_db", 0.0, 0.0, 0.0, 12, False, False]], columns=adherence.VALIDATION_COLUMNS)
    summary = pd.DataFrame({"model": ["musicgen", "musicgen"], "metric": ["tempo_acc1", "length_error_s"],
                            "mean": [0.1, 2.0]})
    ax = aplots.validation_bars(v, summary)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["tempo_acc1", "length_error_s"]
    assert "true_peak_over_db" in ax.get_title(loc="left")
    heights = sorted(round(p.get_height(), 3) for p in ax.patches)
    assert heights == [0.0, 0.05, 0.1, 0.5, 0.8, 1.0]  # error metrics as 1 − error / floor
    # four models, each its own colour (stage 08's echoscript and leitmotif were both drawn red)
    four = pd.DataFrame({"model": ["echoscript", "leitmotif", "musicgen", "other"], "metric": ["tempo_acc1"] * 4,
                         "mean": [0.1, 0.2, 0.3, 0.4]})
    ax = aplots.validation_bars(v, four)
    handles, labels = ax.get_legend_handles_labels()
    colours = {label: tuple(h.patches[0].get_facecolor()) for h, label in zip(handles, labels, strict=True)}
    assert len(set(colours.values())) == len(colours) == 6  # ceiling, floor and the four models


def test_evaluation_stage_reports_the_generation_adherence(tmp_path):
    from echoscript_utils import evaluation

    gen = tmp_path / "05_generation"
    (gen / "musicgen").mkdir(parents=True)
    wav = gen / "musicgen" / "a_s0.wav"
    wav.touch()
    sets = evaluation.EvaluationSets(reference=[], reference_source="test", generated={"musicgen": [wav]},
                                     prompts={"musicgen": [None]})
    assert evaluation.generation_adherence(sets) == []  # no adherence.csv: nothing to report
    pd.DataFrame({"model": ["musicgen"] * 3, "cue": ["a_s0", "b_s0", "c_s0"], "metric": ["key_weighted"] * 3,
                  "value": [1.0, 0.5, 0.0]}).to_csv(gen / "adherence.csv", index=False)
    (row,) = evaluation.generation_adherence(sets, n_boot=50)
    assert row["model"] == "musicgen" and row["metric"] == "key_weighted" and row["value"] == pytest.approx(0.5)
    assert row["n"] == 3 and row["ci_low"] <= 0.5 <= row["ci_high"]


def test_hits_on_dense_onsets_score_no_better_than_chance():
    """A cue with an onset every 100 ms puts any hit within ±70 ms of one: hit_rate 1, but nothing over chance."""
    an = adherence.CueAnalysis(duration_s=10.0, bpm=None, key=None, onsets_s=np.arange(0, 10, 0.1),
                               beats_s=np.empty(0), lufs=-20.0, true_peak_dbtp=-3.0, onset_density=10.0,
                               curve_db=np.zeros(10), chroma=np.zeros((10, 12)), notes=None)
    dense = adherence.score_cue(an, adherence.Brief(hits_s=[1.23, 4.56, 7.89]))
    assert dense["hit_rate"] == 1.0 and abs(dense["hit_rate_over_chance"]) < 0.01
    sparse = replace(an, onsets_s=np.array([1.23, 4.56, 7.89]))
    got = adherence.score_cue(sparse, adherence.Brief(hits_s=[1.23, 4.56, 7.89]))
    assert got["hit_rate"] == 1.0 and got["hit_rate_over_chance"] > 0.9


def test_delivery_targets_are_judged_where_they_apply(tmp_path):
    """A delivered stem is checked for the true-peak ceiling on the stem itself (the loudness target belongs to the
    programme, not to one cue); a cue with no delivered stem is held to the level it was standardised to."""
    from echoscript_utils.audio import loudness

    sr = 44100
    t = np.arange(4 * sr) / sr
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    (tmp_path / "m").mkdir()
    (tmp_path / "delivery").mkdir()
    write(tmp_path / "m" / "cue.wav", tone[None], sr, subtype="FLOAT")
    write(tmp_path / "delivery" / "stem.wav", 3.2 * tone[None], sr, subtype="FLOAT")  # peaks at -0.35 dBFS
    own = loudness(tone[None], sr)
    side = {"model": "m", "loudness_target_lufs": -23.0, "true_peak_target_dbtp": -1.0, "stem": "delivery/stem.wav",
            "settings": {"target_lufs": round(own, 3), "peak_limit_db": -1.0}}

    def scores():
        (tmp_path / "m" / "cue.json").write_text(json.dumps(side))
        table = adherence.score_folder(tmp_path / "m", transcription=False)
        return dict(zip(table["metric"], table["value"]))

    got = scores()
    assert "loudness_error_lu" not in got and got["true_peak_over_db"] == pytest.approx(20 * np.log10(0.96) + 1, abs=0.05)
    side["stem"] = None
    got = scores()
    assert got["loudness_error_lu"] == pytest.approx(0.0, abs=0.01) and got["true_peak_over_db"] == 0.0


def test_worker_processes_score_a_folder_as_one_process_does(tmp_path):
    sr = 22050
    rng = np.random.default_rng(3)
    (tmp_path / "m").mkdir()
    for i, bpm in enumerate((90, 120, 150)):
        t = np.arange(3 * sr) / sr
        clicks = (np.sin(2 * np.pi * t * bpm / 60) > 0.99) * 0.5  # a beat at the cue's tempo over noise
        write(tmp_path / "m" / f"cue{i}.wav", (clicks + 0.01 * rng.standard_normal(t.size))[None], sr)
        (tmp_path / "m" / f"cue{i}.json").write_text(json.dumps({"model": "m", "bpm": bpm, "intensity": i / 2}))
    one = adherence.score_folder(tmp_path / "m", transcription=False)
    two = adherence.score_folder(tmp_path / "m", transcription=False, num_workers=2)
    assert len(one) > 3 and set(one["cue"]) >= {"cue0", "cue1", "cue2"}
    pd.testing.assert_frame_equal(one, two)


def test_workers_start_from_compiled_code_on_a_fresh_install(tmp_path):
    """On a fresh install (numba's cache empty) with BLAS on every core, two workers that each compiled the analysis
    code crashed the pool (stage 05 of the demo), and could leave numba's cache half written; it is compiled once
    before the fork."""
    import os
    import subprocess

    sr = 44100
    rng = np.random.default_rng(3)
    (tmp_path / "m").mkdir()
    t = np.arange(4 * sr) / sr
    for i, bpm in enumerate((90, 120, 150, 100)):
        clicks = (np.sin(2 * np.pi * t * bpm / 60) > 0.99) * 0.5  # a beat at the cue's tempo over noise
        write(tmp_path / "m" / f"cue{i}.wav", (clicks + 0.01 * rng.standard_normal(t.size))[None], sr)
        (tmp_path / "m" / f"cue{i}.json").write_text(json.dumps({"model": "m", "bpm": bpm, "intensity": i / 3}))
    code = ("import sys; from echoscript_utils import adherence; "
            "print(len(adherence.score_folder(sys.argv[1], transcription=False, num_workers=2)))")
    # as a user runs it: numba's cache empty, BLAS on every core (this suite pins it to one thread)
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba-cache")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m")], env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert int(run.stdout.strip().splitlines()[-1]) > 3
