"""Audio embeddings for FAD behind one interface, cached per file by content hash + embedder identity.

>>> emb = get_embedder("musicnn", cfg)                       # doctest: +SKIP
>>> rows = emb.embed(wav, sr)                                # [N_frames, D] float32
>>> table = embed_files(paths, emb, cache_dir=cfg.paths.cache)   # {path: [N_i, D]}

| name      | model                                              | rate   | one row per          | D (real)      |
|-----------|----------------------------------------------------|--------|----------------------|---------------|
| `vggish`  | :mod:`echoscript_utils.models.vggish` (torchvggish weights)| 16 kHz | 0.96 s example      | 128           |
| `panns`   | PANNs Cnn14 (AudioSet), ``embedding`` output        | 32 kHz | 10 s window          | 2048          |
| `clap`    | transformers ``ClapModel`` audio features           | 48 kHz | 10 s window          | 512           |
| `encodec` | the MusicGen codec's encoder latents (pre-quantiser)| 32 kHz | codec frame (20 ms)  | 128           |
| `musicnn` | :mod:`echoscript_utils.models.musicnn` (MTT), penultimate  | 16 kHz | 3 s patch            | 200           |

**Input normalisation, identical for reference and generated audio**: files are decoded with
:func:`echoscript_utils.audio.load` to float32 in [-1, 1] (integer PCM divided by full scale; arrays passed to
``embed`` as integers are scaled the same way), channels are averaged to mono, and the signal is resampled with
soxr to the embedder's rate. No loudness normalisation and no trimming. :attr:`Embedder.normalisation` states this
in words for tables and ``metrics.json``.
"""

from __future__ import annotations

import abc
import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import atomic_path, ensure_dir, file_hash, text_hash
from .audio import load, resample, windows
from .config import resolve_device
from .errors import ConfigError, DependencyError, InputError
from .models import codec_identity, load_musicgen, model_sample_rate, musicnn, resolve_model, vggish
from .models.clap import ClapEmbedder
from .models.hub import resolve_checkpoint
from .models.panns import CHECKPOINT_SOURCE, load_cnn14

__all__ = ["EMBEDDERS", "Embedder", "as_float_audio", "embed_files", "get_embedder"]

#: Bump when the embedding code changes in a way that changes its output (invalidates caches).
_CACHE_VERSION = "v2"


def as_float_audio(wav) -> np.ndarray:
    """Any PCM array → float32 in [-1, 1]: integers are divided by their full scale, floats pass unchanged."""
    x = np.asarray(wav)
    if np.issubdtype(x.dtype, np.unsignedinteger):
        half = float(np.iinfo(x.dtype).max + 1) / 2.0
        return ((x.astype(np.float64) - half) / half).astype(np.float32)
    if np.issubdtype(x.dtype, np.integer):
        return (x.astype(np.float64) / float(-np.iinfo(x.dtype).min)).astype(np.float32)
    return x.astype(np.float32, copy=False)


class Embedder(abc.ABC):
    """An audio embedding model with a fixed input rate.

    Attributes:
        name: short name (``"vggish"``, ...).
        sample_rate: the rate (Hz) audio is resampled to before the model.
        identity: stable string naming the model, its weights and settings (part of cache keys).
        dim: embedding size D (after the first call or when known up front).
    """

    name: str = ""
    sample_rate: int = 16_000
    identity: str = ""
    dim: int | None = None
    frame: str = "frame"  # what one row covers, in words

    def embed(self, wav, sr: int) -> np.ndarray:
        """Embed one clip: ``wav`` ``[T]`` or ``[C, T]`` at ``sr`` Hz → ``[N, D]`` float32 rows (frame level).

        The input is normalised as the module docstring says (float, mono, resampled), then passed to the model.
        """

        x = as_float_audio(wav)
        if x.ndim == 2:
            x = x.mean(axis=0)
        elif x.ndim != 1:
            raise InputError(f"audio must be [T] or [C, T], got shape {x.shape}")
        if int(sr) != self.sample_rate:
            x = resample(x[None, :], int(sr), self.sample_rate)[0]
        if x.size == 0:
            raise InputError("empty audio (0 samples)")
        rows = np.asarray(self._embed(np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float32)
        if rows.ndim == 1:
            rows = rows[None, :]
        return rows

    @abc.abstractmethod
    def _embed(self, wav: np.ndarray) -> np.ndarray:
        """Mono float32 ``[T]`` at :attr:`sample_rate` → ``[N, D]``."""

    @property
    def normalisation(self) -> str:
        return (f"float32 in [-1, 1] (integer PCM / full scale), channels averaged to mono, resampled to "
                f"{self.sample_rate} Hz (soxr HQ), no loudness normalisation; one row per {self.frame}")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sample_rate": self.sample_rate, "identity": self.identity, "dim": self.dim,
                "row": self.frame, "normalisation": self.normalisation}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, sample_rate={self.sample_rate}, identity={self.identity!r})"


@functools.lru_cache(maxsize=64)
def _weights_identity(path: str, size: int, mtime_ns: int) -> str:
    return file_hash(path)[:16]


def _file_identity(path: Path) -> str:
    st = path.stat()
    return _weights_identity(str(path.resolve()), st.st_size, st.st_mtime_ns)


# ------------------------------------------------------------------------------------------------- vggish
class VGGishEmbedder(Embedder):
    """VGGish (:mod:`echoscript_utils.models.vggish`): 16 kHz, one 128-d row per 0.96 s, raw last-layer output.

    Args:
        weights: path or URL of the torchvggish weights, or ``"random"`` (tests only).
        cache_dir: downloads go to ``cache_dir/vggish/``.
    """

    name, sample_rate, dim, frame = "vggish", 16_000, 128, "0.96 s example"

    def __init__(self, weights: str | None, *, cache_dir: str | os.PathLike, device: str = "cpu", seed: int = 0,
                 pca: str | None = None):

        self.model = vggish.load_vggish(weights, cache_dir=cache_dir, pca=pca, device=device, seed=seed)
        if str(weights) == "random":
            wid = f"random-{seed}"
        else:
            wid = _file_identity(resolve_checkpoint(weights, source=vggish.WEIGHTS_SOURCE, cache_dir=cache_dir, what="weights"))
        self.identity = f"vggish:{wid}:pca={pca is not None}:{_CACHE_VERSION}"

    def _embed(self, wav: np.ndarray) -> np.ndarray:

        return vggish.embed(wav, self.sample_rate, model=self.model)


# ------------------------------------------------------------------------------------------------- panns
class PannsEmbedder(Embedder):
    """PANNs Cnn14 (AudioSet): 32 kHz, one 2048-d ``embedding`` row per 10 s window.

    The checkpoint is loaded into ``Cnn14`` directly (never the package's ``AudioTagging`` wrapper, whose import
    downloads files). ``checkpoint="random"`` gives a random network (tests only).
    """

    name, sample_rate, dim, frame = "panns", 32_000, 2048, "10 s window"

    def __init__(self, checkpoint: str | None, *, cache_dir: str | os.PathLike, device: str = "cpu",
                 window_s: float = 10.0, seed: int = 0):
        import torch


        if checkpoint is None or str(checkpoint).strip() == "":
            raise DependencyError("PANNs embeddings need a Cnn14 checkpoint: set evaluation.panns_checkpoint to "
                                  "https://zenodo.org/record/3987831/files/Cnn14_mAP%3D0.431.pth or a local copy")
        if str(checkpoint) == "random":
            torch.manual_seed(seed)
            self.model, wid = load_cnn14(None, device=device), f"random-{seed}"
        else:
            path = resolve_checkpoint(checkpoint, source=CHECKPOINT_SOURCE, cache_dir=cache_dir)
            self.model, wid = load_cnn14(path, device=device), _file_identity(path)
        self.device = device
        self.window = int(round(window_s * self.sample_rate))
        self.identity = f"panns:cnn14:{wid}:win={window_s}:{_CACHE_VERSION}"

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        import torch

        batch = torch.from_numpy(np.stack(windows(wav, self.window))).to(self.device)
        with torch.inference_mode():
            out = self.model(batch)
        return out["embedding"].float().cpu().numpy()


# ------------------------------------------------------------------------------------------------- clap
class ClapAudioEmbedder(Embedder):
    """CLAP audio embeddings (transformers ``ClapModel.get_audio_features``): 48 kHz, one L2-normalised row per
    10 s window (windows shorter than the model's input are repeat-padded by its feature extractor)."""

    name, frame = "clap", "10 s window"

    def __init__(self, model: str, *, cache_dir: str | os.PathLike, device: str = "cpu", seed: int = 1234):

        self.clap = ClapEmbedder(model, cache_dir=cache_dir, device=device, seed=seed)
        self.sample_rate = int(self.clap.sample_rate)
        self.identity = f"clap:{self.clap.identity}:{_CACHE_VERSION}"

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        import torch

        wins = windows(wav, self.clap.window, pad=False)  # a short last window is repeat-padded below
        proc = self.clap.processor.feature_extractor
        feats = proc(wins, sampling_rate=self.sample_rate, return_tensors="pt", truncation="rand_trunc",
                     padding="repeatpad")
        feats = {k: v.to(self.clap.device) for k, v in feats.items()}
        with torch.inference_mode():
            out = self.clap.model.get_audio_features(**feats)
        out = getattr(out, "pooler_output", out).float().cpu().numpy()
        self.dim = out.shape[1]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Prompts → ``[N, D]`` L2-normalised CLAP text embeddings (same model)."""
        return self.clap.embed_text(list(texts))


# ------------------------------------------------------------------------------------------------- encodec
class EncodecEmbedder(Embedder):
    """The MusicGen codec's encoder latents (continuous, before the quantiser): one row per codec frame.

    ``model`` is any MusicGen id/folder/tiny name; its ``audio_encoder`` is used (32 kHz, 50 Hz frames, 128-d for
    the real checkpoints). Fine-tuning leaves the codec frozen, so baseline and fine-tuned share this embedding.
    """

    name, frame = "encodec", "codec frame"

    def __init__(self, model: str, *, cache_dir: str | os.PathLike, device: str = "cpu", seed: int = 1234,
                 max_s: float = 30.0):

        models_dir = Path(cache_dir) / "models"
        path = resolve_model(model, cache_dir=models_dir, seed=seed)
        mg, _ = load_musicgen(path, cache_dir=models_dir, device=device, seed=seed)
        self.codec = mg.audio_encoder
        self.device = device
        self.sample_rate = int(model_sample_rate(mg))
        self.chunk = int(round(max_s * self.sample_rate))
        self.identity = f"encodec:{codec_identity(mg)}:{_CACHE_VERSION}"
        del mg

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        import torch

        rows = []
        with torch.inference_mode():
            for i in range(0, wav.size, self.chunk):  # bounded memory on long files
                x = torch.from_numpy(wav[i:i + self.chunk])[None, None].to(self.device)
                lat = self.codec.encoder(x)  # [1, D, frames]
                rows.append(lat[0].T.float().cpu().numpy())
        out = np.concatenate(rows)
        self.dim = out.shape[1]
        return out


# ------------------------------------------------------------------------------------------------- musicnn
class MusicnnEmbedder(Embedder):
    """musicnn (:mod:`echoscript_utils.models.musicnn`, real MTT/MSD weights, offline): 16 kHz, one row per 3 s patch."""

    name, sample_rate, frame = "musicnn", 16_000, "3 s patch"

    def __init__(self, model: str = "MTT_musicnn", *, layer: str = "penultimate", cache_dir=None,
                 device: str = "cpu"):

        self.model_name, self.layer, self.device = model, layer, device
        self.cache_dir = str(Path(cache_dir) / "models") if cache_dir is not None else None
        self.dim = 200 if layer == "penultimate" else None
        folder = Path(musicnn.weights_dir(model))
        weights = sorted(p for p in folder.iterdir() if p.is_file())
        wid = text_hash([(p.name, _file_identity(p)) for p in weights])
        self.identity = f"musicnn:{model}:{layer}:{wid}:{_CACHE_VERSION}"

    def _embed(self, wav: np.ndarray) -> np.ndarray:

        out = musicnn.embed(wav, self.sample_rate, model=self.model_name, layer=self.layer, cache_dir=self.cache_dir,
                            device=self.device)
        self.dim = out.shape[1]
        return out


#: Embedder classes by name.
EMBEDDERS: dict[str, type[Embedder]] = {"vggish": VGGishEmbedder, "panns": PannsEmbedder, "clap": ClapAudioEmbedder,
                                        "encodec": EncodecEmbedder, "musicnn": MusicnnEmbedder}


def _kwargs_from_config(name: str, cfg) -> dict[str, Any]:

    ev = cfg.evaluation
    common = {"cache_dir": cfg.paths.cache, "device": resolve_device(cfg.run.device)}
    if name == "vggish":
        return {**common, "weights": ev.vggish_weights, "seed": cfg.seed}
    if name == "panns":
        return {**common, "checkpoint": ev.panns_checkpoint or cfg.annotation.panns_checkpoint, "seed": cfg.seed}
    if name == "clap":
        return {**common, "model": ev.clap_model or cfg.alignment.clap_model, "seed": cfg.seed}
    if name == "encodec":
        return {**common, "model": cfg.generation.baseline_model, "seed": cfg.seed}
    return {**common, "model": cfg.annotation.musicnn_model}


def get_embedder(name: str, cfg_or_kwargs: Any = None) -> Embedder:
    """Build the embedder ``name`` (``vggish``, ``panns``, ``clap``, ``encodec``, ``musicnn``).

    Args:
        name: one of :data:`EMBEDDERS`.
        cfg_or_kwargs: a :class:`~echoscript_utils.config.Config` (weights, models, cache and device come from
            ``cfg.evaluation`` and the run), or a dict of keyword arguments for the embedder class, e.g.
            ``{"weights": "random", "cache_dir": tmp}`` for VGGish in tests.

    Raises:
        ConfigError: unknown name. DependencyError: weights that are not configured or cannot be fetched.
    """
    key = str(name).strip().lower()
    if key not in EMBEDDERS:
        raise ConfigError(f"unknown embedding {name!r}: choose one of {', '.join(EMBEDDERS)}")
    if cfg_or_kwargs is None:
        kwargs: dict[str, Any] = {}
    elif isinstance(cfg_or_kwargs, Mapping):
        kwargs = dict(cfg_or_kwargs)
    else:
        kwargs = _kwargs_from_config(key, cfg_or_kwargs)
    if key in ("vggish", "panns", "clap", "encodec") and "cache_dir" not in kwargs:
        raise ConfigError(f"embedding {key!r} needs a cache_dir (where weights and tiny models are kept)")
    return EMBEDDERS[key](**kwargs)


def embed_files(paths: Sequence[str | os.PathLike], embedder: Embedder, *, cache_dir: str | os.PathLike | None,
                progress: bool = True) -> dict[str, np.ndarray]:
    """Embed audio files, one ``[N_i, D]`` array each, reusing cached results.

    Each file's embedding is stored as ``cache_dir/embeddings/<name>/<key>.npy`` with ``key`` = hash of the
    file's bytes and :attr:`Embedder.identity`, so a rerun (or the same clip in another folder) loads instead of
    recomputing, and new weights or settings never reuse stale rows. ``cache_dir=None`` disables the cache.

    Returns:
        ``{str(path): rows}`` in the order of ``paths``.
    """
    from tqdm.auto import tqdm


    folder = ensure_dir(Path(cache_dir) / "embeddings" / embedder.name) if cache_dir is not None else None
    out: dict[str, np.ndarray] = {}
    for p in tqdm(list(paths), desc=f"{embedder.name} embeddings", disable=not progress, leave=False):
        p = Path(p)
        if not p.is_file():
            raise InputError(f"{p}: no such audio file")
        cached = folder / f"{text_hash(file_hash(p), embedder.identity, length=24)}.npy" if folder else None
        if cached is not None and cached.is_file():
            out[str(p)] = np.load(cached)
            continue
        wav, sr = load(p)
        rows = embedder.embed(wav, sr)
        if cached is not None:
            with atomic_path(cached, suffix=".npy") as tmp:
                np.save(tmp, rows)
        out[str(p)] = rows
    return out
