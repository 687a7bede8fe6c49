"""The feature network of FID, KID and IS: Keras' InceptionV3 with ImageNet weights.

`InceptionFeatures()(images)` gives, for float images in [-1, 1] (NHWC, 1 or 3 channels, any
size), the 2048-d pool features (FID, KID) and the 1000 class probabilities (IS). Images are
resized bilinearly (antialiased) to 299x299, grayscale repeated to RGB; InceptionV3 takes [-1, 1]
inputs, as the GAN's images already are.

The weights come from the Keras cache (`~/.keras/models/`, where `keras.applications.InceptionV3()`
puts them on first use) or from a file you give; they are never downloaded here, and without them
the error says how to get them. `weights=None` (random weights) exists for tests and timing only.

These are FIDs computed with Keras' InceptionV3: NOT comparable to published FIDs, which use the
TTUR / pytorch-fid Inception graph (other weights, other resizing).
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import tensorflow as tf

from keras_dcgan.errors import UserError

WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
INPUT_SIZE = 299
POOL_DIM = 2048


def keras_cache_path(name: str = WEIGHTS_FILE) -> str:
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(base, "models", name)


def _weights_path(weights: str) -> str:
    if weights != "imagenet":
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"InceptionV3 weights file {weights!r} does not exist.")
        return weights
    path = keras_cache_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"InceptionV3 ImageNet weights are not in the Keras cache ({path}). On a machine with "
            'internet run `python -c "import keras; keras.applications.InceptionV3()"` (it '
            f"downloads {WEIGHTS_FILE}, 92 MB, into ~/.keras/models/), copy the file there, or "
            "pass its path (--inception_weights=PATH). Random weights are never used silently."
        )
    return path


class InceptionFeatures:
    """InceptionV3 pool features and class probabilities of generated or real images.

    Args:
        weights: "imagenet" (the Keras cache), a path to the .h5 weights (with the top), or None
            for random weights (tests and timing only: the numbers mean nothing).
        input_size: the network's input side (299; >= 75 for tests with random weights).
        batch_size: images per forward pass.
    """

    def __init__(self, weights: str | None = "imagenet", input_size: int = INPUT_SIZE,
                 batch_size: int = 64):  # fmt: skip
        import keras

        path = None if weights is None else _weights_path(weights)
        model = keras.applications.InceptionV3(
            weights=None, include_top=True, input_shape=(input_size, input_size, 3)
        )
        if path is not None:
            model.load_weights(path)
        pool = model.get_layer("avg_pool").output
        self.model = keras.Model(model.input, [pool, model.output])
        self.input_size = input_size
        self.batch_size = batch_size
        self.weights = "random" if weights is None else weights
        self.id = self._identify(path)
        self._forward = tf.function(self._call, reduce_retracing=True)

    def _identify(self, path) -> str:
        """A short name of the network and its weights (part of cached statistics' keys)."""
        if path is None:
            return f"inception_v3-random-{self.input_size}"
        stat = os.stat(path)
        digest = hashlib.sha1(f"{os.path.basename(path)}|{stat.st_size}".encode()).hexdigest()
        return f"inception_v3-{digest[:12]}-{self.input_size}"

    def _call(self, images):
        images = tf.convert_to_tensor(images, tf.float32)
        if images.shape[-1] == 1:
            images = tf.image.grayscale_to_rgb(images)
        images = tf.image.resize(images, (self.input_size, self.input_size), antialias=True)
        images = tf.clip_by_value(images, -1.0, 1.0)
        pool, probabilities = self.model(images, training=False)
        return pool, probabilities

    def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
        """float [-1, 1] NHWC -> (pool float32 [N, 2048], probabilities float32 [N, 1000])."""
        return batched(images, self.batch_size, self._forward)


def batched(images, batch_size: int, forward) -> tuple[np.ndarray, np.ndarray]:
    """Runs `forward` (a batch of float [-1, 1] NHWC images -> (pool, probabilities) tensors)
    over `images` in batches of `batch_size`; returns both concatenated as NumPy arrays. The
    input check and batching of every feature network."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or not len(images):
        raise UserError(
            f"Expected a non-empty batch of images (N, H, W, 1 or 3); got {images.shape}."
        )
    pools, probabilities = [], []
    for start in range(0, len(images), batch_size):
        pool, probs = forward(images[start : start + batch_size])
        pools.append(np.asarray(pool))
        probabilities.append(np.asarray(probs))
    return np.concatenate(pools), np.concatenate(probabilities)
