"""Forgetting to draw certain objects (Radford et al. 2015, section 6.3.1).

The paper drew bounding boxes around windows in 150 generated bedrooms, fit a logistic
regression on the generator's "second highest convolution layer features" to predict whether a
feature activation lies in a window (activations inside the boxes positive, random samples from
the same images negative), dropped "all feature maps with weights greater than zero" (200) from
all spatial locations, and rendered new samples with and without them: the windows mostly vanish
or turn into other objects.

The layer (`layer=`, `dcgan ablate --layer`) is any hidden block of G: `project` (4x4),
`up1` ... `upk` (a block name) or its index in `g.block_names` (negative counts from the end);
G's `output` block (the image) is not a feature layer. Default: G's last hidden block
(`block_names[-2]`, e.g. `up3` for a 64 px model: 32x32 x widths[-1] maps, the input of the
output transposed convolution), as before the option existed.

Which layer is the paper's "second highest convolution layer"? For the 64 px bedroom model (G
1024-512-256-128, Fig. 1) G has four convolutions: up1 (8x8x512), up2 (16x16x256), up3
(32x32x128) and the output one (64x64x3). Taken literally, the highest is the output convolution
and the second highest is up3's, whose 128 maps cannot hold the "200" maps the paper dropped.
Counting the layers whose *features* (hidden activations) can be fed to a classifier, the
highest is up3's output and the second highest is up2's: 256 maps at 16x16, the only reading
that fits 200 dropped maps (200 of 256 positive weights; no other layer has between 200 and
511 maps). So `--layer=up2` (index -3 for any resolution, 2 for 64 px) is the paper's layer;
the default stays `up3` for backward compatibility. Not verified on a trained bedroom model
(none on this project's machines): how many maps get a positive weight depends on the fit.

The steps:
1. `load_boxes(path)`: the annotations, validated (schema below).
2. `hidden_features(gan, seeds, layer=...)`: that layer's activations for the annotated seeds
   (inference mode); `boxes_to_mask` maps each sample's boxes onto the layer's grid.
3. `fit_object_channels(gan, boxes)`: scikit-learn `LogisticRegression` on the feature vectors
   at each spatial position (inside a box: positive; outside every box: negative), on
   standardised features; the channels whose weight is > `threshold` (0, the paper) are dropped.
4. `render(gan, seeds, channels, layer=...)`: samples with those channels zeroed at that
   layer, at every position, then the rest of G (every later block, then the output block);
   `forget_objects` does 1-4 and renders both versions.

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
        layer: the layer's block name in G (`resolve_layer`).
    """

    channels: np.ndarray
    weights: np.ndarray
    intercept: float
    accuracy: float
    num_positives: int
    num_negatives: int
    layer_shape: tuple
    layer: str | None = None

    def to_dict(self) -> dict:
        return {
            "layer": self.layer,
            "layer_shape": list(self.layer_shape),
            "num_maps": int(self.layer_shape[-1]),
            "num_dropped": len(self.channels),
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
        layer: the block name of G's layer the channels were dropped from.
        layer_shape: (side, side, C) of that layer.
    """

    seeds: list
    channels: np.ndarray
    with_maps: np.ndarray
    without_maps: np.ndarray
    fit: ObjectChannels | None = None
    layer: str | None = None
    layer_shape: tuple | None = None


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


def hidden_layers(gan) -> tuple[str, ...]:
    """The names of G's hidden blocks, the layers `layer=` accepts: `project`, `up1` ... `upk`."""
    return _generator(gan).block_names[:-1]


def resolve_layer(gan, layer=None) -> str:
    """The block name of `layer`: None (G's last hidden block, `block_names[-2]`), a hidden
    block's name (`"up2"`), or its index in `block_names` (an int, or a string of one as
    `--layer=2` gives; negative counts from the end). G's output block is refused."""
    g = _generator(gan)
    names, hidden = g.block_names, hidden_layers(gan)
    valid = (
        f"G's hidden layers are {', '.join(hidden)} (indices 0..{len(hidden) - 1}, or "
        f"{-len(names)}..-2 from the end); the output block {names[-1]!r} is the image"
    )
    if layer is None:
        return names[-2]
    if isinstance(layer, str) and layer.strip().lstrip("-").isdigit():
        layer = int(layer.strip())
    if validation.is_int(layer):
        if not -len(names) <= layer < len(names):
            raise UserError(f"layer index {layer} is out of range: {valid}.")
        name = names[int(layer)]
    elif isinstance(layer, str):
        name = layer.strip()
        if name not in names:
            raise UserError(f"G has no layer {layer!r}: {valid}.")
    else:
        raise UserError(f"layer must be a block name or index; got {layer!r}. {valid}.")
    if name == names[-1]:
        raise UserError(f"layer {layer!r} is G's output block, not a feature layer: {valid}.")
    return name


def layer_shape(gan, layer=None) -> tuple[int, int, int]:
    """(side, side, channels) of a hidden layer of G (`resolve_layer`): block i has side
    4 * 2**i and widths[i] channels (default: the last hidden block, image_size / 2)."""
    g = _generator(gan)
    index = g.block_names.index(resolve_layer(gan, layer))
    side = 4 * 2**index
    return (side, side, int(g.widths[index]))


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


def _hidden(generator, z, name):
    """G's hidden layer `name` (a block's output, after its activation) for z [N, z_dim], in
    inference mode: [N, side, side, channels]."""
    return generator.block_output(z, name, training=False)


def _drop(features, channels, num_channels):
    if len(channels) == 0:
        return features
    keep = np.ones(num_channels, np.float32)
    keep[channels] = 0.0
    return features * tf.constant(keep, features.dtype)


def _rest(generator, features, name):
    """The rest of G after block `name` (every later block, the output block last) on that
    block's features, in inference mode: images [N, H, W, C] in [-1, 1]."""
    x = features
    for block in generator.block_names[generator.block_names.index(name) + 1 :]:
        for layer in generator.get_block(block):
            x = layer(x, training=False)
    return x


def hidden_features(gan, seeds, channels=(), batch_size: int = 64, layer=None) -> np.ndarray:
    """G's hidden `layer` (default: the last hidden block) for latents named by seeds, in
    inference mode, with `channels` zeroed (what the rest of G receives in `render`): float32
    [N, side, side, C]."""
    return _run(gan, seeds, channels, batch_size, layer, images=False)


def render(gan, seeds, channels=(), batch_size: int = 64, layer=None) -> np.ndarray:
    """Samples for `seeds` with `channels` of G's hidden `layer` (default: the last hidden block)
    zeroed at every position, then the rest of G (inference mode): float32 [N, H, W, C] in
    [-1, 1]. No channels: exactly `gan.sample(seeds)`."""
    return _run(gan, seeds, channels, batch_size, layer, images=True)


def _run(gan, seeds, channels, batch_size, layer, images):
    generator = _generator(gan)
    seeds = check_seeds(seeds)
    name = resolve_layer(gan, layer)
    num_channels = layer_shape(gan, name)[-1]
    channels = check_channels(channels, num_channels)
    validation.positive_int(batch_size, "batch_size")
    out = []
    for start in range(0, len(seeds), batch_size):
        z = latent.latents_from_seeds(seeds[start : start + batch_size], gan.z_dim, gan.z_prior)
        x = _drop(_hidden(generator, z, name), channels, num_channels)
        out.append(np.asarray(_rest(generator, x, name) if images else x, np.float32))
    return np.concatenate(out)


# ---------------------------------------------------------------------------- fitting
def training_positions(gan, boxes: BoxSet, negatives_per_positive: float | None = None,
                       seed: int = 0, layer=None):  # fmt: skip
    """(X, y): feature vectors of G's hidden `layer` at positions inside boxes (y=1) and outside
    all boxes (y=0) of every annotated sample. `negatives_per_positive` None takes every outside
    position; a number samples that many negatives per positive (without replacement, seeded)."""
    side, _, num_channels = layer_shape(gan, layer)
    if boxes.image_size != _generator(gan).image_size:
        raise UserError(
            f"The boxes were drawn on {boxes.image_size} px images; the model makes "
            f"{_generator(gan).image_size} px images."
        )
    features = hidden_features(gan, boxes.seeds, layer=layer)
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
    layer=None,
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
        layer: G's hidden layer (`resolve_layer`: a block name or index; default the last
            hidden block).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if not C > 0:
        raise UserError(f"C must be positive; got {C}.")
    layer = resolve_layer(gan, layer)
    x, y = training_positions(gan, boxes, negatives_per_positive, seed, layer)
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
        layer_shape=layer_shape(gan, layer),
        layer=layer,
    )


def forget_objects(gan, seeds, *, boxes: BoxSet | None = None, channels=None, layer=None,
                   **fit_kwargs) -> Ablation:  # fmt: skip
    """Samples for `seeds` with and without the feature maps of an object (sec. 6.3.1).

    Give `boxes` (the channels of `layer` are fit with `fit_object_channels(gan, boxes,
    layer=layer, **fit_kwargs)`) or `channels` (dropped as given). `layer`: G's hidden layer
    (`resolve_layer`; default the last hidden block)."""
    if (boxes is None) == (channels is None):
        raise UserError("Give either boxes (to fit the channels) or channels, not both.")
    seeds = check_seeds(seeds)
    layer = resolve_layer(gan, layer)
    fit = None
    if boxes is not None:
        fit = fit_object_channels(gan, boxes, layer=layer, **fit_kwargs)
        channels = fit.channels
    channels = check_channels(channels, layer_shape(gan, layer)[-1])
    return Ablation(
        seeds=seeds,
        channels=channels,
        with_maps=render(gan, seeds),
        without_maps=render(gan, seeds, channels, layer=layer),
        fit=fit,
        layer=layer,
        layer_shape=layer_shape(gan, layer),
    )
