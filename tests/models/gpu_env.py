"""Test model: the probe model, and one line in the task's log saying which GPUs the task was given.

`gpu-env: {"CUDA_VISIBLE_DEVICES": ..., "TF_FORCE_GPU_ALLOW_GROWTH": ...}`, printed when the task imports
the model (every task does, the ps included), as the task's own environment has it (None: unset).
"""

import json
import os

from models.probe import build  # noqa: F401  (the model itself, and its flags)

print("gpu-env: " + json.dumps({name: os.environ.get(name)
                                for name in ("CUDA_VISIBLE_DEVICES", "TF_FORCE_GPU_ALLOW_GROWTH")}), flush=True)
