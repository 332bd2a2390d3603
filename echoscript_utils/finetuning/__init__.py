"""Stage 04, fine-tuning MusicGen with the paper's recipe (see :mod:`.trainer` for the recipe in full).

| module | what |
|---|---|
| :mod:`.data` | clips → codec tokens, genre-balanced sampler, delay pattern, batches |
| :mod:`.token_cache` | content-hashed cache of codec tokens and chroma |
| :mod:`.trainer` | :class:`TrainingRun`: optimiser, schedule, precision, checkpoints, resume, logs |
| :mod:`.tables` | what notebook 04 shows: settings, checkpoints, logs, samples |

:func:`run` is the stage's entry point (``echoscript train PARAMS`` calls it too).
"""

from .data import (
    BatchSpec,
    ClipTokens,
    GenreSampler,
    delay_pattern,
    load_training_clips,
    make_batch,
    model_inputs,
    stage_input_dir,
)
from .tables import PAPER_SETTINGS, checkpoint_table, read_logs, sample_players, settings_table
from .trainer import LOG_COLUMNS, NonFiniteLossError, TrainingRun, train_from_config


def run(cfg, *, progress: bool = True) -> dict:
    """Stage 04 in one call: :func:`train_from_config` (it writes ``04_finetuning/metrics.json``)."""
    return train_from_config(cfg, progress=progress)

__all__ = [
    "LOG_COLUMNS",
    "PAPER_SETTINGS",
    "BatchSpec",
    "ClipTokens",
    "GenreSampler",
    "NonFiniteLossError",
    "TrainingRun",
    "checkpoint_table",
    "delay_pattern",
    "load_training_clips",
    "make_batch",
    "model_inputs",
    "read_logs",
    "run",
    "sample_players",
    "settings_table",
    "stage_input_dir",
    "train_from_config",
]
