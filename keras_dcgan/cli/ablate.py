"""`dcgan ablate`: "forgetting to draw" an object by dropping G's feature maps (sec. 6.3.1).

With `--boxes` (a JSON file of boxes drawn on samples; schema in
`keras_dcgan.analysis.ablation`), a logistic regression on a hidden layer of G (`--layer`;
default the last hidden block) picks the feature maps of the object (positive weights); with
`--channels` the maps are given. The maps are zeroed at every position of that layer and the
rest of G runs from there. Writes a PNG grid, one column per seed: row 1 the ordinary samples,
row 2 the same seeds without the maps. The paper's layer for a 64 px model is `--layer=up2`
(256 maps at 16x16; see `keras_dcgan.analysis.ablation`).
"""

from __future__ import annotations

from absl import flags

from keras_dcgan import paths
from keras_dcgan.cli import _flags
from keras_dcgan.errors import UserError

_MODEL_DIR = flags.DEFINE_string("model_dir", "runs/dcgan", "Run folder written by dcgan train.")
_BOXES = flags.DEFINE_string("boxes", None, "JSON file of object boxes drawn on samples.")
_CHANNELS = flags.DEFINE_list(
    "channels", None, "Drop these feature maps (e.g. 1,5,9) instead of fitting them from --boxes."
)
_NUM = flags.DEFINE_integer("num", 8, "Number of samples (seeds 0..num-1) if --seeds is unset.")
_SEEDS = flags.DEFINE_list("seeds", None, "Integer seeds of the samples to render, e.g. 3,17,42.")
_THRESHOLD = flags.DEFINE_float("threshold", 0.0, "Drop maps whose weight is above this.")
_C = flags.DEFINE_float("C", 1.0, "Inverse L2 regularisation of the logistic regression.")
_NEGATIVES = flags.DEFINE_float(
    "negatives_per_positive", None,
    "Sample this many negative positions per positive (default: every outside position).",
)  # fmt: skip
_LAYER = flags.DEFINE_string(
    "layer", None,
    "G's hidden layer: a block name (project, up1, ..., upk) or its index in G's blocks "
    "(negative from the end; default: the last hidden block, e.g. up3 at 64 px). The paper's "
    "'second highest convolution layer' at 64 px is up2.",
)  # fmt: skip
_OUTPUT = flags.DEFINE_string("output", "ablation.png", "Output PNG grid.")
_SAVE_CHANNELS = flags.DEFINE_string(
    "save_channels", None, "Write the dropped maps (and the fit's weights) to this JSON file."
)


def main(argv: list[str]) -> int | None:
    import numpy as np

    from keras_dcgan import images
    from keras_dcgan.analysis import ablation
    from keras_dcgan.training import load_trained

    if (_BOXES.value is None) == (_CHANNELS.value is None):
        raise UserError("give --boxes (to fit the feature maps) or --channels, not both.")
    seeds = _flags.seeds(_SEEDS.value, _NUM.value)
    channels = None
    if _CHANNELS.value is not None:
        channels = _flags.int_list(_CHANNELS.value, "channels")
        if not channels:
            raise UserError("--channels is empty.")
    config, gan = load_trained(_MODEL_DIR.value)
    layer = ablation.resolve_layer(gan, _LAYER.value)  # a bad --layer fails before any work
    boxes = None
    if _BOXES.value is not None:
        boxes = ablation.load_boxes(_BOXES.value, config.model.image_size)
    fit_kwargs = {}
    if boxes is not None:
        fit_kwargs = dict(
            threshold=_THRESHOLD.value, C=_C.value,
            negatives_per_positive=_NEGATIVES.value,
        )  # fmt: skip
    result = ablation.forget_objects(
        gan, seeds, boxes=boxes, channels=channels, layer=layer, **fit_kwargs
    )
    grid = np.concatenate([result.with_maps, result.without_maps])
    path = images.save_grid(grid, _OUTPUT.value, columns=len(seeds))
    if _SAVE_CHANNELS.value:
        paths.write_json(_record(result), _SAVE_CHANNELS.value)
    _report(result, seeds)
    if _SAVE_CHANNELS.value:
        print(f"Wrote {_SAVE_CHANNELS.value}")
    print(f"Wrote {path} (row 1: with the maps, row 2: without; {len(seeds)} seeds)")


def _record(result) -> dict:
    """The --save_channels JSON: the layer, its shape, the dropped maps (and the fit)."""
    record = {"model_dir": _MODEL_DIR.value, "boxes": _BOXES.value}
    if result.fit is not None:
        record.update(result.fit.to_dict())
    else:
        record.update(
            layer=result.layer,
            layer_shape=list(result.layer_shape),
            num_maps=int(result.layer_shape[-1]),
            num_dropped=len(result.channels),
            channels=[int(c) for c in result.channels],
        )
    return record


def _report(result, seeds) -> None:
    side, _, num_channels = result.layer_shape
    if result.fit is not None:
        fit = result.fit
        print(
            f"Logistic regression on {fit.num_positives} positions in boxes and "
            f"{fit.num_negatives} outside: training accuracy {fit.accuracy:.3f}."
        )
    print(
        f"Dropped {len(result.channels)} of {num_channels} feature maps of G's layer "
        f"{result.layer} ({side}x{side}x{num_channels}) at every position; the rest of G ran "
        f"from there. Dropped maps of the layer: {[int(c) for c in result.channels]}"
    )
