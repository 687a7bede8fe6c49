"""The R1 gradient penalty on D: the formula, the step that uses it, its setting and its checks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dcgan import DCGAN, augment, get_config, losses
from keras_dcgan.config import ModelConfig, check_r1_gamma
from tests.helpers import batches, random_images, run_serialization_test, tiny_config


def test_penalty_is_half_gamma_times_the_squared_gradient_norm_per_example():
    grads = np.random.default_rng(0).normal(size=(3, 4, 4, 2)).astype("float32")
    expected = 0.5 * 2.5 * np.sum(grads.astype(np.float64) ** 2, axis=(1, 2, 3))
    np.testing.assert_allclose(losses.r1_penalty(grads, 2.5), expected, rtol=1e-5)
    np.testing.assert_array_equal(losses.r1_penalty(np.zeros((2, 4, 4, 1)), 10.0), [0.0, 0.0])


@pytest.mark.parametrize("bad", [-0.5, float("nan"), float("inf"), "1", True, None])
def test_bad_gammas_are_refused_everywhere(bad):
    for make in (
        lambda: check_r1_gamma(bad),
        lambda: ModelConfig(r1_gamma=bad),
        lambda: DCGAN.from_model_config(tiny_config().model, r1_gamma=bad),
    ):
        with pytest.raises(ValueError, match="r1_gamma must be"):
            make()


def test_only_the_digits_default_penalises_the_paper_presets_do_not():
    assert get_config("digits32").model.r1_gamma == 0.1
    for preset in ("paper64", "paper32", "half64", "tiny"):
        assert get_config(preset).model.r1_gamma == 0.0
    assert get_config("tiny", r1_gamma=1).model.r1_gamma == 1.0


def _gan(r1_gamma, augment=""):
    gan = DCGAN.from_model_config(tiny_config().model, seed=0, augment=augment, r1_gamma=r1_gamma)
    gan.compile(g_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1))
    gan.build()
    return gan


def _twin(gan, r1_gamma):
    twin = _gan(r1_gamma, gan.augment)
    twin.set_weights(gan.get_weights())
    twin.seed_generator.state.assign(gan.seed_generator.state)
    return twin


def _hand_d_update(ref, real, gamma, second_order=True):
    """D's loss and SGD(0.1)-updated weights by hand: BCE plus gamma/2 ||dD(x)/dx||^2."""
    z = keras.random.uniform((len(real), ref.z_dim), -1, 1, seed=ref.seed_generator)
    fake = ref.generator(z, training=True)
    d_vars = ref.discriminator.trainable_variables
    with tf.GradientTape() as tape:
        with tf.GradientTape() as inner:
            inner.watch(real)
            real_logits = ref.discriminator(real, training=True)
            total = tf.reduce_sum(real_logits)
        grads = inner.gradient(total, real)
        if not second_order:
            grads = tf.stop_gradient(grads)
        penalty = 0.5 * gamma * tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])
        fake_logits = ref.discriminator(fake, training=True)
        loss = tf.reduce_mean(losses.discriminator_loss(real_logits, fake_logits) + penalty)
    updated = [v - 0.1 * g for v, g in zip(d_vars, tape.gradient(loss, d_vars), strict=True)]
    return float(loss), float(tf.reduce_mean(penalty)), [u.numpy() for u in updated]


def test_penalised_step_matches_a_hand_computed_one_including_the_second_order_term():
    """D's loss gains gamma/2 ||dD(x)/dx||^2 at the real images, and D's update differentiates
    through that input gradient (a stopped inner gradient would give other weights)."""
    gamma = 5.0
    gan = _gan(gamma)
    real = tf.constant(random_images(8))
    expected_loss, expected_penalty, expected_d = _hand_d_update(_twin(gan, gamma), real, gamma)
    _, _, first_order_d = _hand_d_update(_twin(gan, gamma), real, gamma, second_order=False)

    logs = gan.train_step(real)
    assert set(logs) == {"d_loss", "g_loss", "d_real", "d_fake", "r1_penalty"}
    np.testing.assert_allclose(float(logs["d_loss"]), expected_loss, rtol=1e-5)
    np.testing.assert_allclose(float(logs["r1_penalty"]), expected_penalty, rtol=1e-5)
    assert expected_penalty > 1e-3  # the penalty is a real part of the loss
    got_d = [v.numpy() for v in gan.discriminator.trainable_variables]
    for got, want in zip(got_d, expected_d, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    gap = max(np.max(np.abs(a - b)) for a, b in zip(expected_d, first_order_d, strict=True))
    assert gap > 1e-4


def test_without_gamma_the_step_and_its_logs_are_the_papers():
    gan = _gan(0.0)
    assert gan.r1_tracker is None
    penalised = _twin(gan, 5.0)
    real = tf.constant(random_images(8))
    logs = gan.train_step(real)
    assert "r1_penalty" not in logs
    assert abs(float(penalised.train_step(real)["d_loss"]) - float(logs["d_loss"])) > 1e-3


def test_penalty_is_taken_at_the_augmented_images_d_sees():
    """With DiffAugment, the penalty is of D's gradient at the augmented real images (as in
    StyleGAN2-ADA); the draws stay in step with the unpenalised model's."""
    gamma = 5.0
    gan = _gan(gamma, augment="translation,cutout")
    twin = _twin(gan, gamma)
    real = tf.constant(random_images(8))
    policy = ("translation", "cutout")
    keras.random.uniform((8, twin.z_dim), -1, 1, seed=twin.seed_generator)  # the noise draw
    seen = augment.apply(real, policy, augment.draw(policy, 8, 32, twin.seed_generator))
    with tf.GradientTape() as tape:
        tape.watch(seen)
        total = tf.reduce_sum(twin.discriminator(seen, training=True))
    expected = float(tf.reduce_mean(losses.r1_penalty(tape.gradient(total, seen), gamma)))
    np.testing.assert_allclose(float(gan.train_step(real)["r1_penalty"]), expected, rtol=1e-5)


def test_gamma_survives_config_and_keras_file_round_trips(tmp_path):
    gan = _gan(2.0)
    gan.fit(batches(random_images(16), 8), epochs=1, verbose=0)
    assert run_serialization_test(gan).r1_gamma == 2.0
    loaded = run_serialization_test(gan, tmp_path)
    assert loaded.r1_gamma == 2.0
    history = loaded.fit(batches(random_images(16), 8), epochs=1, verbose=0)
    assert np.all(np.isfinite(history.history["r1_penalty"]))
