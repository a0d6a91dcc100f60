"""GATEWAY_FEED_SINKS: the committed changes of chosen tables published to a broker, so the gateway
is also a small CDC service. Sinks are URLs, separated by commas or whitespace:

    nats://HOST:PORT?subject=S&tables=a,b[&name=N]                (JetStream: S must be a stream's subject)
    amqp://USER:PASSWORD@HOST:PORT/VHOST?queue=Q&tables=a,b        (or &exchange=E&routing_key=K; amqps://)
    kafka://HOST:PORT[,HOST:PORT...]/TOPIC?tables=a,b

Each change is one message: the JSON of a change feed event (op, table, key, before, after, gtid,
committed_at, position), its id the change's position (JetStream's `Nats-Msg-Id`, AMQP's
`message_id`, the Kafka record's key), in commit order. A sink's place is kept in
`_gateway_feed_sinks` after the broker acknowledged what came before it, so a restart, or another
instance taking over, goes on from there: a position is published once, or, after a crash between
the broker's acknowledgement and the row's update, once more with the same id, which JetStream
drops (its duplicate window) and a consumer that keys on the id (the gateway's own ingest does)
applies once. One instance publishes a sink at a time: it holds a lease in that row, renewed as it
goes; another takes the sink over when the lease is older than `LEASE_S`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from app.core import jsontext
from app.core.errors import GatewayError
from app.db.database import Database
from app.feed.changes import converters, event, row_of
from app.feed.hub import Cut, Feed
from app.feed.positions import Position, parse
from app.rows.values import json_default

log = logging.getLogger("gateway.feed.sinks")
Kind = Literal["nats", "amqp", "kafka"]
_SPLIT = re.compile(r"[,\s]+(?=(?:kafka|amqps?|nats)://)")
_KNOWN = {"nats": {"subject", "tables", "name"}, "amqp": {"queue", "exchange", "routing_key", "tables", "name"},
          "kafka": {"tables", "name"}}
TABLE = "`_gateway_feed_sinks`"
CREATE = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (`name` VARCHAR(191) NOT NULL PRIMARY KEY, `position` VARCHAR(300) NULL,"
    " `owner` VARCHAR(191) NULL, `lease_until` DATETIME(3) NULL, `updated_at` DATETIME(3) NOT NULL) ENGINE=InnoDB"
)
LEASE_S = 15.0


@dataclass(frozen=True)
class SinkConfig:
    kind: Kind
    name: str
    tables: frozenset[str]
    address: str  # what the client connects to (credentials included: never logged)
    shown: str
    options: dict[str, str] = field(default_factory=dict)


def parse_sinks(text: str) -> list[SinkConfig]:
    sinks = [parse_sink(part.strip()) for part in _SPLIT.split(text.strip()) if part.strip()]
    names = [s.name for s in sinks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"two sinks keep their place as {twice[0]!r}: give them different `name`s")
    return sinks


def parse_sink(url: str) -> SinkConfig:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    kind = cast(Kind, "amqp" if scheme in ("amqp", "amqps") else scheme)
    shown = urlunsplit(parts._replace(netloc=parts.hostname or "", query=""))
    if kind not in _KNOWN:
        raise ValueError(f"sink {shown!r}: the scheme must be nats, amqp, amqps or kafka")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(query) - _KNOWN[kind])
    if unknown:
        raise ValueError(f"sink {shown!r}: unknown option {unknown[0]!r} (it takes {', '.join(sorted(_KNOWN[kind]))})")
    tables = frozenset(t for t in query.pop("tables", "").split(",") if t)
    if not tables:
        raise ValueError(f"sink {shown!r}: tables= names the tables whose changes it publishes")
    if kind == "nats":
        if not query.get("subject"):
            raise ValueError(f"sink {shown!r}: subject= is where the changes are published")
        target, address = query["subject"], urlunsplit(parts._replace(query=""))
    elif kind == "amqp":
        if not query.get("queue") and not query.get("exchange"):
            raise ValueError(f"sink {shown!r}: queue= (or exchange= and routing_key=) is where the changes go")
        target, address = query.get("queue") or query["exchange"], urlunsplit(parts._replace(query=""))
    else:
        target = unquote(parts.path.strip("/"))
        if not target or "/" in target:
            raise ValueError(f"sink {shown!r}: kafka://HOST:PORT/TOPIC names one topic")
        address = parts.netloc
    name = query.pop("name", None) or f"{kind}:{target}"
    return SinkConfig(kind, name, tables, address, shown, query)


class Publisher:
    """A broker's client: `publish` returns once the broker has acknowledged every message."""

    def __init__(self, config: SinkConfig):
        self.config = config

    async def start(self) -> None: ...

    async def publish(self, messages: list[tuple[str, bytes]]) -> None: ...

    async def close(self) -> None: ...


class NatsPublisher(Publisher):
    def __init__(self, config: SinkConfig):
        self.config = config
        self.nc: Any = None

    async def start(self) -> None:
        import nats

        self.nc = await nats.connect(self.config.address)
        self.js = self.nc.jetstream()

    async def publish(self, messages: list[tuple[str, bytes]]) -> None:
        subject = self.config.options["subject"]
        acks = [await self.js.publish(subject, body, headers={"Nats-Msg-Id": ident}) for ident, body in messages]
        del acks

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()


class AmqpPublisher(Publisher):
    def __init__(self, config: SinkConfig):
        self.config = config
        self.connection: Any = None

    async def start(self) -> None:
        import aio_pika

        self.connection = await aio_pika.connect_robust(self.config.address)
        channel = await self.connection.channel(publisher_confirms=True)
        options = self.config.options
        if options.get("exchange"):
            self.exchange, self.key = await channel.get_exchange(options["exchange"]), options.get("routing_key", "")
        else:
            await channel.declare_queue(options["queue"], durable=True)
            self.exchange, self.key = channel.default_exchange, options["queue"]

    async def publish(self, messages: list[tuple[str, bytes]]) -> None:
        import aio_pika

        await asyncio.gather(*(
            self.exchange.publish(
                aio_pika.Message(body, message_id=ident, content_type="application/json",
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=self.key,
            )
            for ident, body in messages
        ))

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()


class KafkaPublisher(Publisher):
    def __init__(self, config: SinkConfig):
        self.config = config
        self.producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        # acks=all; no idempotent producer (not every Kafka-compatible broker grants a producer id):
        # a record sent twice carries the same key, the position, for its consumer to drop
        self.producer = AIOKafkaProducer(bootstrap_servers=self.config.address, acks="all")
        await self.producer.start()
        self.topic = urlsplit(self.config.shown).path.strip("/")

    async def publish(self, messages: list[tuple[str, bytes]]) -> None:
        # One partition, so the topic holds the changes in commit order
        sent = [await self.producer.send(self.topic, body, key=ident.encode(), partition=0) for ident, body in messages]
        await asyncio.gather(*sent)  # each future resolves when the broker acknowledged its record

    async def close(self) -> None:
        if self.producer is not None:
            await self.producer.stop()


PUBLISHERS: dict[Kind, type[Publisher]] = {"nats": NatsPublisher, "amqp": AmqpPublisher, "kafka": KafkaPublisher}


class Sink:
    """One sink, run by the instance that holds its lease."""

    def __init__(self, config: SinkConfig, feed: Feed, db: Database, catalog: Any, retry_s: float = 1.0):
        self.config, self.feed, self.db, self.catalog, self.retry_s = config, feed, db, catalog, retry_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.published = 0
        self.state = "waiting"
        self.reason: str | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def describe(self) -> dict:
        shown = {"name": self.config.name, "broker": self.config.shown, "state": self.state,
                 "published": self.published}
        return shown | ({"reason": self.reason} if self.reason else {})

    async def _run(self) -> None:
        while True:
            try:
                after = await self._claim()
                if after is False:
                    self.state = "standby"  # another instance publishes it
                else:
                    await self._publish_from(after if isinstance(after, Position) else None)
            except asyncio.CancelledError:
                raise
            except (GatewayError, Cut, OSError, Exception) as exc:  # noqa: BLE001 - said, then tried again
                self.state, self.reason = "retrying", str(getattr(exc, "message", exc))[:300]
                log.warning("feed sink %s: %s; trying again", self.config.name, self.reason)
            await asyncio.sleep(self.retry_s)

    async def _claim(self) -> Position | None | bool:
        """The lease (False: another instance holds it), and the position to go on after."""
        await self.db.fetch(CREATE)
        await self.db.fetch(
            f"INSERT IGNORE INTO {TABLE} (`name`, `updated_at`) VALUES (%s, UTC_TIMESTAMP(3))", (self.config.name,)
        )
        taken = await self.db.write(
            f"UPDATE {TABLE} SET `owner` = %s, `lease_until` = UTC_TIMESTAMP(3) + INTERVAL %s SECOND"
            " WHERE `name` = %s AND (`owner` IS NULL OR `owner` = %s OR `lease_until` < UTC_TIMESTAMP(3))",
            (self.owner, LEASE_S, self.config.name, self.owner),
        )
        if taken.affected == 0:
            rows = (await self.db.fetch(f"SELECT `owner` FROM {TABLE} WHERE `name` = %s", (self.config.name,))).rows
            if not rows or rows[0][0] != self.owner:  # affected is 0 too when nothing changed (our own lease)
                return False
        rows = (await self.db.fetch(f"SELECT `position` FROM {TABLE} WHERE `name` = %s", (self.config.name,))).rows
        return parse(rows[0][0]) if rows and rows[0][0] else None

    async def _publish_from(self, after: Position | None) -> None:
        publisher = PUBLISHERS[self.config.kind](self.config)
        try:
            await publisher.start()
        except BaseException:
            await publisher.close()
            raise
        renewing = asyncio.create_task(self._renewing())
        publishing = asyncio.create_task(self._publish(publisher, after))
        try:
            done, _ = await asyncio.wait({renewing, publishing}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # the reason either stopped
        finally:
            for task in (renewing, publishing):
                task.cancel()
            await asyncio.gather(renewing, publishing, return_exceptions=True)
            await publisher.close()

    async def _publish(self, publisher: Publisher, after: Position | None) -> None:
        subscription = await self.feed.subscribe(after)
        if after is None:
            await self._keep(subscription.after)  # from now on: where it started is its place
        self.state, self.reason = "publishing", None
        convert: dict[str, Any] = {}
        async for tx in subscription.transactions():
            batch: list[tuple[str, bytes]] = []
            for index, change in enumerate(tx.changes):
                position = tx.at(index)
                if change.table not in self.config.tables or position <= subscription.after:
                    continue
                table = self.catalog.known(change.table)
                if table is None:
                    continue  # not exposed (or dropped): never published
                if convert.get(table.name, (None,))[0] is not table:
                    convert[table.name] = (table, converters(table))
                rows = convert[table.name][1]
                message = event(table, tx, position, change.op, row_of(change.before, rows), row_of(change.after, rows))
                batch.append((str(position), jsontext.dumps(message, json_default)))
            if batch:
                await publisher.publish(batch)
                self.published += len(batch)
            await self._keep(tx.last)

    async def _renewing(self) -> None:
        """The lease kept while the binlog is quiet (else another instance would take the sink over)."""
        while True:
            await asyncio.sleep(LEASE_S / 3)
            await self._mine(await self.db.write(
                f"UPDATE {TABLE} SET `lease_until` = UTC_TIMESTAMP(3) + INTERVAL %s SECOND"
                " WHERE `name` = %s AND `owner` = %s", (LEASE_S, self.config.name, self.owner),
            ))

    async def _keep(self, position: Position) -> None:
        """The place after what the broker acknowledged, and the lease renewed (lost: stop)."""
        await self._mine(await self.db.write(
            f"UPDATE {TABLE} SET `position` = %s, `lease_until` = UTC_TIMESTAMP(3) + INTERVAL %s SECOND,"
            " `updated_at` = UTC_TIMESTAMP(3) WHERE `name` = %s AND `owner` = %s",
            (str(position), LEASE_S, self.config.name, self.owner),
        ))

    async def _mine(self, result: Any) -> None:
        if result.affected:
            return
        rows = (await self.db.fetch(f"SELECT `owner` FROM {TABLE} WHERE `name` = %s", (self.config.name,))).rows
        if not rows or rows[0][0] != self.owner:  # (an UPDATE that changed nothing affects no row)
            raise Cut("another instance took the sink over")
