"""numba, for the loops that count bits: imported on first use, switched off by
``BITCORE_COUNTING=numpy``, its machine code cached on disk.

The cohort engine's counting loop (``bitcore.cohort.kernel``) and stickiness' day counters
(``bitcore.stickiness``) are compiled the same way: ``tools()`` is numba's decorator and a
popcount of one uint64 (LLVM's ``ctpop``: one instruction, or a vector of them), or ``None``
where numba is missing or turned off, and the caller keeps its numpy path. numba costs about a
second to import, which a process that only takes beacons should not pay.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

Loop = TypeVar("Loop")


class Tools(NamedTuple):
    """``jit(**options)``: ``numba.njit`` with its cache on disk where it can be; ``popcount``:
    set bits of one uint64, usable inside a jitted function."""

    jit: Any
    popcount: Any


@functools.cache
def tools() -> Tools | None:
    """numba's ``Tools`` (imported on the first call), or ``None`` when numba cannot be imported
    or ``BITCORE_COUNTING=numpy`` asks for numpy."""
    if os.environ.get("BITCORE_COUNTING", "").lower() == "numpy":
        return None
    try:
        import numba
        from numba.extending import intrinsic
    except ImportError:  # pragma: no cover - every supported platform has a wheel
        return None

    @intrinsic  # type: ignore[misc]
    def popcount(typingctx: Any, word: Any) -> Any:
        """LLVM's ``ctpop``: one instruction per word (or per 8 words, vectorised)."""
        signature = numba.types.uint64(numba.types.uint64)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            return builder.ctpop(args[0])

        return signature, codegen

    return Tools(functools.partial(_jit, numba), popcount)


def _jit(numba: Any, **options: Any) -> Any:
    """``numba.njit`` caching its machine code on disk where it can (next to the module, or in
    the user's cache directory); where neither is writable it compiles once per process instead."""
    try:
        return numba.njit(cache=True, **options)
    except RuntimeError:  # pragma: no cover - a read-only install and no writable cache dir
        return numba.njit(cache=False, **options)


def lazily(build: Callable[[Tools], Loop]) -> Callable[[], Loop | None]:
    """A loader of the loop that ``build(tools)`` compiles: built on the loader's first call (or
    loaded from numba's cache) and kept; ``None`` where numba is missing or turned off."""

    @functools.cache
    def load() -> Loop | None:
        numba = tools()
        return None if numba is None else build(numba)

    functools.update_wrapper(load, build)
    return load
