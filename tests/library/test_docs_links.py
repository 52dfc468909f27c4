"""Every relative link of the README and of ``docs/*.md`` points at a file that exists, and at a
heading that exists when it names one; every docs page is reachable from the README."""

from __future__ import annotations

from pathlib import Path

import pytest
from docs_support import DOCS, PAGES, README, ROOT, anchors, links, name_of, slug


def _relative(page: Path) -> list[str]:
    return [t for t in links(page) if not t.startswith(("http://", "https://", "mailto:"))]


@pytest.mark.parametrize("page", PAGES, ids=name_of)
def test_relative_links_point_at_what_exists(page: Path) -> None:
    broken = []
    for target in _relative(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(ROOT)}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {name_of(file)}")
    assert not broken, f"{name_of(page)}: {broken}"


def test_the_readme_links_every_docs_page() -> None:
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in _relative(README)}
    missing = [name_of(p) for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"docs pages the README's contents do not link: {missing}"


def test_the_link_check_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[there](other.md) [here](#title) [nowhere](#none) `[no](x.md)`\n")
    assert _relative(page) == ["other.md", "#title", "#none"], "links in code are not links"
    assert anchors(page) == {"title"}


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("In the page: `static/bitcore.js`", "in-the-page-staticbitcorejs"),
        ("Who are they? Drill-down to users", "who-are-they-drill-down-to-users"),
        ("idmap.py: the id map (issue 16)", "idmappy-the-id-map-issue-16"),
        ("The JSON twins' shapes", "the-json-twins-shapes"),
        ("Status: `/system`", "status-system"),
    ],
)
def test_anchors_are_githubs(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
