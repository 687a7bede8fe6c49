"""Sample-quality metrics: names, the Inception feature network (random weights, small input),
cached real features, the digits score, the training callback and `dcgan eval`."""

import json
import os

import numpy as np
import pytest

from keras_dcgan import options
from keras_dcgan.data import open_source
from keras_dcgan.evaluation import inception, metrics
from keras_dcgan.evaluation.digits import default_scorer
from keras_dcgan.training import train
from tests.helpers import tiny_config, tiny_gan


@pytest.fixture(scope="module")
def network():
    return inception.InceptionFeatures(weights=None, input_size=75, batch_size=32)


def test_metric_names():
    assert metrics.parse_metric("fid10k") == ("fid", 10_000)
    assert metrics.parse_metric("KID500") == ("kid", 500)
    assert metrics.parse_metric("is50k") == ("is", 50_000)
    assert metrics.parse_metric("digits") == ("digits", 1000)
    for bad in ("fid", "fid10m", "lpips1k", "is1"):
        with pytest.raises(ValueError, match="Unknown metric|at least 2"):
            metrics.parse_metric(bad)


def test_missing_inception_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="keras.applications.InceptionV3\\(\\)"):
        inception.InceptionFeatures()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inception.InceptionFeatures(weights=str(tmp_path / "nope.h5"))


def test_features_shapes_and_grayscale(network):
    rng = np.random.default_rng(0)
    pool, probs = network(rng.uniform(-1, 1, (5, 32, 32, 1)).astype(np.float32))
    assert pool.shape == (5, 2048) and probs.shape == (5, 1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="Expected a non-empty batch"):
        network(np.zeros((0, 32, 32, 3), np.float32))


def test_evaluate_fid_kid_is_and_the_real_feature_cache(network, tmp_path, monkeypatch):
    gan = tiny_gan()
    source = open_source("digits")
    cache = str(tmp_path / "cache")
    results = metrics.evaluate(gan, ["fid40", "kid40", "is40"], source, network, cache_dir=cache)
    assert results["fid40"] > 0 and np.isfinite(results["kid40"]) and results["kid40_std"] >= 0
    assert 1.0 <= results["is40"] <= 1000
    assert len(os.listdir(cache)) == 1
    # The real features come from the cache now: the dataset is never read again.
    monkeypatch.setattr(source, "dataset", lambda *a, **k: pytest.fail("real images re-read"))
    again = metrics.evaluate(gan, ["kid40"], source, network, cache_dir=cache)
    assert again["kid40"] == pytest.approx(results["kid40"], rel=1e-6)
    with pytest.raises(ValueError, match="fewer than the 5000"):
        metrics.evaluate(gan, ["fid5k"], open_source("digits"), network, cache_dir=cache)


def test_digits_score_separates_real_noise_and_collapse():
    from keras_dcgan.data import load_digits

    scorer = default_scorer()
    images, _ = load_digits(32, 1)
    real = scorer.score(images[:1000])
    noise = scorer.score(np.random.default_rng(0).uniform(-1, 1, (1000, 32, 32, 1)))
    collapse = scorer.score(np.repeat(images[:1], 1000, axis=0))
    assert real.frechet_distance < 5 < 50 < noise.frechet_distance
    assert collapse.frechet_distance > 50 and collapse.classes_present == 1
    assert real.confident_share > 0.8 and real.classes_present == 10


def test_quality_metrics_during_training(tmp_path):
    model_dir = str(tmp_path / "run")
    config = tiny_config(steps=4, eval_metrics=("digits",), eval_every_epochs=1)
    train(config, model_dir, verbose=0)
    lines = [json.loads(line) for line in open(os.path.join(model_dir, "quality.jsonl"))]
    assert lines and lines[-1]["step"] == 4 and "digits_frechet_distance" in lines[-1]
    with pytest.raises(ValueError, match="Unknown metric 'fidd'"):
        tiny_config(eval_metrics=("fidd",))


class _PixelFeatures:
    """A stand-in feature network with meaningful features: the 256 pixels of the image at
    16x16 gray, and class probabilities from the first 10 (small, so the test is fast)."""

    id = "pixels-test"

    def __call__(self, images):
        gray = np.asarray(images, np.float64).mean(axis=-1)
        pool = gray.reshape(len(gray), 16, 2, 16, 2).mean(axis=(2, 4)).reshape(len(gray), -1)
        logits = pool[:, :10] * 5
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        return pool, probs / probs.sum(axis=1, keepdims=True)


class _RealDigits:
    """A 'generator' that samples real digits (other ones than FID's reference set)."""

    image_shape = (32, 32, 3)

    def sample(self, seeds):
        import tensorflow as tf

        from keras_dcgan.data import load_digits

        images, _ = load_digits(32, 3)
        return tf.constant(images[1000 + np.asarray(list(seeds)) % 797])


def test_fid_and_kid_rank_a_real_like_generator_above_an_untrained_one(tmp_path):
    source, features = open_source("digits"), _PixelFeatures()
    cache = str(tmp_path / "cache")
    good = metrics.evaluate(_RealDigits(), ["fid500", "kid500"], source, features, cache_dir=cache)
    bad = metrics.evaluate(tiny_gan(), ["fid500", "kid500"], source, features, cache_dir=cache)
    assert good["fid500"] * 5 < bad["fid500"]
    assert abs(good["kid500"]) < bad["kid500"] / 5


def test_every_metric_name_a_config_accepts_is_registered_once_with_its_needs():
    assert tuple(metrics.REGISTRY) == options.METRIC_KINDS
    assert metrics.needs(["digits"]) == (False, False)
    assert metrics.needs(["is1k"]) == (False, True)
    assert metrics.needs(["digits", "kid5k"]) == (True, True)
    assert metrics.metric_inputs(["digits"], "digits") == (None, None)
    with pytest.raises(ValueError, match="Unknown metric 'fid2x'"):
        metrics.needs(["fid2x"])
    with pytest.raises(ValueError, match="not in keras_dcgan.options.METRIC_KINDS"):
        metrics.register_metric("lpips", needs_real=True, needs_network=True)(lambda *a: {})
