"""Taggers: AudioSet label list and taxonomy map, PANNs without side effects, checkpoints, musicnn, CLAP, selection."""

import functools
import http.server
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from loopback import LoopbackServer

from echoscript_utils import tagging
from echoscript_utils.errors import ConfigError, DependencyError, InputError
from echoscript_utils.models import hub, panns, vggish
from echoscript_utils.tagging import FIELDS, VOCAB


def _tone(freq=440.0, *, sr=22050, seconds=2.0, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    return np.tile(x.astype(np.float32), (channels, 1)), sr


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _valid(tags):
    assert set(tags) == set(FIELDS)
    for f in FIELDS:
        assert set(tags[f]) == set(VOCAB[f])
        assert all(0.0 <= v <= 1.0 + 1e-6 for v in tags[f].values())
    assert sum(tags["genre"].values()) == pytest.approx(1.0, abs=1e-5)


# ------------------------------------------------------------------------------------------- label list / map
def test_audioset_label_list_is_the_cnn14_order():
    labels = panns.audioset_labels()
    assert len(labels) == 527 and labels["mid"].is_unique
    names = labels["display_name"].tolist()
    assert names[0] == "Speech" and names[137] == "Music" and names[526] == "Field recording"
    assert names[237] == "Classical music" and names[270] == "Soundtrack music" and names[153] == "Piano"
    assert names[1] == "Male speech, man speaking"  # commas survive the CSV round trip


def test_taxonomy_map_is_valid_and_covers_every_label():
    mapping = tagging.audioset_taxonomy()
    for f in FIELDS:
        assert set(mapping.loc[mapping["field"] == f, "label"]) == set(VOCAB[f]), f
    assert mapping["note"].str.len().min() > 0


def test_taxonomy_map_rejects_a_wrong_class_name(tmp_path):
    bad = tmp_path / "map.csv"
    bad.write_text("index,display_name,field,label,weight,note\n153,Piano,instruments,piano,1.0,ok\n"
                   "154,Organ,instruments,piano,0.5,wrong name\n")
    with pytest.raises(InputError, match=r"line 3.*154"):
        tagging.audioset_taxonomy(bad)
    bad.write_text("index,display_name,field,label,weight,note\n153,Piano,instruments,banjo,1.0,x\n")
    with pytest.raises(InputError, match="banjo"):
        tagging.audioset_taxonomy(bad)


def test_map_scores_takes_weighted_max_and_normalises_genre():
    mats = tagging.mapping_matrices(tagging.audioset_taxonomy(), 527)
    p = np.zeros(527)
    p[153] = 0.9  # Piano
    p[154] = 0.99  # Electric piano (weight 0.8) → 0.792 < 0.9
    p[237] = 0.6  # Classical music
    p[270] = 0.2  # Soundtrack music
    p[278] = 0.7  # Sad music
    tags = tagging.map_scores(p, mats)
    _valid(tags)
    assert tags["instruments"]["piano"] == pytest.approx(0.9)
    assert tags["moods"]["melancholic"] == pytest.approx(0.7)
    assert tags["genre"]["classical"] == pytest.approx(0.6 / 0.8)
    assert tags["instruments"]["guitar"] == 0.0


# ------------------------------------------------------------------------------------------- PANNs
def test_panns_runs_without_the_package_side_effects(tmp_path):
    """Cnn14 imports without the package's import-time wget, builds, and tags (random weights)."""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        import torch
        torch.set_num_threads(1)
        from echoscript_utils import tagging
        tg = tagging.PannsTagger(None, cache_dir=sys.argv[1], allow_random=True, max_s=2.0)
        assert "panns_inference" not in sys.modules, "the package __init__ (wget) must not run"
        assert "random" in tg.version and tg.sample_rate == 32000
        t = np.arange(66150) / 44100
        wav = np.tile(0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32), (2, 1))
        probs = tg.class_probabilities(wav, 44100)
        assert probs.shape == (527,) and np.isfinite(probs).all()
        tags = tg.tag(wav, 44100)
        assert set(tags) == {"genre", "moods", "instruments"}
        assert abs(sum(tags["genre"].values()) - 1) < 1e-6
        print("ok")
    """)
    env = {**os.environ, "HOME": str(tmp_path), "PATH": f"{tmp_path}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1"}
    wget = tmp_path / "wget"  # a fake wget that leaves a trace if anything calls it
    wget.write_text(f"#!/bin/sh\ntouch {tmp_path}/wget_called\n")
    wget.chmod(0o755)
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")], env=env, check=True, timeout=300,
                         capture_output=True, text=True)
    assert out.stdout.strip().endswith("ok")
    assert not (tmp_path / "panns_data").exists()
    assert not (tmp_path / "wget_called").exists()


def test_panns_needs_a_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="panns_checkpoint"):
        tagging.PannsTagger(None, cache_dir=tmp_path)
    with pytest.raises(DependencyError, match="not found"):
        hub.resolve_checkpoint(tmp_path / "missing.pth", source=panns.CHECKPOINT_SOURCE, cache_dir=tmp_path)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def file_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    with LoopbackServer(functools.partial(_Quiet, directory=str(root))) as srv:
        yield root, srv.url, srv.server


def test_checkpoint_url_is_downloaded_once(tmp_path, file_server):
    root, url, server = file_server
    (root / "Cnn14_mAP=0.431.pth").write_bytes(b"weights" * 1000)
    cache = tmp_path / "cache"
    got = hub.resolve_checkpoint(f"{url}/Cnn14_mAP%3D0.431.pth", source=panns.CHECKPOINT_SOURCE, cache_dir=cache, progress=False)
    assert got == cache / "panns" / "Cnn14_mAP=0.431.pth" and got.read_bytes() == b"weights" * 1000
    server.shutdown()  # a second call must not touch the network (and must not truncate a small file)
    again = hub.resolve_checkpoint(f"{url}/Cnn14_mAP%3D0.431.pth", source=panns.CHECKPOINT_SOURCE, cache_dir=cache, progress=False)
    assert again == got and again.stat().st_size == 7000
    assert [p.name for p in (cache / "panns").iterdir()] == ["Cnn14_mAP=0.431.pth"]


def test_checkpoint_download_checks_the_published_hash(tmp_path, file_server):
    """torchvggish-style names carry their sha256 prefix and a source may publish a full hash: a download that
    does not match is refused and leaves nothing in the cache."""
    import hashlib

    root, url, _ = file_server
    good = b"vggish weights" * 500
    prefix = hashlib.sha256(good).hexdigest()[:8]
    (root / f"vggish-{prefix}.pth").write_bytes(good)
    (root / "vggish-deadbeef.pth").write_bytes(good)
    cache = tmp_path / "cache"
    src = vggish.WEIGHTS_SOURCE
    got = hub.resolve_checkpoint(f"{url}/vggish-{prefix}.pth", source=src, cache_dir=cache, progress=False)
    assert got.read_bytes() == good
    with pytest.raises(DependencyError, match="sha256") as err:
        hub.resolve_checkpoint(f"{url}/vggish-deadbeef.pth", source=src, cache_dir=cache, progress=False)
    assert "\n" not in str(err.value) and "evaluation.vggish_weights" in str(err.value)
    assert sorted(p.name for p in (cache / "vggish").iterdir()) == [f"vggish-{prefix}.pth"]
    (root / "weights.pth").write_bytes(good)
    published = hub.CheckpointSource("Demo", "demo.weights", "weights.pth", "weights.pth",
                                     known_hash="sha256:" + hashlib.sha256(good).hexdigest())
    assert hub.resolve_checkpoint(f"{url}/weights.pth", source=published, cache_dir=cache,
                                  progress=False).read_bytes() == good
    wrong = hub.CheckpointSource("Other", "demo.weights", "weights.pth", "weights.pth", known_hash="sha256:" + "0" * 64)
    with pytest.raises(DependencyError, match="demo.weights"):
        hub.resolve_checkpoint(f"{url}/weights.pth", source=wrong, cache_dir=cache, progress=False)
    assert [p.name for p in (cache / "other").iterdir()] == []


def test_checkpoint_download_offline_is_one_clear_line(tmp_path, file_server):
    _, url, _ = file_server
    with pytest.raises(DependencyError) as err:
        hub.resolve_checkpoint(f"{url}/absent.pth", source=panns.CHECKPOINT_SOURCE, cache_dir=tmp_path, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and "annotation.panns_checkpoint" in msg and "absent.pth" in msg
    assert not (tmp_path / "panns" / "absent.pth").exists()


def test_load_cnn14_rejects_bad_checkpoints(tmp_path, monkeypatch):
    import torch

    class Small(torch.nn.Module):  # stands in for Cnn14 so the test stays fast
        def __init__(self, *, classes_num, **settings):
            super().__init__()
            self.fc_audioset = torch.nn.Linear(4, classes_num)

    monkeypatch.setattr(panns, "panns_cnn14_class", lambda: Small)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(DependencyError, match="junk.pth"):
        panns.load_cnn14(junk)
    wrong = tmp_path / "wrong.pth"
    torch.save({"model": {"fc1.weight": torch.zeros(2, 2)}}, wrong)
    with pytest.raises(DependencyError, match="do not fit Cnn14"):
        panns.load_cnn14(wrong)
    good = tmp_path / "good.pth"
    ref = Small(classes_num=527)
    torch.save({"model": ref.state_dict(), "iteration": 1}, good)
    loaded = panns.load_cnn14(good)
    assert not loaded.training
    assert torch.equal(loaded.fc_audioset.weight, ref.fc_audioset.weight)


# ------------------------------------------------------------------------------------------- musicnn / CLAP
def test_musicnn_tagger_maps_port_tags():
    try:
        tg = tagging.MusicnnTagger("MTT_musicnn")
    except DependencyError as exc:
        pytest.skip(str(exc))
    assert tg.sample_rate == 16000 and tg.version.startswith("musicnn-")
    assert {f for _, f, _, _ in tg.rows} == set(FIELDS)
    wav, sr = _tone(seconds=3.5)
    a, b = tg.tag(wav, sr), tg.tag(wav, sr)
    _valid(a)
    assert a == b


def test_tag_map_shapes_are_normalised():
    rows = tagging._normalise_tag_map(pd.DataFrame({"tag": ["piano", "sad", "x"], "field": ["instruments", "mood",
                                                                                            "genre"],
                                                    "label": ["piano", "melancholic", "jazz"], "weight": [1, .5, 1]}))
    assert rows == [("piano", "instruments", "piano", 1.0), ("sad", "moods", "melancholic", 0.5)]
    nested = tagging._normalise_tag_map({"instruments": {"piano": ["piano", "keys"]}, "moods": {"calming": {"slow": .5}}})
    assert ("keys", "instruments", "piano", 1.0) in nested and ("slow", "moods", "calming", 0.5) in nested


@pytest.fixture(scope="module")
def clap_tagger(tmp_path_factory):
    try:
        return tagging.ClapTagger("tiny-clap", cache_dir=tmp_path_factory.mktemp("cache"))
    except DependencyError as exc:
        pytest.skip(str(exc))


def test_clap_tagger_is_a_deterministic_softmax(clap_tagger):
    wav, sr = _tone(seconds=12.0, sr=16000)
    a, b = clap_tagger.tag(wav, sr), clap_tagger.tag(wav, sr)
    _valid(a)
    assert a == b
    for f in FIELDS:
        assert sum(a[f].values()) == pytest.approx(1.0, abs=1e-5)
    assert clap_tagger.version.startswith("clap-local:")  # weights hash of the resolved folder
    # the probabilities are the softmax of scaled cosines with the label prompts
    emb = clap_tagger.audio_embedding(wav, sr)
    logits = clap_tagger.logit_scale * clap_tagger.text_emb["moods"] @ emb
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(list(a["moods"].values()), expected, rtol=1e-5)


def test_clap_prompts_change_the_version(clap_tagger):
    other = tagging.ClapTagger("tiny-clap", cache_dir="unused", templates={f: ("{label}",) for f in FIELDS},
                               embedder=clap_tagger.embedder)
    assert other.version != clap_tagger.version
    assert not np.allclose(other.text_emb["genre"], clap_tagger.text_emb["genre"])


# ------------------------------------------------------------------------------------------- registry / selection
def test_get_tagger_unknown_name():
    from echoscript_utils.config import load_config

    with pytest.raises(ConfigError, match="unknown tagger"):
        tagging.get_tagger("vggish", load_config(None))


def test_combine_is_the_mean_and_choose_follows_threshold_and_top_k():
    a = tagging.empty_tags()
    b = tagging.empty_tags()
    a["genre"].update(classical=1.0)
    b["genre"].update(ambient=0.6, classical=0.4)
    a["moods"].update(calming=0.9, melancholic=0.3)
    b["moods"].update(calming=0.5, melancholic=0.3, uplifting=0.3)
    a["instruments"].update(piano=0.1)
    c = tagging.combine_tags([a, b])
    assert c["genre"]["classical"] == pytest.approx(0.7) and c["moods"]["calming"] == pytest.approx(0.7)
    chosen = tagging.choose_labels(c, threshold=0.2, top_k=3, min_labels=1)
    assert chosen["genre"] == "classical"
    assert chosen["moods"] == ["calming", "melancholic"]  # uplifting 0.15 < threshold
    assert chosen["instruments"] == ["piano"]  # below threshold, kept as the single best (min_labels=1)
    assert tagging.choose_labels(c, threshold=0.2, top_k=1)["moods"] == ["calming"]
    assert tagging.choose_labels(c, threshold=0.2, min_labels=0)["instruments"] == []
    # ties break in vocabulary order
    flat = tagging.empty_tags(0.5)
    assert tagging.choose_labels(flat, top_k=2)["instruments"] == list(VOCAB["instruments"][:2])


def test_tagger_input_shapes(tmp_path):
    class Echo(tagging.Tagger):
        name, version, sample_rate = "echo", "1", 8000

        def tag(self, wav, sr):
            x = self._mono(wav, sr)
            return {"n": x.size}

    tg = Echo()
    assert tg.tag(np.zeros((2, 16000), np.float32), 16000) == {"n": 8000}
    with pytest.raises(InputError):
        tg.tag(np.zeros((1, 2, 3)), 8000)
    assert Path(tagging.AUDIOSET_LABELS_CSV).is_file()
