"""Per-role flags checked by the task itself, first thing, each named by where the user wrote it.

The launcher cannot check them: the model module defines flags of its own, and importing it would bring
TensorFlow into the launcher. So every task checks the flags it was given, with absl's own parser, one at a
time so that an error names the exact flag and its origin (`spec.json: flags.worker[0]`, `--worker_flags[1]`,
from `task_env.FLAG_ORIGINS`), and exits 2 before it trains or writes anything.
"""

from __future__ import annotations

import json
import os
from typing import Mapping, Sequence

from absl import flags

from launcher.cluster import task_env
from launcher.cluster.errors import UserError


def check_role_flags(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> None:
    """Raise UserError naming the first role flag (the last arguments of `argv`) that absl refuses."""
    origins = json.loads(environ.get(task_env.FLAG_ORIGINS) or "[]")
    if not origins:
        return  # not started by a launcher: absl's parse of the whole command line will say what is wrong
    for where, value in zip(origins, argv[len(argv) - len(origins):]):
        try:
            flags.FLAGS([argv[0], value])
        except flags.Error as e:
            raise UserError(f"{where}: {value!r}: {e}") from None
        finally:
            flags.FLAGS.unparse_flags()
