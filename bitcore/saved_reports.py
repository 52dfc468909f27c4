"""``ReportStore``: saved reports (a report page and its query, under a name) in Redis.

A saved report is what a report page's link holds, kept under a name: the page (``cohort``,
``funnel``, ``lifecycle``, ``stickiness``, ``segment``) and its query string, exactly as the page
wrote it. The query is stored as text, not as a list of known fields, so a parameter a page learns
later is saved with it. Whether the report pins its dates or rolls with time is read from the query
(:func:`dates_of`): the same parameters the pages' own links use.

Each report is one hash ``bitcore:report:<name>`` (name, page, query, whether it is on the
overview, created/updated time and by whom); the set ``bitcore:reports`` holds every name. Like
saved segments, neither key starts with the event prefix. Saves and deletes WATCH the index and
every report, check the limits (``max_reports``, :data:`MAX_ON_OVERVIEW`), then write in one
MULTI/EXEC.

>>> store = ReportStore(b)  # doctest: +SKIP
>>> store.save("weekly retention", "cohort", "select1=active&select2=active&rolling=1", by="ana")
... # doctest: +SKIP
>>> store.get("weekly retention").dates  # doctest: +SKIP
'rolling'
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import parse_qsl, urlencode

if TYPE_CHECKING:
    from bitcore.client import BitCore

Page = Literal["cohort", "funnel", "lifecycle", "stickiness", "segment"]
PAGES: tuple[Page, ...] = ("cohort", "funnel", "lifecycle", "stickiness", "segment")
Dates = Literal["pinned", "rolling"]

MAX_REPORTS = 100
#: Reports shown as cards on the overview, at most: each card is a report computed on every visit.
MAX_ON_OVERVIEW = 6
MAX_NAME_LENGTH = 80
MAX_QUERY_LENGTH = 2000
MAX_QUERY_FIELDS = 100
MAX_AUTHOR_LENGTH = 200
#: Letters and digits (any script), space and ``:_.,()&+'-``: no ``/``, ``?`` or ``#``, so a name
#: is one segment of a URL path.
_NAME = re.compile(r"[\w :.,()&+'\-]+")
#: A query's text: printable, no spaces (a query string encodes them).
_QUERY = re.compile(r"[!-~]*")
#: The parameters that write a page's dates out: without them the page shows the current periods.
DATE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "cohort": ("start_date", "end_date"),
    "funnel": ("start",),
    "lifecycle": ("end",),
    "stickiness": ("start",),
    "segment": ("when",),
}
#: Pages with a ``rolling`` checkbox: ticked, the page ignores its dates and ends today.
ROLLING_PAGES = ("cohort", "funnel")
_FALSE = ("", "0", "false", "off", "no")
_ATTEMPTS = 32
_RETRY_PAUSE = 0.002
_FIELDS = (
    "name",
    "page",
    "query",
    "on_overview",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
)


class SavedReportError(ValueError):
    """Base of every saved-report error; the message is written for the person saving."""


class InvalidReport(SavedReportError):
    pass


class ReportNotFound(SavedReportError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no saved report named {name!r}")


class ReportExists(SavedReportError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"a saved report named {name!r} already exists")


class TooManyReports(SavedReportError):
    """Over ``max_reports`` saved, or over :data:`MAX_ON_OVERVIEW` on the overview."""


class ReportConflict(SavedReportError):
    """Reports kept changing under a save or delete; nothing was written."""


def check_report_name(name: Any) -> str:
    """The name, or ``InvalidReport`` saying why.

    >>> check_report_name("Weekly retention (iOS)")
    'Weekly retention (iOS)'
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidReport("a report needs a name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidReport(
            f"a report name has at most {MAX_NAME_LENGTH} characters, got {len(name)}"
        )
    if name != name.strip():
        raise InvalidReport("a report name must not start or end with a space")
    if not name.strip("."):
        raise InvalidReport("a report name must not be only dots (a URL would read it as a folder)")
    if not _NAME.fullmatch(name):
        bad = next(ch for ch in name if not _NAME.fullmatch(ch))
        raise InvalidReport(
            f"a report name may use letters, digits, spaces and :_.,()&+'- only, not {bad!r}"
        )
    return name


def check_page(page: Any) -> Page:
    if page not in PAGES:
        raise InvalidReport(f"a report is one of {', '.join(PAGES)}, not {page!r}")
    return cast(Page, page)


def parse_query(query: Any) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a report's query string (a leading ``?`` is dropped), or
    ``InvalidReport``: at most :data:`MAX_QUERY_LENGTH` characters and
    :data:`MAX_QUERY_FIELDS` fields, printable, well formed, not empty.

    >>> parse_query("?select1=active&rolling=1")
    [('select1', 'active'), ('rolling', '1')]
    """
    if not isinstance(query, str):
        raise InvalidReport(f"a query must be text, got {type(query).__name__}")
    query = query.removeprefix("?")
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidReport(
            f"a report's query has at most {MAX_QUERY_LENGTH} characters, got {len(query)}"
        )
    if not query:
        raise InvalidReport("a report needs a query: save it from the report's page")
    if not _QUERY.fullmatch(query):
        raise InvalidReport("a query is a URL's query string: no spaces or control characters")
    try:
        return parse_qsl(query, strict_parsing=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError as error:
        raise InvalidReport(f"not a query string ({error})") from None


def dates_of(page: str, pairs: Sequence[tuple[str, str]]) -> Dates:
    """``"rolling"`` when the report shows the current periods whenever it is opened (its
    ``rolling`` box ticked, or no date written out), else ``"pinned"``.

    >>> dates_of("lifecycle", [("event", "active"), ("end", "2026-W40")])
    'pinned'
    >>> dates_of("cohort", [("end_date", "2026-10-01"), ("rolling", "1")])
    'rolling'
    """
    values = dict(pairs)
    if page in ROLLING_PAGES and values.get("rolling", "").strip().lower() not in _FALSE:
        return "rolling"
    if any(values.get(name, "").strip() for name in DATE_PARAMETERS.get(page, ())):
        return "pinned"
    return "rolling"


def rolled(page: str, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The query of the same report rolling with time: its dates dropped (and ``rolling`` ticked
    where the page has the box), so it always ends in the current period.

    >>> rolled("stickiness", [("event", "active"), ("start", "2026-W40")])
    [('event', 'active')]
    """
    dropped = {*DATE_PARAMETERS.get(page, ()), "rolling"}
    kept = [(k, v) for k, v in pairs if k not in dropped]
    return [*kept, ("rolling", "1")] if page in ROLLING_PAGES else kept


@dataclass(frozen=True)
class SavedReport:
    """One saved report. Times are ISO 8601 in UTC."""

    name: str
    page: Page
    query: str
    on_overview: bool = False
    created_at: str = ""
    created_by: str = ""
    updated_at: str = ""
    updated_by: str = ""

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query)

    @property
    def dates(self) -> Dates:
        return dates_of(self.page, self.pairs)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dates": self.dates}


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _report(values: Sequence[Any]) -> SavedReport | None:
    """A report from HMGET values in ``_FIELDS`` order; ``None`` for a missing (or hand-broken)
    hash."""
    texts = [_text(v) for v in values]
    if not texts[0] or texts[1] not in PAGES:
        return None
    name, page, query, on_overview, *who = texts
    return SavedReport(name, cast(Page, page), query, on_overview == "1", *who)


def _hash(report: SavedReport) -> dict[str, str]:
    fields = asdict(report)
    fields["on_overview"] = "1" if report.on_overview else "0"
    return fields


def _checked_author(by: Any) -> str:
    if not isinstance(by, str):
        raise InvalidReport(f"the author must be text, got {type(by).__name__}")
    if len(by) > MAX_AUTHOR_LENGTH:
        raise InvalidReport(f"the author has at most {MAX_AUTHOR_LENGTH} characters")
    return by


class ReportStore:
    """Saved reports in the Redis of one ``BitCore`` client; at most ``max_reports`` of them."""

    def __init__(self, client: BitCore, *, max_reports: int = MAX_REPORTS) -> None:
        self.redis = client.segments_redis()  # their one slot's node on a cluster, as segments
        self.keys = client.keys
        self.max_reports = max_reports
        self.index_key = self.keys.saved_reports_index_key()
        if self.index_key.startswith(self.keys.prefix):
            raise ValueError(
                f"the key prefix {self.keys.prefix!r} would make report keys look like events"
            )

    # --- reads

    def names(self) -> list[str]:
        """Every saved report's name, sorted."""
        return sorted(_text(n) for n in self.redis.smembers(self.index_key))

    def get(self, name: str) -> SavedReport:
        """The report called ``name``, or ``ReportNotFound``."""
        found = _report(self.redis.hmget(self.keys.saved_report_key(name), _FIELDS))
        if found is None:
            raise ReportNotFound(name)
        return found

    def all(self) -> list[SavedReport]:
        """Every saved report, sorted by name (two round trips)."""
        return list(self._load(self.names()).values())

    def on_overview(self) -> list[SavedReport]:
        """The reports pinned to the overview, sorted by name."""
        return [report for report in self.all() if report.on_overview]

    def _load(self, names: list[str]) -> dict[str, SavedReport]:
        if not names:
            return {}
        with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hmget(self.keys.saved_report_key(name), _FIELDS)
            rows = pipe.execute()
        loaded = {}
        for name, row in zip(names, rows, strict=True):
            report = _report(row)
            if report is not None:
                loaded[name] = report
        return loaded

    # --- writes

    def save(
        self,
        name: str,
        page: str,
        query: str,
        by: str = "",
        *,
        original: str | None = None,
        on_overview: bool | None = None,
    ) -> SavedReport:
        """Create report ``name`` (``original=None``), or update the one called ``original``
        (renaming it when the names differ). ``on_overview``: pin it to the overview or not
        (``None``: as it was; a new report is not). Refuses bad names, pages and queries, a name
        already taken, and going over the limits; writes nothing then."""
        name = check_report_name(name)
        page = check_page(page)
        query = urlencode(parse_query(query))
        if len(query) > MAX_QUERY_LENGTH:  # written out again, a character may take three
            raise InvalidReport(f"a report's query has at most {MAX_QUERY_LENGTH} characters")
        by = _checked_author(by)
        now = datetime.now(UTC).isoformat(timespec="seconds")

        def check(stored: dict[str, SavedReport]) -> SavedReport:
            previous = stored.get(original) if original is not None else None
            if original is not None and previous is None:
                raise ReportNotFound(original)
            if name in stored and name != original:
                raise ReportExists(name)
            if previous is None and len(stored) >= self.max_reports:
                raise TooManyReports(
                    f"at most {self.max_reports} reports can be saved: delete one first"
                )
            shown = previous.on_overview if previous and on_overview is None else bool(on_overview)
            report = SavedReport(
                name,
                page,
                query,
                shown,
                previous.created_at if previous else now,
                previous.created_by if previous else by,
                now,
                by,
            )
            self._check_overview(stored, report, original)
            return report

        def write(pipe: Any, report: SavedReport) -> None:
            if original is not None and original != name:
                pipe.delete(self.keys.saved_report_key(original))
                pipe.srem(self.index_key, original)
            pipe.delete(self.keys.saved_report_key(name))
            pipe.hset(self.keys.saved_report_key(name), mapping=_hash(report))
            pipe.sadd(self.index_key, name)

        return self._transaction(check, write)

    def pin(self, name: str, on_overview: bool, by: str = "") -> SavedReport:
        """Show report ``name`` on the overview (``True``) or take it off."""
        report = self.get(name)
        return self.save(
            name, report.page, report.query, by, original=name, on_overview=on_overview
        )

    def delete(self, name: str) -> SavedReport:
        """Delete report ``name`` (``ReportNotFound`` if there is none); returns what it was."""

        def check(stored: dict[str, SavedReport]) -> SavedReport:
            if name not in stored:
                raise ReportNotFound(name)
            return stored[name]

        def write(pipe: Any, report: SavedReport) -> None:
            pipe.delete(self.keys.saved_report_key(name))
            pipe.srem(self.index_key, name)

        return self._transaction(check, write)

    @staticmethod
    def _check_overview(
        stored: Mapping[str, SavedReport], report: SavedReport, original: str | None
    ) -> None:
        if not report.on_overview:
            return
        others = [
            r for n, r in stored.items() if r.on_overview and n not in {original, report.name}
        ]
        if len(others) >= MAX_ON_OVERVIEW:
            raise TooManyReports(
                f"at most {MAX_ON_OVERVIEW} reports can be on the overview: take one off first"
            )

    def _transaction(self, check: Any, write: Any) -> SavedReport:
        """WATCH the index and every report it lists, ``check`` what is stored, ``write`` in
        MULTI/EXEC; started over when a watched key changed meanwhile (at most ``_ATTEMPTS``)."""
        attempts = itertools.count(1)

        def attempt(pipe: Any) -> SavedReport:
            if next(attempts) > _ATTEMPTS:
                raise ReportConflict("reports kept changing while saving; try again")
            names = sorted(_text(n) for n in pipe.smembers(self.index_key))
            if names:
                pipe.watch(*[self.keys.saved_report_key(n) for n in names])
            stored = self._load(names)  # another connection: our WATCH still sees any change
            report = check(stored)
            pipe.multi()
            write(pipe, report)
            return report  # type: ignore[no-any-return]

        return cast(
            SavedReport,
            self.redis.transaction(
                attempt,  # type: ignore[arg-type]  # typed as returning None; its value is returned
                self.index_key,
                value_from_callable=True,
                watch_delay=_RETRY_PAUSE,
            ),
        )
