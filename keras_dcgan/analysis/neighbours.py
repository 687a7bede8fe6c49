"""Memorisation check: each generated sample beside its nearest training images.

The paper argues that its bedroom model does not memorise (smooth latent walks, section 6.1; one
epoch of training at a small learning rate). The direct check, used by most later GAN papers, is
to show each sample next to its k nearest training images: a copied image shows up as a
neighbour at a tiny distance. Two spaces:

- `pixel`: L2 on the images in the model's range [-1, 1] (every pixel, every channel). Catches
  exact and near-exact copies; misses a copy shifted by a few pixels.
- `feature`: L2 on the paper's own discriminator representation (section 5.1,
  `keras_dcgan.analysis.features.FeatureExtractor`): every conv block of D max-pooled to a 4x4
  grid and concatenated (16 x sum(D widths) values, 30,720 for paper64), D in inference mode.
  Chosen over D's last conv block alone because the 4x4 max-pooling tolerates small shifts that
  pixel L2 punishes, and because it includes the low-level blocks (colour, edges) where copies
  are most visible, where the last block mostly holds what separates real from fake; it is the
  representation the paper validated as features. Not standardised (that needs statistics of
  the whole set, a second pass): blocks with larger activations weigh more.

Both sides are on the same 8-bit grid: generated samples are rounded to uint8 as a PNG holds them
(what the grid shows), training images are decoded as in training (centre crop, area resize to
the model's size) and also 8-bit; both are then mapped to [-1, 1] (x / 127.5 - 1).

Streaming. Training images come as batches (`source_batches`: a run's dataset, in source order,
at most `limit` images) and are never all in memory: `RunningTopK` keeps, per sample, the k best
so far (distance, position in the stream, id, image, vector) and merges each batch into them.
Memory: one batch plus samples x k x (image + vector). Ties (equal distances) go to the image seen
first in the stream, so the result equals a brute-force top-k over all images sorted by (distance,
position). Ranking uses ||a||^2 + ||b||^2 - 2 a.b in float64 (one matrix product per batch); the
reported distances are recomputed exactly (sqrt of the summed squared differences) for the k kept.

Cost: one pass over the scanned images: decoding them (as in training), plus for `feature` one
D forward pass per image: paper64's D features ran at 36 images/s on this project's 2-core CPU
(float32, measured while other jobs shared it), so the default 10,000 images take about 5
minutes and LSUN's 3 million about a day on such a CPU (a GPU: far less); `pixel` alone costs
the decoding and samples x images x pixels multiply-adds. Choose `--num_images` accordingly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from keras_dcgan import validation
from keras_dcgan.analysis.latent_walks import check_seeds
from keras_dcgan.errors import UserError

SPACES = ("pixel", "feature")


@dataclasses.dataclass(frozen=True)
class Neighbours:
    """The k nearest training images of each sample in one space.

    Attributes:
        space: "pixel" or "feature".
        seeds: the samples' seeds (rows).
        samples: uint8 [S, H, W, C], the generated samples (8-bit, as compared).
        indices: int64 [S, k], the neighbours' positions in the scanned stream (0-based).
        ids: the neighbours' ids (S lists of k strings: file paths, LMDB keys, "digits/NNNN").
        distances: float64 [S, k], L2 distances, ascending.
        images: uint8 [S, k, H, W, C], the neighbours.
        num_scanned: how many training images were compared.
    """

    space: str
    seeds: list
    samples: np.ndarray
    indices: np.ndarray
    ids: list
    distances: np.ndarray
    images: np.ndarray
    num_scanned: int

    def to_dict(self) -> dict:
        return {
            "space": self.space,
            "num_scanned": int(self.num_scanned),
            "samples": [
                {
                    "seed": int(seed),
                    "neighbours": [
                        {"rank": r + 1, "id": str(i), "index": int(n), "distance": float(d)}
                        for r, (i, n, d) in enumerate(zip(ids, idx, dist, strict=True))
                    ],
                }
                for seed, ids, idx, dist in zip(
                    self.seeds, self.ids, self.indices, self.distances, strict=True
                )
            ],
        }


class RunningTopK:
    """The k smallest distances per query over a stream of batches, with a payload per item.

    `update(distances [Q, B], payloads)` merges a batch (its items are the next B positions of
    the stream; each payload is an array whose first axis is the batch's B items). Order:
    (distance, position) ascending, so ties go to the earlier item. `distances`, `indices` and
    `payloads` ([Q, <=k, ...] each) hold the best so far.
    """

    def __init__(self, num_queries: int, k: int):
        self.k = validation.positive_int(k, "k")
        self.num_queries = validation.positive_int(num_queries, "num_queries")
        self.distances = np.empty((num_queries, 0), np.float64)
        self.indices = np.empty((num_queries, 0), np.int64)
        self.payloads = None
        self.seen = 0

    def update(self, distances, payloads: Sequence = ()) -> None:
        distances = np.asarray(distances, np.float64)
        q, b = distances.shape
        if q != self.num_queries:
            raise UserError(f"expected distances of {self.num_queries} queries; got {q}.")
        if self.payloads is None:
            self.payloads = [np.empty((q, 0, *np.shape(p)[1:]), np.asarray(p).dtype)
                             for p in payloads]  # fmt: skip
        positions = np.broadcast_to(np.arange(self.seen, self.seen + b), (q, b))
        all_d = np.concatenate([self.distances, distances], axis=1)
        all_i = np.concatenate([self.indices, positions], axis=1)
        order = np.lexsort((all_i, all_d), axis=1)[:, : self.k]
        kept = self.distances.shape[1]
        old, rows = order < kept, np.nonzero(order < kept)[0]
        new_payloads = []
        for best, batch in zip(self.payloads, payloads, strict=True):
            batch = np.asarray(batch)
            out = np.empty((q, order.shape[1], *batch.shape[1:]), best.dtype)
            out[old] = best[rows, order[old]]
            out[~old] = batch[order[~old] - kept]
            new_payloads.append(out)
        self.distances = np.take_along_axis(all_d, order, axis=1)
        self.indices = np.take_along_axis(all_i, order, axis=1)
        self.payloads = new_payloads
        self.seen += b


def squared_distances(queries: np.ndarray, items: np.ndarray) -> np.ndarray:
    """float64 [Q, B] squared L2 distances between rows, as ||q||^2 + ||x||^2 - 2 q.x (>= 0)."""
    q = np.asarray(queries, np.float64).reshape(len(queries), -1)
    x = np.asarray(items, np.float64).reshape(len(items), -1)
    d = (q * q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2.0 * q @ x.T
    return np.maximum(d, 0.0)


def source_batches(source, image_size: int, channels: int, *, split: str = "train",
                   holdout_fraction: float = 0.0, limit: int | None = 10_000,
                   batch_size: int = 256):  # fmt: skip
    """(ids, uint8 images [B, size, size, channels]) batches of a source's split, in source order,
    decoded as in training, at most `limit` images in all (None: the whole split); a generator,
    so only one batch is in memory at a time."""
    validation.positive_int(limit, "limit", optional=True)
    validation.positive_int(batch_size, "batch_size")
    ds = source.examples(image_size, channels, split=split, holdout_fraction=holdout_fraction)
    if limit is not None:
        ds = ds.take(limit)
    yield from source.id_batches(ds, batch_size)


def _check_batch(batch, start: int, shape: tuple) -> tuple[list, np.ndarray]:
    """A stream element as (ids, uint8 images): (ids, images) or images alone (ids are then the
    positions). Refuses images of another size or channel count than the model's."""
    ids, images = batch if isinstance(batch, tuple) and len(batch) == 2 else (None, batch)
    images = np.asarray(images)
    if images.ndim != 4 or tuple(images.shape[1:]) != shape:
        raise UserError(
            f"training images must be [N, {shape[0]}, {shape[1]}, {shape[2]}] like the model's "
            f"samples; got a batch of shape {tuple(images.shape)} at image {start} (a dataset of "
            "another image size or channel count?)."
        )
    if images.dtype != np.uint8:
        from keras_dcgan.images import to_uint8

        if images.size and (images.min() < -1.001 or images.max() > 1.001):
            raise UserError("float training images must be in [-1, 1]; pass uint8 for [0, 255].")
        images = to_uint8(images)
    ids = [str(start + i) for i in range(len(images))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(images):
        raise UserError(f"a batch has {len(images)} images but {len(ids)} ids.")
    return ids, images


def check_spaces(spaces) -> tuple[str, ...]:
    """`spaces` ("pixel", "feature" or a sequence of them) as a tuple without repeats."""
    spaces = (spaces,) if isinstance(spaces, str) else tuple(spaces)
    if not spaces:
        raise UserError(f"give at least one space: {', '.join(SPACES)}.")
    for space in spaces:
        validation.one_of(space, SPACES, "space")
    if len(set(spaces)) != len(spaces):
        raise UserError(f"spaces repeat: {list(spaces)}.")
    return spaces


def nearest_neighbours(gan, seeds, images: Iterable, k: int = 5, space="pixel",
                       batch_size: int = 256) -> dict[str, Neighbours]:  # fmt: skip
    """The k nearest training images of each generated sample, in one pass over `images`.

    Args:
        gan: a `DCGAN`.
        seeds: the samples' integer seeds.
        images: an iterable of batches, each (ids, images) or images alone: uint8 [B, H, W, C]
            or float in [-1, 1], of the model's size and channels (`source_batches`).
        k: neighbours per sample. More than the images scanned is an error (found at the end of
            the pass: a stream's length is not known before).
        space: "pixel", "feature", or a sequence of both (one scan serves every space).
        batch_size: D's batch for the feature space.

    Returns: {space: `Neighbours`}.
    """
    from keras_dcgan.analysis.features import FeatureExtractor
    from keras_dcgan.images import to_model_range, to_uint8

    seeds, spaces = check_seeds(seeds), check_spaces(space)
    k = validation.positive_int(k, "k")
    samples = to_uint8(np.concatenate([gan.sample(seeds=seeds[i : i + 64]).numpy()
                                       for i in range(0, len(seeds), 64)]))  # fmt: skip
    shape = tuple(samples.shape[1:])
    extract = FeatureExtractor(gan.discriminator, batch_size) if "feature" in spaces else None

    def vectors(space, batch):
        x = to_model_range(batch)
        return (x if space == "pixel" else extract(x)).reshape(len(x), -1)

    queries = {s: vectors(s, samples) for s in spaces}
    tops = {s: RunningTopK(len(seeds), k) for s in spaces}
    seen = 0
    for batch in images:
        ids, batch = _check_batch(batch, seen, shape)
        seen += len(batch)
        if not len(batch):
            continue
        for s in spaces:
            v = vectors(s, batch)
            tops[s].update(squared_distances(queries[s], v), (np.asarray(ids, object), batch, v))
    if seen < k:
        raise UserError(
            f"k={k} neighbours asked for, but only {seen} training images were scanned."
        )
    return {s: _result(s, seeds, samples, queries[s], tops[s]) for s in spaces}


def _result(space, seeds, samples, queries, top: RunningTopK) -> Neighbours:
    """The top-k with exact distances, re-sorted by (exact distance, position)."""
    ids, images, vectors = top.payloads
    exact = np.sqrt(((vectors.astype(np.float64) - queries[:, None].astype(np.float64)) ** 2)
                    .sum(-1))  # fmt: skip
    order = np.lexsort((top.indices, exact), axis=1)

    def take(a):
        return np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)

    return Neighbours(
        space=space,
        seeds=list(seeds),
        samples=samples,
        indices=take(top.indices),
        ids=[list(row) for row in take(ids)],
        distances=take(exact),
        images=take(images),
        num_scanned=top.seen,
    )
