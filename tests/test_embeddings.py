"""Embedders behind one interface, VGGish (port layout, frontend) with random weights, and the embedding cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echoscript_utils import audio, embeddings
from echoscript_utils.errors import ConfigError, DependencyError
from echoscript_utils.models import vggish

PORT_KEYS = [f"features.{i}.{p}" for i in (0, 3, 6, 8, 11, 13) for p in ("weight", "bias")] + [
    f"embeddings.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")]


def tone(freq: float, seconds: float, sr: int, *, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="module")
def random_vggish(tmp_path_factory):
    return embeddings.get_embedder("vggish", {"weights": "random", "cache_dir": tmp_path_factory.mktemp("c")})


# ------------------------------------------------------------------------------------------------ vggish
def test_vggish_parameter_names_and_shapes_match_the_torch_port():
    model = vggish.VGGish()
    state = model.state_dict()
    assert sorted(state) == sorted(PORT_KEYS)
    assert state["features.0.weight"].shape == (64, 1, 3, 3)
    assert state["embeddings.0.weight"].shape == (4096, 512 * 4 * 6)
    assert state["embeddings.4.weight"].shape == (128, 4096)
    assert model(torch.zeros(2, 1, 96, 64)).shape == (2, 128)


def test_vggish_mel_matrix_and_frontend_put_a_tone_in_the_right_band():
    w = vggish.mel_matrix()
    assert w.shape == (257, 64) and (w[0] == 0).all() and w.max() <= 1.0
    sr = 22050
    ex = vggish.log_mel_examples(tone(1000.0, 2.0, sr), sr)
    assert ex.shape == (2, 96, 64) and ex.dtype == np.float32  # 2 s → two 0.96 s examples
    edges = np.linspace(vggish._hz_to_mel(125.0), vggish._hz_to_mel(7500.0), 66)
    centers_hz = 700.0 * np.expm1(edges[1:-1] / 1127.0)
    expected = int(np.argmin(np.abs(centers_hz - 1000.0)))
    assert abs(int(ex.mean(axis=(0, 1)).argmax()) - expected) <= 1
    assert vggish.log_mel_examples(tone(440.0, 0.3, sr), sr).shape == (1, 96, 64)  # short input: padded
    silent = vggish.log_mel_examples(np.zeros(16000, np.float32), 16000)
    assert np.allclose(silent, np.log(vggish.LOG_OFFSET))


def test_vggish_weights_load_from_a_local_file(tmp_path, random_vggish):
    src = random_vggish.model
    path = tmp_path / "vggish-test.pth"
    torch.save(src.state_dict(), path)
    loaded = vggish.load_vggish(str(path), cache_dir=tmp_path)
    wav = tone(300.0, 1.0, 16000)
    assert np.allclose(vggish.embed(wav, 16000, model=src), vggish.embed(wav, 16000, model=loaded))


def test_vggish_without_weights_says_where_to_get_them(tmp_path):
    with pytest.raises(DependencyError, match="vggish-10086976.pth"):
        embeddings.get_embedder("vggish", {"weights": None, "cache_dir": tmp_path})
    with pytest.raises(DependencyError, match="not found"):
        embeddings.get_embedder("vggish", {"weights": str(tmp_path / "missing.pth"), "cache_dir": tmp_path})


def test_random_vggish_embeds_frames(random_vggish):
    rows = random_vggish.embed(tone(440.0, 3.0, 16000), 16000)
    assert rows.shape == (3, 128) and rows.dtype == np.float32 and np.isfinite(rows).all()
    assert random_vggish.sample_rate == 16000 and "random" in random_vggish.identity


# ------------------------------------------------------------------------------------------------ normalisation
def test_int_float_stereo_and_rate_mismatches_are_normalised_alike(random_vggish):
    x = tone(660.0, 2.0, 16000)
    ref = random_vggish.embed(x, 16000)
    pcm = np.round(x * 32767).astype(np.int16)
    from_pcm = random_vggish.embed(pcm, 16000)
    assert np.array_equal(from_pcm, random_vggish.embed(pcm.astype(np.float32) / 32768.0, 16000))
    assert np.allclose(from_pcm, ref, atol=1e-2 * np.abs(ref).max())
    assert np.allclose(random_vggish.embed(np.stack([x, x]), 16000), ref, atol=1e-5 * np.abs(ref).max())
    hi = tone(660.0, 2.0, 44100)
    rel = np.abs(random_vggish.embed(hi, 44100) - ref).max() / np.abs(ref).max()
    assert rel < 0.05  # same tone at another rate lands close after resampling
    assert "mono" in random_vggish.normalisation and "16000 Hz" in random_vggish.normalisation


def test_as_float_audio_scales_integer_pcm():
    assert embeddings.as_float_audio(np.array([-32768, 0, 16384], np.int16)).tolist() == [-1.0, 0.0, 0.5]
    assert embeddings.as_float_audio(np.array([0, 128], np.uint8)).tolist() == [-1.0, 0.0]
    f = np.array([0.25], np.float32)
    assert embeddings.as_float_audio(f) is f


# ------------------------------------------------------------------------------------------------ cache
class CountingEmbedder(embeddings.Embedder):
    name, sample_rate, frame = "counting", 8000, "0.5 s"

    def __init__(self, identity: str = "counting:v1"):
        self.identity = identity
        self.calls = 0

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        self.calls += 1
        frames = wav[: wav.size // 4000 * 4000].reshape(-1, 4000)
        return np.stack([frames.mean(1), frames.std(1)], axis=1)


def test_embed_files_caches_by_content_and_identity(tmp_path):
    paths = []
    for i, f in enumerate((220.0, 330.0)):
        p = tmp_path / "audio" / f"clip{i}.wav"
        audio.write(p, tone(f, 2.0, 16000)[None], 16000)
        paths.append(p)
    cache = tmp_path / "cache"
    emb = CountingEmbedder()
    first = embeddings.embed_files(paths, emb, cache_dir=cache, progress=False)
    assert emb.calls == 2 and list(first) == [str(p) for p in paths] and first[str(paths[0])].shape == (4, 2)
    again = embeddings.embed_files(paths, emb, cache_dir=cache, progress=False)
    assert emb.calls == 2  # cache hit: nothing recomputed
    assert all(np.array_equal(first[k], again[k]) for k in first)
    other = CountingEmbedder("counting:v2")
    embeddings.embed_files(paths, other, cache_dir=cache, progress=False)
    assert other.calls == 2  # another identity never reuses rows
    audio.write(paths[0], tone(440.0, 2.0, 16000)[None], 16000)  # same name, new content
    embeddings.embed_files(paths, emb, cache_dir=cache, progress=False)
    assert emb.calls == 3
    embeddings.embed_files(paths, emb, cache_dir=None, progress=False)
    assert emb.calls == 5


def test_get_embedder_rejects_unknown_names_and_missing_checkpoints(tmp_path):
    with pytest.raises(ConfigError, match="unknown embedding"):
        embeddings.get_embedder("openl3", {})
    with pytest.raises(DependencyError, match="panns_checkpoint"):
        embeddings.get_embedder("panns", {"checkpoint": None, "cache_dir": tmp_path})


def test_panns_random_cnn14_gives_2048_d_windows(tmp_path):
    emb = embeddings.get_embedder("panns", {"checkpoint": "random", "cache_dir": tmp_path, "window_s": 10.0})
    rows = emb.embed(tone(440.0, 13.0, 22050), 22050)
    assert rows.shape == (2, 2048)  # 13 s → one full 10 s window + a zero-padded 3 s tail
    per_file = embeddings.get_embedder("panns", {"checkpoint": "random", "cache_dir": tmp_path})
    assert per_file.embed(tone(440.0, 13.0, 22050), 22050).shape == (1, 2048)  # default: one row per file
    assert per_file.frame == "file" and per_file.identity != emb.identity


def test_musicnn_embedder_uses_the_real_weights(tmp_path):
    pytest.importorskip("echoscript_utils.models.musicnn")
    try:
        emb = embeddings.get_embedder("musicnn", {"cache_dir": tmp_path})
    except DependencyError as exc:  # the musicnn wheel (weights) is not installed
        pytest.skip(str(exc))
    rows = emb.embed(tone(440.0, 6.5, 22050), 22050)
    assert rows.shape == (2, 200) and np.isfinite(rows).all()
    assert emb.identity.startswith("musicnn:MTT_musicnn:penultimate:")


def test_windows_drop_short_tails_and_pad():
    x = np.arange(25, dtype=np.float32)
    assert [w.size for w in audio.windows(x, 10)] == [10, 10, 10]  # 5-sample tail kept and zero-padded
    assert [w.size for w in audio.windows(x[:21], 10)] == [10, 10]  # 1-sample tail (< 25 %) dropped
    assert [w.size for w in audio.windows(x, 10, pad=False)] == [10, 10, 5]
    assert [w.size for w in audio.windows(x[:3], 10)] == [10]  # one short window is always kept
