"""The annotation stage on clips and curation metadata written here: accuracy against hand counts, metadata v2,
caches, overrides that survive reruns, the review widget, and an executed notebook that never records the key."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from echoscript_utils import annotation, dataset, tagging
from echoscript_utils.annotation import review
from echoscript_utils.artifacts import read_json
from echoscript_utils.audio import write
from echoscript_utils.config import load_config
from echoscript_utils.errors import InputError

REPO = Path(__file__).resolve().parent.parent
SR = 16000

#: clip → (frequency, truth or None, what the fake tagger answers)
CLIPS = {
    "c0": (220, ("classical", ["calming"], ["piano"]),
           {"genre": {"classical": 1.0}, "moods": {"calming": .9}, "instruments": {"piano": .9}}),
    "c1": (330, ("electronic", ["uplifting"], ["synthesizer", "percussion"]),
           {"genre": {"electronic": 1.0}, "moods": {"uplifting": .8}, "instruments": {"synthesizer": .9,
                                                                                      "percussion": .1}}),
    "c2": (440, ("ambient", ["calming"], ["synthesizer"]),
           {"genre": {"classical": .6, "ambient": .4}, "moods": {"calming": .7}, "instruments": {"synthesizer": .6}}),
    "c3": (550, ("orchestral", ["suspenseful"], ["violin", "percussion"]),
           {"genre": {"orchestral": 1.0}, "moods": {"suspenseful": .6, "melancholic": .5},
            "instruments": {"violin": .8, "percussion": .7}}),
    "c4": (660, ("cinematic", ["melancholic"], ["piano", "violin"]),
           {"genre": {"cinematic": 1.0}, "moods": {"melancholic": .9}, "instruments": {"piano": .3, "guitar": .4}}),
    "c5": (770, None, {"genre": {"ambient": 1.0}, "moods": {"calming": .9}, "instruments": {"piano": .9}}),
}


class FakeTagger(tagging.Tagger):
    """Answers by the clip's tone frequency (looked up in :data:`CLIPS`); counts its calls."""

    sample_rate = SR

    def __init__(self, name="musicnn", version="fake-1", answers=None):
        self.name, self.version, self.calls = name, version, 0
        self.answers = answers or {f: a for f, _, a in CLIPS.values()}

    def tag(self, wav, sr):
        self.calls += 1
        x = self._mono(wav, sr)
        freq = int(round(np.argmax(np.abs(np.fft.rfft(x))) * self.sample_rate / x.size / 10.0)) * 10
        out = tagging.empty_tags()
        for f, d in self.answers[freq].items():
            out[f].update(d)
        return out


@pytest.fixture
def run(tmp_path, monkeypatch):
    """A run whose curation stage holds six 1-s tones with ground truth (one without), and a fake tagger."""
    cfg = load_config(None, {"run.name": "t", "annotation.taggers": ["musicnn"],
                             "annotation.prompts.provider": "offline", "annotation.prompts.n_prompts": 16},
                      output_root=tmp_path / "out")
    cfg.paths.ensure()
    cur = cfg.paths.curation
    records = []
    for i, (cid, (freq, truth, _)) in enumerate(CLIPS.items()):
        t = np.arange(SR) / SR
        write(cur / "clips" / f"{cid}.wav", (0.5 * np.sin(2 * np.pi * freq * t))[None].astype(np.float32), SR)
        records.append({"clip_id": cid, "track_id": cid, "source": f"{cid}.wav", "path": f"clips/{cid}.wav",
                        "start_s": 0.0, "duration_s": 1.0, "sample_rate": SR, "channels": 1,
                        "split": ["train", "train", "train", "valid", "eval", "train"][i],
                        "truth": None if truth is None else {"genre": truth[0], "moods": truth[1],
                                                             "instruments": truth[2]}})
    dataset.write_metadata(records, cur / "metadata.jsonl")
    fake = FakeTagger()
    monkeypatch.setitem(tagging.TAGGERS, "musicnn", lambda cfg: fake)
    return cfg, fake


def test_accuracy_matches_hand_counts(run):
    cfg, fake = run
    result = annotation.run(cfg, progress=False)
    assert fake.calls == 6
    per = result.accuracy.per_label.set_index(["tagger", "field", "label"])
    assert result.accuracy.n_clips_with_truth == 5  # c5 has no truth

    def row(field, label, tagger="musicnn"):
        r = per.loc[(tagger, field, label)]
        return int(r.tp), int(r.fp), int(r.fn), round(float(r.precision), 3), round(float(r.recall), 3), \
            round(float(r.f1), 3)

    assert row("genre", "classical") == (1, 1, 0, 0.5, 1.0, 0.667)  # c2 (ambient) called classical
    assert row("genre", "ambient") == (0, 0, 1, 0.0, 0.0, 0.0)
    assert row("moods", "calming") == (2, 0, 0, 1.0, 1.0, 1.0)
    assert row("moods", "melancholic") == (1, 1, 0, 0.5, 1.0, 0.667)  # c3 also above threshold
    assert row("instruments", "percussion") == (1, 0, 1, 1.0, 0.5, 0.667)  # c1's 0.1 is under threshold
    assert row("instruments", "guitar") == (0, 1, 0, 0.0, 0.0, 0.0)
    assert row("instruments", "violin") == (1, 0, 1, 1.0, 0.5, 0.667)
    assert per.loc[("musicnn", "instruments", "guitar"), "support"] == 0
    # threshold-free AUC: violin scores c3 .8 (true), c4 0 (true), c0/c1/c2 0 (false) → (5 + 2.5 − 3) / 6
    assert per.loc[("musicnn", "instruments", "violin"), "auc"] == pytest.approx(0.75)
    assert per.loc[("musicnn", "genre", "classical"), "auc"] == 1.0
    assert np.isnan(per.loc[("musicnn", "instruments", "guitar"), "auc"])  # never true
    summary = result.accuracy.summary.set_index("tagger")
    assert summary.loc["musicnn", "genre_accuracy"] == pytest.approx(0.8)
    assert summary.loc["musicnn", "genre_majority_baseline"] == pytest.approx(0.2)
    # micro F1 over instruments: tp 6 (c0 piano, c1/c2 synth, c3 violin + percussion, c4 piano), fp 1, fn 2
    assert summary.loc["musicnn", "instruments_micro_f1"] == pytest.approx(2 * 6 / (2 * 6 + 1 + 2))
    assert set(summary.index) == {"musicnn", "combined"}  # one tagger: combined equals it
    cm = result.accuracy.confusion["musicnn"]
    assert cm.loc["ambient", "classical"] == 1 and cm.to_numpy().trace() == 4 and cm.to_numpy().sum() == 5
    metrics = read_json(cfg.paths.annotation / "metrics.json")
    assert metrics["accuracy"]["taggers"]["musicnn"]["genre_accuracy"] == pytest.approx(0.8)
    assert metrics["taggers"] == {"musicnn": "fake-1"}


def test_metadata_v2_is_readable_by_the_v1_reader(run):
    cfg, _ = run
    annotation.run(cfg, progress=False)
    stage = cfg.paths.annotation
    df = dataset.load_metadata(stage)  # validates each row against the v1 schema
    assert len(df) == 6 and df["schema_version"].eq(2).all()
    assert all(Path(p).is_file() for p in df["path"])
    raw = [json.loads(line) for line in (stage / "metadata.jsonl").read_text().splitlines()]
    assert raw[0]["path"] == "../01_curation/clips/c0.wav"
    ann = annotation.load_annotated(stage)
    c0 = ann.set_index("clip_id").loc["c0"]
    assert c0["tags"]["genre"] == "classical" and c0["tags"]["moods"] == ["calming"]
    assert c0["tags"]["probabilities"]["instruments"]["piano"] == pytest.approx(0.9)
    assert c0["tagger"]["versions"] == {"musicnn": "fake-1"} and c0["tagger"]["threshold"] == 0.2
    assert c0["truth"]["genre"] == "classical" and c0["split"] == "train"
    for tags, cands in zip(ann["tags"], ann["prompt_candidates"], strict=True):
        assert 1 <= len(cands) <= 3
        assert all(c["mood"] in tags["moods"] for c in cands)
    schema = annotation.json_schema()
    assert schema["$id"].endswith("v2") and {"tags", "tagger", "prompt_candidates"} <= set(schema["properties"])
    v1 = annotation.load_annotated(cfg.paths.curation)  # an old file stays readable
    assert len(v1) == 6 and v1["tagger"].isna().all()
    assert (stage / "prompts.jsonl").is_file() and (stage / "tagger_outputs.csv").is_file()


def test_rerun_uses_the_cache_and_keeps_human_corrections(run):
    cfg, fake = run
    annotation.run(cfg, progress=False)
    path = annotation.overrides_path(cfg)
    assert path == cfg.paths.annotation / "overrides.csv"
    annotation.append_overrides(path, [{"clip_id": "c2", "field": "genre", "value": "ambient"},
                                       {"clip_id": "c4", "field": "instruments", "value": ["piano", "violin"]}],
                                reviewer="ana")
    before = path.read_bytes()
    again = annotation.run(cfg, progress=False)
    assert fake.calls == 6, "cached tags must not be recomputed"
    assert path.read_bytes() == before, "the stage never rewrites the overrides file"
    final = again.final.set_index("clip_id")
    assert final.loc["c2", "genre"] == "ambient" and final.loc["c2", "reviewed"] == ["genre"]
    assert final.loc["c4", "instruments"] == ["piano", "violin"]
    meta = annotation.load_annotated(cfg.paths.annotation).set_index("clip_id")
    assert meta.loc["c2", "tags"]["genre"] == "ambient" and meta.loc["c2", "tags"]["reviewed"] == ["genre"]
    assert again.metrics["overrides"] == {"applied": 2, "rows": 2, "unmatched": []}
    # accuracy measures the taggers, not the reviewer
    assert again.accuracy.summary.set_index("tagger").loc["musicnn", "genre_accuracy"] == pytest.approx(0.8)
    fake.version = "fake-2"  # new weights → everything is tagged again
    annotation.run(cfg, progress=False)
    assert fake.calls == 12


def test_accuracy_is_recomputable_from_the_stage_folder(run):
    cfg, _ = run
    result = annotation.run(cfg, progress=False)
    for f in cfg.paths.cache.rglob("*.json"):
        f.unlink()  # no cache, no curation metadata needed: only the stage folder
    (cfg.paths.curation / "metadata.jsonl").unlink()
    again = annotation.recompute_accuracy(cfg.paths.annotation)
    recorded = read_json(cfg.paths.annotation / "metrics.json")["accuracy"]
    assert json.loads(json.dumps(again.metrics())) == recorded == json.loads(json.dumps(result.accuracy.metrics()))


def test_a_corpus_without_ground_truth_still_annotates(run):
    cfg, _ = run
    records = dataset.read_records(cfg.paths.curation)
    for r in records:
        r["truth"] = None
    dataset.write_metadata(records, cfg.paths.curation / "metadata.jsonl")
    result = annotation.run(cfg, progress=False)
    assert result.accuracy.n_clips_with_truth == 0 and result.metrics["accuracy"] is None
    assert result.accuracy.summary.empty and len(result.final) == 6
    from echoscript_utils.plots import annotation as aplots

    aplots.confusions(result.accuracy.confusion)
    aplots.label_f1(result.accuracy.per_label, field="moods")


def test_overrides_are_validated_and_newest_wins(tmp_path):
    path = tmp_path / "overrides.csv"
    path.write_text("clip_id,field,value\nc1,genre,jazz\n")
    with pytest.raises(InputError, match=r"line 2.*jazz"):
        annotation.read_overrides(path)
    path.write_text("clip_id,field,value\nc1,tempo,fast\n")
    with pytest.raises(InputError, match="field 'tempo'"):
        annotation.read_overrides(path)
    path.unlink()
    annotation.append_overrides(path, [{"clip_id": "c1", "field": "moods", "value": "calming"}])
    with pytest.raises(InputError, match="banjo"):
        annotation.append_overrides(path, [{"clip_id": "c1", "field": "instruments", "value": "banjo"}])
    annotation.append_overrides(path, [{"clip_id": "c1", "field": "moods", "value": "calming;melancholic"},
                                       {"clip_id": "gone", "field": "genre", "value": "ambient"}], note="x, y")
    table = annotation.read_overrides(path)
    assert len(table) == 3 and list(table.columns) == annotation.OVERRIDE_COLUMNS
    assert not [p for p in tmp_path.iterdir() if p.name != "overrides.csv"], "no temporary files left behind"
    chosen = pd.DataFrame({"clip_id": ["c1"], "genre": ["classical"], "moods": [["uplifting"]],
                           "instruments": [["piano"]]})
    final, report = annotation.apply_overrides(chosen, table)
    assert final.loc[0, "moods"] == ["calming", "melancholic"] and final.loc[0, "reviewed"] == ["moods"]
    assert report == {"applied": 1, "rows": 3, "unmatched": ["gone"]}


def test_disagreements_and_distribution(run):
    cfg, fake = run
    clips = annotation.load_clips(cfg)
    other = FakeTagger("clap", "fake-b", answers={**fake.answers, 220: {"genre": {"ambient": 1.0},
                                                                         "moods": {"calming": .9},
                                                                         "instruments": {"piano": .9}}})
    outputs = annotation.run_taggers(clips, {"musicnn": fake, "clap": other}, cache_dir=cfg.paths.cache,
                                     combine=["musicnn"], progress=False)
    combined = outputs[(outputs["tagger"] == "combined") & (outputs["clip_id"] == "c0")]
    assert combined.set_index(["field", "label"]).loc[("genre", "classical"), "probability"] == 1.0
    dis = annotation.disagreements(outputs, clips)
    assert dis["clip_id"].tolist() == ["c0"]
    assert dis.loc[0, "musicnn_genre"] == "classical" and dis.loc[0, "clap_genre"] == "ambient"
    assert dis.loc[0, "true_genre"] == "classical" and not dis.loc[0, "genre_agree"]
    final, _ = annotation.apply_overrides(annotation.choose_all(outputs[outputs["tagger"] == "combined"])
                                          .drop(columns="tagger"), annotation.read_overrides(Path("none.csv")))
    dist = annotation.tag_distribution(final, clips).set_index(["split", "field", "label"])["n"]
    assert dist[("train", "genre", "classical")] == 2 and dist[("eval", "genre", "cinematic")] == 1
    assert dist.groupby(level=["split", "field"]).sum()[("train", "genre")] == 4


def test_review_widget_writes_only_changed_fields(run):
    cfg, _ = run
    annotation.run(cfg, progress=False)
    panel = review.review_widget(cfg, reviewer="ana")
    (clip, listen), info, player, genre, moods, insts, _, save, status = (
        panel.children[0].children, *panel.children[1:])
    assert clip.value == "c0" and "classical" in info.value
    assert moods.value == ("calming",) and insts.value == ("piano",)
    listen.click()
    assert player.outputs, "the player shows the clip"
    save.click()
    assert "nothing changed" in status.value and not annotation.overrides_path(cfg).exists()
    genre.value = "ambient"
    save.click()
    table = annotation.read_overrides(annotation.overrides_path(cfg))
    assert table[["clip_id", "field", "value", "reviewer"]].values.tolist() == [["c0", "genre", "ambient", "ana"]]
    assert "✎" in info.value


@pytest.mark.notebook
def test_notebook_runs_and_never_records_the_key(tmp_path, monkeypatch):
    """Execute 02_annotation with the OpenAI provider against a fake local server and a planted key."""
    import papermill as pm
    from test_prompts import PLANTED_KEY, FakeOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", PLANTED_KEY)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    cfg = load_config(None, {"run.name": "nb"}, output_root=out)
    cur = cfg.paths.curation
    records = []
    for i, (cid, (freq, truth, _)) in enumerate(list(CLIPS.items())[:4]):
        t = np.arange(int(3.5 * SR)) / SR
        write(cur / "clips" / f"{cid}.wav", (0.5 * np.sin(2 * np.pi * freq * t))[None].astype(np.float32), SR)
        records.append({"clip_id": cid, "track_id": cid, "source": f"{cid}.wav", "path": f"clips/{cid}.wav",
                        "start_s": 0.0, "duration_s": 3.5, "sample_rate": SR, "channels": 1,
                        "split": "train" if i < 3 else "eval",
                        "truth": {"genre": truth[0], "moods": truth[1], "instruments": truth[2]}})
    dataset.write_metadata(records, cur / "metadata.jsonl")
    with FakeOpenAI() as server:
        overrides = {"run.name": "nb", "annotation.taggers": ["musicnn"], "run.torch_threads": 1,
                     "annotation.prompts.provider": "auto", "annotation.prompts.n_prompts": 8,
                     "annotation.prompts.base_url": server.base_url, "annotation.prompts.model": "fake-model"}
        executed = out / "nb" / "notebooks" / "02_annotation.ipynb"
        executed.parent.mkdir(parents=True, exist_ok=True)
        pm.execute_notebook(str(REPO / "notebooks" / "02_annotation.ipynb"), str(executed),
                            parameters={"params_path": "", "output_root": str(out), "overrides": overrides},
                            cwd=str(REPO / "notebooks"), progress_bar=False)
        assert len(server.requests) == 4
        assert server.requests[0]["headers"]["authorization"] == f"Bearer {PLANTED_KEY}"
    metrics = read_json(out / "nb" / "02_annotation" / "metrics.json")
    assert metrics["prompts"]["provider"] == "openai" and metrics["prompts"]["n_prompts"] == 8
    assert metrics["accuracy"]["n_clips_with_truth"] == 4
    scanned = [f for f in out.rglob("*") if f.is_file()] + [f for f in cfg.paths.cache.rglob("*") if f.is_file()]
    assert executed in scanned and len(scanned) > 10
    for f in scanned:
        data = f.read_bytes()
        assert PLANTED_KEY.encode() not in data, f


def test_calibrated_fallback_picks_the_label_that_stands_out_for_the_clip():
    """A tagger that gives "calming" the highest raw mood probability on every clip: without calibration every
    clip is "calming"; with it, the fill-up label is the one that is unusually high for that clip."""
    from echoscript_utils.annotation import choose_all, corpus_scores

    rows = []
    moods = {"a": {"calming": 0.12, "uplifting": 0.09, "suspenseful": 0.001, "melancholic": 0.0},
             "b": {"calming": 0.10, "uplifting": 0.01, "suspenseful": 0.05, "melancholic": 0.0},
             "c": {"calming": 0.16, "uplifting": 0.01, "suspenseful": 0.002, "melancholic": 0.0}}
    for clip, probs in moods.items():
        for label, p in probs.items():
            rows.append({"clip_id": clip, "tagger": "t", "field": "moods", "label": label, "probability": p})
        rows.append({"clip_id": clip, "tagger": "t", "field": "genre", "label": "ambient", "probability": 0.9})
    outputs = pd.DataFrame(rows)
    raw = choose_all(outputs, threshold=0.2, top_k=3, min_labels=1).set_index("clip_id")["moods"]
    assert raw.to_dict() == {"a": ["calming"], "b": ["calming"], "c": ["calming"]}
    cal = choose_all(outputs, threshold=0.2, top_k=3, min_labels=1, calibrate=["moods"]).set_index("clip_id")["moods"]
    assert cal.to_dict() == {"a": ["uplifting"], "b": ["suspenseful"], "c": ["calming"]}
    z = corpus_scores(outputs)
    assert np.isneginf(z[z["label"] == "melancholic"]["probability"]).all()  # never varies: no information
    # labels above the threshold are kept either way
    hi = outputs.assign(probability=np.where(outputs["label"] == "calming", 0.5, outputs["probability"]))
    kept = choose_all(hi, threshold=0.2, top_k=3, min_labels=1, calibrate=["moods"])["moods"]
    assert all(m == ["calming"] for m in kept)


def test_a_padded_short_cue_is_tagged_on_its_music_only(tmp_path):
    """A 0.6 s tone padded with silence to 1 s: the tagger sees 0.6 s, and the cache keeps cue and clip apart."""
    seen = []

    class Recorder(FakeTagger):
        def tag(self, wav, sr):
            seen.append(wav.shape[-1])
            return super().tag(wav, sr)

    t = np.arange(int(0.6 * SR)) / SR
    tone = np.pad((0.5 * np.sin(2 * np.pi * 220 * t))[None], ((0, 0), (0, SR - t.size))).astype(np.float32)
    path = write(tmp_path / "cue.wav", tone, SR)
    import pandas as pd

    clips = pd.DataFrame([{"clip_id": "cue", "path": str(path), "duration_s": 1.0, "real_duration_s": 0.6},
                          {"clip_id": "whole", "path": str(path), "duration_s": 1.0, "real_duration_s": 1.0}])
    tagger = Recorder()
    out = annotation.run_taggers(clips, {"musicnn": tagger}, cache_dir=tmp_path / "cache", progress=False)
    assert seen == [int(0.6 * SR), SR]  # the cue's music only; the same file taken whole is tagged apart
    assert set(out["clip_id"]) == {"cue", "whole"}


# ----------------------------------------------------------------------------------------- parity with sklearn
def _reference_prf(tp, fp, fn):
    """The hand-written formulas the accuracy module used before it called sklearn.metrics."""
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _reference_auc(scores, positive):
    """ROC AUC by the rank-sum (Mann–Whitney) formula with ties counted half; NaN without both classes."""
    from scipy.stats import rankdata

    pos = int(positive.sum())
    neg = len(positive) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    return float((rankdata(scores)[positive].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _random_tagging(seed: int, n_clips: int = 40):
    """Two taggers' outputs and a truth table with every awkward case: probabilities on a coarse grid (ties), a
    true genre outside the vocabulary, clips without truth for a field, labels never chosen or never true."""
    rng = np.random.default_rng(seed)
    clips = [f"k{i:02d}" for i in range(n_clips)]
    rows = []
    for tagger in ("a", "b"):
        for clip in clips:
            for f in tagging.FIELDS:
                for lab in tagging.VOCAB[f][:-1]:  # the last label of every field is never chosen
                    rows.append((clip, tagger, f, lab, float(rng.integers(0, 6)) / 5))
    outputs = pd.DataFrame(rows, columns=annotation.OUTPUT_COLUMNS)
    truth = []
    for i, clip in enumerate(clips):
        genre = None if i % 7 == 0 else ("no-such-genre" if i % 11 == 0 else str(rng.choice(tagging.VOCAB["genre"][1:])))
        moods = [] if i % 5 == 0 else sorted(rng.choice(tagging.VOCAB["moods"][1:], size=2, replace=False).tolist())
        insts = sorted(rng.choice(tagging.VOCAB["instruments"][:3], size=int(rng.integers(1, 3)), replace=False).tolist())
        truth.append({"clip_id": clip, "genre": genre, "moods": moods, "instruments": insts})
    return outputs, pd.DataFrame(truth)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sklearn_metrics_equal_the_hand_written_formulas(seed):
    """Precision, recall, F1 (per label and micro), the genre confusion and ROC AUC now come from sklearn.metrics;
    on random taggings with ties, unknown genres, missing truth and zero denominators they equal the formulas the
    module used before. Counts, precision and recall are the same divisions, so they match exactly. F1 and AUC
    are the same quantities computed in another algebraic form (sklearn: 2·tp / (2·tp + fp + fn) and the
    trapezoidal ROC area; before: 2·p·r / (p + r) and the rank sum), so they may differ in the last bits of a
    double: compared to 1e-12. Zero denominators give 0 in both (``zero_division=0``); AUC is NaN in both when a
    label is always or never true (sklearn would raise, the module answers NaN first)."""
    outputs, truth = _random_tagging(seed)
    chosen = annotation.choose_all(outputs, threshold=0.5, top_k=2, min_labels=1)
    per = annotation.label_metrics(chosen, truth)
    merged = chosen.merge(truth, on="clip_id", suffixes=("", "_true"))
    n_zero_division = 0
    for r in per.itertuples():
        grp = merged[merged["tagger"] == r.tagger]
        if r.field == "genre":
            ok = grp["genre_true"].notna()
            sets = [({p}, {t}) for p, t in zip(grp.loc[ok, "genre"], grp.loc[ok, "genre_true"], strict=True)]
        else:
            sets = [(set(p), set(t)) for p, t in zip(grp[r.field], grp[f"{r.field}_true"], strict=True) if len(t)]
        tp = sum(r.label in p and r.label in t for p, t in sets)
        fp = sum(r.label in p and r.label not in t for p, t in sets)
        fn = sum(r.label not in p and r.label in t for p, t in sets)
        assert (r.tp, r.fp, r.fn, r.support) == (tp, fp, fn, tp + fn), r
        prec, rec, f1 = _reference_prf(tp, fp, fn)
        assert (r.precision, r.recall) == (prec, rec), r
        assert r.f1 == pytest.approx(f1, rel=1e-12, abs=1e-15), r
        n_zero_division += (tp + fp == 0) or (tp + fn == 0)
    assert n_zero_division > 0  # the zero-division convention was exercised

    report = annotation.evaluate(outputs, truth, threshold=0.5, top_k=2, min_labels=1)
    for tagger, grp in per.groupby("tagger"):
        for f in ("moods", "instruments"):
            sub = grp[grp["field"] == f]
            micro = _reference_prf(int(sub["tp"].sum()), int(sub["fp"].sum()), int(sub["fn"].sum()))[2]
            assert report.summary.set_index("tagger").loc[tagger, f"{f}_micro_f1"] == pytest.approx(micro, rel=1e-12)
        cm = annotation.genre_confusion(chosen, truth, tagger=tagger)
        ref = pd.DataFrame(0, index=cm.index, columns=cm.columns)
        m = merged[(merged["tagger"] == tagger) & merged["genre_true"].notna()]
        for t, p in zip(m["genre_true"], m["genre"], strict=True):
            if t in ref.index and p in ref.columns:
                ref.loc[t, p] += 1
        pd.testing.assert_frame_equal(cm, ref)
        assert cm.to_numpy().sum() < len(m)  # the clip whose true genre is unknown is left out

    auc = annotation.label_auc(outputs, truth)
    t = truth.set_index("clip_id")
    n_nan = 0
    for r in auc.itertuples():
        grp = outputs[(outputs["tagger"] == r.tagger) & (outputs["field"] == r.field) & (outputs["label"] == r.label)]
        true = t.loc[grp["clip_id"], r.field]
        keep = (true.notna() if r.field == "genre" else true.map(len) > 0).to_numpy()
        positive = (true == r.label if r.field == "genre" else true.map(lambda v, lab=r.label: lab in v)).to_numpy()
        ref = _reference_auc(grp["probability"].to_numpy()[keep], positive[keep].astype(bool))
        if np.isnan(ref):
            n_nan += 1
            assert np.isnan(r.auc), r
        else:
            assert r.auc == pytest.approx(ref, rel=1e-12), r
    assert 0 < n_nan < len(auc)
