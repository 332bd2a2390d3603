"""features: tempo and key estimation, their scores, one-STFT features, fingerprints."""

from __future__ import annotations

import numpy as np
import pytest

from echoscript_utils import dataset as ds
from echoscript_utils import features as feat

SR = 22050


def clicks(bpm: float, dur: float = 20.0, sr: int = SR) -> np.ndarray:
    y = np.zeros(int(dur * sr), np.float32)
    t = np.arange(int(0.03 * sr)) / sr
    burst = (np.exp(-t * 150) * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    for k in range(int(dur * bpm / 60)):
        s = int(k * 60 / bpm * sr)
        y[s:s + burst.size] += burst[: y.size - s]
    return y[None]


def chords(tonic: int, mode: str, dur_each: float = 1.0, sr: int = SR) -> np.ndarray:
    """I–IV–V–I in a key (triads of sine partials), ``[1, T]``."""
    third = 4 if mode == "major" else 3
    prog = [(0, third, 7), (5, 5 + (4 if mode == "major" else 3), 12), (7, 11, 14), (0, third, 7)]
    t = np.arange(int(dur_each * sr)) / sr
    out = []
    for triad in prog:
        seg = sum(np.sin(2 * np.pi * 130.8128 * 2 ** ((tonic + iv) / 12) * t) for iv in triad)
        out.append(seg * np.exp(-t))
    y = np.concatenate(out * 3)
    return (0.2 * y / np.abs(y).max()).astype(np.float32)[None]


@pytest.mark.parametrize("bpm", [72.0, 100.0, 128.0])
def test_tempo_of_a_click_track(bpm):
    f = feat.clip_features(clicks(bpm), SR)
    assert f["bpm"] == pytest.approx(bpm, rel=0.04)
    assert 0.3 < f["bpm_confidence"] <= 1.0


@pytest.mark.parametrize("tonic,mode", [(0, "major"), (9, "minor"), (6, "major"), (2, "minor")])
def test_key_of_a_cadence(tonic, mode):
    f = feat.clip_features(chords(tonic, mode), SR)
    assert (f["key"], f["mode"]) == (feat.PITCH_CLASSES[tonic], mode)
    assert f["key_confidence"] > 0.5


def test_estimate_key_rejects_flat_chroma():
    assert feat.estimate_key(np.ones(12)) == (None, None, 0.0)


def test_mirex_key_score_weights():
    s = feat.mirex_key_score
    assert s("C", "major", "C", "major") == 1.0
    assert s("G", "major", "C", "major") == 0.5 and s("F", "major", "C", "major") == 0.5
    assert s("A", "minor", "C", "major") == 0.3 and s("C", "major", "A", "minor") == 0.3
    assert s("C", "minor", "C", "major") == 0.2
    assert s("D", "major", "C", "major") == 0.0 and s(None, None, "C", "major") == 0.0
    assert s("Bb", "major", "A#", "major") == 1.0
    agg = feat.key_scores([("C", "major"), ("A", "minor")], [("C", "major"), ("C", "major")])
    assert agg["weighted_score"] == pytest.approx(0.65) and agg["relative"] == 1


def test_tempo_scores_count_octave_errors_apart():
    s = feat.tempo_scores([100, 200, 51, 130, None], [100, 100, 100, 100, 90])
    assert s["n"] == 4 and s["accuracy"] == 0.25
    assert s["octave_errors"] == 2 and s["accuracy2"] == 0.75


def test_one_stft_matches_librosa():
    librosa = pytest.importorskip("librosa")
    y = np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    ours = feat.spectral_frames(y)
    ref = np.abs(librosa.stft(y, n_fft=2048, hop_length=512)) ** 2
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() <= 1e-4 * ref.max()


def test_features_fit_the_schema_and_ignore_gain():
    y = chords(0, "major")
    f = feat.clip_features(y, SR)
    ds.ClipFeatures.model_validate(f)
    assert set(ds.ClipFeatures.model_fields) <= set(f)
    g = feat.clip_features(y * 0.25, SR)
    assert g["key"] == f["key"] and g["chroma_mean"] == pytest.approx(f["chroma_mean"], abs=1e-3)


def test_fingerprint_separates_copies_from_other_music():
    sr = 44100

    def fp(y):
        f = feat.Fingerprinter(sr)
        for i in range(0, y.size, 30000):  # arbitrary block edges
            f.update(y[i:i + 30000])
        return f.result()

    rng = np.random.default_rng(1)
    a = np.repeat(rng.standard_normal(120), 2205)[None] * chords(0, "major", sr=sr)[:, : 120 * 2205]
    b = np.repeat(rng.standard_normal(120), 2205)[None] * chords(3, "minor", sr=sr)[:, : 120 * 2205]
    assert feat.fingerprint_similarity(fp(a[0]), fp(0.3 * a[0])) > 0.99
    assert feat.fingerprint_similarity(fp(a[0]), fp(b[0])) < 0.9
