"""Image sources as batched tf.data pipelines of float32 NHWC images in [-1, 1]."""

from __future__ import annotations

import tensorflow as tf

from keras_dcgan.data.digits import load_digits
from keras_dcgan.data.preprocessing import check_dataset, image_spec, images_dataset

SOURCES = ("digits",)


def load_dataset(
    source: str,
    image_size: int,
    channels: int,
    batch_size: int,
    seed: int | None = 0,
) -> tf.data.Dataset:
    """The training pipeline for a named source: shuffled global batches, remainder dropped."""
    if source == "digits":
        images, _ = load_digits(image_size, channels)
        return images_dataset(images, batch_size, seed=seed)
    raise ValueError(f"Unknown dataset {source!r}; available: {', '.join(SOURCES)}.")


__all__ = [
    "SOURCES",
    "check_dataset",
    "image_spec",
    "images_dataset",
    "load_dataset",
    "load_digits",
]
