"""Open instruction-tuned language models (causal LMs) through transformers, for the local cue planner.

Written for small chat models that fit one GPU beside MusicGen, e.g. ``Qwen/Qwen2.5-1.5B-Instruct``,
``Qwen/Qwen2.5-7B-Instruct``, ``meta-llama/Llama-3.2-3B-Instruct`` and ``microsoft/Phi-3.5-mini-instruct``: any
folder or hub id that ``AutoModelForCausalLM`` and ``AutoTokenizer`` load works. The tiny name ``tiny-instruct``
builds a random Qwen2-shaped model from a config (tests, the demo), saved and loaded back through the same path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ModelNotFoundError
from .hub import _hub_error, resolve_model
from .tiny import quiet_transformers

__all__ = ["load_instruct", "max_input_tokens"]


def load_instruct(ref: str | os.PathLike, *, cache_dir: str | os.PathLike, device: str = "cpu", dtype: Any = None,
                  seed: int = 1234):
    """Load ``(model, tokenizer)`` for a causal LM reference (hub id, folder or ``tiny-instruct``).

    Raises :class:`~echoscript_utils.errors.ModelNotFoundError` with one line when it cannot be loaded.
    """
    import torch
    import transformers as tf

    path = resolve_model(ref, cache_dir=cache_dir, seed=seed)
    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = dtype if isinstance(dtype, torch.dtype) or dtype == "auto" else getattr(torch, str(dtype))
    try:
        with quiet_transformers():
            config = tf.AutoConfig.from_pretrained(path)
            if not any(a.endswith("ForCausalLM") for a in (getattr(config, "architectures", None) or [])):
                raise ModelNotFoundError(f"{path}: model type {config.model_type!r} is not a causal language model; "
                                         f"pass an instruction model such as Qwen/Qwen2.5-1.5B-Instruct")
            tokenizer = tf.AutoTokenizer.from_pretrained(path)
            model = tf.AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as exc:
        if Path(path).is_dir():
            raise ModelNotFoundError(f"{path}: cannot load the model folder "
                                     f"({(str(exc).splitlines() or [''])[0][:200]})") from None
        raise _hub_error(str(path), exc) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model.to(device), tokenizer


def max_input_tokens(model, tokenizer) -> int:
    """The longest input the model takes: its position limit, or the tokenizer's, whichever is smaller."""
    limits = [getattr(model.config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None)]
    limits = [int(x) for x in limits if x and int(x) < 10**8]
    return min(limits) if limits else 2048
