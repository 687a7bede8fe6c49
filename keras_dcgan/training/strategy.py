"""Which tf.distribute strategy a run uses."""

from __future__ import annotations

import os
from typing import NamedTuple

import tensorflow as tf

from keras_dcgan.errors import UserError
from keras_dcgan.options import STRATEGIES


def get_strategy(name: str = "auto", devices: list[str] | None = None) -> tf.distribute.Strategy:
    """Returns a tf.distribute strategy by name.

    - "auto": MirroredStrategy over all GPUs when there are several, else TF's default strategy
      (no distribution wrapper: ops go to the GPU if there is one; on CPU this was about 15%
      faster than OneDeviceStrategy, whose dataset distribution adds work per step).
    - "one_device": OneDeviceStrategy on `devices[0]`, else the first GPU, else the CPU.
    - "mirrored": MirroredStrategy over `devices` (default: all GPUs, or the CPU).
    - "multi_worker": MultiWorkerMirroredStrategy over the machines that the TF_CONFIG
      environment variable describes (every worker runs the same command with its own TF_CONFIG).
    - "tpu": TPUStrategy on the TPU that $TPU_NAME names (Colab and Cloud TPU VMs need none).
    """
    if name not in STRATEGIES:
        raise UserError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise UserError(
                "--strategy=multi_worker needs the TF_CONFIG environment variable (the cluster "
                "and this worker's task); see the README, 'On several machines'."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
                tpu=os.environ.get("TPU_NAME", "")
            )
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            raise UserError(f"--strategy=tpu found no TPU: {e}") from None
        return tf.distribute.TPUStrategy(resolver)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if len(gpus) <= 1 and not devices:
            return tf.distribute.get_strategy()
        name = "mirrored"
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if devices and len(devices) != 1:
        raise UserError(f"one_device takes exactly one device; got {devices}.")
    device = devices[0] if devices else ("/gpu:0" if gpus else "/cpu:0")
    return tf.distribute.OneDeviceStrategy(device)


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run folder: the chief, or worker 0 of a chief-less
    cluster; every process when training is not multi-worker."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not is_multi_worker(strategy) or resolver is None or resolver.task_type is None:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0


class PrecisionChoice(NamedTuple):
    precision: str  # one of keras_dcgan.config.PRECISIONS
    reason: str  # what was found, for the user


def auto_precision() -> PrecisionChoice:
    """The training precision that suits this machine's accelerator.

    - TPUs, and NVIDIA GPUs of compute capability 8.0 or more (A100, A10, L4, H100): bfloat16
      tensor cores, float32's range: `mixed_bfloat16`.
    - Compute capability 7.x (V100, T4): float16 tensor cores only: `mixed_float16` (with its
      dynamic loss scaling).
    - Older GPUs and CPUs: `float32`. (CPUs with AVX512_BF16 run bfloat16 faster, see the
      README's "Performance", but float32 is the portable default.)
    With several GPUs the oldest decides.
    """
    if tf.config.list_logical_devices("TPU"):
        return PrecisionChoice("mixed_bfloat16", "TPU: bfloat16 matrix units")
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return PrecisionChoice("float32", "no GPU")
    found = []
    for gpu in gpus:
        details = tf.config.experimental.get_device_details(gpu)
        found.append((tuple(details.get("compute_capability") or (0, 0)),
                      details.get("device_name", gpu.name)))  # fmt: skip
    capability, name = min(found)
    label = f"{name}, compute capability {capability[0]}.{capability[1]}"
    if capability >= (8, 0):
        return PrecisionChoice("mixed_bfloat16", f"{label}: bfloat16 tensor cores")
    if capability >= (7, 0):
        return PrecisionChoice("mixed_float16", f"{label}: float16 tensor cores, no bfloat16")
    return PrecisionChoice("float32", f"{label}: no tensor cores")
