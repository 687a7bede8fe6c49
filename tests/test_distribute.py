"""tf.distribute: one step on 2 replicas (two logical CPUs) equals one step on one device."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dcgan import DCGAN
from keras_dcgan.training import get_strategy
from tests.helpers import batches, random_images, tiny_config


def _make(strategy, reference, synchronized=True, optimizer="sgd", augment="", r1_gamma=0.0,
          precision=None, loss_scale=None, d_batch="separate"):  # fmt: skip
    """A compiled DCGAN in `strategy`'s scope with `reference`'s weights."""
    mc = tiny_config(synchronized_batch_norm=synchronized).model
    with strategy.scope():
        gan = DCGAN.from_model_config(
            mc, seed=7, augment=augment, r1_gamma=r1_gamma, precision=precision, d_batch=d_batch
        )

        def make():
            if optimizer == "sgd":
                return keras.optimizers.SGD(0.1)
            return keras.optimizers.Adam(2e-4, beta_1=0.5)

        gan.compile(g_optimizer=make(), d_optimizer=make())
        gan.build()
    gan.generator.set_weights(reference.generator.get_weights())
    gan.discriminator.set_weights(reference.discriminator.get_weights())
    if loss_scale is not None:
        for opt in (gan.g_optimizer, gan.d_optimizer):
            opt.dynamic_scale.assign(loss_scale)
    return gan


def _read(variable):
    """A (mirrored) Keras variable's value as a Python number."""
    return tf.convert_to_tensor(variable.value).numpy().item()


def _step(strategy, reference, images, steps=1, **options):
    """`steps` iterations on `images` (one batch); all G and D variables, and the last logs."""
    gan = _make(strategy, reference, **options)
    history = gan.fit(batches(images, len(images)).repeat(steps), epochs=1, verbose=0)
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
    [
        (AUGMENT, {}),
        ({**AUGMENT, "r1_gamma": 5.0}, AUGMENT),
        ({"d_batch": "concatenated"}, {}),
        ({"d_batch": "concatenated", "r1_gamma": 5.0}, {"r1_gamma": 5.0}),
    ],
    ids=["augment", "augment_r1", "concatenated", "concatenated_r1"],
)
def test_two_replica_step_with_train_options_equals_single_device_step(
    two_replicas, options, without
):
    """DiffAugment's translations and cutouts are drawn for the global batch and sliced, like
    the noise: replicas neither repeat each other's draws nor draw differently from one device.
    With R1, each replica differentiates its own logits at its own images; through synchronized
    BatchNorm's all-reduce the input gradient, and D's second-order update, are the global ones.
    With d_batch="concatenated", each replica concatenates its own real and fake rows; the
    all-reduced statistics are those of the whole concatenated global batch."""
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


def test_two_replica_float16_step_equals_single_device_step(two_replicas):
    """One mixed_float16 step (loss scales 1024) on 2 replicas against 1 device. (At 2^15 the
    tiny model's first steps overflow in float16, and fewer of them on 2 replicas: each sums the
    weight gradient of half the batch in float16, the all-reduce adds the halves in float32.
    Skipping is tested below.) Float16 rounding differs with the batch split, and at
    initialisation BatchNorm's backward pass amplifies it (see tests/test_precision.py): so the
    updates are compared as there, by relative distance and mean size; a 2x gradient or an
    unscaled one would be far off."""
    reference = DCGAN.from_model_config(tiny_config().model, seed=7)
    reference.build()
    initial = [v.numpy() for v in reference.generator.variables + reference.discriminator.variables]
    images = random_images(8, seed=3)
    kw = {"precision": "mixed_float16", "loss_scale": 1024.0}
    single, single_logs = _step(tf.distribute.get_strategy(), reference, images, **kw)
    mirrored, mirrored_logs = _step(two_replicas, reference, images, **kw)
    for key in ("g_loss_scale", "d_loss_scale"):
        assert single_logs[key] == mirrored_logs[key] == 1024.0
    for key in single_logs:
        assert single_logs[key] == pytest.approx(mirrored_logs[key], rel=1e-2)
    n_g = len(reference.generator.variables)
    sizes = {"single": [0.0, 0.0], "mirrored": [0.0, 0.0]}
    for i, (a, b, start) in enumerate(zip(single, mirrored, initial, strict=True)):
        update, other = a - start, b - start
        if np.abs(update).max() == 0:  # BatchNorm statistics that a step does not change
            continue
        distance = np.linalg.norm(other - update) / np.linalg.norm(update)
        assert distance < (0.3 if i < n_g else 0.12), (i, distance)
        sizes["single"][i >= n_g] += np.abs(update).mean()
        sizes["mirrored"][i >= n_g] += np.abs(other).mean()
    for network in (0, 1):
        ratio = sizes["mirrored"][network] / sizes["single"][network]
        assert 0.9 < ratio < 1.1, ratio


def test_an_overflow_on_one_replica_skips_the_step_on_all(two_replicas):
    """Keras' LossScaleOptimizer checks for inf/NaN per replica, before the all-reduce, and
    follows the first replica: here the second replica's real images overflow float16 (1e5 >
    65504), so D's gradient is non-finite there only. Every replica must skip D's step and
    halve D's scale (without the agreement in `DCGAN`, the NaN sum went into D's weights)."""
    reference = DCGAN.from_model_config(tiny_config().model, seed=7)
    reference.build()
    images = random_images(8, seed=3)
    images[4:] = 1e5
    # Per-replica BatchNorm, so that replica 0's statistics (and gradients) stay finite.
    gan = _make(two_replicas, reference, synchronized=False, precision="mixed_float16",
                loss_scale=1024.0)  # fmt: skip
    g_before = [v.numpy() for v in gan.generator.trainable_variables]
    d_before = [v.numpy() for v in gan.discriminator.trainable_variables]
    gan.fit(batches(images, 8), epochs=1, verbose=0)
    assert _read(gan.d_optimizer.dynamic_scale) == 512.0
    assert _read(gan.g_optimizer.dynamic_scale) == 1024.0
    assert _read(gan.d_optimizer.iterations) == 0
    assert _read(gan.g_optimizer.iterations) == 1
    for a, v in zip(d_before, gan.discriminator.trainable_variables, strict=True):
        np.testing.assert_array_equal(a, v.numpy())  # D untouched (on every replica)
    for a, v in zip(g_before, gan.generator.trainable_variables, strict=True):
        assert np.isfinite(v.numpy()).all() and not np.array_equal(a, v.numpy())  # G trained


def test_jit_compile_with_two_replicas_is_a_clear_error(two_replicas):
    with two_replicas.scope():
        gan = DCGAN.from_model_config(tiny_config().model, seed=7)
    with pytest.raises(ValueError, match="jit_compile=True does not work with 2 replicas"):
        gan.compile(jit_compile=True)


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
