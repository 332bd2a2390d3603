"""Our embedders against the reference implementations, run from their registry packages on the same files and
the same random weights: torchvggish (VGGish), panns_inference's Cnn14 (PANNs), transformers' CLAP, each fed by
``frechet_audio_distance``'s own audio loader (soundfile, channel mean, resampy). Per-row embeddings and FAD must
agree within 1e-5 relative, on rendered music at 44.1, 48 and 22.05 kHz, mono and stereo.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

from echoscript_utils import audio, demo_corpus, embeddings, synth
from echoscript_utils.fad import frechet_distance

RATES = [44100, 48000, 22050]
RTOL = 1e-5


# ------------------------------------------------------------------------------------------------ references
def _module_from_package(package: str, module: str):
    """``package.module`` loaded from the installed registry package without running ``package/__init__``
    (frechet_audio_distance's imports laion_clap and encodec; panns_inference's downloads a label file)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed (pip install -r requirements-nodeps.txt / -e .[dev])")
    alias = f"_reference_{package}"
    if alias not in sys.modules:
        pkg = types.ModuleType(alias)
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules[alias] = pkg
    return importlib.import_module(f"{alias}.{module}")


@pytest.fixture(scope="module")
def load_audio_task():
    """frechet_audio_distance's loader: ``sf.read(float32)``, mean over channels, ``resampy.resample``."""
    return _module_from_package("frechet_audio_distance", "utils").load_audio_task


def rel_rows(ours: np.ndarray, ref: np.ndarray) -> float:
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    diff = np.linalg.norm(ours.astype(np.float64) - ref.astype(np.float64), axis=1)
    return float((diff / np.linalg.norm(ref.astype(np.float64), axis=1)).max())


def assert_parity(ours: list[np.ndarray], ref: list[np.ndarray], n_a: int) -> None:
    assert len(ours) == len(ref)
    worst = max(rel_rows(o, r) for o, r in zip(ours, ref))
    assert worst <= RTOL, f"rows differ by {worst:.2e} relative"
    fad_ours = frechet_distance(ours[:n_a], ours[n_a:])
    fad_ref = frechet_distance(ref[:n_a], ref[n_a:])
    assert fad_ref > 0
    assert fad_ours == pytest.approx(fad_ref, rel=RTOL)


# ------------------------------------------------------------------------------------------------ audio
@pytest.fixture(scope="module", params=[(sr, ch) for sr in RATES for ch in (2, 1)],
                ids=[f"{sr}Hz-{'stereo' if ch == 2 else 'mono'}" for sr in RATES for ch in (2, 1)])
def music_files(request, tmp_path_factory):
    """Two sets of two rendered pieces (General MIDI soundfont, 2.5 s) as 16-bit WAV files at one rate."""
    sr, channels = request.param
    folder = tmp_path_factory.mktemp(f"music_{sr}_{channels}")
    files = []
    for k, (spec, seed) in enumerate(demo_corpus.plan_corpus(4, seed=11, min_duration_s=2.5, max_duration_s=2.5,
                                                             sr=sr)):
        wav = synth.render_midi(demo_corpus.compose_track(spec, seed=seed), sr=sr, duration_s=2.5)
        wav = 0.5 * wav / np.abs(wav).max()
        files.append(audio.write(folder / f"piece{k}.wav", wav if channels == 2 else wav.mean(axis=0), sr))
    return files


def ours_rows(embedder, files) -> list[np.ndarray]:
    return list(embeddings.embed_files(files, embedder, cache_dir=None, progress=False).values())


# ------------------------------------------------------------------------------------------------ VGGish
@pytest.fixture(scope="module")
def vggish_weights(tmp_path_factory):
    """Random VGGish weights in the layout of torchvggish's vggish-10086976.pth (a flat state dict)."""
    from echoscript_utils.models.vggish import load_vggish

    path = tmp_path_factory.mktemp("vggish") / "vggish-random.pth"
    model = load_vggish("random", cache_dir=path.parent, seed=3)
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, path)
    return path


@pytest.fixture(scope="module")
def vggish_pair(vggish_weights):
    """torchvggish's network holding the weights file (last ReLU dropped, as the FAD package does), and ours."""
    tv = pytest.importorskip("torchvggish")
    try:
        from torchvggish.vggish import VGG, make_layers
        ref_net = VGG(make_layers())
    except ImportError:
        from torchvggish.torchvggish import VGG, make_layers
        ref_net = VGG(make_layers(), False)
    ref_net.load_state_dict(torch.load(vggish_weights))
    ref_net.embeddings = torch.nn.Sequential(*list(ref_net.embeddings.children())[:-1])
    ours = embeddings.get_embedder("vggish", {"weights": str(vggish_weights), "cache_dir": vggish_weights.parent})
    return tv.vggish_input.waveform_to_examples, ref_net.eval(), ours


def test_vggish_matches_torchvggish(music_files, vggish_pair, load_audio_task):
    to_examples, ref_net, ours = vggish_pair
    ref = []
    for f in music_files:
        wav = load_audio_task(str(f), 16000, 1)
        with torch.no_grad():
            ref.append(ref_net(to_examples(wav, 16000)).numpy())
    assert_parity(ours_rows(ours, music_files), ref, 2)


# ------------------------------------------------------------------------------------------------ PANNs
@pytest.fixture(scope="module")
def cnn14_checkpoint(tmp_path_factory):
    """Random Cnn14 weights saved as PANNs' training script saves its checkpoints (the released files' shape)."""
    from echoscript_utils.models.panns import load_cnn14

    torch.manual_seed(5)
    model = load_cnn14(None)
    path = tmp_path_factory.mktemp("panns") / "Cnn14_random.pth"
    sampler = {"indexes_per_class": [np.arange(i, 40, 7) for i in range(3)], "queue": [2, 0, 1],
               "pointers_of_classes": [0, 1, 0]}
    torch.save({"iteration": 660000, "model": model.state_dict(), "sampler": sampler}, path)
    return path


@pytest.fixture(scope="module")
def panns_pair(cnn14_checkpoint):
    """panns_inference's Cnn14 holding the checkpoint (loaded as panns_inference loads it), and ours."""
    cnn14 = _module_from_package("panns_inference", "models").Cnn14
    ref_net = cnn14(sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64, fmin=50, fmax=16000,
                    classes_num=527)  # frechet_audio_distance's settings; the mel weights come from the file
    ref_net.load_state_dict(torch.load(cnn14_checkpoint, weights_only=False)["model"])
    ours = embeddings.get_embedder("panns", {"checkpoint": str(cnn14_checkpoint),
                                             "cache_dir": cnn14_checkpoint.parent})
    return ref_net.eval(), ours


def test_panns_matches_panns_inference(music_files, panns_pair, load_audio_task):
    ref_net, ours = panns_pair
    ref = []
    for f in music_files:
        wav = load_audio_task(str(f), 32000, 1)
        with torch.no_grad():
            ref.append(ref_net(torch.tensor(wav).float().unsqueeze(0), None)["embedding"].numpy())
    rows = ours_rows(ours, music_files)
    assert [o.shape for o in rows] == [(1, 2048)] * 4  # one row per file, as the FAD package
    assert_parity(rows, ref, 2)


# ------------------------------------------------------------------------------------------------ CLAP
@pytest.fixture(scope="module")
def clap_pair(tmp_path_factory):
    """transformers' ClapModel and ClapFeatureExtractor from a saved tiny CLAP folder, and ours on that folder."""
    from transformers import ClapFeatureExtractor, ClapModel

    from echoscript_utils.models import resolve_model

    cache = tmp_path_factory.mktemp("clap")
    folder = resolve_model("tiny-clap", cache_dir=cache / "models")
    ours = embeddings.get_embedder("clap", {"model": "tiny-clap", "cache_dir": cache})
    return ClapModel.from_pretrained(folder).eval(), ClapFeatureExtractor.from_pretrained(folder), ours


def test_clap_matches_transformers(music_files, clap_pair, load_audio_task):
    model, extractor, ours = clap_pair
    ref = []
    for f in music_files:
        wav = load_audio_task(str(f), 48000, 1)
        feats = extractor(wav, sampling_rate=48000, return_tensors="pt", truncation="rand_trunc",
                          padding="repeatpad")  # laion_clap's settings for unfused models
        with torch.no_grad():
            out = model.get_audio_features(**feats)
        out = getattr(out, "pooler_output", out)
        ref.append(torch.nn.functional.normalize(out, dim=-1).numpy())
    assert_parity(ours_rows(ours, music_files), ref, 2)


# ------------------------------------------------------------------------------------------------ the soxr option
def test_soxr_stays_available_and_is_measurably_different(vggish_weights, vggish_pair, tmp_path):
    """soxr is a named option, not the default: on 44.1 kHz music it changes VGGish rows well beyond the
    tolerance above (so the parity tests can fail), and the package's own parity report says so."""
    plan = demo_corpus.plan_corpus(2, seed=4, min_duration_s=2.5, max_duration_s=2.5, sr=44100)
    clips = [(synth.render_midi(demo_corpus.compose_track(s, seed=k), sr=44100, duration_s=2.5), 44100)
             for s, k in plan]
    default = vggish_pair[2]
    soxr = embeddings.get_embedder("vggish", {"weights": str(vggish_weights), "cache_dir": tmp_path,
                                             "resampler": "soxr"})
    assert default.resampler == "kaiser_best" and soxr.resampler == "soxr"
    assert default.identity != soxr.identity  # never the same cache entry
    assert "resampy kaiser_best" in default.normalisation and "soxr" in soxr.normalisation
    assert rel_rows(soxr.embed(*clips[0]), default.embed(*clips[0])) > 100 * RTOL
    report = embeddings.measure_parity(default, clips[:1], clips[1:])
    assert report["rows_max_rel"] <= RTOL and report["fad_rel"] <= RTOL
    off = embeddings.measure_parity(soxr, clips[:1], clips[1:])
    assert off["rows_max_rel"] > 100 * RTOL
