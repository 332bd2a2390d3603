"""CLAP alignment: captions, the collapse gate, prompt choice, keep rules, retrieval, and the stage on a tiny run."""

import numpy as np
import pytest

from echoscript_utils.alignment import (
    CollapsedCheckpointError,
    align_clips,
    checkpoint_gate,
    keep_mask,
    pca_2d,
    retrieval_recall,
)
from echoscript_utils.captions import CAPTION_FIELDS, build_caption, caption_fields
from echoscript_utils.models.clap import ClapEmbedder


def test_caption_template_and_dropout():
    f = {"scene": "A detective walks into a dark alley", "genre": "cinematic", "moods": ["suspenseful"],
         "instruments": ["violin", "percussion"], "bpm": 92.4, "key": "D minor"}
    assert build_caption(f) == ("A detective walks into a dark alley. Cinematic score, suspenseful mood, "
                                "featuring violin, percussion, 92 bpm, in D minor.")
    rng = np.random.default_rng(0)
    dropped = build_caption(f, dropout={k: 1.0 for k in CAPTION_FIELDS}, rng=rng)
    assert dropped == ""
    only_bpm_dropped = build_caption(f, dropout={"bpm": 1.0}, rng=rng)
    assert "bpm" not in only_bpm_dropped and "D minor" in only_bpm_dropped
    # dropout rates are honoured statistically
    rng = np.random.default_rng(1)
    n = sum("bpm" in build_caption(f, dropout={"bpm": 0.3}, rng=rng) for _ in range(2000))
    assert 0.65 < n / 2000 < 0.75


def test_caption_fields_prefer_tags_then_truth_then_features():
    row = {"prompt": "p", "tags": {"genre": {"labels": ["ambient"]}, "moods": {"labels": ["calming"]}},
           "truth": {"genre": "classical", "moods": ["melancholic"], "instruments": ["piano"], "bpm": 60},
           "features": {"bpm": 61.0, "key": "C", "mode": "major"}}
    f = caption_fields(row)
    assert f["genre"] == "ambient" and f["moods"] == ["calming"] and f["instruments"] == ["piano"]
    assert f["bpm"] == 61.0 and f["key"] == "C major" and f["scene"] == "p"


def test_align_clips_best_and_margin():
    audio = np.eye(3, 4)
    prompts = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0.6, 0.8, 0, 0]], float)
    df = align_clips(audio, prompts, ["a", "b", "c"])
    assert list(df["best_prompt"]) == ["b", "a", "a"]
    assert df["clap_score"].tolist() == pytest.approx([1.0, 1.0, 0.0])
    assert df["margin"].iloc[0] == pytest.approx(0.4)


def test_keep_rules():
    s = np.arange(10, dtype=float)
    m, why = keep_mask(s, rule="percentile", value=20)
    assert m.sum() == 8 and why[0].startswith("CLAP score below the 20th percentile")
    m, _ = keep_mask(s, rule="threshold", value=5)
    assert m.sum() == 5
    assert keep_mask(s, rule="all")[0].all()


def test_retrieval_recall_and_pca():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20, 8))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    assert retrieval_recall(a, a, k=1) == 1.0
    shuffled = a[np.roll(np.arange(20), 1)]
    assert retrieval_recall(a, shuffled, k=1) < 0.2
    p1, p2 = pca_2d(a[:5], a[5:])
    assert p1.shape == (5, 2) and p2.shape == (15, 2)


class _FakeEmbedder:
    name = "fake"

    def __init__(self, collapsed):
        self.collapsed = collapsed

    def embed_text(self, texts):
        rng = np.random.default_rng(len(texts))
        base = rng.normal(size=(1, 16)) if self.collapsed else rng.normal(size=(len(texts), 16))
        e = base + (1e-3 * rng.normal(size=(len(texts), 16)) if self.collapsed else 0)
        return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_gate_refuses_collapsed_and_accepts_spread():
    with pytest.raises(CollapsedCheckpointError) as e:
        checkpoint_gate(_FakeEmbedder(collapsed=True))
    assert "mean pairwise cosine" in str(e.value) and "laion/" in str(e.value)
    rep = checkpoint_gate(_FakeEmbedder(collapsed=False))
    assert rep.passed and rep.mean_pairwise_cosine < 0.5


@pytest.fixture(scope="module")
def tiny_clap(tmp_path_factory):
    return ClapEmbedder("tiny-clap", cache_dir=tmp_path_factory.mktemp("cache"))


def test_tiny_clap_passes_the_gate_and_a_collapsed_copy_fails(tiny_clap):
    import torch

    rep = checkpoint_gate(tiny_clap)
    assert rep.passed, rep
    # collapse the text tower deliberately: zero the projection's weights and give it a constant bias
    proj = tiny_clap.model.text_projection
    saved = {k: v.clone() for k, v in proj.state_dict().items()}
    try:
        with torch.no_grad():
            for mod in proj.modules():
                if isinstance(mod, torch.nn.Linear):
                    mod.weight.zero_()
                    if mod.bias is not None:
                        mod.bias.fill_(0.5)
        with pytest.raises(CollapsedCheckpointError):
            checkpoint_gate(tiny_clap)
    finally:
        proj.load_state_dict(saved)


def test_audio_embedding_deterministic_and_cached(tiny_clap, tmp_path):
    from echoscript_utils import audio

    sr = 44100
    t = np.arange(int(sr * 12.5)) / sr
    wav = (0.2 * np.sin(2 * np.pi * 220 * t))[None].astype(np.float32)
    p = audio.write(tmp_path / "x.wav", wav, sr)
    e1 = tiny_clap.embed_audio_files([p], progress=False)
    e2 = tiny_clap.embed_audio_files([p], progress=False)
    assert e1.shape[0] == 1 and np.allclose(e1, e2)
    assert np.linalg.norm(e1[0]) == pytest.approx(1.0, abs=1e-5)
    assert len(list((tiny_clap.cache_dir / "clap").glob("*.npy"))) == 1


def test_align_clips_respects_allowed_candidates():
    audio = np.eye(2, 3)
    prompts = np.eye(3)
    df = align_clips(audio, prompts, ["a", "b", "c"], allowed=[[1, 2], None])
    assert list(df["best_prompt"]) == ["b", "b"]  # clip 0 may not take "a" (its closest); clip 1 is free
    assert df["clap_score"].tolist() == [0.0, 1.0] and df["margin"].iloc[0] == 0.0
    single = align_clips(audio, prompts, ["a", "b", "c"], allowed=[[2], [0]])
    assert np.isnan(single["margin"]).all()


def test_audio_embeddings_in_two_worker_processes_equal_one(tiny_clap, tmp_path):
    """Files embedded in forked workers give the rows, in order, that this process gives, and fill the cache."""
    from echoscript_utils import audio

    sr = 44100
    t = np.arange(int(sr * 4)) / sr
    paths = [audio.write(tmp_path / f"x{k}.wav", (0.2 * np.sin(2 * np.pi * f * t))[None].astype(np.float32), sr)
             for k, f in enumerate((110, 220, 330, 440, 550))]
    durations = [None, 2.0, None, None, 3.0]
    before = set((tiny_clap.cache_dir / "clap").glob("*.npy"))
    forked = tiny_clap.embed_audio_files(paths, progress=False, durations=durations, num_workers=2)
    written = set((tiny_clap.cache_dir / "clap").glob("*.npy")) - before
    assert len(written) == 5
    for f in written:
        f.unlink()
    here = tiny_clap.embed_audio_files(paths, progress=False, durations=durations)
    np.testing.assert_allclose(forked, here, rtol=1e-5, atol=1e-7)
    assert not np.allclose(here[0], here[1])
