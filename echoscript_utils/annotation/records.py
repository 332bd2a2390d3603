"""The annotation ``metadata.jsonl``: prompt candidates per clip, the validated v2 records, and writing and
reading the file."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..artifacts import json_default, text_hash, write_if_changed
from ..dataset import find_metadata, load_metadata, read_records
from ..errors import InputError
from .schema import (
    ANNOTATION_SCHEMA_VERSION,
    COMBINED,
    AnnotatedClipRecord,
    ClipTags,
    PromptCandidate,
    TaggerInfo,
)
from .tags import _probs_by_clip

__all__ = ["build_records", "load_annotated", "prompt_candidates", "write_annotated_metadata"]


def prompt_candidates(final: pd.DataFrame, prompts: pd.DataFrame, *, per_clip: int = 3,
                      seed: int = 1234) -> dict[str, list[dict[str, Any]]]:
    """A few prompts per clip whose mood is one of the clip's moods, ranked by how many of the clip's
    instruments and genre appear in the prompt's keywords (ties broken by a generator seeded from ``seed``
    and the clip id, so the choice is stable)."""
    out: dict[str, list[dict[str, Any]]] = {}
    if per_clip <= 0 or prompts is None or prompts.empty:
        return {c: [] for c in final["clip_id"]}
    records = prompts.to_dict("records")
    for row in final.itertuples(index=False):
        moods = set(row.moods)
        pool = [p for p in records if p["mood"] in moods] or records
        wanted = {*row.instruments, row.genre}
        rng = np.random.default_rng(int(text_hash(seed, row.clip_id), 16))
        jitter = rng.random(len(pool))
        scored = sorted(range(len(pool)), key=lambda i: (-len(wanted & set(pool[i]["keywords"])), jitter[i]))
        out[row.clip_id] = [{k: pool[i][k] for k in ("prompt_id", "prompt", "scene", "mood", "keywords", "tempo")}
                            for i in scored[:per_clip]]
    return out


# ----------------------------------------------------------------------------------------- metadata
def build_records(clips: pd.DataFrame, outputs: pd.DataFrame, final: pd.DataFrame, *,
                  tagger_info: Mapping[str, Any], candidates: Mapping[str, list[dict[str, Any]]],
                  stage_dir: str | os.PathLike) -> list[AnnotatedClipRecord]:
    """Curation rows + ``tags``, ``tagger`` and ``prompt_candidates`` as validated v2 records, with ``path``
    made relative to ``stage_dir`` (where the new ``metadata.jsonl`` lives)."""
    stage_dir = Path(stage_dir).resolve()
    probs = _probs_by_clip(outputs[outputs["tagger"] == COMBINED])
    by_clip = final.set_index("clip_id")
    info = TaggerInfo.model_validate(dict(tagger_info))
    records = []
    for row in clips.to_dict("records"):
        row = {k: v for k, v in row.items() if not (isinstance(v, float) and np.isnan(v))}
        clip = row["clip_id"]
        row["path"] = os.path.relpath(Path(row["path"]).resolve(), stage_dir)
        if clip in by_clip.index:
            f = by_clip.loc[clip]
            row["tags"] = ClipTags(genre=f["genre"], moods=list(f["moods"]), instruments=list(f["instruments"]),
                                   probabilities={k: {lab: round(v, 6) for lab, v in d.items()}
                                                  for k, d in probs.get((clip, COMBINED), {}).items()},
                                   reviewed=list(f.get("reviewed", [])), source=COMBINED)
        row["tagger"] = info
        row["prompt_candidates"] = [PromptCandidate.model_validate(c) for c in candidates.get(clip, [])]
        row["schema_version"] = ANNOTATION_SCHEMA_VERSION
        records.append(AnnotatedClipRecord.model_validate(row))
    return records


def write_annotated_metadata(records: Sequence[AnnotatedClipRecord], path: str | os.PathLike) -> bool:
    """Write ``metadata.jsonl`` (v2 rows) atomically; False when the file already held these bytes."""
    lines = [json.dumps(r.model_dump(mode="json"), ensure_ascii=False, default=json_default, allow_nan=False)
             for r in records]
    return write_if_changed(path, "".join(line + "\n" for line in lines))


def load_annotated(path_or_stage_dir: str | os.PathLike) -> pd.DataFrame:
    """Read an annotation ``metadata.jsonl`` (v2; v1 files read too, without the new columns filled) and check
    every v2 row against :class:`AnnotatedClipRecord`."""

    path = find_metadata(path_or_stage_dir)
    for i, row in enumerate(read_records(path, validate=False), 1):
        if int(row.get("schema_version", 1)) >= ANNOTATION_SCHEMA_VERSION:
            try:
                AnnotatedClipRecord.model_validate(row)
            except Exception as err:  # pydantic ValidationError
                raise InputError(f"{path}:{i}: not a valid v2 row ({str(err).splitlines()[0]}); rerun the "
                                 "annotation stage") from None
    df = load_metadata(path)
    for col in ("tagger", "prompt_candidates"):
        if col not in df.columns:
            df[col] = None
    return df
