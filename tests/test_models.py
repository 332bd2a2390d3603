"""Tiny models: build → save → load through the public loader gives the same model; helpers; LoRA; errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from echoscript_utils import models
from echoscript_utils.errors import DependencyError, InputError

CAPTIONS = [
    "A suspenseful cinematic cue with low strings and pulsing percussion at 90 bpm.",
    "Calming ambient piano and synthesizer pads in D minor, slow and gentle.",
    "Uplifting orchestral theme with violin and brass, major key, 120 bpm.",
    "Melancholic solo guitar for a farewell scene at the train station.",
    "Fast electronic track with drums and arpeggiated synth, 128 bpm, energetic.",
]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def paths(cache):
    return {name: models.resolve_model(name, cache_dir=cache) for name in models.TINY_MODELS}


@pytest.fixture(scope="module")
def built():
    """The same three models built in memory (not saved), to compare against what the loader returns."""
    return {"tiny-musicgen": models.build_tiny_musicgen(seed=1234),
            "tiny-musicgen-melody": models.build_tiny_musicgen(seed=1234, melody=True),
            "tiny-clap": models.build_tiny_clap(seed=1234)}


@pytest.fixture(scope="module")
def musicgen(cache, paths):
    return models.load_musicgen("tiny-musicgen", cache_dir=cache)


# ------------------------------------------------------------------------------------------ resolving
def test_resolve_builds_once_into_hashed_standard_folders(cache, paths):
    for name, path in paths.items():
        folder = cache / path.split("/")[-1]
        assert folder.name.startswith(f"{name}-") and len(folder.name) == len(name) + 13
        assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
        assert (folder / "tokenizer.json").is_file()
        stamp = (folder / "model.safetensors").stat().st_mtime_ns
        assert models.resolve_model(name, cache_dir=cache) == path
        assert (folder / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temporary folders left
    other_seed = models.resolve_model("tiny-clap", cache_dir=cache, seed=7)
    assert other_seed != paths["tiny-clap"]


def test_resolve_passes_hub_ids_and_folders_and_rejects_missing_folders(cache, tmp_path):
    assert models.resolve_model("facebook/musicgen-small", cache_dir=cache) == "facebook/musicgen-small"
    assert models.resolve_model(tmp_path, cache_dir=cache) == str(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        models.resolve_model(tmp_path / "no" / "such", cache_dir=cache)


def test_tiny_shapes_match_musicgen_small_interface(built):
    model, _ = built["tiny-musicgen"]
    assert models.model_sample_rate(model) == 32_000
    assert models.frame_rate(model) == 50
    assert model.config.audio_encoder.hop_length == 640
    assert model.config.audio_encoder.num_quantizers == model.config.decoder.num_codebooks == 4
    for cfg in (model.config.decoder, model.generation_config):
        assert cfg.pad_token_id == cfg.bos_token_id == cfg.decoder_start_token_id == 64
    assert model.generation_config.max_length == 1500 and model.generation_config.guidance_scale == 3.0
    counts = {name: models.count_parameters(m) for name, (m, _) in built.items()}
    assert 200_000 < counts["tiny-musicgen"] < 1_000_000
    assert 200_000 < counts["tiny-musicgen-melody"] < 1_000_000
    assert 20_000 < counts["tiny-clap"] < 1_000_000
    clap, _ = built["tiny-clap"]
    audio_cfg = clap.config.audio_config
    assert audio_cfg.hidden_size == audio_cfg.patch_embeds_hidden_size * 2 ** (len(audio_cfg.depths) - 1)


def test_build_is_deterministic_and_leaves_caller_rng_alone(built):
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    again, _ = models.build_tiny_musicgen(seed=1234)
    assert torch.equal(torch.rand(3), expected)
    reference = built["tiny-musicgen"][0].state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in again.state_dict().items())
    other, _ = models.build_tiny_musicgen(seed=1)
    assert not torch.equal(other.decoder.lm_heads[0].weight, again.decoder.lm_heads[0].weight)


# ---------------------------------------------------------------------------------- round trips
def _text_inputs(processor, texts):
    tok = getattr(processor, "tokenizer", processor)
    return tok(texts, padding=True, return_tensors="pt")


@pytest.mark.parametrize("name", ["tiny-musicgen", "tiny-musicgen-melody"])
def test_musicgen_round_trip_logits_and_generate(name, cache, paths, built):
    ref_model, ref_proc = built[name]
    model, proc = models.load_musicgen(name, cache_dir=cache)
    assert type(model) is type(ref_model)
    inputs = _text_inputs(proc, CAPTIONS[:2])
    assert torch.equal(inputs["input_ids"], _text_inputs(ref_proc, CAPTIONS[:2])["input_ids"])
    labels = torch.randint(0, 64, (2, 30, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(model(**inputs, labels=labels).logits, ref_model(**inputs, labels=labels).logits)
    for sample in (False, True):
        outs = []
        for m in (ref_model, model):
            torch.manual_seed(5)
            outs.append(m.generate(**inputs, max_new_tokens=24, do_sample=sample, guidance_scale=3.0))
        assert outs[0].shape == (2, 1, 21 * 640)  # 24 steps - 3 delay steps = 21 frames of 640 samples
        assert torch.equal(outs[0], outs[1])
    torch.manual_seed(6)
    different = model.generate(**inputs, max_new_tokens=24, do_sample=True)
    assert not torch.equal(different, outs[1])


def test_clap_round_trip_embeddings(cache, paths, built):
    ref_model, _ = built["tiny-clap"]
    model, proc = models.load_clap("tiny-clap", cache_dir=cache)
    fe = proc.feature_extractor
    assert fe.sampling_rate == models.CLAP_SAMPLE_RATE == 48_000 and fe.truncation == "rand_trunc"
    rng = np.random.default_rng(0)
    audio = [(0.1 * rng.standard_normal(48_000 * 3)).astype(np.float32)]
    inputs = proc(text=CAPTIONS[:3], audio=audio, sampling_rate=48_000, padding=True, return_tensors="pt")
    assert inputs["input_features"].shape == (1, 1, 1001, 64)
    with torch.no_grad():
        out, ref = model(**inputs), ref_model(**inputs)
    assert out.logits_per_audio.shape == (1, 3)
    assert torch.equal(out.text_embeds, ref.text_embeds)
    # The Swin audio tower's kernels can round the last bit differently for two allocations of identical weights
    # (measured: 4e-8 on the embeddings), so audio-dependent outputs are compared at 1e-6.
    torch.testing.assert_close(out.audio_embeds, ref.audio_embeds, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.logits_per_audio, ref.logits_per_audio, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("extractor", ["tiny", "published"])
def test_clap_audio_features_equal_the_extractor(built, extractor):
    """models.clap.audio_features (one framed FFT per window) gives exactly what transformers' ClapFeatureExtractor
    gives (a loop over frames), for the tiny extractor and the published CLAP's, on a full 10 s window, short
    windows it repeat-pads and a long one (which it hands to the extractor, whose rand_trunc crop is random)."""
    import transformers as tf

    from echoscript_utils.models import fullsize as fs
    from echoscript_utils.models.clap import audio_features

    if extractor == "tiny":
        fe = built["tiny-clap"][1].feature_extractor
    else:
        conf = fs.published("laion/larger_clap_music_and_speech")["files"]["preprocessor_config.json"]
        fe = tf.ClapFeatureExtractor(**{k: v for k, v in conf.items() if k not in ("feature_extractor_type",
                                                                                   "processor_class")})
    rng = np.random.default_rng(3)
    t = np.arange(48_000 * 12) / 48_000
    music = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 0.5 * t)) + 0.05 * rng.standard_normal(t.size))
    music = music.astype(np.float32)
    for wins in ([music[:480_000]], [music[:480_000], music[:192_000], music[:700]], [music]):
        np.random.seed(0)
        want = fe(wins, sampling_rate=48_000, return_tensors="pt", truncation="rand_trunc", padding="repeatpad")
        np.random.seed(0)
        got = audio_features(fe, wins)
        assert torch.equal(got["input_features"], want["input_features"])
        assert torch.equal(got["is_longer"], want["is_longer"])
    assert got["input_features"].shape == (1, 1, 1001, fe.feature_size)


def test_processor_round_trip(cache, paths, built, tmp_path):
    proc = built["tiny-musicgen"][1]
    proc.save_pretrained(tmp_path / "p")
    from transformers import MusicgenProcessor

    again = MusicgenProcessor.from_pretrained(tmp_path / "p")
    assert again.feature_extractor.sampling_rate == 32_000
    enc_a = proc(text=CAPTIONS, padding=True, return_tensors="pt")
    enc_b = again(text=CAPTIONS, padding=True, return_tensors="pt")
    assert torch.equal(enc_a["input_ids"], enc_b["input_ids"])
    wav = np.zeros(32_000, dtype=np.float32)  # (processor(audio=...) is broken in transformers 5.24: call the FE)
    features = again.feature_extractor(wav, sampling_rate=32_000, return_tensors="pt")
    assert features["input_values"].shape == (1, 1, 32_000)


def test_tokenizers_cover_captions_with_few_unknowns(built):
    t5 = built["tiny-musicgen"][1].tokenizer
    assert (t5.pad_token_id, t5.eos_token_id, t5.unk_token_id) == (0, 1, 2)
    ids = [i for caption in CAPTIONS + ["Écran noir — la pluie tombe… 3/4 at ♩=96"] for i in t5(caption)["input_ids"]]
    assert sum(i == t5.unk_token_id for i in ids) / len(ids) < 0.03
    assert t5.decode(t5(CAPTIONS[0])["input_ids"], skip_special_tokens=True) == CAPTIONS[0]
    roberta = built["tiny-clap"][1].tokenizer
    assert (roberta.bos_token_id, roberta.pad_token_id, roberta.eos_token_id) == (0, 1, 2)
    ids = roberta("Écran noir — ♩=96 " + CAPTIONS[1])["input_ids"]
    assert roberta.unk_token_id not in ids
    assert models.build_tiny_tokenizer(kind="t5").get_vocab() == t5.get_vocab()  # deterministic training


# ----------------------------------------------------------------------------------- codec helpers
def test_encode_decode_shapes_and_codes_are_informative(musicgen):
    model, _ = musicgen
    t = np.arange(32_000 * 2) / 32_000
    wav = torch.from_numpy(np.stack([[0.3 * np.sin(2 * np.pi * 220 * t)], [0.05 * np.random.default_rng(1)
                                     .standard_normal(t.size)]]).astype(np.float32))  # [2, 1, T]
    codes = models.encode_audio(model, wav)
    assert codes.dtype == torch.long and codes.shape == (2, 4, 100)
    assert int(codes.max()) < 64 and len(torch.unique(codes)) > 8
    assert not torch.equal(codes[0], codes[1])
    stereo = models.encode_audio(model, wav.repeat(1, 2, 1))  # stereo input → mono model mixes down
    assert torch.equal(stereo, codes)
    audio = models.decode_codes(model, codes)
    assert audio.shape == (2, 1, 64_000) and torch.isfinite(audio).all()
    with pytest.raises(ValueError, match=r"\[B, C, T\]"):
        models.encode_audio(model, wav[0])


def test_model_identity_tracks_weights(cache, paths, tmp_path, musicgen):
    path = paths["tiny-musicgen"]
    first = models.model_identity(path)
    assert first == models.model_identity(path) and first.startswith("local:")
    assert models.model_identity("facebook/musicgen-small") == "hub:facebook/musicgen-small"
    assert models.model_identity("tiny-musicgen") == path.split("/")[-1]
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    assert models.model_identity(copy) == first
    model, _ = musicgen
    changed, _ = models.load_musicgen(copy, cache_dir=cache)
    with torch.no_grad():
        changed.decoder.lm_heads[0].weight.add_(0.01)
    changed.save_pretrained(copy)
    assert models.model_identity(copy) != first
    assert models.codec_identity(changed) == models.codec_identity(model)


# ------------------------------------------------------------------------------------------ LoRA
def test_lora_adapter_folder_loads_on_top_of_its_base(cache, paths, tmp_path, musicgen):
    from peft import LoraConfig, PeftModel, get_peft_model

    base, proc = models.load_musicgen("tiny-musicgen", cache_dir=cache)
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5, generator=torch.Generator().manual_seed(3))
    assert 0 < sum(p.numel() for p in lora.parameters() if p.requires_grad) < 50_000
    adapter_dir = tmp_path / "adapter"
    lora.save_pretrained(adapter_dir)
    proc.save_pretrained(adapter_dir)
    assert json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        paths["tiny-musicgen"]
    inputs = proc(text=CAPTIONS[:2], padding=True, return_tensors="pt")
    labels = torch.randint(0, 64, (2, 12, 4), generator=torch.Generator().manual_seed(0))
    lora.eval()
    with torch.no_grad():
        expected = lora(**inputs, labels=labels).logits
        plain = musicgen[0](**inputs, labels=labels).logits
    merged, _ = models.load_musicgen(adapter_dir, cache_dir=cache)
    wrapped, _ = models.load_musicgen(adapter_dir, cache_dir=cache, merge_lora=False)
    assert isinstance(wrapped, PeftModel) and not isinstance(merged, PeftModel)
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs, labels=labels).logits, expected, atol=1e-5, rtol=1e-5)
        assert torch.equal(wrapped(**inputs, labels=labels).logits, expected)
    assert not torch.allclose(expected, plain)
    assert models.model_identity(adapter_dir) not in (models.model_identity(paths["tiny-musicgen"]), None)
    assert models.frame_rate(wrapped) == 50 and models.encode_audio(wrapped, torch.zeros(1, 1, 6400)).shape[-1] == 10


# ---------------------------------------------------------------------------------------- errors
def test_hub_failure_is_one_line_dependency_error(cache, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for load in (models.load_musicgen, models.load_clap):
        with pytest.raises(DependencyError) as err:
            load("echoscript-tests/no-such-model", cache_dir=cache)
        message = str(err.value)
        assert "\n" not in message and message.startswith("echoscript-tests/no-such-model: could not load")
        assert "HF_HUB_OFFLINE" in message and "local model folder" in message


def test_wrong_family_or_empty_folder_is_input_error(cache, paths, tmp_path):
    with pytest.raises(InputError, match="not a musicgen model"):
        models.load_musicgen("tiny-clap", cache_dir=cache)
    with pytest.raises(InputError, match="not a clap model"):
        models.load_clap("tiny-musicgen", cache_dir=cache)
    with pytest.raises(InputError, match="no config.json"):
        models.load_musicgen(tmp_path, cache_dir=cache)


def test_cli_models_command_writes_all_tiny_models(cache, paths, capsys):
    from echoscript_utils.cli import main

    assert main(["models", "--out", str(cache)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed == [f"{name}: {paths[name]}" for name in models.TINY_MODELS]


def test_dtype_and_attention_options(cache, paths, musicgen):
    model, proc = musicgen
    inputs = proc(text=CAPTIONS[:2], padding=True, return_tensors="pt")
    labels = torch.randint(0, 64, (2, 10, 4), generator=torch.Generator().manual_seed(0))
    eager, _ = models.load_musicgen("tiny-musicgen", cache_dir=cache, attn_implementation="eager")
    assert eager.decoder.config._attn_implementation == "eager"
    with torch.no_grad():
        torch.testing.assert_close(eager(**inputs, labels=labels).logits, model(**inputs, labels=labels).logits,
                                   atol=1e-5, rtol=1e-4)
    half, _ = models.load_musicgen("tiny-musicgen-melody", cache_dir=cache, dtype="bfloat16", attn_implementation="sdpa")
    assert half.dtype == torch.bfloat16 and half.decoder.config._attn_implementation == "sdpa"
    codes = models.encode_audio(half, torch.zeros(1, 1, 3200))  # float32 audio in, cast to the codec's dtype
    assert codes.shape == (1, 4, 5) and models.decode_codes(half, codes).dtype == torch.bfloat16


@pytest.mark.parametrize("melody", [False, True])
def test_is_melody_sees_through_peft_and_ddp_wrappers(melody):
    from peft import LoraConfig, get_peft_model

    model, _ = models.build_tiny_musicgen(melody=melody)

    class Wrapped(torch.nn.Module):  # the shape of DistributedDataParallel: the model under .module
        def __init__(self, module):
            super().__init__()
            self.module = module

    lora = get_peft_model(models.build_tiny_musicgen(melody=melody)[0],
                          LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    assert [models.is_melody(m) for m in (model, lora, Wrapped(model), Wrapped(lora))] == [melody] * 4
