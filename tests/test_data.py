"""Image sources and the input pipeline: decoding, skipping, splits, caching, sharding, TFDS."""

import io
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from keras_dcgan.data import (
    DigitsSource,
    FolderSource,
    LmdbSource,
    SkippedImage,
    TfdsSource,
    decode_image,
    load_images,
    open_source,
    write_lmdb_subset,
)
from keras_dcgan.data.decode import decode_file
from keras_dcgan.data.sources.tfds import square_resize
from keras_dcgan.testing import synthetic
from tests.helpers import write_messy_folder


def _png(array, mode=None):
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    (image.convert(mode) if mode else image).save(buffer, format="PNG")
    return buffer.getvalue()


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photos():
    return synthetic.photo_like_images(24, 48, seed=3)


@pytest.fixture
def messy_folder(tmp_path, photos):
    return write_messy_folder(str(tmp_path / "images"), photos)


# ------------------------------------------------------------------------------------ decoding
def test_decode_centre_crops_and_area_resizes():
    # 60 x 40 image: a 10-px red band left and right of a 40x40 square of 2x2 black/white checks.
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :10] = image[:, 50:] = (255, 0, 0)
    checks = (np.indices((40, 40)).sum(0) % 2 * 255).astype(np.uint8)
    image[:, 10:50] = checks[..., None]
    out = decode_image(_png(image), 20, 3)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    # The crop removed the red bands; area averaging turns the checks into flat mid-gray.
    assert np.all(np.abs(out.astype(int) - 128) <= 1)


def test_decode_converts_modes_to_the_requested_channels(photos):
    rgb = photos[0]
    gray = decode_image(_png(rgb, "L"), 32, 3)
    assert gray.shape == (32, 32, 3) and np.array_equal(gray[..., 0], gray[..., 2])
    assert decode_image(_png(rgb), 32, 1).shape == (32, 32, 1)
    cmyk = decode_image(_save(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95), 32, 3)
    direct = decode_image(_save(Image.fromarray(rgb), "JPEG", quality=95), 32, 3)
    assert np.abs(cmyk.astype(int) - direct.astype(int)).mean() < 8
    assert decode_image(_png(rgb, "P"), 32, 3).shape == (32, 32, 3)
    # Transparent pixels are composited on white.
    rgba = np.zeros((32, 32, 4), np.uint8)
    assert np.all(decode_image(_png(rgba), 32, 3) == 255)
    # 16-bit grayscale is scaled to 8 bits, not clipped.
    sixteen = Image.fromarray(np.full((32, 32), 65535 // 2, np.uint16))
    assert abs(int(decode_image(_save(sixteen, "PNG"), 32, 1).mean()) - 127) <= 1
    frames = [Image.new("RGB", (32, 32), c) for c in ((0, 0, 255), (255, 0, 0))]
    gif = _save(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert decode_image(gif, 32, 3)[..., 2].mean() > 200  # the first (blue) frame
    for fmt in ("BMP", "WEBP", "TIFF"):
        assert decode_image(_save(Image.fromarray(rgb), fmt), 32, 3).shape == (32, 32, 3)


def test_decode_skips_bad_bytes_and_follows_the_small_image_policy(photos):
    data = synthetic.encode(photos[0])
    for bad, reason in [
        (b"", "empty file"),
        (b"hello, world", "not an image"),
        (data[: len(data) // 3], "undecodable or truncated"),
    ]:
        with pytest.raises(SkippedImage) as info:
            decode_image(bad, 32, 3)
        assert info.value.reason == reason
    small = _png(photos[0][:20, :24])
    assert decode_image(small, 32, 3, small_images="upscale").shape == (32, 32, 3)
    with pytest.raises(SkippedImage, match="smaller than the target size: 24x20 < 32"):
        decode_image(small, 32, 3, small_images="skip")
    with pytest.raises(ValueError, match="small_images must be one of"):
        decode_image(data, 32, 3, small_images="crop")


# ------------------------------------------------------------------------------------- folders
def test_folder_pipeline_skips_and_counts_bad_files(messy_folder):
    source = open_source(messy_folder)
    assert isinstance(source, FolderSource)
    assert len(source.all_ids()) == 24 and ".DS_Store" not in source.all_ids()
    ds = source.dataset(32, 3, batch_size=7, seed=0)
    for _ in range(2):  # two epochs: the same three files, counted once
        batches = [b.numpy() for b in ds]
        assert len(batches) == 21 // 7
        assert all(b.shape == (7, 32, 32, 3) and b.dtype == np.float32 for b in batches)
        assert min(b.min() for b in batches) >= -1.0 and max(b.max() for b in batches) <= 1.0
    assert source.skip_log.count == 3
    assert source.skip_log.items() == {
        "truncated.jpg": "undecodable or truncated",
        "empty.png": "empty file",
        "notes.txt": "not an image",
    }


def test_empty_or_unusable_sources_fail_before_training(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="has no input"):
        load_images(str(empty), 32, 3, 4)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.jpg").write_bytes(b"junk")
    (bad / "b.txt").write_text("text")
    with pytest.raises(ValueError, match="nothing usable: all 2 input"):
        load_images(str(bad), 32, 3, 4)
    with pytest.raises(ValueError, match="does not exist"):
        open_source(str(tmp_path / "missing" / "folder"))
    with pytest.raises(ValueError, match="is a file"):
        open_source(str(bad / "a.jpg"))
    with pytest.raises(ValueError, match="Unknown dataset 'no_such_dataset'"):
        open_source("no_such_dataset")
    with pytest.raises(ValueError, match="holdout_fraction must be in"):
        load_images("digits", 32, 1, 8, holdout_fraction=1.0)


def _ids(source, **kwargs):
    return [raw.numpy().decode() for raw, _ in source.examples(16, 3, **kwargs)]


def test_shuffling_is_seeded_and_changes_every_epoch(messy_folder):
    source = open_source(messy_folder)
    first = _ids(source, shuffle=True, seed=1)
    assert sorted(first) == sorted(_ids(source))
    assert first == _ids(open_source(messy_folder), shuffle=True, seed=1)
    assert first != _ids(source, shuffle=True, seed=2)
    ds = source.dataset(16, 3, batch_size=None, seed=1)
    epoch1, epoch2 = (np.stack(list(ds.as_numpy_iterator())) for _ in range(2))
    assert not np.array_equal(epoch1, epoch2)
    assert np.allclose(np.sort(epoch1.ravel()), np.sort(epoch2.ravel()))


def test_holdout_split_is_stable_and_disjoint(tmp_path, photos):
    root = str(tmp_path / "f")
    synthetic.write_image_folder(root, photos * 4)  # 96 files
    source = open_source(root)
    train, test = (source.ids(split, holdout_fraction=0.25) for split in ("train", "test"))
    assert sorted(train + test) == sorted(source.ids("all", holdout_fraction=0.25))
    assert not set(train) & set(test)
    assert 10 <= len(test) <= 40
    assert test == open_source(root).ids("test", holdout_fraction=0.25)
    with pytest.raises(ValueError, match="split must be one of"):
        source.ids("validation")


def test_keep_list_selects_inputs(messy_folder, tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("# kept\npart_00/img_00000.jpg\npart_01/img_00001.jpg\ncmyk.jpg\n")
    assert sorted(_ids(open_source(messy_folder), keep_list=str(keep))) == [
        "cmyk.jpg",
        "part_00/img_00000.jpg",
        "part_01/img_00001.jpg",
    ]


def test_caching_in_memory_and_in_a_file(messy_folder, tmp_path):
    cache = tmp_path / "cache"
    source = open_source(messy_folder)
    plain = np.sort(np.stack(list(source.dataset(16, 3, shuffle=False).as_numpy_iterator())), 0)
    for where in ("memory", str(cache)):
        ds = source.dataset(16, 3, shuffle=True, cache=where, seed=0)
        for _ in range(2):
            images = np.sort(np.stack(list(ds.as_numpy_iterator())), 0)
            np.testing.assert_array_equal(images, plain)
    names = {name.split(".")[0] for name in os.listdir(cache)}
    source.dataset(8, 3, cache=str(cache)).take(1).get_single_element()
    # A different image size gets its own cache file, never the stale one.
    assert len({name.split(".")[0] for name in os.listdir(cache)} - names) == 1


def test_input_context_shards_disjointly(messy_folder):
    source = open_source(messy_folder)
    shards = [_ids(source, input_context=tf.distribute.InputContext(2, i, 2)) for i in range(2)]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == sorted(_ids(source))
    ds = source.dataset(16, 3, 8, input_context=tf.distribute.InputContext(2, 0, 2))
    assert ds.element_spec.shape.as_list() == [4, 16, 16, 3]  # per-replica share of 8
    assert ds.options().experimental_distribute.auto_shard_policy == (
        tf.data.experimental.AutoShardPolicy.OFF
    )


# ---------------------------------------------------------------------------------------- LMDB
def test_lmdb_source_reads_jpeg_and_webp_and_caches_its_keys(tmp_path, photos, monkeypatch):
    monkeypatch.setenv("KERAS_DCGAN_CACHE_DIR", str(tmp_path / "cache"))
    values = [synthetic.encode(p) for p in photos[:10]]
    values += [synthetic.encode(p, "WEBP") for p in photos[10:16]] + [b"garbage"]
    path = str(tmp_path / "bedroom_train_lmdb")
    keys = synthetic.write_lmdb(path, values)
    source = open_source(path)
    assert isinstance(source, LmdbSource)
    assert source.all_ids() == sorted(k.decode() for k in keys)  # LMDB keeps keys sorted
    batches = list(source.dataset(32, 3, batch_size=4))
    assert len(batches) == 16 // 4 and source.skip_log.count == 1
    cached = os.listdir(tmp_path / "cache" / "lmdb_keys")
    assert len(cached) == 1 and cached[0].endswith(".npy")
    # A second open reads the key list from the cache, not with a cursor.
    reopened = LmdbSource(os.path.join(path, "data.mdb"))
    monkeypatch.setattr(reopened, "_environment", lambda: pytest.fail("cursor used"))
    assert reopened.all_ids() == source.all_ids()
    with pytest.raises(ValueError, match="not an LMDB folder"):
        LmdbSource(str(tmp_path))


# ------------------------------------------------------------------------------ TFDS and digits
def test_tfds_sources_with_mock_data():
    with tfds.testing.mock_data(num_examples=12):
        source = open_source("mnist")
        assert isinstance(source, TfdsSource)
        batch = next(iter(source.dataset(32, 3, batch_size=4)))
        assert batch.shape == (4, 32, 32, 3) and batch.dtype == tf.float32
        assert -1.0 <= float(tf.reduce_min(batch)) and float(tf.reduce_max(batch)) <= 1.0
        ids = [raw.numpy().decode() for raw, _ in source.examples(32, 1)]
        assert len(ids) == 12
        assert len(list(source.examples(32, 1, keep_list=ids[:5]))) == 5
        small = list(source.examples(32, 1, small_images="skip"))  # mnist is 28 px
        assert small == [] and source.skip_log.count == 12
        assert next(iter(load_images("tfds:cifar10", 16, 1, 2))).shape == (2, 16, 16, 1)
        with pytest.raises(ValueError, match="use a split such as"):
            source.dataset(32, 1, 4, holdout_fraction=0.1)


def test_lsun_in_tfds_points_to_the_lmdb_path(tmp_path):
    with pytest.raises(ValueError, match="not prepared.*bedroom_train_lmdb"):
        load_images("lsun/bedroom", 64, 3, 8, data_dir=str(tmp_path))
    with tfds.testing.mock_data(num_examples=4):  # LSUN prepared elsewhere is read as any TFDS
        assert next(iter(load_images("lsun/bedroom", 64, 3, 2))).shape == (2, 64, 64, 3)


@pytest.mark.parametrize("name", ["celeb_a", "svhn_cropped", "imagenet_resized/32x32"])
def test_the_papers_tfds_datasets(name):
    with tfds.testing.mock_data(num_examples=4):
        assert next(iter(load_images(name, 64, 3, 2))).shape == (2, 64, 64, 3)


def _min_resize_centre_crop(image, size):
    """The paper's ImageNet 32x32 by hand: the shorter side area-resized to `size`, then the
    centre `size` x `size` cut out (float, before rounding)."""
    height, width = image.shape[:2]
    scale = size / min(height, width)
    rows, cols = round(height * scale), round(width * scale)
    resized = tf.image.resize(image, (rows, cols), method="area").numpy()
    top, left = (rows - size) // 2, (cols - size) // 2
    return resized[top : top + size, left : left + size]


@pytest.mark.parametrize("shape", [(64, 96), (128, 64)], ids=["landscape", "portrait"])
def test_non_square_images_are_min_resized_and_centre_cropped_by_tfds_and_folders(shape, tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected = _min_resize_centre_crop(image, 32)
    tfds_crop = square_resize(image, 32, 3).numpy()
    np.testing.assert_allclose(tfds_crop, expected, atol=0.51)  # rounded to uint8
    Image.fromarray(image).save(tmp_path / "image.png")
    folder_crop = decode_file(str(tmp_path / "image.png"), 32, 3)
    np.testing.assert_allclose(folder_crop, expected, atol=1.01)  # Pillow's own rounding
    squashed = tf.image.resize(image, (32, 32), method="area").numpy()  # imagenet_resized's way
    assert np.abs(tfds_crop - squashed).mean() > 10


def test_paper32_reads_imagenet2012_min_resized_and_centre_cropped(tmp_path):
    from keras_dcgan.config import get_config

    dataset = get_config("paper32").dataset
    assert dataset == "imagenet2012"
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)

    def as_dataset(*args, **kwargs):  # one full-size, non-square ImageNet-like record
        return tf.data.Dataset.from_tensors(
            {"image": image, "label": np.int64(3), "tfds_id": b"imagenet2012-train__0"}
        )

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        [(_, crop)] = list(open_source(dataset).examples(32, 3))
    np.testing.assert_allclose(crop.numpy(), _min_resize_centre_crop(image, 32), atol=0.51)
    # Not prepared (and TFDS cannot download it): one line saying how, and naming the variant.
    with pytest.raises(ValueError, match="ILSVRC2012_img_train.tar.*imagenet_resized/32x32") as e:
        load_images(dataset, 32, 3, 8, data_dir=str(tmp_path))
    assert "\n" not in str(e.value)


def test_digits_source():
    source = open_source("digits")
    assert isinstance(source, DigitsSource)
    ds = source.dataset(32, 3, batch_size=64)
    assert ds.element_spec.shape.as_list() == [64, 32, 32, 3]
    assert int(ds.cardinality()) == 1797 // 64
    assert len(source.ids("test", holdout_fraction=0.1)) in range(130, 230)


def test_arrays_gives_ids_and_uint8_crops_in_source_order(messy_folder):
    source = open_source(messy_folder)
    ids, images = source.arrays(32, 3)
    assert ids == [i for i in source.all_ids() if i not in source.skip_log.items()]
    assert images.shape == (21, 32, 32, 3) and images.dtype == np.uint8
    ids, images = open_source("digits").arrays(32, 1, limit=10)
    assert ids[0] == "digits/0000" and images.shape == (10, 32, 32, 1)
    assert images.dtype == np.uint8 and images.min() == 0 and images.max() >= 250


def _batches(ds):
    return [b.numpy() for b in ds]


@pytest.mark.parametrize("kind", ["folder", "digits", "tfds", "cache"])
def test_an_epoch_is_a_fixed_order_and_resumes_mid_way(kind, messy_folder, tmp_path):
    """dataset(epoch=e) is one pass whose order depends on (seed, e) alone; skip_batches=k gives
    the same pass without its first k batches (for folders: without decoding them, with the bad
    files of the skipped part known from skip_log)."""
    mock = tfds.testing.mock_data(num_examples=40) if kind == "tfds" else None
    if mock:
        mock.__enter__()
    try:
        name = {"folder": messy_folder, "cache": messy_folder}.get(
            kind, {"digits": "digits"}.get(kind, "mnist")
        )
        cache = str(tmp_path / "cache") if kind == "cache" else None
        source = open_source(name)
        options = dict(batch_size=4, seed=7, cache=cache)
        full = _batches(source.dataset(32, 1, epoch=2, **options))
        assert len(full) >= 4
        again = _batches(open_source(name).dataset(32, 1, epoch=2, **options))
        np.testing.assert_array_equal(np.stack(full), np.stack(again))
        other = _batches(source.dataset(32, 1, epoch=3, **options))
        assert not np.array_equal(np.stack(full), np.stack(other[: len(full)]))
        fresh = open_source(name)
        if kind == "folder":  # what a resumed run knows: the skip log of the killed one
            for item_id, reason in source.skip_log.items().items():
                fresh.skip_log.add(item_id, reason)
        rest = _batches(fresh.dataset(32, 1, epoch=2, skip_batches=3, **options))
        np.testing.assert_array_equal(np.stack(rest), np.stack(full[3:]))
    finally:
        if mock:
            mock.__exit__(None, None, None)


def test_write_lmdb_subset(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_DCGAN_CACHE_DIR", str(tmp_path / "cache"))

    synthetic.write_lmdb(str(tmp_path / "full"), synthetic.photo_like_images(20, height=40))
    full = LmdbSource(str(tmp_path / "full"))
    ids = full.all_ids()[5:12]
    values = {i: full.read(i) for i in ids}
    assert write_lmdb_subset(full, tmp_path / "subset", reversed(ids)) == 7
    with pytest.raises(ValueError, match="already exists"):
        write_lmdb_subset(full, tmp_path / "subset", ids)
    # py-lmdb opens a database once per process: a second source of it (as train() opens while
    # the first is still alive) shares the environment instead of failing.
    again = LmdbSource(str(tmp_path / "full"))
    assert again.read(ids[0]) == values[ids[0]]
    assert open_source(str(tmp_path / "full")).read(ids[1]) == values[ids[1]]
    subset = LmdbSource(str(tmp_path / "subset"))
    assert subset.all_ids() == sorted(ids, key=lambda i: i.encode("latin-1"))
    assert all(subset.read(i) == values[i] for i in ids)
    assert sorted(os.listdir(tmp_path)) == ["cache", "full", "subset"]  # no temp folder left
    with pytest.raises(OSError):  # an id that is not there: nothing is left behind
        write_lmdb_subset(str(tmp_path / "full"), tmp_path / "bad", ["no such key"])
    assert not (tmp_path / "bad").exists()
    assert sorted(os.listdir(tmp_path)) == ["cache", "full", "subset"]


# ------------------------------------------------------------------------------ damaged LMDBs
def _damaged_lmdbs(tmp_path):
    """{kind: folder}: a whole LMDB truncated to half and to 5,000 bytes (an interrupted
    download or unzip), random bytes, an empty file."""
    full = str(tmp_path / "whole")
    synthetic.write_lmdb(full, [os.urandom(20_000) for _ in range(40)])  # overflow pages
    data = open(os.path.join(full, "data.mdb"), "rb").read()
    damaged = {
        "half": data[: len(data) // 2],
        "first_pages": data[:5000],
        "random": np.random.default_rng(0).bytes(100_000),
        "empty": b"",
    }
    folders = {}
    for kind, content in damaged.items():
        folder = tmp_path / kind
        folder.mkdir()
        (folder / "data.mdb").write_bytes(content)
        folders[kind] = str(folder)
    return full, folders


def test_a_damaged_lmdb_is_refused_in_one_line_before_anything_reads_it(tmp_path, monkeypatch):
    from keras_dcgan.data import DamagedLmdbError, check_lmdb

    monkeypatch.setenv("KERAS_DCGAN_CACHE_DIR", str(tmp_path / "cache"))
    full, folders = _damaged_lmdbs(tmp_path)
    assert check_lmdb(full) == 40
    messages = {
        "half": "is truncated: .* bytes, but its last page ends at byte .*50.0% of it",
        "first_pages": "is truncated",
        "random": "is not a readable LMDB database",
        "empty": "is not a readable LMDB database",
    }
    for kind, folder in folders.items():
        for call in (check_lmdb, open_source, LmdbSource, lambda p: load_images(p, 32, 3, 4)):
            with pytest.raises(DamagedLmdbError, match=messages[kind]) as info:
                call(folder)
            assert "\n" not in str(info.value) and "extract it again" in str(info.value)
    with pytest.raises(ValueError, match="not an LMDB folder"):
        check_lmdb(str(tmp_path))


@pytest.mark.parametrize("command", ["dedup", "train"])
def test_a_truncated_lmdb_is_one_line_and_exit_1_in_the_cli(tmp_path, command):
    """In a subprocess: reading a truncated LMDB used to kill the process with SIGBUS."""
    from tests.helpers import dcgan

    _, folders = _damaged_lmdbs(tmp_path)
    args = {"dedup": [f"--output={tmp_path}/keep.txt"],
            "train": ["--preset=tiny", f"--model_dir={tmp_path}/run", "--steps=1"]}  # fmt: skip
    out = dcgan(command, f"--dataset={folders['half']}", *args[command], cwd=tmp_path)
    assert out.returncode == 1, (out.returncode, out.stderr[-2000:])  # not -7 (SIGBUS)
    lines = [line for line in out.stderr.splitlines() if "is truncated" in line]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert not (tmp_path / "run").exists() and not (tmp_path / "keep.txt").exists()


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux's /proc only")
def test_reading_a_whole_lmdb_does_not_keep_its_pages_in_the_resident_set(tmp_path, monkeypatch):
    """LMDB reads through a memory map: without the periodic drop, a pass over LSUN's 43 GiB
    leaves 43 GiB of file pages in the process's RSS."""
    from keras_dcgan.data.sources import lmdb as lmdb_source

    def rss_file_kib():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("RssFile:"))

    path = str(tmp_path / "big")
    rng = np.random.default_rng(0)
    synthetic.write_lmdb(path, [rng.bytes(40_000) for _ in range(2_000)])  # 80 MB of values
    grown = {}
    for label, every in (("kept", 1 << 60), ("dropped", 1 << 20)):
        monkeypatch.setattr(lmdb_source, "RELEASE_EVERY_BYTES", every)
        source = LmdbSource(path)
        before = rss_file_kib()
        for item_id in source.all_ids():
            source.read(item_id)
        grown[label] = rss_file_kib() - before
        lmdb_source._release_mapped_pages(source._environment(), f"{path}/data.mdb", 1 << 62)
    assert grown["kept"] > 60_000, grown  # the map's pages stay resident without the drop
    assert grown["dropped"] < 15_000, grown
