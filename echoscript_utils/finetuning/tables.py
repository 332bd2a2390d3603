"""What notebook 04 shows: the paper's settings beside this run's, checkpoints on disk, logs, epoch samples."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..artifacts import read_json
from ..notebook import player
from .trainer import list_checkpoints

# ============================================================================================ settings
#: The paper's fine-tuning settings (see the paper digest), for the notebook's comparison table.
PAPER_SETTINGS: dict[str, str] = {
    "model": "MusicGen-small",
    "epochs": "10",
    "batch_size": "12",
    "learning_rate": "5e-5",
    "scheduler": "cosine annealing",
    "optimizer": "AdamW + weight decay",
    "precision": "fp16",
    "attention": "FlashAttention",
    "grad_accum": "used (steps not stated)",
    "cfg_dropout": "dropout + CFG (rate not stated)",
    "sampling": "genre-weighted",
    "melody": "chromagram conditioning",
    "checkpoints": "every epoch",
}


def settings_table(cfg):
    """The run's fine-tuning settings beside the paper's: ``DataFrame(setting, paper, this_run)``."""
    import pandas as pd

    t = cfg.training
    ours = {
        "model": t.model,
        "epochs": t.epochs,
        "batch_size": t.batch_size,
        "learning_rate": f"{t.learning_rate:g}",
        "scheduler": f"{t.scheduler} (warmup {t.warmup_steps})",
        "optimizer": f"AdamW wd={t.weight_decay:g} betas={tuple(t.betas)}",
        "precision": t.precision,
        "attention": t.attn_implementation,
        "grad_accum": t.grad_accum,
        "cfg_dropout": f"caption→'' p={t.cfg_dropout:g}; attributes {dict(cfg.alignment.caption_dropout)}",
        "sampling": f"genre-weighted, temperature {t.sampler_temperature:g}",
        "melody": f"chroma, dropout {t.melody_dropout:g}" if "melody" in t.model else "off (not a melody model)",
        "checkpoints": "every epoch" + (f" + every {t.save_every_steps} steps" if t.save_every_steps else ""),
    }
    extra = {"lora": f"r={t.lora.r}, alpha={t.lora.alpha}" if t.lora.enabled else "off",
             "segment_s": t.segment_s if t.segment_s else "whole clips",
             "gradient_checkpointing": t.gradient_checkpointing, "max_grad_norm": t.max_grad_norm}
    rows = [{"setting": k, "paper": v, "this_run": str(ours[k])} for k, v in PAPER_SETTINGS.items()]
    rows += [{"setting": k, "paper": "not stated", "this_run": str(v)} for k, v in extra.items()]
    return pd.DataFrame(rows)


def checkpoint_table(stage_dir: str | os.PathLike):
    """Checkpoints on disk: ``DataFrame(checkpoint, step, completed_epochs, steps_into_epoch, size_mb, written)``."""
    import pandas as pd

    rows = []
    for step, path in list_checkpoints(Path(stage_dir) / "checkpoints"):
        state = read_json(path / "state.json")
        size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
        rows.append({"checkpoint": path.name, "step": step, "completed_epochs": state["epoch"],
                     "steps_into_epoch": state["update"], "size_mb": round(size / 2**20, 2),
                     "written": state.get("written")})
    return pd.DataFrame(rows, columns=["checkpoint", "step", "completed_epochs", "steps_into_epoch", "size_mb",
                                       "written"])


# ============================================================================================ logs
def read_logs(stage_dir: str | os.PathLike) -> dict[str, Any]:
    """The stage's logs as DataFrames: ``{"train", "val", "genre_mix"}`` (empty frames when absent)."""
    import pandas as pd

    stage_dir = Path(stage_dir)
    out = {}
    for key, name in (("train", "train_log.csv"), ("val", "val_log.csv"), ("genre_mix", "genre_mix.csv")):
        p = stage_dir / name
        out[key] = pd.read_csv(p) if p.is_file() and p.stat().st_size else pd.DataFrame()
    return out


def sample_players(stage_dir: str | os.PathLike) -> list:
    """A :func:`~echoscript_utils.notebook.player` per ``samples/epoch_NN.wav``, one per epoch, in order."""
    return [player(p, sr=None, max_s=None) for p in sorted((Path(stage_dir) / "samples").glob("epoch_*.wav"))]
