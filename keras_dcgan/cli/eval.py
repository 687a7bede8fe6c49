"""`dcgan eval`: FID, KID, IS (and the offline digits score) of a trained run."""

from __future__ import annotations

import json
import os

from absl import flags

from keras_dcgan import config as config_lib
from keras_dcgan.cli import _flags

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/dcgan", "Run folder written by dcgan train.")
_METRICS = flags.DEFINE_list(
    "metrics", ["fid10k"], "Metrics with sample counts: fid10k, kid10k, is10k, fid1k, digits, ..."
)
_DATASET = flags.DEFINE_string("dataset", None, "Real images (default: the run's dataset).")
_DATA_DIR = _flags.define_config_flag(
    config_lib.DataConfig, "data_dir", __name__, default_text="the run's"
)
_SPLIT = flags.DEFINE_string("split", "train", "Split of the real images.")
_WEIGHTS = _flags.define_config_flag(
    config_lib.TrainConfig, "inception_weights", __name__, default="imagenet"
)
_OUTPUT = flags.DEFINE_string(
    "output", None, "JSON lines file to append to (default: <model_dir>/quality.jsonl)."
)


def main(argv: list[str]) -> int | None:
    from keras_dcgan.evaluation.metrics import evaluate, metric_inputs
    from keras_dcgan.options import parse_metrics
    from keras_dcgan.training import load_trained
    from keras_dcgan.training.callbacks import iterations

    parse_metrics(_METRICS.value)  # a misspelt metric fails before the run folder is loaded
    config, gan = load_trained(_MODEL_DIR.value)
    source, network = metric_inputs(
        _METRICS.value, _DATASET.value or config.dataset,
        _DATA_DIR.value or config.data.data_dir, _WEIGHTS.value,
    )  # fmt: skip
    results = evaluate(gan, _METRICS.value, source, network, _SPLIT.value)
    record = {"step": iterations(gan), "inception_weights": _WEIGHTS.value, **results}
    path = _OUTPUT.value or os.path.join(_MODEL_DIR.value, "quality.jsonl")
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    for name, value in results.items():
        print(f"{name}: {value:.6g}")
    if _WEIGHTS.value == "random":
        print("(random InceptionV3 weights: these numbers mean nothing)")
    print(f"Appended to {path}")
