"""The DCGAN generator: z -> image, fractionally-strided convolutions, tanh output."""

from __future__ import annotations

import keras

from keras_dcgan import options
from keras_dcgan.models import _layers
from keras_dcgan.models._network import ConvNetwork


@keras.saving.register_keras_serializable(package="keras_dcgan")
class Generator(ConvNetwork):
    """DCGAN generator (Radford et al. 2015, Fig. 1).

    z is projected by one matrix multiply to a 4x4 feature map of `widths[0]` channels, then each
    stride-2 transposed convolution doubles the side until `image_size`; the last one outputs
    `channels` maps through tanh. BatchNorm follows every layer except the output one; hidden
    activations are ReLU. No pooling, no fully connected hidden layers, no biases where
    BatchNorm follows nor on the output (as the paper's code and pytorch/examples).

    Args:
        image_size: output side, a power of two; `len(widths) == log2(image_size) - 2`.
        channels: output channels (1 or 3).
        z_dim: latent size.
        widths: channels of the hidden layers, from the 4x4 projection upwards.
        kernel_size: transposed convolution kernel side.
        batch_norm: use BatchNorm in hidden layers (without it, hidden layers get biases).
        synchronized_batch_norm: all-reduce BatchNorm statistics over replicas.
        fused_batch_norm: training-mode BatchNorm with TF's fused kernel (same results).
        activation: hidden activation ("relu", "leaky_relu" or "elu").
        projection_bn: the projection's BatchNorm: "channel" (the paper, pytorch/examples:
            after the reshape, statistics per channel over the batch and the 4x4 positions) or
            "feature" (the Chainer illustration blog: on the Dense output before the reshape,
            statistics of each of the 4*4*widths[0] features over the batch alone).
        init_stddev: std of the N(0, s) kernel init (BatchNorm gamma ~ N(1, s)).
        bn_momentum, bn_epsilon: BatchNorm settings.

    Call: `generator(z, training=False)` with z float32 [N, z_dim] returns images float32
    [N, image_size, image_size, channels] in [-1, 1].

    Names (`ConvNetwork` taps them): blocks `project` (4x4, `widths[0]` channels), `up1` ...
    `up{k}` (side 8 ... 4 * 2**k, `widths[i]` channels; k = len(widths) - 1) and `output`
    (the image). Layers: `project_dense`, `project_reshape`, `project_bn`, `project_act`;
    `up<i>_conv`, `up<i>_bn`, `up<i>_act`; `output_conv`, `output_tanh` (with
    `projection_bn="feature"`, `project_bn` comes before `project_reshape`). No `_bn` layers
    when `batch_norm` is off. Block i of `block_names` is the CLI's layer i.

    Example:
    ```python
    g = Generator(image_size=32, channels=1, z_dim=100, widths=(256, 128, 64))
    z = keras.random.uniform((16, 100), -1, 1)
    images = g(z)  # (16, 32, 32, 1)
    g.block_names  # ("project", "up1", "up2", "output")
    features = g.block_output(z, "up1")  # (16, 8, 8, 128), after up1's ReLU
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
        projection_bn: str = "channel",
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
        self.z_dim = z_dim
        self.activation = activation
        self.projection_bn = options.check_projection_bn(projection_bn)

        def norm_and_act(block: str):
            norm = [self._norm(f"{block}_bn")] if batch_norm else []
            return [*norm, self._activation(activation, f"{block}_act")]

        # Project and reshape: one matmul (the paper's "projection"), not a hidden FC layer.
        w0 = self.widths[0]
        project = keras.layers.Dense(
            4 * 4 * w0,
            use_bias=not batch_norm,
            kernel_initializer=self._initializer(),
            dtype=self.dtype_policy,
            name="project_dense",
        )
        reshape = keras.layers.Reshape((4, 4, w0), dtype=self.dtype_policy, name="project_reshape")
        if projection_bn == "feature" and batch_norm:  # normalise each Dense output, then reshape
            norm, act = norm_and_act("project")
            blocks = [("project", [project, norm, reshape, act])]
        else:
            blocks = [("project", [project, reshape, *norm_and_act("project")])]
        for i, width in enumerate(self.widths[1:], start=1):
            up = self._strided(
                _layers.Conv2DTranspose, width, use_bias=not batch_norm, name=f"up{i}_conv"
            )
            blocks.append((f"up{i}", [up, *norm_and_act(f"up{i}")]))
        # Output layer: no BatchNorm, tanh in float32: under mixed precision G's images are
        # float32 (exact [-1, 1]), so D's input, the samples and the exports are float32.
        out = self._strided(_layers.Conv2DTranspose, channels, use_bias=False, name="output_conv")
        tanh = keras.layers.Activation("tanh", dtype="float32", name="output_tanh")
        blocks.append(("output", [out, tanh]))
        self._set_blocks(blocks)
        self._check_names()

    def build(self, input_shape=None):
        if self.built:  # e.g. built by deserialization already
            return
        self._build_blocks((None, self.z_dim))
        self.built = True

    def call(self, z, training=False):
        return self.block_outputs(z, training=training)[-1]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.image_size, self.image_size, self.channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            z_dim=self.z_dim, activation=self.activation, projection_bn=self.projection_bn
        )
        return config

    @classmethod
    def from_model_config(cls, mc, **kwargs) -> Generator:
        """Builds the generator that a `keras_dcgan.config.ModelConfig` describes."""
        return cls(
            z_dim=mc.z_dim,
            widths=mc.g_widths,
            activation=mc.g_activation,
            projection_bn=mc.projection_bn,
            **cls.shared_kwargs(mc),
            **kwargs,
        )
