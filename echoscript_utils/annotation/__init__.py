"""The annotation stage: tag curated clips, measure the taggers against ground truth, apply human corrections,
attach scene-prompt candidates and write ``02_annotation/metadata.jsonl`` (clip schema version 2).

Products in ``<run>/02_annotation/`` (every one written atomically):

``tagger_outputs.csv``
    ``clip_id, tagger, field, label, probability``: every tagger's probabilities for every clip, plus the
    ``combined`` rows (mean over the taggers in ``annotation.combine``). Accuracy is recomputed from this file,
    ``settings.json`` and the ``truth`` in ``metadata.jsonl`` alone (:func:`recompute_accuracy`).
``settings.json``
    Selection rule (``threshold``, ``top_k``, ``min_labels``), the combined taggers and each tagger's version.
``overrides.csv`` (or ``annotation.overrides_file``)
    Human corrections, ``clip_id, field, value, reviewer, timestamp, note``; ``value`` is a genre or a
    ``;``-joined label list. The newest row per (clip, field) wins and is applied on every run, so a rerun
    never loses a reviewer's work. Written only by people and :func:`append_overrides` (the review widget).
``prompts.jsonl`` / ``prompts.csv``
    The scene prompts (see :mod:`echoscript_utils.prompts`).
``metadata.jsonl``
    The curation rows plus ``tags`` (chosen ``genre``/``moods``/``instruments``, ``probabilities`` per field,
    ``reviewed`` fields, ``source``), ``tagger`` (names, versions, selection rule) and ``prompt_candidates``,
    with ``schema_version`` 2 (:class:`AnnotatedClipRecord`); ``dataset.load_metadata`` reads it like v1.

Modules: :mod:`.schema` (the v2 row), :mod:`.tags` (taggers, their cache, label selection), :mod:`.accuracy`
(scores against ground truth), :mod:`.overrides` (human corrections), :mod:`.records` (``metadata.jsonl``),
:mod:`.stage` (the steps and :func:`run`), :mod:`.review` (the review widget).
"""

from __future__ import annotations

from .accuracy import (
    AccuracyReport,
    disagreements,
    evaluate,
    genre_confusion,
    label_auc,
    label_metrics,
    recompute_accuracy,
    truth_table,
)
from .overrides import OVERRIDE_COLUMNS, append_overrides, apply_overrides, overrides_path, read_overrides
from .records import build_records, load_annotated, prompt_candidates, write_annotated_metadata
from .schema import (
    ANNOTATION_SCHEMA_VERSION,
    COMBINED,
    AnnotatedClipRecord,
    ClipTags,
    PromptCandidate,
    TaggerInfo,
    json_schema,
)
from .stage import (
    AnnotationResult,
    final_tags,
    load_clips,
    run,
    scene_prompts,
    stage_metrics,
    tag_clips,
    write_stage_metadata,
)
from .tags import (
    OUTPUT_COLUMNS,
    build_taggers,
    choose_all,
    corpus_scores,
    read_tagger_outputs,
    run_taggers,
    tag_distribution,
    torch_threads,
    write_settings,
    write_tagger_outputs,
)

__all__ = [
    "ANNOTATION_SCHEMA_VERSION",
    "AccuracyReport",
    "AnnotatedClipRecord",
    "AnnotationResult",
    "COMBINED",
    "OVERRIDE_COLUMNS",
    "run",
    "append_overrides",
    "apply_overrides",
    "build_records",
    "build_taggers",
    "choose_all",
    "disagreements",
    "evaluate",
    "final_tags",
    "genre_confusion",
    "json_schema",
    "label_auc",
    "label_metrics",
    "load_annotated",
    "load_clips",
    "overrides_path",
    "prompt_candidates",
    "read_overrides",
    "read_tagger_outputs",
    "recompute_accuracy",
    "run_taggers",
    "scene_prompts",
    "stage_metrics",
    "tag_clips",
    "tag_distribution",
    "truth_table",
    "write_annotated_metadata",
    "write_settings",
    "write_stage_metadata",
    "write_tagger_outputs",
    "ClipTags",
    "OUTPUT_COLUMNS",
    "PromptCandidate",
    "TaggerInfo",
    "corpus_scores",
    "torch_threads",
]
