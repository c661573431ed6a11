"""`python -m launcher.task.warm.step --socket=PATH ARGV...`: a Slurm job step that stands for a task forked
from its node's warm process.

Under Slurm the launcher's handle on a task is a job step (its `srun`), whose process Slurm starts on the
node: a fork cannot be that process. This small program (it imports no TensorFlow) is, instead. It asks the
node's warm process (a step of its own, one per node and run) for the task of ARGV, with this step's output
as the task's, this step's environment (Slurm's variables for this step included) and its CPUs, and then
stands for the task until it ends: it ends as the task did (the same exit code, or killed by the same
signal), which is what srun reports and the launcher reads.

Signals: Slurm signals the processes of a step, and the task is not one of them (it is the warm process's
child, in the warm step). The launcher therefore signals this step with stand-ins (`warm_protocol.
step_signal`: real-time signals, which nothing else sends) and each is passed on to the task's process
group as the signal it stands for, SIGKILL and SIGSTOP included. What Slurm sends to the whole job (scancel
of the job, the end of its time) reaches the task through the warm step, whose processes it is among: once,
so it is ignored here.

When the warm process will not fork the task (it is gone, or forking is not safe), the task starts here,
cold, as this process's child, said in one line; signals are passed on to it in the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Optional

from launcher.cluster import task_env, tf_config, warm_protocol
from launcher.cluster.stop_signals import STOP_SIGNALS

_task_pid: Optional[int] = None  # the task's process group, once it has one


def _pass_on(signum: int):
    def handler(received: int, frame) -> None:
        if _task_pid is not None:
            try:
                os.killpg(_task_pid, signum)
            except (ProcessLookupError, PermissionError):
                pass  # ended meanwhile: its exit is on its way
    return handler


def _ignore(signum: int, frame) -> None:
    """Slurm's signals to the whole job reach the task directly (see above). A handler, not SIG_IGN: a cold
    task started from here must not inherit an ignored stop signal."""


def _end_as(code: int) -> None:
    """End this process as the task ended (Popen's convention: -N for signal N)."""
    if code < 0:
        if -code not in (signal.SIGKILL, signal.SIGSTOP):  # the two whose action nobody can change
            signal.signal(-code, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [-code])
        os.kill(os.getpid(), -code)
        code = 128 - code  # a signal whose default is not to end the process
    sys.exit(code)


def main(args: list[str]) -> None:
    global _task_pid
    if not args or not args[0].startswith("--socket=") or len(args) < 4:
        sys.exit(f"usage: python -m {warm_protocol.STEP_MODULE} --socket=PATH PYTHON -m launcher.task ...")
    socket_path, argv = args[0].removeprefix("--socket="), args[1:]
    stand_ins = [warm_protocol.step_signal(s) for s in warm_protocol.STEP_SIGNALS]
    signal.pthread_sigmask(signal.SIG_BLOCK, stand_ins)  # held until the task has a pid to pass them to
    for signum in STOP_SIGNALS:
        signal.signal(signum, _ignore)
    for signum, stand_in in zip(warm_protocol.STEP_SIGNALS, stand_ins):
        signal.signal(stand_in, _pass_on(signum))
    env = dict(os.environ)
    env[task_env.PARENT_PID] = str(os.getpid())  # the task stops by itself should this step vanish
    try:
        connection, _task_pid = warm_protocol.ask_for_task(socket_path, argv, env, sys.stdout.fileno(),
                                                           who="its node's warm process",
                                                           cpus=sorted(os.sched_getaffinity(0)))
    except warm_protocol.Refused as e:
        task = tf_config.task_of(env)
        print(f"[launcher] {task.name if task else 'the task'} starts cold: {e}", flush=True)
    else:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, stand_ins)
        code = warm_protocol.receive_exit(connection)
        # None: the warm process died first; its task stops by itself (its parent watch), unseen from here.
        _end_as(-signal.SIGKILL if code is None else code)
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, start_new_session=True)
    _task_pid = proc.pid
    signal.pthread_sigmask(signal.SIG_UNBLOCK, stand_ins)
    _end_as(proc.wait())


if __name__ == "__main__":
    main(sys.argv[1:])
