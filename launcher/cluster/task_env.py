"""What a launcher puts in a task's environment besides TF_CONFIG, and what the task does with it.

None of it is needed to run a task: under another engine (Kubeflow, `export --format tf_config`) the
variables are absent and the task runs on TF_CONFIG alone.
"""

import signal

# The launcher's pid: a task whose launcher died (SIGKILL leaves no chance to clean up) stops by itself.
PARENT_PID = "LAUNCHER_PARENT_PID"
# JSON list naming where each of the task's per-role flags came from ("spec.json: flags.worker[0]",
# "--worker_flags[1]"); they are the last arguments of its command line. A bad flag is reported by origin.
FLAG_ORIGINS = "LAUNCHER_FLAG_ORIGINS"
# Set to "1": once its flags are checked the task reports READY and waits for GO_SIGNAL before it trains or
# writes anything, so a bad flag of any task is refused before a checkpoint is touched.
GATED = "LAUNCHER_GATED"
GO_SIGNAL = signal.SIGUSR1
# The task program dumps every thread's Python stack (faulthandler) into its output on this signal: the
# launcher asks for it when the run hangs, so the task's log shows where it waits.
STACKS_SIGNAL = signal.SIGUSR2
