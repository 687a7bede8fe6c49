"""What the generator and the discriminator share: settings, validation, layer factories."""

from __future__ import annotations

import math

import keras

from keras_dcgan.errors import UserError
from keras_dcgan.models import _layers


class ConvNetwork(keras.Model):
    """Base of `Generator` and `Discriminator`: a list of blocks (lists of layers), each a
    stride-2 (transposed) convolution and its BatchNorm/activation, plus the shared settings.

    Subclasses fill `self.blocks` in `__init__`; `block_outputs` runs them. Every layer they
    create takes the network's dtype policy (`dtype=`, else the global Keras policy when the
    network is made): Keras does not pass a model's policy on to the layers it creates, so
    without this a `mixed_float16` network saved in a `.keras` file would come back computing in
    whatever the global policy is at load time.
    """

    def __init__(
        self,
        image_size: int,
        channels: int,
        widths,
        kernel_size: int,
        batch_norm: bool,
        synchronized_batch_norm: bool,
        fused_batch_norm: bool,
        init_stddev: float,
        bn_momentum: float,
        bn_epsilon: float,
        **kwargs,
    ):
        super().__init__(**kwargs)
        widths = tuple(int(w) for w in widths)
        expected = int(math.log2(image_size)) - 2
        if len(widths) != expected:
            raise UserError(
                f"{type(self).__name__} for {image_size}px needs {expected} widths (one per "
                f"scale between 4x4 and {image_size // 2}px); got {len(widths)}: {widths}."
            )
        self.image_size = image_size
        self.channels = channels
        self.widths = widths
        self.kernel_size = kernel_size
        self.batch_norm = batch_norm
        self.synchronized_batch_norm = synchronized_batch_norm
        self.fused_batch_norm = fused_batch_norm
        self.init_stddev = init_stddev
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon

    # Layer factories -------------------------------------------------------------------
    def _initializer(self):
        return keras.initializers.RandomNormal(0.0, self.init_stddev)

    def _strided(self, layer_class, filters: int, use_bias: bool):
        """A stride-2 'same' Conv2D (halves the side) or Conv2DTranspose (doubles it)."""
        return layer_class(
            filters,
            self.kernel_size,
            strides=2,
            padding="same",
            use_bias=use_bias,
            kernel_initializer=self._initializer(),
            dtype=self.dtype_policy,
        )

    def _norm(self):
        return _layers.batch_norm(
            self.init_stddev,
            self.bn_momentum,
            self.bn_epsilon,
            self.synchronized_batch_norm,
            self.fused_batch_norm,
            dtype=self.dtype_policy,
        )

    def _activation(self, name: str, leaky_slope: float = 0.2):
        return _layers.activation(name, leaky_slope, dtype=self.dtype_policy)

    # Running ---------------------------------------------------------------------------
    def _build_blocks(self, input_shape):
        """Builds every block's layers from `input_shape`; returns the last output spec."""
        x = keras.KerasTensor(input_shape)
        for block in self.blocks:
            for layer in block:
                layer.build(x.shape)
                x = layer.compute_output_spec(x)
        return x

    def block_outputs(self, x, training=False):
        """The output of every block (after its activation), in order."""
        outputs = []
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training)
            outputs.append(x)
        return outputs

    # Config ----------------------------------------------------------------------------
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
            init_stddev=self.init_stddev,
            bn_momentum=self.bn_momentum,
            bn_epsilon=self.bn_epsilon,
        )
        return config

    @staticmethod
    def shared_kwargs(mc) -> dict:
        """The shared constructor arguments that a `ModelConfig` gives."""
        return dict(
            image_size=mc.image_size,
            channels=mc.channels,
            kernel_size=mc.kernel_size,
            batch_norm=mc.batch_norm,
            synchronized_batch_norm=mc.synchronized_batch_norm,
            fused_batch_norm=mc.fused_batch_norm,
            init_stddev=mc.init_stddev,
            bn_momentum=mc.bn_momentum,
            bn_epsilon=mc.bn_epsilon,
        )
