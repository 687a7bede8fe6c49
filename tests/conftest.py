"""Test setup: quiet TensorFlow, and two logical CPU devices for tf.distribute tests.

The logical devices must be configured before TensorFlow initialises its runtime, so this
happens at import, before any test module runs a TF op.
"""

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Nothing downloads in tests (the reference Inception graph says how to get it instead).
os.environ["KERAS_DCGAN_OFFLINE"] = "1"

import keras  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import keras_dcgan  # noqa: E402, F401 (installs the package's message handler)

# The package logger keeps its records to itself (keras_dcgan.logs); in tests they also reach
# the root logger, where pytest's caplog collects them.
logging.getLogger("keras_dcgan").propagate = True


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="module")
def tiny_run_dir(tmp_path_factory):
    """A run folder (config + checkpoint) of a tiny random-init GAN: what `dcgan train` writes,
    without the training time."""
    from tests.helpers import tiny_config, tiny_gan, write_run_folder

    model_dir = str(tmp_path_factory.mktemp("tiny_run") / "run")
    return write_run_folder(model_dir, tiny_gan(seed=5), tiny_config())
