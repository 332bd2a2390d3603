"""audio: decoding every format, channel folds, streaming resampling, loudness and true peak."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from echoscript_utils import audio
from echoscript_utils.errors import InputError

SR = 44100


def tone(freq: float = 440.0, dur: float = 1.0, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(dur * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None]


@pytest.mark.parametrize("fmt,subtype,tol", [
    ("WAV", "PCM_U8", 1 / 64), ("WAV", "PCM_16", 1e-4), ("WAV", "PCM_24", 1e-6), ("WAV", "PCM_32", 1e-6),
    ("WAV", "FLOAT", 0.0), ("FLAC", "PCM_24", 1e-6), ("AIFF", "PCM_16", 1e-4),
])
def test_load_lossless_formats(tmp_path, fmt, subtype, tol):
    x = tone()
    p = tmp_path / f"x.{fmt.lower()}"
    sf.write(str(p), x.T, SR, format=fmt, subtype=subtype)
    wav, sr = audio.load(p)
    assert wav.dtype == np.float32 and wav.shape == x.shape and sr == SR
    assert np.abs(wav - x).max() <= tol + 1e-7


@pytest.mark.parametrize("ext", ["ogg", "mp3"])
def test_load_lossy_formats(tmp_path, ext):
    x = tone(dur=2.0)
    p = tmp_path / f"ü ß.{ext}"  # non-ASCII name
    sf.write(str(p), x.T, SR)
    wav, sr = audio.load(p, sr=22050)
    assert sr == 22050 and wav.shape[0] == 1
    assert abs(wav.shape[1] - 44100) < 2500  # codec padding at most a few frames
    spec = np.abs(np.fft.rfft(wav[0]))
    assert abs(np.argmax(spec) * 22050 / wav.shape[1] - 440) < 3


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="no such audio file"):
        audio.load(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not a wave file at all")
    with pytest.raises(InputError, match="bad.wav: cannot decode"):
        audio.load(bad)
    (tmp_path / "dir.wav").mkdir()
    with pytest.raises(InputError, match="is a folder"):
        audio.info(tmp_path / "dir.wav")


def test_downmix_51_follows_itu():
    n = 1000
    x = np.zeros((6, n), np.float32)
    x[2] = 1.0  # centre
    x[3] = 1.0  # LFE
    st = audio.to_stereo(x)
    assert st.shape == (2, n)
    assert st[0, 0] == pytest.approx(0.7071, abs=1e-4) and st[1, 0] == pytest.approx(0.7071, abs=1e-4)
    x[:] = 0
    x[4] = 1.0  # left surround → left only
    st = audio.to_stereo(x)
    assert st[0, 0] == pytest.approx(0.7071, abs=1e-4) and st[1, 0] == 0
    assert audio.to_mono(np.stack([np.ones(5), -np.ones(5)])).max() == 0  # stereo average
    assert audio.to_stereo(np.ones((1, 5))).shape == (2, 5)


def test_stream_resamples_seamlessly(tmp_path):
    x = np.concatenate([tone(440, 3.0, 48000), tone(440, 3.0, 48000)], axis=0)
    p = tmp_path / "s.wav"
    sf.write(str(p), x.T, 48000, subtype="FLOAT")
    blocks = list(audio.stream(p, sr=SR, channels=1, block_s=0.5))
    assert len(blocks) > 4 and all(b.shape[0] == 1 for b in blocks)
    y = np.concatenate(blocks, axis=1)
    assert y.shape[1] == 3 * SR
    ref = audio.resample(audio.to_mono(x), 48000, SR)
    assert np.abs(y[:, 1000:-1000] - ref[:, 1000:-1000]).max() < 1e-3  # no seams at block edges


def test_normalize_loudness_hits_target_or_ceiling():
    rng = np.random.default_rng(0)
    noise = (0.01 * rng.standard_normal((1, SR * 3))).astype(np.float32)
    out = audio.normalize_loudness(noise, SR, -14.0, peak_db=0.0)
    assert audio.loudness(out, SR) == pytest.approx(-14.0, abs=0.1)
    spiky = noise.copy()
    spiky[0, 1000] = 0.9
    out = audio.normalize_loudness(spiky, SR, -14.0, peak_db=-1.0)
    assert audio.true_peak_db(out, SR) <= -1.0 + 1e-3
    assert audio.loudness(out, SR) < -14.0
    silent = np.zeros((1, SR), np.float32)
    assert not np.any(audio.normalize_loudness(silent, SR, -14.0))


def test_true_peak_sees_intersample_peaks():
    n = np.arange(SR)
    x = np.sin(2 * np.pi * (SR / 4) * n / SR + np.pi / 4).astype(np.float32)[None]  # samples at ±0.707
    assert audio.peak_db(x) == pytest.approx(-3.01, abs=0.05)
    assert audio.true_peak_db(x, SR) == pytest.approx(0.0, abs=0.3)


def test_write_is_atomic_and_round_trips(tmp_path):
    x = tone(dur=0.5)
    p = audio.write(tmp_path / "out" / "ö.wav", x, SR)
    wav, sr = audio.load(p)
    assert sr == SR and np.abs(wav - x).max() < 1e-4
    assert [f.name for f in p.parent.iterdir()] == ["ö.wav"]


@pytest.mark.parametrize("sr,channels", [(44100, 1), (48000, 2), (22050, 5)])
def test_loudness_matches_pyloudnorm(sr, channels):
    pyln = pytest.importorskip("pyloudnorm")
    rng = np.random.default_rng(channels)
    ramp = np.linspace(0, 1, sr * 5) ** 3  # quiet start exercises both gates
    x = (0.3 * rng.standard_normal((channels, sr * 5)) * ramp).astype(np.float32)
    ref = pyln.Meter(sr).integrated_loudness(x.T.astype(np.float64))
    assert audio.loudness(x, sr) == pytest.approx(ref, abs=0.01)
    assert audio.loudness(np.zeros((1, sr), np.float32), sr) == float("-inf")
