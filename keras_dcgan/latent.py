"""Latent vectors: the prior, and latents addressed by integer seeds.

A seed names one latent for good: `latents_from_seeds([7], z_dim=100)` gives the same vector on
any machine, in any batch, in training previews, `dcgan sample` and the exported SavedModel
(stateless RNG keyed by the seed alone).
"""

from __future__ import annotations

import tensorflow as tf

from keras_dcgan.options import Z_PRIORS as PRIORS  # noqa: F401 (public name)
from keras_dcgan.options import check_z_prior as _check_prior


def stateless_prior(shape, seed, prior: str = "uniform") -> tf.Tensor:
    """Draws float32 samples of `shape` from the prior with a stateless seed (int [2])."""
    _check_prior(prior)
    if prior == "uniform":
        return tf.random.stateless_uniform(shape, seed=seed, minval=-1.0, maxval=1.0)
    return tf.random.stateless_normal(shape, seed=seed)


def latents_from_seeds(seeds, z_dim: int, prior: str = "uniform") -> tf.Tensor:
    """Returns float32 [N, z_dim]: row i depends only on seeds[i] (int, any value), z_dim, prior."""
    _check_prior(prior)
    seeds = tf.cast(tf.reshape(seeds, [-1]), tf.int64)

    def one(seed):
        return stateless_prior([z_dim], tf.stack([seed, tf.constant(0, tf.int64)]), prior)

    return tf.map_fn(one, seeds, fn_output_signature=tf.TensorSpec([z_dim], tf.float32))
