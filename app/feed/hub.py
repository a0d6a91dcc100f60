"""One binlog reader per instance, shared: started when first needed (a subscriber, the read cache),
its transactions handed in commit order to listeners (the catalog, the cache) and to subscribers,
each with a bounded queue: a subscriber that falls behind is cut off with the reason, and never
holds the reader, the others or the database.

A subscriber resuming from a position the reader has passed is served from the recent transactions
kept in memory when they reach back that far, else by a reader of its own from that position (the
binlog still holds it, or 410). Either way it joins without a gap or a duplicate: what it is given
is chosen and it is registered in one step of the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from app.core.config import Settings
from app.core.errors import DatabaseError, FeedUnavailable, GatewayError, InvalidPosition, PositionGone
from app.db.database import Database
from app.feed.positions import Position
from app.feed.reader import Source, Transaction, read

log = logging.getLogger("gateway.feed")
Listener = Callable[[Transaction], None]
GAP = object()  # handed to listeners when the reader lost its place: everything may have changed


class Cut(Exception):
    """The subscription ended by the feed, with the reason (too slow, the reader lost its place)."""


@dataclass
class Status:
    state: str  # idle (nobody needs it yet), running, unavailable
    reason: str | None = None


class Subscription:
    """Transactions after `after`, in order, until cut."""

    def __init__(self, feed: "Feed", after: Position, limit: int):
        self.feed, self.after, self.limit = feed, after, limit
        self._queue: asyncio.Queue[Transaction | Cut] = asyncio.Queue()
        self._waiting = 0  # changes queued
        self.reason: str | None = None
        self.own: "Reader | None" = None  # a reader of its own, while it catches up from an old position

    def offer(self, tx: Transaction) -> None:
        if self.reason is not None or tx.position.transaction < self.after.transaction:
            return
        size = max(len(tx.changes), 1)
        if self._waiting and self._waiting + size > self.limit:  # one transaction always fits an empty queue
            self.cut(f"too slow: more than {self.limit} changes waiting; reconnect with the last position read")
            return
        self._waiting += size
        self._queue.put_nowait(tx)

    def cut(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason
            self._queue.put_nowait(Cut(reason))
            self.feed.metrics_cut += 1

    async def transactions(self) -> AsyncIterator[Transaction]:
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, Cut):
                    raise item
                self._waiting -= max(len(item.changes), 1)
                yield item
        finally:
            self.close()

    def close(self) -> None:
        self.feed._subscribers.discard(self)
        if self.own is not None:
            self.own.stop()


class Reader:
    """A binlog reader in a thread, handing transactions to `deliver` in the event loop; at most
    `in_flight` waiting there (then the thread waits, and the server keeps the rest)."""

    def __init__(self, source: Source, start: Position, deliver: Callable[[Transaction], None],
                 failed: Callable[[BaseException], None], heartbeat_s: float, in_flight: int = 256):
        self.loop = asyncio.get_running_loop()
        self.source, self.start_at, self.deliver, self.failed = source, start, deliver, failed
        self.heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self._slots = threading.BoundedSemaphore(in_flight)
        self._thread = threading.Thread(target=self._run, name="binlog-reader", daemon=True)
        self._thread.start()

    def _emit(self, tx: Transaction) -> None:
        while not self._slots.acquire(timeout=0.5):
            if self._stop.is_set():
                return
        self.loop.call_soon_threadsafe(self._handed, tx)

    def _handed(self, tx: Transaction) -> None:
        self._slots.release()
        if not self._stop.is_set():
            self.deliver(tx)

    def _run(self) -> None:
        try:
            read(self.source, self.start_at, self._emit, self._stop, server_id=random.randint(1 << 20, (1 << 31) - 1),
                 heartbeat_s=self.heartbeat_s)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop, which says why the feed stopped
            if not self._stop.is_set():
                self.loop.call_soon_threadsafe(self.failed, exc)

    def stop(self) -> None:
        self._stop.set()


class Feed:
    def __init__(self, settings: Settings, db: Database):
        self.db = db
        address = settings.db
        self.source = Source(address.connect_kwargs(), address.database)
        self.queue_limit, self.keep = settings.feed_queue, settings.feed_buffer
        self.heartbeat_s = settings.feed_heartbeat_s
        self.enabled = settings.feed != "off"
        self.status = Status("idle") if self.enabled else Status("unavailable", "GATEWAY_FEED=off")
        self._listeners: list[Listener] = []
        self._subscribers: set[Subscription] = set()
        self._recent: deque[Transaction] = deque()
        self._kept = 0  # changes in _recent
        self._reader: Reader | None = None
        self._start_lock = asyncio.Lock()
        self.last: Position | None = None  # after the last transaction handed on
        self.read_to: Position | None = None  # where the last transaction handed on ends in the binlog
        self.lag_s: float | None = None
        self.metrics_changes = self.metrics_transactions = self.metrics_cut = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @property
    def running(self) -> bool:
        return self._reader is not None and self.status.state == "running"

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def describe(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"state": self.status.state}
        if self.status.reason:
            shown["reason"] = self.status.reason
        if self.running:
            shown |= {"position": str(self.last), "lag_s": self.lag_s, "subscribers": self.subscribers}
        return shown

    # --- starting -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the shared reader at the binlog's end (503 saying why it cannot)."""
        if self.running:
            return
        if not self.enabled:
            raise FeedUnavailable("the change feed is off (GATEWAY_FEED=off)", {"reason": self.status.reason})
        async with self._start_lock:
            if self.running:
                return
            end = await self._end()
            self.last = self.read_to = end
            self._reader = Reader(self.source, end, self._publish, self._failed, self.heartbeat_s)
            self.status = Status("running")
            log.info("change feed reading the binlog from %s", end)

    async def _end(self) -> Position:
        """Where the binlog ends now, once the server is found able to feed (else 503 with the reason)."""
        try:
            settings = (await self.db.fetch(
                "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, VERSION()"
            )).rows[0]
            reason = _unfit(*settings)
            if reason is None:
                status = (await self.db.fetch("SHOW MASTER STATUS")).rows
                if not status:
                    reason = "the server writes no binlog (SHOW MASTER STATUS is empty)"
        except DatabaseError as exc:  # a variable MySQL before 8.0.1 or MariaDB before 10.5 lacks; no grant
            reason = f"the server cannot feed changes: {exc.message}"
        except GatewayError as exc:
            raise FeedUnavailable(f"the change feed cannot start: {exc.message}", {"reason": exc.message}) from exc
        if reason is not None:
            self.status = Status("unavailable", reason)
            raise FeedUnavailable(f"the change feed is unavailable: {reason}", {"reason": reason})
        return Position.start(str(status[0][0]), int(status[0][1]))

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        for subscriber in list(self._subscribers):
            subscriber.cut("the gateway is stopping")
            subscriber.close()
        self.status = Status("idle") if self.enabled else self.status

    # --- the shared reader's transactions --------------------------------------------------------

    def _publish(self, tx: Transaction) -> None:
        if self.last is not None and tx.position.transaction < self.last.transaction:
            return  # never behind where it started or has been (a reader reads from where it is told)
        self.last = tx.last
        self.read_to = tx.end or self.read_to
        self.lag_s = max(time.time() - tx.committed_at, 0.0)
        self.metrics_transactions += 1
        self.metrics_changes += len(tx.changes)
        self._recent.append(tx)
        self._kept += len(tx.changes) or 1
        while self._kept > self.keep and len(self._recent) > 1:
            self._kept -= len(self._recent.popleft().changes) or 1
        for listener in self._listeners:
            try:
                listener(tx)
            except Exception:  # noqa: BLE001 - a listener's fault must not stop the feed for the others
                log.exception("a change feed listener failed")
        for subscriber in list(self._subscribers):
            if subscriber.own is None:
                subscriber.offer(tx)

    def _failed(self, exc: BaseException) -> None:
        """The shared reader stopped (the server went away, a purge passed it): subscribers are cut
        (they resume from their own positions), listeners told everything may have changed, and the
        reader starts again at the binlog's end once the server answers."""
        log.warning("change feed reader stopped: %s", exc)
        self._reader = None
        self._recent.clear()
        self._kept = 0
        self.status = Status("idle", f"the reader stopped ({exc}); it starts again when next needed")
        for subscriber in list(self._subscribers):
            if subscriber.own is None:
                subscriber.cut("the feed's reader lost the database: reconnect with the last position read")
        for listener in self._listeners:
            try:
                listener(GAP)  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001
                log.exception("a change feed listener failed")

    # --- subscribing --------------------------------------------------------------------------

    async def subscribe(self, after: Position | None) -> Subscription:
        """A subscription to every transaction after `after` (None: from now)."""
        await self.start()
        assert self.last is not None
        if after is None:
            subscription = Subscription(self, self.last, self.queue_limit)
            self._subscribers.add(subscription)
            return subscription
        await self._not_ahead(after)
        oldest = self._recent[0].position if self._recent else self.last
        if after.transaction >= oldest.transaction or after >= self.last:
            # Recent enough: what is kept from `after` on, then live, in this one step of the loop.
            subscription = Subscription(self, after, self.queue_limit)
            for tx in self._recent:
                subscription.offer(tx)
            self._subscribers.add(subscription)
            return subscription
        await self._still_held(after)
        subscription = Subscription(self, after, self.queue_limit)
        subscription.own = Reader(
            self.source, Position.start(after.file, after.offset), subscription.offer,
            lambda exc: subscription.cut(f"the feed's reader stopped: {exc}"), self.heartbeat_s,
        )
        self._subscribers.add(subscription)
        return subscription

    async def _not_ahead(self, after: Position) -> None:
        """A position past the binlog's end is none the server gave (another server's, or one before a
        RESET MASTER or a failover): followed, it would wait in silence until the binlog got there."""
        if self.read_to is not None and after.transaction < self.read_to.transaction:
            return
        status = (await self.db.fetch("SHOW MASTER STATUS")).rows
        end = Position.start(str(status[0][0]), int(status[0][1])) if status else None
        at_end = after.transaction == (end.seq, end.offset) if end is not None else False
        if end is None or after.transaction > end.transaction or (at_end and after.index >= 0):
            raise InvalidPosition(
                f"{after} is past the end of this server's binlog ({end}): a position of another server, or from"
                " before a RESET MASTER; re-read the table and follow from details.position",
                {"position": str(self.last)},
            )

    async def _still_held(self, after: Position) -> None:
        files = [str(row[0]) for row in (await self.db.fetch("SHOW BINARY LOGS")).rows]
        if after.file not in files:
            raise PositionGone(
                f"the binlog no longer holds {after} (the server keeps {files[0] if files else 'none'} on): re-read "
                "the table, then follow the feed from details.position, taken before the re-read",
                {"position": str(self.last), "oldest": f"{files[0]}:4:-1" if files else None},
            )


def _unfit(log_bin: Any, fmt: Any, image: Any, metadata: Any, version: Any) -> str | None:
    if not int(log_bin or 0):
        return "the binlog is off (start the server with --log-bin)"
    if "mariadb" not in str(version).lower():
        return "the change feed reads MariaDB's binlog; this server is MySQL"
    wanted = {"binlog_format": (fmt, "ROW"), "binlog_row_image": (image, "FULL"),
              "binlog_row_metadata": (metadata, "FULL")}
    wrong = [f"{name} is {value} (SET GLOBAL {name} = '{want}')" for name, (value, want) in wanted.items()
             if str(value).upper() != want]
    return "; ".join(wrong) if wrong else None
