"""Hostile specs, through the real command line: each ends with one line naming what is wrong, exit 2, no
traceback, nothing started and no model directory made."""

from __future__ import annotations

import json

import pytest

from launcher.cluster import spec as spec_lib

HOSTILE = {
    "nested 100 000 deep": ("[" * 100_000 + "]" * 100_000, "nested 100000 levels deep: a spec nests at most 16"),
    "200 001 tasks": (json.dumps({"chief": ["localhost:0"], "worker": ["localhost:0"] * 200_000}),
                      "bytes: a spec may have at most 1048576"),
    "more tasks than the limit": (json.dumps({"chief": ["localhost:0"], "worker": ["localhost:0"] * 1000}),
                                  "cluster: 1001 tasks: a spec may have at most 1000"),
    "one address under two names": ('{"chief": ["localhost:2222"], "worker": ["127.0.0.1:2222"]}',
                                    "cluster.worker[0]: address '127.0.0.1:2222' is used twice (also "
                                    "cluster.chief[0] as 'localhost:2222', the same address)"),
    "a duplicate key": ('{"chief": ["localhost:0"], "chief": ["localhost:1"]}',
                        "key 'chief' appears twice in one object"),
    "a duplicate key deeper down": ('{"cluster": {"chief": ["localhost:0"]}, "flags": {"worker": [], "worker": []}}',
                                    "key 'worker' appears twice in one object"),
    "a number too long for int()": ('{"chief": [' + "1" * 5000 + ']}', "not a usable JSON spec"),
    "not UTF-8": (b'{"chief": ["\xff"]}', "not UTF-8"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_spec_is_one_line_and_exit_2(runner, tmp_path, name):
    text, expected = HOSTILE[name]
    spec = tmp_path / "hostile.json"
    spec.write_bytes(text if isinstance(text, bytes) else text.encode())
    launch = runner.run("run", "--spec", str(spec), "--model_dir", str(tmp_path / "model"), timeout=120)
    assert launch.proc.returncode == 2, launch.stderr[-2000:]
    lines = launch.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {spec}: ") and expected in lines[0], lines[:3]
    assert not (tmp_path / "model").exists()


def test_names_of_one_address_are_one_address():
    with pytest.raises(spec_lib.SpecError, match="used twice"):
        spec_lib.parse_text('{"chief": ["127.0.0.1:7000"], "ps": ["localhost:7000"]}', "s.json")
    # Port 0 is picked per task: never shared, whatever the host is called.
    spec_lib.parse_text('{"chief": ["127.0.0.1:0"], "ps": ["localhost:0"]}', "s.json")


def test_brackets_inside_strings_are_not_nesting():
    assert spec_lib._nesting('{"a": ["[[[[{{{{\\"[["]}') == 2
