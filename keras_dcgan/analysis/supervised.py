"""Table 2's supervised baseline: D's architecture trained from scratch on the labelled examples.

The paper (Table 2, SVHN with 1,000 labels) compares its DCGAN features + L2-SVM (22.48% error)
with "a purely supervised CNN with the same architecture on the same data" (28.87%). Here
`supervised_baseline` builds a randomly initialised discriminator of the run's (or a preset's)
architecture, replaces its one-logit head by a `num_classes`-way softmax on its flattened last
feature map (BatchNorm in training mode while training, LeakyReLU as in D), and trains it with
Adam (lr 1e-3, beta1 0.5) on the protocol's labelled split (the same `make_splits` draws as the
SVM: the same labelled examples for the same seed), with early stopping on the validation split
(the weights of the best validation accuracy are kept; an epoch is at least `MIN_STEPS`
minibatches). The test error is reported as the SVM's: mean and sample std over the protocol's
repeats. Training seeds Keras with `keras.utils.set_random_seed(seed + repeat)`.

Measured on the digits (50 labels, 5 per class; 2 repeats, 60 epochs at most, patience 10):
`tiny` 13.3% +- 3.4%, `digits32` 13.0% +- 3.5% test error.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_dcgan import validation
from keras_dcgan.analysis import features as F
from keras_dcgan.errors import UserError

MIN_STEPS = 25  # training steps per epoch (early stopping counts epochs)


@dataclasses.dataclass
class SupervisedResult(F.RepeatedErrors):
    """Per repeat: the test error, the validation error and the epoch of the weights kept."""

    test_errors: list[float]
    val_errors: list[float]
    best_epochs: list[int]

    def text(self) -> str:
        return f"{self.error_text()}  (epochs kept: {', '.join(map(str, self.best_epochs))})"

    def to_dict(self) -> dict:
        return {
            "test_error_mean": self.mean,
            "test_error_std": self.std,
            "test_errors": list(self.test_errors),
            "val_errors": list(self.val_errors),
            "best_epochs": list(self.best_epochs),
        }


def supervised_classifier(architecture, num_classes: int, seed: int = 0):
    """A keras.Model: D's conv blocks (`random_discriminator(architecture, seed)`), flattened, and
    a Dense(num_classes) head giving logits; input float32 [N, size, size, channels] in [-1, 1]."""
    import keras

    from keras_dcgan.models import random_discriminator

    validation.integer(num_classes, "num_classes", 2)
    d = random_discriminator(architecture, seed)
    inputs = keras.Input((d.image_size, d.image_size, d.channels))
    x = inputs
    for block in d.blocks:
        for layer in block:
            x = layer(x)
    x = keras.layers.Flatten()(x)
    init = keras.initializers.GlorotUniform(seed=seed)
    logits = keras.layers.Dense(num_classes, kernel_initializer=init, dtype="float32")(x)
    return keras.Model(inputs, logits, name="supervised_d")


def _as_model_range(images) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1.0
    return images.astype(np.float32)


def _error(model, images, labels, batch_size: int, chunk: int = 4096) -> float:
    wrong = 0
    for start in range(0, len(images), chunk):
        x = _as_model_range(images[start : start + chunk])
        logits = model.predict(x, batch_size=batch_size, verbose=0)
        wrong += int(np.sum(np.argmax(logits, axis=1) != labels[start : start + chunk]))
    return wrong / len(images)


def _steps_per_epoch(n: int, batch_size: int) -> int:
    """An "epoch" of at least MIN_STEPS steps: with 50 labels one pass is one step, too few for
    BatchNorm's moving statistics to follow the weights between two validations."""
    return max(MIN_STEPS, -(-n // batch_size))


def _epochs_of(images, labels, batch_size: int, seed: int):
    import tensorflow as tf

    x = tf.data.Dataset.from_tensor_slices((_as_model_range(images), labels))
    return x.shuffle(len(labels), seed=seed).repeat().batch(batch_size)


def _train_one(architecture, data, split, *, seed, batch_size, max_epochs, patience,
               learning_rate, verbose):  # fmt: skip
    import keras

    keras.utils.set_random_seed(seed)
    model = supervised_classifier(architecture, data.num_classes, seed)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.5),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])  # fmt: skip
    labels = np.asarray(data.pool_labels)
    stop = keras.callbacks.EarlyStopping("val_accuracy", patience=patience, mode="max",
                                         restore_best_weights=True)  # fmt: skip
    history = model.fit(
        _epochs_of(data.pool_images[split.train], labels[split.train], batch_size, seed),
        validation_data=(_as_model_range(data.pool_images[split.val]), labels[split.val]),
        epochs=max_epochs, steps_per_epoch=_steps_per_epoch(len(split.train), batch_size),
        callbacks=[stop], verbose=verbose,
    )  # fmt: skip
    accuracy = history.history["val_accuracy"]
    best = int(np.argmax(accuracy))
    if split.test is not None:
        test = _error(model, data.pool_images[split.test], labels[split.test], batch_size)
    else:
        test = _error(model, data.test_images, np.asarray(data.test_labels), batch_size)
    return test, 1.0 - float(accuracy[best]), best + 1


def supervised_baseline(
    architecture,
    protocol: F.Protocol | str = "digits",
    *,
    data: F.LabelledImages | None = None,
    seed: int = 0,
    batch_size: int = 64,
    max_epochs: int = 200,
    patience: int = 20,
    learning_rate: float = 1e-3,
    data_dir: str | None = None,
    download: bool = True,
    verbose: int = 0,
) -> SupervisedResult:
    """Table 2's "same architecture trained on the labels" (see the module docstring).

    Args:
        architecture: a `ModelConfig`, a `Config` or a `Discriminator` (its architecture only).
        protocol: a `Protocol` or its name; its splits are `make_splits(..., seed)`, those of
            `compare_discriminators` with the same seed.
        data: the protocol's images (default: `load_protocol_data` at D's size and channels).
        max_epochs, patience: early stopping on the validation accuracy (best weights kept).
    """
    from keras_dcgan.models import random_discriminator

    if isinstance(protocol, str):
        protocol = F.get_protocol(protocol)
    validation.non_negative_int(seed, "seed")
    for value, name in ((batch_size, "batch_size"), (max_epochs, "max_epochs"),
                        (patience, "patience")):  # fmt: skip
        validation.positive_int(value, name)
    validation.number(learning_rate, "learning_rate", positive=True)
    d = random_discriminator(architecture, seed)
    if data is None:
        data = F.load_protocol_data(protocol, d.image_size, d.channels, data_dir, download)
    if tuple(data.pool_images.shape[1:]) != (d.image_size, d.image_size, d.channels):
        raise UserError(
            f"The protocol's images are {tuple(data.pool_images.shape[1:])}; the architecture "
            f"takes {(d.image_size, d.image_size, d.channels)}."
        )
    results = []
    for i, split in enumerate(F.make_splits(data.pool_labels, data.num_classes, protocol, seed)):
        results.append(_train_one(
            d, data, split, seed=seed + i, batch_size=batch_size, max_epochs=max_epochs,
            patience=patience, learning_rate=learning_rate, verbose=verbose,
        ))  # fmt: skip
    tests, vals, epochs = (list(v) for v in zip(*results, strict=True))
    return SupervisedResult(tests, vals, epochs)
