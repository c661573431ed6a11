"""The launcher process: checks a run, starts and supervises its tasks, and keeps its record.

Nothing here imports TensorFlow, the task program or the user's model (a contract checked in CI): the
launcher stays light and starts its first task within a fraction of a second.
"""
