"""The bitcore dashboard: a Flask app factory with one blueprint per concern."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix

from bitcore import demo, event_names
from dashboard import auth, cli, errors, security, store, tracking
from dashboard import config as config_module
from dashboard.extensions import csrf
from dashboard.forms.json_body import FormRequest
from dashboard.saved import queries
from dashboard.views import cleanup, cohort, funnel, health, pages, reports, saved, segments, users

_HERE = Path(__file__).resolve().parent


def _asset_dir(name: str) -> str:
    """``templates``/``static`` inside the installed package, else at the repository root
    (development)."""
    packaged = _HERE / name
    return str(packaged if packaged.is_dir() else _HERE.parent / name)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app: environment config, overridden by ``config`` (tests pass theirs here).

    Everything the app is made of is registered here, in order: request hooks and error
    handlers, one blueprint per page group, the ``flask`` commands, then the cleanup scheduler."""
    app = Flask(
        __name__,
        template_folder=_asset_dir("templates"),
        static_folder=_asset_dir("static"),
        instance_relative_config=True,
    )
    # A JSON body is a form's fields or a 400 (dashboard/forms/json_body.py).
    app.request_class = FormRequest
    app.config.from_mapping(config_module.from_environ())
    if config:
        app.config.from_mapping(config)
    app.logger.setLevel(app.config.get("BITCORE_LOG_LEVEL") or "INFO")
    if app.config.get("INSTANCE_PATH"):
        app.instance_path = str(app.config["INSTANCE_PATH"])
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    cleanup_settings = cleanup.settings(app)  # a bad setting stops the start, named
    security.init_app(app)  # first: headers, and cross-site links held before any Redis work
    auth.init_app(app)  # refuses to start without a strong SECRET_KEY under gunicorn
    csrf.init_app(app)
    store.init_app(app)
    errors.init_app(app)
    app.context_processor(_embedded_context)
    # "Save this report" on every report page: the query it saves (dashboard/saved/queries.py)
    app.add_template_global(queries.page_query, "saved_query")

    app.register_blueprint(health.bp)  # /healthz
    app.register_blueprint(auth.bp)  # /login, /logout
    app.register_blueprint(pages.bp)  # /, /event/<name>
    app.register_blueprint(segments.bp)  # /segments...
    app.register_blueprint(funnel.bp)  # /funnel
    app.register_blueprint(cohort.bp)  # /cohort
    app.register_blueprint(users.bp)  # /users: who is behind a report's number
    app.register_blueprint(reports.bp)  # /lifecycle, /stickiness
    app.register_blueprint(saved.bp)  # /reports: saved reports, pinned to the overview as cards
    app.register_blueprint(cleanup.bp)  # /system

    app.cli.add_command(cli.demo_command)  # flask --app wsgi demo
    app.cli.add_command(cli.hash_password_command)  # ... hash-password
    app.cli.add_command(cli.stop_redis_command)  # ... stop-redis
    app.cli.add_command(cli.forget_user_command)  # ... forget-user ID [--dry-run]
    app.cli.add_command(cli.rebuild_first_time_command)  # ... rebuild-first-time
    app.cli.add_command(cli.migrate_layout_command)  # ... migrate-layout [--to URL --cluster]
    app.cli.add_command(cleanup.cleanup_command)  # ... cleanup

    cleanup.start_scheduler(app, cleanup_settings)
    # /track is its own WSGI app in front of Flask (dashboard/tracking/): beacons skip Flask.
    beacons = tracking.TrackingApp(app.config, lambda: app.extensions["bitcore"], app.logger)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {tracking.PREFIX: beacons})  # type: ignore[method-assign]
    trust_proxies(app)  # after the mount, so that it runs first: rate limits see the client
    if app.config.get("BITCORE_DEMO"):
        _load_demo_once(app)
    return app


def _embedded_context() -> dict[str, Any]:
    server = store.embedded_server()
    return {"embedded_data_dir": str(server.data_dir) if server else None}


def _load_demo_once(app: Flask) -> None:
    """``BITCORE_DEMO=1``: load the demo data set unless Redis already holds events (so a restart,
    or a second gunicorn worker, does not load it again; loading twice would only set the same
    bits)."""
    client = app.extensions["bitcore"]
    event_names.ensure(client)  # the registry, never a walk of the keyspace
    held = event_names.count(client) + event_names.flag_page(client, 1).total
    if held:
        app.logger.info(
            "bitcore: BITCORE_DEMO=1, but Redis already holds %s event name%s: demo data not "
            "loaded (it goes only into an empty Redis, so a restart never mixes it with data)",
            f"{held:,}",
            "" if held == 1 else "s",
        )
        return
    summary = demo.load_demo(client)
    app.logger.info(
        "bitcore: loaded demo data, %s users over %s days, %s saved segments, %s saved reports",
        summary.users,
        summary.days,
        len(summary.segments),
        len(summary.reports),
    )


def trust_proxies(app: Flask) -> None:
    """``BITCORE_PROXIES=N``: the app sits behind N reverse proxies, so the client's address,
    scheme and host come from their ``X-Forwarded-*`` headers (werkzeug's ``ProxyFix``). Rate
    limits and the localhost-only guard then see the real client, not the proxy. Wrapped last, so
    it runs first, the tracking endpoint included."""
    proxies = int(app.config.get("BITCORE_PROXIES") or 0)
    if proxies > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )
