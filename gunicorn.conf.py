"""gunicorn settings, read automatically by ``gunicorn wsgi:app`` run from this directory.

``preload_app``: the app is made once in gunicorn's master before the workers fork. With no
``REDIS_URL`` that is where the embedded Redis starts, so every worker shares that one server, a
worker that exits or is recycled cannot stop it, and the master stops it (saving its data) when
gunicorn exits. Without a ``SECRET_KEY`` the app refuses to load, so gunicorn does not start.
"""

import os

from dashboard.serving import refuse_taken_addresses
from dashboard.store import MASTER_PID_VARIABLE

bind = os.environ.get("BITCORE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# An asyncio worker: connections on its event loop, beacons answered on the loop (their Redis
# round trip awaited, bitcore/aio.py), other requests in a pool of ``threads`` threads, and
# connections kept alive (see dashboard/serving.py for why; measured in bench/beacons.py, which
# runs this same setup, against gthread).
worker_class = "dashboard.serving.Worker"
threads = int(os.environ.get("BITCORE_THREADS", "4"))
# Each worker listens on its own socket and the kernel spreads new connections between them: an
# asyncio worker accepts every waiting connection when it wakes, so with one shared socket the
# first keep-alive clients could all land on one worker and leave the other idle.
reuse_port = True
# ... which would let a second gunicorn on the same address take a share of the connections
# without a word: refuse to start when the address is taken.
on_starting = refuse_taken_addresses
keepalive = 5
# A worker whose event loop does not tick for ``timeout`` seconds is killed with the requests it
# holds. Nothing blocks the loop on Redis (a beacon awaits its reply at most
# BITCORE_REDIS_TIMEOUT, 3 s, and the breaker, bitcore/breaker.py, then refuses at once).
timeout = int(os.environ.get("BITCORE_WORKER_TIMEOUT", "30"))
preload_app = True
# This file is read by gunicorn's master only: mark it as the one process that may stop the
# embedded Redis.
os.environ[MASTER_PID_VARIABLE] = str(os.getpid())
