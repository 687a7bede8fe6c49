"""Keras models: `Generator`, `Discriminator` and the `DCGAN` that trains them."""

from keras_dcgan.models.dcgan import DCGAN, default_optimizer
from keras_dcgan.models.discriminator import Discriminator, random_discriminator
from keras_dcgan.models.flops import iteration_flops
from keras_dcgan.models.generator import Generator

__all__ = ["DCGAN", "Discriminator", "Generator", "default_optimizer", "iteration_flops",
           "random_discriminator"]  # fmt: skip
