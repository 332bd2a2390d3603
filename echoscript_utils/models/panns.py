"""PANNs Cnn14 (Kong et al., 2020): the AudioSet tagger the paper uses, loaded without the package's side effects.

We never use ``panns_inference``'s ``AudioTagging`` wrapper: importing the package runs ``wget`` for its label
list and the wrapper re-downloads (and truncates) small checkpoints. Instead the model module is loaded on its
own (:func:`panns_cnn14_class`), the checkpoint is fetched once by :func:`echoscript_utils.models.hub.resolve_checkpoint`
into the model cache, and the label list is our own copy (``data/audioset_labels.csv``: ``index, mid,
display_name`` of the AudioSet release's class list in Cnn14's output order; AudioSet labels by Google, CC BY 4.0).
Input: mono 32 kHz; outputs 527 class probabilities and a 2048-d embedding per window.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import DependencyError, InputError, ModelNotFoundError
from .checkpoints import load_state_dict
from .hub import CheckpointSource

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
AUDIOSET_LABELS_CSV = DATA_DIR / "audioset_labels.csv"

#: Where Cnn14 weights come from, for the resolver's messages.
CHECKPOINT_SOURCE = CheckpointSource("PANNs", "annotation.panns_checkpoint",
                                     "Cnn14_mAP=0.431.pth from zenodo.org/record/3987831", "cnn14.pth")

@lru_cache(maxsize=1)
def _labels_cached(path: str):
    import pandas as pd

    df = pd.read_csv(path, dtype={"index": int, "mid": str, "display_name": str})
    if list(df.columns) != ["index", "mid", "display_name"] or not (df["index"] == np.arange(len(df))).all():
        raise InputError(f"{path}: expected columns index,mid,display_name with index 0..N-1 in order")
    return df


def audioset_labels(path: str | os.PathLike | None = None):
    """The 527 AudioSet classes in Cnn14 output order: DataFrame ``index, mid, display_name``."""
    return _labels_cached(str(path or AUDIOSET_LABELS_CSV)).copy()


_PANNS_ALIAS = "_echoscript_panns_inference"


def panns_cnn14_class():
    """Return ``panns_inference.models.Cnn14`` without running the package's ``__init__``.

    ``import panns_inference`` (or any submodule) runs ``wget`` for a label CSV at import time, and leaves an
    empty file behind when offline. Here the package folder is mounted under a private module name so only
    ``models.py`` and ``pytorch_utils.py`` execute.
    """
    mod_name = f"{_PANNS_ALIAS}.models"
    if mod_name not in sys.modules:
        spec = importlib.util.find_spec("panns_inference")
        if spec is None or not spec.submodule_search_locations:
            raise DependencyError("panns_inference is not installed; pip install panns-inference torchlibrosa")
        pkg = types.ModuleType(_PANNS_ALIAS)
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules.setdefault(_PANNS_ALIAS, pkg)
        try:
            importlib.import_module(mod_name)
        except ImportError as exc:
            raise DependencyError(f"panns_inference.models could not be imported ({exc}); "
                                  "pip install torchlibrosa") from None
    return sys.modules[mod_name].Cnn14


#: Cnn14's fixed front-end (the released AudioSet checkpoints were trained with these).
CNN14_SETTINGS = {"sample_rate": 32000, "window_size": 1024, "hop_size": 320, "mel_bins": 64,
                  "fmin": 50, "fmax": 14000}


def load_cnn14(checkpoint: str | os.PathLike | None, *, classes_num: int = 527, device: str = "cpu"):
    """Build ``Cnn14`` and load a checkpoint file in the published structure (``{"iteration", "model",
    "sampler"}`` as PANNs' training script saves it) or a plain state dict, weights-only
    (:func:`~echoscript_utils.models.checkpoints.load_state_dict`).

    ``checkpoint=None`` leaves the random initialisation (tests and shape checks only). Returns the model in
    eval mode on ``device``.
    """

    model = panns_cnn14_class()(classes_num=classes_num, **CNN14_SETTINGS)
    if checkpoint is not None:
        state = load_state_dict(checkpoint, family="PANNs Cnn14")
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise ModelNotFoundError(f"{checkpoint}: weights do not fit Cnn14 with {classes_num} classes "
                                     f"({first[:160]})") from None
    return model.to(device).eval()
