"""`dcgan classify`: the discriminator's features as a classifier (paper sec. 5.1).

Max-pools every conv block of a run's discriminator to 4x4, fits an L2-SVM (LinearSVC on
standardised features, C chosen on a validation split) and reports the test error next to that of
a randomly initialised discriminator of the same architecture:

    dcgan classify --model_dir=runs/digits                       # offline: scikit-learn's digits
    dcgan classify --model_dir=runs/svhn --protocol=svhn --labels=1000 --data_dir=~/tfds
    dcgan classify --model_dir=runs/cifar --protocol=cifar10 --data_dir=~/tfds \
        --solver=streaming --feature_dir=/scratch --feature_dtype=float16   # Table 1 in ~4 GiB
    dcgan classify --model_dir=runs/svhn --protocol=svhn --baseline=supervised   # Table 2

--solver=auto (default) fits LinearSVC in memory when it needs at most half the machine's memory,
otherwise writes the features to .npy files and fits the same L2-SVM from there (streaming).
--baseline=supervised adds Table 2's supervised CNN: D's architecture with a softmax head, trained
from scratch on the same labelled examples.
"""

from __future__ import annotations

import json
import os

from absl import flags

from keras_dcgan.errors import UserError

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/dcgan", "Run folder written by dcgan train.")
_PROTOCOL = flags.DEFINE_enum(
    "protocol", "digits", ["digits", "svhn", "cifar10"],
    "digits: scikit-learn's digits (offline); svhn: TFDS svhn_cropped, few labels; cifar10: TFDS "
    "cifar10, the whole training set.",
)  # fmt: skip
_LABELS = flags.DEFINE_string(
    "labels", None,
    "Labelled training examples, the same number per class, or 'all' (default: digits 50, "
    "svhn 1000, cifar10 all).",
)  # fmt: skip
_VAL_SIZE = flags.DEFINE_integer(
    "val_size", None, "Validation examples for choosing C (default: digits 300, svhn 10000, "
    "cifar10 5000)."
)  # fmt: skip
_REPEATS = flags.DEFINE_integer(
    "repeats", None, "Runs with different random draws (default: digits 5, svhn 5, cifar10 1)."
)
_C = flags.DEFINE_list(
    "C", ["grid"], "SVM C values to choose from on the validation split: 'grid' (1e-5 ... 1, "
    "log scale) or numbers, e.g. 0.001,0.01,0.1.",
)  # fmt: skip
_SEED = flags.DEFINE_integer("seed", 0, "Seeds the label draws, the SVMs and the random-init D.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Images per discriminator forward pass.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TensorFlow Datasets data_dir (svhn, cifar10).")
_SOLVER = flags.DEFINE_enum(
    "solver", "auto", ["auto", "exact", "streaming"],
    "exact: LinearSVC on the features in memory (about 32 bytes per training value); streaming: "
    "features in .npy files, L-BFGS one pass per iteration (memory independent of the examples); "
    "auto: exact when it needs at most half of the memory.",
)  # fmt: skip
_FEATURE_DIR = flags.DEFINE_string(
    "feature_dir", None, "Folder for the streaming solver's feature files (default: a temporary "
    "folder; CIFAR-10 at paper32 needs 2.7 GiB as float16, 5.3 GiB as float32)."
)  # fmt: skip
_FEATURE_DTYPE = flags.DEFINE_enum(
    "feature_dtype", "float32", ["float32", "float16"], "Storage of the streamed features."
)
_BASELINE = flags.DEFINE_enum(
    "baseline", "none", ["none", "supervised"],
    "supervised: also train D's architecture with a softmax head from scratch on the labelled "
    "examples (paper Table 2's supervised CNN), early stopping on the validation split.",
)  # fmt: skip
_MAX_EPOCHS = flags.DEFINE_integer(
    "max_epochs", 200, "--baseline=supervised: at most this many epochs (patience 20)."
)
_OUTPUT = flags.DEFINE_string(
    "output", None, "JSON report (default: <model_dir>/classify_<protocol>.json)."
)


def _C_grid(values):
    from keras_dcgan.analysis.features import DEFAULT_C_GRID

    if [v.strip().lower() for v in values] == ["grid"]:
        return DEFAULT_C_GRID
    try:
        return [float(v) for v in values]
    except ValueError:
        raise UserError(f"--C must be 'grid' or numbers; got {','.join(values)!r}.") from None


def _supervised(report):
    from keras_dcgan.analysis.supervised import supervised_baseline
    from keras_dcgan.training.checkpoints import read_config

    config = read_config(_MODEL_DIR.value)
    return supervised_baseline(
        config.model, report.protocol, seed=_SEED.value, max_epochs=_MAX_EPOCHS.value,
        data_dir=_DATA_DIR.value,
    )  # fmt: skip


def main(argv: list[str]) -> int | None:
    from keras_dcgan.analysis.features import StreamingOptions, classify

    streaming = StreamingOptions(_FEATURE_DIR.value, _FEATURE_DTYPE.value)
    report = classify(
        _MODEL_DIR.value,
        _PROTOCOL.value,
        labels=_LABELS.value,
        val_size=_VAL_SIZE.value,
        repeats=_REPEATS.value,
        C_grid=_C_grid(_C.value),
        seed=_SEED.value,
        batch_size=_BATCH_SIZE.value,
        data_dir=_DATA_DIR.value,
        solver=_SOLVER.value,
        streaming=streaming,
    )
    if _BASELINE.value == "supervised":
        report.supervised = _supervised(report)
    path = _OUTPUT.value or os.path.join(_MODEL_DIR.value, f"classify_{_PROTOCOL.value}.json")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(report.to_dict(), f, indent=2)
        f.write("\n")
    print(report.summary())
    print(f"Wrote {path}")
