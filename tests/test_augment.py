"""DiffAugment of D's inputs: the transformations against NumPy, the draws, the policy, the step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dcgan import DCGAN, augment, get_config, losses
from keras_dcgan.config import ModelConfig
from tests.helpers import batches, random_images, run_serialization_test, tiny_config


def _numpy_translate(images, shifts, fill=-1.0):
    out = np.full_like(images, fill)
    h, w = images.shape[1:3]
    for b, (dy, dx) in enumerate(shifts):
        for y in range(h):
            for x in range(w):
                if 0 <= y - dy < h and 0 <= x - dx < w:
                    out[b, y, x] = images[b, y - dy, x - dx]
    return out


def _numpy_cutout(images, corners, size, fill=-1.0):
    out = images.copy()
    for b, (y, x) in enumerate(corners):
        out[b, max(y, 0) : max(y + size, 0), max(x, 0) : max(x + size, 0)] = fill
    return out


def test_translate_matches_numpy_including_the_largest_shifts():
    images = random_images(6, size=16, channels=3, seed=1)
    shifts = np.array([[0, 0], [2, -2], [-2, 1], [16, 0], [0, -16], [15, 15]], np.int32)
    got = augment.translate(tf.constant(images), tf.constant(shifts)).numpy()
    np.testing.assert_array_equal(got, _numpy_translate(images, shifts))
    np.testing.assert_array_equal(got[0], images[0])  # no shift: the image itself


def test_cutout_matches_numpy_also_across_the_border():
    images = random_images(4, size=16, channels=1, seed=2)
    corners = np.array([[0, 0], [-2, 5], [13, 13], [6, -3]], np.int32)
    got = augment.cutout(tf.constant(images), tf.constant(corners), 4).numpy()
    np.testing.assert_array_equal(got, _numpy_cutout(images, corners, 4))
    assert np.sum(got[0] == -1.0) == 16 and np.sum(got[2] == -1.0) == 9  # 4x4, then cut to 3x3


def test_gradients_reach_the_pixels_that_stay_in_the_picture():
    """G learns through the augmentation: d(sum of output)/d(input) is 1 exactly where an input
    pixel lands inside the image and 0 where it is shifted out or cut."""
    x = tf.constant(random_images(2, size=8, channels=1))
    shifts = tf.constant([[3, -2], [0, 0]], tf.int32)
    corners = tf.constant([[0, 0], [2, 2]], tf.int32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(augment.cutout(augment.translate(x, shifts), corners, 3))
    grad = tape.gradient(total, x).numpy()[..., 0]
    ones = np.ones((2, 8, 8, 1), np.float32)
    kept = _numpy_cutout(_numpy_translate(ones, shifts.numpy(), 0.0), corners.numpy(), 3, 0.0)
    # The output pixel (y, x) comes from input (y - dy, x - dx): shift the mask back.
    expected = _numpy_translate(kept, -shifts.numpy(), 0.0)[..., 0]
    np.testing.assert_array_equal(grad, expected)
    assert grad[1].sum() == 64 - 9 and grad[0].sum() < 64 - 9


def test_draws_cover_their_ranges_and_follow_the_seed():
    policy = ("translation", "cutout")
    params = augment.draw(policy, 4000, 32, keras.random.SeedGenerator(0))
    shifts, corners = params["translation"].numpy(), params["cutout"].numpy()
    assert shifts.min() == -4 and shifts.max() == 4  # 1/8 of 32, both ends reached
    size = augment.cutout_size(32)
    assert size == 8
    centres = corners + size // 2
    assert centres.min() == 0 and centres.max() == 31  # the square's centre anywhere
    again = augment.draw(policy, 4000, 32, keras.random.SeedGenerator(0))
    np.testing.assert_array_equal(again["translation"], shifts)


@pytest.mark.parametrize(
    "policy,expected",
    [("", ()), (None, ()), ("none", ()), ("translation", ("translation",)),
     (" translation , cutout ", ("translation", "cutout")),
     ("cutout,translation", ("cutout", "translation"))],
)  # fmt: skip
def test_parse_policy(policy, expected):
    assert augment.parse_policy(policy) == expected


@pytest.mark.parametrize(
    "policy,message",
    [("color", "Unknown augmentation 'color'"), ("cutout,cutout", "twice"),
     (["cutout"], "comma-separated string")],
)  # fmt: skip
def test_bad_policies_are_refused_with_the_choices(policy, message):
    with pytest.raises(ValueError, match=message):
        augment.parse_policy(policy)
    with pytest.raises(ValueError, match=message):
        ModelConfig(augment=policy)


def test_only_the_digits_default_augments_the_paper_presets_do_not():
    assert get_config("digits32").model.augment == "translation,cutout"
    for preset in ("paper64", "paper32", "half64", "tiny"):
        assert get_config(preset).model.augment == ""


def _gan(augment_policy, seed=0):
    gan = DCGAN.from_model_config(tiny_config().model, seed=seed, augment=augment_policy)
    gan.compile()
    gan.build()
    return gan


def test_augmented_step_matches_a_hand_computed_one():
    """D sees augmented real and fake images (fresh draws for each, and again for G's update),
    drawn from the model's seed generator right after the noise."""
    gan = _gan("translation,cutout")
    ref = DCGAN.from_config(gan.get_config())
    ref.compile()
    ref.build()
    ref.set_weights(gan.get_weights())
    ref.seed_generator.state.assign(gan.seed_generator.state)
    real = tf.constant(random_images(8))
    policy = ("translation", "cutout")

    def aug(images):
        return augment.apply(images, policy, augment.draw(policy, 8, 32, ref.seed_generator))

    z = keras.random.uniform((8, ref.z_dim), -1, 1, seed=ref.seed_generator)
    fake = ref.generator(z, training=True)
    real_logits = ref.discriminator(aug(real), training=True)
    fake_logits = ref.discriminator(aug(fake), training=True)
    expected_d = np.mean(losses.discriminator_loss(real_logits, fake_logits))
    g_view = aug(fake)

    logs = gan.train_step(real)
    np.testing.assert_allclose(float(logs["d_loss"]), expected_d, rtol=1e-5)
    ref.discriminator.set_weights(gan.discriminator.get_weights())
    expected_g = np.mean(losses.generator_loss(ref.discriminator(g_view, training=True)))
    np.testing.assert_allclose(float(logs["g_loss"]), expected_g, rtol=1e-5)
    # And it is not the plain step: the same start without augmentation gives another loss.
    plain = _gan("")
    plain.set_weights(ref.get_weights())
    assert abs(float(plain.train_step(real)["d_loss"]) - float(logs["d_loss"])) > 1e-3


def test_augmented_training_continues_identically_after_save_and_load(tmp_path):
    """The draws come from the saved seed state: a loaded model goes on exactly as the original."""
    gan = _gan("translation,cutout")
    ds = batches(random_images(16), 8)
    gan.fit(ds, epochs=1, verbose=0)
    loaded = run_serialization_test(gan, tmp_path)
    assert loaded.augment == "translation,cutout"
    gan.fit(ds, epochs=1, verbose=0)
    loaded.fit(ds, epochs=1, verbose=0)
    for a, b in zip(gan.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
