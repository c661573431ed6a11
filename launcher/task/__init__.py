"""The task program, `python -m launcher.task`: one process of the cluster, inside TensorFlow.

Everything that imports TensorFlow lives here; the launcher never imports this package.
"""

import os

from launcher.cluster.task_env import TASK_ENV

# Before anything imports TensorFlow (this package runs before the model module and the program): on TF
# 2.16+ tf.compat.v1.layers and tf.compat.v1.keras need tf-keras, which TensorFlow uses only when
# TF_USE_LEGACY_KERAS is set at its import. A value the user set wins.
for _name, _value in TASK_ENV.items():
    os.environ.setdefault(_name, _value)
