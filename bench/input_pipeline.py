"""Input pipeline throughput: decoded images/second from 256-px JPEGs to 64x64 float batches.

Writes `--num_images` LSUN-like JPEGs (256 px short side, quality 90, crops of scikit-learn's
sample photos) to a temporary folder and an LMDB, then times full passes of
`keras_dcgan.data.load_images` over each (shuffled, batched 128, nothing cached), next to a
baseline written the usual tf.data way (tf.io.read_file, tf.io.decode_jpeg, centre crop,
tf.image.resize area), alternating in the same process. Prints the median img/s of `--repeats`
passes, per CPU core, and the ratio to the baseline.

    python bench/input_pipeline.py --num_images=2000 --repeats=5
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_dcgan.data import load_images, square_resize  # noqa: E402
from keras_dcgan.testing import synthetic  # noqa: E402

_NUM_IMAGES = flags.DEFINE_integer("num_images", 2000, "JPEGs written and read per pass.")
_SOURCE_SIZE = flags.DEFINE_integer("source_size", 256, "Short side of the stored JPEGs.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Side of the produced images.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 128, "Batch size.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed passes per pipeline (median reported).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where to write the images (default: a temp dir).")


def baseline_pipeline(folder: str, image_size: int, batch_size: int) -> tf.data.Dataset:
    """The common tf.data way: TF's JPEG decoder at full size, then crop and area resize."""
    files = sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names)

    def load(path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        return tf.cast(square_resize(image, image_size, 3), tf.float32) / 127.5 - 1.0

    ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=0)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors()
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def _images_per_second(dataset) -> float:
    start, n = time.perf_counter(), 0
    for batch in dataset:
        n += int(batch.shape[0])
    return n / (time.perf_counter() - start)


def main(argv):
    del argv
    workdir = _WORKDIR.value or tempfile.mkdtemp(prefix="dcgan_input_bench_")
    folder, lmdb_dir = os.path.join(workdir, "jpegs"), os.path.join(workdir, "lmdb")
    if not os.path.isdir(folder):
        images = synthetic.photo_like_images(_NUM_IMAGES.value, _SOURCE_SIZE.value, seed=0)
        synthetic.write_image_folder(folder, images, subfolders=10)
        synthetic.write_lmdb(lmdb_dir, images, map_size=8 << 30)
    size, batch = _IMAGE_SIZE.value, _BATCH_SIZE.value
    pipelines = {
        "keras-dcgan folder": lambda: load_images(folder, size, 3, batch, seed=0),
        "keras-dcgan lmdb": lambda: load_images(lmdb_dir, size, 3, batch, seed=0),
        "baseline tf.data": lambda: baseline_pipeline(folder, size, batch),
    }
    datasets = {name: make() for name, make in pipelines.items()}
    for ds in datasets.values():  # warm-up pass (file cache, tracing)
        _images_per_second(ds)
    rates = {name: [] for name in datasets}
    for _ in range(_REPEATS.value):
        for name, ds in datasets.items():
            rates[name].append(_images_per_second(ds))
    cores = os.cpu_count()
    print(
        f"# TF {tf.__version__}, {cores} CPUs; {_NUM_IMAGES.value} JPEGs of "
        f"{_SOURCE_SIZE.value} px -> {size}x{size}, batch {batch}; median of "
        f"{_REPEATS.value} passes"
    )
    base = statistics.median(rates["baseline tf.data"])
    for name, values in rates.items():
        median = statistics.median(values)
        print(
            f"{name:<20} {median:8.0f} img/s  ({median / cores:6.0f} per core; "
            f"min {min(values):.0f}, max {max(values):.0f}) | ratio to baseline "
            f"{median / base:.2f}"
        )


if __name__ == "__main__":
    app.run(main)
