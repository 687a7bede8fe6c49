"""Small builders shared by the tests: tiny models and datasets."""

import numpy as np
import tensorflow as tf

from keras_dcgan import DCGAN, get_config


def tiny_config(**overrides):
    return get_config("tiny", **overrides)


def tiny_gan(seed=0, **overrides):
    gan = DCGAN.from_model_config(tiny_config(**overrides).model, seed=seed)
    gan.compile()
    gan.build()
    return gan


def random_images(n, size=32, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, channels)).astype("float32")


def batches(images, batch_size):
    return tf.data.Dataset.from_tensor_slices(images).batch(batch_size, drop_remainder=True)


def variable_values(model):
    """All variables of a model (weights, BatchNorm statistics) as numpy arrays, in order."""
    return [v.numpy() for v in model.variables]
