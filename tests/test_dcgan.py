"""The DCGAN model: the train step, fit() on every dataset form, bad input, save/load."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dcgan import DCGAN, losses
from tests.helpers import (
    batches,
    random_images,
    run_serialization_test,
    tiny_config,
    tiny_gan,
    variable_values,
)

METRICS = {"d_loss", "g_loss", "d_real", "d_fake"}


def _clone(gan):
    twin = DCGAN.from_config(gan.get_config())
    twin.compile()
    twin.build()
    twin.generator.set_weights(gan.generator.get_weights())
    twin.discriminator.set_weights(gan.discriminator.get_weights())
    twin.seed_generator.state.assign(gan.seed_generator.state)
    return twin


def test_train_step_matches_the_papers_procedure():
    """Recomputes one iteration by hand: D on real and fake in separate passes, then G against
    the updated D on the same fakes, non-saturating loss, all from logits."""
    gan = tiny_gan()
    ref = _clone(gan)
    real = tf.constant(random_images(8))

    z = keras.random.uniform((8, ref.z_dim), -1, 1, seed=ref.seed_generator)
    fake = ref.generator(z, training=True)
    real_logits = ref.discriminator(real, training=True)
    fake_logits = ref.discriminator(fake, training=True)
    expected_d = np.mean(losses.discriminator_loss(real_logits, fake_logits))
    # A single concatenated pass would give different BatchNorm statistics, hence logits.
    both = ref.discriminator(tf.concat([real, fake], 0), training=True)
    assert not np.allclose(both[:8], real_logits, atol=1e-4)

    logs = gan.train_step(real)
    assert set(logs) == METRICS
    np.testing.assert_allclose(float(logs["d_loss"]), expected_d, rtol=1e-5)
    np.testing.assert_allclose(float(logs["d_real"]), np.mean(tf.sigmoid(real_logits)), rtol=1e-5)
    np.testing.assert_allclose(float(logs["d_fake"]), np.mean(tf.sigmoid(fake_logits)), rtol=1e-5)
    # G's loss is judged by the UPDATED D (its weights now are the post-update ones).
    ref.discriminator.set_weights(gan.discriminator.get_weights())
    expected_g = np.mean(losses.generator_loss(ref.discriminator(fake, training=True)))
    np.testing.assert_allclose(float(logs["g_loss"]), expected_g, rtol=1e-5)


def test_train_step_updates_both_networks_once():
    gan = tiny_gan()
    before_g = [v.numpy() for v in gan.generator.trainable_variables]
    before_d = [v.numpy() for v in gan.discriminator.trainable_variables]
    gan.train_step(tf.constant(random_images(8)))
    assert int(gan.g_optimizer.iterations) == int(gan.d_optimizer.iterations) == 1
    for b, v in zip(
        before_g + before_d,
        gan.generator.trainable_variables + gan.discriminator.trainable_variables,
        strict=True,
    ):
        assert not np.allclose(b, v.numpy())


@pytest.mark.parametrize(
    "wrap",
    [
        lambda x: x,
        lambda x: (x, tf.zeros(tf.shape(x)[0], tf.int64)),
        lambda x: {"image": x, "label": tf.zeros(tf.shape(x)[0], tf.int64)},
    ],
    ids=["images", "image_label", "dict"],
)
def test_fit_on_every_dataset_form(wrap):
    gan = tiny_gan()
    ds = batches(random_images(16), 8).map(wrap)
    history = gan.fit(ds, epochs=2, verbose=0)
    assert set(history.history) == METRICS
    assert all(np.isfinite(v).all() for v in history.history.values())
    assert int(gan.g_optimizer.iterations) == 4


def _keep(batch):
    return True


def test_a_dataset_of_unknown_length_costs_no_phantom_step():
    """fit() learns the end of an unknown-length dataset from a failing get_next; that failed
    step must change nothing (it used to advance the iteration counters and the noise seed)."""
    data = batches(random_images(24, seed=1), 8)
    assert int(data.filter(_keep).cardinality()) == tf.data.UNKNOWN_CARDINALITY
    runs = []
    for ds in (data, data.filter(_keep)):
        keras.utils.set_random_seed(0)
        gan = tiny_gan()
        gan.fit(ds, epochs=2, verbose=0)
        runs.append(gan)
    known, unknown = runs
    assert int(unknown.g_optimizer.iterations) == int(unknown.d_optimizer.iterations) == 6
    np.testing.assert_array_equal(unknown.seed_generator.state.numpy(), [0, 6])
    for a, b in zip(variable_values(known), variable_values(unknown), strict=True):
        np.testing.assert_array_equal(a, b)


def test_fit_builds_an_unbuilt_model_and_runs_keras_callbacks():
    gan = DCGAN.from_config(tiny_gan().get_config())
    gan.compile()
    seen = []
    cb = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(e))
    gan.fit(batches(random_images(8), 8), epochs=3, verbose=0, callbacks=[cb])
    assert seen == [0, 1, 2]


@pytest.mark.parametrize(
    "dataset,message",
    [
        (tf.data.Dataset.from_tensor_slices(random_images(8)), "rank 3.*is the dataset batched"),
        (batches(random_images(8, channels=1), 4), "Expected 3 channel"),
        (batches(random_images(8, size=28), 4), "size 32x32"),
        (batches((random_images(8) * 127 + 127).astype("uint8"), 4), "float images.*uint8"),
        (batches(random_images(8), 4).take(0), "empty"),
        (tf.data.Dataset.from_tensor_slices({"img": random_images(8)}).batch(4), "'image' key"),
    ],
    ids=["unbatched", "channels", "size", "uint8", "empty", "dict_without_image"],
)
def test_bad_datasets_fail_with_one_line(dataset, message):
    gan = tiny_gan()
    with pytest.raises(ValueError, match=message) as info:
        gan.fit(dataset, epochs=1, verbose=0)
    assert "\n" not in str(info.value)


def test_train_step_checks_what_it_is_given_when_traced():
    """Inputs that bypass fit()'s dataset check (e.g. a Python generator) are checked too."""
    gan = tiny_gan()
    with pytest.raises(ValueError, match="the input yields uint8"):
        gan.train_step(tf.zeros((4, 32, 32, 3), tf.uint8))
    with pytest.raises(ValueError, match="Expected 3 channel.*the input yields 1"):
        gan.train_step(tf.zeros((4, 32, 32, 1)))


def test_compile_defaults_to_the_papers_adam_and_rejects_keras_losses():
    gan = tiny_gan()
    for opt in (gan.g_optimizer, gan.d_optimizer):
        assert isinstance(opt, keras.optimizers.Adam)
        assert float(opt.learning_rate) == pytest.approx(2e-4)
        assert float(opt.beta_1) == pytest.approx(0.5)
    assert gan.g_optimizer is not gan.d_optimizer
    # model.optimizer is the pair (what Keras' callbacks use), not a stray default RMSprop
    assert gan.optimizer.optimizers == [gan.g_optimizer, gan.d_optimizer]
    assert not any(isinstance(v, keras.optimizers.RMSprop) for v in vars(gan).values())
    with pytest.raises(ValueError, match="takes g_optimizer and d_optimizer"):
        gan.compile(optimizer="adam")


def test_samples_by_seed_are_deterministic_and_batch_independent():
    gan = tiny_gan()
    one = np.asarray(gan.sample(seeds=[5]))
    many = np.asarray(gan.sample(seeds=[1, 5, 9]))
    np.testing.assert_allclose(many[1], one[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(many[0], many[1])
    assert many.min() >= -1 and many.max() <= 1


def test_keras_save_load_restores_weights_optimizers_and_noise(tmp_path):
    gan = tiny_gan()
    ds = batches(random_images(16), 8)
    gan.fit(ds, epochs=1, verbose=0)
    loaded = run_serialization_test(gan, tmp_path)
    for name in ("generator", "discriminator"):
        a, b = variable_values(getattr(gan, name)), variable_values(getattr(loaded, name))
        assert len(a) == len(b)
        for va, vb in zip(a, b, strict=True):
            np.testing.assert_array_equal(va, vb)
    for name in ("g_optimizer", "d_optimizer"):
        a, b = getattr(gan, name).variables, getattr(loaded, name).variables
        assert int(getattr(loaded, name).iterations) == 2
        for va, vb in zip(a, b, strict=True):
            np.testing.assert_array_equal(va.numpy(), vb.numpy())
    np.testing.assert_array_equal(
        gan.seed_generator.state.numpy(), loaded.seed_generator.state.numpy()
    )
    # Continuing both gives the same weights: nothing of the training state was lost.
    gan.fit(ds, epochs=1, verbose=0)
    loaded.fit(ds, epochs=1, verbose=0)
    for a, b in zip(gan.generator.get_weights(), loaded.generator.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _sequential_networks(z_dim=12, with_input=True, d_units=1):
    layers = keras.layers
    g = keras.Sequential(
        ([keras.Input((z_dim,))] if with_input else [])
        + [
            layers.Dense(4 * 4 * 16),
            layers.Reshape((4, 4, 16)),
            layers.ReLU(),
            layers.Conv2DTranspose(8, 4, strides=2, padding="same"),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="tanh"),
        ],
        name="my_g",
    )
    d = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            layers.Conv2D(8, 4, strides=2, padding="same"),
            layers.LeakyReLU(0.2),
            layers.Flatten(),
            layers.Dense(d_units),
        ],
        name="my_d",
    )
    return g, d


def test_any_keras_models_mapping_z_to_images_and_images_to_logits_train(tmp_path):
    g, d = _sequential_networks()
    gan = DCGAN(g, d, seed=0)
    assert (gan.z_dim, gan.image_shape) == (12, (16, 16, 3))
    gan.compile()
    before = variable_values(gan)
    history = gan.fit(batches(random_images(16, size=16), 8), epochs=1, verbose=0)
    assert np.isfinite(history.history["g_loss"]).all()
    assert any(np.any(a != b) for a, b in zip(before, variable_values(gan), strict=True))
    samples = gan.sample(seeds=[1, 2])
    assert samples.shape == (2, 16, 16, 3)
    gan.save(str(tmp_path / "mine.keras"))
    loaded = keras.models.load_model(str(tmp_path / "mine.keras"))
    np.testing.assert_allclose(loaded.sample(seeds=[1, 2]), samples, atol=1e-6)


@pytest.mark.parametrize(
    "networks,message",
    [
        (dict(with_input=False), r"latent size.*keras.Input\(\(z_dim,\)\)"),
        (dict(d_units=10), r"shape \(None, 10\), not one logit per image \[N, 1\]"),
    ],
    ids=["generator_without_input", "discriminator_with_10_outputs"],
)
def test_networks_of_the_wrong_form_are_refused_saying_what_is_required(networks, message):
    with pytest.raises(ValueError, match=message):
        DCGAN(*_sequential_networks(**networks))


def test_dcgan_export_writes_the_serving_saved_model(tmp_path):
    from keras_dcgan import images as image_utils

    gan = tiny_gan(seed=2)
    path = gan.export(str(tmp_path / "dcgan" / "1"))
    served = tf.saved_model.load(path).signatures["from_seeds"](seeds=tf.constant([4, 9], tf.int64))
    expected = image_utils.to_uint8(gan.sample(seeds=[4, 9]).numpy())
    np.testing.assert_array_equal(served["images"].numpy(), expected)
    assert sorted(tf.saved_model.load(path).signatures) == [
        "from_seeds", "interpolate", "serving_default"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="already exists"):
        gan.export(path)
    with pytest.raises(ValueError, match="format='tf_saved_model'"):
        gan.export(str(tmp_path / "x"), format="onnx")


# ------------------------------------------------- d_batch="concatenated" (the blog's ablation)
def _sgd_gan(**recipe):
    gan = DCGAN.from_model_config(tiny_config().model, seed=0, **recipe)
    gan.compile(g_optimizer=keras.optimizers.SGD(0.1), d_optimizer=keras.optimizers.SGD(0.1))
    gan.build()
    return gan


def _hand_concatenated_step(ref, real, gamma=0.0):
    """One iteration by hand with D called ONCE on concat([real, fake]) and its logits split
    (plus, with `gamma`, R1 at the real half); SGD(0.1) for both networks. Returns D's loss, D's
    mean output on the real rows, and G's and D's updated trainable weights."""
    n = len(real)
    z = keras.random.uniform((n, ref.z_dim), -1, 1, seed=ref.seed_generator)
    d_vars, g_vars = ref.discriminator.trainable_variables, ref.generator.trainable_variables
    with tf.GradientTape() as g_tape:
        fake = ref.generator(z, training=True)
        with g_tape.stop_recording():
            with tf.GradientTape() as d_tape:
                both = tf.concat([real, fake], 0)
                with tf.GradientTape() as inner:
                    inner.watch(both)
                    logits = ref.discriminator(both, training=True)
                    total = tf.reduce_sum(logits[:n])
                grads = inner.gradient(total, both)[:n]
                penalty = 0.5 * gamma * tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])
                d_loss = tf.reduce_mean(losses.discriminator_loss(logits[:n], logits[n:]) + penalty)
            for v, g in zip(d_vars, d_tape.gradient(d_loss, d_vars), strict=True):
                v.assign_sub(0.1 * g)
        g_loss = tf.reduce_mean(losses.generator_loss(ref.discriminator(fake, training=True)))
    for v, g in zip(g_vars, g_tape.gradient(g_loss, g_vars), strict=True):
        v.assign_sub(0.1 * g)
    d_real = float(tf.reduce_mean(tf.sigmoid(logits[:n])))
    return float(d_loss), d_real, [v.numpy() for v in g_vars + d_vars]


@pytest.mark.parametrize("gamma", [0.0, 5.0], ids=["plain", "r1"])
def test_concatenated_d_batch_matches_a_hand_written_step(gamma):
    """d_batch="concatenated": D's update is ONE forward pass on concat([real, fake]) (BatchNorm
    statistics of both), its logits split; with R1, the penalty is on the real half's gradient.
    The separate (default) step gives another loss."""
    gan = _sgd_gan(d_batch="concatenated", r1_gamma=gamma)
    twin = _sgd_gan(d_batch="concatenated", r1_gamma=gamma)
    twin.set_weights(gan.get_weights())
    real = tf.constant(random_images(8))
    separate = _sgd_gan(r1_gamma=gamma)
    separate.set_weights(gan.get_weights())
    expected_loss, expected_real, expected_weights = _hand_concatenated_step(twin, real, gamma)

    logs = gan.train_step(real)
    np.testing.assert_allclose(float(logs["d_loss"]), expected_loss, rtol=1e-5)
    np.testing.assert_allclose(float(logs["d_real"]), expected_real, rtol=1e-5)
    got = gan.generator.trainable_variables + gan.discriminator.trainable_variables
    for variable, want in zip(got, expected_weights, strict=True):
        np.testing.assert_allclose(variable.numpy(), want, rtol=1e-4, atol=1e-6)
    assert abs(float(separate.train_step(real)["d_loss"]) - expected_loss) > 1e-3


def test_d_batch_defaults_to_separate_round_trips_and_refuses_bad_values():
    from keras_dcgan.config import PRESETS, ModelConfig, get_config
    from keras_dcgan.errors import UserError

    assert tiny_gan().d_batch == "separate"
    assert all(get_config(name).model.d_batch == "separate" for name in PRESETS)
    gan = tiny_gan(d_batch="concatenated")
    assert gan.d_batch == "concatenated" and gan.get_config()["d_batch"] == "concatenated"
    assert run_serialization_test(gan).d_batch == "concatenated"
    config = get_config("tiny", d_batch="concatenated")
    assert type(config).from_json(config.to_json()).model.d_batch == "concatenated"
    assert "d_batch" not in config.model.architecture()  # a recipe field, like r1_gamma
    for make in (
        lambda: ModelConfig(d_batch="mixed"),
        lambda: DCGAN.from_model_config(tiny_config().model, d_batch="mixed"),
    ):
        with pytest.raises(UserError, match="d_batch must be one of separate, concatenated"):
            make()


def test_the_blogs_generator_and_relu_discriminator_train():
    """blog64's per-feature projection BatchNorm and N(0, 0.01), with ReLU in D (the blog's
    ablation), on the tiny model: one step updates both networks with finite losses."""
    gan = tiny_gan(projection_bn="feature", init_stddev=0.01, d_leaky_slope=0)
    before = [v.numpy() for v in gan.generator.trainable_variables]
    logs = gan.train_step(tf.constant(random_images(8)))
    assert all(np.isfinite(float(v)) for v in logs.values())
    after = gan.generator.trainable_variables
    assert all(not np.allclose(b, a.numpy()) for b, a in zip(before, after, strict=True))
