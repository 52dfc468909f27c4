"""The cost limits of pages, and the one answer to a refusal over them.

The library refuses a computation over its limit with a ``bitcore.limits.TooCostly``: a report
reading more than ``BITCORE_REPORT_MAX_BYTES`` of bitmaps (``ReportTooCostly``), a segment (on the
segments pages, or a step of a cohort or funnel) needing more than ``BITCORE_SEGMENT_MAX_BYTES``
of scratch memory in Redis (``SegmentTooCostly``). Every page answers either with ``refusal``:
HTTP 422 and a message naming the setting to change.
"""

from __future__ import annotations

from typing import NamedTuple

from flask import current_app

from bitcore.limits import TooCostly
from bitcore.segments import SegmentTooCostly

#: The setting (environment variable and config key) holding the reports' limit; 0: no limit.
SETTING = "BITCORE_REPORT_MAX_BYTES"
#: The setting holding a segment evaluation's limit; 0: no limit.
SEGMENT_SETTING = "BITCORE_SEGMENT_MAX_BYTES"
#: What a refused computation answers: the request is well-formed, but too costly to compute.
STATUS = 422


class Refusal(NamedTuple):
    """How a page answers a ``TooCostly``: the status, the message and the setting at fault."""

    status: int
    message: str
    setting: str


def max_bytes() -> int | None:
    """This app's report limit in bytes, ``None`` when the setting is 0 (no limit)."""
    limit = int(current_app.config.get(SETTING) or 0)
    return limit if limit > 0 else None


def refusal(error: TooCostly) -> Refusal:
    """The answer to ``error``: what the work needs, the limit and the setting that holds it."""
    if isinstance(error, SegmentTooCostly):
        return Refusal(STATUS, f"{error} ({SEGMENT_SETTING}={error.limit}).", SEGMENT_SETTING)
    return Refusal(
        STATUS,
        f"This report would read {error.needed:,} bytes of bitmaps, more than the limit of "
        f"{error.limit:,} bytes ({SETTING}): ask for fewer steps, periods or rows, or raise "
        f"{SETTING}.",
        SETTING,
    )
