"""`python -m launcher.task`: stop signals are handled before TensorFlow's seconds-long import begins."""

from launcher.cluster.stop_signals import StopRequest

stop = StopRequest(armed=False, exit_when_hurried=True).install()

from launcher.task import program  # noqa: E402  (after the handlers: a stop while importing ends the task)

program.run(stop)
