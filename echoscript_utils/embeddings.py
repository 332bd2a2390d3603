"""Audio embeddings for FAD behind one interface, cached per file by content hash + embedder identity.

>>> emb = get_embedder("musicnn", cfg)                       # doctest: +SKIP
>>> rows = emb.embed(wav, sr)                                # [N_frames, D] float32
>>> table = embed_files(paths, emb, cache_dir=cfg.paths.cache)   # {path: [N_i, D]}

| name      | model                                              | rate   | one row per          | D (real)      |
|-----------|----------------------------------------------------|--------|----------------------|---------------|
| `vggish`  | :mod:`echoscript_utils.models.vggish` (torchvggish weights)| 16 kHz | 0.96 s example      | 128           |
| `panns`   | PANNs Cnn14 (AudioSet), ``embedding`` output        | 32 kHz | file (or window)     | 2048          |
| `clap`    | transformers ``ClapModel`` audio features           | 48 kHz | 10 s window          | 512           |
| `encodec` | the MusicGen codec's encoder latents (pre-quantiser)| 32 kHz | codec frame (20 ms)  | 128           |
| `musicnn` | :mod:`echoscript_utils.models.musicnn` (MTT), penultimate  | 16 kHz | 3 s patch            | 200           |

**Input normalisation, identical for reference and generated audio**: files are decoded with
:func:`echoscript_utils.audio.load` to float32 in [-1, 1] (integer PCM divided by full scale; arrays passed to
``embed`` as integers are scaled the same way), channels are averaged to mono, and the signal is resampled to
the embedder's rate. No loudness normalisation and no trimming. :attr:`Embedder.normalisation` states this in
words for tables and ``metrics.json``.

**Comparable with published numbers.** VGGish, PANNs and CLAP follow the public tool whose FADs people quote
(:attr:`Embedder.reference`): the same resampler (resampy ``kaiser_best``, as torchvggish and
``frechet_audio_distance``), the same frontend and row convention, the same output layer.
:meth:`Embedder.reference_rows` runs that tool's own code (from its registry package) on a clip with our loaded
weights and :func:`measure_parity` reports how far the two are apart. soxr (``resampler="soxr"``) stays
available: it keeps the band that ``kaiser_best`` rolls off, but its numbers do not compare with published ones.
EnCodec latents and musicnn have no such tool; they are ours and resample with soxr.
"""

from __future__ import annotations

import abc
import functools
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .artifacts import ensure_dir, file_hash, read_cached, text_hash, write_cached
from .audio import RESAMPLERS, as_float, load, model_input, windows
from .config import resolve_device
from .errors import ConfigError, DependencyError, InputError
from .fad import frechet_distance
from .models import codec_identity, load_musicgen, model_sample_rate, musicnn, resolve_model, vggish
from .models.clap import ClapEmbedder
from .models.clap import audio_features as clap_audio_features
from .models.hub import resolve_checkpoint
from .models.panns import CHECKPOINT_SOURCE, load_cnn14

__all__ = ["EMBEDDERS", "Embedder", "as_float_audio", "embed_files", "embed_files_many", "get_embedder",
           "measure_parity", "store_embedding"]

#: Bump when the embedding code changes in a way that changes its output (invalidates caches).
_CACHE_VERSION = "v3"


#: Any PCM array → float32 in [-1, 1] (:func:`echoscript_utils.audio.as_float`).
as_float_audio = as_float


#: ``resampler="reference"``: each embedding resamples as the tool whose numbers it is compared with.
REFERENCE_RESAMPLER = "reference"


class Embedder(abc.ABC):
    """An audio embedding model with a fixed input rate.

    Attributes:
        name: short name (``"vggish"``, ...).
        sample_rate: the rate (Hz) audio is resampled to before the model.
        resampler: the :func:`echoscript_utils.audio.resample` method used to get there.
        identity: stable string naming the model, its weights and settings (part of cache keys).
        dim: embedding size D (after the first call or when known up front).
        frame: what one row covers, in words. reference: the implementation whose frontend this one follows
        (``"ours"`` where no public tool defines it). head: which output is taken (activation, PCA).
    """

    name: str = ""
    sample_rate: int = 16_000
    resampler: str = "soxr"
    reference_resampler: str = "soxr"
    identity: str = ""
    dim: int | None = None
    frame: str = "frame"  # what one row covers, in words
    window: str = ""  # window / hop of one row, in words
    reference: str = "ours"
    head: str = ""

    def _set_resampler(self, resampler: str) -> None:
        choice = self.reference_resampler if resampler == REFERENCE_RESAMPLER else resampler
        if choice not in ("soxr", *RESAMPLERS):
            raise ConfigError(f"unknown resampler {resampler!r} for {self.name}: use {REFERENCE_RESAMPLER!r} "
                              f"(as {self.reference}), soxr or one of {', '.join(RESAMPLERS)}")
        self.resampler = choice

    def mono(self, wav, sr: int) -> np.ndarray:
        """The model's input: float32 mono ``[T]`` at :attr:`sample_rate` (:func:`echoscript_utils.audio.model_input`
        with this embedding's resampler)."""
        return model_input(wav, sr, sr_out=self.sample_rate, method=self.resampler, what=f"{self.name} embedding")

    def embed(self, wav, sr: int) -> np.ndarray:
        """Embed one clip: ``wav`` ``[T]`` or ``[C, T]`` at ``sr`` Hz → ``[N, D]`` float32 rows (frame level).

        The input is normalised as the module docstring says (float, mono, resampled), then passed to the model.
        """
        rows = np.asarray(self._embed(self.mono(wav, sr)), dtype=np.float32)
        if rows.ndim == 1:
            rows = rows[None, :]
        return rows

    @abc.abstractmethod
    def _embed(self, wav: np.ndarray) -> np.ndarray:
        """Mono float32 ``[T]`` at :attr:`sample_rate` → ``[N, D]``."""

    def embed_many(self, clips: Sequence[tuple[np.ndarray, int]]) -> list[np.ndarray]:
        """Embed several clips ``(wav, sr)`` → one ``[N_i, D]`` float32 array each, equal to :meth:`embed` on each
        clip alone (up to float rounding). Embedders whose rows are independent of one another batch their
        forward passes across clips here; the default embeds clip by clip."""
        return [self.embed(wav, sr) for wav, sr in clips]

    #: Embedders of one class with equal non-``None`` keys share one forward pass per clip
    #: (:meth:`embed_shared`; e.g. two outputs of the same musicnn network).
    shared_forward: tuple | None = None

    @classmethod
    def embed_shared(cls, group: Sequence[Embedder], clips: Sequence[tuple[np.ndarray, int]]) -> list[list[np.ndarray]]:
        """Rows of every embedder of ``group`` (same :attr:`shared_forward`) for every clip: ``[embedder][clip]``."""
        return [e.embed_many(clips) for e in group]

    def reference_rows(self, wav, sr: int) -> np.ndarray | None:
        """The same clip through the reference implementation's own code (from its registry package) with this
        embedder's loaded weights, ``[N, D]``; ``None`` where ours is the reference.

        Raises:
            DependencyError: the reference package is not installed.
        """
        return None

    @property
    def normalisation(self) -> str:
        return (f"float32 in [-1, 1] (integer PCM / full scale), channels averaged to mono, resampled to "
                f"{self.sample_rate} Hz ({_RESAMPLER_WORDS.get(self.resampler, self.resampler)}), no loudness "
                f"normalisation; one row per {self.frame}")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "sample_rate": self.sample_rate, "resampler": self.resampler,
                "identity": self.identity, "dim": self.dim, "row": self.frame, "window": self.window,
                "reference": self.reference, "head": self.head, "normalisation": self.normalisation}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, sample_rate={self.sample_rate}, identity={self.identity!r})"


_RESAMPLER_WORDS = {"soxr": "soxr HQ", "soxr_hq": "soxr HQ", "soxr_vhq": "soxr VHQ",
                    "kaiser_best": "resampy kaiser_best", "kaiser_fast": "resampy kaiser_fast"}


def _rel_rows(ours: np.ndarray, ref: np.ndarray) -> float:
    """Largest per-row relative difference ``‖a − b‖₂ / ‖b‖₂`` (inf when the row counts differ)."""
    if ours.shape != ref.shape:
        return float("inf")
    num = np.linalg.norm(ours.astype(np.float64) - ref.astype(np.float64), axis=1)
    den = np.maximum(np.linalg.norm(ref.astype(np.float64), axis=1), 1e-30)
    return float((num / den).max(initial=0.0))


def measure_parity(embedder: Embedder, set_a: Sequence[tuple[np.ndarray, int]],
                   set_b: Sequence[tuple[np.ndarray, int]]) -> dict[str, Any]:
    """How far this embedder is from its reference implementation on two sets of clips ``(wav, sr)``.

    Returns:
        ``{"rows_max_rel", "fad_rel", "clips", "fad"}``: the largest per-row relative difference of the
        embeddings (:func:`_rel_rows`), and the relative difference of FAD(set_a, set_b) computed from ours and
        from the reference's rows; ``None`` values (and ``"note"``) where ours is the reference or the reference
        package is missing.
    """

    ours, refs = [], []
    try:
        for wav, sr in [*set_a, *set_b]:
            ref = embedder.reference_rows(wav, sr)
            if ref is None:
                return {"rows_max_rel": None, "fad_rel": None, "clips": 0, "fad": None,
                        "note": "ours is the reference"}
            refs.append(np.asarray(ref, dtype=np.float32))
            ours.append(embedder.embed(wav, sr))
    except DependencyError as exc:
        return {"rows_max_rel": None, "fad_rel": None, "clips": 0, "fad": None, "note": f"not measured: {exc}"}
    rows = max(_rel_rows(o, r) for o, r in zip(ours, refs))
    n = len(set_a)
    fad_ours = frechet_distance(ours[:n], ours[n:])
    fad_ref = frechet_distance(refs[:n], refs[n:])
    fad_rel = abs(fad_ours - fad_ref) / max(abs(fad_ref), 1e-30)
    return {"rows_max_rel": rows, "fad_rel": float(fad_rel), "clips": len(ours), "fad": fad_ref, "note": ""}


@functools.lru_cache(maxsize=64)
def _weights_identity(path: str, size: int, mtime_ns: int) -> str:
    return file_hash(path)[:16]


def _file_identity(path: Path) -> str:
    st = path.stat()
    return _weights_identity(str(path.resolve()), st.st_size, st.st_mtime_ns)


# ------------------------------------------------------------------------------------------------- vggish
def _torchvggish():
    """``(waveform_to_examples, VGG, make_layers)`` from the registry's ``torchvggish`` (0.2 or GitHub master)."""
    try:
        from torchvggish import vggish_input
    except ImportError:
        raise DependencyError("torchvggish (the reference VGGish) is not installed; pip install "
                              "torchvggish==0.2, or the dev extra") from None
    try:
        from torchvggish.vggish import VGG, make_layers  # GitHub master (torch.hub)
    except ImportError:
        from torchvggish.torchvggish import VGG, make_layers  # PyPI 0.2
    return vggish_input.waveform_to_examples, VGG, make_layers


class VGGishEmbedder(Embedder):
    """VGGish (:mod:`echoscript_utils.models.vggish`): 16 kHz, one 128-d row per 0.96 s, raw last-layer output.

    Follows the path published FADs take (``frechet_audio_distance``): torchvggish's frontend, resampled to 16 kHz
    with resampy ``kaiser_best``, and the network without PCA and without the last ReLU.

    Args:
        weights: path or URL of the torchvggish weights, or ``"random"`` (tests only).
        cache_dir: downloads go to ``cache_dir/vggish/``.
        resampler: ``"reference"`` (resampy ``kaiser_best``, as torchvggish) or any
            :data:`echoscript_utils.audio.RESAMPLERS` / ``"soxr"`` (keeps the band above 7 kHz; not comparable
            with published VGGish FADs).
    """

    name, sample_rate, dim, frame = "vggish", 16_000, 128, "0.96 s example"
    reference_resampler = "kaiser_best"
    window = "0.96 s examples, hop 0.96 s (25 ms / 10 ms STFT)"
    reference = "torchvggish 0.2 vggish_input + VGG, as frechet_audio_distance runs it"

    def __init__(self, weights: str | None, *, cache_dir: str | os.PathLike, device: str = "cpu", seed: int = 0,
                 pca: str | None = None, resampler: str = REFERENCE_RESAMPLER):
        self._set_resampler(resampler)
        self.model = vggish.load_vggish(weights, cache_dir=cache_dir, pca=pca, device=device, seed=seed)
        self.pca = pca
        self.head = "PCA + 8-bit quantisation" if pca is not None else "last linear layer, no ReLU, no PCA"
        if str(weights) == "random":
            wid = f"random-{seed}"
        else:
            wid = _file_identity(resolve_checkpoint(weights, source=vggish.WEIGHTS_SOURCE, cache_dir=cache_dir,
                                                    what="weights"))
        self.identity = f"vggish:{wid}:pca={pca is not None}:rs={self.resampler}:{_CACHE_VERSION}"
        self._reference = None

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        return vggish.embed(wav, self.sample_rate, model=self.model, resampler=self.resampler)

    def reference_rows(self, wav, sr: int) -> np.ndarray:
        """torchvggish's ``waveform_to_examples`` (its resampy call included) and its ``VGG`` holding our weights,
        last ReLU dropped as ``frechet_audio_distance`` drops it."""
        import torch

        to_examples, vgg_class, make_layers = _torchvggish()
        if self._reference is None:
            try:
                net = vgg_class(make_layers())
            except TypeError:  # 0.2: VGG(features, postprocess)
                net = vgg_class(make_layers(), False)
            state = {k: v for k, v in self.model.state_dict().items() if k.startswith(("features.", "embeddings."))}
            net.load_state_dict(state)
            net.embeddings = torch.nn.Sequential(*list(net.embeddings.children())[:-1])
            self._reference = net.eval()
        if self.pca is not None:
            raise DependencyError("the PCA head's reference needs torchvggish's own download of its PCA file; "
                                  "parity is measured without PCA")
        x = as_float_audio(wav)
        x = x.mean(axis=0) if x.ndim == 2 else x
        with torch.no_grad():
            out = self._reference(to_examples(x, int(sr)))
        return out.float().numpy()


# ------------------------------------------------------------------------------------------------- panns
class PannsEmbedder(Embedder):
    """PANNs Cnn14 (AudioSet): 32 kHz, the 2048-d ``embedding`` output, one row per file by default.

    Follows ``frechet_audio_distance``: the whole clip, resampled to 32 kHz with resampy ``kaiser_best``, goes
    through ``panns_inference.models.Cnn14`` (which pools over time) and gives one row. ``window_s`` cuts the
    clip into windows of that length instead (one row each, the last zero-padded; more rows per clip but not
    what published PANNs FADs did). The checkpoint is loaded into ``Cnn14`` directly (never the package's
    ``AudioTagging`` wrapper, whose import downloads files). ``checkpoint="random"`` gives a random network
    (tests only).
    """

    name, sample_rate, dim = "panns", 32_000, 2048
    reference_resampler = "kaiser_best"
    reference = "panns_inference Cnn14 on the whole file, as frechet_audio_distance runs it"
    head = "embedding output (before fc_audioset), no PCA"

    def __init__(self, checkpoint: str | None, *, cache_dir: str | os.PathLike, device: str = "cpu",
                 window_s: float | None = None, seed: int = 0, resampler: str = REFERENCE_RESAMPLER):
        import torch

        self._set_resampler(resampler)
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
        self.window_samples = None if window_s is None else int(round(window_s * self.sample_rate))
        self.frame = "file" if window_s is None else f"{window_s:g} s window"
        self.window = ("whole file (32× time pooling inside Cnn14; 1024 / 320 STFT)" if window_s is None
                       else f"{window_s:g} s windows, no overlap, last zero-padded")
        self.identity = f"panns:cnn14:{wid}:win={window_s}:rs={self.resampler}:{_CACHE_VERSION}"

    def _forward(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(torch.from_numpy(batch).to(self.device))
        return out["embedding"].float().cpu().numpy()

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        if self.window_samples is None:
            return self._forward(wav[None, :])
        return self._forward(np.stack(windows(wav, self.window_samples)))

    def reference_rows(self, wav, sr: int) -> np.ndarray:
        """``frechet_audio_distance``'s PANNs path: mono float32, ``resampy.resample`` to 32 kHz, the whole
        clip through this ``Cnn14`` (``model(x, None)["embedding"]``)."""
        import resampy
        import torch

        x = as_float_audio(wav)
        x = x.mean(axis=0) if x.ndim == 2 else x
        if int(sr) != self.sample_rate:
            x = resampy.resample(x, int(sr), self.sample_rate)
        with torch.no_grad():
            out = self.model(torch.tensor(x).float().unsqueeze(0).to(self.device), None)
        return out["embedding"].float().cpu().numpy()


# ------------------------------------------------------------------------------------------------- clap
class ClapAudioEmbedder(Embedder):
    """CLAP audio embeddings (transformers ``ClapModel.get_audio_features`` after its ``ClapFeatureExtractor``):
    48 kHz (resampy ``kaiser_best``, as ``frechet_audio_distance`` resamples for CLAP), one L2-normalised row per
    10 s window (a tail under 2.5 s is dropped; a short last window is repeat-padded by the feature extractor)."""

    name, frame = "clap", "10 s window"
    batch_windows = 16  # 10 s windows per forward pass in embed_many
    reference_resampler = "kaiser_best"
    window = "10 s windows, no overlap, short last one repeat-padded"
    reference = "transformers ClapFeatureExtractor + ClapModel.get_audio_features"
    head = "audio projection, L2-normalised, no PCA"

    def __init__(self, model: str, *, cache_dir: str | os.PathLike, device: str = "cpu", seed: int = 1234,
                 resampler: str = REFERENCE_RESAMPLER):
        self._set_resampler(resampler)
        self.clap = ClapEmbedder(model, cache_dir=cache_dir, device=device, seed=seed)
        self.sample_rate = int(self.clap.sample_rate)
        self.identity = f"clap:{self.clap.identity}:rs={self.resampler}:{_CACHE_VERSION}"

    def _features(self, wins: list[np.ndarray], *, reference: bool = False) -> np.ndarray:
        """Unit embeddings of 10 s windows; ``reference`` featurises them with transformers' extractor itself
        rather than :func:`~echoscript_utils.models.clap.audio_features` (the same arithmetic, batched)."""
        import torch

        feats = clap_audio_features(self.clap.processor.feature_extractor, wins, batched=not reference)
        feats = {k: v.to(self.clap.device) for k, v in feats.items()}
        with torch.inference_mode():
            out = self.clap.model.get_audio_features(**feats)
        out = getattr(out, "pooler_output", out).float().cpu().numpy()
        self.dim = out.shape[1]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        return self._features(windows(wav, self.clap.window, pad=False))

    def embed_many(self, clips: Sequence[tuple[np.ndarray, int]]) -> list[np.ndarray]:
        """The 10 s windows of all ``clips`` go through the model :attr:`batch_windows` at a time (each window is
        featurised on its own by the feature extractor, so a window's row does not depend on its batch)."""
        wins = [windows(self.mono(wav, sr), self.clap.window, pad=False) for wav, sr in clips]
        flat = [w for ws in wins for w in ws]
        rows = np.concatenate([self._features(flat[i:i + self.batch_windows])
                               for i in range(0, len(flat), self.batch_windows)]) if flat else np.zeros((0, 0))
        bounds = np.cumsum([0, *(len(ws) for ws in wins)])
        return [np.asarray(rows[a:b], dtype=np.float32) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def reference_rows(self, wav, sr: int) -> np.ndarray:
        """transformers' own path, one 10 s segment at a time: ``resampy.resample`` to 48 kHz, then the
        feature extractor and ``get_audio_features`` on each segment alone, L2-normalised."""
        import resampy

        x = as_float_audio(wav)
        x = x.mean(axis=0) if x.ndim == 2 else x
        if int(sr) != self.sample_rate:
            x = resampy.resample(x, int(sr), self.sample_rate)
        return np.concatenate([self._features([w], reference=True) for w in windows(x, self.clap.window, pad=False)])

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
    window = "one codec frame per hop of the encoder (20 ms for the 32 kHz codec)"
    head = "encoder latents before the quantiser"

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
    window = "3 s patches, no overlap (log mel 96 bands, 512 / 256 STFT)"

    def __init__(self, model: str = "MTT_musicnn", *, layer: str = "penultimate", cache_dir=None,
                 device: str = "cpu"):
        if layer not in musicnn.LAYERS:
            raise InputError(f"musicnn layer {layer!r} is unknown; choose one of {', '.join(musicnn.LAYERS)}")
        self.model_name, self.layer, self.device = model, layer, device
        self.head = {"penultimate": "penultimate dense layer (200-d, after batch norm)",
                     "taggram": "tag probabilities"}.get(layer, f"{layer} of the front/mid end")
        self.cache_dir = str(Path(cache_dir) / "models") if cache_dir is not None else None
        self.dim = 200 if layer == "penultimate" else None
        folder = Path(musicnn.weights_dir(model))
        weights = sorted(p for p in folder.iterdir() if p.is_file())
        wid = text_hash([(p.name, _file_identity(p)) for p in weights])
        self.identity = f"musicnn:{model}:{layer}:{wid}:{_CACHE_VERSION}"
        self.shared_forward = ("musicnn", model, device, self.cache_dir)

    def _predict(self, wav: np.ndarray) -> dict[str, np.ndarray]:
        return musicnn.predict(wav, self.sample_rate, model=self.model_name, cache_dir=self.cache_dir,
                               device=self.device)

    def _embed(self, wav: np.ndarray) -> np.ndarray:
        out = np.asarray(self._predict(wav)[self.layer], dtype=np.float32)
        self.dim = out.shape[1]
        return out

    @classmethod
    def embed_shared(cls, group, clips):
        """One forward pass per clip gives every layer the ``group`` asks for (e.g. ``penultimate`` and
        ``taggram``): the same numbers as embedding with each alone."""
        first = group[0]
        outs = [first._predict(first.mono(wav, sr)) for wav, sr in clips]
        rows = [[np.asarray(o[e.layer], dtype=np.float32) for o in outs] for e in group]
        for e, r in zip(group, rows, strict=True):
            if r:
                e.dim = r[0].shape[1]
        return rows


#: Embedder classes by name.
EMBEDDERS: dict[str, type[Embedder]] = {"vggish": VGGishEmbedder, "panns": PannsEmbedder, "clap": ClapAudioEmbedder,
                                        "encodec": EncodecEmbedder, "musicnn": MusicnnEmbedder}


def _kwargs_from_config(name: str, cfg) -> dict[str, Any]:
    ev = cfg.evaluation
    common = {"cache_dir": cfg.paths.cache, "device": resolve_device(cfg.run.device)}
    if name in ("vggish", "panns", "clap"):  # the embeddings published FADs use; ours choose their own
        common["resampler"] = ev.resampler
    # weight downloads go to the models cache, where annotation's PANNs tagger keeps the same checkpoint
    if name == "vggish":
        return {**common, "cache_dir": cfg.paths.models, "weights": ev.vggish_weights, "seed": cfg.seed}
    if name == "panns":
        return {**common, "cache_dir": cfg.paths.models,
                "checkpoint": ev.panns_checkpoint or cfg.annotation.panns_checkpoint, "seed": cfg.seed,
                "window_s": ev.panns_window_s}
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


def _entry(folder: Path | None, sha: str, embedder: Embedder) -> Path | None:
    return folder / f"{text_hash(sha, embedder.identity, length=24)}.npy" if folder is not None else None


def store_embedding(cache_dir: str | os.PathLike, embedder: Embedder, file_sha256: str, rows: np.ndarray) -> Path:
    """Put rows computed elsewhere into the cache :func:`embed_files` reads, for the file whose bytes hash to
    ``file_sha256``: for work another stage already did with the same network on the same whole file (the
    annotation stage's musicnn pass gives the evaluation stage's musicnn rows). ``rows`` must equal what
    ``embedder.embed`` gives for that file."""
    folder = ensure_dir(Path(cache_dir) / "embeddings" / embedder.name)
    return write_cached(_entry(folder, file_sha256, embedder), np.asarray(rows, dtype=np.float32), fmt="npy")


def embed_files(paths: Sequence[str | os.PathLike], embedder: Embedder, *, cache_dir: str | os.PathLike | None,
                progress: bool = True, batch_size: int = 8) -> dict[str, np.ndarray]:
    """Embed audio files, one ``[N_i, D]`` array each, reusing cached results.

    Each file's embedding is stored as ``cache_dir/embeddings/<name>/<key>.npy`` with ``key`` = hash of the
    file's bytes and :attr:`Embedder.identity`, so a rerun (or the same clip in another folder) loads instead of
    recomputing, and new weights or settings never reuse stale rows. ``cache_dir=None`` disables the cache.
    ``batch_size`` files are decoded and embedded together (:meth:`Embedder.embed_many`).

    Returns:
        ``{str(path): rows}`` in the order of ``paths``.
    """
    return embed_files_many(paths, {embedder.name: embedder}, cache_dir=cache_dir, progress=progress,
                            batch_size=batch_size)[embedder.name]


def embed_files_many(paths: Sequence[str | os.PathLike], embedders: Mapping[str, Embedder], *,
                     cache_dir: str | os.PathLike | None, progress: bool = True,
                     batch_size: int = 8, num_workers: int = 1) -> dict[str, dict[str, np.ndarray]]:
    """Embed audio files with several embedders at once: each file is hashed and decoded once and shared
    between the embedders (each still resamples with its own reference resampler), forward passes are batched
    across ``batch_size`` files (:meth:`Embedder.embed_many`), embedders of one network share its forward pass
    (:attr:`Embedder.shared_forward`), and each ``(file, embedder)`` is cached as :func:`embed_files` says.

    Memory stays bounded by ``batch_size`` decoded files (per worker), whatever the number of files.
    ``num_workers`` > 1 embeds a batch of files at a time in forked processes of one thread each
    (:func:`~echoscript_utils.parallel.fork_map`); only for embedders on the CPU (a forked process cannot use its
    parent's GPU).

    Returns:
        ``{label: {str(path): rows}}`` for every ``label`` of ``embedders``, paths in the order given.
    """
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    paths = [Path(p) for p in paths]
    if num_workers > 1 and len(paths) > batch_size:
        from .parallel import fork_chunks

        parts = fork_chunks(lambda chunk: embed_files_many(chunk, embedders, cache_dir=cache_dir, progress=False,
                                                           batch_size=batch_size),
                            paths, num_workers=num_workers, most=batch_size, progress=progress,
                            desc=f"{'+'.join(e.name for e in embedders.values())} embeddings")
        return {k: {str(p): rows for part in parts for p, rows in part[k].items()} for k in embedders}
    folders = {k: ensure_dir(Path(cache_dir) / "embeddings" / e.name) if cache_dir is not None else None
               for k, e in embedders.items()}
    groups: dict[Any, list[str]] = {}
    for k, e in embedders.items():
        groups.setdefault((type(e), e.shared_forward) if e.shared_forward is not None else k, []).append(k)
    out: dict[str, dict[str, np.ndarray]] = {k: {} for k in embedders}
    desc = f"{'+'.join(e.name for e in embedders.values())} embeddings"
    bar = tqdm(total=len(paths), desc=desc, disable=not progress, leave=False)
    for i in range(0, len(paths), batch_size):
        chunk = paths[i:i + batch_size]
        entries: dict[str, list[Path | None]] = {k: [] for k in embedders}
        missing: dict[str, list[int]] = {k: [] for k in embedders}
        for j, p in enumerate(chunk):
            if not p.is_file():
                raise InputError(f"{p}: no such audio file")
            sha = file_hash(p)
            for k, e in embedders.items():
                entry = _entry(folders[k], sha, e)
                entries[k].append(entry)
                rows = read_cached(entry, fmt="npy") if entry is not None else None
                if rows is None:
                    missing[k].append(j)
                else:
                    out[k][str(p)] = rows
        decoded: dict[int, tuple[np.ndarray, int]] = {}
        for keys in groups.values():
            todo = sorted({j for k in keys for j in missing[k]})
            if not todo:
                continue
            for j in todo:
                if j not in decoded:
                    decoded[j] = load(chunk[j])
            group = [embedders[k] for k in keys]
            rows = type(group[0]).embed_shared(group, [decoded[j] for j in todo])
            for k, per_clip in zip(keys, rows, strict=True):
                for j, r in zip(todo, per_clip, strict=True):
                    if entries[k][j] is not None and j in missing[k]:
                        write_cached(entries[k][j], r, fmt="npy")
                    out[k][str(chunk[j])] = r
        decoded.clear()
        bar.update(len(chunk))
    bar.close()
    return {k: {str(p): v[str(p)] for p in paths} for k, v in out.items()}
