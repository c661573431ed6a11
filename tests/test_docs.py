"""The README and docs/*.md stay inside the repository: every relative link resolves (to a file, and to a
heading where it names one), and no page cites a path outside the repository."""

from __future__ import annotations

import pathlib
import re

import pytest

from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
# A relative path that climbs out of its directory, wherever it is written (prose, code, commands).
_CLIMB = re.compile(r"(?:\.\./)+[\w.\-/]*")
# Home and work directories of a machine: nothing in the repository lives there.
_MACHINE_PATH = re.compile(r"(?<![\w.:/-])(?:~/|/(?:work|home|root|Users)/)")


def _prose(text: str) -> str:
    return _CODE.sub("", _FENCE.sub("", text))


def _anchors(page: pathlib.Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", _FENCE.sub("", page.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def _links(page: pathlib.Path) -> list[str]:
    return [t for t in _LINK.findall(_prose(page.read_text())) if not re.match(r"[a-z]+:", t)]


def _name(page: pathlib.Path) -> str:
    return str(page.relative_to(REPO))


def test_the_docs_exist_and_the_readme_links_each_page():
    assert len(PAGES) > 5
    readme_links = {pathlib.Path(link.split("#")[0]).name for link in _links(REPO / "README.md")}
    assert {page.name for page in PAGES[1:]} <= readme_links


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_every_relative_link_resolves(page):
    for link in _links(page):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.is_relative_to(REPO), f"{_name(page)}: {link} leaves the repository"
        assert target.exists(), f"{_name(page)}: {link}: no such file"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target), f"{_name(page)}: {link}: no such heading in {target.name}"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_no_path_outside_the_repository(page):
    text = page.read_text()
    for climb in _CLIMB.findall(text):
        assert (page.parent / climb).resolve().is_relative_to(REPO), f"{_name(page)}: {climb!r} is outside"
    machine = [line for line in text.splitlines() if _MACHINE_PATH.search(line)]
    assert not machine, f"{_name(page)} names a path of this machine: {machine}"


def test_the_checks_catch_what_they_are_for(tmp_path):
    assert _CLIMB.findall("see ../shared/STYLE.md") == ["../shared/STYLE.md"]
    assert _MACHINE_PATH.search("(`/work/shared/anchors/handrolled_task.py`)")
    assert not _MACHINE_PATH.search("--model_dir /nfs/run, gs://bucket/work/run, runs/work/x")
    page = tmp_path / "page.md"
    page.write_text("# A title, with: punctuation\n[x](other.md) [y](#a-title-with-punctuation) `[z](no.md)`\n")
    assert _links(page) == ["other.md", "#a-title-with-punctuation"]
    assert _anchors(page) == {"a-title-with-punctuation"}
