"""The task program's first moments, the same for a process started cold (`python -m launcher.task`) and
one forked from a warm process (`launcher.task.warm`): stop signals and stacks are handled before
TensorFlow's seconds-long import begins (or, forked, before the first line of the task runs)."""

from __future__ import annotations

import faulthandler
import signal

from launcher.cluster import task_env
from launcher.cluster.stop_signals import StopRequest
from launcher.task import import_heap


def handle_signals() -> StopRequest:
    # First of all: a task that hangs anywhere, even while importing, can show its stacks.
    faulthandler.register(task_env.STACKS_SIGNAL, all_threads=True)
    stop = StopRequest(armed=False, exit_when_hurried=True).install()
    signal.signal(task_env.FINISH_SIGNAL, stop.finish)
    return stop


def run(stop: StopRequest) -> None:
    """The task program, to its exit (SystemExit with the exit code)."""
    import_heap.pause()  # resumed by the program once the model module is imported (see `import_heap`)
    from launcher.task import program  # after the handlers: a stop while importing ends the task

    program.run(stop)
