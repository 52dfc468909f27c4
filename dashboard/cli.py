"""``flask --app wsgi ...`` commands: load demo data, make a password hash, stop the embedded
Redis, rebuild first-time bitmaps from history."""

from __future__ import annotations

import time

import click
from flask import current_app
from flask.cli import with_appcontext
from werkzeug.security import generate_password_hash

from bitcore import demo as demo_data
from bitcore import first_time
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
