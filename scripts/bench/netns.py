"""Ray trials in a loopback-only network namespace, and whether this machine can run them.

Ray would otherwise bind to the machine's routable address; `unshare -n` (as tests/test_ray_backend.py
runs Ray) keeps everything on loopback. It needs root or user namespaces, hence the availability check.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from typing import Optional, Sequence

from bench.processes import child_env

# A loopback-only network namespace, as tests/test_ray_backend.py runs Ray: nothing leaves loopback.
NETNS = ("unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"')


def ray_unavailable() -> Optional[str]:
    """Why Ray trials cannot run here, or None when they can."""
    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed (pip install 'ray[default]')"
    missing = [tool for tool in NETNS[:1] + ("ip",) if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found, and Ray trials run in a loopback-only network namespace"
    probe = subprocess.run([*NETNS, "true"], stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if probe.returncode != 0:
        why = probe.stderr.strip().splitlines()[-1:] or [f"exit code {probe.returncode}"]
        return f"`unshare -n` is not available here ({why[0]}; it needs root or user namespaces)"
    return None


def ray_argv(launcher_argv: Sequence[str]) -> list[str]:
    """`launcher_argv` with `--backend=ray`, in the namespace: the launcher starts a local Ray instance."""
    return [*NETNS, *launcher_argv, "--backend=ray"]


def ray_env(workdir: str) -> dict[str, str]:
    """A Ray trial's environment: Ray's files in the trial's directory; a local instance, never another
    cluster named by RAY_ADDRESS; no usage report (it could not leave the namespace anyway)."""
    env = child_env()
    env.pop("RAY_ADDRESS", None)
    env["RAY_TMPDIR"] = workdir
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env
