"""`python -m launcher.task`: stop signals are handled before TensorFlow's seconds-long import begins."""

import faulthandler
import signal

from launcher.cluster import task_env
from launcher.cluster.stop_signals import StopRequest

# Before TensorFlow's import: a task that hangs anywhere, even while importing, can show its stacks.
faulthandler.register(task_env.STACKS_SIGNAL, all_threads=True)
stop = StopRequest(armed=False, exit_when_hurried=True).install()
signal.signal(task_env.FINISH_SIGNAL, stop.finish)

from launcher.task import program  # noqa: E402  (after the handlers: a stop while importing ends the task)

program.run(stop)
