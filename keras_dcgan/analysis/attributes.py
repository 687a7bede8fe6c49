"""Exemplars for vector arithmetic picked by a CelebA attribute classifier, not by hand.

The paper (sec. 6.3.2, Fig. 7 and 8) picked three exemplar samples per concept ("smiling woman",
"neutral woman", "neutral man") and four left- and right-facing samples for the "turn" vector by
looking at samples. Here a small CNN trained on CelebA's labels does the looking:

    ATTRIBUTES                        CelebA's 40 binary attributes (TFDS celeb_a's names)
    parse_concept("Smiling,~Male")    {"Smiling": True, "Male": False}: a combination of attributes
    yaw_proxy(lefteye_x, righteye_x, nose_x)   the pose target from CelebA's landmarks
    celeba_arrays(split, data_dir, limit, image_size)   (images, attributes, yaw) of faces64's crops
    build_classifier / train_classifier / evaluate_classifier / save_classifier / load_classifier
    score_seeds(gan, classifier, seeds)  Scores: each seed's attribute probabilities and yaw
    pick_exemplars(scores, concept, count, min_confidence)   the most confident seeds of a concept
    pick_turn(scores, count)          the most left- and most right-facing seeds

The classifier has two heads: "attributes" (40 logits, sigmoid cross-entropy on the labels) and
"yaw" (regression of `yaw_proxy`, mean squared error). It sees images as G makes them: float32
[-1, 1], CelebA's 108x108 centre crop resized to 64x64 (the faces64 pipeline); samples of another
size are resized to the classifier's input.

Choosing exemplars (what the paper did by eye): every candidate seed 0..N-1 gets the probability
that it shows the concept, the product over the concept's attributes of p (wanted) or 1 - p
(unwanted), i.e. treating them as independent. The `count` seeds with the highest probability
are the exemplars, provided each is at least `min_confidence` (0.5: the classifier says yes more
than no); fewer qualifying seeds is an error that says how many qualified, rather than silently
averaging doubtful samples. Three per concept, as the paper: enough to average away one sample's
particulars (the paper's point: single latents are unstable), few enough that all are clear
cases. For the turn, the `count` (paper: 4) seeds with the lowest and the highest predicted yaw.

Yaw proxy: (nose_x - (lefteye_x + righteye_x) / 2) / |righteye_x - lefteye_x|, in image
coordinates, clipped to [-1, 1]: 0 for a frontal face, positive when the nose sits right of the
eyes' midpoint in the image, i.e. the face turned towards the viewer's right. CelebA's "left
eye" is the one on the image's left. "Right-facing" below means that.
"""

from __future__ import annotations

import difflib
import os
from typing import NamedTuple

import numpy as np

from keras_dcgan import validation
from keras_dcgan.analysis.latent_walks import check_seeds, render, resolve_model, seeds_to_latents
from keras_dcgan.errors import UserError

ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes "
    "No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling "
    "Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace "
    "Wearing_Necktie Young"
).split()
HEADS = ("attributes", "yaw")
DEFAULT_EXEMPLARS = 3  # per concept, as the paper's Fig. 7
DEFAULT_TURN_EXEMPLARS = 4  # per side, as the paper's Fig. 8
DEFAULT_MIN_CONFIDENCE = 0.5


# ---------------------------------------------------------------------------- concepts, targets
def parse_concept(text, what: str = "concept") -> dict[str, bool]:
    """ "Smiling,~Male" -> {"Smiling": True, "Male": False}: CelebA attribute names (any case),
    "~" (or "-", "!") for "not", separated by commas."""
    if not isinstance(text, str) or not text.replace(",", "").strip():
        raise UserError(
            f"{what} is empty: give CelebA attributes separated by commas, ~ for 'not', e.g. "
            "Smiling,~Male."
        )
    by_lower = {name.lower(): name for name in ATTRIBUTES}
    concept: dict[str, bool] = {}
    for part in (p.strip() for p in text.split(",")):
        wanted = not part.startswith(("~", "-", "!"))
        name = part.lstrip("~-!").strip()
        if name.lower() not in by_lower:
            close = difflib.get_close_matches(name, ATTRIBUTES, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(
                f"{what}: unknown CelebA attribute {name!r}{hint}; the attributes are "
                f"{', '.join(ATTRIBUTES)}."
            )
        name = by_lower[name.lower()]
        if concept.get(name, wanted) != wanted:
            raise UserError(f"{what} asks for {name} and for ~{name}: {text!r}.")
        concept[name] = wanted
    return concept


def yaw_proxy(lefteye_x, righteye_x, nose_x) -> np.ndarray:
    """The pose target (module docstring): float32, 0 frontal, > 0 facing the viewer's right."""
    left, right, nose = (np.asarray(v, np.float64) for v in (lefteye_x, righteye_x, nose_x))
    spread = np.maximum(np.abs(right - left), 1.0)
    return np.clip((nose - (left + right) / 2) / spread, -1.0, 1.0).astype(np.float32)


def celeba_arrays(split="train", data_dir=None, limit: int | None = 20_000, image_size=64,
                  download: bool = True):  # fmt: skip
    """(images float32 [N, size, size, 3] in [-1, 1], attributes float32 [N, 40] of 0/1, yaw
    float32 [N]) of CelebA's `split` (its first `limit` examples), cropped as faces64 reads it."""
    import tensorflow as tf

    from keras_dcgan.data.sources.tfds import TfdsSource, square_resize

    validation.positive_int(limit, "limit", optional=True)
    source = TfdsSource("celeb_a", data_dir=data_dir, download=download)
    source.prepare()
    try:
        ds = source.builder.as_dataset(split=split, shuffle_files=False)
    except Exception as e:
        raise UserError(f"Cannot read CelebA split {split!r}: {e}") from None
    if limit:
        ds = ds.take(limit)

    def convert(ex):
        image = square_resize(ex["image"], image_size, 3, source.crop)
        attrs = tf.stack([tf.cast(ex["attributes"][n], tf.float32) for n in ATTRIBUTES])
        marks = ex["landmarks"]
        return image, attrs, tf.stack([marks["lefteye_x"], marks["righteye_x"], marks["nose_x"]])

    parts = list(
        ds.map(convert, num_parallel_calls=tf.data.AUTOTUNE).batch(1024).as_numpy_iterator()
    )
    if not parts:
        raise UserError(f"CelebA split {split!r} is empty.")
    images, attrs, marks = (np.concatenate(p) for p in zip(*parts, strict=True))
    images = images.astype(np.float32) / 127.5 - 1.0
    return images, attrs, yaw_proxy(marks[:, 0], marks[:, 1], marks[:, 2])


# --------------------------------------------------------------------------------- classifier
def build_classifier(image_size: int = 64, channels: int = 3, width: int = 32, seed: int = 0):
    """A small CNN on [-1, 1] images: stride-2 convolutions (width, 2x, 4x, 4x ... down to 4x4)
    with BatchNorm and LeakyReLU, global average pooling, and two heads: "attributes" (40 logits)
    and "yaw" (1 value)."""
    import keras

    validation.positive_int(width, "width")
    keras.utils.set_random_seed(int(seed))
    inputs = keras.Input((image_size, image_size, channels), name="image")
    x, size, w = inputs, image_size, width
    while size > 4:
        x = keras.layers.Conv2D(w, 3, strides=2, padding="same", use_bias=False)(x)
        x = keras.layers.BatchNormalization()(x)
        x = keras.layers.LeakyReLU(0.2)(x)
        size, w = size // 2, min(w * 2, width * 4)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = {
        "attributes": keras.layers.Dense(len(ATTRIBUTES), name="attributes")(x),
        "yaw": keras.layers.Dense(1, name="yaw")(x),
    }
    return keras.Model(inputs, outputs, name="celeba_attributes")


def _check_training_arrays(images, attributes, yaw):
    images = np.asarray(images, np.float32)
    attributes = np.asarray(attributes, np.float32)
    yaw = np.asarray(yaw, np.float32).reshape(-1, 1)
    if images.ndim != 4 or images.shape[1] != images.shape[2] or not len(images):
        raise UserError(f"images must be a non-empty [N, size, size, C] array; got {images.shape}.")
    if attributes.shape != (len(images), len(ATTRIBUTES)) or len(yaw) != len(images):
        raise UserError(
            f"need {len(ATTRIBUTES)} attributes and one yaw per image: images {images.shape}, "
            f"attributes {attributes.shape}, yaw {yaw.shape}."
        )
    return images, attributes, yaw


def train_classifier(images, attributes, yaw, epochs: int = 3, batch_size: int = 64,
                     learning_rate: float = 1e-3, width: int = 32, seed: int = 0,
                     verbose: int = 0):  # fmt: skip
    """`build_classifier` fitted with Adam: sigmoid cross-entropy on the attributes plus the mean
    squared error of the yaw. Arrays as `celeba_arrays` returns them."""
    import keras

    images, attributes, yaw = _check_training_arrays(images, attributes, yaw)
    epochs = validation.positive_int(epochs, "epochs")
    batch_size = validation.positive_int(batch_size, "batch_size")
    model = build_classifier(images.shape[1], images.shape[3], width, seed)
    model.compile(
        optimizer=keras.optimizers.Adam(
            validation.number(learning_rate, "learning_rate", positive=True)
        ),  # fmt: skip
        loss={
            "attributes": keras.losses.BinaryCrossentropy(from_logits=True),
            "yaw": keras.losses.MeanSquaredError(),
        },
    )
    model.fit(images, {"attributes": attributes, "yaw": yaw}, epochs=epochs,
              batch_size=batch_size, shuffle=True, verbose=verbose)  # fmt: skip
    return model


def predict(classifier, images, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(attribute probabilities float32 [N, 40], yaw float32 [N]) of [-1, 1] images, resized to
    the classifier's input size when they differ."""
    import tensorflow as tf

    images = np.asarray(images, np.float32)
    _, size, _, channels = classifier.input_shape
    if images.ndim != 4 or images.shape[-1] != channels:
        raise UserError(
            f"the classifier takes {channels}-channel images; got images of shape {images.shape}."
        )
    if images.shape[1:3] != (size, size):
        images = tf.image.resize(images, (size, size), method="area").numpy()
    out = classifier.predict(images, batch_size=batch_size, verbose=0)
    probabilities = tf.sigmoid(out["attributes"]).numpy().astype(np.float32)
    return probabilities, np.asarray(out["yaw"], np.float32).reshape(-1)


def evaluate_classifier(classifier, images, attributes, yaw) -> dict[str, float]:
    """{"attribute_accuracy": mean over the 40 attributes, "yaw_mae": mean absolute error,
    "majority_accuracy": the accuracy of always answering each attribute's majority label}."""
    images, attributes, yaw = _check_training_arrays(images, attributes, yaw)
    probabilities, predicted_yaw = predict(classifier, images)
    majority = np.maximum(attributes.mean(0), 1 - attributes.mean(0))
    return {
        "attribute_accuracy": float(((probabilities > 0.5) == (attributes > 0.5)).mean()),
        "majority_accuracy": float(majority.mean()),
        "yaw_mae": float(np.abs(predicted_yaw - yaw[:, 0]).mean()),
    }


def save_classifier(classifier, path) -> str:
    """Writes the classifier as a .keras file (atomically); returns the path."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise UserError(f"The classifier's file must end in .keras; got {path!r}.")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.keras"
    classifier.save(tmp)
    os.replace(tmp, path)
    return path


def load_classifier(path):
    """A classifier written by `save_classifier` (checked: its two heads and 40 attributes)."""
    import keras

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"No classifier file {path!r} (train one with `dcgan attributes`).")
    try:
        model = keras.saving.load_model(path)
    except Exception as e:
        raise UserError(f"{path!r} is not a readable .keras model ({e}).") from None
    outputs = getattr(model, "output", None)
    if not isinstance(outputs, dict) or set(outputs) != set(HEADS):
        raise UserError(f"{path!r} is not an attribute classifier (heads {HEADS}).")
    if outputs["attributes"].shape[-1] != len(ATTRIBUTES):
        raise UserError(f"{path!r} does not predict CelebA's {len(ATTRIBUTES)} attributes.")
    return model


# ------------------------------------------------------------------------------------ picking
class Scores(NamedTuple):
    """What the classifier says about the samples of some seeds."""

    seeds: np.ndarray  # int64 [N]
    probabilities: np.ndarray  # float32 [N, 40]: P(attribute), in ATTRIBUTES' order
    yaw: np.ndarray  # float32 [N]: predicted yaw_proxy (> 0: facing the viewer's right)


def score_seeds(model, classifier, seeds, batch_size: int = 64, prior: str | None = None):
    """`Scores` of the samples G makes from `seeds` (e.g. range(1000): seeds 0..999)."""
    _, z_dim, prior = resolve_model(model, prior)
    seeds = check_seeds(list(seeds), "seeds")
    images = render(model, seeds_to_latents(seeds, z_dim, prior), batch_size)
    probabilities, yaw = predict(classifier, images)
    return Scores(np.asarray(seeds, np.int64), probabilities, yaw)


def concept_probability(scores: Scores, concept) -> np.ndarray:
    """P(concept) per seed: the product of p (wanted) or 1 - p (unwanted) over its attributes."""
    if isinstance(concept, str):
        concept = parse_concept(concept)
    p = np.ones(len(scores.seeds), np.float64)
    for name, wanted in concept.items():
        column = scores.probabilities[:, ATTRIBUTES.index(name)].astype(np.float64)
        p *= column if wanted else 1 - column
    return p


def _describe(concept: dict[str, bool]) -> str:
    return ",".join(("" if wanted else "~") + name for name, wanted in concept.items())


def pick_exemplars(scores: Scores, concept, count: int = DEFAULT_EXEMPLARS,
                   min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> list[int]:  # fmt: skip
    """The `count` seeds most probably showing `concept` (a dict or "Smiling,~Male"), most
    confident first; UserError when fewer than `count` reach `min_confidence`."""
    if isinstance(concept, str):
        concept = parse_concept(concept)
    count = validation.positive_int(count, "count (exemplars per concept)")
    if not validation.is_number(min_confidence) or not 0 <= min_confidence < 1:
        raise UserError(f"min_confidence must be in [0, 1); got {min_confidence!r}.")
    p = concept_probability(scores, concept)
    order = np.argsort(-p, kind="stable")
    good = order[p[order] >= min_confidence]
    if len(good) < count:
        raise UserError(
            f"only {len(good)} of {len(p)} samples show {_describe(concept)} with confidence >= "
            f"{min_confidence:g} (best {p.max(initial=0):.2f}); {count} exemplars are needed: "
            "score more samples (--num_samples), lower --min_confidence or ask for fewer "
            "exemplars."
        )
    return [int(s) for s in scores.seeds[good[:count]]]


def pick_turn(scores: Scores, count: int = DEFAULT_TURN_EXEMPLARS) -> tuple[list[int], list[int]]:
    """(left, right): the `count` seeds with the lowest predicted yaw (most left-facing first)
    and the `count` with the highest (most right-facing first)."""
    count = validation.positive_int(count, "count (exemplars per side)")
    if len(scores.seeds) < 2 * count:
        raise UserError(
            f"a turn needs {2 * count} scored samples ({count} per side); got {len(scores.seeds)}."
        )
    order = np.argsort(scores.yaw, kind="stable")
    left = [int(s) for s in scores.seeds[order[:count]]]
    right = [int(s) for s in scores.seeds[order[::-1][:count]]]
    return left, right
