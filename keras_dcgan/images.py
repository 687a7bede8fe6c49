"""Image conversions at the package's edges and sample grids.

Inside the package images are float32 NHWC in [-1, 1]; at the edges (files, serving, metrics)
they are uint8 in [0, 255].
"""

from __future__ import annotations

import math
import os
import sys

import numpy as np
from PIL import Image

from keras_dcgan.errors import UserError


def to_uint8(images):
    """float [-1, 1] -> uint8 [0, 255] (values outside [-1, 1] are clipped; rounding half to
    even). A symbolic tensor (in a tf.function, a tf.data map or a SavedModel signature) gives a
    tensor; anything else, eager tensors included, a NumPy array."""
    tf = _tensorflow_if(images)
    if tf is not None:
        return tf.cast(tf.round((tf.clip_by_value(images, -1.0, 1.0) + 1.0) * 127.5), tf.uint8)
    images = np.asarray(images, dtype=np.float32)
    return np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def to_model_range(images):
    """uint8 [0, 255] -> float32 [-1, 1]: x / 127.5 - 1.

    A symbolic tensor (in a tf.function, a tf.data map or a SavedModel signature) gives a tensor;
    anything else, eager tensors included, a NumPy array."""
    tf = _tensorflow_if(images)
    if tf is not None:
        return tf.cast(images, tf.float32) / 127.5 - 1.0
    return np.asarray(images, dtype=np.float32) / 127.5 - 1.0


def _tensorflow_if(images):
    """The tensorflow module if `images` is a symbolic tensor, else None (without importing TF:
    no tensor exists unless TensorFlow was imported)."""
    tf = sys.modules.get("tensorflow")
    return tf if tf is not None and tf.is_symbolic_tensor(images) else None


def make_grid(images, columns: int | None = None, padding: int = 2) -> np.ndarray:
    """Tiles N images (NHWC, float in [-1, 1] or uint8) into one uint8 HxWxC grid.

    `columns` defaults to ceil(sqrt(N)); cells are separated by `padding` black pixels.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[0] == 0:
        raise UserError(f"make_grid expects a non-empty NHWC batch; got shape {images.shape}.")
    if images.dtype != np.uint8:
        images = to_uint8(images)
    n, h, w, c = images.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    grid = np.zeros(
        (rows * (h + padding) + padding, columns * (w + padding) + padding, c), np.uint8
    )
    for i, image in enumerate(images):
        r, col = divmod(i, columns)
        y, x = padding + r * (h + padding), padding + col * (w + padding)
        grid[y : y + h, x : x + w] = image
    return grid


def save_grid(images, path: str | os.PathLike, columns: int | None = None) -> str:
    """Writes `make_grid(images)` as a PNG (atomically: a reader never sees half a file).

    Raises `keras_dcgan.paths.PathError` (one line naming the path and the cause) when `path`
    is a folder, lies inside a file, or cannot be written (read-only, full disk)."""
    from keras_dcgan.paths import PathError, ensure_folder, write_failure

    grid = make_grid(images, columns)
    picture = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    path = os.fspath(path)
    if not path or os.path.isdir(path):
        raise PathError(f"The output {path!r} is a folder; give a file name such as grid.png.")
    ensure_folder(os.path.dirname(os.path.abspath(path)), "The output folder")
    tmp = f"{path}.tmp"
    try:
        picture.save(tmp, format="PNG")
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise write_failure(path, e) from None
    return path
