"""Environment that every task needs before it imports TensorFlow, wherever it runs.

The task program sets these itself (`launcher.task`); exported TFJob containers and TF_CONFIG commands
carry them too, so that a tool importing TensorFlow ahead of the program in the same process, or a user
reading the manifest, sees the same setting.
"""

# tf.compat.v1.layers (dense, batch_normalization, ...) and tf.compat.v1.keras on TF 2.16+ work only with
# the tf-keras package and this variable set before TensorFlow is imported (Keras 3 has no v1 layers).
TASK_ENV: dict[str, str] = {"TF_USE_LEGACY_KERAS": "1"}
