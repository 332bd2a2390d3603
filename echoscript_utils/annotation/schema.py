"""The clip schema after annotation (version 2): the curation row plus its tags, the taggers that made them and
the scene-prompt candidates."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..dataset import ClipRecord, OpenModel

__all__ = ["ANNOTATION_SCHEMA_VERSION", "COMBINED", "AnnotatedClipRecord", "ClipTags", "PromptCandidate",
           "TaggerInfo", "json_schema"]

#: Schema version of rows written by this stage (curation writes 1).
ANNOTATION_SCHEMA_VERSION = 2
#: Name of the pseudo-tagger that averages the chosen taggers.
COMBINED = "combined"


class ClipTags(OpenModel):
    """The tags of one clip: chosen labels, probabilities per field and which fields a person set."""

    genre: str | None = Field(None, description="one genre (argmax of the combined probabilities, or a reviewer's)")
    moods: list[str] = Field(default_factory=list)
    instruments: list[str] = Field(default_factory=list)
    probabilities: dict[str, dict[str, float]] = Field(default_factory=dict,
                                                       description="field → label → combined probability")
    reviewed: list[str] = Field(default_factory=list, description="fields set by a human override")
    source: str = Field(COMBINED, description="tagger whose probabilities the labels come from")


class TaggerInfo(OpenModel):
    names: list[str] = Field(default_factory=list, description="taggers that ran")
    versions: dict[str, str] = Field(default_factory=dict, description="tagger name → version (weights + mapping)")
    combined: list[str] = Field(default_factory=list, description="taggers averaged into the tags")
    threshold: float = 0.2
    top_k: int = 3
    min_labels: int = 1


class PromptCandidate(OpenModel):
    prompt_id: str
    prompt: str
    scene: str = ""
    mood: str = ""
    keywords: list[str] = Field(default_factory=list)
    tempo: list[str] = Field(default_factory=list)


class AnnotatedClipRecord(ClipRecord):
    """A clip row after annotation (schema v2): v1 plus ``tags``, ``tagger`` and ``prompt_candidates``."""

    schema_version: int = Field(ANNOTATION_SCHEMA_VERSION, description="version of this schema")
    tags: ClipTags | None = None  # type: ignore[assignment]
    tagger: TaggerInfo | None = None
    prompt_candidates: list[PromptCandidate] = Field(default_factory=list)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of one annotation ``metadata.jsonl`` row (schema v2)."""
    schema = AnnotatedClipRecord.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"echoscript-clip-metadata-v{ANNOTATION_SCHEMA_VERSION}"
    return schema

