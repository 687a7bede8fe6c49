"""Run-folder checkpoints: G, D, both optimizers, the noise seed state and the epoch counter."""

from __future__ import annotations

import os

import tensorflow as tf

from keras_dcgan.config import Config
from keras_dcgan.models import DCGAN

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


def make_checkpoint(gan: DCGAN, epoch: tf.Variable) -> tf.train.Checkpoint:
    """A tf.train.Checkpoint of everything that training state is made of.

    G and D are listed by their variables (weights AND BatchNorm moving statistics), in their
    deterministic creation order: Keras 3 keeps layers held in Python lists out of TF's object
    graph, so `Checkpoint(generator=model)` would save nothing of them but what the optimizer
    happens to reference (the trainable weights, not the BatchNorm statistics).
    """
    return tf.train.Checkpoint(
        generator=list(gan.generator.variables),
        discriminator=list(gan.discriminator.variables),
        g_optimizer=gan.g_optimizer,
        d_optimizer=gan.d_optimizer,
        noise_seed_state=gan.seed_generator.state,
        epoch=epoch,
    )


def checkpoint_manager(
    checkpoint: tf.train.Checkpoint, model_dir: str, max_to_keep: int = 3
) -> tf.train.CheckpointManager:
    return tf.train.CheckpointManager(
        checkpoint, os.path.join(model_dir, CHECKPOINT_DIR), max_to_keep=max_to_keep
    )


def read_config(model_dir: str) -> Config:
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{model_dir} is not a run folder: it has no {CONFIG_FILE}.")
    with open(path) as f:
        return Config.from_json(f.read())


def write_config(config: Config, model_dir: str) -> str:
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, CONFIG_FILE)
    with open(f"{path}.tmp", "w") as f:
        f.write(config.to_json() + "\n")
    os.replace(f"{path}.tmp", path)
    return path


def load_trained(model_dir: str) -> tuple[Config, DCGAN]:
    """Rebuilds the DCGAN of a run folder from its config and its latest checkpoint."""
    config = read_config(model_dir)
    gan = DCGAN.from_model_config(config.model, seed=config.train.seed)
    gan.compile()
    gan.build()
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_DIR))
    if latest is None:
        raise FileNotFoundError(f"{model_dir} holds no checkpoint yet.")
    make_checkpoint(gan, epoch).restore(latest).assert_existing_objects_matched()
    return config, gan
