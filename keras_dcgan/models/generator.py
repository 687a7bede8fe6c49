"""The DCGAN generator: z -> image, fractionally-strided convolutions, tanh output."""

from __future__ import annotations

import math

import keras

from keras_dcgan.models import _layers


@keras.saving.register_keras_serializable(package="keras_dcgan")
class Generator(keras.Model):
    """DCGAN generator (Radford et al. 2015, Fig. 1).

    z is projected by one matrix multiply to a 4x4 feature map of `widths[0]` channels, then each
    stride-2 transposed convolution doubles the side until `image_size`; the last one outputs
    `channels` maps through tanh. BatchNorm follows every layer except the output one; hidden
    activations are ReLU. No pooling, no fully connected hidden layers, no biases where
    BatchNorm follows (as the paper's code and pytorch/examples).

    Args:
        image_size: output side, a power of two; `len(widths) == log2(image_size) - 2`.
        channels: output channels (1 or 3).
        z_dim: latent size.
        widths: channels of the hidden layers, from the 4x4 projection upwards.
        kernel_size: transposed convolution kernel side.
        batch_norm: use BatchNorm in hidden layers.
        synchronized_batch_norm: all-reduce BatchNorm statistics over replicas.
        fused_batch_norm: training-mode BatchNorm with TF's fused kernel (same results).
        activation: hidden activation ("relu", "leaky_relu" or "elu").
        init_stddev: std of the N(0, s) kernel init (BatchNorm gamma ~ N(1, s)).
        bn_momentum, bn_epsilon: BatchNorm settings.

    Call: `generator(z, training=False)` with z float32 [N, z_dim] returns images float32
    [N, image_size, image_size, channels] in [-1, 1].

    Example:
    ```python
    g = Generator(image_size=32, channels=1, z_dim=100, widths=(256, 128, 64))
    images = g(keras.random.uniform((16, 100), -1, 1))  # (16, 32, 32, 1)
    ```
    """

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        z_dim: int = 100,
        widths: tuple[int, ...] = (1024, 512, 256, 128),
        kernel_size: int = 5,
        batch_norm: bool = True,
        synchronized_batch_norm: bool = False,
        fused_batch_norm: bool = True,
        activation: str = "relu",
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
                f"Generator for {image_size}px needs {expected} widths (4x4 up to "
                f"{image_size // 2}px); got {len(widths)}: {widths}."
            )
        self.image_size = image_size
        self.channels = channels
        self.z_dim = z_dim
        self.widths = widths
        self.kernel_size = kernel_size
        self.batch_norm = batch_norm
        self.synchronized_batch_norm = synchronized_batch_norm
        self.fused_batch_norm = fused_batch_norm
        self.activation = activation
        self.init_stddev = init_stddev
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon

        init = keras.initializers.RandomNormal(0.0, init_stddev)

        def norm_and_act():
            out = []
            if batch_norm:
                out.append(
                    _layers.batch_norm(
                        init_stddev,
                        bn_momentum,
                        bn_epsilon,
                        synchronized_batch_norm,
                        fused_batch_norm,
                    )
                )
            out.append(_layers.activation(activation))
            return out

        # Project and reshape: one matmul (the paper's "projection"), not a hidden FC layer.
        self.blocks = [
            [
                keras.layers.Dense(
                    4 * 4 * widths[0], use_bias=not batch_norm, kernel_initializer=init
                ),
                keras.layers.Reshape((4, 4, widths[0])),
                *norm_and_act(),
            ]
        ]
        for width in widths[1:]:
            self.blocks.append(
                [
                    keras.layers.Conv2DTranspose(
                        width,
                        kernel_size,
                        strides=2,
                        padding="same",
                        use_bias=not batch_norm,
                        kernel_initializer=init,
                    ),
                    *norm_and_act(),
                ]
            )
        # Output layer: no BatchNorm, tanh; float32 so mixed precision keeps exact [-1, 1].
        self.blocks.append(
            [
                keras.layers.Conv2DTranspose(
                    channels,
                    kernel_size,
                    strides=2,
                    padding="same",
                    use_bias=False,
                    kernel_initializer=init,
                ),
                keras.layers.Activation("tanh", dtype="float32"),
            ]
        )

    def build(self, input_shape=None):
        if self.built:  # e.g. built by deserialization already
            return
        x = keras.KerasTensor((None, self.z_dim))
        for block in self.blocks:
            for layer in block:
                layer.build(x.shape)
                x = layer.compute_output_spec(x)
        self.built = True

    def call(self, z, training=False):
        return self.hidden_activations(z, training=training)[-1]

    def hidden_activations(self, z, training=False):
        """Returns the output of every block (after its activation), the image last."""
        outputs = []
        x = z
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training)
            outputs.append(x)
        return outputs

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.image_size, self.image_size, self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=self.image_size,
            channels=self.channels,
            z_dim=self.z_dim,
            widths=list(self.widths),
            kernel_size=self.kernel_size,
            batch_norm=self.batch_norm,
            synchronized_batch_norm=self.synchronized_batch_norm,
            fused_batch_norm=self.fused_batch_norm,
            activation=self.activation,
            init_stddev=self.init_stddev,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
        )
        return config

    @classmethod
    def from_model_config(cls, mc, **kwargs) -> Generator:
        """Builds the generator that a `keras_dcgan.config.ModelConfig` describes."""
        return cls(
            image_size=mc.image_size,
            channels=mc.channels,
            z_dim=mc.z_dim,
            widths=mc.g_widths,
            kernel_size=mc.kernel_size,
            batch_norm=mc.batch_norm,
            synchronized_batch_norm=mc.synchronized_batch_norm,
            fused_batch_norm=mc.fused_batch_norm,
            activation=mc.g_activation,
            init_stddev=mc.init_stddev,
            bn_momentum=mc.bn_momentum,
            bn_epsilon=mc.bn_epsilon,
            **kwargs,
        )
