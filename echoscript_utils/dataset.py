"""The clip metadata schema (v1), reading and writing ``metadata.jsonl``, splits, sampling weights and exports.

One JSON object per clip, validated by :class:`ClipRecord`. Curation writes the first version
(``01_curation/metadata.jsonl``); annotation and alignment add fields and write their own copy, so the schema
allows extra keys. ``echoscript_utils/data/metadata.schema.json`` is generated from :class:`ClipRecord`
(:func:`write_json_schema`) and a test keeps it in step.

>>> df = load_metadata("outputs/demo/01_curation")          # doctest: +SKIP
>>> df[["clip_id", "split", "path"]].head()                  # doctest: +SKIP

Exports (both regenerated from the metadata, byte-stable on reruns):

* ``exports/audiocraft/<split>/data.jsonl``: audiocraft ``AudioMeta`` rows
  (``path, duration, sample_rate, amplitude, weight, info_path``) and, beside every clip's audio file, a
  music-info JSON of the same stem with every ``MusicInfo`` field (``title, artist, key, bpm, genre, moods,
  keywords, description, name, instrument``), so ``MusicDataset.from_meta(<split dir>)`` reads it as is.
* ``exports/hf/``: a Hugging Face ``datasets.DatasetDict`` saved with ``save_to_disk`` (``train``,
  ``validation``, ``test``), an ``Audio`` column plus ids, features and ground truth; ``datasets.load_from_disk``
  reads it. (The ``audiofolder`` builder of datasets >= 4 needs ``torchcodec`` merely to build, so it is not
  used.)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .artifacts import atomic_path, atomic_write_text, ensure_dir, json_default, text_hash, write_if_changed
from .errors import InputError

__all__ = [
    "SCHEMA_VERSION",
    "ClipFeatures",
    "ClipRecord",
    "OpenModel",
    "Truth",
    "assign_splits",
    "export_audiocraft",
    "export_hf",
    "find_metadata",
    "genre_weights",
    "json_schema",
    "load_metadata",
    "read_records",
    "real_duration",
    "write_json_schema",
    "write_metadata",
]

#: Version of the clip schema written in every row (``schema_version``).
SCHEMA_VERSION = 1
#: The generated JSON Schema file shipped with the package.
SCHEMA_PATH = Path(__file__).resolve().parent / "data" / "metadata.schema.json"
#: Stage folders that write a ``metadata.jsonl``, newest first.
METADATA_STAGES = ("03_alignment", "02_annotation", "01_curation")


# ------------------------------------------------------------------------------------------------ schema
class OpenModel(BaseModel):
    """A schema model that keeps keys it does not name (later stages add fields to the same rows)."""

    model_config = ConfigDict(extra="allow")


class ClipFeatures(OpenModel):
    """librosa features of one clip (analysis at 22.05 kHz mono; see :mod:`echoscript_utils.features`)."""

    bpm: float | None = Field(None, description="global tempo estimate in beats per minute")
    bpm_confidence: float | None = Field(None, ge=0, le=1, description="tempo salience in [0, 1]")
    key: str | None = Field(None, description="tonic pitch class, e.g. 'A' or 'F#'")
    mode: str | None = Field(None, description="'major' or 'minor'")
    key_confidence: float | None = Field(None, ge=0, le=1,
                                         description="correlation of the chroma with the winning key profile, "
                                                     "clipped to [0, 1]")
    mfcc_mean: list[float] = Field(default_factory=list, description="mean of 20 MFCCs over time")
    mfcc_std: list[float] = Field(default_factory=list, description="standard deviation of the MFCCs")
    mel_mean_db: list[float] = Field(default_factory=list, description="mean log-mel energy per band (dB)")
    chroma_mean: list[float] = Field(default_factory=list, description="mean chroma, C..B, each frame max-normalised")
    chroma_std: list[float] = Field(default_factory=list)
    spectral_centroid_hz: float | None = None
    rms_db: float | None = Field(None, description="RMS level of the stored clip in dBFS")
    onset_rate: float | None = Field(None, description="detected onsets per second")


class Truth(OpenModel):
    """Ground-truth labels of the clip's track (from ``labels.csv``), when the user has them."""

    title: str | None = None
    genre: str | None = None
    moods: list[str] = Field(default_factory=list)
    instruments: list[str] = Field(default_factory=list)
    bpm: float | None = None
    key: str | None = None
    mode: str | None = None


class ClipRecord(OpenModel):
    """One clip: a whole window of ``duration_s`` seconds cut from one source file (schema v1).

    Paths are stored relative to the folder of the ``metadata.jsonl`` that holds the row;
    :func:`load_metadata` makes them absolute. Later stages add keys (``tagger``, ``caption``, ...).
    """

    schema_version: int = Field(SCHEMA_VERSION, description="version of this schema")
    clip_id: str = Field(..., description="unique, stable id: <track_id>-<index>")
    track_id: str = Field(..., description="id of the source track; splits never separate one track's clips")
    source: str = Field(..., description="input file, relative to the input folder")
    source_sha256: str | None = Field(None, description="SHA-256 of the input file's bytes")
    path: str = Field(..., description="clip audio file, relative to the metadata file's folder")
    start_s: float = Field(..., ge=0, description="clip start in the source, seconds")
    duration_s: float = Field(..., gt=0, description="clip length in seconds (exactly curation.clip_s)")
    real_duration_s: float | None = Field(None, gt=0, description="seconds of music at the start of the clip; "
                                                                  "less than duration_s for a short cue padded "
                                                                  "with silence")
    sample_rate: int = Field(..., gt=0, description="clip sample rate in Hz")
    channels: int = Field(..., ge=1, description="clip channel count")
    split: str = Field(..., description="train / valid / eval")
    source_sample_rate: int | None = None
    source_channels: int | None = None
    source_duration_s: float | None = None
    source_format: str | None = Field(None, description="container/codec as libsndfile names it, e.g. WAV/PCM_24")
    loudness_in_lufs: float | None = Field(None, description="integrated loudness of the clip before normalisation")
    loudness_lufs: float | None = Field(None, description="integrated loudness of the stored clip")
    true_peak_in_dbtp: float | None = Field(None, description="true peak (4x oversampled) of the clip before "
                                                               "normalisation, dBTP")
    true_peak_dbtp: float | None = Field(None, description="true peak (4x oversampled) of the stored clip, dBTP")
    peak_amplitude: float | None = Field(None, ge=0, description="sample peak of the stored clip (linear)")
    gain_db: float | None = Field(None, description="gain applied by loudness normalisation")
    loudness_policy: str | None = Field(None, description="limit (gain + true-peak limiter), gain (gain only) or "
                                                          "none")
    target_lufs: float | None = Field(None, description="the loudness target the clip was brought to")
    limiter_gain_reduction_db: float | None = Field(None, ge=0, description="largest gain reduction of the "
                                                                            "true-peak limiter, dB (0: not engaged)")
    limited_share: float | None = Field(None, ge=0, le=1, description="share of the clip's samples the limiter "
                                                                      "lowered by more than 0.1 dB")
    features: ClipFeatures = Field(default_factory=ClipFeatures)
    truth: Truth | None = Field(None, description="ground-truth labels of the track, or null")
    tags: dict[str, Any] | None = Field(None, description="automatic tags (annotation stage): genre, moods, "
                                                          "instruments, ...")
    prompt: str | None = Field(None, description="text prompt chosen for the clip (alignment stage)")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one ``metadata.jsonl`` row."""
    schema = ClipRecord.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"echoscript-clip-metadata-v{SCHEMA_VERSION}"
    return schema


def write_json_schema(path: str | os.PathLike = SCHEMA_PATH) -> Path:
    """(Re)generate the shipped JSON Schema file from :class:`ClipRecord`."""
    text = json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return atomic_write_text(path, text)


# ------------------------------------------------------------------------------------------------ read/write
def find_metadata(path: str | os.PathLike) -> Path:
    """Resolve a ``metadata.jsonl`` from a file, a stage folder or a run folder (newest stage that has one)."""
    p = Path(path)
    if p.is_file():
        return p
    if (p / "metadata.jsonl").is_file():
        return p / "metadata.jsonl"
    for stage in METADATA_STAGES:
        if (p / stage / "metadata.jsonl").is_file():
            return p / stage / "metadata.jsonl"
    raise InputError(f"{p}: no metadata.jsonl here; run the curation stage first (echoscript curate)")


def read_records(path_or_stage_dir: str | os.PathLike, *, validate: bool = True) -> list[dict[str, Any]]:
    """Rows of a ``metadata.jsonl`` as dicts (paths as stored, relative), validated against the schema."""
    path = find_metadata(path_or_stage_dir)
    rows: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{i}: not valid JSON ({exc.msg}); rerun the stage that wrote it") from None
            if validate:
                try:
                    ClipRecord.model_validate(row)
                except ValidationError as err:
                    first = err.errors()[0]
                    loc = ".".join(str(x) for x in first["loc"])
                    raise InputError(f"{path}:{i}: field {loc!r}: {first['msg']}; "
                                     f"rerun the stage that wrote it") from None
            rows.append(row)
    return rows


def load_metadata(path_or_stage_dir: str | os.PathLike, *, validate: bool = True, flatten: bool = False):
    """Read a ``metadata.jsonl`` into a DataFrame, one row per clip, with ``path`` made absolute.

    Args:
        path_or_stage_dir: the file, a stage folder (``<run>/01_curation``) or a run folder (the newest of
            alignment → annotation → curation is read).
        validate: check every row against :class:`ClipRecord` (errors name the line).
        flatten: add ``features.*`` / ``truth.*`` / ``tags.*`` columns next to the nested dict columns.

    Returns:
        ``pandas.DataFrame``; nested fields (``features``, ``truth``, ``tags``) stay dicts (``None`` if absent).
    """
    import pandas as pd

    path = find_metadata(path_or_stage_dir)
    rows = read_records(path, validate=validate)
    base = path.parent.resolve()
    for row in rows:
        if row.get("path"):
            p = Path(row["path"])
            row["path"] = str(p if p.is_absolute() else (base / p))
    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(columns=list(ClipRecord.model_fields))
    if flatten:
        for col in ("features", "truth", "tags"):
            if col in df.columns:
                flat = pd.json_normalize([v if isinstance(v, dict) else {} for v in df[col]])
                flat.columns = [f"{col}.{c}" for c in flat.columns]
                flat.index = df.index
                df = pd.concat([df, flat], axis=1)
    return df


def _dumps_row(row: Mapping[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, default=json_default, allow_nan=False)


def write_metadata(records: Iterable[ClipRecord | Mapping[str, Any]], path: str | os.PathLike) -> bool:
    """Atomically write ``metadata.jsonl``; rows are validated first. Returns False when the file already held
    exactly these bytes (it is then left untouched, so reruns change nothing)."""
    lines = []
    for rec in records:
        model = rec if isinstance(rec, ClipRecord) else ClipRecord.model_validate(dict(rec))
        lines.append(_dumps_row(model.model_dump(mode="json")))
    return write_if_changed(path, "".join(line + "\n" for line in lines))


# ------------------------------------------------------------------------------------------------ splits
def assign_splits(tracks: Mapping[str, str | None], shares: Mapping[str, float], *, seed: int) -> dict[str, str]:
    """Assign whole tracks to splits, stratified by genre, reproducibly from ``seed``.

    Tracks are grouped by genre (``None`` forms its own group); each group is shuffled with a generator seeded
    from ``seed`` and the groups are laid end to end; walking that order, each track goes to the split that is
    furthest below its share so far. So every genre is spread over the splits in proportion, and every split
    with a positive share gets at least one track once there are as many tracks as such splits.

    Args:
        tracks: ``{track_id: genre or None}``.
        shares: ``{"train": 0.8, "valid": 0.1, "eval": 0.1}`` (normalised here).
        seed: the run seed.

    Returns:
        ``{track_id: split}``.
    """
    names = [s for s, v in shares.items() if v > 0]
    if not names:
        raise InputError("curation.splits: at least one split needs a positive share")
    total = sum(shares[s] for s in names)
    frac = np.array([shares[s] / total for s in names])
    rng = np.random.default_rng(seed)
    groups: dict[str, list[str]] = defaultdict(list)
    for tid in sorted(tracks):
        groups[str(tracks[tid]) if tracks[tid] else "\uffff"].append(tid)
    order: list[str] = []
    for g in sorted(groups):
        members = groups[g]
        order.extend(members[i] for i in rng.permutation(len(members)))
    n = len(order)
    counts = np.zeros(len(names))
    out: dict[str, str] = {}
    # splits that must get one track: reserve the first positions for the smallest shares
    must = len(names) if n >= len(names) else 0
    for i, tid in enumerate(order):
        deficit = frac * (i + 1) - counts
        if must:
            empty = [j for j in range(len(names)) if counts[j] == 0]
            remaining = n - i
            if len(empty) >= remaining:
                deficit = np.where(counts == 0, deficit + 1e6, deficit)
        j = int(np.argmax(deficit + 1e-9 * frac))
        counts[j] += 1
        out[tid] = names[j]
    return out


# ------------------------------------------------------------------------------------------------ weights
def genre_weights(genres: Sequence[str | None], *, temperature: float = 1.0) -> np.ndarray:
    """Sampling weight per item that balances genres: ``w_i ∝ freq(genre_i) ** -temperature``.

    ``temperature=0`` gives uniform weights, ``1`` the inverse genre frequency (every genre drawn equally
    often), values between soften the correction. Missing genres (``None``/NaN/"") form one group.
    Weights are scaled to mean 1 so they read as "times the uniform rate".

    Args:
        genres: one genre label per item (clip).
        temperature: strength of the balancing, ``>= 0``.

    Returns:
        float64 array ``[N]`` with mean 1 (empty input → empty array).
    """
    if temperature < 0:
        raise ValueError("temperature must be >= 0")
    keys = ["" if g is None or (isinstance(g, float) and math.isnan(g)) else str(g) for g in genres]
    if not keys:
        return np.zeros(0)
    counts = Counter(keys)
    n = len(keys)
    w = np.array([(counts[k] / n) ** (-temperature) for k in keys], dtype=np.float64)
    return w / w.mean()


# ------------------------------------------------------------------------------------------------ exports
def _write_trimmed(src: Path, dst: Path, *, seconds: float) -> None:
    """Write the first ``seconds`` of ``src`` to ``dst`` in the same format (only when the bytes change)."""
    import io

    import soundfile as sf

    info = sf.info(str(src))
    data, sr = sf.read(str(src), frames=int(round(seconds * info.samplerate)), dtype="int16"
                       if info.subtype == "PCM_16" else "float32", always_2d=True)
    buf = io.BytesIO()
    sf.write(buf, data, sr, format=info.format, subtype=info.subtype)
    if dst.is_file() and dst.read_bytes() == buf.getvalue():
        return

    with atomic_path(dst) as tmp:
        tmp.write_bytes(buf.getvalue())


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` to ``dst`` (copy across file systems); leave ``dst`` alone if it is already the same."""
    if dst.exists():
        try:
            if os.path.samefile(src, dst):
                return
            if dst.stat().st_size == src.stat().st_size and dst.read_bytes() == src.read_bytes():
                return
        except OSError:
            pass
        dst.unlink()
    ensure_dir(dst.parent)
    try:
        os.link(src, dst)
    except OSError:
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def _prune(folder: Path, keep: set[str], suffixes: tuple[str, ...]) -> None:
    if not folder.is_dir():
        return
    for f in folder.iterdir():
        if f.is_file() and f.suffix in suffixes and f.name not in keep:
            f.unlink()


def music_info(row: Mapping[str, Any]) -> dict[str, Any]:
    """audiocraft ``MusicInfo`` fields for one clip (ground truth first, automatic tags second, features last)."""
    truth, tags, feats = _d(row.get("truth")), _d(row.get("tags")), _d(row.get("features"))
    key = truth.get("key") or feats.get("key")
    mode = truth.get("mode") or feats.get("mode")
    bpm = truth.get("bpm") if truth.get("bpm") is not None else feats.get("bpm")
    genre = truth.get("genre") or tags.get("genre")
    moods = list(truth.get("moods") or tags.get("moods") or [])
    instruments = list(truth.get("instruments") or tags.get("instruments") or [])
    keywords = [k for k in [genre, *moods, *instruments] if k]
    description = row.get("prompt") or row.get("caption") or ", ".join(keywords) or None
    return {
        "title": truth.get("title") or row.get("track_id"),
        "artist": truth.get("artist") or "",
        "key": f"{key} {mode}" if key and mode else (key or ""),
        "bpm": round(float(bpm), 2) if bpm is not None else "",
        "genre": genre or "",
        "moods": moods,
        "keywords": keywords,
        "description": description or "",
        "name": row["clip_id"],
        "instrument": ", ".join(instruments) if instruments else "",
    }


def export_audiocraft(df, out_dir: str | os.PathLike, *, weights: Sequence[float] | None = None) -> dict[str, Path]:
    """Write audiocraft's manifest layout: ``<out_dir>/<split>/data.jsonl`` + audio + info JSON per clip.

    Each clip's audio is hard-linked (copied across file systems) as ``<split>/<clip_id>.wav`` beside its
    ``<clip_id>.json`` music info, because ``MusicDataset`` looks for the info at
    ``Path(meta.path).with_suffix('.json')``. ``path`` is absolute (audiocraft resolves nothing without dora).
    ``amplitude`` is the clip's sample peak, ``weight`` the genre sampling weight, ``info_path`` null.
    ``duration`` is the clip's music (:func:`real_duration`), and a short cue padded with silence is exported
    without its padding, so audiocraft reads only the cue, pads it itself and masks the padded frames out of
    its loss.

    Args:
        df: metadata from :func:`load_metadata` (absolute ``path``), with ``true_peak_dbtp`` when known.
        out_dir: ``<stage>/exports/audiocraft``.
        weights: one sampling weight per row (default: :func:`genre_weights` at temperature 1).

    Returns:
        ``{split: path of its data.jsonl}``.
    """
    out = ensure_dir(out_dir).resolve()
    rows = df.to_dict("records")
    if weights is None:
        weights = genre_weights([clip_genre(r) for r in rows], temperature=1.0)
    by_split: dict[str, list[tuple[dict, float]]] = defaultdict(list)
    for r, w in zip(rows, weights, strict=True):
        by_split[r["split"]].append((r, float(w)))
    written: dict[str, Path] = {}
    for split in sorted(by_split):
        folder = ensure_dir(out / split)
        lines, keep = [], set()
        for r, w in sorted(by_split[split], key=lambda t: t[0]["clip_id"]):
            src = Path(r["path"])
            audio = folder / f"{r['clip_id']}{src.suffix}"
            if real_duration(r) < float(r["duration_s"]) - 1e-6:
                _write_trimmed(src, audio, seconds=real_duration(r))
            else:
                _link_or_copy(src, audio)
            write_if_changed(audio.with_suffix(".json"),
                             json.dumps(music_info(r), indent=2, sort_keys=True, ensure_ascii=False) + "\n")
            keep.update({audio.name, audio.with_suffix(".json").name})
            peak = r.get("peak_amplitude")
            lines.append(json.dumps({
                "path": str(audio), "duration": real_duration(r), "sample_rate": int(r["sample_rate"]),
                "amplitude": None if peak is None or (isinstance(peak, float) and math.isnan(peak)) else float(peak),
                "weight": round(w, 6), "info_path": None,
            }))
        _prune(folder, keep, (".wav", ".flac", ".json"))
        written[split] = folder / "data.jsonl"
        write_if_changed(written[split], "".join(line + "\n" for line in lines))
    for stale in out.iterdir():
        if stale.is_dir() and stale.name not in by_split:
            shutil.rmtree(stale)
    return written


def real_duration(row: Mapping[str, Any]) -> float:
    """Seconds of music in a clip: ``real_duration_s`` (a padded short cue), else ``duration_s``."""
    v = row.get("real_duration_s")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return float(row["duration_s"])
    return float(v)


def _d(value: Any) -> dict:
    """A nested field as a dict (``None``/NaN from a DataFrame → ``{}``)."""
    return value if isinstance(value, dict) else {}


def clip_genre(row: Mapping[str, Any]) -> str | None:
    for col in ("truth", "tags"):
        v = row.get(col)
        if isinstance(v, dict) and v.get("genre"):
            return v["genre"]
    return None


#: Columns of the Hugging Face export besides ``audio`` and the flattened features / ground truth.
HF_COLUMNS = ("clip_id", "track_id", "source", "start_s", "duration_s", "sample_rate", "channels")
#: Our split names → the names ``datasets`` users expect.
HF_SPLITS = {"train": "train", "valid": "validation", "eval": "test"}


def hf_rows(df) -> list[dict[str, Any]]:
    """Flat rows of the Hugging Face export (one per clip; ``audio`` is the clip's absolute path)."""
    rows = []
    for r in sorted(df.to_dict("records"), key=lambda t: t["clip_id"]):
        feats, truth = _d(r.get("features")), _d(r.get("truth"))
        rows.append({
            "audio": str(r["path"]), **{c: r.get(c) for c in HF_COLUMNS}, "real_duration_s": real_duration(r),
            "split": r["split"],
            "bpm": feats.get("bpm"), "bpm_confidence": feats.get("bpm_confidence"), "key": feats.get("key"),
            "mode": feats.get("mode"), "key_confidence": feats.get("key_confidence"),
            "genre": truth.get("genre") or clip_genre(r) or "", "moods": list(truth.get("moods") or []),
            "instruments": list(truth.get("instruments") or []),
            "true_bpm": truth.get("bpm"), "true_key": truth.get("key"), "true_mode": truth.get("mode"),
            "prompt": r.get("prompt") if isinstance(r.get("prompt"), str) else "",
        })
    return rows


#: Largest ``.arrow`` shard of the Hugging Face export. ``save_to_disk`` holds a shard's embedded audio in memory
#: while writing it, so this bounds the export's memory whatever the corpus size (datasets' default is 500 MB).
HF_MAX_SHARD_BYTES = 32 << 20


def export_hf(df, out_dir: str | os.PathLike) -> Path:
    """Write a Hugging Face ``datasets.DatasetDict`` with ``save_to_disk`` (splits ``train``/``validation``/``test``
    from train/valid/eval); read it back with ``datasets.load_from_disk(out_dir)``.

    The ``audio`` column is an ``Audio`` feature; ``save_to_disk`` embeds each clip's WAV bytes, so the folder is
    self-contained (a second copy of the audio; what ``push_to_hub`` uploads). Decoding the column needs
    ``torchcodec`` (datasets >= 4); ``dataset.cast_column("audio", Audio(decode=False))`` gives the bytes
    without it. The folder is rewritten only when its rows change (``.rows_hash`` holds their hash), so reruns
    leave it alone.

    Returns:
        ``out_dir``.
    """
    import datasets
    import pyarrow as pa

    out = Path(out_dir).resolve()
    rows = hf_rows(df)
    stamp_value = text_hash_rows(rows)
    stamp = out / ".rows_hash"
    if stamp.is_file() and stamp.read_text().strip() == stamp_value and (out / "dataset_dict.json").is_file():
        return out
    audio_type = datasets.Audio()
    splits = {}
    for ours, theirs in HF_SPLITS.items():
        part = [r for r in rows if r["split"] == ours]
        if not part:
            continue
        audio = [{"bytes": None, "path": r["audio"]} for r in part]
        cols = {k: [r[k] for r in part] for k in part[0] if k != "audio"}
        table = pa.table({"audio": pa.array(audio, type=audio_type.pa_type),
                          **{k: pa.array(v) for k, v in cols.items()}})
        features = datasets.Features.from_arrow_schema(table.schema)
        features["audio"] = audio_type
        table = table.cast(features.arrow_schema)
        splits[theirs] = datasets.Dataset(table, info=datasets.DatasetInfo(features=features), split=theirs,
                                          fingerprint=text_hash_rows(part))
    tmp = out.with_name(f".{out.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    with _quiet_progress(datasets):
        datasets.DatasetDict(splits).save_to_disk(str(tmp), max_shard_size=HF_MAX_SHARD_BYTES)
    (tmp / ".rows_hash").write_text(stamp_value + "\n")
    old = out.with_name(f".{out.name}.old")
    if out.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(out, old)
    os.replace(tmp, out)
    if old.exists():
        shutil.rmtree(old)
    return out


@contextlib.contextmanager
def _quiet_progress(datasets):
    was = datasets.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            datasets.utils.logging.enable_progress_bar()


def text_hash_rows(rows: list[dict[str, Any]], *extra: Any) -> str:

    return text_hash(rows, *extra, length=32)
