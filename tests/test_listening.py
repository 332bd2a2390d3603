"""Listening test: blind pack, webMUSHRA config, study validation, statistics against direct scipy/pandas
computations, simulated study labelling, the paper's tables and figures, and the CLI."""

import csv
import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from scipy import stats

from echoscript_utils import audio
from echoscript_utils import listening as L
from echoscript_utils.cli import main
from echoscript_utils.errors import InputError
from echoscript_utils.listening import analysis as S
from echoscript_utils.listening.serve import ListeningServer
from echoscript_utils.listening.webmushra import read_webmushra

SCENARIOS = ["suspense", "tranquillity", "action", "melancholy", "triumph"]
LABELS = ("musicgen", "echoscript")


# ------------------------------------------------------------------------------------------ fixtures
def _make_generation(root: Path, scenarios=SCENARIOS, seeds=(0, 1)) -> Path:
    """A tiny generation folder in the 05_generation layout; the two models differ on purpose in sample
    rate, channels, duration and level, so the pack has something to hide."""
    gen = root / "05_generation"
    rng = np.random.default_rng(7)
    spec = {"musicgen": (32000, 1, 1.6, 0.05), "echoscript": (16000, 2, 2.1, 0.6)}
    for label, (sr, ch, dur, amp) in spec.items():
        for i, s in enumerate(scenarios):
            for seed in seeds:
                t = np.arange(int(sr * dur)) / sr
                tone = amp * np.sin(2 * np.pi * (180 + 40 * i + 15 * seed) * t)
                wav = np.stack([tone] * ch) + 0.02 * amp * rng.standard_normal((ch, t.size))
                stem = f"{label}_{s}_seed{seed}"
                audio.write(gen / label / f"{stem}.wav", wav.astype(np.float32), sr)
                meta = {"prompt": f"a {s} scene in a film", "scenario": s, "seed": seed, "model": label,
                        "checkpoint": f"/models/{label}", "settings": {"guidance_scale": 3.0}}
                (gen / label / f"{stem}.json").write_text(json.dumps(meta))
        # a free prompt without a scenario: must be left out of the pack
        audio.write(gen / label / "free.wav", np.zeros((ch, sr), np.float32) + 0.1, sr)
        (gen / label / "free.json").write_text(json.dumps({"prompt": "x", "scenario": None, "model": label}))
        # an eval-split prompt (different per model here): must not become a "scenario" of the test
        audio.write(gen / label / f"eval-{label}.wav", np.zeros((ch, sr), np.float32) + 0.1, sr)
        (gen / label / f"eval-{label}.json").write_text(json.dumps(
            {"prompt": "y", "scenario": "eval", "source": f"eval:{label}", "model": label, "seed": 0}))
    return gen


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    gen = _make_generation(root)
    pack = L.build_pack(gen, root / "07_listening", n_participants=6, seed=11, progress=False)
    return gen, pack


def test_pack_limits_a_peaky_clip_instead_of_lowering_every_clip(tmp_path):
    """One clip with a loud click: with the limit policy every clip still reaches the target under the
    ceiling; with gain only, all clips are matched at the level the peaky one allowed."""
    gen = _make_generation(tmp_path, scenarios=SCENARIOS[:2], seeds=(0,))
    path = gen / "musicgen" / "musicgen_suspense_seed0.wav"
    wav, sr = audio.load(path)
    burst = np.arange(int(0.005 * sr))  # the quiet model needs +10 dB: that takes this 5 ms burst to +3 dBFS
    wav[:, sr + burst] += 0.45 * np.sin(2 * np.pi * 400 * burst / sr)
    audio.write(path, wav, sr)
    limited = L.build_pack(gen, tmp_path / "limit", n_participants=2, seed=1, target_lufs=-20.0, progress=False)
    files = sorted((limited.pack_dir / "audio").glob("*.wav"))
    lufs = [audio.loudness(*audio.load(f)) for f in files]
    assert np.allclose(lufs, -20.0, atol=0.15) and not limited.notes
    assert max(audio.true_peak_db(*audio.load(f)) for f in files) <= -1.0 + 0.01
    sources = pd.read_csv(tmp_path / "limit" / "pack_sources.csv")
    assert (sources["limiter_gain_reduction_db"] > 0).sum() == 1
    gain = L.build_pack(gen, tmp_path / "gain", n_participants=2, seed=1, target_lufs=-20.0, policy="gain",
                        progress=False)
    lufs = [audio.loudness(*audio.load(f)) for f in sorted((gain.pack_dir / "audio").glob("*.wav"))]
    assert max(lufs) - min(lufs) < 0.1 and max(lufs) < -21.0 and gain.notes


def _random_study(folder: Path, *, n_participants=12, scenarios=("a", "b", "c"), seed=3, shift=0.6) -> Path:
    """A study written straight to CSV (not through simulate_study), with ties and zero differences."""
    rng = np.random.default_rng(seed)
    key = []
    for k, s in enumerate(scenarios):
        for m in LABELS:
            key.append({"clip": f"c{k}{m[0]}", "model": m, "scenario": s})
    key = pd.DataFrame(key)
    rows, prefs = [], []
    parts = [f"p{i}" for i in range(n_participants)]
    for p in parts:
        bias = rng.normal(0, 0.5)
        for r in key.itertuples():
            for q in L.QUESTIONS:
                mu = 3.2 + bias + (shift if r.model == "echoscript" else 0)
                rows.append({"participant": p, "scenario": r.scenario, "clip": r.clip, "question": q,
                             "score": int(np.clip(np.rint(mu + rng.normal(0, 0.9)), 1, 5))})
        for s in scenarios:
            clips = key.loc[key["scenario"] == s, "clip"].tolist()
            for c in ("MOS", "REL"):
                prefs.append({"participant": p, "scenario": s, "criterion": c,
                              "chosen_clip": clips[int(rng.random() < 0.65)]})
    demo = pd.DataFrame({"participant": parts, "age": rng.integers(18, 40, len(parts)),
                         "musical_training": rng.choice(["none", "hobbyist"], len(parts))})
    folder.mkdir(parents=True, exist_ok=True)
    key.to_csv(folder / "key.csv", index=False)
    pd.DataFrame(rows).to_csv(folder / "responses.csv", index=False)
    pd.DataFrame(prefs).to_csv(folder / "preferences.csv", index=False)
    demo.to_csv(folder / "demographics.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory):
    return _random_study(tmp_path_factory.mktemp("study") / "s")


@pytest.fixture(scope="module")
def results(study_dir):
    return L.analyze(L.validate_study(study_dir))


# ---------------------------------------------------------------------------------------------- pack
def _chunks(path: Path) -> list[bytes]:
    b = path.read_bytes()
    i, out = 12, []
    while i + 8 <= len(b):
        cid, n = b[i:i + 4], struct.unpack("<I", b[i + 4:i + 8])[0]
        out.append(cid)
        i += 8 + n + (n & 1)
    return out


def test_pack_reveals_nothing(built):
    gen, pack = built
    files = sorted((pack.pack_dir / "audio").glob("*.wav"))
    assert len(files) == 2 * len(SCENARIOS) == len(pack.key)
    infos = [sf.info(str(f)) for f in files]
    # same frames, rate, channels, encoding; the lowest input rate (no bandwidth left to tell them apart)
    assert len({(i.frames, i.samplerate, i.channels, i.subtype, i.format) for i in infos}) == 1
    assert infos[0].samplerate == 16000 and infos[0].channels == 1
    assert infos[0].frames == int(1.6 * 16000)  # cut to the shortest clip
    # equal loudness within 0.5 LU (measured on the written files)
    lufs = [audio.loudness(*audio.load(f)) for f in files]
    assert max(lufs) - min(lufs) < 0.5
    assert abs(np.mean(lufs) - pack.target_lufs) < 0.5
    # names: 8 random hex characters, unrelated to the labels; only fmt/data chunks; equal sizes and dates
    for f in files:
        assert re.fullmatch(r"[0-9a-f]{8}", f.stem)
        assert _chunks(f) == [b"fmt ", b"data"]
    assert len({f.stat().st_size for f in files}) == 1
    assert len({f.stat().st_mtime for f in files}) == 1
    # no file in the pack names a model; the key lives outside pack/
    for f in pack.pack_dir.rglob("*"):
        assert not any(lab in f.name.lower() for lab in LABELS)
        if f.suffix in (".csv", ".yaml", ".txt"):
            text = f.read_text().lower()
            assert "musicgen" not in text and "echoscript" not in text, f
    assert pack.key_path == pack.root / "key.csv" and pack.key_path.is_file()
    assert pack.pack_dir not in pack.key_path.parents
    assert list(pd.read_csv(pack.key_path).columns) == ["clip", "model", "scenario"]
    # one pair per scenario, one clip from each model; free prompts without a scenario left out
    k = pack.key
    assert set(k["scenario"]) == set(SCENARIOS)
    assert (k.groupby("scenario")["model"].apply(sorted).map(tuple) == tuple(sorted(LABELS))).all()
    # the model order inside the key does not follow a fixed pattern that ids could leak through
    assert set(k["clip"]) == {f.stem for f in files}


def test_pack_is_cached_and_deterministic(built, tmp_path):
    gen, pack = built
    again = L.build_pack(gen, pack.root, n_participants=6, seed=11, progress=False)
    assert again.cached
    assert again.key.equals(pack.key)
    other = L.build_pack(gen, tmp_path / "other", n_participants=6, seed=11, progress=False)
    assert not other.cached and list(other.key["clip"]) == list(pack.key["clip"])
    third = L.build_pack(gen, tmp_path / "third", n_participants=6, seed=12, progress=False)
    assert set(third.key["clip"]).isdisjoint(pack.key["clip"])


def test_pack_sheets_and_playlist(built):
    _, pack = built
    pl = pd.read_csv(pack.pack_dir / "playlist.csv", dtype=str)
    assert sorted(pl["participant"].unique()) == [f"P{i:02d}" for i in range(1, 7)]
    for _, g in pl.groupby("participant"):
        assert sorted(g["clip"]) == sorted(pack.key["clip"])  # everyone hears every clip once
    orders = {tuple(g["clip"]) for _, g in pl.groupby("participant")}
    assert len(orders) > 1  # randomised per participant
    sheet = pd.read_csv(pack.pack_dir / "response_sheet.csv", dtype=str, keep_default_na=False)
    assert list(sheet.columns) == ["participant", "scenario", "clip", "question", "score"]
    assert len(sheet) == 6 * len(pack.key) * 8 and (sheet["score"] == "").all()
    pref = pd.read_csv(pack.pack_dir / "preference_sheet.csv", dtype=str, keep_default_na=False)
    assert list(pref.columns) == ["participant", "scenario", "criterion", "chosen_clip"]
    assert set(pref["criterion"]) == {"MOS", "REL"}


def test_webmushra_config(built):
    _, pack = built
    cfg = yaml.safe_load(pack.webmushra_path.read_text())
    assert {"testname", "testId", "bufferSize", "pages", "remoteService"} <= set(cfg)
    pages = cfg["pages"]
    assert [p["type"] for p in pages if isinstance(p, dict)] == ["generic", "consent", "volume", "finish"]
    blocks = next(p for p in pages if isinstance(p, list))
    assert blocks[0] == "random" and len(blocks) == 1 + len(SCENARIOS)
    stock = {"generic", "consent", "volume", "likert_multi_stimulus", "finish"}  # page types of webMUSHRA master
    for block in blocks[1:]:
        assert {p["type"] for p in block} <= stock
        likert = [p for p in block if p["type"] == "likert_multi_stimulus" and "__pref_" not in p["id"]]
        assert [p["id"].split("__")[1] for p in likert] == list(L.QUESTIONS)
        scenario = likert[0]["id"].split("__")[0]
        clips = set(pack.key.loc[pack.key["scenario"] == scenario, "clip"])
        assert all(set(p["stimuli"]) == clips for p in likert)
        assert [p["value"] for p in likert[0]["response"]] == [1, 2, 3, 4, 5]
        prefs = [p for p in block if "__pref_" in p["id"]]
        assert [p["id"].rsplit("_", 1)[1] for p in prefs] == ["MOS", "REL"]
        assert all(set(p["stimuli"]) == clips and {r["value"] for r in p["response"]} == {0, 1} for p in prefs)
    alt = L.webmushra_config(pack.key, pd.read_csv(pack.pack_dir / "scenarios.csv"), audio_prefix="a",
                             preference_page="preference_test")
    alt_blocks = next(p for p in alt["pages"] if isinstance(p, list))
    assert sum(p["type"] == "preference_test" for b in alt_blocks[1:] for p in b) == 2 * len(SCENARIOS)
    finish = pages[-1]
    assert finish["type"] == "finish" and finish["writeResults"]
    assert {"participant", "age", "gender", "musical_training"} <= {q["name"] for q in finish["questionnaire"]}
    assert next(p for p in pages if isinstance(p, dict) and p["type"] == "consent")["mustConsent"] is True


def _fake_lms(pack, path: Path, *, n=3, seed=0, double_pref=False):
    """Rows as webMUSHRA's write.php appends them to lms.csv (ratings padded with spaces)."""
    rng = np.random.default_rng(seed)
    cfg = yaml.safe_load(pack.webmushra_path.read_text())
    pages = [p for b in next(p for p in cfg["pages"] if isinstance(p, list))[1:] for p in b
             if p["type"] == "likert_multi_stimulus"]
    rows = [["session_test_id", "participant", "age", "gender", "trial_id", "stimuli_rating", "stimuli",
             "rating_time"]]
    for j in range(n):
        for page in pages:
            clips = list(page["stimuli"])
            if "__pref_" in page["id"]:
                pick = int(rng.integers(len(clips)))
                vals = [1 if (i == pick or double_pref) else 0 for i in range(len(clips))]
            else:
                vals = list(rng.integers(1, 6, len(clips)))
            for c, v in zip(clips, vals, strict=True):
                rows.append([cfg["testId"], f"W{j}", str(20 + j), "female", page["id"], f" {v} ", c, "1234"])
    with open(path, "w", newline="") as f:
        import csv

        csv.writer(f).writerows(rows)
    return path


def test_import_webmushra_results(built, tmp_path):
    _, pack = built
    lms = _fake_lms(pack, tmp_path / "lms.csv")
    out = L.import_webmushra(lms, pack.key_path, tmp_path / "study")
    study = L.validate_study(out)
    s = study.summary()
    assert (s["participants"], s["ratings"], s["preferences"]) == (3, 3 * len(pack.key) * 8, 3 * len(SCENARIOS) * 2)
    assert list(study.demographics.columns) == ["participant", "age", "gender"]
    bad = _fake_lms(pack, tmp_path / "bad.csv", double_pref=True)
    with pytest.raises(InputError, match="exactly one"):
        L.import_webmushra(bad, pack.key_path, tmp_path / "study2")
    assert not (tmp_path / "study2").exists()


def test_import_sets_aside_invalid_participants(built, tmp_path, capsys):
    """One results file, three participants: the valid one is imported, the two others are set aside with file,
    line and reason; rows of a submission sent twice count once; the raw file is never written."""
    _, pack = built
    (tmp_path / "results").mkdir()
    lms = _fake_lms(pack, tmp_path / "results" / "lms.csv", n=3)
    rows = list(csv.reader(lms.open(newline="")))
    header, body = rows[0], rows[1:]
    col = {h: i for i, h in enumerate(header)}
    pref = next(i for i, r in enumerate(body) if r[col["participant"]] == "W1" and "__pref_" in r[col["trial_id"]])
    for r in body:  # W1 marks both clips of one preference page preferred
        if r[col["participant"]] == "W1" and r[col["trial_id"]] == body[pref][col["trial_id"]]:
            r[col["stimuli_rating"]] = " 1 "
    mangled = next(i for i, r in enumerate(body) if r[col["participant"]] == "W2")
    body[mangled][col["stimuli"]] = "1e+05"  # a clip id as a YAML parser would have turned it into a number
    w0 = [r for r in body if r[col["participant"]] == "W0"]
    # a re-sent submission: webMUSHRA adds the survey answers a second time to every row
    resent = [r[:4] + r[1:4] + r[4:] for r in w0]
    # W0 went back from the last page and returned: every page stored again, one page's time grew
    again = [list(r) for r in w0]
    for r in again[:2]:
        r[col["rating_time"]] = "9999"
    # W3 changed an answer after going back: without session ids it may be a second session; set aside
    w3 = [[*r[:1], "W3", *r[2:]] for r in w0]
    w3_changed = [list(r) for r in w3[:1]]
    w3_changed[0][col["stimuli_rating"]] = " 5 " if w3[0][col["stimuli_rating"]].strip() != "5" else " 4 "
    with lms.open("w", newline="") as f:
        csv.writer(f).writerows([header, *body, *resent, *again, *w3, *w3_changed])
    before = lms.read_bytes()

    found = read_webmushra(lms.parent, pack.key_path)
    assert found.participants == ["W0"] and found.rejected == ["W1", "W2", "W3"] and found.partial
    assert found.repeated_rows == len(w0) + len(w0) - 2
    by = {p.participant: p for p in found.problems}
    assert by["W3"].line == 1 + len(body) + 3 * len(w0) + 1 and "answered" in by["W3"].reason
    assert by["W2"].line == mangled + 2 and "'1e+05' is not in key.csv" in by["W2"].reason
    w1_lines = [i + 2 for i, r in enumerate(body) if r[col["participant"]] == "W1"
                and r[col["trial_id"]] == body[pref][col["trial_id"]]]
    assert by["W1"].line == min(w1_lines) and "2 clips marked preferred" in by["W1"].reason
    assert {p.file for p in found.problems} == {"lms.csv"}

    out = tmp_path / "study"
    assert main(["listening", "import", "--results", str(lms), "--key", str(pack.key_path),
                 "--output", str(out)]) == 3
    err = capsys.readouterr().err
    assert "set aside: 3 participant(s)" in err and "W1" in err and "W2" in err
    assert lms.read_bytes() == before
    report = pd.read_csv(out / "import_report.csv")
    assert list(report.columns) == ["participant", "file", "line", "reason"]
    assert sorted(report["participant"]) == ["W1", "W2", "W3"]
    study = L.validate_study(out)
    assert study.participants == ["W0"] and len(study.responses) == len(pack.key) * 8
    assert len(study.preferences) == len(SCENARIOS) * 2
    # a clean file afterwards leaves an empty report, never a stale one
    clean = _fake_lms(pack, tmp_path / "clean.csv", n=2)
    assert main(["listening", "import", "--results", str(clean), "--key", str(pack.key_path),
                 "--output", str(out)]) == 0
    assert pd.read_csv(out / "import_report.csv").empty
    assert L.validate_study(out).participants == ["W0", "W1"]


def _session(cfg: dict, participant: str, *, uuid: str, seed: int = 0) -> dict:
    """A webMUSHRA session object as its DataSender posts it (pages stored twice: the participant went back
    from the last page once, as webMUSHRA then stores every page again)."""
    rng = np.random.default_rng(seed)
    pages = [p for b in next(p for p in cfg["pages"] if isinstance(p, list))[1:] for p in b
             if p["type"] == "likert_multi_stimulus"]
    trials = []
    for _ in range(2):
        for page in pages:
            clips = list(page["stimuli"])
            if "__pref_" in page["id"]:
                pick = int(rng.integers(len(clips)))
                vals = [1 if i == pick else 0 for i in range(len(clips))]
            else:
                vals = [int(v) for v in rng.integers(1, 6, len(clips))]
            trials.append({"type": "likert_multi_stimulus", "id": page["id"],
                           "responses": [{"stimulus": c, "stimulusRating": str(v), "time": 1000}
                                         for c, v in zip(clips, vals, strict=True)]})
    names = [q["name"] for q in cfg["pages"][-1]["questionnaire"]]
    answers = [participant, "31", "female", "other", "none", "low", "daily"]
    return {"testId": cfg["testId"], "uuid": uuid, "config": "configs/webmushra.yaml",
            "participant": {"name": names, "response": answers}, "trials": trials, "_last": trials[len(pages):]}


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_serve_records_each_session_once(built, tmp_path):
    """The pilot server's write side, posting as webMUSHRA does (no browser here; test_webmushra_client runs
    the real client): sessions land in the study folder, a repeat is not counted twice, bad posts are refused."""
    import urllib.error
    import urllib.request

    _, pack = built
    web = tmp_path / "webMUSHRA"
    (web / "lib" / "webmushra").mkdir(parents=True)
    (web / "index.html").write_text("<html></html>")
    (web / "startup.js").write_text("")
    (web / "service").mkdir()
    (web / "service" / "write.php").write_text("<?php // source must not be served")
    cfg = yaml.safe_load(pack.webmushra_path.read_text())
    study_dir = tmp_path / "study"
    log = []
    with ListeningServer(pack.root, study_dir, webmushra_dir=web, port=0, log=log.append) as srv:
        base = f"http://127.0.0.1:{srv.port}"
        assert srv.url == f"{base}/index.html?config=webmushra.yaml"
        s1 = _session(cfg, "P01", uuid="0b5c2b8e-1111-4c3e-9c1a-000000000001", seed=1)
        last = s1.pop("_last")
        body = ("sessionJSON=" + json.dumps(s1)).encode()
        assert _post(f"{base}/service/write.php", body) == (200, b"")
        # the second click on "send": webMUSHRA appends the survey answers again; same session id
        again = json.loads(json.dumps(s1))
        again["participant"]["name"] *= 2
        again["participant"]["response"] *= 2
        assert _post(f"{base}/service/write.php", ("sessionJSON=" + json.dumps(again)).encode()) == (200, b"")
        assert srv.sessions == 1 and any("not counted twice" in line for line in log)
        study = L.validate_study(study_dir)
        assert study.participants == ["P01"]
        # the last copy of each page is what counts (the participant's final answers)
        want = {(t["id"].split("__")[0], r["stimulus"], t["id"].split("__")[1]): int(r["stimulusRating"])
                for t in last if "__pref_" not in t["id"] for r in t["responses"]}
        got = {(r.scenario, r.clip, r.question): r.score for r in study.responses.itertuples()}
        assert got == want
        s2 = _session(cfg, "P02", uuid="0b5c2b8e-1111-4c3e-9c1a-000000000002", seed=2)
        s2.pop("_last")
        assert _post(f"{base}/service/write.php", ("sessionJSON=" + json.dumps(s2)).encode()) == (200, b"")
        assert srv.sessions == 2 and L.validate_study(study_dir).participants == ["P01", "P02"]
        assert list(pd.read_csv(study_dir / "demographics.csv", dtype=str).iloc[0])[:3] == ["P01", "31", "female"]
        # refused: not a session, another test's session; nothing else is served
        assert _post(f"{base}/service/write.php", b"sessionJSON={broken")[0] == 400
        assert _post(f"{base}/service/write.php", ("sessionJSON=" + json.dumps({**s2, "testId": "x"})).encode())[0] \
            == 400
        for path in ("/key.csv", "/service/write.php", "/results/", "/../key.csv", "/configs/"):
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(base + path, timeout=5)
        assert srv.sessions == 2
    raw = sorted((study_dir / "webmushra" / "sessions").glob("*.json"))
    assert [json.loads(f.read_text())["session"]["uuid"][-1] for f in raw] == ["1", "2"]


def test_serve_errors(built, tmp_path, monkeypatch):
    from echoscript_utils.errors import DependencyError

    _, pack = built
    monkeypatch.delenv("ECHOSCRIPT_WEBMUSHRA", raising=False)
    with pytest.raises(DependencyError, match="github.com/audiolabs/webMUSHRA"):
        ListeningServer(pack.root, tmp_path / "s", port=0)
    with pytest.raises(DependencyError, match="not a webMUSHRA folder"):
        ListeningServer(pack.root, tmp_path / "s", webmushra_dir=tmp_path, port=0)
    web = tmp_path / "web"
    (web / "lib" / "webmushra").mkdir(parents=True)
    (web / "index.html").write_text("")
    (web / "startup.js").write_text("")
    with pytest.raises(InputError, match="webmushra.yaml"):
        ListeningServer(tmp_path, tmp_path / "s", webmushra_dir=web, port=0)
    with pytest.raises(InputError, match="answer key"):
        ListeningServer(pack.pack_dir, tmp_path / "s", webmushra_dir=web, key=tmp_path / "none.csv", port=0)
    import socket

    from echoscript_utils.errors import OutputError

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OutputError, match="another --port"):
            ListeningServer(pack.root, tmp_path / "s", webmushra_dir=web, port=busy.getsockname()[1])
    assert not (tmp_path / "s").exists()  # nothing written for a server that never started


def test_pack_input_errors(tmp_path):
    with pytest.raises(InputError, match="05_generation"):
        L.build_pack(tmp_path / "05_generation", tmp_path / "out", progress=False)
    gen = _make_generation(tmp_path, scenarios=["a"], seeds=(0,))
    with pytest.raises(InputError, match="other"):
        L.build_pack(gen, tmp_path / "out", system="other", progress=False)
    assert not (tmp_path / "out" / "pack").exists()


# ---------------------------------------------------------------------------------------- statistics
def test_question_means_and_t_intervals(study_dir, results):
    r = pd.read_csv(study_dir / "responses.csv").merge(pd.read_csv(study_dir / "key.csv"), on=["clip", "scenario"])
    for row in results.question_means.itertuples():
        x = r[(r["model"] == row.model) & (r["question"] == row.question)]["score"]
        lo, hi = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert row.mean == pytest.approx(x.mean()) and row.n == len(x)
        assert (row.ci_low, row.ci_high) == pytest.approx((lo, hi))
    dims = {q: d for q, d in L.QUESTIONS.items()}
    r["dimension"] = r["question"].map(dims)
    for row in results.dimension_means.itertuples():
        x = r[(r["model"] == row.model) & (r["dimension"] == row.dimension)]["score"]
        assert row.mean == pytest.approx(x.mean()) and row.n == len(x)


def test_wilcoxon_effect_size_and_holm(study_dir, results):
    r = pd.read_csv(study_dir / "responses.csv").merge(pd.read_csv(study_dir / "key.csv"), on=["clip", "scenario"])
    t = results.tests
    q_tests = t[t["level"] == "question"].set_index("name")
    raw = []
    for q in L.QUESTIONS:
        wide = r[r["question"] == q].groupby(["participant", "model"])["score"].mean().unstack()
        x, y = wide["echoscript"], wide["musicgen"]
        d = (x - y)[lambda s: s != 0]
        method = "exact" if len(d) == len(x) and d.abs().nunique() == len(d) else "approx"
        assert q_tests.loc[q, "method"] == method
        ref = stats.wilcoxon(x, y, method=method)
        assert q_tests.loc[q, "statistic"] == pytest.approx(ref.statistic)
        assert q_tests.loc[q, "p_value"] == pytest.approx(ref.pvalue)
        r_plus = stats.wilcoxon(x, y, alternative="greater", method="approx").statistic  # R+ (positive ranks)
        total = len(d) * (len(d) + 1) / 2
        assert q_tests.loc[q, "rank_biserial"] == pytest.approx(2 * r_plus / total - 1)
        assert q_tests.loc[q, "mean_diff"] == pytest.approx((x - y).mean())
        raw.append(ref.pvalue)
    # Holm by hand: sort, multiply by (m - i), running maximum, cap at 1
    raw = np.array(raw)
    order = np.argsort(raw)
    adj = np.minimum(1, np.maximum.accumulate(raw[order] * (len(raw) - np.arange(len(raw)))))
    holm = np.empty_like(adj)
    holm[order] = adj
    assert q_tests.loc[list(L.QUESTIONS), "p_holm"].to_numpy() == pytest.approx(holm)
    # the dimension level: participant means over the dimension's questions
    dims = t[t["level"] == "dimension"].set_index("name")
    r["dimension"] = r["question"].map(L.QUESTIONS)
    for dim in ("MOS", "REL"):
        wide = r[r["dimension"] == dim].groupby(["participant", "model"])["score"].mean().unstack()
        ref = stats.wilcoxon(wide["echoscript"], wide["musicgen"], method=dims.loc[dim, "method"])
        assert dims.loc[dim, "p_value"] == pytest.approx(ref.pvalue)
    assert set(t["baseline"]) == {"musicgen"}


def test_preference_shares_wilson_and_binomial(study_dir, results):
    p = pd.read_csv(study_dir / "preferences.csv").merge(
        pd.read_csv(study_dir / "key.csv").rename(columns={"clip": "chosen_clip"}), on=["chosen_clip", "scenario"])
    z = stats.norm.ppf(0.975)
    for row in results.preference_shares.itertuples():
        g = p[p["criterion"] == row.criterion]
        n, k = len(g), int((g["model"] == row.model).sum())
        ph = k / n
        centre = (ph + z * z / (2 * n)) / (1 + z * z / n)
        half = z / (1 + z * z / n) * np.sqrt(ph * (1 - ph) / n + z * z / (4 * n * n))
        assert row.share == pytest.approx(ph)
        assert (row.ci_low, row.ci_high) == pytest.approx((centre - half, centre + half))
        assert row.p_value == pytest.approx(stats.binomtest(k, n, 0.5).pvalue)
    assert results.preference_shares.groupby("criterion")["share"].sum().to_numpy() == pytest.approx([1, 1])


def test_agreement_breakdown_and_power(study_dir, results):
    a = results.agreement.set_index("scope")
    assert {"overall", "MOS", "REL", *L.QUESTIONS} <= set(a.index)
    assert -1 <= a.loc["overall", "alpha"] <= 1 and a.loc["overall", "raters"] == 12
    # perfect agreement gives alpha = 1
    study = L.validate_study(study_dir)
    same = study.responses.copy()
    same["score"] = same.groupby(["clip", "question"])["score"].transform("first")
    perfect = S.agreement(L.Study(responses=same, key=study.key, demographics=study.demographics,
                                  questions=study.questions))
    assert perfect.set_index("scope").loc["overall", "alpha"] == pytest.approx(1.0)
    # breakdown: group means equal a direct pandas computation
    b = results.breakdown
    assert set(b["variable"]) == {"age", "musical_training"}
    demo = pd.read_csv(study_dir / "demographics.csv")
    pm = results.participant_means
    pm = pm[(pm["level"] == "dimension") & (pm["name"] == "MOS") & (pm["model"] == "echoscript")]
    hobby = set(demo.loc[demo["musical_training"] == "hobbyist", "participant"])
    want = pm[pm["participant"].isin(hobby)]["mean"].mean()
    got = b[(b["variable"] == "musical_training") & (b["group"] == "hobbyist") & (b["model"] == "echoscript")
            & (b["dimension"] == "MOS")]["mean"].item()
    assert got == pytest.approx(want)
    # power: statsmodels TTestPower on the observed dz
    from statsmodels.stats.power import TTestPower

    for row in results.power.itertuples():
        n_t = TTestPower().solve_power(effect_size=abs(row.dz), alpha=0.05, power=0.8)
        assert row.n_required_t == int(np.ceil(n_t))
        assert row.n_required_wilcoxon >= row.n_required_t
    assert "participants" in results.power_note


def test_baseline_choice(study_dir):
    study = L.validate_study(study_dir)
    flipped = L.analyze(study, baseline="echoscript")
    assert flipped.baseline == "echoscript" and set(flipped.tests["model"]) == {"musicgen"}
    assert flipped.models[-1] == "echoscript"
    with pytest.raises(InputError, match="nosuch"):
        L.analyze(study, baseline="nosuch")


# --------------------------------------------------------------------------------------- validation
def _fault(name):
    """Each fault: a function that corrupts a copy of the study folder, the expected code, file and line."""
    def edit(csv, fn):
        def run(d):
            df = pd.read_csv(d / csv, dtype=str, keep_default_na=False)
            df = fn(df)
            df.to_csv(d / csv, index=False)
        return run

    def set_cell(csv, row, col, value):
        def fn(df):
            df.loc[row, col] = value
            return df
        return edit(csv, fn)

    faults = {
        "non_integer_score": (set_cell("responses.csv", 4, "score", "3.5"), "responses.csv", 6),
        "score_out_of_range": (set_cell("responses.csv", 9, "score", "6"), "responses.csv", 11),
        "unknown_clip": (set_cell("responses.csv", 0, "clip", "deadbeef"), "responses.csv", 2),
        "duplicate_rating": (edit("responses.csv", lambda df: pd.concat([df, df.iloc[[2]]], ignore_index=True)),
                             "responses.csv", None),
        "missing_value": (set_cell("responses.csv", 7, "score", ""), "responses.csv", 9),
        "unknown_participant": (edit("demographics.csv", lambda df: df.iloc[1:]), "responses.csv", None),
        "bad_criterion": (set_cell("preferences.csv", 3, "criterion", "QUALITY"), "preferences.csv", 5),
        "bad_chosen_clip": (set_cell("preferences.csv", 0, "chosen_clip", "c2m"), "preferences.csv", 2),
    }
    return faults[name]


FAULTS = ["non_integer_score", "score_out_of_range", "unknown_clip", "duplicate_rating", "missing_value",
          "unknown_participant", "bad_criterion", "bad_chosen_clip"]


@pytest.mark.parametrize("code", FAULTS)
def test_each_fault_is_named_and_nothing_is_written(code, study_dir, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(study_dir, bad)
    corrupt, file, line = _fault(code)
    corrupt(bad)
    with pytest.raises(L.StudyValidationError) as err:
        L.validate_study(bad)
    probs = [p for p in err.value.problems if p.code == code]
    assert probs, err.value.problems
    assert probs[0].file == file
    if line is not None:
        assert probs[0].line == line
        assert f"{file} line {line}" in str(err.value)
    if code == "duplicate_rating":  # the copied row is the last line; it points back at the first
        n = len(pd.read_csv(bad / "responses.csv"))
        assert probs[0].line == n + 1 and "line 4" in probs[0].message
    out = tmp_path / "analysis"
    assert main(["listening", "analyze", "--study", str(bad), "--output", str(out)]) == 2
    assert not out.exists()
    assert main(["listening", "validate", "--study", str(bad)]) == 2
    assert code in capsys.readouterr().err


def test_semicolon_csv_and_blank_lines(study_dir, tmp_path):
    d = tmp_path / "semi"
    shutil.copytree(study_dir, d)
    text = (d / "responses.csv").read_text().replace(",", ";").splitlines()
    (d / "responses.csv").write_text("\n".join(text[:3] + [""] + text[3:]) + "\n")  # a blank line 4
    study = L.validate_study(d)
    assert len(study.responses) == len(text) - 1
    lines = (d / "responses.csv").read_text().splitlines()
    lines[5] = lines[5].rsplit(";", 1)[0] + ";9"  # spreadsheet line 6 (the blank line still counts)
    (d / "responses.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(L.StudyValidationError, match="responses.csv line 6"):
        L.validate_study(d)


def test_missing_file_and_column(study_dir, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(study_dir, bad)
    (bad / "demographics.csv").unlink()
    pd.read_csv(bad / "key.csv").drop(columns="model").to_csv(bad / "key.csv", index=False)
    with pytest.raises(L.StudyValidationError) as err:
        L.validate_study(bad)
    assert {"missing_file", "missing_column"} <= err.value.codes


def test_study_without_preferences(study_dir, tmp_path):
    d = tmp_path / "nopref"
    shutil.copytree(study_dir, d)
    (d / "preferences.csv").unlink()
    res = L.analyze(L.validate_study(d))
    assert res.preference_shares.empty and any("preferences" in n for n in res.notes)
    assert list(L.make_tables(res)["07_preferences"][0].columns)[:3] == ["criterion", "model", "share"]


# -------------------------------------------------------------------------- simulated, paper-shaped study
def test_paper_shaped_study_tables_and_figures(built, tmp_path):
    import matplotlib.pyplot as plt

    _, pack = built
    sim = L.simulate_study(pack.key_path, tmp_path / "sim", n_participants=20, seed=5)
    assert (sim / "SIMULATED.txt").is_file()
    study = L.validate_study(sim)
    assert study.simulated
    s = study.summary()
    assert (s["participants"], s["scenarios"], s["questions"], s["ratings"]) == (20, 5, 8, 20 * 10 * 8)
    res = L.analyze(study)
    figs = L.make_figures(res)
    paper = ["07_fig1_mos_questions", "07_fig2_overall", "07_fig3_participant_boxplots", "07_fig4_preferences",
             "07_fig5_rel_questions"]
    assert set(paper) <= set(figs)
    for name, fig in figs.items():  # every title of a simulated study says so
        titles = [a.get_title() for a in fig.axes] + ([fig._suptitle.get_text()] if fig._suptitle else [])
        assert any("SIMULATED responses" in t for t in titles), name
    out = tmp_path / "analysis"
    L.write_outputs(res, out, figures={k: figs[k] for k in paper})
    plt.close("all")
    for name in paper:
        assert (out / "figures" / f"{name}.pdf").is_file() and (out / "figures" / f"{name}.png").is_file()
    t3 = pd.read_csv(out / "tables" / "07_table3_mos.csv")
    t4 = pd.read_csv(out / "tables" / "07_table4_rel.csv")
    assert list(t3["Attribute"]) == ["Audio clarity", "Production quality", "Transition smoothness",
                                     "Instrument balance"]
    assert list(t4["Attribute"]) == ["Mood conveyance", "Scene matching", "Emotional expressivity",
                                     "Script adherence"]
    assert list(t3.columns[1:3]) == ["EchoScript", "MusicGen"]
    assert "SIMULATED responses" in (out / "tables" / "07_table3_mos.tex").read_text()
    qm = pd.read_csv(out / "question_means.csv")
    assert list(qm.columns) == ["model", "question", "mean", "ci_low", "ci_high", "n"]
    assert t3.set_index("Attribute").loc["Audio clarity", "EchoScript"] == pytest.approx(
        qm[(qm["model"] == "echoscript") & (qm["question"] == "audio_clarity")]["mean"].item(), abs=1e-3)
    ps = pd.read_csv(out / "preference_shares.csv")
    assert list(ps.columns) == ["criterion", "model", "share", "ci_low", "ci_high", "p_value"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["simulated"] is True and summary["data"] == "SIMULATED responses"
    # the simulation follows the paper's direction: the fine-tuned model scores higher on average
    dm = res.dimension_means.set_index(["model", "dimension"])["mean"]
    assert dm["echoscript", "MOS"] > dm["musicgen", "MOS"]


def test_real_study_is_not_labelled_simulated(results):
    assert not results.simulated
    figs = L.make_figures(results)
    import matplotlib.pyplot as plt

    texts = [a.get_title() for f in figs.values() for a in f.axes]
    plt.close("all")
    assert not any("SIMULATED" in t for t in texts)
    assert "SIMULATED" not in L.make_tables(results)["07_table3_mos"][1]


def test_simulation_refuses_to_overwrite_a_real_study(study_dir, tmp_path):
    real = tmp_path / "real"
    shutil.copytree(study_dir, real)
    with pytest.raises(Exception, match="real study"):
        L.simulate_study(real / "key.csv", real)


# ----------------------------------------------------------------------------------------------- CLI
def test_cli_pack_simulate_analyze(tmp_path, capsys, monkeypatch):
    import matplotlib.pyplot as plt

    gen = _make_generation(tmp_path, scenarios=["a", "b"], seeds=(0,))
    out = tmp_path / "07_listening"
    assert main(["listening", "pack", "--generation", str(gen), "--output", str(out), "--participants", "4",
                 "--seed", "3"]) == 0
    assert (out / "pack" / "webmushra.yaml").is_file() and (out / "key.csv").is_file()
    assert main(["listening", "simulate", "--key", str(out / "key.csv"), "--output", str(tmp_path / "sim"),
                 "--participants", "6", "--effect", "0.8"]) == 0
    assert main(["listening", "validate", "--study", str(tmp_path / "sim")]) == 0
    monkeypatch.setattr(L.report, "make_figures", lambda r: {})  # figures are covered above; keep this fast
    assert main(["listening", "analyze", "--study", str(tmp_path / "sim"), "--output", str(tmp_path / "an"),
                 "--baseline", "musicgen"]) == 0
    plt.close("all")
    text = capsys.readouterr().out
    assert "SIMULATED responses" in text and "Wilcoxon" in text
    assert (tmp_path / "an" / "question_means.csv").is_file()
    assert main(["listening", "analyze", "--study", str(tmp_path / "sim"), "--output", str(tmp_path / "an2"),
                 "--baseline", "nosuch"]) == 2


def test_plots_draw_in_the_workbook_style_without_changing_matplotlib_settings(tmp_path):
    """Importing the plots changes no matplotlib setting (librosa.display does not either); the plot functions
    draw in the workbook's style and leave the caller's settings as they were."""
    import subprocess
    import sys

    code = ("import matplotlib as mpl; before = dict(mpl.rcParams)\n"
            "import echoscript_utils.plots, echoscript_utils.plots.listening, echoscript_utils.listening\n"
            "changed = [k for k in before if mpl.rcParams[k] != before[k]]\n"
            "assert not changed, changed\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    from echoscript_utils.plots import STYLE, save_figure
    from echoscript_utils.plots import listening as lplots

    before = dict(mpl.rcParams)
    dm = pd.DataFrame({"model": ["echoscript", "musicgen"] * 2, "dimension": ["MOS", "MOS", "REL", "REL"],
                       "mean": [4.0, 3.5, 3.8, 3.1]})
    ax = lplots.dimension_bars(dm, models=["echoscript", "musicgen"])
    assert dict(mpl.rcParams) == before
    assert not ax.spines["top"].get_visible() and ax.title.get_fontsize() == STYLE["axes.titlesize"]
    assert tuple(ax.figure.get_size_inches()) == STYLE["figure.figsize"]
    save_figure(ax, "bars", tmp_path)
    assert dict(mpl.rcParams) == before and (tmp_path / "bars.pdf").is_file()
    plt.close("all")
