"""Model and dataset cards for what a run made, and publishing them to the Hugging Face hub.

A run leaves two things others may want: the fine-tuned model (``04_finetuning/final/``, a transformers folder)
and the curated dataset (``01_curation/exports/hf/``, a ``datasets`` folder). Each gets a card, written with
``huggingface_hub``'s :class:`~huggingface_hub.ModelCard` / :class:`~huggingface_hub.DatasetCard` from the
templates ``data/model_card.md`` and ``data/dataset_card.md``:

* :func:`gather_facts` (:mod:`.facts`) reads what the stages recorded — every ``NN_stage/metrics.json``, the
  newest ``metadata.jsonl``, ``04_finetuning/genre_mix.csv``, the model's ``config.json`` — plus the run's
  parameters, into one JSON-able dict. No stage module is imported: the cards only read files.
* :func:`write_cards` (:mod:`.render`) stores those facts as ``<run>/card_facts.json`` and renders
  ``final/README.md`` and ``exports/hf/README.md`` (with ``exports/hf/sources.csv``, the per-track sources and
  licences). The runner calls it after the last stage, so the cards carry the evaluation and the listening test;
  stage 04 calls it before it pushes (``training.push_to_hub``); ``echoscript report`` refreshes them.
* :func:`publish` (:mod:`.publish`) pushes either folder with its card. It refuses, with one line and before
  anything is sent, when a repo name is invalid, a card would be empty, the model (or data) is a demo's, the hub
  is in offline mode, or no token is set. The token is passed to the client and never printed.

>>> write_cards(load_config("params/demo.yaml"))                              # doctest: +SKIP
{'model': PosixPath('.../04_finetuning/final/README.md'), 'dataset': PosixPath('.../exports/hf/README.md')}
>>> publish("outputs/demo", model_repo="me/score-model", allow_demo=True)      # doctest: +SKIP
"""

from __future__ import annotations

from .facts import FACTS_NAME, MUSICGEN_LICENCE, demo_reasons, gather_facts, hub_licence, track_sources
from .publish import PublishRefused, preflight, publish
from .render import (
    DATASET_PLACEHOLDER,
    DEMO_TAG,
    MODEL_PLACEHOLDER,
    card_problems,
    cards_html,
    render_dataset_card,
    render_model_card,
    write_cards,
)

__all__ = [
    "DATASET_PLACEHOLDER",
    "DEMO_TAG",
    "FACTS_NAME",
    "MODEL_PLACEHOLDER",
    "MUSICGEN_LICENCE",
    "PublishRefused",
    "card_problems",
    "cards_html",
    "demo_reasons",
    "gather_facts",
    "hub_licence",
    "preflight",
    "publish",
    "render_dataset_card",
    "render_model_card",
    "track_sources",
    "write_cards",
]
