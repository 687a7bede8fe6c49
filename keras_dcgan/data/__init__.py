"""Image sources as tf.data pipelines of float32 NHWC images in [-1, 1].

`load_images(source, image_size, channels, batch_size)` is the one entry point (the CLI's
`--dataset`); `open_source(source)` gives the `ImageSource` behind it (its `skip_log` counts the
files that could not be used). See `keras_dcgan.data.sources` for the sources.
"""

from __future__ import annotations

from keras_dcgan.data.decode import SkipLog, SkippedImage, decode_image
from keras_dcgan.data.digits import load_digits
from keras_dcgan.data.preprocessing import check_dataset, image_spec
from keras_dcgan.data.sources import (
    DamagedLmdbError,
    DigitsSource,
    FolderSource,
    ImageSource,
    LmdbSource,
    TfdsSource,
    check_lmdb,
    load_images,
    open_source,
    square_resize,
    write_lmdb_subset,
)

__all__ = [
    "DamagedLmdbError",
    "DigitsSource",
    "FolderSource",
    "ImageSource",
    "LmdbSource",
    "SkipLog",
    "SkippedImage",
    "TfdsSource",
    "check_dataset",
    "check_lmdb",
    "decode_image",
    "image_spec",
    "load_digits",
    "load_images",
    "open_source",
    "square_resize",
    "write_lmdb_subset",
]
