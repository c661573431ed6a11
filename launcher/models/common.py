"""Flags the bundled models share (absl flag names are global, so each is defined once)."""

from absl import flags

LEARNING_RATE = flags.DEFINE_float("learning_rate", None, "Optimizer learning rate (each model has a default).")
BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Examples per step (each model has a default).",
                                  lower_bound=1)
SEED = flags.DEFINE_integer("data_seed", 0, "Seed of the synthetic data (the same on every task).")


def value_or(holder: flags.FlagHolder, default):
    return default if holder.value is None else holder.value
