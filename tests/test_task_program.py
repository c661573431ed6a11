"""The task program on its own, as an engine other than the launcher would start it."""

import json
import subprocess
import sys

import portpicker

from conftest import checkpoint_steps


def _task(runner, args, env_extra=None, timeout=120):
    env = runner.env()
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "launcher.task", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, start_new_session=True)


def test_identity_and_cluster_come_from_tf_config(runner, tmp_path):
    cluster = {"chief": [f"localhost:{portpicker.pick_unused_port()}"]}
    tf_config = json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})
    done = _task(runner, [f"--model_dir={tmp_path}", "--train_steps=20"], {"TF_CONFIG": tf_config})
    assert done.returncode == 0, done.stderr[-2000:]
    assert checkpoint_steps(tmp_path)[-1] == 20


def test_a_ps_that_never_answers_ends_the_task_at_the_recovery_deadline(runner, tmp_path):
    cluster = {"chief": [f"localhost:{portpicker.pick_unused_port()}"],
               "ps": [f"localhost:{portpicker.pick_unused_port()}"]}  # nothing will listen there
    tf_config = json.dumps({"cluster": cluster, "task": {"type": "chief", "index": 0}})
    done = _task(runner, [f"--model_dir={tmp_path}", "--recovery_deadline_secs=3"], {"TF_CONFIG": tf_config})
    assert done.returncode == 1, done.stderr[-2000:]
    assert "gave up after 3s of failing to reach the cluster" in done.stderr
    assert cluster["ps"][0] in done.stderr


def test_unknown_task_flag_is_bad_input(runner, tmp_path):
    tf_config = json.dumps({"cluster": {"chief": ["localhost:0"]}, "task": {"type": "chief", "index": 0}})
    done = _task(runner, ["--no_such_flag=1", f"--model_dir={tmp_path}"], {"TF_CONFIG": tf_config})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("error:") and "no_such_flag" in lines[-1]
    assert "Traceback" not in done.stderr


def test_without_tf_config_the_task_says_what_it_needs(runner, tmp_path):
    env = {k: v for k, v in runner.env().items() if k != "TF_CONFIG"}
    done = subprocess.run([sys.executable, "-m", "launcher.task", f"--model_dir={tmp_path}"], env=env,
                          capture_output=True, text=True, timeout=120, start_new_session=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: TF_CONFIG must give the cluster and this task")
    assert not list(tmp_path.iterdir())


def test_a_model_without_an_optimizer_is_bad_input(runner, tmp_path):
    tf_config = json.dumps({"cluster": {"chief": [f"localhost:{portpicker.pick_unused_port()}"]},
                            "task": {"type": "chief", "index": 0}})
    done = _task(runner, [f"--model_dir={tmp_path}", "--model=models.no_optimizer"], {"TF_CONFIG": tf_config})
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (
        "error: --model 'models.no_optimizer': build('train') returned no optimizer; training needs one")
    assert not list(tmp_path.glob("model.ckpt-*"))
