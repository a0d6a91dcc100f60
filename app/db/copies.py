"""A small table's rows kept in memory, read again when the copy is older than `ttl_s`: requests
that find it old share one read. When a read fails (the database away, for a moment) a copy younger
than `STALE_S` keeps serving, and a read made while such a copy exists is given `QUICK_S` at most:
a request is never held for it beyond its own statement's budget. (Row policies and credentials.)"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from app.core.errors import GatewayError

log = logging.getLogger("gateway.copies")
T = TypeVar("T")


class SharedCopy(Generic[T]):
    STALE_S = 30.0
    QUICK_S = 0.25

    def __init__(self, read: Callable[[], Awaitable[T]], empty: T, ttl_s: float, what: str):
        self.read, self.value, self.ttl_s, self.what = read, empty, ttl_s, what
        self._read_at: float | None = None
        self._reading: asyncio.Future[T] | None = None

    def forget(self) -> None:
        """The next get() reads again (this instance sees its own change from the next request)."""
        self._read_at = None

    async def get(self, max_age_s: float | None = None) -> T:
        """The rows as read at most `ttl_s` (or `max_age_s`, when shorter) ago."""
        read_at = self._read_at
        if read_at is not None and time.monotonic() - read_at < min(self.ttl_s, max_age_s or self.ttl_s):
            return self.value
        if self._reading is None or self._reading.done():
            self._reading = asyncio.ensure_future(self._fetch())
            self._reading.add_done_callback(self._retrieved)
        kept = read_at is not None and time.monotonic() - read_at < self.STALE_S
        try:
            if kept:
                async with asyncio.timeout(self.QUICK_S):
                    return await asyncio.shield(self._reading)
            return await asyncio.shield(self._reading)
        except (TimeoutError, GatewayError) as exc:
            if not kept:
                raise
            log.warning("%s not read again (%r): serving the copy of %.1f s ago", self.what, exc,
                        time.monotonic() - (read_at or 0))
            return self.value

    async def _fetch(self) -> T:
        started = time.monotonic()
        self.value = await self.read()
        self._read_at = started
        return self.value

    def _retrieved(self, reading: asyncio.Future) -> None:
        """A read nobody waited for to the end: its failure is logged, not left unretrieved."""
        if not reading.cancelled() and reading.exception() is not None:
            log.info("%s read failed: %r", self.what, reading.exception())
