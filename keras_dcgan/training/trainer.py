"""`train(config, model_dir)`: the whole training run that the CLI and the notebooks call."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import signal
import threading
import warnings

import keras
import tensorflow as tf

from keras_dcgan import data as data_lib
from keras_dcgan.config import Config
from keras_dcgan.errors import Error, UserError
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
        saved, replace = _check_resume(config, model_dir)
        if replace and chief:
            print(
                f"{model_dir} holds only the untrained start of another configuration; "
                "replacing it."
            )
            shutil.rmtree(os.path.join(model_dir, checkpoints.CHECKPOINT_DIR), ignore_errors=True)
        if chief:
            checkpoints.write_config(config, model_dir)
        return _train(config, model_dir, dataset, strategy, chief, verbose, callbacks, saved,
                      folder)  # fmt: skip


def _train(config, model_dir, dataset, strategy, chief, verbose, callbacks, saved, folder):
    mc, tc, dc = config.model, config.train, config.data
    keras.utils.set_random_seed(tc.seed)
    image_shape = (mc.image_size, mc.image_size, mc.channels)
    source = None
    if dataset is None:
        source = data_lib.open_source(config.dataset, data_dir=dc.data_dir)
        cache = dc.cache
        if cache == "memory":  # a pipeline per epoch would refill a memory cache every epoch
            cache = os.path.join(model_dir, "data_cache")

        def epoch_data(epoch, skip_batches):
            return source.dataset(
                mc.image_size, mc.channels, tc.batch_size, split=dc.split,
                holdout_fraction=dc.holdout_fraction, keep_list=dc.keep_list,
                small_images=dc.small_images, seed=tc.seed, shuffle_buffer=dc.shuffle_buffer,
                cache=cache, epoch=epoch, skip_batches=skip_batches,
                max_image_pixels=dc.max_image_pixels,
            )  # fmt: skip

        data_lib.check_dataset(epoch_data(0, 0), image_shape)
    else:
        data_lib.check_dataset(dataset, image_shape)

        def epoch_data(epoch, skip_batches):
            return dataset.skip(skip_batches) if skip_batches else dataset

    _warn_about_the_global_policy(tc.precision)
    with strategy.scope():
        gan = DCGAN.from_config(config)
        gan.build()  # variables and optimizer slots in scope, before fit()
        checkpointer = checkpoints.RunCheckpointer(
            gan, model_dir, tc.checkpoints_to_keep, range(tc.num_preview),
            skip_log=source.skip_log if source else None, write=chief,
            batch_size=tc.batch_size,
        )  # fmt: skip
    checkpointer.prepare()
    metrics_path = os.path.join(model_dir, METRICS_FILE)
    if checkpointer.restore():
        epoch, batch = checkpointer.position
        _check_batch_size(model_dir, checkpointer, saved, tc.batch_size)
        if chief:  # rows logged after this checkpoint are replayed, and written again
            callbacks_lib.truncate_metrics(metrics_path, checkpointer.steps())
        print(
            f"Continuing from {checkpointer.restored_from} (step {checkpointer.steps()}, "
            f"epoch {epoch + 1}, batch {batch})."
        )
    elif not is_multi_worker(strategy):
        # The state to fall back to if the first steps diverge. (Not with several workers: one
        # could find this file while deciding whether to resume, the other not.)
        checkpointer.save(0, 0)
    preview_seeds = [int(s) for s in checkpointer.preview_seeds.numpy()]

    skipped_reporter = [callbacks_lib.SkippedInputs(source.skip_log)] if source else []
    total_epochs = tc.epochs
    if tc.steps is not None:  # the epochs the step budget spans, when the data says
        n = source.num_examples(dc.split, dc.holdout_fraction, dc.keep_list) if source else None
        per_epoch = (n or 0) // tc.batch_size or max(int(epoch_data(0, 0).cardinality()), 0)
        total_epochs = -(-tc.steps // per_epoch) if per_epoch else None
    quality = _quality_callback(config, model_dir, source) if chief and tc.eval_metrics else []
    interrupt = threading.Event()
    history, reason, retries = None, None, 0
    with _sigterm_sets(interrupt), warnings.catch_warnings():
        # An epoch over a dataset of unknown length (files may be skipped) ends when the data
        # does, which Keras reports as "ran out of data".
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        while True:
            epoch, batch = checkpointer.position
            steps = checkpointer.steps()
            if tc.steps is not None and steps >= tc.steps:
                break
            if tc.steps is None and epoch >= tc.epochs:
                break
            data = epoch_data(epoch, batch)
            if is_multi_worker(strategy):  # each worker keeps its share of every global batch
                options = tf.data.Options()
                options.experimental_distribute.auto_shard_policy = (
                    tf.data.experimental.AutoShardPolicy.DATA
                )
                data = data.with_options(options)
            if batch and not _yields_a_batch(data):  # stopped right after an epoch's last batch
                checkpointer.save(epoch + 1, 0)
                continue
            steps_per_epoch = None
            if int(data.cardinality()) == tf.data.INFINITE_CARDINALITY:
                steps_per_epoch = 1000
            control = callbacks_lib.TrainingControl(
                checkpointer, epoch, batch, tc.checkpoint_every_steps, tc.steps, interrupt,
                on_first_step=folder.mark_started,
            )  # fmt: skip
            writers = [
                callbacks_lib.PreviewGrid(
                    os.path.join(model_dir, SAMPLES_DIR),
                    preview_seeds,
                    log_dir=os.path.join(model_dir, LOGS_DIR, "samples"),
                ),
                keras.callbacks.TensorBoard(os.path.join(model_dir, LOGS_DIR), write_graph=False),
                callbacks_lib.MetricsCsv(metrics_path, control),
            ]
            run_callbacks = [
                # First, so that the CSV and TensorBoard loggers see their logs.
                *skipped_reporter,
                *(quality if chief else []),
                *(writers if chief else []),
                # After the loggers: the epoch-end checkpoint follows its row and grid.
                control,
                *(callbacks or []),
                *([callbacks_lib.RunProgress(total_epochs)] if verbose != 0 else []),
            ]
            history = gan.fit(
                data,
                epochs=epoch + 1,
                initial_epoch=epoch,
                steps_per_epoch=steps_per_epoch,
                callbacks=run_callbacks,
                verbose=verbose,
                shuffle=False,  # the pipeline shuffles (and Keras would warn that it ignores it)
            )
            reason = control.reason
            if reason == "diverged":
                retries += 1
                _recover(gan, checkpointer, control.step, retries, tc.max_divergence_retries)
                continue
            if reason is None and int(checkpointer.epoch.numpy()) == epoch:  # nothing to train
                checkpointer.save(epoch + 1, 0)
            if reason in ("signal", "steps"):
                break
    checkpointer.close()
    folder.mark_started()  # nothing left to undo: the run folder holds the requested training
    if reason == "signal":
        print(
            f"Stopped by SIGTERM at step {checkpointer.steps()}; checkpoint written. Run the same "
            "command to continue.",
            flush=True,
        )
        return TrainResult(gan, history, model_dir, checkpointer.steps(), interrupted=True)
    if history is None:
        print(f"{model_dir} already holds the requested training; nothing to do.")
    if not chief:
        return TrainResult(gan, history, model_dir, checkpointer.steps())
    gan.save(os.path.join(model_dir, FINAL_MODEL))

    score = None
    if config.dataset == "digits":
        from keras_dcgan.evaluation.digits import default_scorer

        score = default_scorer().score(gan.sample(1000).numpy())
        with open(os.path.join(model_dir, DIGITS_SCORE_FILE), "w") as f:
            json.dump(dataclasses.asdict(score), f, indent=2)
        print(score.summary(), flush=True)
    return TrainResult(gan, history, model_dir, checkpointer.steps(), score)


def _warn_about_the_global_policy(precision: str) -> None:
    """The run's precision is its config's; says so when the global Keras policy differs."""
    policy = keras.config.dtype_policy().name
    if policy != precision:
        print(
            f"Note: the global Keras dtype policy is {policy}, but this run trains in "
            f"precision={precision} (its config's; set the precision field or --precision).",
            flush=True,
        )


def _quality_callback(config, model_dir, source):
    """The QualityMetrics callback of `config.train.eval_metrics` (FID/KID against `source`)."""
    from keras_dcgan.evaluation.metrics import parse_metric

    tc = config.train
    kinds = {parse_metric(name)[0] for name in tc.eval_metrics}
    network = None
    if kinds - {"digits"}:
        from keras_dcgan.evaluation.inception import InceptionFeatures

        weights = None if tc.inception_weights == "random" else tc.inception_weights
        network = InceptionFeatures(weights=weights)
    if kinds & {"fid", "kid"} and source is None:
        source = data_lib.open_source(config.dataset, data_dir=config.data.data_dir)
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
    print(
        f"Non-finite loss at step {step}: restored {restored} (step {checkpointer.steps()}); "
        f"retry {retries} of {max_retries} with fresh noise.",
        flush=True,
    )
