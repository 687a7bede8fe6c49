"""Image sources and the training input pipeline: `open_source(...)`, `load_images(...)`.

A source is named by one string (the `--dataset` flag):

    digits                          scikit-learn's 8x8 digits (offline default)
    mnist, cifar10, celeb_a, ...    a TensorFlow Datasets name (also "tfds:NAME"), with data_dir
    /data/bedroom_train_lmdb        LSUN's LMDB export: a folder holding data.mdb (or "lmdb:PATH")
    /data/illustrations             any folder tree of image files (or "folder:PATH")

Every source gives the same pipeline (`ImageSource.dataset`): images centre-cropped to a square,
area-resized to `image_size`, converted to `channels`, scaled to float32 [-1, 1], shuffled with a
seed, optionally cached, batched with the GLOBAL batch size (remainder dropped) and prefetched.
Files that cannot be used (undecodable, truncated, empty, not images) are skipped and recorded in
`source.skip_log`; a source with no usable image is an error before training starts.

One module per kind of source: `base` (`ImageSource`), `folder`, `lmdb` (with the LMDB checks and
`write_lmdb_subset`), `tfds` and `digits`; the tf.data stages of `ImageSource.dataset` are in
`keras_dcgan.data.pipeline`.
"""

from __future__ import annotations

import os

import tensorflow as tf

from keras_dcgan.data.sources.base import (
    CACHE_DIR_ENV,
    DECODE_GROUP,
    SPLITS,
    ImageSource,
    default_cache_dir,
)
from keras_dcgan.data.sources.digits import DigitsSource
from keras_dcgan.data.sources.folder import FolderSource
from keras_dcgan.data.sources.lmdb import (
    RELEASE_EVERY_BYTES,
    DamagedLmdbError,
    LmdbSource,
    check_lmdb,
    write_lmdb_subset,
)
from keras_dcgan.data.sources.tfds import LSUN_HELP, TfdsSource, looks_like_tfds, square_resize
from keras_dcgan.errors import UserError

__all__ = [
    "CACHE_DIR_ENV",
    "DECODE_GROUP",
    "LSUN_HELP",
    "RELEASE_EVERY_BYTES",
    "SPLITS",
    "DamagedLmdbError",
    "DigitsSource",
    "FolderSource",
    "ImageSource",
    "LmdbSource",
    "TfdsSource",
    "check_lmdb",
    "default_cache_dir",
    "load_images",
    "open_source",
    "square_resize",
    "write_lmdb_subset",
]


def open_source(source: str, data_dir: str | None = None, download: bool = True) -> ImageSource:
    """The `ImageSource` a `--dataset` string names (see the module docstring).

    An explicit prefix ("tfds:", "lmdb:", "folder:") decides; otherwise "digits", then an
    existing path (an LMDB if it holds data.mdb, else a folder), then a TFDS name.
    """
    if not isinstance(source, str) or not source:
        raise UserError(f"The dataset must be a non-empty string; got {source!r}.")
    prefix, _, rest = source.partition(":")
    if rest and prefix == "tfds":
        return TfdsSource(rest, data_dir=data_dir, download=download)
    if rest and prefix == "lmdb":
        return LmdbSource(rest)
    if rest and prefix == "folder":
        return FolderSource(rest)
    if source == "digits":
        return DigitsSource()
    if source == "lsun_bedroom":  # the presets' name before TFDS naming
        source = "lsun/bedroom"
    if os.path.exists(source):
        if os.path.isfile(os.path.join(source, "data.mdb")) or source.endswith("data.mdb"):
            return LmdbSource(source)
        if os.path.isdir(source):
            return FolderSource(source)
        raise UserError(f"{source!r} is a file; give the folder of images or the LMDB folder.")
    if os.sep in source.rstrip(os.sep) and not looks_like_tfds(source):
        raise UserError(f"{source!r} does not exist (neither a folder nor an LMDB).")
    if looks_like_tfds(source):
        return TfdsSource(source, data_dir=data_dir, download=download)
    raise UserError(
        f"Unknown dataset {source!r}: not 'digits', not an existing folder or LMDB, and not a "
        "TensorFlow Datasets name (e.g. mnist, cifar10, celeb_a, lsun/bedroom)."
    )


def load_images(
    source: str,
    image_size: int,
    channels: int = 3,
    batch_size: int | None = None,
    *,
    data_dir: str | None = None,
    **options,
) -> tf.data.Dataset:
    """float32 images in [-1, 1] from any source: `open_source(source).dataset(...)`.

    Example:
    ```python
    ds = load_images("/data/bedroom_train_lmdb", 64, batch_size=128, cache=None)
    gan.fit(ds, epochs=5)
    ```
    `options` are those of `ImageSource.dataset` (split, holdout_fraction, keep_list,
    small_images, shuffle, seed, shuffle_buffer, cache, input_context, drop_remainder).
    """
    source = open_source(source, data_dir=data_dir)
    return source.dataset(image_size, channels, batch_size, **options)
