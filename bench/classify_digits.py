"""Discriminator features as a classifier (paper sec. 5.1) on the offline digits: trained vs
random-init D.

Trains the `digits32` preset (scikit-learn's digits, 32x32 gray) for `--steps` iterations with
`keras_dcgan.training.train` (or reuses `--model_dir` when it already holds that many steps), then
runs the digits protocol of `keras_dcgan.analysis.features`: `--labels` labelled images (the same
number per class), `--val_size` validation images for choosing the SVM's C, every other image as
test, `--repeats` random draws. It prints the test error (mean +- sample std over repeats) of the
trained discriminator's features and of a randomly initialised discriminator of the same
architecture on the same splits, and the paired margin (random-init error - trained error).

    python bench/classify_digits.py --steps=3000 --labels=50 --repeats=20

Measured (2 shared CPU cores, TF 2.21): see the README's "Discriminator features as a classifier".
"""

from __future__ import annotations

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_dcgan.analysis import features  # noqa: E402
from keras_dcgan.config import get_config  # noqa: E402
from keras_dcgan.training import train  # noqa: E402

_STEPS = flags.DEFINE_integer("steps", 3000, "Training iterations of the digits32 run.")
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Run folder (trained or continued to --steps); default: a temporary one."
)
_TRAIN_SEED = flags.DEFINE_integer("train_seed", 0, "Seed of the training run.")
_AUGMENT = flags.DEFINE_string(
    "augment", None, "DiffAugment policy (default: the preset's, translation,cutout); none: off."
)
_LABELS = flags.DEFINE_integer("labels", 50, "Labelled training images (a multiple of 10).")
_VAL_SIZE = flags.DEFINE_integer("val_size", 300, "Validation images for choosing C.")
_REPEATS = flags.DEFINE_integer("repeats", 20, "Random draws of labels and validation images.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the draws, the SVMs and the random-init D.")
_C = flags.DEFINE_list("C", None, "C values (default: the library's grid, 1e-5 ... 1).")


def main(argv):
    del argv
    model_dir = _MODEL_DIR.value or os.path.join(tempfile.mkdtemp(), "digits32")
    start = time.time()
    config = get_config(
        "digits32", steps=_STEPS.value, seed=_TRAIN_SEED.value, augment=_AUGMENT.value
    )
    train(config, model_dir, verbose=0)
    trained_s = time.time() - start
    grid = [float(c) for c in _C.value] if _C.value else features.DEFAULT_C_GRID
    start = time.time()
    report = features.classify(
        model_dir, "digits", labels=_LABELS.value, val_size=_VAL_SIZE.value,
        repeats=_REPEATS.value, C_grid=grid, seed=_SEED.value,
    )  # fmt: skip
    margins = np.subtract(report.random_init.test_errors, report.trained.test_errors)
    print(report.summary())
    print(
        f"  paired margin (random-init - trained): {100 * margins.mean():.2f} points "
        f"(trained better in {np.mean(margins > 0):.0%} of {len(margins)} repeats)"
    )
    print(f"  run {model_dir}: {trained_s:.0f} s to train/load, {time.time() - start:.0f} s to "
          "classify")  # fmt: skip


if __name__ == "__main__":
    app.run(main)
