"""Demo corpus: labels true by construction, taxonomy coverage, sane audio, determinism, caching, CLI errors."""

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from echoscript_utils import demo_corpus
from echoscript_utils.audio import loudness
from echoscript_utils.cli import main
from echoscript_utils.config import load_config
from echoscript_utils.demo_corpus import (
    LABEL_COLUMNS,
    build_corpus,
    compose_track,
    ensure_demo_corpus,
    plan_corpus,
)
from echoscript_utils.errors import ConfigError, InputError
from echoscript_utils.synth import render_midi, write_midi
from echoscript_utils.taxonomy import GENRES, INSTRUMENTS, MOODS, PITCH_CLASSES, split_list

SEED = 7
SMALL = {"n_tracks": 5, "seed": SEED, "min_duration_s": 8.0, "max_duration_s": 12.0}
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# General MIDI program ranges that make each taxonomy instrument (0-based programs).
GM_FAMILY = {"piano": range(0, 8), "guitar": range(24, 32), "violin": range(40, 52),
             "synthesizer": [*range(38, 40), *range(80, 104)]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("corpus")
    df = build_corpus(out, progress=False, **SMALL)
    return out, df


def _read(out: Path, row) -> tuple[np.ndarray, int, str]:
    info = sf.info(str(out / row.file))
    wav, sr = sf.read(str(out / row.file), dtype="float32", always_2d=True)
    return wav.T, sr, info.subtype


# ------------------------------------------------------------------------------------ labels
def test_labels_file_has_the_contract_columns(corpus):
    out, df = corpus
    on_disk = pd.read_csv(out / "labels.csv")
    assert tuple(on_disk.columns) == LABEL_COLUMNS
    assert len(on_disk) == SMALL["n_tracks"] and on_disk["track_id"].is_unique
    assert on_disk["file"].tolist() == [f"audio/{t}.wav" for t in on_disk["track_id"]]
    assert all((out / f).is_file() for f in on_disk["file"])
    assert set(on_disk["key"]) <= set(PITCH_CLASSES) and set(on_disk["mode"]) <= {"major", "minor"}
    pd.testing.assert_frame_equal(on_disk, df, check_dtype=False)


def test_five_tracks_cover_the_whole_taxonomy(corpus):
    _, df = corpus
    assert set(df["genre"]) == set(GENRES)
    moods = [m for v in df["moods"] for m in split_list(v)]
    instruments = [i for v in df["instruments"] for i in split_list(v)]
    assert set(moods) == set(MOODS)
    assert set(instruments) == set(INSTRUMENTS)


def test_plan_is_balanced_and_moods_set_the_mode():
    plan = [spec for spec, _ in plan_corpus(20, seed=3, min_duration_s=35, max_duration_s=100)]
    assert Counter(s.genre for s in plan) == {g: 4 for g in GENRES}
    assert Counter(s.moods[0] for s in plan) == {m: 5 for m in MOODS}
    for s in plan:
        assert s.mode == ("major" if s.moods[0] in ("uplifting", "calming") else "minor")
        lo, hi = demo_corpus.MOOD_STYLE[s.moods[0]]["bpm"]
        assert s.bpm <= hi and (s.bpm >= lo or s.genre == "ambient")
        assert 35 <= s.duration_s <= 100


def test_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="n_tracks"):
        plan_corpus(0)
    with pytest.raises(ConfigError, match="min_duration_s"):
        plan_corpus(3, min_duration_s=50, max_duration_s=40)


@pytest.mark.parametrize("index", range(5))
def test_score_is_what_the_labels_say(index):
    spec, seed = plan_corpus(5, seed=SEED, min_duration_s=8, max_duration_s=12)[index]
    pm = compose_track(spec, seed=seed)
    # tempo: one tempo, the labelled one, and every onset on the beat grid
    times, tempi = pm.get_tempo_changes()
    assert len(tempi) == 1 and tempi[0] == pytest.approx(spec.bpm)
    beat = 60.0 / spec.bpm
    onsets = np.array([n.start for i in pm.instruments for n in i.notes]) / beat
    assert np.allclose(onsets * 4, np.round(onsets * 4), atol=1e-6)  # onsets on the sixteenth-note grid
    assert pm.get_end_time() <= spec.duration_s
    # key: pitched notes stay in the labelled scale (suspense adds deliberate semitone/tritone clashes)
    scale = {(spec.tonic + s) % 12 for s in SCALES[spec.mode]}
    pitched = [n.pitch % 12 for i in pm.instruments if not i.is_drum for n in i.notes]
    in_scale = np.mean([p in scale for p in pitched])
    assert in_scale >= (0.8 if "suspenseful" in spec.moods else 1.0)
    # instruments: a taxonomy instrument is labelled exactly when a part for it is written
    programs = {i.program for i in pm.instruments if not i.is_drum}
    for name, family in GM_FAMILY.items():
        assert (name in spec.instruments) == bool(programs & set(family)), name
    assert ("percussion" in spec.instruments) == any(i.is_drum and i.notes for i in pm.instruments)


# ------------------------------------------------------------------------------------- audio
def test_audio_format_duration_level(corpus):
    out, df = corpus
    for row in df.itertuples():
        wav, sr, subtype = _read(out, row)
        assert (sr, wav.shape[0], subtype) == (44100, 2, "PCM_16")
        assert wav.shape[1] == round(row.duration_s * sr)
        assert SMALL["min_duration_s"] <= row.duration_s <= SMALL["max_duration_s"]
        peak_db = 20 * np.log10(np.abs(wav).max())
        assert -30 < peak_db <= -0.99, row.track_id  # no clipping: peak at or below -1 dBFS
        assert -20.5 <= loudness(wav, sr) <= -12.0, row.track_id
        assert np.abs(wav[:, : sr // 2]).max() > 1e-3  # music starts at once, no long silence
        assert np.abs(wav.mean(axis=1)).max() < 1e-3  # no DC offset from the soundfont samples


def _mono_22k(out: Path, row) -> np.ndarray:
    import librosa

    wav, sr, _ = _read(out, row)
    return librosa.resample(wav.mean(0), orig_sr=sr, target_sr=22050)


def test_beat_tracker_finds_the_labelled_tempo(corpus):
    import librosa

    out, df = corpus
    rows = [r for r in df.itertuples() if "percussion" in split_list(r.instruments)]
    assert len(rows) >= 3
    for row in rows:
        tempo = float(np.atleast_1d(librosa.beat.beat_track(y=_mono_22k(out, row), sr=22050)[0])[0])
        error = min(abs(tempo / (row.bpm * f) - 1) for f in (1, 2, 0.5))  # within 4 % or an octave off
        assert error < 0.04, (row.title, tempo, row.bpm)


# Krumhansl-Kessler key profiles (C major / C minor), the classic template for key finding from chroma.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def test_chroma_points_at_the_labelled_key(corpus):
    import librosa

    out, df = corpus
    for row in df.itertuples():
        chroma = librosa.feature.chroma_cqt(y=_mono_22k(out, row), sr=22050).mean(axis=1)
        triads, keys = {}, {}
        for pc in range(12):
            for mode, third, profile in (("major", 4, KK_MAJOR), ("minor", 3, KK_MINOR)):
                triad = np.zeros(12)
                triad[[pc, (pc + third) % 12, (pc + 7) % 12]] = 1
                triads[(PITCH_CLASSES[pc], mode)] = np.corrcoef(chroma, triad)[0, 1]
                keys[(PITCH_CLASSES[pc], mode)] = np.corrcoef(chroma, np.roll(profile, pc))[0, 1]
        label = (row.key, row.mode)
        assert max(keys, key=keys.get) == label, row.title  # key finding recovers the label
        ranked = sorted(triads, key=triads.get, reverse=True)
        assert label in ranked[:2], (row.title, ranked[:3])  # tonic triad first (or second to its relative)


# ------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_bytes_in_worker_processes_too(corpus, tmp_path):
    out, _ = corpus
    build_corpus(tmp_path, progress=False, num_workers=2, **SMALL)  # the fixture's build ran in one process
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert len(files) == 2 + 2 * SMALL["n_tracks"]  # labels.csv, corpus.json, audio and MIDI per track
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    for rel in files:
        assert (tmp_path / rel).read_bytes() == (out / rel).read_bytes(), rel


def test_other_seed_gives_other_music(corpus, tmp_path):
    out, df = corpus
    other = build_corpus(tmp_path, progress=False, **{**SMALL, "seed": SEED + 1, "n_tracks": 2})
    assert (tmp_path / "audio/demo_000.wav").read_bytes() != (out / "audio/demo_000.wav").read_bytes()
    assert other[["bpm", "key", "duration_s"]].to_dict() != df.head(2)[["bpm", "key", "duration_s"]].to_dict()


# ------------------------------------------------------------------------------------- synth
def test_render_midi_is_deterministic_stereo_and_sounds(tmp_path):
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(program=0)
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    for k in range(4):
        piano.notes.append(pretty_midi.Note(velocity=90, pitch=69, start=0.5 * k, end=0.5 * k + 0.4))
        drums.notes.append(pretty_midi.Note(velocity=110, pitch=36, start=0.5 * k, end=0.5 * k + 0.1))
    pm.instruments += [piano, drums]
    a = render_midi(pm, sr=22050, duration_s=2.5)
    assert a.dtype == np.float32 and a.shape == (2, round(2.5 * 22050))
    assert np.array_equal(a, render_midi(pm, sr=22050, duration_s=2.5))
    spectrum = np.abs(np.fft.rfft(a[0, 4000:8000] * np.hanning(4000)))
    assert abs(np.fft.rfftfreq(4000, 1 / 22050)[spectrum.argmax()] - 440) < 15  # A4 is the loudest partial
    pm.instruments = [drums]
    assert np.abs(render_midi(pm, sr=22050)).max() > 0.01  # the GM drum channel plays
    path = write_midi(pm, tmp_path / "x.mid")
    assert pretty_midi.PrettyMIDI(str(path)).instruments[0].is_drum
    with pytest.raises(InputError, match="soundfont"):
        render_midi(pm, soundfont=tmp_path / "missing.sf2")


# ------------------------------------------------------------------------------ cache & CLI
def test_ensure_demo_corpus_builds_once_and_rebuilds_on_change(tmp_path, monkeypatch):
    over = {"data.demo.n_tracks": 2, "data.demo.min_duration_s": 3, "data.demo.max_duration_s": 4}
    cfg = load_config(None, over, output_root=tmp_path)
    folder = ensure_demo_corpus(cfg, progress=False)
    assert folder == cfg.paths.demo_corpus and len(pd.read_csv(folder / "labels.csv")) == 2
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp folders left

    def fail(*a, **k):
        raise AssertionError("rebuilt although nothing changed")

    monkeypatch.setattr(demo_corpus, "build_corpus", fail)
    assert ensure_demo_corpus(cfg) == folder
    monkeypatch.undo()
    (folder / "audio" / "demo_001.wav").unlink()  # an incomplete corpus is rebuilt
    ensure_demo_corpus(cfg, progress=False)
    assert (folder / "audio" / "demo_001.wav").is_file()
    cfg3 = load_config(None, {**over, "data.demo.n_tracks": 3}, output_root=tmp_path)
    ensure_demo_corpus(cfg3, progress=False)
    assert len(pd.read_csv(folder / "labels.csv")) == 3


def test_cli_writes_corpus_and_drops_stale_tracks(tmp_path, capsys):
    import pretty_midi

    args = ["demo-data", "--out", str(tmp_path / "d"), "--min-duration", "3", "--max-duration", "3.5"]
    assert main([*args, "--n-tracks", "2"]) == 0
    assert (tmp_path / "d" / "audio" / "demo_001.wav").is_file()
    assert main([*args, "--n-tracks", "1"]) == 0
    assert "labels.csv" in capsys.readouterr().out
    labels = pd.read_csv(tmp_path / "d" / "labels.csv")
    assert len(labels) == 1
    assert sorted(p.name for p in (tmp_path / "d" / "audio").iterdir()) == ["demo_000.wav"]
    assert sorted(p.name for p in (tmp_path / "d" / "midi").iterdir()) == ["demo_000.mid"]
    score = pretty_midi.PrettyMIDI(str(tmp_path / "d" / "midi" / "demo_000.mid"))
    assert score.get_tempo_changes()[1][0] == pytest.approx(labels["bpm"][0], abs=0.01)


@pytest.mark.parametrize("case", ["unwritable", "bad-durations"])
def test_cli_errors_exit_2(tmp_path, capsys, case):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "sub" if case == "unwritable" else tmp_path / "d"
    extra = ["--min-duration", "9", "--max-duration", "5"] if case == "bad-durations" else []
    assert main(["demo-data", "--out", str(out), "--n-tracks", "1", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not out.exists()
