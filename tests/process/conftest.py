"""Tests with real processes: gunicorn, redis-servers of their own that are stopped (``SIGSTOP``)
or killed, other Pythons, wheel builds. They are the slow part of the suite, so every test here is
marked ``process``: ``uv run pytest -m "not process"`` leaves them out for a fast inner loop."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.process)
