"""`dcgan arithmetic`: vector arithmetic on latents (the paper's Fig. 7) and turns (Fig. 8).

Every set of exemplars is given as integer seeds (`3,17,42`: the latents of `dcgan sample
--seeds`, so pick them from sample grids) or as a .npy file of float latents [k, z_dim] (for
instance written by `--save_latents` of this command or `dcgan interpolate`).

Vector arithmetic, mean(a) - mean(b) + mean(c) (e.g. smiling woman - neutral woman + neutral man):

    dcgan arithmetic --model_dir=runs/faces --a=11,52,93 --b=4,8,15 --c=16,23,42 \
        --num_neighbours=8 --noise_scale=0.25 --seed=0 --output=arithmetic.png

  The grid has max(3, S) rows (S = sqrt(num_neighbours + 1)): the rows of a, b and c show the
  exemplars and then the image of their mean; after a blank column, an S x S block shows the
  result in its centre and `--num_neighbours` samples around it with uniform noise in
  [-noise_scale, noise_scale] added (the paper: 8 and 0.25; --seed picks the noise).
  `--save_latents` writes float32 [1 + num_neighbours, z_dim]: the result, then its neighbours.

Turn, z + amount * (mean(right) - mean(left)) for every start latent (one row each):

    dcgan arithmetic --model_dir=runs/faces --left=1,2,3,4 --right=5,6,7,8 --start=9,10 \
        --amounts=-1:1:9 --output=turn.png

  `--amounts` is start:stop:count (evenly spaced, both ends included) or a list such as
  0,0.5,1; with the default -1:1:9 the start sample is the middle column. `--save_latents`
  writes the grid's latents, row by row, [len(start) * len(amounts), z_dim].

Exemplars picked by an attribute classifier (`dcgan attributes`, trained on CelebA) from the
samples of seeds 0..num_samples-1: the 3 most confident seeds of each attribute combination
(CelebA's attribute names, ~ for "not"), or, for a turn, the 4 most left- and right-facing:

    dcgan arithmetic --model_dir=runs/faces --classifier=attr.keras --num_samples=1000 \
        --a=Smiling,~Male --b=~Smiling,~Male --c=~Smiling,Male --output=arithmetic.png
    dcgan arithmetic --model_dir=runs/faces --classifier=attr.keras --start=9,10 --output=turn.png

  The seeds picked are printed as flags, to rerun without the classifier or to check by eye.

The pixel-space baseline (Fig. 7; on by default, --nopixel_baseline for the bare layout): each
concept's row also shows the mean of its exemplar images after the image of its mean latent, and
the grid gains a blank column and a last column holding mean_image(a) - mean_image(b) +
mean_image(c), clipped to [-1, 1], level with the latent result.

The two modes exclude each other. Results are not clipped to the prior's range (nor in the
paper). Files are written atomically.
"""

from __future__ import annotations

import math
import os

from absl import flags

from keras_dcgan.errors import UserError

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/dcgan", "Run folder written by dcgan train.")
_A = flags.DEFINE_string("a", None, "Exemplars of concept a: seeds (1,2,3) or a .npy file.")
_B = flags.DEFINE_string("b", None, "Exemplars of concept b, subtracted.")
_C = flags.DEFINE_string("c", None, "Exemplars of concept c, added.")
_NUM_NEIGHBOURS = flags.DEFINE_integer(
    "num_neighbours", 8, "Noisy samples around the result: 0, 8 (3x3 block), 24 (5x5), ..."
)
_NOISE_SCALE = flags.DEFINE_float("noise_scale", 0.25, "Neighbours' noise: U[-scale, scale].")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the neighbours' noise.")
_LEFT = flags.DEFINE_string("left", None, "Turn mode: left-facing exemplars (seeds or .npy).")
_RIGHT = flags.DEFINE_string("right", None, "Turn mode: right-facing exemplars (seeds or .npy).")
_START = flags.DEFINE_string("start", None, "Turn mode: the latents to turn (seeds or .npy).")
_AMOUNTS = flags.DEFINE_string(
    "amounts", "-1:1:9", "Turn mode: start:stop:count, or a list like 0,0.5,1."
)
_OUTPUT = flags.DEFINE_string("output", "arithmetic.png", "Output PNG grid.")
_SAVE_LATENTS = flags.DEFINE_string("save_latents", None, "Also write the latents (.npy) here.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Images rendered per generator call.")
_PIXEL_BASELINE = flags.DEFINE_boolean(
    "pixel_baseline", True, "Also show the arithmetic on mean images (Fig. 7's pixel baseline)."
)
_CLASSIFIER = flags.DEFINE_string(
    "classifier", None,
    "An attribute classifier (.keras, from dcgan attributes): --a/--b/--c become CelebA "
    "attribute combinations (Smiling,~Male) and a turn needs only --start.",
)  # fmt: skip
_NUM_SAMPLES = flags.DEFINE_integer(
    "num_samples", 1000, "With --classifier: the seeds 0..N-1 scored to pick exemplars from."
)
_EXEMPLARS = flags.DEFINE_integer(
    "exemplars", None, "With --classifier: exemplars per concept (default 3) or per turn side (4)."
)
_MIN_CONFIDENCE = flags.DEFINE_float(
    "min_confidence", 0.5, "With --classifier: the least P(concept) of an exemplar."
)


def parse_exemplars(value: str | None, flag: str):
    """A flag's exemplars: a .npy path (str), or a list of int seeds; ValueError otherwise."""
    if value is None or not value.strip():
        raise UserError(f"{flag} is empty: give integer seeds (e.g. {flag}=1,2,3) or a .npy file.")
    value = value.strip()
    if value.endswith(".npy") or os.path.isfile(value):
        if not os.path.isfile(value):
            raise UserError(f"{flag}: no such file {value!r}.")
        return value
    try:
        return [int(p) for p in value.split(",")]
    except ValueError:
        raise UserError(
            f"{flag} must be integer seeds separated by commas or a .npy file; got {value!r} "
            "(attribute names such as Smiling,~Male need --classifier=attr.keras: dcgan "
            "attributes trains one)."
        ) from None


def parse_amounts(value: str) -> list[float]:
    """'-1:1:9' -> 9 evenly spaced amounts from -1 to 1; '0,0.5,1' -> that list."""
    text = value.strip()
    try:
        if ":" in text:
            start, stop, count = text.split(":")
            start, stop = float(start), float(stop)
            if not count.strip().lstrip("+").isdigit():
                raise ValueError
            count = int(count)
            if count < 1:
                raise ValueError
            amounts = [start] if count == 1 else [
                start + (stop - start) * i / (count - 1) for i in range(count)
            ]  # fmt: skip
        else:
            amounts = [float(p) for p in text.split(",")]
    except ValueError:
        raise UserError(
            f"--amounts must be start:stop:count (count >= 1) or numbers separated by commas, "
            f"e.g. -1:1:9 or 0,0.5,1; got {value!r}."
        ) from None
    if not all(math.isfinite(a) for a in amounts):
        raise UserError(f"--amounts must be finite; got {value!r}.")
    return amounts


def _check_block_flags() -> None:
    n = _NUM_NEIGHBOURS.value
    side = math.isqrt(max(n, 0) + 1)
    if n < 0 or side * side != n + 1 or side % 2 == 0:
        raise UserError(
            f"--num_neighbours must be 0, 8, 24, 48, ... (the result sits in the centre of "
            f"a square block); got {n}."
        )
    if not math.isfinite(_NOISE_SCALE.value) or _NOISE_SCALE.value < 0:
        raise UserError(f"--noise_scale must be >= 0; got {_NOISE_SCALE.value}.")


def _check_classifier_flags() -> None:
    if _NUM_SAMPLES.value < 1:
        raise UserError(f"--num_samples must be positive; got {_NUM_SAMPLES.value}.")
    if _EXEMPLARS.value is not None and _EXEMPLARS.value < 1:
        raise UserError(f"--exemplars must be positive; got {_EXEMPLARS.value}.")
    if not 0 <= _MIN_CONFIDENCE.value < 1:
        raise UserError(f"--min_confidence must be in [0, 1); got {_MIN_CONFIDENCE.value}.")
    if not os.path.isfile(_CLASSIFIER.value):
        raise UserError(
            f"--classifier: no such file {_CLASSIFIER.value!r} (train one with dcgan attributes)."
        )


def mode_from_flags() -> tuple[str, dict]:
    """("arithmetic", {a, b, c}) or ("turn", {left, right, start, amounts}), checked before any
    model is loaded. With --classifier, a, b and c are attribute combinations ({name: wanted})
    and a turn's left and right are None (picked later)."""
    from keras_dcgan.analysis.attributes import parse_concept

    if _BATCH.value < 1:
        raise UserError(f"--batch_size must be positive; got {_BATCH.value}.")
    by_attributes = _CLASSIFIER.value is not None
    if by_attributes:
        _check_classifier_flags()
    vector = {"a": _A.value, "b": _B.value, "c": _C.value}
    turn = {"left": _LEFT.value, "right": _RIGHT.value, "start": _START.value}
    given_vector = [k for k, v in vector.items() if v is not None]
    given_turn = [k for k, v in turn.items() if v is not None]
    if given_vector and given_turn:
        raise UserError(
            "give --a/--b/--c (vector arithmetic) or --left/--right/--start (turn), not both."
        )
    if not given_vector and not given_turn:
        raise UserError(
            "nothing to do: give --a, --b and --c (vector arithmetic) or --left, --right and "
            "--start (turn)."
        )
    if given_vector:
        missing = [f"--{k}" for k in vector if k not in given_vector]
        if missing:
            raise UserError(f"vector arithmetic needs --a, --b and --c; missing {missing}.")
        _check_block_flags()
        parse = parse_concept if by_attributes else parse_exemplars
        return "arithmetic", {k: parse(v, f"--{k}") for k, v in vector.items()}
    if by_attributes:
        if _LEFT.value is not None or _RIGHT.value is not None:
            raise UserError(
                "with --classifier a turn picks --left and --right itself; give only --start."
            )
        if _START.value is None:
            raise UserError("a turn needs --start; missing ['--start'].")
        specs = {"left": None, "right": None, "start": parse_exemplars(_START.value, "--start")}
        return "turn", {**specs, "amounts": parse_amounts(_AMOUNTS.value)}
    missing = [f"--{k}" for k in turn if k not in given_turn]
    if missing:
        raise UserError(f"a turn needs --left, --right and --start; missing {missing}.")
    specs = {k: parse_exemplars(v, f"--{k}") for k, v in turn.items()}
    return "turn", {**specs, "amounts": parse_amounts(_AMOUNTS.value)}


def pick_by_attributes(gan, mode: str, specs: dict) -> dict:
    """--classifier: scores the samples of seeds 0..num_samples-1 and replaces the attribute
    combinations (or a turn's missing left and right) with the picked seeds, printing them."""
    from keras_dcgan.analysis import attributes

    classifier = attributes.load_classifier(_CLASSIFIER.value)
    scores = attributes.score_seeds(
        gan, classifier, range(_NUM_SAMPLES.value), batch_size=_BATCH.value
    )
    picked = dict(specs)
    if mode == "arithmetic":
        count = _EXEMPLARS.value or attributes.DEFAULT_EXEMPLARS
        for k in ("a", "b", "c"):
            picked[k] = attributes.pick_exemplars(scores, specs[k], count, _MIN_CONFIDENCE.value)
    else:
        count = _EXEMPLARS.value or attributes.DEFAULT_TURN_EXEMPLARS
        picked["left"], picked["right"] = attributes.pick_turn(scores, count)
    chosen = " ".join(
        f"--{k}={','.join(map(str, picked[k]))}" for k in ("a", "b", "c", "left", "right")
        if k in picked and picked[k] is not specs[k]
    )  # fmt: skip
    print(f"Exemplars picked from {_NUM_SAMPLES.value} samples by {_CLASSIFIER.value}: {chosen}")
    return picked


def main(argv: list[str]) -> int | None:
    from keras_dcgan import images
    from keras_dcgan.analysis import arithmetic

    mode, specs = mode_from_flags()
    from keras_dcgan.training import load_trained

    _, gan = load_trained(_MODEL_DIR.value)
    if _CLASSIFIER.value is not None:
        specs = pick_by_attributes(gan, mode, specs)
    if mode == "arithmetic":
        grid = arithmetic.arithmetic_grid(
            gan, specs["a"], specs["b"], specs["c"], num_neighbours=_NUM_NEIGHBOURS.value,
            noise_scale=_NOISE_SCALE.value, seed=_SEED.value, batch_size=_BATCH.value,
            pixel_baseline=_PIXEL_BASELINE.value,
        )  # fmt: skip
        latents = [grid.result[None], grid.neighbours]
        summary = (
            f"mean(a) - mean(b) + mean(c) and {_NUM_NEIGHBOURS.value} neighbours "
            f"(noise scale {_NOISE_SCALE.value})"
            + (", and the pixel-space baseline" if _PIXEL_BASELINE.value else "")
        )
    else:
        grid = arithmetic.turn_grid(
            gan, specs["left"], specs["right"], specs["start"], specs["amounts"],
            batch_size=_BATCH.value,
        )  # fmt: skip
        latents = [grid.latents]
        summary = f"{len(grid.latents) // grid.columns} samples turned by {grid.columns} amounts"
    if _SAVE_LATENTS.value:
        import numpy as np

        arithmetic.save_latents(np.concatenate(latents), _SAVE_LATENTS.value)
    path = images.save_grid(grid.images, _OUTPUT.value, grid.columns)
    print(
        f"Wrote {summary} to {path}"
        + (f"; latents to {_SAVE_LATENTS.value}" if _SAVE_LATENTS.value else "")
    )
