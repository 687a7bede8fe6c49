"""From arrays of images to batched tf.data pipelines, and checks of what a dataset yields."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def images_dataset(
    images: np.ndarray,
    batch_size: int,
    seed: int | None = 0,
    shuffle: bool = True,
    drop_remainder: bool = True,
) -> tf.data.Dataset:
    """A dataset of float32 [batch, H, W, C] batches from an in-memory float array in [-1, 1].

    `batch_size` is the GLOBAL batch (tf.distribute splits it over replicas). Shuffling is seeded
    and reshuffles every epoch; the remainder is dropped so that every step has the full batch.
    """
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"Expected images of shape (N, H, W, C); got {images.shape}.")
    if len(images) < batch_size and drop_remainder:
        raise ValueError(
            f"The dataset has {len(images)} images, fewer than one batch of {batch_size}."
        )
    ds = tf.data.Dataset.from_tensor_slices(images)
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def image_spec(dataset: tf.data.Dataset) -> tf.TensorSpec:
    """The TensorSpec of the images in a dataset of images, (images, ...) or {'image': ...}."""
    spec = dataset.element_spec
    if isinstance(spec, dict):
        if "image" not in spec:
            raise ValueError(f"Dataset elements are dicts without an 'image' key: {sorted(spec)}.")
        spec = spec["image"]
    elif isinstance(spec, (tuple, list)):
        spec = spec[0]
    if not isinstance(spec, tf.TensorSpec):
        raise ValueError(f"Dataset elements must be image tensors; got {spec}.")
    return spec


def check_dataset(dataset, image_shape: tuple[int, int, int]) -> None:
    """Raises a one-line ValueError unless `dataset` yields float batches of `image_shape`.

    Only the static element spec and known cardinality are read; no element is produced.
    """
    if not isinstance(dataset, tf.data.Dataset):
        return
    spec = image_spec(dataset)
    expected = f"(batch, {', '.join(map(str, image_shape))})"
    if spec.shape.rank is not None and spec.shape.rank != 4:
        hint = " (is the dataset batched?)" if spec.shape.rank == 3 else ""
        raise ValueError(
            f"Expected batches of images of shape {expected}; the dataset yields rank "
            f"{spec.shape.rank} elements of shape {tuple(spec.shape)}{hint}."
        )
    if spec.shape.rank == 4:
        got = tuple(spec.shape[1:])
        if got[2] is not None and got[2] != image_shape[2]:
            raise ValueError(
                f"Expected {image_shape[2]} channel(s) ({expected}); the dataset yields "
                f"{got[2]} channel(s): {tuple(spec.shape)}."
            )
        if any(g is not None and g != e for g, e in zip(got[:2], image_shape[:2], strict=True)):
            raise ValueError(
                f"Expected images of size {image_shape[0]}x{image_shape[1]} ({expected}); the "
                f"dataset yields {tuple(spec.shape)}."
            )
    if not spec.dtype.is_floating:
        raise ValueError(
            f"Expected float images in [-1, 1]; the dataset yields {spec.dtype.name}. Scale them "
            "with keras_dcgan.images.to_model_range (x / 127.5 - 1)."
        )
    if int(dataset.cardinality()) == 0:
        raise ValueError("The dataset is empty: it yields no batch.")
