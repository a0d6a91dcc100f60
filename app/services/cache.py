"""The shared read cache: answers of reads kept in Redis (GATEWAY_CACHE_URL), shared by every
instance, dropped by table when its rows change.

Exact invalidation, without a race, by a generation per table (and one for every table):
- a read fetches the generation and the entry in one round trip (a Lua script), before it queries
  the database; an entry is served only if it was stored under the current generation;
- on a miss it queries the database, then stores the answer only if the generation is still the one
  it read (compare-and-set, in Lua), tagged with it;
- `invalidate(table)` increments the table's generation: every entry stored before is unreachable
  (and expires by its TTL), and a read that started before the change cannot store after it.
So an answer is never older than the last invalidation, which the change feed makes for every
committed change of a table, from any writer (the gateway also makes one after each write it commits).

Redis away or slow never fails a read: each call has a short deadline (GATEWAY_CACHE_TIMEOUT_MS);
a generation that could not be read means the database answers and nothing is stored. After an
error the cache is left alone for a moment (`PAUSE_S`) so a dead Redis costs no request a timeout.
An invalidation that fails is retried in the background until it succeeds (or every entry it
concerns has expired), and until then this instance neither serves nor stores that table's answers.

A missing generation (a Redis restarted empty, a key evicted) starts again from Redis' clock in
microseconds, above every generation made before: an old entry never becomes current again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("gateway.cache")

# A generation that is missing starts at Redis' TIME in microseconds (INCR keeps it an integer).
_START = """
local function start(key)
  local g = redis.call('GET', key)
  if not g then
    local t = redis.call('TIME')
    g = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('SET', key, g)
  end
  return g
end
"""
# KEYS: every table's generation, the table's, the entry. -> {generation, the entry if stored under it}
LOOKUP = _START + """
local g = start(KEYS[1]) .. '.' .. start(KEYS[2])
local e = redis.call('GET', KEYS[3])
if e and string.sub(e, 1, #g + 1) == g .. '\\n' then return {g, e} end
return {g, false}
"""
# KEYS as LOOKUP; ARGV: the generation read, the entry (prefixed with it), its TTL in ms.
STORE = """
local g1, g2 = redis.call('GET', KEYS[1]), redis.call('GET', KEYS[2])
if g1 and g2 and g1 .. '.' .. g2 == ARGV[1] then
  redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
# KEYS: a generation. A missing one starts (higher than any before), else it goes up by one.
INVALIDATE = _START + """
if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCR', KEYS[1]) end
return start(KEYS[1])
"""


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a read found: the generation it must store under, and the entry (None: a miss)."""

    table: str
    key: str
    generation: bytes
    entry: bytes | None


class ReadCache:
    """The cache as handlers and the change feed use it. Without a URL it is off: every lookup is
    None and invalidations do nothing.

    Beside Redis, each instance keeps the answers it read from the database itself in memory (at
    most `local_entries`, the least recently used go first), under this instance's own generation
    per table: the same feed that drops a table's entries in Redis drops them here, synchronously, as
    it reads each transaction, and an answer read before a change is not kept after it (its
    generation is taken before the read and compared when it is kept, with no wait between). A hit
    here costs no round trip at all. Answers taken from Redis are not kept here: this instance's
    feed may have passed a change whose invalidation is still on its way to Redis."""

    PAUSE_S = 1.0  # after an error, the cache is not used for this long
    RETRY_S = 0.1  # a failed invalidation is tried again this often

    def __init__(self, url: str | None, *, namespace: str, ttl_s: float = 300.0, timeout_ms: float = 50.0,
                 max_entry_bytes: int = 1024 * 1024, local_entries: int = 10_000):
        self.url, self.ttl_ms, self.timeout_s = url, int(ttl_s * 1000), timeout_ms / 1000
        self.max_entry_bytes = max_entry_bytes
        self.prefix = f"{namespace}:"
        self.counts: dict[str, int] = {}  # hit, miss, bypass, stored, skipped, error_<op>: for /metrics
        self._redis: Any = None
        self._scripts: dict[str, Any] = {}
        self._paused_until = 0.0
        self.local_entries = local_entries
        self._local: OrderedDict[tuple[str, str], tuple[tuple[int, int], Any]] = OrderedDict()
        self._generations: dict[str, int] = {}  # this instance's, per table
        self._every = 0  # this instance's, for every table
        self.following = False  # the change feed follows the binlog (app/feed/invalidation.py): else unused
        self._pending: dict[str, float] = {}  # table ("" for all) -> when its invalidation first failed
        self._retrying: asyncio.Task | None = None
        if url:
            import redis.asyncio as redis  # only when the cache is on
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            self._redis = redis.Redis.from_url(
                url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s,
                retry=Retry(NoBackoff(), 1), health_check_interval=0,  # once more: a pooled connection Redis closed
            )
            self._scripts = {name: self._redis.register_script(text)
                             for name, text in (("lookup", LOOKUP), ("store", STORE), ("invalidate", INVALIDATE))}

    @property
    def enabled(self) -> bool:
        return self._redis is not None

    def usable(self, table: str) -> bool:
        """May a read of `table` use the cache now (on, not paused, no invalidation owed)?"""
        return (self._redis is not None and self.following and time.monotonic() >= self._paused_until
                and table not in self._pending and "" not in self._pending)

    # --- this instance's own entries ------------------------------------------------------------

    def mark(self, table: str) -> tuple[int, int]:
        """This instance's generation of `table`, taken before a read of the database."""
        return self._every, self._generations.get(table, 0)

    def recall(self, table: str, key: str) -> Any:
        """The answer kept here for `key`, if no change of `table` came since it was read."""
        found = self._local.get((table, key))
        if found is None or found[0] != self.mark(table):
            return None
        self._local.move_to_end((table, key))
        self.count("hit")
        self.count("hit_local")
        return found[1]

    def keep(self, table: str, key: str, mark: tuple[int, int], answer: Any) -> None:
        """Keep an answer read from the database, unless a change of `table` came since `mark`."""
        if self.local_entries <= 0 or mark != self.mark(table):
            return
        self._local[(table, key)] = (mark, answer)
        self._local.move_to_end((table, key))
        while len(self._local) > self.local_entries:
            self._local.popitem(last=False)

    def forget(self, table: str | None) -> None:
        """Drop this instance's own entries of `table` (None: of every table), at once."""
        if table is None:
            self._every += 1
        else:
            self._generations[table] = self._generations.get(table, 0) + 1

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def _keys(self, table: str, key: str = "") -> list[str]:
        return [f"{self.prefix}g", f"{self.prefix}g:{table}", f"{self.prefix}e:{table}:{key}"]

    async def _run(self, op: str, keys: list[str], args: list[Any] | None = None) -> Any:
        async with asyncio.timeout(self.timeout_s):
            return await self._scripts[op](keys=keys, args=args or [])

    def _failed(self, op: str, exc: BaseException) -> None:
        self.count(f"error_{op}")
        self._paused_until = time.monotonic() + self.PAUSE_S
        log.warning("read cache: %s failed (%r); the database answers", op, exc)

    async def lookup(self, table: str, key: str) -> Lookup | None:
        """The table's generation and the entry stored under it; None when the cache cannot be used
        (the read then neither takes from it nor stores)."""
        if not self.usable(table):
            self.count("bypass")
            return None
        try:
            generation, entry = await self._run("lookup", self._keys(table, key))
        except Exception as exc:  # noqa: BLE001 - whatever Redis does, the database answers
            self._failed("lookup", exc)
            return None
        if entry is not None:
            entry = entry[len(generation) + 1:]
        self.count("hit" if entry is not None else "miss")
        return Lookup(table, key, generation, entry)

    async def store(self, found: Lookup, entry: bytes) -> bool:
        """Keep `entry` if the table's generation is still the one `found` read (else a change came
        since the read began: it is not kept)."""
        if len(entry) > self.max_entry_bytes or not self.usable(found.table):
            self.count("skipped")
            return False
        try:
            stored = await self._run("store", self._keys(found.table, found.key),
                                     [found.generation, found.generation + b"\n" + entry, self.ttl_ms])
        except Exception as exc:  # noqa: BLE001
            self._failed("store", exc)
            return False
        self.count("stored" if stored else "skipped")
        return bool(stored)

    async def invalidate(self, table: str) -> None:
        """Drop every answer of `table` (the change feed calls it for each committed change).
        Never raises: a failure is retried in the background, and meanwhile this instance does
        not use the cache for `table`."""
        if self._redis is None:
            return
        self.forget(table)
        self.count("invalidated")
        if not await self._invalidate(table):
            self._owe(table)

    async def invalidate_all(self) -> None:
        """Drop every answer of every table (a procedure wrote who knows what; a schema changed)."""
        if self._redis is None:
            return
        self.forget(None)
        self.count("invalidated")
        if not await self._invalidate(""):
            self._owe("")

    async def _invalidate(self, table: str) -> bool:
        key = self._keys(table)[0 if table == "" else 1]
        try:
            await self._run("invalidate", [key])
            return True
        except Exception as exc:  # noqa: BLE001
            self._failed("invalidate", exc)
            return False

    def _owe(self, table: str) -> None:
        self._pending.setdefault(table, time.monotonic())
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.create_task(self._retry())

    async def _retry(self) -> None:
        """Invalidations owed, tried until each succeeds, or until every entry it concerns has expired."""
        while self._pending:
            await asyncio.sleep(self.RETRY_S)
            for table, since in list(self._pending.items()):
                if time.monotonic() - since > self.ttl_ms / 1000 or await self._invalidate(table):
                    del self._pending[table]

    async def close(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
        if self._redis is not None:
            await self._redis.aclose()
