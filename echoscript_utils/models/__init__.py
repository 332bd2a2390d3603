"""Every model the workbook loads, in one place: one resolver, tiny builders, identities.

| module | model | used by |
|---|---|---|
| :mod:`.hub` | the resolver (hub id / folder / adapter / tiny name / checkpoint URL), identities | all |
| :mod:`.tiny` | tiny MusicGen, MusicGen-Melody and CLAP built from configs; offline tokenizers; text length limits | tests, demo, all text |
| :mod:`.musicgen` | MusicGen / MusicGen-Melody loading, EnCodec encode / decode | fine-tuning, generation, FAD (EnCodec) |
| :mod:`.clap` | CLAP loading and :class:`~.clap.ClapEmbedder` | alignment, tagging, FAD, scoring |
| :mod:`.panns` | PANNs Cnn14 and the AudioSet label list | tagging, FAD |
| :mod:`.vggish` | VGGish (torchvggish layout) | FAD |
| :mod:`.musicnn` | musicnn ported to PyTorch (real pretrained weights, read by :mod:`.tfbundle`) | tagging, FAD |
| :mod:`.fullsize` | every hub checkpoint at its published size, random weights, in the hub's layouts | dry run |
"""

from .clap import CLAP_SAMPLE_RATE, ClapEmbedder, load_clap
from .hub import model_identity, resolve_checkpoint, resolve_model, sampling_attention
from .musicgen import (
    codec_identity,
    decode_codes,
    encode_audio,
    frame_rate,
    is_melody,
    load_musicgen,
    model_sample_rate,
)
from .tiny import (
    TINY_MODELS,
    build_tiny_clap,
    build_tiny_musicgen,
    build_tiny_tokenizer,
    count_parameters,
    is_tiny,
    text_position_limit,
    text_token_limit,
)

__all__ = [
    "CLAP_SAMPLE_RATE",
    "TINY_MODELS",
    "ClapEmbedder",
    "build_tiny_clap",
    "build_tiny_musicgen",
    "build_tiny_tokenizer",
    "codec_identity",
    "count_parameters",
    "decode_codes",
    "encode_audio",
    "frame_rate",
    "is_melody",
    "is_tiny",
    "load_clap",
    "load_musicgen",
    "model_identity",
    "model_sample_rate",
    "resolve_checkpoint",
    "resolve_model",
    "sampling_attention",
    "text_position_limit",
    "text_token_limit",
]
