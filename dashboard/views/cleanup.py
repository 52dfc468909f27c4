"""Scheduled cleanup of temporary bit-op keys: the status page, the in-app scheduler and the CLI.

The job itself (what is deleted, the lock, the last-run record) is :mod:`bitcore.cleanup`; this
module holds what ``create_app`` registers for it:

- ``/system`` (and ``/system.json``): when cleanup last ran, what it freed, how many bit-op keys
  exist now;
- a daemon thread per process that wakes up (with jitter) when the interval is due and calls
  :func:`bitcore.cleanup.run_if_due`, which runs once per interval however many workers or hosts
  there are. On unless ``BITCORE_CLEANUP_ENABLED=0`` (the test suite sets it);
- ``flask --app wsgi cleanup [--dry-run] [--all] [--max-idle SECONDS]`` for cron.

Every real run also refreshes the registry of event names (:func:`refresh_names`), so names written
by plain bitmapist, which keeps no registry, appear in the dashboard within one interval.
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import UTC, datetime
from typing import Any

import click
import redis
from flask import Blueprint, Flask, current_app
from flask.cli import with_appcontext
from flask.typing import ResponseReturnValue

import bitcore
from bitcore import cleanup, event_names
from dashboard import negotiation, store
from dashboard.presenters import units

bp = Blueprint("cleanup", __name__)

#: A failed or not-yet-due wake-up sleeps at least this long (or the interval, if shorter).
RETRY_FLOOR = 60.0
#: Upper bound of the random delay added to every sleep, so workers started together spread out.
MAX_JITTER = 30.0


def settings(app: Flask) -> dict[str, Any]:
    """The cleanup settings from the app config; a bad one is a ``ValueError`` naming it."""
    enabled = app.config.get("BITCORE_CLEANUP_ENABLED")
    interval = app.config.get("BITCORE_CLEANUP_INTERVAL", cleanup.DEFAULT_INTERVAL)
    max_idle = app.config.get("BITCORE_CLEANUP_MAX_IDLE", cleanup.DEFAULT_MAX_IDLE)
    lock_ttl = app.config.get("BITCORE_CLEANUP_LOCK_TTL", cleanup.DEFAULT_LOCK_TTL)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
        raise ValueError(f"BITCORE_CLEANUP_INTERVAL must be seconds > 0, got {interval!r}")
    if isinstance(max_idle, bool) or not isinstance(max_idle, int) or max_idle < 0:
        raise ValueError(f"BITCORE_CLEANUP_MAX_IDLE must be whole seconds >= 0, got {max_idle!r}")
    if isinstance(lock_ttl, bool) or not isinstance(lock_ttl, int | float) or lock_ttl <= 0:
        raise ValueError(f"BITCORE_CLEANUP_LOCK_TTL must be seconds > 0, got {lock_ttl!r}")
    return {
        # None (the default) means on; tests turn it off with BITCORE_CLEANUP_ENABLED=0.
        "enabled": enabled is None or bool(enabled),
        "interval": interval,
        "max_idle": max_idle,
        "lock_ttl": lock_ttl,
    }


def refresh_names(client: bitcore.BitCore) -> int:
    """Add the names of event keys the registry lacks (written by plain bitmapist, or before the
    registry existed); part of every cleanup run. Returns how many were new."""
    return event_names.rebuild(client)


class CleanupScheduler:
    """One daemon thread per process that runs cleanup when it is due; never raises, never blocks.

    Each wake-up asks Redis whether the interval has passed since the last run (by anyone), runs if
    so and it wins the lock, then sleeps until the next run is due (at least :data:`RETRY_FLOOR`
    seconds, at most the interval) plus jitter.
    """

    def __init__(
        self,
        client: bitcore.BitCore,
        *,
        interval: float,
        max_idle: int,
        lock_ttl: float,
        logger: logging.Logger,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.interval = interval
        self.max_idle = max_idle
        self.lock_ttl = lock_ttl
        self.logger = logger
        self.rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _jitter(self) -> float:
        return self.rng.uniform(0, min(self.interval / 10, MAX_JITTER))

    def tick(self) -> float:
        """One wake-up: run if due. Returns the seconds to sleep before the next one."""
        try:
            result = cleanup.run_if_due(
                self.client.redis,
                self.client.keys,
                interval=self.interval,
                max_idle=self.max_idle,
                lock_ttl=self.lock_ttl,
            )
            if result is not None:
                self.logger.info(
                    "bitcore cleanup freed %d bit-op keys, %d bytes (%d scanned, %.3fs)",
                    result.keys,
                    result.bytes,
                    result.scanned,
                    result.seconds,
                )
                self.logger.info(
                    "bitcore cleanup registered %d new event names", refresh_names(self.client)
                )
            wait = cleanup.seconds_until_due(self.client.redis, self.interval)
        except Exception:  # a worker must outlive Redis hiccups: log and try again later
            self.logger.exception("bitcore cleanup failed; retrying later")
            wait = 0.0
        return min(max(wait, min(self.interval, RETRY_FLOOR)), self.interval) + self._jitter()

    def _run(self) -> None:
        delay = self.rng.uniform(0, min(self.interval, MAX_JITTER))
        while not self._stop.wait(delay):
            delay = self.tick()

    def start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="bitcore-cleanup", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


def start_scheduler(app: Flask, config: dict[str, Any]) -> CleanupScheduler:
    """Make the app's scheduler (``app.extensions["bitcore_cleanup"]``, which ``/system`` reports
    on) from its ``settings``, and start it when it is enabled and the process is a server."""
    scheduler = CleanupScheduler(
        app.extensions["bitcore"],
        interval=config["interval"],
        max_idle=config["max_idle"],
        lock_ttl=config["lock_ttl"],
        logger=app.logger,
    )
    app.extensions["bitcore_cleanup"] = scheduler
    if config["enabled"] and not _one_shot_cli_command():
        scheduler.start()
    return scheduler


def _one_shot_cli_command() -> bool:
    """True while a ``flask`` command other than ``run`` loads the app (``flask cleanup`` from cron,
    ``flask routes``...): such a process exits soon, so it starts no scheduler. Servers (gunicorn,
    ``flask run``) load the app outside any such command."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.info_name not in (None, "run")


# --- the status page


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _run_data(result: cleanup.CleanupResult | None, now: float) -> dict[str, Any] | None:
    if result is None:
        return None
    return {
        "time": _iso(result.time),
        "seconds_ago": round(now - result.time, 1),
        "keys": result.keys,
        "bytes": result.bytes,
        "scanned": result.scanned,
        "untracked_idle": result.untracked,
        "dry_run": result.dry_run,
        "all": result.all_keys,
        "max_idle": result.max_idle,
        "duration": result.seconds,
    }


def status() -> dict[str, Any]:
    """Everything ``/system`` shows, as plain data (the JSON twin returns exactly this)."""
    client = store.client()
    r = client.redis
    config = settings(current_app)
    now = cleanup.server_time(r)
    count = cleanup.count_temporary_keys(r, client.keys)
    last = cleanup.last_run(r)
    scheduler: CleanupScheduler | None = current_app.extensions.get("bitcore_cleanup")
    due_in = cleanup.seconds_until_due(r, config["interval"]) if last is not None else 0.0
    return {
        "server_time": _iso(now),
        "cleanup": {
            "last_run": _run_data(last, now),
            "last_dry_run": _run_data(cleanup.last_run(r, dry_run=True), now),
            "running_now": bool(r.exists(cleanup.LOCK_KEY)),
            "schedule": {
                "enabled": config["enabled"],
                "scheduler_thread_alive": bool(scheduler and scheduler.running),
                "interval": config["interval"],
                "max_idle": config["max_idle"],
                "next_due_in": max(0.0, round(due_in, 1)),
            },
        },
        "temporary_keys": {
            "total": count.total,
            "without_ttl": count.without_ttl,
            "complete": count.complete,
        },
    }


@bp.route("/system.json", endpoint="system_json")
@bp.route("/system")
def system() -> ResponseReturnValue:
    try:
        data = status()
    except (redis.RedisError, OSError) as error:
        current_app.logger.warning("system status: Redis unavailable: %s", error)
        message = f"Redis is not answering ({type(error).__name__}); see the server log."
        body = negotiation.error_body(503, message, title="Redis is not answering")
        return negotiation.page("system.html", {"error": message}, 503, error=body)
    return negotiation.page(
        "system.html", data, duration=units.duration, size=units.size, moment=units.moment
    )


# --- the CLI


def _describe(result: cleanup.CleanupResult) -> str:
    verb = "Would delete" if result.dry_run else "Deleted"
    which = "all bit-op keys" if result.all_keys else f"no TTL, idle >= {result.max_idle}s"
    noun = "key" if result.keys == 1 else "keys"
    return (
        f"{verb} {result.keys} temporary bit-op {noun} ({which}), "
        f"{'freeing' if not result.dry_run else 'which would free'} {result.bytes} bytes; "
        f"scanned {result.scanned} bit-op keys in {result.seconds:.3f}s."
    )


@click.command("cleanup")
@click.option("--dry-run", is_flag=True, help="Delete nothing; report what a real run would free.")
@click.option(
    "--all",
    "all_keys",
    is_flag=True,
    help="Delete every bit-op key, with or without a TTL (they are recomputed on their next read).",
)
@click.option(
    "--max-idle",
    type=click.IntRange(min=0),
    default=None,
    metavar="SECONDS",
    help="Delete TTL-less bit-op keys idle at least this long (default: BITCORE_CLEANUP_MAX_IDLE).",
)
@with_appcontext
def cleanup_command(dry_run: bool, all_keys: bool, max_idle: int | None) -> None:
    """Delete temporary bit-op keys now (for cron); prints how many keys and bytes it freed."""
    if all_keys and max_idle is not None:
        raise click.UsageError("--all deletes every bit-op key; it takes no --max-idle")
    config = settings(current_app)
    client = store.client()
    try:
        result = cleanup.run_locked(
            client.redis,
            client.keys,
            max_idle=config["max_idle"] if max_idle is None else max_idle,
            all_keys=all_keys,
            dry_run=dry_run,
            lock_ttl=config["lock_ttl"],
        )
    except (redis.RedisError, OSError, cleanup.CleanupLockLost) as error:
        raise click.ClickException(f"cleanup failed: {error}") from error
    if result is None:
        raise click.ClickException(
            f"another cleanup is running (lock {cleanup.LOCK_KEY} is held); nothing was done"
        )
    click.echo(_describe(result))
    if not dry_run:
        try:
            added = refresh_names(client)
        except (redis.RedisError, OSError) as error:
            raise click.ClickException(f"refreshing the event names failed: {error}") from error
        click.echo(f"Registered {added} new event names.")
