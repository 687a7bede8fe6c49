"""`dcgan visualize`: guided backpropagation of the discriminator's features (paper Fig. 5).

Writes one PNG grid, one column per feature: row 1 the trained discriminator's visualisations,
row 2 those of a randomly initialised discriminator of the same architecture (`--norandom`
leaves it out). With `--with_inputs`, each row of visualisations follows a row of the real images
that maximised the features. Mid-gray is zero gradient; see `keras_dcgan.analysis.guided_backprop`.
"""

from __future__ import annotations

from absl import flags

from keras_dcgan.cli import _flags
from keras_dcgan.errors import UserError

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/dcgan", "Run folder written by dcgan train.")
_DATASET = flags.DEFINE_string(
    "dataset", None, "Real images to search for maximal responses (default: the run's dataset)."
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TensorFlow Datasets data_dir.")
_SPLIT = flags.DEFINE_string("split", "train", "Split of the real images.")
_NUM_IMAGES = flags.DEFINE_integer(
    "num_images", 512, "How many real images (the first of the split, in source order)."
)
_FEATURES = flags.DEFINE_integer(
    "features", 6, "Visualise the first N channels of the layer (the paper: 6)."
)
_FEATURE_INDICES = flags.DEFINE_list(
    "feature_indices", None, "Visualise these channels instead of the first --features, e.g. 0,7."
)
_LAYER = flags.DEFINE_integer("layer", -1, "Discriminator block (default -1: the last conv).")
_RULE = flags.DEFINE_enum("rule", "guided", ["guided", "plain"], "Backward rule.")
_PERCENTILE = flags.DEFINE_float(
    "percentile", 100.0, "Each visualisation is divided by this percentile of |gradient|."
)
_RANDOM = flags.DEFINE_bool("random", True, "Add the row of a randomly initialised D.")
_RANDOM_SEED = flags.DEFINE_integer("random_seed", 0, "Seed of the random D's initialisation.")
_WITH_INPUTS = flags.DEFINE_bool("with_inputs", False, "Show the chosen images above each row.")
_OUTPUT = flags.DEFINE_string("output", "guided.png", "Output PNG grid.")


def _feature_spec():
    if _FEATURE_INDICES.value is None:
        return _FEATURES.value
    return _flags.int_list(_FEATURE_INDICES.value, "feature_indices")


def main(argv: list[str]) -> int | None:
    import numpy as np

    from keras_dcgan import images as image_io
    from keras_dcgan.analysis import guided_backprop as gb
    from keras_dcgan.data import open_source
    from keras_dcgan.models import random_discriminator
    from keras_dcgan.training import load_trained

    if _NUM_IMAGES.value < 1:
        raise UserError(f"--num_images must be positive; got {_NUM_IMAGES.value}.")
    features = _feature_spec()
    config, gan = load_trained(_MODEL_DIR.value)
    # Checked before reading any image: a bad --features fails fast.
    d = gan.discriminator
    layer, side, channels = gb.layer_info(d, _LAYER.value)
    features = gb.check_features(features, channels)
    source = open_source(
        _DATASET.value or config.dataset, data_dir=_DATA_DIR.value or config.data.data_dir
    )
    mc = config.model
    ids, real = source.arrays(
        mc.image_size, mc.channels, split=_SPLIT.value,
        holdout_fraction=config.data.holdout_fraction, limit=_NUM_IMAGES.value,
    )  # fmt: skip
    kwargs = dict(layer=layer, rule=_RULE.value, percentile=_PERCENTILE.value)
    results = [("trained", gb.guided_backprop(d, real, list(features), **kwargs))]
    if _RANDOM.value:
        random_d = random_discriminator(d, _RANDOM_SEED.value)
        results.append(("random", gb.guided_backprop(random_d, real, list(features), **kwargs)))
    rows = []
    for _, result in results:
        if _WITH_INPUTS.value:
            rows.append(image_io.to_model_range(real[result.image_indices]))
        rows.append(result.visualizations)
    path = image_io.save_grid(np.concatenate(rows), _OUTPUT.value, columns=len(features))
    print(f"Discriminator block {layer} ({side}x{side}), {len(real)} images from {source.name}:")
    for name, result in results:
        for f, i, (r, c), v in zip(
            result.features, result.image_indices, result.positions, result.responses, strict=True
        ):
            print(f"  {name:<7} feature {f:>4}: image {ids[i]} at ({r}, {c}), response {v:.4g}")
    layout = " / ".join(
        (f"{name} inputs / {name} {_RULE.value}" if _WITH_INPUTS.value else name)
        for name, _ in results
    )
    print(f"Wrote {path} (rows: {layout}; one column per feature)")
