"""FusedBatchNormalization behaves exactly as keras.layers.BatchNormalization."""

import keras
import numpy as np
import tensorflow as tf

from keras_dcgan.models._layers import FusedBatchNormalization


def _pair():
    kw = dict(momentum=0.9, epsilon=1e-5, gamma_initializer=keras.initializers.RandomNormal(1, 0.1))
    fused, plain = FusedBatchNormalization(**kw), keras.layers.BatchNormalization(**kw)
    fused.build((None, 6, 6, 5))
    plain.build((None, 6, 6, 5))
    plain.set_weights(fused.get_weights())
    return fused, plain


def test_training_forward_backward_and_moving_statistics_match_keras():
    fused, plain = _pair()
    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (4, 6, 6, 5)), tf.float32)
    upstream = tf.constant(np.random.default_rng(1).normal(size=(4, 6, 6, 5)), tf.float32)
    grads = []
    for layer in (fused, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * upstream)
        grads.append(tape.gradient(loss, [x, layer.gamma, layer.beta]))
        grads[-1].append(y)
    for a, b in zip(grads[0], grads[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    for a, b in zip(fused.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # The moving statistics moved towards the batch's (biased) mean and variance.
    assert np.all(np.abs(fused.moving_mean.numpy() - 0.2) < 0.2)


def test_inference_and_config_round_trip():
    fused, plain = _pair()
    x = tf.constant(np.random.default_rng(2).normal(size=(3, 6, 6, 5)), tf.float32)
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-6)
    clone = FusedBatchNormalization.from_config(fused.get_config())
    assert clone.get_config() == fused.get_config()


def test_bfloat16_batch_norm_computes_without_casts_and_keeps_float32_statistics():
    """Under mixed_bfloat16 the fused op takes the bfloat16 activations as they are (its scale,
    offset and statistics are float32): the same results as Keras' layer, which computes in
    float32, up to bfloat16's rounding of the output."""
    kw = dict(momentum=0.9, epsilon=1e-5, dtype="mixed_bfloat16")
    fused, plain = FusedBatchNormalization(**kw), keras.layers.BatchNormalization(**kw)
    for layer in (fused, plain):
        layer.build((None, 6, 6, 5))
    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (4, 6, 6, 5)), tf.bfloat16)
    a, b = fused(x, training=True), plain(x, training=True)
    assert a.dtype == b.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(a, tf.float32), tf.cast(b, tf.float32), atol=2e-2)
    for layer in (fused, plain):
        assert layer.moving_mean.dtype == layer.moving_variance.dtype == "float32"
    np.testing.assert_allclose(fused.moving_mean, plain.moving_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance, plain.moving_variance, rtol=1e-5)
