"""The one resolver for every model the workbook loads: hub ids, local folders, adapter folders, tiny names and
checkpoint files or URLs, with one error type (:class:`~echoscript_utils.errors.ModelNotFoundError`) and the
identity hashes that cache keys use.

>>> path = resolve_model("tiny-musicgen", cache_dir="cache/models")      # doctest: +SKIP
>>> resolve_model("facebook/musicgen-small", cache_dir="cache/models")   # doctest: +SKIP
'facebook/musicgen-small'
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..artifacts import ensure_dir, file_hash, text_hash
from ..errors import ModelNotFoundError
from .tiny import TINY_MODELS, build_tiny, is_tiny, quiet_transformers, tiny_folder_name, tiny_spec

# ------------------------------------------------------------------------------------------- helpers


# ---------------------------------------------------------------------------------------- tokenizers


# ---------------------------------------------------------------------------------------- tiny builds


# -------------------------------------------------------------------------------------------- resolving
def _looks_like_path(s: str) -> bool:
    return (os.path.isabs(s) or s.startswith((".", "~")) or s.count("/") > 1 or os.sep != "/" and os.sep in s)


def resolve_model(name_or_path: str | os.PathLike, *, cache_dir: str | os.PathLike, seed: int = 1234) -> str:
    """Turn a model reference into something ``from_pretrained`` accepts.

    Parameters
    ----------
    name_or_path : a tiny name (:data:`TINY_MODELS`), a local folder (full model or peft LoRA adapter), or a
        Hugging Face Hub id such as ``facebook/musicgen-small``.
    cache_dir : where tiny models are saved, each in ``<cache_dir>/<name>-<hash>/`` (the hash covers the
        architecture, the seed and the tokenizer corpus). Built once, written atomically (temporary folder +
        rename), reused afterwards.
    seed : initialisation seed for tiny models.

    Returns
    -------
    The folder path (``str``) for tiny names and local folders, the id unchanged for hub ids.
    """
    ref = str(name_or_path)
    if not is_tiny(ref):
        if Path(ref).expanduser().is_dir():
            return str(Path(ref).expanduser())
        if _looks_like_path(ref):
            raise ModelNotFoundError(f"{ref}: model folder does not exist; pass an existing folder, a hub id or one of "
                             f"{', '.join(TINY_MODELS)}")
        return ref
    cache = ensure_dir(Path(cache_dir).expanduser())
    final = cache / tiny_folder_name(ref, seed)
    if (final / "config.json").is_file():
        return str(final)
    model, processor = build_tiny(ref, seed)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache))
    try:
        with quiet_transformers():
            model.save_pretrained(tmp)
            processor.save_pretrained(tmp)
        (tmp / "echoscript_tiny.json").write_text(json.dumps(tiny_spec(ref, seed), indent=2, sort_keys=True) + "\n",
                                                  encoding="utf-8")
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished first: keep its folder
            if not (final / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return str(final)


def _hub_error(ref: str, exc: BaseException) -> ModelNotFoundError:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return ModelNotFoundError(f"{ref}: could not load the model ({reason}); check the network connection and "
                           f"HF_HUB_OFFLINE, or pass a local model folder")


def _read_local_json(folder: str, name: str) -> dict | None:
    p = Path(folder) / name
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


def _model_type(ref: str) -> str:
    """``model_type`` of a local folder or hub id (hub access errors become DependencyError)."""
    local = _read_local_json(ref, "config.json") if Path(ref).is_dir() else None
    if local is not None:
        return str(local.get("model_type", ""))
    if Path(ref).is_dir():
        raise ModelNotFoundError(f"{ref}: no config.json or adapter_config.json here; pass a transformers model folder")
    from transformers import AutoConfig

    try:
        return str(AutoConfig.from_pretrained(ref).model_type)
    except (OSError, ValueError) as exc:
        raise _hub_error(ref, exc) from None


def _load_kwargs(model_type: str, dtype, attn_implementation) -> dict[str, Any]:
    """``from_pretrained`` options. The attention choice goes to the parts that have it: MusicGen's decoder
    (any implementation) and T5 text encoder (eager or SDPA; it has no FlashAttention); EnCodec has no attention
    and CLAP only an eager one, so they keep transformers' default."""
    import torch

    kwargs: dict[str, Any] = {}
    if dtype is not None:
        kwargs["dtype"] = dtype if isinstance(dtype, torch.dtype) or dtype == "auto" else getattr(torch, str(dtype))
    if attn_implementation is not None and model_type in ("musicgen", "musicgen_melody"):
        attn = {"decoder": attn_implementation}
        if attn_implementation in ("eager", "sdpa"):
            attn["text_encoder"] = attn_implementation
        kwargs["attn_implementation"] = attn
    return kwargs


def load_pretrained(ref: str, *, family: str, cache_dir, device, dtype, attn_implementation, seed, merge_lora):
    """Shared body of :func:`load_musicgen` and :func:`load_clap`."""
    path = resolve_model(ref, cache_dir=cache_dir, seed=seed)
    adapter = _read_local_json(path, "adapter_config.json") if Path(path).is_dir() else None
    if adapter is not None:
        base_ref = adapter.get("base_model_name_or_path")
        if not base_ref:
            raise ModelNotFoundError(f"{path}/adapter_config.json: no base_model_name_or_path; cannot find the base model")
        model, processor = load_pretrained(base_ref, family=family, cache_dir=cache_dir, device="cpu", dtype=dtype,
                                 attn_implementation=attn_implementation, seed=seed, merge_lora=merge_lora)
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path)
        if merge_lora:
            model = model.merge_and_unload()
        model.eval()
        with contextlib.suppress(OSError, ValueError, TypeError):
            processor = _load_processor(path, model_type=config_of(model).model_type)
        return model.to(device), processor

    model_type = _model_type(path)
    import transformers as tf

    classes = {"musicgen": tf.MusicgenForConditionalGeneration,
               "musicgen_melody": tf.MusicgenMelodyForConditionalGeneration, "clap": tf.ClapModel}
    allowed = ("musicgen", "musicgen_melody") if family == "musicgen" else ("clap",)
    if model_type not in allowed:
        raise ModelNotFoundError(f"{path}: model type {model_type!r} is not a {family} model; expected one of "
                         f"{', '.join(allowed)}")
    try:
        with quiet_transformers():
            model = classes[model_type].from_pretrained(path, **_load_kwargs(model_type, dtype, attn_implementation))
            processor = _load_processor(path, model_type=model_type)
    except (OSError, ValueError) as exc:
        if Path(path).is_dir():
            raise ModelNotFoundError(f"{path}: cannot load the model folder ({str(exc).splitlines()[0][:200]})") from None
        raise _hub_error(path, exc) from None
    if model_type in ("musicgen", "musicgen_melody"):
        _fill_decoder_start(model)
    model.eval()
    return model.to(device), processor


def _fill_decoder_start(model) -> None:
    """The hub's MusicGen configs leave the decoder start id to ``generation_config.json`` (2048), but
    transformers 5 reads it from ``config.decoder`` when a forward pass gets ``labels``: copy it there."""
    dec = model.config.decoder
    if getattr(dec, "decoder_start_token_id", None) is None:
        dec.decoder_start_token_id = model.generation_config.decoder_start_token_id


def _load_processor(path: str, *, model_type: str):
    import transformers as tf

    if model_type == "musicgen_melody":  # its feature extractor needs torchaudio: the tokenizer is the processor
        return tf.AutoTokenizer.from_pretrained(path)
    if model_type == "musicgen":
        return tf.MusicgenProcessor.from_pretrained(path)
    return tf.ClapProcessor.from_pretrained(path)


# ------------------------------------------------------------------------------------ codec helpers
def unwrap(model):
    """The transformers model inside DDP / peft wrappers (or the model itself)."""
    while hasattr(model, "module"):
        model = model.module
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def config_of(model):
    return unwrap(model).config


# --------------------------------------------------------------------------------------- identities
@lru_cache(maxsize=256)
def _cached_file_hash(path: str, size: int, mtime_ns: int) -> str:
    return file_hash(path)


_IDENTITY_FILES = ("config.json", "adapter_config.json", "generation_config.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def model_identity(path_or_id: str | os.PathLike, *, seed: int = 1234) -> str:
    """A stable string that changes when the model's weights or config change (for cache keys).

    Local folders: a hash over ``config.json`` / ``adapter_config.json`` / ``generation_config.json`` and every
    weights file (``*.safetensors``, ``*.bin``), file hashes memoised by size and mtime; an adapter folder adds its
    base model's identity. Tiny names: the name of
    their cache folder (``tiny-musicgen-<hash>``, fixed by architecture, seed and corpus). Hub ids: ``hub:<id>``.
    """
    ref = str(path_or_id)
    if is_tiny(ref):
        return tiny_folder_name(ref, seed)
    folder = Path(ref).expanduser()
    if not folder.is_dir():
        return f"hub:{ref}"
    parts = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and (p.name in _IDENTITY_FILES or p.suffix in _WEIGHT_SUFFIXES):
            st = p.stat()
            parts.append((p.name, _cached_file_hash(str(p.resolve()), st.st_size, st.st_mtime_ns)))
    if not parts:
        raise ModelNotFoundError(f"{folder}: no config or weights files; pass a transformers model folder")
    adapter = _read_local_json(str(folder), "adapter_config.json")
    base = adapter.get("base_model_name_or_path") if adapter else None
    if base and str(base) != str(folder):  # an adapter's identity includes its base model's
        parts.append(("base", model_identity(base, seed=seed)))
    return f"local:{text_hash(parts)}"


def _is_url(spec: str) -> bool:
    return urllib.parse.urlparse(spec).scheme in ("http", "https", "ftp")


@dataclass(frozen=True)
class CheckpointSource:
    """Where a family's weights file comes from and which setting names it (for the one-line errors)."""

    family: str  # cache sub-folder and the name used in messages ("PANNs", "VGGish")
    setting: str  # the parameter that points at the file, e.g. "annotation.panns_checkpoint"
    hint: str  # where to get the file, e.g. "Cnn14_mAP=0.431.pth from zenodo.org/record/3987831"
    default_name: str = "checkpoint.pth"
    known_hash: str | None = None  # the published hash of the default file ("sha256:…", "md5:…"), when there is one


#: torch.hub's convention: a weights file named ``<name>-<first hex digits of its sha256>.<ext>`` (torchvggish's
#: ``vggish-10086976.pth``). At least eight digits, so ``model-v1.pth`` or ``Cnn14_mAP=0.431.pth`` carry none.
_HASH_PREFIX = re.compile(r"-([0-9a-f]{8,64})\.")


def published_hash(name: str, source: CheckpointSource) -> tuple[str | None, str | None]:
    """``(known_hash for pooch, sha256 prefix)`` a download of the file ``name`` must match: the source's published
    hash for its default file, and the sha256 prefix a torch.hub-style file name carries (pooch compares whole
    hashes only, so the prefix is checked after the download, as ``torch.hub.download_url_to_file`` does)."""
    full = source.known_hash if name == source.default_name else None
    m = _HASH_PREFIX.search(name)
    return full, (m.group(1) if m else None)


def resolve_checkpoint(spec: str | os.PathLike | None, *, source: CheckpointSource, cache_dir: str | os.PathLike,
                       what: str = "checkpoint", timeout_s: float = 60.0, progress: bool = True) -> Path:
    """A checkpoint path or URL → a local file, downloading a URL once into ``cache_dir/<family>/``.

    The one resolver for weights files (PANNs, VGGish and their PCA parameters). A file already in the cache is
    used as is (never re-downloaded, whatever its size or hash: the full-size dry run puts random weights there).
    Downloads go through ``pooch.retrieve`` into a temporary folder beside the cache and are moved into place
    only when complete and when they match the published hash (:func:`published_hash`: the source's
    ``known_hash``, or the sha256 prefix in a torch.hub-style file name such as ``vggish-10086976.pth``).

    Raises:
        ModelNotFoundError: ``spec`` is empty, the file is missing, the download failed (e.g. offline) or does not
            match its published hash; the one-line message names the setting and where to put the file by hand.
    """
    label = f"{source.family} {what}"
    if spec is None or str(spec).strip() == "":
        raise ModelNotFoundError(f"{source.setting} is not set: give the path or URL of the {label} (e.g. "
                                 f"{source.hint})")
    spec = str(spec)
    if not _is_url(spec):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ModelNotFoundError(f"{path}: {label} not found; download {source.hint} and point "
                                     f"{source.setting} at it")
        return path
    name = urllib.parse.unquote(Path(urllib.parse.urlparse(spec).path).name) or source.default_name
    dest = Path(cache_dir) / source.family.lower() / name
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    known_hash, prefix = published_hash(name, source)
    try:
        _download(spec, dest, known_hash=known_hash, sha256_prefix=prefix, timeout_s=timeout_s, progress=progress)
    except (OSError, ValueError) as exc:  # requests' errors are OSErrors; pooch's hash mismatch a ValueError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelNotFoundError(f"could not download the {label} from {spec} ({reason}); download it by hand "
                                 f"to {dest} (or anywhere) and set {source.setting} to that path") from None
    return dest


def _download(url: str, dest: Path, *, known_hash: str | None, sha256_prefix: str | None, timeout_s: float,
              progress: bool) -> None:
    """``pooch.retrieve`` into a temporary folder beside ``dest``, hash-checked, then renamed into place."""
    import pooch

    ensure_dir(dest.parent)
    log = pooch.get_logger()
    level = log.level
    log.setLevel("WARNING")  # pooch logs every download and, without a known hash, advice for its own callers
    try:
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp:
            downloader = (pooch.HTTPDownloader(progressbar=progress, timeout=timeout_s)
                          if urllib.parse.urlparse(url).scheme in ("http", "https") else None)
            got = Path(pooch.retrieve(url, known_hash=known_hash, fname=dest.name, path=tmp, downloader=downloader,
                                      progressbar=progress))
            if got.stat().st_size == 0:
                raise OSError("empty download")
            if sha256_prefix:
                digest = pooch.file_hash(str(got), alg="sha256")
                if not digest.startswith(sha256_prefix):
                    raise ValueError(f"sha256 {digest[:len(sha256_prefix)]}… does not match the {sha256_prefix} "
                                     "its file name promises")
            os.replace(got, dest)
    finally:
        log.setLevel(level)


def sampling_attention(model=None, *, half: bool | None = None):
    """The attention kernels that autoregressive sampling may use, as a context manager.

    For half-precision attention on recent NVIDIA cards, torch's first choice of scaled-dot-product kernel is
    cuDNN's, which is slow whenever the key length is new (it appears to plan again), and sampling meets a new
    length at every step. A batch of 8 × 30 s of MusicGen-small with guidance took 122 s in bf16 against 29.5 s in
    float32 on one H200; on another, 24 s both in float32 and in bf16 with cuDNN's kernel left out
    (``benchmarks/results/gpu-2026-12-04.txt``). So sampling in float16 or bfloat16 (weights of that type, or
    ``half=True`` under autocast) uses the flash, memory-efficient or math kernels: the
    same attention, other kernels. Float32 sampling is left alone.
    """
    import torch

    if half is None:
        module = getattr(model, "decoder", None)
        module = model if module is None else module
        param = next(module.parameters(), None) if module is not None else None
        half = param is not None and param.dtype in (torch.float16, torch.bfloat16)
    if not half:
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])
