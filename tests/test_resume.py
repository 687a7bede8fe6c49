"""Long runs that survive: exact resume (SIGKILL included), damaged checkpoints, divergence,
SIGTERM."""

import glob
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_dcgan.testing import synthetic
from keras_dcgan.training import TrainingDiverged, load_trained, train
from keras_dcgan.training.checkpoints import checkpoint_files
from tests.helpers import batches, dcgan_env, random_images, tiny_config, write_messy_folder


def _dcgan(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "keras_dcgan.cli.main", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dcgan_env(),
    )  # fmt: skip


def _steps(model_dir):
    files = checkpoint_files(os.path.join(model_dir, "checkpoints"))
    return [int(p.rsplit("-", 1)[1]) for p in files]


def _variables(model_dir):
    _, gan = load_trained(model_dir)
    values = [v.numpy() for v in gan.generator.variables + gan.discriminator.variables]
    values += [v.numpy() for v in gan.g_optimizer.variables + gan.d_optimizer.variables]
    return values + [gan.seed_generator.state.numpy()]


def _loss_scales(model_dir):
    """G's and D's loss scales and counts of good steps in the run's newest checkpoint."""
    reader = tf.train.load_checkpoint(checkpoint_files(os.path.join(model_dir, "checkpoints"))[-1])
    return [float(reader.get_tensor(f"{n}_loss_scale/{v}/.ATTRIBUTES/VARIABLE_VALUE"))
            for n in ("g", "d") for v in ("scale", "good_steps")]  # fmt: skip


TRAIN = [
    "train", "--preset=tiny", "--dataset=digits", "--batch_size=64", "--steps=40",
    "--checkpoint_every_steps=3", "--deterministic", "--num_preview=4",
]  # fmt: skip


# float16 costs ~75-135 s more; test_precision.py checks the scales' checkpoint round trip fast.
FLOAT16 = pytest.param("mixed_float16", marks=pytest.mark.slow)


@pytest.mark.parametrize("precision", ["float32", FLOAT16])
def test_sigkill_at_a_random_step_then_resume_equals_an_uninterrupted_run(tmp_path, precision):
    """digits at batch 64: 28 steps per epoch, so the 40 steps cross an epoch boundary and the
    kill lands mid-epoch (resumed by skipping the consumed batches). In float16 the loss scales
    double every 4 good steps until they overflow, are halved (the step skipped), and grow
    again: a resumed run that lost a scale or its count of good steps would skip other steps
    than the uninterrupted one."""
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    train_args = [*TRAIN, f"--precision={precision}", "--loss_scale_growth_steps=4"]
    run = _dcgan(*train_args, f"--model_dir={straight}")
    assert run.wait(300) == 0, run.stderr.read()[-2000:]
    kill_after = random.Random().randint(4, 30)
    run = _dcgan(*train_args, f"--model_dir={killed}")
    deadline = time.monotonic() + 300
    while not any(s >= kill_after for s in _steps(killed)) and time.monotonic() < deadline:
        assert run.poll() is None, run.stderr.read()[-2000:]
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait(30)
    at_kill = max(_steps(killed))
    assert at_kill < 40, "the run ended before it was killed"
    run = _dcgan(*train_args, f"--model_dir={killed}")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err[-2000:]
    assert f"Continuing from {os.path.join(killed, 'checkpoints', 'ckpt-')}" in out
    assert max(_steps(straight)) == max(_steps(killed)) == 40
    for a, b in zip(_variables(straight), _variables(killed), strict=True):
        np.testing.assert_array_equal(a, b)  # op determinism: exactly equal, not just close
    # One row per epoch, each the mean over the whole epoch (the metric sums are restored with
    # the checkpoint): the same file as the uninterrupted run's, to the last digit.
    metrics = [open(os.path.join(d, "metrics.csv")).read() for d in (straight, killed)]
    assert metrics[0] == metrics[1]
    assert [line.split(",")[:3] for line in metrics[0].splitlines()] == [
        ["epoch", "step", "batches"], ["1", "28", "28"], ["2", "40", "12"],
    ]  # fmt: skip
    if precision == "mixed_float16":
        scales = [_loss_scales(d) for d in (straight, killed)]
        # The scales moved: G's and D's (scale, good steps) were (2^15, 2) and (2^17, 0) here.
        assert scales[0] == scales[1] and scales[0][::2] != [2.0**15, 2.0**15], scales


def test_resume_mid_epoch_on_a_folder_with_bad_files(tmp_path):
    """An epoch of 3 batches with 3 unusable files; stop at step 7 (epoch 3, batch 1), continue
    to 11: the same model as 11 steps straight (the consumed inputs are skipped by id, the bad
    ones known from skipped_inputs.tsv)."""
    folder = write_messy_folder(str(tmp_path / "images"), synthetic.photo_like_images(22, 40))
    config = tiny_config(dataset=folder, batch_size=7, steps=11, checkpoint_every_steps=2)
    straight = train(config, str(tmp_path / "a"), verbose=0)
    part = train(tiny_config(dataset=folder, batch_size=7, steps=7), str(tmp_path / "b"), verbose=0)
    assert part.steps == 7
    resumed = train(config, str(tmp_path / "b"), verbose=0)
    assert resumed.steps == straight.steps == 11
    for a, b in zip(_variables(str(tmp_path / "a")), _variables(str(tmp_path / "b")), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys):
    model_dir = str(tmp_path / "run")
    config = tiny_config(steps=6, checkpoint_every_steps=2)
    data = batches(random_images(64, seed=4), 8)
    train(config, model_dir, dataset=data, verbose=0)
    assert _steps(model_dir) == [2, 4, 6]
    latest = os.path.join(model_dir, "checkpoints", "ckpt-6")
    (data_file,) = glob.glob(f"{latest}.data-*")
    with open(data_file, "r+b") as f:
        f.truncate(os.path.getsize(data_file) // 3)
    with open(os.path.join(model_dir, "checkpoints", "checkpoint"), "w") as f:
        f.write("model_checkpoint_path: <garbage")
    result = train(tiny_config(steps=8, checkpoint_every_steps=2), model_dir, dataset=data,
                   verbose=0)  # fmt: skip
    out = capsys.readouterr().out
    assert "ckpt-6 is unreadable" in out and "Continuing from" in out and "ckpt-4" in out
    assert result.steps == 8 and 8 in _steps(model_dir)


def test_divergence_restores_the_last_good_state_then_gives_up(tmp_path, capsys):
    images = random_images(64, seed=1)
    images[40:48] = np.nan  # batch 5 of every epoch poisons the losses
    model_dir = str(tmp_path / "run")
    config = tiny_config(steps=20, checkpoint_every_steps=2, max_divergence_retries=2)
    with pytest.raises(TrainingDiverged, match="non-finite loss at step 6, 2 retries"):
        train(config, model_dir, dataset=batches(images, 8), verbose=0)
    out = capsys.readouterr().out
    assert out.count("Non-finite loss at step 6: restored") == 2
    assert max(_steps(model_dir)) == 4  # nothing was saved after the bad step
    assert all(np.isfinite(v).all() for v in _variables(model_dir))


def test_sigterm_writes_a_checkpoint_before_exiting(tmp_path):
    model_dir = str(tmp_path / "run")
    args = ["train", "--preset=tiny", "--steps=100000", "--checkpoint_every_steps=0",
            f"--model_dir={model_dir}"]  # fmt: skip
    run = _dcgan(*args)
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(model_dir, "metrics.csv")) or not _steps(model_dir):
        assert run.poll() is None and time.monotonic() < deadline, run.stderr.read()[-2000:]
        time.sleep(0.1)
    time.sleep(3)  # some steps after the step-0 checkpoint
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 143, err[-2000:]
    assert "Stopped by SIGTERM at step" in out
    step = max(_steps(model_dir))
    assert step > 0 and f"step {step};" in out
