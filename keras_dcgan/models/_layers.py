"""Small layer factories shared by the generator and the discriminator."""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_dcgan.errors import UserError
from keras_dcgan.models import _conv


@keras.saving.register_keras_serializable(package="keras_dcgan")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training pass is TF's fused kernel.

    Keras 3 computes batch statistics and the normalisation as ~10 separate element-wise ops (and
    as many in the gradient); on CPU, under oneDNN, that was about 12% of a DCGAN iteration's op
    time. `FusedBatchNormV3` does the same in one op forward and one backward. Same variables,
    same config, same moving-average convention as the Keras layer (biased batch variance, Keras
    momentum), so checkpoints and `.keras` files are interchangeable. Only NHWC inputs without
    masks take the fused path; synchronized BatchNorm keeps the Keras layer (it all-reduces).
    """

    def call(self, inputs, training=None, mask=None):
        fusable = (
            training
            and self.trainable
            and mask is None
            and not self.synchronized
            and self.axis in (-1, 3)
            and len(inputs.shape) == 4
            and self.scale
            and self.center
        )
        if not fusable:
            return super().call(inputs, training=training, mask=mask)
        # float16 and bfloat16 inputs go in as they are: the op keeps its statistics, scale and
        # offset in float32 (casting to float32 and back cost 4 passes over every activation).
        x = inputs if inputs.dtype in (tf.float16, tf.bfloat16) else tf.cast(inputs, tf.float32)
        y, mean, unbiased_variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
            x=x,
            scale=tf.convert_to_tensor(self.gamma),
            offset=tf.convert_to_tensor(self.beta),
            mean=tf.constant([], tf.float32),
            variance=tf.constant([], tf.float32),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        # The fused op returns the Bessel-corrected variance; Keras averages the biased one.
        n = tf.cast(tf.size(x) // tf.shape(x)[-1], tf.float32)
        variance = unbiased_variance * ((n - 1.0) / tf.maximum(n, 1.0))
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + variance * (1.0 - m))
        return tf.cast(y, self.compute_dtype)


def _matmul_weight_gradient(layer, inputs, small_side, large_side) -> bool:
    return (
        layer.strides == (2, 2)
        and layer.padding == "same"
        and layer.data_format == "channels_last"
        and layer.dilation_rate == (1, 1)
        and len(inputs.shape) == 4
        and inputs.shape[1] == inputs.shape[2]
        and _conv.use_matmul_weight_gradient(inputs.dtype, small_side, large_side)
    )


@keras.saving.register_keras_serializable(package="keras_dcgan")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` whose kernel gradient, for stride 2 on the small deep layers in
    bfloat16 on CPUs, is one matmul (`keras_dcgan.models._conv`: TF's kernel was 2-3x slower
    there). Same variables, config and results; Keras' class name, so saved files are
    interchangeable."""

    def convolution_op(self, inputs, kernel):
        side = inputs.shape[1]
        if _matmul_weight_gradient(self, inputs, side // 2 if side else None, side):
            return _conv.conv(inputs, kernel)
        return super().convolution_op(inputs, kernel)


@keras.saving.register_keras_serializable(package="keras_dcgan")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` with the matmul kernel gradient of `Conv2D` (the
    transposed convolution's kernel gradient is that of the convolution it transposes)."""

    def call(self, inputs):
        side = inputs.shape[1]
        fast = self.output_padding is None and _matmul_weight_gradient(
            self, inputs, side, 2 * side if side else None
        )
        if not fast:
            return super().call(inputs)
        outputs = _conv.conv_transpose(inputs, self.kernel)
        if self.use_bias:
            outputs = outputs + self.bias
        if self.activation is not None:
            return self.activation(outputs)
        return outputs


def batch_norm(
    init_stddev: float,
    momentum: float,
    epsilon: float,
    synchronized: bool,
    fused: bool = True,
    dtype=None,
    name: str | None = None,
):
    """BatchNorm with gamma ~ N(1, init_stddev), as the paper's code initialises it."""
    fused = fused and not synchronized
    cls = FusedBatchNormalization if fused else keras.layers.BatchNormalization
    return cls(
        momentum=momentum,
        epsilon=epsilon,
        synchronized=synchronized,
        gamma_initializer=keras.initializers.RandomNormal(1.0, init_stddev),
        dtype=dtype,
        name=name,
    )


def activation(kind: str, leaky_slope: float = 0.2, dtype=None, name: str | None = None):
    """The activation layer `kind` ("relu", "leaky_relu" or "elu"), named `name`."""
    if kind == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=leaky_slope, dtype=dtype, name=name)
    if kind in ("relu", "elu"):
        return keras.layers.Activation(kind, dtype=dtype, name=name)
    raise UserError(f"Unknown activation {kind!r}; use relu, leaky_relu or elu.")
