"""The DCGAN discriminator: image -> one logit, strided convolutions, LeakyReLU."""

from __future__ import annotations

import math

import keras

from keras_dcgan.models import _layers


@keras.saving.register_keras_serializable(package="keras_dcgan")
class Discriminator(keras.Model):
    """DCGAN discriminator (Radford et al. 2015).

    Each stride-2 convolution halves the side down to 4x4; the last feature map is flattened and
    mapped to a single logit (no sigmoid: losses are computed from logits). BatchNorm follows every
    convolution except the first (the input layer); activations are LeakyReLU(0.2). No pooling, no
    fully connected hidden layers, no biases where BatchNorm follows (as the paper's code).

    Args:
        image_size: input side, a power of two; `len(widths) == log2(image_size) - 2`.
        channels: input channels (1 or 3).
        widths: channels of the convolutions, from the image downwards.
        kernel_size: convolution kernel side.
        batch_norm: use BatchNorm after every convolution but the first.
        synchronized_batch_norm: all-reduce BatchNorm statistics over replicas.
        fused_batch_norm: training-mode BatchNorm with TF's fused kernel (same results).
        leaky_slope: LeakyReLU negative slope.
        init_stddev: std of the N(0, s) kernel init (BatchNorm gamma ~ N(1, s)).
        bn_momentum, bn_epsilon: BatchNorm settings.

    Call: `discriminator(images, training=False)` with images float32 [N, H, W, C] in [-1, 1]
    returns float32 logits [N, 1].
    """

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        widths: tuple[int, ...] = (128, 256, 512, 1024),
        kernel_size: int = 5,
        batch_norm: bool = True,
        synchronized_batch_norm: bool = False,
        fused_batch_norm: bool = True,
        leaky_slope: float = 0.2,
        init_stddev: float = 0.02,
        bn_momentum: float = 0.9,
        bn_epsilon: float = 1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        widths = tuple(int(w) for w in widths)
        expected = int(math.log2(image_size)) - 2
        if len(widths) != expected:
            raise ValueError(
                f"Discriminator for {image_size}px needs {expected} widths ({image_size}px down "
                f"to 4x4); got {len(widths)}: {widths}."
            )
        self.image_size = image_size
        self.channels = channels
        self.widths = widths
        self.kernel_size = kernel_size
        self.batch_norm = batch_norm
        self.synchronized_batch_norm = synchronized_batch_norm
        self.fused_batch_norm = fused_batch_norm
        self.leaky_slope = leaky_slope
        self.init_stddev = init_stddev
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon

        init = keras.initializers.RandomNormal(0.0, init_stddev)
        self.blocks = []
        for i, width in enumerate(widths):
            # The input layer gets no BatchNorm (the paper's rule).
            norm = batch_norm and i > 0
            block = [
                keras.layers.Conv2D(
                    width,
                    kernel_size,
                    strides=2,
                    padding="same",
                    use_bias=False,
                    kernel_initializer=init,
                )
            ]
            if norm:
                block.append(
                    _layers.batch_norm(
                        init_stddev,
                        bn_momentum,
                        bn_epsilon,
                        synchronized_batch_norm,
                        fused_batch_norm,
                    )
                )
            block.append(_layers.activation("leaky_relu", leaky_slope))
            self.blocks.append(block)
        self.flatten = keras.layers.Flatten()
        # One logit, float32 under mixed precision.
        self.logit = keras.layers.Dense(1, use_bias=False, kernel_initializer=init, dtype="float32")

    def build(self, input_shape=None):
        if self.built:  # e.g. built by deserialization already
            return
        x = keras.KerasTensor((None, self.image_size, self.image_size, self.channels))
        for block in self.blocks:
            for layer in block:
                layer.build(x.shape)
                x = layer.compute_output_spec(x)
        self.flatten.build(x.shape)
        x = self.flatten.compute_output_spec(x)
        self.logit.build(x.shape)
        self.built = True

    def call(self, images, training=False):
        return self.logit(self.flatten(self.feature_maps(images, training=training)[-1]))

    def feature_maps(self, images, training=False):
        """Returns the activation of every convolutional block, highest resolution first."""
        outputs = []
        x = images
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training)
            outputs.append(x)
        return outputs

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=self.image_size,
            channels=self.channels,
            widths=list(self.widths),
            kernel_size=self.kernel_size,
            batch_norm=self.batch_norm,
            synchronized_batch_norm=self.synchronized_batch_norm,
            fused_batch_norm=self.fused_batch_norm,
            leaky_slope=self.leaky_slope,
            init_stddev=self.init_stddev,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
        )
        return config

    @classmethod
    def from_model_config(cls, mc, **kwargs) -> Discriminator:
        """Builds the discriminator that a `keras_dcgan.config.ModelConfig` describes."""
        return cls(
            image_size=mc.image_size,
            channels=mc.channels,
            widths=mc.d_widths,
            kernel_size=mc.kernel_size,
            batch_norm=mc.batch_norm,
            synchronized_batch_norm=mc.synchronized_batch_norm,
            fused_batch_norm=mc.fused_batch_norm,
            leaky_slope=mc.d_leaky_slope,
            init_stddev=mc.init_stddev,
            bn_momentum=mc.bn_momentum,
            bn_epsilon=mc.bn_epsilon,
            **kwargs,
        )
