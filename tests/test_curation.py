"""Curation stage end to end on a generated folder holding every good format and every bad-input kind."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from echoscript_utils import dataset as ds
from echoscript_utils.cli import main as cli_main
from echoscript_utils.config import CurationSection
from echoscript_utils.curation import curate, find_inputs, load_labels
from echoscript_utils.errors import InputError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

SR = 44100
CLIP_S = 4.0
SECTION = {"clip_s": CLIP_S, "splits": {"train": 0.6, "valid": 0.2, "eval": 0.2}, "sampler_temperature": 1.0}


def music(seed: int, dur: float, *, sr: int = SR, channels: int = 1, level: float = 0.3) -> np.ndarray:
    """Distinct synthetic 'music' ``[C, T]``: harmonic notes on a beat grid, random pitches from ``seed``."""
    rng = np.random.default_rng(seed)
    beat = 60.0 / rng.uniform(80, 150)
    n = int(dur * sr)
    y = np.zeros(n)
    k = 0
    while k * beat < dur:
        s, e = int(k * beat * sr), min(n, int((k + 1) * beat * sr))
        tt = np.arange(e - s) / sr
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        y[s:e] += sum(np.exp(-6 * tt) * np.sin(2 * np.pi * f0 * h * tt) / h for h in (1, 2, 3))
        k += 1
    y = level * y / np.abs(y).max()
    return np.stack([y * (1 - 0.1 * c) for c in range(channels)]).astype(np.float32)


def _write(path: Path, wav: np.ndarray, sr: int = SR, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wav.T, sr, **kw)
    return path


#: good inputs: relative path → number of whole clips expected
GOOD = {
    "ä ö/Première chanson.wav": 2,  # non-ASCII + spaces, stereo PCM_16
    "nested/deeper/u8.wav": 1,  # 8-bit unsigned, 22.05 kHz mono
    "int24_48k.wav": 2,  # 24-bit, 48 kHz
    "int32.wav": 1,
    "float.wav": 1,
    "lossless.flac": 2,
    "vorbis.ogg": 1,
    "mpeg.mp3": 1,
    "surround 5.1.wav": 1,
    "cue.wav": 1,  # 3 s: shorter than a 4 s clip but more than half of one, kept padded with silence
}

#: bad inputs: relative path → kind (prefix of the reason)
BAD = {
    "empty.wav": "empty",
    "garbage.flac": "not audio",
    "notes.mp3": "not audio",
    "cut.wav": "truncated",
    "cut.flac": "truncated",
    "folder.wav": "directory",
    "nan.wav": "non-finite",
    "zeros.wav": "silent",
    "whisper.wav": "silent",
    "short.wav": "too short",
    "lossless_copy.flac": "duplicate",
    "reencoded.mp3": "near-duplicate",
}


def build_folder(root: Path) -> Path:
    _write(root / "ä ö/Première chanson.wav", music(1, 9.0, channels=2), subtype="PCM_16")
    _write(root / "nested/deeper/u8.wav", music(2, 5.0, sr=22050), sr=22050, subtype="PCM_U8")
    _write(root / "int24_48k.wav", music(3, 8.5, sr=48000), sr=48000, subtype="PCM_24")
    _write(root / "int32.wav", music(4, 6.0), subtype="PCM_32")
    _write(root / "float.wav", music(5, 5.0), subtype="FLOAT")
    _write(root / "lossless.flac", music(6, 9.5))
    _write(root / "vorbis.ogg", music(7, 6.0))
    _write(root / "mpeg.mp3", music(8, 6.0))
    surround = np.zeros((6, int(6.0 * SR)), np.float32)
    surround[2] = music(9, 6.0)[0]  # centre channel only: must survive the fold
    surround[3] = 0.5  # LFE DC: dropped
    _write(root / "surround 5.1.wav", surround, subtype="PCM_16")
    # ---- bad ones
    (root / "empty.wav").write_bytes(b"")
    (root / "garbage.flac").write_bytes(np.random.default_rng(0).bytes(20000))
    (root / "notes.mp3").write_text("these are my notes, not an mp3\n" * 50, encoding="utf-8")
    full = _write(root / "_full.wav", music(10, 9.0), subtype="PCM_16").read_bytes()
    (root / "cut.wav").write_bytes(full[: len(full) // 2])
    (root / "_full.wav").unlink()
    full = _write(root / "_full.flac", music(11, 9.0)).read_bytes()
    (root / "cut.flac").write_bytes(full[: len(full) // 2])
    (root / "_full.flac").unlink()
    (root / "folder.wav").mkdir()
    nan = music(12, 6.0)
    nan[0, SR * 2] = np.nan
    _write(root / "nan.wav", nan, subtype="FLOAT")
    _write(root / "zeros.wav", np.zeros((1, SR * 6), np.float32), subtype="PCM_16")
    _write(root / "whisper.wav", (1e-4 * np.random.default_rng(1).standard_normal((1, SR * 6))).astype(np.float32),
           subtype="FLOAT")
    _write(root / "short.wav", music(13, 1.5))  # less than half a clip
    _write(root / "cue.wav", music(14, 3.0, level=0.2))
    shutil.copyfile(root / "lossless.flac", root / "lossless_copy.flac")
    import soxr

    resampled = soxr.resample(music(6, 9.5).T * 0.5, SR, 32000).T  # same music, other rate, −6 dB, lossy codec
    _write(root / "reencoded.mp3", np.ascontiguousarray(resampled, dtype=np.float32), sr=32000)
    (root / "README.txt").write_text("not a candidate: no audio extension", encoding="utf-8")
    with open(root / "labels.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "track_id", "title", "genre", "moods", "instruments", "bpm", "key", "mode", "duration_s"])
        w.writerow(["lossless.flac", "trk_flac", "Lossless", "ambient", "calming;melancholic", "piano", 100, "A",
                    "minor", 9.5])
        w.writerow(["int24_48k.wav", "trk_24", "Hi-res", "classical", "uplifting", "violin", 120, "C", "major", 8.5])
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build_folder(tmp_path_factory.mktemp("music") / "in")


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("stage") / "01_curation"
    result = curate(corpus, out, cfg_or_section=SECTION, num_workers=2, seed=7, progress=False)
    return result


def _skipped(out: Path) -> dict[str, str]:
    with open(out / "skipped.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert rows and list(rows[0]) == ["source", "reason"]
    return {r["source"]: r["reason"] for r in rows}


def test_every_bad_kind_is_reported_with_its_reason(run):
    skipped = _skipped(run.output_dir)
    for name, kind in BAD.items():
        assert name in skipped, f"{name} missing from skipped.csv"
        assert skipped[name].startswith(f"{kind}:"), (name, skipped[name])
    assert set(skipped) == set(BAD), set(skipped) ^ set(BAD)
    assert "lossless.flac" in skipped["lossless_copy.flac"]
    assert "lossless.flac" in skipped["reencoded.mp3"]
    assert run.metrics["skipped_by_kind"]["near-duplicate"] == 1


def test_good_files_become_exact_clips(run):
    df = run.kept
    assert set(df["source"]) == set(GOOD)
    assert df.groupby("source").size().to_dict() == GOOD
    for r in df.itertuples():
        info = sf.info(r.path)
        assert info.samplerate == SR and info.channels == 1
        assert info.frames == int(CLIP_S * SR)
        assert r.duration_s == CLIP_S
    assert df["clip_id"].is_unique
    # loudness normalised to the target or held under the true-peak ceiling
    assert (df["loudness_lufs"] <= -14.0 + 0.05).all()
    assert (df["true_peak_dbtp"] <= -1.0 + 0.05).all()
    assert (df["loudness_lufs"] > -40).all()


def test_short_cue_is_one_padded_clip_measured_on_its_music_only(run):
    from echoscript_utils import audio
    from echoscript_utils import features as feat

    rows = run.kept[run.kept["source"] == "cue.wav"]
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["duration_s"] == CLIP_S and row["real_duration_s"] == pytest.approx(3.0, abs=1e-3)
    wav, sr = audio.load(row["path"])
    n = int(round(3.0 * SR))
    assert wav.shape[1] == int(CLIP_S * SR) and not wav[:, n:].any() and np.abs(wav[:, :n]).max() > 0.01
    assert audio.loudness(wav[:, :n], sr) == pytest.approx(row["loudness_lufs"], abs=0.05)  # the music's loudness
    ref = feat.clip_features(wav[:, :n], sr)
    assert row["features"]["rms_db"] == pytest.approx(ref["rms_db"], abs=0.01)  # features of the music only
    assert row["features"]["rms_db"] > feat.clip_features(wav, sr)["rms_db"] + 1  # (the padding would lower it)
    full = run.kept[run.kept["source"] != "cue.wav"]
    assert (full["real_duration_s"] == full["duration_s"]).all()
    assert run.metrics["short_cues_padded"] == 1
    assert run.metrics["padding_seconds"] == pytest.approx(CLIP_S - 3.0, abs=1e-3)
    datasets = pytest.importorskip("datasets")
    hf = datasets.load_from_disk(str(run.output_dir / "exports" / "hf"))
    reals = {r["clip_id"]: r["real_duration_s"] for split in hf.values() for r in split.remove_columns("audio")}
    assert reals[row["clip_id"]] == pytest.approx(3.0, abs=1e-3)


def test_short_cue_share_one_drops_every_input_shorter_than_a_clip(tmp_path):
    _write(tmp_path / "in" / "cue.wav", music(14, 3.0, level=0.2))
    r = curate(tmp_path / "in", tmp_path / "out", cfg_or_section={**SECTION, "short_cue_share": 1.0},
               num_workers=0, progress=False, exports=False)
    assert r.kept.empty and r.skipped["reason"].iloc[0].startswith("too short")


def test_surround_fold_keeps_centre_and_drops_lfe(run):
    row = run.kept[run.kept["source"] == "surround 5.1.wav"].iloc[0]
    wav, sr = sf.read(row["path"])
    assert abs(float(np.mean(wav))) < 0.01  # LFE DC offset dropped
    assert row["loudness_in_lufs"] > -40  # the centre-only music is there
    assert row["source_channels"] == 6


def test_metadata_schema_splits_and_truth(run):
    rows = ds.read_records(run.output_dir)
    for row in rows:
        ds.ClipRecord.model_validate(row)
        assert row["schema_version"] == ds.SCHEMA_VERSION
        assert not Path(row["path"]).is_absolute()
    df = run.kept
    assert df.groupby("track_id")["split"].nunique().max() == 1  # no track in two splits
    assert set(df["split"]) <= {"train", "valid", "eval"}
    truth = df.drop_duplicates("source").set_index("source")["truth"]
    assert truth["lossless.flac"]["genre"] == "ambient"
    assert truth["lossless.flac"]["moods"] == ["calming", "melancholic"]
    assert truth["float.wav"] is None
    assert set(df[df["source"] == "lossless.flac"]["track_id"]) == {"trk_flac"}
    feats = df.iloc[0]["features"]
    assert len(feats["mfcc_mean"]) == 20 and len(feats["chroma_mean"]) == 12
    assert run.metrics["tempo"]["n"] == 4 and run.metrics["key"]["n"] == 4


def test_second_run_changes_nothing(run, corpus):
    out = run.output_dir
    files = sorted(p for p in out.rglob("*") if p.is_file() and ".cache" not in p.parts)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in files}
    again = curate(corpus, out, cfg_or_section=SECTION, num_workers=0, seed=7, progress=False)
    assert again.changed == []
    assert again.audio_seconds_processed == 0.0  # nothing decoded
    after_files = sorted(p for p in out.rglob("*") if p.is_file() and ".cache" not in p.parts)
    assert after_files == files
    for p in files:
        assert p.read_bytes() == before[p][0], p
        assert p.stat().st_mtime_ns == before[p][1], p
    assert len(again.kept) == len(run.kept)


def test_deleted_clip_is_rebuilt_and_rows_not_duplicated(run, corpus):
    victim = Path(run.kept.iloc[0]["path"])
    data = victim.read_bytes()
    victim.unlink()
    again = curate(corpus, run.output_dir, cfg_or_section=SECTION, num_workers=0, seed=7, progress=False)
    assert victim.read_bytes() == data
    assert len(again.kept) == len(run.kept)
    assert again.kept["clip_id"].is_unique


def test_audiocraft_export_matches_audio_meta_and_music_info(run):
    root = run.output_dir / "exports" / "audiocraft"
    music_info_fields = {"title", "artist", "key", "bpm", "genre", "moods", "keywords", "description", "name",
                         "instrument"}
    n = 0
    for split in ("train", "valid", "eval"):
        manifest = root / split / "data.jsonl"
        if not manifest.exists():
            continue
        for line in manifest.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            assert list(row) == ["path", "duration", "sample_rate", "amplitude", "weight", "info_path"]
            assert Path(row["path"]).is_absolute() and Path(row["path"]).is_file()
            real = float(run.kept.set_index("clip_id").loc[Path(row["path"]).stem, "real_duration_s"])
            assert row["duration"] == real and row["sample_rate"] == SR and row["info_path"] is None
            assert sf.info(row["path"]).frames == int(round(real * SR))  # a padded cue is exported without padding
            assert 0 < row["amplitude"] <= 1 and row["weight"] > 0
            info = json.loads(Path(row["path"]).with_suffix(".json").read_text(encoding="utf-8"))
            assert music_info_fields <= set(info)
            assert isinstance(info["moods"], list) and isinstance(info["keywords"], list)
            n += 1
    assert n == len(run.kept)


def test_hf_export_loads(run):
    datasets = pytest.importorskip("datasets")
    d = datasets.load_from_disk(str(run.output_dir / "exports" / "hf"))
    assert sum(v.num_rows for v in d.values()) == len(run.kept)
    split = next(iter(d))
    first = d[split].cast_column("audio", datasets.Audio(decode=False))[0]
    assert first["audio"]["bytes"][:4] == b"RIFF"
    assert first["clip_id"] in set(run.kept["clip_id"])


def test_hf_export_is_written_in_shards_that_bound_its_memory(run, tmp_path, monkeypatch):
    """save_to_disk holds a shard's embedded audio in memory: with shards of about two clips, a split of several
    clips is written as several .arrow files, and they load back to every clip with its WAV's exact bytes."""
    datasets = pytest.importorskip("datasets")
    clip_bytes = max(Path(p).stat().st_size for p in run.kept["path"])
    monkeypatch.setattr(ds, "HF_MAX_SHARD_BYTES", 2 * clip_bytes)
    out = ds.export_hf(run.kept, tmp_path / "hf")
    biggest = max(out.iterdir(), key=lambda d: len(list(d.glob("*.arrow"))) if d.is_dir() else 0)
    n_rows = int((run.kept["split"] == {v: k for k, v in ds.HF_SPLITS.items()}[biggest.name]).sum())
    assert len(list(biggest.glob("*.arrow"))) >= max(2, n_rows // 3)
    d = datasets.load_from_disk(str(out))
    rows = [r for split in d.values() for r in split.cast_column("audio", datasets.Audio(decode=False))]
    assert sorted(r["clip_id"] for r in rows) == sorted(run.kept["clip_id"])
    path_of = dict(zip(run.kept["clip_id"], run.kept["path"], strict=True))
    assert all(r["audio"]["bytes"] == Path(path_of[r["clip_id"]]).read_bytes() for r in rows)


def test_genre_weights_balance_genres():
    w = ds.genre_weights(["a", "a", "a", "b"], temperature=1.0)
    assert w[:3].sum() == pytest.approx(w[3])  # each genre drawn equally often
    assert ds.genre_weights(["a", "a", "b"], temperature=0.0) == pytest.approx([1, 1, 1])
    assert w.mean() == pytest.approx(1.0)


def test_splits_stratified_and_reproducible():
    tracks = {f"t{i:03d}": ["rock", "jazz", "folk", None][i % 4] for i in range(80)}
    shares = {"train": 0.8, "valid": 0.1, "eval": 0.1}
    a = ds.assign_splits(tracks, shares, seed=3)
    assert a == ds.assign_splits(tracks, shares, seed=3)
    assert a != ds.assign_splits(tracks, shares, seed=4)
    for genre in ("rock", "jazz", "folk", None):
        ids = [t for t, g in tracks.items() if g == genre]
        counts = {s: sum(a[t] == s for t in ids) for s in shares}
        assert counts == {"train": 16, "valid": 2, "eval": 2}, (genre, counts)
    small = ds.assign_splits({"x": None, "y": None, "z": None}, shares, seed=0)
    assert sorted(small.values()) == ["eval", "train", "valid"]


def test_split_from_folders(tmp_path):
    _write(tmp_path / "in/eval/a.wav", music(20, 5.0))
    _write(tmp_path / "in/train/b.wav", music(21, 5.0))
    r = curate(tmp_path / "in", tmp_path / "out", cfg_or_section=SECTION, num_workers=0, progress=False,
               exports=False)
    assert r.kept.set_index("source")["split"].to_dict() == {"eval/a.wav": "eval", "train/b.wav": "train"}


def test_labels_and_inputs_helpers(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "y.MP3").write_bytes(b"")
    (tmp_path / "sub" / "z.txt").write_bytes(b"")
    found = [rel for rel, _ in find_inputs(tmp_path, extensions=[".wav", ".mp3"])]
    assert found == ["sub/y.MP3", "x.wav"]
    (tmp_path / "labels.csv").write_text("file,genre,bpm\nx.wav,ambient,90\n", encoding="utf-8")
    assert load_labels(tmp_path / "labels.csv")["x.wav"]["bpm"] == 90.0
    (tmp_path / "bad.csv").write_text("name,genre\nx.wav,ambient\n", encoding="utf-8")
    with pytest.raises(InputError, match="'file' column"):
        load_labels(tmp_path / "bad.csv")
    with pytest.raises(InputError, match="input folder not found"):
        curate(tmp_path / "nope", tmp_path / "out", cfg_or_section=CurationSection())


def test_cli_curate_prints_summary(tmp_path, capsys):
    _write(tmp_path / "in/one.wav", music(30, 9.0))
    (tmp_path / "in/broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    code = cli_main(["curate", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                     "--set", "curation.clip_s=4", "--set", "run.num_workers=0"])
    assert code == 0
    text = capsys.readouterr().out
    assert "kept 1 of 2 files → 2 clips" in text and "not audio" in text
    assert (tmp_path / "out" / "metrics.json").is_file()


def test_messy_folder_demonstrates_every_rule(tmp_path):
    from echoscript_utils.demo_corpus import make_messy_folder

    src = _write(tmp_path / "src.wav", music(40, 12.0))
    messy = make_messy_folder(src, tmp_path / "messy", clip_s=CLIP_S)
    r = curate(messy, tmp_path / "out", cfg_or_section=SECTION, num_workers=0, progress=False, exports=False)
    kinds = {reason.split(":")[0] for reason in r.skipped["reason"]}
    assert kinds == {"directory", "empty", "too short", "non-finite", "not audio", "near-duplicate", "silent",
                     "duplicate", "truncated"}
    assert set(r.kept["source"]) == {"keep/stereo 48k 24-bit.wav", "keep/surround 5.1.flac"}


def test_stereo_overlapping_clips_without_normalisation(tmp_path):
    _write(tmp_path / "in/a.wav", music(50, 10.0, sr=32000, channels=2, level=0.1), sr=32000)
    section = {**SECTION, "channels": "stereo", "hop_s": 2.0, "target_lufs": None}
    r = curate(tmp_path / "in", tmp_path / "out", cfg_or_section=section, num_workers=0, progress=False,
               exports=False)
    assert list(r.kept["start_s"]) == [0.0, 2.0, 4.0, 6.0]
    assert (r.kept["channels"] == 2).all() and (r.kept["gain_db"] == 0).all()
    assert sf.info(r.kept["path"].iloc[0]).channels == 2
    assert r.metrics["tail_seconds_dropped"] == pytest.approx(0.0, abs=0.01)


def test_shipped_json_schema_is_current():
    shipped = json.loads(ds.SCHEMA_PATH.read_text(encoding="utf-8"))
    assert shipped == json.loads(json.dumps(ds.json_schema())), "run dataset.write_json_schema()"
    assert {"clip_id", "track_id", "source", "path", "start_s", "duration_s", "sample_rate", "channels",
            "split"} <= set(shipped["required"])


def test_load_metadata_resolves_paths_and_names_bad_lines(run, tmp_path):
    stage = run.output_dir
    df = ds.load_metadata(stage.parent)  # a run folder: the newest stage with metadata (here 01_curation)
    assert df["path"].map(lambda p: Path(p).is_absolute() and Path(p).is_file()).all()
    flat = ds.load_metadata(stage / "metadata.jsonl", flatten=True)
    assert "features.bpm" in flat.columns and len(flat) == len(df)
    lines = (stage / "metadata.jsonl").read_text(encoding="utf-8").splitlines()
    later = tmp_path / "02_annotation"
    later.mkdir()
    extra = json.loads(lines[0])
    extra["tagger"] = "musicnn"  # later stages add keys
    bad = dict(extra)
    del bad["clip_id"]
    (later / "metadata.jsonl").write_text(json.dumps(extra) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"metadata.jsonl:2: field 'clip_id'"):
        ds.load_metadata(later)
    assert ds.load_metadata(later, validate=False)["tagger"].iloc[0] == "musicnn"


def test_memory_stays_bounded_on_a_long_file(tmp_path):
    """Peak memory of one input depends on the clip length, not on the file's length."""
    import tracemalloc

    from echoscript_utils.curation.clips import _process, _settings

    (tmp_path / "cache").mkdir()
    settings = _settings(CurationSection(clip_s=10.0, target_lufs=-14.0))  # a fixed target: one pass

    piece = music(100, 10.0, channels=2).T

    def peak_for(pieces: int) -> tuple[int, dict]:
        path = tmp_path / f"long_{pieces}.wav"
        with sf.SoundFile(str(path), "w", SR, 2, subtype="PCM_16") as f:  # written in 10 s pieces
            for i in range(pieces):
                f.write(np.roll(piece, 997 * i, axis=0))
        task = {"rel": path.name, "path": str(path), "track_id": path.stem, "settings": settings,
                "clips_dir": str(tmp_path / "clips"), "cache_dir": str(tmp_path / "cache")}
        tracemalloc.start()
        res = _process(task)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak, res

    peak_for(2)  # first call: one-off allocations (filter banks, codec state)
    short, _ = peak_for(6)
    long, res = peak_for(24)
    assert res["status"] == "kept" and len(res["clips"]) == 24
    decoded = 240 * SR * 2 * 4  # the 4-minute file as float32
    assert long < 0.25 * decoded, f"peak {long / 2**20:.0f} MiB for a {decoded / 2**20:.0f} MiB file"
    assert long < 1.3 * short + 2**20, (short, long)


def dynamic_track(seed: int, dur: float, *, level: float, hits: float) -> np.ndarray:
    """Sustained 'music' at ``level`` with one short percussive hit (10 ms decay) per 4 s peaking at ``hits``: a
    dynamic, orchestral-like mix whose peak-to-loudness ratio grows as ``level`` falls."""
    y = music(seed, dur, level=level)[0].astype(np.float64)
    t = np.arange(int(0.1 * SR)) / SR
    hit = hits * np.exp(-t / 0.01) * np.sin(2 * np.pi * 80 * t)
    for start in np.arange(0.7, dur - 0.5, 4.0):
        i = int(start * SR)
        y[i:i + hit.size] += hit[: y.size - i]
    return y[None].astype(np.float32)


def test_auto_target_and_limiter_hold_a_dynamic_corpus(tmp_path):
    for k, level in enumerate((0.5, 0.4, 0.32, 0.25, 0.2, 0.16)):
        _write(tmp_path / "in" / f"cue{k}.wav", dynamic_track(40 + k, 8.5, level=level, hits=0.97), subtype="FLOAT")
    section = {**SECTION, "auto_target_share": 0.5}
    r = curate(tmp_path / "in", tmp_path / "out", cfg_or_section=section, num_workers=0, progress=False,
               exports=False)
    loud = r.metrics["loudness"]
    df = r.kept
    assert len(df) == 12 and loud["policy"] == "limit" and loud["target_requested"] == "auto"
    # the target is the corpus's own: half the clips reach it by gain alone, the other half are limited to it
    target = loud["target_lufs"]
    assert -35 < target < -14 and loud["auto"]["share_reaching_by_gain"] >= 0.5
    assert loud["spread_in_lu_95"] > 5 and loud["spread_lu_95"] <= 1.0
    assert np.allclose(df["loudness_lufs"], target, rtol=0, atol=0.15) and (df["target_lufs"] == target).all()
    assert loud["max_sample_peak_dbfs"] <= -1.0 and (df["true_peak_dbtp"] <= -1.0 + 1e-3).all()
    limited = df["limiter_gain_reduction_db"] > 0
    assert 0 < limited.sum() < len(df) and loud["clips_limited"] == limited.sum()
    assert (df.loc[limited, "limited_share"] > 0).all() and (df.loc[~limited, "limited_share"] == 0).all()
    assert (df["loudness_policy"] == "limit").all()
    # the stored clips are what the metadata says
    for row in df.itertuples():
        wav, sr = sf.read(row.path, always_2d=True)
        assert 20 * np.log10(np.abs(wav).max()) <= -1.0 + 1e-3
    # a rerun decodes nothing (both passes cached) and gain-only leaves the spread in place
    again = curate(tmp_path / "in", tmp_path / "out", cfg_or_section=section, num_workers=0, progress=False,
                   exports=False)
    assert again.audio_seconds_processed == 0 and again.metrics["loudness"] == loud
    gain = curate(tmp_path / "in", tmp_path / "gain", cfg_or_section={**section, "loudness_policy": "gain"},
                  num_workers=0, progress=False, exports=False)
    assert gain.metrics["loudness"]["spread_lu_95"] > 3 and gain.metrics["loudness"]["clips_limited"] == 0


def test_second_pass_reads_the_loudness_pass_samples_and_gives_the_same_clips(tmp_path, monkeypatch):
    """With ``target_lufs: auto`` each input is decoded once: the second pass reads the samples the loudness pass
    kept, and writes the same bytes as when it decodes again; a truncated input is still rejected."""
    from echoscript_utils import audio
    from echoscript_utils.curation import clips as clips_mod

    src = tmp_path / "in"
    _write(src / "stereo.wav", music(1, 9.0, channels=2), subtype="PCM_16")
    _write(src / "int24_48k.wav", music(3, 8.5, sr=48000), sr=48000, subtype="PCM_24")
    _write(src / "cue.wav", music(14, 3.0, level=0.2))
    full = _write(tmp_path / "full.wav", music(10, 9.0), subtype="PCM_16").read_bytes()
    (src / "cut.wav").write_bytes(full[: len(full) // 2])
    decoded: list[str] = []
    stream = audio.stream

    def counting(path, **kw):
        decoded.append(Path(path).name)
        return stream(path, **kw)

    monkeypatch.setattr(audio, "stream", counting)
    once = curate(src, tmp_path / "once", cfg_or_section=SECTION, num_workers=0, progress=False, exports=False)
    assert sorted(decoded) == ["cue.wav", "int24_48k.wav", "stereo.wav"]  # cut.wav: rejected by its header
    assert not (tmp_path / "once" / ".cache" / "curation" / clips_mod.SPILL_DIR).exists()
    assert _skipped(tmp_path / "once")["cut.wav"].startswith("truncated")

    decoded.clear()
    monkeypatch.setattr(clips_mod, "_SPILL_RESERVE", 1 << 62)  # no room for a spill: the second pass decodes
    twice = curate(src, tmp_path / "twice", cfg_or_section=SECTION, num_workers=0, progress=False, exports=False)
    assert sorted(decoded) == sorted(["cue.wav", "int24_48k.wav", "stereo.wav"] * 2)
    assert len(once.kept) == len(twice.kept) == 5
    assert once.metadata_path.read_bytes() == twice.metadata_path.read_bytes()
    for row in once.kept.itertuples():
        assert Path(row.path).read_bytes() == (tmp_path / "twice" / "clips" / Path(row.path).name).read_bytes()
