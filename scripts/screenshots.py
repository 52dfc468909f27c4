"""Regenerate the dashboard screenshots in ``docs/screenshots/`` from demo data.

    uv run python scripts/screenshots.py            # every page, desktop and phone
    uv run python scripts/screenshots.py --out /tmp/shots

It starts a private embedded redis-server in a temporary folder (never your data), loads the demo
data set (a fixed seed, ending today, as the pages report up to today), serves the dashboard on a
free local port and photographs each main page (overview, event, cohort, funnel, lifecycle,
stickiness, segments) with Debian's chromium through Playwright (the browser tests'
``tests/browser_support.py``), at 1440 px (desktop) and 390 px (a phone). Each PNG
shows the top of its page (at most :data:`MAX_SCREENS` window heights) in a palette of
:data:`COLOURS` colours, so the repository stays small.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

from bitcore import demo, embedded
from dashboard import create_app

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the browser tests' chromium and live server
from browser_support import CHROMIUM_ARGS, chromium_path, live_server  # noqa: E402


def pages(today: date) -> dict[str, str]:
    """name -> path, with the query that makes each report show something."""
    year, week, _ = (today - timedelta(weeks=3)).isocalendar()
    last = (today - timedelta(weeks=1)).isocalendar()
    last_week = f"{last.year}-W{last.week:02d}"  # a whole week, over
    return {
        "overview": "/",
        "event": "/event/active",
        "cohort": "/cohort?select1=event:signup&select2=event:active&time_group=days"
        f"&num_results=14&start_date={today - timedelta(days=20)}",
        "funnel": "/funnel?steps-0=event:signup&steps-1=event:project:created"
        f"&steps-2=event:teammate:invited&kind=week&window=2&start={year}-W{week:02d}&trend=8",
        "lifecycle": "/lifecycle?event=active&period=week&count=12",
        "stickiness": f"/stickiness?event=active&period=week&start={last_week}",
        "segments": "/segments",
    }


#: name -> (width, height) of the browser window, in CSS pixels.
SIZES = {"desktop": (1440, 900), "phone": (390, 844)}
#: A picture shows the page from its top down to this many screen heights at most.
MAX_SCREENS = 1.6
#: Colours kept per picture: a flat UI needs few, and a palette PNG is a third of the size.
COLOURS = 64


@contextmanager
def serving(data_dir: Path) -> Iterator[str]:
    """The dashboard on a private embedded Redis holding the demo data; yields its base URL."""
    server = embedded.start(data_dir, port=0, persist=False)
    try:
        app = create_app(
            {
                "REDIS_URL": server.url,
                "SECRET_KEY": "screenshots-only-" + "x" * 32,
                "BITCORE_USERS": "",
                "BITCORE_DEMO": False,
                "BITCORE_CLEANUP_ENABLED": False,
                "INSTANCE_PATH": str(data_dir / "instance"),
            }
        )
        demo.load_demo(app.extensions["bitcore"], users=20_000, days=90)
        with live_server(app) as url:
            yield url
    finally:
        server.stop()


def photograph(base_url: str, out: Path) -> list[Path]:
    """Every page of :func:`pages` at every size of :data:`SIZES`; returns the files written."""
    written = []
    with sync_playwright() as playwright:
        chromium = chromium_path()
        if chromium is None:
            raise SystemExit("needs Debian's chromium: apt-get install chromium")
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        for size, (width, height) in SIZES.items():
            context = browser.new_context(viewport={"width": width, "height": height})
            tab = context.new_page()
            for name, path in pages(date.today()).items():
                tab.goto(base_url + path)
                target = out / f"{name}-{size}.png"
                tall = tab.evaluate("document.documentElement.scrollHeight")
                shown = {"x": 0, "y": 0, "width": width, "height": min(tall, height * MAX_SCREENS)}
                tab.screenshot(path=str(target), full_page=True, clip=shown)
                shrink(target)
                written.append(target)
            context.close()
        browser.close()
    return written


def shrink(png: Path) -> None:
    """Rewrite ``png`` with a palette of :data:`COLOURS` colours (median cut, no dithering, so
    text and lines stay crisp), optimised."""
    with Image.open(png) as picture:
        reduced = picture.convert("RGB").quantize(COLOURS, dither=Image.Dither.NONE)
    reduced.save(png, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="bitcore-shots-") as folder,
        serving(Path(folder)) as url,
    ):
        files = photograph(url, args.out)
    total = sum(f.stat().st_size for f in files)
    for f in files:
        print(f"{f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}  {f.stat().st_size:,} bytes")
    print(f"{len(files)} screenshots, {total:,} bytes in all")


if __name__ == "__main__":
    main()
