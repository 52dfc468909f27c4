"""Oracles for drill-down tests: who reached each funnel step, by the definition, user by user."""

from __future__ import annotations


def reached_sets(did: list[list[set[int]]], window: int) -> list[set[int]]:
    """Who reached each step by the end of the window. ``did[k][p]``: users who did step ``k``
    in window period ``p``; only ``did[0][0]`` counts for step 1 (its start period alone)."""
    earliest = {user: 0 for user in did[0][0]}
    reached = [set(earliest)]
    for step in did[1:]:
        nxt = {}
        for user, since in earliest.items():
            for p in range(since, window):
                if user in step[p]:
                    nxt[user] = p
                    break
        earliest = nxt
        reached.append(set(earliest))
    return reached
