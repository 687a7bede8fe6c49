"""`train(config, model_dir)`: the whole training run that the CLI and the notebooks call."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import warnings

import keras
import tensorflow as tf

from keras_dcgan import data as data_lib
from keras_dcgan.config import Config
from keras_dcgan.models import DCGAN, default_optimizer
from keras_dcgan.training import callbacks as callbacks_lib
from keras_dcgan.training import checkpoints
from keras_dcgan.training.strategy import get_strategy

log = logging.getLogger(__name__)

SAMPLES_DIR = "samples"
LOGS_DIR = "logs"
METRICS_FILE = "metrics.csv"
FINAL_MODEL = "model.keras"
DIGITS_SCORE_FILE = "digits_score.json"


@dataclasses.dataclass
class TrainResult:
    """What `train` returns: the trained model, Keras' History, and where things were written."""

    gan: DCGAN
    history: keras.callbacks.History | None
    model_dir: str
    steps: int
    digits_score: object | None = None


def _check_resume(config: Config, model_dir: str) -> None:
    """Refuses to continue a run folder whose model differs from the requested one."""
    path = os.path.join(model_dir, checkpoints.CONFIG_FILE)
    if not os.path.exists(path):
        return
    saved = checkpoints.read_config(model_dir)
    if saved.model != config.model:
        changed = [
            f.name
            for f in dataclasses.fields(saved.model)
            if getattr(saved.model, f.name) != getattr(config.model, f.name)
        ]
        raise ValueError(
            f"{model_dir} holds a different model (differs in {', '.join(changed)}); continue "
            "it with the same preset and model settings, or choose a new --model_dir."
        )


def _steps_per_epoch(steps: int, dataset: tf.data.Dataset, source=None, config=None) -> int:
    """Steps per fit() epoch for a run of `steps` more iterations: a pass over the data, at most
    `steps`. When tf.data does not know the length (files may be skipped), the source's count of
    inputs before skipping; 1000 when that is unknown too."""
    per_epoch = int(dataset.cardinality())
    if per_epoch <= 0 and source is not None:
        dc = config.data
        n = source.num_examples(dc.split, dc.holdout_fraction, dc.keep_list)
        per_epoch = (n or 0) // config.train.batch_size
    if per_epoch <= 0:
        per_epoch = 1000
    return min(per_epoch, steps)


def train(
    config: Config,
    model_dir: str,
    dataset: tf.data.Dataset | None = None,
    strategy: str | tf.distribute.Strategy = "auto",
    verbose: int | str = "auto",
    callbacks: list | None = None,
) -> TrainResult:
    """Trains (or continues training) a DCGAN into `model_dir`.

    Writes `config.json` (the resolved config, before training starts), `checkpoints/` (every
    epoch), `samples/epoch_NNNN.png` (fixed seeds 0..num_preview-1), `logs/` (TensorBoard scalars
    and sample images), `metrics.csv` (with `skipped_inputs`, the unusable files met so far),
    `skipped_inputs.tsv` (which files, and why) when there are any, and `model.keras` at the end;
    on the digits dataset also `digits_score.json`. A folder that already holds a checkpoint of
    the same model continues from it (epoch counter, weights, optimizer moments and noise state).

    Args:
        config: the experiment (see `keras_dcgan.config.get_config`).
        model_dir: the run folder.
        dataset: batched float32 images in [-1, 1] with the GLOBAL batch size; default: the
            pipeline for `config.dataset`.
        strategy: a tf.distribute strategy or its name (see `get_strategy`).
        verbose: passed to `fit` (1 shows a progress bar).
        callbacks: more Keras callbacks.
    """
    _check_resume(config, model_dir)
    checkpoints.write_config(config, model_dir)
    keras.utils.set_random_seed(config.train.seed)
    if isinstance(strategy, str):
        strategy = get_strategy(strategy)
    mc, tc, dc = config.model, config.train, config.data
    source = None
    if dataset is None:
        source = data_lib.open_source(config.dataset, data_dir=dc.data_dir)
        dataset = source.dataset(
            mc.image_size,
            mc.channels,
            tc.batch_size,
            split=dc.split,
            holdout_fraction=dc.holdout_fraction,
            keep_list=dc.keep_list,
            small_images=dc.small_images,
            seed=tc.seed,
            shuffle_buffer=dc.shuffle_buffer,
            cache=dc.cache,
        )
    data_lib.check_dataset(dataset, (mc.image_size, mc.image_size, mc.channels))

    steps_per_execution = tc.steps_per_execution
    if strategy.num_replicas_in_sync > 1 and steps_per_execution > 1:
        log.warning("steps_per_execution > 1 fails with several replicas; using 1.")
        steps_per_execution = 1

    with strategy.scope():
        gan = DCGAN.from_model_config(mc, seed=tc.seed)
        gan.compile(
            g_optimizer=default_optimizer(tc.learning_rate, tc.beta_1, tc.beta_2),
            d_optimizer=default_optimizer(tc.learning_rate, tc.beta_1, tc.beta_2),
            steps_per_execution=steps_per_execution,
        )
        gan.build()  # variables and optimizer slots in scope, before fit()
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        checkpoint = checkpoints.make_checkpoint(gan, epoch)
    manager = checkpoints.checkpoint_manager(checkpoint, model_dir, tc.checkpoints_to_keep)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        print(f"Continuing from {manager.latest_checkpoint} (epoch {int(epoch.numpy())}).")

    initial_epoch = int(epoch.numpy())
    if tc.steps is None:
        epochs, steps_per_epoch, todo = tc.epochs, None, tc.epochs - initial_epoch
    else:
        # Counted in iterations: a continued run trains only the steps still missing.
        todo = tc.steps - callbacks_lib.iterations(gan)
        steps_per_epoch = _steps_per_epoch(max(todo, 1), dataset, source, config)
        if int(dataset.cardinality()) < 0:  # length unknown (skipped files): never run dry
            dataset = dataset.repeat()
        epochs = initial_epoch + math.ceil(max(todo, 0) / steps_per_epoch)
    history = None
    if todo > 0:
        run_callbacks = [
            # First, so that the CSV and TensorBoard loggers see its `skipped_inputs`.
            *([callbacks_lib.SkippedInputs(source.skip_log, model_dir)] if source else []),
            callbacks_lib.EpochCheckpoint(manager, epoch),
            callbacks_lib.PreviewGrid(
                os.path.join(model_dir, SAMPLES_DIR),
                range(tc.num_preview),
                log_dir=os.path.join(model_dir, LOGS_DIR, "samples"),
            ),
            keras.callbacks.TensorBoard(os.path.join(model_dir, LOGS_DIR), write_graph=False),
            keras.callbacks.CSVLogger(os.path.join(model_dir, METRICS_FILE), append=True),
            *(callbacks or []),
        ]
        if tc.steps is not None:
            run_callbacks.append(callbacks_lib.StopAtStep(tc.steps))
        with warnings.catch_warnings():
            # An epoch over a dataset of unknown length (files may be skipped) ends when the
            # data does, which Keras reports as "ran out of data" every epoch.
            warnings.filterwarnings("ignore", message="Your input ran out of data")
            history = gan.fit(
                dataset,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                callbacks=run_callbacks,
                verbose=verbose,
            )
    else:
        print(f"{model_dir} already holds the requested training; nothing to do.")
    gan.save(os.path.join(model_dir, FINAL_MODEL))

    score = None
    if config.dataset == "digits":
        from keras_dcgan.evaluation.digits import default_scorer

        score = default_scorer().score(gan.sample(1000).numpy())
        with open(os.path.join(model_dir, DIGITS_SCORE_FILE), "w") as f:
            json.dump(dataclasses.asdict(score), f, indent=2)
        print(score.summary(), flush=True)
    return TrainResult(gan, history, model_dir, callbacks_lib.iterations(gan), score)
