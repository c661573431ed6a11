"""Property-based: random and adversarial input to the three parsers of untrusted text (the spec loader,
the status-line parser, the run-record reader). No input makes any of them raise anything but the
project's one-line errors, and what they accept is of the types they promise."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings, strategies as st

from launcher.cluster import spec as spec_lib
from launcher.cluster import status, typed_json
from launcher.cluster.errors import UserError
from launcher.cluster.spec import TaskId
from launcher.launch import run_record
from launcher.launch import events
from launcher.launch.task_state import Attempt, TaskState
from launcher.report import page, summary

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2 ** 70, max_value=2 ** 70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                    st.sampled_from(["<img src=x onerror=alert(2)>", "chief", "worker", "localhost:0",
                                     "127.0.0.1:2222", "localhost:2222", "--flag=1", "lots"]))
keys = st.one_of(st.text(max_size=10), st.sampled_from(
    ["cluster", "flags", "chief", "worker", "ps", "evaluator", "event", "step", "local_steps", "metrics",
     "reason", "runs", "version", "tasks", "index", "job", "attempts", "sessions", "started", "outcome"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                            st.dictionaries(keys, inner, max_size=6)),
                           max_leaves=30)
brackets = st.text(alphabet='[]{}":,0123456789 \\ac', max_size=400)


# -- specs --

def _load(text: str) -> None:
    try:
        spec_lib.parse_text(text, "spec.json")
    except UserError as e:
        assert "\n" not in str(e)


@SETTINGS
@given(st.one_of(st.text(max_size=300), brackets))
def test_spec_loader_takes_any_text(text):
    _load(text)


@SETTINGS
@given(json_values)
def test_spec_loader_takes_any_json(value):
    _load(json.dumps(value))


@SETTINGS
@given(st.dictionaries(st.sampled_from(spec_lib.JOBS), st.lists(scalars, max_size=4), min_size=1))
def test_spec_loader_takes_any_cluster(cluster):
    _load(json.dumps(cluster))
    _load(json.dumps({"cluster": cluster, "flags": cluster}))


def test_spec_loader_takes_deep_nesting():
    for depth in (17, 1000, 100_000):
        _load("[" * depth + "]" * depth)
        _load('{"a":' * depth + "1" + "}" * depth)


# -- status lines --

def _state() -> TaskState:
    state = TaskState(TaskId("chief", 0), output=None)
    state.attempts.append(Attempt(started=1.0))
    return state


def _check_status(line: str) -> None:
    parsed = status.parse(line)
    if parsed is None:
        return
    fields = status.SCHEMA.get(parsed["event"], {})
    assert set(parsed) - {"event"} <= set(fields)
    assert all(fields[name](value) for name, value in parsed.items() if name != "event")
    state = _state()  # what the launcher does with it: book it, and record it
    event = events.from_status(state.task, parsed, mono=1.0, wall=1.0)  # as the loop turns it into an event
    if event is not None:
        state.apply(event)
    record = state.record(0.0)
    assert typed_json.decode(run_record.Task, typed_json.encode(record)) == record


@SETTINGS
@given(st.text(max_size=300))
def test_status_parser_takes_any_line(text):
    _check_status(status.PREFIX + text)
    _check_status(text)


@SETTINGS
@given(st.one_of(st.sampled_from(sorted(status.SCHEMA)), st.text(max_size=10)),
       st.dictionaries(keys, json_values, max_size=5))
def test_status_parser_takes_any_fields(event, fields):
    _check_status(status.PREFIX + json.dumps({**fields, "event": event}))


def test_status_parser_takes_deep_nesting():
    _check_status(status.PREFIX + '{"event": "progress", "step": ' + "[" * 100_000 + "]" * 100_000 + "}")


# -- run records --

def _read(text: str) -> None:
    try:
        runs = run_record.parse(text, "run.json")
    except run_record.RecordError as e:
        assert "\n" not in str(e)
        return
    summary.render(runs)  # what was accepted renders: every value has its type
    page.render(runs, "model")


VALID = typed_json.encode(run_record.Run(
    started="2026-01-01T00:00:00+00:00", outcome="succeeded", exit_code=0, train_steps=10,
    tasks=[run_record.Task("chief", 0, attempts=[run_record.Attempt(
        started=1.0, ended=2.0, exit_code=0, sessions=[run_record.Session(1.5, 0)],
        moved=run_record.Move("a", "b", "lost"), cause="why")])],
    hangs=[run_record.Hang(detected=1.2, verdict="v", stacks={"chief:0": "log:1"})],
    stragglers=[run_record.Straggler("worker:0", 2.5)], global_step_series=[(1.5, 3)],
    eval=run_record.Eval(3, {"loss": 0.5}), early_stop=run_record.EarlyStop(3, "plateau", 3)))


def _paths(value, path=()):
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*path, i))


def _replace(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


PATHS = list(_paths(VALID))


@SETTINGS
@given(st.sampled_from(PATHS), json_values)
def test_record_reader_takes_any_damage_to_a_valid_record(path, new):
    _read(json.dumps({"version": run_record.SCHEMA_VERSION, "runs": [_replace(VALID, path, new)]}))


@SETTINGS
@given(st.sampled_from(PATHS))
def test_record_reader_takes_a_missing_field(path):
    if not path:
        return
    parent = VALID
    for step in path[:-1]:
        parent = parent[step]
    if isinstance(parent, dict):
        damaged = _replace(VALID, path[:-1], {k: v for k, v in parent.items() if k != path[-1]})
        _read(json.dumps({"version": run_record.SCHEMA_VERSION, "runs": [damaged]}))


@SETTINGS
@given(st.one_of(st.text(max_size=300), brackets, json_values.map(json.dumps)))
def test_record_reader_takes_any_text(text):
    _read(text)
    _read(json.dumps({"version": run_record.SCHEMA_VERSION, "runs": [text]}))


@SETTINGS
@given(st.integers(min_value=1, max_value=len(json.dumps({"version": 2, "runs": [VALID]}))))
def test_record_reader_takes_a_truncated_record(cut):
    _read(json.dumps({"version": run_record.SCHEMA_VERSION, "runs": [VALID]})[:cut])


def test_the_valid_record_reads_back():
    assert typed_json.encode(run_record.parse(json.dumps({"version": 2, "runs": [VALID]}))) == [VALID]
