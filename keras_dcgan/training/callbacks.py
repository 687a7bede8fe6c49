"""Keras callbacks of a training run: preview grids, checkpoints and stopping, skipped inputs."""

from __future__ import annotations

import os

import keras
import numpy as np
import tensorflow as tf

from keras_dcgan import images as image_utils
from keras_dcgan.errors import UserError


def iterations(gan) -> int:
    """Training iterations done (G updates), as a Python int, also for mirrored variables."""
    return int(tf.convert_to_tensor(gan.g_optimizer.iterations.value).numpy())


def finite_losses(logs) -> bool:
    """Whether the d_loss and g_loss in Keras' logs (scalars, or arrays) are all finite."""
    values = [np.asarray(logs[k], np.float64) for k in ("d_loss", "g_loss") if logs and k in logs]
    return all(np.isfinite(v).all() for v in values)


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
        if not finite_losses(logs):
            return  # a diverged epoch, about to be rolled back: nothing worth drawing
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


class TrainingControl(keras.callbacks.Callback):
    """Drives one fit() call over one data epoch (maybe resumed at batch `first_batch`).

    After every batch, in this order: a non-finite d_loss or g_loss stops training with
    `reason = "diverged"` (the trainer then restores the last good checkpoint); a pending
    `interrupt` (SIGTERM) writes a checkpoint and stops with "signal"; reaching `max_steps`
    iterations writes one and stops with "steps"; otherwise a checkpoint every `every_steps`
    iterations. At the end of a complete epoch a checkpoint at (epoch + 1, 0). `reason` stays
    None when the epoch ran to its end.
    """

    def __init__(self, checkpointer, epoch: int, first_batch: int = 0, every_steps: int = 0,
                 max_steps: int | None = None, interrupt=None):  # fmt: skip
        super().__init__()
        self.checkpointer = checkpointer
        self.epoch = epoch
        self.first_batch = first_batch
        self.every_steps = every_steps
        self.max_steps = max_steps
        self.interrupt = interrupt
        self.reason = None
        self.consumed = first_batch
        self.step = None

    def _stop(self, reason):
        self.reason = reason
        self.model.stop_training = True

    def on_train_begin(self, logs=None):
        self._saved_at = iterations(self.model)

    def _save(self):
        self.checkpointer.save(self.epoch, self.consumed)
        self._saved_at = self.step

    def on_train_batch_end(self, batch, logs=None):
        self.step = iterations(self.model)
        self.consumed = self.first_batch + batch + 1
        if not finite_losses(logs):
            self._stop("diverged")
        elif self.interrupt is not None and self.interrupt.is_set():
            self._save()
            self._stop("signal")
        elif self.max_steps is not None and self.step >= self.max_steps:
            self._save()
            self._stop("steps")
        elif (every := self.every_steps) and self.step // every > self._saved_at // every:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        if self.reason is None:
            self.checkpointer.save(self.epoch + 1, 0)


class SkippedInputs(keras.callbacks.Callback):
    """Reports the inputs the pipeline skipped (undecodable, not images, too small).

    At the end of every epoch: adds `skipped_inputs` (distinct inputs skipped so far) to the
    epoch's logs, so Keras' CSV and TensorBoard loggers record it (put this callback before
    them), and prints a line when the count grew. (The list of files, `skipped_inputs.tsv`, is
    written with every checkpoint: `keras_dcgan.training.checkpoints.write_skipped`.)
    """

    def __init__(self, skip_log):
        super().__init__()
        self.skip_log = skip_log
        self._reported = 0

    def on_epoch_end(self, epoch, logs=None):
        count = self.skip_log.count
        if logs is not None:
            logs["skipped_inputs"] = count
        if count > self._reported:
            print(f"\nEpoch {epoch + 1}: {self.skip_log.summary()} so far.", flush=True)
            self._reported = count


class RunProgress(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, counting epochs over the whole run (train() calls fit() once per
    epoch, so the default would print "Epoch 7/7")."""

    def __init__(self, total_epochs: int | None):
        super().__init__()
        self.total_epochs = total_epochs

    def set_params(self, params):
        epoch_hint = params.get("epochs")
        total = self.total_epochs if self.total_epochs is not None else epoch_hint
        super().set_params({**params, "epochs": max(total, epoch_hint or 0)})


class QualityMetrics(keras.callbacks.Callback):
    """Every `every_epochs` epochs, computes sample-quality metrics (see
    `keras_dcgan.evaluation.metrics.evaluate`) and logs them: to the epoch's logs (so the CSV and
    TensorBoard loggers after it record them), to TensorBoard under `log_dir`, and as one JSON
    line per evaluation in `jsonl_path`.
    """

    def __init__(self, metrics, every_epochs: int = 1, source=None, network=None,
                 split: str = "train", jsonl_path: str | None = None,
                 log_dir: str | None = None):  # fmt: skip
        super().__init__()
        if every_epochs < 1:
            raise UserError(f"every_epochs must be >= 1; got {every_epochs}.")
        self.metrics = list(metrics)
        self.every_epochs = every_epochs
        self.source, self.network, self.split = source, network, split
        self.jsonl_path = jsonl_path
        self.log_dir = log_dir
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs or not finite_losses(logs):
            return
        import json

        from keras_dcgan.evaluation.metrics import evaluate

        results = evaluate(self.model, self.metrics, self.source, self.network, self.split)
        step = iterations(self.model)
        if logs is not None:
            logs.update({k: v for k, v in results.items() if k != "seconds"})
        if self.jsonl_path:
            with open(self.jsonl_path, "a") as f:
                f.write(json.dumps({"epoch": epoch + 1, "step": step, **results}) + "\n")
        if self.log_dir:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default():
                for name, value in results.items():
                    if name != "seconds":
                        tf.summary.scalar(f"quality/{name}", value, step=step)
            self._writer.flush()
        summary = ", ".join(f"{k} {v:.4g}" for k, v in results.items() if k != "seconds")
        print(f"\nEpoch {epoch + 1}: {summary} ({results['seconds']:.0f} s)", flush=True)
