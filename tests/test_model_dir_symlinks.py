"""Symlinks planted in a model directory where the launcher writes are never written through: a run is
refused in one line before anything starts, and `launcher report` replaces a planted report.html link."""

from __future__ import annotations

import os

import pytest

from launcher.cluster import safe_files


def test_planted_log_and_report_links_leave_their_targets_unchanged(runner, tmp_path):
    model_dir = tmp_path / "model"
    first = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--train_steps", "20")
    assert first.proc.returncode == 0, first.stderr[-3000:]
    victim_log, victim_page = tmp_path / "precious.txt", tmp_path / "precious.html"
    victim_log.write_text("keep me\n")
    victim_page.write_text("keep me too\n")
    log = model_dir / "logs" / "chief-0.log"
    log.unlink()
    log.symlink_to(victim_log)
    (model_dir / "report.html").symlink_to(victim_page)

    refused = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--train_steps", "40")
    assert refused.proc.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: {log} is a symbolic link: refusing to write through it (remove it, or use another --model_dir)"]
    report = runner.run("report", str(model_dir), timeout=120)
    assert report.proc.returncode == 0, report.stderr

    assert victim_log.read_text() == "keep me\n" and victim_page.read_text() == "keep me too\n"
    assert log.is_symlink()  # left as it was: the run was refused
    assert not (model_dir / "report.html").is_symlink()  # replaced by the report, not followed
    assert "<!DOCTYPE html>" in (model_dir / "report.html").read_text()


@pytest.mark.parametrize("planted", [".launcher.lock", "run.json", "logs"])
def test_a_planted_link_where_the_launcher_writes_refuses_the_run(runner, tmp_path, planted):
    model_dir = tmp_path / "model"
    (model_dir / "logs").mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.mkdir() if planted == "logs" else victim.write_text("keep me\n")
    link = model_dir / planted
    if planted == "logs":
        link.rmdir()
    link.symlink_to(victim)
    refused = runner.run("run", "--spec", "local1", "--model_dir", str(model_dir), "--train_steps", "20")
    assert refused.proc.returncode == 2 and f"error: {link} is a symbolic link" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert (victim.is_dir() and not any(victim.iterdir())) or victim.read_text() == "keep me\n"


def test_files_are_opened_without_following_links(tmp_path):
    target = tmp_path / "target"
    target.write_text("x")
    (tmp_path / "link").symlink_to(target)
    for opener in (safe_files.open_append, safe_files.open_update, safe_files.open_read):
        with pytest.raises(safe_files.SymlinkRefused):
            opener(str(tmp_path / "link"))
    safe_files.write_replacing(str(tmp_path / "link"), "new")
    assert target.read_text() == "x" and not os.path.islink(tmp_path / "link")
    assert (tmp_path / "link").read_text() == "new"
