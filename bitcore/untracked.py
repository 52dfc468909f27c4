"""What a segment expression names that holds no data yet: warnings, never refusals.

A segment may name an event before anyone tracks it (``active AND NOT churned`` saved on the day
``churned`` ships), so saving it is allowed; but a typo would silently give 0 or everyone, so the
dashboard says so when it previews and saves. Checked against the registries of names
(:mod:`bitcore.event_names`): one round trip, and one more (per node on the sharded layout) when
the expression names flags (``unique(name)``), to see whether their keys exist.

>>> expression_warnings(b, parse_expression("active AND NOT churned"))  # doctest: +SKIP
["No event named 'churned' has been tracked yet: it stands for nobody until it is."]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bitcore import event_names
from bitcore.segments.parser import Node, leaves, quote_name

if TYPE_CHECKING:
    from bitcore.client import BitCore


def expression_warnings(client: BitCore, tree: Node) -> list[str]:
    """Sentences about the names in ``tree`` that were never tracked, or tracked the other way
    (a flag used as a dated event counts nobody; write ``unique(name)``), sorted by name."""
    events, uniques = leaves(tree)
    names = sorted(events | uniques)
    if not names:
        return []
    event_names.ensure(client)
    registry, flags = client.keys.event_names_key(), client.keys.flag_names_key()
    with client.redis.pipeline(transaction=False) as pipe:
        pipe.zmscore(registry, names)
        pipe.zmscore(flags, names)
        dated, flagged = pipe.execute()
    asked = sorted(uniques)  # a flag's key exists in some shard: no round trip when none is named
    exists = client.keys_present([client.keys.unique_key(name) for name in asked])
    present = dict(zip(asked, exists, strict=True))
    warnings = []
    for name, is_dated, is_flag in zip(names, dated, flagged, strict=True):
        has_unique = present.get(name, False)
        if name in events and is_dated is None:
            if is_flag is not None:
                warnings.append(
                    f"{name!r} is a flag (a dateless event): as {quote_name(name)} it counts "
                    f"nobody; write unique({quote_name(name)})."
                )
            else:
                warnings.append(
                    f"No event named {name!r} has been tracked yet: "
                    "it stands for nobody until it is."
                )
        if name in uniques and not has_unique:
            warnings.append(
                f"No user carries the flag {name!r} (unique({quote_name(name)})) yet: "
                "it stands for nobody until one does."
            )
    return warnings
