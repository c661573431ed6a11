"""A launcher for distributed graph-mode TensorFlow training: chief, workers and ps from one spec."""

from launcher.model_api import EVAL, PREDICT, TRAIN, Model, Serving

__all__ = ["Model", "Serving", "TRAIN", "EVAL", "PREDICT"]
