"""Realistic demo data: users who sign up over a few months, come back less and less, and do a few
things.

The dashboard is dull on an empty Redis, and a newcomer wants to see a cohort table with a real
retention curve before wiring in their own events. The generator is deterministic (a seed), written
through the one writer (``BitCore.mark_many`` one day per call, ``mark_unique_many`` for the
platforms), so 50,000 users over 120 days load in a few seconds.

What it writes, per simulated day ``d`` (ids ``1..users``, assigned in signup order, so ids grow
over time):

- ``signup``: the users who signed up that day (more each week: the product is growing);
- ``active``: each user is active on their signup day; each has a hidden lifetime (heavy-tailed:
  most leave within days, a few stay for months) and, while it lasts, is active on
  ``DAILY_VISIT_CHANCE`` of days (a little less on weekends), so the share of a cohort active ``k``
  days later follows ``retention(k)``;
- ``song:played``, ``project:created``, ``teammate:invited``: done by some of that day's active
  users;
- ``churned``: a user is marked churned on the day they have been away for ``CHURN_AFTER_DAYS``
  days (the kind of event a product's nightly job writes);
- flags (unique, dateless events) ``ios``, ``android``, ``web``: the platforms each user has used;
- saved segments (:data:`SEGMENTS`, through ``SegmentStore``) so the segments page, the cohort and
  funnel pickers show the feature at work; one refers to another;
- saved reports (:data:`REPORTS`, through ``ReportStore``), rolling with time and on the overview,
  so a newcomer's first page shows them as cards.

>>> summary = load_demo(b, users=1000, days=30)  # doctest: +SKIP
>>> summary.users, summary.days  # doctest: +SKIP
(1000, 30)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np

from bitcore.saved_reports import ReportExists, ReportStore, TooManyReports
from bitcore.segments import SegmentExists, SegmentStore

if TYPE_CHECKING:
    from bitcore.client import BitCore, Mark

DEFAULT_USERS = 50_000
DEFAULT_DAYS = 120
DEFAULT_SEED = 2024
#: Chance that a user who has not left yet comes back on a given weekday.
DAILY_VISIT_CHANCE = 0.4
#: Lifetimes in days are ``LIFETIME_SCALE * Lomax(LIFETIME_SHAPE)``: P(lifetime > k) = (1 +
#: k/scale)^-shape.
LIFETIME_SCALE = 3.0
LIFETIME_SHAPE = 0.8

#: Event name -> (share of active users doing it on a day in their first week, share afterwards).
PRODUCT_EVENTS: dict[str, tuple[float, float]] = {
    "song:played": (0.70, 0.55),
    "project:created": (0.30, 0.10),
    "teammate:invited": (0.12, 0.03),
}
#: Days without a visit after which a user is marked ``churned``.
CHURN_AFTER_DAYS = 14
#: Saved segments the demo ships: name -> (expression, description), saved in this order.
SEGMENTS: dict[str, tuple[str, str]] = {
    "mobile": (
        "unique(ios) OR unique(android)",
        "Users of a phone app (a flag, whatever the day).",
    ),
    "creators": (
        "active AND project:created",
        "Active users who created a project in the period.",
    ),
    "mobile churn": ("churned AND @mobile", "Phone users marked churned in the period."),
}
#: Saved reports the demo ships, on the overview: name -> (page, query). Both roll with time.
REPORTS: dict[str, tuple[str, str]] = {
    "Weekly retention": (
        "cohort",
        "select1=signup&select2=active&time_group=weeks&num_results=8&num_of_rows=7&rolling=1",
    ),
    "Active users, lifecycle": ("lifecycle", "event=active&period=week&count=8"),
}
#: Who the demo's segments and reports are saved by.
DEMO_AUTHOR = "demo data"
#: Unique event -> share of users who use that platform (a user may use several).
PLATFORMS: dict[str, float] = {"ios": 0.45, "android": 0.35, "web": 0.40}


@dataclass(frozen=True)
class DemoSummary:
    users: int
    days: int
    first_day: date
    last_day: date
    marks: int  # dated marks written (platform flags not counted)
    segments: tuple[str, ...] = ()  # the saved segments it added (none when they existed)
    reports: tuple[str, ...] = ()  # the saved reports it added (none when they existed)


def retention(age_days: np.ndarray) -> np.ndarray:
    """Expected share of a cohort active ``age_days`` after signup on a weekday: 1 on day 0, then
    the visit chance times the share still around (about 28% on day 1, 20% on day 7, 7% on day
    30)."""
    ages = np.asarray(age_days, dtype=float)
    still_here = np.power(1.0 + np.maximum(ages, 0) / LIFETIME_SCALE, -LIFETIME_SHAPE)
    return np.where(ages <= 0, 1.0, DAILY_VISIT_CHANCE * still_here)


def signup_days(rng: np.random.Generator, users: int, days: int) -> np.ndarray:
    """The signup day index (0 = first day) of each user, sorted, with signups growing over time."""
    weights = 1.0 + 1.5 * np.arange(days) / max(days - 1, 1)
    return np.sort(rng.choice(days, size=users, p=weights / weights.sum()))


def lifetimes(rng: np.random.Generator, users: int) -> np.ndarray:
    """How many days each user keeps coming back after signing up (heavy-tailed)."""
    return LIFETIME_SCALE * rng.pareto(LIFETIME_SHAPE, size=users)


def daily_marks(
    rng: np.random.Generator,
    signup: np.ndarray,
    lifetime: np.ndarray,
    day_index: int,
    when: date,
    last_seen: np.ndarray | None = None,
) -> list[Mark]:
    """The dated marks of one simulated day (user ``i + 1`` signed up on day ``signup[i]`` and keeps
    visiting for ``lifetime[i]`` days). ``last_seen`` (the day index each user was last active,
    -1 for never), when given, is brought up to date and gives the day's ``churned`` marks."""
    alive = np.flatnonzero(signup <= day_index)
    age = day_index - signup[alive]
    visit = DAILY_VISIT_CHANCE * (0.85 if when.weekday() >= 5 else 1.0)
    chance = np.where(age < lifetime[alive], visit, 0.0)
    chance[age == 0] = 1.0
    active = alive[rng.random(alive.size) < chance]
    marks: list[Mark] = [("signup", uid, when) for uid in (alive[age == 0] + 1).tolist()]
    marks += [("active", uid, when) for uid in (active + 1).tolist()]
    if last_seen is not None:
        last_seen[active] = day_index
        gone = np.flatnonzero(last_seen == day_index - CHURN_AFTER_DAYS)
        marks += [("churned", uid, when) for uid in (gone + 1).tolist()]
    new_user = (day_index - signup[active]) < 7
    for event, (early, later) in PRODUCT_EVENTS.items():
        share = np.where(new_user, early, later)
        doers = active[rng.random(active.size) < share]
        marks += [(event, uid, when) for uid in (doers + 1).tolist()]
    return marks


def load_demo(
    client: BitCore,
    users: int = DEFAULT_USERS,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    last_day: date | None = None,
) -> DemoSummary:
    """Write the demo data set ending on ``last_day`` (default: today in the client's time zone).

    Marks only set bits, so loading twice changes nothing; it never deletes anything.
    """
    if users < 1 or days < 1:
        raise ValueError(f"need at least one user and one day, got users={users}, days={days}")
    last_day = last_day or client.now().date()
    first_day = last_day - timedelta(days=days - 1)
    rng = np.random.default_rng(seed)
    signup = signup_days(rng, users, days)
    lifetime = lifetimes(rng, users)
    written = 0
    last_seen = np.full(users, -1)
    for day_index in range(days):
        when = first_day + timedelta(days=day_index)
        marks = daily_marks(rng, signup, lifetime, day_index, when, last_seen)
        written += client.mark_many(marks)
    client.mark_unique_many(
        (platform, uid)
        for platform, share in PLATFORMS.items()
        for uid in (np.flatnonzero(rng.random(users) < share) + 1).tolist()
    )
    segments = save_segments(client)
    return DemoSummary(users, days, first_day, last_day, written, segments, save_reports(client))


def save_segments(client: BitCore) -> tuple[str, ...]:
    """Save the demo's :data:`SEGMENTS` that do not exist yet (one edited by hand is kept as it
    is); returns the names saved."""
    segments = SegmentStore(client)
    saved = []
    for name, (expression, description) in SEGMENTS.items():
        if segments.exists(name):
            continue
        try:
            segments.save(name, expression, description, by=DEMO_AUTHOR)
        except SegmentExists:  # another worker loading the demo at the same moment
            continue
        saved.append(name)
    return tuple(saved)


def save_reports(client: BitCore) -> tuple[str, ...]:
    """Save the demo's :data:`REPORTS` that do not exist yet, on the overview (while it has room);
    returns the names saved."""
    reports = ReportStore(client)
    known = set(reports.names())
    saved = []
    for name, (page, query) in REPORTS.items():
        if name in known:
            continue
        try:
            reports.save(name, page, query, by=DEMO_AUTHOR)
            reports.pin(name, True, by=DEMO_AUTHOR)
        except (ReportExists, TooManyReports):  # another worker, or a full overview
            continue
        saved.append(name)
    return tuple(saved)
