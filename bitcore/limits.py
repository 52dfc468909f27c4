"""Cost limits: what a computation may spend, and the one error for "over it".

Reports (``bitcore.reading.ReportTooCostly``: bytes of bitmaps to read) and segments
(``bitcore.segments.SegmentTooCostly``: scratch memory in Redis) refuse work over their limit
before doing any. Both are a ``TooCostly``, so a caller answers every such refusal one way (the
dashboard: HTTP 422 naming the setting that holds the limit).
"""

from __future__ import annotations

#: Scratch memory (bytes) one segment evaluation may take in Redis unless the client says
#: otherwise (``BitCore(segment_max_bytes=...)``).
DEFAULT_SEGMENT_MAX_BYTES = 64 << 20


class TooCostly(ValueError):
    """A computation would cost more than its limit allows: ``needed`` and ``limit`` are bytes.

    >>> error = TooCostly(2048, 1024, "over the limit")
    >>> error.needed > error.limit, isinstance(error, ValueError)
    (True, True)
    """

    def __init__(self, needed: int, limit: int, message: str) -> None:
        self.needed = needed
        self.limit = limit
        super().__init__(message)
