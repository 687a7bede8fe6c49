"""What the generator and the discriminator share: settings, validation, layer factories."""

from __future__ import annotations

import math

import keras

from keras_dcgan.errors import UserError
from keras_dcgan.models import _layers


class ConvNetwork(keras.Model):
    """Base of `Generator` and `Discriminator`: named blocks of named layers, each block a
    stride-2 (transposed) convolution and its BatchNorm/activation, plus the shared settings.

    Every layer has a stable name (`network.get_layer(name)`), and so has every block (a block
    ends at its activation; its name is that of its first layer without the `_conv`/`_dense`
    suffix). Intermediate outputs are tapped by name, keras-hub style:

    - `block_names`: the blocks' names, in order (a block's index is its CLI layer number);
    - `get_block(name)`: the block's layers, in order;
    - `outputs_by_name(x, names)`: the outputs of the named blocks and/or layers;
    - `block_output(x, name)`: one of them;
    - `block_outputs(x)`: every block's output, in order;
    - `variables_by_layer()`: the variables keyed by layer and variable name (checkpoints).

    Subclasses give their blocks to `_set_blocks` in `__init__` (kept as `self.blocks`, a list
    of lists of layers, so that `.keras` files keep their `blocks/container_<i>/...` paths) and
    may run layers after the blocks (`_head_layers`, D's flatten and logit). Every layer they
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

    def _strided(self, layer_class, filters: int, use_bias: bool, name: str):
        """A stride-2 'same' Conv2D (halves the side) or Conv2DTranspose (doubles it)."""
        return layer_class(
            filters,
            self.kernel_size,
            strides=2,
            padding="same",
            use_bias=use_bias,
            kernel_initializer=self._initializer(),
            dtype=self.dtype_policy,
            name=name,
        )

    def _norm(self, name: str):
        return _layers.batch_norm(
            self.init_stddev,
            self.bn_momentum,
            self.bn_epsilon,
            self.synchronized_batch_norm,
            self.fused_batch_norm,
            dtype=self.dtype_policy,
            name=name,
        )

    def _activation(self, activation: str, name: str, leaky_slope: float = 0.2):
        return _layers.activation(activation, leaky_slope, dtype=self.dtype_policy, name=name)

    # Blocks and names ------------------------------------------------------------------
    def _set_blocks(self, named_blocks) -> None:
        """Sets the blocks from `named_blocks`, pairs (block name, list of layers), in order."""
        self._block_names = tuple(name for name, _ in named_blocks)
        self.blocks = [list(layers) for _, layers in named_blocks]

    def _head_layers(self) -> list:
        """The layers run after the blocks (none here; D's flatten and logit)."""
        return []

    def _check_names(self) -> None:
        """Raises unless the block and layer names are all distinct (call at the end of
        `__init__`, after the head layers exist)."""
        names = list(self._block_names) + [layer.name for layer in self._all_layers()]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"{type(self).__name__} has repeated layer names: {repeated}.")

    def _all_layers(self) -> list:
        """Every layer, in call order: the blocks' layers, then the head's."""
        return [layer for block in self.blocks for layer in block] + self._head_layers()

    @property
    def block_names(self) -> tuple[str, ...]:
        """The blocks' names in order: `block_names[i]` is block i (its CLI layer number)."""
        return self._block_names

    def get_block(self, name: str) -> list:
        """The layers of the block `name` (one of `block_names`), in order; the last one is
        its activation."""
        if name not in self._block_names:
            raise ValueError(f"No block {name!r} in {self.name}; blocks: {self.block_names}.")
        return list(self.blocks[self._block_names.index(name)])

    @property
    def tap_names(self) -> tuple[str, ...]:
        """Every name `outputs_by_name` accepts: the block names, then the layer names."""
        return self._block_names + tuple(layer.name for layer in self._all_layers())

    # Running ---------------------------------------------------------------------------
    def _build_if_needed(self) -> None:
        # All at once: layers built one by one as they are called would make `build()` fail.
        if not self.built:
            self.build()

    def _build_blocks(self, input_shape):
        """Builds every block's layers from `input_shape`; returns the last output spec."""
        x = keras.KerasTensor(input_shape)
        for block in self.blocks:
            for layer in block:
                layer.build(x.shape)
                x = layer.compute_output_spec(x)
        return x

    def block_outputs(self, x, training=False):
        """The output of every block (after its activation), in order: `block_outputs(x)[i]`
        is block i's feature map [N, side, side, channels] (the network's input `x` as in
        `call`). Builds the network first if need be."""
        self._build_if_needed()
        outputs = []
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training)
            outputs.append(x)
        return outputs

    def outputs_by_name(self, x, names, training=False) -> dict:
        """The outputs of the named blocks and/or layers (`tap_names`) for the input `x` (as in
        `call`), as a dict name -> tensor in the order of `names` (a name or a list of names).

        A block's output is that of its activation, e.g. [N, side, side, channels]; a layer's
        is that layer's (a `_bn` layer's: after BatchNorm, before the activation). Only the
        layers up to the last one needed run. Builds the network first if need be.
        """
        self._build_if_needed()
        names = [names] if isinstance(names, str) else list(names)
        unknown = [name for name in names if name not in self.tap_names]
        if unknown:
            raise ValueError(
                f"No block or layer {unknown} in {self.name}; names: {self.tap_names}."
            )
        blocks = zip(self._block_names, self.blocks, strict=True)
        ends = {id(block[-1]): name for name, block in blocks}  # a block's output: its last
        wanted, outputs = set(names), {}
        for layer in self._all_layers():
            if wanted <= outputs.keys():
                break
            x = layer(x, training=training)
            for name in (layer.name, ends.get(id(layer))):
                if name in wanted:
                    outputs[name] = x
        return {name: outputs[name] for name in names}

    def block_output(self, x, name: str, training=False):
        """The output of the block or layer `name` for the input `x` (see `outputs_by_name`)."""
        return self.outputs_by_name(x, [name], training=training)[name]

    def variables_by_layer(self) -> dict:
        """The network's variables (weights and BatchNorm statistics) as {layer name:
        {variable name: variable}}, e.g. `["up1_bn"]["moving_mean"]`; layers without
        variables are left out. Checkpoints key G's and D's variables so."""
        keyed = {}
        for layer in self._all_layers():
            if layer.variables:
                keyed[layer.name] = {variable.name: variable for variable in layer.variables}
                if len(keyed[layer.name]) != len(layer.variables):
                    raise ValueError(f"Layer {layer.name!r} has repeated variable names.")
        return keyed

    # Config ----------------------------------------------------------------------------
    # The constructor arguments G and D share; a `ModelConfig` has a field of each name.
    SHARED_ARGUMENTS = ("image_size", "channels", "kernel_size", "batch_norm",
                        "synchronized_batch_norm", "fused_batch_norm", "init_stddev",
                        "bn_momentum", "bn_epsilon")  # fmt: skip

    def get_config(self):
        config = super().get_config()
        config.update({name: getattr(self, name) for name in self.SHARED_ARGUMENTS})
        config.update(widths=list(self.widths))
        return config

    @classmethod
    def shared_kwargs(cls, mc) -> dict:
        """The shared constructor arguments that a `ModelConfig` gives."""
        return {name: getattr(mc, name) for name in cls.SHARED_ARGUMENTS}
