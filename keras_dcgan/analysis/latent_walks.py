"""Walks in the latent space (Radford et al. 2015, sec. 6.1 and Fig. 4).

"Walking in the latent space": images generated along a path through a series of latent points
show whether G has memorised (sharp jumps) or learned smooth transitions. Fig. 4 shows rows of 10
images, each row interpolating between random points.

    lerp(z0, z1, t)           linear: z0 + t (z1 - z0), the serving `interpolate` signature's
                              formula (keras_dcgan.serving.export), bit for bit for t < 1
    slerp(z0, z1, t)          spherical: along the great circle between the directions of z0, z1
    walk(points, steps)       a path p0 -> p1 -> ... : `steps` latents per segment, both ends
                              included, shared ends counted once: (P - 1) * (steps - 1) + 1 rows
    walk_grid(model, paths)   Fig. 4: one row per path of integer seeds, rendered by G
    random_paths(rows, points, seed)
                              reproducible random seeds for `walk_grid` (rows x points)

Latents are float32 [N, z_dim] NumPy arrays; images float32 NHWC in [-1, 1] (save them with
`keras_dcgan.images.save_grid(grid.images, path, grid.columns)`).

Both interpolations give the points themselves exactly at t = 0 and t = 1. Nothing is clipped to
the prior's range: the paper does not clip, and G is defined on all of R^z_dim. Linear walks
between points of U[-1, 1]^d stay inside the cube; a spherical walk keeps the norm when the two
points have the same norm, which suits a normal prior (where linear midpoints have a smaller norm
than typical samples), and may leave the cube slightly for a uniform prior.

Example:
```python
from keras_dcgan.analysis import latent_walks
from keras_dcgan.images import save_grid
from keras_dcgan.training import load_trained

_, gan = load_trained("runs/bedrooms")
grid = latent_walks.walk_grid(gan, latent_walks.random_paths(rows=8, points=2, seed=0), steps=10)
save_grid(grid.images, "walks.png", grid.columns)  # 8 rows of 10 images, as in Fig. 4
```
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from keras_dcgan import validation
from keras_dcgan.errors import UserError
from keras_dcgan.options import check_z_prior

METHODS = ("linear", "spherical")

# Below this sine of the angle between two latents (or norm of one of them) the great circle
# between them is undefined or ill-conditioned, and slerp falls back to lerp.
_SLERP_EPS = 1e-6


# ------------------------------------------------------------------------------ validation
def check_seeds(seeds, what: str = "seeds") -> list[int]:
    """Returns `seeds` as a list of Python ints; ValueError unless it is a non-empty sequence of
    integers (bool and float are refused, even 3.0) that fit in int64."""
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray)):
        raise UserError(f"{what} must be a sequence of integer seeds; got {seeds!r}.")
    seeds = list(np.asarray(seeds).ravel()) if isinstance(seeds, np.ndarray) else list(seeds)
    if not seeds:
        raise UserError(f"{what} is empty: give at least one integer seed.")
    out = []
    for s in seeds:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Integral):
            raise UserError(f"{what} must be integers; got {s!r} in {seeds!r}.")
        s = int(s)
        if not -(2**63) <= s < 2**63:
            raise UserError(f"{what} must fit in int64; got {s}.")
        out.append(s)
    return out


def check_latents(z, what: str = "latents", z_dim: int | None = None, min_rows: int = 1):
    """Returns `z` as float32 [N, z_dim]; ValueError naming `what` unless it is a finite 2-D real
    array of at least `min_rows` rows (and `z_dim` columns, when given)."""
    try:
        z = np.asarray(z)
    except ValueError as e:  # ragged nested lists
        raise UserError(f"{what} must be a [N, z_dim] array: {e}") from None
    if z.dtype == object or not (
        np.issubdtype(z.dtype, np.floating) or np.issubdtype(z.dtype, np.integer)
    ):
        raise UserError(f"{what} must hold real numbers; got dtype {z.dtype}.")
    if z.ndim != 2:
        raise UserError(f"{what} must be a [N, z_dim] array; got shape {z.shape}.")
    if z.shape[0] < min_rows:
        raise UserError(f"{what} needs at least {min_rows} rows; got {z.shape[0]}.")
    if z_dim is not None and z.shape[1] != z_dim:
        raise UserError(f"{what} has z_dim {z.shape[1]}, but the model's z_dim is {z_dim}.")
    z = z.astype(np.float32)
    if not np.all(np.isfinite(z)):
        raise UserError(f"{what} has non-finite values (NaN or inf).")
    return z


def _check_steps(steps) -> int:
    if isinstance(steps, (bool, np.bool_)) or not isinstance(steps, numbers.Integral):
        raise UserError(f"steps must be an integer; got {steps!r}.")
    if steps < 2:
        raise UserError(f"steps must be at least 2 (both ends of a segment); got {steps}.")
    return int(steps)


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise UserError(f"Unknown interpolation method {method!r}; use one of {METHODS}.")
    return method


def _pair(z0, z1, t):
    z0 = np.asarray(z0, np.float32)
    z1 = np.asarray(z1, np.float32)
    if z0.ndim == 0 or z0.shape != z1.shape:
        raise UserError(
            f"z0 and z1 must be latents of the same shape [z_dim] or [N, z_dim]; got {z0.shape} "
            f"and {z1.shape}."
        )
    t = np.asarray(t, np.float32)
    if not (np.all(np.isfinite(z0)) and np.all(np.isfinite(z1)) and np.all(np.isfinite(t))):
        raise UserError("z0, z1 and t must be finite.")
    return z0, z1, t


# --------------------------------------------------------------------------- interpolation
def lerp(z0, z1, t) -> np.ndarray:
    """Linear interpolation z0 + t (z1 - z0), float32, with exact ends.

    z0, z1: latents [z_dim] (or [N, z_dim]: N pairs); t: scalar or array. The result has shape
    `broadcast(t.shape, z0.shape[:-1]) + [z_dim]`: t [T] with z0 [z_dim] gives [T, z_dim]; t [N]
    with z0 [N, z_dim] pairs them row by row, as the serving `interpolate` signature does.
    Computed in float32 with the signature's formula, so the latents are bit for bit those the
    server renders, except at t == 1, which gives z1 exactly (the formula may be 1 ulp off).
    """
    z0, z1, t = _pair(z0, z1, t)
    t = t[..., None]
    z = z0 + t * (z1 - z0)
    return np.where(t == 1, z1, z).astype(np.float32)


def slerp(z0, z1, t) -> np.ndarray:
    """Spherical interpolation between z0 and z1 (shapes as `lerp`), float32.

    sin((1 - t) w) / sin(w) z0 + sin(t w) / sin(w) z1, with w the angle between z0 and z1 (White,
    "Sampling Generative Networks", 2016). Between vectors of equal norm every point keeps that
    norm. Where the angle is undefined or ill-conditioned (parallel or antiparallel vectors, a
    zero vector: sin(w) < 1e-6) it is `lerp`. Ends are exact; computed in float64.
    """
    z0, z1, t = _pair(z0, z1, t)
    a, b = z0.astype(np.float64), z1.astype(np.float64)
    n0, n1 = np.linalg.norm(a, axis=-1), np.linalg.norm(b, axis=-1)
    degenerate = (n0 < _SLERP_EPS) | (n1 < _SLERP_EPS)
    safe = np.where(degenerate, 1.0, n0 * n1)
    cos = np.clip(np.sum(a * b, axis=-1) / safe, -1.0, 1.0)
    omega = np.arccos(cos)
    sin = np.sin(omega)
    degenerate = degenerate | (sin < _SLERP_EPS)
    sin = np.where(degenerate, 1.0, sin)
    t64 = t.astype(np.float64)
    w0 = np.sin((1.0 - t64) * omega) / sin
    w1 = np.sin(t64 * omega) / sin
    z = w0[..., None] * a + w1[..., None] * b
    z = np.where(t[..., None] == 0, a, np.where(t[..., None] == 1, b, z)).astype(np.float32)
    return np.where(degenerate[..., None], lerp(z0, z1, t), z)


def interpolate(z0, z1, t, method: str = "linear") -> np.ndarray:
    """`lerp` or `slerp` by name ("linear" or "spherical")."""
    return (lerp if _check_method(method) == "linear" else slerp)(z0, z1, t)


def walk(z_points, steps: int = 10, method: str = "linear") -> np.ndarray:
    """Latents along the path z_points[0] -> z_points[1] -> ... -> z_points[-1].

    Each segment is sampled at `steps` evenly spaced t = 0, 1/(steps-1), ..., 1 (both ends
    included); consecutive segments share their end point, which appears once. Returns float32
    [(P - 1) * (steps - 1) + 1, z_dim] for P points; point i is row i * (steps - 1), exactly.
    With two points it is one walk of `steps` latents, the same t as a serving `interpolate`
    request of `steps` rows.
    """
    z_points = check_latents(z_points, "z_points", min_rows=2)
    steps = _check_steps(steps)
    _check_method(method)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)
    rows = [z_points[:1]]
    for z0, z1 in zip(z_points[:-1], z_points[1:], strict=True):
        rows.append(interpolate(z0, z1, t[1:], method))
    return np.concatenate(rows, axis=0)


# -------------------------------------------------------------------------------- rendering
def resolve_model(model, prior: str | None = None):
    """(generator, z_dim, prior) of a DCGAN or a bare Generator; `prior` overrides the model's
    (a bare Generator does not know its prior: "uniform", the paper's, unless given)."""

    generator = model.generator if hasattr(model, "generator") else model
    if not hasattr(generator, "z_dim"):
        raise UserError(f"{type(model).__name__} is neither a DCGAN nor a Generator (no z_dim).")
    prior = prior or getattr(model, "z_prior", None) or "uniform"
    check_z_prior(prior)
    return generator, int(generator.z_dim), prior


def seeds_to_latents(seeds, z_dim: int, prior: str = "uniform", what: str = "seeds"):
    """float32 [N, z_dim] latents named by integer seeds (`keras_dcgan.latent.latents_from_seeds`:
    the same vectors as `dcgan sample --seeds` and the serving `from_seeds` signature)."""
    from keras_dcgan import latent

    seeds = check_seeds(seeds, what)
    return latent.latents_from_seeds(np.asarray(seeds, np.int64), z_dim, prior).numpy()


def render(model, z, batch_size: int = 64) -> np.ndarray:
    """G(z) in inference mode (BatchNorm moving statistics), in batches: float32 NHWC [-1, 1]."""
    import tensorflow as tf

    generator, z_dim, _ = resolve_model(model)
    z = check_latents(z, "z", z_dim=z_dim)
    if batch_size < 1:
        raise UserError(f"batch_size must be positive; got {batch_size}.")
    parts = [
        np.asarray(generator(tf.constant(z[i : i + batch_size]), training=False), np.float32)
        for i in range(0, len(z), batch_size)
    ]
    return np.concatenate(parts, axis=0)


class Grid(NamedTuple):
    """Images laid out row by row (`columns` per row) and the latents they were rendered from."""

    images: np.ndarray  # float32 [rows * columns, H, W, C] in [-1, 1]
    latents: np.ndarray  # float32 [rows * columns, z_dim]
    columns: int


def random_paths(rows: int, points: int = 2, seed: int = 0) -> list[list[int]]:
    """`rows` paths of `points` latent seeds each, reproducible from `seed` (values in
    [0, 2**31)): the "series of random points" of Fig. 4."""
    for name, value, least in (("rows", rows, 1), ("points", points, 2)):
        validation.integer(value, name, minimum=least)
    (seed,) = check_seeds([seed], "seed")
    rng = np.random.default_rng(seed % 2**64)
    return rng.integers(0, 2**31, size=(rows, points)).tolist()


def walk_grid(
    model,
    paths,
    steps: int = 10,
    method: str = "linear",
    prior: str | None = None,
    batch_size: int = 64,
) -> Grid:
    """Fig. 4: each row is a `walk` through the latents named by one path of integer seeds.

    `paths`: a list of rows, each a list of >= 2 seeds (all rows the same length P); a flat list
    of seeds is one row. Returns a `Grid` of len(paths) rows x (P - 1) * (steps - 1) + 1 columns.
    `model`: a DCGAN (its prior is used) or a Generator (`prior`, default uniform).
    """
    _, z_dim, prior = resolve_model(model, prior)
    steps = _check_steps(steps)
    _check_method(method)
    if isinstance(paths, (str, bytes)) or not isinstance(paths, (Sequence, np.ndarray)):
        raise UserError(f"paths must be a list of seed lists; got {paths!r}.")
    if len(paths) == 0:
        raise UserError("paths is empty: give at least one path of >= 2 seeds.")
    if not any(isinstance(p, (Sequence, np.ndarray)) and not isinstance(p, str) for p in paths):
        paths = [paths]  # one flat path
    paths = [check_seeds(path, f"path {i}") for i, path in enumerate(paths)]
    rows = []
    for i, seeds in enumerate(paths):
        if len(seeds) < 2:
            raise UserError(f"path {i} has {len(seeds)} seed; a walk needs at least 2 points.")
        if len(seeds) != len(paths[0]):
            raise UserError(
                f"all paths must have the same number of points (path 0 has {len(paths[0])}, "
                f"path {i} has {len(seeds)}): a grid is rectangular."
            )
        rows.append(walk(seeds_to_latents(seeds, z_dim, prior), steps, method))
    latents = np.concatenate(rows, axis=0)
    return Grid(render(model, latents, batch_size), latents, rows[0].shape[0])
