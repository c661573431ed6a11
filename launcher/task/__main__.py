"""`python -m launcher.task`: stop signals are handled before TensorFlow's seconds-long import begins."""

from launcher.task import entry

entry.run(entry.handle_signals())
