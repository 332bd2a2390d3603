"""delivery: loudness profiles, ducking, Broadcast WAV stems and the preview, checked with outside tools.

pyloudnorm and ffmpeg's ebur128 meter check every loudness profile on orchestral-like material (rendered through a
General MIDI soundfont) and on a real soundtrack that Debian packages (warzone2100-music, fetched into the test
cache by scripts/install_test_deps.sh, never committed); mediainfo and ffprobe read each stem's ``bext`` time
reference; ffmpeg renders the preview and each cue is found in its decoded audio by cross-correlation.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pyloudnorm as pyln
import pytest
import soundfile as sf
from opentimelineio import opentime

from echoscript_utils import audio, delivery
from echoscript_utils.demo_corpus import TrackSpec, compose_track
from echoscript_utils.errors import ConfigError, DependencyError, InputError, OutputError
from echoscript_utils.synth import render_midi

SR = 48000
FFMPEG = shutil.which("ffmpeg")
MEDIAINFO = shutil.which("mediainfo")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None and not os.environ.get("CI"),
                                  reason="needs Debian's ffmpeg (scripts/install_test_deps.sh)")
needs_mediainfo = pytest.mark.skipif(MEDIAINFO is None and not os.environ.get("CI"),
                                     reason="needs Debian's mediainfo (scripts/install_test_deps.sh)")
# A real orchestral-style soundtrack from Debian's archive (GPL-2+, Ogg Opus); install_test_deps.sh unpacks it here.
TEST_CACHE = Path(os.environ.get("ECHOSCRIPT_TEST_CACHE", Path.home() / ".cache/echoscript/test-tools"))
WZ_MUSIC = TEST_CACHE / "warzone2100-music/usr/share/games/warzone2100/music/albums/legacy_soundtrack"


def orchestral(seed: int, duration_s: float) -> np.ndarray:
    """Strings and percussion with the demo corpus's phrasing, rendered through the GM soundfont: ``[2, T]``."""
    spec = TrackSpec(track_id=f"o{seed}", title="test", genre="orchestral", moods=("suspenseful",),
                     instruments=("violin", "percussion"), bpm=96, key="D", mode="minor", duration_s=duration_s)
    return render_midi(compose_track(spec, seed=seed), sr=SR, duration_s=duration_s)


@pytest.fixture(scope="module")
def synth_score() -> np.ndarray:
    return orchestral(7, 20.0)


@functools.lru_cache(maxsize=2)
def debian_track(name: str, seconds: float = 30.0) -> np.ndarray:
    """The first ``seconds`` of a track of Debian's warzone2100-music (Ogg Opus, decoded at 48 kHz): ``[2, T]``."""
    path = WZ_MUSIC / f"{name}.opus"
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{path}: missing; scripts/install_test_deps.sh unpacks Debian's warzone2100-music there")
        pytest.skip("needs Debian's warzone2100-music in the test cache (scripts/install_test_deps.sh)")
    wav, sr = sf.read(str(path), frames=int(seconds * SR), dtype="float32", always_2d=True)
    assert sr == SR
    return wav.T.copy()


def ffmpeg_ebur128(path: Path) -> tuple[float, float]:
    """Integrated loudness (LUFS) and true peak (dBTP) as ffmpeg's ebur128 filter measures them (0.1 precision)."""
    err = subprocess.run([FFMPEG, "-hide_banner", "-nostats", "-i", str(path), "-af", "ebur128=peak=true",
                          "-f", "null", "-"], capture_output=True, text=True, check=True).stderr
    return (float(re.findall(r"I:\s+(-?[\d.]+) LUFS", err)[-1]), float(re.findall(r"Peak:\s+(-?[\d.]+) dBFS", err)[-1]))


# ------------------------------------------------------------------------------------------------ profiles
def test_profiles_are_the_published_figures():
    got = {k: (p.target_lufs, p.ceiling_dbtp) for k, p in delivery.LOUDNESS_PROFILES.items()}
    assert got == {"ebu_r128": (-23.0, -1.0), "atsc_a85": (-24.0, -2.0), "streaming_14": (-14.0, -1.0),
                   "streaming_16": (-16.0, -1.0)}
    assert delivery.profile("EBU-R128") is delivery.LOUDNESS_PROFILES["ebu_r128"]
    assert delivery.profile("ATSC A/85") is delivery.LOUDNESS_PROFILES["atsc_a85"]
    p = delivery.LOUDNESS_PROFILES["streaming_16"]
    assert delivery.profile(p) is p
    with pytest.raises(ConfigError) as err:
        delivery.profile("spotify")
    msg = str(err.value)
    assert "\n" not in msg and "'spotify'" in msg and all(k in msg for k in delivery.LOUDNESS_PROFILES)
    with pytest.raises(TypeError):
        delivery.LOUDNESS_PROFILES["mine"] = p  # read-only


# ------------------------------------------------------------------------------------------------- conform
def check_conformed(tmp_path: Path, wav: np.ndarray, name: str) -> dict:
    """Conform, write as 24-bit PCM, and measure the file with pyloudnorm, our meter and ffmpeg's."""
    p = delivery.profile(name)
    out, rep = delivery.conform(wav, SR, profile=name)
    f = tmp_path / f"{name}.wav"
    audio.write(f, out, SR, subtype="PCM_24")
    back, _ = sf.read(str(f), dtype="float64")
    lufs = pyln.Meter(SR).integrated_loudness(back)
    tp = audio.true_peak_db(back.T, SR)
    assert rep["loudness_target_lufs"] == p.target_lufs and rep["true_peak_target_dbtp"] == p.ceiling_dbtp
    assert rep["loudness_lufs"] == pytest.approx(lufs, abs=0.01)  # the report is what the file measures
    assert tp <= p.ceiling_dbtp  # the ceiling holds on the delivered file
    if FFMPEG:
        ff_lufs, ff_tp = ffmpeg_ebur128(f)
        assert ff_lufs == pytest.approx(lufs, abs=0.1)
        assert ff_tp <= p.ceiling_dbtp + 0.1  # another meter's oversampling filter, printed to 0.1 dB
    if rep["reached"]:
        assert abs(lufs - p.target_lufs) <= 0.5 and rep["shortfall_lu"] == 0
    else:
        assert rep["shortfall_lu"] == pytest.approx(p.target_lufs - lufs, abs=0.01) and rep["shortfall_lu"] > 0.5
    return rep


@pytest.mark.parametrize("name", list(delivery.LOUDNESS_PROFILES))
def test_conform_reaches_every_profile_on_orchestral_material(tmp_path, synth_score, name):
    rep = check_conformed(tmp_path, synth_score, name)
    assert rep["reached"]


@pytest.mark.parametrize("name", list(delivery.LOUDNESS_PROFILES))
def test_conform_reaches_every_profile_on_a_real_soundtrack(tmp_path, name):
    # "Recovery Ops": peak-to-loudness ratio about 14 dB, so -14 LUFS under -1 dBTP needs about 1 dB of limiting
    rep = check_conformed(tmp_path, debian_track("track5"), name)
    assert rep["reached"]
    assert rep["limited"] == (name == "streaming_14")


def test_conform_reports_honestly_what_dynamic_material_reaches(tmp_path):
    # the first 30 s of track 8 have a peak-to-loudness ratio of about 20 dB: -14 LUFS under -1 dBTP would take
    # more limiting than allowed, so the report says how far it fell short (the check measures the file)
    rep = check_conformed(tmp_path, debian_track("track8"), "streaming_14")
    assert not rep["reached"] and rep["limited"] and rep["limiter_gain_reduction_db"] <= 6.0 + 0.1
    rep = check_conformed(tmp_path, debian_track("track8"), "ebu_r128")
    assert rep["reached"] and not rep["limited"]


def test_conform_silence_is_left_alone():
    out, rep = delivery.conform(np.zeros((2, SR), np.float32), SR, profile="ebu_r128")
    assert not out.any() and rep["loudness_lufs"] is None and not rep["reached"] and rep["shortfall_lu"] is None


# ------------------------------------------------------------------------------------------------- ducking
def rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64))))


def test_duck_lowers_dialogue_by_the_depth_and_leaves_the_rest(synth_score):
    x = synth_score
    regions = [(2.0, 5.0), (9.5, 11.0, 6.0), (19.5, 25.0)]  # the last runs past the end of the music
    out, rep = delivery.duck(x, SR, regions=regions, depth_db=12.0, ramp_s=0.25)
    assert out.shape == x.shape and out.dtype == np.float32
    for (a, b, want), row in zip([(2.0, 5.0, 12.0), (9.5, 11.0, 6.0), (19.5, 20.0, 12.0)], rep, strict=True):
        i, j = int(a * SR), int(b * SR)
        assert rms_db(out[:, i:j]) - rms_db(x[:, i:j]) == pytest.approx(-want, abs=0.01)
        assert row["gain_reduction_db"] == pytest.approx(want, abs=1e-6)
        assert row["level_change_db"] == pytest.approx(-want, abs=0.01)
    assert rep[0]["ramp_in_s"] == rep[0]["ramp_out_s"] == 0.25 and rep[2]["ramp_out_s"] == 0.0
    # away from every region and ramp, bit for bit the input
    keep = np.ones(x.shape[1], bool)
    for a, b, *_ in regions:
        keep[max(int((a - 0.25) * SR) - 1, 0):int((b + 0.25) * SR) + 1] = False
    assert keep.sum() > 10 * SR and np.array_equal(out[:, keep], x[:, keep])
    # the ramps are smooth: gain changes by less than 0.01 dB from one sample to the next
    g = 20 * np.log10(np.abs(out[0]) / np.maximum(np.abs(x[0]), 1e-12))
    live = np.abs(x[0]) > 1e-3
    steps = np.abs(np.diff(g))[live[1:] & live[:-1]]
    assert steps.max() < 12.0 / (0.25 * SR) * np.pi / 2 + 1e-3


def test_duck_overlaps_take_the_deeper_reduction_and_bad_regions_are_named():
    x = np.full((1, SR * 4), 0.5, np.float32)
    out, rep = delivery.duck(x, SR, regions=[(1.0, 2.0, 6.0), (1.5, 3.0, 12.0)], ramp_s=0.0)
    assert 20 * np.log10(out[0, int(1.2 * SR)] / 0.5) == pytest.approx(-6.0, abs=1e-4)
    assert 20 * np.log10(out[0, int(1.7 * SR)] / 0.5) == pytest.approx(-12.0, abs=1e-4)
    assert rep[0]["gain_reduction_db"] == pytest.approx(6.0) and rep[1]["gain_reduction_db"] == pytest.approx(12.0)
    out, rep = delivery.duck(x, SR, regions=[(10.0, 12.0)])
    assert np.array_equal(out, x) and rep[0]["gain_reduction_db"] == 0.0 and rep[0]["level_change_db"] is None
    for bad, what in [((3.0, 2.0), "region 1: need 0 <= start_s < end_s"), ((1.0, 2.0, -3.0), "region 1: depth_db"),
                      ((1.0,), "region 1: expected")]:
        with pytest.raises(InputError, match=re.escape(what)):
            delivery.duck(x, SR, regions=[(0.0, 1.0), bad])


# ------------------------------------------------------------------------------------------- Broadcast WAV
CUES = [("01:00:10:12", 24.0), ("00:59:58:24", 25.0), ("01:00:00:00", 24000 / 1001), ("01:00:00;02", 30000 / 1001),
        ("10:00:00;00", 30000 / 1001)]


@needs_mediainfo
@pytest.mark.parametrize("tc,rate", CUES)
def test_bwf_time_reference_reads_back_as_the_cue_timecode(tmp_path, tc, rate):
    x = (0.1 * np.random.default_rng(0).standard_normal((2, SR))).astype(np.float32)
    start = opentime.from_timecode(tc, rate)
    samples = round(start.rescaled_to(SR).value)
    f = delivery.write_bwf(tmp_path / "1M1.wav", x, SR, time_reference=start, description="1M1 INT. CAFÉ - NIGHT",
                           loudness_lufs=-23.0, true_peak_dbtp=-1.25, origination=dt.datetime(2026, 5, 4, 3, 2, 1))
    info = json.loads(subprocess.run([MEDIAINFO, "--Output=JSON", str(f)], capture_output=True, text=True,
                                     check=True).stdout)
    general, track = info["media"]["track"][0], info["media"]["track"][1]
    assert general["extra"]["bext_Present"] == "Yes" and general["extra"]["bext_Version"] == "2"
    assert general["Description"] == "1M1 INT. CAFE - NIGHT" and general["Producer"] == "EchoScript"
    assert general["Encoded_Date"] == "2026-05-04 03:02:01"
    assert track["Delay_Source"] == "Container (bext)"
    delay_s = float(track["Delay"])  # mediainfo reports the time reference in seconds, to the millisecond
    assert abs(delay_s * SR - samples) <= 0.0005 * SR + 1
    assert opentime.to_timecode(opentime.from_seconds(delay_s, rate).round(), rate) == tc
    assert track["extra"]["LoudnessValue"] == "-23.00" and track["extra"]["MaxTruePeakLevel"] == "-1.25"
    if FFMPEG:  # a second reader, to the sample
        probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_format", "-of", "json", str(f)],
                                          capture_output=True, text=True, check=True).stdout)
        assert int(probe["format"]["tags"]["time_reference"]) == samples
    # the audio is intact, and the RIFF structure is sound for the standard library's reader too
    back, sr = sf.read(str(f), dtype="float32", always_2d=True)
    assert sr == SR and np.abs(back.T - x).max() < 2 ** -22
    with wave.open(str(f)) as w:
        assert w.getnframes() == SR and w.getsampwidth() == 3 and w.getnchannels() == 2
    head = f.read_bytes()[:16]
    assert head[:4] == b"RIFF" and head[8:16] == b"WAVEbext"


def test_bwf_takes_samples_and_pads_odd_chunks(tmp_path):
    x = np.zeros((1, 100), np.float32)
    f = delivery.write_bwf(tmp_path / "a.wav", x, SR, time_reference=2**40 + 3, coding_history="A=PCM\r\n",
                           subtype="PCM_16")
    data = f.read_bytes()
    assert int.from_bytes(data[4:8], "little") == len(data) - 8
    size = int.from_bytes(data[16:20], "little")
    assert size == 602 + 7 and data[20 + size] == 0  # odd chunk: one pad byte, not counted
    body = data[20:20 + size]
    assert int.from_bytes(body[338:346], "little") == 2**40 + 3 and int.from_bytes(body[346:348], "little") == 2
    assert body[602:] == b"A=PCM\r\n"
    with wave.open(str(f)) as w:
        assert w.getnframes() == 100


def test_bwf_bad_input_writes_nothing(tmp_path):
    x = np.zeros((2, 100), np.float32)
    for bad in (-1, 1.3, "01:00:00:00"):
        with pytest.raises(InputError, match="time_reference"):
            delivery.write_bwf(tmp_path / "a.wav", x, SR, time_reference=bad)
    with pytest.raises(InputError, match="a.wav: a Broadcast WAV stem is PCM"):
        delivery.write_bwf(tmp_path / "a.wav", x, SR, time_reference=0, subtype="FLOAT")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------- preview
def decoded_audio(path: Path) -> np.ndarray:
    raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(SR), "-f", "f32le",
                          "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32)


def find_offset_ms(mix: np.ndarray, stem: np.ndarray, expected_s: float, *, search_s: float = 1.0) -> float:
    """Where ``stem`` (mono) starts in ``mix``, by cross-correlation within ``search_s`` of ``expected_s``; in ms
    from the expected start."""
    from scipy.signal import correlate

    a = max(int((expected_s - search_s) * SR), 0)
    seg = mix[a:int((expected_s + search_s) * SR) + stem.size]
    c = correlate(seg, stem, mode="valid", method="fft")
    return ((a + int(np.argmax(c))) / SR - expected_s) * 1000


def frame_at(path: Path, t: float) -> np.ndarray:
    raw = subprocess.run([FFMPEG, "-v", "error", "-ss", f"{t}", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(360, 640, 3)


def probe(path: Path) -> dict:
    return json.loads(subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-show_streams", "-show_format",
                                      "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout)


def cue_label_pixels(frame: np.ndarray) -> int:
    """Pixels of the cue number's colour (0xffd75e) in the top-left corner."""
    corner = frame[:90, :320].astype(int)
    return int(np.sum((corner[..., 0] > 200) & (corner[..., 1] > 170) & (corner[..., 2] < 140)))


@needs_ffmpeg
@pytest.mark.parametrize("fps,tc", [(24.0, "01:00:00:00"), (29.97, "00:59:59;20")])
def test_preview_lays_each_cue_at_its_timecode(tmp_path, fps, tc):
    starts = [(0.5, 3.0), (3.0, 5.5), (7.25, 9.5)]  # two cues back to back, then a gap
    cues, stems = [], []
    for k, (a, b) in enumerate(starts):
        stem = orchestral(11 + k, b - a)
        stems.append(stem.mean(axis=0))
        audio.write(tmp_path / f"1M{k + 1}.wav", stem, SR, subtype="PCM_24")
        cues.append({"start_s": a, "end_s": b, "cue": f"1M{k + 1}", "heading": f"INT. ROOM {k} - NIGHT",
                     "path": tmp_path / f"1M{k + 1}.wav"})
    out = delivery.render_preview(tmp_path / "preview.mp4", duration_s=10.0, fps=fps, cues=cues,
                                  start_timecode=tc)
    info = probe(out)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (640, 360)
    assert int(video["nb_read_frames"]) == round(10.0 * fps)
    assert float(info["format"]["duration"]) == pytest.approx(10.0, abs=0.05)
    mix = decoded_audio(out)
    frame_ms = 1000 / fps
    offsets = [find_offset_ms(mix, s, a) for s, (a, _) in zip(stems, starts, strict=True)]
    print("preview cue offsets (ms):", [round(o, 2) for o in offsets])
    assert all(abs(o) < frame_ms for o in offsets), offsets
    assert np.sqrt(np.mean(mix[int(6.0 * SR):int(7.0 * SR)] ** 2)) < 1e-3  # silence in the gap
    # the cue number is burnt in while its cue plays, and gone in the gap
    assert cue_label_pixels(frame_at(out, 1.5)) > 100 and cue_label_pixels(frame_at(out, 6.5)) == 0


@needs_ffmpeg
def test_preview_takes_a_score_and_the_users_video(tmp_path):
    clip = tmp_path / "cut.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=3",
                    "-pix_fmt", "yuv420p", str(clip)], check=True)
    score = np.zeros((2, 6 * SR), np.float32)
    cue = orchestral(5, 2.0)
    score[:, 2 * SR:4 * SR] = cue
    audio.write(tmp_path / "score.wav", score, SR, subtype="PCM_24")
    out = delivery.render_preview(tmp_path / "preview.mp4", duration_s=6.0, fps=25, audio=tmp_path / "score.wav",
                                  video=clip, cues=[{"start_s": 2.0, "end_s": 4.0, "cue": "2M1"}])
    info = probe(out)
    video = next(s for s in info["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (640, 360) and int(video["nb_read_frames"]) == 150
    assert abs(find_offset_ms(decoded_audio(out), cue.mean(axis=0), 2.0)) < 40
    # the user's picture (testsrc's colour bars) fills the frame, frozen after its 3 s
    late = frame_at(out, 5.0)
    assert late[150:200, 200:440].std() > 30 and cue_label_pixels(frame_at(out, 3.0)) > 50


@needs_ffmpeg
def test_preview_errors_are_one_line_and_write_nothing(tmp_path, monkeypatch):
    bad = tmp_path / "not_a_video.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(OutputError) as err:
        delivery.render_preview(tmp_path / "out" / "preview.mp4", duration_s=2, fps=24, cues=[], video=bad)
    msg = str(err.value)
    assert "\n" not in msg and "ffmpeg failed (" in msg and "Invalid data" in msg
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    with pytest.raises(InputError, match="stem of cue 1M2 not found"):
        delivery.render_preview(tmp_path / "p.mp4", duration_s=2, fps=24,
                                cues=[{"start_s": 0, "end_s": 1, "cue": "1M2", "path": tmp_path / "none.wav"}])
    with pytest.raises(InputError, match="cue 1M3 needs 0 <= start_s < end_s"):
        delivery.render_preview(tmp_path / "p.mp4", duration_s=2, fps=24, cues=[{"start_s": 1, "end_s": 1, "cue": "1M3"}])
    monkeypatch.setattr(delivery.shutil, "which", lambda name: None)
    with pytest.raises(DependencyError, match="ffmpeg not found"):
        delivery.render_preview(tmp_path / "p.mp4", duration_s=2, fps=24, cues=[])
    assert not (tmp_path / "p.mp4").exists()
