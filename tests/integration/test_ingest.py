"""`python -m app ingest` against real brokers: every good message applied exactly once and every
bad one dead-lettered exactly once, across kill -9 of an ingest process (two share the work) and
across the database going away mid-stream."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from pathlib import Path

import aio_pika
import httpx
import nats
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from nats.js.api import StreamConfig

from app.streams import positions
from tests.brokers import kafka, nats_url, rabbitmq  # noqa: F401 (fixtures)
from tests.conftest import eventually, free_port, proxied_url, run_sql

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = int(os.environ.get("GATEWAY_TEST_STREAM_MESSAGES", "100000"))
EVENTS = "CREATE TABLE events (seq BIGINT AUTO_INCREMENT PRIMARY KEY, msg INT NOT NULL, name VARCHAR(20) NOT NULL, n INT NOT NULL)"
BAD = [b"{not json", b'{"msg": %d, "name": "x", "n": 1, "nope": 2}', b'{"msg": %d, "name": "x", "n": "many"}']


def make_tables(sql) -> None:  # noqa: ANN001
    """The table the streams fill, and the gateway's stream tables (the ingest makes them too;
    here first, so the test can count before the process is up)."""
    run_sql(sql, EVENTS)
    for statement in positions.CREATE:
        run_sql(sql, statement)


def payload(i: int) -> bytes:
    """Every 499th message is bad (not JSON, an unknown column, a value that does not fit); every
    100th good one carries three rows."""
    if i % 499 == 0:
        bad = BAD[(i // 499) % 3]
        return bad % i if b"%d" in bad else bad
    if i % 100 == 0:
        return json.dumps([{"msg": i, "name": f"n{i}", "n": k} for k in range(3)]).encode()
    return b'{"msg": %d, "name": "n%d", "n": 0}' % (i, i)


def expected(count: int) -> tuple[int, int, int]:
    """(rows, distinct messages, dead letters) once `count` messages are in."""
    bad = sum(1 for i in range(count) if i % 499 == 0)
    triple = sum(1 for i in range(count) if i % 100 == 0 and i % 499 != 0)
    return count - bad + 2 * triple, count - bad, bad


class Broker:
    """One broker's test stream: publish, the ingest source URL, and whether all is consumed."""

    name: str

    async def publish(self, start: int, stop: int) -> None: ...
    def source(self) -> str: ...
    async def drained(self, sql) -> bool: ...  # noqa: ANN001
    async def cleanup(self) -> None: ...


class Kafka(Broker):
    def __init__(self, address: str):
        self.address, self.topic, self.name = address, f"gw{uuid.uuid4().hex[:10]}", "kafka"
        self.ends: dict[int, int] = {}

    async def publish(self, start: int, stop: int) -> None:
        if not self.ends:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.address)
            await admin.start()
            await admin.create_topics([NewTopic(self.topic, num_partitions=3, replication_factor=1)])
            await admin.close()
        producer = AIOKafkaProducer(bootstrap_servers=self.address, linger_ms=5)
        await producer.start()
        futures = [await producer.send(self.topic, payload(i), partition=i % 3) for i in range(start, stop)]
        await producer.flush()
        for f in futures:
            meta = await f
            self.ends[meta.partition] = max(self.ends.get(meta.partition, 0), meta.offset + 1)
        await producer.stop()

    def source(self) -> str:
        return f"kafka://{self.address}/{self.topic}?table=events&group=g{self.topic}&batch=2000"

    async def drained(self, sql) -> bool:  # noqa: ANN001
        stored = dict(run_sql(sql, "SELECT `partition`, next_offset FROM _gateway_stream_offsets WHERE source = %s", (f"kafka:g{self.topic}:{self.topic}",)))
        return stored == self.ends


class Rabbit(Broker):
    def __init__(self, url: str):
        self.url, self.queue, self.name = url, f"gw-{uuid.uuid4().hex[:10]}", "amqp"

    async def publish(self, start: int, stop: int) -> None:
        connection = await aio_pika.connect(self.url)
        channel = await connection.channel()
        await channel.declare_queue(self.queue, durable=True)
        for first in range(start, stop, 1000):
            await asyncio.gather(*(
                channel.default_exchange.publish(aio_pika.Message(payload(i), message_id=str(i)), routing_key=self.queue)
                for i in range(first, min(stop, first + 1000))
            ))
        await connection.close()

    def source(self) -> str:
        return f"{self.url}?queue={self.queue}&table=events&batch=2000"

    async def drained(self, sql) -> bool:  # noqa: ANN001
        connection = await aio_pika.connect(self.url)
        channel = await connection.channel()
        queue = await channel.declare_queue(self.queue, passive=True)
        ready, consumers = queue.declaration_result.message_count, queue.declaration_result.consumer_count
        await connection.close()
        return ready == 0 and consumers == 0  # asked after the ingest stopped: nothing unacknowledged is left

    async def cleanup(self) -> None:
        connection = await aio_pika.connect(self.url)
        channel = await connection.channel()
        await channel.queue_delete(self.queue)
        await connection.close()


class Nats(Broker):
    def __init__(self, url: str):
        self.url, self.stream, self.name = url, f"GW{uuid.uuid4().hex[:10]}", "nats"

    async def publish(self, start: int, stop: int) -> None:
        client = await nats.connect(self.url)
        js = client.jetstream()
        if start == 0:
            await js.add_stream(StreamConfig(name=self.stream, subjects=[f"{self.stream}.>"]))
        for first in range(start, stop, 1000):
            await asyncio.gather(*(js.publish(f"{self.stream}.events", payload(i)) for i in range(first, min(stop, first + 1000))))
        await client.close()

    def source(self) -> str:
        return f"{self.url}?stream={self.stream}&subject={self.stream}.>&table=events&ack_wait=3&batch=2000"

    async def drained(self, sql) -> bool:  # noqa: ANN001
        client = await nats.connect(self.url)
        info = await client.jetstream().consumer_info(self.stream, "gateway")
        await client.close()
        return info.num_pending == 0 and info.num_ack_pending == 0

    async def cleanup(self) -> None:
        client = await nats.connect(self.url)
        await client.jetstream().delete_stream(self.stream)
        await client.close()


@pytest.fixture(params=["kafka", "amqp", "nats"])
async def broker(request):
    made = {"kafka": lambda: Kafka(request.getfixturevalue("kafka")),
            "amqp": lambda: Rabbit(request.getfixturevalue("rabbitmq")),
            "nats": lambda: Nats(request.getfixturevalue("nats_url"))}[request.param]()
    yield made
    await made.cleanup()


@pytest.fixture
def started():
    """Every ingest process a test starts, killed at its end whatever happened."""
    processes: list[Ingest] = []
    yield processes
    for ingest in processes:
        if ingest.process is not None and ingest.process.returncode is None:
            ingest.kill()


class Ingest:
    """A `python -m app ingest` process."""

    def __init__(self, started: list, database_url: str, sources: str, log: Path, **env: str):
        started.append(self)
        self.port = free_port()
        self.env = os.environ | {
            "DATABASE_URL": database_url, "GATEWAY_INGEST_SOURCES": sources, "GATEWAY_INGEST_PORT": str(self.port),
            "GATEWAY_LOG_FORMAT": "text", "GATEWAY_LOG_LEVEL": "warning",
        } | env
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> "Ingest":
        with open(self.log, "ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "app", "ingest", cwd=ROOT, env=self.env, stdout=out, stderr=out
            )
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 30)

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}") as client:
            return await client.get(path)


def counts(sql) -> tuple[int, int, int]:  # noqa: ANN001
    (rows, distinct), = run_sql(sql, "SELECT COUNT(*), COUNT(DISTINCT msg) FROM events")
    (dead,), = run_sql(sql, "SELECT COUNT(*) FROM _gateway_dead_letters")
    return rows, distinct, dead


def assert_exactly_once(sql, count: int) -> None:  # noqa: ANN001
    assert counts(sql) == expected(count)
    # Every good message's rows once (3 for the triples), every bad one dead-lettered once.
    assert run_sql(sql, "SELECT msg, COUNT(*) FROM events GROUP BY msg HAVING COUNT(*) <> IF(MOD(msg, 100) = 0, 3, 1)") == []
    assert run_sql(sql, "SELECT position FROM _gateway_dead_letters GROUP BY position HAVING COUNT(*) > 1") == []
    reasons = [r for (r,) in run_sql(sql, "SELECT reason FROM _gateway_dead_letters")]
    assert any("not valid JSON" in r for r in reasons) and any("nope" in r for r in reasons) and any("'n'" in r for r in reasons)


async def test_kill_9_mid_stream_loses_and_doubles_nothing(broker, schema, test_db, tmp_path, started):
    make_tables(schema)
    await broker.publish(0, MESSAGES)
    sources = broker.source()
    first = await Ingest(started, test_db, sources, tmp_path / "a.log").start()
    second = await Ingest(started, test_db, sources, tmp_path / "b.log").start()
    rows_total = expected(MESSAGES)[0]
    await eventually(lambda: counts(schema)[0] > rows_total // 3, 180, 0.2, "a third of the rows")
    first.kill()
    await first.process.wait()
    third = await Ingest(started, test_db, sources, tmp_path / "c.log").start()
    try:
        await eventually(lambda: counts(schema)[0] + counts(schema)[2] >= expected(MESSAGES)[0] + expected(MESSAGES)[2], 180, 0.2, "every message")
        await eventually(lambda: _state(third, "running"), 60, 0.2, "the restarted process to be ready")
        ready = await third.get("/health/ready")
        assert ready.status_code == 200, ready.text
        (source,) = ready.json()["data"]["sources"]
        assert source["state"] == "running" and source["table"] == "events"
        metrics = (await third.get("/metrics")).text
        assert "gateway_ingest_messages_total" in metrics and "gateway_ingest_rows_total" in metrics
    finally:
        await second.stop()
        await third.stop()
    await eventually(lambda: broker.drained(schema), 60, 0.2, "the broker to have nothing left to deliver")
    assert_exactly_once(schema, MESSAGES)


async def test_the_database_away_mid_stream_pauses_and_resumes(broker, schema, test_db, proxy, tmp_path, started):
    """Half the stream is applied; the database goes away; the second half arrives, and the source
    pauses holding it unacknowledged; the database comes back; everything is applied once."""
    count = MESSAGES // 5
    half = count // 2
    make_tables(schema)
    await broker.publish(0, half)
    fast = {"GATEWAY_ATTEMPT_TIMEOUTS_MS": "200,200", "GATEWAY_RETRY_WAITS_MS": "50", "GATEWAY_BULK_ATTEMPT_TIMEOUTS_MS": "2000,2000"}
    ingest = await Ingest(started, proxied_url(test_db, proxy.port), broker.source(), tmp_path / "i.log", **fast).start()
    try:
        await eventually(lambda: sum(counts(schema)) - counts(schema)[1] >= expected(half)[0] + expected(half)[2], 180, 0.2, "the first half")
        await proxy.down()
        await broker.publish(half, count)
        await eventually(lambda: _state(ingest, "paused"), 60, 0.2, "the source to pause")
        await asyncio.sleep(2)  # the database stays away a while: the source must keep holding the messages
        assert counts(schema) == expected(half)
        await proxy.up()
        await eventually(lambda: sum(counts(schema)) - counts(schema)[1] >= expected(count)[0] + expected(count)[2], 180, 0.2, "every message")
        await eventually(lambda: _state(ingest, "running"), 30, 0.2, "the source to run again")
    finally:
        await ingest.stop()
    await eventually(lambda: broker.drained(schema), 60, 0.2, "the broker to have nothing left to deliver")
    assert_exactly_once(schema, count)


async def _state(ingest: Ingest, state: str) -> bool:
    try:
        answer = (await ingest.get("/health/ready")).json()
    except httpx.HTTPError:
        return False
    sources = (answer.get("data") or answer.get("details") or {}).get("sources") or []
    return bool(sources) and all(s["state"] == state for s in sources)


@pytest.mark.parametrize("sources, says", [
    ("", "names no source"),
    ("kafka://127.0.0.1:9/t?group=g", "`table` is required"),
    ("amqp://u:secret@127.0.0.1/%2f?queue=q&table=t&colour=red", "unknown option(s) colour"),
])
async def test_a_wrong_source_list_stops_the_ingest_with_one_line(test_db, sources, says):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "ingest", cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=os.environ | {"DATABASE_URL": test_db, "GATEWAY_INGEST_SOURCES": sources},
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1 and says in err.decode() and "secret" not in err.decode()
    assert len(err.decode().strip().splitlines()) == 1
