"""The faces64 preset on CelebA (its centre crop), the attribute classifier that picks exemplars
for vector arithmetic and the turn, and the pixel-space baseline of Fig. 7."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_dcgan import get_config, latent
from keras_dcgan.analysis import arithmetic as ar
from keras_dcgan.analysis import attributes as at
from keras_dcgan.analysis import latent_walks as lw
from keras_dcgan.data import open_source
from keras_dcgan.data.sources.tfds import KNOWN_CROPS, TfdsSource, square_resize
from keras_dcgan.errors import UserError
from tests.helpers import dcgan, dcgan_env, tiny_config, tiny_gan, write_run_folder


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


# ------------------------------------------------------------------------ pixel-space baseline
def test_pixel_arithmetic_is_the_clipped_sum_of_mean_images():
    rng = np.random.default_rng(0)
    a, b, c = (rng.uniform(-1, 1, (n, 4, 4, 3)).astype(np.float32) for n in (3, 2, 1))
    a[:, 0, 0, 0], b[:, 0, 0, 0], c[:, 0, 0, 0] = 1.0, -1.0, 1.0  # 1 + 1 + 1: clipped to 1
    means, result = ar.pixel_arithmetic(a, b, c)
    np.testing.assert_allclose(means, [a.mean(0), b.mean(0), c[0]], atol=1e-6)
    hand = np.clip(a.mean(0) - b.mean(0) + c[0], -1, 1)
    np.testing.assert_allclose(result, hand, atol=1e-6)
    assert result[0, 0, 0] == 1.0 and result.min() >= -1
    with pytest.raises(UserError, match="b must be a non-empty"):
        ar.pixel_arithmetic(a, b[:0], c)
    with pytest.raises(UserError, match="c must be a non-empty"):
        ar.pixel_arithmetic(a, b, c[:, :2])


def test_arithmetic_grid_shows_the_pixel_baseline_beside_the_latent_result():
    gan = tiny_gan()
    grid = ar.arithmetic_grid(gan, a=[1, 2, 3], b=[4, 5], c=[6], seed=9)
    bare = ar.arithmetic_grid(gan, a=[1, 2, 3], b=[4, 5], c=[6], seed=9, pixel_baseline=False)
    # 3 rows: 3 exemplars | mean latent | mean image | blank | 3x3 block | blank | pixel result
    assert grid.columns == 3 + 1 + 1 + 1 + 3 + 1 + 1 and bare.columns == 8
    cells = grid.images.reshape(3, 11, 32, 32, 3)
    rendered = [lw.render(gan, latent.latents_from_seeds(s, 16).numpy()) for s in
                ([1, 2, 3], [4, 5], [6])]  # fmt: skip
    means, result = ar.pixel_arithmetic(*rendered)
    for r in range(3):
        np.testing.assert_allclose(cells[r, 4], means[r], atol=1e-5)  # each concept's mean image
    np.testing.assert_allclose(cells[1, 10], result, atol=1e-5)  # level with the latent result
    np.testing.assert_allclose(grid.pixel_result, result, atol=1e-5)
    np.testing.assert_allclose(cells[1, 7], bare.images.reshape(3, 8, 32, 32, 3)[1, 6], atol=1e-5)
    assert np.all(cells[:, 5] == -1) and np.all(cells[:, 9] == -1)  # the blank columns
    assert np.all(cells[[0, 2], 10] == -1)
    np.testing.assert_array_equal(grid.result, bare.result)
    assert bare.pixel_means is None and bare.pixel_result is None
    with pytest.raises(UserError, match="pixel_baseline must be true or false"):
        ar.arithmetic_grid(gan, [1], [2], [3], pixel_baseline="yes")


# ---------------------------------------------------------------------------------------- CLI
def _start(*args) -> subprocess.Popen:
    """`dcgan <args>` started in the background (two run at once: most of each is TF's import)."""
    return subprocess.Popen(
        [sys.executable, "-m", "keras_dcgan.cli.main", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=dcgan_env(),
    )  # fmt: skip


def _finish(process: subprocess.Popen):
    stdout, stderr = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture(scope="module")
def faces_run(tmp_path_factory):
    """A tiny run folder and a (randomly trained) attribute classifier for it."""
    root = tmp_path_factory.mktemp("faces")
    gan = tiny_gan()
    write_run_folder(str(root / "run"), gan, tiny_config())
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (8, 32, 32, 3)).astype(np.float32)
    attrs = (rng.uniform(size=(8, 40)) > 0.5).astype(np.float32)
    model = at.train_classifier(images, attrs, rng.uniform(-1, 1, 8), epochs=1, width=4)
    return root, gan, at.save_classifier(model, root / "attr.keras")


def test_cli_arithmetic_and_turn_with_the_attribute_classifier(faces_run):
    root, gan, classifier = faces_run
    common = [f"--model_dir={root / 'run'}", f"--classifier={classifier}", "--num_samples=20"]
    arith = _start(
        "arithmetic", *common, "--a=Smiling,~Male", "--b=~Smiling,~Male", "--c=~Smiling,Male",
        "--min_confidence=0", f"--output={root / 'arith.png'}",
    )  # fmt: skip
    turn = _start(
        "arithmetic", *common, "--start=1,2", "--amounts=0:1:3", f"--output={root / 'turn.png'}"
    )
    arith, turn = _finish(arith), _finish(turn)
    assert arith.returncode == 0 and turn.returncode == 0, arith.stderr[-2000:] + turn.stderr
    scores = at.score_seeds(gan, at.load_classifier(classifier), range(20))
    a = at.pick_exemplars(scores, "Smiling,~Male", min_confidence=0)
    assert f"--a={','.join(map(str, a))} " in arith.stdout, arith.stdout
    assert "pixel-space baseline" in arith.stdout
    assert Image.open(root / "arith.png").size == (11 * 34 + 2, 3 * 34 + 2)
    left, right = at.pick_turn(scores)
    assert f"--left={','.join(map(str, left))} --right={','.join(map(str, right))}" in turn.stdout
    assert Image.open(root / "turn.png").size == (3 * 34 + 2, 2 * 34 + 2)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--a=Smiling", "--b=Grinning", "--c=Male"], "--b: unknown CelebA attribute 'Grinning'"),
        (["--a=Smiling", "--b=,", "--c=Male"], "--b is empty"),
        (["--left=1", "--right=2", "--start=3"], "picks --left and --right itself"),
        (["--a=Smiling", "--b=Male", "--c=Young", "--num_samples=0"], "--num_samples must be"),
        (["--a=Smiling", "--b=Male", "--c=Young", "--min_confidence=1"], "--min_confidence"),
    ],
)
def test_cli_rejects_bad_attribute_flags(tmp_path, args, message):
    (tmp_path / "attr.keras").write_bytes(b"")  # checked by name only before the model loads
    out = dcgan("arithmetic", f"--classifier={tmp_path / 'attr.keras'}", *args,
                f"--output={tmp_path / 'out.png'}")  # fmt: skip
    assert out.returncode == 1 and message in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / "out.png").exists()


@pytest.mark.slow  # a model-loading process; test_pick_exemplars_on_a_planted_case covers the check
def test_cli_exemplars_too_rare_is_a_clear_error(faces_run):
    root, _, classifier = faces_run
    out = dcgan(
        "arithmetic", f"--model_dir={root / 'run'}", f"--classifier={classifier}",
        "--num_samples=3", "--a=Smiling", "--b=Male", "--c=Young", "--min_confidence=0.99",
        f"--output={root / 'rare.png'}",
    )  # fmt: skip
    assert out.returncode == 1 and "samples show Smiling with confidence >= 0.99" in out.stderr


def test_cli_attributes_trains_evaluates_and_writes_the_classifier(tmp_path):
    code = (
        "import sys, tensorflow_datasets as tfds\n"
        "from keras_dcgan.cli.main import run\n"
        "with tfds.testing.mock_data(num_examples=10):\n"
        "    run(['dcgan', 'attributes', *sys.argv[1:]])\n"
    )
    args = ["--limit=8", "--eval_limit=4", "--epochs=1", "--width=4", "--image_size=32"]
    out = subprocess.run(
        [sys.executable, "-c", code, *args, f"--output={tmp_path / 'attr.keras'}"],
        capture_output=True, text=True, env=dcgan_env(), timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Training on 8 faces" in out.stdout and "attribute accuracy" in out.stdout
    at.load_classifier(tmp_path / "attr.keras")
    bad = dcgan("attributes", f"--output={tmp_path / 'attr.h5'}")
    assert bad.returncode == 1 and "--output must end in .keras" in bad.stderr
