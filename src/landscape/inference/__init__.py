"""Inference from a model bundle: the :class:`Predictor` used by predict, evaluate and the index."""

from .predictor import Prediction, Predictor

__all__ = ["Prediction", "Predictor"]
