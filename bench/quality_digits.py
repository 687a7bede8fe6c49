"""Quality curve of the offline default: train `digits32` on CPU, print the digits score as it goes.

Trains the `digits32` preset (scikit-learn's digits, 32x32 gray) for `--steps` iterations with
`keras_dcgan.training.train` and, every `--every` steps, scores 1,000 samples (seeds 0..999) with
the digits classifier (`keras_dcgan.evaluation.digits`): the share of confident predictions, the
classes present, the KL of the class histogram from uniform and the Fréchet distance in the
classifier's logit space. For reference it first prints the same score of 1,000 real digits, and
the quality bar: a confident share of at least `BAR` (80%) of the real digits' own (88.6% -> 70.9%
on this scorer); steps that meet it are marked.

    python bench/quality_digits.py --steps=6000 --every=1000
    python bench/quality_digits.py --steps=6000 --every=1000 --augment=none   # the paper's recipe
"""

from __future__ import annotations

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from keras_dcgan.config import get_config  # noqa: E402
from keras_dcgan.data import load_digits  # noqa: E402
from keras_dcgan.evaluation.digits import default_scorer  # noqa: E402
from keras_dcgan.training import train  # noqa: E402

BAR = 0.8  # of the real digits' confident share under the same scorer
_STEPS = flags.DEFINE_integer("steps", 5000, "Total training iterations.")
_EVERY = flags.DEFINE_integer("every", 500, "Iterations between scores.")
_SEED = flags.DEFINE_integer("seed", 0, "Training seed.")
_OVERRIDES = flags.DEFINE_list("set", [], "Config overrides key=value (e.g. base_width=64).")
_AUGMENT = flags.DEFINE_string(
    "augment", None, "DiffAugment policy (default: the preset's, translation,cutout); none: off."
)


def _parse(items):
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        out[key] = {"True": True, "False": False}.get(value, value)
    return out


def main(argv):
    del argv
    scorer = default_scorer()
    real, _ = load_digits(32, 1)
    real_score = scorer.score(real[:1000])
    bar = BAR * real_score.confident_share
    print(f"real digits (1,000): {real_score.summary()}")
    print(
        f"bar: {bar:.1%} confident ({BAR:.0%} of the real digits' {real_score.confident_share:.1%})"
    )
    model_dir = tempfile.mkdtemp(prefix="dcgan_quality_")
    start = time.perf_counter()
    for steps in range(_EVERY.value, _STEPS.value + 1, _EVERY.value):
        overrides = _parse(_OVERRIDES.value)
        if _AUGMENT.value is not None:
            overrides["augment"] = _AUGMENT.value
        config = get_config("digits32", steps=steps, seed=_SEED.value, **overrides)
        result = train(config, model_dir, verbose=0)
        score = result.digits_score
        print(
            f"step {steps:>6}: {score.confident_share:6.1%} confident, "
            f"{score.classes_present:>2}/10 classes, KL {score.kl_from_uniform:.3f}, "
            f"Fréchet {score.frechet_distance:7.2f} ({time.perf_counter() - start:.0f} s)"
            f"{'  meets the bar' if score.confident_share >= bar else ''}",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
