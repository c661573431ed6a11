"""In a child just forked from the warm process: become the task a cold start would have run.

Its own session (made at the fork: the launcher signals its process group), its output on the pipe the launcher made, stdin
from /dev/null, the environment and TF_CONFIG of its request, its own argv (absl parses its flags afresh:
the warm process never parsed any), the task program's signal handlers, and then the task program itself,
to an ordinary interpreter exit: atexit handlers, non-daemon threads, the exit code, as when cold.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from typing import Optional

import launcher.task
from launcher.cluster import exit_codes, task_command, task_env, tf_config
from launcher.task import entry
from launcher.task.warm import identity

# Signals whose handlers the task program installs first thing: held back from the fork until it has.
HELD = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, task_env.FINISH_SIGNAL, task_env.STACKS_SIGNAL)
_TASK_MAIN = os.path.join(os.path.dirname(launcher.task.__file__), "__main__.py")


@dataclasses.dataclass(frozen=True)
class Request:
    argv: list[str]
    env: dict[str, str]
    output_fd: int
    model_error: Optional[str]  # the model module failed to import in the warm process: the task says so
    cpus: Optional[list[int]] = None  # the CPUs its Slurm step was given (a warm step's request)


def not_a_task(argv: object, env: object) -> Optional[str]:
    """Why a request is not for the task program (then it is started cold, as asked), or None."""
    if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv) and isinstance(env, dict)):
        return "a malformed request"
    if argv[1:3] != ["-m", task_command.TASK_MODULE]:
        return f"{' '.join(argv[:3])!r} is not the task program"
    return None


def cpus_of(message: dict) -> Optional[list[int]]:
    """The CPUs a request asks the task to run on, when it names any (a list of CPU numbers)."""
    cpus = message.get("cpus")
    if isinstance(cpus, list) and cpus and all(isinstance(c, int) and 0 <= c < 65536 for c in cpus):
        return cpus
    return None


def _reseed() -> None:
    """Random state of its own, as a cold process seeds it at import: Python's `random` reseeds itself in a
    fork, NumPy's global generator does not (every task would draw the same numbers: the same shuffles)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()  # from the OS's entropy


def become(request: Request) -> None:
    """Run the task program in this (forked) process, already in a session of its own; ends with
    SystemExit, never returns."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(request.output_fd, 1)
    os.dup2(request.output_fd, 2)  # as cold: stderr=STDOUT
    os.close(request.output_fd)
    if request.cpus is not None:
        try:  # its own step's CPUs, as a cold task in that step is bound to them (where Slurm binds)
            os.sched_setaffinity(0, request.cpus)
        except OSError:
            pass  # CPUs outside the warm process's own: it runs on those
    env = dict(request.env)
    if task_env.PARENT_PID in env:
        env[task_env.LAUNCHER_PID] = env[task_env.PARENT_PID]
        env[task_env.PARENT_PID] = str(os.getppid())  # its parent is the warm process: watch that
    os.environ.clear()
    os.environ.update(env)
    task = tf_config.task_of(env)
    identity.take(request.argv, env, task.name if task else "task")
    sys.argv = [_TASK_MAIN, *request.argv[3:]]
    _reseed()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    stop = entry.handle_signals()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD)
    if request.model_error is not None:
        sys.stderr.write(f"error: {request.model_error}\n")
        sys.exit(exit_codes.BAD_INPUT)
    entry.run(stop)
