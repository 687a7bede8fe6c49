"""The GAN-metric math in keras_dcgan.evaluation.stats, checked against independent computations.

The references below are written from the definitions with plain NumPy/SciPy (eigendecompositions,
all-pairs loops, per-row loops), not with the code under test.
"""

import math
import os
import statistics

import numpy as np
import pytest

from keras_dcgan.evaluation.stats import (
    FeatureStats,
    fid_from_stats,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
)

# -- independent references ---------------------------------------------------------------------


def _psd_sqrt(s):
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _fid_eig(mu1, s1, mu2, s2):
    """FID with Tr(sqrtm(s1 s2)) = sum sqrt(eig(sqrt(s1) s2 sqrt(s1))), a symmetric PSD matrix."""
    r = _psd_sqrt(s1)
    eig = np.linalg.eigvalsh(r @ s2 @ r)
    tr_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def _kid_all_pairs(x, y, degree=3, gamma=None, coef0=1.0):
    """Unbiased MMD^2 by looping over every pair (Gretton et al.'s MMD_u^2 with m = n)."""
    m, d = x.shape
    gamma = 1.0 / d if gamma is None else gamma

    def k(a, b):
        return (gamma * float(np.dot(a, b)) + coef0) ** degree

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def _is_loop(p, splits):
    n, k = p.shape
    scores = []
    for s in range(splits):
        rows = p[s * n // splits : (s + 1) * n // splits]
        marginal = [sum(row[c] for row in rows) / len(rows) for c in range(k)]
        kl_sum = 0.0
        for row in rows:
            for c in range(k):
                if row[c] > 0:
                    kl_sum += row[c] * (math.log(row[c]) - math.log(marginal[c]))
        scores.append(math.exp(kl_sum / len(rows)))
    return statistics.fmean(scores), statistics.pstdev(scores)


@pytest.fixture
def rng():
    return np.random.default_rng(20240601)


def _features(rng, n, d, offset=0.0):
    mixing = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing + rng.normal(size=d) + offset


# -- FeatureStats -------------------------------------------------------------------------------


def test_streaming_uneven_batches_equals_one_shot_with_large_offset(rng):
    x = _features(rng, 300, 12, offset=1e4)
    stats = FeatureStats()
    start = 0
    for size in (1, 7, 0, 50, 3, 100, 139):
        stats.update(x[start : start + size])
        start += size
    assert start == len(x)
    assert stats.count == 300 and stats.dim == 12
    np.testing.assert_allclose(stats.mean, np.mean(x, axis=0), rtol=1e-10, atol=0)
    np.testing.assert_allclose(stats.covariance, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)
    assert stats.mean.dtype == np.float64 and stats.covariance.dtype == np.float64


def test_float32_input_accumulates_in_float64(rng):
    x = _features(rng, 64, 5).astype(np.float32)
    stats = FeatureStats().update(x[:10]).update(x[10:])
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(stats.mean, x64.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance, np.cov(x64, rowvar=False), rtol=1e-10, atol=1e-14)


def test_merge_equals_one_shot(rng):
    x = _features(rng, 200, 8, offset=5e3)
    a = FeatureStats().update(x[:37])
    b = FeatureStats().update(x[37:90]).update(x[90:])
    merged = a.merge(b)
    assert merged is a and a.count == 200
    np.testing.assert_allclose(a.mean, x.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(a.covariance, np.cov(x, rowvar=False), rtol=1e-10, atol=1e-12)
    # merging into / from an empty accumulator is the identity
    c = FeatureStats().merge(b)
    np.testing.assert_array_equal(c.covariance, b.covariance)
    b_cov = b.covariance
    b.merge(FeatureStats(8))
    np.testing.assert_array_equal(b.covariance, b_cov)


def test_npz_round_trip_is_exact_and_atomic(rng, tmp_path):
    x = _features(rng, 50, 6)
    stats = FeatureStats().update(x)
    path = tmp_path / "real_stats.npz"
    stats.to_npz(path)
    assert sorted(os.listdir(tmp_path)) == ["real_stats.npz"]  # no temp file left behind
    loaded = FeatureStats.from_npz(path)
    assert loaded.count == 50 and loaded.dim == 6
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.covariance, stats.covariance)
    # a loaded cache keeps accumulating like the original
    extra = _features(rng, 9, 6)
    loaded.update(extra)
    both = np.concatenate([x, extra])
    np.testing.assert_allclose(loaded.covariance, np.cov(both, rowvar=False), rtol=1e-10)
    # overwriting replaces the file
    FeatureStats().update(extra).to_npz(path)
    assert FeatureStats.from_npz(path).count == 9


def test_from_npz_rejects_other_files(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, mu=np.zeros(3), sigma=np.eye(3))
    with pytest.raises(ValueError, match="not a FeatureStats file"):
        FeatureStats.from_npz(path)


def test_feature_stats_rejects_bad_inputs():
    stats = FeatureStats().update(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"2-D \[N, D\] array, got shape \(4,\)"):
        stats.update(np.zeros(4))
    with pytest.raises(ValueError, match="2-D"):
        stats.update(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="dimension 5, expected 4"):
        stats.update(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="non-finite"):
        stats.update(np.array([[0.0, 1.0, np.nan, 2.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        stats.update(np.array([[0.0, np.inf, 1.0, 2.0]]))
    with pytest.raises(ValueError, match="real numeric"):
        stats.update(np.array([["a", "b", "c", "d"]]))
    assert stats.count == 3  # rejected batches left no trace
    with pytest.raises(ValueError, match="cannot merge stats of dimension 2 into 4"):
        stats.merge(FeatureStats().update(np.ones((2, 2))))
    one = FeatureStats().update(np.ones((1, 4)))
    np.testing.assert_array_equal(one.mean, np.ones(4))
    with pytest.raises(ValueError, match="covariance needs at least 2 samples, got 1"):
        _ = one.covariance
    with pytest.raises(ValueError, match="mean needs at least 1 sample"):
        _ = FeatureStats(4).mean
    with pytest.raises(ValueError, match="nothing to save"):
        FeatureStats(4).to_npz("unused.npz")


# -- FID ----------------------------------------------------------------------------------------


def test_fid_matches_eigendecomposition(rng):
    x, y = _features(rng, 400, 10), _features(rng, 300, 10, offset=0.3)
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    expected = _fid_eig(mu1, s1, mu2, s2)
    assert expected > 0.5
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    a, b = FeatureStats().update(x), FeatureStats().update(y)
    assert fid_from_stats(a, b) == pytest.approx(expected, rel=1e-9)


def test_fid_identical_and_symmetric(rng):
    x, y = _features(rng, 200, 16), _features(rng, 250, 16)
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)
    forward, backward = frechet_distance(mu1, s1, mu2, s2), frechet_distance(mu2, s2, mu1, s1)
    assert forward > 0.1
    assert forward == pytest.approx(backward, rel=1e-9)


def test_fid_of_shifted_gaussians_with_equal_covariance_is_squared_shift(rng):
    x = _features(rng, 500, 20)
    mu, s = x.mean(0), np.cov(x, rowvar=False)
    delta = rng.normal(size=20)
    assert frechet_distance(mu, s, mu + delta, s) == pytest.approx(delta @ delta, rel=1e-8)


def test_fid_near_singular_covariance_is_finite(rng):
    # 20 samples of 64-d features: rank-19 covariances, so sigma1 @ sigma2 is singular.
    x, y = _features(rng, 20, 64), _features(rng, 20, 64, offset=0.2)
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    assert np.linalg.matrix_rank(s1) < 64
    value = frechet_distance(mu1, s1, mu2, s2)
    assert np.isfinite(value) and value >= 0
    assert value == pytest.approx(_fid_eig(mu1, s1, mu2, s2), rel=1e-4)


def test_fid_retries_with_eps_when_sqrtm_is_not_finite(rng, monkeypatch):
    from keras_dcgan.evaluation import stats as stats_module

    x, y = _features(rng, 100, 6), _features(rng, 100, 6, offset=0.5)
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    real_sqrtm_product = stats_module._sqrtm_product
    calls = []

    def flaky(a, b):  # the first attempt "fails" as sqrtm does on a singular product
        calls.append((a, b))
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm_product(a, b)

    monkeypatch.setattr(stats_module, "_sqrtm_product", flaky)
    eps = 1e-3
    value = frechet_distance(mu1, s1, mu2, s2, eps=eps)
    assert len(calls) == 2
    np.testing.assert_array_equal(calls[1][0], s1 + eps * np.eye(6))
    np.testing.assert_array_equal(calls[1][1], s2 + eps * np.eye(6))
    # only the cross term uses the offset covariances, as in the TTUR reference
    r = _psd_sqrt(s1 + eps * np.eye(6))
    tr_sqrt = np.sqrt(np.linalg.eigvalsh(r @ (s2 + eps * np.eye(6)) @ r)).sum()
    d = mu1 - mu2
    expected = d @ d + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert value == pytest.approx(expected, rel=1e-9)


def test_fid_rejects_bad_inputs():
    mu, s = np.zeros(3), np.eye(3)
    with pytest.raises(ValueError, match="different lengths: 3 and 4"):
        frechet_distance(mu, s, np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match=r"sigma2 must have shape \(3, 3\)"):
        frechet_distance(mu, s, mu, np.eye(2))
    with pytest.raises(ValueError, match="means must be 1-D"):
        frechet_distance(np.zeros((3, 1)), s, mu, s)
    with pytest.raises(ValueError, match="sigma1 contains non-finite"):
        frechet_distance(mu, np.full((3, 3), np.nan), mu, s)
    # not a covariance: the square root of the product is genuinely complex
    with pytest.raises(ValueError, match="large imaginary component"):
        frechet_distance(mu, np.diag([1.0, -1.0, 1.0]), mu, s)
    with pytest.raises(ValueError, match="covariance needs at least 2 samples"):
        fid_from_stats(FeatureStats().update(np.ones((1, 3))), FeatureStats().update(np.eye(3)))
    with pytest.raises(ValueError, match="different dimensions"):
        fid_from_stats(FeatureStats().update(np.eye(3)), FeatureStats().update(np.eye(4)))


# -- KID ----------------------------------------------------------------------------------------


def test_kid_matches_all_pairs_definition(rng):
    x, y = _features(rng, 30, 5), _features(rng, 30, 5, offset=0.4)
    mean, std = kernel_inception_distance(x, y, num_subsets=1, subset_size=30)
    assert mean == pytest.approx(_kid_all_pairs(x, y), rel=1e-10)
    assert std == 0.0
    # other kernel parameters are honoured
    mean2, _ = kernel_inception_distance(
        x, y, num_subsets=1, subset_size=30, degree=2, gamma=0.5, coef0=0.25
    )
    assert mean2 == pytest.approx(_kid_all_pairs(x, y, degree=2, gamma=0.5, coef0=0.25), rel=1e-10)


def test_kid_same_distribution_near_zero_and_shift_positive(rng):
    mixing = rng.normal(size=(16, 16)) / 4

    def sample(n, shift=0.0):
        return rng.normal(size=(n, 16)) @ mixing + shift

    a, b, c = sample(600), sample(600), sample(600, shift=0.5)
    same_mean, same_std = kernel_inception_distance(a, b, num_subsets=20, subset_size=200)
    diff_mean, diff_std = kernel_inception_distance(a, c, num_subsets=20, subset_size=200)
    assert diff_mean > 0.05
    assert diff_mean > 5 * diff_std
    assert abs(same_mean) < 0.05 * diff_mean
    assert same_std > 0


def test_kid_is_seeded_and_caps_subset_size(rng):
    x, y = _features(rng, 40, 4), _features(rng, 25, 4, offset=1.0)
    first = kernel_inception_distance(x, y, num_subsets=5, subset_size=1000, seed=3)
    assert first == kernel_inception_distance(x, y, num_subsets=5, subset_size=1000, seed=3)
    assert first != kernel_inception_distance(x, y, num_subsets=5, subset_size=1000, seed=4)
    assert np.isfinite(first).all() and first[0] > 0
    # capped at 25 = len(y): with 25 rows of each, one subset is the brute-force estimate
    mean, _ = kernel_inception_distance(x[:25], y, num_subsets=1, subset_size=1000)
    assert mean == pytest.approx(_kid_all_pairs(x[:25], y), rel=1e-10)


def test_kid_rejects_bad_inputs():
    x = np.zeros((10, 4))
    with pytest.raises(ValueError, match="feature dimensions differ: 4 and 3"):
        kernel_inception_distance(x, np.zeros((10, 3)))
    with pytest.raises(ValueError, match=r"features_b must be a 2-D \[N, D\] array"):
        kernel_inception_distance(x, np.zeros(10))
    with pytest.raises(ValueError, match="at least 2 samples in each set, got 10 and 1"):
        kernel_inception_distance(x, np.zeros((1, 4)))
    with pytest.raises(ValueError, match="features_a contains non-finite"):
        kernel_inception_distance(np.full((10, 4), np.inf), x)
    with pytest.raises(ValueError, match="num_subsets must be a positive integer"):
        kernel_inception_distance(x, x, num_subsets=0)


# -- IS -----------------------------------------------------------------------------------------


def test_inception_score_uniform_is_one():
    p = np.full((50, 10), 0.1)
    mean, std = inception_score(p, splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_even_one_hot_is_num_classes():
    k, splits = 7, 4
    labels = np.arange(k * splits * 3) % k  # every split holds each class 3 times
    p = np.eye(k)[labels]
    mean, std = inception_score(p, splits=splits)
    assert mean == pytest.approx(k, rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_matches_direct_loop(rng):
    p = rng.dirichlet(np.full(6, 0.3), size=103)  # peaked rows; splits of 14 and 15 rows
    p[0] = [0.0, 0.5, 0.5, 0.0, 0.0, 0.0]  # zero entries contribute 0 log 0 = 0
    mean, std = inception_score(p, splits=7)
    ref_mean, ref_std = _is_loop(p, 7)
    assert ref_mean > 1.5 and ref_std > 0
    assert mean == pytest.approx(ref_mean, rel=1e-12)
    assert std == pytest.approx(ref_std, rel=1e-9)
    # float32 softmax output (rows sum to 1 only approximately) is accepted
    mean32, _ = inception_score(p.astype(np.float32), splits=7)
    assert mean32 == pytest.approx(ref_mean, rel=1e-5)


def test_inception_score_rejects_bad_inputs():
    good = np.full((20, 4), 0.25)
    with pytest.raises(ValueError, match="row 3 sums to 0.9"):
        bad = good.copy()
        bad[3, 0] = 0.15
        inception_score(bad, splits=2)
    with pytest.raises(ValueError, match="non-negative"):
        bad = good.copy()
        bad[0] = [-0.5, 0.5, 0.5, 0.5]
        inception_score(bad, splits=2)
    with pytest.raises(ValueError, match="2-D"):
        inception_score(np.full(4, 0.25), splits=1)
    with pytest.raises(ValueError, match="non-finite"):
        bad = good.copy()
        bad[1, 1] = np.nan
        inception_score(bad, splits=2)
    with pytest.raises(ValueError, match="at least 30 predictions for 30 splits, got 20"):
        inception_score(good, splits=30)
