"""The distance math of GAN metrics, separate from any feature network.

Everything here works on plain arrays of features (e.g. Inception pool activations) or class
probabilities, so the formulas can be tested against independent computations and real-data
statistics can be computed once and cached. NumPy and SciPy only.

Frechet Inception Distance (Heusel et al. 2017, "GANs Trained by a Two Time-Scale Update Rule
Converge to a Local Nash Equilibrium", the TTUR reference implementation): the Frechet (2-
Wasserstein) distance between two Gaussians fitted to the features,

    FID = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)),

with S the unbiased (N - 1) covariance. If the product S1 S2 is near-singular (its square root is
not finite or has a large imaginary part), eps * I is added to both covariances, as the reference
does.

Kernel Inception Distance (Binkowski et al. 2018, "Demystifying MMD GANs"): the unbiased estimate
of the squared maximum mean discrepancy with the polynomial kernel
k(x, y) = (gamma x.y + coef0)^degree (defaults gamma = 1/D, coef0 = 1, degree = 3):

    MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j)
              - 2/m^2 sum_{i,j} k(x_i, y_j),

averaged over random subsets of m samples from each set (as in the authors' code, ``cleanfid`` and
StyleGAN2-ADA); the mean and standard deviation over subsets are returned.

Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs"):

    IS = exp(E_x KL(p(y|x) || p(y))),   p(y) = E_x p(y|x),

computed per split of the predictions; the mean and standard deviation over splits are returned.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
from scipy import linalg
from scipy.special import rel_entr

from keras_dcgan import validation
from keras_dcgan.errors import UserError

__all__ = [
    "FeatureStats",
    "fid_from_stats",
    "frechet_distance",
    "inception_score",
    "kernel_inception_distance",
]

_NPZ_FORMAT = 1
# The TTUR reference rejects a square root whose diagonal has an imaginary part above this.
_IMAG_ATOL = 1e-3


def _as_real_array(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise UserError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _as_features(x, name: str) -> np.ndarray:
    arr = _as_real_array(x, name)
    if arr.ndim != 2:
        raise UserError(f"{name} must be a 2-D [N, D] array, got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise UserError(f"{name} must have at least one feature (D >= 1), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise UserError(f"{name} contains non-finite values (NaN or inf)")
    return arr


class FeatureStats:
    """Streaming mean and covariance of feature vectors, accumulated in float64.

    Batches are combined with Chan et al.'s parallel update: each batch is centred on its own
    mean before its scatter matrix is formed, so a large common offset in the features does not
    cancel away the covariance (unlike accumulating the raw sum of x x^T).

    Example:
        stats = FeatureStats()
        for batch in feature_batches:
            stats.update(batch)
        stats.to_npz("real_stats.npz")
    """

    def __init__(self, dim: int | None = None):
        dim = validation.positive_int(dim, "dim", optional=True)
        self._dim: int | None = None
        self._count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None  # sum over samples of (x - mean)(x - mean)^T
        if dim is not None:
            self._set_dim(int(dim))

    def _set_dim(self, dim: int) -> None:
        self._dim = dim
        self._mean = np.zeros(dim, np.float64)
        self._m2 = np.zeros((dim, dim), np.float64)

    # -- accumulation -------------------------------------------------------------------------

    def update(self, features) -> FeatureStats:
        """Add a [N, D] batch of features (any real dtype, any N >= 0). Returns self."""
        x = _as_features(features, "features")
        if self._dim is not None and x.shape[1] != self._dim:
            raise UserError(f"features have dimension {x.shape[1]}, expected {self._dim}")
        if self._dim is None:
            self._set_dim(x.shape[1])
        n_b = x.shape[0]
        if n_b == 0:
            return self
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        self._combine(n_b, mean_b, centred.T @ centred)
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Fold another accumulator's samples into this one (in place). Returns self."""
        if not isinstance(other, FeatureStats):
            raise TypeError(f"can only merge a FeatureStats, got {type(other).__name__}")
        if other._count == 0:
            if self._dim is None and other._dim is not None:
                self._set_dim(other._dim)
            elif other._dim is not None and other._dim != self._dim:
                raise UserError(f"cannot merge stats of dimension {other._dim} into {self._dim}")
            return self
        if self._dim is None:
            self._set_dim(other._dim)
        if other._dim != self._dim:
            raise UserError(f"cannot merge stats of dimension {other._dim} into {self._dim}")
        self._combine(other._count, other._mean.copy(), other._m2.copy())
        return self

    def _combine(self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray) -> None:
        n_a = self._count
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (n_a * n_b / n)
        self._count = n

    # -- results ------------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Number of feature vectors seen."""
        return self._count

    @property
    def dim(self) -> int | None:
        """Feature dimension D, or None before the first batch (when not given)."""
        return self._dim

    @property
    def mean(self) -> np.ndarray:
        """float64 [D] mean of the features."""
        if self._count < 1:
            raise UserError("mean needs at least 1 sample, got 0")
        return self._mean.copy()

    @property
    def covariance(self) -> np.ndarray:
        """float64 [D, D] unbiased (N - 1) covariance of the features."""
        if self._count < 2:
            raise UserError(f"covariance needs at least 2 samples, got {self._count}")
        cov = self._m2 / (self._count - 1)
        return (cov + cov.T) / 2  # exactly symmetric

    def __repr__(self) -> str:
        return f"FeatureStats(count={self._count}, dim={self._dim})"

    # -- caching ------------------------------------------------------------------------------

    def to_npz(self, path: str | os.PathLike) -> None:
        """Save to an .npz file, atomically (temp file in the same folder, then os.replace)."""
        if self._count < 1:
            raise UserError("nothing to save: no samples accumulated")
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    format_version=np.int64(_NPZ_FORMAT),
                    count=np.int64(self._count),
                    mean=self._mean,
                    m2=self._m2,
                )
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> FeatureStats:
        """Load statistics written by `to_npz`."""
        with np.load(os.fspath(path), allow_pickle=False) as data:
            missing = {"format_version", "count", "mean", "m2"} - set(data.files)
            if missing:
                raise UserError(f"{path} is not a FeatureStats file (missing {sorted(missing)})")
            version = int(data["format_version"])
            count = int(data["count"])
            mean = np.asarray(data["mean"], np.float64)
            m2 = np.asarray(data["m2"], np.float64)
        if version != _NPZ_FORMAT:
            raise UserError(f"{path}: unsupported FeatureStats format version {version}")
        if count < 1 or mean.ndim != 1 or m2.shape != (mean.shape[0], mean.shape[0]):
            raise UserError(
                f"{path}: inconsistent FeatureStats (count={count}, mean {mean.shape}, "
                f"m2 {m2.shape})"
            )
        if not (np.isfinite(mean).all() and np.isfinite(m2).all()):
            raise UserError(f"{path}: FeatureStats contain non-finite values")
        stats = cls(mean.shape[0])
        stats._count, stats._mean, stats._m2 = count, mean, m2
        return stats


# -- FID ----------------------------------------------------------------------------------------


def _sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray) -> np.ndarray:
    return np.asarray(linalg.sqrtm(sigma1 @ sigma2))


def _bad_sqrt(covmean: np.ndarray) -> bool:
    if not np.isfinite(covmean).all():
        return True
    return np.iscomplexobj(covmean) and not np.allclose(
        np.diagonal(covmean).imag, 0, atol=_IMAG_ATOL
    )


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (the FID formula).

    ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2)). When the square root of the
    product is not finite or has a large imaginary part (near-singular covariances, e.g. fewer
    samples than dimensions), it is recomputed with eps * I added to both covariances.
    """
    mu1 = np.atleast_1d(_as_real_array(mu1, "mu1"))
    mu2 = np.atleast_1d(_as_real_array(mu2, "mu2"))
    sigma1 = np.atleast_2d(_as_real_array(sigma1, "sigma1"))
    sigma2 = np.atleast_2d(_as_real_array(sigma2, "sigma2"))
    if mu1.ndim != 1 or mu2.ndim != 1:
        raise UserError(f"means must be 1-D, got shapes {mu1.shape} and {mu2.shape}")
    if mu1.shape != mu2.shape:
        raise UserError(f"means have different lengths: {mu1.shape[0]} and {mu2.shape[0]}")
    d = mu1.shape[0]
    for name, s in (("sigma1", sigma1), ("sigma2", sigma2)):
        if s.shape != (d, d):
            raise UserError(f"{name} must have shape ({d}, {d}) to match the means, got {s.shape}")
    for name, a in (("mu1", mu1), ("mu2", mu2), ("sigma1", sigma1), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise UserError(f"{name} contains non-finite values (NaN or inf)")
    if eps < 0:
        raise UserError(f"eps must be >= 0, got {eps}")

    diff = mu1 - mu2
    covmean = _sqrtm_product(sigma1, sigma2)
    if _bad_sqrt(covmean):
        offset = np.eye(d) * eps
        covmean = _sqrtm_product(sigma1 + offset, sigma2 + offset)
    if not np.isfinite(covmean).all():
        raise UserError("sqrtm(sigma1 @ sigma2) is not finite even after adding eps * I")
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=_IMAG_ATOL):
            m = np.max(np.abs(covmean.imag))
            raise UserError(f"sqrtm(sigma1 @ sigma2) has a large imaginary component {m:.3g}")
        covmean = covmean.real
    fid = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean)
    # The distance is >= 0; round-off can leave a tiny negative for (nearly) identical inputs.
    return max(float(fid), 0.0)


def fid_from_stats(a: FeatureStats, b: FeatureStats, eps: float = 1e-6) -> float:
    """FID between two accumulated `FeatureStats` (each needs >= 2 samples)."""
    if not isinstance(a, FeatureStats) or not isinstance(b, FeatureStats):
        raise TypeError("fid_from_stats takes two FeatureStats")
    if a.dim != b.dim:
        raise UserError(f"stats have different dimensions: {a.dim} and {b.dim}")
    return frechet_distance(a.mean, a.covariance, b.mean, b.covariance, eps=eps)


# -- KID ----------------------------------------------------------------------------------------


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray, gamma: float, coef0: float, degree: int) -> float:
    m = x.shape[0]
    k_xx = (gamma * (x @ x.T) + coef0) ** degree
    k_yy = (gamma * (y @ y.T) + coef0) ** degree
    k_xy = (gamma * (x @ y.T) + coef0) ** degree
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    features_a,
    features_b,
    num_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1,
    seed: int | None = 0,
) -> tuple[float, float]:
    """KID: unbiased polynomial-kernel MMD^2 over random subsets; returns (mean, std).

    Each subset draws min(subset_size, len(a), len(b)) rows without replacement from each set
    (seeded by `seed`). The std is over subsets (ddof=0, as in Binkowski et al.'s code).
    """
    a = _as_features(features_a, "features_a")
    b = _as_features(features_b, "features_b")
    if a.shape[1] != b.shape[1]:
        raise UserError(f"feature dimensions differ: {a.shape[1]} and {b.shape[1]}")
    num_subsets = validation.positive_int(num_subsets, "num_subsets")
    subset_size = validation.integer(subset_size, "subset_size", minimum=2)
    degree = validation.positive_int(degree, "degree")
    m = min(int(subset_size), a.shape[0], b.shape[0])
    if m < 2:
        raise UserError(
            f"KID needs at least 2 samples in each set, got {a.shape[0]} and {b.shape[0]}"
        )
    gamma = 1.0 / a.shape[1] if gamma is None else float(gamma)
    rng = np.random.default_rng(seed)
    mmds = np.empty(int(num_subsets), np.float64)
    for i in range(mmds.shape[0]):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        mmds[i] = _unbiased_mmd2(x, y, gamma, float(coef0), int(degree))
    return float(mmds.mean()), float(mmds.std())


# -- IS -----------------------------------------------------------------------------------------


def inception_score(
    probabilities, splits: int = 10, tolerance: float = 1e-3
) -> tuple[float, float]:
    """Inception Score of [N, K] class probabilities p(y|x); returns (mean, std) over splits.

    Splits are contiguous, with the boundaries i * N // splits of the reference code. Rows must
    be non-negative and sum to 1 within `tolerance`. Zero probabilities contribute 0 (0 log 0 = 0).
    """
    p = _as_features(probabilities, "probabilities")
    n = p.shape[0]
    splits = validation.positive_int(splits, "splits")
    if n < splits:
        raise UserError(f"need at least {splits} predictions for {splits} splits, got {n}")
    if (p < 0).any():
        raise UserError("probabilities must be non-negative")
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0)))
    if abs(sums[worst] - 1.0) > tolerance:
        raise UserError(
            f"probability rows must sum to 1 (within {tolerance}); row {worst} sums to "
            f"{sums[worst]:.6g}"
        )
    scores = np.empty(splits, np.float64)
    for i in range(splits):
        part = p[i * n // splits : (i + 1) * n // splits]
        marginal = part.mean(axis=0, keepdims=True)
        kl = rel_entr(part, marginal).sum(axis=1).mean()
        scores[i] = np.exp(kl)
    return float(scores.mean()), float(scores.std())
