"""Full-size dry run: configs equal the published ones field by field, sizes match the published weights, the
hub folder layout loads through the hub id (offline), weight URLs resolve to the mirror's files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from echoscript_utils.config import load_config
from echoscript_utils.errors import ConfigError
from echoscript_utils.models import fullsize as fs
from echoscript_utils.models import panns, vggish
from echoscript_utils.models.hub import resolve_checkpoint

HF_IDS = ["facebook/musicgen-small", "facebook/musicgen-melody", "google-t5/t5-base", "facebook/encodec_32khz",
          "laion/larger_clap_music_and_speech"]
PANNS_URL = "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth"


def test_every_checkpoint_the_gpu_profiles_name_is_published():
    assert set(HF_IDS) | {PANNS_URL, vggish.WEIGHTS_URL} == set(fs.published_ids())
    for params in ("colab_a100.yaml", "paper.yaml"):
        cfg = load_config(os.path.join(os.path.dirname(__file__), "..", "params", params))
        assert {cfg.training.model, cfg.generation.baseline_model, cfg.alignment.clap_model} <= set(fs.published_ids())
        assert set(fs.mirror_targets(cfg)) >= {"facebook/musicgen-small", "laion/larger_clap_music_and_speech",
                                               "google-t5/t5-base", "facebook/encodec_32khz", PANNS_URL}


@pytest.mark.parametrize("model_id", HF_IDS)
def test_built_config_equals_the_published_one_field_by_field(model_id):
    built = fs.build_config(model_id).to_dict()
    expected = fs.published(model_id)["files"]["config.json"]
    assert fs.compare_config(built, expected) == []
    # the comparison itself fails on a changed field, a missing one and a nested one
    assert fs.compare_config({**built, "model_type": "other"}, expected)
    assert fs.compare_config({k: v for k, v in built.items() if k != "model_type"}, expected)


def test_musicgen_interfaces_follow_from_the_published_configs():
    small, melody = fs.build_config("facebook/musicgen-small"), fs.build_config("facebook/musicgen-melody")
    for cfg in (small, melody):
        assert cfg.audio_encoder.sampling_rate == 32000 and cfg.audio_encoder.frame_rate == 50
        assert cfg.decoder.num_codebooks == 4 and cfg.decoder.vocab_size == cfg.audio_encoder.codebook_size == 2048
        assert cfg.text_encoder.d_model == 768 and cfg.text_encoder.vocab_size == 32128
    assert (small.decoder.hidden_size, small.decoder.num_hidden_layers) == (1024, 24)
    assert (melody.decoder.hidden_size, melody.decoder.num_hidden_layers, melody.chroma_length) == (1536, 48, 235)
    assert fs.build_config("facebook/musicgen-small").text_encoder.to_dict()["d_ff"] == 3072


def test_panns_and_vggish_settings_are_the_published_ones():
    assert {**panns.CNN14_SETTINGS, "classes_num": 527} == fs.build_config(PANNS_URL)
    v = fs.build_config(vggish.WEIGHTS_URL)
    ours = {"sample_rate": vggish.SR, "stft_window_length_seconds": vggish.WINDOW_S,
            "stft_hop_length_seconds": vggish.HOP_S, "num_mel_bins": vggish.N_MELS, "mel_min_hz": vggish.MEL_MIN_HZ,
            "mel_max_hz": vggish.MEL_MAX_HZ, "log_offset": vggish.LOG_OFFSET,
            "example_window_frames": vggish.EXAMPLE_FRAMES, "embedding_size": vggish.EMBEDDING_SIZE}
    assert fs.compare_config(ours, v) == []


@pytest.mark.parametrize("model_id", HF_IDS)
def test_model_sizes_match_the_published_weight_files(model_id):
    """Built on the meta device (no memory): float32 parameters + persistent buffers within 2 % of the
    published weights' bytes (musicgen-small 2.36 GB, musicgen-melody 6.23 GB, CLAP 776 MB, ...)."""
    import torch
    import transformers as tf

    kind = fs.published(model_id)["kind"]
    cls = {"musicgen": tf.MusicgenForConditionalGeneration, "musicgen_melody": tf.MusicgenMelodyForConditionalGeneration,
           "t5": tf.T5ForConditionalGeneration, "encodec": tf.EncodecModel, "clap": tf.ClapModel}[kind]
    with torch.device("meta"):
        model = cls(fs.build_config(model_id))
    params = dict(model.named_parameters(remove_duplicate=False))
    buffers = [v for k, v in model.state_dict().items() if k not in params]
    n = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in buffers)
    assert 4 * n == pytest.approx(fs.published(model_id)["weights"]["bytes"], rel=0.02)


def test_panns_network_has_the_papers_parameter_count():
    model = fs.build_model(PANNS_URL)
    net = sum(p.numel() for name, p in model.named_parameters()
              if not name.startswith(("spectrogram_extractor", "logmel_extractor")))
    assert net == pytest.approx(fs.published(PANNS_URL)["parameters"], rel=0.005)


@pytest.mark.parametrize("model_id,kind", [("google-t5/t5-base", "t5"), ("laion/larger_clap_music_and_speech",
                                                                         "roberta")])
def test_standin_tokenizers_have_the_real_vocabulary_size_and_ids(model_id, kind):
    spec = fs.published(model_id)["tokenizer"]
    tok = fs.standin_tokenizer(model_id)
    assert len(tok) == spec["size"] and tok.pad_token_id == spec["pad_token_id"]
    assert tok.eos_token_id == spec["eos_token_id"] and tok.unk_token_id == spec["unk_token_id"]
    if kind == "roberta":
        assert tok.mask_token_id == spec["mask_token_id"] and tok.bos_token_id == 0
    ids = tok("a slow, tense scene: low strings and timpani")["input_ids"]
    assert max(ids) < spec["size"] and tok.unk_token_id not in ids


def test_hub_layout_loads_through_the_hub_id(tmp_path):
    """Configs, generation configs, processors and tokenizers written in the HF_HUB_CACHE layout load back through
    the plain hub id, offline, both with cache_dir and through HF_HUB_CACHE in a fresh process."""
    import transformers as tf

    hub = tmp_path / "hub"
    for model_id in HF_IDS:
        snap = fs.write_hub_model(model_id, hub, weights=False)
        assert snap == fs.hub_snapshot(hub, model_id) and (snap / "config.json").is_file()
        assert snap.parent.parent.name == "models--" + model_id.replace("/", "--")
    fs.check_hub_loading(hub, HF_IDS)  # config == published, generation config, tokenizer size
    proc = tf.MusicgenProcessor.from_pretrained("facebook/musicgen-small", cache_dir=str(hub), local_files_only=True)
    assert proc.feature_extractor.sampling_rate == 32000 and proc.feature_extractor.padding_side == "left"
    clap = tf.ClapProcessor.from_pretrained("laion/larger_clap_music_and_speech", cache_dir=str(hub),
                                            local_files_only=True)
    assert clap.feature_extractor.truncation == "rand_trunc" and clap.feature_extractor.sampling_rate == 48000
    melody = json.loads((fs.hub_snapshot(hub, "facebook/musicgen-melody") / "preprocessor_config.json").read_text())
    assert melody == fs.published("facebook/musicgen-melody")["files"]["preprocessor_config.json"]
    code = ("import transformers as tf; c = tf.AutoConfig.from_pretrained('facebook/musicgen-small'); "
            "print(c.decoder.num_hidden_layers, c.audio_encoder.sampling_rate)")
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.split()[-2:] == ["24", "32000"]


def test_weights_round_trip_through_the_hub_id(tmp_path):
    """The codec (the smallest hub model, 57 M parameters): random weights written as safetensors in the hub
    layout come back identical through EncodecModel.from_pretrained(hub id); they decode random codes to audio."""
    import torch
    import transformers as tf

    hub = tmp_path / "hub"
    snap = fs.write_hub_model("facebook/encodec_32khz", hub, seed=7)
    assert (snap / "model.safetensors").is_file()
    loaded = tf.EncodecModel.from_pretrained("facebook/encodec_32khz", cache_dir=str(hub), local_files_only=True)
    ref = fs.build_model("facebook/encodec_32khz", seed=7)
    for (k, a), (_, b) in zip(sorted(loaded.state_dict().items()), sorted(ref.state_dict().items()), strict=True):
        assert torch.equal(a, b), k
    codes = torch.randint(0, 2048, (1, 1, 4, 50), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        wav = loaded.decode(codes, [None]).audio_values
    assert wav.shape[-1] == 50 * 640 and float(wav.std()) > 1e-3
    again = fs.write_hub_model("facebook/encodec_32khz", hub, seed=7)  # already there: not rebuilt
    assert again == snap and (snap / "model.safetensors").stat().st_mtime == again.joinpath(
        "model.safetensors").stat().st_mtime


def test_weight_urls_resolve_to_the_mirror_files_without_a_download(tmp_path):
    path = fs.write_checkpoint(PANNS_URL, tmp_path, seed=3)
    # the URL code path, no network
    assert path == resolve_checkpoint(PANNS_URL, source=panns.CHECKPOINT_SOURCE, cache_dir=tmp_path)
    assert path.name == "Cnn14_mAP=0.431.pth"
    model = panns.load_cnn14(path)  # {"model": state_dict}, as published
    assert sum(p.numel() for p in model.parameters()) > 80e6
    vpath = fs.write_checkpoint(vggish.WEIGHTS_URL, tmp_path, seed=3)
    assert vpath == resolve_checkpoint(vggish.WEIGHTS_URL, source=vggish.WEIGHTS_SOURCE, cache_dir=tmp_path)
    net = vggish.load_vggish(vggish.WEIGHTS_URL, cache_dir=tmp_path)
    assert net.embeddings[4].out_features == 128


def test_mirror_needs_a_cache_of_its_own(tmp_path):
    cfg = load_config(None, {"run.fullsize_mirror": True}, output_root=tmp_path)
    with pytest.raises(ConfigError, match="hub_cache"):
        fs.ensure_mirror(cfg)
    from huggingface_hub import constants

    cfg = load_config(None, {"run.hub_cache": constants.default_cache_path}, output_root=tmp_path)
    with pytest.raises(ConfigError, match="default Hugging Face cache"):
        fs.ensure_mirror(cfg)
    cfg = load_config(None, {"run.hub_cache": str(tmp_path / "hub"), "run.hub_offline": True}, output_root=tmp_path)
    assert fs.hub_environment(cfg) == {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1",
                                       "TRANSFORMERS_OFFLINE": "1"}


def test_musicgen_without_a_decoder_start_id_in_its_decoder_config_trains(tmp_path):
    """Like the hub's musicgen-small/-melody configs (their decoder sections carry no decoder_start_token_id; it
    lives in generation_config.json), which transformers 5 needs for a forward pass with labels."""
    import torch

    from echoscript_utils.models import load_musicgen, resolve_model

    src = resolve_model("tiny-musicgen", cache_dir=tmp_path / "models")
    cfg_path = tmp_path / "hub_like"
    import shutil

    shutil.copytree(src, cfg_path)
    data = json.loads((cfg_path / "config.json").read_text())
    data["decoder"].pop("decoder_start_token_id", None)
    (cfg_path / "config.json").write_text(json.dumps(data))
    model, _ = load_musicgen(str(cfg_path), cache_dir=tmp_path / "models")
    assert model.config.decoder.decoder_start_token_id == model.generation_config.decoder_start_token_id == 64
    labels = torch.randint(0, 64, (1, 10, 4))
    out = model(input_ids=torch.tensor([[5, 6, 1]]), labels=labels)
    assert torch.isfinite(out.loss)
