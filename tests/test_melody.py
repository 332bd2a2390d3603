"""Chroma conditioning: MIDI sketches and audio → one-hot chromagrams that MusicGen-Melody accepts."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import torch

from echoscript_utils import melody
from echoscript_utils.errors import InputError

SCALE = [60, 62, 64, 65, 67, 69, 71, 72]  # C major, C4..C5
SCALE_PC = [0, 2, 4, 5, 7, 9, 11, 0]
NOTE_S = 0.5


def _scale_midi(*, with_drums: bool = True, gap_s: float = 0.0) -> pretty_midi.PrettyMIDI:
    pm = pretty_midi.PrettyMIDI()
    piano = pretty_midi.Instrument(program=0)
    for i, pitch in enumerate(SCALE):
        start = gap_s + i * NOTE_S
        piano.notes.append(pretty_midi.Note(velocity=100, pitch=pitch, start=start, end=start + NOTE_S))
    pm.instruments.append(piano)
    if with_drums:  # a loud kick on every beat at pitch 36 (= C) must not count
        drums = pretty_midi.Instrument(program=0, is_drum=True)
        for i in range(len(SCALE)):
            drums.notes.append(pretty_midi.Note(velocity=127, pitch=37, start=gap_s + i * NOTE_S,
                                                end=gap_s + (i + 1) * NOTE_S))
        pm.instruments.append(drums)
    return pm


def _frames_inside(start: float, end: float, frame_rate: float, n_frames: int) -> list[int]:
    """Frames whose whole window [(i-0.5)/fr, (i+0.5)/fr) lies inside [start, end)."""
    half = 0.5 / frame_rate
    return [i for i in range(n_frames) if i / frame_rate - half >= start and i / frame_rate + half <= end]


def _sine(freq: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize("frame_rate", [melody.CHROMA_FRAME_RATE, 50.0])
def test_chroma_from_midi_file_follows_c_major_scale(tmp_path, frame_rate):
    path = tmp_path / "scale.mid"
    _scale_midi().write(str(path))
    chroma = melody.chroma_from_midi(path, frame_rate=frame_rate)
    n = chroma.shape[0]
    assert chroma.dtype == np.float32 and chroma.shape == (melody.n_chroma_frames(4.0, frame_rate=frame_rate), 12)
    assert set(np.unique(chroma)) <= {0.0, 1.0}
    checked = 0
    for i, pc in enumerate(SCALE_PC):
        frames = _frames_inside(i * NOTE_S, (i + 1) * NOTE_S, frame_rate, n)
        assert frames, "each note must cover at least one whole frame"
        assert (chroma[frames].argmax(axis=1) == pc).all(), f"note {i}: expected pitch class {pc}"
        assert (chroma[frames].sum(axis=1) == 1).all()
        checked += len(frames)
    assert checked >= len(SCALE)


def test_chroma_from_midi_silence_is_zero_and_n_frames_pads():
    pm = _scale_midi(gap_s=1.0)  # one second of silence first
    fr = melody.CHROMA_FRAME_RATE
    chroma = melody.chroma_from_midi(pm, n_frames=60, frame_rate=fr)
    assert chroma.shape == (60, 12)
    silent_lead = [i for i in range(60) if i / fr + 0.5 / fr <= 1.0]
    assert silent_lead and not chroma[silent_lead].any()
    after_end = [i for i in range(60) if i / fr - 0.5 / fr >= 1.0 + len(SCALE) * NOTE_S]
    assert after_end and not chroma[after_end].any()
    short = melody.chroma_from_midi(pm, n_frames=5, frame_rate=fr)
    assert short.shape == (5, 12)


def test_chroma_from_midi_selects_instruments_and_ignores_drums():
    pm = _scale_midi(with_drums=True)
    bass = pretty_midi.Instrument(program=33)
    bass.notes.append(pretty_midi.Note(velocity=127, pitch=43, start=0.0, end=4.0))  # loud G under everything
    pm.instruments.append(bass)
    everything = melody.chroma_from_midi(pm)
    melody_only = melody.chroma_from_midi(pm, instruments=[0, 1])  # piano + drums: drums carry no pitch
    assert (everything.argmax(axis=1)[everything.any(axis=1)] == 7).all()  # the bass dominates every frame
    frames = _frames_inside(2 * NOTE_S, 3 * NOTE_S, melody.CHROMA_FRAME_RATE, melody_only.shape[0])
    assert (melody_only[frames].argmax(axis=1) == 4).all()  # E, the third note


def test_chroma_from_midi_bad_file_is_input_error(tmp_path):
    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"not a midi file")
    with pytest.raises(InputError, match="broken.mid"):
        melody.chroma_from_midi(bad)


def test_chroma_from_audio_sine_a4_is_pitch_class_a():
    sr = 44_100
    wav = np.stack([_sine(440.0, 2.0, sr)] * 2)  # stereo [C, T]
    chroma = melody.chroma_from_audio(wav, sr)
    assert chroma.dtype == np.float32
    assert chroma.shape == (melody.n_chroma_frames(2.0), 12) == (16, 12)
    assert (chroma.argmax(axis=1) == 9).all()
    assert (chroma.sum(axis=1) == 1).all()


def test_chroma_from_audio_follows_a_pitch_change_and_pads():
    sr = 32_000
    wav = np.concatenate([_sine(261.63, 2.0, sr), _sine(392.0, 2.0, sr)])  # C4 then G4, mono [T]
    chroma = melody.chroma_from_audio(torch.from_numpy(wav), sr, n_frames=40)
    assert chroma.shape == (40, 12)
    pcs = chroma.argmax(axis=1)
    assert (pcs[2:13] == 0).all() and (pcs[18:30] == 7).all()
    assert not chroma[32:].any()  # padded rows


def test_chroma_frame_count_matches_melody_model_window():
    """30 s → 235 frames, the hub model's chroma_length; the filter bank equals the reference one."""
    import librosa
    from transformers.audio_utils import chroma_filter_bank

    assert melody.n_chroma_frames(30.0) == 235
    ours = librosa.filters.chroma(sr=melody.CHROMA_SR, n_fft=melody.CHROMA_N_FFT, tuning=0.0, n_chroma=12)
    reference = chroma_filter_bank(sampling_rate=melody.CHROMA_SR, num_frequency_bins=melody.CHROMA_N_FFT,
                                   tuning=0, num_chroma=12)
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    silent = melody.chroma_from_audio(np.zeros(32_000 * 30, dtype=np.float32), 32_000)
    assert silent.shape == (235, 12) and (silent[:, 0] == 1).all()  # the reference's silence: pitch class C


def test_melody_model_accepts_chroma(tmp_path):
    from echoscript_utils.models import load_musicgen

    model, tokenizer = load_musicgen("tiny-musicgen-melody", cache_dir=tmp_path)
    assert melody.chroma_frame_rate(model) == melody.CHROMA_FRAME_RATE
    assert model.config.chroma_length == melody.n_chroma_frames(30.0)
    text = tokenizer(["a tense cinematic cue"], return_tensors="pt")
    scale = torch.from_numpy(melody.chroma_from_midi(_scale_midi()))[None]  # [1, n, 12]
    other = torch.roll(scale, shifts=5, dims=-1)
    labels = torch.randint(0, 64, (1, 25, 4))
    with torch.no_grad():
        out_a = model(**text, input_features=scale, labels=labels)
        out_b = model(**text, input_features=other, labels=labels)
    assert torch.isfinite(out_a.loss)
    # logits cover the prefix too: chroma_length chroma frames + text tokens + 25 audio steps, per codebook
    assert out_a.logits.shape == (4, model.config.chroma_length + text["input_ids"].shape[1] + 25, 64)
    assert not torch.allclose(out_a.logits, out_b.logits), "the chroma must change the prediction"
    torch.manual_seed(0)
    audio = model.generate(**text, input_features=scale, max_new_tokens=20, do_sample=False)
    assert audio.shape[:2] == (1, 1) and audio.shape[-1] > 0
