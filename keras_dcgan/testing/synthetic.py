"""Test and benchmark fixture: generated image sources for tests, benchmarks and notebook smoke
runs (nothing downloaded; not used by the library itself).

`photo_like_images` crops and rescales the two photographs that ship inside scikit-learn
(`load_sample_images`: a temple in China, a flower), so JPEG sizes and decode costs are those of
natural images; `write_image_folder` and `write_lmdb` store them as files or as an LSUN-style LMDB
(key = SHA-1 of the encoded bytes, value = JPEG/WebP/PNG bytes).
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image


def photo_like_images(
    n: int, height: int = 256, width: int | None = None, seed: int = 0
) -> list[np.ndarray]:
    """`n` uint8 RGB arrays [height, width, 3]: random crops of scikit-learn's sample photos,
    randomly scaled and flipped (width default: LSUN-like, 1 to 1.33 x height)."""
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(p) for p in load_sample_images().images]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        photo = photos[rng.integers(len(photos))]
        w = width or int(height * rng.uniform(1.0, 4 / 3))
        scale = rng.uniform(max(height / photo.height, w / photo.width), 1.0) * 1.0001
        scaled = photo.resize(
            (max(w, round(photo.width * scale)), max(height, round(photo.height * scale)))
        )
        left = rng.integers(scaled.width - w + 1)
        top = rng.integers(scaled.height - height + 1)
        crop = scaled.crop((left, top, left + w, top + height))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out.append(np.asarray(crop, np.uint8))
    return out


def encode(image: np.ndarray, fmt: str = "JPEG", quality: int = 90) -> bytes:
    """uint8 [H, W, C] (or [H, W]) -> encoded bytes in a Pillow format (JPEG, PNG, WEBP, ...)."""
    array = image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image
    buffer = io.BytesIO()
    kwargs = {"quality": quality} if fmt.upper() in ("JPEG", "WEBP") else {}
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif"}


def write_image_folder(folder: str, images, fmt: str = "JPEG", subfolders: int = 0) -> list[str]:
    """Writes images as files `img_NNNNN.<ext>` (spread over `subfolders` sub-folders if > 0);
    returns their paths relative to `folder`."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        sub = f"part_{i % subfolders:02d}" if subfolders else ""
        rel = os.path.join(sub, f"img_{i:05d}{_SUFFIX[fmt.upper()]}")
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
        with open(os.path.join(folder, rel), "wb") as f:
            f.write(encode(image, fmt))
        paths.append(rel)
    return paths


def write_lmdb(path: str, values, map_size: int = 1 << 30) -> list[bytes]:
    """Writes an LSUN-style LMDB folder (data.mdb): each value (encoded image bytes, or a uint8
    array encoded as JPEG) under the hex SHA-1 of its bytes; returns the keys in write order."""
    import lmdb

    os.makedirs(path, exist_ok=True)
    keys = []
    env = lmdb.open(path, map_size=map_size)
    with env.begin(write=True) as txn:
        for value in values:
            data = value if isinstance(value, bytes) else encode(value)
            key = hashlib.sha1(data + str(len(keys)).encode()).hexdigest().encode()
            txn.put(key, data)
            keys.append(key)
    env.close()
    return keys


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_large_png(path: str, width: int, height: int, bit_depth: int = 16,
                    color_type: int = 0) -> str:  # fmt: skip
    """A PNG of zeros of any size, streamed row by row through zlib (never the image in memory):
    a 12000x12000 16-bit one is 0.3 MB on disk and 288 MB decoded, a decompression bomb below
    Pillow's own limit. `color_type`: 0 grayscale, 2 RGB, 6 RGBA; `bit_depth` 8 or 16."""
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    row = b"\0" + bytes(width * channels * bit_depth // 8)
    compressor = zlib.compressobj(9)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header))
        pending = b""
        for _ in range(height):
            pending += compressor.compress(row)
            if len(pending) > 1 << 20:
                f.write(_png_chunk(b"IDAT", pending))
                pending = b""
        f.write(_png_chunk(b"IDAT", pending + compressor.flush()))
        f.write(_png_chunk(b"IEND", b""))
    return path
