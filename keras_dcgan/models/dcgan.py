"""The DCGAN `keras.Model`: owns G and D, the noise SeedGenerator, and the train step."""

from __future__ import annotations

import logging

import keras
import tensorflow as tf

# Keras' MonitorCallback reads metric directions only inside this private container (Keras 3.15).
from keras.src.trainers.compile_utils import MetricsList

from keras_dcgan import augment as augment_lib
from keras_dcgan import latent, losses, options
from keras_dcgan.data.preprocessing import check_dataset, check_images_spec, image_part
from keras_dcgan.errors import UserError
from keras_dcgan.logs import notice
from keras_dcgan.models.discriminator import Discriminator
from keras_dcgan.models.generator import Generator
from keras_dcgan.networks import NETWORKS_HELP, generator_z_dim

log = logging.getLogger(__name__)
_FROM_CONFIG = object()  # an argument left out: the ModelConfig's value


def default_optimizer(
    learning_rate: float = 2e-4, beta_1: float = 0.5, beta_2: float = 0.999, name: str = "adam"
):
    """The paper's Adam (lr 2e-4, beta1 0.5)."""
    return keras.optimizers.Adam(
        learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, name=name
    )


def _output_shape(model, input_shape, what: str) -> tuple:
    try:
        spec = model.compute_output_spec(keras.KerasTensor(input_shape))
    except Exception as e:  # noqa: BLE001 (whatever the user's model raises)
        raise UserError(
            f"The {what} {model.name!r} fails on inputs of shape {input_shape}: "
            f"{str(e).strip().splitlines()[0][:200]} {NETWORKS_HELP}"
        ) from None
    if not hasattr(spec, "shape"):
        raise UserError(f"The {what} {model.name!r} must return one tensor. {NETWORKS_HELP}")
    return tuple(spec.shape)


def generator_image_shape(generator, z_dim: int) -> tuple[int, int, int]:
    """(S, S, C) of G's images: from the package's `Generator`, else from its output shape."""
    if hasattr(generator, "image_size") and hasattr(generator, "channels"):
        return (generator.image_size, generator.image_size, generator.channels)
    shape = _output_shape(generator, (None, z_dim), "generator")
    size = shape[1] if len(shape) == 4 else None
    if (
        len(shape) != 4
        or size != shape[2]
        or not size
        or size & (size - 1)
        or shape[3] not in (1, 3)
    ):
        raise UserError(
            f"The generator {generator.name!r} maps [N, {z_dim}] to shape {shape}. {NETWORKS_HELP}"
        )
    return (int(size), int(size), int(shape[3]))


def check_discriminator(discriminator, image_shape) -> None:
    """Raises a UserError unless D takes G's images and gives [N, 1] logits."""
    if hasattr(discriminator, "image_size") and hasattr(discriminator, "channels"):
        takes = (discriminator.image_size, discriminator.image_size, discriminator.channels)
        if takes != tuple(image_shape):
            raise UserError(
                "Generator and discriminator disagree on the image shape: "
                f"G makes {image_shape[0]}px x {image_shape[2]}, "
                f"D takes {takes[0]}px x {takes[2]}."
            )
        return
    shape = _output_shape(discriminator, (None, *image_shape), "discriminator")
    if len(shape) != 2 or shape[1] != 1:
        size, _, channels = image_shape
        raise UserError(
            f"The discriminator {discriminator.name!r} maps images [N, {size}, {size}, "
            f"{channels}] to shape {shape}, not one logit per image [N, 1]. {NETWORKS_HELP}"
        )


def _run_optimizer(tc, name: str):
    """The paper's Adam with a run's settings (a `TrainConfig`); under mixed_float16 in a
    `LossScaleOptimizer` with the run's growth interval."""
    optimizer = default_optimizer(tc.learning_rate, tc.beta_1, tc.beta_2, name)
    if tc.precision != "mixed_float16":
        return optimizer
    return keras.optimizers.LossScaleOptimizer(
        optimizer, dynamic_growth_steps=tc.loss_scale_growth_steps
    )


class GANOptimizers:
    """`DCGAN.optimizer`: G's and D's optimizers, seen as one by Keras' callbacks.

    Keras' `LearningRateScheduler` and `ReduceLROnPlateau` act on each optimizer of
    `model.optimizer.optimizers` (so `LearningRateScheduler(lambda epoch, lr: lr * 0.5)` halves
    G's rate and D's, each from its own value) and log `learning_rate_<optimizer name>`
    (`learning_rate_g_optimizer`, `learning_rate_d_optimizer` for the default optimizers).
    `learning_rate` reads the rate both share (an AttributeError when they differ) and sets both;
    `iterations` counts training iterations (G updates), the step TensorBoard logs against.
    """

    def __init__(self, gan: DCGAN):
        self._gan = gan

    @property
    def optimizers(self) -> list:
        # The optimizers themselves, not their float16 LossScaleOptimizer wrappers (whose
        # learning rate is the inner one's): the logged names stay g_optimizer, d_optimizer.
        return [_unscaled(self._gan.g_optimizer), _unscaled(self._gan.d_optimizer)]

    @property
    def built(self) -> bool:
        return all(o.built for o in self.optimizers)

    def build(self, variables=None) -> None:
        """Builds each optimizer on its own network's variables (`variables` is ignored)."""
        self._gan._build_optimizers()

    @property
    def iterations(self):
        return self._gan.g_optimizer.iterations

    @property
    def variables(self) -> list:
        return [v for o in self.optimizers for v in o.variables]

    @property
    def learning_rate(self) -> float:
        g, d = (float(keras.ops.convert_to_numpy(o.learning_rate)) for o in self.optimizers)
        if g != d:
            raise AttributeError(
                f"G's and D's learning rates differ ({g:g}, {d:g}): read "
                "gan.g_optimizer.learning_rate and gan.d_optimizer.learning_rate."
            )
        return g

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        for optimizer in self.optimizers:
            optimizer.learning_rate = value

    def __repr__(self):
        return f"GANOptimizers(g={self._gan.g_optimizer!r}, d={self._gan.d_optimizer!r})"


class _Trackers(MetricsList):
    """The DCGAN's metrics, wrapped as Keras' own compiled metrics are: its callbacks that
    monitor a quantity (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau) look inside such a
    list for a metric's `_direction`, so that `monitor="g_loss"` needs no `mode="min"`."""

    def result(self):
        return self.get_result()


# ------------------------------------------------------------------------- loss scaling
# Under `mixed_float16` each network's optimizer is a `keras.optimizers.LossScaleOptimizer` with
# its own dynamic scale. Keras' `Model.compile` wraps only `model.optimizer`, and the optimizer
# alone is not enough: it DIVIDES the gradients by its scale in `apply`, so the train step must
# multiply the loss by the same scale (`scale_loss`) before taking gradients. A step whose
# gradients are not finite is skipped for that network (weights, Adam moments and `iterations`
# untouched) and its scale halved; after `dynamic_growth_steps` finite steps the scale doubles.


def with_loss_scaling(optimizer, network):
    """`optimizer`, wrapped in a `LossScaleOptimizer` when `network` computes in float16 (and it
    is not one already); unchanged otherwise (float32 and bfloat16 need no loss scaling)."""
    needs_scaling = network.dtype_policy.compute_dtype == "float16"
    if needs_scaling and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer, name=f"{network.name}_loss_scale")
    return optimizer


def _unscaled(optimizer):
    return getattr(optimizer, "inner_optimizer", optimizer)


def _scale_loss(optimizer, loss):
    """`loss` times the optimizer's current loss scale (the loss itself without loss scaling)."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer.scale_loss(loss)
    return loss


def _loss_scale(optimizer):
    """The optimizer's current loss scale as a float32 tensor (None without loss scaling)."""
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return tf.convert_to_tensor(optimizer.dynamic_scale.value)
    return None


def _apply_gradients(optimizer, grads, variables):
    """`optimizer.apply_gradients`, with every replica agreeing on whether to skip the step.

    Keras' `LossScaleOptimizer` checks the gradients for inf/NaN BEFORE the inner optimizer
    sums them over replicas, and under MirroredStrategy it decides from the first replica's
    check only: a step that overflowed on another replica would be applied, its non-finite sum
    written into the weights of all. So the non-finite flag is summed over replicas first, and
    where any replica overflowed, a NaN is added to this replica's first gradient: every replica
    then makes the same (skipping) decision.
    """
    ctx = tf.distribute.get_replica_context()
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    if scaled and ctx is not None and ctx.num_replicas_in_sync > 1:
        grads = list(grads)
        overflowed = tf.cast(tf.logical_not(optimizer.check_finite(grads)), tf.float32)
        overflowed = ctx.all_reduce(tf.distribute.ReduceOp.SUM, overflowed)
        first = next(i for i, g in enumerate(grads) if g is not None)
        poison = tf.where(overflowed > 0, float("nan"), 0.0)
        grads[first] = grads[first] + tf.cast(poison, grads[first].dtype)
    optimizer.apply_gradients(zip(grads, variables, strict=True))


def _check_jit_compile(jit_compile, strategy) -> None:
    """A clear error for XLA under tf.distribute with several replicas, which TF cannot run."""
    if jit_compile is True and strategy.num_replicas_in_sync > 1:
        raise UserError(
            f"jit_compile=True does not work with {strategy.num_replicas_in_sync} replicas "
            f"({type(strategy).__name__}): XLA compiles the step for one device while each "
            "replica's variables live on its own device (TF fails with 'Trying to access "
            "resource ... located in device'). Use jit_compile=False with several replicas."
        )


@keras.saving.register_keras_serializable(package="keras_dcgan")
class DCGAN(keras.Model):
    """A generator and a discriminator trained adversarially with `fit()`.

    One training iteration (`train_step`), on a batch of real images x:
      1. z ~ prior; fake = G(z) (training mode, recorded for G's gradient).
      2. D update: real and fake batches in SEPARATE forward passes (BatchNorm statistics per
         batch, as the paper; one concatenated batch gives a D that wins everything), loss
         -log D(x) - log(1 - D(G(z))). `d_batch="concatenated"` runs D once on
         concat([real, fake]) instead and splits the logits: BatchNorm's statistics then mix
         real and fake. That is the Chainer illustration blog's ablation, kept to show a KNOWN
         FAILURE MODE (D wins, G collapses), not a recipe; under tf.distribute each replica
         concatenates its own real and fake rows.
      3. G update: the just-updated D judges the same fakes; non-saturating loss -log D(G(z)).
         Only G's weight gradients are requested, so TF never computes D's (about 10% saved).
    Losses are computed from logits. Metrics: d_loss, g_loss, d_real = mean D(x),
    d_fake = mean D(G(z)) (before the D update).

    Under `tf.distribute`, each replica draws the noise of the whole global batch from the same
    seed state and keeps its own slice, so a step on N replicas sees exactly the noise of a step on
    one device (and replicas never share noise); losses are divided by the global batch once.

    Mixed precision: G and D compute in their dtype policy (`precision`, else the global Keras
    policy); under `mixed_float16` each network's loss is multiplied by its own optimizer's
    dynamic loss scale before the gradients are taken (`compile` wraps the optimizers in
    `keras.optimizers.LossScaleOptimizer`), and the step logs `d_loss_scale`/`g_loss_scale`.

    With `augment` (e.g. "translation,cutout"; not in the paper, off by default), every image D
    sees in steps 2 and 3, real or generated, is first randomly transformed by
    `keras_dcgan.augment` (DiffAugment), drawn like the noise; for small datasets.

    Args:
        generator: a `Generator` (or its serialized config).
        discriminator: a `Discriminator` of the same image size and channels.
        z_prior: "uniform" (U[-1, 1], the paper) or "normal".
        seed: seed of the training noise (and of the augmentation draws).
        augment: DiffAugment policy of D's inputs, "" or "none" (the paper) or a comma-separated
            list of `keras_dcgan.augment.POLICIES`.
        r1_gamma: weight of the R1 penalty on D's gradient at the real images it sees
            (`losses.r1_penalty`); 0 (the paper) turns it off. With `d_batch="concatenated"` it
            is the gradient of the real rows' logits at the real half of the concatenated batch.
        d_batch: "separate" (the paper, the default) or "concatenated" (the failure mode
            above); see `keras_dcgan.options.D_BATCHES`.

    Example:
    ```python
    gan = DCGAN(Generator(...), Discriminator(...), seed=0)
    gan.compile()  # Adam(2e-4, beta_1=0.5) for both
    gan.fit(dataset, epochs=5)  # batches of float32 images in [-1, 1]
    samples = gan.sample(seeds=range(64))  # float32 [64, H, W, C] in [-1, 1]
    ```
    """

    def __init__(
        self,
        generator,
        discriminator,
        z_prior: str = "uniform",
        seed=None,
        augment: str = "",
        r1_gamma: float = 0.0,
        d_batch: str = "separate",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(generator, dict):
            generator = keras.saving.deserialize_keras_object(generator)
        if isinstance(discriminator, dict):
            discriminator = keras.saving.deserialize_keras_object(discriminator)
        self._z_dim = generator_z_dim(generator)
        self._image_shape = generator_image_shape(generator, self._z_dim)
        check_discriminator(discriminator, self._image_shape)
        options.check_z_prior(z_prior)
        self.generator = generator
        self.discriminator = discriminator
        self.z_prior = z_prior
        self.seed = seed
        self.augment = augment or ""
        self._augment_policy = options.parse_augment(self.augment)
        self.r1_gamma = options.check_r1_gamma(r1_gamma)
        self.d_batch = options.check_d_batch(d_batch)
        self.seed_generator = keras.random.SeedGenerator(seed, name="noise")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        for loss_tracker in (self.d_loss_tracker, self.g_loss_tracker):
            loss_tracker._direction = "down"  # lower is better (see `_Trackers`)
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")
        # Logged only when the penalty is on: runs without it log what they did before.
        self.r1_tracker = keras.metrics.Mean(name="r1_penalty") if self.r1_gamma else None
        self.g_optimizer = None
        self.d_optimizer = None

    @classmethod
    def from_model_config(
        cls, mc, seed=None, augment=_FROM_CONFIG, r1_gamma=_FROM_CONFIG,
        precision: str | None = None, d_batch=_FROM_CONFIG,
    ) -> DCGAN:  # fmt: skip
        """Builds the (uncompiled) DCGAN that a `keras_dcgan.config.ModelConfig` describes: the
        architecture and its training recipe (z_prior, augment, r1_gamma, d_batch).

        `augment`, `r1_gamma`, `d_batch`: replace the config's when given. `precision`: the dtype
        policy of G and D (see `keras_dcgan.options.PRECISIONS`); None: the global Keras policy.
        For the whole model of a run (seed, precision, optimizers), use
        `DCGAN.from_config(config)`.
        """
        dtype = None if precision is None else options.check_precision(precision)
        return cls(
            Generator.from_model_config(mc, name="generator", dtype=dtype),
            Discriminator.from_model_config(mc, name="discriminator", dtype=dtype),
            z_prior=mc.z_prior,
            seed=seed,
            augment=mc.augment if augment is _FROM_CONFIG else augment,
            r1_gamma=mc.r1_gamma if r1_gamma is _FROM_CONFIG else r1_gamma,
            d_batch=mc.d_batch if d_batch is _FROM_CONFIG else d_batch,
            dtype=dtype,
        )

    @classmethod
    def from_config(cls, config, custom_objects=None) -> DCGAN:
        """The DCGAN of `config`: a `keras_dcgan.config.Config` (an experiment, e.g.
        `get_config("paper64")`) or the dict of `get_config()` (Keras serialization).

        From a `Config`, the model is the one its run trains: the architecture, the training
        recipe (augment, r1_gamma), the seed, the precision, and compiled with the config's Adam
        for G and D (with its loss scaling under mixed_float16) and jit_compile (call it inside
        `strategy.scope()` under tf.distribute, then `build()`).
        """
        from keras_dcgan.config import Config

        if not isinstance(config, Config):
            return super().from_config(config, custom_objects=custom_objects)
        tc = config.train
        steps_per_execution = tc.steps_per_execution
        if tf.distribute.get_strategy().num_replicas_in_sync > 1 and steps_per_execution > 1:
            log.warning("steps_per_execution > 1 fails with several replicas; using 1.")
            steps_per_execution = 1
        gan = cls.from_model_config(config.model, seed=tc.seed, precision=tc.precision)
        gan.compile(
            g_optimizer=_run_optimizer(tc, "g_optimizer"),
            d_optimizer=_run_optimizer(tc, "d_optimizer"),
            steps_per_execution=steps_per_execution,
            jit_compile=tc.jit_compile,
        )
        return gan

    # ----------------------------------------------------------------------------- shapes
    @property
    def z_dim(self) -> int:
        return self._z_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._image_shape

    # ------------------------------------------------------------------ build and compile
    @property
    def optimizer(self) -> GANOptimizers | None:
        """G's and D's optimizers together (see `GANOptimizers`); None before `compile()`."""
        if getattr(self, "g_optimizer", None) is None:
            return None
        return GANOptimizers(self)

    @optimizer.setter
    def optimizer(self, value):
        # keras.Model.compile assigns the optimizer it was given, None here (see `compile`).
        if value is not None:
            raise UserError(
                "A DCGAN has two optimizers: set them with compile(g_optimizer=, d_optimizer=)."
            )

    def build(self, input_shape=None):
        """Creates G's and D's variables (and the optimizers', once compiled).

        Call inside `strategy.scope()` before `fit()` under tf.distribute: a lazily built model
        fails there with "You must feed a value for placeholder tensor".
        """
        self.generator.build()
        self.discriminator.build()
        self.built = True
        self._build_optimizers()

    def _build_optimizers(self):
        if not self.built:
            return
        if self.g_optimizer is not None and not self.g_optimizer.built:
            self.g_optimizer.build(self.generator.trainable_variables)
        if self.d_optimizer is not None and not self.d_optimizer.built:
            self.d_optimizer.build(self.discriminator.trainable_variables)

    def compile(self, g_optimizer=None, d_optimizer=None, **kwargs):
        """Sets the two optimizers (default: the paper's Adam for each).

        An optimizer whose network computes in float16 is wrapped in a `LossScaleOptimizer`
        (`with_loss_scaling`); ones you wrap yourself are kept. `kwargs` go to
        `keras.Model.compile` (e.g. `steps_per_execution`, `run_eagerly`, `jit_compile`, False by
        default); it gets `optimizer=None`, because its default would create and save a stray
        RMSprop.
        """
        for key in ("optimizer", "loss", "metrics"):
            if key in kwargs:
                raise UserError(
                    f"DCGAN.compile() takes g_optimizer and d_optimizer, not {key!r}: the losses "
                    "and metrics are fixed by the train step."
                )
        kwargs.setdefault("jit_compile", False)
        _check_jit_compile(kwargs["jit_compile"], self.distribute_strategy)
        # Keras' own loss scaling would wrap `self.optimizer`, which is not one optimizer here;
        # `with_loss_scaling` wraps each network's optimizer instead.
        keras.Model.compile(self, optimizer=None, auto_scale_loss=False, **kwargs)
        self.g_optimizer = keras.optimizers.get(
            g_optimizer or default_optimizer(name="g_optimizer")
        )
        self.d_optimizer = keras.optimizers.get(
            d_optimizer or default_optimizer(name="d_optimizer")
        )
        if _unscaled(self.g_optimizer) is _unscaled(self.d_optimizer):
            raise UserError("G and D need two distinct optimizer instances.")
        self.g_optimizer = with_loss_scaling(self.g_optimizer, self.generator)
        self.d_optimizer = with_loss_scaling(self.d_optimizer, self.discriminator)
        self._gan_compile_kwargs = {
            k: kwargs[k] for k in ("steps_per_execution", "jit_compile") if k in kwargs
        }
        self._build_optimizers()

    def get_compile_config(self):
        if self.g_optimizer is None:
            return {}
        return {
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            **self._gan_compile_kwargs,
        }

    def compile_from_config(self, config):
        if not config:
            return
        self.compile(
            g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
            d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
            **{k: v for k, v in config.items() if k not in ("g_optimizer", "d_optimizer")},
        )

    def get_build_config(self):
        return {"built": bool(self.built)}

    def build_from_config(self, config):
        if config.get("built"):
            self.build()

    def get_config(self):
        config = super().get_config()
        config.update(
            generator=keras.saving.serialize_keras_object(self.generator),
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            z_prior=self.z_prior,
            seed=self.seed,
            augment=self.augment,
            r1_gamma=self.r1_gamma,
            d_batch=self.d_batch,
        )
        return config

    # The DCGAN's own state in a `.keras` file (its `vars` entry; G, D, the optimizers and the
    # metrics have their own entries). It creates no weights of its own (no `add_weight`: the
    # weights are G's and D's; tests/test_compat.py checks), so that state is the noise
    # SeedGenerator's int state [2] alone, which Keras would drop (it is not a layer weight):
    # saved, so that training resumed from a saved model draws the same noise. Keras' keys for
    # own weights ("0", "1", ...) therefore never held anything for a DCGAN; they are ignored.
    def save_own_variables(self, store):
        store["noise_seed_state"] = self.seed_generator.state.numpy()

    def load_own_variables(self, store):
        if "noise_seed_state" in store:
            self.seed_generator.state.assign(store["noise_seed_state"])

    # ------------------------------------------------------------------------- export
    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None,
               **kwargs):  # fmt: skip
        """Writes the generator as a TF Serving SavedModel at `filepath` (a new folder, e.g.
        `exports/dcgan/1`): the same SavedModel as `dcgan export`, with the signatures
        `serving_default` (z), `from_seeds` and `interpolate` (see `keras_dcgan.serving.export`).

        `kwargs` are those of `keras_dcgan.serving.export.write_saved_model` (max_batch,
        model_name, warmup). For a new version under a TF Serving base path, use
        `keras_dcgan.serving.export.export_generator(gan, export_base)`.
        """
        from keras_dcgan.serving.export import write_saved_model

        if format != "tf_saved_model":
            raise UserError(
                f"DCGAN.export writes TF Serving's SavedModel (format='tf_saved_model'); got "
                f"format={format!r}. For another format export the generator itself: "
                "gan.generator.export(path, format=...)."
            )
        if input_signature is not None:
            raise UserError(
                "DCGAN.export has fixed signatures (z, seeds, interpolate); input_signature "
                "cannot be set. Export gan.generator for a signature of your own."
            )
        path = write_saved_model(self, filepath, **kwargs)
        if verbose:
            notice(log, "Saved the generator's serving SavedModel at %s", path)
        return path

    # ----------------------------------------------------------------------------- sampling
    def call(self, z, training=False):
        """G(z): float32 [N, z_dim] -> images float32 [N, H, W, C] in [-1, 1]."""
        return self.generator(z, training=training)

    def sample(self, num: int | None = None, seeds=None) -> tf.Tensor:
        """Images from integer seeds (default: seeds 0..num-1), BatchNorm in inference mode."""
        if seeds is None:
            if num is None:
                raise UserError("Give the number of samples or their seeds.")
            seeds = range(num)
        z = latent.latents_from_seeds(list(seeds), self.z_dim, self.z_prior)
        return self.generator(z, training=False)

    # ------------------------------------------------------------------------- training
    @property
    def metrics(self):
        """One `_Trackers` list: d_loss, g_loss, d_real, d_fake (and r1_penalty when on)."""
        trackers = [
            self.d_loss_tracker,
            self.g_loss_tracker,
            self.d_real_tracker,
            self.d_fake_tracker,
        ]
        if self.r1_tracker is not None:
            trackers.append(self.r1_tracker)
        return [_Trackers(trackers, name="dcgan_metrics")]

    def _real_images(self, data):
        """The image tensor of a batch: images, (images, labels...), or {'image': ...}."""
        data = image_part(data)
        # Checked when the step is traced: one line naming the problem, not a shape error
        # deep inside D.
        check_images_spec(data.shape, data.dtype, self.image_shape, "the input")
        return tf.cast(data, tf.float32)

    @staticmethod
    def _replicas():
        ctx = tf.distribute.get_replica_context()
        return ctx.num_replicas_in_sync if ctx is not None else 1

    @staticmethod
    def _replica_slice(values, batch_size):
        """This replica's rows of `values`, drawn for the global batch."""
        ctx = tf.distribute.get_replica_context()
        if ctx is None or ctx.num_replicas_in_sync == 1:
            return values
        start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * batch_size
        return values[start : start + batch_size]

    def _replica_noise(self, batch_size):
        """z for this replica's slice of the global batch (see the class docstring)."""
        shape = (batch_size * self._replicas(), self.z_dim)
        if self.z_prior == "uniform":
            z = keras.random.uniform(shape, -1.0, 1.0, seed=self.seed_generator)
        else:
            z = keras.random.normal(shape, seed=self.seed_generator)
        return self._replica_slice(z, batch_size)

    def _augment(self, images):
        """D's view of `images`: DiffAugment drawn for the global batch, this replica's slice."""
        if not self._augment_policy:
            return images
        batch_size = tf.shape(images)[0]
        params = augment_lib.draw(
            self._augment_policy, batch_size * self._replicas(), self.image_shape[0],
            self.seed_generator,
        )  # fmt: skip
        params = {k: self._replica_slice(v, batch_size) for k, v in params.items()}
        return augment_lib.apply(images, self._augment_policy, params)

    def _discriminate(self, real, fake):
        """D's logits of `real` and of `fake` (D's views, augmented already) and, with
        `r1_gamma`, the R1 penalty of the real images (else None): two forward passes, or one
        on concat([real, fake]) with `d_batch="concatenated"`."""
        if self.d_batch == "separate":
            real_logits, r1 = self._discriminate_real(real)
            return real_logits, self.discriminator(fake, training=True), r1
        num_real = tf.shape(real)[0]
        logits, r1 = self._discriminate_real(tf.concat([real, fake], axis=0), num_real)
        return logits[:num_real], logits[num_real:], r1

    def _discriminate_real(self, images, num_real=None):
        """D's logits of `images` and, with `r1_gamma`, the R1 penalty of its first `num_real`
        rows, the real images (all rows when None), else None.

        The penalty's gradient is of the replica's summed real logits: each logit depends on its
        own image (and, through BatchNorm's batch statistics, a little on the others), as in the
        reference implementations. D's tape records this inner gradient, so D's update
        differentiates through it (a second-order gradient).
        """
        if not self.r1_gamma:
            return self.discriminator(images, training=True), None
        with tf.GradientTape() as tape:
            tape.watch(images)
            logits = self.discriminator(images, training=True)
            real_logits = logits if num_real is None else logits[:num_real]
            # Under float16, this inner gradient is loss-scaled like D's (and unscaled below),
            # so that it does not underflow either.
            total = _scale_loss(self.d_optimizer, tf.reduce_sum(real_logits))
        gradient = tape.gradient(total, images)
        if num_real is not None:
            gradient = gradient[:num_real]
        scale = _loss_scale(self.d_optimizer)
        if scale is not None:
            gradient = gradient / scale
        return logits, losses.r1_penalty(gradient, self.r1_gamma)

    def train_step(self, data):
        real = self._real_images(data)
        # Every state change of the step (noise seed, weights, optimizer counters, metrics)
        # waits for the batch. A dataset of unknown length ends with a get_next that fails, and
        # without this the ops that do not read the batch (the seed and iteration counters) would
        # still run in that failed step.
        with tf.control_dependencies([real]):
            return self._train_step(real)

    def _train_step(self, real):
        z = self._replica_noise(tf.shape(real)[0])
        g_vars = self.generator.trainable_variables
        d_vars = self.discriminator.trainable_variables

        with tf.GradientTape() as g_tape:
            fake = self.generator(z, training=True)
            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    real_logits, fake_logits, r1 = self._discriminate(
                        self._augment(real), self._augment(fake)
                    )
                    d_per_example = losses.discriminator_loss(real_logits, fake_logits)
                    if r1 is not None:
                        d_per_example += r1
                    # Gradients are SUMMED over replicas: divide by the global batch, once.
                    d_loss = tf.nn.compute_average_loss(d_per_example)
                    d_loss = _scale_loss(self.d_optimizer, d_loss)  # float16: D's loss scale
                d_grads = d_tape.gradient(d_loss, d_vars)
                _apply_gradients(self.d_optimizer, d_grads, d_vars)
            g_logits = self.discriminator(self._augment(fake), training=True)
            g_per_example = losses.generator_loss(g_logits)
            g_loss = tf.nn.compute_average_loss(g_per_example)  # global batch, as above
            g_loss = _scale_loss(self.g_optimizer, g_loss)  # float16: G's own loss scale
        g_grads = g_tape.gradient(g_loss, g_vars)
        _apply_gradients(self.g_optimizer, g_grads, g_vars)

        # Metrics are per-replica means (unscaled); Mean's variables sum over replicas.
        self.d_loss_tracker.update_state(tf.reduce_mean(d_per_example))
        self.g_loss_tracker.update_state(tf.reduce_mean(g_per_example))
        self.d_real_tracker.update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
        self.d_fake_tracker.update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
        if r1 is not None:
            self.r1_tracker.update_state(tf.reduce_mean(r1))
        results = self.get_metrics_result()
        for name, optimizer in (
            ("d_loss_scale", self.d_optimizer),
            ("g_loss_scale", self.g_optimizer),
        ):
            if (scale := _loss_scale(optimizer)) is not None:
                results[name] = scale  # after this step's update; logged under float16 only
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3's fit() fails to reduce scalar metrics over workers (keras#20585,
            # tensorflow#72388); shape (1,) goes through.
            results = {k: tf.reshape(v, [1]) for k, v in results.items()}
        return results

    def fit(self, x=None, *args, **kwargs):
        """`keras.Model.fit`, after a static check of what the dataset yields (shape, dtype,
        emptiness) so that bad input fails with one line naming the problem."""
        check_dataset(x, self.image_shape)
        if self.g_optimizer is None:
            raise UserError("Call compile() before fit().")
        if not self.built:
            # Build in the model's strategy scope (see `build`).
            with self.distribute_strategy.scope():
                self.build()
        if isinstance(x, tf.data.Dataset) and len(args) < 8:  # shuffle not given positionally
            # A dataset shuffles itself; Keras' default shuffle=True only earns a warning.
            kwargs.setdefault("shuffle", False)
        return super().fit(x, *args, **kwargs)

    def test_step(self, data):
        raise NotImplementedError(
            "DCGAN has no validation loss; measure samples with keras_dcgan.evaluation instead."
        )
