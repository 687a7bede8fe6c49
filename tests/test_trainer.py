"""train(config, model_dir): run-folder artifacts, continuing a run, the digits default."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from keras_dcgan.config import Config
from keras_dcgan.data import load_digits
from keras_dcgan.testing import synthetic
from keras_dcgan.training import load_trained, train
from tests.helpers import batches, random_images, tiny_config, write_messy_folder


def test_digits_default_data():
    images, labels = load_digits(32, 1)
    assert images.shape == (1797, 32, 32, 1) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0
    assert images.min() == -1.0 and images.max() > 0.9
    assert sorted(set(labels.tolist())) == list(range(10))


def test_train_writes_the_run_folder(tmp_path):
    model_dir = str(tmp_path / "run")
    config = tiny_config(steps=3, num_preview=4)
    result = train(config, model_dir, verbose=0)
    assert result.steps == 3
    files = set(os.listdir(model_dir))
    assert {"config.json", "checkpoints", "samples", "logs", "metrics.csv", "model.keras"} <= files
    assert Config.from_json(open(os.path.join(model_dir, "config.json")).read()) == config
    grid = Image.open(os.path.join(model_dir, "samples", "epoch_0001.png"))
    assert grid.size == (2 * 34 + 2, 2 * 34 + 2)
    header = open(os.path.join(model_dir, "metrics.csv")).readline().strip().split(",")
    assert {"epoch", "d_loss", "g_loss", "d_real", "d_fake"} <= set(header)
    score = json.load(open(os.path.join(model_dir, "digits_score.json")))
    assert score["num_samples"] == 1000
    assert any(
        name.startswith("events.out")
        for name in os.listdir(os.path.join(model_dir, "logs", "samples"))
    )


def test_continuing_a_run_equals_an_uninterrupted_run(tmp_path):
    """Two epochs straight vs one epoch, stop, continue to two: same weights and noise state.

    The dataset is not shuffled here, so both runs see the same batches (exact mid-epoch resume
    with reshuffling is the resume issue's work)."""
    data = batches(random_images(16, seed=5), 8)
    config = tiny_config(epochs=2)
    straight = train(config, str(tmp_path / "a"), dataset=data, verbose=0)
    train(tiny_config(epochs=1), str(tmp_path / "b"), dataset=data, verbose=0)
    resumed = train(config, str(tmp_path / "b"), dataset=data, verbose=0)
    assert int(resumed.gan.g_optimizer.iterations) == int(straight.gan.g_optimizer.iterations) == 4
    for a, b in zip(
        straight.gan.generator.get_weights() + straight.gan.discriminator.get_weights(),
        resumed.gan.generator.get_weights() + resumed.gan.discriminator.get_weights(),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        straight.gan.seed_generator.state.numpy(), resumed.gan.seed_generator.state.numpy()
    )


def test_load_trained_restores_the_generator(tmp_path):
    model_dir = str(tmp_path / "run")
    result = train(tiny_config(steps=2), model_dir, verbose=0)
    config, gan = load_trained(model_dir)
    assert config.preset == "tiny"
    # Every variable, BatchNorm moving statistics included (inference-mode sampling needs them).
    for a, b in zip(gan.generator.variables, result.gan.generator.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    moving = [v for v in gan.generator.variables if "moving_mean" in v.path]
    assert moving and all(np.any(v.numpy() != 0) for v in moving)
    np.testing.assert_allclose(gan.sample(seeds=[0, 1]), result.gan.sample(seeds=[0, 1]), atol=1e-6)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_trained(str(tmp_path / "nothing"))


def test_load_trained_returns_the_model_as_trained(tmp_path):
    """load_trained rebuilds what the run trained (recipe and optimizers), as load_model does."""
    import keras

    model_dir = str(tmp_path / "run")
    config = tiny_config(steps=2, augment="translation,cutout", r1_gamma=0.5, learning_rate=1e-4,
                         beta_1=0.9)  # fmt: skip
    train(config, model_dir, verbose=0)
    _, gan = load_trained(model_dir)
    saved = keras.models.load_model(os.path.join(model_dir, "model.keras"))
    assert (gan.augment, gan.r1_gamma) == ("translation,cutout", 0.5)
    ignore = {"name"}
    assert {k: v for k, v in gan.get_config().items() if k not in ignore} == {
        k: v for k, v in saved.get_config().items() if k not in ignore
    }
    for mine, theirs in (
        (gan.g_optimizer, saved.g_optimizer),
        (gan.d_optimizer, saved.d_optimizer),
    ):
        assert mine.get_config() == theirs.get_config()
        assert float(mine.learning_rate) == pytest.approx(1e-4)
        assert float(mine.beta_1) == pytest.approx(0.9)
    for a, b in zip(gan.variables, saved.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(
        gan.seed_generator.state.numpy(), saved.seed_generator.state.numpy()
    )


def test_continuing_with_another_model_is_refused(tmp_path):
    model_dir = str(tmp_path / "run")
    train(tiny_config(steps=1), model_dir, verbose=0)
    with pytest.raises(ValueError, match="different model.*base_width"):
        train(tiny_config(steps=2, base_width=16), model_dir, verbose=0)
    # Switching the R1 penalty on would add a metrics.csv column under the old header.
    with pytest.raises(ValueError, match="trained with r1_gamma=0; continue it with"):
        train(tiny_config(steps=2, r1_gamma=1.0), model_dir, verbose=0)
    with open(os.path.join(model_dir, "metrics.csv")) as f:
        assert "r1_penalty" not in f.read()


def test_continuing_a_run_counted_in_steps_trains_only_the_missing_steps(tmp_path):
    model_dir = str(tmp_path / "run")
    assert train(tiny_config(steps=2), model_dir, verbose=0).steps == 2
    assert train(tiny_config(steps=5), model_dir, verbose=0).steps == 5
    # Asking for fewer steps than done trains nothing and keeps the model.
    assert train(tiny_config(steps=3), model_dir, verbose=0).steps == 5


def test_a_folder_with_bad_files_trains_through_the_epoch_and_reports_them(tmp_path, capsys):
    folder = write_messy_folder(str(tmp_path / "images"), synthetic.photo_like_images(22, 40))
    model_dir = str(tmp_path / "run")
    config = tiny_config(dataset=folder, epochs=2, batch_size=7)
    result = train(config, model_dir, verbose=0)
    assert result.steps == 2 * (21 // 7)  # every usable file, both epochs
    rows = open(os.path.join(model_dir, "metrics.csv")).read().splitlines()
    header = rows[0].split(",")
    assert [row.split(",")[header.index("skipped_inputs")] for row in rows[1:]] == ["3", "3"]
    listed = open(os.path.join(model_dir, "skipped_inputs.tsv")).read().splitlines()
    assert listed == [
        "id\treason",
        "empty.png\tempty file",
        "notes.txt\tnot an image",
        "truncated.jpg\tundecodable or truncated",
    ]
    out = capsys.readouterr().out
    assert "Epoch 1: 3 input(s) skipped (1 empty file, 1 not an image, 1 undecodable" in out
    assert "Epoch 2:" not in out  # reported again only when the count grows
    assert "digits_score.json" not in os.listdir(model_dir)


def test_train_in_steps_on_a_folder_repeats_it(tmp_path):
    folder = write_messy_folder(str(tmp_path / "images"), synthetic.photo_like_images(22, 40))
    result = train(
        tiny_config(dataset=folder, steps=7, batch_size=7), str(tmp_path / "r"), verbose=0
    )
    assert result.steps == 7  # more than one pass (3 batches) without running dry
