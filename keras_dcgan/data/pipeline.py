"""The training input pipeline over any source: `build_dataset(source, ...)`, which is
`ImageSource.dataset` (see it for the options).

From a source's unbatched (id, image) examples it builds the tf.data pipeline: the optional cache
of the decoded images (a file named by a hash of the source and the options, so a changed setting
never reads stale data), seeded shuffling (one fixed order per epoch when an epoch is given, what
exact resume needs), batching with the GLOBAL batch size (each input pipeline yields its replicas'
share; remainder dropped), the scaling to float32 [-1, 1], tf.distribute's sharding option and
prefetching. It also holds what the sources share to pick and order their inputs: the keep-list,
the order of an epoch and the skip of a resumed one.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from keras_dcgan import validation
from keras_dcgan.data.keep_list import read_keep_list
from keras_dcgan.errors import UserError
from keras_dcgan.images import to_model_range
from keras_dcgan.options import check_small_images


def keep_set(keep_list) -> set[str] | None:
    """The ids of `keep_list` (a path to a `dcgan dedup` keep-list, or ids); None for None."""
    if keep_list is None:
        return None
    if isinstance(keep_list, (str, os.PathLike)):
        keep_list = read_keep_list(keep_list)
    return set(keep_list)


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of one epoch, a function of (seed, epoch) alone."""
    return (seed * 1_000_003 + epoch) % (2**31 - 1)


def epoch_order(ids: list, seed: int, epoch: int) -> list:
    """`ids` in the order of epoch `epoch`: a permutation fixed by (seed, epoch) alone."""
    return [ids[i] for i in np.random.default_rng([seed, epoch]).permutation(len(ids))]


def skip_usable(ids: list, count: int, unusable: set) -> list:
    """`ids` after the first `count` ids not in `unusable`."""
    start, usable = 0, 0
    while start < len(ids) and usable < count:
        usable += ids[start] not in unusable
        start += 1
    return ids[start:]


def _check_options(split, holdout_fraction, small_images, batch_size, cache):
    validation.unit_interval(holdout_fraction, "holdout_fraction")
    check_small_images(small_images)
    validation.positive_int(batch_size, "batch_size", optional=True)
    if cache is not None and not isinstance(cache, str):
        raise UserError(f"cache must be None, 'memory' or a folder path; got {cache!r}.")


def _check_max_image_pixels(max_image_pixels):
    validation.positive_int(max_image_pixels, "max_image_pixels", optional=True)


def build_dataset(
    source,
    image_size,
    channels,
    batch_size,
    *,
    split,
    holdout_fraction,
    keep_list,
    small_images,
    shuffle,
    seed,
    shuffle_buffer,
    cache,
    input_context,
    drop_remainder,
    epoch,
    skip_batches,
    max_image_pixels,
) -> tf.data.Dataset:
    """`source.dataset(...)`: float32 batches [batch, size, size, channels] in [-1, 1] (the
    options and their defaults are those of `ImageSource.dataset`)."""
    _check_options(split, holdout_fraction, small_images, batch_size, cache)
    _check_max_image_pixels(max_image_pixels)
    source.max_pixels = max_image_pixels
    if skip_batches and (epoch is None or batch_size is None):
        raise UserError("skip_batches needs an epoch and a batch_size.")
    seed = 0 if seed is None else seed
    by_id = source.skips_by_id and cache is None  # skips inputs before decoding them
    per_replica = _per_replica_batch(batch_size, input_context)
    ds = source.examples(
        image_size,
        channels,
        split=split,
        holdout_fraction=holdout_fraction,
        keep_list=keep_list,
        small_images=small_images,
        shuffle=shuffle and cache is None,
        seed=seed,
        input_context=input_context,
        epoch=epoch,
        skip_examples=skip_batches * (per_replica or 0) if by_id else 0,
    )
    ds = ds.map(lambda _, image: image)
    if cache is not None:
        ds = ds.cache(_cache_file(source, cache, image_size, channels, split, holdout_fraction,
                                  max_image_pixels, keep_list, small_images,
                                  input_context))  # fmt: skip
    if shuffle and (cache is not None or not source.shuffles_fully):
        ds = _shuffled(ds, shuffle_buffer, seed, epoch)
    if batch_size is not None:
        ds = _batched(ds, per_replica, drop_remainder, 0 if by_id else skip_batches)
    ds = ds.map(_scaled, num_parallel_calls=tf.data.AUTOTUNE)
    if input_context is not None:
        ds = ds.with_options(_no_auto_shard())
    return ds.prefetch(tf.data.AUTOTUNE)


def _per_replica_batch(batch_size, input_context):
    """This input pipeline's batch: its replicas' share of the GLOBAL batch."""
    if batch_size is not None and input_context is not None:
        return input_context.get_per_replica_batch_size(batch_size)
    return batch_size


def _shuffled(ds, shuffle_buffer, seed, epoch):
    """An element shuffle: reshuffled on every pass, or (with `epoch`) one fixed order."""
    shuffle_seed = seed if epoch is None else epoch_seed(seed, epoch)
    return ds.shuffle(shuffle_buffer, seed=shuffle_seed, reshuffle_each_iteration=epoch is None)


def _batched(ds, batch_size, drop_remainder, skip_batches):
    """Batches; `skip_batches` (decoded batches, for sources that cannot skip by id) dropped."""
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if skip_batches:
        ds = ds.skip(skip_batches)
    return ds


def _scaled(images):
    """The pipeline's scaling: uint8 [0, 255] -> float32 [-1, 1] (`images.to_model_range`);
    float images (the digits') are already in [-1, 1] and pass through."""
    if images.dtype == tf.uint8:
        return to_model_range(images)
    return images


def _no_auto_shard() -> tf.data.Options:
    """With an input context the pipeline reads only its shard: tf.distribute must not shard it
    again."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return options


def _cache_file(source, cache, *settings) -> str:
    if cache == "memory":
        return ""
    *options, keep_list, small, ctx = settings
    key = {
        "source": source.fingerprint(),
        "options": options,
        "keep": sorted(keep_set(keep_list)) if keep_list is not None else None,
        "small": small,
        "shard": None if ctx is None else [ctx.input_pipeline_id, ctx.num_input_pipelines],
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    os.makedirs(cache, exist_ok=True)
    return os.path.join(cache, f"{source.kind}-{digest}")
