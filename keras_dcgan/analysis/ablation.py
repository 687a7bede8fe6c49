"""Forgetting to draw certain objects (Radford et al. 2015, section 6.3.1).

The paper drew bounding boxes around windows in 150 generated bedrooms, fit a logistic
regression on the generator's "second highest convolution layer features" to predict whether a
feature activation lies in a window (activations inside the boxes positive, random samples from
the same images negative), dropped "all feature maps with weights greater than zero" (200) from
all spatial locations, and rendered new samples with and without them: the windows mostly vanish
or turn into other objects.

Here the "second highest layer" is the output of G's last hidden block (`block_names[-2]`, e.g.
`up3` for a 64 px model; the input of the output transposed convolution, block `output`; 32x32 x
widths[-1] maps for a 64 px model). The steps:

1. `load_boxes(path)`: the annotations, validated (schema below).
2. `hidden_features(gan, seeds)`: that layer's activations for the annotated seeds (inference
   mode); `boxes_to_mask` maps each sample's boxes onto the layer's grid.
3. `fit_object_channels(gan, boxes)`: scikit-learn `LogisticRegression` on the feature vectors
   at each spatial position (inside a box: positive; outside every box: negative), on
   standardised features; the channels whose weight is > `threshold` (0, the paper) are dropped.
4. `render(gan, seeds, channels)`: samples with those channels zeroed at that layer, at every
   position, then G's output block; `forget_objects` does 1-4 and renders both versions.

Box file (JSON):
```json
{
  "image_size": 64,
  "model": "runs/bedrooms",
  "samples": [
    {"seed": 12, "boxes": [[4, 10, 20, 30], [40, 8, 60, 28]]},
    {"seed": 13, "boxes": []}
  ]
}
```
- `image_size` (required): the side of the images the boxes were drawn on; must equal the
  model's (a file made for another model is refused rather than silently rescaled).
- `model` (optional): free text, e.g. the run folder the seeds were rendered from.
- `samples` (required, non-empty): one entry per annotated sample; `seed` is the integer seed of
  its latent (`dcgan sample --seeds=...` renders the same image), unique in the file; `boxes`
  is a list of `[x0, y0, x1, y1]` in the image's pixel coordinates (x to the right, y down;
  `x0, y0` included, `x1, y1` excluded, like slices: `[0, 0, 64, 64]` is the whole 64 px image),
  numbers with `0 <= x0 < x1 <= image_size` and `0 <= y0 < y1 <= image_size`. A sample with no
  box is allowed (its positions are all negatives). No other keys are accepted anywhere.

A layer position (i, j) covers image pixels [j*f, (j+1)*f) x [i*f, (i+1)*f), f = image_size /
layer side; it is inside a box when its centre is. Along an axis where a box holds no centre
(thinner than a cell) it takes the cell holding its own centre, so every box gives a positive.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from keras_dcgan import latent, validation
from keras_dcgan.analysis.latent_walks import check_seeds
from keras_dcgan.errors import UserError

SAMPLE_KEYS = {"seed", "boxes"}
TOP_KEYS = {"image_size", "model", "samples"}
INT64 = (-(2**63), 2**63 - 1)


@dataclasses.dataclass(frozen=True)
class BoxSet:
    """Validated annotations: `seeds` (list of int) and, for each, `boxes` (float [m, 4])."""

    image_size: int
    seeds: list
    boxes: list
    model: str | None = None

    def to_dict(self) -> dict:
        data = {"image_size": self.image_size}
        if self.model is not None:
            data["model"] = self.model
        data["samples"] = [
            {"seed": s, "boxes": np.asarray(b).tolist()}
            for s, b in zip(self.seeds, self.boxes, strict=True)
        ]
        return data


@dataclasses.dataclass(frozen=True)
class ObjectChannels:
    """The feature maps that `fit_object_channels` found.

    Attributes:
        channels: int [d], sorted indices of the dropped channels (weight > threshold).
        weights: float [C], the logistic regression's weight of every channel (standardised
            features, so comparable across channels).
        intercept: its intercept.
        accuracy: its accuracy on the training positions.
        num_positives, num_negatives: positions used.
        layer_shape: (side, side, C) of the layer.
    """

    channels: np.ndarray
    weights: np.ndarray
    intercept: float
    accuracy: float
    num_positives: int
    num_negatives: int
    layer_shape: tuple

    def to_dict(self) -> dict:
        return {
            "layer": "generator second-highest layer (output of the last hidden block)",
            "layer_shape": list(self.layer_shape),
            "channels": [int(c) for c in self.channels],
            "weights": [float(w) for w in self.weights],
            "intercept": float(self.intercept),
            "train_accuracy": float(self.accuracy),
            "positives": int(self.num_positives),
            "negatives": int(self.num_negatives),
        }


@dataclasses.dataclass(frozen=True)
class Ablation:
    """Samples drawn with and without the dropped feature maps (`forget_objects`).

    Attributes:
        seeds: the samples' seeds.
        channels: int [d], the dropped channels.
        with_maps: float32 [N, H, W, C] in [-1, 1], the ordinary samples.
        without_maps: float32 [N, H, W, C], the same seeds with the channels zeroed.
        fit: the `ObjectChannels` when the channels were fit from boxes, else None.
    """

    seeds: list
    channels: np.ndarray
    with_maps: np.ndarray
    without_maps: np.ndarray
    fit: ObjectChannels | None = None


# ----------------------------------------------------------------------------- boxes
def _where(index) -> str:
    return f"samples[{index}]"


def parse_boxes(data, image_size: int | None = None, source: str = "the box file") -> BoxSet:
    """Validates annotations (the dict of a box file, module doc) and returns a `BoxSet`.

    `image_size`, when given, is the model's: the file's must equal it. Every problem is a
    ValueError that names the entry and the rule it breaks."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: expected a JSON object at the top; got {type(data).__name__}.")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise UserError(f"{source}: unknown keys {unknown}; allowed: {sorted(TOP_KEYS)}.")
    for key in ("image_size", "samples"):
        if key not in data:
            raise UserError(f"{source}: missing key {key!r}.")
    size = data["image_size"]
    if not validation.is_int(size) or size < 1:
        raise UserError(f"{source}: image_size must be a positive integer; got {size!r}.")
    if image_size is not None and size != image_size:
        raise UserError(
            f"{source}: the boxes were drawn on {size} px images but the model makes "
            f"{image_size} px images."
        )
    model = data.get("model")
    if model is not None and not isinstance(model, str):
        raise UserError(f"{source}: model must be a string; got {model!r}.")
    samples = data["samples"]
    if not isinstance(samples, list) or not samples:
        raise UserError(f"{source}: samples must be a non-empty list; got {samples!r}.")
    seeds, all_boxes, seen = [], [], {}
    for i, sample in enumerate(samples):
        where = f"{source}: {_where(i)}"
        if not isinstance(sample, dict):
            raise UserError(f"{where} must be an object with seed and boxes; got {sample!r}.")
        missing = sorted(SAMPLE_KEYS - set(sample))
        if missing:
            raise UserError(f"{where}: missing key {missing[0]!r}.")
        unknown = sorted(set(sample) - SAMPLE_KEYS)
        if unknown:
            raise UserError(f"{where}: unknown keys {unknown}; allowed: {sorted(SAMPLE_KEYS)}.")
        seed = sample["seed"]
        if not validation.is_int(seed) or not INT64[0] <= int(seed) <= INT64[1]:
            raise UserError(f"{where}: seed must be an integer (int64); got {seed!r}.")
        if int(seed) in seen:
            raise UserError(
                f"{where}: seed {seed} is already annotated in {_where(seen[int(seed)])}."
            )
        seen[int(seed)] = i
        boxes = sample["boxes"]
        if not isinstance(boxes, list):
            raise UserError(f"{where}: boxes must be a list of [x0, y0, x1, y1]; got {boxes!r}.")
        for j, box in enumerate(boxes):
            at = f"{where}.boxes[{j}]"
            if (
                not isinstance(box, list)
                or len(box) != 4
                or not all(map(validation.is_number, box))
            ):
                raise UserError(f"{at} must be 4 finite numbers [x0, y0, x1, y1]; got {box!r}.")
            x0, y0, x1, y1 = box
            if not (x1 > x0 and y1 > y0):
                raise UserError(
                    f"{at} = {box} is empty or inverted: need x1 > x0 and y1 > y0 "
                    "([x0, y0, x1, y1], x1 and y1 excluded)."
                )
            if x0 < 0 or y0 < 0 or x1 > size or y1 > size:
                raise UserError(
                    f"{at} = {box} is outside the {size}x{size} image: need 0 <= x0 < x1 <= "
                    f"{size} and 0 <= y0 < y1 <= {size}."
                )
        seeds.append(int(seed))
        all_boxes.append(np.asarray(boxes, np.float64).reshape(-1, 4))
    return BoxSet(image_size=size, seeds=seeds, boxes=all_boxes, model=model)


def load_boxes(path, image_size: int | None = None) -> BoxSet:
    """Reads and validates a box file (module doc); `image_size` is the model's."""
    path = os.fspath(path)
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"Box file {path} does not exist.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON: {e}.") from None
    return parse_boxes(data, image_size, source=path)


def boxes_to_mask(boxes, image_size: int, layer_size: int) -> np.ndarray:
    """bool [layer_size, layer_size]: the layer positions inside any of `boxes` (module doc)."""
    if image_size % layer_size:
        raise UserError(f"layer side {layer_size} does not divide the image side {image_size}.")
    f = image_size / layer_size
    centres = (np.arange(layer_size) + 0.5) * f
    mask = np.zeros((layer_size, layer_size), bool)

    def cells(low, high):
        inside = (centres >= low) & (centres < high)
        if not inside.any():  # thinner than a cell: the cell holding the box's centre
            inside[min(int((low + high) / 2 // f), layer_size - 1)] = True
        return inside

    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        mask[np.ix_(cells(y0, y1), cells(x0, x1))] = True
    return mask


# ------------------------------------------------------------------------ the layer
def _generator(gan):
    generator = getattr(gan, "generator", None)
    if generator is None or not hasattr(generator, "block_names"):
        raise UserError(f"Expected a DCGAN (with a generator); got {type(gan).__name__}.")
    return generator


def layer_shape(gan) -> tuple[int, int, int]:
    """(side, side, channels) of G's second-highest layer: image_size / 2 x widths[-1]."""
    g = _generator(gan)
    side = g.image_size // 2
    return (side, side, int(g.widths[-1]))


def check_channels(channels, num_channels: int) -> np.ndarray:
    """Channel indices as a sorted int array; out of range, non-integer or repeated: error."""
    channels = list(channels)
    for c in channels:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)):
            raise UserError(f"channel indices must be integers; got {c!r}.")
        if not 0 <= c < num_channels:
            raise UserError(
                f"channel {c} is out of range: the layer has {num_channels} feature maps "
                f"(0..{num_channels - 1})."
            )
    if len(set(int(c) for c in channels)) != len(channels):
        raise UserError(f"channel indices repeat: {channels}.")
    return np.asarray(sorted(int(c) for c in channels), np.int64)


def _hidden(generator, z):
    """G's second-highest layer (the output of block `block_names[-2]`, the input of the
    output block) for z [N, z_dim], in inference mode: [N, side, side, widths[-1]]."""
    return generator.block_output(z, generator.block_names[-2], training=False)


def _drop(features, channels, num_channels):
    if len(channels) == 0:
        return features
    keep = np.ones(num_channels, np.float32)
    keep[channels] = 0.0
    return features * tf.constant(keep, features.dtype)


def _output(generator, features):
    """G's output block (`block_names[-1]`: convolution and tanh) on `_hidden`'s features, in
    inference mode: images [N, H, W, C] in [-1, 1]."""
    x = features
    for layer in generator.get_block(generator.block_names[-1]):
        x = layer(x, training=False)
    return x


def hidden_features(gan, seeds, channels=(), batch_size: int = 64) -> np.ndarray:
    """G's second-highest layer for latents named by seeds, in inference mode, with `channels`
    zeroed (what the output block receives in `render`): float32 [N, side, side, C]."""
    return _run(gan, seeds, channels, batch_size, images=False)


def render(gan, seeds, channels=(), batch_size: int = 64) -> np.ndarray:
    """Samples for `seeds` with `channels` of G's second-highest layer zeroed at every position
    (inference mode): float32 [N, H, W, C] in [-1, 1]. No channels: exactly `gan.sample(seeds)`."""
    return _run(gan, seeds, channels, batch_size, images=True)


def _run(gan, seeds, channels, batch_size, images):
    generator = _generator(gan)
    seeds = check_seeds(seeds)
    num_channels = layer_shape(gan)[-1]
    channels = check_channels(channels, num_channels)
    if batch_size < 1:
        raise UserError(f"batch_size must be positive; got {batch_size}.")
    out = []
    for start in range(0, len(seeds), batch_size):
        z = latent.latents_from_seeds(seeds[start : start + batch_size], gan.z_dim, gan.z_prior)
        x = _drop(_hidden(generator, z), channels, num_channels)
        out.append(np.asarray(_output(generator, x) if images else x, np.float32))
    return np.concatenate(out)


# ---------------------------------------------------------------------------- fitting
def training_positions(gan, boxes: BoxSet, negatives_per_positive: float | None = None,
                       seed: int = 0):  # fmt: skip
    """(X, y): feature vectors at layer positions inside boxes (y=1) and outside all boxes
    (y=0) of every annotated sample. `negatives_per_positive` None takes every outside
    position; a number samples that many negatives per positive (without replacement, seeded)."""
    side, _, num_channels = layer_shape(gan)
    if boxes.image_size != _generator(gan).image_size:
        raise UserError(
            f"The boxes were drawn on {boxes.image_size} px images; the model makes "
            f"{_generator(gan).image_size} px images."
        )
    features = hidden_features(gan, boxes.seeds)
    masks = np.stack([boxes_to_mask(b, boxes.image_size, side) for b in boxes.boxes])
    positives = features[masks]
    negatives = features[~masks]
    if len(positives) == 0:
        raise UserError("The box file has no box: nothing to learn the object from.")
    if len(negatives) == 0:
        raise UserError("The boxes cover every position of every sample: no negatives.")
    if negatives_per_positive is not None:
        if not negatives_per_positive > 0:
            raise UserError(
                f"negatives_per_positive must be positive; got {negatives_per_positive}."
            )
        count = min(len(negatives), max(1, round(negatives_per_positive * len(positives))))
        pick = np.random.default_rng(seed).choice(len(negatives), count, replace=False)
        negatives = negatives[np.sort(pick)]
    x = np.concatenate([positives, negatives]).astype(np.float64)
    y = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))]).astype(np.int64)
    return x, y


def fit_object_channels(
    gan,
    boxes: BoxSet,
    *,
    threshold: float = 0.0,
    C: float = 1.0,
    negatives_per_positive: float | None = None,
    balanced: bool = True,
    seed: int = 0,
) -> ObjectChannels:
    """Logistic regression from a position's feature vector to "inside a box" (module doc).

    Args:
        gan: a `DCGAN`.
        boxes: a `BoxSet` (`load_boxes` / `parse_boxes`).
        threshold: channels with weight > threshold are returned (the paper: 0).
        C: inverse L2 regularisation strength of `LogisticRegression`.
        negatives_per_positive: None: every outside position is a negative; else sample that
            many per positive (the paper: "random samples from the same images").
        balanced: weight the classes inversely to their frequency (boxes are usually a small
            share of the positions).
        seed: seed of the negative sampling.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if not C > 0:
        raise UserError(f"C must be positive; got {C}.")
    x, y = training_positions(gan, boxes, negatives_per_positive, seed)
    scaled = StandardScaler().fit_transform(x)
    model = LogisticRegression(
        C=C, max_iter=2000, class_weight="balanced" if balanced else None
    ).fit(scaled, y)
    weights = model.coef_[0].astype(np.float64)
    return ObjectChannels(
        channels=np.flatnonzero(weights > threshold).astype(np.int64),
        weights=weights,
        intercept=float(model.intercept_[0]),
        accuracy=float(model.score(scaled, y)),
        num_positives=int(y.sum()),
        num_negatives=int(len(y) - y.sum()),
        layer_shape=layer_shape(gan),
    )


def forget_objects(gan, seeds, *, boxes: BoxSet | None = None, channels=None,
                   **fit_kwargs) -> Ablation:  # fmt: skip
    """Samples for `seeds` with and without the feature maps of an object (sec. 6.3.1).

    Give `boxes` (the channels are fit with `fit_object_channels(gan, boxes, **fit_kwargs)`) or
    `channels` (dropped as given)."""
    if (boxes is None) == (channels is None):
        raise UserError("Give either boxes (to fit the channels) or channels, not both.")
    seeds = check_seeds(seeds)
    fit = None
    if boxes is not None:
        fit = fit_object_channels(gan, boxes, **fit_kwargs)
        channels = fit.channels
    channels = check_channels(channels, layer_shape(gan)[-1])
    return Ablation(
        seeds=seeds,
        channels=channels,
        with_maps=render(gan, seeds),
        without_maps=render(gan, seeds, channels),
        fit=fit,
    )
