"""Memorisation check: samples beside their nearest training images (`dcgan neighbours`)."""

import json

import numpy as np
import pytest
from PIL import Image

from keras_dcgan.analysis import neighbours as nb
from keras_dcgan.images import to_model_range, to_uint8
from tests.helpers import dcgan, tiny_gan

SEEDS = [3, 5]


@pytest.fixture(scope="module")
def gan():
    return tiny_gan(seed=0)  # 32 px RGB


def brute_force(distances, k):
    """Every item's distance at once, sorted by (distance, position)."""
    positions = np.broadcast_to(np.arange(distances.shape[1]), distances.shape)
    order = np.lexsort((positions, distances), axis=1)[:, :k]
    return np.take_along_axis(distances, order, 1), order


@pytest.mark.parametrize("batch", [1, 4, 7, 37, 100])
@pytest.mark.parametrize("k", [1, 3, 10, 50])
def test_running_top_k_equals_brute_force_across_batches_with_ties(batch, k):
    rng = np.random.default_rng(batch * 100 + k)
    distances = rng.integers(0, 6, (3, 37)).astype(np.float64)  # many ties
    top = nb.RunningTopK(3, k)
    for start in range(0, 37, batch):
        part = slice(start, start + batch)
        top.update(distances[:, part], (np.arange(37)[part], np.arange(37)[part] * 10.0))
    want_d, want_i = brute_force(distances, k)
    assert top.seen == 37 and top.indices.shape == (3, min(k, 37))  # k > items: all of them
    np.testing.assert_array_equal(top.distances, want_d)
    np.testing.assert_array_equal(top.indices, want_i)  # ties: the earlier item first
    np.testing.assert_array_equal(top.payloads[0], want_i)
    np.testing.assert_array_equal(top.payloads[1], want_i * 10.0)


def training_set(gan, n=50, planted=None):
    """n random uint8 images; `planted` {position: seed} puts 8-bit samples at those positions."""
    images = np.random.default_rng(1).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    for position, seed in (planted or {}).items():
        images[position] = to_uint8(gan.sample(seeds=[seed]).numpy())[0]
    return images


def stream(images, batch_size, ids=True):
    for start in range(0, len(images), batch_size):
        part = images[start : start + batch_size]
        yield ([f"img{start + i}" for i in range(len(part))], part) if ids else part


def test_a_planted_copy_is_found_at_distance_zero(gan):
    images = training_set(gan, planted={23: 5})
    results = nb.nearest_neighbours(gan, SEEDS, stream(images, 16), k=1, space=nb.SPACES)
    pixel, feature = results["pixel"], results["feature"]
    assert pixel.indices[1, 0] == feature.indices[1, 0] == 23
    assert pixel.ids[1] == feature.ids[1] == ["img23"]
    assert pixel.distances[1, 0] == 0.0  # the same 8-bit pixels
    # D's features of the same image in another batch: equal up to float rounding.
    assert feature.distances[1, 0] < 1e-4 * feature.distances[0, 0]
    np.testing.assert_array_equal(pixel.images[1, 0], images[23])
    np.testing.assert_array_equal(pixel.samples, to_uint8(gan.sample(seeds=SEEDS).numpy()))
    assert pixel.num_scanned == feature.num_scanned == 50
    # Seed 3 has no copy (a random-init G's samples are all near gray, so its nearest image is
    # seed 5's copy, at a small distance that is not zero).
    assert pixel.distances[0, 0] > 0.1 and feature.distances[0, 0] > 0


def test_top_k_equals_brute_force_on_images(gan):
    images = training_set(gan, n=45, planted={0: 3, 30: 3, 44: 5})  # a tie: seed 3 twice
    got = nb.nearest_neighbours(gan, SEEDS, stream(images, 8, ids=False), k=4, space="pixel")
    samples = to_model_range(got["pixel"].samples).astype(np.float64)  # as compared
    real = to_model_range(images).astype(np.float64)
    exact = np.sqrt(((samples[:, None] - real[None]) ** 2).sum((2, 3, 4)))
    want_d, want_i = brute_force(exact, 4)
    np.testing.assert_array_equal(got["pixel"].indices, want_i)
    np.testing.assert_allclose(got["pixel"].distances, want_d, rtol=1e-12, atol=1e-12)
    assert list(got["pixel"].indices[0, :2]) == [0, 30]  # equal distances: stream order
    assert got["pixel"].ids[0][:2] == ["0", "30"]  # images without ids: their positions
    record = got["pixel"].to_dict()
    assert record["samples"][0]["seed"] == 3
    assert record["samples"][0]["neighbours"][1] == {
        "rank": 2, "id": "30", "index": 30, "distance": 0.0}  # fmt: skip


def test_float_batches_and_the_feature_space_agree_with_direct_features(gan):
    from keras_dcgan.analysis.features import discriminator_features

    images = training_set(gan, n=20)
    floats = images.astype(np.float32) / 127.5 - 1
    got = nb.nearest_neighbours(gan, SEEDS, stream(floats, 6), k=20, space="feature")["feature"]
    f_real = discriminator_features(gan.discriminator, images).astype(np.float64)
    f_fake = discriminator_features(gan.discriminator, got.samples).astype(np.float64)
    exact = np.sqrt(((f_fake[:, None] - f_real[None]) ** 2).sum(-1))
    want_d, want_i = brute_force(exact, 20)
    np.testing.assert_allclose(got.distances, want_d, rtol=1e-4)
    np.testing.assert_array_equal(np.sort(got.indices, 1), np.sort(want_i, 1))


@pytest.mark.parametrize(
    "kwargs, message",
    [(dict(k=0), "k must be a positive integer"), (dict(k=2.0), "k must be a positive integer"),
     (dict(seeds=[]), "seeds is empty"), (dict(seeds=[1.5]), "seeds must be integers"),
     (dict(space="cosine"), "space must be one of pixel, feature"),
     (dict(space=[]), "at least one"),
     (dict(space=["pixel", "pixel"]), "repeat"),
     (dict(k=11), "k=11 neighbours asked for, but only 10 training images were scanned"),
     (dict(images=np.zeros((2, 4, 16, 16, 3), np.uint8)), r"\[N, 32, 32, 3\].*\(4, 16, 16, 3\)"),
     (dict(images=np.zeros((2, 4, 32, 32, 1), np.uint8)), "another image size or channel"),
     (dict(images=np.full((1, 4, 32, 32, 3), 3.0, np.float32)), "must be in \\[-1, 1\\]"),
     (dict(images=[]), "only 0 training images")],
)  # fmt: skip
def test_bad_inputs_are_refused(gan, kwargs, message):
    args = dict(seeds=SEEDS, images=np.zeros((2, 5, 32, 32, 3), np.uint8), k=1, space="pixel")
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        nb.nearest_neighbours(gan, args.pop("seeds"), args.pop("images"), **args)


def test_source_batches_streams_a_limited_scan():
    from keras_dcgan.data import open_source

    batches = list(nb.source_batches(open_source("digits"), 32, 3, limit=70, batch_size=32))
    assert [len(images) for _, images in batches] == [32, 32, 6]
    assert batches[0][0][:2] == ["digits/0000", "digits/0001"]
    assert all(
        images.dtype == np.uint8 and images.shape[1:] == (32, 32, 3) for _, images in batches
    )
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        next(nb.source_batches(open_source("digits"), 32, 3, limit=0))


# ---------------------------------------------------------------------------------- CLI
def test_cli_end_to_end_on_digits(tiny_run_dir, tmp_path):
    from keras_dcgan.data import open_source
    from keras_dcgan.training import load_trained

    png, saved = tmp_path / "n.png", tmp_path / "n.json"
    out = dcgan("neighbours", f"--model_dir={tiny_run_dir}", "--seeds=1,2", "--dataset=digits",
                "--num_images=100", "--k=3", "--batch_size=40", f"--output={png}",
                f"--save={saved}")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    got = np.asarray(Image.open(png))
    assert got.shape == (2 * 34 + 2, 8 * 34 + 2, 3)  # 2 seeds; sample + 3, twice
    record = json.loads(saved.read_text())
    assert record["num_scanned"] == 100 and record["k"] == 3 and record["dataset"] == "digits"
    _, gan = load_trained(tiny_run_dir)
    want = nb.nearest_neighbours(
        gan, [1, 2], nb.source_batches(open_source("digits"), 32, 3, limit=100), 3, nb.SPACES
    )
    for space in nb.SPACES:
        saved_space = record["spaces"][space]
        assert [[n["id"] for n in s["neighbours"]] for s in saved_space["samples"]] == want[
            space
        ].ids
        first = saved_space["samples"][0]["neighbours"][0]
        assert f"{first['id']} {first['distance']:.4g}" in out.stdout
    assert "100 training images of digits (train) scanned; k=3." in out.stdout


@pytest.mark.parametrize(
    "args, message",
    [(["--seeds=1", "--k=0"], "--k must be a positive integer"),
     ([], "give the samples' seeds"), (["--seeds="], "--seeds is empty"),
     (["--seeds=1", "--num_images=3", "--k=5"], "--k=5 is more than the --num_images=3"),
     (["--seeds=1", "--space=cosine"], "space must be one of pixel, feature"),
     (["--seeds=x"], "--seeds must be integers")],
)  # fmt: skip
def test_cli_refuses_bad_flags(tiny_run_dir, tmp_path, args, message):
    out = dcgan("neighbours", f"--model_dir={tiny_run_dir}", *args, f"--output={tmp_path}/n.png")
    assert out.returncode == 1, out.stderr[-2000:]
    assert "dcgan neighbours: error:" in out.stderr and message in out.stderr
    assert "Traceback" not in out.stderr
