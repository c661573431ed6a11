"""How a launcher asks a warm process (`python -m launcher.task.warm`) for a task: shared by both sides.

A warm process has imported TensorFlow, the task program and the model module once; it forks each task on
request, so that no task (and no restart) pays for that import again. It listens on a Unix socket
(SOCK_SEQPACKET: one message is one datagram, descriptors ride along with SCM_RIGHTS). One connection per
task process:

    client -> warm:  {"argv": [...], "env": {...}}    with the write end of the task's output pipe attached
    warm -> client:  {"pid": N}                       the task is forked: its own session, its own pid
                 or  {"cold": "why"}                  it will not fork (not safe): start the task cold
    warm -> client:  {"exit": code}                   the task has ended (Popen's convention: -N for signal N)

A client whose end closes before the exit (its launcher or Ray actor died) gets its task stopped as a cold
task whose launcher is gone: SIGTERM, SIGKILL after the task's grace.

The warm process prints READY on its stdout once it listens, and ends when its stdin closes (its launcher
is gone, however it ended) or on SIGTERM.

Under Slurm the launcher's handle on a task is a job step, whose process Slurm starts: a warm task's step
runs `python -m launcher.task.warm.step` (see there), which asks its node's warm process (a step of its
own) for the task with the step's output, environment and CPUs (`"cpus": [...]` in the request), and
stands for the task until it ends. The launcher signals such a step with stand-ins (`step_signal`).

A warm base (`python -m launcher.task.warm.base`, see there) forks a run's warm process in turn, from a
TensorFlow it imported once for every run on the machine; it prints BASE_READY once it listens.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import struct
from typing import Mapping, Optional, Sequence

MODULE = "launcher.task.warm"
STEP_MODULE = "launcher.task.warm.step"
READY = "warm-ready"
BASE_MODULE = "launcher.task.warm.base"
BASE_READY = "warm-base-ready"
BASE_OUTDATED = "outdated"
# A machine's warm base, for the runs started there (--warm_base's default) and, on a Ray node, for that
# node's warm processes: set once where the base is started.
BASE_ENV = "LAUNCHER_WARM_BASE"
BASE_MAX_FDS = 4  # stdin, output, and the user and network namespaces
# What a process reads from its environment while it imports TensorFlow (its options, its libraries', the
# interpreter's): a warm base serves only runs whose values are its own. TF_CONFIG is read later, per task.
_IMPORT_ENV = re.compile(r"^(TF_|TENSORFLOW_|CUDA_|XLA_|OMP_|MKL_|KMP_|PYTHON|LD_)")
# Not compared: TF_CONFIG is read later, per task; a fork makes its output streams as PYTHONUNBUFFERED says;
# PYTHONBREAKPOINT is read when breakpoint() is called (Ray sets it in its workers' environment).
_NOT_IMPORT_ENV = {"TF_CONFIG", "PYTHONUNBUFFERED", "PYTHONBREAKPOINT"}
# What a launcher's runs have by default (`launch.run.run_env`), and so a warm base too.
RUN_ENV_DEFAULTS = {"TF_CPP_MIN_LOG_LEVEL": "1"}
SOCKET_TYPE = socket.SOCK_SEQPACKET
_MAX_MESSAGE = 1 << 20  # a request carries a task's whole environment: a few kB


def send(sock: socket.socket, message: dict, fds: Sequence[int] = ()) -> None:
    socket.send_fds(sock, [json.dumps(message).encode()], list(fds))


def receive(sock: socket.socket, max_fds: int = 1) -> tuple[Optional[dict], list[int]]:
    """The next message and the descriptors that came with it (at most `max_fds`: more are dropped by the
    kernel); (None, []) once the other end has closed."""
    data, fds, _, _ = socket.recv_fds(sock, _MAX_MESSAGE, max_fds)
    if not data:
        for fd in fds:
            socket.close(fd)
        return None, []
    return json.loads(data), fds


class Refused(Exception):
    """The warm process will not fork the task (or does not answer); the message says why."""


class Silent(Refused):
    """The warm process did not answer in time: stopped (SIGSTOP) or stuck. Ask it nothing more."""


# A warm process answers a request as soon as its fork has a session of its own: milliseconds, a little more
# on a loaded machine. Silent for this long, it is stopped or stuck, and its client must not wait for good:
# a launcher asking for a restart waits here, and supervises nothing meanwhile.
ANSWER_SECS = 10.0


def ask_for_task(socket_path: str, argv: list[str], env: Mapping[str, str], output_fd: int,
                 who: str = "the warm process", **extra) -> tuple[socket.socket, int]:
    """Ask the warm process at `socket_path` to fork the task of `argv` and `env` (and `extra`, such as a warm
    step's "cpus"), its output on `output_fd`: (the connection its exit comes on, the task's pid). Raises
    Refused, naming the warm process as `who`; Silent when it has not answered within ANSWER_SECS. The
    caller still owns `output_fd`."""
    connection = socket.socket(socket.AF_UNIX, SOCKET_TYPE)
    connection.settimeout(ANSWER_SECS)
    try:
        connection.connect(socket_path)
        send(connection, {"argv": list(argv), "env": dict(env), **extra}, [output_fd])
        answer, _ = receive(connection)
    except TimeoutError:
        # Closing tells it, should it wake up, that nobody waits for this fork any more (`hung_up`).
        connection.close()
        raise Silent(f"{who} did not answer within {ANSWER_SECS:g}s (stopped or stuck)") from None
    except (OSError, ValueError) as e:
        connection.close()
        raise Refused(f"{who} does not answer ({e})") from None
    connection.settimeout(None)  # the exit comes when the task ends
    if not isinstance(answer, dict) or not isinstance(answer.get("pid"), int):
        connection.close()
        raise Refused(answer.get("cold", "its answer made no sense") if isinstance(answer, dict) else f"{who} is gone")
    return connection, answer["pid"]


def receive_exit(connection: socket.socket) -> Optional[int]:
    """The exit code the next message reports, or None if the other end closed (or said anything else)
    first; closes the connection."""
    with connection:
        try:
            answer, _ = receive(connection)
        except (OSError, ValueError):
            return None
    return answer.get("exit") if isinstance(answer, dict) and isinstance(answer.get("exit"), int) else None


def peer(connection: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a connected Unix socket (SO_PEERCRED)."""
    pid, uid, _ = struct.unpack("3i", connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                            struct.calcsize("3i")))
    return pid, uid


# The signals a launcher sends a task, and the stand-in that asks a warm step (`launcher.task.warm.step`) to
# pass each on: a real-time signal, which neither Slurm nor anything else sends by itself. Slurm signals
# only the step's own processes, and the forked task is not one of them; SIGKILL and SIGSTOP could not be
# caught to be passed on anyway. New signals go at the end: the stand-ins are positional.
STEP_SIGNALS = (signal.SIGTERM, signal.SIGKILL, signal.SIGSTOP, signal.SIGCONT, signal.SIGINT, signal.SIGHUP,
                signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def step_signal(signum: int) -> int:
    """The stand-in for `signum` (one of STEP_SIGNALS) that a warm step passes on as `signum`."""
    return signal.SIGRTMIN + STEP_SIGNALS.index(signum)


def step_command(python: str, socket_path: str, task_argv: list[str]) -> list[str]:
    """argv of a warm step: the task of `task_argv`, forked from the warm process at `socket_path`."""
    return [python, "-m", STEP_MODULE, f"--socket={socket_path}", *task_argv]


def command(python: str, socket_path: str, model: str) -> list[str]:
    """argv of a warm process for one run (on one machine)."""
    return [python, "-m", MODULE, f"--socket={socket_path}", f"--model={model}"]


def import_env(env: Mapping[str, str]) -> dict[str, str]:
    """The part of `env` that TensorFlow's import reads, with the task environment's defaults applied."""
    from launcher.cluster.task_env import TASK_ENV

    merged = {**TASK_ENV, **env}
    return {k: v for k, v in merged.items() if _IMPORT_ENV.match(k) and k not in _NOT_IMPORT_ENV}


def env_difference(have: Mapping[str, str], asked: Mapping[str, str]) -> Optional[str]:
    """The first variable whose value differs ("PYTHONPATH"), or None."""
    for name in sorted(set(have) | set(asked)):
        if have.get(name) != asked.get(name):
            return name
    return None
