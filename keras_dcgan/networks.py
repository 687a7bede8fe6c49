"""What any Keras model must do to serve as the generator or the discriminator
(`NETWORKS_HELP`), and the latent size of a generator (`generator_z_dim`).

A module of its own, without Keras or TensorFlow, so that the model (`keras_dcgan.models`) and
the export (`keras_dcgan.serving.export`) both use it without importing each other.
"""

from __future__ import annotations

from keras_dcgan.errors import UserError

NETWORKS_HELP = (
    "Any Keras model works as G if it maps z float32 [N, z_dim] to images [N, S, S, C] in "
    "[-1, 1] (S a power of two, C 1 or 3; e.g. a Sequential that starts with "
    "keras.Input((z_dim,)) and ends in tanh), and as D if it maps those images to one logit per "
    "image, [N, 1]."
)


def generator_z_dim(generator) -> int:
    """The latent size G takes: its `z_dim` attribute (the package's `Generator`), else the width
    of its input, [N, z_dim] (a Sequential or functional model with an Input)."""
    z_dim = getattr(generator, "z_dim", None)
    if z_dim is None:
        try:
            shape = tuple(generator.input_shape)
        except (AttributeError, ValueError, TypeError):
            shape = None
        if shape is None or len(shape) != 2 or not shape[1]:
            raise UserError(
                f"Cannot tell the latent size of the generator {generator.name!r}: give it an "
                f"input layer (keras.Input((z_dim,))) or a z_dim attribute. {NETWORKS_HELP}"
            )
        z_dim = shape[1]
    return int(z_dim)
