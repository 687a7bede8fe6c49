"""The embedded offline default: scikit-learn's handwritten digits (1,797 images of 8x8)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits as _sklearn_digits

from keras_dcgan.errors import UserError

DIGITS_MAX = 16.0  # scikit-learn's digits are integers in [0, 16]


def load_digits(image_size: int = 32, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Returns (images float32 [1797, size, size, channels] in [-1, 1], labels int64 [1797]).

    The 8x8 digits are upsampled bilinearly to `image_size`; 3 channels repeat the gray one.
    """
    bunch = _sklearn_digits()
    images = bunch.images.astype(np.float32)[..., None] / DIGITS_MAX * 2.0 - 1.0
    images = tf.image.resize(images, (image_size, image_size), method="bilinear").numpy()
    images = np.clip(images, -1.0, 1.0)
    if channels == 3:
        images = np.repeat(images, 3, axis=-1)
    elif channels != 1:
        raise UserError(f"channels must be 1 or 3; got {channels!r}.")
    return images.astype(np.float32), bunch.target.astype(np.int64)
