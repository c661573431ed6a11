"""`run.json` in the model directory: what each run of the launcher did, one entry per run, appended."""

from __future__ import annotations

import json
import os
import tempfile

FILE_NAME = "run.json"


def path(model_dir: str) -> str:
    return os.path.join(model_dir, FILE_NAME)


def read(model_dir: str) -> list[dict]:
    """Every run recorded so far, oldest first."""
    try:
        with open(path(model_dir)) as f:
            runs = json.load(f)["runs"]
    except FileNotFoundError:
        return []
    if not isinstance(runs, list):
        raise TypeError(f"{path(model_dir)}: \"runs\" is not a list")
    return runs


def append(model_dir: str, run: dict) -> None:
    """Add `run` to the record; written to a temporary file and renamed, so a kill leaves no half record."""
    try:
        runs = read(model_dir)
    except (ValueError, KeyError, TypeError):
        os.replace(path(model_dir), path(model_dir) + ".unreadable")  # keep it for the user, start anew
        runs = []
    runs.append(run)
    fd, tmp = tempfile.mkstemp(dir=model_dir, prefix=".run.json.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"runs": runs}, f, indent=2)
            f.write("\n")
        os.replace(tmp, path(model_dir))
    except BaseException:
        os.unlink(tmp)  # a full disk must not leave half a record behind
        raise
