"""Which frames of a stack are the user's own code: not Python's, not an installed package's, not this
project's plumbing. Shared by the task program (its failure report) and the launcher (stacks, root causes)."""

from __future__ import annotations

import re
import sys

# Frames of Python itself, of installed packages and of the launcher: where a task waits, not why.
_PLUMBING = re.compile(r"/(lib/python3[^/]*|site-packages|dist-packages)/|(^|/)launcher/(task|cluster)/|^<")
# py-spy shortens paths relative to sys.path ("tensorflow/python/client/session.py", "threading.py").
_PLUMBING_TOPS = set(sys.stdlib_module_names) | {"tensorflow", "absl", "keras", "tf_keras", "numpy", "google"}


def is_plumbing(path: str) -> bool:
    top = path.split("/", 1)[0].removesuffix(".py")
    return bool(_PLUMBING.search(path)) or (not path.startswith("/") and top in _PLUMBING_TOPS)
