"""Validation of tracking beacons: pure functions from untrusted payloads to checked ``Beacon``s.

Nothing here touches Redis or the web, so every rule can be tested with a table of payloads. A
payload is either one event ``{"event": "song:played", "uid": 123}`` or a batch
``{"events": [{...}, ...]}`` whose events may leave out ``uid``/``sig`` to take the top-level
ones. Any bad field rejects the whole payload with a ``BeaconError`` that names the field
(``events[3].uid``), so a request is written whole or not at all.

>>> rules = BeaconRules(max_uid=1000)
>>> [b.event for b in parse_payload({"event": "song:played", "uid": 7}, rules, now=0.0)]
['song:played']
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from bitcore.validation import (
    MAX_EXTERNAL_LENGTH,
    MAX_PUBLIC_NAME_LENGTH,
    EventNameError,
    check_event_name,
    check_external_id,
)

#: A bit at offset N makes Redis allocate N/8 bytes: 2**22 keeps one key at 512 KiB at most, so
#: even a beacon that makes every kind of key (month, week, day, hour, unique, universe: 3 MiB)
#: fits the default per-request write budget (``BITCORE_TRACK_MAX_WRITE_BYTES``, 8 MiB).
DEFAULT_MAX_UID = 2**22


#: A request id (``"request_id"``, optional): letters, digits and ``_-.:``, at most this long.
MAX_REQUEST_ID_LENGTH = 64
_REQUEST_ID = re.compile(rf"[A-Za-z0-9_.:-]{{1,{MAX_REQUEST_ID_LENGTH}}}")


class BeaconError(ValueError):
    """A payload the endpoint refuses; ``field`` names the part of the request at fault."""

    def __init__(self, field: str, detail: str, status: int = 400) -> None:
        super().__init__(f"{field} {detail}")
        self.field = field
        self.detail = detail
        self.status = status

    @property
    def message(self) -> str:
        return f"{self.field} {self.detail}"

    def renamed(self, field: str) -> BeaconError:
        """The same error for a field further inside the payload (``uid`` -> ``events[3].uid``)."""
        return BeaconError(field, self.detail, self.status)


@dataclass(frozen=True)
class BeaconRules:
    """What the server accepts; the dashboard builds it from the settings."""

    max_uid: int = DEFAULT_MAX_UID  # ids must be < max_uid
    max_batch: int = 500
    max_name_length: int = MAX_PUBLIC_NAME_LENGTH
    max_age_seconds: float = 7 * 86400  # ts older than this is refused
    max_skew_seconds: float = 300  # ts later than now + skew is refused
    allow_hourly: bool = False  # may a beacon ask for hour keys?
    allow_unique: bool = True  # may a beacon ask for the dateless unique key?
    default_hourly: bool = False
    hmac_secret: bytes | None = None  # set: every uid must carry sig = HMAC-SHA256(secret, uid)
    universe: str = "_seen"
    #: The client maps ids: a uid is an int in [0, 2**63) or a string of 1 to 128 printable
    #: characters (``max_uid`` does not apply: mapped ids are dense, the write budget holds).
    id_mapping: bool = False


class Beacon(NamedTuple):
    """One checked event: who, what, when (unix seconds, or ``None`` for "now") and which keys."""

    event: str
    uid: int | str  # a str only with the id map on
    ts: float | None
    track_hourly: bool
    unique: bool
    clamped: bool = False  # ``ts`` was outside the window and moved to its nearest edge


def sign_uid(secret: bytes, uid: int | str) -> str:
    """The signature a site's backend hands its page for ``uid``: hex HMAC-SHA256 of ``str(uid)``,
    the id as sent (a string id as it is, so ``123`` and ``"123"``, one user, share it).

    >>> sign_uid(b"s3cret", 123)[:16], sign_uid(b"s3cret", "123")[:16]
    ('f214e50971a56e38', 'f214e50971a56e38')
    """
    return hmac.new(secret, str(uid).encode(), hashlib.sha256).hexdigest()


def check_event(value: Any, field: str, rules: BeaconRules) -> str:
    """The library's rule for public event names (``bitcore.validation``), the universe
    reserved, as a ``BeaconError`` naming ``field``."""
    try:
        return check_event_name(
            value, public=True, reserved=(rules.universe,), max_length=rules.max_name_length
        )
    except EventNameError as error:
        raise BeaconError(field, error.detail) from None


#: What a mapped uid may be, for the refusals.
_EXTERNAL_RULE = (
    f"must be an integer in [0, 2**63) or a string of 1 to {MAX_EXTERNAL_LENGTH} printable "
    "characters"
)


def check_uid(value: Any, field: str, rules: BeaconRules) -> int | str:
    """An int in ``[0, max_uid)``; bools, floats and numeric strings are refused, not coerced.
    With ``rules.id_mapping``, an external id (``validation.check_external_id``) instead."""
    if type(value) is int and 0 <= value < rules.max_uid:  # the common case, first: once an event
        return value
    if value is None:
        raise BeaconError(field, "is required")
    if rules.id_mapping:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise BeaconError(field, _EXTERNAL_RULE)
        try:
            return check_external_id(value)
        except ValueError:
            raise BeaconError(field, _EXTERNAL_RULE) from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BeaconError(field, "must be an integer")
    if not 0 <= value < rules.max_uid:
        raise BeaconError(field, f"must be in [0, {rules.max_uid})")
    return value


def check_sig(uid: int | str, sig: Any, field: str, rules: BeaconRules) -> None:
    if rules.hmac_secret is None:
        return
    if not isinstance(sig, str) or not sig:
        raise BeaconError(field, "is required: ids must be signed by the site's backend", 403)
    expected = sign_uid(rules.hmac_secret, uid).encode()
    # bytes, not str: compare_digest raises on a str that is not ASCII
    if not hmac.compare_digest(sig.lower().encode("utf-8", "surrogatepass"), expected):
        raise BeaconError(field, "does not match the uid", 403)


def check_ts(value: Any, field: str, rules: BeaconRules, now: float) -> float | None:
    """Unix seconds, clamped into ``[now - max_age, now + skew]``: an event from a client whose
    clock is off, or one queued offline for longer than the window, is kept at the window's
    nearest edge rather than lost (the answer counts such events, so the client can find out).
    Anything but a finite number is refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BeaconError(field, "must be unix seconds (a number)")
    try:
        seconds = float(value)  # an int past a float's range raises
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds):
        raise BeaconError(field, "must be unix seconds (a finite number)")
    return min(max(seconds, now - rules.max_age_seconds), now + rules.max_skew_seconds)


def check_flag(value: Any, field: str, allowed: bool, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BeaconError(field, "must be true or false")
    if value and not allowed:
        raise BeaconError(field, "is not allowed on this server")
    return value


#: Fields an event may take from the top of a batch; an error in one taken from there is named so.
_SHARED_FIELDS = ("uid", "sig", "ts")


def parse_event(
    item: Any,
    where: str,
    defaults: Mapping[str, Any],
    rules: BeaconRules,
    now: float,
    valid_names: set[str] | None = None,
) -> Beacon:
    """One event; ``where`` prefixes field names (``events[2].``), ``defaults`` gives uid/sig/ts.

    This runs once per event of every batch, so it does no more than the checks need: field names
    are only built when something is wrong, and ``valid_names`` (shared by a batch's events) holds
    the event names already checked, since a batch repeats a few names many times.
    """
    if not isinstance(item, dict):
        raise BeaconError(where.rstrip(".") or "body", "must be a JSON object")
    try:
        uid = check_uid(item["uid"] if "uid" in item else defaults.get("uid"), "uid", rules)
        if rules.hmac_secret is not None:
            check_sig(uid, item["sig"] if "sig" in item else defaults.get("sig"), "sig", rules)
        ts = item.get("ts", defaults.get("ts"))
        hourly = item.get("track_hourly")
        unique = item.get("unique")
        event = item.get("event")
        if valid_names is None or type(event) is not str or event not in valid_names:
            event = check_event(event, "event", rules)
            if valid_names is not None:
                valid_names.add(event)
        when = None if ts is None else check_ts(ts, "ts", rules, now)
        return Beacon(
            event,
            uid,
            when,
            rules.default_hourly
            if hourly is None
            else check_flag(hourly, "track_hourly", rules.allow_hourly, rules.default_hourly),
            False if unique is None else check_flag(unique, "unique", rules.allow_unique, False),
            when is not None and when != ts,
        )
    except BeaconError as error:
        if not where or (error.field in _SHARED_FIELDS and error.field not in item):
            raise
        raise error.renamed(where + error.field) from None


def check_request_id(value: Any, field: str = "request_id") -> str | None:
    """A request's optional id (``None`` when absent): a client's retry of a request sends the
    same id, so it is written and counted once (``bitcore.tracking.write``).

    >>> check_request_id("b-1701.3"), check_request_id(None)
    ('b-1701.3', None)
    """
    if value is None:
        return None
    if not isinstance(value, str) or not _REQUEST_ID.fullmatch(value):
        raise BeaconError(
            field, f"must be 1 to {MAX_REQUEST_ID_LENGTH} letters, digits or the characters _-.:"
        )
    return value


def request_id_of(payload: Any) -> Any:
    """The ``"request_id"`` of a JSON payload as sent, unchecked (``None`` when absent)."""
    return payload.get("request_id") if isinstance(payload, dict) else None


def parse_payload(payload: Any, rules: BeaconRules, now: float) -> list[Beacon]:
    """Every event of a decoded JSON payload, checked; the first bad field raises BeaconError."""
    if not isinstance(payload, dict):
        raise BeaconError("body", "must be a JSON object")
    if "events" not in payload:
        return [parse_event(payload, "", {}, rules, now)]
    items = payload["events"]
    if not isinstance(items, list):
        raise BeaconError("events", "must be a list")
    if not items:
        raise BeaconError("events", "must not be empty")
    if len(items) > rules.max_batch:
        raise BeaconError("events", f"may hold at most {rules.max_batch} events per request", 413)
    defaults = {"uid": payload.get("uid"), "sig": payload.get("sig"), "ts": payload.get("ts")}
    valid_names: set[str] = set()
    beacons = []
    try:
        for item in items:
            beacons.append(parse_event(item, "events[].", defaults, rules, now, valid_names))
    except BeaconError as error:
        # name the event at fault by its position, only now that there is one
        field = error.field.replace("events[]", f"events[{len(beacons)}]", 1)
        raise error.renamed(field) from None
    return beacons


def parse_pixel(args: Mapping[str, str], rules: BeaconRules, now: float) -> list[Beacon]:
    """The query string of a pixel request (``?e=...&u=...&s=...&t=...``) as one event."""
    raw_uid = args.get("u")
    if raw_uid is None or raw_uid == "":
        raise BeaconError("u", "(the uid) is required")
    uid: int | str
    if rules.id_mapping:
        uid = raw_uid  # checked as a string id; one that spells an int is that int's user
    elif re.fullmatch(r"[0-9]{1,12}", raw_uid):
        uid = int(raw_uid)
    else:
        raise BeaconError("u", "must be a non-negative integer")
    payload: dict[str, Any] = {"event": args.get("e"), "uid": uid, "sig": args.get("s")}
    raw_ts = args.get("t")
    if raw_ts:
        try:
            payload["ts"] = float(raw_ts)
        except ValueError:
            raise BeaconError("t", "must be unix seconds (a number)") from None
    try:
        return [parse_event(payload, "", {}, rules, now)]
    except BeaconError as error:
        short = {"event": "e", "uid": "u", "sig": "s", "ts": "t"}.get(error.field, error.field)
        raise error.renamed(short) from None
