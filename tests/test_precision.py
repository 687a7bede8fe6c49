"""Mixed precision and XLA: float16 with a dynamic loss scale per network, bfloat16, jit_compile.

Tolerances: one float16 step is compared with one float32 step from the same weights and noise,
with SGD (the update IS the gradient, times the learning rate). At initialisation D's logits are
alike for every image, so the gradient reaching each BatchNorm is nearly constant over the batch
and mostly cancels in BatchNorm's backward pass: what is left carries the rounding of 11-bit
float16 (8-bit bfloat16) activations, amplified. Measured relative L2 distance from float32's
update, per tensor, on two initialisations: float16 0.001-0.08 for D and 0.03-0.19 for G
(bfloat16 0.007-0.17 and 0.11-0.30). The test asks at most 0.12 for D and 0.3 for G, and the mean
|update| of each network within 10% of float32's. Without loss scaling done right the updates
come out 1/32768 (under Adam: 0.37x) of float32's, far outside.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dcgan import DCGAN
from keras_dcgan.models import Discriminator, Generator
from keras_dcgan.training.checkpoints import make_checkpoint
from tests.helpers import batches, random_images, tiny_config

LSO = keras.optimizers.LossScaleOptimizer


@pytest.fixture
def global_policy():
    """Sets the global Keras policy for one test, and restores float32 after it."""
    yield keras.mixed_precision.set_global_policy
    keras.mixed_precision.set_global_policy("float32")


def _gan(precision, reference=None, g_optimizer=None, d_optimizer=None, cls=DCGAN, **compile_kw):
    gan = cls.from_model_config(tiny_config().model, seed=7, precision=precision)
    gan.compile(g_optimizer=g_optimizer, d_optimizer=d_optimizer, **compile_kw)
    gan.build()
    if reference is not None:
        gan.generator.set_weights(reference.generator.get_weights())
        gan.discriminator.set_weights(reference.discriminator.get_weights())
    return gan


def _sgd():
    return {"g_optimizer": keras.optimizers.SGD(0.1), "d_optimizer": keras.optimizers.SGD(0.1)}


def _trainable(network):
    return [v.numpy() for v in network.trainable_variables]


def _updates(gan, reference):
    return [
        after - before
        for after, before in zip(
            _trainable(gan.generator) + _trainable(gan.discriminator),
            _trainable(reference.generator) + _trainable(reference.discriminator),
            strict=True,
        )
    ]


def _mean_abs(arrays):
    return float(np.mean([np.mean(np.abs(a)) for a in arrays]))


def test_float16_step_matches_float32_step_from_the_same_weights():
    reference = _gan("float32")
    images = tf.constant(random_images(8, seed=3))
    full = _gan("float32", reference, **_sgd())
    half = _gan("mixed_float16", reference, **_sgd())
    assert isinstance(half.g_optimizer, LSO) and isinstance(half.d_optimizer, LSO)
    for optimizer in (half.g_optimizer, half.d_optimizer):
        optimizer.dynamic_scale.assign(1024.0)  # no overflow in this first step
    full_logs = full.train_step(images)
    half_logs = half.train_step(images)
    assert int(half.g_optimizer.iterations) == int(half.d_optimizer.iterations) == 1
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        assert float(half_logs[key]) == pytest.approx(float(full_logs[key]), rel=1e-2)
        assert half_logs[key].dtype == tf.float32
    full_updates, half_updates = _updates(full, reference), _updates(half, reference)
    n_g = len(reference.generator.trainable_variables)
    for i, (a, b) in enumerate(zip(half_updates, full_updates, strict=True)):
        distance = np.linalg.norm(a - b) / np.linalg.norm(b)
        assert distance < (0.3 if i < n_g else 0.12), (i, distance)
    for part in (slice(None, n_g), slice(n_g, None)):
        ratio = _mean_abs(half_updates[part]) / _mean_abs(full_updates[part])
        assert 0.9 < ratio < 1.1, ratio
    # G's output, D's logits and BatchNorm's statistics stay float32.
    z = keras.random.uniform((4, half.z_dim), -1, 1)
    assert half.generator(z, training=True).dtype == tf.float32
    assert half.discriminator(images, training=True).dtype == tf.float32
    assert all(v.dtype == "float32" for v in half.generator.variables)
    assert half.generator.get_layer("up1_conv").compute_dtype == "float16"


def test_global_float16_policy_gets_loss_scaling_from_compile_and_with_user_optimizers(
    global_policy,
):
    """The issue's bar: under `set_global_policy("mixed_float16")`, a default-compiled DCGAN
    scales both losses, and one given LossScaleOptimizers by the user updates G by 0.7x-1.4x of
    float32's mean |dW| in 4 steps (0.37x when the train step did not scale the losses)."""
    reference = _gan("float32")
    data = batches(random_images(32, seed=5), 8)

    def four_steps(gan):
        history = gan.fit(data, epochs=1, verbose=0)
        assert all(np.isfinite(v).all() for v in history.history.values())
        return _mean_abs(_updates(gan, reference)[: len(gan.generator.trainable_variables)])

    full = four_steps(_gan("float32", reference))
    global_policy("mixed_float16")
    mc = tiny_config().model
    default = DCGAN(Generator.from_model_config(mc), Discriminator.from_model_config(mc), seed=7)
    default.compile()
    default.build()
    assert default.generator.compute_dtype == "float16"
    assert isinstance(default.g_optimizer, LSO) and isinstance(default.d_optimizer, LSO)
    user = _gan(
        None,
        reference,
        g_optimizer=LSO(keras.optimizers.Adam(2e-4, beta_1=0.5)),
        d_optimizer=LSO(keras.optimizers.Adam(2e-4, beta_1=0.5)),
    )
    assert user.generator.get_layer("up1_conv").compute_dtype == "float16"
    assert 0.7 < four_steps(user) / full < 1.4, four_steps.__doc__


def _set_scales(gan, g=None, d=None):
    if g is not None:
        gan.g_optimizer.dynamic_scale.assign(g)
    if d is not None:
        gan.d_optimizer.dynamic_scale.assign(d)


@pytest.mark.parametrize("network", ["d", "g"])
def test_an_overflowing_step_is_skipped_for_that_network_and_halves_its_scale(network):
    """A loss scale of 2^60 overflows float16's gradients (max 65504): that network's weights,
    Adam moments and iteration count stay as they were and its scale halves; the other network
    trains normally."""
    gan = _gan("mixed_float16")
    _set_scales(gan, g=1024.0, d=1024.0)  # 2^15 overflows in the tiny model's first step
    gan.train_step(tf.constant(random_images(8, seed=1)))  # Adam moments are non-zero now
    huge, fine = 2.0**60, 1024.0
    _set_scales(gan, **({"d": huge, "g": fine} if network == "d" else {"d": fine, "g": huge}))
    skipped = gan.discriminator if network == "d" else gan.generator
    other = gan.generator if network == "d" else gan.discriminator
    optimizer = getattr(gan, f"{network}_optimizer")
    other_optimizer = gan.g_optimizer if network == "d" else gan.d_optimizer
    before = _trainable(skipped)
    moments = [v.numpy() for v in optimizer.inner_optimizer.variables]
    others = _trainable(other)
    logs = gan.train_step(tf.constant(random_images(8, seed=2)))
    for a, v in zip(before, skipped.trainable_variables, strict=True):
        np.testing.assert_array_equal(a, v.numpy())
    for a, v in zip(moments, optimizer.inner_optimizer.variables, strict=True):
        np.testing.assert_array_equal(a, v.numpy())
    assert int(optimizer.iterations) == 1 and int(other_optimizer.iterations) == 2
    assert float(logs[f"{network}_loss_scale"]) == huge / 2
    assert float(optimizer.dynamic_scale) == huge / 2
    assert float(other_optimizer.dynamic_scale) == fine
    for a, v in zip(others, other.trainable_variables, strict=True):
        assert not np.array_equal(a, v.numpy())
    assert all(np.isfinite(v.numpy()).all() for v in gan.variables)
    assert np.isfinite(float(logs["d_loss"])) and np.isfinite(float(logs["g_loss"]))


def test_the_scale_grows_after_its_interval():
    gan = _gan(
        "mixed_float16",
        g_optimizer=LSO(keras.optimizers.Adam(2e-4), initial_scale=256.0, dynamic_growth_steps=3),
        d_optimizer=LSO(keras.optimizers.Adam(2e-4), initial_scale=128.0, dynamic_growth_steps=2),
    )
    scales = []
    for i in range(4):
        logs = gan.train_step(tf.constant(random_images(8, seed=i)))
        scales.append((float(logs["g_loss_scale"]), float(logs["d_loss_scale"])))
    # G doubles after every 3rd good step, D after every 2nd.
    assert scales == [(256, 128), (256, 256), (512, 256), (512, 512)]


def test_bfloat16_trains_with_finite_losses_and_float32_outputs():
    reference = _gan("float32")
    gan = _gan("mixed_bfloat16", reference)
    assert gan.generator.get_layer("up1_conv").compute_dtype == "bfloat16"
    assert not isinstance(gan.g_optimizer, LSO)  # bfloat16 has float32's range: no scaling
    history = gan.fit(batches(random_images(32, seed=5), 8), epochs=2, verbose=0)
    assert set(history.history) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v).all() for v in history.history.values())
    assert int(gan.g_optimizer.iterations) == 8
    assert _mean_abs(_updates(gan, reference)) > 1e-4
    assert all(v.dtype == "float32" for v in gan.generator.variables + gan.discriminator.variables)
    samples = gan.sample(seeds=range(4))
    assert samples.dtype == tf.float32 and -1 <= float(tf.reduce_min(samples))


def test_keras_file_and_checkpoint_keep_the_policy_and_the_scales(tmp_path, global_policy):
    gan = _gan("mixed_float16")
    _set_scales(gan, g=1024.0, d=1024.0)
    gan.fit(batches(random_images(16, seed=5), 8), epochs=1, verbose=0)
    _set_scales(gan, g=512.0, d=2048.0)
    gan.g_optimizer.step_counter.assign(5)
    path = str(tmp_path / "gan.keras")
    gan.save(path)

    global_policy("mixed_bfloat16")  # what is loaded must not depend on the global policy
    loaded = keras.models.load_model(path)
    for network in (loaded.generator, loaded.discriminator):
        assert network.dtype_policy.name == "mixed_float16"
        assert network.get_block(network.block_names[1])[0].compute_dtype == "float16"
    assert float(loaded.g_optimizer.dynamic_scale) == 512.0
    assert float(loaded.d_optimizer.dynamic_scale) == 2048.0
    assert int(loaded.g_optimizer.step_counter) == 5
    for a, b in zip(gan.variables, loaded.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())

    prefix = make_checkpoint(gan).save(str(tmp_path / "ckpt" / "ckpt"))
    global_policy("float32")
    fresh = _gan("mixed_float16")
    make_checkpoint(fresh).restore(prefix).assert_existing_objects_matched()
    assert float(fresh.g_optimizer.dynamic_scale) == 512.0
    assert float(fresh.d_optimizer.dynamic_scale) == 2048.0
    assert int(fresh.g_optimizer.step_counter) == 5
    assert int(fresh.g_optimizer.iterations) == int(gan.g_optimizer.iterations) == 2
    for a, b in zip(gan.variables, fresh.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # The same checkpoint loads into a float32 model (sampling, export): the scales are extra.
    plain = _gan("float32")
    make_checkpoint(plain).restore(prefix).assert_existing_objects_matched().expect_partial()
    for a, b in zip(gan.generator.variables, plain.generator.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


class _FixedNoise(DCGAN):
    """XLA's stateless RNG draws other numbers than TF's kernels for the same seed (both are
    uniform), so the XLA comparison feeds both steps the same noise."""

    def _replica_noise(self, batch_size):
        z = np.random.default_rng(11).uniform(-1, 1, (8, self.z_dim)).astype("float32")
        return tf.constant(z)[:batch_size]


def test_xla_step_equals_the_plain_step():
    reference = _gan("float32")
    images = tf.constant(random_images(8, seed=3))
    plain = _gan("float32", reference, cls=_FixedNoise, **_sgd())
    xla = _gan("float32", reference, cls=_FixedNoise, jit_compile=True, **_sgd())
    assert xla.jit_compile and not plain.jit_compile
    data = tf.data.Dataset.from_tensors(images).repeat(2)
    logs = [gan.fit(data, epochs=1, verbose=0).history for gan in (plain, xla)]
    for key in logs[0]:
        assert logs[0][key][-1] == pytest.approx(logs[1][key][-1], rel=1e-4)
    for a, b in zip(_updates(xla, reference), _updates(plain, reference), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4 * max(np.max(np.abs(b)), 1e-3))
    for a, b in zip(xla.variables, plain.variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_samples_and_exports_are_float32_and_uint8_whatever_the_policy(tmp_path):
    from keras_dcgan.serving.export import export_generator

    reference = _gan("float32")
    served = {}
    for precision in ("float32", "mixed_float16", "mixed_bfloat16"):
        gan = _gan(precision, reference)
        samples = gan.sample(seeds=[0, 1])
        assert samples.dtype == tf.float32
        path = export_generator(gan, str(tmp_path / precision), warmup=False)
        outputs = tf.saved_model.load(path).signatures["from_seeds"](
            seeds=tf.constant([0, 1], tf.int64)
        )
        assert outputs["images"].dtype == tf.uint8
        served[precision] = outputs["images"].numpy()
    # The export computes in float32: the same images from every training precision.
    np.testing.assert_array_equal(served["mixed_float16"], served["float32"])
    np.testing.assert_array_equal(served["mixed_bfloat16"], served["float32"])


def test_train_logs_the_loss_scales_and_refuses_to_switch_loss_scaling(tmp_path):
    from keras_dcgan.training import train

    model_dir = str(tmp_path / "run")
    data = batches(random_images(16, seed=5), 8)
    config = tiny_config(steps=2, precision="mixed_float16", num_preview=4)
    result = train(config, model_dir, dataset=data, verbose=0)
    assert isinstance(result.gan.g_optimizer, LSO)
    with open(os.path.join(model_dir, "metrics.csv")) as f:
        header = f.readline().strip().split(",")
        row = dict(zip(header, f.readline().strip().split(","), strict=True))
    assert {"g_loss_scale", "d_loss_scale"} <= set(header)
    assert float(row["g_loss_scale"]) in (2.0**15, 2.0**14, 2.0**13)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(os.path.join(model_dir, "logs", "train"))
    events.Reload()
    tags = set(events.Tags()["tensors"]) | set(events.Tags()["scalars"])
    assert {"epoch_g_loss_scale", "epoch_d_loss_scale"} <= tags
    with pytest.raises(ValueError, match="precision=mixed_float16; continue it with loss scal"):
        train(tiny_config(steps=4, num_preview=4), model_dir, dataset=data, verbose=0)
    # float32 <-> bfloat16 keeps the checkpoint's entries and the logged columns: allowed.
    from keras_dcgan.training.checkpoints import write_config
    from keras_dcgan.training.trainer import _check_resume

    other = str(tmp_path / "other")
    write_config(tiny_config(), other)
    # A trained checkpoint (step > 0): a folder with none may be replaced by any configuration.
    os.makedirs(os.path.join(other, "checkpoints"))
    open(os.path.join(other, "checkpoints", "ckpt-3.index"), "w").close()
    assert _check_resume(tiny_config(precision="mixed_bfloat16"), other)[1] is False
    with pytest.raises(ValueError, match="precision=float32; continue it with loss scaling"):
        _check_resume(tiny_config(precision="mixed_float16"), other)


def test_config_and_compile_reject_what_cannot_run():
    with pytest.raises(ValueError, match="precision must be one of float32, mixed_float16"):
        tiny_config(precision="float16")
    with pytest.raises(ValueError, match="loss_scale_growth_steps must be a positive integer"):
        tiny_config(loss_scale_growth_steps=0)
    with pytest.raises(ValueError, match="jit_compile and deterministic exclude each other"):
        tiny_config(jit_compile=True, deterministic=True)
    with pytest.raises(ValueError, match="precision must be one of"):
        DCGAN.from_model_config(tiny_config().model, precision="fp16")
    opt = keras.optimizers.Adam()
    gan = DCGAN.from_model_config(tiny_config().model, precision="mixed_float16")
    with pytest.raises(ValueError, match="two distinct optimizer instances"):
        gan.compile(g_optimizer=opt, d_optimizer=LSO(opt))


def _graph_flops(function, *specs):
    """FLOPs of the convolutions and matmuls in `function`'s graph, as TF's profiler counts."""
    graph = tf.function(function).get_concrete_function(*specs).graph
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    options["account_type_regexes"] = ["Conv2D.*", "MatMul"]
    return tf.compat.v1.profiler.profile(graph, options=options).total_float_ops


@pytest.mark.parametrize("preset", ["tiny", "half64"])
def test_iteration_flops_agree_with_tfs_count(preset):
    """The bench's FLOP count (`keras_dcgan.models.flops`) against TF's profiler: the forward
    passes exactly; the iteration up to the gradients that the graph of the train step holds and
    TF's runtime prunes (D's weight gradients in the G update: F_D; the input gradients of D's
    first layer in the D update: 2 d1)."""
    from keras_dcgan import get_config
    from keras_dcgan.models.flops import iteration_flops

    mc = get_config(preset).model
    gan = DCGAN.from_model_config(mc, seed=0)
    gan.compile()
    gan.build()
    n = 2
    counted = iteration_flops(mc)
    z = tf.TensorSpec([n, mc.z_dim])
    images = tf.TensorSpec([n, mc.image_size, mc.image_size, mc.channels])
    assert _graph_flops(gan.generator, z) == n * counted.generator_forward
    assert _graph_flops(gan.discriminator, images) == n * counted.discriminator_forward
    k, w = mc.kernel_size, mc.d_widths[0]
    d1 = 2 * (mc.image_size // 2) ** 2 * mc.channels * w * k * k
    pruned = counted.discriminator_forward + 2 * d1
    assert _graph_flops(gan.train_step, images) == n * (counted.total + pruned)
    if preset == "half64":
        assert round(counted.total / 1e9, 2) == 2.27  # the figure the README uses


def _conv_gradients(fn, x, kernel, second_order=False):
    """fn(x, kernel), and the gradients of a weighted sum of it w.r.t. x and the kernel (or,
    with `second_order`, of R1's |d sum / dx|^2 w.r.t. the kernel)."""
    weights = tf.reshape(tf.range(1.0, 8.0), [1, 1, 1, 7])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, kernel])
        y = fn(x, kernel)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights[..., : y.shape[-1]])
        if second_order:
            loss = tf.reduce_sum(tape.gradient(loss, x) ** 2)
    grads = tape.gradient(loss, [x, kernel], unconnected_gradients="zero")
    return [tf.cast(v, tf.float32).numpy() for v in (y, *grads)]


@pytest.mark.parametrize("kernel_size", [3, 4, 5])
@pytest.mark.parametrize("side", [8, 16])
def test_matmul_weight_gradient_equals_tfs(kernel_size, side):
    """`_conv.conv` and `_conv.conv_transpose` (the kernel gradient as one matmul over 2x2
    blocks) give TF's values and gradients, second-order ones (R1) included; float32, so up to
    the order of the sums."""
    from keras_dcgan.models import _conv

    rng = np.random.default_rng(kernel_size)
    x = tf.constant(rng.normal(size=(3, side, side, 5)), tf.float32)
    kernel = tf.constant(rng.normal(size=(kernel_size, kernel_size, 5, 7)), tf.float32)
    small = tf.constant(rng.normal(size=(3, side // 2, side // 2, 5)), tf.float32)
    kernel_t = tf.constant(rng.normal(size=(kernel_size, kernel_size, 7, 5)), tf.float32)
    cases = [
        (_conv.conv, lambda a, k: tf.nn.conv2d(a, k, 2, "SAME"), x, kernel),
        (_conv.conv_transpose,
         lambda a, k: tf.nn.conv2d_transpose(a, k, [3, side, side, 7], 2, "SAME"), small, kernel_t),
    ]  # fmt: skip
    for ours, tfs, inputs, k in cases:
        for second_order in (False, True):
            got = _conv_gradients(ours, inputs, k, second_order)
            want = _conv_gradients(tfs, inputs, k, second_order)
            for a, b in zip(got, want, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def test_conv_layers_take_the_matmul_gradient_in_bfloat16_on_small_maps_only():
    from keras_dcgan.models import _conv, _layers

    def filter_ops(layer, shape):
        layer.build(shape)

        def grad(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.cast(layer(x), tf.float32))
            return tape.gradient(loss, layer.trainable_variables)

        graph = tf.function(grad).get_concrete_function(tf.TensorSpec(shape)).graph
        return sum(op.type == "Conv2DBackpropFilter" for op in graph.get_operations())

    kw = {"strides": 2, "padding": "same"}
    assert _conv.use_matmul_weight_gradient("bfloat16", 8, 16)
    assert not _conv.use_matmul_weight_gradient("float32", 8, 16)
    assert not _conv.use_matmul_weight_gradient("bfloat16", 16, 32)
    assert filter_ops(_layers.Conv2D(4, 4, dtype="mixed_bfloat16", **kw), (2, 16, 16, 3)) == 0
    assert filter_ops(_layers.Conv2D(4, 4, dtype="mixed_bfloat16", **kw), (2, 32, 32, 3)) == 1
    assert filter_ops(_layers.Conv2D(4, 4, **kw), (2, 16, 16, 3)) == 1
    transpose = _layers.Conv2DTranspose(4, 4, dtype="mixed_bfloat16", **kw)
    assert filter_ops(transpose, (2, 8, 8, 3)) == 0
    # And the layers compute what Keras' own do, with the same weights.
    ours = _layers.Conv2DTranspose(4, 4, dtype="mixed_bfloat16", **kw)
    keras_own = keras.layers.Conv2DTranspose(4, 4, dtype="mixed_bfloat16", **kw)
    x = tf.constant(random_images(2, size=8), tf.float32)
    ours.build(x.shape)
    keras_own.build(x.shape)
    keras_own.set_weights(ours.get_weights())
    np.testing.assert_allclose(
        tf.cast(ours(x), tf.float32), tf.cast(keras_own(x), tf.float32), rtol=1e-2, atol=1e-2
    )
    assert ours.name.startswith("conv2d_transpose")  # Keras' names: saved files interchangeable


@pytest.mark.parametrize(
    "gpus,expected",
    [
        ([], "float32"),
        ([("Tesla T4", (7, 5))], "mixed_float16"),
        ([("Tesla V100-SXM2-16GB", (7, 0))], "mixed_float16"),
        ([("NVIDIA A100-SXM4-40GB", (8, 0))], "mixed_bfloat16"),
        ([("NVIDIA L4", (8, 9))], "mixed_bfloat16"),
        ([("NVIDIA H100 80GB HBM3", (9, 0))], "mixed_bfloat16"),
        ([("Tesla P100-PCIE-16GB", (6, 0))], "float32"),
        ([("NVIDIA A100", (8, 0)), ("Tesla T4", (7, 5))], "mixed_float16"),  # the oldest decides
    ],
)
def test_auto_precision_follows_the_gpu(monkeypatch, gpus, expected):
    from keras_dcgan.training import auto_precision

    devices = [
        tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(len(gpus))
    ]
    details = {
        d.name: {"device_name": n, "compute_capability": c}
        for d, (n, c) in zip(devices, gpus, strict=True)
    }
    real = tf.config.list_physical_devices
    monkeypatch.setattr(
        tf.config, "list_physical_devices", lambda t=None: devices if t == "GPU" else real(t)
    )
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda d: details[d.name])
    choice = auto_precision()
    assert choice.precision == expected
    if gpus:
        assert min(gpus, key=lambda g: g[1])[0] in choice.reason
