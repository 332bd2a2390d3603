"""Figures: one style, plot functions that draw on an ``ax`` and return it, one :func:`save_figure`.

Stage-specific plots live in submodules (``plots.curation``, ``plots.listening``, ...); every one follows the
librosa convention: ``fn(data, *, ax=None, ...) -> Axes``, never saving files itself. Importing the package
leaves matplotlib's settings alone: the plot functions draw in the workbook's style (:mod:`.core`).
"""

from .core import (
    MODEL_COLORS,
    STYLE,
    empty_axes,
    get_ax,
    group_offsets,
    save_figure,
    style,
    styled,
    subplots,
    use_style,
)

__all__ = ["MODEL_COLORS", "STYLE", "empty_axes", "get_ax", "group_offsets", "save_figure", "style", "styled",
           "subplots", "use_style"]
