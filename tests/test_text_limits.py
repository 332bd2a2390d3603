"""Every text model truncates to its real maximum length: a scene of thousands of words through the CLAP text
tower and the MusicGen text encoder runs and gives finite output, and the limits come from the models' configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echoscript_utils import models
from echoscript_utils.models import fullsize as fs
from echoscript_utils.musicgen_sampling import generate_batch

#: A scene far past 512 tokens, with words the tiny vocabulary splits into many pieces.
LONG_SCENE = " ".join(f"Word{i} rain hammers the lighthouse windows while Mara waits alone." for i in range(500))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def clap(cache):
    return models.ClapEmbedder("tiny-clap", cache_dir=cache)


@pytest.fixture(scope="module")
def musicgen(cache):
    return models.load_musicgen("tiny-musicgen", cache_dir=cache)


def test_the_long_scene_is_longer_than_any_limit(clap):
    assert len(LONG_SCENE.split()) == 5000
    assert len(clap.processor.tokenizer(LONG_SCENE)["input_ids"]) > 4 * 514


def test_clap_text_embedder_truncates_a_5000_word_scene(clap):
    assert clap.max_text_tokens == 512  # 514 positions, numbered from pad id 1 + 1
    e = clap.embed_text([LONG_SCENE, "a short calm scene"])
    assert e.shape == (2, 32) and np.isfinite(e).all()
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    # truncation keeps the first 512 tokens: the scene embeds as its own beginning does
    tok = clap.processor.tokenizer
    head = tok.decode(tok(LONG_SCENE, truncation=True, max_length=512)["input_ids"], skip_special_tokens=True)
    assert np.allclose(clap.embed_text([head])[0], e[0], atol=1e-4)
    # without it the text tower indexes past its position table: the crash this guards against
    ids = tok([LONG_SCENE], return_tensors="pt")
    with pytest.raises((IndexError, RuntimeError)), torch.inference_mode():
        clap.model.get_text_features(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"])


def test_musicgen_text_encoder_and_generation_take_a_5000_word_scene(musicgen):
    model, processor = musicgen
    tok = processor.tokenizer
    assert tok.model_max_length == 512
    enc = tok([LONG_SCENE], truncation=True, return_tensors="pt")
    assert enc["input_ids"].shape == (1, 512)
    with torch.inference_mode():
        states = model.text_encoder(**enc).last_hidden_state
    assert states.shape == (1, 512, 64) and torch.isfinite(states).all()
    wav = generate_batch(model, processor, [LONG_SCENE, "calm piano"], seed=0, duration_s=0.2)
    assert wav.shape == (2, 1, 6400) and np.isfinite(wav).all()
    # with an audio prompt the processor gets the text and the audio: only the text is cut
    prompt = np.zeros((1, 32_000), np.float32)
    wav = generate_batch(model, processor, [LONG_SCENE], seed=0, duration_s=0.2, audio_prompt=prompt)
    assert wav.shape == (1, 1, 6400) and np.isfinite(wav).all()


def test_tiny_limits_come_from_the_model_configs_and_survive_saving(cache, clap, musicgen):
    """The tiny tokenizers' model_max_length is text_position_limit of their text tower, written with the model
    folder and read back by the loader."""
    assert clap.processor.tokenizer.model_max_length == models.text_position_limit(clap.model.config.text_config)
    model, processor = musicgen
    assert processor.tokenizer.model_max_length == models.text_position_limit(model.config.text_encoder) == 512
    _, melody_tok = models.load_musicgen("tiny-musicgen-melody", cache_dir=cache)
    assert melody_tok.model_max_length == 512
    _, built = models.build_tiny_clap(seed=1234)
    assert built.tokenizer.model_max_length == 512


@pytest.mark.parametrize("model_id", ["laion/larger_clap_music_and_speech", "google-t5/t5-base",
                                      "facebook/musicgen-small"])
def test_fullsize_limits_are_read_from_the_same_place(model_id):
    """The published tokenizer limit (what the full-size mirror writes) is what text_position_limit reads from
    the published config, the function the tiny builders use; the mirror's stand-in tokenizer carries it."""
    cfg = fs.build_config(model_id)
    text_cfg = getattr(cfg, "text_config", None) or getattr(cfg, "text_encoder", None) or cfg
    published = fs.published(model_id)["tokenizer"]["model_max_length"]
    assert models.text_position_limit(text_cfg) == published == 512
    if model_id == "laion/larger_clap_music_and_speech":
        tok = fs.standin_tokenizer(model_id)
        assert tok.model_max_length == 512 and models.text_token_limit(tok, text_cfg) == 512


def test_text_position_limit_by_kind():
    import transformers as tf

    assert models.text_position_limit(tf.ClapTextConfig(max_position_embeddings=130, pad_token_id=1)) == 128
    assert models.text_position_limit(tf.T5Config(n_positions=256)) == 256
    assert models.text_position_limit(tf.BertConfig(max_position_embeddings=300)) == 300

    class NoLimit:
        model_max_length = int(1e30)

    assert models.text_token_limit(NoLimit()) is None
    assert models.text_token_limit(NoLimit(), tf.ClapTextConfig()) == 512
