"""What every broker consumer shares: connect and reconnect, deliver a group until it commits, and
the state /health/ready shows.

A group is delivered by `deliver`, which returns only once the group's transaction has committed:
with the database away (or a table gone), the consumer pauses and tries again on a growing wait
(0.2 s doubling to 5 s), holding the messages unacknowledged. A broker connection that fails is
opened again on the same schedule. Acknowledging happens after `deliver` returns, so nothing is
acknowledged that is not committed; a message delivered again after a crash is recognised by its
id or offset (applier.py) and only acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from app.core.errors import GatewayError
from app.streams.applier import Prepared, StreamApplier
from app.streams.messages import Message, Outcome
from app.streams.sources import SourceConfig

log = logging.getLogger("gateway.ingest")


def backoff(attempt: int) -> float:
    return min(5.0, 0.2 * 2**attempt)


class Consumer:
    """One source. Subclasses implement `session`: connect, then read, deliver and acknowledge
    until `stopping` is set (returning) or the broker fails (raising)."""

    def __init__(self, config: SourceConfig, applier: StreamApplier, group_rows: int, group_ms: float):
        self.config, self.applier = config, applier
        self.batch = config.batch or group_rows
        self.wait_s = group_ms / 1000
        self.state = "starting"  # starting, running, paused (database), reconnecting (broker), stopped
        self.error: str | None = None
        self.lag: dict[str, int] = {}  # partition or queue -> messages not yet consumed

    async def run(self, stopping: asyncio.Event) -> None:
        attempt = 0
        while not stopping.is_set():
            try:
                await self.session(stopping)
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker: unreachable, gone, refusing
                self.state, self.error = "reconnecting", f"{type(exc).__name__}: {exc}"[:500]
                log.warning("source %s: %s; reconnecting", self.config.name, self.error)
                await _sleep(stopping, backoff(attempt))
                attempt += 1
        self.state = "stopped"

    async def session(self, stopping: asyncio.Event) -> None:
        raise NotImplementedError

    async def deliver(
        self, messages: Sequence[Message], stopping: asyncio.Event, prepared: Prepared | None = None
    ) -> list[Outcome]:
        """Apply the group (`prepared` already, or not); on a database failure pause and try
        again, until it commits."""
        attempt = 0
        while True:
            try:
                if prepared is None:
                    prepared = await self.applier.prepare(messages)
                outcomes = await self.applier.commit(prepared)
            except GatewayError as exc:
                prepared = None  # checked again on the next try: the table may have changed
                self.state, self.error = "paused", f"{exc.code}: {exc.message}"
                log.warning("source %s: %s; paused, trying again", self.config.name, self.error)
                await _sleep(stopping, backoff(attempt))
                if stopping.is_set():
                    raise asyncio.CancelledError from exc  # nothing acknowledged: redelivered later
                attempt += 1
                continue
            self.state, self.error = "running", None
            return outcomes

    def describe(self) -> dict[str, Any]:
        counters = self.applier.counters
        return {
            "name": self.config.name,
            "kind": self.config.kind,
            "address": self.config.shown,
            "table": self.config.table,
            "mode": self.config.mode,
            "state": self.state,
            "error": self.error,
            "messages": dict(counters.messages),
            "rows": counters.rows,
            "lag": dict(self.lag),
        }


class InOrder:
    """Groups delivered one after another, each prepared (checked, serialized) while the one
    before it commits: the process's CPU works while the database does. What follows a commit
    (`then`: acknowledging) runs for each group in the order the groups came, and before the next
    group commits, so a cumulative acknowledgement never covers an uncommitted message."""

    def __init__(self, consumer: Consumer, stopping: asyncio.Event):
        self.consumer, self.stopping = consumer, stopping
        self._committing: asyncio.Task | None = None

    async def push(self, messages: Sequence[Message], then: Callable[[], Awaitable[None]]) -> None:
        try:
            prepared: Prepared | None = await self.consumer.applier.prepare(messages)
        except GatewayError:
            prepared = None  # deliver tries again, pausing as it does
        await self.wait()
        self._committing = asyncio.create_task(self._deliver(messages, prepared, then))

    async def _deliver(
        self, messages: Sequence[Message], prepared: Prepared | None, then: Callable[[], Awaitable[None]]
    ) -> None:
        await self.consumer.deliver(messages, self.stopping, prepared)
        await then()

    async def wait(self) -> None:
        """The group in flight, committed and followed up (its failure raised here)."""
        task, self._committing = self._committing, None
        if task is not None:
            await task

    async def close(self) -> None:
        task, self._committing = self._committing, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)


async def _sleep(stopping: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        pass
