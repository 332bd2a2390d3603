"""musicnn in PyTorch: pretrained music taggers (MagnaTagATune, Million Song Dataset) and their embeddings.

The weights are the TensorFlow-1 checkpoints shipped inside the ``musicnn`` 0.1.0 wheel (Pons & Serra,
"musicnn: pre-trained convolutional neural networks for music audio tagging", ISMIR-LBD 2019; ISC license,
© Music Technology Group, Universitat Pompeu Fabra). Install the wheel without its dependencies — its metadata
pins TensorFlow and numpy<1.17, neither of which is needed here::

    pip install --no-deps musicnn==0.1.0

The package is never imported: its checkpoint files are read with :mod:`echoscript_utils.models.tfbundle`, converted to a
PyTorch state dict once and cached.

Pipeline (as the original ``musicnn.extractor``): mono audio at 16 kHz → librosa mel power (n_fft 512, hop 256,
96 Slaney mel bands, centred frames) rounded to float16 → ``log10(10000·x + 1)`` **computed in float32** (the
original evaluates it in float16, which overflows to ``inf`` on ordinary loud music) → patches of 187 frames
(3 s) → network → sigmoid. A taggram has one row per patch; clip-level tags are the mean over patches, as in
``musicnn.tagger``.

Network (``musicnn.models.build_musicnn``): input batch norm; front end of two timbral convolutions (7 frames ×
38 / 67 mel bands, 204 filters each) and three temporal ones (128 / 64 / 32 frames × 1 band, 51 filters each),
each conv → ReLU → batch norm → max over frequency; mid end of three 7-frame convolutions with 64 filters and
residual connections, densely concatenated with the front end (561 + 3·64 = 753 channels); back end of max- and
mean-pooling over time, batch norm, a 200-unit dense layer (ReLU, batch norm: the *penultimate* embedding) and the
50-unit output layer. All batch norms use TensorFlow's ε = 0.001.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from ..artifacts import atomic_path
from ..audio import resample, to_mono
from ..errors import DependencyError, InputError
from . import tfbundle

__all__ = [
    "HOP_LENGTH",
    "N_FFT",
    "N_FRAMES",
    "N_MELS",
    "SR",
    "LABELS",
    "LAYERS",
    "MODELS",
    "MusiCNN",
    "embed",
    "load_model",
    "log_mel",
    "patch",
    "predict",
    "predict_log_mel",
    "tags",
    "taxonomy_map",
    "weights_dir",
]

#: musicnn's signal processing: sample rate (Hz), FFT size and hop (samples), mel bands, patch length (frames, 3 s).
SR, N_FFT, HOP_LENGTH, N_MELS, N_FRAMES = 16000, 512, 256, 96, 187

_MTT_LABELS = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano", "ambient",
    "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals", "no vocals",
    "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man",
    "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello",
    "no voice", "weird", "country", "metal", "female voice", "choral",
)
_MSD_LABELS = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient",
    "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening",
    "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House",
    "happy",
)
#: Output tags of each model, in the order of the network's outputs.
LABELS: dict[str, tuple[str, ...]] = {"MTT_musicnn": _MTT_LABELS, "MSD_musicnn": _MSD_LABELS}
#: Models this port supports (folders of the musicnn wheel).
MODELS: tuple[str, ...] = tuple(LABELS)
#: Layers :func:`embed` can return, with their widths.
LAYERS: dict[str, int] = {"penultimate": 200, "mean_pool": 753, "max_pool": 753, "taggram": 50}

_INSTALL_HINT = "pip install --no-deps musicnn==0.1.0"
_CONVERTER_VERSION = "1"  # bump when the TF → PyTorch mapping changes, so stale caches are rebuilt
_BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization default
_F16_MAX = float(np.finfo(np.float16).max)


# ------------------------------------------------------------------------------------------------------- network
class _ConvBlock(nn.Module):
    """conv → ReLU → batch norm (musicnn's order)."""

    def __init__(self, conv: nn.Module, channels: int, bn: type[nn.Module]):
        super().__init__()
        self.conv = conv
        self.bn = bn(channels, eps=_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))

    def max_over_frequency(self, x: torch.Tensor) -> torch.Tensor:
        """``forward(x).amax(dim=3)`` for a 2-D block, computed on the conv's output ``[B, C, T, F]`` before the
        ReLU and batch norm: ``[B, C, T]``.

        In eval mode the batch norm is a per-channel affine map, so ReLU → batch norm is monotone in each channel:
        non-decreasing where the channel's scale ``γ/√(σ² + ε)`` is positive, non-increasing where it is negative.
        The maximum over frequency of the block's output is then the block applied to the conv output's maximum
        (positive scale) or minimum (negative scale) over frequency. The minimum is taken as the maximum of the
        conv with negated weights and bias, which is exactly the negated conv output, so the result equals the
        direct computation while the ReLU and the batch norm touch one value per frequency band instead of all
        of them. In training mode (batch statistics) the direct computation runs.
        """
        if self.training:
            return self.forward(x).amax(dim=3)
        bn = self.bn
        sign = torch.where(bn.weight * torch.rsqrt(bn.running_var + bn.eps) < 0, -1.0, 1.0).to(x.dtype)
        conv = self.conv
        z = F.conv2d(x, conv.weight * sign[:, None, None, None], conv.bias * sign, conv.stride, conv.padding,
                     conv.dilation, conv.groups)
        return F.batch_norm(F.relu(z.amax(dim=3) * sign[:, None]), bn.running_mean, bn.running_var, bn.weight,
                            bn.bias, training=False, eps=bn.eps)


class MusiCNN(nn.Module):
    """The musicnn network (``build_musicnn`` with the front end ``7774timbraltemporal``).

    Args:
        n_classes: output tags (50 for the shipped models).
        n_mels: mel bands of the input (96).
        midend_filters: filters of the mid-end convolutions (64; 512 for the unreleased ``MSD_musicnn_big``).
        backend_units: width of the penultimate dense layer (200; 500 for ``MSD_musicnn_big``).
    """

    def __init__(self, n_classes: int = 50, *, n_mels: int = N_MELS, midend_filters: int = 64,
                 backend_units: int = 200):
        super().__init__()
        timbral_filters, temporal_filters = int(1.6 * 128), int(1.6 * 32)  # 204, 51 as in the original
        self.input_bn = nn.BatchNorm2d(1, eps=_BN_EPS)
        self.timbral = nn.ModuleList(
            _ConvBlock(nn.Conv2d(1, timbral_filters, (7, int(frac * n_mels))), timbral_filters, nn.BatchNorm2d)
            for frac in (0.4, 0.7))
        self.temporal_kernels = (128, 64, 32)
        self.temporal = nn.ModuleList(
            _ConvBlock(nn.Conv2d(1, temporal_filters, (k, 1)), temporal_filters, nn.BatchNorm2d)
            for k in self.temporal_kernels)
        frontend_channels = 2 * timbral_filters + 3 * temporal_filters
        self.midend = nn.ModuleList(
            _ConvBlock(nn.Conv1d(c_in, midend_filters, 7), midend_filters, nn.BatchNorm1d)
            for c_in in (frontend_channels, midend_filters, midend_filters))
        self.pooled_channels = frontend_channels + 3 * midend_filters
        self.pool_bn = nn.BatchNorm1d(2 * self.pooled_channels, eps=_BN_EPS)
        self.dense = _ConvBlock(nn.Linear(2 * self.pooled_channels, backend_units), backend_units, nn.BatchNorm1d)
        self.classifier = nn.Linear(backend_units, n_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the network on log-mel patches.

        Args:
            x: ``[B, T, n_mels]`` float32 log-compressed mel patches (``T`` = 187 for the trained 3 s input; the
                architecture accepts any ``T`` ≥ 1).

        Returns:
            ``logits`` ``[B, n_classes]``, ``penultimate`` ``[B, 200]``, ``mean_pool`` and ``max_pool`` ``[B, 753]``.
        """
        x = self.input_bn(x.unsqueeze(1))  # [B, 1, T, F]
        feats = []
        x_time_pad = F.pad(x, (0, 0, 3, 3))  # 'same' in time only: the frequency axis is max-pooled away
        for block in self.timbral:
            feats.append(block.max_over_frequency(x_time_pad))  # [B, C, T]
        for k, block in zip(self.temporal_kernels, self.temporal, strict=True):
            before = (k - 1) // 2  # TensorFlow 'same' padding puts the odd sample after
            feats.append(block.max_over_frequency(F.pad(x, (0, 0, before, k - 1 - before))))
        front = torch.cat(feats, dim=1)  # [B, 561, T]
        mid1 = self.midend[0](F.pad(front, (3, 3)))
        mid2 = self.midend[1](F.pad(mid1, (3, 3))) + mid1
        mid3 = self.midend[2](F.pad(mid2, (3, 3))) + mid2
        z = torch.cat([front, mid1, mid2, mid3], dim=1)  # [B, 753, T]
        max_pool, mean_pool = z.amax(dim=2), z.mean(dim=2)
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # TF concat on a trailing axis: interleaved
        penultimate = self.dense(self.pool_bn(pooled))
        return {"logits": self.classifier(penultimate), "penultimate": penultimate, "mean_pool": mean_pool,
                "max_pool": max_pool}


# ------------------------------------------------------------------------------------------------------- weights
def weights_dir(name: str = "MTT_musicnn") -> Path:
    """Folder of the checkpoint ``name`` inside the installed musicnn wheel (located without importing it).

    Raises:
        InputError: unknown model name.
        DependencyError: the wheel (or the model folder) is absent; the message gives the pip command.
    """
    if name not in LABELS:
        raise InputError(f"musicnn model {name!r} is not supported; choose one of {', '.join(MODELS)}")
    try:
        spec = importlib.util.find_spec("musicnn")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        folder = Path(loc) / name
        if (folder / ".index").is_file():
            return folder
    where = f" (looked in {locations[0]})" if locations else ""
    raise DependencyError(f"musicnn weights {name} not found{where}; install them with `{_INSTALL_HINT}`")


def _default_cache_dir() -> Path:
    root = os.environ.get("ECHOSCRIPT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "echoscript")
    return Path(root)


def _tf_to_torch_names() -> list[tuple[str, str]]:
    """(TensorFlow layer name, PyTorch module prefix) in the original graph's creation order."""
    pairs = [("batch_normalization", "input_bn")]
    convs = [f"timbral.{i}" for i in range(2)] + [f"temporal.{i}" for i in range(3)] + [f"midend.{i}" for i in range(3)]
    for i, prefix in enumerate(convs):
        pairs += [("conv2d" if i == 0 else f"conv2d_{i}", f"{prefix}.conv"), (f"batch_normalization_{i + 1}",
                                                                             f"{prefix}.bn")]
    pairs += [("batch_normalization_9", "pool_bn"), ("dense", "dense.conv"), ("batch_normalization_10", "dense.bn"),
              ("dense_1", "classifier")]
    return pairs


def convert_checkpoint(tf_vars: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map musicnn's TensorFlow variables onto :class:`MusiCNN`'s state dict.

    Conv kernels go from TF ``[kh, kw, in, out]`` to PyTorch ``[out, in, kh, kw]`` (front end) or, for the mid
    end whose kernel spans the whole feature axis, ``[out, features, kh]``; dense kernels ``[in, out]`` are
    transposed; batch-norm ``gamma/beta/moving_mean/moving_variance`` become ``weight/bias/running_mean/running_var``.
    """
    state: dict[str, torch.Tensor] = {}
    used = set()
    for tf_name, prefix in _tf_to_torch_names():
        if tf_name.startswith("batch_normalization"):
            for tf_key, pt_key in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                                   ("moving_variance", "running_var")):
                state[f"{prefix}.{pt_key}"] = torch.from_numpy(np.array(tf_vars[f"{tf_name}/{tf_key}"], np.float32))
                used.add(f"{tf_name}/{tf_key}")
            state[f"{prefix}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
            continue
        kernel = np.asarray(tf_vars[f"{tf_name}/kernel"], np.float32)
        if kernel.ndim == 2:  # dense [in, out]
            weight = kernel.T
        elif prefix.startswith("midend"):  # [7, features, 1, out] → Conv1d [out, features, 7]
            weight = kernel[:, :, 0, :].transpose(2, 1, 0)
        else:  # [kh, kw, in, out] → Conv2d [out, in, kh, kw]
            weight = kernel.transpose(3, 2, 0, 1)
        state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(weight))
        state[f"{prefix}.bias"] = torch.from_numpy(np.array(tf_vars[f"{tf_name}/bias"], np.float32))
        used.update({f"{tf_name}/kernel", f"{tf_name}/bias"})
    unused = sorted(set(tf_vars) - used)
    if unused:
        raise ValueError(f"checkpoint variables left unmapped: {unused[:5]}")
    return state


def _state_dict(name: str, cache_dir: Path | None) -> dict[str, torch.Tensor]:

    folder = weights_dir(name)
    index = folder / ".index"
    data = folder / ".data-00000-of-00001"
    key = hashlib.sha256(index.read_bytes() + str(data.stat().st_size).encode() + _CONVERTER_VERSION.encode())
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / "musicnn" / f"{name}-{key.hexdigest()[:16]}.pt"
        if cache_file.is_file():
            try:
                return torch.load(cache_file, map_location="cpu", weights_only=True)
            except Exception:  # a corrupt cache entry is rebuilt below
                pass
    state = convert_checkpoint(tfbundle.read_bundle(folder))
    if cache_file is not None:
        try:
            with atomic_path(cache_file) as tmp:
                torch.save(state, tmp)
        except Exception:  # an unwritable cache only costs a re-conversion next time (~0.1 s)
            pass
    return state


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, cache_dir: str | None, device: str) -> MusiCNN:
    model = MusiCNN(len(LABELS[name]))
    model.load_state_dict(_state_dict(name, Path(cache_dir) if cache_dir else None), strict=True)
    return model.eval().to(device)


def load_model(name: str = "MTT_musicnn", *, cache_dir: str | os.PathLike | None = None,
               device: str | torch.device = "cpu") -> MusiCNN:
    """The pretrained network ``name`` in eval mode (memoised per process).

    Args:
        name: ``"MTT_musicnn"`` (50 MagnaTagATune tags) or ``"MSD_musicnn"`` (50 Million-Song-Dataset tags).
        cache_dir: where the converted state dict is kept (``<cache_dir>/musicnn/<name>-<hash>.pt``); ``None``
            uses ``$ECHOSCRIPT_CACHE`` or ``~/.cache/echoscript``.
        device: torch device for the model.

    Raises:
        DependencyError: the musicnn wheel is not installed (the message gives the pip command).
        InputError: unknown model name.
    """
    if name not in LABELS:
        raise InputError(f"musicnn model {name!r} is not supported; choose one of {', '.join(MODELS)}")
    cache = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    return _load_cached(name, str(cache), str(torch.device(device)))


# ----------------------------------------------------------------------------------------------------- front end
def log_mel(wav: np.ndarray, sr: int) -> np.ndarray:
    """musicnn's input representation of ``wav``.

    Args:
        wav: audio ``[T]`` or ``[C, T]`` (channels are averaged), any sample rate.
        sr: sample rate of ``wav`` in Hz (resampled to 16 kHz with soxr if different).

    Returns:
        ``[n_frames, 96]`` float32 ``log10(10000·mel + 1)`` with ``mel`` the librosa mel power rounded to float16
        (values above float16's maximum are clipped to it rather than becoming ``inf``); 62.5 frames per second.
    """
    import librosa

    x = np.asarray(wav, dtype=np.float32)
    if x.ndim not in (1, 2) or x.size == 0:
        raise InputError(f"musicnn expects audio of shape [T] or [C, T] with samples, got shape {x.shape}")
    if sr <= 0:
        raise InputError(f"musicnn: invalid sample rate {sr}")
    x = to_mono(x)[0] if x.ndim == 2 else x
    if sr != SR:
        x = resample(x, sr, SR)
    if not np.all(np.isfinite(x)):
        raise InputError("musicnn: the audio holds NaN or infinite samples")
    mel = librosa.feature.melspectrogram(y=x, sr=SR, n_fft=N_FFT, hop_length=HOP_LENGTH, n_mels=N_MELS).T
    mel16 = np.minimum(mel, _F16_MAX).astype(np.float16)
    return np.log10(10000.0 * mel16.astype(np.float32) + 1.0).astype(np.float32)


def _hop_frames(hop_s: float | None) -> int:
    if hop_s is None:
        return N_FRAMES
    if hop_s <= 0:
        raise InputError(f"musicnn: hop_s must be positive, got {hop_s}")
    # librosa.time_to_frames(hop_s, sr=16000, n_fft=512, hop_length=256), as musicnn's input_overlap
    return max(1, int(np.floor((hop_s * SR - N_FFT // 2) / HOP_LENGTH)))


def _starts(logmel: np.ndarray, hop_frames: int, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    t = logmel.shape[0]
    if t == 0:
        raise InputError("musicnn: the audio is too short for a single spectrogram frame")
    if t < n_frames:
        logmel = np.tile(logmel, (int(np.ceil(n_frames / t)), 1))[:n_frames]
        t = n_frames
    return logmel, np.arange(0, t - n_frames + 1, hop_frames)


def patch(logmel: np.ndarray, *, hop_frames: int = N_FRAMES, n_frames: int = N_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``[T, 96]`` into patches ``[N, n_frames, 96]`` starting every ``hop_frames`` frames.

    As musicnn, a trailing remainder shorter than a patch is dropped. Input shorter than one patch is
    repeat-padded to ``n_frames`` (the models' training recipe, ``pad_short: repeat-pad``) instead of failing.

    Returns:
        ``(patches, starts)`` with ``starts`` the first frame of each patch (``[N]`` int).
    """
    logmel, starts = _starts(np.asarray(logmel, dtype=np.float32), hop_frames, n_frames)
    idx = starts[:, None] + np.arange(n_frames)[None, :]
    return np.ascontiguousarray(logmel[idx]), starts


# ------------------------------------------------------------------------------------------------------ inference
def predict_log_mel(logmel: np.ndarray, *, model: str = "MTT_musicnn", hop_frames: int = N_FRAMES,
                    batch_size: int | None = None, cache_dir: str | os.PathLike | None = None,
                    device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """Run the network on a ready log-mel spectrogram (see :func:`log_mel`), patch by patch.

    Args:
        logmel: ``[T, 96]`` float32 from :func:`log_mel` (62.5 frames per second).
        model: ``"MTT_musicnn"`` or ``"MSD_musicnn"``.
        hop_frames: frames between patch starts (187 = non-overlapping 3 s patches, musicnn's default).
        batch_size: patches per forward pass; ``None`` = 1 on CPU (fastest there: the front end's feature maps
            stay in cache), 64 on an accelerator. Patches are cut per batch, so long audio with a small hop does
            not hold every patch in memory.
        cache_dir, device: see :func:`load_model`.

    Returns:
        ``taggram`` ``[N, 50]`` probabilities, ``penultimate`` ``[N, 200]``, ``mean_pool`` / ``max_pool``
        ``[N, 753]`` float32, ``start_s`` ``[N]`` patch start times in seconds.
    """
    net = load_model(model, cache_dir=cache_dir, device=device)
    dev = next(net.parameters()).device
    if batch_size is None:
        batch_size = 1 if dev.type == "cpu" else 64
    if batch_size < 1:
        raise InputError(f"musicnn: batch_size must be at least 1, got {batch_size}")
    logmel, starts = _starts(np.asarray(logmel, dtype=np.float32), int(hop_frames), N_FRAMES)
    window = np.arange(N_FRAMES)[None, :]
    outs: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for i in range(0, len(starts), batch_size):
            batch = np.ascontiguousarray(logmel[starts[i:i + batch_size, None] + window])
            res = net(torch.from_numpy(batch).to(dev))
            res["taggram"] = torch.sigmoid(res.pop("logits"))
            for k, v in res.items():
                outs.setdefault(k, []).append(v.float().cpu().numpy())
    out = {k: np.concatenate(v) for k, v in outs.items()}
    out["start_s"] = starts * HOP_LENGTH / SR
    return out


def predict(wav: np.ndarray, sr: int, *, model: str = "MTT_musicnn", hop_s: float | None = None,
            batch_size: int | None = None, cache_dir: str | os.PathLike | None = None,
            device: str | torch.device = "cpu") -> dict[str, np.ndarray]:
    """All outputs of musicnn for ``wav``, one row per 3 s patch.

    Args:
        wav: audio ``[T]`` or ``[C, T]`` at ``sr`` Hz (any rate and channel count).
        sr: sample rate in Hz.
        model: ``"MTT_musicnn"`` or ``"MSD_musicnn"``.
        hop_s: patch hop in seconds; ``None`` = non-overlapping 3 s patches (musicnn's default). Converted to
            frames as musicnn does (``librosa.time_to_frames``: 1.0 s → 61 frames).
        batch_size, cache_dir, device: see :func:`predict_log_mel`.

    Returns:
        See :func:`predict_log_mel`.
    """
    if model not in LABELS:
        raise InputError(f"musicnn model {model!r} is not supported; choose one of {', '.join(MODELS)}")
    return predict_log_mel(log_mel(wav, sr), model=model, hop_frames=_hop_frames(hop_s), batch_size=batch_size,
                           cache_dir=cache_dir, device=device)


def tags(wav: np.ndarray, sr: int, *, model: str = "MTT_musicnn", frames: bool = False, hop_s: float | None = None,
         batch_size: int | None = None, cache_dir: str | os.PathLike | None = None,
         device: str | torch.device = "cpu") -> pd.DataFrame:
    """Tag probabilities of ``wav``.

    Args:
        wav, sr, model, hop_s, batch_size, cache_dir, device: see :func:`predict`.
        frames: also return one row per (patch, tag).

    Returns:
        DataFrame with columns ``tag``, ``probability``, ``level`` (``"clip"`` or ``"frame"``), ``frame`` (patch
        index; ``<NA>`` on clip rows) and ``time_s`` (patch start in seconds; NaN on clip rows). The 50 clip rows
        come first, sorted by decreasing probability (clip probability = mean over patches, as musicnn's tagger);
        frame rows follow in patch order, tags in the model's order.
    """
    out = predict(wav, sr, model=model, hop_s=hop_s, batch_size=batch_size, cache_dir=cache_dir, device=device)
    taggram, labels = out["taggram"], LABELS[model]
    clip = pd.DataFrame({"tag": list(labels), "probability": taggram.mean(axis=0).astype(float), "level": "clip",
                         "frame": pd.array([pd.NA] * len(labels), dtype="Int64"), "time_s": np.nan})
    clip = clip.sort_values("probability", ascending=False, kind="stable").reset_index(drop=True)
    if not frames:
        return clip
    n = taggram.shape[0]
    per_frame = pd.DataFrame({
        "tag": np.tile(np.asarray(labels, dtype=object), n), "probability": taggram.reshape(-1).astype(float),
        "level": "frame", "frame": pd.array(np.repeat(np.arange(n), len(labels)), dtype="Int64"),
        "time_s": np.repeat(out["start_s"], len(labels))})
    return pd.concat([clip, per_frame], ignore_index=True)


def embed(wav: np.ndarray, sr: int, *, model: str = "MTT_musicnn", layer: str = "penultimate",
          hop_s: float | None = None, batch_size: int | None = None, cache_dir: str | os.PathLike | None = None,
          device: str | torch.device = "cpu") -> np.ndarray:
    """musicnn embedding of ``wav``, one row per 3 s patch.

    Args:
        wav, sr, model, hop_s, batch_size, cache_dir, device: see :func:`predict`.
        layer: ``"penultimate"`` (200-d, after batch norm; musicnn's ``penultimate`` feature), ``"mean_pool"`` or
            ``"max_pool"`` (753-d temporal pooling of the front/mid end) or ``"taggram"`` (50 probabilities).

    Returns:
        ``[N_patches, D]`` float32.
    """
    if layer not in LAYERS:
        raise InputError(f"musicnn layer {layer!r} is unknown; choose one of {', '.join(LAYERS)}")
    return predict(wav, sr, model=model, hop_s=hop_s, batch_size=batch_size, cache_dir=cache_dir,
                   device=device)[layer]


# ------------------------------------------------------------------------------------------------------ taxonomy
@functools.lru_cache(maxsize=1)
def _taxonomy_table() -> pd.DataFrame:
    path = Path(__file__).resolve().parent.parent / "data" / "musicnn_taxonomy.csv"
    return pd.read_csv(path, dtype={"model": str, "tag": str, "field": str, "label": str, "weight": float,
                                    "note": str}, keep_default_na=False)


def taxonomy_map(model: str | None = None) -> pd.DataFrame:
    """How musicnn tags map onto the workbook's taxonomy (:mod:`echoscript_utils.taxonomy`).

    The table is ``echoscript_utils/data/musicnn_taxonomy.csv``, laid out like the AudioSet mapping beside it.

    Args:
        model: ``"MTT_musicnn"`` / ``"MSD_musicnn"`` to keep that model's rows; ``None`` for all.

    Returns:
        One row per (tag, workbook label), columns ``model``, ``tag``, ``field`` (``genre``, ``moods`` or
        ``instruments``, the column names of the corpus labels), ``label`` (a value of GENRES / MOODS /
        INSTRUMENTS), ``weight`` (1.0 = the same concept, e.g. ``piano`` → piano; lower = a related one, e.g. MTT
        ``slow`` → mood ``calming`` at 0.5) and ``note``. Tags without a counterpart have no row; a tag may map
        to several labels.
    """
    table = _taxonomy_table()
    if model is not None:
        if model not in LABELS:
            raise InputError(f"musicnn model {model!r} is not supported; choose one of {', '.join(MODELS)}")
        table = table[table["model"] == model]
    return table.reset_index(drop=True).copy()
