"""`launcher report`: read run.json, print the summary, write the page."""

from __future__ import annotations

import os
import sys
from typing import Optional

from launcher.cluster import safe_files
from launcher.cluster.errors import UserError
from launcher.launch import run_record
from launcher.report import page, summary


def report(model_dir: str, html_path: Optional[str] = None) -> None:
    path = run_record.path(model_dir)
    if not os.path.isdir(model_dir):
        raise UserError(f"{model_dir}: no such directory")
    runs = run_record.read(model_dir)  # a damaged or older record: RecordError, one line
    if not runs:
        raise UserError(f"{path}: no runs recorded (has `launcher run --model_dir {model_dir}` run?)")
    sys.stdout.write(summary.render(runs) + "\n")
    if html_path == "-":
        return
    html_path = html_path or os.path.join(model_dir, "report.html")
    try:  # a new file renamed over the old: a symlink planted at html_path is replaced, never written through
        safe_files.write_replacing(html_path, page.render(runs, model_dir))
    except OSError as e:
        raise UserError(f"--html {html_path}: {e.strerror}") from None
    sys.stdout.write(f"\nreport: {html_path}\n")
