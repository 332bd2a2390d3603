"""musicnn port: checkpoint reader, parity with the original TensorFlow model, API, taxonomy, sanity on renders.

The reference arrays in ``tests/data/musicnn_reference.npz`` come from ``scripts/musicnn_reference.py`` (original
TensorFlow graph and checkpoint, fixed float32-log front end) run on the audio recipe defined in that script.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from echoscript_utils import taxonomy
from echoscript_utils.errors import DependencyError, InputError
from echoscript_utils.models import musicnn, tfbundle

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "musicnn_reference.npz"
#: Largest absolute difference allowed between port and TensorFlow probabilities (measured: < 3e-6).
PROB_ATOL = 1e-4


def _load_script():
    spec = importlib.util.spec_from_file_location("musicnn_reference", ROOT / "scripts" / "musicnn_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ref():
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def recipe():
    return _load_script()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("musicnn_cache")


def _render(program: int, *, legato: bool, sr: int = 22050) -> np.ndarray:
    """Eight bars of C–Am–F–G on one General MIDI program: block chords (legato) or arpeggios, ``[C, T]``."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=program)
    chords = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)] * 2
    for bar, chord in enumerate(chords):
        t = float(bar)
        if legato:
            for pitch in (*chord, chord[-1] + 12):
                inst.notes.append(pretty_midi.Note(velocity=85, pitch=pitch, start=t, end=t + 1.0))
        else:
            for i, pitch in enumerate((*chord, chord[0] + 12)):
                inst.notes.append(pretty_midi.Note(velocity=90, pitch=pitch + 12, start=t + 0.25 * i,
                                                   end=t + 0.25 * i + 0.5))
            inst.notes.append(pretty_midi.Note(velocity=70, pitch=chord[0] - 12, start=t, end=t + 1.0))
    pm.instruments.append(inst)
    try:
        from echoscript_utils.synth import render_midi
    except ImportError:  # render straight through tinysoundfont with pretty_midi's bundled GM soundfont
        return _render_direct(pm, sr)
    return render_midi(pm, sr=sr)


def _render_direct(pm, sr: int) -> np.ndarray:
    import tinysoundfont

    synth = tinysoundfont.Synth(samplerate=sr)
    sfid = synth.sfload(str(Path(__import__("pretty_midi").__file__).parent / "TimGM6mb.sf2"))
    synth.program_select(0, sfid, 0, pm.instruments[0].program)
    events = sorted((round(t * sr), on, n.pitch, n.velocity) for n in pm.instruments[0].notes
                    for t, on in ((n.start, 1), (n.end, 0)))
    out, pos = [], 0
    for sample, on, pitch, vel in events:
        if sample > pos:
            out.append(np.frombuffer(synth.generate(sample - pos), dtype=np.float32))
            pos = sample
        synth.noteon(0, pitch, vel) if on else synth.noteoff(0, pitch)
    out.append(np.frombuffer(synth.generate(sr), dtype=np.float32))
    return np.concatenate(out).reshape(-1, 2).T.copy()


# ------------------------------------------------------------------------------------------------ checkpoint reader
def test_bundle_reader_lists_musicnn_variables():
    variables = tfbundle.list_variables(musicnn.weights_dir("MTT_musicnn"))
    assert variables["conv2d/kernel"] == (7, 38, 1, 204)
    assert variables["conv2d_5/kernel"] == (7, 561, 1, 64)
    assert variables["dense/kernel"] == (1506, 200)
    assert variables["dense_1/kernel"] == (200, 50)
    assert variables["batch_normalization_9/moving_variance"] == (1506,)
    arrays = tfbundle.read_bundle(musicnn.weights_dir("MTT_musicnn"))
    assert not any(k.endswith(("/Adam", "/Adam_1")) or k.startswith("beta") for k in arrays)
    assert len(arrays) == 64
    assert all(a.dtype == np.float32 for a in arrays.values())
    assert np.all(arrays["batch_normalization_9/moving_variance"] > 0)  # variances, not garbage bytes


def test_bundle_reader_rejects_other_files(tmp_path):
    bad = tmp_path / "model.index"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="model.index"):
        tfbundle.read_index(bad)
    with pytest.raises(InputError, match="no checkpoint index"):
        tfbundle.read_index(tmp_path / "absent")


# ------------------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("model", musicnn.MODELS)
def test_network_matches_tensorflow(ref, model, cache_dir):
    """Same float16 mel input as the TensorFlow run → same outputs (isolates the network from the front end)."""
    logmel = np.log10(10000.0 * ref["mel16"].astype(np.float32) + 1.0)
    out = musicnn.predict_log_mel(logmel, model=model, hop_frames=int(ref["patch_hop"]), batch_size=4,
                                  cache_dir=cache_dir)
    np.testing.assert_allclose(out["taggram"], ref[f"{model}/taggram"], rtol=0, atol=PROB_ATOL)
    np.testing.assert_allclose(out["penultimate"], ref[f"{model}/penultimate"], rtol=1e-4, atol=1e-4)
    for key in ("mean_pool", "max_pool"):
        np.testing.assert_allclose(out[key], ref[f"{model}/{key}"], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("model", musicnn.MODELS)
def test_front_end_pools_before_the_batch_norm_exactly(ref, model, cache_dir):
    """Each front-end block's maximum over frequency, taken on the conv output before ReLU and batch norm (the
    minimum where a channel's batch-norm scale is negative), equals the block's output maximised over frequency,
    to the bit; both signs of scale occur in the real weights. In training mode the block takes the direct path."""
    import torch
    from torch.nn import functional as F

    net = musicnn.load_model(model, cache_dir=cache_dir)
    logmel = np.log10(10000.0 * ref["mel16"].astype(np.float32) + 1.0)
    x = net.input_bn(torch.from_numpy(musicnn.patch(logmel)[0][:2]).unsqueeze(1))
    blocks = [(b, F.pad(x, (0, 0, 3, 3))) for b in net.timbral]
    blocks += [(b, F.pad(x, (0, 0, (k - 1) // 2, k - 1 - (k - 1) // 2)))
               for k, b in zip(net.temporal_kernels, net.temporal, strict=True)]
    with torch.inference_mode():
        for block, xin in blocks:
            scale = block.bn.weight * torch.rsqrt(block.bn.running_var + block.bn.eps)
            assert (scale < 0).any() and (scale > 0).any()
            assert torch.equal(block.max_over_frequency(xin), block(xin).amax(dim=3))
    block, xin = blocks[0]
    trained = musicnn.MusiCNN(len(musicnn.LABELS[model])).train()
    with torch.no_grad():
        want = trained.timbral[0](xin).amax(dim=3)  # batch statistics: the ReLU/batch norm cannot move
        assert torch.equal(trained.timbral[0].max_over_frequency(xin), want)


@pytest.mark.parametrize("model", musicnn.MODELS)
def test_end_to_end_matches_tensorflow(ref, recipe, model, cache_dir):
    wav = recipe.reference_audio()
    logmel = musicnn.log_mel(wav, int(ref["sr"]))
    expected = np.log10(10000.0 * ref["mel16"].astype(np.float32) + 1.0)
    assert logmel.shape == expected.shape == (501, 96)
    np.testing.assert_allclose(logmel, expected, rtol=0, atol=5e-4)  # ≤ one float16 rounding step
    out = musicnn.predict(wav, 16000, model=model, hop_s=1.0, cache_dir=cache_dir)
    assert out["taggram"].shape == ref[f"{model}/taggram"].shape == (6, 50)
    np.testing.assert_allclose(out["taggram"], ref[f"{model}/taggram"], rtol=0, atol=PROB_ATOL)
    emb = musicnn.embed(wav, 16000, model=model, hop_s=1.0, cache_dir=cache_dir)
    np.testing.assert_allclose(emb, ref[f"{model}/penultimate"], rtol=1e-4, atol=1e-4)


def test_float32_log_keeps_loud_inputs_apart(cache_dir):
    """The original float16 log overflows to inf on loud music (every loud input then tags alike); ours must not."""
    rng = np.random.default_rng(0)
    t = np.arange(4 * 16000) / 16000
    noise = np.clip(rng.standard_normal(t.size), -1, 1).astype(np.float32)
    chord = (0.3 * sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330))).astype(np.float32)
    logmel = musicnn.log_mel(noise, 16000)
    assert np.isfinite(logmel).all()
    assert logmel.max() > np.log10(float(np.finfo(np.float16).max))  # such bins are inf in a float16 log
    a = musicnn.predict(noise, 16000, cache_dir=cache_dir)["taggram"]
    b = musicnn.predict(chord, 16000, cache_dir=cache_dir)["taggram"]
    assert np.abs(a - b).max() > 0.1


# ---------------------------------------------------------------------------------------------------------- API
def test_tags_frame_shape_and_clip_mean(recipe, cache_dir):
    wav = recipe.reference_audio()
    df = musicnn.tags(wav, 16000, frames=True, hop_s=1.0, cache_dir=cache_dir)
    assert list(df.columns) == ["tag", "probability", "level", "frame", "time_s"]
    clip, frames = df[df.level == "clip"], df[df.level == "frame"]
    assert len(clip) == 50 and clip["probability"].is_monotonic_decreasing
    assert clip["frame"].isna().all() and clip["time_s"].isna().all()
    assert len(frames) == 6 * 50 and sorted(frames["frame"].unique()) == list(range(6))
    np.testing.assert_allclose(sorted(frames["time_s"].unique()), np.arange(6) * 61 * 256 / 16000)
    per_tag = frames.groupby("tag")["probability"].mean()
    np.testing.assert_allclose(clip.set_index("tag")["probability"], per_tag.loc[clip["tag"]], atol=1e-7)
    assert set(clip["tag"]) == set(musicnn.LABELS["MTT_musicnn"])
    assert list(musicnn.tags(wav, 16000, cache_dir=cache_dir).columns) == list(df.columns)
    assert ((df["probability"] >= 0) & (df["probability"] <= 1)).all()


def test_any_rate_and_channels_give_the_same_answer(recipe, cache_dir):
    import soxr

    wav = recipe.reference_audio()
    base = musicnn.embed(wav, 16000, cache_dir=cache_dir)
    assert base.shape == (2, 200) and base.dtype == np.float32  # 8 s → two non-overlapping 3 s patches
    at_44k = soxr.resample(wav, 16000, 44100).astype(np.float32)
    other = musicnn.embed(np.stack([at_44k, at_44k]), 44100, cache_dir=cache_dir)  # stereo at 44.1 kHz
    assert other.shape == base.shape
    assert np.corrcoef(base.ravel(), other.ravel())[0, 1] > 0.999
    for layer, width in musicnn.LAYERS.items():
        assert musicnn.embed(wav, 16000, layer=layer, cache_dir=cache_dir).shape == (2, width)


def test_short_audio_is_repeat_padded_to_one_patch(cache_dir):
    t = np.arange(16000) / 16000
    wav = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = musicnn.predict(wav, 16000, cache_dir=cache_dir)
    assert out["taggram"].shape == (1, 50) and np.isfinite(out["taggram"]).all()
    logmel = musicnn.log_mel(wav, 16000)
    assert logmel.shape == (63, 96)  # 1 + 16000 // 256 centred frames
    patches, starts = musicnn.patch(logmel)
    assert patches.shape == (1, 187, 96) and starts.tolist() == [0]
    np.testing.assert_array_equal(patches[0, 63:126], logmel)  # the repeat, not zeros


def test_patching_follows_musicnn(recipe):
    logmel = musicnn.log_mel(recipe.reference_audio(), 16000)  # 501 frames
    patches, starts = musicnn.patch(logmel)
    assert starts.tolist() == [0, 187] and patches.shape == (2, 187, 96)  # the 127-frame remainder is dropped
    np.testing.assert_array_equal(patches[1], logmel[187:374])
    _, starts = musicnn.patch(logmel, hop_frames=61)
    assert starts.tolist() == [0, 61, 122, 183, 244, 305]


def test_bad_arguments_raise_one_line_errors(cache_dir):
    wav = np.zeros(16000, np.float32)
    with pytest.raises(InputError, match="not supported"):
        musicnn.tags(wav, 16000, model="MTT_vggish", cache_dir=cache_dir)
    with pytest.raises(InputError, match="layer"):
        musicnn.embed(wav, 16000, layer="logits", cache_dir=cache_dir)
    with pytest.raises(InputError, match="shape"):
        musicnn.tags(np.zeros((1, 2, 3), np.float32), 16000, cache_dir=cache_dir)
    with pytest.raises(InputError, match="NaN"):
        musicnn.tags(np.full(16000, np.nan, np.float32), 16000, cache_dir=cache_dir)


def test_missing_wheel_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None)
    with pytest.raises(DependencyError, match=r"pip install --no-deps musicnn==0\.1\.0"):
        musicnn.load_model("MSD_musicnn", cache_dir=tmp_path / "fresh")


def test_converted_weights_are_cached_and_reused(tmp_path):
    import torch

    first = musicnn.load_model("MTT_musicnn", cache_dir=tmp_path)
    files = list((tmp_path / "musicnn").glob("MTT_musicnn-*.pt"))
    assert len(files) == 1
    cached = torch.load(files[0], weights_only=True)
    for key, value in first.state_dict().items():
        assert torch.equal(cached[key], value), key
    assert musicnn.load_model("MTT_musicnn", cache_dir=tmp_path) is first  # memoised in-process


# ------------------------------------------------------------------------------------------------------ taxonomy
def test_taxonomy_map_uses_real_tags_and_labels():
    table = musicnn.taxonomy_map()
    assert list(table.columns) == ["model", "tag", "field", "label", "weight", "note"]
    allowed = {"genre": taxonomy.GENRES, "moods": taxonomy.MOODS, "instruments": taxonomy.INSTRUMENTS}
    for row in table.itertuples():
        assert row.tag in musicnn.LABELS[row.model], row
        assert row.label in allowed[row.field], row
        assert 0 < row.weight <= 1
    assert not table.duplicated(["model", "tag", "field", "label"]).any()
    mtt = musicnn.taxonomy_map("MTT_musicnn")
    direct = {(r.tag, r.label) for r in mtt.itertuples() if r.weight == 1.0}
    assert {("piano", "piano"), ("violin", "violin"), ("guitar", "guitar"), ("synth", "synthesizer"),
            ("drums", "percussion"), ("classical", "classical"), ("electronic", "electronic")} <= direct
    assert set(mtt["model"]) == {"MTT_musicnn"}
    assert isinstance(musicnn.taxonomy_map("MSD_musicnn"), pd.DataFrame)


# -------------------------------------------------------------------------------------------------- sanity
def test_piano_render_is_tagged_piano(cache_dir):
    top5 = musicnn.tags(_render(0, legato=False), 22050, cache_dir=cache_dir)["tag"].head(5).tolist()
    assert "piano" in top5, top5


def test_string_render_is_tagged_strings_or_violin(cache_dir):
    top5 = musicnn.tags(_render(48, legato=True), 22050, cache_dir=cache_dir)["tag"].head(5).tolist()
    assert {"strings", "violin"} & set(top5), top5
    assert "piano" not in top5[:2], top5
