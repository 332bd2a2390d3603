"""One input file → its clips: the cache key, the checks that reject a file (with the reason written to
``skipped.csv``), block-by-block decoding, cutting, loudness standardisation, features, and the 16-bit WAV of
every clip. Runs in the worker processes; every result is cached by the content hash of the file and the
settings (:func:`echoscript_utils.artifacts.cached`)."""

from __future__ import annotations

import contextlib
import math
import shutil
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .. import audio as audio_mod
from .. import features as feat
from ..artifacts import cached, file_hash, text_hash, write_cached
from ..audio_forensics import truncation_reason
from ..config import CurationSection
from ..errors import InputError

#: Bump when the per-file processing changes, so cached results are recomputed.
PIPELINE_VERSION = 2
CACHE_DIR = ".cache/curation"
CLIPS_DIR = "clips"
#: Folder under the cache where the loudness pass keeps each input's decoded, resampled samples for the second
#: pass (raw float32, channels interleaved; removed when the stage ends).
SPILL_DIR = "spill"
#: Free disk space the loudness pass leaves untouched when it decides whether to keep an input's samples (bytes).
_SPILL_RESERVE = 1 << 30


def _settings(section: CurationSection) -> dict[str, Any]:
    """The parameters that shape clips and features (the cache key); splits/dedupe/exports are not among them."""
    return {
        "pipeline": PIPELINE_VERSION, "features": feat.FEATURES_VERSION,
        "sample_rate": section.sample_rate, "channels": section.channels, "clip_s": section.clip_s,
        "hop_s": section.hop_s, "target_lufs": section.target_lufs, "peak_limit_db": section.peak_limit_db,
        "loudness_policy": section.loudness_policy, "max_limiting_db": section.max_limiting_db,
        "min_rms_db": section.min_rms_db, "short_cue_share": section.short_cue_share,
    }


def _measure_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings of the loudness pass that ``target_lufs: auto`` runs first (only what shapes the clips)."""
    keep = ("pipeline", "sample_rate", "channels", "clip_s", "hop_s", "min_rms_db", "short_cue_share")
    return {"measure": 1, **{k: settings[k] for k in keep}}


class _Reject(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


def _db(x: float) -> float:
    return 20 * math.log10(x) if x > 0 else float("-inf")


def _round(v: float | None, nd: int = 3) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), nd)


def _process(task: dict[str, Any]) -> dict[str, Any]:
    """Worker: one input file → its result dict (clips written), from the cache when the file, its path, track id
    and settings are unchanged (``task["force"]`` recomputes). Never raises for bad input: a rejected file gives
    ``status: skipped`` with ``kind`` and ``reason``."""
    rel, path = task["rel"], Path(task["path"])
    try:
        sha = task.get("sha256") or _content_hash(path)  # the loudness pass hashed the file already
    except _Reject as r:  # nothing to key a cache entry on
        return {"source": rel, "status": "skipped", "clips": [], "audio_s": 0.0, "cached": False,
                "kind": r.kind, "reason": f"{r.kind}: {r.detail}", "fingerprint": None}
    key = text_hash(sha, rel, task["track_id"], task["settings"], length=24)
    fresh: dict[str, float] = {}  # filled when the result is computed here, not read back
    res = cached(Path(task["cache_dir"]) / f"{key}.json", partial(_compute, task, sha, key, fresh),
                 refresh=bool(task.get("force")), valid=lambda r: isinstance(r, dict), indent=None)
    return {**res, "cached": not fresh, "audio_s": fresh.get("audio_s", 0.0), "cache_key": key}


def _content_hash(path: Path) -> str:
    """SHA-256 of a readable, non-empty file; rejects folders, unreadable and empty files."""
    if path.is_dir():
        raise _Reject("directory", "a folder named like an audio file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _Reject("unreadable", exc.strerror or "cannot stat") from None
    if size == 0:
        raise _Reject("empty", "0 bytes")
    try:
        return file_hash(path)
    except OSError as exc:
        raise _Reject("unreadable", exc.strerror or "cannot read") from None


def _compute(task: dict[str, Any], sha: str, key: str, fresh: dict[str, float]) -> dict[str, Any]:
    """The cache entry of one input: its clips (written to ``clips/``) and fingerprint (``<key>.npy`` beside the
    entry), or why it was rejected; ``fresh["audio_s"]`` gets the seconds of audio decoded."""
    res: dict[str, Any] = {"source": task["rel"], "status": "skipped", "clips": [], "sha256": sha, "cache_key": key}
    written: list[Path] = []
    fresh["audio_s"] = 0.0
    try:
        out = _decode_and_cut(task, Path(task["path"]), written)
    except _Reject as r:
        for w in written:
            with contextlib.suppress(OSError):
                w.unlink()
        res.update(kind=r.kind, reason=f"{r.kind}: {r.detail}", fingerprint=None)
        return res
    fresh["audio_s"] = out.pop("audio_s")
    fp = out.pop("fingerprint_array")
    res.update(out, status="kept")
    if fp is not None:
        res["fingerprint"] = str(write_cached(Path(task["cache_dir"]) / f"{key}.npy", fp.astype(np.float16),
                                              fmt="npy"))
    return res


def _checked_info(path: Path, s: dict[str, Any]) -> audio_mod.AudioInfo:
    """The file's header, or the reason it cannot give a clip: not audio, cut short, empty, too short."""
    try:
        info = audio_mod.info(path)
    except InputError as exc:
        msg = str(exc).split(": ", 1)[-1]
        # libsndfile reports an unknown format as "Error opening '<path>': File does not exist or is not a
        # regular file" or "Format not recognised"; say what it means instead
        raise _Reject("not audio", "no audio format libsndfile can decode" +
                      ("" if "Error opening" in msg else f" ({msg})")) from None
    why = truncation_reason(info, path)
    if info.frames <= 0 or info.sr <= 0:
        raise _Reject("truncated", why) if why else _Reject("empty", "no audio frames")
    if why:
        raise _Reject("truncated", why)
    min_s = s["clip_s"] * min(1.0, s["short_cue_share"])
    if info.duration_s < min_s:
        raise _Reject("too short", f"{info.duration_s:.1f} s, shorter than {min_s:g} s "
                                   f"({s['short_cue_share']:g} of a {s['clip_s']:g} s clip)")
    return info


def _check_decoded(info: audio_mod.AudioInfo, s: dict[str, Any], *, total: int, peak: float, n_clips: int) -> None:
    """Reject what decoding showed: fewer samples than the header promised, silence, no loud-enough clip."""
    sr = s["sample_rate"]
    expected = info.frames * sr / info.sr
    # an MP3's frame count can be an estimate (no Xing header), so only its header check applies
    if info.format != "MP3" and total < 0.98 * expected - sr * 0.05:
        raise _Reject("truncated", f"decoded {total / sr:.1f} s of the {info.duration_s:.1f} s its header promises")
    if peak <= 0.0 or _db(peak) < s["min_rms_db"]:
        raise _Reject("silent", f"digital silence (peak {_db(peak):.0f} dBFS)" if peak <= 0 else
                      f"peak {_db(peak):.1f} dBFS is below the {s['min_rms_db']:g} dB silence threshold")
    if not n_clips:
        raise _Reject("silent", f"every {s['clip_s']:g} s window is below {s['min_rms_db']:g} dBFS RMS")


def _decode_and_cut(task: dict[str, Any], path: Path, written: list[Path]) -> dict[str, Any]:
    """Decode ``path`` block by block at the target rate and layout, and cut, standardise and write its clips (or
    only measure them, in the loudness pass); raises :class:`_Reject` for a file that gives no clip."""
    s = task["settings"]
    info = _checked_info(path, s)
    sr = s["sample_rate"]
    n_ch = 1 if s["channels"] == "mono" else 2
    clip_len = int(round(s["clip_s"] * sr))
    hop_len = int(round((s["hop_s"] or s["clip_s"]) * sr))
    clips_dir = Path(task["clips_dir"])
    measure = bool(s.get("measure"))
    fpr = None if measure else feat.Fingerprinter(sr)
    buf = np.zeros((n_ch, 0), dtype=np.float32)
    start = 0  # sample index (at sr) of buf[:, 0]
    index = 0
    clips: list[dict[str, Any]] = []
    n_silent = 0
    total = 0
    peak = 0.0
    spill = _spill_writer(task, info, sr=sr, n_ch=n_ch) if measure else None
    try:
        for block in _blocks(task, path, sr=sr, n_ch=n_ch):
            if not np.isfinite(block).all():
                bad = int(np.argmax(~np.isfinite(block).all(axis=0)))
                raise _Reject("non-finite", f"NaN or infinite samples from {(total + bad) / sr:.2f} s")
            total += block.shape[1]
            peak = max(peak, float(np.abs(block).max()) if block.size else 0.0)
            if spill is not None:
                spill.write(np.ascontiguousarray(block.T).tobytes())
            if fpr is not None:
                fpr.update(block.mean(axis=0) if n_ch > 1 else block[0])
            buf = np.concatenate([buf, block], axis=1)
            while buf.shape[1] >= clip_len:
                rec = (_measure_clip(buf[:, :clip_len], sr, s, index=index) if measure else
                       _finish_clip(buf[:, :clip_len], sr, start, index, task, clips_dir, written))
                if rec is None:
                    n_silent += 1
                else:
                    clips.append(rec)
                index += 1
                buf = buf[:, hop_len:]
                start += hop_len
        if index == 0 and buf.shape[1] and buf.shape[1] >= s["short_cue_share"] * clip_len:  # a short cue
            padded = np.pad(buf, ((0, 0), (0, clip_len - buf.shape[1])))
            rec = (_measure_clip(padded, sr, s, index=index, real_len=buf.shape[1]) if measure else
                   _finish_clip(padded, sr, start, index, task, clips_dir, written, real_len=buf.shape[1]))
            if rec is None:
                n_silent += 1
            else:
                clips.append(rec)
            index = 1
            buf = buf[:, :0]
        if spill is not None:
            spill.close()
        _check_decoded(info, s, total=total, peak=peak, n_clips=len(clips))
    except BaseException as exc:
        if spill is not None:  # a rejected input is decoded (and rejected) again by the second pass
            spill.close()
            Path(spill.name).unlink(missing_ok=True)
        if isinstance(exc, InputError):
            raise _Reject("truncated", str(exc).split(": ", 1)[-1]) from None
        raise
    return {
        "clips": clips,
        "fingerprint_array": None if fpr is None else fpr.result(),
        "n_silent_clips": n_silent,
        "tail_s": round(max(0, total - ((index - 1) * hop_len + clip_len if index else 0)) / sr, 3),
        "audio_s": info.duration_s,
        "source_info": {"sample_rate": info.sr, "channels": info.channels,
                        "duration_s": round(info.duration_s, 3), "format": f"{info.format}/{info.subtype}"},
    }


def _spill_writer(task: dict[str, Any], info: audio_mod.AudioInfo, *, sr: int, n_ch: int):
    """An open file for the loudness pass to keep this input's samples in for the second pass, or ``None`` (no
    spill path in the task, or too little free disk for it)."""
    dest = task.get("spill")
    if not dest:
        return None
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    need = int(info.duration_s * sr * 1.01 + sr) * n_ch * 4
    if shutil.disk_usage(dest.parent).free < need + _SPILL_RESERVE:
        return None
    return open(dest, "wb")  # noqa: SIM115 (closed by the caller)


def _blocks(task: dict[str, Any], path: Path, *, sr: int, n_ch: int, block_s: float = 10.0) -> Iterator[np.ndarray]:
    """``[C, T]`` float32 blocks of the input at ``sr`` with ``n_ch`` channels: read back from the loudness pass's
    spill when it kept them (the same samples, without decoding and resampling again), else decoded."""
    spill = task.get("spill")
    if spill and not task["settings"].get("measure") and Path(spill).is_file():
        data = np.memmap(spill, dtype=np.float32, mode="r")
        data = data[: data.size - data.size % n_ch].reshape(-1, n_ch)
        step = int(block_s * sr)
        for i in range(0, data.shape[0], step):
            yield np.ascontiguousarray(data[i:i + step].T)
        return
    yield from audio_mod.stream(path, sr=sr, channels=n_ch, block_s=block_s)


def _measure_clip(wav: np.ndarray, sr: int, s: dict[str, Any], *, index: int,
                  real_len: int | None = None) -> dict[str, Any] | None:
    """Loudness pass: the clip's loudness and true peak, nothing written (``None`` for a silent clip); a padded
    short cue is measured on its first ``real_len`` samples. ``measured`` keeps both unrounded with the clip's
    index, so the second pass reuses them instead of measuring the same samples again."""
    wav = wav[:, :real_len]
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    if _db(rms) < s["min_rms_db"]:
        return None
    lufs, tp = audio_mod.loudness(wav, sr), audio_mod.true_peak_db(wav, sr)
    return {"loudness_in_lufs": _round(lufs), "true_peak_in_dbtp": _round(tp),
            "measured": {"index": index, "lufs": lufs if math.isfinite(lufs) else None,
                         "true_peak_dbtp": tp if math.isfinite(tp) else None}}


def measured_by_index(result: dict[str, Any]) -> dict[int, tuple[float, float]]:
    """``{clip index: (loudness LUFS, true peak dBTP)}`` from one file's loudness-pass result (clips measured as
    silent or without finite values are left out; so are entries cached before the values were kept)."""
    out = {}
    for c in result.get("clips", ()):
        m = c.get("measured")
        if m and m.get("lufs") is not None and m.get("true_peak_dbtp") is not None:
            out[int(m["index"])] = (float(m["lufs"]), float(m["true_peak_dbtp"]))
    return out


def _finish_clip(wav: np.ndarray, sr: int, start: int, index: int, task: dict[str, Any], clips_dir: Path,
                 written: list[Path], *, real_len: int | None = None) -> dict[str, Any] | None:
    """Standardise, analyse and write one clip ``[C, clip_len]``; ``real_len`` samples of it are music (a padded
    short cue: the rest is silence), and loudness and features are measured on those only."""
    s = task["settings"]
    n_real = wav.shape[1] if real_len is None else int(real_len)
    real = wav[:, :n_real]
    rms = float(np.sqrt(np.mean(np.square(real, dtype=np.float64))))
    if _db(rms) < s["min_rms_db"]:
        return None
    lufs_in, tp_in = task.get("measured", {}).get(index, (None, None))  # from the loudness pass, same samples
    std, lr = audio_mod.standardise_loudness(real, sr, target_lufs=s["target_lufs"], ceiling_dbtp=s["peak_limit_db"],
                                             policy=s["loudness_policy"], max_limiting_db=s["max_limiting_db"],
                                             measured_lufs=lufs_in, measured_peak_dbtp=tp_in)
    out = np.pad(std, ((0, 0), (0, wav.shape[1] - n_real)))
    clip_id = f"{task['track_id']}-{index:03d}"
    dest = clips_dir / f"{clip_id}.wav"
    audio_mod.write(dest, out, sr)
    written.append(dest)
    f = feat.clip_features(std, sr)
    return {
        "clip_id": clip_id, "path": f"{CLIPS_DIR}/{dest.name}", "start_s": round(start / sr, 6),
        "duration_s": round(wav.shape[1] / sr, 6), "real_duration_s": round(n_real / sr, 6),
        "sample_rate": sr, "channels": int(wav.shape[0]),
        "loudness_in_lufs": _round(lr.loudness_in_lufs), "loudness_lufs": _round(lr.loudness_lufs),
        "true_peak_in_dbtp": _round(lr.true_peak_in_dbtp), "true_peak_dbtp": _round(lr.true_peak_dbtp),
        "gain_db": _round(lr.gain_db), "loudness_policy": lr.policy, "target_lufs": _round(lr.target_lufs),
        "limiter_gain_reduction_db": _round(lr.limiter_gain_reduction_db),
        "limited_share": _round(lr.limited_share, 4),
        "peak_amplitude": _round(float(np.abs(out).max()) if out.size else 0.0, 6), "features": f,
    }
