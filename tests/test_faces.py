"""The faces64 preset on CelebA (its centre crop), the attribute classifier that picks exemplars
for vector arithmetic and the turn, and the pixel-space baseline of Fig. 7."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_dcgan import get_config
from keras_dcgan.analysis import attributes as at
from keras_dcgan.data import open_source
from keras_dcgan.data.sources.tfds import KNOWN_CROPS, TfdsSource, square_resize
from keras_dcgan.errors import UserError
from tests.helpers import tiny_gan


# ------------------------------------------------------------------------------ preset and crop
def test_faces64_is_paper64_on_celeb_a():
    faces, paper = get_config("faces64"), get_config("paper64")
    assert faces.dataset == "celeb_a" and faces.preset == "faces64"
    assert faces.model == paper.model and faces.train == paper.train
    assert faces.model.image_size == 64 and faces.model.g_widths == (1024, 512, 256, 128)


def test_square_resize_takes_the_central_crop_first():
    # 218x178 like CelebA, the central 108x108 square marked
    marker = np.zeros((218, 178, 3), np.uint8)
    marker[55:163, 35:143] = 200  # the central 108x108 square
    out = square_resize(tf.constant(marker), 108, 3, crop=108).numpy()
    assert out.shape == (108, 108, 3) and np.all(out == 200)
    plain = square_resize(tf.constant(marker), 178, 3).numpy()  # the 178x178 square crop
    assert (plain == 0).any()  # hair and background around the face
    small = square_resize(tf.constant(marker[:50, :40]), 32, 3, crop=108).numpy()  # crop > image
    assert small.shape == (32, 32, 3)


def test_celeb_a_source_crops_108_and_resizes_to_64():
    assert KNOWN_CROPS["celeb_a"] == 108
    with tfds.testing.mock_data(num_examples=6):
        source = open_source("celeb_a")
        assert isinstance(source, TfdsSource) and source.crop == 108
        assert "crop108" in source.fingerprint()  # a cache of uncropped images is not reused
        batch = next(iter(source.dataset(64, 3, batch_size=2, shuffle=False))).numpy()
        assert batch.shape == (2, 64, 64, 3) and batch.dtype == np.float32
        assert -1.0 <= batch.min() and batch.max() <= 1.0
        raw = next(iter(source.builder.as_dataset(split="train", shuffle_files=False)))
        expected = tf.image.resize(raw["image"][55:163, 35:143], (64, 64), method="area")
        expected = tf.cast(tf.round(expected), tf.uint8).numpy().astype(np.float32) / 127.5 - 1
        first = [img for _, img in source.examples(64, 3)][0].numpy()
        np.testing.assert_allclose(first.astype(np.float32) / 127.5 - 1, expected, atol=1e-6)
        assert open_source("mnist").crop is None  # other datasets: the plain square crop
        assert TfdsSource("celeb_a", crop=0).crop is None
        with pytest.raises(ValueError, match="crop must be a non-negative integer"):
            TfdsSource("celeb_a", crop=-3)


def test_a_failed_celeb_a_download_says_how_to_prepare_it(tmp_path, monkeypatch):
    source = TfdsSource("celeb_a", data_dir=str(tmp_path))

    def fail():
        raise ConnectionError("Google Drive quota exceeded")

    monkeypatch.setattr(source.builder, "download_and_prepare", fail)
    with pytest.raises(ValueError, match=r"img_align_celeba.zip.*downloads/manual") as info:
        source.prepare()
    assert str(tmp_path) in str(info.value) and "quota exceeded" in str(info.value)


# ------------------------------------------------------------------------- attribute classifier
def test_parse_concept_and_its_errors():
    assert at.parse_concept("Smiling,~male") == {"Smiling": True, "Male": False}
    assert at.parse_concept(" -Male , young ") == {"Male": False, "Young": True}
    for text, message in [
        ("Smilng", "unknown CelebA attribute 'Smilng' \\(did you mean Smiling"),
        ("", "is empty"),
        (" , ", "is empty"),
        ("Male,~Male", "asks for Male and for ~Male"),
    ]:
        with pytest.raises(UserError, match=message):
            at.parse_concept(text, "--a")


def test_yaw_proxy():
    # eyes at 70 and 110 (midpoint 90, spread 40): nose at 90 frontal, 100 a quarter right
    np.testing.assert_allclose(at.yaw_proxy([70, 70, 70], [110, 110, 110], [90, 100, 60]),
                               [0.0, 0.25, -0.75])  # fmt: skip
    assert at.yaw_proxy([5], [5], [200])[0] == 1.0  # clipped; no division by zero


def test_classifier_trains_saves_loads_and_scores(tmp_path):
    with tfds.testing.mock_data(num_examples=16):
        images, attrs, yaw = at.celeba_arrays(split="train", limit=12, image_size=32)
    with pytest.raises(UserError, match="'celeb_a' is not prepared under"):
        at.celeba_arrays(data_dir=str(tmp_path), download=False)
    assert images.shape == (12, 32, 32, 3) and -1 <= images.min() and images.max() <= 1
    assert attrs.shape == (12, 40) and set(np.unique(attrs)) <= {0.0, 1.0}
    assert yaw.shape == (12,) and np.all(np.abs(yaw) <= 1)
    model = at.train_classifier(images, attrs, yaw, epochs=1, batch_size=4, width=4)
    path = at.save_classifier(model, tmp_path / "attr.keras")
    loaded = at.load_classifier(path)
    p, y = at.predict(loaded, images)
    assert p.shape == (12, 40) and y.shape == (12,) and np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p, at.predict(model, images)[0], atol=1e-6)
    metrics = at.evaluate_classifier(loaded, images, attrs, yaw)
    assert 0 <= metrics["attribute_accuracy"] <= 1 and metrics["yaw_mae"] >= 0
    scores = at.score_seeds(tiny_gan(), loaded, range(6))
    assert scores.probabilities.shape == (6, 40) and list(scores.seeds) == list(range(6))
    with pytest.raises(UserError, match="must end in .keras"):
        at.save_classifier(model, tmp_path / "attr.h5")
    with pytest.raises(UserError, match="No classifier file"):
        at.load_classifier(tmp_path / "missing.keras")
    with pytest.raises(UserError, match="40 attributes and one yaw per image"):
        at.train_classifier(images, attrs[:, :3], yaw)


def _planted_scores():
    """10 seeds (100..109): Smiling for 101, 103, 105, 107 (decreasing confidence), Male for
    the odd seeds 101..109; yaw from -0.9 (seed 100) rising to 0.9 (seed 109)."""
    p = np.full((10, 40), 0.1, np.float32)
    smiling, male = at.ATTRIBUTES.index("Smiling"), at.ATTRIBUTES.index("Male")
    p[[1, 3, 5, 7], smiling] = [0.99, 0.95, 0.9, 0.6]
    p[1::2, male] = 0.97
    return at.Scores(np.arange(100, 110), p, np.linspace(-0.9, 0.9, 10).astype(np.float32))


def test_pick_exemplars_on_a_planted_case():
    scores = _planted_scores()
    assert at.pick_exemplars(scores, "Smiling,Male") == [101, 103, 105]
    assert at.pick_exemplars(scores, "Smiling", count=4) == [101, 103, 105, 107]
    assert at.pick_exemplars(scores, "~Smiling,~Male", count=5) == [100, 102, 104, 106, 108]
    np.testing.assert_allclose(at.concept_probability(scores, "Smiling,~Male")[1], 0.99 * 0.03,
                               rtol=1e-5)  # fmt: skip
    with pytest.raises(UserError, match="only 0 of 10 samples show Smiling,~Male"):
        at.pick_exemplars(scores, "Smiling,~Male")
    with pytest.raises(UserError, match=r"only 4 of 10 samples show Smiling .*--num_samples"):
        at.pick_exemplars(scores, "Smiling", count=5)
    with pytest.raises(UserError, match="only 3 of 10"):
        at.pick_exemplars(scores, "Smiling", count=4, min_confidence=0.7)
    with pytest.raises(UserError, match="min_confidence must be in"):
        at.pick_exemplars(scores, "Smiling", min_confidence=1.5)
    with pytest.raises(UserError, match="unknown CelebA attribute"):
        at.pick_exemplars(scores, "Grinning")


def test_pick_turn_on_a_planted_case():
    left, right = at.pick_turn(_planted_scores(), count=4)
    assert left == [100, 101, 102, 103] and right == [109, 108, 107, 106]
    with pytest.raises(UserError, match="a turn needs 12 scored samples"):
        at.pick_turn(_planted_scores(), count=6)
