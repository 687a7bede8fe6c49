"""Discriminator features as a classifier (Radford et al. 2015, section 5.1).

The paper measures what an unsupervised DCGAN learned by using its discriminator as a feature
extractor: "we use the discriminator's convolutional features from all layers, maxpooling each
layer's representation to produce a 4 x 4 spatial grid. These features are then flattened and
concatenated ... and a regularized linear L2-SVM classifier is trained on top of them"
(CIFAR-10: 82.8% accuracy; SVHN with 1000 labels: 22.48% +- 0.25% error).

Here:
- `discriminator_features(d, images)`: every conv block's output (after its LeakyReLU) max-pooled
  to 4x4 (window and stride side/4), flattened in (row, column, channel) order and concatenated
  from the image downwards: float32 [N, 16 * sum(d_widths)] (`feature_dim`); paper32 (D widths
  256-512-1024) gives the paper's 28,672 dimensions. BatchNorm runs in inference mode.
- `fit_l2svm(...)`: features standardised (`StandardScaler`, fitted on the training features
  only), then scikit-learn's `LinearSVC` (squared hinge loss = L2-SVM, L2 penalty, one-vs-rest,
  `dual="auto"`: the dual solver when there are fewer examples than features). C is chosen from a
  log-scale grid by the error on the validation split (ties: the smaller C); the test set plays no
  part in it.
- Protocols (`PROTOCOLS`), each repeated with different random draws (seed, repeat):
    svhn     TFDS svhn_cropped: `labels` (1000) training examples, the same number of every class,
             from the train split; a disjoint validation split (10,000) from the rest of it for C;
             the test split (26,032) as test. The classifier is the one fitted on the labelled
             examples only (refitting on labels+validation would train on 11,000 labels).
    cifar10  TFDS cifar10: all 50,000 training examples; C is chosen on 5,000 of them held out,
             then the classifier is refitted on all 50,000 (the paper trains on the full training
             set, and the held-out examples are labelled training data); the test split (10,000).
    digits   scikit-learn's 1,797 digits (offline): `labels` per protocol (uniform over classes), a
             disjoint validation split for C, every other image as test; no refit (as svhn).
  Test error is reported as the mean and sample standard deviation over repeats.
- `compare_discriminators` / `classify`: the same pipeline on the trained discriminator and on a
  randomly initialised one of the same architecture (`random_discriminator`, seeded): the
  baseline that shows what training added (`ClassificationReport.summary()`).

Memory. Two solvers (`solver`, default "auto"):
- "exact": the training features in memory, standardised into float64 and fitted by `LinearSVC`
  (liblinear), which needs them all as float64 and as its 16-byte (index, value) nodes: a fit peaks
  at about 32 bytes per training feature value (measured: 4 float32 + 8 float64 + 16 liblinear +
  scratch). CIFAR-10 at paper32 (50,000 x 28,672) would need about 43 GiB.
- "streaming" (`keras_dcgan.analysis.streaming_svm`): the training and validation features are
  written batch by batch to `.npy` files (`feature_dir`, default a temporary folder removed after
  use; float32 or float16 by `feature_dtype`), standardised with statistics from a streaming pass
  and fitted by L-BFGS on the same L2-SVM objective, one pass over the files per iteration. Its
  memory does not grow with the number of examples: about 3.6 GiB for CIFAR-10 at paper32
  (`STREAMING_BASE_BYTES` + a 256 MiB chunk + a test chunk); the disk needs 2.7 GiB (float16).
"auto" takes the exact solver when its fit needs at most half the machine's memory, the streaming
one otherwise. `compare_discriminators` estimates the need once the data is loaded and refuses with
a UserError when it exceeds the machine's physical memory (or the folder's free disk space), before
any feature is computed. The test set is always streamed (features of `test_chunk` images at a
time, scored and dropped).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import warnings
from collections.abc import Callable, Sequence

import numpy as np

from keras_dcgan import validation
from keras_dcgan.analysis import streaming_svm
from keras_dcgan.errors import UserError

GRID = 4  # the paper's 4 x 4 spatial grid
DEFAULT_C_GRID = tuple(10.0**k for k in range(-5, 1))  # 1e-5 ... 1, log scale
BYTES_PER_FIT_VALUE = 32  # measured peak: float32 features, float64 copy, liblinear nodes
TRAINED, RANDOM_INIT = "trained", "random_init"
SOLVERS = ("auto", "exact", "streaming")
# The process without the fit (TensorFlow, the model, CIFAR-10's 60,000 uint8 images: 176 MiB):
# an allowance, not measured with a paper32 D; bench/classify_memory.py measures the fit alone.
STREAMING_BASE_BYTES = 2 * 2**30
TEST_CHUNK = 4096  # test images whose features are computed and scored at a time


@dataclasses.dataclass(frozen=True)
class Protocol:
    """An evaluation protocol (see the module docstring).

    Attributes:
        name: "digits", "svhn" or "cifar10".
        dataset: "digits" or a TensorFlow Datasets name.
        labels: labelled training examples (a multiple of the classes, drawn uniformly over them),
            or None for the whole training split.
        val_size: the validation split, disjoint from the labelled examples, for choosing C.
        repeats: runs with different random draws.
        train_split: the TFDS split the labelled and validation examples are drawn from.
        test_split: the TFDS test split, or None: every pool example outside train and validation.

    `refit_on_val` (derived): after choosing C, refit on the labelled examples plus the validation
    split; only with labels=None, where the validation examples are part of the labelled training
    set (with N labels, refitting would train on N + val_size labels).
    """

    name: str
    dataset: str
    labels: int | None
    val_size: int
    repeats: int
    train_split: str = "train"
    test_split: str | None = "test"

    @property
    def refit_on_val(self) -> bool:
        return self.labels is None


PROTOCOLS = {
    "digits": Protocol("digits", "digits", labels=50, val_size=300, repeats=5, test_split=None),
    "svhn": Protocol("svhn", "svhn_cropped", labels=1000, val_size=10_000, repeats=5),
    "cifar10": Protocol("cifar10", "cifar10", labels=None, val_size=5_000, repeats=1),
}


def get_protocol(name: str, labels: int | str | None = None, val_size: int | None = None,
                 repeats: int | None = None) -> Protocol:  # fmt: skip
    """The named protocol with its defaults replaced by the values given (None keeps them);
    `labels="all"` means the whole training split."""
    if name not in PROTOCOLS:
        raise UserError(f"Unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}.")
    protocol = PROTOCOLS[name]
    if isinstance(labels, str):
        if labels.strip().lower() == "all":
            labels = "all"
        else:
            try:
                labels = int(labels)
            except ValueError:
                raise UserError(
                    f"labels must be a positive integer or 'all'; got {labels!r}."
                ) from None
    changes = {}
    if labels == "all":
        changes["labels"] = None
    elif labels is not None:
        changes["labels"] = labels
    if val_size is not None:
        changes["val_size"] = val_size
    if repeats is not None:
        changes["repeats"] = repeats
    protocol = dataclasses.replace(protocol, **changes)
    _check_protocol(protocol)
    return protocol


def _check_protocol(p: Protocol) -> None:
    if p.labels is not None and (not validation.is_int(p.labels) or p.labels < 1):
        raise UserError(f"labels must be a positive integer or 'all'; got {p.labels!r}.")
    if p.labels is None and p.test_split is None:
        raise UserError(
            f"Protocol {p.name!r} tests on the examples left after training and validation: "
            "give a number of labels, not 'all'."
        )
    validation.positive_int(p.val_size, "val_size")
    validation.positive_int(p.repeats, "repeats")


# ------------------------------------------------------------------------------------ features
def feature_dim(model_config) -> int:
    """Length of the pooled feature vector: 16 * sum(d_widths) (paper32: 28,672).

    Takes a `ModelConfig` (or a `Config`, or a `Discriminator`)."""
    widths = getattr(model_config, "d_widths", None) or getattr(model_config, "widths", None)
    if widths is None and hasattr(model_config, "model"):
        widths = model_config.model.d_widths
    if widths is None:
        raise UserError(f"Expected a ModelConfig, Config or Discriminator; got {model_config!r}.")
    return GRID * GRID * int(sum(widths))


def pool_to_grid(feature_map, grid: int = GRID):
    """Max-pools a [N, H, W, C] map (H = W, a multiple of `grid`) to [N, grid, grid, C] with window
    and stride H / grid."""
    import tensorflow as tf

    height, width = feature_map.shape[1], feature_map.shape[2]
    if height != width or height % grid:
        raise UserError(
            f"Cannot max-pool a {height}x{width} map to a {grid}x{grid} grid (needs a square "
            f"side that is a multiple of {grid})."
        )
    k = height // grid
    return feature_map if k == 1 else tf.nn.max_pool2d(feature_map, k, k, "VALID")


def _check_discriminator(discriminator) -> None:
    for attr in ("block_outputs", "image_size", "channels", "widths"):
        if not hasattr(discriminator, attr):
            raise UserError(
                f"Expected a keras_dcgan Discriminator (with {attr}); got {type(discriminator)}."
            )
    if not discriminator.built:
        discriminator.build()


class FeatureExtractor:
    """`discriminator_features` as a reusable callable: `extractor(images) -> [N, dim]`, with its
    compiled function traced once (per input dtype) for all the calls.

    Every conv block's output (after its activation) is max-pooled to a 4x4 grid (window and stride
    side/4), flattened in (row, column, channel) order and the blocks are concatenated from the
    image downwards. BatchNorm uses its moving statistics (inference mode).
    """

    def __init__(self, discriminator, batch_size: int = 256):
        _check_discriminator(discriminator)
        self.discriminator = discriminator
        self.batch_size = validation.positive_int(batch_size, "batch_size")
        self.dim = feature_dim(discriminator)
        self._fns = {}

    def _fn(self, dtype: str):
        import tensorflow as tf

        from keras_dcgan.images import to_model_range

        if dtype not in self._fns:
            d = self.discriminator

            def features(images):
                if images.dtype == tf.uint8:  # uint8 -> [-1, 1] as the input pipeline does
                    images = to_model_range(images)
                maps = d.block_outputs(images, training=False)
                pooled = [pool_to_grid(tf.cast(m, tf.float32)) for m in maps]
                return tf.concat([tf.reshape(p, (tf.shape(p)[0], -1)) for p in pooled], axis=1)

            spec = tf.TensorSpec((None, d.image_size, d.image_size, d.channels), dtype)
            self._fns[dtype] = tf.function(features, input_signature=[spec])
        return self._fns[dtype]

    def __call__(self, images) -> np.ndarray:
        if not hasattr(images, "shape") or not hasattr(images, "dtype"):
            images = np.asarray(images)
        size, channels = self.discriminator.image_size, self.discriminator.channels
        if len(images.shape) != 4 or tuple(images.shape[1:]) != (size, size, channels):
            raise UserError(
                f"images must be [N, {size}, {size}, {channels}] for this discriminator "
                f"({size}px, {channels} channel(s)); got shape {tuple(images.shape)}."
            )
        dtype = np.dtype(getattr(images.dtype, "as_numpy_dtype", images.dtype))
        if dtype != np.uint8 and not np.issubdtype(dtype, np.floating):
            raise UserError(f"images must be float in [-1, 1] or uint8; got dtype {dtype}.")
        n = int(images.shape[0])
        out = np.empty((n, self.dim), np.float32)  # one allocation, filled batch by batch
        for start in range(0, n, self.batch_size):
            batch = np.asarray(images[start : start + self.batch_size])
            if dtype == np.uint8:
                fn = self._fn("uint8")
            else:
                batch = batch.astype(np.float32, copy=False)
                low, high = float(batch.min()), float(batch.max())
                if low < -1.001 or high > 1.001:
                    raise UserError(
                        f"Float images must be in [-1, 1] (the model's range); got values in "
                        f"[{low:.4g}, {high:.4g}]. Pass uint8 images for [0, 255]."
                    )
                fn = self._fn("float32")
            out[start : start + len(batch)] = fn(batch).numpy()
        return out


def discriminator_features(discriminator, images, batch_size: int = 256) -> np.ndarray:
    """The paper's D features of `images`: float32 [N, feature_dim] (see `FeatureExtractor`).

    Args:
        discriminator: a `keras_dcgan.models.Discriminator`.
        images: [N, size, size, channels] of the discriminator: float32 in [-1, 1], or uint8 in
            [0, 255] (scaled as the input pipeline scales them). A NumPy array (or anything that
            slices like one); it is processed `batch_size` images at a time.
        batch_size: images per forward pass.
    """
    return FeatureExtractor(discriminator, batch_size)(images)


# ---------------------------------------------------------------------------------- classifier
@dataclasses.dataclass
class L2SVM:
    """A standardiser and a LinearSVC with the chosen C."""

    scaler: object
    svm: object
    C: float
    val_errors: dict[float, float]
    converged: bool

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self.svm.predict(self.scaler.transform(features))

    def error(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(features) != labels))


def _check_C_grid(C_grid) -> tuple[float, ...]:
    try:
        grid = tuple(float(c) for c in C_grid)
    except (TypeError, ValueError):
        raise UserError(f"C grid must be a list of positive numbers; got {C_grid!r}.") from None
    if not grid or not all(math.isfinite(c) and c > 0 for c in grid):
        raise UserError(f"C grid must be a non-empty list of positive numbers; got {C_grid!r}.")
    return tuple(sorted(set(grid)))


def _linear_svc(C, seed, max_iter):
    from sklearn.svm import LinearSVC

    # Squared hinge + L2 penalty: the L2-SVM. dual="auto" (scikit-learn >= 1.3) picks the dual
    # coordinate descent when n_samples < n_features (the small-label protocols), the primal
    # otherwise (CIFAR-10's 50,000 examples).
    return LinearSVC(C=C, loss="squared_hinge", penalty="l2", dual="auto", random_state=seed,
                     max_iter=max_iter)  # fmt: skip


def _fit_svc(x, y, C, seed, max_iter):
    from sklearn.exceptions import ConvergenceWarning

    svm = _linear_svc(C, seed, max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        svm.fit(x, y)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return svm, converged


def _standardized_float64(scaler, x: np.ndarray) -> np.ndarray:
    """`scaler.transform(x)` as float64 (liblinear's type) in one allocation, no float32 copy."""
    out = np.array(x, dtype=np.float64)
    out -= scaler.mean_
    out /= scaler.scale_
    return out


def fit_l2svm(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    C_grid: Sequence[float] = DEFAULT_C_GRID,
    *,
    refit_on_val: bool = False,
    seed: int = 0,
    max_iter: int = 5000,
) -> L2SVM:
    """Standardise, choose C on the validation split, return the classifier.

    The `StandardScaler` is fitted on `train_x` only. For every C of the grid a `LinearSVC` is
    fitted on the standardised training features and scored on the validation split; the C with
    the lowest validation error wins (ties: the smallest C, the strongest regularisation). With
    `refit_on_val` the scaler and the SVM are then refitted with that C on train + validation;
    otherwise the classifier is the one fitted on the training examples alone.
    """
    from sklearn.preprocessing import StandardScaler

    grid = _check_C_grid(C_grid)
    train_y, val_y = np.asarray(train_y), np.asarray(val_y)
    if len(train_x) != len(train_y) or len(val_x) != len(val_y):
        raise UserError("Features and labels differ in length.")
    if len(np.unique(train_y)) < 2:
        raise UserError("The training examples must hold at least two classes.")
    scaler = StandardScaler().fit(train_x)
    xt = _standardized_float64(scaler, train_x)  # LinearSVC would copy float32 every fit
    xv = scaler.transform(val_x)
    val_errors, fits = {}, {}
    for C in grid:
        svm, converged = _fit_svc(xt, train_y, C, seed, max_iter)
        val_errors[C] = float(np.mean(svm.predict(xv) != val_y))
        fits[C] = svm, converged
    best = min(grid, key=lambda c: (val_errors[c], c))
    svm, converged = fits[best]
    del xt, xv, fits
    if refit_on_val:
        x = np.concatenate([train_x, val_x])
        scaler = StandardScaler().fit(x)
        x = _standardized_float64(scaler, x)
        svm, converged = _fit_svc(x, np.concatenate([train_y, val_y]), best, seed, max_iter)
    return L2SVM(scaler, svm, best, val_errors, converged)


# ---------------------------------------------------------------------------------- protocols
@dataclasses.dataclass
class LabelledImages:
    """A protocol's images: the training pool (where labelled and validation examples are drawn)
    and, for TFDS protocols, the test split. Images are uint8 or float32 [-1, 1] at the model's
    size."""

    pool_images: np.ndarray
    pool_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    num_classes: int
    name: str


@dataclasses.dataclass(frozen=True)
class Split:
    """Indices into the pool: labelled training examples, validation, and (digits) test."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray | None  # None: the test split


def make_splits(pool_labels: np.ndarray, num_classes: int, protocol: Protocol,
                seed: int = 0) -> list[Split]:  # fmt: skip
    """One `Split` per repeat, drawn with `np.random.default_rng([seed, repeat])`.

    labels=N: N / num_classes examples of every class, then `val_size` examples from the rest;
    labels=None: `val_size` examples held out, all the others labelled. Without a test split the
    test examples are the pool examples in neither. Raises ValueError when the pool cannot give
    that (labels not a multiple of the classes, a class with too few examples, a pool too small).
    """
    _check_protocol(protocol)
    pool_labels = np.asarray(pool_labels)
    n = len(pool_labels)
    counts = np.bincount(pool_labels, minlength=num_classes)
    if len(counts) > num_classes:
        raise UserError(f"Labels beyond the {num_classes} classes: max {pool_labels.max()}.")
    labels, val_size = protocol.labels, protocol.val_size
    if labels is not None:
        if labels % num_classes:
            raise UserError(
                f"labels ({labels}) must be a multiple of the {num_classes} classes (the same "
                "number of labelled examples of every class)."
            )
        per_class = labels // num_classes
        if per_class > counts.min():
            raise UserError(
                f"labels={labels} needs {per_class} examples of every class, but class "
                f"{int(counts.argmin())} has only {int(counts.min())} in {protocol.dataset!r}."
            )
    used = (labels or 0) + val_size
    min_test = num_classes if protocol.test_split is None else 0
    if (labels is None and val_size >= n) or used + min_test > n:
        raise UserError(
            f"{protocol.dataset!r} has {n} training examples: too few for labels={labels}, "
            f"val_size={val_size}" + (" and a test set" if min_test else "") + "."
        )
    splits = []
    for repeat in range(protocol.repeats):
        rng = np.random.default_rng([seed, repeat])
        if labels is None:
            order = rng.permutation(n)
            val, train = np.sort(order[:val_size]), np.sort(order[val_size:])
        else:
            train = np.sort(np.concatenate([
                rng.choice(np.flatnonzero(pool_labels == c), per_class, replace=False)
                for c in range(num_classes)
            ]))  # fmt: skip
            rest = np.setdiff1d(np.arange(n), train)
            val = np.sort(rng.choice(rest, val_size, replace=False))
        test = None
        if protocol.test_split is None:
            test = np.setdiff1d(np.arange(n), np.concatenate([train, val]))
        splits.append(Split(train, val, test))
    return splits


def load_protocol_data(
    protocol: Protocol,
    image_size: int,
    channels: int,
    data_dir: str | None = None,
    download: bool = True,
) -> LabelledImages:
    """The protocol's labelled images at the model's size and channels, as the GAN pipeline
    prepares them (`square_resize`: centre crop, area resize; uint8, scaled to [-1, 1] when the
    features are computed). TFDS data under `data_dir` is prepared (downloaded) when missing and
    `download` is set."""
    if protocol.dataset == "digits":
        from keras_dcgan.data import load_digits

        images, labels = load_digits(image_size, channels)
        return LabelledImages(images, labels, None, None, 10, "digits")
    from keras_dcgan.data.sources import TfdsSource

    source = TfdsSource(protocol.dataset, data_dir=data_dir, download=download)
    num_classes = source.num_classes()
    source.prepare()
    pool = source.labelled_arrays(protocol.train_split, image_size, channels)
    test = source.labelled_arrays(protocol.test_split, image_size, channels)
    return LabelledImages(*pool, *test, num_classes, protocol.dataset)


class RepeatedErrors:
    """Test errors over a protocol's repeats (`test_errors`, a field of the subclass): their mean,
    sample standard deviation and the report's "test error m% +- s%"."""

    test_errors: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.test_errors))

    @property
    def std(self) -> float:
        """Sample standard deviation over repeats (0 for one repeat)."""
        errors = self.test_errors
        return float(np.std(errors, ddof=1)) if len(errors) > 1 else 0.0

    def error_text(self) -> str:
        text = f"test error {100 * self.mean:.2f}%"
        if len(self.test_errors) > 1:
            text += f" +- {100 * self.std:.2f}%"
        return text


@dataclasses.dataclass
class FeatureResult(RepeatedErrors):
    """One feature extractor under a protocol: per repeat the test error, the chosen C, the
    validation error of every C of the grid and whether liblinear converged."""

    name: str
    test_errors: list[float]
    chosen_C: list[float]
    val_errors: list[dict[float, float]]
    converged: list[bool]

    def to_dict(self) -> dict:
        return {
            "test_error_mean": self.mean,
            "test_error_std": self.std,
            "test_errors": list(self.test_errors),
            "chosen_C": list(self.chosen_C),
            "val_errors": [{repr(c): e for c, e in v.items()} for v in self.val_errors],
            "converged": list(self.converged),
        }


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def streaming_peak_bytes(dim: int, classes: int = 10, feature_dtype="float32",
                         test_chunk: int = TEST_CHUNK) -> int:  # fmt: skip
    """Estimated peak memory of the streaming path, whatever the number of examples: the process
    (`STREAMING_BASE_BYTES`), a fit chunk (`streaming_svm.streaming_fit_bytes`) and a test chunk's
    features with their standardised copy (float32, twice). paper32, 10 classes: about 3.6 GiB."""
    fit = streaming_svm.streaming_fit_bytes(dim, classes, feature_dtype)
    return STREAMING_BASE_BYTES + fit + test_chunk * dim * 8


def _memory_check(n_fit: int, dim: int, limit_bytes: int | None, solver: str = "exact", *,
                  classes: int = 10, feature_dtype="float32") -> int:  # fmt: skip
    """Raises a UserError when the fit needs more than `limit_bytes` (default: the machine's
    physical memory); returns the estimated need in bytes."""
    limit_bytes = _physical_memory() if limit_bytes is None else limit_bytes
    if solver == "streaming":
        need = streaming_peak_bytes(dim, classes, feature_dtype)
        why = (
            f"streaming solver: {STREAMING_BASE_BYTES / 2**30:.0f} GiB for the process, a 256 MiB "
            "chunk of features and a test chunk, whatever the number of examples"
        )
        advice = "Use a narrower model or a machine with more memory."
    else:
        need = n_fit * dim * BYTES_PER_FIT_VALUE
        why = (
            f"exact solver, {BYTES_PER_FIT_VALUE} bytes per value: float32 features, their "
            "standardised float64 copy and liblinear's 16-byte nodes"
        )
        advice = "Use solver='streaming' (--solver=streaming), fewer labels or a narrower model."
    if limit_bytes is not None and need > limit_bytes:
        raise UserError(
            f"The L2-SVM fit on {n_fit:,} x {dim:,} features needs about {need / 2**30:.1f} GiB "
            f"({why}), more than the {limit_bytes / 2**30:.1f} GiB available. {advice}"
        )
    return need


def choose_solver(solver: str, n_fit: int, dim: int, limit_bytes: int | None = None) -> str:
    """The solver to use, "exact" or "streaming": `solver` unless "auto", which takes the exact
    solver when its fit needs at most half of `limit_bytes` (default: the physical memory)."""
    validation.one_of(solver, SOLVERS, "solver")
    if solver != "auto":
        return solver
    limit_bytes = _physical_memory() if limit_bytes is None else limit_bytes
    exact = n_fit * dim * BYTES_PER_FIT_VALUE
    return "exact" if limit_bytes is None or exact <= limit_bytes / 2 else "streaming"


def _check_disk(n_rows: int, dim: int, feature_dtype, folder: str | None) -> None:
    need = n_rows * dim * streaming_svm.feature_dtype(feature_dtype).itemsize
    if folder is not None:
        folder = streaming_svm.feature_folder(folder)  # created, checked writable
    free = streaming_svm.disk_free(folder)
    if need > free:
        raise UserError(
            f"The streaming solver writes {n_rows:,} x {dim:,} {feature_dtype} features "
            f"({need / 2**30:.1f} GiB) to {folder or 'the temporary folder'}, which has "
            f"{free / 2**30:.1f} GiB free. Use --feature_dir elsewhere or --feature_dtype=float16."
        )


@dataclasses.dataclass(frozen=True)
class StreamingOptions:
    """Where and how the streaming solver stores features (`feature_dir` None: a temporary folder,
    removed after use; a given folder is kept, the feature files in it are removed)."""

    feature_dir: str | None = None
    feature_dtype: str = "float32"
    chunk_rows: int | None = None
    max_iter: int = 300

    def __post_init__(self):
        streaming_svm.feature_dtype(self.feature_dtype)
        validation.positive_int(self.chunk_rows, "chunk_rows", optional=True)
        validation.positive_int(self.max_iter, "max_iter")


def _fit_streaming(pool_features, labels, split, grid, refit_on_val, options, tag) -> L2SVM:
    folder = streaming_svm.feature_folder(options.feature_dir)
    stores = []
    try:
        for part in ("train", "val"):
            path = os.path.join(folder, f"{tag}_{part}.npy")
            indices = getattr(split, part)
            stores.append(streaming_svm.extract_to_store(
                pool_features, indices, path, options.feature_dtype))  # fmt: skip
        scaler, svm, best, val_errors, converged = streaming_svm.fit_streaming_svm(
            stores[0], labels[split.train], stores[1], labels[split.val], grid,
            refit_on_val=refit_on_val, max_iter=options.max_iter, chunk_rows=options.chunk_rows,
        )  # fmt: skip
    finally:
        for store in stores:
            store.remove()
        if options.feature_dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    return L2SVM(scaler, svm, best, val_errors, converged)


def evaluate_features(
    extract: Callable[[np.ndarray], np.ndarray],
    data: LabelledImages,
    splits: Sequence[Split],
    C_grid: Sequence[float] = DEFAULT_C_GRID,
    *,
    refit_on_val: bool = False,
    seed: int = 0,
    name: str = "features",
    test_chunk: int = TEST_CHUNK,
    cache_bytes: int = 2**30,
    solver: str = "exact",
    streaming: StreamingOptions | None = None,
) -> FeatureResult:
    """Runs a protocol's splits with one feature extractor (`extract(images) -> [N, dim]`).

    Per split: features of the labelled and validation examples, `fit_l2svm` (C chosen on the
    validation labels only; with `solver="streaming"` the features go to disk and
    `streaming_svm.fit_streaming_svm` fits them), then the test error: on `data.test_images`
    (streamed `test_chunk` images at a time, every split's classifier scoring each chunk) or on
    the split's `test` indices of the pool. When the pool's features fit `cache_bytes` they are
    computed once.
    """
    grid = _check_C_grid(C_grid)
    validation.one_of(solver, SOLVERS[1:], "solver")
    labels = np.asarray(data.pool_labels)
    pool_cache = None
    if len(splits) > 1 or splits[0].test is not None:
        first = extract(data.pool_images[:1])
        if len(data.pool_images) * first.shape[1] * 4 <= cache_bytes:
            pool_cache = extract(data.pool_images)

    def pool_features(indices):
        if pool_cache is not None:
            return pool_cache[indices]
        return extract(data.pool_images[indices])

    models, errors = [], {}
    for i, split in enumerate(splits):
        if solver == "streaming":
            model = _fit_streaming(pool_features, labels, split, grid, refit_on_val,
                                   streaming or StreamingOptions(), f"{name}_{i}")  # fmt: skip
        else:
            model = fit_l2svm(
                pool_features(split.train), labels[split.train],
                pool_features(split.val), labels[split.val],
                grid, refit_on_val=refit_on_val, seed=seed + i,
            )  # fmt: skip
        models.append(model)
        if split.test is not None:
            errors[i] = model.error(pool_features(split.test), labels[split.test])
    streamed = [i for i in range(len(splits)) if i not in errors]
    if streamed:
        _test_errors(extract, data, models, streamed, test_chunk, errors)
    return FeatureResult(
        name,
        test_errors=[float(errors[i]) for i in range(len(splits))],
        chosen_C=[m.C for m in models],
        val_errors=[m.val_errors for m in models],
        converged=[m.converged for m in models],
    )


def _test_errors(extract, data, models, streamed, test_chunk, errors) -> None:
    if data.test_images is None:
        raise UserError("Splits without test indices need the data's test images.")
    wrong = np.zeros(len(models))
    for start in range(0, len(data.test_images), test_chunk):
        chunk = extract(data.test_images[start : start + test_chunk])
        truth = data.test_labels[start : start + test_chunk]
        for i in streamed:
            wrong[i] += np.sum(models[i].predict(chunk) != truth)
    for i in streamed:
        errors[i] = float(wrong[i] / len(data.test_images))


# ------------------------------------------------------------------------------------- report
@dataclasses.dataclass
class ClassificationReport:
    """Trained vs randomly initialised discriminator under one protocol."""

    protocol: Protocol
    feature_dim: int
    C_grid: tuple[float, ...]
    seed: int
    num_test: int
    trained: FeatureResult
    random_init: FeatureResult
    model_dir: str | None = None
    step: int | None = None
    solver: str = "exact"
    supervised: object | None = None  # a supervised.SupervisedResult (Table 2's baseline)

    def summary(self) -> str:
        p = self.protocol
        labels = "all training examples" if p.labels is None else f"{p.labels:,} labels"
        refit = ", refitted on train+validation" if p.refit_on_val else ""
        step = "" if self.step is None else f" (step {self.step:,})"
        lines = [
            f"Discriminator features + L2-SVM (paper sec. 5.1), protocol {p.name} ({p.dataset}): "
            f"{labels}, C chosen from {len(self.C_grid)} values on {p.val_size:,} validation "
            f"examples{refit}, {self.num_test:,} test examples, {p.repeats} repeat(s), "
            f"{self.feature_dim:,} features, {self.solver} solver.",
            f"  trained D{step}:".ljust(28) + _error_text(self.trained),
            "  random-init D:".ljust(28) + _error_text(self.random_init),
        ]
        if self.supervised is not None:
            lines.append("  supervised, same arch.:".ljust(28) + self.supervised.text())
        if not all(self.trained.converged + self.random_init.converged):
            solver = "liblinear" if self.solver == "exact" else "L-BFGS"
            lines.append(f"  ({solver} did not converge in some fits)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "protocol": dataclasses.asdict(self.protocol),
            "refit_on_val": self.protocol.refit_on_val,
            "feature_dim": self.feature_dim,
            "C_grid": list(self.C_grid),
            "seed": self.seed,
            "num_test": self.num_test,
            "model_dir": self.model_dir,
            "step": self.step,
            "solver": self.solver,
            TRAINED: self.trained.to_dict(),
            RANDOM_INIT: self.random_init.to_dict(),
            "supervised": None if self.supervised is None else self.supervised.to_dict(),
        }


def _error_text(result: FeatureResult) -> str:
    text = result.error_text()
    counts = {c: result.chosen_C.count(c) for c in sorted(set(result.chosen_C))}
    chosen = ", ".join(f"{c:g}" + (f" x{k}" if k > 1 else "") for c, k in counts.items())
    return f"{text}  (C chosen: {chosen})"


def compare_discriminators(
    discriminator,
    protocol: Protocol | str = "digits",
    *,
    data: LabelledImages | None = None,
    C_grid: Sequence[float] = DEFAULT_C_GRID,
    seed: int = 0,
    batch_size: int = 256,
    data_dir: str | None = None,
    download: bool = True,
    memory_limit_bytes: int | None = None,
    solver: str = "auto",
    streaming: StreamingOptions | None = None,
) -> ClassificationReport:
    """The protocol with `discriminator`'s features and with those of a randomly initialised
    discriminator of the same architecture (`random_discriminator(..., seed)`), on the same splits.
    `solver`: "exact" (LinearSVC), "streaming" (features on disk, `streaming` says where) or
    "auto" (`choose_solver`); the memory (and disk) need is checked before any feature is computed.

    `data` (default: `load_protocol_data`) lets a caller pass images already loaded.
    """
    _check_discriminator(discriminator)
    if isinstance(protocol, str):
        protocol = get_protocol(protocol)
    _check_protocol(protocol)
    grid = _check_C_grid(C_grid)
    validation.non_negative_int(seed, "seed")
    validation.positive_int(batch_size, "batch_size")
    from keras_dcgan.models import random_discriminator

    d = discriminator
    if data is None:
        data = load_protocol_data(protocol, d.image_size, d.channels, data_dir, download)
    image_shape = tuple(data.pool_images.shape[1:])
    if image_shape != (d.image_size, d.image_size, d.channels):
        raise UserError(
            f"The protocol's images are {image_shape}; the discriminator takes "
            f"{(d.image_size, d.image_size, d.channels)}."
        )
    splits = make_splits(data.pool_labels, data.num_classes, protocol, seed)
    dim = feature_dim(d)
    n_fit = len(splits[0].train) + (len(splits[0].val) if protocol.refit_on_val else 0)
    solver = choose_solver(solver, n_fit, dim, memory_limit_bytes)
    streaming = streaming or StreamingOptions()
    _memory_check(n_fit, dim, memory_limit_bytes, solver, classes=data.num_classes,
                  feature_dtype=streaming.feature_dtype)  # fmt: skip
    if solver == "streaming":
        n_rows = len(splits[0].train) + len(splits[0].val)
        _check_disk(n_rows, dim, streaming.feature_dtype, streaming.feature_dir)
    results = {}
    for name, network in ((TRAINED, d), (RANDOM_INIT, random_discriminator(d, seed))):
        results[name] = evaluate_features(
            FeatureExtractor(network, batch_size), data, splits, grid,
            refit_on_val=protocol.refit_on_val, seed=seed, name=name, solver=solver,
            streaming=streaming,
        )  # fmt: skip
    if splits[0].test is None:
        num_test = len(data.test_images)
    else:
        num_test = int(round(np.mean([len(s.test) for s in splits])))
    return ClassificationReport(protocol, dim, grid, seed, num_test, results[TRAINED],
                                results[RANDOM_INIT], solver=solver)  # fmt: skip


def classify(
    model_dir: str,
    protocol: str = "digits",
    *,
    labels: int | str | None = None,
    val_size: int | None = None,
    repeats: int | None = None,
    C_grid: Sequence[float] = DEFAULT_C_GRID,
    seed: int = 0,
    batch_size: int = 256,
    data_dir: str | None = None,
    download: bool = True,
    solver: str = "auto",
    streaming: StreamingOptions | None = None,
) -> ClassificationReport:
    """Section 5.1 for a run folder: its discriminator (newest checkpoint) vs a random-init one.

    Example:
    ```python
    report = classify("runs/digits", "digits", repeats=5)
    print(report.summary())
    ```
    `labels`, `val_size`, `repeats` replace the protocol's defaults (`PROTOCOLS`); `labels="all"`
    uses the whole training split (cifar10's default). `solver`, `streaming`: as
    `compare_discriminators`.
    """
    from keras_dcgan.training import load_trained
    from keras_dcgan.training.callbacks import iterations

    spec = get_protocol(protocol, labels, val_size, repeats)
    _check_C_grid(C_grid)
    validation.one_of(solver, SOLVERS, "solver")
    _, gan = load_trained(model_dir)
    report = compare_discriminators(
        gan.discriminator, spec, C_grid=C_grid, seed=seed, batch_size=batch_size,
        data_dir=data_dir, download=download, solver=solver, streaming=streaming,
    )  # fmt: skip
    report.model_dir = model_dir
    report.step = int(iterations(gan))
    return report
