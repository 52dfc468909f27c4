"""The cost limit of reports (funnel, cohort): how many bytes of bitmaps one page may read.

The library refuses a report over its ``max_bytes`` with ``bitcore.reading.ReportTooCostly``; the
pages answer it with HTTP 422 and this message, which names the setting to change.
"""

from __future__ import annotations

from flask import current_app

from bitcore.reading import ReportTooCostly

#: The setting (environment variable and config key) holding the limit; 0 means no limit.
SETTING = "BITCORE_REPORT_MAX_BYTES"
#: What a refused report answers: the request is well-formed, but too costly to compute.
STATUS = 422


def max_bytes() -> int | None:
    """This app's limit in bytes, ``None`` when the setting is 0 (no limit)."""
    limit = int(current_app.config.get(SETTING) or 0)
    return limit if limit > 0 else None


def too_costly_message(error: ReportTooCostly) -> str:
    """The error a page shows: what the report needs, the limit and the setting that holds it."""
    return (
        f"This report would read {error.needed:,} bytes of bitmaps, more than the limit of "
        f"{error.limit:,} bytes ({SETTING}): ask for fewer steps, periods or rows, or raise "
        f"{SETTING}."
    )
