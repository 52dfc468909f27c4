"""Helpers shared by the tests that hang or kill a Redis of their own (``SIGSTOP``, ``SIGKILL``)
and by those that run ``bitcore.aio`` coroutines."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from bitcore import embedded

T = TypeVar("T")


def on_a_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coroutine)`` in a thread of its own: the browser tests' Playwright leaves an
    event loop running in the main thread, where ``asyncio.run`` refuses to start another."""
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


@contextmanager
def stoppable_redis(directory: Path) -> Iterator[embedded.EmbeddedRedis]:
    """A private redis-server (nothing on disk) that a test may stop or kill by its pid; continued
    and stopped on the way out, whatever the test did to it."""
    started = embedded.start(directory, port=0, persist=False)
    assert started.process is not None
    try:
        yield started
    finally:
        if started.process.poll() is None:
            os.kill(started.process.pid, signal.SIGCONT)
        started.stop()
