"""``SegmentStore``: saved segments in Redis, and their users for any period.

Each segment is one hash ``bitcore:segment:<name>`` (name, expression, description, created/updated
time and by whom); the set ``bitcore:segments`` holds every name. Neither key starts with the event
prefix, so they never look like events and no clean-up of ``trackist_bitop_*`` touches them.

Saves and deletes are atomic: they WATCH the index and every segment hash, check (names, references,
cycles, users), then write in one MULTI/EXEC; if anything changed in between they start over.

A segment used by another cannot be deleted or renamed: the error names the segments that use it, so
the user edits those first. (Renaming does not rewrite other segments' expressions.)

>>> store = SegmentStore(b)  # doctest: +SKIP
>>> store.save("engaged", "active AND (commented OR @buyers)", by="ana")  # doctest: +SKIP
>>> len(store.bitmap("engaged", periods.week(2025, 1)))  # doctest: +SKIP
42
>>> 7 in store.evaluate("engaged", "week", when=datetime(2025, 1, 1))  # doctest: +SKIP
True
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, cast

from bitcore import periods
from bitcore.segments.errors import (
    InvalidSegmentName,
    SegmentConflict,
    SegmentError,
    SegmentExists,
    SegmentInUse,
    SegmentNotFound,
    UnknownSegments,
)
from bitcore.segments.evaluate import check_expansion, evaluate
from bitcore.segments.parser import Node, parse_expression, references

if TYPE_CHECKING:
    from bitcore.bitmaps import Bitmap
    from bitcore.client import BitCore

MAX_NAME_LENGTH = 64
MAX_DESCRIPTION_LENGTH = 1000
MAX_AUTHOR_LENGTH = 200
#: Letters and digits (any script), space and ``:_.-``.
_NAME = re.compile(r"[\w :.\-]+")
#: A save that finds segments changed under it starts over, after ``_RETRY_PAUSE`` seconds, this
#: many times.
_SAVE_ATTEMPTS = 32
_RETRY_PAUSE = 0.002
_FIELDS = (
    "name",
    "expression",
    "description",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
)


def check_segment_name(name: Any) -> str:
    """The name, or ``InvalidSegmentName`` saying why: letters, digits, space, ``:_.-``; 1-64
    characters.

    >>> check_segment_name("ios users")
    'ios users'
    """
    if not isinstance(name, str):
        raise InvalidSegmentName(f"a segment name must be a string, got {type(name).__name__}")
    if not name:
        raise InvalidSegmentName("a segment name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidSegmentName(
            f"a segment name has at most {MAX_NAME_LENGTH} characters, got {len(name)}"
        )
    if not _NAME.fullmatch(name):
        bad = next(ch for ch in name if not _NAME.fullmatch(ch))
        raise InvalidSegmentName(
            f"a segment name may use letters, digits, spaces and ':_.-' only, not {bad!r}"
        )
    if name != name.strip():
        raise InvalidSegmentName("a segment name must not start or end with a space")
    return name


@dataclass(frozen=True)
class Segment:
    """One saved segment. Times are ISO 8601 in UTC."""

    name: str
    expression: str
    description: str = ""
    created_at: str = ""
    created_by: str = ""
    updated_at: str = ""
    updated_by: str = ""

    @property
    def tree(self) -> Node:
        return parse_expression(self.expression)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _segment(values: list[Any] | Mapping[Any, Any]) -> Segment | None:
    """A ``Segment`` from HMGET values in ``_FIELDS`` order, or ``None`` for a missing hash."""
    texts = [_text(v) for v in values]
    if not texts[0]:
        return None
    return Segment(*texts)


def _refs_or_empty(expression: str) -> set[str]:
    """References of a stored expression; one edited by hand into nonsense refers to nothing."""
    try:
        return references(parse_expression(expression))
    except SegmentError:
        return set()


def _users_of(name: str, segments: Iterable[Segment]) -> list[str]:
    """Names of the other segments whose expression refers to ``name`` directly, sorted."""
    return sorted(
        s.name for s in segments if s.name != name and name in _refs_or_empty(s.expression)
    )


class _ClientsLimit:
    """The type of ``CLIENTS``."""


#: ``SegmentStore``'s default ``max_bytes``: the client's ``segment_max_bytes``.
CLIENTS = _ClientsLimit()


class SegmentStore:
    """Saved segments of one ``BitCore`` client (its Redis, its universe for NOT).

    ``max_bytes``: scratch memory one evaluation may take in Redis (``SegmentTooCostly`` above it;
    ``None``: no bound); by default the client's ``segment_max_bytes``, so every segment the
    client's reports evaluate (a cohort's or funnel's segment step) keeps the same limit.
    """

    def __init__(self, client: BitCore, *, max_bytes: int | None | _ClientsLimit = CLIENTS) -> None:
        self.client = client
        self.max_bytes = (
            client.segment_max_bytes if isinstance(max_bytes, _ClientsLimit) else max_bytes
        )
        self.redis = client.segments_redis()
        self.keys = client.keys
        self.index_key = self.keys.segments_index_key()
        if self.index_key.startswith(self.keys.prefix):
            raise ValueError(
                f"the key prefix {self.keys.prefix!r} would make segment keys look like events"
            )

    # --- reads

    def names(self) -> list[str]:
        """Every saved segment's name, sorted."""
        return sorted(_text(n) for n in self.redis.smembers(self.index_key))

    def get(self, name: str) -> Segment:
        """The segment called ``name``, or ``SegmentNotFound``."""
        found = _segment(self.redis.hmget(self.keys.segment_key(name), _FIELDS))
        if found is None:
            raise SegmentNotFound(name)
        return found

    def exists(self, name: str) -> bool:
        return bool(self.redis.exists(self.keys.segment_key(name)))

    def all(self) -> list[Segment]:
        """Every saved segment, sorted by name (two round trips)."""
        return list(self._load(self.names()).values())

    def used_by(self, name: str) -> list[str]:
        """Names of the segments whose expression refers to ``name`` directly."""
        return _users_of(name, self.all())

    def _load(self, names: list[str]) -> dict[str, Segment]:
        with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hmget(self.keys.segment_key(name), _FIELDS)
            rows = pipe.execute() if names else []
        loaded = {}
        for name, row in zip(names, rows, strict=True):
            segment = _segment(row)
            if segment is not None:
                loaded[name] = segment
        return loaded

    # --- evaluation

    def bitmap(self, name: str, period: periods.Period, *, compute: bool = True) -> Bitmap:
        """The users of segment ``name`` in ``period``: a ``Bitmap`` with MonthEvents' API."""
        tree = self.get(name).tree
        return self._evaluate(tree, period, self._resolver(), name, compute)

    def bitmaps(self, name: str, many: Sequence[periods.Period]) -> list[Bitmap]:
        """``bitmap(name, period)`` for each of ``many``, the definition read once and each
        distinct result computed once (a segment of flags only is the same in every period)."""
        return self.bitmaps_of([name], many)[0]

    def bitmaps_of(
        self, names: Sequence[str], many: Sequence[periods.Period], *, compute: bool = True
    ) -> list[list[Bitmap]]:
        """``bitmaps(name, many)`` for each of ``names``, every definition read in one round trip
        (``SegmentNotFound`` for one that is missing): what a report comparing segments over many
        periods asks for. ``compute=False`` leaves them to the report's read, which builds every
        one in a few pipelines (``bitcore.reading.opened``); one that reads a derived bitmap (a
        year) is computed now all the same."""
        loaded = self._load(list(dict.fromkeys(names)))
        missing = [name for name in names if name not in loaded]
        if missing:
            raise SegmentNotFound(missing[0])
        resolve = self._resolver({name: segment.tree for name, segment in loaded.items()})
        made = [
            [self._evaluate(loaded[name].tree, period, resolve, name, False) for period in many]
            for name in names
        ]
        distinct = {b.redis_key: b for row in made for b in row if b.derived}
        for bitmap in distinct.values():
            if compute or any(leaf.derived for leaf in bitmap.leaves()):
                self.client.materialize(bitmap)
        return made

    def size(self, name: str, period: periods.Period) -> int:
        """How many users segment ``name`` has in ``period``, leaving no key behind."""
        return self.client.count_once(self.bitmap(name, period, compute=False))

    def evaluate(
        self, name: str, kind: periods.Kind = "month", when: date | datetime | None = None
    ) -> Bitmap:
        """The users of ``name`` in the ``kind`` period (hour ... year) with ``when`` (or now)."""
        moment = self.client.now() if when is None else periods.to_local(when, self.client.tz)
        return self.bitmap(name, periods.period_of(kind, moment))

    def preview(
        self,
        expression: str,
        period: periods.Period,
        name: str | None = None,
        *,
        compute: bool = True,
    ) -> Bitmap:
        """Evaluate an unsaved expression (as segment ``name``, if given, for cycle checks);
        ``compute=False`` leaves it to the first read (a caller measuring its cost first)."""
        tree, resolve = self._checked(expression, name)
        return self._evaluate(tree, period, resolve, name, compute=compute)

    def preview_size(self, expression: str, period: periods.Period, name: str | None = None) -> int:
        """``len(preview(...))``, leaving no key behind: what a dashboard preview shows."""
        tree, resolve = self._checked(expression, name)
        return self.client.count_once(self._evaluate(tree, period, resolve, name, compute=False))

    def _evaluate(
        self, tree: Node, period: periods.Period, resolve: Any, name: str | None, compute: bool
    ) -> Bitmap:
        return evaluate(
            tree, self.client, period, resolve, name=name, max_bytes=self.max_bytes, compute=compute
        )

    def _checked(self, expression: str, name: str | None) -> tuple[Node, Any]:
        """The tree of an unsaved expression and a resolver, after the checks a save makes."""
        tree = parse_expression(expression)
        resolve = self._resolver()
        check_expansion(tree, resolve, name=name)
        return tree, resolve

    def _resolver(self, known: Mapping[str, Node] | None = None) -> Any:
        """Segment names to trees, each read once (``known``: already read)."""
        cache: dict[str, Node] = dict(known or {})

        def resolve(ref: str) -> Node:
            if ref not in cache:
                try:
                    cache[ref] = self.get(ref).tree
                except SegmentNotFound:
                    raise UnknownSegments([ref]) from None
            return cache[ref]

        return resolve

    # --- writes

    def save(
        self,
        name: str,
        expression: str,
        description: str = "",
        by: str = "",
        *,
        original: str | None = None,
    ) -> Segment:
        """Create segment ``name`` (``original=None``), or update the one called ``original``
        (renaming it when the names differ). Refuses bad names and expressions, unknown references,
        cycles, a name already taken, and renaming a segment others use; writes nothing then.
        """
        name = check_segment_name(name)
        tree = parse_expression(expression)
        description = self._checked_text(description, MAX_DESCRIPTION_LENGTH, "description")
        by = self._checked_text(by, MAX_AUTHOR_LENGTH, "author")
        now = datetime.now(UTC).isoformat(timespec="seconds")

        def check(stored: dict[str, Segment]) -> Segment:
            if original is None and name in stored:
                raise SegmentExists(name)
            if original is not None:
                if original not in stored:
                    raise SegmentNotFound(original)
                if name != original:
                    if name in stored:
                        raise SegmentExists(name)
                    users = _users_of(original, stored.values())
                    if users:
                        raise SegmentInUse(original, users, action="rename")
            graph = {n: s for n, s in stored.items() if n != original}
            unknown = references(tree) - set(graph) - {name}
            if unknown:
                raise UnknownSegments(unknown)

            def resolve(ref: str) -> Node:
                if ref == name:
                    return tree
                segment = graph.get(ref)
                if segment is None:
                    raise UnknownSegments([ref])
                return segment.tree

            check_expansion(tree, resolve, name=name)
            previous = stored.get(original) if original is not None else None
            return Segment(
                name=name,
                expression=expression,
                description=description,
                created_at=previous.created_at if previous else now,
                created_by=previous.created_by if previous else by,
                updated_at=now,
                updated_by=by,
            )

        def write(pipe: Any, segment: Segment) -> None:
            if original is not None and original != name:
                pipe.delete(self.keys.segment_key(original))
                pipe.srem(self.index_key, original)
            pipe.delete(self.keys.segment_key(name))
            pipe.hset(self.keys.segment_key(name), mapping=segment.as_dict())
            pipe.sadd(self.index_key, name)

        return self._transaction(check, write)

    def delete(self, name: str) -> None:
        """Delete segment ``name``; refused (``SegmentInUse``, naming them) while others use it."""

        def check(stored: dict[str, Segment]) -> Segment:
            if name not in stored:
                raise SegmentNotFound(name)
            users = _users_of(name, stored.values())
            if users:
                raise SegmentInUse(name, users)
            return stored[name]

        def write(pipe: Any, segment: Segment) -> None:
            pipe.delete(self.keys.segment_key(name))
            pipe.srem(self.index_key, name)

        self._transaction(check, write)

    def _transaction(self, check: Any, write: Any) -> Segment:
        """redis-py's ``transaction``: WATCH the index and every segment it lists, ``check`` what
        is stored, ``write`` in MULTI/EXEC; started over (after ``_RETRY_PAUSE``) when a watched
        key changed meanwhile, at most ``_SAVE_ATTEMPTS`` times."""
        attempts = itertools.count(1)

        def attempt(pipe: Any) -> Segment:
            if next(attempts) > _SAVE_ATTEMPTS:
                raise SegmentConflict(
                    "segments kept changing while saving; nothing was written, try again"
                )
            names = sorted(_text(n) for n in pipe.smembers(self.index_key))
            if names:
                pipe.watch(*[self.keys.segment_key(n) for n in names])
            # read on another connection in one round trip: our WATCH still sees any change
            stored = self._load(names)
            segment = check(stored)
            pipe.multi()
            write(pipe, segment)
            return segment  # type: ignore[no-any-return]

        return cast(
            Segment,
            self.redis.transaction(
                attempt,  # type: ignore[arg-type]  # typed as returning None; its value is returned
                self.index_key,
                value_from_callable=True,
                watch_delay=_RETRY_PAUSE,
            ),
        )

    @staticmethod
    def _checked_text(value: Any, limit: int, what: str) -> str:
        if not isinstance(value, str):
            raise SegmentError(f"the {what} must be a string, got {type(value).__name__}")
        if len(value) > limit:
            raise SegmentError(f"the {what} has at most {limit} characters, got {len(value)}")
        return value
