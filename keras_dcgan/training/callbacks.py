"""Keras callbacks of a training run: preview grids, checkpoints, stopping at a step count."""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from keras_dcgan import images as image_utils


def iterations(gan) -> int:
    """Training iterations done (G updates), as a Python int, also for mirrored variables."""
    return int(tf.convert_to_tensor(gan.g_optimizer.iterations.value).numpy())


class PreviewGrid(keras.callbacks.Callback):
    """After every epoch, renders the same seeds to `<dir>/epoch_NNNN.png` and TensorBoard.

    Args:
        directory: where the PNG grids go.
        seeds: integer seeds of the previewed latents (fixed for the whole run).
        log_dir: optional TensorBoard log folder for the grid as an image summary.
    """

    def __init__(self, directory: str, seeds, log_dir: str | None = None):
        super().__init__()
        self.directory = directory
        self.seeds = list(seeds)
        self.log_dir = log_dir
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        samples = self.model.sample(seeds=self.seeds).numpy()
        path = image_utils.save_grid(
            samples, os.path.join(self.directory, f"epoch_{epoch + 1:04d}.png")
        )
        self.last_path = path
        if self.log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            grid = image_utils.make_grid(samples)[None]
            with self._writer.as_default():
                tf.summary.image("samples", grid, step=iterations(self.model))
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the run's `tf.train.Checkpoint` at the end of every epoch (and of training)."""

    def __init__(self, manager: tf.train.CheckpointManager, epoch: tf.Variable):
        super().__init__()
        self.manager = manager
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.assign(epoch + 1)
        self.manager.save(checkpoint_number=epoch + 1)


class StopAtStep(keras.callbacks.Callback):
    """Stops training once the model has made `steps` iterations in total (G updates)."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if iterations(self.model) >= self.steps:
            self.model.stop_training = True


class SkippedInputs(keras.callbacks.Callback):
    """Reports the inputs the pipeline skipped (undecodable, not images, too small).

    At the end of every epoch: adds `skipped_inputs` (distinct inputs skipped so far) to the
    epoch's logs, so Keras' CSV and TensorBoard loggers record it (put this callback before
    them), prints a line when the count grew, and rewrites `<directory>/skipped_inputs.tsv`
    (id, reason).
    """

    FILE = "skipped_inputs.tsv"

    def __init__(self, skip_log, directory: str | None = None):
        super().__init__()
        self.skip_log = skip_log
        self.directory = directory
        self._reported = 0

    def on_epoch_end(self, epoch, logs=None):
        count = self.skip_log.count
        if logs is not None:
            logs["skipped_inputs"] = count
        if count > self._reported:
            print(f"\nEpoch {epoch + 1}: {self.skip_log.summary()} so far.", flush=True)
            self._reported = count
            if self.directory is not None:
                self._write()

    def _write(self):
        path = os.path.join(self.directory, self.FILE)
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write("id\treason\n")
            for item_id, reason in sorted(self.skip_log.items().items()):
                f.write(f"{item_id}\t{reason}\n")
        os.replace(tmp, path)
