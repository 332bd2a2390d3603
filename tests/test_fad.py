"""Fréchet distance against the scipy sqrtm formula, bootstrap intervals, FAD∞, outliers, relevance, CLI."""

from __future__ import annotations

import importlib.util
import json
import warnings

import numpy as np
import pytest
import scipy.linalg

from echoscript_utils import evaluation, fad, stats
from echoscript_utils.errors import InputError


# ------------------------------------------------------------------------------------------------ fixtures
def sqrtm_reference(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> float:
    """The textbook float64 FAD (np.cov → sqrtm of the product → real part; eps·I retry if not finite)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = scipy.linalg.sqrtm(ca @ cb)
        if not np.isfinite(root).all():
            off = eps * np.eye(len(ca))
            root = scipy.linalg.sqrtm((ca + off) @ (cb + off))
    d = mu_a - mu_b
    return float(d @ d + np.trace(ca) + np.trace(cb) - 2 * np.trace(np.real(root)))


def exact_data_space(a: np.ndarray, b: np.ndarray) -> float:
    """FAD with the trace term as the nuclear norm of Xa Xbᵀ (exact for any rank; no covariance formed)."""
    xa, xb = a - a.mean(0), b - b.mean(0)
    s = scipy.linalg.svdvals(xa @ xb.T) / np.sqrt((len(a) - 1) * (len(b) - 1))
    d = a.mean(0) - b.mean(0)
    return float(d @ d + (xa**2).sum() / (len(a) - 1) + (xb**2).sum() / (len(b) - 1) - 2 * s.sum())


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def gaussian_clips(rng, n_clips: int, rows: int, dim: int, *, shift: float = 0.0, scale: float = 1.0):
    return [rng.standard_normal((rows, dim)) * scale + shift for _ in range(n_clips)]


# ------------------------------------------------------------------------------------------------ distance
def test_matches_sqrtm_on_well_conditioned_sets(rng):
    mix = rng.standard_normal((24, 24)) / 5 + np.eye(24)
    a = rng.standard_normal((400, 24)) @ mix
    b = rng.standard_normal((350, 24)) @ mix * 1.3 + 0.2
    assert fad.frechet_distance(a, b) == pytest.approx(sqrtm_reference(a, b), rel=1e-6)


def test_matches_sqrtm_when_rank_deficient(rng):
    a = rng.standard_normal((20, 64))
    b = rng.standard_normal((27, 64)) * 1.2 + 0.1  # N < D on both sides: singular covariances
    ours = fad.frechet_distance(a, b)
    assert ours == pytest.approx(sqrtm_reference(a, b), rel=1e-6)
    assert ours == pytest.approx(exact_data_space(a, b), rel=1e-10)
    mixed = rng.standard_normal((300, 64)) + 0.05  # one side full rank, one not
    assert fad.frechet_distance(a, mixed) == pytest.approx(sqrtm_reference(a, mixed), rel=1e-6)


def test_identical_sets_give_zero(rng):
    a = rng.standard_normal((300, 16))
    scale = np.trace(np.cov(a, rowvar=False))
    assert abs(sqrtm_reference(a, a)) < 1e-6 * scale
    assert fad.frechet_distance(a, a) <= 1e-6 * scale
    small = rng.standard_normal((5, 40))  # identical and rank-deficient
    assert fad.frechet_distance(small, small) <= 1e-6 * np.trace(np.cov(small, rowvar=False))


def test_near_singular_and_exactly_singular_covariances_are_exact(rng):
    basis = rng.standard_normal((5, 48))
    a = rng.standard_normal((300, 5)) @ basis + 1e-5 * rng.standard_normal((300, 48))
    b = rng.standard_normal((300, 5)) @ basis * 1.1 + 1e-5 * rng.standard_normal((300, 48))
    assert fad.frechet_distance(a, b) == pytest.approx(exact_data_space(a, b), rel=1e-7)
    a0 = rng.standard_normal((300, 5)) @ basis  # N > D but rank 5: Cholesky refuses, eigen-factor path
    b0 = rng.standard_normal((300, 5)) @ basis * 0.9 + 0.1
    a0[:, 7] = 0.0  # a dead unit (zero variance), common with ReLU embeddings
    value = fad.frechet_distance(a0, b0)
    assert isinstance(value, float) and np.isfinite(value)
    assert value == pytest.approx(exact_data_space(a0, b0), rel=1e-9)
    sa, sb = fad.EmbeddingStats.from_embeddings(a0), fad.EmbeddingStats.from_embeddings(b0)
    assert fad.frechet_distance_from_stats(sa.mu, sa.cov, sb.mu, sb.cov) == pytest.approx(value, rel=1e-9)
    small = rng.standard_normal((10, 30))  # singular covariances given as statistics: pivoted Cholesky path
    s1, s2 = fad.EmbeddingStats.from_embeddings(small), fad.EmbeddingStats.from_embeddings(small[::-1] * 2)
    assert fad.frechet_distance(s1, s2) == pytest.approx(exact_data_space(small, small[::-1] * 2), rel=1e-9)


def test_symmetric_non_negative_and_real(rng):
    for _ in range(5):
        dim = int(rng.integers(2, 40))
        a = rng.standard_normal((int(rng.integers(3, 80)), dim))
        b = rng.standard_normal((int(rng.integers(3, 80)), dim)) * rng.uniform(0.5, 2) + rng.normal()
        ab, ba = fad.frechet_distance(a, b), fad.frechet_distance(b, a)
        assert isinstance(ab, float) and ab >= 0
        assert ab == pytest.approx(ba, rel=1e-9, abs=1e-12)


def test_clips_pool_rows_and_stats_agree(rng, tmp_path):
    clips = gaussian_clips(rng, 6, 9, 12)
    b = rng.standard_normal((80, 12)) + 0.3
    pooled = np.concatenate(clips)
    assert fad.frechet_distance(clips, b) == pytest.approx(fad.frechet_distance(pooled, b), rel=1e-12)
    stats = fad.EmbeddingStats.from_embeddings(b)
    path = stats.save(tmp_path / "ref.npz")
    loaded = fad.EmbeddingStats.load(path)
    assert loaded.n == 80 and np.allclose(loaded.cov, np.cov(b, rowvar=False))
    expected = fad.frechet_distance(pooled, b)
    assert fad.frechet_distance(pooled, loaded) == pytest.approx(expected, rel=1e-9)
    sa = fad.EmbeddingStats.from_embeddings(pooled)
    assert fad.frechet_distance_from_stats(sa.mu, sa.cov, stats.mu, stats.cov) == pytest.approx(expected, rel=1e-9)


def test_bad_inputs_raise_one_line_errors(rng):
    with pytest.raises(InputError, match="at least 2"):
        fad.frechet_distance(rng.standard_normal((1, 4)), rng.standard_normal((5, 4)))
    with pytest.raises(InputError, match="sizes differ"):
        fad.frechet_distance(rng.standard_normal((5, 4)), rng.standard_normal((5, 3)))
    with pytest.raises(InputError, match="NaN"):
        fad.frechet_distance(np.full((5, 4), np.nan), rng.standard_normal((5, 4)))


# ------------------------------------------------------------------------------------------------ exactness
def exact_from_stats(mu_a, cov_a, mu_b, cov_b) -> float:
    """Exact float64 FAD: the trace term from the eigenvalues of ``S_a^½ S_b S_a^½`` (symmetric roots by ``eigh``),
    taken as the squared singular values of ``S_a^½ S_b^½`` so that small ones are not lost to rounding."""

    def root(cov):
        w, v = np.linalg.eigh(cov)
        return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T

    d = mu_a - mu_b
    trace_sqrt = scipy.linalg.svdvals(root(cov_a) @ root(cov_b)).sum()
    return float(d @ d + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_sqrt)


def exact_reference(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return exact_from_stats(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def squared_eigenvalue_fad(a, b) -> float:
    """The usual shortcut: square roots of the eigenvalues of ``S_a^½ S_b S_a^½`` itself (loses small ones)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    ra = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    eig = np.clip(np.linalg.eigvalsh(ra @ cb @ ra), 0.0, None)
    d = a.mean(0) - b.mean(0)
    return float(d @ d + np.trace(ca) + np.trace(cb) - 2.0 * np.sqrt(eig).sum())


def embedding_pair(seed: int, *, dim: int, rows: tuple[int, int], rank: int, noise: float, cond: float, dtype):
    """Two sets shaped like real embeddings: a rank-``rank`` signal with a spectrum spread over ``cond`` (variance
    ratio), plus an isotropic noise floor of standard deviation ``noise``; the second set is scaled and shifted."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, dim)) * np.logspace(0, -np.log10(cond) / 2, rank)[:, None] / np.sqrt(rank)
    a = rng.standard_normal((rows[0], rank)) @ basis + noise * rng.standard_normal((rows[0], dim))
    b = (rng.standard_normal((rows[1], rank)) * 1.05) @ basis + noise * rng.standard_normal((rows[1], dim)) + 0.004
    return a.astype(dtype), b.astype(dtype)


#: (dim, rows, rank, noise floor, spectrum spread): the covariance shapes the exactness properties range over.
SHAPES = {
    "low rank + noise floor, N > D": (96, (400, 380), 6, 1e-3, 1.0),
    "low rank + faint noise, N > D": (96, (400, 400), 6, 1e-5, 1.0),
    "graded full-rank spectrum": (96, (500, 450), 96, 0.0, 1e6),
    "ill-conditioned signal + noise": (96, (400, 400), 12, 1e-4, 1e4),
    "exactly low rank, N > D": (96, (300, 320), 8, 0.0, 1.0),
    "N < D on both sides": (96, (40, 60), 8, 1e-3, 1.0),
    "N < D against N > D": (96, (40, 400), 8, 1e-3, 1.0),
    "larger D, low rank + noise": (320, (1000, 900), 10, 1e-3, 1.0),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_exact_on_generated_covariance_shapes(shape, dtype):
    dim, rows, rank, noise, cond = SHAPES[shape]
    a, b = embedding_pair(len(shape), dim=dim, rows=rows, rank=rank, noise=noise, cond=cond, dtype=dtype)
    # Exactly singular covariances (N ≤ D, or no noise floor) make the eigen-root reference noisy at sqrt(eps);
    # there the data-space nuclear norm is the exact reference.
    singular = noise == 0 and rank < dim or min(rows) <= dim
    truth = exact_data_space(a.astype(np.float64), b.astype(np.float64)) if singular else exact_reference(a, b)
    ours = fad.frechet_distance(a, b)
    assert ours == pytest.approx(truth, rel=1e-6)
    assert fad.frechet_distance(b, a) == pytest.approx(truth, rel=1e-6)
    sa, sb = fad.EmbeddingStats.from_embeddings(a), fad.EmbeddingStats.from_embeddings(b)
    assert fad.frechet_distance(sa, sb) == pytest.approx(truth, rel=1e-6)  # from statistics: Cholesky factors
    scale = sa.cov.trace()
    assert fad.frechet_distance(a, a) <= 1e-9 * scale  # identical sets
    assert fad.frechet_distance(sa, sa) <= 1e-9 * scale


def test_noise_floor_shapes_are_hard_for_the_squared_eigenvalue_shortcut():
    """The grid is not too easy: on a float32 noise-floor shape, square roots of the eigenvalues of
    ``S_a^½ S_b S_a^½`` miss by far more than the 1e-6 asked, while ours stays at rounding."""
    a, b = embedding_pair(3, dim=256, rows=(2000, 2000), rank=8, noise=1e-4, cond=1.0, dtype=np.float32)
    truth = exact_reference(a, b)
    assert abs(squared_eigenvalue_fad(a, b) - truth) > 1e-5 * truth
    assert fad.frechet_distance(a, b) == pytest.approx(truth, rel=1e-9)


@pytest.mark.parametrize("n", [1, 255, 300, 513])
def test_lower_triangular_product_by_block_columns(n):
    """The product of the two Cholesky factors, one block column at a time, equals the plain product."""
    rng = np.random.default_rng(n)
    u = np.asfortranarray(np.triu(rng.standard_normal((n, n))))
    b = np.asfortranarray(np.tril(rng.standard_normal((n, n))))
    got = fad._upper_t_lower_product(u, b, block=128)
    assert np.allclose(got, u.T @ b, rtol=0, atol=1e-12 * n) and not np.triu(got, 1).any()


@pytest.mark.parametrize("upper", [False, True])
def test_cholesky_factors_of_a_covariance(upper, rng):
    """Both triangular factors reproduce the covariance, are triangular on the side asked for, and are the
    factors numpy's Cholesky gives (of the covariance, or of its row- and column-reversed copy)."""
    x = rng.standard_normal((300, 40))
    cov = np.cov(x, rowvar=False)
    f, triangular = fad._factor_cov(cov, upper=upper)
    assert triangular
    assert np.allclose(f @ f.T, cov, rtol=0, atol=1e-12)
    assert not (np.tril(f, -1) if upper else np.triu(f, 1)).any()
    want = np.linalg.cholesky(cov[::-1, ::-1])[::-1, ::-1] if upper else np.linalg.cholesky(cov)
    assert np.allclose(f, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [300, 2048])
def test_two_stage_eigenvalues_equal_scipy(n, monkeypatch):
    """The eigenvalues from LAPACK's two-stage driver (when a loaded OpenBLAS has it) and from scipy's eigh agree
    to the rounding both guarantee; with the driver missing, scipy's path gives them."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n + 10, n))
    m = x.T @ x
    want = scipy.linalg.eigvalsh(m)
    # numpy's and scipy's wheels bundle an OpenBLAS with LAPACKE: the pinned stack must find the driver
    assert fad._lapacke_dsyevd_2stage() is not None, "no LAPACKE_dsyevd_2stage in the loaded OpenBLAS"
    monkeypatch.setattr(fad, "_TWO_STAGE_MIN", 1)
    got = fad._eigvalsh_lower(np.asfortranarray(np.tril(m)))
    assert np.abs(got - want).max() <= 64 * n * np.finfo(float).eps * want[-1]
    monkeypatch.setattr(fad, "_lapacke_dsyevd_2stage", lambda: None)
    assert np.abs(fad._eigvalsh_lower(np.asfortranarray(np.tril(m))) - want).max() <= 64 * n * np.finfo(float).eps * want[-1]


def test_a_failing_two_stage_driver_is_an_error_not_a_fallback(monkeypatch):
    """The driver overwrites the matrix it is given, so when it reports a failure the eigenvalues are not taken
    from what is left of it."""
    monkeypatch.setattr(fad, "_TWO_STAGE_MIN", 1)
    monkeypatch.setattr(fad, "_lapacke_dsyevd_2stage", lambda: (lambda *args: 3))
    with pytest.raises(np.linalg.LinAlgError, match="info 3"):
        fad._eigvalsh_lower(np.asfortranarray(np.eye(4)))


def test_exact_reference_against_forty_digit_arithmetic():
    """The float64 references and ours against mpmath at 40 digits, from the same float32 rows."""
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 40
    a, b = embedding_pair(11, dim=10, rows=(40, 40), rank=3, noise=1e-4, cond=1.0, dtype=np.float32)

    def stats(x):
        m = mp.matrix(x.astype(np.float64).tolist())
        n = m.rows
        mu = [mp.fsum(m[k, j] for k in range(n)) / n for j in range(m.cols)]
        cov = mp.matrix(m.cols, m.cols)
        for i in range(m.cols):
            for j in range(m.cols):
                cov[i, j] = mp.fsum((m[k, i] - mu[i]) * (m[k, j] - mu[j]) for k in range(n)) / (n - 1)
        return mu, cov

    (mu_a, ca), (mu_b, cb) = stats(a), stats(b)
    w, q = mp.eigsy(ca)
    ra = q * mp.diag([mp.sqrt(max(x, 0)) for x in w]) * q.T
    trace_sqrt = mp.fsum(mp.sqrt(max(x, 0)) for x in mp.eigsy(ra * cb * ra, eigvals_only=True))
    truth = float(mp.fsum((x - y) ** 2 for x, y in zip(mu_a, mu_b)) + sum(ca[i, i] + cb[i, i] for i in range(10))
                  - 2 * trace_sqrt)
    assert exact_reference(a, b) == pytest.approx(truth, rel=1e-12)
    assert fad.frechet_distance(a, b) == pytest.approx(truth, rel=1e-12)
    assert fad.frechet_distance(a[:8], b[:9]) == pytest.approx(exact_data_space(a[:8].astype(float),
                                                                                b[:9].astype(float)), rel=1e-12)


# ------------------------------------------------------------------------------------------------ bootstrap
def test_bootstrap_interval_contains_point_and_is_reproducible(rng):
    ref = gaussian_clips(rng, 40, 5, 6)
    gen = gaussian_clips(rng, 40, 5, 6, shift=0.4)
    res = fad.bootstrap_fad(ref, gen, n=200, seed=3)
    assert res.ci_low < res.point < res.ci_high
    assert res.point == pytest.approx(fad.frechet_distance(ref, gen))
    assert res.n_ref == 40 and res.n_gen == 40 and res.samples.shape == (200,)
    again = fad.bootstrap_fad(ref, gen, n=200, seed=3)
    assert (again.ci_low, again.ci_high) == (res.ci_low, res.ci_high)
    raw = fad.bootstrap_fad(ref, gen, n=200, seed=3, method="percentile")
    assert raw.ci_low < raw.point < raw.ci_high  # N ≫ D: little resampling bias
    assert res.bias > 0  # duplicated clips inflate FAD; the default interval removes that shift
    assert raw.ci_low - res.ci_low == pytest.approx(res.bias)
    gen_only = fad.bootstrap_fad(ref, gen, n=200, seed=3, resample="generated")
    assert gen_only.std < res.std  # holding the reference fixed removes part of the spread


def test_bootstrap_interval_covers_the_truth(rng):
    """Across repeated experiments the 90 % interval for FAD(N) should cover the mean FAD at that N."""
    dim, n_clips = 3, 30
    truth = np.mean([fad.frechet_distance(rng.standard_normal((n_clips, dim)),
                                          rng.standard_normal((n_clips, dim)) + 0.5) for _ in range(400)])
    hits = 0
    for i in range(40):
        a, b = rng.standard_normal((n_clips, dim)), rng.standard_normal((n_clips, dim)) + 0.5
        r = fad.bootstrap_fad(a, b, n=150, confidence=0.9, seed=i)
        hits += r.ci_low <= truth <= r.ci_high
    assert hits >= 28  # nominal 36 of 40; a broken interval (e.g. no width, wrong side) scores far lower


def test_paired_difference_detects_the_better_system(rng):
    ref = gaussian_clips(rng, 30, 4, 5)
    close = gaussian_clips(rng, 30, 4, 5, shift=0.1)
    far = gaussian_clips(rng, 30, 4, 5, shift=0.8)
    res = fad.paired_bootstrap_difference(ref, close, far, n=200, seed=1)
    assert res.difference < 0 and res.ci_high < 0 and res.significant
    assert res.share_a_better > 0.95
    same = fad.paired_bootstrap_difference(ref, close, close, n=100, seed=1, paired_generated=True)
    assert same.difference == 0 and np.allclose(same.samples, 0)
    with pytest.raises(InputError, match="same number of clips"):
        fad.paired_bootstrap_difference(ref, close, far[:10], n=5, paired_generated=True)


# ------------------------------------------------------------------------------------------------ FAD∞
def test_fad_infinity_recovers_known_intercept(rng):
    dim = 8
    ref = fad.EmbeddingStats(mu=np.zeros(dim), cov=np.eye(dim), n=10**9)  # the exact reference Gaussian
    shift = np.full(dim, 0.5)
    z = rng.standard_normal((3000, dim))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # pool mean 0, covariance exactly I
    gen = z + shift  # the pool's own FAD to the reference is exactly |shift|² = 2.0
    assert fad.frechet_distance(ref, gen) == pytest.approx(2.0, rel=1e-9)
    res = fad.fad_infinity(ref, gen, n_points=10, min_n=40, repeats=10, seed=0)
    assert res.fad_inf == pytest.approx(2.0, abs=0.05)
    assert res.slope > 10 and res.r2 > 0.9  # FAD(N) falls towards FAD∞ as N grows
    assert list(res.points.columns) == ["n", "inv_n", "fad", "fad_std"]
    assert res.points["n"].iloc[0] == 40 and res.points["n"].iloc[-1] == 3000
    assert res.points["fad"].iloc[0] - 2.0 > 0.4  # FAD at N = 40 is visibly biased; FAD∞ is not


# ------------------------------------------------------------------------------------------------ outliers
def test_per_clip_contribution_flags_the_odd_clip(rng):
    ref = gaussian_clips(rng, 20, 4, 6)
    gen = gaussian_clips(rng, 12, 4, 6)
    gen[5] = gen[5] + 6.0
    df = fad.per_clip_contribution(ref, gen, names=[f"g{i}" for i in range(12)])
    assert df.loc[0, "clip"] == "g5" and bool(df.loc[0, "outlier"])
    assert df["outlier"].sum() == 1
    full = fad.frechet_distance(ref, gen)
    assert df.loc[0, "delta"] == pytest.approx(full - fad.frechet_distance(ref, gen[:5] + gen[6:]))


# ------------------------------------------------------------------------------------------------ relevance
@pytest.mark.parametrize("size,n_boot,confidence", [(2, 50, 0.95), (17, 1000, 0.95), (300, 400, 0.9)])
def test_mean_ci_equals_the_percentile_bootstrap(size, n_boot, confidence):
    """scipy.stats.bootstrap (percentile) draws the resamples as the hand-written bootstrap it replaced did
    (``default_rng(seed).integers(0, N, (n_boot, N))``): the interval is the same to rounding."""
    values = np.random.default_rng(size).standard_normal(size)
    draws = np.random.default_rng(7).integers(0, size, size=(n_boot, size))
    alpha = (1 - confidence) / 2
    expected = np.quantile(values[draws].mean(axis=1), [alpha, 1 - alpha])
    got = stats.mean_ci(values, n_boot=n_boot, confidence=confidence, seed=7)
    assert got == pytest.approx(tuple(expected), abs=1e-12)
    assert got == stats.mean_ci(values, n_boot=n_boot, confidence=confidence, seed=7)
    assert np.isnan(stats.mean_ci(values[:1], n_boot=n_boot, confidence=confidence, seed=7)).all()


def test_clap_score_and_interval(rng):
    text = rng.standard_normal((20, 8))
    audio = text + 0.1 * rng.standard_normal((20, 8))
    res = stats.clap_score(audio, text, n_boot=200)
    assert 0.9 < res.score <= 1 and res.ci_low <= res.score <= res.ci_high
    shuffled = stats.clap_score(audio, text[::-1], n_boot=50)
    assert shuffled.score < res.score - 0.5
    with pytest.raises(InputError):
        stats.clap_score(audio, text[:3])


def test_tag_kl_divergence():
    import pandas as pd

    p = np.array([[0.9, 0.1, 0.0], [0.7, 0.3, 0.0]])
    assert stats.tag_kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    q = np.array([[0.1, 0.1, 0.8]])
    assert stats.tag_kl_divergence(p, q) > 1.0
    dfa = pd.DataFrame(p, columns=["piano", "slow", "drums"])
    dfb = pd.DataFrame(p[:, ::-1], columns=["drums", "slow", "piano"])  # same tags, other column order
    assert stats.tag_kl_divergence(dfa, dfb) == pytest.approx(0.0, abs=1e-12)


def test_json_friendly_results(rng):
    a, b = rng.standard_normal((30, 3)), rng.standard_normal((30, 3)) + 1
    d = fad.bootstrap_fad(a, b, n=20).as_dict()
    json.dumps(d)
    assert {"point", "ci_low", "ci_high", "bias", "n_ref", "n_gen"} <= set(d)


# ------------------------------------------------------------------------------------------------ stage + CLI
def _write_tone(path, freq: float, seconds: float, sr: int, *, seed: int, stereo: bool = False):
    from echoscript_utils import audio

    r = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    wav = (0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * r.standard_normal(t.size)).astype(np.float32)[None]
    audio.write(path, np.repeat(wav, 2, axis=0) if stereo else wav, sr)


@pytest.fixture
def fake_run(tmp_path):
    """A run folder with a curated eval split (44.1 kHz stereo clips) and two generated sets (32 kHz mono) in the
    05_generation layout, plus a config that uses a random VGGish."""
    from echoscript_utils.config import load_config

    cfg = load_config(None, {"evaluation.embeddings": ["vggish", "panns"], "evaluation.vggish_weights": "random",
                             "evaluation.bootstrap": 30, "evaluation.relevance": False, "run.device": "cpu"},
                      output_root=tmp_path / "out")
    cur = cfg.paths.curation
    records = []
    for i, split in enumerate(["eval", "eval", "eval", "train"]):
        _write_tone(cur / "clips" / f"c{i}.wav", 220.0 * (i + 1), 3.0, 44100, seed=i, stereo=True)
        records.append({"clip_id": f"t{i}-0", "track_id": f"t{i}", "source": f"t{i}.wav", "path": f"clips/c{i}.wav",
                        "start_s": 0.0, "duration_s": 3.0, "sample_rate": 44100, "channels": 2, "split": split})
    (cur / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    for m, base in (("musicgen", 300.0), ("echoscript", 250.0)):
        for k in range(4):
            wav = cfg.paths.generation / m / f"scene{k}_s0.wav"
            _write_tone(wav, base + 40 * k, 2.0, 32000, seed=10 + k)
            wav.with_suffix(".json").write_text(json.dumps({"prompt": f"scene {k}", "model": m}), encoding="utf-8")
    _write_tone(cfg.paths.generation / "sketch" / "a.wav", 100.0, 1.0, 32000, seed=99)
    return cfg


def test_stage_helpers_on_a_generated_layout(fake_run):
    cfg = fake_run
    sets = evaluation.evaluation_sets(cfg)
    assert len(sets.reference) == 3  # the eval split only
    assert list(sets.generated) == ["musicgen", "echoscript"]  # baseline first; sketch/ is not a system
    assert sets.prompts["echoscript"][0] == "scene 0"
    embedded = evaluation.embed_sets(sets, cfg, progress=False)
    assert "panns" in embedded.skipped and "checkpoint" in embedded.skipped["panns"]
    assert [len(c) for c in embedded.data["vggish"].values()] == [3, 4, 4]
    table = evaluation.fad_table(embedded, cfg)
    assert list(table["model"]) == ["musicgen", "echoscript"]
    assert (table["ci_low"] <= table["fad"]).all() and (table["fad"] <= table["ci_high"]).all()
    assert (table["rows_ref"] == 9).all() and "mono" in table["inputs"].iloc[0]  # 3 clips × 3 VGGish frames
    paired = evaluation.paired_table(embedded, cfg)
    assert paired.loc[0, "a"] == "echoscript" and bool(paired.loc[0, "paired_generated"])
    assert paired.loc[0, "difference"] == pytest.approx(table["fad"].iloc[1] - table["fad"].iloc[0])
    fits = evaluation.fad_infinity_fits(embedded, cfg)
    outliers = evaluation.outlier_table(embedded)
    assert len(outliers) == 8 and set(outliers["model"]) == {"musicgen", "echoscript"}
    assert evaluation.clap_scores(sets, cfg).empty and evaluation.tag_distributions(sets, cfg) == {}  # relevance off
    assert evaluation.tag_kl_table({}).empty
    metrics = evaluation.stage_metrics(sets, embedded, table, paired, fits, outliers)
    json.dumps(metrics, default=str)
    assert metrics["reference"]["files"] == 3 and metrics["verdict"].startswith("vggish:")
    # computed reliability: 8 generated rows (4 clips × 2 VGGish frames) in 128 dimensions, 3 reference clips
    # against a minimum of 50
    assert list(table["flags"]) == ["rows<dim clips<min"] * 2
    assert (table["clips_needed"] > table["n_gen"]).all()
    note = evaluation.reliability_note(table, cfg)
    assert note.startswith("2 of 2 FADs are flagged") and "8 rows in 128 dimensions" in note
    assert "3 clips (minimum 50)" in note and "generated clips (now 4)" in note and "reference clips (now 3)" in note
    assert (table["clips_needed_ref"] > table["n_ref"]).all()
    assert str(int(table["clips_needed"].iloc[0])) in note
    comp = evaluation.comparability_table(embedded).set_index("embedding").loc["vggish"]
    assert comp["resampler"] == "kaiser_best" and "torchvggish" in comp["reference"]
    assert "no ReLU, no PCA" in comp["head"] and metrics["comparability"][0]["embedding"] == "vggish"
    if importlib.util.find_spec("torchvggish") is not None:  # parity measured in the run, against torchvggish
        assert comp["parity_rows"] <= 1e-5 and comp["parity_fad"] <= 1e-5 and "probe clips" in comp["parity_note"]


def test_cli_prints_fad_with_interval(fake_run, capsys):
    from echoscript_utils.cli import main

    cfg = fake_run
    code = main(["fad", "--reference", str(cfg.paths.curation / "clips"), "--generated",
                 str(cfg.paths.generation / "musicgen"), "--embedding", "vggish", "--bootstrap", "20",
                 "--set", "evaluation.vggish_weights=random", "--set", f"run.output_root={cfg.paths.root.parent}"])
    out = capsys.readouterr().out
    assert code == 0
    assert "FAD (vggish) =" in out and "95% CI [" in out
    assert "KAD (vggish) =" in out and "σ = " in out
    assert "reference: 4 files" in out and "generated: 4 files" in out and "mono" in out


def test_cli_exit_codes_for_bad_folders(tmp_path, capsys):
    from echoscript_utils.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["fad", "--reference", str(tmp_path / "nope"), "--generated", str(empty)]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert main(["fad", "--reference", str(empty), "--generated", str(empty)]) == 2
    assert "no audio files" in capsys.readouterr().err
    (empty / "x.wav").write_bytes(b"")
    assert main(["fad", "--reference", str(empty), "--generated", str(empty), "--embedding", "vggish",
                 "--set", f"run.output_root={tmp_path}"]) == 2  # no VGGish weights configured: DependencyError
    assert "vggish_weights" in capsys.readouterr().err


def test_bootstrap_against_fixed_reference_statistics(rng):
    gen = gaussian_clips(rng, 25, 3, 4, shift=0.3)
    ref = fad.EmbeddingStats(mu=np.zeros(4), cov=np.eye(4), n=10**9)
    res = fad.bootstrap_fad(ref, gen, n=50, seed=0)
    assert res.ci_low < res.point < res.ci_high and res.n_ref == 10**9
    diff = fad.paired_bootstrap_difference(ref, gen, gen, n=20, seed=0, paired_generated=True)
    assert diff.difference == 0


# ------------------------------------------------------------------------------------------------ reliability
def test_reliability_flags():
    assert fad.reliability_flags(n_ref=100, n_gen=100, rows_ref=900, rows_gen=900, dim=128, min_clips=50) == []
    assert fad.reliability_flags(n_ref=100, n_gen=14, rows_ref=900, rows_gen=14, dim=200,
                                 min_clips=50) == ["rows<dim", "clips<min"]
    assert fad.reliability_flags(n_ref=60, n_gen=60, rows_ref=60, rows_gen=600, dim=128,
                                 min_clips=50) == ["rows<dim"]
    assert set(fad.RELIABILITY_FLAGS) == {"rows<dim", "clips<min"}


def test_clips_needed_predicts_the_interval_at_the_larger_size():
    """The clips-needed estimate from a small experiment, checked by running the larger one it asks for."""
    dim, shift = 4, 0.5

    def widths(n_clips, seeds):
        out = []
        for s in seeds:
            r = np.random.default_rng(s)
            ref, gen = r.standard_normal((n_clips, dim)), r.standard_normal((n_clips, dim)) + shift
            res = fad.bootstrap_fad(ref, gen, n=200, seed=s)
            out.append(res)
        return out

    small = widths(40, range(6))
    target = np.mean([r.ci_high - r.ci_low for r in small]) / 2  # half the current width
    needed = [fad.clips_needed(r, width=target) for r in small]
    estimate = int(np.median([c.n_gen for c in needed]))
    assert 100 <= estimate <= 260  # ≈ 4× the clips for half the width
    assert all(c.n_ref == c.n_gen for c in needed)  # both sets resampled: the reference grows alike
    measured = np.mean([r.ci_high - r.ci_low for r in widths(estimate, range(10, 16))])
    assert measured == pytest.approx(target, rel=0.35)


def test_clips_needed_uses_the_fad_infinity_bias():
    rng = np.random.default_rng(3)
    dim = 8
    ref = fad.EmbeddingStats(mu=np.zeros(dim), cov=np.eye(dim), n=10**9)
    gen = rng.standard_normal((400, dim)) + 0.5
    inf = fad.fad_infinity(ref, gen, n_points=8, min_n=40, repeats=5, seed=0)
    res = fad.bootstrap_fad(ref, gen, n=100, seed=0)
    need = fad.clips_needed(res, width=0.05, fad_inf=inf)
    assert inf.slope > 0 and need.n_for_bias == int(np.ceil(2 * inf.slope / 0.05))
    assert need.n_gen == max(need.n_for_width, need.n_for_bias) and need.n_ref == 10**9  # fixed reference
    assert need.fad_inf_r2 == pytest.approx(inf.r2)
    with pytest.raises(ValueError, match="positive"):
        fad.clips_needed(res, width=0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_low_rank_route_is_taken_and_exact(dtype, monkeypatch):
    """Low-rank signal over a noise floor (the shape of CLAP/PANNs embeddings) goes the inverse-first route with
    a subspace iteration for the signal directions; its value equals the exact float64 reference to rounding and
    scipy's sqrtm formula within 1e-6, from rows and from statistics, in both orders."""
    taken = []
    route = fad._nuclear_norm_graded

    def spy(*args, **kw):
        value = route(*args, **kw)
        taken.append(value is not None)
        return value

    monkeypatch.setattr(fad, "_nuclear_norm_graded", spy)
    a, b = embedding_pair(21, dim=320, rows=(1200, 1100), rank=10, noise=1e-3, cond=1.0, dtype=dtype)
    truth = exact_reference(a, b)
    assert fad.frechet_distance(a, b) == pytest.approx(truth, rel=1e-9)
    assert fad.frechet_distance(b, a) == pytest.approx(truth, rel=1e-9)
    sa, sb = fad.EmbeddingStats.from_embeddings(a), fad.EmbeddingStats.from_embeddings(b)
    assert fad.frechet_distance(sa, sb) == pytest.approx(truth, rel=1e-9)
    assert taken == [True, True, True]
    assert fad.frechet_distance(a, b) == pytest.approx(sqrtm_reference(a.astype(np.float64), b.astype(np.float64)),
                                                       rel=1e-6)


def test_low_rank_route_declines_a_spread_spectrum():
    """A factor whose large eigenvalues are not few is left to the general route (None), which stays exact."""
    rng = np.random.default_rng(4)
    n = 64
    g = np.asfortranarray(np.tril(rng.standard_normal((n, n))) * np.logspace(0, -9, n))  # graded, no gap

    def eigvals_lower(m):
        return scipy.linalg.eigh(m, lower=True, eigvals_only=True, check_finite=False)

    assert fad._graded(g, rest=1.0)
    assert fad._nuclear_norm_graded(g, rest=1.0, acceptable=lambda total, bound: True,
                                    eigvals_lower=eigvals_lower) is None
    truth = scipy.linalg.svdvals(g).sum()
    assert fad._nuclear_norm_triangular(g.copy(order="F"), rest=4 * truth) == pytest.approx(truth, rel=1e-10)


def test_bootstrap_sides_from_per_clip_statistics_equal_the_repeated_rows():
    """A clip-level resample's mean and covariance come from per-clip means and centred scatters (O(C·D²)); they
    equal the statistics of the resampled rows themselves, also far from the origin, and the FAD interval is the
    same as when every resample goes through its rows."""
    from echoscript_utils import fad

    rng = np.random.default_rng(3)
    mix = rng.normal(size=(24, 24)) * 0.2
    ref = [rng.normal(size=(int(rng.integers(20, 60)), 24)) @ mix + 1e3 for _ in range(25)]
    gen = [rng.normal(0.3, 1.0, size=(30, 24)) @ mix + 1e3 for _ in range(12)]
    res = fad._Resampler(ref, "reference")
    assert res.clip_stats is not None
    for _ in range(5):
        idx = res.draw(rng)
        counts = np.bincount(idx, minlength=res.n_clips).astype(float)
        w = counts[res.groups]
        direct = fad._side_from_rows(res.rows[w > 0], w[w > 0])
        side = res.side(idx)
        np.testing.assert_allclose(side.mu, direct.mu, rtol=1e-12)
        np.testing.assert_allclose(side.cov, direct.cov, rtol=1e-9, atol=1e-12 * np.abs(direct.cov).max())
    fast = fad.bootstrap_fad(ref, gen, n=50, seed=1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fad, "_CLIP_STATS_MAX_BYTES", 0)  # every resample through its rows
        slow = fad.bootstrap_fad(ref, gen, n=50, seed=1)
    assert fast.point == slow.point
    np.testing.assert_allclose([fast.ci_low, fast.ci_high], [slow.ci_low, slow.ci_high], rtol=1e-9)
