"""The read cache kept exact by the change feed: every table a committed transaction changed (from
any writer: the gateway, a script, a replica's primary) has its cached answers dropped, and a table
a DDL statement defined anew too.

The cache is used only while the feed follows the binlog: from the moment its reader starts (every
answer cached before is dropped then, as nobody followed what changed meanwhile) until the reader
loses its place. Tables changed within one turn of the event loop are dropped in one call each.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from app.core.errors import GatewayError
from app.feed.hub import GAP, Feed
from app.services.cache import ReadCache

log = logging.getLogger("gateway.feed")
EVERY = "*"


class CacheFollower:
    def __init__(self, feed: Feed, cache: ReadCache, catalog: Any = None, retry_s: float = 1.0):
        self.feed, self.cache, self.catalog, self.retry_s = feed, cache, catalog, retry_s
        self._owed: set[str] = set()
        self._flushing: asyncio.Task | None = None
        self._keeping: asyncio.Task | None = None
        feed.listen(self.seen)

    def start(self) -> None:
        if not self.feed.enabled:
            log.warning("GATEWAY_CACHE_URL is set but the change feed is off (GATEWAY_FEED=off): the read cache is"
                        " not used, as nothing would drop what other writers change")
            return
        self._keeping = asyncio.create_task(self._keep())

    async def stop(self) -> None:
        if self._keeping is not None:
            self._keeping.cancel()

    async def _keep(self) -> None:
        """Keep the feed reading while the cache is on (it starts again after losing its place)."""
        while True:
            if not self.feed.running:
                self.cache.following = False
                try:
                    await self.feed.start()
                    await self.cache.invalidate_all()  # changes made while nobody followed
                    self.cache.following = True
                except GatewayError as exc:  # the feed cannot run: the cache stays unused, /health/ready says why
                    log.debug("read cache waits for the change feed: %s", exc.message)
            await asyncio.sleep(self.retry_s)

    def seen(self, tx: Any) -> None:
        if tx is GAP:
            self.cache.following = False
            self._owed.add(EVERY)
            self.cache.forget(None)
        else:
            tables = self._referring({change.table for change in tx.changes}) | tx.defined
            self._owed.update(tables)
            for table in tables:  # this instance's own entries at once; Redis's in the flush below
                self.cache.forget(None if table == EVERY else table)
        if self._owed and (self._flushing is None or self._flushing.done()):
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    def _referring(self, tables: set[str]) -> set[str]:
        """The tables changed, and every table referring to one through a foreign key: InnoDB writes a
        cascaded delete or update (ON DELETE CASCADE, SET NULL) to no binlog event of its own."""
        if self.catalog is None:
            return tables
        found, waiting = set(tables), list(tables)
        while waiting:
            table = self.catalog.known(waiting.pop())
            if table is None:
                continue
            for relation in self.catalog.relations(table):
                if relation.many and relation.target.name not in found:
                    found.add(relation.target.name)
                    waiting.append(relation.target.name)
        return found

    async def _flush(self) -> None:
        while self._owed:
            owed, self._owed = self._owed, set()
            if EVERY in owed:
                await self.cache.invalidate_all()
            else:
                await asyncio.gather(*(self.cache.invalidate(table) for table in owed))
