"""Writes the compatibility fixtures of tests/test_compat.py with the layout of issue 19's start.

Run once, from the repository root, at commit 4517f4e (before G's and D's layers were named and
the checkpoints keyed G's and D's variables by name):

    TF_CPP_MIN_LOG_LEVEL=2 python tests/data/make_run_folder_v0.py

It builds the `tiny` preset's DCGAN with `base_width=2` (G's widths 8, 4, 2; D's 2, 4, 8: a
few thousand parameters, so the files stay small), seed 0, trains it one step on 8 fixed random
images (so weights, BatchNorm statistics, Adam's moments and the noise state are not their
initial values) and writes:

- `run_folder_v0/`: a run folder as `dcgan train` leaves one (config.json and one checkpoint,
  whose G and D variables are keyed by position: `generator/0`, `generator/1`, ...);
- `dcgan_v0.keras`: the same DCGAN saved with `DCGAN.save` (G's layers under
  `generator/blocks/container_<i>/<layer class>`, the DCGAN's own state as "noise_seed_state");
- `expected_v0.npz`: `samples` = `gan.sample(seeds=range(4))` [4, 32, 32, 3], `logits` = D's
  logits [8, 1] of the 8 training images (`random_images(8, seed=19)`), `noise_seed_state` [2],
  and every variable of G and D (`g_0`, `g_1`, ..., `d_0`, ...) in `network.variables` order.
"""

import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # this checkout's keras_dcgan and tests

from tests.helpers import batches, random_images, tiny_config, tiny_gan, write_run_folder  # noqa: E402

OVERRIDES = dict(base_width=2)


def main():
    gan = tiny_gan(seed=0, **OVERRIDES)
    images = random_images(8, size=32, channels=3, seed=19)
    gan.fit(batches(images, 8), epochs=1, verbose=0)
    folder = os.path.join(HERE, "run_folder_v0")
    shutil.rmtree(folder, ignore_errors=True)
    write_run_folder(folder, gan, tiny_config(**OVERRIDES))
    gan.save(os.path.join(HERE, "dcgan_v0.keras"))
    arrays = dict(
        samples=np.asarray(gan.sample(seeds=range(4))),
        logits=np.asarray(gan.discriminator(images, training=False)),
        noise_seed_state=gan.seed_generator.state.numpy(),
    )
    for prefix, network in (("g", gan.generator), ("d", gan.discriminator)):
        for i, variable in enumerate(network.variables):
            arrays[f"{prefix}_{i}"] = variable.numpy()
    np.savez_compressed(os.path.join(HERE, "expected_v0.npz"), **arrays)


if __name__ == "__main__":
    main()
