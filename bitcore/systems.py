"""Named Redis systems, as bitmapist has them: the module-level compatibility API's only state.

``SYSTEMS`` maps a name to a redis-py client (``setup_redis`` adds one). ``"default"`` is made on
first use from ``REDIS_URL``, else an embedded Redis under ``BITCORE_DATA_DIR`` (``instance/``), so
the library never silently writes to whatever happens to listen on localhost:6379 (bitmapist's
default). bitmapist code that calls ``setup_redis("default", host, port)`` first is unaffected.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import redis

from bitcore.bitmaps import Bitmap
from bitcore.client import BitCore
from bitcore.connection import connect
from bitcore.embedded import default_redis

_lock = threading.Lock()
_clients_by_name: dict[str, tuple[Any, BitCore]] = {}
#: Every client made for a redis client or pipeline, for ``known_clients``. Each is kept alive by an
#: attribute on its redis object (a cycle the garbage collector frees with it), not by this set: a
#: ``WeakKeyDictionary`` would keep every pipeline ever passed as ``system=`` alive, since its
#: value (the ``BitCore``) refers to its key.
_clients_by_redis: weakref.WeakSet[BitCore] = weakref.WeakSet()
#: Systems set up with ``id_mapping=True``: their clients map external ids.
_mapped_systems: set[str] = set()
_CLIENT_ATTRIBUTE = "_bitcore_client"


class _Systems(dict[str, Any]):
    """bitmapist's ``SYSTEMS`` dict, whose ``"default"`` entry is created lazily."""

    def __missing__(self, name: str) -> Any:
        if name != "default":
            raise KeyError(
                f"no Redis system named {name!r}: call setup_redis({name!r}, host, port) first"
            )
        with _lock:
            if name not in self:
                super().__setitem__(name, default_redis())
        return super().__getitem__(name)


SYSTEMS: _Systems = _Systems()


def setup_redis(name: str, host: str, port: int, **kw: Any) -> None:
    """Register a Redis system under ``name`` (bitmapist's signature; ``redis_client=`` picks the
    client class). ``id_mapping=True`` (a bitcore addition) makes its client map external ids
    (strings, 64-bit ints: ``BitCore(id_mapping=True)``).

    The client is made by ``connection.connect``, as every bitcore client is: 5 s timeouts, a
    health check, two quick retries and the circuit breaker (keywords given win), so a dead server
    raises ``redis.ConnectionError`` at once instead of hanging (bitmapist leaves redis-py's
    defaults: no timeout at all in older redis-py versions).
    """
    redis_client = kw.pop("redis_client", redis.Redis)
    id_mapping = bool(kw.pop("id_mapping", False))
    SYSTEMS[name] = connect(host=host, port=port, redis_class=redis_client, **kw)
    if id_mapping:
        _mapped_systems.add(name)
    else:
        _mapped_systems.discard(name)


def get_redis(system: Any = "default") -> Any:
    """The redis-py client for ``system``: a name, a client or pipeline (returned as is), or a
    ``BitCore``."""
    if isinstance(system, BitCore):
        return system.redis
    if isinstance(system, redis.Redis):
        return system
    return SYSTEMS[system]


def client_for(system: Any = "default") -> BitCore:
    """The ``BitCore`` behind ``system``, made once per name or per redis client and then reused."""
    if isinstance(system, BitCore):
        return system
    if isinstance(system, str):
        conn = SYSTEMS[system]
        cached = _clients_by_name.get(system)
        mapped = system in _mapped_systems
        if cached is None or cached[0] is not conn or cached[1].id_mapping != mapped:
            cached = (conn, BitCore(conn, id_mapping=mapped))
            _clients_by_name[system] = cached
        return cached[1]
    if isinstance(system, redis.Redis):
        client: BitCore | None = getattr(system, _CLIENT_ATTRIBUTE, None)
        if client is None:
            client = BitCore(system)
            setattr(system, _CLIENT_ATTRIBUTE, client)
            _clients_by_redis.add(client)
        return client
    raise TypeError(f"system must be a name, a redis client or a BitCore, got {system!r}")


#: The unbound classes (``bitcore.MonthEvents(..., system="stats")``) find systems here.
Bitmap.system_resolver = client_for


def known_clients() -> list[BitCore]:
    """Every client the facade has made: ``delete_runtime_bitop_keys`` asks each of them."""
    return [client for _, client in _clients_by_name.values()] + list(_clients_by_redis)
