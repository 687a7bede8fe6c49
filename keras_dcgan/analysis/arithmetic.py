"""Vector arithmetic on latents (Radford et al. 2015, sec. 6.3.2, Fig. 7 and 8).

Arithmetic on single latents is unstable; on the mean of a few (the paper: three) exemplar
latents per concept it is not: "smiling woman" - "neutral woman" + "neutral man" gives smiling
men. The paper shows the result's image and 8 samples with uniform noise of scale 0.25 added to
the result (Fig. 7), and a "turn" direction, the mean of 4 right-facing latents minus the mean of
4 left-facing ones, added to samples in growing amounts (Fig. 8).

    exemplar_latents(spec, z_dim, prior)  [k, z_dim] from seeds (ints), a [k, z_dim] array, or a
                                          .npy file ([k, z_dim] or one [z_dim] vector)
    load_latents(path, z_dim)             a .npy file of latents, checked
    save_latents(z, path)                 writes a .npy atomically
    concept_vector(z_exemplars)           mean of the exemplars: [z_dim]
    combine(a, b, c)                      a - b + c (the documented path)
    linear_combination(vectors, weights)  sum_i w_i v_i (e.g. weights (1, -1, 1) is `combine`)
    neighbours(z, num, scale, seed)       `num` copies of z plus U[-scale, scale] noise, by seed
    turn_direction(left_z, right_z)       mean(right) - mean(left)
    apply_direction(z, direction, amounts)  z + amount * direction for each amount
    pixel_arithmetic(images_a, images_b, images_c)  the same arithmetic on mean images (Fig. 7's
                                          baseline), clipped to [-1, 1]
    arithmetic_grid(model, a, b, c)       the Fig. 7 layout, rendered, with the pixel baseline
    turn_grid(model, left, right, start, amounts)  the Fig. 8 layout, rendered

Nothing is clipped to the prior's range, as in the paper: G is defined on all of R^z_dim, and a
sum like a - b + c of U[-1, 1] latents can leave [-1, 1] in some coordinates (up to 3) without
the images breaking down. Clip with `np.clip(z, -1, 1)` before rendering to compare. The noise of
`neighbours` is uniform whatever the prior (the paper's choice), and depends only on (seed, num,
z_dim): the same seed gives the same neighbours on any machine (TF's stateless RNG, as latents).

Example (seeds picked by looking at `dcgan sample` grids):
```python
from keras_dcgan.analysis import arithmetic
from keras_dcgan.images import save_grid

grid = arithmetic.arithmetic_grid(gan, a=[11, 52, 93], b=[4, 8, 15], c=[16, 23, 42])
save_grid(grid.images, "arithmetic.png", grid.columns)
```
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from keras_dcgan import validation
from keras_dcgan.analysis.latent_walks import (
    Grid,
    check_latents,
    check_seeds,
    render,
    resolve_model,
    seeds_to_latents,
)
from keras_dcgan.errors import UserError

# The second word of the stateless seed of the neighbours' noise (latents use 0), so that seed 7's
# noise is not seed 7's latent.
_NOISE_STREAM = 1

# Fig. 8's columns: -1 ... 1 in 9 steps, so the sample to turn is the middle column.
DEFAULT_AMOUNTS = tuple(float(a) for a in np.linspace(-1.0, 1.0, 9))


# -------------------------------------------------------------------------------- latents
def load_latents(path, z_dim: int | None = None, what: str | None = None) -> np.ndarray:
    """A .npy file of float latents [k, z_dim] (or one vector [z_dim]) as float32 [k, z_dim]."""
    path = os.fspath(path)
    what = f"{what} ({path})" if what else path
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what}: no such file.")
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise UserError(f"{what}: not a .npy file (save latents with numpy.save).")
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"{what}: not a readable .npy array of numbers ({e}).") from None
    if z.ndim == 1:
        z = z[None]
    return check_latents(z, what, z_dim=z_dim)


def save_latents(z, path) -> str:
    """Writes float32 latents to `path` (.npy) atomically: a reader never sees half a file."""
    z = np.asarray(z, np.float32)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:  # a file object: np.save(name) would append ".npy"
        np.save(f, z, allow_pickle=False)
    os.replace(tmp, path)
    return path


def exemplar_latents(spec, z_dim: int, prior: str = "uniform", what: str = "exemplars"):
    """float32 [k, z_dim] latents of a concept's exemplars, from any of:

    - integer seeds (a list, tuple or 1-D integer array): `latents_from_seeds`;
    - a path (str or os.PathLike) to a .npy file of [k, z_dim] latents (or one [z_dim]);
    - a 2-D array [k, z_dim] of latents.
    """
    if isinstance(spec, (str, os.PathLike)):
        return load_latents(spec, z_dim, what)
    if isinstance(spec, np.ndarray) and spec.ndim == 2:
        return check_latents(spec, what, z_dim=z_dim)
    if isinstance(spec, Sequence) and spec and all(isinstance(v, Sequence) for v in spec):
        return check_latents(spec, what, z_dim=z_dim)
    return seeds_to_latents(check_seeds(spec, what), z_dim, prior, what)


def concept_vector(z_exemplars) -> np.ndarray:
    """The mean of a concept's exemplar latents [k, z_dim] (float64 sum): float32 [z_dim]."""
    z = check_latents(z_exemplars, "exemplars")
    return z.astype(np.float64).mean(axis=0).astype(np.float32)


def _vector(v, what: str, z_dim: int | None = None) -> np.ndarray:
    v = np.asarray(v)
    if v.ndim != 1:
        raise UserError(f"{what} must be one latent vector [z_dim]; got shape {v.shape}.")
    return check_latents(v[None], what, z_dim=z_dim)[0]


def linear_combination(vectors, weights) -> np.ndarray:
    """sum_i weights[i] * vectors[i] (float64 sum) for vectors of one z_dim: float32 [z_dim]."""
    if len(vectors) == 0 or len(vectors) != len(weights):
        raise UserError(
            f"Give as many weights as vectors (at least one); got {len(vectors)} vectors and "
            f"{len(weights)} weights."
        )
    first = _vector(vectors[0], "vector 0")
    total = np.zeros(first.shape, np.float64)
    for i, (v, w) in enumerate(zip(vectors, weights, strict=True)):
        if not validation.is_number(w):
            raise UserError(f"weight {i} must be a finite number; got {w!r}.")
        total += float(w) * _vector(v, f"vector {i}", z_dim=first.shape[0])
    return total.astype(np.float32)


def combine(a, b, c) -> np.ndarray:
    """a - b + c for concept vectors [z_dim] (e.g. smiling woman - neutral woman + neutral man),
    in float32: float32 [z_dim]."""
    a = _vector(a, "a")
    b = _vector(b, "b", z_dim=a.shape[0])
    c = _vector(c, "c", z_dim=a.shape[0])
    return a - b + c


def _check_scale(scale) -> float:
    if not validation.is_number(scale):
        raise UserError(f"noise scale must be a finite number; got {scale!r}.")
    if scale < 0:
        raise UserError(f"noise scale must be >= 0; got {scale}.")
    return float(scale)


def neighbours(z, num: int = 8, scale: float = 0.25, seed: int = 0) -> np.ndarray:
    """`num` copies of the latent z [z_dim] with uniform noise in [-scale, scale] added to each
    coordinate (Fig. 7: 8 samples with noise of scale 0.25): float32 [num, z_dim].

    Deterministic by `seed` (TF stateless RNG): row i depends on seed, num, z_dim and z only.
    """
    import tensorflow as tf

    z = _vector(z, "z")
    validation.integer(num, "num (the number of neighbours)", minimum=0)
    scale = _check_scale(scale)
    (seed,) = check_seeds([seed], "seed")
    unit = tf.random.stateless_uniform(
        [int(num), z.shape[0]], seed=tf.constant([seed, _NOISE_STREAM], tf.int64),
        minval=-1.0, maxval=1.0, dtype=tf.float64,
    ).numpy()  # fmt: skip
    return (z.astype(np.float64) + scale * unit).astype(np.float32)


def turn_direction(left_z, right_z) -> np.ndarray:
    """Fig. 8's "turn" vector: concept_vector(right_z) - concept_vector(left_z) (float32 [z_dim]):
    adding it turns a face from looking left towards looking right."""
    left = check_latents(left_z, "left")
    right = check_latents(right_z, "right", z_dim=left.shape[1])
    return (concept_vector(right).astype(np.float64) - concept_vector(left)).astype(np.float32)


def _amounts(amounts) -> np.ndarray:
    if isinstance(amounts, (str, bytes)):
        raise UserError(f"amounts must be numbers, not a string; got {amounts!r}.")
    a = np.asarray(amounts)
    if a.ndim == 0:
        a = a[None]
    if a.ndim != 1 or a.size == 0 or not np.issubdtype(a.dtype, np.number):
        raise UserError(f"amounts must be a non-empty list of numbers; got {amounts!r}.")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise UserError(f"amounts must be finite; got {amounts!r}.")
    return a


def apply_direction(z, direction, amounts) -> np.ndarray:
    """z + amount * direction for each amount (float64 arithmetic, float32 result).

    z [z_dim] gives [A, z_dim]; z [N, z_dim] gives [N, A, z_dim] (sample i, amount j)."""
    direction = _vector(direction, "direction")
    z = np.asarray(z)
    one = z.ndim == 1
    z = check_latents(z[None] if one else z, "z", z_dim=direction.shape[0])
    a = _amounts(amounts)
    out = z[:, None, :].astype(np.float64) + a[None, :, None] * direction.astype(np.float64)
    out = out.astype(np.float32)
    return out[0] if one else out


# ------------------------------------------------------------------------------ renderers
def pixel_arithmetic(images_a, images_b, images_c) -> tuple[np.ndarray, np.ndarray]:
    """Fig. 7's baseline, the same arithmetic on images: (means float32 [3, H, W, C], the mean
    image of each concept's exemplar images; result float32 [H, W, C], mean(a) - mean(b) +
    mean(c) clipped to the image range [-1, 1]). Sums in float64."""
    stacks = [np.asarray(x, np.float64) for x in (images_a, images_b, images_c)]
    for name, x in zip("abc", stacks, strict=True):
        if x.ndim != 4 or not len(x) or x.shape[1:] != stacks[0].shape[1:]:
            raise UserError(
                f"pixel arithmetic: {name} must be a non-empty [k, H, W, C] stack of images of "
                f"one shape; got {x.shape}."
            )
    means = np.stack([x.mean(axis=0) for x in stacks])
    result = np.clip(means[0] - means[1] + means[2], -1.0, 1.0)
    return means.astype(np.float32), result.astype(np.float32)


class ArithmeticGrid(NamedTuple):
    """The Fig. 7 layout, rendered (see `arithmetic_grid`)."""

    images: np.ndarray  # float32 [rows * columns, H, W, C] in [-1, 1]; blank cells are -1
    columns: int
    exemplars: tuple  # (a, b, c): float32 [k_i, z_dim] each
    means: np.ndarray  # float32 [3, z_dim]: the concept vectors of a, b, c
    result: np.ndarray  # float32 [z_dim]: mean(a) - mean(b) + mean(c)
    neighbours: np.ndarray  # float32 [num_neighbours, z_dim]
    pixel_means: np.ndarray | None = None  # float32 [3, H, W, C]: mean exemplar image per concept
    pixel_result: np.ndarray | None = None  # float32 [H, W, C]: pixel-space a - b + c, clipped


def _block_side(num_neighbours) -> int:
    if not validation.is_int(num_neighbours):
        raise UserError(f"num_neighbours must be an integer; got {num_neighbours!r}.")
    side = math.isqrt(max(int(num_neighbours), 0) + 1)
    if num_neighbours < 0 or side * side != num_neighbours + 1 or side % 2 == 0:
        raise UserError(
            f"num_neighbours must be 0, 8, 24, 48, ... (the result sits in the centre of a "
            f"square block); got {num_neighbours}."
        )
    return side


def _layout(exemplars, means, result, near, side: int, pixel: bool):
    """(rows, columns, cells: {index: latent}, exemplar cells per concept, pixel cells): see
    `arithmetic_grid`. The pixel cells are (the 3 concepts' mean images, the result)."""
    k = max(len(z) for z in exemplars)
    extra = 1 if pixel else 0  # the pixel means' column
    rows, columns = max(3, side), k + 2 + extra + side + 2 * extra
    cells, exemplar_cells = {}, []
    top = (rows - 3) // 2
    for r, z in enumerate(exemplars):
        row = (top + r) * columns
        exemplar_cells.append([row + j for j in range(len(z))])
        cells.update({row + j: zj for j, zj in enumerate(z)})
        cells[row + k] = means[r]
    block = list(near)
    block.insert(len(block) // 2, result)  # the centre of a side x side block, row-major
    block_top, block_left = (rows - side) // 2, k + 2 + extra
    for i, zi in enumerate(block):
        r, col = divmod(i, side)
        cells[(block_top + r) * columns + block_left + col] = zi
    pixel_cells = None
    if pixel:
        centre_row = (block_top + side // 2) * columns
        pixel_cells = ([(top + r) * columns + k + 1 for r in range(3)], centre_row + columns - 1)
    return rows, columns, cells, exemplar_cells, pixel_cells


def arithmetic_grid(
    model,
    a,
    b,
    c,
    num_neighbours: int = 8,
    noise_scale: float = 0.25,
    seed: int = 0,
    prior: str | None = None,
    batch_size: int = 64,
    pixel_baseline: bool = True,
) -> ArithmeticGrid:
    """Fig. 7: mean(a) - mean(b) + mean(c), with the exemplars, their means and the result.

    a, b, c: exemplars of each concept (see `exemplar_latents`: seeds, array or .npy path).
    Layout (K = most exemplars of a concept, S = sqrt(num_neighbours + 1)): max(3, S) rows. The
    rows of a, b and c (centred vertically) hold the concept's exemplars (left-aligned), then
    the image of their mean latent; after one blank column, an S x S block with the result in
    its centre and its `num_neighbours` noisy neighbours around it, in row-major order (Fig. 7's
    3 x 3 block for the default 8). num_neighbours + 1 must be an odd square: 0, 8, 24.

    With `pixel_baseline` (Fig. 7's comparison: arithmetic on images instead of latents), each
    concept's row also shows the mean of its exemplar images right after the mean latent's
    image, and a blank column after the block is followed by the pixel-space result
    (`pixel_arithmetic`: mean images a - b + c, clipped to [-1, 1]) level with the latent
    result: K + 5 + S columns instead of K + 2 + S.
    """
    _, z_dim, prior = resolve_model(model, prior)
    side = _block_side(num_neighbours)
    validation.boolean(pixel_baseline, "pixel_baseline")
    exemplars = tuple(
        exemplar_latents(spec, z_dim, prior, name) for spec, name in ((a, "a"), (b, "b"), (c, "c"))
    )
    means = np.stack([concept_vector(z) for z in exemplars])
    result = combine(*means)
    near = neighbours(result, num_neighbours, noise_scale, seed)
    rows, columns, cells, exemplar_cells, pixel_cells = _layout(
        exemplars, means, result, near, side, pixel_baseline
    )
    filled = sorted(cells)
    rendered = render(model, np.stack([cells[i] for i in filled]), batch_size)
    images = np.full((rows * columns,) + rendered.shape[1:], -1.0, np.float32)
    images[filled] = rendered
    pixel_means = pixel_result = None
    if pixel_cells is not None:
        pixel_means, pixel_result = pixel_arithmetic(*(images[i] for i in exemplar_cells))
        images[pixel_cells[0]] = pixel_means
        images[pixel_cells[1]] = pixel_result
    return ArithmeticGrid(
        images, columns, exemplars, means, result, near, pixel_means, pixel_result
    )


def turn_grid(
    model,
    left,
    right,
    start,
    amounts=DEFAULT_AMOUNTS,
    prior: str | None = None,
    batch_size: int = 64,
) -> Grid:
    """Fig. 8: one row per start latent, z + amount * turn_direction(left, right) per column.

    left, right, start: seeds, a [k, z_dim] array or a .npy path (see `exemplar_latents`); the
    paper averages 4 left-facing and 4 right-facing samples. With the default amounts
    (-1 ... 1 in 9 steps) the start sample is the middle column. Returns a `Grid` of
    len(start) rows x len(amounts) columns.
    """
    _, z_dim, prior = resolve_model(model, prior)
    left = exemplar_latents(left, z_dim, prior, "left")
    right = exemplar_latents(right, z_dim, prior, "right")
    start = exemplar_latents(start, z_dim, prior, "start")
    amounts = _amounts(amounts)
    latents = apply_direction(start, turn_direction(left, right), amounts).reshape(-1, z_dim)
    return Grid(render(model, latents, batch_size), latents, len(amounts))
