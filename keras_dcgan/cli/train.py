"""`dcgan train`: train a DCGAN into a run folder (a folder holding a checkpoint is continued).

Every field of the preset's config has a flag of the same name (`--sync_batch_norm` for
synchronized_batch_norm); a flag left unset keeps the preset's value.
"""

from __future__ import annotations

from absl import flags

from keras_dcgan import config as config_lib
from keras_dcgan.cli import _flags

_PRESET = flags.DEFINE_enum("preset", "digits32", list(config_lib.PRESETS), "Named configuration.")
_DATASET = flags.DEFINE_string(
    "dataset",
    None,
    "Image source (default: the preset's): digits, a TFDS name (mnist, cifar10, celeb_a, ...), "
    "an LMDB folder (LSUN's *_lmdb) or a folder of images.",
)
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", "runs/dcgan", "Run folder; an existing one is continued from its checkpoint."
)
_STRATEGY = flags.DEFINE_enum(
    "strategy", "auto", list(config_lib.STRATEGIES), "tf.distribute strategy."
)
_CONFIG_FLAGS = {
    **_flags.define_config_flags(
        config_lib.ModelConfig,
        __name__,
        choices={
            "z_prior": config_lib.Z_PRIORS,
            "g_activation": config_lib.G_ACTIVATIONS,
            "projection_bn": config_lib.PROJECTION_BNS,
            "d_batch": config_lib.D_BATCHES,
        },
    ),
    **_flags.define_config_flags(
        config_lib.TrainConfig, __name__, choices={"precision": config_lib.PRECISIONS}
    ),
    **_flags.define_config_flags(
        config_lib.DataConfig, __name__, choices={"small_images": config_lib.SMALL_IMAGE_POLICIES}
    ),
}


def main(argv: list[str]) -> int | None:
    # Imported here so that `--help` answers without loading TensorFlow.
    from keras_dcgan.training import train

    config = config_lib.get_config(
        _PRESET.value, dataset=_DATASET.value, **_flags.values(_CONFIG_FLAGS)
    )
    result = train(config, _MODEL_DIR.value, strategy=_STRATEGY.value)
    if result.interrupted:
        return 143  # 128 + SIGTERM: stopped, checkpoint written
    print(f"Trained {result.steps} steps into {result.model_dir}")
    return None
