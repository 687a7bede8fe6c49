"""Hostile image folders: symbolic-link loops, decompression bombs below Pillow's limit, huge
non-image files. Listing terminates and lists each file once; decoding memory is bounded."""

import os
import threading
import tracemalloc

import numpy as np
import pytest

from keras_dcgan.config import DataConfig
from keras_dcgan.data import FolderSource, SkippedImage, decode
from keras_dcgan.testing import synthetic


@pytest.fixture(scope="module")
def photos():
    return synthetic.photo_like_images(8, 40, seed=5)


def _list_with_timeout(source, seconds=30):
    """all_ids() in a thread, so that a hanging listing fails the test instead of the run."""
    result = {}
    thread = threading.Thread(target=lambda: result.update(ids=source.all_ids()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the listing did not finish"
    return result["ids"]


def test_symlink_loops_and_repeated_links_list_each_real_folder_once(tmp_path, photos):
    root = tmp_path / "images"
    synthetic.write_image_folder(str(root / "a"), photos[:4])
    synthetic.write_image_folder(str(root / "b"), photos[4:8])
    os.symlink("..", root / "a" / "up")  # a loop back to the root
    os.symlink(".", root / "b" / "self")  # a loop onto itself
    os.symlink(str(root / "a"), root / "c")  # a second path to a
    os.symlink(str(root / "missing"), root / "broken")
    ids = _list_with_timeout(FolderSource(str(root)))
    assert len(ids) == 8 and len(set(ids)) == 8
    real = {os.path.realpath(os.path.join(root, i)) for i in ids}
    assert len(real) == 8  # every image once, by its first path in sorted order
    assert all(i.startswith(("a/", "b/")) for i in ids)
    batches = list(FolderSource(str(root)).dataset(16, 3, batch_size=4, seed=0))
    assert len(batches) == 2


def test_a_link_to_a_folder_outside_is_followed(tmp_path, photos):
    outside = tmp_path / "outside"
    synthetic.write_image_folder(str(outside), photos[:3])
    root = tmp_path / "images"
    synthetic.write_image_folder(str(root), photos[3:5])
    os.symlink(str(outside), root / "more")
    assert len(_list_with_timeout(FolderSource(str(root)))) == 5


def test_an_image_above_the_pixel_budget_is_skipped_from_its_header(tmp_path):
    """A 0.3 MB 16-bit PNG of 12000x12000 decodes to 288 MB (and cost 3.6 GB before the budget):
    refused from its header, without decoding, and counted once."""
    path = synthetic.write_large_png(str(tmp_path / "bomb.png"), 12000, 12000, bit_depth=16)
    assert os.path.getsize(path) < 1 << 20
    with pytest.raises(SkippedImage) as info:
        decode.decode_file(path, 64, 3)
    assert info.value.reason == decode.TOO_LARGE == "above the pixel budget"
    assert "12000x12000 = 144.0 MP > max_image_pixels 40 MP" in str(info.value)
    source = FolderSource(str(tmp_path))
    calls = []
    real = decode.decode_file

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    import keras_dcgan.data.sources.folder as folder

    original, folder.decode_file = folder.decode_file, counting
    try:
        for _ in range(2):  # a second epoch does not open it again
            with pytest.raises(SkippedImage, match="above the pixel budget"):
                source.load("bomb.png", 64, 3)
    finally:
        folder.decode_file = original
    assert len(calls) == 1 and source.skip_log.items() == {"bomb.png": "above the pixel budget"}


def test_the_pixel_budget_is_a_setting(tmp_path, photos):
    synthetic.write_image_folder(str(tmp_path), photos[:4])  # 40 px high, wider
    source = FolderSource(str(tmp_path))
    assert len(list(source.dataset(16, 3, batch_size=2, max_image_pixels=40 * 60))) == 2
    with pytest.raises(ValueError, match="nothing usable.*4 above the pixel budget"):
        source.dataset(16, 3, batch_size=2, max_image_pixels=100)
    assert DataConfig().max_image_pixels == decode.DEFAULT_MAX_PIXELS == 40_000_000
    assert DataConfig(max_image_pixels=None).max_image_pixels is None
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ValueError, match="max_image_pixels must be a positive integer"):
            DataConfig(max_image_pixels=bad)
    # JPEGs count after their DCT reduction: a 4000x3000 photo going to 16 px is decoded at 500 x
    # 375, under a budget that the full size is not.
    big = np.zeros((3000, 4000, 3), np.uint8)
    with open(tmp_path / "big.jpg", "wb") as f:
        f.write(synthetic.encode(big))
    assert decode.decode_file(str(tmp_path / "big.jpg"), 16, 3, max_pixels=1_000_000).shape == (
        16, 16, 3,
    )  # fmt: skip


def test_a_huge_non_image_file_is_not_read_whole(tmp_path):
    """A 1.5 GB file (sparse: no disk used) that is not an image: rejected from its first
    bytes. Reading it whole first, as before, cost 1.5 GB of memory."""
    with open(tmp_path / "huge.bin", "wb") as f:
        f.truncate(1536 << 20)
    source = FolderSource(str(tmp_path))
    tracemalloc.start()
    try:
        with pytest.raises(SkippedImage, match="not an image"):
            source.load("huge.bin", 64, 3)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB allocated"


def test_only_image_formats_are_opened(tmp_path):
    """Pillow opens dozens of formats by their header (EPS runs Ghostscript); a folder of images
    is decoded only as JPEG, PNG, WebP, BMP, GIF, TIFF or PPM."""
    from PIL import Image

    path = str(tmp_path / "picture.jpg")
    Image.new("RGB", (32, 32), (200, 10, 10)).save(path, format="ICO")  # .jpg by name only
    with pytest.raises(SkippedImage, match="not an image"):
        decode.decode_file(path, 16, 3)
    Image.new("RGB", (32, 32), (200, 10, 10)).save(path, format="PPM")
    assert decode.decode_file(path, 16, 3)[..., 0].mean() > 150
