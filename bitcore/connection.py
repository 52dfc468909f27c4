"""Connection plumbing: every redis-py client bitcore makes comes from :func:`connect`.

It sets what a client needs so a dead or hung Redis never hangs a caller: socket timeouts, a
health check on idle connections, a bounded retry policy (:func:`bounded_retry`) and a circuit
breaker (``bitcore.breaker``). Nothing here knows about events, clients or systems: the layers
above (``embedded``, ``client``, the facade) import it, never the other way round.

>>> r = connect("redis://127.0.0.1:6399/0")  # doctest: +SKIP
>>> r.ping()  # doctest: +SKIP
True
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import NodesManager, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from bitcore import breaker

#: Seconds a client waits on Redis before raising ``ConnectionError``/``TimeoutError``: no hang.
DEFAULT_SOCKET_TIMEOUT = 5.0
#: Seconds every command is refused at once after Redis failed or timed out (``bitcore.breaker``).
DEFAULT_BREAKER_SECONDS = 1.0
#: Seconds a connection may sit idle before its next command checks it with a PING first.
HEALTH_CHECK_INTERVAL = 30

R = TypeVar("R")


class _NoRetryWhenOpen(Retry):
    """redis-py's ``Retry``, except that a refusal by the breaker is raised at once: retrying it
    would only sleep (on a beacon's event loop, too) to be refused again."""

    def call_with_retry(
        self,
        do: Callable[[], R],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> R:
        def retryable(error: Exception) -> bool:
            if isinstance(error, breaker.BreakerOpen):
                return False
            return is_retryable is None or is_retryable(error)

        return super().call_with_retry(do, fail, retryable, with_failure_count)


def bounded_retry() -> Retry:
    """Two quick retries on a dropped connection (a restarted server, an idle socket cut), none on
    a timeout, none when the breaker refuses.

    redis-py's own default retries ten times with backoff, so a stopped server takes seconds to
    report and an unresponsive one ten socket timeouts; with this a dead server raises
    ``redis.ConnectionError`` in well under a second and a hung one after one ``socket_timeout``.
    """
    return _NoRetryWhenOpen(ExponentialBackoff(cap=0.1, base=0.01), 2, (redis.ConnectionError,))


def connect(
    url: str | None = None,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    breaker_seconds: float = DEFAULT_BREAKER_SECONDS,
    *,
    redis_class: type[redis.Redis] = redis.Redis,
    **kwargs: Any,
) -> redis.Redis:
    """A redis-py client for ``url`` (or, without one, for ``host=``/``port=``/... given as
    keywords) with timeouts, a health check, a bounded retry policy and a circuit breaker
    (``bitcore.breaker``; ``breaker_seconds=0`` turns it off), so a dead or hung server raises
    ``redis.ConnectionError`` instead of hanging, and after one failure at once for
    ``breaker_seconds``. Keywords given win over these defaults; ``redis_class`` is the client
    class to make (a subclass of ``redis.Redis``)."""
    kwargs.setdefault("socket_connect_timeout", socket_timeout)
    kwargs.setdefault("health_check_interval", HEALTH_CHECK_INTERVAL)
    kwargs.setdefault("retry", bounded_retry())
    kwargs.setdefault("socket_timeout", socket_timeout)
    client = redis_class(**kwargs) if url is None else redis_class.from_url(url, **kwargs)
    breaker.guard(client.connection_pool, breaker_seconds)
    return client


#: Set to ``1`` (with ``REDIS_URL`` naming any node) to run on a Redis Cluster: the client is a
#: ``redis.cluster.RedisCluster`` and bitcore uses the sharded key layout.
CLUSTER_ENVIRONMENT = "BITCORE_REDIS_CLUSTER"


def cluster_wanted() -> bool:
    """Whether ``BITCORE_REDIS_CLUSTER`` asks for a Redis Cluster (``1``, ``true``, ``yes``)."""
    return os.environ.get(CLUSTER_ENVIRONMENT, "").strip().lower() in ("1", "true", "yes")


class ClusterUnreachable(redis.ConnectionError):
    """No node of the Redis Cluster answered (redis-py says ``RedisClusterException``, which is
    not a ``redis.RedisError``): a ``ConnectionError``, so it is answered as Redis being down
    is (503 with ``Retry-After``), never a 500."""


class _Nodes(NodesManager):
    """redis-py's map of the cluster's nodes, its "no node reachable" a ``ClusterUnreachable``."""

    def initialize(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().initialize(*args, **kwargs)
        except RedisClusterException as error:
            raise ClusterUnreachable(str(error)) from error


class Cluster(RedisCluster):
    """``RedisCluster`` whose failure to reach any node is a ``ClusterUnreachable``: the slots
    are learned again (``NodesManager.initialize``) after every failed round trip, from inside
    redis-py and from bitcore's own (``shards.Router``), and a dead cluster must read as Redis
    being down wherever that happens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(*args, **kwargs)
        except RedisClusterException as error:  # no node answered while it learned the slots
            raise ClusterUnreachable(str(error)) from error
        self.nodes_manager.__class__ = _Nodes


def connect_cluster(
    url: str,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    breaker_seconds: float = DEFAULT_BREAKER_SECONDS,
) -> RedisCluster:
    """A redis-py Redis Cluster client found from the node at ``url`` (it learns the others),
    with the same socket timeouts as ``connect``'s, a bounded retry, and a circuit breaker per
    node (``bitcore.breaker.per_node_class``; ``breaker_seconds=0`` turns it off): a dead or
    hung node is refused at once for ``breaker_seconds`` after it failed, so a dead cluster
    answers ``redis.ConnectionError`` (``ClusterUnreachable`` when no node answers) quickly
    instead of a socket timeout per node and per retry."""
    return Cluster.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=bounded_retry(),
        connection_class=breaker.per_node_class(
            redis.Connection, breaker_seconds, probe_seconds=socket_timeout + 1.0
        ),
    )


def connect_url(
    url: str,
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
    breaker_seconds: float = DEFAULT_BREAKER_SECONDS,
) -> redis.Redis | RedisCluster:
    """``connect_cluster`` when ``cluster_wanted()``, else ``connect``."""
    if cluster_wanted():
        return connect_cluster(url, socket_timeout, breaker_seconds)
    return connect(url, socket_timeout, breaker_seconds)
