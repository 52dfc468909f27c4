"""What the README's and ``docs/*.md``'s shell blocks and inline paths name exists: every
``flask --app wsgi <command> --option``, every dashboard URL, every script they run, and every
``BITCORE_*`` setting they mention (a setting nothing reads would be a promise nobody keeps)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from docs_support import PAGES, ROOT, all_code_blocks, name_of, outside_fences
from flask import Flask
from werkzeug.exceptions import MethodNotAllowed, NotFound

from bitcore import demo

SHELL = ("sh", "console", "bash", "shell")
SHELL_BLOCKS = all_code_blocks(*SHELL)
#: Commands Flask itself brings (``FlaskGroup``), next to the ones ``create_app`` registers.
FLASK_OWN = {"run", "routes", "shell"}
_URL = re.compile(
    r"https?://(?:127\.0\.0\.1|localhost|stats\.example\.com)(?::\d+)?(/[^\s'\"<>?]*)"
)
_INLINE_PATH = re.compile(r"`((?:GET |POST |HEAD )?/[a-z][\w./:<>@-]*)(?:\?[^`]*)?`")


def _shell_lines() -> list[tuple[str, str]]:
    lines = []
    for page, number, body in SHELL_BLOCKS:
        for line in body.replace("\\\n", " ").splitlines():
            lines.append((f"{page} block {number}", line.lstrip("$ ").strip()))
    return lines


def _flask_calls() -> list[tuple[str, list[str]]]:
    calls = []
    for where, line in _shell_lines():
        found = re.search(r"flask --app wsgi (.*)", line)
        if found:
            words = shlex.split(found.group(1).split("#")[0], posix=True)
            calls.append((where, words))
    return calls


def test_the_docs_name_commands_and_urls() -> None:
    assert len(_flask_calls()) >= 10
    assert len(_documented_paths()) >= 30


def test_every_flask_command_and_option_exists(app: Flask) -> None:
    wrong = []
    for where, words in _flask_calls():
        name, *rest = words
        if name in FLASK_OWN:
            continue
        command = app.cli.get_command(click.Context(app.cli), name)
        if command is None:
            wrong.append(f"{where}: no command {name!r}")
            continue
        options = {opt for param in command.params for opt in param.opts}
        wrong += [
            f"{where}: {name} has no {w}" for w in rest if w.startswith("--") and w not in options
        ]
    assert not wrong, wrong


def _documented_paths() -> list[tuple[str, str, str]]:
    """``(page, method, path)`` of every dashboard URL in shell blocks and inline code."""
    found = []
    for where, line in _shell_lines():
        method = "POST" if re.search(r"-X POST|-d '", line) else "GET"
        found += [(where, method, path) for path in _URL.findall(line)]
    for page in PAGES:
        for span in _INLINE_PATH.findall(outside_fences(page.read_text())):
            method, _, path = span.rpartition(" ")
            found.append((name_of(page), method or "GET", path))
    return found


def _concrete(path: str) -> str:
    """A documented path with its placeholders filled: ``/event/<name>`` is ``/event/x``."""
    return re.sub(r"<[^>]*>", "x", path.rstrip(".,:;")).replace("…", "x")


def test_every_documented_url_is_served(app: Flask) -> None:
    adapter = app.url_map.bind("localhost")
    client = app.test_client()
    missing = []
    for where, method, documented in _documented_paths():
        path = _concrete(documented)
        if path.startswith("/track"):  # the tracking WSGI app, mounted in front of Flask
            if client.open(path, method=method).status_code == 404:
                missing.append(f"{where}: {method} {documented}")
            continue
        try:
            adapter.match(path, method=method)
        except MethodNotAllowed:
            missing.append(f"{where}: {documented} does not take {method}")
        except NotFound:
            missing.append(f"{where}: no route for {documented}")
    assert not missing, missing


def test_every_script_the_docs_run_exists() -> None:
    scripts = {
        script
        for _, line in _shell_lines()
        for script in re.findall(r"uv run python (\S+\.py)", line)
    }
    assert {"bench/core.py", "scripts/screenshots.py"} <= scripts
    assert not [s for s in scripts if not (ROOT / s).is_file()]


@pytest.mark.parametrize("page", PAGES, ids=name_of)
def test_every_setting_the_docs_name_is_read(page: Path) -> None:
    source = (
        "\n".join(
            p.read_text()
            for folder in ("bitcore", "dashboard", "tests")
            for p in (ROOT / folder).rglob("*.py")
        )
        + (ROOT / "gunicorn.conf.py").read_text()
    )
    named = set(re.findall(r"BITCORE_[A-Z0-9_]*[A-Z0-9]", page.read_text()))
    unread = sorted(name for name in named if name not in source)
    assert not unread, f"{name_of(page)} names settings no code reads: {unread}"


def _documented_gets() -> list[tuple[str, str]]:
    """``(where, path and query)`` of every dashboard GET a shell block sends with curl."""
    found = []
    for where, line in _shell_lines():
        if line.startswith("curl") and not re.search(r"-X POST|-d '", line):
            found += [(where, url) for url in re.findall(r"https?://[^/\s'\"]+(/[^\s'\"]*)", line)]
    return found


def test_every_documented_get_answers_on_the_demo_data(app: Flask) -> None:
    """Run against the demo data set (smaller), every documented GET gives what it promises."""
    demo.load_demo(app.extensions["bitcore"], users=400, days=40)
    client = app.test_client()
    gets = _documented_gets()
    assert len(gets) >= 8
    failed = []
    for where, url in gets:
        answer = client.get(url)
        if answer.status_code != 200:
            failed.append(
                f"{where}: {url} answered {answer.status_code}: {answer.get_data()[:200]!r}"
            )
    assert not failed, failed
