"""Test and benchmark fixture: the planted near-duplicates experiment of `dcgan dedup`.

Not used by the library itself. `planted_duplicates` builds the offline experiment used by the
tests (tests/test_dedup.py) and by `bench/dedup_planted.py`: distinct 32x32 images (tiles of
scikit-learn's two sample photos, smooth colour fields and Pillow-drawn shapes) plus
near-duplicates of some of them, and `pair_scores` measures the precision and recall of a
de-duplication (`keras_dcgan.data.dedup`) against them.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Sequence

import numpy as np

from keras_dcgan.data.dedup import INPUT_SIZE
from keras_dcgan.errors import UserError

_BORDER = 2  # base crops sit 2 px inside a 36x36 canvas, so shifted copies stay inside it
_CANVAS = INPUT_SIZE + 2 * _BORDER
COPY_KINDS = ("resize", "jpeg", "shift")


@dataclasses.dataclass(frozen=True)
class PlantedDuplicates:
    """images uint8 [N, 32, 32, 3] with their ids; pairs (original id, planted copy id);
    base: id -> the id of the distinct image it was made from (itself for originals)."""

    images: np.ndarray
    ids: list[str]
    pairs: list[tuple[str, str]]
    base: dict[str, str]


def _photo_tiles(min_std: float, scale: int) -> list[tuple[str, np.ndarray]]:
    """Non-overlapping (36 * scale)-pixel tiles of the sample photos, box-downsampled to 36."""
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    size = _CANVAS * scale
    tiles = []
    for filename, photo in zip(bunch.filenames, bunch.images, strict=True):
        name = os.path.splitext(os.path.basename(filename))[0]
        h, w, _ = photo.shape
        for y in range(0, h - size + 1, size):
            for x in range(0, w - size + 1, size):
                tile = photo[y : y + size, x : x + size].astype(np.float32)
                tile = tile.reshape(_CANVAS, scale, _CANVAS, scale, 3).mean(axis=(1, 3))
                tile = np.round(tile).astype(np.uint8)
                # flat sky and blurred background really are all alike: leave them out
                if tile.reshape(-1, 3).std(axis=0).mean() >= min_std:
                    tiles.append((f"{name}/{y:03d}_{x:03d}", tile))
    return tiles


def _smooth_field(rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    cells = int(rng.integers(2, 6))
    coarse = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
    field = Image.fromarray(coarse).resize((_CANVAS, _CANVAS), Image.Resampling.BICUBIC)
    return np.asarray(field)


def _shapes(rng: np.random.Generator) -> np.ndarray:
    from PIL import Image, ImageDraw

    def colour():
        return tuple(int(c) for c in rng.integers(0, 256, 3))

    picture = Image.new("RGB", (_CANVAS, _CANVAS), colour())
    draw = ImageDraw.Draw(picture)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = (int(v) for v in rng.integers(-8, _CANVAS, 2))
        x1, y1 = x0 + int(rng.integers(6, 24)), y0 + int(rng.integers(6, 24))
        kind = int(rng.integers(0, 4))
        if kind == 0:
            draw.ellipse((x0, y0, x1, y1), fill=colour())
        elif kind == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour())
        elif kind == 2:
            points = [tuple(int(v) for v in rng.integers(-4, _CANVAS + 4, 2)) for _ in range(3)]
            draw.polygon(points, fill=colour())
        else:
            draw.line((x0, y0, x1, y1), fill=colour(), width=int(rng.integers(2, 5)))
    return np.asarray(picture)


def _centre(canvas: np.ndarray, dy: int = 0, dx: int = 0) -> np.ndarray:
    y, x = _BORDER + dy, _BORDER + dx
    return canvas[y : y + INPUT_SIZE, x : x + INPUT_SIZE]


def _copy(kind: str, canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    crop = _centre(canvas)
    if kind == "resize":  # down to 16-24 px and back up
        small = int(rng.integers(16, 25))
        picture = Image.fromarray(crop).resize((small, small), Image.Resampling.BILINEAR)
        return np.asarray(picture.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR))
    if kind == "jpeg":  # re-encoded at quality 75
        buffer = io.BytesIO()
        Image.fromarray(crop).save(buffer, format="JPEG", quality=75)
        return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    if kind == "shift":  # the crop window moved by 1-2 px (at least one axis non-zero)
        while True:
            dy, dx = (int(v) for v in rng.integers(-2, 3, 2))
            if dy or dx:
                return _centre(canvas, dy, dx)
    raise UserError(f"Unknown copy kind {kind!r}; expected one of {COPY_KINDS}.")


def planted_duplicates(
    num_base: int = 300,
    copies_per_kind: int = 30,
    seed: int = 0,
    kinds: Sequence[str] = COPY_KINDS,
    min_std: float = 20.0,
    photo_scale: int = 2,
) -> PlantedDuplicates:
    """Distinct 32x32 images plus planted near-duplicates of some of them, shuffled (offline).

    The `num_base` distinct images are, in a seeded random mix, non-overlapping tiles of
    scikit-learn's china.jpg and flower.jpg (at most half of them; tiles of 36 * `photo_scale`
    px box-downsampled to 36, so 2 gives whole-scene-like content and 1 fine native texture;
    tiles whose mean per-channel pixel std is below `min_std` are left out, as flat sky and
    blurred background are duplicates in truth), then random smooth colour fields and random
    Pillow-drawn shapes. For each kind in `kinds` ("resize": down to 16-24 px and back up,
    "jpeg": JPEG quality 75, "shift": the crop window moved 1-2 px), `copies_per_kind` randomly
    chosen bases get one such copy each. Ids are "<source>/<name>" and "<base id>~<kind>".
    """
    for kind in kinds:
        if kind not in COPY_KINDS:
            raise UserError(f"Unknown copy kind {kind!r}; expected one of {COPY_KINDS}.")
    if photo_scale < 1:
        raise UserError(f"photo_scale must be >= 1; got {photo_scale}.")
    if num_base < 1 or copies_per_kind < 0 or copies_per_kind > num_base:
        raise UserError(
            f"Need num_base >= 1 and 0 <= copies_per_kind <= num_base; got {num_base}, "
            f"{copies_per_kind}."
        )
    rng = np.random.default_rng(seed)
    tiles = _photo_tiles(min_std, photo_scale)
    num_photo = min(len(tiles), num_base // 2)
    canvases = {}
    for i in rng.permutation(len(tiles))[:num_photo]:
        name, tile = tiles[int(i)]
        canvases[name] = tile
    for i in range(num_base - num_photo):
        if i % 2:
            canvases[f"shapes/{i // 2:04d}"] = _shapes(rng)
        else:
            canvases[f"field/{i // 2:04d}"] = _smooth_field(rng)
    names = list(canvases)
    items = [(name, _centre(canvases[name])) for name in names]
    pairs = []
    for kind in kinds:
        for i in sorted(rng.choice(len(names), copies_per_kind, replace=False)):
            name = names[int(i)]
            items.append((f"{name}~{kind}", _copy(kind, canvases[name], rng)))
            pairs.append((name, f"{name}~{kind}"))
    order = rng.permutation(len(items))
    ids = [items[int(i)][0] for i in order]
    images = np.stack([items[int(i)][1] for i in order]).astype(np.uint8)
    base = {ident: ident.split("~")[0] for ident in ids}
    return PlantedDuplicates(images=images, ids=ids, pairs=pairs, base=base)


@dataclasses.dataclass(frozen=True)
class PairScores:
    """Pairwise scores of groups against planted duplicates (see `pair_scores`)."""

    precision: float
    recall: float
    reported_pairs: int
    true_pairs: int
    found_planted: int
    planted_pairs: int


def pair_scores(groups: Sequence[Sequence[str]], planted: PlantedDuplicates) -> PairScores:
    """Precision: reported pairs (every pair inside a group) made from the same base image, over
    reported pairs (1.0 when none is reported). Recall: planted (original, copy) pairs that share
    a group, over planted pairs (1.0 when none is planted)."""
    group_of = {}
    reported = true = 0
    for g, members in enumerate(groups):
        for k, a in enumerate(members):
            group_of[a] = g
            for b in members[k + 1 :]:
                reported += 1
                true += planted.base[a] == planted.base[b]
    found = sum(1 for a, b in planted.pairs if a in group_of and group_of.get(a) == group_of.get(b))
    return PairScores(
        precision=true / reported if reported else 1.0,
        recall=found / len(planted.pairs) if planted.pairs else 1.0,
        reported_pairs=reported,
        true_pairs=true,
        found_planted=found,
        planted_pairs=len(planted.pairs),
    )
