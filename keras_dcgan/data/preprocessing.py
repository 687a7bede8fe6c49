"""Checks of what a dataset yields: its image part, its spec, its shape, dtype and emptiness."""

from __future__ import annotations

import tensorflow as tf

from keras_dcgan.errors import UserError


def image_part(element):
    """The images of a dataset element or of its spec: images, (images, ...) or {'image': ...}."""
    if isinstance(element, dict):
        if "image" not in element:
            raise UserError(
                f"Dataset elements are dicts without an 'image' key (keys: {sorted(element)})."
            )
        return element["image"]
    if isinstance(element, (tuple, list)):
        return element[0]
    return element


def image_spec(dataset: tf.data.Dataset) -> tf.TensorSpec:
    """The TensorSpec of the images in a dataset of images, (images, ...) or {'image': ...}."""
    spec = image_part(dataset.element_spec)
    if not isinstance(spec, tf.TensorSpec):
        raise UserError(f"Dataset elements must be image tensors; got {spec}.")
    return spec


def check_images_spec(shape, dtype, image_shape: tuple[int, int, int], source: str) -> None:
    """Raises a one-line ValueError unless (shape, dtype) is a float batch of `image_shape`.

    `shape` may have unknown (None) dimensions, which pass; `source` names what yields the
    images in the message (e.g. "the dataset").
    """
    shape, dtype = tf.TensorShape(shape), tf.as_dtype(dtype)
    expected = f"(batch, {', '.join(map(str, image_shape))})"
    if shape.rank is not None and shape.rank != 4:
        hint = " (is the dataset batched?)" if shape.rank == 3 else ""
        raise UserError(
            f"Expected batches of images of shape {expected}; {source} yields rank "
            f"{shape.rank} elements of shape {tuple(shape)}{hint}."
        )
    if shape.rank == 4:
        got = tuple(shape[1:])
        if got[2] is not None and got[2] != image_shape[2]:
            raise UserError(
                f"Expected {image_shape[2]} channel(s) ({expected}); {source} yields "
                f"{got[2]} channel(s): {tuple(shape)}."
            )
        if any(g is not None and g != e for g, e in zip(got[:2], image_shape[:2], strict=True)):
            raise UserError(
                f"Expected images of size {image_shape[0]}x{image_shape[1]} ({expected}); "
                f"{source} yields {tuple(shape)}."
            )
    if not dtype.is_floating:
        raise UserError(
            f"Expected float images in [-1, 1]; {source} yields {dtype.name}. Scale them "
            "with keras_dcgan.images.to_model_range (x / 127.5 - 1)."
        )


def check_dataset(dataset, image_shape: tuple[int, int, int]) -> None:
    """Raises a one-line ValueError unless `dataset` yields float batches of `image_shape`.

    Only the static element spec and known cardinality are read; no element is produced.
    """
    if not isinstance(dataset, tf.data.Dataset):
        return
    spec = image_spec(dataset)
    check_images_spec(spec.shape, spec.dtype, image_shape, "the dataset")
    if int(dataset.cardinality()) == 0:
        raise UserError("The dataset is empty: it yields no batch.")
