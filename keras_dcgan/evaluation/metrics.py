"""FID, KID and Inception Score of a generator: `evaluate(gan, ["fid10k", "kid10k", "is10k"], ...)`.

A metric is named by its kind and its sample count: `fid10k` is the Fréchet Inception Distance
between 10,000 generated images (seeds 0..9999, so the set is the same every time) and 10,000
real images of the dataset; `kid5k`, `is50k`, `fid500` likewise. The math is in
`keras_dcgan.evaluation.stats`, the network in `keras_dcgan.evaluation.inception`.

Real-image features are cached on disk (`<cache>/real_features/<key>.npz`) under a hash of the
dataset (its source fingerprint and split), the image size and channels, the sample count and the
feature network, so a training run's periodic FID does not recompute them.
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import numpy as np

from keras_dcgan.errors import UserError
from keras_dcgan.evaluation import stats as stats_lib
from keras_dcgan.options import METRIC_KINDS as KINDS  # noqa: F401 (public names)
from keras_dcgan.options import parse_metric


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


def evaluate(gan, metrics, source=None, network=None, split: str = "train",
             cache_dir: str | None = None) -> dict[str, float]:  # fmt: skip
    """Computes the named metrics; returns {"fid10k": ..., "kid10k": ..., "kid10k_std": ...,
    "is10k": ..., "is10k_std": ..., "seconds": ...}.

    `source` (an `ImageSource`) gives the real images of FID and KID; `network` (an
    `InceptionFeatures`) the features of all three; "digits" needs neither.
    """
    start = time.perf_counter()
    parsed = [(name, *parse_metric(name)) for name in metrics]
    size, channels = gan.image_shape[0], gan.image_shape[2]
    inception = [n for _, kind, n in parsed if kind != "digits"]
    if inception and network is None:
        raise UserError("FID, KID and IS need the feature network (InceptionFeatures).")
    if any(kind in ("fid", "kid") for _, kind, _ in parsed) and source is None:
        raise UserError("FID and KID need the real images' source.")
    real_cache = {}  # first: a dataset too small fails before any sample is drawn
    for _, kind, count in parsed:
        if kind in ("fid", "kid") and count not in real_cache:
            real_cache[count] = real_features(source, size, channels, count, network, split,
                                              cache_dir)  # fmt: skip
    if inception:
        fake_pool, fake_probs = generated_features(gan, max(inception), network)
    results = {}
    for name, kind, count in parsed:
        if kind == "digits":
            from keras_dcgan.evaluation.digits import default_scorer

            score = default_scorer().score(gan.sample(count).numpy())
            results.update({f"digits_{k}": v for k, v in score.as_metrics().items()})
            continue
        if kind == "is":
            mean, std = stats_lib.inception_score(fake_probs[:count])
            results[name], results[f"{name}_std"] = float(mean), float(std)
            continue
        real = real_cache[count]
        if kind == "fid":
            a, b = stats_lib.FeatureStats(), stats_lib.FeatureStats()
            a.update(fake_pool[:count])
            b.update(real)
            results[name] = float(stats_lib.fid_from_stats(a, b))
        else:
            mean, std = stats_lib.kernel_inception_distance(fake_pool[:count], real)
            results[name], results[f"{name}_std"] = float(mean), float(std)
    results["seconds"] = time.perf_counter() - start
    return results
