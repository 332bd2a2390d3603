"""Fine-tuning figures: loss curves, learning rate, and the genre mix the sampler drew.

Each function takes the DataFrames of :func:`echoscript_utils.finetuning.read_logs`, draws on ``ax`` (a new one
when ``None``) and returns it; saving is :func:`echoscript_utils.plots.save_figure`'s job.
"""

from __future__ import annotations

import numpy as np

from .core import MODEL_COLORS, get_ax, styled

__all__ = ["genre_mix", "loss_curves", "lr_curve"]


@styled
def loss_curves(train_log, val_log=None, *, ax=None, smooth: int = 5):
    """Training loss per step (raw and a running mean over ``smooth`` steps) and validation loss per epoch.

    Args:
        train_log: ``train_log.csv`` rows (``step``, ``loss``; skipped steps have NaN loss).
        val_log: ``val_log.csv`` rows (``epoch``, ``step``, ``val_loss``), drawn at the step where each epoch ended.
        smooth: window of the running mean (1 disables it).
    """
    ax = get_ax(ax)
    color = MODEL_COLORS["echoscript"]
    if len(train_log):
        steps, loss = train_log["step"].to_numpy(), train_log["loss"].to_numpy(dtype=float)
        ax.plot(steps, loss, color=color, alpha=0.3, lw=1, label="train loss (step)")
        if smooth > 1 and len(loss) >= smooth:
            mean = train_log["loss"].rolling(smooth, center=True, min_periods=1).mean()  # skips NaN steps
            ax.plot(steps, mean, color=color, lw=2, label=f"train loss (centred mean of {smooth})")
    if val_log is not None and len(val_log) and val_log["val_loss"].notna().any():
        ax.plot(val_log["step"], val_log["val_loss"], "o-", color="#1f77b4", label="validation loss (epoch)")
        for _, row in val_log.iterrows():
            ax.axvline(row["step"], color="#999999", lw=0.6, ls=":")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title("Fine-tuning loss")
    ax.legend(loc="upper right")
    return ax


@styled
def lr_curve(train_log, *, ax=None, grad_norm: bool = True):
    """Learning rate per step (left axis) and, optionally, the gradient norm before clipping (right axis)."""
    ax = get_ax(ax)
    if len(train_log):
        ax.plot(train_log["step"], train_log["lr"], color="#2ca02c", lw=2, label="learning rate")
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        if grad_norm and "grad_norm" in train_log:
            ax2 = ax.twinx()
            ax2.plot(train_log["step"], train_log["grad_norm"], color="#7f7f7f", lw=1, alpha=0.7, label="grad norm")
            ax2.set_ylabel("gradient norm")
            ax2.grid(False)
            ax2.legend(loc="lower left")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_title("Schedule (warmup + decay)")
    ax.legend(loc="upper right")
    return ax


@styled
def genre_mix(mix, *, ax=None):
    """Share of each genre in the training clips, in the sampler's expectation, and as drawn (mean over epochs).

    Args:
        mix: ``genre_mix.csv`` rows (``epoch``, ``genre``, ``drawn_share``, ``expected_share``, ``corpus_share``).
    """
    ax = get_ax(ax)
    if not len(mix):
        return ax
    g = mix.groupby("genre")[["corpus_share", "expected_share", "drawn_share"]].mean()
    x = np.arange(len(g))
    width = 0.27
    for i, (col, label, color) in enumerate((("corpus_share", "clips in the corpus", "#bbbbbb"),
                                             ("expected_share", "sampler target", "#1f77b4"),
                                             ("drawn_share", "drawn (mean over epochs)", MODEL_COLORS["echoscript"]))):
        ax.bar(x + (i - 1) * width, g[col], width, label=label, color=color)
    ax.set_xticks(x, g.index, rotation=20)
    ax.set_ylabel("share of training examples")
    ax.set_title("Genre mix: corpus vs weighted sampler")
    ax.legend()
    return ax
