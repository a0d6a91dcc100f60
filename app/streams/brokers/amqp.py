"""RabbitMQ: competing consumers on a durable queue; a message's `message_id` (or its envelope's
id) makes it once-only.

Messages are gathered into a group (up to `batch`, waiting the group time), applied, and after
COMMIT acknowledged with one `multiple` ack. A message redelivered (its consumer died before the
ack) is recognised by its id and only acknowledged. A message with neither id cannot be recognised
again, so it is not applied: it goes to the dead letters with the reason.
"""

from __future__ import annotations

import asyncio
from functools import partial

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from app.streams.consumer import Consumer, InOrder
from app.streams.grouping import collect
from app.streams.messages import Message
from app.streams.positions import ID_CHARS, key_of

NO_ID = "the message has no message_id property (nor an envelope id): exactly-once needs the publisher to set one"


class AmqpSource(Consumer):
    async def session(self, stopping: asyncio.Event) -> None:
        options = self.config.options
        connection = await aio_pika.connect(
            self.config.address, client_properties={"connection_name": f"gateway-ingest {self.config.name}"}
        )
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=int(options.get("prefetch") or 2 * self.batch))
            queue = await channel.declare_queue(options["queue"], durable=True)
            inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
            await queue.consume(inbox.put)
            self.state = "running"
            lag_at = 0.0
            loop = asyncio.get_running_loop()
            groups = InOrder(self, stopping)
            try:
                while not stopping.is_set():
                    if connection.is_closed or channel.is_closed:
                        raise ConnectionError("the broker closed the connection")
                    try:
                        first = await asyncio.wait_for(inbox.get(), 0.5)
                    except TimeoutError:
                        first = None
                    if first is not None:
                        group = await collect(inbox, first, self.batch, self.wait_s)
                        # One cumulative ack: every earlier delivery on the channel is committed too.
                        await groups.push([_message(m) for m in group], partial(group[-1].ack, multiple=True))
                    if loop.time() - lag_at > 5:
                        lag_at = loop.time()
                        declared = await channel.declare_queue(options["queue"], passive=True)
                        self.lag["queue"] = declared.declaration_result.message_count or 0
                await groups.wait()
            finally:
                await groups.close()
        finally:
            await connection.close()


def _message(incoming: AbstractIncomingMessage) -> Message:
    ident = incoming.message_id
    if not ident:  # an envelope's id will do
        return Message(incoming.body, f"delivery:{incoming.delivery_tag}", envelope_ids=True, needs_key=NO_ID)
    return Message(incoming.body, ident[:ID_CHARS], key=key_of(ident))
