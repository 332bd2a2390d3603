"""Reading weights files: one weights-only loader for every ``.pth`` the workbook opens (PANNs, VGGish, PCA).

Published checkpoints are not all bare state dicts. PANNs' training script saves
``{"iteration": int, "model": state_dict, "sampler": {...numpy arrays and ints...}}`` (the released Cnn14 files
have this shape); torchvggish's ``vggish-10086976.pth`` is a flat state dict; its PCA file is a dict of numpy
arrays. :func:`load_state_dict` opens all of them with ``torch.load(weights_only=True)``: no code from the file
runs. The only non-tensor types allowed are the plain numpy data types those files carry (arrays, scalars,
dtypes), under both their numpy 1.x (``numpy.core``) and 2.x (``numpy._core``) names.

>>> state = load_state_dict("Cnn14_mAP=0.431.pth", family="PANNs Cnn14",
...                         expect=("conv_block1.conv1.weight", "fc_audioset.weight"))   # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from ..errors import ModelNotFoundError

__all__ = ["load_state_dict"]

#: Keys under which checkpoints nest their state dict, in the order they are tried.
NESTED_KEYS = ("model", "state_dict", "model_state_dict")


@lru_cache(maxsize=1)
def _numpy_safe_globals() -> tuple:
    """numpy data types a weights-only load may rebuild: arrays, scalars, dtypes (no callables beyond their
    reconstructors), named as numpy 2 names them and as files written under numpy 1.x name them."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    dtype_classes = {type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"}
    allowed: list[Any] = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
                          *sorted(dtype_classes, key=lambda c: c.__name__)]
    for legacy in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed += [(multiarray._reconstruct, f"{legacy}._reconstruct"), (multiarray.scalar, f"{legacy}.scalar")]
    return tuple(allowed)


def _describe(obj: Any) -> str:
    """What a loaded object is, in a few words, for one-line errors."""
    if isinstance(obj, Mapping):
        keys = [str(k) for k in obj]
        shown = ", ".join(repr(k) for k in keys[:4]) + (", …" if len(keys) > 4 else "")
        return f"a dict of {len(keys)} entr{'y' if len(keys) == 1 else 'ies'} ({shown})" if keys else "an empty dict"
    return f"a {type(obj).__name__}"


def _is_state_dict(obj: Any) -> bool:
    import numpy as np
    import torch

    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, (torch.Tensor, np.ndarray)) for k, v in obj.items()))


def load_state_dict(path: str | os.PathLike, *, family: str, expect: Sequence[str] = ()) -> dict[str, Any]:
    """Open a weights file weights-only and return its state dict (name → tensor or numpy array).

    Accepted structures: a flat state dict (torchvggish's weights, numpy PCA parameters), or a dict holding one
    under ``"model"`` / ``"state_dict"`` / ``"model_state_dict"`` next to any training extras (PANNs'
    ``iteration`` and ``sampler`` state), which are read and ignored.

    Args:
        path: the ``.pth`` file.
        family: the model, for messages (``"PANNs Cnn14"``, ``"VGGish"``).
        expect: keys the state dict must contain (a file of the wrong model is refused here, by name).

    Raises:
        ModelNotFoundError: one line naming the file and what was found: unreadable or not a torch file, a
            pickle that needs code (types beyond tensors and numpy data), no state dict, or missing keys.
    """
    import torch

    try:
        with torch.serialization.safe_globals(list(_numpy_safe_globals())):
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelNotFoundError(f"{path}: no such {family} checkpoint file") from None
    except Exception as exc:  # truncated file, not a torch file at all, a pickle that needs code
        detail = str(exc)
        why = f"{type(exc).__name__}: not a PyTorch file, or a truncated one"
        for marker in ("but got ", "Unsupported global: GLOBAL "):
            if marker in detail:
                needs = detail.split(marker, 1)[1].split()[0].strip("<>'\",.")
                why = f"it needs {needs}, which a weights-only load does not run"
                break
        raise ModelNotFoundError(f"{path}: not a readable weights-only PyTorch checkpoint for {family} ({why}); "
                                 "use the published file or download it again") from None
    state = obj
    if not _is_state_dict(state) and isinstance(obj, Mapping):
        state = next((obj[k] for k in NESTED_KEYS if k in obj and _is_state_dict(obj[k])), obj)
    if not _is_state_dict(state):
        raise ModelNotFoundError(f"{path}: not a {family} checkpoint: expected a state dict (name → tensor) or a "
                                 f"dict holding one under {' / '.join(repr(k) for k in NESTED_KEYS)}; found "
                                 f"{_describe(obj)}")
    missing = [k for k in expect if k not in state]
    if missing:
        raise ModelNotFoundError(f"{path}: not a {family} checkpoint: its state dict lacks {missing[0]!r}"
                                 f"{f' and {len(missing) - 1} more expected keys' if len(missing) > 1 else ''}; "
                                 f"found {_describe(state)}")
    return dict(state)
