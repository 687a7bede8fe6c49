"""Small layer factories shared by the generator and the discriminator."""

from __future__ import annotations

import keras


def batch_norm(init_stddev: float, momentum: float, epsilon: float, synchronized: bool):
    """BatchNorm with gamma ~ N(1, init_stddev), as the paper's code initialises it."""
    return keras.layers.BatchNormalization(
        momentum=momentum,
        epsilon=epsilon,
        synchronized=synchronized,
        gamma_initializer=keras.initializers.RandomNormal(1.0, init_stddev),
    )


def activation(name: str, leaky_slope: float = 0.2):
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=leaky_slope)
    if name in ("relu", "elu"):
        return keras.layers.Activation(name)
    raise ValueError(f"Unknown activation {name!r}; use relu, leaky_relu or elu.")
