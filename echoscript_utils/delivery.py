"""Delivering a score to picture: loudness profiles, ducking under dialogue, Broadcast WAV stems and a preview.

What a mixer, an editor and a music supervisor take from a spotted score:

* :func:`conform` brings a score or a stem to a delivery loudness profile (:data:`LOUDNESS_PROFILES`: EBU R128,
  ATSC A/85, the streaming platforms' −14 / −16 LUFS) through :func:`audio.standardise_loudness` (gain, and
  where the true peak would pass the ceiling a true-peak limiter), and reports what was reached, measured
  with pyloudnorm (ITU-R BS.1770-4) and a 4x oversampled true-peak meter. Dynamic orchestral material may not
  reach a streaming target under the ceiling without more limiting than allowed; the report says so.
* :func:`duck` lowers the music under dialogue regions with raised-cosine ramps and reports each region.
* :func:`write_bwf` writes a Broadcast WAV (EBU Tech 3285 v2 ``bext`` chunk) whose TimeReference places the stem
  at its start timecode in any DAW or conform tool. Timecode maths goes through OpenTimelineIO's ``opentime``:
  pass ``time_reference=opentime.from_timecode("01:00:10:00", 24)`` and it is turned into samples since
  midnight at the file's ``sr``.
* :func:`render_preview` renders ``preview.mp4`` with ffmpeg: a plain picture (or the user's video) with
  burnt-in timecode, each cue's number and scene heading while it plays, and the score laid under it.

Sits below the stages: it imports only ground-floor modules (audio, artifacts, errors).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import numbers
import os
import re
import shutil
import struct
import subprocess
import tempfile
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType

import numpy as np

from . import audio as _audio
from .artifacts import atomic_path
from .errors import ConfigError, DependencyError, InputError, OutputError

__all__ = [
    "LOUDNESS_PROFILES",
    "LoudnessProfile",
    "conform",
    "duck",
    "profile",
    "render_preview",
    "write_bwf",
]


# ------------------------------------------------------------------------------------------ loudness profiles
@dataclass(frozen=True)
class LoudnessProfile:
    """One delivery loudness specification.

    Attributes:
        name: the key in :data:`LOUDNESS_PROFILES` (what a parameter file names).
        target_lufs: integrated loudness to reach (LUFS; LKFS for ATSC, the same scale).
        ceiling_dbtp: maximum true peak (dBTP).
        standard: the document or practice the figures come from.
    """

    name: str
    target_lufs: float
    ceiling_dbtp: float
    standard: str


#: Delivery loudness profiles by name (read-only).
LOUDNESS_PROFILES: Mapping[str, LoudnessProfile] = MappingProxyType({
    p.name: p for p in (
        LoudnessProfile("ebu_r128", -23.0, -1.0, "EBU R 128 (broadcast, Europe)"),
        LoudnessProfile("atsc_a85", -24.0, -2.0, "ATSC A/85 (broadcast, North America)"),
        LoudnessProfile("streaming_14", -14.0, -1.0, "streaming platforms normalising to -14 LUFS"),
        LoudnessProfile("streaming_16", -16.0, -1.0, "streaming platforms normalising to -16 LUFS"),
    )
})


def profile(name: str | LoudnessProfile) -> LoudnessProfile:
    """The :class:`LoudnessProfile` called ``name`` (case and punctuation ignored: ``"EBU-R128"``, ``"ATSC A/85"``).

    Raises:
        ConfigError: an unknown name; the message lists the known ones.
    """
    if isinstance(name, LoudnessProfile):
        return name
    compact = {re.sub(r"[^a-z0-9]", "", k): p for k, p in LOUDNESS_PROFILES.items()}
    compact.update(ebu=compact["ebur128"], r128=compact["ebur128"], atsc=compact["atsca85"], a85=compact["atsca85"])
    try:
        return compact[re.sub(r"[^a-z0-9]", "", str(name).lower())]
    except KeyError:
        raise ConfigError(f"unknown loudness profile {name!r}; use one of {', '.join(LOUDNESS_PROFILES)}") from None


_lookup = profile  # conform's keyword ``profile`` hides the function inside it


def _r(x: float, digits: int = 3) -> float | None:
    return round(float(x), digits) if np.isfinite(x) else None


def conform(wav: np.ndarray, sr: int, *, profile: str | LoudnessProfile, max_limiting_db: float = 6.0,
            release_ms: float = 100.0) -> tuple[np.ndarray, dict]:
    """Bring a score or a stem to a delivery loudness profile: gain, and a true-peak limiter where needed.

    The gain that reaches the profile's integrated loudness is applied; where the true peak would then pass the
    profile's ceiling, a look-ahead true-peak brick-wall limiter holds it, with at most ``max_limiting_db`` of gain
    reduction (see :func:`audio.standardise_loudness`). Material too dynamic to reach the target within that
    limiting stays below the target: ``reached`` is False and ``shortfall_lu`` says by how much.

    Args:
        wav: float ``[C, T]`` or ``[T]`` at ``sr`` Hz (at most five channels).
        profile: a name from :data:`LOUDNESS_PROFILES` or a :class:`LoudnessProfile`.
        max_limiting_db: largest gain reduction the limiter may apply (dB).
        release_ms: limiter release (ms).

    Returns:
        ``(out, report)``: float32 ``[C, T]`` and a JSON-ready dict: ``profile``, ``loudness_target_lufs``,
        ``true_peak_target_dbtp`` (the sidecar fields), ``loudness_in_lufs``, ``true_peak_in_dbtp``,
        ``loudness_lufs`` and ``true_peak_dbtp`` measured after, ``gain_db``, ``limited`` (whether the limiter
        acted), ``limiter_gain_reduction_db``, ``limited_share`` (share of samples it lowered by > 0.1 dB),
        ``reached`` (within 0.5 LU of the target) and ``shortfall_lu`` (target minus reached, 0 when reached).
        Silence is returned unchanged with ``None`` levels and ``reached`` False.
    """
    p = _lookup(profile)
    out, rec = _audio.standardise_loudness(wav, sr, target_lufs=p.target_lufs, ceiling_dbtp=p.ceiling_dbtp,
                                           policy="limit", max_limiting_db=max_limiting_db, release_ms=release_ms)
    silent = rec.policy == "none"
    reached = (not silent) and rec.reached
    limited = rec.limiter_gain_reduction_db > 0.1 or rec.limited_share > 0
    report = {
        "profile": p.name,
        "loudness_target_lufs": p.target_lufs,
        "true_peak_target_dbtp": p.ceiling_dbtp,
        "loudness_in_lufs": _r(rec.loudness_in_lufs),
        "true_peak_in_dbtp": _r(rec.true_peak_in_dbtp),
        "loudness_lufs": _r(rec.loudness_lufs),
        "true_peak_dbtp": _r(rec.true_peak_dbtp),
        "gain_db": _r(rec.gain_db),
        "limited": bool(limited),
        "limiter_gain_reduction_db": _r(rec.limiter_gain_reduction_db),
        "limited_share": _r(rec.limited_share, 4),
        "reached": bool(reached),
        "shortfall_lu": None if silent else _r(max(0.0, p.target_lufs - rec.loudness_lufs) if not reached else 0.0),
    }
    return out, report


# --------------------------------------------------------------------------------------------------- ducking
def duck(wav: np.ndarray, sr: int, *, regions: Sequence[Sequence[float]], depth_db: float = 10.0,
         ramp_s: float = 0.3) -> tuple[np.ndarray, list[dict]]:
    """Lower the music under dialogue: ``depth_db`` of gain reduction inside each region, smooth ramps around it.

    The ramps (raised cosine, ``ramp_s`` long) lie outside the region: the music is fully down when the line
    starts and comes back up after it ends. Where regions or ramps overlap, the deeper reduction wins. Samples
    farther than ``ramp_s`` from every region are returned bit for bit.

    Args:
        wav: float ``[C, T]`` or ``[T]`` at ``sr`` Hz.
        regions: ``[(start_s, end_s), ...]`` in seconds from the start of ``wav``; an item may carry its own depth
            as a third value ``(start_s, end_s, depth_db)``. Parts outside the signal are ignored.
        depth_db: gain reduction inside a region (dB, positive: 10 lowers by 10 dB).
        ramp_s: length of each ramp down and up (s); ramps are cut short at the signal's ends.

    Returns:
        ``(out, report)``: float32 ``[C, T]`` and one dict per region, in the order given: ``start_s``, ``end_s``,
        ``depth_db`` (asked), ``gain_reduction_db`` (the smallest reduction applied anywhere inside the region,
        after clipping to the signal; 0 for a region outside it), ``ramp_in_s`` / ``ramp_out_s`` (ramps as laid)
        and ``level_change_db`` (RMS level after minus before over the region; ``None`` when silent or outside).

    Raises:
        InputError: a region with end before start, negative times or a negative depth (names the region).
    """
    x = _audio._as_2d(np.asarray(wav, dtype=np.float32))
    n = x.shape[1]
    if ramp_s < 0:
        raise InputError(f"ducking: ramp_s must be >= 0 seconds (got {ramp_s})")
    ramp = int(round(ramp_s * sr))
    gain_db = np.zeros(n, dtype=np.float64)
    spans = []
    for i, reg in enumerate(regions):
        if len(reg) not in (2, 3):
            raise InputError(f"ducking region {i}: expected (start_s, end_s) or (start_s, end_s, depth_db), got {reg!r}")
        start_s, end_s = float(reg[0]), float(reg[1])
        depth = float(reg[2]) if len(reg) == 3 else float(depth_db)
        if not (np.isfinite(start_s) and np.isfinite(end_s)) or start_s < 0 or end_s <= start_s:
            raise InputError(f"ducking region {i}: need 0 <= start_s < end_s (got {start_s}, {end_s})")
        if not np.isfinite(depth) or depth < 0:
            raise InputError(f"ducking region {i}: depth_db must be a positive reduction in dB (got {depth})")
        a, b = int(round(start_s * sr)), int(round(end_s * sr))
        a_c, b_c = min(max(a, 0), n), min(max(b, 0), n)
        spans.append((start_s, end_s, depth, a_c, b_c))
        if a_c >= b_c:
            continue
        curve = np.zeros(n, dtype=np.float64)
        curve[a_c:b_c] = 1.0
        if ramp > 0:
            lo = max(a_c - ramp, 0)
            t = (np.arange(lo, a_c) - (a_c - ramp) + 0.5) / ramp  # in (0, 1): 0 at the ramp's start
            curve[lo:a_c] = 0.5 - 0.5 * np.cos(np.pi * t)
            hi = min(b_c + ramp, n)
            t = (np.arange(b_c, hi) - b_c + 0.5) / ramp
            curve[b_c:hi] = 0.5 + 0.5 * np.cos(np.pi * t)
        gain_db = np.minimum(gain_db, -depth * curve)
    touched = gain_db < 0
    out = x.copy()
    if touched.any():
        out[:, touched] = (x[:, touched] * 10 ** (gain_db[touched] / 20)).astype(np.float32)
    report = []
    for start_s, end_s, depth, a_c, b_c in spans:
        row = {"start_s": round(start_s, 6), "end_s": round(end_s, 6), "depth_db": round(depth, 3),
               "gain_reduction_db": 0.0, "ramp_in_s": 0.0, "ramp_out_s": 0.0, "level_change_db": None}
        if a_c < b_c:
            row["gain_reduction_db"] = round(float(-gain_db[a_c:b_c].max()), 3)
            row["ramp_in_s"] = round((a_c - max(a_c - ramp, 0)) / sr, 6)
            row["ramp_out_s"] = round((min(b_c + ramp, n) - b_c) / sr, 6)
            rms_in = float(np.sqrt(np.mean(np.square(x[:, a_c:b_c], dtype=np.float64))))
            rms_out = float(np.sqrt(np.mean(np.square(out[:, a_c:b_c], dtype=np.float64))))
            if rms_in > 0 and rms_out > 0:
                row["level_change_db"] = round(20 * np.log10(rms_out / rms_in), 3)
        report.append(row)
    return out, report


# ------------------------------------------------------------------------------------------- Broadcast WAV
_BEXT_FIXED = 602  # bytes before CodingHistory in EBU Tech 3285 v2
_BEXT_UNSET = 0x7FFF  # Tech 3285 v2: a loudness field that is not given


def _ascii(text: str, size: int, what: str) -> bytes:
    """``text`` as NUL-padded ASCII of at most ``size`` bytes (accents folded, other characters dropped)."""
    folded = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore")
    if b"\x00" in folded:
        raise InputError(f"Broadcast WAV {what}: contains a NUL character")
    return folded[:size].ljust(size, b"\x00")


def _time_reference_samples(time_reference, sr: int) -> int:
    """Samples since midnight from an int or an OTIO ``RationalTime`` (rescaled to ``sr``, rounded to a sample)."""
    from opentimelineio import opentime

    if isinstance(time_reference, opentime.RationalTime):
        samples = round(time_reference.rescaled_to(sr).value)
    elif isinstance(time_reference, numbers.Integral) or (
            isinstance(time_reference, float) and time_reference.is_integer()):
        samples = int(time_reference)
    else:
        raise InputError(f"Broadcast WAV time_reference: expected a whole number of samples since midnight or an "
                         f"OTIO RationalTime, got {time_reference!r}")
    if not 0 <= samples < 2**64:
        raise InputError(f"Broadcast WAV time_reference: {time_reference!r} is not a sample count since midnight")
    return samples


def _loudness_field(value: float | None, what: str) -> int:
    if value is None or not np.isfinite(value):
        return _BEXT_UNSET
    v = int(round(float(value) * 100))
    if not -32768 <= v < _BEXT_UNSET:
        raise InputError(f"Broadcast WAV {what}: {value} is out of range")
    return v


def _bext_chunk(*, sr: int, channels: int, bits: int | None, time_reference: int, description: str,
                originator: str, originator_reference: str, origination: _dt.datetime, coding_history: str | None,
                loudness_lufs: float | None, loudness_range_lu: float | None, true_peak_dbtp: float | None) -> bytes:
    if coding_history is None:
        mode = {1: "mono", 2: "stereo"}.get(channels, "multichannel")
        width = f",W={bits}" if bits else ""
        coding_history = f"A=PCM,F={sr}{width},M={mode},T={originator or 'EchoScript'}\r\n"
    history = unicodedata.normalize("NFKD", coding_history).encode("ascii", "ignore")
    body = b"".join([
        _ascii(description, 256, "description"),
        _ascii(originator, 32, "originator"),
        _ascii(originator_reference, 32, "originator_reference"),
        origination.strftime("%Y-%m-%d").encode("ascii"),
        origination.strftime("%H:%M:%S").encode("ascii"),
        struct.pack("<QH", time_reference, 2),  # TimeReferenceLow/High as one little-endian 64-bit count; Version
        bytes(64),  # UMID: none
        struct.pack("<5h", _loudness_field(loudness_lufs, "loudness_lufs"),
                    _loudness_field(loudness_range_lu, "loudness_range_lu"),
                    _loudness_field(true_peak_dbtp, "true_peak_dbtp"), _BEXT_UNSET, _BEXT_UNSET),
        bytes(180),  # reserved
        history,
    ])
    assert len(body) == _BEXT_FIXED + len(history)
    if len(body) % 2:
        body += b"\x00"  # chunks are word aligned (the pad byte is not counted in the size)
        return b"bext" + struct.pack("<I", len(body) - 1) + body
    return b"bext" + struct.pack("<I", len(body)) + body


_BITS = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32}


def write_bwf(path: str | os.PathLike, wav: np.ndarray, sr: int, *, time_reference, description: str = "",
              originator: str = "EchoScript", originator_reference: str = "",
              origination: _dt.datetime | None = None, coding_history: str | None = None,
              loudness_lufs: float | None = None, loudness_range_lu: float | None = None,
              true_peak_dbtp: float | None = None, subtype: str = "PCM_24") -> Path:
    """Atomically write a Broadcast WAV file: RIFF WAVE with a ``bext`` chunk (EBU Tech 3285 version 2).

    The audio is encoded by libsndfile (soundfile); the ``bext`` chunk is put before its ``fmt `` chunk.
    TimeReference is the position of the first sample in samples since midnight, a 64-bit count; DAWs and conform
    tools place the file there on the timeline.

    Args:
        path: the ``.wav`` file to write.
        wav: float ``[C, T]`` or ``[T]`` at ``sr`` Hz, clipped to [-1, 1].
        time_reference: samples since midnight at ``sr`` (int), or an OpenTimelineIO ``RationalTime`` such as
            ``opentime.from_timecode("01:00:10:00", 24)``, rescaled to ``sr`` and rounded to a sample.
        description: free text (256 ASCII characters at most; e.g. the cue number and scene heading).
        originator, originator_reference: 32 ASCII characters each.
        origination: creation date and time written to the chunk (default: now, UTC).
        coding_history: the CodingHistory text (EBU R 98 rows ending in CR LF); default one row describing this
            file (``A=PCM,F=48000,W=24,M=stereo,T=EchoScript``).
        loudness_lufs, loudness_range_lu, true_peak_dbtp: the version 2 loudness fields (e.g. from
            :func:`conform`); left "not given" (0x7FFF) when ``None``.
        subtype: soundfile PCM subtype (``PCM_16``, ``PCM_24``, ``PCM_32``).

    Returns:
        The path written.

    Raises:
        InputError: a time reference that is not a sample count since midnight, a subtype that is not PCM, or
            audio over the 4 GiB that a RIFF file can hold (RF64 is not written).
    """
    import soundfile as sf

    final = Path(path)
    sr = int(sr)
    if str(subtype).upper() not in _BITS:
        raise InputError(f"{final}: a Broadcast WAV stem is PCM; use subtype {', '.join(_BITS)} (got {subtype!r})")
    samples = _time_reference_samples(time_reference, sr)
    x = np.clip(_audio._as_2d(np.asarray(wav, dtype=np.float32)), -1.0, 1.0)
    if origination is None:
        origination = _dt.datetime.now(_dt.UTC)
    bext = _bext_chunk(sr=sr, channels=x.shape[0], bits=_BITS[subtype.upper()], time_reference=samples,
                       description=description, originator=originator, originator_reference=originator_reference,
                       origination=origination, coding_history=coding_history, loudness_lufs=loudness_lufs,
                       loudness_range_lu=loudness_range_lu, true_peak_dbtp=true_peak_dbtp)
    with atomic_path(final, suffix=".wav") as tmp:
        pcm = tmp.with_name(tmp.name + ".pcm.wav")
        try:
            sf.write(str(pcm), x.T, sr, format="WAV", subtype=subtype)
            size = pcm.stat().st_size
            if size + len(bext) >= 2**32:
                raise InputError(f"{final}: {size / 2**30:.1f} GiB of audio is over what a RIFF WAV holds; split it")
            with open(pcm, "rb") as src, open(tmp, "wb") as dst:
                head = src.read(12)
                if head[:4] != b"RIFF" or head[8:12] != b"WAVE":  # pragma: no cover - libsndfile wrote it
                    raise OutputError(f"{final}: the WAV encoder wrote no RIFF/WAVE header")
                riff_size = struct.unpack("<I", head[4:8])[0] + len(bext)
                dst.write(b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + bext)
                shutil.copyfileobj(src, dst, 1 << 20)
        finally:
            with contextlib.suppress(OSError):
                pcm.unlink()
    return final


# ------------------------------------------------------------------------------------------------- preview
def _ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise DependencyError("ffmpeg not found; install it (Debian: apt-get install ffmpeg) to render preview.mp4")
    return exe


def _ffmpeg_rate(fps) -> Fraction:
    """Frame rate as an exact fraction, the NTSC rates (23.976, 29.97, 59.94) snapped to n*1000/1001 (the timecode
    rate the spotting uses, :func:`~echoscript_utils.spotting.cut.timecode_rate`)."""
    from .spotting.cut import timecode_rate

    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise InputError(f"preview: fps must be a positive frame rate (got {fps})")
    return Fraction(timecode_rate(fps)).limit_denominator(1001)


def _filter_quote(text) -> str:
    """``text`` as one ffmpeg filter option value, through both levels of filtergraph escaping.

    The option parser (``key=value:key=value``) needs ``\\``, ``'`` and ``:`` escaped with a backslash; the graph
    parser then gets the whole value in single quotes (a quote inside becomes ``'\\''``).
    """
    inner = re.sub(r"([\\':])", r"\\\1", str(text))
    return "'" + inner.replace("'", "'\\''") + "'"


def render_preview(path: str | os.PathLike, *, duration_s: float, fps: float, cues: Sequence[Mapping],
                   audio: str | os.PathLike | None = None, video: str | os.PathLike | None = None,
                   size: tuple[int, int] = (640, 360), start_timecode: str = "00:00:00:00", sr: int = 48000,
                   fontfile: str | os.PathLike | None = None, timeout_s: float = 600.0) -> Path:
    """Render ``preview.mp4`` with ffmpeg: picture with burnt-in timecode, cue number and scene heading, score under it.

    The picture is a plain dark frame, or the user's ``video`` scaled and padded to ``size`` (cut or frozen on its
    last frame to ``duration_s``). Burnt in: the running timecode from ``start_timecode`` (drawtext's timecode
    option; ``;`` before the frames means drop-frame), and, while each cue plays, its number and scene heading.
    The sound is the score ``audio`` laid from time 0, or else each cue's stem laid at its ``start_s`` by
    ffmpeg (``adelay`` in samples, mixed without normalisation). Encoded as H.264 + AAC, written atomically.

    Args:
        path: the ``.mp4`` file to write.
        duration_s: length of the preview (s).
        fps: frame rate (23.976 and 29.97 mean 24000/1001 and 30000/1001).
        cues: one mapping per cue: ``start_s``, ``end_s`` (s from the preview's start), ``cue`` (e.g. ``"1M1"``),
            ``heading`` (optional); when ``audio`` is None also ``path`` (the stem) and optionally ``offset_s``
            (seconds of the stem skipped before its start).
        audio: a score on the preview's timeline (any file ffmpeg reads), or None to lay the cues' stems.
        video: the user's picture (any file ffmpeg reads), or None for a plain frame.
        size: ``(width, height)`` in pixels.
        start_timecode: timecode of the first frame (``HH:MM:SS:FF``, or ``HH:MM:SS;FF`` for drop-frame).
        sr: audio sample rate of the preview (Hz).
        fontfile: a TrueType font for the burnt-in text; None lets fontconfig choose its default sans.
        timeout_s: ffmpeg is stopped after this many seconds.

    Returns:
        The path written.

    Raises:
        DependencyError: ffmpeg is not installed.
        InputError: a cue without times, a missing stem, audio or video file.
        OutputError: ffmpeg failed (the message carries its last line of error output); nothing is written.
    """
    final = Path(path)
    duration_s = float(duration_s)
    if not np.isfinite(duration_s) or duration_s <= 0:
        raise InputError(f"preview: duration_s must be positive (got {duration_s})")
    rate = _ffmpeg_rate(fps)
    width, height = (int(v) for v in size)
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise InputError(f"preview: size must be two even numbers of at least 16 pixels (got {size})")
    tc = str(start_timecode)
    if not re.fullmatch(r"\d{2}:\d{2}:\d{2}[:;]\d{2}", tc):
        raise InputError(f"preview: start_timecode {tc!r} is not HH:MM:SS:FF (or HH:MM:SS;FF for drop-frame)")
    rows = []
    for i, cue in enumerate(cues):
        name = str(cue.get("cue", f"cue {i + 1}"))
        try:
            start, end = float(cue["start_s"]), float(cue["end_s"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"preview: cue {name} needs numeric start_s and end_s") from None
        if not (np.isfinite(start) and np.isfinite(end)) or start < 0 or end <= start:
            raise InputError(f"preview: cue {name} needs 0 <= start_s < end_s (got {start}, {end})")
        stem = None
        if audio is None and cue.get("path") is not None:
            stem = Path(cue["path"])
            if not stem.is_file():
                raise InputError(f"{stem}: stem of cue {name} not found")
        rows.append((name, str(cue.get("heading", "") or ""), start, end, stem, float(cue.get("offset_s", 0.0) or 0)))
    for what, p in (("audio", audio), ("video", video), ("fontfile", fontfile)):
        if p is not None and not Path(p).is_file():
            raise InputError(f"{p}: preview {what} file not found")
    exe = _ffmpeg()

    with tempfile.TemporaryDirectory(prefix="echoscript-preview-") as work:
        work = Path(work)
        font = f"fontfile={_filter_quote(fontfile)}:" if fontfile else ""
        args = [exe, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        if video is not None:
            args += ["-i", str(video)]
            pic = (f"[0:v]scale={width}:{height}:force_original_aspect_ratio=decrease,"
                   f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,setsar=1,fps={rate},"
                   f"tpad=stop_mode=clone:stop_duration={duration_s:.6f},trim=duration={duration_s:.6f},"
                   f"setpts=PTS-STARTPTS")
        else:
            args += ["-f", "lavfi", "-i", f"color=c=0x1d2330:s={width}x{height}:r={rate}:d={duration_s:.6f}"]
            pic = "[0:v]null"
        big, small = max(height // 10, 10), max(height // 22, 8)
        pic += (f",drawtext={font}timecode={_filter_quote(tc)}:rate={rate}:fontsize={big}:fontcolor=white"
                f":box=1:boxcolor=black@0.6:boxborderw={big // 4}:x=(w-tw)/2:y=h-th-{big // 2}")
        for k, (name, heading, start, end, _, _) in enumerate(rows):
            (work / f"cue{k}.txt").write_text(name, encoding="utf-8")
            (work / f"head{k}.txt").write_text(heading or " ", encoding="utf-8")
            on = f"enable={_filter_quote(f'between(t,{start:.6f},{end:.6f})')}"
            pic += (f",drawtext={font}textfile={_filter_quote(work / f'cue{k}.txt')}:expansion=none:{on}"
                    f":fontsize={big}:fontcolor=0xffd75e:x={big // 2}:y={big // 2}"
                    f",drawtext={font}textfile={_filter_quote(work / f'head{k}.txt')}:expansion=none:{on}"
                    f":fontsize={small}:fontcolor=white:x={big // 2}:y={big // 2 + big + small // 2}")
        graph = [pic + "[v]"]
        n_in = 1
        if audio is not None:
            args += ["-i", str(audio)]
            graph.append(f"[{n_in}:a]aresample={sr},aformat=channel_layouts=stereo,apad[a]")
        else:
            laid = []
            for _name, _, start, _, stem, offset in rows:
                if stem is None:
                    continue
                args += ["-i", str(stem)]
                trim = f"atrim=start={offset:.6f},asetpts=PTS-STARTPTS," if offset > 0 else ""
                graph.append(f"[{n_in}:a]aresample={sr},aformat=channel_layouts=stereo,{trim}"
                             f"adelay=delays={int(round(start * sr))}S:all=1[s{len(laid)}]")
                laid.append(f"[s{len(laid)}]")
                n_in += 1
            if laid:
                graph.append("".join(laid) + f"amix=inputs={len(laid)}:normalize=0:duration=longest,apad[a]")
            else:
                args += ["-f", "lavfi", "-i", f"anullsrc=r={sr}:cl=stereo"]
                graph.append(f"[{n_in}:a]anull[a]")
        args += ["-filter_complex", ";".join(graph), "-map", "[v]", "-map", "[a]", "-t", f"{duration_s:.6f}",
                 "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
                 "-c:a", "aac", "-b:a", "192k", "-ar", str(sr), "-movflags", "+faststart"]
        with atomic_path(final, suffix=".mp4") as tmp:
            try:
                proc = subprocess.run([*args, str(tmp)], capture_output=True, text=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise OutputError(f"{final}: ffmpeg did not finish within {timeout_s:.0f} s; "
                                  "shorten the preview or raise timeout_s") from None
            if proc.returncode != 0:
                lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
                last = lines[-1] if lines else f"exit status {proc.returncode}"
                raise OutputError(f"{final}: ffmpeg failed ({last})")
    return final
