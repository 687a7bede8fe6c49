"""The faces64 preset on CelebA (its centre crop), the attribute classifier that picks exemplars
for vector arithmetic and the turn, and the pixel-space baseline of Fig. 7."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from keras_dcgan import get_config
from keras_dcgan.data import open_source
from keras_dcgan.data.sources.tfds import KNOWN_CROPS, TfdsSource, square_resize


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
