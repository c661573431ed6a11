"""GPUs: each chief and worker its own devices, every ps none, too few refused before anything starts.

No GPU exists here: the assignment is read from the tasks' own environments (the test model prints its
CUDA_VISIBLE_DEVICES into its log), TensorFlow then runs on the CPU and the run must reach its target.
Ray's reservations and the TFJob's limits are checked from the plan and the manifest.
"""

from __future__ import annotations

import copy
import json
import os
import pathlib
import signal
import stat

import pytest

from conftest import checkpoint_steps, last_run, wait_for
from launcher.cluster import gpus, settings
from launcher.cluster.errors import UserError
from launcher.cluster.run_config import RunConfig
from launcher.cluster.spec import PS, TaskId, from_json
from launcher.export import tfjob
from launcher.launch.backends import placement

LOCAL4 = {"cluster": {"chief": ["localhost:0"], "worker": ["localhost:0"] * 3, "ps": ["localhost:0"] * 2}}
WITH_EVALUATOR = {"cluster": {"chief": ["localhost:0"], "worker": ["localhost:0"], "ps": ["localhost:0"],
                              "evaluator": ["localhost:0"]}}


def spec_of(data: dict):
    return from_json(copy.deepcopy(data), "spec.json")


# --- which devices (unit) -----------------------------------------------------------------------------------

def test_visible_devices_come_from_cuda_visible_devices_first(tmp_path):
    assert gpus.visible({"CUDA_VISIBLE_DEVICES": "0,1, 3"}) == (["0", "1", "3"], "CUDA_VISIBLE_DEVICES=0,1, 3")
    assert gpus.visible({"CUDA_VISIBLE_DEVICES": ""})[0] == []
    assert gpus.visible({"CUDA_VISIBLE_DEVICES": "2,-1,3"})[0] == ["2"]  # CUDA stops at an invalid id
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n[ \"$1\" = -L ] || exit 9\n"
                   "echo 'GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaa)'\n"
                   "echo 'GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-bbbb)'\n")
    smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
    assert gpus.visible({}, nvidia_smi=str(smi)) == (["0", "1"], "nvidia-smi -L")
    if not any(os.access(os.path.join(d, "nvidia-smi"), os.X_OK) for d in os.environ["PATH"].split(os.pathsep)):
        assert gpus.visible({}) == ([], "no nvidia-smi on this machine")


def test_each_training_task_gets_disjoint_devices_and_every_ps_none():
    envs = gpus.assign(spec_of(LOCAL4), 2, 0, [str(i) for i in range(8)], "CUDA_VISIBLE_DEVICES=0,...,7")
    training = {t: e["CUDA_VISIBLE_DEVICES"] for t, e in envs.items() if t.job != PS}
    assert training == {TaskId("chief", 0): "0,1", TaskId("worker", 0): "2,3", TaskId("worker", 1): "4,5",
                        TaskId("worker", 2): "6,7"}
    assert {t: e for t, e in envs.items() if t.job == PS} == {TaskId(PS, 0): {"CUDA_VISIBLE_DEVICES": ""},
                                                              TaskId(PS, 1): {"CUDA_VISIBLE_DEVICES": ""}}
    # The evaluator by its own count; with 0 GPUs per training task their view is left alone.
    envs = gpus.assign(spec_of(WITH_EVALUATOR), 0, 1, ["GPU-x", "GPU-y"], "nvidia-smi -L")
    assert envs == {TaskId("ps", 0): {"CUDA_VISIBLE_DEVICES": ""}, TaskId("evaluator", 0): {"CUDA_VISIBLE_DEVICES": "GPU-x"}}
    assert gpus.assign(spec_of(LOCAL4), 0, 0, [], "none") == {}  # no GPUs asked for: nothing changes


def test_too_few_devices_are_refused_in_one_line():
    with pytest.raises(UserError) as e:
        gpus.assign(spec_of(LOCAL4), 1, 0, ["0", "1"], "CUDA_VISIBLE_DEVICES=0,1")
    assert str(e.value) == ("--gpus_per_task 1: 4 GPUs needed (1 chief x 1 + 3 workers x 1), 2 on this machine "
                            "(CUDA_VISIBLE_DEVICES=0,1)")


def test_gpu_counts_are_checked_options():
    with pytest.raises(UserError, match=r"--gpus_per_task -1 is not a non-negative integer"):
        RunConfig(spec=spec_of(LOCAL4), gpus_per_task=-1)
    with pytest.raises(UserError, match="--evaluator_gpus needs an evaluator"):
        RunConfig(spec=spec_of(LOCAL4), evaluator_gpus=1)


# --- Ray: GPUs are reserved per task (unit: the plan) -------------------------------------------------------

def test_ray_plan_reserves_gpus_for_training_tasks_only():
    demand = placement.with_gpus({"CPU": 1.0}, lambda t: gpus.count_for(t.job, 1, 0))
    nodes = [placement.Node("a", "10.0.0.1", {"CPU": 4, "GPU": 2}), placement.Node("b", "10.0.0.2", {"CPU": 4, "GPU": 2})]
    tasks = list(spec_of(LOCAL4).tasks())
    chosen = placement.plan(tasks, demand, nodes, settings.SPREAD)
    assert [n.free["GPU"] for n in nodes] == [0, 0]  # 4 training tasks, 4 GPUs; the ps take none
    assert {chosen[TaskId(PS, 0)].id, chosen[TaskId(PS, 1)].id} == {"a", "b"}
    nodes = [placement.Node("a", "10.0.0.1", {"CPU": 8, "GPU": 3})]
    with pytest.raises(placement.Unplaceable) as e:
        placement.plan(tasks, demand, nodes, settings.SPREAD)
    assert str(e.value) == ("the Ray cluster lacks GPU: 1 missing (4 tasks x 1 = 4 needed, 3 free on 1 alive node)")


# --- TFJob: nvidia.com/gpu limits (against the vendored CRD, as test_export does) ----------------------------

def test_tfjob_limits_gpus_of_training_pods_and_hides_them_from_the_ps():
    from test_export import schema_errors, validator as make_validator  # noqa: F401

    spec = from_json({"cluster": {"chief": ["a:2222"], "worker": ["b:2222", "c:2222"], "ps": ["d:2222"],
                                  "evaluator": ["e:2222"]}}, "spec.json")
    config = RunConfig(spec=spec, model_dir="/shared/run", gpus_per_task=2, evaluator_gpus=1)
    manifest = tfjob.manifest(config, "registry.example.com/launcher:1", pvc="runs")
    replicas = manifest["spec"]["tfReplicaSpecs"]
    container = {kind: r["template"]["spec"]["containers"][0] for kind, r in replicas.items()}
    assert container["Chief"]["resources"] == {"limits": {"nvidia.com/gpu": 2}}
    assert container["Worker"]["resources"] == {"limits": {"nvidia.com/gpu": 2}}
    assert container["Evaluator"]["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert "resources" not in container["PS"]
    assert {"name": "CUDA_VISIBLE_DEVICES", "value": ""} in container["PS"]["env"]
    for kind, c in container.items():  # memory growth everywhere
        assert {"name": "TF_FORCE_GPU_ALLOW_GROWTH", "value": "true"} in c["env"], kind
    import jsonschema
    import yaml

    from test_export import CRD_FILE

    schema = yaml.safe_load(CRD_FILE.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema_errors(jsonschema.Draft7Validator(schema), manifest) == []


# --- a real local run -------------------------------------------------------------------------------------

def gpu_env_lines(log: pathlib.Path) -> list[dict]:
    if not log.exists():
        return []
    return [json.loads(line.split("gpu-env: ", 1)[1]) for line in log.read_text().splitlines() if "gpu-env: " in line]


def test_local4_gives_each_training_task_one_gpu_and_keeps_it_across_a_restart(runner, tmp_path):
    model_dir = tmp_path / "model"
    run = runner.start("run", "--spec", "local4", "--gpus_per_task", "1", "--model_dir", str(model_dir),
                       "--train_steps", "300", "--model", "models.gpu_env",
                       "--chief_flags=--step_sleep_secs=0.03", "--worker_flags=--step_sleep_secs=0.03",
                       prefix=("env", "CUDA_VISIBLE_DEVICES=0,1,2,3"))
    logs = model_dir / "logs"
    # worker:1 is killed once it has said which GPU it sees; its restart must see the same one.
    wait_for(lambda: run.proc.poll() is not None or gpu_env_lines(logs / "worker-1.log"), timeout=240,
             what="worker:1 to start")
    assert run.proc.poll() is None, run.stderr[-3000:]
    tasks = run.tasks()
    # A ps builds no model: its environment is read from the process itself (a forked one shows its own).
    ps_env = {name: tasks[name].environ() for name in ("ps:0", "ps:1")}
    victim = tasks["worker:1"]
    victim.send_signal(signal.SIGKILL)
    assert run.wait(400) == 0, run.stderr[-3000:]
    seen = {name: gpu_env_lines(logs / f"{name}.log") for name in
            ("chief-0", "worker-0", "worker-1", "worker-2")}
    training = [seen[n][0]["CUDA_VISIBLE_DEVICES"] for n in ("chief-0", "worker-0", "worker-1", "worker-2")]
    assert sorted(training) == ["0", "1", "2", "3"], seen
    assert all(env.get("CUDA_VISIBLE_DEVICES") == "" for env in ps_env.values()), ps_env
    assert all(env.get("TF_FORCE_GPU_ALLOW_GROWTH") == "true" for env in ps_env.values()), ps_env
    assert len(seen["worker-1"]) == 2 and seen["worker-1"][1] == seen["worker-1"][0], seen["worker-1"]
    assert all(line["TF_FORCE_GPU_ALLOW_GROWTH"] == "true" for lines in seen.values() for line in lines)
    assert checkpoint_steps(model_dir)[-1] == 300
    record = last_run(model_dir)
    assert record["outcome"] == "succeeded" and record["global_step_end"] == 300


def test_too_few_gpus_are_refused_before_anything_starts(runner, tmp_path):
    model_dir = tmp_path / "model"
    run = runner.run("run", "--spec", "local4", "--gpus_per_task", "1", "--model_dir", str(model_dir),
                     prefix=("env", "CUDA_VISIBLE_DEVICES=0,1"), timeout=60)
    assert run.proc.returncode == 2
    assert run.stderr.splitlines() == ["error: --gpus_per_task 1: 4 GPUs needed (1 chief x 1 + 3 workers x 1), "
                                       "2 on this machine (CUDA_VISIBLE_DEVICES=0,1)"]
    assert not model_dir.exists()
