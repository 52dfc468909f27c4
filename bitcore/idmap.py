"""The id map: external user ids (strings, UUIDs, sparse 64-bit ints) to dense internal ones.

A bit at offset N makes Redis allocate N/8 bytes, so bitmaps want ids 0, 1, 2, ... With the map
on (``BitCore(..., id_mapping=True)``) the one writer hands every external id to ``IdMap.resolve``
first: an id seen before gets its internal id back, a new one the next free integer, in one
script call for the whole batch (atomic, as Redis runs scripts one at a time: two writers that see
a new id at once, on any host, get the same internal id). Reads map the other way at the edges
(``IdMap.externals``: members, bit-op results, segments), in pipelines of ``EXTERNALS_BATCH``.

The map costs little memory because it is made of many small hashes, which Redis keeps in its
compact listpack encoding while a hash has at most ``hash-max-listpack-entries`` (128) entries of
at most ``hash-max-listpack-value`` (64) bytes (bench/README.md, "The id map", has the numbers):

* forward, ``f:<bucket>``: bucket = CRC32 of the external id's token modulo the dataset's bucket
  count (fixed when the dataset starts, in its marker), field = the token, value = internal id;
* reverse, ``r:<internal >> 7>``: field = ``internal & 127``, value = the token. Internal ids are
  dense, so a reverse bucket holds exactly 128 entries.

The token of an external id is what Redis stores: an int (or a string that spells one, the same
user: ``validation.check_external_id``) as its decimal digits, which listpack stores as an 8-byte
integer; a lowercase UUID as ``\\x00`` and its 16 bytes; any other string as its UTF-8. A token
longer than ``MAX_FIELD_BYTES`` is a forward field of ``\\x01`` and a 20-byte BLAKE2b digest, so
the forward bucket stays compact (the reverse value keeps it whole).
"""

from __future__ import annotations

import hashlib
import uuid as uuid_module
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import redis

from bitcore import wire
from bitcore.keys import KeyLayout

#: Forward buckets of a new dataset: 65,536 keep about 4 million users in listpack-sized
#: buckets (64 on average, far from 128); past that buckets turn into plain hash tables, which
#: works but costs more memory. ``BitCore(id_map_buckets=...)`` sets it when a dataset starts.
DEFAULT_BUCKETS = 1 << 16
#: Internal ids per reverse bucket: 128, the listpack limit.
REVERSE_SHIFT = 7
#: Internal ids are bitmap offsets: below 2**32.
INTERNAL_LIMIT = 2**32
#: Longest token kept as a forward field as it is; a longer one is stored as a digest.
MAX_FIELD_BYTES = 40
#: Internal ids looked up per pipeline while mapping members back.
EXTERNALS_BATCH = 10_000
#: Ids per allocation script call: Redis runs each call in well under 100 ms.
RESOLVE_BATCH = 20_000
MAPPED = "mapped"

_UUID_TAG = b"\x00"
_DIGEST_TAG = b"\x01"
_HEX = frozenset("0123456789abcdef")


class IdMappingMismatch(RuntimeError):
    """A client whose ``id_mapping`` differs from the dataset's (mapped data read or written as
    plain ids, or the other way): refused, never mixed."""


def token_of(external: int | str) -> bytes:
    """What the map stores for a canonical external id (``validation.check_external_id``).

    >>> token_of(123), token_of("usr_8f3a"), len(token_of("0b5e36a2-1c3d-4e5f-8a9b-0c1d2e3f4a5b"))
    (b'123', b'usr_8f3a', 17)
    """
    if isinstance(external, int):
        return b"%d" % external
    if len(external) == 36 and external[8] == "-" and _is_lower_uuid(external):
        return _UUID_TAG + uuid_module.UUID(external).bytes
    return external.encode("utf-8")


def _is_lower_uuid(text: str) -> bool:
    """Whether ``text`` is a UUID as ``str(uuid.UUID(...))`` prints it (lowercase, dashed), the
    only spelling packed into 16 bytes: any other is an id of its own, kept as it is."""
    parts = text.split("-")
    return [len(p) for p in parts] == [8, 4, 4, 4, 12] and _HEX.issuperset("".join(parts))


def external_of(token: bytes) -> int | str:
    """The external id a stored token stands for (``token_of`` undone).

    >>> external_of(b"123"), external_of(b"0123"), external_of(token_of("a-b"))
    (123, '0123', 'a-b')
    """
    if token[:1] == _UUID_TAG and len(token) == 17:
        return str(uuid_module.UUID(bytes=token[1:]))
    if token.isdigit() and len(token) <= 19 and (token[0] != 48 or len(token) == 1):
        value = int(token)
        if value < 2**63:
            return value
    return token.decode("utf-8")


def field_of(token: bytes) -> bytes:
    """The token as a forward field: itself, or a digest when longer than ``MAX_FIELD_BYTES``."""
    if len(token) <= MAX_FIELD_BYTES:
        return token
    return _DIGEST_TAG + hashlib.blake2b(token, digest_size=20).digest()


def marker_value(buckets: int) -> str:
    """The marker of a mapped dataset, which records its bucket count: ``mapped:65536``."""
    return f"{MAPPED}:{buckets}"


def buckets_of_marker(marker: str) -> int | None:
    """The bucket count in a mapped dataset's marker; ``None`` for anything else."""
    kind, _, count = marker.partition(":")
    return int(count) if kind == MAPPED and count.isdigit() and int(count) > 0 else None


#: KEYS[1]: the marker; KEYS[2]: the counter of internal ids; KEYS[3..]: forward buckets.
#: ARGV[1]: the marker's expected value; ARGV[2]: '1' to allocate new ids, '0' to look up only;
#: ARGV[3]: the reverse buckets' key prefix; ARGV[4]: the limit of internal ids; then per id its
#: forward bucket's index in KEYS, its field, and its reverse value ('' when it is the field).
#: Returns the internal ids in order, -1 for an unknown id when looking up only.
RESOLVE_LUA = """
local call, floor = redis.call, math.floor
local marker = call('GET', KEYS[1])
if marker ~= ARGV[1] then
  return redis.error_reply('IDMAP this dataset is not id-mapped as expected (marker ' ..
    tostring(marker) .. ', expected ' .. ARGV[1] .. ')')
end
local create, reverse, limit = ARGV[2] == '1', ARGV[3], tonumber(ARGV[4])
if create and tonumber(call('GET', KEYS[2]) or '0') + (#ARGV - 4) / 3 > limit then
  return redis.error_reply('IDMAP full: every internal id below ' .. ARGV[4] .. ' is taken')
end
local out = {}
for i = 5, #ARGV, 3 do
  local key, field = KEYS[tonumber(ARGV[i])], ARGV[i + 1]
  local found = call('HGET', key, field)
  if found then
    out[#out + 1] = tonumber(found)
  elseif create then
    local n = call('INCR', KEYS[2]) - 1
    call('HSET', key, field, n)
    local value = ARGV[i + 2]
    if value == '' then
      value = field
    end
    call('HSET', reverse .. floor(n / 128), n % 128, value)
    out[#out + 1] = n
  else
    out[#out + 1] = -1
  end
end
return out
"""

#: KEYS[1]: the marker; KEYS[2]: the universe; KEYS[3]: the registry of event names. ARGV[1]:
#: the marker of a mapped dataset. Sets it unless the dataset already holds plain data; returns
#: the marker found or set, nil when plain data is there.
CLAIM_LUA = """
local marker = redis.call('GET', KEYS[1])
if marker then
  return marker
end
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('ZCARD', KEYS[3]) > 0 then
  return false
end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""

#: KEYS[1]: the id's forward bucket. ARGV[1]: its field; ARGV[2]: the reverse key prefix.
#: Deletes both directions; returns the internal id it had, or nil.
FORGET_LUA = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if not found then
  return false
end
local n = tonumber(found)
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', ARGV[2] .. math.floor(n / 128), n % 128)
return n
"""
_RESOLVE_SHA = hashlib.sha1(RESOLVE_LUA.encode()).hexdigest()


class IdMap:
    """One dataset's id map (``KeyLayout.id_map_key``), with ``buckets`` forward buckets."""

    def __init__(self, redis_client: redis.Redis, keys: KeyLayout, buckets: int) -> None:
        self.redis = redis_client
        self.keys = keys
        self.buckets = buckets
        self.marker = marker_value(buckets)
        self._reverse_prefix = keys.id_map_bucket_prefix("r")
        self._forward_prefix = keys.id_map_bucket_prefix("f")
        self._claim = redis_client.register_script(CLAIM_LUA)
        self._forget = redis_client.register_script(FORGET_LUA)

    def _forward_key(self, token: bytes) -> str:
        """The forward bucket of a token (``KeyLayout.id_map_bucket_key("f", ...)``)."""
        return f"{self._forward_prefix}{zlib.crc32(token) % self.buckets}"

    def resolve(self, tokens: Sequence[bytes], create: bool) -> list[int]:
        """The internal id of each token, in order (-1: unknown, when not ``create``); new ones
        allocated when ``create``. One script call per ``RESOLVE_BATCH`` tokens."""
        found: list[int] = []
        for start in range(0, len(tokens), RESOLVE_BATCH):
            found.extend(self._resolve(tokens[start : start + RESOLVE_BATCH], create))
        return found

    def _resolve(self, tokens: Sequence[bytes], create: bool) -> list[int]:
        index_of: dict[int, int] = {}
        args: list[bytes] = []
        for token in tokens:
            bucket = zlib.crc32(token) % self.buckets
            index = index_of.get(bucket)
            if index is None:
                index = index_of[bucket] = len(index_of) + 3
            field = token if len(token) <= MAX_FIELD_BYTES else field_of(token)
            args.extend((b"%d" % index, field, b"" if field is token else token))
        prefix = self._forward_prefix
        keys = [f"{prefix}{bucket}" for bucket in index_of]
        head = [
            self.keys.id_map_marker_key(),
            self.keys.id_map_counter_key(),
            *keys,
            self.marker,
            b"1" if create else b"0",
            self._reverse_prefix,
            INTERNAL_LIMIT,
        ]
        body = [wire.bulk_strings(head), wire.bulk_strings(args)]
        parts = 3 + len(head) + len(args)
        numkeys = 2 + len(keys)
        try:
            command = wire.command(parts, ("EVALSHA", _RESOLVE_SHA, numkeys), body)
            [reply] = wire.round_trip(self.redis, [command])
        except redis.exceptions.NoScriptError:  # first use on this server: EVAL loads it
            command = wire.command(parts, ("EVAL", RESOLVE_LUA, numkeys), body)
            [reply] = wire.round_trip(self.redis, [command])
        return [int(n) for n in reply]

    def lookup(self, tokens: Sequence[bytes]) -> list[int | None]:
        """The internal id of each token, ``None`` if unknown, without allocating: plain
        ``HGET``s in one pipeline (a read, so a read replica can answer it)."""
        with self.redis.pipeline(transaction=False) as pipe:
            for token in tokens:
                pipe.hget(self._forward_key(token), field_of(token))
            replies = pipe.execute()
        return [None if reply is None else int(reply) for reply in replies]

    def externals(self, internals: Iterable[int]) -> Iterator[int | str]:
        """The external id of each internal id, in order, looked up ``EXTERNALS_BATCH`` at a
        time (one pipeline of ``HMGET`` per reverse bucket). An internal id with no mapping (a
        user being forgotten, a bit set outside bitcore) is skipped."""
        batch: list[int] = []
        for internal in internals:
            batch.append(internal)
            if len(batch) >= EXTERNALS_BATCH:
                yield from self._externals(batch)
                batch = []
        if batch:
            yield from self._externals(batch)

    def _externals(self, internals: list[int]) -> Iterator[int | str]:
        groups: dict[int, list[int]] = {}
        for internal in internals:
            groups.setdefault(internal >> REVERSE_SHIFT, []).append(internal & 127)
        with self.redis.pipeline(transaction=False) as pipe:
            for bucket, fields in groups.items():
                pipe.hmget(f"{self._reverse_prefix}{bucket}", fields)
            replies = pipe.execute()
        tokens: dict[int, bytes | None] = {}
        for (bucket, fields), values in zip(groups.items(), replies, strict=True):
            base = bucket << REVERSE_SHIFT
            for field, value in zip(fields, values, strict=True):
                tokens[base + field] = value
        for internal in internals:
            token = tokens[internal]
            if token is not None:
                yield external_of(token)

    def forget(self, token: bytes) -> int | None:
        """Remove one id's mapping, both directions, atomically; the internal id it had."""
        bucket_key = self._forward_key(token)
        found = self._forget(keys=[bucket_key], args=[field_of(token), self._reverse_prefix])
        return None if found is None else int(found)

    def claim(self, universe_key: str, registry_key: str) -> str | None:
        """Mark the dataset as mapped unless it holds plain data; the marker found or set
        (``None``: plain data is there)."""
        keys = [self.keys.id_map_marker_key(), universe_key, registry_key]
        found: Any = self._claim(keys=keys, args=[self.marker])
        return None if found is None else found.decode() if isinstance(found, bytes) else found
