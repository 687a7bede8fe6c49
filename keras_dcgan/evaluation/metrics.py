"""FID, KID and Inception Score of a generator: `evaluate(gan, ["fid10k", "kid10k", "is10k"], ...)`.

A metric is named by its kind and its sample count: `fid10k` is the Fréchet Inception Distance
between 10,000 generated images (seeds 0..9999, so the set is the same every time) and 10,000
real images of the dataset; `kid5k`, `is50k`, `fid500` likewise. The math is in
`keras_dcgan.evaluation.stats`, the network in `keras_dcgan.evaluation.inception`.

Real-image features are cached on disk (`<cache>/real_features/<key>.npz`) under a hash of the
dataset (its source fingerprint and split), the image size and channels, the sample count and the
feature network, so a training run's periodic FID does not recompute them.

Each metric kind is registered once (`register_metric`, as StyleGAN2-ADA's `metric_main`) with
what it needs (real images, the feature network); `dcgan eval`, the training callback and the
trainer ask the registry (`needs`, `metric_inputs`) instead of knowing which metric needs what.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable

import numpy as np

from keras_dcgan.errors import UserError
from keras_dcgan.evaluation import stats as stats_lib
from keras_dcgan.options import (
    METRIC_KINDS,
    check_fid_network,
    check_inception_weights,
    parse_metric,
)

KINDS = METRIC_KINDS  # the names of the registered kinds (`REGISTRY`)


def generated_features(gan, count: int, network, batch_size: int = 250):
    """Pool features and class probabilities of `count` samples from seeds 0..count-1."""
    pools, probabilities = [], []
    for start in range(0, count, batch_size):
        images = gan.sample(seeds=range(start, min(start + batch_size, count))).numpy()
        pool, probs = network(images)
        pools.append(pool)
        probabilities.append(probs)
    return np.concatenate(pools), np.concatenate(probabilities)


def real_features(source, image_size: int, channels: int, count: int, network,
                  split: str = "all", cache_dir: str | None = None) -> np.ndarray:  # fmt: skip
    """Pool features of the first `count` images of a source (a `keras_dcgan.data.ImageSource`),
    cached on disk. Fewer images than `count` is an error (the metric would not be what its
    name says)."""
    from keras_dcgan.data.sources import default_cache_dir

    key = json.dumps(
        [source.fingerprint(), split, image_size, channels, count, network.id], sort_keys=True
    )
    digest = hashlib.sha1(key.encode()).hexdigest()[:20]
    cache_dir = cache_dir or os.path.join(default_cache_dir(), "real_features")
    path = os.path.join(cache_dir, f"{digest}.npz")
    if os.path.exists(path):
        with np.load(path) as data:
            return data["features"]
    pools = []
    ds = source.dataset(image_size, channels, batch_size=250, split=split, shuffle=False,
                        drop_remainder=False)  # fmt: skip
    seen = 0
    for batch in ds:
        pool, _ = network(batch.numpy())
        pools.append(pool)
        seen += len(pool)
        if seen >= count:
            break
    if seen < count:
        raise UserError(
            f"{source.name} has {seen} usable images in split {split!r}, fewer than the {count} "
            "the metric asks for; use a smaller count (e.g. fid1k)."
        )
    features = np.concatenate(pools)[:count].astype(np.float32)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    np.savez(tmp, features=features, key=key)
    os.replace(tmp, path)
    return features


# ----------------------------------------------------------------------------- registry
@dataclasses.dataclass(frozen=True)
class MetricKind:
    """One kind of metric: what it needs and how it is computed.

    `compute(name, count, inputs)` returns the metric's results ({name: value, ...});
    `inputs` is a `MetricInputs`. `needs_real`: real images of the dataset (FID, KID);
    `needs_network`: the Inception feature network (FID, KID, IS).
    """

    name: str
    needs_real: bool
    needs_network: bool
    compute: Callable[[str, int, MetricInputs], dict[str, float]]


@dataclasses.dataclass
class MetricInputs:
    """What the metrics of one evaluation share: the generator, the generated features (drawn
    once for the largest count), the real features per count (cached on disk)."""

    gan: object
    source: object = None
    network: object = None
    split: str = "train"
    cache_dir: str | None = None
    _fake: tuple | None = None
    _real: dict = dataclasses.field(default_factory=dict)
    fake_count: int = 0

    def fake_features(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """(pool [count, 2048], probabilities [count, classes]) of seeds 0..count-1."""
        if self._fake is None or len(self._fake[0]) < count:
            self._fake = generated_features(self.gan, max(count, self.fake_count), self.network)
        pool, probabilities = self._fake
        return pool[:count], probabilities[:count]

    def real_features(self, count: int) -> np.ndarray:
        if count not in self._real:
            size, channels = self.gan.image_shape[0], self.gan.image_shape[2]
            self._real[count] = real_features(self.source, size, channels, count, self.network,
                                              self.split, self.cache_dir)  # fmt: skip
        return self._real[count]


REGISTRY: dict[str, MetricKind] = {}


def register_metric(name: str, needs_real: bool, needs_network: bool):
    """Decorator: registers `compute(name, count, inputs)` as the metric kind `name` (one of
    `keras_dcgan.options.METRIC_KINDS`, the names that configs and flags accept)."""

    def register(compute):
        if name not in METRIC_KINDS:
            raise ValueError(f"{name!r} is not in keras_dcgan.options.METRIC_KINDS.")
        REGISTRY[name] = MetricKind(name, needs_real, needs_network, compute)
        return compute

    return register


@register_metric("fid", needs_real=True, needs_network=True)
def _fid(name: str, count: int, inputs: MetricInputs) -> dict[str, float]:
    fake, real = stats_lib.FeatureStats(), stats_lib.FeatureStats()
    fake.update(inputs.fake_features(count)[0])
    real.update(inputs.real_features(count))
    return {name: float(stats_lib.fid_from_stats(fake, real))}


@register_metric("kid", needs_real=True, needs_network=True)
def _kid(name: str, count: int, inputs: MetricInputs) -> dict[str, float]:
    mean, std = stats_lib.kernel_inception_distance(
        inputs.fake_features(count)[0], inputs.real_features(count)
    )
    return {name: float(mean), f"{name}_std": float(std)}


@register_metric("is", needs_real=False, needs_network=True)
def _inception_score(name: str, count: int, inputs: MetricInputs) -> dict[str, float]:
    mean, std = stats_lib.inception_score(inputs.fake_features(count)[1])
    return {name: float(mean), f"{name}_std": float(std)}


@register_metric("digits", needs_real=False, needs_network=False)
def _digits(name: str, count: int, inputs: MetricInputs) -> dict[str, float]:
    from keras_dcgan.evaluation.digits import score_generator

    score = score_generator(inputs.gan, count)
    return {f"digits_{k}": v for k, v in score.as_metrics().items()}


def needs(metrics) -> tuple[bool, bool]:
    """(needs real images, needs the feature network) of the named metrics."""
    kinds = [REGISTRY[parse_metric(name)[0]] for name in metrics]
    return any(k.needs_real for k in kinds), any(k.needs_network for k in kinds)


def metric_inputs(
    metrics,
    dataset: str,
    data_dir: str | None = None,
    inception_weights: str = "imagenet",
    source=None,
    fid_network: str = "tf_inception_2015",
) -> tuple:
    """(source, network) that the named metrics need, None for what they do not: the dataset's
    `ImageSource` (unless `source` is given) and the feature network (`feature_network`)."""
    needs_real, needs_network = needs(metrics)
    network = feature_network(fid_network, inception_weights) if needs_network else None
    if needs_real and source is None:
        from keras_dcgan.data import open_source

        source = open_source(dataset, data_dir=data_dir)
    return (source if needs_real else None), network


def feature_network(fid_network: str = "tf_inception_2015", weights: str = "imagenet"):
    """The feature network of FID, KID and IS: "tf_inception_2015", the reference graph
    (`tf_inception.ReferenceInception`; `weights` "imagenet" is the Keras cache, downloaded at
    first use, else the .pb or .tgz path), or "keras_inception_v3" (`inception.InceptionFeatures`;
    "imagenet", an .h5 path, or "random" for smoke tests). Both take images in [-1, 1] and
    return (pool [N, 2048], probabilities [N, classes])."""
    check_fid_network(fid_network)
    check_inception_weights(weights, fid_network)
    if fid_network == "keras_inception_v3":
        from keras_dcgan.evaluation.inception import InceptionFeatures

        return InceptionFeatures(weights=None if weights == "random" else weights)
    from keras_dcgan.evaluation.tf_inception import ReferenceInception

    return ReferenceInception(None if weights == "imagenet" else weights)


def evaluate(gan, metrics, source=None, network=None, split: str = "train",
             cache_dir: str | None = None) -> dict[str, float]:  # fmt: skip
    """Computes the named metrics; returns {"fid10k": ..., "kid10k": ..., "kid10k_std": ...,
    "is10k": ..., "is10k_std": ..., "seconds": ...}.

    `source` (an `ImageSource`) gives the real images of FID and KID; `network` (see
    `feature_network`) the features of all three; "digits" needs neither (see `REGISTRY`).
    """
    start = time.perf_counter()
    parsed = [(name, *parse_metric(name)) for name in metrics]
    needs_real, needs_network = needs(metrics)
    if needs_network and network is None:
        raise UserError("FID, KID and IS need the feature network (see feature_network).")
    if needs_real and source is None:
        raise UserError("FID and KID need the real images' source.")
    network_counts = [count for _, kind, count in parsed if REGISTRY[kind].needs_network]
    inputs = MetricInputs(gan, source, network, split, cache_dir,
                          fake_count=max(network_counts, default=0))  # fmt: skip
    for _, kind, count in parsed:  # first: a dataset too small fails before any sample is drawn
        if REGISTRY[kind].needs_real:
            inputs.real_features(count)
    results = {}
    for name, kind, count in parsed:
        results.update(REGISTRY[kind].compute(name, count, inputs))
    results["seconds"] = time.perf_counter() - start
    return results
