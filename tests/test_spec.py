"""Cluster specs: the bundled ones, the accepted shapes, and the message each bad input gets."""

from __future__ import annotations

import json

import pytest

from launcher.cluster import spec
from launcher.cluster.errors import SpecError
from launcher.cluster.spec import Address, TaskId


def write(tmp_path, content, name="spec.json"):
    """A spec file holding `content` (raw text, or an object written as JSON); returns its path."""
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.mark.parametrize("name", ["local1", "local2", "local4", "local2.json"])
def test_bundled_specs_load_by_bare_name(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # found among the bundled specs, not in the working directory
    stem = name.removesuffix(".json")
    loaded = spec.load(name)
    assert loaded.source.endswith(f"cluster_specs/{stem}.json")
    expected = {"local1": (1, 0, 0), "local2": (1, 1, 1), "local4": (1, 3, 2)}[stem]
    assert (loaded.count("chief"), loaded.count("worker"), loaded.count("ps")) == expected
    assert all(a == Address("localhost", 0) for job in loaded.cluster.values() for a in job)
    assert loaded.flags == {}


def test_bare_cluster_object_is_a_spec(tmp_path):
    path = write(tmp_path, {"chief": ["localhost:2222"], "worker": ["localhost:2223", "localhost:2224"]})
    loaded = spec.load(str(path))
    assert loaded.cluster_dict() == {"chief": ["localhost:2222"], "worker": ["localhost:2223", "localhost:2224"]}
    assert list(loaded.tasks()) == [TaskId("chief", 0), TaskId("worker", 0), TaskId("worker", 1)]
    assert loaded.source == str(path)


def test_spec_with_flags(tmp_path):
    path = write(tmp_path, {"cluster": {"chief": ["localhost:0"], "worker": ["localhost:0"]},
                            "flags": {"worker": ["--learning_rate=0.05", "--batch_size=8"]}})
    loaded = spec.load(str(path))
    assert loaded.role_flags("worker") == ["--learning_rate=0.05", "--batch_size=8"]
    assert loaded.role_flags("chief") == []


def test_ipv6_address_in_brackets_parses():
    address = spec.parse_address("[::1]:0", "s.json", "cluster.chief[0]")
    assert address == Address("::1", 0)
    assert str(address) == "[::1]:0"
    assert spec.from_json({"chief": ["[::1]:2222"]}, "s.json").cluster_dict() == {"chief": ["[::1]:2222"]}


def test_cluster_dict_training_only_drops_the_evaluator():
    loaded = spec.from_json({"chief": ["h:1"], "ps": ["h:2"], "evaluator": ["h:3"]}, "s.json")
    assert loaded.cluster_dict() == {"chief": ["h:1"], "ps": ["h:2"], "evaluator": ["h:3"]}
    assert loaded.cluster_dict(training_only=True) == {"chief": ["h:1"], "ps": ["h:2"]}


def test_with_flags_appends_after_the_specs_own_flags_per_role():
    loaded = spec.from_json({"cluster": {"chief": ["h:1"], "worker": ["h:2"], "ps": ["h:3"]},
                             "flags": {"worker": ["--lr=0.1"], "chief": ["--a=1"]}}, "s.json")
    merged = loaded.with_flags({"worker": ["--lr=0.2"], "ps": ["--b=2"]})
    assert merged.role_flags("worker") == ["--lr=0.1", "--lr=0.2"]
    assert merged.role_flags("chief") == ["--a=1"]
    assert merged.role_flags("ps") == ["--b=2"]
    assert loaded.role_flags("worker") == ["--lr=0.1"]  # the original is left alone


CHIEF = {"chief": ["localhost:0"]}


@pytest.mark.parametrize("content, field, fragments", [
    pytest.param("{not json", "", ["not valid JSON", "line 1 column 2"], id="malformed JSON"),
    pytest.param(["localhost:0"], "", ["must be a JSON object", "got list"], id="spec is a list"),
    pytest.param({**CHIEF, "master": ["localhost:0"]}, "cluster.master", ["unknown job name 'master'"],
                 id="unknown job"),
    pytest.param({"worker": ["localhost:0"]}, "cluster.chief", ["exactly one chief", "it has none"], id="no chief"),
    pytest.param({"chief": ["localhost:0", "localhost:0"]}, "cluster.chief", ["exactly one chief", "it has 2"],
                 id="two chiefs"),
    pytest.param({**CHIEF, "evaluator": ["localhost:0", "localhost:0"]}, "cluster.evaluator",
                 ["at most one evaluator"], id="two evaluators"),
    pytest.param({"chief": ["localhost"]}, "cluster.chief[0]", ["'localhost' is not host:port"], id="no port"),
    pytest.param({**CHIEF, "ps": ["localhost:http"]}, "cluster.ps[0]", ["port 'http'", "is not a number"],
                 id="non-numeric port"),
    pytest.param({**CHIEF, "worker": ["localhost:1", "localhost:70000"]}, "cluster.worker[1]",
                 ["port 70000", "out of range"], id="port out of range"),
    pytest.param({"chief": ["localhost:2222"], "worker": ["localhost:2222"]}, "cluster.worker[0]",
                 ["'localhost:2222' is used twice", "also cluster.chief[0]"], id="same address twice"),
    pytest.param({"cluster": CHIEF, "flagz": {}}, "flagz", ["unknown key"], id="unknown top-level key"),
    pytest.param({"cluster": CHIEF, "flags": {"trainer": ["--a=1"]}}, "flags.trainer", ["unknown role 'trainer'"],
                 id="flags for unknown role"),
    pytest.param({"cluster": CHIEF, "flags": {"chief": ["--a=1", "learning_rate=0.1"]}}, "flags.chief[1]",
                 ["'learning_rate=0.1' is not a flag"], id="flag without --"),
])
def test_bad_spec_names_file_field_and_value(tmp_path, content, field, fragments):
    path = write(tmp_path, content)
    with pytest.raises(SpecError) as raised:
        spec.load(str(path))
    message = str(raised.value)
    assert message.startswith(f"{path}: {field}: " if field else f"{path}: ")
    assert raised.value.field == field
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("missing", ["no_such_dir/nope.json", "local9"])
def test_missing_spec_lists_the_bundled_specs(tmp_path, monkeypatch, missing):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as raised:
        spec.load(missing)
    assert str(raised.value) == f"{missing}: no such spec file (bundled specs: local1, local2, local4)"
