"""MusicGen and MusicGen-Melody: loading (tiny, local, LoRA adapter or hub id) and the frozen EnCodec codec.

>>> model, processor = load_musicgen("tiny-musicgen", cache_dir="cache/models")   # doctest: +SKIP
>>> model, processor = load_musicgen("facebook/musicgen-small", cache_dir="cache/models",
...                                  device="cuda", dtype="float16", attn_implementation="sdpa")  # doctest: +SKIP

Processors: MusicGen folders carry a :class:`~transformers.MusicgenProcessor` (EnCodec feature extractor + T5
tokenizer). MusicGen-Melody's own feature extractor needs torchaudio, which this project does not install, so
for the melody model the processor returned here is the *tokenizer*; the chroma that goes into
``input_features`` comes from :func:`echoscript_utils.melody.chroma_from_audio` or
:func:`~echoscript_utils.melody.chroma_from_midi`. In transformers 5.24 ``MusicgenProcessor(audio=...)`` raises a
TypeError (it passes ``pad_to_multiple_of`` to the EnCodec feature extractor); use
``processor.feature_extractor(...)`` or, for codec tokens, :func:`encode_audio`.
"""

from __future__ import annotations

import hashlib
import json
import os

from .hub import config_of, load_pretrained, unwrap


def load_musicgen(name_or_path: str | os.PathLike, *, cache_dir: str | os.PathLike, device: str = "cpu",
                  dtype=None, attn_implementation: str | None = None, seed: int = 1234, merge_lora: bool = True):
    """Load MusicGen or MusicGen-Melody (tiny name, local folder, LoRA adapter folder or hub id).

    Parameters
    ----------
    name_or_path : ``tiny-musicgen``, ``tiny-musicgen-melody``, a folder saved by ``save_pretrained`` (e.g. a
        run's ``04_finetuning/final/``), a peft adapter folder (``adapter_config.json``; its base model is
        loaded first, from the adapter's ``base_model_name_or_path``), or a hub id (``facebook/musicgen-small``,
        ``facebook/musicgen-melody``, ...).
    cache_dir : folder for tiny models (see :func:`resolve_model`); hub downloads use the usual HF cache.
    device : ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    dtype : ``None`` (the checkpoint's float32), a ``torch.dtype``, ``"float16"``, ``"bfloat16"`` or ``"auto"``.
    attn_implementation : ``None`` (transformers' default: SDPA where available), ``"eager"``, ``"sdpa"`` or
        ``"flash_attention_2"``; applied to the decoder (and to the T5 encoder for eager/SDPA), EnCodec unchanged.
    seed : initialisation seed of tiny models.
    merge_lora : for adapter folders, merge the adapter into the base weights (a plain transformers model);
        ``False`` returns the ``peft.PeftModel``.

    Returns
    -------
    (model, processor) : the model in eval mode on ``device``; the processor is a ``MusicgenProcessor`` for
        MusicGen and the T5 tokenizer for MusicGen-Melody (its chroma ``input_features`` ``[B, n_frames, 12]``
        come from :mod:`echoscript_utils.melody`).

    Raises
    ------
    DependencyError : a hub id that cannot be fetched (offline, unknown id).
    InputError : a missing local folder or one that holds no MusicGen model.
    """
    return load_pretrained(str(name_or_path), family="musicgen", cache_dir=cache_dir, device=device, dtype=dtype,
                 attn_implementation=attn_implementation, seed=seed, merge_lora=merge_lora)


def is_melody(model) -> bool:
    """True for MusicGen-Melody (chroma-conditioned), also inside DDP / peft wrappers: read from the config's
    ``model_type`` (``musicgen_melody``), which survives wrapping, subclassing and ``save_pretrained``."""
    return config_of(model).model_type == "musicgen_melody"


def model_sample_rate(model) -> int:
    """Audio sample rate (Hz) of a MusicGen model's codec: 32000 for all MusicGen checkpoints and the tiny ones."""
    return int(config_of(model).audio_encoder.sampling_rate)


def frame_rate(model) -> int:
    """Codec frames (decoder steps) per second of audio: 50 for MusicGen and the tiny models."""
    return int(config_of(model).audio_encoder.frame_rate)


def encode_audio(model, wav, *, padding_mask=None):
    """Encode audio into codec tokens with the model's frozen EnCodec (no gradients).

    Parameters
    ----------
    model : a MusicGen / MusicGen-Melody model (or a peft wrapper of one).
    wav : float ``[B, C, T]`` (torch or numpy) at :func:`model_sample_rate`. Mono models average stereo input;
        stereo models (``decoder.audio_channels == 2``) need ``C == 2``.
    padding_mask : optional ``[B, T]`` (1 = real sample), passed to EnCodec.

    Returns
    -------
    codes : ``torch.LongTensor [B, K, T_frames]`` on the model's device, ``K`` = decoder codebooks (4 for
        musicgen-small; stereo models interleave left/right as transformers does), ``T_frames ≈ T / hop``.
    """
    import torch

    m = unwrap(model)
    codec = m.audio_encoder
    param = next(codec.parameters())
    x = torch.as_tensor(wav).to(device=param.device, dtype=param.dtype)
    if x.ndim != 3:
        raise ValueError(f"wav must be [B, C, T], got shape {tuple(x.shape)}")
    stereo = m.config.decoder.audio_channels == 2
    with torch.no_grad():
        if not stereo:
            if x.shape[1] != codec.config.audio_channels:
                x = x.mean(dim=1, keepdim=True)
            return codec.encode(x, padding_mask=padding_mask).audio_codes[0]
        if x.shape[1] != 2:
            raise ValueError(f"stereo model needs 2-channel audio, got {x.shape[1]} channel(s)")
        left = codec.encode(x[:, :1], padding_mask=padding_mask).audio_codes[0]
        right = codec.encode(x[:, 1:], padding_mask=padding_mask).audio_codes[0]
        b, k, t = left.shape
        return torch.stack([left, right], dim=2).reshape(b, 2 * k, t)


def decode_codes(model, codes):
    """Decode codec tokens ``[B, K, T_frames]`` back to audio ``float [B, C, T]`` at :func:`model_sample_rate`
    (C = 1, or 2 for stereo models). No gradients."""
    import torch

    m = unwrap(model)
    codec = m.audio_encoder
    codes = torch.as_tensor(codes, device=next(codec.parameters()).device).long()
    with torch.no_grad():
        if m.config.decoder.audio_channels != 2:
            return codec.decode(codes[None], [None]).audio_values
        left = codec.decode(codes[None, :, ::2], [None]).audio_values
        right = codec.decode(codes[None, :, 1::2], [None]).audio_values
        return torch.cat([left, right], dim=1)


def codec_identity(model) -> str:
    """Hash of a MusicGen model's EnCodec (config + weights): codec-token caches stay valid across fine-tuning,
    which leaves the codec frozen, and are invalidated when the codec differs."""

    m = unwrap(model)
    h = hashlib.sha256(json.dumps(m.config.audio_encoder.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(m.audio_encoder.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
