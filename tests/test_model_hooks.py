"""launcher.Model's hooks are checked where the model is built: a list of hooks, each one with the protocol's
methods (the task checks that each is a tf.compat.v1.train.SessionRunHook); and the documented example's
hooks run where docs/model-hooks.md says, on a real cluster."""

import json
import re

import pytest

import launcher
from conftest import REPO
from launcher.cluster.errors import UserError


class _Hook:
    def begin(self): pass
    def after_create_session(self, session, coord): pass
    def before_run(self, run_context): pass
    def after_run(self, run_context, run_values): pass
    def end(self, session): pass


@pytest.mark.parametrize("field", ["training_hooks", "training_chief_hooks", "evaluation_hooks"])
def test_hooks_are_kept_as_a_tuple(field):
    hooks = [_Hook(), _Hook()]
    assert getattr(launcher.Model(**{field: hooks}), field) == tuple(hooks)
    assert getattr(launcher.Model(), field) == ()


@pytest.mark.parametrize("value, message", [
    (_Hook(), r"training_hooks must be a list of tf.compat.v1.train.SessionRunHook, not _Hook"),
    ("hook", r"training_hooks must be a list of .* not str"),
    ([_Hook(), object()], r"training_hooks\[1\] \(object\) is not a tf.compat.v1.train.SessionRunHook"),
])
def test_anything_else_is_refused_in_one_line(value, message):
    with pytest.raises(UserError, match=message):
        launcher.Model(training_hooks=value)


def test_the_documented_example_runs_its_hooks_where_it_says(runner, tmp_path):
    code = re.search(r"```python\n# my_model.py\n(.*?)```", (REPO / "docs" / "model-hooks.md").read_text(), re.S)
    (tmp_path / "my_model.py").write_text(code.group(1))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"chief": ["localhost:0"], "worker": ["localhost:0"], "ps": ["localhost:0"],
                                "evaluator": ["localhost:0"]}))
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", str(spec), "--model", "my_model", "--model_dir", str(model_dir),
                        "--train_steps", "1100", "--chief_flags=--log_step_count_steps=10")
    assert launch.proc.returncode == 0, launch.stderr
    logs = {name: (model_dir / "logs" / f"{name}.log").read_text() for name in ("chief-0", "worker-0", "evaluator-0")}
    # training_hooks on the chief and the worker; the chief's LoggingTensorHook beside the launcher's own.
    steps = [int(re.search(r"this task ran (\d+) steps", logs[name]).group(1)) for name in ("chief-0", "worker-0")]
    # 1100 updates; a step that reached the target after another one (refused by the ticket) ran too.
    assert all(s > 0 for s in steps) and 1100 <= sum(steps) <= 1101, steps
    assert "mean = " in logs["chief-0"] and "mean = " in logs["worker-0"]
    # training_chief_hooks on the chief only: the ProfilerHook traces a step of the chief every 100 global
    # steps from its first (the task's working directory is the launcher's), and a timeline names the
    # devices of the task that ran the step. (Its events files say nothing: chief and worker both build the
    # model, so both construct the hook, whose file writer writes the graph at once.) Counting timelines
    # proved nothing stable: the count depends on the global step of the chief's first step, which comes
    # after some of the worker's when the chief is slow to start (at save_steps=1000, a chief that started
    # after global step 100 traced nothing).
    timelines = sorted((tmp_path / "prof").glob("timeline-*.json"))
    assert timelines
    for timeline in timelines:
        devices = {event["args"]["name"] for event in json.loads(timeline.read_text())["traceEvents"]
                   if event.get("name") == "process_name"}
        assert any(d.startswith("/job:chief/") for d in devices), (timeline.name, devices)
        assert not any(d.startswith("/job:worker/") for d in devices), (timeline.name, devices)
    # evaluation_hooks: one batch per checkpoint (the example reads no input pipeline).
    assert "this task ran 1 steps" in logs["evaluator-0"]
