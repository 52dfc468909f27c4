"""Runs the real bitmapist in its own environment, for ``test_bitmapist_interop.py``.

Reads one JSON job on stdin: ``{"host", "port", "code", "queries"}``. Points bitmapist's
``"default"`` system at ``host:port`` (bitmapist hard-codes localhost:6379), runs ``code``, then
evaluates each expression in ``queries`` with bitmapist's names in scope, and prints
``{"bitmapist": <version and file>, "answers": [...]}`` as JSON on stdout.

Run it as ``uv run --isolated --no-project --with bitmapist==3.119 python bitmapist_driver.py``.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from datetime import date, datetime, timedelta, timezone
from typing import Any


def main() -> None:
    import bitmapist

    job = json.load(sys.stdin)
    bitmapist.setup_redis("default", job["host"], job["port"])
    namespace: dict[str, Any] = {
        name: getattr(bitmapist, name) for name in dir(bitmapist) if not name.startswith("_")
    }
    namespace.update(
        bitmapist=bitmapist, date=date, datetime=datetime, timedelta=timedelta, timezone=timezone
    )
    exec(job["code"], namespace)
    answers = [eval(query, namespace) for query in job["queries"]]
    json.dump(
        {
            "bitmapist": {
                "version": importlib.metadata.version("bitmapist"),
                "file": bitmapist.__file__,
            },
            "answers": answers,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
