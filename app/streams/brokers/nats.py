"""NATS JetStream: a durable pull consumer that any number of ingest processes share.

Each message's stream sequence is its id: recorded with its rows, so a message redelivered (its
consumer died before acknowledging; JetStream redelivers after `ack_wait`) is recognised and only
acknowledged. The stream is the operator's; the durable consumer is created when missing.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from app.streams.consumer import Consumer, InOrder
from app.streams.messages import Message


class NatsSource(Consumer):
    async def session(self, stopping: asyncio.Event) -> None:
        options = self.config.options
        client = await nats.connect(
            self.config.address, allow_reconnect=False, name=f"gateway-ingest {self.config.name}"
        )
        try:
            jetstream = client.jetstream()
            config = ConsumerConfig(
                durable_name=options["durable"],
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=float(options.get("ack_wait") or 30),
                max_ack_pending=max(1000, 4 * self.batch),
                filter_subject=options["subject"],
            )
            subscription = await jetstream.pull_subscribe(
                options["subject"], durable=options["durable"], stream=options["stream"], config=config
            )
            self.state = "running"
            loop = asyncio.get_running_loop()
            lag_at = 0.0
            groups = InOrder(self, stopping)
            try:
                while not stopping.is_set():
                    if client.is_closed:
                        raise ConnectionError("the NATS connection closed")
                    try:
                        fetched = await subscription.fetch(self.batch, timeout=0.5)
                    except NatsTimeout:
                        fetched = []
                    if fetched:
                        messages = []
                        for m in fetched:
                            sequence = str(m.metadata.sequence.stream)
                            messages.append(Message(m.data, sequence, key=sequence))
                        await groups.push(messages, partial(_ack, fetched))
                    if loop.time() - lag_at > 5 or not fetched:
                        lag_at = loop.time()
                        try:
                            self.lag["pending"] = (await subscription.consumer_info()).num_pending or 0
                        except (NatsTimeout, TimeoutError):  # only a metric: the stream goes on (a busy server)
                            pass
                await groups.wait()
            finally:
                await groups.close()
        finally:
            await client.close()


async def _ack(messages: list[Any]) -> None:
    for m in messages:
        await m.ack()
