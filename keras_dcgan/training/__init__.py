"""Training runs: strategy, callbacks, checkpoints and `train(config, model_dir)`."""

from keras_dcgan.training.checkpoints import export_run, load_trained
from keras_dcgan.training.strategy import auto_precision, get_strategy
from keras_dcgan.training.trainer import TrainingDiverged, TrainResult, train

__all__ = [
    "TrainingDiverged",
    "TrainResult",
    "auto_precision",
    "export_run",
    "get_strategy",
    "load_trained",
    "train",
]
