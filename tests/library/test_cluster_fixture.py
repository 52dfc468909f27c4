"""The session's Redis Cluster is real: three primaries that split the slots and refuse a
command whose keys span slots, as any Redis Cluster does."""

from __future__ import annotations

import pytest
import redis
from cluster_support import LocalCluster
from redis.cluster import RedisCluster


def test_three_primaries_share_the_slots(
    redis_cluster: LocalCluster, cluster_client: RedisCluster
) -> None:
    primaries = cluster_client.get_primaries()
    assert len(primaries) == 3
    for node in redis_cluster.primaries:
        assert node.client().cluster("info")["cluster_state"] == "ok"
    slots = cluster_client.cluster_slots()
    assert sum(end - start + 1 for start, end in slots) == 16384


def test_keys_of_one_hash_tag_share_a_slot_and_others_are_crossslot(
    cluster_client: RedisCluster,
) -> None:
    cluster_client.setbit("{s1}a", 3, 1)
    cluster_client.setbit("{s1}b", 3, 1)
    node = cluster_client.get_node_from_key("{s1}a").redis_connection
    assert node.bitop("AND", "{s1}c", "{s1}a", "{s1}b") == 1
    with pytest.raises(redis.ResponseError, match="same slot"):
        node.bitop("AND", "{s1}c", "{s1}a", "{s2}b")
