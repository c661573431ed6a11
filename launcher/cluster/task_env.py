"""A task's environment besides TF_CONFIG: what every task needs, and what a launcher adds.

TASK_ENV is needed wherever a task runs: the task program sets it itself before TensorFlow is imported,
and exported TFJob containers and TF_CONFIG commands carry it too. The rest is what this launcher adds;
none of it is needed to run a task: under another engine the variables are absent and the task runs on
TF_CONFIG alone.
"""

import signal

# tf.compat.v1.layers (dense, batch_normalization, ...) and tf.compat.v1.keras on TF 2.16+ work only with
# the tf-keras package and this variable set before TensorFlow is imported (Keras 3 has no v1 layers).
# TF_FORCE_GPU_ALLOW_GROWTH: a task takes GPU memory as it needs it, not all of every GPU it sees at its
# first session, so that tasks that share a GPU (see `gpus`) do not starve each other.
TASK_ENV: dict[str, str] = {"TF_USE_LEGACY_KERAS": "1", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}

# The launcher's pid: a task whose launcher died (SIGKILL leaves no chance to clean up) stops by itself.
PARENT_PID = "LAUNCHER_PARENT_PID"
# The launcher's own pid where PARENT_PID names another process that it started and whose end is its end (a
# forked task watches its warm process): what the task's account of the launcher's end names.
LAUNCHER_PID = "LAUNCHER_PID"
# JSON list naming where each of the task's per-role flags came from ("spec.json: flags.worker[0]",
# "--worker_flags[1]"); they are the last arguments of its command line. A bad flag is reported by origin.
FLAG_ORIGINS = "LAUNCHER_FLAG_ORIGINS"
# Set to "1": once its flags are checked the task reports READY and waits for GO_SIGNAL before it trains or
# writes anything, so a bad flag of any task is refused before a checkpoint is touched.
GATED = "LAUNCHER_GATED"
GO_SIGNAL = signal.SIGUSR1
# "Finish now" (early stopping): stop after the current step and end as a finished task, exit 0; the chief
# saves at the step reached. Handled from the task's first moment, before TensorFlow's import.
FINISH_SIGNAL = signal.SIGUSR2
# The task program dumps every thread's Python stack (faulthandler) into its output on this signal (the
# JVM's convention for a thread dump): the launcher asks for it when the run hangs, so the task's log shows
# where it waits. Sent only to a task that has reported READY, when the handler is certainly installed.
STACKS_SIGNAL = signal.SIGQUIT
