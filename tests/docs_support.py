"""The README and the pages under ``docs/``, read the way the documentation tests need them.

The README is the front door and ``docs/*.md`` hold the depth; the tests run their Python blocks,
check their relative links (and the headings those links point at), and check that the commands,
URLs and settings their shell blocks name exist. This module finds those things in the text, so
each test says only what it checks.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
#: Every page of the documentation, the README first.
PAGES = [README, *sorted(DOCS.glob("*.md"))]

_FENCE = re.compile(r"^[ \t]*```([\w-]*)[^\n]*\n(.*?)^[ \t]*```", flags=re.S | re.M)
_LINK = re.compile(r"\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$", flags=re.M)


def name_of(page: Path) -> str:
    """``README.md``, ``docs/library.md``: how a test names a page."""
    return page.relative_to(ROOT).as_posix()


def code_blocks(page: Path, *languages: str) -> list[str]:
    """The fenced blocks of ``page`` in one of ``languages`` (```` ```python ````), in order."""
    return [body for language, body in _FENCE.findall(page.read_text()) if language in languages]


def all_code_blocks(*languages: str) -> list[tuple[str, int, str]]:
    """``(page name, number on its page from 1, code)`` of every page's blocks in ``languages``."""
    return [
        (name_of(page), number, body)
        for page in PAGES
        for number, body in enumerate(code_blocks(page, *languages), start=1)
    ]


def outside_fences(text: str) -> str:
    """``text`` without its fenced blocks (inline code kept: documented paths live there)."""
    return _FENCE.sub("", text)


def prose(text: str) -> str:
    """``text`` without its fenced blocks and inline code: where a Markdown link is a link."""
    return re.sub(r"`[^`\n]*`", "", outside_fences(text))


def links(page: Path) -> list[str]:
    """The targets of ``page``'s Markdown links, as written."""
    return _LINK.findall(prose(page.read_text()))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens.

    >>> slug("In the page: `static/bitcore.js`"), slug("Who are they? Drill-down to users")
    ('in-the-page-staticbitcorejs', 'who-are-they-drill-down-to-users')
    """
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"[^\w\- ]", "", text.lower(), flags=re.UNICODE)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of ``page``'s headings (a repeated heading's get ``-1``, ``-2``, ...)."""
    seen: dict[str, int] = {}
    found = set()
    for _, heading in _HEADING.findall(outside_fences(page.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found
