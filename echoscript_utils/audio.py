"""Audio I/O and standardisation without torchaudio: soundfile to decode/encode, soxr to resample,
pyloudnorm's meter for loudness (ITU-R BS.1770, vectorised here), pedalboard's true-peak brick-wall limiter for the loudness policy.

Convention everywhere: ``wav`` is float32 ``[C, T]`` (channels first, like audiocraft), ``sr`` in Hz.

Decoding goes through libsndfile (>= 1.1 reads MP3 as well as WAV, FLAC, OGG/Vorbis/Opus and AIFF).
:func:`stream` decodes, folds channels and resamples block by block, so a file of any length is processed
in bounded memory. Channel layouts are folded with ITU-R BS.775 coefficients (centre and surrounds at
−3 dB, LFE dropped), so a 5.1 file does not come out with its dialogue/centre channel doubled or lost.

Loudness policy (:func:`standardise_loudness`): every clip, generated file and listening-pack file is brought to
one integrated loudness under one true-peak ceiling. Dynamic music (orchestral mixes have peak-to-loudness
ratios of 15–24 dB) cannot reach a pop-music target such as −14 LUFS by gain alone under a −1 dBTP ceiling, so
two parameters decide what happens:

* ``policy="limit"``: gain to the target, and where the true peak would pass the ceiling a look-ahead,
  true-peak brick-wall limiter (pedalboard's ``BrickwallLimiter``) holds the peaks; the gain is searched so the
  limited clip lands on the target, with at most ``max_limiting_db`` of gain reduction. ``policy="gain"``:
  gain only, lowered at the ceiling (the clip then stays quieter than the target).
* the target itself may be chosen from the corpus (:func:`auto_target_lufs`): the highest level that a given
  share of clips reach by gain alone, so only the remaining clips are limited, and only a little.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .artifacts import atomic_path
from .errors import InputError

__all__ = [
    "LOUDNESS_POLICIES",
    "AudioInfo",
    "LoudnessRecord",
    "as_float",
    "auto_target_lufs",
    "downmix",
    "downmix_matrix",
    "info",
    "load",
    "loudness",
    "model_input",
    "peak_db",
    "reachable_lufs",
    "resample",
    "standardise_loudness",
    "stream",
    "to_mono",
    "to_stereo",
    "true_peak_db",
    "write",
]

_M3DB = 0.7071067811865476  # -3 dB


def downmix_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Matrix ``[n_out, n_in]`` folding a channel layout to mono (``n_out=1``) or stereo (``n_out=2``).

    Layouts follow the WAVE_FORMAT_EXTENSIBLE order: 3 = L R C, 4 = L R Ls Rs, 5 = L R C Ls Rs,
    6 = L R C LFE Ls Rs (5.1), 8 = L R C LFE Lb Rb Ls Rs (7.1). Stereo fold (ITU-R BS.775):
    ``L' = L + 0.707 C + 0.707 Ls``, ``R' = R + 0.707 C + 0.707 Rs``, LFE dropped; mono is the mean of
    ``L'`` and ``R'``. Other counts average every channel. The coefficients are the standard's, unscaled: the
    float path does not clip, and loudness normalisation sets the level afterwards.
    """
    if n_out not in (1, 2):
        raise ValueError("n_out must be 1 or 2")
    if n_in == n_out:
        return np.eye(n_out, dtype=np.float32)
    if n_in == 1:
        return np.ones((n_out, 1), dtype=np.float32)
    left = np.zeros(n_in)
    right = np.zeros(n_in)
    roles = {2: "LR", 3: "LRC", 4: "LRlr", 5: "LRClr", 6: "LRCFlr", 7: "LRCFlrB", 8: "LRCFllrr"}.get(n_in)
    if roles is None:
        m = np.full((n_out, n_in), 1.0 / n_in)
        return m.astype(np.float32)
    for i, role in enumerate(roles):
        if role == "L":
            left[i] = 1.0
        elif role == "R":
            right[i] = 1.0
        elif role == "C" or role == "B":
            left[i] = right[i] = _M3DB
        elif role == "l":
            left[i] = _M3DB
        elif role == "r":
            right[i] = _M3DB
    stereo = np.stack([left, right])
    m = stereo if n_out == 2 else stereo.mean(axis=0, keepdims=True)
    return m.astype(np.float32)


def downmix(wav: np.ndarray, channels: int) -> np.ndarray:
    """Fold ``[C, T]`` to ``channels`` (1 or 2) with :func:`downmix_matrix`; mono is duplicated for stereo."""
    x = _as_2d(wav)
    if x.shape[0] == channels:
        return x
    return (downmix_matrix(x.shape[0], channels) @ x).astype(np.float32)


def to_stereo(wav: np.ndarray) -> np.ndarray:
    """``[C, T]`` → ``[2, T]`` (mono duplicated, surround folded with ITU-R BS.775 coefficients)."""
    return downmix(wav, 2)


def _as_2d(wav: np.ndarray) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 1:
        return wav[None, :]
    if wav.ndim != 2:
        raise ValueError(f"expected audio of shape [C, T] or [T], got {wav.shape}")
    return wav


@contextlib.contextmanager
def _decoder_notes_muted():
    """Mute file descriptor 2 while libsndfile decodes: its MP3 decoder (libmpg123) prints resync notes
    ("Note: Illegal Audio-MPEG-Header … Trying to resync …") straight to it, for files it then decodes
    correctly. They are not errors (libsndfile reports those through its return codes, which become
    InputErrors here), and libsndfile offers no switch for them."""
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a detached process): nothing to mute
        yield
        return
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load(path: str | os.PathLike, *, sr: int | None = None, mono: bool = False) -> tuple[np.ndarray, int]:
    """Decode an audio file to float32 ``[C, T]``.

    Args:
        path: WAV/FLAC/OGG/MP3/AIFF file (anything libsndfile reads).
        sr: resample to this rate (soxr, high quality); ``None`` keeps the file's rate.
        mono: average the channels into one.

    Returns:
        ``(wav, sr)`` with ``wav`` float32 ``[C, T]`` in [-1, 1] for integer formats.

    Raises:
        InputError: the file is missing or cannot be decoded (the message names it).
    """
    import soundfile as sf

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such audio file")
    try:
        with _decoder_notes_muted():
            data, file_sr = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise InputError(f"{p}: cannot decode audio ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    wav = np.ascontiguousarray(data.T)
    if mono:
        wav = to_mono(wav)
    if sr is not None and sr != file_sr:
        wav = resample(wav, file_sr, sr)
        file_sr = sr
    return wav, int(file_sr)


def to_mono(wav: np.ndarray) -> np.ndarray:
    """``[C, T]`` → ``[1, T]``: stereo is averaged, surround layouts folded first (:func:`downmix_matrix`)."""
    return downmix(wav, 1)


def as_float(wav) -> np.ndarray:
    """Any PCM array → float32 in [-1, 1]: integers are divided by their full scale, floats pass unchanged."""
    x = np.asarray(wav)
    if np.issubdtype(x.dtype, np.unsignedinteger):
        half = float(np.iinfo(x.dtype).max + 1) / 2.0
        return ((x.astype(np.float64) - half) / half).astype(np.float32)
    if np.issubdtype(x.dtype, np.integer):
        return (x.astype(np.float64) / float(-np.iinfo(x.dtype).min)).astype(np.float32)
    return x.astype(np.float32, copy=False)


#: Resamplers by name: soxr qualities (ours) and resampy's windowed-sinc filters (what torchvggish and the
#: ``frechet_audio_distance`` package use, so embeddings compared with published FADs resample the same way).
RESAMPLERS = ("soxr_hq", "soxr_vhq", "kaiser_best", "kaiser_fast")


def resample(wav: np.ndarray, sr_in: int, sr_out: int, *, quality: str = "HQ",
             method: str = "soxr") -> np.ndarray:
    """Resample ``[C, T]`` (or ``[T]``) float audio from ``sr_in`` to ``sr_out`` Hz → float32, same layout.

    Args:
        quality: soxr quality (``"HQ"``, ``"VHQ"``, ...) when ``method="soxr"``.
        method: ``"soxr"`` (default; linear phase, flat to 0.95 of the new Nyquist), ``"soxr_hq"`` /
            ``"soxr_vhq"``, or resampy's ``"kaiser_best"`` / ``"kaiser_fast"`` (called exactly as torchvggish
            and ``frechet_audio_distance`` call it: ``resampy.resample(x, sr_in, sr_out, filter=...)`` on the
            float32 signal, output length ``floor(T · sr_out / sr_in)``). ``kaiser_best`` rolls off earlier
            than soxr (at 16 kHz: −2.6 dB at 7.2 kHz, −14 dB at 7.5 kHz).
    """
    if method not in ("soxr", *RESAMPLERS):
        raise ValueError(f"unknown resampler {method!r}: use one of soxr, {', '.join(RESAMPLERS)}")
    if sr_in == sr_out:
        return np.asarray(wav, dtype=np.float32)
    one_d = np.ndim(wav) == 1
    x = _as_2d(wav)
    if method.startswith("kaiser"):
        y = resampy_polyphase(np.asarray(x, dtype=np.float32), sr_in, sr_out, filter=method)
    else:
        import soxr

        q = {"soxr_hq": "HQ", "soxr_vhq": "VHQ"}.get(method, quality)
        y = soxr.resample(x.T, sr_in, sr_out, quality=q).T
    y = np.ascontiguousarray(y, dtype=np.float32)
    return y[0] if one_d else y


def _resampy_taps(t_out: np.ndarray, n: np.ndarray, win: np.ndarray, delta: np.ndarray, num_table: int,
                  scale: float, left: int, right: int) -> np.ndarray:
    """resampy's weights for the outputs at input times ``t_out`` (``n = int(t_out)``), as ``[len, left + right]``
    kernels over the inputs ``n − left + 1 … n + right`` (zero where resampy takes no tap)."""
    step = int(scale * num_table)

    def wing(frac: np.ndarray, width: int) -> np.ndarray:
        index = frac * num_table
        offset = index.astype(np.int64)
        eta = index - offset
        taps = np.arange(width)
        count = (win.shape[0] - offset) // step
        pos = offset[:, None] + step * taps[None, :]
        valid = taps[None, :] < count[:, None]
        pos = np.where(valid, pos, 0)
        return np.where(valid, win[pos] + eta[:, None] * delta[pos], 0.0)

    frac = scale * (t_out - n)
    return np.concatenate([wing(frac, left)[:, ::-1], wing(scale - frac, right)], axis=1)


def resampy_polyphase(x: np.ndarray, sr_in: int, sr_out: int, *, filter: str = "kaiser_best") -> np.ndarray:
    """``resampy.resample(x, sr_in, sr_out, filter=filter, axis=-1)`` for float ``[C, T]``, as a polyphase filter.

    resampy evaluates its interpolated windowed-sinc weights afresh for every output sample in a scalar loop (0.8 s
    for 30 s of 44.1 kHz audio to 48 kHz with ``kaiser_best``). Its weights depend only on the output's position
    between input samples, which repeats every ``sr_out / gcd`` outputs: here they are computed once per position,
    with resampy's own formula and filter table (``resampy.filters.get_filter``), and applied as one matrix-vector
    product per position; outputs whose base sample rounding moved (``int(t)`` of a time a hair below an integer)
    get their own weights (where the positions hardly repeat, resampy runs itself). Same zero padding at both ends
    and output length ``floor(T · sr_out / sr_in)``. It
    sums in float64 where resampy sums into the float32 output, so the two differ by float32 rounding (a few
    1e-8 of full scale; ``tests/test_audio.py`` runs resampy on the same signals).
    """
    import resampy
    from resampy.filters import get_filter

    x = np.asarray(x)
    n_in = x.shape[-1]
    ratio = float(sr_out) / sr_in
    n_out = int(n_in * float(sr_out) / float(sr_in))
    if n_out < 1:
        raise ValueError(f"a signal of {n_in} samples is too short to resample from {sr_in} to {sr_out} Hz")
    period = sr_out // math.gcd(sr_in, sr_out)  # outputs per repeat of the positions
    hop = sr_in // math.gcd(sr_in, sr_out)  # inputs per repeat
    if 16 * period > n_out:  # positions hardly repeat (rates without a small common step): resampy's own loop
        return resampy.resample(x, sr_in, sr_out, filter=filter, axis=-1)
    win, num_table, _ = get_filter(filter)
    if ratio < 1:
        win = ratio * win
    delta = np.diff(win, append=win[-1])
    scale = min(1.0, ratio)
    width = int(win.shape[0] // int(scale * num_table)) + 1  # the most taps of one wing
    t_out = np.arange(n_out) * (1.0 / ratio)
    n = t_out.astype(np.int64)
    phases = min(period, n_out)
    kernels = _resampy_taps(t_out[:phases], n[:phases], win, delta, num_table, scale, width, width)
    flat = np.ascontiguousarray(x, dtype=np.float64).reshape(-1, n_in)
    pad = np.pad(flat, ((0, 0), (width, width + 1)))
    y = np.empty((flat.shape[0], n_out))
    item = pad.itemsize
    for p in range(phases):
        count = len(range(p, n_out, period))
        first = n[p] - width + 1 + width  # padded index of the first input of output p
        for c in range(flat.shape[0]):
            rows = np.lib.stride_tricks.as_strided(pad[c, first:], shape=(count, 2 * width),
                                                   strides=(hop * item, item), writeable=False)
            y[c, p::period] = rows @ kernels[p]
    shifted = np.flatnonzero(n != n[np.arange(n_out) % phases] + hop * (np.arange(n_out) // phases))
    if shifted.size:  # rounding put these outputs' base sample one off the pattern: their own weights
        k = _resampy_taps(t_out[shifted], n[shifted], win, delta, num_table, scale, width, width)
        idx = n[shifted][:, None] + 1 + np.arange(2 * width)[None, :]  # padded indices n − width + 1 … n + width
        for c in range(flat.shape[0]):
            y[c, shifted] = np.einsum("ij,ij->i", pad[c][idx], k)
    out_dtype = np.float32 if np.issubdtype(x.dtype, np.integer) else x.dtype
    return y.reshape(*x.shape[:-1], n_out).astype(out_dtype)


def model_input(wav, sr: int, *, sr_out: int, method: str = "soxr", what: str = "audio") -> np.ndarray:
    """The input of an audio model: float32 mono ``[T]`` at ``sr_out`` Hz.

    ``wav`` ``[T]`` or ``[C, T]`` at ``sr`` Hz (integer PCM is scaled to [-1, 1], :func:`as_float`) is folded to
    mono (:func:`to_mono`: stereo averaged, surround folded first) and resampled (:func:`resample` with
    ``method``). The one front end of the embedders and taggers.

    Raises:
        InputError: ``wav`` is not ``[T]`` or ``[C, T]``, or it is empty; ``what`` names the model.
    """
    x = as_float(wav)
    if x.ndim not in (1, 2):
        raise InputError(f"{what}: audio must be [T] or [C, T], got shape {x.shape}")
    x = to_mono(x)[0]
    if x.size and int(sr) != sr_out:
        x = resample(x, int(sr), sr_out, method=method)
    if x.size == 0:
        raise InputError(f"{what}: empty audio (0 samples)")
    return np.ascontiguousarray(x, dtype=np.float32)


def pcm16(x: np.ndarray) -> np.ndarray:
    """float32 samples in [-1, 1] as 16-bit integers, the way libsndfile (1.2) converts float32 when it writes
    16-bit PCM: scaled to 32 bits (2³¹) and rounded to the nearest integer, then shifted down 16 bits (rounding
    down), with 1.0 held at 32767. Writing these integers gives the same file as handing libsndfile the floats
    (checked on 2·10⁷ random float32 bit patterns and every 16-bit step), in about half the time."""
    y = np.multiply(x, np.float32(2.0 ** 31), dtype=np.float32)  # exact: a power of two
    np.rint(y, out=y)
    y *= np.float32(2.0 ** -16)  # exact again
    np.floor(y, out=y)
    np.minimum(y, 32767.0, out=y)
    return y.astype(np.int16)


def write(path: str | os.PathLike, wav: np.ndarray, sr: int, *, subtype: str = "PCM_16") -> Path:
    """Atomically write ``[C, T]`` float audio (clipped to [-1, 1]) as WAV/FLAC by extension."""
    import soundfile as sf

    x = np.clip(_as_2d(wav), -1.0, 1.0).T
    final = Path(path)
    fmt = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}.get(final.suffix.lower(), "WAV")
    if fmt == "OGG":
        subtype = "VORBIS"
    if fmt == "WAV" and subtype == "PCM_16" and np.isfinite(x).all():  # x is float32 (_as_2d)
        x = pcm16(x)  # libsndfile's own conversion for WAV, done here at a fraction of its cost: the same bytes
    # encoded in memory, then written in one go: the same bytes, without the fsync libsndfile does on closing a
    # file (the rename of atomic_path is what makes the write safe; the sync cost ~5 ms a clip)
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    with atomic_path(final) as tmp:
        Path(tmp).write_bytes(buf.getbuffer())
    return final


#: Input samples of real signal kept on each side of an oversampled region (soxr HQ's 4x interpolation filter
#: reaches 97 input samples either side), so the region's oversampled values equal those of the whole signal.
_TRUE_PEAK_CONTEXT = 112
#: Only the neighbourhoods of samples within this many dB of the sample peak are oversampled: an inter-sample peak
#: rises above its neighbouring samples by 3.9 dB at most for an isolated band-limited pulse (half a sample off)
#: and far less for music (0.2 dB at most over 100 clips of an orchestral soundtrack).
_TRUE_PEAK_MARGIN_DB = 6.0


def true_peak_db(wav: np.ndarray, sr: int, *, oversample: int = 4) -> float:
    """True peak in dBTP: the sample peak after ``oversample``-times upsampling (ITU-R BS.1770-4, Annex 2).

    Upsampling uses soxr (linear phase), which finds the inter-sample peaks a DAC would reconstruct. Only the
    stretches around samples within 6 dB of the sample peak are upsampled (with enough real signal on each side
    for soxr's filter, so their values equal those of upsampling the whole signal, to float rounding): the rest
    cannot hold the peak unless it overshoots its own samples by more than 6 dB. Returns −inf for silence.
    """
    import soxr

    x = _as_2d(wav)
    if x.size == 0:
        return float("-inf")
    mag = np.abs(x).max(axis=0)
    sample_peak = float(mag.max())
    factor = oversample if sr < 176400 else 1
    if sample_peak <= 0 or factor == 1:
        return 20 * np.log10(sample_peak) if sample_peak > 0 else float("-inf")
    ctx = _TRUE_PEAK_CONTEXT
    cand = np.flatnonzero(mag >= sample_peak * 10 ** (-_TRUE_PEAK_MARGIN_DB / 20))
    split = np.flatnonzero(np.diff(cand) > 2 * ctx)  # candidates closer than that share one stretch
    starts, ends = np.r_[cand[0], cand[split + 1]], np.r_[cand[split], cand[-1]] + 1
    lo, hi = np.maximum(starts - ctx, 0), np.minimum(ends + ctx, x.shape[1])
    if (hi - lo).sum() > x.shape[1] // 2:  # most of the signal: upsample it whole
        y = soxr.resample(np.ascontiguousarray(x.T), sr, sr * factor, quality="HQ")
        return 20 * np.log10(max(float(np.abs(y).max()), sample_peak))
    # the stretches one after another, zeros between them (as much as the context, so none reaches the next)
    gap = np.zeros((ctx, x.shape[0]), np.float32)
    pieces, spans, pos = [gap], [], ctx
    for a, b, s, e in zip(lo, hi, starts, ends, strict=True):
        pieces += [x[:, a:b].T, gap]
        spans.append((factor * (pos + s - a - 1), factor * (pos + e - a + 1)))  # one sample beyond each end
        pos += b - a + ctx
    y = np.abs(soxr.resample(np.concatenate(pieces).astype(np.float32), sr, sr * factor, quality="HQ"))
    peak = max(float(y[i:j].max()) for i, j in spans)
    return 20 * np.log10(max(peak, sample_peak))


def peak_db(wav: np.ndarray) -> float:
    """Sample peak in dBFS (−inf for silence)."""
    peak = float(np.max(np.abs(wav))) if np.size(wav) else 0.0
    return 20 * np.log10(peak) if peak > 0 else float("-inf")


#: BS.1770 channel weights (L, R, C, Ls, Rs).
_CHANNEL_WEIGHTS = (1.0, 1.0, 1.0, 1.41, 1.41)
_K_WEIGHTING: dict[int, np.ndarray] = {}


def _k_weighting(sr: int) -> np.ndarray:
    """The K-weighting filter of ``sr`` as two second-order sections ``[2, 6]``: pyloudnorm's high shelf
    (+4 dB above 1.5 kHz) and high pass (38 Hz) coefficients, filtered in one :func:`scipy.signal.sosfilt` pass."""
    if sr not in _K_WEIGHTING:
        from pyloudnorm.iirfilter import IIRfilter

        stages = (IIRfilter(4.0, 1 / np.sqrt(2), 1500.0, sr, "high_shelf"), IIRfilter(0.0, 0.5, 38.0, sr, "high_pass"))
        sos = np.array([np.r_[f.b, f.a] for f in stages])
        sos[0, :3] *= np.prod([f.passband_gain for f in stages])
        _K_WEIGHTING[sr] = sos
    return _K_WEIGHTING[sr]


def loudness(wav: np.ndarray, sr: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4: K-weighting, 400 ms blocks with 75 % overlap, absolute
    −70 LUFS and relative −10 LU gates), on float64 samples.

    The computation of ``pyloudnorm.Meter(sr).integrated_loudness`` (its filter coefficients, block bounds and
    gating) with the two filter stages in one pass and the block energies from sums between block edges instead
    of a Python loop over blocks: equal to pyloudnorm within 1e-9 LU (``tests/test_audio.py``), about 2.5x faster
    (8 ms against 21 ms for 30 s of mono at 44.1 kHz on one core).

    ``wav`` is ``[C, T]`` or ``[T]`` with at most five channels (L, R, C, Ls, Rs; weights 1, 1, 1, 1.41, 1.41);
    returns −inf for silence or less than 0.4 s.

    Raises:
        ValueError: more than five channels (fold them first with :func:`downmix`).
    """
    import scipy.signal

    x = _as_2d(wav)
    if x.shape[0] > 5:
        raise ValueError(f"BS.1770 loudness is defined for up to five channels, got {x.shape[0]}; fold them first "
                         "(audio.downmix)")
    if x.shape[1] < int(0.4 * sr) + 1:
        return float("-inf")
    n = x.shape[1]
    y = scipy.signal.sosfilt(_k_weighting(sr), np.ascontiguousarray(x, dtype=np.float64), axis=-1)
    block, step = 0.4, 1.0 - 0.75
    n_blocks = int(np.round((n / sr - block) / (block * step))) + 1
    j = np.arange(n_blocks, dtype=np.float64)
    lo = (block * (j * step) * sr).astype(np.int64)  # the same float expressions as pyloudnorm, so the same bounds
    hi = np.minimum((block * (j * step + 1) * sr).astype(np.int64), n)
    # each block's energy from the sums between consecutive block edges (one vectorised reduction over the samples,
    # then a cumulative sum over a few hundred edges instead of over every sample)
    edges = np.unique(np.r_[lo, hi])
    edges = edges[edges < n]
    sums = np.add.reduceat(np.square(y, out=y), edges, axis=1)  # [C, edges]: samples edges[k] .. edges[k + 1]
    energy = np.zeros((y.shape[0], edges.size + 1))
    np.cumsum(sums, axis=1, out=energy[:, 1:])
    z = (energy[:, np.searchsorted(edges, hi)] - energy[:, np.searchsorted(edges, lo)]) / (block * sr)  # [C, blocks]
    weights = np.asarray(_CHANNEL_WEIGHTS[: y.shape[0]])[:, None]
    with np.errstate(divide="ignore"):
        lj = -0.691 + 10.0 * np.log10((weights * z).sum(axis=0))
        gated = lj >= -70.0
        if not gated.any():
            return float("-inf")
        rel = -0.691 + 10.0 * np.log10(float((weights[:, 0] * z[:, gated].mean(axis=1)).sum())) - 10.0
        gated = (lj > rel) & (lj > -70.0)
        if not gated.any():
            return float("-inf")
        return float(-0.691 + 10.0 * np.log10(float((weights[:, 0] * z[:, gated].mean(axis=1)).sum())))


#: Loudness policies of :func:`standardise_loudness`.
LOUDNESS_POLICIES: tuple[str, ...] = ("limit", "gain")

#: A sample the limiter lowered by more than this (dB) counts as limited in :attr:`LoudnessRecord.limited_share`.
_LIMITED_DB = 0.1


@dataclass(frozen=True)
class LoudnessRecord:
    """What :func:`standardise_loudness` did to one signal (all levels in dB, loudness in LUFS).

    Attributes:
        policy: ``"limit"``, ``"gain"``, or ``"none"`` (no target, or silence: returned unchanged).
        target_lufs: the target asked for (``None`` for ``"none"``).
        loudness_in_lufs, loudness_lufs: integrated loudness before and after.
        true_peak_in_dbtp, true_peak_dbtp: true peak (4x oversampled) before and after.
        gain_db: the gain applied (before the limiter; a final trim is included).
        limiter_gain_reduction_db: the largest gain reduction the limiter applied; 0 when it did not engage.
        limited_share: share of the non-silent samples the limiter lowered by more than 0.1 dB.
    """

    policy: str
    target_lufs: float | None
    loudness_in_lufs: float
    loudness_lufs: float
    true_peak_in_dbtp: float
    true_peak_dbtp: float
    gain_db: float
    limiter_gain_reduction_db: float = 0.0
    limited_share: float = 0.0

    @property
    def reached(self) -> bool:
        """True when the output is within 0.5 LU of the target (or there was no target)."""
        if self.target_lufs is None:
            return True
        return bool(np.isfinite(self.loudness_lufs) and abs(self.loudness_lufs - self.target_lufs) <= 0.5)

    def to_dict(self, *, digits: int = 3) -> dict:
        """Plain floats rounded to ``digits`` (non-finite values become ``None``), for JSON."""
        out = {}
        for k, v in asdict(self).items():
            if isinstance(v, float):
                v = round(v, digits) if np.isfinite(v) else None
            out[k] = v
        return out


def _brickwall(wav: np.ndarray, sr: int, *, ceiling_db: float, release_ms: float) -> np.ndarray:
    """pedalboard's look-ahead brick-wall limiter with a true-peak (4x oversampled) side chain; ``[C, T]`` in and
    out, latency compensated (the output lines up with the input sample for sample)."""
    from pedalboard import BrickwallLimiter

    limiter = BrickwallLimiter(ceiling_db=ceiling_db, release_ms=release_ms, lookahead_ms=5.0, true_peak=True)
    return limiter(np.ascontiguousarray(wav, dtype=np.float32), sr)


def standardise_loudness(wav: np.ndarray, sr: int, *, target_lufs: float | None, ceiling_dbtp: float = -1.0,
                         policy: str = "limit", max_limiting_db: float = 6.0, release_ms: float = 100.0,
                         tolerance_lu: float = 0.05, measured_lufs: float | None = None,
                         measured_peak_dbtp: float | None = None) -> tuple[np.ndarray, LoudnessRecord]:
    """Bring ``wav`` to ``target_lufs`` integrated loudness with its true peak at or below ``ceiling_dbtp``.

    A signal that reaches the target by gain alone gets that gain and nothing else. Otherwise, with
    ``policy="gain"``, the gain stops at the ceiling (the output stays below the target); with
    ``policy="limit"``, the gain goes further and a true-peak brick-wall limiter (pedalboard
    ``BrickwallLimiter``: 5 ms look-ahead, ``release_ms`` release, channels linked) holds the ceiling. Limiting
    lowers the loudness again, so the gain is searched (safeguarded secant on the measured loudness) until the
    limited signal lands within ``tolerance_lu`` of the target; it never asks the limiter for more than
    ``max_limiting_db`` of gain reduction (such a signal stays below the target, and :attr:`LoudnessRecord.reached`
    says so). A last trim keeps the true peak at or below the ceiling whatever the limiter's overshoot.

    Args:
        wav: float ``[C, T]`` or ``[T]`` at ``sr`` Hz.
        target_lufs: integrated loudness to reach (ITU-R BS.1770); ``None`` returns the input unchanged.
        ceiling_dbtp: true-peak ceiling (dBTP); sample peaks stay below it too.
        policy: ``"limit"`` or ``"gain"`` (:data:`LOUDNESS_POLICIES`).
        max_limiting_db: largest gain reduction the limiter may apply (dB).
        measured_lufs, measured_peak_dbtp: the input's loudness / true peak when already known.

    Returns:
        ``(out, record)``: float32 ``[C, T]`` and a :class:`LoudnessRecord`. Silence is returned as is.
    """
    if policy not in LOUDNESS_POLICIES:
        raise ValueError(f"unknown loudness policy {policy!r}; use one of {', '.join(LOUDNESS_POLICIES)}")
    x = _as_2d(wav)
    lufs_in = float(loudness(x, sr) if measured_lufs is None else measured_lufs)
    tp_in = float(true_peak_db(x, sr) if measured_peak_dbtp is None else measured_peak_dbtp)
    if target_lufs is None or not np.isfinite(lufs_in) or not np.isfinite(tp_in):
        return x.copy(), LoudnessRecord("none", None, lufs_in, lufs_in, tp_in, tp_in, 0.0)
    target = float(target_lufs)
    g_target, g_free = target - lufs_in, ceiling_dbtp - tp_in

    def scaled(g: float) -> np.ndarray:
        return (x * np.float32(10 ** (g / 20))).astype(np.float32)

    if g_target <= g_free or policy == "gain":
        g = min(g_target, g_free)
        return scaled(g), LoudnessRecord(policy, target, lufs_in, lufs_in + g, tp_in, tp_in + g, g)

    # limit: f(g) = loudness(limit(x * g)) - target rises with g; f(g_target) <= 0 (limiting only takes away)
    g_max = g_free + max(0.0, float(max_limiting_db))
    cache: dict[float, tuple[np.ndarray, float]] = {}

    def limited(g: float) -> tuple[np.ndarray, float]:
        if g not in cache:
            z = _brickwall(scaled(g), sr, ceiling_db=ceiling_dbtp - 0.02, release_ms=release_ms)
            cache[g] = (z, float(loudness(z, sr)))
        return cache[g]

    lo, hi = (g_free, lufs_in + g_free - target), None  # bracket: (gain, f) below / above the target
    last = lo
    g = min(g_target, g_max)
    for _ in range(10):
        f = limited(g)[1] - target
        if abs(f) <= tolerance_lu:
            break
        if f < 0:
            lo = max(lo, (g, f))
            if g >= g_max:
                break  # the most limiting allowed still falls short
        else:
            hi = (g, f) if hi is None or g < hi[0] else hi
        if hi is None:  # no overshoot yet: secant through the last two points, at least a 0.25 dB step
            slope = (f - last[1]) / (g - last[0]) if g != last[0] else 1.0
            g_next = min(g_max, g + max(-f / max(slope, 0.05), 0.25))
        else:  # regula falsi inside the bracket, kept off its ends
            t = -lo[1] / (hi[1] - lo[1])
            g_next = lo[0] + min(max(t, 0.1), 0.9) * (hi[0] - lo[0])
        last, g = (g, f), g_next
    if abs(limited(g)[1] - target) > tolerance_lu:
        # short of the target: the loudest evaluated point that does not pass it, and of (nearly) equal ones the
        # least limited (on transient-dominated material loudness can stop rising with more gain)
        ok = [(v, k) for k, (_, v) in cache.items() if v <= target + tolerance_lu] or [(cache[min(cache)][1], min(cache))]
        best = max(v for v, _ in ok)
        g = min(k for v, k in ok if v >= best - 0.1)
    z, _ = limited(g)
    y = scaled(g)
    ref = np.abs(y)
    live = ref > 1e-3 * max(float(ref.max()), 1e-12)  # ratios of near-zero samples are rounding noise
    env = np.abs(z[live]) / ref[live]
    reduction = float(-20 * np.log10(max(float(env.min()), 1e-12))) if env.size else 0.0
    share = float(np.mean(env < 10 ** (-_LIMITED_DB / 20))) if env.size else 0.0
    tp = true_peak_db(z, sr)
    if tp > ceiling_dbtp - 0.01:  # the side chain's 4x oversampling is not a guarantee: trim the rest
        trim = ceiling_dbtp - 0.01 - tp
        z = (z * np.float32(10 ** (trim / 20))).astype(np.float32)
        g, tp = g + trim, tp + trim
    return z, LoudnessRecord(policy, target, lufs_in, float(loudness(z, sr)), tp_in, float(tp), float(g),
                             max(reduction, 0.0), share)


def reachable_lufs(lufs: float, true_peak_dbtp: float, *, ceiling_dbtp: float = -1.0) -> float:
    """Loudness a signal reaches by gain alone under the ceiling: ``lufs + ceiling - true_peak`` (LUFS)."""
    return float(lufs + ceiling_dbtp - true_peak_dbtp)


def auto_target_lufs(lufs, true_peaks_dbtp, *, ceiling_dbtp: float = -1.0, share: float = 0.9,
                     max_lufs: float = -14.0, min_lufs: float = -35.0) -> float:
    """The highest loudness target that at least ``share`` of the signals reach by gain alone under the ceiling.

    Args:
        lufs, true_peaks_dbtp: per-signal integrated loudness (LUFS) and true peak (dBTP), same length;
            non-finite pairs (silence) are ignored.
        share: fraction of signals that must reach the target without limiting, in (0, 1].
        max_lufs, min_lufs: the target is kept inside this range (a corpus that could go louder than
            ``max_lufs`` is set to it, as a fixed target would).

    Returns:
        The target in LUFS, rounded down to 0.1 LU (so the share still holds); ``max_lufs`` when no signal
        has a finite loudness.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    lu = np.asarray(lufs, dtype=np.float64)
    tp = np.asarray(true_peaks_dbtp, dtype=np.float64)
    ok = np.isfinite(lu) & np.isfinite(tp)
    if not ok.any():
        return float(max_lufs)
    reach = np.sort(lu[ok] + ceiling_dbtp - tp[ok])[::-1]
    k = int(np.ceil(share * reach.size - 1e-9))
    target = np.floor(reach[max(k, 1) - 1] * 10 + 1e-9) / 10
    return float(min(max(target, min_lufs), max_lufs))


class AudioInfo:
    """What the file header says: ``sr``, ``channels``, ``frames``, ``duration_s``, ``format``, ``subtype``."""

    __slots__ = ("sr", "channels", "frames", "format", "subtype", "extra")

    def __init__(self, sr: int, channels: int, frames: int, format: str, subtype: str, extra: str = ""):
        self.sr, self.channels, self.frames = int(sr), int(channels), int(frames)
        self.format, self.subtype, self.extra = format, subtype, extra

    @property
    def duration_s(self) -> float:
        return self.frames / self.sr if self.sr else 0.0

    def __repr__(self) -> str:
        return (f"AudioInfo(sr={self.sr}, channels={self.channels}, duration_s={self.duration_s:.2f}, "
                f"format={self.format}/{self.subtype})")


def info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of an audio file without decoding it.

    Raises:
        InputError: missing, a folder, or not a format libsndfile recognises.
    """
    import soundfile as sf

    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a folder, not an audio file")
    if not p.is_file():
        raise InputError(f"{p}: no such audio file")
    try:
        with _decoder_notes_muted(), sf.SoundFile(str(p)) as f:
            return AudioInfo(f.samplerate, f.channels, f.frames, f.format, f.subtype, f.extra_info)
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{p}: cannot decode audio ({msg})") from None


def stream(path: str | os.PathLike, *, sr: int | None = None, channels: int | None = None,
           block_s: float = 10.0):
    """Decode a file block by block: yields float32 ``[C, T]`` blocks, folded and resampled on the fly.

    Args:
        path: any file libsndfile reads.
        sr: output rate (soxr HQ, streaming, so block edges leave no seams); ``None`` keeps the file's.
        channels: fold to 1 or 2 channels (:func:`downmix`); ``None`` keeps the file's.
        block_s: seconds of source audio decoded per step (bounds memory).

    Raises:
        InputError: the file cannot be opened or decoding fails part-way (truncated or corrupt data).
    """
    import soundfile as sf
    import soxr

    p = Path(path)
    try:
        with _decoder_notes_muted():
            f = sf.SoundFile(str(p))
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{p}: cannot decode audio ({msg})") from None
    with f:
        sr_in, n_in = f.samplerate, f.channels
        n_out = channels or n_in
        mat = None if n_out == n_in else downmix_matrix(n_in, n_out)
        rs = None if sr is None or sr == sr_in else soxr.ResampleStream(sr_in, sr, n_out, dtype="float32",
                                                                         quality="HQ")
        blocksize = max(1, int(block_s * sr_in))
        done = 0
        while True:
            try:
                with _decoder_notes_muted():
                    block = f.read(blocksize, dtype="float32", always_2d=True)
            except Exception as exc:
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise InputError(f"{p}: decoding failed after {done / sr_in:.1f} s ({msg or 'corrupt data'}); "
                                 "the file is truncated or corrupt") from None
            last = len(block) < blocksize
            done += len(block)
            if mat is not None:
                block = block @ mat.T
            if rs is not None:
                block = rs.resample_chunk(np.ascontiguousarray(block, dtype=np.float32), last=last)
            if len(block):
                yield np.ascontiguousarray(block.T, dtype=np.float32)
            if last:
                break


def windows(x: np.ndarray, size: int, *, min_tail: float = 0.25, pad: bool = True) -> list[np.ndarray]:
    """Non-overlapping windows of ``size`` samples; a tail shorter than ``min_tail·size`` is dropped (unless it
    is the only window); with ``pad`` the last window is zero-padded to ``size``."""
    out = [x[i:i + size] for i in range(0, max(x.size, 1), size)]
    if len(out) > 1 and out[-1].size < min_tail * size:
        out.pop()
    if pad:
        out[-1] = np.pad(out[-1], (0, size - out[-1].size))
    return out
