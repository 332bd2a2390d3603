"""Batched embedding and tagging give the numbers clip-by-clip gives: the same rows, tags and FADs within the parity
tests' tolerance (1e-5 relative), on clips of different lengths, rates and channel counts; each file is decoded
once for all embedders of a pass, and a network shared by two outputs runs once per clip."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from echoscript_utils import annotation, audio, embeddings, tagging
from echoscript_utils.errors import DependencyError
from echoscript_utils.fad import frechet_distance

RTOL = 1e-5  # as tests/test_parity.py


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _clip(seed: int, seconds: float, sr: int, channels: int) -> np.ndarray:
    """Rendered music (not a tone): a few notes of different pitch and loudness."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for f in rng.uniform(110, 880, size=4):
        x += rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * f * t) * (1 + np.sin(2 * np.pi * rng.uniform(0.2, 2) * t))
    x += 0.01 * rng.standard_normal(t.size)
    return np.tile(x.astype(np.float32), (channels, 1)) * (1 if channels == 1 else np.array([[1.0], [0.7]],
                                                                                             dtype=np.float32))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Five files: lengths 2.5–21 s (one, two or three 10 s CLAP windows; tails musicnn drops), 44.1 / 48 /
    22.05 kHz, mono and stereo."""
    folder = tmp_path_factory.mktemp("audio")
    specs = [(21.0, 44100, 2), (4.0, 48000, 1), (12.5, 22050, 2), (2.5, 44100, 1), (11.0, 48000, 1)]
    return [audio.write(folder / f"c{i}.wav", _clip(i, s, sr, ch), sr) for i, (s, sr, ch) in enumerate(specs)]


def _rel_rows(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    num = np.linalg.norm(a.astype(np.float64) - b.astype(np.float64), axis=1)
    return float((num / np.maximum(np.linalg.norm(b.astype(np.float64), axis=1), 1e-30)).max())


def _embedders(cache):
    """The embedders that batch (CLAP) or share a forward pass (musicnn's two outputs), and one that embeds clip by
    clip (EnCodec; PANNs and VGGish take the same default path)."""
    out = {}
    for name, kwargs in {"clap": {"model": "tiny-clap"}, "encodec": {"model": "tiny-musicgen"},
                         "musicnn": {}}.items():
        try:
            out[name] = embeddings.get_embedder(name, {"cache_dir": cache, **kwargs})
        except DependencyError:
            continue
    assert {"clap", "encodec"} <= set(out)
    if "musicnn" in out:
        out["musicnn-taggram"] = embeddings.MusicnnEmbedder(layer="taggram", cache_dir=cache)
    return out


def test_batched_embeddings_equal_clip_by_clip(files, tmp_path, monkeypatch):
    embs = _embedders(tmp_path / "models")
    decoded = []
    real_load = embeddings.load
    monkeypatch.setattr(embeddings, "load", lambda p: (decoded.append(str(p)), real_load(p))[1])
    batched = embeddings.embed_files_many(files, embs, cache_dir=tmp_path / "cache", progress=False, batch_size=4)
    assert sorted(decoded) == sorted(str(f) for f in files)  # each file decoded once for all embedders
    monkeypatch.setattr(embeddings, "load", real_load)
    for name, emb in embs.items():
        alone = [emb.embed(*audio.load(f)) for f in files]
        rows = [batched[name][str(f)] for f in files]
        worst = max(_rel_rows(b, a) for b, a in zip(rows, alone))
        assert worst <= RTOL, f"{name}: batched rows differ by {worst:.2e} relative"
        fad_b, fad_a = frechet_distance(rows[:3], rows[3:]), frechet_distance(alone[:3], alone[3:])
        assert fad_b == pytest.approx(fad_a, rel=RTOL, abs=1e-9), name
    # the single-embedder entry point reads what the shared pass cached, and says so by not decoding again
    monkeypatch.setattr(embeddings, "load", lambda p: pytest.fail(f"{p} decoded although cached"))
    again = embeddings.embed_files(files, embs["clap"], cache_dir=tmp_path / "cache", progress=False)
    assert all(np.array_equal(again[str(f)], batched["clap"][str(f)]) for f in files)


def test_musicnn_outputs_share_one_forward_pass(files, tmp_path, monkeypatch):
    try:
        pen = embeddings.MusicnnEmbedder(cache_dir=tmp_path)
    except DependencyError as exc:
        pytest.skip(str(exc))
    tag = embeddings.MusicnnEmbedder(layer="taggram", cache_dir=tmp_path)
    calls = []
    real = embeddings.musicnn.predict
    monkeypatch.setattr(embeddings.musicnn, "predict", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    out = embeddings.embed_files_many(files[:2], {"musicnn": pen, "taggram": tag}, cache_dir=None, progress=False)
    assert len(calls) == 2  # one forward pass per clip for both outputs
    for f in files[:2]:
        wav, sr = audio.load(f)
        np.testing.assert_allclose(out["taggram"][str(f)], embeddings.musicnn.embed(wav, sr, layer="taggram"),
                                   rtol=RTOL, atol=1e-7)
        assert out["musicnn"][str(f)].shape[1] == 200 and out["taggram"][str(f)].shape[1] == 50


def test_clap_tagging_hands_the_alignment_stage_its_embeddings(files, tmp_path, monkeypatch):
    """The annotation stage's CLAP tagger stores each clip's audio embedding (a padded clip's music only) where the
    alignment stage's embedder looks for it: alignment then decodes nothing, and reads the very values it would
    compute itself."""
    from echoscript_utils.models import clap as clap_module

    try:
        tagger = tagging.ClapTagger("tiny-clap", cache_dir=tmp_path / "run")
    except DependencyError as exc:
        pytest.skip(str(exc))
    clips = pd.DataFrame([{"clip_id": f"c{i}", "path": str(f), "duration_s": 30.0,
                           "real_duration_s": 3.0 if i == 0 else None} for i, f in enumerate(files)])
    annotation.run_taggers(clips, {"clap": tagger}, cache_dir=tmp_path / "run", progress=False, batch_size=2)
    music = [3.0] + [None] * (len(files) - 1)
    fresh = clap_module.ClapEmbedder("tiny-clap", cache_dir=tmp_path / "elsewhere").embed_audio_files(
        files, progress=False, durations=music)
    monkeypatch.setattr(clap_module, "load", lambda p: pytest.fail(f"{p} decoded although annotation embedded it"))
    shared = clap_module.ClapEmbedder("tiny-clap", cache_dir=tmp_path / "run").embed_audio_files(
        files, progress=False, durations=music)
    assert np.array_equal(shared, fresh)


@pytest.fixture
def musicnn_and_clap(files, tmp_path):
    """The musicnn and tiny CLAP taggers, and the test files as clips."""
    try:
        taggers = {"musicnn": tagging.MusicnnTagger(cache_dir=tmp_path / "m"),
                   "clap": tagging.ClapTagger("tiny-clap", cache_dir=tmp_path / "m")}
    except DependencyError as exc:
        pytest.skip(str(exc))
    return taggers, pd.DataFrame([{"clip_id": f"c{i}", "path": str(f)} for i, f in enumerate(files)])


def test_run_taggers_batched_equals_unbatched_and_decodes_once(musicnn_and_clap, files, tmp_path, monkeypatch):
    """``run_taggers`` with 4 clips a batch gives the outputs of one clip a batch, and decodes each clip once for
    both taggers; a rerun is all cache."""
    taggers, clips = musicnn_and_clap
    from echoscript_utils.annotation import tags as tags_module

    decoded = []
    real_load = tags_module.load
    monkeypatch.setattr(tags_module, "load", lambda p: (decoded.append(str(p)), real_load(p))[1])
    batched = annotation.run_taggers(clips, taggers, cache_dir=tmp_path / "a", progress=False, batch_size=4)
    assert sorted(decoded) == sorted(str(f) for f in files)
    one = annotation.run_taggers(clips, taggers, cache_dir=tmp_path / "b", progress=False, batch_size=1)
    assert batched[["clip_id", "tagger", "field", "label"]].equals(one[["clip_id", "tagger", "field", "label"]])
    np.testing.assert_allclose(batched["probability"], one["probability"], rtol=RTOL, atol=1e-7)
    decoded.clear()
    again = annotation.run_taggers(clips, taggers, cache_dir=tmp_path / "a", progress=False, batch_size=4)
    assert decoded == [] and again.equals(batched)


def test_run_taggers_in_two_worker_processes_equals_one(musicnn_and_clap, tmp_path):
    """Two forked workers tag batches of clips to the same outputs, in the same order, as this process, and fill
    the same cache (a rerun in this process is all cache)."""
    taggers, clips = musicnn_and_clap
    two = annotation.run_taggers(clips, taggers, cache_dir=tmp_path / "a", progress=False, batch_size=2,
                                 num_workers=2)
    one = annotation.run_taggers(clips, taggers, cache_dir=tmp_path / "b", progress=False, batch_size=2)
    assert two[["clip_id", "tagger", "field", "label"]].equals(one[["clip_id", "tagger", "field", "label"]])
    np.testing.assert_allclose(two["probability"], one["probability"], rtol=RTOL, atol=1e-7)
    from echoscript_utils.annotation import tags as tags_module

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tags_module, "load", lambda p: pytest.fail(f"decoded {p} again"))
        assert annotation.run_taggers(clips, taggers, cache_dir=tmp_path / "a", progress=False).equals(two)


def test_annotation_musicnn_pass_fills_the_evaluation_embedding_cache(files, tmp_path, monkeypatch):
    """After tagging, the evaluation stage's musicnn embedding and taggram of a whole clip are read from the cache
    (no forward pass) and equal a fresh computation; a padded cue (tagged on part of its file) shares nothing."""
    try:
        tagger = tagging.MusicnnTagger(cache_dir=tmp_path / "m")
    except DependencyError as exc:
        pytest.skip(str(exc))
    clips = pd.DataFrame([{"clip_id": "whole", "path": str(files[0]), "duration_s": 21.0, "real_duration_s": 21.0},
                          {"clip_id": "cue", "path": str(files[4]), "duration_s": 11.0, "real_duration_s": 7.0}])
    cache = tmp_path / "cache"
    annotation.run_taggers(clips, {"musicnn": tagger}, cache_dir=cache, progress=False)
    embs = {"musicnn": embeddings.MusicnnEmbedder(cache_dir=cache),
            "taggram": embeddings.MusicnnEmbedder(layer="taggram", cache_dir=cache)}
    fresh = embeddings.embed_files_many(files[:1], embs, cache_dir=None, progress=False)
    monkeypatch.setattr(embeddings.musicnn, "predict", lambda *a, **k: pytest.fail("recomputed a shared clip"))
    shared = embeddings.embed_files_many(files[:1], embs, cache_dir=cache, progress=False)
    for k in embs:
        np.testing.assert_allclose(shared[k][str(files[0])], fresh[k][str(files[0])], rtol=RTOL, atol=1e-7)
    with pytest.raises(pytest.fail.Exception, match="recomputed"):  # the padded cue's file was not shared
        embeddings.embed_files_many(files[4:5], embs, cache_dir=cache, progress=False)


def test_evaluation_rerun_measures_parity_once_and_tags_from_the_embedding_pass(tmp_path, monkeypatch):
    """``embed_sets`` caches its parity probes by content (a rerun runs no reference code) and computes the
    musicnn taggram in the embedding's forward pass, so ``tag_distributions`` then runs no network."""
    import json

    from echoscript_utils import evaluation
    from echoscript_utils.config import load_config

    cfg = load_config(None, {"evaluation.embeddings": ["vggish", "musicnn"], "evaluation.vggish_weights": "random",
                             "evaluation.parity_clips": 2, "evaluation.relevance": True, "run.device": "cpu"},
                      output_root=tmp_path / "out")
    records = []
    for i in range(3):
        audio.write(cfg.paths.curation / "clips" / f"c{i}.wav", _clip(i, 3.5, 44100, 2), 44100)
        records.append({"clip_id": f"t{i}-0", "track_id": f"t{i}", "source": f"t{i}.wav", "path": f"clips/c{i}.wav",
                        "start_s": 0.0, "duration_s": 3.5, "sample_rate": 44100, "channels": 2, "split": "eval"})
    (cfg.paths.curation / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for k in range(3):
        audio.write(cfg.paths.generation / "musicgen" / f"s{k}.wav", _clip(10 + k, 3.2, 32000, 1), 32000)
    sets = evaluation.evaluation_sets(cfg)
    calls = []
    real = evaluation.measure_parity
    monkeypatch.setattr(evaluation, "measure_parity", lambda *a: (calls.append(1), real(*a))[1])
    try:
        first = evaluation.embed_sets(sets, cfg, progress=False)
    except DependencyError as exc:
        pytest.skip(str(exc))
    if "musicnn" in first.skipped:
        pytest.skip(first.skipped["musicnn"])
    assert len(calls) == 2  # one parity measurement per embedding
    again = evaluation.embed_sets(sets, cfg, progress=False)
    assert len(calls) == 2 and again.parity == first.parity
    monkeypatch.setattr(embeddings.musicnn, "predict", lambda *a, **k: pytest.fail("taggram computed again"))
    tags = evaluation.tag_distributions(sets, cfg, progress=False)
    assert set(tags) == {"reference", "musicgen"} and tags["reference"].shape == (3, 50)
