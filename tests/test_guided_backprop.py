"""Guided backpropagation of the discriminator's features (paper Fig. 5)."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_dcgan.analysis import guided_backprop as gb
from keras_dcgan.models import random_discriminator
from tests.helpers import dcgan, random_images, tiny_gan


@pytest.fixture(scope="module")
def gan():
    return tiny_gan(seed=0)  # 32 px RGB, D widths 8-16-32, kernel 4: a 4x4x32 last layer


@pytest.fixture(scope="module")
def images():
    return random_images(10, seed=3)


def reference_gradient(d, image, feature, row, col, rule):
    """The guided (or plain) gradient by hand: D's blocks as linear parts (conv, BatchNorm in
    inference mode) and activations; the backward pass goes through the linear parts with
    tf.GradientTape and applies the activation rule explicitly."""
    h, parts = tf.constant(image[None]), []
    for name in d.block_names:
        block = d.get_block(name)
        linear = block[:-1]

        def f(t, linear=linear):
            for layer in linear:
                t = layer(t, training=False)
            return t

        pre = f(h)
        parts.append((h, f, pre.numpy()))
        h = block[-1](pre)
    g = np.zeros(parts[-1][2].shape, np.float32)
    g[0, row, col, feature] = 1.0  # the probed unit, from its pre-activation
    for b in reversed(range(len(parts))):
        inp, f, pre = parts[b]
        if b < len(parts) - 1:
            if rule == "guided":  # ReLU rule: forward input > 0 and gradient > 0
                g = g * ((pre > 0) & (g > 0))
            else:  # LeakyReLU(0.2)'s derivative
                g = g * np.where(pre > 0, 1.0, 0.2)
        with tf.GradientTape() as tape:
            tape.watch(inp)
            out = f(inp)
        g = tape.gradient(out, inp, output_gradients=tf.constant(g, tf.float32)).numpy()
    return g[0]


@pytest.mark.parametrize("rule", ["guided", "plain"])
def test_gradients_match_the_hand_computed_rule(gan, images, rule):
    d = gan.discriminator
    targets = np.array([[0, 1, 2], [5, 3, 3], [31, 0, 0]])
    got = gb.gradients(d, images[:3], targets, rule=rule)
    for i, (f, r, c) in enumerate(targets):
        want = reference_gradient(d, images[i], f, r, c, rule)
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(got[i], want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


def test_maximal_responses_are_chosen_and_shapes_match_the_input(gan, images):
    d = gan.discriminator
    result = gb.guided_backprop(d, images, 6)
    assert result.gradients.shape == (6, *images.shape[1:])
    assert result.visualizations.shape == (6, *images.shape[1:])
    np.testing.assert_array_equal(result.features, np.arange(6))
    acts = d.block_outputs(images)[-1].numpy()  # the model's own forward pass
    for k, f in enumerate(result.features):
        n, (r, c) = result.image_indices[k], result.positions[k]
        assert acts[n, r, c, f] == pytest.approx(acts[..., f].max(), rel=1e-6)
        assert result.responses[k] == pytest.approx(acts[..., f].max(), rel=1e-5)
    # Each visualisation is its gradient scaled by its largest |value| (percentile 100).
    for g, v in zip(result.gradients, result.visualizations, strict=True):
        np.testing.assert_allclose(v, g / np.abs(g).max(), rtol=1e-5, atol=1e-7)
    want = gb.gradients(d, images[result.image_indices],
                        np.stack([result.features, *result.positions.T], 1))  # fmt: skip
    np.testing.assert_array_equal(result.gradients, want)
    # The plain rule picks the same units; its gradients differ (negative ones pass, 0.2 slope).
    plain = gb.guided_backprop(d, images, 6, rule="plain")
    np.testing.assert_array_equal(plain.positions, result.positions)
    assert not np.allclose(plain.gradients, result.gradients)


def test_gradient_is_zero_outside_the_receptive_field(gan, images):
    # kernel 4, stride 2, 'same' on even sides pads 1 before: output o sees inputs 2o-1..2o+2.
    def field(lo, hi, layers=3, size=32):
        for _ in range(layers):
            lo, hi = max(2 * lo - 1, 0), 2 * hi + 2
        return lo, min(hi, size - 1)

    d = gan.discriminator
    corner = gb.gradients(d, images[:4], np.array([[f, 0, 0] for f in (0, 3, 7, 30)]))
    lo, hi = field(0, 0)
    assert (lo, hi) == (0, 14)
    assert np.all(corner[:, hi + 1 :] == 0) and np.all(corner[:, :, hi + 1 :] == 0)
    assert all(np.any(g[: hi + 1, : hi + 1] != 0) for g in corner)
    far = gb.gradients(d, images[:2], np.array([[1, 3, 3], [9, 3, 1]]))
    lo, _ = field(3, 3)
    assert lo == 17
    assert np.all(far[:, :lo] == 0) and np.any(far[:, lo:] != 0)
    lo_col, hi_col = field(1, 1)
    assert np.all(far[1, :, :lo_col] == 0) and np.all(far[1, :, hi_col + 1 :] == 0)


def test_deterministic_and_the_random_discriminator(gan, images):
    a = gb.guided_backprop(gan, images, [4, 1])
    b = gb.guided_backprop(gan.discriminator, images, [4, 1])
    for field in ("features", "image_indices", "positions", "responses", "gradients"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    r0, r0_again, r1 = (random_discriminator(gan, s) for s in (0, 0, 1))
    assert r0.get_config() == gan.discriminator.get_config()
    for v, w in zip(r0.weights, r0_again.weights, strict=True):
        np.testing.assert_array_equal(v.numpy(), w.numpy())
    assert not np.array_equal(r0.weights[0].numpy(), r1.weights[0].numpy())
    trained, rand = gb.compare_with_random(gan, images, [4, 1], seed=0)
    np.testing.assert_array_equal(trained.gradients, a.gradients)
    again = gb.guided_backprop(r0, images, [4, 1])
    np.testing.assert_array_equal(rand.gradients, again.gradients)
    assert rand.gradients.shape == a.gradients.shape
    assert not np.allclose(rand.gradients, a.gradients)


def test_uint8_images_and_percentile_normalisation(gan):
    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    a = gb.guided_backprop(gan, pixels, 2)
    b = gb.guided_backprop(gan, pixels.astype(np.float32) / 127.5 - 1, 2)
    np.testing.assert_array_equal(a.gradients, b.gradients)
    g = np.zeros((2, 4, 4, 1), np.float32)
    g[0, 0, 0], g[0, 1, 1], g[0, 2, 2] = 10.0, -1.0, 0.5
    v = gb.normalize(g, percentile=90)
    assert v[0, 0, 0, 0] == 1.0 and v.min() >= -1  # clipped
    assert np.all(v[1] == 0)  # an all-zero gradient stays mid-gray
    assert gb.normalize(g)[0, 2, 2, 0] == pytest.approx(0.05)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(features=0), "between 1 and the layer's 32 channels"),
        (dict(features=33), "between 1 and the layer's 32 channels"),
        (dict(features=[]), "features is empty"),
        (dict(features=[3, 32]), "feature index 32 is out of range"),
        (dict(features=[-1]), "feature index -1 is out of range"),
        (dict(features=[1.5]), "must be integers"),
        (dict(features="3"), "a count or a list"),
        (dict(features=True), "a count or a list"),
        (dict(layer=3), "layer must be a block index"),
        (dict(rule="deconvnet"), "rule must be one of"),
        (dict(percentile=0), "percentile must be in"),
    ],
)
def test_bad_arguments_are_rejected(gan, images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gb.guided_backprop(gan.discriminator, images, **kwargs)


def test_bad_images_and_targets_are_rejected(gan, images):
    d = gan.discriminator
    with pytest.raises(ValueError, match=r"shape \[N, 32, 32, 3\]"):
        gb.guided_backprop(d, images[:, :16, :16], 2)
    with pytest.raises(ValueError, match=r"must be in \[-1, 1\]"):
        gb.guided_backprop(d, images * 255, 2)
    with pytest.raises(ValueError, match="target positions must be in"):
        gb.gradients(d, images[:1], np.array([[0, 4, 0]]))
    with pytest.raises(ValueError, match="one per image"):
        gb.gradients(d, images[:2], np.array([[0, 1, 1]]))
    with pytest.raises(ValueError, match="Expected a Discriminator"):
        gb.guided_backprop(object(), images, 2)


# ---------------------------------------------------------------------------------- CLI
def test_cli_writes_the_grid_of_the_library_result(tiny_run_dir, tmp_path):
    from keras_dcgan import images as image_io
    from keras_dcgan.data import open_source
    from keras_dcgan.training import load_trained

    png = str(tmp_path / "guided.png")
    out = dcgan("visualize", f"--model_dir={tiny_run_dir}", "--num_images=40", "--features=3",
                f"--output={png}")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trained feature    2" in out.stdout and "random  feature    2" in out.stdout
    _, gan = load_trained(tiny_run_dir)
    _, real = open_source("digits").arrays(32, 3, split="train", limit=40)
    trained, rand = gb.compare_with_random(gan.discriminator, real, 3, seed=0)
    want = image_io.make_grid(np.concatenate([trained.visualizations, rand.visualizations]), 3)
    got = np.asarray(Image.open(png))
    assert got.shape == want.shape == (2 * 34 + 2, 3 * 34 + 2, 3)  # 2 rows, 3 features
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # float rounding at most


@pytest.mark.slow  # one more model-loading process; test_bad_arguments_are_rejected covers it
def test_cli_rejects_bad_features(tiny_run_dir, tmp_path):
    png = str(tmp_path / "guided.png")
    out = dcgan("visualize", f"--model_dir={tiny_run_dir}", "--feature_indices=0,32",
                f"--output={png}")  # fmt: skip
    assert out.returncode == 1
    assert "dcgan visualize: error: feature index 32 is out of range" in out.stderr
    assert not os.path.exists(png)
