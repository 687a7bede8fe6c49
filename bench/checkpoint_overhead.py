"""Checkpoint cost: seconds per checkpoint of a preset, and its share of training time.

Builds the preset's DCGAN (random weights: the size, not the values, sets the cost), times
`RunCheckpointer.save` (G, D, both Adam optimizers, noise state, data position; the last
`keep` kept, so older files are deleted as in training) and one training iteration on a synthetic
batch, and prints the median of each and the share of time spent checkpointing every
`--every_steps` iterations: t_ckpt / (every_steps * t_step + t_ckpt).

    python bench/checkpoint_overhead.py --preset=paper64 --batch_size=128 --saves=5 --steps=3
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_dcgan.config import get_config  # noqa: E402
from keras_dcgan.models import DCGAN  # noqa: E402
from keras_dcgan.training.checkpoints import RunCheckpointer  # noqa: E402

_PRESET = flags.DEFINE_string("preset", "paper64", "Model to checkpoint.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Batch of the timed training iterations.")
_SAVES = flags.DEFINE_integer("saves", 5, "Timed checkpoints (median reported).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed training iterations (median reported).")
_EVERY = flags.DEFINE_list("every_steps", ["1000", "100"], "Checkpoint intervals to report.")
_DIR = flags.DEFINE_string("dir", None, "Where to write (default: a temporary folder).")


def main(argv):
    del argv
    config = get_config(_PRESET.value)
    gan = DCGAN.from_model_config(config.model, seed=0)
    gan.compile()
    gan.build()
    model_dir = _DIR.value or tempfile.mkdtemp(prefix="dcgan_ckpt_bench_")
    checkpointer = RunCheckpointer(gan, model_dir, keep=3, preview_seeds=range(64))
    size = config.model.image_size
    images = np.random.default_rng(0).uniform(-1, 1, (_BATCH_SIZE.value, size, size, 3))
    data = tf.data.Dataset.from_tensors(images.astype(np.float32)).repeat().prefetch(2)
    iterator = iter(data)
    gan.make_train_function()
    train = gan.train_function
    train(iterator)  # trace, first step
    step_times = []
    for _ in range(_STEPS.value):
        start = time.perf_counter()
        logs = train(iterator)
        float(np.asarray(logs["d_loss"]))
        step_times.append(time.perf_counter() - start)
    checkpointer.save(0, 0)  # first save creates the files
    save_times = []
    for i in range(_SAVES.value):
        start = time.perf_counter()
        latest = checkpointer.save(0, i + 1)
        save_times.append(time.perf_counter() - start)
    files = [os.path.join(checkpointer.directory, f) for f in os.listdir(checkpointer.directory)]
    megabytes = sum(os.path.getsize(f) for f in files if f.startswith(latest)) / 2**20
    t_step, t_ckpt = statistics.median(step_times), statistics.median(save_times)
    params = sum(int(np.prod(v.shape)) for v in gan.trainable_variables)
    print(
        f"# TF {tf.__version__}, {os.cpu_count()} CPUs; {_PRESET.value}: {params:,} trainable "
        f"parameters, checkpoint {megabytes:.0f} MiB in {model_dir}"
    )
    print(
        f"checkpoint: median {t_ckpt:.2f} s (min {min(save_times):.2f}, max "
        f"{max(save_times):.2f}) | iteration at batch {_BATCH_SIZE.value}: median {t_step:.2f} s"
    )
    for every in (int(e) for e in _EVERY.value):
        share = t_ckpt / (every * t_step + t_ckpt)
        print(f"every {every:>5} steps: {share:.3%} of training time spent checkpointing")


if __name__ == "__main__":
    app.run(main)
