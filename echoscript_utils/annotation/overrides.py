"""Human corrections of the tags: the overrides CSV (``clip_id, field, value, reviewer, timestamp, note``), read
and validated, appended atomically, and applied (the newest row per clip and field wins)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifacts import atomic_write_text
from ..errors import InputError
from ..tagging import FIELDS, VOCAB
from ..taxonomy import join_list, split_list

__all__ = ["OVERRIDE_COLUMNS", "append_overrides", "apply_overrides", "overrides_path", "read_overrides"]

OVERRIDE_COLUMNS = ["clip_id", "field", "value", "reviewer", "timestamp", "note"]


def overrides_path(cfg) -> Path:
    """``annotation.overrides_file`` or ``<run>/02_annotation/overrides.csv``."""
    return Path(cfg.annotation.overrides_file or (cfg.paths.annotation / "overrides.csv"))


def _check_value(field_name: str, value: str, where: str) -> str:
    if field_name not in FIELDS:
        raise InputError(f"{where}: field {field_name!r} must be one of {', '.join(FIELDS)}")
    labels = [value.strip()] if field_name == "genre" else split_list(value)
    if field_name == "genre" and not labels[0]:
        raise InputError(f"{where}: a genre override needs a value ({', '.join(VOCAB['genre'])})")
    bad = [lab for lab in labels if lab not in VOCAB[field_name]]
    if bad:
        raise InputError(f"{where}: {bad[0]!r} is not a {field_name} label; use one of "
                         f"{', '.join(VOCAB[field_name])}")
    return labels[0] if field_name == "genre" else join_list(labels)


def read_overrides(path: str | os.PathLike) -> pd.DataFrame:
    """Read and validate an overrides CSV (a missing file is an empty table).

    Errors name the line. Returns :data:`OVERRIDE_COLUMNS` in file order.
    """
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=OVERRIDE_COLUMNS)
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in ("clip_id", "field", "value"):
        if col not in df.columns:
            raise InputError(f"{path}: missing column {col!r}; the header must be {','.join(OVERRIDE_COLUMNS)}")
    for col in OVERRIDE_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    for i, row in enumerate(df.itertuples(index=False), start=2):
        where = f"{path} line {i}"
        if not row.clip_id.strip():
            raise InputError(f"{where}: clip_id is empty")
        df.loc[i - 2, "value"] = _check_value(row.field.strip(), row.value, where)
        df.loc[i - 2, "field"] = row.field.strip()
    return df[OVERRIDE_COLUMNS]


def append_overrides(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], *,
                     reviewer: str = "", note: str = "") -> pd.DataFrame:
    """Validate ``rows`` (``clip_id, field, value`` [, ``reviewer, note``]) and append them to the overrides
    file, rewriting it atomically (so a crash never leaves half a file). Returns the whole file's table."""
    path = Path(path)
    existing = read_overrides(path)
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    new = []
    for row in rows:
        value = row.get("value", "")
        if isinstance(value, list | tuple):
            value = join_list(value)
        fld = str(row["field"])
        new.append({"clip_id": str(row["clip_id"]), "field": fld,
                    "value": _check_value(fld, str(value), f"override for {row['clip_id']}"),
                    "reviewer": str(row.get("reviewer", reviewer)), "timestamp": str(row.get("timestamp", stamp)),
                    "note": str(row.get("note", note))})
    table = pd.concat([existing, pd.DataFrame(new, columns=OVERRIDE_COLUMNS)], ignore_index=True)
    buf = io.StringIO()
    table.to_csv(buf, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    atomic_write_text(path, buf.getvalue())
    return table


def apply_overrides(chosen: pd.DataFrame, overrides: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Replace chosen labels by the newest override per (clip, field).

    Args:
        chosen: one row per clip (``clip_id, genre, moods, instruments``), e.g. the combined tagger's.
        overrides: from :func:`read_overrides`.

    Returns:
        ``(final, report)``: ``final`` adds ``reviewed`` (list of overridden fields); ``report`` counts
        ``applied`` and lists ``unmatched`` clip ids (overrides for clips not in this run, kept in the file).
    """
    final = chosen.copy().reset_index(drop=True)
    final["reviewed"] = [[] for _ in range(len(final))]
    index = {c: i for i, c in enumerate(final["clip_id"])}
    latest = overrides.drop_duplicates(["clip_id", "field"], keep="last")
    applied, unmatched = 0, []
    for row in latest.itertuples(index=False):
        i = index.get(row.clip_id)
        if i is None:
            unmatched.append(row.clip_id)
            continue
        final.at[i, row.field] = row.value if row.field == "genre" else split_list(row.value)
        final.at[i, "reviewed"] = sorted({*final.at[i, "reviewed"], row.field})
        applied += 1
    return final, {"applied": applied, "rows": len(overrides), "unmatched": sorted(set(unmatched))}
