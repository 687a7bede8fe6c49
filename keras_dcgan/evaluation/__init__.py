"""Measuring samples: the offline digits metric (FID/KID/IS come with the metrics issue)."""

from keras_dcgan.evaluation.digits import DigitsScorer

__all__ = ["DigitsScorer"]
