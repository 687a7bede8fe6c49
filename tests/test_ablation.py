"""Forgetting to draw objects: dropping G's feature maps found from boxes (paper sec. 6.3.1)."""

import json

import numpy as np
import pytest
from PIL import Image

from keras_dcgan import latent
from keras_dcgan.analysis import ablation as ab
from tests.helpers import dcgan, tiny_gan

SEEDS = [3, 1, 4, 15]


@pytest.fixture(scope="module")
def gan():
    return tiny_gan(seed=0)  # 32 px RGB; G widths 32-16-8: the second-highest layer is 16x16x8


def model_hidden(gan, seeds):
    """G's own forward pass: the output of its last hidden block."""
    z = latent.latents_from_seeds(seeds, gan.z_dim, gan.z_prior)
    return gan.generator.block_outputs(z, training=False)[-2].numpy()


def output_block(gan, features):
    x = features
    for layer in gan.generator.get_block("output"):
        x = layer(x, training=False)
    return x.numpy()


def test_the_second_highest_layer(gan):
    assert ab.layer_shape(gan) == (16, 16, 8)
    h = ab.hidden_features(gan, SEEDS)
    assert h.shape == (4, 16, 16, 8)
    np.testing.assert_array_equal(h, model_hidden(gan, SEEDS))
    # It is the input of G's output layer: the output block alone turns it into the samples.
    np.testing.assert_allclose(output_block(gan, h), gan.sample(seeds=SEEDS).numpy(), atol=1e-6)


def test_no_channels_dropped_gives_exactly_the_samples(gan):
    np.testing.assert_array_equal(ab.render(gan, SEEDS), gan.sample(seeds=SEEDS).numpy())
    # Other batch sizes: the same up to float rounding (oneDNN sums in another order).
    np.testing.assert_allclose(
        ab.render(gan, SEEDS, batch_size=3), gan.sample(seeds=SEEDS).numpy(), atol=1e-6
    )


def test_ablation_changes_only_the_chosen_maps(gan):
    ref = model_hidden(gan, SEEDS)
    h = ab.hidden_features(gan, SEEDS, channels=[5, 1])
    keep = [c for c in range(8) if c not in (1, 5)]
    np.testing.assert_array_equal(h[..., keep], ref[..., keep])
    assert np.all(h[..., [1, 5]] == 0)
    assert np.any(ref[..., [1, 5]] != 0)  # the maps were not empty to begin with
    images = ab.render(gan, SEEDS, channels=[1, 5])
    np.testing.assert_allclose(images, output_block(gan, h), atol=1e-6)
    assert not np.allclose(images, ab.render(gan, SEEDS), atol=1e-7)
    result = ab.forget_objects(gan, SEEDS, channels=[5, 1])
    np.testing.assert_array_equal(result.channels, [1, 5])
    np.testing.assert_array_equal(result.with_maps, ab.render(gan, SEEDS))
    np.testing.assert_array_equal(result.without_maps, images)
    assert result.fit is None


def test_boxes_map_to_layer_cells():
    # 32 px image, 16x16 layer: cell (i, j) covers pixels [2j, 2j+2) x [2i, 2i+2), centre 2j+1.
    mask = ab.boxes_to_mask([[0, 0, 4, 2]], 32, 16)
    assert set(zip(*np.nonzero(mask), strict=True)) == {(0, 0), (0, 1)}
    mask = ab.boxes_to_mask([[6, 2, 11, 5], [30, 30, 32, 32]], 32, 16)  # centres 7, 9 / 3
    assert set(zip(*np.nonzero(mask), strict=True)) == {(1, 3), (1, 4), (15, 15)}
    mask = ab.boxes_to_mask([[5.2, 9.9, 5.8, 20.0]], 32, 16)  # thinner than a cell across x
    assert set(zip(*np.nonzero(mask), strict=True)) == {(5, 2), (6, 2), (7, 2), (8, 2), (9, 2)}
    assert ab.boxes_to_mask([[0, 0, 32, 32]], 32, 4).all()
    assert not ab.boxes_to_mask(np.zeros((0, 4)), 32, 16).any()
    with pytest.raises(ValueError, match="does not divide"):
        ab.boxes_to_mask([[0, 0, 1, 1]], 32, 12)


def planted_boxes(gan, channel, seeds, layer=-2):
    """Boxes around the layer cells where `channel` is high: the object IS that channel."""
    z = latent.latents_from_seeds(seeds, gan.z_dim, gan.z_prior)
    index = gan.generator.block_names.index(ab.resolve_layer(gan, layer))
    h = gan.generator.block_outputs(z, training=False)[index].numpy()[..., channel]
    f = 32 // h.shape[1]  # pixels per cell
    high = h > np.quantile(h, 0.85)
    samples = []
    for seed, cells in zip(seeds, high, strict=True):
        boxes = [[f * j, f * i, f * j + f, f * i + f] for i, j in np.argwhere(cells)]
        samples.append({"seed": seed, "boxes": boxes})
    return ab.parse_boxes({"image_size": 32, "samples": samples})


def test_logistic_regression_finds_the_planted_channel(gan):
    seeds = list(range(20))
    for channel in (2, 6):
        boxes = planted_boxes(gan, channel, seeds)
        fit = ab.fit_object_channels(gan, boxes)
        assert int(np.argmax(fit.weights)) == channel
        assert channel in fit.channels
        np.testing.assert_array_equal(fit.channels, np.flatnonzero(fit.weights > 0))
        assert fit.accuracy > 0.95
        assert fit.num_positives + fit.num_negatives == 20 * 16 * 16
        assert fit.layer_shape == (16, 16, 8)
    strict = ab.fit_object_channels(gan, boxes, threshold=fit.weights[channel] - 1e-9)
    np.testing.assert_array_equal(strict.channels, [channel])
    sampled = ab.fit_object_channels(gan, boxes, negatives_per_positive=2)
    assert sampled.num_negatives == 2 * sampled.num_positives
    assert int(np.argmax(sampled.weights)) == channel
    result = ab.forget_objects(gan, [7, 8], boxes=boxes)
    np.testing.assert_array_equal(result.channels, fit.channels)
    np.testing.assert_array_equal(result.without_maps, ab.render(gan, [7, 8], fit.channels))


# ------------------------------------------------------------------------- --layer
HIDDEN = [("project", 0, (4, 4, 32)), ("up1", 1, (8, 8, 16)), ("up2", 2, (16, 16, 8))]


@pytest.mark.parametrize("name, index, shape", HIDDEN)
def test_every_hidden_layer(gan, name, index, shape):
    g = gan.generator
    assert ab.hidden_layers(gan) == ("project", "up1", "up2")
    for spelling in (name, index, str(index), index - 4, f"{index - 4}"):
        assert ab.resolve_layer(gan, spelling) == name
    assert ab.layer_shape(gan, name) == shape
    z = latent.latents_from_seeds(SEEDS, gan.z_dim, gan.z_prior)
    h = ab.hidden_features(gan, SEEDS, layer=name)
    np.testing.assert_array_equal(h, g.block_outputs(z, training=False)[index].numpy())
    # No map dropped: exactly the plain samples, from any layer.
    plain = gan.sample(seeds=SEEDS).numpy()
    np.testing.assert_array_equal(ab.render(gan, SEEDS, layer=name), plain)
    np.testing.assert_array_equal(ab.render(gan, SEEDS, [], layer=index), plain)
    # Some maps dropped: the rest of G sees them zeroed, the other maps unchanged.
    some = [0, shape[-1] - 1]
    dropped = ab.hidden_features(gan, SEEDS, some, layer=name)
    assert np.all(dropped[..., some] == 0)
    keep = [c for c in range(shape[-1]) if c not in some]
    np.testing.assert_array_equal(dropped[..., keep], h[..., keep])
    # Every map dropped: the image changes (G's later blocks see only zeros; a random-init G's
    # images are small, so the change is measured against them).
    blank = ab.render(gan, SEEDS, list(range(shape[-1])), layer=name)
    assert np.abs(blank - plain).max() > 0.5 * np.abs(plain).max() > 0
    assert np.all(ab.hidden_features(gan, SEEDS, list(range(shape[-1])), layer=name) == 0)
    result = ab.forget_objects(gan, SEEDS, channels=some, layer=index)
    assert (result.layer, result.layer_shape) == (name, shape)
    np.testing.assert_array_equal(result.with_maps, plain)
    np.testing.assert_array_equal(result.without_maps, ab.render(gan, SEEDS, some, layer=name))


def test_default_layer_is_the_last_hidden_block(gan):
    assert ab.resolve_layer(gan) == ab.resolve_layer(gan, None) == "up2"
    assert ab.layer_shape(gan) == ab.layer_shape(gan, "up2") == ab.layer_shape(gan, -2)
    np.testing.assert_array_equal(ab.render(gan, SEEDS, [1]), ab.render(gan, SEEDS, [1], layer=2))


@pytest.mark.parametrize("layer, channel", [("up1", 5), ("up1", 11), (0, 20)])
def test_logistic_regression_finds_a_planted_channel_at_any_layer(gan, layer, channel):
    name = ab.resolve_layer(gan, layer)
    boxes = planted_boxes(gan, channel, list(range(20)), layer=name)
    fit = ab.fit_object_channels(gan, boxes, layer=layer)
    side, _, maps = ab.layer_shape(gan, name)
    assert int(np.argmax(fit.weights)) == channel and channel in fit.channels
    assert len(fit.weights) == maps
    np.testing.assert_array_equal(fit.channels, np.flatnonzero(fit.weights > 0))
    assert fit.num_positives + fit.num_negatives == 20 * side * side
    assert (fit.layer, fit.layer_shape) == (name, (side, side, maps))
    record = fit.to_dict()
    assert record["layer"] == name and record["layer_shape"] == [side, side, maps]
    assert (record["num_dropped"], record["num_maps"]) == (len(fit.channels), maps)
    result = ab.forget_objects(gan, [7, 8], boxes=boxes, layer=name)
    np.testing.assert_array_equal(result.channels, fit.channels)
    np.testing.assert_array_equal(
        result.without_maps, ab.render(gan, [7, 8], fit.channels, layer=name)
    )


@pytest.mark.parametrize(
    "layer, message",
    [("output", "'output' is G's output block"), (3, "3 is G's output block"),
     (-1, "-1 is G's output block"), (4, "index 4 is out of range"),
     (-5, "index -5 is out of range"), ("up9", "no layer 'up9'"), ("", "no layer ''"),
     (1.0, "must be a block name or index"), (True, "must be a block name or index")],
)  # fmt: skip
def test_bad_layers_are_refused(gan, layer, message):
    with pytest.raises(ValueError, match=message) as error:
        ab.render(gan, [1], layer=layer)
    assert "hidden layers are project, up1, up2" in str(error.value)
    with pytest.raises(ValueError, match=message):
        ab.forget_objects(gan, [1], channels=[0], layer=layer)
    with pytest.raises(ValueError, match="channel 16 is out of range"):
        ab.render(gan, [1], [16], layer="up1")  # up1 has 16 maps


def test_fitting_needs_positives_and_negatives(gan):
    empty = ab.parse_boxes({"image_size": 32, "samples": [{"seed": 1, "boxes": []}]})
    with pytest.raises(ValueError, match="no box"):
        ab.fit_object_channels(gan, empty)
    full = ab.parse_boxes({"image_size": 32, "samples": [{"seed": 1, "boxes": [[0, 0, 32, 32]]}]})
    with pytest.raises(ValueError, match="no negatives"):
        ab.fit_object_channels(gan, full)
    other_size = ab.parse_boxes({"image_size": 64, "samples": [{"seed": 1, "boxes": []}]})
    with pytest.raises(ValueError, match="drawn on 64 px images"):
        ab.fit_object_channels(gan, other_size)
    with pytest.raises(ValueError, match="not both"):
        ab.forget_objects(gan, [1], boxes=full, channels=[1])
    with pytest.raises(ValueError, match="not both"):
        ab.forget_objects(gan, [1])


@pytest.mark.parametrize(
    "channels, message",
    [([8], "channel 8 is out of range"), ([-1], "channel -1 is out of range"),
     ([1, 1], "repeat"), ([1.0], "must be integers")],
)  # fmt: skip
def test_bad_channels_are_rejected(gan, channels, message):
    with pytest.raises(ValueError, match=message):
        ab.render(gan, [1], channels)


def doc(**changes):
    base = {"image_size": 32, "samples": [{"seed": 1, "boxes": [[0, 0, 8, 8]]}]}
    base.update(changes)
    return base


def sample(**changes):
    return doc(samples=[{"seed": 1, "boxes": [[0, 0, 8, 8]], **changes}])


BAD_FILES = [
    ([], "expected a JSON object"),
    ({"samples": []}, "missing key 'image_size'"),
    ({"image_size": 32}, "missing key 'samples'"),
    (doc(sample=[]), r"unknown keys \['sample'\]"),
    (doc(image_size="32"), "image_size must be a positive integer"),
    (doc(image_size=64), "drawn on 64 px images but the model makes 32 px"),
    (doc(model=3), "model must be a string"),
    (doc(samples=[]), "samples must be a non-empty list"),
    (doc(samples=[7]), r"samples\[0\] must be an object"),
    (doc(samples=[{"boxes": []}]), r"samples\[0\]: missing key 'seed'"),
    (doc(samples=[{"seed": 1}]), r"samples\[0\]: missing key 'boxes'"),
    (sample(label="window"), r"unknown keys \['label'\]"),
    (sample(seed="12"), "seed must be an integer"),
    (sample(seed=1.5), "seed must be an integer"),
    (sample(seed=True), "seed must be an integer"),
    (sample(seed=2**63), "seed must be an integer"),
    (doc(samples=[{"seed": 4, "boxes": []}, {"seed": 4, "boxes": []}]),
     r"samples\[1\]: seed 4 is already annotated in samples\[0\]"),
    (sample(boxes=[0, 0, 8, 8]), "must be 4 finite numbers"),
    (sample(boxes={"x0": 0}), "boxes must be a list"),
    (sample(boxes=[[0, 0, 8]]), r"boxes\[0\] must be 4 finite numbers"),
    (sample(boxes=[[0, 0, "8", 8]]), "must be 4 finite numbers"),
    (sample(boxes=[[0, 0, float("nan"), 8]]), "must be 4 finite numbers"),
    (sample(boxes=[[8, 0, 8, 8]]), "empty or inverted: need x1 > x0"),
    (sample(boxes=[[0, 9, 8, 2]]), "empty or inverted"),
    (sample(boxes=[[0, 0, 8, 8], [-1, 0, 8, 8]]), r"boxes\[1\] = .* is outside the 32x32 image"),
    (sample(boxes=[[0, 0, 33, 8]]), "outside the 32x32 image"),
]  # fmt: skip


@pytest.mark.parametrize("data, message", BAD_FILES)
def test_box_file_validation(data, message):
    with pytest.raises(ValueError, match=message):
        ab.parse_boxes(data, image_size=32)


def test_load_boxes_round_trip_and_file_errors(tmp_path):
    good = {"image_size": 32, "model": "runs/x", "samples": [
        {"seed": 12, "boxes": [[1, 2, 3.5, 4]]}, {"seed": -3, "boxes": []}]}  # fmt: skip
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(good))
    boxes = ab.load_boxes(path, image_size=32)
    assert boxes.seeds == [12, -3] and boxes.model == "runs/x"
    np.testing.assert_array_equal(boxes.boxes[0], [[1, 2, 3.5, 4]])
    assert boxes.boxes[1].shape == (0, 4)
    assert boxes.to_dict() == good
    path.write_text("{not json")
    with pytest.raises(ValueError, match="boxes.json is not valid JSON"):
        ab.load_boxes(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ab.load_boxes(tmp_path / "missing.json")


# ---------------------------------------------------------------------------------- CLI
def test_cli_fits_drops_and_writes_both_rows(tiny_run_dir, tmp_path):
    from keras_dcgan import images as image_io
    from keras_dcgan.training import load_trained

    _, gan = load_trained(tiny_run_dir)
    boxes_file, png, saved = tmp_path / "boxes.json", tmp_path / "a.png", tmp_path / "ch.json"
    boxes_file.write_text(json.dumps(planted_boxes(gan, 3, list(range(6))).to_dict()))
    out = dcgan("ablate", f"--model_dir={tiny_run_dir}", f"--boxes={boxes_file}", "--seeds=7,8,9",
                f"--output={png}", f"--save_channels={saved}")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    fit = ab.fit_object_channels(gan, ab.load_boxes(boxes_file))
    record = json.loads(saved.read_text())
    assert record["channels"] == fit.channels.tolist() and 3 in record["channels"]
    assert record["layer_shape"] == [16, 16, 8]
    assert f"layer: {fit.channels.tolist()}" in out.stdout
    want = image_io.make_grid(
        np.concatenate([ab.render(gan, [7, 8, 9]), ab.render(gan, [7, 8, 9], fit.channels)]), 3
    )
    got = np.asarray(Image.open(png))
    assert got.shape == want.shape == (2 * 34 + 2, 3 * 34 + 2, 3)  # 2 rows, 3 seeds
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # float rounding at most


def test_cli_layer_option(tiny_run_dir, tmp_path):
    from keras_dcgan.training import load_trained

    _, gan = load_trained(tiny_run_dir)
    png, saved = tmp_path / "a.png", tmp_path / "ch.json"
    out = dcgan("ablate", f"--model_dir={tiny_run_dir}", "--layer=up1", "--channels=2,9",
                "--seeds=7,8", f"--output={png}", f"--save_channels={saved}")  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    record = json.loads(saved.read_text())
    assert record["layer"] == "up1" and record["layer_shape"] == [8, 8, 16]
    assert (record["num_dropped"], record["num_maps"], record["channels"]) == (2, 16, [2, 9])
    assert "Dropped 2 of 16 feature maps of G's layer up1 (8x8x16)" in out.stdout
    got = np.asarray(Image.open(png))
    assert got.shape == (2 * 34 + 2, 2 * 34 + 2, 3)
    out = dcgan("ablate", f"--model_dir={tiny_run_dir}", "--layer=output", "--channels=1",
                f"--output={png}")  # fmt: skip
    assert out.returncode == 1
    assert (
        "dcgan ablate: error:" in out.stderr and "hidden layers are project, up1, up2" in out.stderr
    )


def test_cli_exits_1_on_a_bad_box_file(tiny_run_dir, tmp_path):
    boxes_file, png = tmp_path / "boxes.json", tmp_path / "a.png"
    boxes_file.write_text(json.dumps(sample(boxes=[[0, 0, 40, 8]])))
    out = dcgan("ablate", f"--model_dir={tiny_run_dir}", f"--boxes={boxes_file}", f"--output={png}")
    assert out.returncode == 1
    assert "dcgan ablate: error:" in out.stderr and "outside the 32x32 image" in out.stderr
    assert not png.exists()
