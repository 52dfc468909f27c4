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

That is the flat layout's map, kept exactly so for its datasets. On the sharded layout (and Redis
Cluster, where one script over many keys would span slots) the same buckets and scripts are split
into map groups, each in a hash slot of its own: ``bitcore.idmap_groups``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import uuid as uuid_module
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import numpy as np
import redis

from bitcore import wire
from bitcore.bulk import Quota, WriteRefused
from bitcore.keys import QUOTA_PLACEHOLDER_KEY, KeyLayout
from bitcore.validation import MAX_EXTERNAL_INT, check_external_id

#: Forward buckets of a new dataset. 32,768 keep 1 to 3 million users in listpack-sized buckets
#: (30 to 90 on average, under 128); far past that buckets turn into plain hash tables one by
#: one (it works, but costs about three times the memory), far below it each bucket's own cost
#: is shared by few users. ``BitCore(id_map_buckets=...)`` sets it when a dataset starts: about
#: the number of users expected, divided by 64.
DEFAULT_BUCKETS = 1 << 15
#: Internal ids per reverse bucket: 128, the listpack limit.
REVERSE_SHIFT = 7
#: Internal ids are bitmap offsets: below 2**32.
INTERNAL_LIMIT = 2**32
#: Longest token kept as a forward field as it is; a longer one is stored as a digest.
MAX_FIELD_BYTES = 40
#: Internal ids looked up per pipeline while mapping members back.
EXTERNALS_BATCH = 10_000
#: Batches of at least this many ids are packed for the script by numpy; fewer (a single
#: mark's id) in plain Python, which costs less for them than numpy's set-up.
NUMPY_FROM = 64
#: Ids per allocation script call: Redis runs each call in well under 100 ms (and a bucket's
#: index among a call's, at most this many, fits the script's two bytes).
RESOLVE_BATCH = 20_000
MAPPED = "mapped"

_UUID_TAG = b"\x00"
_DIGEST_TAG = b"\x01"


class IdMappingMismatch(RuntimeError):
    """A client whose ``id_mapping`` differs from the dataset's (mapped data read or written as
    plain ids, or the other way): refused, never mixed."""


class IdMapFull(RuntimeError):
    """Every internal id (bitmap offset, below 2**32) is taken: nothing was allocated."""


def token_of(external: int | str) -> bytes:
    """What the map stores for a canonical external id (``validation.check_external_id``).

    A UUID is packed only as ``str(uuid.UUID(...))`` prints it (lowercase, dashed); any other
    spelling is an id of its own, kept as it is.

    >>> token_of(123), token_of("usr_8f3a"), len(token_of("0b5e36a2-1c3d-4e5f-8a9b-0c1d2e3f4a5b"))
    (b'123', b'usr_8f3a', 17)
    """
    if isinstance(external, int):
        return b"%d" % external
    return _uuid_token(external) or external.encode("utf-8")


def check_token(external: Any) -> bytes:
    """``token_of(check_external_id(external))``, the common cases first: a mark's id as the map
    stores it, checked (a bad one raises before anything is written)."""
    kind = type(external)
    if kind is str and (token := _uuid_token(external)):
        return token
    if kind is int and 0 <= external <= MAX_EXTERNAL_INT:
        return b"%d" % external
    return token_of(check_external_id(external))


def _uuid_token(external: str) -> bytes | None:
    """The token of a UUID in its lowercase, dashed spelling; ``None`` for any other string.

    Checked without a regular expression (which was most of a mark's planning time): dashes in
    their four places, and the 32 other characters exactly what ``bytes.hex`` spells for the
    bytes ``bytes.fromhex`` reads from them (so no capitals, no whitespace it would skip).

    >>> _uuid_token("0b5e36a2-1c3d-4e5f-8a9b-0c1d2e3f4a5b")[:3]
    b'\\x00\\x0b^'
    >>> _uuid_token("0B5E36A2-1C3D-4E5F-8A9B-0C1D2E3F4A5B") is None
    True
    """
    if len(external) != 36 or external[8:24:5] != "----":
        return None
    digits = external.replace("-", "")
    if len(digits) != 32:
        return None
    try:
        packed = bytes.fromhex(digits)
    except ValueError:
        return None
    return _UUID_TAG + packed if packed.hex() == digits else None


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


def _packed_with_digests(tokens: Sequence[bytes]) -> tuple[bytes, bytes, list[bytes]]:
    """``RESOLVE_LUA``'s fields and sizes when some tokens are longer than a field may be: their
    digests as fields (size + 128) and the whole tokens, in order, for the reverse values."""
    fields, sizes, wholes = [], [], []
    for token in tokens:
        field = field_of(token)
        fields.append(field)
        sizes.append(len(field) + (128 if field is not token else 0))
        if field is not token:
            wholes.append(token)
    return b"".join(fields), bytes(sizes), wholes


def _numbered_keys(prefix: bytes, numbers: Any) -> bytes:
    """``prefix`` followed by each of ``numbers`` (a sorted numpy array) in decimal, as RESP bulk
    strings: built as rows of bytes, one block per count of digits.

    >>> _numbered_keys(b"f:", np.array([7, 12]))
    b'$3\\r\\nf:7\\r\\n$4\\r\\nf:12\\r\\n'
    """
    blocks = []
    for digits in range(1, 21):
        low, high = np.searchsorted(numbers, [10 ** (digits - 1) if digits > 1 else 0, 10**digits])
        group = numbers[low:high]
        if len(group):
            head = b"$%d\r\n%s" % (len(prefix) + digits, prefix)
            rows = np.empty((len(group), len(head) + digits + 2), dtype=np.uint8)
            rows[:, : len(head)] = np.frombuffer(head, dtype=np.uint8)
            for place in range(digits):
                rows[:, len(head) + place] = group // 10 ** (digits - 1 - place) % 10 + 48
            rows[:, -2:] = (13, 10)
            blocks.append(rows.tobytes())
        if high == len(numbers):
            break
    return b"".join(blocks)


def marker_value(buckets: int) -> str:
    """The marker of a mapped dataset, which records its bucket count: ``mapped:65536``."""
    return f"{MAPPED}:{buckets}"


def buckets_of_marker(marker: str) -> int | None:
    """The bucket count in a mapped dataset's marker; ``None`` for anything else."""
    kind, _, count = marker.partition(":")
    return int(count) if kind == MAPPED and count.isdigit() and int(count) > 0 else None


#: KEYS[1]: the marker; KEYS[2]: the counter of internal ids; KEYS[3]: the epoch (see
#: ``IdMap``); KEYS[4]: the new-ids quota's counter (untouched when unused); KEYS[5..]: the
#: batch's forward buckets, each once. ARGV[1]: the marker's expected value; ARGV[2]: '1' to
#: allocate new ids, '0' to look up only; ARGV[3]: the reverse buckets' key prefix; ARGV[4]: the
#: limit of internal ids; ARGV[5]: how many ids; ARGV[6], ARGV[7]: the new-ids quota's limit (0:
#: none) and TTL; ARGV[8]: every id's forward field, one after the other; ARGV[9]: a byte per id,
#: its field's length, plus 128 for a digest field (whose whole token follows in ARGV[11..], in
#: order, for the reverse value); ARGV[10]: two bytes per id (little-endian), the index of its
#: bucket among KEYS[5..]; ARGV[11], ARGV[12]: the stride and offset of the ids the counter
#: numbers (the counter's n-th id is ``n * stride + offset``, its reverse entry at ``n``: 1 and
#: 0 on the flat layout, where the n-th id is n; a map group's on the sharded layout,
#: ``bitcore.idmap_groups``).
#: Returns the epoch, then the internal ids in the order sent as one string of decimal numbers
#: separated by spaces (-1: unknown, when looking up only).
#:
#: Packed so: as one argument per field and a reply of one integer per id, Redis spent more of a
#: 10,000-id call making and unmaking arguments and replies than looking the ids up
#: (bench/README.md, "mark_many of 10,000 marks"). ``string.byte`` hands out the sizes and bucket
#: indexes 2,000 ids at a time (Lua 5.1 caps a call's results at 8,000).
RESOLVE_LUA = """
local call, byte, sub, floor, min = redis.call, string.byte, string.sub, math.floor, math.min
local marker = call('GET', KEYS[1])
if marker ~= ARGV[1] then
  return redis.error_reply('IDMAP this dataset is not id-mapped as expected (marker ' ..
    tostring(marker) .. ', expected ' .. ARGV[1] .. ')')
end
local create, reverse, limit = ARGV[2] == '1', ARGV[3], tonumber(ARGV[4])
local count, fields, sizes, places = tonumber(ARGV[5]), ARGV[8], ARGV[9], ARGV[10]
local stride, offset = tonumber(ARGV[11]), tonumber(ARGV[12])
local out, pos, whole, n = {}, 1, 13, 0
local new_keys, new_fields, new_at, new_values, fresh = {}, {}, {}, {}, 0
for first = 1, count, 2000 do
  local last = min(first + 1999, count)
  local size_of = {byte(sizes, first, last)}
  local place_of = {byte(places, 2 * first - 1, 2 * last)}
  for j = 1, last - first + 1 do
    local size, value = size_of[j], nil
    if size >= 128 then
      size, value, whole = size - 128, ARGV[whole], whole + 1
    end
    local field = sub(fields, pos, pos + size - 1)
    pos, n = pos + size, n + 1
    local key = KEYS[5 + place_of[2 * j - 1] + 256 * place_of[2 * j]]
    local found = call('HGET', key, field)
    if found then
      out[n] = found
    else
      out[n] = '-1'
      if create then
        fresh = fresh + 1
        new_keys[fresh], new_fields[fresh], new_at[fresh] = key, field, n
        new_values[fresh] = value or field
      end
    end
  end
end
local epoch = call('GET', KEYS[3]) or ''
if fresh == 0 then
  return {epoch, table.concat(out, ' ')}
end
local quota = tonumber(ARGV[6])
if quota > 0 then
  local used = tonumber(call('GET', KEYS[4]) or '0') + fresh
  if used > quota then
    return redis.error_reply('IDMAP quota ' .. used .. ' ' .. quota)
  end
  if call('INCRBY', KEYS[4], fresh) == fresh then
    call('EXPIRE', KEYS[4], ARGV[7])
  end
end
local first = call('INCRBY', KEYS[2], fresh) - fresh
if first + fresh > limit then
  call('DECRBY', KEYS[2], fresh)
  return redis.error_reply('IDMAP full: every internal id below ' .. ARGV[4] .. ' is taken')
end
local pairs_of, slot_names = {}, {}
for j = 1, fresh do
  local place = first + j - 1
  local name = tostring(place * stride + offset)
  call('HSET', new_keys[j], new_fields[j], name)
  out[new_at[j]] = name
  local bucket, slot = floor(place / 128), place % 128
  local slot_name = slot_names[slot]
  if not slot_name then
    slot_name = tostring(slot)
    slot_names[slot] = slot_name
  end
  local group = pairs_of[bucket]
  if not group then
    group = {}
    pairs_of[bucket] = group
  end
  group[#group + 1] = slot_name
  group[#group + 1] = new_values[j]
end
for bucket, group in pairs(pairs_of) do
  call('HSET', reverse .. bucket, unpack(group))
end
return {epoch, table.concat(out, ' ')}
"""

#: KEYS[1]: the marker; KEYS[2]: the universe; KEYS[3]: the registry of event names; KEYS[4]:
#: the epoch. ARGV[1]: the marker of a mapped dataset; ARGV[2]: a first epoch. Sets both unless
#: the dataset already holds plain data; returns the marker found or set, nil when plain data
#: is there.
CLAIM_LUA = """
local marker = redis.call('GET', KEYS[1])
if marker then
  return marker
end
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('ZCARD', KEYS[3]) > 0 then
  return false
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[4], ARGV[2])
return ARGV[1]
"""

#: KEYS[1]: the id's forward bucket; KEYS[2] (if given): the epoch. ARGV[1]: its field; ARGV[2]:
#: the reverse key prefix; ARGV[3]: a new epoch; ARGV[4], ARGV[5]: the stride and offset of the
#: ids of the counter (``RESOLVE_LUA``; 1 and 0 if not given). Deletes both directions and renews
#: the epoch; returns the internal id it had, or nil.
FORGET_LUA = """
local found = redis.call('HGET', KEYS[1], ARGV[1])
if not found then
  return false
end
local n = tonumber(found)
local place = math.floor((n - tonumber(ARGV[5] or '0')) / tonumber(ARGV[4] or '1'))
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', ARGV[2] .. math.floor(place / 128), place % 128)
if KEYS[2] then
  redis.call('SET', KEYS[2], ARGV[3])
end
return n
"""
_RESOLVE_SHA = hashlib.sha1(RESOLVE_LUA.encode()).hexdigest()

#: A ``RESOLVE_LUA`` call as RESP: ``(EVALSHA command, EVAL command)``.
ScriptCall = tuple[bytes, bytes]


def places_of(
    tokens: Sequence[bytes], prefix: str, buckets: int, divisor: int = 1
) -> tuple[bytes, bytes, int]:
    """Each token's forward bucket (``crc32 // divisor % buckets``) as its index among the
    batch's buckets (two bytes, little-endian), those buckets' keys (``prefix`` and the number)
    as RESP, and how many there are. A big batch's by numpy (formatting 8,000 keys one by one
    cost more than the rest of the look-up). ``divisor``: a map group's share of the hash
    (``bitcore.idmap_groups``), 1 on the flat layout."""
    crc32, name = zlib.crc32, prefix.encode()
    if len(tokens) >= NUMPY_FROM:
        crcs = np.fromiter(map(crc32, tokens), dtype=np.uint64, count=len(tokens))
        distinct, places = np.unique(
            crcs // np.uint64(divisor) % np.uint64(buckets), return_inverse=True
        )
        keys = _numbered_keys(name, distinct)
        return places.astype("<u2").tobytes(), keys, len(distinct)
    of_token = [crc32(token) // divisor % buckets for token in tokens]
    index = {bucket: n for n, bucket in enumerate(dict.fromkeys(of_token))}
    places_bytes = struct.pack(f"<{len(of_token)}H", *map(index.__getitem__, of_token))
    names = [b"%s%d" % (name, bucket) for bucket in index]
    keys = b"".join([b"$%d\r\n%s\r\n" % (len(key), key) for key in names])
    return places_bytes, keys, len(names)


def resolve_call(
    tokens: Sequence[bytes],
    create: bool,
    head: list[str],
    places: tuple[bytes, bytes, int],
    marker: str,
    reverse_prefix: str,
    quota: Quota | None = None,
    limit: int | None = None,
    stride: int = 1,
    offset: int = 0,
) -> ScriptCall:
    """One ``RESOLVE_LUA`` call for distinct ``tokens``: ``head`` its first four keys, ``places``
    what ``places_of`` made of the tokens; their fields packed into one argument, a byte of size
    and two of bucket index each, built by C loops (``map``, ``bytes.join``) rather than one
    Python step per argument. ``limit``: how many ids the counter may number
    (``INTERNAL_LIMIT`` by default)."""
    indexes, keys, key_count = places
    wholes: list[bytes] = []
    if max(map(len, tokens), default=0) <= MAX_FIELD_BYTES:
        fields, sizes = b"".join(tokens), bytes(map(len, tokens))
    else:
        fields, sizes, wholes = _packed_with_digests(tokens)
    most = INTERNAL_LIMIT if limit is None else limit
    tail: list[Any] = [marker, b"1" if create else b"0", reverse_prefix, most, len(tokens)]
    tail += [quota.limit if quota else 0, quota.ttl if quota else 0]
    tail += [fields, sizes, indexes, stride, offset, *wholes]
    body = [wire.bulk_strings(head), keys, wire.bulk_strings(tail)]
    numkeys = len(head) + key_count
    parts = 3 + numkeys + len(tail)
    return (
        wire.command(parts, ("EVALSHA", _RESOLVE_SHA, numkeys), body),
        wire.command(parts, ("EVAL", RESOLVE_LUA, numkeys), body),
    )


def run_scripts(client: redis.Redis, calls: Sequence[ScriptCall]) -> list[Any]:
    """The replies of ``calls`` sent in one round trip to ``client`` (one Redis); once more as
    ``EVAL`` (which loads the script) if that Redis does not know it yet. Safe to repeat: an
    allocation found already made is looked up, not made again."""
    try:
        return wire.round_trip(client, [evalsha for evalsha, _ in calls])
    except redis.exceptions.NoScriptError:  # first use on this server: EVAL loads it
        return wire.round_trip(client, [evaluate for _, evaluate in calls])


@contextlib.contextmanager
def mapped_errors() -> Iterator[None]:
    """``RESOLVE_LUA``'s error replies as bitcore's errors: ``WriteRefused`` (over the new-ids
    quota), ``IdMapFull``, ``IdMappingMismatch``."""
    try:
        yield
    except redis.ResponseError as error:
        message = str(error)
        if message.startswith("IDMAP quota"):
            used, limit = message.split()[2:4]
            raise WriteRefused("new_ids_quota", int(used), int(limit)) from None
        if message.startswith("IDMAP full"):
            raise IdMapFull(message[len("IDMAP ") :]) from None
        if message.startswith("IDMAP"):
            raise IdMappingMismatch(message[len("IDMAP ") :]) from None
        raise


def ids_of_reply(internals: bytes) -> list[int]:
    """``RESOLVE_LUA``'s ids (decimal numbers separated by spaces), parsed in C, not by
    ``int()`` per id."""
    return cast(list[int], np.fromstring(internals, dtype=np.int64, sep=" ").tolist())


#: Mappings an ``IdMap`` remembers at most (about 150 bytes each); past it, it starts afresh.
DEFAULT_CACHE_SIZE = 100_000


def new_epoch() -> bytes:
    """A fresh random epoch (``IdMap``)."""
    return os.urandom(8).hex().encode()


class IdMap:
    """One dataset's id map (``KeyLayout.id_map_bucket_key`` and its neighbours), with
    ``buckets`` forward buckets.

    The writer's look-ups (``resolve_all``) remember what they found, up to ``cache_size``
    mappings: a known id costs nothing on the server. A mapping never changes once made (the
    counter only grows, so an internal id is never handed out twice) except that
    ``forget`` removes one; each removal sets the dataset's epoch (``id_map_epoch_key``) to a new
    random value, and a batch whose epoch differs from the remembered one starts afresh, so no
    process writes to a forgotten user's old internal id from memory: the writer hands the
    epoch its mappings hold under to the write, whose script checks it (``bulk.EpochChanged``).
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        keys: KeyLayout,
        buckets: int,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> None:
        self.redis = redis_client
        self.cache_size = cache_size
        self._cache: dict[bytes, int] = {}
        self._epoch: bytes | None = None
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
        found = self.resolve_all(tokens, create)
        return [found[token] for token in tokens]

    def resolve_all(
        self, tokens: Iterable[bytes], create: bool, quota: Quota | None = None
    ) -> dict[bytes, int]:
        """``{token: internal id}`` for distinct ``tokens`` (as ``resolve``): what the writer
        needs to rewrite a plan. Remembered mappings are used (and new ones remembered) when
        ``create``, once the epoch is seen unchanged. New ids count on ``quota`` (a
        ``bulk.Quota``); over it, ``bulk.WriteRefused`` and nothing is allocated."""
        return self._resolve_remembering(list(dict.fromkeys(tokens)), create, quota)[0]

    def _resolve_remembering(
        self, unique: list[bytes], create: bool, quota: Quota | None
    ) -> tuple[dict[bytes, int], bytes]:
        """``resolve_all`` of distinct tokens, and the epoch its answers hold under."""
        if not create or self.cache_size <= 0:
            epoch, answers = self._resolve_batches(unique, create, quota)
            return answers, epoch
        cache = self._cache
        known_epoch = self._epoch  # read before the cache: what its entries were made under
        found: dict[bytes, int] = {}
        missing: list[bytes] = [] if cache else unique  # a new writer remembers nothing
        for token in unique if cache else ():
            internal = cache.get(token)
            if internal is None:
                missing.append(token)
            else:
                found[token] = internal
        if missing:
            epoch, fresh = self._resolve_batches(missing, create, quota)
        else:
            epoch, fresh = cast(bytes, self.redis.get(self.keys.id_map_epoch_key()) or b""), {}
        if epoch != known_epoch:  # a user was forgotten (or first use): nothing remembered holds
            cache.clear()
            self._epoch = epoch
            if found:
                found = self._resolve_batches(list(found), create, quota)[1]
                fresh.update(found)
        if found:
            found.update(fresh)
        else:
            found = fresh  # no copy of a big batch's answer
        if self._epoch == epoch:  # else another thread saw a newer epoch: keep out of its cache
            if len(cache) + len(fresh) > self.cache_size:
                cache.clear()
            cache.update(fresh)
        return found, epoch

    def resolve_for_write(
        self, tokens: Iterable[bytes], quota: Quota | None = None
    ) -> tuple[dict[bytes, int], bytes]:
        """``resolve_all(tokens, create=True, quota)`` and the epoch its answers hold under, for
        the write to check (``bulk.set_bits_atomically(epoch=...)``), so no bit is written for a
        mapping removed meanwhile. When every token is remembered nothing is asked of Redis: one
        round trip for a known user's mark, as without the map."""
        unique = list(tokens if isinstance(tokens, set) else dict.fromkeys(tokens))
        epoch = self._epoch  # read before the cache, as in resolve_all
        if epoch is not None and self.cache_size > 0:
            cache, found = self._cache, {}
            for token in unique:
                internal = cache.get(token)
                if internal is None:
                    break
                found[token] = internal
            else:
                return found, epoch
        return self._resolve_remembering(unique, True, quota)

    def forget_remembered(self) -> None:
        """Drop every remembered mapping (a write found the epoch changed)."""
        self._cache.clear()
        self._epoch = None

    def _resolve_batches(
        self, tokens: list[bytes], create: bool, quota: Quota | None = None
    ) -> tuple[bytes, dict[bytes, int]]:
        """The epoch (seen by the first call) and ``{token: internal}``, ``RESOLVE_BATCH``
        tokens a script call."""
        if len(tokens) <= RESOLVE_BATCH:
            return self._resolve(tokens, create, quota)
        found: dict[bytes, int] = {}
        epoch = b""
        for start in range(0, len(tokens), RESOLVE_BATCH):
            batch = tokens[start : start + RESOLVE_BATCH]
            batch_epoch, batch_found = self._resolve(batch, create, quota)
            epoch = epoch or batch_epoch
            found.update(batch_found)
        return epoch, found

    def _resolve(
        self, tokens: Sequence[bytes], create: bool, quota: Quota | None = None
    ) -> tuple[bytes, dict[bytes, int]]:
        """One script call for distinct ``tokens`` (``resolve_call``)."""
        head = [self.keys.id_map_marker_key(), self.keys.id_map_counter_key()]
        head += [self.keys.id_map_epoch_key(), quota.key if quota else QUOTA_PLACEHOLDER_KEY]
        places = places_of(tokens, self._forward_prefix, self.buckets)
        call = resolve_call(tokens, create, head, places, self.marker, self._reverse_prefix, quota)
        with mapped_errors():
            [reply] = run_scripts(self.redis, [call])
        epoch, internals = reply
        return epoch, dict(zip(tokens, ids_of_reply(internals), strict=True))

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
        keys = [self._forward_key(token), self.keys.id_map_epoch_key()]
        found = self._forget(keys=keys, args=[field_of(token), self._reverse_prefix, new_epoch()])
        self._cache.pop(token, None)
        return None if found is None else int(found)

    def claim(self, universe_key: str, registry_key: str) -> str | None:
        """Mark the dataset as mapped unless it holds plain data; the marker found or set
        (``None``: plain data is there)."""
        keys = [self.keys.id_map_marker_key(), universe_key, registry_key]
        keys.append(self.keys.id_map_epoch_key())
        found: Any = self._claim(keys=keys, args=[self.marker, new_epoch()])
        return None if found is None else found.decode() if isinstance(found, bytes) else found
