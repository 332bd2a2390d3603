"""Shared test setup: no network, no hub, deterministic threads."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")
# small linear algebra: one BLAS thread is faster, and far faster on a loaded machine
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
for _k in ("OPENAI_API_KEY",):
    os.environ.pop(_k, None)
# The real screenplays beside the checkout (as CI lays them out): the planner is measured on their labelled scenes.
_SHARED_SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared",
                               "screenplays")
if os.path.isfile(os.path.join(_SHARED_SCRIPTS, "MANIFEST.tsv")):
    os.environ.setdefault("ECHOSCRIPT_SCREENPLAYS", os.path.normpath(_SHARED_SCRIPTS))

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _torch_threads():
    try:
        import torch

        torch.set_num_threads(1)  # tiny models: thread overhead outweighs the work
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests, restored after: a stage run in-process (``pipeline``) sets
    ``run.torch_threads``, and tiny models on a shared 2-core machine run far faster on one thread."""
    from echoscript_utils.parallel import torch_threads

    with torch_threads(1):
        yield
