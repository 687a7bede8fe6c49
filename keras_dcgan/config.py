"""Experiment configuration: frozen dataclasses and the named presets.

A `Config` is the whole description of a run. `get_config("paper64")` returns a preset;
`config.with_overrides(image_size=128, batch_size=64)` returns a changed copy (each key goes to
the section that owns it), validated again. `Config.to_dict()` / `Config.from_dict()` are what the
run folder's `config.json` holds.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from keras_dcgan import options, validation
from keras_dcgan.errors import UserError

# The named choices live in `keras_dcgan.options` (dependency-free); re-exported for callers.
from keras_dcgan.options import (  # noqa: F401
    D_BATCHES,
    FID_NETWORKS,
    G_ACTIVATIONS,
    PRECISIONS,
    PROJECTION_BNS,
    SMALL_IMAGE_POLICIES,
    STRATEGIES,
    Z_PRIORS,
)

MIN_IMAGE_SIZE = 16
# ModelConfig's training recipe (saved by `DCGAN.get_config`, not part of G's and D's shapes).
# Older run folders hold them in their "train" section; `Config.from_dict` moves them.
RECIPE_FIELDS = ("augment", "r1_gamma", "d_batch")
MAX_IMAGE_SIZE = 1024


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of the generator and the discriminator.

    Attributes:
        image_size: side of the square images, a power of two from 16 to 1024. G starts at 4x4 and
            doubles `log2(image_size) - 2` times; D halves as many times down to 4x4.
        channels: 1 (grayscale) or 3 (RGB).
        z_dim: size of the latent vector z.
        z_prior: "uniform" (the paper: U[-1, 1]) or "normal" (N(0, 1)).
        base_width: channels of G's last hidden layer and of D's first layer; each layer further
            from the image doubles it (paper64: 128 gives G 1024-512-256-128).
        max_width: optional cap on any layer's width (useful at 128 px and above).
        kernel_size: side of every convolution kernel (paper: 5, pytorch/examples: 4).
        batch_norm: BatchNorm in G and D except G's output and D's input layer (the paper's rule);
            False is the paper's ablation.
        synchronized_batch_norm: all-reduce BatchNorm statistics over replicas, so that a
            multi-replica step equals a single-device step on the same global batch.
        fused_batch_norm: compute training-mode BatchNorm with TF's fused kernel (same results
            as the Keras layer, fewer ops; ignored with synchronized BatchNorm).
        projection_bn: BatchNorm of G's 4x4 projection (with `batch_norm`): "channel" normalises
            each of its channels after the reshape (the paper, pytorch/examples); "feature"
            normalises each of the Dense layer's 4*4*C outputs on its own, before the reshape
            (the Chainer illustration blog; `blog64`).
        g_activation: hidden activation of G ("relu" in the paper).
        d_leaky_slope: negative slope of D's LeakyReLU, in [0, 1) (0.2 in the paper; 0 makes it
            a ReLU, the Chainer blog's ablation).
        init_stddev: standard deviation of the N(0, s) weight initialisation (0.02).
        bn_momentum: BatchNorm moving-average momentum (Keras convention: 0.9 keeps 90%).
        bn_epsilon: BatchNorm epsilon.
        augment: DiffAugment of D's inputs for small datasets, "" or "none" (the paper) or a
            comma-separated list of "translation", "cutout" (see `keras_dcgan.augment`). Part of
            the model's training recipe: `DCGAN.get_config` saves it.
        r1_gamma: weight of the R1 gradient penalty on D at real images (0: off, the paper;
            see `keras_dcgan.losses.r1_penalty`). Saved by `DCGAN.get_config` too.
        d_batch: how D's update sees the real and the fake batch: "separate" forward passes
            (the paper, the default) or one "concatenated" batch whose logits are split, so
            BatchNorm's statistics mix real and fake: the Chainer blog's ablation, a known
            failure mode (D wins). Part of the training recipe, like `augment`.
    """

    image_size: int = 64
    channels: int = 3
    z_dim: int = 100
    z_prior: str = "uniform"
    base_width: int = 128
    max_width: int | None = None
    kernel_size: int = 5
    batch_norm: bool = True
    synchronized_batch_norm: bool = False
    fused_batch_norm: bool = True
    projection_bn: str = "channel"
    g_activation: str = "relu"
    d_leaky_slope: float = 0.2
    init_stddev: float = 0.02
    bn_momentum: float = 0.9
    bn_epsilon: float = 1e-5
    augment: str = ""
    r1_gamma: float = 0.0
    d_batch: str = "separate"

    def __post_init__(self) -> None:
        size = self.image_size
        if not validation.is_int(size) or size < 1 or size & (size - 1):
            raise UserError(f"image_size must be a power of two; got {size!r}.")
        if not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
            raise UserError(
                f"image_size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE}; got {size}."
            )
        _set(self, "channels", options.check_channels(self.channels))
        options.check_z_prior(self.z_prior)
        validation.one_of(self.g_activation, G_ACTIVATIONS, "g_activation")
        for name in ("z_dim", "base_width", "kernel_size"):
            _set(self, name, validation.positive_int(getattr(self, name), name))
        _set(self, "max_width", validation.positive_int(self.max_width, "max_width", optional=True))
        for name in ("batch_norm", "synchronized_batch_norm", "fused_batch_norm"):
            validation.boolean(getattr(self, name), name)
        _set(self, "init_stddev", validation.number(self.init_stddev, "init_stddev", positive=True))
        _set(self, "augment", self.augment or "")
        options.parse_augment(self.augment)
        _set(self, "r1_gamma", options.check_r1_gamma(self.r1_gamma))
        options.check_projection_bn(self.projection_bn)
        _set(self, "d_leaky_slope", options.check_leaky_slope(self.d_leaky_slope))
        options.check_d_batch(self.d_batch)

    def architecture(self) -> dict[str, Any]:
        """The fields that shape G's and D's variables (all but the training recipe,
        `RECIPE_FIELDS`): a run folder continues only with the same architecture."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in RECIPE_FIELDS
        }

    @property
    def num_scales(self) -> int:
        """Number of stride-2 layers in G (and in D): log2(image_size) - 2."""
        return int(math.log2(self.image_size)) - 2

    def _width(self, doublings: int) -> int:
        width = self.base_width * 2**doublings
        return width if self.max_width is None else min(width, self.max_width)

    @property
    def g_widths(self) -> tuple[int, ...]:
        """Channels of G's hidden layers from the 4x4 projection upwards."""
        n = self.num_scales
        return tuple(self._width(n - 1 - i) for i in range(n))

    @property
    def d_widths(self) -> tuple[int, ...]:
        """Channels of D's convolutions from the image downwards (ends at 4x4)."""
        return tuple(self._width(i) for i in range(self.num_scales))


# Re-exported: older code imports these checks from here.
check_r1_gamma = options.check_r1_gamma
check_precision = options.check_precision


def _set(instance, name: str, value) -> None:
    """Stores a validated (canonical) value on a frozen dataclass instance."""
    object.__setattr__(instance, name, value)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        batch_size: the GLOBAL batch, split over replicas (paper: 128).
        learning_rate: Adam's learning rate, for G and for D (paper: 2e-4).
        beta_1: Adam's beta_1 (paper: 0.5; 0.9 blurs the samples).
        beta_2: Adam's beta_2 (0.999).
        epochs: passes over the data; ignored when `steps` is set.
        steps: total number of training iterations (one D update + one G update each).
        seed: seeds weight initialisation, noise and data shuffling.
        steps_per_execution: iterations per compiled call (forced to 1 with several replicas).
        num_preview: images in the per-epoch sample grid, drawn from fixed seeds 0..n-1.
        checkpoints_to_keep: how many checkpoints the run folder keeps.
        checkpoint_every_steps: a checkpoint every this many iterations, besides the one at the
            end of every epoch (0: only those).
        deterministic: TF's op determinism (`tf.config.experimental.enable_op_determinism`), so
            that a resumed run ends with exactly the weights of an uninterrupted one.
        max_divergence_retries: after a non-finite loss the last good checkpoint is restored and
            training retried with fresh noise; it stops with an error after this many retries.
        eval_metrics: sample-quality metrics computed during training, e.g. ("fid5k", "digits")
            (see `keras_dcgan.evaluation.metrics`).
        eval_every_epochs: how often (in epochs) the eval_metrics are computed.
        fid_network: the feature network of FID/KID/IS: "tf_inception_2015" (the 2015
            Inception graph of TTUR, pytorch-fid, clean-fid, StyleGAN2-ADA: comparable with
            published FIDs) or "keras_inception_v3" (Keras' InceptionV3: not comparable).
        inception_weights: that network's weights: "imagenet" (the Keras cache; the reference
            graph is downloaded at first use), a path (the reference graph's .pb or .tgz, or
            InceptionV3's .h5), or "random" (keras_inception_v3 only; smoke tests).
        precision: Keras dtype policy of G and D: "float32", "mixed_float16" (GPUs with float16
            tensor cores: T4, V100; each network's loss gets its own dynamic loss scale) or
            "mixed_bfloat16" (A100, L4, H100, TPUs, CPUs with AVX512_BF16). Weights, optimizer
            state, BatchNorm statistics, G's output, D's logits and the losses stay float32.
        loss_scale_growth_steps: under mixed_float16, a network's loss scale (from 2^15,
            halved at every overflowing step) doubles after this many finite steps in a row
            (Keras' default, 2000).
        jit_compile: compile the train step with XLA (off by default: slower on CPUs; not
            possible under MirroredStrategy nor with `deterministic`).
    """

    batch_size: int = 128
    learning_rate: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    epochs: int = 5
    steps: int | None = None
    seed: int = 0
    steps_per_execution: int = 1
    num_preview: int = 64
    checkpoints_to_keep: int = 3
    checkpoint_every_steps: int = 1000
    deterministic: bool = False
    max_divergence_retries: int = 3
    eval_metrics: tuple[str, ...] = ()
    eval_every_epochs: int = 1
    fid_network: str = "tf_inception_2015"
    inception_weights: str = "imagenet"
    precision: str = "float32"
    loss_scale_growth_steps: int = 2000
    jit_compile: bool = False

    def __post_init__(self) -> None:
        options.check_precision(self.precision)
        options.check_fid_network(self.fid_network)
        options.check_inception_weights(self.inception_weights, self.fid_network)
        validation.boolean(self.jit_compile, "jit_compile")
        validation.boolean(self.deterministic, "deterministic")
        if self.jit_compile and self.deterministic:
            raise UserError(
                "jit_compile and deterministic exclude each other: Keras turns XLA off under TF's "
                "op determinism; choose one."
            )
        _set(self, "eval_metrics", options.parse_metrics(self.eval_metrics))
        for name in ("checkpoint_every_steps", "max_divergence_retries", "seed"):
            _set(self, name, validation.non_negative_int(getattr(self, name), name))
        for name in ("batch_size", "epochs", "steps_per_execution", "num_preview",
                     "checkpoints_to_keep", "eval_every_epochs",
                     "loss_scale_growth_steps"):  # fmt: skip
            _set(self, name, validation.positive_int(getattr(self, name), name))
        _set(self, "steps", validation.positive_int(self.steps, "steps", optional=True))
        _set(self, "learning_rate",
             validation.number(self.learning_rate, "learning_rate", positive=True))  # fmt: skip
        for name in ("beta_1", "beta_2"):
            _set(self, name, validation.unit_interval(getattr(self, name), name))


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """How the dataset is read (see `keras_dcgan.data.ImageSource.dataset`).

    Attributes:
        data_dir: TensorFlow Datasets' data_dir (TFDS sources only).
        split: "train", "test" or "all" of the holdout split; for TFDS, a TFDS split.
        holdout_fraction: share of a folder's or LMDB's inputs held out as "test", chosen by a
            stable hash of each path or key (0: none).
        keep_list: a `dcgan dedup` keep-list; only the ids in it are used.
        cache: None, "memory", or a folder for a file cache of the decoded images.
        small_images: images smaller than the model's size: "upscale" or "skip".
        shuffle_buffer: element shuffle buffer after a cache (and for TFDS).
        max_image_pixels: the decoding budget of folders and LMDBs: an image with more pixels
            (width x height from its header, after the JPEG reduction) is skipped and counted
            ("above the pixel budget") without being decoded; None: only Pillow's own limit.
    """

    data_dir: str | None = None
    split: str = "train"
    holdout_fraction: float = 0.0
    keep_list: str | None = None
    cache: str | None = None
    small_images: str = "upscale"
    shuffle_buffer: int = 10_000
    max_image_pixels: int | None = 40_000_000  # = keras_dcgan.data.decode.DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        _set(self, "holdout_fraction",
             validation.unit_interval(self.holdout_fraction, "holdout_fraction"))  # fmt: skip
        options.check_small_images(self.small_images)
        _set(self, "shuffle_buffer", validation.positive_int(self.shuffle_buffer, "shuffle_buffer"))
        if not isinstance(self.split, str) or not self.split:
            raise UserError(f"split must be a non-empty string; got {self.split!r}.")
        _set(self, "max_image_pixels", validation.positive_int(
            self.max_image_pixels, "max_image_pixels", optional=True))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole experiment: preset name, dataset name, model, training and data settings."""

    preset: str
    dataset: str
    model: ModelConfig
    train: TrainConfig
    data: DataConfig = DataConfig()

    def with_overrides(self, **overrides: Any) -> Config:
        """Returns a copy with fields replaced; keys may name `dataset` or any model/train field.

        `None` values are ignored, so CLI flags left unset keep the preset's value.
        """
        top, model, train, data = {}, {}, {}, {}
        model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
        train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
        data_fields = {f.name for f in dataclasses.fields(DataConfig)}
        for key, value in overrides.items():
            if value is None:
                continue
            if key in ("dataset", "preset"):
                top[key] = value
            elif key in model_fields:
                model[key] = value
            elif key in train_fields:
                train[key] = value
            elif key in data_fields:
                data[key] = value
            else:
                raise UserError(f"Unknown config field {key!r}.")
        return dataclasses.replace(
            self,
            model=dataclasses.replace(self.model, **model),
            train=dataclasses.replace(self.train, **train),
            data=dataclasses.replace(self.data, **data),
            **top,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        model, train = dict(d["model"]), dict(d["train"])
        for name in RECIPE_FIELDS:  # run folders written when these were training settings
            if name in train:
                model.setdefault(name, train.pop(name))
        # Run folders written before fid_network measured with Keras' InceptionV3: a continued
        # run keeps computing the metrics its quality.jsonl already holds.
        train.setdefault("fid_network", "keras_inception_v3")
        return cls(
            preset=d["preset"],
            dataset=d["dataset"],
            model=ModelConfig(**model),
            train=TrainConfig(**train),
            data=DataConfig(**d.get("data", {})),  # run folders written before DataConfig
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Config:
        return cls.from_dict(json.loads(text))


def _paper64() -> Config:
    # Radford et al. LSUN / faces model: G 1024-512-256-128, 5x5 kernels, batch 128.
    return Config("paper64", "lsun/bedroom", ModelConfig(), TrainConfig())


def _faces64() -> Config:
    # The paper's faces (sec. 4.2) on CelebA's aligned faces: paper64's architecture and recipe.
    # The TFDS source crops celeb_a's 218x178 images to their central 108x108 square before
    # resizing to 64x64 (`keras_dcgan.data.sources.tfds.KNOWN_CROPS`: why 108).
    return Config("faces64", "celeb_a", ModelConfig(), TrainConfig())


def _paper32() -> Config:
    # ImageNet-1k 32x32: D 256-512-1024 gives the paper's 28,672 pooled feature dimensions. The
    # paper's images: min-resized, centre-cropped full-size ImageNet (TFDS imagenet2012, prepared
    # by hand: keras_dcgan.data.sources.tfds.IMAGENET_HELP; or a folder of ImageNet images).
    # --dataset=imagenet_resized/32x32 is the squashed variant (whole images resized to 32x32).
    return Config(
        "paper32",
        "imagenet2012",
        ModelConfig(image_size=32, base_width=256),
        TrainConfig(),
    )


def _half64() -> Config:
    # The widely used half width model of pytorch/examples: 512-256-128-64, 4x4 kernels.
    return Config(
        "half64", "lsun/bedroom", ModelConfig(base_width=64, kernel_size=4), TrainConfig()
    )


def _blog64() -> Config:
    # The Chainer illustration blog's recipe: the half width model (512-256-128-64, 4x4 kernels)
    # with Adam lr 1e-4 (beta1 0.5), weights N(0, 0.01) and a per-feature BatchNorm on G's
    # projection, 64x64 crops. Its data was a folder of illustrations: pass
    # --dataset=/data/illustrations (the default, like half64's, is LSUN bedrooms).
    return Config(
        "blog64",
        "lsun/bedroom",
        ModelConfig(base_width=64, kernel_size=4, init_stddev=0.01, projection_bn="feature"),
        TrainConfig(learning_rate=1e-4, beta_1=0.5),
    )


def _digits32() -> Config:
    # The embedded offline default: scikit-learn's 8x8 digits resized to 32x32 grayscale. The
    # paper's 5x5 kernels (51.4% confident samples after 6,000 steps with 4x4), with DiffAugment
    # and R1 (neither in the paper; gamma 0.1 was the best of 0.01-10 on the digits score). The
    # README's Benchmarks give the curves.
    return Config(
        "digits32",
        "digits",
        ModelConfig(
            image_size=32,
            channels=1,
            base_width=32,
            kernel_size=5,
            augment="translation,cutout",
            r1_gamma=0.1,
        ),  # fmt: skip
        TrainConfig(batch_size=64, epochs=100),
    )


def _tiny() -> Config:
    # For tests: a few thousand parameters.
    return Config(
        "tiny",
        "digits",
        ModelConfig(image_size=32, channels=3, z_dim=16, base_width=8, kernel_size=4),
        TrainConfig(batch_size=8, epochs=1, num_preview=16),
    )


PRESETS = {
    "paper64": _paper64,
    "faces64": _faces64,
    "paper32": _paper32,
    "half64": _half64,
    "blog64": _blog64,
    "digits32": _digits32,
    "tiny": _tiny,
}


def get_config(preset: str, **overrides: Any) -> Config:
    """Returns the named preset, with `overrides` applied (see `Config.with_overrides`)."""
    if preset not in PRESETS:
        raise UserError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESETS)}.")
    return PRESETS[preset]().with_overrides(**overrides)
