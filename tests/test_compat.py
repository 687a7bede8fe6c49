"""Files written by earlier versions still load: a run folder and a `.keras` file written before
G's and D's layers were named (issue 19; tests/data/make_run_folder_v0.py made them)."""

import io
import os
import shutil
import zipfile

import h5py
import keras
import numpy as np
import tensorflow as tf

from keras_dcgan import DCGAN
from keras_dcgan.training import load_trained
from keras_dcgan.training.checkpoints import RunCheckpointer, checkpoint_files
from tests.helpers import batches, random_images, tiny_gan

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def _expected():
    with np.load(os.path.join(DATA, "expected_v0.npz")) as f:
        return dict(f)


def _check(gan, expected):
    """`gan` holds exactly the fixture's weights, BatchNorm statistics and noise state, and
    computes its samples and logits."""
    for prefix, network in (("g", gan.generator), ("d", gan.discriminator)):
        values = [v.numpy() for v in network.variables]
        assert len(values) == len([k for k in expected if k.startswith(f"{prefix}_")])
        for i, value in enumerate(values):
            np.testing.assert_array_equal(value, expected[f"{prefix}_{i}"])
    np.testing.assert_array_equal(gan.seed_generator.state.numpy(), expected["noise_seed_state"])
    samples = np.asarray(gan.sample(seeds=range(4)))
    np.testing.assert_allclose(samples, expected["samples"], rtol=1e-5, atol=1e-6)
    images = random_images(8, size=32, channels=3, seed=19)
    logits = np.asarray(gan.discriminator(images, training=False))
    np.testing.assert_allclose(logits, expected["logits"], rtol=1e-5, atol=1e-6)


def _copy_run_folder(tmp_path):
    model_dir = str(tmp_path / "run")
    shutil.copytree(os.path.join(DATA, "run_folder_v0"), model_dir)
    return model_dir


def test_run_folder_v0_loads(tmp_path):
    _, gan = load_trained(_copy_run_folder(tmp_path))
    assert int(gan.g_optimizer.iterations.numpy()) == 1
    _check(gan, _expected())


def test_run_folder_v0_resumes_and_saves(tmp_path):
    """Training goes on from the old checkpoint; the checkpoint it then writes loads back."""
    model_dir = _copy_run_folder(tmp_path)
    _, gan = load_trained(model_dir)
    gan.fit(batches(random_images(8, size=32, channels=3, seed=20), 8), epochs=1, verbose=0)
    assert int(gan.g_optimizer.iterations.numpy()) == 2
    RunCheckpointer(gan, model_dir).save(0, 0)
    assert [os.path.basename(p) for p in checkpoint_files(f"{model_dir}/checkpoints")] == [
        "ckpt-1",
        "ckpt-2",
    ]
    # The new checkpoint keys G's and D's variables by layer and variable name (TF writes the
    # "/" in "up1_bn/moving_mean" as ".S"), every one of them.
    reader = tf.train.load_checkpoint(f"{model_dir}/checkpoints/ckpt-2")
    for network, keyed in (("generator", gan.generator), ("discriminator", gan.discriminator)):
        for layer, variables in keyed.variables_by_layer().items():
            for name in variables:
                key = f"{network}/{layer}.S{name}/.ATTRIBUTES/VARIABLE_VALUE"
                assert reader.has_tensor(key), key
    assert not reader.has_tensor("generator/0/.ATTRIBUTES/VARIABLE_VALUE")
    _, again = load_trained(model_dir)
    for mine, theirs in zip(
        again.generator.variables + again.discriminator.variables + again.g_optimizer.variables,
        gan.generator.variables + gan.discriminator.variables + gan.g_optimizer.variables,
        strict=True,
    ):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    np.testing.assert_array_equal(again.seed_generator.state.numpy(), gan.seed_generator.state)


def test_keras_v0_loads(tmp_path):
    gan = keras.saving.load_model(os.path.join(DATA, "dcgan_v0.keras"))
    assert isinstance(gan, DCGAN)
    _check(gan, _expected())
    # And it saves and loads again (with this version's layout).
    gan.save(str(tmp_path / "again.keras"))
    _check(keras.saving.load_model(str(tmp_path / "again.keras")), _expected())


def test_the_dcgan_has_no_weights_of_its_own_but_the_noise_state(tmp_path):
    """What `DCGAN.save_own_variables` relies on: every variable of the DCGAN is G's, D's, a
    metric's or the noise state, so the noise state is all its `.keras` `vars` entry holds."""
    gan = tiny_gan(r1_gamma=1.0)
    gan.fit(batches(random_images(8, size=32, channels=3), 8), epochs=1, verbose=0)
    theirs = gan.generator.variables + gan.discriminator.variables + [gan.seed_generator.state]
    theirs += [v for metric in gan.metrics for v in metric.variables]
    assert {id(v) for v in gan.variables} <= {id(v) for v in theirs}
    path = str(tmp_path / "gan.keras")
    gan.save(path)
    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as f:
        with h5py.File(io.BytesIO(f.read()), "r") as weights:
            assert list(weights["vars"].keys()) == ["noise_seed_state"]
