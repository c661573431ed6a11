"""Test model: the probe model, and one line in the task's log saying which GPUs the task was given.

`gpu-env: {"CUDA_VISIBLE_DEVICES": ..., "TF_FORCE_GPU_ALLOW_GROWTH": ...}`, printed when the task builds its
training graph (each process of a chief or worker does, a forked one too: a warm process imports the model
once for all its tasks), as the task's own environment has it (None: unset).
"""

import json
import os

import launcher
from models.probe import build as probe_build  # the model itself, and its flags


def env_line() -> str:
    return "gpu-env: " + json.dumps({name: os.environ.get(name)
                                     for name in ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH")})


def build(mode: str) -> launcher.Model:
    if mode == launcher.TRAIN:
        print(env_line(), flush=True)
    return probe_build(mode)
