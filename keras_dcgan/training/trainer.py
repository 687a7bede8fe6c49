"""`train(config, model_dir)`: the whole training run that the CLI and the notebooks call."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import threading
import warnings
from collections.abc import Callable

import keras
import tensorflow as tf

from keras_dcgan import data as data_lib
from keras_dcgan.config import Config
from keras_dcgan.errors import Error, UserError
from keras_dcgan.logs import notice
from keras_dcgan.models import DCGAN
from keras_dcgan.training import callbacks as callbacks_lib
from keras_dcgan.training import checkpoints
from keras_dcgan.training.strategy import get_strategy, is_chief, is_multi_worker

log = logging.getLogger(__name__)

SAMPLES_DIR = "samples"
LOGS_DIR = "logs"
METRICS_FILE = "metrics.csv"
FINAL_MODEL = "model.keras"
DIGITS_SCORE_FILE = "digits_score.json"
QUALITY_FILE = "quality.jsonl"


@dataclasses.dataclass
class TrainResult:
    """What `train` returns: the trained model, Keras' History, and where things were written."""

    gan: DCGAN
    history: keras.callbacks.History | None
    model_dir: str
    steps: int
    digits_score: object | None = None
    interrupted: bool = False


def _check_resume(config: Config, model_dir: str) -> tuple[Config | None, bool]:
    """Refuses to continue a run folder whose model differs from the requested one.

    Returns (the folder's saved config or None, whether to replace the folder's checkpoints):
    a folder whose checkpoints are all at step 0 (a start that was killed before its first
    step) holds nothing trained, so another model may replace it.
    """
    path = os.path.join(model_dir, checkpoints.CONFIG_FILE)
    if not os.path.exists(path):
        return None, False
    saved = checkpoints.read_config(model_dir)
    problem = None
    old, new = saved.model.architecture(), config.model.architecture()
    if old != new:
        changed = [name for name in old if old[name] != new[name]]
        problem = (
            f"{model_dir} holds a different model (differs in {', '.join(changed)}); continue "
            "it with the same preset and model settings, or choose a new --model_dir."
        )
    elif (saved.train.precision == "mixed_float16") != (config.train.precision == "mixed_float16"):
        # Loss scaling adds checkpoint entries and logged metrics (the loss scales).
        problem = (
            f"{model_dir} was trained with precision={saved.train.precision}; continue it with "
            f"loss scaling on (mixed_float16) or off (float32, mixed_bfloat16) as it was, or "
            "choose a new --model_dir."
        )
    elif (saved.model.r1_gamma > 0) != (config.model.r1_gamma > 0):
        # The penalty adds a logged metric and changes the metric sums in the checkpoints.
        problem = (
            f"{model_dir} was trained with r1_gamma={saved.model.r1_gamma:g}; continue it with "
            "the R1 penalty on (r1_gamma > 0) or off (0) as it was, or choose a new --model_dir."
        )
    if problem is None:
        return saved, False
    steps = [
        checkpoints.checkpoint_step(p)
        for p in checkpoints.checkpoint_files(os.path.join(model_dir, checkpoints.CHECKPOINT_DIR))
    ]
    if any(steps):
        raise UserError(problem)
    return saved, True


def _check_batch_size(model_dir: str, checkpointer, saved: Config | None, batch_size: int):
    """Refuses to continue an epoch in the middle with another batch size: the saved data
    position counts batches of the old size. (At an epoch boundary any batch size is fine.)"""
    epoch, batch = checkpointer.position
    old = checkpointer.saved_batch_size or (saved.train.batch_size if saved else 0)
    if batch and old and old != batch_size:
        raise UserError(
            f"{model_dir} stopped in the middle of epoch {epoch + 1}, after {batch} batches of "
            f"{old}; continue it with batch_size={old} (--batch_size={old}), or choose a new "
            "--model_dir. (The batch size may change at an epoch boundary.)"
        )


class TrainingDiverged(Error, RuntimeError):
    """Raised when the losses stay non-finite after the configured number of retries."""


@contextlib.contextmanager
def _sigterm_sets(flag: threading.Event):
    """While active, SIGTERM (preemption) sets `flag` instead of killing the process."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: flag.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train(
    config: Config,
    model_dir: str,
    dataset: tf.data.Dataset | None = None,
    strategy: str | tf.distribute.Strategy = "auto",
    verbose: int | str = "auto",
    callbacks: list | None = None,
) -> TrainResult:
    """Trains (or continues training) a DCGAN into `model_dir`.

    Writes `config.json` (the resolved config, before training starts), `checkpoints/`,
    `samples/epoch_NNNN.png` (fixed seeds 0..num_preview-1), `logs/` (TensorBoard scalars and
    sample images), `metrics.csv` (with `skipped_inputs`, the unusable files met so far, and
    under mixed_float16 the loss scales), `skipped_inputs.tsv` (which files, and why) when there
    are any, and `model.keras` at the end; on the digits dataset also `digits_score.json`.

    Checkpoints are written every `checkpoint_every_steps` iterations, at the end of every epoch,
    when the step budget is reached and on SIGTERM; each holds the data position. Running the same
    call on the same folder continues from the newest readable checkpoint at the exact step,
    mid-epoch included: epoch e is one pass in an order fixed by (seed, e), and the batches it
    already trained on are skipped (`ImageSource.dataset(epoch=, skip_batches=)`). A non-finite
    loss restores the last good checkpoint and retries with fresh noise, up to
    `max_divergence_retries` times, then raises `TrainingDiverged`.

    Args:
        config: the experiment (see `keras_dcgan.config.get_config`).
        model_dir: the run folder.
        dataset: batched float32 images in [-1, 1] with the GLOBAL batch size, iterated once per
            epoch (a resumed epoch skips its consumed batches, exact when its order is fixed);
            default: the pipeline for `config.dataset`.
        strategy: a tf.distribute strategy or its name (see `get_strategy`).
        verbose: passed to `fit` (1 shows a progress bar).
        callbacks: more Keras callbacks.
    """
    if config.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    if isinstance(strategy, str):
        strategy = get_strategy(strategy)
    chief = is_chief(strategy)  # multi-worker: only the chief writes (and locks) the run folder
    with checkpoints.RunFolder(model_dir, lock=chief) as folder:
        saved = _prepare_run_folder(config, model_dir, chief)
        keras.utils.set_random_seed(config.train.seed)
        data = EpochData.create(config, model_dir, dataset)
        gan, checkpointer = _model_under_strategy(config, model_dir, strategy, data, chief)
        _restore_or_start(checkpointer, config, model_dir, saved, strategy, chief)
        run = _RunCallbacks.create(config, model_dir, data, checkpointer, folder, chief, verbose,
                                   callbacks)  # fmt: skip
        history, reason = _fit_epochs(gan, checkpointer, data, run, config, strategy)
        return _finish(gan, history, reason, checkpointer, folder, run, model_dir, chief)


def _prepare_run_folder(config: Config, model_dir: str, chief: bool) -> Config | None:
    """Checks that `model_dir` may hold this run and writes its config; returns the folder's
    saved config (None for a new folder)."""
    saved, replace = _check_resume(config, model_dir)
    if replace and chief:
        notice(log, "%s holds only the untrained start of another configuration; replacing it.",
                 model_dir)  # fmt: skip
        shutil.rmtree(os.path.join(model_dir, checkpoints.CHECKPOINT_DIR), ignore_errors=True)
    if chief:
        checkpoints.write_config(config, model_dir)
    return saved


@dataclasses.dataclass
class EpochData:
    """The run's data: `for_epoch(epoch, skip_batches)` is the batched dataset of one data
    epoch (its order fixed by the seed and the epoch), resumed after `skip_batches` batches;
    `source` is the `ImageSource` behind it (None for a dataset given by the caller)."""

    for_epoch: Callable[[int, int], tf.data.Dataset]
    source: object = None

    @classmethod
    def create(cls, config: Config, model_dir: str, dataset=None) -> EpochData:
        mc, tc, dc = config.model, config.train, config.data
        image_shape = (mc.image_size, mc.image_size, mc.channels)
        if dataset is not None:
            data_lib.check_dataset(dataset, image_shape)
            return cls(lambda epoch, skip: dataset.skip(skip) if skip else dataset)
        source = data_lib.open_source(config.dataset, data_dir=dc.data_dir)
        cache = dc.cache
        if cache == "memory":  # a pipeline per epoch would refill a memory cache every epoch
            cache = os.path.join(model_dir, "data_cache")

        def for_epoch(epoch, skip_batches):
            return source.dataset(
                mc.image_size, mc.channels, tc.batch_size, split=dc.split,
                holdout_fraction=dc.holdout_fraction, keep_list=dc.keep_list,
                small_images=dc.small_images, seed=tc.seed, shuffle_buffer=dc.shuffle_buffer,
                cache=cache, epoch=epoch, skip_batches=skip_batches,
                max_image_pixels=dc.max_image_pixels,
            )  # fmt: skip

        data_lib.check_dataset(for_epoch(0, 0), image_shape)
        return cls(for_epoch, source)

    def total_epochs(self, config: Config) -> int | None:
        """The epochs the run spans: `epochs`, or those of the step budget when known."""
        tc, dc = config.train, config.data
        if tc.steps is None:
            return tc.epochs
        n = self.source.num_examples(dc.split, dc.holdout_fraction, dc.keep_list) if (
            self.source) else None  # fmt: skip
        per_epoch = (n or 0) // tc.batch_size or max(int(self.for_epoch(0, 0).cardinality()), 0)
        return -(-tc.steps // per_epoch) if per_epoch else None


def _model_under_strategy(config, model_dir, strategy, data: EpochData, chief: bool):
    """The run's DCGAN and its checkpointer, built (variables, optimizer slots) in scope."""
    tc = config.train
    _warn_about_the_global_policy(tc.precision)
    with strategy.scope():
        gan = DCGAN.from_config(config)
        gan.build()  # variables and optimizer slots in scope, before fit()
        checkpointer = checkpoints.RunCheckpointer(
            gan, model_dir, tc.checkpoints_to_keep, range(tc.num_preview),
            skip_log=data.source.skip_log if data.source else None, write=chief,
            batch_size=tc.batch_size,
        )  # fmt: skip
    checkpointer.prepare()
    return gan, checkpointer


def _restore_or_start(checkpointer, config, model_dir, saved, strategy, chief) -> None:
    """Continues from the newest readable checkpoint, or saves the starting state."""
    if checkpointer.restore():
        epoch, batch = checkpointer.position
        _check_batch_size(model_dir, checkpointer, saved, config.train.batch_size)
        if chief:  # rows logged after this checkpoint are replayed, and written again
            callbacks_lib.truncate_metrics(os.path.join(model_dir, METRICS_FILE),
                                           checkpointer.steps())  # fmt: skip
        notice(log, "Continuing from %s (step %d, epoch %d, batch %d).",
                 checkpointer.restored_from, checkpointer.steps(), epoch + 1, batch)  # fmt: skip
    elif not is_multi_worker(strategy):
        # The state to fall back to if the first steps diverge. (Not with several workers: one
        # could find this file while deciding whether to resume, the other not.)
        checkpointer.save(0, 0)


@dataclasses.dataclass
class _RunCallbacks:
    """The callbacks of every fit() call of the run, built once: `control` drives the epochs,
    `final_score` scores the finished run (digits dataset), `all` is the ordered list."""

    control: callbacks_lib.TrainingControl
    all: list
    interrupt: threading.Event
    verbose: int | str
    final_score: callbacks_lib.FinalDigitsScore | None = None

    @classmethod
    def create(cls, config, model_dir, data: EpochData, checkpointer, folder, chief, verbose,
               extra) -> _RunCallbacks:  # fmt: skip
        tc = config.train
        interrupt = threading.Event()
        control = callbacks_lib.TrainingControl(
            checkpointer, 0, 0, tc.checkpoint_every_steps, tc.steps, interrupt,
            on_first_step=folder.mark_started,
        )  # fmt: skip
        final_score = None
        if chief and config.dataset == "digits":
            final_score = callbacks_lib.FinalDigitsScore(
                os.path.join(model_dir, DIGITS_SCORE_FILE), lambda: _run_complete(control, tc)
            )
        run_callbacks = [
            # First, so that the CSV and TensorBoard loggers see their logs.
            *([callbacks_lib.SkippedInputs(data.source.skip_log)] if data.source else []),
            *(_quality_callback(config, model_dir, data.source) if chief and tc.eval_metrics
              else []),
            *(_writers(model_dir, checkpointer, control) if chief else []),
            # After the loggers: the epoch-end checkpoint follows its row and grid.
            control,
            *([final_score] if final_score else []),
            *(extra or []),
            *([callbacks_lib.RunProgress(data.total_epochs(config))] if verbose != 0 else []),
        ]  # fmt: skip
        return cls(control, run_callbacks, interrupt, verbose, final_score)


def _run_complete(control, tc) -> bool:
    """Whether the fit() call that `control` drove completed the requested training."""
    if control.reason == "steps":
        return True
    return control.reason is None and tc.steps is None and control.epoch + 1 >= tc.epochs


def _writers(model_dir: str, checkpointer, control) -> list:
    """The chief's loggers: preview grids, TensorBoard, metrics.csv."""
    preview_seeds = [int(s) for s in checkpointer.preview_seeds.numpy()]
    return [
        callbacks_lib.PreviewGrid(os.path.join(model_dir, SAMPLES_DIR), preview_seeds,
                                  log_dir=os.path.join(model_dir, LOGS_DIR, "samples")),
        keras.callbacks.TensorBoard(os.path.join(model_dir, LOGS_DIR), write_graph=False),
        callbacks_lib.MetricsCsv(os.path.join(model_dir, METRICS_FILE), control),
    ]  # fmt: skip


def _fit_epochs(gan, checkpointer, data: EpochData, run: _RunCallbacks, config, strategy):
    """One fit() call per data epoch until the budget (epochs or steps) is reached, SIGTERM
    arrives, or divergence exhausts its retries; returns (the last History, the stop reason)."""
    tc = config.train
    history, reason, retries = None, None, 0
    with _sigterm_sets(run.interrupt), warnings.catch_warnings():
        # An epoch over a dataset of unknown length (files may be skipped) ends when the data
        # does, which Keras reports as "ran out of data".
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        while not _budget_reached(checkpointer, tc):
            epoch, batch = checkpointer.position
            epoch_data = _sharded(data.for_epoch(epoch, batch), strategy)
            if batch and not _yields_a_batch(epoch_data):  # stopped right after an epoch's end
                checkpointer.save(epoch + 1, 0)
                continue
            run.control.start_epoch(epoch, batch)
            history = gan.fit(
                epoch_data, epochs=epoch + 1, initial_epoch=epoch,
                steps_per_epoch=1000 if _is_infinite(epoch_data) else None,
                callbacks=run.all, verbose=run.verbose,
                shuffle=False,  # the pipeline shuffles (and Keras would warn that it ignores it)
            )  # fmt: skip
            reason = run.control.reason
            if reason == "diverged":
                retries += 1
                _recover(gan, checkpointer, run.control.step, retries, tc.max_divergence_retries)
                continue
            if reason is None and int(checkpointer.epoch.numpy()) == epoch:  # nothing to train
                checkpointer.save(epoch + 1, 0)
            if reason in ("signal", "steps"):
                break
    return history, reason


def _budget_reached(checkpointer, tc) -> bool:
    if tc.steps is not None:
        return checkpointer.steps() >= tc.steps
    return checkpointer.position[0] >= tc.epochs


def _sharded(data: tf.data.Dataset, strategy) -> tf.data.Dataset:
    """Multi-worker: each worker keeps its share of every global batch."""
    if not is_multi_worker(strategy):
        return data
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options)


def _is_infinite(data: tf.data.Dataset) -> bool:
    return int(data.cardinality()) == tf.data.INFINITE_CARDINALITY


def _finish(gan, history, reason, checkpointer, folder, run, model_dir, chief) -> TrainResult:
    """Closes the run: the final model file and the result (digits score on the digits set)."""
    checkpointer.close()
    folder.mark_started()  # nothing left to undo: the run folder holds the requested training
    steps = checkpointer.steps()
    if reason == "signal":
        notice(log, "Stopped by SIGTERM at step %d; checkpoint written. Run the same command to "
                 "continue.", steps)  # fmt: skip
        return TrainResult(gan, history, model_dir, steps, interrupted=True)
    if history is None:
        notice(log, "%s already holds the requested training; nothing to do.", model_dir)
    if not chief:
        return TrainResult(gan, history, model_dir, steps)
    gan.save(os.path.join(model_dir, FINAL_MODEL))
    score = run.final_score
    if score is not None and score.score is None:  # no fit() completed the run in this call
        score.write(gan)
    return TrainResult(gan, history, model_dir, steps, score.score if score else None)


def _warn_about_the_global_policy(precision: str) -> None:
    """The run's precision is its config's; says so when the global Keras policy differs."""
    policy = keras.config.dtype_policy().name
    if policy != precision:
        notice(log, "Note: the global Keras dtype policy is %s, but this run trains in "
                 "precision=%s (its config's; set the precision field or --precision).",
                 policy, precision)  # fmt: skip


def _quality_callback(config, model_dir, source):
    """The QualityMetrics callback of `config.train.eval_metrics` (FID/KID against `source`)."""
    from keras_dcgan.evaluation.metrics import metric_inputs

    tc = config.train
    source, network = metric_inputs(
        tc.eval_metrics,
        config.dataset,
        config.data.data_dir,
        tc.inception_weights,
        source,
        tc.fid_network,
    )
    return [
        callbacks_lib.QualityMetrics(
            tc.eval_metrics, tc.eval_every_epochs, source, network, config.data.split,
            jsonl_path=os.path.join(model_dir, QUALITY_FILE),
            log_dir=os.path.join(model_dir, LOGS_DIR, "quality"),
        )
    ]  # fmt: skip


def _yields_a_batch(data: tf.data.Dataset) -> bool:
    if int(data.cardinality()) >= 0:
        return int(data.cardinality()) > 0
    for _ in data.take(1):
        return True
    return False


def _recover(gan, checkpointer, step, retries: int, max_retries: int) -> None:
    """After a non-finite loss: restore the last good checkpoint and change the noise."""
    if retries > max_retries:
        raise TrainingDiverged(
            f"Training diverged: non-finite loss at step {step}, {max_retries} retries from the "
            "last good checkpoint did not help. Lower the learning rate, or check the data."
        )
    restored = checkpointer.restore()
    gan.reset_metrics()
    state = gan.seed_generator.state
    state.assign(state + tf.constant([1_000_003 * retries, 0], state.dtype))
    log.warning("Non-finite loss at step %s: restored %s (step %d); retry %d of %d with fresh "
                "noise.", step, restored, checkpointer.steps(), retries, max_retries)  # fmt: skip
