"""What the curation stage reads: the candidate files under the input folder, the ground-truth labels, the
settings, and one worker task per file (with a unique track id)."""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifacts import text_hash
from ..config import Config, CurationSection
from ..errors import InputError
from ..taxonomy import split_list

__all__ = ["find_inputs", "load_labels"]


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
