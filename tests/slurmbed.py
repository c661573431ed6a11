"""A real Slurm cluster on a host bed: slurmctld on host 1, one slurmd on every host, one munged for all.

Everything the cluster uses lives in a temp dir of its own: munge's key, socket, pid, seed and log files,
slurm.conf, the controller's state, each slurmd's spool, pid and log files (`%n`: the node's name). The
munge socket is a file, so every host's namespace reaches it (`AuthInfo=socket=...`); clients find the
cluster through SLURM_CONF (`env()`), never /etc/slurm. Node names are h1, h2, ...: each daemon runs with
that host name (a UTS namespace of its own) and the host's bed address, where slurmctld finds it.

Daemons are started with `nsenter --net=/run/netns/<host> unshare --uts ...`, not `ip netns exec`, which
remounts /sys (slurmd then finds no cgroup filesystem). `stop()` kills what it started by pid, and then
everything left in the bed's namespaces (job steps included), and removes the temp dir.

Root only, with Debian's slurm-wlm and munge installed; `unavailable()` says why not otherwise.
"""

from __future__ import annotations

import os
import pathlib
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Optional

from hostbed import HostBed

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "srun", "scontrol", "squeue", "scancel", "sinfo")
START_SECS = 60.0


def unavailable() -> Optional[str]:
    """Why a Slurm cluster cannot be brought up here, or None."""
    missing = [p for p in (*DAEMONS, *CLIENTS) if not shutil.which(p) and not os.path.exists(f"/usr/sbin/{p}")]
    if missing:
        return (f"Slurm is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge "
                "(.ci/run does)")
    return None


def _which(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class SlurmCluster:
    def __init__(self, bed: HostBed, cpus_per_node: int = 2, kill_wait_secs: int = 30):
        self.bed = bed
        self.cpus_per_node = cpus_per_node
        self.kill_wait_secs = kill_wait_secs
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="slurmbed", dir="/tmp"))
        self.dir.chmod(0o700)
        self.conf = self.dir / "slurm.conf"
        self.munge_socket = self.dir / "munge.socket"
        (self.dir / "tmp").mkdir()
        self._procs: list[subprocess.Popen] = []

    def node(self, number: int) -> str:
        return f"h{number}"

    def env(self, base: Optional[dict] = None) -> dict[str, str]:
        """The environment of anything that talks to this cluster: its slurm.conf, and the checkout (every
        node of a real cluster would have the launcher and the test models installed)."""
        env = dict(os.environ if base is None else base)
        env["SLURM_CONF"] = str(self.conf)
        tests = pathlib.Path(__file__).resolve().parent
        env["PYTHONPATH"] = os.pathsep.join([str(tests), str(tests.parent)])
        # The nodes' temporary directory (a job's steps inherit it): what a lost node's processes leave there
        # (a warm process's socket directory) goes with the cluster, not into this machine's /tmp.
        env["TMPDIR"] = str(self.dir / "tmp")
        return env

    # -- start --

    def start(self) -> "SlurmCluster":
        try:
            self._write_files()
            self._start_munged()
            self._daemon(1, [_which("slurmctld"), "-D", "-f", str(self.conf)], "slurmctld")
            for host in self.bed.hosts:
                self._daemon(host.number, [_which("slurmd"), "-D", "-f", str(self.conf)], f"slurmd-{host.number}")
            self._wait_until_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def _write_files(self) -> None:
        key = self.dir / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        for sub in ("state", "spool", "log", *(f"spool/{self.node(h.number)}" for h in self.bed.hosts)):
            (self.dir / sub).mkdir(mode=0o700)
        nodes = "\n".join(f"NodeName={self.node(h.number)} NodeAddr={h.address} CPUs={self.cpus_per_node} "
                          "State=UNKNOWN" for h in self.bed.hosts)
        d = self.dir
        self.conf.write_text(f"""\
ClusterName=bed
SlurmctldHost={self.node(1)}({self.bed[1].address})
AuthType=auth/munge
AuthInfo=socket={self.munge_socket}
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d / 'state'}
SlurmdSpoolDir={d / 'spool'}/%n
SlurmctldPidFile={d / 'slurmctld.pid'}
SlurmdPidFile={d / 'slurmd-%n.pid'}
SlurmctldLogFile={d / 'log' / 'slurmctld.log'}
SlurmdLogFile={d / 'log' / 'slurmd-%n.log'}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdTimeout=20
SlurmctldTimeout=20
KillWait={self.kill_wait_secs}
InactiveLimit=0
MinJobAge=600
PlugStackConfig={d / 'plugstack.conf'}
{nodes}
PartitionName=bed Nodes=ALL Default=YES MaxTime=INFINITE State=UP
""")
        (d / "plugstack.conf").write_text("")

    def _start_munged(self) -> None:
        d = self.dir
        argv = [_which("munged"), "-F", "--force", f"--socket={self.munge_socket}", f"--key-file={d / 'munge.key'}",
                f"--pid-file={d / 'munged.pid'}", f"--seed-file={d / 'munged.seed'}",
                f"--log-file={d / 'log' / 'munged.log'}"]
        self._spawn(self.bed[1], argv, "munged")
        deadline = time.monotonic() + START_SECS
        while not self.munge_socket.exists():
            self._check_alive("munged")
            if time.monotonic() > deadline:
                raise RuntimeError(f"munged did not create its socket in {START_SECS:g}s")
            time.sleep(0.1)

    def _daemon(self, number: int, argv: list[str], name: str) -> None:
        host = self.bed[number]
        script = f"hostname {self.node(number)} && exec " + " ".join(argv)
        self._spawn(host, ["unshare", "--uts", "sh", "-c", script], name)

    def _spawn(self, host, argv: list[str], name: str) -> None:
        log = open(self.dir / "log" / f"{name}.out", "w")
        with log:
            proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{host.netns}", *argv], env=self.env(),
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        proc.name = name  # type: ignore[attr-defined]
        self._procs.append(proc)

    def _check_alive(self, name: str) -> None:
        for proc in self._procs:
            if proc.name == name and proc.poll() is not None:  # type: ignore[attr-defined]
                out = (self.dir / "log" / f"{name}.out").read_text()[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{out}")

    def _wait_until_idle(self) -> None:
        deadline = time.monotonic() + START_SECS
        while True:
            states = self.node_states()
            if len(states) == len(self.bed.hosts) and all(s.startswith("idle") for s in states.values()):
                return
            for proc in self._procs:
                self._check_alive(proc.name)  # type: ignore[attr-defined]
            if time.monotonic() > deadline:
                raise RuntimeError(f"Slurm nodes not idle after {START_SECS:g}s: {states}\n" + self.logs())
            time.sleep(0.5)

    # -- use --

    def run(self, argv: list[str], number: int = 1, timeout: float = 60, check: bool = False,
            env: Optional[dict] = None) -> subprocess.CompletedProcess:
        """A client command (sbatch, scontrol, ...) run on host `number`."""
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.bed[number].netns}", *argv],
                              env=env or self.env(), capture_output=True, text=True, timeout=timeout, check=check)

    def node_states(self) -> dict[str, str]:
        done = self.run(["sinfo", "-h", "-N", "-o", "%N %t"], timeout=30)
        return dict(line.split() for line in done.stdout.splitlines() if len(line.split()) == 2)

    def job(self, job_id: str) -> dict[str, str]:
        """`scontrol show job`'s fields (JobState, ExitCode, NodeList, ...); {} once Slurm has forgotten it."""
        done = self.run(["scontrol", "show", "job", "-o", job_id], timeout=30)
        if done.returncode != 0:
            return {}
        return dict(re.findall(r"(\w+)=(\S*)", done.stdout))

    def logs(self) -> str:
        parts = []
        for path in sorted((self.dir / "log").glob("*")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts)

    # -- stop --

    def stop(self) -> None:
        """Every process this cluster started (by pid), everything left in its hosts (job steps), its files."""
        for proc in reversed(self._procs):  # slurmd before slurmctld before munged
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self._procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for host in self.bed.hosts:  # what the jobs left: slurmstepd, tasks
            host.kill_all(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def slurm_cluster(hosts: int, cpus_per_node: int = 2, scope: str = "function", kill_wait_secs: int = 30):
    """A pytest fixture factory: a fresh bed of `hosts` hosts with a Slurm cluster on it, stopped and torn
    down after the test (or the module) whatever happened; skipped with the reason where it cannot run."""
    import pytest

    import hostbed

    @pytest.fixture(scope=scope)
    def fixture():
        reason = hostbed.unavailable() or unavailable()
        if reason:
            pytest.skip(reason)
        with HostBed(hosts) as bed:
            cluster = SlurmCluster(bed, cpus_per_node, kill_wait_secs).start()
            try:
                yield cluster
            finally:
                cluster.stop()

    return fixture
