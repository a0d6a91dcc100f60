"""Feed sinks (GATEWAY_FEED_SINKS): the committed changes of chosen tables published to NATS
JetStream, RabbitMQ and Kafka by a gateway process, in commit order, each with its position as its
id; the NATS one killed (-9) and started again mid-stream: every position in the stream exactly once."""

from __future__ import annotations

import asyncio
import json
import random
import uuid

import aio_pika
import nats
import pytest
from aiokafka import AIOKafkaConsumer
from nats.js.api import StreamConfig

from app.feed.sinks import parse_sinks
from tests.brokers import kafka, nats_url, rabbitmq  # noqa: F401 - fixtures
from tests.conftest import eventually
from tests.integration.feedserver import binlog_server, fresh_database
from tests.integration.test_feed_resume import Gateway

TABLES = ["CREATE TABLE items (id INT PRIMARY KEY, v INT)", "CREATE TABLE other (id INT PRIMARY KEY)"]


@pytest.fixture(scope="module")
def server():
    with binlog_server() as server:
        yield server


def write(conn, first: int, n: int, rng: random.Random) -> list[tuple]:
    """Inserts and updates of `items` (and rows of `other`, never published) in random transactions."""
    done: list[tuple] = []
    with conn.cursor() as cur:
        i = first
        while len(done) < n:
            cur.execute("BEGIN")
            for _ in range(min(rng.randint(1, 8), n - len(done))):
                cur.execute("INSERT INTO items VALUES (%s, %s)", (i, i))
                cur.execute("INSERT INTO other VALUES (%s)", (i,))
                done.append(("insert", i))
                i += 1
            cur.execute("COMMIT")
    return done


def test_sink_urls_say_what_is_wrong():
    [sink] = parse_sinks("nats://127.0.0.1:4222?subject=cdc.items&tables=items,orders")
    assert (sink.kind, sink.name, sorted(sink.tables)) == ("nats", "nats:cdc.items", ["items", "orders"])
    for bad, said in (("nats://h?tables=a", "subject="), ("amqp://h/v?tables=a", "queue="),
                      ("kafka://h:1/?tables=a", "one topic"), ("kafka://h:1/t", "tables="), ("mqtt://h?tables=a", "scheme"),
                      ("nats://h?subject=s&tables=a&nope=1", "unknown option")):
        with pytest.raises(ValueError, match=said):
            parse_sinks(bad)
    with pytest.raises(ValueError, match="different `name`s"):
        parse_sinks("nats://a?subject=s&tables=t nats://b?subject=s&tables=u")


async def test_nats_gets_every_change_exactly_once_across_a_kill(server, nats_url):  # noqa: F811
    url, conn = fresh_database(server, TABLES)
    stream = f"CDC{uuid.uuid4().hex[:8]}"
    client = await nats.connect(nats_url)
    js = client.jetstream()
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{stream}.changes"]))
    gateway = Gateway(url)
    gateway.env["GATEWAY_FEED_SINKS"] = f"{nats_url}?subject={stream}.changes&tables=items"
    rng = random.Random(27)
    try:
        await gateway.start()
        await eventually(lambda: _position_kept(server, url), timeout=20, what="the sink taking its place")
        expected = write(conn, 1, 300, rng)
        await eventually(lambda: _count(js, stream, 100), timeout=30, what="100 changes published")
        gateway.kill()
        expected += write(conn, 301, 300, rng)  # while no gateway runs
        await gateway.start()
        await eventually(lambda: _count(js, stream, 600), timeout=60, what="every change published")
        await asyncio.sleep(1)  # anything published twice would be in the stream by now
        messages = await _read(js, stream)
    finally:
        if gateway.process is not None and gateway.process.poll() is None:
            gateway.kill()
        await js.delete_stream(stream)
        await client.close()
        conn.close()
    assert [(m["op"], m["key"]["id"]) for m in messages] == expected
    ids = [m["position"] for m in messages]
    assert len(set(ids)) == len(ids) == 600


def _position_kept(server, url: str) -> bool:
    database = url.split("/")[3].split("?")[0]
    rows = server.sql("SELECT `position` FROM `_gateway_feed_sinks`", database=database) if server.sql(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_NAME = '_gateway_feed_sinks' AND TABLE_SCHEMA = %s",
        (database,))[0][0] else []
    return bool(rows and rows[0][0])


async def _count(js, stream: str, n: int) -> bool:
    return (await js.stream_info(stream)).state.messages >= n


async def _read(js, stream: str) -> list[dict]:
    info = await js.stream_info(stream)
    return [json.loads((await js.get_msg(stream, seq)).data) for seq in range(1, info.state.last_seq + 1)]


async def test_rabbitmq_and_kafka_get_the_changes_in_commit_order(server, rabbitmq, kafka):  # noqa: F811
    url, conn = fresh_database(server, TABLES)
    queue, topic = f"cdc-{uuid.uuid4().hex[:8]}", f"cdc-{uuid.uuid4().hex[:8]}"
    gateway = Gateway(url)
    gateway.env["GATEWAY_FEED_SINKS"] = (f"{rabbitmq}?queue={queue}&tables=items, "
                                         f"kafka://{kafka}/{topic}?tables=items")
    try:
        await gateway.start()
        await eventually(lambda: _position_kept(server, url), timeout=20, what="the sinks taking their place")
        expected = write(conn, 1, 200, random.Random(3))
        with conn.cursor() as cur:
            cur.execute("UPDATE items SET v = -1 WHERE id = 7")
            cur.execute("DELETE FROM items WHERE id = 8")
        expected += [("update", 7), ("delete", 8)]
        amqp = await _from_rabbitmq(rabbitmq, queue, len(expected))
        records = await _from_kafka(kafka, topic, len(expected))
    finally:
        if gateway.process is not None and gateway.process.poll() is None:
            gateway.kill()
        conn.close()
    for broker, got in (("rabbitmq", amqp), ("kafka", records)):
        assert [(m["op"], m["key"]["id"]) for _, m in got] == expected, broker
        assert [ident for ident, _ in got] == [m["position"] for _, m in got]
    assert amqp[-2][1]["before"] == {"id": 7, "v": 7} and amqp[-2][1]["after"] == {"id": 7, "v": -1}


async def _from_rabbitmq(url: str, queue: str, n: int) -> list[tuple[str, dict]]:
    connection = await aio_pika.connect(url)
    got: list[tuple[str, dict]] = []
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, durable=True)
        async with asyncio.timeout(60):
            async with declared.iterator() as messages:
                async for message in messages:
                    async with message.process():
                        got.append((message.message_id, json.loads(message.body)))
                    if len(got) >= n:
                        break
        await declared.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
    return got


async def _from_kafka(address: str, topic: str, n: int) -> list[tuple[str, dict]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=address, auto_offset_reset="earliest",
                                group_id=f"g{uuid.uuid4().hex[:6]}")
    await consumer.start()
    got: list[tuple[str, dict]] = []
    try:
        async with asyncio.timeout(60):
            while len(got) < n:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    got.extend((r.key.decode(), json.loads(r.value)) for r in records)
    finally:
        await consumer.stop()
    return got
