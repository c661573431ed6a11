"""Slurm: the batch script of `launcher export --format sbatch`, submitted to a real 3-node Slurm cluster on
the host bed (slurmctld on h1, a slurmd on each host: tests/slurmbed.py), runs every task as a job step on
the allocation's nodes; scancel and the warning signal before the time limit end it as a preemption.
Unit tests of the backend's pieces and of the script need no cluster."""

from __future__ import annotations

import json
import os
import pathlib
import shlex
import subprocess
import sys
import time

import psutil
import pytest

import slurmbed
from conftest import REPO, checkpoint_steps, last_run, wait_for
from launcher.cluster.errors import UserError
from launcher.cluster.run_config import RunConfig
from launcher.cluster.spec import TaskId, from_json
from launcher.export import sbatch
from launcher.launch.backends import slurm_backend

slurm3 = slurmbed.slurm_cluster(3, scope="module")  # shared by the tests that leave it intact
fresh_slurm3 = slurmbed.slurm_cluster(3)  # for the tests that lose a host or cancel a job

PROBE_FLAGS = {"chief": ["--step_sleep_secs=0.05", "--save_checkpoint_secs=600"], "worker": ["--step_sleep_secs=0.05"]}


def export(cluster, tmp_path: pathlib.Path, spec: str, *args: str) -> pathlib.Path:
    done = subprocess.run([sys.executable, "-m", "launcher", "export", "--spec", spec, "--format", "sbatch", *args],
                          capture_output=True, text=True, env=cluster.env(), cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "job.sh"
    path.write_text(done.stdout)
    return path


def submit(cluster, tmp_path: pathlib.Path, script: pathlib.Path, *options: str) -> str:
    done = cluster.run(["sbatch", "--parsable", f"--output={tmp_path / 'job.out'}", f"--chdir={tmp_path}",
                        *options, str(script)])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


# Slurm's job states that are final (squeue(1), JOB STATE CODES). Waiting for one of them, not for the end of
# "running", keeps transitional states out: a job whose steps are being signalled shows SIGNALING (seen
# right after the time limit's warning, while the launcher was still stopping its tasks).
END_STATES = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
              "PREEMPTED", "TIMEOUT"}


def wait_for_end(cluster, job_id: str, timeout: float = 400) -> dict:
    """The job's fields once it has ended (in one of Slurm's final states)."""
    return wait_for(lambda: (lambda j: j if j and j["JobState"] in END_STATES else None)(cluster.job(job_id)),
                    timeout=timeout, what=f"job {job_id} to end")


def job_output(tmp_path: pathlib.Path) -> str:
    path = tmp_path / "job.out"
    return path.read_text(errors="replace") if path.exists() else ""


def job_record(model_dir: pathlib.Path, job: dict, out: str) -> dict:
    """The launcher's record of the job's run; a job that ended without one fails with what Slurm and the
    job's output say (the record is written as the launcher ends: a launcher that Slurm killed has none)."""
    if not (model_dir / "run.json").exists():
        pytest.fail(f"no run.json: job {job.get('JobState')} {job.get('Reason')} exit {job.get('ExitCode')}; "
                    f"its output ends:\n{out[-3000:]}")
    return last_run(model_dir)


def hosts_of(record: dict) -> dict[str, list[str]]:
    return {f"{t['job']}:{t['index']}": [a["host"] for a in t["attempts"]] for t in record["tasks"]}


def probe_spec(tmp_path: pathlib.Path, step_sleep_secs: float = 0.05) -> pathlib.Path:
    spec = tmp_path / "spec.json"
    flags = {role: [f"--step_sleep_secs={step_sleep_secs}" if f.startswith("--step_sleep_secs=") else f
                    for f in role_flags] for role, role_flags in PROBE_FLAGS.items()}
    spec.write_text(json.dumps({"cluster": {"chief": ["localhost:0"], "worker": ["localhost:0"] * 3,
                                            "ps": ["localhost:0"] * 2}, "flags": flags}))
    return spec


# --- on the real cluster --------------------------------------------------------------------------------------

def test_local4_batch_job_completes_on_three_nodes(slurm3, tmp_path):
    model_dir = tmp_path / "model"
    script = export(slurm3, tmp_path, "local4", "--model_dir", str(model_dir), "--train_steps", "500")
    job = wait_for_end(slurm3, submit(slurm3, tmp_path, script, "-N3"))
    out = job_output(tmp_path)
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", out[-3000:]
    assert checkpoint_steps(model_dir)[-1] == 500
    record = last_run(model_dir)
    assert record["outcome"] == "succeeded" and record["global_step_end"] == 500
    hosts = hosts_of(record)
    bed_addresses = {h.address for h in slurm3.bed.hosts}
    assert {h for attempts in hosts.values() for h in attempts} <= bed_addresses
    assert len({attempts[-1] for attempts in hosts.values()}) >= 2, hosts
    # The spread plan: training tasks on all three nodes, the ps apart.
    assert {hosts[t][-1] for t in ("chief:0", "worker:0", "worker:1", "worker:2")} == bed_addresses, hosts
    assert hosts["ps:0"] != hosts["ps:1"], hosts
    # TF_CONFIG came from the nodes' addresses and ports picked there.
    assert all(a.split(":")[0] in bed_addresses and int(a.split(":")[1]) > 0
               for addrs in record["spec"]["cluster"].values() for a in addrs), record["spec"]
    assert "succeeded: training reached step 500" in out


@pytest.mark.parametrize("start", ["warm", "cold"])
def test_a_killed_task_restarts_as_a_new_step_on_its_node(slurm3, tmp_path, start):
    model_dir = tmp_path / "model"
    script = export(slurm3, tmp_path, str(probe_spec(tmp_path)), "--model_dir", str(model_dir),
                    "--train_steps", "3000", "--model", "models.probe")
    if start == "cold":  # as a user edits the script's launcher line: every task process a step of its own
        script.write_text(script.read_text().replace(" --backend slurm ", " --backend slurm --nowarm_starts "))
    job_id = submit(slurm3, tmp_path, script, "-N3")
    wait_for(lambda: _trained_a_while(tmp_path) or slurm3.job(job_id).get("JobState") not in ("PENDING", "RUNNING"),
             timeout=240, what="training to start")
    host, pid = slurm3.bed.tasks()["worker:0"]
    # Warm (the default): forked from its node's warm process, a step of its own; cold: its step's process.
    assert ("launcher.task.warm" in psutil.Process(pid).parent().cmdline()) == (start == "warm")
    os.kill(pid, 9)
    job = wait_for_end(slurm3, job_id)
    out = job_output(tmp_path)
    assert job["JobState"] == "COMPLETED", out[-3000:]
    worker = next(t for t in last_run(model_dir)["tasks"] if (t["job"], t["index"]) == ("worker", 0))
    assert worker["exit_codes"] == [137, 0], worker
    assert [a["host"] for a in worker["attempts"]] == [slurm3.bed[host].address] * 2
    assert "[launcher] worker:0 exited 137 (SIGKILL); restarting (1/3)" in out
    assert checkpoint_steps(model_dir)[-1] == 3000


def _trained_a_while(tmp_path: pathlib.Path) -> bool:
    return "steps/s" in job_output(tmp_path)


@pytest.mark.parametrize("how", ["scancel", "warning signal"])
def test_scancel_and_the_time_limit_warning_end_the_run_as_a_preemption(fresh_slurm3, tmp_path, how):
    # A cluster of its own: a cancelled job has been seen to leave its batch node drained ("Kill task
    # failed", see docs/slurm.md), which would keep the next test's job pending.
    slurm3 = fresh_slurm3
    model_dir = tmp_path / "model"
    # The warning comes 90-120 s after the start (Slurm checks about every 30 s): well after training has
    # begun, and 150 s before the limit, so that even on loaded cores the stop ends before Slurm's SIGKILL
    # (with 90 s left, the kill once came first).
    options = ("--time_limit", "4", "--warning_secs", "150") if how == "warning signal" else ()
    # Until the warning the six tasks only have to keep training: at 5 steps a second each, not 20, they
    # leave the cores to the other tests (about 45 CPU-seconds less).
    spec = probe_spec(tmp_path, step_sleep_secs=0.2 if how == "warning signal" else 0.05)
    script = export(slurm3, tmp_path, str(spec), "--model_dir", str(model_dir),
                    "--train_steps", "100000", "--model", "models.probe", *options)
    job_id = submit(slurm3, tmp_path, script, "-N3")
    wait_for(lambda: _trained_a_while(tmp_path) or slurm3.job(job_id).get("JobState") not in ("PENDING", "RUNNING"),
             timeout=240, what="training to start")
    if how == "scancel":
        time.sleep(3)
        assert slurm3.run(["scancel", job_id]).returncode == 0
    job = wait_for_end(slurm3, job_id, timeout=300)
    out = job_output(tmp_path)
    record = job_record(model_dir, job, out)
    assert record["outcome"] == "preempted" and record["exit_code"] == 143, out[-3000:]
    assert job["ExitCode"].startswith("143:"), job
    step = checkpoint_steps(model_dir)[-1]
    assert step > 0 and record["global_step_end"] == step  # saved at the step reached (no timed saves: 600 s)
    assert "received SIGTERM" in out and f"newest checkpoint at step {step}" in out


def test_a_lost_node_s_tasks_move_to_nodes_with_room(fresh_slurm3, tmp_path):
    model_dir = tmp_path / "model"
    spec = tmp_path / "spec.json"  # chief, worker and ps: one on each node, room for more on every one
    spec.write_text(json.dumps({"cluster": {"chief": ["localhost:0"], "worker": ["localhost:0"], "ps": ["localhost:0"]},
                                "flags": {"chief": ["--step_sleep_secs=0.05", "--save_checkpoint_steps=50"],
                                          "worker": ["--step_sleep_secs=0.05"]}}))
    script = export(fresh_slurm3, tmp_path, str(spec), "--model_dir", str(model_dir), "--train_steps", "600",
                    "--model", "models.probe")
    job_id = submit(fresh_slurm3, tmp_path, script, "-N3", "--ntasks=6")  # 2 CPUs on every node: room to move
    wait_for(lambda: len(checkpoint_steps(model_dir)) >= 3 or fresh_slurm3.job(job_id).get("JobState") not in ("PENDING", "RUNNING"),
             timeout=240, what="a few checkpoints")
    placed = fresh_slurm3.bed.tasks()
    lost = placed["ps:0"][0]
    assert lost != 1, placed  # the batch step (the launcher) runs on h1
    fresh_slurm3.bed[lost].kill_all()  # the machine dies: slurmd, the step, the task
    job = wait_for_end(fresh_slurm3, job_id, timeout=400)
    out = job_output(tmp_path)
    assert job["JobState"] == "COMPLETED", out[-4000:]
    record = last_run(model_dir)
    ps = next(t for t in record["tasks"] if t["job"] == "ps")
    moved = ps["attempts"][-1]["moved"]
    lost_address = fresh_slurm3.bed[lost].address
    assert moved["from"] == lost_address and moved["to"] != lost_address and moved["why"] == f"node h{lost} lost"
    assert f"[launcher] ps:0 moves from {lost_address} to {moved['to']}:" in out
    assert checkpoint_steps(model_dir)[-1] == 600 and record["outcome"] == "succeeded"


def test_a_lost_node_whose_tasks_fit_nowhere_ends_the_run_naming_what_is_missing(fresh_slurm3, tmp_path):
    model_dir = tmp_path / "model"  # local4: six tasks on six CPUs, no room anywhere once a node is gone
    script = export(fresh_slurm3, tmp_path, str(probe_spec(tmp_path)), "--model_dir", str(model_dir),
                    "--train_steps", "100000", "--model", "models.probe")
    job_id = submit(fresh_slurm3, tmp_path, script, "-N3")
    wait_for(lambda: _trained_a_while(tmp_path) or fresh_slurm3.job(job_id).get("JobState") not in ("PENDING", "RUNNING"),
             timeout=240, what="training to start")
    fresh_slurm3.bed[3].kill_all()
    job = wait_for_end(fresh_slurm3, job_id, timeout=400)
    out = job_output(tmp_path)
    record = last_run(model_dir)
    assert record["exit_code"] == 1 and job["ExitCode"].startswith("1:"), out[-4000:]
    assert ("lost its node h3 (10.213.0.3) and cannot move: the Slurm allocation (job "
            f"{job_id}) lacks CPU: 1 missing (1 task x 1 = 1 needed, 0 free on 2 alive nodes)") in record["summary"]


def test_outside_an_allocation_the_slurm_backend_is_refused_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-m", "launcher", "run", "--spec", "local2", "--backend", "slurm",
                           "--model_dir", str(tmp_path / "model")], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: --backend slurm runs inside a Slurm allocation (a batch script or salloc), and SLURM_JOB_ID is "
        "not set: submit the script of `launcher export --format sbatch`"]
    assert not (tmp_path / "model").exists()


# --- units ----------------------------------------------------------------------------------------------------

def test_cpus_per_node_and_node_states():
    assert slurm_backend.cpus_per_node("2(x3)", 3) == [2, 2, 2]
    assert slurm_backend.cpus_per_node("4,2(x2)", 3) == [4, 2, 2]
    with pytest.raises(UserError):
        slurm_backend.cpus_per_node("2(x2)", 3)
    assert not slurm_backend.node_lost("IDLE") and not slurm_backend.node_lost("MIXED")
    assert all(slurm_backend.node_lost(s) for s in ("IDLE*", "DOWN", "DOWN*+DRAIN", "MIXED+NOT_RESPONDING", "FAIL"))


def _config(cluster: dict, **options) -> RunConfig:
    return RunConfig(spec=from_json(cluster, "spec.json"), model_dir="/shared/runs/a", **options)


LOCAL4 = {"chief": ["localhost:0"], "worker": ["localhost:0"] * 3, "ps": ["localhost:0"] * 2}


def test_batch_script_lines_come_from_the_spec():
    text = sbatch.script(_config(LOCAL4, train_steps=500, gpus_per_task=1), "local4", cpus_per_task=2,
                         warning_secs=300, time_limit="1-00:00")
    lines = text.splitlines()
    assert [l for l in lines if l.startswith("#SBATCH")] == [
        "#SBATCH --job-name=launcher", "#SBATCH --ntasks=6", "#SBATCH --cpus-per-task=2",
        "#SBATCH --gpus-per-task=1", "#SBATCH --time=1-00:00", "#SBATCH --signal=B:TERM@300", "#SBATCH --no-kill"]
    run = shlex.split(lines[-1])
    assert run[0] == "exec" and run[2:6] == ["-m", "launcher", "run", "--backend"] and run[6] == "slurm"
    assert run[run.index("--spec") + 1] == "local4" and run[run.index("--gpus_per_task") + 1] == "1"
    # A spec that names machines: one node per host.
    named = {"chief": ["a:2222"], "worker": ["b:2222", "c:2222"], "ps": ["a:2223"]}
    assert "#SBATCH --nodes=3" in sbatch.script(_config(named), "/shared/spec.json").splitlines()


@pytest.mark.parametrize("options, words", [
    ({"job_name": "x\n#SBATCH --uid=0"}, "--name"),
    ({"job_name": "a;rm -rf /"}, "--name"),
    ({"time_limit": "10 --uid=0"}, "--time_limit"),
    ({"warning_secs": 0}, "--warning_secs 0"),
    ({"warning_secs": 70000}, "--warning_secs 70000"),
    ({"nodes": 7}, "--nodes 7"),
    ({"cpus_per_task": "2; reboot"}, "--cpus_per_task"),
])
def test_batch_script_values_are_checked(options, words):
    with pytest.raises(UserError, match=words.replace("\n", "")):
        sbatch.script(_config(LOCAL4), "local4", **options)


def test_hostile_values_stay_data_in_the_batch_script(tmp_path):
    """A spec path and model directory full of shell syntax reach the launcher as they are, run nothing."""
    evil = "$(touch pwned)`touch pwned2`;touch pwned3 'q\" x"
    config = RunConfig(spec=from_json({"chief": ["localhost:0"]}, "spec.json"), model_dir=f"/shared/{evil}")
    show_argv = tmp_path / "show_argv"  # stands for python: prints each argument on a line of its own
    show_argv.write_text("#!/bin/sh\nprintf '%s\\n' \"$@\"\n")
    show_argv.chmod(0o755)
    text = sbatch.script(config, f"/shared/{evil}.json", python=str(show_argv))
    script = tmp_path / "job.sh"
    script.write_text(text)
    done = subprocess.run(["sh", str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert done.returncode == 0 and not list(tmp_path.glob("pwned*")), done.stderr
    argv = done.stdout.splitlines()
    assert argv[argv.index("--spec") + 1] == f"/shared/{evil}.json"
    assert argv[argv.index("--model_dir") + 1] == f"/shared/{evil}"


def test_steps_ask_slurm_for_gpus_and_keep_the_ps_off_them():
    backend = slurm_backend.SlurmBackend.__new__(slurm_backend.SlurmBackend)
    backend._gpus, backend._cpus_per_task, backend._lost = (2, 0), 1, set()
    backend._node = {TaskId("chief", 0): "h1", TaskId("ps", 0): "h2"}
    chief = backend.step_argv(TaskId("chief", 0), "launcher-chief-0-1", ["python", "-m", "launcher.task"])
    ps = backend.step_argv(TaskId("ps", 0), "launcher-ps-0-1", ["python", "-m", "launcher.task"])
    assert chief[:7] == ["srun", "--nodes=1", "--ntasks=1", "--nodelist=h1", "--exact", "--cpus-per-task=1",
                         "--gpus-per-task=2"]
    assert "--gres=none" in ps and not any(a.startswith("--gpus") for a in ps)
    assert chief[-3:] == ["python", "-m", "launcher.task"]


def test_only_srun_itself_can_say_that_a_node_failed(tmp_path):
    """A task printing srun's words is a task's line; srun's own line (unlabelled) is believed."""
    fake_srun = ["/bin/sh", "-c", "echo '0: srun: error: Node failure on h1'; echo '0: [status line]'"]
    lines: list[str] = []
    step = slurm_backend.SlurmStep("1", "launcher-ps-0-1", fake_srun, dict(os.environ), lines.append, "h1",
                                   lambda node: "IDLE")
    wait_for(lambda: step.poll() is not None, timeout=30, what="the fake srun to end")
    assert step.poll() == 0 and not step.node_died
    assert lines == ["srun: error: Node failure on h1\n", "[status line]\n"]
    fake_srun = ["/bin/sh", "-c", "echo 'srun: error: Node failure on h1'"]
    step = slurm_backend.SlurmStep("1", "launcher-ps-0-2", fake_srun, dict(os.environ), lines.append, "h1",
                                   lambda node: "DOWN")
    wait_for(lambda: step.poll() is not None, timeout=30, what="the fake srun to end")
    assert step.poll() == -9 and step.node_died
