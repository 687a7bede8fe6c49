"""De-duplication by semantic hashing, as in the DCGAN paper (Radford et al. 2015, section 4.1.1).

The paper de-duplicates LSUN bedrooms before training: "we fit a 3072-128-3072 de-noising dropout
regularized RELU autoencoder on 32x32 downsampled center-crops of training examples. The
resulting code layer activations are then binarized via thresholding the ReLU activation ...
providing a convenient form of semantic-hashing, allowing for linear time de-duplication.
Visual inspection of hash collisions showed high precision".

This module does that on in-memory arrays (the caller makes the 32x32 centre crops) and, for a
whole image source, streamed (`deduplicate`):

- `build_autoencoder`: dropout on the flattened 3072-d input (the de-noising corruption), a
  128-unit ReLU code layer and a linear 3072-d reconstruction, trained with MSE and Adam.
- `train_autoencoder`: fits it on the images themselves (seeded, so reproducible).
- `semantic_hashes`: the code bits (ReLU activation > 0), packed into 16 bytes per image.
- `find_duplicates`: groups images whose hashes collide, by sorting the hashes (linear-time in
  spirit, O(N log N) in numpy); optionally also merges hashes within a small Hamming distance
  (quadratic; see there).
- `deduplicate`: the whole source, in bounded memory: the autoencoder trains on a seeded subset,
  then every image is hashed in chunks, written to a resumable `HashFile` as it goes (LSUN's 3M
  bedrooms: the ids and 16 bytes per image stay in memory, not the crops).
- `write_keep_list` / `read_keep_list`: the ids to keep, one per line.

Two additions to the paper. `standardize_code` (on by default): each code unit is standardized
over the images (BatchNormalization without scale or offset; at inference the training images'
exact mean and variance), so that every bit splits the images near their mean. A unit-norm
projection of whole images is dominated by their mean colour, and with the paper's plain bias
most bits ended up on for every image: trained on 100,000 LSUN-like images
(`bench/lsun_scale.py`), 81% of them shared a hash with another, in groups of up to 16,543;
standardized (20,000 of them, 10 epochs), 7%, in groups of at most 6, 99% of the reported pairs
planted copies. `margin_weight` (on by default): an exact collision needs all 128 bits of a
near-duplicate to agree, and many pre-activations sit close to the threshold, so a JPEG re-encode
or a resize flips one or two bits and the copy is missed; a hinge penalty
`margin_weight * mean(relu(margin - |z|))` pushes the training images' standardized
pre-activations z at least `margin` away from it. On the planted experiment
(`bench/dedup_planted.py`, 650 images, medians of 3 seeds) exact collisions find 0.32 of the
copies at precision 1.00 (resized 0.54, JPEG 0.40, shifted 0.04) and `max_hamming=2` 0.68 (0.94,
0.94, 0.18). A stronger margin finds more copies on small sets but merges unrelated images at
scale (margin 1.5 x 10: 18% of the 100,000 in groups of up to 228).

The planted experiment (`keras_dcgan.testing.planted`, used by the tests and by
`bench/dedup_planted.py`) measures the precision and recall of a de-duplication offline.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence

import keras
import numpy as np

from keras_dcgan import validation
from keras_dcgan.data.keep_list import read_keep_list, write_keep_list  # noqa: F401 (also public here)
from keras_dcgan.errors import UserError

INPUT_SIZE = 32  # the paper's 32x32 downsampled centre crops
INPUT_DIM = INPUT_SIZE * INPUT_SIZE * 3  # 3072
CODE_SIZE = 128
_CHUNK = 1024  # images per encoder call when hashing

# Defaults tuned on the planted experiment (see the module docstring and bench/dedup_planted.py).
DEFAULT_DROPOUT = 0.1
DEFAULT_EPOCHS = 30
DEFAULT_BATCH_SIZE = 64
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_MARGIN = 0.6
DEFAULT_MARGIN_WEIGHT = 3.0


# --------------------------------------------------------------------------------------------
# The autoencoder and its hashes


@keras.saving.register_keras_serializable(package="keras_dcgan")
class MarginRegularizer(keras.regularizers.Regularizer):
    """weight * mean(relu(margin - |z|)): pushes code pre-activations z away from the threshold."""

    def __init__(self, weight: float, margin: float):
        self.weight, self.margin = float(weight), float(margin)

    def __call__(self, z):
        return self.weight * keras.ops.mean(keras.ops.relu(self.margin - keras.ops.abs(z)))

    def get_config(self):
        return {"weight": self.weight, "margin": self.margin}


def build_autoencoder(
    input_dim: int = INPUT_DIM,
    code_size: int = CODE_SIZE,
    dropout: float = DEFAULT_DROPOUT,
    seed: int | None = 0,
    *,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    margin: float = DEFAULT_MARGIN,
    margin_weight: float = DEFAULT_MARGIN_WEIGHT,
    standardize_code: bool = True,
) -> keras.Model:
    """A compiled `input_dim`-`code_size`-`input_dim` de-noising dropout ReLU autoencoder.

    pixels -> Dropout(`dropout`, training only: the de-noising corruption) -> Dense "code_linear"
    (weight vectors kept at unit norm) -> with `standardize_code`, "code_norm": each unit
    standardized over the batch (BatchNormalization without scale or offset; at inference the
    training images' mean and variance, see `train_autoencoder`), so every bit splits the
    images near their mean (without it, the paper's plain layer with a bias) -> hinge penalty
    `margin_weight` * mean(relu(`margin` - |z|)) on that z, none when `margin_weight` is 0 ->
    ReLU "code" -> linear Dense "reconstruction". Loss MSE, optimizer Adam(`learning_rate`).
    `seed` seeds the initializers and the dropout masks.

    Why standardized: a unit-norm projection of whole images is dominated by their mean colour,
    so with a bias most units ended up on (or off) for almost every image. Trained on 100,000
    LSUN-like images (`bench/lsun_scale.py`), 98 of the 128 bits were on for the typical image
    and 81% of the images shared a hash with another, in groups of up to 16,543; standardized,
    7% did, in groups of at most 6, 99% of the reported pairs planted copies.
    """
    if input_dim < 1 or code_size < 1:
        raise UserError(f"input_dim and code_size must be >= 1; got {input_dim}, {code_size}.")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"dropout must be in [0, 1); got {dropout!r}.")
    if margin < 0 or margin_weight < 0:
        raise UserError(f"margin and margin_weight must be >= 0; got {margin}, {margin_weight}.")
    inputs = keras.Input((input_dim,), name="pixels")
    x = keras.layers.Dropout(dropout, seed=seed, name="corrupt")(inputs)
    margin_penalty = MarginRegularizer(margin_weight, margin) if margin_weight else None
    x = keras.layers.Dense(
        code_size,
        use_bias=not standardize_code,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
        kernel_constraint=keras.constraints.UnitNorm(axis=0),
        activity_regularizer=None if standardize_code else margin_penalty,
        name="code_linear",
    )(x)
    if standardize_code:
        x = keras.layers.BatchNormalization(
            center=False, scale=False, activity_regularizer=margin_penalty, name="code_norm"
        )(x)
    code = keras.layers.Activation("relu", name="code")(x)
    outputs = keras.layers.Dense(
        input_dim,
        kernel_initializer=keras.initializers.GlorotUniform(
            seed=None if seed is None else seed + 1
        ),
        name="reconstruction",
    )(code)
    model = keras.Model(inputs, outputs, name="dedup_autoencoder")
    # Several steps per call: the model is small, so the per-step overhead of fit dominated.
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="mse", steps_per_execution=32
    )
    return model


def _flatten(images, keep_uint8: bool = False) -> np.ndarray:
    """[N, 32, 32, C] uint8 or float in [-1, 1], C in (1, 3) -> float32 [N, 3072] in [-1, 1]
    (`keep_uint8`: uint8 input stays uint8 [N, 3072], a quarter of the memory)."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise UserError(f"Expected images of shape (N, 32, 32, C); got shape {images.shape}.")
    if len(images) == 0:
        raise UserError("Expected at least one image; got an empty array.")
    if images.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
        raise UserError(
            f"Expected 32x32 images (N, 32, 32, C) (centre-crop and downsample first); "
            f"got shape {images.shape}."
        )
    if images.shape[3] not in (1, 3):
        raise UserError(f"Expected 1 or 3 channels; got shape {images.shape}.")
    if images.dtype == np.uint8:
        x = images if keep_uint8 else images.astype(np.float32) / 127.5 - 1.0
    elif np.issubdtype(images.dtype, np.floating):
        x = images.astype(np.float32)
        if x.size and (not np.isfinite(x).all() or x.min() < -1.0001 or x.max() > 1.0001):
            raise UserError(
                f"Expected float images in [-1, 1]; got values in [{x.min()}, {x.max()}]."
            )
    else:
        raise UserError(f"Expected uint8 or float images; got dtype {images.dtype}.")
    if x.shape[3] == 1:
        x = np.repeat(x, 3, axis=3)
    return x.reshape(len(x), -1)


def train_autoencoder(
    images,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    seed: int = 0,
    verbose: int = 0,
    *,
    dropout: float = DEFAULT_DROPOUT,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    margin: float = DEFAULT_MARGIN,
    margin_weight: float = DEFAULT_MARGIN_WEIGHT,
    standardize_code: bool = True,
) -> keras.Model:
    """Fits `build_autoencoder()` to reconstruct `images` ([N, 32, 32, C], uint8 or [-1, 1]).

    Inputs are flattened to 3072 floats in [-1, 1] (uint8 x / 127.5 - 1; gray repeated to 3
    channels). The global Keras seeds are set from `seed` (keras.utils.set_random_seed), so the
    same call gives the same model. uint8 images stay uint8 in memory and are converted batch by
    batch in a tf.data pipeline (seeded shuffle, reshuffled every epoch): 3 KiB per image held
    twice (the tensor and the shuffle buffer), where Keras' `fit` on float arrays held about
    60 KiB (6.4 GB peak for the default 100,000 images).
    """
    import tensorflow as tf

    if epochs < 1 or batch_size < 1:
        raise UserError(f"epochs and batch_size must be >= 1; got {epochs}, {batch_size}.")
    x = _flatten(images, keep_uint8=True)
    keras.utils.set_random_seed(seed)
    model = build_autoencoder(
        x.shape[1],
        CODE_SIZE,
        dropout=dropout,
        seed=seed,
        learning_rate=learning_rate,
        margin=margin,
        margin_weight=margin_weight,
        standardize_code=standardize_code,
    )

    def pairs(batch):
        if batch.dtype == tf.uint8:
            batch = tf.cast(batch, tf.float32) / 127.5 - 1.0
        return batch, batch

    ds = tf.data.Dataset.from_tensor_slices(x).shuffle(len(x), seed=seed)
    ds = ds.batch(batch_size).map(pairs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)
    model.fit(ds, epochs=epochs, verbose=verbose, shuffle=False)  # shuffled above
    _set_code_statistics(model, x)
    return model


def _set_code_statistics(model: keras.Model, x: np.ndarray) -> None:
    """Sets "code_norm"'s inference statistics to the exact mean and variance of the training
    images' projections (its moving averages have not settled after a few hundred steps)."""
    try:
        norm = model.get_layer("code_norm")
    except ValueError:  # the paper's plain code layer
        return
    linear = model.get_layer("code_linear")
    total = total_sq = 0.0
    for i in range(0, len(x), _CHUNK):
        chunk = x[i : i + _CHUNK]
        chunk = chunk.astype(np.float32) / 127.5 - 1.0 if chunk.dtype == np.uint8 else chunk
        z = keras.ops.convert_to_numpy(linear(chunk)).astype(np.float64)
        total, total_sq = total + z.sum(axis=0), total_sq + (z * z).sum(axis=0)
    mean = total / len(x)
    norm.moving_mean.assign(mean.astype(np.float32))
    norm.moving_variance.assign(np.maximum(total_sq / len(x) - mean * mean, 0).astype(np.float32))


def code_activations(model: keras.Model, images) -> np.ndarray:
    """The ReLU code layer activations, float32 [N, code_size] (dropout off)."""
    x = _flatten(images)
    encoder = keras.Model(model.input, model.get_layer("code").output)
    # Eager calls in chunks: predict() would trace a new function for every new encoder.
    chunks = [
        keras.ops.convert_to_numpy(encoder(x[i : i + _CHUNK], training=False))
        for i in range(0, len(x), _CHUNK)
    ]
    return np.concatenate(chunks).astype(np.float32, copy=False)


def semantic_hashes(model: keras.Model, images) -> np.ndarray:
    """Binarised codes (ReLU activation > 0 is bit 1) packed to uint8 [N, code_size / 8]."""
    return np.packbits(code_activations(model, images) > 0, axis=1)


# --------------------------------------------------------------------------------------------
# Grouping


@dataclasses.dataclass(frozen=True)
class DedupResult:
    """The outcome of `find_duplicates`.

    groups: lists of ids whose hashes collide (size >= 2 only), each in input order, ordered by
        their first member. keep: the first id of each group and every singleton, in input order.
    train_seconds, hash_seconds, num_hashed (`deduplicate`): the autoencoder's training time (0
        when a hash file held it) and the hashing pass of this call over `num_hashed` inputs.
    """

    groups: list[list[str]]
    keep: list[str]
    num_images: int
    num_duplicates: int
    train_seconds: float = 0.0
    hash_seconds: float = 0.0
    num_hashed: int = 0


def _check_ids(ids: Sequence[str], n: int) -> list[str]:
    if isinstance(ids, str):
        raise UserError("ids must be a sequence of strings, not one string.")
    ids = list(ids)
    if len(ids) != n:
        raise UserError(f"len(ids) is {len(ids)} but there are {n} images.")
    seen = set()
    for i in ids:
        if not isinstance(i, str) or not i:
            raise UserError(f"ids must be non-empty strings; got {i!r}.")
        if "\n" in i or "\r" in i:
            raise UserError(f"ids must not contain newlines; got {i!r}.")
        if i in seen:
            raise UserError(f"Duplicate id {i!r}.")
        seen.add(i)
    return ids


_POPCOUNT = np.array([bin(b).count("1") for b in range(256)], np.uint8)
_HAMMING_BLOCK_BYTES = 32 * 2**20  # bounds the memory of one block of pairwise XORs


def _hamming_within(hashes: np.ndarray, max_hamming: int):
    """Pairs (i < j) whose packed hashes differ in at most `max_hamming` bits (O(N^2) time)."""
    n, width = hashes.shape
    block = max(1, _HAMMING_BLOCK_BYTES // max(1, n * width))  # rows compared at a time
    for start in range(0, n, block):
        rows = hashes[start : start + block]
        dist = _POPCOUNT[rows[:, None, :] ^ hashes[None, :, :]].sum(axis=2, dtype=np.int32)
        for r, j in zip(*np.nonzero(dist <= max_hamming), strict=True):
            i = start + int(r)
            if i < j:
                yield i, int(j)


def _exact_groups(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, inverse): for each image the index of the first image with its hash (`first`
    [N], int64) and the hash's rank (`inverse` [N]); sorts the hashes once (numpy, O(N log N),
    a few bytes of memory per image, no Python object per image)."""
    keys = np.ascontiguousarray(hashes, np.uint8).view(np.dtype((np.void, hashes.shape[1])))
    _, first, inverse = np.unique(keys.ravel(), return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    return first[inverse].astype(np.int64), inverse


def group_hashes(hashes: np.ndarray, max_hamming: int = 0) -> list[list[int]]:
    """Indices grouped by equal hash (groups of size >= 2, in input order, ordered by their
    first member).

    max_hamming = 0: exact collisions, found by sorting the hashes (the paper's linear-time
    de-duplication; millions of images in seconds). max_hamming > 0: also joins (union-find,
    transitively) hashes within that Hamming distance, comparing all pairs: quadratic time,
    fine for tens of thousands of images, not for millions.
    """
    hashes = np.ascontiguousarray(hashes, np.uint8)
    if len(hashes) == 0:
        return []
    first, _ = _exact_groups(hashes)
    if max_hamming <= 0:
        repeated = np.bincount(first, minlength=len(hashes)) > 1  # per first member
        members = np.nonzero(repeated[first])[0]  # every image of a group, in input order
        order = members[np.argsort(first[members], kind="stable")]
        bounds = np.nonzero(np.diff(first[order]))[0] + 1
        return [g.tolist() for g in np.split(order, bounds)] if len(order) else []
    parent = first.tolist()

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in _hamming_within(hashes, max_hamming):
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(len(hashes)):
        groups.setdefault(find(i), []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def find_duplicates(
    images,
    ids: Sequence[str],
    *,
    epochs: int = DEFAULT_EPOCHS,
    seed: int = 0,
    max_hamming: int = 0,
    model: keras.Model | None = None,
) -> DedupResult:
    """Groups near-duplicate images by colliding semantic hashes.

    images: [N, 32, 32, C] uint8 or float in [-1, 1]; ids: N distinct strings (file paths, LMDB
    keys) in the same order. Without `model`, an autoencoder is first trained on `images`
    (`epochs`, `seed`), as the paper does on its training set. `max_hamming` > 0 also merges
    hashes within that many differing bits (quadratic time; see `group_hashes`).
    """
    x = _flatten(images)
    ids = _check_ids(ids, len(x))
    if max_hamming < 0:
        raise UserError(f"max_hamming must be >= 0; got {max_hamming}.")
    if model is None:
        model = train_autoencoder(x.reshape(-1, INPUT_SIZE, INPUT_SIZE, 3), epochs, seed=seed)
    hashes = semantic_hashes(model, x.reshape(-1, INPUT_SIZE, INPUT_SIZE, 3))
    return _result(ids, hashes, max_hamming)


def _result(ids: list[str], hashes: np.ndarray, max_hamming: int) -> DedupResult:
    """The groups and the keep-list (the first of each group, every singleton) of hashed ids."""
    index_groups = group_hashes(hashes, max_hamming)
    kept = np.ones(len(ids), bool)
    for g in index_groups:
        kept[g[1:]] = False
    keep = [ident for ident, k in zip(ids, kept.tolist(), strict=True) if k]
    return DedupResult(
        groups=[[ids[i] for i in g] for g in index_groups],
        keep=keep,
        num_images=len(ids),
        num_duplicates=len(ids) - len(keep),
    )


def deduplicate(
    source,
    *,
    data_dir: str | None = None,
    max_hamming: int = 0,
    epochs: int = DEFAULT_EPOCHS,
    train_samples: int = 100_000,
    seed: int = 0,
    limit: int | None = None,
    hash_file: str | os.PathLike | None = None,
    progress: bool = True,
) -> DedupResult:
    """De-duplicates an image source (a `--dataset` string or an `ImageSource`) as the paper.

    Every image's 32x32 RGB centre crop (the pipeline's crop and area resize) is hashed by an
    autoencoder trained on at most `train_samples` of them (a seeded random subset); images whose
    hashes collide form a group, of which the first is kept. Files the source cannot decode are
    left out (see the source's `skip_log`); `limit` reads only the first images.

    It streams: only the training subset's crops are held (3 KiB each, 300 MiB at the default
    100,000); the whole source is then hashed in chunks of `HASH_CHUNK` images, and what stays
    in memory per image is its id and 16-byte hash. With `hash_file`, the autoencoder's weights
    (`<hash_file>.autoencoder.npz`) and every hash are written as they are made, and a
    call with the same source and settings continues where an interrupted one stopped (the
    file is locked: a second process on it is refused). `progress`: a progress bar with rate
    and ETA on stderr.

    The keep-list is the one of `find_duplicates` on all crops at once with the same model
    (tested); the subset is drawn from the listed ids of folders and LMDBs (the decoded images
    of other sources), so it differs from the in-memory choice only where inputs are skipped.
    """
    from keras_dcgan.data.sources import ImageSource, open_source

    if not isinstance(source, ImageSource):
        source = open_source(source, data_dir=data_dir)
    validation.positive_int(train_samples, "train_samples")
    validation.positive_int(limit, "limit", optional=True)
    validation.integer(max_hamming, "max_hamming", minimum=0)
    validation.positive_int(epochs, "epochs")
    ids = _listed_ids(source, limit)
    settings = {
        # Listed sources by their listing, not their path or file times: the same LMDB extracted
        # again on a new Colab VM continues its hash file (each line's id is checked too).
        "source": source.kind if ids is not None else source.fingerprint(),
        "first_id": None if ids is None else ids[0],
        "num_listed": None if ids is None else len(ids),
        "limit": limit,
        "seed": seed,
        "epochs": epochs,
        "train_samples": train_samples,
        "code_size": CODE_SIZE,
    }
    store = HashFile(hash_file, settings) if hash_file is not None else _MemoryHashes()
    with store:
        start = time.perf_counter()
        model = store.autoencoder()
        if model is None:
            subset = _training_subset(source, ids, train_samples, seed, limit)
            model = train_autoencoder(subset, epochs, seed=seed)
            del subset
            store.start(model)
        trained, before = time.perf_counter(), store.done()
        _hash_source(source, ids, limit, model, store, progress)
        timing = {
            "train_seconds": trained - start if before == 0 else 0.0,
            "hash_seconds": time.perf_counter() - trained,
            "num_hashed": store.done() - before,
        }
        hashed_ids, hashes = store.hashes()
    if not hashed_ids:
        raise UserError(f"{source.name} yielded no image ({source.skip_log.summary()}).")
    return dataclasses.replace(_result(hashed_ids, hashes, max_hamming), **timing)


HASH_CHUNK = 1024  # images hashed (and written to the hash file) per step of the streamed pass


def _listed_ids(source, limit):
    """The ids in source order (at most `limit`) of sources listed in Python; None for others."""
    from keras_dcgan.data.sources.base import _IdSource

    if not isinstance(source, _IdSource):
        return None
    ids = source.ids("all")
    if not ids:
        raise UserError(f"{source.name} has no input.")
    return ids[:limit] if limit is not None else ids


def _crops(source, ids, limit):
    """(ids, uint8 crops [n, 32, 32, 3]) chunks of `ids` (None: the whole source), in order."""
    if ids is not None:
        ds = source.decoded(ids, INPUT_SIZE, 3)
    else:
        ds = source.examples(INPUT_SIZE, 3, split="all")
        if limit is not None:
            ds = ds.take(limit)
    yield from source.id_batches(ds, HASH_CHUNK)


def _training_subset(source, ids, train_samples, seed, limit) -> np.ndarray:
    """uint8 crops of a seeded random subset of at most `train_samples` images, in source
    order: chosen among the listed ids (only those are decoded), else by one pass with a seeded
    reservoir (all images, in order, when there are no more than `train_samples`)."""
    if ids is not None:
        if len(ids) > train_samples:
            rows = np.random.default_rng(seed).choice(len(ids), train_samples, replace=False)
            ids = [ids[i] for i in np.sort(rows)]
        chunks = [images for _, images in _crops(source, ids, None)]
        if not chunks:
            raise UserError(f"{source.name} yielded no image ({source.skip_log.summary()}).")
        return np.concatenate(chunks)
    rng = np.random.default_rng(seed)
    reservoir: list[np.ndarray] = []
    seen = 0
    for _, images in _crops(source, None, limit):
        for image in images:  # Algorithm R: each image kept with probability k / seen
            if len(reservoir) < train_samples:
                reservoir.append(image)
            else:
                j = int(rng.integers(seen + 1))
                if j < train_samples:
                    reservoir[j] = image
            seen += 1
    if not reservoir:
        raise UserError(f"{source.name} yielded no image ({source.skip_log.summary()}).")
    return np.stack(reservoir)


def _hash_source(source, ids, limit, model, store, progress: bool) -> None:
    """Hashes what `store` does not hold yet, in source order, appending as it goes."""
    from tqdm.auto import tqdm

    done = store.done()
    total = len(ids) if ids is not None else source.num_examples(split="all")
    if limit is not None and total is not None:
        total = min(total, limit)
    if ids is not None:
        if done > len(ids):
            raise UserError(f"{store.path} lists more inputs than the source has.")
        if done and store.last_id() != ids[done - 1]:
            raise UserError(
                f"{store.path} does not match {source.name}: its input {done} is "
                f"{store.last_id()!r}, the source's is {ids[done - 1]!r}; delete it to start over."
            )
        todo = ids[done:]
        if not todo:
            return
        chunks = _crops(source, todo, None)
    else:
        todo = None
        chunks = _crops(source, None, limit)
    encoder = _encoder(model)
    bar = tqdm(total=total, initial=done, unit="img", desc="hashing", disable=not progress,
               mininterval=1.0 if sys.stderr.isatty() else 30.0, smoothing=0.1)  # fmt: skip
    position = 0  # into `todo`: the inputs before it are hashed or known to be skipped
    try:
        for chunk_ids, images in chunks:
            if todo is None:
                if done:  # sources without a listing resume by count
                    drop = min(done, len(chunk_ids))
                    chunk_ids, images, done = chunk_ids[drop:], images[drop:], done - drop
                    if not chunk_ids:
                        continue
                rows = list(zip(chunk_ids, _hash_crops(encoder, images), strict=True))
                bar.update(len(rows))
            else:
                hashed = dict(zip(chunk_ids, _hash_crops(encoder, images), strict=True))
                end = todo.index(chunk_ids[-1], position) + 1
                rows = [(i, hashed.get(i)) for i in todo[position:end]]  # None: skipped
                bar.update(end - position)
                position = end
            store.append(rows)
        if todo is not None and position < len(todo):  # the last inputs could not be used
            store.append([(i, None) for i in todo[position:]])
            bar.update(len(todo) - position)
    finally:
        bar.close()


def _encoder(model: keras.Model):
    """The code layer of `model` as one traced function of float32 [n, 3072] (dropout off)."""
    import tensorflow as tf

    encoder = keras.Model(model.input, model.get_layer("code").output)

    @tf.function(input_signature=[tf.TensorSpec([None, INPUT_DIM], tf.float32)])
    def code(x):
        return encoder(x, training=False)

    return code


def _hash_crops(encoder, images: np.ndarray) -> np.ndarray:
    x = _flatten(images)
    return np.packbits(encoder(x).numpy() > 0, axis=1)


class _MemoryHashes:
    """The hash store of a run without a hash file: lists in memory."""

    path = "the hashes"

    def __init__(self):
        self._ids: list[str] = []  # of the usable inputs
        self._hashes = bytearray()  # their packed hashes, 16 bytes each
        self._done = 0  # inputs hashed or found unusable

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def autoencoder(self):
        return None

    def start(self, model) -> None:
        pass

    def done(self) -> int:
        return self._done

    def append(self, rows) -> None:
        self._done += len(rows)
        for ident, h in rows:
            if h is not None:
                self._ids.append(ident)
                self._hashes += h.tobytes()

    def hashes(self) -> tuple[list[str], np.ndarray]:
        return self._ids, np.frombuffer(self._hashes, np.uint8).reshape(-1, CODE_SIZE // 8)


class HashFile(_MemoryHashes):
    """The resumable hash file of `deduplicate`: a JSON header line with the settings, then one
    line per input in source order: 32 hex digits of its hash (or "-" for an input that could not
    be used), a space, the id as a JSON string. Beside it, the autoencoder's weights.

    Appended and fsynced chunk by chunk; a torn last line (a kill mid-write) is dropped on
    reopening. Held with an exclusive flock for the life of the `with` block.
    """

    FORMAT = "keras_dcgan.dedup.hashes/1"

    def __init__(self, path, settings: dict):
        super().__init__()
        self.path = os.fspath(path)
        self.weights = f"{self.path}.autoencoder.npz"
        self.settings = dict(settings, format=self.FORMAT)
        self._file = None
        self._lock = None
        self._last_id = None

    def __enter__(self):
        folder = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(folder, exist_ok=True)
            self._lock = open(f"{self.path}.lock", "a")
        except OSError as e:
            raise UserError(f"Cannot write the hash file {self.path}: {e.strerror or e}.") from None
        try:
            import fcntl

            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise UserError(
                f"{self.path} is in use by another de-duplication; wait for it to end, or choose "
                "another hash file (--hashes)."
            ) from None
        except (ImportError, OSError):  # not POSIX, or no flock on this file system
            pass
        try:
            self._read()
        except BaseException:
            self._lock.close()
            raise
        return self

    def __exit__(self, *exc):
        if self._file is not None:
            self._file.close()
        self._lock.close()
        return False

    def _read(self) -> None:
        if not os.path.exists(self.path):
            return
        with open(self.path, "rb") as f:
            header = f.readline()
            try:
                saved = json.loads(header)
            except ValueError:
                saved = None
            if not isinstance(saved, dict) or saved.get("format") != self.FORMAT:
                raise UserError(
                    f"{self.path} is not a keras-dcgan hash file; delete it or choose another."
                )
            changed = sorted(k for k in self.settings if saved.get(k) != self.settings[k])
            if changed:
                raise UserError(
                    f"{self.path} holds the hashes of another de-duplication (it differs in "
                    f"{', '.join(changed)}); delete it to start over, or choose another."
                )
            good = f.tell()
            for line in f:
                if not line.endswith(b"\n"):
                    break  # torn by a kill: dropped below
                self._parse(line)
                good += len(line)
        if good != os.path.getsize(self.path):
            os.truncate(self.path, good)

    def _parse(self, line: bytes) -> None:
        try:
            digest, ident = line[:-1].split(b" ", 1)
            ident = json.loads(ident)
            h = None if digest == b"-" else bytes.fromhex(digest.decode())
        except ValueError:
            h = ident = None
        if (h is not None and len(h) != CODE_SIZE // 8) or not isinstance(ident, str):
            raise UserError(f"{self.path} is damaged (line {self._done + 2}); delete it.")
        self._done += 1
        if h is not None:
            self._ids.append(ident)
            self._hashes += h
        self._last_id = ident

    def autoencoder(self):
        if not self._done and not os.path.exists(self.path):
            return None
        if not os.path.exists(self.weights):
            raise UserError(
                f"{self.path} has no autoencoder weights beside it ({self.weights}); delete it "
                "to start over."
            )
        model = build_autoencoder(seed=self.settings["seed"])
        try:
            with np.load(self.weights, allow_pickle=False) as saved:
                model.set_weights([saved[f"w{i}"] for i in range(len(saved.files))])
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"{self.weights} is unreadable ({e}); delete {self.path}.") from None
        return model

    def start(self, model) -> None:
        """Saves the trained autoencoder, then creates the file with its header (each atomic)."""
        tmp = f"{self.weights}.{uuid.uuid4().hex}.tmp.npz"
        np.savez(tmp, **{f"w{i}": w for i, w in enumerate(model.get_weights())})
        os.replace(tmp, self.weights)
        tmp = f"{self.path}.{uuid.uuid4().hex}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(self.settings, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def last_id(self):
        return self._last_id

    def append(self, rows) -> None:
        if self._file is None:
            self._file = open(self.path, "ab")
        text = "".join(
            f"{'-' if h is None else h.tobytes().hex()} {json.dumps(ident)}\n" for ident, h in rows
        )
        self._file.write(text.encode("utf-8", "surrogatepass"))
        self._file.flush()
        os.fsync(self._file.fileno())
        super().append(rows)
        if rows:
            self._last_id = rows[-1][0]
