"""The DCGAN discriminator: image -> one logit, strided convolutions, LeakyReLU."""

from __future__ import annotations

import keras

from keras_dcgan.errors import UserError
from keras_dcgan.models import _layers
from keras_dcgan.models._network import ConvNetwork


@keras.saving.register_keras_serializable(package="keras_dcgan")
class Discriminator(ConvNetwork):
    """DCGAN discriminator (Radford et al. 2015).

    Each stride-2 convolution halves the side down to 4x4; the last feature map is flattened and
    mapped to a single logit (no sigmoid: losses are computed from logits). BatchNorm follows every
    convolution except the first (the input layer); activations are LeakyReLU(0.2). No pooling, no
    fully connected hidden layers, no biases (as the paper's code) unless BatchNorm is off.

    Args:
        image_size: input side, a power of two; `len(widths) == log2(image_size) - 2`.
        channels: input channels (1 or 3).
        widths: channels of the convolutions, from the image downwards.
        kernel_size: convolution kernel side.
        batch_norm: use BatchNorm after every convolution but the first (without it, the
            convolutions get biases).
        synchronized_batch_norm: all-reduce BatchNorm statistics over replicas.
        fused_batch_norm: training-mode BatchNorm with TF's fused kernel (same results).
        leaky_slope: LeakyReLU negative slope.
        init_stddev: std of the N(0, s) kernel init (BatchNorm gamma ~ N(1, s)).
        bn_momentum, bn_epsilon: BatchNorm settings.

    Call: `discriminator(images, training=False)` with images float32 [N, H, W, C] in [-1, 1]
    returns float32 logits [N, 1]. `block_outputs(images)` gives every block's feature map.

    Names (`ConvNetwork` taps them): blocks `down0` ... `down{k}` (side image_size / 2**(i+1),
    `widths[i]` channels; k = len(widths) - 1). Layers: `down<i>_conv`, `down<i>_bn` (not in
    `down0`, nor without `batch_norm`), `down<i>_act`; then `flatten` [N, 16 * widths[-1]] and
    `logit` [N, 1]. Block i of `block_names` is the CLI's layer i.
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
        super().__init__(
            image_size,
            channels,
            widths,
            kernel_size,
            batch_norm,
            synchronized_batch_norm,
            fused_batch_norm,
            init_stddev,
            bn_momentum,
            bn_epsilon,
            **kwargs,
        )
        self.leaky_slope = leaky_slope
        blocks = []
        for i, width in enumerate(self.widths):
            name = f"down{i}"
            block = [self._strided(_layers.Conv2D, width, not batch_norm, name=f"{name}_conv")]
            if batch_norm and i > 0:  # the input layer gets no BatchNorm (the paper's rule)
                block.append(self._norm(f"{name}_bn"))
            block.append(self._activation("leaky_relu", f"{name}_act", leaky_slope))
            blocks.append((name, block))
        self._set_blocks(blocks)
        self.flatten = keras.layers.Flatten(dtype=self.dtype_policy, name="flatten")
        # One logit, computed in float32 under mixed precision: the losses take float32 logits.
        self.logit = keras.layers.Dense(
            1, use_bias=False, kernel_initializer=self._initializer(), dtype="float32",
            name="logit",
        )  # fmt: skip
        self._check_names()

    def _head_layers(self) -> list:
        return [self.flatten, self.logit]

    def build(self, input_shape=None):
        if self.built:  # e.g. built by deserialization already
            return
        x = self._build_blocks((None, self.image_size, self.image_size, self.channels))
        self.flatten.build(x.shape)
        self.logit.build(self.flatten.compute_output_shape(x.shape))
        self.built = True

    def call(self, images, training=False):
        return self.logit(self.flatten(self.block_outputs(images, training=training)[-1]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)

    def get_config(self):
        config = super().get_config()
        config.update(leaky_slope=self.leaky_slope)
        return config

    @classmethod
    def from_model_config(cls, mc, **kwargs) -> Discriminator:
        """Builds the discriminator that a `keras_dcgan.config.ModelConfig` describes."""
        return cls(
            widths=mc.d_widths,
            leaky_slope=mc.d_leaky_slope,
            **cls.shared_kwargs(mc),
            **kwargs,
        )


def random_discriminator(architecture, seed: int = 0):
    """A built `Discriminator` with freshly initialised weights, seeded (the same seed gives the
    same weights), with the initialisers training starts from (kernels N(0, s), BatchNorm gamma
    N(1, s)) and BatchNorm moving statistics 0 and 1.

    `architecture`: a `ModelConfig` (or `Config`), or a `Discriminator` (or a `DCGAN`) to copy the
    architecture of (its weights are not used). The paper's baseline in section 5.1 and Fig. 5.
    """
    if hasattr(architecture, "discriminator"):  # a DCGAN
        architecture = architecture.discriminator
    if isinstance(architecture, Discriminator):
        discriminator = Discriminator.from_config(architecture.get_config())
    else:
        if hasattr(architecture, "model"):
            architecture = architecture.model
        if not hasattr(architecture, "d_widths"):
            raise UserError(f"Expected a ModelConfig or a Discriminator; got {architecture!r}.")
        discriminator = Discriminator.from_model_config(architecture)
    discriminator.build()
    count = 0
    for layer in discriminator.layers:  # in call order: the blocks' layers, flatten, logit
        for name in ("kernel", "bias", "gamma", "beta"):
            variable = getattr(layer, name, None)
            initializer = getattr(layer, f"{name}_initializer", None)
            if variable is None or initializer is None:
                continue
            config = dict(initializer.get_config())
            if "seed" in config:  # Zeros/Ones have no seed
                config["seed"] = int(seed) * 1000 + count
            seeded = type(initializer).from_config(config)
            variable.assign(keras.ops.cast(seeded(variable.shape), variable.dtype))
            count += 1
    return discriminator
