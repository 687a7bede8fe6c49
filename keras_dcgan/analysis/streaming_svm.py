"""Features on disk and an L2-SVM that never holds them in memory (paper sec. 5.1, Table 1).

CIFAR-10 at paper32 is 50,000 x 28,672 features: 5.3 GiB as float32, 2.7 GiB as float16, and about
43 GiB inside scikit-learn's `LinearSVC` (a float64 copy plus liblinear's 16-byte nodes). Here:

- `FeatureStore`: a `.npy` file (NumPy's format, `np.load(path, mmap_mode="r")` reads it) written
  batch by batch as D's features are computed (`extract_to_store`), float32 or float16, and read
  back `chunk_rows` rows at a time with plain file reads (no memory map: mapped pages would count
  in the process's resident memory).
- `streaming_stats`: the standardisation statistics in one pass, float64 per-chunk means and
  centred sums of squares merged with Chan et al.'s formula; the same numbers as scikit-learn's
  `StandardScaler` (population variance, a zero variance scaled by 1).
- `fit_streaming_svm`: the L2-SVM that `LinearSVC` fits (squared hinge, L2 penalty, one-vs-rest,
  the intercept regularised as a feature of constant 1 as liblinear's intercept_scaling=1), as one
  smooth, strongly convex objective minimised by L-BFGS (SciPy), each objective/gradient evaluation
  one pass over the store, every chunk standardised on the fly in float32 (one chunk-sized copy).
  It is the primal problem itself, not a stochastic approximation: converged, it finds LinearSVC's
  solution (tests compare predictions). C values are fitted in increasing order, each warm-started
  from the previous solution.

Peak memory of a streaming fit: a chunk as stored plus its float32 standardised copy, the weights
and L-BFGS's 10 correction pairs (2 x 10 x (dim + 1) x classes float64), independent of the number
of examples (`streaming_fit_bytes`).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence

import numpy as np

from keras_dcgan import validation
from keras_dcgan.errors import UserError

FEATURE_DTYPES = ("float32", "float16")
CHUNK_BYTES = 2**28  # 256 MiB of float32 per chunk by default
LBFGS_HISTORY = 10


def feature_dtype(name) -> np.dtype:
    """The storage dtype named `name`: float32 or float16."""
    text = str(getattr(name, "name", name))
    if text not in FEATURE_DTYPES:
        raise UserError(
            f"feature_dtype must be one of {', '.join(FEATURE_DTYPES)}; got {name!r} "
            "(float16 halves the disk space, its 3 significant digits are plenty for an SVM)."
        )
    return np.dtype(text)


def feature_folder(folder: str | None) -> str:
    """`folder` (created if missing) after checking it is a writable directory, or a new
    temporary directory when None."""
    if folder is None:
        return tempfile.mkdtemp(prefix="dcgan_features_")
    folder = os.path.expanduser(str(folder))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise UserError(f"feature_dir {folder!r} is not a directory.")
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UserError(f"feature_dir {folder!r} is not writable: {e.strerror or e}.") from None
    return folder


def default_chunk_rows(dim: int) -> int:
    """Rows per chunk: 256 MiB of float32 features (2,340 rows at 28,672 features)."""
    return max(1, CHUNK_BYTES // (4 * int(dim)))


@dataclasses.dataclass
class FeatureStore:
    """A [rows, dim] `.npy` file of features; `read(start, stop)` returns rows as a new array."""

    path: str
    rows: int
    dim: int
    dtype: np.dtype
    offset: int  # bytes of the .npy header

    @classmethod
    def create(cls, path: str, rows: int, dim: int, dtype="float32") -> FeatureStore:
        dtype = feature_dtype(dtype)
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                  "shape": (int(rows), int(dim))}  # fmt: skip
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, header)
            offset = f.tell()
            f.truncate(offset + int(rows) * int(dim) * dtype.itemsize)
        return cls(path, int(rows), int(dim), dtype, offset)

    @property
    def nbytes(self) -> int:
        return self.rows * self.dim * self.dtype.itemsize

    def write(self, start: int, rows: np.ndarray) -> None:
        """Writes `rows` (cast to the store's dtype; a float16 overflow is refused) at `start`."""
        with np.errstate(over="ignore"):  # checked below
            data = np.ascontiguousarray(rows, dtype=self.dtype)
        if self.dtype == np.float16 and not np.isfinite(data).all():
            raise UserError(
                f"Features overflow float16 (largest |value| {np.abs(rows).max():.4g} > 65504): "
                "use feature_dtype=float32."
            )
        with open(self.path, "r+b") as f:
            f.seek(self.offset + start * self.dim * self.dtype.itemsize)
            f.write(data.tobytes())

    def read(self, start: int, stop: int) -> np.ndarray:
        stop = min(stop, self.rows)
        out = np.empty((max(0, stop - start), self.dim), self.dtype)
        with open(self.path, "rb") as f:
            f.seek(self.offset + start * self.dim * self.dtype.itemsize)
            f.readinto(memoryview(out).cast("B"))
        return out

    def chunks(self, chunk_rows: int, order: Sequence[int] | None = None):
        """(start, rows) for every chunk, in `order` (chunk numbers) if given."""
        starts = list(range(0, self.rows, chunk_rows))
        for k in order if order is not None else range(len(starts)):
            yield starts[k], self.read(starts[k], starts[k] + chunk_rows)

    def remove(self) -> None:
        if os.path.exists(self.path):
            os.remove(self.path)


def extract_to_store(features_of: Callable, indices, path: str, dtype="float32",
                     batch: int = 1024) -> FeatureStore:  # fmt: skip
    """The features of the examples `indices` (`features_of(indices) -> float32 [n, dim]`, e.g.
    D's features of `images[indices]`) written to a `FeatureStore` at `path`, `batch` examples at
    a time: only one batch's features are in memory."""
    indices = np.asarray(indices)
    validation.positive_int(batch, "batch")
    if not len(indices):
        raise UserError("No examples to extract features from.")
    store = None
    try:
        for start in range(0, len(indices), batch):
            features = np.asarray(features_of(indices[start : start + batch]))
            if store is None:
                store = FeatureStore.create(path, len(indices), features.shape[1], dtype)
            store.write(start, features)
    except BaseException:
        if store is not None:
            store.remove()
        raise
    return store


def streaming_stats(stores: Sequence[FeatureStore], chunk_rows: int | None = None):
    """Per-feature mean and scale (population std, 1 where it is ~0) of the rows of `stores`
    together, computed one chunk at a time (`StandardScaler`'s mean_ and scale_)."""
    dim = stores[0].dim
    chunk_rows = chunk_rows or default_chunk_rows(dim)
    count, mean, m2 = 0, np.zeros(dim), np.zeros(dim)
    for store in stores:
        for _, raw in store.chunks(chunk_rows):
            x = raw.astype(np.float32)
            n = len(x)
            chunk_mean = x.mean(axis=0, dtype=np.float64)
            x -= chunk_mean.astype(np.float32)
            chunk_m2 = np.square(x, out=x).sum(axis=0, dtype=np.float64)
            delta = chunk_mean - mean
            total = count + n
            mean += delta * (n / total)
            m2 += chunk_m2 + delta**2 * (count * n / total)
            count = total
    scale = np.sqrt(m2 / count)
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0  # as StandardScaler
    return mean, scale


@dataclasses.dataclass
class Standardizer:
    """`StandardScaler`'s transform from streamed statistics (float32 out)."""

    mean_: np.ndarray
    scale_: np.ndarray

    def transform(self, x: np.ndarray) -> np.ndarray:
        out = np.array(x, dtype=np.float32)
        out -= self.mean_.astype(np.float32)
        out *= (1.0 / self.scale_).astype(np.float32)
        return out


@dataclasses.dataclass
class LinearOvR:
    """One-vs-rest linear classifier: `coef_` [k, dim], `intercept_` [k] (k = 1 for 2 classes,
    as scikit-learn: positive means `classes_[1]`)."""

    coef_: np.ndarray
    intercept_: np.ndarray
    classes_: np.ndarray

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef_.T.astype(np.float32) + self.intercept_.astype(np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        scores = self.decision_function(x)
        if len(self.classes_) == 2:
            return self.classes_[(scores[:, 0] > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]


def _targets(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """+1 / -1 per example and one-vs-rest problem (one problem for two classes)."""
    if len(classes) == 2:
        return np.where(labels == classes[1], 1.0, -1.0).astype(np.float32)[:, None]
    return np.where(labels[:, None] == classes[None, :], 1.0, -1.0).astype(np.float32)


class _Objective:
    """0.5/(C n) ||[W, b]||^2 + 1/n sum max(0, 1 - y (x W + b))^2 over the stores (the L2-SVM
    objective of liblinear divided by C n), its value and gradient in one pass."""

    def __init__(self, stores, targets, scaler, chunk_rows):
        self.stores, self.targets, self.chunk_rows = stores, targets, chunk_rows
        self.shift = scaler.mean_.astype(np.float32)
        self.inv_scale = (1.0 / scaler.scale_).astype(np.float32)
        self.n = sum(s.rows for s in stores)
        self.dim, self.k = stores[0].dim, targets.shape[1]
        self.C, self.passes = 1.0, 0

    def __call__(self, theta: np.ndarray):
        w = theta[: self.dim * self.k].reshape(self.dim, self.k)
        b = theta[self.dim * self.k :]
        w32 = w.astype(np.float32)
        grad_w, grad_b, loss, row = np.zeros_like(w), np.zeros_like(b), 0.0, 0
        for store in self.stores:
            for _, raw in store.chunks(self.chunk_rows):
                x = raw.astype(np.float32)
                x -= self.shift
                x *= self.inv_scale
                y = self.targets[row : row + len(x)]
                row += len(x)
                violation = np.maximum(0.0, 1.0 - y * (x @ w32 + b.astype(np.float32)))
                loss += float(np.sum(np.square(violation, dtype=np.float64)))
                g = -2.0 * y * violation
                grad_w += x.T @ g
                grad_b += g.sum(axis=0, dtype=np.float64)
        self.passes += 1
        reg = 1.0 / (self.C * self.n)
        value = 0.5 * reg * float(theta @ theta) + loss / self.n
        grad = np.concatenate([(grad_w / self.n).ravel(), grad_b / self.n]) + reg * theta
        return value, grad


def _lbfgs(objective: _Objective, theta0: np.ndarray, max_iter: int, tol: float):
    from scipy.optimize import minimize

    result = minimize(objective, theta0, jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iter, "maxcor": LBFGS_HISTORY, "gtol": tol,
                               "ftol": tol * 1e-3})  # fmt: skip
    return result.x, bool(result.success)


def _classifier(theta, objective, classes) -> LinearOvR:
    dim, k = objective.dim, objective.k
    w = theta[: dim * k].reshape(dim, k)
    return LinearOvR(w.T.copy(), theta[dim * k :].copy(), classes)


def _store_error(model: LinearOvR, scaler, store: FeatureStore, labels, chunk_rows) -> float:
    wrong = 0
    for start, raw in store.chunks(chunk_rows):
        truth = labels[start : start + len(raw)]
        wrong += int(np.sum(model.predict(scaler.transform(raw)) != truth))
    return wrong / store.rows


def fit_streaming_svm(train: FeatureStore, train_y, val: FeatureStore, val_y,
                      C_grid: Sequence[float], *, refit_on_val: bool = False,
                      max_iter: int = 300, tol: float = 1e-5,
                      chunk_rows: int | None = None):  # fmt: skip
    """`fit_l2svm` on features in stores: standardise (training statistics), choose C on the
    validation store (ties: the smaller C), refit on train + validation with `refit_on_val`.

    Returns (scaler, classifier, C, val_errors, converged) as `fit_l2svm`'s `L2SVM` holds them.
    """
    train_y, val_y = np.asarray(train_y), np.asarray(val_y)
    if train.rows != len(train_y) or val.rows != len(val_y):
        raise UserError("Features and labels differ in length.")
    classes = np.unique(train_y)
    if len(classes) < 2:
        raise UserError("The training examples must hold at least two classes.")
    chunk_rows = validation.positive_int(chunk_rows or default_chunk_rows(train.dim), "chunk_rows")
    scaler = Standardizer(*streaming_stats([train], chunk_rows))
    objective = _Objective([train], _targets(train_y, classes), scaler, chunk_rows)
    theta = np.zeros(objective.dim * objective.k + objective.k)
    val_errors, fits = {}, {}
    for C in sorted(C_grid):  # warm start along the regularisation path
        objective.C = C
        theta, converged = _lbfgs(objective, theta, max_iter, tol)
        model = _classifier(theta, objective, classes)
        val_errors[C] = _store_error(model, scaler, val, val_y, chunk_rows)
        fits[C] = model, converged
    best = min(val_errors, key=lambda c: (val_errors[c], c))
    model, converged = fits[best]
    if refit_on_val:
        scaler = Standardizer(*streaming_stats([train, val], chunk_rows))
        targets = _targets(np.concatenate([train_y, val_y]), classes)
        objective = _Objective([train, val], targets, scaler, chunk_rows)
        objective.C = best
        theta, converged = _lbfgs(objective, np.zeros_like(theta), max_iter, tol)
        model = _classifier(theta, objective, classes)
    return scaler, model, best, val_errors, converged


def streaming_fit_bytes(dim: int, classes: int = 10, dtype="float32",
                        chunk_rows: int | None = None) -> int:  # fmt: skip
    """Memory of a streaming fit beyond the process's baseline: a chunk as stored, its float32
    standardised copy and a float32 temporary of the same size, the weights, gradient and
    L-BFGS's correction pairs (float64). Independent of the number of examples."""
    itemsize = feature_dtype(dtype).itemsize
    chunk_rows = chunk_rows or default_chunk_rows(dim)
    params = (dim + 1) * classes
    return chunk_rows * dim * (itemsize + 8) + (2 * LBFGS_HISTORY + 8) * params * 8


def disk_free(folder: str | None) -> int:
    return shutil.disk_usage(folder or tempfile.gettempdir()).free
