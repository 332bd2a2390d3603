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


def test_gain_only_loudness_hits_target_or_ceiling():
    rng = np.random.default_rng(0)
    noise = (0.01 * rng.standard_normal((1, SR * 3))).astype(np.float32)
    out, _ = audio.standardise_loudness(noise, SR, target_lufs=-14.0, ceiling_dbtp=0.0, policy="gain")
    assert audio.loudness(out, SR) == pytest.approx(-14.0, abs=0.1)
    spiky = noise.copy()
    spiky[0, 1000] = 0.9
    out, _ = audio.standardise_loudness(spiky, SR, target_lufs=-14.0, ceiling_dbtp=-1.0, policy="gain")
    assert audio.true_peak_db(out, SR) <= -1.0 + 1e-3
    assert audio.loudness(out, SR) < -14.0
    silent = np.zeros((1, SR), np.float32)
    assert not np.any(audio.standardise_loudness(silent, SR, target_lufs=-14.0, policy="gain")[0])


def test_true_peak_sees_intersample_peaks():
    n = np.arange(SR)
    x = np.sin(2 * np.pi * (SR / 4) * n / SR + np.pi / 4).astype(np.float32)[None]  # samples at ±0.707
    assert audio.peak_db(x) == pytest.approx(-3.01, abs=0.05)
    assert audio.true_peak_db(x, SR) == pytest.approx(0.0, abs=0.3)


def _true_peak_whole(x: np.ndarray, sr: int) -> float:
    """The definition: the whole signal upsampled 4x with soxr HQ, then its peak."""
    import soxr

    y = soxr.resample(np.ascontiguousarray(np.atleast_2d(x).T), sr, 4 * sr, quality="HQ")
    return 20 * np.log10(max(float(np.abs(y).max()), float(np.abs(x).max())))


def _isolated_pulses() -> np.ndarray:
    """Silence with a full-band pulse half a sample off the grid (its largest samples 0.32, its true peak
    0.48) and a plain click of 0.45 elsewhere: the pulse holds the true peak, the click the sample peak."""
    x = np.zeros(3 * SR, np.float32)
    k = np.arange(-300, 300)
    x[SR + k] = 0.5 * np.sinc(k + 0.5)
    x[2 * SR] = 0.45
    return x[None]


@pytest.mark.parametrize("signal", ["music", "stereo", "pulses", "noise", "near_nyquist"])
def test_true_peak_upsampling_only_near_peaks_equals_the_whole_signal(signal):
    rng = np.random.default_rng(3)
    t = np.arange(10 * SR) / SR
    notes = np.sin(2 * np.pi * 220 * 2 ** (rng.integers(0, 12, size=t.size // 4410 + 1)[(t * 10).astype(int)] / 12) * t)
    music = (0.4 * notes * np.exp(-3 * (t % 0.5)) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)[None]
    x = {"music": music, "stereo": np.concatenate([music, 0.7 * music[:, ::-1]]), "pulses": _isolated_pulses(),
         "noise": (0.1 * rng.standard_normal((2, 5 * SR))).astype(np.float32),
         "near_nyquist": tone(19000.0, dur=2.0, amp=0.3)}[signal]
    assert audio.true_peak_db(x, SR) == pytest.approx(_true_peak_whole(x, SR), abs=1e-4)
    if signal == "pulses":  # the pulse's inter-sample peak is found, above the click's sample peak
        assert audio.true_peak_db(x, SR) > audio.peak_db(x) + 0.3


def test_write_is_atomic_and_round_trips(tmp_path):
    x = tone(dur=0.5)
    p = audio.write(tmp_path / "out" / "ö.wav", x, SR)
    wav, sr = audio.load(p)
    assert sr == SR and np.abs(wav - x).max() < 1e-4
    assert [f.name for f in p.parent.iterdir()] == ["ö.wav"]


@pytest.mark.parametrize("sr", [44100, 48000])
def test_loudness_meets_ebu_tech_3341(sr):
    """EBU Tech 3341's first conformance cases (±0.1 LU): a stereo 1 kHz sine at −23 / −33 dBFS reads −23 / −33
    LUFS, and the relative gate leaves out −36 dBFS passages around a −23 dBFS one."""

    def sine(db: float, seconds: float) -> np.ndarray:
        t = np.arange(int(seconds * sr)) / sr
        return np.repeat((10 ** (db / 20) * np.sin(2 * np.pi * 1000 * t))[None], 2, axis=0).astype(np.float32)

    assert audio.loudness(sine(-23, 20), sr) == pytest.approx(-23.0, abs=0.1)
    assert audio.loudness(sine(-33, 20), sr) == pytest.approx(-33.0, abs=0.1)
    gated = np.concatenate([sine(-36, 10), sine(-23, 60), sine(-36, 10)], axis=1)
    assert audio.loudness(gated, sr) == pytest.approx(-23.0, abs=0.1)
    # surrounds weigh 1.41 (+1.5 dB): the same sine in Ls alone reads 1.5 dB above it in L alone
    one = sine(-23, 5)[0]
    left, ls = np.zeros((5, one.size), np.float32), np.zeros((5, one.size), np.float32)
    left[0], ls[3] = one, one
    assert audio.loudness(ls, sr) - audio.loudness(left, sr) == pytest.approx(10 * np.log10(1.41), abs=0.01)
    assert audio.loudness(np.zeros((1, sr), np.float32), sr) == float("-inf")
    assert audio.loudness(sine(-23, 0.3), sr) == float("-inf")  # shorter than one 400 ms block
    with pytest.raises(ValueError, match="five channels"):
        audio.loudness(np.zeros((6, sr), np.float32), sr)


def dynamic_passage(sr: int = SR, *, seconds: float = 30.0, seed: int = 0) -> np.ndarray:
    """Orchestral-like stereo material: a quiet string pad, a tutti in the second half and short percussive hits
    (timpani-like, 30 ms decay) that peak near full scale: a peak-to-loudness ratio of about 18 dB, where the
    loudness comes from the sustained music and the peaks from the hits."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    pad = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (196.0, 246.9, 293.7, 392.0, 523.3)) / 5
    level = np.where(t < seconds / 2, 0.04, 0.4) * (1 + 0.2 * np.sin(2 * np.pi * t / 5))
    hits = np.zeros_like(t)
    band = butter(4, [60, 2000], "bandpass", fs=sr, output="sos")
    for start in np.arange(1.5, seconds - 1, 3.7):
        i, m = int(start * sr), int(0.3 * sr)
        tt = np.arange(m) / sr
        noise = sosfilt(band, rng.standard_normal(m))
        hits[i:i + m] += np.exp(-tt / 0.03) * (0.9 * np.sin(2 * np.pi * 90 * tt) + 0.4 * noise / np.abs(noise).max())
    music = pad * level
    return np.stack([music + hits, 0.9 * music + 0.95 * hits]).astype(np.float32)


def test_limit_policy_reaches_the_target_under_the_ceiling_and_records_the_reduction():
    x = dynamic_passage()
    lufs, tp = audio.loudness(x, SR), audio.true_peak_db(x, SR)
    assert tp - lufs > 15  # dynamic: gain alone stops well below -14 LUFS
    target = -16.0
    assert audio.reachable_lufs(lufs, tp) < target - 2
    out, rec = audio.standardise_loudness(x, SR, target_lufs=target, ceiling_dbtp=-1.0, policy="limit")
    assert out.shape == x.shape and out.dtype == np.float32
    assert audio.loudness(out, SR) == pytest.approx(target, abs=0.1) and rec.reached
    assert audio.true_peak_db(out, SR) <= -1.0 + 1e-3 and audio.peak_db(out) <= -1.0
    # the recorded gain reduction is the limiter's: the gain beyond what the ceiling allowed, within a dB
    assert rec.policy == "limit" and rec.limiter_gain_reduction_db > 1.0
    assert rec.limiter_gain_reduction_db == pytest.approx(rec.gain_db - (-1.0 - tp), abs=1.0)
    assert 0 < rec.limited_share < 0.5  # only around the hits
    assert rec.loudness_in_lufs == pytest.approx(lufs) and rec.true_peak_dbtp == pytest.approx(
        audio.true_peak_db(out, SR), abs=1e-3)
    # the quiet passage is left as it was, only louder: away from the hits the output is the input times the gain
    quiet = slice(int(0.2 * SR), int(1.4 * SR))
    g = 10 ** (rec.gain_db / 20)
    assert np.allclose(out[:, quiet], x[:, quiet] * g, atol=1e-4)


def test_gain_policy_stops_at_the_ceiling_and_reachable_targets_take_gain_only():
    x = dynamic_passage()
    out, rec = audio.standardise_loudness(x, SR, target_lufs=-16.0, policy="gain")
    assert rec.limiter_gain_reduction_db == 0 and not rec.reached
    assert audio.true_peak_db(out, SR) == pytest.approx(-1.0, abs=0.01)
    assert audio.loudness(out, SR) < -17.0
    # a target gain reaches: exactly the input times one gain, limiter untouched
    low = audio.reachable_lufs(audio.loudness(x, SR), audio.true_peak_db(x, SR)) - 3
    out, rec = audio.standardise_loudness(x, SR, target_lufs=low, policy="limit")
    assert rec.limiter_gain_reduction_db == 0 and rec.limited_share == 0
    np.testing.assert_allclose(out, x * np.float32(10 ** (rec.gain_db / 20)), rtol=1e-6)
    assert audio.loudness(out, SR) == pytest.approx(low, abs=0.01)
    silent = np.zeros((1, SR), np.float32)
    out, rec = audio.standardise_loudness(silent, SR, target_lufs=-14.0)
    assert rec.policy == "none" and not out.any()


def test_limiting_is_capped_by_max_limiting_db():
    x = dynamic_passage()
    out, rec = audio.standardise_loudness(x, SR, target_lufs=-8.0, max_limiting_db=3.0)
    assert rec.limiter_gain_reduction_db <= 3.0 + 0.3
    assert not rec.reached and audio.loudness(out, SR) < -9
    assert audio.true_peak_db(out, SR) <= -1.0 + 1e-3


def test_auto_target_is_the_highest_level_the_share_reaches_by_gain():
    rng = np.random.default_rng(1)
    lufs = rng.uniform(-30, -15, 200)
    plr = rng.uniform(12, 24, 200)
    peaks = lufs + plr
    reach = lufs - 1.0 - peaks
    target = audio.auto_target_lufs(lufs, peaks, ceiling_dbtp=-1.0, share=0.9)
    assert np.mean(reach >= target) >= 0.9
    assert np.mean(reach >= target + 0.2) < 0.9  # rounded down by at most 0.1 LU: a bit higher loses the share
    assert audio.auto_target_lufs(lufs, peaks, share=0.5) > target
    # a corpus that could go louder is capped; silence (non-finite) is ignored; nothing finite gives the cap
    assert audio.auto_target_lufs([-20.0, -21.0], [-10.0, -10.0], max_lufs=-14.0) == -14.0
    assert audio.auto_target_lufs([-20.0, float("-inf")], [-3.0, float("-inf")], share=1.0) == pytest.approx(-18.0)
    assert audio.auto_target_lufs([], [], max_lufs=-14.0) == -14.0
    with pytest.raises(ValueError):
        audio.auto_target_lufs(lufs, peaks, share=0)


def test_auto_target_and_limiter_hold_a_dynamic_corpus_within_one_lu():
    """The defaults on orchestral-like clips of different dynamics: middle 95 % within 1 LU, no sample above
    -1 dBFS."""
    clips = []
    for seed in range(12):
        x = dynamic_passage(seconds=8.0, seed=seed)
        scale = 10 ** (np.random.default_rng(seed).uniform(-12, 0) / 20)
        hits = 1.0 + 0.15 * (seed % 4)
        clips.append((x * scale * np.array([[1.0], [hits]])).astype(np.float32))
    lufs = [audio.loudness(c, SR) for c in clips]
    peaks = [audio.true_peak_db(c, SR) for c in clips]
    target = audio.auto_target_lufs(lufs, peaks, share=0.9)
    outs = [audio.standardise_loudness(c, SR, target_lufs=target) for c in clips]
    after = np.array([audio.loudness(o, SR) for o, _ in outs])
    assert np.percentile(lufs, 97.5) - np.percentile(lufs, 2.5) > 8
    assert np.percentile(after, 97.5) - np.percentile(after, 2.5) <= 1.0
    assert max(audio.peak_db(o) for o, _ in outs) <= -1.0
    assert sum(r.limiter_gain_reduction_db > 0 for _, r in outs) >= 1  # the last 10 % needed the limiter


def test_model_input_is_the_channel_mean_resampled():
    """The embedders' and taggers' front end: for stereo, to_mono is exactly the channel mean the two
    hand-written front ends took, so their inputs are unchanged (bit for bit)."""
    rng = np.random.default_rng(3)
    x = (0.3 * rng.standard_normal((2, SR))).astype(np.float32)
    got = audio.model_input(x, SR, sr_out=16000)
    assert got.dtype == np.float32 and got.ndim == 1
    assert np.array_equal(got, audio.resample(x.mean(axis=0), SR, 16000))
    assert np.array_equal(audio.model_input(x, SR, sr_out=SR), x.mean(axis=0))
    pcm = (x[0] * 32767).astype(np.int16)
    assert np.array_equal(audio.model_input(pcm, SR, sr_out=SR), pcm / np.float32(32768))
    surround = np.zeros((6, SR), np.float32)
    surround[2] = x[0]  # 5.1: the centre channel folds in at -3 dB on both sides, not as one sixth
    assert np.allclose(audio.model_input(surround, SR, sr_out=SR), 0.7071 * x[0], atol=1e-4)
    with pytest.raises(InputError, match="vggish embedding"):
        audio.model_input(np.zeros((1, 2, 3), np.float32), SR, sr_out=SR, what="vggish embedding")
    with pytest.raises(InputError, match="empty"):
        audio.model_input(np.zeros((2, 0), np.float32), SR, sr_out=16000)


def test_mp3_resync_notes_stay_out_of_the_log(tmp_path):
    """libmpg123 prints "Note: … Trying to resync" to file descriptor 2 for a stream it then decodes fine; the
    decoder calls mute it (the notes reached every curation log), and errors still raise."""
    import subprocess
    import sys

    t = np.arange(SR * 4) / SR
    sf.write(str(tmp_path / "clean.mp3"), 0.25 * np.stack([np.sin(2 * np.pi * 220 * t)] * 2, axis=1), SR)
    data = (tmp_path / "clean.mp3").read_bytes()
    (tmp_path / "gap.mp3").write_bytes(data[: len(data) // 2] + bytes(700) + data[len(data) // 2:])
    code = ("import sys; from echoscript_utils import audio; p = sys.argv[1]\n"
            "info = audio.info(p); n = sum(b.shape[1] for b in audio.stream(p)); wav, sr = audio.load(p)\n"
            "assert n == wav.shape[1] == info.frames > 0, (n, wav.shape, info)\n"
            "print('decoded', file=sys.stderr)\n")
    raw = subprocess.run([sys.executable, "-c", "import soundfile as sf, sys; sf.read(sys.argv[1])",
                          str(tmp_path / "gap.mp3")], capture_output=True, text=True, check=True)
    assert "resync" in raw.stderr  # the file does make the decoder talk
    ours = subprocess.run([sys.executable, "-c", code, str(tmp_path / "gap.mp3")], capture_output=True, text=True,
                          check=True)
    assert ours.stderr.strip() == "decoded"  # muted while decoding, and stderr works again afterwards


@pytest.mark.parametrize("case", ["mono", "stereo", "five", "gated", "barely_long_enough", "near_silent", "48k"])
def test_loudness_equals_pyloudnorm(case):
    """The vectorised meter against the reference it follows, on every path through the gates."""
    pyln = pytest.importorskip("pyloudnorm")
    rng = np.random.default_rng(5)
    sr = 48000 if case == "48k" else SR
    gated = tone(330.0, dur=8.0, amp=0.4)
    gated[:, 2 * SR:5 * SR] *= 1e-3  # a quiet stretch below the relative gate
    x = {"mono": tone(dur=6.0), "stereo": 0.1 * rng.standard_normal((2, 7 * SR)), "gated": gated,
         "five": 0.1 * rng.standard_normal((5, 3 * SR)) * np.array([[1.0], [0.5], [0.8], [0.3], [0.2]]),
         "barely_long_enough": 0.2 * rng.standard_normal((2, int(0.4 * SR) + 7)),
         "near_silent": np.r_[np.zeros(4 * SR), 1e-5 * rng.standard_normal(SR)][None],
         "48k": 0.1 * rng.standard_normal((2, 5 * sr))}[case].astype(np.float32)
    ref = pyln.Meter(sr).integrated_loudness(x.T.astype(np.float64))
    ours = audio.loudness(x, sr)
    if np.isfinite(ref):
        assert ours == pytest.approx(ref, abs=1e-9)
    else:
        assert ours == ref == float("-inf")


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_write_gives_the_bytes_libsndfile_writes_to_a_file(tmp_path, suffix):
    x = tone(dur=0.7, amp=0.4)
    ours = audio.write(tmp_path / f"ours{suffix}", x, SR)
    sf.write(str(tmp_path / f"direct{suffix}"), x.T, SR, subtype="PCM_16")
    assert ours.read_bytes() == (tmp_path / f"direct{suffix}").read_bytes()


@pytest.mark.parametrize("case", ["bits", "ramp", "noise", "loud", "edges"])
def test_16_bit_conversion_is_libsndfiles(tmp_path, case):
    """``write`` turns float32 into 16-bit WAV samples itself (faster); the file must stay byte for byte what
    libsndfile writes from the floats: random float32 bit patterns in [-1, 1] (every exponent), every step
    boundary of a full-scale ramp, noise, clipping, ±1, ±0, tiny values of both signs."""
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2 ** 32, size=4_000_000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x = {"bits": bits[np.isfinite(bits) & (np.abs(bits) <= 1.0)][None],
         "ramp": np.linspace(-1.0, 1.0, 2 * 65536 * 3 + 1)[None],
         "noise": 0.3 * rng.standard_normal((2, SR)),
         "loud": 3.0 * rng.standard_normal((2, SR)),
         "edges": np.array([[1.0, -1.0, 0.99999994, -0.99999994, 0.0, -0.0, 1 / 32768, -1 / 32768, 0.5 / 32768,
                             -0.5 / 32768, 1.5 / 32768, -1.5 / 32768, 3e-10, -3e-10, 2.0, -2.0]])}[case]
    x = x.astype(np.float32)
    ours = audio.write(tmp_path / "ours.wav", x, SR)
    sf.write(str(tmp_path / "direct.wav"), np.clip(x, -1.0, 1.0).T, SR, subtype="PCM_16")
    assert ours.read_bytes() == (tmp_path / "direct.wav").read_bytes()


@pytest.mark.parametrize(("sr_in", "sr_out", "filt", "seconds"), [
    (44100, 48000, "kaiser_best", 4.0),  # CLAP's reference front end
    (44100, 16000, "kaiser_best", 3.0),  # VGGish's
    (48000, 32000, "kaiser_best", 2.0),  # PANNs'
    (22050, 16000, "kaiser_fast", 2.0),
    (16000, 48000, "kaiser_best", 1.5),
    (8000, 44100, "kaiser_best", 0.7),
    (44100, 48000, "kaiser_best", 0.01),  # shorter than the filter: every output near both ends
    (48000, 7919, "kaiser_fast", 60.0),  # rounding moves two outputs' base sample off the repeating pattern
])
def test_reference_resampling_equals_resampy(sr_in, sr_out, filt, seconds):
    """The polyphase form of resampy's resampler gives what resampy itself gives on the same float32 signal (sums in
    float64 instead of float32: a few 1e-7 of full scale), at the same length, in each layout."""
    import resampy

    rng = np.random.default_rng(sr_in + sr_out)
    n = int(sr_in * seconds)
    t = np.arange(n) / sr_in
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t) + 0.3 * rng.standard_normal(n),
                  0.9 * np.sign(np.sin(2 * np.pi * 97 * t))]).astype(np.float32)  # noise, a square wave
    theirs = resampy.resample(x, sr_in, sr_out, filter=filt, axis=-1)
    ours = audio.resample(x, sr_in, sr_out, method=filt)
    assert ours.shape == theirs.shape and ours.dtype == np.float32
    assert np.abs(ours - theirs).max() <= 3e-6
    assert np.array_equal(audio.resample(x[1], sr_in, sr_out, method=filt), ours[1])
