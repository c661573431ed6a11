"""Whether this process may fork a task: only while it runs nothing of TensorFlow's runtime.

A fork copies one thread, the caller; a lock that another thread held at that moment stays locked in the
child for ever. TensorFlow's import leaves a couple of idle threads, which the measurements of issue 14
showed harmless; a Server, a Session or an eager context start thread pools that are not. So the warm
process counts its threads once TensorFlow is imported and refuses to fork once there are more, or once
the eager context exists (it holds the runtime's thread pools even when they are idle).
"""

from __future__ import annotations

import os
import sys
from typing import Optional


def os_threads() -> int:
    """Threads of this process as the kernel sees them (Python's own count misses native ones)."""
    return len(os.listdir("/proc/self/task"))


def _eager_context_started() -> bool:
    context = sys.modules.get("tensorflow.python.eager.context")
    if context is None:
        return False
    try:
        return context.context()._context_handle is not None  # created by the first eager op or device query
    except AttributeError:  # another TensorFlow's internals: the thread count still stands guard
        return False


def unsafe(baseline_threads: int) -> Optional[str]:
    """Why a fork is not safe now, or None."""
    threads = os_threads()
    if threads > baseline_threads:
        return (f"the warm process has {threads} threads, {threads - baseline_threads} more than TensorFlow's "
                "import leaves (a fork keeps only one: a lock held by another would never be released)")
    if _eager_context_started():
        return "TensorFlow's eager context has started in the warm process"
    return None
