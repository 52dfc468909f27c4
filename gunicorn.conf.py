"""gunicorn settings, read automatically by ``gunicorn wsgi:app`` run from this directory.

``preload_app``: the app is made once in gunicorn's master before the workers fork. With no
``REDIS_URL`` that is where the embedded Redis starts, so every worker shares that one server, a
worker that exits or is recycled cannot stop it, and the master stops it (saving its data) when
gunicorn exits. Without a ``SECRET_KEY`` the app refuses to load, so gunicorn does not start.
"""

import os

from dashboard.store import MASTER_PID_VARIABLE

bind = os.environ.get("BITCORE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads: a worker answers another request while one waits on Redis, and keeps connections
# alive (sync workers close each one), which is what beacons from a busy page need. Measured in
# bench/beacons.py, which runs this same setup.
worker_class = "gthread"
threads = int(os.environ.get("BITCORE_THREADS", "2"))
keepalive = 5
preload_app = True
# This file is read by gunicorn's master only: mark it as the one process that may stop the
# embedded Redis.
os.environ[MASTER_PID_VARIABLE] = str(os.getpid())
