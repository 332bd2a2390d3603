"""Script to score: the Fountain/FDX parser on the format's edge cases, cue planning (offline accuracy, the LLM path
against a local fake server), cue timing and crossfades, score.wav assembly, sidecars, the rerun skip, bad inputs
and the CLI."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from fountain import FDXRenderer, FountainParser
from screenplay_texts import SHORT
from test_prompts import FakeOpenAI, _reply

from echoscript_utils import audio, scoring
from echoscript_utils.artifacts import read_json
from echoscript_utils.cli import main
from echoscript_utils.config import load_config
from echoscript_utils.errors import InputError
from echoscript_utils.models import resolve_model
from echoscript_utils.scoring import parse, plan, timeline
from echoscript_utils.scoring.generate import scoring_models
from echoscript_utils.taxonomy import MOODS

REPO = Path(__file__).resolve().parent.parent

EDGE = """Title: The Lighthouse Test
Credit: written by
Author: Nobody
Draft date: 1 Dec

FADE IN:

INT. KITCHEN - NIGHT

Rain hammers the window. MARA (40s) waits.

MARA
(quietly)
He's late.

.THE BASEMENT
Water rises around the boiler.

>THE END<

EXT. CLIFF - DAY
Waves crash below as Mara runs to the edge.

BRAM ^
Stop!

MARA ^
Never!

[[This note should vanish.]]
/* A cut scene
INT. CUT SCENE - DAY

Nobody should hear this.
*/

CUT TO:

INT. LIGHTHOUSE - CONTINUOUS

She climbs. [[inline note]] The lamp turns.

.FLASHBACK
>A YEAR EARLIER<

Sunlight. Children laugh on the beach.

> FADE OUT.
"""



# ------------------------------------------------------------------------------------------------ parsing
def test_fountain_edge_cases():
    sp = parse.parse_fountain(EDGE, source="edge.fountain")
    heads = [s.heading for s in sp.scenes]
    # forced headings, and a heading followed directly by action, are scenes; FADE IN/CUT TO are not
    assert heads == ["INT. KITCHEN - NIGHT", "THE BASEMENT", "EXT. CLIFF - DAY", "INT. LIGHTHOUSE - CONTINUOUS",
                     "FLASHBACK"]
    assert sp.title_page["title"] == "The Lighthouse Test" and sp.title_page["author"] == "Nobody"
    kitchen, basement, cliff, lighthouse, flashback = sp.scenes
    assert kitchen.characters == ["MARA"] and kitchen.dialogue == ["He's late."]  # parenthetical is not dialogue
    assert basement.action == ["Water rises around the boiler.", "THE END"]  # centred text is kept
    assert cliff.action[0] == "Waves crash below as Mara runs to the edge."
    assert cliff.characters == ["BRAM", "MARA"] and cliff.dialogue == ["Stop!", "Never!"]  # dual dialogue
    assert cliff.transitions == ["CUT TO:"]
    everything = " ".join(s.text + " ".join(s.dialogue) for s in sp.scenes)
    assert "note" not in everything and "Nobody should hear" not in everything and "CUT SCENE" not in everything
    assert lighthouse.action == ["She climbs. The lamp turns."]  # inline note removed
    assert flashback.action[0] == "A YEAR EARLIER" and "Sunlight" in flashback.action[1]
    # line numbers are those of the original text (the inserted blank line does not shift them)
    lines = EDGE.split("\n")
    for s in sp.scenes:
        assert s.heading in lines[s.line - 1].lstrip(".")


def test_the_heading_fix_is_needed_by_the_parser_itself():
    """fountain-py on its own reads a heading followed directly by action as action: the case we handle."""
    doc = FountainParser().parse(EDGE)
    texts = [(e.type.value, e.text) for e in doc.elements]
    assert ("action", "EXT. CLIFF - DAY\nWaves crash below as Mara runs to the edge.") in texts
    fixed, origin = parse._separate_headings(EDGE)
    new_lines = fixed.split("\n")
    assert len(new_lines) == len(EDGE.split("\n")) + 1  # one blank line, after EXT. CLIFF (forced ones parse fine)
    k = new_lines.index("EXT. CLIFF - DAY")
    assert new_lines[k + 1] == "" and origin[k] == origin[k + 1] and origin[-1] == len(EDGE.split("\n"))
    assert "EXT. CLIFF - DAY" in [e.text for e in FountainParser().parse(fixed).elements]


def test_heading_fix_leaves_boneyard_and_notes_alone():
    text = "INT. A - DAY\n\nx\n\n/*\n\nINT. HIDDEN - DAY\nsecret\n*/\n\n[[\nINT. NOTE - DAY\nmore\n]]\n"
    fixed, _ = parse._separate_headings(text)
    assert "INT. HIDDEN - DAY\nsecret" in fixed and "INT. NOTE - DAY\nmore" in fixed
    assert [s.heading for s in parse.parse_fountain(text).scenes] == ["INT. A - DAY"]


def test_pages_and_screen_time():
    sp = parse.parse_fountain(SHORT)
    parse.screen_times(sp, seconds_per_page=60)
    for s in sp.scenes:
        assert s.duration_s == pytest.approx(s.printed_lines / parse.LINES_PER_PAGE * 60, abs=1e-3)
        assert s.printed_lines >= 4  # heading (2) + one wrapped action paragraph + its blank line
    assert [s.start_s for s in sp.scenes] == pytest.approx(np.cumsum([0] + [s.duration_s for s in sp.scenes[:-1]]))
    parse.screen_times(sp, words_per_minute=120)
    assert sp.scenes[0].duration_s == pytest.approx(sp.scenes[0].n_words / 2, abs=1e-3)
    # a long action paragraph wraps at 61 characters: more printed lines, more screen time
    long = parse.parse_fountain("INT. ROOM - DAY\n\n" + "word " * 200 + "\n")
    assert long.scenes[0].printed_lines == 2 + int(np.ceil(len(("word " * 200).strip()) / 61)) + 1


def test_demo_screenplay_covers_the_five_scenario_moods():
    sp = parse.read_script(scoring.demo_script())
    assert 5 <= len(sp.scenes) <= 8
    cues = plan.plan_cues(sp.scenes)
    kinds = {plan.scenario_kind(c.mood, c.intensity) for c in cues}
    # The scene model (fitted on real scenes) reads the storm as suspense at 0.71 and the homecoming as calm: three
    # of the five kinds, where the old lexicon, written with these scenes in mind, read all five.
    assert {"suspense", "tranquillity", "melancholy"} <= kinds
    storm = next(c for c in cues if "STORM" in c.heading)
    assert storm.intensity == max(c.intensity for c in cues) and storm.mood == "suspenseful"


def test_fdx_round_trip_through_fountain_py_renderer(tmp_path):
    """A Final Draft file written by fountain-py's FDX renderer parses to the same scenes as the Fountain text."""
    text = scoring.demo_script().read_text()
    fixed, _ = parse._separate_headings(text)
    fdx = FDXRenderer().render(FountainParser().parse(fixed))
    p = tmp_path / "demo.fdx"
    p.write_text(fdx)
    a = parse.read_script(scoring.demo_script())
    b = parse.read_script(p)
    assert b.format == "fdx" and b.title_page["title"] == a.title_page["title"]
    assert [s.heading for s in b.scenes] == [s.heading for s in a.scenes]
    assert [s.characters for s in b.scenes] == [s.characters for s in a.scenes]
    assert [s.action_text for s in b.scenes] == [s.action_text for s in a.scenes]
    assert [s.dialogue for s in b.scenes] == [s.dialogue for s in a.scenes]
    assert np.allclose([s.pages for s in b.scenes], [s.pages for s in a.scenes], atol=0.05)


def test_fdx_styled_text_runs_and_dual_dialogue(tmp_path):
    fdx = """<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<FinalDraft DocumentType="Script" Template="No" Version="5">
  <Content>
    <Paragraph Type="Scene Heading" Number="1"><SceneProperties Length="1/8" Page="1"/><Text>INT. </Text><Text Style="Bold">HALL</Text><Text> - NIGHT</Text></Paragraph>
    <Paragraph Type="Action"><Text>The clock </Text><Text Style="Italic">ticks</Text><Text>.</Text></Paragraph>
    <Paragraph><DualDialogue>
      <Paragraph Type="Character"><Text>ANA (V.O.)</Text></Paragraph><Paragraph Type="Dialogue"><Text>Now.</Text></Paragraph>
      <Paragraph Type="Character"><Text>BEN</Text></Paragraph><Paragraph Type="Dialogue"><Text>Wait.</Text></Paragraph>
    </DualDialogue></Paragraph>
    <Paragraph Type="Transition"><Text>CUT TO:</Text></Paragraph>
  </Content>
</FinalDraft>"""
    p = tmp_path / "a.fdx"
    p.write_text(fdx)
    sp = parse.read_script(p)
    (s,) = sp.scenes
    assert s.heading == "INT. HALL - NIGHT" and s.scene_number == "1" and s.action == ["The clock ticks."]
    assert s.characters == ["ANA", "BEN"] and s.dialogue == ["Now.", "Wait."] and s.transitions == ["CUT TO:"]


@pytest.mark.parametrize("content, what", [
    (b"", "empty"), (b"   \n\n\t\n", "empty"), (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
    (b"INT. ROOM - DAY\n\nfine\n\xff\xfe bad bytes\n", "not UTF-8"),
    (b"Just a paragraph of prose.\n\nAnother one, with no scene heading at all.\n", "no scene"),
    (b"Title: Only a title page\nAuthor: me\n", "no scene"),
])
def test_bad_scripts_name_the_file(tmp_path, content, what):
    p = tmp_path / "bad.fountain"
    p.write_bytes(content)
    with pytest.raises(InputError, match=what) as err:
        parse.read_script(p)
    msg = str(err.value)
    assert str(p) in msg and "\n" not in msg
    if what == "not UTF-8":
        assert f"{p}:4:" in msg  # the line of the first bad byte


def test_bad_fdx_names_the_line(tmp_path):
    p = tmp_path / "bad.fdx"
    p.write_text("<?xml version='1.0'?>\n<FinalDraft>\n<Content>\n<Paragraph Type='Action'><Text>x</Paragraph>\n")
    with pytest.raises(InputError, match=r"bad\.fdx:4:"):
        parse.read_script(p)
    p.write_text("<?xml version='1.0'?><html><body/></html>")
    with pytest.raises(InputError, match="not a Final Draft document"):
        parse.read_script(p)


# ------------------------------------------------------------------------------------------------ planning
def test_offline_planner_on_the_projects_own_scenes():
    """The project's own hand-written scenes (``data/scene_moods.csv``): the old lexicon was written against them
    (0.725 on their test rows); the scene model was not fitted on them and reads them as it reads real scenes."""
    df = plan.load_labelled_scenes()
    assert len(df) >= 40 and set(df["mood"]) == set(MOODS)
    test = df[df["split"] == "test"]
    r = plan.planner_accuracy(test, n_boot=500)
    # measured 0.50 (majority 0.25), intensity rho 0.32, MAE 0.235 vs 0.275 for the mean
    assert r["accuracy"] >= r["majority_baseline"] + 0.1
    assert r["intensity_spearman"] >= 0.2 and r["intensity_mae"] < r["intensity_mae_mean_baseline"]


def test_offline_planner_is_deterministic_and_complete():
    sp = parse.parse_fountain(SHORT)
    a, b = plan.plan_cues(sp.scenes), plan.plan_cues(sp.scenes)
    assert [x.as_row() for x in a] == [x.as_row() for x in b]
    assert [c.mood for c in a] == ["calming", "suspenseful", "melancholic"]
    assert a[1].intensity > 0.8 > 0.3 >= a[0].intensity
    assert all(0 < c.confidence <= 1 for c in a)
    for c in a:
        assert c.mood in MOODS and 0 <= c.intensity <= 1 and 40 <= c.bpm <= 200 and c.instruments and c.direction
        assert c.prompt.startswith(sp.scenes[c.scene - 1].heading) and f"{c.bpm} bpm" in c.prompt
    spotted = plan.spot(a, spotting="intensity", min_intensity=0.5)
    assert [c.spotted for c in spotted] == [False, True, False]


def _cue_reply(request):
    user = request["messages"][-1]["content"]
    scenes = [int(line.split()[1].rstrip(":")) for line in user.splitlines() if line.startswith("Scene ")]
    return _reply({"cues": [{"scene": k, "mood": MOODS[k % 4], "intensity": 0.1 * k, "bpm": 60 + k,
                             "instruments": ["piano"], "genre": "ambient", "direction": f"cue {k}"}
                            for k in scenes]})


def test_llm_planner_structured_cached_and_retried(tmp_path, monkeypatch):
    key = "sk-test-scoring-PLANTED-1234"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    sp = parse.parse_fountain(SHORT)
    with FakeOpenAI(script=["malformed", _cue_reply], default=_cue_reply) as server:
        cues = plan.plan_cues(sp.scenes, planner="openai", progress=False,
                              llm={"model": "fake-model", "cache_dir": tmp_path, "base_url": server.base_url,
                                   "timeout_s": 5, "batch_size": 2, "backoff_s": 0, "sleep": lambda s: None})
        n_requests = len(server.requests)
        body = server.requests[0]["body"]
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["strict"] is True
        assert body["response_format"]["json_schema"]["schema"] == plan.CUE_SCHEMA
        assert n_requests == 3  # a malformed reply retried, then two batches (2 + 1 scenes)
        again = plan.plan_cues(sp.scenes, planner="openai", progress=False,
                               llm={"model": "fake-model", "cache_dir": tmp_path, "base_url": server.base_url,
                                    "timeout_s": 5, "batch_size": 2})
        assert len(server.requests) == n_requests  # all from the cache
    assert [c.mood for c in cues] == [MOODS[k % 4] for k in (1, 2, 3)] == [c.mood for c in again]
    assert [c.bpm for c in cues] == [61, 62, 63] and cues[0].planner == "openai:fake-model"
    for f in (tmp_path / "scoring_plans").glob("*.json"):
        assert key not in f.read_text()


# ------------------------------------------------------------------------------------------------ timeline
class _S:
    def __init__(self, index, start_s, duration_s):
        self.index, self.start_s, self.duration_s = index, start_s, duration_s


def _scenes(durations):
    starts = np.cumsum([0.0] + list(durations[:-1]))
    return [_S(i + 1, float(s), float(d)) for i, (s, d) in enumerate(zip(starts, durations))]


def test_cue_timing_crossfades_at_scene_boundaries():
    scenes = _scenes([10.0, 6.0, 0.8, 12.0])
    t = timeline.cue_timings(scenes, {1, 2, 4}, crossfade_s=2.0)
    assert [x.scene for x in t] == [1, 2, 4]
    a, b, d = t
    assert [x.start_s for x in t] == [0.0, 10.0, 16.8]  # cues start at their scene boundaries
    assert a.cue_s == 12.0 and a.fade_out_s == b.fade_in_s == 2.0  # equal-power overlap into scene 2
    assert b.cue_s == pytest.approx(6.8) and b.fade_out_s == pytest.approx(0.8)  # tail capped by the short scene 3
    assert d.cue_s == 12.0 and d.fade_in_s == 2.0  # after an unspotted scene: a fade from silence, no overlap
    assert d.fade_out_s == 2.0 and d.end_s == pytest.approx(28.8)  # the last cue ends with the film
    capped = timeline.cue_timings(scenes, crossfade_s=2.0, max_cue_s=3.0)
    assert all(x.cue_s <= 3.0 for x in capped)
    assert capped[1].fade_in_s == 1.5  # no overlap (capped cue 1 ends first): from silence, at most half the cue


def test_envelope_is_equal_power_across_the_overlap():
    sr, n_fade = 100, 150
    out = timeline.envelope(400, sr=sr, fade_in_s=0.01, fade_out_s=1.5)[-n_fade:]
    inc = timeline.envelope(400, sr=sr, fade_in_s=1.5, fade_out_s=0.01)[:n_fade]
    assert np.allclose(out ** 2 + inc ** 2, 1.0, atol=1e-6)


def test_assembled_score_has_screen_length_and_equal_power_joins(tmp_path):
    sr = 1000
    scenes = _scenes([3.0, 2.0, 1.5, 2.5])
    t = timeline.cue_timings(scenes, {1, 2, 4}, crossfade_s=0.5)
    files = []
    for k, x in enumerate(t):
        p = tmp_path / f"c{k}.wav"
        sf.write(p, np.full(int(round(x.cue_s * sr)), 0.25, np.float32), sr, subtype="FLOAT")
        files.append((x, p))
    total = sum(s.duration_s for s in scenes)
    small = timeline.assemble_score(files, tmp_path / "a.wav", total_s=total, sr=sr, block_s=0.07, peak_db=None)
    big = timeline.assemble_score(files, tmp_path / "b.wav", total_s=total, sr=sr, block_s=100, peak_db=None)
    a, _ = sf.read(tmp_path / "a.wav")
    b, _ = sf.read(tmp_path / "b.wav")
    assert small["frames"] == big["frames"] == len(a) == int(round(total * sr)) == 9000
    assert np.array_equal(a, b)  # block size changes memory, not the result
    ov = a[3000:3500]  # scene 2 starts at 3.0 s, the crossfade lasts 0.5 s
    # amplitudes add: cos + sin ≥ 1, peaking at √2 mid-fade (equal power, not equal gain, for correlated signals)
    assert np.all(ov >= 0.25 - 1e-3) and ov.max() == pytest.approx(0.25 * np.sqrt(2), abs=2e-3)
    assert np.allclose(a[5000 + 500:6500], 0.0, atol=1e-4)  # unspotted scene 3 is silent after the tail
    assert a[-1] == pytest.approx(0.0, abs=1e-2)  # the last cue fades out with the film
    # the peak ceiling scales the whole score
    info = timeline.assemble_score(files, tmp_path / "c.wav", total_s=total, sr=sr, peak_db=-12.0)  # mix: -9 dB
    c, _ = sf.read(tmp_path / "c.wav")
    assert info["gain_db"] == pytest.approx(-3.0, abs=0.05) and np.abs(c).max() <= 10 ** (-12 / 20) + 1e-3


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def _cfg(tmp_path, model_cache, **over):
    base = {"run.cache_dir": str(model_cache), "scoring.planner": "offline", "scoring.words_per_minute": 600,
            "scoring.window_s": 1.0, "scoring.crossfade_s": 0.5, "scoring.max_cue_s": None, "scoring.seeds": [0],
            "scoring.leitmotif": False, "scoring.bootstrap": 50, "generation.top_k": 20,
            "generation.continuation_context_s": 0.5, "generation.crossfade_s": 0.2}
    base.update(over)
    cfg = load_config(REPO / "params" / "demo.yaml", base, output_root=tmp_path)
    cfg.paths.ensure()
    return cfg


def _script(tmp_path, text=SHORT):
    p = tmp_path / "short.fountain"
    p.write_text(text)
    return p


def test_score_writes_every_product_and_reruns_skip(tmp_path, model_cache):
    cfg = _cfg(tmp_path, model_cache)
    shutil.copytree(resolve_model("tiny-musicgen", cache_dir=cfg.paths.models, seed=cfg.seed),
                    cfg.paths.finetuning / "final")
    script = _script(tmp_path)
    out = tmp_path / "scored"
    res = scoring.score(script, cfg, output_dir=out, progress=False)
    assert list(res.plan) == ["echoscript", "musicgen"]  # fine-tuned first, baseline on the same seeds
    sheet = pd.read_csv(out / "cue_sheet.csv")
    for col in ("scene", "heading", "start_s", "duration_s", "mood", "intensity", "bpm", "prompt", "file"):
        assert col in sheet.columns
    assert len(sheet) == 3 * 2 and (out / "cue_sheet.tex").is_file()
    for name in ("scenes.csv", "timeline.png", "timeline.pdf", "players.html", "relevance.csv", "metrics.json"):
        assert (out / name).is_file(), name
    # one WAV + sidecar per cue, at the cue's length, with what made it
    sr = cfg.curation.sample_rate
    for r in sheet.itertuples():
        wav, file_sr = audio.load(out / r.file)
        side = read_json((out / r.file).with_suffix(".json"))
        assert file_sr == sr and wav.shape[-1] == int(round(side["cue_s"] * sr))
        for key in ("prompt", "scene", "heading", "mood", "intensity", "bpm", "seed", "model", "checkpoint",
                    "settings", "settings_hash", "start_s", "duration_s", "cue_s", "lufs"):
            assert key in side, key
        assert side["prompt"] == r.prompt
    # baseline and fine-tuned: same prompts, same per-cue seeds
    a = read_json(out / "musicgen" / "cue002_s0.json")
    b = read_json(out / "echoscript" / "cue002_s0.json")
    assert a["prompt"] == b["prompt"] and a["cue_seed"] == b["cue_seed"]
    # cues longer than the model window were continued (window 1 s)
    assert max(read_json(p)["cue_s"] for p in (out / "musicgen").glob("cue*.json")) > cfg.scoring.window_s
    # score.wav covers the whole screen time and is the first model's timeline
    total = res.screenplay.duration_s
    info = audio.info(out / "score.wav")
    assert info.frames == int(round(total * sr)) and info.sr == sr
    assert (out / "score.wav").read_bytes() == (out / "echoscript" / "score_s0.wav").read_bytes()
    assert len(res.relevance) == 2 and set(res.relevance["n"]) == {3}
    assert ((res.relevance["margin_ci_low"] <= res.relevance["margin"])
            & (res.relevance["margin"] <= res.relevance["margin_ci_high"])).all()
    # rerun: nothing regenerated, files untouched
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/cue*.wav")}
    again = scoring.score(script, cfg, output_dir=out, progress=False)
    assert again.metrics["n_generated"] == 0
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    # editing one scene's action regenerates that scene's cue only
    _script(tmp_path, SHORT.replace("a faded photograph", "a faded, torn photograph"))
    edited = scoring.score(script, cfg, output_dir=out, progress=False)
    regenerated = {(r["model"], r["scene"]) for r in edited.cue_sheet.to_dict("records")
                   if (out / r["file"]).stat().st_mtime_ns != stamps[out / r["file"]]}
    assert regenerated == {("echoscript", 3), ("musicgen", 3)} and edited.metrics["n_generated"] == 2


def test_leitmotif_and_spotting(tmp_path, model_cache):
    cfg = _cfg(tmp_path, model_cache, **{"scoring.leitmotif": True, "scoring.spotting": "intensity",
                                         "scoring.spot_min_intensity": 0.5, "scoring.relevance": False,
                                         "scoring.max_cue_s": 1.5})
    res = scoring.score(_script(tmp_path), cfg, output_dir=tmp_path / "o", progress=False)
    assert list(res.plan) == ["musicgen", "leitmotif"]  # no fine-tuned model in this run: the baseline
    assert sorted(set(res.cue_sheet["scene"])) == [2]  # only the intense scene is spotted
    side = read_json(tmp_path / "o" / "leitmotif" / "cue002_s0.json")
    assert side["leitmotif"] == "midi:leitmotif.mid" and side["model_id"] == "tiny-musicgen-melody"
    assert side["cue_s"] == 1.5 > cfg.scoring.window_s  # the melody path also runs past one window
    wav, sr = audio.load(tmp_path / "o" / "score.wav")
    first = res.screenplay.scenes[0].duration_s
    assert np.abs(wav[0, : int(first * sr) - 10]).max() == 0.0  # unspotted scene 1: silence


def test_model_refs_and_labels(tmp_path, model_cache):
    cfg = _cfg(tmp_path, model_cache)
    assert scoring_models(cfg) == {"musicgen": "tiny-musicgen"}
    assert scoring_models(cfg, ["tiny-musicgen-melody", "tiny-musicgen"]) == {
        "tiny-musicgen-melody": "tiny-musicgen-melody", "musicgen": "tiny-musicgen"}


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_scores_and_bad_scripts_exit_2_writing_nothing(tmp_path, model_cache, capsys):
    params = REPO / "params" / "demo.yaml"
    sets = ["--set", f"run.cache_dir={model_cache}", "--set", "scoring.leitmotif=false", "--set",
            "scoring.words_per_minute=900", "--set", "scoring.max_cue_s=0.6", "--set", "scoring.window_s=1",
            "--set", "scoring.relevance=false", "--set", f"run.output_root={tmp_path / 'runs'}"]
    out = tmp_path / "ok"
    assert main(["score", str(_script(tmp_path)), "--params", str(params), "--output", str(out), *sets]) == 0
    assert "3 scenes" in capsys.readouterr().out
    assert (out / "cue_sheet.csv").is_file() and (out / "score.wav").is_file()
    for content in (b"", b"\x00\x01\x02binary", b"no scenes here, only prose.\n"):
        bad = tmp_path / "bad.fountain"
        bad.write_bytes(content)
        dest = tmp_path / "never"
        assert main(["score", str(bad), "--params", str(params), "--output", str(dest), *sets]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and str(bad) in err and len(err.splitlines()) == 1
        assert not dest.exists()
    missing = tmp_path / "missing.fountain"
    assert main(["score", str(missing), "--params", str(params), "--output", str(tmp_path / "x"), *sets]) == 2
    assert "not found" in capsys.readouterr().err


def test_stage_is_registered():
    from echoscript_utils import pipeline
    from echoscript_utils.config import STAGES

    assert STAGES[-1] == "08_scoring" and "08_scoring" in pipeline.STAGE_SECTIONS
    assert "score.wav" in pipeline.STAGE_PRODUCTS["08_scoring"]
    nb = json.loads((REPO / "notebooks" / "08_scoring.ipynb").read_text())
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def test_continuation_refuses_a_join_that_never_advances(tmp_path, model_cache):
    """A crossfade as long as each continuation step would loop forever: it is refused with a clear error."""
    from echoscript_utils.models import load_musicgen
    from echoscript_utils.musicgen_sampling import continue_long_form

    path = resolve_model("tiny-musicgen", cache_dir=model_cache / "models", seed=1234)
    model, processor = load_musicgen(path, cache_dir=model_cache / "models")
    first = np.zeros((1, 1, 16000), np.float32)
    with pytest.raises(ValueError, match="never grows"):
        continue_long_form(model, processor, ["x"], first, seed=0, total_s=3.0, window_s=2.0, context_s=1.0,
                           crossfade_s=1.0)


def test_nothing_spotted_gives_a_silent_timeline(tmp_path, model_cache):
    cfg = _cfg(tmp_path, model_cache, **{"scoring.spotting": "intensity", "scoring.spot_min_intensity": 0.99,
                                         "scoring.leitmotif": True})
    calm = "EXT. LAKE - DAWN\n\nMist drifts over the still water.\n\nINT. CABIN - NIGHT\n\nA cat dozes by the fire.\n"
    res = scoring.score(_script(tmp_path, calm), cfg, output_dir=tmp_path / "o", progress=False)
    assert res.cue_sheet.empty and list(pd.read_csv(tmp_path / "o" / "cue_sheet.csv").columns)[:9] == [
        "scene", "heading", "start_s", "duration_s", "mood", "intensity", "bpm", "prompt", "file"]
    wav, sr = audio.load(tmp_path / "o" / "score.wav")
    assert wav.shape[-1] == int(round(res.screenplay.duration_s * sr)) and not wav.any()


def test_a_bad_setting_also_writes_nothing(tmp_path, model_cache):
    from echoscript_utils.errors import ConfigError

    cfg = _cfg(tmp_path, model_cache, **{"scoring.leitmotif": True, "generation.melody_model": None})
    with pytest.raises(ConfigError, match="melody model"):
        scoring.score(_script(tmp_path), cfg, output_dir=tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()


def test_the_offline_planner_leaves_the_root_logger_alone():
    """wordllama configures the root logger at INFO on import; a scoring run must not start printing libraries' INFO."""
    import logging
    import subprocess
    import sys

    code = ("import logging; from echoscript_utils.scoring import scene_model; scene_model._wordllama(); "
            "r = logging.getLogger(); print(r.level, len(r.handlers))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(logging.WARNING), "0"]
