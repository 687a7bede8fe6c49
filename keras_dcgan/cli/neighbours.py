"""`dcgan neighbours`: each generated sample beside its nearest training images (memorisation).

One pass over the first `--num_images` training images of the run's dataset (or `--dataset`),
streamed in batches with a running top-k: never all images or features in memory. Distances are
L2 in pixel space (the [-1, 1] images) and in the discriminator's feature space (the paper's
section 5.1 features: every D block max-pooled to 4x4; see `keras_dcgan.analysis.neighbours`).
Writes one PNG grid, one row per seed: the sample, its k pixel-space neighbours, then the sample
again and its k feature-space neighbours (one half per `--space`). Prints the distances;
`--save` writes them (with the neighbours' ids) as JSON. Cost: decoding the scanned images, and
one D forward pass per image for the feature space (on a 2-core CPU, paper64: ~36 images/s).
"""

from __future__ import annotations

from absl import flags

from keras_dcgan import paths
from keras_dcgan.cli import _flags
from keras_dcgan.errors import UserError

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/dcgan", "Run folder written by dcgan train.")
_SEEDS = flags.DEFINE_list("seeds", None, "Integer seeds of the samples (rows), e.g. 3,17,42.")
_DATASET = flags.DEFINE_string(
    "dataset", None, "Training images to search (default: the run's dataset)."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TensorFlow Datasets data_dir.")
_SPLIT = flags.DEFINE_string("split", "train", "Split of the training images.")
_NUM_IMAGES = flags.DEFINE_integer(
    "num_images", 10_000,
    "Scan the first N images of the split, in source order (0: all of them; the cost grows "
    "linearly).",
)  # fmt: skip
_K = flags.DEFINE_integer("k", 5, "Nearest training images per sample.")
_SPACE = flags.DEFINE_list("space", ["pixel", "feature"], "Distance spaces: pixel, feature.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Training images per batch.")
_OUTPUT = flags.DEFINE_string("output", "neighbours.png", "Output PNG grid.")
_SAVE = flags.DEFINE_string("save", None, "Write the neighbours and distances to this JSON file.")


def _check_flags() -> tuple[list[int], tuple[str, ...], int | None]:
    from keras_dcgan.analysis import neighbours as nb

    if _SEEDS.value is None:
        raise UserError("give the samples' seeds: --seeds=3,17,42.")
    seeds = _flags.seeds(_SEEDS.value, 1)
    spaces = nb.check_spaces(_SPACE.value)
    if _K.value < 1:
        raise UserError(f"--k must be a positive integer; got {_K.value}.")
    if _NUM_IMAGES.value < 0:
        raise UserError(f"--num_images must be positive (0: all); got {_NUM_IMAGES.value}.")
    limit = _NUM_IMAGES.value or None
    if limit is not None and _K.value > limit:
        raise UserError(f"--k={_K.value} is more than the --num_images={limit} scanned.")
    if _BATCH_SIZE.value < 1:
        raise UserError(f"--batch_size must be positive; got {_BATCH_SIZE.value}.")
    return seeds, spaces, limit


def main(argv: list[str]) -> int | None:
    import numpy as np

    from keras_dcgan import images as image_io
    from keras_dcgan.analysis import neighbours as nb
    from keras_dcgan.data import open_source
    from keras_dcgan.training import load_trained

    seeds, spaces, limit = _check_flags()
    config, gan = load_trained(_MODEL_DIR.value)
    source = open_source(
        _DATASET.value or config.dataset, data_dir=_DATA_DIR.value or config.data.data_dir
    )
    mc = config.model
    batches = nb.source_batches(
        source, mc.image_size, mc.channels, split=_SPLIT.value,
        holdout_fraction=config.data.holdout_fraction, limit=limit,
        batch_size=_BATCH_SIZE.value,
    )  # fmt: skip
    results = nb.nearest_neighbours(gan, seeds, batches, _K.value, spaces, _BATCH_SIZE.value)
    rows = [
        np.concatenate([r.samples[i : i + 1], r.images[i]])
        for i in range(len(seeds))
        for r in results.values()
    ]
    path = image_io.save_grid(np.concatenate(rows), _OUTPUT.value, (_K.value + 1) * len(spaces))
    scanned = next(iter(results.values())).num_scanned
    print(f"{scanned} training images of {source.name} ({_SPLIT.value}) scanned; k={_K.value}.")
    for space, r in results.items():
        print(f"{space} space (L2):")
        for seed, ids, dist in zip(r.seeds, r.ids, r.distances, strict=True):
            pairs = ", ".join(f"{i} {d:.4g}" for i, d in zip(ids, dist, strict=True))
            print(f"  seed {seed}: {pairs}")
    if _SAVE.value:
        record = {"model_dir": _MODEL_DIR.value, "dataset": source.name, "split": _SPLIT.value,
                  "k": _K.value, "num_scanned": scanned,
                  "spaces": {s: r.to_dict() for s, r in results.items()}}  # fmt: skip
        paths.write_json(record, _SAVE.value)
        print(f"Wrote {_SAVE.value}")
    halves = " | ".join(f"sample, {_K.value} nearest in {s} space" for s in spaces)
    print(f"Wrote {path} (one row per seed: {halves})")
