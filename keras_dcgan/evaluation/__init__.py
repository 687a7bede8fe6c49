"""Measuring samples: FID, KID and Inception Score (`metrics`, over the Inception features of
`inception`, with the distance math in `stats`), and the offline digits score (`digits`).

`evaluate(gan, ["fid10k", "kid10k", "is10k", "digits"], source, network)` computes any metric of
the registry (`REGISTRY`); `metric_inputs` gives the real images and the network they need.
Importing this package loads NumPy and SciPy, not TensorFlow: the network and the digits scorer
are imported when a metric needs them.
"""

from keras_dcgan.evaluation.metrics import (
    REGISTRY,
    MetricKind,
    evaluate,
    metric_inputs,
    needs,
    register_metric,
)
from keras_dcgan.evaluation.stats import (
    FeatureStats,
    fid_from_stats,
    inception_score,
    kernel_inception_distance,
)

__all__ = [
    "REGISTRY",
    "DigitsScorer",
    "FeatureStats",
    "MetricKind",
    "evaluate",
    "fid_from_stats",
    "inception_score",
    "kernel_inception_distance",
    "metric_inputs",
    "needs",
    "register_metric",
]


def __getattr__(name):
    # Lazily: the digits scorer imports TensorFlow and scikit-learn.
    if name == "DigitsScorer":
        from keras_dcgan.evaluation.digits import DigitsScorer

        return DigitsScorer
    raise AttributeError(f"module 'keras_dcgan.evaluation' has no attribute {name!r}")
