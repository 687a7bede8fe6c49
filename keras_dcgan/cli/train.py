"""`dcgan train`: parse flags, call `keras_dcgan.training.train`."""

from __future__ import annotations

import sys

from absl import flags

from keras_dcgan.config import PRECISIONS, PRESETS, STRATEGIES

_PRESET = flags.DEFINE_enum("preset", "digits32", list(PRESETS), "Named configuration.")
_DATASET = flags.DEFINE_string(
    "dataset",
    None,
    "Image source (default: the preset's): digits, a TFDS name (mnist, cifar10, celeb_a, ...), "
    "an LMDB folder (LSUN's *_lmdb) or a folder of images.",
)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TensorFlow Datasets data_dir.")
_HOLDOUT = flags.DEFINE_float(
    "holdout_fraction", None, "Share of a folder's/LMDB's images held out (stable hash)."
)
_KEEP_LIST = flags.DEFINE_string("keep_list", None, "Train only on the ids of a dedup keep-list.")
_CACHE = flags.DEFINE_string(
    "cache", None, "Cache decoded images: 'memory' or a folder (default: no cache)."
)
_SMALL = flags.DEFINE_enum(
    "small_images", None, ["upscale", "skip"], "Images smaller than --image_size."
)
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Image side, a power of two (16-1024).")
_CHANNELS = flags.DEFINE_enum("channels", None, ["1", "3"], "1 (grayscale) or 3 (RGB).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Global batch size.")
_EPOCHS = flags.DEFINE_integer("epochs", None, "Total epochs (a continued run counts its own).")
_STEPS = flags.DEFINE_integer("steps", None, "Total iterations instead of epochs.")
_MODEL_DIR = flags.DEFINE_string(
    "model_dir", "runs/dcgan", "Run folder; an existing one is continued from its checkpoint."
)
_STRATEGY = flags.DEFINE_enum("strategy", "auto", list(STRATEGIES), "tf.distribute strategy.")
_SEED = flags.DEFINE_integer("seed", None, "Seed of weights, noise and shuffling.")
_SYNC_BN = flags.DEFINE_boolean(
    "sync_batch_norm", None, "All-reduce BatchNorm statistics over replicas."
)
_NUM_PREVIEW = flags.DEFINE_integer("num_preview", None, "Images in the per-epoch sample grid.")
_CKPT_EVERY = flags.DEFINE_integer(
    "checkpoint_every_steps", None, "A checkpoint every N iterations (0: at epoch ends only)."
)
_EVAL_METRICS = flags.DEFINE_list(
    "eval_metrics", None, "Quality metrics during training, e.g. fid5k,kid5k,digits."
)
_EVAL_EVERY = flags.DEFINE_integer("eval_every_epochs", None, "Epochs between evaluations.")
_INCEPTION = flags.DEFINE_string(
    "inception_weights", None, "InceptionV3 weights: imagenet (Keras cache), a path, or random."
)
_AUGMENT = flags.DEFINE_string(
    "augment", None, "DiffAugment of D's inputs (small datasets): translation,cutout, or none."
)
_R1_GAMMA = flags.DEFINE_float(
    "r1_gamma", None, "Weight of the R1 gradient penalty on D at real images (0: off, the paper)."
)
_DETERMINISTIC = flags.DEFINE_boolean(
    "deterministic", None, "TF op determinism: a resumed run equals an uninterrupted one."
)
_PRECISION = flags.DEFINE_enum(
    "precision",
    None,
    list(PRECISIONS),
    "Keras dtype policy: float32, mixed_float16 (T4/V100; dynamic loss scaling) or "
    "mixed_bfloat16 (A100/L4/H100, TPUs, CPUs with AVX512_BF16).",
)
_GROWTH = flags.DEFINE_integer(
    "loss_scale_growth_steps", None, "mixed_float16: finite steps before a loss scale doubles."
)
_JIT_COMPILE = flags.DEFINE_boolean(
    "jit_compile", None, "Compile the train step with XLA (one device only; default off)."
)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise SystemExit(f"dcgan train: unexpected arguments {argv[1:]}")
    # Imported here so that `--help` answers without loading TensorFlow.
    from keras_dcgan.config import get_config
    from keras_dcgan.training import train
    from keras_dcgan.training.trainer import TrainingDiverged

    try:
        config = get_config(
            _PRESET.value,
            dataset=_DATASET.value,
            image_size=_IMAGE_SIZE.value,
            channels=None if _CHANNELS.value is None else int(_CHANNELS.value),
            data_dir=_DATA_DIR.value,
            holdout_fraction=_HOLDOUT.value,
            keep_list=_KEEP_LIST.value,
            cache=_CACHE.value,
            small_images=_SMALL.value,
            batch_size=_BATCH_SIZE.value,
            epochs=_EPOCHS.value,
            steps=_STEPS.value,
            seed=_SEED.value,
            synchronized_batch_norm=_SYNC_BN.value,
            num_preview=_NUM_PREVIEW.value,
            checkpoint_every_steps=_CKPT_EVERY.value,
            deterministic=_DETERMINISTIC.value,
            eval_metrics=_EVAL_METRICS.value,
            eval_every_epochs=_EVAL_EVERY.value,
            inception_weights=_INCEPTION.value,
            augment=_AUGMENT.value,
            r1_gamma=_R1_GAMMA.value,
            precision=_PRECISION.value,
            loss_scale_growth_steps=_GROWTH.value,
            jit_compile=_JIT_COMPILE.value,
        )
        result = train(config, _MODEL_DIR.value, strategy=_STRATEGY.value)
    except (ValueError, FileNotFoundError, TrainingDiverged) as e:
        print(f"dcgan train: error: {e}", file=sys.stderr)
        sys.exit(1)
    if result.interrupted:
        sys.exit(143)  # 128 + SIGTERM: stopped, checkpoint written
    print(f"Trained {result.steps} steps into {result.model_dir}")
