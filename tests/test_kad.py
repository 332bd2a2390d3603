"""KAD (echoscript_utils.kad): parity with kadtk's own code, the unbiased estimator, blocked sums in bounded memory,
the bootstrap and the per-clip score."""

from __future__ import annotations

import importlib.util
import sys
import tracemalloc
import types
import warnings

import numpy as np
import pandas as pd
import pytest

from echoscript_utils import kad
from echoscript_utils.errors import InputError
from echoscript_utils.fad import frechet_distance

RTOL = 1e-6
# kadtk's median copies a tensor with torch.tensor(tensor), which torch warns about
pytestmark = pytest.mark.filterwarnings("ignore:To copy construct from a tensor:UserWarning")


# ------------------------------------------------------------------------------------------------ kadtk
def load_kadtk_kad(path: str) -> types.ModuleType:
    """kadtk's ``kad.py`` loaded from its file, with stubs for the imports its KAD functions do not use.

    The module imports ``hypy_utils`` and kadtk's embedding and model loaders (which pull in TensorFlow, laion_clap,
    encodec …); none of them is used by ``calc_kernel_audio_distance`` or ``median_pairwise_distance``, so they are
    stubbed for the load and removed afterwards. What runs is kadtk's own code on our torch and numpy.
    """
    stubs = {name: types.ModuleType(name) for name in
             ("hypy_utils", "hypy_utils.tqdm_utils", "kadtk", "kadtk.emb_loader", "kadtk.model_loader")}
    stubs["hypy_utils"].write = None
    stubs["hypy_utils.tqdm_utils"].tmap = stubs["hypy_utils.tqdm_utils"].tq = None
    stubs["kadtk.emb_loader"].EmbeddingLoader = object
    stubs["kadtk.model_loader"].ModelLoader = object
    saved = {name: sys.modules.get(name) for name in stubs}
    sys.modules.update(stubs)
    try:
        module_spec = importlib.util.spec_from_file_location("_reference_kadtk_kad", path)
        module = importlib.util.module_from_spec(module_spec)
        with warnings.catch_warnings():  # its module silences every warning at import
            module_spec.loader.exec_module(module)
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
    return module


@pytest.fixture(scope="module")
def kadtk():
    """kadtk 1.1.0's own ``kad.py``, from the package installed ``--no-deps`` (requirements-nodeps.txt)."""
    torch = pytest.importorskip("torch")
    spec = importlib.util.find_spec("kadtk")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("kadtk is not installed (pip install --no-deps -r requirements-nodeps.txt)")
    module = load_kadtk_kad(f"{spec.submodule_search_locations[0]}/kad.py")
    return types.SimpleNamespace(module=module, torch=torch)


def kadtk_kad(kadtk, ref: np.ndarray, gen: np.ndarray, *, bandwidth: str, kernel: str = "gaussian") -> float:
    """KAD by kadtk's ``calc_kernel_audio_distance`` in float64 (its ``precision`` argument). ``"generated"`` is its
    default path (bandwidth=None: the median of its second argument); ``"reference"`` passes its own median of the
    reference rows, the rule its documentation states."""
    torch, mod = kadtk.torch, kadtk.module
    x, y = torch.tensor(ref, dtype=torch.float64), torch.tensor(gen, dtype=torch.float64)
    sigma = mod.median_pairwise_distance(x) if bandwidth == "reference" else None
    out = mod.calc_kernel_audio_distance(x, y, (None, None), "cpu", bandwidth=sigma, kernel=kernel,
                                         precision=torch.float64)
    return float(out)


def embedding_sets(seed: int):
    """Pairs of sets shaped like real embeddings: isotropic, low-rank signal over a noise floor stored as float32
    (CLAP / PANNs-like), unit-normalised rows (CLAP's output), and a heavy-tailed mixture."""
    rng = np.random.default_rng(seed)
    out = {}
    out["isotropic"] = (rng.normal(size=(120, 16)), rng.normal(0.3, 1.2, size=(90, 16)))
    basis = rng.normal(size=(6, 128))
    low = [(rng.normal(size=(n, 6)) * s) @ basis + 0.05 * rng.normal(size=(n, 128)) for n, s in ((200, 1.0), (150, 1.3))]
    out["lowrank-f32"] = tuple(a.astype(np.float32).astype(np.float64) for a in low)
    unit = [rng.normal(size=(n, 32)) + shift for n, shift in ((80, 0.0), (60, 0.4))]
    out["unit-norm"] = tuple(u / np.linalg.norm(u, axis=1, keepdims=True) for u in unit)
    # a near-collapsed embedding (a random CLAP's rows differ by ~1 %): σ ≈ 0.05, where kadtk's ε in γ matters
    away = rng.normal(size=32)
    tight = [np.ones(32) + 0.008 * rng.normal(size=(n, 32)) + shift * away for n, shift in ((40, 0.0), (30, 0.006))]
    out["collapsed"] = tuple(t / np.linalg.norm(t, axis=1, keepdims=True) for t in tight)
    out["mixture"] = (np.concatenate([rng.normal(size=(50, 20)), 5 + rng.standard_t(3, size=(30, 20))]),
                      rng.standard_t(3, size=(70, 20)))
    return out


@pytest.mark.parametrize("bandwidth", ["reference", "generated"])
@pytest.mark.parametrize("kernel", kad.KAD_KERNELS)
def test_kad_matches_kadtk(kadtk, bandwidth, kernel):
    worst = 0.0
    for name, (ref, gen) in embedding_sets(1).items():
        ours = kad.kernel_audio_distance(ref, gen, bandwidth=bandwidth, kernel=kernel, block_rows=37)
        theirs = kadtk_kad(kadtk, ref, gen, bandwidth=bandwidth, kernel=kernel)
        assert theirs > 0, name
        worst = max(worst, abs(ours - theirs) / abs(theirs))
    assert worst <= RTOL, f"KAD differs from kadtk's by {worst:.2e} relative"


def test_bandwidth_matches_kadtk_median(kadtk):
    """kadtk's median (torch.pdist in float32, torch.median: the lower of the two middle values)."""
    for name, (ref, gen) in embedding_sets(2).items():
        for rows in (ref, gen, ref[:11]):
            theirs = kadtk.module.median_pairwise_distance(kadtk.torch.tensor(rows))
            assert kad.median_pairwise_distance(rows) == pytest.approx(theirs, rel=1e-6), name
    # an even number of pairs, where the lower median differs from the mean of the two middle values
    rows = np.array([[0.0], [1.0], [3.0], [7.0]])  # distances 1 2 3 4 6 7: lower median 3, np.median 3.5
    assert kad.median_pairwise_distance(rows) == 3.0
    assert kadtk.module.median_pairwise_distance(kadtk.torch.tensor(rows)) == 3.0


def test_per_clip_matches_kadtk_individual(kadtk):
    """kadtk's individual score is calc_kernel_audio_distance(reference, one clip's rows); with the reference's
    bandwidth (its documented rule) every clip is scored with one kernel."""
    rng = np.random.default_rng(4)
    ref = [rng.normal(size=(int(rng.integers(1, 6)), 12)) for _ in range(30)]
    gen = [rng.normal(0.2 * k, 1.0, size=(int(rng.integers(2, 6)), 12)) for k in range(8)]
    table = kad.per_clip_kad(ref, gen, names=[f"g{k}" for k in range(8)]).set_index("clip")
    ref_rows = np.concatenate(ref)
    for k, clip in enumerate(gen):
        theirs = kadtk_kad(kadtk, ref_rows, clip, bandwidth="reference")
        assert table.loc[f"g{k}", "kad"] == pytest.approx(theirs, rel=RTOL, abs=1e-9)
        assert table.loc[f"g{k}", "rows"] == clip.shape[0]


# ------------------------------------------------------------------------------------------------ the estimator
def dense_kad(ref, gen, sigma, kernel="gaussian"):
    """The definition written out with full kernel matrices."""

    def k(a, b):
        g = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * sigma**2 + 1e-8)
        return {"gaussian": np.exp(-g), "iq": 1 / (1 + g), "imq": 1 / np.sqrt(1 + g)}[kernel]

    m, n = len(ref), len(gen)
    kxx, kyy = k(ref, ref), k(gen, gen)
    return 100 * ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                  - 2 * k(ref, gen).mean())


@pytest.mark.parametrize("block_rows", [1, 5, 16, 64, 10_000])
def test_blocked_sums_equal_the_definition(block_rows):
    rng = np.random.default_rng(3)
    ref, gen = rng.normal(size=(53, 7)), rng.normal(0.5, 1.0, size=(41, 7))
    sigma = kad.median_pairwise_distance(ref)
    for kernel in kad.KAD_KERNELS:
        got = kad.kernel_audio_distance(ref, gen, kernel=kernel, block_rows=block_rows)
        assert got == pytest.approx(dense_kad(ref, gen, sigma, kernel), rel=1e-12)


def lower_median_distance(rows):
    d = np.sqrt(((rows[:, None, :] - rows[None, :, :]) ** 2).sum(-1))[np.triu_indices(len(rows), 1)]
    return np.sort(d)[(d.size - 1) // 2]


@pytest.mark.parametrize("max_values", [10, 200, 10**9])
def test_median_is_exact_with_a_bracket(max_values):
    rng = np.random.default_rng(5)
    rows = np.concatenate([rng.normal(size=(150, 4)), np.zeros((40, 4))])  # many tied zero distances
    expected = lower_median_distance(rows)
    assert kad.median_pairwise_distance(rows, max_values=max_values, block_rows=33) == pytest.approx(expected,
                                                                                                     rel=1e-12)


def test_median_of_many_pairs_holds_few_distances():
    """2,000 rows are 2 million pairs: the median is selected with a cap of 50,000 distances held (it once fell back
    to holding all of them when a sampled bracket held more than the cap, 22 GB on a real corpus's codec frames)."""
    import tracemalloc

    rng = np.random.default_rng(7)
    rows = rng.normal(size=(2000, 8))
    tracemalloc.start()
    got = kad.median_pairwise_distance(rows, max_values=50_000, block_rows=256)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    d2 = np.concatenate([((rows[i + 1:] - rows[i]) ** 2).sum(1) for i in range(len(rows) - 1)])
    assert got == pytest.approx(float(np.sqrt(np.sort(d2)[(d2.size - 1) // 2])), rel=1e-12)
    assert peak < 6e6, peak  # all 2 million distances would be 16 MB


@pytest.mark.parametrize("grid", [False, True])
def test_median_of_a_mid_sized_set_takes_one_pass(grid, monkeypatch):
    """3,000 rows (4.5 million pairs, like a thinned reference): one pass over the blocks keeps the distances in a
    bracket around the median and selects it exactly, also when it is tied many times over (rows on a grid)."""
    rng = np.random.default_rng(11)
    rows = rng.integers(0, 4, size=(3000, 3)).astype(float) if grid else rng.normal(size=(3000, 8))
    calls = []
    real = kad._sq_dists
    monkeypatch.setattr(kad, "_sq_dists", lambda *a: (calls.append(1), real(*a))[1])
    got = kad.median_pairwise_distance(rows, block_rows=1024)
    assert len(calls) == 6  # the 6 blocks of the upper triangle, once each
    d2 = np.concatenate([((rows[i + 1:] - rows[i]) ** 2).sum(1) for i in range(len(rows) - 1)])
    assert got == pytest.approx(float(np.sqrt(np.sort(d2)[(d2.size - 1) // 2])), rel=1e-12)


def gaussian_expected_kernel(mu_a, var_a, mu_b, var_b, sigma, dim):
    """E k(a, b) for independent a ~ N(mu_a, var_a I), b ~ N(mu_b, var_b I), Gaussian kernel of bandwidth sigma."""
    s = sigma**2 + var_a + var_b
    return (sigma**2 / s) ** (dim / 2) * np.exp(-np.sum((mu_a - mu_b) ** 2) / (2 * s))


def test_estimator_is_unbiased_where_fad_is_not():
    """Over many draws, the mean KAD (fixed bandwidth) equals 100·MMD² of the two populations, 0 for one
    population, within 4 standard errors; the plug-in (V-statistic) estimate and FAD are biased upward."""
    rng = np.random.default_rng(0)
    dim, m, n, sigma, draws = 6, 12, 9, 2.0, 600
    cases = {"same": (np.zeros(dim), 1.0, np.zeros(dim), 1.0),
             "shifted": (np.zeros(dim), 1.0, np.full(dim, 0.4), 1.5)}
    for name, (mu_a, var_a, mu_b, var_b) in cases.items():
        truth = 100 * (gaussian_expected_kernel(mu_a, var_a, mu_a, var_a, sigma, dim)
                       + gaussian_expected_kernel(mu_b, var_b, mu_b, var_b, sigma, dim)
                       - 2 * gaussian_expected_kernel(mu_a, var_a, mu_b, var_b, sigma, dim))
        kads, plugin, fads = [], [], []
        for _ in range(draws):
            a = mu_a + np.sqrt(var_a) * rng.normal(size=(m, dim))
            b = mu_b + np.sqrt(var_b) * rng.normal(size=(n, dim))
            value = kad.kernel_audio_distance(a, b, bandwidth=sigma)
            kads.append(value)
            # the V-statistic keeps the pairs i = j (kernel value 1): KAD plus (1 - mean k over i ≠ j) / size
            plugin.append(value + 100 * (1 - kad_within(a, sigma)) / m + 100 * (1 - kad_within(b, sigma)) / n)
            if name == "same":
                fads.append(frechet_distance(a, b))
        se = np.std(kads, ddof=1) / np.sqrt(draws)
        assert abs(np.mean(kads) - truth) < 4 * se, (name, np.mean(kads), truth, se)
        assert np.mean(plugin) - truth > 8 * se, name
        if name == "same":
            assert abs(truth) < 1e-12
            assert np.mean(fads) > 20 * np.std(fads, ddof=1) / np.sqrt(draws)


def kad_within(rows, sigma):
    """Mean kernel value over the pairs i ≠ j of one set."""
    d2 = ((rows[:, None, :] - rows[None, :, :]) ** 2).sum(-1)
    k = np.exp(-d2 / (2 * sigma**2 + 1e-8))
    n = len(rows)
    return (k.sum() - n) / (n * (n - 1))


def test_memory_stays_bounded():
    """6000 rows per set: one kernel matrix would be 288 MB (and the median's pair distances 144 MB); the blocked
    sums and the bracketed median stay within a few blocks."""
    rng = np.random.default_rng(7)
    ref, gen = rng.normal(size=(6000, 8)), rng.normal(0.1, 1.0, size=(6000, 8))
    tracemalloc.start()
    try:
        value = kad.kernel_audio_distance(ref, gen, block_rows=512)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24e6, f"peak {peak / 1e6:.0f} MB"
    small = kad.kernel_audio_distance(ref[:600], gen[:600], bandwidth=kad.median_pairwise_distance(ref))
    assert value > 0 and small > 0


# ------------------------------------------------------------------------------------------------ bootstrap
def test_bootstrap_resamples_are_exact_kads():
    """Every bootstrap KAD equals the KAD of the resampled rows themselves (clips drawn with replacement, rows of
    a clip together, kernel of the full sets)."""
    rng = np.random.default_rng(8)
    ref = [rng.normal(size=(int(rng.integers(1, 4)), 5)) for _ in range(9)]
    gen = [rng.normal(0.3, 1.0, size=(int(rng.integers(1, 4)), 5)) for _ in range(7)]
    res = kad.bootstrap_kad(ref, gen, n=25, seed=3)
    assert res.point == pytest.approx(kad.kernel_audio_distance(ref, gen), rel=1e-12)
    assert res.bandwidth == pytest.approx(kad.median_pairwise_distance(ref), rel=1e-12)
    draw = np.random.default_rng(3)
    for sample in res.samples:
        idx_ref = draw.integers(0, len(ref), size=len(ref))
        idx_gen = draw.integers(0, len(gen), size=len(gen))
        rows_ref = np.concatenate([ref[i] for i in idx_ref])
        rows_gen = np.concatenate([gen[i] for i in idx_gen])
        assert sample == pytest.approx(dense_kad(rows_ref, rows_gen, res.bandwidth), rel=1e-9, abs=1e-12)
    assert res.ci_low <= res.point <= res.ci_high
    assert res.n_ref == 9 and res.n_gen == 7 and res.as_dict()["bandwidth"] == res.bandwidth
    again = kad.bootstrap_kad(ref, gen, n=25, seed=3)
    np.testing.assert_array_equal(again.samples, res.samples)
    fixed_ref = kad.bootstrap_kad(ref, gen, n=25, seed=3, resample="generated")
    assert fixed_ref.resample == "generated" and not np.array_equal(fixed_ref.samples, res.samples)


def test_bootstrap_interval_narrows_with_more_clips():
    rng = np.random.default_rng(9)
    widths = []
    for size in (15, 120):
        res = kad.bootstrap_kad(rng.normal(size=(size, 4)), rng.normal(0.5, 1.0, size=(size, 4)), n=200)
        widths.append(res.ci_high - res.ci_low)
    assert widths[1] < 0.6 * widths[0]


# ------------------------------------------------------------------------------------------------ per clip
def test_per_clip_finds_the_odd_clip_and_scores_points_exactly():
    rng = np.random.default_rng(10)
    ref = rng.normal(size=(60, 6))
    gen = [rng.normal(size=(1, 6)) for _ in range(12)] + [rng.normal(6.0, 1.0, size=(1, 6))]
    names = [f"cue{k}" for k in range(13)]
    table = kad.per_clip_kad(ref, gen, names=names)
    assert list(table.columns) == ["clip", "rows", "kad", "z", "outlier"]
    assert table.iloc[0]["clip"] == "cue12" and bool(table.iloc[0]["outlier"])
    assert table["outlier"].sum() == 1
    sigma = kad.median_pairwise_distance(ref)
    y = gen[3]
    k_xx = kad_within(ref, sigma)
    k_xy = np.exp(-((ref - y) ** 2).sum(1) / (2 * sigma**2 + 1e-8)).mean()
    expected = 100 * (k_xx + 1.0 - 2 * k_xy)  # a one-row clip is a point: k(y, y) = 1
    assert table.set_index("clip").loc["cue3", "kad"] == pytest.approx(expected, rel=1e-12)
    plain = kad.per_clip_kad(ref, np.concatenate(gen))  # [N, D] rows: one clip each
    assert plain["kad"].tolist() == pytest.approx(table["kad"].tolist(), rel=1e-12)


def test_bad_inputs_are_refused():
    rng = np.random.default_rng(11)
    ref = rng.normal(size=(10, 4))
    with pytest.raises(InputError, match="dimensions"):
        kad.kernel_audio_distance(ref, rng.normal(size=(10, 5)))
    with pytest.raises(ValueError, match="kernel"):
        kad.kernel_audio_distance(ref, ref, kernel="laplace")
    with pytest.raises(ValueError, match="bandwidth"):
        kad.kernel_audio_distance(ref, ref, bandwidth=0.0)
    with pytest.raises(InputError, match="median pairwise distance is 0"):
        kad.kernel_audio_distance(np.zeros((5, 4)), ref)
    with pytest.raises(InputError, match="names"):
        kad.per_clip_kad(ref, ref, names=["a"])
    with pytest.raises(InputError, match="at least 2"):
        kad.kernel_audio_distance(ref, ref[:1])


# ------------------------------------------------------------------------------------------------ stage 06
def test_stage_tables_and_metrics():
    import json

    from echoscript_utils import evaluation
    from echoscript_utils.config import load_config

    cfg = load_config(None, {"evaluation.bootstrap": 40})
    rng = np.random.default_rng(12)
    ref = [rng.normal(size=(3, 5)) for _ in range(6)]
    gens = {"musicgen": [rng.normal(0.8, 1.0, size=(1, 5)) for _ in range(5)],
            "echoscript": [rng.normal(0.1, 1.0, size=(1, 5)) for _ in range(5)]}
    gens["echoscript"][2] = gens["echoscript"][2] + 8.0  # one clip far from everything
    names = {"reference": [f"r{k}" for k in range(6)], **{m: [f"scene{k}_s0" for k in range(5)] for m in gens}}
    embedded = evaluation.EmbeddedSets(data={"toy": {"reference": ref, **gens}}, names=names,
                                       embedders={"toy": {"sample_rate": 16000, "row": "one per clip"}}, skipped={})
    table = evaluation.kad_table(embedded, cfg)
    assert list(table["model"]) == ["musicgen", "echoscript"]
    assert (table["ci_low"] <= table["kad"]).all() and (table["kad"] <= table["ci_high"]).all()
    for r in table.to_dict("records"):
        assert r["kad"] == pytest.approx(kad.kernel_audio_distance(ref, gens[r["model"]]), rel=1e-12)
        assert r["bandwidth"] == pytest.approx(kad.median_pairwise_distance(ref), rel=1e-12)
    assert (table["rows_ref"] == 18).all() and (table["n_gen"] == 5).all()
    clips = evaluation.kad_clip_table(embedded, top=3)
    assert len(clips) == 3 and list(clips.columns) == ["embedding", "model", "clip", "rows", "kad", "z", "outlier"]
    assert (clips.iloc[0]["model"], clips.iloc[0]["clip"]) == ("echoscript", "scene2_s0")
    assert clips["kad"].is_monotonic_decreasing
    full = evaluation.kad_clip_table(embedded)
    assert len(full) == 10 and set(full["model"]) == {"musicgen", "echoscript"}
    # the kad table's bandwidth serves the per-clip table (its median is not computed again), to the same table
    assert evaluation.kad_bandwidths(table) == {"toy": pytest.approx(kad.median_pairwise_distance(ref), rel=1e-12)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "kad_bandwidth", lambda *a, **k: pytest.fail("bandwidth computed again"))
        given = evaluation.kad_clip_table(embedded, bandwidths=evaluation.kad_bandwidths(table))
    pd.testing.assert_frame_equal(given, full)
    metrics = evaluation.stage_metrics(evaluation.EvaluationSets([], "", {}, {}), embedded, table, None, {},
                                       full.head(0).assign(outlier=[]), kad=table, kad_clips=clips)
    json.dumps(metrics, default=str)
    assert [r["model"] for r in metrics["kad"]] == ["musicgen", "echoscript"] and len(metrics["kad_clips"]) == 3


def test_kad_rows_thins_big_sets_keeping_every_clip():
    """KAD is O(rows²): beyond evaluation.kad_max_rows each clip keeps a seeded share of its rows, in order."""
    from echoscript_utils import evaluation

    rng = np.random.default_rng(3)
    clips = [rng.normal(size=(n, 4)) for n in (1, 500, 1500, 3000)]
    assert evaluation.kad_rows(clips, 10_000) is clips and evaluation.kad_rows(clips, 0) is clips
    thin = evaluation.kad_rows(clips, 500, seed=1)
    assert [len(c) for c in thin] == [1, 50, 150, 300]
    for full, part in zip(clips, thin, strict=True):  # rows of the clip itself, in their order
        idx = [int(np.flatnonzero((full == r).all(1))[0]) for r in part]
        assert idx == sorted(idx)
    again = evaluation.kad_rows(clips, 500, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(thin, again, strict=True))
