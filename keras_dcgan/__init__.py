"""keras-dcgan: the DCGAN of Radford et al. (2015) as a Keras 3 / TensorFlow package."""

from keras_dcgan.config import Config, ModelConfig, TrainConfig, get_config
from keras_dcgan.models import DCGAN, Discriminator, Generator

__version__ = "0.1.0"

__all__ = [
    "DCGAN",
    "Config",
    "Discriminator",
    "Generator",
    "ModelConfig",
    "TrainConfig",
    "get_config",
]
