"""Training throughput: images/second of one DCGAN iteration (D update + G update), per precision.

Synthetic data (a cached random batch), so only the model is measured. For each preset and batch
size it times blocks of `--steps` iterations of the compiled train function that `fit()` runs
(called directly: a fit() call per block added a start-up cost that dwarfed small models), for
every precision in `--precision` (and, with `--jit_compile`, the same under XLA), alternating the
variants and a baseline in the same process (so machine noise hits all alike).

Beside each rate it prints the limit of the machine in that precision: the GFLOP/s of 2048x2048
matmuls in the compute dtype, measured just before and just after every timed block of the same
run, divided by the FLOPs of one iteration (`keras_dcgan.models.iteration_flops`: convolutions and
matmuls, 2.27 GFLOP per image for `half64`); and the rate as a share of it: the median over blocks
of (block rate / the limit measured around that block), which other work on a shared machine
disturbs much less than either figure alone, and the best rate over the best limit. It ends with
the process's CPU time (user + sys), since wall time on a shared machine is distorted by other
work.

The baseline is the usual Keras custom train_step: plain Keras BatchNorm, fresh noise and a second
G forward pass for the G update (as the keras.io DCGAN example, but with real and fake in
separate D passes).

    python bench/train_throughput.py --presets=half64 --batch_sizes=64 \
        --precision=float32,mixed_bfloat16 --nobaseline
"""

from __future__ import annotations

import os
import resource
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_dcgan import losses  # noqa: E402
from keras_dcgan.config import PRECISIONS, get_config  # noqa: E402
from keras_dcgan.models import DCGAN, iteration_flops  # noqa: E402

_PRESETS = flags.DEFINE_list("presets", ["half64"], "Presets to measure.")
_BATCH_SIZES = flags.DEFINE_list("batch_sizes", ["64"], "Global batch sizes.")
_STEPS = flags.DEFINE_integer("steps", 8, "Iterations per timed block.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed blocks per variant (median reported).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed blocks per variant first.")
_BASELINE = flags.DEFINE_boolean("baseline", True, "Also time the baseline train step.")
_STEPS_PER_EXECUTION = flags.DEFINE_integer("steps_per_execution", 1, "For keras-dcgan's step.")
_PRECISION = flags.DEFINE_list(
    "precision", ["float32"], f"Precisions to time side by side, of {', '.join(PRECISIONS)}."
)
flags.register_validator(
    "precision",
    lambda values: bool(values) and set(values) <= set(PRECISIONS),
    f"--precision takes a comma-separated list of {', '.join(PRECISIONS)}.",
)
_JIT_COMPILE = flags.DEFINE_boolean(
    "jit_compile", False, "Also time keras-dcgan's step compiled with XLA, in each precision."
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
_MATMUL_SIZE = flags.DEFINE_integer("matmul_size", 2048, "Side of the matmul of the limit.")

COMPUTE_DTYPES = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


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


def _model(cls, mc, precision, steps_per_execution=1, jit_compile=False, **options):
    gan = cls.from_model_config(mc, seed=0, precision=precision, **options)
    gan.compile(steps_per_execution=steps_per_execution, jit_compile=jit_compile)
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


class MatmulPeak:
    """GFLOP/s of n x n matmuls in `dtype` (one timed call of 5 chained products: each needs
    the one before, so none can be pruned or overlapped)."""

    def __init__(self, dtype: str, n: int):
        a = tf.random.stateless_normal((n, n), seed=(0, 0)) / n**0.5  # keeps the scale ~1
        self.a = tf.cast(a, dtype)
        self.flops = 2.0 * n**3 * 5

        @tf.function
        def chain(a):
            b = a
            for _ in range(5):
                b = tf.matmul(b, a)
            return b

        self.fn = chain
        self.fn(self.a).numpy()

    def __call__(self) -> float:
        start = time.perf_counter()
        self.fn(self.a).numpy()
        return self.flops / (time.perf_counter() - start) / 1e9


def _variants(preset, batch_size, precision):
    """name -> compiled model, for one precision."""
    mc = get_config(preset, batch_size=batch_size).model
    spe = _STEPS_PER_EXECUTION.value
    variants = {"keras-dcgan": _model(DCGAN, mc, precision, spe)}
    if _JIT_COMPILE.value:
        variants["xla"] = _model(DCGAN, mc, precision, spe, jit_compile=True)
    options = {"augment": _AUGMENT.value, "r1_gamma": _R1_GAMMA.value}
    if any(options.values()):
        variants["options"] = _model(DCGAN, mc, precision, spe, **options)
    if _BASELINE.value:
        baseline_mc = get_config(preset, fused_batch_norm=False).model
        variants["baseline"] = _model(BaselineDCGAN, baseline_mc, precision)
    return variants


def main(argv):
    del argv
    if _INTER_OP.value:
        tf.config.threading.set_inter_op_parallelism_threads(_INTER_OP.value)
    precisions = list(dict.fromkeys(_PRECISION.value))
    print(
        f"# TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs, "
        f"inter-op threads {_INTER_OP.value or 'default'}; {_STEPS.value} steps/block, median "
        f"of {_REPEATS.value} blocks after {_WARMUP.value}; load average before: "
        f"{os.getloadavg()[0]:.2f}"
    )
    peaks = {p: MatmulPeak(COMPUTE_DTYPES[p], _MATMUL_SIZE.value) for p in precisions}
    option_names = ", ".join(
        f"{k}={v}" for k, v in {"augment": _AUGMENT.value, "r1_gamma": _R1_GAMMA.value}.items() if v
    )
    for preset in _PRESETS.value:
        flops = iteration_flops(get_config(preset).model).total
        for batch_size in map(int, _BATCH_SIZES.value):
            mc = get_config(preset).model
            shape = (batch_size, mc.image_size, mc.image_size, mc.channels)
            images = np.random.default_rng(0).uniform(-1, 1, shape).astype("float32")
            dataset = tf.data.Dataset.from_tensors(images).cache().repeat()
            models = {
                (p, name): gan
                for p in precisions
                for name, gan in _variants(preset, batch_size, p).items()
            }
            iterators = {}
            for key, gan in models.items():
                gan.make_train_function()
                iterators[key] = iter(dataset)
            times = {key: [] for key in models}
            gflops = {p: [] for p in precisions}
            shares = {p: [] for p in precisions}  # block rate / the limit measured around it
            for block in range(_WARMUP.value + _REPEATS.value):
                for key, gan in models.items():
                    p = key[0]
                    before = peaks[p]() if key[1] == "keras-dcgan" else None
                    seconds = _time_block(gan, iterators[key], _STEPS.value)
                    if block < _WARMUP.value:
                        continue
                    times[key].append(seconds)
                    if before is not None:
                        around = (before + peaks[p]()) / 2
                        gflops[p].append(around)
                        rate = _STEPS.value * batch_size / seconds
                        shares[p].append(rate / (around * 1e9 / flops))
            rates = {k: [_STEPS.value * batch_size / t for t in ts] for k, ts in times.items()}
            medians = {k: statistics.median(r) for k, r in rates.items()}
            print(f"{preset} batch {batch_size}: {flops / 1e9:.2f} GFLOP per image-iteration")
            for p in precisions:
                peak = statistics.median(gflops[p])
                limit = peak * 1e9 / flops
                ours = medians[(p, "keras-dcgan")]
                spread = rates[(p, "keras-dcgan")]
                best = max(spread) / (max(gflops[p]) * 1e9 / flops)
                line = (
                    f"  {p:14s} keras-dcgan {ours:7.1f} img/s (min {min(spread):.1f}, max "
                    f"{max(spread):.1f}); limit {limit:.1f} img/s (matmul {peak:.0f} GFLOP/s, "
                    f"min {min(gflops[p]):.0f}, max {max(gflops[p]):.0f}); share of the limit: "
                    f"median per block {statistics.median(shares[p]):.0%}, best/best {best:.0%}"
                )
                if (p, "xla") in medians:
                    xla = medians[(p, "xla")]
                    line += f" | XLA {xla:7.1f} img/s, ratio {xla / ours:.2f}"
                if (p, "options") in medians:
                    opt = medians[(p, "options")]
                    line += f" | with {option_names} {opt:7.1f} img/s, ratio {opt / ours:.2f}"
                if (p, "baseline") in medians:
                    base = medians[(p, "baseline")]
                    line += f" | baseline {base:7.1f} img/s, ratio {ours / base:.2f}"
                print(line, flush=True)
            if len(precisions) > 1:
                first = medians[(precisions[0], "keras-dcgan")]
                ratios = ", ".join(
                    f"{p} {medians[(p, 'keras-dcgan')] / first:.2f}" for p in precisions[1:]
                )
                print(f"  against {precisions[0]}: {ratios}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        f"# CPU time {usage.ru_utime + usage.ru_stime:.0f} s (user {usage.ru_utime:.0f}, sys "
        f"{usage.ru_stime:.0f}); load average after: {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    app.run(main)
