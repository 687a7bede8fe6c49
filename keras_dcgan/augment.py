"""Differentiable augmentation of D's inputs for small datasets (DiffAugment, Zhao et al. 2020).

A discriminator trained on a few thousand images memorises them: it ends up sure of every real
image and of every sample (D(x) near 1, D(G(z)) near 0), and G learns little more. DiffAugment
applies the same kind of random transformation to the real AND the generated images before D sees
them, in both the D and the G update. D can no longer memorise exact pixels, and since the
transformations are differentiable, G still gets a gradient through them. G itself never sees an
augmented image; its samples are not translated or cut.

Not in the DCGAN paper: it is off by default and in every paper preset (`augment=""`). The
digits default uses "translation,cutout". On the 1,797 scikit-learn digits this keeps D balanced
(D(x) about 0.55 at 6,000 steps instead of 0.99) and raises the digits score; see the README.

Policies, applied in the order given:
    translation  shift every image by a random whole number of pixels, up to 1/8 of its side in
                 each direction; the uncovered border is black (-1).
    cutout       blacken (-1) a random square of a quarter of the side, centred anywhere in the
                 image (it may be cut by the border).

The random draws come from the caller's `keras.random.SeedGenerator` for the GLOBAL batch and each
replica keeps its slice (as `DCGAN` does with the noise), so a step on N replicas augments exactly
as a step on one device. That is why this is not Keras' RandomTranslation / RandomErasing layers:
those draw per replica from their own seeds, so two replicas would repeat each other's draws.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_dcgan.options import parse_augment as parse_policy  # noqa: F401 (public name)

TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 4
FILL = -1.0


def translate(images, shifts, fill: float = FILL):
    """Shifts image b by shifts[b] = (dy, dx) whole pixels (down and right when positive).

    Args:
        images: float [B, H, W, C].
        shifts: int32 [B, 2].
        fill: value of the pixels uncovered at the border.
    Returns:
        float [B, H, W, C]: out[b, y, x] = images[b, y - dy, x - dx], or `fill` outside.
    """
    shape = tf.shape(images)
    h, w = shape[1], shape[2]
    rows = tf.range(h)[None, :, None] - shifts[:, 0, None, None]  # [B, H, 1]
    cols = tf.range(w)[None, None, :] - shifts[:, 1, None, None]  # [B, 1, W]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)  # [B, H, W]
    rows = tf.clip_by_value(rows, 0, h - 1)
    cols = tf.clip_by_value(cols, 0, w - 1)
    # Two batched gathers (rows, then columns): differentiable with respect to the images.
    out = tf.gather(images, rows[:, :, 0], axis=1, batch_dims=1)
    out = tf.gather(out, cols[:, 0, :], axis=2, batch_dims=1)
    return tf.where(inside[..., None], out, tf.cast(fill, images.dtype))


def cutout(images, corners, size, fill: float = FILL):
    """Sets a size x size square of image b, top-left at corners[b] = (y, x), to `fill`.

    Args:
        images: float [B, H, W, C].
        corners: int32 [B, 2]; the square may reach past the border (then it is cut there).
        size: int, side of the square.
    """
    shape = tf.shape(images)
    rows = tf.range(shape[1])[None, :, None] - corners[:, 0, None, None]
    cols = tf.range(shape[2])[None, None, :] - corners[:, 1, None, None]
    inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
    return tf.where(inside[..., None], tf.cast(fill, images.dtype), images)


def cutout_size(image_size: int) -> int:
    return max(1, round(image_size * CUTOUT_RATIO))


def max_shift(image_size: int) -> int:
    return max(1, round(image_size * TRANSLATION_RATIO))


def draw(policy: tuple[str, ...], batch_size, image_size: int, seed_generator) -> dict:
    """Random parameters of `policy` for `batch_size` images (one dict entry per policy)."""
    params = {}
    for name in policy:
        if name == "translation":
            m = max_shift(image_size)
            params[name] = keras.random.randint(
                (batch_size, 2), -m, m + 1, seed=seed_generator, dtype="int32"
            )
        else:  # cutout: the square's top-left corner, so that its centre is uniform
            s = cutout_size(image_size)
            params[name] = keras.random.randint(
                (batch_size, 2), -(s // 2), image_size - s // 2, seed=seed_generator, dtype="int32"
            )
    return params


def apply(images, policy: tuple[str, ...], params: dict):
    """Applies `policy` with parameters from `draw` (sliced to this batch)."""
    for name in policy:
        if name == "translation":
            images = translate(images, params[name])
        else:
            images = cutout(images, params[name], cutout_size(images.shape[1]))
    return images
