"""Training throughput: images/second of one DCGAN iteration (D update + G update).

Synthetic data (a cached random batch), so only the model is measured. For each preset and batch
size it times blocks of `--steps` iterations of the compiled train function that `fit()` runs
(called directly: a fit() call per block added a start-up cost that dwarfed small models),
alternating keras-dcgan's train
step with a baseline in the same process (so machine noise hits both alike), and prints one line
per configuration: the median img/s of each over `--repeats` blocks after `--warmup` blocks, and
their ratio.

The baseline is the usual Keras custom train_step: plain Keras BatchNorm, fresh noise and a second
G forward pass for the G update (as the keras.io DCGAN example, but with real and fake in
separate D passes).

    python bench/train_throughput.py --presets=half64 --batch_sizes=64
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_dcgan import losses  # noqa: E402
from keras_dcgan.config import get_config  # noqa: E402
from keras_dcgan.models import DCGAN  # noqa: E402

_PRESETS = flags.DEFINE_list("presets", ["half64"], "Presets to measure.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["64"], "Global batch sizes.")
_STEPS = flags.DEFINE_integer("steps", 8, "Iterations per timed block.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed blocks per variant (median reported).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed blocks per variant first.")
_BASELINE = flags.DEFINE_boolean("baseline", True, "Also time the baseline train step.")
_STEPS_PER_EXECUTION = flags.DEFINE_integer("steps_per_execution", 1, "For keras-dcgan's step.")
_PRECISION = flags.DEFINE_enum(
    "precision", "float32", ["float32", "mixed_bfloat16"], "Keras dtype policy of both variants."
)
_AUGMENT = flags.DEFINE_string(
    "augment",
    "",
    "Also time keras-dcgan's step with this DiffAugment policy (e.g. translation,cutout).",
)
_R1_GAMMA = flags.DEFINE_float(
    "r1_gamma", 0.0, "Also time keras-dcgan's step with this R1 penalty weight (with --augment)."
)
_INTER_OP = flags.DEFINE_integer("inter_op_threads", 0, "TF inter-op threads (0: TF's default).")


class BaselineDCGAN(DCGAN):
    """The common way: fresh z and a second G forward for the G step, D's gradients all kept."""

    def train_step(self, data):
        real = self._real_images(data)
        batch = tf.shape(real)[0]
        z = keras.random.uniform((batch, self.z_dim), -1.0, 1.0, seed=self.seed_generator)
        with tf.GradientTape() as tape:
            fake = self.generator(z, training=True)
            d_loss = tf.nn.compute_average_loss(
                losses.discriminator_loss(
                    self.discriminator(real, training=True),
                    self.discriminator(fake, training=True),
                )
            )
        d_vars = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(d_loss, d_vars), d_vars, strict=True))
        z = keras.random.uniform((batch, self.z_dim), -1.0, 1.0, seed=self.seed_generator)
        with tf.GradientTape() as tape:
            logits = self.discriminator(self.generator(z, training=True), training=True)
            g_loss = tf.nn.compute_average_loss(losses.generator_loss(logits))
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(g_loss, g_vars), g_vars, strict=True))
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        return self.get_metrics_result()


def _model(cls, mc, steps_per_execution=1, augment="", r1_gamma=0.0):
    gan = cls.from_model_config(mc, seed=0, augment=augment, r1_gamma=r1_gamma)
    gan.compile(steps_per_execution=steps_per_execution)
    gan.build()
    return gan


def _time_block(gan, iterator, steps):
    start = time.perf_counter()
    for _ in range(steps // gan.steps_per_execution):
        logs = gan.train_function(iterator)
    if isinstance(logs, tf.experimental.Optional):
        logs = logs.get_value()
    float(logs["d_loss"])  # waits for the last step to finish
    return time.perf_counter() - start


def main(argv):
    del argv
    if _INTER_OP.value:
        tf.config.threading.set_inter_op_parallelism_threads(_INTER_OP.value)
    keras.mixed_precision.set_global_policy(_PRECISION.value)
    print(
        f"# TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
        f"{_PRECISION.value}, inter-op threads {_INTER_OP.value or 'default'}; "
        f"{_STEPS.value} steps/block, median of {_REPEATS.value} blocks after {_WARMUP.value}"
    )
    for preset in _PRESETS.value:
        for batch_size in map(int, _BATCH_SIZES.value):
            config = get_config(preset, batch_size=batch_size)
            mc = config.model
            shape = (batch_size, mc.image_size, mc.image_size, mc.channels)
            images = np.random.default_rng(0).uniform(-1, 1, shape).astype("float32")
            dataset = tf.data.Dataset.from_tensors(images).cache().repeat()
            variants = {"keras-dcgan": _model(DCGAN, mc, _STEPS_PER_EXECUTION.value)}
            options = {"augment": _AUGMENT.value, "r1_gamma": _R1_GAMMA.value}
            option_names = ", ".join(f"{k}={v}" for k, v in options.items() if v)
            if option_names:
                variants["options"] = _model(DCGAN, mc, _STEPS_PER_EXECUTION.value, **options)
            if _BASELINE.value:
                variants["baseline"] = _model(
                    BaselineDCGAN, get_config(preset, fused_batch_norm=False).model
                )
            times = {name: [] for name in variants}
            iterators = {}
            for name, gan in variants.items():
                gan.make_train_function()
                iterators[name] = iter(dataset)
            for block in range(_WARMUP.value + _REPEATS.value):
                for name, gan in variants.items():
                    seconds = _time_block(gan, iterators[name], _STEPS.value)
                    if block >= _WARMUP.value:
                        times[name].append(seconds)
            rates = {
                name: [_STEPS.value * batch_size / t for t in ts] for name, ts in times.items()
            }
            medians = {name: statistics.median(r) for name, r in rates.items()}
            ours = medians["keras-dcgan"]
            line = f"{preset:9s} batch {batch_size:4d}: keras-dcgan {ours:7.1f} img/s"
            spread = rates["keras-dcgan"]
            line += f" (min {min(spread):.1f}, max {max(spread):.1f})"
            if "options" in medians:
                line += (
                    f" | with {option_names} {medians['options']:7.1f} img/s"
                    f" | ratio {medians['options'] / ours:.2f}"
                )
            if "baseline" in medians:
                line += (
                    f" | baseline {medians['baseline']:7.1f} img/s"
                    f" | ratio {medians['keras-dcgan'] / medians['baseline']:.2f}"
                )
            print(line, flush=True)


if __name__ == "__main__":
    app.run(main)
