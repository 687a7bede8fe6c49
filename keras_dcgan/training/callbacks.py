"""Keras callbacks of a training run: preview grids, checkpoints and stopping, skipped inputs."""

from __future__ import annotations

import logging
import os

import keras
import numpy as np
import tensorflow as tf

from keras_dcgan import images as image_utils
from keras_dcgan.errors import UserError
from keras_dcgan.logs import notice

log = logging.getLogger(__name__)


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
    `interrupt` (SIGTERM) stops with "signal"; reaching `max_steps` iterations stops with
    "steps"; otherwise a checkpoint every `every_steps` iterations. At the end of the epoch
    (complete, or stopped by "signal" or "steps") a checkpoint at the data position reached:
    (epoch + 1, 0) for a complete epoch. Put this callback AFTER the loggers (metrics.csv, the
    preview grid): the epoch's row and grid are then on disk before the checkpoint that moves
    past them, so a process killed in between replays the end of the epoch and writes them
    again, instead of losing them. `reason` stays None when the epoch ran to its end.

    A resumed epoch (`first_batch` > 0) starts with the metric sums saved in the checkpoint, so
    its logged means cover the whole epoch, as if it had not been interrupted. `on_first_step`
    (optional) is called after the first batch.
    """

    def __init__(self, checkpointer, epoch: int, first_batch: int = 0, every_steps: int = 0,
                 max_steps: int | None = None, interrupt=None,
                 on_first_step=None):  # fmt: skip
        super().__init__()
        self.checkpointer = checkpointer
        self.every_steps = every_steps
        self.max_steps = max_steps
        self.interrupt = interrupt
        self.on_first_step = on_first_step
        self.start_epoch(epoch, first_batch)

    def start_epoch(self, epoch: int, first_batch: int = 0) -> None:
        """Prepares the next fit() call: data epoch `epoch`, resumed after `first_batch`."""
        self.epoch = epoch
        self.first_batch = first_batch
        self.reason = None
        self.consumed = first_batch
        self.step = None

    def _stop(self, reason):
        self.reason = reason
        self.model.stop_training = True

    def on_train_begin(self, logs=None):
        self._saved_at = iterations(self.model)

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_batch:
            self.checkpointer.restore_metric_sums()

    def _save(self, epoch, batch):
        self.checkpointer.save(epoch, batch)
        self._saved_at = self.step

    def on_train_batch_end(self, batch, logs=None):
        self.step = iterations(self.model)
        self.consumed = self.first_batch + batch + 1
        if self.on_first_step is not None:
            self.on_first_step()
            self.on_first_step = None
        if not finite_losses(logs):
            self._stop("diverged")
        elif self.interrupt is not None and self.interrupt.is_set():
            self._stop("signal")
        elif self.max_steps is not None and self.step >= self.max_steps:
            self._stop("steps")
        elif (every := self.every_steps) and self.step // every > self._saved_at // every:
            self._save(self.epoch, self.consumed)

    def on_epoch_end(self, epoch, logs=None):
        if self.reason in ("signal", "steps"):
            self._save(self.epoch, self.consumed)
        elif self.reason is None:
            self.step = iterations(self.model)
            self._save(self.epoch + 1, 0)


# ---------------------------------------------------------------------------------- metrics.csv
FIRST_COLUMNS = ("epoch", "step", "batches")


def _cell(value) -> str:
    if value is None or value == "":
        return ""
    array = np.asarray(value)
    if array.size != 1:
        return ""
    item = array.reshape(()).item()
    if isinstance(item, (bool, np.bool_)):
        return str(int(item))
    if isinstance(item, int):
        return str(item)
    if isinstance(item, float):
        return repr(float(item))
    return str(item)


def read_metrics(path: str) -> tuple[list[str], list[dict]]:
    """The header and rows (dicts of strings) of a metrics.csv; ([], []) when there is none.
    A last line cut short (a process killed while writing) is dropped."""
    import csv

    if not os.path.exists(path):
        return [], []
    with open(path, newline="", encoding="utf-8") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.reader(text.splitlines()))
    if not rows:
        return [], []
    header, body = rows[0], rows[1:]
    return header, [dict(zip(header, r, strict=False)) for r in body if len(r) == len(header)]


def write_metrics(path: str, header: list[str], rows: list[dict]) -> None:
    """Writes metrics.csv atomically (a temporary file renamed over it): a process killed while
    writing leaves the previous file whole."""
    import csv

    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(k, "") for k in header])
    os.replace(tmp, path)


def _legacy_metrics(path: str, header: list[str]) -> bool:
    """A metrics.csv of Keras' CSVLogger (no step column) is moved to metrics.old.csv."""
    if not header or "step" in header:
        return False
    old = os.path.splitext(path)[0] + ".old.csv"
    os.replace(path, old)
    notice(log, "%s had no step column (written by an older version); moved it to %s.", path, old)
    return True


def truncate_metrics(path: str, step: int) -> None:
    """Drops the rows of metrics.csv logged after iteration `step` (a resumed run replays
    them, and writes them again)."""
    header, rows = read_metrics(path)
    if _legacy_metrics(path, header) or not header:
        return
    kept = [r for r in rows if not r.get("step") or int(float(r["step"])) <= step]
    if len(kept) != len(rows):
        write_metrics(path, header, kept)


class MetricsCsv(keras.callbacks.Callback):
    """`metrics.csv` with one row per epoch of the run: `epoch` (1-based, as the preview grids
    `samples/epoch_NNNN.png` count), `step` (iterations done at the end of the row), `batches`
    (batches of the epoch the row covers: fewer than an epoch when the run stopped mid-epoch),
    then every value of Keras' epoch logs (d_loss, g_loss, d_real, d_fake, skipped_inputs, ...).

    A run stopped mid-epoch writes a row for the part it trained; when the epoch is continued,
    its row is replaced by the whole epoch's (the metric sums are restored with the checkpoint,
    so the row equals that of an uninterrupted run). The file is rewritten atomically, so a
    killed process never leaves half a row, and columns that appear later (a quality metric)
    are added to the header. Epochs with non-finite losses (rolled back) are not written.

    Args:
        path: the CSV file.
        control: the epoch's `TrainingControl` (its epoch number and batches consumed).
    """

    def __init__(self, path: str, control: TrainingControl):
        super().__init__()
        self.path = path
        self.control = control

    def on_epoch_end(self, epoch, logs=None):
        if not finite_losses(logs):
            return
        row = {
            "epoch": str(self.control.epoch + 1),
            "step": str(iterations(self.model)),
            "batches": str(self.control.consumed),
        }
        row.update({k: _cell(v) for k, v in (logs or {}).items() if k not in FIRST_COLUMNS})
        header, rows = read_metrics(self.path)
        if _legacy_metrics(self.path, header):
            header, rows = [], []
        rows = [r for r in rows if r.get("epoch") != row["epoch"]] + [row]
        rows.sort(key=lambda r: int(r["epoch"]) if r.get("epoch", "").isdigit() else 0)
        extra = sorted({k for r in rows for k in r} - set(header) - set(FIRST_COLUMNS))
        header = list(header or FIRST_COLUMNS) + extra
        write_metrics(self.path, header, rows)


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
            notice(log, "\nEpoch %d: %s so far.", epoch + 1, self.skip_log.summary())
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
        notice(log, "\nEpoch %d: %s (%.0f s)", epoch + 1, summary, results["seconds"])


class FinalDigitsScore(keras.callbacks.Callback):
    """The digits dataset's quality score of the finished run: when the fit() call that completes
    the run ends (`run_complete()` true), scores 1,000 samples with
    `keras_dcgan.evaluation.digits.score_generator`, writes the `DigitsScore` to `path` as JSON
    and logs its summary; `score` holds it afterwards. A run stopped early (SIGTERM, divergence)
    is not scored."""

    def __init__(self, path: str, run_complete):
        super().__init__()
        self.path = path
        self.run_complete = run_complete
        self.score = None

    def on_train_end(self, logs=None):
        if self.run_complete():
            self.write(self.model)

    def write(self, gan):
        """Scores `gan` now, writes the score file, returns the `DigitsScore`."""
        import dataclasses
        import json

        from keras_dcgan.evaluation.digits import score_generator

        self.score = score_generator(gan)
        with open(self.path, "w") as f:
            json.dump(dataclasses.asdict(self.score), f, indent=2)
        notice(log, "%s", self.score.summary())
        return self.score
