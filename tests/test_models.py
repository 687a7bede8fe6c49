"""The generator and discriminator: shapes, value ranges and the paper's architecture rules."""

import keras
import numpy as np
import pytest

from keras_dcgan import DCGAN, Discriminator, Generator, get_config
from keras_dcgan.config import ModelConfig
from tests.helpers import run_serialization_test

POOLING = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
)


def _blocks(model):
    return [model.get_block(name) for name in model.block_names]


def _layers(model):
    return [layer for block in _blocks(model) for layer in block]


def _tiny(size=32, channels=3, **kw):
    return ModelConfig(image_size=size, channels=channels, z_dim=8, base_width=4, **kw)


@pytest.mark.parametrize("size", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_value_ranges(size, channels):
    mc = _tiny(size, channels)
    g, d = Generator.from_model_config(mc), Discriminator.from_model_config(mc)
    z = keras.random.uniform((3, mc.z_dim), -1, 1) * 50  # large z drives tanh to saturation
    images = np.asarray(g(z, training=True))
    assert images.shape == (3, size, size, channels)
    assert images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    logits = np.asarray(d(images, training=True))
    assert logits.shape == (3, 1) and np.all(np.isfinite(logits))


def test_rule_no_pooling_strided_convolutions_only():
    mc = get_config("paper64").model
    g, d = Generator.from_model_config(mc), Discriminator.from_model_config(mc)
    for layer in _layers(g) + _layers(d):
        assert not isinstance(layer, POOLING)
    g_convs = [la for la in _layers(g) if isinstance(la, keras.layers.Conv2DTranspose)]
    d_convs = [la for la in _layers(d) if isinstance(la, keras.layers.Conv2D)]
    assert len(g_convs) == len(d_convs) == 4
    assert all(c.strides == (2, 2) for c in g_convs + d_convs)
    assert all(c.kernel_size == (5, 5) for c in g_convs + d_convs)


def test_rule_batchnorm_everywhere_but_g_output_and_d_input():
    mc = get_config("paper64").model
    g, d = Generator.from_model_config(mc), Discriminator.from_model_config(mc)
    is_bn = lambda la: isinstance(la, keras.layers.BatchNormalization)  # noqa: E731
    # G: every block but the last (output) has a BatchNorm.
    assert [any(map(is_bn, b)) for b in _blocks(g)] == [True, True, True, True, False]
    # D: every block but the first (input) has one.
    assert [any(map(is_bn, b)) for b in _blocks(d)] == [False, True, True, True]
    # The ablation switches all of them off.
    off = ModelConfig(batch_norm=False)
    for model in (Generator.from_model_config(off), Discriminator.from_model_config(off)):
        assert not any(is_bn(la) for la in _layers(model))


def test_rule_no_fully_connected_hidden_layers():
    mc = get_config("paper64").model
    g, d = Generator.from_model_config(mc), Discriminator.from_model_config(mc)
    g_dense = [la for la in _layers(g) if isinstance(la, keras.layers.Dense)]
    # G: only the projection of z, reshaped to 4x4x1024.
    assert len(g_dense) == 1 and g_dense[0].units == 4 * 4 * 1024
    assert isinstance(g.get_block("project")[1], keras.layers.Reshape)
    assert g.get_block("project")[1].target_shape == (4, 4, 1024)
    # D: its last conv is flattened straight into one logit.
    assert not any(isinstance(la, keras.layers.Dense) for la in _layers(d))
    assert d.logit.units == 1


def test_rule_activations():
    mc = get_config("paper64").model
    g, d = Generator.from_model_config(mc), Discriminator.from_model_config(mc)
    for block in _blocks(g)[:-1]:
        assert block[-1].get_config()["activation"] == "relu"
    assert _blocks(g)[-1][-1].get_config()["activation"] == "tanh"
    for block in _blocks(d):
        assert isinstance(block[-1], keras.layers.LeakyReLU)
        assert block[-1].negative_slope == pytest.approx(0.2)


def test_parameter_counts_equal_pytorch_examples():
    # pytorch/examples dcgan with nz=100, ngf=ndf=64, nc=3 has these trainable counts.
    mc = get_config("half64").model
    gan = DCGAN.from_model_config(mc)
    gan.build()
    count = lambda m: sum(int(np.prod(v.shape)) for v in m.trainable_variables)  # noqa: E731
    assert count(gan.generator) == 3_576_704
    assert count(gan.discriminator) == 2_765_568


def test_weights_initialised_from_normal_0_002():
    mc = get_config("paper64").model
    g = Generator.from_model_config(mc)
    g.build()
    kernel = np.asarray(g.get_block("up1")[0].kernel)
    assert abs(kernel.mean()) < 1e-3
    assert kernel.std() == pytest.approx(0.02, rel=0.05)
    gamma = np.asarray(g.get_block("up1")[1].gamma)
    assert gamma.mean() == pytest.approx(1.0, abs=0.01)


def test_widths_must_match_resolution():
    with pytest.raises(ValueError, match="needs 4 widths"):
        Generator(image_size=64, widths=(8, 4))
    with pytest.raises(ValueError, match="needs 3 widths"):
        Discriminator(image_size=32, widths=(8, 4))
    mc = _tiny(32)
    with pytest.raises(ValueError, match="disagree on the image shape"):
        DCGAN(Generator.from_model_config(mc), Discriminator.from_model_config(_tiny(64)))


@pytest.mark.parametrize("cls", [Generator, Discriminator])
def test_config_round_trip(cls):
    model = cls.from_model_config(_tiny(32, 1, kernel_size=3))
    model.build()
    clone = run_serialization_test(model)
    clone.build()
    clone.set_weights(model.get_weights())
    shape = (2, 8) if cls is Generator else (2, 32, 32, 1)
    x = np.random.default_rng(0).uniform(-1, 1, shape).astype("float32")
    np.testing.assert_allclose(clone(x), model(x), rtol=1e-6)


def test_layers_and_blocks_are_named():
    mc = get_config("paper64").model
    g, d = Generator.from_model_config(mc), Discriminator.from_model_config(mc)
    assert g.block_names == ("project", "up1", "up2", "up3", "output")
    assert [la.name for la in g.layers] == [
        "project_dense", "project_reshape", "project_bn", "project_act",
        *[f"up{i}_{kind}" for i in (1, 2, 3) for kind in ("conv", "bn", "act")],
        "output_conv", "output_tanh",
    ]  # fmt: skip
    assert d.block_names == ("down0", "down1", "down2", "down3")
    assert [la.name for la in d.layers] == [
        "down0_conv", "down0_act",
        *[f"down{i}_{kind}" for i in (1, 2, 3) for kind in ("conv", "bn", "act")],
        "flatten", "logit",
    ]  # fmt: skip
    assert [la.name for la in d.get_block("down1")] == ["down1_conv", "down1_bn", "down1_act"]
    assert g.get_layer("up2_conv") is g.get_block("up2")[0]
    off = Generator.from_model_config(ModelConfig(batch_norm=False))
    assert [la.name for la in off.get_block("up1")] == ["up1_conv", "up1_act"]
    with pytest.raises(ValueError, match="No block 'up9'"):
        g.get_block("up9")
    # The checkpoint keys: {layer: {variable: ...}}, every variable once.
    g.build()
    keyed = g.variables_by_layer()
    assert list(keyed["up1_bn"]) == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert sorted(id(v) for vs in keyed.values() for v in vs.values()) == sorted(
        id(v) for v in g.variables
    )


def test_outputs_by_name():
    mc = _tiny(32, 3)
    g, d = Generator.from_model_config(mc), Discriminator.from_model_config(mc)
    z = keras.random.uniform((2, mc.z_dim), -1, 1)
    blocks = g.block_outputs(z)
    assert [tuple(b.shape) for b in blocks] == [(2, 4, 4, 16), (2, 8, 8, 8), (2, 16, 16, 4),
                                                (2, 32, 32, 3)]  # fmt: skip
    tapped = g.outputs_by_name(z, ["output", "up1", "up1_bn"])
    assert list(tapped) == ["output", "up1", "up1_bn"]
    for name, block in zip(g.block_names, blocks, strict=True):
        np.testing.assert_array_equal(g.block_output(z, name), block)
    np.testing.assert_array_equal(tapped["up1"], blocks[1])
    np.testing.assert_array_equal(tapped["output"], g(z))
    bn = g.get_block("up1")[1](g.get_block("up1")[0](blocks[0]), training=False)
    np.testing.assert_array_equal(tapped["up1_bn"], bn)
    images = g(z)
    np.testing.assert_array_equal(d.block_output(images, "logit"), d(images))
    assert d.block_output(images, "flatten").shape == (2, 4 * 4 * 16)
    np.testing.assert_array_equal(d.block_output(images, "down2"), d.block_outputs(images)[-1])
    with pytest.raises(ValueError, match="No block or layer"):
        d.outputs_by_name(images, ["down0", "up1"])


def test_projection_bn_per_feature_normalises_each_dense_output_before_the_reshape():
    """The Chainer blog's projection: BatchNorm of the Dense layer's 4*4*C outputs, each with its
    own statistics (and gamma/beta), then the reshape; the default normalises per channel."""
    z = keras.random.uniform((16, 8), -1, 1, seed=0)
    feature = Generator.from_model_config(_tiny(32, projection_bn="feature"))
    layers = [layer.name for layer in feature.get_block("project")]
    assert layers == ["project_dense", "project_bn", "project_reshape", "project_act"]
    bn = feature.get_layer("project_bn")
    normed = np.asarray(feature.block_output(z, "project_bn", training=True))
    w0 = feature.widths[0]
    assert normed.shape == (16, 4 * 4 * w0) and tuple(bn.gamma.shape) == (4 * 4 * w0,)
    standard = (normed - np.asarray(bn.beta)) / np.asarray(bn.gamma)
    dense = np.asarray(feature.block_output(z, "project_dense", training=True))
    by_hand = (dense - dense.mean(axis=0)) / np.sqrt(dense.var(axis=0) + bn.epsilon)
    np.testing.assert_allclose(standard, by_hand, rtol=1e-3, atol=1e-3)  # statistics per feature

    channel = Generator.from_model_config(_tiny(32))
    channel.build()
    assert channel.projection_bn == "channel"
    assert [la.name for la in channel.get_block("project")][1:3] == [
        "project_reshape",
        "project_bn",
    ]
    assert tuple(channel.get_layer("project_bn").gamma.shape) == (w0,)
    per_feature = np.asarray(channel.block_output(z, "project_bn", training=True)).reshape(16, -1)
    assert np.abs(per_feature.mean(axis=0)).max() > 1e-2  # not normalised feature by feature
    assert run_serialization_test(feature).projection_bn == "feature"
    with pytest.raises(ValueError, match="projection_bn must be one of channel, feature"):
        Generator(image_size=32, widths=(8, 4, 2), projection_bn="pixel")


def test_d_leaky_slope_zero_makes_d_use_relu():
    d = Discriminator.from_model_config(_tiny(32, d_leaky_slope=0))
    x = np.linspace(-2, 2, 9, dtype="float32")
    for block in _blocks(d):
        assert block[-1].negative_slope == 0.0
        np.testing.assert_array_equal(block[-1](x), np.maximum(x, 0))
