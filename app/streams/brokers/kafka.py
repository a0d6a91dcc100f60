"""Kafka: a consumer group member whose partitions' offsets live in the database.

Each partition's next offset is written in the transaction that writes its rows
(`_gateway_stream_offsets`); on assignment (start, rebalance) the consumer seeks to it, and a group
applied by a consumer that lost its partition meanwhile finds the row locked and moved on, and
skips what the other applied. Offsets are also committed to Kafka after the database's COMMIT, for
lag tools only: the database's are the ones that count.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from app.streams import positions
from app.streams.consumer import Consumer, InOrder, _sleep, backoff
from app.streams.messages import Message

log = logging.getLogger("gateway.ingest")


class KafkaSource(Consumer):
    _next: dict[int, int]  # partition -> the offset after the last one applied here

    async def session(self, stopping: asyncio.Event) -> None:
        options = self.config.options
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.config.address.split(","),
            group_id=options["group"],
            client_id=f"gateway-ingest-{self.config.name}"[:200],
            enable_auto_commit=False,
            auto_offset_reset=options.get("reset", "earliest"),
            max_poll_records=self.batch,
        )
        self._next = {}
        consumer.subscribe([options["topic"]], listener=_SeekToStored(self, consumer, stopping))
        await consumer.start()
        groups = InOrder(self, stopping)
        try:
            self.state = "running"
            while not stopping.is_set():
                fetched = await consumer.getmany(timeout_ms=500, max_records=self.batch)
                messages = [
                    Message(
                        record.value or b"",
                        f"{tp.partition}:{record.offset}",
                        partition=tp.partition,
                        offset=record.offset,
                        envelope_ids=True,
                    )
                    for tp, records in fetched.items()
                    for record in records
                ]
                if messages:
                    ends = {
                        TopicPartition(tp.topic, tp.partition): records[-1].offset + 1
                        for tp, records in fetched.items()
                        if records
                    }
                    await groups.push(messages, partial(self._after, consumer, ends))
            await groups.wait()
        finally:
            await groups.close()
            await consumer.stop()

    async def _after(self, consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> None:
        await self._commit_for_tools(consumer, ends)
        self._note_lag(consumer, {tp.partition: offset for tp, offset in ends.items()})

    async def _commit_for_tools(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:  # a partition moved on in a rebalance: the database has the truth
            log.info("source %s: offsets not committed to Kafka (%s)", self.config.name, exc)

    def _note_lag(self, consumer: AIOKafkaConsumer, applied: dict[int, int]) -> None:
        """Messages behind the partition's end (the broker's high watermark), per partition."""
        self._next.update(applied)
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is not None and tp.partition in self._next:
                self.lag[str(tp.partition)] = max(0, high - self._next[tp.partition])


class _SeekToStored(ConsumerRebalanceListener):
    def __init__(self, source: KafkaSource, consumer: AIOKafkaConsumer, stopping: asyncio.Event):
        self.source, self.consumer, self.stopping = source, consumer, stopping

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.source.lag.pop(str(tp.partition), None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Start where the database says; with it away, wait (starting elsewhere could double rows)."""
        if not assigned:
            return
        attempt = 0
        while True:
            try:
                stored = await positions.stored_offsets(
                    self.source.applier.db, self.source.config.name, [tp.partition for tp in assigned]
                )
                break
            except Exception as exc:
                self.source.state, self.source.error = "paused", f"offsets not readable: {exc}"
                await _sleep(self.stopping, backoff(attempt))
                if self.stopping.is_set():
                    return
                attempt += 1
        for tp in assigned:
            offset = stored.get(tp.partition, positions.UNKNOWN)
            if offset != positions.UNKNOWN:
                self.consumer.seek(tp, offset)
        log.info(
            "source %s: assigned partitions %s, from %s",
            self.source.config.name,
            sorted(tp.partition for tp in assigned),
            stored,
        )
