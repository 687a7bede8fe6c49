"""`DigitsSource`: scikit-learn's 8x8 handwritten digits (`--dataset=digits`, the offline
default)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_dcgan.data.pipeline import epoch_order
from keras_dcgan.data.sources.base import ImageSource
from keras_dcgan.errors import UserError


class DigitsSource(ImageSource):
    """scikit-learn's handwritten digits (1,797 images of 8x8, shipped with the package), resized
    bilinearly; ids are "digits/NNNN" (row in `load_digits`)."""

    kind = "digits"

    def __init__(self):
        super().__init__("digits")

    def all_ids(self) -> list[str]:
        return [f"digits/{i:04d}" for i in range(1797)]

    def examples(self, image_size, channels, *, split="train", holdout_fraction=0.0,
                 keep_list=None, small_images="upscale", shuffle=False, seed=0,
                 input_context=None, epoch=None, skip_examples=0):  # fmt: skip
        from keras_dcgan.data.digits import load_digits

        ids = self.ids(split, holdout_fraction, keep_list)
        if not ids:
            raise UserError(f"digits has no input in split {split!r}.")
        if input_context is not None:
            ids = ids[input_context.input_pipeline_id :: input_context.num_input_pipelines]
        n = len(ids)
        if shuffle and epoch is not None:
            ids = epoch_order(ids, seed, epoch)
        ids = ids[skip_examples:]
        images, _ = load_digits(image_size, channels)
        rows = np.array([int(i.split("/")[1]) for i in ids], np.int64)
        ds = tf.data.Dataset.from_tensor_slices(
            (tf.constant(ids, tf.string), images[rows].reshape(-1, *images.shape[1:]))
        )
        if shuffle and epoch is None:
            ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
        return ds
