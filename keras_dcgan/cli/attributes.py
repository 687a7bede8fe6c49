"""`dcgan attributes`: train the CelebA attribute classifier that picks exemplars for
`dcgan arithmetic --classifier` (see `keras_dcgan.analysis.attributes`).

    dcgan attributes --data_dir=~/tensorflow_datasets --limit=20000 --epochs=3 --output=attr.keras

A small CNN with two heads, CelebA's 40 binary attributes and a yaw proxy from its landmarks
(nose x relative to the eyes' midpoint, over the inter-eye distance), trained on the first
`--limit` faces of `--split`, cropped as the faces64 preset reads them (108x108 centre crop,
resized to --image_size). It is then evaluated on `--eval_split` (mean attribute accuracy next
to always answering the majority label, and the yaw's mean absolute error) and written to
`--output`. CelebA is downloaded and prepared under --data_dir on first use (about 1.4 GB; when
Google Drive refuses, the error says where to put the files).
"""

from __future__ import annotations

from absl import flags

from keras_dcgan.errors import UserError

_DATA_DIR = flags.DEFINE_string("data_dir", None, "TensorFlow Datasets' data_dir.")
_SPLIT = flags.DEFINE_string("split", "train", "CelebA split to train on.")
_LIMIT = flags.DEFINE_integer("limit", 20_000, "Train on the split's first N faces (0: all).")
_EVAL_SPLIT = flags.DEFINE_string("eval_split", "validation", "Split to evaluate on ('': none).")
_EVAL_LIMIT = flags.DEFINE_integer("eval_limit", 2_000, "Evaluate on its first N faces.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 64, "Input size: the generator's image size.")
_EPOCHS = flags.DEFINE_integer("epochs", 3, "Passes over the training faces.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Minibatch size.")
_WIDTH = flags.DEFINE_integer("width", 32, "Channels of the first convolution (doubling, x4 max).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the weights and the shuffling.")
_OUTPUT = flags.DEFINE_string("output", "attr.keras", "Where to write the classifier (.keras).")


def main(argv: list[str]) -> int | None:
    from keras_dcgan.analysis import attributes

    if not _OUTPUT.value.endswith(".keras"):
        raise UserError(f"--output must end in .keras; got {_OUTPUT.value!r}.")
    for flag in (_LIMIT, _EVAL_LIMIT):
        if flag.value < 0:
            raise UserError(f"--{flag.name} must be >= 0; got {flag.value}.")
    for flag in (_EPOCHS, _BATCH, _WIDTH, _IMAGE_SIZE):
        if flag.value < 1:
            raise UserError(f"--{flag.name} must be positive; got {flag.value}.")
    data = attributes.celeba_arrays(
        _SPLIT.value, _DATA_DIR.value, _LIMIT.value or None, _IMAGE_SIZE.value
    )
    print(f"Training on {len(data[0])} faces of CelebA {_SPLIT.value!r}")
    model = attributes.train_classifier(
        *data, epochs=_EPOCHS.value, batch_size=_BATCH.value, width=_WIDTH.value,
        seed=_SEED.value, verbose=2,
    )  # fmt: skip
    if _EVAL_SPLIT.value:
        held_out = attributes.celeba_arrays(
            _EVAL_SPLIT.value, _DATA_DIR.value, _EVAL_LIMIT.value or None, _IMAGE_SIZE.value
        )
        m = attributes.evaluate_classifier(model, *held_out)
        print(
            f"{_EVAL_SPLIT.value} ({len(held_out[0])} faces): attribute accuracy "
            f"{m['attribute_accuracy']:.3f} (majority label {m['majority_accuracy']:.3f}), "
            f"yaw mean absolute error {m['yaw_mae']:.3f}"
        )
    path = attributes.save_classifier(model, _OUTPUT.value)
    print(f"Wrote the attribute classifier to {path}")
