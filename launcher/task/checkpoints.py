"""Which checkpoint the chief restores, found on disk and proven readable before it is trusted.

TensorFlow trusts the `checkpoint` state file: when it is garbled, `get_checkpoint_state` logs "Checkpoint
ignored" and returns None, and the chief initialises from scratch over real checkpoints. A truncated `.data`
file passes `list_variables` and only fails when its tensors are read. So the chief looks for checkpoints
itself (every `*.index` in the directory, plus whatever the state file names), reads each candidate in
full, newest first, and restores the first one that reads back; it never starts from scratch over a
directory that holds checkpoints. A checkpoint that reads but does not match the model is the user's
error, reported with every mismatch, and no older checkpoint is tried in its place.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Optional, Sequence

import tensorflow as tf
from absl import logging

from launcher.cluster.checkpoint_names import step_of
from launcher.cluster.errors import CheckpointError


@dataclasses.dataclass(frozen=True)
class Choice:
    """The checkpoint to restore (None: initialise), and it with the older ones, oldest first, for the saver
    to count against max_to_keep."""

    path: Optional[str]
    restorable: Sequence[str]


def candidates(model_dir: str) -> list[str]:
    """Checkpoint prefixes found in `model_dir`, newest first; the state file is a hint, not the truth."""
    found = {path[: -len(".index")] for path in tf.io.gfile.glob(os.path.join(model_dir, "*.index"))}
    try:
        state = tf.train.get_checkpoint_state(model_dir)
    except Exception as e:  # an unreadable state file must not hide the checkpoints beside it
        logging.warning("checkpoint state file in %s is unreadable (%s); using the checkpoints on disk", model_dir, e)
        state = None
    if state is None and tf.io.gfile.exists(os.path.join(model_dir, "checkpoint")) and found:
        logging.warning("checkpoint state file in %s is garbled; using the checkpoints on disk", model_dir)
    if state is not None:
        named = [state.model_checkpoint_path, *state.all_model_checkpoint_paths]
        found.update(p if os.path.isabs(p) else os.path.join(model_dir, p) for p in named if p)
    return sorted(found, key=lambda p: (step_of(p), p), reverse=True)


def _read_fully(prefix: str) -> dict[str, list[int]]:
    """Name -> shape of every tensor in the checkpoint, after reading each one (truncation shows only then)."""
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
    for name in shapes:
        reader.get_tensor(name)
    return shapes


def mismatches(checkpoint: Mapping[str, Sequence[int]], model: Mapping[str, Sequence[int]]) -> list[str]:
    """Each difference between a checkpoint's variables and the model's, as a line for the user."""
    lines = []
    for name in sorted(set(checkpoint) | set(model)):
        if name not in model:
            lines.append(f"{name}: in the checkpoint {list(checkpoint[name])}, not in the model")
        elif name not in checkpoint:
            lines.append(f"{name}: in the model {list(model[name])}, not in the checkpoint")
        elif list(checkpoint[name]) != list(model[name]):
            lines.append(f"{name}: shape {list(checkpoint[name])} in the checkpoint, {list(model[name])} in the model")
    return lines


def choose(model_dir: str, model_shapes: Mapping[str, Sequence[int]]) -> Choice:
    """The newest checkpoint in `model_dir` that reads back and fits the model, or None to initialise.

    Raises CheckpointError when checkpoints exist but none reads back, or when the newest readable one
    does not match the model.
    """
    found = candidates(model_dir)
    for position, prefix in enumerate(found):
        try:
            shapes = _read_fully(prefix)
        except Exception as e:  # a truncated .data raises IndexError, a missing file NotFoundError
            logging.warning("skipping checkpoint %s: it does not read back (%s: %s)",
                            prefix, type(e).__name__, str(e).splitlines()[0] if str(e) else "")
            continue
        problems = mismatches(shapes, model_shapes)
        if problems:
            raise CheckpointError(f"checkpoint {prefix} does not match the model: " + "; ".join(problems))
        if position:
            logging.warning("restoring %s instead of the newest checkpoint %s", prefix, found[0])
        # Only the chosen one is read in full (a restore reads it anyway); the older ones are just counted
        # against max_to_keep. Newer ones that failed to read are left on disk for the user to look at.
        return Choice(prefix, list(reversed(found[position:])))
    if found:
        raise CheckpointError(f"{model_dir}: none of the {len(found)} checkpoints reads back "
                              f"(newest: {found[0]}); refusing to start again from step 0 over them")
    return Choice(None, [])
