"""Run-folder checkpoints: everything training state is made of, written and read safely.

A checkpoint holds G's and D's variables (BatchNorm statistics included), both optimizers, the
noise SeedGenerator state, the fixed preview seeds and the data position: the epoch and the number
of batches of it already consumed. It is named by the iteration count (`ckpt-<step>`). TF writes
the data file first and the index last, and the `checkpoint` state file only after both, so a
process killed while saving leaves the previous checkpoints intact; `RunCheckpointer.restore`
falls back to the previous checkpoint (with a warning) when the latest is unreadable.
"""

from __future__ import annotations

import glob
import logging
import os
import re

import keras
import numpy as np
import tensorflow as tf

from keras_dcgan.config import Config
from keras_dcgan.models import DCGAN
from keras_dcgan.training.callbacks import iterations

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
SKIPPED_FILE = "skipped_inputs.tsv"


def make_checkpoint(gan: DCGAN, **state) -> tf.train.Checkpoint:
    """A tf.train.Checkpoint of the GAN's training state plus `state` (tf.Variables).

    G and D are listed by their variables (weights AND BatchNorm moving statistics), in their
    deterministic creation order: Keras 3 keeps layers held in Python lists out of TF's object
    graph, so `Checkpoint(generator=model)` would save nothing of them but what the optimizer
    happens to reference (the trainable weights, not the BatchNorm statistics).

    Under loss scaling (`mixed_float16`) each optimizer is listed by its inner optimizer (the
    entries of a float32 run: Adam's moments and iterations) and its loss scale apart, as
    `g_loss_scale`/`d_loss_scale` (the scale and its count of good steps). So the checkpoint of
    any precision loads into a float32 model (sampling, export), and a resumed float16 run goes
    on with the scales it had.
    """
    optimizers = {}
    for name in ("g", "d"):
        optimizer = getattr(gan, f"{name}_optimizer")
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            if not optimizer.built:  # its scale variables do not exist yet
                raise ValueError("Build the DCGAN (gan.build()) before checkpointing it.")
            optimizers[f"{name}_loss_scale"] = {
                "scale": optimizer.dynamic_scale,
                "good_steps": optimizer.step_counter,
            }
            optimizer = optimizer.inner_optimizer
        optimizers[f"{name}_optimizer"] = optimizer
    return tf.train.Checkpoint(
        generator=list(gan.generator.variables),
        discriminator=list(gan.discriminator.variables),
        noise_seed_state=gan.seed_generator.state,
        **optimizers,
        **state,
    )


def checkpoint_files(directory: str) -> list[str]:
    """Checkpoint prefixes in `directory` that have an index file, oldest (lowest step) first.

    Read from the files, not from TF's `checkpoint` state file, so that a damaged state file
    does not hide the checkpoints."""
    found = []
    for index in glob.glob(os.path.join(directory, "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
        if match:
            found.append((int(match.group(1)), index[: -len(".index")]))
    return [prefix for _, prefix in sorted(found)]


class RunCheckpointer:
    """Saves and restores a run's state in `<model_dir>/checkpoints`, keeping the last `keep`.

    `epoch` and `batch` are the data position: the next batch to train on is batch `batch` of
    epoch `epoch`. `skip_log` (a `keras_dcgan.data.SkipLog`, optional) is written next to each
    checkpoint as `skipped_inputs.tsv`, and read back on restore, so that a resumed run can skip
    the consumed part of an epoch without decoding it again.

    On a chief-less worker (multi-worker training) pass `write=False`: it saves into a
    temporary folder (TF's collective save needs every worker to save) that is deleted.
    """

    def __init__(self, gan: DCGAN, model_dir: str, keep: int = 3, preview_seeds=(),
                 skip_log=None, write: bool = True):  # fmt: skip
        self.gan = gan
        self.model_dir = model_dir
        self.directory = os.path.join(model_dir, CHECKPOINT_DIR)
        if not write:
            self.directory = os.path.join(model_dir, f".worker_tmp_{os.getpid()}")
        self.write = write
        self.skip_log = skip_log
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.batch = tf.Variable(0, dtype=tf.int64, trainable=False, name="batch_in_epoch")
        self.preview_seeds = tf.Variable(
            np.asarray(list(preview_seeds), np.int64), trainable=False, name="preview_seeds",
            shape=tf.TensorShape([None]),
        )  # fmt: skip
        self.checkpoint = make_checkpoint(
            gan, epoch=self.epoch, batch_in_epoch=self.batch, preview_seeds=self.preview_seeds
        )
        os.makedirs(self.directory, exist_ok=True)
        self.manager = self._manager(keep)
        self.restored_from = None

    def _manager(self, keep):
        manager = tf.train.CheckpointManager(self.checkpoint, self.directory, max_to_keep=keep)
        files = checkpoint_files(self.directory)
        if files and set(manager.checkpoints) != set(files):
            # The `checkpoint` state file is missing or damaged (TF then ignores it): rebuild it
            # from the files, so that old checkpoints are still rotated out.
            log.warning("Rebuilding the checkpoint state file of %s.", self.directory)
            tf.compat.v1.train.update_checkpoint_state(self.directory, files[-1], files)
            manager = tf.train.CheckpointManager(self.checkpoint, self.directory, keep)
        return manager

    @property
    def position(self) -> tuple[int, int]:
        return int(self.epoch.numpy()), int(self.batch.numpy())

    def steps(self) -> int:
        return iterations(self.gan)

    def save(self, epoch: int, batch: int) -> str | None:
        """Writes a checkpoint at data position (epoch, batch), named by the iteration count."""
        self.epoch.assign(epoch)
        self.batch.assign(batch)
        path = self.manager.save(checkpoint_number=self.steps())
        if not self.write:
            return None
        if self.skip_log is not None and self.skip_log.count:
            write_skipped(self.skip_log, self.model_dir)
        return path

    def restore(self) -> str | None:
        """Restores the newest readable checkpoint (None when there is none).

        An unreadable one (truncated, partial) is reported and the previous one tried; if none
        can be read, raises an error rather than starting over on top of them.
        """
        files = checkpoint_files(os.path.join(self.model_dir, CHECKPOINT_DIR))
        failures = []
        for prefix in reversed(files):
            try:
                # expect_partial: a float16 run's loss scales are extra in a float32 model.
                self.checkpoint.restore(prefix).expect_partial().assert_existing_objects_matched()
            except Exception as e:  # noqa: BLE001 (truncated files raise all sorts)
                reason = str(e).strip().splitlines()[0][:200]
                log.warning("Checkpoint %s is unreadable (%s); trying the previous one.", prefix,
                            reason)  # fmt: skip
                print(f"Warning: checkpoint {prefix} is unreadable ({reason}); falling back.")
                failures.append(prefix)
                continue
            if self.skip_log is not None:
                read_skipped(self.skip_log, self.model_dir)
            self.restored_from = prefix
            return prefix
        if failures:
            raise ValueError(
                f"No readable checkpoint in {self.directory} (tried {len(failures)}: "
                f"{', '.join(os.path.basename(f) for f in failures)}); move the folder away to "
                "start over."
            )
        return None

    def close(self):
        if not self.write:
            import shutil

            shutil.rmtree(self.directory, ignore_errors=True)


def write_skipped(skip_log, model_dir: str) -> str:
    """`<model_dir>/skipped_inputs.tsv`: id and reason of every skipped input (atomically)."""
    path = os.path.join(model_dir, SKIPPED_FILE)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write("id\treason\n")
        for item_id, reason in sorted(skip_log.items().items()):
            f.write(f"{item_id}\t{reason}\n")
    os.replace(tmp, path)
    return path


def read_skipped(skip_log, model_dir: str) -> None:
    """Adds the inputs listed in `<model_dir>/skipped_inputs.tsv` (if any) to `skip_log`."""
    path = os.path.join(model_dir, SKIPPED_FILE)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        next(f, None)
        for line in f:
            item_id, _, reason = line.rstrip("\n").rpartition("\t")
            if item_id:
                skip_log.add(item_id, reason, quiet=True)


def read_config(model_dir: str) -> Config:
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{model_dir} is not a run folder: it has no {CONFIG_FILE}.")
    with open(path) as f:
        return Config.from_json(f.read())


def write_config(config: Config, model_dir: str) -> str:
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, CONFIG_FILE)
    with open(f"{path}.tmp", "w") as f:
        f.write(config.to_json() + "\n")
    os.replace(f"{path}.tmp", path)
    return path


def load_trained(model_dir: str) -> tuple[Config, DCGAN]:
    """Rebuilds the DCGAN of a run folder from its config and its newest readable checkpoint.

    The model computes in float32 whatever precision it was trained in (the weights are float32
    either way; the loss scales of a float16 run are left in the checkpoint).
    """
    config = read_config(model_dir)
    gan = DCGAN.from_model_config(config.model, seed=config.train.seed, precision="float32")
    gan.compile()
    gan.build()
    checkpointer = RunCheckpointer(gan, model_dir, keep=10**6)
    if checkpointer.restore() is None:
        raise FileNotFoundError(f"{model_dir} holds no checkpoint yet.")
    return config, gan
