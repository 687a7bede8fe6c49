"""Encoded image bytes -> square uint8 arrays, with Pillow, and a log of what could not be decoded.

The paper's preprocessing: centre crop to a square, resize with antialiasing (area averaging),
then (in the pipeline) scale to [-1, 1]. Pillow decodes JPEG, PNG, WebP, BMP, GIF (first frame),
TIFF and PPM (`FORMATS`), and converts every mode (grayscale, palette, RGBA, CMYK, 16-bit) to
the requested channels; transparent pixels are composited on white, as an image viewer shows
them.

JPEGs are decoded at a reduced DCT scale (libjpeg's 1/2, 1/4, 1/8, through Pillow's `draft`)
whenever the reduced image is still at least twice the target size on its short side, then
area-resized: a 256-px LSUN JPEG going to 64 px is decoded at 128 px, about 3x faster than a full
decode, and the area resize still averages at least 2x2 decoded pixels per output pixel.

Memory is bounded before anything is decoded: the format and the dimensions are read from the
header (Pillow opens lazily; a file is read as it is decoded, never whole up front), only the
formats above are accepted, and an image with more pixels than `max_pixels` (after the JPEG
reduction, default `DEFAULT_MAX_PIXELS`, the `max_image_pixels` data setting) is skipped as
"above the pixel budget" without being decoded. Decoding needs about 4-8 bytes per pixel (more
for RGBA and 16-bit files, which are converted), so the budget of 40 MP bounds one decode at a
few hundred MB; tf.data runs a few at once.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections import Counter

import numpy as np
from PIL import Image, ImageOps

from keras_dcgan.options import check_channels, check_small_images

log = logging.getLogger(__name__)

# Reasons a file is skipped (the keys of SkipLog.reasons()).
NOT_AN_IMAGE = "not an image"
UNDECODABLE = "undecodable or truncated"
EMPTY = "empty file"
TOO_SMALL = "smaller than the target size"
UNREADABLE = "unreadable"
TOO_LARGE = "above the pixel budget"
DEFAULT_MAX_PIXELS = 40_000_000
# What Pillow may open (by the header, whatever the name; JPEG includes MPO): dataset formats.
# Others (EPS, which runs Ghostscript, PSD, ICNS, ...) are "not an image".
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "DIB", "GIF", "TIFF", "PPM")
_EXIF_ORIENTATION = 0x0112


class SkippedImage(Exception):
    """Raised by `decode_image` for input that is not used; `reason` is one of the reasons above."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def decode_image(
    data, image_size: int, channels: int, small_images: str = "upscale",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> np.ndarray:  # fmt: skip
    """Encoded image -> uint8 [image_size, image_size, channels], centre-cropped and
    area-resized.

    `data` is the encoded bytes or a binary file object (read only as far as decoding needs).
    Raises `SkippedImage` for data that is not a decodable image of an accepted format
    (`FORMATS`), an image above `max_pixels` pixels (None: no budget but Pillow's own bomb
    limit), or (with `small_images="skip"`) an image whose short side is below `image_size`;
    "upscale" resizes such images up (bicubic) instead."""
    check_channels(channels)
    check_small_images(small_images)
    if isinstance(data, (bytes, bytearray, memoryview)):
        if not data:
            raise SkippedImage(EMPTY)
        data = io.BytesIO(data)
    elif not data.read(1):
        raise SkippedImage(EMPTY)
    else:
        data.seek(0)
    try:
        image = Image.open(data, formats=FORMATS)
    except Image.UnidentifiedImageError:
        raise SkippedImage(NOT_AN_IMAGE, "not a recognised image format") from None
    except Image.DecompressionBombError as e:
        raise SkippedImage(TOO_LARGE, str(e)) from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise SkippedImage(UNDECODABLE, str(e)) from None
    try:
        return _to_array(image, image_size, channels, small_images, max_pixels)
    except SkippedImage:
        raise
    except Image.DecompressionBombError as e:
        raise SkippedImage(TOO_LARGE, str(e)) from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as e:
        raise SkippedImage(UNDECODABLE, str(e) or type(e).__name__) from None


def decode_file(path: str | os.PathLike, image_size: int, channels: int,
                small_images: str = "upscale",
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:  # fmt: skip
    """`decode_image` of a file, read as it is decoded: the header decides first, so a huge
    non-image file costs a few bytes, not its size. OSError (missing, unreadable) propagates."""
    with open(path, "rb") as f:
        return decode_image(f, image_size, channels, small_images, max_pixels)


def _to_array(image: Image.Image, size: int, channels: int, small_images: str,
              max_pixels: int | None) -> np.ndarray:  # fmt: skip
    if image.format == "JPEG" or image.format == "MPO":
        # Largest DCT reduction that keeps the short side >= 2 * size (Pillow picks the largest
        # scale whose result is at least the requested size).
        image.draft("L" if channels == 1 else "RGB", (2 * size, 2 * size))
    width, height = image.size  # from the header (after the JPEG reduction): nothing decoded
    if max_pixels is not None and width * height > max_pixels:
        raise SkippedImage(
            TOO_LARGE,
            f"{width}x{height} = {width * height / 1e6:.1f} MP > max_image_pixels "
            f"{max_pixels / 1e6:g} MP",
        )
    image.load()  # decodes (GIF: the first frame); truncated data raises here
    if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:  # camera photos: upright as viewers show
        image = ImageOps.exif_transpose(image)
    image = _convert(image, "L" if channels == 1 else "RGB")
    width, height = image.size
    side = min(width, height)
    if side < size and small_images == "skip":
        raise SkippedImage(TOO_SMALL, f"{width}x{height} < {size}")
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    resample = Image.Resampling.BOX if side >= size else Image.Resampling.BICUBIC
    if side == size:
        image = image.crop(box)
    else:
        image = image.resize((size, size), resample, box=box)
    array = np.asarray(image, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array


def _convert(image: Image.Image, mode: str) -> Image.Image:
    """Any Pillow mode -> "L" or "RGB"; transparency composited on white."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    elif image.mode.startswith("I;16"):
        # 16-bit grayscale: scale the range to 8 bits instead of clipping, in integers (a
        # float64 copy would cost 8 bytes per pixel).
        values = np.asarray(image).astype(np.uint32)
        values *= 255
        values += 32767
        values //= 65535
        image = Image.fromarray(values.astype(np.uint8))
    elif image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if values.max() > 255 else 255.0
        image = Image.fromarray(np.clip(values / peak * 255.0 + 0.5, 0, 255).astype(np.uint8))
    return image if image.mode == mode else image.convert(mode)


class SkipLog:
    """Thread-safe record of the inputs a pipeline skipped: id -> reason.

    The pipeline's decoding threads add to it; `count` is the number of DISTINCT inputs skipped
    so far (an input skipped again on the next epoch counts once), so after one full pass it is
    exactly the number of unusable inputs of the source. Each input is logged once, at WARNING.
    """

    max_warnings = 20  # inputs logged one by one; later ones only in the counts

    def __init__(self):
        self._lock = threading.Lock()
        self._skipped: dict[str, str] = {}

    def add(self, item_id: str, reason: str, detail: str = "", quiet: bool = False) -> None:
        """Records a skipped input (logged unless `quiet`, e.g. when read back from a file)."""
        with self._lock:
            if item_id in self._skipped:
                return
            self._skipped[item_id] = reason
            n = len(self._skipped)
        if quiet:
            return
        if n <= self.max_warnings:
            log.warning("Skipped %s (%s)%s", item_id, reason, f": {detail}" if detail else "")
        if n == self.max_warnings:
            log.warning("Further skipped inputs are counted but not logged one by one.")

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._skipped)

    def __contains__(self, item_id: str) -> bool:
        with self._lock:
            return item_id in self._skipped

    def reason(self, item_id: str) -> str | None:
        with self._lock:
            return self._skipped.get(item_id)

    def items(self) -> dict[str, str]:
        """id -> reason for every skipped input."""
        with self._lock:
            return dict(self._skipped)

    def reasons(self) -> Counter:
        """How many inputs were skipped for each reason."""
        with self._lock:
            return Counter(self._skipped.values())

    def summary(self) -> str:
        reasons = self.reasons()
        if not reasons:
            return "no input skipped"
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
        return f"{self.count} input(s) skipped ({parts})"
