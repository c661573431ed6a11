"""A launcher for distributed graph-mode TensorFlow training: chief, workers and ps from one spec."""

from launcher.model_api import EVAL, TRAIN, Model

__all__ = ["Model", "TRAIN", "EVAL"]
