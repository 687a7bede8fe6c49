"""Guided backpropagation of the discriminator's features (Radford et al. 2015, Fig. 5).

The paper shows "guided backpropagation visualizations of maximal axis-aligned responses for the
first 6 learned convolutional features from the last convolution layer in the discriminator",
next to the same for a randomly initialised discriminator. For each feature (one channel of the
last convolution block, "axis-aligned") this module finds, among a set of real images, the image
and spatial position where the channel responds most, and backpropagates that single activation
to the input pixels with the guided rule.

Guided backpropagation (Springenberg et al. 2014, "Striving for simplicity"): at every ReLU the
backward pass keeps the gradient only where the forward input was positive AND the incoming
gradient is positive. D's nonlinearities are LeakyReLU(0.2); here they are treated as ReLUs in
the backward pass, the usual choice: gradient = incoming * [input > 0] * [incoming > 0] (the
0.2 slope's contribution on negative inputs is dropped). The forward pass is unchanged (the
model's LeakyReLU), BatchNorm runs in inference mode (moving statistics), so every image's
gradient depends on that image alone. The rule is applied with `tf.custom_gradient` around each
activation layer while D's blocks (`Discriminator.get_block`, by name: `down0`, `down1`, ...) are
run one layer at a time: no global gradient override. A `layer` argument is a block index (the
CLI's layer number) and names block `discriminator.block_names[layer]`.
The probed unit itself is differentiated from its pre-activation (see `gradients`): the same
for the usual positive maximum, and not an empty picture for a feature that never fires.

Visualisations are the raw input gradients divided, per feature, by a robust maximum of their
absolute value (`percentile` of |gradient| over that image's pixels and channels; 100 = the
maximum) and clipped to [-1, 1]: the package's image range, so zero gradient is mid-gray, positive
brighter, negative darker, each RGB channel separately (`keras_dcgan.images.save_grid` writes
them as they are).

Example:
```python
from keras_dcgan.analysis import guided_backprop as gb
config, gan = load_trained("runs/bedrooms")
ids, real = open_source("/data/bedroom_train_lmdb").arrays(64, 3, limit=1000)
trained, random = gb.compare_with_random(gan.discriminator, real, features=6)
save_grid(np.concatenate([trained.visualizations, random.visualizations]), "fig5.png", 6)
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_dcgan import validation
from keras_dcgan.errors import UserError
from keras_dcgan.images import to_model_range

RULES = ("guided", "plain")


@dataclasses.dataclass(frozen=True)
class GuidedBackprop:
    """What `guided_backprop` found, one row per feature.

    Attributes:
        layer: the (non-negative) index of the discriminator block whose output was probed.
        features: int [k], the probed channels of that block's output.
        image_indices: int [k], the index (into the images given) of the image where each feature
            responds most.
        positions: int [k, 2], (row, column) of that response in the block's feature map.
        responses: float32 [k], the maximal activations (after the block's LeakyReLU).
        gradients: float32 [k, H, W, C], the raw gradients of each activation w.r.t. the pixels
            of its image (guided or plain, see `rule`).
        visualizations: float32 [k, H, W, C] in [-1, 1], the normalised gradients (module doc).
        rule: "guided" or "plain" (ordinary gradients, for comparison).
    """

    layer: int
    features: np.ndarray
    image_indices: np.ndarray
    positions: np.ndarray
    responses: np.ndarray
    gradients: np.ndarray
    visualizations: np.ndarray
    rule: str = "guided"


def _discriminator(model):
    """The discriminator of a `DCGAN` (or the network itself), checked for what we need."""
    network = getattr(model, "discriminator", model)
    if not hasattr(network, "block_names") or not hasattr(network, "image_size"):
        raise UserError(
            f"Expected a Discriminator (or a DCGAN); got {type(model).__name__}, which has no "
            "convolution blocks."
        )
    if not network.built:
        network.build()
    return network


def _layer_index(network, layer: int) -> int:
    n = len(network.block_names)
    if not validation.is_int(layer) or not -n <= layer < n:
        raise UserError(f"layer must be a block index in [{-n}, {n - 1}]; got {layer!r}.")
    return int(layer) % n


def _block_channels(network, layer: int) -> int:
    """Channels of block `layer`'s output: its convolution's filters."""
    return int(network.get_block(network.block_names[layer])[0].filters)


def layer_info(discriminator, layer: int = -1) -> tuple[int, int, int]:
    """(block index >= 0, side, channels) of a discriminator block's output; a bad index is a
    ValueError."""
    network = _discriminator(discriminator)
    index = _layer_index(network, layer)
    return index, network.image_size // 2 ** (index + 1), _block_channels(network, index)


def check_features(features, channels: int) -> np.ndarray:
    """`features` (an int k: channels 0..k-1, or a sequence of channel indices) as int [k]."""
    if isinstance(features, bool):
        raise UserError(f"features must be a count or a list of channel indices; got {features}.")
    if isinstance(features, (int, np.integer)):
        if not 1 <= features <= channels:
            raise UserError(
                f"features must be between 1 and the layer's {channels} channels; got {features}."
            )
        return np.arange(int(features))
    if isinstance(features, (str, bytes)) or not isinstance(features, (Sequence, np.ndarray)):
        raise UserError(f"features must be a count or a list of channel indices; got {features!r}.")
    indices = list(features)
    if not indices:
        raise UserError("features is empty: give at least one channel index.")
    for f in indices:
        if isinstance(f, (bool, np.bool_)) or not isinstance(f, (int, np.integer)):
            raise UserError(f"feature indices must be integers; got {f!r}.")
        if not 0 <= f < channels:
            raise UserError(
                f"feature index {f} is out of range: the layer has {channels} channels "
                f"(0..{channels - 1})."
            )
    return np.asarray(indices, np.int64)


def check_images(images, network) -> np.ndarray:
    """Images as float32 [N, H, W, C] in [-1, 1] (uint8 [0, 255] is converted)."""
    images = np.asarray(images)
    shape = (network.image_size, network.image_size, network.channels)
    if images.ndim != 4 or images.shape[0] == 0 or tuple(images.shape[1:]) != shape:
        raise UserError(
            f"images must be a non-empty batch of shape [N, {shape[0]}, {shape[1]}, {shape[2]}] "
            f"(the discriminator's input); got shape {images.shape}."
        )
    if images.dtype == np.uint8:
        return to_model_range(images)
    if not np.issubdtype(images.dtype, np.floating):
        raise UserError(f"images must be float in [-1, 1] or uint8; got dtype {images.dtype}.")
    images = images.astype(np.float32)
    if not np.all(np.isfinite(images)):
        raise UserError("images contain NaN or infinite values.")
    low, high = float(images.min()), float(images.max())
    if low < -1.001 or high > 1.001:
        raise UserError(
            f"float images must be in [-1, 1] (the model's range); got values in "
            f"[{low:.3g}, {high:.3g}]. Convert uint8 with keras_dcgan.images.to_model_range."
        )
    return images


def _relu_slope(layer) -> float | None:
    """The negative slope of a ReLU-like activation layer (0 for ReLU), else None."""
    if isinstance(layer, keras.layers.LeakyReLU):
        return float(layer.negative_slope)
    if isinstance(layer, keras.layers.ReLU):
        if layer.max_value is None and not layer.threshold:
            return float(layer.negative_slope)
        return None
    if isinstance(layer, keras.layers.Activation):
        name = keras.activations.serialize(layer.activation)
        name = name if isinstance(name, str) else name.get("config", name)
        if name in ("relu", "leaky_relu"):
            return 0.0 if name == "relu" else 0.2
    return None


def _guided(layer):
    """`layer` (a ReLU-like activation) with the guided backward rule."""

    @tf.custom_gradient
    def guided(x):
        y = layer(x)

        def backward(dy):
            return dy * tf.cast(tf.logical_and(x > 0, dy > 0), dy.dtype)

        return y, backward

    return guided


def _forward(network, images, layer: int, rule: str, pre_activation: bool = False):
    """Runs blocks 0..layer of `network` (`block_names[:layer + 1]`) on images [N, H, W, C] in
    inference mode, returning block `layer`'s output [N, side, side, channels]; with rule
    "guided", every ReLU-like activation backpropagates with the guided rule. `pre_activation`:
    stop before the last block's activation (its input is returned)."""
    x = images
    for b, name in enumerate(network.block_names[: layer + 1]):
        block = network.get_block(name)
        for i, lay in enumerate(block):
            is_relu = _relu_slope(lay) is not None
            if pre_activation and b == layer and i == len(block) - 1 and is_relu:
                break
            if rule == "guided" and is_relu:
                x = _guided(lay)(x)
            elif rule == "guided" and isinstance(lay, keras.layers.Activation):
                raise UserError(
                    f"Guided backpropagation needs ReLU-like activations; {lay.name} is "
                    f"{keras.activations.serialize(lay.activation)!r}."
                )
            else:
                x = lay(x, training=False)
    return x


def gradients(discriminator, images, targets, *, layer: int = -1, rule: str = "guided"):
    """Input gradients of single activations of a discriminator block.

    Args:
        discriminator: a `Discriminator` (or a `DCGAN`).
        images: float32 [N, H, W, C] in [-1, 1] (or uint8).
        targets: N rows (feature, row, column): row i is the activation of `images[i]` to
            differentiate, a channel and a position of the block's output.
        layer: the block (default: the last convolution block).
        rule: "guided" (guided backpropagation) or "plain" (ordinary gradients).

    Returns float32 [N, H, W, C]: row i is d activation_i / d images[i]. The probed unit is
    differentiated from its pre-activation (the input of the block's LeakyReLU), so its own
    nonlinearity masks nothing: for a positive activation (the usual maximal response) this is
    exactly the guided gradient of the activation; for a unit that is negative on every image
    (a feature that never fires) the ReLU rule would give an all-zero picture.
    """
    validation.one_of(rule, RULES, "rule")
    network = _discriminator(discriminator)
    layer = _layer_index(network, layer)
    images = check_images(images, network)
    targets = np.asarray(targets)
    if targets.shape != (len(images), 3) or not np.issubdtype(targets.dtype, np.integer):
        raise UserError(
            f"targets must be integer rows (feature, row, column), one per image ({len(images)}); "
            f"got shape {targets.shape} of {targets.dtype}."
        )
    side = network.image_size // 2 ** (layer + 1)
    check_features(list(targets[:, 0]), _block_channels(network, layer))
    if targets[:, 1:].min() < 0 or targets[:, 1:].max() >= side:
        raise UserError(
            f"target positions must be in [0, {side - 1}] (the layer is {side}x{side})."
        )
    x = tf.constant(images)
    index = np.concatenate([np.arange(len(images))[:, None], targets[:, 1:], targets[:, :1]], 1)
    with tf.GradientTape() as tape:
        tape.watch(x)
        activations = _forward(network, x, layer, rule, pre_activation=True)
        # Each image's activation depends on that image alone (inference-mode BatchNorm), so the
        # gradient of the sum gives every row its own gradient.
        total = tf.reduce_sum(tf.gather_nd(tf.cast(activations, tf.float32), index))
    return tape.gradient(total, x).numpy()


def layer_activations(discriminator, images, layer: int = -1, batch_size: int = 256):
    """The output of one discriminator block (after its activation) for every image, in
    inference mode: float32 [N, h, w, channels]."""
    network = _discriminator(discriminator)
    layer = _layer_index(network, layer)
    images = check_images(images, network)
    if batch_size < 1:
        raise UserError(f"batch_size must be positive; got {batch_size}.")
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = tf.constant(images[start : start + batch_size])
        outputs.append(np.asarray(_forward(network, batch, layer, "plain"), np.float32))
    return np.concatenate(outputs)


def normalize(grads, percentile: float = 100.0) -> np.ndarray:
    """Per image: gradient / percentile(|gradient|), clipped to [-1, 1] (all-zero stays zero)."""
    if not 0 < percentile <= 100:
        raise UserError(f"percentile must be in (0, 100]; got {percentile}.")
    grads = np.asarray(grads, np.float32)
    flat = np.abs(grads.reshape(len(grads), -1))
    scale = np.percentile(flat, percentile, axis=1)
    scale = np.where(scale > 0, scale, flat.max(axis=1))  # a sparse gradient: use its maximum
    scale = np.where(scale > 0, scale, 1.0).reshape(-1, *[1] * (grads.ndim - 1))
    return np.clip(grads / scale, -1.0, 1.0).astype(np.float32)


def guided_backprop(
    discriminator,
    images,
    features=6,
    *,
    layer: int = -1,
    rule: str = "guided",
    percentile: float = 100.0,
    batch_size: int = 256,
) -> GuidedBackprop:
    """Guided backpropagation of the maximal axis-aligned responses of D's features (Fig. 5).

    For each feature (channel) of block `layer`'s output, the image of `images` and the position
    where that channel's activation is largest are found (the first one on ties, so the result is
    deterministic); that one activation is backpropagated to the image's pixels.

    Args:
        discriminator: a `Discriminator` (or a `DCGAN`: its discriminator).
        images: real images, float32 [N, H, W, C] in [-1, 1] or uint8.
        features: an int k (the first k channels, the paper: 6) or a list of channel indices.
        layer: the convolution block (default -1: the last one, as the paper).
        rule: "guided" or "plain" (ordinary gradients, to compare).
        percentile: normalisation of the visualisations (see `normalize`).
        batch_size: images per forward pass when searching for the maxima.

    Returns a `GuidedBackprop`.
    """
    network = _discriminator(discriminator)
    layer = _layer_index(network, layer)
    features = check_features(features, _block_channels(network, layer))
    images = check_images(images, network)
    activations = layer_activations(network, images, layer, batch_size)[..., features]
    n, h, w, k = activations.shape
    flat = np.argmax(activations.reshape(n * h * w, k), axis=0)
    image_indices, rows, cols = np.unravel_index(flat, (n, h, w))
    responses = activations[image_indices, rows, cols, np.arange(k)]
    targets = np.stack([features, rows, cols], axis=1).astype(np.int64)
    grads = gradients(network, images[image_indices], targets, layer=layer, rule=rule)
    return GuidedBackprop(
        layer=layer,
        features=features,
        image_indices=image_indices.astype(np.int64),
        positions=np.stack([rows, cols], axis=1).astype(np.int64),
        responses=responses.astype(np.float32),
        gradients=grads,
        visualizations=normalize(grads, percentile),
        rule=rule,
    )


def compare_with_random(
    discriminator, images, features=6, *, seed: int = 0, **kwargs
) -> tuple[GuidedBackprop, GuidedBackprop]:
    """`guided_backprop` of the trained discriminator and of
    `keras_dcgan.models.random_discriminator(discriminator, seed)`
    on the same images (Fig. 5: left trained, right random); `kwargs` go to both."""
    from keras_dcgan.models import random_discriminator

    trained = guided_backprop(discriminator, images, features, **kwargs)
    fresh = random_discriminator(_discriminator(discriminator), seed)
    random = guided_backprop(fresh, images, features, **kwargs)
    return trained, random
