"""The task program, `python -m launcher.task`: one process of the cluster, inside TensorFlow.

Everything that imports TensorFlow lives here; the launcher never imports this package.
"""
