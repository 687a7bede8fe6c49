"""`dcgan interpolate`: latent walks of a trained run as a PNG grid (the paper's Fig. 4).

Each row of the grid is one walk through a series of latent points, each point named by an
integer seed (the same latents as `dcgan sample --seeds`); every segment between two points is
sampled at `--steps` images, both ends included, and consecutive segments share their end image.
A row through P points has (P - 1) * (steps - 1) + 1 images.

    dcgan interpolate --model_dir=runs/faces --seeds=3,17 --seeds=5,8,13 ... # one row per --seeds
    dcgan interpolate --model_dir=runs/faces --rows=8 --points=2 --seed=0    # random points
    dcgan interpolate --model_dir=runs/faces --seeds=3,17 --method=spherical --steps=16 \
        --output=walk.png --save_latents=walk.npy

Flags: `--seeds` (repeatable: one path of >= 2 seeds per row; all rows the same length) or
`--rows`/`--points`/`--seed` (reproducible random seeds; the default is 8 rows of 2 points),
never both. `--method` is linear (the paper; the serving `interpolate` signature's formula) or
spherical. `--save_latents` writes the latents of the grid, row by row, as a float32 .npy
[rows * columns, z_dim]. Files are written atomically.
"""

from __future__ import annotations

from absl import flags

from keras_dcgan.errors import UserError

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/dcgan", "Run folder written by dcgan train.")
_SEEDS = flags.DEFINE_multi_string(
    "seeds", None, "Integer seeds of the points of one walk, e.g. 3,17,42 (one grid row); repeat "
    "the flag for more rows. Excludes --rows."
)  # fmt: skip
_ROWS = flags.DEFINE_integer("rows", None, "Random walks, one per row (default 8 without --seeds).")
_POINTS = flags.DEFINE_integer("points", 2, "Random points per walk (with --rows).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed that picks the random points (with --rows).")
_STEPS = flags.DEFINE_integer("steps", 10, "Images per segment, both end points included.")
_METHOD = flags.DEFINE_enum("method", "linear", ["linear", "spherical"], "Interpolation.")
_OUTPUT = flags.DEFINE_string("output", "walk.png", "Output PNG grid.")
_SAVE_LATENTS = flags.DEFINE_string(
    "save_latents", None, "Also write the grid's latents (float32 [rows * columns, z_dim]) here."
)
_BATCH = flags.DEFINE_integer("batch_size", 64, "Images rendered per generator call.")

DEFAULT_ROWS = 8


def parse_seeds(value: str, flag: str = "--seeds") -> list[int]:
    """'3,17,42' -> [3, 17, 42]; ValueError naming the flag for anything else."""
    parts = [p.strip() for p in value.split(",")]
    if not any(parts):
        raise UserError(f"{flag} is empty: give integer seeds, e.g. {flag}=3,17.")
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise UserError(f"{flag} must be integers separated by commas; got {value!r}.") from None


def paths_from_flags() -> list[list[int]]:
    """The seed paths the flags ask for (checked before any model is loaded)."""
    from keras_dcgan.analysis import latent_walks

    if _STEPS.value < 2:
        raise UserError(f"--steps must be at least 2 (both ends included); got {_STEPS.value}.")
    if _BATCH.value < 1:
        raise UserError(f"--batch_size must be positive; got {_BATCH.value}.")
    if _SEEDS.value:
        if _ROWS.value is not None:
            raise UserError("give --seeds or --rows, not both.")
        paths = [parse_seeds(v) for v in _SEEDS.value]
        for path in paths:
            if len(path) < 2:
                raise UserError(f"--seeds={path[0]} has one point; a walk needs at least 2.")
        if len({len(p) for p in paths}) > 1:
            raise UserError(
                f"every --seeds must have the same number of points (a grid is rectangular); "
                f"got {[len(p) for p in paths]}."
            )
        return paths
    rows = DEFAULT_ROWS if _ROWS.value is None else _ROWS.value
    if rows < 1:
        raise UserError(f"--rows must be positive; got {rows}.")
    if _POINTS.value < 2:
        raise UserError(f"--points must be at least 2; got {_POINTS.value}.")
    return latent_walks.random_paths(rows, _POINTS.value, _SEED.value)


def main(argv: list[str]) -> int | None:
    from keras_dcgan import images
    from keras_dcgan.analysis import arithmetic, latent_walks

    paths = paths_from_flags()
    from keras_dcgan.training import load_trained

    _, gan = load_trained(_MODEL_DIR.value)
    grid = latent_walks.walk_grid(gan, paths, _STEPS.value, _METHOD.value, batch_size=_BATCH.value)
    if _SAVE_LATENTS.value:
        arithmetic.save_latents(grid.latents, _SAVE_LATENTS.value)
    path = images.save_grid(grid.images, _OUTPUT.value, grid.columns)
    rows = len(grid.images) // grid.columns
    print(
        f"Wrote {rows} {_METHOD.value} walks of {grid.columns} images ({rows}x{grid.columns}) "
        f"to {path}" + (f"; latents to {_SAVE_LATENTS.value}" if _SAVE_LATENTS.value else "")
    )
