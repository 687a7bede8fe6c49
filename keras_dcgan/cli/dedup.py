"""`dcgan dedup`: find near-duplicate images by semantic hashing and write a keep-list."""

from __future__ import annotations

import json
import os

from absl import flags

from keras_dcgan import config as config_lib
from keras_dcgan.cli import _flags

_DATASET = flags.DEFINE_string("dataset", "digits", "Image source, as for dcgan train.")
_DATA_DIR = _flags.define_config_flag(
    config_lib.DataConfig, "data_dir", __name__, default_text="TFDS's"
)
_OUTPUT = flags.DEFINE_string("output", "keep.txt", "The keep-list to write (one id per line).")
_GROUPS = flags.DEFINE_string("groups", None, "Also write the duplicate groups as JSON here.")
_MAX_HAMMING = flags.DEFINE_integer(
    "max_hamming", 0, "Also join hashes that differ in this many bits (0: exact collisions, the "
    "paper; >0 compares all pairs, quadratic time).",
)  # fmt: skip
_EPOCHS = flags.DEFINE_integer("epochs", 30, "Autoencoder training epochs.")
_TRAIN_SAMPLES = flags.DEFINE_integer(
    "train_samples", 100_000, "Images the autoencoder is trained on (a seeded random subset)."
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the autoencoder and the subset.")
_LIMIT = flags.DEFINE_integer("limit", None, "Read only the first N images of the source.")
_HASHES = flags.DEFINE_string(
    "hashes", None, "The resumable hash file, written as the images are hashed (default: the "
    "--output path + '.hashes'). Run the same command again after an interruption and it "
    "continues from it; delete it to start over.",
)  # fmt: skip
_PROGRESS = flags.DEFINE_boolean("progress", True, "Show a progress bar with rate and ETA.")


def main(argv: list[str]) -> int | None:
    from keras_dcgan.data import open_source
    from keras_dcgan.data.dedup import deduplicate, write_keep_list

    source = open_source(_DATASET.value, data_dir=_DATA_DIR.value)
    result = deduplicate(
        source,
        max_hamming=_MAX_HAMMING.value,
        epochs=_EPOCHS.value,
        train_samples=_TRAIN_SAMPLES.value,
        seed=_SEED.value,
        limit=_LIMIT.value,
        hash_file=_HASHES.value or f"{_OUTPUT.value}.hashes",
        progress=_PROGRESS.value,
    )
    path = write_keep_list(_OUTPUT.value, result.keep)
    if _GROUPS.value:
        os.makedirs(os.path.dirname(os.path.abspath(_GROUPS.value)), exist_ok=True)
        with open(_GROUPS.value, "w", encoding="utf-8") as f:
            json.dump({"dataset": _DATASET.value, "groups": result.groups}, f, indent=1)
    rate = result.num_hashed / result.hash_seconds if result.hash_seconds else 0.0
    print(
        f"{result.num_images} images, {result.num_duplicates} near-duplicate(s) in "
        f"{len(result.groups)} group(s); {source.skip_log.summary()}. "
        f"Wrote {len(result.keep)} ids to keep to {path} (autoencoder trained in "
        f"{result.train_seconds:.1f} s; {result.num_hashed} inputs hashed in "
        f"{result.hash_seconds:.1f} s, {rate:.0f}/s)"
    )
