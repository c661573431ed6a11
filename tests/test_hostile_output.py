"""A task's output is data: forged status lines never become markup in the report, nor a wrong-typed value
in the record, and the run they come from trains to its target."""

from __future__ import annotations

import html.parser
import json

from conftest import last_run

# Every element and attribute that the report page itself writes.
PAGE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "span", "i", "section",
             "table", "tr", "th", "td", "br", "div", "svg", "text", "line", "rect", "path", "circle", "polyline"}
PAGE_ATTRIBUTES = {"lang", "charset", "class", "style", "id", "xmlns", "width", "height", "font-family",
                   "font-size", "x", "y", "x1", "x2", "y1", "y2", "stroke", "stroke-width", "stroke-dasharray",
                   "fill", "rx", "d", "cx", "cy", "r", "text-anchor", "points"}


class _Elements(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]

    def handle_data(self, data):
        self.text.append(data)


def test_forged_status_lines_reach_neither_the_page_nor_the_record(runner, tmp_path):
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local2", "--model_dir", str(model_dir), "--model",
                        "models.hostile_status", "--train_steps", "60")
    assert launch.proc.returncode == 0, launch.stderr[-3000:]
    run = last_run(model_dir)
    assert run["global_step_end"] == 60 and run["outcome"] == "succeeded", run
    for task in run["tasks"]:  # the record's counts are the real ones: ints, never the forged values
        assert type(task["steps"]) is int
        for attempt in task["attempts"]:
            assert type(attempt["local_steps"]) is int
            assert all(s["step"] is None or type(s["step"]) is int for s in attempt["sessions"])
    report = runner.run("report", str(model_dir), timeout=120)
    assert report.proc.returncode == 0, report.stderr
    page = (model_dir / "report.html").read_text()
    parsed = _Elements()
    parsed.feed(page)
    assert parsed.tags <= PAGE_TAGS, parsed.tags - PAGE_TAGS
    assert {name for _, name, _ in parsed.attributes} <= PAGE_ATTRIBUTES
    assert not [a for a in parsed.attributes if "alert" in a[2] or a[1].startswith("on")]
    # The forged metric name arrived, as text: escaped, so the check above could have failed.
    assert "<script>alert(1)</script>" in "".join(parsed.text)
    assert "<img" not in page and "<script" not in page
    # The lines after a newline in a logged message were taken as status lines: not in the log either.
    log = (model_dir / "logs" / "chief-0.log").read_text()
    assert "an innocent message" in log and "@launcher-status" not in log
    json.loads((model_dir / "run.json").read_text())  # written, and JSON
