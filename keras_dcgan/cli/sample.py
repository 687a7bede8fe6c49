"""`dcgan sample`: render a PNG grid from a trained run folder."""

from __future__ import annotations

import sys

from absl import flags

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/dcgan", "Run folder written by dcgan train.")
_NUM = flags.DEFINE_integer("num", 64, "Number of samples (seeds 0..num-1) if --seeds is unset.")
_SEEDS = flags.DEFINE_list("seeds", None, "Integer seeds of the latents, e.g. 3,17,42.")
_OUTPUT = flags.DEFINE_string("output", "samples.png", "Output PNG grid.")
_COLUMNS = flags.DEFINE_integer("columns", None, "Grid columns (default: square).")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise SystemExit(f"dcgan sample: unexpected arguments {argv[1:]}")
    from keras_dcgan import images
    from keras_dcgan.training import load_trained

    try:
        if _SEEDS.value is not None:
            try:
                seeds = [int(s) for s in _SEEDS.value]
            except ValueError:
                raise ValueError(f"--seeds must be integers; got {_SEEDS.value}.") from None
            if not seeds:
                raise ValueError("--seeds is empty.")
        else:
            if _NUM.value < 1:
                raise ValueError(f"--num must be positive; got {_NUM.value}.")
            seeds = list(range(_NUM.value))
        _, gan = load_trained(_MODEL_DIR.value)
        path = images.save_grid(gan.sample(seeds=seeds).numpy(), _OUTPUT.value, _COLUMNS.value)
    except (ValueError, FileNotFoundError) as e:
        print(f"dcgan sample: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"Wrote {len(seeds)} samples to {path}")
