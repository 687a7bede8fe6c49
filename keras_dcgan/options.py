"""The named choices of a run and their parsers, in one dependency-free module.

`keras_dcgan.config` validates every field with these, and the layers below (the latent prior,
DiffAugment, the data pipeline, the metrics, the train step) import the same names, so a choice is
listed and checked in one place. No TensorFlow, Keras or NumPy here: `keras_dcgan.config` and the
CLI's `--help` load without them.
"""

from __future__ import annotations

import re

from keras_dcgan import validation
from keras_dcgan.errors import UserError

# Image channels: grayscale or RGB.
CHANNELS = (1, 3)
# The latent prior: "uniform" is the paper's U[-1, 1], "normal" N(0, 1).
Z_PRIORS = ("uniform", "normal")
# Hidden activations of the generator ("relu" in the paper).
G_ACTIVATIONS = ("relu", "leaky_relu", "elu")
# tf.distribute strategies (`keras_dcgan.training.strategy.get_strategy`).
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
# Keras dtype policies a run may train under (weights and optimizer state stay float32).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# What the pipeline does with an image smaller than the model's size.
SMALL_IMAGE_POLICIES = ("upscale", "skip")
# DiffAugment transformations of D's inputs (`keras_dcgan.augment`), applied in the order given.
AUGMENTATIONS = ("translation", "cutout")
# How D's update sees the real and the fake batch: "separate" forward passes (the paper; BatchNorm
# statistics per batch) or one "concatenated" batch (the Chainer illustration blog's ablation: it
# fails, BatchNorm's statistics mixing real and fake).
D_BATCHES = ("separate", "concatenated")
# BatchNorm of G's 4x4 projection: "channel" (per channel after the reshape: the paper, pytorch)
# or "feature" (per each of the 4*4*C Dense outputs before the reshape: the Chainer blog).
PROJECTION_BNS = ("channel", "feature")
# Sample-quality metric kinds (`keras_dcgan.evaluation.metrics`); all but "digits" take a count.
METRIC_KINDS = ("fid", "kid", "is", "digits")
DIGITS_SAMPLES = 1000  # samples of the "digits" score
# The feature network of FID, KID and IS: the reference 2015 Inception graph (comparable with
# published FIDs) or Keras' InceptionV3 (not comparable; `keras_dcgan.evaluation`).
FID_NETWORKS = ("tf_inception_2015", "keras_inception_v3")


def check_channels(channels) -> int:
    if not validation.is_int(channels) or channels not in CHANNELS:
        raise UserError(f"channels must be 1 or 3; got {channels!r}.")
    return int(channels)


def check_z_prior(prior) -> str:
    if prior not in Z_PRIORS:
        raise UserError(
            f"Unknown latent prior {prior!r}; z_prior must be one of {', '.join(Z_PRIORS)}."
        )
    return prior


def check_small_images(policy) -> str:
    return validation.one_of(policy, SMALL_IMAGE_POLICIES, "small_images")


def check_precision(precision) -> str:
    return validation.one_of(precision, PRECISIONS, "precision")


def check_fid_network(network) -> str:
    return validation.one_of(network, FID_NETWORKS, "fid_network")


def check_inception_weights(weights, network: str) -> str:
    """`weights` for `network`: "imagenet" (the Keras cache), a path, or "random" (Keras'
    InceptionV3 only: smoke tests)."""
    if not isinstance(weights, str) or not weights:
        raise UserError(
            f"inception_weights must be 'imagenet', a path or 'random'; got {weights!r}."
        )
    if weights == "random" and network != "keras_inception_v3":
        raise UserError(
            "inception_weights='random' exists only for fid_network='keras_inception_v3' (smoke "
            "tests); the reference graph has its own weights."
        )
    return weights


def check_r1_gamma(gamma) -> float:
    """`gamma` as a float, if it is a finite number >= 0."""
    return validation.number(gamma, "r1_gamma", minimum=0)


def check_d_batch(d_batch) -> str:
    return validation.one_of(d_batch, D_BATCHES, "d_batch")


def check_projection_bn(projection_bn) -> str:
    return validation.one_of(projection_bn, PROJECTION_BNS, "projection_bn")


def check_leaky_slope(slope) -> float:
    """D's LeakyReLU negative slope as a float in [0, 1) (0: ReLU, the blog's ablation)."""
    return validation.unit_interval(slope, "d_leaky_slope")


def parse_augment(policy: str | None) -> tuple[str, ...]:
    """ "translation,cutout" -> ("translation", "cutout"); "", "none" or None -> () (none)."""
    if policy is None:
        return ()
    if not isinstance(policy, str):
        raise UserError(f"augment must be a comma-separated string; got {policy!r}.")
    if policy.strip() == "none":
        return ()
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise UserError(
            f"Unknown augmentation {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(AUGMENTATIONS)} (comma-separated), or 'none'."
        )
    if len(set(names)) != len(names):
        raise UserError(f"augment names an augmentation twice: {policy!r}.")
    return names


def parse_metric(name: str) -> tuple[str, int]:
    """ "fid10k" -> ("fid", 10000); "kid500" -> ("kid", 500); "digits" -> ("digits", 1000)."""
    if not isinstance(name, str):
        raise UserError(f"A metric name must be a string; got {name!r}.")
    if name.strip().lower() == "digits":
        return "digits", DIGITS_SAMPLES
    match = re.fullmatch(r"(fid|kid|is)(\d+)(k?)", name.strip().lower())
    if not match:
        raise UserError(
            f"Unknown metric {name!r}: use fid, kid or is followed by the sample count, e.g. "
            "fid10k, kid5k, is50k, fid500 (or digits, the offline digits score)."
        )
    count = int(match.group(2)) * (1000 if match.group(3) else 1)
    if count < 2:
        raise UserError(f"Metric {name!r} needs at least 2 samples.")
    return match.group(1), count


def parse_metrics(names) -> tuple[str, ...]:
    """A list of metric names, each checked with `parse_metric`, as a tuple."""
    if isinstance(names, str):
        raise UserError(f"eval_metrics must be a list of names; got {names!r}.")
    names = tuple(names)
    for name in names:
        parse_metric(name)
    return names
