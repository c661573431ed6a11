"""`launcher report MODEL_DIR [--html PATH]` on the record of a real run: the summary on the terminal, and a
self-contained page (inline SVG, no script, nothing fetched) where --html says, by default in MODEL_DIR."""

from __future__ import annotations

import re

from conftest import last_run


def _report(runner, *args):
    launch = runner.run("report", *map(str, args), timeout=120)
    assert launch.proc.returncode == 0, launch.stderr
    return launch


def test_report_writes_a_self_contained_page_where_html_says(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--train_steps", "30")
    assert launch.proc.returncode == 0, launch.stderr
    assert last_run(model_dir)["outcome"] == "succeeded"
    default = model_dir / "report.html"

    out = tmp_path / "elsewhere" / "r.html"
    out.parent.mkdir()
    launch = _report(runner, model_dir, "--html", out)
    assert "succeeded" in launch.stdout and f"report: {out}" in launch.stdout
    page = out.read_text()
    assert "<svg" in page and "chief:0" in page
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|@import|url\(", page, re.I)
    # The only URL is SVG's namespace, an identifier that nothing fetches.
    assert set(re.findall(r"https?://[^\s\"'<>]+", page)) <= {"http://www.w3.org/2000/svg"}
    assert not default.exists()

    launch = _report(runner, model_dir, "--html", "-")
    assert "succeeded" in launch.stdout and "report:" not in launch.stdout and not default.exists()

    _report(runner, model_dir)
    assert "<svg" in default.read_text()
