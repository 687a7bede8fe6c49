"""`dcgan eval`: FID, KID, IS (and the offline digits score) of a trained run.

FID and KID compare N samples (seeds 0..N-1) with the first N images of the dataset's split, on the
2048-d pool features of the reference 2015 Inception graph (--fid_network=tf_inception_2015, as
TTUR, pytorch-fid, clean-fid and StyleGAN2-ADA: comparable with published FIDs; downloaded once,
see `dcgan fetch_inception`); IS uses its 1008-way logits, 10 splits. 50k is the usual count
(fid50k). --fid_network=keras_inception_v3 uses Keras' InceptionV3 (not comparable).
"""

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
_NETWORK = _flags.define_config_flag(
    config_lib.TrainConfig, "fid_network", __name__, default="tf_inception_2015",
    choices=config_lib.FID_NETWORKS,
)  # fmt: skip
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
        _DATA_DIR.value or config.data.data_dir, _WEIGHTS.value, fid_network=_NETWORK.value,
    )  # fmt: skip
    results = evaluate(gan, _METRICS.value, source, network, _SPLIT.value)
    record = {"step": iterations(gan), "fid_network": _NETWORK.value,
              "inception_weights": _WEIGHTS.value, **results}  # fmt: skip
    path = _OUTPUT.value or os.path.join(_MODEL_DIR.value, "quality.jsonl")
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    for name, value in results.items():
        print(f"{name}: {value:.6g}")
    if _WEIGHTS.value == "random":
        print("(random InceptionV3 weights: these numbers mean nothing)")
    elif _NETWORK.value == "keras_inception_v3" and set(results) - {"seconds"}:
        print("(Keras' InceptionV3: not comparable with published FIDs; see the README)")
    print(f"Appended to {path}")
