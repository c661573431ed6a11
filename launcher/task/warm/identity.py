"""A forked task shows the world the command line and environment of a cold one.

/proc/PID/cmdline and /proc/PID/environ show the memory the kernel was told holds them: for a fork, its
warm process's. Tools and people (ps, top, the launcher's watchdog, which checks a pid's command line before
it trusts it) find a task by them, so the child points the kernel at its own (prctl PR_SET_MM_MAP, which
an unprivileged process may do for itself on Linux 3.18+ built with CONFIG_CHECKPOINT_RESTORE, as common
kernels are). Where the kernel refuses, the child names itself instead (its comm, as ps shows it:
"worker:0"), and its command line stays its warm process's.
"""

from __future__ import annotations

import ctypes
import os
from typing import Mapping, Sequence

_PR_SET_NAME = 15
_PR_SET_MM = 35
_PR_SET_MM_MAP = 14
_STAT_FIELDS = ("start_code", 26), ("end_code", 27), ("start_stack", 28), ("start_data", 45), \
    ("end_data", 46), ("start_brk", 47)
_keep: list = []  # the buffers the kernel now points at live as long as the process


class _MMMap(ctypes.Structure):  # struct prctl_mm_map (linux/prctl.h)
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "start_code", "end_code", "start_data", "end_data", "start_brk", "brk", "start_stack",
        "arg_start", "arg_end", "env_start", "env_end")] + [
        ("auxv", ctypes.c_void_p), ("auxv_size", ctypes.c_uint32), ("exe_fd", ctypes.c_uint32)]


def _stat() -> dict[str, int]:
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # fields[0] is field 3 (the state)
    return {name: int(fields[number - 3]) for name, number in _STAT_FIELDS}


def _show(argv: Sequence[str], env: Mapping[str, str]) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.sbrk.restype = ctypes.c_void_p
    args = b"".join(os.fsencode(a) + b"\0" for a in argv)
    environ = b"".join(os.fsencode(f"{k}={v}") + b"\0" for k, v in env.items())
    buffer = ctypes.create_string_buffer(args + environ, len(args) + len(environ))
    _keep.append(buffer)
    start = ctypes.addressof(buffer)
    mm = _MMMap(**_stat(), brk=libc.sbrk(0), arg_start=start, arg_end=start + len(args),
                env_start=start + len(args), env_end=start + len(args) + len(environ), auxv=None, auxv_size=0,
                exe_fd=0xFFFFFFFF)  # -1: the executable stays
    if libc.prctl(_PR_SET_MM, _PR_SET_MM_MAP, ctypes.byref(mm), ctypes.sizeof(mm), 0) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def take(argv: Sequence[str], env: Mapping[str, str], name: str) -> bool:
    """Show `argv` and `env` as this process's own; else name it `name`. True when they are shown."""
    try:
        _show(argv, env)
        return True
    except (OSError, AttributeError, ValueError):
        libc = ctypes.CDLL(None)
        libc.prctl(_PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)
        return False
