"""Weights files in the published structures load weights-only; anything else gets a one-line error."""

from __future__ import annotations

import collections
import io
import pickle

import numpy as np
import pytest
import torch

from echoscript_utils.errors import ModelNotFoundError
from echoscript_utils.models.checkpoints import load_state_dict
from echoscript_utils.models.panns import load_cnn14
from echoscript_utils.models.vggish import load_vggish


@pytest.fixture(scope="module")
def cnn14_state():
    torch.manual_seed(0)
    return load_cnn14(None).state_dict()


def _sampler_state():
    """What PANNs' BalancedTrainSampler.state_dict() holds: per-class index arrays, a queue, pointers."""
    return {"indexes_per_class": [np.arange(c, 100, 9) for c in range(4)], "queue": [3, 1, 2, 0],
            "pointers_of_classes": [0, 2, 1, 0]}


def _save_legacy_numpy1(obj, path):
    """``torch.save`` in the pre-1.6 (non-zip) format with numpy 1.x module names, as files written in 2020 have."""
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    raw = buf.getvalue()
    assert b"numpy._core.multiarray" in raw  # the pickle names numpy's reconstructors as text (protocol 2)
    path.write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    return path


def _equal(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_panns_training_checkpoint_loads_weights_only(cnn14_state, tmp_path):
    ckpt = {"iteration": 660000, "model": cnn14_state, "sampler": _sampler_state()}
    for path in (tmp_path / "zip.pth", tmp_path / "legacy.pth"):
        if path.name == "zip.pth":
            torch.save(ckpt, path)
        else:
            _save_legacy_numpy1(ckpt, path)
        with pytest.raises(pickle.UnpicklingError):  # what a bare weights-only load does with these files
            torch.load(path, weights_only=True)
        assert _equal(load_state_dict(path, family="PANNs Cnn14", expect=("conv_block1.conv1.weight",)),
                      cnn14_state)
        assert _equal(load_cnn14(path).state_dict(), cnn14_state)


def test_panns_plain_state_dict_loads_too(cnn14_state, tmp_path):
    path = tmp_path / "plain.pth"
    torch.save(cnn14_state, path)
    assert _equal(load_cnn14(path).state_dict(), cnn14_state)


def test_vggish_flat_state_dict_and_pca_file(tmp_path):
    random = load_vggish("random", cache_dir=tmp_path, seed=1)
    weights = tmp_path / "vggish-10086976.pth"
    state = collections.OrderedDict((k, v.clone()) for k, v in random.state_dict().items())
    torch.save(state, weights)
    loaded = load_vggish(str(weights), cache_dir=tmp_path)
    assert _equal(loaded.state_dict(), random.state_dict())
    rng = np.random.default_rng(0)
    pca = {"pca_eigen_vectors": rng.standard_normal((128, 128)), "pca_means": rng.standard_normal((128, 1))}
    pca_path = _save_legacy_numpy1(pca, tmp_path / "vggish_pca_params-970ea276.pth")
    with_pca = load_vggish(str(weights), cache_dir=tmp_path, pca=str(pca_path))
    assert np.allclose(with_pca.pca_matrix.numpy(), pca["pca_eigen_vectors"].astype(np.float32))
    x = torch.randn(2, 1, 96, 64)
    with torch.no_grad():
        out = with_pca(x)
    assert out.shape == (2, 128) and float(out.min()) >= 0 and float(out.max()) <= 255  # quantised


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("kind", ["code", "no state dict", "other model", "not torch", "list", "missing"])
def test_other_files_get_one_line_errors(kind, tmp_path, cnn14_state):
    path = tmp_path / f"{kind.replace(' ', '_')}.pth"
    marker = tmp_path / "ran"
    expect = {"code": "needs", "no state dict": "found a dict of 2 entries ('epoch', 'args')",
              "other model": "do not fit Cnn14", "not torch": "not a PyTorch file",
              "list": "found a list", "missing": "no such"}[kind]
    if kind == "code":
        torch.save({"model": cnn14_state, "hook": _RunsCode(marker)}, path)
    elif kind == "no state dict":
        torch.save({"epoch": 3, "args": {"lr": 0.1}}, path)
    elif kind == "other model":
        torch.save({"model": {"encoder.weight": torch.zeros(2)}}, path)
    elif kind == "not torch":
        path.write_text("this is not a checkpoint")
    elif kind == "list":
        torch.save([torch.zeros(1)], path)
    with pytest.raises(ModelNotFoundError) as err:
        load_cnn14(path)
    message = str(err.value)
    if kind == "other model":  # the loader itself names missing keys when asked to
        with pytest.raises(ModelNotFoundError, match="lacks 'conv_block1.conv1.weight'; found a dict of 1 entry"):
            load_state_dict(path, family="PANNs Cnn14", expect=("conv_block1.conv1.weight",))
    assert "\n" not in message and str(path) in message and expect in message, message
    assert not marker.exists()  # nothing from the file ran
