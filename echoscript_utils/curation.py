"""The curation stage: any folder of music → validated clips of exactly ``clip_s`` seconds, features, metadata.

:func:`curate` walks the input folder (recursively, any file name), and for every candidate file, in worker
processes and one file at a time (memory stays bounded by one block of audio plus one clip, however large the
folder):

1. rejects what cannot be used, with one row in ``skipped.csv`` (``source,reason``; the reason starts with its
   kind): ``directory``, ``unreadable``, ``empty``, ``not audio``, ``truncated``, ``non-finite``, ``too short``,
   ``silent``, ``duplicate`` (identical bytes) and ``near-duplicate`` (same audio re-encoded, resampled or at
   another gain; the reason names the file it duplicates; the first in path order is kept);
2. decodes block by block (libsndfile: WAV 8/16/24/32-bit and float, FLAC, OGG/Vorbis/Opus, MP3, AIFF),
   folds channels to the configured layout (5.1/7.1 with ITU-R BS.775 coefficients) and resamples to
   ``sample_rate`` with soxr HQ in streaming mode;
3. cuts whole, back-to-back clips of ``clip_s`` (or every ``hop_s``); the remainder shorter than a clip at the
   end of a track is dropped (counted in ``metrics.json``), and clips below ``min_rms_db`` are dropped as silent;
   a whole input shorter than one clip but at least ``short_cue_share`` of it (film cues and stingers) becomes
   one clip padded with silence to ``clip_s``; its ``real_duration_s`` says how much of it is music, and
   loudness, features, tags and the training loss use that part only;
4. brings each clip to one loudness under one true-peak ceiling (:func:`echoscript_utils.audio.standardise_loudness`,
   recorded per clip): ``target_lufs: auto`` (the default) first measures every clip (a quick pass, cached like
   the rest) and takes the highest target that ``auto_target_share`` of them reach by gain alone under
   ``peak_limit_db`` (−1 dBTP), at most ``auto_target_max_lufs`` (−14 LUFS, audiocraft's level); with
   ``loudness_policy: limit`` a true-peak limiter lets the remaining clips reach it too (at most
   ``max_limiting_db`` of gain reduction), so dynamic orchestral material ends up at one level instead of spread
   over 8 LU; per clip rather than per track because clips are the training examples and a track is never held
   in memory;
5. computes features (:mod:`echoscript_utils.features`) and writes the clip as 16-bit WAV.

Then, in the main process: duplicates are resolved, tracks are split train/valid/eval (whole tracks, stratified
by genre when labels exist, from the seed), ``metadata.jsonl`` (schema v1, :mod:`echoscript_utils.dataset`),
``skipped.csv``, the audiocraft and Hugging Face exports and ``metrics.json`` (with tempo and key accuracy
against ground truth where labels exist) are written atomically, and only when their bytes change.

Reruns are content-hashed: every input's result is cached under ``<output>/.cache/`` by the SHA-256 of its bytes,
its path, its track id and the settings that shape clips and features, so a second run decodes nothing and
rewrites nothing.
"""

from __future__ import annotations

import contextlib
import io
import math
import multiprocessing as mp
import os
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import audio as audio_mod
from . import dataset as ds
from . import features as feat
from .artifacts import atomic_path, ensure_dir, file_hash, read_json, text_hash, write_json, write_metrics
from .config import Config, CurationSection
from .demo_corpus import ensure_demo_corpus
from .errors import InputError
from .taxonomy import split_list

__all__ = [
    "CurationResult",
    "accuracy_table",
    "clip_frames",
    "curate",
    "find_inputs",
    "load_labels",
    "make_messy_folder",
    "source_table",
]

#: Bump when the per-file processing changes, so cached results are recomputed.
PIPELINE_VERSION = 2
CACHE_DIR = ".cache/curation"
CLIPS_DIR = "clips"
SKIPPED_COLUMNS = ("source", "reason")


# ------------------------------------------------------------------------------------------------ results
@dataclass
class CurationResult:
    """What :func:`curate` produced.

    Attributes:
        output_dir: the stage folder.
        metadata_path: its ``metadata.jsonl``.
        kept: one row per clip (the metadata, paths absolute).
        skipped: ``source, reason`` per rejected input.
        metrics: what ``metrics.json`` holds.
        seconds: wall time of this call; ``realtime_factor``: seconds of input audio handled per second
            (decoded this time, cached inputs excluded).
    """

    output_dir: Path
    metadata_path: Path
    kept: Any
    skipped: Any
    metrics: dict[str, Any]
    seconds: float = 0.0
    audio_seconds_processed: float = 0.0
    n_cached: int = 0
    changed: list[str] = field(default_factory=list)

    @property
    def realtime_factor(self) -> float | None:
        return self.audio_seconds_processed / self.seconds if self.seconds > 0 and self.audio_seconds_processed else None

    def summary(self) -> str:
        m = self.metrics
        lines = [f"kept {m['n_files_kept']} of {m['n_inputs']} files → {m['n_clips']} clips "
                 f"({m['clips_per_split']}) in {self.output_dir}"]
        for kind, n in sorted(m["skipped_by_kind"].items()):
            lines.append(f"  skipped {n:4d}  {kind}")
        if self.realtime_factor:
            lines.append(f"processed {self.audio_seconds_processed / 60:.1f} min of audio in {self.seconds:.1f} s "
                         f"({self.realtime_factor:.0f}x real time); {self.n_cached} inputs from cache")
        elif self.n_cached:
            lines.append(f"all {self.n_cached} inputs from cache ({self.seconds:.1f} s); nothing decoded")
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ inputs
def find_inputs(input_dir: str | os.PathLike, *, extensions, exclude: Path | None = None) -> list[tuple[str, Path]]:
    """Candidate inputs under ``input_dir``: ``[(relative posix path, path)]`` sorted by relative path.

    Every file or folder whose name ends with one of ``extensions`` (case-insensitive) is a candidate; folders
    named like audio files are listed so that they are reported, and are still searched. ``exclude`` (the
    output folder, when it sits inside the input) is not searched.
    """
    root = Path(input_dir)
    exts = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    ex = exclude.resolve() if exclude is not None else None
    found: list[tuple[str, Path]] = []
    for cur, dirs, files in os.walk(root):
        cur_p = Path(cur)
        keep_dirs = []
        for d in dirs:
            p = cur_p / d
            if ex is not None and p.resolve() == ex:
                continue
            keep_dirs.append(d)
            if d.lower().endswith(exts):
                found.append((p.relative_to(root).as_posix(), p))
        dirs[:] = sorted(keep_dirs)
        for f in files:
            if f.lower().endswith(exts):
                p = cur_p / f
                found.append((p.relative_to(root).as_posix(), p))
    return sorted(found, key=lambda t: t[0])


def load_labels(path: str | os.PathLike, *, input_dir: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Ground-truth labels → ``{relative input path: {track_id, title, genre, moods, instruments, bpm, key,
    mode}}``.

    Reads CSV (``file`` column required; ``moods``/``instruments`` ``;``-joined) or JSON lines. ``file`` is taken
    relative to the labels file's folder, and re-expressed relative to ``input_dir`` when given.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: labels file not found; pass a CSV with a 'file' column or leave --labels out")
    try:
        df = pd.read_json(p, lines=True) if p.suffix.lower() in (".jsonl", ".json") else pd.read_csv(p)
    except Exception as exc:
        raise InputError(f"{p}: cannot read labels ({type(exc).__name__}: {exc}); expected CSV with a 'file' column") from None
    if "file" not in df.columns:
        raise InputError(f"{p}: labels need a 'file' column (paths of the audio files); found {list(df.columns)}")
    base = p.parent.resolve()
    root = Path(input_dir).resolve() if input_dir is not None else base
    out: dict[str, dict[str, Any]] = {}
    for i, row in enumerate(df.to_dict("records"), 2):
        f = row.get("file")
        if not isinstance(f, str) or not f.strip():
            raise InputError(f"{p}: row {i}: empty 'file'; every label row names its audio file")
        full = (base / f).resolve()
        try:
            rel = full.relative_to(root).as_posix()
        except ValueError:
            rel = Path(f).as_posix()

        def get(k, row=row):
            v = row.get(k)
            return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

        bpm = get("bpm")
        try:
            bpm = float(bpm) if bpm is not None else None
        except (TypeError, ValueError):
            raise InputError(f"{p}: row {i}: bpm {bpm!r} is not a number") from None
        out[rel] = {
            "track_id": str(get("track_id")) if get("track_id") is not None else None,
            "title": get("title"), "artist": get("artist"), "genre": get("genre"),
            "moods": split_list(get("moods")), "instruments": split_list(get("instruments")),
            "bpm": bpm, "key": get("key"), "mode": get("mode"),
        }
    return out


def _slug(text: str) -> str:
    t = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    t = re.sub(r"[^A-Za-z0-9]+", "_", t).strip("_").lower()
    return t[:48] or "track"


def _track_id(rel: str, label: Mapping[str, Any] | None) -> str:
    if label and label.get("track_id"):
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(label["track_id"]))
    return f"{_slug(Path(rel).stem)}_{text_hash(rel, length=6)}"


# ------------------------------------------------------------------------------------------------ settings
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


def _auto_target(results: list[dict[str, Any]], section: CurationSection) -> tuple[float, dict[str, Any]]:
    """The corpus target from the loudness pass, and what ``metrics.json`` records about the choice."""
    clips = [c for r in results if r["status"] == "kept" for c in r["clips"]]
    lufs = [c["loudness_in_lufs"] if c["loudness_in_lufs"] is not None else math.nan for c in clips]
    peaks = [c["true_peak_in_dbtp"] if c["true_peak_in_dbtp"] is not None else math.nan for c in clips]
    target = audio_mod.auto_target_lufs(lufs, peaks, ceiling_dbtp=section.peak_limit_db,
                                        share=section.auto_target_share, max_lufs=section.auto_target_max_lufs)
    reach = np.array(lufs) + section.peak_limit_db - np.array(peaks)
    reach = reach[np.isfinite(reach)]
    return target, {"n_clips_measured": int(reach.size),
                    "share_reaching_by_gain": round(float(np.mean(reach >= target - 1e-9)), 4) if reach.size else None,
                    "reachable_lufs": _stats(list(reach))}


def _resolve(cfg_or_section) -> tuple[CurationSection, int, int, float]:
    """``(section, num_workers, seed, sampler temperature)`` from a Config or a bare section."""
    if isinstance(cfg_or_section, Config):
        sec = cfg_or_section.curation
        temp = sec.sampler_temperature
        if temp is None:
            temp = cfg_or_section.training.sampler_temperature
        return sec, cfg_or_section.run.num_workers, cfg_or_section.seed, float(temp)
    if isinstance(cfg_or_section, CurationSection):
        return cfg_or_section, 0, 1234, float(cfg_or_section.sampler_temperature or 1.0)
    if isinstance(cfg_or_section, Mapping):
        sec = CurationSection.model_validate(dict(cfg_or_section))
        return sec, 0, 1234, float(sec.sampler_temperature or 1.0)
    raise TypeError("cfg_or_section must be a Config, a CurationSection or a mapping of curation keys")


# ------------------------------------------------------------------------------------------------ one file
class _Reject(Exception):
    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


def _mp3_truncated(path: Path) -> str | None:
    """Compare the byte count in an MP3's Xing/Info header with the file's size (CBR files have none)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(10)
        off = 0
        if head[:3] == b"ID3" and len(head) == 10:
            off = 10 + ((head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]) + (10 if head[5] & 0x10 else 0)
        f.seek(off)
        frame = f.read(4096)
    for tag in (b"Xing", b"Info"):
        i = frame.find(tag)
        if 0 <= i < 200:
            flags = int.from_bytes(frame[i + 4:i + 8], "big")
            j = i + 8 + (4 if flags & 1 else 0)
            if flags & 2 and len(frame) >= j + 4:
                nbytes = int.from_bytes(frame[j:j + 4], "big")
                if nbytes > 0 and size - off < 0.97 * nbytes:
                    return f"its header promises {nbytes} bytes of audio, the file holds {size - off}"
            return None
    return None


def _truncation(info: audio_mod.AudioInfo, path: Path) -> str | None:
    m = re.search(r"^\s*(data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", info.extra, re.MULTILINE)
    if m and int(m.group(3)) < int(m.group(2)):
        return f"its header promises {int(m.group(2))} bytes of audio, the file holds {int(m.group(3))}"
    if info.format == "OGG" and ("ended unexpectedly" in info.extra or "lacks an end-of-stream" in info.extra):
        return "the Ogg stream ends without its end-of-stream page"
    if info.format == "MP3":
        return _mp3_truncated(path)
    return None


def _db(x: float) -> float:
    return 20 * math.log10(x) if x > 0 else float("-inf")


def _round(v: float | None, nd: int = 3) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), nd)


def _process(task: dict[str, Any]) -> dict[str, Any]:
    """Worker: one input file → cached result dict (clips written). Never raises for bad input."""
    rel, path = task["rel"], Path(task["path"])
    res: dict[str, Any] = {"source": rel, "status": "skipped", "clips": [], "audio_s": 0.0, "cached": False}
    written: list[Path] = []
    try:
        if path.is_dir():
            raise _Reject("directory", "a folder named like an audio file")
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise _Reject("unreadable", exc.strerror or "cannot stat") from None
        if size == 0:
            raise _Reject("empty", "0 bytes")
        try:
            sha = file_hash(path)
        except OSError as exc:
            raise _Reject("unreadable", exc.strerror or "cannot read") from None
        res["sha256"] = sha
        key = text_hash(sha, rel, task["track_id"], task["settings"], length=24)
        res["cache_key"] = key
        cache_json = Path(task["cache_dir"]) / f"{key}.json"
        if cache_json.is_file() and not task.get("force"):
            try:
                cached = read_json(cache_json)
                cached["cached"] = True
                cached["audio_s"] = 0.0
                cached["cache_key"] = key
                return cached
            except (OSError, ValueError):
                pass
        res.update(_decode_and_cut(task, path, written))
        res["status"] = "kept"
    except _Reject as r:
        for w in written:
            with contextlib.suppress(OSError):
                w.unlink()
        res.update(status="skipped", kind=r.kind, reason=f"{r.kind}: {r.detail}", clips=[], fingerprint=None)
    if "sha256" in res:
        fp = res.pop("fingerprint_array", None)
        key = text_hash(res["sha256"], rel, task["track_id"], task["settings"], length=24)
        cache_json = Path(task["cache_dir"]) / f"{key}.json"
        if fp is not None:
            with atomic_path(cache_json.with_suffix(".npy")) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, fp.astype(np.float16))
            res["fingerprint"] = str(cache_json.with_suffix(".npy"))
        audio_s = res.pop("audio_s", 0.0)
        write_json(cache_json, {k: v for k, v in res.items() if k != "cached"}, indent=None)
        res["audio_s"] = audio_s
    return res


def _decode_and_cut(task: dict[str, Any], path: Path, written: list[Path]) -> dict[str, Any]:
    s = task["settings"]
    try:
        info = audio_mod.info(path)
    except InputError as exc:
        msg = str(exc).split(": ", 1)[-1]
        # libsndfile reports an unknown format as "Error opening '<path>': File does not exist or is not a
        # regular file" or "Format not recognised"; say what it means instead
        raise _Reject("not audio", "no audio format libsndfile can decode" +
                      ("" if "Error opening" in msg else f" ({msg})")) from None
    if info.frames <= 0 or info.sr <= 0:
        why = _truncation(info, path)
        raise _Reject("truncated", why) if why else _Reject("empty", "no audio frames")
    why = _truncation(info, path)
    if why:
        raise _Reject("truncated", why)
    min_s = s["clip_s"] * min(1.0, s["short_cue_share"])
    if info.duration_s < min_s:
        raise _Reject("too short", f"{info.duration_s:.1f} s, shorter than {min_s:g} s "
                                   f"({s['short_cue_share']:g} of a {s['clip_s']:g} s clip)")
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
    try:
        for block in audio_mod.stream(path, sr=sr, channels=n_ch, block_s=10.0):
            if not np.isfinite(block).all():
                bad = int(np.argmax(~np.isfinite(block).all(axis=0)))
                raise _Reject("non-finite", f"NaN or infinite samples from {(total + bad) / sr:.2f} s")
            total += block.shape[1]
            peak = max(peak, float(np.abs(block).max()) if block.size else 0.0)
            if fpr is not None:
                fpr.update(block.mean(axis=0) if n_ch > 1 else block[0])
            buf = np.concatenate([buf, block], axis=1)
            while buf.shape[1] >= clip_len:
                rec = (_measure_clip(buf[:, :clip_len], sr, s) if measure else
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
            rec = (_measure_clip(padded, sr, s, real_len=buf.shape[1]) if measure else
                   _finish_clip(padded, sr, start, index, task, clips_dir, written, real_len=buf.shape[1]))
            if rec is None:
                n_silent += 1
            else:
                clips.append(rec)
            index = 1
            buf = buf[:, :0]
    except InputError as exc:
        raise _Reject("truncated", str(exc).split(": ", 1)[-1]) from None
    expected = info.frames * sr / info.sr
    # an MP3's frame count can be an estimate (no Xing header), so only its header check above applies
    if info.format != "MP3" and total < 0.98 * expected - sr * 0.05:
        raise _Reject("truncated", f"decoded {total / sr:.1f} s of the {info.duration_s:.1f} s its header promises")
    if peak <= 0.0 or _db(peak) < s["min_rms_db"]:
        raise _Reject("silent", f"digital silence (peak {_db(peak):.0f} dBFS)" if peak <= 0 else
                      f"peak {_db(peak):.1f} dBFS is below the {s['min_rms_db']:g} dB silence threshold")
    if not clips:
        raise _Reject("silent", f"every {s['clip_s']:g} s window is below {s['min_rms_db']:g} dBFS RMS")
    return {
        "clips": clips,
        "fingerprint_array": None if fpr is None else fpr.result(),
        "n_silent_clips": n_silent,
        "tail_s": round(max(0, total - ((index - 1) * hop_len + clip_len if index else 0)) / sr, 3),
        "audio_s": info.duration_s,
        "source_info": {"sample_rate": info.sr, "channels": info.channels,
                        "duration_s": round(info.duration_s, 3), "format": f"{info.format}/{info.subtype}"},
    }


def _measure_clip(wav: np.ndarray, sr: int, s: dict[str, Any], *, real_len: int | None = None) -> dict[str, Any] | None:
    """Loudness pass: the clip's loudness and true peak, nothing written (``None`` for a silent clip); a padded
    short cue is measured on its first ``real_len`` samples."""
    wav = wav[:, :real_len]
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64))))
    if _db(rms) < s["min_rms_db"]:
        return None
    return {"loudness_in_lufs": _round(audio_mod.loudness(wav, sr)),
            "true_peak_in_dbtp": _round(audio_mod.true_peak_db(wav, sr))}


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
    std, lr = audio_mod.standardise_loudness(real, sr, target_lufs=s["target_lufs"], ceiling_dbtp=s["peak_limit_db"],
                                             policy=s["loudness_policy"], max_limiting_db=s["max_limiting_db"])
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


# ------------------------------------------------------------------------------------------------ driver
def _worker_init() -> None:
    """One BLAS thread per worker: the small matrix products of the features run 20x slower when BLAS
    threads of several processes fight over the cores."""
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)


def _single_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _run_tasks(tasks: list[dict[str, Any]], *, num_workers: int, progress: bool,
               desc: str = "curation") -> list[dict[str, Any]]:
    from tqdm.auto import tqdm

    results: list[dict[str, Any]] = []
    bar = tqdm(total=len(tasks), desc=desc, unit="file", disable=not progress or not tasks,
               file=sys.stderr)
    try:
        if num_workers <= 1 or len(tasks) <= 1:
            with _single_thread():
                for t in tasks:
                    results.append(_process(t))
                    bar.update()
        else:
            feat.warmup()  # forked workers inherit the imported, compiled analysis code
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
            with ProcessPoolExecutor(max_workers=min(num_workers, len(tasks)), mp_context=ctx,
                                     initializer=_worker_init) as pool:
                futures = [pool.submit(_process, t) for t in tasks]
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update()
    finally:
        bar.close()
    return results


def _dedupe(results: list[dict[str, Any]], *, threshold: float, screen: float = 0.9) -> None:
    """Mark later copies of an earlier kept input (path order) as duplicates, in place.

    Identical bytes → ``duplicate``. Otherwise inputs of about the same duration (within 2 % or 1 s) are screened
    by the dot products of their fingerprint signatures (block matrix products, so thousands of inputs stay
    cheap), and only pairs above ``screen`` get the full lag-searched correlation; at or above ``threshold`` the
    later input is a ``near-duplicate`` of the earlier one.
    """
    kept = sorted((r for r in results if r["status"] == "kept"), key=lambda r: r["source"])
    by_sha: dict[str, str] = {}
    uniq: list[dict[str, Any]] = []
    for r in kept:
        first = by_sha.get(r["sha256"])
        if first is not None:
            r.update(status="skipped", kind="duplicate", reason=f"duplicate: same bytes as {first}")
        else:
            by_sha[r["sha256"]] = r["source"]
            uniq.append(r)
    if len(uniq) < 2:
        return

    def load(r) -> np.ndarray:
        return np.load(r["fingerprint"]).astype(np.float32) if r.get("fingerprint") else np.zeros((0, 13), np.float32)

    sigs = np.stack([feat.fingerprint_signature(load(r)) for r in uniq])
    dur = np.array([float(r["source_info"]["duration_s"]) for r in uniq])
    tol = np.maximum(1.0, 0.02 * dur)
    candidates: dict[int, list[tuple[float, int]]] = {}
    idx = np.arange(len(uniq))
    for s0 in range(0, len(uniq), 512):
        rows = slice(s0, s0 + 512)
        sim = sigs[rows] @ sigs.T
        close = np.abs(dur[rows, None] - dur[None, :]) <= np.maximum(tol[rows, None], tol[None, :])
        earlier = idx[None, :] < idx[rows, None]
        for a, b in np.argwhere((sim >= screen) & close & earlier):
            candidates.setdefault(s0 + int(a), []).append((-float(sim[a, b]), int(b)))
    for j in sorted(candidates):
        fp = load(uniq[j])
        for _, i in sorted(candidates[j]):
            if uniq[i]["status"] != "kept":
                continue
            sim = feat.fingerprint_similarity(fp, load(uniq[i]))
            if sim >= threshold:
                uniq[j].update(status="skipped", kind="near-duplicate",
                               reason=f"near-duplicate: same audio as {uniq[i]['source']} "
                                      f"(fingerprint similarity {sim:.3f})")
                break


def _write_skipped(rows: list[tuple[str, str]], path: Path) -> bool:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SKIPPED_COLUMNS)
    w.writerows(rows)
    return ds.write_if_changed(path, buf.getvalue())


def _prune_cache(cache_dir: Path, keep: set[str]) -> None:
    """Drop cached results of inputs that are gone or changed (keys not seen in this run)."""
    for f in cache_dir.glob("*"):
        if f.is_file() and f.name.split(".", 1)[0] not in keep and not f.name.startswith("."):
            f.unlink()


def _prune_clips(clips_dir: Path, keep: set[str]) -> int:
    n = 0
    if clips_dir.is_dir():
        for f in clips_dir.iterdir():
            if f.is_file() and f.suffix == ".wav" and f.name not in keep:
                f.unlink()
                n += 1
    return n


def _stats(values: list[float]) -> dict[str, float | None]:
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if not v.size:
        return {"mean": None, "min": None, "max": None, "std": None}
    return {"mean": round(float(v.mean()), 3), "min": round(float(v.min()), 3), "max": round(float(v.max()), 3),
            "std": round(float(v.std()), 3)}


def curate(input_dir: str | os.PathLike, output_dir: str | os.PathLike, *, cfg_or_section,
           labels: str | os.PathLike | Mapping | None = None, num_workers: int | None = None,
           seed: int | None = None, progress: bool = True, exports: bool = True) -> CurationResult:
    """Run the curation stage (see the module docstring for every step).

    Args:
        input_dir: folder of music, searched recursively.
        output_dir: stage folder: ``clips/``, ``metadata.jsonl``, ``skipped.csv``, ``metrics.json``, ``exports/``.
        cfg_or_section: a :class:`~echoscript_utils.config.Config` (its ``curation`` section, ``run.num_workers``,
            ``seed`` and ``training.sampler_temperature`` are used) or a bare ``CurationSection``/mapping.
        labels: ground-truth labels file (CSV/JSONL with a ``file`` column) or an already loaded mapping; by
            default ``labels.csv`` at the input root when present (the demo corpus writes one).
        num_workers: worker processes (default ``run.num_workers``; 0/1 = in this process).
        seed: split seed (default the run seed).
        progress: show a progress bar.
        exports: write ``exports/audiocraft`` and ``exports/hf``.

    Returns:
        :class:`CurationResult`.

    Raises:
        InputError: the input folder does not exist or the labels cannot be read.
    """
    t0 = time.perf_counter()
    section, cfg_workers, cfg_seed, temperature = _resolve(cfg_or_section)
    workers = cfg_workers if num_workers is None else num_workers
    seed = cfg_seed if seed is None else seed
    src, out, clips_dir, cache_dir = _stage_folders(input_dir, output_dir)
    label_map = _label_map(labels, src)

    candidates = find_inputs(src, extensions=section.extensions, exclude=out)
    settings = _settings(section)
    tasks = _plan_tasks(candidates, label_map, settings=settings, clips_dir=clips_dir, cache_dir=cache_dir)
    measured, auto_info = [], None
    if section.target_lufs == "auto":  # a loudness pass over every clip first; the target comes from the corpus
        measured = _run_tasks([dict(t, settings=_measure_settings(settings)) for t in tasks], num_workers=workers,
                              progress=progress, desc="curation: loudness")
        target, auto_info = _auto_target(measured, section)
        settings = {**settings, "target_lufs": target}
        tasks = [dict(t, settings=settings) for t in tasks]
    task_by_source = {t["rel"]: t for t in tasks}
    results = _run_and_dedupe(tasks, task_by_source, out=out, section=section, workers=workers, progress=progress)

    kept = sorted((r for r in results if r["status"] == "kept"), key=lambda r: r["source"])
    split_of = _track_splits(kept, task_by_source, label_map, section=section, seed=seed)
    records = _clip_records(kept, task_by_source, label_map, split_of)
    meta_path = out / "metadata.jsonl"
    changed, skipped_rows = _write_tables(results, records, meta_path=meta_path, out=out, clips_dir=clips_dir,
                                          cache_dir=cache_dir, keep_cached=measured)

    kept_df = ds.load_metadata(meta_path, validate=False)
    import pandas as pd

    skipped_df = pd.DataFrame(skipped_rows, columns=list(SKIPPED_COLUMNS))
    if exports and len(kept_df):
        _write_exports(kept_df, out, temperature=temperature)

    metrics = _metrics(results, records, candidates, section, seed=seed, temperature=temperature,
                       target_lufs=settings["target_lufs"], auto_info=auto_info)
    if write_metrics(out, metrics):
        changed.append("metrics.json")
    processed = sum(r.get("audio_s", 0.0) for r in results)
    return CurationResult(output_dir=out, metadata_path=meta_path, kept=kept_df, skipped=skipped_df,
                          metrics=metrics, seconds=time.perf_counter() - t0, audio_seconds_processed=processed,
                          n_cached=sum(1 for r in results if r.get("cached")), changed=changed)


def _stage_folders(input_dir: str | os.PathLike, output_dir: str | os.PathLike) -> tuple[Path, Path, Path, Path]:
    """The resolved input folder (checked), and the output, clips and cache folders (created)."""
    src = Path(input_dir).expanduser()
    if not src.is_dir():
        raise InputError(f"{src}: input folder not found; pass a folder of audio files (--input)")
    src = src.resolve()
    out = ensure_dir(Path(output_dir).expanduser()).resolve()
    clips_dir = ensure_dir(out / CLIPS_DIR)
    cache_dir = ensure_dir(out / CACHE_DIR)
    return src, out, clips_dir, cache_dir


def _label_map(labels: str | os.PathLike | Mapping | None, src: Path) -> dict:
    """Ground-truth labels by relative path: the given mapping or file, else ``labels.csv`` in ``src``, else none."""
    if labels is None and (src / "labels.csv").is_file():
        labels = src / "labels.csv"
    return (dict(labels) if isinstance(labels, Mapping) else
            load_labels(labels, input_dir=src) if labels is not None else {})


def _plan_tasks(candidates: list[tuple[str, Path]], label_map: dict, *, settings: dict[str, Any], clips_dir: Path,
                cache_dir: Path) -> list[dict[str, Any]]:
    """One worker task per candidate input, each with a unique track id."""
    tasks, used_ids = [], Counter()
    for rel, path in candidates:
        tid = _track_id(rel, label_map.get(rel))
        used_ids[tid] += 1
        if used_ids[tid] > 1:  # two label rows with one track_id: keep ids unique
            tid = f"{tid}_{used_ids[tid]}"
        tasks.append({"rel": rel, "path": str(path), "track_id": tid, "settings": settings,
                      "clips_dir": str(clips_dir), "cache_dir": str(cache_dir)})
    return tasks


def _run_and_dedupe(tasks: list[dict[str, Any]], task_by_source: dict[str, dict[str, Any]], *, out: Path,
                    section: CurationSection, workers: int, progress: bool) -> list[dict[str, Any]]:
    """Run every task, mark duplicates, and redo the kept inputs whose clips are missing; returns the results."""
    results = _run_tasks(tasks, num_workers=workers, progress=progress)
    by_source = {r["source"]: r for r in results}

    # cached results whose clips went missing (deleted by hand, or dropped as a duplicate last time) are redone
    def missing_clips(r):
        return r["status"] == "kept" and any(not (out / c["path"]).is_file() for c in r["clips"])

    if section.dedupe:
        _dedupe(results, threshold=section.dedupe_similarity)
    redo = [dict(task_by_source[r["source"]], force=True) for r in results if missing_clips(r)]
    if redo:
        for r in _run_tasks(redo, num_workers=workers, progress=progress):
            by_source[r["source"]].update(r)
    return results


def _track_splits(kept: list[dict[str, Any]], task_by_source: dict[str, dict[str, Any]], label_map: dict, *,
                  section: CurationSection, seed: int) -> dict[str, str]:
    """Split of every kept track: pinned by its top folder when asked, else drawn stratified by genre."""
    track_genre = {}
    pinned: dict[str, str] = {}
    for r in kept:
        tid = task_by_source[r["source"]]["track_id"]
        track_genre[tid] = (label_map.get(r["source"]) or {}).get("genre")
        top = r["source"].split("/", 1)[0]
        if section.split_from_folders and "/" in r["source"] and top in section.splits:
            pinned[tid] = top
    free = {t: g for t, g in track_genre.items() if t not in pinned}
    return {**ds.assign_splits(free, section.splits, seed=seed), **pinned} if free else dict(pinned)


def _clip_records(kept: list[dict[str, Any]], task_by_source: dict[str, dict[str, Any]], label_map: dict,
                  split_of: dict[str, str]) -> list[dict[str, Any]]:
    """One metadata record (schema v1) per kept clip."""
    records: list[dict[str, Any]] = []
    for r in kept:
        t = task_by_source[r["source"]]
        lab = label_map.get(r["source"])
        truth = None
        if lab:
            truth = {k: lab.get(k) for k in ("title", "artist", "genre", "moods", "instruments", "bpm", "key", "mode")}
        si = r["source_info"]
        for c in r["clips"]:
            records.append({
                "schema_version": ds.SCHEMA_VERSION, "clip_id": c["clip_id"], "track_id": t["track_id"],
                "source": r["source"], "source_sha256": r["sha256"], "path": c["path"], "start_s": c["start_s"],
                "duration_s": c["duration_s"], "real_duration_s": c["real_duration_s"],
                "sample_rate": c["sample_rate"], "channels": c["channels"],
                "split": split_of[t["track_id"]], "source_sample_rate": si["sample_rate"],
                "source_channels": si["channels"], "source_duration_s": si["duration_s"],
                "source_format": si["format"], "loudness_in_lufs": c["loudness_in_lufs"],
                "loudness_lufs": c["loudness_lufs"], "true_peak_in_dbtp": c["true_peak_in_dbtp"],
                "true_peak_dbtp": c["true_peak_dbtp"], "gain_db": c["gain_db"],
                "loudness_policy": c["loudness_policy"], "target_lufs": c["target_lufs"],
                "limiter_gain_reduction_db": c["limiter_gain_reduction_db"], "limited_share": c["limited_share"],
                "peak_amplitude": c["peak_amplitude"], "features": c["features"],
                "truth": truth, "tags": None, "prompt": None,
            })
    return records


def _write_tables(results: list[dict[str, Any]], records: list[dict[str, Any]], *, meta_path: Path, out: Path,
                  clips_dir: Path, cache_dir: Path,
                  keep_cached: list[dict[str, Any]] = ()) -> tuple[list[str], list[tuple[str, str]]]:
    """Write ``metadata.jsonl`` and ``skipped.csv`` (when their bytes change), remove clips and cache entries no
    longer used (``keep_cached``: further results whose cache entries stay, the loudness pass's); returns the names
    of the files that changed and the skipped rows."""
    changed = []
    if ds.write_metadata(records, meta_path):
        changed.append("metadata.jsonl")
    skipped_rows = sorted((r["source"], r["reason"]) for r in results if r["status"] != "kept")
    if _write_skipped(skipped_rows, out / "skipped.csv"):
        changed.append("skipped.csv")
    _prune_clips(clips_dir, {Path(rec["path"]).name for rec in records})

    _prune_cache(cache_dir, {r["cache_key"] for r in [*results, *keep_cached] if r.get("cache_key")})
    return changed, skipped_rows


def _write_exports(kept_df, out: Path, *, temperature: float) -> None:
    """``exports/audiocraft`` (with genre-balanced sampling weights) and ``exports/hf``."""
    weights = ds.genre_weights([ds.clip_genre(r) for r in kept_df.to_dict("records")], temperature=temperature)
    ds.export_audiocraft(kept_df, out / "exports" / "audiocraft", weights=weights)
    ds.export_hf(kept_df, out / "exports" / "hf")


def _loudness_metrics(records, section: CurationSection, *, target_lufs: float | None,
                      auto_info: dict[str, Any] | None) -> dict[str, Any]:
    """The loudness policy and what it achieved: spreads (middle 95 % of clips), limiting, peaks."""

    def spread(key):
        v = np.array([r[key] for r in records if r[key] is not None], dtype=np.float64)
        return round(float(np.percentile(v, 97.5) - np.percentile(v, 2.5)), 3) if v.size else None

    gr = [r["limiter_gain_reduction_db"] or 0.0 for r in records]
    limited = [g for g in gr if g > 0]
    peaks = [r["peak_amplitude"] for r in records if r["peak_amplitude"]]
    return {
        "policy": section.loudness_policy if target_lufs is not None else "none",
        "target_lufs": target_lufs, "target_requested": section.target_lufs,
        "auto_target_share": section.auto_target_share if section.target_lufs == "auto" else None,
        "auto": auto_info, "ceiling_dbtp": section.peak_limit_db, "max_limiting_db": section.max_limiting_db,
        "spread_in_lu_95": spread("loudness_in_lufs"), "spread_lu_95": spread("loudness_lufs"),
        "clips_reaching_target": int(sum(1 for r in records if target_lufs is not None and r["loudness_lufs"] is not None
                                         and abs(r["loudness_lufs"] - target_lufs) <= 0.5)),
        "clips_limited": len(limited),
        "limiter_gain_reduction_db": _stats(limited),
        "max_sample_peak_dbfs": round(_db(max(peaks)), 3) if peaks else None,
        "max_true_peak_dbtp": _stats([r["true_peak_dbtp"] for r in records])["max"],
    }


def _metrics(results, records, candidates, section: CurationSection, *, seed: int, temperature: float,
             target_lufs: float | None = None, auto_info: dict[str, Any] | None = None) -> dict:
    kept_files = [r for r in results if r["status"] == "kept"]
    kinds = Counter(r["kind"] for r in results if r["status"] != "kept")
    splits = Counter(r["split"] for r in records)
    tracks = {}
    for r in records:
        tracks.setdefault(r["split"], set()).add(r["track_id"])
    with_truth = [r for r in records if r["truth"]]
    tempo = feat.tempo_scores([r["features"].get("bpm") for r in with_truth],
                              [r["truth"].get("bpm") for r in with_truth])
    key = feat.key_scores([(r["features"].get("key"), r["features"].get("mode")) for r in with_truth],
                          [(r["truth"].get("key"), r["truth"].get("mode")) for r in with_truth])
    clip_s = section.clip_s
    return {
        "n_inputs": len(candidates),
        "n_files_kept": len(kept_files),
        "n_skipped": sum(kinds.values()),
        "skipped_by_kind": dict(sorted(kinds.items())),
        "n_clips": len(records),
        "n_tracks": len({r["track_id"] for r in records}),
        "clips_per_split": dict(sorted(splits.items())),
        "tracks_per_split": {k: len(v) for k, v in sorted(tracks.items())},
        "input_hours_kept": round(sum(r["source_info"]["duration_s"] for r in kept_files) / 3600, 4),
        "clip_hours": round(len(records) * clip_s / 3600, 4),
        "silent_clips_dropped": int(sum(r.get("n_silent_clips", 0) for r in kept_files)),
        "tail_seconds_dropped": round(sum(r.get("tail_s", 0.0) for r in kept_files), 3),
        "short_cues_padded": int(sum(1 for r in records if r["real_duration_s"] < r["duration_s"] - 1e-6)),
        "padding_seconds": round(sum(r["duration_s"] - r["real_duration_s"] for r in records), 3),
        "loudness_in_lufs": _stats([r["loudness_in_lufs"] for r in records]),
        "loudness_lufs": _stats([r["loudness_lufs"] for r in records]),
        "true_peak_dbtp": _stats([r["true_peak_dbtp"] for r in records]),
        "clips_below_target": int(sum(1 for r in records if target_lufs is not None
                                      and r["loudness_lufs"] is not None
                                      and r["loudness_lufs"] < target_lufs - 0.05)),
        "loudness": _loudness_metrics(records, section, target_lufs=target_lufs, auto_info=auto_info),
        "tempo": tempo,
        "key": key,
        "n_clips_with_truth": len(with_truth),
        "settings": {**_settings(section), "splits": section.splits, "seed": seed,
                     "sampler_temperature": temperature, "dedupe": section.dedupe,
                     "dedupe_similarity": section.dedupe_similarity},
        "schema_version": ds.SCHEMA_VERSION,
    }


# ------------------------------------------------------------------------------------------------ helpers
def clip_frames(path: str | os.PathLike) -> dict[str, Any]:
    """Frame-level log-mel and chroma of one clip (for the spectrogram + chroma figure)."""
    wav, sr = audio_mod.load(path)
    return feat.clip_features(wav, sr, return_frames=True)["_frames"]


def accuracy_table(df):
    """Per-clip estimated vs true tempo and key with the MIREX key score (rows with ground truth only)."""
    import pandas as pd

    rows = []
    for r in df.to_dict("records"):
        truth = r.get("truth")
        if not isinstance(truth, dict):
            continue
        f = r["features"]
        est_bpm, ref_bpm = f.get("bpm"), truth.get("bpm")
        ratio = est_bpm / ref_bpm if est_bpm and ref_bpm else None
        rows.append({
            "clip_id": r["clip_id"], "genre": truth.get("genre"), "true_bpm": ref_bpm, "bpm": est_bpm,
            "tempo_ok": ratio is not None and abs(ratio - 1) <= 0.04,
            "tempo_octave": ratio is not None and abs(ratio - 1) > 0.04
            and any(abs(ratio - m) <= 0.04 * m for m in (2, 0.5, 3, 1 / 3)),
            "true_key": f"{truth.get('key')} {truth.get('mode')}", "key": f"{f.get('key')} {f.get('mode')}",
            "key_score": feat.mirex_key_score(f.get("key"), f.get("mode"), truth.get("key"), truth.get("mode")),
            "key_confidence": f.get("key_confidence"),
        })
    cols = ["clip_id", "genre", "true_bpm", "bpm", "tempo_ok", "tempo_octave", "true_key", "key", "key_score",
            "key_confidence"]
    return pd.DataFrame(rows, columns=cols)


def source_table(kept):
    """One row per kept input: source, track, split, clips, duration, original format, rate and channels."""
    import pandas as pd

    if kept.empty:
        return pd.DataFrame(columns=["source", "track_id", "split", "clips", "duration_s", "format", "sample_rate",
                                     "channels"])
    g = kept.groupby("source", sort=True)
    return pd.DataFrame({
        "track_id": g["track_id"].first(), "split": g["split"].first(), "clips": g.size(),
        "duration_s": g["source_duration_s"].first().round(1), "format": g["source_format"].first(),
        "sample_rate": g["source_sample_rate"].first(), "channels": g["source_channels"].first(),
    }).reset_index()


def make_messy_folder(source: str | os.PathLike, out_dir: str | os.PathLike, *, clip_s: float = 30.0,
                      seed: int = 0) -> Path:
    """Build a small folder that exercises every rejection rule from one real track (a robustness check).

    Writes ``keep/`` (the track as 24-bit 48 kHz stereo, and as a 5.1 FLAC with the music in the centre channel)
    and ``reject/`` (sorted after ``keep/``, so the copies there are the later ones): an empty file, text named ``.mp3``, a truncated WAV, a folder named ``.wav``, a float
    WAV with a NaN, digital silence, a file shorter than one clip, a byte-identical copy and a quieter MP3
    re-encode of the good WAV. Only the first ``clip_s + 5`` seconds of ``source`` are used.

    Returns:
        ``out_dir``.
    """
    import shutil

    import soundfile as sf

    wav, sr = audio_mod.load(source, sr=48000, mono=True)
    wav = wav[:, : int((clip_s + 5) * sr)]
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    good, bad = ensure_dir(out / "keep"), ensure_dir(out / "reject")
    stereo = np.concatenate([wav, 0.8 * wav])
    sf.write(str(good / "stereo 48k 24-bit.wav"), stereo.T, sr, subtype="PCM_24")
    surround = np.zeros((6, wav.shape[1]), np.float32)
    surround[2] = np.roll(wav[0], int(0.37 * sr))  # other content than the stereo file: not a duplicate
    sf.write(str(good / "surround 5.1.flac"), surround.T, sr, subtype="PCM_24")
    (bad / "empty.wav").write_bytes(b"")
    (bad / "notes.mp3").write_text("shopping list: strings, timpani, rosin\n" * 40, encoding="utf-8")
    full = (good / "stereo 48k 24-bit.wav").read_bytes()
    (bad / "truncated.wav").write_bytes(full[: len(full) // 3])
    (bad / "album.wav").mkdir()
    nan = wav.copy()
    nan[0, sr] = np.nan
    sf.write(str(bad / "nan.wav"), nan.T, sr, subtype="FLOAT")
    sf.write(str(bad / "silence.wav"), np.zeros((wav.shape[1], 1), np.float32), sr, subtype="PCM_16")
    sf.write(str(bad / "jingle.wav"), wav[:, : int(min(clip_s / 3, 10) * sr)].T, sr, subtype="PCM_16")
    shutil.copyfile(good / "stereo 48k 24-bit.wav", bad / "stereo copy.wav")
    sf.write(str(bad / "re-encoded.mp3"), (0.5 * stereo).T, sr)
    return out


def run(cfg: Config, *, progress: bool = True) -> CurationResult:
    """Stage 01 in one call: curate ``data.input_dir`` (or the demo corpus when it is unset) into the run's
    ``01_curation/`` with ``data.labels`` as ground truth; :func:`curate` writes ``metrics.json``."""
    input_dir = cfg.data.input_dir or ensure_demo_corpus(cfg, progress=progress)
    return curate(input_dir, cfg.paths.curation, cfg_or_section=cfg, labels=cfg.data.labels, progress=progress)
