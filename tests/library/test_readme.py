"""The Python examples of the README and of every page under ``docs/`` run as written, against the
test Redis: the documentation stays true."""

from __future__ import annotations

import pytest
import redis
from docs_support import README, all_code_blocks, code_blocks

BLOCKS = all_code_blocks("python")


def test_readme_has_python_examples() -> None:
    assert len(code_blocks(README, "python")) >= 1, "the README's quick start is runnable"
    pages = {page for page, _, _ in BLOCKS}
    assert {"docs/library.md", "docs/reports.md", "docs/segments.md"} <= pages
    assert len(BLOCKS) >= 15


@pytest.mark.parametrize(
    ("page", "number", "code"), BLOCKS, ids=[f"{page}-{number}" for page, number, _ in BLOCKS]
)
def test_readme_example_runs(
    page: str,
    number: int,
    code: str,
    default_system: redis.Redis,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    compiled = compile(code, f"{page} python block {number}", "exec")
    exec(compiled, {"__name__": f"docs_example_{number}"})
