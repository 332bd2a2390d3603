"""VGGish (Hershey et al., ICASSP 2017) in PyTorch: the embedding the original FAD and the EchoScript paper use.

The module layout (``features`` = VGG-style conv stack, ``embeddings`` = three fully connected layers, optional
PCA postprocessor) matches the public PyTorch port ``harritaylor/torchvggish``, so its converted weights load
unchanged::

    weights  https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth
    PCA      https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish_pca_params-970ea276.pth

Frontend (as in the AudioSet release): mono audio at 16 kHz → 25 ms periodic-Hann frames every 10 ms (no
centring), 512-point FFT magnitude → 64 HTK-mel bands from 125 to 7500 Hz (triangles built in the mel domain, DC
bin dropped) → ``log(mel + 0.01)`` → non-overlapping examples of 96 frames (0.96 s). One 128-d embedding per
example. Resampling to 16 kHz is resampy's ``kaiser_best``, as in the port (``vggish_input.waveform_to_examples``)
and in ``frechet_audio_distance``, so FADs compare with theirs; soxr is a named option (``resampler="soxr"``),
which keeps the 7.2–7.5 kHz band that ``kaiser_best`` rolls off. One difference from the port: audio shorter than
one example is zero-padded to one example instead of failing.

For FAD, the common setting (Kilgour et al.; the ``frechet_audio_distance`` and ``fadtk`` packages) is the raw
128-d output of the last linear layer — no final ReLU, no PCA/quantisation — which is our default.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from ..audio import resample
from ..errors import ModelNotFoundError
from .checkpoints import load_state_dict
from .hub import CheckpointSource, resolve_checkpoint

__all__ = [
    "EMBEDDING_SIZE",
    "PCA_URL",
    "SR",
    "WEIGHTS_URL",
    "VGGish",
    "embed",
    "load_vggish",
    "log_mel_examples",
    "mel_matrix",
]

#: Frontend constants of the AudioSet VGGish release.
SR = 16_000
WINDOW_S, HOP_S = 0.025, 0.010
N_MELS, MEL_MIN_HZ, MEL_MAX_HZ = 64, 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96  # 0.96 s examples, hop 0.96 s
EMBEDDING_SIZE = 128
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0

WEIGHTS_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
PCA_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish_pca_params-970ea276.pth"

_CONV_PLAN = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")


# ----------------------------------------------------------------------------------------------- frontend
def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """HTK mel scale."""
    return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix(*, n_fft_bins: int = 257, sr: int = SR, n_mels: int = N_MELS, fmin: float = MEL_MIN_HZ,
               fmax: float = MEL_MAX_HZ) -> np.ndarray:
    """Triangular mel weights ``[n_fft_bins, n_mels]`` (post-multiply a magnitude spectrogram ``[frames, bins]``).

    Band edges are evenly spaced on the HTK mel scale between ``fmin`` and ``fmax``; each triangle is evaluated
    in the mel domain; the DC bin gets no weight.
    """
    if not 0 <= fmin < fmax <= sr / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sr/2, got fmin={fmin}, fmax={fmax}, sr={sr}")
    bin_mel = _hz_to_mel(np.linspace(0.0, sr / 2, n_fft_bins))[:, None]
    edges = np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - lower) / (center - lower)
    falling = (upper - bin_mel) / (upper - center)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)
    weights[0, :] = 0.0
    return weights


def log_mel_examples(wav: np.ndarray, sr: int, *, resampler: str = "kaiser_best") -> np.ndarray:
    """Audio → VGGish input examples ``[N, 96, 64]`` float32 (log mel, 0.96 s each, no overlap).

    Args:
        wav: ``[T]`` or ``[C, T]`` float audio in [-1, 1] (channels are averaged).
        sr: its sample rate in Hz (resampled to 16 kHz).
        resampler: :func:`echoscript_utils.audio.resample` method (``kaiser_best`` as the port, or ``soxr``).
    """
    x = np.asarray(wav, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if sr != SR:
        x = resample(x, sr, SR, method=resampler)
    win, hop = int(round(SR * WINDOW_S)), int(round(SR * HOP_S))
    n_fft = 1 << int(np.ceil(np.log2(win)))
    need = win + hop * (EXAMPLE_FRAMES - 1)  # samples for one full example
    if x.size < need:
        x = np.pad(x, (0, need - x.size))
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float64), win)[::hop]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    mag = np.abs(np.fft.rfft(frames * window, n=n_fft))
    logmel = np.log(mag @ mel_matrix(n_fft_bins=n_fft // 2 + 1) + LOG_OFFSET)
    n_ex = logmel.shape[0] // EXAMPLE_FRAMES
    return logmel[: n_ex * EXAMPLE_FRAMES].reshape(n_ex, EXAMPLE_FRAMES, N_MELS).astype(np.float32)


# ----------------------------------------------------------------------------------------------- network
class VGGish(nn.Module):
    """VGGish network: ``[B, 1, 96, 64]`` log-mel examples → ``[B, 128]`` embeddings.

    Args:
        final_relu: keep the ReLU after the last linear layer (the port's default). ``False`` (FAD practice)
            returns the pre-activation output.
        postprocess: apply the AudioSet PCA whitening and 8-bit quantisation (needs :meth:`load_pca`).
    """

    def __init__(self, *, final_relu: bool = False, postprocess: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for item in _CONV_PLAN:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096), nn.ReLU(True),
                                 nn.Linear(4096, EMBEDDING_SIZE)]
        if final_relu:
            head.append(nn.ReLU(True))
        self.embeddings = nn.Sequential(*head)  # parameter names embeddings.{0,2,4} as in the port
        self.postprocess = postprocess
        self.register_buffer("pca_matrix", torch.eye(EMBEDDING_SIZE), persistent=False)
        self.register_buffer("pca_means", torch.zeros(EMBEDDING_SIZE, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # [B, 512, 6, 4]
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # channels last, as the TF original flattens
        x = self.embeddings(x)
        if self.postprocess:
            x = (self.pca_matrix @ (x.T - self.pca_means)).T
            x = torch.round((x.clamp(QUANTIZE_MIN, QUANTIZE_MAX) - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN)))
        return x

    def load_pca(self, params: dict) -> None:
        """Set the PCA postprocessor from the port's parameter file (``pca_eigen_vectors``, ``pca_means``)."""
        self.pca_matrix = torch.as_tensor(np.asarray(params["pca_eigen_vectors"]), dtype=torch.float32)
        self.pca_means = torch.as_tensor(np.asarray(params["pca_means"]).reshape(-1, 1), dtype=torch.float32)


#: Where the weights and PCA files come from, for the resolver's messages.
WEIGHTS_SOURCE = CheckpointSource("VGGish", "evaluation.vggish_weights", WEIGHTS_URL, "vggish.pth")
PCA_SOURCE = CheckpointSource("VGGish", "the pca argument", PCA_URL, "vggish_pca.pth")


def load_vggish(weights: str | os.PathLike | None, *, cache_dir: str | os.PathLike, pca: str | None = None,
                final_relu: bool = False, device: str = "cpu", seed: int = 0) -> VGGish:
    """Build :class:`VGGish` and load the port's weights.

    Args:
        weights: path or URL of ``vggish-10086976.pth`` (:data:`WEIGHTS_URL`), or ``"random"`` for a seeded random
            network (tests and shape checks only — its embeddings mean nothing).
        cache_dir: where a URL is downloaded to (``cache_dir/vggish/``).
        pca: path or URL of the PCA parameters (:data:`PCA_URL`); given → embeddings are PCA'd and quantised.
        final_relu: keep the last ReLU (see :class:`VGGish`).
    """
    model = VGGish(final_relu=final_relu, postprocess=pca is not None)
    if str(weights) == "random":
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / max(1, p[0].numel())) ** 0.5
                        if p.ndim > 1 else torch.zeros(p.shape))
    else:
        path = resolve_checkpoint(weights, source=WEIGHTS_SOURCE, cache_dir=cache_dir, what="weights")
        state = load_state_dict(path, family="VGGish", expect=("features.0.weight", "embeddings.4.weight"))
        state = {k: v for k, v in state.items() if k.startswith(("features.", "embeddings."))}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ModelNotFoundError(f"{path}: weights do not fit VGGish ({str(exc).splitlines()[0][:160]})") from None
    if pca is not None:
        ppath = resolve_checkpoint(pca, source=PCA_SOURCE, cache_dir=cache_dir, what="PCA parameters")
        model.load_pca(load_state_dict(ppath, family="VGGish PCA", expect=("pca_eigen_vectors", "pca_means")))
    return model.to(device).eval()


@torch.no_grad()
def embed(wav: np.ndarray, sr: int, *, model: VGGish, batch_size: int = 64,
          resampler: str = "kaiser_best") -> np.ndarray:
    """VGGish embeddings of ``wav`` (``[T]`` or ``[C, T]`` at ``sr`` Hz): ``[N_examples, 128]`` float32."""
    examples = torch.from_numpy(log_mel_examples(wav, sr, resampler=resampler))[:, None]
    device = next(model.parameters()).device
    out = [model(examples[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(examples), batch_size)]
    return torch.cat(out).numpy()
