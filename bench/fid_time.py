"""Time to compute FID on N generated 64x64 samples (default 10,000) on this machine.

Builds a `--preset` generator (random weights: the cost does not depend on them) and InceptionV3
(`--inception_weights`, default random for the same reason; the FID value is then meaningless),
and times the three parts of `fid<N>` separately: sampling G, Inception features of the samples
(resized to 299x299), and the Fréchet distance (2048-d covariances, scipy sqrtm) against the
statistics of N other random images standing in for the cached real features.

    python bench/fid_time.py --num=10000
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_dcgan.config import get_config  # noqa: E402
from keras_dcgan.evaluation import stats  # noqa: E402
from keras_dcgan.evaluation.inception import InceptionFeatures  # noqa: E402
from keras_dcgan.evaluation.metrics import generated_features  # noqa: E402
from keras_dcgan.models import DCGAN  # noqa: E402

_NUM = flags.DEFINE_integer("num", 10_000, "Generated samples.")
_PRESET = flags.DEFINE_string("preset", "paper64", "Generator architecture.")
_WEIGHTS = flags.DEFINE_string("inception_weights", "random", "'random', 'imagenet' or a path.")


class _Timed:
    """Wraps the feature network to time it apart from sampling."""

    def __init__(self, network):
        self.network, self.seconds = network, 0.0

    def __call__(self, images):
        start = time.perf_counter()
        out = self.network(images)
        self.seconds += time.perf_counter() - start
        return out


def main(argv):
    del argv
    gan = DCGAN.from_model_config(get_config(_PRESET.value).model, seed=0)
    gan.build()
    weights = None if _WEIGHTS.value == "random" else _WEIGHTS.value
    network = _Timed(InceptionFeatures(weights=weights))
    network(np.zeros((2, 64, 64, 3), np.float32))  # trace
    network.seconds = 0.0
    start = time.perf_counter()
    pool, _ = generated_features(gan, _NUM.value, network)
    total_features = time.perf_counter() - start
    real = np.random.default_rng(0).normal(size=pool.shape).astype(np.float32)
    start = time.perf_counter()
    a, b = stats.FeatureStats().update(pool), stats.FeatureStats().update(real)
    value = stats.fid_from_stats(a, b)
    math_seconds = time.perf_counter() - start
    sampling = total_features - network.seconds
    print(
        f"# TF {tf.__version__}, {os.cpu_count()} CPUs; fid{_NUM.value} of {_PRESET.value} "
        f"samples, InceptionV3 weights {_WEIGHTS.value} (value {value:.3g} is meaningless with "
        "random weights)"
    )
    print(
        f"sampling G {sampling:.1f} s | Inception features {network.seconds:.1f} s "
        f"({_NUM.value / network.seconds:.1f} img/s) | Fréchet distance {math_seconds:.1f} s | "
        f"total {total_features + math_seconds:.1f} s (real features cached, not counted)"
    )


if __name__ == "__main__":
    app.run(main)
