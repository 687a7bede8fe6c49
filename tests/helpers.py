"""Small builders shared by the tests: tiny models and datasets, run folders, the CLI."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_dcgan import DCGAN, get_config
from keras_dcgan.testing import synthetic


def tiny_config(**overrides):
    return get_config("tiny", **overrides)


def tiny_gan(seed=0, **overrides):
    gan = DCGAN.from_model_config(tiny_config(**overrides).model, seed=seed)
    gan.compile()
    gan.build()
    return gan


def random_images(n, size=32, channels=3, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, channels)).astype("float32")


def batches(images, batch_size):
    return tf.data.Dataset.from_tensor_slices(images).batch(batch_size, drop_remainder=True)


def variable_values(model):
    """All variables of a model (weights, BatchNorm statistics) as numpy arrays, in order."""
    return [v.numpy() for v in model.variables]


def write_messy_folder(root, photos):
    """20 good JPEGs in two sub-folders, plus a CMYK JPEG (usable), a truncated JPEG, a zero-byte
    file, a text file and a hidden file (not listed): 3 of the 24 listed files must be skipped."""
    synthetic.write_image_folder(root, photos[:20], subfolders=2)
    Image.fromarray(photos[20]).convert("CMYK").save(f"{root}/cmyk.jpg")
    data = synthetic.encode(photos[21])
    with open(f"{root}/truncated.jpg", "wb") as f:
        f.write(data[: len(data) // 2])
    open(f"{root}/empty.png", "wb").close()
    with open(f"{root}/notes.txt", "w") as f:
        f.write("not an image")
    with open(f"{root}/.DS_Store", "wb") as f:
        f.write(b"\0\1")
    return root


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dcgan_env():
    """The environment of a `dcgan` subprocess: this checkout first on the path, TF quiet."""
    path = os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=path)


def dcgan(*args, cwd=None, timeout=300):
    """Runs `dcgan <args>` in a subprocess; returns the CompletedProcess (text output)."""
    return subprocess.run(
        [sys.executable, "-m", "keras_dcgan.cli.main", *args],
        capture_output=True, text=True, cwd=cwd, env=dcgan_env(), timeout=timeout,
    )  # fmt: skip


def write_run_folder(model_dir, gan, config):
    """A run folder (config + one checkpoint) holding `gan`, as `dcgan train` leaves one, without
    the training time."""
    from keras_dcgan.training.checkpoints import RunCheckpointer, write_config

    write_config(config, model_dir)
    RunCheckpointer(gan, model_dir).save(0, 0)
    return model_dir


def run_serialization_test(model, tmp_path=None):
    """keras-hub's `run_serialization_test` in one call: `from_config(get_config())` gives the
    same config; with `tmp_path`, a `.keras` save and load gives the same class, config and
    variable values. Returns the reloaded model (the config clone without `tmp_path`)."""
    import keras

    config = model.get_config()
    clone = type(model).from_config(config)
    assert clone.get_config() == config
    if tmp_path is None:
        return clone
    path = os.path.join(str(tmp_path), f"{model.name}_round_trip.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == config
    saved, restored = variable_values(model), variable_values(loaded)
    assert len(saved) == len(restored)
    for a, b in zip(saved, restored, strict=True):
        np.testing.assert_array_equal(a, b)
    return loaded
