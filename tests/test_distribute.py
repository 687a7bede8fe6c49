"""tf.distribute: one step on 2 replicas (two logical CPUs) equals one step on one device."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dcgan import DCGAN
from keras_dcgan.training import get_strategy
from tests.helpers import batches, random_images, tiny_config


def _step(
    strategy, reference, images, synchronized=True, optimizer="sgd", augment="", r1_gamma=0.0
):
    mc = tiny_config(synchronized_batch_norm=synchronized).model
    with strategy.scope():
        gan = DCGAN.from_model_config(mc, seed=7, augment=augment, r1_gamma=r1_gamma)

        def make():
            if optimizer == "sgd":
                return keras.optimizers.SGD(0.1)
            return keras.optimizers.Adam(2e-4, beta_1=0.5)

        gan.compile(g_optimizer=make(), d_optimizer=make())
        gan.build()
    gan.generator.set_weights(reference.generator.get_weights())
    gan.discriminator.set_weights(reference.discriminator.get_weights())
    history = gan.fit(batches(images, len(images)), epochs=1, verbose=0)
    values = [v.numpy() for v in gan.generator.variables + gan.discriminator.variables]
    return values, {k: v[-1] for k, v in history.history.items()}


@pytest.fixture(scope="module")
def two_replicas():
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) < 2:
        pytest.skip("needs two logical CPU devices (configured in conftest.py)")
    return get_strategy("mirrored", devices=[cpus[0].name, cpus[1].name])


def test_two_replica_step_equals_single_device_step(two_replicas):
    assert two_replicas.num_replicas_in_sync == 2
    reference = DCGAN.from_model_config(tiny_config().model, seed=7)
    reference.build()
    images = random_images(8, seed=3)
    single, single_logs = _step(tf.distribute.get_strategy(), reference, images)
    mirrored, mirrored_logs = _step(two_replicas, reference, images)
    # Same weights, BatchNorm statistics and losses: the global batch's noise is split over the
    # replicas, BatchNorm statistics are all-reduced, and gradients are divided by the GLOBAL
    # batch before being summed. With SGD(0.1), a 2x gradient (plain mean) or shared noise
    # across replicas changes weights by far more than the tolerance.
    for a, b in zip(single, mirrored, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)
    for key in single_logs:
        assert single_logs[key] == pytest.approx(mirrored_logs[key], rel=1e-4)


AUGMENT = {"augment": "translation,cutout"}


@pytest.mark.parametrize(
    "options,without",
    [(AUGMENT, {}), ({**AUGMENT, "r1_gamma": 5.0}, AUGMENT)],
    ids=["augment", "augment_r1"],
)
def test_two_replica_step_with_train_options_equals_single_device_step(
    two_replicas, options, without
):
    """DiffAugment's translations and cutouts are drawn for the global batch and sliced, like
    the noise: replicas neither repeat each other's draws nor draw differently from one device.
    With R1, each replica differentiates its own logits at its own images; through synchronized
    BatchNorm's all-reduce the input gradient, and D's second-order update, are the global ones."""
    reference = DCGAN.from_model_config(tiny_config().model, seed=7)
    reference.build()
    images = random_images(8, seed=3)
    single, single_logs = _step(tf.distribute.get_strategy(), reference, images, **options)
    mirrored, mirrored_logs = _step(two_replicas, reference, images, **options)
    for a, b in zip(single, mirrored, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)
    if "r1_gamma" in options:
        assert single_logs["r1_penalty"] > 1e-3
    for key in single_logs:
        assert single_logs[key] == pytest.approx(mirrored_logs[key], rel=1e-4)
    # The option under test did act: the step without it ends elsewhere.
    plain, _ = _step(tf.distribute.get_strategy(), reference, images, **without)
    assert max(np.max(np.abs(a - b)) for a, b in zip(single, plain, strict=True)) > 1e-4


def test_adam_step_agrees_too(two_replicas):
    reference = DCGAN.from_model_config(tiny_config().model, seed=7)
    reference.build()
    images = random_images(8, seed=4)
    single, _ = _step(tf.distribute.get_strategy(), reference, images, optimizer="adam")
    mirrored, _ = _step(two_replicas, reference, images, optimizer="adam")
    # Adam's first step is lr * g / (|g| + eps): elements whose gradient is at float-noise level
    # may flip sign, so compare the typical element (99% within tolerance) not the worst.
    diffs = np.concatenate([np.abs(a - b).ravel() for a, b in zip(single, mirrored, strict=True)])
    assert np.mean(diffs <= 1e-6) > 0.99


def test_without_synchronized_batch_norm_replicas_differ(two_replicas):
    """Shows that the equality above depends on synchronized BatchNorm (the test can fail)."""
    reference = DCGAN.from_model_config(tiny_config().model, seed=7)
    reference.build()
    images = random_images(8, seed=3)
    single, _ = _step(tf.distribute.get_strategy(), reference, images, synchronized=False)
    mirrored, _ = _step(two_replicas, reference, images, synchronized=False)
    assert max(np.max(np.abs(a - b)) for a, b in zip(single, mirrored, strict=True)) > 1e-4


def test_strategy_factory(monkeypatch):
    assert get_strategy("auto").num_replicas_in_sync == 1
    assert get_strategy("one_device").num_replicas_in_sync == 1
    with pytest.raises(ValueError, match="Unknown strategy 'tpuv9'"):
        get_strategy("tpuv9")
    with pytest.raises(ValueError, match="found no TPU"):
        get_strategy("tpu")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        get_strategy("multi_worker")


def test_train_under_mirrored_strategy(two_replicas, tmp_path):
    """The whole run under 2 replicas: variables built in scope, steps_per_execution forced to 1
    (Keras fails with more), checkpoints and samples written."""
    from keras_dcgan.training import train

    config = tiny_config(steps=2, steps_per_execution=2, synchronized_batch_norm=True)
    result = train(config, str(tmp_path / "run"), strategy=two_replicas, verbose=0)
    assert result.steps == 2
    assert result.gan.distribute_strategy is two_replicas
    assert (tmp_path / "run" / "samples" / "epoch_0001.png").exists()
