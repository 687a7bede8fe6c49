"""De-duplication by semantic hashing (paper section 4.1.1): precision and recall on planted copies.

Offline: `keras_dcgan.testing.planted.planted_duplicates` makes `--num_base` distinct 32x32 images
(tiles of scikit-learn's sample photos, smooth colour fields, Pillow-drawn shapes) and plants
`--copies_per_kind` near-duplicates of each kind (resized down and back up, JPEG quality 75,
shifted 1-2 px). For each seed it trains the 3072-128-3072 autoencoder on all of them, groups
colliding hashes (exact, and within each `--max_hamming` distance) and scores the groups:
precision = reported pairs (every pair inside a group) that come from one base image / reported
pairs; recall = planted (original, copy) pairs that share a group / planted pairs. It prints one
line per seed and distance, then the medians over seeds.

    python bench/dedup_planted.py --num_base=500 --copies_per_kind=50 --seeds=3
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_dcgan.data import dedup  # noqa: E402
from keras_dcgan.testing import planted as planted_lib  # noqa: E402

_NUM_BASE = flags.DEFINE_integer("num_base", 500, "Distinct base images.")
_COPIES = flags.DEFINE_integer("copies_per_kind", 50, "Planted copies of each kind.")
_KINDS = flags.DEFINE_list("kinds", list(planted_lib.COPY_KINDS), "Kinds of planted copies.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds 0..n-1 (fixture and training); medians.")
_MAX_HAMMING = flags.DEFINE_list("max_hamming", ["0", "2"], "Hamming distances to score.")
_PHOTO_SCALE = flags.DEFINE_integer(
    "photo_scale", 2, "Photo tiles are (36 * scale) px box-downsampled to 36 (1: native texture)."
)
_EPOCHS = flags.DEFINE_integer("epochs", dedup.DEFAULT_EPOCHS, "Autoencoder epochs.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", dedup.DEFAULT_BATCH_SIZE, "Autoencoder batch.")
_DROPOUT = flags.DEFINE_float("dropout", dedup.DEFAULT_DROPOUT, "Input dropout rate.")
_MARGIN = flags.DEFINE_float("margin", dedup.DEFAULT_MARGIN, "Code margin.")
_MARGIN_WEIGHT = flags.DEFINE_float(
    "margin_weight", dedup.DEFAULT_MARGIN_WEIGHT, "Code margin penalty weight (0: the paper's)."
)


def _kind_recall(groups, planted, kind):
    pairs = [p for p in planted.pairs if p[1].endswith(f"~{kind}")]
    return planted_lib.pair_scores(groups, dataclasses.replace(planted, pairs=pairs)).recall


def main(argv):
    del argv
    distances = [int(d) for d in _MAX_HAMMING.value]
    print(
        f"# TF {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs; "
        f"num_base {_NUM_BASE.value}, {_COPIES.value} copies x {_KINDS.value}, photo_scale "
        f"{_PHOTO_SCALE.value}; epochs {_EPOCHS.value}, batch {_BATCH_SIZE.value}, dropout "
        f"{_DROPOUT.value}, margin {_MARGIN.value} x {_MARGIN_WEIGHT.value}",
        flush=True,
    )
    rows = {d: [] for d in distances}
    for seed in range(_SEEDS.value):
        planted = planted_lib.planted_duplicates(
            _NUM_BASE.value,
            _COPIES.value,
            seed=seed,
            kinds=_KINDS.value,
            photo_scale=_PHOTO_SCALE.value,
        )
        start = time.perf_counter()
        model = dedup.train_autoencoder(
            planted.images,
            _EPOCHS.value,
            _BATCH_SIZE.value,
            seed=seed,
            dropout=_DROPOUT.value,
            margin=_MARGIN.value,
            margin_weight=_MARGIN_WEIGHT.value,
        )
        seconds = time.perf_counter() - start
        for d in distances:
            result = dedup.find_duplicates(planted.images, planted.ids, model=model, max_hamming=d)
            scores = planted_lib.pair_scores(result.groups, planted)
            kinds = {k: _kind_recall(result.groups, planted, k) for k in _KINDS.value}
            row = {
                "precision": scores.precision,
                "recall": scores.recall,
                **{f"recall_{k}": r for k, r in kinds.items()},
                "images": result.num_images,
                "groups": len(result.groups),
                "collision_pairs": scores.reported_pairs,
                "removed": result.num_duplicates,
                "train_s": seconds,
            }
            rows[d].append(row)
            print(f"seed {seed} max_hamming {d}: " + _format(row), flush=True)
    for d in distances:
        median = {key: statistics.median(r[key] for r in rows[d]) for key in rows[d][0]}
        print(f"median of {_SEEDS.value} seeds, max_hamming {d}: " + _format(median), flush=True)


def _format(row):
    parts = []
    for key, value in row.items():
        if key in ("images", "groups", "collision_pairs", "removed"):
            parts.append(f"{key} {value:g}")
        elif key == "train_s":
            parts.append(f"train {value:.1f}s")
        else:
            parts.append(f"{key} {value:.3f}")
    return ", ".join(parts)


if __name__ == "__main__":
    app.run(main)
