"""Keras' own callbacks on a DCGAN: learning-rate schedules, monitors, checkpoints, loggers."""

import csv
import os

import keras
import numpy as np
import pytest

from keras_dcgan.models import default_optimizer
from tests.helpers import batches, random_images, tiny_gan, variable_values


def _gan(g_lr=2e-4, d_lr=4e-4):
    gan = tiny_gan()
    gan.compile(
        g_optimizer=default_optimizer(g_lr, name="g_optimizer"),
        d_optimizer=default_optimizer(d_lr, name="d_optimizer"),
    )
    gan.build()
    return gan


def _rates(gan):
    return [float(gan.g_optimizer.learning_rate), float(gan.d_optimizer.learning_rate)]


DATA = batches(random_images(16, seed=1), 8)


def test_learning_rate_scheduler_sets_both_optimizers_each_from_its_own_rate():
    gan = _gan(2e-4, 4e-4)
    seen = []
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(dict(logs)))
    gan.fit(DATA, epochs=2, verbose=0, callbacks=[schedule, record])
    # halved at the start of each of the 2 epochs
    assert _rates(gan) == pytest.approx([2e-4 / 4, 4e-4 / 4])
    assert seen[0]["learning_rate_g_optimizer"] == pytest.approx(1e-4)
    assert seen[0]["learning_rate_d_optimizer"] == pytest.approx(2e-4)


def test_reduce_lr_on_plateau_monitors_g_loss_without_a_mode():
    gan = _gan(2e-4, 4e-4)
    # min_delta this large: no epoch after the first counts as an improvement
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="g_loss", factor=0.5, patience=0, min_delta=1e9, min_lr=0
    )
    gan.fit(DATA, epochs=3, verbose=0, callbacks=[plateau])
    assert _rates(gan) == pytest.approx([2e-4 / 4, 4e-4 / 4])


@pytest.mark.parametrize("monitor", ["g_loss", "d_loss"])
def test_early_stopping_monitors_the_losses_without_a_mode(monitor):
    gan = _gan()
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=1, min_delta=1e9)
    history = gan.fit(DATA, epochs=6, verbose=0, callbacks=[stop])
    assert len(history.history[monitor]) == 2  # the first epoch, then one without improvement


def test_a_monitor_of_d_real_still_asks_for_a_mode():
    # D(x) has no better direction: Keras must be told, as for any metric without one.
    gan = _gan()
    stop = keras.callbacks.EarlyStopping(monitor="d_real", patience=1)
    with pytest.raises(ValueError, match="automatically determine"):
        gan.fit(DATA, epochs=2, verbose=0, callbacks=[stop])


def test_model_checkpoint_best_only_and_weights_only(tmp_path):
    gan = _gan()
    best = str(tmp_path / "best.keras")
    weights = str(tmp_path / "w.weights.h5")
    callbacks = [
        keras.callbacks.ModelCheckpoint(best, monitor="d_loss", save_best_only=True),
        keras.callbacks.ModelCheckpoint(weights, save_weights_only=True),
    ]
    gan.fit(DATA, epochs=2, verbose=0, callbacks=callbacks)
    loaded = keras.models.load_model(best)
    np.testing.assert_allclose(loaded.sample(seeds=[3]), loaded.sample(seeds=[3]))
    assert loaded.g_optimizer.name == "g_optimizer"
    other = _gan()
    other.load_weights(weights)
    for a, b in zip(variable_values(other), variable_values(gan), strict=True):
        np.testing.assert_array_equal(a, b)


def test_csv_logger_tensorboard_and_backup_and_restore(tmp_path):
    gan = _gan()
    log_dir, backup = str(tmp_path / "tb"), str(tmp_path / "backup")
    callbacks = [
        keras.callbacks.TensorBoard(log_dir),  # also logs both learning rates
        keras.callbacks.CSVLogger(str(tmp_path / "log.csv")),
        keras.callbacks.BackupAndRestore(backup),
        keras.callbacks.TerminateOnNaN(),
    ]
    gan.fit(DATA, epochs=2, verbose=0, callbacks=callbacks)
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    assert [r["epoch"] for r in rows] == ["0", "1"]
    assert {"d_loss", "g_loss", "d_real", "d_fake"} <= set(rows[0])
    assert os.listdir(os.path.join(log_dir, "train"))
    assert not os.path.exists(backup)  # deleted after a completed fit


def test_the_optimizer_pair_reads_and_sets_a_shared_rate():
    gan = _gan(2e-4, 2e-4)
    assert gan.optimizer.learning_rate == pytest.approx(2e-4)
    gan.optimizer.learning_rate = 1e-4
    assert _rates(gan) == pytest.approx([1e-4, 1e-4])
    gan.g_optimizer.learning_rate = 3e-4
    with pytest.raises(AttributeError, match="differ"):
        gan.optimizer.learning_rate  # noqa: B018
    assert int(gan.optimizer.iterations) == 0
