"""Tiny MusicGen / MusicGen-Melody / CLAP built from transformers configs, for CPU tests and the demo.

Random weights, shapes small enough for a laptop, and a tokenizer trained offline on a text corpus shipped in
``echoscript_utils/data/tiny_vocab.txt``. :func:`echoscript_utils.models.hub.resolve_model` saves them as ordinary
transformers folders, so from then on they go through exactly the code path of the hub models.

The tiny MusicGen models keep the real ones' audio interface: 32 kHz mono EnCodec with a hop of 640 samples
(50 frames per second) and 4 codebooks, so durations, frame counts and sample rates are the same as for
``facebook/musicgen-small``; only the widths, depths and codebook size (64 instead of 2048) are small. The tiny
CLAP takes 48 kHz audio like the LAION checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import os
import string
from importlib import resources
from typing import Any

from ..artifacts import text_hash
from ..errors import InputError

#: Names that :func:`resolve_model` builds locally instead of downloading.
TINY_MODELS: tuple[str, ...] = ("tiny-musicgen", "tiny-musicgen-melody", "tiny-clap", "tiny-instruct")


#: Bump when the tiny architectures, their initialisation or their tokenizers change: new cache folders follow.
_TINY_SPEC_VERSION = 4  # 4: tokenizers carry their model's position limit (model_max_length)


# Tiny MusicGen shapes. The codec matches musicgen-small's interface (32 kHz, hop 8*5*4*4 = 640 → 50 Hz,
# 4 codebooks); bandwidth = 4 codebooks x 50 Hz x log2(64) bits = 1.2 kbit/s gives EnCodec its 4 quantizers.
_TINY_CODEC = dict(sampling_rate=32_000, audio_channels=1, upsampling_ratios=[8, 5, 4, 4], num_filters=4,
                   hidden_size=32, codebook_size=64, target_bandwidths=[1.2], num_lstm_layers=1, normalize=False,
                   use_causal_conv=False)


_TINY_T5 = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4, relative_attention_num_buckets=32,
                dropout_rate=0.1)


_TINY_DECODER = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128, num_codebooks=4,
                     max_position_embeddings=2048, dropout=0.1)


# Like facebook/musicgen-small's generation_config: sampling, CFG 3, 1500 tokens (30 s at 50 Hz).
_TINY_GENERATION = dict(do_sample=True, guidance_scale=3.0, max_length=1500)


# MusicGen-Melody: 12 chroma bins, 235 chroma frames (30 s at 32 kHz with hop 4096, as the real model).
_TINY_MELODY = dict(num_chroma=12, chroma_length=235)


# Tiny CLAP: HTSAT-like audio tower (10 s at 48 kHz → 1001 x 64 mel frames → 256 x 256 "image"), small text tower.
_TINY_CLAP_AUDIO = dict(spec_size=256, num_mel_bins=64, patch_size=4, patch_stride=(4, 4), window_size=8,
                        depths=[1, 1], num_attention_heads=[2, 4], patch_embeds_hidden_size=16, enable_fusion=False,
                        num_hidden_layers=2, mlp_ratio=2.0)


_TINY_CLAP_TEXT = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       max_position_embeddings=514, type_vocab_size=1)


_TINY_CLAP_PROJECTION = 32
_TINY_CLAP_SR = 48_000  # Hz, as the LAION checkpoints (models.clap.CLAP_SAMPLE_RATE)


# Characters every tiny tokenizer knows even if the corpus lacks them (printable ASCII + common accents/quotes).
_EXTRA_CHARS = "àáâäãåçèéêëìíîïñòóôöõùúûüýÿæœßÀÁÂÄÃÅÇÈÉÊËÌÍÎÏÑÒÓÔÖÕÙÚÛÜÝÆŒ–—‘’“”…°♩♪♯♭"


_T5_SPECIALS = ["<pad>", "</s>", "<unk>"]


_ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]


# Tiny instruction LM (the local cue planner's test model): Qwen2-shaped, ChatML chat template.
_TINY_INSTRUCT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, max_position_embeddings=1024, tie_word_embeddings=True)


_CHATML_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


_CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def is_tiny(name_or_path: str | os.PathLike) -> bool:
    """True for the names in :data:`TINY_MODELS`."""
    return str(name_or_path) in TINY_MODELS


def count_parameters(model) -> int:
    """Number of parameters (trainable or not) of a torch module."""
    return sum(p.numel() for p in model.parameters())


def _corpus_text() -> str:
    return resources.files("echoscript_utils").joinpath("data/tiny_vocab.txt").read_text(encoding="utf-8")


def _corpus_lines() -> list[str]:
    return [line.strip() for line in _corpus_text().splitlines() if line.strip() and not line.startswith("#")]


def tiny_spec(name: str, seed: int) -> dict[str, Any]:
    """Everything that determines a tiny model's folder: its name, the seed, the shapes and the corpus."""
    return {"name": name, "seed": int(seed), "version": _TINY_SPEC_VERSION, "corpus": text_hash(_corpus_text()),
            "codec": _TINY_CODEC, "t5": _TINY_T5, "decoder": _TINY_DECODER, "generation": _TINY_GENERATION,
            "melody": _TINY_MELODY, "clap_audio": _TINY_CLAP_AUDIO, "clap_text": _TINY_CLAP_TEXT,
            "clap_projection": _TINY_CLAP_PROJECTION, **({"instruct": _TINY_INSTRUCT} if name == "tiny-instruct" else {})}


def tiny_folder_name(name: str, seed: int) -> str:
    return f"{name}-{text_hash(tiny_spec(name, seed), length=12)}"


@contextlib.contextmanager
def _seeded(seed: int):
    """Run a block with torch's global RNG seeded, restoring the caller's RNG state afterwards."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def quiet_transformers():
    """Silence transformers' chatter (MusicGen's out-of-vocabulary pad id notice, weight-loading bars)."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


#: Text towers whose absolute positions start after the padding id (RoBERTa's layout; CLAP's text tower is one).
_PADDING_OFFSET_TYPES = ("clap_text_model", "roberta", "xlm-roberta", "camembert")


def text_position_limit(text_config) -> int | None:
    """Most tokens (special tokens included) a text tower of this configuration can take.

    RoBERTa-style towers (CLAP's text side) number positions from ``pad_token_id + 1``, so the limit is
    ``max_position_embeddings − pad_token_id − 1`` (514 − 1 − 1 = 512 for LAION CLAP and the tiny CLAP); a longer
    input indexes past the position table (``index 514 is out of bounds``). T5 (MusicGen's text encoder) has
    relative attention and no table: its ``n_positions`` (512) is the length the checkpoints were trained at.
    Other towers: ``max_position_embeddings``; ``None`` when the configuration names no limit.
    """
    model_type = getattr(text_config, "model_type", "")
    if model_type == "t5":
        return int(getattr(text_config, "n_positions", 512))
    n = getattr(text_config, "max_position_embeddings", None)
    if n is None:
        return None
    if model_type in _PADDING_OFFSET_TYPES:
        return int(n) - int(getattr(text_config, "pad_token_id", 1) or 0) - 1
    return int(n)


def text_token_limit(tokenizer, text_config=None) -> int | None:
    """The ``max_length`` to truncate text to for this tokenizer and text tower: the smaller of the tokenizer's
    ``model_max_length`` (when it names one) and :func:`text_position_limit` of ``text_config``; ``None`` when
    neither gives a limit. Pass it with ``truncation=True`` to every tokenizer call on free text (scene texts,
    prompts, captions), so a long scene is cut instead of overflowing the model."""
    limits = []
    n = getattr(tokenizer, "model_max_length", None)
    if n is not None and n < 1_000_000:  # transformers' "no limit" is 1e30
        limits.append(int(n))
    if text_config is not None and (m := text_position_limit(text_config)) is not None:
        limits.append(m)
    return min(limits) if limits else None


def build_tiny_tokenizer(*, kind: str = "t5", vocab_size: int | None = None):
    """Train a small tokenizer offline on the shipped text corpus; deterministic for a given corpus.

    Parameters
    ----------
    kind : ``"t5"`` → :class:`~transformers.T5Tokenizer` from a Unigram model (``<pad>`` 0, ``</s>`` 1,
        ``<unk>`` 2, no ``<extra_id_*>``), the text side of MusicGen; ``"roberta"`` →
        :class:`~transformers.RobertaTokenizer` from a byte-level BPE (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
        ``<unk>`` 3, ``<mask>`` 4), the text side of CLAP. Byte-level BPE never produces unknowns.
    vocab_size : target vocabulary size (upper bound; the corpus may yield fewer pieces).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    lines = _corpus_lines()
    alphabet = sorted(set(string.printable.strip()) | set(_EXTRA_CHARS))
    if kind == "t5":
        from transformers import T5Tokenizer

        tok = Tokenizer(models.Unigram())
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size or 600, special_tokens=_T5_SPECIALS,
                                          unk_token="<unk>", initial_alphabet=alphabet, max_piece_length=16,
                                          show_progress=False)
        # Make the ids the same on every build: the trainer's scores wobble in the last bits between runs, and
        # pieces it has to add back at the end get scores 1e-4 apart in hash order. Round the scores to 1e-3 and
        # sort ties by piece.
        tok.train_from_iterator([*lines, " ".join(alphabet)], trainer=trainer)
        trained = [(p, round(float(s), 3)) for p, s in json.loads(tok.to_str())["model"]["vocab"]]
        specials, rest = trained[: len(_T5_SPECIALS)], trained[len(_T5_SPECIALS):]
        rest.sort(key=lambda item: (-item[1], item[0]))
        return T5Tokenizer(vocab=specials + rest, extra_ids=0)
    if kind == "roberta":
        from transformers import RobertaTokenizer

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(vocab_size=vocab_size or 800, special_tokens=_ROBERTA_SPECIALS,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2,
                                      show_progress=False)
        tok.train_from_iterator(lines, trainer=trainer)
        bpe = json.loads(tok.to_str())["model"]
        merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in bpe["merges"]]
        return RobertaTokenizer(vocab=bpe["vocab"], merges=merges)
    raise ValueError(f"unknown tokenizer kind {kind!r}; use 't5' or 'roberta'")


def variance_preserving_init(module, *, seed: int, gain: float = 2.0 ** 0.5) -> None:
    """Re-initialise every (weight-normed) convolution and LSTM of ``module`` with fan-in scaled weights and zero
    biases.

    With transformers' default initialisation a random EnCodec is dominated by its biases: every input frame
    encodes to nearly the same latent and every token sequence decodes to nearly the same waveform, so a tiny
    model's generations would all sound alike. Fan-in scaling keeps the signal alive through the layers, so
    different audio gives different codes and different codes give different audio.
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in module.modules():
            if isinstance(mod, torch.nn.LSTM):
                for name, p in mod.named_parameters():
                    if "bias" in name:
                        p.zero_()
                    else:
                        p.normal_(0.0, p.shape[1] ** -0.5, generator=g)
                continue
            conv = getattr(mod, "conv", None)
            if not isinstance(conv, torch.nn.Conv1d | torch.nn.ConvTranspose1d):
                continue
            if conv.bias is not None:
                conv.bias.zero_()
            w_shape = conv.weight.shape
            if isinstance(conv, torch.nn.Conv1d):
                fan_in = w_shape[1] * w_shape[2]
            else:  # each output sample of a transposed conv sees kernel/stride taps of every input channel
                fan_in = w_shape[0] * w_shape[2] / conv.stride[0]
            std = gain / fan_in ** 0.5
            par = getattr(conv, "parametrizations", None)
            if par is not None and "weight" in par:  # weight norm: weight = g * v / ||v||
                v = par.weight.original1
                v.normal_(0.0, 1.0, generator=g)
                norm = torch.linalg.vector_norm(v, dim=tuple(range(1, v.dim())), keepdim=True)
                par.weight.original0.copy_(norm * std)
            else:
                conv.weight.normal_(0.0, std, generator=g)


def scale_decoder_output(codec, *, seed: int, target_rms: float = 0.1) -> None:
    """Centre and scale the codec's last convolution so that decoding random codes gives zero-mean audio of about
    ``target_rms``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    k, n = codec.quantizer.layers[0].codebook.embed.shape[0], len(codec.quantizer.layers)
    codes = torch.randint(0, k, (1, 1, n, 100), generator=g)
    with torch.no_grad():
        last = [m for m in codec.decoder.modules() if isinstance(getattr(m, "conv", None), torch.nn.Conv1d)][-1].conv
        y = codec.decode(codes, [None]).audio_values
        if last.bias is not None:  # remove the DC offset the ELUs leave behind
            last.bias.sub_(y.mean())
            y = y - y.mean()
        rms = float(y.pow(2).mean().sqrt())
        par = getattr(last, "parametrizations", None)
        target = par.weight.original0 if par is not None and "weight" in par else last.weight
        target.mul_(target_rms / max(rms, 1e-12))
        if last.bias is not None:
            last.bias.mul_(target_rms / max(rms, 1e-12))


def init_codebooks(codec, *, seed: int) -> None:
    """Give a random EnCodec usable codebooks (transformers initialises them to zeros, so every code is 0).

    Like EnCodec's k-means initialisation, each residual quantizer takes its entries from encoder frames of a
    deterministic signal (a few tones plus noise), and the next quantizer sees the remaining residual.
    """
    import torch

    sr = codec.config.sampling_rate
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(sr * 4, dtype=torch.float32) / sr
    tones = sum(a * torch.sin(2 * torch.pi * f * t) for f, a in ((110.0, 0.3), (220.0, 0.2), (329.6, 0.15),
                                                                  (523.3, 0.1), (880.0, 0.05)))
    signal = tones + 0.05 * torch.randn(t.shape, generator=g)
    with torch.no_grad():
        frames = codec.encoder(signal[None, None].repeat(1, codec.config.audio_channels, 1))[0].T  # [T, D]
        residual = frames.clone()
        for layer in codec.quantizer.layers:
            book = layer.codebook
            n = book.embed.shape[0]
            idx = torch.randperm(residual.shape[0], generator=g)[:n]
            entries = residual[idx]
            if entries.shape[0] < n:  # fewer frames than entries: pad with jittered copies
                extra = entries[torch.randint(entries.shape[0], (n - entries.shape[0],), generator=g)]
                entries = torch.cat([entries, extra * (1 + 0.1 * torch.randn(extra.shape, generator=g))])
            book.embed.copy_(entries)
            book.embed_avg.copy_(entries)
            book.cluster_size.fill_(1.0)
            residual = residual - book.embed[book.quantize(residual)]


def build_tiny_musicgen(*, seed: int = 1234, melody: bool = False):
    """Build a tiny random MusicGen (or MusicGen-Melody) with musicgen-small's audio interface.

    32 kHz mono EnCodec, hop 640 samples (50 Hz frames), 4 codebooks of 64 entries; T5 text encoder and
    decoder 64 wide x 2 layers; about 0.4 M parameters. Pad/BOS/decoder-start id = 64 (the codebook size) on the
    config and the generation config; generation defaults as musicgen-small (sampling, CFG 3, 1500 tokens). The
    tokenizer's ``model_max_length`` is 512, as t5-base's (:func:`text_position_limit`).

    Returns
    -------
    (model, processor) : ``MusicgenForConditionalGeneration`` + ``MusicgenProcessor``, or
        ``MusicgenMelodyForConditionalGeneration`` + its T5 tokenizer (chroma comes from
        :mod:`echoscript_utils.melody`). The model is in eval mode. The caller's torch RNG is left untouched.
    """
    import transformers as tf

    tokenizer = build_tiny_tokenizer(kind="t5")
    codebook = _TINY_CODEC["codebook_size"]
    special = dict(pad_token_id=codebook, bos_token_id=codebook, decoder_start_token_id=codebook)
    codec_cfg = tf.EncodecConfig(**_TINY_CODEC)
    text_cfg = tf.T5Config(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                           eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.pad_token_id,
                           **_TINY_T5)
    tokenizer.model_max_length = text_position_limit(text_cfg)  # 512, as t5-base's tokenizer
    with quiet_transformers():
        if melody:
            dec_cfg = tf.MusicgenMelodyDecoderConfig(vocab_size=codebook, **_TINY_DECODER, **special)
            cfg = tf.MusicgenMelodyConfig(text_encoder=text_cfg, audio_encoder=codec_cfg, decoder=dec_cfg,
                                          **_TINY_MELODY)
            model_cls = tf.MusicgenMelodyForConditionalGeneration
        else:
            dec_cfg = tf.MusicgenDecoderConfig(vocab_size=codebook, **_TINY_DECODER, **special)
            cfg = tf.MusicgenConfig(text_encoder=text_cfg, audio_encoder=codec_cfg, decoder=dec_cfg)
            model_cls = tf.MusicgenForConditionalGeneration
        for key, value in special.items():
            setattr(cfg, key, value)
        with _seeded(seed):
            model = model_cls(cfg)
            variance_preserving_init(model.audio_encoder.encoder, seed=seed + 1)
            variance_preserving_init(model.audio_encoder.decoder, seed=seed + 2)
            init_codebooks(model.audio_encoder, seed=seed)
            scale_decoder_output(model.audio_encoder, seed=seed)
        gen = model.generation_config
        for key, value in {**special, **_TINY_GENERATION}.items():
            setattr(gen, key, value)
    model.eval()
    if melody:
        return model, tokenizer
    feature_extractor = tf.EncodecFeatureExtractor(feature_size=1, sampling_rate=_TINY_CODEC["sampling_rate"],
                                                   padding_value=0.0)
    return model, tf.MusicgenProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def build_tiny_clap(*, seed: int = 1234):
    """Build a tiny random CLAP (HTSAT-style audio tower + RoBERTa-style text tower), 48 kHz audio input.

    Audio: 10 s windows (longer input is cut at a random offset, ``truncation="rand_trunc"``, shorter input is
    repeated), 64 mel bins, spec size 256, Swin depths (1, 1), width 16 → 32. Text: 32 wide x 2 layers over a
    byte-level BPE vocabulary, 512 tokens at most (the tokenizer's ``model_max_length``, from the position table:
    :func:`text_position_limit`). Joint projection 32-d.

    Returns
    -------
    (model, processor) : ``ClapModel`` (eval mode) + ``ClapProcessor``.
    """
    import transformers as tf

    tokenizer = build_tiny_tokenizer(kind="roberta")
    audio = dict(_TINY_CLAP_AUDIO)
    audio["hidden_size"] = audio["patch_embeds_hidden_size"] * 2 ** (len(audio["depths"]) - 1)
    with quiet_transformers():
        text_cfg = tf.ClapTextConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                     projection_dim=_TINY_CLAP_PROJECTION, **_TINY_CLAP_TEXT)
        tokenizer.model_max_length = text_position_limit(text_cfg)  # 512 = 514 positions − padding offset 2
        audio_cfg = tf.ClapAudioConfig(projection_dim=_TINY_CLAP_PROJECTION, **audio)
        cfg = tf.ClapConfig(text_config=text_cfg, audio_config=audio_cfg, projection_dim=_TINY_CLAP_PROJECTION)
        with _seeded(seed):
            model = tf.ClapModel(cfg)
            _spread_text_tower(model.text_model, seed=seed)
    model.eval()
    feature_extractor = tf.ClapFeatureExtractor(feature_size=audio["num_mel_bins"], sampling_rate=_TINY_CLAP_SR,
                                                hop_length=480, max_length_s=10, fft_window_size=1024,
                                                truncation="rand_trunc", padding="repeatpad")
    return model, tf.ClapProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def _spread_text_tower(text_model, *, seed: int, std: float = 0.4) -> None:
    """Re-draw the tiny CLAP text tower's matrices with a larger spread.

    At the default scale (0.02) a random two-layer text tower pools every caption to nearly the same vector
    (mean pairwise cosine ≈ 0.998 on unrelated captions), which is exactly the collapse the alignment stage's
    checkpoint gate refuses. At 0.4 the tiny model's text embeddings are spread out (≈ 0.7), like a usable
    checkpoint's, so the demo exercises the real code path instead of the refusal.
    """
    import torch

    g = torch.Generator().manual_seed(seed + 3)
    with torch.no_grad():
        for p in text_model.parameters():
            if p.dim() >= 2:
                p.normal_(0.0, std, generator=g)


def build_tiny(name: str, seed: int):
    if name == "tiny-musicgen":
        return build_tiny_musicgen(seed=seed)
    if name == "tiny-musicgen-melody":
        return build_tiny_musicgen(seed=seed, melody=True)
    if name == "tiny-clap":
        return build_tiny_clap(seed=seed)
    if name == "tiny-instruct":
        return build_tiny_instruct(seed=seed)
    raise InputError(f"{name}: not a tiny model; use one of {', '.join(TINY_MODELS)}")


def build_tiny_instruct(*, seed: int = 1234):
    """Build a tiny random instruction LM (Qwen2 architecture, ChatML chat template, byte-level BPE).

    It stands in for an open chat model (``Qwen/Qwen2.5-1.5B-Instruct`` and the like) in tests and the demo: the
    local planner loads it through ``AutoModelForCausalLM`` / ``AutoTokenizer`` exactly as a hub model. Its
    answers are random; the planner's schema-guided decoding still turns them into valid cue plans.

    Returns
    -------
    (model, tokenizer) : ``Qwen2ForCausalLM`` (eval mode) + ``PreTrainedTokenizerFast`` with ``chat_template``.
    """
    import transformers as tf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=_CHATML_SPECIALS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus_lines(), trainer=trainer)
    limit = _TINY_INSTRUCT["max_position_embeddings"]
    tokenizer = tf.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                           model_max_length=limit)
    tokenizer.chat_template = _CHATML_TEMPLATE
    with quiet_transformers():
        cfg = tf.Qwen2Config(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
                             architectures=["Qwen2ForCausalLM"], **_TINY_INSTRUCT)
        with _seeded(seed):
            model = tf.Qwen2ForCausalLM(cfg)
    model.eval()
    return model, tokenizer
