"""keras-dcgan: the DCGAN of Radford et al. (2015) as a Keras 3 / TensorFlow package.

The public names below are imported lazily, so that `keras_dcgan.config` (and the CLI's `--help`)
load without TensorFlow.
"""

import importlib

from keras_dcgan import logs as _logs  # noqa: F401 (the package's message handler)

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "keras_dcgan.config",
    "ModelConfig": "keras_dcgan.config",
    "TrainConfig": "keras_dcgan.config",
    "get_config": "keras_dcgan.config",
    "DCGAN": "keras_dcgan.models",
    "Discriminator": "keras_dcgan.models",
    "Generator": "keras_dcgan.models",
    "train": "keras_dcgan.training",
    "load_trained": "keras_dcgan.training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'keras_dcgan' has no attribute {name!r}")
