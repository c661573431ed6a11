"""Who can reach a local run's servers: nobody but its own tasks.

TensorFlow's gRPC server has no authentication (whoever connects can run graph ops: read and write files as
the task's user) and binds to every interface, whatever host the spec names. So every task of a local run
runs in one network namespace of the run's own that has nothing but loopback: the ports exist there only.

The namespace is held by a small process (`unshare --net`, or with a user namespace where the kernel lets an
unprivileged user have one) for the length of the run; each task joins it with `nsenter`, which then execs
the task program, so the launcher's pipes and signals reach the task as before (neither cares about network
namespaces). The holder reads its stdin until end of file: when the launcher ends, however it ends, so does
the holder. Ports are still picked in this machine's namespace: every port is free in a new namespace, and
the picks stay unique.

Modes (`--isolation`): `auto` isolates where possible and otherwise warns, in one line, which ports are open
on which interfaces; `required` refuses to run without isolation; `off` runs tasks in the launcher's own
namespace, as before.
"""

from __future__ import annotations

import enum
import os
import shutil
import socket
import subprocess
import threading
from typing import Optional

from launcher.cluster.errors import UserError
from launcher.cluster.spec import ClusterSpec

READY = "ready"
START_TIMEOUT_SECS = 10.0
# Bring loopback up (a new namespace has it down), say so, then hold the namespace until stdin closes.
_HOLD = f"ip link set lo up && echo {READY} && exec cat >/dev/null"


class Mode(enum.Enum):
    AUTO = "auto"
    REQUIRED = "required"
    OFF = "off"

    @classmethod
    def parse(cls, value: object) -> Mode:
        try:
            return cls(value)
        except ValueError:
            raise UserError(f"--isolation {value!r}: expected one of {', '.join(m.value for m in cls)}") from None


class Unavailable(Exception):
    """No network namespace can be made here; the message says why."""


class Namespace:
    """A network namespace with only loopback, held for one run."""

    def __init__(self) -> None:
        missing = [tool for tool in ("unshare", "nsenter", "ip") if not shutil.which(tool)]
        if missing:
            raise Unavailable(f"{', '.join(missing)} not found")
        # As root a network namespace alone; otherwise inside a user namespace of our own, if allowed.
        self._user = os.geteuid() != 0
        unshare = ["unshare", "--net", *(["--user", "--map-root-user"] if self._user else [])]
        self._holder = subprocess.Popen([*unshare, "sh", "-c", _HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True, text=True)
        line = _read_line(self._holder, START_TIMEOUT_SECS)
        if line != READY:
            self.close()
            error = self._holder.stderr.read().strip().splitlines()
            raise Unavailable(error[-1] if error else "could not create a network namespace")

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` run inside the namespace (nsenter execs it: same pid, same pipes, same signals)."""
        enter = ["nsenter", f"--target={self._holder.pid}", "--net"]
        if self._user:
            enter += ["--user", "--preserve-credentials"]
        return [*enter, "--", *argv]

    def files(self) -> list[str]:
        """The namespaces `wrap` enters, as files to open and join (setns), in the order to join them."""
        kinds = ["user", "net"] if self._user else ["net"]
        return [f"/proc/{self._holder.pid}/ns/{kind}" for kind in kinds]

    def close(self) -> None:
        if self._holder.poll() is None:
            self._holder.stdin.close()  # the holder's `cat` sees end of file and exits
            try:
                self._holder.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._holder.kill()
                self._holder.wait()


def _read_line(proc: subprocess.Popen, timeout_secs: float) -> Optional[str]:
    """The first line of `proc`'s stdout, or None if none comes in time."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline().strip()), daemon=True)
    reader.start()
    reader.join(timeout_secs)
    return lines[0] if lines else None


def exposure_warning(spec: ClusterSpec, reason: str) -> str:
    """One line: what is open to whom when tasks cannot be isolated."""
    ports = ", ".join(str(spec.address(t).port) for t in spec.tasks() if t.job != "evaluator")
    try:
        interfaces = ", ".join(name for _, name in socket.if_nameindex())
    except OSError:
        interfaces = "unknown"
    return (f"warning: no network isolation for this run ({reason}): task ports {ports} listen on every "
            f"interface of this machine ({interfaces}), and TensorFlow's servers let whoever connects run "
            f"operations as this user; --isolation required refuses to run without isolation")
