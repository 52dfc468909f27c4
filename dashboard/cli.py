"""``flask --app wsgi ...`` commands: load demo data, make a password hash, stop the embedded
Redis, forget a user, rebuild first-time bitmaps from history, move a dataset to the sharded
layout."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext
from werkzeug.security import generate_password_hash

import bitcore
from bitcore import demo as demo_data
from bitcore import erasure, first_time, migrate
from bitcore.connection import connect, connect_cluster
from dashboard import store


@click.command("demo")
@with_appcontext
@click.option(
    "--users",
    default=demo_data.DEFAULT_USERS,
    show_default=True,
    type=click.IntRange(1, 10_000_000),
)
@click.option(
    "--days", default=demo_data.DEFAULT_DAYS, show_default=True, type=click.IntRange(1, 3650)
)
@click.option("--seed", default=demo_data.DEFAULT_SEED, show_default=True, type=int)
def demo_command(users: int, days: int, seed: int) -> None:
    """Load realistic demo data (signups, retention, product events, platforms) ending today."""
    client = store.client()
    started = time.perf_counter()
    summary = demo_data.load_demo(client, users=users, days=days, seed=seed)
    click.echo(
        f"Loaded {summary.marks:,} marks for {summary.users:,} users over {summary.days} days "
        f"({summary.first_day} to {summary.last_day}) in {time.perf_counter() - started:.1f} s."
    )
    server = store.embedded_server()
    if server is not None:
        click.echo(f"Embedded Redis keeps the data in {server.data_dir}.")


@click.command("hash-password")
@click.option("--username", default="", help="Also print the BITCORE_USERS entry for this user.")
@click.password_option(help="The password (asked for, twice, when left out).")
def hash_password_command(username: str, password: str) -> None:
    """Print a salted hash of a password for BITCORE_USERS="name:<hash>,..."."""
    if not password:
        raise click.BadParameter("the password must not be empty", param_hint="--password")
    hashed = generate_password_hash(password)
    click.echo(f"{username}:{hashed}" if username else hashed)


@click.command("stop-redis")
@with_appcontext
def stop_redis_command() -> None:
    """Stop the embedded Redis of this app's data directory (it saves its data first)."""
    if current_app.config.get("REDIS_URL"):
        raise click.ClickException(
            "REDIS_URL is set: this app uses an external Redis, not an embedded one."
        )
    server = store.embedded_server()
    directory = store.data_dir(current_app)
    if server is not None and server.owned:
        server.stop()  # loading the app started it: it was not running before
        click.echo(f"No embedded Redis was running for {directory}.")
        return
    if store.shutdown_embedded(directory):
        click.echo(f"Stopped the embedded Redis of {directory}.")
    else:
        click.echo(f"No embedded Redis was running for {directory}.")


def _user_id(text: str, as_string: bool) -> int | str:
    """The id as typed: digits are an integer id unless ``--string`` says the id is text."""
    return text if as_string or not text.isdigit() else int(text)


@click.command("forget-user")
@with_appcontext
@click.argument("user_id")
@click.option("--dry-run", is_flag=True, help="Count the keys that hold the user; write nothing.")
@click.option("--string", "as_string", is_flag=True, help="Take an id of digits as text.")
@click.option(
    "--batch",
    default=erasure.DEFAULT_BATCH,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="Keys per SCAN step and per script call.",
)
def forget_user_command(user_id: str, dry_run: bool, as_string: bool, batch: int) -> None:
    """Forget a user: clear their bit in every event, period and unique key (and in cached
    results), then remove their id mapping. Stopped midway, run it again: it ends the same."""
    client = store.client()
    external = _user_id(user_id, as_string)
    try:
        client.internal_id(external)
    except (TypeError, ValueError) as error:
        raise click.BadParameter(str(error), param_hint="USER_ID") from None
    total = int(client.redis.dbsize())
    with click.progressbar(length=total, label="Scanning keys", file=sys.stderr) as bar:
        report = client.forget(external, dry_run=dry_run, batch=batch, progress=bar.update)
    verb = "Would clear" if dry_run else "Cleared"
    click.echo(
        f"{verb} user {user_id}'s bit in {report.keys_changed:,} keys "
        f"({report.data_keys_changed:,} of events, {report.temporary_keys_changed:,} cached "
        f"results) of {report.keys_scanned:,} scanned."
    )
    if report.internal_id is None:
        click.echo("The id map knows no such user: nothing held their bit.")
    elif report.mapping_removed:
        click.echo("Their id mapping is removed.")
    elif dry_run and client.id_mapping:
        click.echo("Their id mapping would be removed.")


@click.command("rebuild-first-time")
@with_appcontext
@click.option("--restart", is_flag=True, help="Rebuild every event, even those done before.")
def rebuild_first_time_command(restart: bool) -> None:
    """Compute first-time bitmaps (new users per period) from history, for data written before
    bitcore kept them or by plain bitmapist. Stopped midway (Ctrl-C), it resumes where it was."""
    client = store.client()
    with click.progressbar(length=1, label="Rebuilding first-time bitmaps") as bar:

        def advance(event: str, done: int, total: int) -> None:
            bar.length = total
            bar.label = f"Rebuilt {event[:40]}"
            bar.update(1)

        result = first_time.rebuild_first_time(client, restart=restart, progress=advance)
    click.echo(
        f"Rebuilt {result.events:,} events ({result.keys:,} first-time bitmaps); "
        f"{result.skipped:,} were done already (--restart rebuilds them)."
    )


@click.command("migrate-layout")
@with_appcontext
@click.option(
    "--to",
    "to_url",
    default=None,
    help="The Redis to copy into (a node of it, with --cluster); default: the app's own Redis.",
)
@click.option("--cluster", is_flag=True, help="--to names a node of a Redis Cluster.")
@click.option(
    "--delete-source", is_flag=True, help="Delete the flat keys once every copy is verified."
)
def migrate_layout_command(to_url: str | None, cluster: bool, delete_source: bool) -> None:
    """Copy this app's flat (bitmapist) dataset into the sharded layout, for a Redis Cluster:
    in bounded steps, every key's count verified, the source kept unless --delete-source.
    Stopped midway (Ctrl-C, a dropped connection), run it again: it resumes where it was."""
    source = store.client()
    if source.layout != "flat":
        raise click.ClickException("this app already runs on the sharded layout")
    if cluster and not to_url:
        raise click.BadParameter("--cluster needs --to, a node of the cluster", param_hint="--to")
    target_redis: Any = source.redis
    if to_url:
        target_redis = connect_cluster(to_url) if cluster else connect(to_url)
    target = bitcore.BitCore(
        target_redis,
        layout="sharded",
        key_prefix=source.keys.prefix,
        track_hourly=source.track_hourly,
        universe=source.universe,
    )
    total = sum(1 for _ in migrate.data_keys(source))
    with click.progressbar(length=total, label="Copying keys", file=sys.stderr) as bar:
        try:
            report = migrate.migrate_layout(
                source, target, delete_source=delete_source, progress=lambda _key: bar.update(1)
            )
        except migrate.MigrationMismatch as error:
            raise click.ClickException(str(error)) from None
    click.echo(
        f"Copied {report.keys:,} keys ({report.bits:,} bits), verified; {report.skipped:,} were "
        f"done already; {report.names:,} names and {report.segments:,} segments added."
    )
    if delete_source:
        click.echo(f"Deleted {report.deleted:,} source keys.")
    else:
        click.echo("The source is kept (--delete-source deletes it).")
