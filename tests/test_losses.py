import math

import numpy as np

from keras_dcgan import losses


def _np_bce(logits, label):
    p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
    return -(label * np.log(p) + (1 - label) * np.log(1 - p))


def test_losses_at_zero_logits_are_log2():
    d = losses.discriminator_loss(np.zeros((3, 1)), np.zeros((3, 1)))
    g = losses.generator_loss(np.zeros((3, 1)))
    np.testing.assert_allclose(d, [2 * math.log(2)] * 3, rtol=1e-6)
    np.testing.assert_allclose(g, [math.log(2)] * 3, rtol=1e-6)


def test_losses_match_binary_cross_entropy():
    real = np.array([[-2.0], [0.3], [4.0]])
    fake = np.array([[1.5], [-0.7], [-3.0]])
    expected_d = _np_bce(real, 1.0) + _np_bce(fake, 0.0)
    np.testing.assert_allclose(losses.discriminator_loss(real, fake), expected_d[:, 0], rtol=1e-5)
    # Non-saturating G loss: -log D(G(z)), the BCE of fakes labelled real.
    np.testing.assert_allclose(losses.generator_loss(fake), _np_bce(fake, 1.0)[:, 0], rtol=1e-5)


def test_losses_are_finite_for_extreme_logits():
    d = np.asarray(losses.discriminator_loss(np.array([-200.0, 200.0]), np.array([200.0, -200.0])))
    assert np.all(np.isfinite(d))
    np.testing.assert_allclose(d, [400.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(losses.generator_loss(np.array([-200.0])), [200.0], rtol=1e-6)
