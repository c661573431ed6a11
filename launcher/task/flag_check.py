"""Per-role flags checked before any task starts: each must be a flag the task program knows.

The task program's flags and the model's own flags are both absl flags, so the check is absl's parser
itself, run here over each flag on its own so that an error names the exact one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator, Mapping, Sequence

from absl import flags

from launcher import model_api
from launcher.cluster.errors import UserError
from launcher.cluster.spec import check_flag_syntax

# Set by the launcher from its own options; a per-role value would split the cluster's view of the run.
LAUNCHER_OWNED = ("job_name", "task_index", "cluster_spec", "model", "model_dir", "train_steps")


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """TensorFlow's C++ start-up notices go straight to fd 2; the launcher's stderr is for its own errors."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def check(model: str, sources: Mapping[str, Mapping[str, Sequence[str]]]) -> None:
    """Check per-role flags. `sources` maps where the flags came from (a spec file, `--worker_flags`)
    to role -> flags. Importing the model module defines its flags; an import failure is reported too."""
    from launcher.task import flags as task_flags  # noqa: F401  (defines the task program's flags)
    from launcher.task import eval_flags  # noqa: F401  (and the evaluator's)

    with _native_stderr_silenced():
        model_api.load(model)
    for source, by_role in sources.items():
        for role, values in by_role.items():
            for i, value in enumerate(values):
                where = f"{source}[{i}]" if source.startswith("--") else f"{source}: flags.{role}[{i}]"
                check_flag_syntax(value, source, f"flags.{role}[{i}]")
                name = value[2:].split("=", 1)[0]
                if name in LAUNCHER_OWNED:
                    raise UserError(f"{where}: {value!r}: --{name} is set by the launcher for every task; "
                                    f"give it to `launcher run` instead")
                try:
                    flags.FLAGS(["task", value], known_only=False)
                except flags.Error as e:
                    raise UserError(f"{where}: {value!r}: {e}") from None
                finally:
                    flags.FLAGS.unparse_flags()
