"""A real Ray cluster on a host bed: the head on host 1, one node on every other host.

Each node has its own temp dir (as separate machines would) and binds only to its bed address. The
cluster uses token authentication with a token of its own (RAY_AUTH_TOKEN_PATH, never ~/.ray), shared
by every host as a secret would be on real machines. Resource use is kept small: 2 CPUs per node, no
dashboard, a small object store.

Stopping: `ray stop` finds Ray's processes by name across the whole machine, whatever namespace it is
run in, so it would stop other people's clusters too. The bed's own processes are exactly those in its
namespaces (`ip netns pids`), and those are what `stop` kills.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import secrets
import shutil
import signal
import sys
import tempfile
import time
from typing import Optional

from hostbed import HostBed

RAY = str(pathlib.Path(sys.executable).parent / "ray")
PORT = 6379
OBJECT_STORE_BYTES = 80 * 1024 * 1024
# How soon the head declares a silent node dead: ~8-16 s here instead of Ray's ~15-30 s, not shorter, so
# that a loaded machine is not taken for a lost one.
HEALTH_CHECK = {"health_check_period_ms": 1000, "health_check_timeout_ms": 2000,
                "health_check_failure_threshold": 8}


_LIVE: list["RayCluster"] = []  # the clusters of this test session that are up


def actor_processes(is_actor) -> list:
    """Processes of the live clusters' namespaces for which `is_actor(psutil.Process)` holds."""
    return [proc for cluster in list(_LIVE) for proc in cluster.actors(is_actor)]


class RayCluster:
    def __init__(self, bed: HostBed, cpus_per_node: float = 2, resources: Optional[dict[int, dict]] = None,
                 warm_base: Optional[str] = None):
        self.bed = bed
        # The nodes' warm base (LAUNCHER_WARM_BASE in their environment, as an operator would set it on each
        # machine): here the test worker's, in this machine's own namespace; it forks each run's warm process
        # on a node into that node's namespace.
        self.warm_base = warm_base
        self.cpus_per_node = cpus_per_node
        self.resources = resources or {}  # host number -> custom resources of its node
        # Ray's socket paths must stay short (108 bytes): a short directory under /tmp.
        self.tmp = pathlib.Path(tempfile.mkdtemp(prefix="rb", dir="/tmp"))
        self.token_path = self.tmp / "auth_token"
        self.token_path.write_text(secrets.token_hex(32))
        self.token_path.chmod(0o600)

    def actors(self, is_actor) -> list:
        """This cluster's processes (those of its bed's namespaces) for which `is_actor(psutil.Process)` holds."""
        import psutil

        found = []
        for pid in self.bed.pids():
            try:
                proc = psutil.Process(pid)
            except psutil.NoSuchProcess:
                continue
            if is_actor(proc):
                found.append(proc)
        return found

    @property
    def address(self) -> str:
        return f"{self.bed[1].address}:{PORT}"

    def env(self, base: Optional[dict] = None) -> dict[str, str]:
        """The environment for anything that talks to this cluster (nodes, the launcher, drivers)."""
        env = dict(os.environ if base is None else base)
        env["RAY_AUTH_MODE"] = "token"
        env["RAY_AUTH_TOKEN_PATH"] = str(self.token_path)
        env.pop("RAY_AUTH_TOKEN", None)
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        # Every machine of a real cluster has the launcher and the model installed: here, the same checkout.
        tests = pathlib.Path(__file__).resolve().parent
        env["PYTHONPATH"] = os.pathsep.join([str(tests), str(tests.parent), env.get("PYTHONPATH", "")])
        env.pop("LAUNCHER_WARM_BASE", None)
        if self.warm_base is not None:
            env["LAUNCHER_WARM_BASE"] = self.warm_base
        return env

    def _node_args(self, number: int) -> list[str]:
        import json

        host = self.bed[number]
        # No log monitor: the launcher's driver does not take its workers' logs (log_to_driver=False), and
        # the monitor's polling of every log file cost about 35 CPU-seconds per suite run.
        args = [f"--node-ip-address={host.address}", f"--num-cpus={self.cpus_per_node}",
                f"--object-store-memory={OBJECT_STORE_BYTES}", "--disable-usage-stats",
                "--include-log-monitor=false", f"--temp-dir={self.tmp / f'n{number}'}"]
        if number in self.resources:
            args.append(f"--resources={json.dumps(self.resources[number])}")
        return args

    def start(self) -> "RayCluster":
        try:
            self.start_node(1)
            # The other nodes join the head together, as the machines of a real cluster would: `ray start`
            # takes seconds of waiting each, one after the other they made every fresh cluster slower.
            with concurrent.futures.ThreadPoolExecutor() as pool:
                for done in [pool.submit(self.start_node, host.number) for host in self.bed.hosts[1:]]:
                    done.result()
        except BaseException:
            self.stop()
            raise
        _LIVE.append(self)
        return self

    def start_node(self, number: int, attempts: int = 2) -> None:
        """Start (or start again, after a lost host) the Ray node of host `number`.

        A node that joins gives up when the head's GCS does not list it within 30 s (fixed in Ray's
        `node.py`); on cores that three other test workers keep busy that happened once in a suite run
        ("The current node timed out during startup ... the GCS has become overloaded"). Such a node is
        cleared off its host (by its namespace's pids) and started once more; the head is not retried."""
        for attempt in range(1, attempts + 1):
            try:
                return self._start_node_once(number)
            except RuntimeError:
                if number == 1 or attempt == attempts:
                    raise
                host = self.bed[number]
                host.kill_all(signal.SIGKILL)
                deadline = time.monotonic() + 10
                while host.pids() and time.monotonic() < deadline:
                    time.sleep(0.1)
                shutil.rmtree(self.tmp / f"n{number}", ignore_errors=True)

    def _start_node_once(self, number: int) -> None:
        if number == 1:
            import json

            argv = [RAY, "start", "--head", f"--port={PORT}", "--include-dashboard=false",
                    f"--system-config={json.dumps(HEALTH_CHECK)}", *self._node_args(1)]
        else:
            argv = [RAY, "start", f"--address={self.address}", *self._node_args(number)]
        # Each host its own temporary directory, as each machine has its own /tmp: what a lost host's
        # processes leave there (a warm process's socket) goes with the bed, not into this machine's /tmp.
        tmp = self.tmp / f"t{number}"
        tmp.mkdir(exist_ok=True)
        done = self.bed[number].run(argv, env={**self.env(), "TMPDIR": str(tmp)}, timeout=180, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"ray start on host {number} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    def alive_nodes(self) -> list[str]:
        """Addresses of the nodes Ray counts as alive, asked from host 1 as any driver would."""
        code = ("import json,ray;ray.init(address=%r,logging_level='ERROR',log_to_driver=False);"
                "print(json.dumps([n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']]))" % self.address)
        done = self.bed[1].run([sys.executable, "-c", code], env=self.env(), timeout=120, check=False)
        import json

        lines = done.stdout.strip().splitlines()
        return json.loads(lines[-1]) if done.returncode == 0 and lines else []

    def stop(self) -> None:
        if self in _LIVE:
            _LIVE.remove(self)
        for host in reversed(self.bed.hosts):  # nodes before the head they report to
            host.kill_all(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while self.bed.pids() and time.monotonic() < deadline:
            time.sleep(0.2)
        for host in self.bed.hosts:
            host.kill_all(signal.SIGKILL)
        shutil.rmtree(self.tmp, ignore_errors=True)


def ray_cluster(hosts: int, cpus_per_node: float = 2, scope: str = "function"):
    """A pytest fixture factory: a fresh bed of `hosts` hosts with a Ray cluster on it, stopped and torn
    down after the test (or the module, for `scope="module"`) whatever happened."""
    import pytest

    import hostbed

    @pytest.fixture(scope=scope)
    def fixture(tmp_path_factory):
        reason = hostbed.unavailable()
        if reason:
            pytest.skip(reason)
        pytest.importorskip("ray")
        from conftest import warm_base

        with HostBed(hosts) as bed:
            cluster = RayCluster(bed, cpus_per_node, warm_base=warm_base(tmp_path_factory).socket).start()
            try:
                yield cluster
                # The runner's leak check may come after this teardown: look for the launcher's actors here
                # too, before the bed goes (its launchers have ended: none may be left).
                from conftest import is_ray_actor

                # An actor on a host that Ray declared dead and that came back ends only once that host's
                # raylet learns it was declared dead and exits (seen: 21 s after the run's end); the
                # launcher cannot reach it meanwhile.
                deadline = time.monotonic() + 60
                while cluster.actors(is_ray_actor) and time.monotonic() < deadline:
                    time.sleep(0.2)
                host_of = {pid: h.address for h in cluster.bed.hosts for pid in h.pids()}
                left = [f"{p.pid} on {host_of.get(p.pid)} ({' '.join(p.cmdline())[:60]})"
                        for p in cluster.actors(is_ray_actor)]
            finally:
                cluster.stop()
            assert not left, f"Ray actors of the launcher left behind on the bed: pids {left}"

    return fixture
